/*
 * app.c -- configuration, listeners, the run loop, signals and graceful
 * shutdown. One app is one libuv loop run on the thread that calls
 * cn_app_run.
 */
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "canteen/uv.h"
#include "conn.h"
#include "dispatch.h"
#include "fdwait.h"
#include "fetch.h"
#include "metrics.h"
#include "pool.h"
#include "prom.h"
#include "router.h"
#include "scheduler.h"

enum { APP_NEW, APP_RUNNING, APP_STOPPING, APP_STOPPED };

#define READBUF_SIZE (64 * 1024)

struct cn_app {
    cn_config cfg;
    uv_loop_t loop;
    cn__router *router;
    cn__sched *sched;
    cn__dispatch *dispatch;
    cn__pool *pool;
    cn__fetch *fetch;
    cn__fdwait *fdwait;
    cn__metrics *metrics;
    cn__prom_ext *metrics_ext; /* cn_app_metrics_add */
    size_t nmetrics_ext;
    cn__server srv;
    cn_stats stats;
    uv_tcp_t **listeners;
    int nlisteners;
    int port; /* of the first listener */
    uv_async_t stop_async;
    uv_signal_t sig_int, sig_term;
    uv_timer_t deadline;
    bool signals_on, deadline_on;
    _Atomic int state;
};

static void fill_defaults(cn_config *c)
{
#define DEF(field, value)                                                                          \
    if (c->field == 0)                                                                             \
    c->field = (value)
    DEF(max_header_bytes, 8192);
    DEF(max_headers, 100);
    DEF(max_body_bytes, 1024 * 1024);
    DEF(header_timeout_ms, 10000);
    DEF(keepalive_timeout_ms, 5000);
    DEF(max_connections, 10000);
    DEF(shutdown_timeout_ms, 10000);
    DEF(backlog, 511);
    DEF(stack_size, 256 * 1024);
    DEF(pool_threads, 40);
    DEF(pool_nice, 10);
    DEF(slow_callback_ms, 100);
    DEF(lag_interval_ms, 100);
    DEF(fetch_max_host_conns, 16);
    DEF(fetch_max_body_bytes, 10 * 1024 * 1024);
    DEF(fetch_timeout_ms, 30000);
#undef DEF
    if (c->pool_nice < 0)
        c->pool_nice = 0;
}

static void on_stop_async(uv_async_t *a);
static void on_conn_freed(cn__server *srv);

/*
 * Free what cn_app_new built (any part may be NULL): workers first (a job
 * still running finishes), then what they report to; the loop runs once
 * more to deliver the close callbacks.
 */
static void free_parts(cn_app *app)
{
    cn__pool_free(app->pool);
    cn__fetch_free(app->fetch);
    cn__metrics_free(app->metrics);
    uv_run(&app->loop, UV_RUN_DEFAULT);
    cn__dispatch_free(app->dispatch);
    cn__fdwait_free(app->fdwait);
    free(app->metrics_ext);
    cn__sched_free(app->sched);
    cn__router_free(app->router);
    free(app->srv.readbuf);
    uv_loop_close(&app->loop);
    free(app);
}

