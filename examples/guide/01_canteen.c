/*
 * 01_canteen.c -- chapter 1: the same order, waited for in two ways.
 *
 *   GET /order/async   the chef needs 1 s; the handler parks in cn_sleep and
 *                      the loop serves everyone else meanwhile
 *   GET /order/sync    the same second spent in nanosleep(2) on a pool thread:
 *                      that thread does nothing else until it is over
 *
 * The pool has 4 threads here (the default is 40) so that the difference
 * shows with 20 clients:
 *
 *   ./01_canteen 8000 &
 *   time (seq 20 | xargs -P20 -I{} curl -s localhost:8000/order/async >/dev/null)
 *   time (seq 20 | xargs -P20 -I{} curl -s localhost:8000/order/sync >/dev/null)
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <canteen.h>

#define COOK_MS 1000

/* async def: hand the order to the chef, go and pour your drink */
static int order_async(cn_req *req, cn_res *res)
{
    int rc = cn_sleep(COOK_MS); /* parks this request; others are served */

    (void)req;
    if (rc < 0)
        return rc; /* CN_ECANCELED: the client left */
    return cn_res_text(res, 200, "served (async)\n");
}

/* def: stand at the counter until the food is ready */
static int order_sync(cn_req *req, cn_res *res)
{
    struct timespec ts = {COOK_MS / 1000, 0};

    (void)req;
    nanosleep(&ts, NULL); /* this pool thread is held for the whole second */
    return cn_res_text(res, 200, "served (sync)\n");
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 8000;
    /* four threads, all for this one route (by default a route gets half) */
    cn_config cfg = {.handle_signals = 1, .pool_threads = 4, .pool_route_share = 100};
    cn_route_opts sync = {.mode = CN_ROUTE_SYNC};
    cn_app *app = cn_app_new(&cfg);
    int rc;

    if (app == NULL)
        return 1;
    rc = cn_app_route(app, "GET /order/async", order_async, NULL);
    if (rc == 0)
        rc = cn_app_route_ex(app, "GET /order/sync", order_sync, NULL, &sync);
    if (rc == 0)
        rc = cn_app_listen(app, "127.0.0.1", port);
    if (rc == 0) {
        fprintf(stderr, "serving on http://127.0.0.1:%d\n", cn_app_port(app));
        rc = cn_app_run(app);
    }
    if (rc < 0)
        fprintf(stderr, "01_canteen: %s\n", cn_strerror(rc));
    cn_app_free(app);
    return rc < 0;
}
