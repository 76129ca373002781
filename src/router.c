/*
 * router.c -- a trie of path segments. Each node has literal children
 * (sorted, binary searched) and at most one parameter child, and holds one
 * route per method. Matching walks the request path segment by segment, so
 * its cost depends on the path's depth and each node's fan-out, never on the
 * total number of routes. A literal segment wins over a parameter; when the
 * literal branch dead-ends, the parameter branch is tried (backtracking).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"
#include "url.h"
#include "validate.h"

typedef struct rnode rnode;
struct rnode {
    char *seg; /* literal segment (decoded form), NULL for a param node */
    size_t seglen;
    rnode **kids; /* literal children sorted by (seglen, bytes) */
    size_t nkids;
    rnode *param; /* parameter child */
    rnode *rest;  /* {name:path} child: takes every segment left */
    cn__route *routes[CN__M_COUNT];
};

struct cn__router {
    rnode root;
    unsigned nroutes; /* registered so far: the next one's seq */
};

static const char *const method_names[CN__M_COUNT] = {"GET",    "HEAD",  "POST",   "PUT",
                                                      "DELETE", "PATCH", "OPTIONS"};

int cn__method_index(const char *name, size_t len)
{
    for (int i = 0; i < CN__M_COUNT; i++)
        if (strlen(method_names[i]) == len && memcmp(method_names[i], name, len) == 0)
            return i;
    return -1;
}

const char *cn__method_name(int m)
{
    return m >= 0 && m < CN__M_COUNT ? method_names[m] : "?";
}

cn__router *cn__router_new(void)
{
    return calloc(1, sizeof(cn__router));
}

/* The route's OpenAPI strings are copied (they are often compound literals
 * in the registering function); declarations are kept (static data). */
static void free_doc(cn_route_opts *o)
{
    free((void *)(uintptr_t)o->summary);
    free((void *)(uintptr_t)o->description);
    free((void *)(uintptr_t)o->operation_id);
    for (size_t i = 0; o->tags && o->tags[i]; i++)
        free((void *)(uintptr_t)o->tags[i]);
    free((void *)(uintptr_t)o->tags);
    o->summary = o->description = o->operation_id = NULL;
    o->tags = NULL;
}

static int copy_doc(cn_route_opts *o)
{
    const char *s = o->summary, *d = o->description, *id = o->operation_id;
    const char *const *tags = o->tags;
    size_t n = 0;
    char **t = NULL;

    o->summary = o->description = o->operation_id = NULL;
    o->tags = NULL;
    while (tags && tags[n])
        n++;
    if ((s && (o->summary = strdup(s)) == NULL) || (d && (o->description = strdup(d)) == NULL) ||
        (id && (o->operation_id = strdup(id)) == NULL) ||
        (tags && (t = calloc(n + 1, sizeof(*t))) == NULL))
        goto fail;
    o->tags = (const char *const *)t;
    for (size_t i = 0; i < n; i++)
        if ((t[i] = strdup(tags[i])) == NULL)
            goto fail;
    return 0;
fail:
    free_doc(o);
    return CN_ENOMEM;
}

static bool valid_name(const char *s, size_t len);

static void free_query_decl(cn_field *q)
{
    for (cn_field *f = q; f && f->name; f++) {
        free((void *)(uintptr_t)f->name);
        free((void *)(uintptr_t)f->dflt);
    }
    free(q);
}

/*
 * The query part of a spec, "limit:int=10&q:str?&flag:bool": each item a
 * parameter name, an optional type (int, float, bool, str; str when none)
 * and either a default ("=10"), "?" (optional, no default) or nothing
 * (required). 0, CN_EBADPATTERN, CN_ENOMEM.
 */
