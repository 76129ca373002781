/*
 * test_lifespan.c -- the app's lifetime: startup hooks that await before
 * anything is served, a startup failure that makes cn_app_run return the
 * error without serving, shutdown hooks after the drain in reverse order,
 * app data; and background tasks: after the response, surviving the
 * client, waited for by the stop (then cancelled at its deadline), errors
 * logged and counted.
 *
 * Two kinds of tests. The startup ones run the app with cn_app_run on a
 * thread of their own (run_start) and use its listener: that connections
 * made during the startup wait in the listen queue, that a failed startup
 * leaves nothing listening and that cn_app_stop from another thread ends a
 * startup are cn_app_run's and the socket's. The background-task ones run
 * in process, through the test client (h_tc_start): the response, the
 * task after it and the graceful stop (cn_test_client_free runs it) need
 * no wire, and cn_test_settle / cn_test_run_until let the app work while
 * the test waits for the task.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#include "app.h" /* cn__app_free_checked */

/* ---- an app run on a thread of its own (cn_app_run may fail here) ---- */

typedef struct runner {
    cn_app *app;
    pthread_t thread;
    int rc;
    atomic_bool done;
    int64_t started_ms, ended_ms;
} runner;

static void *run_main(void *arg)
{
    runner *r = arg;

    r->started_ms = h_now_ms();
    r->rc = cn_app_run(r->app);
    r->ended_ms = h_now_ms();
    r->done = true;
    return NULL;
}

static runner *run_start(cn_app *app)
{
    runner *r = calloc(1, sizeof(*r));

    assert_non_null(r);
    r->app = app;
    assert_int_equal(pthread_create(&r->thread, NULL, run_main, r), 0);
    return r;
}

static int run_join(runner *r)
{
    int rc;

    assert_true(H_WAIT_UNTIL(r->done, 10000));
    pthread_join(r->thread, NULL);
    rc = r->rc;
    return rc;
}

/* ---- lifespan hooks ---- */

typedef struct store {
    const char *name;
    int startup_ms; /* how long startup awaits */
    int fail;       /* startup returns this */
    int shutdown_ms;
    int shutdown_rc; /* what the shutdown hook's sleep returned */
} store;

static int open_store(cn_app *app, void *arg)
{
    store *st = arg;
    char s[32];
    int rc;

    snprintf(s, sizeof s, "+%s", st->name);
    h_trace(s);
    rc = cn_sleep(st->startup_ms);
    if (rc < 0)
        return rc;
    if (st->fail)
        return st->fail;
    if (cn_app_data(app) == NULL)
        cn_app_set_data(app, st);
    return 0;
}

static int close_store(cn_app *app, void *arg)
{
    store *st = arg;
    char s[32];

    (void)app;
    st->shutdown_rc = cn_sleep(st->shutdown_ms);
    snprintf(s, sizeof s, "-%s", st->name);
    h_trace(s);
    return 0;
}

static int which_store(cn_req *req, cn_res *res)
{
    store *st = cn_app_data(cn_req_app(req));

    return cn_res_text(res, 200, st ? st->name : "none");
}

static cn_app *new_app(void)
{
    cn_config cfg = h_fast_config();
    cn_app *app = cn_app_new(&cfg);

    assert_non_null(app);
    assert_int_equal(cn_app_route(app, "GET /store", which_store, NULL), 0);
    assert_int_equal(cn_app_listen(app, "127.0.0.1", 0), 0);
    return app;
}

static char *get_body(cn_app *app, const char *path, int *status)
{
    h_conn *c = h_open_at("127.0.0.1", cn_app_port(app));
    h_response r;
    char *body;

    h_sendf(c, "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", path);
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    h_close(c);
    *status = r.status;
    body = strdup(r.body);
    h_response_free(&r);
    return body;
}

/* Startup awaits before anything is served; connections made meanwhile wait. */
static void test_startup_before_serving(void **state)
{
    store a = {.name = "a", .startup_ms = 300}, b = {.name = "b"};
    cn_app *app = new_app();
    runner *r;
    int status;
    char *body;

    (void)state;
    h_trace_reset();
    assert_int_equal(cn_app_lifespan(app, open_store, close_store, &a), 0);
    assert_int_equal(cn_app_lifespan(app, open_store, close_store, &b), 0);
    r = run_start(app);
    /* connect at once: the listener queues us until startup is done */
    body = get_body(app, "/store", &status);
    assert_int_equal(status, 200);
    assert_string_equal(body, "a"); /* set by the first hook */
    assert_true(h_now_ms() - r->started_ms >= 280);
    free(body);
    h_assert_trace("+a+b");
    assert_int_equal(cn_app_stop(app), 0);
    assert_int_equal(run_join(r), 0);
    /* shutdown: reverse order, each may await */
    h_assert_trace("+a+b-b-a");
    assert_int_equal(a.shutdown_rc, 0);
    assert_int_equal(cn__app_free_checked(app), 0);
    free(r);
}

