/*
 * scheduler.h -- how a handler runs: the running task, park and wake, cancel.
 * The connection layer hands a matched request here and is called back
 * when the handler has returned; it never knows whether the handler ran
 * inline, in a coroutine or on the thread pool.
 */
#ifndef CN_SCHED_H
#define CN_SCHED_H

#include <uv.h>

#include "canteen.h"
#include "router.h"

typedef struct cn__sched cn__sched;

/* Called on the loop thread once the handler has returned with `rc`. */
typedef void (*cn__done_cb)(cn_req *req, int rc, void *arg);

cn__sched *cn__sched_new(uv_loop_t *loop, const cn_config *cfg);
/* All tasks must have finished. */
void cn__sched_free(cn__sched *s);

/*
 * Run route->fn(req, res) in the route's mode. `done` is called exactly once,
 * possibly before this returns (a handler that never waits). Returns 0, or
 * a negative code when the task could not be started (then `done` is not
 * called: CN_EAGAIN when no coroutine stack can be mapped, CN_ENOMEM).
 */
int cn__sched_start(cn__sched *s, cn_req *req, const cn__route *route, cn__done_cb done,
                    void *arg);

/*
 * Cancel the request's task: whatever it is parked on returns CN_ECANCELED.
 * `done` is still called when the handler returns. No-op if not running.
 */
void cn__sched_cancel(cn__sched *s, cn_req *req);

/* Coroutines created and not yet returned to the stack pool. */
uint64_t cn__sched_live(const cn__sched *s);

#endif
