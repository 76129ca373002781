/*
 * test_pool.c -- the work-queue thread pool (src/pool.h) on a plain libuv
 * loop: FIFO order, done callbacks on the loop thread (never inside submit
 * or cancel, never on a worker), one wake-up draining every completion,
 * cancelling queued and running jobs, the figures, the workers' nice value,
 * freeing a pool with jobs still queued; the bounds (queue_max, the queue
 * timeout), lanes (a route's limit, the CPU lane) and the cooperative
 * cancel check; how workers wake the loop (a descriptor of the pool's own, never an async
 * handle; closed with the pool; a forked child's is its own).
 *
 * Jobs that must stay "running" wait on a gate the test opens. Nothing
 * sleeps to synchronise: the test polls the pool's figures or runs the loop
 * until a condition holds, always with a deadline.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "../gate.h"
#include "pool.h"

#define NOT_YET INT_MIN
#define DEADLINE_MS 5000

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap_ms(int ms)
{
    struct timespec ts = {0, (long)ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* Poll `cond` (without running the loop) until it holds or `ms` pass. */
#define WAIT_UNTIL(cond, ms)                                                                       \
    __extension__({                                                                                \
        int64_t wu_deadline_ = now_ms() + (ms);                                                    \
        bool wu_ok_;                                                                               \
        while (!(wu_ok_ = (cond)) && now_ms() < wu_deadline_)                                      \
            nap_ms(1);                                                                             \
        wu_ok_;                                                                                    \
    })

/* ---- the gate: jobs that must stay running wait here ---- */

/* ---- test jobs ---- */

typedef struct tjob {
    cn__job job;
    int idx;
    bool gated;
    bool spin;            /* work waits for cn_job_cancelled() to turn 1 */
    atomic_int saw_start; /* what cn_job_cancelled() said when work began */
    atomic_int saw_end;   /* and when the spin ended (1: it saw the cancel) */
    atomic_int ran;       /* work ran (worker side) */
    pthread_t work_tid;
    int work_nice;
    int done_status; /* NOT_YET until done ran */
    bool done_on_loop;
    int done_pos; /* its place in the order of done callbacks */
} tjob;

static pthread_t main_tid;
static atomic_int exec_seq; /* order in which work ran */
static int exec_order[256];
static int done_count; /* loop thread only */

static void tjob_work(cn__job *j)
{
    tjob *t = CN__CONTAINER_OF(j, tjob, job);

    atomic_store(&t->saw_start, cn_job_cancelled());
    if (t->gated)
        gate_pass();
    if (t->spin) {
        int64_t deadline = now_ms() + 10000; /* bounded if the cancel never comes */
        int c;
        atomic_fetch_add(&gate_waiting, 1);
        while ((c = cn_job_cancelled()) == 0 && now_ms() < deadline)
            sched_yield();
        atomic_store(&t->saw_end, c);
    }
    t->work_tid = pthread_self();
    t->work_nice = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
    exec_order[atomic_fetch_add(&exec_seq, 1) & 255] = t->idx;
    atomic_store(&t->ran, 1);
}

static void tjob_done(cn__job *j, int status)
{
    tjob *t = CN__CONTAINER_OF(j, tjob, job);

    t->done_status = status;
    t->done_on_loop = pthread_equal(pthread_self(), main_tid);
    t->done_pos = done_count++;
}

static void tjob_init(tjob *t, int idx, bool gated)
{
    memset(t, 0, sizeof(*t));
    t->idx = idx;
    t->gated = gated;
    t->done_status = NOT_YET;
    t->done_pos = -1;
    atomic_store(&t->saw_start, NOT_YET);
    atomic_store(&t->saw_end, NOT_YET);
    t->job.work = tjob_work;
    t->job.done = tjob_done;
}

/* ---- fixture: a loop, a keep-alive timer, a pool ---- */

typedef struct fixture {
    uv_loop_t loop;
    uv_timer_t tick; /* keeps uv_run(ONCE) from blocking forever */
    cn__pool *pool;
} fixture;

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

