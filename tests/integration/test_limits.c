/*
 * test_limits.c -- the configured limits and the status each gives: header
 * bytes and count (431), body size (413), header timeout (408), idle
 * keep-alive timeout, max_connections (503), input/output backpressure, and
 * the Retry-After of the 503s given under load (retry_after_s).
 */
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../gate.h"
#include "harness.h"

static cn_config limits_config(void)
{
    cn_config c = h_fast_config();
    c.max_header_bytes = 1024;
    c.max_headers = 10;
    c.max_body_bytes = 1024;
    return c;
}

static h_server *start(void **state, const cn_config *cfg)
{
    cn_config c = cfg ? *cfg : limits_config();
    h_server *s = h_start(&c, NULL, h_test_routes, NULL);
    *state = s;
    return s;
}

static char *repeat(char ch, size_t n)
{
    char *p = malloc(n + 1);
    assert_non_null(p);
    memset(p, ch, n);
    p[n] = 0;
    return p;
}

/* ---- 431 ---- */

static void test_header_bytes_431(void **state)
{
    h_server *s = start(state, NULL);
    char *pad = repeat('a', 600), *raw;
    h_response r;

    /* under the limit: served */
    raw = h_strf("GET /health HTTP/1.1\r\nHost: t\r\nX-Pad: %s\r\n\r\n", pad);
    h_roundtrip(s, raw, &r);
    assert_int_equal(r.status, 200);
    h_response_free(&r);
    free(raw);
    free(pad);

    /* over it: 431, close, the request after it is not served */
    pad = repeat('b', 2000);
    raw = h_strf("GET /health HTTP/1.1\r\nHost: t\r\nX-Pad: %s\r\n\r\n"
                 "GET /users/1 HTTP/1.1\r\nHost: t\r\n\r\n",
                 pad);
    h_expect_rejected(s, raw, strlen(raw), 431);
    free(raw);
    free(pad);

    /* many small headers adding up */
    {
        size_t cap = 4096, len = 0;
        char *b = malloc(cap);
        assert_non_null(b);
        len += (size_t)snprintf(b + len, cap - len, "GET /health HTTP/1.1\r\nHost: t\r\n");
        for (int i = 0; i < 8; i++)
            len += (size_t)snprintf(b + len, cap - len, "X-H%d: %0200d\r\n", i, i);
        len += (size_t)snprintf(b + len, cap - len, "\r\n");
        h_expect_rejected(s, b, len, 431);
        free(b);
    }
}

/* An endless header line: 431 as soon as the limit is passed, not at the timeout. */
static void test_header_bytes_431_before_head_ends(void **state)
{
    cn_config cfg = limits_config();
    h_server *s;
    h_conn *c;
    h_response r;
    char *pad = repeat('c', 4096);
    int64_t t0;

    cfg.header_timeout_ms = 5000;
    s = start(state, &cfg);
    c = h_open(s);
    t0 = h_now_ms();
    h_sendf(c, "GET /health HTTP/1.1\r\nHost: t\r\nX-Pad: %s", pad);
    free(pad);
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 431);
    assert_true(h_connection_has(&r, "close"));
    h_response_free(&r);
    assert_int_equal(h_expect_eof(c, H_TIMEOUT_MS), H_OK);
    assert_true(h_now_ms() - t0 < 2500);
    h_assert_healthy(s);
}

static void test_long_target_431(void **state)
{
    h_server *s = start(state, NULL);
    char *path = repeat('p', 2000);
    char *raw =
        h_strf("GET /%s HTTP/1.1\r\nHost: t\r\n\r\nGET /users/1 HTTP/1.1\r\nHost: t\r\n\r\n", path);

    h_expect_rejected(s, raw, strlen(raw), 431);
    free(raw);
    free(path);
}