static int parse_query_decl(const char *qs, cn_field **out)
{
    static const struct {
        const char *name;
        cn_type type;
    } types[] = {{"int", CN_INT}, {"float", CN_FLOAT}, {"bool", CN_BOOL}, {"str", CN_STR}};
    size_t n = 1;
    cn_field *fs;

    for (const char *p = qs; *p; p++)
        n += *p == '&';
    fs = calloc(n + 1, sizeof(*fs));
    if (fs == NULL)
        return CN_ENOMEM;
    *out = fs;
    for (const char *p = qs; *p;) {
        const char *end = p + strcspn(p, "&"), *eq = memchr(p, '=', (size_t)(end - p));
        const char *name_end = p + strcspn(p, ":=?&");
        size_t nlen = (size_t)(name_end - p);
        cn_field *f = fs++;
        if (!valid_name(p, nlen))
            return CN_EBADPATTERN;
        if ((f->name = strndup(p, nlen)) == NULL)
            return CN_ENOMEM;
        f->type = CN_STR;
        if (*name_end == ':') {
            const char *t = name_end + 1;
            size_t tlen = strcspn(t, "=?&");
            f->type = 0;
            for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
                if (strlen(types[i].name) == tlen && memcmp(types[i].name, t, tlen) == 0)
                    f->type = types[i].type;
            if (f->type == 0)
                return CN_EBADPATTERN;
            name_end = t + tlen;
        }
        if (eq) {
            if ((f->dflt = strndup(eq + 1, (size_t)(end - eq - 1))) == NULL)
                return CN_ENOMEM;
        } else if (*name_end == '?' && name_end + 1 == end) {
            /* optional, no default */
        } else if (name_end == end) {
            f->required = 1;
        } else {
            return CN_EBADPATTERN;
        }
        p = *end ? end + 1 : end;
    }
    return 0;
}

static void node_free(rnode *n)
{
    for (size_t i = 0; i < n->nkids; i++) {
        node_free(n->kids[i]);
        free(n->kids[i]);
    }
    free(n->kids);
    if (n->param) {
        node_free(n->param);
        free(n->param);
    }
    if (n->rest) {
        node_free(n->rest);
        free(n->rest);
    }
    for (int m = 0; m < CN__M_COUNT; m++) {
        cn__route *r = n->routes[m];
        if (r == NULL)
            continue;
        for (unsigned i = 0; i < r->nparams; i++)
            free(r->param_names[i]);
        cn__decl_free(r);
        free_query_decl(r->query);
        free_doc(&r->opts);
        free(r->lane);
        free(r->spec);
        free(r->label);
        free(r);
    }
    free(n->seg);
}

void cn__router_free(cn__router *r)
{
    if (r == NULL)
        return;
    node_free(&r->root);
    free(r);
}

static int seg_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return alen < blen ? -1 : 1;
    return memcmp(a, b, alen);
}

/* Binary search for a literal child; *pos gets the insertion point. */
static rnode *find_kid(const rnode *n, const char *seg, size_t len, size_t *pos)
{
    size_t lo = 0, hi = n->nkids;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = seg_cmp(seg, len, n->kids[mid]->seg, n->kids[mid]->seglen);
        if (c == 0) {
            if (pos)
                *pos = mid;
            return n->kids[mid];
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    if (pos)
        *pos = lo;
    return NULL;
}

static rnode *add_kid(rnode *n, const char *seg, size_t len)
{
    size_t pos;
    rnode *k = find_kid(n, seg, len, &pos), **kids;

    if (k)
        return k;
    k = calloc(1, sizeof(*k));
    kids = realloc(n->kids, (n->nkids + 1) * sizeof(*kids));
    if (k == NULL || kids == NULL) {
        free(k);
        if (kids)
            n->kids = kids;
        return NULL;
    }
    n->kids = kids;
    k->seg = malloc(len + 1);
    if (k->seg == NULL) {
        free(k);
        return NULL;
    }
    memcpy(k->seg, seg, len);
    k->seg[len] = 0;
    k->seglen = len;
    memmove(&kids[pos + 1], &kids[pos], (n->nkids - pos) * sizeof(*kids));
    kids[pos] = k;
    n->nkids++;
    return k;
}

static bool valid_name(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (i > 0 && c >= '0' && c <= '9')))
            return false;
    }
    return true;
}

