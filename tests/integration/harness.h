/*
 * harness.h -- integration tests: a real Canteen app on 127.0.0.1 (or ::1)
 * port 0 in a background thread, raw-socket HTTP/1.1 helpers and libcurl
 * helpers.
 *
 * Rules every helper keeps: each read has a deadline (poll), each loop is
 * bounded in count and time, traffic only goes to 127.0.0.1 / ::1. Failures
 * are cmocka assertions, so the helpers are only called from a test (or a
 * cmocka setup/teardown), never from the server thread.
 *
 * A test that does not need the wire (keep-alive, disconnects, timeouts,
 * pipelining, backpressure, the bytes of a malformed request) goes through
 * the in-process test client instead: h_tc_start (no socket, no thread),
 * below.
 *
 * Typical socket test:
 *
 *     static void test_x(void **state) {
 *         h_server *s = h_start(NULL, NULL, NULL, NULL);
 *         *state = s;                       // teardown h_stop()s it
 *         h_conn *c = h_open(s);
 *         h_sendf(c, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
 *         h_response r;
 *         assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
 *         assert_int_equal(r.status, 200);
 *         h_response_free(&r);
 *     }
 */
#ifndef CANTEEN_TEST_HARNESS_H
#define CANTEEN_TEST_HARNESS_H

#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* cmocka needs these before its header */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <curl/curl.h>

#include <canteen.h>

/* Default deadline of one read (ms). Generous for sanitizer builds. */
#define H_TIMEOUT_MS 5000

/* ------------------------------------------------------------------------ */
/* Server                                                                    */
/* ------------------------------------------------------------------------ */

/* Called before the app runs, to register test-specific routes. */
typedef int (*h_setup_fn)(cn_app *app, void *arg);

typedef struct h_conn h_conn;

typedef struct h_server {
    cn_app *app;
    pthread_t thread;
    bool thread_started;
    int port;
    char host[64]; /* "127.0.0.1" or "::1" */
    int run_rc;    /* what cn_app_run returned (valid after h_stop/h_join) */
    bool stopped;
    h_conn *conns; /* every h_conn opened on this server and not yet closed */
} h_server;

/*
 * A config with short limits so that timeouts are fast in tests:
 * header_timeout_ms = keepalive_timeout_ms = 300, shutdown_timeout_ms = 2000.
 */
cn_config h_fast_config(void);

/*
 * Create an app with `cfg` (NULL: h_fast_config()), register the demo routes
 * and then setup(app, arg) if given, listen on host (NULL: "127.0.0.1") port
 * 0 and run it in a new thread. Returns once GET /health answers 200 (so
 * the loop runs and cn_app_stop works). Fails the test on any error.
 */
h_server *h_start(const cn_config *cfg, const char *host, h_setup_fn setup, void *arg);

/*
 * Close every h_conn still open on s, cn_app_stop, join (bounded), assert
 * cn_app_run returned 0, cn_app_free. NULL is allowed. Frees s.
 */
void h_stop(h_server *s);

/* As h_stop but without cn_app_stop: the app was already asked to stop. */
void h_join_and_free(h_server *s);

/*
 * Wait (bounded) for the server thread to end; returns cn_app_run's code,
 * or INT32_MIN if it did not end within timeout_ms. Idempotent.
 */
int h_join(h_server *s, int timeout_ms);

/*
 * The app was asked to stop: cn_app_run must return 0 within H_TIMEOUT_MS
 * (h_conns still open are closed only afterwards), then h_join_and_free(s);
 * *state is cleared so the teardown has nothing left to do.
 */
void h_assert_run_ended(void **state, h_server *s);

/*
 * cn_app_stop(s) past a short shutdown_timeout_ms with c's request still in
 * flight: c must be closed (EOF, no answer) between min_ms and max_ms after
 * the stop, then h_assert_run_ended(state, s).
 */
void h_stop_expect_dropped(void **state, h_server *s, h_conn *c, int64_t min_ms, int64_t max_ms);

/* cmocka teardown: h_stop(*state). */
int h_teardown(void **state);

