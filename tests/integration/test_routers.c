/*
 * test_routers.c -- routers (FastAPI's APIRouter): prefixes, nesting,
 * middleware and dependencies of their own around their routes only,
 * default options, ownership and registration errors. Through the
 * in-process test client: nothing here is about the wire.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "app.h" /* cn__app_free_checked */
#include "harness.h"

/* the trace so far is `want`; the next starts empty */
static void assert_trail(const char *want)
{
    h_assert_trace(want);
    h_trace_reset();
}

static int mark(cn_req *req, cn_res *res, void *data)
{
    h_trace((const char *)data);
    return cn_next(req, res);
}

static int need_admin(cn_req *req, cn_res *res, void *data, void **value)
{
    (void)data;
    h_trace("dep;");
    if (cn_req_header(req, "x-admin") == NULL)
        return cn_res_raise(res, 403, "Forbidden");
    *value = "admin";
    return 0;
}

static const cn_dep dep_admin = {.name = "admin", .resolve = need_admin};

static int where(cn_req *req, cn_res *res)
{
    const char *who = cn_req_dep(req, "admin");

    return cn_res_json_str(res, 200,
                           cn_req_sprintf(req,
                                          "{\"route\":\"%s\",\"path\":\"%s\",\"who\":\"%s\","
                                          "\"on_pool\":%s}",
                                          cn_req_route(req), cn_req_path(req), who ? who : "-",
                                          cn_req_current() == NULL ? "true" : "false"));
}

static int setup(cn_app *app, void *arg)
{
    cn_router *api = cn_router_new("/api");
    cn_router *admin = cn_router_new("/admin");
    cn_router *blocking = cn_router_new("/blocking");
    int rc = 0;

    (void)arg;
    rc = rc ? rc : (api && admin && blocking ? 0 : CN_ENOMEM);
    rc = rc ? rc : cn_app_use(app, "app", mark, "app;");
    rc = rc ? rc : cn_router_use(api, "api", mark, "api;");
    rc = rc ? rc : cn_router_route(api, "GET /items/{id:int}", where, NULL, NULL);
    rc = rc ? rc : cn_router_route(api, "GET ", where, NULL, NULL);
    rc = rc ? rc : cn_router_use(admin, "admin", mark, "admin;");
    rc = rc ? rc : cn_router_depends(admin, &dep_admin);
    rc = rc ? rc : cn_router_route(admin, "GET /users", where, NULL, NULL);
    rc = rc ? rc : cn_router_defaults(blocking, &(cn_route_opts){.mode = CN_ROUTE_SYNC});
    rc = rc ? rc : cn_router_route(blocking, "GET /work", where, NULL, NULL);
    rc = rc ? rc
            : cn_router_route(blocking, "GET /light", where, NULL,
                              &(cn_route_opts){.mode = CN_ROUTE_ASYNC});
    rc = rc ? rc : cn_router_include(api, admin);
    rc = rc ? rc : cn_router_include(api, blocking);
    rc = rc ? rc : cn_app_include(app, api);
    return rc;
}

static h_client *start(void **state)
{
    h_client *c = h_tc_start(NULL, setup, NULL);

    *state = c;
    h_trace_reset();
    return c;
}

static cJSON *get(h_client *c, const char *path, const char *header, int status)
{
    return h_tc_json(c, path, (const char *const[]){header, NULL}, status);
}

static const char *jstr(const cJSON *o, const char *k)
{
    return cJSON_GetStringValue(cJSON_GetObjectItem(o, k));
}

/* The prefix is part of the path; the router's middleware wraps its routes only. */
static void test_prefix_and_middleware(void **state)
{
    h_client *c = start(state);
    cJSON *o = get(c, "/api/items/7", NULL, 200);

    assert_string_equal(jstr(o, "route"), "/api/items/{id:int}");
    assert_string_equal(jstr(o, "path"), "/api/items/7");
    cJSON_Delete(o);
    assert_trail("app;api;");
    /* "GET " on a router: the prefix itself */
    o = get(c, "/api", NULL, 200);
    assert_string_equal(jstr(o, "route"), "/api");
    cJSON_Delete(o);
    assert_trail("app;api;");
    /* outside the router: its middleware does not run */
    cJSON_Delete(get(c, "/health", NULL, 200));
    assert_trail("app;");
    cJSON_Delete(get(c, "/items/7", NULL, 404));
    assert_trail("app;");
}

