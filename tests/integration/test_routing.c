/*
 * test_routing.c -- routes: 404, 405 + Allow, FastAPI's 422,
 * percent-decoding of path and query parameters, header lookup, JSON
 * errors, handler errors.
 *
 * Two fixtures. The routing outcomes run in process, through the test
 * client (start_tc): a status, headers and a body, whoever asks. Two tests
 * send raw bytes over a real socket (start_socket), because the bytes are
 * their point and the test client would write them otherwise: header
 * values with no space or extra whitespace after the colon
 * (test_header_value_ows_trimmed), and a POST with no Content-Length at all
 * (test_echo_without_length; the client always sends one).
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "json.h"

static h_client *start_tc(void **state)
{
    h_client *c = h_tc_start(NULL, h_test_routes, NULL);

    *state = c;
    return c;
}

static h_server *start_socket(void **state)
{
    h_server *s = h_start(NULL, NULL, h_test_routes, NULL);

    *state = s;
    return s;
}

/*
 * One request; check status and exact body (want NULL: any body), and the
 * standard headers. Failure messages are built before anything is freed,
 * and nothing is left allocated when cmocka unwinds (so a failing case
 * leaks nothing).
 */
static void expect(h_client *c, const char *method, const char *target, const char *const *headers,
                   const char *body, int status, const char *want)
{
    cn_test_response r;
    char why[1024];

    why[0] = 0;
    h_tc_request(c, method, target, headers, body, &r);
    if (r.status != status)
        snprintf(why, sizeof why, "%s %.300s -> status %d (body %.300s), expected %d", method,
                 target, r.status, r.body, status);
    else if (want && strcmp(r.body, want) != 0)
        snprintf(why, sizeof why, "%s %.300s -> body %.300s, expected %.300s", method, target,
                 r.body, want);
    else
        h_tc_assert_standard_headers(&r, false);
    cn_test_response_free(&r);
    if (why[0])
        fail_msg("%s", why);
}

static void expect_get(h_client *c, const char *target, int status, const char *want)
{
    expect(c, "GET", target, NULL, NULL, status, want);
}

/* POST /echo with this body (Content-Length added). */
static void expect_echo(h_client *c, const char *body, int status, const char *want)
{
    expect(c, "POST", "/echo", NULL, body, status, want);
}

/* As expect, for raw bytes on a fresh socket connection. */
static void expect_raw(h_server *s, const char *raw, int status, const char *body)
{
    h_response r;
    char why[1024];

    why[0] = 0;
    h_roundtrip(s, raw, &r);
    if (r.status != status)
        snprintf(why, sizeof why, "%.300s-> status %d (body %.300s), expected %d", raw, r.status,
                 r.body, status);
    else if (body && strcmp(r.body, body) != 0)
        snprintf(why, sizeof why, "%.300s-> body %.300s, expected %.300s", raw, r.body, body);
    else
        h_assert_standard_headers(&r, false);
    h_response_free(&r);
    if (why[0])
        fail_msg("%s", why);
}

/* A Connection header, if any, does not ask for the connection to close. */
static bool keeps_connection(const cn_test_response *r)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->header_names[i].ptr, "connection") == 0 &&
            strcasestr(r->header_values[i].ptr, "close"))
            return false;
    return true;
}

static void test_404(void **state)
{
    h_client *c = start_tc(state);
    cn_test_response r;

    h_tc_request(c, "GET", "/does/not/exist", NULL, NULL, &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "{\"detail\":\"Not Found\"}");
    assert_string_equal(cn_test_header(&r, "content-type"), "application/json");
    assert_true(keeps_connection(&r)); /* a 404 keeps the connection */
    cn_test_response_free(&r);
    expect_get(c, "/", 404, "{\"detail\":\"Not Found\"}");
    expect_get(c, "/healthz", 404, "{\"detail\":\"Not Found\"}");
    expect_get(c, "/health/extra", 404, "{\"detail\":\"Not Found\"}");
    expect_get(c, "/users", 404, "{\"detail\":\"Not Found\"}");
    expect_get(c, "/users/1/2", 404, "{\"detail\":\"Not Found\"}");
    /* handler-raised 404 with its own detail */
    expect_get(c, "/users/0", 404, "{\"detail\":\"User not found\"}");
    expect_get(c, "/users/-4", 404, "{\"detail\":\"User not found\"}");
}