/*
 * Poll cn_app_stats (read from the test thread: cn_app_stats allows it and
 * gives approximate figures, which is enough to wait for a value) until
 * connections_active == want. Returns true if it got there in time.
 */
bool h_wait_active(h_server *s, uint64_t want, int timeout_ms);

/*
 * As h_wait_active, for cn_stats.accept_pauses to move past `from`, looking
 * every 2 ms for at most timeout_ms; returns the last count read. *at (NULL
 * allowed) is a time just before the look that read it.
 */
uint64_t h_wait_accept_pauses_past(h_server *s, uint64_t from, int timeout_ms, int64_t *at);

/*
 * A trace of who ran, in order: h_trace appends from any thread (the loop,
 * the pool, the test), under a lock; the test compares or waits on it.
 * 511 bytes at most (the rest is dropped).
 */
void h_trace(const char *s);
void h_trace_reset(void);
bool h_trace_is(const char *want);     /* the whole trace is `want` */
bool h_trace_has(const char *part);    /* `part` is in it */
void h_assert_trace(const char *want); /* fails the test with both texts */

/* A snapshot of the counters (approximate while running). */
cn_stats h_stats(h_server *s);

/* GET /health on a fresh connection must answer 200 {"status":"ok"}. */
void h_assert_healthy(h_server *s);

/* ------------------------------------------------------------------------ */
/* Raw sockets                                                               */
/* ------------------------------------------------------------------------ */

/* Results of read helpers. */
enum {
    H_OK = 0,
    H_TIMEOUT = -1, /* deadline passed */
    H_EOF = -2,     /* connection closed (FIN or RST) before the end */
    H_BAD = -3,     /* malformed response */
    H_DATA = -4,    /* h_expect_eof: bytes arrived instead of EOF */
};

struct h_conn {
    int fd;
    h_server *srv;
    h_conn *next; /* in srv->conns */
    char *buf;    /* received, not yet consumed */
    size_t len, cap;
    bool eof;   /* FIN (or RST) seen */
    bool reset; /* it was a RST */
};

/* Connect to the server (same family as its host). Fails the test on error. */
h_conn *h_open(h_server *s);

/* As h_open with SO_RCVBUF set before connect (a slow reader). */
h_conn *h_open_rcvbuf(h_server *s, int rcvbuf);

/*
 * A connection to host:port that belongs to no h_server (an app run
 * without h_start): h_stop never closes it, h_close does. Fails the test
 * on error.
 */
h_conn *h_open_at(const char *host, int port);

/* Close and free (NULL allowed). */
void h_close(h_conn *c);

/* A plain connected socket to host:port (no h_conn), or -errno. */
int h_connect_fd(const char *host, int port);

/* Send all bytes (bounded: fails the test if the peer stops reading for
 * H_TIMEOUT_MS). */
