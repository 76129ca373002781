/*
 * test_pg.c -- libcanteen-pg against a real PostgreSQL (started by
 * run_pg_test.sh, which passes CANTEEN_PG_CONNINFO): the figures and
 * behaviours issue 11 asks for, over real HTTP requests to a real app.
 *
 * Each test starts an app with a pool of its own settings; routes answer
 * with JSON of what their queries returned. Waits are bounded polls of
 * observable state (pg_stat_activity, cn_pg_pool_stats), never sleeps.
 */

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <canteen/pg.h>

#include "app.h" /* cn__app_free_checked */
#include "demo.h"
#include "gate.h"
#include "harness.h"
#include "prom_text.h"
#include "send_counter.h"
#include "upstream.h"

static const char *conninfo(void)
{
    const char *c = getenv("CANTEEN_PG_CONNINFO");
    return c ? c : "host=/nonexistent";
}

/* ------------------------------------------------------------------------ */
/* An app with a pool                                                        */
/* ------------------------------------------------------------------------ */

static cn_pg_pool *g_pool;
static cn_pg_config g_cfg;
static bool g_second; /* routes() opens a second pool, "second" */
static cn_pg_pool *g_pool2;
static int g_same_name_rc; /* a third pool named like the first */

static cJSON *obj(void)
{
    return cJSON_CreateObject();
}

static void num(cJSON *o, const char *k, double v)
{
    cJSON_AddNumberToObject(o, k, v);
}

/* rc, and for an error its SQLSTATE and message, into o */
static void outcome(cJSON *o, int rc, const cn_pg_result *r)
{
    num(o, "rc", rc);
    if (rc == CN_EDB) {
        cJSON_AddStringToObject(o, "sqlstate", cn_pg_result_sqlstate(r));
        cJSON_AddStringToObject(o, "message", cn_pg_result_message(r));
    }
}

/* GET /t/pg/q?sql=...: one query, its outcome and first value */
static int rt_q(cn_req *req, cn_res *res)
{
    const char *sql = cn_req_query(req, "sql");
    cn_pg_result *r;
    cJSON *o = obj();
    int rc = cn_pg_query(g_pool, sql ? sql : "SELECT 1", 0, NULL, &r);

    outcome(o, rc, r);
    if (rc == 0 && cn_pg_result_rows(r) > 0 && cn_pg_result_text(r, 0, 0))
        cJSON_AddStringToObject(o, "value", cn_pg_result_text(r, 0, 0));
    if (rc == CN_EUNAVAILABLE) {
        cJSON_Delete(o);
        return rc; /* the route's default answer: 503 */
    }
    return cn_res_json(res, 200, o);
}

/* ---- gathered queries ---- */

static int q1(cn_pg_conn *c, const char *sql, cJSON *o, const char *key);

/* GET /t/pg/locker: takes advisory lock 7 on a connection of its own
 * (g_locked says it has), and holds it until pg_stat_activity shows five
 * backends waiting for it (bounded: 4 s, within the client's wait) -- watched on that same
 * connection, so that no other connection of the pool is needed, which
 * might be one of the waiting ones (pipelined). Answers how many it saw. */
static atomic_int g_locked;

static int rt_locker(cn_req *req, cn_res *res)
{
    const char *like = "%AS gathered";
    cn_pg_conn *c;
    cn_pg_result *r;
    cJSON *o = obj();
    int64_t n = -1;
    int rc = cn_pg_acquire(g_pool, 5000, &c);

    (void)req;
    num(o, "acquire", rc);
    if (rc < 0)
        return cn_res_json(res, 200, o);
    q1(c, "SELECT pg_advisory_lock(7)", o, "lock");
    atomic_store(&g_locked, 1);
    for (int i = 0; i < 800 && n != 5; i++) {
        if (i > 0)
            cn_sleep(5);
        if (cn_pg_conn_query(c,
                             "SELECT count(*) FROM pg_stat_activity WHERE query LIKE $1"
                             " AND state = 'active' AND pid <> pg_backend_pid()",
                             1, &like, &r) == 0)
            cn_pg_result_int64(r, 0, 0, &n);
    }
    num(o, "waiting", (double)n);
    q1(c, "SELECT pg_advisory_unlock(7)", o, "unlock");
    cn_pg_release(c);
    return cn_res_json(res, 200, o);
}

/* One of five: waits for lock 7 (its SQL ends in "AS gathered", for
 * wait_running), or sleeps 0.2 s. */
static int sleep_task(void *arg)
{
    int *rc = arg;
    cn_pg_result *r;

    *rc = cn_pg_query(
        g_pool, *rc ? "SELECT pg_advisory_xact_lock_shared(7) AS gathered" : "SELECT pg_sleep(0.2)",
        0, NULL, &r);
    return *rc;
}

/* GET /t/pg/sleep5[?lock=1]: five queries gathered: pg_sleep(0.2), or
 * waits for advisory lock 7 */
static int rt_sleep5(cn_req *req, cn_res *res)
{
    int *rcs = cn_req_alloc(req, 5 * sizeof(int));
    cn_task *t[5];
    cJSON *o = obj();
    int64_t t0 = h_now_ms(), lock = 0;

    cn_req_query_int(req, "lock", &lock);
    for (int i = 0; i < 5; i++) {
        rcs[i] = lock != 0;
        cn_spawn(sleep_task, &rcs[i], &t[i]);
    }
    num(o, "rc", cn_gather(t, 5, NULL));
    num(o, "ms", (double)(h_now_ms() - t0));
    return cn_res_json(res, 200, o);
}

/* ---- acquire timeouts ---- */

typedef struct holder {
    int rc;
    int *gave_up; /* how many of the four came back without a connection */
} holder;

static int hold_task(void *arg)
{
    holder *h = arg;
    cn_pg_conn *c;

    h->rc = cn_pg_acquire(g_pool, 50, &c);
    if (h->rc < 0) {
        (*h->gave_up)++;
        return 0;
    }
    /* held until the others have given up (bounded: 10 s) */
    for (int i = 0; i < 2000 && *h->gave_up < 2; i++)
        cn_sleep(5);
    cn_pg_release(c);
    return 0;
}

/* GET /t/pg/acquire4 */
static int rt_acquire4(cn_req *req, cn_res *res)
{
    holder *h = cn_req_alloc(req, 4 * sizeof(*h));
    cn_task *t[4];
    cJSON *o = obj();
    int ok = 0, timeouts = 0, *gave_up = cn_req_alloc(req, sizeof(int));

    *gave_up = 0;
    for (int i = 0; i < 4; i++) {
        h[i] = (holder){.rc = H_NOT_YET, .gave_up = gave_up};
        cn_spawn(hold_task, &h[i], &t[i]);
    }
    cn_gather(t, 4, NULL);
    for (int i = 0; i < 4; i++) {
        ok += h[i].rc == 0;
        timeouts += h[i].rc == CN_ETIMEDOUT;
    }
    num(o, "ok", ok);
    num(o, "timeouts", timeouts);
    return cn_res_json(res, 200, o);
}

/* ---- a dirty release ---- */

static int q1(cn_pg_conn *c, const char *sql, cJSON *o, const char *key)
{
    cn_pg_result *r;
    int rc = cn_pg_conn_query(c, sql, 0, NULL, &r);
    cJSON *x = obj();

    outcome(x, rc, r);
    if (rc == 0 && cn_pg_result_rows(r) > 0 && cn_pg_result_text(r, 0, 0))
        cJSON_AddStringToObject(x, "value", cn_pg_result_text(r, 0, 0));
    cJSON_AddItemToObject(o, key, x);
    return rc;
}

/* GET /t/pg/dirty: with max_size 1 every acquire gets the same connection */
static int rt_dirty(cn_req *req, cn_res *res)
{
    cn_pg_conn *c;
    cJSON *o = obj();

    (void)req;
    /* left in an open transaction, with a session setting */
    num(o, "a1", cn_pg_acquire(g_pool, 2000, &c));
    q1(c, "SET application_name = 'dirty'", o, "set");
    q1(c, "BEGIN", o, "begin");
    q1(c, "SELECT pg_backend_pid()", o, "pid1");
    cn_pg_release(c);
    /* the next borrower: no transaction (SAVEPOINT needs one), no setting */
    num(o, "a2", cn_pg_acquire(g_pool, 2000, &c));
    q1(c, "SELECT pg_backend_pid()", o, "pid2");
    q1(c, "SAVEPOINT x", o, "savepoint");
    q1(c, "SHOW application_name", o, "appname");
    /* left in a failed transaction */
    q1(c, "BEGIN", o, "begin2");
    q1(c, "SELECT 1/0", o, "div0");
    cn_pg_release(c);
    num(o, "a3", cn_pg_acquire(g_pool, 2000, &c));
    q1(c, "SELECT 42", o, "after");
    cn_pg_release(c);
    cn_pg_release(c); /* a second release of a request's handle is ignored */
    return cn_res_json(res, 200, o);
}

