/* req.c -- the request view handlers see, and how the parser builds it. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "json.h"
#include "req.h"
#include "url.h"

/* The request struct and its first arena bytes come in one allocation. */
#define REQ_INLINE_ARENA 2048

struct cn__defer {
    cn__defer *next;
    void (*fn)(void *);
    void *arg;
};

cn_req *cn__req_new(cn_app *app, void *owner)
{
    cn_req *req = malloc(sizeof(*req) + REQ_INLINE_ARENA);

    if (req == NULL)
        return NULL;
    memset(req, 0, sizeof(*req));
    cn__arena_init(&req->arena, req + 1, REQ_INLINE_ARENA);
    req->app = app;
    req->owner = owner;
    req->method = -1;
    req->method_name = "";
    req->http_major = 1;
    req->http_minor = 1;
    return req;
}

void cn__req_free(cn_req *req)
{
    cn__defer *d;

    if (req == NULL)
        return;
    while ((d = req->defers) != NULL) {
        req->defers = d->next;
        d->fn(d->arg);
    }
    cn__json_free(req->app, req->json); /* a big tree on the pool */
    free(req->body);
    cn__arena_free(&req->arena);
    free(req);
}

int cn__req_set_target(cn_req *req, const char *s, size_t n)
{
    char *t = cn__arena_realloc(&req->arena, req->target, req->target_len ? req->target_len + 1 : 0,
                                req->target_len + n + 1);
    if (t == NULL)
        return CN_ENOMEM;
    memcpy(t + req->target_len, s, n);
    req->target = t;
    req->target_len += n;
    t[req->target_len] = 0;
    return 0;
}

int cn__req_add_header(cn_req *req, const char *name, size_t nlen, const char *value, size_t vlen)
{
    cn__hdr *h;

    if (req->nheaders == req->hcap) {
        unsigned cap = req->hcap ? req->hcap * 2 : 16;
        h = cn__arena_realloc(&req->arena, req->headers, req->hcap * sizeof(*h), cap * sizeof(*h));
        if (h == NULL)
            return CN_ENOMEM;
        req->headers = h;
        req->hcap = cap;
    }
    h = &req->headers[req->nheaders++];
    h->name = name;
    h->nlen = nlen;
    h->value = value;
    h->vlen = vlen;
    return 0;
}

int cn__req_append_body(cn_req *req, const char *p, size_t n)
{
    /* the body lives in its own heap block so that growth is amortised and
     * the arena is not fragmented by large copies */
    if (req->body_cap - req->body_len < n + 1) {
        size_t cap = req->body_cap ? req->body_cap : 1024;
        char *b;
        while (cap - req->body_len < n + 1)
            cap *= 2;
        b = realloc(req->body, cap);
        if (b == NULL)
            return CN_ENOMEM;
        req->body = b;
        req->body_cap = cap;
    }
    memcpy(req->body + req->body_len, p, n);
    req->body_len += n;
    req->body[req->body_len] = 0;
    return 0;
}

int cn__req_finish_head(cn_req *req)
{
    const char *t = req->target ? req->target : "";
    const char *q = memchr(t, '?', req->target_len);
    size_t plen = q ? (size_t)(q - t) : req->target_len;
    long dl;

    /* origin-form only ("/path"); "*" (OPTIONS) and absolute-form get 404 by
     * the router, which is what a server without a proxy role answers */
    if (q) {
        req->query = q + 1;
        req->query_len = req->target_len - plen - 1;
    }
    req->path = cn__arena_alloc(&req->arena, plen + 1);
    if (req->path == NULL)
        return 500;
    dl = cn__url_decode(req->path, t, plen, false);
    if (dl < 0)
        return 400;
    return 0;
}

/* ---- public accessors ---- */

const char *cn_req_method(const cn_req *req)
{
    return req->method_name;
}

const char *cn_req_path(const cn_req *req)
{
    return req->path ? req->path : "";
}

const char *cn_req_target(const cn_req *req)
{
    return req->target ? req->target : "";
}

const char *cn_req_route(const cn_req *req)
{
    return req->match.route ? req->match.route->pattern : NULL;
}

void *cn_req_route_data(const cn_req *req)
{
    return req->match.route ? req->match.route->data : NULL;
}

int cn_req_http_minor(const cn_req *req)
{
    return req->http_minor;
}

cn_app *cn_req_app(const cn_req *req)
{
    return req->app;
}

static const cn__param *find_param(const cn_req *req, const char *name)
{
    for (unsigned i = 0; i < req->match.nparams; i++)
        if (strcmp(req->match.params[i].name, name) == 0)
            return &req->match.params[i];
    return NULL;
}

const char *cn_req_param(const cn_req *req, const char *name)
{
    const cn__param *p = find_param(req, name);
    return p ? p->value : NULL;
}