cn_app *cn_app_new(const cn_config *cfg)
{
    cn_app *app = calloc(1, sizeof(*app));

    if (app == NULL)
        return NULL;
    if (cfg)
        app->cfg = *cfg;
    fill_defaults(&app->cfg);
    if (uv_loop_init(&app->loop) < 0) {
        free(app);
        return NULL;
    }
    app->router = cn__router_new();
    app->metrics = cn__metrics_new(&app->loop, &app->cfg);
    app->sched = cn__sched_new(&app->loop, &app->cfg, app->metrics);
    app->pool = cn__pool_new(&app->loop, app->cfg.pool_threads, app->cfg.pool_nice);
    app->fetch = cn__fetch_new(&app->loop, &app->cfg);
    app->fdwait = cn__fdwait_new(&app->loop);
    app->dispatch = cn__dispatch_new(app, &app->cfg, app->router, app->sched, &app->stats);
    app->srv.readbuf = malloc(READBUF_SIZE);
    if (app->router == NULL || app->metrics == NULL || app->sched == NULL || app->pool == NULL ||
        app->fetch == NULL || app->fdwait == NULL || app->dispatch == NULL ||
        app->srv.readbuf == NULL) {
        free_parts(app);
        return NULL;
    }
    cn__sched_set_ext(app->sched, CN__EXT_POOL, app->pool);
    cn__sched_set_ext(app->sched, CN__EXT_FETCH, app->fetch);
    cn__sched_set_ext(app->sched, CN__EXT_FDWAIT, app->fdwait);
    app->srv.readbuf_size = READBUF_SIZE;
    app->srv.loop = &app->loop;
    app->srv.app = app;
    app->srv.cfg = &app->cfg;
    app->srv.dispatch = app->dispatch;
    app->srv.stats = &app->stats;
    app->srv.on_conn_freed = on_conn_freed;
    cn__list_init(&app->srv.conns);
    uv_async_init(&app->loop, &app->stop_async, on_stop_async);
    app->stop_async.data = app;
    app->loop.data = app;
    atomic_store(&app->state, APP_NEW);
    return app;
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

void cn_app_free(cn_app *app)
{
    if (app == NULL)
        return;
    /* close whatever is still open (an app that never ran, or a loop that
     * stopped with handles left) and let the close callbacks run */
    for (int i = 0; i < app->nlisteners; i++)
        if (!uv_is_closing((uv_handle_t *)app->listeners[i]))
            uv_close((uv_handle_t *)app->listeners[i], free_handle);
    if (!uv_is_closing((uv_handle_t *)&app->stop_async))
        uv_close((uv_handle_t *)&app->stop_async, NULL);
    cn__conn_abort_all(&app->srv);
    uv_run(&app->loop, UV_RUN_DEFAULT);
    free(app->listeners);
    free_parts(app);
}

const cn_config *cn_app_config(const cn_app *app)
{
    return &app->cfg;
}

int cn_app_route(cn_app *app, const char *spec, cn_handler fn, void *data)
{
    return cn_app_route_ex(app, spec, fn, data, NULL);
}

int cn_app_route_ex(cn_app *app, const char *spec, cn_handler fn, void *data,
                    const cn_route_opts *opts)
{
    cn_route_opts o = {0};

    if (app == NULL)
        return CN_EINVAL;
    if (atomic_load(&app->state) != APP_NEW)
        return CN_ESTATE;
    if (opts)
        o = *opts;
    if (o.mode != CN_ROUTE_ASYNC && o.mode != CN_ROUTE_SYNC)
        return CN_EINVAL;
    if (o.stack_size == 0)
        o.stack_size = app->cfg.stack_size;
    return cn__router_add(app->router, spec, fn, data, &o);
}

static void on_connection(uv_stream_t *listener, int status)
{
    cn_app *app = listener->data;
    int rc;

    if (status < 0) {
        cn__log(CN__LOG_ERROR, "accept: %s", uv_strerror(status));
        return;
    }
    rc = cn__conn_accept(&app->srv, listener);
    if (rc < 0 && rc != UV_EAGAIN)
        cn__log(CN__LOG_ERROR, "accept: %s", uv_strerror(rc));
}

int cn_app_listen(cn_app *app, const char *host, int port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    uv_getaddrinfo_t gai;
    char portstr[16];
    uv_tcp_t *tcp, **grown;
    struct sockaddr_storage ss;
    int namelen = sizeof ss, rc;

    if (app == NULL || port < 0 || port > 65535)
        return CN_EINVAL;
    if (atomic_load(&app->state) > APP_RUNNING)
        return CN_ESTATE;
    snprintf(portstr, sizeof portstr, "%d", port);
    /* resolved once, synchronously: this runs before the loop serves anyone */
    rc = uv_getaddrinfo(&app->loop, &gai, NULL, host ? host : "127.0.0.1", portstr, &hints);
    if (rc < 0)
        return rc == UV_EAI_NONAME ? CN_EINVAL : rc;
    tcp = malloc(sizeof(*tcp));
    grown = realloc(app->listeners, (size_t)(app->nlisteners + 1) * sizeof(*grown));
    if (tcp == NULL || grown == NULL) {
        free(tcp);
        if (grown)
            app->listeners = grown;
        uv_freeaddrinfo(gai.addrinfo);
        return CN_ENOMEM;
    }
    app->listeners = grown;
    uv_tcp_init(&app->loop, tcp);
    tcp->data = app;
    rc = uv_tcp_bind(tcp, gai.addrinfo->ai_addr,
                     gai.addrinfo->ai_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
    uv_freeaddrinfo(gai.addrinfo);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)tcp, app->cfg.backlog, on_connection);
    if (rc == 0)
        rc = uv_tcp_getsockname(tcp, (struct sockaddr *)&ss, &namelen);
    if (rc < 0) {
        uv_close((uv_handle_t *)tcp, free_handle);
        uv_run(&app->loop, UV_RUN_NOWAIT);
        return rc;
    }
    if (app->nlisteners == 0)
        app->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    app->listeners[app->nlisteners++] = tcp;
    return 0;
}

