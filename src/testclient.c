/*
 * testclient.c -- the in-process test client (canteen/testclient.h).
 *
 * The client holds one end of a socketpair; the app serves the other end
 * as one of its connections (cn__app_adopt_fd), through the same conn.c,
 * parser and dispatch a TCP client gets. The app's loop runs on the
 * caller's thread, one turn at a time, while the client waits: a uv_poll
 * on the client's end wakes that turn when the answer arrives, and a timer
 * bounds the wait. The response is read back with llhttp, as a client
 * would; a streamed read (cn_test_stream) keeps that parser between calls.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>
#include <unistd.h>

#include <llhttp.h>
#include <uv.h>

#include <canteen/uv.h>

#include "app.h"
#include "buf.h"
#include "common.h"

#define DEFAULT_TIMEOUT_MS 30000

/* A response being read: its head into `out`, its body into `body`. */
typedef struct reading {
    llhttp_t parser;
    cn_test_response *out; /* the caller's, until the head is in */
    cn__buf field, value, body;
    size_t cap_headers;
    size_t taken; /* of body, handed out by cn_test_read */
    bool in_value, head_done, done, head;
} reading;

struct cn_test_client {
    cn_app *app;
    int fd; /* our end, -1 when closed */
    uv_poll_t *poll;
    uv_timer_t *timer;
    bool ready, timed_out;
    bool streaming; /* a cn_test_stream's body is still to be read */
    reading rd;
};

static void on_close_free(uv_handle_t *h)
{
    free(h);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    cn_test_client *tc = p->data;

    (void)status;
    (void)events;
    tc->ready = true;
}

static void on_timer(uv_timer_t *t)
{
    ((cn_test_client *)t->data)->timed_out = true;
}

/* Bound what follows by timeout_ms from now (the loop's clock may be stale:
 * the test ran without it). */
static void arm(cn_test_client *tc, int timeout_ms)
{
    uv_update_time(cn_app_loop(tc->app));
    tc->timed_out = false;
    uv_timer_start(tc->timer, on_timer,
                   (uint64_t)(timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS), 0);
}

static void rd_free(reading *rd)
{
    cn__buf_free(&rd->field);
    cn__buf_free(&rd->value);
    cn__buf_free(&rd->body);
    rd->out = NULL;
}

static void disconnect(cn_test_client *tc)
{
    if (tc->poll) {
        uv_poll_stop(tc->poll);
        uv_close((uv_handle_t *)tc->poll, on_close_free);
        tc->poll = NULL;
    }
    if (tc->fd >= 0) {
        close(tc->fd);
        tc->fd = -1;
    }
    if (tc->streaming) {
        tc->streaming = false;
        rd_free(&tc->rd);
    }
}

/*
 * Between requests the app may have closed our connection (its keep-alive
 * timeout ran out while a wait ran the loop): then start afresh. Bytes it
 * sent meanwhile (none are expected) would be no answer to the next
 * request either.
 */