/* ---- a batch with one bad query ---- */

typedef struct pq {
    int i;
    int rc;
    char sqlstate[6];
    int64_t v;
} pq;

static int piped_task(void *arg)
{
    pq *p = arg;
    char n[16];
    const char *param = n;
    cn_pg_result *r;

    snprintf(n, sizeof n, "%d", p->i);
    p->rc =
        cn_pg_query(g_pool, p->i == 5 ? "SELECT $1::int / 0" : "SELECT $1::int * 2", 1, &param, &r);
    if (p->rc == 0)
        cn_pg_result_int64(r, 0, 0, &p->v);
    else if (p->rc == CN_EDB)
        snprintf(p->sqlstate, sizeof p->sqlstate, "%s", cn_pg_result_sqlstate(r));
    return 0;
}

/* GET /t/pg/gather?n=N: N one-shot queries at once (query 5 fails) */
static int rt_gather(cn_req *req, cn_res *res)
{
    int64_t n = 10;
    pq *p;
    cn_task **t;
    cJSON *o = obj(), *errs = cJSON_CreateArray();
    int good = 0, bad_value = 0;
    long sends0 = pg_unix_sends();

    cn_req_query_int(req, "n", &n);
    p = cn_req_alloc(req, (size_t)n * sizeof(*p));
    t = cn_req_alloc(req, (size_t)n * sizeof(*t));
    for (int i = 0; i < n; i++) {
        p[i] = (pq){.i = i, .rc = H_NOT_YET};
        cn_spawn(piped_task, &p[i], &t[i]);
    }
    cn_gather(t, (size_t)n, NULL);
    for (int i = 0; i < n; i++) {
        if (p[i].rc == 0) {
            good++;
            bad_value += p[i].v != 2 * i;
        } else {
            cJSON *e = obj();
            num(e, "i", i);
            num(e, "rc", p[i].rc);
            cJSON_AddStringToObject(e, "sqlstate", p[i].sqlstate);
            cJSON_AddItemToArray(errs, e);
        }
    }
    num(o, "good", good);
    num(o, "bad_value", bad_value);
    num(o, "sends", (double)(pg_unix_sends() - sends0));
    cJSON_AddItemToObject(o, "errors", errs);
    return cn_res_json(res, 200, o);
}

/* ---- batches (cn_pg_query_all) ---- */

/* A batch's outcome into o: rc, the figures it cost, and per query its
 * rc-like state, value (or SQLSTATE). */
static void batch_outcome(cJSON *o, int rc, cn_pg_result **out, size_t n)
{
    cJSON *items = cJSON_CreateArray();

    num(o, "rc", rc);
    for (size_t i = 0; i < n && (rc == 0 || rc == CN_EDB); i++) {
        cJSON *x = obj();
        const char *state = cn_pg_result_sqlstate(out[i]);
        if (state) {
            cJSON_AddStringToObject(x, "sqlstate", state);
            cJSON_AddStringToObject(x, "message", cn_pg_result_message(out[i]));
        } else if (cn_pg_result_rows(out[i]) > 0 && cn_pg_result_text(out[i], 0, 0)) {
            cJSON_AddStringToObject(x, "value", cn_pg_result_text(out[i], 0, 0));
        }
        cJSON_AddItemToArray(items, x);
    }
    /* on any other error, no result at all */
    for (size_t i = 0; i < n && !(rc == 0 || rc == CN_EDB); i++)
        if (out[i] != NULL)
            num(o, "stray_result", (double)i);
    cJSON_AddItemToObject(o, "items", items);
}

/* GET /t/pg/all?n=N&bad=K&atomic=0|1&write=0|1: a batch of N queries, the
 * K-th of which divides by zero (K < 0: none); reads return 2i, writes
 * insert (i, 2i) into t_batch and return v. Answers the outcomes, the
 * unix send(2)s and Syncs the batch cost, the retries, and (writes) how
 * many rows are in t_batch afterwards. */
static int rt_all(cn_req *req, cn_res *res)
{
    int64_t n = 10, bad = -1, atomic = 0, write = 0;
    cn_pg_batch_query *qs;
    cn_pg_result **out, *r;
    char(*nums)[24];
    const char **params;
    cJSON *o = obj();
    cn_pg_stats st0, st1;
    long sends0;
    int rc;

    cn_req_query_int(req, "n", &n);
    cn_req_query_int(req, "bad", &bad);
    cn_req_query_int(req, "atomic", &atomic);
    cn_req_query_int(req, "write", &write);
    qs = cn_req_alloc(req, (size_t)n * sizeof(*qs) + 1);
    out = cn_req_alloc(req, (size_t)n * sizeof(*out) + 1);
    nums = cn_req_alloc(req, (size_t)n * sizeof(*nums) + 1);
    params = cn_req_alloc(req, (size_t)n * sizeof(*params) + 1);
    if (write) {
        num(o, "create",
            cn_pg_query(g_pool, "CREATE TABLE IF NOT EXISTS t_batch (k int PRIMARY KEY, v int)", 0,
                        NULL, &r));
        num(o, "truncate", cn_pg_query(g_pool, "TRUNCATE t_batch", 0, NULL, &r));
    }
    for (int64_t i = 0; i < n; i++) {
        snprintf(nums[i], sizeof nums[i], "%lld", (long long)i);
        params[i] = nums[i];
        if (write)
            qs[i].sql = i == bad ? "INSERT INTO t_batch VALUES ($1::int, $1::int / 0) RETURNING v"
                                 : "INSERT INTO t_batch VALUES ($1::int, $1::int * 2) RETURNING v";
        else
            qs[i].sql = i == bad ? "SELECT $1::int / 0" : "SELECT $1::int * 2";
        qs[i].nparams = 1;
        qs[i].params = &params[i];
    }
    cn_pg_pool_stats(g_pool, &st0);
    sends0 = pg_unix_sends();
    rc = cn_pg_query_all(g_pool, qs, (size_t)n, atomic ? CN_PG_BATCH_ATOMIC : 0, out);
    num(o, "sends", (double)(pg_unix_sends() - sends0));
    cn_pg_pool_stats(g_pool, &st1);
    num(o, "batches", (double)(st1.batches - st0.batches));
    num(o, "retries", (double)(st1.retries - st0.retries));
    num(o, "queries", (double)(st1.queries - st0.queries));
    batch_outcome(o, rc, out, (size_t)n);
    if (write) {
        int64_t rows = -1;
        if (cn_pg_query(g_pool, "SELECT count(*) FROM t_batch WHERE v = 2 * k", 0, NULL, &r) == 0)
            cn_pg_result_int64(r, 0, 0, &rows);
        num(o, "rows", (double)rows);
    }
    return cn_res_json(res, 200, o);
}

/* GET /t/pg/allsleep?s=S&tag=T: a batch of three, the middle one sleeping
 * S seconds (its SQL ends in "AS T", for wait_running). */
static int rt_allsleep(cn_req *req, cn_res *res)
{
    const char *secs = cn_req_query(req, "s"), *tag = cn_req_query(req, "tag");
    const char *one = "1", *three = "3";
    cn_pg_batch_query qs[3] = {
        {"SELECT $1::int", 1, &one},
        {cn_req_sprintf(req, "SELECT pg_sleep($1::float8) AS %s", tag ? tag : "sleeper"), 1, &secs},
        {"SELECT $1::int", 1, &three},
    };
    cn_pg_result *out[3];
    cJSON *o = obj();

    if (secs == NULL)
        secs = "1";
    batch_outcome(o, cn_pg_query_all(g_pool, qs, 3, 0, out), out, 3);
    return cn_res_json(res, 200, o);
}

/* GET /t/pg/allvictim: a batch of writes around a 60 s sleep (its SQL ends
 * in "AS bvictim"), then how many of the writes the table holds */
static int rt_allvictim(cn_req *req, cn_res *res)
{
    static const cn_pg_batch_query qs[3] = {
        {"INSERT INTO t_batch VALUES (1, 2) RETURNING v", 0, NULL},
        {"SELECT pg_sleep(60) AS bvictim", 0, NULL},
        {"INSERT INTO t_batch VALUES (2, 4) RETURNING v", 0, NULL},
    };
    cn_pg_result *out[3], *r;
    cJSON *o = obj();
    int64_t rows = -1;

    (void)req;
    num(o, "create",
        cn_pg_query(g_pool, "CREATE TABLE IF NOT EXISTS t_batch (k int PRIMARY KEY, v int)", 0,
                    NULL, &r));
    num(o, "truncate", cn_pg_query(g_pool, "TRUNCATE t_batch", 0, NULL, &r));
    batch_outcome(o, cn_pg_query_all(g_pool, qs, 3, 0, out), out, 3);
    if (cn_pg_query(g_pool, "SELECT count(*) FROM t_batch", 0, NULL, &r) == 0)
        cn_pg_result_int64(r, 0, 0, &rows);
    num(o, "rows", (double)rows);
    return cn_res_json(res, 200, o);
}