static fixture *fixture_new(unsigned threads, int nice_delta)
{
    fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->tick);
    uv_timer_start(&f->tick, on_tick, 2, 2);
    f->pool = cn__pool_new(&f->loop, threads, nice_delta);
    assert_non_null(f->pool);
    main_tid = pthread_self();
    atomic_store(&exec_seq, 0);
    done_count = 0;
    gate_close();
    return f;
}

static int teardown(void **state)
{
    fixture *f = *state;

    if (f == NULL)
        return 0;
    gate_release();
    if (f->pool)
        cn__pool_free(f->pool);
    uv_close((uv_handle_t *)&f->tick, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

/* Run the loop until `cond` holds (bounded). */
#define RUN_UNTIL(f, cond)                                                                         \
    __extension__({                                                                                \
        int64_t ru_deadline_ = now_ms() + DEADLINE_MS;                                             \
        bool ru_ok_;                                                                               \
        while (!(ru_ok_ = (cond)) && now_ms() < ru_deadline_)                                      \
            uv_run(&(f)->loop, UV_RUN_ONCE);                                                       \
        ru_ok_;                                                                                    \
    })

static cn_pool_stats stats(fixture *f)
{
    cn_pool_stats s;
    cn__pool_stats(f->pool, &s);
    return s;
}

/* ------------------------------------------------------------------------ */

/* One worker: jobs run, and complete, in the order they were submitted. */
static void test_fifo_one_worker(void **state)
{
    enum { N = 20 };
    fixture *f = fixture_new(1, 0);
    tjob gate, jobs[N];
    cn_pool_stats s;

    *state = f;
    /* hold the only worker so that every job is really queued */
    tjob_init(&gate, -1, true);
    assert_int_equal(cn__pool_submit(f->pool, &gate.job), 0);
    assert_true(WAIT_UNTIL(atomic_load(&gate_waiting) == 1, DEADLINE_MS));
    for (int i = 0; i < N; i++) {
        tjob_init(&jobs[i], i, false);
        assert_int_equal(cn__pool_submit(f->pool, &jobs[i].job), 0);
    }
    s = stats(f);
    assert_int_equal(s.threads, 1);
    assert_int_equal(s.busy, 1);
    assert_int_equal(s.queue_depth, N);
    assert_int_equal(s.submitted, N + 1);
    gate_release();
    assert_true(RUN_UNTIL(f, done_count == N + 1));
    assert_int_equal(atomic_load(&exec_seq), N + 1);
    assert_int_equal(exec_order[0], -1);
    for (int i = 0; i < N; i++) {
        assert_int_equal(exec_order[i + 1], i);
        assert_int_equal(jobs[i].done_status, 0);
        assert_int_equal(jobs[i].done_pos, i + 1);
        assert_true(jobs[i].done_on_loop);
        assert_true(pthread_equal(jobs[i].work_tid, gate.work_tid));
    }
    assert_false(pthread_equal(gate.work_tid, main_tid));
    s = stats(f);
    assert_int_equal(s.busy, 0);
    assert_int_equal(s.queue_depth, 0);
    assert_int_equal(s.completed, N + 1);
    assert_int_equal(s.cancelled, 0);
}

/* Done callbacks run only on the loop thread, from the loop: never inside
 * submit, never on a worker; one wake-up drains every finished job. */
static void test_done_on_loop_thread_and_drained_at_once(void **state)
{
    enum { N = 100 };
    fixture *f = fixture_new(4, 0);
    tjob *jobs = calloc(N, sizeof(*jobs));
    int runs = 0;

    *state = f;
    assert_non_null(jobs);
    for (int i = 0; i < N; i++) {
        tjob_init(&jobs[i], i, false);
        assert_int_equal(cn__pool_submit(f->pool, &jobs[i].job), 0);
    }
    /* every job finishes on the workers while the loop is not running... */
    assert_true(WAIT_UNTIL(stats(f).completed == N, DEADLINE_MS));
    assert_int_equal(done_count, 0);
    /* ...and the first loop turn that notices delivers them all (the async
     * wake-ups coalesced into one) */
    while (done_count == 0 && runs++ < 1000)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(done_count, N);
    for (int i = 0; i < N; i++) {
        assert_true(jobs[i].done_on_loop);
        assert_int_equal(jobs[i].done_status, 0);
        assert_false(pthread_equal(jobs[i].work_tid, main_tid));
    }
    free(jobs);
}

/* A queued job can be dropped (done with CN_ECANCELED, from the loop); a
 * running one cannot (CN_EBUSY); a finished one is gone (CN_ENOENT). */
static void test_cancel_queued_and_running(void **state)
{
    fixture *f = fixture_new(1, 0);
    tjob a, b;
    cn_pool_stats s;

    *state = f;
    tjob_init(&a, 0, true);
    tjob_init(&b, 1, false);
    assert_int_equal(cn__pool_submit(f->pool, &a.job), 0);
    assert_true(WAIT_UNTIL(atomic_load(&gate_waiting) == 1, DEADLINE_MS));
    assert_int_equal(cn__pool_submit(f->pool, &b.job), 0);
    assert_int_equal(stats(f).queue_depth, 1);

    assert_int_equal(cn__pool_cancel(f->pool, &b.job), 0);
    assert_int_equal(b.done_status, NOT_YET); /* not from inside the cancel */
    s = stats(f);
    assert_int_equal(s.queue_depth, 0);
    assert_int_equal(s.cancelled, 1);
    assert_int_equal(cn__pool_cancel(f->pool, &b.job), CN_ENOENT);
    assert_int_equal(cn__pool_cancel(f->pool, &a.job), CN_EBUSY);

    assert_true(RUN_UNTIL(f, b.done_status != NOT_YET));
    assert_int_equal(b.done_status, CN_ECANCELED);
    assert_true(b.done_on_loop);
    assert_int_equal(a.done_status, NOT_YET); /* still held at the gate */

    gate_release();
    assert_true(RUN_UNTIL(f, a.done_status != NOT_YET));
    assert_int_equal(a.done_status, 0);
    assert_int_equal(atomic_load(&a.ran), 1);
    assert_int_equal(atomic_load(&b.ran), 0);
    assert_int_equal(cn__pool_cancel(f->pool, &a.job), CN_ENOENT);
    s = stats(f);
    assert_int_equal(s.submitted, 2);
    assert_int_equal(s.completed, 1);
    assert_int_equal(s.cancelled, 1);
    assert_int_equal(s.busy, 0);
    assert_int_equal(s.queue_depth, 0);
}

/* busy, queue_depth and wait times while four workers are held. */
static void test_stats(void **state)
{
    fixture *f = fixture_new(4, 0);
    tjob jobs[6];
    cn_pool_stats s;
    int64_t t0;

    *state = f;
    s = stats(f);
    assert_int_equal(s.threads, 4);
    assert_int_equal(s.busy, 0);
    assert_int_equal(s.queue_depth, 0);
    assert_int_equal(s.submitted, 0);
    assert_true(s.wait_ms_avg == 0.0 && s.wait_ms_max == 0.0 && s.wait_ms_sum == 0.0);
    assert_int_equal(s.started, 0);

    for (int i = 0; i < 6; i++) {
        tjob_init(&jobs[i], i, true);
        assert_int_equal(cn__pool_submit(f->pool, &jobs[i].job), 0);
    }
    t0 = now_ms();
    assert_true(WAIT_UNTIL(atomic_load(&gate_waiting) == 4, DEADLINE_MS));
    s = stats(f);
    assert_int_equal(s.busy, 4);
    assert_int_equal(s.queue_depth, 2);
    assert_int_equal(s.submitted, 6);
    assert_int_equal(s.completed, 0);
    assert_int_equal(s.started, 4); /* the running ones, not the queued ones */
    /* hold them long enough for the two queued jobs to have waited 50 ms */
    while (now_ms() - t0 < 60)
        nap_ms(5);
    gate_release();
    assert_true(RUN_UNTIL(f, done_count == 6));
    s = stats(f);
    assert_int_equal(s.busy, 0);
    assert_int_equal(s.queue_depth, 0);
    assert_int_equal(s.completed, 6);
    assert_true(s.wait_ms_max >= 50.0);
    assert_true(s.wait_ms_avg > 0.0 && s.wait_ms_avg <= s.wait_ms_max);
    /* the sum behind the average: two jobs waited at least 50 ms each */
    assert_int_equal(s.started, 6);
    assert_true(s.wait_ms_sum >= 100.0 && s.wait_ms_sum >= s.wait_ms_max);
    assert_true(s.wait_ms_sum / 6.0 == s.wait_ms_avg);
}

/* Workers run nicer than the thread that made the pool (capped at 19). */
static void test_worker_nice(void **state)
{
    int base = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
    int want = base + 5 > 19 ? 19 : base + 5;
    fixture *f = fixture_new(1, 5);
    tjob j;

    *state = f;
    tjob_init(&j, 0, false);
    assert_int_equal(cn__pool_submit(f->pool, &j.job), 0);
    assert_true(RUN_UNTIL(f, j.done_status != NOT_YET));
    assert_int_equal(j.work_nice, want);
    /* the loop thread's own priority is untouched */
    assert_int_equal(getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid)), base);
}

