/*
 * test_batteries.c -- the parsers behind cookies, gzip and static files
 * (src/batteries.h), and the router's {name:path}: every corner that an
 * integration test would take a socket per case to reach.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common.h"
#include "batteries.h"
#include "router.h"

/* ---- cookies ---- */

static const char *find(const char *hdr, const char *name, char *buf)
{
    cn_str v;

    if (!cn__cookie_find(hdr, strlen(hdr), name, &v))
        return NULL;
    memcpy(buf, v.ptr, v.len);
    buf[v.len] = 0;
    return buf;
}

static void cookie_find_pairs(void **state)
{
    char b[64];

    (void)state;
    assert_string_equal(find("a=1; b=2; c=3", "b", b), "2");
    assert_string_equal(find("a=1; b=2; c=3", "a", b), "1");
    assert_string_equal(find("a=1; b=2; c=3", "c", b), "3");
    assert_null(find("a=1; b=2", "d", b));
    /* no space after ';', spaces and tabs around everything */
    assert_string_equal(find("a=1;b=2", "b", b), "2");
    assert_string_equal(find("  a = 1 ;\tb=2\t", "a", b), "1");
    assert_string_equal(find("  a = 1 ;\tb=2\t", "b", b), "2");
    /* quoted values lose their quotes; a lone quote stays */
    assert_string_equal(find("s=\"abc def\"; t=1", "s", b), "abc def");
    assert_string_equal(find("s=\"", "s", b), "\"");
    /* empty values, '=' inside a value, the first of two wins */
    assert_string_equal(find("e=; f=x", "e", b), "");
    assert_string_equal(find("tok=a=b=c", "tok", b), "a=b=c");
    assert_string_equal(find("d=1; d=2", "d", b), "1");
    /* names are exact: no prefix, no case folding */
    assert_null(find("session=1", "sess", b));
    assert_null(find("Session=1", "session", b));
    assert_null(find("xsession=1", "session", b));
    /* a pair without '=' is skipped, not taken for a name */
    assert_string_equal(find("flag; a=1", "a", b), "1");
    assert_null(find("flag; a=1", "flag", b));
    assert_null(find("", "a", b));
    assert_null(find(";;;", "a", b));
}

/* ascii.c: the helpers every header passes through */
static void ascii_helpers(void **state)
{
    char b[CN__UTOA_MAX];

    (void)state;
    assert_int_equal(cn__utoa(b, 0), 1);
    assert_string_equal(b, "0");
    assert_int_equal(cn__utoa(b, 404), 3);
    assert_string_equal(b, "404");
    assert_int_equal(cn__utoa(b, UINT64_MAX), 20);
    assert_string_equal(b, "18446744073709551615");
    assert_true(cn__ieq("Content-Type", 12, "content-type"));
    assert_false(cn__ieq("Content-Type", 12, "content-typ"));
    assert_false(cn__ieq("Content-Typ", 11, "content-type"));
    assert_false(cn__ieq("\xc3\xa9", 2, "\xc3\x89")); /* ASCII only: no UTF-8 folding */
    assert_true(cn__is_token("!#$%&'*+-.^_`|~09azAZ", 21));
    for (int c = 0; c < 256; c++) {
        char one = (char)c;
        bool tchar = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                     (c && strchr("!#$%&'*+-.^_`|~", c));
        assert_int_equal(cn__is_token(&one, 1), tchar);
    }
}

static void cookie_values_and_names(void **state)
{
    (void)state;
    assert_true(cn__is_token("session", 7));
    assert_true(cn__is_token("__Host-id", 9));
    assert_false(cn__is_token("", 0));
    assert_false(cn__is_token("a b", 3));
    assert_false(cn__is_token("a=b", 3));
    assert_false(cn__is_token("a;b", 3));
    assert_false(cn__is_token("a\r\nb", 4));
    assert_true(cn__is_cookie_value("", 0));
    assert_true(cn__is_cookie_value("abc123-._~!#$%&'()*+/:<=>?@[]^`{|}", 34));
    assert_true(cn__is_cookie_value("\"quoted\"", 8));
    assert_false(cn__is_cookie_value("a b", 3));
    assert_false(cn__is_cookie_value("a;b", 3));
    assert_false(cn__is_cookie_value("a,b", 3));
    assert_false(cn__is_cookie_value("a\\b", 3));
    assert_false(cn__is_cookie_value("a\"b", 3));
    assert_false(cn__is_cookie_value("a\rb", 3));
    assert_false(cn__is_cookie_value("a\nb", 3));
    assert_false(cn__is_cookie_value("\"a\"b\"", 5));
    assert_false(cn__is_cookie_value("caf\xc3\xa9", 5));
}

