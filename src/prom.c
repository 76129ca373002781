/*
 * prom.c -- Prometheus' text exposition format, version 0.0.4.
 *
 * One table lists every sample: the metric's name, type and help, the
 * sample's labels if any, and where its value sits in the snapshot. Rows
 * of one name in a row are one metric (a counter split by a label, a
 * summary's _sum and _count): its # HELP and # TYPE lines come once,
 * before its first sample. Names follow Prometheus' conventions: the
 * canteen_ prefix, base units in the name (_seconds), _total on counters
 * and only there, and no two metrics that a client library would read as
 * one (a gauge x beside a counter x_total).
 *
 * Numbers are written without printf's %g, which follows LC_NUMERIC: an
 * application that sets a locale with a decimal comma would otherwise
 * break every scraper. Every time Canteen keeps is in milliseconds with at
 * most nanosecond precision, so it is shown as whole seconds and nine
 * decimals, trailing zeros dropped.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "prom.h"

enum {
    V_U64,  /* a uint64_t */
    V_UINT, /* an unsigned */
    V_MS,   /* a double, milliseconds, shown in seconds */
    V_ONE,  /* no figure: the value is 1 (an info metric, all in its labels) */
};

typedef struct sample {
    const char *name;
    const char *type;
    const char *help;
    const char *labels; /* `class="2xx"`, or NULL */
    int kind;
    size_t off;         /* of the value in cn__prom_figures (or cn__prom_server) */
    const char *suffix; /* a summary's "_sum" or "_count", or NULL */
} sample;

/* Where a sample's value is, and how to show it */
#define U64(field) V_U64, offsetof(cn__prom_figures, field), NULL
#define UINT(field) V_UINT, offsetof(cn__prom_figures, field), NULL
#define MS(field) V_MS, offsetof(cn__prom_figures, field), NULL
#define SUM_MS(field) V_MS, offsetof(cn__prom_figures, field), "_sum"
#define COUNT(field) V_U64, offsetof(cn__prom_figures, field), "_count"
/* canteen_responses_total, one sample per status class */
#define RESPONSES_HELP                                                                             \
    "Responses sent, by status class (600 and up count as 5xx), including those given before a "   \
    "request was routed (400, 408, 413, 431, and 503 at max_connections)."
#define RESPONSES(cls, field)                                                                      \
    {                                                                                              \
        "canteen_responses_total", "counter", RESPONSES_HELP, "class=\"" cls "\"", U64(app.field)  \
    }

/* Summaries without quantiles: rate(_sum) / rate(_count) is the mean over a window. */
#define WAIT_HELP                                                                                  \
    "How long the jobs a worker took had waited in the queue (the count is the jobs started)."
#define LAG_HELP "How late each lag probe fired."

