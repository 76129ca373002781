/*
 * pool.c -- the PostgreSQL pool: its settings, which connection gets which
 * query, acquire and release, growth to max_size and idle expiry down to
 * min_size, back-off while the server cannot be reached, and the figures.
 *
 * Work is handed out once per turn of the loop, from a uv_prepare handle
 * (it runs after the coroutines woken in this turn have run, just before
 * the loop waits for I/O): acquirers first, then one-shot queries -- to an
 * idle connection, else (while the pool may grow) to a connection being
 * opened for them, else pipelined onto the least busy one, up to
 * pipeline_depth. Then every connection with something to send sends it
 * as one batch: one write for everything this turn gave it.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_int.h"

#define MS (1000000ull)

static void on_flush(uv_prepare_t *h);
static void dispatch(cn_pg_pool *p);
static int metrics_join(cn_pg_pool *p);
static void metrics_leave(cn_pg_pool *p);

/* ---- settings ---- */

static void fill_defaults(cn_pg_config *c)
{
    if (c->max_size == 0)
        c->max_size = c->min_size > 10 ? c->min_size : 10;
    if (c->min_size == 0)
        c->min_size = c->max_size < 10 ? c->max_size : 10;
    if (c->max_queries == 0)
        c->max_queries = 50000;
    if (c->max_inactive_ms == 0)
        c->max_inactive_ms = 300000;
    if (c->connect_timeout_ms <= 0)
        c->connect_timeout_ms = 60000;
    if (c->statement_cache_size == 0)
        c->statement_cache_size = 100;
    if (c->max_cacheable_statement_size == 0)
        c->max_cacheable_statement_size = 15 * 1024;
    if (c->pipeline_depth == 0)
        c->pipeline_depth = 16;
    if (c->reconnect_min_ms <= 0)
        c->reconnect_min_ms = 100;
    if (c->reconnect_max_ms <= 0)
        c->reconnect_max_ms = 5000;
    if (c->reconnect_max_ms < c->reconnect_min_ms)
        c->reconnect_max_ms = c->reconnect_min_ms;
    if (c->reset_on_release == 0)
        c->reset_on_release = 1;
    if (c->batch_chunk == 0)
        c->batch_chunk = 64;
}

static void free_params(cn_pg_pool *p)
{
    for (int i = 0; p->keys && p->keys[i]; i++) {
        free(p->keys[i]);
        if (i != p->hostaddr_at && i != p->host_at)
            free(p->vals[i]);
    }
    free(p->keys);
    free(p->vals);
}

/*
 * The connection parameters as PQconnectStartParams wants them. A host that
 * is a name (not a socket directory, not given with hostaddr) is resolved
 * before each attempt, here with libuv, and passed as hostaddr, so that
 * libpq never calls getaddrinfo on the loop.
 */
static int parse_conninfo(cn_pg_pool *p)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(p->conninfo, &err), *o;
    const char *host = NULL, *hostaddr = NULL, *port = NULL;
    int n = 0, i = 0, rc = 0;

    if (opts == NULL) {
        if (err) {
            snprintf(p->last_error, sizeof p->last_error, "%s", err);
            PQfreemem(err);
        }
        return CN_EINVAL;
    }
    for (o = opts; o->keyword; o++) {
        if (o->val == NULL || *o->val == 0)
            continue;
        n++;
        if (strcmp(o->keyword, "host") == 0)
            host = o->val;
        else if (strcmp(o->keyword, "hostaddr") == 0)
            hostaddr = o->val;
        else if (strcmp(o->keyword, "port") == 0)
            port = o->val;
    }
    p->hostaddr_at = p->host_at = -1;
    if (host && !hostaddr && host[0] != '/' && host[0] != '@') {
        if (strchr(host, ',')) {
            snprintf(p->last_error, sizeof p->last_error,
                     "a list of hosts needs hostaddr (libpq would resolve them on the loop)");
            rc = CN_EINVAL;
            goto out;
        }
        p->host_name = strdup(host);
        p->host_port = strdup(port && !strchr(port, ',') ? port : "5432");
        if (p->host_name == NULL || p->host_port == NULL) {
            rc = CN_ENOMEM;
            goto out;
        }
        n++;
    }
    p->keys = calloc((size_t)n + 1, sizeof(*p->keys));
    p->vals = calloc((size_t)n + 1, sizeof(*p->vals));
    if (p->keys == NULL || p->vals == NULL) {
        rc = CN_ENOMEM;
        goto out;
    }
    for (o = opts; o->keyword; o++) {
        if (o->val == NULL || *o->val == 0)
            continue;
        p->keys[i] = strdup(o->keyword);
        if (p->host_name && strcmp(o->keyword, "host") == 0) {
            /* filled per attempt: the name once per resolved address */
            p->vals[i] = p->hostlist;
            p->host_at = i;
        } else {
            p->vals[i] = strdup(o->val);
        }
        if (p->keys[i] == NULL || p->vals[i] == NULL) {
            free(p->keys[i]);
            if (i != p->host_at)
                free(p->vals[i]);
            p->keys[i] = NULL;
            rc = CN_ENOMEM;
            goto out;
        }
        i++;
    }
    if (p->host_name) {
        p->keys[i] = strdup("hostaddr");
        if (p->keys[i] == NULL) {
            rc = CN_ENOMEM;
            goto out;
        }
        p->vals[i] = p->hostaddr;
        p->hostaddr_at = i;
    }
