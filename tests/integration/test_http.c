/*
 * test_http.c -- HTTP/1.1 behaviour over real sockets: keep-alive,
 * pipelining, HTTP/1.0, HEAD, Expect: 100-continue, chunked request bodies,
 * standard response headers, Connection: close.
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static h_server *start(void **state, const cn_config *cfg)
{
    h_server *s = h_start(cfg, NULL, h_test_routes, NULL);
    *state = s;
    return s;
}

/* Keep-alive: several requests through curl use one connection. */
static void test_keepalive_reuse_curl(void **state)
{
    h_server *s = start(state, NULL);
    CURL *e = h_curl_new();
    h_http h;
    long connects = 0, port = -1;
    static const char *const paths[] = {"/health", "/json", "/users/3", "/plaintext", "/health"};

    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        assert_int_equal(h_curl_get(e, s, paths[i], &h), CURLE_OK);
        assert_int_equal(h.status, 200);
        connects += h.num_connects;
        if (port < 0)
            port = h.local_port;
        assert_int_equal(h.local_port, port);
        if (i == 2)
            assert_string_equal(h.body, "{\"id\":3,\"name\":\"user3\"}");
        h_http_free(&h);
    }
    assert_int_equal(h_curl_post(e, s, "/echo", "{\"k\":[1,2,{\"z\":null}]}", NULL, &h), CURLE_OK);
    assert_int_equal(h.status, 200);
    assert_string_equal(h.body, "{\"k\":[1,2,{\"z\":null}]}");
    connects += h.num_connects;
    assert_int_equal(h.local_port, port);
    h_http_free(&h);
    assert_int_equal(connects, 1);
    curl_easy_cleanup(e);
}