/* Freeing a pool waits for the running job, drops the queued ones without
 * their done callback, and refuses new submissions meanwhile. */
static void *free_pool_thread(void *arg)
{
    cn__pool_free(arg);
    return NULL;
}

static void test_free_drops_queued(void **state)
{
    enum { PROBES = 5000 };
    fixture *f = fixture_new(1, 0);
    tjob a, b, *probes = calloc(PROBES, sizeof(tjob));
    pthread_t th;
    int rc = 0, i;

    *state = f;
    assert_non_null(probes);
    tjob_init(&a, 0, true);
    tjob_init(&b, 1, false);
    assert_int_equal(cn__pool_submit(f->pool, &a.job), 0);
    assert_true(WAIT_UNTIL(atomic_load(&gate_waiting) == 1, DEADLINE_MS));
    assert_int_equal(cn__pool_submit(f->pool, &b.job), 0);
    /* free from another thread: it blocks on the running job */
    assert_int_equal(pthread_create(&th, NULL, free_pool_thread, f->pool), 0);
    /* once it has started stopping, new jobs are refused */
    for (i = 0; i < PROBES; i++) {
        tjob_init(&probes[i], 2 + i, false);
        rc = cn__pool_submit(f->pool, &probes[i].job);
        if (rc == CN_ESTATE)
            break;
        nap_ms(1);
    }
    assert_int_equal(rc, CN_ESTATE);
    gate_release();
    assert_int_equal(pthread_join(th, NULL), 0);
    f->pool = NULL;
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(atomic_load(&a.ran), 1);
    assert_int_equal(atomic_load(&b.ran), 0);
    assert_int_equal(b.done_status, NOT_YET);
    /* the probes accepted before the stop began were dropped as well */
    for (int k = 0; k <= i && k < PROBES; k++) {
        assert_int_equal(atomic_load(&probes[k].ran), 0);
        assert_int_equal(probes[k].done_status, NOT_YET);
    }
    free(probes);
}

