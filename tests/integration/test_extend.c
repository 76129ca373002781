/*
 * test_extend.c -- the primitives an extension builds on: cn_future
 * (resolved from a libuv handle of the app's loop, via canteen/uv.h),
 * cn_app_pool_submit (a job with a loop-side completion) and
 * cn_app_metrics_add (an extension's figures in /metrics).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <canteen/uv.h>

#include "harness.h"

/* ---- a loop-side resolver: a uv timer that resolves a future ---- */

typedef struct resolver {
    uv_timer_t timer;
    cn_future *f;
    int value;
    int resolve_rc;
    int abandoned; /* the reason the hook got, or 0 */
} resolver;

static void on_fire(uv_timer_t *t)
{
    resolver *r = t->data;

    r->resolve_rc = cn_future_resolve(r->f, r->value);
    r->f = NULL;
}

static void on_closed(uv_handle_t *h)
{
    free(h->data);
}

/* The hook: forget the future, stop what would have resolved it. */
static void on_abandon(cn_future *f, int reason, void *arg)
{
    resolver *r = arg;

    (void)f;
    r->abandoned = reason;
    r->f = NULL;
    uv_timer_stop(&r->timer);
}

static resolver *resolver_start(cn_req *req, cn_future *f, int value, int64_t ms)
{
    resolver *r = calloc(1, sizeof(*r));

    r->f = f;
    r->value = value;
    r->resolve_rc = H_NOT_YET;
    uv_timer_init(cn_app_loop(cn_req_app(req)), &r->timer);
    r->timer.data = r;
    uv_timer_start(&r->timer, on_fire, (uint64_t)ms, 0);
    cn_future_on_abandon(f, on_abandon, r);
    return r;
}

static void resolver_free(resolver *r)
{
    uv_close((uv_handle_t *)&r->timer, on_closed);
}

/* GET /t/future */
static int rt_future(cn_req *req, cn_res *res)
{
    cJSON *o = cJSON_CreateObject();
    cn_future *f = cn_future_new();
    resolver *r = resolver_start(req, f, 7, 30);
    int64_t t0 = h_now_ms();

    cJSON_AddNumberToObject(o, "done_before", cn_future_done(f));
    cJSON_AddNumberToObject(o, "wait", cn_future_wait(f, 3000));
    cJSON_AddNumberToObject(o, "waited_ms", (double)(h_now_ms() - t0));
    cJSON_AddNumberToObject(o, "resolve_rc", r->resolve_rc);
    cJSON_AddNumberToObject(o, "abandoned", r->abandoned);
    cJSON_AddNumberToObject(o, "again", cn_future_wait(f, 3000));
    cJSON_AddNumberToObject(o, "resolve_twice", cn_future_resolve(f, 8));
    cJSON_AddNumberToObject(o, "done_after", cn_future_done(f));
    resolver_free(r);
    cn_future_free(f);

    /* resolved before anyone waits: the wait returns at once */
    f = cn_future_new();
    cn_future_resolve(f, CN_ERANGE);
    cJSON_AddNumberToObject(o, "early", cn_future_wait(f, 0));
    cn_future_free(f);

    /* a timeout: the hook runs first, the resolver is stopped */
    f = cn_future_new();
    r = resolver_start(req, f, 9, 5000);
    t0 = h_now_ms();
    cJSON_AddNumberToObject(o, "timeout", cn_future_wait(f, 50));
    cJSON_AddNumberToObject(o, "timeout_ms", (double)(h_now_ms() - t0));
    cJSON_AddNumberToObject(o, "timeout_hook", r->abandoned);
    cJSON_AddNumberToObject(o, "resolve_late", cn_future_resolve(f, 1));
    cJSON_AddNumberToObject(o, "timeout_again", cn_future_wait(f, 50));
    resolver_free(r);
    cn_future_free(f);

    cJSON_AddNumberToObject(o, "einval", cn_future_wait(NULL, 10));
    cJSON_AddNumberToObject(o, "resolve_null", cn_future_resolve(NULL, 0));
    return cn_res_json(res, 200, o);
}

/* ---- two waiters on one future ---- */

typedef struct second {
    cn_future *f;
    int rc;
} second;

static int wait_second(void *arg)
{
    second *s = arg;
    s->rc = cn_future_wait(s->f, 1000);
    return 0;
}

/* GET /t/future/busy */
static int rt_busy(cn_req *req, cn_res *res)
{
    cJSON *o = cJSON_CreateObject();
    second s = {cn_future_new(), H_NOT_YET};
    resolver *r = resolver_start(req, s.f, 3, 40);
    cn_task *t;

    cn_spawn(wait_second, &s, &t);
    cJSON_AddNumberToObject(o, "first", cn_future_wait(s.f, 3000));
    cn_await(t);
    cJSON_AddNumberToObject(o, "second", s.rc);
    resolver_free(r);
    cn_future_free(s.f);
    (void)req;
    return cn_res_json(res, 200, o);
}

