/*
 * app.c -- configuration, listeners, the app's lifetime (startup hooks,
 * serving, the graceful drain, shutdown hooks), signals. One app is one
 * libuv loop run on the thread that calls cn_app_run.
 *
 * The lifetime, as states:
 *
 *   NEW       routes, middleware, listeners are set up (cn_app_listen binds
 *             and listens: connections wait in the backlog)
 *   STARTING  cn_app_run: the startup hooks run in a root task
 *   RUNNING   the listeners accept
 *   STOPPING  a stop: listeners closed, idle connections closed, busy ones
 *             and answered requests still running (cleanups, background
 *             tasks) are waited for until shutdown_timeout_ms, then
 *             cancelled
 *   CLOSING   the shutdown hooks of the startups that succeeded run, in
 *             reverse order, in a root task
 *   STOPPED   the last handles close and uv_run returns
 *
 * A failed startup goes from STARTING to CLOSING directly.
 */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "accept.h"
#include "accesslog.h"
#include "app.h"
#include "canteen/uv.h"
#include "conn.h"
#include "dispatch.h"
#include "fdwait.h"
#include "fetch.h"
#include "metrics.h"
#include "pool.h"
#include "prom.h"
#include "req.h"
#include "router.h"
#include "scheduler.h"
#include "workers.h"

enum { APP_NEW, APP_STARTING, APP_RUNNING, APP_STOPPING, APP_CLOSING, APP_STOPPED };

#define READBUF_SIZE (64 * 1024)

typedef struct lifespan {
    cn_lifespan_fn startup, shutdown;
    void *arg;
    bool started; /* its startup succeeded (or it has none): its shutdown runs */
} lifespan;

typedef struct adopted {
    void (*free_fn)(void *);
    void *p;
} adopted;

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
    cn__stats stats;
    uv_tcp_t **listeners;
    int nlisteners;
    int port; /* of the first listener */
    uv_async_t stop_async;
    uv_signal_t sig_int, sig_term;
    uv_timer_t deadline;
    bool signals_on, deadline_on;
    void *data;
    lifespan *hooks;
    unsigned nhooks;
    adopted *owned; /* freed with the app (included routers) */
    unsigned nowned;
    cn__task *hook_task; /* the lifespan task running, if any */
    bool stop_requested; /* a stop came while starting */
    int run_rc;          /* what cn_app_run returns */
    _Atomic int state;
    /* operating (workers.h) */
    char *access_log_format, *forwarded_allow_ips; /* the config's copies */
    cn__access *access;
    cn__trust *trust;
    int config_err;            /* a format or an address list that does not parse */
    cn__worker *worker;        /* the worker this app runs as, or NULL */
    _Atomic bool supervised;   /* cn_app_run is supervising workers */
    _Atomic bool stop_pending; /* cn_app_stop was called */
};

/* ---- configuration ---- */

/*
 * The effective config: the caller's fields, defaults for the rest. A
 * config from cn_config_init carries its size: fields past it are the
 * caller's older header's, and its zeros are values where 0 means one.
 */
static void config_from(cn_config *c, const cn_config *in)
{
    bool zero_is_value = in && in->size != 0;

    cn_config_init(c);
    if (in && zero_is_value)
        memcpy(c, in, in->size < sizeof(*c) ? in->size : sizeof(*c));
    else if (in)
        *c = *in;
    c->size = sizeof(*c);
#define DEF(field, value)                                                                          \
    if (c->field == 0)                                                                             \
    c->field = (value)
    DEF(max_header_bytes, CN_DEFAULT_MAX_HEADER_BYTES);
    DEF(max_headers, CN_DEFAULT_MAX_HEADERS);
    DEF(header_timeout_ms, CN_DEFAULT_HEADER_TIMEOUT_MS);
    DEF(max_connections, CN_DEFAULT_MAX_CONNECTIONS);
    DEF(backlog, CN_DEFAULT_BACKLOG);
    DEF(stack_size, CN_DEFAULT_STACK_SIZE);
    DEF(pool_threads, CN_DEFAULT_POOL_THREADS);
    DEF(slow_callback_ms, CN_DEFAULT_SLOW_CALLBACK_MS);
    DEF(lag_interval_ms, CN_DEFAULT_LAG_INTERVAL_MS);
    DEF(fetch_max_host_conns, CN_DEFAULT_FETCH_MAX_HOST_CONNS);
    DEF(fetch_max_body_bytes, CN_DEFAULT_FETCH_MAX_BODY_BYTES);
    DEF(fetch_timeout_ms, CN_DEFAULT_FETCH_TIMEOUT_MS);
    DEF(pool_queue_max, CN_DEFAULT_POOL_QUEUE_MAX);
    DEF(pool_queue_timeout_ms, CN_DEFAULT_POOL_QUEUE_TIMEOUT_MS);
    DEF(pool_route_share, CN_DEFAULT_POOL_ROUTE_SHARE);
    DEF(retry_after_s, CN_DEFAULT_RETRY_AFTER_S);
    if (!zero_is_value) {
        DEF(worker_timeout_ms, CN_DEFAULT_WORKER_TIMEOUT_MS);
        /* Canteen 0.1's rule: 0 is the default here too */
        DEF(max_body_bytes, CN_DEFAULT_MAX_BODY_BYTES);
        DEF(keepalive_timeout_ms, CN_DEFAULT_KEEPALIVE_TIMEOUT_MS);
        DEF(shutdown_timeout_ms, CN_DEFAULT_SHUTDOWN_TIMEOUT_MS);
        DEF(pool_nice, CN_DEFAULT_POOL_NICE);
    }
#undef DEF
    if (c->pool_nice < 0)
        c->pool_nice = 0;
    if (c->pool_route_share > 100)
        c->pool_route_share = 100;
}