static void test_header_count_431(void **state)
{
    h_server *s = start(state, NULL);
    size_t cap = 4096, len;
    char *b = malloc(cap);
    h_response r;

    assert_non_null(b);
    /* exactly max_headers (10, Host included): served */
    len = (size_t)snprintf(b, cap, "GET /health HTTP/1.1\r\nHost: t\r\n");
    for (int i = 0; i < 9; i++)
        len += (size_t)snprintf(b + len, cap - len, "X-H%d: v\r\n", i);
    len += (size_t)snprintf(b + len, cap - len, "\r\n");
    h_roundtrip(s, b, &r);
    assert_int_equal(r.status, 200);
    h_response_free(&r);

    /* one more: 431 */
    len = (size_t)snprintf(b, cap, "GET /health HTTP/1.1\r\nHost: t\r\n");
    for (int i = 0; i < 10; i++)
        len += (size_t)snprintf(b + len, cap - len, "X-H%d: v\r\n", i);
    len += (size_t)snprintf(b + len, cap - len, "\r\nGET /users/1 HTTP/1.1\r\nHost: t\r\n\r\n");
    h_expect_rejected(s, b, len, 431);

    /* many empty-valued headers count too */
    len = (size_t)snprintf(b, cap, "GET /health HTTP/1.1\r\nHost: t\r\n");
    for (int i = 0; i < 50; i++)
        len += (size_t)snprintf(b + len, cap - len, "X%d:\r\n", i);
    len += (size_t)snprintf(b + len, cap - len, "\r\n");
    h_expect_rejected(s, b, len, 431);
    free(b);
}

/* ---- 413 ---- */

static void test_body_content_length_413(void **state)
{
    cn_config cfg = limits_config();
    h_server *s;
    char *body = repeat('x', 1024), *raw;
    h_conn *c;
    h_response r;
    int64_t t0;

    /* a long head timeout: a server waiting for the body would answer 408
     * only after it, so a prompt 413 proves it did not wait */
    cfg.header_timeout_ms = 5000;
    s = start(state, &cfg);
    /* exactly the limit: served */
    raw = h_strf("POST /t/raw HTTP/1.1\r\nHost: t\r\nContent-Length: 1024\r\n\r\n%s", body);
    h_roundtrip(s, raw, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(h_header_get(&r, "x-body-length"), "1024");
    h_response_free(&r);
    free(raw);
    free(body);

    /* one byte over, body NOT sent: the answer must not wait for it */
    c = h_open(s);
    t0 = h_now_ms();
    h_sends(c, "POST /t/raw HTTP/1.1\r\nHost: t\r\nContent-Length: 1025\r\n\r\n");
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 413);
    assert_string_equal(r.body, "{\"detail\":\"Content Too Large\"}");
    assert_true(h_connection_has(&r, "close"));
    h_assert_standard_headers(&r, false);
    h_response_free(&r);
    assert_int_equal(h_expect_eof(c, H_TIMEOUT_MS), H_OK);
    assert_true(h_now_ms() - t0 < 2500);
    h_close(c);

    /* a huge declared length */
    c = h_open(s);
    h_sends(c, "POST /t/raw HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999\r\n\r\n");
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 413);
    h_response_free(&r);
    assert_int_equal(h_expect_eof(c, H_TIMEOUT_MS), H_OK);
    h_close(c);
    h_assert_healthy(s);
}

static void test_body_chunked_413(void **state)
{
    h_server *s = start(state, NULL);
    char *a = repeat('y', 600), *raw;
    h_conn *c;
    h_response r;

    /* exactly the limit in chunks: served */
    raw = h_strf("POST /t/raw HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "258\r\n%s\r\n1a8\r\n%.424s\r\n0\r\n\r\n",
                 a, a);
    h_roundtrip(s, raw, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(h_header_get(&r, "x-body-length"), "1024");
    h_response_free(&r);
    free(raw);

    /* 600 + 600: 413 once the second chunk passes the limit */
    c = h_open(s);
    h_sends(c, "POST /t/raw HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    h_sendf(c, "258\r\n%s\r\n", a);
    assert_int_equal(h_expect_quiet(c, 30), H_TIMEOUT);
    h_sendf(c, "258\r\n%s\r\n", a);
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 413);
    assert_true(h_connection_has(&r, "close"));
    h_response_free(&r);
    /* the rest of the body and a pipelined request are ignored */
    {
        const char *tail = "0\r\n\r\nGET /users/1 HTTP/1.1\r\nHost: t\r\n\r\n";
        h_try_send(c, tail, strlen(tail));
    }
    assert_int_equal(h_expect_eof(c, H_TIMEOUT_MS), H_OK);
    h_close(c);
    free(a);

    /* one huge chunk announced: rejected before its data is sent */
    c = h_open(s);
    h_sends(c, "POST /t/raw HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
               "100000\r\nzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz");
    {
        char *more = repeat('z', 2048);
        h_try_send(c, more, 2048);
        free(more);
    }
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 413);
    h_response_free(&r);
    assert_int_equal(h_expect_eof(c, H_TIMEOUT_MS), H_OK);
    h_close(c);
    h_assert_healthy(s);
}

