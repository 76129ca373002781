/*
 * slashes.c -- Starlette's redirect_slashes (canteen/batteries.h): a
 * request no route takes, whose path with a trailing slash added or
 * removed does match, gets 307 to that path.
 */
#include <string.h>

#include "app.h"
#include "batteries.h"
#include "common.h"
#include "req.h"
#include "router.h"

/* The raw path with its trailing slash toggled, or NULL. */
static char *toggled(cn_req *req, const char *raw, size_t n)
{
    if (n > 1 && raw[n - 1] == '/')
        return cn_req_strndup(req, raw, n - 1);
    if (n >= 1 && raw[n - 1] != '/') {
        char *p = cn_req_alloc(req, n + 2);
        if (p) {
            memcpy(p, raw, n);
            p[n] = '/';
            p[n + 1] = 0;
        }
        return p;
    }
    return NULL;
}

static int redirect_slashes(cn_req *req, cn_res *res, void *data)
{
    const cn__router *router = cn__app_router(cn_req_app(req));
    const char *raw = cn_req_target(req);
    size_t n = req->query ? (size_t)(req->query - 1 - raw) : strlen(raw);
    cn__match m;
    char *alt;

    (void)data;
    /* only what no route takes at all (a 404, not a 405 or a 400) */
    if (req->match.route || req->match.allow || req->path == NULL || n == 0 || raw[0] != '/')
        return cn_next(req, res);
    /* "//evil.example/" or "/\evil.example": a browser reads the Location
     * as another host; no redirect may leave this server */
    if (n >= 2 && (raw[1] == '/' || raw[1] == '\\'))
        return cn_next(req, res);
    alt = toggled(req, raw, n);
    if (alt == NULL ||
        cn__router_match(router, req->method, alt, strlen(alt), &req->arena, &m) != 0)
        return cn_next(req, res);
    if (req->query)
        alt = cn_req_sprintf(req, "%s?%.*s", alt, (int)req->query_len, req->query);
    if (alt == NULL)
        return CN_ENOMEM;
    switch (cn__res_redirect(res, 307, alt)) {
    case 0:
        return 0;
    case CN_EBADHEADER:
        return cn_next(req, res); /* a target cn_res_header refuses: no redirect */
    default:
        return CN_ENOMEM;
    }
}

int cn_app_redirect_slashes(cn_app *app)
{
    if (app == NULL)
        return CN_EINVAL;
    if (!cn__app_is_new(app))
        return CN_ESTATE;
    return cn_app_use(app, "redirect-slashes", redirect_slashes, NULL);
}
