/*
 * connect.c -- opening one PostgreSQL connection without blocking the loop.
 *
 * A host name is resolved with uv_getaddrinfo first (libpq would block on
 * it); then PQconnectStartParams, then PQconnectPoll each time the socket
 * is ready the way the last call asked, re-reading PQsocket() every time
 * (libpq may have opened a new socket: the next address, or a retry
 * without TLS), all under a timer for connect_timeout_ms. When it is up:
 * PQsetnonblocking and PQenterPipelineMode, and the pool hears of it; when
 * it fails, the pool backs off.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_int.h"

static void connect_failed(pg_conn *c, const char *why)
{
    char msg[256];

    snprintf(msg, sizeof msg, "%s", why && *why ? why : "could not connect");
    /* libpq's messages end with a newline; the log adds its own */
    msg[strcspn(msg, "\n")] = 0;
    pg__conn_close(c, msg);
    pg__pool_conn_failed(c->pool, msg);
}

static void on_connect_timeout(uv_timer_t *t)
{
    pg_conn *c = t->data;
    char msg[96];

    snprintf(msg, sizeof msg, "connection attempt timed out after %lld ms",
             (long long)c->pool->cfg.connect_timeout_ms);
    connect_failed(c, msg);
}

/* The server's notices and warnings go to Canteen's log, not to stderr
 * as libpq's default would print them. */
static void on_notice(void *arg, const char *message)
{
    const cn_pg_pool *p = arg;
    int n = (int)strcspn(message, "\n");

    cn_log(CN_LOG_INFO, "pg pool %s: %.*s", p->name, n, message);
}

static void connect_step(pg_conn *c, PostgresPollingStatusType st)
{
    int rc = 0;

    switch (st) {
    case PGRES_POLLING_READING:
        rc = pg__conn_watch(c, UV_READABLE, true);
        break;
    case PGRES_POLLING_WRITING:
        rc = pg__conn_watch(c, UV_WRITABLE, true);
        break;
    case PGRES_POLLING_OK:
        uv_timer_stop(&c->timer);
        PQsetNoticeProcessor(c->pg, on_notice, c->pool);
        if (PQsetnonblocking(c->pg, 1) != 0 || PQenterPipelineMode(c->pg) != 1) {
            connect_failed(c, PQerrorMessage(c->pg));
            return;
        }
        c->state = C_READY;
        c->pool->nconnecting--;
        c->idle_since_ns = pg__now_ns();
        pg__conn_watch_ready(c);
        if (c->state == C_READY)
            pg__pool_conn_ready(c->pool, c);
        return;
    default:
        connect_failed(c, PQerrorMessage(c->pg));
        return;
    }
    if (rc < 0)
        connect_failed(c, "could not watch the connection's socket");
}

static void start_connect(pg_conn *c)
{
    cn_pg_pool *p = c->pool;

    c->pg = PQconnectStartParams((const char *const *)p->keys, (const char *const *)p->vals, 0);
    if (c->pg == NULL) {
        connect_failed(c, "out of memory");
        return;
    }
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        connect_failed(c, PQerrorMessage(c->pg));
        return;
    }
    c->state = C_CONNECTING;
    /* before the first PQconnectPoll, behave as if it asked for writing */
    connect_step(c, PGRES_POLLING_WRITING);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    pg_conn *c = req->data;
    cn_pg_pool *p = c->pool;
    char msg[160];

    c->handles--;
    c->resolving = false;
    if (c->state == C_DEAD) {
        uv_freeaddrinfo(res);
        pg__conn_free_if_unused(c);
        return;
    }
    if (status < 0 || res == NULL) {
        snprintf(msg, sizeof msg, "could not resolve host \"%s\": %s", p->host_name,
                 uv_strerror(status));
        uv_freeaddrinfo(res);
        connect_failed(c, msg);
        return;
    }
    /*
     * Every address (up to 4), as libpq would try them: hostaddr gets the
     * list and host the name once per address, which libpq wants for
     * authentication and TLS. The values are copied by
     * PQconnectStartParams, so the pool's buffers serve every attempt.
     */
    p->hostaddr[0] = p->hostlist[0] = 0;
    for (struct addrinfo *ai = res, *seen; ai; ai = ai->ai_next) {
        char ip[48];
        size_t n = 0;
        for (seen = res; seen != ai; seen = seen->ai_next)
            if (seen->ai_addrlen == ai->ai_addrlen &&
                memcmp(seen->ai_addr, ai->ai_addr, ai->ai_addrlen) == 0)
                break;
        if (seen != ai || uv_ip_name(ai->ai_addr, ip, sizeof ip) < 0)
            continue; /* a duplicate (one per socket type), or not IP */
        for (const char *q = p->hostaddr; *q; q++)
            n += *q == ',';
        if (p->hostaddr[0] && n >= 3)
            break;
        snprintf(p->hostaddr + strlen(p->hostaddr), sizeof p->hostaddr - strlen(p->hostaddr),
                 "%s%s", p->hostaddr[0] ? "," : "", ip);
        snprintf(p->hostlist + strlen(p->hostlist), sizeof p->hostlist - strlen(p->hostlist),
                 "%s%s", p->hostlist[0] ? "," : "", p->host_name);
    }
    uv_freeaddrinfo(res);
    if (p->hostaddr[0] == 0) {
        snprintf(msg, sizeof msg, "host \"%s\" has no IP address", p->host_name);
        connect_failed(c, msg);
        return;
    }
    start_connect(c);
}

pg_conn *pg__conn_open(cn_pg_pool *p)
{
    pg_conn *c = calloc(1, sizeof(*c));
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};

    if (c == NULL)
        return NULL;
    c->pool = p;
    c->fd = -1;
    cn__list_init(&c->outgoing);
    cn__list_init(&c->pending);
    cn__list_init(&c->settle);
    cn__list_init(&c->lru);
    cn__list_init(&c->dirty_link);
    uv_timer_init(p->loop, &c->timer);
    c->timer.data = c;
    uv_unref((uv_handle_t *)&c->timer);
    c->handles = 1;
    cn__list_push(&p->conns, &c->link);
    p->nconns++;
    p->nconnecting++;
    p->alive++;
    uv_timer_start(&c->timer, on_connect_timeout, (uint64_t)p->cfg.connect_timeout_ms, 0);
    if (p->host_name) {
        c->state = C_RESOLVING;
        c->gai.data = c;
        c->handles++;
        c->resolving = true;
        if (uv_getaddrinfo(p->loop, &c->gai, on_resolved, p->host_name, p->host_port, &hints) < 0) {
            c->handles--;
            c->resolving = false;
            connect_failed(c, "could not start resolving the host");
        }
        return c;
    }
    start_connect(c);
    return c;
}

void pg__conn_connect_poll(pg_conn *c, int status)
{
    if (status < 0) {
        connect_failed(c, uv_strerror(status));
        return;
    }
    connect_step(c, PQconnectPoll(c->pg));
}
