/*
 * fetch.c -- outbound HTTP on the loop: libcurl's multi interface driven by
 * one uv_poll per socket and one uv_timer (the pattern of curl's
 * docs/examples/multi-uv.c).
 *
 * One multi handle per loop holds the connection cache and the DNS cache,
 * so connections are reused across requests like a long-lived
 * httpx.AsyncClient. A fetch adds its easy handles, parks the task, and is
 * woken when the last of them is done. Every transfer lives on the parked
 * coroutine's stack (or its request's arena); a cancel removes the handles
 * from the multi before the task goes on, so no curl callback can reach
 * memory that is gone.
 *
 * Every transfer also has a uv timer of ours for its timeout. curl's
 * CURLOPT_TIMEOUT does not end a transfer that waits for a free connection
 * (CURLMOPT_MAX_HOST_CONNECTIONS queues it, and libcurl 7.88 looks at its
 * clock only once a connection comes free), so with every connection to a
 * host taken by slow fetches a 5 s fetch waited as long as they did (9.5 s
 * in bench/hold_attacks.py, 29.5 s with 30 s fetches ahead of it). Our
 * timer counts from cn_fetch_all, queueing included; when it fires, the
 * transfer is pulled out of the multi and fails with CN_ETIMEDOUT.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "buf.h"
#include "common.h"
#include "fetch.h"
#include "json.h"
#include "req.h"
#include "scheduler.h"

struct cn__fetch {
    uv_loop_t *loop;
    const cn_config *cfg;
    CURLM *multi;
    uv_timer_t timer;
    unsigned open_handles; /* the timer + socket polls being closed */
    bool closing;
    /* figures (for tests and metrics; cn_app_stats reads them from any thread) */
    _Atomic uint64_t connects;       /* new connections opened */
    _Atomic uint64_t requests;       /* transfers finished, whatever the outcome */
    _Atomic uint64_t failures;       /* of those, the ones that got no response */
    _Atomic uint64_t queue_timeouts; /* timed out before curl began them (queued) */
};

/* One socket curl wants watched. */
typedef struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    cn__fetch *f;
} sock_ctx;

struct xfer;

/* A transfer's deadline. Its own allocation: a uv handle's memory must
 * outlive uv_close, and the transfer (in the request's arena) may not. */
typedef struct deadline {
    uv_timer_t timer;
    struct xfer *x; /* NULL once the transfer is finished */
} deadline;

/* One transfer of a cn_fetch_all call. */
typedef struct xfer {
    CURL *easy;
    deadline *dl;     /* NULL: no timeout, or finished */
    uint64_t started; /* uv_now when it was handed to curl */
    struct fetch_call *call;
    cn_fetch_result *out;
    struct curl_slist *headers;
    cn__buf body;
    cn__buf hdrs; /* "name\0value\0" of the final response */
    size_t max_body;
    bool too_big;
    bool done;
} xfer;

typedef struct fetch_call {
    cn__fetch *f;
    cn__task *task;
    xfer *xs;
    size_t n, pending;
} fetch_call;

static void check_done(cn__fetch *f);

/* ---- the loop glue ---- */

static void on_poll(uv_poll_t *p, int status, int events)
{
    sock_ctx *sc = p->data;
    int running, flags = 0;

    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(sc->f->multi, sc->fd, flags, &running);
    check_done(sc->f);
}

static void on_sock_closed(uv_handle_t *h)
{
    sock_ctx *sc = h->data;
    cn__fetch *f = sc->f;

    free(sc);
    if (--f->open_handles == 0 && f->closing)
        free(f);
}

