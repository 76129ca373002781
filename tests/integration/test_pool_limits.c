/*
 * test_pool_limits.c -- what one client can hold of the thread pool, over
 * real sockets: a full queue answers 503 with Retry-After (cn_to_thread
 * gets CN_EAGAIN), a job that waited too long is answered 503 and never
 * runs (CN_EEXPIRED), a route's pool_limit keeps the other routes and
 * cn_to_thread served while it is saturated, the cooperative cancel check
 * turns 1 when the client leaves (in the test's routes and the demo's),
 * waiting jobs whose client left never run, and /metrics counts it all.
 *
 * Jobs that must stay running wait at a gate the test opens; the test
 * waits on the pool's figures and the handlers' records (bounded polls),
 * never on time.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "demo.h"
#include "../gate.h"
#include "harness.h"
#include "prom_text.h"

#define SLOTS 8

/* ---- the gate: held jobs wait here until the test opens it ---- */

/* ---- what the handlers saw, per slot ---- */

static atomic_int entered[SLOTS];   /* the job (handler or fn) began */
static atomic_int tt_rc[SLOTS];     /* what cn_to_thread returned */
static atomic_int saw_start[SLOTS]; /* cn_job_cancelled() at the start */
static atomic_int saw_end[SLOTS];   /* and when the spin ended */
static atomic_llong saw_end_at[SLOTS];

static void slots_reset(void)
{
    for (int i = 0; i < SLOTS; i++) {
        atomic_store(&entered[i], 0);
        atomic_store(&tt_rc[i], H_NOT_YET);
        atomic_store(&saw_start[i], H_NOT_YET);
        atomic_store(&saw_end[i], H_NOT_YET);
        atomic_store(&saw_end_at[i], 0);
    }
}

static int slot_of(cn_req *req)
{
    int64_t slot = -1;

    cn_req_param_int(req, "slot", &slot);
    return slot >= 0 && slot < SLOTS ? (int)slot : -1;
}

/* A job that holds its worker at the gate. */
static int hold_fn(void *arg)
{
    int slot = (int)(intptr_t)arg;

    atomic_store(&entered[slot], 1);
    gate_pass();
    return 0;
}

/* A job that spins until its request is cancelled (bounded: 10 s). */
static int spin_fn(void *arg)
{
    int slot = (int)(intptr_t)arg;
    int64_t deadline = h_now_ms() + 10000;
    int c;

    atomic_store(&saw_start[slot], cn_job_cancelled());
    atomic_store(&entered[slot], 1);
    while ((c = cn_job_cancelled()) == 0 && h_now_ms() < deadline)
        h_nap_ms(1);
    atomic_store(&saw_end_at[slot], h_now_ms());
    atomic_store(&saw_end[slot], c);
    return c == 1 ? CN_ECANCELED : 0;
}

/* GET /t/hold/{slot} (sync), GET /t/limited/{slot} (sync, pool_limit 1) */
static int rt_hold(cn_req *req, cn_res *res)
{
    int slot = slot_of(req);

    if (slot < 0)
        return cn_res_error(res, 422, "slot");
    hold_fn((void *)(intptr_t)slot);
    return cn_res_text(res, 200, "held");
}

/* GET /t/hold-tt/{slot}: an async route that holds a worker through cn_to_thread */
static int rt_hold_tt(cn_req *req, cn_res *res)
{
    int slot = slot_of(req);
    int rc;

    if (slot < 0)
        return cn_res_error(res, 422, "slot");
    rc = cn_to_thread(hold_fn, (void *)(intptr_t)slot);
    atomic_store(&tt_rc[slot], rc);
    return rc < 0 ? rc : cn_res_text(res, 200, "held");
}

/* GET /t/spin/{slot} (sync) */
static int rt_spin(cn_req *req, cn_res *res)
{
    int slot = slot_of(req);

    if (slot < 0)
        return cn_res_error(res, 422, "slot");
    if (spin_fn((void *)(intptr_t)slot) < 0)
        return CN_ECANCELED;
    return cn_res_text(res, 200, "never cancelled");
}

