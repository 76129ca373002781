/*
 * test_middleware.c -- the chain around every route: order (app
 * outermost, then routers), answering without the handler, looking at and
 * changing the response on its way out, errors raised inside a middleware
 * or passed through it, requests no route matches, sync routes, streams,
 * cancellation, and cn_next misuse.
 *
 * Two fixtures. Every test but one runs in process, through the test
 * client (start_tc): the chain is the same whoever sends the request.
 * test_cancel runs over a real socket (start_socket): the client closing
 * its connection while the handler waits is the wire's.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "app.h" /* cn__app_free_checked */
#include "harness.h"

static atomic_int handler_runs;
static atomic_int next_rc_seen;
static atomic_int second_next_rc;
static atomic_int next_from_handler_rc;
static atomic_int late_header_rc;

/* ---- middleware ---- */

/* "A(" before, ")A" after: data is the letter */
static int tracing(cn_req *req, cn_res *res, void *data)
{
    char in[8], out[8];
    int rc;

    snprintf(in, sizeof in, "%s(", (const char *)data);
    snprintf(out, sizeof out, ")%s", (const char *)data);
    h_trace(in);
    rc = cn_next(req, res);
    h_trace(out);
    return rc;
}

/* answers 401 unless X-Token: yes; the handler never runs then */
static int auth(cn_req *req, cn_res *res, void *data)
{
    const char *tok = cn_req_header(req, "x-token");

    (void)data;
    if (strncmp(cn_req_path(req), "/mw/", 4) != 0)
        return cn_next(req, res);
    if (tok == NULL || strcmp(tok, "yes") != 0)
        return cn_res_raise(res, 401, "Not authenticated");
    return cn_next(req, res);
}

/* looks at the response after the handler and changes it */
static int decorate(cn_req *req, cn_res *res, void *data)
{
    int rc;
    char v[32];

    (void)data;
    cn_res_header(res, "X-Before", "1"); /* before: kept whatever happens inside */
    rc = cn_next(req, res);
    atomic_store(&next_rc_seen, rc);
    if (rc == CN_ECANCELED)
        return rc;
    snprintf(v, sizeof v, "%d:%zu", cn_res_status(res), cn_res_body(res).len);
    late_header_rc = cn_res_header(res, "X-After", v);
    if (strcmp(cn_req_path(req), "/mw/teapot") == 0)
        cn_res_set_status(res, 418);
    if (strcmp(cn_req_path(req), "/mw/replace") == 0) {
        cn_res_reset(res);
        cn_res_header(res, "X-Replaced", "yes");
        cn_res_text(res, 203, "replaced");
    }
    return rc;
}

/* fails on its own, after the handler answered */
static int failing(cn_req *req, cn_res *res, void *data)
{
    int rc;

    (void)data;
    if (strcmp(cn_req_path(req), "/mw/mw-fails") != 0)
        return cn_next(req, res);
    cn_res_header(res, "X-Set-Before", "kept");
    rc = cn_next(req, res);
    return rc < 0 ? rc : CN_ENOMEM;
}

/* answers nothing and does not call cn_next */
static int forgetful(cn_req *req, cn_res *res, void *data)
{
    (void)data;
    if (strcmp(cn_req_path(req), "/mw/forgot") == 0)
        return 0;
    return cn_next(req, res);
}

/* calls cn_next twice on /mw/twice */
static int greedy(cn_req *req, cn_res *res, void *data)
{
    int rc;

    (void)data;
    rc = cn_next(req, res);
    if (strcmp(cn_req_path(req), "/mw/twice") == 0)
        atomic_store(&second_next_rc, cn_next(req, res));
    return rc;
}

/* answers the CORS-like preflight itself, for any path, routed or not */
static int preflight(cn_req *req, cn_res *res, void *data)
{
    (void)data;
    if (strcmp(cn_req_method(req), "OPTIONS") == 0) {
        cn_res_header(res, "X-Preflight", "ok");
        return cn_res_bytes(res, 204, "", 0, NULL);
    }
    return cn_next(req, res);
}

/* ---- handlers ---- */

static int h_ok(cn_req *req, cn_res *res)
{
    (void)req;
    handler_runs++;
    h_trace("H");
    return cn_res_text(res, 200, "ok");
}

static int h_oom(cn_req *req, cn_res *res)
{
    (void)req;
    (void)res;
    handler_runs++;
    cn_res_header(res, "X-From-Handler", "dropped");
    return CN_ENOMEM;
}

static int h_raise(cn_req *req, cn_res *res)
{
    (void)req;
    handler_runs++;
    return cn_res_raise(res, 404, "Item not found");
}

