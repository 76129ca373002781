/*
 * conn.c -- one PostgreSQL connection on the loop: libpq in non-blocking
 * pipeline mode, driven by a uv_poll on its socket.
 *
 * Connecting is connect.c's; this file has the socket's watch, the wire
 * and closing.
 *
 * The wire: everything sent is an item in a ring, in order -- PREPARE,
 * EXEC, INTERNAL (a rollback, the reset, a DEALLOCATE) and SYNC -- and
 * results are matched to items as they come back (a NULL from PQgetResult
 * ends an item's results; a Sync's result stands alone). A query's result
 * is held until its batch's Sync: only then is it committed. If the batch
 * had an error, the query that caused it fails with it and the others,
 * which PostgreSQL rolled back or skipped, go back to the pool to be sent
 * again (one-shot queries; a batch's, each with a Sync of its own) or fail
 * (an acquired connection's, an atomic batch's: SQLSTATE 25P02).
 *
 * The socket is watched for reading always (to notice a server that hangs
 * up on an idle connection) and for writing while PQflush has data left
 * (libpq-async's rule: keep reading while a flush is pending, or server and
 * client may wait on each other).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_int.h"

static void on_poll(uv_poll_t *h, int status, int events);
static void process(pg_conn *c);
static void conn_free(pg_conn *c);

uint64_t pg__now_ns(void)
{
    return uv_hrtime();
}

/* ---- handles ---- */

void pg__conn_on_closed(uv_handle_t *h)
{
    pg_conn *c = h->data;

    if (h != (uv_handle_t *)&c->timer)
        free(h);
    if (--c->handles == 0 && c->lease == NULL)
        conn_free(c);
}

static void drop_poll(pg_conn *c)
{
    if (c->poll == NULL)
        return;
    uv_poll_stop(c->poll);
    uv_close((uv_handle_t *)c->poll, pg__conn_on_closed);
    c->poll = NULL;
    c->fd = -1;
    c->events = 0;
}

/*
 * Watch libpq's socket for `events`. The socket is re-read each time: if
 * libpq replaced it the old handle goes and a new one comes. `renew` forces
 * a stop and start, so that a socket number libpq closed and reused during
 * a connect is registered with the kernel again.
 */
int pg__conn_watch(pg_conn *c, int events, bool renew)
{
    int fd = PQsocket(c->pg), rc;

    if (fd != c->fd)
        drop_poll(c);
    if (fd < 0)
        return CN_EINVAL;
    if (c->poll == NULL) {
        c->poll = malloc(sizeof(*c->poll));
        if (c->poll == NULL)
            return CN_ENOMEM;
        rc = uv_poll_init_socket(c->pool->loop, c->poll, fd);
        if (rc < 0) {
            free(c->poll);
            c->poll = NULL;
            return rc;
        }
        c->poll->data = c;
        uv_unref((uv_handle_t *)c->poll);
        c->handles++;
        c->fd = fd;
        c->events = 0;
    }
    if (renew && c->events) {
        uv_poll_stop(c->poll);
        c->events = 0;
    }
    if (events != c->events) {
        rc = uv_poll_start(c->poll, events, on_poll);
        if (rc < 0)
            return rc;
        c->events = events;
    }
    return 0;
}

void pg__conn_watch_ready(pg_conn *c)
{
    if (pg__conn_watch(c, UV_READABLE | (c->want_flush ? UV_WRITABLE : 0), false) < 0)
        pg__conn_close(c, "could not watch the connection's socket");
}

/* ---- the item ring ---- */

static pg_item *push_item(pg_conn *c, int kind, pg_query *q, pg_stmt *s)
{
    pg_item *it;

    if (c->count == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 32;
        pg_item *grown = malloc(cap * sizeof(*grown));
        if (grown == NULL)
            return NULL;
        for (size_t i = 0; i < c->count; i++)
            grown[i] = c->items[(c->head + i) % c->cap];
        free(c->items);
        c->items = grown;
        c->cap = cap;
        c->head = 0;
    }
    it = &c->items[(c->head + c->count) % c->cap];
    it->kind = kind;
    it->q = q;
    it->stmt = s;
    c->count++;
    return it;
}

