/*
 * pool.c -- a fixed set of worker threads over a FIFO job queue.
 *
 * Workers run at a lower scheduling priority than the loop thread (nice
 * +10 by default): when the server is confined to one core, CPU-bound jobs
 * then take the time the loop does not want instead of starving it.
 *
 * For the same reason nothing wakes the loop with uv_async_send: libuv
 * (1.44) marks the handle busy around its write, and the loop, finding it
 * busy, spins and sched_yield()s until the sender is done. A nice worker
 * preempted in that window held the loop for tens of milliseconds at a
 * time (bench/attacks/run json). The loop polls a descriptor of the pool's
 * own instead (an eventfd; a pipe where there is none), and a waker writes
 * to it with the mutex let go: a preempted writer holds nothing the loop
 * waits for.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#ifdef __linux__
#include <sys/eventfd.h>
#endif
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "pool.h"
#include "scheduler.h"

enum { JOB_QUEUED = 1, JOB_HELD, JOB_RUNNING, JOB_DONE };

/* The loop's timer for expired jobs: idle, asked for (by a submit on any
 * thread, through the wake-up), armed. Under mu. */
enum { SWEEP_IDLE, SWEEP_WANTED, SWEEP_ARMED };

struct cn__pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_cond_t ready_cv; /* a worker is running (cn__pool_start waits) */
    cn__list queue;          /* waiting for a worker, FIFO */
    cn__list aged;           /* every waiting job (queued or held in a lane), oldest first */
    cn__list done;           /* finished or dropped, for the loop */
    cn__lane cpu_lane;       /* Canteen's own CPU work (cn__to_thread_cpu) */
    uv_poll_t wake;          /* readable: wake_rfd was written (loop thread) */
    int wake_rfd, wake_wfd;  /* the same eventfd, or a pipe's two ends */
    atomic_bool signalled;   /* written to, and the loop has not yet read */
    uv_timer_t sweep;        /* drops jobs past the queue timeout (loop thread) */
    int sweep_state;
    unsigned open_handles;
    pthread_t *threads;
    unsigned nthreads;     /* started */
    unsigned running;      /* past their start-up, under mu */
    unsigned want_threads; /* to start (cn__pool_start) */
    int nice_delta;
    bool stopping;
    atomic_bool freeing; /* cn_job_cancelled: the app is being freed */
    uint64_t queue_max;  /* waiting jobs at most (0: no bound) */
    uint64_t timeout_ns; /* longest wait before a worker (0: none) */
    /* figures (under mu) */
    unsigned busy;
    uint64_t depth, held; /* waiting in the queue, in lanes */
    uint64_t queued, completed, cancelled, rejected, expired, route_waits;
    uint64_t wait_ns_total, wait_ns_max;
};

/* The job the calling worker runs, for cn_job_cancelled. */
static _Thread_local cn__job *current_job;
static _Thread_local cn__pool *current_pool;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the loop's wake-up ---- */

/* A wake descriptor: 0, or a negative errno-style code. */
static int wake_open(int *rfd, int *wfd)
{
#ifdef __linux__
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

    if (fd < 0)
        return -errno;
    *rfd = *wfd = fd;
#else
    uv_file fds[2];
    int rc = uv_pipe(fds, UV_NONBLOCK_PIPE, UV_NONBLOCK_PIPE); /* close-on-exec too */

    if (rc < 0)
        return rc;
    *rfd = fds[0];
    *wfd = fds[1];
#endif
    return 0;
}

static void wake_close(int rfd, int wfd)
{
    if (wfd >= 0 && wfd != rfd)
        close(wfd);
    if (rfd >= 0)
        close(rfd);
}

/*
 * Tell the loop to look at the pool (there is something in `done`, or a
 * sweep is wanted). Any thread, the loop's included; never with mu held.
 * One write until the loop has read it: later wakes find it still to come.
 */