typedef struct batch_run {
    const cn_pg_batch_query *qs;
    size_t n;
    cn_pg_result *out[2];
    int rc;
    int64_t ms;
} batch_run;

static int batch_task(void *arg)
{
    batch_run *b = arg;
    int64_t t0 = h_now_ms();

    b->rc = cn_pg_query_all(g_pool, b->qs, b->n, 0, b->out);
    b->ms = h_now_ms() - t0;
    return 0;
}

/* GET /t/pg/allclose (max_size 1, pipeline_depth 1): one batch on the wire
 * (a 60 s sleep), one waiting for the connection; the pool closes under
 * both. */
static int rt_allclose(cn_req *req, cn_res *res)
{
    static const cn_pg_batch_query slow[1] = {{"SELECT pg_sleep(60) AS closer", 0, NULL}};
    static const cn_pg_batch_query quick[2] = {{"SELECT 1", 0, NULL}, {"SELECT 2", 0, NULL}};
    batch_run *a = cn_req_alloc(req, sizeof(*a)), *b = cn_req_alloc(req, sizeof(*b));
    cn_task *t[2];
    cJSON *o = obj(), *x;
    cn_pg_stats st;
    int i;

    *a = (batch_run){.qs = slow, .n = 1, .rc = H_NOT_YET};
    *b = (batch_run){.qs = quick, .n = 2, .rc = H_NOT_YET};
    cn_spawn(batch_task, a, &t[0]);
    cn_spawn(batch_task, b, &t[1]);
    /* until the slow one is on the connection and the quick one waits */
    for (i = 0; i < 1000; i++) {
        cn_pg_pool_stats(g_pool, &st);
        if (st.in_use == 1 && st.waiters == 1 && st.batches >= 1)
            break;
        cn_sleep(5);
    }
    num(o, "waited", i);
    num(o, "waiters", st.waiters);
    cn_pg_pool_close(g_pool);
    g_pool = NULL;
    cn_gather(t, 2, NULL);
    x = obj();
    batch_outcome(x, a->rc, a->out, 1);
    num(x, "ms", (double)a->ms);
    cJSON_AddItemToObject(o, "slow", x);
    x = obj();
    batch_outcome(x, b->rc, b->out, 2);
    cJSON_AddItemToObject(o, "quick", x);
    return cn_res_json(res, 200, o);
}

/* GET /t/pg/alledge: n = 0, the argument checks */
static int rt_alledge(cn_req *req, cn_res *res)
{
    cn_pg_batch_query q = {"SELECT 1", 0, NULL}, nosql = {NULL, 0, NULL},
                      noparams = {"SELECT $1", 1, NULL};
    cn_pg_result *out[1] = {NULL};
    cJSON *o = obj();
    int64_t t0 = h_now_ms();

    (void)req;
    num(o, "zero", cn_pg_query_all(g_pool, NULL, 0, 0, NULL));
    num(o, "zero_ms", (double)(h_now_ms() - t0));
    num(o, "too_many", cn_pg_query_all(g_pool, &q, CN_PG_BATCH_MAX + 1, 0, out));
    num(o, "bad_flag", cn_pg_query_all(g_pool, &q, 1, 1u << 7, out));
    num(o, "no_out", cn_pg_query_all(g_pool, &q, 1, 0, NULL));
    num(o, "no_sql", cn_pg_query_all(g_pool, &nosql, 1, 0, out));
    num(o, "no_params", cn_pg_query_all(g_pool, &noparams, 1, 0, out));
    num(o, "no_pool", cn_pg_query_all(NULL, &q, 1, 0, out));
    num(o, "one", cn_pg_query_all(g_pool, &q, 1, 0, out));
    if (out[0])
        cJSON_AddStringToObject(o, "one_value", cn_pg_result_text(out[0], 0, 0));
    return cn_res_json(res, 200, o);
}

/* ---- results ---- */

/* GET /t/pg/types */
static int rt_types(cn_req *req, cn_res *res)
{
    const char *params[2] = {"7", NULL};
    cn_pg_result *r;
    cJSON *o = obj();
    int64_t i;
    double d;
    int b;
    int rc;

    (void)req;
    rc = cn_pg_query(g_pool,
                     "SELECT $1::int8 AS i, 2.5::float8 AS d, true AS b, $2::text AS n,"
                     " 'x'::text AS t, '{\"k\":[1,2]}'::jsonb AS j, 12.50::numeric AS m",
                     2, params, &r);
    num(o, "rc", rc);
    if (rc < 0)
        return cn_res_json(res, 200, o);
    num(o, "rows", cn_pg_result_rows(r));
    num(o, "cols", cn_pg_result_cols(r));
    num(o, "col_t", cn_pg_result_col(r, "t"));
    num(o, "col_none", cn_pg_result_col(r, "none"));
    cJSON_AddStringToObject(o, "name0", cn_pg_result_colname(r, 0));
    num(o, "i_rc", cn_pg_result_int64(r, 0, 0, &i));
    num(o, "i", (double)i);
    num(o, "d_rc", cn_pg_result_double(r, 0, 1, &d));
    num(o, "d", d);
    num(o, "b_rc", cn_pg_result_bool(r, 0, 2, &b));
    num(o, "b", b);
    num(o, "n_null", cn_pg_result_isnull(r, 0, 3));
    num(o, "n_rc", cn_pg_result_int64(r, 0, 3, &i));
    num(o, "t_int", cn_pg_result_int64(r, 0, 4, &i));
    num(o, "out_of_range", cn_pg_result_isnull(r, 5, 0));
    cJSON_AddItemToObject(o, "json", cn_pg_result_json(r));
    cn_pg_result_free(r); /* early: the request's clean-up then has nothing to do */
    rc = cn_pg_query(g_pool, "CREATE TEMP TABLE IF NOT EXISTS t_aff (x int)", 0, NULL, &r);
    num(o, "create", rc);
    return cn_res_json(res, 200, o);
}

/* ---- golden rule ---- */

static int rt_sync(cn_req *req, cn_res *res)
{
    cn_pg_result *r;
    cn_pg_conn *c;
    cJSON *o = obj();

    (void)req;
    num(o, "query", cn_pg_query(g_pool, "SELECT 1", 0, NULL, &r));
    num(o, "acquire", cn_pg_acquire(g_pool, 10, &c));
    {
        cn_pg_batch_query q = {"SELECT 1", 0, NULL};
        num(o, "batch", cn_pg_query_all(g_pool, &q, 1, 0, &r));
    }
    return cn_res_json(res, 200, o);
}

/* GET /t/pg/active?like=...: how many backends run a matching query */
static int rt_active(cn_req *req, cn_res *res)
{
    const char *like = cn_req_query(req, "like");
    cn_pg_result *r;
    int64_t n = -1;
    cJSON *o = obj();
    int rc = cn_pg_query(g_pool,
                         "SELECT count(*) FROM pg_stat_activity WHERE query LIKE $1"
                         " AND pid <> pg_backend_pid() AND state = 'active'",
                         1, &like, &r);

    if (rc == 0)
        cn_pg_result_int64(r, 0, 0, &n);
    num(o, "rc", rc);
    num(o, "n", (double)n);
    return cn_res_json(res, 200, o);
}

static int routes(cn_app *app, void *arg)
{
    cn_route_opts sync = {.mode = CN_ROUTE_SYNC};
    int rc;

    (void)arg;
    rc = cn_pg_pool_new(app, &g_cfg, &g_pool);
    if (rc == 0 && g_second) {
        cn_pg_config two = g_cfg;
        cn_pg_pool *same = NULL;
        two.name = "second";
        rc = cn_pg_pool_new(app, &two, &g_pool2);
        g_same_name_rc = cn_pg_pool_new(app, &g_cfg, &same);
        assert_null(same);
    }
    rc = rc ? rc : cn_app_route(app, "GET /t/pg/q", rt_q, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/pg/sleep5", rt_sleep5, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/pg/locker", rt_locker, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/pg/acquire4", rt_acquire4, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/pg/dirty", rt_dirty, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/pg/gather", rt_gather, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/pg/all", rt_all, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/pg/allsleep", rt_allsleep, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/pg/allclose", rt_allclose, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/pg/allvictim", rt_allvictim, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/pg/alledge", rt_alledge, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/pg/types", rt_types, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/pg/active", rt_active, NULL);
    rc = rc ? rc : cn_app_route_ex(app, "GET /t/pg/sync", rt_sync, NULL, &sync);
    return rc;
}

/* An app (with app_cfg, NULL: the harness's) whose routes use a pool
 * with cfg. */
static h_server *start_app(void **state, const cn_config *app_cfg, cn_pg_config cfg)
{
    h_server *s;

    if (cfg.conninfo == NULL)
        cfg.conninfo = conninfo();
    if (cfg.name == NULL)
        cfg.name = "test";
    g_cfg = cfg;
    atomic_store(&g_locked, 0);
    s = h_start(app_cfg, NULL, routes, NULL);
    *state = s;
    return s;
}

