/*
 * test_tasks.c -- coroutine handlers over real sockets: spawn / await /
 * gather / wait_for / yield semantics, cancellation by a client disconnect
 * (nested task trees included), the "never awaited" report, the golden-rule
 * errors, and the concurrency figures of issue 3 (sleeps overlap, the total
 * is the slowest, not the sum).
 *
 * Handlers record what they observed in test-global atomics; the test
 * thread polls them (and cn_app_stats) with bounded deadlines. Nothing here
 * sleeps to synchronise.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* ------------------------------------------------------------------------ */
/* Local helpers                                                             */
/* ------------------------------------------------------------------------ */

static cJSON *new_obj(void)
{
    return cJSON_CreateObject();
}

static void put(cJSON *o, const char *k, double v)
{
    cJSON_AddNumberToObject(o, k, v);
}

/* ------------------------------------------------------------------------ */
/* Test routes                                                               */
/* ------------------------------------------------------------------------ */

/* ---- spawn / await ---- */

static int child_set42(void *arg)
{
    int rc = cn_sleep(5);
    *(int *)arg = 42;
    return rc;
}

static int child_erange(void *arg)
{
    (void)arg;
    return CN_ERANGE;
}

static int child_quick(void *arg)
{
    *(int *)arg = 1;
    return 0;
}

typedef struct nest_arg {
    int grand_value;
    int grand_rc;
} nest_arg;

static int grand_set7(void *arg)
{
    nest_arg *n = arg;
    int rc = cn_sleep(2);
    n->grand_value = 7;
    return rc < 0 ? rc : CN_ENOENT;
}

static int child_nesting(void *arg)
{
    nest_arg *n = arg;
    cn_task *g;
    int rc = cn_spawn(grand_set7, n, &g);

    if (rc < 0)
        return rc;
    n->grand_rc = cn_await(g);
    return 0;
}

/* GET /t/spawn-await */
static int rt_spawn_await(cn_req *req, cn_res *res)
{
    int *v = cn_req_alloc(req, 3 * sizeof(int));
    nest_arg *n = cn_req_alloc(req, sizeof(*n));
    cn_task *t;
    cJSON *o = new_obj();
    int rc;

    v[0] = v[1] = v[2] = 0;
    n->grand_value = 0;
    n->grand_rc = H_NOT_YET;
    /* a result through arg, after the child waited */
    rc = cn_spawn(child_set42, &v[0], &t);
    put(o, "spawn_rc", rc);
    put(o, "await_rc", cn_await(t));
    put(o, "value", v[0]);
    /* an error result */
    cn_spawn(child_erange, NULL, &t);
    put(o, "await_err", cn_await(t));
    /* a child that completed before it was awaited */
    cn_spawn(child_quick, &v[1], &t);
    put(o, "sleep_rc", cn_sleep(20));
    put(o, "quick_value_before_await", v[1]);
    put(o, "await_done", cn_await(t));
    /* a child awaiting its own child */
    cn_spawn(child_nesting, n, &t);
    put(o, "await_nesting", cn_await(t));
    put(o, "grand_value", n->grand_value);
    put(o, "grand_rc", n->grand_rc);
    /* a child starts only when its parent parks or yields */
    v[2] = 0;
    cn_spawn(child_quick, &v[2], &t);
    put(o, "not_started_before_park", v[2] == 0);
    put(o, "yield_rc", cn_yield());
    put(o, "started_after_yield", v[2] == 1);
    put(o, "await_started", cn_await(t));
    /* argument checks */
    put(o, "sleep_negative", cn_sleep(-1));
    put(o, "spawn_null_fn", cn_spawn(NULL, NULL, &t));
    put(o, "spawn_null_out", cn_spawn(child_quick, &v[2], NULL));
    put(o, "await_null", cn_await(NULL));
    put(o, "current_req_ok", cn_req_current() == req);
    put(o, "cancelled", cn_task_cancelled());
    return cn_res_json(res, 200, o);
}

/* ---- gather ---- */

typedef struct gstep {
    int64_t ms;
    int ret;        /* what the child returns after its sleep */
    int *seq;       /* shared finish counter */
    int finish_pos; /* its place in the finishing order */
    int sleep_rc;
    int value;
} gstep;

static int gather_child(void *arg)
{
    gstep *g = arg;

    g->sleep_rc = cn_sleep(g->ms);
    g->finish_pos = (*g->seq)++;
    g->value = (int)g->ms * 10;
    return g->sleep_rc < 0 ? g->sleep_rc : g->ret;
}

