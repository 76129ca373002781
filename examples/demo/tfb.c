/*
 * tfb.c -- the TechEmpower database tests on the demo (canteen-demo
 * --database URL): GET /db, /queries?queries=N, /fortunes,
 * /updates?queries=N and /cached-queries?count=N, through a libcanteen-pg
 * pool of its own. /json and /plaintext are in routes.c. The rules are
 * TechEmpower's (bench/tfb/verify.py checks them): one SELECT per row,
 * counts clamped to 1..500 with anything invalid counting as 1, fortunes
 * sorted and escaped, updates persisted (one batched UPDATE per request is
 * allowed). The tricks are the ones the rules allow: prepared statements
 * (the pool's statement cache), the N reads of a request sent as one
 * pipelined batch (cn_pg_query_all: N queries, one write, one park), one
 * UPDATE for all the rows of a request. The fortunes are escaped with
 * cn_html_escape. Built when libcanteen-pg is (DEMO_HAVE_PG).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "demo.h"

#ifdef DEMO_HAVE_PG
#include <canteen/pg.h>

#define WORLD_ROWS 10000
#define MAX_QUERIES 500

static const char SELECT_WORLD[] = "SELECT randomNumber FROM World WHERE id = $1";
static const char SELECT_FORTUNES[] = "SELECT id, message FROM Fortune";
/* the rows of one request in one statement: ids and numbers as two arrays */
static const char UPDATE_WORLDS[] =
    "UPDATE World SET randomNumber = v.r FROM "
    "(SELECT unnest($1::int[]) AS id, unnest($2::int[]) AS r) AS v WHERE World.id = v.id";

static cn_pg_pool *pool;
static int32_t cached[WORLD_ROWS + 1]; /* randomNumber by id, for /cached-queries */
static uint64_t rng_state;

/* xorshift64*: the loop is one thread, and rand() is not that fast */
static int32_t random_id(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (int32_t)((rng_state * 2685821657736338717ULL >> 33) % WORLD_ROWS) + 1;
}

/* ?queries=N or ?count=N: 1..500; missing, empty or not a number: 1 */
static int count_param(cn_req *req, const char *name)
{
    const char *s = cn_req_query(req, name);
    char *end;
    long n;

    if (s == NULL || *s == '\0')
        return 1;
    errno = 0;
    n = strtol(s, &end, 10);
    if (end == s || *end != '\0')
        return 1;
    if (errno == ERANGE)
        return n > 0 ? MAX_QUERIES : 1;
    return n < 1 ? 1 : n > MAX_QUERIES ? MAX_QUERIES : (int)n;
}

/* The decimal digits of 0 <= v < 10^9 at dst, NUL-terminated; returns how
 * many (printf is a measurable part of a 20-query request otherwise). */
static size_t put_uint(char *dst, int32_t v)
{
    char tmp[10];
    size_t n = 0, i;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    for (i = 0; i < n; i++)
        dst[i] = tmp[n - 1 - i];
    dst[n] = '\0';
    return n;
}

typedef struct world {
    int32_t id;
    int32_t number;
} world;

/* Read one row's randomNumber (/db). The text of the id lives on this
 * stack only while the call runs, which is all the pool needs. */
static int read_world(world *w)
{
    char id[12];
    const char *param = id;
    cn_pg_result *r;
    int64_t v = 0;
    int rc;

    put_uint(id, w->id);
    rc = cn_pg_query(pool, SELECT_WORLD, 1, &param, &r);
    if (rc < 0)
        return rc;
    rc = cn_pg_result_int64(r, 0, 0, &v);
    cn_pg_result_free(r);
    w->number = (int32_t)v;
    return rc;
}

/* Read n random rows, each its own query, as one batch: the pool sends
 * them on one connection in one write and this task parks once. */