/* ---- the bounds ---- */

/* queue_max jobs waiting: the next submit is refused (CN_EAGAIN, counted)
 * and nothing of it runs; once the queue moves, submits succeed again. */
static void test_queue_max_rejects(void **state)
{
    fixture *f = fixture_new(1, 0);
    tjob a, b, c, d, e;
    cn_pool_stats s;

    *state = f;
    cn__pool_set_limits(f->pool, 2, 0);
    tjob_init(&a, 0, true);
    assert_int_equal(cn__pool_submit(f->pool, &a.job), 0);
    assert_true(WAIT_UNTIL(atomic_load(&gate_waiting) == 1, DEADLINE_MS));
    tjob_init(&b, 1, false);
    tjob_init(&c, 2, false);
    tjob_init(&d, 3, false);
    assert_int_equal(cn__pool_submit(f->pool, &b.job), 0);
    assert_int_equal(cn__pool_submit(f->pool, &c.job), 0);
    /* the running one does not count: two are waiting */
    assert_int_equal(cn__pool_submit(f->pool, &d.job), CN_EAGAIN);
    s = stats(f);
    assert_int_equal(s.queue_depth, 2);
    assert_int_equal(s.rejected, 1);
    assert_int_equal(s.submitted, 3);
    gate_release();
    assert_true(RUN_UNTIL(f, done_count == 3));
    assert_int_equal(atomic_load(&d.ran), 0);
    assert_int_equal(d.done_status, NOT_YET); /* refused: no done callback */
    tjob_init(&e, 4, false);
    assert_int_equal(cn__pool_submit(f->pool, &e.job), 0);
    assert_true(RUN_UNTIL(f, e.done_status != NOT_YET));
    assert_int_equal(e.done_status, 0);
    assert_int_equal(stats(f).rejected, 1);
}

