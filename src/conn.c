/*
 * conn.c -- one TCP connection.
 *
 * Bytes are read into the server's shared buffer and fed to llhttp, whose
 * callbacks copy what must outlive the read (target, headers, body) into the
 * request's arena. Requests on one connection are handled one at a time, in
 * order: when a message is complete the handler is started; if it finishes
 * at once (it never waited) its response is appended to the output buffer
 * and parsing goes on, so a pipelined batch is answered with one write. If
 * it parks, the parser is paused and any bytes after the message are kept
 * until the handler returns. Reading goes on meanwhile, so that a client
 * that goes away is noticed and its request cancelled.
 *
 * Lifetime: the connection's memory is freed only when its handles are
 * closed and no handler and no write still refers to it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/ioctl.h>
#include <unistd.h>

#include <llhttp.h>

#include "accesslog.h"
#include "conn.h"
#include "dispatch.h"
#include "forwarded.h"
#include "req.h"

enum {
    ST_IDLE,     /* between requests (keep-alive) or freshly accepted */
    ST_HEAD,     /* reading a request head */
    ST_BODY,     /* reading a request body */
    ST_HANDLING, /* a handler is running or parked */
    ST_LINGER,   /* final response written; draining input before close */
    ST_CLOSED,   /* uv_close called */
};

enum { TIMER_NONE, TIMER_HEAD, TIMER_IDLE, TIMER_LINGER, TIMER_WRITE };

/* Unparsed bytes kept while a handler runs; past this, reading pauses. */
#define PENDING_MAX (64 * 1024)
/* Output queued but not yet accepted by the kernel; past this, parsing pauses. */
#define OUT_HIGH_WATER (1024 * 1024)
/* A streamed body's writer parks past the high mark and goes on below the low one. */
#define STREAM_HIGH_WATER (256 * 1024)
#define STREAM_LOW_WATER (64 * 1024)
#define LINGER_MS 2000
/* One chunk line's extensions (";a=1;b..."); past this, 400. */
#define CHUNK_EXT_MAX 4096

typedef struct cn__conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    cn__server *srv;
    cn__list link;
    llhttp_t parser;
    cn_req *req; /* being parsed, or in its handler */
    int state;
    int timer_mode;
    unsigned refs; /* handles open + handler running + write in flight */
    bool keep_alive;
    bool handler_running;
    bool close_after; /* close once the output is flushed */
    bool writing;     /* wreq in flight, wbuf owned by it */
    bool reading;
    bool in_execute; /* inside llhttp_execute (no re-entry) */
    bool shutdown_sent;
    bool cancelled;       /* client went away while a handler ran */
    uint64_t sent;        /* bytes the kernel accepted from us, in all */
    size_t wlen;          /* of the uv_write in flight */
    uint64_t write_mark;  /* acked_bytes() when progress was last seen */
    uint64_t progress_at; /* uv_now then */
    cn__addr peer;        /* who is at the other end */
    uint64_t idle_since;  /* uv_now when it last went idle (the drain's grace) */
    /* header accumulation in the request arena: "name\0value\0" */
    char *acc;
    size_t acc_len, field_len;
    size_t head_bytes;
    /* chunk extensions (on_chunk_ext_*): the current name's or value's
     * length so far, whether the value is quoted, the byte after it */
    size_t ext_len, ext_line; /* ext_line: this chunk line's extensions, bytes */
    bool ext_quoted;
    char ext_end;
    bool ext_semicolon;   /* put back the ';' llhttp dropped (parse_more) */
    const char *exec_end; /* end of the bytes llhttp_execute was given */
    int error_status;     /* set by a callback that rejects the request */
    const char *error_detail;
    /* input that arrived while a handler was running */
    char *pending;
    size_t pending_len, pending_off;
    cn__buf out;            /* being accumulated */
    cn__buf wbuf;           /* being written */
    cn__list drain_waiters; /* stream writers parked until the output drains */
    /* an in-memory connection (cn__conn_mem_open): no socket; output goes
     * to sink, which is told of the close with (NULL, 0) */
    cn__conn_sink sink;
    void *sink_arg;
} cn__conn;

static void conn_close(cn__conn *c);
static void conn_flush(cn__conn *c);
static void parse_more(cn__conn *c, const char *data, size_t len);
static void resume_parsing(cn__conn *c);
static void start_reading(cn__conn *c);

/* ---- lifetime ---- */

static void conn_unref(cn__conn *c)
{
    cn__server *srv = c->srv;

    if (--c->refs > 0)
        return;
    cn__list_remove(&c->link);
    /* a request being parsed is ours; a dispatched one is answered (and
     * lets go of us) before the last reference goes */
    if (c->req)
        cn__req_free(c->req);
    free(c->pending);
    cn__buf_free(&c->out);
    cn__buf_free(&c->wbuf);
    srv->stats->connections_active--;
    free(c);
    if (srv->on_conn_freed)
        srv->on_conn_freed(srv);
}

static void on_handle_closed(uv_handle_t *h)
{
    conn_unref(h->data);
}