static cJSON *int_array(const int *v, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

/* Spawn one child per step, gather, describe what happened. */
static int run_gather(cn_req *req, cn_res *res, const int64_t *ms, const int *ret, size_t n)
{
    gstep *g = cn_req_alloc(req, n * sizeof(*g));
    cn_task **t = cn_req_alloc(req, n * sizeof(*t));
    int *results = cn_req_alloc(req, n * sizeof(int));
    int *seq = cn_req_alloc(req, sizeof(int));
    int pos[8], vals[8], sleeps[8];
    int64_t t0 = h_now_ms();
    cJSON *o = new_obj();
    int rc;

    *seq = 0;
    for (size_t i = 0; i < n; i++) {
        g[i] = (gstep){ms[i], ret[i], seq, -1, H_NOT_YET, 0};
        results[i] = 12345;
        rc = cn_spawn(gather_child, &g[i], &t[i]);
        if (rc < 0)
            return rc;
    }
    rc = cn_gather(t, n, results);
    put(o, "rc", rc);
    put(o, "elapsed_ms", (double)(h_now_ms() - t0));
    for (size_t i = 0; i < n; i++) {
        pos[i] = g[i].finish_pos;
        vals[i] = g[i].value;
        sleeps[i] = g[i].sleep_rc;
    }
    cJSON_AddItemToObject(o, "results", int_array(results, n));
    cJSON_AddItemToObject(o, "finish_pos", int_array(pos, n));
    cJSON_AddItemToObject(o, "values", int_array(vals, n));
    cJSON_AddItemToObject(o, "sleep_rcs", int_array(sleeps, n));
    return cn_res_json(res, 200, o);
}

/* GET /t/gather-order: children sleeping 30/10/20 ms, all succeed */
static int rt_gather_order(cn_req *req, cn_res *res)
{
    static const int64_t ms[3] = {30, 10, 20};
    static const int ret[3] = {0, 0, 0};
    return run_gather(req, res, ms, ret, 3);
}

/* GET /t/gather-error: distinct errors, one slow success after them */
static int rt_gather_error(cn_req *req, cn_res *res)
{
    /* index 2 fails first (10 ms), index 1 fails later (40 ms): the first
     * error in index order is index 1's; index 3 still runs to its end */
    static const int64_t ms[5] = {30, 40, 10, 60, 20};
    static const int ret[5] = {0, CN_ERANGE, CN_ENOENT, 0, 0};
    return run_gather(req, res, ms, ret, 5);
}

/* GET /t/gather-edge: empty gather, duplicate and foreign tasks, NULL results */
static int rt_gather_edge(cn_req *req, cn_res *res)
{
    int *v = cn_req_alloc(req, 2 * sizeof(int));
    cn_task *t[2];
    cJSON *o = new_obj();

    v[0] = v[1] = 0;
    put(o, "empty", cn_gather(NULL, 0, NULL));
    cn_spawn(child_quick, &v[0], &t[0]);
    t[1] = t[0];
    put(o, "duplicate", cn_gather(t, 2, NULL));
    put(o, "null_array", cn_gather(NULL, 1, NULL));
    /* the duplicate was refused without freeing anything: gather it now */
    cn_spawn(child_quick, &v[1], &t[1]);
    put(o, "null_results", cn_gather(t, 2, NULL));
    put(o, "v0", v[0]);
    put(o, "v1", v[1]);
    return cn_res_json(res, 200, o);
}

/* ---- awaiting what is not one's child ---- */

typedef struct foreign {
    cn_task *sibling;    /* child 2, given to child 1 */
    cn_task *grandchild; /* published by child 2 */
    int root_tried;
    int sibling_rc;
    int grand_await_rc;
    int grand_done;
} foreign;

static int grand_mark(void *arg)
{
    ((foreign *)arg)->grand_done = 1;
    return 0;
}

static int child_awaits_sibling(void *arg)
{
    foreign *f = arg;
    f->sibling_rc = cn_await(f->sibling);
    return 0;
}

static int child_with_grandchild(void *arg)
{
    foreign *f = arg;
    cn_task *g;
    int rc = cn_spawn(grand_mark, f, &g);

    if (rc < 0)
        return rc;
    f->grandchild = g;
    /* hold on to it until the root has tried to take it (bounded) */
    for (int i = 0; i < 10000 && !f->root_tried; i++)
        if (cn_yield() < 0)
            break;
    f->grand_await_rc = cn_await(g);
    return 0;
}

/* GET /t/await-nonchild */
static int rt_await_nonchild(cn_req *req, cn_res *res)
{
    foreign *f = cn_req_alloc(req, sizeof(*f));
    cn_task *t[2];
    int results[2];
    cJSON *o = new_obj();
    int rc;

    memset(f, 0, sizeof(*f));
    f->sibling_rc = f->grand_await_rc = H_NOT_YET;
    cn_spawn(child_awaits_sibling, f, &t[0]);
    cn_spawn(child_with_grandchild, f, &t[1]);
    f->sibling = t[1]; /* before anything runs: children start when we park */
    for (int i = 0; i < 10000 && f->grandchild == NULL; i++)
        cn_yield();
    put(o, "grandchild_seen", f->grandchild != NULL);
    rc = f->grandchild ? cn_await(f->grandchild) : H_NOT_YET;
    put(o, "root_awaits_grandchild", rc);
    f->root_tried = 1;
    put(o, "gather", cn_gather(t, 2, results));
    put(o, "sibling_rc", f->sibling_rc);
    put(o, "grand_await_rc", f->grand_await_rc);
    put(o, "grand_done", f->grand_done);
    return cn_res_json(res, 200, o);
}

/* ---- wait_for ---- */

typedef struct wf_arg {
    int64_t ms;
    int ret;
    int sleep_rc;
    int finished;
} wf_arg;

static int wf_child(void *arg)
{
    wf_arg *w = arg;
    w->sleep_rc = cn_sleep(w->ms);
    w->finished = 1;
    return w->sleep_rc < 0 ? w->sleep_rc : w->ret;
}

/* GET /t/wait-for/{ms:int}/{timeout:int}[?ret=code] */
static int rt_wait_for(cn_req *req, cn_res *res)
{
    wf_arg *w = cn_req_alloc(req, sizeof(*w));
    int64_t timeout, ret = 0, t0;
    cn_task *t;
    cJSON *o = new_obj();
    int rc;

    cn_req_param_int(req, "ms", &w->ms);
    cn_req_param_int(req, "timeout", &timeout);
    cn_req_query_int(req, "ret", &ret);
    w->ret = (int)ret;
    w->sleep_rc = H_NOT_YET;
    w->finished = 0;
    rc = cn_spawn(wf_child, w, &t);
    if (rc < 0)
        return rc;
    /* a negative timeout is refused and t stays ours */
    put(o, "negative_timeout", cn_wait_for(t, -1));
    t0 = h_now_ms();
    rc = cn_wait_for(t, timeout);
    put(o, "rc", rc);
    put(o, "elapsed_ms", (double)(h_now_ms() - t0));
    put(o, "child_sleep_rc", w->sleep_rc);
    put(o, "child_finished", w->finished);
    /* the timer wait_for borrowed works for a plain sleep afterwards */
    t0 = h_now_ms();
    put(o, "after_sleep_rc", cn_sleep(20));
    put(o, "after_sleep_ms", (double)(h_now_ms() - t0));
    return cn_res_json(res, 200, o);
}

/*
 * GET /t/late-sleep: 30 ms of work in the same turn of the loop, then
 * sleep(50) and wait_for(sleep 1000, 50). Each must take its full 50 ms from
 * when it was called, not from when the turn began.
 */
static int rt_late_sleep(cn_req *req, cn_res *res)
{
    wf_arg *w = cn_req_alloc(req, sizeof(*w));
    cJSON *o = new_obj();
    cn_task *t;
    int64_t t0 = h_now_ms();
    int rc;

    while (h_now_ms() - t0 < 30)
        ; /* busy: no yield, the loop's clock stands still */
    t0 = h_now_ms();
    put(o, "sleep_rc", cn_sleep(50));
    put(o, "sleep_ms", (double)(h_now_ms() - t0));
    while (h_now_ms() - t0 < 80)
        ;
    *w = (wf_arg){.ms = 1000, .sleep_rc = H_NOT_YET};
    rc = cn_spawn(wf_child, w, &t);
    if (rc < 0)
        return rc;
    t0 = h_now_ms();
    put(o, "wait_for_rc", cn_wait_for(t, 50));
    put(o, "wait_for_ms", (double)(h_now_ms() - t0));
    return cn_res_json(res, 200, o);
}

/* ---- yield ---- */

static atomic_int yield_flag;
static atomic_int yield_spins;
static atomic_int yield_rc;

/* GET /t/yield-spin: yield until /t/yield-flag has run (bounded by 3 s) */
static int rt_yield_spin(cn_req *req, cn_res *res)
{
    int64_t t0 = h_now_ms();
    int rc = 0, n = 0;
    cJSON *o = new_obj();

    (void)req;
    while (!atomic_load(&yield_flag) && h_now_ms() - t0 < 3000) {
        rc = cn_yield();
        if (rc < 0)
            break;
        atomic_store(&yield_spins, ++n);
    }
    atomic_store(&yield_rc, rc);
    put(o, "seen", atomic_load(&yield_flag));
    put(o, "yields", n);
    put(o, "rc", rc);
    return cn_res_json(res, 200, o);
}

/* GET /t/yield-flag */
static int rt_yield_flag(cn_req *req, cn_res *res)
{
    (void)req;
    atomic_store(&yield_flag, 1);
    return cn_res_text(res, 200, "set");
}

/* ---- cancellation ---- */

/* What the handlers of a cancelled request saw (written on the loop thread). */
static atomic_int c_started;
static atomic_int c_root_sleep, c_child_sleep, c_grand_sleep;
static atomic_int c_child_await, c_root_await;
static atomic_int c_after_sleep, c_after_spawn, c_after_yield, c_after_cancelled;
static atomic_int c_after_to_thread, c_after_fetch, c_after_wait_for;
static atomic_llong c_root_returned_ms;

static void cancel_reset(void)
{
    atomic_store(&c_started, 0);
    atomic_int *all[] = {&c_root_sleep,      &c_child_sleep,     &c_grand_sleep, &c_child_await,
                         &c_root_await,      &c_after_sleep,     &c_after_spawn, &c_after_yield,
                         &c_after_cancelled, &c_after_to_thread, &c_after_fetch, &c_after_wait_for};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        atomic_store(all[i], H_NOT_YET);
    atomic_store(&c_root_returned_ms, 0);
}

static int grand_sleeps(void *arg)
{
    (void)arg;
    atomic_fetch_add(&c_started, 1);
    int rc = cn_sleep(10000);
    atomic_store(&c_grand_sleep, rc);
    return rc;
}

static int child_sleeps(void *arg)
{
    cn_task *g;
    int rc;

    (void)arg;
    rc = cn_spawn(grand_sleeps, NULL, &g);
    if (rc < 0)
        return rc;
    atomic_fetch_add(&c_started, 1);
    rc = cn_sleep(10000);
    atomic_store(&c_child_sleep, rc);
    atomic_store(&c_child_await, cn_await(g));
    return rc;
}

/* GET /t/nested: root -> child -> grandchild, all asleep for 10 s */
static int rt_nested(cn_req *req, cn_res *res)
{
    cn_task *t;
    int rc;

    (void)req;
    rc = cn_spawn(child_sleeps, NULL, &t);
    if (rc < 0)
        return rc;
    atomic_fetch_add(&c_started, 1);
    rc = cn_sleep(10000);
    atomic_store(&c_root_sleep, rc);
    atomic_store(&c_root_await, cn_await(t));
    atomic_store(&c_root_returned_ms, h_now_ms());
    if (rc < 0)
        return rc;
    return cn_res_text(res, 200, "slept");
}

static int child_sleeps_long(void *arg)
{
    (void)arg;
    atomic_fetch_add(&c_started, 1);
    int rc = cn_sleep(10000);
    atomic_store(&c_child_sleep, rc);
    return rc;
}

/* GET /t/wait-for-cancel: wait_for(5 s) on a child sleeping 10 s */
static int rt_wait_for_cancel(cn_req *req, cn_res *res)
{
    cn_task *t;
    int rc = cn_spawn(child_sleeps_long, NULL, &t);

    (void)req;
    if (rc < 0)
        return rc;
    atomic_fetch_add(&c_started, 1);
    rc = cn_wait_for(t, 5000);
    atomic_store(&c_after_wait_for, rc);
    atomic_store(&c_root_returned_ms, h_now_ms());
    if (rc < 0)
        return rc;
    return cn_res_text(res, 200, "waited");
}

/* GET /t/sleep-observe: sleeps 10 s; after a cancel, tries every awaitable */
static int rt_sleep_observe(cn_req *req, cn_res *res)
{
    cn_fetch_opts fo = {.url = "http://127.0.0.1:1/never"};
    cn_fetch_result fr;
    cn_task *t = NULL;
    int rc;

    (void)req;
    atomic_fetch_add(&c_started, 1);
    rc = cn_sleep(10000);
    if (rc == CN_ECANCELED) {
        /* every later await returns CN_ECANCELED at once */
        atomic_store(&c_after_sleep, cn_sleep(5000));
        atomic_store(&c_after_spawn, cn_spawn(h_noop, NULL, &t));
        atomic_store(&c_after_yield, cn_yield());
        atomic_store(&c_after_cancelled, cn_task_cancelled());
        atomic_store(&c_after_to_thread, cn_to_thread(h_noop, NULL));
        atomic_store(&c_after_fetch, cn_fetch(&fo, &fr));
    }
    atomic_store(&c_root_sleep, rc);
    atomic_store(&c_root_returned_ms, h_now_ms());
    if (rc < 0)
        return rc;
    return cn_res_text(res, 200, "slept");
}

/* ---- never awaited ---- */

static atomic_int forgot_child_rc;

static int forgotten_child(void *arg)
{
    (void)arg;
    int rc = cn_sleep(5000);
    atomic_store(&forgot_child_rc, rc);
    return rc;
}

/* GET /forgot: spawns and returns */
static int rt_forgot(cn_req *req, cn_res *res)
{
    cn_task *t;
    int rc = cn_spawn(forgotten_child, NULL, &t);

    (void)req;
    if (rc < 0)
        return rc;
    return cn_res_text(res, 200, "forgot");
}

/* GET /forgot-done: the forgotten child has already finished */
static int rt_forgot_done(cn_req *req, cn_res *res)
{
    cn_task *t;
    int *v = cn_req_alloc(req, sizeof(int));
    int rc = cn_spawn(child_quick, v, &t);

    if (rc < 0)
        return rc;
    cn_sleep(10);
    return cn_res_text(res, 200, "forgot");
}

/* ---- golden rules ---- */

static int fake_task(void *arg)
{
    (void)arg;
    return 0;
}

/* Every awaitable called outside a coroutine, into a JSON object. */
static cJSON *golden_codes(void)
{
    cn_fetch_opts fo = {.url = "http://127.0.0.1:1/never"};
    cn_fetch_result fr[1];
    cn_task *t = NULL;
    cJSON *o = new_obj(), *j = NULL;

    put(o, "sleep", cn_sleep(1));
    put(o, "sleep0", cn_sleep(0));
    put(o, "yield", cn_yield());
    put(o, "spawn", cn_spawn(fake_task, NULL, &t));
    put(o, "spawn_out_untouched", t == NULL);
    put(o, "await", cn_await(NULL));
    put(o, "gather", cn_gather(NULL, 0, NULL));
    put(o, "wait_for", cn_wait_for(NULL, 10));
    put(o, "to_thread", cn_to_thread(fake_task, NULL));
    put(o, "fetch", cn_fetch(&fo, fr));
    put(o, "fetch_all", cn_fetch_all(&fo, 1, fr));
    memset(fr, 0, sizeof fr);
    put(o, "fetch_json", cn_fetch_json(fr, &j));
    put(o, "cancelled", cn_task_cancelled());
    put(o, "current_req_null", cn_req_current() == NULL);
    return o;
}

static void assert_golden(const cJSON *o)
{
    static const char *const keys[] = {"sleep", "sleep0",    "yield",      "spawn",
                                       "await", "gather",    "wait_for",   "to_thread",
                                       "fetch", "fetch_all", "fetch_json", "cancelled"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        h_assert_code(o, keys[i], CN_ENOTCORO);
    assert_int_equal(h_jint(o, "spawn_out_untouched"), 1);
    assert_int_equal(h_jint(o, "current_req_null"), 1);
}

/* GET /t/golden-sync (a SYNC route: runs on a worker thread) */
static int rt_golden_sync(cn_req *req, cn_res *res)
{
    (void)req;
    return cn_res_json(res, 200, golden_codes());
}

/* A deferred cleanup runs on the loop thread, but outside any coroutine. */
static _Atomic(char *) golden_defer_json;

static void golden_defer(void *arg)
{
    cJSON *o = golden_codes();
    (void)arg;
    atomic_store(&golden_defer_json, cJSON_PrintUnformatted(o));
    cJSON_Delete(o);
}

/* GET /t/golden-defer */
static int rt_golden_defer(cn_req *req, cn_res *res)
{
    int rc = cn_req_defer(req, golden_defer, NULL);
    if (rc < 0)
        return rc;
    return cn_res_text(res, 200, "deferred");
}

static int task_routes(cn_app *app, void *arg)
{
    cn_route_opts sync = {.mode = CN_ROUTE_SYNC};
    int rc = 0;

    (void)arg;
    rc = rc ? rc : cn_app_route(app, "GET /t/spawn-await", rt_spawn_await, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/gather-order", rt_gather_order, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/gather-error", rt_gather_error, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/gather-edge", rt_gather_edge, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/await-nonchild", rt_await_nonchild, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/wait-for/{ms:int}/{timeout:int}", rt_wait_for, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/late-sleep", rt_late_sleep, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/yield-spin", rt_yield_spin, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/yield-flag", rt_yield_flag, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/nested", rt_nested, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/sleep-observe", rt_sleep_observe, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/wait-for-cancel", rt_wait_for_cancel, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /forgot", rt_forgot, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /forgot-done", rt_forgot_done, NULL);
    rc = rc ? rc : cn_app_route_ex(app, "GET /t/golden-sync", rt_golden_sync, NULL, &sync);
    rc = rc ? rc : cn_app_route(app, "GET /t/golden-defer", rt_golden_defer, NULL);
    return rc;
}

static h_server *start(void **state, const cn_config *cfg)
{
    h_server *s;

    h_log_reset();
    cancel_reset();
    s = h_start(cfg, NULL, task_routes, NULL);
    *state = s;
    return s;
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                     */
/* ------------------------------------------------------------------------ */

/* spawn / await pass results and errors; argument checks. */
static void test_spawn_await(void **state)
{
    h_server *s = start(state, NULL);
    cJSON *o = h_get_json(s, "/t/spawn-await", 200);

    h_assert_code(o, "spawn_rc", 0);
    h_assert_code(o, "await_rc", 0);
    assert_int_equal(h_jint(o, "value"), 42);
    h_assert_code(o, "await_err", CN_ERANGE);
    h_assert_code(o, "sleep_rc", 0);
    assert_int_equal(h_jint(o, "quick_value_before_await"), 1);
    h_assert_code(o, "await_done", 0);
    h_assert_code(o, "await_nesting", 0);
    assert_int_equal(h_jint(o, "grand_value"), 7);
    h_assert_code(o, "grand_rc", CN_ENOENT);
    assert_int_equal(h_jint(o, "not_started_before_park"), 1);
    h_assert_code(o, "yield_rc", 0);
    assert_int_equal(h_jint(o, "started_after_yield"), 1);
    h_assert_code(o, "await_started", 0);
    h_assert_code(o, "sleep_negative", CN_EINVAL);
    h_assert_code(o, "spawn_null_fn", CN_EINVAL);
    h_assert_code(o, "spawn_null_out", CN_EINVAL);
    h_assert_code(o, "await_null", CN_EINVAL);
    assert_int_equal(h_jint(o, "current_req_ok"), 1);
    assert_int_equal(h_jint(o, "cancelled"), 0);
    cJSON_Delete(o);
    h_assert_settles(s);
    assert_int_equal(h_log_count(CN_LOG_WARN, "never awaited", NULL), 0);
}

static void assert_int_array(const cJSON *o, const char *key, const int *want, int n)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
    assert_true(cJSON_IsArray(a));
    assert_int_equal(cJSON_GetArraySize(a), n);
    for (int i = 0; i < n; i++) {
        int got = (int)cJSON_GetArrayItem(a, i)->valuedouble;
        if (got != want[i])
            fail_msg("%s[%d] = %d (%s), expected %d (%s)", key, i, got, cn_err_name(got), want[i],
                     cn_err_name(want[i]));
    }
}

/* Children sleeping 30/10/20 ms finish 2nd-1st-... but results are in index order. */
static void test_gather_order(void **state)
{
    h_server *s = start(state, NULL);
    cJSON *o = h_get_json(s, "/t/gather-order", 200);
    static const int results[3] = {0, 0, 0};
    static const int finish[3] = {2, 0, 1};
    static const int values[3] = {300, 100, 200};

    h_assert_code(o, "rc", 0);
    assert_int_array(o, "results", results, 3);
    assert_int_array(o, "finish_pos", finish, 3);
    assert_int_array(o, "values", values, 3);
    assert_int_array(o, "sleep_rcs", results, 3);
    /* the slowest child's time, not the sum (60 ms) */
    assert_true(h_jint(o, "elapsed_ms") >= 29);
    assert_true(h_jint(o, "elapsed_ms") < 1000);
    cJSON_Delete(o);
    h_assert_settles(s);
}

/* One child fails: the others still complete; the first error in index order wins. */
static void test_gather_error(void **state)
{
    h_server *s = start(state, NULL);
    cJSON *o = h_get_json(s, "/t/gather-error", 200);
    static const int results[5] = {0, CN_ERANGE, CN_ENOENT, 0, 0};
    static const int finish[5] = {2, 3, 0, 4, 1};
    static const int sleeps[5] = {0, 0, 0, 0, 0};

    h_assert_code(o, "rc", CN_ERANGE);
    assert_int_array(o, "results", results, 5);
    /* nobody was cancelled: every child slept its full time, in time order */
    assert_int_array(o, "finish_pos", finish, 5);
    assert_int_array(o, "sleep_rcs", sleeps, 5);
    assert_true(h_jint(o, "elapsed_ms") >= 59);
    cJSON_Delete(o);
    h_assert_settles(s);
}

static void test_gather_edge_cases(void **state)
{
    h_server *s = start(state, NULL);
    cJSON *o = h_get_json(s, "/t/gather-edge", 200);

    h_assert_code(o, "empty", 0);
    h_assert_code(o, "duplicate", CN_EINVAL);
    h_assert_code(o, "null_array", CN_EINVAL);
    h_assert_code(o, "null_results", 0);
    assert_int_equal(h_jint(o, "v0"), 1);
    assert_int_equal(h_jint(o, "v1"), 1);
    cJSON_Delete(o);
    h_assert_settles(s);
    assert_int_equal(h_log_count(CN_LOG_WARN, "never awaited", NULL), 0);
}

/* cn_await of a sibling or a grandchild is CN_EINVAL and frees nothing. */
static void test_await_non_child(void **state)
{
    h_server *s = start(state, NULL);
    cJSON *o = h_get_json(s, "/t/await-nonchild", 200);

    assert_int_equal(h_jint(o, "grandchild_seen"), 1);
    h_assert_code(o, "root_awaits_grandchild", CN_EINVAL);
    h_assert_code(o, "sibling_rc", CN_EINVAL);
    /* the refused tasks were still there for their real parents */
    h_assert_code(o, "grand_await_rc", 0);
    assert_int_equal(h_jint(o, "grand_done"), 1);
    h_assert_code(o, "gather", 0);
    cJSON_Delete(o);
    h_assert_settles(s);
    assert_int_equal(h_log_count(CN_LOG_WARN, "never awaited", NULL), 0);
}

/* wait_for: a child sleeping 60 s given 50 ms is cancelled (its sleep
 * returns CN_ECANCELED, not 0) and awaited. */
static void test_wait_for_timeout(void **state)
{
    h_server *s = start(state, NULL);
    cJSON *o = h_get_json(s, "/t/wait-for/60000/50", 200);

    h_assert_code(o, "negative_timeout", CN_EINVAL);
    h_assert_code(o, "rc", CN_ETIMEDOUT);
    h_assert_code(o, "child_sleep_rc", CN_ECANCELED);
    assert_int_equal(h_jint(o, "child_finished"), 1);
    assert_true(h_jint(o, "elapsed_ms") >= 49);
    assert_true(h_jint(o, "elapsed_ms") < 30000); /* not the child's 60 s */
    h_assert_code(o, "after_sleep_rc", 0);
    assert_true(h_jint(o, "after_sleep_ms") >= 19);
    cJSON_Delete(o);
    h_assert_settles(s);
}

/* Timers count from the call, even late in a long turn of the loop. */
static void test_sleep_late_in_turn(void **state)
{
    h_server *s = start(state, NULL);
    cJSON *o = h_get_json(s, "/t/late-sleep", 200);

    h_assert_code(o, "sleep_rc", 0);
    assert_true(h_jint(o, "sleep_ms") >= 49);
    h_assert_code(o, "wait_for_rc", CN_ETIMEDOUT);
    assert_true(h_jint(o, "wait_for_ms") >= 49);
    cJSON_Delete(o);
    h_assert_settles(s);
}

/* wait_for in time: the child's result comes back, nothing is cancelled. */
static void test_wait_for_in_time(void **state)
{
    h_server *s = start(state, NULL);
    cJSON *o = h_get_json(s, "/t/wait-for/10/2000", 200);
    char path[64];

    h_assert_code(o, "rc", 0);
    h_assert_code(o, "child_sleep_rc", 0);
    assert_int_equal(h_jint(o, "child_finished"), 1);
    assert_true(h_jint(o, "elapsed_ms") >= 9);
    assert_true(h_jint(o, "elapsed_ms") < 1500);
    h_assert_code(o, "after_sleep_rc", 0);
    cJSON_Delete(o);
    /* an error returned in time is passed through, not turned into a timeout */
    snprintf(path, sizeof path, "/t/wait-for/5/2000?ret=%d", CN_ERANGE);
    o = h_get_json(s, path, 200);
    h_assert_code(o, "rc", CN_ERANGE);
    h_assert_code(o, "child_sleep_rc", 0);
    cJSON_Delete(o);
    h_assert_settles(s);
}

/* A handler that yields in a loop lets other requests run meanwhile. */
static void test_yield_lets_others_progress(void **state)
{
    h_server *s = start(state, NULL);
    h_conn *spin, *flag;
    h_response r;
    cJSON *o;

    atomic_store(&yield_flag, 0);
    atomic_store(&yield_spins, 0);
    spin = h_send_get(s, "/t/yield-spin");
    assert_true(H_WAIT_UNTIL(atomic_load(&yield_spins) > 0, 3000));
    /* the loop still serves: a health check and the request that ends the spin */
    h_assert_healthy(s);
    flag = h_send_get(s, "/t/yield-flag");
    assert_int_equal(h_read_response(flag, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    h_response_free(&r);
    o = h_read_json(spin, 200);
    assert_int_equal(h_jint(o, "seen"), 1);
    h_assert_code(o, "rc", 0);
    assert_true(h_jint(o, "yields") >= 1);
    cJSON_Delete(o);
    h_close(spin);
    h_close(flag);
    h_assert_settles(s);
}

/* A client disconnect cancels root, child and grandchild; all memory returns. */
static void test_nested_cancellation(void **state)
{
    h_server *s = start(state, NULL);
    h_conn *c = h_send_get(s, "/t/nested");
    int64_t closed_at;

    assert_true(H_WAIT_UNTIL(atomic_load(&c_started) == 3, 3000));
    assert_int_equal(h_stats(s).coroutines_live, 3);
    assert_int_equal(h_stats(s).requests_active, 1);
    closed_at = h_now_ms();
    h_close(c);
    assert_true(H_WAIT_UNTIL(atomic_load(&c_root_await) != H_NOT_YET, 3000));
    assert_int_equal(atomic_load(&c_root_sleep), CN_ECANCELED);
    assert_int_equal(atomic_load(&c_child_sleep), CN_ECANCELED);
    assert_int_equal(atomic_load(&c_grand_sleep), CN_ECANCELED);
    assert_int_equal(atomic_load(&c_child_await), CN_ECANCELED);
    assert_int_equal(atomic_load(&c_root_await), CN_ECANCELED);
    /* promptly, not after the 10 s sleeps */
    assert_true(atomic_load(&c_root_returned_ms) - closed_at < 2000);
    h_assert_settles(s);
    assert_int_equal(h_log_count(CN_LOG_WARN, "never awaited", NULL), 0);
    h_assert_healthy(s);
}

/* A spawned task nobody awaits: one warning naming the route; still answered. */
static void test_never_awaited_reported(void **state)
{
    h_server *s = start(state, NULL);
    int64_t t0;
    cJSON *o;
    h_response r;

    atomic_store(&forgot_child_rc, H_NOT_YET);
    t0 = h_now_ms();
    h_roundtrip(s, "GET /forgot HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "forgot");
    h_response_free(&r);
    /* the forgotten child was cancelled, not waited for for 5 s */
    assert_true(h_now_ms() - t0 < 2000);
    assert_true(H_WAIT_UNTIL(atomic_load(&forgot_child_rc) != H_NOT_YET, 3000));
    assert_int_equal(atomic_load(&forgot_child_rc), CN_ECANCELED);
    h_assert_settles(s);
    assert_int_equal(h_log_count(CN_LOG_WARN, "never awaited", NULL), 1);
    assert_int_equal(h_log_count(CN_LOG_WARN, "never awaited", "GET /forgot"), 1);

    /* a forgotten task that had already finished is reported too */
    h_roundtrip(s, "GET /forgot-done HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    h_response_free(&r);
    h_assert_settles(s);
    assert_int_equal(h_log_count(CN_LOG_WARN, "never awaited", "GET /forgot-done"), 1);
    assert_int_equal(h_log_count(CN_LOG_WARN, "never awaited", NULL), 2);

    /* and a route that awaits everything is never reported */
    o = h_get_json(s, "/t/spawn-await", 200);
    cJSON_Delete(o);
    assert_int_equal(h_log_count(CN_LOG_WARN, "never awaited", NULL), 2);
}

/* The golden rule from a sync route (worker thread). */
static void test_golden_rule_sync_route(void **state)
{
    h_server *s = start(state, NULL);
    cJSON *o = h_get_json(s, "/t/golden-sync", 200);

    assert_golden(o);
    cJSON_Delete(o);
    h_assert_settles(s);
}

/* The golden rule from a plain loop callback (a deferred cleanup) and from a
 * thread that has nothing to do with Canteen (this one). */
static void test_golden_rule_loop_callback_and_foreign_thread(void **state)
{
    h_server *s = start(state, NULL);
    h_response r;
    char *text;
    cJSON *o;

    atomic_store(&golden_defer_json, NULL);
    h_roundtrip(s, "GET /t/golden-defer HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    h_response_free(&r);
    assert_true(H_WAIT_UNTIL(atomic_load(&golden_defer_json) != NULL, 3000));
    text = atomic_exchange(&golden_defer_json, NULL);
    o = cJSON_Parse(text);
    assert_non_null(o);
    assert_golden(o);
    cJSON_Delete(o);
    cJSON_free(text);

    o = golden_codes();
    assert_golden(o);
    cJSON_Delete(o);
    h_assert_healthy(s);
    h_assert_settles(s);
}

/* Three sleeps of 200, 1 and 1000 ms overlap: about 1.0 s in all, not 1.2 s. */
static void test_three_sleeps_overlap(void **state)
{
    h_server *s = start(state, NULL);
    static const char *const paths[3] = {"/sleep/200", "/sleep/1", "/sleep/1000"};
    static const int slept[3] = {200, 1, 1000};
    h_conn *c[3];
    int64_t t0 = h_now_ms(), at[3];

    for (int i = 0; i < 3; i++)
        c[i] = h_send_get(s, paths[i]);
    /* read in the order they should finish */
    static const int order[3] = {1, 0, 2};
    for (int k = 0; k < 3; k++) {
        int i = order[k];
        cJSON *o = h_read_json(c[i], 200);
        at[i] = h_now_ms() - t0;
        assert_int_equal(h_jint(o, "slept_ms"), slept[i]);
        cJSON_Delete(o);
    }
    print_message("sleeps answered at 1:%lld 200:%lld 1000:%lld ms\n", (long long)at[1],
                  (long long)at[0], (long long)at[2]);
    assert_true(at[1] < 190); /* the 1 ms sleep did not wait for the others */
    assert_true(at[0] >= 199 && at[0] < 950);
    assert_true(at[2] >= 999);
    assert_true(at[2] < 1150); /* not 1.2 s: the waits overlapped */
    for (int i = 0; i < 3; i++)
        h_close(c[i]);
    h_assert_settles(s);
}

/* /scenario: three gathered steps, the total is the slowest (1000 ms). */
static void test_scenario_total(void **state)
{
    h_server *s = start(state, NULL);
    cJSON *o = h_get_json(s, "/scenario", 200);
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(o, "steps");
    int64_t total = h_jint(o, "total_ms");

    print_message("scenario total_ms=%lld\n", (long long)total);
    assert_true(total >= 990 && total <= 1150);
    assert_int_equal(cJSON_GetArraySize(steps), 3);
    for (int i = 0; i < 3; i++) {
        const cJSON *st = cJSON_GetArrayItem(steps, i);
        int64_t wait = h_jint(st, "wait_ms"), took = h_jint(st, "took_ms");
        assert_true(took >= wait - 10);
        assert_true(took <= total);
    }
    assert_string_equal(cJSON_GetArrayItem(steps, 2)->child->valuestring, "external_api");
    cJSON_Delete(o);
    h_assert_settles(s);
}

/* 200 keep-alive connections each parked in /sleep/300 at once: ~0.3 s in
 * all. One after another they would take 60 s; the bound is a tenth of that,
 * wide enough for a loaded machine under TSan and still far from serial. */
static void test_200_concurrent_sleeps(void **state)
{
    enum { N = 200 };
    /* the connections stay idle while the other answers are read (longer
     * than the harness's 300 ms keep-alive on a slow build: TSan) */
    cn_config cfg = h_fast_config();
    cfg.keepalive_timeout_ms = 10000;
    h_server *s = start(state, &cfg);
    h_conn *c[N];
    int64_t t0, took;

    for (int i = 0; i < N; i++)
        c[i] = h_open(s);
    t0 = h_now_ms();
    for (int i = 0; i < N; i++)
        h_sends(c[i], "GET /sleep/300 HTTP/1.1\r\nHost: t\r\n\r\n");
    for (int i = 0; i < N; i++) {
        h_response r;
        int rc = h_read_response(c[i], &r, 20000);
        if (rc != H_OK)
            fail_msg("connection %d: no response (%d)", i, rc);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "{\"slept_ms\":300}");
        assert_false(h_connection_has(&r, "close"));
        h_response_free(&r);
    }
    took = h_now_ms() - t0;
    print_message("200 x /sleep/300: %lld ms\n", (long long)took);
    assert_true(took >= 299);
    assert_true(took < 6000);
    /* the connections are still alive for another request */
    for (int i = 0; i < N; i += 50) {
        h_response r;
        h_sends(c[i], "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_int_equal(h_read_response(c[i], &r, H_TIMEOUT_MS), H_OK);
        assert_int_equal(r.status, 200);
        h_response_free(&r);
    }
    for (int i = 0; i < N; i++)
        h_close(c[i]);
    h_assert_settles(s);
}

/* A client that leaves while its handler sleeps: CN_ECANCELED, memory returned. */
static void test_disconnect_while_sleeping(void **state)
{
    h_server *s = start(state, NULL);
    h_conn *c = h_send_get(s, "/t/sleep-observe");
    h_conn *d;
    int64_t closed_at;

    assert_true(H_WAIT_UNTIL(atomic_load(&c_started) == 1, 3000));
    assert_int_equal(h_stats(s).coroutines_live, 1);
    assert_int_equal(h_stats(s).requests_active, 1);
    closed_at = h_now_ms();
    h_close(c);
    assert_true(H_WAIT_UNTIL(atomic_load(&c_root_sleep) != H_NOT_YET, 3000));
    assert_int_equal(atomic_load(&c_root_sleep), CN_ECANCELED);
    assert_true(atomic_load(&c_root_returned_ms) - closed_at < 2000);
    /* every later awaitable refuses at once */
    assert_int_equal(atomic_load(&c_after_sleep), CN_ECANCELED);
    assert_int_equal(atomic_load(&c_after_spawn), CN_ECANCELED);
    assert_int_equal(atomic_load(&c_after_yield), CN_ECANCELED);
    assert_int_equal(atomic_load(&c_after_cancelled), 1);
    assert_int_equal(atomic_load(&c_after_to_thread), CN_ECANCELED);
    assert_int_equal(atomic_load(&c_after_fetch), CN_ECANCELED);
    h_assert_settles(s);

    /* the demo's own /sleep route, several at once, some on one connection */
    d = h_send_get(s, "/sleep/10000");
    c = h_send_get(s, "/sleep/10000");
    assert_true(H_WAIT_UNTIL(h_stats(s).coroutines_live == 2, 3000));
    h_close(d);
    h_close(c);
    h_assert_settles(s);
    assert_int_equal(h_stats(s).connections_active, 0);
    h_assert_healthy(s);
}

/* A disconnect reaches a task parked in cn_yield, in cn_gather (/scenario)
 * and in cn_wait_for; each returns CN_ECANCELED and everything is freed. */
static void test_cancel_in_yield_gather_wait_for(void **state)
{
    h_server *s = start(state, NULL);
    h_conn *c;
    int64_t closed_at, sent_at;

    /* yield: the spin never sees its flag */
    atomic_store(&yield_flag, 0);
    atomic_store(&yield_spins, 0);
    atomic_store(&yield_rc, H_NOT_YET);
    c = h_send_get(s, "/t/yield-spin");
    assert_true(H_WAIT_UNTIL(atomic_load(&yield_spins) > 0, 3000));
    closed_at = h_now_ms();
    h_close(c);
    assert_true(H_WAIT_UNTIL(atomic_load(&yield_rc) != H_NOT_YET, 3000));
    assert_int_equal(atomic_load(&yield_rc), CN_ECANCELED);
    assert_true(h_now_ms() - closed_at < 2000);
    h_assert_settles(s);

    /* gather: the demo's /scenario, parked in cn_gather (the root and at
     * least its 1000 ms child are live; the 1 ms one may be gone) */
    sent_at = h_now_ms();
    c = h_send_get(s, "/scenario");
    assert_true(H_WAIT_UNTIL(h_stats(s).coroutines_live >= 2, 3000));
    h_close(c);
    h_assert_settles(s);
    assert_true(h_now_ms() - sent_at < 900); /* not after its 1 s step */

    /* wait_for: the parent's own cancel, not the timeout */
    c = h_send_get(s, "/t/wait-for-cancel");
    assert_true(H_WAIT_UNTIL(atomic_load(&c_started) == 2, 3000));
    closed_at = h_now_ms();
    h_close(c);
    assert_true(H_WAIT_UNTIL(atomic_load(&c_after_wait_for) != H_NOT_YET, 3000));
    assert_int_equal(atomic_load(&c_after_wait_for), CN_ECANCELED);
    assert_int_equal(atomic_load(&c_child_sleep), CN_ECANCELED);
    assert_true(atomic_load(&c_root_returned_ms) - closed_at < 2000);
    h_assert_settles(s);
    assert_int_equal(h_log_count(CN_LOG_WARN, "never awaited", NULL), 0);
    h_assert_healthy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_spawn_await, h_teardown),
        cmocka_unit_test_teardown(test_gather_order, h_teardown),
        cmocka_unit_test_teardown(test_gather_error, h_teardown),
        cmocka_unit_test_teardown(test_gather_edge_cases, h_teardown),
        cmocka_unit_test_teardown(test_await_non_child, h_teardown),
        cmocka_unit_test_teardown(test_wait_for_timeout, h_teardown),
        cmocka_unit_test_teardown(test_wait_for_in_time, h_teardown),
        cmocka_unit_test_teardown(test_sleep_late_in_turn, h_teardown),
        cmocka_unit_test_teardown(test_yield_lets_others_progress, h_teardown),
        cmocka_unit_test_teardown(test_nested_cancellation, h_teardown),
        cmocka_unit_test_teardown(test_never_awaited_reported, h_teardown),
        cmocka_unit_test_teardown(test_golden_rule_sync_route, h_teardown),
        cmocka_unit_test_teardown(test_golden_rule_loop_callback_and_foreign_thread, h_teardown),
        cmocka_unit_test_teardown(test_three_sleeps_overlap, h_teardown),
        cmocka_unit_test_teardown(test_scenario_total, h_teardown),
        cmocka_unit_test_teardown(test_200_concurrent_sleeps, h_teardown),
        cmocka_unit_test_teardown(test_disconnect_while_sleeping, h_teardown),
        cmocka_unit_test_teardown(test_cancel_in_yield_gather_wait_for, h_teardown),
    };
    int rc;

    /* before any app starts: the hook is read without a lock */
    h_log_capture_start();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    h_log_capture_stop();
    return rc;
}
