/* demo.h -- the demo's routes, shared by the binary and the tests. */
#ifndef CANTEEN_DEMO_H
#define CANTEEN_DEMO_H

#include <canteen.h>

/* Register every demo route on app. 0 or a negative CN_E* code. */
int demo_register(cn_app *app);

/* The traps (--with-traps): routes that misbehave on purpose to show what
 * Canteen reports. GET /trap/blocking/{ms}: blocks the loop. */
int demo_register_traps(cn_app *app);

/* The outbound routes: GET /fetch-multiple, GET /users (local SQLite store
 * gathered with the upstream's octocat), GET /github/{username}. The
 * upstream is a GitHub-like API at `upstream_url` ("http://host:port"),
 * which must outlive the app. */
int demo_register_fetch(cn_app *app, const char *upstream_url);

/*
 * Make the local store PostgreSQL (canteen-demo --database URL): GET /users
 * then reads its users through a libcanteen-pg pool, and GET
 * /db/sleep/{ms}?n=N shows N pg_sleep queries waiting together. The pool
 * opens in the app's startup and closes in its shutdown (lifespan hooks).
 * `url` must outlive the app. Call before demo_register_fetch. CN_EINVAL
 * when this demo was built without libcanteen-pg.
 */
int demo_use_database(cn_app *app, const char *url);

/* GET /admin/stats behind an admin-token dependency, audited after each
 * answer by a background task (admin.c). */
int demo_register_admin(cn_app *app);

/* Request IDs, CORS, gzip and the static page /static/ around the routes
 * (web.c): the binary's, not demo_register's (tests that build on the demo
 * routes bring their own middleware). The page's directory is
 * $CANTEEN_DEMO_STATIC_DIR, else the source tree's examples/demo/static. */
int demo_register_web(cn_app *app);

/* Milliseconds on a monotonic clock. */
uint64_t demo_now_ms(void);

/* The sum of 0..n-1, computed for real (the loop is kept opaque to the
 * optimiser so it is not turned into n*(n-1)/2). */
uint64_t demo_sum(uint64_t n);

/* The TechEmpower database tests (tfb.c): GET /db, /queries, /fortunes,
 * /updates, /cached-queries, through a pool of pool_size connections to
 * `url` (which must outlive the app) of their own, opened by a startup
 * hook that also fills the cache of /cached-queries, and closed by its
 * shutdown hook; pipeline_depth is the pool's (0: its default, 1: no
 * pipelining). 0 or a negative CN_E* code; CN_EINVAL when the demo was
 * built without libcanteen-pg. */
int demo_register_tfb(cn_app *app, const char *url, unsigned pool_size, unsigned pipeline_depth);

#endif
