/*
 * test_framing.c -- request smuggling and malformed messages. Each bad
 * request carries a second request after it (SMUGGLED); the bad one must get
 * its error status with Connection: close, the socket must reach EOF without
 * a second response, and a fresh connection must still be served.
 *
 * Each test runs all its cases and reports every one that failed.
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define SMUGGLED "GET /users/1 HTTP/1.1\r\nHost: t\r\n\r\n"

static h_server *start(void **state)
{
    h_server *s = h_start(NULL, NULL, h_test_routes, NULL);
    *state = s;
    return s;
}

#define POST_RAW "POST /t/raw HTTP/1.1\r\nHost: t\r\n"
#define CHUNKED POST_RAW "Transfer-Encoding: chunked\r\n\r\n"

static void test_content_length_conflicts(void **state)
{
    static const h_bad_case cases[] = {
        H_CASE("CL then TE",
               POST_RAW "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "0\r\n\r\n" SMUGGLED,
               400),
        H_CASE("TE then CL",
               POST_RAW "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
                        "0\r\n\r\n" SMUGGLED,
               400),
        H_CASE("two different CL",
               POST_RAW "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!" SMUGGLED, 400),
        H_CASE("two equal CL",
               POST_RAW "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello" SMUGGLED, 400),
        H_CASE("CL list", POST_RAW "Content-Length: 5, 5\r\n\r\nhello" SMUGGLED, 400),
        H_CASE("CL negative", POST_RAW "Content-Length: -1\r\n\r\n" SMUGGLED, 400),
        H_CASE("CL plus sign", POST_RAW "Content-Length: +5\r\n\r\nhello" SMUGGLED, 400),
        H_CASE("CL not a number", POST_RAW "Content-Length: abc\r\n\r\n" SMUGGLED, 400),
        H_CASE("CL overflow", POST_RAW "Content-Length: 99999999999999999999999\r\n\r\n" SMUGGLED,
               400),
        H_CASE("CL hex", POST_RAW "Content-Length: 0x5\r\n\r\nhello" SMUGGLED, 400),
    };
    H_EXPECT_ALL_REJECTED(start(state), cases);
}

static void test_transfer_encoding_invalid(void **state)
{
    static const h_bad_case cases[] = {
        H_CASE("chunked not last",
               POST_RAW "Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n" SMUGGLED, 400),
        H_CASE("gzip only", POST_RAW "Transfer-Encoding: gzip\r\n\r\n0\r\n\r\n" SMUGGLED, 400),
        H_CASE("chunked twice",
               POST_RAW "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "0\r\n\r\n" SMUGGLED,
               400),
        H_CASE("xchunked", POST_RAW "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" SMUGGLED, 400),
        H_CASE("space before colon",
               POST_RAW "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n" SMUGGLED, 400),
        H_CASE("identity with CL",
               POST_RAW "Transfer-Encoding: identity\r\nContent-Length: 5\r\n\r\n"
                        "hello" SMUGGLED,
               400),
    };
    H_EXPECT_ALL_REJECTED(start(state), cases);
}

/*
 * RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty
 * framing; the server must not read on after it. Each case asks to keep the
 * connection and carries a request after the body, which must never be
 * answered.
 */
#define POST10 "POST /t/raw HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\n"

static void test_transfer_encoding_in_http10(void **state)
{
    static const h_bad_case cases[] = {
        H_CASE("1.0 chunked keep-alive",
               POST10 "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" SMUGGLED, 400),
        H_CASE("1.0 chunked, body is a request",
               POST10 "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" SMUGGLED, 400),
        H_CASE("1.0 chunked without keep-alive",
               "POST /t/raw HTTP/1.0\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
               "0\r\n\r\n" SMUGGLED,
               400),
        H_CASE("1.0 chunked and CL",
               POST10 "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello" SMUGGLED, 400),
        H_CASE("1.0 gzip", POST10 "Transfer-Encoding: gzip\r\n\r\n" SMUGGLED, 400),
    };
    H_EXPECT_ALL_REJECTED(start(state), cases);
}