static int on_socket(CURL *easy, curl_socket_t fd, int action, void *userp, void *socketp)
{
    cn__fetch *f = userp;
    sock_ctx *sc = socketp;
    int events = 0;

    (void)easy;
    if (action == CURL_POLL_REMOVE) {
        if (sc) {
            uv_poll_stop(&sc->poll);
            uv_close((uv_handle_t *)&sc->poll, on_sock_closed);
            curl_multi_assign(f->multi, fd, NULL);
        }
        return 0;
    }
    if (sc == NULL) {
        sc = malloc(sizeof(*sc));
        if (sc == NULL || uv_poll_init_socket(f->loop, &sc->poll, fd) < 0) {
            free(sc);
            return -1;
        }
        sc->fd = fd;
        sc->f = f;
        sc->poll.data = sc;
        f->open_handles++;
        curl_multi_assign(f->multi, fd, sc);
    }
    if (action != CURL_POLL_OUT)
        events |= UV_READABLE;
    if (action != CURL_POLL_IN)
        events |= UV_WRITABLE;
    uv_poll_start(&sc->poll, events, on_poll);
    return 0;
}

static void on_timeout(uv_timer_t *t)
{
    cn__fetch *f = t->data;
    int running;

    curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(f);
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    cn__fetch *f = userp;

    (void)multi;
    /* never act from inside this callback; and 0 ms becomes 1: before libuv
     * 1.48 a 0 ms timer started from a timer callback (on_timeout) fires
     * again in the same pass, so a curl asking for 0 again and again would
     * keep the loop from polling (curl's multi-uv example does the same) */
    if (timeout_ms < 0)
        uv_timer_stop(&f->timer);
    else
        uv_timer_start(&f->timer, on_timeout, timeout_ms == 0 ? 1 : (uint64_t)timeout_ms, 0);
    return 0;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

cn__fetch *cn__fetch_new(uv_loop_t *loop, const cn_config *cfg)
{
    cn__fetch *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return NULL;
    pthread_once(&curl_once, curl_init_once);
    f->multi = curl_multi_init();
    if (f->multi == NULL) {
        free(f);
        return NULL;
    }
    f->loop = loop;
    f->cfg = cfg;
    uv_timer_init(loop, &f->timer);
    f->timer.data = f;
    uv_unref((uv_handle_t *)&f->timer);
    f->open_handles = 1;
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
    curl_multi_setopt(f->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)cfg->fetch_max_host_conns);
    /* the idle connections kept for reuse */
    curl_multi_setopt(f->multi, CURLMOPT_MAXCONNECTS, (long)cfg->fetch_max_host_conns * 4);
    return f;
}

static void on_timer_closed(uv_handle_t *h)
{
    cn__fetch *f = h->data;

    if (--f->open_handles == 0)
        free(f);
}

void cn__fetch_free(cn__fetch *f)
{
    if (f == NULL)
        return;
    /* no transfer is left (every task has completed); this closes the
     * cached connections, whose sockets curl then asks us to stop watching */
    curl_multi_cleanup(f->multi);
    f->multi = NULL;
    f->closing = true;
    uv_close((uv_handle_t *)&f->timer, on_timer_closed);
}

void cn__fetch_stats(const cn__fetch *f, cn_stats *out)
{
    out->fetch_connects = atomic_load_explicit(&f->connects, memory_order_relaxed);
    out->fetch_requests = atomic_load_explicit(&f->requests, memory_order_relaxed);
    out->fetch_failures = atomic_load_explicit(&f->failures, memory_order_relaxed);
    out->fetch_queue_timeouts = atomic_load_explicit(&f->queue_timeouts, memory_order_relaxed);
}

/* ---- transfers ---- */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    xfer *x = arg;
    size_t len = size * n;

    if (x->body.len + len > x->max_body) {
        x->too_big = true;
        return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
    }
    if (cn__buf_append(&x->body, p, len) < 0)
        return 0;
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    xfer *x = arg;
    size_t len = size * n, nlen;
    const char *colon, *v, *end = p + len;

    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        x->hdrs.len = 0; /* a new response (after a 100 or a redirect) */
        return len;
    }
    colon = memchr(p, ':', len);
    if (colon == NULL)
        return len;
    nlen = (size_t)(colon - p);
    v = colon + 1;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    if (cn__buf_append(&x->hdrs, p, nlen) < 0 || cn__buf_append(&x->hdrs, "", 1) < 0 ||
        cn__buf_append(&x->hdrs, v, (size_t)(end - v)) < 0 || cn__buf_append(&x->hdrs, "", 1) < 0)
        return 0;
    return len;
}