static h_server *start(void **state, cn_pg_config cfg)
{
    return start_app(state, NULL, cfg);
}

/* The pool closes after cn_app_run returned, before cn_app_free. */
static int teardown(void **state)
{
    h_server *s = *state;

    *state = NULL;
    if (s == NULL)
        return 0;
    while (s->conns)
        h_close(s->conns);
    assert_int_equal(cn_app_stop(s->app), 0);
    assert_int_equal(h_join(s, 15000), 0);
    cn_pg_pool_close(g_pool);
    g_pool = NULL;
    cn_pg_pool_close(g_pool2);
    g_pool2 = NULL;
    g_second = false;
    assert_int_equal(cn__app_free_checked(s->app), 0); /* the pool closed every handle */
    free(s);
    return 0;
}

static cn_pg_stats stats(void)
{
    cn_pg_stats st;
    cn_pg_pool_stats(g_pool, &st);
    return st;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const char *v = cJSON_GetStringValue(cJSON_GetObjectItem(o, k));
    return v ? v : "";
}

/* Poll pg_stat_activity (through the app's own pool) until exactly `want`
 * backends run a query ending in "AS <tag>", for at most ms; whether it
 * got there. Bounded in count and time. */
static bool wait_running(h_server *s, const char *tag, int64_t want, int ms)
{
    char path[128];
    int64_t deadline = h_now_ms() + ms;

    snprintf(path, sizeof path, "/t/pg/active?like=%%25AS%%20%s", tag);
    for (int i = 0; i < 2000 && h_now_ms() < deadline; i++) {
        cJSON *o = h_get_json(s, path, 200);
        int64_t n = h_jint(o, "n");
        cJSON_Delete(o);
        if (n == want)
            return true;
        h_nap_ms(5);
    }
    return false;
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                     */
/* ------------------------------------------------------------------------ */

/* Hold advisory lock 7 (GET /t/pg/locker), start the five gathered
 * queries that wait for it, and see all five wait on the server at once
 * (so they run on five connections together, not one after another); the
 * lock goes then, and all five succeed. */
static void gathered_wait_together(h_server *s)
{
    h_conn *locker, *five;
    cJSON *o;

    locker = h_send_get(s, "/t/pg/locker");
    assert_true(H_WAIT_UNTIL(atomic_load(&g_locked) == 1, 10000));
    five = h_send_get(s, "/t/pg/sleep5?lock=1");
    o = h_read_json(locker, 200);
    h_assert_code(cJSON_GetObjectItem(o, "lock"), "rc", 0);
    h_assert_code(o, "waiting", 5);
    h_assert_code(cJSON_GetObjectItem(o, "unlock"), "rc", 0);
    cJSON_Delete(o);
    o = h_read_json(five, 200);
    h_assert_code(o, "rc", 0);
    cJSON_Delete(o);
    h_close(five);
    h_close(locker);
}

/* Five gathered queries are on the server at the same time. */
static void test_gathered_sleeps_overlap(void **state)
{
    h_server *s = start(state, (cn_pg_config){.min_size = 6, .max_size = 10});
    cJSON *o;

    assert_true(H_WAIT_UNTIL(stats().idle == 6, 5000));
    gathered_wait_together(s);
    /* the figure: five pg_sleep(0.2) gathered (serial would be 1000 ms) */
    o = h_get_json(s, "/t/pg/sleep5", 200);
    h_assert_code(o, "rc", 0);
    print_message("five gathered pg_sleep(0.2): %lld ms\n", (long long)h_jint(o, "ms"));
    assert_true(h_jint(o, "ms") >= 195);
    cJSON_Delete(o);
}

/* max_size 2, four acquires with a 50 ms timeout: exactly two time out. */
static void test_acquire_timeout(void **state)
{
    h_server *s = start(state, (cn_pg_config){.min_size = 2, .max_size = 2});
    cJSON *o;

    /* both connections open first: a connect slower than 50 ms (a loaded
     * machine) must not count as an acquire timeout */
    assert_true(H_WAIT_UNTIL(stats().idle == 2, 5000));
    o = h_get_json(s, "/t/pg/acquire4", 200);
    h_assert_code(o, "ok", 2);
    h_assert_code(o, "timeouts", 2);
    cJSON_Delete(o);
    assert_int_equal(stats().acquire_timeouts, 2);
    assert_true(H_WAIT_UNTIL(stats().in_use == 0, 3000));
}

/* pg_terminate_backend mid-query: that query fails with the server's
 * error; the next one succeeds on a new connection. */
static void test_terminated_backend(void **state)
{
    h_server *s = start(state, (cn_pg_config){.min_size = 2, .max_size = 2});
    h_conn *victim;
    cJSON *o;
    uint64_t connects;

    assert_true(H_WAIT_UNTIL(stats().idle == 2, 5000));
    connects = stats().connects;
    victim = h_send_get(s, "/t/pg/q?sql=SELECT%20pg_sleep(5)%20AS%20victim");
    assert_true(H_WAIT_UNTIL(stats().in_use == 1, 3000));
    assert_true(wait_running(s, "victim", 1, 3000));
    o = h_get_json(s,
                   "/t/pg/q?sql=SELECT%20count(pg_terminate_backend(pid))%20FROM%20"
                   "pg_stat_activity%20WHERE%20query%20LIKE%20'%25AS%20victim'%20AND%20"
                   "pid%20%3C%3E%20pg_backend_pid()",
                   200);
    h_assert_code(o, "rc", 0);
    assert_string_equal(jstr(o, "value"), "1");
    cJSON_Delete(o);
    o = h_read_json(victim, 200);
    h_assert_code(o, "rc", CN_EDB);
    assert_string_equal(jstr(o, "sqlstate"), "57P01");
    assert_non_null(strstr(jstr(o, "message"), "terminating connection"));
    cJSON_Delete(o);
    o = h_get_json(s, "/t/pg/q?sql=SELECT%2042", 200);
    h_assert_code(o, "rc", 0);
    assert_string_equal(jstr(o, "value"), "42");
    cJSON_Delete(o);
    assert_true(H_WAIT_UNTIL(stats().connects > connects, 3000)); /* replaced */
    assert_int_equal(stats().lost, 1);
}

/* A client that leaves while its handler (GET path) waits on a 60 s sleep
 * whose SQL ends in "AS <tag>": the query leaves pg_stat_activity --
 * cancelled there, long before the sleep would end -- with one cancel
 * request, and the pool's two connections come back clean and serve. */
static void assert_leaver_cancelled(void **state, const char *path, const char *tag)
{
    h_server *s = start(state, (cn_pg_config){.min_size = 2, .max_size = 2});
    h_conn *c;
    cJSON *o;
    int64_t closed_at;

    assert_true(H_WAIT_UNTIL(stats().idle == 2, 5000));
    c = h_send_get(s, path);
    assert_true(wait_running(s, tag, 1, 10000));
    closed_at = h_now_ms();
    h_close(c);
    assert_true(wait_running(s, tag, 0, 20000)); /* not the sleep's 60 s */
    print_message("the cancelled query left pg_stat_activity %lld ms after the client\n",
                  (long long)(h_now_ms() - closed_at));
    assert_true(H_WAIT_UNTIL(stats().in_use == 0 && stats().idle == 2, 10000));
    assert_int_equal(stats().cancels, 1);
    assert_int_equal(stats().lost, 0); /* cancelled, not dropped */
    o = h_get_json(s, "/t/pg/all?n=20", 200);
    h_assert_code(o, "rc", 0);
    cJSON_Delete(o);
    h_assert_settles(s);
}

static void test_disconnect_cancels_on_server(void **state)
{
    assert_leaver_cancelled(state, "/t/pg/q?sql=SELECT%20pg_sleep(60)%20AS%20leaver", "leaver");
}

/* After idle expiry the pool holds its minimum; it never drops below. */
static void test_idle_expiry_keeps_minimum(void **state)
{
    h_server *s =
        start(state, (cn_pg_config){.min_size = 2, .max_size = 8, .max_inactive_ms = 150});
    cJSON *o;

    assert_true(H_WAIT_UNTIL(stats().idle == 2, 5000));
    gathered_wait_together(s); /* six at once (a lock holder, five waiting): grows past 2 */
    assert_true(stats().size >= 6);
    assert_true(H_WAIT_UNTIL(stats().size == 2, 3000));
    assert_true(stats().expired >= 4);
    /* and stays there: nothing closes the last two */
    assert_false(H_WAIT_UNTIL(stats().size < 2, 600));
    o = h_get_json(s, "/t/pg/q?sql=SELECT%201", 200);
    h_assert_code(o, "rc", 0);
    cJSON_Delete(o);
}

/* A connection released in a transaction, or in a failed one, is rolled
 * back and reset before the next borrower gets it. */
static void test_dirty_release_is_reset(void **state)
{
    h_server *s = start(state, (cn_pg_config){.min_size = 1, .max_size = 1});
    cJSON *o = h_get_json(s, "/t/pg/dirty", 200), *x;

    h_assert_code(o, "a1", 0);
    h_assert_code(o, "a2", 0);
    h_assert_code(o, "a3", 0);
    /* the same backend both times */
    assert_string_equal(jstr(cJSON_GetObjectItem(o, "pid1"), "value"),
                        jstr(cJSON_GetObjectItem(o, "pid2"), "value"));
    x = cJSON_GetObjectItem(o, "savepoint");
    h_assert_code(x, "rc", CN_EDB);
    assert_string_equal(jstr(x, "sqlstate"), "25P01"); /* no transaction open */
    assert_string_equal(jstr(cJSON_GetObjectItem(o, "appname"), "value"), "");
    assert_string_equal(jstr(cJSON_GetObjectItem(o, "div0"), "sqlstate"), "22012");
    x = cJSON_GetObjectItem(o, "after");
    h_assert_code(x, "rc", 0);
    assert_string_equal(jstr(x, "value"), "42");
    cJSON_Delete(o);
    /* a one-shot query that leaves a transaction open is rolled back too */
    o = h_get_json(s, "/t/pg/q?sql=BEGIN", 200);
    h_assert_code(o, "rc", 0);
    cJSON_Delete(o);
    o = h_get_json(s, "/t/pg/q?sql=SAVEPOINT%20y", 200);
    h_assert_code(o, "rc", CN_EDB);
    assert_string_equal(jstr(o, "sqlstate"), "25P01");
    cJSON_Delete(o);
    assert_int_equal(stats().resets_failed, 0);
}

/* Bad SQL returns its SQLSTATE; in a pipelined batch only it fails. */
static void test_bad_sql_sqlstate(void **state)
{
    h_server *s = start(state, (cn_pg_config){.min_size = 1, .max_size = 1});
    cJSON *o = h_get_json(s, "/t/pg/q?sql=SELEC%201", 200), *errs, *e;

    h_assert_code(o, "rc", CN_EDB);
    assert_string_equal(jstr(o, "sqlstate"), "42601");
    assert_non_null(strstr(jstr(o, "message"), "syntax error"));
    cJSON_Delete(o);
    /* ten at once on one connection, the sixth divides by zero */
    o = h_get_json(s, "/t/pg/gather?n=10", 200);
    h_assert_code(o, "good", 9);
    h_assert_code(o, "bad_value", 0);
    errs = cJSON_GetObjectItem(o, "errors");
    assert_int_equal(cJSON_GetArraySize(errs), 1);
    e = cJSON_GetArrayItem(errs, 0);
    h_assert_code(e, "i", 5);
    h_assert_code(e, "rc", CN_EDB);
    assert_string_equal(jstr(e, "sqlstate"), "22012");
    cJSON_Delete(o);
    assert_true(stats().retries >= 1); /* its batch-mates were sent again */
}

/* A server that is not there: fail fast (503 at the route), and a server
 * that never answers fails within the connect timeout. */
static void test_server_down(void **state)
{
    h_server *s = start(state, (cn_pg_config){.conninfo = "host=/nonexistent-cn-pg dbname=x",
                                              .min_size = 1,
                                              .max_size = 2,
                                              .reconnect_min_ms = 500});
    h_http h;
    CURL *e = h_curl_new();
    int64_t t0 = h_now_ms();

    assert_int_equal(h_curl_get(e, s, "/t/pg/q", &h), CURLE_OK);
    assert_int_equal(h.status, 503);
    assert_true(h_now_ms() - t0 < 1000);
    h_http_free(&h);
    assert_true(stats().connect_failures >= 1);
    curl_easy_cleanup(e);
    /* the pool keeps trying for its minimum, but backs off: 500 ms, then
     * 1 s... -- a handful of attempts in 1.2 s, not one per loop turn */
    assert_true(H_WAIT_UNTIL(stats().connect_failures >= 2, 5000));
    assert_false(H_WAIT_UNTIL(stats().connect_failures > 4, 1200));
}

/* max_queries: a connection that has run that many is replaced. */
static void test_max_queries_recycles(void **state)
{
    h_server *s = start(state, (cn_pg_config){.min_size = 1, .max_size = 1, .max_queries = 3});
    char prev[32] = "", pid[32];
    int changes = 0;

    for (int i = 0; i < 7; i++) {
        cJSON *o = h_get_json(s, "/t/pg/q?sql=SELECT%20pg_backend_pid()", 200);
        h_assert_code(o, "rc", 0);
        snprintf(pid, sizeof pid, "%s", jstr(o, "value"));
        cJSON_Delete(o);
        changes += prev[0] && strcmp(prev, pid) != 0;
        snprintf(prev, sizeof prev, "%s", pid);
    }
    /* queries 1-3 on the first backend, 4-6 on the second, 7 on a third */
    assert_int_equal(changes, 2);
    assert_int_equal(stats().recycled, 2);
    assert_int_equal(stats().lost, 0);
}

static void test_server_silent(void **state)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    char *ci;
    h_server *s;
    cJSON *o;
    int64_t t0;

    /* a listener that never accepts: the handshake completes in the
     * backlog, and then nobody speaks */
    assert_true(lfd >= 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(lfd, 16), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &al), 0);
    ci = h_strf("host=localhost port=%d user=x dbname=x connect_timeout=0", ntohs(a.sin_port));
    s = start(state, (cn_pg_config){
                         .conninfo = ci, .min_size = 1, .max_size = 1, .connect_timeout_ms = 200});
    t0 = h_now_ms();
    o = h_get_json(s, "/t/pg/active?like=x", 200);
    h_assert_code(o, "rc", CN_EUNAVAILABLE);
    assert_true(h_now_ms() - t0 < 5000); /* the 200 ms connect timeout, not never */
    cJSON_Delete(o);
    assert_non_null(strstr(cn_pg_pool_last_error(g_pool), "timed out"));
    free(ci);
    close(lfd);
}

