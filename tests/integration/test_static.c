/*
 * test_static.c -- static files, in a directory tree made for the test
 * (with a secret file beside it, symlinks in and out, a FIFO): content
 * types and validators; every traversal attempt ("..", encoded dots and
 * slashes, backslashes, absolute paths, symlinks leading out, NUL), with
 * openat2 and with the O_NOFOLLOW fallback; 304 for If-None-Match and
 * If-Modified-Since; Range with 206, 416 and If-Range; HEAD; index.html and
 * its redirect; an 8 MiB file to a slow reader within the backpressure
 * bound and keep-alive after it; gzip on top; and a file truncated while it
 * is sent, which closes the connection.
 *
 * Two fixtures. What is served for which request runs in process, through
 * the test client (start_tc). Three tests keep a real socket (start_socket)
 * because the connection is their point: test_head_and_keepalive (the same
 * connection goes on after HEADs of small and large files, nothing follows
 * a HEAD, HTTP/1.0 keep-alive), test_big_file_backpressure (a reader with
 * an 8 KiB receive buffer: the bound on memory held, then keep-alive) and
 * test_truncated_while_sent (a slow reader, then the connection closed
 * short of its Content-Length).
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include "common.h"
#include "batteries.h"
#include "app.h" /* cn__app_free_checked */
#include "harness.h"

#define BIG_SIZE (8u * 1024 * 1024)
#define SHRINK_SIZE (24u * 1024 * 1024)
#define SECRET "TOP SECRET: outside the served directory"

static char base[64]; /* <tmp>/canteen-static-XXXXXX */
static char root[96]; /* base/root: what is served */

static char *at(const char *rel)
{
    return h_strf("%s/%s", root, rel);
}

static void write_file(const char *path, const void *data, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, n), (ssize_t)n);
    close(fd);
}

static void put(const char *rel, const char *text)
{
    char *p = at(rel);

    write_file(p, text, strlen(text));
    free(p);
}

/* byte i of the big files */
static char pattern(uint64_t i)
{
    return (char)('A' + (i * 7 + i / 4096) % 26);
}

static void put_pattern(const char *rel, size_t n)
{
    char *p = at(rel), *buf = malloc(n);

    for (size_t i = 0; i < n; i++)
        buf[i] = pattern(i);
    write_file(p, buf, n);
    free(buf);
    free(p);
}

static bool pattern_ok(const char *body, size_t n, uint64_t from)
{
    for (size_t i = 0; i < n; i++)
        if (body[i] != pattern(from + i))
            return false;
    return true;
}

static int make_tree(void **state)
{
    char *p;

    (void)state;
    snprintf(base, sizeof base, "/tmp/canteen-static-XXXXXX");
    assert_non_null(mkdtemp(base));
    snprintf(root, sizeof root, "%s/root", base);
    assert_int_equal(mkdir(root, 0755), 0);
    p = h_strf("%s/secret.txt", base);
    write_file(p, SECRET, strlen(SECRET));
    free(p);
    put("a.txt", "hello static\n");
    put("page.html", "<h1>page</h1>\n");
    put("style.css", "body { color: red }\n");
    put("data.json", "{\"a\":1}\n");
    put("img.png", "\x89PNG\r\n\x1a\n");
    put("noext", "no extension\n");
    put("empty.txt", "");
    p = at("sub");
    assert_int_equal(mkdir(p, 0755), 0);
    free(p);
    put("sub/b.txt", "in a subdirectory\n");
    p = at("docs");
    assert_int_equal(mkdir(p, 0755), 0);
    free(p);
    put("docs/index.html", "<h1>docs index</h1>\n");
    put_pattern("big.bin", BIG_SIZE);
    put_pattern("mid.bin", 40 * 1024); /* read whole, but not with the open */
    {
        /* compressible and over the whole-body size: streamed, then gzipped */
        size_t n = 300 * 1024;
        char *css = malloc(n + 1), *path = at("big.css");
        for (size_t i = 0; i < n; i++)
            css[i] = ".a{color:red}\n"[i % 14];
        write_file(path, css, n);
        free(css);
        free(path);
    }
    /* symlinks: one that stays inside, three that lead out */
    p = at("inside-link");
    assert_int_equal(symlink("a.txt", p), 0);
    free(p);
    p = at("escape-link");
    assert_int_equal(symlink("../secret.txt", p), 0);
    free(p);
    {
        char *target = h_strf("%s/secret.txt", base);
        p = at("abs-link");
        assert_int_equal(symlink(target, p), 0);
        free(p);
        free(target);
    }
    p = at("dir-escape");
    assert_int_equal(symlink("..", p), 0);
    free(p);
    p = at("fifo");
    assert_int_equal(mkfifo(p, 0644), 0);
    free(p);
    return 0;
}