/* ---- timeouts ---- */

/* Part of a head, then silence: 408 after header_timeout_ms, then EOF. */
static void test_slowloris_408(void **state)
{
    h_server *s = start(state, NULL);
    h_conn *c = h_open(s);
    h_response r;
    int64_t t0 = h_now_ms(), dt;

    h_sends(c, "GET /health HTTP/1.1\r\nHost: t\r\nX-Slow: ");
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    dt = h_now_ms() - t0;
    assert_int_equal(r.status, 408);
    assert_string_equal(r.body, "{\"detail\":\"Request Timeout\"}");
    assert_true(h_connection_has(&r, "close"));
    h_assert_standard_headers(&r, false);
    h_response_free(&r);
    assert_true(dt >= 250); /* not before the timeout (300 ms) */
    assert_true(dt < 3000); /* and not much after it */
    assert_int_equal(h_expect_eof(c, H_TIMEOUT_MS), H_OK);
    h_assert_healthy(s);
}

/* A byte every 30 ms does not extend the head deadline. */
static void test_slowloris_trickle_408(void **state)
{
    h_server *s = start(state, NULL);
    h_conn *c = h_open(s);
    h_response r;
    const char *head = "GET /health HTTP/1.1\r\nHost: t\r\nX-A: 1\r\nX-B: 2\r\nX-C: 3\r\n"
                       "X-D: 4\r\nX-E: 5\r\nX-F: 6\r\nX-G: 7\r\nX-H: 8\r\n\r\n";
    size_t i, n = strlen(head) - 2; /* never the final CRLF */
    int64_t t0 = h_now_ms();
    bool answered = false;

    for (i = 0; i < n && h_now_ms() - t0 < 4000; i++) {
        if (h_try_send(c, head + i, 1) < 0)
            break;
        /* pace the input; stop as soon as the server answers */
        if (h_recv_more(c, 30) != H_TIMEOUT) {
            answered = true;
            break;
        }
    }
    assert_true(answered);
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 408);
    h_response_free(&r);
    assert_true(h_now_ms() - t0 < 2000);
    assert_int_equal(h_expect_eof(c, H_TIMEOUT_MS), H_OK);
    h_assert_healthy(s);
}

/* A body that stops arriving is timed out too (408 and close). */
static void test_slow_body_408(void **state)
{
    h_server *s = start(state, NULL);
    h_conn *c = h_open(s);
    h_response r;

    h_sends(c, "POST /t/raw HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly a part");
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 408);
    assert_true(h_connection_has(&r, "close"));
    h_response_free(&r);
    assert_int_equal(h_expect_eof(c, H_TIMEOUT_MS), H_OK);
    h_assert_healthy(s);
}

