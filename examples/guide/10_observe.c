/*
 * 10_observe.c -- chapter 10: settings that matter, and the figures to watch.
 *
 *   GET /metrics           the app's, the loop's and the pool's figures, in
 *                          Prometheus' text format (cn_app_metrics_route)
 *   GET /private/metrics   the same behind a bearer token (METRICS_TOKEN)
 *   GET /deep/{n:int}      recursion n levels deep, about 1 KiB a level, on
 *                          the default 256 KiB coroutine stack
 *   GET /deeper/{n:int}    the same on a route given a 2 MiB stack
 *   POST /echo             the JSON body back (400 beyond CN_JSON_MAX_DEPTH)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <canteen.h>

/* The metrics for a scraper that must show a token (cn_res_metrics). */
static int private_metrics(cn_req *req, cn_res *res)
{
    const char *want = getenv("METRICS_TOKEN"), *got = cn_req_header(req, "authorization");

    if (want == NULL || got == NULL || strncmp(got, "Bearer ", 7) != 0 || strcmp(got + 7, want))
        return cn_res_error(res, 401, "Unauthorized");
    return cn_res_metrics(req, res);
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
    /* the request's own tree: printed, and kept by the request */
    return cn_res_json(res, 200, body);
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
    rc = cn_app_metrics_route(app, NULL); /* GET /metrics, for Prometheus */
    if (rc == 0)
        rc = cn_app_route(app, "GET /private/metrics", private_metrics, NULL);
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
        rc = cn_app_run(app);
    }
    if (rc < 0)
        fprintf(stderr, "10_observe: %s\n", cn_strerror(rc));
    cn_app_free(app);
    return rc < 0;
}
