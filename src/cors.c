/*
 * cors.c -- cross-origin resource sharing (canteen/batteries.h), with
 * Starlette's CORSMiddleware semantics: preflights answered here, for any
 * path; other requests from an allowed origin get the headers that let a
 * script read the response.
 */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "batteries.h"
#include "common.h"

typedef struct cors {
    cn_cors_opts o;
    bool any_origin, any_method, any_header;
    bool explicit_origin; /* the answer names the request's origin (Vary: Origin) */
    bool has_regex;
    regex_t re;
    char *methods; /* "GET, POST" for Access-Control-Allow-Methods */
    char *headers; /* the allowed request headers, safelisted ones included */
    char *expose;  /* Access-Control-Expose-Headers, or NULL */
    char max_age[24];
} cors;

static bool list_has(const char *const *l, const char *s)
{
    for (; l && *l; l++)
        if (strcmp(*l, s) == 0)
            return true;
    return false;
}

/* "a, b, c" from `extra` then `l`, each name once (case-insensitive), malloc'd. */
static char *join(const char *const *extra, const char *const *l)
{
    size_t n = 1;
    char *out;

    for (const char *const *p = extra; p && *p; p++)
        n += strlen(*p) + 2;
    for (const char *const *p = l; p && *p; p++)
        n += strlen(*p) + 2;
    out = malloc(n);
    if (out == NULL)
        return NULL;
    out[0] = 0;
    for (int k = 0; k < 2; k++)
        for (const char *const *p = k ? l : extra; p && *p; p++) {
            if (cn__list_has_token(out, *p))
                continue; /* "Content-Type" listed again by the user */
            if (out[0])
                strcat(out, ", ");
            strcat(out, *p);
        }
    return out;
}

static void cors_free(void *p)
{
    cors *c = p;

    if (c->has_regex)
        regfree(&c->re);
    free(c->methods);
    free(c->headers);
    free(c->expose);
    free(c);
}

static bool origin_ok(const cors *c, const char *origin)
{
    return c->any_origin || list_has(c->o.allow_origins, origin) ||
           (c->has_regex && regexec(&c->re, origin, 0, NULL, 0) == 0);
}

/* Every requested header ("X-A, x-b") is allowed. */
static bool headers_ok(const cors *c, const char *requested)
{
    static const char *const safe[] = {"accept", "accept-language", "content-language",
                                       "content-type", NULL};
    const char *p = requested;

    while (*p) {
        size_t k;
        bool ok = false;
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        k = strcspn(p, " \t,");
        if (k == 0)
            break;
        for (int t = 0; t < 2 && !ok; t++)
            for (const char *const *l = t ? c->o.allow_headers : safe; l && *l && !ok; l++)
                ok = strlen(*l) == k && strncasecmp(*l, p, k) == 0;
        if (!ok)
            return false;
        p += k;
    }
    return true;
}

static int preflight(const cors *c, cn_req *req, cn_res *res, const char *origin)
{
    const char *method = cn_req_header(req, "access-control-request-method");
    const char *hdrs = cn_req_header(req, "access-control-request-headers");
    bool bad_origin = !origin_ok(c, origin);
    bool bad_method = !c->any_method && !list_has(c->o.allow_methods, method);
    bool bad_headers = hdrs && !c->any_header && !headers_ok(c, hdrs);
    int rc = 0;

    if (c->explicit_origin) {
        rc = cn__res_add_vary(res, "Origin");
        if (rc == 0 && !bad_origin)
            rc = cn_res_header(res, "Access-Control-Allow-Origin", origin);
    } else {
        rc = cn_res_header(res, "Access-Control-Allow-Origin", "*");
    }
    if (rc == 0)
        rc =
            cn_res_header(res, "Access-Control-Allow-Methods", c->any_method ? method : c->methods);
    if (rc == 0)
        rc = cn_res_header(res, "Access-Control-Max-Age", c->max_age);
    /* "*" echoes what was asked; a list is given whole */
    if (rc == 0 && c->any_header && hdrs)
        rc = cn_res_header(res, "Access-Control-Allow-Headers", hdrs);
    else if (rc == 0 && !c->any_header)
        rc = cn_res_header(res, "Access-Control-Allow-Headers", c->headers);
    if (rc == 0 && c->o.allow_credentials)
        rc = cn_res_header(res, "Access-Control-Allow-Credentials", "true");
    if (rc < 0)
        return rc;
    if (bad_origin || bad_method || bad_headers) {
        /* "Disallowed CORS origin, method, headers", as Starlette says it */
        char msg[64] = "Disallowed CORS";
        const char *what[] = {bad_origin ? "origin" : NULL, bad_method ? "method" : NULL,
                              bad_headers ? "headers" : NULL};
        const char *sep = " ";
        for (size_t i = 0; i < CN__ARRAY_SIZE(what); i++)
            if (what[i]) {
                strcat(strcat(msg, sep), what[i]);
                sep = ", ";
            }
        return cn_res_text(res, 400, msg);
    }
    return cn_res_text(res, 200, "OK");
}

