/*
 * test_pool.c -- sync routes and cn_to_thread on Canteen's thread pool, over
 * real sockets: where handlers run, the pool's bound, to_thread results and
 * golden-rule errors on a worker, cancellation while queued and while
 * running, the pool's figures, and the loop-block detector (the warning that
 * names the route, its threshold, the lag probe, and the damage a blocked
 * loop does to requests in flight).
 *
 * Handlers record what they saw in test-global state (atomics or a mutex);
 * the test thread polls it with bounded deadlines. Jobs that must hold a
 * worker for as long as a test needs wait at a gate (gate.h) the test
 * opens. Nothing sleeps to synchronise.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../gate.h"
#include "demo.h"
#include "harness.h"

/* ------------------------------------------------------------------------ */
/* Local helpers                                                             */
/* ------------------------------------------------------------------------ */

static cn_pool_stats pool_stats(h_server *s)
{
    cn_pool_stats ps;
    cn_app_pool_stats(s->app, &ps);
    return ps;
}

static cn_loop_stats loop_stats(h_server *s)
{
    cn_loop_stats ls;
    cn_app_loop_stats(s->app, &ls);
    return ls;
}

/* ------------------------------------------------------------------------ */
/* Test routes                                                               */
/* ------------------------------------------------------------------------ */

/* ---- which thread ---- */

static pthread_mutex_t tid_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_t loop_tid, sync_tid, job_tid;
static int have_loop_tid, have_sync_tid, have_job_tid;

static void record_tid(pthread_t *where, int *flag)
{
    pthread_mutex_lock(&tid_mu);
    *where = pthread_self();
    *flag = 1;
    pthread_mutex_unlock(&tid_mu);
}

/* GET /t/where-async */
static int rt_where_async(cn_req *req, cn_res *res)
{
    (void)req;
    record_tid(&loop_tid, &have_loop_tid);
    return cn_res_text(res, 200, "async");
}

/* GET /t/where-sync (SYNC) */
static int rt_where_sync(cn_req *req, cn_res *res)
{
    (void)req;
    record_tid(&sync_tid, &have_sync_tid);
    return cn_res_text(res, 200, "sync");
}

/* ---- to_thread ---- */

typedef struct tt_arg {
    int in;
    int out;
    int ret;
} tt_arg;

static int tt_double(void *arg)
{
    tt_arg *a = arg;
    record_tid(&job_tid, &have_job_tid);
    a->out = a->in * 2;
    return a->ret;
}

/* What awaitables say on a worker thread (the golden rule). */
typedef struct golden {
    int sleep, yield, spawn, await, gather, wait_for, to_thread, fetch, fetch_all, cancelled;
    int current_req_null;
} golden;

static int on_worker_golden(void *arg)
{
    golden *g = arg;
    cn_fetch_opts fo = {.url = "http://127.0.0.1:1/never"};
    cn_fetch_result fr;
    cn_task *t = NULL;

    g->sleep = cn_sleep(1);
    g->yield = cn_yield();
    g->spawn = cn_spawn(h_noop, NULL, &t);
    g->await = cn_await(NULL);
    g->gather = cn_gather(NULL, 0, NULL);
    g->wait_for = cn_wait_for(NULL, 1);
    g->to_thread = cn_to_thread(h_noop, NULL);
    g->fetch = cn_fetch(&fo, &fr);
    g->fetch_all = cn_fetch_all(&fo, 1, &fr);
    g->cancelled = cn_task_cancelled();
    g->current_req_null = cn_req_current() == NULL;
    return 0;
}