static const sample samples[] = {
    {"canteen_build_info", "gauge", "Canteen's version, as a label; the value is always 1.",
     "version=\"" CN_VERSION_STRING "\"", V_ONE, 0, NULL},

    /* connections and requests */
    {"canteen_connections_accepted_total", "counter", "TCP connections accepted.", NULL,
     U64(app.connections_accepted)},
    {"canteen_connections_rejected_total", "counter",
     "Connections answered 503 and closed at once: max_connections reached, or shutting down.",
     NULL, U64(app.connections_rejected)},
    {"canteen_connections_no_fd_total", "counter",
     "Connections that came while the process was out of file descriptors (EMFILE/ENFILE), "
     "answered 503 from a spare descriptor and closed.",
     NULL, U64(app.connections_no_fd)},
    {"canteen_accept_pauses_total", "counter",
     "Times accepting stopped for 100 ms: out of file descriptors with no spare to answer from, "
     "or another accept() error.",
     NULL, U64(app.accept_pauses)},
    {"canteen_connections_stalled_total", "counter",
     "Connections closed because the client took none of the output waiting for it for "
     "keepalive_timeout_ms.",
     NULL, U64(app.connections_stalled)},
    {"canteen_connections_open", "gauge", "TCP connections open now.", NULL,
     U64(app.connections_active)},
    {"canteen_requests_total", "counter",
     "Requests read in full and routed, including those answered 404, 405 or 422 before a "
     "handler ran.",
     NULL, U64(app.requests_total)},
    {"canteen_requests_in_flight", "gauge",
     "Requests whose handler is running or parked now (a scrape counts itself).", NULL,
     U64(app.requests_active)},
    RESPONSES("1xx", responses_1xx),
    RESPONSES("2xx", responses_2xx),
    RESPONSES("3xx", responses_3xx),
    RESPONSES("4xx", responses_4xx),
    RESPONSES("5xx", responses_5xx),
    {"canteen_coroutines_live", "gauge",
     "Coroutines not yet returned to the stack pool (back to 0 when idle, unless one leaked).",
     NULL, U64(app.coroutines_live)},
    {"canteen_write_queue_peak_bytes", "gauge",
     "The most response bytes one connection has held in memory, not yet taken by the kernel, "
     "since start (a streamed body holds about 256 KiB at most).",
     NULL, U64(app.write_queue_peak)},

    /* the thread pool */
    {"canteen_pool_threads", "gauge", "Worker threads for sync routes and cn_to_thread.", NULL,
     UINT(pool.threads)},
    {"canteen_pool_threads_busy", "gauge", "Workers running a job now.", NULL, UINT(pool.busy)},
    {"canteen_pool_jobs_queued", "gauge", "Jobs waiting for a worker now.", NULL,
     U64(pool.queue_depth)},
    {"canteen_pool_jobs_submitted_total", "counter", "Jobs submitted to the pool.", NULL,
     U64(pool.submitted)},
    {"canteen_pool_jobs_completed_total", "counter", "Jobs that ran to their end.", NULL,
     U64(pool.completed)},
    {"canteen_pool_jobs_cancelled_total", "counter",
     "Waiting jobs dropped before a worker took them (their request went away).", NULL,
     U64(pool.cancelled)},
    {"canteen_pool_queue_wait_seconds", "summary", WAIT_HELP, NULL, SUM_MS(pool.wait_ms_sum)},
    {"canteen_pool_queue_wait_seconds", "summary", WAIT_HELP, NULL, COUNT(pool.started)},
    {"canteen_pool_queue_wait_max_seconds", "gauge",
     "The longest a job waited in the queue since start.", NULL, MS(pool.wait_ms_max)},
    {"canteen_pool_jobs_rejected_total", "counter",
     "Jobs refused because pool_queue_max jobs were waiting (a sync route answered 503).", NULL,
     U64(pool.rejected)},
    {"canteen_pool_jobs_expired_total", "counter",
     "Jobs dropped unrun after waiting longer than pool_queue_timeout_ms (a sync route answered "
     "503).",
     NULL, U64(pool.expired)},
    {"canteen_pool_route_waits_total", "counter",
     "Jobs that waited for their route's pool_limit (or Canteen's CPU lane) before they could "
     "queue for a worker.",
     NULL,
     U64(pool.route_waits)},
    {"canteen_pool_jobs_route_waiting", "gauge",
     "Jobs waiting for their route's pool_limit (or the CPU lane) now, holding no worker (not in "
     "canteen_pool_jobs_queued).",
     NULL, U64(pool.route_waiting)},

    /* the event loop */
    {"canteen_loop_lag_seconds", "gauge",
     "How late the lag probe timer fired last time: how long a request arriving then waited "
     "before the loop looked at it.",
     NULL, MS(loop.lag_ms_last)},
    {"canteen_loop_lag_max_seconds", "gauge", "The worst loop lag since start.", NULL,
     MS(loop.lag_ms_max)},
    {"canteen_loop_lag_probe_seconds", "summary", LAG_HELP, NULL, SUM_MS(loop.lag_ms_sum)},
    {"canteen_loop_lag_probe_seconds", "summary", LAG_HELP, NULL, COUNT(loop.lag_samples)},
    {"canteen_loop_slow_steps_total", "counter",
     "Coroutine steps longer than slow_callback_ms (each is logged with its route).", NULL,
     U64(loop.slow_steps)},
    {"canteen_loop_slowest_step_seconds", "gauge",
     "The longest of those slow steps since start (0 while there is none).", NULL,
     MS(loop.slowest_ms)},
    {"canteen_loop_busy_turns_total", "counter",
     "Loop turns busier than slow_callback_ms in all (many short steps under load).", NULL,
     U64(loop.busy_turns)},
    {"canteen_loop_busiest_turn_seconds", "gauge",
     "The busiest of those turns since start (0 while there is none).", NULL,
     MS(loop.busiest_turn_ms)},

    /* outbound HTTP */
    {"canteen_fetch_connections_total", "counter",
     "Outbound connections opened by cn_fetch (low when connections are reused).", NULL,
     U64(app.fetch_connects)},
    {"canteen_fetch_requests_total", "counter",
     "Outbound transfers finished, whatever the outcome.", NULL, U64(app.fetch_requests)},
    {"canteen_fetch_failures_total", "counter",
     "Outbound transfers that got no response (timeout, refused, cancelled...).", NULL,
     U64(app.fetch_failures)},
    {"canteen_fetch_queue_timeouts_total", "counter",
     "Outbound transfers whose timeout ran out while they waited for a free connection "
     "(fetch_max_host_conns taken).",
     NULL, U64(app.fetch_queue_timeouts)},

    /* background tasks (cn_req_background) */
    {"canteen_background_tasks_started_total", "counter",
     "Background tasks begun, after their request was answered.", NULL,
     U64(app.background_started)},
    {"canteen_background_tasks_failed_total", "counter",
     "Background tasks that returned an error (each is logged with its route).", NULL,
     U64(app.background_failed)},
    {"canteen_background_tasks_running", "gauge",
     "Background tasks running now (a graceful stop waits for them).", NULL,
     U64(app.background_running)},
};