static int cors_mw(cn_req *req, cn_res *res, void *data)
{
    const cors *c = data;
    const char *origin = cn_req_header(req, "origin");
    int rc = 0;

    /* a cache must keep the answers for different origins apart */
    if (c->explicit_origin && !c->any_origin)
        rc = cn__res_add_vary(res, "Origin");
    if (rc < 0)
        return rc;
    if (origin == NULL)
        return cn_next(req, res);
    if (strcmp(cn_req_method(req), "OPTIONS") == 0 &&
        cn_req_header(req, "access-control-request-method"))
        return preflight(c, req, res, origin);
    /* a simple (or actual) request: headers before the chain, so that
     * error responses and streams carry them too */
    if (origin_ok(c, origin)) {
        bool echo = c->explicit_origin || cn_req_header(req, "cookie") != NULL;
        rc = cn_res_header(res, "Access-Control-Allow-Origin", echo ? origin : "*");
        if (rc == 0 && echo)
            rc = cn__res_add_vary(res, "Origin");
        if (rc == 0 && c->o.allow_credentials)
            rc = cn_res_header(res, "Access-Control-Allow-Credentials", "true");
        if (rc == 0 && c->expose)
            rc = cn_res_header(res, "Access-Control-Expose-Headers", c->expose);
        if (rc < 0)
            return rc;
    }
    return cn_next(req, res);
}

int cn_app_cors(cn_app *app, const cn_cors_opts *opts)
{
    static const char *const get_only[] = {"GET", NULL};
    static const char *const safe[] = {"Accept", "Accept-Language", "Content-Language",
                                       "Content-Type", NULL};
    cors *c;
    int rc = CN_ENOMEM;

    if (app == NULL || opts == NULL)
        return CN_EINVAL;
    if (!cn__app_is_new(app))
        return CN_ESTATE;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return CN_ENOMEM;
    c->o = *opts;
    if (c->o.allow_methods == NULL)
        c->o.allow_methods = get_only;
    c->any_origin = list_has(c->o.allow_origins, "*");
    c->any_method = list_has(c->o.allow_methods, "*");
    c->any_header = list_has(c->o.allow_headers, "*");
    /* with credentials "*" is not allowed by browsers: the origin is echoed */
    c->explicit_origin = !c->any_origin || c->o.allow_credentials;
    if (c->o.allow_origin_regex) {
        size_t n = strlen(c->o.allow_origin_regex);
        char *anchored = malloc(n + 5);
        if (anchored == NULL)
            goto fail;
        snprintf(anchored, n + 5, "^(%s)$", c->o.allow_origin_regex);
        rc = regcomp(&c->re, anchored, REG_EXTENDED | REG_NOSUB);
        free(anchored);
        if (rc != 0) {
            rc = CN_EINVAL;
            goto fail;
        }
        c->has_regex = true;
        rc = CN_ENOMEM;
    }
    c->methods = join(NULL, c->o.allow_methods);
    c->headers = join(safe, c->o.allow_headers);
    if (c->methods == NULL || c->headers == NULL)
        goto fail;
    if (c->o.expose_headers && c->o.expose_headers[0] &&
        (c->expose = join(NULL, c->o.expose_headers)) == NULL)
        goto fail;
    snprintf(c->max_age, sizeof c->max_age, "%d",
             c->o.max_age == 0  ? 600
             : c->o.max_age < 0 ? 0
                                : c->o.max_age);
    rc = cn__app_adopt(app, cors_free, c);
    if (rc < 0)
        goto fail;
    return cn_app_use(app, "cors", cors_mw, c);
fail:
    cors_free(c);
    return rc;
}