/* A route's pool_limit when it leaves it 0: its share of the workers,
 * rounded up, at least one; 0 (no lane) when the share is the whole pool. */
static unsigned default_pool_limit(const cn_config *c)
{
    unsigned n;

    if (c->pool_route_share >= 100)
        return 0;
    n = (unsigned)(((uint64_t)c->pool_threads * c->pool_route_share + 99) / 100);
    return n > 0 ? n : 1;
}

unsigned cn_version(void)
{
    return CN_VERSION_HEX;
}

const char *cn_version_string(void)
{
    return CN_VERSION_STRING;
}

/* ---- creation and teardown ---- */

static void on_stop_async(uv_async_t *a);
static void on_conn_freed(cn__server *srv);
static void on_dispatch_idle(void *arg);

/* Log one handle still open on a loop that should have none. */
static void log_open_handle(uv_handle_t *h, void *arg)
{
    (void)arg;
    cn__log(CN__LOG_ERROR, "cn_app_free: a %s handle (%p) is still open%s%s",
            uv_handle_type_name(uv_handle_get_type(h)), (void *)h,
            uv_is_active(h) ? ", active" : "", uv_is_closing(h) ? ", closing" : "");
}

/*
 * Free what cn_app_new built (any part may be NULL): workers first (a job
 * still running finishes), then what they report to; the loop runs once
 * more to deliver the close callbacks. Returns uv_loop_close's result:
 * nonzero means a handle was left open. Each such handle is logged, and the
 * app's memory (which holds the loop) is then kept: the handle points into
 * it, and freeing it would turn the leak into a use after free.
 */
static int free_parts(cn_app *app)
{
    int rc;

    cn__pool_free(app->pool);
    cn__fetch_free(app->fetch);
    cn__metrics_free(app->metrics);
    uv_run(&app->loop, UV_RUN_DEFAULT);
    cn__dispatch_free(app->dispatch);
    cn__fdwait_free(app->fdwait);
    free(app->metrics_ext);
    cn__sched_free(app->sched);
    cn__router_free(app->router);
    for (unsigned i = app->nowned; i-- > 0;)
        app->owned[i].free_fn(app->owned[i].p);
    free(app->owned);
    free(app->hooks);
    free(app->srv.readbuf);
    cn__access_free(app->access);
    cn__trust_free(app->trust);
    free(app->access_log_format);
    free(app->forwarded_allow_ips);
    rc = uv_loop_close(&app->loop);
    if (rc < 0) {
        uv_walk(&app->loop, log_open_handle, NULL);
        return rc;
    }
    free(app);
    return 0;
}

/*
 * The config's strings are copied; the access log's format and the trusted
 * proxies are parsed now. A value that does not parse is reported (and
 * refused) by cn_app_run; only running out of memory fails here.
 */