static void conn_close(cn__conn *c)
{
    if (c->state == ST_CLOSED)
        return;
    c->state = ST_CLOSED;
    /* a parked handler must not wait for a client that is gone */
    if (c->handler_running && !c->cancelled) {
        c->cancelled = true;
        cn__dispatch_cancel(c->req);
    }
    if (c->sink)
        c->sink(c->sink_arg, NULL, 0);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static void reject(cn__conn *c, int status, const char *detail);
static void timer_set(cn__conn *c, int mode, uint64_t ms);
static void idle_timer(cn__conn *c);

/*
 * How long a response may go without the client reading any of it: the
 * keep-alive timeout, or, with keep-alive off, the header timeout.
 */
static uint64_t write_timeout_ms(const cn__conn *c)
{
    const cn_config *cfg = c->srv->cfg;

    return cfg->keepalive_timeout_ms ? cfg->keepalive_timeout_ms : cfg->header_timeout_ms;
}

/*
 * How often the write timer looks for progress: a tenth of the timeout. A
 * check sees progress up to one interval after it happened and counts the
 * timeout from there, so a client that stops reading is closed between 1
 * and 1.1 times the timeout after the last byte it took (a check a quarter
 * of the timeout apart let that reach 1.25, 6.02 s of 5 in
 * bench/attacks/run slow). A check is one ioctl on a connection that has
 * output waiting; no other connection has the timer.
 */
static uint64_t write_check_ms(const cn__conn *c)
{
    uint64_t t = write_timeout_ms(c) / 10;

    return t ? t : 1;
}

/* Whether the connection may carry another request after this one. */
static bool may_keep(const cn__conn *c)
{
    return c->keep_alive && !c->srv->draining && c->srv->cfg->keepalive_timeout_ms > 0;
}

/*
 * Progress of a slow reader is measured at the client's end: the kernel's
 * send queue matters, since libuv only sees progress when the kernel frees
 * a large part of its buffer, which for a slow reader can take longer than
 * the timeout while bytes are in fact moving; and a stream slow enough to
 * fit in that buffer never shows libuv anything at all.
 */
/* A byte count the kernel keeps for the socket (TIOCOUTQ, FIONREAD); 0 if unknown. */
static size_t socket_queue(cn__conn *c, unsigned long request)
{
    uv_os_fd_t fd;
    int n = 0;

    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) < 0 || ioctl(fd, request, &n) < 0 || n < 0)
        return 0;
    return (size_t)n;
}

/* Bytes the client's end has taken so far: what the kernel accepted from
 * us, less what it still holds unacknowledged (TIOCOUTQ). Never goes down. */
static uint64_t acked_bytes(cn__conn *c)
{
    uint64_t in = c->sent;
    size_t held = socket_queue(c, TIOCOUTQ);

    /* of the write in flight, what libuv has already handed to the kernel */
    if (c->writing && c->wlen > c->tcp.write_queue_size)
        in += c->wlen - c->tcp.write_queue_size;
    return held < in ? in - held : 0;
}

/* Output the client has not taken yet, in our memory or the kernel's. */
static bool output_pending(cn__conn *c)
{
    return c->writing || c->out.len > 0 || socket_queue(c, TIOCOUTQ) > 0;
}

/* Output held in our memory: what the kernel has not taken yet. */
static size_t queued_bytes(const cn__conn *c)
{
    return c->out.len + c->tcp.write_queue_size;
}

/*
 * Bytes the client sent that we have not read yet. libuv runs expired timers
 * before it polls for I/O, so after the loop was held up (a handler blocked
 * it) a timer can fire while the client's next bytes already sit in the
 * socket: those are not an idle or a slow client.
 */
static bool unread_input(cn__conn *c)
{
    return c->reading && socket_queue(c, FIONREAD) > 0;
}

/* ---- timers ---- */

static void on_timer(uv_timer_t *t)
{
    cn__conn *c = t->data;

    /* let this turn's poll read them; the deadline is checked again next turn */
    if ((c->timer_mode == TIMER_HEAD || c->timer_mode == TIMER_IDLE) && unread_input(c)) {
        timer_set(c, c->timer_mode, 1);
        return;
    }
    switch (c->timer_mode) {
    case TIMER_HEAD:
        /* slowloris: a request began but its head (or body) did not arrive
         * in time */
        reject(c, 408, NULL);
        conn_flush(c);
        break;
    case TIMER_WRITE: {
        /* output is going out: fine while the client takes some of it */
        uint64_t acked = acked_bytes(c), now = uv_now(c->srv->loop);
        uint64_t limit = write_timeout_ms(c), quiet = now - c->progress_at;
        if (!output_pending(c)) {
            timer_set(c, TIMER_NONE, 0);
            idle_timer(c);
        } else if (acked > c->write_mark) {
            c->write_mark = acked;
            c->progress_at = now;
            timer_set(c, TIMER_WRITE, write_check_ms(c));
        } else if (quiet < limit) {
            uint64_t step = write_check_ms(c);
            timer_set(c, TIMER_WRITE, limit - quiet < step ? limit - quiet : step);
        } else {
            /* none of it taken for the whole timeout: a client that does
             * not read (a parked or streaming handler is cancelled) */
            c->srv->stats->connections_stalled++;
            conn_close(c);
        }
        break;
    }
    case TIMER_IDLE:
    case TIMER_LINGER:
        conn_close(c);
        break;
    default:
        break;
    }
}

/* Deadlines count from now, not from the start of the loop turn (libuv's
 * cached time): after a long turn (a handler that held the loop, or a
 * loaded machine) a keep-alive or head timeout must not be spent already. */
static void timer_set(cn__conn *c, int mode, uint64_t ms)
{
    c->timer_mode = mode;
    if (mode == TIMER_NONE) {
        uv_timer_stop(&c->timer);
    } else {
        uv_update_time(c->srv->loop);
        uv_timer_start(&c->timer, on_timer, ms, 0);
    }
}