static int h_slow(cn_req *req, cn_res *res)
{
    int rc = cn_sleep(10000);

    (void)req;
    handler_runs++;
    return rc < 0 ? rc : cn_res_text(res, 200, "late");
}

static int h_sync(cn_req *req, cn_res *res)
{
    handler_runs++;
    /* on a pool worker: no coroutine here */
    return cn_res_text(res, 200, cn_task_cancelled() == CN_ENOTCORO ? "on the pool" : "?");
}

static int h_stream(cn_req *req, cn_res *res)
{
    int rc = cn_res_stream_begin(res, 200, "text/plain");

    (void)req;
    handler_runs++;
    if (rc == 0)
        rc = cn_res_stream_write(res, "abc", 3);
    return rc;
}

static int h_calls_next(cn_req *req, cn_res *res)
{
    atomic_store(&next_from_handler_rc, cn_next(req, res));
    return cn_res_text(res, 200, "handler");
}

static int inner_router_mw(cn_req *req, cn_res *res, void *data)
{
    (void)data;
    h_trace("R(");
    int rc = cn_next(req, res);
    h_trace(")R");
    return rc;
}

static int setup(cn_app *app, void *arg)
{
    cn_route_opts sync = {.mode = CN_ROUTE_SYNC};
    cn_router *r = cn_router_new("/mw/r");
    int rc = 0;

    (void)arg;
    rc = rc ? rc : cn_app_use(app, "outer", tracing, "A");
    rc = rc ? rc : cn_app_use(app, "preflight", preflight, NULL);
    rc = rc ? rc : cn_app_use(app, "auth", auth, NULL);
    rc = rc ? rc : cn_app_use(app, "decorate", decorate, NULL);
    rc = rc ? rc : cn_app_use(app, "failing", failing, NULL);
    rc = rc ? rc : cn_app_use(app, "forgetful", forgetful, NULL);
    rc = rc ? rc : cn_app_use(app, "greedy", greedy, NULL);
    rc = rc ? rc : cn_app_use(app, "inner", tracing, "B");
    rc = rc ? rc : cn_app_route(app, "GET /mw/ok", h_ok, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /mw/teapot", h_ok, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /mw/replace", h_ok, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /mw/mw-fails", h_ok, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /mw/forgot", h_ok, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /mw/twice", h_ok, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /mw/oom", h_oom, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /mw/raise", h_raise, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /mw/slow", h_slow, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /mw/stream", h_stream, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /mw/calls-next", h_calls_next, NULL);
    rc = rc ? rc : cn_app_route_ex(app, "GET /mw/sync", h_sync, NULL, &sync);
    rc = rc ? rc : (r ? 0 : CN_ENOMEM);
    rc = rc ? rc : cn_router_use(r, "router", inner_router_mw, NULL);
    rc = rc ? rc : cn_router_route(r, "GET /x", h_ok, NULL, NULL);
    rc = rc ? rc : cn_app_include(app, r);
    return rc;
}

static void reset_counts(void)
{
    handler_runs = 0;
    h_trace_reset();
    h_log_reset();
}

static h_client *start_tc(void **state)
{
    h_client *c;

    reset_counts();
    c = h_tc_start(NULL, setup, NULL);
    *state = c;
    h_trace_reset();
    return c;
}

static h_server *start_socket(void **state)
{
    h_server *s;

    reset_counts();
    s = h_start(NULL, NULL, setup, NULL);
    *state = s;
    h_trace_reset(); /* h_start's health check went through the chain */
    return s;
}

/* GET path with the token the auth middleware wants, and `extra` (or NULL). */
static cn_test_response get(h_client *c, const char *path, const char *extra)
{
    cn_test_response r;

    h_tc_request(c, "GET", path, (const char *const[]){"X-Token: yes", extra, NULL}, NULL, &r);
    return r;
}

/* App middleware run in the order added, outermost first; a router's inside them. */
static void test_order(void **state)
{
    h_client *c = start_tc(state);
    cn_test_response r = get(c, "/mw/ok", NULL);

    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok");
    h_assert_trace("A(B(H)B)A");
    cn_test_response_free(&r);
    h_trace_reset();
    r = get(c, "/mw/r/x", NULL);
    assert_int_equal(r.status, 200);
    h_assert_trace("A(B(R(H)R)B)A");
    cn_test_response_free(&r);
}

