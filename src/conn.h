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
#include "stats.h"

typedef struct cn__server {
    uv_loop_t *loop;
    cn_app *app;
    const cn_config *cfg;
    struct cn__dispatch *dispatch;
    cn__stats *stats;
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
 * An in-memory connection, for the fuzz targets: the same parser, dispatch
 * and response path as a socket's, without one. What the server writes is
 * handed to sink(arg, data, len) as it is flushed (the bytes are the
 * connection's: copy them), which returns 0, or < 0 to fail the write as
 * a reset would; sink(arg, NULL, 0) says the connection closed,
 * after which *out must not be used again (it is freed once its handler
 * and handles are done). Loop thread. 0 (*out set), CN_EINVAL, or a
 * libuv code (UV_ENOMEM).
 */
typedef struct cn__conn cn__conn;
typedef int (*cn__conn_sink)(void *arg, const char *data, size_t len);
int cn__conn_mem_open(cn__server *srv, cn__conn_sink sink, void *arg, cn__conn **out);

/* Bytes from the client (copied as needed). 0; CN_EAGAIN while the
 * connection reads nothing (its input is backed up: run the loop and try
 * again); CN_EPIPE once it closed. */
int cn__conn_mem_feed(cn__conn *c, const void *data, size_t len);

/* The client goes away (EOF): a running handler is cancelled. */
void cn__conn_mem_hangup(cn__conn *c);

/*
 * Graceful shutdown, step 1: close idle connections now; the busy ones
 * close after their current response (which says Connection: close).
 */
void cn__conn_drain_all(cn__server *srv);

/* Shutdown deadline passed: cancel every running handler, close everything. */
void cn__conn_abort_all(cn__server *srv);

#endif
