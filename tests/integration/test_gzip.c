/*
 * test_gzip.c -- the gzip middleware, every body decompressed with zlib
 * and compared: on and off by Accept-Encoding (q-values, "*", q=0), by
 * size (Starlette's 500 bytes), by type, by an existing Content-Encoding,
 * for 204 and HEAD; Content-Length and Vary; a weak ETag; a 1 MiB body
 * (compressed on the pool); and a stream whose pieces arrive, each one
 * decodable, before the stream ends. In process, through the test client:
 * the stream is read piece by piece as it comes (cn_test_stream,
 * cn_test_read), every other body whole.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "app.h" /* cn__app_free_checked */
#include "harness.h"

/* n bytes of text that compresses: "line 17 of a compressible body\n" ... */
static char *make_text(size_t n)
{
    char *p = malloc(n + 1);
    size_t o = 0;

    assert_non_null(p);
    for (unsigned i = 0; o < n; i++) {
        char line[64];
        int k = snprintf(line, sizeof line, "line %u of a compressible body\n", i);
        size_t take = (size_t)k < n - o ? (size_t)k : n - o;
        memcpy(p + o, line, take);
        o += take;
    }
    p[n] = 0;
    return p;
}

/* GET /g/text?n=N: N bytes of text/plain */
static int text(cn_req *req, cn_res *res)
{
    int64_t n = 0;
    char *body;
    int rc;

    cn_req_query_int(req, "n", &n);
    body = make_text((size_t)n);
    rc = cn_res_bytes(res, 200, body, (size_t)n, "text/plain; charset=utf-8");
    free(body);
    if (rc == 0 && cn_req_query(req, "etag"))
        rc = cn_res_header(res, "ETag", "\"v1\"");
    if (rc == 0 && cn_req_query(req, "encoded"))
        rc = cn_res_header(res, "Content-Encoding", "br");
    return rc;
}

static int png(cn_req *req, cn_res *res)
{
    char *body = make_text(4000);
    int rc = cn_res_bytes(res, 200, body, 4000, "image/png");

    (void)req;
    free(body);
    return rc;
}

static int nocontent(cn_req *req, cn_res *res)
{
    char *body = make_text(4000);
    int rc = cn_res_bytes(res, 204, body, 4000, "text/plain");

    (void)req;
    free(body);
    return rc;
}

static atomic_int stream_go;   /* the test lets the stream go on */
static atomic_int stream_done; /* the handler returned */

/* two pieces with a wait between them, then the end */
static int stream(cn_req *req, cn_res *res)
{
    int rc = cn_res_stream_begin(res, 200, "application/x-ndjson");

    (void)req;
    if (rc == 0)
        rc = cn_res_stream_write(res, "{\"piece\":1}\n", 12);
    for (int i = 0; rc == 0 && !stream_go && i < 1000; i++)
        rc = cn_sleep(5);
    if (rc == 0)
        rc = cn_res_stream_write(res, "{\"piece\":2}\n", 12);
    if (rc == 0)
        rc = cn_res_stream_end(res);
    stream_done = 1;
    return rc;
}

/* a stream of 2 MiB in 64 KiB writes (each compressed on the pool) */
static int big_stream(cn_req *req, cn_res *res)
{
    char *body = make_text(2 * 1024 * 1024);
    int rc = cn_res_stream_begin(res, 200, "text/plain");

    (void)req;
    for (size_t o = 0; rc == 0 && o < 2 * 1024 * 1024; o += 64 * 1024)
        rc = cn_res_stream_write(res, body + o, 64 * 1024);
    free(body);
    return rc < 0 ? rc : cn_res_stream_end(res);
}

static int setup(cn_app *app, void *opts)
{
    if (cn_app_gzip(app, opts) < 0 || cn_app_route(app, "GET /g/text", text, NULL) ||
        cn_app_route(app, "GET /g/png", png, NULL) ||
        cn_app_route(app, "GET /g/nocontent", nocontent, NULL) ||
        cn_app_route(app, "GET /g/stream", stream, NULL) ||
        cn_app_route(app, "GET /g/big-stream", big_stream, NULL))
        return -1;
    return 0;
}