out:
    PQconninfoFree(opts);
    return rc;
}

/* ---- lifetime ---- */

static void maybe_free(cn_pg_pool *p)
{
    if (!p->closing || p->handles > 0 || p->alive > 0)
        return;
    free_params(p);
    free(p->host_name);
    free(p->host_port);
    free(p->conninfo);
    free(p->name);
    free(p);
}

static void on_pool_handle_closed(uv_handle_t *h)
{
    cn_pg_pool *p = h->data;

    p->handles--;
    maybe_free(p);
}

void pg__pool_conn_gone(cn_pg_pool *p)
{
    p->alive--;
    maybe_free(p);
}

static void maintain(cn_pg_pool *p);

static void on_tick(uv_timer_t *t)
{
    maintain(t->data);
}

static void on_retry(uv_timer_t *t)
{
    cn_pg_pool *p = t->data;

    p->retry_on = false;
    dispatch(p);
}

int cn_pg_pool_new(cn_app *app, const cn_pg_config *cfg, cn_pg_pool **out)
{
    cn_pg_pool *p;
    uint64_t tick;
    int rc;

    if (out)
        *out = NULL;
    if (app == NULL || cfg == NULL || cfg->conninfo == NULL || out == NULL)
        return CN_EINVAL;
    if (cfg->max_size && cfg->min_size > cfg->max_size)
        return CN_EINVAL;
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return CN_ENOMEM;
    p->app = app;
    p->loop = cn_app_loop(app);
    p->cfg = *cfg;
    fill_defaults(&p->cfg);
    p->conninfo = strdup(cfg->conninfo);
    p->name = strdup(cfg->name ? cfg->name : "default");
    cn__list_init(&p->conns);
    cn__list_init(&p->pending);
    cn__list_init(&p->acquirers);
    cn__list_init(&p->dirty);
    rc = p->conninfo && p->name ? parse_conninfo(p) : CN_ENOMEM;
    if (rc == 0)
        rc = metrics_join(p);
    if (rc < 0) {
        p->closing = true;
        maybe_free(p);
        return rc;
    }
    p->cfg.conninfo = p->conninfo;
    p->cfg.name = p->name;
    uv_prepare_init(p->loop, &p->flush);
    uv_timer_init(p->loop, &p->tick);
    uv_timer_init(p->loop, &p->retry);
    p->flush.data = p->tick.data = p->retry.data = p;
    uv_unref((uv_handle_t *)&p->flush);
    uv_unref((uv_handle_t *)&p->tick);
    uv_unref((uv_handle_t *)&p->retry);
    p->handles = 3;
    /* idle expiry is checked a few times per lifetime, at most each second */
    tick = p->cfg.max_inactive_ms > 0 ? (uint64_t)p->cfg.max_inactive_ms / 4 : 1000;
    tick = tick < 10 ? 10 : tick > 1000 ? 1000 : tick;
    /* first run as soon as the loop runs: the minimum is opened then */
    uv_timer_start(&p->tick, on_tick, 0, tick);
    *out = p;
    return 0;
}