static int remove_tree(void **state)
{
    char *cmd = h_strf("rm -rf '%s'", base);

    (void)state;
    assert_int_equal(system(cmd), 0);
    free(cmd);
    return 0;
}

static const char *const css_types[] = {"text/", NULL};

static int setup(cn_app *app, void *arg)
{
    static cn_static_opts site = {.html = 1, .cache_control = "public, max-age=60"};

    if (cn_app_static(app, "/static", root, NULL) < 0 ||
        cn_app_static(app, "/site", root, &site) < 0)
        return -1;
    if (arg && cn_app_gzip(app, &(cn_gzip_opts){.types = css_types}) < 0)
        return -1;
    return 0;
}

static cn_config patient(void)
{
    cn_config c = h_fast_config();

    c.keepalive_timeout_ms = 10000; /* a slow reader is not an idle one */
    return c;
}

static h_client *start_tc(void **state, bool gzip)
{
    cn_config cfg = patient();
    h_client *c = h_tc_start(&cfg, setup, gzip ? (void *)1 : NULL);

    *state = c;
    return c;
}

static h_server *start_socket(void **state)
{
    cn_config cfg = patient();
    h_server *s = h_start(&cfg, NULL, setup, NULL);

    *state = s;
    return s;
}

/* One request with the header lines given (none: NULL) into r. */
#define REQ(c, method, target, r, ...)                                                             \
    h_tc_request(c, method, target, (const char *const[]){__VA_ARGS__, NULL}, NULL, r)

static void test_files_and_types(void **state)
{
    static const struct {
        const char *path, *type, *body;
    } files[] = {
        {"/static/a.txt", "text/plain; charset=utf-8", "hello static\n"},
        {"/static/page.html", "text/html; charset=utf-8", "<h1>page</h1>\n"},
        {"/static/style.css", "text/css; charset=utf-8", "body { color: red }\n"},
        {"/static/data.json", "application/json", "{\"a\":1}\n"},
        {"/static/img.png", "image/png", "\x89PNG\r\n\x1a\n"},
        {"/static/noext", "application/octet-stream", "no extension\n"},
        {"/static/sub/b.txt", "text/plain; charset=utf-8", "in a subdirectory\n"},
        {"/static/inside-link", "application/octet-stream", "hello static\n"},
        {"/static/empty.txt", "text/plain; charset=utf-8", ""},
        {"/static/%61.txt", "text/plain; charset=utf-8", "hello static\n"},
    };
    h_client *c = start_tc(state, false);
    struct stat st;
    char lm[32], etag[64], *p = at("a.txt");
    cn_test_response r;

    assert_int_equal(stat(p, &st), 0);
    free(p);
    cn__imf_date(st.st_mtime, lm);
    snprintf(etag, sizeof etag, "\"%llx-%llx\"", (unsigned long long)st.st_mtime,
             (unsigned long long)st.st_size);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        REQ(c, "GET", files[i].path, &r, NULL);
        assert_int_equal(r.status, 200);
        h_tc_assert_header(&r, "content-type", files[i].type);
        assert_int_equal(h_tc_content_length(&r), (long long)strlen(files[i].body));
        assert_memory_equal(r.body, files[i].body, strlen(files[i].body));
        h_tc_assert_header(&r, "accept-ranges", "bytes");
        assert_non_null(cn_test_header(&r, "etag"));
        assert_non_null(cn_test_header(&r, "last-modified"));
        assert_null(cn_test_header(&r, "cache-control"));
        if (strcmp(files[i].path, "/static/a.txt") == 0) {
            h_tc_assert_header(&r, "etag", etag);
            h_tc_assert_header(&r, "last-modified", lm);
        }
        cn_test_response_free(&r);
    }
    /* small files are read with the open (above); then read whole after it, and streamed */
    for (size_t n = 0; n < 2; n++) {
        static const char *const paths[] = {"/static/mid.bin", "/static/big.bin"};
        REQ(c, "GET", paths[n], &r, NULL);
        assert_int_equal(r.status, 200);
        assert_int_equal(r.body_len, n == 0 ? 40 * 1024 : BIG_SIZE);
        assert_true(pattern_ok(r.body, r.body_len, 0));
        cn_test_response_free(&r);
    }
    /* only GET and HEAD */
    REQ(c, "POST", "/static/a.txt", &r, "Content-Length: 0");
    assert_int_equal(r.status, 405);
    h_tc_assert_header(&r, "allow", "GET, HEAD");
    cn_test_response_free(&r);
}

