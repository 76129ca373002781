/*
 * scheduler.h -- tasks, the run queue, park and wake, cancellation. It knows
 * nothing of HTTP: a root task is a function, a label for logs and an
 * opaque request pointer that the awaitables read back (their memory lives
 * in that request's arena). dispatch.c starts a root task per request;
 * app.c one per lifespan hook.
 *
 * A task is a coroutine plus its place in a task tree: cn_spawn adds
 * children to the running task. A task is complete when its function has
 * returned AND all its children are complete; only then is its owner told
 * (children may use the memory their parent's request owns).
 *
 * Everything here runs on the loop thread. Coroutines are resumed only by
 * the run queue's drain loop, which runs on the loop's own stack.
 */
#ifndef CN_SCHEDULER_H
#define CN_SCHEDULER_H

#include <uv.h>

#include "canteen.h"

typedef struct cn__sched cn__sched;
typedef struct cn_task cn__task; /* the public cn_task */

/* Called on the loop thread once a root task (and its children) finished,
 * with its function's result; the task is freed right after. */
typedef void (*cn__done_cb)(cn__task *t, int rc, void *arg);

struct cn__metrics;
/* `metrics` (may be NULL) hears about every slow coroutine step. */
cn__sched *cn__sched_new(uv_loop_t *loop, const cn_config *cfg, struct cn__metrics *metrics);

/* Opaque slots for the layers beside task (the pool, fetch), so that an
 * awaitable can find its machinery from the running task. */
enum { CN__EXT_POOL, CN__EXT_FETCH, CN__EXT_FDWAIT, CN__EXT_COUNT };
void cn__sched_set_ext(cn__sched *s, int slot, void *p);
void *cn__task_ext(const cn__task *t, int slot);
/* Every task must have completed. NULL is allowed. */
void cn__sched_free(cn__sched *s);

/* A root task to start. */
typedef struct cn__root {
    cn_task_fn fn;
    void *arg;
    const char *label;     /* "GET /users/{id}", for logs; kept, not copied */
    size_t stack_size;     /* 0: cn_config.stack_size */
    cn_req *req;           /* what cn__task_req answers (may be NULL); opaque here */
    struct cn__lane *lane; /* the pool lane of its jobs (cn_to_thread), or
                            * NULL; children inherit it; opaque here */
    cn__done_cb done;      /* may be NULL */
    void *done_arg;
} cn__root;

/*
 * Run r->fn(r->arg) in a new coroutine. It runs at once, before this
 * returns, unless a drain is already running further up the stack (then
 * right after the current task parks or ends): a function that never waits
 * has finished when this returns. `done` is called exactly once, possibly
 * before this returns. *out (may be NULL) gets the task, valid until done.
 * Returns 0, or a negative code when the task could not be started (then
 * `done` is not called): CN_EAGAIN when no coroutine stack can be mapped,
 * CN_ENOMEM.
 */
int cn__sched_start(cn__sched *s, const cn__root *r, cn__task **out);

/* Coroutines created and not yet returned to the stack pool. */
uint64_t cn__sched_live(const cn__sched *s);

/* Unmap the stacks the scheduler keeps for reuse (coro.h,
 * cn__stack_pool_drop_idle): the next tasks map fresh ones. Running tasks
 * keep theirs. Loop thread. */
void cn__sched_drop_idle_stacks(cn__sched *s);

/* ---- for the awaitables (task.c, pool, fetch) ---- */

/* The running task, or NULL outside a coroutine (the golden-rule check). */
cn__task *cn__task_current(void);

/* The loop, the request and the label ("GET /x") of a task. */
uv_loop_t *cn__task_loop(const cn__task *t);
cn_req *cn__task_req(const cn__task *t);
struct cn__lane *cn__task_lane(const cn__task *t);
const char *cn__task_label(const cn__task *t);
int cn__task_is_cancelled(const cn__task *t);

/*
 * Called when a parked task is cancelled, before it is woken with
 * CN_ECANCELED: stop whatever would wake it (a timer, a transfer).
 */
typedef void (*cn__cancel_fn)(cn__task *t, void *arg);

/*
 * Park the running task `t` until cn__task_wake. Returns the wake result,
 * or CN_ECANCELED at once (without parking) if t is already cancelled; a
 * cancel while parked calls on_cancel(t, arg) (may be NULL) and wakes t with
 * CN_ECANCELED.
 */
int cn__task_park(cn__task *t, cn__cancel_fn on_cancel, void *arg);

/* Park even if cancelled (a cancel merely wakes it with CN_ECANCELED):
 * for waiting out work that cannot be stopped (a running pool job). */
int cn__task_park_nocancel(cn__task *t);

/* Make a parked task runnable with `result`. Loop thread only; the task runs
 * from the run queue, never inside this call. No-op if t is not parked. */
void cn__task_wake(cn__task *t, int result);

/*
 * A timer owned by the task (initialised on first use, closed when the task
 * is freed). Its data field is the task.
 */
uv_timer_t *cn__task_timer(cn__task *t);

/* Queue the running task behind everything ready and the next I/O poll, and
 * park it there (cn_yield). Returns 0 or CN_ECANCELED. */
int cn__task_yield(cn__task *t);

/* Task tree (the public cn_spawn/cn_await/cn_gather/cn_wait_for). */
int cn__task_spawn(cn__task *parent, cn_task_fn fn, void *arg, cn__task **out);
/* Wait until every task in ts[0..n) (children of cur) has completed. A cancel
 * of cur cancels them and goes on waiting. Returns CN_ECANCELED if cur was
 * cancelled, else 0. */
int cn__task_wait_children(cn__task *cur, cn__task **ts, size_t n);
/* A completed child's result; frees it. */
int cn__task_reap(cn__task *child);
int cn__task_is_child_of(const cn__task *child, const cn__task *parent);
/*
 * Cancel t and all its descendants: whatever they are parked on returns
 * CN_ECANCELED. Their owner hears of it when they end, from a later loop
 * callback (never from inside this call). No-op once complete.
 */
void cn__task_cancel(cn__task *t);

/*
 * For a root task whose work is done but who goes on (to answer, then clean
 * up): children that were never awaited are reported and cancelled, as when
 * a function returns, and the running task `t` parks until every child has
 * ended. Returns CN_ECANCELED if t is cancelled, else 0.
 */
int cn__task_settle(cn__task *t);

/*
 * Clear t's cancellation, so that the cleanup after a cancelled request can
 * still await (roll a transaction back, say). Only for a task without
 * children (after cn__task_settle). A later cancel works as usual.
 */
void cn__task_shield(cn__task *t);

#endif