/* Inflate a whole gzip member; NULL when it is not one (or is cut short). */
static char *gunzip(const char *p, size_t n, size_t *out_len)
{
    z_stream z;
    size_t cap = n * 8 + 1024, len = 0;
    char *out = malloc(cap);
    int rc;

    memset(&z, 0, sizeof z);
    assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
    z.next_in = (Bytef *)(uintptr_t)p;
    z.avail_in = (uInt)n;
    do {
        if (cap - len < 4096)
            out = realloc(out, cap *= 2);
        z.next_out = (Bytef *)out + len;
        z.avail_out = (uInt)(cap - len - 1);
        rc = inflate(&z, Z_NO_FLUSH);
        len = cap - 1 - z.avail_out;
    } while (rc == Z_OK);
    inflateEnd(&z);
    if (rc != Z_STREAM_END || z.avail_in != 0) {
        free(out);
        return NULL;
    }
    out[len] = 0;
    *out_len = len;
    return out;
}

static h_client *start(void **state, cn_gzip_opts *opts)
{
    h_client *c = h_tc_start(NULL, setup, opts);

    *state = c;
    return c;
}

static void get(h_client *c, const char *method, const char *path, const char *ae,
                cn_test_response *r)
{
    char *line = ae ? h_strf("Accept-Encoding: %s", ae) : NULL;

    h_tc_request(c, method, path, (const char *const[]){line, NULL}, NULL, r);
    free(line);
}

/* The response is gzip and inflates to make_text(n). */
static void assert_gzipped(const cn_test_response *r, size_t n)
{
    char *want = make_text(n), *got;
    size_t len = 0;

    assert_int_equal(r->status, 200);
    assert_non_null(cn_test_header(r, "content-encoding"));
    assert_string_equal(cn_test_header(r, "content-encoding"), "gzip");
    if (cn_test_header(r, "content-length"))
        assert_int_equal(h_tc_content_length(r), (long long)r->body_len);
    got = gunzip(r->body, r->body_len, &len);
    assert_non_null(got);
    assert_int_equal(len, n);
    assert_memory_equal(got, want, n);
    free(got);
    free(want);
}

static void assert_plain(const cn_test_response *r, size_t n)
{
    char *want = make_text(n);

    assert_null(cn_test_header(r, "content-encoding"));
    assert_int_equal(r->body_len, n);
    assert_memory_equal(r->body, want, n);
    free(want);
}

static void test_accept_encoding(void **state)
{
    static const char *const yes[] = {
        "gzip",       "gzip, deflate, br", "x-gzip", "*", "br;q=1.0, gzip;q=0.5",
        "GZip;Q=0.1", "gzip, identity;q=0"};
    static const char *const no[] = {
        "gzip;q=0", "deflate, br", "*;q=0", "gzip;q=0, *", "identity;q=0", "", "gzip;q=abc"};
    h_client *c = start(state, NULL);
    cn_test_response r;

    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        get(c, "GET", "/g/text?n=5000", yes[i], &r);
        assert_gzipped(&r, 5000);
        assert_true(r.body_len < 5000 / 2);
        assert_string_equal(cn_test_header(&r, "vary"), "Accept-Encoding");
        cn_test_response_free(&r);
    }
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        get(c, "GET", "/g/text?n=5000", no[i], &r);
        assert_plain(&r, 5000);
        /* a cache must not give this one to a client that takes gzip */
        assert_string_equal(cn_test_header(&r, "vary"), "Accept-Encoding");
        cn_test_response_free(&r);
    }
    get(c, "GET", "/g/text?n=5000", NULL, &r);
    assert_plain(&r, 5000);
    assert_string_equal(cn_test_header(&r, "vary"), "Accept-Encoding");
    cn_test_response_free(&r);
}

