/*
 * accept.h -- the accept path: our own accept loop on a listening socket,
 * so that running out of file descriptors is answered, counted and logged
 * instead of being hidden (accept.c says how).
 */
#ifndef CN_ACCEPT_H
#define CN_ACCEPT_H

#include <stdbool.h>

#include <uv.h>

#include "conn.h"

typedef struct cn__acceptor cn__acceptor;

/* Called after each connection accepted (the worker's accept balance). */
typedef void (*cn__accepted_fn)(cn__acceptor *a, void *arg);

/*
 * Accept the connections of `fd`, a listening TCP socket that stays the
 * caller's (close it only after cn__acceptor_close), and serve them on
 * srv. `accepted` (NULL allowed) runs after each one. NULL if out of
 * memory.
 */
cn__acceptor *cn__acceptor_start(cn__server *srv, int fd, cn__accepted_fn accepted, void *arg);

/* One connection per wake-up (on), or all that are pending (off, the default). */
void cn__acceptor_single(cn__acceptor *a, bool on);

/* Stop accepting; the memory goes with the close callbacks. NULL allowed. */
void cn__acceptor_close(cn__acceptor *a);

#endif