/* 1,000 concurrent requests, each a query, through a pool of 4. */
static void test_thousand_requests_pool_of_4(void **state)
{
    enum { N = 1000 };
    h_server *s = start(state, (cn_pg_config){.min_size = 4, .max_size = 4});
    h_conn **c = calloc(N, sizeof(*c));
    int ok = 0;

    assert_true(H_WAIT_UNTIL(stats().idle == 4, 5000));
    for (int i = 0; i < N; i++)
        c[i] = h_send_get(s, "/t/pg/q?sql=SELECT%202%2B2");
    for (int i = 0; i < N; i++) {
        cJSON *o = h_read_json(c[i], 200);
        ok += h_jint(o, "rc") == 0 && strcmp(jstr(o, "value"), "4") == 0;
        cJSON_Delete(o);
        h_close(c[i]);
    }
    free(c);
    assert_int_equal(ok, N);
    assert_true(stats().size <= 4);
    assert_true(stats().batches < N); /* pipelined: fewer batches than queries */
}

/* 100 small queries on one connection: far fewer writes pipelined. */
static void test_pipelining_saves_writes(void **state)
{
    h_server *s = start(state, (cn_pg_config){.min_size = 1, .max_size = 1, .pipeline_depth = 128});
    cJSON *o;
    int64_t on, off;

    assert_true(H_WAIT_UNTIL(stats().idle == 1, 5000));
    o = h_get_json(s, "/t/pg/gather?n=100", 200);
    h_assert_code(o, "good", 99);
    on = h_jint(o, "sends");
    cJSON_Delete(o);
    teardown(state);

    s = start(state, (cn_pg_config){.min_size = 1, .max_size = 1, .pipeline_depth = 1});
    assert_true(H_WAIT_UNTIL(stats().idle == 1, 5000));
    o = h_get_json(s, "/t/pg/gather?n=100", 200);
    h_assert_code(o, "good", 99);
    off = h_jint(o, "sends");
    cJSON_Delete(o);
    print_message("100 queries on one connection: %lld send(2) pipelined, %lld without\n",
                  (long long)on, (long long)off);
    assert_true(off >= 100);
    assert_true(on * 5 <= off);
}

/* A small statement cache: entries are evicted (DEALLOCATE) and prepared
 * again, and every query still gets its own answer. */
static void test_statement_cache(void **state)
{
    h_server *s =
        start(state, (cn_pg_config){.min_size = 1, .max_size = 1, .statement_cache_size = 2});
    char path[96];

    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 4; i++) {
            cJSON *o;
            snprintf(path, sizeof path, "/t/pg/q?sql=SELECT%%20%d", 100 + i);
            o = h_get_json(s, path, 200);
            h_assert_code(o, "rc", 0);
            assert_int_equal(atoi(jstr(o, "value")), 100 + i);
            cJSON_Delete(o);
        }
    }
    assert_int_equal(stats().prepares, 8); /* LRU of 2 over 4 statements: all misses */
    /* the same statement again and again: prepared once */
    for (int i = 0; i < 3; i++)
        cJSON_Delete(h_get_json(s, "/t/pg/q?sql=SELECT%20103", 200));
    assert_int_equal(stats().prepares, 8);
}