static void test_405_allow(void **state)
{
    h_client *c = start_tc(state);
    cn_test_response r;

    h_tc_request(c, "DELETE", "/health", NULL, NULL, &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(r.body, "{\"detail\":\"Method Not Allowed\"}");
    assert_string_equal(cn_test_header(&r, "allow"), "GET, HEAD");
    cn_test_response_free(&r);

    h_tc_request(c, "GET", "/echo", NULL, NULL, &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(r.body, "{\"detail\":\"Method Not Allowed\"}");
    assert_string_equal(cn_test_header(&r, "allow"), "POST");
    cn_test_response_free(&r);

    h_tc_request(c, "PUT", "/users/7", (const char *const[]){"Content-Length: 0", NULL}, NULL, &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(cn_test_header(&r, "allow"), "GET, HEAD");
    cn_test_response_free(&r);
}

static void test_422_int_param(void **state)
{
    h_client *c = start_tc(state);
    cn_test_response r;

    h_tc_request(c, "GET", "/users/abc", NULL, NULL, &r);
    assert_int_equal(r.status, 422);
    assert_string_equal(cn_test_header(&r, "content-type"), "application/json");
    assert_string_equal(r.body, "{\"detail\":[{\"type\":\"int_parsing\",\"loc\":[\"path\",\"id\"],"
                                "\"msg\":\"Input should be a valid integer, unable to parse "
                                "string as an integer\",\"input\":\"abc\"}]}");
    cn_test_response_free(&r);
    /* the input is reported decoded and JSON-escaped */
    expect_get(c, "/users/a%22b", 422,
               "{\"detail\":[{\"type\":\"int_parsing\",\"loc\":[\"path\",\"id\"],"
               "\"msg\":\"Input should be a valid integer, unable to parse string as an "
               "integer\",\"input\":\"a\\\"b\"}]}");
    expect_get(c, "/users/1.5", 422, NULL);
    expect_get(c, "/users/99999999999999999999", 422, NULL);
    expect_get(c, "/users/9223372036854775807", 200, NULL);
    expect_get(c, "/users/123456789012", 200,
               "{\"id\":123456789012,\"name\":\"user123456789012\"}");
}

static void test_path_param_decoding(void **state)
{
    h_client *c = start_tc(state);

    expect_get(c, "/t/param/plain", 200, "plain");
    expect_get(c, "/t/param/hello%20world", 200, "hello world");
    expect_get(c, "/t/param/caf%C3%A9", 200, "caf\xc3\xa9");
    expect_get(c, "/t/param/a+b", 200, "a+b"); /* '+' is literal in a path */
    expect_get(c, "/t/param/%7Euser", 200, "~user");
    /* literal segments are matched after decoding too */
    expect_get(c, "/%68ealth", 200, "{\"status\":\"ok\"}");
    /* bad escapes and NUL are rejected */
    expect_get(c, "/t/param/%zz", 400, NULL);
    expect_get(c, "/t/param/%4", 400, NULL);
    expect_get(c, "/t/param/a%00b", 400, NULL);
}

/*
 * Percent-decoding happens exactly once: "%25" is a literal '%'. (The path
 * is decoded by cn__req_finish_head and the router decodes it again.)
 */
static void test_path_decoded_once(void **state)
{
    h_client *c = start_tc(state);

    expect_get(c, "/t/param/100%25", 200, "100%");
    expect_get(c, "/t/param/%2541", 200, "%41");
    expect_get(c, "/t/path/a%2520b", 200,
               "{\"path\":\"/t/path/a%20b\",\"target\":\"/t/path/a%2520b\",\"rest\":\"a%20b\"}");
    /* a double-encoded path must not reach a route: "/heal%74h" is not "/health" */
    expect_get(c, "/heal%2574h", 404, "{\"detail\":\"Not Found\"}");
}

static void test_path_and_target(void **state)
{
    h_client *c = start_tc(state);

    expect_get(c, "/t/path/a%20b?x=1", 200,
               "{\"path\":\"/t/path/a b\",\"target\":\"/t/path/a%20b?x=1\",\"rest\":\"a b\"}");
}

static void test_query_params(void **state)
{
    h_client *c = start_tc(state);

    expect_get(c, "/t/query?name=J%C3%BCrgen+M&flag&n=42&x=a%26b", 200,
               "{\"name\":\"J\xc3\xbcrgen M\",\"flag\":\"\",\"missing\":null,\"x\":\"a&b\","
               "\"n\":42}");
    /* first of repeated, empty value, encoded names, int errors */
    expect_get(c, "/t/query?name=first&name=second&x=&n=abc", 200,
               "{\"name\":\"first\",\"flag\":null,\"missing\":null,\"x\":\"\","
               "\"n\":\"CN_EINVAL\"}");
    expect_get(c, "/t/query?%6Eame=enc&n=99999999999999999999", 200,
               "{\"name\":\"enc\",\"flag\":null,\"missing\":null,\"x\":null,\"n\":\"CN_ERANGE\"}");
    expect_get(c, "/t/query", 200,
               "{\"name\":null,\"flag\":null,\"missing\":null,\"x\":null,\"n\":\"CN_ENOENT\"}");
    expect_get(c, "/t/query?x=%zz&n=-7", 200,
               "{\"name\":null,\"flag\":null,\"missing\":null,\"x\":null,\"n\":-7}");
}

static void test_header_lookup_case_insensitive(void **state)
{
    h_client *c = start_tc(state);

    expect(c, "GET", "/t/header",
           (const char *const[]){"x-CuStOm-HeAdEr: Value 1", "X-Dup: one", "x-dup: two", NULL},
           NULL, 200,
           "{\"lower\":\"Value 1\",\"upper\":\"Value 1\",\"mixed\":\"Value 1\",\"first\":\"one\","
           "\"count\":4}");
}

/* Optional whitespace around a field value is not part of it (RFC 9110 5.5). */
static void test_header_value_ows_trimmed(void **state)
{
    h_server *s = start_socket(state);

    expect_raw(s, "GET /t/header HTTP/1.1\r\nHost: t\r\nX-Custom-Header:value\r\n\r\n", 200,
               "{\"lower\":\"value\",\"upper\":\"value\",\"mixed\":\"value\",\"first\":null,"
               "\"count\":2}");
    expect_raw(s, "GET /t/header HTTP/1.1\r\nHost: t\r\nX-Custom-Header:   padded \t \r\n\r\n", 200,
               "{\"lower\":\"padded\",\"upper\":\"padded\",\"mixed\":\"padded\",\"first\":null,"
               "\"count\":2}");
}

static void test_echo_json_errors(void **state)
{
    h_client *c = start_tc(state);
    char *deep;
    size_t n = 200;

    expect_echo(c, "{\"a\": 1,", 400, "{\"detail\":\"JSON decode error\"}");
    expect_echo(c, "{}x", 400, "{\"detail\":\"JSON decode error\"}");
    expect_echo(c, "", 400, "{\"detail\":\"JSON decode error\"}");
    /* nesting deeper than CN_JSON_MAX_DEPTH */
    deep = malloc(2 * n + 1);
    assert_non_null(deep);
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    deep[2 * n] = 0;
    expect_echo(c, deep, 400, "{\"detail\":\"JSON nesting too deep\"}");
    free(deep);
    /* and a good one after all that */
    expect_echo(c, " {\"ok\":true} ", 200, "{\"ok\":true}");
}

/* What Python's json would take and Canteen refuses, and what is not UTF-8:
 * each a 400, never echoed back altered. */
static void test_echo_refuses_what_it_cannot_carry(void **state)
{
    static const char *const bodies[] = {
        "[\"a\\u0000b\"]",        /* would end the string at the NUL */
        "[1e999]",                /* would come back as null */
        "{\"a\": -1e400}",        /* the same */
        "[NaN]",                  /* not JSON */
        "[Infinity]",             /* not JSON */
        "[\"\\ud800\"]",          /* an unpaired surrogate */
        "[\"\\udc00\\ud800\"]",   /* the pair the wrong way round */
        "[\"\xff\"]",             /* not UTF-8 */
        "[\"\xc0\xaf\"]",         /* an overlong form of '/' */
        "[\"\xed\xa0\x80\"]",     /* a surrogate encoded in UTF-8 */
        "[\"\xf4\x90\x80\x80\"]", /* past U+10FFFF */
    };
    h_client *c = start_tc(state);
    char *deep = malloc(400001);

    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
        expect_echo(c, bodies[i], 400, "{\"detail\":\"JSON decode error\"}");
    /* far deeper than any coroutine stack would survive a recursive parse */
    assert_non_null(deep);
    memset(deep, '[', 200000);
    memset(deep + 200000, ']', 200000);
    deep[400000] = 0;
    expect_echo(c, deep, 400, "{\"detail\":\"JSON nesting too deep\"}");
    free(deep);
    /* what is refused is only what has to be: pairs, escapes, big finite numbers */
    expect_echo(c, "[\"\\ud83d\\ude00 \\u00e9\",1e308,-0.0,1e-999]", 200,
                "[\"\xf0\x9f\x98\x80 \xc3\xa9\",1e+308,-0,0]");
    h_tc_assert_healthy(c);
}

/* A body big enough to be parsed, printed and deleted on the pool comes
 * back the same as a small one would. */
static void test_echo_big_body_through_the_pool(void **state)
{
    h_client *c = start_tc(state);
    size_t n = 40000, len = 0;
    char *body = malloc(n * 12 + 16);
    cn_pool_stats before, after;
    cn_test_response r;

    assert_non_null(body);
    body[len++] = '[';
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(body + len, "%s{\"i\":%zu}", i ? "," : "", i);
    body[len++] = ']';
    body[len] = 0;
    assert_true(len > CN__JSON_POOL_BYTES);
    cn_app_pool_stats(c->app, &before);
    h_tc_request(c, "POST", "/echo", NULL, body, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, body);
    cn_test_response_free(&r);
    cn_app_pool_stats(c->app, &after);
    /* the parse, the print and the delete */
    assert_true(after.submitted - before.submitted >= 3);
    free(body);
    h_tc_assert_healthy(c);
}

/* A POST with no Content-Length has no body: the same error as an empty one. */
static void test_echo_without_length(void **state)
{
    h_server *s = start_socket(state);

    expect_raw(s, "POST /echo HTTP/1.1\r\nHost: t\r\n\r\n", 400,
               "{\"detail\":\"JSON decode error\"}");
}

static void test_handler_errors(void **state)
{
    h_client *c = start_tc(state);

    expect_get(c, "/t/fail", 500, "{\"detail\":\"Internal Server Error\"}");
    expect_get(c, "/t/none", 200, "null");
    h_tc_assert_healthy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_404, h_tc_teardown),
        cmocka_unit_test_teardown(test_405_allow, h_tc_teardown),
        cmocka_unit_test_teardown(test_422_int_param, h_tc_teardown),
        cmocka_unit_test_teardown(test_path_param_decoding, h_tc_teardown),
        cmocka_unit_test_teardown(test_path_decoded_once, h_tc_teardown),
        cmocka_unit_test_teardown(test_path_and_target, h_tc_teardown),
        cmocka_unit_test_teardown(test_query_params, h_tc_teardown),
        cmocka_unit_test_teardown(test_header_lookup_case_insensitive, h_tc_teardown),
        cmocka_unit_test_teardown(test_header_value_ows_trimmed, h_teardown),
        cmocka_unit_test_teardown(test_echo_json_errors, h_tc_teardown),
        cmocka_unit_test_teardown(test_echo_without_length, h_teardown),
        cmocka_unit_test_teardown(test_echo_refuses_what_it_cannot_carry, h_tc_teardown),
        cmocka_unit_test_teardown(test_echo_big_body_through_the_pool, h_tc_teardown),
        cmocka_unit_test_teardown(test_handler_errors, h_tc_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
