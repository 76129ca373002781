/*
 * canteen/routers.h -- groups of routes (FastAPI's APIRouter): a prefix,
 * middleware and dependencies of their own, default options, mounted on
 * the app. Included by canteen.h.
 *
 *     cn_router *admin = cn_router_new("/admin");
 *     cn_router_depends(admin, &require_admin);        // every admin route
 *     cn_router_use(admin, "audit", audit, NULL);       // around them only
 *     cn_router_route(admin, "GET /users", list_users, NULL, NULL);
 *     cn_router_route(admin, "DELETE /users/{id:int}", delete_user, NULL, NULL);
 *     cn_app_include(app, admin);                      // GET /admin/users, ...
 *
 * A router is built, then included (in a parent router or in the app),
 * then never changed again: its routes are registered with the app when
 * the outermost router is included with cn_app_include. Around each of its
 * routes run the app's middleware, then its routers' middleware (outer
 * routers first), then the app's, its routers' (outer first) and the
 * route's own dependencies, then the handler.
 */
#ifndef CANTEEN_ROUTERS_H
#define CANTEEN_ROUTERS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cn_router cn_router;

/*
 * A router whose paths start with `prefix` ("/admin"; NULL or "": none). A
 * prefix starts with '/', does not end with one and has no parameters. The
 * caller owns the router until it includes it. NULL when out of memory or
 * when the prefix is malformed.
 */
CN_EXTERN cn_router *cn_router_new(const char *prefix);

/* Free a router that was never included, and what it holds. NULL allowed. */
CN_EXTERN void cn_router_free(cn_router *r);

/*
 * Add a route, as cn_app_route_ex: `spec`'s path is relative to the prefix
 * ("GET /users" on "/admin" serves /admin/users; "GET /" serves /admin/,
 * as FastAPI's prefix + path does; "GET " with an empty path serves /admin
 * itself). Options left zero take the router's defaults (mode
 * CN_ROUTE_DEFAULT: the router's; set CN_ROUTE_ASYNC to choose async under
 * a sync router); the route's deps
 * come after the router's. Errors: CN_EINVAL, CN_EBADPATTERN, CN_EEXIST
 * (the same method and path on this router), CN_ESTATE (the router was
 * included), CN_ENOMEM. A clash with a route elsewhere is found by
 * cn_app_include.
 */
CN_EXTERN int cn_router_route(cn_router *r, const char *spec, cn_handler fn, void *data,
                              const cn_route_opts *opts);

/* Every route of a table (cn_route, ended by spec NULL) on the router, as
 * cn_router_route; stops at the first error and returns it. */
CN_EXTERN int cn_router_routes(cn_router *r, const cn_route *routes);

/* A middleware around this router's routes (and its included routers').
 * As cn_app_use; errors also CN_ESTATE once included. */
CN_EXTERN int cn_router_use(cn_router *r, const char *name, cn_middleware_fn fn, void *data);

/* A dependency of this router's routes, resolved after the app's and its
 * parents'. As cn_app_depends; errors also CN_ESTATE once included. */
CN_EXTERN int cn_router_depends(cn_router *r, const cn_dep *dep);

/*
 * Default options for this router's routes (and those of routers included
 * in it, unless they set their own): `mode`, `stack_size` and
 * `pool_limit`, for the fields a route leaves zero (each route of the
 * router gets its own limit of that size). `deps` is refused (CN_EINVAL): use
 * cn_router_depends. Copied. Errors: CN_EINVAL, CN_ESTATE.
 */
CN_EXTERN int cn_router_defaults(cn_router *r, const cn_route_opts *opts);

/*
 * Include `child` in `parent`: child's paths get parent's prefix in front,
 * its routes parent's middleware and dependencies around its own. The
 * parent owns the child from now on, whatever the outcome, except for
 * CN_EINVAL (NULL, or the child is included already, or is the parent),
 * which leaves it with the caller. Other errors: CN_ESTATE (the parent was
 * included), CN_ENOMEM.
 */
CN_EXTERN int cn_router_include(cn_router *parent, cn_router *child);

/*
 * Register every route of `r` and of the routers included in it with the
 * app (FastAPI's app.include_router). The app owns `r` from now on, in
 * every case, and frees it with itself. Errors: CN_EINVAL, CN_ESTATE (the
 * app runs, or r was included already), CN_EEXIST (a route clashes with
 * one already registered: the routes before it stay registered),
 * CN_EBADPATTERN (a route's parameters do not work with its path, or the
 * prefix and path make a malformed pattern), CN_ENOMEM.
 */
CN_EXTERN int cn_app_include(cn_app *app, cn_router *r);

#ifdef __cplusplus
}
#endif

#endif
