/*
 * fdwait.c -- cn_wait_fd: park a task until a file descriptor is ready.
 *
 * libuv allows one active poll handle per socket, so each loop keeps a
 * registry, indexed by fd, of the fds tasks are waiting on. One entry holds
 * one uv_poll_t watching the union of its waiters' events; a wake-up goes
 * only to the waiters whose events fired. When the last waiter leaves, the
 * poll is stopped (which is what lets the caller close the fd at once, per
 * libuv's rules) and closed; the entry's memory goes in the close callback.
 * A later wait on the same fd gets a fresh entry.
 *
 * Each waiter lives on its task's stack: it is unlinked before the task is
 * woken (by readiness, its timer, or a cancel), so nothing points at it once
 * cn_wait_fd returns.
 */
#include <poll.h>
#include <stdlib.h>

#include "canteen.h"
#include "common.h"
#include "fdwait.h"
#include "scheduler.h"

typedef struct entry {
    uv_poll_t poll;
    cn__fdwait *reg;
    int fd;
    int watching; /* UV_ events the poll handle was last started with */
    cn__list waiters;
} entry;

typedef struct waiter {
    cn__list link;
    cn__task *task;
    entry *e;
    int events; /* asked for */
} waiter;

struct cn__fdwait {
    uv_loop_t *loop;
    entry **by_fd;
    size_t cap;
};

cn__fdwait *cn__fdwait_new(uv_loop_t *loop)
{
    cn__fdwait *w = calloc(1, sizeof(*w));

    if (w)
        w->loop = loop;
    return w;
}

void cn__fdwait_free(cn__fdwait *w)
{
    if (w == NULL)
        return;
    free(w->by_fd);
    free(w);
}

static void on_entry_closed(uv_handle_t *h)
{
    free(h->data);
}

/* The events the entry's waiters want, as libuv flags. */
static int wanted(const entry *e)
{
    int ev = 0;

    for (cn__list *it = e->waiters.next; it != &e->waiters; it = it->next) {
        const waiter *wt = CN__CONTAINER_OF(it, waiter, link);
        if (wt->events & CN_READABLE)
            ev |= UV_READABLE;
        if (wt->events & CN_WRITABLE)
            ev |= UV_WRITABLE;
    }
    return ev;
}

static void on_poll(uv_poll_t *p, int status, int events);

/* Re-arm the poll for what is still wanted, or retire the entry. */
static void refresh(entry *e)
{
    int ev = wanted(e);

    if (ev == 0) {
        /* stopped now: from here on the caller may close the fd */
        uv_poll_stop(&e->poll);
        e->reg->by_fd[e->fd] = NULL;
        uv_close((uv_handle_t *)&e->poll, on_entry_closed);
        return;
    }
    if (ev != e->watching) {
        e->watching = ev;
        uv_poll_start(&e->poll, ev, on_poll);
    }
}

static void leave(waiter *wt)
{
    entry *e = wt->e;

    cn__list_remove(&wt->link);
    wt->e = NULL;
    refresh(e);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    entry *e = p->data;
    int fired = 0;
    cn__list *it, *next;

    if (status < 0) {
        /* the fd is unusable (EBADF...): every waiter hears it */
        fired = -1;
    } else {
        if (events & (UV_READABLE | UV_DISCONNECT))
            fired |= CN_READABLE;
        if (events & UV_WRITABLE)
            fired |= CN_WRITABLE;
    }
    for (it = e->waiters.next; it != &e->waiters; it = next) {
        waiter *wt = CN__CONTAINER_OF(it, waiter, link);
        int got = fired < 0 ? 0 : (fired & wt->events);
        next = it->next;
        if (fired >= 0 && got == 0)
            continue; /* not what this one waits for */
        cn__list_remove(&wt->link);
        wt->e = NULL;
        uv_timer_stop(cn__task_timer(wt->task));
        cn__task_wake(wt->task, fired < 0 ? status : got);
    }
    refresh(e);
}

