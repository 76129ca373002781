/*
 * 05_golden_rules.c -- chapter 5: the four golden rules, each broken once.
 *
 *   GET /rule1           a sync route calls cn_sleep: CN_ENOTCORO, at once
 *   GET /rule2           an async route spawns a task and never awaits it:
 *                        the task is cancelled and the log names the route
 *   GET /rule3/{n:int}   an async route computes for a while without
 *                        yielding: the loop-block detector names it
 *   GET /rule4/{name}    per-request state done right: in the request's
 *                        arena, handed to a child task
 */
#include <stdio.h>
#include <stdlib.h>

#include <canteen.h>

/* Rule 1: awaitables only inside async code. */
static int rule1(cn_req *req, cn_res *res)
{
    int rc = cn_sleep(10); /* on a pool thread: there is no coroutine to park */
    cJSON *o = cJSON_CreateObject();

    (void)req;
    cJSON_AddNumberToObject(o, "rc", rc);
    cJSON_AddStringToObject(o, "name", cn_err_name(rc));
    cJSON_AddStringToObject(o, "message", cn_strerror(rc));
    return cn_res_json(res, 200, o);
}

static int nap(void *arg)
{
    int rc = cn_sleep(50);

    (void)arg;
    printf("the forgotten task's cn_sleep returned %s\n", cn_err_name(rc));
    return rc;
}

/* Rule 2: await what you spawn. */
static int rule2(cn_req *req, cn_res *res)
{
    cn_task *t;
    int rc = cn_spawn(nap, NULL, &t);

    (void)req;
    if (rc < 0)
        return rc;
    return cn_res_text(res, 200, "returned without awaiting\n"); /* bug: t forgotten */
}

/* Rule 3: never block the loop -- and a long computation blocks it too. */
static int rule3(cn_req *req, cn_res *res)
{
    int64_t n;
    uint64_t sum = 0;

    cn_req_param_int(req, "n", &n);
    for (int64_t i = 0; i < n; i++) {
        sum += (uint64_t)i;
        __asm__ volatile("" : "+r"(sum)); /* keep the loop a real loop */
    }
    return cn_res_text(res, 200, cn_req_sprintf(req, "sum=%llu\n", (unsigned long long)sum));
}

/* Rule 4: state belongs to the request, not to the program. */
typedef struct greeting {
    const char *name; /* points into the request's arena */
    char *text;
} greeting;

static int compose(void *arg)
{
    greeting *g = arg;
    int rc = cn_sleep(100); /* other requests run here: nothing of ours is shared */

    if (rc < 0)
        return rc;
    g->text = cn_req_sprintf(cn_req_current(), "Hello, %s!\n", g->name);
    return g->text ? 0 : CN_ENOMEM;
}

static int rule4(cn_req *req, cn_res *res)
{
    greeting *g = cn_req_alloc(req, sizeof(*g)); /* freed with the request */
    cn_task *t;
    int rc;

    if (g == NULL)
        return CN_ENOMEM;
    g->name = cn_req_param(req, "name");
    g->text = NULL;
    rc = cn_spawn(compose, g, &t);
    if (rc < 0)
        return rc;
    rc = cn_await(t);
    if (rc < 0)
        return rc;
    return cn_res_text(res, 200, g->text);
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
    setvbuf(stdout, NULL, _IOLBF, 0);
    rc = cn_app_route_ex(app, "GET /rule1", rule1, NULL, &sync);
    if (rc == 0)
        rc = cn_app_route(app, "GET /rule2", rule2, NULL);
    if (rc == 0)
        rc = cn_app_route(app, "GET /rule3/{n:int}", rule3, NULL);
    if (rc == 0)
        rc = cn_app_route(app, "GET /rule4/{name}", rule4, NULL);
    if (rc == 0)
        rc = cn_app_listen(app, "127.0.0.1", port);
    if (rc == 0) {
        fprintf(stderr, "serving on http://127.0.0.1:%d\n", cn_app_port(app));
        rc = cn_app_run(app);
    }
    if (rc < 0)
        fprintf(stderr, "05_golden_rules: %s\n", cn_strerror(rc));
    cn_app_free(app);
    return rc < 0;
}