/* 100 requests in one write are answered in order. */
static void test_pipeline_100(void **state)
{
    h_server *s = start(state, NULL);
    h_conn *c = h_open(s);
    size_t cap = 100 * 64, len = 0;
    char *buf = malloc(cap);
    h_response r;

    assert_non_null(buf);
    for (int i = 1; i <= 100; i++)
        len +=
            (size_t)snprintf(buf + len, cap - len, "GET /users/%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
    h_send(c, buf, len);
    free(buf);
    for (int i = 1; i <= 100; i++) {
        char want[64];
        int rc = h_read_response(c, &r, H_TIMEOUT_MS);
        if (rc != H_OK)
            fail_msg("pipelined response %d missing (%d)", i, rc);
        assert_int_equal(r.status, 200);
        snprintf(want, sizeof want, "{\"id\":%d,\"name\":\"user%d\"}", i, i);
        assert_string_equal(r.body, want);
        assert_false(h_connection_has(&r, "close"));
        h_response_free(&r);
    }
    /* nothing extra, and the connection is still usable */
    assert_int_equal(h_expect_quiet(c, 50), H_TIMEOUT);
    h_sends(c, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    h_response_free(&r);
}

/*
 * Pipelined large responses: output backpressure pauses the parser, and it
 * must resume once the output is gone -- also when uv_try_write took the
 * whole response at once (a client with a big receive buffer makes that
 * likely), so that no write callback comes to resume it. Several rounds on
 * fresh connections; a stall shows as EOF at the keep-alive timeout.
 */
static void test_pipeline_large_responses(void **state)
{
    /* keep-alive (and write-progress) timeout well above a slow reader's
     * pauses, also under valgrind, where threads run one at a time */
    cn_config cfg = h_fast_config();
    cfg.keepalive_timeout_ms = 5000;
    h_server *s = start(state, &cfg);

    for (int round = 0; round < 5; round++) {
        h_conn *c = h_open_rcvbuf(s, round == 0 ? 0 : 4 * 1024 * 1024);
        h_response r;
        int rc;

        h_sends(c, "GET /t/big HTTP/1.1\r\nHost: t\r\n\r\n"
                   "GET /t/big HTTP/1.1\r\nHost: t\r\n\r\n"
                   "GET /t/big HTTP/1.1\r\nHost: t\r\n\r\n"
                   "GET /users/9 HTTP/1.1\r\nHost: t\r\n\r\n");
        for (int i = 0; i < 3; i++) {
            rc = h_read_response(c, &r, 3 * H_TIMEOUT_MS);
            if (rc != H_OK)
                fail_msg("round %d: response %d of 4 missing (%s): the pipelined requests "
                         "were not resumed",
                         round, i + 1, rc == H_EOF ? "EOF" : "timeout");
            assert_int_equal(r.status, 200);
            assert_true(h_big_body_ok(r.body, r.body_len));
            h_response_free(&r);
        }
        rc = h_read_response(c, &r, H_TIMEOUT_MS);
        if (rc != H_OK)
            fail_msg("round %d: response 4 of 4 missing (%d)", round, rc);
        assert_string_equal(r.body, "{\"id\":9,\"name\":\"user9\"}");
        h_response_free(&r);
        h_close(c);
    }
}

/* HTTP/1.0 without keep-alive: answered, Connection: close, then EOF. */
static void test_http10_closes(void **state)
{
    h_server *s = start(state, NULL);
    h_conn *c = h_open(s);
    h_response r;

    h_sends(c, "GET /health HTTP/1.0\r\n\r\n");
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"status\":\"ok\"}");
    assert_true(h_connection_has(&r, "close"));
    h_assert_standard_headers(&r, false);
    h_response_free(&r);
    assert_int_equal(h_expect_eof(c, H_TIMEOUT_MS), H_OK);
}

/* HTTP/1.0 with Connection: keep-alive stays open and says so. */
static void test_http10_keepalive(void **state)
{
    h_server *s = start(state, NULL);
    h_conn *c = h_open(s);
    h_response r;

    for (int i = 1; i <= 3; i++) {
        h_sendf(c, "GET /users/%d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", i);
        assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
        assert_int_equal(r.status, 200);
        assert_true(h_connection_has(&r, "keep-alive"));
        assert_false(h_connection_has(&r, "close"));
        h_response_free(&r);
    }
    assert_int_equal(h_expect_quiet(c, 50), H_TIMEOUT);
    /* and a plain 1.0 request on the same connection ends it */
    h_sends(c, "GET /health HTTP/1.0\r\n\r\n");
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_true(h_connection_has(&r, "close"));
    h_response_free(&r);
    assert_int_equal(h_expect_eof(c, H_TIMEOUT_MS), H_OK);
}

/* HEAD: GET's headers (with its Content-Length) and no body. */
static void test_head(void **state)
{
    h_server *s = start(state, NULL);
    h_conn *c = h_open(s);
    h_response g, h, n;

    h_sends(c, "GET /json HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(h_read_response(c, &g, H_TIMEOUT_MS), H_OK);
    assert_int_equal(g.status, 200);

    /* HEAD, then a pipelined GET: its response must start right after the head */
    h_sends(c, "HEAD /json HTTP/1.1\r\nHost: t\r\n\r\nGET /users/5 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(h_read_response_ex(c, &h, H_TIMEOUT_MS, true), H_OK);
    assert_int_equal(h.status, 200);
    assert_true(h.has_content_length);
    assert_int_equal(h.content_length, (long long)g.body_len);
    assert_string_equal(h_header_get(&h, "content-type"), h_header_get(&g, "content-type"));
    h_assert_standard_headers(&h, true);
    assert_int_equal(h_read_response(c, &n, H_TIMEOUT_MS), H_OK);
    assert_int_equal(n.status, 200);
    assert_string_equal(n.body, "{\"id\":5,\"name\":\"user5\"}");
    h_response_free(&g);
    h_response_free(&h);
    h_response_free(&n);

    /* error responses to HEAD carry no body either */
    h_sends(c, "HEAD /nope HTTP/1.1\r\nHost: t\r\n\r\nHEAD /echo HTTP/1.1\r\nHost: t\r\n\r\n"
               "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(h_read_response_ex(c, &h, H_TIMEOUT_MS, true), H_OK);
    assert_int_equal(h.status, 404);
    assert_int_equal(h.content_length, (long long)strlen("{\"detail\":\"Not Found\"}"));
    h_response_free(&h);
    assert_int_equal(h_read_response_ex(c, &h, H_TIMEOUT_MS, true), H_OK);
    assert_int_equal(h.status, 405);
    assert_string_equal(h_header_get(&h, "allow"), "POST");
    h_response_free(&h);
    assert_int_equal(h_read_response(c, &n, H_TIMEOUT_MS), H_OK);
    assert_int_equal(n.status, 200);
    assert_string_equal(n.body, "{\"status\":\"ok\"}");
    h_response_free(&n);
}

/* Expect: 100-continue: the interim answer comes before the body is sent. */
static void test_expect_100_continue(void **state)
{
    h_server *s = start(state, NULL);
    h_conn *c = h_open(s);
    h_response r;
    const char *body = "{\"a\":[1,2,3]}";

    h_sendf(c,
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            "Content-Length: %zu\r\nExpect: 100-continue\r\n\r\n",
            strlen(body));
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 100);
    assert_int_equal(r.body_len, 0);
    h_response_free(&r);
    /* the final answer waits for the body */
    assert_int_equal(h_expect_quiet(c, 50), H_TIMEOUT);
    h_sends(c, body);
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, body);
    h_assert_standard_headers(&r, false);
    h_response_free(&r);

    /* 100-continue with a chunked body works the same */
    h_sends(c, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
               "Expect: 100-continue\r\n\r\n");
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 100);
    h_response_free(&r);
    h_sends(c, "2\r\n[]\r\n0\r\n\r\n");
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "[]");
    h_response_free(&r);

    /* no body at all: no interim response */
    h_sends(c, "GET /health HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n\r\n");
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    h_response_free(&r);

    /* HTTP/1.0 clients never get a 100 */
    h_sends(c, "POST /echo HTTP/1.0\r\nContent-Length: 2\r\nExpect: 100-continue\r\n"
               "Connection: keep-alive\r\n\r\n");
    assert_int_equal(h_expect_quiet(c, 50), H_TIMEOUT);
    h_sends(c, "{}");
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{}");
    h_response_free(&r);
}