void cn_pg_pool_close(cn_pg_pool *p)
{
    if (p == NULL || p->closing)
        return;
    p->closing = true;
    metrics_leave(p);
    while (!cn__list_empty(&p->pending)) {
        pg_query *q = CN__CONTAINER_OF(p->pending.next, pg_query, link);
        cn__list_remove(&q->link);
        pg__query_done(q, CN_ECANCELED);
    }
    while (!cn__list_empty(&p->acquirers)) {
        pg_waiter *w = CN__CONTAINER_OF(p->acquirers.next, pg_waiter, link);
        cn__list_remove(&w->link);
        cn_future_resolve(w->fut, CN_ECANCELED);
    }
    while (!cn__list_empty(&p->conns))
        pg__conn_close(CN__CONTAINER_OF(p->conns.next, pg_conn, link), "the pool is closing");
    /* whatever the connections gave back (never sent) fails too */
    while (!cn__list_empty(&p->pending)) {
        pg_query *q = CN__CONTAINER_OF(p->pending.next, pg_query, link);
        cn__list_remove(&q->link);
        pg__query_done(q, CN_ECANCELED);
    }
    uv_close((uv_handle_t *)&p->flush, on_pool_handle_closed);
    uv_close((uv_handle_t *)&p->tick, on_pool_handle_closed);
    uv_close((uv_handle_t *)&p->retry, on_pool_handle_closed);
}

const cn_pg_config *cn_pg_pool_config(const cn_pg_pool *p)
{
    return p ? &p->cfg : NULL;
}

const char *cn_pg_pool_last_error(const cn_pg_pool *p)
{
    return p ? p->last_error : "";
}

/* ---- growth, back-off, expiry ---- */

static bool has_ready(const cn_pg_pool *p)
{
    for (const cn__list *it = p->conns.next; it != &p->conns; it = it->next)
        if (PG_CONST_OF(it, pg_conn, link)->state == C_READY)
            return true;
    return false;
}

static unsigned count_list(const cn__list *h)
{
    unsigned n = 0;

    for (const cn__list *it = h->next; it != h; it = it->next)
        n++;
    return n;
}

/* What waits for a connection: a batch (cn_pg_query_all) counts once, as
 * it goes to one connection. */
static unsigned count_demand(const cn__list *h)
{
    const pg_batch *prev = NULL;
    unsigned n = 0;

    for (const cn__list *it = h->next; it != h; it = it->next) {
        const pg_query *q = PG_CONST_OF(it, pg_query, link);
        n += q->batch == NULL || q->batch != prev;
        prev = q->batch;
    }
    return n;
}

/* Open connections for the minimum and for whoever waits, within
 * max_size; while connects fail, one probe at a time after the back-off. */
static void grow(cn_pg_pool *p)
{
    uint64_t now = pg__now_ns();
    unsigned want = 0, demand;

    if (p->closing)
        return;
    if (p->failures > 0 && now < p->next_attempt_ns) {
        if (!p->retry_on) {
            p->retry_on = true;
            uv_timer_start(&p->retry, on_retry, (p->next_attempt_ns - now) / MS + 1, 0);
        }
        return;
    }
    /* Full: nothing can be opened, so no need to count who waits. This runs
     * on every dispatch, and the pending list can hold thousands of queries
     * (256 requests of 20): walking it each time was a quarter of the CPU. */
    if (p->nconns >= p->cfg.max_size)
        return;
    demand = count_demand(&p->pending) + count_list(&p->acquirers);
    if (p->nconns < p->cfg.min_size)
        want = p->cfg.min_size - p->nconns;
    if (demand > p->nconnecting && demand - p->nconnecting > want)
        want = demand - p->nconnecting;
    if (want > p->cfg.max_size - p->nconns)
        want = p->cfg.max_size - p->nconns;
    if (p->failures > 0)
        want = p->nconnecting ? 0 : (want ? 1 : 0);
    while (want-- > 0)
        if (pg__conn_open(p) == NULL)
            break;
}

