/*
 * test_depends.c -- dependencies: resolved once however many ask
 * (sub-dependencies, two tasks at once), in the app -> router -> route
 * order, failing with the resolver's status, cleanups after the response in
 * reverse order, also after the client left, and read from a sync handler
 * on the pool.
 *
 * Two fixtures. Every test but one runs in process, through the test
 * client (start_tc): what resolves, in which order, and what the cleanups
 * do after the response is the layer's business, not the wire's; the
 * client returns at the response, and cn_test_settle runs the app until
 * the cleanups and background tasks are done. test_cleanup_after_disconnect
 * runs over a real socket (start_socket): a client that closes its
 * connection while the handler waits is the wire's.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "app.h" /* cn__app_free_checked */
#include "harness.h"

/* the trace (h_trace): resolutions "+x", cleanups "-x" */

static atomic_int db_resolves, db_cleanups, handler_runs;
static atomic_int cleanup_sleep_rc = H_NOT_YET;
static atomic_llong cleanup_done_ms, response_ms;

/* ---- dependencies ---- */

/* "db": takes 50 ms to open (it awaits), closes after the response */
static int db_open(cn_req *req, cn_res *res, void *data, void **value)
{
    int rc;

    (void)res;
    (void)data;
    db_resolves++;
    h_trace("+db");
    rc = cn_sleep(50);
    if (rc < 0)
        return rc;
    *value = cn_req_strdup(req, "conn-1");
    return 0;
}

static void db_close(cn_req *req, void *value, void *data)
{
    (void)data;
    (void)value;
    h_trace("-db");
    db_cleanups++;
    /* a cleanup may await, even for a request whose client left */
    if (strcmp(cn_req_path(req), "/d/slow-cleanup") == 0 ||
        strcmp(cn_req_path(req), "/d/abandoned") == 0) {
        cleanup_sleep_rc = cn_sleep(200);
        cleanup_done_ms = h_now_ms();
    }
}

static const cn_dep dep_db = {.name = "db", .resolve = db_open, .cleanup = db_close};

/* "user" and "repo" both need "db" */
static int user_resolve(cn_req *req, cn_res *res, void *data, void **value)
{
    void *db;
    int rc = cn_depends(req, &dep_db, &db);

    (void)data;
    if (rc != 0)
        return rc;
    if (cn_req_header(req, "x-user") == NULL)
        return cn_res_raise(res, 401, "Not authenticated");
    h_trace("+user");
    *value = cn_req_sprintf(req, "%s@%s", cn_req_header(req, "x-user"), (char *)db);
    return 0;
}

static void user_cleanup(cn_req *req, void *value, void *data)
{
    (void)req;
    (void)value;
    (void)data;
    h_trace("-user");
}

static const cn_dep dep_user = {.name = "user", .resolve = user_resolve, .cleanup = user_cleanup};

static int repo_resolve(cn_req *req, cn_res *res, void *data, void **value)
{
    void *db;
    int rc = cn_depends(req, &dep_db, &db);

    (void)res;
    (void)data;
    if (rc != 0)
        return rc;
    h_trace("+repo");
    *value = "repo";
    return 0;
}

static void repo_cleanup(cn_req *req, void *value, void *data)
{
    (void)req;
    (void)value;
    (void)data;
    h_trace("-repo");
}

static const cn_dep dep_repo = {.name = "repo", .resolve = repo_resolve, .cleanup = repo_cleanup};

static int broken_resolve(cn_req *req, cn_res *res, void *data, void **value)
{
    (void)req;
    (void)res;
    (void)data;
    (void)value;
    return CN_ENOMEM;
}

static const cn_dep dep_broken = {.name = "broken", .resolve = broken_resolve};

/* a resolver that returns a positive number: still a failure */
static int positive_resolve(cn_req *req, cn_res *res, void *data, void **value)
{
    (void)req;
    (void)res;
    (void)data;
    (void)value;
    return 1;
}

static const cn_dep dep_positive = {.name = "positive", .resolve = positive_resolve};

/* a background task asks for a dependency after the cleanups: refused */
static atomic_int bg_depends_rc = H_NOT_YET;
static atomic_bool bg_dep_null;

static int bg_asks(void *arg)
{
    void *v;

    bg_dep_null = cn_req_dep(arg, "db") == NULL;
    bg_depends_rc = cn_depends(arg, &dep_db, &v);
    return 0;
}

static int with_bg(cn_req *req, cn_res *res)
{
    cn_req_background(req, bg_asks, req);
    return cn_res_text(res, 200, "ok");
}

