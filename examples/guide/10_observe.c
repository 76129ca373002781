/*
 * 10_observe.c -- chapter 10: settings that matter, and the figures to watch.
 *
 *   GET /metrics           the app's, the loop's and the pool's figures, in
 *                          Prometheus' text format
 *   GET /deep/{n:int}      recursion n levels deep, about 1 KiB a level, on
 *                          the default 256 KiB coroutine stack
 *   GET /deeper/{n:int}    the same on a route given a 2 MiB stack
 *   POST /echo             the JSON body back (400 beyond CN_JSON_MAX_DEPTH)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <canteen.h>

static int metrics(cn_req *req, cn_res *res)
{
    cn_app *app = cn_req_app(req);
    cn_stats s;
    cn_loop_stats l;
    cn_pool_stats p;
    char *text;

    cn_app_stats(app, &s);
    cn_app_loop_stats(app, &l);
    cn_app_pool_stats(app, &p);
    text = cn_req_sprintf(
        req,
        "canteen_requests_total %llu\n"
        "canteen_requests_active %llu\n"
        "canteen_connections_active %llu\n"
        "canteen_coroutines_live %llu\n"
        "canteen_loop_lag_ms_last %.1f\n"
        "canteen_loop_lag_ms_max %.1f\n"
        "canteen_loop_slow_steps_total %llu\n"
        "canteen_pool_threads %u\n"
        "canteen_pool_busy %u\n"
        "canteen_pool_queue_depth %llu\n"
        "canteen_pool_wait_ms_max %.1f\n",
        (unsigned long long)s.requests_total, (unsigned long long)s.requests_active,
        (unsigned long long)s.connections_active, (unsigned long long)s.coroutines_live,
        l.lag_ms_last, l.lag_ms_max, (unsigned long long)l.slow_steps, p.threads, p.busy,
        (unsigned long long)p.queue_depth, p.wait_ms_max);
    if (text == NULL)
        return CN_ENOMEM;
    return cn_res_bytes(res, 200, text, strlen(text), "text/plain; version=0.0.4");
}

/* About 1 KiB of stack per level; returns the depth reached. */
static int recurse(int n)
{
    volatile char frame[1000];

    frame[0] = 1;
    if (n <= 0)
        return 0;
    return recurse(n - 1) + frame[0]; /* the frame stays live across the call */
}

static int deep(cn_req *req, cn_res *res)
{
    int64_t n;

    cn_req_param_int(req, "n", &n);
    return cn_res_text(res, 200, cn_req_sprintf(req, "reached depth %d\n", recurse((int)n)));
}

static int echo(cn_req *req, cn_res *res)
{
    cJSON *body;
    int rc = cn_req_json(req, &body); /* owned by the request */

    if (rc < 0)
        return rc; /* CN_EBADJSON or CN_EJSONDEPTH: a 400 */
    return cn_res_json(res, 200, cJSON_Duplicate(body, 1));
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 8000;
    cn_config cfg = {
        .handle_signals = 1,
        .pool_threads = 64,      /* blocking calls that may wait at once */
        .slow_callback_ms = 50,  /* warn about loop stalls above 50 ms */
        .max_body_bytes = 65536, /* this service takes small bodies only */
        .keepalive_timeout_ms = 30000,
    };
    cn_route_opts big_stack = {.stack_size = 2 * 1024 * 1024};
    cn_app *app = cn_app_new(&cfg);
    int rc;

    if (app == NULL)
        return 1;
    rc = cn_app_route(app, "GET /metrics", metrics, NULL);
    if (rc == 0)
        rc = cn_app_route(app, "GET /deep/{n:int}", deep, NULL);
    if (rc == 0)
        rc = cn_app_route_ex(app, "GET /deeper/{n:int}", deep, NULL, &big_stack);
    if (rc == 0)
        rc = cn_app_route(app, "POST /echo", echo, NULL);
    if (rc == 0)
        rc = cn_app_listen(app, "127.0.0.1", port);
    if (rc == 0) {
        fprintf(stderr, "serving on http://127.0.0.1:%d\n", cn_app_port(app));
        rc = cn_app_run(app, NULL, -1);
    }
    if (rc < 0)
        fprintf(stderr, "10_observe: %s\n", cn_strerror(rc));
    cn_app_free(app);
    return rc < 0;
}
