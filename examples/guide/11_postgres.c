/*
 * 11_postgres.c -- chapter 11: a database the async way, asyncpg's pool in
 * C. Needs a PostgreSQL server: DATABASE_URL names it (a libpq connection
 * string or URI). The pool opens in the app's startup, which also makes a
 * table with two accounts, and closes in its shutdown.
 *
 *   GET  /accounts               every account (pool.fetch)
 *   GET  /accounts/{id:int}      one account, 404 if none (pool.fetchrow)
 *   POST /transfer?from=1&to=2&amount=10   a transaction on one acquired
 *                                connection (async with pool.acquire() as
 *                                con: async with con.transaction(): ...)
 *   GET  /slow/{ms:int}          pg_sleep(ms) under a 500 ms command
 *                                timeout: 504 past it
 *   GET  /together?n=5&ms=200    n pg_sleep queries gathered: ~ms in all
 *   GET  /balances?ids=1,2,9     one query per id, sent as one batch
 *   GET  /pool                   the pool's figures
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <canteen/pg.h>

static cn_pg_pool *db;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The pool's errors as FastAPI would show them. */
static int db_error(cn_res *res, int rc, const cn_pg_result *r)
{
    if (rc == CN_ETIMEDOUT)
        return cn_res_error(res, 504, "The database took too long");
    if (rc == CN_EDB)
        return cn_res_error(res, 500, cn_pg_result_message(r));
    return rc; /* CN_EUNAVAILABLE becomes a 503, CN_ECANCELED nothing */
}

/* GET /accounts */
static int accounts(cn_req *req, cn_res *res)
{
    cn_pg_result *r;
    int rc = cn_pg_query(db, "SELECT id, owner, balance FROM accounts ORDER BY id", 0, NULL, &r);

    (void)req;
    if (rc < 0)
        return db_error(res, rc, r);
    return cn_res_json(res, 200, cn_pg_result_json(r)); /* r is freed with the request */
}

/* GET /accounts/{id:int} */
static int account(cn_req *req, cn_res *res)
{
    const char *id = cn_req_param(req, "id");
    cn_pg_result *r;
    cJSON *rows, *row;
    int rc = cn_pg_query(db, "SELECT id, owner, balance FROM accounts WHERE id = $1", 1, &id, &r);

    if (rc < 0)
        return db_error(res, rc, r);
    if (cn_pg_result_rows(r) == 0)
        return cn_res_error(res, 404, "Account not found");
    rows = cn_pg_result_json(r); /* [{"id":2,...}]: the caller owns it */
    row = cJSON_DetachItemFromArray(rows, 0);
    cJSON_Delete(rows);
    return cn_res_json(res, 200, row);
}

/* POST /transfer?from=1&to=2&amount=10 */
static int transfer(cn_req *req, cn_res *res)
{
    const char *debit[2] = {cn_req_query(req, "amount"), cn_req_query(req, "from")};
    const char *credit[2] = {debit[0], cn_req_query(req, "to")};
    cn_pg_conn *conn;
    cn_pg_result *r = NULL;
    int rc;

    if (!debit[0] || !debit[1] || !credit[1])
        return cn_res_error(res, 422, "from, to and amount are required");
    rc = cn_pg_acquire(db, 0, &conn); /* this connection is ours until released */
    if (rc < 0)
        return db_error(res, rc, NULL);
    rc = cn_pg_conn_query(conn, "BEGIN", 0, NULL, &r);
    if (rc == 0)
        rc = cn_pg_conn_query(conn,
                              "UPDATE accounts SET balance = balance - $1 WHERE id = $2"
                              " AND balance >= $1",
                              2, debit, &r);
    if (rc == 0 && cn_pg_result_affected(r) != 1) {
        cn_pg_release(conn); /* the open transaction is rolled back on release */
        return cn_res_error(res, 409, "No such account, or not enough money");
    }
    if (rc == 0)
        rc = cn_pg_conn_query(conn, "UPDATE accounts SET balance = balance + $1 WHERE id = $2", 2,
                              credit, &r);
    if (rc == 0)
        rc = cn_pg_conn_query(conn, "COMMIT", 0, NULL, &r);
    cn_pg_release(conn);
    if (rc < 0)
        return db_error(res, rc, r);
    return cn_res_json_str(res, 200, "{\"transferred\":true}");
}

