/*
 * task.c -- the awaitables handlers call: sleep, yield, spawn, await,
 * gather, wait_for. Each checks the golden rule first: outside a coroutine
 * it returns CN_ENOTCORO instead of parking a thread that has nothing to
 * come back to.
 */
#include "common.h"
#include "scheduler.h"

static void on_sleep_timer(uv_timer_t *timer)
{
    cn__task_wake(timer->data, 0);
}

static void stop_timer(cn__task *t, void *arg)
{
    (void)arg;
    uv_timer_stop(cn__task_timer(t));
}

/*
 * Start a task's timer `ms` from now. libuv counts from the loop's time, read
 * once when the turn of the loop began; a coroutine resumed late in a long
 * turn would then wake before `ms` had passed. So read the clock again first.
 */
static void timer_start(uv_timer_t *timer, uv_timer_cb cb, int64_t ms)
{
    uv_update_time(timer->loop);
    uv_timer_start(timer, cb, (uint64_t)ms, 0);
}

int cn_sleep(int64_t ms)
{
    cn__task *t = cn__task_current();

    if (t == NULL)
        return CN_ENOTCORO;
    if (ms < 0)
        return CN_EINVAL;
    if (cn__task_is_cancelled(t))
        return CN_ECANCELED;
    timer_start(cn__task_timer(t), on_sleep_timer, ms);
    return cn__task_park(t, stop_timer, NULL);
}

int cn_yield(void)
{
    cn__task *t = cn__task_current();

    if (t == NULL)
        return CN_ENOTCORO;
    return cn__task_yield(t);
}

int cn_spawn(cn_task_fn fn, void *arg, cn_task **out)
{
    cn__task *t = cn__task_current();

    if (t == NULL)
        return CN_ENOTCORO;
    if (fn == NULL || out == NULL)
        return CN_EINVAL;
    return cn__task_spawn(t, fn, arg, out);
}

int cn_gather(cn_task **tasks, size_t n, int *results)
{
    cn__task *cur = cn__task_current();
    int rc, first = 0;

    if (cur == NULL)
        return CN_ENOTCORO;
    if (n > 0 && tasks == NULL)
        return CN_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!cn__task_is_child_of(tasks[i], cur))
            return CN_EINVAL;
        for (size_t j = 0; j < i; j++)
            if (tasks[j] == tasks[i])
                return CN_EINVAL;
    }
    rc = cn__task_wait_children(cur, tasks, n);
    for (size_t i = 0; i < n; i++) {
        int r = cn__task_reap(tasks[i]);
        if (results)
            results[i] = r;
        if (r < 0 && first == 0)
            first = r;
    }
    return rc < 0 ? rc : first;
}

int cn_await(cn_task *t)
{
    cn__task *cur = cn__task_current();
    int rc, r;

    if (cur == NULL)
        return CN_ENOTCORO;
    if (!cn__task_is_child_of(t, cur))
        return CN_EINVAL;
    rc = cn__task_wait_children(cur, &t, 1);
    r = cn__task_reap(t);
    return rc < 0 ? rc : r;
}

/* wait_for borrows the awaiting task's timer; its data points here meanwhile */
typedef struct wait_ctx {
    cn__task *child;
    bool timed_out;
} wait_ctx;

static void on_wait_timeout(uv_timer_t *timer)
{
    wait_ctx *w = timer->data;

    w->timed_out = true;
    cn__task_cancel(w->child);
}

int cn_wait_for(cn_task *t, int64_t timeout_ms)
{
    cn__task *cur = cn__task_current();
    wait_ctx w = {t, false};
    uv_timer_t *timer;
    int rc, r;

    if (cur == NULL)
        return CN_ENOTCORO;
    if (!cn__task_is_child_of(t, cur) || timeout_ms < 0)
        return CN_EINVAL;
    timer = cn__task_timer(cur);
    timer->data = &w;
    timer_start(timer, on_wait_timeout, timeout_ms);
    rc = cn__task_wait_children(cur, &t, 1);
    uv_timer_stop(timer);
    timer->data = cur;
    r = cn__task_reap(t);
    if (rc < 0)
        return rc;
    return w.timed_out ? CN_ETIMEDOUT : r;
}

int cn_task_cancelled(void)
{
    cn__task *t = cn__task_current();

    if (t == NULL)
        return CN_ENOTCORO;
    return cn__task_is_cancelled(t) ? 1 : 0;
}

cn_req *cn_req_current(void)
{
    cn__task *t = cn__task_current();

    return t ? cn__task_req(t) : NULL;
}

int cn_cancelled(void)
{
    return cn_task_cancelled();
}

cn_req *cn_current_req(void)
{
    return cn_req_current();
}
