/*
 * query.c -- the awaitables: cn_pg_query (any connection of the pool) and
 * cn_pg_conn_query (an acquired one). A query is a heap pg_query handed to
 * the pool or the connection; the task parks on its future until the
 * connection resolves it at its batch's Sync. A timeout or a cancel
 * abandons it: a query not yet sent is simply taken back; one on the wire
 * stays with its connection, which cancels it on the server when it is the
 * one running and frees it when its results are in.
 */
#include <stdlib.h>
#include <string.h>

#include "pg_int.h"

void pg__query_done(pg_query *q, int rc)
{
    cn_pg_stats *st = &q->pool->st;
    double ms;

    if (q->abandoned) {
        PQclear(q->res);
        free(q);
        return;
    }
    ms = (double)(pg__now_ns() - q->t0_ns) / 1e6;
    st->queries++;
    if (rc == CN_EDB)
        st->errors++;
    st->query_ms_sum += ms;
    if (ms > st->query_ms_max)
        st->query_ms_max = ms;
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
        *out = pg__result_new(q->res, q->res ? NULL : "08006", q->why);
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