static pg_item *head_item(pg_conn *c)
{
    return c->count ? &c->items[c->head] : NULL;
}

static void pop_item(pg_conn *c)
{
    c->head = (c->head + 1) % c->cap;
    c->count--;
}

/* ---- cancelling the running query (PQcancel blocks: on the pool) ---- */

typedef struct pg_cancel {
    pg_conn *c; /* kept (one of its handles) until the job is done */
    PGcancel *cc;
} pg_cancel;

static void cancel_work(void *arg)
{
    pg_cancel *k = arg;
    char err[256];

    /* returns once the postmaster has signalled the backend */
    PQcancel(k->cc, err, sizeof err);
}

static void check_head(pg_conn *c);

static void cancel_done(void *arg, int status)
{
    pg_cancel *k = arg;
    pg_conn *c = k->c;

    PQfreeCancel(k->cc);
    free(k);
    c->cancelling = false;
    c->cancel_at_ns = pg__now_ns(); /* it has landed, or will not */
    c->handles--;
    if (c->state != C_READY) {
        pg__conn_free_if_unused(c);
        return;
    }
    if (status == CN_ECANCELED)
        return; /* the app is being freed: its loop runs no more */
    /* what waited for the cancel goes out now */
    if (c->reset_due) {
        c->reset_due = false;
        c->resetting = false;
        pg__conn_reset(c);
        return;
    }
    if (!cn__list_empty(&c->pending) || !cn__list_empty(&c->outgoing))
        pg__conn_mark_dirty(c);
    check_head(c); /* a later batch of the wire may be abandoned too */
    if (c->count == 0 && c->busy == 0 && c->lease == NULL)
        pg__pool_conn_idle(c->pool, c);
    else
        pg__pool_kick(c->pool);
}

static void send_cancel(pg_conn *c)
{
    pg_cancel *k;

    if (c->cancel_sent || c->cancelling || c->state != C_READY)
        return;
    k = malloc(sizeof(*k));
    if (k) {
        k->c = c;
        k->cc = PQgetCancel(c->pg);
    }
    if (k == NULL || k->cc == NULL ||
        cn_app_pool_submit(c->pool->app, cancel_work, cancel_done, k) < 0) {
        /* no way to reach the server: drop the connection instead */
        if (k && k->cc)
            PQfreeCancel(k->cc);
        free(k);
        pg__conn_close(c, "query cancelled (connection dropped)");
        return;
    }
    c->handles++;
    c->cancelling = true;
    c->cancel_sent = true;
    c->cancel_at_ns = pg__now_ns();
    c->pool->st.cancels++;
}

/* If the query running now on the server belongs to a task that has gone,
 * stop it there. */
static void check_head(pg_conn *c)
{
    pg_item *it = head_item(c);

    if (it && it->q && it->q->abandoned)
        send_cancel(c);
}

void pg__conn_abandon(pg_conn *c, pg_query *q)
{
    (void)q;
    check_head(c);
}

/* ---- sending ---- */

static bool send_internal(pg_conn *c, const char *sql, pg_stmt *s)
{
    if (!PQsendQueryParams(c->pg, sql, 0, NULL, NULL, NULL, NULL, 0))
        return false;
    return push_item(c, IT_INTERNAL, NULL, s) != NULL;
}

static bool send_query(pg_conn *c, pg_query *q)
{
    const cn_pg_config *cfg = &c->pool->cfg;
    pg_stmt *s = NULL, *evicted = NULL;
    bool prepare = false;

    if (q->sql == c->memo_sql && c->memo_stmt) {
        s = c->memo_stmt;
    } else if (cfg->statement_cache_size > 0 &&
               strlen(q->sql) <= cfg->max_cacheable_statement_size) {
        s = pg__stmt_get(c, q->sql);
        if (s == NULL) {
            s = pg__stmt_add(c, q->sql, &evicted);
            prepare = s != NULL;
        }
        c->memo_sql = q->sql;
        c->memo_stmt = s;
    }
    if (evicted) {
        char sql[48];
        snprintf(sql, sizeof sql, "DEALLOCATE %s", evicted->name);
        if (!send_internal(c, sql, evicted)) {
            pg__stmt_unref(evicted);
            return false;
        }
    }
    if (prepare) {
        c->pool->st.prepares++;
        if (!PQsendPrepare(c->pg, s->name, q->sql, q->nparams, NULL) ||
            !push_item(c, IT_PREPARE, q, s))
            return false;
        s->refs++;
        q->items++;
    }
    if (s ? !PQsendQueryPrepared(c->pg, s->name, q->nparams, q->params, NULL, NULL, 0)
          : !PQsendQueryParams(c->pg, q->sql, q->nparams, NULL, q->params, NULL, NULL, 0))
        return false;
    if (push_item(c, IT_EXEC, q, NULL) == NULL)
        return false;
    q->items++;
    q->sent = true;
    q->conn = c;
    c->busy++;
    c->queries_run++;
    return true;
}

