/*
 * future.c -- cn_future: a one-shot result that loop-side code delivers and
 * one task waits for (asyncio.Future, without callbacks).
 *
 * The pieces every loop-driven awaitable needs, once: park with a timeout,
 * wake with a result, and on a cancel or a timeout tell the resolving side
 * to forget the future before the waiter moves on -- so that an extension
 * (the PostgreSQL pool, a user's own client library) never touches the
 * scheduler itself.
 */
#include <stdlib.h>

#include "canteen.h"
#include "common.h"
#include "scheduler.h"

enum { F_PENDING, F_RESOLVED, F_ABANDONED };

struct cn_future {
    int state;
    int result; /* the resolution, or the reason it was abandoned */
    cn__task *waiter;
    cn_future_abandon_fn on_abandon;
    void *abandon_arg;
};

cn_future *cn_future_new(void)
{
    cn_future *f = calloc(1, sizeof(*f));

    if (f)
        f->state = F_PENDING;
    return f;
}

void cn_future_free(cn_future *f)
{
    free(f);
}

void cn_future_on_abandon(cn_future *f, cn_future_abandon_fn fn, void *arg)
{
    if (f == NULL)
        return;
    f->on_abandon = fn;
    f->abandon_arg = arg;
}

int cn_future_done(const cn_future *f)
{
    return f != NULL && f->state != F_PENDING;
}

/* The wait ends without a result: the resolving side forgets f first. */
static void abandon(cn_future *f, int reason)
{
    cn_future_abandon_fn fn = f->on_abandon;

    f->state = F_ABANDONED;
    f->result = reason;
    f->on_abandon = NULL;
    if (fn)
        fn(f, reason, f->abandon_arg);
}

int cn_future_resolve(cn_future *f, int result)
{
    if (f == NULL)
        return CN_EINVAL;
    if (f->state != F_PENDING)
        return CN_ESTATE;
    f->state = F_RESOLVED;
    f->result = result;
    if (f->waiter)
        cn__task_wake(f->waiter, result);
    return 0;
}

static void on_cancel(cn__task *t, void *arg)
{
    (void)t;
    abandon(arg, CN_ECANCELED);
}

/* The waiter's timer points at the future while it waits. */
static void on_timeout(uv_timer_t *timer)
{
    cn_future *f = timer->data;
    cn__task *t = f->waiter;

    abandon(f, CN_ETIMEDOUT);
    cn__task_wake(t, CN_ETIMEDOUT);
}

int cn_future_wait(cn_future *f, int64_t timeout_ms)
{
    cn__task *t = cn__task_current();
    uv_timer_t *timer = NULL;

    if (t == NULL)
        return CN_ENOTCORO;
    if (f == NULL)
        return CN_EINVAL;
    if (f->state != F_PENDING)
        return f->result;
    if (f->waiter)
        return CN_EBUSY;
    if (cn__task_is_cancelled(t)) {
        abandon(f, CN_ECANCELED);
        return CN_ECANCELED;
    }
    if (timeout_ms == 0) {
        abandon(f, CN_ETIMEDOUT);
        return CN_ETIMEDOUT;
    }
    f->waiter = t;
    if (timeout_ms > 0) {
        timer = cn__task_timer(t);
        timer->data = f;
        uv_update_time(timer->loop);
        uv_timer_start(timer, on_timeout, (uint64_t)timeout_ms, 0);
    }
    cn__task_park(t, on_cancel, f);
    if (timer) {
        uv_timer_stop(timer);
        timer->data = t;
    }
    f->waiter = NULL;
    return f->result;
}
