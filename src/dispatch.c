/*
 * dispatch.c -- how a request is run: the app's middleware, the route's
 * outcome, the router's middleware, the dependencies, the handler in the
 * route's mode; then the response handed back to its maker; then the
 * dependency cleanups and the background tasks.
 *
 * Everything runs inside one root task per request (a coroutine on the
 * loop): the chain of middleware calls nests on its stack, an async
 * route's handler runs at the bottom of it, a sync route's goes to the pool
 * through cn_to_thread, so that its request waits on the pool the way any
 * awaitable waits and a cancel reaches it by the same path. Whatever a
 * level leaves behind (an error code, a stream not ended, no response at
 * all) is turned into a response at that level, and only there.
 *
 * Once answered, the request is detached from its connection: the task
 * goes on with cleanups and background tasks that the client leaving does
 * not cancel, and the graceful stop waits for it (cn__dispatch_idle).
 *
 * A request that matches no route (404, 405, 422 and 400 from the router)
 * is answered at once, without a task, when the app has no middleware.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "depends.h"
#include "dispatch.h"
#include "req.h"
#include "validate.h"

struct cn__dispatch {
    cn_app *app;
    const cn_config *cfg;
    const cn__router *router;
    cn__sched *sched;
    cn__stats *stats;
    cn__mw *mws; /* the app's middleware, outermost first */
    unsigned nmws;
    const cn_dep **deps; /* the app's dependencies */
    unsigned ndeps;
    cn__list detached; /* runs answered whose task goes on */
    void (*on_idle)(void *arg);
    void *idle_arg;
};

/* A background task (cn_req_background). */
typedef struct bg_task {
    struct bg_task *next;
    cn_task_fn fn;
    void *arg;
} bg_task;

/* A middleware call in progress, on the C stack of the chain. */
typedef struct frame {
    struct frame *up;
    const cn__mw *mw;
    unsigned keep; /* headers set before it ran */
    bool called;   /* it called cn_next */
    int next_rc;   /* what cn_next returned to it */
} frame;

/* What runs for one request; lives in its arena. */
typedef struct cn__run {
    cn__dispatch *d;
    cn_req *req;
    cn__task *task;              /* its root task */
    const char *label;           /* the route's, for logs */
    int outcome;                 /* 0: a route matched; else the status to answer */
    unsigned app_pos, route_pos; /* middleware entered so far */
    frame *frame;                /* the innermost middleware running */
    bg_task *bg, **bg_tail;
    cn__list link; /* in d->detached once answered */
    bool detached;
} run;

cn__dispatch *cn__dispatch_new(cn_app *app, const cn_config *cfg, const cn__router *router,
                               cn__sched *sched, cn__stats *stats)
{
    cn__dispatch *d = calloc(1, sizeof(*d));

    if (d == NULL)
        return NULL;
    d->app = app;
    d->cfg = cfg;
    d->router = router;
    d->sched = sched;
    d->stats = stats;
    cn__list_init(&d->detached);
    return d;
}

void cn__dispatch_free(cn__dispatch *d)
{
    if (d == NULL)
        return;
    for (unsigned i = 0; i < d->nmws; i++)
        free(d->mws[i].name);
    free(d->mws);
    free(d->deps);
    free(d);
}

int cn__dispatch_use(cn__dispatch *d, const char *name, cn_middleware_fn fn, void *data)
{
    cn__mw *m = realloc(d->mws, (d->nmws + 1) * sizeof(*m));

    if (m == NULL)
        return CN_ENOMEM;
    d->mws = m;
    m[d->nmws].name = strdup(name ? name : "middleware");
    if (m[d->nmws].name == NULL)
        return CN_ENOMEM;
    m[d->nmws].fn = fn;
    m[d->nmws].data = data;
    d->nmws++;
    return 0;
}

int cn__dispatch_depends(cn__dispatch *d, const cn_dep *dep)
{
    const cn_dep **p = realloc(d->deps, (d->ndeps + 1) * sizeof(*p));

    if (p == NULL)
        return CN_ENOMEM;
    d->deps = p;
    p[d->ndeps++] = dep;
    return 0;
}

/* ---- the route's outcome ---- */