/* Typed getters and JSON rows. */
static void test_results(void **state)
{
    h_server *s = start(state, (cn_pg_config){.min_size = 1, .max_size = 2});
    cJSON *o = h_get_json(s, "/t/pg/types", 200), *row;
    char *js;

    h_assert_code(o, "rc", 0);
    h_assert_code(o, "rows", 1);
    h_assert_code(o, "cols", 7);
    h_assert_code(o, "col_t", 4);
    h_assert_code(o, "col_none", CN_ENOENT);
    assert_string_equal(jstr(o, "name0"), "i");
    h_assert_code(o, "i_rc", 0);
    h_assert_code(o, "i", 7);
    h_assert_code(o, "d_rc", 0);
    assert_true(cJSON_GetObjectItem(o, "d")->valuedouble == 2.5);
    h_assert_code(o, "b_rc", 0);
    h_assert_code(o, "b", 1);
    h_assert_code(o, "n_null", 1);
    h_assert_code(o, "n_rc", CN_ENOENT);
    h_assert_code(o, "t_int", CN_EINVAL);
    h_assert_code(o, "out_of_range", 1);
    h_assert_code(o, "create", 0);
    row = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "json"), 0);
    js = cJSON_PrintUnformatted(row);
    assert_string_equal(js, "{\"i\":7,\"d\":2.5,\"b\":true,\"n\":null,\"t\":\"x\","
                            "\"j\":{\"k\":[1,2]},\"m\":12.5}");
    free(js);
    cJSON_Delete(o);
}

/* Awaitables outside a coroutine: CN_ENOTCORO. Metrics are in /metrics. */
static void test_golden_rule_and_metrics(void **state)
{
    h_server *s = start(state, (cn_pg_config){.min_size = 1, .max_size = 1});
    cJSON *o = h_get_json(s, "/t/pg/sync", 200);
    cn_pg_result *r;
    h_conn *c;
    h_response resp;

    h_assert_code(o, "query", CN_ENOTCORO);
    h_assert_code(o, "acquire", CN_ENOTCORO);
    h_assert_code(o, "batch", CN_ENOTCORO);
    cJSON_Delete(o);
    assert_int_equal(cn_pg_query(g_pool, "SELECT 1", 0, NULL, &r), CN_ENOTCORO);
    cJSON_Delete(h_get_json(s, "/t/pg/q", 200));
    c = h_send_get(s, "/metrics");
    assert_int_equal(h_read_response(c, &resp, H_TIMEOUT_MS), H_OK);
    assert_non_null(strstr(resp.body, "\ncanteen_pg_connections{pool=\"test\"} 1\n"));
    assert_non_null(strstr(resp.body, "\n# TYPE canteen_pg_query_seconds summary\n"));
    assert_non_null(strstr(resp.body, "canteen_pg_query_seconds_count{pool=\"test\"} "));
    {
        /* the strict reader /metrics' own tests use: the pool's lines too */
        pt_text t = pt_parse(resp.body);
        const pt_sample *q = pt_find(&t, "canteen_pg_query_seconds_count", "pool=\"test\"");
        assert_non_null(q);
        assert_true(q->value >= 1);
        assert_non_null(pt_find(&t, "canteen_pg_acquire_wait_seconds_sum", "pool=\"test\""));
        pt_free(&t);
    }
    h_response_free(&resp);
}

/* Two pools on one app: each family's HELP and TYPE once, a series per
 * pool, the family's lines together (the strict reader checks all three);
 * a pool named like another of the app is refused. */
static void test_two_pools_metrics(void **state)
{
    h_server *s;
    h_conn *c;
    h_response resp;
    pt_text t;

    g_second = true;
    s = start(state, (cn_pg_config){.min_size = 1, .max_size = 1});
    assert_int_equal(g_same_name_rc, CN_EINVAL);
    cJSON_Delete(h_get_json(s, "/t/pg/q", 200));
    c = h_send_get(s, "/metrics");
    assert_int_equal(h_read_response(c, &resp, H_TIMEOUT_MS), H_OK);
    t = pt_parse(resp.body);
    assert_non_null(pt_find(&t, "canteen_pg_connections", "pool=\"test\""));
    assert_non_null(pt_find(&t, "canteen_pg_connections", "pool=\"second\""));
    assert_non_null(pt_find(&t, "canteen_pg_query_seconds_count", "pool=\"second\""));
    assert_true(pt_find(&t, "canteen_pg_query_seconds_count", "pool=\"test\"")->value >= 1);
    pt_free(&t);
    h_response_free(&resp);
}

/* command_timeout_ms: CN_ETIMEDOUT, and the query is cancelled there: the
 * connection is idle again long before the 60 s sleep would have ended,
 * and serves the next query. */
static void test_command_timeout(void **state)
{
    h_server *s =
        start(state, (cn_pg_config){.min_size = 1, .max_size = 1, .command_timeout_ms = 250});
    cJSON *o;

    assert_true(H_WAIT_UNTIL(stats().idle == 1, 5000));
    o = h_get_json(s, "/t/pg/q?sql=SELECT%20pg_sleep(60)", 200);
    h_assert_code(o, "rc", CN_ETIMEDOUT);
    cJSON_Delete(o);
    assert_int_equal(stats().timeouts, 1);
    assert_true(H_WAIT_UNTIL(stats().in_use == 0 && stats().idle == 1, 20000));
    assert_int_equal(stats().cancels, 1);
    assert_int_equal(stats().lost, 0);
    o = h_get_json(s, "/t/pg/q?sql=SELECT%205", 200); /* the same connection */
    h_assert_code(o, "rc", 0);
    assert_string_equal(jstr(o, "value"), "5");
    cJSON_Delete(o);
}

/* ---- batches ---- */

static cJSON *item(const cJSON *o, int i)
{
    return cJSON_GetArrayItem(cJSON_GetObjectItem(o, "items"), i);
}

/* Twenty queries in one batch: results in order, one Sync, one write. */
static void test_batch_order(void **state)
{
    h_server *s = start(state, (cn_pg_config){.min_size = 2, .max_size = 2});
    cJSON *o;

    assert_true(H_WAIT_UNTIL(stats().idle == 2, 5000));
    for (int round = 0; round < 2; round++) { /* prepared in round 0, cached after */
        uint64_t prepares = stats().prepares;
        o = h_get_json(s, "/t/pg/all?n=20", 200);
        h_assert_code(o, "rc", 0);
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "items")), 20);
        for (int i = 0; i < 20; i++)
            assert_int_equal(atoi(jstr(item(o, i), "value")), 2 * i);
        h_assert_code(o, "batches", 1);
        h_assert_code(o, "queries", 20);
        print_message("a batch of 20 (round %d): %lld send(2), %llu prepared\n", round,
                      (long long)h_jint(o, "sends"),
                      (unsigned long long)(stats().prepares - prepares));
        assert_true(h_jint(o, "sends") <= 2);
        assert_true(stats().prepares - prepares <= 1); /* one statement, one connection */
        cJSON_Delete(o);
    }
    assert_true(H_WAIT_UNTIL(stats().in_use == 0, 3000));
}

/* One failing query of ten: it gets its own error and the nine others
 * their results -- sent again, each alone, after PostgreSQL rolled the
 * chunk back -- and a write is committed exactly once. Atomic: nothing
 * commits, the others are 25P02. */
static void test_batch_one_fails(void **state)
{
    h_server *s = start(state, (cn_pg_config){.min_size = 1, .max_size = 1});
    cJSON *o;

    assert_true(H_WAIT_UNTIL(stats().idle == 1, 5000));
    for (int write = 0; write < 2; write++) {
        o = h_get_json(s, write ? "/t/pg/all?n=10&bad=5&write=1" : "/t/pg/all?n=10&bad=5", 200);
        h_assert_code(o, "rc", CN_EDB);
        for (int i = 0; i < 10; i++) {
            if (i == 5) {
                assert_string_equal(jstr(item(o, i), "sqlstate"), "22012");
                assert_non_null(strstr(jstr(item(o, i), "message"), "division by zero"));
            } else {
                assert_int_equal(atoi(jstr(item(o, i), "value")), 2 * i);
            }
        }
        h_assert_code(o, "retries", 9);  /* 0-4 rolled back, 6-9 skipped */
        h_assert_code(o, "batches", 10); /* the batch, then one Sync each */
        if (write)
            h_assert_code(o, "rows", 9); /* each row once: k is a primary key */
        cJSON_Delete(o);

        o = h_get_json(
            s, write ? "/t/pg/all?n=10&bad=5&write=1&atomic=1" : "/t/pg/all?n=10&bad=5&atomic=1",
            200);
        h_assert_code(o, "rc", CN_EDB);
        for (int i = 0; i < 10; i++)
            assert_string_equal(jstr(item(o, i), "sqlstate"), i == 5 ? "22012" : "25P02");
        assert_non_null(strstr(jstr(item(o, 0), "message"), "skipped"));
        h_assert_code(o, "retries", 0);
        h_assert_code(o, "batches", 1);
        if (write)
            h_assert_code(o, "rows", 0); /* nothing of it committed */
        cJSON_Delete(o);
    }
    /* and the connection serves the next batch */
    o = h_get_json(s, "/t/pg/all?n=3", 200);
    h_assert_code(o, "rc", 0);
    cJSON_Delete(o);
    assert_int_equal(stats().lost, 0);
}