/* A failing startup: cn_app_run returns its error and serves nothing. */
static void test_startup_failure(void **state)
{
    store a = {.name = "a"}, b = {.name = "b", .fail = CN_ECONNREFUSED}, c = {.name = "c"};
    cn_app *app = new_app();
    int port = cn_app_port(app);

    (void)state;
    h_trace_reset();
    h_log_reset();
    assert_int_equal(cn_app_lifespan(app, open_store, close_store, &a), 0);
    assert_int_equal(cn_app_lifespan(app, open_store, close_store, &b), 0);
    assert_int_equal(cn_app_lifespan(app, open_store, close_store, &c), 0);
    assert_int_equal(cn_app_run(app), CN_ECONNREFUSED);
    /* a's shutdown ran (its startup succeeded); b failed; c never started */
    h_assert_trace("+a+b-a");
    assert_int_equal(h_log_count(CN_LOG_ERROR, "startup hook 2 of 3 failed: CN_ECONNREFUSED", NULL),
                     1);
    /* nothing listens any more */
    assert_true(h_connect_fd("127.0.0.1", port) < 0);
    assert_int_equal(cn__app_free_checked(app), 0);
}

/* A stop during a long startup stops it: run returns 0, soon. */
static void test_stop_during_startup(void **state)
{
    store a = {.name = "a", .startup_ms = 10000};
    cn_app *app = new_app();
    runner *r;

    (void)state;
    h_trace_reset();
    assert_int_equal(cn_app_lifespan(app, open_store, close_store, &a), 0);
    r = run_start(app);
    assert_true(H_WAIT_UNTIL(h_trace_is("+a"), 3000));
    assert_int_equal(cn_app_stop(app), 0);
    assert_int_equal(run_join(r), 0);
    assert_true(r->ended_ms - r->started_ms < 2000);
    h_assert_trace("+a"); /* its startup did not finish: no shutdown */
    assert_int_equal(cn__app_free_checked(app), 0);
    free(r);
}

/* ---- background tasks ---- */

static atomic_int bg_runs, bg_rc = H_NOT_YET;
static atomic_llong bg_done_ms;
static atomic_bool bg_saw_path;

typedef struct audit {
    cn_req *req;
    cn_res *res;
    int ms;
} audit;

static int audit_line(void *arg)
{
    audit *a = arg;
    int rc = cn_sleep(a->ms);

    bg_rc = rc;
    /* the request is still readable */
    bg_saw_path = strcmp(cn_req_path(a->req), "/bg/audit") == 0 &&
                  cn_res_text(a->res, 200, "late") == CN_ERESPONDED;
    bg_done_ms = h_now_ms();
    bg_runs++;
    return rc;
}

static int failing_task(void *arg)
{
    (void)arg;
    h_trace("fail");
    return CN_EUPSTREAM;
}

static int second_task(void *arg)
{
    (void)arg;
    h_trace("second");
    return 0;
}

static int bg_route(cn_req *req, cn_res *res)
{
    audit *a = cn_req_alloc(req, sizeof(*a));
    int64_t ms = 200;

    cn_req_query_int(req, "ms", &ms);
    a->req = req;
    a->res = res;
    a->ms = (int)ms;
    assert_int_equal(cn_req_background(req, audit_line, a), 0);
    return cn_res_text(res, 200, "queued");
}

static int bg_fail_route(cn_req *req, cn_res *res)
{
    cn_req_background(req, failing_task, NULL);
    cn_req_background(req, second_task, NULL);
    return cn_res_text(res, 200, "queued");
}

static int bg_sync_route(cn_req *req, cn_res *res)
{
    /* from a sync handler, on a pool worker */
    int rc = cn_req_background(req, second_task, NULL);

    return cn_res_text(res, rc == 0 ? 200 : 500, "queued");
}