/* GET /slow/{ms:int}: the pool was made with a 500 ms command timeout */
static int slow(cn_req *req, cn_res *res)
{
    const char *secs = cn_req_sprintf(req, "%.3f", atof(cn_req_param(req, "ms")) / 1000.0);
    cn_pg_result *r;
    int rc = cn_pg_query(db, "SELECT pg_sleep($1::float8)", 1, &secs, &r);

    if (rc < 0)
        return db_error(res, rc, r); /* the query is cancelled on the server */
    return cn_res_json_str(res, 200, "{\"slept\":true}");
}

/* GET /together?n=5&ms=200 */
typedef struct sleeper {
    const char *secs;
    int rc;
} sleeper;

static int sleep_task(void *arg)
{
    sleeper *s = arg;
    cn_pg_result *r;

    s->rc = cn_pg_query(db, "SELECT pg_sleep($1::float8)", 1, &s->secs, &r);
    return s->rc;
}

static int together(cn_req *req, cn_res *res)
{
    int64_t n = 5, ms = 200;
    sleeper s[16];
    cn_task *t[16];
    double t0 = now_ms();
    cJSON *o;
    int rc;

    cn_req_query_int(req, "n", &n);
    cn_req_query_int(req, "ms", &ms);
    if (n < 1 || n > 16 || ms < 0 || ms > 400)
        return cn_res_error(res, 422, "n must be 1..16 and ms 0..400");
    for (int64_t i = 0; i < n; i++) {
        s[i].secs = cn_req_sprintf(req, "%.3f", (double)ms / 1000.0);
        cn_spawn(sleep_task, &s[i], &t[i]);
    }
    rc = cn_gather(t, (size_t)n, NULL); /* asyncio.gather(*(pool.fetch(...) ...)) */
    if (rc < 0)
        return rc;
    o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "queries", (double)n);
    cJSON_AddNumberToObject(o, "total_ms", (double)(int64_t)(now_ms() - t0));
    return cn_res_json(res, 200, o);
}

/* GET /balances?ids=1,2,9: a query per id, all sent together on one
 * connection in one write, and one wait for all of them (pgx's SendBatch;
 * with asyncpg, a loop of awaits or a gather). Each query has its own
 * outcome: a bad id fails alone. */
static int balances(cn_req *req, cn_res *res)
{
    const char *list = cn_req_query(req, "ids");
    cn_pg_batch_query qs[16];
    cn_pg_result *out[16];
    const char *ids[16];
    char *copy, *save = NULL, *tok;
    size_t n = 0;
    cJSON *arr;
    int rc;

    copy = list ? cn_req_strdup(req, list) : NULL;
    for (tok = copy ? strtok_r(copy, ",", &save) : NULL; tok && n < 16;
         tok = strtok_r(NULL, ",", &save)) {
        ids[n] = tok;
        qs[n] = (cn_pg_batch_query){"SELECT balance FROM accounts WHERE id = $1::int", 1, &ids[n]};
        n++;
    }
    if (n == 0)
        return cn_res_error(res, 422, "ids: 1 to 16 ids, comma-separated");
    rc = cn_pg_query_all(db, qs, n, 0, out); /* one park for all n */
    if (rc < 0 && rc != CN_EDB)
        return db_error(res, rc, NULL);
    arr = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(arr, o);
        cJSON_AddStringToObject(o, "id", ids[i]);
        if (cn_pg_result_sqlstate(out[i])) /* CN_EDB: this one failed */
            cJSON_AddStringToObject(o, "error", cn_pg_result_message(out[i]));
        else if (cn_pg_result_rows(out[i]) == 0)
            cJSON_AddNullToObject(o, "balance");
        else
            cJSON_AddRawToObject(o, "balance", cn_pg_result_text(out[i], 0, 0));
    }
    return cn_res_json(res, 200, arr);
}