/* GET /t/spin-tt/{slot}: the same in a cn_to_thread function */
static int rt_spin_tt(cn_req *req, cn_res *res)
{
    int slot = slot_of(req);
    int rc;

    if (slot < 0)
        return cn_res_error(res, 422, "slot");
    rc = cn_to_thread(spin_fn, (void *)(intptr_t)slot);
    atomic_store(&tt_rc[slot], rc);
    return rc < 0 ? rc : cn_res_text(res, 200, "never cancelled");
}

/* GET /t/check-coro: cn_job_cancelled() in a coroutine (cn_task_cancelled) */
static int rt_check_coro(cn_req *req, cn_res *res)
{
    (void)req;
    return cn_res_text(res, 200, cn_job_cancelled() == 0 ? "0" : "?");
}

static int limit_routes(cn_app *app, void *arg)
{
    static const cn_route routes[] = {
        {.spec = "GET /t/hold/{slot:int}", .fn = rt_hold, .opts.mode = CN_ROUTE_SYNC},
        {.spec = "GET /t/limited/{slot:int}",
         .fn = rt_hold,
         .opts = {.mode = CN_ROUTE_SYNC, .pool_limit = 1}},
        {.spec = "GET /t/hold-tt/{slot:int}", .fn = rt_hold_tt},
        {.spec = "GET /t/spin/{slot:int}", .fn = rt_spin, .opts.mode = CN_ROUTE_SYNC},
        {.spec = "GET /t/spin-tt/{slot:int}", .fn = rt_spin_tt},
        {.spec = "GET /t/check-coro", .fn = rt_check_coro},
        {0},
    };
    (void)arg;
    return cn_app_routes(app, routes);
}

static h_server *start(void **state, const cn_config *cfg)
{
    h_server *s;

    h_log_reset();
    slots_reset();
    gate_close();
    s = h_start(cfg, NULL, limit_routes, NULL);
    *state = s;
    return s;
}

static cn_pool_stats pool_stats(h_server *s)
{
    cn_pool_stats ps;
    cn_app_pool_stats(s->app, &ps);
    return ps;
}

/* One pool figure from GET /metrics, read back by the strict parser. */
static double metric(h_server *s, const char *name)
{
    h_conn *c = h_send_get(s, "/metrics");
    h_response r;
    pt_text t;
    double v;

    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    t = pt_parse(r.body);
    v = pt_value(&t, name, "");
    pt_free(&t);
    h_response_free(&r);
    h_close(c);
    return v;
}

/* Read c's answer: a 503 with Retry-After: 7 (the tests' retry_after_s,
 * not the default) and FastAPI's body. */
static void expect_503(h_conn *c)
{
    h_response r;
    const char *ra;

    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 503);
    ra = h_header_get(&r, "Retry-After");
    assert_non_null(ra);
    assert_string_equal(ra, "7");
    assert_string_equal(r.body, "{\"detail\":\"Service Unavailable\"}");
    h_assert_standard_headers(&r, false);
    h_response_free(&r);
}

static void expect_200(h_conn *c, const char *body)
{
    h_response r;

    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    if (body)
        assert_string_equal(r.body, body);
    h_response_free(&r);
}

/* ------------------------------------------------------------------------ */

/* pool_queue_max = 1 on one worker: with a job running and one queued,
 * a sync route answers 503 + Retry-After at once and its handler never
 * runs; cn_to_thread returns CN_EAGAIN (503 from the handler's return). */