static int read_worlds(cn_req *req, world *w, int n)
{
    cn_pg_batch_query *qs;
    cn_pg_result **out;
    char(*ids)[12];
    const char **params;
    int rc;

    if (n == 1) {
        /* one query: as a one-shot it may share its connection's write
         * with other requests' queries (a batch has its Syncs to itself) */
        w[0].id = random_id();
        return read_world(&w[0]);
    }
    qs = cn_req_alloc(req, sizeof *qs * (size_t)n);
    out = cn_req_alloc(req, sizeof *out * (size_t)n);
    ids = cn_req_alloc(req, sizeof *ids * (size_t)n);
    params = cn_req_alloc(req, sizeof *params * (size_t)n);
    if (qs == NULL || out == NULL || ids == NULL || params == NULL)
        return CN_ENOMEM;
    for (int i = 0; i < n; i++) {
        w[i].id = random_id();
        put_uint(ids[i], w[i].id);
        params[i] = ids[i];
        qs[i] = (cn_pg_batch_query){SELECT_WORLD, 1, &params[i]};
    }
    rc = cn_pg_query_all(pool, qs, (size_t)n, 0, out);
    if (rc < 0)
        return rc; /* CN_EDB: a row's query failed, and the request with it */
    for (int i = 0; i < n && rc == 0; i++) {
        int64_t v = 0;
        rc = cn_pg_result_int64(out[i], 0, 0, &v);
        w[i].number = (int32_t)v;
        cn_pg_result_free(out[i]);
    }
    return rc;
}

/* [{"id":1,"randomNumber":2},...] (or the one object) into the response */
static int send_worlds(cn_req *req, cn_res *res, const world *w, int n, int as_array)
{
    /* {"id":10000,"randomNumber":10000}, is 35 bytes */
    size_t cap = 40 * (size_t)n + 3, len = 0;
    char *buf = cn_req_alloc(req, cap);

    if (buf == NULL)
        return CN_ENOMEM;
    if (as_array)
        buf[len++] = '[';
    for (int i = 0; i < n; i++) {
        if (i > 0)
            buf[len++] = ',';
        memcpy(buf + len, "{\"id\":", 6);
        len += 6 + put_uint(buf + len + 6, w[i].id);
        memcpy(buf + len, ",\"randomNumber\":", 16);
        len += 16 + put_uint(buf + len + 16, w[i].number);
        buf[len++] = '}';
    }
    if (as_array)
        buf[len++] = ']';
    return cn_res_bytes(res, 200, buf, len, "application/json");
}

/* GET /db */
static int tfb_db(cn_req *req, cn_res *res)
{
    world w = {.id = random_id()};
    int rc = read_world(&w);

    return rc < 0 ? rc : send_worlds(req, res, &w, 1, 0);
}

/* GET /queries?queries=N */
static int tfb_queries(cn_req *req, cn_res *res)
{
    int n = count_param(req, "queries");
    world *w = cn_req_alloc(req, sizeof *w * (size_t)n);
    int rc;

    if (w == NULL)
        return CN_ENOMEM;
    rc = read_worlds(req, w, n);
    return rc < 0 ? rc : send_worlds(req, res, w, n, 1);
}

static int by_id(const void *a, const void *b)
{
    const world *x = *(const world *const *)a, *y = *(const world *const *)b;
    return (x->id > y->id) - (x->id < y->id);
}

/* GET /updates?queries=N: read N rows one query each (one batch), give
 * each a new number, write them back in one UPDATE (a second park). A row drawn twice gets one
 * number, and is written once; ids go in sorted order, so that concurrent requests lock their rows
 * in the same order and cannot deadlock. */