static int bg_setup(cn_app *app, void *arg)
{
    (void)arg;
    bg_runs = 0;
    bg_rc = H_NOT_YET;
    bg_done_ms = 0;
    bg_saw_path = false;
    int rc = cn_app_route(app, "GET /bg/audit", bg_route, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /bg/fail", bg_fail_route, NULL);
    rc = rc ? rc
            : cn_app_route_ex(app, "GET /bg/sync", bg_sync_route, NULL,
                              &(cn_route_opts){.mode = CN_ROUTE_SYNC});
    return rc;
}

/* cn_test_run_until's condition: a background task is running. */
static int bg_running(void *app)
{
    cn_stats st;

    cn_app_stats(app, &st);
    return st.background_running == 1;
}

/* One GET that must answer 200 "queued". */
static void queue(h_client *c, const char *target, const char *header)
{
    cn_test_response r;

    h_tc_request(c, "GET", target, (const char *const[]){header, NULL}, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "queued");
    cn_test_response_free(&r);
}

/* After the client has its response; the client closing does not cancel it. */
static void test_background_after_response(void **state)
{
    h_client *c = h_tc_start(NULL, bg_setup, NULL);
    int64_t got_ms;

    *state = c;
    queue(c, "/bg/audit?ms=200", "Connection: close");
    got_ms = h_now_ms();
    /* the connection is closed by now; the task goes on */
    assert_int_equal(bg_runs, 0);
    assert_int_equal(cn_test_run_until(c->tc, bg_running, c->app, 1000), 0);
    h_tc_settle(c);
    assert_int_equal(bg_runs, 1);
    assert_int_equal(bg_rc, 0);
    assert_true(bg_saw_path);
    assert_true(bg_done_ms - got_ms >= 150);
    assert_true(h_tc_stats(c).background_started == 1);
    assert_true(h_tc_stats(c).background_running == 0);
}

/* Errors are logged with the route and counted; the next task still runs. */
static void test_background_error(void **state)
{
    h_client *c;

    h_trace_reset();
    h_log_reset();
    c = h_tc_start(NULL, bg_setup, NULL);
    *state = c;
    queue(c, "/bg/fail", NULL);
    h_tc_settle(c);
    assert_true(h_tc_stats(c).background_started == 2);
    h_assert_trace("failsecond");
    assert_int_equal(h_tc_stats(c).background_failed, 1);
    {
        /* and in /metrics */
        char text[16384];
        assert_true(cn_app_metrics_render(c->app, text, sizeof text) > 0);
        assert_non_null(strstr(text, "\ncanteen_background_tasks_started_total 2\n"));
        assert_non_null(strstr(text, "\ncanteen_background_tasks_failed_total 1\n"));
    }
    assert_int_equal(
        h_log_count(CN_LOG_ERROR, "GET /bg/fail: background task returned CN_EUPSTREAM", NULL), 1);
    /* added from a sync handler: runs too */
    queue(c, "/bg/sync", NULL);
    h_tc_settle(c);
    assert_true(h_tc_stats(c).background_started == 3);
}

/* The stop waits for a background task... */
static void test_stop_waits_for_background(void **state)
{
    h_client *c = h_tc_start(NULL, bg_setup, NULL);
    int64_t t0;

    *state = c;
    queue(c, "/bg/audit?ms=400", NULL);
    assert_int_equal(cn_test_run_until(c->tc, bg_running, c->app, 1000), 0);
    t0 = h_now_ms();
    *state = NULL;
    h_tc_stop(c); /* the graceful stop: cn_test_client_free returns 0 */
    assert_int_equal(bg_runs, 1);
    assert_int_equal(bg_rc, 0);
    assert_true(bg_done_ms >= t0 + 250);
}

/* ... up to its deadline, then cancels it. */
static void test_stop_cancels_background_at_deadline(void **state)
{
    cn_config cfg = h_fast_config(); /* shutdown_timeout_ms 2000 */
    h_client *c;
    int64_t t0;

    cfg.shutdown_timeout_ms = 300;
    c = h_tc_start(&cfg, bg_setup, NULL);
    *state = c;
    queue(c, "/bg/audit?ms=20000", NULL);
    assert_int_equal(cn_test_run_until(c->tc, bg_running, c->app, 1000), 0);
    t0 = h_now_ms();
    *state = NULL;
    h_tc_stop(c);
    assert_true(h_now_ms() - t0 >= 250);
    assert_true(h_now_ms() - t0 < 3000);
    assert_int_equal(bg_rc, CN_ECANCELED);
}

/* Lifespan registration rules; version and data. */
static void test_registration(void **state)
{
    cn_app *app = new_app();
    store a = {.name = "a"};

    (void)state;
    assert_int_equal(cn_app_lifespan(NULL, open_store, NULL, NULL), CN_EINVAL);
    assert_int_equal(cn_app_lifespan(app, NULL, NULL, NULL), CN_EINVAL);
    assert_int_equal(cn_app_on_startup(app, NULL, NULL), CN_EINVAL);
    assert_int_equal(cn_app_on_startup(app, open_store, &a), 0);
    assert_int_equal(cn_app_on_shutdown(app, close_store, &a), 0);
    assert_null(cn_app_data(app));
    cn_app_set_data(app, &a);
    assert_ptr_equal(cn_app_data(app), &a);
    assert_int_equal(cn_version(), CN_VERSION_HEX);
    assert_string_equal(cn_version_string(), CN_VERSION_STRING);
    assert_int_equal(cn__app_free_checked(app), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_startup_before_serving),
        cmocka_unit_test(test_startup_failure),
        cmocka_unit_test(test_stop_during_startup),
        cmocka_unit_test_teardown(test_background_after_response, h_tc_teardown),
        cmocka_unit_test_teardown(test_background_error, h_tc_teardown),
        cmocka_unit_test_teardown(test_stop_waits_for_background, h_tc_teardown),
        cmocka_unit_test_teardown(test_stop_cancels_background_at_deadline, h_tc_teardown),
        cmocka_unit_test(test_registration),
    };
    int rc;

    h_log_capture_start();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    h_log_capture_stop();
    return rc;
}