/* A job that waits past the timeout is dropped unrun with CN_EEXPIRED,
 * from the loop's own timer, while the only worker is still held; one
 * that was taken in time is not. */
static void test_queue_timeout_expires_while_workers_busy(void **state)
{
    fixture *f = fixture_new(1, 0);
    tjob a, b;
    cn_pool_stats s;
    int64_t t0;

    *state = f;
    cn__pool_set_limits(f->pool, 0, 100);
    tjob_init(&a, 0, true);
    tjob_init(&b, 1, false);
    assert_int_equal(cn__pool_submit(f->pool, &a.job), 0);
    assert_true(WAIT_UNTIL(atomic_load(&gate_waiting) == 1, DEADLINE_MS));
    t0 = now_ms();
    assert_int_equal(cn__pool_submit(f->pool, &b.job), 0);
    assert_true(RUN_UNTIL(f, b.done_status != NOT_YET));
    print_message("expired after %lld ms (limit 100)\n", (long long)(now_ms() - t0));
    assert_int_equal(b.done_status, CN_EEXPIRED);
    assert_true(b.done_on_loop);
    assert_true(now_ms() - t0 >= 99);
    assert_int_equal(a.done_status, NOT_YET); /* the worker is still held */
    s = stats(f);
    assert_int_equal(s.expired, 1);
    assert_int_equal(s.queue_depth, 0);
    assert_int_equal(s.cancelled, 0);
    assert_int_equal(cn__pool_cancel(f->pool, &b.job), CN_ENOENT);
    gate_release();
    assert_true(RUN_UNTIL(f, a.done_status != NOT_YET));
    assert_int_equal(a.done_status, 0); /* it started in time: not expired */
    assert_int_equal(atomic_load(&b.ran), 0);
    s = stats(f);
    assert_int_equal(s.completed, 1);
    assert_int_equal(s.expired, 1);
}

/* A lane at its limit holds its next job without a worker: another job
 * (no lane) runs on the free worker meanwhile; the held one goes in when
 * the lane's running job ends. */
