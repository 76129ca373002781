/*
 * canteen.h -- the public face of Canteen, a FastAPI-style asynchronous HTTP
 * server library for C.
 *
 * A service creates an app, registers routes and runs it:
 *
 *     static int hello(cn_req *req, cn_res *res) {
 *         (void)req;
 *         return cn_res_text(res, 200, "Hello, World!");
 *     }
 *     int main(void) {
 *         cn_app *app = cn_app_new(NULL);
 *         cn_app_route(app, "GET /", hello, NULL);
 *         int rc = cn_app_listen(app, "127.0.0.1", 8000);
 *         if (rc == 0)
 *             rc = cn_app_run(app);
 *         cn_app_free(app);
 *         return rc < 0;
 *     }
 *
 * Conventions, written once:
 * - Functions that can fail return 0 (or a non-negative value) on success and
 *   a negative CN_E* code on failure; cn_strerror() names it. There is no
 *   errno of our own. Codes from libuv pass through unchanged.
 * - Opaque objects (cn_app, cn_req, cn_res) are only touched through these
 *   functions. A cn_req and its cn_res belong to one handler call: they are
 *   valid from the moment the handler is entered until the response is sent,
 *   and must not be used after the handler returns.
 * - Every pointer a cn_req_* function returns points into the request's
 *   arena: it stays valid until the response is done, and is never freed by
 *   the caller.
 * - cJSON is part of the public face: it is how handlers build and read JSON.
 */
#ifndef CANTEEN_H
#define CANTEEN_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define CN_EXTERN __attribute__((visibility("default")))
#else
#define CN_EXTERN
#endif

#define CN_VERSION_MAJOR 0
#define CN_VERSION_MINOR 2
#define CN_VERSION_PATCH 0
#define CN_VERSION_STRING "0.2.0"
#define CN_VERSION_HEX ((CN_VERSION_MAJOR << 16) | (CN_VERSION_MINOR << 8) | CN_VERSION_PATCH)

/* Marks the names that stay one release for old code and then go. */
#if defined(__GNUC__)
#define CN_DEPRECATED(msg) __attribute__((deprecated(msg)))
#else
#define CN_DEPRECATED(msg)
#endif

/*
 * The library's version at run time, as CN_VERSION_HEX and as a static
 * string ("0.2.0"): compare them with the header's CN_VERSION_* to catch a
 * program running against another shared library than it was built with.
 */
CN_EXTERN unsigned cn_version(void);
CN_EXTERN const char *cn_version_string(void);

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * Error codes. Where a POSIX errno exists the code is its negation (as in
 * libuv, so uv and cn codes compare equal); Canteen's own codes live at
 * -5000 and below. XX(name, value, message).
 */
#define CN_ERRNO_MAP(XX)                                                                           \
    XX(NOMEM, -ENOMEM, "out of memory")                                                            \
    XX(INVAL, -EINVAL, "invalid argument")                                                         \
    XX(EXIST, -EEXIST, "already exists")                                                           \
    XX(NOENT, -ENOENT, "no such entry")                                                            \
    XX(RANGE, -ERANGE, "value out of range")                                                       \
    XX(CANCELED, -ECANCELED, "operation canceled")                                                 \
    XX(TIMEDOUT, -ETIMEDOUT, "operation timed out")                                                \
    XX(ADDRINUSE, -EADDRINUSE, "address already in use")                                           \
    XX(CONNREFUSED, -ECONNREFUSED, "connection refused")                                           \
    XX(PERM, -EPERM, "operation not permitted")                                                    \
    XX(AGAIN, -EAGAIN, "resource temporarily unavailable")                                         \
    XX(BUSY, -EBUSY, "resource busy or locked")                                                    \
    XX(PIPE, -EPIPE, "broken pipe")                                                                \
    XX(BADJSON, -5001, "request body is not valid JSON")                                           \
    XX(JSONDEPTH, -5002, "JSON nesting too deep")                                                  \
    XX(NOTCORO, -5003, "awaitable called outside a coroutine (golden rule)")                       \
    XX(STATE, -5004, "call not valid in the object's current state")                               \
    XX(RESPONDED, -5005, "a response was already set for this request")                            \
    XX(BADPATTERN, -5006, "malformed route pattern")                                               \
    XX(BADHEADER, -5007, "invalid header name or value")                                           \
    XX(DNS, -5008, "could not resolve host")                                                       \
    XX(TOOBIG, -5009, "response body over the size limit")                                         \
    XX(UPSTREAM, -5010, "upstream transfer failed")                                                \
    XX(HTTP, -5011, "an HTTP error response was set")                                              \
    XX(DB, -5012, "the database reported an error")                                                \
    XX(UNAVAILABLE, -5013, "service unavailable")                                                  \
    XX(WORKERS, -5014, "workers keep failing at startup")                                          \
    XX(EXPIRED, -5015, "waited too long in the thread pool's queue")

enum {
#define CN__ERR_ENUM(name, value, msg) CN_E##name = (value),
    CN_ERRNO_MAP(CN__ERR_ENUM)
#undef CN__ERR_ENUM
};

/*
 * A static, human-readable message for any code returned by Canteen
 * (including libuv codes). Never NULL; the caller must not free it.
 */
CN_EXTERN const char *cn_strerror(int err);

/* The symbolic name ("CN_ECANCELED", ...) of a code. Static; never NULL. */
CN_EXTERN const char *cn_err_name(int err);

/* The reason phrase of an HTTP status ("Not Found"); "Unknown" if unknown. */
CN_EXTERN const char *cn_status_reason(int status);

/* Log levels of Canteen's own messages. */
enum { CN_LOG_ERROR = 0, CN_LOG_WARN = 1, CN_LOG_INFO = 2 };

/*
 * Where Canteen's log lines go (process-wide). By default each goes to
 * stderr with a timestamp. `fn` gets the level and the message (no
 * timestamp, no newline; valid during the call only) and may be called from
 * any thread that logs, so it must be thread-safe. NULL restores stderr.
 * Set it before starting apps: changing it while they log is a data race.
 */
typedef void (*cn_log_fn)(int level, const char *msg, void *data);
CN_EXTERN void cn_log_set_handler(cn_log_fn fn, void *data);

/*
 * Log one line through Canteen's log (the handler above, or stderr with a
 * timestamp and the level's word), as Canteen's own messages are: for
 * extensions and services that want their lines beside Canteen's. Lines
 * are cut at about 1000 bytes. Any thread.
 */