static void test_what_is_left_alone(void **state)
{
    h_client *c = start(state, NULL);
    cn_test_response r;

    /* Starlette's minimum_size: 500 compresses, 499 does not */
    get(c, "GET", "/g/text?n=499", "gzip", &r);
    assert_plain(&r, 499);
    cn_test_response_free(&r);
    get(c, "GET", "/g/text?n=500", "gzip", &r);
    assert_gzipped(&r, 500);
    cn_test_response_free(&r);
    /* not worth it: an image */
    get(c, "GET", "/g/png", "gzip", &r);
    assert_null(cn_test_header(&r, "content-encoding"));
    assert_null(cn_test_header(&r, "vary"));
    assert_int_equal(r.body_len, 4000);
    cn_test_response_free(&r);
    /* encoded already */
    get(c, "GET", "/g/text?n=5000&encoded=1", "gzip", &r);
    assert_string_equal(cn_test_header(&r, "content-encoding"), "br");
    assert_int_equal(cn_test_header_count(&r, "content-encoding"), 1);
    assert_int_equal(r.body_len, 5000);
    cn_test_response_free(&r);
    /* 204: no body to compress */
    get(c, "GET", "/g/nocontent", "gzip", &r);
    assert_int_equal(r.status, 204);
    assert_null(cn_test_header(&r, "content-encoding"));
    assert_int_equal(r.body_len, 0);
    cn_test_response_free(&r);
    /* unmatched: the 404's 22 bytes stay as they are */
    get(c, "GET", "/g/none", "gzip", &r);
    assert_int_equal(r.status, 404);
    assert_null(cn_test_header(&r, "content-encoding"));
    cn_test_response_free(&r);
}

static void test_head_etag_and_length(void **state)
{
    h_client *c = start(state, NULL);
    cn_test_response g, h;

    get(c, "GET", "/g/text?n=8000&etag=1", "gzip", &g);
    assert_gzipped(&g, 8000);
    assert_string_equal(cn_test_header(&g, "etag"), "W/\"v1\"");
    /* HEAD: the head a GET gets, its Content-Length the compressed size */
    get(c, "HEAD", "/g/text?n=8000&etag=1", "gzip", &h);
    assert_int_equal(h.status, 200);
    assert_string_equal(cn_test_header(&h, "content-encoding"), "gzip");
    assert_int_equal(h_tc_content_length(&h), h_tc_content_length(&g));
    assert_int_equal(h.body_len, 0);
    cn_test_response_free(&g);
    cn_test_response_free(&h);
}

static void test_large_body_on_the_pool(void **state)
{
    h_client *c = start(state, NULL);
    cn_test_response r;
    cn_pool_stats before, after;

    cn_app_pool_stats(c->app, &before);
    get(c, "GET", "/g/text?n=1048576", "gzip", &r);
    assert_gzipped(&r, 1048576);
    cn_test_response_free(&r);
    cn_app_pool_stats(c->app, &after);
    /* the 1 MiB body went to a worker, not the loop */
    assert_true(after.completed >= before.completed + 1);
    /* and a small one did not */
    cn_app_pool_stats(c->app, &before);
    get(c, "GET", "/g/text?n=5000", "gzip", &r);
    assert_gzipped(&r, 5000);
    cn_test_response_free(&r);
    cn_app_pool_stats(c->app, &after);
    assert_int_equal(after.completed, before.completed);
}