/* three levels: app -> router -> route, each noting its name */
static int named_resolve(cn_req *req, cn_res *res, void *data, void **value)
{
    char s[16];

    (void)req;
    (void)res;
    snprintf(s, sizeof s, "+%s", (const char *)data);
    h_trace(s);
    *value = data;
    return 0;
}

static void named_cleanup(cn_req *req, void *value, void *data)
{
    char s[16];

    (void)req;
    (void)value;
    snprintf(s, sizeof s, "-%s", (const char *)data);
    h_trace(s);
}

static const cn_dep dep_app = {"app", named_resolve, named_cleanup, "app"};
static const cn_dep dep_router = {"router", named_resolve, named_cleanup, "router"};
static const cn_dep dep_route = {"route", named_resolve, named_cleanup, "route"};

/* ---- handlers ---- */

static int both(cn_req *req, cn_res *res)
{
    cJSON *o = cJSON_CreateObject();

    handler_runs++;
    cJSON_AddStringToObject(o, "user", cn_req_dep(req, "user"));
    cJSON_AddStringToObject(o, "repo", cn_req_dep(req, "repo"));
    cJSON_AddStringToObject(o, "db", cn_req_dep(req, "db"));
    return cn_res_json(res, 200, o);
}

/* two tasks ask for "db" at once: it is still resolved once */
static int ask_db(void *arg)
{
    void *v;
    return cn_depends(arg, &dep_db, &v);
}

static int concurrent(cn_req *req, cn_res *res)
{
    cn_task *t[2];
    int results[2];

    handler_runs++;
    if (cn_spawn(ask_db, req, &t[0]) < 0 || cn_spawn(ask_db, req, &t[1]) < 0)
        return CN_ENOMEM;
    cn_gather(t, 2, results);
    return cn_res_json_str(res, 200,
                           cn_req_sprintf(req, "{\"rc\":[%d,%d],\"db\":\"%s\"}", results[0],
                                          results[1], (char *)cn_req_dep(req, "db")));
}

static int plain(cn_req *req, cn_res *res)
{
    handler_runs++;
    return cn_res_text(res, 200, cn_req_dep(req, "db") ? cn_req_dep(req, "db") : "none");
}

static atomic_int slow_started;

static int slow(cn_req *req, cn_res *res)
{
    int rc;

    (void)req;
    slow_started++;
    rc = cn_sleep(10000);
    handler_runs++;
    return rc < 0 ? rc : cn_res_text(res, 200, "late");
}

static int levels(cn_req *req, cn_res *res)
{
    handler_runs++;
    return cn_res_text(res, 200, cn_req_dep(req, "route"));
}

/* a sync handler, on a pool worker, reads what the loop resolved */
static int on_pool(cn_req *req, cn_res *res)
{
    void *v = NULL;
    int rc = cn_depends(req, &dep_db, &v); /* resolved: a read, no await */

    handler_runs++;
    return cn_res_json_str(res, 200,
                           cn_req_sprintf(req, "{\"rc\":%d,\"db\":\"%s\",\"named\":\"%s\"}", rc,
                                          (char *)v, (char *)cn_req_dep(req, "db")));
}

static const cn_dep *const needs_user_repo[] = {&dep_user, &dep_repo, &dep_db, NULL};
static const cn_dep *const needs_db[] = {&dep_db, NULL};
static const cn_dep *const needs_broken[] = {&dep_db, &dep_broken, NULL};
static const cn_dep *const needs_route[] = {&dep_route, NULL};
static const cn_dep *const needs_positive[] = {&dep_positive, NULL};

static int setup(cn_app *app, void *arg)
{
    cn_router *r = cn_router_new("/lv");
    int rc = 0;

    (void)arg;
    rc = rc ? rc
            : cn_app_route_ex(app, "GET /d/both", both, NULL,
                              &(cn_route_opts){.deps = needs_user_repo});
    rc = rc ? rc : cn_app_route(app, "GET /d/concurrent", concurrent, NULL);
    rc = rc ? rc
            : cn_app_route_ex(app, "GET /d/slow-cleanup", plain, NULL,
                              &(cn_route_opts){.deps = needs_db});
    rc = rc ? rc
            : cn_app_route_ex(app, "GET /d/abandoned", slow, NULL,
                              &(cn_route_opts){.deps = needs_db});
    rc = rc ? rc
            : cn_app_route_ex(app, "GET /d/broken", plain, NULL,
                              &(cn_route_opts){.deps = needs_broken});
    rc = rc ? rc
            : cn_app_route_ex(app, "GET /d/sync", on_pool, NULL,
                              &(cn_route_opts){.mode = CN_ROUTE_SYNC, .deps = needs_db});
    rc = rc ? rc
            : cn_app_route_ex(app, "GET /d/positive", plain, NULL,
                              &(cn_route_opts){.deps = needs_positive});
    rc = rc ? rc
            : cn_app_route_ex(app, "GET /d/bg", with_bg, NULL, &(cn_route_opts){.deps = needs_db});
    rc = rc ? rc : (r ? 0 : CN_ENOMEM);
    rc = rc ? rc : cn_router_depends(r, &dep_router);
    rc =
        rc ? rc : cn_router_route(r, "GET /x", levels, NULL, &(cn_route_opts){.deps = needs_route});
    rc = rc ? rc : cn_app_include(app, r);
    return rc;
}