static void test_bad_chunk_size(void **state)
{
    static const h_bad_case cases[] = {
        H_CASE("zz", CHUNKED "zz\r\n" SMUGGLED, 400),
        H_CASE("-1", CHUNKED "-1\r\n" SMUGGLED, 400),
        H_CASE("overflowing hex", CHUNKED "fffffffffffffffff1\r\n" SMUGGLED, 400),
        H_CASE("0x prefix", CHUNKED "0x5\r\nhello\r\n0\r\n\r\n" SMUGGLED, 400),
        H_CASE("space after size", CHUNKED "5 \r\nhello\r\n0\r\n\r\n" SMUGGLED, 400),
        H_CASE("size ends in bare LF", CHUNKED "5\nhello\r\n0\r\n\r\n" SMUGGLED, 400),
        H_CASE("size ends in bare CR", CHUNKED "5\rhello\r\n0\r\n\r\n" SMUGGLED, 400),
        H_CASE("last chunk bare LF", CHUNKED "0\n\n" SMUGGLED, 400),
        H_CASE("data ends in bare LF", CHUNKED "5\r\nhello\n0\r\n\r\n" SMUGGLED, 400),
    };
    H_EXPECT_ALL_REJECTED(start(state), cases);
}

/*
 * Chunk data must be followed by CRLF. llhttp only checks this in strict
 * mode (LLHTTP_STRICT_MODE=1); built loose, it skips two bytes, whatever they
 * are, so "helloXX0" reads as "hello" + end: a proxy that disagrees about
 * where the body ends can smuggle a request through.
 */
static void test_chunk_data_without_crlf(void **state)
{
    static const h_bad_case cases[] = {
        H_CASE("XX instead of CRLF", CHUNKED "5\r\nhelloXX0\r\n\r\n" SMUGGLED, 400),
        H_CASE("data longer than size", CHUNKED "3\r\nhello\r\n0\r\n\r\n" SMUGGLED, 400),
    };
    H_EXPECT_ALL_REJECTED(start(state), cases);
}

static void test_host_missing_or_repeated(void **state)
{
    static const h_bad_case cases[] = {
        H_CASE("no Host in HTTP/1.1", "GET /health HTTP/1.1\r\n\r\n" SMUGGLED, 400),
        H_CASE("two Host", "GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" SMUGGLED, 400),
        H_CASE("Host and HOST", "GET /health HTTP/1.1\r\nHost: a\r\nHOST: a\r\n\r\n" SMUGGLED, 400),
    };
    h_server *s = start(state);
    h_response r;

    H_EXPECT_ALL_REJECTED(s, cases);
    /* HTTP/1.0 needs no Host */
    h_roundtrip(s, "GET /health HTTP/1.0\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    h_response_free(&r);
}

static void test_host_invalid(void **state)
{
    static const h_bad_case cases[] = {
        H_CASE("space", "GET /health HTTP/1.1\r\nHost: a b\r\n\r\n" SMUGGLED, 400),
        H_CASE("slash", "GET /health HTTP/1.1\r\nHost: x/y\r\n\r\n" SMUGGLED, 400),
        H_CASE("userinfo", "GET /health HTTP/1.1\r\nHost: u@h\r\n\r\n" SMUGGLED, 400),
        H_CASE("unclosed IPv6", "GET /health HTTP/1.1\r\nHost: [::1\r\n\r\n" SMUGGLED, 400),
        H_CASE("bad port", "GET /health HTTP/1.1\r\nHost: a:8x\r\n\r\n" SMUGGLED, 400),
        H_CASE("two ports", "GET /health HTTP/1.1\r\nHost: a:1:2\r\n\r\n" SMUGGLED, 400),
        H_CASE("junk after IPv6", "GET /health HTTP/1.1\r\nHost: [::1]x\r\n\r\n" SMUGGLED, 400),
    };
    static const char *const good[] = {
        "example.com", "example.com:8080", "127.0.0.1:1", "[::1]", "[::1]:8080", "",
    };
    h_server *s = start(state);

    H_EXPECT_ALL_REJECTED(s, cases);
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char *raw = h_strf("GET /health HTTP/1.1\r\nHost: %s\r\n\r\n", good[i]);
        h_response r;
        h_roundtrip(s, raw, &r);
        if (r.status != 200)
            fail_msg("Host \"%s\" refused with %d", good[i], r.status);
        h_response_free(&r);
        free(raw);
    }
}

