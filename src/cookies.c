/*
 * cookies.c -- cookies (canteen/cookies.h): found by name in the request's
 * Cookie headers, and set or deleted with a validated Set-Cookie.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "batteries.h"
#include "common.h"
#include "req.h"

/* ---- shared lexical checks ---- */

/* cookie-octet: %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E */
static bool cookie_octet(unsigned char c)
{
    return c >= 0x21 && c <= 0x7e && c != '"' && c != ',' && c != ';' && c != '\\';
}

bool cn__is_cookie_value(const char *s, size_t n)
{
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        s++;
        n -= 2;
    }
    for (size_t i = 0; i < n; i++)
        if (!cookie_octet((unsigned char)s[i]))
            return false;
    return true;
}

/* ---- reading ---- */

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

bool cn__cookie_find(const char *hdr, size_t len, const char *name, cn_str *value)
{
    size_t nlen = strlen(name);
    const char *p = hdr, *end = hdr + len;

    while (p < end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *stop = semi ? semi : end, *eq, *ne, *vs, *ve;

        while (p < stop && is_space(*p))
            p++;
        eq = memchr(p, '=', (size_t)(stop - p));
        if (eq) {
            ne = eq;
            while (ne > p && is_space(ne[-1]))
                ne--;
            vs = eq + 1;
            ve = stop;
            while (vs < ve && is_space(*vs))
                vs++;
            while (ve > vs && is_space(ve[-1]))
                ve--;
            if ((size_t)(ne - p) == nlen && memcmp(p, name, nlen) == 0) {
                if (ve - vs >= 2 && vs[0] == '"' && ve[-1] == '"') {
                    vs++;
                    ve--;
                }
                value->ptr = vs;
                value->len = (size_t)(ve - vs);
                return true;
            }
        }
        p = semi ? semi + 1 : end;
    }
    return false;
}

const char *cn_req_cookie(cn_req *req, const char *name)
{
    if (req == NULL || name == NULL)
        return NULL;
    for (unsigned i = 0; i < req->nheaders; i++) {
        const cn__hdr *h = &req->headers[i];
        cn_str v;
        if (cn__ieq(h->name, h->nlen, "cookie") && cn__cookie_find(h->value, h->vlen, name, &v))
            return cn__arena_strndup(&req->arena, v.ptr, v.len);
    }
    return NULL;
}

/* ---- setting ---- */

/* An attribute value (Path, Domain): no CTL, no ';' (RFC 6265 4.1.1 av-octet). */
static bool attr_ok(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f || c == ';')
            return false;
    }
    return true;
}

/* Append `a` then `b` (may be NULL) to buf; CN_ENOMEM when it is full. */
static int append(char *buf, size_t size, size_t *len, const char *a, const char *b)
{
    size_t na = strlen(a), nb = b ? strlen(b) : 0;

    if (na + nb >= size - *len)
        return CN_ENOMEM;
    memcpy(buf + *len, a, na);
    if (nb)
        memcpy(buf + *len + na, b, nb);
    *len += na + nb;
    buf[*len] = 0;
    return 0;
}

/* Build and add the Set-Cookie line; `deleting` ignores the lifetimes. */
static int set_cookie(cn_res *res, const char *name, const char *value, const cn_cookie_opts *o,
                      bool deleting)
{
    static const cn_cookie_opts none;
    const char *path;
    cn_req *req;
    size_t size, len = 0;
    char num[32], date[32], *line;
    int rc = 0;

    if (res == NULL || name == NULL || value == NULL)
        return CN_EINVAL;
    if (o == NULL)
        o = &none;
    path = o->path ? o->path : "/";
    if (!deleting && (o->max_age < 0 || o->expires < 0))
        return CN_EINVAL;
    if ((unsigned)o->same_site > CN_SAMESITE_OMIT ||
        (o->same_site == CN_SAMESITE_NONE && !o->secure))
        return CN_EINVAL;
    if (!cn__is_token(name, strlen(name)) || !cn__is_cookie_value(value, strlen(value)) ||
        !attr_ok(path) || (o->domain && (!attr_ok(o->domain) || o->domain[0] == 0)))
        return CN_EBADHEADER;
    req = cn__res_req(res);
    size = strlen(name) + strlen(value) + strlen(path) + (o->domain ? strlen(o->domain) : 0) + 160;
    line = cn_req_alloc(req, size);
    if (line == NULL)
        return CN_ENOMEM;
    line[0] = 0;
    rc = append(line, size, &len, name, "=");
    rc = rc ? rc : append(line, size, &len, value, NULL);
    rc = rc ? rc : append(line, size, &len, "; Path=", path);
    if (deleting) {
        rc = rc ? rc : append(line, size, &len, "; Max-Age=0", NULL);
        cn__imf_date(0, date);
        rc = rc ? rc : append(line, size, &len, "; Expires=", date);
    } else {
        if (o->max_age > 0) {
            snprintf(num, sizeof num, "%lld", (long long)o->max_age);
            rc = rc ? rc : append(line, size, &len, "; Max-Age=", num);
        }
        if (o->expires > 0) {
            cn__imf_date((time_t)o->expires, date);
            rc = rc ? rc : append(line, size, &len, "; Expires=", date);
        }
    }
    if (o->domain)
        rc = rc ? rc : append(line, size, &len, "; Domain=", o->domain);
    if (o->secure)
        rc = rc ? rc : append(line, size, &len, "; Secure", NULL);
    if (o->http_only)
        rc = rc ? rc : append(line, size, &len, "; HttpOnly", NULL);
    if (o->same_site != CN_SAMESITE_OMIT) {
        static const char *const names[] = {"Lax", "Strict", "None"};
        rc = rc ? rc : append(line, size, &len, "; SameSite=", names[o->same_site]);
    }
    return rc ? rc : cn_res_header(res, "Set-Cookie", line);
}

int cn_res_set_cookie(cn_res *res, const char *name, const char *value, const cn_cookie_opts *opts)
{
    return set_cookie(res, name, value, opts, false);
}

int cn_res_delete_cookie(cn_res *res, const char *name, const cn_cookie_opts *opts)
{
    return set_cookie(res, name, "", opts, true);
}