CN_EXTERN void cn_log(int level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ------------------------------------------------------------------------ */
/* Small value types                                                         */
/* ------------------------------------------------------------------------ */

/* A byte string view. Not NUL-terminated unless a function says so. */
typedef struct cn_str {
    const char *ptr;
    size_t len;
} cn_str;

/* A task's body: runs in its own coroutine; its return value (0 or a
 * negative CN_E*) is what awaiting it returns. Results go through `arg`. */
typedef int (*cn_task_fn)(void *arg);

/* ------------------------------------------------------------------------ */
/* The app                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct cn_app cn_app;
typedef struct cn_req cn_req;
typedef struct cn_res cn_res;

/*
 * Configuration. Start from cn_config_init(), which fills in every default,
 * then change what you need:
 *
 *     cn_config cfg;
 *     cn_config_init(&cfg);
 *     cfg.max_body_bytes = 64 * 1024;
 *     cfg.keepalive_timeout_ms = 0;     // 0 is a value here: no keep-alive
 *
 * A config made without it (`cn_config c = {.max_body_bytes = 1 << 20};`,
 * size 0) still works as in Canteen 0.1: every field left at 0 takes its
 * default, and 0 cannot be asked for. The defaults and the answer each
 * limit gives:
 *
 *   size                  0       set by cn_config_init: the struct's size
 *                                 as the caller was built with it, so the
 *                                 library reads only what the caller has
 *   max_header_bytes      8192    request line + headers; beyond it 431
 *   max_headers           100     header count; beyond it 431
 *   max_body_bytes        1 MiB   body (declared or chunked); beyond it 413,
 *                                 sent before the body is read, then close;
 *                                 0 (after cn_config_init): no request body
 *   header_timeout_ms     10000   time from a request's first byte to the
 *                                 end of its head and body; beyond it 408
 *                                 and close (slowloris)
 *   keepalive_timeout_ms  5000    idle time between requests, and the longest
 *                                 a response may go without the client
 *                                 reading any of it; then close; 0 (after
 *                                 cn_config_init): every response closes its
 *                                 connection (and header_timeout_ms bounds
 *                                 a client that does not read)
 *   max_connections       10000   further connections get 503 and close
 *   shutdown_timeout_ms   10000   graceful shutdown deadline for in-flight
 *                                 requests and background tasks; after it
 *                                 they are cancelled; 0 (after
 *                                 cn_config_init): cancel them at once
 *   backlog               511     listen(2) backlog
 *   stack_size            256 KiB coroutine stack of an async handler
 *   handle_signals        0       if 1, cn_app_run stops gracefully on SIGINT
 *                                 and SIGTERM
 *   access_log            0       if 1, one line per request on stderr
 *                                 (access_log_format; at CN_LOG_INFO)
 *   pool_threads          40      worker threads for sync routes and
 *                                 cn_to_thread (FastAPI's default): blocking
 *                                 calls mostly wait, so threads are cheap;
 *                                 the 41st concurrent blocking call queues
 *                                 (and one route's 21st: pool_route_share)
 *   pool_nice             10      workers run this much nicer than the loop
 *                                 thread, so CPU-bound jobs on a shared core
 *                                 cannot starve the loop; negative, or 0
 *                                 after cn_config_init: the loop's priority
 *   slow_callback_ms      100     a coroutine step (handler code between two
 *                                 awaits) longer than this logs one warning
 *                                 naming the route (asyncio's debug
 *                                 threshold); negative: off
 *   lag_interval_ms       100     period of the loop-lag probe timer
 *   fetch_max_host_conns  16      outbound connections per upstream host;
 *                                 more concurrent fetches queue for one
 *   fetch_max_body_bytes  10 MiB  outbound response body limit (CN_ETOOBIG)
 *   fetch_timeout_ms      30000   default outbound timeout (CN_ETIMEDOUT),
 *                                 waiting for a connection included
 *   workers               0       worker processes: 0, one process (the
 *                                 app runs on the calling thread); N,
 *                                 cn_app_run supervises N forked workers
 *                                 (<canteen/workers.h>)
 *   worker_timeout_ms     30000   a worker whose loop sends no heartbeat
 *                                 for this long, or that is not ready this
 *                                 long after it started, is killed and
 *                                 replaced; 0 (after cn_config_init): never
 *   access_log_format     NULL    the access log's line: NULL or "uvicorn"
 *                                 (uvicorn's), "combined" (NCSA combined),
 *                                 or a template of $variables; copied
 *   forwarded_allow_ips   NULL    peers trusted to name the client in
 *                                 Forwarded / X-Forwarded-For: addresses
 *                                 and CIDR ranges, comma-separated, or "*";
 *                                 NULL: nobody; copied
 *   pool_queue_max        1024    pool jobs that may wait at once (for a
 *                                 worker, or for their route's pool_limit);
 *                                 past it a sync route answers 503 with
 *                                 Retry-After, cn_to_thread and
 *                                 cn_app_pool_submit return CN_EAGAIN
 *   pool_queue_timeout_ms 10000   the longest a pool job may wait to start;
 *                                 past it the job is dropped unrun: a sync
 *                                 route answers 503 with Retry-After,
 *                                 cn_to_thread returns CN_EEXPIRED
 *   pool_route_share      50      percent of pool_threads that one route's
 *                                 jobs may hold at once (rounded up, at
 *                                 least 1): the default of cn_route_opts
 *                                 .pool_limit, so that one busy route cannot
 *                                 take every worker; 100: no such limit
 *   retry_after_s         1       the Retry-After (seconds) of Canteen's
 *                                 own 503s: pool queue full or timed out,
 *                                 max_connections, out of descriptors, no
 *                                 coroutine stack; a hint, not a promise
 *
 * Fields not listed as taking 0 treat 0 as "the default" in both kinds of
 * config: none of them has a useful 0. New fields are added at the end.
 */
typedef struct cn_config {
    size_t size;
    size_t max_header_bytes;
    unsigned max_headers;
    size_t max_body_bytes;
    unsigned header_timeout_ms;
    unsigned keepalive_timeout_ms;
    unsigned max_connections;
    unsigned shutdown_timeout_ms;
    int backlog;
    size_t stack_size;
    int handle_signals;
    int access_log;
    unsigned pool_threads;
    int pool_nice;
    int slow_callback_ms;
    unsigned lag_interval_ms;
    unsigned fetch_max_host_conns;
    size_t fetch_max_body_bytes;
    unsigned fetch_timeout_ms;
    unsigned workers;
    unsigned worker_timeout_ms;
    const char *access_log_format;
    const char *forwarded_allow_ips;
    unsigned pool_queue_max;
    unsigned pool_queue_timeout_ms;
    unsigned pool_route_share;
    unsigned retry_after_s;
} cn_config;

/* The defaults cn_config_init writes (and 0.1-style configs get for 0). */
#define CN_DEFAULT_MAX_HEADER_BYTES 8192
#define CN_DEFAULT_MAX_HEADERS 100
#define CN_DEFAULT_MAX_BODY_BYTES (1024 * 1024)
#define CN_DEFAULT_HEADER_TIMEOUT_MS 10000
#define CN_DEFAULT_KEEPALIVE_TIMEOUT_MS 5000
#define CN_DEFAULT_MAX_CONNECTIONS 10000
#define CN_DEFAULT_SHUTDOWN_TIMEOUT_MS 10000
#define CN_DEFAULT_BACKLOG 511
#define CN_DEFAULT_STACK_SIZE (256 * 1024)
#define CN_DEFAULT_POOL_THREADS 40
#define CN_DEFAULT_POOL_NICE 10
#define CN_DEFAULT_SLOW_CALLBACK_MS 100
#define CN_DEFAULT_LAG_INTERVAL_MS 100
#define CN_DEFAULT_FETCH_MAX_HOST_CONNS 16
#define CN_DEFAULT_FETCH_MAX_BODY_BYTES (10 * 1024 * 1024)
#define CN_DEFAULT_FETCH_TIMEOUT_MS 30000
#define CN_DEFAULT_WORKER_TIMEOUT_MS 30000
#define CN_DEFAULT_POOL_QUEUE_MAX 1024
#define CN_DEFAULT_POOL_QUEUE_TIMEOUT_MS 10000
#define CN_DEFAULT_POOL_ROUTE_SHARE 50
#define CN_DEFAULT_RETRY_AFTER_S 1

/*
 * Fill *cfg with every default and record the struct's size, after which
 * each field is a value (0 included, where the table above gives 0 a
 * meaning). Inline, so that the size is the one this program was built with.
 */
static inline void cn_config_init(cn_config *cfg)
{
    *cfg = (cn_config){
        .size = sizeof(cn_config),
        .max_header_bytes = CN_DEFAULT_MAX_HEADER_BYTES,
        .max_headers = CN_DEFAULT_MAX_HEADERS,
        .max_body_bytes = CN_DEFAULT_MAX_BODY_BYTES,
        .header_timeout_ms = CN_DEFAULT_HEADER_TIMEOUT_MS,
        .keepalive_timeout_ms = CN_DEFAULT_KEEPALIVE_TIMEOUT_MS,
        .max_connections = CN_DEFAULT_MAX_CONNECTIONS,
        .shutdown_timeout_ms = CN_DEFAULT_SHUTDOWN_TIMEOUT_MS,
        .backlog = CN_DEFAULT_BACKLOG,
        .stack_size = CN_DEFAULT_STACK_SIZE,
        .pool_threads = CN_DEFAULT_POOL_THREADS,
        .pool_nice = CN_DEFAULT_POOL_NICE,
        .slow_callback_ms = CN_DEFAULT_SLOW_CALLBACK_MS,
        .lag_interval_ms = CN_DEFAULT_LAG_INTERVAL_MS,
        .fetch_max_host_conns = CN_DEFAULT_FETCH_MAX_HOST_CONNS,
        .fetch_max_body_bytes = CN_DEFAULT_FETCH_MAX_BODY_BYTES,
        .fetch_timeout_ms = CN_DEFAULT_FETCH_TIMEOUT_MS,
        .worker_timeout_ms = CN_DEFAULT_WORKER_TIMEOUT_MS,
        .pool_queue_max = CN_DEFAULT_POOL_QUEUE_MAX,
        .pool_queue_timeout_ms = CN_DEFAULT_POOL_QUEUE_TIMEOUT_MS,
        .pool_route_share = CN_DEFAULT_POOL_ROUTE_SHARE,
        .retry_after_s = CN_DEFAULT_RETRY_AFTER_S,
    };
}

/*
 * Create an app. `cfg` is copied (NULL means all defaults). Returns NULL
 * only when out of memory. The caller owns the app and frees it with
 * cn_app_free().
 */
CN_EXTERN cn_app *cn_app_new(const cn_config *cfg);

/*
 * Free the app and everything it owns (routes, connections, loop). Must not
 * be called while cn_app_run is running. NULL is allowed.
 *
 * The app's loop must close clean: a libuv handle still open on it then (a
 * bug, in Canteen or in an extension that did not close its handles, see
 * canteen/uv.h) is logged as an error, one line per handle with its type.
 * In a Debug build of Canteen (NDEBUG not defined) the process then aborts,
 * as a failed assert would; otherwise the app's memory, which holds the
 * loop, is left allocated so that the open handle never points into freed
 * memory.
 */
CN_EXTERN void cn_app_free(cn_app *app);

/* The effective configuration (defaults filled in). Owned by the app. */
CN_EXTERN const cn_config *cn_app_config(const cn_app *app);

/*
 * App-level user data (FastAPI's app.state): one pointer, reachable from
 * every handler through cn_app_data(cn_req_app(req)). The app never reads
 * or frees it. Set it before cn_app_run (or from a startup hook): handlers
 * on the pool read it from other threads.
 */
CN_EXTERN void cn_app_set_data(cn_app *app, void *data);
CN_EXTERN void *cn_app_data(const cn_app *app);

/*
 * Lifespan (FastAPI's lifespan, Starlette's on_startup/on_shutdown). A hook
 * runs as a coroutine on the loop, so it may await: open a database pool,
 * warm a cache, call an upstream (cn_fetch works; what it returns lives
 * until the hook returns). Its result is 0 or a negative CN_E* code.
 *
 * cn_app_run runs every startup hook, in the order registered, before it
 * accepts a connection (listeners are bound and queue connections
 * meanwhile). If one fails, cn_app_run logs it, runs the shutdown hooks of
 * the pairs whose startup succeeded, and returns that error without
 * serving. After a graceful stop has drained every connection and
 * background task, the shutdown hooks run in the reverse order, and then
 * cn_app_run returns. A cancelled hook (a second stop signal) sees
 * CN_ECANCELED from its awaits.
 */
typedef int (*cn_lifespan_fn)(cn_app *app, void *arg);

/*
 * Register a startup/shutdown pair sharing `arg` (either may be NULL): the
 * shutdown hook runs only if its startup hook succeeded, as the code after
 * `yield` in a lifespan context manager. Errors: CN_EINVAL (both NULL, or
 * app NULL), CN_ESTATE (the app runs), CN_ENOMEM.
 */
CN_EXTERN int cn_app_lifespan(cn_app *app, cn_lifespan_fn startup, cn_lifespan_fn shutdown,
                              void *arg);

/* A startup hook alone, or a shutdown hook alone (cn_app_lifespan with one
 * side NULL). Errors as cn_app_lifespan. */
CN_EXTERN int cn_app_on_startup(cn_app *app, cn_lifespan_fn fn, void *arg);
CN_EXTERN int cn_app_on_shutdown(cn_app *app, cn_lifespan_fn fn, void *arg);

/*
 * A handler. It fills `res` (with cn_res_text, cn_res_json, cn_res_error...)
 * and returns 0, or returns a negative CN_E* code: if no response was set,
 * the code becomes an error response (CN_EBADJSON and CN_EJSONDEPTH give 400,
 * anything else 500 {"detail":"Internal Server Error"}, logged with the
 * route). `return cn_res_raise(res, 404, "Item not found");` is FastAPI's
 * `raise HTTPException(404, ...)`: the response it sets stands, and the
 * CN_EHTTP it returns tells whatever called the handler (a middleware) that
 * it failed on purpose. If the client went away (CN_ECANCELED), nothing is
 * sent.
 */
typedef int (*cn_handler)(cn_req *req, cn_res *res);

/* How a route runs. */
typedef enum cn_route_mode {
    CN_ROUTE_DEFAULT = 0, /* its router's default (cn_router_defaults), else async */
    CN_ROUTE_SYNC = 1,    /* on the thread pool; may block */
    CN_ROUTE_ASYNC = 2,   /* on the event loop, in a coroutine (what the default is) */
} cn_route_mode;

/* A dependency (FastAPI's Depends): see <canteen/depends.h>. */
typedef struct cn_dep cn_dep;
/* Declared parameters and bodies, documented responses: <canteen/declare.h>. */
typedef struct cn_field cn_field;
typedef struct cn_response_doc cn_response_doc;

/*
 * Per-route options. Zero fields take the app's (or the router's) defaults.
 * The size is fixed: new options take the place of `reserved`, so a
 * program built against this header keeps working with later libraries.
 * The OpenAPI strings (summary, description, operation_id, tags) are
 * copied; `deps`, `params`, `body` and `responses` are kept, not copied:
 * point them at static data.
 */
typedef struct cn_route_opts {
    cn_route_mode mode;
    size_t stack_size;         /* coroutine stack for this route's handler */
    const cn_dep *const *deps; /* NULL-terminated: resolved, in order, before
                                * the handler runs (after the app's and the
                                * router's) */
    const cn_field *params;    /* declared parameters, ended by {0}: checked
                                * before the handler (422) */
    const cn_field *body;      /* the JSON body's declaration (422) */
    /* OpenAPI (cn_app_openapi): */
    int status_code;                  /* the success status (0: 200) */
    const char *summary;              /* one line; default: from the path */
    const char *description;          /* longer text */
    const char *operation_id;         /* default: from the path and method */
    const char *const *tags;          /* NULL-terminated */
    const cn_response_doc *responses; /* other responses, ended by status 0 */
    int hidden;                       /* 1: left out of the document */
    unsigned pool_limit;              /* at most this many of the route's pool
                                       * jobs (its sync handler; its requests'
                                       * cn_to_thread calls) queued or running
                                       * at once; more wait their turn without
                                       * holding a worker, within
                                       * pool_queue_max and
                                       * pool_queue_timeout_ms. 0: the app's
                                       * pool_route_share of pool_threads */
    void *reserved[7];
} cn_route_opts;

/*
 * Register a route. `spec` is "METHOD /path" where path segments may be
 * parameters: "GET /users/{id:int}" or "GET /files/{name}". A typed
 * parameter (`:int`, a signed 64-bit integer) that does not convert gets a
 * FastAPI-style 422 response before the handler runs. `spec` is copied.
 * `data` is handed back to the handler through cn_req_route_data().
 * Routes are matched by a trie: cost grows with the path's length, not the
 * number of routes. A literal segment wins over a parameter. The last
 * segment may be `{name:path}` (Starlette's path convertor): the rest of the
 * path, slashes included, possibly empty, decoded in one piece (static files
 * use it: canteen/static.h).
 *
 * Errors: CN_EBADPATTERN (malformed spec), CN_EEXIST (same method and shape
 * already registered), CN_ESTATE (the app is running), CN_ENOMEM.
 */
CN_EXTERN int cn_app_route(cn_app *app, const char *spec, cn_handler fn, void *data);

/* As cn_app_route, with options (NULL means defaults). */
CN_EXTERN int cn_app_route_ex(cn_app *app, const char *spec, cn_handler fn, void *data,
                              const cn_route_opts *opts);

/*
 * A route as data. A table of them, next to the handlers, reads like
 * FastAPI's decorators:
 *
 *     static const cn_route routes[] = {
 *         {.spec = "GET /items/{id:int}", .fn = get_item},
 *         {.spec = "POST /items", .fn = create_item, .opts = {.body = &item, .status_code = 201}},
 *         {.spec = "GET /cpu/{n:int}", .fn = cpu, .opts.mode = CN_ROUTE_SYNC},
 *         {0},
 *     };
 *
 * (Designated initializers keep -Wextra's missing-field warning quiet.)
 *     rc = cn_app_routes(app, routes);
 */
typedef struct cn_route {
    const char *spec; /* "METHOD /path"; NULL ends a table */
    cn_handler fn;
    void *data;
    cn_route_opts opts;
} cn_route;

/*
 * Register every route of the table `routes` (ended by an entry whose spec
 * is NULL), in order, as cn_app_route_ex would. Stops at the first error
 * and returns it; the routes before it stay registered. Errors: those of
 * cn_app_route_ex, CN_EINVAL (NULL table).
 */
CN_EXTERN int cn_app_routes(cn_app *app, const cn_route *routes);

/*
 * Bind and listen on host:port (IPv4 or IPv6 literal, or a name resolved
 * once; NULL means 127.0.0.1). Port 0 picks a free port: read it back with
 * cn_app_port(). May be called more than once to listen on several
 * addresses. The socket listens at once, so a port already taken fails
 * here; connections are accepted once cn_app_run has run the startup hooks
 * (until then they wait in the backlog). While the app runs (from a
 * handler) the host must be a numeric address: a name would be resolved on
 * the loop thread. Errors: CN_EADDRINUSE (the port is taken), other libuv
 * codes, CN_EINVAL for a bad host or port, CN_ESTATE (stopping).
 */
CN_EXTERN int cn_app_listen(cn_app *app, const char *host, int port);

/* The port of the first listener, or a negative code if none. */
CN_EXTERN int cn_app_port(const cn_app *app);

/*
 * Run the app on the calling thread: the startup hooks, then serving on the
 * listeners cn_app_listen made, until the app is stopped (cn_app_stop, or
 * SIGINT/SIGTERM when handle_signals is set); then the graceful drain and
 * the shutdown hooks. Returns 0 after a graceful stop, or the error of a
 * startup hook that failed. Errors: CN_EINVAL (no listener), CN_ESTATE
 * (run already).
 *
 *     int rc = cn_app_listen(app, "127.0.0.1", 8000);
 *     if (rc == 0)
 *         rc = cn_app_run(app);
 */
CN_EXTERN int cn_app_run(cn_app *app);

/*
 * Ask a running app to stop gracefully: stop accepting, close idle
 * connections, let in-flight requests finish until shutdown_timeout_ms, then
 * cancel the rest; cn_app_run then returns 0. Safe to call from any thread
 * (and from a handler); not async-signal-safe; not after cn_app_free. If
 * called before cn_app_run, that run stops as soon as it starts (so a thread
 * that runs the app cannot miss a stop). Errors: CN_ESTATE if the app has
 * already stopped.
 */
CN_EXTERN int cn_app_stop(cn_app *app);

/*
 * Live counters, for tests and metrics. Filled by cn_app_stats().
 * responses_Nxx count the responses sent, by status class (every status
 * from 500 up counts as 5xx), including those given before a request
 * reached the router (400, 408, 413, 431, and 503 at max_connections);
 * a request whose client went away gets none and counts in none.
 */
typedef struct cn_stats {
    uint64_t connections_accepted;
    uint64_t connections_active;
    uint64_t connections_rejected; /* max_connections reached */
    uint64_t requests_total;
    uint64_t requests_active;    /* handlers running or parked */
    uint64_t coroutines_live;    /* coroutines not yet returned to the pool */
    uint64_t responses_1xx;
    uint64_t responses_2xx;
    uint64_t responses_3xx;
    uint64_t responses_4xx;
    uint64_t responses_5xx;
    uint64_t fetch_connects; /* outbound connections opened by cn_fetch */
    uint64_t fetch_requests; /* outbound transfers finished, whatever the outcome */
    uint64_t fetch_failures; /* of those, the ones that got no response
                              * (cn_fetch_result.error set) */
    uint64_t write_queue_peak; /* most response bytes one connection held in
                                * memory, not yet taken by the kernel */
    uint64_t background_started; /* background tasks begun (cn_req_background) */
    uint64_t background_failed;  /* of those, the ones that returned an error */
    uint64_t background_running; /* running now (the drain waits for them) */
    uint64_t fetch_queue_timeouts; /* fetches whose timeout ran out while they
                                    * waited for a connection (fetch_max_host_conns) */
    uint64_t connections_no_fd;    /* connections that came while the process
                                    * was out of descriptors (EMFILE/ENFILE) */
    uint64_t connections_stalled;  /* closed: the client took none of the
                                    * output for keepalive_timeout_ms */
    uint64_t accept_pauses;        /* times accepting stopped for 100 ms: out
                                    * of descriptors with no spare to answer
                                    * from, or another accept() error */
    uint64_t reserved[9];          /* room for new figures (0 for now) */
} cn_stats;

/* The thread pool's figures (cn_app_pool_stats). */
typedef struct cn_pool_stats {
    unsigned threads;     /* workers */
    unsigned busy;        /* workers running a job now */
    uint64_t queue_depth; /* jobs waiting for a worker now */
    uint64_t submitted, completed, cancelled; /* since start */
    uint64_t started;     /* jobs a worker took: completed + busy */
    double wait_ms_avg;   /* time jobs waited in the queue before a worker */
    double wait_ms_max;
    double wait_ms_sum;   /* the waits of all `started` jobs, added up */
    uint64_t rejected;    /* refused: pool_queue_max jobs were waiting */
    uint64_t expired;     /* dropped unrun after pool_queue_timeout_ms */
    uint64_t route_waits; /* jobs that waited for a lane: their route's
                           * pool_limit, or Canteen's CPU lane */
    /* jobs waiting in a lane now (not in queue_depth) */
    uint64_t route_waiting;
    uint64_t reserved[4]; /* room for new figures (0 for now) */
} cn_pool_stats;

/* Copy the pool's figures into *out. Any thread. */
CN_EXTERN void cn_app_pool_stats(const cn_app *app, cn_pool_stats *out);

/* The event loop's health (cn_app_loop_stats). */
typedef struct cn_loop_stats {
    double lag_ms_last;  /* how late the lag probe timer fired, last time */
    double lag_ms_max;   /* and the worst since start */
    double lag_ms_avg;
    double lag_ms_sum;   /* every sample added up: lag_ms_avg * lag_samples */
    uint64_t lag_samples;
    uint64_t slow_steps; /* coroutine steps over slow_callback_ms (each logged) */
    double slowest_ms;   /* the longest one seen */
    uint64_t busy_turns; /* loop turns busier than slow_callback_ms in all
                          * (many short steps under load: counted, not logged) */
    double busiest_turn_ms;
    uint64_t reserved[8]; /* room for new figures (0 for now) */
} cn_loop_stats;

/* Copy the loop's figures into *out. Loop thread (or approximate). */
CN_EXTERN void cn_app_loop_stats(const cn_app *app, cn_loop_stats *out);

/*
 * Copy the app's counters into *out. Call it from the loop thread (a handler)
 * or while the app is not running; any thread gets approximate figures.
 */
CN_EXTERN void cn_app_stats(const cn_app *app, cn_stats *out);

/*
 * Prometheus metrics. The figures of cn_app_stats, cn_app_pool_stats and
 * cn_app_loop_stats in Prometheus' text exposition format (version 0.0.4):
 * every metric named canteen_*, with its # HELP and # TYPE lines, times in
 * seconds. Rendering reads counters in memory and never waits; from the
 * loop thread the figures are exact, from another thread approximate.
 */
#define CN_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/*
 * Register `GET <path>` (NULL: "/metrics") answering with the metrics text
 * (cn_res_metrics): what a Prometheus server scrapes. The route is async,
 * so it runs on the loop where the figures are exact. `path` is copied.
 * Errors: those of cn_app_route (CN_EBADPATTERN for a path not starting with
 * '/', CN_EEXIST if the path is taken, CN_ESTATE once the app runs,
 * CN_ENOMEM), CN_EINVAL for app NULL.
 */
CN_EXTERN int cn_app_metrics_route(cn_app *app, const char *path);

/*
 * Answer 200 with the metrics text of the request's app and Content-Type
 * CN_METRICS_CONTENT_TYPE. It has a handler's shape: mount it yourself,
 * `cn_app_route(app, "GET /internal/metrics", cn_res_metrics, NULL)`, or
 * end your own handler with it (after an access check, say). The text is
 * built in the request's arena. Errors: CN_EINVAL (NULL), CN_ENOMEM,
 * CN_ERESPONDED (a response was already set).
 */
CN_EXTERN int cn_res_metrics(cn_req *req, cn_res *res);

/*
 * The metrics text into a buffer of yours (to write it to a file, or push it
 * somewhere): at most `size` bytes, NUL included, go into `buf` (NULL with
 * size 0 only measures). Returns the length of the whole text, as snprintf
 * does: a result >= size means the text was cut short; the pool's figures
 * move on other threads, so a second call may need a few bytes more than a
 * first one measured. Errors: CN_EINVAL (app NULL, or buf NULL with
 * size > 0), CN_ERANGE (the length does not fit an int).
 */
CN_EXTERN int cn_app_metrics_render(const cn_app *app, char *buf, size_t size);

/*
 * An extension's own figures in the metrics text (a database pool, a cache,
 * a queue): every render calls fn(out, data) after Canteen's own figures,
 * in the order of registration, and fn appends Prometheus text with
 * cn_metrics_printf / cn_metrics_seconds. fn runs on the thread that
 * renders (the loop thread for the metrics route, any thread for
 * cn_app_metrics_render) and must not block; a render may call it more
 * than once. `data` must stay valid until cn_app_free. Errors: CN_EINVAL
 * (app or fn NULL), CN_ENOMEM.
 */
typedef struct cn_metrics_out cn_metrics_out;
typedef void (*cn_metrics_fn)(cn_metrics_out *out, void *data);
CN_EXTERN int cn_app_metrics_add(cn_app *app, cn_metrics_fn fn, void *data);

/* Remove what cn_app_metrics_add(app, fn, data) added (the first match), so
 * that `data` may be freed: loop thread, or while no render runs. Errors:
 * CN_EINVAL (app NULL), CN_ENOENT (no such pair). */
CN_EXTERN int cn_app_metrics_remove(cn_app *app, cn_metrics_fn fn, void *data);

/*
 * Append printf-formatted text to the metrics being rendered (only inside
 * a cn_metrics_fn). Floating-point conversions follow the C locale's
 * LC_NUMERIC, which Prometheus does not: write times with
 * cn_metrics_seconds and counts with integer conversions.
 */
CN_EXTERN void cn_metrics_printf(cn_metrics_out *out, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Append a duration given in milliseconds as seconds ("0.0125"), whatever
 * the locale: Prometheus' base unit. Negative values are written as 0. */
CN_EXTERN void cn_metrics_seconds(cn_metrics_out *out, double ms);

/* ------------------------------------------------------------------------ */
/* The request                                                               */
/* ------------------------------------------------------------------------ */

/* "GET", "POST", ... Static string. */
CN_EXTERN const char *cn_req_method(const cn_req *req);

/* The path, percent-decoded, NUL-terminated, without the query string. */
CN_EXTERN const char *cn_req_path(const cn_req *req);

/*
 * The raw request target as sent ("/a%20b?x=1"), NUL-terminated. An
 * absolute-form target ("http://host/a%20b?x=1") comes as its path and query
 * ("/a%20b?x=1"); its authority ("host") is then the Host header's value.
 */
CN_EXTERN const char *cn_req_target(const cn_req *req);

/* The route pattern that matched ("/users/{id:int}"), or NULL. */
CN_EXTERN const char *cn_req_route(const cn_req *req);

/* The `data` pointer given to cn_app_route for the matched route. */
CN_EXTERN void *cn_req_route_data(const cn_req *req);

/* HTTP minor version: 1 for HTTP/1.1 (and for 1.2 to 1.9, which are
 * served as 1.1), 0 for HTTP/1.0. */
CN_EXTERN int cn_req_http_minor(const cn_req *req);

/*
 * A path parameter by name, percent-decoded and NUL-terminated, or NULL if
 * the route has no such parameter.
 */
CN_EXTERN const char *cn_req_param(const cn_req *req, const char *name);

/*
 * A path parameter as a signed 64-bit integer into *out. Errors: CN_ENOENT
 * (no such parameter), CN_EINVAL (not an integer), CN_ERANGE (overflow).
 * A parameter declared `{name:int}` has already been checked.
 */
CN_EXTERN int cn_req_param_int(const cn_req *req, const char *name, int64_t *out);

/*
 * The first query parameter `name`, percent-decoded ('+' is a space),
 * NUL-terminated; "" for `?flag`; NULL if absent (or malformed escapes, or
 * out of memory). The decoded copy is made in the request's arena.
 */
CN_EXTERN const char *cn_req_query(cn_req *req, const char *name);

/*
 * A query parameter as an integer. Errors: CN_ENOENT, CN_EINVAL, CN_ERANGE.
 */
CN_EXTERN int cn_req_query_int(cn_req *req, const char *name, int64_t *out);

/*
 * The first header named `name` (case-insensitive), NUL-terminated, or NULL.
 * Repeated headers other than Set-Cookie are not joined: use
 * cn_req_header_at to see them all.
 */
CN_EXTERN const char *cn_req_header(const cn_req *req, const char *name);

/* Number of headers, and the i-th (0-based) name and value. */
CN_EXTERN size_t cn_req_header_count(const cn_req *req);
CN_EXTERN int cn_req_header_at(const cn_req *req, size_t i, cn_str *name, cn_str *value);

/* The body (de-chunked); {NULL,0}-like empty view when there is none. */
CN_EXTERN cn_str cn_req_body(const cn_req *req);

/*
 * The body parsed as JSON into *out. The cJSON tree is owned by the request
 * and freed with it: do not cJSON_Delete it (detach or duplicate what must
 * outlive the request; cn_res_json may be given the tree itself). Parsed
 * once; later calls return the same tree. Refused before cJSON sees them
 * (RFC 8259, and what a C string or a double cannot carry): text that is
 * not UTF-8 (overlong forms and encoded surrogates included), NaN and
 * Infinity, a \u0000 escape, an unpaired \uXXXX surrogate, a number past a
 * double's range (1e999), nesting deeper than CN_JSON_MAX_DEPTH. A body of
 * 16 KiB or more is parsed on the thread pool when called from a
 * coroutine (the handler parks meanwhile; the job counts against the
 * route's pool_limit). Errors: CN_EBADJSON (empty, malformed or refused),
 * CN_EJSONDEPTH, CN_ENOMEM, CN_ECANCELED (the client left while the pool
 * had it), CN_EAGAIN and CN_EEXPIRED (the pool's queue is full, or the job
 * waited too long: cn_to_thread's). A handler may simply return the code:
 * a 400 for the first two, a 503 with Retry-After for the last two.
 */
#define CN_JSON_MAX_DEPTH 128
CN_EXTERN int cn_req_json(cn_req *req, cJSON **out);

/*
 * Allocate `size` bytes from the request's arena (aligned for any type).
 * Freed in one go when the response is done; never free it yourself.
 * Returns NULL only when out of memory.
 */
CN_EXTERN void *cn_req_alloc(cn_req *req, size_t size);

/* Copy a string (or n bytes plus a NUL) into the arena. NULL on OOM. */
CN_EXTERN char *cn_req_strdup(cn_req *req, const char *s);
CN_EXTERN char *cn_req_strndup(cn_req *req, const char *s, size_t n);

/* printf into the arena. NULL on OOM. */
CN_EXTERN char *cn_req_sprintf(cn_req *req, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/*
 * Run fn(arg) when the request ends (its response sent and its background
 * tasks done, or its connection gone), in reverse order of registration, on
 * the loop thread. Errors: CN_ENOMEM.
 */
CN_EXTERN int cn_req_defer(cn_req *req, void (*fn)(void *), void *arg);

/*
 * A background task (Starlette's BackgroundTasks): fn(arg) runs after the
 * response has been sent, as a coroutine on the loop that may await (fetch,
 * sleep, to_thread...). Tasks run one after the other, in the order added,
 * after the route's dependency cleanups. The client going away does not
 * cancel them (its request is answered); a graceful stop waits for them up
 * to shutdown_timeout_ms, then cancels them. The request stays readable
 * (path, headers, params, arena memory: put `arg` there) until the last
 * one returns; cn_res_* calls return CN_ERESPONDED. A task that returns a
 * negative code is logged with the route that added it, and the next one
 * runs. cn_stats counts them (background_*). If the request gets no
 * response (its client left first), they do not run.
 * Allowed from any handler, sync ones too. Errors: CN_EINVAL, CN_ENOMEM,
 * CN_ERESPONDED (the response is out: call it from the handler).
 */
CN_EXTERN int cn_req_background(cn_req *req, cn_task_fn fn, void *arg);

/* The app this request belongs to. */
CN_EXTERN cn_app *cn_req_app(const cn_req *req);

/*
 * The request's ID (what the request-ID middleware or cn_req_set_id gave
 * it), or NULL. In the request's arena.
 */
CN_EXTERN const char *cn_req_id(const cn_req *req);

/*
 * Give the request an ID (copied): 1 to 128 printable ASCII characters
 * other than space (CN_EINVAL otherwise: it goes into log lines and a
 * header, so nothing there may forge either). From then on every line
 * Canteen logs about this request, and every cn_req_log line, starts with
 * "[<id>] ". Errors: CN_EINVAL, CN_ENOMEM.
 */
CN_EXTERN int cn_req_set_id(cn_req *req, const char *id);

/*
 * Log a line about this request through Canteen's log (cn_log_set_handler),
 * at `level` (CN_LOG_*), with "[<id>] " first when the request has an ID.
 * Lines are cut at 1 KiB. Any thread that holds the request.
 */
CN_EXTERN void cn_req_log(const cn_req *req, int level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* ------------------------------------------------------------------------ */
/* The response                                                              */
/* ------------------------------------------------------------------------ */

/*
 * Add a response header (a repeated name adds another line: Set-Cookie).
 * Name and value are copied; the name must be a token and the value must
 * not contain CR, LF, NUL or other control characters but tab
 * (CN_EBADHEADER): a handler cannot split the response. Content-Length,
 * Date, Server, Connection and Transfer-Encoding are set by Canteen and
 * refused here (CN_EBADHEADER). Headers may be added until the head is
 * sent, also after the body is set (a middleware adds its own on the way
 * out); a stream's head is sent by cn_res_stream_begin.
 * Errors: CN_ENOMEM, CN_ERESPONDED once the head is sent.
 */
CN_EXTERN int cn_res_header(cn_res *res, const char *name, const char *value);

/*
 * Set status and body in one call; each sets Content-Type unless a
 * Content-Type header was added before. Bodies are copied. Each may be
 * called once per request (CN_ERESPONDED after that).
 */

/* text/plain; charset=utf-8, from a NUL-terminated string. */
CN_EXTERN int cn_res_text(cn_res *res, int status, const char *text);

/* Any bytes with the given Content-Type (NULL: application/octet-stream). */
CN_EXTERN int cn_res_bytes(cn_res *res, int status, const void *body, size_t len,
                           const char *content_type);

/*
 * application/json from a cJSON tree. Takes ownership of `json` in every
 * case, success or error: it is serialised and deleted -- except the tree
 * cn_req_json gave for this request, which is printed and stays the
 * request's (so echoing the body needs no copy). The text is what
 * cJSON_PrintUnformatted makes. A tree of 4096 nodes or more is printed
 * and deleted on the thread pool when called from a coroutine (the handler
 * parks meanwhile): nothing else may change it until this returns. Errors:
 * CN_EINVAL (NULL json, which gives a 500 if the handler returns the code;
 * a cJSON_Invalid or text-less raw node), CN_ERESPONDED, CN_ENOMEM,
 * CN_ECANCELED (the client left while the pool had it), CN_EAGAIN and
 * CN_EEXPIRED (the pool is full: cn_to_thread's, a 503 with Retry-After).
 */
CN_EXTERN int cn_res_json(cn_res *res, int status, cJSON *json);

/* application/json from an already serialised string (copied). */
CN_EXTERN int cn_res_json_str(cn_res *res, int status, const char *json);

/*
 * application/json from a printf format, made in the request's arena:
 * `cn_res_jsonf(res, 200, "{\"id\":%d}", id)`. What the format puts in must
 * already be JSON: a string argument is not escaped (build strings from
 * request data with cJSON and cn_res_json). Errors: CN_EINVAL (NULL fmt),
 * CN_ENOMEM, CN_ERESPONDED.
 */
CN_EXTERN int cn_res_jsonf(cn_res *res, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/*
 * `s` as a JSON string literal, quoted and escaped ("a\"b" for a"b), or
 * `null` when s is NULL: what to give cn_res_jsonf for a string, request
 * data included. In the request's arena; NULL only when out of memory.
 */
CN_EXTERN const char *cn_req_json_quote(cn_req *req, const char *s);

/*
 * Escape len bytes of src for HTML text or a quoted attribute value: & < >
 * " ' become &amp; &lt; &gt; &quot; &#x27; (Python's html.escape); every
 * other byte, UTF-8 included, is copied. At most size bytes, NUL included,
 * go into dst, never part of an entity (NULL dst with size 0 only
 * measures). Returns the escaped length (>= size: dst was too small), or
 * CN_EINVAL (NULL src with len > 0, NULL dst with size > 0), CN_ERANGE.
 */
CN_EXTERN int cn_html_escape(char *dst, size_t size, const char *src, size_t len);

/*
 * The escaped form of the NUL-terminated `s` (cn_html_escape), in the
 * request's arena (valid until the response is done; never free it). NULL
 * when req or s is NULL, or out of memory.
 */
CN_EXTERN char *cn_req_html_escape(cn_req *req, const char *s);

/*
 * FastAPI's HTTPException: `{"detail": "<detail>"}` with `status`.
 * `detail` is copied (NULL means the status's reason phrase).
 */
CN_EXTERN int cn_res_error(cn_res *res, int status, const char *detail);

/* The status set so far (0 if none). */
CN_EXTERN int cn_res_status(const cn_res *res);

/*
 * FastAPI's `raise HTTPException(status, detail)`: replace whatever body was
 * set with `{"detail": "<detail>"}` (NULL: the reason phrase) and `status`,
 * keep the headers added, and return CN_EHTTP, which the handler (or
 * middleware, or dependency) returns:
 *
 *     if (item == NULL)
 *         return cn_res_raise(res, 404, "Item not found");
 *
 * CN_EHTTP is a failure on purpose: not logged, and its response stands.
 * Errors (returned instead): CN_EINVAL (status out of 100..999),
 * CN_ERESPONDED (the head is sent), CN_ENOMEM.
 */
CN_EXTERN int cn_res_raise(cn_res *res, int status, const char *detail);

/*
 * Looking at and changing a response on its way out (in a middleware, after
 * cn_next). None of these may be used once the head is sent (a stream has
 * begun, or the response went out): they return CN_ERESPONDED (NULL, or an
 * empty view).
 */

/* Change the status of the response set (100..999). Errors: CN_EINVAL,
 * CN_ESTATE (no response set yet), CN_ERESPONDED. */
CN_EXTERN int cn_res_set_status(cn_res *res, int status);

/* The first response header named `name` (case-insensitive), or NULL.
 * Content-Type is one of them once a body sets it. The string lives in the
 * request's arena. */
CN_EXTERN const char *cn_res_get_header(const cn_res *res, const char *name);

/* Remove every header named `name`; returns how many went (0 or more).
 * Errors: CN_EINVAL, CN_ERESPONDED. */
CN_EXTERN int cn_res_remove_header(cn_res *res, const char *name);

/* The body set (cn_res_text, cn_res_json, ...), a view into the request's
 * arena; empty when none is set or it is a stream. */
CN_EXTERN cn_str cn_res_body(const cn_res *res);

/*
 * Drop the status, headers and body, so that the response can be set again
 * from scratch (a middleware that answers with a page of its own). Errors:
 * CN_ERESPONDED.
 */
CN_EXTERN int cn_res_reset(cn_res *res);

/*
 * Streamed responses (FastAPI's StreamingResponse): the body goes out in
 * pieces while the handler runs, for bodies that are large or made over
 * time. The writer parks while the client is behind, so these are
 * awaitables: from a sync handler, a worker thread or any code outside a
 * coroutine they return CN_ENOTCORO (nothing is sent); from a coroutine of
 * another request, CN_EINVAL.
 *
 *     rc = cn_res_stream_begin(res, 200, "application/x-ndjson");
 *     for (i = 0; rc == 0 && i < n; i++)
 *         rc = cn_res_stream_write(res, line[i], len[i]);
 *     return rc < 0 ? rc : cn_res_stream_end(res);
 *
 * Framing: HTTP/1.1 gets Transfer-Encoding: chunked, and the connection
 * stays open for the next (pipelined) request. An HTTP/1.0 client gets the
 * bytes as they are with Connection: close: the end of the body is the end
 * of the connection. A HEAD request gets the head only; writes are taken
 * and dropped.
 *
 * Once the head is out the status cannot change. A handler that returns a
 * negative code before cn_res_stream_end has its connection closed without
 * the last chunk: an HTTP/1.1 client sees a truncated body, not a complete
 * one (an HTTP/1.0 client cannot tell the difference). A handler that
 * returns 0 without ending the stream has it ended for it.
 *
 * When the client goes away, every call returns CN_ECANCELED (a parked
 * write at once): the handler should return.
 */

/*
 * Send the head: `status` (200 to 999 but 204 and 304, which have no body),
 * the headers added so far, and Content-Type `content_type` (copied; NULL:
 * application/octet-stream; a Content-Type header added before wins, as for
 * the body calls). After it, cn_res_header and the body calls return
 * CN_ERESPONDED.
 * Errors: CN_ENOTCORO, CN_EINVAL (status, or another request's res),
 * CN_ERESPONDED (a body was set or a stream begun), CN_EBADHEADER (control
 * characters in content_type), CN_ECANCELED, CN_ENOMEM.
 */
CN_EXTERN int cn_res_stream_begin(cn_res *res, int status, const char *content_type);

/*
 * Send `len` bytes of body as one chunk. They are copied: `data` may be
 * reused as soon as this returns. Backpressure: when the client reads
 * slower than the handler writes and more than 256 KiB wait in memory,
 * this parks until the client has taken most of them, so a stream holds
 * about that much whatever its length (one write is held whole: write big
 * bodies in pieces). A client that takes nothing for keepalive_timeout_ms
 * is dropped (CN_ECANCELED). len 0 sends nothing and returns 0.
 * Errors: CN_ENOTCORO, CN_ESTATE (not begun, or ended), CN_ECANCELED,
 * CN_EINVAL (NULL data with len > 0, another request's res), CN_ENOMEM.
 */
CN_EXTERN int cn_res_stream_write(cn_res *res, const void *data, size_t len);

/*
 * End the body (the last chunk, "0\r\n\r\n", under HTTP/1.1). Later
 * writes return CN_ESTATE.
 * Errors: CN_ENOTCORO, CN_ESTATE (not begun, or already ended),
 * CN_ECANCELED, CN_EINVAL, CN_ENOMEM.
 */
CN_EXTERN int cn_res_stream_end(cn_res *res);

/* ------------------------------------------------------------------------ */
/* Tasks: waiting without blocking anyone                                    */
/* ------------------------------------------------------------------------ */

/*
 * Awaitables. An async handler (the default route mode) runs in a coroutine
 * on the event loop; when it calls one of these it parks, and the loop
 * serves other requests until whatever it waits for is ready. They may only
 * be called from inside such a coroutine (an async handler or a task it
 * spawned). Called anywhere else -- a sync handler, a worker thread, a plain
 * callback -- they return CN_ENOTCORO at once: never a crash, never a hang.
 *
 * Cancellation: when the client disconnects (or shutdown passes its
 * deadline) the request is cancelled. The await it is parked in returns
 * CN_ECANCELED, its timers are stopped and its child tasks cancelled; every
 * later await returns CN_ECANCELED at once. The handler should return
 * (returning the code is fine); its arena is then freed.
 */

/* Park for `ms` milliseconds (asyncio.sleep). 0, CN_ECANCELED, CN_ENOTCORO,
 * CN_EINVAL (negative ms). */
CN_EXTERN int cn_sleep(int64_t ms);

/* Let every other ready task and the loop's I/O run once, then continue
 * (asyncio.sleep(0)). 0, CN_ECANCELED, CN_ENOTCORO. */
CN_EXTERN int cn_yield(void);

/* A child task, created by cn_spawn and consumed by one await. */
typedef struct cn_task cn_task;


/*
 * Start fn(arg) as a child of the current task (asyncio.create_task). It
 * starts running as soon as the current task parks or yields. The caller
 * owns *out until it passes it to exactly one of cn_await, cn_gather or
 * cn_wait_for, which free it. A task never awaited is cancelled when its
 * request ends, and the log names the route that forgot it ("task spawned
 * by GET /x was never awaited"). `arg` must stay valid until the task is
 * awaited (request-arena memory is the natural place).
 * Errors: CN_ENOTCORO, CN_ECANCELED (the current task is cancelled),
 * CN_EAGAIN (no coroutine stack could be mapped), CN_ENOMEM, CN_EINVAL.
 */
CN_EXTERN int cn_spawn(cn_task_fn fn, void *arg, cn_task **out);

/*
 * Park until `t` has finished; return its result and free it. If the
 * awaiting task is cancelled meanwhile, `t` is cancelled too, awaited to its
 * end, freed, and CN_ECANCELED returned. CN_ENOTCORO outside a coroutine
 * (then `t` is not freed); CN_EINVAL if t is NULL or not a child of the
 * current task.
 */
CN_EXTERN int cn_await(cn_task *t);

/*
 * Await n tasks at once (asyncio.gather): park until ALL have finished --
 * an error in one does not cancel the others, they are still awaited. Each
 * result goes into results[i] (in the order given, whatever the finishing
 * order; results may be NULL). Returns 0 if all succeeded, otherwise the
 * first error in index order. Every task is freed. If the awaiting task is
 * cancelled, all are cancelled, awaited, freed, and CN_ECANCELED returned.
 * The total wait is the slowest task's, not the sum.
 */
CN_EXTERN int cn_gather(cn_task **tasks, size_t n, int *results);

/*
 * Await `t` for at most timeout_ms (asyncio.wait_for). On time, returns t's
 * result. On timeout, t is cancelled and awaited to its end (its awaits
 * return CN_ECANCELED), then CN_ETIMEDOUT is returned. Any awaitable can be
 * given a timeout this way by running it in a spawned task. t is freed in
 * every case but CN_ENOTCORO/CN_EINVAL.
 */
CN_EXTERN int cn_wait_for(cn_task *t, int64_t timeout_ms);

/*
 * Run fn(arg) on the thread pool and park until it returns
 * (asyncio.to_thread): the way to call a blocking library from an async
 * handler. Returns fn's result. If the request is cancelled while the job
 * waits in the queue, the job is dropped and CN_ECANCELED returned; if it is
 * already running it cannot be stopped: cn_job_cancelled() turns 1 for it,
 * and the task waits for it to return, then gets CN_ECANCELED. fn runs on
 * another thread: it must not call awaitables (they return CN_ENOTCORO
 * there) nor touch the request's response.
 *
 * The job counts against the pool_limit of the route whose request calls
 * (cn_route_opts): over it, the job waits its turn without a worker. The
 * pool refuses work it could not start in time: CN_EAGAIN when
 * pool_queue_max jobs are waiting already, CN_EEXPIRED when the job waited
 * longer than pool_queue_timeout_ms (fn did not run). A handler that
 * returns either gets 503 with Retry-After; neither is logged (the
 * canteen_pool_jobs_rejected_total and _expired_total metrics count them).
 * Errors: CN_ENOTCORO, CN_ECANCELED, CN_EINVAL, CN_ESTATE (stopping),
 * CN_EAGAIN, CN_EEXPIRED.
 */
CN_EXTERN int cn_to_thread(cn_task_fn fn, void *arg);

/*
 * The cooperative cancellation check for code on the pool: a sync
 * handler, a cn_to_thread function. 1 once the request it works for is
 * cancelled (its client went away, or the graceful stop's deadline passed)
 * or the app is being freed; 0 until then. A long job calls it between
 * steps and returns early (CN_ECANCELED) when it turns 1: its answer would
 * go nowhere, and its worker is wanted.
 *
 *     for (uint64_t i = 0; i < n; i++) {
 *         if ((i & 0xfffff) == 0 && cn_job_cancelled())
 *             return CN_ECANCELED;
 *         ...
 *     }
 *
 * In a coroutine it answers as cn_task_cancelled(); in a cn_app_pool_submit
 * job, 1 only while the app is being freed. Cheap (a thread-local and an
 * atomic load). Errors: CN_ESTATE on a thread that runs neither a pool job
 * nor a coroutine.
 */
CN_EXTERN int cn_job_cancelled(void);

/*
 * Run work(arg) on the app's thread pool, then done(arg, status) on the
 * loop thread: the loop-side form of cn_to_thread, for code that is not a
 * coroutine (a libuv callback, an extension's state machine) or must not
 * wait for the job (a cancelled request that still wants a blocking clean-up
 * done, such as libpq's PQcancel). `status` is 0 when work ran, or
 * CN_ECANCELED when the app was freed before a worker took the job (work
 * did not run). done is always called exactly once when this returns 0,
 * never from inside this call; it owns `arg` from then on. `status` is
 * CN_EEXPIRED when the job waited longer than pool_queue_timeout_ms (work
 * did not run). Such a job belongs to no route (no pool_limit). work must
 * not touch loop objects. Any thread. Errors: CN_EINVAL (NULL app, work or
 * done), CN_ESTATE (the app is being freed), CN_EAGAIN (pool_queue_max
 * jobs are waiting), CN_ENOMEM.
 */
CN_EXTERN int cn_app_pool_submit(cn_app *app, void (*work)(void *arg),
                                 void (*done)(void *arg, int status), void *arg);

/*
 * Wait for a file descriptor (asyncio's loop.add_reader/add_writer, as an
 * await): park until `fd` is ready for `events` (CN_READABLE, CN_WRITABLE
 * or both), `timeout_ms` passes (< 0: no limit; 0: just look), or the
 * request is cancelled. Returns the events that are ready (> 0, a subset
 * of `events`, or CN_READABLE|CN_WRITABLE for an error or hang-up on the
 * socket, which the next read or write reports), CN_ETIMEDOUT,
 * CN_ECANCELED, CN_ENOTCORO (outside a coroutine), CN_EINVAL (fd < 0, no
 * or unknown events), CN_EEXIST (the loop already watches fd through a
 * handle of its own, such as a Canteen connection or a curl socket), or a
 * libuv code (UV_EBADF for an fd that is not open).
 *
 * The fd should be non-blocking: readiness is a hint, and a read after a
 * wake-up can still get EAGAIN (read until EAGAIN, then wait again). If
 * the fd is ready at once this returns without parking. Several tasks may
 * wait on one fd at once: they share one libuv poll handle, watching the
 * union of their events, and each is woken only for the events it asked
 * for. Canteen never reads, writes or closes the fd. Close an fd only when
 * no task is parked on it (cancel or wake its waiters first: with one task
 * owning each connection that is always the case); once the last wait on it
 * has returned the loop holds nothing of it and it may be closed at once.
 */
enum { CN_READABLE = 1, CN_WRITABLE = 2 };
CN_EXTERN int cn_wait_fd(int fd, int events, int64_t timeout_ms);

/*
 * A future (asyncio.Future): a one-shot result that loop-side code
 * delivers and one task waits for. The owner creates it, hands it to the
 * code that will complete it (an I/O callback, a state machine driven by
 * libuv handles), and waits:
 *
 *     cn_future *f = cn_future_new();
 *     cn_future_on_abandon(f, forget_it, job);   // stop what would resolve it
 *     start_job(job, f);                         // calls cn_future_resolve later
 *     rc = cn_future_wait(f, 500);               // job's result, or an error
 *     cn_future_free(f);
 *
 * Everything but cn_future_new and cn_future_free is for the loop thread.
 */
typedef struct cn_future cn_future;

/* A new, unresolved future, owned by the caller (cn_future_free). Any
 * thread. NULL when out of memory. */
CN_EXTERN cn_future *cn_future_new(void);

/*
 * Free a future. It must not be in a wait (CN_EBUSY is not reported:
 * freeing a waited future is a bug the waiter's return rules out). NULL
 * is allowed.
 */
CN_EXTERN void cn_future_free(cn_future *f);

/*
 * Called on the loop thread when a wait ends without a result (timeout or
 * cancellation), before cn_future_wait returns: `reason` is CN_ETIMEDOUT
 * or CN_ECANCELED. The resolving side should forget the future there (it
 * must not resolve it later; if it does, the call is refused with
 * CN_ESTATE and changes nothing). One hook per future; a later call
 * replaces it; fn NULL removes it.
 */
typedef void (*cn_future_abandon_fn)(cn_future *f, int reason, void *arg);
CN_EXTERN void cn_future_on_abandon(cn_future *f, cn_future_abandon_fn fn, void *arg);

/*
 * Park until f is resolved and return its result (resolved before the
 * wait: at once), or until timeout_ms passes (< 0: no limit) --
 * CN_ETIMEDOUT -- or the task is cancelled -- CN_ECANCELED; in both of
 * those cases the abandon hook has run and the future is finished (later
 * waits return the same code). Errors: CN_ENOTCORO, CN_EINVAL (NULL),
 * CN_EBUSY (another task waits on it).
 */
CN_EXTERN int cn_future_wait(cn_future *f, int64_t timeout_ms);

/*
 * Resolve f with `result` (any int; by convention 0 or a negative CN_E*)
 * and wake its waiter, which runs from the run queue, never inside this
 * call. Loop thread only. Errors: CN_EINVAL (NULL), CN_ESTATE (already
 * resolved or abandoned).
 */
CN_EXTERN int cn_future_resolve(cn_future *f, int result);

/* 1 once f is resolved or abandoned, else 0 (NULL: 0). */
CN_EXTERN int cn_future_done(const cn_future *f);

/* ------------------------------------------------------------------------ */
/* Outbound HTTP (httpx.AsyncClient)                                         */
/* ------------------------------------------------------------------------ */

/*
 * One outbound request. Every field but url may be zero. Strings are read
 * during the call only.
 */
typedef struct cn_fetch_opts {
    const char *url;            /* "http://host:port/path?query" */
    const char *method;         /* NULL: GET, or POST when there is a body */
    const char *const *headers; /* NULL-terminated "Name: value" strings */
    const void *body;
    size_t body_len;
    int64_t timeout_ms;    /* whole transfer; 0: cn_config.fetch_timeout_ms */
    size_t max_body_bytes; /* 0: cn_config.fetch_max_body_bytes */
    void *reserved[4];     /* room for new options: leave zero */
} cn_fetch_opts;

/*
 * What came back. Everything it points to lives in the request's arena
 * (until the response is done); never free it.
 */
typedef struct cn_fetch_result {
    int error;  /* 0, or CN_ETIMEDOUT, CN_ECONNREFUSED, CN_EDNS, CN_ETOOBIG,
                 * CN_ECANCELED, CN_EUPSTREAM, CN_EINVAL (a URL curl refuses),
                 * CN_ENOMEM (cn_strerror names it) */
    int status; /* the HTTP status, 0 when no response arrived */
    cn_str body;
    size_t nheaders;
    cn_str *header_names, *header_values; /* the final response's headers */
    double elapsed_ms;
    void *reserved[4]; /* room for new fields */
} cn_fetch_result;

/*
 * Fetch one URL and park until the answer is in (an HTTP error status is
 * not an error here: look at out->status). Connections and DNS answers are
 * kept across requests and reused, like a long-lived httpx.AsyncClient;
 * at most fetch_max_host_conns connections per host. Returns out->error.
 * From a sync handler or a worker thread: CN_ENOTCORO (the golden rule),
 * nothing is sent. CN_EINVAL without a url.
 */
CN_EXTERN int cn_fetch(const cn_fetch_opts *opts, cn_fetch_result *out);

/*
 * Fetch n URLs at once and park until all are done: every transfer is
 * started before the task parks, so the wait is the slowest one, not the
 * sum. out[i] answers opts[i]. Returns 0 when every transfer got a
 * response, otherwise the first out[i].error in index order. On
 * cancellation every transfer still running is removed (out[i].error =
 * CN_ECANCELED) and CN_ECANCELED returned.
 */
CN_EXTERN int cn_fetch_all(const cn_fetch_opts *opts, size_t n, cn_fetch_result *out);

/* A response header of a result (case-insensitive), NUL-terminated, or NULL. */
CN_EXTERN const char *cn_fetch_header(const cn_fetch_result *r, const char *name);

/*
 * The result's body parsed as JSON, with cn_req_json's checks (and, from
 * 16 KiB, on the thread pool). The tree is owned by the current request
 * and freed with it (do not cJSON_Delete it; detach or duplicate what you
 * keep). Errors: CN_EBADJSON, CN_EJSONDEPTH, CN_ENOTCORO (no current
 * task), CN_ESTATE (a task without a request), CN_ENOMEM, CN_ECANCELED,
 * CN_EAGAIN, CN_EEXPIRED (the pool is full: cn_to_thread's).
 */
CN_EXTERN int cn_fetch_json(const cn_fetch_result *r, cJSON **out);

/*
 * Turn a failed upstream call into the error response the guide uses:
 * upstream 404 -> 404 {"detail": not_found_detail} (NULL: "Not Found");
 * timeout -> 504; any other failure or upstream status >= 400 -> 502.
 * Returns what cn_res_error returns, or CN_EINVAL if `r` is a success
 * (status < 400 and no error), in which case nothing is set.
 */
CN_EXTERN int cn_res_upstream_error(cn_res *res, const cn_fetch_result *r,
                                    const char *not_found_detail);

/*
 * Building outbound URLs from request data. A path parameter arrives
 * percent-decoded: put "..%2F..%2Fadmin" into "%s/users/%s" and the URL
 * names /admin on the upstream. Escape every piece of request data that goes
 * into a URL, each as the part it is:
 *
 *     const char *name = cn_req_url_escape(req, cn_req_param(req, "user"), CN_URL_SEGMENT);
 *     if (name == NULL)
 *         return cn_res_error(res, 422, "Invalid user name");
 *     o.url = cn_req_sprintf(req, "%s/users/%s", base, name);
 *
 * CN_URL_SEGMENT: one path segment. Every byte but RFC 3986's unreserved
 * characters (A-Z a-z 0-9 - . _ ~) becomes %XX, so '/', '?', '#', '%' and
 * '&' cannot change the path or start a query; "", "." and ".." are refused
 * (CN_EINVAL): no encoding keeps a server from resolving them as dot
 * segments. CN_URL_QUERY: one query name or value, escaped the same way
 * ('&', '=', '+' included); "" is allowed.
 */
enum { CN_URL_SEGMENT = 0, CN_URL_QUERY = 1 };

/*
 * Escape len bytes of src (NUL bytes included: they become %00) into dst:
 * at most size bytes, NUL included, and never part of an escape (NULL dst
 * with size 0 only measures). Returns the escaped length (a result >= size
 * means dst was too small), or CN_EINVAL (a dot or empty segment, a bad
 * `part`, NULL src with len > 0, NULL dst with size > 0), CN_ERANGE.
 */
CN_EXTERN int cn_url_escape(char *dst, size_t size, const char *src, size_t len, int part);

/*
 * The escaped form of the NUL-terminated `s`, in the request's arena (valid
 * until the response is done; never free it). NULL when `s` is NULL, when
 * cn_url_escape refuses it (a dot or empty segment), or out of memory.
 */
CN_EXTERN char *cn_req_url_escape(cn_req *req, const char *s, int part);

/* 1 if the current task has been cancelled, 0 if not, CN_ENOTCORO outside a
 * coroutine. Lets long computations between awaits stop early. */
CN_EXTERN int cn_task_cancelled(void);

/*
 * The request the current task serves: its handler's, its middleware's and
 * dependencies', its spawned tasks' and its background tasks'. In a
 * lifespan hook, a request with no HTTP message behind it, whose arena
 * lives until the hook returns. NULL outside a coroutine (a sync handler
 * on the pool has its req as an argument).
 */
CN_EXTERN cn_req *cn_req_current(void);

/* Canteen 0.1's names of cn_task_cancelled and cn_req_current; removed in 0.3. */
CN_EXTERN int cn_cancelled(void) CN_DEPRECATED("use cn_task_cancelled");
CN_EXTERN cn_req *cn_current_req(void) CN_DEPRECATED("use cn_req_current");

#ifdef __cplusplus
}
#endif

/* Around the handler: middleware, dependencies, routers, declarations. */
#include <canteen/middleware.h>
#include <canteen/depends.h>
#include <canteen/routers.h>
#include <canteen/declare.h>
#include <canteen/testclient.h>
#include <canteen/openapi.h>

/* Batteries: cookies, shipped middleware, static files. */
#include <canteen/cookies.h>
#include <canteen/batteries.h>
#include <canteen/static.h>

/* Operating: workers, socket activation, the client's address, the log. */
#include <canteen/workers.h>
#include <canteen/cli.h>

#endif /* CANTEEN_H */