static void maintain(cn_pg_pool *p)
{
    int64_t life = p->cfg.max_inactive_ms;
    uint64_t now = pg__now_ns();
    cn__list *it, *next;

    if (p->closing)
        return;
    /* idle expiry, never below the minimum (asyncpg #989, #1268) */
    for (it = p->conns.next; life > 0 && it != &p->conns; it = next) {
        pg_conn *c = CN__CONTAINER_OF(it, pg_conn, link);
        next = it->next;
        if (p->nconns <= p->cfg.min_size)
            break;
        if (pg__conn_available(c) && c->busy == 0 && c->count == 0 && c->nout == 0 &&
            now - c->idle_since_ns >= (uint64_t)life * MS) {
            p->st.expired++;
            c->retiring = true;
            pg__conn_close(c, NULL);
        }
    }
    grow(p);
}

void pg__pool_conn_ready(cn_pg_pool *p, pg_conn *c)
{
    (void)c;
    p->failures = 0;
    p->next_attempt_ns = 0;
    p->down = false;
    p->st.connects++;
    pg__pool_kick(p);
}

void pg__pool_conn_failed(cn_pg_pool *p, const char *why)
{
    uint64_t backoff;

    p->st.connect_failures++;
    p->failures++;
    backoff = (uint64_t)p->cfg.reconnect_min_ms << (p->failures > 16 ? 16 : p->failures - 1);
    if (backoff > (uint64_t)p->cfg.reconnect_max_ms)
        backoff = (uint64_t)p->cfg.reconnect_max_ms;
    p->next_attempt_ns = pg__now_ns() + backoff * MS;
    snprintf(p->last_error, sizeof p->last_error, "%s", why);
    if (p->closing)
        return;
    cn_log(CN_LOG_WARN, "pg pool %s: %s (next attempt in %llu ms)", p->name, why,
           (unsigned long long)backoff);
    if (!has_ready(p) && p->nconnecting == 0) {
        /* nothing can serve them: fail fast rather than let them hang */
        p->down = true;
        while (!cn__list_empty(&p->pending)) {
            pg_query *q = CN__CONTAINER_OF(p->pending.next, pg_query, link);
            cn__list_remove(&q->link);
            snprintf(q->why, sizeof q->why, "%s", why);
            pg__query_done(q, CN_EUNAVAILABLE);
        }
        while (!cn__list_empty(&p->acquirers)) {
            pg_waiter *w = CN__CONTAINER_OF(p->acquirers.next, pg_waiter, link);
            cn__list_remove(&w->link);
            cn_future_resolve(w->fut, CN_EUNAVAILABLE);
        }
    }
    pg__pool_kick(p);
}

/* While the server is known to be unreachable and the back-off runs, new
 * work fails at once. */
bool pg__pool_unavailable(const cn_pg_pool *p)
{
    return p->down && p->nconnecting == 0 && pg__now_ns() < p->next_attempt_ns && !has_ready(p);
}

void pg__pool_conn_idle(cn_pg_pool *p, pg_conn *c)
{
    c->idle_since_ns = pg__now_ns();
    if (!c->lease && c->queries_run >= p->cfg.max_queries) {
        p->st.recycled++;
        c->retiring = true;
        pg__conn_close(c, NULL);
        return;
    }
    pg__pool_kick(p);
}

void pg__pool_requeue(cn_pg_pool *p, pg_query *q)
{
    cn__list_push(p->pending.next, &q->link); /* before the first: at the front */
    pg__pool_kick(p);
}

/* ---- handing out work ---- */

void pg__pool_kick(cn_pg_pool *p)
{
    if (p->flush_on || p->closing)
        return;
    p->flush_on = true;
    uv_prepare_start(&p->flush, on_flush);
}

static pg_conn *find_idle(cn_pg_pool *p)
{
    for (cn__list *it = p->conns.next; it != &p->conns; it = it->next) {
        pg_conn *c = CN__CONTAINER_OF(it, pg_conn, link);
        if (pg__conn_available(c) && c->busy == 0 && c->count == 0 && c->nout == 0 &&
            c->queries_run < p->cfg.max_queries)
            return c;
    }
    return NULL;
}

static pg_conn *least_busy(cn_pg_pool *p)
{
    pg_conn *best = NULL;

    for (cn__list *it = p->conns.next; it != &p->conns; it = it->next) {
        pg_conn *c = CN__CONTAINER_OF(it, pg_conn, link);
        if (!pg__conn_available(c) || c->busy + c->nout >= p->cfg.pipeline_depth ||
            c->queries_run + c->nout >= p->cfg.max_queries)
            continue;
        if (best == NULL || c->busy + c->nout < best->busy + best->nout)
            best = c;
    }
    return best;
}