static int tfb_updates(cn_req *req, cn_res *res)
{
    int n = count_param(req, "queries"), rc, distinct = 0;
    world *w = cn_req_alloc(req, sizeof *w * (size_t)n);
    world **order = cn_req_alloc(req, sizeof *order * (size_t)n);
    /* "{1,2,...}": at most 6 bytes a number */
    char *ids = cn_req_alloc(req, 6 * (size_t)n + 3), *nums = cn_req_alloc(req, 6 * (size_t)n + 3);
    size_t li = 0, ln = 0;
    const char *params[2];
    cn_pg_batch_query upd;
    cn_pg_result *r;

    if (w == NULL || order == NULL || ids == NULL || nums == NULL)
        return CN_ENOMEM;
    rc = read_worlds(req, w, n);
    if (rc < 0)
        return rc;
    for (int i = 0; i < n; i++)
        order[i] = &w[i];
    qsort(order, (size_t)n, sizeof *order, by_id);
    ids[li++] = '{';
    nums[ln++] = '{';
    for (int i = 0; i < n; i++) {
        if (i > 0 && order[i]->id == order[i - 1]->id) {
            order[i]->number = order[i - 1]->number;
            continue;
        }
        order[i]->number = random_id();
        if (distinct > 0) {
            ids[li++] = ',';
            nums[ln++] = ',';
        }
        li += put_uint(ids + li, order[i]->id);
        ln += put_uint(nums + ln, order[i]->number);
        distinct++;
    }
    ids[li++] = '}';
    ids[li] = '\0';
    nums[ln++] = '}';
    nums[ln] = '\0';
    params[0] = ids;
    params[1] = nums;
    /* As a batch of one: a batch has its Syncs to itself, so the UPDATE is
     * its own transaction, its rows locked in id order. (As a one-shot
     * query it could share an implicit transaction with another request's
     * UPDATE, and two such transactions can deadlock.) */
    upd = (cn_pg_batch_query){UPDATE_WORLDS, 2, params};
    rc = cn_pg_query_all(pool, &upd, 1, 0, &r);
    if (rc < 0)
        return rc;
    cn_pg_result_free(r);
    return send_worlds(req, res, w, n, 1);
}

/* GET /cached-queries?count=N: from the table as it was read at startup */
static int tfb_cached(cn_req *req, cn_res *res)
{
    int n = count_param(req, "count");
    world *w = cn_req_alloc(req, sizeof *w * (size_t)n);

    if (w == NULL)
        return CN_ENOMEM;
    for (int i = 0; i < n; i++) {
        w[i].id = random_id();
        w[i].number = cached[w[i].id];
    }
    return send_worlds(req, res, w, n, 1);
}

/* ------------------------------------------------------------------------ */

typedef struct fortune {
    const char *id;
    const char *message;
    size_t len; /* of message */
} fortune;

static int by_message(const void *a, const void *b)
{
    /* byte order of UTF-8 is code point order, which is what TFB sorts by */
    return strcmp(((const fortune *)a)->message, ((const fortune *)b)->message);
}

/* GET /fortunes */
static int tfb_fortunes(cn_req *req, cn_res *res)
{
    static const char head[] = "<!DOCTYPE html><html><head><title>Fortunes</title></head>"
                               "<body><table><tr><th>id</th><th>message</th></tr>";
    static const char tail[] = "</table></body></html>";
    cn_pg_result *r;
    fortune *f;
    size_t cap, len;
    char *buf;
    int n, esc, rc = cn_pg_query(pool, SELECT_FORTUNES, 0, NULL, &r);

    if (rc < 0)
        return rc;
    n = cn_pg_result_rows(r);
    f = cn_req_alloc(req, sizeof *f * (size_t)(n + 1));
    if (f == NULL)
        return CN_ENOMEM;
    cap = sizeof head + sizeof tail;
    for (int i = 0; i < n; i++) {
        f[i].id = cn_pg_result_text(r, i, 0);
        f[i].message = cn_pg_result_text(r, i, 1);
        if (f[i].id == NULL || f[i].message == NULL)
            return cn_res_error(res, 500, "a NULL in Fortune");
    }
    f[n].id = "0";
    f[n].message = "Additional fortune added at request time.";
    n++;
    qsort(f, (size_t)n, sizeof *f, by_message);
    for (int i = 0; i < n; i++) {
        f[i].len = strlen(f[i].message);
        esc = cn_html_escape(NULL, 0, f[i].message, f[i].len);
        if (esc < 0)
            return esc;
        cap += sizeof "<tr><td></td><td></td></tr>" + strlen(f[i].id) + (size_t)esc;
    }
    buf = cn_req_alloc(req, cap);
    if (buf == NULL)
        return CN_ENOMEM;
    memcpy(buf, head, sizeof head - 1);
    len = sizeof head - 1;
    for (int i = 0; i < n; i++) {
        len += (size_t)sprintf(buf + len, "<tr><td>%s</td><td>", f[i].id);
        /* cap counted every escaped byte and the NUL: it fits */
        len += (size_t)cn_html_escape(buf + len, cap - len, f[i].message, f[i].len);
        memcpy(buf + len, "</td></tr>", 10);
        len += 10;
    }
    memcpy(buf + len, tail, sizeof tail - 1);
    len += sizeof tail - 1;
    /* the texts point into r, which lives until the request ends */
    return cn_res_bytes(res, 200, buf, len, "text/html; charset=utf-8");
}

