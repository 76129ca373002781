/*
 * test_stream.c -- streamed responses (cn_res_stream_*) over real sockets:
 * chunk framing to the byte, libcurl decoding, backpressure against a slow
 * reader (bounded by cn_stats.write_queue_peak, not by timing), HTTP/1.0,
 * HEAD, keep-alive and pipelining after a stream, errors mid-stream,
 * client disconnects while the writer is parked, and the call rules.
 *
 * Handlers record what their calls returned in test-global atomics; the
 * test reads them once the response (or the disconnect) is through.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* One write of the pattern routes: 16 KiB. */
#define PIECE (16 * 1024)
/* More than the server's stream high-water mark plus one piece, and well
 * under what a body held whole would reach: the backpressure bound. */
#define QUEUE_BOUND (1024 * 1024)

static atomic_int last_rc = H_NOT_YET; /* the call that ended a writer's loop */
static atomic_int child_rc[2];         /* /s/children: each writer's result */
static atomic_int rules[16];           /* /s/rules and /s/after-body */

/* Byte k of a pattern body is 'a' + k % 26. */
static void fill_pattern(char *buf, size_t n, uint64_t off)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)('a' + (off + i) % 26);
}

/* ---- routes ---- */

/* GET /s/parts: "hello", an empty write (sends nothing), "world!" */
static int rt_parts(cn_req *req, cn_res *res)
{
    int rc;

    (void)req;
    rc = cn_res_header(res, "X-Stream", "yes");
    rc = rc ? rc : cn_res_stream_begin(res, 200, "text/plain");
    rc = rc ? rc : cn_res_stream_write(res, "hello", 5);
    rc = rc ? rc : cn_res_stream_write(res, "", 0);
    rc = rc ? rc : cn_res_stream_write(res, "world!", 6);
    return rc ? rc : cn_res_stream_end(res);
}

/* GET /s/pattern/{kib:int}: kib KiB of the pattern in PIECE writes with no
 * wait between them: only backpressure can hold this handler back */
static int rt_pattern(cn_req *req, cn_res *res)
{
    static char buf[PIECE]; /* one loop thread: one writer fills it at a time */
    int64_t kib;
    int rc;

    cn_req_param_int(req, "kib", &kib);
    rc = cn_res_stream_begin(res, 200, "text/plain");
    for (uint64_t off = 0; rc == 0 && off < (uint64_t)kib * 1024; off += PIECE) {
        fill_pattern(buf, PIECE, off);
        rc = cn_res_stream_write(res, buf, PIECE);
    }
    atomic_store(&last_rc, rc);
    return rc ? rc : cn_res_stream_end(res);
}

/* GET /s/forever: PIECE writes until one fails (the client is gone) */
static int rt_forever(cn_req *req, cn_res *res)
{
    static char buf[PIECE];
    int rc;

    (void)req;
    fill_pattern(buf, PIECE, 0);
    rc = cn_res_stream_begin(res, 200, "text/plain");
    while (rc == 0)
        rc = cn_res_stream_write(res, buf, PIECE);
    atomic_store(&last_rc, rc);
    return rc;
}

/* GET /s/ticks: "tick\n" every 20 ms until a call fails */
static int rt_ticks(cn_req *req, cn_res *res)
{
    int rc;

    (void)req;
    rc = cn_res_stream_begin(res, 200, "text/plain");
    while (rc == 0) {
        rc = cn_res_stream_write(res, "tick\n", 5);
        rc = rc ? rc : cn_sleep(20);
    }
    atomic_store(&last_rc, rc);
    return rc;
}

/* GET /s/drip?n=: n pieces of 512 bytes, one every 10 ms (n = 400 by
 * default: 200 KiB over 4 s, too little ever to fill the 256 KiB queue) */
static int rt_drip(cn_req *req, cn_res *res)
{
    static char buf[512];
    int64_t n = 400;
    int rc;

    cn_req_query_int(req, "n", &n);
    memset(buf, 'd', sizeof buf);
    rc = cn_res_stream_begin(res, 200, "text/plain");
    for (int64_t i = 0; rc == 0 && i < n; i++) {
        rc = cn_res_stream_write(res, buf, sizeof buf);
        rc = rc ? rc : cn_sleep(10);
    }
    atomic_store(&last_rc, rc);
    return rc ? rc : cn_res_stream_end(res);
}

