/*
 * 03_sleep_vs_block.c -- chapter 3: cn_sleep against a blocking sleep.
 *
 *   GET /nap/{ms:int}     waits with cn_sleep: the loop goes on
 *   GET /block/{ms:int}   waits with nanosleep(2) inside an async route: the
 *                         loop stops (the trap the detector reports)
 *   GET /ping             answers at once, when the loop is free to answer
 *   GET /loop             the loop's health (cn_app_loop_stats)
 *
 *   ./03_sleep_vs_block 8000 &
 *   curl -s localhost:8000/block/300 & sleep 0.05; \
 *   curl -s -w ' %{time_total}s\n' localhost:8000/ping; wait
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <canteen.h>

static int nap(cn_req *req, cn_res *res)
{
    int64_t ms;
    int rc;

    cn_req_param_int(req, "ms", &ms);
    rc = cn_sleep(ms); /* right: parks this request only */
    if (rc < 0)
        return rc;
    return cn_res_text(res, 200, "napped\n");
}

static int block(cn_req *req, cn_res *res)
{
    int64_t ms;
    struct timespec ts;

    cn_req_param_int(req, "ms", &ms);
    ts.tv_sec = (time_t)(ms / 1000);
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    nanosleep(&ts, NULL); /* wrong in an async route: every request waits */
    return cn_res_text(res, 200, "blocked\n");
}

static int ping(cn_req *req, cn_res *res)
{
    (void)req;
    return cn_res_text(res, 200, "pong");
}

static int loop(cn_req *req, cn_res *res)
{
    cn_loop_stats st;
    cJSON *o = cJSON_CreateObject();

    cn_app_loop_stats(cn_req_app(req), &st);
    cJSON_AddNumberToObject(o, "lag_ms_max", st.lag_ms_max);
    cJSON_AddNumberToObject(o, "slow_steps", (double)st.slow_steps);
    cJSON_AddNumberToObject(o, "slowest_ms", st.slowest_ms);
    return cn_res_json(res, 200, o);
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 8000;
    cn_config cfg = {.handle_signals = 1};
    cn_app *app = cn_app_new(&cfg);
    int rc;

    if (app == NULL)
        return 1;
    rc = cn_app_route(app, "GET /nap/{ms:int}", nap, NULL);
    if (rc == 0)
        rc = cn_app_route(app, "GET /block/{ms:int}", block, NULL);
    if (rc == 0)
        rc = cn_app_route(app, "GET /ping", ping, NULL);
    if (rc == 0)
        rc = cn_app_route(app, "GET /loop", loop, NULL);
    if (rc == 0)
        rc = cn_app_listen(app, "127.0.0.1", port);
    if (rc == 0) {
        fprintf(stderr, "serving on http://127.0.0.1:%d\n", cn_app_port(app));
        rc = cn_app_run(app, NULL, -1);
    }
    if (rc < 0)
        fprintf(stderr, "03_sleep_vs_block: %s\n", cn_strerror(rc));
    cn_app_free(app);
    return rc < 0;
}
