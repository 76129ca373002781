/*
 * test_request_id.c -- the request-ID middleware: a valid X-Request-ID is
 * taken and returned, a forged one (spaces, tabs, 200 characters, bytes
 * past ASCII) is replaced by a fresh random ID and never echoed, CR/LF
 * never gets that far, error and unmatched responses carry it, and
 * Canteen's own log lines about the request (a handler's failure, a slow
 * step, the access log) start with it.
 *
 * Two fixtures. Every test but one runs in process, through the test
 * client (start_tc): the ID is a header in, a header out and a prefix of
 * log lines. test_cr_never_reaches_it sends raw bytes over a real socket
 * (h_start): a bare CR inside a header line is a malformed request, which
 * the test client refuses to send, and the point is that the parser
 * refuses it before any middleware runs.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "app.h" /* cn__app_free_checked */
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

static h_client *start_tc(void **state, const cn_config *cfg, cn_request_id_opts *opts)
{
    h_client *c = h_tc_start(cfg, setup, opts);

    *state = c;
    return c;
}

/* GET target with one header line (or none: NULL) into r. */
static void get(h_client *c, const char *target, const char *line, cn_test_response *r)
{
    h_tc_request(c, "GET", target, (const char *const[]){line, NULL}, NULL, r);
}

static void test_valid_id_is_taken(void **state)
{
    h_client *c = start_tc(state, NULL, NULL);
    cn_test_response r;

    get(c, "/rid/echo", "X-Request-ID: abc-123_XYZ.9", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "abc-123_XYZ.9");
    assert_string_equal(cn_test_header(&r, "x-request-id"), "abc-123_XYZ.9");
    assert_int_equal(cn_test_header_count(&r, "x-request-id"), 1);
    cn_test_response_free(&r);
    /* the name is case-insensitive on the way in */
    get(c, "/rid/echo", "x-request-id: lower", &r);
    assert_string_equal(r.body, "lower");
    cn_test_response_free(&r);
}

static void test_made_when_missing(void **state)
{
    h_client *c = start_tc(state, NULL, NULL);
    cn_test_response a, b;

    get(c, "/rid/echo", NULL, &a);
    get(c, "/rid/echo", NULL, &b);
    assert_true(is_hex32(a.body));
    assert_true(is_hex32(b.body));
    assert_string_equal(cn_test_header(&a, "x-request-id"), a.body);
    /* 128 random bits: two in a row never collide */
    assert_string_not_equal(a.body, b.body);
    cn_test_response_free(&a);
    cn_test_response_free(&b);
}

static void test_forged_ids_are_replaced(void **state)
{
    static const char *const forged[] = {
        "X-Request-ID: two words",
        "X-Request-ID: tab\there",
        "X-Request-ID: caf\xc3\xa9",
        "X-Request-ID: ",
    };
    h_client *c = start_tc(state, NULL, NULL);
    char long_id[256];
    cn_test_response r;

    for (size_t i = 0; i < sizeof forged / sizeof forged[0]; i++) {
        get(c, "/rid/echo", forged[i], &r);
        assert_int_equal(r.status, 200);
        assert_true(is_hex32(r.body));
        assert_string_equal(cn_test_header(&r, "x-request-id"), r.body);
        cn_test_response_free(&r);
    }
    /* 129 characters: one past what cn_req_set_id takes */
    memset(long_id, 'a', 129);
    long_id[129] = 0;
    char *line = h_strf("X-Request-ID: %s", long_id);
    get(c, "/rid/echo", line, &r);
    free(line);
    assert_true(is_hex32(r.body));
    cn_test_response_free(&r);
    /* 128 is fine */
    long_id[128] = 0;
    line = h_strf("X-Request-ID: %s", long_id);
    get(c, "/rid/echo", line, &r);
    free(line);
    assert_string_equal(r.body, long_id);
    cn_test_response_free(&r);
}

/* A CR inside the value never reaches the middleware: the parser refuses
 * the request, and no header of it is echoed. */