void h_send(h_conn *c, const void *data, size_t len);
void h_sends(h_conn *c, const char *s);
void h_sendf(h_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Send without failing the test: 0, or -errno (EPIPE, ECONNRESET...). */
int h_try_send(h_conn *c, const void *data, size_t len);

/*
 * Wait up to timeout_ms for more bytes and append them to c->buf. Returns
 * the count read (> 0), H_EOF or H_TIMEOUT.
 */
ssize_t h_recv_more(h_conn *c, int timeout_ms);

/* Drop the first n buffered bytes. */
void h_consume(h_conn *c, size_t n);

/* One parsed response. */
typedef struct h_header {
    char *name;
    char *value;
} h_header;

typedef struct h_response {
    int minor; /* HTTP/1.x */
    int status;
    char reason[64];
    h_header *headers;
    size_t nheaders;
    char *body; /* NUL-terminated (malloc'd), body_len bytes */
    size_t body_len;
    bool has_content_length;
    long long content_length;
    bool chunked;
} h_response;

/*
 * Read one full response from c (status line, headers, and a body framed by
 * Content-Length or chunked). `head_request`: the request was HEAD, so no
 * body follows whatever the headers say. 1xx, 204 and 304 have no body.
 * H_OK, H_TIMEOUT, H_EOF or H_BAD. The deadline covers the whole response.
 */
int h_read_response_ex(h_conn *c, h_response *r, int timeout_ms, bool head_request);
int h_read_response(h_conn *c, h_response *r, int timeout_ms);
void h_response_free(h_response *r);

/* First header `name` (case-insensitive), or NULL. Count of such headers. */
const char *h_header_get(const h_response *r, const char *name);
size_t h_header_count(const h_response *r, const char *name);

/* Connection header contains the token (case-insensitive). */
bool h_connection_has(const h_response *r, const char *token);

/*
 * Assert what every Canteen response carries: Server: canteen, a valid
 * IMF-fixdate Date within a few seconds of now, and Content-Length (except
 * 1xx / 204) matching the body read.
 */
void h_assert_standard_headers(const h_response *r, bool head_request);

/*
 * Expect the peer to close within timeout_ms with no further bytes.
 * H_OK (EOF, no data), H_TIMEOUT, or H_DATA (bytes arrived: they stay in
 * c->buf).
 */
int h_expect_eof(h_conn *c, int timeout_ms);

/*
 * Expect nothing at all (no data, no EOF) for quiet_ms: H_TIMEOUT is the
 * good answer, otherwise H_DATA or H_EOF.
 */
int h_expect_quiet(h_conn *c, int quiet_ms);

/*
 * Read up to `max` responses (each within the overall deadline); returns
 * how many complete responses were read. With `out` non-NULL the first
 * min(max, n) are stored there (caller frees each).
 */
int h_read_responses(h_conn *c, int max, int timeout_ms, h_response *out);

/*
 * One request on a fresh connection: send `raw`, read one response into r
 * (H_OK asserted), close. Convenient for routing checks.
 */
void h_roundtrip(h_server *s, const char *raw, h_response *r);

/*
 * A framing/parsing attack: on a fresh connection send `raw` (which carries a
 * smuggled request after the bad one), expect exactly one response with
 * `status` and Connection: close, then EOF with no second response; then a
 * fresh connection must still be served.
 */
void h_expect_rejected(h_server *s, const char *raw, size_t len, int status);

/*
 * As h_expect_rejected without failing: 0 if all held, else 1 with the
 * reason in why. The health check afterwards is still asserted.
 */
int h_probe_rejected(h_server *s, const char *raw, size_t len, int status, char *why,
                     size_t whylen);

/*
 * A table of framing/parsing attacks: each `raw` (len bytes, embedded NULs
 * kept) must be answered `status` as h_probe_rejected checks it.
 */
typedef struct h_bad_case {
    const char *name;
    const char *raw;
    size_t len;
    int status;
} h_bad_case;

/* A row of that table from a string literal (sizeof keeps embedded NULs). */
/* clang-format off */
#define H_CASE(name, lit, status) {name, lit, sizeof(lit) - 1, status}
/* clang-format on */

/*
 * h_probe_rejected for every case: each one that fails is printed with its
 * name and reason, then the test fails once, with the count.
 */
void h_expect_all_rejected(h_server *s, const h_bad_case *cases, size_t n);

/* The same over a static array. */
#define H_EXPECT_ALL_REJECTED(s, cases)                                                            \
    h_expect_all_rejected((s), (cases), sizeof(cases) / sizeof((cases)[0]))

/* Milliseconds on a monotonic clock. */
int64_t h_now_ms(void);

/* ------------------------------------------------------------------------ */
/* libcurl                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct h_http {
    long status;
    char *body; /* NUL-terminated, malloc'd */
    size_t body_len;
    char *headers; /* raw header block(s) as received */
    size_t headers_len;
    long num_connects; /* new connections made by this transfer */
    long local_port;
} h_http;

/* A curl easy handle set up for s (timeouts, no proxy, no signals). */
CURL *h_curl_new(void);

/* GET/POST http://host:port<path> on `easy` (reused across calls so
 * keep-alive can reuse the connection). Returns the CURLcode. */