int cn_app_port(const cn_app *app)
{
    return app && app->nlisteners > 0 ? app->port : CN_ENOENT;
}

/* ---- shutdown ---- */

/* Everything is closed: let uv_run return. */
static void finish_shutdown(cn_app *app)
{
    if (atomic_load(&app->state) == APP_STOPPED)
        return;
    atomic_store(&app->state, APP_STOPPED);
    if (!uv_is_closing((uv_handle_t *)&app->stop_async))
        uv_close((uv_handle_t *)&app->stop_async, NULL);
    if (app->signals_on) {
        uv_close((uv_handle_t *)&app->sig_int, NULL);
        uv_close((uv_handle_t *)&app->sig_term, NULL);
        app->signals_on = false;
    }
    if (app->deadline_on) {
        uv_close((uv_handle_t *)&app->deadline, NULL);
        app->deadline_on = false;
    }
}

static void on_conn_freed(cn__server *srv)
{
    cn_app *app = srv->app;

    if (atomic_load(&app->state) == APP_STOPPING && cn__list_empty(&srv->conns))
        finish_shutdown(app);
}

static void on_deadline(uv_timer_t *t)
{
    cn_app *app = t->data;

    cn__log(CN__LOG_WARN, "shutdown deadline (%u ms) passed: cancelling %llu request(s)",
            app->cfg.shutdown_timeout_ms, (unsigned long long)app->stats.requests_active);
    cn__conn_abort_all(&app->srv);
}

static void begin_shutdown(cn_app *app)
{
    int expected = APP_RUNNING;

    if (!atomic_compare_exchange_strong(&app->state, &expected, APP_STOPPING)) {
        /* a second signal while draining: stop waiting */
        if (expected == APP_STOPPING)
            cn__conn_abort_all(&app->srv);
        return;
    }
    for (int i = 0; i < app->nlisteners; i++)
        uv_close((uv_handle_t *)app->listeners[i], free_handle);
    app->nlisteners = 0;
    cn__conn_drain_all(&app->srv);
    if (cn__list_empty(&app->srv.conns)) {
        finish_shutdown(app);
        return;
    }
    uv_timer_init(&app->loop, &app->deadline);
    app->deadline.data = app;
    app->deadline_on = true;
    uv_timer_start(&app->deadline, on_deadline, app->cfg.shutdown_timeout_ms, 0);
}

static void on_stop_async(uv_async_t *a)
{
    begin_shutdown(a->data);
}

static void on_signal(uv_signal_t *s, int signum)
{
    cn_app *app = s->data;

    cn__log(CN__LOG_INFO, "%s received: shutting down gracefully",
            signum == SIGINT ? "SIGINT" : "SIGTERM");
    begin_shutdown(app);
}

int cn_app_stop(cn_app *app)
{
    int st;

    if (app == NULL)
        return CN_EINVAL;
    st = atomic_load(&app->state);
    /* before cn_app_run: the wake-up waits in the loop and is handled on
     * its first turn, so a run started later returns promptly */
    if (st == APP_STOPPED)
        return CN_ESTATE;
    /* thread-safe wake-up; the loop thread does the work */
    return uv_async_send(&app->stop_async);
}

/*
 * A write to a connection the peer has reset raises SIGPIPE, whose default
 * action kills the process; libuv writes with write(2)/writev(2), so the
 * error must come back as EPIPE instead. Only the default disposition is
 * changed: an application's own handler (or SIG_IGN) is left alone.
 */
static void ignore_sigpipe(void)
{
    struct sigaction sa;

    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL &&
        !(sa.sa_flags & SA_SIGINFO)) {
        sa.sa_handler = SIG_IGN;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = 0;
        sigaction(SIGPIPE, &sa, NULL);
    }
}

int cn_app_run(cn_app *app, const char *host, int port)
{
    int rc, expected = APP_NEW;

    if (app == NULL)
        return CN_EINVAL;
    if (host != NULL || port >= 0) {
        rc = cn_app_listen(app, host, port < 0 ? 0 : port);
        if (rc < 0)
            return rc;
    }
    if (app->nlisteners == 0)
        return CN_EINVAL;
    if (!atomic_compare_exchange_strong(&app->state, &expected, APP_RUNNING))
        return CN_ESTATE;
    ignore_sigpipe();
    if (app->cfg.handle_signals) {
        uv_signal_init(&app->loop, &app->sig_int);
        uv_signal_init(&app->loop, &app->sig_term);
        app->sig_int.data = app->sig_term.data = app;
        uv_signal_start(&app->sig_int, on_signal, SIGINT);
        uv_signal_start(&app->sig_term, on_signal, SIGTERM);
        app->signals_on = true;
    }
    rc = uv_run(&app->loop, UV_RUN_DEFAULT);
    (void)rc;
    return 0;
}