static void drop_if_closed(cn_test_client *tc)
{
    char c;
    ssize_t n;

    if (tc->fd < 0)
        return;
    n = recv(tc->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
        disconnect(tc);
}

static int connect_app(cn_test_client *tc)
{
    int sv[2], rc;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        return uv_translate_sys_error(errno);
    rc = cn__app_adopt_fd(tc->app, sv[1]);
    if (rc < 0) {
        close(sv[0]);
        close(sv[1]);
        return rc;
    }
    tc->poll = malloc(sizeof(*tc->poll));
    if (tc->poll == NULL || uv_poll_init(cn_app_loop(tc->app), tc->poll, sv[0]) < 0) {
        free(tc->poll);
        tc->poll = NULL;
        close(sv[0]);
        return CN_ENOMEM;
    }
    tc->poll->data = tc;
    tc->fd = sv[0];
    return 0;
}

int cn_test_client_new(cn_app *app, cn_test_client **out)
{
    cn_test_client *tc;
    int rc;

    if (app == NULL || out == NULL)
        return CN_EINVAL;
    tc = calloc(1, sizeof(*tc));
    if (tc == NULL)
        return CN_ENOMEM;
    tc->app = app;
    tc->fd = -1;
    tc->timer = malloc(sizeof(*tc->timer));
    if (tc->timer == NULL) {
        free(tc);
        return CN_ENOMEM;
    }
    rc = cn__app_start_inline(app);
    if (rc < 0) {
        free(tc->timer);
        free(tc);
        return rc;
    }
    uv_timer_init(cn_app_loop(app), tc->timer);
    tc->timer->data = tc;
    *out = tc;
    return 0;
}

/* Run the app's loop until our end is ready for `events`, or the deadline. */
static int wait_ready(cn_test_client *tc, int events)
{
    tc->ready = false;
    uv_poll_start(tc->poll, events, on_poll);
    while (!tc->ready && !tc->timed_out)
        cn__app_run_once(tc->app);
    uv_poll_stop(tc->poll);
    return tc->timed_out ? CN_ETIMEDOUT : 0;
}

static int send_all(cn_test_client *tc, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(tc->fd, p, n, MSG_NOSIGNAL);
        if (k > 0) {
            p += k;
            n -= (size_t)k;
        } else if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_ready(tc, UV_WRITABLE);
            if (rc < 0)
                return rc;
        } else if (k < 0 && errno == EINTR) {
            continue;
        } else {
            return CN_EPIPE;
        }
    }
    return 0;
}

/* ---- reading the response ---- */

static reading *rd_of(llhttp_t *p)
{
    return p->data;
}

static int add_header(reading *rd)
{
    cn_test_response *r = rd->out;

    if (r->nheaders == rd->cap_headers) {
        size_t cap = rd->cap_headers ? rd->cap_headers * 2 : 16;
        cn_str *n = realloc(r->header_names, cap * sizeof(*n));
        cn_str *v = n ? realloc(r->header_values, cap * sizeof(*v)) : NULL;
        if (n)
            r->header_names = n;
        if (v == NULL)
            return -1;
        r->header_values = v;
        rd->cap_headers = cap;
    }
    if (cn__buf_append(&rd->field, "", 1) || cn__buf_append(&rd->value, "", 1))
        return -1;
    r->header_names[r->nheaders] = (cn_str){rd->field.data, rd->field.len - 1};
    r->header_values[r->nheaders] = (cn_str){rd->value.data, rd->value.len - 1};
    r->nheaders++;
    rd->field = (cn__buf){0};
    rd->value = (cn__buf){0};
    return 0;
}

/* Header fields after the head are a chunked body's trailers: not kept. */
static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    reading *rd = rd_of(p);

    if (rd->head_done)
        return 0;
    if (rd->in_value && add_header(rd) < 0)
        return HPE_USER;
    rd->in_value = false;
    return cn__buf_append(&rd->field, at, n) ? HPE_USER : 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    reading *rd = rd_of(p);

    if (rd->head_done)
        return 0;
    rd->in_value = true;
    return cn__buf_append(&rd->value, at, n) ? HPE_USER : 0;
}

static int on_headers_complete(llhttp_t *p)
{
    reading *rd = rd_of(p);

    if (rd->in_value && add_header(rd) < 0)
        return HPE_USER;
    rd->in_value = false;
    rd->out->status = p->status_code;
    /* 1xx (100 Continue): not the response; a HEAD's has no body */
    if (p->status_code < 200)
        return 0;
    rd->head_done = true;
    return rd->head ? 1 : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    return cn__buf_append(&rd_of(p)->body, at, n) ? HPE_USER : 0;
}

static int on_message_complete(llhttp_t *p)
{
    reading *rd = rd_of(p);

    if (p->status_code < 200) {
        /* an interim answer: its headers are not the response's */
        cn_test_response_free(rd->out);
        memset(rd->out, 0, sizeof(*rd->out));
        rd->cap_headers = 0;
        return 0;
    }
    rd->done = true;
    return HPE_PAUSED;
}

