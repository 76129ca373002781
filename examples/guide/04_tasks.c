/*
 * 04_tasks.c -- chapter 4: spawn, await, gather, wait_for.
 *
 *   GET /one        spawn one child task and await it
 *   GET /scenario   the guide's three requests -- database 200 ms, compute
 *                   1 ms, external API 1000 ms -- as three tasks gathered:
 *                   the total is the slowest (about 1000 ms), not the sum
 *   GET /timeout    a 1000 ms task given 300 ms with cn_wait_for: 504
 *
 *   ./04_tasks 8000 &
 *   curl -s localhost:8000/scenario
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <canteen.h>

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* One step of work: wait `ms`, record how long it really took. */
typedef struct step {
    const char *name;
    int64_t ms;
    double took_ms;
} step;

static int run_step(void *arg)
{
    step *s = arg;
    double t0 = now_ms();
    int rc = cn_sleep(s->ms); /* stands for a query or an HTTP call */

    s->took_ms = now_ms() - t0;
    return rc;
}

/* asyncio.create_task + await */
static int one(cn_req *req, cn_res *res)
{
    step *s = cn_req_alloc(req, sizeof(*s));
    cn_task *t;
    int rc;

    if (s == NULL)
        return CN_ENOMEM;
    *s = (step){"lookup", 100, 0};
    rc = cn_spawn(run_step, s, &t); /* starts when this handler parks */
    if (rc < 0)
        return rc;
    rc = cn_await(t); /* the child's return value; t is freed */
    if (rc < 0)
        return rc;
    return cn_res_text(res, 200, cn_req_sprintf(req, "%s took %.0f ms\n", s->name, s->took_ms));
}

/* asyncio.gather: three tasks at once */
static int scenario(cn_req *req, cn_res *res)
{
    step *steps = cn_req_alloc(req, 3 * sizeof(*steps));
    cn_task *tasks[3];
    int results[3], rc;
    double t0 = now_ms();
    cJSON *o, *arr;

    if (steps == NULL)
        return CN_ENOMEM;
    steps[0] = (step){"database", 200, 0};
    steps[1] = (step){"compute", 1, 0};
    steps[2] = (step){"external_api", 1000, 0};
    for (int i = 0; i < 3; i++) {
        rc = cn_spawn(run_step, &steps[i], &tasks[i]);
        if (rc < 0)
            return rc; /* tasks already spawned are cancelled when we return */
    }
    rc = cn_gather(tasks, 3, results); /* parks until all three are done */
    if (rc < 0)
        return rc;
    o = cJSON_CreateObject();
    arr = cJSON_AddArrayToObject(o, "steps");
    for (int i = 0; i < 3; i++) {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "name", steps[i].name);
        cJSON_AddNumberToObject(s, "wait_ms", (double)steps[i].ms);
        cJSON_AddNumberToObject(s, "took_ms", (double)(int64_t)steps[i].took_ms);
        cJSON_AddItemToArray(arr, s);
    }
    cJSON_AddNumberToObject(o, "total_ms", (double)(int64_t)(now_ms() - t0));
    return cn_res_json(res, 200, o);
}

/* asyncio.wait_for: give a task a deadline */
static int timeout(cn_req *req, cn_res *res)
{
    step *s = cn_req_alloc(req, sizeof(*s));
    cn_task *t;
    int rc;

    if (s == NULL)
        return CN_ENOMEM;
    *s = (step){"slow_api", 1000, 0};
    rc = cn_spawn(run_step, s, &t);
    if (rc < 0)
        return rc;
    rc = cn_wait_for(t, 300); /* on timeout the child is cancelled, then freed */
    if (rc == CN_ETIMEDOUT)
        return cn_res_error(res, 504,
                            cn_req_sprintf(req, "%s gave up after %.0f ms", s->name, s->took_ms));
    if (rc < 0)
        return rc;
    return cn_res_text(res, 200, "in time\n");
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 8000;
    cn_config cfg = {.handle_signals = 1};
    cn_app *app = cn_app_new(&cfg);
    int rc;

    if (app == NULL)
        return 1;
    rc = cn_app_route(app, "GET /one", one, NULL);
    if (rc == 0)
        rc = cn_app_route(app, "GET /scenario", scenario, NULL);
    if (rc == 0)
        rc = cn_app_route(app, "GET /timeout", timeout, NULL);
    if (rc == 0)
        rc = cn_app_listen(app, "127.0.0.1", port);
    if (rc == 0) {
        fprintf(stderr, "serving on http://127.0.0.1:%d\n", cn_app_port(app));
        rc = cn_app_run(app);
    }
    if (rc < 0)
        fprintf(stderr, "04_tasks: %s\n", cn_strerror(rc));
    cn_app_free(app);
    return rc < 0;
}
