/*
 * test_demo_layer.c -- the demo written with the layer around the handler:
 * its admin router behind a dependency (401, 403, 200), the audit line its
 * background task writes after the answer, its SQLite store opened in a
 * startup hook, its declared body and query, and its OpenAPI document.
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

static h_server *start(void **state)
{
    h_server *s = h_start(NULL, NULL, fetch_routes, "http://127.0.0.1:1");
    *state = s;
    return s;
}

static void test_admin_dependency(void **state)
{
    h_server *s;
    h_response r;

    h_log_reset();
    s = start(state);
    h_roundtrip(s, "GET /admin/stats HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 401);
    assert_string_equal(r.body, "{\"detail\":\"Not authenticated\"}");
    assert_string_equal(h_header_get(&r, "www-authenticate"), "Bearer");
    h_response_free(&r);
    h_roundtrip(s, "GET /admin/stats HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer x\r\n\r\n", &r);
    assert_int_equal(r.status, 403);
    h_response_free(&r);
    h_roundtrip(s,
                "GET /admin/stats HTTP/1.1\r\nHost: t\r\n"
                "Authorization: Bearer demo-admin-token\r\n\r\n",
                &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"requests_total\":"));
    h_response_free(&r);
    /* the audit line comes after the answer, from a background task */
    assert_true(H_WAIT_UNTIL(
        h_log_count(CN_LOG_INFO, "audit: GET /admin/stats by admin answered 200", NULL) == 1,
        3000));
    assert_int_equal(h_log_count(CN_LOG_INFO, "audit:", NULL), 1);
    assert_true(H_WAIT_UNTIL(h_stats(s).background_started == 1, 3000));
}

/* The store was opened by a startup hook (on the pool): /users reads it. */
static void test_store_opened_in_startup(void **state)
{
    h_server *s = start(state);
    h_conn *c = h_send_get(s, "/users");
    h_response r;

    /* the upstream is down, so /users fails at the upstream, not at the store */
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 502);
    h_response_free(&r);
}

static void test_declared_routes(void **state)
{
    h_server *s = start(state);
    h_response r;

    h_roundtrip(s,
                "POST /items HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                "Content-Length: 14\r\n\r\n{\"name\":\"pen\"}",
                &r);
    assert_int_equal(r.status, 422);
    assert_string_equal(r.body, "{\"detail\":[{\"type\":\"missing\",\"loc\":[\"body\",\"price\"],"
                                "\"msg\":\"Field required\",\"input\":{\"name\":\"pen\"}}]}");
    h_response_free(&r);
    h_roundtrip(s, "GET /fetch-multiple?delay_a=60000 HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 422);
    assert_non_null(strstr(r.body, "\"ctx\":{\"le\":10000}"));
    h_response_free(&r);
    h_roundtrip(s, "GET /openapi.json HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"/admin/stats\":{\"get\":{\"tags\":[\"admin\"]"));
    h_response_free(&r);
}

/* The binary's middleware: request IDs, CORS, gzip, the static page. */
static void test_web_layer(void **state)
{
    h_server *s = start(state);
    h_response r;

    h_roundtrip(s,
                "GET /static/ HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n"
                "Origin: http://app.example\r\n\r\n",
                &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(h_header_get(&r, "content-encoding"), "gzip");
    assert_string_equal(h_header_get(&r, "access-control-allow-origin"), "*");
    assert_int_equal(strlen(h_header_get(&r, "x-request-id")), 32);
    assert_string_equal(h_header_get(&r, "cache-control"), "public, max-age=60");
    h_response_free(&r);
    h_roundtrip(s, "GET /json HTTP/1.1\r\nHost: t\r\nX-Request-ID: abc-123\r\n\r\n", &r);
    assert_string_equal(h_header_get(&r, "x-request-id"), "abc-123");
    assert_null(h_header_get(&r, "content-encoding")); /* too small, and not asked */
    h_response_free(&r);
    h_roundtrip(s, "GET /static/../main.c HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 404);
    h_response_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_admin_dependency, h_teardown),
        cmocka_unit_test_teardown(test_store_opened_in_startup, h_teardown),
        cmocka_unit_test_teardown(test_declared_routes, h_teardown),
        cmocka_unit_test_teardown(test_web_layer, h_teardown),
    };
    int rc;

    h_log_capture_start();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    h_log_capture_stop();
    return rc;
}