static void test_queue_full_answers_503(void **state)
{
    cn_config cfg = h_fast_config();
    h_server *s;
    h_conn *c0, *c1, *c2, *c3;
    cn_pool_stats ps;

    cfg.pool_threads = 1;
    cfg.pool_route_share = 100;
    cfg.pool_queue_max = 1;
    cfg.retry_after_s = 7;
    s = start(state, &cfg);
    c0 = h_send_get(s, "/t/hold/0");
    assert_true(H_WAIT_UNTIL(atomic_load(&gate_waiting) == 1, 3000));
    c1 = h_send_get(s, "/t/hold/1");
    assert_true(H_WAIT_UNTIL(pool_stats(s).queue_depth == 1, 3000));
    c2 = h_send_get(s, "/t/hold/2");
    expect_503(c2);
    c3 = h_send_get(s, "/t/hold-tt/3");
    expect_503(c3);
    assert_int_equal(atomic_load(&tt_rc[3]), CN_EAGAIN);
    ps = pool_stats(s);
    assert_int_equal(ps.rejected, 2);
    assert_int_equal(ps.queue_depth, 1);
    assert_int_equal(ps.busy, 1);
    assert_true(metric(s, "canteen_pool_jobs_rejected_total") == 2);
    /* refused work is an answer, not a failure to log */
    assert_int_equal(h_log_count(CN_LOG_ERROR, NULL, NULL), 0);
    gate_release();
    expect_200(c0, "held");
    expect_200(c1, "held");
    assert_int_equal(atomic_load(&entered[2]), 0);
    assert_int_equal(atomic_load(&entered[3]), 0);
    /* the queue has room again */
    {
        cJSON *o = h_get_json(s, "/to-thread/1", 200);
        cJSON_Delete(o);
    }
    ps = pool_stats(s);
    assert_int_equal(ps.rejected, 2);
    assert_int_equal(ps.completed, 3);
    h_assert_settles(s);
}

/* pool_queue_timeout_ms = 200 on one held worker: a sync route and a
 * cn_to_thread call that wait longer are answered 503 + Retry-After (the
 * latter's handler sees CN_EEXPIRED) while the worker is still held, and
 * their jobs never run. */
static void test_queue_timeout_answers_503(void **state)
{
    cn_config cfg = h_fast_config();
    h_server *s;
    h_conn *c0, *c1, *c2;
    int64_t t0, waited;

    cfg.pool_threads = 1;
    cfg.pool_route_share = 100;
    cfg.pool_queue_timeout_ms = 200;
    cfg.retry_after_s = 7;
    s = start(state, &cfg);
    c0 = h_send_get(s, "/t/hold/0");
    assert_true(H_WAIT_UNTIL(atomic_load(&gate_waiting) == 1, 3000));
    t0 = h_now_ms();
    c1 = h_send_get(s, "/t/hold/1");
    c2 = h_send_get(s, "/t/hold-tt/2");
    expect_503(c1);
    expect_503(c2);
    waited = h_now_ms() - t0;
    print_message("503 after %lld ms of waiting (limit 200 ms)\n", (long long)waited);
    assert_true(waited >= 190);
    assert_int_equal(atomic_load(&tt_rc[2]), CN_EEXPIRED);
    /* the first job still holds the only worker: nobody ran the others */
    assert_int_equal(atomic_load(&gate_waiting), 1);
    assert_int_equal(pool_stats(s).expired, 2);
    assert_int_equal(pool_stats(s).queue_depth, 0);
    assert_true(metric(s, "canteen_pool_jobs_expired_total") == 2);
    assert_int_equal(h_log_count(CN_LOG_ERROR, NULL, NULL), 0);
    gate_release();
    expect_200(c0, "held");
    assert_int_equal(atomic_load(&entered[1]), 0);
    assert_int_equal(atomic_load(&entered[2]), 0);
    assert_int_equal(pool_stats(s).completed, 1);
    h_assert_settles(s);
}

/*
 * Four workers and the default share (half of them per route): four
 * requests on one sync route hold two workers and wait for the other two
 * without a worker; meanwhile another sync route, an async route's
 * cn_to_thread and the demo's /to-thread are served at once.
 */