/*
 * Output is waiting for the client: time out only when it stops moving,
 * that is when the client's end acknowledges none of it for the whole
 * timeout (bytes sitting in the kernel's send buffer count as waiting).
 * The clock starts now, not at the loop turn's start: a handler that held
 * the loop is not time the client had to read an answer not yet queued.
 */
static void write_timer(cn__conn *c)
{
    if (c->timer_mode != TIMER_WRITE) {
        uv_update_time(c->srv->loop);
        c->write_mark = acked_bytes(c);
        c->progress_at = uv_now(c->srv->loop);
        timer_set(c, TIMER_WRITE, write_check_ms(c));
    }
}

/* ---- writing ---- */

static void on_shutdown(uv_shutdown_t *sr, int status)
{
    cn__conn *c = sr->data;

    if (status < 0)
        conn_close(c);
    conn_unref(c);
}

/*
 * The last response is out: send FIN, then keep reading (and discarding)
 * for a while so that a client still sending does not get a RST that would
 * destroy the response before it reads it ("lingering close").
 */
static void conn_finish_close(cn__conn *c)
{
    if (c->state == ST_CLOSED || c->shutdown_sent)
        return;
    c->shutdown_sent = true;
    if (c->sink) {
        conn_close(c); /* in memory: nothing to linger for */
        return;
    }
    c->state = ST_LINGER;
    timer_set(c, TIMER_LINGER, LINGER_MS);
    c->sreq.data = c;
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) == 0)
        c->refs++;
    else
        conn_close(c);
}

/* A stream writer parked on backpressure (on its coroutine's stack). */
typedef struct drain_waiter {
    cn__list link;
    cn__task *task;
} drain_waiter;

/*
 * Output went out: stream writers parked on it go on once it is below the
 * low mark; until then the client must keep taking it (the write timer).
 */
static void wake_drain_waiters(cn__conn *c)
{
    if (c->state == ST_CLOSED || cn__list_empty(&c->drain_waiters))
        return;
    if (queued_bytes(c) > STREAM_LOW_WATER) {
        write_timer(c);
        return;
    }
    while (!cn__list_empty(&c->drain_waiters)) {
        drain_waiter *w = CN__CONTAINER_OF(c->drain_waiters.next, drain_waiter, link);
        cn__list_remove(&w->link);
        cn__task_wake(w->task, 0);
    }
}

static void on_write(uv_write_t *wr, int status)
{
    cn__conn *c = wr->data;

    c->writing = false;
    c->wbuf.len = 0;
    if (status == 0)
        c->sent += c->wlen;
    if (status < 0) {
        conn_close(c);
    } else if (c->state != ST_CLOSED) {
        /* progress: the write timeout starts again (or becomes the idle one) */
        if (c->timer_mode == TIMER_WRITE)
            timer_set(c, TIMER_NONE, 0);
        conn_flush(c);
        /* a handler still answering: what is left must keep moving too */
        if (c->state == ST_HANDLING && output_pending(c))
            write_timer(c);
        wake_drain_waiters(c);
        /* a parser paused on a full output buffer goes on */
        if (c->state == ST_IDLE)
            resume_parsing(c);
    }
    conn_unref(c); /* the write's reference */
}

static void conn_flush(cn__conn *c)
{
    cn__stats *stats = c->srv->stats;
    size_t queued;

    if (c->state == ST_CLOSED)
        return;
    queued = queued_bytes(c);
    if (queued > stats->write_queue_peak)
        stats->write_queue_peak = queued;
    if (c->writing)
        return;
    if (c->sink && c->out.len > 0) {
        if (c->sink(c->sink_arg, c->out.data, c->out.len) < 0) {
            conn_close(c); /* as a failed write: the peer reset */
            return;
        }
        c->out.len = 0;
    }
    if (c->out.len > 0) {
        int n = uv_try_write((uv_stream_t *)&c->tcp, &(uv_buf_t){c->out.data, c->out.len}, 1);
        if (n < 0 && n != UV_EAGAIN) {
            conn_close(c);
            return;
        }
        if (n < 0)
            n = 0;
        c->sent += (size_t)n;
        if ((size_t)n == c->out.len) {
            c->out.len = 0;
        } else {
            /* hand the rest to uv_write: swap buffers so `out` can grow */
            cn__buf tmp = c->wbuf;
            c->wbuf = c->out;
            c->out = tmp;
            c->out.len = 0;
            uv_buf_t b = {c->wbuf.data + n, c->wbuf.len - (size_t)n};
            c->wlen = b.len;
            c->wreq.data = c;
            if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write) < 0) {
                conn_close(c);
                return;
            }
            c->writing = true;
            c->refs++;
            return;
        }
    }
    if (c->close_after && !c->writing && c->state != ST_HANDLING)
        conn_finish_close(c);
}

/* ---- requests ---- */

/* The connection answers its last response and closes once it is out. */
static void enter_linger(cn__conn *c)
{
    c->close_after = true;
    c->state = ST_LINGER;
    /* bounded: a client that never reads its answer cannot hold us */
    timer_set(c, TIMER_LINGER, c->srv->cfg->header_timeout_ms);
}

/* A response was queued: count it by status class (600 and up count as 5xx). */
static void count_response(cn__server *srv, int status)
{
    cn__stats *st = srv->stats;

    if (status >= 500)
        st->responses_5xx++;
    else if (status >= 400)
        st->responses_4xx++;
    else if (status >= 300)
        st->responses_3xx++;
    else if (status >= 200)
        st->responses_2xx++;
    else
        st->responses_1xx++;
}