static void test_lane_holds_over_limit_without_worker(void **state)
{
    fixture *f = fixture_new(2, 0);
    cn__lane lane = {.limit = 1};
    tjob a, b, c;
    cn_pool_stats s;

    *state = f;
    cn__list_init(&lane.waiting);
    tjob_init(&a, 0, true);
    tjob_init(&b, 1, false);
    tjob_init(&c, 2, false);
    a.job.lane = b.job.lane = &lane;
    assert_int_equal(cn__pool_submit(f->pool, &a.job), 0);
    assert_true(WAIT_UNTIL(atomic_load(&gate_waiting) == 1, DEADLINE_MS));
    assert_int_equal(cn__pool_submit(f->pool, &b.job), 0);
    s = stats(f);
    assert_int_equal(s.busy, 1);
    assert_int_equal(s.queue_depth, 0); /* held in the lane, not queued */
    assert_int_equal(s.route_waiting, 1);
    assert_int_equal(s.route_waits, 1);
    /* the second worker is free for everyone else */
    assert_int_equal(cn__pool_submit(f->pool, &c.job), 0);
    assert_true(RUN_UNTIL(f, c.done_status != NOT_YET));
    assert_int_equal(c.done_status, 0);
    assert_int_equal(atomic_load(&b.ran), 0);
    assert_int_equal(lane.inflight, 1);
    gate_release();
    assert_true(RUN_UNTIL(f, a.done_status != NOT_YET && b.done_status != NOT_YET));
    assert_int_equal(b.done_status, 0);
    assert_true(b.done_pos > a.done_pos);
    s = stats(f);
    assert_int_equal(s.route_waiting, 0);
    assert_int_equal(s.completed, 3);
    assert_int_equal(lane.inflight, 0);
    assert_true(cn__list_empty(&lane.waiting));
}

/* The CPU lane (Canteen's own CPU-bound jobs): as many at once as the
 * process has cores (never more than the workers), whatever submits them;
 * the rest wait in the lane holding no worker, and a job outside it still
 * gets one of the free workers. */
static int cpu_ran;      /* loop thread: CPU-lane jobs done */
static int cpu_statuses; /* their statuses, summed */

static void cpu_work(void *arg)
{
    (void)arg;
    gate_pass();
}

static void cpu_done(void *arg, int status)
{
    (void)arg;
    cpu_ran++;
    cpu_statuses += status;
}

static void test_cpu_lane_runs_as_many_as_cores(void **state)
{
    unsigned cores = uv_available_parallelism();
    unsigned n = cores + 2; /* workers, and the jobs: two over the limit */
    fixture *f = fixture_new(n + 1, 0);
    cn_pool_stats s;
    tjob other;

    *state = f;
    cpu_ran = cpu_statuses = 0;
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(cn__pool_submit_fn(f->pool, cpu_work, cpu_done, NULL, true), 0);
    assert_true(WAIT_UNTIL(atomic_load(&gate_waiting) == (int)cores, DEADLINE_MS));
    s = stats(f);
    assert_int_equal(s.busy, cores);
    assert_int_equal(s.route_waiting, 2); /* held in the lane, on no worker */
    assert_int_equal(s.queue_depth, 0);
    tjob_init(&other, 0, false);
    assert_int_equal(cn__pool_submit(f->pool, &other.job), 0);
    assert_true(RUN_UNTIL(f, other.done_status == 0));
    assert_int_equal(cpu_ran, 0);
    gate_release();
    assert_true(RUN_UNTIL(f, cpu_ran == (int)n));
    assert_int_equal(cpu_statuses, 0);
    s = stats(f);
    assert_int_equal(s.route_waiting, 0);
    assert_int_equal(s.completed, n + 1);

    /* a pool smaller than the cores: the lane is the pool */
    cn__pool_free(f->pool);
    f->pool = cn__pool_new(&f->loop, 1, 0);
    assert_non_null(f->pool);
    gate_close();
    cpu_ran = 0;
    assert_int_equal(cn__pool_submit_fn(f->pool, cpu_work, cpu_done, NULL, true), 0);
    assert_int_equal(cn__pool_submit_fn(f->pool, cpu_work, cpu_done, NULL, true), 0);
    assert_true(WAIT_UNTIL(atomic_load(&gate_waiting) == 1, DEADLINE_MS));
    s = stats(f);
    assert_int_equal(s.route_waiting, 1); /* a limit of 2 would have queued it */
    assert_int_equal(s.queue_depth, 0);
    gate_release();
    assert_true(RUN_UNTIL(f, cpu_ran == 2));
}

/* A job held in its lane can be dropped like a queued one: it never runs,
 * and the lane's next job takes its turn. Held jobs count against
 * queue_max. */