static void wake_loop(cn__pool *p)
{
    uint64_t one = 1; /* an eventfd takes 8 bytes; a pipe, any */
    ssize_t r;

    if (atomic_exchange(&p->signalled, true))
        return;
    do
        r = write(p->wake_wfd, &one, sizeof one);
    while (r < 0 && errno == EINTR);
    /* EAGAIN (a full pipe): the loop has bytes to read already */
}

/*
 * wake_loop from a worker holding mu, after it put something in `done`.
 * A wake still to come covers it (the loop clears `signalled` before it
 * takes mu, so it will see what was put there under mu): no write, and mu
 * kept. Otherwise mu is let go for the write and taken again.
 */
static void wake_loop_held(cn__pool *p)
{
    if (atomic_load(&p->signalled))
        return;
    pthread_mutex_unlock(&p->mu);
    wake_loop(p);
    pthread_mutex_lock(&p->mu);
}

/* The loop's half: empty the descriptor, then let the next wake write. */
static void wake_drain(cn__pool *p)
{
    uint64_t buf[8];
    ssize_t r;

    do
        r = read(p->wake_rfd, buf, sizeof buf);
    while (r > 0 || (r < 0 && errno == EINTR));
    /* cleared before the loop looks under mu: whatever a waker put there
     * after this point, it writes again for */
    atomic_store(&p->signalled, false);
}

/* ---- waiting jobs (all under mu) ---- */

static void enqueue(cn__pool *p, cn__job *j)
{
    j->state = JOB_QUEUED;
    cn__list_push(&p->queue, &j->link);
    p->depth++;
    pthread_cond_signal(&p->cv);
}

/* One of the lane's jobs left the pool: the next one held there goes in. */
static void lane_release(cn__pool *p, cn__lane *lane)
{
    if (lane == NULL)
        return;
    lane->inflight--;
    if (!cn__list_empty(&lane->waiting) && lane->inflight < lane->limit) {
        cn__job *j = CN__CONTAINER_OF(lane->waiting.next, cn__job, link);
        cn__list_remove(&j->link);
        p->held--;
        lane->inflight++;
        enqueue(p, j);
    }
}

/* Take a waiting job out of wherever it waits, and out of `aged`. */
static void unwait(cn__pool *p, cn__job *j)
{
    cn__list_remove(&j->link);
    cn__list_remove(&j->age);
    if (j->state == JOB_QUEUED) {
        p->depth--;
        lane_release(p, j->lane);
    } else {
        p->held--;
    }
}

/* Finish a job without running it: done(status) follows from the loop. */
static void drop(cn__pool *p, cn__job *j, int status)
{
    unwait(p, j);
    j->state = JOB_DONE;
    j->status = status;
    if (status == CN_EEXPIRED)
        p->expired++;
    else
        p->cancelled++;
    cn__list_push(&p->done, &j->link);
}

static bool expired(const cn__pool *p, const cn__job *j, uint64_t now)
{
    return p->timeout_ns && now - j->queued_ns >= p->timeout_ns;
}

/* ---- workers ---- */

static void *worker(void *arg)
{
    cn__pool *p = arg;

    /* a per-thread nice value (Linux): below the loop thread */
    if (p->nice_delta)
        setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid),
                    getpriority(PRIO_PROCESS, 0) + p->nice_delta);
    current_pool = p;
    pthread_mutex_lock(&p->mu);
    p->running++;
    pthread_cond_signal(&p->ready_cv);
    for (;;) {
        cn__job *j;
        uint64_t wait;

        while (cn__list_empty(&p->queue) && !p->stopping)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->stopping)
            break;
        j = CN__CONTAINER_OF(p->queue.next, cn__job, link);
        if (expired(p, j, now_ns())) {
            /* the sweep timer has not come round to it yet: same outcome */
            drop(p, j, CN_EEXPIRED);
            wake_loop_held(p);
            continue;
        }
        cn__list_remove(&j->link);
        cn__list_remove(&j->age);
        p->depth--;
        j->state = JOB_RUNNING;
        j->started_ns = now_ns();
        wait = j->started_ns - j->queued_ns;
        p->wait_ns_total += wait;
        if (wait > p->wait_ns_max)
            p->wait_ns_max = wait;
        p->busy++;
        pthread_mutex_unlock(&p->mu);

        current_job = j;
        j->work(j);
        current_job = NULL;

        pthread_mutex_lock(&p->mu);
        p->busy--;
        p->completed++;
        lane_release(p, j->lane);
        j->state = JOB_DONE;
        j->status = 0;
        cn__list_push(&p->done, &j->link);
        /* j is the loop's from here: it may be gone once mu is let go */
        wake_loop_held(p);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ---- the loop side ---- */

