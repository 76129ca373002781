/*
 * dispatch.h -- how a request is run, once its head and body are in: the
 * route's outcome (404, 405, 422), then the handler, in a coroutine on the
 * loop (async routes) or on the thread pool (sync routes), and the response
 * handed back to whoever made the request.
 *
 * The connection (or any other maker of requests) knows none of this: it
 * hands a complete request over with cn__dispatch_request and is called
 * back through the request's io table exactly once, when the response is
 * final. From that call on the request belongs to dispatch, which frees it
 * when everything that runs for it has ended.
 */
#ifndef CN_DISPATCH_H
#define CN_DISPATCH_H

#include <stdbool.h>

#include "canteen.h"
#include "router.h"
#include "scheduler.h"
#include "stats.h"

typedef struct cn__dispatch cn__dispatch;

/*
 * How a request's response gets out: set on the request by its maker (the
 * connection). Every function runs on the loop thread.
 */
typedef struct cn__req_io {
    /*
     * The response in req->res is final: a whole body, a stream that was
     * ended (or broke off: not ended), or nothing at all (no body set:
     * nobody to answer, or no answer possible: close). Send it and let go
     * of the request: it must not be touched after this returns. Returns
     * true if a response went (or is going) out to a client. Called
     * exactly once per request handed to cn__dispatch_request, also when
     * the client is gone, possibly before cn__dispatch_request returns.
     */
    bool (*respond)(cn_req *req);
    /* A streamed response (stream.c makes the checks): 0, CN_ECANCELED when
     * the client is gone, CN_ENOMEM. The writer parks while the client is
     * behind. */
    int (*stream_begin)(cn_req *req);
    int (*stream_write)(cn_req *req, cn__task *t, const void *p, size_t n);
    int (*stream_end)(cn_req *req);
} cn__req_io;

cn__dispatch *cn__dispatch_new(cn_app *app, const cn_config *cfg, const cn__router *router,
                               cn__sched *sched, cn__stats *stats);
void cn__dispatch_free(cn__dispatch *d);

/*
 * Run a complete request (req->io and req->owner set). Counts it, routes
 * it, starts its handler; req->io->respond follows, now or later.
 */
void cn__dispatch_request(cn__dispatch *d, cn_req *req);

/*
 * The client of a request that has not been answered went away (or the
 * shutdown deadline passed): cancel what runs for it. Its respond call
 * still comes, from a later loop callback. No-op if already answered.
 */
void cn__dispatch_cancel(cn_req *req);

/* The app's own middleware and dependencies (cn_app_use, cn_app_depends):
 * before the app runs. 0 or CN_ENOMEM. */
int cn__dispatch_use(cn__dispatch *d, const char *name, cn_middleware_fn fn, void *data);
int cn__dispatch_depends(cn__dispatch *d, const cn_dep *dep);

/*
 * Requests answered whose task goes on (dependency cleanups, background
 * tasks): none left (idle), a callback when the last one ends, and cancel
 * them all (the stop's deadline).
 */
bool cn__dispatch_idle(const cn__dispatch *d);
void cn__dispatch_on_idle(cn__dispatch *d, void (*fn)(void *arg), void *arg);
void cn__dispatch_cancel_detached(cn__dispatch *d);

#endif