/* Match the request: 0 (req->match.route set), or the status to answer. */
static int route_match(cn__dispatch *d, cn_req *req)
{
    int st = cn__req_finish_head(req);

    if (st == 0) {
        /* the router decodes each segment itself: give it the raw path, or
         * "%2541" would be decoded twice (to "A" instead of "%41") */
        size_t rawlen = req->query ? (size_t)(req->query - 1 - req->target) : req->target_len;
        st =
            cn__router_match(d->router, req->method, req->target, rawlen, &req->arena, &req->match);
    }
    return st;
}

/* The response for a request no handler can answer. */
static void outcome_response(cn_req *req, int st)
{
    if (st == 405) {
        char allow[96];
        cn__allow_header(req->match.allow, allow, sizeof allow);
        cn_res_header(&req->res, "Allow", allow);
        cn_res_error(&req->res, 405, "Method Not Allowed");
    } else {
        cn_res_error(&req->res, st, NULL);
    }
}

/* ---- failures ---- */

/* "GET /users/{id:int}: handler returned CN_ENOMEM (out of memory)". */
static void log_failure(const run *r, const char *what, const char *name, int rc,
                        const char *outcome)
{
    const cn_req *req = r->req;

    cn_req_log(req, CN_LOG_ERROR, "%s %s: %s%s%s%s returned %s (%s)%s", req->method_name,
               req->match.route ? req->match.route->pattern : "(no route)", what, name ? " '" : "",
               name ? name : "", name ? "'" : "", cn_err_name(rc), cn_strerror(rc), outcome);
}

/* Codes that are answers, not failures to log: a bad body, and the pool
 * turning work away under load (counted in its figures; a line per 503
 * would flood the log just when the server is busiest). */
static bool quiet(int rc)
{
    return rc == CN_EBADJSON || rc == CN_EJSONDEPTH || rc == CN_EAGAIN || rc == CN_EEXPIRED;
}

/* cn__res_from_error with the app's Retry-After for the refusals under load. */
static void answer_error(const cn__dispatch *d, cn_res *res, int err, unsigned keep)
{
    cn__res_from_error(res, err, keep, d->cfg->retry_after_s);
}

/*
 * What a level (handler, dependency, middleware) left: an error code with
 * no response becomes the error response (keeping the `keep` headers set
 * before the level ran), a stream not ended is ended (or, after an error,
 * stays cut short), nothing at all becomes `null`. Returns rc.
 */
static int finish_level(run *r, int rc, const char *what, const char *name, unsigned keep)
{
    cn_res *res = &r->req->res;

    if (cn__res_stream_state(res) == CN__STREAM_OPEN) {
        if (rc >= 0)
            cn_res_stream_end(res); /* on failure the stream stays cut short */
        else if (rc != CN_ECANCELED)
            log_failure(r, what, name, rc, "; its streamed response is cut short");
    } else if (rc == CN_ECANCELED && !res->body_set) {
        /* the client went away (or shutdown gave up): nothing to send */
    } else if (rc < 0 && !res->body_set) {
        if (!quiet(rc))
            log_failure(r, what, name, rc, rc == CN_EHTTP ? " without a response" : "");
        answer_error(r->d, res, rc == CN_EHTTP ? CN_ESTATE : rc, keep);
    } else if (!res->body_set && !res->head_sent) {
        /* returned 0 without a response: FastAPI's None is "null" */
        cn_res_json_str(res, 200, "null");
    }
    return rc;
}

/* ---- the chain ---- */

static int step(run *r);

/* A sync route's handler, on a pool worker: it may block. */
static int sync_call(void *arg)
{
    cn_req *req = arg;

    return req->match.route->fn(req, &req->res);
}

/* Resolve deps[0..n) in order; the first failure is the request's. */
static int resolve_deps(run *r, const cn_dep *const *deps, size_t n, unsigned keep)
{
    cn_req *req = r->req;

    for (size_t i = 0; i < n && deps[i]; i++) {
        void *v;
        int rc = cn_depends(req, deps[i], &v);
        if (rc == 0)
            continue;
        if (req->res.body_set)
            return rc; /* the resolver answered (cn_res_raise): it stands */
        return finish_level(r, rc, "dependency", deps[i]->name, keep);
    }
    return 0;
}

static size_t count_deps(const cn_dep *const *deps)
{
    size_t n = 0;

    while (deps && deps[n])
        n++;
    return n;
}

