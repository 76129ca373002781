/*
 * store_pg.c -- the demo's user store in PostgreSQL (canteen-demo
 * --database URL, or DATABASE_URL): the same users as the SQLite store,
 * read through libcanteen-pg's pool on the loop instead of through
 * cn_to_thread. Built when libcanteen-pg is (DEMO_HAVE_PG).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <canteen/pg.h>

#include "demo.h"
#include "store.h"

static const char *db_url; /* --database: the pool opens at startup */
static cn_pg_pool *db;
static bool schema_ready;

/* The lifespan: the pool opens before the app accepts anyone and closes
 * after the last request (FastAPI + asyncpg's create_pool / pool.close()
 * in the lifespan). */
static int open_db(cn_app *app, void *arg)
{
    /* small: the demo is one process on a laptop (HikariCP's cores x 2) */
    cn_pg_config cfg = {.conninfo = arg,
                        .name = "users",
                        .min_size = 2,
                        .max_size = 8,
                        .command_timeout_ms = 30000};

    return cn_pg_pool_new(app, &cfg, &db);
}

static int close_db(cn_app *app, void *arg)
{
    (void)app;
    (void)arg;
    cn_pg_pool_close(db);
    db = NULL;
    schema_ready = false;
    return 0;
}

int store_pg_open(cn_app *app, const char *url)
{
    int rc = cn_app_lifespan(app, open_db, close_db, (void *)(uintptr_t)url);

    if (rc == 0)
        db_url = url;
    return rc;
}

bool store_pg_enabled(void)
{
    return db_url != NULL;
}

/*
 * The table and its two users, once per process: one transaction on one
 * acquired connection, serialised by an advisory lock so that concurrent
 * first requests (and several demo processes) do not race to create it.
 */
static int ensure_schema(void)
{
    static const char *const steps[] = {
        "BEGIN",
        "SELECT pg_advisory_xact_lock(1129531186)",
        "CREATE TABLE IF NOT EXISTS users (id integer PRIMARY KEY, name text NOT NULL,"
        " email text NOT NULL)",
        "INSERT INTO users (id, name, email) VALUES (1, 'Alice', 'alice@example.com'),"
        " (2, 'Bob', 'bob@example.com') ON CONFLICT (id) DO NOTHING",
        "COMMIT",
    };
    cn_pg_conn *conn;
    cn_pg_result *r;
    int rc;

    if (schema_ready)
        return 0;
    rc = cn_pg_acquire(db, 0, &conn);
    if (rc < 0)
        return rc;
    for (size_t i = 0; rc == 0 && i < sizeof steps / sizeof steps[0]; i++)
        rc = cn_pg_conn_query(conn, steps[i], 0, NULL, &r);
    cn_pg_release(conn); /* rolled back there if a step failed */
    if (rc == 0)
        schema_ready = true;
    return rc;
}

int store_pg_list_users(cJSON **out)
{
    cn_pg_result *r;
    int rc;

    *out = NULL;
    rc = ensure_schema();
    if (rc < 0)
        return rc;
    rc = cn_pg_query(db, "SELECT id, name, email FROM users ORDER BY id", 0, NULL, &r);
    if (rc < 0)
        return rc;
    *out = cn_pg_result_json(r);
    return *out ? 0 : CN_ENOMEM;
}

/* GET /db/sleep/{ms:int}?n=N: N queries of SELECT pg_sleep(ms / 1000)
 * gathered; the total is one sleep, not N */
typedef struct sleeper {
    const char *secs;
    int rc;
    uint64_t ms;
} sleeper;

static int sleep_one(void *arg)
{
    sleeper *s = arg;
    cn_pg_result *r;
    uint64_t t0 = demo_now_ms();

    s->rc = cn_pg_query(db, "SELECT pg_sleep($1::float8)", 1, &s->secs, &r);
    s->ms = demo_now_ms() - t0;
    return s->rc;
}

static int db_sleep(cn_req *req, cn_res *res)
{
    int64_t ms = 0, n = 3;
    sleeper *s;
    cn_task **t;
    cJSON *o, *each;
    uint64_t t0 = demo_now_ms();
    int rc;

    cn_req_param_int(req, "ms", &ms);
    cn_req_query_int(req, "n", &n);
    if (ms < 0 || ms > 10000 || n < 1 || n > 100)
        return cn_res_error(res, 422, "ms must be 0..10000 and n 1..100");
    s = cn_req_alloc(req, (size_t)n * sizeof(*s));
    t = cn_req_alloc(req, (size_t)n * sizeof(*t));
    if (s == NULL || t == NULL)
        return CN_ENOMEM;
    for (int64_t i = 0; i < n; i++) {
        s[i] = (sleeper){.secs = cn_req_sprintf(req, "%.3f", (double)ms / 1000.0)};
        rc = cn_spawn(sleep_one, &s[i], &t[i]);
        if (rc < 0) {
            cn_gather(t, (size_t)i, NULL);
            return rc;
        }
    }
    rc = cn_gather(t, (size_t)n, NULL); /* all in flight at once */
    if (rc < 0)
        return rc;
    o = cJSON_CreateObject();
    each = cJSON_AddArrayToObject(o, "each_ms");
    for (int64_t i = 0; i < n; i++)
        cJSON_AddItemToArray(each, cJSON_CreateNumber((double)s[i].ms));
    cJSON_AddNumberToObject(o, "total_ms", (double)(demo_now_ms() - t0));
    return cn_res_json(res, 200, o);
}

int store_pg_register(cn_app *app)
{
    return cn_app_route(app, "GET /db/sleep/{ms:int}", db_sleep, NULL);
}
