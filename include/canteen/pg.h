/*
 * canteen/pg.h -- PostgreSQL on the event loop (libcanteen-pg): a pool of
 * libpq connections in non-blocking pipeline mode, as good as asyncpg's.
 *
 *     static cn_pg_pool *db;
 *     static int startup(cn_app *app, void *arg) {       // cn_app_lifespan hooks
 *         return cn_pg_pool_new(app, &(cn_pg_config){.conninfo = arg}, &db);
 *     }
 *     static int shutdown(cn_app *app, void *arg) {
 *         cn_pg_pool_close(db);
 *         return 0;
 *     }
 *     ...cn_app_lifespan(app, startup, shutdown, "host=/run/postgresql dbname=app");
 *     static int user(cn_req *req, cn_res *res) {        // an async route
 *         const char *id = cn_req_param(req, "id");
 *         cn_pg_result *r;
 *         int rc = cn_pg_query(db, "SELECT name FROM users WHERE id = $1", 1, &id, &r);
 *         if (rc < 0)
 *             return rc;                                 // CN_EUNAVAILABLE gives 503
 *         ...cn_pg_result_text(r, 0, 0)...               // freed with the request
 *     }
 *
 * Its own library (libcanteen-pg.so / .a, pkg-config canteen-pg, CMake
 * canteen::canteen-pg), so that services without PostgreSQL do not link
 * libpq. It is built on Canteen's public API only (cn_future, cn_app_loop,
 * cn_app_pool_submit, cn_app_metrics_add): a client for another database
 * can be written the same way.
 *
 * How it works, in short (docs/api/pg.md has the long form):
 * - Every libpq call on the loop thread is non-blocking: connections are
 *   opened with PQconnectStartParams/PQconnectPoll on a uv_poll, a host
 *   *name* is resolved with uv_getaddrinfo first (libpq would resolve it
 *   synchronously), queries go out with PQsendQueryPrepared/Params and
 *   PQpipelineSync, results come in with PQconsumeInput/PQisBusy/
 *   PQgetResult. PQcancel, which blocks, runs on Canteen's thread pool.
 * - The awaitables park the calling coroutine (golden rules: CN_ENOTCORO
 *   outside one) and return CN_ECANCELED when the request is cancelled; a
 *   query already running on the server is then cancelled there (PQcancel)
 *   and the connection comes back clean.
 * - One-shot queries (cn_pg_query) go to an idle connection, else to a new
 *   one while the pool may grow, else they are pipelined behind the queries
 *   already on a connection, up to pipeline_depth. All the queries that
 *   go out on one connection in one turn of the loop form one batch: one
 *   write, one Sync. A batch is one implicit transaction on the server, so
 *   if one query of it fails, PostgreSQL rolls the whole batch back:
 *   Canteen fails that query with its error and sends the others again
 *   (none of them was committed), so every query either succeeds in a
 *   committed batch or fails with its own error. Results are handed over
 *   when their batch's Sync arrives. One-shot queries must not change
 *   session state (SET, advisory locks, LISTEN, temporary tables, BEGIN):
 *   do that on an acquired connection.
 * - Acquired connections (cn_pg_acquire) are the caller's alone until
 *   cn_pg_release; each of their queries is its own batch, so BEGIN /
 *   COMMIT behave as on any connection. On release the connection is
 *   rolled back if a transaction was left open and reset as asyncpg does
 *   (pg_advisory_unlock_all, CLOSE ALL, UNLISTEN *, RESET ALL) before the
 *   next borrower sees it; if the reset fails it is closed.
 * - A lost connection fails the queries in flight on it (they may or may
 *   not have run: they are not sent again) and is replaced; connect
 *   failures back off exponentially. While no connection can be made,
 *   waiters fail at once with CN_EUNAVAILABLE (503 when a handler returns
 *   it) instead of hanging.
 *
 * Threads: everything here is for the loop thread of the pool's app (an
 * async handler, a task, a libuv callback), except cn_pg_pool_stats
 * (approximate from another thread) and the result getters (any thread
 * that owns the result).
 */
#ifndef CANTEEN_PG_H
#define CANTEEN_PG_H

#include "../canteen.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cn_pg_pool cn_pg_pool;
typedef struct cn_pg_conn cn_pg_conn;
typedef struct cn_pg_result cn_pg_result;

