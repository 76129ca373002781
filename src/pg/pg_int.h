/*
 * pg_int.h -- libcanteen-pg's insides: the pool, its connections, the
 * queries in flight and the prepared-statement cache.
 *
 * Built on Canteen's public API only (canteen.h, canteen/uv.h); the
 * intrusive list of src/common.h is header-only and shared.
 *
 * Ownership, once:
 * - The pool owns its connections; a connection is freed when its libuv
 *   handles have closed and no lease points at it. The pool is freed when
 *   it is closing, its own handles have closed and no connection is left.
 * - A query (pg_query) is allocated by the task that makes it and freed by
 *   that task after its wait -- unless the wait was abandoned (timeout,
 *   cancel) while the query was on the wire: then the connection frees it
 *   once its results are in.
 */
#ifndef CN_PG_INT_H
#define CN_PG_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "../common.h"
#include "canteen/pg.h"
#include "canteen/uv.h"

typedef struct pg_conn pg_conn;
typedef struct pg_stmt pg_stmt;
typedef struct pg_batch pg_batch;

/* One query of a task, from the call to its result. */
typedef struct pg_query {
    cn__list link; /* pool->pending, a conn's pending or its settle list */
    cn_pg_pool *pool;
    pg_conn *conn; /* once sent */
    const char *sql;
    int nparams;
    const char *const *params;
    cn_future *fut;
    PGresult *res;  /* the result (or the error) held until the Sync */
    bool leased;    /* on an acquired connection: never sent again */
    bool sent;      /* on the wire: its results must be read */
    bool abandoned; /* the task has gone (timeout, cancel) */
    /* the waiting task's: set when it abandons the query (PG_LEFT_*) */
    int *left;
    bool failed;    /* the error of its batch is this query's own */
    bool retry;     /* its batch was rolled back: send it again */
    unsigned items; /* its items still on the wire */
    unsigned tries;
    uint64_t t0_ns;
    pg_batch *batch; /* a member of a cn_pg_query_all, or NULL */
    int rc;          /* a member's outcome (it has no future of its own) */
    bool solo;       /* sent again after its chunk failed: a Sync of its own */
    char state[6];   /* the SQLSTATE when there is no server result ("" : 08006) */
    char why[200];   /* the error when there is no server result for it: keep
                      * it last (a batch clears its members up to it only) */
} pg_query;

/*
 * A cn_pg_query_all: its members in one allocation, one future for all.
 * The task frees it after its wait -- unless it abandoned the batch while
 * members were on the wire: then the last of them to finish frees it.
 */
struct pg_batch {
    cn_future *fut;
    int *left; /* the waiting task's PG_LEFT_* (as pg_query.left) */
    size_t n;
    size_t pending; /* members not finished */
    bool atomic;
    bool abandoned;
    pg_query q[];
};

/* What an abandon left a query to (pg_query.left): its task frees one taken
 * back before it was sent; one on the wire is its connection's. */
enum { PG_LEFT_NOT = 0, PG_LEFT_TAKEN_BACK, PG_LEFT_ON_WIRE };

/* What went out on a connection, in order: the results come back so. */
enum { IT_PREPARE, IT_EXEC, IT_INTERNAL, IT_SYNC };

typedef struct pg_item {
    int kind;
    pg_query *q;   /* IT_PREPARE, IT_EXEC */
    pg_stmt *stmt; /* IT_PREPARE, and IT_INTERNAL for a DEALLOCATE: a reference */
} pg_item;

/* The lease behind a cn_pg_conn handle. */
struct cn_pg_conn {
    cn_pg_pool *pool;
    pg_conn *c;
    bool released;
    bool in_req; /* freed by the request's clean-up, not by the release */
    const char *label;
};

enum { C_RESOLVING, C_CONNECTING, C_READY, C_DEAD };

struct pg_conn {
    cn__list link;       /* pool->conns */
    cn__list dirty_link; /* pool->dirty while it has something to send */
    cn_pg_pool *pool;
    PGconn *pg;
    uv_poll_t *poll; /* its own allocation: replaced when PQsocket changes */
    int fd;
    int events;       /* what the poll watches */
    uv_timer_t timer; /* the connect timeout */
    uv_getaddrinfo_t gai;
    int state;
    int handles; /* open libuv handles (timer, poll), the DNS request, a cancel job */
    bool resolving;
    /* the wire */
    pg_item *items;
    size_t cap, head, count;
    unsigned busy;     /* queries sent and not settled */
    cn__list outgoing; /* one-shot queries given to it for the next flush */
    unsigned nout;
    cn__list pending; /* an acquired connection's queries, not yet sent */
    cn__list settle;  /* results in, waiting for their batch's Sync */
    bool batch_error;
    bool internal_error; /* a rollback or reset failed: close it */
    bool want_flush;
    bool dirty;
    /* PostgreSQL's cancel names no query: it stops whatever the backend
     * runs when it lands, or nothing if it lands while the backend waits
     * for input. So one goes per batch (Sync) at most, and nothing new is
     * sent while one is on its way (its job not done), so that a late one
     * can only land on the batch it was for or on an idle backend. */
    bool cancel_sent;      /* a cancel went for the batch now running */
    bool cancelling;       /* its PQcancel job has not finished */
    bool reset_due;        /* a release came while cancelling: reset after it */
    uint64_t cancel_at_ns; /* when the last cancel went (a late one may hit the next query) */
    bool resetting;        /* the reset after a release is on the wire */
    bool retiring;         /* close once nothing is on the wire */
    struct cn_pg_conn *lease;
    uint64_t queries_run;
    uint64_t idle_since_ns;
    /* the prepared-statement cache */
    cn__list lru; /* most recent first */
    pg_stmt **table;
    size_t table_cap, nstmts;
    uint64_t next_stmt;
    /* the last statement looked up in this flush, by its SQL's address:
     * the queries of one flush are all alive, so one address is one text
     * (a batch of N of the same query hashes its SQL once, not N times) */
    const char *memo_sql;
    pg_stmt *memo_stmt;
};