/* Every way out of the directory: 404 (400 for a NUL), never the secret. */
static void assert_traversals_refused(h_client *c)
{
    static const struct {
        const char *target;
        int status;
    } attempts[] = {
        {"/static/../secret.txt", 404},
        {"/static/%2e%2e/secret.txt", 404},
        {"/static/%2E%2E/secret.txt", 404},
        {"/static/.%2e/secret.txt", 404},
        {"/static/%2e%2e%2fsecret.txt", 404},
        {"/static/..%2fsecret.txt", 404},
        {"/static/..%2Fsecret.txt", 404},
        {"/static/sub/../../secret.txt", 404},
        {"/static/sub/%2e%2e/%2e%2e/secret.txt", 404},
        {"/static/sub%2f..%2f..%2fsecret.txt", 404},
        {"/static/%2e%2e%5csecret.txt", 404},
        {"/static/..%5csecret.txt", 404},
        {"/static/sub%5c..%5c..%5csecret.txt", 404},
        {"/static//etc/passwd", 404},
        {"/static/%2fetc%2fpasswd", 404},
        {"/static/%2Fetc/passwd", 404},
        {"/static/escape-link", 404},
        {"/static/abs-link", 404},
        {"/static/dir-escape/secret.txt", 404},
        {"/static/dir-escape/root/a.txt", 404},
        {"/static/./a.txt", 404},
        {"/static/.", 404},
        {"/static/sub/", 404},
        {"/static/sub", 404},
        {"/static/", 404},
        {"/static/fifo", 404},
        {"/static/missing.txt", 404},
        {"/static/a.txt/", 404},
        {"/static/a.txt%00.png", 400},
        {"/static/%00", 400},
    };
    cn_test_response r;

    for (size_t i = 0; i < sizeof attempts / sizeof attempts[0]; i++) {
        REQ(c, "GET", attempts[i].target, &r, NULL);
        if (r.status != attempts[i].status)
            fail_msg("GET %s: %d, expected %d", attempts[i].target, r.status, attempts[i].status);
        assert_null(strstr(r.body, "SECRET"));
        assert_null(strstr(r.body, "root:"));
        cn_test_response_free(&r);
    }
    /* a raw backslash: the parser may refuse it (400); it never serves */
    REQ(c, "GET", "/static/..\\secret.txt", &r, NULL);
    assert_true(r.status == 404 || r.status == 400);
    assert_null(strstr(r.body, "SECRET"));
    cn_test_response_free(&r);
}

static void test_traversal_openat2(void **state)
{
    h_client *c = start_tc(state, false);

    cn__static_force_fallback(false);
    assert_traversals_refused(c);
}