/* GET /t/to-thread */
static int rt_to_thread(cn_req *req, cn_res *res)
{
    tt_arg *a = cn_req_alloc(req, sizeof(*a));
    golden *g = cn_req_alloc(req, sizeof(*g));
    cJSON *o = cJSON_CreateObject();

    record_tid(&loop_tid, &have_loop_tid);
    *a = (tt_arg){21, 0, 0};
    cJSON_AddNumberToObject(o, "rc_ok", cn_to_thread(tt_double, a));
    cJSON_AddNumberToObject(o, "out", a->out);
    *a = (tt_arg){5, 0, CN_ERANGE};
    cJSON_AddNumberToObject(o, "rc_err", cn_to_thread(tt_double, a));
    cJSON_AddNumberToObject(o, "out_err", a->out);
    cJSON_AddNumberToObject(o, "rc_null", cn_to_thread(NULL, NULL));
    memset(g, 0, sizeof(*g));
    cJSON_AddNumberToObject(o, "rc_golden", cn_to_thread(on_worker_golden, g));
    cJSON_AddNumberToObject(o, "g_sleep", g->sleep);
    cJSON_AddNumberToObject(o, "g_yield", g->yield);
    cJSON_AddNumberToObject(o, "g_spawn", g->spawn);
    cJSON_AddNumberToObject(o, "g_await", g->await);
    cJSON_AddNumberToObject(o, "g_gather", g->gather);
    cJSON_AddNumberToObject(o, "g_wait_for", g->wait_for);
    cJSON_AddNumberToObject(o, "g_to_thread", g->to_thread);
    cJSON_AddNumberToObject(o, "g_fetch", g->fetch);
    cJSON_AddNumberToObject(o, "g_fetch_all", g->fetch_all);
    cJSON_AddNumberToObject(o, "g_cancelled", g->cancelled);
    cJSON_AddNumberToObject(o, "g_current_req_null", g->current_req_null);
    return cn_res_json(res, 200, o);
}

/* ---- cancellation around to_thread ---- */

#define SLOTS 4
/* Per request slot: timestamps (ms, monotonic) and what the handler saw. */
static atomic_llong job_start[SLOTS], job_end[SLOTS], handler_ret[SLOTS];
static atomic_int handler_rc[SLOTS], handler_entered[SLOTS], job_saw_cancel[SLOTS];

static void slots_reset(void)
{
    for (int i = 0; i < SLOTS; i++) {
        atomic_store(&job_start[i], 0);
        atomic_store(&job_end[i], 0);
        atomic_store(&handler_ret[i], 0);
        atomic_store(&handler_rc[i], H_NOT_YET);
        atomic_store(&handler_entered[i], 0);
        atomic_store(&job_saw_cancel[i], 0);
    }
}

typedef struct block_job {
    int slot;
    int64_t ms;
} block_job;

static int block_job_fn(void *arg)
{
    block_job *b = arg;
    atomic_store(&job_start[b->slot], h_now_ms());
    if (b->ms < 0) {
        /* until the request is cancelled (bounded), then the gate */
        int64_t deadline = h_now_ms() + 10000;
        while (cn_job_cancelled() == 0 && h_now_ms() < deadline)
            h_nap_ms(1);
        atomic_store(&job_saw_cancel[b->slot], cn_job_cancelled());
    }
    if (b->ms <= 0)
        gate_pass();
    else
        h_block_ms(b->ms);
    atomic_store(&job_end[b->slot], h_now_ms());
    return 0;
}

/* GET /t/block/{slot:int}/{ms:int}: to_thread(block ms; 0: wait at the
 * gate), recording times. GET /t/block-cancel/{slot:int}: the job waits
 * until its request is cancelled, then at the gate. */
static int rt_block(cn_req *req, cn_res *res)
{
    block_job *b = cn_req_alloc(req, sizeof(*b));
    int64_t slot;
    int rc;

    cn_req_param_int(req, "slot", &slot);
    if (cn_req_param_int(req, "ms", &b->ms) < 0)
        b->ms = -1;
    if (slot < 0 || slot >= SLOTS)
        return cn_res_error(res, 422, "slot");
    b->slot = (int)slot;
    atomic_store(&handler_entered[slot], 1);
    rc = cn_to_thread(block_job_fn, b);
    atomic_store(&handler_ret[slot], h_now_ms());
    atomic_store(&handler_rc[slot], rc);
    if (rc < 0)
        return rc;
    return cn_res_text(res, 200, "done");
}

/* GET /t/gate-sync (a sync route): waits at the gate on its worker */
static int rt_gate_sync(cn_req *req, cn_res *res)
{
    (void)req;
    gate_pass();
    return cn_res_text(res, 200, "passed");
}