/*
 * Pool settings. Zero means the default, asyncpg's where asyncpg has the
 * knob (asyncpg's name in brackets):
 *
 *   conninfo              required  a libpq connection string or URI
 *                                   ("host=/tmp/pg dbname=app",
 *                                   "postgresql://app@db.internal/app");
 *                                   copied. A host name is resolved with
 *                                   uv_getaddrinfo before each connect;
 *                                   a list of hosts needs hostaddr
 *   name                  "default" the pool's label in /metrics (copied)
 *   min_size              10        [min_size] connections kept open, even
 *                                   when idle; opened when the loop runs
 *   max_size              10        [max_size] connections at most
 *   max_queries           50000     [max_queries] a connection that has run
 *                                   this many queries is replaced
 *   max_inactive_ms       300000    [max_inactive_connection_lifetime] an
 *                                   idle connection is closed after this,
 *                                   but never below min_size; < 0: never
 *   acquire_timeout_ms    0         [acquire(timeout=)] longest wait of
 *                                   cn_pg_acquire for a connection,
 *                                   CN_ETIMEDOUT; 0: no limit (asyncpg's
 *                                   None)
 *   command_timeout_ms    0         [command_timeout] longest a query may
 *                                   take, from the call to its result (a
 *                                   one-shot query's wait for a connection
 *                                   included), CN_ETIMEDOUT; a query already
 *                                   sent is cancelled on the server; 0: none
 *   connect_timeout_ms    60000     [timeout] longest a connection attempt
 *                                   may take (DNS, TCP, authentication)
 *   statement_cache_size  100       [statement_cache_size] prepared
 *                                   statements kept per connection (LRU);
 *                                   < 0: none, every query is parsed anew
 *   max_cacheable_statement_size 15360 [max_cacheable_statement_size]
 *                                   longer SQL is never prepared
 *   pipeline_depth        16        one-shot queries in flight on one
 *                                   connection at once; 1: no pipelining
 *                                   (each query waits for the one before).
 *                                   A batch goes whole to a connection with
 *                                   room for one more, so it may pass it
 *   reconnect_min_ms      100       first back-off after a failed connect,
 *                                   doubled after each further failure...
 *   reconnect_max_ms      5000      ...up to this
 *   reset_on_release      1         run asyncpg's reset on release; < 0:
 *                                   only the rollback of an open transaction
 *   batch_chunk           64        queries of one cn_pg_query_all per Sync
 *                                   (one implicit transaction, one write);
 *                                   a longer batch goes out in chunks
 */
typedef struct cn_pg_config {
    const char *conninfo;
    const char *name;
    unsigned min_size;
    unsigned max_size;
    unsigned max_queries;
    int64_t max_inactive_ms;
    int64_t acquire_timeout_ms;
    int64_t command_timeout_ms;
    int64_t connect_timeout_ms;
    int statement_cache_size;
    size_t max_cacheable_statement_size;
    unsigned pipeline_depth;
    int64_t reconnect_min_ms;
    int64_t reconnect_max_ms;
    int reset_on_release;
    unsigned batch_chunk;
    void *reserved[4]; /* room for new options: leave zero */
} cn_pg_config;

/*
 * Create a pool on `app`'s loop (asyncpg.create_pool). cfg is copied.
 * The usual place is the app's startup hook (cn_app_lifespan), on the
 * loop; before cn_app_run works too (the connections open once the loop
 * runs). min_size connections are opened in the background, so this never
 * waits: a startup hook that wants the database reachable before serving
 * awaits a first query or acquire. The pool adds its figures to the app's metrics.
 * The caller owns *out and closes it with cn_pg_pool_close. Errors:
 * CN_EINVAL (app, cfg or conninfo NULL, a conninfo libpq cannot parse, a
 * host list without hostaddr, min_size > max_size, the name of another
 * open pool of the app: /metrics labels the series by it), CN_ENOMEM.
 */
CN_EXTERN int cn_pg_pool_new(cn_app *app, const cn_pg_config *cfg, cn_pg_pool **out);

/*
 * Close the pool: fail whatever still waits for it (CN_ECANCELED), close
 * every connection (acquired ones too: their later queries fail), remove
 * its metrics. Its memory goes when the loop has run the close callbacks
 * (cn_app_free runs them). Call it on the loop thread -- the app's
 * shutdown hook, after the last request, is the usual place -- or after
 * cn_app_run returned and before cn_app_free; release acquired connections
 * first.
 * NULL is allowed; the pool must not be used afterwards.
 */