static void assign(pg_conn *c, pg_query *q)
{
    cn__list_remove(&q->link);
    cn__list_push(&c->outgoing, &q->link);
    c->nout++;
    pg__conn_mark_dirty(c);
}

static cn_pg_conn *lease_new(pg_conn *c)
{
    cn_pg_conn *l = calloc(1, sizeof(*l));

    if (l) {
        l->pool = c->pool;
        l->c = c;
        c->lease = l;
    }
    return l;
}

static void dispatch(cn_pg_pool *p)
{
    pg_conn *c;

    if (p->closing)
        return;
    /* acquirers first: they need a connection to themselves */
    while (!cn__list_empty(&p->acquirers) && (c = find_idle(p)) != NULL) {
        pg_waiter *w = CN__CONTAINER_OF(p->acquirers.next, pg_waiter, link);
        cn__list_remove(&w->link);
        w->lease = lease_new(c);
        cn_future_resolve(w->fut, w->lease ? 0 : CN_ENOMEM);
    }
    while (cn__list_empty(&p->acquirers) && !cn__list_empty(&p->pending)) {
        pg_query *q = CN__CONTAINER_OF(p->pending.next, pg_query, link);
        c = find_idle(p);
        if (c == NULL && p->nconns >= p->cfg.max_size)
            c = least_busy(p); /* no room to grow: pipeline */
        if (c == NULL)
            break;
        assign(c, q);
        /* a batch goes to one connection whole, whatever pipeline_depth */
        while (q->batch && !cn__list_empty(&p->pending)) {
            pg_query *next = CN__CONTAINER_OF(p->pending.next, pg_query, link);
            if (next->batch != q->batch)
                break;
            assign(c, next);
        }
    }
    grow(p);
    while (!cn__list_empty(&p->dirty))
        pg__conn_flush(CN__CONTAINER_OF(p->dirty.next, pg_conn, dirty_link));
}

static void on_flush(uv_prepare_t *h)
{
    cn_pg_pool *p = h->data;

    uv_prepare_stop(h);
    p->flush_on = false;
    dispatch(p);
}

/* ---- acquire and release ---- */

static void on_acquire_abandon(cn_future *f, int reason, void *arg)
{
    pg_waiter *w = arg;

    (void)f;
    (void)reason;
    cn__list_remove(&w->link);
}

static void auto_release(void *arg)
{
    cn_pg_conn *l = arg;

    if (!l->released) {
        cn_log(CN_LOG_WARN,
               "a PostgreSQL connection acquired by %s was never released; releasing it",
               l->label ? l->label : "a handler");
        cn_pg_release(l);
    }
    free(l);
}

int cn_pg_acquire(cn_pg_pool *p, int64_t timeout_ms, cn_pg_conn **out)
{
    pg_waiter w = {0};
    uint64_t t0 = pg__now_ns();
    double waited;
    cn_req *req;
    int rc = cn_task_cancelled();

    if (out)
        *out = NULL;
    if (rc < 0)
        return rc; /* CN_ENOTCORO */
    if (rc == 1)
        return CN_ECANCELED;
    if (p == NULL || out == NULL)
        return CN_EINVAL;
    if (p->closing)
        return CN_ESTATE;
    if (pg__pool_unavailable(p))
        return CN_EUNAVAILABLE;
    if (timeout_ms == 0)
        timeout_ms = p->cfg.acquire_timeout_ms > 0 ? p->cfg.acquire_timeout_ms : -1;
    w.fut = cn_future_new();
    if (w.fut == NULL)
        return CN_ENOMEM;
    cn_future_on_abandon(w.fut, on_acquire_abandon, &w);
    cn__list_push(&p->acquirers, &w.link);
    dispatch(p); /* an idle connection is taken at once */
    rc = cn_future_wait(w.fut, timeout_ms);
    cn_future_free(w.fut);
    waited = (double)(pg__now_ns() - t0) / 1e6;
    p->st.acquire_wait_ms_sum += waited;
    if (waited > p->st.acquire_wait_ms_max)
        p->st.acquire_wait_ms_max = waited;
    if (rc == CN_ETIMEDOUT)
        p->st.acquire_timeouts++;
    if (rc < 0) {
        if (w.lease) /* resolved, but not with a connection we keep */
            cn_pg_release(w.lease);
        return rc;
    }
    p->st.acquires++;
    req = cn_req_current();
    if (req && cn_req_defer(req, auto_release, w.lease) == 0) {
        w.lease->in_req = true;
        w.lease->label = cn_req_sprintf(req, "%s %s", cn_req_method(req),
                                        cn_req_route(req) ? cn_req_route(req) : cn_req_path(req));
    }
    *out = w.lease;
    return 0;
}