static void http_dates(void **state)
{
    char buf[32];
    time_t t;

    (void)state;
    cn__imf_date(784111777, buf);
    assert_string_equal(buf, "Sun, 06 Nov 1994 08:49:37 GMT");
    cn__imf_date(0, buf);
    assert_string_equal(buf, "Thu, 01 Jan 1970 00:00:00 GMT");
    cn__imf_date(951782400, buf); /* a leap day in a year divisible by 400 */
    assert_string_equal(buf, "Tue, 29 Feb 2000 00:00:00 GMT");
    cn__imf_date(4102444799, buf);
    assert_string_equal(buf, "Thu, 31 Dec 2099 23:59:59 GMT");
    cn__imf_date(-1, buf);
    assert_string_equal(buf, "Wed, 31 Dec 1969 23:59:59 GMT");
    /* every day of 1900..2200 agrees with gmtime_r and the C locale's names */
    for (time_t d = -25567; d < 84006; d += 5) {
        struct tm tm;
        char want[40];
        time_t at = d * 86400 + 45296;
        gmtime_r(&at, &tm);
        strftime(want, sizeof want, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        cn__imf_date(at, buf);
        assert_string_equal(buf, want);
    }
    assert_true(cn__parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT", &t));
    assert_int_equal(t, 784111777);
    assert_true(cn__parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT", &t));
    assert_int_equal(t, 784111777);
    assert_true(cn__parse_http_date("Sun Nov  6 08:49:37 1994", &t));
    assert_int_equal(t, 784111777);
    assert_false(cn__parse_http_date("yesterday", &t));
    assert_false(cn__parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT trailing", &t));
    assert_false(cn__parse_http_date("", &t));
    assert_false(cn__parse_http_date(NULL, &t));
}

/* ---- Accept-Encoding ---- */

static void accept_encoding_q_values(void **state)
{
    (void)state;
    assert_int_equal(cn__accept_q(NULL, "gzip"), -1);
    assert_int_equal(cn__accept_q("", "gzip"), 0);
    assert_int_equal(cn__accept_q("gzip", "gzip"), 1000);
    assert_int_equal(cn__accept_q("GZIP", "gzip"), 1000);
    assert_int_equal(cn__accept_q("x-gzip", "gzip"), 1000);
    assert_int_equal(cn__accept_q("gzip, deflate, br", "gzip"), 1000);
    assert_int_equal(cn__accept_q("deflate, br", "gzip"), 0);
    assert_int_equal(cn__accept_q("br;q=1.0, gzip;q=0.8, *;q=0.1", "gzip"), 800);
    assert_int_equal(cn__accept_q("gzip;q=0", "gzip"), 0);
    assert_int_equal(cn__accept_q("gzip; q=0.000", "gzip"), 0);
    assert_int_equal(cn__accept_q("gzip;Q=0.5", "gzip"), 500);
    assert_int_equal(cn__accept_q("gzip;q=0.001", "gzip"), 1);
    assert_int_equal(cn__accept_q("gzip;level=1;q=0.3", "gzip"), 300);
    /* * stands for codings not listed, not for one listed with q=0 */
    assert_int_equal(cn__accept_q("*", "gzip"), 1000);
    assert_int_equal(cn__accept_q("*;q=0", "gzip"), 0);
    assert_int_equal(cn__accept_q("gzip;q=0, *", "gzip"), 0);
    assert_int_equal(cn__accept_q("*;q=0, gzip", "gzip"), 1000);
    /* identity;q=0 refuses the plain form, not gzip */
    assert_int_equal(cn__accept_q("identity;q=0", "gzip"), 0);
    assert_int_equal(cn__accept_q("gzip, identity;q=0", "gzip"), 1000);
    /* malformed q-values do not enable anything */
    assert_int_equal(cn__accept_q("gzip;q=2", "gzip"), 0);
    assert_int_equal(cn__accept_q("gzip;q=abc", "gzip"), 0);
    assert_int_equal(cn__accept_q("gzip;q=1.5", "gzip"), 0);
    assert_int_equal(cn__accept_q("gzip;q=", "gzip"), 0);
    /* names are whole tokens */
    assert_int_equal(cn__accept_q("gzipx, xgzip, gzi", "gzip"), 0);
    assert_int_equal(cn__accept_q(" ,, gzip ,", "gzip"), 1000);
}

static void gzip_types(void **state)
{
    static const char *const only_csv[] = {"text/csv", NULL};
    static const char *const images[] = {"image/", NULL};

    (void)state;
    assert_true(cn__gzip_type_ok("text/html; charset=utf-8", NULL));
    assert_true(cn__gzip_type_ok("text/plain", NULL));
    assert_true(cn__gzip_type_ok("application/json", NULL));
    assert_true(cn__gzip_type_ok("Application/JSON", NULL));
    assert_true(cn__gzip_type_ok("application/problem+json", NULL));
    assert_true(cn__gzip_type_ok("application/atom+xml", NULL));
    assert_true(cn__gzip_type_ok("image/svg+xml", NULL));
    assert_true(cn__gzip_type_ok("application/x-ndjson", NULL));
    assert_false(cn__gzip_type_ok("application/jsonx", NULL));
    assert_false(cn__gzip_type_ok("image/png", NULL));
    assert_false(cn__gzip_type_ok("application/octet-stream", NULL));
    assert_false(cn__gzip_type_ok("application/gzip", NULL));
    assert_false(cn__gzip_type_ok("text", NULL));
    assert_false(cn__gzip_type_ok(NULL, NULL));
    assert_true(cn__gzip_type_ok("text/csv", only_csv));
    assert_false(cn__gzip_type_ok("text/html", only_csv));
    assert_false(cn__gzip_type_ok("application/x+json", only_csv));
    assert_true(cn__gzip_type_ok("image/bmp", images));
}

/* ---- Range, If-None-Match ---- */

static void range(void **state)
{
    uint64_t a = 99, b = 99;

    (void)state;
    assert_int_equal(cn__parse_range("bytes=0-9", 100, &a, &b), CN__RANGE_OK);
    assert_true(a == 0 && b == 9);
    assert_int_equal(cn__parse_range("bytes=10-", 100, &a, &b), CN__RANGE_OK);
    assert_true(a == 10 && b == 99);
    assert_int_equal(cn__parse_range("bytes=-10", 100, &a, &b), CN__RANGE_OK);
    assert_true(a == 90 && b == 99);
    /* a suffix longer than the file is the whole file; an end past it is cut */
    assert_int_equal(cn__parse_range("bytes=-500", 100, &a, &b), CN__RANGE_OK);
    assert_true(a == 0 && b == 99);
    assert_int_equal(cn__parse_range("bytes=50-500", 100, &a, &b), CN__RANGE_OK);
    assert_true(a == 50 && b == 99);
    assert_int_equal(cn__parse_range("bytes=99-99", 100, &a, &b), CN__RANGE_OK);
    assert_true(a == 99 && b == 99);
    assert_int_equal(cn__parse_range("BYTES=0-0", 100, &a, &b), CN__RANGE_OK);
    assert_int_equal(cn__parse_range(" bytes= 1-2 ", 100, &a, &b), CN__RANGE_OK);
    /* nothing of it exists: 416 */
    assert_int_equal(cn__parse_range("bytes=100-", 100, &a, &b), CN__RANGE_UNSATISFIABLE);
    assert_int_equal(cn__parse_range("bytes=200-300", 100, &a, &b), CN__RANGE_UNSATISFIABLE);
    assert_int_equal(cn__parse_range("bytes=-0", 100, &a, &b), CN__RANGE_UNSATISFIABLE);
    assert_int_equal(cn__parse_range("bytes=0-", 0, &a, &b), CN__RANGE_UNSATISFIABLE);
    assert_int_equal(cn__parse_range("bytes=-5", 0, &a, &b), CN__RANGE_UNSATISFIABLE);
    /* ignored: the whole file */
    assert_int_equal(cn__parse_range("bytes=0-1,5-6", 100, &a, &b), CN__RANGE_NONE);
    assert_int_equal(cn__parse_range("bytes=5-2", 100, &a, &b), CN__RANGE_NONE);
    assert_int_equal(cn__parse_range("items=0-1", 100, &a, &b), CN__RANGE_NONE);
    assert_int_equal(cn__parse_range("bytes=", 100, &a, &b), CN__RANGE_NONE);
    assert_int_equal(cn__parse_range("bytes=-", 100, &a, &b), CN__RANGE_NONE);
    assert_int_equal(cn__parse_range("bytes=a-b", 100, &a, &b), CN__RANGE_NONE);
    assert_int_equal(cn__parse_range("bytes=1-2x", 100, &a, &b), CN__RANGE_NONE);
    assert_int_equal(cn__parse_range("bytes=+1-2", 100, &a, &b), CN__RANGE_NONE);
    assert_int_equal(cn__parse_range("bytes=99999999999999999999-", 100, &a, &b), CN__RANGE_NONE);
    assert_int_equal(cn__parse_range("bytes=0-99999999999999999999", 100, &a, &b), CN__RANGE_NONE);
}

static void etags(void **state)
{
    (void)state;
    assert_true(cn__etag_match("\"abc\"", "\"abc\""));
    assert_true(cn__etag_match("*", "\"abc\""));
    assert_true(cn__etag_match("\"x\", \"abc\"", "\"abc\""));
    assert_true(cn__etag_match("W/\"abc\"", "\"abc\""));
    assert_true(cn__etag_match("\"abc\"", "W/\"abc\""));
    assert_false(cn__etag_match("\"abcd\"", "\"abc\""));
    assert_false(cn__etag_match("\"ab\"", "\"abc\""));
    assert_false(cn__etag_match("abc", "\"abc\""));
    assert_false(cn__etag_match("", "\"abc\""));
    assert_false(cn__etag_match("\"abc", "\"abc\""));
}

/* ---- static paths and types ---- */

static bool path_ok(const char *p)
{
    return cn__static_path_ok(p, strlen(p));
}

static void static_paths(void **state)
{
    (void)state;
    assert_true(path_ok(""));
    assert_true(path_ok("a.txt"));
    assert_true(path_ok("css/site.css"));
    assert_true(path_ok("docs/"));
    assert_true(path_ok("a..b/c.d..e"));
    assert_true(path_ok("...")); /* a name, not a dot segment */
    assert_true(path_ok(".hidden"));
    assert_false(path_ok(".."));
    assert_false(path_ok("../etc/passwd"));
    assert_false(path_ok("a/../../etc/passwd"));
    assert_false(path_ok("a/.."));
    assert_false(path_ok("a/../"));
    assert_false(path_ok("."));
    assert_false(path_ok("./a"));
    assert_false(path_ok("a/./b"));
    assert_false(path_ok("/etc/passwd"));
    assert_false(path_ok("a//b"));
    assert_false(path_ok("a\\..\\b"));
    assert_false(path_ok("..\\x"));
    assert_false(cn__static_path_ok("a\0b", 3));
}

static void mime_types(void **state)
{
    (void)state;
    assert_string_equal(cn__mime_type("index.html"), "text/html; charset=utf-8");
    assert_string_equal(cn__mime_type("a/b/INDEX.HTM"), "text/html; charset=utf-8");
    assert_string_equal(cn__mime_type("site.css"), "text/css; charset=utf-8");
    assert_string_equal(cn__mime_type("app.js"), "text/javascript; charset=utf-8");
    assert_string_equal(cn__mime_type("data.json"), "application/json");
    assert_string_equal(cn__mime_type("logo.svg"), "image/svg+xml");
    assert_string_equal(cn__mime_type("photo.JPG"), "image/jpeg");
    assert_string_equal(cn__mime_type("a.wasm"), "application/wasm");
    assert_string_equal(cn__mime_type("Makefile"), "application/octet-stream");
    assert_string_equal(cn__mime_type("archive.unknown"), "application/octet-stream");
    assert_string_equal(cn__mime_type("dir.html/file"), "application/octet-stream");
    assert_string_equal(cn__mime_type("trailing."), "application/octet-stream");
}

/* ---- the router's {name:path} ---- */

static int handler(cn_req *req, cn_res *res)
{
    (void)req;
    (void)res;
    return 0;
}

static void router_path_convertor(void **state)
{
    cn__router *r = cn__router_new();
    cn__arena a;
    cn__match m;

    (void)state;
    cn__arena_init(&a, NULL, 0);
    assert_non_null(r);
    assert_int_equal(cn__router_add(r, "GET /static/{path:path}", handler, NULL, NULL, NULL), 0);
    assert_int_equal(cn__router_add(r, "GET /static/special", handler, NULL, NULL, NULL), 0);
    assert_int_equal(cn__router_add(r, "POST /up/{dir}/{rest:path}", handler, NULL, NULL, NULL), 0);
    /* only last */
    assert_int_equal(cn__router_add(r, "GET /x/{p:path}/y", handler, NULL, NULL, NULL),
                     CN_EBADPATTERN);
    assert_int_equal(cn__router_add(r, "GET /x/{p:paths}", handler, NULL, NULL, NULL),
                     CN_EBADPATTERN);

#define MATCH(method, path) cn__router_match(r, method, path, strlen(path), &a, &m)
    assert_int_equal(MATCH(CN__M_GET, "/static/a/b/c.txt"), 0);
    assert_string_equal(m.route->pattern, "/static/{path:path}");
    assert_int_equal(m.nparams, 1);
    assert_string_equal(m.params[0].name, "path");
    assert_string_equal(m.params[0].value, "a/b/c.txt");
    /* decoded in one piece: %2F is a slash in the value */
    assert_int_equal(MATCH(CN__M_GET, "/static/a%2Fb%20c"), 0);
    assert_string_equal(m.params[0].value, "a/b c");
    /* empty rest, trailing slashes, dot segments are the handler's to judge */
    assert_int_equal(MATCH(CN__M_GET, "/static/"), 0);
    assert_string_equal(m.params[0].value, "");
    assert_int_equal(MATCH(CN__M_GET, "/static/docs/"), 0);
    assert_string_equal(m.params[0].value, "docs/");
    assert_int_equal(MATCH(CN__M_GET, "/static/../x"), 0);
    assert_string_equal(m.params[0].value, "../x");
    /* a literal wins */
    assert_int_equal(MATCH(CN__M_GET, "/static/special"), 0);
    assert_string_equal(m.route->pattern, "/static/special");
    assert_int_equal(MATCH(CN__M_GET, "/static/special/x"), 0);
    assert_string_equal(m.route->pattern, "/static/{path:path}");
    /* the prefix alone is not the mount */
    assert_int_equal(MATCH(CN__M_GET, "/static"), 404);
    /* HEAD follows GET; POST is 405 with the methods of the path */
    assert_int_equal(MATCH(CN__M_HEAD, "/static/a"), 0);
    assert_int_equal(MATCH(CN__M_POST, "/static/a"), 405);
    assert_true(m.allow & (1u << CN__M_GET));
    /* with a parameter before it */
    assert_int_equal(MATCH(CN__M_POST, "/up/d1/x/y/z"), 0);
    assert_int_equal(m.nparams, 2);
    assert_string_equal(m.params[0].value, "d1");
    assert_string_equal(m.params[1].value, "x/y/z");
    /* a bad escape anywhere in the rest is 400 */
    assert_int_equal(MATCH(CN__M_GET, "/static/a/%zz"), 400);
#undef MATCH
    cn__router_free(r);
    cn__arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cookie_find_pairs),
        cmocka_unit_test(ascii_helpers),
        cmocka_unit_test(cookie_values_and_names),
        cmocka_unit_test(http_dates),
        cmocka_unit_test(accept_encoding_q_values),
        cmocka_unit_test(gzip_types),
        cmocka_unit_test(range),
        cmocka_unit_test(etags),
        cmocka_unit_test(static_paths),
        cmocka_unit_test(mime_types),
        cmocka_unit_test(router_path_convertor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