/* Answer a request that never reached a handler, and close. A 503 (too
 * many connections, shutting down, out of memory) says when to come back. */
static void reject(cn__conn *c, int status, const char *detail)
{
    char retry[40];

    if (c->req) {
        cn__req_free(c->req);
        c->req = NULL;
    }
    snprintf(retry, sizeof retry, "Retry-After: %u\r\n", c->srv->cfg->retry_after_s);
    cn__res_write_simple(&c->out, status, detail, true, status == 503 ? retry : NULL);
    count_response(c->srv, status);
    enter_linger(c);
}

static void access_log(cn__conn *c, cn_req *req)
{
    if (!c->srv->cfg->access_log)
        return;
    cn__access_write(c->srv->access, req, c->srv->worker_id);
}

/* The response is queued: count it, get ready for the next request. */
static void finish_request(cn__conn *c, cn_req *req, bool keep)
{
    count_response(c->srv, req->res.status);
    access_log(c, req);
    c->req = NULL;
    c->idle_since = uv_now(c->srv->loop);
    if (keep)
        c->state = ST_IDLE;
    else
        enter_linger(c);
}

/* After a response: serialise it and get ready for the next request. */
static void complete_response(cn__conn *c, cn_req *req)
{
    bool keep = may_keep(c);

    if (keep && c->srv->shed > 0) {
        c->srv->shed--;
        keep = false;
    }

    if (cn__res_serialize(req, &c->out, keep) < 0) {
        keep = false;
        req->res.status = 500; /* what went out, for the counters and the log */
        cn__res_write_simple(&c->out, 500, NULL, true, NULL);
    }
    finish_request(c, req, keep);
}

/* ---- streamed responses ---- */

/* A stream keeps the connection only when its end is marked in the body
 * (chunks, or a declared length; one that fell short closes it). */
static bool stream_keep(cn__conn *c, cn_req *req)
{
    return may_keep(c) && cn__res_stream_framed(req);
}

/*
 * Send what a stream call queued (rc: how queueing went). Output the client
 * has not taken arms the write timer, whether it waits in our queue or in
 * the kernel's buffer: a client that reads nothing is dropped after the
 * timeout even when a slow stream never fills the queue.
 */
static int stream_send(cn__conn *c, int rc)
{
    if (rc < 0)
        return rc;
    conn_flush(c);
    /* a client that went away cancelled the request in conn_close */
    if (c->state == ST_CLOSED)
        return CN_ECANCELED;
    if (c->timer_mode != TIMER_WRITE && output_pending(c))
        write_timer(c);
    return 0;
}

static int conn_stream_begin(cn_req *req)
{
    cn__conn *c = req->owner;

    if (c->state == ST_CLOSED)
        return CN_ECANCELED;
    return stream_send(c, cn__res_stream_head(req, &c->out, stream_keep(c, req)));
}

static int conn_stream_write(cn_req *req, cn__task *t, const void *p, size_t n)
{
    cn__conn *c = req->owner;
    drain_waiter w = {.task = t};
    int rc;

    if (c->state == ST_CLOSED)
        return CN_ECANCELED;
    rc = stream_send(c, cn__res_stream_chunk(req, &c->out, p, n));
    /* backpressure: the client is behind, so the writer waits for it
     * instead of the body piling up here */
    while (rc == 0 && queued_bytes(c) > STREAM_HIGH_WATER) {
        cn__list_push(&c->drain_waiters, &w.link);
        write_timer(c);
        rc = cn__task_park(t, NULL, NULL);
        /* woken by wake_drain_waiters (already off the list) or cancelled */
        cn__list_remove(&w.link);
        if (c->state == ST_CLOSED)
            rc = CN_ECANCELED;
    }
    return rc;
}

static int conn_stream_end(cn_req *req)
{
    cn__conn *c = req->owner;

    if (c->state == ST_CLOSED)
        return CN_ECANCELED;
    return stream_send(c, cn__res_stream_last(req, &c->out));
}

/*
 * The request's response is final (dispatch.h): queue it, and go on with
 * the next request. A stream that was not ended was cut short: its client
 * can only tell from the connection closing. No response at all (nobody to
 * answer, or nothing could be made): close.
 */
static bool conn_respond(cn_req *req)
{
    cn__conn *c = req->owner;
    int stream = cn__res_stream_state(&req->res);
    bool sent = false;

    c->handler_running = false;
    c->req = NULL;
    if (c->state == ST_CLOSED || c->cancelled || !req->res.body_set) {
        conn_close(c);
    } else {
        if (stream == CN__STREAM_NONE)
            complete_response(c, req);
        else
            finish_request(c, req,
                           stream == CN__STREAM_ENDED && stream_keep(c, req) &&
                               cn__res_stream_complete(req));
        sent = true;
        /* called from inside the parser (a handler that never waited), the
         * parser goes on by itself; otherwise flush and pick up where it
         * paused */
        if (!c->in_execute) {
            conn_flush(c);
            resume_parsing(c);
        }
    }
    conn_unref(c); /* the handler's reference */
    return sent;
}

static const cn__req_io conn_io = {
    .respond = conn_respond,
    .stream_begin = conn_stream_begin,
    .stream_write = conn_stream_write,
    .stream_end = conn_stream_end,
};

/* ---- llhttp callbacks ---- */

static cn__conn *conn_of(llhttp_t *p)
{
    return p->data;
}