/* The bottom of the chain: the dependencies, then the handler. */
static int run_route(run *r)
{
    cn_req *req = r->req;
    const cn__route *rt = req->match.route;
    unsigned keep = req->res.nheaders;
    int rc;

    rc = resolve_deps(r, r->d->deps, r->d->ndeps, keep);
    if (rc == 0 && rt->chain)
        rc = resolve_deps(r, rt->chain->deps, rt->chain->ndeps, keep);
    if (rc == 0)
        rc = resolve_deps(r, rt->opts.deps, count_deps(rt->opts.deps), keep);
    /* then the declared parameters and body: FastAPI's 422 */
    if (rc == 0) {
        rc = cn__validate(req);
        if (rc < 0 && rc != CN_EHTTP)
            return finish_level(r, rc, "validation", NULL, keep);
    }
    if (rc != 0)
        return rc;
    if (rt->opts.mode == CN_ROUTE_SYNC)
        rc = cn_to_thread(sync_call, req);
    else
        rc = rt->fn(req, &req->res);
    return finish_level(r, rc, "handler", NULL, keep);
}

static int call_mw(run *r, const cn__mw *mw)
{
    cn_res *res = &r->req->res;
    frame f = {.up = r->frame, .mw = mw, .keep = res->nheaders};
    bool own;
    int rc;

    r->frame = &f;
    rc = mw->fn(r->req, res, mw->data);
    r->frame = f.up;
    if (rc == CN_ECANCELED || (!res->body_set && cn__task_is_cancelled(r->task)))
        return CN_ECANCELED;
    if (!res->body_set) {
        /* it failed before any response, or neither answered nor called
         * cn_next (Starlette's "No response returned") */
        if (rc >= 0 || rc == CN_EHTTP)
            cn_req_log(r->req, CN_LOG_ERROR, "%s %s: middleware '%s' returned without a response",
                       r->req->method_name,
                       r->req->match.route ? r->req->match.route->pattern : "(no route)", mw->name);
        else if (!quiet(rc))
            log_failure(r, "middleware", mw->name, rc, "");
        answer_error(r->d, res, rc < 0 && rc != CN_EHTTP ? rc : CN_ESTATE, f.keep);
        return rc;
    }
    /* its own failure, not one it passes on from inside */
    own = rc < 0 && rc != CN_EHTTP && !(f.called && rc == f.next_rc);
    if (own && !quiet(rc))
        log_failure(r, "middleware", mw->name, rc,
                    res->head_sent ? " after its response went out" : "");
    if (own && !res->head_sent)
        answer_error(r->d, res, rc, f.keep);
    return rc;
}

/* The next step of the chain for r: a middleware, the outcome, or the route. */
static int step(run *r)
{
    cn__dispatch *d = r->d;
    const cn__chain *ch;

    if (r->app_pos < d->nmws)
        return call_mw(r, &d->mws[r->app_pos++]);
    if (r->outcome != 0) {
        outcome_response(r->req, r->outcome);
        return 0;
    }
    ch = r->req->match.route->chain;
    if (ch && r->route_pos < ch->nmws)
        return call_mw(r, &ch->mws[r->route_pos++]);
    return run_route(r);
}

int cn_next(cn_req *req, cn_res *res)
{
    run *r;
    frame *f;
    int rc;

    if (cn__task_current() == NULL)
        return CN_ENOTCORO;
    if (req == NULL || res != &req->res || (r = req->run) == NULL || (f = r->frame) == NULL ||
        f->called)
        return CN_ESTATE;
    f->called = true;
    rc = step(r);
    f->next_rc = rc;
    return rc;
}

/* ---- answering, then what comes after ---- */

/* Hand the final response to the request's maker, which lets go of it. */
static bool respond(cn__dispatch *d, cn_req *req, bool counted)
{
    const cn__req_io *io = req->io;
    bool sent;

    if (counted)
        d->stats->requests_active--;
    req->task = NULL; /* answered: a cancel from the connection has nothing to stop */
    req->io = NULL;
    sent = io->respond(req);
    req->owner = NULL;
    return sent;
}

static void run_background(run *r)
{
    cn__stats *st = r->d->stats;

    for (bg_task *b = r->bg; b; b = b->next) {
        int rc;
        if (cn__task_is_cancelled(cn__task_current()))
            break; /* the stop's deadline: the rest do not start */
        st->background_started++;
        st->background_running++;
        rc = b->fn(b->arg);
        st->background_running--;
        if (rc < 0) {
            st->background_failed++;
            log_failure(r, "background task", NULL, rc, "");
        }
    }
}

