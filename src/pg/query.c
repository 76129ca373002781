/*
 * query.c -- the awaitables: cn_pg_query (any connection of the pool) and
 * cn_pg_conn_query (an acquired one). A query is a heap pg_query handed to
 * the pool or the connection; the task parks on its future until the
 * connection resolves it at its batch's Sync. A timeout or a cancel
 * abandons it: a query not yet sent is simply taken back; one on the wire
 * stays with its connection, which cancels it on the server when it is the
 * one running and frees it when its results are in.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "pg_int.h"

static void batch_member_done(pg_query *q, int rc);

/* A query that was not abandoned has its answer: count it in the pool's figures. */
static void count_answered(const pg_query *q, int rc)
{
    cn_pg_stats *st = &q->pool->st;
    double ms = (double)(pg__now_ns() - q->t0_ns) / 1e6;

    st->queries++;
    if (rc == CN_EDB)
        st->errors++;
    st->query_ms_sum += ms;
    if (ms > st->query_ms_max)
        st->query_ms_max = ms;
}

void pg__query_done(pg_query *q, int rc)
{
    if (q->batch) {
        batch_member_done(q, rc);
        return;
    }
    if (q->abandoned) {
        PQclear(q->res);
        free(q);
        return;
    }
    count_answered(q, rc);
    cn_future_resolve(q->fut, rc);
}

static void on_abandon(cn_future *f, int reason, void *arg)
{
    pg_query *q = arg;

    (void)f;
    if (reason == CN_ETIMEDOUT)
        q->pool->st.timeouts++;
    q->abandoned = true;
    q->fut = NULL;
    if (!q->sent) {
        cn__list_remove(&q->link); /* the pool's or the connection's queue */
        *q->left = PG_LEFT_TAKEN_BACK;
        return;
    }
    *q->left = PG_LEFT_ON_WIRE;
    pg__conn_abandon(q->conn, q);
}

static int check(cn_pg_pool *p, const char *sql, int nparams, const char *const *params)
{
    int rc = cn_task_cancelled();

    if (rc < 0)
        return rc; /* CN_ENOTCORO */
    if (rc == 1)
        return CN_ECANCELED;
    if (p == NULL || sql == NULL || nparams < 0 || (nparams > 0 && params == NULL))
        return CN_EINVAL;
    if (p->closing)
        return CN_ESTATE;
    return 0;
}

/* Queue q (on the pool, or on an acquired connection), park, and turn what
 * came back into the caller's result. */
static int run(pg_query *q, pg_conn *c, cn_pg_result **out)
{
    cn_pg_pool *p = q->pool;
    int64_t timeout = p->cfg.command_timeout_ms > 0 ? p->cfg.command_timeout_ms : -1;
    cn_future *f = cn_future_new();
    int left = PG_LEFT_NOT, rc;

    if (f == NULL) {
        free(q);
        return CN_ENOMEM;
    }
    q->fut = f;
    q->left = &left;
    q->t0_ns = pg__now_ns();
    cn_future_on_abandon(f, on_abandon, q);
    if (c) {
        q->leased = true;
        cn__list_push(&c->pending, &q->link);
        pg__conn_mark_dirty(c);
    } else {
        cn__list_push(&p->pending, &q->link);
    }
    pg__pool_kick(p);
    rc = cn_future_wait(f, timeout);
    cn_future_free(f);
    /* Abandoned on the wire, q is its connection's, which may have freed it
     * before this task ran again: not a look at it (not even q->sent). */
    if (left == PG_LEFT_ON_WIRE)
        return rc;
    if (rc == CN_ETIMEDOUT || rc == CN_ECANCELED) {
        free(q); /* taken back, or failed unsent by the pool's close */
        return rc;
    }
    if (rc == 0 || rc == CN_EDB) {
        *out = pg__result_new(q->res, q->res ? NULL : q->state[0] ? q->state : "08006", q->why);
        if (*out == NULL) {
            PQclear(q->res);
            rc = CN_ENOMEM;
        }
    } else {
        PQclear(q->res);
    }
    free(q);
    return rc;
}

static pg_query *query_new(cn_pg_pool *p, const char *sql, int nparams, const char *const *params)
{
    pg_query *q = calloc(1, sizeof(*q));

    if (q) {
        q->pool = p;
        q->sql = sql;
        q->nparams = nparams;
        q->params = params;
        cn__list_init(&q->link);
    }
    return q;
}

int cn_pg_query(cn_pg_pool *p, const char *sql, int nparams, const char *const *params,
                cn_pg_result **out)
{
    pg_query *q;
    int rc;

    if (out)
        *out = NULL;
    rc = check(p, sql, nparams, params);
    if (rc < 0)
        return rc;
    if (out == NULL)
        return CN_EINVAL;
    if (pg__pool_unavailable(p))
        return CN_EUNAVAILABLE; /* the back-off runs: fail fast */
    q = query_new(p, sql, nparams, params);
    if (q == NULL)
        return CN_ENOMEM;
    return run(q, NULL, out);
}

int cn_pg_conn_query(cn_pg_conn *l, const char *sql, int nparams, const char *const *params,
                     cn_pg_result **out)
{
    pg_query *q;
    int rc;

    if (out)
        *out = NULL;
    if (l == NULL)
        return cn_task_cancelled() < 0 ? CN_ENOTCORO : CN_EINVAL;
    rc = check(l->pool, sql, nparams, params);
    if (rc < 0)
        return rc;
    if (out == NULL)
        return CN_EINVAL;
    if (l->released)
        return CN_ESTATE;
    if (l->c == NULL || l->c->state != C_READY) {
        *out = pg__result_new(NULL, "08006", "connection lost: release this connection");
        return *out ? CN_EDB : CN_ENOMEM;
    }
    q = query_new(l->pool, sql, nparams, params);
    if (q == NULL)
        return CN_ENOMEM;
    return run(q, l->c, out);
}