static int head_grow(cn__conn *c, size_t n)
{
    c->head_bytes += n;
    if (c->head_bytes > c->srv->cfg->max_header_bytes) {
        c->error_status = 431;
        c->error_detail = "Request header fields too large";
        return HPE_USER;
    }
    return 0;
}

static int on_message_begin(llhttp_t *p)
{
    cn__conn *c = conn_of(p);

    if (c->state == ST_CLOSED)
        return HPE_PAUSED; /* nothing more is read on a closed connection */
    c->req = cn__req_new(c->srv->app, c);
    if (c->req == NULL) {
        c->error_status = 503;
        return HPE_USER;
    }
    c->req->io = &conn_io;
    c->req->peer = c->peer;
    c->req->start_ns = uv_hrtime();
    c->state = ST_HEAD;
    c->head_bytes = 0;
    c->acc = NULL;
    c->acc_len = c->field_len = 0;
    c->ext_len = c->ext_line = 0;
    c->ext_quoted = false;
    c->ext_end = 0;
    if (c->timer_mode != TIMER_HEAD)
        timer_set(c, TIMER_HEAD, c->srv->cfg->header_timeout_ms);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    cn__conn *c = conn_of(p);

    if (head_grow(c, len))
        return HPE_USER;
    if (cn__req_set_target(c->req, at, len) < 0) {
        c->error_status = 503;
        return HPE_USER;
    }
    return 0;
}

static int acc_append(cn__conn *c, const char *at, size_t len, bool nul)
{
    size_t add = len + (nul ? 1 : 0);
    char *a = cn__arena_realloc(&c->req->arena, c->acc, c->acc_len, c->acc_len + add);

    if (a == NULL) {
        c->error_status = 503;
        return HPE_USER;
    }
    c->acc = a;
    memcpy(a + c->acc_len, at, len);
    c->acc_len += len;
    if (nul)
        a[c->acc_len++] = 0;
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    cn__conn *c = conn_of(p);

    if (head_grow(c, len))
        return HPE_USER;
    return acc_append(c, at, len, false);
}

static int on_header_field_complete(llhttp_t *p)
{
    cn__conn *c = conn_of(p);

    c->field_len = c->acc_len;
    if (c->field_len == 0) {
        /* ": value": a field name is a token, at least one character */
        c->error_status = 400;
        c->error_detail = "Invalid header name";
        return HPE_USER;
    }
    if (c->req->nheaders >= c->srv->cfg->max_headers) {
        c->error_status = 431;
        c->error_detail = "Too many request headers";
        return HPE_USER;
    }
    /* ": " and CRLF of the line */
    if (head_grow(c, 4))
        return HPE_USER;
    return acc_append(c, "", 0, true);
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    cn__conn *c = conn_of(p);

    if (head_grow(c, len))
        return HPE_USER;
    return acc_append(c, at, len, false);
}

static int on_header_value_complete(llhttp_t *p)
{
    cn__conn *c = conn_of(p);
    size_t vstart = c->field_len + 1, vlen;

    if (acc_append(c, "", 0, true))
        return HPE_USER;
    vlen = c->acc_len - vstart - 1;
    /* llhttp drops the whitespace before a value, not after it (RFC 9110 5.5) */
    while (vlen > 0 && (c->acc[vstart + vlen - 1] == ' ' || c->acc[vstart + vlen - 1] == '\t'))
        c->acc[vstart + --vlen] = 0;
    if (cn__req_add_header(c->req, c->acc, c->field_len, c->acc + vstart, vlen) < 0) {
        c->error_status = 503;
        return HPE_USER;
    }
    c->acc = NULL;
    c->acc_len = c->field_len = 0;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    cn__conn *c = conn_of(p);
    cn_req *req = c->req;
    const cn_config *cfg = c->srv->cfg;
    const char *expect;
    unsigned hosts = 0;
    bool has_body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length);

    req->method_name = llhttp_method_name((llhttp_method_t)p->method);
    req->method = cn__method_index(req->method_name, strlen(req->method_name));
    req->http_major = p->http_major;
    /* a higher minor version is processed as the highest we implement,
     * and answered as HTTP/1.1 (RFC 9110 2.5); another major version is
     * one we do not speak (505, RFC 9110 15.6.6) */
    req->http_minor = p->http_minor > 1 ? 1 : p->http_minor;

    if (p->http_major != 1) {
        c->error_status = 505;
        return HPE_USER;
    }
    /*
     * HTTP/1.0 has no Transfer-Encoding: a 1.0 message that carries one has
     * faulty framing and the connection MUST close after it (RFC 9112 6.1).
     * Its body cannot be trusted either (a 1.0 intermediary may have passed
     * the chunks on as raw bytes), so it is refused outright: serving it and
     * then reading on, as a Connection: keep-alive would ask, is how bytes
     * of its body get parsed as a next request.
     */
    if (p->http_minor == 0 && (p->flags & (F_TRANSFER_ENCODING | F_CHUNKED))) {
        c->error_status = 400;
        c->error_detail = "Transfer-Encoding is not allowed in HTTP/1.0";
        return HPE_USER;
    }
    /* exactly one valid Host in HTTP/1.1 (RFC 9112 3.2) */
    for (unsigned i = 0; i < req->nheaders; i++) {
        const cn__hdr *h = &req->headers[i];
        if (cn__ieq(h->name, h->nlen, "host")) {
            hosts++;
            if (!cn__valid_host(h->value, h->vlen)) {
                c->error_status = 400;
                c->error_detail = "Invalid Host header";
                return HPE_USER;
            }
        }
    }
    if (hosts > 1 || (hosts == 0 && p->http_minor >= 1)) {
        c->error_status = 400;
        c->error_detail = hosts ? "Duplicate Host header" : "Missing Host header";
        return HPE_USER;
    }
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > cfg->max_body_bytes) {
        c->error_status = 413;
        return HPE_USER;
    }
    expect = cn_req_header(req, "expect");
    if (expect && p->http_minor >= 1) {
        if (!cn__ieq(expect, strlen(expect), "100-continue")) {
            c->error_status = 417;
            return HPE_USER;
        }
        /* tell the client to go on, before its body is read */
        if (has_body)
            cn__buf_puts(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
    }
    c->state = ST_BODY;
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    cn__conn *c = conn_of(p);

    /* chunked bodies have no declared length: enforce the limit as it grows */
    if (c->req->body_len + len > c->srv->cfg->max_body_bytes) {
        c->error_status = 413;
        return HPE_USER;
    }
    if (cn__req_append_body(c->req, at, len) < 0) {
        c->error_status = 503;
        return HPE_USER;
    }
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    cn__conn *c = conn_of(p);

    c->keep_alive = llhttp_should_keep_alive(p) && !p->upgrade;
    timer_set(c, TIMER_NONE, 0);
    /* the handler's reference: dropped when the response comes back */
    c->state = ST_HANDLING;
    c->handler_running = true;
    c->refs++;
    cn__dispatch_request(c->srv->dispatch, c->req);
    /* the handler parked: stop here until it is done; or its write failed
     * and closed the connection: the requests after it in this read must
     * not be parsed (nor the closed state overwritten) */
    if (c->state == ST_HANDLING || c->state == ST_CLOSED)
        return HPE_PAUSED;
    if (c->close_after || c->out.len + c->wbuf.len >= OUT_HIGH_WATER)
        return HPE_PAUSED;
    return 0;
}