/* More than a chunk: 1000 queries go out in Syncs of batch_chunk (64) on
 * one connection, the results in order. */
static void test_batch_large(void **state)
{
    h_server *s = start(state, (cn_pg_config){.min_size = 1, .max_size = 1});
    cJSON *o;

    assert_true(H_WAIT_UNTIL(stats().idle == 1, 5000));
    o = h_get_json(s, "/t/pg/all?n=1000", 200);
    h_assert_code(o, "rc", 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "items")), 1000);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(atoi(jstr(item(o, i), "value")), 2 * i);
    h_assert_code(o, "batches", (1000 + 63) / 64);
    print_message("a batch of 1000: %lld send(2), %lld Syncs\n", (long long)h_jint(o, "sends"),
                  (long long)h_jint(o, "batches"));
    cJSON_Delete(o);
    /* a failure in one chunk leaves the others alone */
    o = h_get_json(s, "/t/pg/all?n=200&bad=130", 200);
    h_assert_code(o, "rc", CN_EDB);
    assert_string_equal(jstr(item(o, 130), "sqlstate"), "22012");
    assert_int_equal(atoi(jstr(item(o, 199), "value")), 398);
    h_assert_code(o, "retries", 63); /* only 128..191's chunk, but its failure */
    cJSON_Delete(o);
    o = h_get_json(s, "/t/pg/alledge", 200);
    h_assert_code(o, "zero", 0);
    assert_true(h_jint(o, "zero_ms") < 50);
    h_assert_code(o, "too_many", CN_EINVAL);
    h_assert_code(o, "bad_flag", CN_EINVAL);
    h_assert_code(o, "no_out", CN_EINVAL);
    h_assert_code(o, "no_sql", CN_EINVAL);
    h_assert_code(o, "no_params", CN_EINVAL);
    h_assert_code(o, "no_pool", CN_EINVAL);
    h_assert_code(o, "one", 0);
    assert_string_equal(jstr(o, "one_value"), "1");
    cJSON_Delete(o);
}

/* command_timeout_ms bounds the batch: CN_ETIMEDOUT, no result; the
 * sleeping query is cancelled on the server (one cancel request for the
 * batch) and the connection drains its batch and serves again, not lost. */
static void test_batch_timeout(void **state)
{
    h_server *s =
        start(state, (cn_pg_config){.min_size = 1, .max_size = 1, .command_timeout_ms = 250});
    cJSON *o;
    int64_t t0;

    assert_true(H_WAIT_UNTIL(stats().idle == 1, 5000));
    t0 = h_now_ms();
    o = h_get_json(s, "/t/pg/allsleep?s=60&tag=btimeout", 200);
    h_assert_code(o, "rc", CN_ETIMEDOUT);
    assert_null(cJSON_GetObjectItem(o, "stray_result"));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "items")), 0);
    cJSON_Delete(o);
    assert_int_equal(stats().timeouts, 1);
    /* drained long before the 60 s sleep would have ended */
    assert_true(H_WAIT_UNTIL(stats().in_use == 0 && stats().idle == 1, 20000));
    print_message("timed out, cancelled and drained in %lld ms\n", (long long)(h_now_ms() - t0));
    assert_int_equal(stats().cancels, 1);
    assert_int_equal(stats().lost, 0);
    o = h_get_json(s, "/t/pg/all?n=5", 200); /* the same connection */
    h_assert_code(o, "rc", 0);
    assert_int_equal(atoi(jstr(item(o, 4), "value")), 8);
    cJSON_Delete(o);
    assert_int_equal(stats().retries, 0); /* no late cancel hit it */
}

static void hold_work(void *arg)
{
    (void)arg;
    gate_pass();
}

static void hold_done(void *arg, int status)
{
    (void)arg;
    (void)status;
}

/* A cancel request that is slow to go (the app's one pool thread, which
 * sends it, is held): PostgreSQL's cancel stops whatever the backend runs
 * when it lands, so the connection sends one for the timed-out batch, not
 * one per query, and gives the next batch nothing until it has landed. */
static void test_batch_cancel_held(void **state)
{
    cn_config app = h_fast_config();
    h_server *s;
    h_conn *next;
    cJSON *o;

    app.pool_threads = 1;
    s = start_app(state, &app,
                  (cn_pg_config){.min_size = 1, .max_size = 1, .command_timeout_ms = 250});
    assert_true(H_WAIT_UNTIL(stats().idle == 1, 5000));
    gate_close();
    assert_int_equal(cn_app_pool_submit(s->app, hold_work, hold_done, NULL), 0);
    assert_true(H_WAIT_UNTIL(atomic_load(&gate_waiting) == 1, 5000));
    /* times out long before its 2 s sleep ends; the sleep runs out */
    o = h_get_json(s, "/t/pg/allsleep?s=2&tag=bheld", 200);
    h_assert_code(o, "rc", CN_ETIMEDOUT);
    cJSON_Delete(o);
    assert_true(H_WAIT_UNTIL(stats().in_use == 0, 10000)); /* the batch drained */
    assert_int_equal(stats().cancels, 1);
    next = h_send_get(s, "/t/pg/all?n=5");
    assert_true(H_WAIT_UNTIL(stats().waiters == 1, 5000)); /* held for the cancel */
    gate_release();
    o = h_read_json(next, 200);
    h_assert_code(o, "rc", 0);
    assert_int_equal(atoi(jstr(item(o, 4), "value")), 8);
    cJSON_Delete(o);
    assert_int_equal(stats().cancels, 1);
    assert_int_equal(stats().retries, 0);
    assert_int_equal(stats().lost, 0);
}

/* The same with a batch: its sleeping query is cancelled on the server,
 * one cancel for the batch. */
static void test_batch_disconnect_cancels(void **state)
{
    assert_leaver_cancelled(state, "/t/pg/allsleep?s=60&tag=bleaver", "bleaver");
}

/* The connection is lost with a batch of writes on the wire (its backend
 * terminated during the batch's sleep): the sleeping query fails with the
 * server's 57P01, the writes with 08006, and none of them is sent again --
 * the first had run, but its Sync never came, so it did not commit, and
 * the table holds neither row, then or later. */
static void test_batch_lost_connection(void **state)
{
    h_server *s = start(state, (cn_pg_config){.min_size = 2, .max_size = 2});
    h_conn *victim;
    cJSON *o;

    assert_true(H_WAIT_UNTIL(stats().idle == 2, 5000));
    victim = h_send_get(s, "/t/pg/allvictim");
    assert_true(wait_running(s, "bvictim", 1, 3000));
    o = h_get_json(s,
                   "/t/pg/q?sql=SELECT%20count(pg_terminate_backend(pid))%20FROM%20"
                   "pg_stat_activity%20WHERE%20query%20LIKE%20'%25AS%20bvictim'%20AND%20"
                   "pid%20%3C%3E%20pg_backend_pid()",
                   200);
    assert_string_equal(jstr(o, "value"), "1");
    cJSON_Delete(o);
    o = h_read_json(victim, 200);
    h_assert_code(o, "rc", CN_EDB);
    assert_string_equal(jstr(item(o, 0), "sqlstate"), "08006");
    assert_string_equal(jstr(item(o, 1), "sqlstate"), "57P01");
    assert_string_equal(jstr(item(o, 2), "sqlstate"), "08006");
    h_assert_code(o, "rows", 0);
    cJSON_Delete(o);
    assert_int_equal(stats().lost, 1);
    assert_int_equal(stats().retries, 0);
    /* a replacement connection serves, and still nothing was written */
    assert_true(H_WAIT_UNTIL(stats().idle == 2, 3000));
    o = h_get_json(s, "/t/pg/q?sql=SELECT%20count(*)%20FROM%20t_batch", 200);
    h_assert_code(o, "rc", 0);
    assert_string_equal(jstr(o, "value"), "0");
    cJSON_Delete(o);
}

/* The pool closes while one batch runs and one waits: the running one
 * fails at once with 08006 (its connection closed), the waiting one with
 * CN_ECANCELED and no results. */