void cn_pg_release(cn_pg_conn *l)
{
    pg_conn *c;

    if (l == NULL || l->released)
        return;
    l->released = true;
    c = l->c;
    l->c = NULL;
    if (c && c->state == C_DEAD) {
        pg__conn_unlease(c); /* may free the connection, and a closed pool */
    } else if (c) {
        c->lease = NULL;
        pg__conn_reset(c);
        pg__pool_kick(l->pool);
    }
    if (!l->in_req)
        free(l);
}

/* ---- figures ---- */

void cn_pg_pool_stats(const cn_pg_pool *p, cn_pg_stats *out)
{
    unsigned idle = 0, in_use = 0;

    if (p == NULL || out == NULL)
        return;
    *out = p->st;
    for (const cn__list *it = p->conns.next; it != &p->conns; it = it->next) {
        const pg_conn *c = PG_CONST_OF(it, pg_conn, link);
        if (c->state != C_READY)
            continue;
        if (c->lease || c->busy > 0 || c->nout > 0)
            in_use++;
        else
            idle++;
    }
    out->size = p->nconns;
    out->connecting = p->nconnecting;
    out->idle = idle;
    out->in_use = in_use;
    out->waiters = count_demand(&p->pending) + count_list(&p->acquirers);
}

/*
 * /metrics: one collector per app for all its pools, so that each family's
 * HELP and TYPE appear once with a series per pool (the text format wants
 * a family's lines together, and no HELP twice). Pools may live on apps in
 * several threads: the registry has a lock.
 */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static cn__list reg = {&reg, &reg}; /* every open pool, by reg_link */

static void app_metrics(cn_metrics_out *out, void *data);

/* The first other pool of p->app named like p, else NULL (under reg_lock). */
static cn_pg_pool *reg_find(const cn_pg_pool *p, bool same_name)
{
    for (cn__list *it = reg.next; it != &reg; it = it->next) {
        cn_pg_pool *q = CN__CONTAINER_OF(it, cn_pg_pool, reg_link);
        if (q != p && q->app == p->app && (!same_name || strcmp(q->name, p->name) == 0))
            return q;
    }
    return NULL;
}

static int metrics_join(cn_pg_pool *p)
{
    bool first;
    int rc = 0;

    pthread_mutex_lock(&reg_lock);
    if (reg_find(p, true)) {
        pthread_mutex_unlock(&reg_lock);
        return CN_EINVAL; /* its series would be another pool's */
    }
    first = reg_find(p, false) == NULL;
    cn__list_push(&reg, &p->reg_link);
    pthread_mutex_unlock(&reg_lock);
    if (first)
        rc = cn_app_metrics_add(p->app, app_metrics, p->app);
    if (rc < 0)
        metrics_leave(p);
    return rc;
}

static void metrics_leave(cn_pg_pool *p)
{
    bool last;

    pthread_mutex_lock(&reg_lock);
    if (p->reg_link.next == NULL || cn__list_empty(&p->reg_link)) {
        pthread_mutex_unlock(&reg_lock);
        return;
    }
    cn__list_remove(&p->reg_link);
    last = reg_find(p, false) == NULL;
    pthread_mutex_unlock(&reg_lock);
    if (last)
        cn_app_metrics_remove(p->app, app_metrics, p->app);
}

/* How a family's figure is read from cn_pg_stats and written. */
enum { UINT, U64, MS_AS_SECONDS, ACQUIRE_COUNT };