/* the app-wide dependency lives on an app of its own (it applies to every route) */
static int setup_app_dep(cn_app *app, void *arg)
{
    int rc = cn_app_depends(app, &dep_app);

    return rc ? rc : setup(app, arg);
}

static void reset_counts(void)
{
    h_log_reset();
    h_trace_reset();
    db_resolves = db_cleanups = handler_runs = slow_started = 0;
    cleanup_sleep_rc = H_NOT_YET;
    cleanup_done_ms = 0;
}

static h_client *start_tc(void **state, h_setup_fn fn)
{
    h_client *c = h_tc_start(NULL, fn, NULL);

    *state = c;
    reset_counts();
    return c;
}

static h_server *start_socket(void **state, h_setup_fn fn)
{
    h_server *s = h_start(NULL, NULL, fn, NULL);

    *state = s;
    reset_counts();
    return s;
}

/* "db", asked for by "user", "repo" and the route itself: one resolution. */
static void test_resolved_once(void **state)
{
    h_client *c = start_tc(state, setup);
    cJSON *o = h_tc_json(c, "/d/both", (const char *const[]){"X-User: ana", NULL}, 200);

    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(o, "user")), "ana@conn-1");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(o, "repo")), "repo");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(o, "db")), "conn-1");
    cJSON_Delete(o);
    assert_int_equal(db_resolves, 1);
    /* cleanups after the response, newest first; db (resolved first) last */
    h_tc_settle(c);
    assert_int_equal(db_cleanups, 1);
    h_assert_trace("+db+user+repo-repo-user-db");
}

/* Two tasks of one request ask at once: the second waits for the first's result. */
static void test_concurrent_askers(void **state)
{
    h_client *c = start_tc(state, setup);
    cJSON *o = h_tc_json(c, "/d/concurrent", NULL, 200);

    assert_int_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "rc"), 0)->valueint, 0);
    assert_int_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "rc"), 1)->valueint, 0);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(o, "db")), "conn-1");
    cJSON_Delete(o);
    assert_int_equal(db_resolves, 1);
    h_tc_settle(c);
    assert_int_equal(db_cleanups, 1);
}

/* The client has its response while the cleanup still runs (and awaits). */
static void test_cleanup_after_response(void **state)
{
    h_client *c = start_tc(state, setup);
    cn_test_response r;

    h_tc_request(c, "GET", "/d/slow-cleanup", NULL, NULL, &r);
    response_ms = h_now_ms();
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "conn-1");
    cn_test_response_free(&r);
    h_tc_settle(c);
    assert_true(cleanup_done_ms != 0);
    assert_int_equal(cleanup_sleep_rc, 0);
    /* it slept 200 ms after the response had gone */
    assert_true(cleanup_done_ms - response_ms >= 150);
}

/* The client leaves while the handler waits: the cleanup still runs, and may await. */
static void test_cleanup_after_disconnect(void **state)
{
    h_server *s = start_socket(state, setup);
    h_conn *c = h_open(s);

    h_sends(c, "GET /d/abandoned HTTP/1.1\r\nHost: t\r\n\r\n");
    /* past the resolution, into the handler's sleep */
    assert_true(H_WAIT_UNTIL(slow_started == 1, 3000));
    h_close(c);
    assert_true(H_WAIT_UNTIL(cleanup_done_ms != 0, 3000));
    /* the cancellation was lifted for it: its sleep ran to its end */
    assert_int_equal(cleanup_sleep_rc, 0);
    assert_int_equal(db_cleanups, 1);
    h_assert_settles(s);
}

