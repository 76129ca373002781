/*
 * test_request_id.c -- the request-ID middleware over real sockets: a valid
 * X-Request-ID is taken and returned, a forged one (spaces, tabs, 200
 * characters, bytes past ASCII) is replaced by a fresh random ID and never
 * echoed, CR/LF never gets that far, error and unmatched responses carry
 * it, and Canteen's own log lines about the request (a handler's failure,
 * a slow step, the access log) start with it.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static int echo_id(cn_req *req, cn_res *res)
{
    const char *id = cn_req_id(req);

    return cn_res_text(res, 200, id ? id : "(none)");
}

static int failing(cn_req *req, cn_res *res)
{
    (void)req;
    (void)res;
    return CN_EINVAL;
}

/* holds the loop longer than slow_callback_ms: a slow-step warning */
static int slow(cn_req *req, cn_res *res)
{
    (void)req;
    h_block_ms(150);
    return cn_res_text(res, 200, "slow");
}

static int setup(cn_app *app, void *opts)
{
    if (cn_app_request_id(app, opts) < 0 || cn_app_route(app, "GET /rid/echo", echo_id, NULL) ||
        cn_app_route(app, "GET /rid/fail", failing, NULL) ||
        cn_app_route(app, "GET /rid/slow", slow, NULL))
        return -1;
    return 0;
}

static bool is_hex32(const char *s)
{
    if (s == NULL || strlen(s) != 32)
        return false;
    for (; *s; s++)
        if (!isxdigit((unsigned char)*s) || isupper((unsigned char)*s))
            return false;
    return true;
}