typedef struct writer {
    cn_res *res;
    char letter;
    int index;
} writer;

/* 2 MiB of one letter in PIECE writes */
static int write_letters(void *arg)
{
    writer *w = arg;
    char buf[PIECE];
    int rc = 0;

    memset(buf, w->letter, sizeof buf);
    for (int i = 0; rc == 0 && i < 2 * 1024 * 1024 / PIECE; i++)
        rc = cn_res_stream_write(w->res, buf, sizeof buf);
    atomic_store(&child_rc[w->index], rc);
    return rc;
}

/* GET /s/children: two child tasks write one stream at once (both park) */
static int rt_children(cn_req *req, cn_res *res)
{
    writer *w = cn_req_alloc(req, 2 * sizeof(*w));
    cn_task *t[2];
    int rc;

    if (w == NULL)
        return CN_ENOMEM;
    rc = cn_res_stream_begin(res, 200, "text/plain");
    for (int i = 0; rc == 0 && i < 2; i++) {
        w[i] = (writer){res, (char)('A' + i), i};
        rc = cn_spawn(write_letters, &w[i], &t[i]);
    }
    rc = rc ? rc : cn_gather(t, 2, NULL);
    return rc ? rc : cn_res_stream_end(res);
}

/* GET /s/fail: a failure after the head: the body is cut short */
static int rt_fail(cn_req *req, cn_res *res)
{
    int rc;

    (void)req;
    rc = cn_res_stream_begin(res, 200, "text/plain");
    rc = rc ? rc : cn_res_stream_write(res, "partial", 7);
    return rc ? rc : CN_EINVAL;
}

/* GET /s/noend: returns 0 without cn_res_stream_end */
static int rt_noend(cn_req *req, cn_res *res)
{
    int rc;

    (void)req;
    rc = cn_res_stream_begin(res, 201, NULL);
    return rc ? rc : cn_res_stream_write(res, "x", 1);
}

/* GET /s/rules: each call out of order, recorded in rules[] */
static int rt_rules(cn_req *req, cn_res *res)
{
    int i = 0;

    (void)req;
    atomic_store(&rules[i++], cn_res_stream_write(res, "x", 1));
    atomic_store(&rules[i++], cn_res_stream_end(res));
    atomic_store(&rules[i++], cn_res_stream_begin(res, 204, NULL));
    atomic_store(&rules[i++], cn_res_stream_begin(res, 99, NULL));
    atomic_store(&rules[i++], cn_res_stream_begin(res, 200, "text/plain\r\nX-Evil: 1"));
    atomic_store(&rules[i++], cn_res_header(res, "Content-Type", "text/csv"));
    atomic_store(&rules[i++], cn_res_stream_begin(res, 200, "text/plain"));
    atomic_store(&rules[i++], cn_res_stream_begin(res, 200, "text/plain"));
    atomic_store(&rules[i++], cn_res_text(res, 200, "late"));
    atomic_store(&rules[i++], cn_res_header(res, "X-Late", "1"));
    atomic_store(&rules[i++], cn_res_stream_write(res, NULL, 1));
    atomic_store(&rules[i++], cn_res_stream_write(res, "a,b\n", 4));
    atomic_store(&rules[i++], cn_res_stream_end(res));
    atomic_store(&rules[i++], cn_res_stream_write(res, "x", 1));
    atomic_store(&rules[i++], cn_res_stream_end(res));
    return 0;
}

/* GET /s/after-body: a body is set, then a stream is tried */
static int rt_after_body(cn_req *req, cn_res *res)
{
    int rc = cn_res_text(res, 200, "body");

    (void)req;
    atomic_store(&rules[0], cn_res_stream_begin(res, 200, NULL));
    return rc;
}

/* GET /s/sync, a sync route: no coroutine, so no stream; a plain answer */
static int rt_sync(cn_req *req, cn_res *res)
{
    cJSON *o = cJSON_CreateObject();

    (void)req;
    cJSON_AddNumberToObject(o, "begin", cn_res_stream_begin(res, 200, NULL));
    cJSON_AddNumberToObject(o, "write", cn_res_stream_write(res, "x", 1));
    cJSON_AddNumberToObject(o, "end", cn_res_stream_end(res));
    return cn_res_json(res, 200, o);
}

