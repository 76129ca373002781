/*
 * routers.c -- groups of routes (canteen/routers.h): a router collects
 * routes, middleware, dependencies and default options, includes other
 * routers, and registers them all with the app's route table (router.c)
 * when the outermost one is included in the app. Each router's chain (its
 * ancestors' middleware and dependencies, then its own) is flattened once,
 * at that moment, and its routes point at it.
 */
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "common.h"
#include "router.h"

typedef struct route_entry {
    char *spec; /* as given: "GET /users" */
    cn_handler fn;
    void *data;
    cn_route_opts opts;
} route_entry;

struct cn_router {
    char *prefix; /* "" or "/admin" */
    route_entry *routes;
    unsigned nroutes;
    cn__mw *mws;
    unsigned nmws;
    const cn_dep **deps;
    unsigned ndeps;
    cn_route_opts defaults;
    cn_router **kids;
    unsigned nkids;
    bool included; /* in a parent or the app: frozen */
    cn__chain chain;
    cn__mw *chain_mws; /* the flattened arrays chain points at */
    const cn_dep **chain_deps;
};

static bool valid_prefix(const char *p)
{
    size_t n = strlen(p);

    if (n == 0)
        return true;
    return p[0] == '/' && p[n - 1] != '/' && strpbrk(p, "{} ?#") == NULL;
}

cn_router *cn_router_new(const char *prefix)
{
    cn_router *r;

    if (prefix == NULL)
        prefix = "";
    if (!valid_prefix(prefix))
        return NULL;
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->prefix = strdup(prefix);
    if (r->prefix == NULL) {
        free(r);
        return NULL;
    }
    return r;
}

void cn_router_free(cn_router *r)
{
    if (r == NULL)
        return;
    for (unsigned i = 0; i < r->nroutes; i++)
        free(r->routes[i].spec);
    free(r->routes);
    for (unsigned i = 0; i < r->nmws; i++)
        free(r->mws[i].name);
    free(r->mws);
    free(r->deps);
    for (unsigned i = 0; i < r->nkids; i++)
        cn_router_free(r->kids[i]);
    free(r->kids);
    free(r->chain_mws);
    free(r->chain_deps);
    free(r->prefix);
    free(r);
}

/* "GET /x": a known method, one space, and a path that starts with '/' (or
 * is empty: the prefix itself). */
static bool valid_spec(const char *spec)
{
    const char *sp = strchr(spec, ' ');

    return sp && cn__method_index(spec, (size_t)(sp - spec)) >= 0 && (sp[1] == '/' || sp[1] == 0);
}

int cn_router_route(cn_router *r, const char *spec, cn_handler fn, void *data,
                    const cn_route_opts *opts)
{
    route_entry *e;

    if (r == NULL || spec == NULL || fn == NULL)
        return CN_EINVAL;
    if (r->included)
        return CN_ESTATE;
    if (!valid_spec(spec) || (spec[strcspn(spec, " ") + 1] == 0 && r->prefix[0] == 0))
        return CN_EBADPATTERN;
    if (opts && opts->mode != CN_ROUTE_DEFAULT && opts->mode != CN_ROUTE_ASYNC &&
        opts->mode != CN_ROUTE_SYNC)
        return CN_EINVAL;
    for (unsigned i = 0; i < r->nroutes; i++)
        if (strcmp(r->routes[i].spec, spec) == 0)
            return CN_EEXIST;
    e = realloc(r->routes, (r->nroutes + 1) * sizeof(*e));
    if (e == NULL)
        return CN_ENOMEM;
    r->routes = e;
    e = &r->routes[r->nroutes];
    memset(e, 0, sizeof(*e));
    e->spec = strdup(spec);
    if (e->spec == NULL)
        return CN_ENOMEM;
    e->fn = fn;
    e->data = data;
    if (opts)
        e->opts = *opts;
    r->nroutes++;
    return 0;
}