static void test_request_line_malformed(void **state)
{
    static const h_bad_case cases[] = {
        H_CASE("extra word", "GET /health HTTP/1.1 x\r\nHost: t\r\n\r\n" SMUGGLED, 400),
        H_CASE("space in target", "GET /he alth HTTP/1.1\r\nHost: t\r\n\r\n" SMUGGLED, 400),
        H_CASE("control in target", "GET /he\x01lth HTTP/1.1\r\nHost: t\r\n\r\n" SMUGGLED, 400),
        H_CASE("lower-case method", "get /health HTTP/1.1\r\nHost: t\r\n\r\n" SMUGGLED, 400),
        H_CASE("unknown method", "FOO /health HTTP/1.1\r\nHost: t\r\n\r\n" SMUGGLED, 400),
        H_CASE("bad version", "GET /health HTTP/1.x\r\nHost: t\r\n\r\n" SMUGGLED, 400),
        H_CASE("lower-case protocol", "GET /health http/1.1\r\nHost: t\r\n\r\n" SMUGGLED, 400),
        H_CASE("HTTP/1.x.1", "GET /health HTTP/1.1.1\r\nHost: t\r\n\r\n" SMUGGLED, 400),
        H_CASE("tab separator", "GET\t/health HTTP/1.1\r\nHost: t\r\n\r\n" SMUGGLED, 400),
        H_CASE("HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" SMUGGLED, 400),
        H_CASE("binary junk", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" SMUGGLED, 400),
        /* parsed, but a version we do not speak (HTTP/1.2 is served as
         * 1.1: test_protocol.c) */
        H_CASE("HTTP/2.0", "GET /health HTTP/2.0\r\nHost: t\r\n\r\n" SMUGGLED, 505),
        H_CASE("HTTP/0.9 version", "GET /health HTTP/0.9\r\nHost: t\r\n\r\n" SMUGGLED, 505),
        /* llhttp reads a request line without a version as HTTP/0.9 */
        H_CASE("no version", "GET /health\r\nHost: t\r\n\r\n" SMUGGLED, 505),
    };
    H_EXPECT_ALL_REJECTED(start(state), cases);
}

static void test_header_invalid(void **state)
{
    static const h_bad_case cases[] = {
        H_CASE("paren in name", "GET /health HTTP/1.1\r\nHost: t\r\nX(Bad): v\r\n\r\n" SMUGGLED,
               400),
        H_CASE("control in name", "GET /health HTTP/1.1\r\nHost: t\r\nX\x01: v\r\n\r\n" SMUGGLED,
               400),
        H_CASE("no colon", "GET /health HTTP/1.1\r\nHost: t\r\nNoColon\r\n\r\n" SMUGGLED, 400),
        H_CASE("NUL in value", "GET /health HTTP/1.1\r\nHost: t\r\nX: a\0b\r\n\r\n" SMUGGLED, 400),
        H_CASE("control in value", "GET /health HTTP/1.1\r\nHost: t\r\nX: a\x01b\r\n\r\n" SMUGGLED,
               400),
        H_CASE("DEL in value",
               "GET /health HTTP/1.1\r\nHost: t\r\nX: a\x7f"
               "b\r\n\r\n" SMUGGLED,
               400),
        H_CASE("CR in value", "GET /health HTTP/1.1\r\nHost: t\r\nX: a\rb\r\n\r\n" SMUGGLED, 400),
        H_CASE("whitespace before first header",
               "GET /health HTTP/1.1\r\n Host: t\r\n\r\n" SMUGGLED, 400),
    };
    H_EXPECT_ALL_REJECTED(start(state), cases);
}

/* RFC 9112 5.1: whitespace between a field name and the colon MUST get 400.
 * llhttp rejects "X-Bad : v" but, built loose, accepts "X Bad: v". */
static void test_header_name_with_space(void **state)
{
    static const h_bad_case cases[] = {
        H_CASE("space before colon",
               "GET /health HTTP/1.1\r\nHost: t\r\nX-Bad : v\r\n\r\n" SMUGGLED, 400),
        H_CASE("space inside name", "GET /health HTTP/1.1\r\nHost: t\r\nX Bad: v\r\n\r\n" SMUGGLED,
               400),
    };
    H_EXPECT_ALL_REJECTED(start(state), cases);
}

/* A field name is a token (1*tchar): ": v" is not a header. */
static void test_header_name_empty(void **state)
{
    static const h_bad_case cases[] = {
        H_CASE("empty name", "GET /health HTTP/1.1\r\nHost: t\r\n: v\r\n\r\n" SMUGGLED, 400),
    };
    H_EXPECT_ALL_REJECTED(start(state), cases);
}

/* Bare LF / bare CR inside the head are refused (strict line endings). */
static void test_bare_lf_and_cr(void **state)
{
    static const h_bad_case cases[] = {
        H_CASE("LF-only lines", "GET /health HTTP/1.1\nHost: t\n\n" SMUGGLED, 400),
        H_CASE("LF after a header", "GET /health HTTP/1.1\r\nHost: t\nX: y\r\n\r\n" SMUGGLED, 400),
        H_CASE("CR after request line", "GET /health HTTP/1.1\rHost: t\r\n\r\n" SMUGGLED, 400),
        H_CASE("CR after a header", "GET /health HTTP/1.1\r\nHost: t\rX: y\r\n\r\n" SMUGGLED, 400),
    };
    h_server *s = start(state);
    h_conn *c;
    h_response r;

    H_EXPECT_ALL_REJECTED(s, cases);
    /*
     * What llhttp does with a bare LF as the empty line ending the head: it
     * accepts it (RFC 9112 2.2 allows a recipient to). Asserted so a change
     * is noticed; either way, the two requests stay two requests.
     */
    c = h_open(s);
    h_sends(c, "GET /users/7 HTTP/1.1\r\nHost: t\r\n\nGET /users/8 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"id\":7,\"name\":\"user7\"}");
    h_response_free(&r);
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_string_equal(r.body, "{\"id\":8,\"name\":\"user8\"}");
    h_response_free(&r);
    assert_int_equal(h_expect_quiet(c, 50), H_TIMEOUT);
}

/*
 * obs-fold (RFC 9112 5.2): llhttp unfolds it (the CRLF is dropped, the
 * whitespace kept), which the RFC allows instead of a 400. The value never
 * carries CR or LF, and framing is unaffected.
 */
static void test_obs_fold_unfolded(void **state)
{
    h_server *s = start(state);
    h_conn *c = h_open(s);
    h_response r;

    h_sends(c, "GET /t/header HTTP/1.1\r\nHost: t\r\nX-Custom-Header: a\r\n b\r\n\r\n" SMUGGLED);
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body,
                        "{\"lower\":\"a b\",\"upper\":\"a b\",\"mixed\":\"a b\",\"first\":null,"
                        "\"count\":2}");
    h_response_free(&r);
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_string_equal(r.body, "{\"id\":1,\"name\":\"user1\"}");
    h_response_free(&r);
    assert_int_equal(h_expect_quiet(c, 50), H_TIMEOUT);
}