static int stream_routes(cn_app *app, void *arg)
{
    cn_route_opts sync = {.mode = CN_ROUTE_SYNC};
    int rc = h_test_routes(app, arg);

    rc = rc ? rc : cn_app_route(app, "GET /s/parts", rt_parts, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /s/pattern/{kib:int}", rt_pattern, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /s/forever", rt_forever, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /s/ticks", rt_ticks, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /s/drip", rt_drip, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /s/children", rt_children, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /s/fail", rt_fail, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /s/noend", rt_noend, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /s/rules", rt_rules, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /s/after-body", rt_after_body, NULL);
    rc = rc ? rc : cn_app_route_ex(app, "GET /s/sync", rt_sync, NULL, &sync);
    return rc;
}

/* ---- helpers ---- */

static h_server *start(void **state, const cn_config *cfg)
{
    h_server *s;

    atomic_store(&last_rc, H_NOT_YET);
    for (int i = 0; i < 16; i++)
        atomic_store(&rules[i], H_NOT_YET);
    s = h_start(cfg, NULL, stream_routes, NULL);
    *state = s;
    return s;
}

/* A config whose write timeout cannot cut a slow but steady reader short. */
static cn_config patient_config(void)
{
    cn_config cfg = h_fast_config();
    cfg.keepalive_timeout_ms = 10000;
    return cfg;
}

/* Receive until c->buf holds at least n bytes. */
static void recv_at_least(h_conn *c, size_t n, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;

    while (c->len < n) {
        int64_t left = deadline - h_now_ms();
        assert_true(left > 0);
        assert_true(h_recv_more(c, (int)left) > 0);
    }
}

/* Receive until the response head is in; its length (through CRLFCRLF). */
static size_t recv_head(h_conn *c, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;

    for (;;) {
        char *end = c->len ? strstr(c->buf, "\r\n\r\n") : NULL;
        int64_t left = deadline - h_now_ms();
        if (end)
            return (size_t)(end - c->buf) + 4;
        assert_true(left > 0);
        assert_true(h_recv_more(c, (int)left) > 0);
    }
}

/* What a chunked body held, read as it arrives (never kept whole). */
typedef struct body_count {
    uint64_t len;
    uint64_t letters[2];  /* 'A' and 'B' bytes */
    uint64_t pattern_bad; /* lowercase bytes off the a..z pattern */
    uint64_t chunks;
} body_count;

static void count_bytes(body_count *b, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++, b->len++) {
        char ch = p[i];
        if (ch == 'A' || ch == 'B')
            b->letters[ch - 'A']++;
        else if (ch != (char)('a' + b->len % 26))
            b->pattern_bad++;
    }
}

/* Take one CRLF-terminated line from c (receiving as needed) into line. */
static void take_line(h_conn *c, char *line, size_t size, int64_t deadline)
{
    char *eol;

    while ((eol = c->len ? strstr(c->buf, "\r\n") : NULL) == NULL) {
        assert_true(c->len < size);
        assert_true(h_now_ms() < deadline);
        assert_true(h_recv_more(c, (int)(deadline - h_now_ms())) > 0);
    }
    assert_true((size_t)(eol - c->buf) < size);
    memcpy(line, c->buf, (size_t)(eol - c->buf));
    line[eol - c->buf] = 0;
    h_consume(c, (size_t)(eol - c->buf) + 2);
}

/*
 * Read a chunked body (the head already consumed) piece by piece, as a
 * slow client would, counting its bytes, up to and including the last
 * chunk. Fails the test on bad framing.
 */
static body_count read_chunked(h_conn *c, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    body_count b = {0};
    char line[64];

    for (;;) {
        char *end;
        unsigned long long size;

        take_line(c, line, sizeof line, deadline);
        size = strtoull(line, &end, 16);
        assert_true(end != line && *end == 0);
        if (size == 0)
            break;
        b.chunks++;
        while (size > 0) {
            size_t n = c->len < size ? c->len : (size_t)size;
            if (n == 0) {
                assert_true(h_now_ms() < deadline);
                assert_true(h_recv_more(c, (int)(deadline - h_now_ms())) > 0);
                continue;
            }
            count_bytes(&b, c->buf, n);
            h_consume(c, n);
            size -= n;
        }
        take_line(c, line, sizeof line, deadline);
        assert_string_equal(line, "");
    }
    take_line(c, line, sizeof line, deadline); /* no trailers: the final CRLF */
    assert_string_equal(line, "");
    return b;
}

