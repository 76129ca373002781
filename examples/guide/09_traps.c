/*
 * 09_traps.c -- chapter 9: the common traps, each with what exposes it.
 *
 *   GET /forget              trap 1: a task spawned and never awaited
 *   GET /serial/{n:int}      trap 2: n waits of 100 ms awaited one by one
 *   GET /gather/{n:int}      the fix: the same n waits gathered
 *   GET /block/{ms:int}      trap 3: a blocking call in an async route
 *   GET /greet-global/{name} trap 4: state kept in a global across an await
 *   GET /greet/{name}        the fix: state kept in the request
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <canteen.h>

#define MAX_TASKS 64

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int wait_100ms(void *arg)
{
    (void)arg;
    return cn_sleep(100); /* stands for one database query or HTTP call */
}

/* Trap 1: forgetting to await. */
static int forget(cn_req *req, cn_res *res)
{
    cn_task *t;
    int rc = cn_spawn(wait_100ms, NULL, &t);

    (void)req;
    if (rc < 0)
        return rc;
    return cn_res_text(res, 200, "done?\n"); /* t is cancelled and reported */
}

static int64_t task_count(cn_req *req)
{
    int64_t n;

    cn_req_param_int(req, "n", &n);
    return n < 1 ? 1 : n > MAX_TASKS ? MAX_TASKS : n;
}

static int total_json(cn_req *req, cn_res *res, int64_t n, double t0)
{
    return cn_res_json_str(
        res, 200,
        cn_req_sprintf(req, "{\"tasks\":%lld,\"total_ms\":%.0f}", (long long)n, now_ms() - t0));
}

/* Trap 2: awaiting in a loop, one at a time. */
static int serial(cn_req *req, cn_res *res)
{
    int64_t n = task_count(req);
    double t0 = now_ms();

    for (int64_t i = 0; i < n; i++) {
        cn_task *t;
        int rc = cn_spawn(wait_100ms, NULL, &t);
        if (rc == 0)
            rc = cn_await(t); /* the next one starts only after this one */
        if (rc < 0)
            return rc;
    }
    return total_json(req, res, n, t0);
}

/* The fix: start them all, then wait once. */
static int gather(cn_req *req, cn_res *res)
{
    int64_t n = task_count(req);
    cn_task **tasks = cn_req_alloc(req, (size_t)n * sizeof(*tasks));
    double t0 = now_ms();
    int rc;

    if (tasks == NULL)
        return CN_ENOMEM;
    for (int64_t i = 0; i < n; i++) {
        rc = cn_spawn(wait_100ms, NULL, &tasks[i]);
        if (rc < 0)
            return rc;
    }
    rc = cn_gather(tasks, (size_t)n, NULL);
    if (rc < 0)
        return rc;
    return total_json(req, res, n, t0);
}

/* Trap 3: a blocking call in async code. */
static int block(cn_req *req, cn_res *res)
{
    int64_t ms;
    struct timespec ts;

    cn_req_param_int(req, "ms", &ms);
    ts.tv_sec = (time_t)(ms / 1000);
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    nanosleep(&ts, NULL); /* should be cn_sleep(ms) */
    return cn_res_text(res, 200, "blocked\n");
}

/* Trap 4: shared global state. */
static char current_name[64]; /* one for the whole program: wrong */

static int greet_global(cn_req *req, cn_res *res)
{
    int rc;

    snprintf(current_name, sizeof current_name, "%s", cn_req_param(req, "name"));
    rc = cn_sleep(100); /* other requests run here, and overwrite current_name */
    if (rc < 0)
        return rc;
    return cn_res_text(res, 200, cn_req_sprintf(req, "Hello, %s!\n", current_name));
}

static int greet(cn_req *req, cn_res *res)
{
    const char *name = cn_req_param(req, "name"); /* this request's own */
    int rc = cn_sleep(100);

    if (rc < 0)
        return rc;
    return cn_res_text(res, 200, cn_req_sprintf(req, "Hello, %s!\n", name));
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 8000;
    cn_config cfg = {.handle_signals = 1};
    cn_app *app = cn_app_new(&cfg);
    int rc;

    if (app == NULL)
        return 1;
    rc = cn_app_route(app, "GET /forget", forget, NULL);
    if (rc == 0)
        rc = cn_app_route(app, "GET /serial/{n:int}", serial, NULL);
    if (rc == 0)
        rc = cn_app_route(app, "GET /gather/{n:int}", gather, NULL);
    if (rc == 0)
        rc = cn_app_route(app, "GET /block/{ms:int}", block, NULL);
    if (rc == 0)
        rc = cn_app_route(app, "GET /greet-global/{name}", greet_global, NULL);
    if (rc == 0)
        rc = cn_app_route(app, "GET /greet/{name}", greet, NULL);
    if (rc == 0)
        rc = cn_app_listen(app, "127.0.0.1", port);
    if (rc == 0) {
        fprintf(stderr, "serving on http://127.0.0.1:%d\n", cn_app_port(app));
        rc = cn_app_run(app);
    }
    if (rc < 0)
        fprintf(stderr, "09_traps: %s\n", cn_strerror(rc));
    cn_app_free(app);
    return rc < 0;
}
