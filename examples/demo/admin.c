/*
 * admin.c -- the demo's admin routes: a router guarded by a dependency
 * (FastAPI's Depends with an APIRouter), and an audit line written by a
 * background task after each answer.
 *
 *   GET /admin/stats   the server's counters; needs Authorization: Bearer
 *                      <token>, the token from $CANTEEN_DEMO_ADMIN_TOKEN
 *                      (default "demo-admin-token"); 401 without it, 403
 *                      with a wrong one
 */
#include <stdlib.h>
#include <string.h>

#include <canteen.h>

#include "demo.h"

static const char *admin_token(void)
{
    const char *t = getenv("CANTEEN_DEMO_ADMIN_TOKEN");
    return t && *t ? t : "demo-admin-token";
}

/* The dependency: who is asking, or the request fails with 401/403. */
static int require_admin(cn_req *req, cn_res *res, void *data, void **value)
{
    const char *auth = cn_req_header(req, "authorization");

    (void)data;
    if (auth == NULL || strncmp(auth, "Bearer ", 7) != 0) {
        cn_res_header(res, "WWW-Authenticate", "Bearer");
        return cn_res_raise(res, 401, "Not authenticated");
    }
    if (strcmp(auth + 7, admin_token()) != 0)
        return cn_res_raise(res, 403, "Not an admin");
    *value = "admin";
    return 0;
}

static const cn_dep admin = {.name = "admin", .resolve = require_admin};

/* The audit line, after the response has gone (the client is not kept waiting). */
typedef struct audit {
    cn_req *req;
    cn_res *res;
    const char *who; /* taken in the handler: dependencies are cleaned up before */
} audit;

static int audit_line(void *arg)
{
    audit *a = arg;

    cn_req_log(a->req, CN_LOG_INFO, "audit: %s %s by %s answered %d", cn_req_method(a->req),
               cn_req_path(a->req), a->who, cn_res_status(a->res));
    return 0;
}

static int stats(cn_req *req, cn_res *res)
{
    audit *a = cn_req_alloc(req, sizeof(*a));
    cn_stats st;
    cJSON *o;

    if (a == NULL)
        return CN_ENOMEM;
    a->req = req;
    a->res = res;
    a->who = cn_req_dep(req, "admin");
    cn_req_background(req, audit_line, a);
    cn_app_stats(cn_req_app(req), &st);
    o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "requests_total", (double)st.requests_total);
    cJSON_AddNumberToObject(o, "connections_active", (double)st.connections_active);
    cJSON_AddNumberToObject(o, "responses_4xx", (double)st.responses_4xx);
    cJSON_AddNumberToObject(o, "responses_5xx", (double)st.responses_5xx);
    cJSON_AddNumberToObject(o, "background_started", (double)st.background_started);
    return cn_res_json(res, 200, o);
}

int demo_register_admin(cn_app *app)
{
    cn_router *r = cn_router_new("/admin");
    int rc;

    if (r == NULL)
        return CN_ENOMEM;
    rc = cn_router_depends(r, &admin);
    rc = rc ? rc
            : cn_router_route(r, "GET /stats", stats, NULL,
                              &(cn_route_opts){.summary = "The server's counters (admins only)",
                                               .tags = (const char *const[]){"admin", NULL}});
    if (rc < 0) {
        cn_router_free(r);
        return rc;
    }
    return cn_app_include(app, r);
}