CN_EXTERN void cn_pg_pool_close(cn_pg_pool *pool);

/*
 * The effective settings (defaults filled in). Owned by the pool.
 */
CN_EXTERN const cn_pg_config *cn_pg_pool_config(const cn_pg_pool *pool);

/*
 * Run one parameterised query on any connection of the pool and park until
 * its result is in (asyncpg's pool.fetch / pool.execute: acquire, run,
 * release in one call). `params` are nparams NUL-terminated texts in
 * PostgreSQL's text format ($1, $2...; a NULL entry is SQL NULL); the types
 * are inferred by the server. sql and params are read while the call runs.
 *
 * On 0, *out is the result. On CN_EDB the server (or libpq, for a lost
 * connection) refused the query and *out carries the SQLSTATE and message
 * (cn_pg_result_sqlstate / cn_pg_result_message). Both kinds of result
 * belong to the current request and are freed with it (cn_pg_result_free
 * may free one earlier); in a coroutine that serves no request (a task of
 * the app's startup, say) the caller frees it with cn_pg_result_free.
 * On any other error *out is NULL.
 *
 * Errors: CN_EDB, CN_ETIMEDOUT (command_timeout_ms passed: a query
 * already sent is cancelled on the server), CN_ECANCELED (the request was cancelled: a running
 * query is cancelled on the server), CN_EUNAVAILABLE (no connection can be made now; a handler that
 * returns it answers 503), CN_ENOTCORO, CN_EINVAL (pool or sql NULL, nparams < 0, params NULL with
 * nparams > 0), CN_ESTATE (the pool is closing), CN_ENOMEM.
 */
CN_EXTERN int cn_pg_query(cn_pg_pool *pool, const char *sql, int nparams, const char *const *params,
                          cn_pg_result **out);

/*
 * One query of a batch (cn_pg_query_all): what cn_pg_query takes. The
 * strings are read while the call runs.
 */
typedef struct cn_pg_batch_query {
    const char *sql;
    int nparams;
    const char *const *params;
} cn_pg_batch_query;

/* cn_pg_query_all's flags. */
enum {
    /* All or nothing: the whole batch is one implicit transaction (one
     * Sync, whatever batch_chunk says); if a query fails, none of the
     * batch's writes is committed, and it is not sent again. */
    CN_PG_BATCH_ATOMIC = 1u << 0,
};

/* The most queries one cn_pg_query_all takes (CN_EINVAL above). */
#define CN_PG_BATCH_MAX 10000

/*
 * Run n parameterised queries on one connection of the pool, pipelined,
 * and park once until all their results are in (pgx's SendBatch; what n
 * cn_pg_query calls in n tasks would do, for one park instead of n). Each
 * query goes through the connection's statement cache (prepared once per
 * connection) as cn_pg_query's does; the batch goes to one connection
 * whole (queries sent again after an error, or not yet sent when their
 * connection was lost, may go to another) and never shares a Sync with
 * other tasks' queries. out[] has
 * room for n results: out[i] is qs[i]'s, readable with the result getters,
 * owned as cn_pg_query's result is (the request's; outside a request each
 * is the caller's to cn_pg_result_free).
 *
 * Returns 0 when every query succeeded; CN_EDB when at least one failed:
 * then every out[i] is set, a failed one carrying its own SQLSTATE and
 * message (cn_pg_result_sqlstate), the others their rows. On any other
 * error every out[i] is NULL (results that came in are freed).
 *
 * What an error does to the others. The batch goes out in chunks of at
 * most batch_chunk queries, each followed by one Sync: PostgreSQL runs a
 * chunk as one implicit transaction, and after an error in it skips the
 * chunk's later queries (libpq: PGRES_PIPELINE_ABORTED) and rolls back
 * the earlier ones. Canteen then gives the failed query its error and
 * sends the chunk's other queries again, each on its own this time (a
 * Sync after each: one more round trip, and no error can take another
 * query with it), so that every query ends with its own outcome, as if
 * run alone. With CN_PG_BATCH_ATOMIC the batch is one transaction instead:
 * the failed query gets its error and every other one SQLSTATE 25P02
 * ("skipped: another query of its batch failed"), nothing of it committed.
 * Either way a query is sent again only when the server reported its
 * transaction rolled back, so a write is never committed twice -- except
 * for what PostgreSQL never rolls back (nextval() of a sequence, say:
 * a re-sent INSERT uses a new serial). Chunks before and after a failed
 * chunk are not affected (they committed or will commit on their own).
 *
 * A lost connection: queries not yet sent go to another connection;
 * queries already sent fail with SQLSTATE 08006 and are never sent again
 * by Canteen -- the ones of a chunk whose Sync had not come back may or
 * may not have committed (as with asyncpg or any driver), so a caller
 * that retries a batch after 08006 may run its writes twice unless they
 * are idempotent or guarded (a unique key, a version column).
 *
 * Not for session or transaction state (BEGIN, COMMIT, SET, LISTEN,
 * advisory locks): run those on an acquired connection. command_timeout_ms
 * bounds the whole batch, from the call to its last result: CN_ETIMEDOUT,
 * and the query running on the server is cancelled there, as for a
 * single query. A cancelled or timed-out batch already on the wire stays
 * its connection's, which reads (and drops) the rest of its results before
 * it serves anyone else, or closes. The pool closing while the batch
 * waits: CN_ECANCELED. n == 0: 0 at once (out may then be NULL), no park.
 *
 * Errors: CN_EDB (above), CN_ETIMEDOUT, CN_ECANCELED, CN_EUNAVAILABLE,
 * CN_ENOTCORO, CN_EINVAL (pool, qs or out NULL with n > 0, a NULL sql,
 * nparams < 0, params NULL with nparams > 0, n > CN_PG_BATCH_MAX, an
 * unknown flag), CN_ESTATE (the pool is closing), CN_ENOMEM.
 */