static int pool_routes(cn_app *app, void *arg)
{
    cn_route_opts sync = {.mode = CN_ROUTE_SYNC};
    int rc = 0;

    rc = rc ? rc : cn_app_route(app, "GET /t/where-async", rt_where_async, NULL);
    rc = rc ? rc : cn_app_route_ex(app, "GET /t/where-sync", rt_where_sync, NULL, &sync);
    rc = rc ? rc : cn_app_route(app, "GET /t/to-thread", rt_to_thread, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/block/{slot:int}/{ms:int}", rt_block, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/block-cancel/{slot:int}", rt_block, NULL);
    rc = rc ? rc : cn_app_route_ex(app, "GET /t/gate-sync", rt_gate_sync, NULL, &sync);
    if (rc == 0 && arg != NULL) /* the traps */
        rc = demo_register_traps(app);
    return rc;
}

static h_server *start(void **state, const cn_config *cfg, bool traps)
{
    h_server *s;

    h_log_reset();
    slots_reset();
    gate_close();
    pthread_mutex_lock(&tid_mu);
    have_loop_tid = have_sync_tid = have_job_tid = 0;
    pthread_mutex_unlock(&tid_mu);
    s = h_start(cfg, NULL, pool_routes, traps ? (void *)1 : NULL);
    *state = s;
    return s;
}

/* A pool of `threads` without the per-route share, so that one route can
 * fill it (the tests of the pool's own bound and queue). */