static void test_traversal_fallback(void **state)
{
    h_client *c = start_tc(state, false);
    cn_test_response r;

    cn__static_force_fallback(true);
    assert_traversals_refused(c);
    /* no symlink is followed at all without openat2, those inside included */
    REQ(c, "GET", "/static/inside-link", &r, NULL);
    assert_int_equal(r.status, 404);
    cn_test_response_free(&r);
    /* plain files and subdirectories still are served */
    REQ(c, "GET", "/static/sub/b.txt", &r, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "in a subdirectory\n");
    cn_test_response_free(&r);
    REQ(c, "GET", "/site/docs/", &r, NULL);
    assert_int_equal(r.status, 200);
    cn_test_response_free(&r);
    cn__static_force_fallback(false);
}

static void test_not_modified(void **state)
{
    /* "%E" in a header line is the file's ETag, "%L" its Last-Modified; "\n" parts lines */
    static const struct {
        const char *method, *headers;
        int status;
    } cases[] = {
        {"GET", "If-None-Match: %E", 304},
        {"GET", "If-None-Match: \"other\", W/%E", 304},
        {"GET", "If-None-Match: *", 304},
        {"HEAD", "If-None-Match: %E", 304},
        {"GET", "If-None-Match: \"other\"", 200},
        /* If-Modified-Since: not older than the file */
        {"GET", "If-Modified-Since: %L", 304},
        {"HEAD", "If-Modified-Since: Sun, 06 Nov 2094 08:49:37 GMT", 304},
        {"GET", "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT", 200},
        {"GET", "If-Modified-Since: not a date", 200},
        /* If-None-Match wins over the date (RFC 9110 13.1.3) */
        {"GET", "If-None-Match: \"other\"\nIf-Modified-Since: %L", 200},
    };
    h_client *c = start_tc(state, false);
    cn_test_response r;
    char *etag, *lm;

    REQ(c, "GET", "/static/a.txt", &r, NULL);
    etag = strdup(cn_test_header(&r, "etag"));
    lm = strdup(cn_test_header(&r, "last-modified"));
    cn_test_response_free(&r);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char h[256], *o = h;
        for (const char *p = cases[i].headers; *p; p++) {
            if (p[0] == '%' && (p[1] == 'E' || p[1] == 'L')) {
                o += sprintf(o, "%s", p[1] == 'E' ? etag : lm);
                p++;
            } else {
                *o++ = *p;
            }
        }
        *o = 0;
        /* its lines, for the client */
        char copy[256], *lines[3] = {copy, NULL, NULL}, *nl;
        memcpy(copy, h, sizeof copy);
        if ((nl = strchr(copy, '\n')) != NULL) {
            *nl = 0;
            lines[1] = nl + 1;
        }
        h_tc_request(c, cases[i].method, "/static/a.txt", (const char *const *)lines, NULL, &r);
        if (r.status != cases[i].status)
            fail_msg("%s with %s: %d, expected %d", cases[i].method, h, r.status, cases[i].status);
        if (r.status == 304) {
            /* no body, no length; the validators are repeated */
            assert_int_equal(r.body_len, 0);
            assert_null(cn_test_header(&r, "content-length"));
            h_tc_assert_header(&r, "etag", etag);
        }
        cn_test_response_free(&r);
    }
    free(etag);
    free(lm);
}