/* ---- cancellation ---- */

static atomic_int g_cancel_rc = H_NOT_YET;
static atomic_int g_hook_reason = H_NOT_YET;
static atomic_int g_parked;

static void record_abandon(cn_future *f, int reason, void *arg)
{
    on_abandon(f, reason, arg);
    atomic_store(&g_hook_reason, reason);
}

/* GET /t/future/forever */
static int rt_forever(cn_req *req, cn_res *res)
{
    cn_future *f = cn_future_new();
    resolver *r = resolver_start(req, f, 1, 60000);
    int rc;

    (void)res;
    cn_future_on_abandon(f, record_abandon, r);
    atomic_store(&g_parked, 1);
    rc = cn_future_wait(f, -1);
    atomic_store(&g_cancel_rc, rc);
    resolver_free(r);
    cn_future_free(f);
    return rc;
}

/* ---- the golden rule ---- */

static int rt_sync(cn_req *req, cn_res *res)
{
    cn_future *f = cn_future_new();
    cJSON *o = cJSON_CreateObject();

    (void)req;
    cJSON_AddNumberToObject(o, "rc", cn_future_wait(f, 10));
    cn_future_free(f);
    return cn_res_json(res, 200, o);
}

/* ---- cn_app_pool_submit ---- */

typedef struct job {
    cn_future *f;
    pthread_t loop_thread, work_thread, done_thread;
    int status;
} job;

static void job_work(void *arg)
{
    job *j = arg;
    struct timespec ts = {0, 30 * 1000000L};

    j->work_thread = pthread_self();
    nanosleep(&ts, NULL); /* blocking: fine on a worker */
}

static void job_done(void *arg, int status)
{
    job *j = arg;

    j->done_thread = pthread_self();
    j->status = status;
    cn_future_resolve(j->f, 0);
}

/* GET /t/pool-submit */
static int rt_pool_submit(cn_req *req, cn_res *res)
{
    job *j = cn_req_alloc(req, sizeof(*j));
    cJSON *o = cJSON_CreateObject();
    int64_t t0 = h_now_ms();

    memset(j, 0, sizeof(*j));
    j->f = cn_future_new();
    j->loop_thread = pthread_self();
    j->status = H_NOT_YET;
    cJSON_AddNumberToObject(o, "submit",
                            cn_app_pool_submit(cn_req_app(req), job_work, job_done, j));
    cJSON_AddNumberToObject(o, "wait", cn_future_wait(j->f, 3000));
    cJSON_AddNumberToObject(o, "ms", (double)(h_now_ms() - t0));
    cJSON_AddNumberToObject(o, "status", j->status);
    cJSON_AddBoolToObject(o, "work_off_loop", !pthread_equal(j->work_thread, j->loop_thread));
    cJSON_AddBoolToObject(o, "done_on_loop", pthread_equal(j->done_thread, j->loop_thread));
    cJSON_AddNumberToObject(o, "einval", cn_app_pool_submit(cn_req_app(req), NULL, job_done, j));
    cn_future_free(j->f);
    return cn_res_json(res, 200, o);
}

/* ---- cn_app_metrics_add ---- */

static atomic_int g_metric_calls;

static void ext_metrics(cn_metrics_out *out, void *data)
{
    const char *name = data;

    atomic_fetch_add(&g_metric_calls, 1);
    cn_metrics_printf(out, "# HELP %s_total Things an extension counted.\n", name);
    cn_metrics_printf(out, "# TYPE %s_total counter\n%s_total %d\n", name, name, 42);
    cn_metrics_printf(out, "# HELP %s_wait_seconds A time.\n# TYPE %s_wait_seconds gauge\n", name,
                      name);
    cn_metrics_printf(out, "%s_wait_seconds ", name);
    cn_metrics_seconds(out, 12.5);
    cn_metrics_printf(out, "\n");
}

static int routes(cn_app *app, void *arg)
{
    cn_route_opts sync = {.mode = CN_ROUTE_SYNC};
    int rc = 0;

    (void)arg;
    rc = rc ? rc : cn_app_route(app, "GET /t/future", rt_future, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/future/busy", rt_busy, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/future/forever", rt_forever, NULL);
    rc = rc ? rc : cn_app_route_ex(app, "GET /t/future/sync", rt_sync, NULL, &sync);
    rc = rc ? rc : cn_app_route(app, "GET /t/pool-submit", rt_pool_submit, NULL);
    rc = rc ? rc : cn_app_metrics_add(app, ext_metrics, (void *)"ext_things");
    rc = rc ? rc : (cn_app_metrics_add(app, NULL, NULL) == CN_EINVAL ? 0 : -1);
    return rc;
}