/* ---- batches (cn_pg_query_all) ---- */

static void batch_free(pg_batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        PQclear(b->q[i].res);
    free(b);
}

/* A member is finished: the batch's task wakes when the last one is. */
static void batch_member_done(pg_query *q, int rc)
{
    pg_batch *b = q->batch;

    if (q->abandoned) {
        PQclear(q->res);
        q->res = NULL;
    } else {
        count_answered(q, rc);
        q->rc = rc;
    }
    if (--b->pending > 0)
        return;
    if (b->abandoned)
        batch_free(b); /* its task has gone: the last member frees it */
    else
        cn_future_resolve(b->fut, 0);
}

static void on_batch_abandon(cn_future *f, int reason, void *arg)
{
    pg_batch *b = arg;
    pg_conn *cancel_on = NULL;

    (void)f;
    if (reason == CN_ETIMEDOUT)
        b->q[0].pool->st.timeouts++;
    b->abandoned = true;
    b->fut = NULL;
    for (size_t i = 0; i < b->n; i++) {
        pg_query *q = &b->q[i];
        if (q->abandoned)
            continue;
        q->abandoned = true;
        if (q->items == 0 && !q->sent) {
            /* not on the wire (waiting in a queue): taken back */
            if (!cn__list_empty(&q->link))
                cn__list_remove(&q->link);
            cn__list_init(&q->link);
            b->pending--;
        } else if (q->sent && q->conn != cancel_on) {
            cancel_on = q->conn;
            pg__conn_abandon(q->conn, q); /* cancels it if it is running */
        }
    }
    *b->left = b->pending > 0 ? PG_LEFT_ON_WIRE : PG_LEFT_TAKEN_BACK;
}

int cn_pg_query_all(cn_pg_pool *p, const cn_pg_batch_query *qs, size_t n, unsigned flags,
                    cn_pg_result **out)
{
    int64_t timeout;
    pg_batch *b;
    cn_future *f;
    uint64_t t0;
    int left = PG_LEFT_NOT, rc;

    if (out)
        for (size_t i = 0; i < n && n <= CN_PG_BATCH_MAX; i++)
            out[i] = NULL;
    rc = cn_task_cancelled();
    if (rc < 0)
        return rc; /* CN_ENOTCORO */
    if (rc == 1)
        return CN_ECANCELED;
    if (p == NULL || (n > 0 && (qs == NULL || out == NULL)) || n > CN_PG_BATCH_MAX ||
        (flags & ~(unsigned)CN_PG_BATCH_ATOMIC))
        return CN_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (qs[i].sql == NULL || qs[i].nparams < 0 || (qs[i].nparams > 0 && qs[i].params == NULL))
            return CN_EINVAL;
    if (p->closing)
        return CN_ESTATE;
    if (n == 0)
        return 0;
    if (pg__pool_unavailable(p))
        return CN_EUNAVAILABLE; /* the back-off runs: fail fast */
    b = malloc(sizeof(*b) + n * sizeof(b->q[0]));
    f = cn_future_new();
    if (b == NULL || f == NULL) {
        free(b);
        cn_future_free(f);
        return CN_ENOMEM;
    }
    memset(b, 0, sizeof(*b));
    b->fut = f;
    b->left = &left;
    b->n = b->pending = n;
    b->atomic = (flags & CN_PG_BATCH_ATOMIC) != 0;
    t0 = pg__now_ns();
    for (size_t i = 0; i < n; i++) {
        pg_query *q = &b->q[i];
        memset(q, 0, offsetof(pg_query, why)); /* why is written before it is read */
        q->why[0] = '\0';
        q->pool = p;
        q->sql = qs[i].sql;
        q->nparams = qs[i].nparams;
        q->params = qs[i].params;
        q->batch = b;
        q->t0_ns = t0;
        cn__list_push(&p->pending, &q->link); /* together, in order */
    }
    cn_future_on_abandon(f, on_batch_abandon, b);
    pg__pool_kick(p);
    timeout = p->cfg.command_timeout_ms > 0 ? p->cfg.command_timeout_ms : -1;
    rc = cn_future_wait(f, timeout);
    cn_future_free(f);
    /* Abandoned with members on the wire, b is theirs now, and may be gone
     * already: not a look at it. */
    if (left == PG_LEFT_ON_WIRE)
        return rc;
    if (rc < 0) { /* timed out or cancelled with nothing on the wire */
        batch_free(b);
        return rc;
    }
    /* every member is finished: the first error that is not the server's
     * (the pool closed, no connection could be made) is the batch's */
    for (size_t i = 0; i < n && rc == 0; i++)
        if (b->q[i].rc < 0 && b->q[i].rc != CN_EDB)
            rc = b->q[i].rc;
    for (size_t i = 0; i < n && rc == 0; i++) {
        pg_query *q = &b->q[i];
        if (q->rc == CN_EDB)
            rc = CN_EDB;
    }
    if (rc == 0 || rc == CN_EDB) {
        for (size_t i = 0; i < n; i++) {
            pg_query *q = &b->q[i];
            out[i] = pg__result_new(q->res,
                                    q->res        ? NULL
                                    : q->state[0] ? q->state
                                                  : "08006",
                                    q->why);
            if (out[i] == NULL) {
                for (size_t j = 0; j < i; j++) {
                    cn_pg_result_free(out[j]);
                    out[j] = NULL;
                }
                rc = CN_ENOMEM;
                break;
            }
            q->res = NULL; /* the result's now */
        }
    }
    batch_free(b);
    return rc;
}
