/*
 * test_cors.c -- the CORS middleware, as Starlette's tests check
 * CORSMiddleware: preflights allowed and refused (origin, method, headers,
 * and all three), preflights for paths no route has, simple requests from
 * allowed and other origins, "*" with and without credentials or cookies,
 * the origin regex, Vary, max-age, and the headers on error responses and
 * streams. In process, through the test client: CORS is headers in and
 * headers out, nothing of the wire.
 */
#include <stdlib.h>
#include <string.h>

#include "app.h" /* cn__app_free_checked */
#include "harness.h"

static int ok(cn_req *req, cn_res *res)
{
    (void)req;
    cn_res_header(res, "X-Total", "3");
    return cn_res_text(res, 200, "hello");
}

static int failing(cn_req *req, cn_res *res)
{
    (void)req;
    (void)res;
    return CN_ENOMEM;
}

static int stream(cn_req *req, cn_res *res)
{
    int rc = cn_res_stream_begin(res, 200, "text/plain");

    (void)req;
    if (rc == 0)
        rc = cn_res_stream_write(res, "a", 1);
    return rc < 0 ? rc : cn_res_stream_end(res);
}

static int setup(cn_app *app, void *opts)
{
    if (cn_app_cors(app, opts) < 0 || cn_app_route(app, "GET /api/ok", ok, NULL) ||
        cn_app_route(app, "POST /api/ok", ok, NULL) ||
        cn_app_route(app, "GET /api/fail", failing, NULL) ||
        cn_app_route(app, "GET /api/stream", stream, NULL))
        return -1;
    return 0;
}

static const char *const origins[] = {"https://a.example", NULL};
static const char *const methods[] = {"GET", "POST", NULL};
static const char *const headers[] = {"X-Token", "content-type", NULL}; /* listed twice */
static const char *const expose[] = {"X-Total", NULL};
static cn_cors_opts explicit_opts = {
    .allow_origins = origins,
    .allow_methods = methods,
    .allow_headers = headers,
    .expose_headers = expose,
};

/* One request with the header lines given (none: NULL) into r. */
#define REQ(c, method, target, r, ...)                                                             \
    h_tc_request(c, method, target, (const char *const[]){__VA_ARGS__, NULL}, NULL, r)

/* The header lines of a preflight from origin for method. */
#define PREFLIGHT(origin, method) "Origin: " origin, "Access-Control-Request-Method: " method

static h_client *start(void **state, cn_cors_opts *opts)
{
    h_client *c = h_tc_start(NULL, setup, opts);

    *state = c;
    return c;
}

static void test_preflight_allowed(void **state)
{
    h_client *c = start(state, &explicit_opts);
    cn_test_response r;

    REQ(c, "OPTIONS", "/api/ok", &r, PREFLIGHT("https://a.example", "POST"),
        "Access-Control-Request-Headers: X-Token, content-type");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "OK");
    h_tc_assert_header(&r, "access-control-allow-origin", "https://a.example");
    h_tc_assert_header(&r, "access-control-allow-methods", "GET, POST");
    h_tc_assert_header(&r, "access-control-allow-headers",
                       "Accept, Accept-Language, Content-Language, Content-Type, X-Token");
    h_tc_assert_header(&r, "access-control-max-age", "600");
    h_tc_assert_header(&r, "vary", "Origin");
    assert_null(cn_test_header(&r, "access-control-allow-credentials"));
    cn_test_response_free(&r);
    /* a path no route has: the preflight is still answered */
    REQ(c, "OPTIONS", "/no/such/path", &r, PREFLIGHT("https://a.example", "GET"));
    assert_int_equal(r.status, 200);
    h_tc_assert_header(&r, "access-control-allow-origin", "https://a.example");
    cn_test_response_free(&r);
}