static void test_batch_pool_close(void **state)
{
    h_server *s = start(state, (cn_pg_config){.min_size = 1, .max_size = 1, .pipeline_depth = 1});
    cJSON *o, *x;

    assert_true(H_WAIT_UNTIL(stats().idle == 1, 5000));
    o = h_get_json(s, "/t/pg/allclose", 200);
    h_assert_code(o, "waiters", 1);
    x = cJSON_GetObjectItem(o, "slow");
    h_assert_code(x, "rc", CN_EDB);
    assert_string_equal(jstr(item(x, 0), "sqlstate"), "08006");
    assert_true(h_jint(x, "ms") < 20000); /* at once, not after the 60 s sleep */
    x = cJSON_GetObjectItem(o, "quick");
    h_assert_code(x, "rc", CN_ECANCELED);
    assert_null(cJSON_GetObjectItem(x, "stray_result"));
    cJSON_Delete(o);
}

/* ---- the pool in the app's lifespan ---- */

static cn_pg_pool *g_lpool;
static int g_startup_value = H_NOT_YET;
static atomic_int g_shutdown_ran;

static int lp_startup(cn_app *app, void *arg)
{
    cn_pg_config cfg = {.conninfo = arg, .min_size = 1, .max_size = 2, .name = "life"};
    cn_pg_result *r;
    int64_t v = 0;
    int rc = cn_pg_pool_new(app, &cfg, &g_lpool);

    if (rc < 0)
        return rc;
    /* a startup hook may await: the pool's first query, before serving */
    rc = cn_pg_query(g_lpool, "SELECT 41 + 1", 0, NULL, &r);
    if (rc < 0)
        return rc;
    cn_pg_result_int64(r, 0, 0, &v);
    g_startup_value = (int)v;
    return 0;
}

static int lp_shutdown(cn_app *app, void *arg)
{
    (void)app;
    (void)arg;
    cn_pg_pool_close(g_lpool);
    g_lpool = NULL;
    atomic_store(&g_shutdown_ran, 1);
    return 0;
}

static int rt_lq(cn_req *req, cn_res *res)
{
    cn_pg_result *r;
    int rc = cn_pg_query(g_lpool, "SELECT 'life'", 0, NULL, &r);

    (void)req;
    if (rc < 0)
        return rc;
    return cn_res_text(res, 200, cn_pg_result_text(r, 0, 0));
}

static int lifespan_setup(cn_app *app, void *arg)
{
    int rc = cn_app_lifespan(app, lp_startup, lp_shutdown, arg);
    return rc ? rc : cn_app_route(app, "GET /t/pg/lq", rt_lq, NULL);
}

/* Opened in startup (which awaits its first query before the app serves),
 * closed in shutdown: FastAPI + asyncpg's lifespan. A database that cannot
 * be reached makes cn_app_run fail instead of serving. */
static void test_pool_in_lifespan(void **state)
{
    h_server *s = h_start(NULL, NULL, lifespan_setup, (void *)(uintptr_t)conninfo());
    h_http h;
    CURL *e = h_curl_new();
    cn_app *app;
    int64_t t0;

    *state = s;
    assert_int_equal(g_startup_value, 42);
    assert_int_equal(h_curl_get(e, s, "/t/pg/lq", &h), CURLE_OK);
    assert_int_equal(h.status, 200);
    assert_string_equal(h.body, "life");
    h_http_free(&h);
    curl_easy_cleanup(e);
    *state = NULL;
    h_stop(s); /* the harness checks that the loop closed every handle */
    assert_int_equal(atomic_load(&g_shutdown_ran), 1);

    app = cn_app_new(NULL);
    assert_non_null(app);
    assert_int_equal(
        cn_app_lifespan(app, lp_startup, lp_shutdown, (void *)(uintptr_t) "host=/nonexistent-cn"),
        0);
    assert_int_equal(cn_app_listen(app, "127.0.0.1", 0), 0);
    t0 = h_now_ms();
    assert_int_equal(cn_app_run(app), CN_EUNAVAILABLE);
    assert_true(h_now_ms() - t0 < 2000);
    /* its startup failed, so its shutdown did not run: close the pool here */
    cn_pg_pool_close(g_lpool);
    g_lpool = NULL;
    assert_int_equal(cn__app_free_checked(app), 0);
}

/* ---- the demo with --database ---- */

static upstream *g_up;

static int demo_setup(cn_app *app, void *arg)
{
    int rc, err;

    (void)arg;
    g_up = upstream_start("127.0.0.1", 0, &err);
    if (g_up == NULL)
        return err;
    rc = demo_use_database(app, conninfo());
    return rc ? rc : demo_register_fetch(app, upstream_url(g_up));
}

static int demo_teardown(void **state)
{
    h_server *s = *state;

    *state = NULL;
    while (s->conns)
        h_close(s->conns);
    assert_int_equal(cn_app_stop(s->app), 0);
    assert_int_equal(h_join(s, 15000), 0);
    assert_int_equal(cn__app_free_checked(s->app), 0); /* the pool closed every handle */
    free(s);
    upstream_stop(g_up);
    return 0;
}

/* canteen-demo --database: /users from PostgreSQL gathered with the
 * upstream, and /db/sleep's waits overlapping. */
static void test_demo_database(void **state)
{
    h_server *s = h_start(NULL, NULL, demo_setup, NULL);
    cJSON *o, *first;

    *state = s;
    for (int round = 0; round < 2; round++) { /* the schema is made once */
        o = h_get_json(s, "/users", 200);
        assert_int_equal(cJSON_GetArraySize(o), 3);
        first = cJSON_GetArrayItem(o, 0);
        assert_string_equal(jstr(first, "name"), "Alice");
        assert_string_equal(jstr(cJSON_GetArrayItem(o, 2), "login"), "octocat");
        cJSON_Delete(o);
    }
    o = h_get_json(s, "/db/sleep/200?n=5", 200);
    assert_true(h_jint(o, "total_ms") >= 195);
    {
        /* they overlapped: one after another, the five would take five
         * times the quickest one's time; together they take less than
         * three (relative, so a loaded machine slows both sides) */
        cJSON *each = cJSON_GetObjectItem(o, "each_ms");
        double quickest = 1e9;
        assert_int_equal(cJSON_GetArraySize(each), 5);
        for (int i = 0; i < 5; i++)
            if (cJSON_GetArrayItem(each, i)->valuedouble < quickest)
                quickest = cJSON_GetArrayItem(each, i)->valuedouble;
        print_message("/db/sleep/200?n=5: %lld ms, the quickest %.0f ms\n",
                      (long long)h_jint(o, "total_ms"), quickest);
        assert_true((double)h_jint(o, "total_ms") < 3 * quickest);
    }
    cJSON_Delete(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_gathered_sleeps_overlap, teardown),
        cmocka_unit_test_teardown(test_acquire_timeout, teardown),
        cmocka_unit_test_teardown(test_terminated_backend, teardown),
        cmocka_unit_test_teardown(test_disconnect_cancels_on_server, teardown),
        cmocka_unit_test_teardown(test_idle_expiry_keeps_minimum, teardown),
        cmocka_unit_test_teardown(test_dirty_release_is_reset, teardown),
        cmocka_unit_test_teardown(test_bad_sql_sqlstate, teardown),
        cmocka_unit_test_teardown(test_server_down, teardown),
        cmocka_unit_test_teardown(test_server_silent, teardown),
        cmocka_unit_test_teardown(test_max_queries_recycles, teardown),
        cmocka_unit_test_teardown(test_thousand_requests_pool_of_4, teardown),
        cmocka_unit_test_teardown(test_pipelining_saves_writes, teardown),
        cmocka_unit_test_teardown(test_statement_cache, teardown),
        cmocka_unit_test_teardown(test_results, teardown),
        cmocka_unit_test_teardown(test_golden_rule_and_metrics, teardown),
        cmocka_unit_test_teardown(test_two_pools_metrics, teardown),
        cmocka_unit_test_teardown(test_command_timeout, teardown),
        cmocka_unit_test_teardown(test_batch_order, teardown),
        cmocka_unit_test_teardown(test_batch_one_fails, teardown),
        cmocka_unit_test_teardown(test_batch_large, teardown),
        cmocka_unit_test_teardown(test_batch_timeout, teardown),
        cmocka_unit_test_teardown(test_batch_cancel_held, teardown),
        cmocka_unit_test_teardown(test_batch_disconnect_cancels, teardown),
        cmocka_unit_test_teardown(test_batch_lost_connection, teardown),
        cmocka_unit_test_teardown(test_batch_pool_close, teardown),
        cmocka_unit_test_teardown(test_demo_database, demo_teardown),
        cmocka_unit_test_teardown(test_pool_in_lifespan, h_teardown),
    };

    if (getenv("CANTEEN_PG_CONNINFO") == NULL) {
        fprintf(stderr, "test_pg: run it through tests/pg/run_pg_test.sh\n");
        return 77;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