static void test_route_limit_keeps_others_served(void **state)
{
    cn_config cfg = h_fast_config();
    h_server *s;
    h_conn *c[4];
    cn_pool_stats ps;

    cfg.pool_threads = 4;
    s = start(state, &cfg);
    for (int i = 0; i < 4; i++)
        c[i] = h_send_get(s, i == 0   ? "/t/hold/0"
                             : i == 1 ? "/t/hold/1"
                             : i == 2 ? "/t/hold/2"
                                      : "/t/hold/3");
    assert_true(H_WAIT_UNTIL(pool_stats(s).route_waiting == 2, 3000));
    assert_true(H_WAIT_UNTIL(atomic_load(&gate_waiting) == 2, 3000));
    ps = pool_stats(s);
    assert_int_equal(ps.busy, 2);
    assert_int_equal(ps.queue_depth, 0);
    assert_int_equal(ps.route_waits, 2);
    assert_true(metric(s, "canteen_pool_jobs_route_waiting") == 2);
    assert_true(metric(s, "canteen_pool_route_waits_total") == 2);
    /* the rest of the pool serves everyone else */
    {
        cJSON *o = h_get_json(s, "/to-thread/10", 200);
        assert_int_equal(h_jint(o, "slept_ms"), 10);
        cJSON_Delete(o);
        o = h_get_json(s, "/sync-sleep/10", 200);
        assert_int_equal(h_jint(o, "slept_ms"), 10);
        cJSON_Delete(o);
    }
    {
        /* one more held through cn_to_thread: another route, another share */
        h_conn *t = h_send_get(s, "/t/hold-tt/4");
        assert_true(H_WAIT_UNTIL(atomic_load(&gate_waiting) == 3, 3000));
        gate_release();
        expect_200(t, "held");
        h_close(t);
    }
    for (int i = 0; i < 4; i++)
        expect_200(c[i], "held");
    ps = pool_stats(s);
    assert_int_equal(ps.route_waiting, 0);
    assert_int_equal(ps.route_waits, 2);
    for (int i = 0; i < 4; i++)
        h_close(c[i]);
    h_assert_settles(s);
}

/* A route's own pool_limit (1 here) applies whatever the share. */
static void test_route_pool_limit_option(void **state)
{
    cn_config cfg = h_fast_config();
    h_server *s;
    h_conn *a, *b;

    cfg.pool_threads = 4;
    cfg.pool_route_share = 100;
    s = start(state, &cfg);
    a = h_send_get(s, "/t/limited/0");
    b = h_send_get(s, "/t/limited/1");
    assert_true(H_WAIT_UNTIL(pool_stats(s).route_waiting == 1, 3000));
    assert_true(H_WAIT_UNTIL(atomic_load(&gate_waiting) == 1, 3000));
    assert_int_equal(pool_stats(s).busy, 1);
    /* the same share-free config lets another route take three at once */
    {
        h_conn *h[3];
        for (int i = 0; i < 3; i++)
            h[i] = h_send_get(s, i == 0 ? "/t/hold/2" : i == 1 ? "/t/hold/3" : "/t/hold/4");
        assert_true(H_WAIT_UNTIL(atomic_load(&gate_waiting) == 4, 3000));
        gate_release();
        for (int i = 0; i < 3; i++) {
            expect_200(h[i], "held");
            h_close(h[i]);
        }
    }
    expect_200(a, "held");
    expect_200(b, "held");
    assert_int_equal(pool_stats(s).route_waits, 1);
    h_assert_settles(s);
}

/* The cooperative check in a sync handler and in a cn_to_thread function:
 * 0 while the client is there, 1 soon after it leaves; the coroutine's
 * answer is cn_task_cancelled's; off the pool and the loop, CN_ESTATE. */