/* The task's timer points at the waiter while it waits (as cn_wait_for
 * borrows it); cn_wait_fd gives it back to the task before returning. */
static void on_timeout(uv_timer_t *t)
{
    waiter *wt = t->data;

    if (wt->e)
        leave(wt);
    cn__task_wake(wt->task, CN_ETIMEDOUT);
}

static void on_cancel(cn__task *t, void *arg)
{
    waiter *wt = arg;

    uv_timer_stop(cn__task_timer(t));
    if (wt->e)
        leave(wt);
}

static int get_entry(cn__fdwait *reg, int fd, entry **out)
{
    entry *e;
    int rc;

    if ((size_t)fd >= reg->cap) {
        size_t cap = reg->cap ? reg->cap : 64;
        entry **grown;
        while (cap <= (size_t)fd)
            cap *= 2;
        grown = realloc(reg->by_fd, cap * sizeof(*grown));
        if (grown == NULL)
            return CN_ENOMEM;
        for (size_t i = reg->cap; i < cap; i++)
            grown[i] = NULL;
        reg->by_fd = grown;
        reg->cap = cap;
    }
    if (reg->by_fd[fd]) {
        *out = reg->by_fd[fd];
        return 0;
    }
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return CN_ENOMEM;
    rc = uv_poll_init_socket(reg->loop, &e->poll, fd);
    if (rc < 0) {
        free(e);
        return rc; /* UV_EEXIST: the loop already polls it */
    }
    e->poll.data = e;
    e->reg = reg;
    e->fd = fd;
    cn__list_init(&e->waiters);
    reg->by_fd[fd] = e;
    *out = e;
    return 0;
}

/* Ready now? The events of `want` that poll(2) reports, without waiting. */
static int ready_now(int fd, int want)
{
    struct pollfd p = {.fd = fd, .events = 0};
    int got = 0;

    if (want & CN_READABLE)
        p.events |= POLLIN;
    if (want & CN_WRITABLE)
        p.events |= POLLOUT;
    if (poll(&p, 1, 0) != 1)
        return 0;
    if (p.revents & POLLNVAL)
        return UV_EBADF;
    if (p.revents & (POLLERR | POLLHUP))
        return want;
    if (p.revents & POLLIN)
        got |= CN_READABLE;
    if (p.revents & POLLOUT)
        got |= CN_WRITABLE;
    return got & want;
}

int cn_wait_fd(int fd, int events, int64_t timeout_ms)
{
    cn__task *t = cn__task_current();
    waiter wt = {0};
    int rc;

    if (t == NULL)
        return CN_ENOTCORO;
    if (fd < 0 || events == 0 || (events & ~(CN_READABLE | CN_WRITABLE)))
        return CN_EINVAL;
    if (cn__task_is_cancelled(t))
        return CN_ECANCELED;
    rc = ready_now(fd, events);
    if (rc != 0)
        return rc;
    if (timeout_ms == 0)
        return CN_ETIMEDOUT;
    rc = get_entry(cn__task_ext(t, CN__EXT_FDWAIT), fd, &wt.e);
    if (rc < 0)
        return rc;
    wt.task = t;
    wt.events = events;
    cn__list_push(&wt.e->waiters, &wt.link);
    refresh(wt.e);
    if (timeout_ms > 0) {
        uv_timer_t *timer = cn__task_timer(t);
        timer->data = &wt;
        uv_update_time(timer->loop);
        uv_timer_start(timer, on_timeout, (uint64_t)timeout_ms, 0);
    }
    rc = cn__task_park(t, on_cancel, &wt);
    uv_timer_stop(cn__task_timer(t));
    cn__task_timer(t)->data = t;
    /* a cancel or a timeout has already taken the waiter out (on_cancel);
     * a readiness wake-up did so in on_poll */
    if (wt.e)
        leave(&wt);
    return rc;
}