/* After a response, an idle keep-alive connection is closed without a word. */
static void test_idle_keepalive_timeout(void **state)
{
    h_server *s = start(state, NULL);
    h_conn *c = h_open(s);
    h_response r;
    int64_t t0, dt;

    h_sends(c, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_false(h_connection_has(&r, "close"));
    h_response_free(&r);
    t0 = h_now_ms();
    assert_int_equal(h_expect_eof(c, H_TIMEOUT_MS), H_OK);
    dt = h_now_ms() - t0;
    assert_true(dt >= 200);
    assert_true(dt < 3000);
    assert_true(h_wait_active(s, 0, H_TIMEOUT_MS));
    h_assert_healthy(s);
}

/* A connection that never sends anything is closed silently too. */
static void test_silent_connection_closed(void **state)
{
    h_server *s = start(state, NULL);
    h_conn *c = h_open(s);
    int64_t t0 = h_now_ms();

    assert_int_equal(h_expect_eof(c, H_TIMEOUT_MS), H_OK);
    assert_true(h_now_ms() - t0 >= 200);
    h_assert_healthy(s);
}

/* ---- max_connections ---- */

static h_server *start_maxconn(void **state)
{
    cn_config cfg = h_fast_config();
    h_server *s;

    cfg.max_connections = 4;
    cfg.header_timeout_ms = 10000;
    cfg.keepalive_timeout_ms = 10000;
    s = start(state, &cfg);
    /* h_start's own health check connection must be gone first */
    assert_true(h_wait_active(s, 0, H_TIMEOUT_MS));
    return s;
}

static void open_idle(h_server *s, h_conn **cs, int n)
{
    for (int i = 0; i < n; i++) {
        h_response r;
        cs[i] = h_open(s);
        h_sends(cs[i], "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_int_equal(h_read_response(cs[i], &r, H_TIMEOUT_MS), H_OK);
        assert_int_equal(r.status, 200);
        h_response_free(&r);
    }
}

/* A 503 with Retry-After `retry`, and the close. */
static void expect_503_retry(h_server *s, const char *retry)
{
    h_conn *c = h_open(s);
    h_response r;

    h_sends(c, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 503);
    assert_non_null(h_header_get(&r, "Retry-After"));
    assert_string_equal(h_header_get(&r, "Retry-After"), retry);
    assert_true(h_connection_has(&r, "close"));
    h_assert_standard_headers(&r, false);
    h_response_free(&r);
    assert_int_equal(h_expect_eof(c, H_TIMEOUT_MS), H_OK);
    h_close(c);
}

static void expect_503(h_server *s)
{
    expect_503_retry(s, "1");
}

static void test_max_connections_503(void **state)
{
    h_server *s = start_maxconn(state);
    h_conn *cs[4];
    h_response r;
    h_conn *c;

    open_idle(s, cs, 4);
    expect_503(s);
    assert_int_equal(h_stats(s).connections_rejected, 1);
    /* the idle ones are still served */
    h_sends(cs[3], "GET /users/3 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(h_read_response(cs[3], &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    h_response_free(&r);
    /* close one: once the server has seen it go, a new connection works */
    h_close(cs[0]);
    assert_true(h_wait_active(s, 3, 2 * H_TIMEOUT_MS));
    c = h_open(s);
    h_sends(c, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    h_response_free(&r);
}

/*
 * A rejected connection must not hold a slot after its client has gone:
 * closing the 503'd socket and one idle connection frees room at once, not
 * after the server's 2 s lingering close.
 */
static void test_max_connections_rejected_slot_released(void **state)
{
    h_server *s = start_maxconn(state);
    h_conn *cs[4];

    open_idle(s, cs, 4);
    expect_503(s); /* closed by us after its EOF */
    h_close(cs[0]);
    assert_true(h_wait_active(s, 3, 1000));
}

/* ---- Retry-After ---- */

/* A sync route that holds its worker at the gate. */
static int rt_gate(cn_req *req, cn_res *res)
{
    (void)req;
    gate_pass();
    return cn_res_json_str(res, 200, "{}");
}

static int gate_routes(cn_app *app, void *arg)
{
    cn_route_opts sync = {.mode = CN_ROUTE_SYNC};

    (void)arg;
    return cn_app_route_ex(app, "GET /t/gate", rt_gate, NULL, &sync);
}

static uint64_t queue_depth(h_server *s)
{
    cn_pool_stats ps;

    cn_app_pool_stats(s->app, &ps);
    return ps.queue_depth;
}

/* A 503 on c with Retry-After `retry`. */
static void read_503_retry(h_conn *c, const char *retry)
{
    h_response r;

    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 503);
    assert_non_null(h_header_get(&r, "Retry-After"));
    assert_string_equal(h_header_get(&r, "Retry-After"), retry);
    h_response_free(&r);
}

/*
 * retry_after_s = 7: every 503 Canteen gives under load says 7. The pool
 * (one worker, held at the gate; one job may wait, for 300 ms): a full
 * queue refuses the next job at once, the waiting one is dropped at its
 * deadline. Then max_connections.
 */
static void test_retry_after_configured(void **state)
{
    cn_config cfg = h_fast_config();
    h_conn *held, *queued, *refused, *cs[4];
    h_response r;
    h_server *s;

    cfg.retry_after_s = 7;
    cfg.pool_threads = 1;
    cfg.pool_route_share = 100;
    cfg.pool_queue_max = 1;
    cfg.pool_queue_timeout_ms = 300;
    cfg.max_connections = 5;
    cfg.header_timeout_ms = cfg.keepalive_timeout_ms = 10000;
    gate_close();
    s = h_start(&cfg, NULL, gate_routes, NULL);
    *state = s;

    held = h_open(s);
    h_sends(held, "GET /t/gate HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(H_WAIT_UNTIL(atomic_load(&gate_waiting) == 1, H_TIMEOUT_MS));
    queued = h_open(s);
    h_sends(queued, "GET /t/gate HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(H_WAIT_UNTIL(queue_depth(s) == 1, H_TIMEOUT_MS));
    refused = h_open(s);
    h_sends(refused, "GET /t/gate HTTP/1.1\r\nHost: t\r\n\r\n");
    read_503_retry(refused, "7"); /* the queue is full */
    read_503_retry(queued, "7");  /* waited past pool_queue_timeout_ms */

    /* held and four more make max_connections: the sixth is refused */
    h_close(queued);
    h_close(refused);
    assert_true(h_wait_active(s, 1, H_TIMEOUT_MS));
    for (int i = 0; i < 4; i++) {
        cs[i] = h_open(s);
        h_sends(cs[i], "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_int_equal(h_read_response(cs[i], &r, H_TIMEOUT_MS), H_OK);
        assert_int_equal(r.status, 200);
        h_response_free(&r);
    }
    expect_503_retry(s, "7");

    gate_release();
    assert_int_equal(h_read_response(held, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    h_response_free(&r);
}

/* ---- backpressure ---- */

/*
 * A slow reader of large responses is not cut off by the keep-alive idle
 * timer: a connection is not idle while answers to its requests are still
 * being written. Two pipelined 4 MiB answers read at ~2.5 MiB/s (64 KiB
 * every 25 ms): more than the kernel buffers hold, each taking far longer
 * than keepalive_timeout_ms, while the reader never pauses for long.
 */
static void test_slow_reader_not_cut_off(void **state)
{
    cn_config cfg = limits_config();
    h_server *s;
    h_conn *c;
    const size_t total = 2 * ((size_t)H_BIG_SIZE + 100);
    int64_t t0, deadline;
    size_t next_pause = 64 * 1024, got = 0;

    /* the reads below are ~25 ms apart: far below this, while each answer
     * takes ~1.6 s to read */
    cfg.keepalive_timeout_ms = 500;
    s = start(state, &cfg);
    c = h_open_rcvbuf(s, 16 * 1024);
    t0 = h_now_ms();
    deadline = t0 + 20000;
    h_sends(c, "GET /t/big HTTP/1.1\r\nHost: t\r\n\r\nGET /t/big HTTP/1.1\r\nHost: t\r\n\r\n");
    /* read ~64 KiB every 25 ms; parse responses as they complete */
    for (int i = 0; i < 2 && h_now_ms() < deadline;) {
        h_response r;
        ssize_t n = h_recv_more(c, 1000);
        if (n == H_EOF || n == H_TIMEOUT)
            break;
        got += (size_t)n;
        if (got >= next_pause) {
            poll(NULL, 0, 25);
            next_pause += 64 * 1024;
        }
        /* a whole response buffered? */
        if (c->len >= (size_t)H_BIG_SIZE && strstr(c->buf, "\r\n\r\n") &&
            c->len >= (size_t)(strstr(c->buf, "\r\n\r\n") - c->buf) + 4 + H_BIG_SIZE) {
            assert_int_equal(h_read_response(c, &r, 1000), H_OK);
            assert_int_equal(r.status, 200);
            assert_true(h_big_body_ok(r.body, r.body_len));
            h_response_free(&r);
            i++;
            if (i == 2) {
                assert_true(h_now_ms() - t0 > 1000);
                return;
            }
        }
    }
    fail_msg("responses cut off after %zu of about %zu bytes (%s, after %lld ms)", got, total,
             c->eof ? "EOF" : "timeout", (long long)(h_now_ms() - t0));
}

/* GET /t/late-answer: blocks the loop for longer than the write timeout
 * (a handler that should not, but may), then answers 1 MiB */
static int late_answer(cn_req *req, cn_res *res)
{
    static char body[1024 * 1024];

    (void)req;
    memset(body, 'x', sizeof body);
    h_block_ms(600);
    return cn_res_bytes(res, 200, body, sizeof body, "text/plain");
}

static int late_routes(cn_app *app, void *arg)
{
    (void)arg;
    return cn_app_route(app, "GET /t/late-answer", late_answer, NULL);
}

/*
 * The write timeout counts from when the answer was queued: a handler that
 * held the loop past keepalive_timeout_ms does not make the client, which
 * had no byte of the answer to read until then, a stalled reader. (The
 * test client runs the loop on this thread: the loop's first look at the
 * write timer comes before it reads a byte.)
 */
static void test_write_timeout_counts_from_the_answer(void **state)
{
    cn_config cfg = limits_config();
    h_client *c;
    cn_test_response r;

    cfg.keepalive_timeout_ms = 300;
    c = h_tc_start(&cfg, late_routes, NULL);
    *state = c;
    h_tc_request(c, "GET", "/t/late-answer", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 1024 * 1024);
    cn_test_response_free(&r);
    assert_int_equal(h_tc_stats(c).connections_stalled, 0);
}

/*
 * A client that pipelines without reading answers must be stopped from
 * sending (the server stops reading); the server must not buffer an
 * unbounded amount of input.
 */
static void test_pipelined_flood_is_bounded(void **state)
{
    cn_config cfg = h_fast_config();
    h_server *s;
    h_conn *c;
    const char *one = "GET /t/big HTTP/1.1\r\nHost: t\r\n\r\n";
    size_t unit = strlen(one), chunk_len = 0, sent = 0;
    const size_t limit = 24u * 1024 * 1024, allowed = 16u * 1024 * 1024;
    int sndbuf = 64 * 1024;
    char *chunk = malloc(64 * 1024);
    int64_t t0;

    cfg.keepalive_timeout_ms = 10000;
    cfg.header_timeout_ms = 10000;
    s = start(state, &cfg);
    c = h_open(s);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    assert_non_null(chunk);
    while (chunk_len + unit <= 64 * 1024) {
        memcpy(chunk + chunk_len, one, unit);
        chunk_len += unit;
    }
    t0 = h_now_ms();
    while (sent < limit && h_now_ms() - t0 < 20000) {
        ssize_t n = send(c->fd, chunk, chunk_len, MSG_NOSIGNAL);
        if (n > 0) {
            /* keep request boundaries aligned: finish a partial chunk */
            sent += (size_t)n;
            if ((size_t)n < chunk_len) {
                size_t rest = chunk_len - (size_t)n;
                struct pollfd pf = {.fd = c->fd, .events = POLLOUT};
                if (poll(&pf, 1, 500) != 1)
                    break; /* stalled: the server stopped reading */
                if (h_try_send(c, chunk + n, rest) < 0)
                    break;
                sent += rest;
            }
            continue;
        }
        {
            struct pollfd pf = {.fd = c->fd, .events = POLLOUT};
            if (poll(&pf, 1, 500) != 1)
                break; /* stalled for 500 ms: good */
        }
    }
    free(chunk);
    print_message("sent %zu bytes of pipelined requests before the server stopped reading\n", sent);
    assert_true(sent < allowed);
    h_close(c);
    h_assert_healthy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_header_bytes_431, h_teardown),
        cmocka_unit_test_teardown(test_header_bytes_431_before_head_ends, h_teardown),
        cmocka_unit_test_teardown(test_long_target_431, h_teardown),
        cmocka_unit_test_teardown(test_header_count_431, h_teardown),
        cmocka_unit_test_teardown(test_body_content_length_413, h_teardown),
        cmocka_unit_test_teardown(test_body_chunked_413, h_teardown),
        cmocka_unit_test_teardown(test_slowloris_408, h_teardown),
        cmocka_unit_test_teardown(test_slowloris_trickle_408, h_teardown),
        cmocka_unit_test_teardown(test_slow_body_408, h_teardown),
        cmocka_unit_test_teardown(test_idle_keepalive_timeout, h_teardown),
        cmocka_unit_test_teardown(test_silent_connection_closed, h_teardown),
        cmocka_unit_test_teardown(test_max_connections_503, h_teardown),
        cmocka_unit_test_teardown(test_max_connections_rejected_slot_released, h_teardown),
        cmocka_unit_test_teardown(test_retry_after_configured, h_teardown),
        cmocka_unit_test_teardown(test_slow_reader_not_cut_off, h_teardown),
        cmocka_unit_test_teardown(test_write_timeout_counts_from_the_answer, h_tc_teardown),
        cmocka_unit_test_teardown(test_pipelined_flood_is_bounded, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