/* A too-large declared body with Expect gets 413 (not 100) and a close. */
static void test_expect_100_too_large(void **state)
{
    cn_config cfg = h_fast_config();
    h_server *s;
    h_conn *c;
    h_response r;
    int64_t t0;

    cfg.max_body_bytes = 1024;
    cfg.header_timeout_ms = 5000; /* waiting for the body would show as a late 408 */
    s = start(state, &cfg);
    c = h_open(s);
    t0 = h_now_ms();
    h_sends(c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
               "Content-Length: 1025\r\nExpect: 100-continue\r\n\r\n");
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 413);
    assert_true(h_connection_has(&r, "close"));
    h_assert_standard_headers(&r, false);
    h_response_free(&r);
    assert_int_equal(h_expect_eof(c, H_TIMEOUT_MS), H_OK);
    /* answered at once, not after the head/body timeout */
    assert_true(h_now_ms() - t0 < 2500);
    h_assert_healthy(s);
}

/* An expectation other than 100-continue: 417 and close. */
static void test_expect_unknown(void **state)
{
    h_server *s = start(state, NULL);
    const char *req =
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: teapot\r\n\r\n"
        "{}GET /users/1 HTTP/1.1\r\nHost: t\r\n\r\n";
    h_expect_rejected(s, req, strlen(req), 417);
}

