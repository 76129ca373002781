/*
 * upstream.h -- the demo's embedded upstream: a small GitHub-like user API
 * served by a second Canteen app on its own port and thread, so the demo's
 * outbound calls work offline. GET /users/{name}[?delay_ms=N] answers like
 * api.github.com/users/{name}; unknown names get 404.
 */
#ifndef CANTEEN_DEMO_UPSTREAM_H
#define CANTEEN_DEMO_UPSTREAM_H

#include <canteen.h>

typedef struct upstream upstream;

/* Start it on host:port (port 0: any free port). NULL and *err on failure. */
upstream *upstream_start(const char *host, int port, int *err);

/* "http://127.0.0.1:PORT", valid while it runs. */
const char *upstream_url(const upstream *u);

/* Connections the upstream has accepted so far (how well callers reuse them). */
uint64_t upstream_connections(const upstream *u);

/* Stop it, wait for its thread, free it. NULL allowed. */
void upstream_stop(upstream *u);

/* Register the upstream's routes on any app (the tests reuse them). */
int upstream_register(cn_app *app);

#endif
