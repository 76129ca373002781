/*
 * test_cookies.c -- cookies: read by name from one or several Cookie
 * headers (quoted values, spaces, no spaces), set with every attribute,
 * deleted, and every injection attempt refused with CN_EBADHEADER (nothing
 * reaches the response). In process, through the test client, which sends
 * header lines as given and hands back every Set-Cookie line in order.
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* GET /c/read?n=<name>: the cookie's value, or "(none)" */
static int read_cookie(cn_req *req, cn_res *res)
{
    const char *v = cn_req_cookie(req, cn_req_query(req, "n"));

    return cn_res_text(res, 200, v ? cn_req_sprintf(req, "[%s]", v) : "(none)");
}

static int set_cookies(cn_req *req, cn_res *res)
{
    int rc;

    (void)req;
    rc = cn_res_set_cookie(res, "plain", "v1", NULL);
    if (rc == 0)
        rc = cn_res_set_cookie(res, "full", "\"quoted\"",
                               &(cn_cookie_opts){.max_age = 3600,
                                                 .expires = 784111777,
                                                 .path = "/app",
                                                 .domain = "example.org",
                                                 .secure = 1,
                                                 .http_only = 1,
                                                 .same_site = CN_SAMESITE_STRICT});
    if (rc == 0)
        rc = cn_res_set_cookie(res, "cross", "x",
                               &(cn_cookie_opts){.secure = 1, .same_site = CN_SAMESITE_NONE});
    if (rc == 0)
        rc = cn_res_set_cookie(res, "bare", "", &(cn_cookie_opts){.same_site = CN_SAMESITE_OMIT});
    if (rc == 0)
        rc = cn_res_delete_cookie(res, "old", &(cn_cookie_opts){.path = "/app", .max_age = 5});
    return rc < 0 ? rc : cn_res_text(res, 200, "set");
}

/* every bad cookie, its code in the body: "name=code,..." */
static int bad_cookies(cn_req *req, cn_res *res)
{
    static const struct {
        const char *label, *name, *value;
        cn_cookie_opts o;
    } cases[] = {
        {"crlf-value", "a", "x\r\nSet-Cookie: evil=1", {0}},
        {"lf-value", "a", "x\nb", {0}},
        {"semi-value", "a", "x; Domain=evil.example", {0}},
        {"comma-value", "a", "x,y", {0}},
        {"space-value", "a", "x y", {0}},
        {"dquote-value", "a", "x\"y", {0}},
        {"backslash-value", "a", "x\\y", {0}},
        {"nonascii-value", "a", "caf\xc3\xa9", {0}},
        {"space-name", "a b", "x", {0}},
        {"eq-name", "a=b", "x", {0}},
        {"semi-name", "a;b", "x", {0}},
        {"crlf-name", "a\r\n", "x", {0}},
        {"empty-name", "", "x", {0}},
        {"semi-path", "a", "x", {.path = "/; Domain=evil"}},
        {"crlf-path", "a", "x", {.path = "/\r\nX-Evil: 1"}},
        {"semi-domain", "a", "x", {.domain = "a.example; Secure"}},
        {"empty-domain", "a", "x", {.domain = ""}},
        {"none-insecure", "a", "x", {.same_site = CN_SAMESITE_NONE}},
        {"negative-age", "a", "x", {.max_age = -1}},
        {"negative-expires", "a", "x", {.expires = -5}},
        {"bad-samesite", "a", "x", {.same_site = (cn_same_site)42}},
    };
    char *out = "";

    (void)req;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = cn_res_set_cookie(res, cases[i].name, cases[i].value, &cases[i].o);
        out = cn_req_sprintf(req, "%s%s=%s,", out, cases[i].label, cn_err_name(rc));
    }
    out = cn_req_sprintf(req, "%snull-value=%s,delete-bad=%s", out,
                         cn_err_name(cn_res_set_cookie(res, "a", NULL, NULL)),
                         cn_err_name(cn_res_delete_cookie(res, "a b", NULL)));
    return cn_res_text(res, 200, out);
}

static int setup(cn_app *app, void *arg)
{
    (void)arg;
    if (cn_app_route(app, "GET /c/read", read_cookie, NULL) ||
        cn_app_route(app, "GET /c/set", set_cookies, NULL) ||
        cn_app_route(app, "GET /c/bad", bad_cookies, NULL))
        return -1;
    return 0;
}