static void deliver(cn__pool *p);

static void on_sweep(uv_timer_t *t);

/* Arm the sweep for the oldest waiting job's deadline, or let it idle.
 * Under mu, on the loop thread. */
static void sweep_start(cn__pool *p)
{
    cn__job *oldest;
    uint64_t now, due, ms;

    if (p->timeout_ns == 0 || cn__list_empty(&p->aged) || p->stopping) {
        if (p->sweep_state == SWEEP_ARMED)
            uv_timer_stop(&p->sweep);
        p->sweep_state = SWEEP_IDLE;
        return;
    }
    oldest = CN__CONTAINER_OF(p->aged.next, cn__job, age);
    now = now_ns();
    due = oldest->queued_ns + p->timeout_ns;
    /* whole milliseconds, rounded up: never early */
    ms = due > now ? (due - now + 999999) / 1000000 : 0;
    p->sweep_state = SWEEP_ARMED;
    uv_timer_start(&p->sweep, on_sweep, ms, 0);
}

static void on_sweep(uv_timer_t *t)
{
    cn__pool *p = t->data;
    uint64_t now = now_ns();

    pthread_mutex_lock(&p->mu);
    /* oldest first: stop at the first one still in time */
    while (!cn__list_empty(&p->aged)) {
        cn__job *j = CN__CONTAINER_OF(p->aged.next, cn__job, age);
        if (!expired(p, j, now))
            break;
        drop(p, j, CN_EEXPIRED);
    }
    p->sweep_state = SWEEP_IDLE;
    sweep_start(p);
    pthread_mutex_unlock(&p->mu);
    deliver(p);
}

