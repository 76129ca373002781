/*
 * canteen/depends.h -- dependencies (FastAPI's Depends, with yield).
 * Included by canteen.h.
 *
 * A dependency is a resource a handler needs: a database connection, the
 * current user, a parsed token. It is static data:
 *
 *     static int get_user(cn_req *req, cn_res *res, void *data, void **value)
 *     {
 *         const char *tok = cn_req_header(req, "authorization");
 *         user *u = tok ? user_for_token(req, tok) : NULL;
 *         if (u == NULL)
 *             return cn_res_raise(res, 401, "Not authenticated");
 *         *value = u;
 *         return 0;
 *     }
 *     static const cn_dep current_user = {.name = "user", .resolve = get_user};
 *     static const cn_dep *const needs_user[] = {&current_user, NULL};
 *     ...
 *     cn_app_route_ex(app, "GET /me", me, NULL, &(cn_route_opts){.deps = needs_user});
 *     ...
 *     static int me(cn_req *req, cn_res *res)
 *     {
 *         user *u = cn_req_dep(req, "user");
 *         ...
 *
 * Resolution. The app's dependencies (cn_app_depends), a router's and the
 * route's (cn_route_opts.deps) are resolved in that order before the
 * handler runs, on the loop, in the request's coroutine, so a resolver may
 * await (acquire a pooled connection, call an auth server). Each is
 * resolved once per request however many ask for it: a resolver may ask
 * for another with cn_depends (a sub-dependency), and a second asker while
 * the first is still resolving waits for the same result.
 *
 * Failure. A resolver that returns non-zero fails the request and the
 * handler does not run: if it set a response (cn_res_raise: 401, 403,
 * 422...), that is the answer; otherwise its code becomes FastAPI's 500
 * (logged naming the dependency and the route). The middleware around the
 * route sees it as it would see a handler's failure.
 *
 * Cleanup. After the response has been sent, every dependency that
 * resolved has its cleanup called, in the reverse order of resolution
 * (what was resolved last is cleaned first), also when the request failed
 * or its client went away. Cleanups run in the request's coroutine and
 * may await (roll back, release a connection); a cancelled request's
 * cancellation is lifted for them. They run before background tasks.
 */
#ifndef CANTEEN_DEPENDS_H
#define CANTEEN_DEPENDS_H

#ifdef __cplusplus
extern "C" {
#endif

struct cn_dep {
    /* How handlers find the value (cn_req_dep) and how logs name it. */
    const char *name;
    /* Set *value and return 0, or fail (see above). Required. */
    int (*resolve)(cn_req *req, cn_res *res, void *data, void **value);
    /* Optional: release what resolve made (see above). */
    void (*cleanup)(cn_req *req, void *value, void *data);
    /* Handed back to both. */
    void *data;
};

/*
 * The value of `dep` for this request, resolving it first if nothing has
 * yet (an awaitable, then). Returns 0 with *value set, or the resolver's
 * failure (then the request fails as above: return the code). From a sync
 * handler it only reads: a dependency not resolved yet is CN_ENOTCORO.
 * Errors: CN_EINVAL (NULL argument, no resolve; also what a resolver's
 * positive result becomes), CN_ENOTCORO, CN_ECANCELED, CN_ESTATE (asked for
 * after the response, from a background task: the cleanups have run),
 * CN_ENOMEM.
 */
CN_EXTERN int cn_depends(cn_req *req, const cn_dep *dep, void **value);

/*
 * The value of the dependency named `name` resolved for this request, or
 * NULL if none by that name has resolved, or its cleanup has run (a
 * background task sees NULL). Never awaits: any thread that
 * holds the request (a sync handler on the pool too).
 */
CN_EXTERN void *cn_req_dep(const cn_req *req, const char *name);

/*
 * A dependency of every route of the app (FastAPI(dependencies=[...])),
 * resolved before the routers' and the route's own. `dep` is kept, not
 * copied: it must outlive the app. Errors: CN_EINVAL, CN_ESTATE (the app
 * runs), CN_ENOMEM.
 */
CN_EXTERN int cn_app_depends(cn_app *app, const cn_dep *dep);

#ifdef __cplusplus
}
#endif

#endif