/* ------------------------------------------------------------------------ */

/* The lifespan: the pool opens and the cache of /cached-queries is filled
 * (the whole table, read through the pool) before the app accepts anyone;
 * the pool closes after the last request. */
typedef struct tfb_setup {
    const char *url;
    unsigned pool_size;
    unsigned pipeline_depth;
} tfb_setup;

static int open_tfb(cn_app *app, void *arg)
{
    const tfb_setup *set = arg;
    cn_pg_config cfg = {.conninfo = set->url,
                        .name = "tfb",
                        .min_size = set->pool_size,
                        .max_size = set->pool_size,
                        .pipeline_depth = set->pipeline_depth,
                        /* no route here changes session state: a release
                         * needs no RESET ALL and friends */
                        .reset_on_release = -1};
    cn_pg_result *r;
    int64_t id, number;
    int rc = cn_pg_pool_new(app, &cfg, &pool);

    if (rc < 0)
        return rc;
    rc = cn_pg_query(pool, "SELECT id, randomNumber FROM World", 0, NULL, &r);
    if (rc < 0) {
        fprintf(stderr, "canteen-demo: the TechEmpower cache: %s%s%s\n", cn_strerror(rc),
                rc == CN_EDB ? ": " : "", rc == CN_EDB ? cn_pg_result_message(r) : "");
        if (rc == CN_EDB)
            cn_pg_result_free(r);
        cn_pg_pool_close(pool); /* a failed startup gets no shutdown hook */
        pool = NULL;
        return rc;
    }
    for (int i = 0; i < cn_pg_result_rows(r); i++)
        if (cn_pg_result_int64(r, i, 0, &id) == 0 && id >= 1 && id <= WORLD_ROWS &&
            cn_pg_result_int64(r, i, 1, &number) == 0)
            cached[id] = (int32_t)number;
    cn_pg_result_free(r);
    return 0;
}

static int close_tfb(cn_app *app, void *arg)
{
    (void)app;
    (void)arg;
    cn_pg_pool_close(pool);
    pool = NULL;
    return 0;
}

int demo_register_tfb(cn_app *app, const char *url, unsigned pool_size, unsigned pipeline_depth)
{
    static tfb_setup set;
    struct timespec ts;
    int rc;

    clock_gettime(CLOCK_REALTIME, &ts);
    rng_state =
        ((uint64_t)ts.tv_sec * 1000000007ULL) ^ (uint64_t)ts.tv_nsec ^ 0x9e3779b97f4a7c15ULL;
    set.url = url;
    set.pool_size = pool_size ? pool_size : 8;
    set.pipeline_depth = pipeline_depth; /* 0: the pool's default */
    rc = cn_app_lifespan(app, open_tfb, close_tfb, &set);
    rc = rc ? rc : cn_app_route(app, "GET /db", tfb_db, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /queries", tfb_queries, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /fortunes", tfb_fortunes, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /updates", tfb_updates, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /cached-queries", tfb_cached, NULL);
    return rc;
}

#else /* no libcanteen-pg */

int demo_register_tfb(cn_app *app, const char *url, unsigned pool_size, unsigned pipeline_depth)
{
    (void)app;
    (void)url;
    (void)pool_size;
    (void)pipeline_depth;
    return CN_EINVAL; /* as demo_use_database: no libcanteen-pg */
}

#endif
