/*
 * pool.h -- Canteen's own work-queue thread pool (not libuv's shared one):
 * sync routes and cn_to_thread run here. Workers never touch loop objects:
 * a finished job goes on a completion queue that the loop drains when the
 * pool's wake descriptor (an eventfd the loop polls) turns readable. Wakes
 * coalesce, so every wake-up drains everything; none is a uv_async_send
 * (pool.c says why).
 */
#ifndef CN_POOL_H
#define CN_POOL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "canteen.h"
#include "common.h"

typedef struct cn__pool cn__pool;
typedef struct cn__job cn__job;

struct cn__job {
    cn__list link;                        /* in the queue, a lane or the done list */
    cn__list age;                         /* waiting jobs, oldest first (private) */
    void (*work)(cn__job *j);             /* on a worker thread */
    void (*done)(cn__job *j, int status); /* on the loop: 0, or CN_ECANCELED if
                                           * dropped, CN_EEXPIRED if it waited
                                           * past the queue timeout */
    cn__lane *lane;                       /* its route's lane, or NULL (set
                                           * before submit) */
    uint64_t queued_ns, started_ns;
    int state; /* private to the pool */
    int status;
    atomic_int cancelled; /* set while it runs: cn_job_cancelled() */
};

/*
 * A pool of `threads` workers, not started: no thread exists until
 * cn__pool_start (or the first submit), so that a process can still fork
 * into workers after creating its app. NULL on failure. Loop thread.
 */
cn__pool *cn__pool_new(uv_loop_t *loop, unsigned threads, int nice_delta);

/*
 * In a process forked from the one that made the pool, after
 * uv_loop_fork and before the loop runs again: a wake descriptor of its
 * own, under the same number (the inherited one is the parent's, and every
 * sibling's). 0, or a negative errno (UV_EMFILE...). Before any thread of
 * the pool is started in this process.
 */
int cn__pool_fork_child(cn__pool *p);

/* The descriptor the loop polls for wakes (the tests compare processes'). */
int cn__pool_wake_fd(const cn__pool *p);

/* Start the threads (once; later calls do nothing): 0, or CN_EAGAIN when
 * not one could be created. Loop thread. */
int cn__pool_start(cn__pool *p);

/* Stop the workers (after the jobs they are running) and free the pool.
 * Queued jobs and finished ones the loop has not seen are completed with
 * CN_ECANCELED, on this thread, before it returns. */
void cn__pool_free(cn__pool *p);

/*
 * The pool's bounds: at most queue_max jobs waiting at once (in the queue
 * and in lanes; 0: no bound), and at most timeout_ms waiting before a
 * worker takes a job (0: no limit); a job past it is dropped unrun and
 * done with CN_EEXPIRED, within a few ms of its deadline even while every
 * worker is busy (a loop timer). A new pool has neither. Loop thread,
 * before the first submit.
 */
void cn__pool_set_limits(cn__pool *p, unsigned queue_max, unsigned timeout_ms);

/*
 * Queue a job (FIFO). With j->lane set, a lane at its limit keeps the job
 * waiting in the lane (no worker held) until one of the lane's jobs ends.
 * 0, CN_ESTATE when the pool is stopping, CN_EAGAIN when queue_max jobs
 * are waiting already (it is not queued; counted as rejected) or when the
 * threads could not be started. Any thread.
 */
int cn__pool_submit(cn__pool *p, cn__job *j);

/*
 * Drop a waiting job (queued, or held in its lane): its done callback then
 * runs with CN_ECANCELED from a later loop callback, and returns 0.
 * CN_EBUSY if it is already running (it cannot be stopped, but its
 * `cancelled` flag is set for cn_job_cancelled: done follows when it
 * ends); CN_ENOENT if done.
 */
int cn__pool_cancel(cn__pool *p, cn__job *j);

void cn__pool_stats(cn__pool *p, cn_pool_stats *out);

/* cn_app_pool_submit's body: a heap job that runs work on a worker, then
 * done on the loop (freed before done runs); with cpu, in the CPU lane. */
int cn__pool_submit_fn(cn__pool *p, void (*work)(void *arg), void (*done)(void *arg, int status),
                       void *arg, bool cpu);

/*
 * The CPU lane: Canteen's own CPU-bound work off the loop (parsing,
 * printing and deleting big JSON, compressing big bodies) runs in one
 * lane whose limit is the number of cores the process may use
 * (uv_available_parallelism), whatever the route. More of it at once
 * would not finish sooner, and it would take workers from the sync
 * routes; and with many such jobs runnable, a worker preempted while it
 * holds a lock the loop then takes (malloc's arena lock, the kernel's
 * mmap lock) keeps the loop waiting for its next time slice, behind all
 * the others: 24 concurrent 1 MiB JSON echoes delayed /health by up to
 * 120 ms that way (bench/attacks/run json).
 *
 * cn__to_thread_cpu is cn_to_thread with its job in that lane.
 */
int cn__to_thread_cpu(cn_task_fn fn, void *arg);

#endif