static void test_preflight_refused(void **state)
{
    h_client *c = start(state, &explicit_opts);
    cn_test_response r;

    REQ(c, "OPTIONS", "/api/ok", &r, PREFLIGHT("https://evil.example", "GET"));
    assert_int_equal(r.status, 400);
    assert_string_equal(r.body, "Disallowed CORS origin");
    assert_null(cn_test_header(&r, "access-control-allow-origin"));
    cn_test_response_free(&r);
    REQ(c, "OPTIONS", "/api/ok", &r, PREFLIGHT("https://a.example", "DELETE"));
    assert_int_equal(r.status, 400);
    assert_string_equal(r.body, "Disallowed CORS method");
    cn_test_response_free(&r);
    REQ(c, "OPTIONS", "/api/ok", &r, PREFLIGHT("https://a.example", "GET"),
        "Access-Control-Request-Headers: X-Token, X-Evil");
    assert_int_equal(r.status, 400);
    assert_string_equal(r.body, "Disallowed CORS headers");
    cn_test_response_free(&r);
    REQ(c, "OPTIONS", "/api/ok", &r, PREFLIGHT("https://b.example", "PUT"),
        "Access-Control-Request-Headers: X-Evil");
    assert_int_equal(r.status, 400);
    assert_string_equal(r.body, "Disallowed CORS origin, method, headers");
    cn_test_response_free(&r);
    /* OPTIONS without Access-Control-Request-Method is no preflight: the
     * router answers it (no OPTIONS route: 405) */
    REQ(c, "OPTIONS", "/api/ok", &r, "Origin: https://a.example");
    assert_int_equal(r.status, 405);
    h_tc_assert_header(&r, "access-control-allow-origin", "https://a.example");
    cn_test_response_free(&r);
}

static void test_simple_requests(void **state)
{
    h_client *c = start(state, &explicit_opts);
    cn_test_response r;

    REQ(c, "GET", "/api/ok", &r, "Origin: https://a.example");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello");
    h_tc_assert_header(&r, "access-control-allow-origin", "https://a.example");
    h_tc_assert_header(&r, "access-control-expose-headers", "X-Total");
    h_tc_assert_header(&r, "vary", "Origin");
    assert_int_equal(cn_test_header_count(&r, "vary"), 1);
    cn_test_response_free(&r);
    /* another origin: served, but the browser gets no permission */
    REQ(c, "GET", "/api/ok", &r, "Origin: https://evil.example");
    assert_int_equal(r.status, 200);
    assert_null(cn_test_header(&r, "access-control-allow-origin"));
    assert_null(cn_test_header(&r, "access-control-expose-headers"));
    h_tc_assert_header(&r, "vary", "Origin");
    cn_test_response_free(&r);
    /* no Origin: not CORS, but the answer still varies by it for caches */
    REQ(c, "GET", "/api/ok", &r, NULL);
    assert_null(cn_test_header(&r, "access-control-allow-origin"));
    h_tc_assert_header(&r, "vary", "Origin");
    cn_test_response_free(&r);
    /* error responses and streams carry the headers too */
    REQ(c, "GET", "/api/fail", &r, "Origin: https://a.example");
    assert_int_equal(r.status, 500);
    h_tc_assert_header(&r, "access-control-allow-origin", "https://a.example");
    cn_test_response_free(&r);
    REQ(c, "GET", "/api/stream", &r, "Origin: https://a.example");
    assert_int_equal(r.status, 200);
    assert_true(h_tc_chunked(&r));
    h_tc_assert_header(&r, "access-control-allow-origin", "https://a.example");
    cn_test_response_free(&r);
    REQ(c, "GET", "/api/none", &r, "Origin: https://a.example");
    assert_int_equal(r.status, 404);
    h_tc_assert_header(&r, "access-control-allow-origin", "https://a.example");
    cn_test_response_free(&r);
}

static const char *const any[] = {"*", NULL};

