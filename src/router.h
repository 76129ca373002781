/* router.h -- "GET /users/{id:int}" patterns in a segment trie; 404/405. */
#ifndef CN_ROUTER_H
#define CN_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "canteen.h"
#include "common.h"

/* Methods a route can be registered for (bit positions of an Allow mask). */
enum {
    CN__M_GET,
    CN__M_HEAD,
    CN__M_POST,
    CN__M_PUT,
    CN__M_DELETE,
    CN__M_PATCH,
    CN__M_OPTIONS,
    CN__M_COUNT
};

#define CN__MAX_PARAMS 16
#define CN__MAX_SEGMENTS 128

/* {name} / {name:str}, {name:int}, and {name:path}: the rest of the path,
 * slashes included (Starlette's path convertor; last segment only). */
enum { CN__PARAM_STR, CN__PARAM_INT, CN__PARAM_PATH };

/* A middleware as registered (canteen/middleware.h). */
typedef struct cn__mw {
    char *name;
    cn_middleware_fn fn;
    void *data;
} cn__mw;

/*
 * What runs around the routes of one router (canteen/routers.h), its
 * ancestors' included: middleware outermost first, then dependencies in
 * resolution order. Owned by the router; immutable once its routes are
 * registered. The app's own middleware and dependencies are not in it.
 */
typedef struct cn__chain {
    const cn__mw *mws;
    unsigned nmws;
    const cn_dep *const *deps;
    unsigned ndeps;
} cn__chain;

typedef struct cn__route {
    char *spec;    /* "GET /users/{id:int}" */
    char *label;   /* "GET /users/{id}", for logs */
    char *pattern; /* "/users/{id:int}" */
    int method;    /* CN__M_* */
    cn_handler fn;
    void *data;
    cn_route_opts opts;
    cn__lane *lane;         /* its share of the pool (opts.pool_limit; 0: none) */
    const cn__chain *chain; /* its router's, or NULL (a route of the app) */
    struct cn__decl *decl;  /* its declarations, prepared (validate.c), or NULL */
    cn_field *query;        /* "?limit:int=10" in the spec: query parameters it
                             * declares, ended by {0}, strings owned; or NULL */
    unsigned seq;           /* registration order */
    unsigned nparams;
    char *param_names[CN__MAX_PARAMS];
    int param_types[CN__MAX_PARAMS];
} cn__route;

typedef struct cn__router cn__router;

/* One matched parameter: the route's name and the decoded value. */
typedef struct cn__param {
    const char *name;
    const char *value;
    size_t len;
} cn__param;

typedef struct cn__match {
    const cn__route *route; /* set when status == 0 */
    unsigned nparams;
    cn__param params[CN__MAX_PARAMS];
    unsigned allow; /* bitmask of CN__M_* on 405 */
} cn__match;

cn__router *cn__router_new(void);
void cn__router_free(cn__router *r);

/* Register; errors as cn_app_route. The route is copied; `chain` (may be
 * NULL) is kept. */
int cn__router_add(cn__router *r, const char *spec, cn_handler fn, void *data,
                   const cn_route_opts *opts, const cn__chain *chain);

/* CN__M_* for a method name, or -1. */
int cn__method_index(const char *name, size_t len);
const char *cn__method_name(int m);

/*
 * Match a raw (still percent-encoded) path. Decoded parameter values go in
 * the arena. Returns 0 (m->route set), 404, 405 (m->allow set) or 400 (bad
 * percent-encoding). HEAD falls back to GET.
 */
int cn__router_match(const cn__router *r, int method, const char *path, size_t len,
                     cn__arena *arena, cn__match *m);

/*
 * Every route, in the order they were registered: *out gets a malloc'd
 * array of *n pointers (the caller frees the array, not the routes).
 * 0 or CN_ENOMEM.
 */
int cn__router_routes(const cn__router *r, const cn__route ***out, size_t *n);

/* Write "GET, HEAD, POST" for an allow mask into buf; returns length. */
size_t cn__allow_header(unsigned allow, char *buf, size_t size);

#endif