/* Called for every socket curl opens for a connection, whatever becomes of
 * the transfer (CURLINFO_NUM_CONNECTS misses those cut short). */
static int on_sockopt(void *arg, curl_socket_t fd, curlsocktype purpose)
{
    xfer *x = arg;

    (void)fd;
    if (purpose == CURLSOCKTYPE_IPCXN)
        x->call->f->connects++;
    return CURL_SOCKOPT_OK;
}

static int map_error(CURLcode cc, const xfer *x)
{
    switch (cc) {
    case CURLE_OK:
        return 0;
    case CURLE_OPERATION_TIMEDOUT:
        return CN_ETIMEDOUT;
    case CURLE_COULDNT_CONNECT:
        return CN_ECONNREFUSED;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return CN_EDNS;
    case CURLE_WRITE_ERROR:
        return x->too_big ? CN_ETOOBIG : CN_ENOMEM;
    case CURLE_OUT_OF_MEMORY:
        return CN_ENOMEM;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return CN_EINVAL;
    default:
        return CN_EUPSTREAM;
    }
}

/* Move what a finished transfer collected into the request's arena. */
static void free_deadline(uv_handle_t *h)
{
    free(h->data);
}

/* Whether curl never began the transfer: it was still waiting for a
 * connection (not even its name was looked up). */
static bool never_began(const xfer *x)
{
    curl_off_t t = 0;

    return x->easy && curl_easy_getinfo(x->easy, CURLINFO_NAMELOOKUP_TIME_T, &t) == CURLE_OK &&
           t == 0;
}

static void finish_xfer(xfer *x, int err)
{
    cn_fetch_result *r = x->out;
    cn__fetch *f = x->call->f;
    cn_req *req = cn__task_req(x->call->task);
    long status = 0;
    double secs = 0, lived;
    size_t count = 0, i = 0;
    const char *p;

    if (x->dl) {
        x->dl->x = NULL;
        uv_close((uv_handle_t *)&x->dl->timer, free_deadline);
        x->dl = NULL;
    }
    if (err == CN_ETIMEDOUT && never_began(x))
        f->queue_timeouts++;
    r->error = err;
    if (x->easy) {
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(x->easy, CURLINFO_TOTAL_TIME, &secs);
    }
    r->status = err == 0 ? (int)status : 0;
    /* curl's clock may not count the time spent queued for a connection */
    lived = x->started ? (double)(uv_now(f->loop) - x->started) : 0;
    r->elapsed_ms = secs * 1000.0 > lived ? secs * 1000.0 : lived;
    if (err == 0 && x->body.len) {
        char *b = cn_req_strndup(req, x->body.data, x->body.len);
        if (b) {
            r->body.ptr = b;
            r->body.len = x->body.len;
        } else {
            r->error = CN_ENOMEM;
        }
    }
    for (p = x->hdrs.data; p && p < x->hdrs.data + x->hdrs.len; p += strlen(p) + 1)
        count++;
    count /= 2;
    if (err == 0 && count) {
        char *copy = cn_req_strndup(req, x->hdrs.data, x->hdrs.len);
        r->header_names = cn_req_alloc(req, count * sizeof(cn_str));
        r->header_values = cn_req_alloc(req, count * sizeof(cn_str));
        if (copy && r->header_names && r->header_values) {
            for (p = copy; i < count; i++) {
                r->header_names[i].ptr = p;
                r->header_names[i].len = strlen(p);
                p += r->header_names[i].len + 1;
                r->header_values[i].ptr = p;
                r->header_values[i].len = strlen(p);
                p += r->header_values[i].len + 1;
            }
            r->nheaders = count;
        }
    }
    cn__buf_free(&x->body);
    cn__buf_free(&x->hdrs);
    curl_slist_free_all(x->headers);
    x->headers = NULL;
    if (x->easy) {
        curl_easy_cleanup(x->easy);
        x->easy = NULL;
    }
    x->done = true;
    f->requests++;
    if (r->error)
        f->failures++;
}