static cn_config pool_config(unsigned threads)
{
    cn_config c = h_fast_config();
    c.pool_threads = threads;
    c.pool_route_share = 100;
    return c;
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                     */
/* ------------------------------------------------------------------------ */

/* A sync route runs on a worker; an async one on the loop thread. */
static void test_sync_route_runs_on_worker(void **state)
{
    h_server *s = start(state, NULL, false);
    h_response r;

    h_roundtrip(s, "GET /t/where-async HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_string_equal(r.body, "async");
    h_response_free(&r);
    h_roundtrip(s, "GET /t/where-sync HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "sync");
    h_assert_standard_headers(&r, false);
    h_response_free(&r);
    pthread_mutex_lock(&tid_mu);
    assert_true(have_loop_tid && have_sync_tid);
    assert_true(pthread_equal(loop_tid, s->thread));
    assert_false(pthread_equal(sync_tid, s->thread));
    assert_false(pthread_equal(sync_tid, pthread_self()));
    pthread_mutex_unlock(&tid_mu);
    h_assert_settles(s);
}

/* Answers on c[0..n) are 200 "passed"; the connections close. */
static void expect_passed(h_conn **c, int n)
{
    for (int i = 0; i < n; i++) {
        h_response r;
        assert_int_equal(h_read_response(c[i], &r, H_TIMEOUT_MS), H_OK);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "passed");
        h_response_free(&r);
        h_close(c[i]);
    }
}

/* pool_threads = 4: four sync requests at once all run; of eight, four
 * run and four wait in the queue until the first four are done. */
static void test_pool_is_bounded(void **state)
{
    cn_config cfg = pool_config(4);
    h_server *s = start(state, &cfg, false);
    h_conn *c[8];
    cn_pool_stats ps;
    int64_t seen, released;

    ps = pool_stats(s);
    assert_int_equal(ps.threads, 4);
    assert_int_equal(ps.busy, 0);
    assert_int_equal(ps.queue_depth, 0);

    for (int i = 0; i < 4; i++)
        c[i] = h_send_get(s, "/t/gate-sync");
    assert_true(H_WAIT_UNTIL(atomic_load(&gate_waiting) == 4, 3000));
    ps = pool_stats(s);
    assert_int_equal(ps.busy, 4);
    assert_int_equal(ps.queue_depth, 0);
    gate_release();
    expect_passed(c, 4);

    /* 8 at once: while the first 4 hold the workers, 4 wait in the queue */
    gate_close();
    for (int i = 0; i < 8; i++)
        c[i] = h_send_get(s, "/t/gate-sync");
    if (!H_WAIT_UNTIL(atomic_load(&gate_waiting) == 4 && pool_stats(s).busy == 4 &&
                          pool_stats(s).queue_depth == 4,
                      3000)) {
        ps = pool_stats(s);
        fail_msg("saturated pool: busy=%u queue_depth=%llu at the gate=%d", ps.busy,
                 (unsigned long long)ps.queue_depth, atomic_load(&gate_waiting));
    }
    seen = h_now_ms();
    h_assert_healthy(s); /* a loop turn later, still only four run */
    assert_int_equal(atomic_load(&gate_waiting), 4);
    released = h_now_ms();
    gate_release();
    expect_passed(c, 8);

    ps = pool_stats(s);
    assert_int_equal(ps.threads, 4);
    assert_int_equal(ps.busy, 0);
    assert_int_equal(ps.queue_depth, 0);
    assert_int_equal(ps.submitted, 12);
    assert_int_equal(ps.completed, 12);
    assert_int_equal(ps.cancelled, 0);
    /* the second four waited for a worker: queued before `seen`, started
     * after `released` (whole milliseconds: one of slack) */
    assert_true(ps.wait_ms_max > 0 && ps.wait_ms_max + 1 >= (double)(released - seen));
    assert_true(ps.wait_ms_avg > 0 && ps.wait_ms_avg <= ps.wait_ms_max);
    h_assert_settles(s);
}

/* The async loop keeps serving while every worker is blocked. */
static void test_loop_free_while_pool_saturated(void **state)
{
    cn_config cfg = pool_config(2);
    h_server *s = start(state, &cfg, false);
    h_conn *c[3];
    cJSON *o;

    for (int i = 0; i < 3; i++)
        c[i] = h_send_get(s, "/t/gate-sync");
    assert_true(H_WAIT_UNTIL(atomic_load(&gate_waiting) == 2 && pool_stats(s).busy == 2 &&
                                 pool_stats(s).queue_depth == 1,
                             3000));
    h_assert_healthy(s);
    o = h_get_json(s, "/sleep/20", 200);
    cJSON_Delete(o);
    /* answered while both workers were still held */
    assert_int_equal(atomic_load(&gate_waiting), 2);
    assert_int_equal(pool_stats(s).queue_depth, 1);
    gate_release();
    expect_passed(c, 3);
    h_assert_settles(s);
}

/* cn_to_thread returns fn's result, runs fn on a worker; awaitables there
 * are golden-rule errors. */
static void test_to_thread_result_and_golden_rule(void **state)
{
    h_server *s = start(state, NULL, false);
    cJSON *o = h_get_json(s, "/t/to-thread", 200);
    static const char *const golden_keys[] = {"g_sleep",     "g_yield",    "g_spawn",     "g_await",
                                              "g_gather",    "g_wait_for", "g_to_thread", "g_fetch",
                                              "g_fetch_all", "g_cancelled"};

    h_assert_code(o, "rc_ok", 0);
    assert_int_equal(h_jint(o, "out"), 42);
    h_assert_code(o, "rc_err", CN_ERANGE);
    assert_int_equal(h_jint(o, "out_err"), 10);
    h_assert_code(o, "rc_null", CN_EINVAL);
    h_assert_code(o, "rc_golden", 0);
    for (size_t i = 0; i < sizeof golden_keys / sizeof golden_keys[0]; i++)
        h_assert_code(o, golden_keys[i], CN_ENOTCORO);
    assert_int_equal(h_jint(o, "g_current_req_null"), 1);
    cJSON_Delete(o);
    pthread_mutex_lock(&tid_mu);
    assert_true(have_loop_tid && have_job_tid);
    assert_true(pthread_equal(loop_tid, s->thread));
    assert_false(pthread_equal(job_tid, s->thread));
    pthread_mutex_unlock(&tid_mu);
    /* the demo's route too */
    o = h_get_json(s, "/to-thread/20", 200);
    assert_int_equal(h_jint(o, "slept_ms"), 20);
    cJSON_Delete(o);
    assert_int_equal(pool_stats(s).completed, 4);
    h_assert_settles(s);
}

/* pool_threads = 1: B's job waits behind A's; B's client leaves; the queued
 * job is dropped and B's handler sees CN_ECANCELED at once. */
static void test_cancel_while_queued(void **state)
{
    cn_config cfg = pool_config(1);
    h_server *s = start(state, &cfg, false);
    h_conn *a, *b;
    cn_pool_stats ps;

    a = h_send_get(s, "/t/block/0/0"); /* holds the only worker at the gate */
    assert_true(H_WAIT_UNTIL(atomic_load(&job_start[0]) != 0, 3000));
    b = h_send_get(s, "/t/block/1/400");
    assert_true(H_WAIT_UNTIL(pool_stats(s).queue_depth == 1, 3000));
    assert_int_equal(pool_stats(s).busy, 1);
    h_close(b);
    assert_true(H_WAIT_UNTIL(atomic_load(&handler_rc[1]) != H_NOT_YET, 3000));
    assert_int_equal(atomic_load(&handler_rc[1]), CN_ECANCELED);
    /* at once: A's job, which holds the only worker, is still at the gate */
    assert_int_equal(atomic_load(&job_end[0]), 0);
    ps = pool_stats(s);
    assert_int_equal(ps.cancelled, 1);
    assert_int_equal(ps.queue_depth, 0);
    gate_release();
    /* A is answered normally; B's job never ran */
    {
        h_response r;
        assert_int_equal(h_read_response(a, &r, H_TIMEOUT_MS), H_OK);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "done");
        h_response_free(&r);
    }
    assert_int_equal(atomic_load(&handler_rc[0]), 0);
    assert_int_equal(atomic_load(&job_start[1]), 0);
    h_close(a);
    ps = pool_stats(s);
    assert_int_equal(ps.submitted, 2);
    assert_int_equal(ps.completed, 1);
    assert_int_equal(ps.cancelled, 1);
    h_assert_settles(s);
    /* the worker is free for the next one */
    {
        cJSON *o = h_get_json(s, "/to-thread/10", 200);
        cJSON_Delete(o);
    }
    assert_int_equal(atomic_load(&job_start[1]), 0);
    h_assert_settles(s);
}

/* A's client leaves while its job runs: the job cannot be stopped; the
 * handler sees CN_ECANCELED only after the job finished. */
static void test_cancel_while_running(void **state)
{
    cn_config cfg = pool_config(1);
    h_server *s = start(state, &cfg, false);
    h_conn *a = h_send_get(s, "/t/block-cancel/0");
    cn_pool_stats ps;

    assert_true(H_WAIT_UNTIL(atomic_load(&job_start[0]) != 0, 3000));
    h_close(a);
    /* the job learns of the hang-up; it goes on (to the gate), and the
     * handler waits for it */
    assert_true(H_WAIT_UNTIL(atomic_load(&job_saw_cancel[0]) != 0, 5000));
    assert_int_equal(atomic_load(&job_saw_cancel[0]), 1);
    assert_int_equal(atomic_load(&handler_rc[0]), H_NOT_YET);
    assert_int_equal(atomic_load(&job_end[0]), 0);
    gate_release();
    assert_true(H_WAIT_UNTIL(atomic_load(&handler_rc[0]) != H_NOT_YET, 3000));
    assert_int_equal(atomic_load(&handler_rc[0]), CN_ECANCELED);
    /* noticed at its end */
    assert_true(atomic_load(&job_end[0]) != 0);
    assert_true(atomic_load(&handler_ret[0]) >= atomic_load(&job_end[0]));
    ps = pool_stats(s);
    assert_int_equal(ps.completed, 1);
    assert_int_equal(ps.cancelled, 0);
    assert_int_equal(ps.busy, 0);
    h_assert_settles(s);
    h_assert_healthy(s);
}

/* A sync route whose client left while it was queued is dropped; one that
 * is running finishes and its answer goes nowhere. */
static void test_sync_route_cancel_queued(void **state)
{
    cn_config cfg = pool_config(1);
    h_server *s = start(state, &cfg, false);
    h_conn *a, *b;
    cn_pool_stats ps;

    a = h_send_get(s, "/t/gate-sync");
    assert_true(H_WAIT_UNTIL(atomic_load(&gate_waiting) == 1, 3000));
    b = h_send_get(s, "/t/gate-sync");
    assert_true(H_WAIT_UNTIL(pool_stats(s).queue_depth == 1, 3000));
    h_close(b);
    assert_true(H_WAIT_UNTIL(pool_stats(s).cancelled == 1, 3000));
    assert_int_equal(pool_stats(s).queue_depth, 0);
    /* B's request is over while A's job still holds the worker */
    assert_true(H_WAIT_UNTIL(h_stats(s).requests_active == 1, 3000));
    assert_int_equal(pool_stats(s).busy, 1);
    assert_int_equal(atomic_load(&gate_waiting), 1);
    h_close(a);
    gate_release(); /* A's job ends, its answer goes nowhere */
    assert_true(H_WAIT_UNTIL(h_stats(s).requests_active == 0, 3000));
    ps = pool_stats(s);
    assert_int_equal(ps.submitted, 2);
    assert_int_equal(ps.completed, 1);
    assert_int_equal(ps.cancelled, 1);
    assert_int_equal(h_stats(s).connections_active, 0);
    h_assert_healthy(s);
}

/* /trap/blocking/50 is under the threshold: no warning. /trap/blocking/200
 * logs exactly one, naming the route; the lag probe sees the stall. */
static void test_loop_block_detector(void **state)
{
    cn_config cfg = h_fast_config();
    h_server *s;
    h_response r;
    cn_loop_stats ls;
    char line[1024];

    cfg.lag_interval_ms = 10; /* the probe fires within 10 ms of any block */
    s = start(state, &cfg, true);

    /* before any block, the probe has seen no stall */
    assert_true(H_WAIT_UNTIL(loop_stats(s).lag_samples >= 2, 2000));
    assert_true(loop_stats(s).lag_ms_max < 150);

    h_roundtrip(s, "GET /trap/blocking/50 HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    h_response_free(&r);
    h_assert_healthy(s); /* one more loop turn: nothing reported late */
    assert_int_equal(h_log_count(-1, "blocked", NULL), 0);
    assert_int_equal(loop_stats(s).slow_steps, 0);

    h_roundtrip(s, "GET /trap/blocking/200 HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"slept_ms\":200}");
    h_response_free(&r);
    h_assert_healthy(s);
    h_assert_healthy(s);
    assert_int_equal(h_log_count(CN_LOG_WARN, "GET /trap/blocking/{ms}", "blocked the event loop"),
                     1);
    /* and nothing else about it: no second, anonymous warning for the same stall */
    assert_int_equal(h_log_count(-1, "blocked", NULL), 1);
    h_log_find("blocked the event loop", line, sizeof line);
    print_message("warning: %s\n", line);
    {
        /* "... for N ms": about 200 */
        const char *p = strstr(line, " for ");
        assert_non_null(p);
        long ms = strtol(p + 5, NULL, 10);
        assert_true(ms >= 195 && ms < 1000);
    }
    assert_non_null(strstr(line, "cn_to_thread"));
    assert_true(H_WAIT_UNTIL(loop_stats(s).lag_ms_max >= 150, 2000));
    ls = loop_stats(s);
    print_message("slow_steps=%llu slowest=%.1f ms lag max=%.1f ms samples=%llu\n",
                  (unsigned long long)ls.slow_steps, ls.slowest_ms, ls.lag_ms_max,
                  (unsigned long long)ls.lag_samples);
    assert_int_equal(ls.slow_steps, 1);
    assert_true(ls.slowest_ms >= 195);
    assert_true(ls.lag_samples > 0);
    h_assert_settles(s);
}

/*
 * Three pipelined 400 ms blocks run back to back in one loop turn: no single
 * step crosses the 1000 ms threshold, so nothing is logged (a busy turn made
 * of short steps is also what heavy load looks like); the turn, at least
 * 1200 ms, is counted in busy_turns instead. (Each step is at least 400 ms
 * and under the threshold by 600 ms: room for a loaded machine.)
 */
static void test_short_steps_adding_up_are_counted_not_logged(void **state)
{
    cn_config cfg = h_fast_config();
    h_server *s;
    h_conn *c;
    cn_loop_stats ls;

    cfg.slow_callback_ms = 1000;
    s = start(state, &cfg, true);
    c = h_open(s);
    h_sends(c, "GET /trap/blocking/400 HTTP/1.1\r\nHost: t\r\n\r\n"
               "GET /trap/blocking/400 HTTP/1.1\r\nHost: t\r\n\r\n"
               "GET /trap/blocking/400 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(h_read_responses(c, 3, H_TIMEOUT_MS, NULL), 3);
    /* a later loop turn has run (the per-turn measure is taken there) */
    h_sends(c, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(h_read_responses(c, 1, H_TIMEOUT_MS, NULL), 1);
    h_close(c);
    h_assert_healthy(s);
    assert_true(H_WAIT_UNTIL(loop_stats(s).busy_turns >= 1, 3000));
    ls = loop_stats(s);
    print_message("busy turns %llu, busiest %.0f ms\n", (unsigned long long)ls.busy_turns,
                  ls.busiest_turn_ms);
    assert_true(ls.busiest_turn_ms >= 1150);
    assert_int_equal(ls.slow_steps, 0);
    assert_int_equal(h_log_count(-1, "blocked", NULL), 0);
}

/*
 * A keep-alive connection whose next request arrives while a handler blocks
 * the loop for longer than the keep-alive timeout is answered, not closed:
 * libuv runs the expired idle timer before it reads the waiting bytes.
 */
static void test_idle_timer_spares_unread_requests(void **state)
{
    h_server *s = start(state, NULL, true); /* keep-alive timeout 300 ms */
    h_conn *a, *b;
    h_response r;

    b = h_open(s);
    h_sends(b, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(h_read_response(b, &r, H_TIMEOUT_MS), H_OK);
    h_response_free(&r);
    a = h_send_get(s, "/trap/blocking/700");
    /* the loop is inside A's handler: B's next request waits unread */
    assert_true(H_WAIT_UNTIL(h_stats(s).requests_active == 1, 3000));
    h_sends(b, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(h_read_response(b, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    h_response_free(&r);
    assert_int_equal(h_read_response(a, &r, H_TIMEOUT_MS), H_OK);
    h_response_free(&r);
    h_close(a);
    h_close(b);
}

/*
 * The keep-alive timeout counts from the answer: after a handler held the
 * loop for longer than it (700 ms against 300), the connection still
 * serves the client's next request instead of being closed as idle at
 * once.
 */
static void test_idle_timer_counts_from_the_answer(void **state)
{
    h_server *s = start(state, NULL, true); /* keep-alive timeout 300 ms */
    h_conn *a = h_open(s);
    h_response r;

    h_sends(a, "GET /trap/blocking/700 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(h_read_response(a, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    h_response_free(&r);
    h_sends(a, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(h_read_response(a, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    h_response_free(&r);
    h_close(a);
}

/* slow_callback_ms < 0 switches the detector off. */
static void test_loop_block_detector_off(void **state)
{
    cn_config cfg = h_fast_config();
    h_server *s;
    h_response r;

    cfg.slow_callback_ms = -1;
    s = start(state, &cfg, true);
    h_roundtrip(s, "GET /trap/blocking/150 HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    h_response_free(&r);
    h_assert_healthy(s);
    assert_int_equal(h_log_count(-1, "blocked", NULL), 0);
    assert_int_equal(loop_stats(s).slow_steps, 0);
}

/* A /sleep/100 in flight when /trap/blocking/300 arrives is held up by it. */
static void test_blocking_delays_requests_in_flight(void **state)
{
    h_server *s = start(state, NULL, true);
    h_conn *sl, *tr;
    int64_t t0, latency;
    cJSON *o;

    t0 = h_now_ms();
    sl = h_send_get(s, "/sleep/100");
    assert_true(H_WAIT_UNTIL(h_stats(s).requests_active == 1, 2000));
    tr = h_send_get(s, "/trap/blocking/300");
    o = h_read_json(sl, 200);
    latency = h_now_ms() - t0;
    cJSON_Delete(o);
    print_message("/sleep/100 behind a 300 ms block: %lld ms\n", (long long)latency);
    assert_true(latency >= 300);
    o = h_read_json(tr, 200);
    cJSON_Delete(o);
    h_close(sl);
    h_close(tr);
    assert_int_equal(h_log_count(CN_LOG_WARN, "GET /trap/blocking/{ms}", "blocked the event loop"),
                     1);
    h_assert_settles(s);
}

/* Shutdown passes its deadline with one to_thread job running and one
 * queued: the queued one is dropped at once, the running one is waited
 * for; both handlers see CN_ECANCELED and the app stops cleanly. */
static void test_shutdown_with_jobs_running_and_queued(void **state)
{
    cn_config cfg = pool_config(1);
    h_server *s;
    int fa, fb, rc;
    static const char ra[] = "GET /t/block/0/0 HTTP/1.1\r\nHost: t\r\n\r\n";
    static const char rb[] = "GET /t/block/1/400 HTTP/1.1\r\nHost: t\r\n\r\n";
    int64_t stop_at;

    cfg.shutdown_timeout_ms = 100;
    s = start(state, &cfg, false);
    /* plain sockets: h_stop would close tracked connections first */
    fa = h_connect_fd(s->host, s->port);
    fb = h_connect_fd(s->host, s->port);
    assert_true(fa >= 0 && fb >= 0);
    assert_int_equal(send(fa, ra, sizeof ra - 1, MSG_NOSIGNAL), (ssize_t)(sizeof ra - 1));
    assert_true(H_WAIT_UNTIL(atomic_load(&job_start[0]) != 0, 3000));
    assert_int_equal(send(fb, rb, sizeof rb - 1, MSG_NOSIGNAL), (ssize_t)(sizeof rb - 1));
    assert_true(H_WAIT_UNTIL(pool_stats(s).queue_depth == 1, 3000));
    stop_at = h_now_ms();
    assert_int_equal(cn_app_stop(s->app), 0);
    assert_true(H_WAIT_UNTIL(atomic_load(&handler_rc[1]) != H_NOT_YET, 3000));
    assert_int_equal(atomic_load(&handler_rc[1]), CN_ECANCELED);
    assert_int_equal(atomic_load(&job_end[0]), 0); /* B went before A's job ended */
    gate_release();                                /* the stop waits for A's */
    rc = h_join(s, 5000);
    assert_int_equal(rc, 0);
    print_message("stopped %lld ms after cn_app_stop\n", (long long)(h_now_ms() - stop_at));
    assert_int_equal(atomic_load(&handler_rc[0]), CN_ECANCELED);
    assert_true(atomic_load(&handler_ret[0]) >= atomic_load(&job_end[0]));
    assert_int_equal(atomic_load(&job_start[1]), 0);
    assert_int_equal(pool_stats(s).cancelled, 1);
    assert_int_equal(h_stats(s).coroutines_live, 0);
    assert_int_equal(h_stats(s).requests_active, 0);
    close(fa);
    close(fb);
}

/* Setup that takes a while between cn_app_new and cn_app_run, as a real
 * service does (opening a database, loading a model). */
static int slow_setup(cn_app *app, void *arg)
{
    h_block_ms(300);
    return pool_routes(app, arg);
}

/* The lag probe measures the loop, not the time before it ran: a slow
 * startup is not a 300 ms stall of the event loop. */
static void test_lag_probe_ignores_startup(void **state)
{
    cn_config cfg = h_fast_config();
    h_server *s;
    cn_loop_stats ls;

    cfg.lag_interval_ms = 10;
    h_log_reset();
    s = h_start(&cfg, NULL, slow_setup, NULL);
    *state = s;
    assert_true(H_WAIT_UNTIL(loop_stats(s).lag_samples >= 5, 2000));
    ls = loop_stats(s);
    print_message("after a 300 ms setup: lag max=%.1f ms samples=%llu\n", ls.lag_ms_max,
                  (unsigned long long)ls.lag_samples);
    /* nothing ever blocked this loop */
    assert_int_equal(ls.slow_steps, 0);
    assert_int_equal(h_log_count(-1, "blocked", NULL), 0);
    assert_true(ls.lag_ms_max < 150);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_sync_route_runs_on_worker, h_teardown),
        cmocka_unit_test_teardown(test_pool_is_bounded, h_teardown),
        cmocka_unit_test_teardown(test_loop_free_while_pool_saturated, h_teardown),
        cmocka_unit_test_teardown(test_to_thread_result_and_golden_rule, h_teardown),
        cmocka_unit_test_teardown(test_cancel_while_queued, h_teardown),
        cmocka_unit_test_teardown(test_cancel_while_running, h_teardown),
        cmocka_unit_test_teardown(test_sync_route_cancel_queued, h_teardown),
        cmocka_unit_test_teardown(test_loop_block_detector, h_teardown),
        cmocka_unit_test_teardown(test_short_steps_adding_up_are_counted_not_logged, h_teardown),
        cmocka_unit_test_teardown(test_idle_timer_spares_unread_requests, h_teardown),
        cmocka_unit_test_teardown(test_idle_timer_counts_from_the_answer, h_teardown),
        cmocka_unit_test_teardown(test_loop_block_detector_off, h_teardown),
        cmocka_unit_test_teardown(test_blocking_delays_requests_in_flight, h_teardown),
        cmocka_unit_test_teardown(test_shutdown_with_jobs_running_and_queued, h_teardown),
        cmocka_unit_test_teardown(test_lag_probe_ignores_startup, h_teardown),
    };
    int rc;

    h_log_capture_start();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    h_log_capture_stop();
    return rc;
}
