/*
 * depends.c -- dependencies (canteen/depends.h): resolved once per request,
 * shared by everyone who asks, cleaned up in reverse order after the
 * response.
 *
 * Each dependency asked for gets an entry in the request's arena. While
 * its resolver runs (it may await), a second asker parks on the entry
 * until the result is in, so two tasks of one request never resolve the
 * same dependency twice. Entries that resolved are also kept in a second
 * list, newest first: the order their cleanups run in.
 */
#include <string.h>

#include "common.h"
#include "depends.h"
#include "req.h"
#include "scheduler.h"

typedef struct cn__dep_entry {
    struct cn__dep_entry *next;          /* every entry, newest first */
    struct cn__dep_entry *next_resolved; /* the resolved ones, newest first */
    const cn_dep *dep;
    void *value;
    int rc;
    bool done;
    cn__list waiters; /* askers parked until done */
} dep_entry;

typedef struct waiter {
    cn__list link;
    cn__task *task;
} waiter;

static dep_entry *find(const cn_req *req, const cn_dep *dep)
{
    for (dep_entry *e = req->deps; e; e = e->next)
        if (e->dep == dep)
            return e;
    return NULL;
}

static void stop_waiting(cn__task *t, void *arg)
{
    (void)t;
    cn__list_remove(&((waiter *)arg)->link);
}

/* Park until another task's resolution of e is done. */
static int wait_for(cn__task *t, dep_entry *e)
{
    waiter w = {.task = t};
    int rc = 0;

    cn__list_push(&e->waiters, &w.link);
    while (!e->done && rc == 0)
        rc = cn__task_park(t, stop_waiting, &w);
    cn__list_remove(&w.link);
    return rc;
}

static int resolve(cn_req *req, cn__task *t, const cn_dep *dep, void **value)
{
    dep_entry *e = cn_req_alloc(req, sizeof(*e));
    void *v = NULL;

    (void)t;
    if (e == NULL)
        return CN_ENOMEM;
    memset(e, 0, sizeof(*e));
    e->dep = dep;
    cn__list_init(&e->waiters);
    e->next = req->deps;
    req->deps = e;
    e->rc = dep->resolve(req, &req->res, dep->data, &v);
    if (e->rc > 0)
        e->rc = CN_EINVAL; /* "non-zero fails": a positive result is no value */
    e->done = true;
    if (e->rc == 0) {
        e->value = v;
        e->next_resolved = req->resolved;
        req->resolved = e;
        *value = v;
    }
    while (!cn__list_empty(&e->waiters)) {
        waiter *w = CN__CONTAINER_OF(e->waiters.next, waiter, link);
        cn__list_remove(&w->link);
        cn__task_wake(w->task, 0);
    }
    return e->rc;
}

int cn_depends(cn_req *req, const cn_dep *dep, void **value)
{
    dep_entry *e;
    cn__task *t;
    int rc;

    if (req == NULL || dep == NULL || dep->resolve == NULL || value == NULL)
        return CN_EINVAL;
    /* after the response the cleanups have run: values are gone, and a new
     * one would never be cleaned up (a background task must not ask) */
    if (req->deps_closed)
        return CN_ESTATE;
    e = find(req, dep);
    if (e && e->done) {
        if (e->rc == 0)
            *value = e->value;
        return e->rc;
    }
    t = cn__task_current();
    if (t == NULL)
        return CN_ENOTCORO;
    if (cn__task_is_cancelled(t))
        return CN_ECANCELED;
    if (e == NULL)
        return resolve(req, t, dep, value);
    rc = wait_for(t, e);
    if (rc < 0)
        return rc;
    if (e->rc == 0)
        *value = e->value;
    return e->rc;
}

void *cn_req_dep(const cn_req *req, const char *name)
{
    if (req == NULL || name == NULL || req->deps_closed)
        return NULL;
    for (const dep_entry *e = req->resolved; e; e = e->next_resolved)
        if (e->dep->name && strcmp(e->dep->name, name) == 0)
            return e->value;
    return NULL;
}

void cn__deps_cleanup(cn_req *req)
{
    dep_entry *e;

    req->deps_closed = true;
    while ((e = req->resolved) != NULL) {
        req->resolved = e->next_resolved;
        if (e->dep->cleanup)
            e->dep->cleanup(req, e->value, e->dep->data);
    }
}