/* The transfer's timeout, counted from cn_fetch_all, ran out (queued or not). */
static void on_deadline(uv_timer_t *t)
{
    deadline *d = t->data;
    xfer *x = d->x;
    fetch_call *c = x->call;

    curl_multi_remove_handle(c->f->multi, x->easy);
    finish_xfer(x, CN_ETIMEDOUT); /* closes this timer */
    if (--c->pending == 0)
        cn__task_wake(c->task, 0);
}

/* Arm the transfer's own timer (0: no timeout). */
static int start_deadline(cn__fetch *f, xfer *x, uint64_t ms)
{
    deadline *d;

    x->started = uv_now(f->loop);
    if (ms == 0)
        return 0;
    d = malloc(sizeof(*d));
    if (d == NULL)
        return CN_ENOMEM;
    uv_timer_init(f->loop, &d->timer);
    d->timer.data = d;
    d->x = x;
    x->dl = d;
    uv_timer_start(&d->timer, on_deadline, ms, 0);
    return 0;
}

static void check_done(cn__fetch *f)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(f->multi, &left))) {
        xfer *x = NULL;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        curl_multi_remove_handle(f->multi, msg->easy_handle);
        finish_xfer(x, map_error(msg->data.result, x));
        if (--x->call->pending == 0)
            cn__task_wake(x->call->task, 0);
    }
}

/* The transfer's timeout in ms (0: none). */
static uint64_t xfer_timeout(const cn__fetch *f, const cn_fetch_opts *o)
{
    return o->timeout_ms > 0 ? (uint64_t)o->timeout_ms : f->cfg->fetch_timeout_ms;
}

static int setup_xfer(cn__fetch *f, xfer *x, const cn_fetch_opts *o)
{
    const cn_config *cfg = f->cfg;
    CURL *e = curl_easy_init();
    long timeout = (long)xfer_timeout(f, o);

    if (e == NULL)
        return CN_ENOMEM;
    x->easy = e;
    x->max_body = o->max_body_bytes ? o->max_body_bytes : cfg->fetch_max_body_bytes;
    for (const char *const *h = o->headers; h && *h; h++) {
        struct curl_slist *l = curl_slist_append(x->headers, *h);
        if (l == NULL)
            return CN_ENOMEM;
        x->headers = l;
    }
    curl_easy_setopt(e, CURLOPT_URL, o->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_SOCKOPTFUNCTION, on_sockopt);
    curl_easy_setopt(e, CURLOPT_SOCKOPTDATA, x);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "canteen/" CN_VERSION_STRING);
    if (o->body || o->body_len) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, o->body ? o->body : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
    }
    if (o->method)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, o->method);
    if (o->method && strcmp(o->method, "HEAD") == 0)
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    return 0;
}

/* Cancelled while parked: pull every unfinished transfer out of curl now. */
static void cancel_call(cn__task *t, void *arg)
{
    fetch_call *c = arg;

    (void)t;
    for (size_t i = 0; i < c->n; i++) {
        xfer *x = &c->xs[i];
        if (x->done)
            continue;
        curl_multi_remove_handle(c->f->multi, x->easy);
        finish_xfer(x, CN_ECANCELED);
    }
    c->pending = 0;
}

