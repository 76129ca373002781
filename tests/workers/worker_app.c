/*
 * worker_app.c -- a small service for the worker tests (run_workers_test.sh):
 * cn_cli's options, plus
 *
 *   --fail-startup   every worker's startup hook fails (CN_ECONNREFUSED, as
 *                    a database that is down would)
 *
 * and the routes
 *
 *   GET /health             200 {"status":"ok"}
 *   GET /pid                200 {"pid": <the worker's pid>, "worker": N}
 *   GET /sleep/{ms:int}     answers after ms (an await: the loop goes on)
 *   GET /block/{ms:int}     blocks its loop for ms (what the heartbeat catches)
 *   GET /metrics            the server's figures
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <canteen.h>

static int health(cn_req *req, cn_res *res)
{
    (void)req;
    return cn_res_json_str(res, 200, "{\"status\":\"ok\"}");
}

static int pid(cn_req *req, cn_res *res)
{
    return cn_res_json_str(res, 200,
                           cn_req_sprintf(req, "{\"pid\":%d,\"worker\":%d}", (int)getpid(),
                                          cn_app_worker_id(cn_req_app(req))));
}

static int sleep_ms(cn_req *req, cn_res *res)
{
    int64_t ms = 0;
    int rc;

    cn_req_param_int(req, "ms", &ms);
    rc = cn_sleep(ms);
    if (rc < 0)
        return rc;
    return cn_res_json_str(res, 200, cn_req_sprintf(req, "{\"slept_ms\":%lld}", (long long)ms));
}

/* The mistake the heartbeat is there for: a loop that does not come back. */
static int block_ms(cn_req *req, cn_res *res)
{
    int64_t ms = 0;
    struct timespec ts;

    cn_req_param_int(req, "ms", &ms);
    ts.tv_sec = (time_t)(ms / 1000);
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0)
        ;
    return cn_res_json_str(res, 200, "{\"blocked\":true}");
}

static int failing_startup(cn_app *app, void *arg)
{
    (void)app;
    (void)arg;
    fprintf(stderr, "worker_app: the database is down (on purpose)\n");
    return CN_ECONNREFUSED;
}

int main(int argc, char **argv)
{
    cn_cli cli;
    cn_config cfg;
    cn_app *app;
    int rc, fail = 0;

    cn_cli_init(&cli, "worker_app", "1.0");
    cli.usage = "worker_app's own options:\n  --fail-startup   every startup hook fails\n";
    rc = cn_cli_parse(&cli, &argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--fail-startup") == 0) {
            fail = 1;
        } else {
            fprintf(stderr, "worker_app: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    cn_config_init(&cfg);
    cn_cli_config(&cli, &cfg);
    app = cn_app_new(&cfg);
    if (app == NULL)
        return 1;
    rc = cn_app_route(app, "GET /health", health, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /pid", pid, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /sleep/{ms:int}", sleep_ms, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /block/{ms:int}", block_ms, NULL);
    rc = rc ? rc : cn_app_metrics_route(app, NULL);
    if (rc == 0 && fail)
        rc = cn_app_on_startup(app, failing_startup, NULL);
    if (rc == 0)
        rc = cn_cli_listen(&cli, app);
    if (rc == 0) {
        fprintf(stderr, "worker_app: serving on port %d\n", cn_app_port(app));
        rc = cn_app_run(app);
    }
    if (rc < 0)
        fprintf(stderr, "worker_app: %s\n", cn_strerror(rc));
    cn_app_free(app);
    return rc < 0 ? 1 : 0;
}