static void test_ranges(void **state)
{
    h_client *c = start_tc(state, false);
    cn_test_response r;
    char *etag, *h;

    REQ(c, "GET", "/static/a.txt", &r, "Range: bytes=0-4");
    assert_int_equal(r.status, 206);
    h_tc_assert_header(&r, "content-range", "bytes 0-4/13");
    assert_int_equal(h_tc_content_length(&r), 5);
    assert_string_equal(r.body, "hello");
    etag = strdup(cn_test_header(&r, "etag"));
    cn_test_response_free(&r);
    REQ(c, "GET", "/static/a.txt", &r, "Range: bytes=-7");
    assert_int_equal(r.status, 206);
    h_tc_assert_header(&r, "content-range", "bytes 6-12/13");
    assert_string_equal(r.body, "static\n");
    cn_test_response_free(&r);
    REQ(c, "GET", "/static/a.txt", &r, "Range: bytes=6-");
    assert_int_equal(r.status, 206);
    assert_string_equal(r.body, "static\n");
    cn_test_response_free(&r);
    REQ(c, "GET", "/static/a.txt", &r, "Range: bytes=10-1000");
    assert_int_equal(r.status, 206);
    h_tc_assert_header(&r, "content-range", "bytes 10-12/13");
    cn_test_response_free(&r);
    /* unsatisfiable: 416 with the size */
    REQ(c, "GET", "/static/a.txt", &r, "Range: bytes=13-");
    assert_int_equal(r.status, 416);
    h_tc_assert_header(&r, "content-range", "bytes */13");
    cn_test_response_free(&r);
    REQ(c, "GET", "/static/empty.txt", &r, "Range: bytes=0-");
    assert_int_equal(r.status, 416);
    h_tc_assert_header(&r, "content-range", "bytes */0");
    cn_test_response_free(&r);
    /* several ranges, another unit, nonsense: the whole file */
    REQ(c, "GET", "/static/a.txt", &r, "Range: bytes=0-1,4-5");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello static\n");
    cn_test_response_free(&r);
    REQ(c, "GET", "/static/a.txt", &r, "Range: lines=1-2");
    assert_int_equal(r.status, 200);
    cn_test_response_free(&r);
    REQ(c, "GET", "/static/a.txt", &r, "Range: bytes=5-2");
    assert_int_equal(r.status, 200);
    cn_test_response_free(&r);
    /* If-Range: the range only for the representation it names */
    h = h_strf("If-Range: %s", etag);
    REQ(c, "GET", "/static/a.txt", &r, "Range: bytes=0-4", h);
    free(h);
    assert_int_equal(r.status, 206);
    cn_test_response_free(&r);
    REQ(c, "GET", "/static/a.txt", &r, "Range: bytes=0-4", "If-Range: \"old\"");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello static\n");
    cn_test_response_free(&r);
    /* a range of a large file goes out as a stream of that length */
    REQ(c, "GET", "/static/big.bin", &r, "Range: bytes=1000000-1000099");
    assert_int_equal(r.status, 206);
    assert_int_equal(r.body_len, 100);
    assert_true(pattern_ok(r.body, 100, 1000000));
    cn_test_response_free(&r);
    REQ(c, "GET", "/static/big.bin", &r, "Range: bytes=100000-");
    assert_int_equal(r.status, 206);
    assert_false(h_tc_chunked(&r));
    assert_int_equal(h_tc_content_length(&r), BIG_SIZE - 100000);
    assert_int_equal(r.body_len, BIG_SIZE - 100000);
    assert_true(pattern_ok(r.body, r.body_len, 100000));
    cn_test_response_free(&r);
    free(etag);
}

