/*
 * test_slashes.c -- the trailing-slash redirect: 307 to the path with the
 * slash added or removed when that one matches (query kept, method kept),
 * nothing for a path that matches as it is, for a method the other path
 * lacks, or for a path with no twin; and never a Location that leaves the
 * server ("//host", "/\host"). In process, through the test client: a
 * redirect is a status and a header.
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static int text(cn_req *req, cn_res *res)
{
    return cn_res_text(res, 200, cn_req_path(req));
}

static int setup(cn_app *app, void *arg)
{
    (void)arg;
    if (cn_app_redirect_slashes(app) < 0 || cn_app_route(app, "GET /things", text, NULL) ||
        cn_app_route(app, "POST /things", text, NULL) ||
        cn_app_route(app, "GET /dir/", text, NULL) ||
        cn_app_route(app, "GET /u/{id:int}", text, NULL) ||
        cn_app_route(app, "GET /both", text, NULL) || cn_app_route(app, "GET /both/", text, NULL) ||
        cn_app_route(app, "GET /evil.example", text, NULL) ||
        cn_app_route(app, "GET //evil.example/", text, NULL) ||
        cn_app_route(app, "GET /\\evil.example/", text, NULL) ||
        cn_app_route(app, "GET /caf\xc3\xa9/", text, NULL))
        return -1;
    return 0;
}

static const char *const no_body[] = {"Content-Length: 0", NULL};

static void expect_redirect(h_client *c, const char *method, const char *target,
                            const char *location)
{
    cn_test_response r;

    h_tc_request(c, method, target, no_body, NULL, &r);
    assert_int_equal(r.status, 307);
    assert_non_null(cn_test_header(&r, "location"));
    assert_string_equal(cn_test_header(&r, "location"), location);
    assert_int_equal(r.body_len, 0);
    assert_null(cn_test_header(&r, "content-type"));
    cn_test_response_free(&r);
}

static void expect_status(h_client *c, const char *method, const char *target, int status)
{
    cn_test_response r;

    h_tc_request(c, method, target, no_body, NULL, &r);
    assert_int_equal(r.status, status);
    assert_null(cn_test_header(&r, "location"));
    cn_test_response_free(&r);
}

/* Anything but a redirect (the parser may refuse a backslash outright). */
static void expect_not_redirected(h_client *c, const char *target)
{
    cn_test_response r;

    h_tc_request(c, "GET", target, no_body, NULL, &r);
    assert_int_not_equal(r.status, 307);
    assert_null(cn_test_header(&r, "location"));
    cn_test_response_free(&r);
}

static h_client *start(void **state)
{
    h_client *c = h_tc_start(NULL, setup, NULL);

    *state = c;
    return c;
}

static void test_redirects(void **state)
{
    h_client *c = start(state);

    expect_redirect(c, "GET", "/things/", "/things");
    expect_redirect(c, "GET", "/things/?q=a%20b&x", "/things?q=a%20b&x");
    expect_redirect(c, "POST", "/things/", "/things"); /* 307 keeps the method */
    expect_redirect(c, "HEAD", "/things/", "/things");
    expect_redirect(c, "GET", "/dir", "/dir/");
    expect_redirect(c, "GET", "/u/7/", "/u/7");
    /* the target as it was sent, escapes included */
    expect_redirect(c, "GET", "/caf%C3%A9", "/caf%C3%A9/");
}

static void test_no_redirect(void **state)
{
    h_client *c = start(state);

    expect_status(c, "GET", "/things", 200);
    expect_status(c, "GET", "/both/", 200);
    expect_status(c, "GET", "/nothing/here", 404);
    expect_status(c, "GET", "/", 404);
    /* the twin has no DELETE: no redirect to a 405, the path's own 404 */
    expect_status(c, "DELETE", "/things/", 404);
    /* a path that matches with another method stays a 405 */
    expect_status(c, "DELETE", "/things", 405);
    /* "/u/x/" -> "/u/x" would be a 422, not a match: still redirected
     * (the route matches; its parameter is judged after) */
    expect_redirect(c, "GET", "/u/x/", "/u/x");
}

static void test_never_off_site(void **state)
{
    h_client *c = start(state);

    /* "//evil.example" + "/" is a route here, but a Location of
     * "//evil.example/" is another host to a browser: no redirect */
    expect_status(c, "GET", "//evil.example", 404);
    expect_status(c, "GET", "//evil.example/", 200);
    expect_not_redirected(c, "/\\evil.example");
    expect_status(c, "GET", "/%2Fevil.example/", 404);
    /* a single leading slash is a path here */
    expect_redirect(c, "GET", "/evil.example/", "/evil.example");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_redirects, h_tc_teardown),
        cmocka_unit_test_teardown(test_no_redirect, h_tc_teardown),
        cmocka_unit_test_teardown(test_never_off_site, h_tc_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