/* Run the done callbacks of everything finished so far, in one go. */
static void deliver(cn__pool *p)
{
    cn__list batch;

    cn__list_init(&batch);
    pthread_mutex_lock(&p->mu);
    if (!cn__list_empty(&p->done)) {
        batch.next = p->done.next;
        batch.prev = p->done.prev;
        batch.next->prev = &batch;
        batch.prev->next = &batch;
        cn__list_init(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    while (!cn__list_empty(&batch)) {
        cn__job *j = CN__CONTAINER_OF(batch.next, cn__job, link);
        cn__list_remove(&j->link);
        j->done(j, j->status);
    }
}

static void on_wake(uv_poll_t *h, int status, int events)
{
    cn__pool *p = h->data;

    (void)status; /* an error on an eventfd: looking costs nothing */
    (void)events;
    wake_drain(p);
    pthread_mutex_lock(&p->mu);
    if (p->sweep_state == SWEEP_WANTED)
        sweep_start(p);
    pthread_mutex_unlock(&p->mu);
    /* sends coalesce: take everything finished so far */
    deliver(p);
}

/* The CPU lane's limit: the cores this process may run on (the affinity
 * mask, which a pinned server narrows), and no more than the workers. */
static unsigned cpu_lane_limit(unsigned threads)
{
    unsigned n = uv_available_parallelism();

    if (n == 0)
        n = 1;
    return threads > 0 && n > threads ? threads : n;
}

cn__pool *cn__pool_new(uv_loop_t *loop, unsigned threads, int nice_delta)
{
    cn__pool *p = calloc(1, sizeof(*p));

    if (p == NULL)
        return NULL;
    p->threads = calloc(threads ? threads : 1, sizeof(*p->threads));
    if (p->threads == NULL) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    pthread_cond_init(&p->ready_cv, NULL);
    cn__list_init(&p->queue);
    cn__list_init(&p->aged);
    cn__list_init(&p->done);
    cn__list_init(&p->cpu_lane.waiting);
    p->cpu_lane.limit = cpu_lane_limit(threads);
    p->nice_delta = nice_delta;
    p->want_threads = threads;
    atomic_init(&p->signalled, false);
    p->wake_rfd = p->wake_wfd = -1;
    if (wake_open(&p->wake_rfd, &p->wake_wfd) < 0 ||
        uv_poll_init(loop, &p->wake, p->wake_rfd) < 0) {
        wake_close(p->wake_rfd, p->wake_wfd);
        pthread_cond_destroy(&p->ready_cv);
        pthread_cond_destroy(&p->cv);
        pthread_mutex_destroy(&p->mu);
        free(p->threads);
        free(p);
        return NULL;
    }
    uv_poll_start(&p->wake, UV_READABLE, on_wake);
    uv_timer_init(loop, &p->sweep);
    p->wake.data = p->sweep.data = p;
    p->open_handles = 2;
    /* the pool alone must not keep the loop running */
    uv_unref((uv_handle_t *)&p->wake);
    uv_unref((uv_handle_t *)&p->sweep);
    return p;
}

int cn__pool_fork_child(cn__pool *p)
{
    int rfd = -1, wfd = -1, rc;

    /* the parent's descriptor is shared with the parent and every other
     * child: a wake meant for one loop could be read by another */
    rc = wake_open(&rfd, &wfd);
    if (rc < 0)
        return rc;
    /* onto the same numbers, so that the poll handle stays as it is: after
     * uv_loop_fork every watcher is registered anew on the next loop turn,
     * and that registration then finds this process's own descriptor */
    if (dup2(rfd, p->wake_rfd) < 0 || (wfd != rfd && dup2(wfd, p->wake_wfd) < 0)) {
        rc = -errno;
    } else {
        fcntl(p->wake_rfd, F_SETFD, FD_CLOEXEC);
        fcntl(p->wake_wfd, F_SETFD, FD_CLOEXEC);
        rc = 0;
    }
    wake_close(rfd, wfd);
    atomic_store(&p->signalled, false);
    return rc;
}

int cn__pool_wake_fd(const cn__pool *p)
{
    return p->wake_rfd;
}

void cn__pool_set_limits(cn__pool *p, unsigned queue_max, unsigned timeout_ms)
{
    pthread_mutex_lock(&p->mu);
    p->queue_max = queue_max;
    p->timeout_ns = (uint64_t)timeout_ms * 1000000u;
    pthread_mutex_unlock(&p->mu);
}

/* Returns once every started worker is running (libuv's threadpool does
 * the same): a thread's own start-up (its nice value, a sanitizer's set-up,
 * which allocates) is over before the first job, not in the middle of one. */
int cn__pool_start(cn__pool *p)
{
    if (p->nthreads > 0)
        return 0;
    for (unsigned i = 0; i < p->want_threads; i++) {
        if (pthread_create(&p->threads[i], NULL, worker, p) != 0)
            break;
        p->nthreads++;
    }
    pthread_mutex_lock(&p->mu);
    while (p->running < p->nthreads)
        pthread_cond_wait(&p->ready_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    return p->nthreads > 0 ? 0 : CN_EAGAIN;
}

static void on_handle_closed(uv_handle_t *h)
{
    cn__pool *p = h->data;

    if (--p->open_handles == 0) {
        /* the poll handle is closed: its descriptor may go */
        wake_close(p->wake_rfd, p->wake_wfd);
        free(p);
    }
}

static void loop_job_work(cn__job *j);
static void finish_loop_jobs(cn__list *list, bool ran, bool by_age);

void cn__pool_free(cn__pool *p)
{
    if (p == NULL)
        return;
    atomic_store(&p->freeing, true);
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    /* cn_app_pool_submit promises its done callback: give it to the jobs
     * finished too late for the loop and to those no worker took */
    finish_loop_jobs(&p->done, true, false);
    finish_loop_jobs(&p->aged, false, true);
    free(p->threads);
    pthread_cond_destroy(&p->ready_cv);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    /* the app runs the loop once more to deliver these closes */
    uv_close((uv_handle_t *)&p->sweep, on_handle_closed);
    uv_close((uv_handle_t *)&p->wake, on_handle_closed);
}

int cn__pool_submit(cn__pool *p, cn__job *j)
{
    cn__lane *lane = j->lane;
    bool wake = false;

    /* a pool used before cn__pool_start (the unit tests) starts here */
    if (p->nthreads == 0 && cn__pool_start(p) < 0)
        return CN_EAGAIN;
    pthread_mutex_lock(&p->mu);
    if (p->stopping) {
        pthread_mutex_unlock(&p->mu);
        return CN_ESTATE;
    }
    if (p->queue_max && p->depth + p->held >= p->queue_max) {
        p->rejected++;
        pthread_mutex_unlock(&p->mu);
        return CN_EAGAIN;
    }
    j->queued_ns = now_ns();
    j->started_ns = 0;
    j->status = 0;
    atomic_store(&j->cancelled, 0);
    cn__list_push(&p->aged, &j->age);
    p->queued++;
    if (lane && lane->inflight >= lane->limit) {
        j->state = JOB_HELD;
        cn__list_push(&lane->waiting, &j->link);
        p->held++;
        p->route_waits++;
    } else {
        if (lane)
            lane->inflight++;
        enqueue(p, j);
    }
    /* the loop's sweep must know of a deadline: ask for it once */
    if (p->timeout_ns && p->sweep_state == SWEEP_IDLE) {
        p->sweep_state = SWEEP_WANTED;
        wake = true;
    }
    pthread_mutex_unlock(&p->mu);
    if (wake)
        wake_loop(p);
    return 0;
}

int cn__pool_cancel(cn__pool *p, cn__job *j)
{
    int rc;

    pthread_mutex_lock(&p->mu);
    switch (j->state) {
    case JOB_QUEUED:
    case JOB_HELD:
        /* its done callback runs from the loop, like any other */
        drop(p, j, CN_ECANCELED);
        rc = 1; /* the loop is woken below, with mu let go */
        break;
    case JOB_RUNNING:
        atomic_store(&j->cancelled, 1);
        rc = CN_EBUSY;
        break;
    default:
        rc = CN_ENOENT;
        break;
    }
    pthread_mutex_unlock(&p->mu);
    if (rc == 1) {
        wake_loop(p);
        rc = 0;
    }
    return rc;
}

void cn__pool_stats(cn__pool *p, cn_pool_stats *out)
{
    pthread_mutex_lock(&p->mu);
    out->threads = p->want_threads; /* its size, started or not yet */
    out->busy = p->busy;
    out->queue_depth = p->depth;
    out->submitted = p->queued;
    out->completed = p->completed;
    out->cancelled = p->cancelled;
    out->started = p->completed + p->busy; /* every started job's wait is in the sum */
    out->wait_ms_sum = (double)p->wait_ns_total / 1e6;
    out->wait_ms_avg = out->started ? out->wait_ms_sum / (double)out->started : 0.0;
    out->wait_ms_max = (double)p->wait_ns_max / 1e6;
    out->rejected = p->rejected;
    out->expired = p->expired;
    out->route_waits = p->route_waits;
    out->route_waiting = p->held;
    pthread_mutex_unlock(&p->mu);
}

/* ---- cn_to_thread ---- */

typedef struct thread_call {
    cn__job job;
    cn__task *task;
    cn_task_fn fn;
    void *arg;
    int rc;
    bool finished;
} thread_call;

static void call_work(cn__job *j)
{
    thread_call *tc = CN__CONTAINER_OF(j, thread_call, job);
    tc->rc = tc->fn(tc->arg);
}

static void call_done(cn__job *j, int status)
{
    thread_call *tc = CN__CONTAINER_OF(j, thread_call, job);

    tc->finished = true;
    if (status < 0)
        tc->rc = status;
    cn__task_wake(tc->task, 0);
}

static void call_cancel(cn__task *t, void *arg)
{
    thread_call *tc = arg;

    (void)t;
    /* queued: dropped (call_done reports it); running: it ends first */
    cn__pool_cancel(cn__task_ext(tc->task, CN__EXT_POOL), &tc->job);
}

/* cn_to_thread's body: the job counts in `lane` (NULL: the task's own). */
static int to_thread(cn_task_fn fn, void *arg, bool cpu)
{
    cn__task *t = cn__task_current();
    thread_call tc = {.fn = fn, .arg = arg};
    cn__pool *p;
    int rc;

    if (t == NULL)
        return CN_ENOTCORO;
    if (fn == NULL)
        return CN_EINVAL;
    if (cn__task_is_cancelled(t))
        return CN_ECANCELED;
    p = cn__task_ext(t, CN__EXT_POOL);
    tc.task = t;
    tc.job.work = call_work;
    tc.job.done = call_done;
    /* its route's share of the pool, or the CPU lane */
    tc.job.lane = cpu ? &p->cpu_lane : cn__task_lane(t);
    rc = cn__pool_submit(p, &tc.job);
    if (rc < 0)
        return rc;
    cn__task_park(t, call_cancel, &tc);
    /* tc lives on this coroutine's stack: never leave before the job has */
    while (!tc.finished)
        cn__task_park_nocancel(t);
    return cn__task_is_cancelled(t) ? CN_ECANCELED : tc.rc;
}

int cn_to_thread(cn_task_fn fn, void *arg)
{
    return to_thread(fn, arg, false);
}

int cn__to_thread_cpu(cn_task_fn fn, void *arg)
{
    return to_thread(fn, arg, true);
}

/* ---- cn_app_pool_submit: a job with a loop-side completion ---- */

typedef struct loop_job {
    cn__job job;
    void (*work)(void *arg);
    void (*done)(void *arg, int status);
    void *arg;
} loop_job;

static void loop_job_work(cn__job *j)
{
    loop_job *lj = CN__CONTAINER_OF(j, loop_job, job);
    lj->work(lj->arg);
}

static void loop_job_done(cn__job *j, int status)
{
    loop_job *lj = CN__CONTAINER_OF(j, loop_job, job);
    void (*done)(void *, int) = lj->done;
    void *arg = lj->arg;

    free(lj);
    done(arg, status);
}

/* Complete the cn_app_pool_submit jobs on a list (linked by `link`, or by
 * `age` for the waiting ones) at free time. */
static void finish_loop_jobs(cn__list *list, bool ran, bool by_age)
{
    cn__list *it, *next;

    for (it = list->next; it != list; it = next) {
        cn__job *j =
            by_age ? CN__CONTAINER_OF(it, cn__job, age) : CN__CONTAINER_OF(it, cn__job, link);
        next = it->next;
        if (j->work != loop_job_work)
            continue;
        cn__list_remove(&j->link);
        cn__list_remove(&j->age);
        loop_job_done(j, ran ? j->status : CN_ECANCELED);
    }
}

int cn__pool_submit_fn(cn__pool *p, void (*work)(void *arg), void (*done)(void *arg, int status),
                       void *arg, bool cpu)
{
    loop_job *lj;
    int rc;

    if (work == NULL || done == NULL)
        return CN_EINVAL;
    lj = calloc(1, sizeof(*lj));
    if (lj == NULL)
        return CN_ENOMEM;
    lj->work = work;
    lj->done = done;
    lj->arg = arg;
    lj->job.work = loop_job_work;
    lj->job.done = loop_job_done;
    lj->job.lane = cpu ? &p->cpu_lane : NULL;
    rc = cn__pool_submit(p, &lj->job);
    if (rc < 0)
        free(lj);
    return rc;
}

/* ---- the cooperative check ---- */

int cn_job_cancelled(void)
{
    cn__job *j = current_job;
    cn__task *t;

    if (j != NULL)
        return atomic_load(&j->cancelled) || atomic_load(&current_pool->freeing);
    t = cn__task_current();
    if (t != NULL)
        return cn__task_is_cancelled(t) ? 1 : 0;
    return CN_ESTATE;
}
