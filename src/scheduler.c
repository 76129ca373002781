/*
 * scheduler.c -- tasks, the run queue, park/wake and cancellation.
 *
 * Each async request runs its handler as the root task of a tree; cn_spawn
 * adds children. Tasks are resumed only from drain(), on the loop's stack:
 * from cn__sched_start (so a handler that never waits is answered at once)
 * and from an idle handle that runs whenever the run queue is not empty.
 * Wakes only queue: nothing is ever resumed from inside a cancel or a wake,
 * so callers (the connection layer, timers) never see re-entry.
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "coro/coro.h"
#include "metrics.h"
#include "scheduler.h"

/* Stacks kept for reuse; more live coroutines are fine, they just unmap. */
#define STACK_POOL_KEEP 1024

struct cn__sched {
    uv_loop_t *loop;
    const cn_config *cfg;
    cn__stack_pool *stacks;
    cn__list runq;   /* ready to resume now */
    cn__list yieldq; /* ready after the next I/O poll (cn_yield) */
    uv_idle_t idle;  /* active while either queue has tasks */
    bool idle_on;
    bool draining;
    struct cn__metrics *metrics;
    void *ext[CN__EXT_COUNT];
};

struct cn_task {
    cn__sched *s;
    cn__coro *coro;
    cn_req *req;
    struct cn__lane *lane; /* its route's lane on the pool, or NULL */
    cn__task *parent;
    cn__list children; /* not yet freed */
    cn__list sibling;
    cn__list qlink; /* runq or yieldq */
    cn_task_fn fn;
    void *arg;
    cn__done_cb done;
    void *done_arg;
    const char *label;
    size_t stack_size;    /* of this task's coroutine; children get the same */
    int rc;               /* the function's result */
    int wake_result;      /* what park returns */
    unsigned waiting_for; /* children of an await/gather not complete yet */
    cn__cancel_fn on_cancel;
    void *cancel_arg;
    uv_timer_t timer;
    bool timer_inited;
    bool queued, parked, cancelled;
    bool fn_done;  /* function returned (coroutine freed) */
    bool complete; /* fn_done and every child complete */
    bool consumed; /* handed to an await: its awaiter frees it */
    bool waited;   /* its parent is parked waiting for it */
    bool orphan;   /* parent finished without awaiting it */
    bool settling; /* parked in cn__task_settle until its children are done */
};

static void on_idle(uv_idle_t *h);

cn__sched *cn__sched_new(uv_loop_t *loop, const cn_config *cfg, struct cn__metrics *metrics)
{
    cn__sched *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->stacks = cn__stack_pool_new(STACK_POOL_KEEP);
    if (s->stacks == NULL) {
        free(s);
        return NULL;
    }
    s->loop = loop;
    s->cfg = cfg;
    s->metrics = metrics;
    cn__list_init(&s->runq);
    cn__list_init(&s->yieldq);
    uv_idle_init(loop, &s->idle);
    s->idle.data = s;
    /* the idle handle must not keep the loop alive on its own */
    uv_unref((uv_handle_t *)&s->idle);
    return s;
}

void cn__sched_free(cn__sched *s)
{
    if (s == NULL)
        return;
    /* the idle handle belongs to the loop, which the app closes after us;
     * closing it here needs one more loop turn, which the app's teardown
     * already runs */
    if (!uv_is_closing((uv_handle_t *)&s->idle)) {
        uv_close((uv_handle_t *)&s->idle, NULL);
        uv_run(s->loop, UV_RUN_NOWAIT);
    }
    cn__stack_pool_free(s->stacks);
    free(s);
}

uint64_t cn__sched_live(const cn__sched *s)
{
    return cn__stack_pool_live(s->stacks);
}

void cn__sched_drop_idle_stacks(cn__sched *s)
{
    cn__stack_pool_drop_idle(s->stacks);
}

/* ---- run queue ---- */

static void want_idle(cn__sched *s)
{
    if (!s->idle_on) {
        uv_idle_start(&s->idle, on_idle);
        s->idle_on = true;
    }
}

static void push_runq(cn__task *t)
{
    if (t->queued)
        return;
    t->queued = true;
    cn__list_push(&t->s->runq, &t->qlink);
}

/* Ready to run: the drain loop in progress picks it up, else the idle handle. */
static void enqueue(cn__task *t)
{
    push_runq(t);
    if (!t->s->draining)
        want_idle(t->s);
}

static void task_fn_returned(cn__task *t);

static void run(cn__task *t)
{
    uint64_t t0 = uv_hrtime();
    int rc = cn__coro_resume(t->coro);

    /* a step that did not yield for long blocked everyone: say who */
    cn__metrics_step(t->s->metrics, t->label, t->req, uv_hrtime() - t0);
    if (rc == 1)
        task_fn_returned(t);
    else if (rc < 0)
        abort(); /* resumed from a coroutine or a finished one: a bug here */
}