struct cn_pg_pool {
    cn_app *app;
    uv_loop_t *loop;
    cn_pg_config cfg;
    char *conninfo, *name;
    /* PQconnectStartParams' arrays, from PQconninfoParse; "hostaddr" is
     * filled per attempt when the host is a name */
    char **keys;
    char **vals;
    int hostaddr_at; /* index of hostaddr in keys, -1 when not resolved */
    int host_at;     /* index of host: the name, repeated once per address */
    char *host_name; /* the name to resolve, or NULL */
    char *host_port;
    char hostaddr[4 * 48]; /* up to 4 addresses, comma-separated */
    char hostlist[4 * 256];
    cn__list reg_link; /* the pools /metrics shows (pool.c) */
    cn__list conns;
    cn__list pending;   /* one-shot queries without a connection */
    cn__list acquirers; /* cn_pg_acquire waiting */
    cn__list dirty;     /* connections with something to send */
    unsigned nconns, nconnecting;
    unsigned alive; /* connection structs not yet freed (closed ones too) */
    uv_prepare_t flush;
    uv_timer_t tick;
    uv_timer_t retry;
    bool flush_on, retry_on;
    int handles;
    bool closing;
    /* back-off */
    unsigned failures;        /* connect failures in a row */
    uint64_t next_attempt_ns; /* no connect before this */
    bool down;                /* the last attempt failed and none is open */
    char last_error[256];
    cn_pg_stats st;
};

/* An acquire waiting for a connection. */
typedef struct pg_waiter {
    cn__list link;
    cn_future *fut;
    struct cn_pg_conn *lease; /* what it was given */
} pg_waiter;

/* CN__CONTAINER_OF for a const node. */
#define PG_CONST_OF(ptr, type, field) ((const type *)((const char *)(ptr)-offsetof(type, field)))

uint64_t pg__now_ns(void);

/* pool.c */
void pg__pool_kick(cn_pg_pool *p); /* dispatch at the next flush */
void pg__pool_conn_ready(cn_pg_pool *p, pg_conn *c);
void pg__pool_conn_failed(cn_pg_pool *p, const char *why);
void pg__pool_conn_gone(cn_pg_pool *p);             /* a connection was freed: maybe the pool too */
void pg__pool_conn_idle(cn_pg_pool *p, pg_conn *c); /* nothing on the wire */
void pg__pool_requeue(cn_pg_pool *p, pg_query *q);  /* a rolled-back one-shot query */
bool pg__pool_unavailable(const cn_pg_pool *p);     /* fail fast: nothing can connect now */
void pg__query_done(pg_query *q, int rc);           /* resolve (or free if abandoned) */

/* connect.c */
pg_conn *pg__conn_open(cn_pg_pool *p);
void pg__conn_connect_poll(pg_conn *c, int status); /* the socket is ready while connecting */

/* conn.c */
int pg__conn_watch(pg_conn *c, int events, bool renew); /* the poll on PQsocket() */
void pg__conn_watch_ready(pg_conn *c);                  /* readable, and writable while flushing */
void pg__conn_on_closed(uv_handle_t *h);                /* a handle of the connection closed */
void pg__conn_free_if_unused(pg_conn *c);               /* no handle, no lease: free it */
void pg__conn_flush(pg_conn *c);                        /* send what it was given, one batch */
void pg__conn_mark_dirty(pg_conn *c);
void pg__conn_close(pg_conn *c, const char *why); /* fail what is on it, close */
void pg__conn_abandon(pg_conn *c, pg_query *q);   /* the query's task has gone */
void pg__conn_reset(pg_conn *c);                  /* after a release */
bool pg__conn_available(const pg_conn *c);        /* open, not leased, resetting or cancelling */
void pg__conn_unlease(pg_conn *c);                /* its lease is released */

/* stmt.c: the per-connection LRU of prepared statements */
struct pg_stmt {
    cn__list lru;
    pg_stmt *next; /* hash chain */
    char *sql;
    uint64_t hash;
    char name[24];
    bool ready;    /* its PREPARE succeeded */
    bool cached;   /* still in the cache (else only items hold it) */
    unsigned refs; /* the cache's, and one per item on the wire */
};
pg_stmt *pg__stmt_get(pg_conn *c, const char *sql);
/* A new entry for sql; *evicted is set to an entry to DEALLOCATE (out of
 * the cache already: its reference passes to the caller) or NULL. */
pg_stmt *pg__stmt_add(pg_conn *c, const char *sql, pg_stmt **evicted);
void pg__stmt_drop(pg_conn *c, pg_stmt *s); /* out of the cache (if in it) */
void pg__stmt_unref(pg_stmt *s);
void pg__stmt_clear(pg_conn *c);

/* result.c */
cn_pg_result *pg__result_new(PGresult *res, const char *sqlstate, const char *message);

#endif