/* End a batch: one Sync (libpq 15's PQpipelineSync also flushes). */
static bool send_sync(pg_conn *c)
{
    int rc;

    if (!PQpipelineSync(c->pg) || push_item(c, IT_SYNC, NULL, NULL) == NULL)
        return false;
    c->pool->st.batches++;
    rc = PQflush(c->pg);
    if (rc < 0)
        return false;
    c->want_flush = rc == 1;
    return true;
}

static void fail_on_close(pg_query *q, const char *why);

/* A query given to c that never went out: another connection takes it --
 * unless it is part of an atomic batch, whose other queries may have gone
 * out on c (and will fail with it): it fails too, rather than commit
 * without them. */
static void give_back(pg_conn *c, pg_query *q, const char *why)
{
    if (q->batch && q->batch->atomic)
        fail_on_close(q, why);
    else
        pg__pool_requeue(c->pool, q);
}

void pg__conn_mark_dirty(pg_conn *c)
{
    if (c->dirty)
        return;
    c->dirty = true;
    cn__list_push(&c->pool->dirty, &c->dirty_link);
}

void pg__conn_flush(pg_conn *c)
{
    bool ok = true;

    c->memo_sql = NULL; /* addresses of an earlier flush may hold other texts now */
    c->memo_stmt = NULL;
    c->dirty = false;
    cn__list_remove(&c->dirty_link);
    if (c->state != C_READY || c->cancelling)
        return; /* cancel_done marks it dirty again */
    if (c->lease) {
        /* an acquired connection: each query is its own batch */
        while (ok && !cn__list_empty(&c->pending)) {
            pg_query *q = CN__CONTAINER_OF(c->pending.next, pg_query, link);
            cn__list_remove(&q->link);
            ok = send_query(c, q) && send_sync(c);
            if (!ok && q->items == 0)
                cn__list_push(c->pending.next, &q->link); /* failed with the rest */
        }
    } else if (!cn__list_empty(&c->outgoing)) {
        /* One Sync for the one-shot queries; a batch (cn_pg_query_all)
         * gets Syncs of its own, one per batch_chunk queries (one for an
         * atomic batch), and a query sent again after its chunk failed
         * one of its own. */
        unsigned chunk = c->pool->cfg.batch_chunk, since = 0;
        const pg_batch *cur = NULL;
        bool prev_solo = false;
        while (ok && !cn__list_empty(&c->outgoing)) {
            pg_query *q = CN__CONTAINER_OF(c->outgoing.next, pg_query, link);
            if (since > 0 && (q->batch != cur || q->solo || prev_solo ||
                              (cur && !cur->atomic && since >= chunk))) {
                if (!send_sync(c)) {
                    ok = false;
                    break;
                }
                since = 0;
            }
            cn__list_remove(&q->link);
            c->nout--;
            ok = send_query(c, q);
            if (!ok && q->items == 0)
                give_back(c, q, PQerrorMessage(c->pg)); /* nothing of it went out */
            cur = q->batch;
            prev_solo = q->solo;
            since++;
        }
        ok = ok && send_sync(c);
    }
    c->memo_sql = NULL;
    c->memo_stmt = NULL;
    if (!ok) {
        pg__conn_close(c, PQerrorMessage(c->pg));
        return;
    }
    pg__conn_watch_ready(c);
}