static const llhttp_settings_t response_settings = {
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* What a read waits for. */
enum { UNTIL_HEAD, UNTIL_BODY_BYTES, UNTIL_END };

static bool enough(const reading *rd, int until)
{
    switch (until) {
    case UNTIL_HEAD:
        return rd->head_done || rd->done;
    case UNTIL_BODY_BYTES:
        return rd->body.len > rd->taken || rd->done;
    default:
        return rd->done;
    }
}

/* Receive and parse until `until` holds (the deadline armed by the caller). */
static int pump(cn_test_client *tc, int until)
{
    reading *rd = &tc->rd;
    char buf[16384];

    while (!enough(rd, until)) {
        ssize_t n = recv(tc->fd, buf, sizeof buf, 0);
        llhttp_errno_t err;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_ready(tc, UV_READABLE);
            if (rc < 0)
                return rc;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            /* the end of a close-delimited body, or of nothing */
            if (llhttp_finish(&rd->parser) == HPE_OK && rd->done)
                break;
            return CN_EPIPE;
        }
        err = llhttp_execute(&rd->parser, buf, (size_t)n);
        if (err != HPE_OK && err != HPE_PAUSED)
            return err == HPE_USER ? CN_ENOMEM : CN_EPIPE;
    }
    return 0;
}

/* The response is read to its end: the connection goes on only if both say so. */
static void end_message(cn_test_client *tc)
{
    bool keep = llhttp_should_keep_alive(&tc->rd.parser);

    tc->streaming = false;
    rd_free(&tc->rd);
    if (!keep)
        disconnect(tc); /* the app closes its end: the next request reconnects */
}

static bool has_header(const char *const *headers, const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; headers && headers[i]; i++)
        if (strncasecmp(headers[i], name, n) == 0 && headers[i][n] == ':')
            return true;
    return false;
}

/* A request target: no spaces, no control bytes (CR and LF above all). */
static bool target_ok(const char *t)
{
    if (*t == 0)
        return false;
    for (; *t; t++)
        if ((unsigned char)*t <= ' ' || *t == 0x7f)
            return false;
    return true;
}

static int build_request(cn__buf *b, const char *method, const char *target,
                         const char *const *headers, const void *body, size_t len)
{
    char num[32];

    if (cn__buf_puts(b, method) || cn__buf_puts(b, " ") || cn__buf_puts(b, target) ||
        cn__buf_puts(b, " HTTP/1.1\r\n"))
        return CN_ENOMEM;
    for (size_t i = 0; headers && headers[i]; i++) {
        if (strstr(headers[i], ": ") == NULL || strpbrk(headers[i], "\r\n"))
            return CN_EBADHEADER;
        if (cn__buf_puts(b, headers[i]) || cn__buf_puts(b, "\r\n"))
            return CN_ENOMEM;
    }
    if (!has_header(headers, "host") && cn__buf_puts(b, "Host: testserver\r\n"))
        return CN_ENOMEM;
    if ((len > 0 || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
         strcmp(method, "PATCH") == 0) &&
        !has_header(headers, "content-length") && !has_header(headers, "transfer-encoding")) {
        snprintf(num, sizeof num, "%zu", len);
        if (cn__buf_puts(b, "Content-Length: ") || cn__buf_puts(b, num) || cn__buf_puts(b, "\r\n"))
            return CN_ENOMEM;
    }
    if (cn__buf_puts(b, "\r\n") || (len && cn__buf_append(b, body, len)))
        return CN_ENOMEM;
    return 0;
}

/* Send the request and read the head of its response into out (deadline armed). */
static int begin(cn_test_client *tc, const cn__buf *req, bool head, cn_test_response *out)
{
    reading *rd = &tc->rd;
    int rc = 0;

    drop_if_closed(tc);
    if (tc->fd < 0 && (rc = connect_app(tc)) < 0)
        return rc;
    memset(rd, 0, sizeof(*rd));
    llhttp_init(&rd->parser, HTTP_RESPONSE, &response_settings);
    rd->parser.data = rd;
    rd->out = out;
    rd->head = head;
    rc = send_all(tc, req->data, req->len);
    return rc < 0 ? rc : pump(tc, UNTIL_HEAD);
}