/* The root task of a request. */
static int run_request(void *arg)
{
    run *r = arg;
    cn_req *req = r->req;
    cn__dispatch *d = r->d;
    cn__task *t = cn__task_current();
    bool sent;
    int rc;

    r->task = t;
    rc = step(r);
    /* children spawned and not awaited end before the request is answered:
     * they may use its memory */
    cn__task_settle(t);
    if (!req->res.body_set && rc != CN_ECANCELED && !cn__task_is_cancelled(t))
        answer_error(d, &req->res, CN_ESTATE, 0); /* no level answered: cannot happen */
    sent = respond(d, req, true);
    r->detached = true;
    cn__list_push(&d->detached, &r->link);
    /* what follows runs for the app, not for the client: its leaving does
     * not stop it, only the stop's deadline does */
    cn__task_shield(t);
    cn__deps_cleanup(req);
    if (sent)
        run_background(r);
    return 0;
}

static void run_done(cn__task *t, int rc, void *arg)
{
    run *r = arg;
    cn__dispatch *d = r->d;

    (void)t;
    (void)rc;
    if (r->detached)
        cn__list_remove(&r->link);
    cn__req_free(r->req);
    if (cn__list_empty(&d->detached) && d->on_idle)
        d->on_idle(d->idle_arg);
}

/* Answer a request that no task runs for, and free it. */
static void answer_now(cn__dispatch *d, cn_req *req, bool counted)
{
    respond(d, req, counted);
    cn__req_free(req);
}

void cn__dispatch_request(cn__dispatch *d, cn_req *req)
{
    int st, rc;
    run *r;

    d->stats->requests_total++;
    st = route_match(d, req);
    if (st != 0 && d->nmws == 0) {
        outcome_response(req, st);
        answer_now(d, req, false);
        return;
    }
    r = cn_req_alloc(req, sizeof(*r));
    if (r == NULL) {
        answer_error(d, &req->res, CN_ENOMEM, 0);
        answer_now(d, req, false);
        return;
    }
    memset(r, 0, sizeof(*r));
    r->d = d;
    r->req = req;
    r->outcome = st;
    r->label = st == 0 ? req->match.route->label : "(no route)";
    r->bg_tail = &r->bg;
    cn__list_init(&r->link);
    req->run = r;
    d->stats->requests_active++;
    rc = cn__sched_start(d->sched,
                         &(cn__root){.fn = run_request,
                                     .arg = r,
                                     .label = r->label,
                                     .stack_size = st == 0 ? req->match.route->opts.stack_size : 0,
                                     .req = req,
                                     .lane = st == 0 ? req->match.route->lane : NULL,
                                     .done = run_done,
                                     .done_arg = r},
                         &req->task);
    if (rc < 0) {
        req->task = NULL;
        req->run = NULL;
        if (rc == CN_EAGAIN) {
            cn__res_busy(&req->res, "Server at capacity", d->cfg->retry_after_s);
        } else {
            answer_error(d, &req->res, rc, 0);
        }
        answer_now(d, req, true);
    }
}

void cn__dispatch_cancel(cn_req *req)
{
    if (req->task)
        cn__task_cancel(req->task);
}

bool cn__dispatch_idle(const cn__dispatch *d)
{
    return cn__list_empty(&d->detached);
}

void cn__dispatch_on_idle(cn__dispatch *d, void (*fn)(void *arg), void *arg)
{
    d->on_idle = fn;
    d->idle_arg = arg;
}

void cn__dispatch_cancel_detached(cn__dispatch *d)
{
    for (cn__list *it = d->detached.next; it != &d->detached; it = it->next) {
        cn__task_cancel(CN__CONTAINER_OF(it, run, link)->task);
    }
}

int cn_req_background(cn_req *req, cn_task_fn fn, void *arg)
{
    bg_task *b;

    if (req == NULL || fn == NULL)
        return CN_EINVAL;
    if (req->io == NULL)
        return CN_ERESPONDED;
    if (req->run == NULL)
        return CN_ESTATE;
    b = cn_req_alloc(req, sizeof(*b));
    if (b == NULL)
        return CN_ENOMEM;
    b->next = NULL;
    b->fn = fn;
    b->arg = arg;
    *req->run->bg_tail = b;
    req->run->bg_tail = &b->next;
    return 0;
}