void pg__conn_reset(pg_conn *c)
{
    PGTransactionStatusType ts = PQtransactionStatus(c->pg);
    bool ok = true;

    if (c->state != C_READY) {
        pg__conn_close(c, "released while not open");
        return;
    }
    if (c->cancelling) {
        c->reset_due = true; /* cancel_done resets it */
        c->resetting = true;
        return;
    }
    if (ts != PQTRANS_IDLE)
        ok = send_internal(c, "ROLLBACK", NULL);
    if (ok && c->pool->cfg.reset_on_release > 0) {
        /* asyncpg's reset: what one borrower may have left behind */
        ok = send_internal(c, "SELECT pg_advisory_unlock_all()", NULL) &&
             send_internal(c, "CLOSE ALL", NULL) && send_internal(c, "UNLISTEN *", NULL) &&
             send_internal(c, "RESET ALL", NULL);
    }
    if (ok && c->count == 0) {
        pg__pool_conn_idle(c->pool, c);
        return;
    }
    c->resetting = true;
    if (!ok || !send_sync(c)) {
        pg__conn_close(c, PQerrorMessage(c->pg));
        return;
    }
    pg__conn_watch_ready(c);
}

bool pg__conn_available(const pg_conn *c)
{
    return c->state == C_READY && c->lease == NULL && !c->resetting && !c->retiring &&
           !c->cancelling;
}

/* ---- receiving ---- */

static bool is_error(ExecStatusType st)
{
    return st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR;
}

/* Keep r as q's result: its first error wins over anything else. */
static void keep(pg_query *q, PGresult *r, bool error)
{
    if (q->failed) {
        PQclear(r);
        return;
    }
    PQclear(q->res);
    q->res = r;
    q->failed = error;
}

static void item_result(pg_conn *c, pg_item *it, PGresult *r)
{
    ExecStatusType st = PQresultStatus(r);
    pg_query *q = it->q;

    if (it->kind == IT_INTERNAL) {
        if (is_error(st))
            c->internal_error = true;
        PQclear(r);
        return;
    }
    if (st == PGRES_PIPELINE_ABORTED) {
        /* skipped by the server after another query's error */
        if (it->kind == IT_PREPARE)
            pg__stmt_drop(c, it->stmt);
        PQclear(r);
        return;
    }
    if (!is_error(st)) {
        if (it->kind == IT_PREPARE) {
            it->stmt->ready = true;
            PQclear(r);
        } else {
            keep(q, r, false);
        }
        return;
    }
    c->batch_error = true;
    if (it->kind == IT_PREPARE)
        pg__stmt_drop(c, it->stmt);
    if (!q->failed) {
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        bool exec = it->kind == IT_EXEC;
        /* our cache was wrong (26000: no such prepared statement; 0A000:
         * its plan is stale) or our cancel was late and hit this one (its
         * PREPARE or its EXEC): not the query's own fault, so it may go
         * again */
        if (state && ((exec && (strcmp(state, "26000") == 0 || strcmp(state, "0A000") == 0)) ||
                      (strcmp(state, "57014") == 0 && !q->abandoned && c->cancel_at_ns &&
                       (c->cancelling || pg__now_ns() - c->cancel_at_ns < 2000000000ull))))
            q->retry = true;
        if (exec && state && strcmp(state, "0A000") == 0) {
            pg_stmt *s = pg__stmt_get(c, q->sql);
            if (s)
                pg__stmt_drop(c, s);
        }
    }
    keep(q, r, true);
}

static void item_end(pg_conn *c, pg_item *it)
{
    pg_query *q = it->q;

    if (it->stmt && it->kind != IT_EXEC)
        pg__stmt_unref(it->stmt);
    if (q && --q->items == 0)
        cn__list_push(&c->settle, &q->link);
}

/* In an atomic batch whose Sync had an error: did one of its queries fail
 * for a reason of its own (then none is sent again)? */
static bool atomic_own_error(const cn__list *settle)
{
    for (const cn__list *it = settle->next; it != settle; it = it->next) {
        const pg_query *q = PG_CONST_OF(it, pg_query, link);
        if (q->batch && q->batch->atomic && q->failed && !q->retry)
            return true;
    }
    return false;
}