static const struct family {
    const char *name, *suffix, *type, *help; /* type and help NULL: the family's next line */
    int kind;
    size_t at; /* offsetof the figure in cn_pg_stats */
} families[] = {
#define F(name, suffix, type, help, kind, field)                                                   \
    {                                                                                              \
        name, suffix, type, help, kind, offsetof(cn_pg_stats, field)                               \
    }
    F("connections", "", "gauge", "Connections open or opening.", UINT, size),
    F("connections_idle", "", "gauge", "Open connections with nothing to do.", UINT, idle),
    F("connections_in_use", "", "gauge", "Connections borrowed or running one-shot queries.", UINT,
      in_use),
    F("waiters", "", "gauge", "Acquires and queries waiting for a connection.", UINT, waiters),
    F("acquire_wait_seconds", "_sum", "summary", "Time cn_pg_acquire waited.", MS_AS_SECONDS,
      acquire_wait_ms_sum),
    F("acquire_wait_seconds", "_count", NULL, NULL, ACQUIRE_COUNT, acquires),
    F("acquire_timeouts_total", "", "counter", "Acquires that timed out.", U64, acquire_timeouts),
    F("query_seconds", "_sum", "summary", "Time from a query's call to its result.", MS_AS_SECONDS,
      query_ms_sum),
    F("query_seconds", "_count", NULL, NULL, U64, queries),
    F("query_errors_total", "", "counter", "Queries the server refused (CN_EDB).", U64, errors),
    F("query_timeouts_total", "", "counter", "Queries past command_timeout_ms.", U64, timeouts),
    F("cancels_total", "", "counter", "Cancel requests sent to the server.", U64, cancels),
    F("batches_total", "", "counter", "Pipeline batches sent (one write each).", U64, batches),
    F("connects_total", "", "counter", "Connections opened.", U64, connects),
    F("connect_failures_total", "", "counter", "Connection attempts that failed.", U64,
      connect_failures),
    F("reconnects_total", "", "counter", "Open connections lost and replaced.", U64, lost),
#undef F
};

static void put_figure(cn_metrics_out *out, const struct family *f, const cn_pg_stats *s)
{
    const void *at = (const char *)s + f->at;

    switch (f->kind) {
    case UINT:
        cn_metrics_printf(out, "%u", *(const unsigned *)at);
        break;
    case U64:
        cn_metrics_printf(out, "%llu", (unsigned long long)*(const uint64_t *)at);
        break;
    case MS_AS_SECONDS:
        cn_metrics_seconds(out, *(const double *)at);
        break;
    default: /* ACQUIRE_COUNT: the summary counts the acquires that timed out too */
        cn_metrics_printf(out, "%llu", (unsigned long long)(s->acquires + s->acquire_timeouts));
        break;
    }
}

typedef struct snapshot {
    const char *name;
    cn_pg_stats st;
} snapshot;

static void app_metrics(cn_metrics_out *out, void *data)
{
    const cn_app *app = data;
    snapshot *snap = NULL;
    size_t n = 0, cap = 0;

    /* every pool's figures under the lock, then the printing without it */
    pthread_mutex_lock(&reg_lock);
    for (cn__list *it = reg.next; it != &reg; it = it->next) {
        const cn_pg_pool *p = CN__CONTAINER_OF(it, cn_pg_pool, reg_link);
        if (p->app != app)
            continue;
        if (n == cap) {
            size_t more_cap = cap ? cap * 2 : 4;
            snapshot *more = realloc(snap, more_cap * sizeof(*snap));
            if (more == NULL)
                break; /* the pools seen so far */
            snap = more;
            cap = more_cap;
        }
        snap[n].name = p->name; /* freed after metrics_leave, on this loop */
        cn_pg_pool_stats(p, &snap[n++].st);
    }
    pthread_mutex_unlock(&reg_lock);
    for (size_t f = 0; f < CN__ARRAY_SIZE(families); f++) {
        const struct family *fam = &families[f];
        if (fam->help)
            cn_metrics_printf(out, "# HELP canteen_pg_%s %s\n# TYPE canteen_pg_%s %s\n", fam->name,
                              fam->help, fam->name, fam->type);
        for (size_t i = 0; i < n; i++) {
            cn_metrics_printf(out, "canteen_pg_%s%s{pool=\"%s\"} ", fam->name, fam->suffix,
                              snap[i].name);
            put_figure(out, fam, &snap[i].st);
            cn_metrics_printf(out, "\n");
        }
    }
    free(snap);
}