static h_client *start(void **state)
{
    h_client *c = h_tc_start(NULL, setup, NULL);

    *state = c;
    return c;
}

/* GET /c/read?n=name with these header lines: the body of its 200. */
static char *read_with(h_client *c, const char *name, const char *const *lines)
{
    char *target = h_strf("/c/read?n=%s", name), *body;
    cn_test_response r;

    h_tc_request(c, "GET", target, lines, NULL, &r);
    assert_int_equal(r.status, 200);
    body = strdup(r.body);
    cn_test_response_free(&r);
    free(target);
    return body;
}

#define ASSERT_READ(c, name, want, ...)                                                            \
    do {                                                                                           \
        char *got_ = read_with(c, name, (const char *const[]){__VA_ARGS__, NULL});                 \
        assert_string_equal(got_, want);                                                           \
        free(got_);                                                                                \
    } while (0)

static void test_read(void **state)
{
    h_client *c = start(state);

    ASSERT_READ(c, "b", "[2]", "Cookie: a=1; b=2; c=3");
    ASSERT_READ(c, "a", "[1]", "Cookie: a=1;b=2");
    ASSERT_READ(c, "sid", "[ab cd]", "Cookie: sid=\"ab cd\"");
    ASSERT_READ(c, "x", "(none)", "Cookie: a=1");
    ASSERT_READ(c, "x", "(none)", NULL);
    /* several Cookie headers (HTTP/2 proxies split them): all are read */
    ASSERT_READ(c, "late", "[yes]", "Cookie: a=1", "X-Other: 1", "Cookie: late=yes");
    ASSERT_READ(c, "a", "[first]", "Cookie: a=first", "Cookie: a=second");
    ASSERT_READ(c, "e", "[]", "Cookie: e=");
    /* a name is exact */
    ASSERT_READ(c, "a", "(none)", "Cookie: A=1; aa=2");
}

static void test_set(void **state)
{
    h_client *c = start(state);
    cn_test_response r;
    const char *want[] = {
        "plain=v1; Path=/; SameSite=Lax",
        "full=\"quoted\"; Path=/app; Max-Age=3600; Expires=Sun, 06 Nov 1994 08:49:37 GMT; "
        "Domain=example.org; Secure; HttpOnly; SameSite=Strict",
        "cross=x; Path=/; Secure; SameSite=None",
        "bare=; Path=/",
        "old=; Path=/app; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; SameSite=Lax",
    };
    size_t k = 0;

    h_tc_request(c, "GET", "/c/set", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(cn_test_header_count(&r, "set-cookie"), 5);
    for (size_t i = 0; i < r.nheaders; i++)
        if (strcasecmp(r.header_names[i].ptr, "set-cookie") == 0)
            assert_string_equal(r.header_values[i].ptr, want[k++]);
    cn_test_response_free(&r);
}

static void test_injection_refused(void **state)
{
    h_client *c = start(state);
    cn_test_response r;

    h_tc_request(c, "GET", "/c/bad", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "crlf-value=CN_EBADHEADER,lf-value=CN_EBADHEADER,"
                                "semi-value=CN_EBADHEADER,comma-value=CN_EBADHEADER,"
                                "space-value=CN_EBADHEADER,dquote-value=CN_EBADHEADER,"
                                "backslash-value=CN_EBADHEADER,nonascii-value=CN_EBADHEADER,"
                                "space-name=CN_EBADHEADER,eq-name=CN_EBADHEADER,"
                                "semi-name=CN_EBADHEADER,crlf-name=CN_EBADHEADER,"
                                "empty-name=CN_EBADHEADER,semi-path=CN_EBADHEADER,"
                                "crlf-path=CN_EBADHEADER,semi-domain=CN_EBADHEADER,"
                                "empty-domain=CN_EBADHEADER,none-insecure=CN_EINVAL,"
                                "negative-age=CN_EINVAL,negative-expires=CN_EINVAL,"
                                "bad-samesite=CN_EINVAL,null-value=CN_EINVAL,"
                                "delete-bad=CN_EBADHEADER");
    /* none of them left a header behind */
    assert_int_equal(cn_test_header_count(&r, "set-cookie"), 0);
    assert_null(cn_test_header(&r, "x-evil"));
    cn_test_response_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_read, h_tc_teardown),
        cmocka_unit_test_teardown(test_set, h_tc_teardown),
        cmocka_unit_test_teardown(test_injection_refused, h_tc_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
