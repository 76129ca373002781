/*
 * pool.h -- Canteen's own work-queue thread pool (not libuv's shared one):
 * sync routes and cn_to_thread run here. Workers never touch loop objects:
 * a finished job goes on a completion queue that the loop drains after a
 * uv_async_send (which coalesces, so every wake-up drains everything).
 */
#ifndef CN_POOL_H
#define CN_POOL_H

#include <stdint.h>
#include <uv.h>

#include "canteen.h"
#include "common.h"

typedef struct cn__pool cn__pool;
typedef struct cn__job cn__job;

struct cn__job {
    cn__list link;
    void (*work)(cn__job *j);             /* on a worker thread */
    void (*done)(cn__job *j, int status); /* on the loop: 0, or CN_ECANCELED if dropped */
    uint64_t queued_ns, started_ns;
    int state; /* private to the pool */
    int status;
};

/*
 * A pool of `threads` workers, not started: no thread exists until
 * cn__pool_start (or the first submit), so that a process can still fork
 * into workers after creating its app. NULL on failure. Loop thread.
 */
/* In a forked worker, after uv_loop_fork: a wake descriptor of its own.
 * 0 or CN_ENOMEM. */
int cn__pool_fork_child(cn__pool *p);

cn__pool *cn__pool_new(uv_loop_t *loop, unsigned threads, int nice_delta);

/* Start the threads (once; later calls do nothing): 0, or CN_EAGAIN when
 * not one could be created. Loop thread. */
int cn__pool_start(cn__pool *p);

/* Stop the workers (after the jobs they are running) and free the pool.
 * Queued jobs and finished ones the loop has not seen are completed with
 * CN_ECANCELED, on this thread, before it returns. */
void cn__pool_free(cn__pool *p);

/* Queue a job (FIFO). 0, CN_ESTATE when the pool is stopping, CN_EAGAIN
 * when its threads could not be started. */
int cn__pool_submit(cn__pool *p, cn__job *j);

/*
 * Drop a queued job: its done callback then runs with CN_ECANCELED from a
 * later loop callback, and returns 0. CN_EBUSY if it is already running
 * (it cannot be stopped: done follows when it ends); CN_ENOENT if done.
 */
int cn__pool_cancel(cn__pool *p, cn__job *j);

void cn__pool_stats(cn__pool *p, cn_pool_stats *out);

/* cn_app_pool_submit's body: a heap job that runs work on a worker, then
 * done on the loop (freed before done runs). */
int cn__pool_submit_fn(cn__pool *p, void (*work)(void *arg), void (*done)(void *arg, int status),
                       void *arg);

#endif