static void test_any_origin(void **state)
{
    static cn_cors_opts o = {.allow_origins = any, .allow_methods = any, .allow_headers = any};
    h_client *c = start(state, &o);
    cn_test_response r;

    REQ(c, "GET", "/api/ok", &r, "Origin: https://x.example");
    h_tc_assert_header(&r, "access-control-allow-origin", "*");
    assert_null(cn_test_header(&r, "vary"));
    cn_test_response_free(&r);
    /* a request with cookies gets its origin, not "*" */
    REQ(c, "GET", "/api/ok", &r, "Origin: https://x.example", "Cookie: a=1");
    h_tc_assert_header(&r, "access-control-allow-origin", "https://x.example");
    h_tc_assert_header(&r, "vary", "Origin");
    cn_test_response_free(&r);
    /* "*" methods and headers: what was asked is allowed */
    REQ(c, "OPTIONS", "/api/ok", &r, PREFLIGHT("https://x.example", "PATCH"),
        "Access-Control-Request-Headers: X-A, X-B");
    assert_int_equal(r.status, 200);
    h_tc_assert_header(&r, "access-control-allow-origin", "*");
    h_tc_assert_header(&r, "access-control-allow-methods", "PATCH");
    h_tc_assert_header(&r, "access-control-allow-headers", "X-A, X-B");
    assert_null(cn_test_header(&r, "vary"));
    cn_test_response_free(&r);
}

static void test_credentials_never_star(void **state)
{
    static cn_cors_opts o = {.allow_origins = any, .allow_credentials = 1, .max_age = 60};
    h_client *c = start(state, &o);
    cn_test_response r;

    REQ(c, "GET", "/api/ok", &r, "Origin: https://x.example");
    h_tc_assert_header(&r, "access-control-allow-origin", "https://x.example");
    h_tc_assert_header(&r, "access-control-allow-credentials", "true");
    h_tc_assert_header(&r, "vary", "Origin");
    cn_test_response_free(&r);
    REQ(c, "OPTIONS", "/api/ok", &r, PREFLIGHT("https://x.example", "GET"));
    assert_int_equal(r.status, 200);
    h_tc_assert_header(&r, "access-control-allow-origin", "https://x.example");
    h_tc_assert_header(&r, "access-control-allow-credentials", "true");
    h_tc_assert_header(&r, "access-control-max-age", "60");
    h_tc_assert_header(&r, "vary", "Origin");
    /* default methods: GET only */
    h_tc_assert_header(&r, "access-control-allow-methods", "GET");
    cn_test_response_free(&r);
}

static void test_origin_regex(void **state)
{
    static cn_cors_opts o = {.allow_origin_regex = "https://[a-z0-9-]+\\.example\\.org",
                             .max_age = -1};
    h_client *c = start(state, &o);
    cn_test_response r;

    REQ(c, "GET", "/api/ok", &r, "Origin: https://app-1.example.org");
    h_tc_assert_header(&r, "access-control-allow-origin", "https://app-1.example.org");
    cn_test_response_free(&r);
    /* the whole origin must match: no suffix, no other scheme */
    REQ(c, "GET", "/api/ok", &r, "Origin: https://app.example.org.evil.com");
    assert_null(cn_test_header(&r, "access-control-allow-origin"));
    cn_test_response_free(&r);
    REQ(c, "GET", "/api/ok", &r, "Origin: http://app.example.org");
    assert_null(cn_test_header(&r, "access-control-allow-origin"));
    cn_test_response_free(&r);
    REQ(c, "OPTIONS", "/api/ok", &r, PREFLIGHT("https://app.example.org", "GET"));
    assert_int_equal(r.status, 200);
    h_tc_assert_header(&r, "access-control-max-age", "0");
    cn_test_response_free(&r);
}

static void test_bad_options(void **state)
{
    cn_app *app = cn_app_new(NULL);

    (void)state;
    assert_int_equal(cn_app_cors(app, NULL), CN_EINVAL);
    assert_int_equal(cn_app_cors(NULL, &explicit_opts), CN_EINVAL);
    assert_int_equal(cn_app_cors(app, &(cn_cors_opts){.allow_origin_regex = "(unclosed"}),
                     CN_EINVAL);
    assert_int_equal(cn__app_free_checked(app), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_preflight_allowed, h_tc_teardown),
        cmocka_unit_test_teardown(test_preflight_refused, h_tc_teardown),
        cmocka_unit_test_teardown(test_simple_requests, h_tc_teardown),
        cmocka_unit_test_teardown(test_any_origin, h_tc_teardown),
        cmocka_unit_test_teardown(test_credentials_never_star, h_tc_teardown),
        cmocka_unit_test_teardown(test_origin_regex, h_tc_teardown),
        cmocka_unit_test(test_bad_options),
    };
    int rc;

    h_log_capture_start();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    h_log_capture_stop();
    return rc;
}