int cn_router_routes(cn_router *r, const cn_route *routes)
{
    if (routes == NULL)
        return CN_EINVAL;
    for (const cn_route *e = routes; e->spec; e++) {
        int rc = cn_router_route(r, e->spec, e->fn, e->data, &e->opts);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int cn_router_use(cn_router *r, const char *name, cn_middleware_fn fn, void *data)
{
    cn__mw *m;

    if (r == NULL || fn == NULL)
        return CN_EINVAL;
    if (r->included)
        return CN_ESTATE;
    m = realloc(r->mws, (r->nmws + 1) * sizeof(*m));
    if (m == NULL)
        return CN_ENOMEM;
    r->mws = m;
    m[r->nmws].name = strdup(name ? name : "middleware");
    if (m[r->nmws].name == NULL)
        return CN_ENOMEM;
    m[r->nmws].fn = fn;
    m[r->nmws].data = data;
    r->nmws++;
    return 0;
}

int cn_router_depends(cn_router *r, const cn_dep *dep)
{
    const cn_dep **p;

    if (r == NULL || dep == NULL || dep->resolve == NULL)
        return CN_EINVAL;
    if (r->included)
        return CN_ESTATE;
    p = realloc(r->deps, (r->ndeps + 1) * sizeof(*p));
    if (p == NULL)
        return CN_ENOMEM;
    r->deps = p;
    p[r->ndeps++] = dep;
    return 0;
}

int cn_router_defaults(cn_router *r, const cn_route_opts *opts)
{
    if (r == NULL || opts == NULL || opts->deps != NULL ||
        (opts->mode != CN_ROUTE_DEFAULT && opts->mode != CN_ROUTE_ASYNC &&
         opts->mode != CN_ROUTE_SYNC))
        return CN_EINVAL;
    if (r->included)
        return CN_ESTATE;
    r->defaults = *opts;
    return 0;
}

int cn_router_include(cn_router *parent, cn_router *child)
{
    cn_router **k;

    if (parent == NULL || child == NULL || child == parent || child->included)
        return CN_EINVAL;
    child->included = true; /* the parent owns it from here, in every case */
    if (parent->included) {
        cn_router_free(child);
        return CN_ESTATE;
    }
    k = realloc(parent->kids, (parent->nkids + 1) * sizeof(*k));
    if (k == NULL) {
        cn_router_free(child);
        return CN_ENOMEM;
    }
    parent->kids = k;
    k[parent->nkids++] = child;
    return 0;
}

/* r's chain: what is above it, then its own middleware and dependencies. */
static int build_chain(cn_router *r, const cn__chain *above)
{
    unsigned nm = above->nmws + r->nmws, nd = above->ndeps + r->ndeps;

    r->chain_mws = malloc((nm ? nm : 1) * sizeof(*r->chain_mws));
    r->chain_deps = malloc((nd ? nd : 1) * sizeof(*r->chain_deps));
    if (r->chain_mws == NULL || r->chain_deps == NULL)
        return CN_ENOMEM;
    /* names are borrowed from the routers that own them */
    if (above->nmws)
        memcpy(r->chain_mws, above->mws, above->nmws * sizeof(*r->chain_mws));
    if (r->nmws)
        memcpy(r->chain_mws + above->nmws, r->mws, r->nmws * sizeof(*r->chain_mws));
    if (above->ndeps)
        memcpy(r->chain_deps, above->deps, above->ndeps * sizeof(*r->chain_deps));
    if (r->ndeps)
        memcpy(r->chain_deps + above->ndeps, r->deps, r->ndeps * sizeof(*r->chain_deps));
    r->chain = (cn__chain){r->chain_mws, nm, r->chain_deps, nd};
    return 0;
}

/* Fields a route (or router) leaves zero take the defaults above it. */
static void merge_defaults(cn_route_opts *o, const cn_route_opts *dflt)
{
    if (o->mode == CN_ROUTE_DEFAULT)
        o->mode = dflt->mode;
    if (o->stack_size == 0)
        o->stack_size = dflt->stack_size;
    if (o->pool_limit == 0)
        o->pool_limit = dflt->pool_limit;
}

static int register_router(cn_app *app, cn_router *r, const char *above_prefix,
                           const cn__chain *above, const cn_route_opts *above_defaults)
{
    cn_route_opts dflt = r->defaults;
    char *prefix = malloc(strlen(above_prefix) + strlen(r->prefix) + 1);
    int rc = 0;

    if (prefix == NULL)
        return CN_ENOMEM;
    strcpy(prefix, above_prefix);
    strcat(prefix, r->prefix);
    merge_defaults(&dflt, above_defaults);
    r->included = true;
    rc = build_chain(r, above);
    for (unsigned i = 0; rc == 0 && i < r->nroutes; i++) {
        const route_entry *e = &r->routes[i];
        size_t mlen = strcspn(e->spec, " ");
        const char *path = e->spec + mlen + 1;
        cn_route_opts o = e->opts;
        char *spec = malloc(mlen + 1 + strlen(prefix) + strlen(path) + 1);
        if (spec == NULL) {
            rc = CN_ENOMEM;
            break;
        }
        memcpy(spec, e->spec, mlen + 1);
        strcpy(spec + mlen + 1, prefix);
        strcat(spec, path);
        merge_defaults(&o, &dflt);
        rc = cn__app_add_route(app, spec, e->fn, e->data, &o, &r->chain);
        free(spec);
    }
    for (unsigned i = 0; rc == 0 && i < r->nkids; i++)
        rc = register_router(app, r->kids[i], prefix, &r->chain, &dflt);
    free(prefix);
    return rc;
}

int cn_app_include(cn_app *app, cn_router *r)
{
    static const cn__chain none;
    static const cn_route_opts no_defaults;
    int rc;

    if (app == NULL || r == NULL)
        return CN_EINVAL;
    if (r->included)
        return CN_ESTATE;
    /* the app owns it from here, in every case */
    rc = cn__app_adopt(app, (void (*)(void *))cn_router_free, r);
    if (rc < 0) {
        cn_router_free(r);
        return rc;
    }
    if (!cn__app_is_new(app))
        return CN_ESTATE;
    return register_router(app, r, "", &none, &no_defaults);
}
