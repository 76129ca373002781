/*
 * app.h -- what the layers beside the app need of it: adding routes with a
 * router's chain (routers.c), owning what is freed with the app, and a
 * teardown that reports a leaked handle (the tests assert it).
 */
#ifndef CN_APP_H
#define CN_APP_H

#include <stdbool.h>

#include "canteen.h"
#include "router.h"

/* cn_app_route_ex, with the chain of the router the route belongs to. */
int cn__app_add_route(cn_app *app, const char *spec, cn_handler fn, void *data,
                      const cn_route_opts *opts, const cn__chain *chain);

/* Free p with free_fn when the app is freed (after the loop has closed its
 * handles), in reverse order of adoption. 0 or CN_ENOMEM. */
int cn__app_adopt(cn_app *app, void (*free_fn)(void *), void *p);

/* cn_app_pool_submit with the job in the pool's CPU lane (pool.h,
 * cn__to_thread_cpu): for Canteen's own CPU-bound work. */
int cn__app_pool_submit_cpu(cn_app *app, void (*work)(void *arg),
                            void (*done)(void *arg, int status), void *arg);

/* Routes, middleware and hooks can still be added (cn_app_run not called). */
bool cn__app_is_new(const cn_app *app);

/* cn_app_free, returning uv_loop_close's result: 0, or UV_EBUSY when a
 * handle was left open (a leak the tests catch; each open handle is logged
 * and the app's memory kept, as in cn_app_free, but this never aborts). */
int cn__app_free_checked(cn_app *app);

/*
 * Running an app on the caller's thread, a loop turn at a time (the test
 * client): start runs the startup hooks and returns once the app serves
 * (0) or its startup failed (its error, after the shutdown hooks of what
 * started); run_once is one uv_run(UV_RUN_ONCE); stop drains and runs the
 * shutdown hooks, returning once the app has stopped; adopt_fd serves a
 * connected socket (CN_ESTATE unless running).
 */
int cn__app_start_inline(cn_app *app);
void cn__app_run_once(cn_app *app);
int cn__app_stop_inline(cn_app *app);
int cn__app_adopt_fd(cn_app *app, int fd);

/* An in-memory connection to the running app (conn.h, cn__conn_mem_open):
 * the fuzz targets' way in. CN_ESTATE unless running. */
struct cn__conn;
int cn__app_mem_open(cn_app *app, int (*sink)(void *arg, const char *data, size_t len), void *arg,
                     struct cn__conn **out);

/* Unmap the coroutine stacks the app keeps for reuse (scheduler.h,
 * cn__sched_drop_idle_stacks), so that the next async routes map fresh
 * ones: the out-of-memory test fails those mappings too. Loop thread. */
void cn__app_drop_idle_stacks(cn_app *app);

/* The app's route table (read-only), for the OpenAPI document and the
 * slash redirect (slashes.c). */
const cn__router *cn__app_router(const cn_app *app);

/* ---- for workers (workers.c, supervisor.c, forwarded.c) ---- */

struct cn__worker;
struct cn__trust;
struct uv_loop_s;
struct cn__prom_figures;

/* The proxies whose Forwarded headers are believed (NULL: none). */
const struct cn__trust *cn__app_trust(const cn_app *app);

/* In a child after fork(2): give the loop its own kernel state, make a curl
 * multi of its own, and turn the app into worker `w`, not run yet. 0 or a
 * negative code. */
int cn__app_fork_child(cn_app *app, struct cn__worker *w);

/* The app's figures, for a worker to publish. Loop thread. */
void cn__app_snapshot(const cn_app *app, struct cn__prom_figures *f);

/* A worker ahead of its siblings: close n keep-alive connections after
 * their next response (conn.h, shed). Loop thread. */
void cn__app_set_shed(cn_app *app, unsigned n);

/* cn_app_stop was called (the supervisor looks before it starts). */
bool cn__app_stop_pending(const cn_app *app);
void cn__app_set_supervised(cn_app *app, bool on);

#endif