CN_EXTERN int cn_pg_query_all(cn_pg_pool *pool, const cn_pg_batch_query *qs, size_t n,
                              unsigned flags, cn_pg_result **out);

/*
 * Borrow a connection for the caller's sole use (asyncpg's
 * pool.acquire()): for transactions, session settings, anything that needs
 * one connection for several queries. Parks until one is free or can be
 * opened, for at most timeout_ms (0: the pool's acquire_timeout_ms;
 * < 0: no limit). Give it back with cn_pg_release, also on error paths
 * (a connection acquired in a request and not released when the request
 * ends is released then, with a warning naming the route).
 * Errors: CN_ETIMEDOUT, CN_ECANCELED, CN_EUNAVAILABLE, CN_ENOTCORO,
 * CN_EINVAL, CN_ESTATE, CN_ENOMEM.
 */
CN_EXTERN int cn_pg_acquire(cn_pg_pool *pool, int64_t timeout_ms, cn_pg_conn **out);

/*
 * Run a query on an acquired connection: as cn_pg_query, on that
 * connection only, each query its own batch. Queries from several tasks
 * on one connection run in the order they were made. Errors: those of
 * cn_pg_query; CN_EDB with SQLSTATE 08006 when the connection was lost
 * (every later query on it fails the same way: release it);
 * CN_ESTATE after cn_pg_release.
 */
CN_EXTERN int cn_pg_conn_query(cn_pg_conn *conn, const char *sql, int nparams,
                               const char *const *params, cn_pg_result **out);

/*
 * Give an acquired connection back. Never waits: the rollback and reset run
 * on the loop and the connection is offered to the next borrower when they
 * are done. A lost connection is replaced. The handle must not be used
 * afterwards (a second release of a handle acquired in a request is
 * ignored). NULL is allowed. Not a coroutine call: fine in clean-up code of
 * a cancelled request.
 */
CN_EXTERN void cn_pg_release(cn_pg_conn *conn);

/* The pool's figures (and /metrics' canteen_pg_* series, labelled by the
 * pool's name). */
