/*
 * dispatch.c -- how a request is run: its route's outcome, then its handler
 * in the route's mode, then the response handed back to its maker.
 *
 * Every handler runs inside a root task (a coroutine on the loop): an async
 * route's handler directly, a sync route's through cn_to_thread, so that
 * its request waits on the pool the way any awaitable waits, and a cancel
 * reaches it by the same path. Whatever the handler leaves behind (an error
 * code, a stream not ended, no response at all) is turned into the final
 * response here, and only here.
 *
 * A request that matches no route (404, 405, 422 and 400 from the router)
 * is answered at once, without a task.
 */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "dispatch.h"
#include "req.h"

struct cn__dispatch {
    cn_app *app;
    const cn_config *cfg;
    const cn__router *router;
    cn__sched *sched;
    cn_stats *stats;
};

/* What runs for one routed request; lives in the request's arena. */
typedef struct run {
    cn__dispatch *d;
    cn_req *req;
} run;

cn__dispatch *cn__dispatch_new(cn_app *app, const cn_config *cfg, const cn__router *router,
                               cn__sched *sched, cn_stats *stats)
{
    cn__dispatch *d = calloc(1, sizeof(*d));

    if (d == NULL)
        return NULL;
    d->app = app;
    d->cfg = cfg;
    d->router = router;
    d->sched = sched;
    d->stats = stats;
    return d;
}

void cn__dispatch_free(cn__dispatch *d)
{
    free(d);
}

/* ---- the route's outcome ---- */

/*
 * Match the request: 0 (req->match.route set), or the status to answer with
 * when no handler can run (400, 404, 405, 422, 500), its response set.
 */
static int route(cn__dispatch *d, cn_req *req)
{
    int st = cn__req_finish_head(req);

    if (st == 0) {
        /* the router decodes each segment itself: give it the raw path, or
         * "%2541" would be decoded twice (to "A" instead of "%41") */
        size_t rawlen = req->query ? (size_t)(req->query - 1 - req->target) : req->target_len;
        st =
            cn__router_match(d->router, req->method, req->target, rawlen, &req->arena, &req->match);
    }
    if (st == 0) {
        const cn__route *rt = req->match.route;
        for (unsigned i = 0; i < req->match.nparams; i++) {
            int64_t v;
            if (rt->param_types[i] == CN__PARAM_INT &&
                cn_req_param_int(req, req->match.params[i].name, &v) < 0)
                return cn__res_param_error(req, req->match.params[i].name,
                                           req->match.params[i].value) < 0
                           ? 500
                           : 422;
        }
        return 0;
    }
    if (st == 405) {
        char allow[96];
        cn__allow_header(req->match.allow, allow, sizeof allow);
        cn_res_header(&req->res, "Allow", allow);
        cn_res_error(&req->res, 405, "Method Not Allowed");
    } else {
        cn_res_error(&req->res, st, NULL);
    }
    return st;
}

/* ---- the handler ---- */

/* A handler returned an error code: say which route, and what came of it. */
static void log_failure(const cn_req *req, int rc, const char *outcome)
{
    cn__log(CN__LOG_ERROR, "%s %s: handler returned %s (%s)%s", req->method_name,
            req->match.route ? req->match.route->pattern : "?", cn_err_name(rc), cn_strerror(rc),
            outcome);
}

/* A sync route's handler, on a pool worker: it may block. */
static int sync_call(void *arg)
{
    cn_req *req = arg;

    return req->match.route->fn(req, &req->res);
}

/*
 * Turn what the handler left into the final response: an error code into
 * FastAPI's error body, a stream it did not end into an ended one (or one
 * cut short, after an error), nothing at all into `null`.
 */
static void finalize(cn_req *req, int rc)
{
    cn_res *res = &req->res;

    if (cn__res_stream_state(res) == CN__STREAM_OPEN) {
        if (rc >= 0)
            cn_res_stream_end(res); /* on failure the stream stays cut short */
        else
            log_failure(req, rc, "; its streamed response is cut short");
    } else if (rc == CN_ECANCELED && !res->body_set) {
        /* the client went away (or shutdown gave up): nothing to send */
    } else if (rc < 0 && !res->body_set) {
        if (rc != CN_EBADJSON && rc != CN_EJSONDEPTH)
            log_failure(req, rc, "");
        cn__res_from_error(res, rc);
    } else if (!res->body_set) {
        /* returned 0 without a response: FastAPI's None is "null" */
        cn_res_json_str(res, 200, "null");
    }
}

/* Hand the final response to the request's maker, which lets go of it. */
static void respond(cn__dispatch *d, cn_req *req, bool counted)
{
    const cn__req_io *io = req->io;

    if (counted)
        d->stats->requests_active--;
    req->task = NULL; /* answered: a cancel has nothing left to stop */
    req->io = NULL;
    io->respond(req);
    req->owner = NULL;
}

/* The root task of a routed request. */
static int run_request(void *arg)
{
    run *r = arg;
    cn_req *req = r->req;
    int rc;

    if (req->match.route->opts.mode == CN_ROUTE_SYNC)
        rc = cn_to_thread(sync_call, req);
    else
        rc = req->match.route->fn(req, &req->res);
    /* children spawned and not awaited end before the request is answered:
     * they may use its memory */
    cn__task_settle(cn__task_current());
    finalize(req, rc);
    respond(r->d, req, true);
    return 0;
}

static void run_done(cn__task *t, int rc, void *arg)
{
    run *r = arg;

    (void)t;
    (void)rc;
    cn__req_free(r->req);
}

void cn__dispatch_request(cn__dispatch *d, cn_req *req)
{
    run *r;
    int rc;

    d->stats->requests_total++;
    if (route(d, req) != 0) {
        respond(d, req, false);
        cn__req_free(req);
        return;
    }
    r = cn_req_alloc(req, sizeof(*r));
    if (r == NULL) {
        cn__res_from_error(&req->res, CN_ENOMEM);
        respond(d, req, false);
        cn__req_free(req);
        return;
    }
    r->d = d;
    r->req = req;
    d->stats->requests_active++;
    rc = cn__sched_start(d->sched,
                         &(cn__root){.fn = run_request,
                                     .arg = r,
                                     .label = req->match.route->label,
                                     .stack_size = req->match.route->opts.stack_size,
                                     .req = req,
                                     .done = run_done,
                                     .done_arg = r},
                         &req->task);
    if (rc < 0) {
        req->task = NULL;
        if (rc == CN_EAGAIN)
            cn_res_error(&req->res, 503, "Server at capacity");
        else
            cn__res_from_error(&req->res, rc);
        respond(d, req, true);
        cn__req_free(req);
    }
}

void cn__dispatch_cancel(cn_req *req)
{
    if (req->task)
        cn__task_cancel(req->task);
}
