/*
 * canteen/middleware.h -- code that runs around every route (Starlette's
 * middleware, h2o's filters). Included by canteen.h.
 *
 * A middleware is a function with a handler's shape and one more argument.
 * It runs as part of the request's coroutine on the loop, sync routes
 * included (the chain runs on the loop; only a sync route's handler goes
 * to the pool), so it may await. It calls cn_next() to run the rest of the
 * chain, and may look at or change the response afterwards:
 *
 *     static int timing(cn_req *req, cn_res *res, void *data)
 *     {
 *         uint64_t t0 = now_us();
 *         int rc = cn_next(req, res);
 *         char v[32];
 *         snprintf(v, sizeof v, "%llu", (unsigned long long)(now_us() - t0));
 *         cn_res_header(res, "X-Process-Time-Us", v);
 *         return rc;
 *     }
 *     ...
 *     cn_app_use(app, "timing", timing, NULL);
 *
 * Order. App middleware runs around every request in the order added, the
 * first added outermost (as Starlette's `middleware=[...]` list; note that
 * Starlette's add_middleware puts the last added outermost). It sees every
 * request, also those no route matches: 404, 405 and the path parameters'
 * 422 come from the innermost step, so an app middleware can answer a CORS
 * preflight or count 404s. A router's middleware (canteen/routers.h) runs
 * inside the app's, around that router's routes only, outer routers first.
 * Then the route's dependencies (canteen/depends.h), then the handler.
 *
 * Answering without the handler. A middleware that does not call cn_next
 * sets the response itself (auth, rate limit) and returns 0, or returns
 * cn_res_raise(res, 401, "Not authenticated").
 *
 * Errors. When cn_next returns, the response is set: a body, a stream that
 * has already gone out, or the error response made from an inner failure
 * (a handler's CN_ENOMEM is already a 500 in `res` by then, logged once).
 * cn_next's result tells what happened inside: 0, CN_EHTTP, the code an
 * inner step failed with, or CN_ECANCELED. Returning that result passes
 * it on unchanged. A middleware that returns a negative code of its own
 * (anything but CN_EHTTP and what cn_next gave it) fails the request: it is
 * logged naming the middleware and the route, and its response becomes
 * FastAPI's 500 {"detail":"Internal Server Error"} (400 for CN_EBADJSON),
 * keeping the headers set before the middleware ran. Once a stream's head
 * has gone out the status cannot change: the stream is cut short instead.
 *
 * Headers. A middleware may add headers after cn_next for a whole body. A
 * streamed response's head leaves at cn_res_stream_begin, before cn_next
 * returns: headers that must be on every response are added before calling
 * cn_next, and they survive an inner error response.
 *
 * Cancellation. When the client goes away, every await returns
 * CN_ECANCELED and so does cn_next: return it. Nothing more is sent.
 */
#ifndef CANTEEN_MIDDLEWARE_H
#define CANTEEN_MIDDLEWARE_H

#ifdef __cplusplus
extern "C" {
#endif

typedef int (*cn_middleware_fn)(cn_req *req, cn_res *res, void *data);

/*
 * Add a middleware around every request of the app. `name` (copied; NULL:
 * "middleware") names it in logs; `data` is handed back to fn and must
 * outlive the app. Errors: CN_EINVAL (app or fn NULL), CN_ESTATE (the app
 * runs), CN_ENOMEM.
 */
CN_EXTERN int cn_app_use(cn_app *app, const char *name, cn_middleware_fn fn, void *data);

/*
 * Run the rest of the chain (the next middleware, or the route) from
 * inside a middleware, at most once per middleware call. Returns the inner
 * result as above. Errors: CN_ENOTCORO (outside a coroutine: a middleware
 * always runs in one), CN_ESTATE (not called from a middleware of this
 * request, or called twice by one).
 */
CN_EXTERN int cn_next(cn_req *req, cn_res *res);

#ifdef __cplusplus
}
#endif

#endif