int cn_fetch_all(const cn_fetch_opts *opts, size_t n, cn_fetch_result *out)
{
    cn__task *t = cn__task_current();
    fetch_call call = {0};
    int rc = 0;
    size_t i;

    if (t == NULL)
        return CN_ENOTCORO;
    if ((opts == NULL || out == NULL) && n > 0)
        return CN_EINVAL;
    for (i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof(out[i]));
        if (opts[i].url == NULL)
            return CN_EINVAL;
    }
    if (cn__task_is_cancelled(t))
        return CN_ECANCELED;
    call.f = cn__task_ext(t, CN__EXT_FETCH);
    call.task = t;
    call.n = n;
    call.xs = cn_req_alloc(cn__task_req(t), (n ? n : 1) * sizeof(xfer));
    if (call.xs == NULL)
        return CN_ENOMEM;
    memset(call.xs, 0, (n ? n : 1) * sizeof(xfer));
    for (i = 0; i < n; i++) {
        xfer *x = &call.xs[i];
        x->call = &call;
        x->out = &out[i];
        rc = setup_xfer(call.f, x, &opts[i]);
        if (rc == 0 && curl_multi_add_handle(call.f->multi, x->easy) != CURLM_OK)
            rc = CN_ENOMEM;
        else if (rc == 0 && (rc = start_deadline(call.f, x, xfer_timeout(call.f, &opts[i]))) < 0)
            curl_multi_remove_handle(call.f->multi, x->easy);
        if (rc < 0) {
            finish_xfer(x, rc);
            continue;
        }
        call.pending++;
    }
    /* all are in flight before we park: the wait is the slowest, not the sum */
    if (call.pending > 0) {
        rc = cn__task_park(t, cancel_call, &call);
        if (rc == CN_ECANCELED && call.pending > 0) /* cancelled before parking */
            cancel_call(t, &call);
    }
    if (cn__task_is_cancelled(t))
        return CN_ECANCELED;
    for (i = 0; i < n; i++)
        if (out[i].error)
            return out[i].error;
    return 0;
}

int cn_fetch(const cn_fetch_opts *opts, cn_fetch_result *out)
{
    if (opts == NULL || out == NULL)
        return CN_EINVAL;
    return cn_fetch_all(opts, 1, out);
}

const char *cn_fetch_header(const cn_fetch_result *r, const char *name)
{
    for (size_t i = 0; r && i < r->nheaders; i++)
        if (cn__ieq(r->header_names[i].ptr, r->header_names[i].len, name))
            return r->header_values[i].ptr;
    return NULL;
}

/* A parsed upstream body, deleted with its request (a big one on the pool). */
typedef struct owned_json {
    cn_app *app;
    cJSON *j;
} owned_json;

static void delete_json(void *p)
{
    owned_json *o = p;
    cn__json_free(o->app, o->j);
}

int cn_fetch_json(const cn_fetch_result *r, cJSON **out)
{
    cn__task *t = cn__task_current();
    owned_json *o;
    cn_req *req;
    cJSON *j;
    int rc;

    if (out)
        *out = NULL;
    if (t == NULL)
        return CN_ENOTCORO;
    if (r == NULL || out == NULL)
        return CN_EINVAL;
    req = cn__task_req(t);
    if (req == NULL)
        return CN_ESTATE; /* nothing to own the tree */
    o = cn_req_alloc(req, sizeof(*o));
    if (o == NULL)
        return CN_ENOMEM;
    rc = cn__json_parse_off_loop(req->app, r->body.ptr, r->body.len, &j);
    if (rc < 0)
        return rc;
    o->app = req->app;
    o->j = j;
    if (cn_req_defer(req, delete_json, o) < 0) {
        cn__json_free(req->app, j);
        return CN_ENOMEM;
    }
    *out = j;
    return 0;
}

int cn_res_upstream_error(cn_res *res, const cn_fetch_result *r, const char *not_found_detail)
{
    char detail[128];

    if (r == NULL)
        return CN_EINVAL;
    if (r->error == CN_ETIMEDOUT)
        return cn_res_error(res, 504, "Upstream timed out");
    if (r->error) {
        snprintf(detail, sizeof detail, "Upstream unavailable: %s", cn_strerror(r->error));
        return cn_res_error(res, 502, detail);
    }
    if (r->status == 404)
        return cn_res_error(res, 404, not_found_detail ? not_found_detail : "Not Found");
    if (r->status >= 400) {
        snprintf(detail, sizeof detail, "Upstream returned %d", r->status);
        return cn_res_error(res, 502, detail);
    }
    return CN_EINVAL;
}