static void test_head_and_keepalive(void **state)
{
    h_server *s = start_socket(state);
    h_conn *c = h_open(s);
    h_response r;

    /* small and large files: the head only, then the same connection goes on */
    h_sends(c, "HEAD /static/a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(h_read_response_ex(c, &r, H_TIMEOUT_MS, true), H_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.content_length, 13);
    h_assert_header(&r, "content-type", "text/plain; charset=utf-8");
    h_response_free(&r);
    h_sends(c, "HEAD /static/big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(h_read_response_ex(c, &r, H_TIMEOUT_MS, true), H_OK);
    assert_int_equal(r.content_length, BIG_SIZE);
    assert_false(r.chunked);
    h_response_free(&r);
    h_sends(c, "GET /static/sub/b.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_string_equal(r.body, "in a subdirectory\n");
    h_response_free(&r);
    /* nothing more came: the HEADs sent no body */
    assert_int_equal(h_expect_quiet(c, 50), H_TIMEOUT);
    h_close(c);
    /* HTTP/1.0 keeps its connection too: the length is known */
    c = h_open(s);
    h_sends(c, "GET /static/big.bin HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_int_equal(h_read_response(c, &r, 30000), H_OK);
    assert_int_equal(r.body_len, BIG_SIZE);
    assert_true(h_connection_has(&r, "keep-alive"));
    h_response_free(&r);
    h_sends(c, "GET /static/a.txt HTTP/1.0\r\n\r\n");
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_string_equal(r.body, "hello static\n");
    h_response_free(&r);
    h_close(c);
}

static void test_html_mode(void **state)
{
    h_client *c = start_tc(state, false);
    cn_test_response r;

    REQ(c, "GET", "/site/docs/", &r, NULL);
    assert_int_equal(r.status, 200);
    h_tc_assert_header(&r, "content-type", "text/html; charset=utf-8");
    assert_string_equal(r.body, "<h1>docs index</h1>\n");
    h_tc_assert_header(&r, "cache-control", "public, max-age=60");
    cn_test_response_free(&r);
    REQ(c, "GET", "/site/docs", &r, NULL);
    assert_int_equal(r.status, 307);
    h_tc_assert_header(&r, "location", "/site/docs/");
    cn_test_response_free(&r);
    REQ(c, "GET", "/site/docs?x=1", &r, NULL);
    assert_int_equal(r.status, 307);
    h_tc_assert_header(&r, "location", "/site/docs/?x=1");
    cn_test_response_free(&r);
    /* a directory without an index is still a 404, and so is a traversal */
    REQ(c, "GET", "/site/sub/", &r, NULL);
    assert_int_equal(r.status, 404);
    cn_test_response_free(&r);
    REQ(c, "GET", "/site/%2e%2e/", &r, NULL);
    assert_int_equal(r.status, 404);
    cn_test_response_free(&r);
    REQ(c, "GET", "/site/dir-escape/", &r, NULL);
    assert_int_equal(r.status, 404);
    cn_test_response_free(&r);
}

static void test_big_file_backpressure(void **state)
{
    h_server *s = start_socket(state);
    h_conn *c = h_open_rcvbuf(s, 8192);
    h_response r;
    cn_pool_stats ps;

    h_sends(c, "GET /static/big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(h_read_response(c, &r, 60000), H_OK);
    assert_int_equal(r.status, 200);
    assert_false(r.chunked);
    assert_int_equal(r.content_length, BIG_SIZE);
    assert_int_equal(r.body_len, BIG_SIZE);
    assert_true(pattern_ok(r.body, r.body_len, 0));
    h_response_free(&r);
    /* never more than about the stream's high-water mark in memory */
    assert_true(h_stats(s).write_queue_peak < 1024 * 1024);
    /* read on the pool, a piece at a time: 64 reads of 128 KiB and the open */
    cn_app_pool_stats(s->app, &ps);
    assert_true(ps.completed >= 65);
    /* and the connection goes on */
    h_sends(c, "GET /static/a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_string_equal(r.body, "hello static\n");
    h_response_free(&r);
    h_close(c);
    h_assert_settles(s);
}

static void test_with_gzip(void **state)
{
    h_client *c = start_tc(state, true);
    cn_test_response r;

    /* a large text file: streamed in pieces, each compressed */
    REQ(c, "GET", "/static/big.css", &r, "Accept-Encoding: gzip");
    assert_int_equal(r.status, 200);
    h_tc_assert_header(&r, "content-encoding", "gzip");
    assert_true(h_tc_chunked(&r));
    assert_null(cn_test_header(&r, "content-length"));
    assert_true(r.body_len < 300 * 1024 / 10);
    assert_true(strncmp(cn_test_header(&r, "etag"), "W/\"", 3) == 0);
    assert_null(cn_test_header(&r, "accept-ranges"));
    cn_test_response_free(&r);
    /* a small one: whole */
    REQ(c, "GET", "/static/style.css", &r, "Accept-Encoding: gzip");
    assert_int_equal(r.status, 200);
    assert_null(cn_test_header(&r, "content-encoding")); /* 20 bytes: under 500 */
    cn_test_response_free(&r);
    /* a range counts the bytes as they are: never compressed */
    REQ(c, "GET", "/static/big.css", &r, "Accept-Encoding: gzip", "Range: bytes=0-13");
    assert_int_equal(r.status, 206);
    assert_null(cn_test_header(&r, "content-encoding"));
    assert_string_equal(r.body, ".a{color:red}\n");
    cn_test_response_free(&r);
}

static void test_truncated_while_sent(void **state)
{
    h_server *s = start_socket(state);
    char *path = at("shrink.bin");
    h_conn *c;
    size_t got = 0;
    char line[1200];

    h_log_reset();
    put_pattern("shrink.bin", SHRINK_SIZE);
    c = h_open_rcvbuf(s, 8192);
    h_sends(c, "GET /static/shrink.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    /* the head is out and the server is parked on the slow reader */
    assert_true(h_recv_more(c, H_TIMEOUT_MS) > 0);
    assert_true(H_WAIT_UNTIL(h_stats(s).write_queue_peak > 128 * 1024, H_TIMEOUT_MS));
    assert_int_equal(truncate(path, 0), 0);
    /* read everything: the connection ends short of Content-Length */
    for (int i = 0; i < 100000; i++) {
        ssize_t n = h_recv_more(c, H_TIMEOUT_MS);
        if (n == H_EOF)
            break;
        assert_true(n > 0);
        got = c->len;
        if (c->len > 1024 * 1024) {
            h_consume(c, c->len);
            got = 0;
        }
        (void)got;
    }
    assert_true(c->eof);
    assert_true(H_WAIT_UNTIL(h_log_count(CN_LOG_ERROR,
                                         "static file /static/shrink.bin: read "
                                         "failed",
                                         NULL) == 1,
                             H_TIMEOUT_MS));
    h_log_find("static file", line, sizeof line);
    h_close(c);
    free(path);
    h_assert_healthy(s);
    h_assert_settles(s);
}

static void test_bad_mounts(void **state)
{
    cn_app *app = cn_app_new(NULL);
    char *file = at("a.txt");

    (void)state;
    assert_int_equal(cn_app_static(NULL, "/s", root, NULL), CN_EINVAL);
    assert_int_equal(cn_app_static(app, "/s", NULL, NULL), CN_EINVAL);
    assert_int_equal(cn_app_static(app, "s", root, NULL), CN_EINVAL);
    assert_int_equal(cn_app_static(app, "/s/", root, NULL), CN_EINVAL);
    assert_int_equal(cn_app_static(app, "/{x}", root, NULL), CN_EINVAL);
    assert_int_equal(cn_app_static(app, "/s", "/nonexistent/canteen", NULL), CN_ENOENT);
    assert_int_equal(cn_app_static(app, "/s", file, NULL), CN_EINVAL);
    assert_int_equal(cn_app_static(app, "/s", root, NULL), 0);
    assert_int_equal(cn_app_static(app, "/s", root, NULL), CN_EEXIST);
    assert_int_equal(cn_app_static(app, "", root, NULL), 0);
    free(file);
    assert_int_equal(cn__app_free_checked(app), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_files_and_types, h_tc_teardown),
        cmocka_unit_test_teardown(test_traversal_openat2, h_tc_teardown),
        cmocka_unit_test_teardown(test_traversal_fallback, h_tc_teardown),
        cmocka_unit_test_teardown(test_not_modified, h_tc_teardown),
        cmocka_unit_test_teardown(test_ranges, h_tc_teardown),
        cmocka_unit_test_teardown(test_head_and_keepalive, h_teardown),
        cmocka_unit_test_teardown(test_html_mode, h_tc_teardown),
        cmocka_unit_test_teardown(test_big_file_backpressure, h_teardown),
        cmocka_unit_test_teardown(test_with_gzip, h_tc_teardown),
        cmocka_unit_test_teardown(test_truncated_while_sent, h_teardown),
        cmocka_unit_test(test_bad_mounts),
    };
    int rc;

    h_log_capture_start();
    rc = cmocka_run_group_tests(tests, make_tree, remove_tree);
    h_log_capture_stop();
    return rc;
}