/* "GET /users/{id:int}" -> "GET /users/{id}": how people name a route */
static char *make_label(const char *spec)
{
    char *out = malloc(strlen(spec) + 1), *o = out;
    bool in_param = false, skipping = false;

    if (out == NULL)
        return NULL;
    for (const char *p = spec; *p; p++) {
        if (*p == '{')
            in_param = true;
        else if (*p == '}')
            in_param = skipping = false;
        else if (*p == ':' && in_param)
            skipping = true;
        if (!skipping)
            *o++ = *p;
    }
    *o = 0;
    return out;
}

int cn__router_add(cn__router *r, const char *spec, cn_handler fn, void *data,
                   const cn_route_opts *opts, const cn__chain *chain)
{
    const char *sp, *path, *p;
    char *qs;
    int method;
    rnode *n = &r->root;
    cn__route *rt;
    int err = CN_ENOMEM;

    if (spec == NULL || fn == NULL)
        return CN_EINVAL;
    sp = strchr(spec, ' ');
    if (sp == NULL || (method = cn__method_index(spec, (size_t)(sp - spec))) < 0)
        return CN_EBADPATTERN;
    path = sp + 1;
    if (path[0] != '/')
        return CN_EBADPATTERN;

    rt = calloc(1, sizeof(*rt));
    if (rt == NULL)
        return CN_ENOMEM;
    rt->spec = strdup(spec);
    if (rt->spec == NULL)
        goto fail;
    /* "GET /items?limit:int=10": the query part declares parameters */
    if ((qs = strchr(rt->spec, '?')) != NULL) {
        *qs = 0;
        err = parse_query_decl(qs + 1, &rt->query);
        if (err < 0)
            goto fail;
        err = CN_ENOMEM;
    }
    rt->pattern = rt->spec + (path - spec);
    rt->label = make_label(rt->spec);
    if (rt->label == NULL)
        goto fail;
    rt->method = method;
    rt->fn = fn;
    rt->data = data;
    if (opts)
        rt->opts = *opts;
    if (copy_doc(&rt->opts) < 0)
        goto fail;
    rt->chain = chain;
    if (rt->opts.pool_limit > 0) {
        rt->lane = calloc(1, sizeof(*rt->lane));
        if (rt->lane == NULL)
            goto fail;
        rt->lane->limit = rt->opts.pool_limit;
        cn__list_init(&rt->lane->waiting);
    }

    /* walk "/a/{b:int}/c"; the root path "/" has one empty segment */
    p = rt->pattern + 1; /* the path, without a "?..." shorthand */
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len > 0 && p[0] == '{') {
            const char *colon = memchr(p, ':', len);
            size_t nlen = colon ? (size_t)(colon - p - 1) : len - 2;
            int type = CN__PARAM_STR;

            err = CN_EBADPATTERN;
            if (p[len - 1] != '}' || !valid_name(p + 1, nlen) || rt->nparams == CN__MAX_PARAMS)
                goto fail;
            if (colon) {
                size_t tlen = len - 2 - nlen - 1;
                if (tlen == 3 && memcmp(colon + 1, "int", 3) == 0)
                    type = CN__PARAM_INT;
                else if (tlen == 3 && memcmp(colon + 1, "str", 3) == 0)
                    type = CN__PARAM_STR;
                else if (tlen == 4 && memcmp(colon + 1, "path", 4) == 0 && slash == NULL)
                    type = CN__PARAM_PATH; /* the rest of the path: last only */
                else
                    goto fail;
            }
            for (unsigned i = 0; i < rt->nparams; i++)
                if (strlen(rt->param_names[i]) == nlen &&
                    memcmp(rt->param_names[i], p + 1, nlen) == 0)
                    goto fail; /* the same name twice */
            err = CN_ENOMEM;
            rt->param_names[rt->nparams] = strndup(p + 1, nlen);
            if (rt->param_names[rt->nparams] == NULL)
                goto fail;
            rt->param_types[rt->nparams++] = type;
            {
                rnode **kid = type == CN__PARAM_PATH ? &n->rest : &n->param;
                if (*kid == NULL && (*kid = calloc(1, sizeof(rnode))) == NULL)
                    goto fail;
                n = *kid;
            }
        } else {
            if (memchr(p, '{', len) || memchr(p, '}', len)) {
                err = CN_EBADPATTERN;
                goto fail;
            }
            if ((n = add_kid(n, p, len)) == NULL)
                goto fail;
        }
        if (slash == NULL)
            break;
        p = slash + 1;
    }
    if (n->routes[method]) {
        err = CN_EEXIST;
        goto fail;
    }
    err = cn__decl_prepare(rt);
    if (err < 0)
        goto fail;
    rt->seq = r->nroutes++;
    n->routes[method] = rt;
    return 0;