/* The checks before anything is sent; the request's bytes into *req. *out
 * starts empty, so that it holds nothing to free after any error. */
static int prepare(const cn_test_client *tc, const char *method, const char *target,
                   const char *const *headers, const void *body, size_t len, cn_test_response *out,
                   cn__buf *req)
{
    int rc;

    if (out)
        memset(out, 0, sizeof(*out));
    if (tc == NULL || method == NULL || target == NULL || out == NULL || (body == NULL && len) ||
        !cn__is_token(method, strlen(method)) || !target_ok(target))
        return CN_EINVAL;
    if (tc->streaming)
        return CN_ESTATE;
    rc = build_request(req, method, target, headers, body, len);
    if (rc < 0)
        cn__buf_free(req);
    return rc;
}

/* A request failed once sent: nothing of its response is kept, and the
 * connection is closed (the app sees its client leave). */
static int fail(cn_test_client *tc, cn_test_response *out, int rc)
{
    rd_free(&tc->rd);
    cn_test_response_free(out);
    disconnect(tc);
    return rc;
}

int cn_test_request(cn_test_client *tc, const char *method, const char *target,
                    const char *const *headers, const void *body, size_t len, int timeout_ms,
                    cn_test_response *out)
{
    cn__buf req = {0};
    int rc = prepare(tc, method, target, headers, body, len, out, &req);

    if (rc < 0)
        return rc;
    arm(tc, timeout_ms);
    rc = begin(tc, &req, strcmp(method, "HEAD") == 0, out);
    cn__buf_free(&req);
    if (rc == 0)
        rc = pump(tc, UNTIL_END);
    uv_timer_stop(tc->timer);
    if (rc == 0 && cn__buf_append(&tc->rd.body, "", 1) < 0)
        rc = CN_ENOMEM;
    if (rc < 0)
        return fail(tc, out, rc);
    out->body = tc->rd.body.data;
    out->body_len = tc->rd.body.len - 1;
    tc->rd.body = (cn__buf){0};
    end_message(tc);
    return 0;
}

int cn_test_get(cn_test_client *tc, const char *target, cn_test_response *out)
{
    return cn_test_request(tc, "GET", target, NULL, NULL, 0, 0, out);
}

/* ---- a response read as it arrives ---- */

int cn_test_stream(cn_test_client *tc, const char *method, const char *target,
                   const char *const *headers, const void *body, size_t len, int timeout_ms,
                   cn_test_response *out)
{
    cn__buf req = {0};
    int rc = prepare(tc, method, target, headers, body, len, out, &req);

    if (rc < 0)
        return rc;
    arm(tc, timeout_ms);
    rc = begin(tc, &req, strcmp(method, "HEAD") == 0, out);
    cn__buf_free(&req);
    uv_timer_stop(tc->timer);
    if (rc == 0 && (out->body = calloc(1, 1)) == NULL)
        rc = CN_ENOMEM;
    if (rc < 0)
        return fail(tc, out, rc);
    /* the head is in: nothing more goes into the caller's response */
    tc->rd.out = NULL;
    cn__buf_free(&tc->rd.field);
    cn__buf_free(&tc->rd.value);
    tc->streaming = true;
    return 0;
}