static int operating_config(cn_app *app)
{
    cn_config *c = &app->cfg;
    const char *bad = NULL;
    int rc;

    if (c->workers > CN_WORKERS_MAX) {
        cn__log(CN__LOG_ERROR, "workers = %u: at most %d", c->workers, CN_WORKERS_MAX);
        app->config_err = CN_EINVAL;
    }
    if ((c->access_log_format && !(app->access_log_format = strdup(c->access_log_format))) ||
        (c->forwarded_allow_ips && !(app->forwarded_allow_ips = strdup(c->forwarded_allow_ips))))
        return CN_ENOMEM;
    c->access_log_format = app->access_log_format;
    c->forwarded_allow_ips = app->forwarded_allow_ips;
    rc = cn__access_compile(c->access_log_format, &app->access, &bad);
    if (rc == CN_EINVAL) {
        cn__log(CN__LOG_ERROR, "access_log_format: unknown variable at \"%.40s\"", bad);
        app->config_err = rc;
    } else if (rc < 0) {
        return rc;
    }
    rc = cn__trust_parse(c->forwarded_allow_ips, &app->trust, &bad);
    if (rc == CN_EINVAL) {
        cn__log(CN__LOG_ERROR, "forwarded_allow_ips: not an address or range: \"%.40s\"", bad);
        app->config_err = rc;
    } else if (rc < 0) {
        return rc;
    }
    return 0;
}

