/*
 * 07_route_modes.c -- chapter 7: async routes for I/O, sync routes for CPU.
 *
 *   GET /io                      async: waits 100 ms (stands for I/O)
 *   GET /cpu/{n:int}             sync: sums 0..n-1 on a pool thread
 *   GET /cpu-in-async/{n:int}    the same sum in an async route (wrong)
 *   GET /pool                    the pool's figures (cn_app_pool_stats)
 *
 *   ./07_route_modes 8000 &
 *   curl -s localhost:8000/cpu/400000000 & sleep 0.05; \
 *   curl -s -w ' %{time_total}s\n' localhost:8000/io; wait
 */
#include <stdio.h>
#include <stdlib.h>

#include <canteen.h>

static uint64_t sum_to(int64_t n)
{
    uint64_t s = 0;

    for (int64_t i = 0; i < n; i++) {
        s += (uint64_t)i;
        __asm__ volatile("" : "+r"(s)); /* a real loop, not n*(n-1)/2 */
    }
    return s;
}

static int io(cn_req *req, cn_res *res)
{
    int rc = cn_sleep(100);

    (void)req;
    if (rc < 0)
        return rc;
    return cn_res_text(res, 200, "io done");
}

/* The same handler serves both CPU routes; only the mode differs. */
static int cpu(cn_req *req, cn_res *res)
{
    int64_t n;

    cn_req_param_int(req, "n", &n);
    return cn_res_text(res, 200, cn_req_sprintf(req, "sum=%llu\n", (unsigned long long)sum_to(n)));
}

static int pool(cn_req *req, cn_res *res)
{
    cn_pool_stats st;
    cJSON *o = cJSON_CreateObject();

    cn_app_pool_stats(cn_req_app(req), &st);
    cJSON_AddNumberToObject(o, "threads", st.threads);
    cJSON_AddNumberToObject(o, "busy", st.busy);
    cJSON_AddNumberToObject(o, "queue_depth", (double)st.queue_depth);
    cJSON_AddNumberToObject(o, "completed", (double)st.completed);
    cJSON_AddNumberToObject(o, "wait_ms_max", st.wait_ms_max);
    return cn_res_json(res, 200, o);
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 8000;
    cn_config cfg = {.handle_signals = 1};
    cn_route_opts sync = {.mode = CN_ROUTE_SYNC};
    cn_app *app = cn_app_new(&cfg);
    int rc;

    if (app == NULL)
        return 1;
    rc = cn_app_route(app, "GET /io", io, NULL);
    if (rc == 0)
        rc = cn_app_route_ex(app, "GET /cpu/{n:int}", cpu, NULL, &sync);
    if (rc == 0)
        rc = cn_app_route(app, "GET /cpu-in-async/{n:int}", cpu, NULL);
    if (rc == 0)
        rc = cn_app_route(app, "GET /pool", pool, NULL);
    if (rc == 0)
        rc = cn_app_listen(app, "127.0.0.1", port);
    if (rc == 0) {
        fprintf(stderr, "serving on http://127.0.0.1:%d\n", cn_app_port(app));
        rc = cn_app_run(app);
    }
    if (rc < 0)
        fprintf(stderr, "07_route_modes: %s\n", cn_strerror(rc));
    cn_app_free(app);
    return rc < 0;
}