/* A middleware answers without calling the handler. */
static void test_short_circuit(void **state)
{
    h_client *c = start_tc(state);
    cn_test_response r;

    h_tc_request(c, "GET", "/mw/ok", NULL, NULL, &r);
    assert_int_equal(r.status, 401);
    assert_string_equal(r.body, "{\"detail\":\"Not authenticated\"}");
    /* the outer one ran around it, the inner ones and the handler did not */
    h_assert_trace("A()A");
    assert_int_equal(handler_runs, 0);
    /* an intended HTTP error is not a failure: nothing logged */
    assert_int_equal(h_log_count(CN_LOG_ERROR, NULL, NULL), 0);
    cn_test_response_free(&r);
}

/* The response, looked at and changed on its way out. */
static void test_after_next(void **state)
{
    h_client *c = start_tc(state);
    cn_test_response r = get(c, "/mw/ok", NULL);

    assert_string_equal(cn_test_header(&r, "x-before"), "1");
    assert_string_equal(cn_test_header(&r, "x-after"), "200:2");
    assert_int_equal(late_header_rc, 0);
    assert_int_equal(next_rc_seen, 0);
    cn_test_response_free(&r);
    r = get(c, "/mw/teapot", NULL);
    assert_int_equal(r.status, 418);
    assert_string_equal(r.body, "ok");
    cn_test_response_free(&r);
    r = get(c, "/mw/replace", NULL);
    assert_int_equal(r.status, 203);
    assert_string_equal(r.body, "replaced");
    assert_string_equal(cn_test_header(&r, "x-replaced"), "yes");
    assert_null(cn_test_header(&r, "x-before"));
    assert_string_equal(cn_test_header(&r, "content-type"), "text/plain; charset=utf-8");
    cn_test_response_free(&r);
}

/*
 * A handler's error becomes a 500 at the handler, logged once; the
 * middleware around it see the 500 and the code, and passing the code on
 * does not log it again. Headers set before the handler ran survive.
 */
static void test_handler_error_through_chain(void **state)
{
    h_client *c = start_tc(state);
    cn_test_response r = get(c, "/mw/oom", NULL);

    assert_int_equal(r.status, 500);
    assert_string_equal(r.body, "{\"detail\":\"Internal Server Error\"}");
    assert_string_equal(cn_test_header(&r, "x-before"), "1");
    assert_string_equal(cn_test_header(&r, "x-after"), "500:34");
    assert_null(cn_test_header(&r, "x-from-handler"));
    assert_int_equal(next_rc_seen, CN_ENOMEM);
    assert_int_equal(h_log_count(CN_LOG_ERROR, NULL, NULL), 1);
    assert_int_equal(h_log_count(CN_LOG_ERROR, "GET /mw/oom: handler returned CN_ENOMEM", NULL), 1);
    cn_test_response_free(&r);
    /* cn_res_raise: the middleware sees CN_EHTTP and the 404; nothing logged */
    r = get(c, "/mw/raise", NULL);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "{\"detail\":\"Item not found\"}");
    assert_int_equal(next_rc_seen, CN_EHTTP);
    assert_int_equal(h_log_count(CN_LOG_ERROR, NULL, NULL), 1);
    cn_test_response_free(&r);
}

/* A middleware's own failure: FastAPI's 500, logged with its name and the route. */
static void test_middleware_error(void **state)
{
    h_client *c = start_tc(state);
    cn_test_response r = get(c, "/mw/mw-fails", NULL);

    assert_int_equal(r.status, 500);
    assert_string_equal(r.body, "{\"detail\":\"Internal Server Error\"}");
    /* set before it ran: kept; set by it before it failed: dropped */
    assert_string_equal(cn_test_header(&r, "x-before"), "1");
    assert_null(cn_test_header(&r, "x-set-before"));
    assert_int_equal(h_log_count(CN_LOG_ERROR,
                                 "GET /mw/mw-fails: middleware 'failing' returned "
                                 "CN_ENOMEM",
                                 NULL),
                     1);
    cn_test_response_free(&r);
    /* no response and no cn_next: Starlette's "No response returned" */
    r = get(c, "/mw/forgot", NULL);
    assert_int_equal(r.status, 500);
    assert_int_equal(handler_runs, 1);
    assert_int_equal(
        h_log_count(CN_LOG_ERROR, "middleware 'forgetful' returned without a response", NULL), 1);
    cn_test_response_free(&r);
    h_tc_assert_healthy(c);
}

