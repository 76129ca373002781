/*
 * pool.c -- a fixed set of worker threads over a FIFO job queue.
 *
 * Workers run at a lower scheduling priority than the loop thread (nice
 * +10 by default): when the server is confined to one core, CPU-bound jobs
 * then take the time the loop does not want instead of starving it.
 *
 * For the same reason a worker wakes the loop with a plain write to an
 * eventfd, after letting go of the mutex, and not with uv_async_send:
 * libuv (1.44) marks the handle busy around its write, and the loop spins
 * and sched_yield()s until the sender is done. A nice worker preempted in
 * that window, on a busy machine, held the loop for tens of milliseconds
 * (measured with bench/attacks/json_attack.py).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "pool.h"
#include "scheduler.h"

enum { JOB_QUEUED = 1, JOB_RUNNING, JOB_DONE };

struct cn__pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    cn__list queue; /* waiting jobs, FIFO */
    cn__list done;  /* finished or dropped, for the loop */
    uv_poll_t wake; /* on efd */
    int efd;
    atomic_bool signalled; /* efd written, the loop not yet there */
    pthread_t *threads;
    unsigned nthreads;     /* started */
    unsigned want_threads; /* to start (cn__pool_start) */
    int nice_delta;
    bool stopping;
    /* figures (under mu) */
    unsigned busy;
    uint64_t depth;
    uint64_t queued, completed, cancelled;
    uint64_t wait_ns_total, wait_ns_max;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Tell the loop there is something in `done` (any thread, mu not held). */
static void wake_loop(cn__pool *p)
{
    uint64_t one = 1;
    ssize_t r;

    if (atomic_exchange(&p->signalled, true))
        return; /* the loop has been told and has not looked yet */
    do
        r = write(p->efd, &one, sizeof one);
    while (r < 0 && errno == EINTR);
}

static void *worker(void *arg)
{
    cn__pool *p = arg;

    /* a per-thread nice value (Linux): below the loop thread */
    if (p->nice_delta)
        setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid),
                    getpriority(PRIO_PROCESS, 0) + p->nice_delta);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        cn__job *j;
        uint64_t wait;

        while (cn__list_empty(&p->queue) && !p->stopping)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->stopping)
            break;
        j = CN__CONTAINER_OF(p->queue.next, cn__job, link);
        cn__list_remove(&j->link);
        p->depth--;
        j->state = JOB_RUNNING;
        j->started_ns = now_ns();
        wait = j->started_ns - j->queued_ns;
        p->wait_ns_total += wait;
        if (wait > p->wait_ns_max)
            p->wait_ns_max = wait;
        p->busy++;
        pthread_mutex_unlock(&p->mu);

        j->work(j);

        pthread_mutex_lock(&p->mu);
        p->busy--;
        p->completed++;
        j->state = JOB_DONE;
        j->status = 0;
        cn__list_push(&p->done, &j->link);
        /* j is the loop's from here: it may be gone once mu is let go */
        pthread_mutex_unlock(&p->mu);
        wake_loop(p);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void on_wake(uv_poll_t *h, int status, int events)
{
    cn__pool *p = h->data;
    cn__list batch;
    uint64_t n;

    (void)status;
    (void)events;
    if (read(p->efd, &n, sizeof n) < 0 && errno != EAGAIN && errno != EINTR)
        return;
    /* cleared before the list is taken: a job pushed after this writes again */
    atomic_store(&p->signalled, false);
    /* take everything finished so far in one go: sends coalesce */
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
    cn__list_init(&p->queue);
    cn__list_init(&p->done);
    p->nice_delta = nice_delta;
    p->want_threads = threads;
    atomic_init(&p->signalled, false);
    p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->efd < 0 || uv_poll_init(loop, &p->wake, p->efd) < 0) {
        if (p->efd >= 0)
            close(p->efd);
        pthread_cond_destroy(&p->cv);
        pthread_mutex_destroy(&p->mu);
        free(p->threads);
        free(p);
        return NULL;
    }
    uv_poll_start(&p->wake, UV_READABLE, on_wake);
    p->wake.data = p;
    /* the pool alone must not keep the loop running */
    uv_unref((uv_handle_t *)&p->wake);
    return p;
}