fail:
    /* nodes created on the way stay (empty); they never match a method */
    free_doc(&rt->opts);
    free(rt->lane);
    free_query_decl(rt->query);
    for (unsigned i = 0; i < rt->nparams; i++)
        free(rt->param_names[i]);
    free(rt->spec);
    free(rt->label);
    free(rt);
    return err;
}

typedef struct seg {
    const char *raw;
    size_t rawlen;
    char *dec; /* decoded, in the arena */
    size_t len;
} seg;

static const cn__route *node_route(const rnode *n, int method)
{
    if (method < 0)
        return NULL;
    if (n->routes[method])
        return n->routes[method];
    if (method == CN__M_HEAD)
        return n->routes[CN__M_GET];
    return NULL;
}

/* The methods of a node whose path matched, for the 405's Allow. */
static const rnode *path_only(const rnode *n, int method, unsigned nvals, unsigned *out_nvals,
                              unsigned *allow)
{
    if (node_route(n, method)) {
        *out_nvals = nvals;
        return n;
    }
    for (int m = 0; m < CN__M_COUNT; m++)
        if (n->routes[m])
            *allow |= 1u << m;
    return NULL;
}

/*
 * Depth-first search with literal-first preference, then a parameter, then
 * a {name:path} that takes every segment left (segs + i: *rest_from gets
 * i, and its value slot stays NULL). `vals` collects the parameter
 * segments along the current branch. Returns the matching node or NULL;
 * *allow collects the methods of every node whose path matched, so that a
 * 405 lists all of them (RFC 9110 15.5.6) -- when nothing matches, every
 * branch has been visited.
 */
static const rnode *walk(const rnode *n, const seg *segs, size_t i, size_t nsegs, int method,
                         const seg **vals, unsigned nvals, unsigned *out_nvals, unsigned *allow,
                         size_t *rest_from)
{
    const rnode *k, *hit;

    if (i == nsegs)
        return path_only(n, method, nvals, out_nvals, allow);
    k = find_kid(n, segs[i].dec, segs[i].len, NULL);
    if (k && (hit = walk(k, segs, i + 1, nsegs, method, vals, nvals, out_nvals, allow, rest_from)))
        return hit;
    if (n->param && segs[i].len > 0 && nvals < CN__MAX_PARAMS) {
        vals[nvals] = &segs[i];
        if ((hit = walk(n->param, segs, i + 1, nsegs, method, vals, nvals + 1, out_nvals, allow,
                        rest_from)))
            return hit;
    }
    if (n->rest && nvals < CN__MAX_PARAMS) {
        vals[nvals] = NULL;
        if ((hit = path_only(n->rest, method, nvals + 1, out_nvals, allow)))
            *rest_from = i;
        return hit;
    }
    return NULL;
}