/* Chunked request bodies: several chunks, extensions, trailers, split writes. */
static void test_chunked_request_body(void **state)
{
    h_server *s = start(state, NULL);
    h_conn *c = h_open(s);
    h_response r;

    /* one write, chunk extensions (token and quoted-string forms) */
    h_sends(c, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
               "Content-Type: application/json\r\n\r\n"
               "4\r\n{\"a\"\r\n"
               "3;ext=1\r\n:12\r\n"
               "1;name=\"quoted value\"\r\n}\r\n"
               "0\r\n\r\n");
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"a\":12}");
    h_assert_standard_headers(&r, false);
    h_response_free(&r);

    /* split across writes, upper-case hex, a trailer: nothing is answered early */
    h_sends(c, "POST /t/raw HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_int_equal(h_expect_quiet(c, 30), H_TIMEOUT);
    h_sends(c, "A\r\n0123456789\r\n");
    assert_int_equal(h_expect_quiet(c, 30), H_TIMEOUT);
    h_sends(c, "1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n");
    assert_int_equal(h_expect_quiet(c, 30), H_TIMEOUT);
    h_sends(c, "X-Trailer: yes\r\n\r\nGET /users/2 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(h_header_get(&r, "x-body-length"), "36");
    assert_string_equal(r.body, "0123456789abcdefghijklmnopqrstuvwxyz");
    h_response_free(&r);
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_string_equal(r.body, "{\"id\":2,\"name\":\"user2\"}");
    h_response_free(&r);

    /* an empty chunked body */
    h_sends(c, "POST /t/raw HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(h_header_get(&r, "x-body-length"), "0");
    h_response_free(&r);
}

/* Date and Server on every response; Content-Type for JSON and text. */
static void test_date_and_server_headers(void **state)
{
    h_server *s = start(state, NULL);
    h_response r;

    h_roundtrip(s, "GET /json HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    h_assert_standard_headers(&r, false);
    assert_string_equal(h_header_get(&r, "content-type"), "application/json");
    assert_string_equal(r.body, "{\"message\":\"Hello, World!\"}");
    h_response_free(&r);

    h_roundtrip(s, "GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    h_assert_standard_headers(&r, false);
    assert_string_equal(h_header_get(&r, "content-type"), "text/plain; charset=utf-8");
    assert_string_equal(r.body, "Hello, World!");
    h_response_free(&r);
}

/* Every kind of response carries a correct Content-Length (and Date, Server). */
static void test_content_length_on_every_response(void **state)
{
    h_server *s = start(state, NULL);
    static const struct {
        const char *raw;
        int status;
    } cases[] = {
        {"GET /health HTTP/1.1\r\nHost: t\r\n\r\n", 200},
        {"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n", 404},
        {"DELETE /health HTTP/1.1\r\nHost: t\r\n\r\n", 405},
        {"GET /users/abc HTTP/1.1\r\nHost: t\r\n\r\n", 422},
        {"GET /users/0 HTTP/1.1\r\nHost: t\r\n\r\n", 404},
        {"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\n{x}", 400},
        {"GET /t/fail HTTP/1.1\r\nHost: t\r\n\r\n", 500},
        {"GET /t/none HTTP/1.1\r\nHost: t\r\n\r\n", 200},
        {"GET /t/param/%zz HTTP/1.1\r\nHost: t\r\n\r\n", 400},
        {"GET /health HTTP/1.1\r\n\r\n", 400},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        h_response r;
        h_roundtrip(s, cases[i].raw, &r);
        if (r.status != cases[i].status)
            fail_msg("case %zu: status %d, expected %d", i, r.status, cases[i].status);
        h_assert_standard_headers(&r, false);
        h_response_free(&r);
    }
}

/* A 204 has no body, and no Content-Length (RFC 9110 8.6: MUST NOT). */
static void test_204_no_content(void **state)
{
    h_server *s = start(state, NULL);
    h_conn *c = h_open(s);
    h_response r;

    h_sends(c,
            "GET /t/nocontent HTTP/1.1\r\nHost: t\r\n\r\nGET /users/4 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 204);
    assert_null(h_header_get(&r, "content-length"));
    assert_null(h_header_get(&r, "transfer-encoding"));
    h_response_free(&r);
    /* no body bytes between the two responses */
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_string_equal(r.body, "{\"id\":4,\"name\":\"user4\"}");
    h_response_free(&r);
}

/* Connection: close is honoured: the answer says close, then EOF; a request
 * pipelined after it is not served. */
static void test_connection_close(void **state)
{
    h_server *s = start(state, NULL);
    h_conn *c = h_open(s);
    h_response r;

    h_sends(c, "GET /users/1 HTTP/1.1\r\nHost: t\r\n\r\n"
               "GET /users/2 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
               "GET /users/3 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_false(h_connection_has(&r, "close"));
    h_response_free(&r);
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"id\":2,\"name\":\"user2\"}");
    assert_true(h_connection_has(&r, "close"));
    h_response_free(&r);
    assert_int_equal(h_expect_eof(c, H_TIMEOUT_MS), H_OK);
}

/* A protocol upgrade is not supported: the request is answered, the
 * connection closes, nothing after it is parsed as HTTP. */
static void test_upgrade_refused(void **state)
{
    h_server *s = start(state, NULL);
    const char *req = "GET /health HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\n"
                      "Upgrade: websocket\r\n\r\nGET /users/1 HTTP/1.1\r\nHost: t\r\n\r\n";
    h_expect_rejected(s, req, strlen(req), 200);
}

/* An empty line before a request line is ignored (RFC 9112 2.2). */
static void test_leading_empty_line(void **state)
{
    h_server *s = start(state, NULL);
    h_conn *c = h_open(s);
    h_response r;

    h_sends(c,
            "GET /health HTTP/1.1\r\nHost: t\r\n\r\n\r\nGET /users/6 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(h_read_responses(c, 1, H_TIMEOUT_MS, NULL), 1);
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"id\":6,\"name\":\"user6\"}");
    h_response_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_keepalive_reuse_curl, h_teardown),
        cmocka_unit_test_teardown(test_pipeline_100, h_teardown),
        cmocka_unit_test_teardown(test_pipeline_large_responses, h_teardown),
        cmocka_unit_test_teardown(test_http10_closes, h_teardown),
        cmocka_unit_test_teardown(test_http10_keepalive, h_teardown),
        cmocka_unit_test_teardown(test_head, h_teardown),
        cmocka_unit_test_teardown(test_expect_100_continue, h_teardown),
        cmocka_unit_test_teardown(test_expect_100_too_large, h_teardown),
        cmocka_unit_test_teardown(test_expect_unknown, h_teardown),
        cmocka_unit_test_teardown(test_chunked_request_body, h_teardown),
        cmocka_unit_test_teardown(test_date_and_server_headers, h_teardown),
        cmocka_unit_test_teardown(test_content_length_on_every_response, h_teardown),
        cmocka_unit_test_teardown(test_204_no_content, h_teardown),
        cmocka_unit_test_teardown(test_connection_close, h_teardown),
        cmocka_unit_test_teardown(test_upgrade_refused, h_teardown),
        cmocka_unit_test_teardown(test_leading_empty_line, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