cn_app *cn_app_new(const cn_config *cfg)
{
    cn_app *app = calloc(1, sizeof(*app));

    if (app == NULL)
        return NULL;
    config_from(&app->cfg, cfg);
    if (uv_loop_init(&app->loop) < 0) {
        free(app);
        return NULL;
    }
    if (operating_config(app) == CN_ENOMEM) {
        free_parts(app);
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
    cn__pool_set_limits(app->pool, app->cfg.pool_queue_max, app->cfg.pool_queue_timeout_ms);
    cn__sched_set_ext(app->sched, CN__EXT_POOL, app->pool);
    cn__sched_set_ext(app->sched, CN__EXT_FETCH, app->fetch);
    cn__sched_set_ext(app->sched, CN__EXT_FDWAIT, app->fdwait);
    cn__dispatch_on_idle(app->dispatch, on_dispatch_idle, app);
    app->srv.readbuf_size = READBUF_SIZE;
    app->srv.loop = &app->loop;
    app->srv.app = app;
    app->srv.cfg = &app->cfg;
    app->srv.dispatch = app->dispatch;
    app->srv.stats = &app->stats;
    app->srv.on_conn_freed = on_conn_freed;
    app->srv.access = app->access;
    app->srv.worker_id = -1;
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

static void close_listener(uv_tcp_t *tcp);

int cn__app_free_checked(cn_app *app)
{
    if (app == NULL)
        return 0;
    /* close whatever is still open (an app that never ran, or a loop that
     * stopped with handles left) and let the close callbacks run */
    for (int i = 0; i < app->nlisteners; i++)
        if (!uv_is_closing((uv_handle_t *)app->listeners[i]))
            close_listener(app->listeners[i]);
    if (!uv_is_closing((uv_handle_t *)&app->stop_async))
        uv_close((uv_handle_t *)&app->stop_async, NULL);
    cn__conn_abort_all(&app->srv);
    uv_run(&app->loop, UV_RUN_DEFAULT);
    free(app->listeners);
    return free_parts(app);
}

void cn_app_free(cn_app *app)
{
    if (cn__app_free_checked(app) != 0) {
        cn__log(CN__LOG_ERROR, "cn_app_free: the event loop still had open handles (a leak)");
#ifndef NDEBUG
        /* a bug, in Canteen or in an extension (canteen/uv.h): loud in
         * Debug builds, as libuv's own tests are */
        abort();
#endif
    }
}

const cn_config *cn_app_config(const cn_app *app)
{
    return &app->cfg;
}

void cn_app_set_data(cn_app *app, void *data)
{
    if (app)
        app->data = data;
}

void *cn_app_data(const cn_app *app)
{
    return app ? app->data : NULL;
}

bool cn__app_is_new(const cn_app *app)
{
    return atomic_load(&app->state) == APP_NEW;
}

int cn__app_adopt(cn_app *app, void (*free_fn)(void *), void *p)
{
    adopted *o = realloc(app->owned, (app->nowned + 1) * sizeof(*o));

    if (o == NULL)
        return CN_ENOMEM;
    app->owned = o;
    o[app->nowned++] = (adopted){free_fn, p};
    return 0;
}

/* ---- routes, middleware, dependencies, lifespan ---- */

int cn__app_add_route(cn_app *app, const char *spec, cn_handler fn, void *data,
                      const cn_route_opts *opts, const cn__chain *chain)
{
    cn_route_opts o = {0};

    if (app == NULL)
        return CN_EINVAL;
    if (!cn__app_is_new(app))
        return CN_ESTATE;
    if (opts)
        o = *opts;
    if (o.mode != CN_ROUTE_DEFAULT && o.mode != CN_ROUTE_ASYNC && o.mode != CN_ROUTE_SYNC)
        return CN_EINVAL;
    if (o.mode == CN_ROUTE_DEFAULT)
        o.mode = CN_ROUTE_ASYNC;
    if (o.stack_size == 0)
        o.stack_size = app->cfg.stack_size;
    if (o.pool_limit == 0)
        o.pool_limit = default_pool_limit(&app->cfg);
    return cn__router_add(app->router, spec, fn, data, &o, chain);
}

int cn_app_route(cn_app *app, const char *spec, cn_handler fn, void *data)
{
    return cn__app_add_route(app, spec, fn, data, NULL, NULL);
}

int cn_app_route_ex(cn_app *app, const char *spec, cn_handler fn, void *data,
                    const cn_route_opts *opts)
{
    return cn__app_add_route(app, spec, fn, data, opts, NULL);
}

int cn_app_routes(cn_app *app, const cn_route *routes)
{
    if (routes == NULL)
        return CN_EINVAL;
    for (const cn_route *r = routes; r->spec; r++) {
        int rc = cn__app_add_route(app, r->spec, r->fn, r->data, &r->opts, NULL);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int cn_app_use(cn_app *app, const char *name, cn_middleware_fn fn, void *data)
{
    if (app == NULL || fn == NULL)
        return CN_EINVAL;
    if (!cn__app_is_new(app))
        return CN_ESTATE;
    return cn__dispatch_use(app->dispatch, name, fn, data);
}

int cn_app_depends(cn_app *app, const cn_dep *dep)
{
    if (app == NULL || dep == NULL || dep->resolve == NULL)
        return CN_EINVAL;
    if (!cn__app_is_new(app))
        return CN_ESTATE;
    return cn__dispatch_depends(app->dispatch, dep);
}

int cn_app_lifespan(cn_app *app, cn_lifespan_fn startup, cn_lifespan_fn shutdown, void *arg)
{
    lifespan *h;

    if (app == NULL || (startup == NULL && shutdown == NULL))
        return CN_EINVAL;
    if (!cn__app_is_new(app))
        return CN_ESTATE;
    h = realloc(app->hooks, (app->nhooks + 1) * sizeof(*h));
    if (h == NULL)
        return CN_ENOMEM;
    app->hooks = h;
    h[app->nhooks++] = (lifespan){startup, shutdown, arg, false};
    return 0;
}

int cn_app_on_startup(cn_app *app, cn_lifespan_fn fn, void *arg)
{
    return fn ? cn_app_lifespan(app, fn, NULL, arg) : CN_EINVAL;
}

int cn_app_on_shutdown(cn_app *app, cn_lifespan_fn fn, void *arg)
{
    return fn ? cn_app_lifespan(app, NULL, fn, arg) : CN_EINVAL;
}

/* ---- listeners ---- */

/* The worker's accept balance, after each connection. */
static void on_accepted(cn__acceptor *a, void *arg)
{
    cn_app *app = arg;

    if (app->worker)
        cn__acceptor_single(a, !cn__worker_accepted(app->worker, app->stats.connections_active));
}

/*
 * Accept on a listening socket: our own accept path (accept.c), not
 * uv_listen's, so that running out of descriptors is answered and counted.
 * The acceptor hangs on tcp->data until close_listener.
 */
static int start_accepting(cn_app *app, uv_tcp_t *tcp)
{
    uv_os_fd_t fd;
    int rc = uv_fileno((uv_handle_t *)tcp, &fd);

    if (rc < 0 || tcp->data)
        return rc;
    tcp->data = cn__acceptor_start(&app->srv, fd, on_accepted, app);
    return tcp->data ? 0 : CN_ENOMEM;
}

/* Stop accepting on a listener and close it (freed by its close callback). */
static void close_listener(uv_tcp_t *tcp)
{
    cn__acceptor_close(tcp->data);
    tcp->data = NULL;
    uv_close((uv_handle_t *)tcp, free_handle);
}

/* Bind tcp to addr and listen at once on the socket (so that a taken port
 * fails now and clients queue); accept now, or when the app runs. */
static int bind_listen(cn_app *app, uv_tcp_t *tcp, const struct sockaddr *addr, bool accept_now)
{
    uv_os_fd_t fd;
    int rc = uv_tcp_bind(tcp, addr, addr->sa_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);

    if (rc < 0)
        return rc;
    rc = uv_fileno((uv_handle_t *)tcp, &fd);
    if (rc == 0 && listen(fd, app->cfg.backlog) < 0)
        rc = uv_translate_sys_error(errno);
    if (rc == 0 && accept_now)
        rc = start_accepting(app, tcp);
    return rc;
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
    int namelen = sizeof ss, rc, st;

    if (app == NULL || port < 0 || port > 65535)
        return CN_EINVAL;
    st = atomic_load(&app->state);
    if (st > APP_RUNNING)
        return CN_ESTATE;
    /* on the loop thread (a handler, a startup hook) a name would be
     * resolved synchronously and block everyone: numbers only there */
    if (st != APP_NEW)
        hints.ai_flags |= AI_NUMERICHOST;
    snprintf(portstr, sizeof portstr, "%d", port);
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
    tcp->data = NULL; /* the acceptor, once accepting */
    rc = bind_listen(app, tcp, gai.addrinfo->ai_addr, st == APP_RUNNING);
    uv_freeaddrinfo(gai.addrinfo);
    if (rc == 0)
        rc = uv_tcp_getsockname(tcp, (struct sockaddr *)&ss, &namelen);
    if (rc < 0) {
        /* freed by its close callback, on the loop's next turn (cn_app_run
         * or cn_app_free): never run the loop from here */
        close_listener(tcp);
        return rc;
    }
    if (app->nlisteners == 0)
        app->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    app->listeners[app->nlisteners++] = tcp;
    return 0;
}

/* The port of a bound socket, from its address. */
static int sockaddr_port(const struct sockaddr_storage *ss)
{
    return ntohs(ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
                                           : ((const struct sockaddr_in *)ss)->sin_port);
}

int cn_app_listen_fd(cn_app *app, int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(int);
    int type = 0, listening = 0, namelen = sizeof ss, rc, st;
    uv_tcp_t *tcp, **grown;

    if (app == NULL || fd < 0) {
        if (fd >= 0)
            close(fd);
        return CN_EINVAL;
    }
    st = atomic_load(&app->state);
    if (st > APP_RUNNING) {
        close(fd);
        return CN_ESTATE;
    }
    /* a listening TCP socket, or nothing */
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM ||
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 || !listening ||
        getsockname(fd, (struct sockaddr *)&ss, &(socklen_t){sizeof ss}) < 0 ||
        (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)) {
        close(fd);
        return CN_EINVAL;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    tcp = malloc(sizeof(*tcp));
    grown = realloc(app->listeners, (size_t)(app->nlisteners + 1) * sizeof(*grown));
    if (grown)
        app->listeners = grown;
    if (tcp == NULL || grown == NULL) {
        free(tcp);
        close(fd);
        return CN_ENOMEM;
    }
    uv_tcp_init(&app->loop, tcp);
    tcp->data = NULL; /* the acceptor, once accepting */
    rc = uv_tcp_open(tcp, fd);
    if (rc == 0 && listen(fd, app->cfg.backlog) < 0) /* our backlog */
        rc = uv_translate_sys_error(errno);
    if (rc == 0 && st == APP_RUNNING)
        rc = start_accepting(app, tcp);
    if (rc == 0)
        rc = uv_tcp_getsockname(tcp, (struct sockaddr *)&ss, &namelen);
    if (rc < 0) {
        /* uv_tcp_open took the descriptor only if it succeeded */
        if (uv_fileno((uv_handle_t *)tcp, &(uv_os_fd_t){0}) < 0)
            close(fd);
        close_listener(tcp);
        return rc;
    }
    if (app->nlisteners == 0)
        app->port = sockaddr_port(&ss);
    app->listeners[app->nlisteners++] = tcp;
    return 0;
}

int cn_app_port(const cn_app *app)
{
    return app && app->nlisteners > 0 ? app->port : CN_ENOENT;
}

static void close_listeners(cn_app *app)
{
    for (int i = 0; i < app->nlisteners; i++)
        close_listener(app->listeners[i]);
    app->nlisteners = 0;
}

/* ---- lifespan tasks ---- */

/* A lifespan phase: the hooks, and what follows when they are done. */
typedef struct phase {
    cn_app *app;
    cn_req *req; /* no HTTP message: an arena for what the hooks await */
    bool startup;
} phase;

static int run_startup(void *arg)
{
    phase *ph = arg;
    cn_app *app = ph->app;

    for (unsigned i = 0; i < app->nhooks; i++) {
        lifespan *h = &app->hooks[i];
        if (h->startup) {
            int rc = h->startup(app, h->arg);
            if (rc < 0) {
                if (!(rc == CN_ECANCELED && app->stop_requested))
                    cn__log(CN__LOG_ERROR, "startup hook %u of %u failed: %s (%s)", i + 1,
                            app->nhooks, cn_err_name(rc), cn_strerror(rc));
                return rc;
            }
        }
        h->started = true;
    }
    return 0;
}

static int run_shutdown(void *arg)
{
    phase *ph = arg;
    cn_app *app = ph->app;

    for (unsigned i = app->nhooks; i-- > 0;) {
        lifespan *h = &app->hooks[i];
        if (h->started && h->shutdown) {
            int rc = h->shutdown(app, h->arg);
            if (rc < 0)
                cn__log(CN__LOG_ERROR, "shutdown hook %u of %u failed: %s (%s)", i + 1, app->nhooks,
                        cn_err_name(rc), cn_strerror(rc));
        }
    }
    return 0;
}

static void finish_shutdown(cn_app *app);
static void startup_done(cn_app *app, int rc);
static void begin_shutdown(cn_app *app);

static void phase_done(cn__task *t, int rc, void *arg)
{
    phase *ph = arg;
    cn_app *app = ph->app;
    bool startup = ph->startup;

    (void)t;
    app->hook_task = NULL;
    cn__req_free(ph->req);
    free(ph);
    if (startup)
        startup_done(app, rc);
    else
        finish_shutdown(app);
}

/* Run a phase's hooks in a root task; its end continues the lifetime. */
static void start_phase(cn_app *app, bool startup)
{
    phase *ph = calloc(1, sizeof(*ph));
    int rc = CN_ENOMEM;

    if (ph) {
        ph->app = app;
        ph->startup = startup;
        ph->req = cn__req_new(app, NULL);
    }
    if (ph && ph->req)
        rc = cn__sched_start(app->sched,
                             &(cn__root){.fn = startup ? run_startup : run_shutdown,
                                         .arg = ph,
                                         .label = startup ? "startup" : "shutdown",
                                         .req = ph->req,
                                         .done = phase_done,
                                         .done_arg = ph},
                             &app->hook_task);
    if (rc < 0) {
        app->hook_task = NULL;
        cn__log(CN__LOG_ERROR, "cannot run the %s hooks: %s", startup ? "startup" : "shutdown",
                cn_strerror(rc));
        if (ph)
            cn__req_free(ph->req);
        free(ph);
        if (startup)
            startup_done(app, rc);
        else
            finish_shutdown(app);
    }
}

/* Go to CLOSING: the shutdown hooks, then STOPPED. */
static void begin_closing(cn_app *app)
{
    atomic_store(&app->state, APP_CLOSING);
    if (app->deadline_on) {
        uv_timer_stop(&app->deadline);
    }
    start_phase(app, false);
}

static void startup_done(cn_app *app, int rc)
{
    if (rc < 0) {
        /* a stop during startup is a stop, not a failure */
        if (!(rc == CN_ECANCELED && app->stop_requested))
            app->run_rc = rc;
        close_listeners(app);
        begin_closing(app);
        return;
    }
    for (int i = 0; i < app->nlisteners; i++) {
        int lr = start_accepting(app, app->listeners[i]);
        if (lr < 0)
            cn__log(CN__LOG_ERROR, "listen: %s", cn_strerror(lr));
    }
    atomic_store(&app->state, APP_RUNNING);
    if (app->worker)
        cn__worker_running(app->worker);
    if (app->stop_requested)
        begin_shutdown(app);
}

/* ---- shutdown ---- */

/* The shutdown hooks are done: close the last handles; uv_run returns. */
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

/* Stopping: once no connection and no answered request is left, close. */
static void check_drained(cn_app *app)
{
    if (atomic_load(&app->state) == APP_STOPPING && cn__list_empty(&app->srv.conns) &&
        cn__dispatch_idle(app->dispatch))
        begin_closing(app);
}

static void on_conn_freed(cn__server *srv)
{
    if (srv->app->worker)
        cn__worker_conns(srv->app->worker, srv->stats->connections_active);
    check_drained(srv->app);
}

static void on_dispatch_idle(void *arg)
{
    check_drained(arg);
}

static void on_deadline(uv_timer_t *t)
{
    cn_app *app = t->data;

    cn__log(CN__LOG_WARN,
            "shutdown deadline (%u ms) passed: cancelling %llu request(s) and %llu "
            "background task(s)",
            app->cfg.shutdown_timeout_ms, (unsigned long long)app->stats.requests_active,
            (unsigned long long)app->stats.background_running);
    cn__conn_abort_all(&app->srv);
    cn__dispatch_cancel_detached(app->dispatch);
}

static void begin_shutdown(cn_app *app)
{
    switch (atomic_load(&app->state)) {
    case APP_STARTING:
        /* stop the startup; its end goes on to the shutdown hooks */
        app->stop_requested = true;
        if (app->hook_task)
            cn__task_cancel(app->hook_task);
        return;
    case APP_RUNNING:
        break;
    case APP_STOPPING:
        /* a second stop while draining: stop waiting */
        cn__conn_abort_all(&app->srv);
        cn__dispatch_cancel_detached(app->dispatch);
        return;
    case APP_CLOSING:
        if (app->hook_task)
            cn__task_cancel(app->hook_task);
        return;
    default:
        return;
    }
    atomic_store(&app->state, APP_STOPPING);
    close_listeners(app);
    cn__conn_drain_all(&app->srv);
    uv_timer_init(&app->loop, &app->deadline);
    app->deadline.data = app;
    app->deadline_on = true;
    uv_timer_start(&app->deadline, on_deadline, app->cfg.shutdown_timeout_ms, 0);
    check_drained(app);
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
    if (app == NULL)
        return CN_EINVAL;
    /* before cn_app_run: the wake-up waits in the loop and is handled on
     * its first turn, so a run started later returns promptly */
    if (atomic_load(&app->state) == APP_STOPPED)
        return CN_ESTATE;
    /* the supervisor looks at this flag once it has begun, or is woken */
    atomic_store(&app->stop_pending, true);
    if (atomic_load(&app->supervised)) {
        cn__supervisor_stop();
        return 0;
    }
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

int cn_app_run(cn_app *app)
{
    int expected = APP_NEW;

    if (app == NULL)
        return CN_EINVAL;
    if (atomic_load(&app->state) != APP_NEW)
        return CN_ESTATE;
    if (app->nlisteners == 0)
        return CN_EINVAL;
    if (!atomic_compare_exchange_strong(&app->state, &expected, APP_STARTING))
        return CN_ESTATE;
    if (app->config_err) {
        atomic_store(&app->state, APP_NEW);
        return app->config_err;
    }
    ignore_sigpipe();
    if (app->cfg.workers > 0 && app->worker == NULL) {
        /* the supervisor: the workers serve, this process watches them */
        int rc = cn__supervise(app);
        atomic_store(&app->state, APP_STOPPED);
        return rc;
    }
    if (cn__pool_start(app->pool) < 0)
        cn__log(CN__LOG_ERROR, "the thread pool could not start a single thread");
    if (app->cfg.handle_signals) {
        uv_signal_init(&app->loop, &app->sig_int);
        uv_signal_init(&app->loop, &app->sig_term);
        app->sig_int.data = app->sig_term.data = app;
        uv_signal_start(&app->sig_int, on_signal, SIGINT);
        uv_signal_start(&app->sig_term, on_signal, SIGTERM);
        app->signals_on = true;
    }
    start_phase(app, true);
    uv_run(&app->loop, UV_RUN_DEFAULT);
    return app->run_rc;
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
    return cn__pool_submit_fn(app->pool, work, done, arg, false);
}

int cn__app_pool_submit_cpu(cn_app *app, void (*work)(void *arg),
                            void (*done)(void *arg, int status), void *arg)
{
    return cn__pool_submit_fn(app->pool, work, done, arg, true);
}

/* ---- run by the caller, a turn at a time (the test client) ---- */

int cn__app_start_inline(cn_app *app)
{
    int expected = APP_NEW;

    if (!atomic_compare_exchange_strong(&app->state, &expected, APP_STARTING))
        return CN_ESTATE;
    ignore_sigpipe();
    start_phase(app, true);
    while (atomic_load(&app->state) == APP_STARTING)
        uv_run(&app->loop, UV_RUN_ONCE);
    if (atomic_load(&app->state) == APP_RUNNING)
        return 0;
    /* a failed startup: let its shutdown hooks finish */
    while (atomic_load(&app->state) != APP_STOPPED)
        uv_run(&app->loop, UV_RUN_ONCE);
    return app->run_rc ? app->run_rc : CN_ECANCELED;
}

void cn__app_run_once(cn_app *app)
{
    uv_run(&app->loop, UV_RUN_ONCE);
}

int cn__app_stop_inline(cn_app *app)
{
    if (atomic_load(&app->state) == APP_STOPPED)
        return app->run_rc;
    begin_shutdown(app);
    while (atomic_load(&app->state) != APP_STOPPED)
        uv_run(&app->loop, UV_RUN_ONCE);
    return app->run_rc;
}

int cn__app_adopt_fd(cn_app *app, int fd)
{
    if (atomic_load(&app->state) != APP_RUNNING)
        return CN_ESTATE;
    return cn__conn_adopt(&app->srv, fd);
}

int cn__app_mem_open(cn_app *app, int (*sink)(void *arg, const char *data, size_t len), void *arg,
                     struct cn__conn **out)
{
    if (atomic_load(&app->state) != APP_RUNNING)
        return CN_ESTATE;
    return cn__conn_mem_open(&app->srv, sink, arg, out);
}

const cn__router *cn__app_router(const cn_app *app)
{
    return app->router;
}

void cn__app_drop_idle_stacks(cn_app *app)
{
    cn__sched_drop_idle_stacks(app->sched);
}

/* ---- figures ---- */

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
    memset(out, 0, sizeof *out);
    cn__stats_copy(&app->stats, out);
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

/* One worker's figures alone would mislead: a worker shows the server's. */
static size_t render(const cn_app *app, const cn__prom_figures *f, char *buf, size_t size)
{
    if (app->worker)
        return cn__worker_render(app->worker, f, app->metrics_ext, app->nmetrics_ext, buf, size);
    return cn__prom_render(f, app->metrics_ext, app->nmetrics_ext, buf, size);
}

int cn_app_metrics_render(const cn_app *app, char *buf, size_t size)
{
    cn__prom_figures f;
    size_t n;

    if (app == NULL || (buf == NULL && size > 0))
        return CN_EINVAL;
    metrics_snapshot(app, &f);
    n = render(app, &f, buf, size);
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
     * extension's text, or the other workers' figures, may grow between the
     * two passes, so leave room and measure again if it did (bounded) */
    app = cn_req_app(req);
    metrics_snapshot(app, &f);
    n = render(app, &f, NULL, 0);
    for (int tries = 0; tries < 4; tries++) {
        size_t room = n + 1 + (app->nmetrics_ext || app->worker ? n / 8 + 256 : 0);
        text = cn_req_alloc(req, room);
        if (text == NULL)
            return CN_ENOMEM;
        n = render(app, &f, text, room);
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

/* ---- workers (workers.h) ---- */

const cn__trust *cn__app_trust(const cn_app *app)
{
    return app->trust;
}

void cn__app_snapshot(const cn_app *app, cn__prom_figures *f)
{
    metrics_snapshot(app, f);
}

bool cn__app_stop_pending(const cn_app *app)
{
    return atomic_load(&app->stop_pending);
}

void cn__app_set_supervised(cn_app *app, bool on)
{
    atomic_store(&app->supervised, on);
}

int cn__app_fork_child(cn_app *app, cn__worker *w)
{
    cn__fetch *f;
    int rc = uv_loop_fork(&app->loop);

    if (rc < 0)
        return rc;
    /* the pool's wake descriptor: one per process, like the loop's own */
    rc = cn__pool_fork_child(app->pool);
    if (rc < 0)
        return rc;
    /* curl's multi handle keeps descriptors of its own: one per process */
    f = cn__fetch_new(&app->loop, &app->cfg);
    if (f == NULL)
        return CN_ENOMEM;
    cn__fetch_free(app->fetch);
    app->fetch = f;
    cn__sched_set_ext(app->sched, CN__EXT_FETCH, f);
    app->worker = w;
    app->srv.worker_id = cn__worker_id(w);
    app->srv.drain_grace_ms =
        app->cfg.keepalive_timeout_ms < 1000 ? app->cfg.keepalive_timeout_ms : 1000;
    /* the worker takes its signals itself (workers.c) */
    app->cfg.handle_signals = 0;
    atomic_store(&app->stop_pending, false);
    atomic_store(&app->supervised, false);
    atomic_store(&app->state, APP_NEW);
    return 0;
}

void cn__app_set_shed(cn_app *app, unsigned n)
{
    app->srv.shed = n;
}

int cn_app_worker_id(const cn_app *app)
{
    return app && app->worker ? cn__worker_id(app->worker) : -1;
}