/* The next response on c is GET /health's, whole and alone. */
static void read_health(h_conn *c)
{
    h_response r;

    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"status\":\"ok\"}");
    h_response_free(&r);
}

/* A code a handler recorded, against the one expected. */
static void assert_rc(const char *what, int got, int want)
{
    if (got != want)
        fail_msg("%s: got %s (%d), want %s (%d)", what, cn_err_name(got), got, cn_err_name(want),
                 want);
}

/* ---- tests ---- */

/* The wire bytes of a stream: the head, then exactly the chunks written. */
static void test_chunk_framing_is_byte_exact(void **state)
{
    static const char body[] = "5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n";
    h_server *s = start(state, NULL);
    h_conn *c = h_open(s);
    size_t hlen;
    char *head;

    h_sends(c, "GET /s/parts HTTP/1.1\r\nHost: t\r\n\r\n");
    hlen = recv_head(c, H_TIMEOUT_MS);
    recv_at_least(c, hlen + strlen(body), H_TIMEOUT_MS);
    head = strndup(c->buf, hlen);
    assert_non_null(head);
    assert_true(strncmp(head, "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_non_null(strstr(head, "\r\nTransfer-Encoding: chunked\r\n"));
    assert_non_null(strstr(head, "\r\nContent-Type: text/plain\r\n"));
    assert_non_null(strstr(head, "\r\nX-Stream: yes\r\n"));
    assert_non_null(strstr(head, "\r\nServer: canteen\r\n"));
    assert_null(strstr(head, "Content-Length"));
    assert_null(strstr(head, "Connection"));
    free(head);
    assert_memory_equal(c->buf + hlen, body, strlen(body));
    h_consume(c, hlen + strlen(body));
    /* nothing after the last chunk: the next answer parses cleanly */
    h_sends(c, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    read_health(c);
}

/* A real client decodes it: the demo's NDJSON lines, and the parts. */
static void test_curl_decodes_stream(void **state)
{
    h_server *s = start(state, NULL);
    CURL *easy = h_curl_new();
    char want[512] = "";
    h_http out;

    for (int i = 0; i < 5; i++) {
        size_t n = strlen(want);
        snprintf(want + n, sizeof want - n, "{\"i\":%d,\"of\":5}\n", i);
    }
    assert_int_equal(h_curl_get(easy, s, "/stream/5", &out), CURLE_OK);
    assert_int_equal(out.status, 200);
    assert_string_equal(out.body, want);
    assert_non_null(strcasestr(out.headers, "content-type: application/x-ndjson"));
    h_http_free(&out);
    /* the same connection serves the next one */
    assert_int_equal(h_curl_get(easy, s, "/s/parts", &out), CURLE_OK);
    assert_int_equal(out.status, 200);
    assert_string_equal(out.body, "helloworld!");
    assert_int_equal(out.num_connects, 0);
    h_http_free(&out);
    curl_easy_cleanup(easy);
}

/*
 * 10 MiB written with no pause, read by a client with a small receive
 * buffer: the server never holds more than about the high-water mark. A
 * body set whole (/t/big, 4 MiB) is the control: the same counter sees it.
 */
static void test_backpressure_bounds_write_queue(void **state)
{
    cn_config cfg = patient_config();
    h_server *s = start(state, &cfg);
    h_conn *c = h_open_rcvbuf(s, 8192);
    body_count b;
    h_response r;

    h_sends(c, "GET /s/pattern/10240 HTTP/1.1\r\nHost: t\r\n\r\n");
    h_consume(c, recv_head(c, H_TIMEOUT_MS));
    b = read_chunked(c, 60000);
    assert_int_equal(b.len, 10u * 1024 * 1024);
    assert_int_equal(b.chunks, 10u * 1024 * 1024 / PIECE);
    assert_int_equal(b.pattern_bad, 0);
    assert_rc("writer", atomic_load(&last_rc), 0);
    assert_true(h_stats(s).write_queue_peak < QUEUE_BOUND);

    /* the control: a whole body is held at once */
    h_sends(c, "GET /t/big HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(h_read_response(c, &r, 60000), H_OK);
    assert_true(h_big_body_ok(r.body, r.body_len));
    h_response_free(&r);
    assert_true(h_stats(s).write_queue_peak >= H_BIG_SIZE);
}

/* Two tasks writing one stream both park on backpressure and both go on. */
static void test_concurrent_writers_share_backpressure(void **state)
{
    cn_config cfg = patient_config();
    h_server *s = start(state, &cfg);
    h_conn *c = h_open_rcvbuf(s, 8192);
    body_count b;

    h_sends(c, "GET /s/children HTTP/1.1\r\nHost: t\r\n\r\n");
    h_consume(c, recv_head(c, H_TIMEOUT_MS));
    b = read_chunked(c, 60000);
    assert_int_equal(b.letters[0], 2u * 1024 * 1024);
    assert_int_equal(b.letters[1], 2u * 1024 * 1024);
    assert_int_equal(b.len, 4u * 1024 * 1024);
    assert_rc("writer A", atomic_load(&child_rc[0]), 0);
    assert_rc("writer B", atomic_load(&child_rc[1]), 0);
    assert_true(h_stats(s).write_queue_peak < QUEUE_BOUND);
    h_assert_settles(s);
}

/* HTTP/1.0: no chunking; the body ends where the connection does. */
static void test_http10_is_close_delimited(void **state)
{
    h_server *s = start(state, NULL);
    static const char *const requests[] = {
        "GET /s/parts HTTP/1.0\r\n\r\n",
        /* asking to keep the connection changes nothing: the close is the end */
        "GET /s/parts HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    };

    for (size_t i = 0; i < 2; i++) {
        h_conn *c = h_open(s);
        h_response r;
        h_sends(c, requests[i]);
        assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK); /* to EOF */
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "helloworld!");
        assert_null(h_header_get(&r, "transfer-encoding"));
        assert_null(h_header_get(&r, "content-length"));
        assert_true(h_connection_has(&r, "close"));
        h_response_free(&r);
        h_close(c);
    }
}

/* HEAD: the head only, and the connection goes on. */
static void test_head_gets_head_only(void **state)
{
    h_server *s = start(state, NULL);
    h_conn *c = h_open(s);
    h_response r;

    h_sends(c, "HEAD /s/parts HTTP/1.1\r\nHost: t\r\n\r\n"
               "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(h_read_response_ex(c, &r, H_TIMEOUT_MS, true), H_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(h_header_get(&r, "transfer-encoding"), "chunked");
    assert_string_equal(h_header_get(&r, "x-stream"), "yes");
    h_response_free(&r);
    /* had a chunk leaked, this would not parse */
    read_health(c);
}

/* Pipelined requests around streams are answered in order on one connection. */
static void test_pipelined_after_stream(void **state)
{
    h_server *s = start(state, NULL);
    h_conn *c = h_open(s);
    static const char *const want[] = {
        "helloworld!",
        "{\"i\":0,\"of\":3}\n{\"i\":1,\"of\":3}\n{\"i\":2,\"of\":3}\n",
        "{\"id\":1,\"name\":\"user1\"}",
        "x",
        "{\"status\":\"ok\"}",
    };

    /* /s/parts streams without waiting; /stream/3 parks between lines */
    h_sends(c, "GET /s/parts HTTP/1.1\r\nHost: t\r\n\r\n"
               "GET /stream/3 HTTP/1.1\r\nHost: t\r\n\r\n"
               "GET /users/1 HTTP/1.1\r\nHost: t\r\n\r\n"
               "GET /s/noend HTTP/1.1\r\nHost: t\r\n\r\n"
               "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        h_response r;
        assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
        assert_string_equal(r.body, want[i]);
        assert_false(h_connection_has(&r, "close"));
        if (i == 3)
            assert_int_equal(r.status, 201); /* ended for the handler */
        h_response_free(&r);
    }
}

/* An error after the head: no last chunk, then the connection closes. */
static void test_error_mid_stream_truncates(void **state)
{
    h_server *s = start(state, NULL);
    h_conn *c = h_open(s);
    CURL *easy = h_curl_new();
    h_http out;
    h_response r;

    h_log_reset();
    h_sends(c, "GET /s/fail HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_EOF);
    assert_non_null(strstr(c->buf, "\r\n\r\n7\r\npartial\r\n"));
    assert_null(strstr(c->buf, "\r\n0\r\n\r\n"));
    assert_int_equal(h_log_count(CN_LOG_ERROR, "GET /s/fail", "CN_EINVAL"), 1);
    /* curl sees a transfer cut short, not a complete body */
    assert_int_not_equal(h_curl_get(easy, s, "/s/fail", &out), CURLE_OK);
    h_http_free(&out);
    curl_easy_cleanup(easy);
    h_assert_settles(s);
    h_assert_healthy(s);
}

/* The client leaves while the writer is parked on backpressure. */
static void test_disconnect_while_parked_on_backpressure(void **state)
{
    cn_config cfg = patient_config();
    h_server *s = start(state, &cfg);
    h_conn *c = h_open_rcvbuf(s, 4096);

    h_sends(c, "GET /s/forever HTTP/1.1\r\nHost: t\r\n\r\n");
    /* the queue passed the mark: the writer parks in that same step, and
     * (its writes being its only awaits) stays parked until woken */
    assert_true(H_WAIT_UNTIL(h_stats(s).write_queue_peak > 256 * 1024, H_TIMEOUT_MS));
    assert_int_equal(atomic_load(&last_rc), H_NOT_YET);
    h_close(c);
    assert_true(H_WAIT_UNTIL(atomic_load(&last_rc) != H_NOT_YET, H_TIMEOUT_MS));
    assert_rc("writer", atomic_load(&last_rc), CN_ECANCELED);
    h_assert_settles(s);
    assert_true(h_wait_active(s, 0, H_TIMEOUT_MS));
    h_assert_healthy(s);
}

/* A client that stops reading is dropped after keepalive_timeout_ms. */
static void test_stalled_reader_is_dropped(void **state)
{
    h_server *s = start(state, NULL); /* keepalive_timeout_ms = 300 */
    h_conn *c = h_open_rcvbuf(s, 4096);

    h_sends(c, "GET /s/forever HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(H_WAIT_UNTIL(atomic_load(&last_rc) != H_NOT_YET, H_TIMEOUT_MS));
    assert_rc("writer", atomic_load(&last_rc), CN_ECANCELED);
    h_assert_settles(s);
    h_close(c);
}

/*
 * A client that reads nothing of a slow stream is dropped too: the stream
 * never fills the 256 KiB queue (the writer never parks) and mostly sits in
 * the kernel's buffers, yet no progress for keepalive_timeout_ms (300 ms)
 * closes the connection and cancels the writer, long before the stream's
 * 4 s end.
 */
static void test_stalled_reader_of_slow_stream_is_dropped(void **state)
{
    h_server *s = start(state, NULL); /* keepalive_timeout_ms = 300 */
    h_conn *c = h_open_rcvbuf(s, 4096);
    int64_t t0 = h_now_ms(), took;

    h_sends(c, "GET /s/drip HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(H_WAIT_UNTIL(atomic_load(&last_rc) != H_NOT_YET, H_TIMEOUT_MS));
    took = h_now_ms() - t0;
    print_message("a reader of nothing dropped after %lld ms (stream: 4000 ms)\n", (long long)took);
    assert_rc("writer", atomic_load(&last_rc), CN_ECANCELED);
    assert_true(took >= 300);
    assert_true(took < 2500);
    assert_int_equal(h_stats(s).connections_stalled, 1);
    assert_true(h_stats(s).write_queue_peak < 256 * 1024); /* it never parked */
    h_assert_settles(s);
    assert_true(h_wait_active(s, 0, H_TIMEOUT_MS));
    h_close(c);
    h_assert_healthy(s);
}

/* A client that reads a slow stream as it comes keeps it past the timeout:
 * 600 ms of pieces, twice keepalive_timeout_ms, all delivered. */
static void test_reader_of_slow_stream_is_kept(void **state)
{
    h_server *s = start(state, NULL); /* keepalive_timeout_ms = 300 */
    h_conn *c = h_open(s);
    int64_t deadline = h_now_ms() + H_TIMEOUT_MS;

    h_sends(c, "GET /s/drip?n=60 HTTP/1.1\r\nHost: t\r\n\r\n");
    while (c->len < 5 || memcmp(c->buf + c->len - 5, "0\r\n\r\n", 5) != 0) {
        assert_true(h_now_ms() < deadline);
        assert_true(h_recv_more(c, (int)(deadline - h_now_ms())) > 0);
    }
    assert_rc("writer", atomic_load(&last_rc), 0);
    assert_int_equal(h_stats(s).connections_stalled, 0);
    h_close(c);
    h_assert_settles(s);
}

/* The client leaves while the handler sleeps between chunks. */
static void test_disconnect_between_chunks(void **state)
{
    h_server *s = start(state, NULL);
    h_conn *c = h_open(s);
    size_t hlen;

    h_sends(c, "GET /s/ticks HTTP/1.1\r\nHost: t\r\n\r\n");
    hlen = recv_head(c, H_TIMEOUT_MS);
    recv_at_least(c, hlen + strlen("5\r\ntick\n\r\n"), H_TIMEOUT_MS);
    assert_memory_equal(c->buf + hlen, "5\r\ntick\n\r\n", 10);
    h_close(c);
    assert_true(H_WAIT_UNTIL(atomic_load(&last_rc) != H_NOT_YET, H_TIMEOUT_MS));
    assert_rc("writer", atomic_load(&last_rc), CN_ECANCELED);
    h_assert_settles(s);
    assert_true(h_wait_active(s, 0, H_TIMEOUT_MS));
}

/* Each call out of order gets its error; the stream itself is whole. */
static void test_call_rules(void **state)
{
    static const int want[] = {
        CN_ESTATE,      CN_ESTATE,     CN_EINVAL,     CN_EINVAL,     CN_EBADHEADER,
        0 /* header */, 0 /* begin */, CN_ERESPONDED, CN_ERESPONDED, CN_ERESPONDED,
        CN_EINVAL,      0 /* write */, 0 /* end */,   CN_ESTATE,     CN_ESTATE,
    };
    h_server *s = start(state, NULL);
    h_conn *c = h_open(s);
    h_response r;

    h_sends(c, "GET /s/rules HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "a,b\n");
    /* the Content-Type header added before the stream wins */
    assert_string_equal(h_header_get(&r, "content-type"), "text/csv");
    assert_null(h_header_get(&r, "x-late"));
    h_response_free(&r);
    /* the last calls come after the response is complete: let them run */
    h_assert_settles(s);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char what[32];
        snprintf(what, sizeof what, "call %zu", i);
        assert_rc(what, atomic_load(&rules[i]), want[i]);
    }

    h_sends(c, "GET /s/after-body HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_string_equal(r.body, "body");
    h_response_free(&r);
    assert_rc("begin after a body", atomic_load(&rules[0]), CN_ERESPONDED);
}

/* A sync route has no coroutine to park: CN_ENOTCORO, and a normal answer. */
static void test_sync_route_gets_enotcoro(void **state)
{
    h_server *s = start(state, NULL);
    h_conn *c = h_send_get(s, "/s/sync");
    cJSON *o = h_read_json(c, 200);

    h_assert_code(o, "begin", CN_ENOTCORO);
    h_assert_code(o, "write", CN_ENOTCORO);
    h_assert_code(o, "end", CN_ENOTCORO);
    cJSON_Delete(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_chunk_framing_is_byte_exact, h_teardown),
        cmocka_unit_test_teardown(test_curl_decodes_stream, h_teardown),
        cmocka_unit_test_teardown(test_backpressure_bounds_write_queue, h_teardown),
        cmocka_unit_test_teardown(test_concurrent_writers_share_backpressure, h_teardown),
        cmocka_unit_test_teardown(test_http10_is_close_delimited, h_teardown),
        cmocka_unit_test_teardown(test_head_gets_head_only, h_teardown),
        cmocka_unit_test_teardown(test_pipelined_after_stream, h_teardown),
        cmocka_unit_test_teardown(test_error_mid_stream_truncates, h_teardown),
        cmocka_unit_test_teardown(test_disconnect_while_parked_on_backpressure, h_teardown),
        cmocka_unit_test_teardown(test_stalled_reader_is_dropped, h_teardown),
        cmocka_unit_test_teardown(test_stalled_reader_of_slow_stream_is_dropped, h_teardown),
        cmocka_unit_test_teardown(test_reader_of_slow_stream_is_kept, h_teardown),
        cmocka_unit_test_teardown(test_disconnect_between_chunks, h_teardown),
        cmocka_unit_test_teardown(test_call_rules, h_teardown),
        cmocka_unit_test_teardown(test_sync_route_gets_enotcoro, h_teardown),
    };
    int rc;

    h_log_capture_start();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    h_log_capture_stop();
    return rc;
}
