/*
 * test_routing.c -- routes over real sockets: 404, 405 + Allow, FastAPI's
 * 422, percent-decoding of path and query parameters, header lookup, JSON
 * errors, handler errors.
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static h_server *start(void **state)
{
    h_server *s = h_start(NULL, NULL, h_test_routes, NULL);
    *state = s;
    return s;
}

/*
 * One request on a fresh connection; check status and exact body. Failure
 * messages are built before anything is freed, and nothing is left
 * allocated when cmocka unwinds (so a failing case leaks nothing).
 */
static void expect(h_server *s, const char *raw, int status, const char *body)
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

static void expect_get(h_server *s, const char *target, int status, const char *body)
{
    char raw[4096];

    snprintf(raw, sizeof raw, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", target);
    expect(s, raw, status, body);
}

static void test_404(void **state)
{
    h_server *s = start(state);
    h_response r;

    h_roundtrip(s, "GET /does/not/exist HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "{\"detail\":\"Not Found\"}");
    assert_string_equal(h_header_get(&r, "content-type"), "application/json");
    assert_false(h_connection_has(&r, "close")); /* a 404 keeps the connection */
    h_response_free(&r);
    expect_get(s, "/", 404, "{\"detail\":\"Not Found\"}");
    expect_get(s, "/healthz", 404, "{\"detail\":\"Not Found\"}");
    expect_get(s, "/health/extra", 404, "{\"detail\":\"Not Found\"}");
    expect_get(s, "/users", 404, "{\"detail\":\"Not Found\"}");
    expect_get(s, "/users/1/2", 404, "{\"detail\":\"Not Found\"}");
    /* handler-raised 404 with its own detail */
    expect_get(s, "/users/0", 404, "{\"detail\":\"User not found\"}");
    expect_get(s, "/users/-4", 404, "{\"detail\":\"User not found\"}");
}

static void test_405_allow(void **state)
{
    h_server *s = start(state);
    h_response r;

    h_roundtrip(s, "DELETE /health HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(r.body, "{\"detail\":\"Method Not Allowed\"}");
    assert_string_equal(h_header_get(&r, "allow"), "GET, HEAD");
    h_response_free(&r);

    h_roundtrip(s, "GET /echo HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(r.body, "{\"detail\":\"Method Not Allowed\"}");
    assert_string_equal(h_header_get(&r, "allow"), "POST");
    h_response_free(&r);

    h_roundtrip(s, "PUT /users/7 HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(h_header_get(&r, "allow"), "GET, HEAD");
    h_response_free(&r);
}

static void test_422_int_param(void **state)
{
    h_server *s = start(state);
    h_response r;

    h_roundtrip(s, "GET /users/abc HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 422);
    assert_string_equal(h_header_get(&r, "content-type"), "application/json");
    assert_string_equal(r.body, "{\"detail\":[{\"type\":\"int_parsing\",\"loc\":[\"path\",\"id\"],"
                                "\"msg\":\"Input should be a valid integer, unable to parse "
                                "string as an integer\",\"input\":\"abc\"}]}");
    h_response_free(&r);
    /* the input is reported decoded and JSON-escaped */
    expect_get(s, "/users/a%22b", 422,
               "{\"detail\":[{\"type\":\"int_parsing\",\"loc\":[\"path\",\"id\"],"
               "\"msg\":\"Input should be a valid integer, unable to parse string as an "
               "integer\",\"input\":\"a\\\"b\"}]}");
    expect_get(s, "/users/1.5", 422, NULL);
    expect_get(s, "/users/99999999999999999999", 422, NULL);
    expect_get(s, "/users/9223372036854775807", 200, NULL);
    expect_get(s, "/users/123456789012", 200,
               "{\"id\":123456789012,\"name\":\"user123456789012\"}");
}

static void test_path_param_decoding(void **state)
{
    h_server *s = start(state);

    expect_get(s, "/t/param/plain", 200, "plain");
    expect_get(s, "/t/param/hello%20world", 200, "hello world");
    expect_get(s, "/t/param/caf%C3%A9", 200, "caf\xc3\xa9");
    expect_get(s, "/t/param/a+b", 200, "a+b"); /* '+' is literal in a path */
    expect_get(s, "/t/param/%7Euser", 200, "~user");
    /* literal segments are matched after decoding too */
    expect_get(s, "/%68ealth", 200, "{\"status\":\"ok\"}");
    /* bad escapes and NUL are rejected */
    expect_get(s, "/t/param/%zz", 400, NULL);
    expect_get(s, "/t/param/%4", 400, NULL);
    expect_get(s, "/t/param/a%00b", 400, NULL);
}

/*
 * Percent-decoding happens exactly once: "%25" is a literal '%'. (The path
 * is decoded by cn__req_finish_head and the router decodes it again.)
 */
static void test_path_decoded_once(void **state)
{
    h_server *s = start(state);

    expect_get(s, "/t/param/100%25", 200, "100%");
    expect_get(s, "/t/param/%2541", 200, "%41");
    expect_get(s, "/t/path/a%2520b", 200,
               "{\"path\":\"/t/path/a%20b\",\"target\":\"/t/path/a%2520b\",\"rest\":\"a%20b\"}");
    /* a double-encoded path must not reach a route: "/heal%74h" is not "/health" */
    expect_get(s, "/heal%2574h", 404, "{\"detail\":\"Not Found\"}");
}

static void test_path_and_target(void **state)
{
    h_server *s = start(state);

    expect_get(s, "/t/path/a%20b?x=1", 200,
               "{\"path\":\"/t/path/a b\",\"target\":\"/t/path/a%20b?x=1\",\"rest\":\"a b\"}");
}

static void test_query_params(void **state)
{
    h_server *s = start(state);

    expect_get(s, "/t/query?name=J%C3%BCrgen+M&flag&n=42&x=a%26b", 200,
               "{\"name\":\"J\xc3\xbcrgen M\",\"flag\":\"\",\"missing\":null,\"x\":\"a&b\","
               "\"n\":42}");
    /* first of repeated, empty value, encoded names, int errors */
    expect_get(s, "/t/query?name=first&name=second&x=&n=abc", 200,
               "{\"name\":\"first\",\"flag\":null,\"missing\":null,\"x\":\"\","
               "\"n\":\"CN_EINVAL\"}");
    expect_get(s, "/t/query?%6Eame=enc&n=99999999999999999999", 200,
               "{\"name\":\"enc\",\"flag\":null,\"missing\":null,\"x\":null,\"n\":\"CN_ERANGE\"}");
    expect_get(s, "/t/query", 200,
               "{\"name\":null,\"flag\":null,\"missing\":null,\"x\":null,\"n\":\"CN_ENOENT\"}");
    expect_get(s, "/t/query?x=%zz&n=-7", 200,
               "{\"name\":null,\"flag\":null,\"missing\":null,\"x\":null,\"n\":-7}");
}

static void test_header_lookup_case_insensitive(void **state)
{
    h_server *s = start(state);

    expect(s,
           "GET /t/header HTTP/1.1\r\nHost: t\r\nx-CuStOm-HeAdEr: Value 1\r\n"
           "X-Dup: one\r\nx-dup: two\r\n\r\n",
           200,
           "{\"lower\":\"Value 1\",\"upper\":\"Value 1\",\"mixed\":\"Value 1\",\"first\":\"one\","
           "\"count\":4}");
}

/* Optional whitespace around a field value is not part of it (RFC 9110 5.5). */
static void test_header_value_ows_trimmed(void **state)
{
    h_server *s = start(state);

    expect(s, "GET /t/header HTTP/1.1\r\nHost: t\r\nX-Custom-Header:value\r\n\r\n", 200,
           "{\"lower\":\"value\",\"upper\":\"value\",\"mixed\":\"value\",\"first\":null,"
           "\"count\":2}");
    expect(s, "GET /t/header HTTP/1.1\r\nHost: t\r\nX-Custom-Header:   padded \t \r\n\r\n", 200,
           "{\"lower\":\"padded\",\"upper\":\"padded\",\"mixed\":\"padded\",\"first\":null,"
           "\"count\":2}");
}

static void test_echo_json_errors(void **state)
{
    h_server *s = start(state);
    char *deep, *raw;
    size_t n = 200;

    expect(s, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 8\r\n\r\n{\"a\": 1,", 400,
           "{\"detail\":\"JSON decode error\"}");
    expect(s, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\n{}x", 400,
           "{\"detail\":\"JSON decode error\"}");
    expect(s, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", 400,
           "{\"detail\":\"JSON decode error\"}");
    expect(s, "POST /echo HTTP/1.1\r\nHost: t\r\n\r\n", 400, "{\"detail\":\"JSON decode error\"}");
    /* nesting deeper than CN_JSON_MAX_DEPTH */
    deep = malloc(2 * n + 1);
    assert_non_null(deep);
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    deep[2 * n] = 0;
    raw = h_strf("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n%s", 2 * n, deep);
    expect(s, raw, 400, "{\"detail\":\"JSON nesting too deep\"}");
    free(raw);
    free(deep);
    /* and a good one after all that */
    expect(s, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 13\r\n\r\n {\"ok\":true} ", 200,
           "{\"ok\":true}");
}

static void test_handler_errors(void **state)
{
    h_server *s = start(state);

    expect_get(s, "/t/fail", 500, "{\"detail\":\"Internal Server Error\"}");
    expect_get(s, "/t/none", 200, "null");
    h_assert_healthy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_404, h_teardown),
        cmocka_unit_test_teardown(test_405_allow, h_teardown),
        cmocka_unit_test_teardown(test_422_int_param, h_teardown),
        cmocka_unit_test_teardown(test_path_param_decoding, h_teardown),
        cmocka_unit_test_teardown(test_path_decoded_once, h_teardown),
        cmocka_unit_test_teardown(test_path_and_target, h_teardown),
        cmocka_unit_test_teardown(test_query_params, h_teardown),
        cmocka_unit_test_teardown(test_header_lookup_case_insensitive, h_teardown),
        cmocka_unit_test_teardown(test_header_value_ows_trimmed, h_teardown),
        cmocka_unit_test_teardown(test_echo_json_errors, h_teardown),
        cmocka_unit_test_teardown(test_handler_errors, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