/* App middleware see requests no route matches: 404s, and OPTIONS preflights. */
static void test_unmatched_requests(void **state)
{
    h_client *c = start_tc(state);
    cn_test_response r = get(c, "/nowhere", NULL);

    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "{\"detail\":\"Not Found\"}");
    assert_string_equal(cn_test_header(&r, "x-after"), "404:22");
    h_assert_trace("A(B()B)A");
    cn_test_response_free(&r);
    h_tc_request(c, "OPTIONS", "/users/1", NULL, NULL, &r);
    assert_int_equal(r.status, 204);
    assert_string_equal(cn_test_header(&r, "x-preflight"), "ok");
    cn_test_response_free(&r);
    /* and the route's 422 for a bad typed parameter */
    r = get(c, "/users/abc", NULL);
    assert_int_equal(r.status, 422);
    assert_non_null(strstr(r.body, "int_parsing"));
    assert_string_equal(cn_test_header(&r, "x-before"), "1");
    cn_test_response_free(&r);
}

/* The chain runs on the loop around a sync route; only the handler goes to the pool. */
static void test_sync_route(void **state)
{
    h_client *c = start_tc(state);
    cn_test_response r = get(c, "/mw/sync", NULL);

    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "on the pool");
    assert_string_equal(cn_test_header(&r, "x-after"), "200:11");
    h_assert_trace("A(B()B)A");
    cn_test_response_free(&r);
}

/* A stream's head leaves before cn_next returns: headers set before it are on it. */
static void test_stream(void **state)
{
    h_client *c = start_tc(state);
    cn_test_response r;

    late_header_rc = H_NOT_YET;
    r = get(c, "/mw/stream", NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "abc");
    assert_string_equal(cn_test_header(&r, "x-before"), "1");
    assert_null(cn_test_header(&r, "x-after"));
    /* the client has the whole stream before the middleware's code after
     * cn_next runs on the loop: let it run rather than race it */
    h_tc_settle(c);
    assert_int_equal(late_header_rc, CN_ERESPONDED);
    cn_test_response_free(&r);
}

/* The client leaves while the handler waits: cn_next returns CN_ECANCELED. */
static void test_cancel(void **state)
{
    h_server *s = start_socket(state);
    h_conn *c = h_open(s);

    next_rc_seen = H_NOT_YET;
    h_sends(c, "GET /mw/slow HTTP/1.1\r\nHost: t\r\nX-Token: yes\r\n\r\n");
    assert_true(H_WAIT_UNTIL(h_stats(s).requests_active == 1, 3000));
    h_close(c);
    assert_true(H_WAIT_UNTIL(next_rc_seen == CN_ECANCELED, 3000));
    h_assert_settles(s);
    h_assert_trace("A(B()B)A");
    assert_int_equal(h_log_count(CN_LOG_ERROR, NULL, NULL), 0);
}

/* cn_next twice, or from a handler: CN_ESTATE. */
static void test_next_misuse(void **state)
{
    h_client *c = start_tc(state);
    cn_test_response r = get(c, "/mw/twice", NULL);

    assert_int_equal(r.status, 200);
    assert_int_equal(second_next_rc, CN_ESTATE);
    assert_int_equal(handler_runs, 1);
    cn_test_response_free(&r);
    r = get(c, "/mw/calls-next", NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(next_from_handler_rc, CN_ESTATE);
    cn_test_response_free(&r);
    assert_int_equal(cn_next(NULL, NULL), CN_ENOTCORO);
}

/* Registration rules. */
static void test_registration(void **state)
{
    cn_app *app = cn_app_new(NULL);

    (void)state;
    assert_non_null(app);
    assert_int_equal(cn_app_use(NULL, "x", tracing, NULL), CN_EINVAL);
    assert_int_equal(cn_app_use(app, "x", NULL, NULL), CN_EINVAL);
    assert_int_equal(cn_app_use(app, NULL, tracing, "A"), 0);
    assert_int_equal(cn__app_free_checked(app), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_order, h_tc_teardown),
        cmocka_unit_test_teardown(test_short_circuit, h_tc_teardown),
        cmocka_unit_test_teardown(test_after_next, h_tc_teardown),
        cmocka_unit_test_teardown(test_handler_error_through_chain, h_tc_teardown),
        cmocka_unit_test_teardown(test_middleware_error, h_tc_teardown),
        cmocka_unit_test_teardown(test_unmatched_requests, h_tc_teardown),
        cmocka_unit_test_teardown(test_sync_route, h_tc_teardown),
        cmocka_unit_test_teardown(test_stream, h_tc_teardown),
        cmocka_unit_test_teardown(test_cancel, h_teardown),
        cmocka_unit_test_teardown(test_next_misuse, h_tc_teardown),
        cmocka_unit_test(test_registration),
    };
    int rc;

    h_log_capture_start();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    h_log_capture_stop();
    return rc;
}
