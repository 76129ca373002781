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

typedef struct cn__server {
    uv_loop_t *loop;
    cn_app *app;
    const cn_config *cfg;
    struct cn__dispatch *dispatch;
    cn_stats *stats;
    cn__list conns; /* every open connection */
    char *readbuf;  /* shared read buffer: only one read callback runs at a time */
    size_t readbuf_size;
    bool readbuf_busy;
    bool draining; /* graceful shutdown in progress */
    /* draining a worker: idle connections used in the last drain_grace_ms
     * stay open that long, so that a request already on its way is answered
     * (with Connection: close) rather than met by a reset; 0: close them */
    unsigned drain_grace_ms;
    /* a worker far ahead of its siblings: this many keep-alive connections
     * answer their next request with Connection: close (and reconnect,
     * to whoever is least busy); 0 in one process */
    unsigned shed;
    const struct cn__access *access; /* the access log's format */
    int worker_id;                   /* for the access log: -1 in one process */
    /* called when a connection has been freed (shutdown watches the count) */
    void (*on_conn_freed)(struct cn__server *srv);
} cn__server;

/* Serve `fd`, a TCP socket just accepted (accept.c); it is the
 * connection's from here, or closed on failure. Errors are libuv codes. */
int cn__conn_accept_fd(cn__server *srv, int fd);

/* Serve a connected stream socket of the caller's (the in-process test
 * client's end of a socketpair); it is closed with the connection. */
int cn__conn_adopt(cn__server *srv, int fd);

/*
 * Graceful shutdown, step 1: close idle connections now; the busy ones
 * close after their current response (which says Connection: close).
 */
void cn__conn_drain_all(cn__server *srv);

/* Shutdown deadline passed: cancel every running handler, close everything. */
void cn__conn_abort_all(cn__server *srv);

#endif