/* A bounded writer that goes on counting past the end, as snprintf does.
 * Extensions see it as the public cn_metrics_out. */
struct cn_metrics_out {
    char *buf;
    size_t size, len;
};
typedef struct cn_metrics_out writer;

static void vput(writer *w, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void vput(writer *w, const char *fmt, va_list ap)
{
    char *dst = NULL;
    size_t room = 0;
    int n;

    if (w->len < w->size) {
        dst = w->buf + w->len;
        room = w->size - w->len;
    }
    n = vsnprintf(dst, room, fmt, ap);
    if (n > 0)
        w->len += (size_t)n;
}

static void put(writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(writer *w, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vput(w, fmt, ap);
    va_end(ap);
}

void cn_metrics_printf(cn_metrics_out *out, const char *fmt, ...)
{
    va_list ap;

    if (out == NULL || fmt == NULL)
        return;
    va_start(ap, fmt);
    vput(out, fmt, ap);
    va_end(ap);
}

/* Milliseconds as seconds: whole seconds and up to nine decimals. */
static void put_seconds(writer *w, double ms)
{
    uint64_t ns = ms > 0 ? (uint64_t)(ms * 1e6 + 0.5) : 0;
    unsigned long long frac;
    int digits = 9;

    put(w, "%llu", (unsigned long long)(ns / 1000000000u));
    frac = ns % 1000000000u;
    if (frac == 0)
        return;
    for (; frac % 10 == 0; frac /= 10)
        digits--;
    put(w, ".%0*llu", digits, frac);
}

void cn_metrics_seconds(cn_metrics_out *out, double ms)
{
    if (out)
        put_seconds(out, ms);
}

/* s's value, read at s->off in `base` (the figures, or the server's). */
static void put_value(writer *w, const void *base, const sample *s)
{
    const char *at = (const char *)base + s->off;

    switch (s->kind) {
    case V_U64:
        put(w, "%llu", (unsigned long long)*(const uint64_t *)at);
        break;
    case V_UINT:
        put(w, "%u", *(const unsigned *)at);
        break;
    case V_MS:
        put_seconds(w, *(const double *)at);
        break;
    default:
        put(w, "1");
        break;
    }
}

static void put_head(writer *w, const sample *s)
{
    put(w, "# HELP %s %s\n# TYPE %s %s\n", s->name, s->help, s->name, s->type);
}

/* The rows of a table, their values at `base`: # HELP and # TYPE once a metric. */
static void put_samples(writer *w, const void *base, const sample *table, size_t n)
{
    const char *family = NULL;

    for (size_t i = 0; i < n; i++) {
        const sample *s = &table[i];

        if (family == NULL || strcmp(family, s->name) != 0) {
            family = s->name;
            put_head(w, s);
        }
        put(w, "%s%s", s->name, s->suffix ? s->suffix : "");
        if (s->labels)
            put(w, "{%s}", s->labels);
        put(w, " ");
        put_value(w, base, s);
        put(w, "\n");
    }
}

size_t cn__prom_render(const cn__prom_figures *f, const cn__prom_ext *ext, size_t next, char *buf,
                       size_t size)
{
    writer w = {buf, size, 0};

    if (size > 0)
        buf[0] = 0;
    put_samples(&w, f, samples, CN__ARRAY_SIZE(samples));
    for (size_t i = 0; i < next; i++)
        ext[i].fn(&w, ext[i].data);
    return w.len;
}

/* ---- workers: one server's figures out of several processes' ---- */

enum { M_NONE, M_SUM, M_MAX, M_LIVE_SUM, M_LIVE_MAX };

/* Gauges that keep the worst value since start: the server's is the worst. */
static const char *const since_start_max[] = {
    "canteen_write_queue_peak_bytes",    "canteen_pool_queue_wait_max_seconds",
    "canteen_loop_lag_max_seconds",      "canteen_loop_slowest_step_seconds",
    "canteen_loop_busiest_turn_seconds",
};

/*
 * Counters and summaries add up, also over the workers that exited (so that
 * they never go back); a gauge of the present (connections open, threads
 * busy) adds up over the live workers; the worst-since-start gauges take
 * the worst, the last loop lag the worst worker's now.
 */
static int merge_kind(const sample *s)
{
    if (s->kind == V_ONE)
        return M_NONE;
    if (strcmp(s->type, "gauge") != 0)
        return M_SUM;
    for (size_t i = 0; i < CN__ARRAY_SIZE(since_start_max); i++)
        if (strcmp(s->name, since_start_max[i]) == 0)
            return M_MAX;
    if (strcmp(s->name, "canteen_loop_lag_seconds") == 0)
        return M_LIVE_MAX;
    return M_LIVE_SUM;
}

void cn__prom_merge(cn__prom_figures *into, const cn__prom_figures *from, bool live)
{
    for (size_t i = 0; i < CN__ARRAY_SIZE(samples); i++) {
        const sample *s = &samples[i];
        int m = merge_kind(s);
        char *to = (char *)into + s->off;
        const char *fr = (const char *)from + s->off;
        bool max = m == M_MAX || m == M_LIVE_MAX;

        if (m == M_NONE || (!live && (m == M_LIVE_SUM || m == M_LIVE_MAX)))
            continue;
        switch (s->kind) {
        case V_U64: {
            uint64_t *a = (uint64_t *)to, b = *(const uint64_t *)fr;
            *a = max ? (b > *a ? b : *a) : *a + b;
            break;
        }
        case V_UINT: {
            unsigned *a = (unsigned *)to, b = *(const unsigned *)fr;
            *a = max ? (b > *a ? b : *a) : *a + b;
            break;
        }
        case V_MS: {
            double *a = (double *)to, b = *(const double *)fr;
            *a = max ? (b > *a ? b : *a) : *a + b;
            break;
        }
        default:
            break;
        }
    }
}

/* Per worker: the figures that say how the load is spread. */
static const sample worker_samples[] = {
    {"canteen_worker_connections_open", "gauge", "TCP connections open now, per worker.", NULL,
     U64(app.connections_active)},
    {"canteen_worker_connections_accepted_total", "counter",
     "TCP connections accepted by the worker since it started.", NULL,
     U64(app.connections_accepted)},
    {"canteen_worker_requests_total", "counter", "Requests routed by the worker since it started.",
     NULL, U64(app.requests_total)},
    {"canteen_worker_requests_in_flight", "gauge",
     "Requests whose handler is running or parked now, per worker.", NULL,
     U64(app.requests_active)},
    {"canteen_worker_loop_lag_seconds", "gauge", "How late the worker's lag probe fired last time.",
     NULL, MS(loop.lag_ms_last)},
    {"canteen_worker_pool_threads_busy", "gauge", "The worker's pool threads running a job now.",
     NULL, UINT(pool.busy)},
    {"canteen_worker_pool_jobs_queued", "gauge",
     "Jobs waiting for one of the worker's threads now.", NULL, U64(pool.queue_depth)},
};

/* The supervisor's own figures. */
static const sample server_samples[] = {
    {"canteen_workers", "gauge", "Worker processes alive now (starting, ready or draining).", NULL,
     V_UINT, offsetof(cn__prom_server, n), NULL},
    {"canteen_workers_target", "gauge",
     "Workers the supervisor keeps (cn_config.workers, changed by SIGTTIN and SIGTTOU).", NULL,
     V_UINT, offsetof(cn__prom_server, target), NULL},
    {"canteen_worker_restarts_total", "counter",
     "Workers replaced after they died unasked (a crash, a kill, a missed heartbeat).", NULL, V_U64,
     offsetof(cn__prom_server, restarts), NULL},
};

/* Its samples are one a worker, each with labels of its own (below). */
static const sample worker_info = {
    .name = "canteen_worker_info",
    .type = "gauge",
    .help = "Each worker process: its number, pid and state; the value is always 1.",
    .kind = V_ONE,
};

static const char *const state_names[] = {"free", "starting", "ready", "draining"};

size_t cn__prom_render_server(const cn__prom_server *srv, const cn__prom_ext *ext, size_t next,
                              char *buf, size_t size)
{
    writer w = {buf, size, 0};

    if (size > 0)
        buf[0] = 0;
    put_samples(&w, &srv->total, samples, CN__ARRAY_SIZE(samples));
    put_samples(&w, srv, server_samples, CN__ARRAY_SIZE(server_samples));
    put_head(&w, &worker_info);
    for (unsigned i = 0; i < srv->n; i++) {
        const cn__prom_worker *k = &srv->workers[i];
        put(&w, "canteen_worker_info{worker=\"%d\",pid=\"%d\",state=\"%s\"} 1\n", k->id, k->pid,
            state_names[k->state >= 0 && k->state < 4 ? k->state : 0]);
    }
    for (size_t j = 0; j < CN__ARRAY_SIZE(worker_samples); j++) {
        const sample *s = &worker_samples[j];
        put_head(&w, s);
        for (unsigned i = 0; i < srv->n; i++) {
            /* a draining worker's number is its replacement's already: it
             * counts in the totals and in canteen_worker_info only */
            if (srv->workers[i].draining)
                continue;
            put(&w, "%s{worker=\"%d\"} ", s->name, srv->workers[i].id);
            put_value(&w, &srv->workers[i].f, s);
            put(&w, "\n");
        }
    }
    for (size_t i = 0; i < next; i++)
        ext[i].fn(&w, ext[i].data);
    return w.len;
}