int cn_test_read(cn_test_client *tc, void *buf, size_t size, int timeout_ms)
{
    reading *rd;
    size_t n;
    int rc;

    if (tc == NULL || buf == NULL || size == 0)
        return CN_EINVAL;
    if (!tc->streaming)
        return CN_ESTATE;
    rd = &tc->rd;
    if (rd->body.len == rd->taken && !rd->done) {
        arm(tc, timeout_ms);
        rc = pump(tc, UNTIL_BODY_BYTES);
        uv_timer_stop(tc->timer);
        if (rc == CN_ETIMEDOUT)
            return rc; /* nothing new yet: the stream stays open */
        if (rc < 0) {
            disconnect(tc);
            return rc;
        }
    }
    if (rd->body.len == rd->taken) {
        end_message(tc); /* done */
        return 0;
    }
    n = rd->body.len - rd->taken;
    if (n > size)
        n = size;
    if (n > INT_MAX)
        n = INT_MAX;
    memcpy(buf, rd->body.data + rd->taken, n);
    rd->taken += n;
    if (rd->taken == rd->body.len)
        rd->body.len = rd->taken = 0; /* all handed out: the buffer starts over */
    return (int)n;
}

void cn_test_stream_close(cn_test_client *tc)
{
    if (tc == NULL || !tc->streaming)
        return;
    if (tc->rd.done)
        end_message(tc); /* read to its end already: the connection may go on */
    else
        disconnect(tc); /* the app sees its client leave */
}

/* ---- running the app between requests ---- */

/* Nothing in flight: no request, no coroutine (cleanups, background tasks,
 * spawned tasks, waits on the pool), no job on the pool. */
static int at_rest(void *arg)
{
    cn_app *app = arg;
    cn_stats st;
    cn_pool_stats ps;

    cn_app_stats(app, &st);
    cn_app_pool_stats(app, &ps);
    return st.requests_active == 0 && st.coroutines_live == 0 && st.background_running == 0 &&
           ps.busy == 0 && ps.queue_depth == 0;
}

static int run_until(cn_test_client *tc, int (*done)(void *arg), void *arg, int timeout_ms,
                     bool confirm)
{
    int rc = 0;

    arm(tc, timeout_ms);
    for (;;) {
        if (done(arg)) {
            if (!confirm)
                break;
            /* a pool job that just finished has signalled the loop but its
             * completion has not run yet: one turn without waiting runs it */
            uv_run(cn_app_loop(tc->app), UV_RUN_NOWAIT);
            if (done(arg))
                break;
        }
        if (tc->timed_out) {
            rc = CN_ETIMEDOUT;
            break;
        }
        cn__app_run_once(tc->app);
    }
    uv_timer_stop(tc->timer);
    return rc;
}

int cn_test_settle(cn_test_client *tc, int timeout_ms)
{
    if (tc == NULL)
        return CN_EINVAL;
    return run_until(tc, at_rest, tc->app, timeout_ms, true);
}

int cn_test_run_until(cn_test_client *tc, int (*done)(void *arg), void *arg, int timeout_ms)
{
    if (tc == NULL || done == NULL)
        return CN_EINVAL;
    return run_until(tc, done, arg, timeout_ms, false);
}

/* ---- responses ---- */

const char *cn_test_header(const cn_test_response *r, const char *name)
{
    if (r == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < r->nheaders; i++)
        if (cn__ieq(r->header_names[i].ptr, r->header_names[i].len, name))
            return r->header_values[i].ptr;
    return NULL;
}

size_t cn_test_header_count(const cn_test_response *r, const char *name)
{
    size_t n = 0;

    if (r == NULL || name == NULL)
        return 0;
    for (size_t i = 0; i < r->nheaders; i++)
        if (cn__ieq(r->header_names[i].ptr, r->header_names[i].len, name))
            n++;
    return n;
}

void cn_test_response_free(cn_test_response *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nheaders; i++) {
        /* both were malloc'd here (add_header): the const is the view's */
        free((void *)(uintptr_t)r->header_names[i].ptr);
        free((void *)(uintptr_t)r->header_values[i].ptr);
    }
    free(r->header_names);
    free(r->header_values);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

int cn_test_client_free(cn_test_client *tc)
{
    int rc;

    if (tc == NULL)
        return 0;
    disconnect(tc);
    uv_close((uv_handle_t *)tc->timer, on_close_free);
    rc = cn__app_stop_inline(tc->app);
    free(tc);
    return rc;
}