int cn_req_param_int(const cn_req *req, const char *name, int64_t *out)
{
    const cn__param *p = find_param(req, name);
    if (p == NULL)
        return CN_ENOENT;
    return cn__parse_i64(p->value, p->len, out);
}

const char *cn_req_query(cn_req *req, const char *name)
{
    const char *raw;
    size_t rlen;
    char *dec;

    if (req->query == NULL || name == NULL ||
        !cn__query_find(req->query, req->query_len, name, &raw, &rlen))
        return NULL;
    dec = cn__arena_alloc(&req->arena, rlen + 1);
    if (dec == NULL || cn__url_decode(dec, raw, rlen, true) < 0)
        return NULL;
    return dec;
}

int cn_req_query_int(cn_req *req, const char *name, int64_t *out)
{
    const char *v = cn_req_query(req, name);
    if (v == NULL)
        return CN_ENOENT;
    return cn__parse_i64(v, strlen(v), out);
}

const char *cn_req_header(const cn_req *req, const char *name)
{
    for (unsigned i = 0; i < req->nheaders; i++)
        if (cn__ieq(req->headers[i].name, req->headers[i].nlen, name))
            return req->headers[i].value;
    return NULL;
}

size_t cn_req_header_count(const cn_req *req)
{
    return req->nheaders;
}

int cn_req_header_at(const cn_req *req, size_t i, cn_str *name, cn_str *value)
{
    if (i >= req->nheaders)
        return CN_ENOENT;
    if (name) {
        name->ptr = req->headers[i].name;
        name->len = req->headers[i].nlen;
    }
    if (value) {
        value->ptr = req->headers[i].value;
        value->len = req->headers[i].vlen;
    }
    return 0;
}

cn_str cn_req_body(const cn_req *req)
{
    cn_str s = {req->body ? req->body : "", req->body_len};
    return s;
}

int cn_req_json(cn_req *req, cJSON **out)
{
    if (out)
        *out = NULL;
    if (req->json == NULL && req->json_err == 0)
        req->json_err = cn__json_parse_off_loop(req->app, req->body, req->body_len, &req->json);
    if (req->json_err)
        return req->json_err;
    if (out)
        *out = req->json;
    return 0;
}

void *cn_req_alloc(cn_req *req, size_t size)
{
    return cn__arena_alloc(&req->arena, size);
}

char *cn_req_strdup(cn_req *req, const char *s)
{
    return s ? cn__arena_strndup(&req->arena, s, strlen(s)) : NULL;
}

char *cn_req_strndup(cn_req *req, const char *s, size_t n)
{
    return s ? cn__arena_strndup(&req->arena, s, n) : NULL;
}

char *cn_req_sprintf(cn_req *req, const char *fmt, ...)
{
    va_list ap;
    int n;
    char *p;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    p = cn__arena_alloc(&req->arena, (size_t)n + 1);
    if (p == NULL)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

int cn_req_defer(cn_req *req, void (*fn)(void *), void *arg)
{
    cn__defer *d;

    if (fn == NULL)
        return CN_EINVAL;
    d = cn__arena_alloc(&req->arena, sizeof(*d));
    if (d == NULL)
        return CN_ENOMEM;
    d->fn = fn;
    d->arg = arg;
    d->next = req->defers;
    req->defers = d;
    return 0;
}

char *cn_req_url_escape(cn_req *req, const char *s, int part)
{
    size_t len;
    int n;
    char *p;

    if (req == NULL || s == NULL)
        return NULL;
    len = strlen(s);
    n = cn_url_escape(NULL, 0, s, len, part);
    if (n < 0)
        return NULL;
    p = cn__arena_alloc(&req->arena, (size_t)n + 1);
    if (p)
        cn_url_escape(p, (size_t)n + 1, s, len, part);
    return p;
}

const char *cn_req_id(const cn_req *req)
{
    return req ? req->id : NULL;
}

int cn_req_set_id(cn_req *req, const char *id)
{
    size_t n;
    char *copy;

    if (req == NULL || id == NULL)
        return CN_EINVAL;
    n = strlen(id);
    if (n == 0 || n > 128)
        return CN_EINVAL;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)id[i] <= ' ' || (unsigned char)id[i] >= 127)
            return CN_EINVAL;
    copy = cn__arena_strndup(&req->arena, id, n);
    if (copy == NULL)
        return CN_ENOMEM;
    req->id = copy;
    return 0;
}

void cn_req_log(const cn_req *req, int level, const char *fmt, ...)
{
    char line[1024];
    int n = 0;
    va_list ap;

    if (req && req->id)
        n = snprintf(line, sizeof line, "[%s] ", req->id);
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    cn__log(level, "%s", line);
}