int h_curl_get(CURL *easy, h_server *s, const char *path, h_http *out);
int h_curl_post(CURL *easy, h_server *s, const char *path, const char *body,
                const char *content_type, h_http *out);
void h_http_free(h_http *h);

/* ------------------------------------------------------------------------ */
/* Shared test routes                                                        */
/* ------------------------------------------------------------------------ */

/* Size of GET /t/big's body; byte i is 'a' + i % 26. */
#define H_BIG_SIZE (4u * 1024 * 1024)

/*
 * An h_setup_fn registering routes several files use:
 *   GET  /t/big            H_BIG_SIZE bytes of text (backpressure, disconnects)
 *   GET  /t/param/{name}   cn_req_param(name) as text/plain
 *   GET  /t/path/{rest}    {"path":cn_req_path,"target":cn_req_target}
 *   GET  /t/query          {"name","flag","missing","x"} from cn_req_query
 *                          (null when NULL) and "n" from cn_req_query_int
 *   GET  /t/header         {"lower","upper","mixed","count","first"}: the
 *                          X-Custom-Header looked up three ways, the number of
 *                          headers, the first X-Dup value
 *   GET  /t/nocontent      204 (a body is set but must not be sent)
 *   GET  /t/fail           returns CN_EINVAL without a response (500)
 *   GET  /t/none           returns 0 without a response
 *   POST /t/raw            the raw body back (application/octet-stream) with
 *                          X-Body-Length
 */
int h_test_routes(cn_app *app, void *arg);

/* Check a /t/big body. */
bool h_big_body_ok(const char *body, size_t len);

/* ------------------------------------------------------------------------ */
/* Polling test-global state                                                 */
/* ------------------------------------------------------------------------ */

/* "The handler has not recorded this yet": the reset value of a result slot. */
#define H_NOT_YET INT_MIN

/* Sleep `ms` milliseconds (a nap between looks in a bounded poll). */
void h_nap_ms(int ms);

/* Poll `cond` every millisecond until it holds or `ms` pass; its last value. */
#define H_WAIT_UNTIL(cond, ms)                                                                     \
    __extension__({                                                                                \
        int64_t wu_deadline_ = h_now_ms() + (ms);                                                  \
        bool wu_ok_;                                                                               \
        while (!(wu_ok_ = (cond)) && h_now_ms() < wu_deadline_)                                    \
            h_nap_ms(1);                                                                           \
        wu_ok_;                                                                                    \
    })

/* Within 3 s the server must be at rest (no request, no coroutine live). */
void h_assert_settles(h_server *s);

/* A cn_spawn / cn_to_thread function that does nothing and returns 0. */
int h_noop(void *arg);

/* ------------------------------------------------------------------------ */
/* Captured log lines                                                        */
/* ------------------------------------------------------------------------ */

/* Install the capturing log hook (call before any app starts: it is read
 * without a lock). Captured lines are also echoed to stderr. */
void h_log_capture_start(void);

/* Remove the hook (after the last app is freed) and drop what was captured. */
void h_log_capture_stop(void);

/* Drop every captured line. */
void h_log_reset(void);

/* Captured lines at `level` (< 0: any level) containing every non-NULL needle. */
int h_log_count(int level, const char *a, const char *b);

/* The first captured line containing `a`, copied into buf ("" if none). */
void h_log_find(const char *a, char *buf, size_t size);

/* ------------------------------------------------------------------------ */
/* JSON over raw sockets                                                     */
/* ------------------------------------------------------------------------ */

/* Open a fresh connection to s and send GET `path` on it (not read). */
h_conn *h_send_get(h_server *s, const char *path);

/* Read one response from c, assert its status, return its body parsed as
 * JSON (caller deletes). */
cJSON *h_read_json(h_conn *c, int status);

/* GET path on a fresh connection; the JSON body of a `status` answer. */
cJSON *h_get_json(h_server *s, const char *path, int status);

/* The number at `key` in o (fails the test if there is none). */
int64_t h_jint(const cJSON *o, const char *key);