/* GET /pool */
static int pool(cn_req *req, cn_res *res)
{
    cn_pg_stats st;
    cJSON *o = cJSON_CreateObject();

    (void)req;
    cn_pg_pool_stats(db, &st);
    cJSON_AddNumberToObject(o, "size", st.size);
    cJSON_AddNumberToObject(o, "idle", st.idle);
    cJSON_AddNumberToObject(o, "in_use", st.in_use);
    cJSON_AddNumberToObject(o, "queries", (double)st.queries);
    cJSON_AddNumberToObject(o, "timeouts", (double)st.timeouts);
    cJSON_AddNumberToObject(o, "cancels", (double)st.cancels);
    return cn_res_json(res, 200, o);
}

/*
 * The lifespan, as FastAPI + asyncpg write it:
 *
 *     @asynccontextmanager
 *     async def lifespan(app):
 *         app.state.pool = await asyncpg.create_pool(dsn, min_size=2, max_size=10,
 *                                                    command_timeout=0.5)
 *         async with app.state.pool.acquire() as con:
 *             await con.execute(SCHEMA)
 *         yield
 *         await app.state.pool.close()
 *
 * Startup runs before the app accepts a connection and may await: if the
 * database cannot be reached, cn_app_run returns the error instead of
 * serving.
 */
static int startup(cn_app *app, void *arg)
{
    static const char *const schema[] = {
        "BEGIN",
        "CREATE TABLE IF NOT EXISTS accounts (id int PRIMARY KEY, owner text NOT NULL,"
        " balance bigint NOT NULL CHECK (balance >= 0))",
        "INSERT INTO accounts VALUES (1, 'alice', 100), (2, 'bob', 50)"
        " ON CONFLICT (id) DO UPDATE SET balance = EXCLUDED.balance",
        "COMMIT",
    };
    cn_pg_config cfg = {.conninfo = arg, .min_size = 2, .max_size = 10, .command_timeout_ms = 500};
    cn_pg_conn *conn;
    cn_pg_result *r;
    int rc = cn_pg_pool_new(app, &cfg, &db);

    if (rc == 0)
        rc = cn_pg_acquire(db, 0, &conn); /* waits for the first connection */
    if (rc < 0)
        return rc;
    for (size_t i = 0; rc == 0 && i < sizeof schema / sizeof schema[0]; i++) {
        rc = cn_pg_conn_query(conn, schema[i], 0, NULL, &r);
        if (rc == CN_EDB)
            fprintf(stderr, "11_postgres: %s\n", cn_pg_result_message(r));
    }
    cn_pg_release(conn); /* a transaction left open by a failed step is rolled back */
    return rc;
}

static int shutdown(cn_app *app, void *arg)
{
    (void)app;
    (void)arg;
    cn_pg_pool_close(db); /* after the last request */
    return 0;
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 8000;
    const char *url = getenv("DATABASE_URL");
    cn_config cfg = {.handle_signals = 1};
    cn_app *app;
    int rc;

    if (url == NULL) {
        fprintf(stderr, "11_postgres: set DATABASE_URL (e.g. postgresql://localhost/postgres)\n");
        return 2;
    }
    app = cn_app_new(&cfg);
    if (app == NULL)
        return 1;
    rc = cn_app_lifespan(app, startup, shutdown, (void *)(uintptr_t)url);
    if (rc == 0)
        rc = cn_app_route(app, "GET /accounts", accounts, NULL);
    if (rc == 0)
        rc = cn_app_route(app, "GET /accounts/{id:int}", account, NULL);
    if (rc == 0)
        rc = cn_app_route(app, "POST /transfer", transfer, NULL);
    if (rc == 0)
        rc = cn_app_route(app, "GET /slow/{ms:int}", slow, NULL);
    if (rc == 0)
        rc = cn_app_route(app, "GET /together", together, NULL);
    if (rc == 0)
        rc = cn_app_route(app, "GET /balances", balances, NULL);
    if (rc == 0)
        rc = cn_app_route(app, "GET /pool", pool, NULL);
    if (rc == 0)
        rc = cn_app_listen(app, "127.0.0.1", port);
    if (rc == 0) {
        fprintf(stderr, "serving on http://127.0.0.1:%d\n", cn_app_port(app));
        rc = cn_app_run(app);
    }
    if (rc < 0)
        fprintf(stderr, "11_postgres: %s\n", cn_strerror(rc));
    cn_app_free(app);
    return rc < 0;
}