static void test_valid_id_is_taken(void **state)
{
    h_server *s = h_start(NULL, NULL, setup, NULL);
    h_response r;

    *state = s;
    h_request(s, "GET", "/rid/echo", "X-Request-ID: abc-123_XYZ.9\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "abc-123_XYZ.9");
    assert_string_equal(h_header_get(&r, "x-request-id"), "abc-123_XYZ.9");
    assert_int_equal(h_header_count(&r, "x-request-id"), 1);
    h_response_free(&r);
    /* the name is case-insensitive on the way in */
    h_request(s, "GET", "/rid/echo", "x-request-id: lower\r\n", &r);
    assert_string_equal(r.body, "lower");
    h_response_free(&r);
}

static void test_made_when_missing(void **state)
{
    h_server *s = h_start(NULL, NULL, setup, NULL);
    h_response a, b;

    *state = s;
    h_request(s, "GET", "/rid/echo", "", &a);
    h_request(s, "GET", "/rid/echo", "", &b);
    assert_true(is_hex32(a.body));
    assert_true(is_hex32(b.body));
    assert_string_equal(h_header_get(&a, "x-request-id"), a.body);
    /* 128 random bits: two in a row never collide */
    assert_string_not_equal(a.body, b.body);
    h_response_free(&a);
    h_response_free(&b);
}

static void test_forged_ids_are_replaced(void **state)
{
    static const char *const forged[] = {
        "X-Request-ID: two words\r\n",
        "X-Request-ID: tab\there\r\n",
        "X-Request-ID: caf\xc3\xa9\r\n",
        "X-Request-ID: \r\n",
    };
    h_server *s = h_start(NULL, NULL, setup, NULL);
    char long_id[256];
    h_response r;

    *state = s;
    for (size_t i = 0; i < sizeof forged / sizeof forged[0]; i++) {
        h_request(s, "GET", "/rid/echo", forged[i], &r);
        assert_int_equal(r.status, 200);
        assert_true(is_hex32(r.body));
        assert_string_equal(h_header_get(&r, "x-request-id"), r.body);
        h_response_free(&r);
    }
    /* 129 characters: one past what cn_req_set_id takes */
    memset(long_id, 'a', 129);
    long_id[129] = 0;
    char *line = h_strf("X-Request-ID: %s\r\n", long_id);
    h_request(s, "GET", "/rid/echo", line, &r);
    free(line);
    assert_true(is_hex32(r.body));
    h_response_free(&r);
    /* 128 is fine */
    long_id[128] = 0;
    line = h_strf("X-Request-ID: %s\r\n", long_id);
    h_request(s, "GET", "/rid/echo", line, &r);
    free(line);
    assert_string_equal(r.body, long_id);
    h_response_free(&r);
    /* a CR inside the value never reaches the middleware: the parser
     * refuses the request, and no header of it is echoed */
    h_request(s, "GET", "/rid/echo", "X-Request-ID: a\rSet-Cookie: x=1\r\n", &r);
    assert_int_equal(r.status, 400);
    assert_null(h_header_get(&r, "x-request-id"));
    assert_null(h_header_get(&r, "set-cookie"));
    h_response_free(&r);
}

static void test_on_errors_and_unmatched(void **state)
{
    h_server *s = h_start(NULL, NULL, setup, NULL);
    h_response r;

    *state = s;
    h_request(s, "GET", "/rid/fail", "X-Request-ID: fail-1\r\n", &r);
    assert_int_equal(r.status, 500);
    assert_string_equal(h_header_get(&r, "x-request-id"), "fail-1");
    h_response_free(&r);
    h_request(s, "GET", "/rid/nowhere", "X-Request-ID: lost-1\r\n", &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(h_header_get(&r, "x-request-id"), "lost-1");
    h_response_free(&r);
}

static void test_in_log_lines(void **state)
{
    cn_config cfg = h_fast_config();
    h_server *s;
    h_response r;
    char line[1200];

    cfg.access_log = 1;
    s = h_start(&cfg, NULL, setup, NULL);
    *state = s;
    h_log_reset();
    /* a handler's failure */
    h_request(s, "GET", "/rid/fail", "X-Request-ID: trace-fail\r\n", &r);
    h_response_free(&r);
    assert_true(H_WAIT_UNTIL(h_log_count(CN_LOG_ERROR,
                                         "[trace-fail] GET /rid/fail: handler returned "
                                         "CN_EINVAL",
                                         NULL) == 1,
                             H_TIMEOUT_MS));
    /* a step that held the loop */
    h_request(s, "GET", "/rid/slow", "X-Request-ID: trace-slow\r\n", &r);
    h_response_free(&r);
    assert_true(H_WAIT_UNTIL(h_log_count(CN_LOG_WARN, "[trace-slow] ", "GET /rid/slow") >= 1,
                             H_TIMEOUT_MS));
    /* the access log (uvicorn's line, after the ID) */
    assert_true(H_WAIT_UNTIL(h_log_count(CN_LOG_INFO, "[trace-slow] INFO:     127.0.0.1:",
                                         "\"GET /rid/slow HTTP/1.1\" 200 OK") == 1,
                             H_TIMEOUT_MS));
    /* a made ID is in the log too */
    h_request(s, "GET", "/rid/fail", "", &r);
    char *want = h_strf("[%s] GET /rid/fail", h_header_get(&r, "x-request-id"));
    h_response_free(&r);
    assert_true(H_WAIT_UNTIL(h_log_count(CN_LOG_ERROR, want, NULL) == 1, H_TIMEOUT_MS));
    free(want);
    /* a forged one is not */
    h_request(s, "GET", "/rid/fail", "X-Request-ID: forged id\r\n", &r);
    h_response_free(&r);
    h_log_find("forged", line, sizeof line);
    assert_string_equal(line, "");
}

static void test_options(void **state)
{
    static cn_request_id_opts opts = {.header = "X-Trace-Id", .ignore_incoming = 1};
    h_server *s = h_start(NULL, NULL, setup, &opts);
    h_response r;

    *state = s;
    h_request(s, "GET", "/rid/echo", "X-Trace-Id: mine\r\nX-Request-ID: other\r\n", &r);
    assert_true(is_hex32(r.body));
    assert_string_equal(h_header_get(&r, "x-trace-id"), r.body);
    assert_null(h_header_get(&r, "x-request-id"));
    h_response_free(&r);
}

static void test_bad_options(void **state)
{
    cn_app *app = cn_app_new(NULL);

    (void)state;
    assert_int_equal(cn_app_request_id(NULL, NULL), CN_EINVAL);
    assert_int_equal(cn_app_request_id(app, &(cn_request_id_opts){.header = "X Bad"}), CN_EINVAL);
    assert_int_equal(cn_app_request_id(app, &(cn_request_id_opts){.header = ""}), CN_EINVAL);
    /* a header the serialiser writes itself cannot be the ID's */
    assert_int_equal(cn_app_request_id(app, &(cn_request_id_opts){.header = "Date"}), CN_EINVAL);
    assert_int_equal(cn_app_request_id(app, &(cn_request_id_opts){.header = "content-length"}),
                     CN_EINVAL);
    cn_app_free(app);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_valid_id_is_taken, h_teardown),
        cmocka_unit_test_teardown(test_made_when_missing, h_teardown),
        cmocka_unit_test_teardown(test_forged_ids_are_replaced, h_teardown),
        cmocka_unit_test_teardown(test_on_errors_and_unmatched, h_teardown),
        cmocka_unit_test_teardown(test_in_log_lines, h_teardown),
        cmocka_unit_test_teardown(test_options, h_teardown),
        cmocka_unit_test(test_bad_options),
    };
    int rc;

    h_log_capture_start();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    h_log_capture_stop();
    return rc;
}