/*
 * Chunk extensions (RFC 9112 7.1.1: ";name" or ";name=value", any number,
 * the unknown ones ignored, which is all of them here). llhttp checks their
 * characters but lets an empty name (";=1") or value (";a=") through, so
 * those are refused here; and from 8.0 until 9.1.3 it forgets the ';' that
 * ends an unquoted value, so that "5;a=1;b" fails as a bad chunk size
 * (nodejs/llhttp#248). With such an llhttp the value's end pauses the parser
 * and parse_more gives it the ';' back, which puts it where 9.1.3 is: the
 * next byte starts the next extension's name.
 */
#if LLHTTP_VERSION_MAJOR >= 8
#define LLHTTP_DROPS_EXT_SEMICOLON                                                                 \
    (LLHTTP_VERSION_MAJOR * 10000 + LLHTTP_VERSION_MINOR * 100 + LLHTTP_VERSION_PATCH < 90103)

static int bad_extension(cn__conn *c, const char *detail)
{
    c->error_status = 400;
    c->error_detail = detail;
    return HPE_USER;
}

/* Count n bytes of this chunk line's extensions (the bound, CHUNK_EXT_MAX). */
static int ext_grow(cn__conn *c, size_t n)
{
    c->ext_line += n;
    return c->ext_line > CHUNK_EXT_MAX ? bad_extension(c, "Chunk extensions too long") : 0;
}

static int on_chunk_ext_name(llhttp_t *p, const char *at, size_t len)
{
    cn__conn *c = conn_of(p);

    (void)at;
    c->ext_len += len;
    return ext_grow(c, len);
}

static int on_chunk_ext_name_complete(llhttp_t *p)
{
    cn__conn *c = conn_of(p);

    if (c->ext_len == 0)
        return bad_extension(c, "Invalid chunk extension");
    c->ext_len = 0;
    return ext_grow(c, 1); /* its ';' */
}

/* Called once more at the end of each llhttp_execute while a value is
 * unfinished: only a call that stops short of that end has the byte that
 * ended the value after it (the one llhttp peeked at). */
static int on_chunk_ext_value(llhttp_t *p, const char *at, size_t len)
{
    cn__conn *c = conn_of(p);

    if (c->ext_len == 0 && len > 0)
        c->ext_quoted = at[0] == '"';
    c->ext_len += len;
    if (at + len < c->exec_end)
        c->ext_end = at[len];
    return ext_grow(c, len);
}

static int on_chunk_ext_value_complete(llhttp_t *p)
{
    cn__conn *c = conn_of(p);
    bool semicolon = !c->ext_quoted && c->ext_end == ';';

    if (c->ext_len == 0)
        return bad_extension(c, "Invalid chunk extension");
    if (ext_grow(c, 1)) /* its '=' */
        return HPE_USER;
    c->ext_len = 0;
    c->ext_quoted = false;
    c->ext_end = 0;
    if (LLHTTP_DROPS_EXT_SEMICOLON && semicolon) {
        c->ext_semicolon = true;
        return HPE_PAUSED;
    }
    return 0;
}

/* A chunk's size line is complete: the next one has its own bound. */
static int on_chunk_header(llhttp_t *p)
{
    conn_of(p)->ext_line = 0;
    return 0;
}
#endif

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
#if LLHTTP_VERSION_MAJOR >= 8
    .on_chunk_extension_name = on_chunk_ext_name,
    .on_chunk_extension_name_complete = on_chunk_ext_name_complete,
    .on_chunk_extension_value = on_chunk_ext_value,
    .on_chunk_extension_value_complete = on_chunk_ext_value_complete,
    .on_chunk_header = on_chunk_header,
#endif
};