static void test_stream_chunk_by_chunk(void **state)
{
    h_client *c = start(state, NULL);
    const char *const ae[] = {"Accept-Encoding: gzip", NULL};
    cn_test_response r;
    char data[4096], plain[256];
    size_t got = 0, n = 0;
    z_stream z;
    int k, zr;

    stream_go = 0;
    stream_done = 0;
    assert_int_equal(cn_test_stream(c->tc, "GET", "/g/stream", ae, NULL, 0, 0, &r), 0);
    assert_int_equal(r.status, 200);
    h_tc_assert_header(&r, "content-encoding", "gzip");
    assert_true(h_tc_chunked(&r));
    cn_test_response_free(&r);
    /* the head and the first piece come while the handler still waits */
    memset(&z, 0, sizeof z);
    assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
    for (int i = 0; i < 100; i++) {
        k = cn_test_read(c->tc, data + got, sizeof data - got, 0);
        assert_true(k > 0); /* bytes, not the end of the body */
        got += (size_t)k;
        /* a fresh inflate of everything so far: Z_SYNC_FLUSH made it whole */
        inflateReset(&z);
        z.next_in = (Bytef *)data;
        z.avail_in = (uInt)got;
        z.next_out = (Bytef *)plain;
        z.avail_out = sizeof plain;
        zr = inflate(&z, Z_SYNC_FLUSH);
        n = sizeof plain - z.avail_out;
        if (zr == Z_OK && n == 12)
            break;
    }
    inflateEnd(&z);
    assert_int_equal(n, 12);
    assert_memory_equal(plain, "{\"piece\":1}\n", 12);
    assert_int_equal(stream_done, 0);
    /* let it go on: the second piece and the end of the gzip member */
    stream_go = 1;
    while ((k = cn_test_read(c->tc, data + got, sizeof data - got, 0)) > 0)
        got += (size_t)k;
    assert_int_equal(k, 0); /* the end of the body */
    {
        size_t len;
        char *all = gunzip(data, got, &len);
        assert_non_null(all);
        assert_int_equal(len, 24);
        assert_memory_equal(all, "{\"piece\":1}\n{\"piece\":2}\n", 24);
        free(all);
    }
    h_tc_settle(c);
    assert_int_equal(stream_done, 1);
    /* without gzip the stream is as written */
    get(c, "GET", "/g/stream", "identity", &r);
    assert_null(cn_test_header(&r, "content-encoding"));
    assert_string_equal(r.body, "{\"piece\":1}\n{\"piece\":2}\n");
    cn_test_response_free(&r);
    /* a HEAD says what a GET would, and has no body */
    get(c, "HEAD", "/g/stream", "gzip", &r);
    assert_string_equal(cn_test_header(&r, "content-encoding"), "gzip");
    cn_test_response_free(&r);
}

static void test_big_stream(void **state)
{
    h_client *c = start(state, NULL);
    cn_test_response r;
    size_t len;
    char *all, *want;

    get(c, "GET", "/g/big-stream", "gzip", &r);
    assert_true(h_tc_chunked(&r));
    all = gunzip(r.body, r.body_len, &len);
    assert_non_null(all);
    assert_int_equal(len, 2 * 1024 * 1024);
    want = make_text(2 * 1024 * 1024);
    assert_memory_equal(all, want, len);
    assert_true(r.body_len < len / 4);
    free(all);
    free(want);
    cn_test_response_free(&r);
    h_tc_settle(c);
}

static void test_options(void **state)
{
    static const char *const types[] = {"image/", NULL};
    static cn_gzip_opts opts = {.minimum_size = 100, .level = 1, .types = types};
    h_client *c = start(state, &opts);
    cn_test_response r;
    char *want;
    size_t len;

    get(c, "GET", "/g/png", "gzip", &r);
    assert_string_equal(cn_test_header(&r, "content-encoding"), "gzip");
    want = make_text(4000);
    char *got = gunzip(r.body, r.body_len, &len);
    assert_non_null(got);
    assert_memory_equal(got, want, 4000);
    free(got);
    free(want);
    cn_test_response_free(&r);
    /* text is not in this list */
    get(c, "GET", "/g/text?n=5000", "gzip", &r);
    assert_plain(&r, 5000);
    cn_test_response_free(&r);

    cn_app *app = cn_app_new(NULL);
    assert_int_equal(cn_app_gzip(app, &(cn_gzip_opts){.level = 10}), CN_EINVAL);
    assert_int_equal(cn_app_gzip(app, &(cn_gzip_opts){.level = -1}), CN_EINVAL);
    assert_int_equal(cn_app_gzip(NULL, NULL), CN_EINVAL);
    assert_int_equal(cn__app_free_checked(app), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_accept_encoding, h_tc_teardown),
        cmocka_unit_test_teardown(test_what_is_left_alone, h_tc_teardown),
        cmocka_unit_test_teardown(test_head_etag_and_length, h_tc_teardown),
        cmocka_unit_test_teardown(test_large_body_on_the_pool, h_tc_teardown),
        cmocka_unit_test_teardown(test_stream_chunk_by_chunk, h_tc_teardown),
        cmocka_unit_test_teardown(test_big_stream, h_tc_teardown),
        cmocka_unit_test_teardown(test_options, h_tc_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