static void test_cancel_held_job_never_runs(void **state)
{
    fixture *f = fixture_new(1, 0);
    cn__lane lane = {.limit = 1};
    tjob a, b, c, d;
    cn_pool_stats s;

    *state = f;
    cn__pool_set_limits(f->pool, 2, 0);
    cn__list_init(&lane.waiting);
    tjob_init(&a, 0, true);
    tjob_init(&b, 1, false);
    tjob_init(&c, 2, false);
    tjob_init(&d, 3, false);
    a.job.lane = b.job.lane = c.job.lane = d.job.lane = &lane;
    assert_int_equal(cn__pool_submit(f->pool, &a.job), 0);
    assert_true(WAIT_UNTIL(atomic_load(&gate_waiting) == 1, DEADLINE_MS));
    assert_int_equal(cn__pool_submit(f->pool, &b.job), 0);
    assert_int_equal(cn__pool_submit(f->pool, &c.job), 0);
    assert_int_equal(cn__pool_submit(f->pool, &d.job), CN_EAGAIN);
    assert_int_equal(stats(f).route_waiting, 2);
    assert_int_equal(cn__pool_cancel(f->pool, &b.job), 0);
    assert_true(RUN_UNTIL(f, b.done_status != NOT_YET));
    assert_int_equal(b.done_status, CN_ECANCELED);
    s = stats(f);
    assert_int_equal(s.route_waiting, 1);
    assert_int_equal(s.cancelled, 1);
    assert_int_equal(s.rejected, 1);
    gate_release();
    assert_true(RUN_UNTIL(f, a.done_status != NOT_YET && c.done_status != NOT_YET));
    assert_int_equal(c.done_status, 0);
    assert_int_equal(atomic_load(&b.ran), 0);
    assert_int_equal(atomic_load(&d.ran), 0);
    assert_int_equal(lane.inflight, 0);
}

/* The cooperative check: 0 in a running job until cn__pool_cancel (which
 * cannot stop it) sets its flag, then 1, and the job ends early; the
 * check is an error on a thread that runs no job and no coroutine. */
static void test_running_job_sees_cancel(void **state)
{
    fixture *f = fixture_new(1, 0);
    tjob a, b;

    *state = f;
    assert_int_equal(cn_job_cancelled(), CN_ESTATE);
    tjob_init(&a, 0, false);
    a.spin = true;
    assert_int_equal(cn__pool_submit(f->pool, &a.job), 0);
    assert_true(WAIT_UNTIL(atomic_load(&gate_waiting) == 1, DEADLINE_MS));
    assert_int_equal(atomic_load(&a.saw_start), 0);
    assert_int_equal(atomic_load(&a.saw_end), NOT_YET); /* spinning */
    assert_int_equal(cn__pool_cancel(f->pool, &a.job), CN_EBUSY);
    assert_true(RUN_UNTIL(f, a.done_status != NOT_YET));
    assert_int_equal(atomic_load(&a.saw_end), 1);
    assert_int_equal(a.done_status, 0); /* it ran (and ended by itself) */
    /* a later job on the same worker starts clean */
    tjob_init(&b, 1, false);
    assert_int_equal(cn__pool_submit(f->pool, &b.job), 0);
    assert_true(RUN_UNTIL(f, b.done_status != NOT_YET));
    assert_int_equal(atomic_load(&b.saw_start), 0);
}

/* ---- the wake-up ---- */

static void count_async(uv_handle_t *h, void *arg)
{
    if (uv_handle_get_type(h) == UV_ASYNC)
        (*(int *)arg)++;
}

static bool readable(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN);
}

/* The loop is woken through a descriptor it polls, not an async handle
 * (whose sender the loop spins for in libuv 1.44): the pool adds none to
 * the loop. Completions still arrive, and the descriptor is read empty by
 * the loop turn that delivers them. It is closed with the pool. */