static void test_cr_never_reaches_it(void **state)
{
    h_server *s = h_start(NULL, NULL, setup, NULL);
    h_response r;

    *state = s;
    h_request(s, "GET", "/rid/echo", "X-Request-ID: a\rSet-Cookie: x=1\r\n", &r);
    assert_int_equal(r.status, 400);
    assert_null(h_header_get(&r, "x-request-id"));
    assert_null(h_header_get(&r, "set-cookie"));
    h_response_free(&r);
}

static void test_on_errors_and_unmatched(void **state)
{
    h_client *c = start_tc(state, NULL, NULL);
    cn_test_response r;

    get(c, "/rid/fail", "X-Request-ID: fail-1", &r);
    assert_int_equal(r.status, 500);
    assert_string_equal(cn_test_header(&r, "x-request-id"), "fail-1");
    cn_test_response_free(&r);
    get(c, "/rid/nowhere", "X-Request-ID: lost-1", &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(cn_test_header(&r, "x-request-id"), "lost-1");
    cn_test_response_free(&r);
}

static void test_in_log_lines(void **state)
{
    cn_config cfg = h_fast_config();
    h_client *c;
    cn_test_response r;
    char line[1200];

    cfg.access_log = 1;
    c = start_tc(state, &cfg, NULL);
    h_log_reset();
    /* a handler's failure */
    get(c, "/rid/fail", "X-Request-ID: trace-fail", &r);
    cn_test_response_free(&r);
    h_tc_settle(c);
    assert_int_equal(
        h_log_count(CN_LOG_ERROR, "[trace-fail] GET /rid/fail: handler returned CN_EINVAL", NULL),
        1);
    /* a step that held the loop */
    get(c, "/rid/slow", "X-Request-ID: trace-slow", &r);
    cn_test_response_free(&r);
    h_tc_settle(c);
    assert_true(h_log_count(CN_LOG_WARN, "[trace-slow] ", "GET /rid/slow") >= 1);
    /* the access log (uvicorn's line, after the ID) */
    assert_int_equal(
        h_log_count(CN_LOG_INFO, "[trace-slow] INFO:     ", "\"GET /rid/slow HTTP/1.1\" 200 OK"),
        1);
    /* a made ID is in the log too */
    get(c, "/rid/fail", NULL, &r);
    char *want = h_strf("[%s] GET /rid/fail", cn_test_header(&r, "x-request-id"));
    cn_test_response_free(&r);
    h_tc_settle(c);
    assert_int_equal(h_log_count(CN_LOG_ERROR, want, NULL), 1);
    free(want);
    /* a forged one is not */
    get(c, "/rid/fail", "X-Request-ID: forged id", &r);
    cn_test_response_free(&r);
    h_tc_settle(c);
    h_log_find("forged", line, sizeof line);
    assert_string_equal(line, "");
}

static void test_options(void **state)
{
    static cn_request_id_opts opts = {.header = "X-Trace-Id", .ignore_incoming = 1};
    h_client *c = start_tc(state, NULL, &opts);
    cn_test_response r;

    h_tc_request(c, "GET", "/rid/echo",
                 (const char *const[]){"X-Trace-Id: mine", "X-Request-ID: other", NULL}, NULL, &r);
    assert_true(is_hex32(r.body));
    assert_string_equal(cn_test_header(&r, "x-trace-id"), r.body);
    assert_null(cn_test_header(&r, "x-request-id"));
    cn_test_response_free(&r);
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
    assert_int_equal(cn__app_free_checked(app), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_valid_id_is_taken, h_tc_teardown),
        cmocka_unit_test_teardown(test_made_when_missing, h_tc_teardown),
        cmocka_unit_test_teardown(test_forged_ids_are_replaced, h_tc_teardown),
        cmocka_unit_test_teardown(test_cr_never_reaches_it, h_teardown),
        cmocka_unit_test_teardown(test_on_errors_and_unmatched, h_tc_teardown),
        cmocka_unit_test_teardown(test_in_log_lines, h_tc_teardown),
        cmocka_unit_test_teardown(test_options, h_tc_teardown),
        cmocka_unit_test(test_bad_options),
    };
    int rc;

    h_log_capture_start();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    h_log_capture_stop();
    return rc;
}