int cn__pool_fork_child(cn__pool *p)
{
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

    if (fd < 0)
        return CN_ENOMEM;
    /* the same descriptor number, so the poll handle stays as it is; the
     * parent's eventfd would have been shared with every other worker */
    if (dup3(fd, p->efd, O_CLOEXEC) < 0) {
        close(fd);
        return CN_ENOMEM;
    }
    close(fd);
    atomic_store(&p->signalled, false);
    return 0;
}

int cn__pool_start(cn__pool *p)
{
    if (p->nthreads > 0)
        return 0;
    for (unsigned i = 0; i < p->want_threads; i++) {
        if (pthread_create(&p->threads[i], NULL, worker, p) != 0)
            break;
        p->nthreads++;
    }
    return p->nthreads > 0 ? 0 : CN_EAGAIN;
}

static void free_after_close(uv_handle_t *h)
{
    cn__pool *p = h->data;

    close(p->efd);
    free(p);
}

static void loop_job_work(cn__job *j);
static void finish_loop_jobs(cn__list *list, bool ran);

void cn__pool_free(cn__pool *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    /* cn_app_pool_submit promises its done callback: give it to the jobs
     * finished too late for the loop and to those no worker took */
    finish_loop_jobs(&p->done, true);
    finish_loop_jobs(&p->queue, false);
    free(p->threads);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    /* the app runs the loop once more to deliver this close */
    uv_close((uv_handle_t *)&p->wake, free_after_close);
}

int cn__pool_submit(cn__pool *p, cn__job *j)
{
    /* a pool used before cn__pool_start (the unit tests) starts here */
    if (p->nthreads == 0 && cn__pool_start(p) < 0)
        return CN_EAGAIN;
    pthread_mutex_lock(&p->mu);
    if (p->stopping) {
        pthread_mutex_unlock(&p->mu);
        return CN_ESTATE;
    }
    j->state = JOB_QUEUED;
    j->queued_ns = now_ns();
    j->started_ns = 0;
    cn__list_push(&p->queue, &j->link);
    p->depth++;
    p->queued++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

int cn__pool_cancel(cn__pool *p, cn__job *j)
{
    int rc;

    pthread_mutex_lock(&p->mu);
    switch (j->state) {
    case JOB_QUEUED:
        cn__list_remove(&j->link);
        p->depth--;
        j->state = JOB_DONE;
        j->status = CN_ECANCELED;
        p->cancelled++;
        /* its done callback runs from the loop, like any other */
        cn__list_push(&p->done, &j->link);
        wake_loop(p); /* the loop thread itself: mu is no lock against it */
        rc = 0;
        break;
    case JOB_RUNNING:
        rc = CN_EBUSY;
        break;
    default:
        rc = CN_ENOENT;
        break;
    }
    pthread_mutex_unlock(&p->mu);
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

int cn_to_thread(cn_task_fn fn, void *arg)
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
    rc = cn__pool_submit(p, &tc.job);
    if (rc < 0)
        return rc;
    cn__task_park(t, call_cancel, &tc);
    /* tc lives on this coroutine's stack: never leave before the job has */
    while (!tc.finished)
        cn__task_park_nocancel(t);
    return cn__task_is_cancelled(t) ? CN_ECANCELED : tc.rc;
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

static void finish_loop_jobs(cn__list *list, bool ran)
{
    cn__list *it, *next;

    for (it = list->next; it != list; it = next) {
        cn__job *j = CN__CONTAINER_OF(it, cn__job, link);
        next = it->next;
        if (j->work != loop_job_work)
            continue;
        cn__list_remove(&j->link);
        loop_job_done(j, ran ? j->status : CN_ECANCELED);
    }
}

int cn__pool_submit_fn(cn__pool *p, void (*work)(void *arg), void (*done)(void *arg, int status),
                       void *arg)
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
    rc = cn__pool_submit(p, &lj->job);
    if (rc < 0)
        free(lj);
    return rc;
}