static void test_wake_is_a_descriptor_closed_with_the_pool(void **state)
{
    fixture *f = fixture_new(2, 0);
    tjob a;
    int asyncs = 0, fd;

    *state = f;
    uv_walk(&f->loop, count_async, &asyncs);
    assert_int_equal(asyncs, 0);
    fd = cn__pool_wake_fd(f->pool);
    assert_true(fd >= 0);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC); /* not leaked into exec'd children */
    assert_false(readable(fd));
    tjob_init(&a, 0, false);
    assert_int_equal(cn__pool_submit(f->pool, &a.job), 0);
    /* the worker's write is there before the loop runs */
    assert_true(WAIT_UNTIL(readable(fd), DEADLINE_MS));
    assert_true(RUN_UNTIL(f, a.done_status == 0));
    assert_false(readable(fd));
    cn__pool_free(f->pool);
    f->pool = NULL;
    /* still open until its handle's close has been delivered */
    assert_int_not_equal(fcntl(fd, F_GETFD), -1);
    uv_close((uv_handle_t *)&f->tick, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(fcntl(fd, F_GETFD), -1);
    assert_int_equal(errno, EBADF);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    *state = NULL;
}

/* What a forked child checks (no cmocka there): 0, or the failing step. */
static int child_side(fixture *f, int parent_fd)
{
    tjob a, b;

    if (uv_loop_fork(&f->loop) != 0)
        return 10;
    if (cn__pool_fork_child(f->pool) != 0)
        return 11;
    if (cn__pool_wake_fd(f->pool) != parent_fd) /* the poll handle's number */
        return 12;
    if (!(fcntl(parent_fd, F_GETFD) & FD_CLOEXEC))
        return 13;
    /* the child's loop is woken by the child's workers */
    tjob_init(&a, 0, false);
    if (cn__pool_submit(f->pool, &a.job) != 0)
        return 14;
    if (!RUN_UNTIL(f, a.done_status == 0))
        return 15;
    /* a wake this loop never reads: the parent must not see it */
    tjob_init(&b, 1, false);
    if (cn__pool_submit(f->pool, &b.job) != 0)
        return 16;
    if (!WAIT_UNTIL(readable(parent_fd), DEADLINE_MS))
        return 17;
    return 0;
}

/* A forked process (a supervisor's worker) gets a wake descriptor of its
 * own: neither sees the other's wakes, and both loops still get theirs. */
static void test_forked_child_wakes_only_its_own_loop(void **state)
{
    fixture *f = fixture_new(1, 0);
    int fd = cn__pool_wake_fd(f->pool), st = -1;
    tjob a;
    pid_t pid;

    *state = f;
    /* no worker thread yet: forking is what a supervisor does at this point */
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(child_side(f, fd));
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    /* the child wrote its wakes and left one unread: none reached us */
    assert_false(readable(fd));
    tjob_init(&a, 0, false);
    assert_int_equal(cn__pool_submit(f->pool, &a.job), 0);
    assert_true(RUN_UNTIL(f, a.done_status == 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_fifo_one_worker, teardown),
        cmocka_unit_test_teardown(test_done_on_loop_thread_and_drained_at_once, teardown),
        cmocka_unit_test_teardown(test_cancel_queued_and_running, teardown),
        cmocka_unit_test_teardown(test_stats, teardown),
        cmocka_unit_test_teardown(test_worker_nice, teardown),
        cmocka_unit_test_teardown(test_free_drops_queued, teardown),
        cmocka_unit_test_teardown(test_queue_max_rejects, teardown),
        cmocka_unit_test_teardown(test_queue_timeout_expires_while_workers_busy, teardown),
        cmocka_unit_test_teardown(test_lane_holds_over_limit_without_worker, teardown),
        cmocka_unit_test_teardown(test_cpu_lane_runs_as_many_as_cores, teardown),
        cmocka_unit_test_teardown(test_cancel_held_job_never_runs, teardown),
        cmocka_unit_test_teardown(test_running_job_sees_cancel, teardown),
        cmocka_unit_test_teardown(test_wake_is_a_descriptor_closed_with_the_pool, teardown),
        cmocka_unit_test_teardown(test_forked_child_wakes_only_its_own_loop, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