typedef struct cn_pg_stats {
    unsigned size;       /* connections open or opening */
    unsigned connecting; /* of those, still opening */
    unsigned idle;       /* open, not borrowed, no query in flight */
    unsigned in_use;     /* borrowed, or running one-shot queries */
    unsigned waiters;    /* acquires and one-shot queries waiting for one */
    uint64_t acquires;   /* connections handed to cn_pg_acquire */
    uint64_t acquire_timeouts;
    double acquire_wait_ms_sum; /* time cn_pg_acquire waited, all added up */
    double acquire_wait_ms_max;
    uint64_t queries;    /* queries answered (either kind), errors included */
    uint64_t errors;     /* of those, CN_EDB */
    uint64_t timeouts;   /* queries that hit command_timeout_ms */
    uint64_t cancels;    /* cancel requests sent to the server */
    uint64_t retries;    /* one-shot queries sent again after their batch
                          * was rolled back by another query's error */
    double query_ms_sum; /* from the call to the result, all added up */
    double query_ms_max;
    uint64_t batches;  /* Syncs sent: a batch costs one write */
    uint64_t connects; /* connections opened */
    uint64_t connect_failures;
    uint64_t lost;          /* open connections that broke (and were replaced) */
    uint64_t expired;       /* idle connections closed by max_inactive_ms */
    uint64_t recycled;      /* closed after max_queries */
    uint64_t resets_failed; /* closed because the reset on release failed */
    uint64_t prepares;      /* statements prepared (cache misses) */
    uint64_t reserved[8];   /* room for new figures (0 for now) */
} cn_pg_stats;

/* Copy the pool's figures into *out. Loop thread (exact) or any thread
 * (approximate). */
CN_EXTERN void cn_pg_pool_stats(const cn_pg_pool *pool, cn_pg_stats *out);

/*
 * The text of the last connection failure ("could not connect: ..."), or
 * "" if there was none. Owned by the pool, valid until the next failure;
 * loop thread.
 */
CN_EXTERN const char *cn_pg_pool_last_error(const cn_pg_pool *pool);

/* ------------------------------------------------------------------------ */
/* Results                                                                   */
/* ------------------------------------------------------------------------ */

/*
 * Free a result before its request ends (optional in a request, required
 * outside one). Pointers read from it die with it. NULL is allowed.
 */
CN_EXTERN void cn_pg_result_free(cn_pg_result *r);

/* Rows and columns; 0 for a command without rows or an error result. */
CN_EXTERN int cn_pg_result_rows(const cn_pg_result *r);
CN_EXTERN int cn_pg_result_cols(const cn_pg_result *r);

/* The rows a command touched (INSERT/UPDATE/DELETE...), else 0. */
CN_EXTERN int64_t cn_pg_result_affected(const cn_pg_result *r);

/* A column's name (NULL if out of range), and the index of a named column
 * (CN_ENOENT if there is none). */
CN_EXTERN const char *cn_pg_result_colname(const cn_pg_result *r, int col);
CN_EXTERN int cn_pg_result_col(const cn_pg_result *r, const char *name);

/* 1 if the value is SQL NULL (or row/col out of range), else 0. */
CN_EXTERN int cn_pg_result_isnull(const cn_pg_result *r, int row, int col);

/* The value in PostgreSQL's text form, NUL-terminated, owned by the result;
 * NULL for SQL NULL or out of range. */
CN_EXTERN const char *cn_pg_result_text(const cn_pg_result *r, int row, int col);

/*
 * Typed values into *out. Errors: CN_ENOENT (SQL NULL, or row/col out of
 * range; *out untouched), CN_EINVAL (the text is not of that type),
 * CN_ERANGE (out of range). bool reads t/f (PostgreSQL's form) and also
 * true/false/1/0; double reads NaN and +-Infinity.
 */
CN_EXTERN int cn_pg_result_int64(const cn_pg_result *r, int row, int col, int64_t *out);
CN_EXTERN int cn_pg_result_double(const cn_pg_result *r, int row, int col, double *out);
CN_EXTERN int cn_pg_result_bool(const cn_pg_result *r, int row, int col, int *out);

/*
 * The rows as a JSON array of objects keyed by column name: integers and
 * floats become numbers (numeric too, as a double), booleans booleans,
 * json/jsonb parsed JSON, NULL null, everything else a string. The caller
 * owns the tree (cn_res_json takes it). NULL when out of memory.
 */
CN_EXTERN cJSON *cn_pg_result_json(const cn_pg_result *r);

/*
 * For a CN_EDB result: the five-character SQLSTATE ("42601" syntax error,
 * "57014" cancelled, "57P01" terminated by an administrator, "08006" the
 * connection was lost...), the server's primary message, and its detail
 * (or NULL). For a success: NULL, NULL, NULL. Owned by the result.
 */
CN_EXTERN const char *cn_pg_result_sqlstate(const cn_pg_result *r);
CN_EXTERN const char *cn_pg_result_message(const cn_pg_result *r);
CN_EXTERN const char *cn_pg_result_detail(const cn_pg_result *r);

#ifdef __cplusplus
}
#endif

#endif /* CANTEEN_PG_H */