static void drain(cn__sched *s)
{
    if (s->draining)
        return;
    s->draining = true;
    while (!cn__list_empty(&s->runq)) {
        cn__task *t = CN__CONTAINER_OF(s->runq.next, cn__task, qlink);
        cn__list_remove(&t->qlink);
        t->queued = false;
        run(t);
    }
    s->draining = false;
}

static void on_idle(uv_idle_t *h)
{
    cn__sched *s = h->data;

    /* tasks that yielded wait for one I/O poll: this is it */
    while (!cn__list_empty(&s->yieldq)) {
        cn__task *t = CN__CONTAINER_OF(s->yieldq.next, cn__task, qlink);
        cn__list_remove(&t->qlink);
        cn__task_wake(t, 0);
    }
    drain(s);
    if (cn__list_empty(&s->runq) && cn__list_empty(&s->yieldq)) {
        uv_idle_stop(&s->idle);
        s->idle_on = false;
    }
}

/* ---- task lifetime ---- */

static void coro_main(void *arg)
{
    cn__task *t = arg;

    t->rc = t->fn(t->arg);
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void task_free(cn__task *t)
{
    if (t->parent)
        cn__list_remove(&t->sibling);
    if (t->coro)
        cn__coro_free(t->coro);
    if (t->timer_inited) {
        uv_timer_stop(&t->timer);
        uv_close((uv_handle_t *)&t->timer, on_timer_closed);
    } else {
        free(t);
    }
}

static int task_new(cn__sched *s, cn__task *parent, size_t stack_size, cn__task **out)
{
    cn__task *t = calloc(1, sizeof(*t));
    int rc;

    if (t == NULL)
        return CN_ENOMEM;
    rc = cn__coro_new(s->stacks, stack_size, coro_main, t, &t->coro);
    if (rc < 0) {
        free(t);
        return rc;
    }
    t->s = s;
    t->stack_size = stack_size;
    cn__list_init(&t->children);
    cn__list_init(&t->sibling);
    cn__list_init(&t->qlink);
    if (parent) {
        t->parent = parent;
        t->req = parent->req;
        t->lane = parent->lane;
        t->label = parent->label;
        cn__list_push(&parent->children, &t->sibling);
        if (parent->cancelled)
            t->cancelled = true;
    }
    *out = t;
    return 0;
}

static void task_try_complete(cn__task *t);

/* A child completed: tell whoever cares. */
static void child_completed(cn__task *c)
{
    cn__task *p = c->parent;

    if (c->orphan) {
        /* nobody will await it: free it, and the parent may now be complete */
        task_free(c);
        if (p->settling && cn__list_empty(&p->children))
            cn__task_wake(p, 0);
        task_try_complete(p);
        return;
    }
    if (c->waited && p->waiting_for > 0 && --p->waiting_for == 0)
        cn__task_wake(p, 0);
}

static void task_try_complete(cn__task *t)
{
    if (t->complete || !t->fn_done || !cn__list_empty(&t->children))
        return;
    t->complete = true;
    if (t->parent) {
        child_completed(t);
        return;
    }
    /* the root: tell its owner, then let the task go */
    if (t->done)
        t->done(t, t->rc, t->done_arg);
    task_free(t);
}

/* Children nobody awaited: Python's "coroutine was never awaited". */
static void cancel_orphans(cn__task *t)
{
    cn__list *it, *next;

    for (it = t->children.next; it != &t->children; it = next) {
        cn__task *c = CN__CONTAINER_OF(it, cn__task, sibling);
        next = it->next;
        if (c->consumed)
            continue; /* cannot happen: an await consumes and waits */
        cn_req_log(t->req, CN_LOG_WARN, "task spawned by %s was never awaited; cancelling it",
                   t->label ? t->label : "a handler");
        c->orphan = true;
        if (c->complete)
            task_free(c);
        else
            cn__task_cancel(c);
    }
}

static void task_fn_returned(cn__task *t)
{
    t->fn_done = true;
    cn__coro_free(t->coro);
    t->coro = NULL;
    cancel_orphans(t);
    task_try_complete(t);
}

int cn__task_settle(cn__task *t)
{
    cancel_orphans(t);
    t->settling = true;
    while (!cn__list_empty(&t->children))
        cn__task_park_nocancel(t);
    t->settling = false;
    return t->cancelled ? CN_ECANCELED : 0;
}

void cn__task_shield(cn__task *t)
{
    t->cancelled = false;
}

/* ---- root tasks ---- */

int cn__sched_start(cn__sched *s, const cn__root *r, cn__task **out)
{
    cn__task *t;
    int rc;

    rc = task_new(s, NULL, r->stack_size ? r->stack_size : s->cfg->stack_size, &t);
    if (rc < 0)
        return rc;
    t->fn = r->fn;
    t->arg = r->arg;
    t->req = r->req;
    t->lane = r->lane;
    t->label = r->label;
    t->done = r->done;
    t->done_arg = r->done_arg;
    cn__coro_set_label(t->coro, r->label);
    if (out)
        *out = t;
    /* run it now: a handler that never waits is answered before we return
     * (if a drain is already running further up the stack, it runs it) */
    push_runq(t);
    drain(s);
    return 0;
}

void cn__task_cancel(cn__task *t)
{
    cn__list *it;

    if (t->complete)
        return;
    if (!t->cancelled) {
        t->cancelled = true;
        for (it = t->children.next; it != &t->children; it = it->next)
            cn__task_cancel(CN__CONTAINER_OF(it, cn__task, sibling));
    }
    if (t->parked) {
        cn__cancel_fn fn = t->on_cancel;
        t->on_cancel = NULL;
        if (fn)
            fn(t, t->cancel_arg);
        cn__task_wake(t, CN_ECANCELED);
    }
}

/* ---- park and wake ---- */

cn__task *cn__task_current(void)
{
    cn__coro *c = cn__coro_current();
    return c ? cn__coro_arg(c) : NULL;
}

uv_loop_t *cn__task_loop(const cn__task *t)
{
    return t->s->loop;
}

cn_req *cn__task_req(const cn__task *t)
{
    return t->req;
}

struct cn__lane *cn__task_lane(const cn__task *t)
{
    return t->lane;
}

const char *cn__task_label(const cn__task *t)
{
    return t->label;
}

int cn__task_is_cancelled(const cn__task *t)
{
    return t->cancelled;
}

int cn__task_park(cn__task *t, cn__cancel_fn on_cancel, void *arg)
{
    if (t->cancelled)
        return CN_ECANCELED;
    t->parked = true;
    t->on_cancel = on_cancel;
    t->cancel_arg = arg;
    cn__coro_yield();
    return t->wake_result;
}

int cn__task_park_nocancel(cn__task *t)
{
    t->parked = true;
    t->on_cancel = NULL;
    cn__coro_yield();
    return t->wake_result;
}

void cn__sched_set_ext(cn__sched *s, int slot, void *p)
{
    s->ext[slot] = p;
}

void *cn__task_ext(const cn__task *t, int slot)
{
    return t->s->ext[slot];
}

void cn__task_wake(cn__task *t, int result)
{
    if (!t->parked)
        return;
    t->parked = false;
    t->on_cancel = NULL;
    t->wake_result = result;
    enqueue(t);
}

uv_timer_t *cn__task_timer(cn__task *t)
{
    if (!t->timer_inited) {
        uv_timer_init(t->s->loop, &t->timer);
        t->timer.data = t;
        t->timer_inited = true;
    }
    return &t->timer;
}

static void unyield(cn__task *t, void *arg)
{
    (void)arg;
    cn__list_remove(&t->qlink);
    t->queued = false;
}

int cn__task_yield(cn__task *t)
{
    if (t->cancelled)
        return CN_ECANCELED;
    cn__list_push(&t->s->yieldq, &t->qlink);
    want_idle(t->s);
    /* parked with a hook that takes it off the yield queue on cancel; the
     * idle callback moves it to the run queue as a plain resume */
    t->parked = true;
    t->on_cancel = unyield;
    t->cancel_arg = NULL;
    t->wake_result = 0;
    cn__coro_yield();
    return t->wake_result;
}

/* ---- the task tree ---- */

int cn__task_spawn(cn__task *parent, cn_task_fn fn, void *arg, cn__task **out)
{
    cn__task *t;
    int rc;

    if (parent->cancelled)
        return CN_ECANCELED;
    /* a route's stack size applies to its whole task tree */
    rc = task_new(parent->s, parent, parent->stack_size, &t);
    if (rc < 0)
        return rc;
    t->fn = fn;
    t->arg = arg;
    cn__coro_set_label(t->coro, t->label);
    enqueue(t);
    *out = t;
    return 0;
}

int cn__task_is_child_of(const cn__task *child, const cn__task *parent)
{
    return child != NULL && child->parent == parent && !child->consumed;
}

int cn__task_wait_children(cn__task *cur, cn__task **ts, size_t n)
{
    bool cancelled_them = false;
    unsigned pending = 0;

    for (size_t i = 0; i < n; i++) {
        ts[i]->consumed = true;
        if (!ts[i]->complete) {
            ts[i]->waited = true;
            pending++;
        }
    }
    cur->waiting_for = pending;
    while (cur->waiting_for > 0) {
        if (cur->cancelled && !cancelled_them) {
            for (size_t i = 0; i < n; i++)
                cn__task_cancel(ts[i]);
            cancelled_them = true;
        }
        /* park without the early return: children must finish before the
         * memory they share with us goes away */
        cn__task_park_nocancel(cur);
    }
    return cur->cancelled ? CN_ECANCELED : 0;
}

int cn__task_reap(cn__task *child)
{
    int rc = child->rc;
    task_free(child);
    return rc;
}