static void test_cancel_check_turns_true_when_client_leaves(void **state)
{
    h_server *s = start(state, NULL);
    h_response r;

    assert_int_equal(cn_job_cancelled(), CN_ESTATE);
    h_roundtrip(s, "GET /t/check-coro HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_string_equal(r.body, "0");
    h_response_free(&r);
    for (int slot = 0; slot < 2; slot++) {
        h_conn *c = h_send_get(s, slot == 0 ? "/t/spin/0" : "/t/spin-tt/1");
        int64_t closed_at;

        assert_true(H_WAIT_UNTIL(atomic_load(&entered[slot]) == 1, 3000));
        assert_int_equal(atomic_load(&saw_start[slot]), 0);
        assert_int_equal(h_expect_quiet(c, 50), H_TIMEOUT); /* still spinning */
        assert_int_equal(atomic_load(&saw_end[slot]), H_NOT_YET);
        closed_at = h_now_ms();
        h_close(c);
        assert_true(H_WAIT_UNTIL(atomic_load(&saw_end[slot]) != H_NOT_YET, 5000));
        assert_int_equal(atomic_load(&saw_end[slot]), 1);
        print_message("slot %d: the job saw the cancel %lld ms after the close\n", slot,
                      (long long)(atomic_load(&saw_end_at[slot]) - closed_at));
        /* long before its own 10 s bound */
        assert_true(atomic_load(&saw_end_at[slot]) - closed_at < 3000);
    }
    assert_true(H_WAIT_UNTIL(atomic_load(&tt_rc[1]) != H_NOT_YET, 3000));
    assert_int_equal(atomic_load(&tt_rc[1]), CN_ECANCELED);
    h_assert_settles(s);
    assert_int_equal(pool_stats(s).busy, 0);
}

/* The demo's long routes look at the check: a client that leaves frees
 * its worker long before the work it asked for would have ended. */
static void test_demo_routes_stop_when_client_leaves(void **state)
{
    h_server *s = start(state, NULL);
    static const char *const paths[] = {"/sync-sleep/10000", "/cpu/2000000000", "/to-thread/10000"};

    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        h_conn *c = h_send_get(s, paths[i]);
        int64_t closed_at;

        assert_true(H_WAIT_UNTIL(pool_stats(s).busy == 1, 3000));
        closed_at = h_now_ms();
        h_close(c);
        assert_true(H_WAIT_UNTIL(pool_stats(s).busy == 0, 5000));
        print_message("%s: worker free %lld ms after the client left\n", paths[i],
                      (long long)(h_now_ms() - closed_at));
        assert_true(h_now_ms() - closed_at < 5000);
    }
    h_assert_settles(s);
    /* and they bound what one request may ask */
    {
        cJSON *o = h_get_json(s, "/sync-sleep/10001", 422);
        cJSON_Delete(o);
        o = h_get_json(s, "/to-thread/15000", 422);
        cJSON_Delete(o);
        o = h_get_json(s, "/cpu/10000000000", 422);
        cJSON_Delete(o);
    }
}

/* Waiting jobs whose client left never run: one queued for the only
 * worker, and one held by its route's pool_limit. */
static void test_dropped_waiting_jobs_never_run(void **state)
{
    cn_config cfg = h_fast_config();
    h_server *s;
    h_conn *a, *b, *c, *d;
    cn_pool_stats ps;

    cfg.pool_threads = 2;
    cfg.pool_route_share = 100;
    s = start(state, &cfg);
    /* /t/limited's second job waits for the route's one slot */
    c = h_send_get(s, "/t/limited/2");
    assert_true(H_WAIT_UNTIL(atomic_load(&gate_waiting) == 1, 3000));
    d = h_send_get(s, "/t/limited/3");
    assert_true(H_WAIT_UNTIL(pool_stats(s).route_waiting == 1, 3000));
    /* the other worker is held; the next job waits in the queue */
    a = h_send_get(s, "/t/hold/0");
    assert_true(H_WAIT_UNTIL(atomic_load(&gate_waiting) == 2, 3000));
    b = h_send_get(s, "/t/hold/1");
    assert_true(H_WAIT_UNTIL(pool_stats(s).queue_depth == 1, 3000));
    h_close(b);
    h_close(d);
    assert_true(H_WAIT_UNTIL(pool_stats(s).cancelled == 2, 3000));
    ps = pool_stats(s);
    assert_int_equal(ps.queue_depth, 0);
    assert_int_equal(ps.route_waiting, 0);
    assert_true(metric(s, "canteen_pool_jobs_cancelled_total") == 2);
    gate_release();
    expect_200(a, "held");
    expect_200(c, "held");
    h_assert_settles(s);
    assert_int_equal(atomic_load(&entered[1]), 0);
    assert_int_equal(atomic_load(&entered[3]), 0);
    ps = pool_stats(s);
    assert_int_equal(ps.completed, 2);
    assert_int_equal(ps.cancelled, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_queue_full_answers_503, h_teardown),
        cmocka_unit_test_teardown(test_queue_timeout_answers_503, h_teardown),
        cmocka_unit_test_teardown(test_route_limit_keeps_others_served, h_teardown),
        cmocka_unit_test_teardown(test_route_pool_limit_option, h_teardown),
        cmocka_unit_test_teardown(test_cancel_check_turns_true_when_client_leaves, h_teardown),
        cmocka_unit_test_teardown(test_demo_routes_stop_when_client_leaves, h_teardown),
        cmocka_unit_test_teardown(test_dropped_waiting_jobs_never_run, h_teardown),
    };
    int rc;

    h_log_capture_start();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    h_log_capture_stop();
    return rc;
}
