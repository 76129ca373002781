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

bool cn__valid_host(const char *h, size_t n)
{
    /* reg-name / IPv4 / [IPv6] with an optional :port (RFC 9110 7.2) */
    size_t i = 0;

    if (n == 0)
        return true; /* empty Host is allowed when the target has no authority */
    if (h[0] == '[') {
        while (i < n && h[i] != ']') {
            char ch = h[i];
            if (!(ch == '[' || ch == ':' || ch == '.' || (ch >= '0' && ch <= '9') ||
                  (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F')))
                return false;
            i++;
        }
        if (i == n)
            return false;
        i++;
    } else {
        for (; i < n && h[i] != ':'; i++) {
            unsigned char ch = (unsigned char)h[i];
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || strchr("-._~!$&'()*+,;=%", ch)))
                return false;
        }
    }
    if (i < n) {
        if (h[i] != ':')
            return false;
        for (i++; i < n; i++)
            if (h[i] < '0' || h[i] > '9')
                return false;
    }
    return true;
}

/* The length of a leading "http://" or "https://" (scheme in any case), or 0. */
static size_t http_scheme(const char *t, size_t n)
{
    if (n >= 7 && cn__ieq(t, 4, "http") && memcmp(t + 4, "://", 3) == 0)
        return 7;
    if (n >= 8 && cn__ieq(t, 5, "https") && memcmp(t + 5, "://", 3) == 0)
        return 8;
    return 0;
}

/*
 * An absolute-form target ("http://host:port/path?query"), which a server
 * MUST accept (RFC 9112 3.2.2). Its authority is the request's authority: it
 * replaces the Host header field's value (3.2.2, 3.3), or becomes one (an
 * HTTP/1.0 request may have none). What follows it is the origin-form target
 * ("/" when the path is empty), which becomes req->target: whatever looks at
 * the target later (the router, redirects, the access log) sees "/path?query".
 * The Host field itself was checked already: present in HTTP/1.1, once, valid.
 * 0, or the status to answer.
 */
static int absolute_form(cn_req *req)
{
    const char *t = req->target, *auth, *rest;
    size_t n = req->target_len, skip = http_scheme(t, n), alen = 0, rlen, lead;
    char *origin, *host;
    cn__hdr *h = NULL;

    if (skip == 0)
        return 400; /* another scheme, or no target form at all */
    auth = t + skip;
    while (skip + alen < n && auth[alen] != '/' && auth[alen] != '?')
        alen++;
    /* an empty host is invalid (RFC 9110 4.2.1); userinfo is an error
     * (4.2.4); otherwise the same rules as a Host field value */
    if (alen == 0 || auth[0] == ':' || memchr(auth, '@', alen) || !cn__valid_host(auth, alen))
        return 400;
    rest = auth + alen;
    rlen = n - skip - alen;
    origin = cn__arena_alloc(&req->arena, rlen + 2);
    host = cn__arena_strndup(&req->arena, auth, alen);
    if (origin == NULL || host == NULL)
        return 500;
    lead = rlen == 0 || rest[0] == '?'; /* an empty path is "/" */
    origin[0] = '/';
    memcpy(origin + lead, rest, rlen);
    req->target_len = lead + rlen;
    origin[req->target_len] = 0;
    req->target = origin;
    for (unsigned i = 0; i < req->nheaders && h == NULL; i++)
        if (cn__ieq(req->headers[i].name, req->headers[i].nlen, "host"))
            h = &req->headers[i];
    if (h == NULL)
        return cn__req_add_header(req, "Host", 4, host, alen) < 0 ? 500 : 0;
    h->value = host;
    h->vlen = alen;
    return 0;
}

int cn__req_finish_head(cn_req *req)
{
    const char *t, *q;
    size_t plen;
    long dl;
    int st;

    if (req->target == NULL && cn__req_set_target(req, "", 0) < 0)
        return 500;
    /* no fragment in any request-target form (RFC 9112 3.2) */
    if (memchr(req->target, '#', req->target_len))
        return 400;
    /* origin-form ("/path?query") and asterisk-form ("*", which only OPTIONS
     * may use and no route can match) as they are; absolute-form is made
     * origin-form; anything else (CONNECT's authority-form) is a 400 */
    if (req->target_len > 0 && req->target[0] != '/' && strcmp(req->target, "*") != 0) {
        st = absolute_form(req);
        if (st != 0)
            return st;
    }
    t = req->target;
    q = memchr(t, '?', req->target_len);
    plen = q ? (size_t)(q - t) : req->target_len;
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