int cn__router_match(const cn__router *r, int method, const char *path, size_t len,
                     cn__arena *arena, cn__match *m)
{
    seg segs[CN__MAX_SEGMENTS];
    const seg *vals[CN__MAX_PARAMS];
    size_t nsegs = 0, i;
    const char *p, *end = path + len;
    const rnode *hit;
    unsigned nvals = 0, allow = 0;
    size_t rest_from = 0;

    m->route = NULL;
    m->nparams = 0;
    m->allow = 0;
    if (len == 0 || path[0] != '/')
        return 404;
    for (p = path + 1;;) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *stop = slash ? slash : end;
        long dl;
        if (nsegs == CN__MAX_SEGMENTS)
            return 404;
        segs[nsegs].raw = p;
        segs[nsegs].rawlen = (size_t)(stop - p);
        segs[nsegs].dec = cn__arena_alloc(arena, segs[nsegs].rawlen + 1);
        if (segs[nsegs].dec == NULL)
            return 500;
        dl = cn__url_decode(segs[nsegs].dec, p, segs[nsegs].rawlen, false);
        if (dl < 0)
            return 400;
        segs[nsegs].len = (size_t)dl;
        nsegs++;
        if (slash == NULL)
            break;
        p = slash + 1;
    }

    hit = walk(&r->root, segs, 0, nsegs, method, vals, 0, &nvals, &allow, &rest_from);
    if (hit == NULL) {
        if (allow == 0)
            return 404;
        if (allow & (1u << CN__M_GET))
            allow |= 1u << CN__M_HEAD;
        m->allow = allow;
        return 405;
    }
    m->route = node_route(hit, method);
    m->nparams = nvals;
    for (i = 0; i < nvals; i++) {
        m->params[i].name = m->route->param_names[i];
        if (vals[i] == NULL) {
            /* {name:path}: the raw rest, decoded in one piece */
            const char *from = segs[rest_from].raw;
            char *dec = cn__arena_alloc(arena, (size_t)(end - from) + 1);
            long dl;
            if (dec == NULL)
                return 500;
            dl = cn__url_decode(dec, from, (size_t)(end - from), false);
            if (dl < 0)
                return 400;
            m->params[i].value = dec;
            m->params[i].len = (size_t)dl;
            continue;
        }
        m->params[i].value = vals[i]->dec;
        m->params[i].len = vals[i]->len;
    }
    return 0;
}

static void collect(const rnode *n, const cn__route **out, size_t *k)
{
    for (int m = 0; m < CN__M_COUNT; m++)
        if (n->routes[m])
            out[(*k)++] = n->routes[m];
    for (size_t i = 0; i < n->nkids; i++)
        collect(n->kids[i], out, k);
    if (n->param)
        collect(n->param, out, k);
}

static int by_seq(const void *a, const void *b)
{
    unsigned x = (*(const cn__route *const *)a)->seq, y = (*(const cn__route *const *)b)->seq;
    return x < y ? -1 : x > y;
}

int cn__router_routes(const cn__router *r, const cn__route ***out, size_t *n)
{
    const cn__route **all = malloc((r->nroutes ? r->nroutes : 1) * sizeof(*all));
    size_t k = 0;

    if (all == NULL)
        return CN_ENOMEM;
    collect(&r->root, all, &k);
    qsort(all, k, sizeof(*all), by_seq);
    *out = all;
    *n = k;
    return 0;
}

size_t cn__allow_header(unsigned allow, char *buf, size_t size)
{
    size_t n = 0;

    if (size == 0)
        return 0;
    buf[0] = 0;
    for (int k = 0; k < CN__M_COUNT; k++) {
        size_t l;
        if (!(allow & (1u << k)))
            continue;
        l = strlen(method_names[k]);
        if (n + l + 3 > size)
            break;
        if (n) {
            memcpy(buf + n, ", ", 2);
            n += 2;
        }
        memcpy(buf + n, method_names[k], l);
        n += l;
        buf[n] = 0;
    }
    return n;
}