/* A Sync came back: the batch before it is over, committed or not. */
static void batch_end(pg_conn *c)
{
    cn_pg_pool *p = c->pool;
    bool err = c->batch_error, atomic_fails = err && atomic_own_error(&c->settle);
    cn__list again;

    c->batch_error = false;
    c->cancel_sent = false; /* the next batch may have one of its own */
    cn__list_init(&again);
    while (!cn__list_empty(&c->settle)) {
        pg_query *q = CN__CONTAINER_OF(c->settle.next, pg_query, link);
        bool atomic = q->batch && q->batch->atomic;
        cn__list_remove(&q->link);
        c->busy--;
        if (q->abandoned || !err) {
            pg__query_done(q, 0);
        } else if ((q->failed && !q->retry) || q->leased || (atomic && atomic_fails) ||
                   ++q->tries > 3) {
            if (!q->failed) {
                PQclear(q->res);
                q->res = NULL;
                snprintf(q->state, sizeof q->state, "%s", "25P02");
                snprintf(q->why, sizeof q->why, "%s", "skipped: another query of its batch failed");
            }
            pg__query_done(q, CN_EDB);
        } else {
            /* rolled back with its batch: it never committed, send it again
             * -- a member of a batch on its own, so that no other error can
             * take it along (an atomic batch: all together again) */
            PQclear(q->res);
            q->res = NULL;
            q->failed = q->retry = q->sent = false;
            q->conn = NULL;
            q->solo = q->batch != NULL && !atomic;
            p->st.retries++;
            cn__list_push(&again, &q->link);
        }
    }
    while (!cn__list_empty(&again)) {
        pg_query *q = CN__CONTAINER_OF(again.prev, pg_query, link);
        cn__list_remove(&q->link);
        pg__pool_requeue(p, q); /* to the front, last first: order is kept */
    }
    if (c->internal_error) {
        p->st.resets_failed++;
        pg__conn_close(c, "a rollback or reset failed");
        return;
    }
    if (c->count == 0) {
        c->resetting = c->reset_due; /* still waiting for a cancel */
        /* a one-shot query left a transaction open: roll it back now (or,
         * with a cancel on its way, once it has landed) */
        if (c->lease == NULL && PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
            if (c->cancelling) {
                c->reset_due = c->resetting = true;
                return;
            }
            if (!send_internal(c, "ROLLBACK", NULL) || !send_sync(c)) {
                pg__conn_close(c, PQerrorMessage(c->pg));
                return;
            }
            c->resetting = true;
            pg__conn_watch_ready(c);
            return;
        }
        if (c->retiring) {
            pg__conn_close(c, NULL);
            return;
        }
        if (c->busy == 0)
            pg__pool_conn_idle(p, c);
    }
    pg__pool_kick(p);
}