uv_loop_t *cn_app_loop(cn_app *app)
{
    return app ? &app->loop : NULL;
}

int cn_app_pool_submit(cn_app *app, void (*work)(void *arg), void (*done)(void *arg, int status),
                       void *arg)
{
    if (app == NULL)
        return CN_EINVAL;
    return cn__pool_submit_fn(app->pool, work, done, arg);
}

void cn_app_pool_stats(const cn_app *app, cn_pool_stats *out)
{
    cn__pool_stats(app->pool, out);
}

void cn_app_loop_stats(const cn_app *app, cn_loop_stats *out)
{
    cn__metrics_loop_stats(app->metrics, out);
}

void cn_app_stats(const cn_app *app, cn_stats *out)
{
    *out = app->stats;
    out->coroutines_live = cn__sched_live(app->sched);
    cn__fetch_stats(app->fetch, out);
}

/* ---- Prometheus metrics ---- */

static void metrics_snapshot(const cn_app *app, cn__prom_figures *f)
{
    cn_app_stats(app, &f->app);
    cn_app_pool_stats(app, &f->pool);
    cn_app_loop_stats(app, &f->loop);
}

int cn_app_metrics_render(const cn_app *app, char *buf, size_t size)
{
    cn__prom_figures f;
    size_t n;

    if (app == NULL || (buf == NULL && size > 0))
        return CN_EINVAL;
    metrics_snapshot(app, &f);
    n = cn__prom_render(&f, app->metrics_ext, app->nmetrics_ext, buf, size);
    return n > INT_MAX ? CN_ERANGE : (int)n;
}

int cn_res_metrics(cn_req *req, cn_res *res)
{
    cn__prom_figures f;
    cn_app *app;
    size_t n;
    char *text;

    if (req == NULL || res == NULL)
        return CN_EINVAL;
    /* one snapshot of Canteen's own figures, measured then written; an
     * extension's text may grow between the two passes, so leave room and
     * measure again if it did (bounded) */
    app = cn_req_app(req);
    metrics_snapshot(app, &f);
    n = cn__prom_render(&f, app->metrics_ext, app->nmetrics_ext, NULL, 0);
    for (int tries = 0; tries < 4; tries++) {
        size_t room = n + 1 + (app->nmetrics_ext ? n / 8 + 256 : 0);
        text = cn_req_alloc(req, room);
        if (text == NULL)
            return CN_ENOMEM;
        n = cn__prom_render(&f, app->metrics_ext, app->nmetrics_ext, text, room);
        if (n < room)
            return cn_res_bytes(res, 200, text, n, CN_METRICS_CONTENT_TYPE);
    }
    return CN_ERANGE;
}

int cn_app_metrics_route(cn_app *app, const char *path)
{
    char *spec;
    int rc;

    if (app == NULL)
        return CN_EINVAL;
    if (path == NULL)
        path = "/metrics";
    spec = malloc(strlen(path) + sizeof "GET ");
    if (spec == NULL)
        return CN_ENOMEM;
    strcpy(spec, "GET ");
    strcat(spec, path);
    rc = cn_app_route(app, spec, cn_res_metrics, NULL);
    free(spec);
    return rc;
}

int cn_app_metrics_add(cn_app *app, cn_metrics_fn fn, void *data)
{
    cn__prom_ext *grown;

    if (app == NULL || fn == NULL)
        return CN_EINVAL;
    grown = realloc(app->metrics_ext, (app->nmetrics_ext + 1) * sizeof(*grown));
    if (grown == NULL)
        return CN_ENOMEM;
    grown[app->nmetrics_ext].fn = fn;
    grown[app->nmetrics_ext].data = data;
    app->metrics_ext = grown;
    app->nmetrics_ext++;
    return 0;
}

int cn_app_metrics_remove(cn_app *app, cn_metrics_fn fn, void *data)
{
    if (app == NULL)
        return CN_EINVAL;
    for (size_t i = 0; i < app->nmetrics_ext; i++) {
        if (app->metrics_ext[i].fn == fn && app->metrics_ext[i].data == data) {
            memmove(&app->metrics_ext[i], &app->metrics_ext[i + 1],
                    (app->nmetrics_ext - i - 1) * sizeof(*app->metrics_ext));
            app->nmetrics_ext--;
            return 0;
        }
    }
    return CN_ENOENT;
}
