/*
 * test_demo_layer.c -- the demo written with the layer around the handler:
 * its admin router behind a dependency (401, 403, 200), the audit line its
 * background task writes after the answer, its SQLite store opened in a
 * startup hook, its declared body and query, its OpenAPI document, and the
 * binary's middleware. In process, through the test client (its startup
 * hooks run in h_tc_start); the upstream is a closed port, so no outbound
 * call succeeds.
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#include "demo.h"

static int fetch_routes(cn_app *app, void *arg)
{
    /* the store's lifespan comes with the outbound routes; no upstream call
     * is made here; and the binary's middleware */
    int rc = demo_register_fetch(app, arg);
    return rc ? rc : demo_register_web(app);
}

static h_client *start(void **state)
{
    h_client *c = h_tc_start(NULL, fetch_routes, "http://127.0.0.1:1");

    *state = c;
    return c;
}

/* One request with the header lines given (none: NULL) into r. */
#define REQ(c, method, target, body, r, ...)                                                       \
    h_tc_request(c, method, target, (const char *const[]){__VA_ARGS__, NULL}, body, r)

static void test_admin_dependency(void **state)
{
    h_client *c;
    cn_test_response r;

    h_log_reset();
    c = start(state);
    REQ(c, "GET", "/admin/stats", NULL, &r, NULL);
    assert_int_equal(r.status, 401);
    assert_string_equal(r.body, "{\"detail\":\"Not authenticated\"}");
    assert_string_equal(cn_test_header(&r, "www-authenticate"), "Bearer");
    cn_test_response_free(&r);
    REQ(c, "GET", "/admin/stats", NULL, &r, "Authorization: Bearer x");
    assert_int_equal(r.status, 403);
    cn_test_response_free(&r);
    REQ(c, "GET", "/admin/stats", NULL, &r, "Authorization: Bearer demo-admin-token");
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"requests_total\":"));
    cn_test_response_free(&r);
    /* the audit line comes after the answer, from a background task */
    h_tc_settle(c);
    assert_int_equal(
        h_log_count(CN_LOG_INFO, "audit: GET /admin/stats by admin answered 200", NULL), 1);
    assert_int_equal(h_log_count(CN_LOG_INFO, "audit:", NULL), 1);
    assert_int_equal(h_tc_stats(c).background_started, 1);
}

/* The store was opened by a startup hook (on the pool): /users reads it. */
static void test_store_opened_in_startup(void **state)
{
    h_client *c = start(state);
    cn_test_response r;

    /* the upstream is down, so /users fails at the upstream, not at the store */
    REQ(c, "GET", "/users", NULL, &r, NULL);
    assert_int_equal(r.status, 502);
    cn_test_response_free(&r);
}

static void test_declared_routes(void **state)
{
    h_client *c = start(state);
    cn_test_response r;

    REQ(c, "POST", "/items", "{\"name\":\"pen\"}", &r, "Content-Type: application/json");
    assert_int_equal(r.status, 422);
    assert_string_equal(r.body, "{\"detail\":[{\"type\":\"missing\",\"loc\":[\"body\",\"price\"],"
                                "\"msg\":\"Field required\",\"input\":{\"name\":\"pen\"}}]}");
    cn_test_response_free(&r);
    REQ(c, "GET", "/fetch-multiple?delay_a=60000", NULL, &r, NULL);
    assert_int_equal(r.status, 422);
    assert_non_null(strstr(r.body, "\"ctx\":{\"le\":10000}"));
    cn_test_response_free(&r);
    REQ(c, "GET", "/openapi.json", NULL, &r, NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"/admin/stats\":{\"get\":{\"tags\":[\"admin\"]"));
    cn_test_response_free(&r);
}

/* The binary's middleware: request IDs, CORS, gzip, the static page. */
static void test_web_layer(void **state)
{
    h_client *c = start(state);
    cn_test_response r;

    REQ(c, "GET", "/static/", NULL, &r, "Accept-Encoding: gzip", "Origin: http://app.example");
    assert_int_equal(r.status, 200);
    assert_string_equal(cn_test_header(&r, "content-encoding"), "gzip");
    assert_string_equal(cn_test_header(&r, "access-control-allow-origin"), "*");
    assert_int_equal(strlen(cn_test_header(&r, "x-request-id")), 32);
    assert_string_equal(cn_test_header(&r, "cache-control"), "public, max-age=60");
    cn_test_response_free(&r);
    REQ(c, "GET", "/json", NULL, &r, "X-Request-ID: abc-123");
    assert_string_equal(cn_test_header(&r, "x-request-id"), "abc-123");
    assert_null(cn_test_header(&r, "content-encoding")); /* too small, and not asked */
    cn_test_response_free(&r);
    REQ(c, "GET", "/static/../main.c", NULL, &r, NULL);
    assert_int_equal(r.status, 404);
    cn_test_response_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_admin_dependency, h_tc_teardown),
        cmocka_unit_test_teardown(test_store_opened_in_startup, h_tc_teardown),
        cmocka_unit_test_teardown(test_declared_routes, h_tc_teardown),
        cmocka_unit_test_teardown(test_web_layer, h_tc_teardown),
    };
    int rc;

    h_log_capture_start();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    h_log_capture_stop();
    return rc;
}