static void process(pg_conn *c)
{
    int nulls = 0;

    for (int guard = 0; guard < 1000000 && c->state == C_READY && c->count > 0; guard++) {
        pg_item *it;
        PGresult *r;

        if (PQisBusy(c->pg))
            break;
        r = PQgetResult(c->pg);
        it = head_item(c);
        if (it->kind == IT_SYNC) {
            if (r == NULL) {
                /* a NULL between results, not the Sync's: tolerated once */
                if (PQstatus(c->pg) == CONNECTION_BAD || ++nulls > 1)
                    break;
                continue;
            }
            nulls = 0;
            if (PQresultStatus(r) != PGRES_PIPELINE_SYNC) {
                /* the connection broke before the Sync (libpq reports it
                 * as one more error), or the stream is out of step */
                char why[200];
                snprintf(why, sizeof why, "%s",
                         is_error(PQresultStatus(r)) ? PQresultErrorMessage(r)
                                                     : "unexpected result order from the server");
                why[strcspn(why, "\n")] = 0;
                PQclear(r);
                pg__conn_close(c, why);
                return;
            }
            PQclear(r);
            pop_item(c);
            batch_end(c);
            continue;
        }
        if (r == NULL) {
            pop_item(c);
            item_end(c, it);
            check_head(c);
            continue;
        }
        item_result(c, it, r);
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    pg_conn *c = h->data;
    int rc;

    if (c->state == C_CONNECTING) {
        pg__conn_connect_poll(c, status);
        return;
    }
    if (c->state != C_READY)
        return;
    if (status < 0) {
        pg__conn_close(c, uv_strerror(status));
        return;
    }
    if (events & (UV_READABLE | UV_DISCONNECT)) {
        rc = PQconsumeInput(c->pg);
        /* what arrived before a hang-up (the server's last error) is parsed
         * and handed over first */
        process(c);
        if (c->state != C_READY)
            return;
        if (!rc || PQstatus(c->pg) == CONNECTION_BAD) {
            pg__conn_close(c, PQerrorMessage(c->pg));
            return;
        }
        for (PGnotify *n; (n = PQnotifies(c->pg)) != NULL;)
            PQfreemem(n);
    }
    if (c->want_flush) {
        rc = PQflush(c->pg);
        if (rc < 0) {
            pg__conn_close(c, PQerrorMessage(c->pg));
            return;
        }
        c->want_flush = rc == 1;
    }
    pg__conn_watch_ready(c);
}

/* ---- closing ---- */

/* A query that was on a connection that is going: it fails, with the
 * server's error if one came in for it. */
static void fail_on_close(pg_query *q, const char *why)
{
    if (!q->failed) {
        PQclear(q->res);
        q->res = NULL;
        snprintf(q->why, sizeof q->why, "connection lost: %s", why);
    }
    pg__query_done(q, CN_EDB);
}

void pg__conn_close(pg_conn *c, const char *why)
{
    cn_pg_pool *p = c->pool;
    bool was_ready = c->state == C_READY;

    if (c->state == C_DEAD)
        return;
    if (why == NULL || *why == 0)
        why = "closed";
    if (c->state != C_READY)
        p->nconnecting--;
    c->state = C_DEAD;
    cn__list_remove(&c->link);
    p->nconns--;
    if (c->dirty) {
        c->dirty = false;
        cn__list_remove(&c->dirty_link);
    }
    /* what is on the wire fails: those queries may or may not have run
     * (a query is settled once, when the last of its items goes) */
    while (c->count > 0) {
        pg_item *it = head_item(c);
        pop_item(c);
        if (it->stmt && it->kind != IT_EXEC)
            pg__stmt_unref(it->stmt);
        if (it->q && --it->q->items == 0)
            cn__list_push(&c->settle, &it->q->link);
    }
    while (!cn__list_empty(&c->settle)) {
        pg_query *q = CN__CONTAINER_OF(c->settle.next, pg_query, link);
        cn__list_remove(&q->link);
        fail_on_close(q, why);
    }
    /* given to it but never sent: another connection will take them */
    while (!cn__list_empty(&c->outgoing)) {
        pg_query *q = CN__CONTAINER_OF(c->outgoing.next, pg_query, link);
        cn__list_remove(&q->link);
        give_back(c, q, why);
    }
    c->nout = 0;
    while (!cn__list_empty(&c->pending)) {
        pg_query *q = CN__CONTAINER_OF(c->pending.next, pg_query, link);
        cn__list_remove(&q->link);
        fail_on_close(q, why);
    }
    c->busy = 0;
    pg__stmt_clear(c);
    /* libuv's order: stop watching, then close the socket, then the handle */
    if (c->poll)
        uv_poll_stop(c->poll);
    if (c->pg) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    drop_poll(c);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, pg__conn_on_closed);
    if (c->resolving)
        uv_cancel((uv_req_t *)&c->gai); /* on_resolved still runs, and frees */
    if (was_ready && !p->closing && !c->retiring) {
        p->st.lost++;
        cn_log(CN_LOG_WARN, "pg pool %s: connection lost: %s", p->name, why);
    }
    pg__pool_kick(p);
}

void pg__conn_free_if_unused(pg_conn *c)
{
    if (c->handles == 0 && c->lease == NULL)
        conn_free(c);
}

static void conn_free(pg_conn *c)
{
    cn_pg_pool *p = c->pool;

    free(c->items);
    free(c);
    pg__pool_conn_gone(p);
}

void pg__conn_unlease(pg_conn *c)
{
    c->lease = NULL;
    if (c->state == C_DEAD && c->handles == 0)
        conn_free(c);
}