static h_server *start(void **state)
{
    h_server *s = h_start(NULL, NULL, routes, NULL);
    *state = s;
    return s;
}

static void test_future(void **state)
{
    cJSON *o = h_get_json(start(state), "/t/future", 200);

    h_assert_code(o, "done_before", 0);
    h_assert_code(o, "wait", 7);
    assert_true(h_jint(o, "waited_ms") >= 25);
    h_assert_code(o, "resolve_rc", 0);
    h_assert_code(o, "abandoned", 0);
    h_assert_code(o, "again", 7);
    h_assert_code(o, "resolve_twice", CN_ESTATE);
    h_assert_code(o, "done_after", 1);
    h_assert_code(o, "early", CN_ERANGE);
    h_assert_code(o, "timeout", CN_ETIMEDOUT);
    assert_true(h_jint(o, "timeout_ms") >= 45);
    h_assert_code(o, "timeout_hook", CN_ETIMEDOUT);
    h_assert_code(o, "resolve_late", CN_ESTATE);
    h_assert_code(o, "timeout_again", CN_ETIMEDOUT);
    h_assert_code(o, "einval", CN_EINVAL);
    h_assert_code(o, "resolve_null", CN_EINVAL);
    cJSON_Delete(o);
    h_assert_settles(*state);
}

static void test_future_busy(void **state)
{
    cJSON *o = h_get_json(start(state), "/t/future/busy", 200);

    h_assert_code(o, "first", 3);
    h_assert_code(o, "second", CN_EBUSY);
    cJSON_Delete(o);
}

static void test_future_cancel(void **state)
{
    h_server *s = start(state);
    h_conn *c = h_send_get(s, "/t/future/forever");

    assert_true(H_WAIT_UNTIL(atomic_load(&g_parked) == 1, 3000));
    assert_true(H_WAIT_UNTIL(h_stats(s).coroutines_live == 1, 3000));
    h_close(c);
    assert_true(H_WAIT_UNTIL(atomic_load(&g_cancel_rc) != H_NOT_YET, 3000));
    assert_int_equal(atomic_load(&g_cancel_rc), CN_ECANCELED);
    assert_int_equal(atomic_load(&g_hook_reason), CN_ECANCELED);
    h_assert_settles(s);
}

static void test_future_not_a_coroutine(void **state)
{
    cJSON *o = h_get_json(start(state), "/t/future/sync", 200);
    cn_future *f = cn_future_new();

    h_assert_code(o, "rc", CN_ENOTCORO);
    cJSON_Delete(o);
    assert_int_equal(cn_future_wait(f, 10), CN_ENOTCORO);
    cn_future_free(f);
}

static void test_pool_submit(void **state)
{
    cJSON *o = h_get_json(start(state), "/t/pool-submit", 200);

    h_assert_code(o, "submit", 0);
    h_assert_code(o, "wait", 0);
    assert_true(h_jint(o, "ms") >= 25);
    h_assert_code(o, "status", 0);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "work_off_loop")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "done_on_loop")));
    h_assert_code(o, "einval", CN_EINVAL);
    cJSON_Delete(o);
    assert_int_equal(cn_app_pool_submit(NULL, job_work, job_done, NULL), CN_EINVAL);
}

static void test_metrics_add(void **state)
{
    h_server *s = start(state);
    h_conn *c = h_send_get(s, "/metrics");
    h_response r;
    char buf[64 * 1024];
    int n;

    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "# TYPE canteen_requests_total counter\n"));
    assert_non_null(strstr(r.body, "\n# TYPE ext_things_total counter\next_things_total 42\n"));
    assert_non_null(strstr(r.body, "\next_things_wait_seconds 0.0125\n"));
    /* after Canteen's own figures */
    assert_true(strstr(r.body, "ext_things_total") > strstr(r.body, "canteen_build_info"));
    h_response_free(&r);
    h_close(c);
    n = cn_app_metrics_render(s->app, buf, sizeof buf);
    assert_true(n > 0 && (size_t)n < sizeof buf);
    assert_non_null(strstr(buf, "ext_things_total 42\n"));
    assert_true(atomic_load(&g_metric_calls) >= 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_future, h_teardown),
        cmocka_unit_test_teardown(test_future_busy, h_teardown),
        cmocka_unit_test_teardown(test_future_cancel, h_teardown),
        cmocka_unit_test_teardown(test_future_not_a_coroutine, h_teardown),
        cmocka_unit_test_teardown(test_pool_submit, h_teardown),
        cmocka_unit_test_teardown(test_metrics_add, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
