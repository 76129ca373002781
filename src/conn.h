/*
 * conn.h -- one TCP connection: read -> llhttp -> request -> dispatch ->
 * write. The server context below is what every connection shares; the app
 * owns it.
 */
#ifndef CN_CONN_H
#define CN_CONN_H

#include <uv.h>

#include "canteen.h"
#include "common.h"
#include "router.h"
#include "scheduler.h"

typedef struct cn__server {
    uv_loop_t *loop;
    cn_app *app;
    const cn_config *cfg;
    const cn__router *router;
    cn__sched *sched;
    struct cn__pool *pool;
    cn_stats *stats;
    cn__list conns; /* every open connection */
    char *readbuf;  /* shared read buffer: only one read callback runs at a time */
    size_t readbuf_size;
    bool readbuf_busy;
    bool draining; /* graceful shutdown in progress */
    /* called when a connection has been freed (shutdown watches the count) */
    void (*on_conn_freed)(struct cn__server *srv);
} cn__server;

/* Accept one pending connection on `listener`. Errors are libuv codes. */
int cn__conn_accept(cn__server *srv, uv_stream_t *listener);

/*
 * Graceful shutdown, step 1: close idle connections now; the busy ones
 * close after their current response (which says Connection: close).
 */
void cn__conn_drain_all(cn__server *srv);

/* Shutdown deadline passed: cancel every running handler, close everything. */
void cn__conn_abort_all(cn__server *srv);

/*
 * The connection side of a streamed response (stream.c makes the checks,
 * res.c builds the bytes). Each queues its bytes behind whatever the
 * connection already has to send and sends them. 0, CN_ECANCELED when the
 * connection is gone (the request is cancelled), or CN_ENOMEM.
 */
int cn__conn_stream_begin(cn_req *req);
/* One piece of body. While more than a high-water mark of output waits in
 * memory, t (the running task) parks until the client has taken most of it. */
int cn__conn_stream_write(cn_req *req, cn__task *t, const void *p, size_t n);
int cn__conn_stream_end(cn_req *req);

#endif
