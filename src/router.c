/*
 * router.c -- a trie of path segments. Each node has literal children
 * (sorted, binary searched) and at most one parameter child, and holds one
 * route per method. Matching walks the request path segment by segment, so
 * its cost depends on the path's depth and each node's fan-out, never on the
 * total number of routes. A literal segment wins over a parameter; when the
 * literal branch dead-ends, the parameter branch is tried (backtracking).
 */
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
    cn__route *routes[CN__M_COUNT];
};

struct cn__router {
    rnode root;
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
    for (int m = 0; m < CN__M_COUNT; m++) {
        cn__route *r = n->routes[m];
        if (r == NULL)
            continue;
        for (unsigned i = 0; i < r->nparams; i++)
            free(r->param_names[i]);
        cn__decl_free(r);
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
    rt->pattern = rt->spec + (path - spec);
    rt->label = make_label(spec);
    if (rt->label == NULL)
        goto fail;
    rt->method = method;
    rt->fn = fn;
    rt->data = data;
    if (opts)
        rt->opts = *opts;
    rt->chain = chain;

    /* walk "/a/{b:int}/c"; the root path "/" has one empty segment */
    p = path + 1;
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
            if (n->param == NULL && (n->param = calloc(1, sizeof(rnode))) == NULL)
                goto fail;
            n = n->param;
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
    n->routes[method] = rt;
    return 0;

fail:
    /* nodes created on the way stay (empty); they never match a method */
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

/*
 * Depth-first search with literal-first preference. `vals` collects the
 * parameter segments along the current branch. Returns the matching node or
 * NULL; *allow collects the methods of every node whose path matched, so that
 * a 405 lists all of them (RFC 9110 15.5.6) -- when nothing matches, every
 * branch has been visited.
 */
static const rnode *walk(const rnode *n, const seg *segs, size_t i, size_t nsegs, int method,
                         const seg **vals, unsigned nvals, unsigned *out_nvals, unsigned *allow)
{
    const rnode *k, *hit;

    if (i == nsegs) {
        if (node_route(n, method)) {
            *out_nvals = nvals;
            return n;
        }
        for (int m = 0; m < CN__M_COUNT; m++)
            if (n->routes[m])
                *allow |= 1u << m;
        return NULL;
    }
    k = find_kid(n, segs[i].dec, segs[i].len, NULL);
    if (k && (hit = walk(k, segs, i + 1, nsegs, method, vals, nvals, out_nvals, allow)))
        return hit;
    if (n->param && segs[i].len > 0 && nvals < CN__MAX_PARAMS) {
        vals[nvals] = &segs[i];
        if ((hit = walk(n->param, segs, i + 1, nsegs, method, vals, nvals + 1, out_nvals, allow)))
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

    hit = walk(&r->root, segs, 0, nsegs, method, vals, 0, &nvals, &allow);
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
        m->params[i].value = vals[i]->dec;
        m->params[i].len = vals[i]->len;
    }
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