/* Nested: prefixes add up; outer middleware first; the inner router's dependency guards it. */
static void test_nested(void **state)
{
    h_client *c = start(state);
    cJSON *o = get(c, "/api/admin/users", "X-Admin: 1", 200);

    assert_string_equal(jstr(o, "route"), "/api/admin/users");
    assert_string_equal(jstr(o, "who"), "admin");
    cJSON_Delete(o);
    assert_trail("app;api;admin;dep;");
    o = get(c, "/api/admin/users", NULL, 403);
    assert_string_equal(jstr(o, "detail"), "Forbidden");
    cJSON_Delete(o);
    assert_trail("app;api;admin;dep;");
}

/* A router's default mode: its routes run on the pool. */
static void test_defaults(void **state)
{
    h_client *c = start(state);
    cJSON *o = get(c, "/api/blocking/work", NULL, 200);

    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "on_pool")));
    cJSON_Delete(o);
    o = get(c, "/api/items/1", NULL, 200);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(o, "on_pool")));
    cJSON_Delete(o);
    /* a route may still choose async under a sync-default router */
    o = get(c, "/api/blocking/light", NULL, 200);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(o, "on_pool")));
    cJSON_Delete(o);
}

static int noop_handler(cn_req *req, cn_res *res)
{
    (void)req;
    return cn_res_text(res, 200, "x");
}

/* Building rules, ownership, and clashes found at cn_app_include. */
static void test_rules(void **state)
{
    cn_app *app = cn_app_new(NULL);
    cn_router *r, *k, *clash;

    (void)state;
    assert_non_null(app);
    assert_null(cn_router_new("admin"));   /* no leading '/' */
    assert_null(cn_router_new("/admin/")); /* trailing '/' */
    assert_null(cn_router_new("/a/{id}")); /* no parameters */
    r = cn_router_new(NULL);
    assert_non_null(r);
    assert_int_equal(cn_router_route(r, "GET ", noop_handler, NULL, NULL), CN_EBADPATTERN);
    assert_int_equal(cn_router_route(r, "FETCH /x", noop_handler, NULL, NULL), CN_EBADPATTERN);
    assert_int_equal(cn_router_route(r, "GET /x", NULL, NULL, NULL), CN_EINVAL);
    assert_int_equal(cn_router_route(r, "GET /x", noop_handler, NULL, NULL), 0);
    assert_int_equal(cn_router_route(r, "GET /x", noop_handler, NULL, NULL), CN_EEXIST);
    assert_int_equal(cn_router_defaults(r, &(cn_route_opts){.deps = (const cn_dep *const[]){NULL}}),
                     CN_EINVAL);
    assert_int_equal(cn_router_include(r, r), CN_EINVAL);
    k = cn_router_new("/k");
    assert_int_equal(cn_router_include(r, k), 0);
    /* k belongs to r now: no second include, no changes */
    assert_int_equal(cn_router_include(r, k), CN_EINVAL);
    assert_int_equal(cn_router_route(k, "GET /y", noop_handler, NULL, NULL), CN_ESTATE);
    assert_int_equal(cn_app_route(app, "GET /k/y", noop_handler, NULL), 0);
    assert_int_equal(cn_app_include(app, r), 0);
    assert_int_equal(cn_router_route(r, "GET /z", noop_handler, NULL, NULL), CN_ESTATE);
    assert_int_equal(cn_router_use(r, "m", mark, ""), CN_ESTATE);
    assert_int_equal(cn_router_depends(r, &dep_admin), CN_ESTATE);
    /* a clash with a route of the app */
    clash = cn_router_new("/k");
    assert_int_equal(cn_router_route(clash, "GET /y", noop_handler, NULL, NULL), 0);
    assert_int_equal(cn_app_include(app, clash), CN_EEXIST);
    /* a table of routes, and its first error */
    r = cn_router_new("/t");
    assert_int_equal(cn_router_routes(r, (const cn_route[]){{.spec = "GET /a", .fn = noop_handler},
                                                            {.spec = "GET /b", .fn = noop_handler},
                                                            {.spec = "GET /a", .fn = noop_handler},
                                                            {0}}),
                     CN_EEXIST);
    assert_int_equal(cn_router_routes(r, NULL), CN_EINVAL);
    assert_int_equal(cn_app_include(app, r), 0);
    /* a router never included is freed by its owner */
    cn_router_free(cn_router_new("/never"));
    cn_router_free(NULL);
    assert_int_equal(cn__app_free_checked(app), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_prefix_and_middleware, h_tc_teardown),
        cmocka_unit_test_teardown(test_nested, h_tc_teardown),
        cmocka_unit_test_teardown(test_defaults, h_tc_teardown),
        cmocka_unit_test(test_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