/* Assert the error code at `key` is `want`, naming both on failure. */
void h_assert_code(const cJSON *o, const char *key, int want);

/* ------------------------------------------------------------------------ */
/* Misc                                                                      */
/* ------------------------------------------------------------------------ */

/* malloc'd printf. */
char *h_strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Is the IPv6 loopback usable here? */
bool h_ipv6_available(void);

/* A port on 127.0.0.1 where nothing listens (bound, read, closed). */
int h_dead_port(void);

/* A blocking sleep: the calling thread does nothing else for `ms` (what a
 * handler that holds its thread does). */
void h_block_ms(int64_t ms);

/* ------------------------------------------------------------------------ */
/* One request, one response                                                 */
/* ------------------------------------------------------------------------ */

/*
 * On a fresh connection: "<method> <target> HTTP/1.1", a Host, the `extra`
 * header lines (each ending in CRLF; NULL: none), then one response into r
 * (no body read for HEAD; 30 s deadline, asserted), and close.
 */
void h_request(h_server *s, const char *method, const char *target, const char *extra,
               h_response *r);

/* The response's first header `name` is there and equals `want`. */
void h_assert_header(const h_response *r, const char *name, const char *want);

/* ------------------------------------------------------------------------ */
/* The in-process test client (canteen/testclient.h)                         */
/* ------------------------------------------------------------------------ */

/*
 * An app behind the test client: no listening socket and no server thread;
 * the app's loop runs on the test's thread while a call of the client
 * waits. Typical test:
 *
 *     static void test_x(void **state) {
 *         h_client *c = h_tc_start(NULL, setup, NULL);
 *         *state = c;                       // teardown h_tc_stop()s it
 *         cn_test_response r;
 *         h_tc_request(c, "GET", "/health", NULL, NULL, &r);
 *         assert_int_equal(r.status, 200);
 *         cn_test_response_free(&r);
 *     }
 */
typedef struct h_client {
    cn_app *app;
    cn_test_client *tc;
} h_client;

/*
 * As h_start, in process: an app with `cfg` (NULL: h_fast_config()), the
 * demo routes, then setup(app, arg) if given, behind a test client (the
 * startup hooks run here). Fails the test on any error.
 */
h_client *h_tc_start(const cn_config *cfg, h_setup_fn setup, void *arg);

/*
 * cn_test_client_free (the graceful stop and the shutdown hooks; 0
 * asserted), then cn__app_free_checked (no handle left). NULL allowed.
 * Frees c.
 */
void h_tc_stop(h_client *c);

/* cmocka teardown: h_tc_stop(*state). */
int h_tc_teardown(void **state);

/*
 * One request (`headers`: NULL-terminated "Name: value" strings, or NULL;
 * `body`: a string, or NULL for none) with the default timeout; the
 * client's 0 asserted. The caller frees r.
 */
void h_tc_request(h_client *c, const char *method, const char *target, const char *const *headers,
                  const char *body, cn_test_response *r);

/* GET path with `headers`: the JSON body of a `status` answer (caller deletes). */
cJSON *h_tc_json(h_client *c, const char *path, const char *const *headers, int status);

/* The response's first header `name` is there and equals `want`. */
void h_tc_assert_header(const cn_test_response *r, const char *name, const char *want);

/* Its Content-Length as a number, -1 if it has none. */
long long h_tc_content_length(const cn_test_response *r);

/* Its body came chunked (Transfer-Encoding: chunked). */
bool h_tc_chunked(const cn_test_response *r);

/* h_assert_standard_headers for a response of the test client. */
void h_tc_assert_standard_headers(const cn_test_response *r, bool head_request);

/* GET /health must answer 200 {"status":"ok"}. */
void h_tc_assert_healthy(h_client *c);

/* Within 3 s the app must be at rest (cn_test_settle): as h_assert_settles. */
void h_tc_settle(h_client *c);

/* A snapshot of the counters. */
cn_stats h_tc_stats(h_client *c);

#endif