/* ---- parsing ---- */

static void keep_pending(cn__conn *c, const char *data, size_t len)
{
    char *p;

    if (len == 0)
        return;
    if (c->pending_off > 0) {
        memmove(c->pending, c->pending + c->pending_off, c->pending_len - c->pending_off);
        c->pending_len -= c->pending_off;
        c->pending_off = 0;
    }
    p = realloc(c->pending, c->pending_len + len);
    if (p == NULL) {
        conn_close(c);
        return;
    }
    memcpy(p + c->pending_len, data, len);
    c->pending = p;
    c->pending_len += len;
}

static void parse_error(cn__conn *c, llhttp_errno_t err)
{
    int status = c->error_status ? c->error_status : 400;
    const char *detail = c->error_status ? c->error_detail : llhttp_get_error_reason(&c->parser);

    /* a request that never started (stray bytes between requests) still gets an answer */
    if (err != HPE_USER)
        detail = NULL;
    reject(c, status, detail);
    conn_flush(c);
}

/*
 * Feed bytes to llhttp. Stops when the parser pauses (a handler parked, the
 * connection is to close, or output is backed up); what is left is kept in
 * `pending`.
 */
static void parse_more(cn__conn *c, const char *data, size_t len)
{
    llhttp_errno_t err;
    const char *stop;

    if (len == 0)
        return;
    c->in_execute = true;
    c->exec_end = data + len;
    err = llhttp_execute(&c->parser, data, len);
    /* a chunk extension's value ended at a ';' that llhttp dropped
     * (on_chunk_ext_value_complete): give it back, then go on after it */
    while (err == HPE_PAUSED && c->ext_semicolon && c->state != ST_CLOSED) {
        static const char semicolon[] = ";";
        const char *at = llhttp_get_error_pos(&c->parser);
        c->ext_semicolon = false;
        llhttp_resume(&c->parser);
        c->exec_end = semicolon + 1;
        err = llhttp_execute(&c->parser, semicolon, 1);
        c->exec_end = data + len;
        if (err == HPE_OK && at < data + len)
            err = llhttp_execute(&c->parser, at, (size_t)(data + len - at));
    }
    c->in_execute = false;
    if (c->state == ST_CLOSED)
        return;
    switch (err) {
    case HPE_OK:
        break;
    case HPE_PAUSED:
    case HPE_PAUSED_UPGRADE:
        stop = llhttp_get_error_pos(&c->parser);
        if (err == HPE_PAUSED_UPGRADE) {
            /* no protocol upgrades: answer and close */
            c->close_after = true;
            stop = data + len;
        }
        llhttp_resume(&c->parser);
        if (!c->close_after && stop && stop < data + len)
            keep_pending(c, stop, (size_t)(data + len - stop));
        break;
    default:
        parse_error(c, err);
        return;
    }
    conn_flush(c);
}

/* Between requests the idle timer runs (a request in progress has its head timer). */
static void idle_timer(cn__conn *c)
{
    if (c->state != ST_IDLE)
        return;
    if (c->writing || c->out.len > 0) {
        /* not idle while answers are going out (a slow reader) */
        write_timer(c);
    } else if (c->timer_mode != TIMER_IDLE) {
        timer_set(c, TIMER_IDLE, c->srv->cfg->keepalive_timeout_ms);
    }
}

/* A handler finished or output drained: parse what arrived meanwhile. */
static void resume_parsing(cn__conn *c)
{
    while (c->state == ST_IDLE && c->pending_len > c->pending_off &&
           c->out.len + c->wbuf.len < OUT_HIGH_WATER) {
        /* take the buffer: parse_more may keep part of it again */
        char *buf = c->pending;
        size_t off = c->pending_off, len = c->pending_len;
        c->pending = NULL;
        c->pending_len = c->pending_off = 0;
        parse_more(c, buf + off, len - off);
        free(buf);
    }
    idle_timer(c);
    if (!c->reading && c->state != ST_CLOSED && c->pending_len - c->pending_off < PENDING_MAX)
        start_reading(c);
}

/* ---- reading ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    cn__conn *c = h->data;
    cn__server *srv = c->srv;

    (void)suggested;
    if (srv->readbuf_busy) {
        /* cannot happen with one loop thread; be safe anyway */
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    srv->readbuf_busy = true;
    buf->base = srv->readbuf;
    buf->len = srv->readbuf_size;
}