/* A body that looks like a request is only a body. */
static void test_body_is_not_a_request(void **state)
{
    h_server *s = start(state);
    h_conn *c = h_open(s);
    h_response r;
    char *raw = h_strf(POST_RAW "Content-Length: %zu\r\n\r\n%s", strlen(SMUGGLED), SMUGGLED);

    h_sends(c, raw);
    free(raw);
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, SMUGGLED);
    h_response_free(&r);
    assert_int_equal(h_expect_quiet(c, 100), H_TIMEOUT);

    raw = h_strf(CHUNKED "%zx\r\n%s\r\n0\r\n\r\n", strlen(SMUGGLED), SMUGGLED);
    h_sends(c, raw);
    free(raw);
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, SMUGGLED);
    h_response_free(&r);
    assert_int_equal(h_expect_quiet(c, 100), H_TIMEOUT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_content_length_conflicts, h_teardown),
        cmocka_unit_test_teardown(test_transfer_encoding_invalid, h_teardown),
        cmocka_unit_test_teardown(test_transfer_encoding_in_http10, h_teardown),
        cmocka_unit_test_teardown(test_bad_chunk_size, h_teardown),
        cmocka_unit_test_teardown(test_chunk_data_without_crlf, h_teardown),
        cmocka_unit_test_teardown(test_host_missing_or_repeated, h_teardown),
        cmocka_unit_test_teardown(test_host_invalid, h_teardown),
        cmocka_unit_test_teardown(test_request_line_malformed, h_teardown),
        cmocka_unit_test_teardown(test_header_invalid, h_teardown),
        cmocka_unit_test_teardown(test_header_name_with_space, h_teardown),
        cmocka_unit_test_teardown(test_header_name_empty, h_teardown),
        cmocka_unit_test_teardown(test_bare_lf_and_cr, h_teardown),
        cmocka_unit_test_teardown(test_obs_fold_unfolded, h_teardown),
        cmocka_unit_test_teardown(test_body_is_not_a_request, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