/* A failing dependency: its status, no handler, and the earlier one cleaned up. */
static void test_failing_dependency(void **state)
{
    h_client *c = start_tc(state, setup);
    cn_test_response r;

    /* cn_res_raise(401) in "user" */
    h_tc_request(c, "GET", "/d/both", NULL, NULL, &r);
    assert_int_equal(r.status, 401);
    assert_string_equal(r.body, "{\"detail\":\"Not authenticated\"}");
    cn_test_response_free(&r);
    assert_int_equal(handler_runs, 0);
    h_tc_settle(c);
    assert_int_equal(db_cleanups, 1);
    h_assert_trace("+db-db");
    assert_int_equal(h_log_count(CN_LOG_ERROR, NULL, NULL), 0);
    /* a code without a response: 500, logged naming the dependency */
    h_tc_request(c, "GET", "/d/broken", NULL, NULL, &r);
    assert_int_equal(r.status, 500);
    assert_string_equal(r.body, "{\"detail\":\"Internal Server Error\"}");
    cn_test_response_free(&r);
    assert_int_equal(handler_runs, 0);
    assert_int_equal(
        h_log_count(CN_LOG_ERROR, "GET /d/broken: dependency 'broken' returned CN_ENOMEM", NULL),
        1);
    h_tc_settle(c);
    assert_int_equal(db_cleanups, 2);
    /* a positive result fails too (500, logged), it is not a value */
    h_tc_request(c, "GET", "/d/positive", NULL, NULL, &r);
    assert_int_equal(r.status, 500);
    cn_test_response_free(&r);
    assert_int_equal(handler_runs, 0);
    assert_int_equal(h_log_count(CN_LOG_ERROR, "dependency 'positive' returned CN_EINVAL", NULL),
                     1);
    h_tc_settle(c);
}

/* After the response the cleanups have run: a background task gets nothing. */
static void test_background_gets_no_dependency(void **state)
{
    h_client *c = start_tc(state, setup);
    cn_test_response r;

    bg_depends_rc = H_NOT_YET;
    h_tc_request(c, "GET", "/d/bg", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    cn_test_response_free(&r);
    h_tc_settle(c);
    assert_int_equal(bg_depends_rc, CN_ESTATE);
    assert_true(bg_dep_null);
    assert_int_equal(db_resolves, 1); /* not resolved again */
    assert_int_equal(db_cleanups, 1);
}

/* App, router, route: resolved in that order, cleaned up in the reverse. */
static void test_levels(void **state)
{
    h_client *c = start_tc(state, setup_app_dep);
    cn_test_response r;

    h_tc_request(c, "GET", "/lv/x", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "route");
    cn_test_response_free(&r);
    h_tc_settle(c);
    h_assert_trace("+app+router+route-route-router-app");
}

/* A sync handler reads on the pool what the loop resolved. */
static void test_sync_handler_reads(void **state)
{
    h_client *c = start_tc(state, setup);
    cJSON *o = h_tc_json(c, "/d/sync", NULL, 200);

    assert_int_equal(h_jint(o, "rc"), 0);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(o, "db")), "conn-1");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(o, "named")), "conn-1");
    cJSON_Delete(o);
    assert_int_equal(db_resolves, 1);
}

/* Argument checks outside any request. */
static void test_misuse(void **state)
{
    void *v;
    cn_app *app = cn_app_new(NULL);
    static const cn_dep no_resolve = {.name = "x"};

    (void)state;
    assert_int_equal(cn_depends(NULL, &dep_db, &v), CN_EINVAL);
    assert_null(cn_req_dep(NULL, "db"));
    assert_int_equal(cn_app_depends(app, NULL), CN_EINVAL);
    assert_int_equal(cn_app_depends(app, &no_resolve), CN_EINVAL);
    assert_int_equal(cn__app_free_checked(app), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_resolved_once, h_tc_teardown),
        cmocka_unit_test_teardown(test_concurrent_askers, h_tc_teardown),
        cmocka_unit_test_teardown(test_cleanup_after_response, h_tc_teardown),
        cmocka_unit_test_teardown(test_cleanup_after_disconnect, h_teardown),
        cmocka_unit_test_teardown(test_failing_dependency, h_tc_teardown),
        cmocka_unit_test_teardown(test_levels, h_tc_teardown),
        cmocka_unit_test_teardown(test_background_gets_no_dependency, h_tc_teardown),
        cmocka_unit_test_teardown(test_sync_handler_reads, h_tc_teardown),
        cmocka_unit_test(test_misuse),
    };
    int rc;

    h_log_capture_start();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    h_log_capture_stop();
    return rc;
}