/* nread bytes at data from the client (nread < 0: it is gone or done). */
static void conn_input(cn__conn *c, const char *data, ssize_t nread)
{
    if (nread == 0)
        return;
    if (nread < 0) {
        /* EOF or error: the client is gone (or done); a parked handler is
         * cancelled by conn_close */
        conn_close(c);
        return;
    }
    switch (c->state) {
    case ST_LINGER:
        return; /* discard */
    case ST_HANDLING:
    case ST_IDLE:
        if (c->state == ST_IDLE && c->pending_len == c->pending_off)
            break; /* nothing kept: parse directly */
        /* older bytes first (a handler runs, or output was backed up) */
        keep_pending(c, data, (size_t)nread);
        if (c->state == ST_IDLE)
            resume_parsing(c);
        /* bounded: a client that sends without reading answers is stopped */
        if (c->state != ST_CLOSED && c->reading && c->pending_len - c->pending_off >= PENDING_MAX) {
            uv_read_stop((uv_stream_t *)&c->tcp);
            c->reading = false;
        }
        return;
    default:
        break;
    }
    parse_more(c, data, (size_t)nread);
    /* the parser may have paused on output that uv_try_write then took at
     * once: no write callback will come to resume it, so resume here */
    if (c->state == ST_IDLE && c->pending_len > c->pending_off)
        resume_parsing(c);
    idle_timer(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    cn__conn *c = s->data;

    if (buf->base == c->srv->readbuf)
        c->srv->readbuf_busy = false;
    conn_input(c, buf->base, nread);
}

static void start_reading(cn__conn *c)
{
    if (c->sink) {
        c->reading = true; /* cn__conn_mem_feed takes bytes */
        return;
    }
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = true;
}

/* ---- accept and shutdown ---- */

/*
 * A connection on `fd`: an accepted TCP socket (tcp), or a connected
 * stream socket of the caller's (the test client's socketpair end); the
 * same path from there on. On failure the socket is still the caller's.
 */
static int conn_start(cn__server *srv, int fd, bool tcp, cn__conn_sink sink, void *sink_arg,
                      cn__conn **out)
{
    cn__conn *c = calloc(1, sizeof(*c));
    int rc;

    if (c == NULL)
        return UV_ENOMEM;
    c->srv = srv;
    c->sink = sink;
    c->sink_arg = sink_arg;
    rc = uv_tcp_init(srv->loop, &c->tcp);
    if (rc < 0) {
        free(c);
        return rc;
    }
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    cn__list_init(&c->drain_waiters);
    c->refs = 2;
    cn__list_push(&srv->conns, &c->link);
    srv->stats->connections_active++;
    if (sink)
        rc = 0; /* in memory: the handle stays unopened */
    else
        rc = uv_tcp_open(&c->tcp, fd);
    if (rc < 0) {
        conn_close(c);
        return rc;
    }
    srv->stats->connections_accepted++;
    if (tcp)
        uv_tcp_nodelay(&c->tcp, 1);
    {
        struct sockaddr_storage ss;
        int len = sizeof ss;
        if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0)
            cn__addr_from_sockaddr(&c->peer, (struct sockaddr *)&ss);
    }
    c->idle_since = uv_now(srv->loop);
    llhttp_init(&c->parser, HTTP_REQUEST, &settings);
    /* any DIGIT "." DIGIT version gets through the request line, so that
     * HTTP/1.2 is served as 1.1 and HTTP/3.0 gets 505 (on_headers_complete);
     * llhttp checks nothing else with this flag */
    c->parser.lenient_flags |= LENIENT_VERSION;
    c->parser.data = c;
    c->state = ST_IDLE;
    if (out)
        *out = c;

    if (srv->stats->connections_active > srv->cfg->max_connections || srv->draining) {
        srv->stats->connections_rejected++;
        reject(c, 503, "Too many connections");
        conn_flush(c);
        /* read (and discard) so that the client's EOF frees the slot at
         * once, rather than after the lingering close's timer */
        if (c->state != ST_CLOSED)
            start_reading(c);
        return 0;
    }
    /* a connection that sends nothing is closed after the header timeout */
    timer_set(c, TIMER_IDLE, srv->cfg->header_timeout_ms);
    start_reading(c);
    return 0;
}

int cn__conn_accept_fd(cn__server *srv, int fd)
{
    int rc = conn_start(srv, fd, true, NULL, NULL, NULL);

    if (rc < 0)
        close(fd);
    return rc;
}

int cn__conn_adopt(cn__server *srv, int fd)
{
    return conn_start(srv, fd, false, NULL, NULL, NULL);
}

int cn__conn_mem_open(cn__server *srv, cn__conn_sink sink, void *arg, cn__conn **out)
{
    if (sink == NULL || out == NULL)
        return CN_EINVAL;
    return conn_start(srv, -1, false, sink, arg, out);
}

int cn__conn_mem_feed(cn__conn *c, const void *data, size_t len)
{
    if (c->state == ST_CLOSED)
        return CN_EPIPE;
    if (!c->reading)
        return CN_EAGAIN;
    if (len > 0)
        conn_input(c, data, (ssize_t)len);
    return 0;
}

void cn__conn_mem_hangup(cn__conn *c)
{
    if (c->state != ST_CLOSED)
        conn_input(c, NULL, UV_EOF);
}

void cn__conn_drain_all(cn__server *srv)
{
    cn__list *it, *next;
    uint64_t now = uv_now(srv->loop);

    srv->draining = true;
    for (it = srv->conns.next; it != &srv->conns; it = next) {
        cn__conn *c = CN__CONTAINER_OF(it, cn__conn, link);
        next = it->next;
        if (c->state == ST_IDLE && c->pending_len == c->pending_off && !c->writing &&
            c->out.len == 0) {
            uint64_t idle = now - c->idle_since;
            /* a client that just had an answer may be sending its next
             * request right now: closing would reset it. Keep it for the
             * grace (bytes already here count as a request on its way);
             * that request gets Connection: close */
            if (srv->drain_grace_ms > 0 && (idle < srv->drain_grace_ms || unread_input(c))) {
                timer_set(c, TIMER_IDLE,
                          idle < srv->drain_grace_ms ? srv->drain_grace_ms - idle : 1);
                continue;
            }
            conn_close(c);
        }
        /* busy ones answer with Connection: close and then close */
    }
}

void cn__conn_abort_all(cn__server *srv)
{
    cn__list *it, *next;

    for (it = srv->conns.next; it != &srv->conns; it = next) {
        cn__conn *c = CN__CONTAINER_OF(it, cn__conn, link);
        next = it->next;
        conn_close(c);
    }
}
