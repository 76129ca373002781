/*
 * gzip.c -- the gzip middleware (canteen/batteries.h). A whole body is
 * compressed after the route answered, on the pool when it is large; a
 * stream goes through a body filter (filter.h) that deflates each write
 * with Z_SYNC_FLUSH, so every piece reaches the client when it is written,
 * and finishes with Z_FINISH at the end.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <zlib.h>

#include "app.h"
#include "batteries.h"
#include "buf.h"
#include "common.h"
#include "filter.h"
#include "pool.h"
#include "req.h"

#define DEFAULT_MINIMUM_SIZE 500
#define DEFAULT_LEVEL 6
#define DEFAULT_POOL_MIN_SIZE (64 * 1024)
#define STREAM_OUT_CHUNK (16 * 1024)

typedef struct gz {
    size_t minimum_size, pool_min_size;
    int level;
    const char *const *types;
} gz;

/* One request's state, in its arena. */
typedef struct gz_req {
    const gz *g;
    bool accepts;
    bool z_live; /* deflateInit2 done, deflateEnd not yet */
    z_stream z;
    cn__buf out; /* a stream's compressed bytes, before they are emitted */
} gz_req;

/* ---- Accept-Encoding ---- */

/* "q=0.5" at p (after the ';'): 0..1000, or -1 when it is not a q. */
static int parse_q(const char *p, const char *end)
{
    int v = 0, scale = 1000;

    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (end - p < 2 || (p[0] != 'q' && p[0] != 'Q') || p[1] != '=')
        return -1;
    p += 2;
    if (p == end || (*p != '0' && *p != '1'))
        return 0; /* malformed: do not use this coding */
    v = (*p++ - '0') * 1000;
    if (p < end && *p == '.') {
        for (p++; p < end && *p >= '0' && *p <= '9' && scale > 1; p++) {
            scale /= 10;
            v += (*p - '0') * scale;
        }
    }
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p == end && v <= 1000 ? v : 0;
}

int cn__accept_q(const char *ae, const char *coding)
{
    int exact = -1, star = -1;
    size_t clen = strlen(coding);
    const char *p = ae;

    if (ae == NULL)
        return -1;
    while (*p) {
        const char *comma = strchr(p, ','), *stop = comma ? comma : p + strlen(p);
        const char *tok = p, *tend;
        int q = 1000;

        while (tok < stop && (*tok == ' ' || *tok == '\t'))
            tok++;
        tend = tok;
        while (tend < stop && *tend != ';' && *tend != ' ' && *tend != '\t')
            tend++;
        /* parameters: the q among them */
        for (const char *s = memchr(tend, ';', (size_t)(stop - tend)); s;) {
            const char *next = memchr(s + 1, ';', (size_t)(stop - s - 1));
            int pq = parse_q(s + 1, next ? next : stop);
            if (pq >= 0)
                q = pq;
            s = next;
        }
        size_t tl = (size_t)(tend - tok);
        bool is_x = tl == clen + 2 && strncasecmp(tok, "x-", 2) == 0 &&
                    strncasecmp(tok + 2, coding, clen) == 0;
        if ((tl == clen && strncasecmp(tok, coding, clen) == 0) || is_x) {
            if (exact < 0)
                exact = q;
        } else if (tl == 1 && *tok == '*') {
            if (star < 0)
                star = q;
        }
        p = comma ? comma + 1 : stop;
    }
    return exact >= 0 ? exact : star >= 0 ? star : 0;
}

/* Every Accept-Encoding the request has, as one list (RFC 9110 5.3). */
static const char *accept_encoding(cn_req *req)
{
    const char *all = NULL;

    for (unsigned i = 0; i < req->nheaders; i++) {
        const cn__hdr *h = &req->headers[i];
        if (!cn__ieq(h->name, h->nlen, "accept-encoding"))
            continue;
        all = all ? cn_req_sprintf(req, "%s,%s", all, h->value) : h->value;
        if (all == NULL)
            return "";
    }
    return all;
}

/* ---- what is worth compressing ---- */

bool cn__gzip_type_ok(const char *ct, const char *const *types)
{
    static const char *const dflt[] = {"text/",
                                       "application/json",
                                       "application/javascript",
                                       "application/x-javascript",
                                       "application/ecmascript",
                                       "application/xml",
                                       "application/x-ndjson",
                                       "application/wasm",
                                       "image/svg+xml",
                                       NULL};
    size_t n;

    if (ct == NULL)
        return false;
    n = strcspn(ct, "; \t");
    for (const char *const *t = types ? types : dflt; *t; t++) {
        size_t k = strlen(*t);
        bool prefix = k > 0 && (*t)[k - 1] == '/';
        if ((prefix ? n >= k : n == k) && strncasecmp(ct, *t, k) == 0)
            return true;
    }
    /* structured syntax suffixes (RFC 6839) are JSON and XML underneath */
    return types == NULL && n > 5 &&
           (strncasecmp(ct + n - 5, "+json", 5) == 0 || strncasecmp(ct + n - 4, "+xml", 4) == 0);
}

static bool status_ok(int status)
{
    /* 206: Content-Range counts the bytes as they are */
    return status >= 200 && status != 204 && status != 206 && status != 304;
}

/* The bytes change: a strong ETag would lie (nginx weakens it too). */
static int weaken_etag(cn_res *res)
{
    const char *e = cn_res_get_header(res, "etag");
    char *w;

    if (e == NULL || e[0] != '"')
        return 0;
    w = cn_req_sprintf(cn__res_req(res), "W/%s", e);
    if (w == NULL)
        return CN_ENOMEM;
    cn_res_remove_header(res, "etag");
    return cn_res_header(res, "ETag", w);
}

/* Content-Encoding: gzip and a weak ETag, for a response that is compressed;
 * no Accept-Ranges: byte ranges of the gzip bytes are not offered (nginx
 * drops it too). */
static int mark_gzip(cn_res *res)
{
    int rc = cn_res_header(res, "Content-Encoding", "gzip");

    if (rc == 0 && cn_res_remove_header(res, "accept-ranges") < 0)
        rc = CN_ERESPONDED;
    return rc < 0 ? rc : weaken_etag(res);
}

/* ---- whole bodies ---- */

typedef struct whole_job {
    const void *in;
    size_t n;
    int level;
    unsigned char *out;
    size_t cap, len;
} whole_job;

/* Deflate in[0..n) into out (cap is enough, deflateBound). On any thread. */
static int deflate_whole(void *arg)
{
    whole_job *j = arg;
    z_stream z;
    int rc;

    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, j->level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return CN_ENOMEM;
    z.next_in = (Bytef *)(uintptr_t)j->in;
    z.avail_in = (uInt)j->n;
    z.next_out = j->out;
    z.avail_out = (uInt)j->cap;
    rc = deflate(&z, Z_FINISH);
    j->len = j->cap - z.avail_out;
    deflateEnd(&z);
    return rc == Z_STREAM_END ? 0 : CN_ENOMEM;
}

static int compress_body(const gz *g, cn_res *res)
{
    cn_req *req = cn__res_req(res);
    whole_job j = {.in = res->body, .n = res->body_len, .level = g->level};
    int rc;

    if (j.n > UINT32_MAX / 2)
        return 0; /* zlib counts in uInt: such a body goes as it is */
    /* gzip's header and trailer over zlib's bound */
    j.cap = compressBound((uLong)j.n) + 32;
    j.out = cn_req_alloc(req, j.cap);
    if (j.out == NULL)
        return CN_ENOMEM;
    /* the loop serves others while a large body is compressed */
    rc = j.n >= g->pool_min_size ? cn__to_thread_cpu(deflate_whole, &j) : deflate_whole(&j);
    if (rc < 0)
        return rc == CN_ENOMEM ? 0 : rc; /* could not compress: send it as it is */
    rc = mark_gzip(res);
    if (rc < 0)
        return rc;
    res->body = (const char *)j.out;
    res->body_len = j.len;
    return 0;
}

/* ---- streams ---- */

static void z_end(void *arg)
{
    gz_req *r = arg;

    if (r->z_live)
        deflateEnd(&r->z);
    r->z_live = false;
    cn__buf_free(&r->out);
}

typedef struct step_job {
    gz_req *r;
    int flush;
} step_job;

/* Deflate what is in r->z.next_in into r->out. On any thread, one at a time. */
static int deflate_step(void *arg)
{
    step_job *s = arg;
    gz_req *r = s->r;
    int zr;

    do {
        if (cn__buf_reserve(&r->out, STREAM_OUT_CHUNK))
            return CN_ENOMEM;
        r->z.next_out = (Bytef *)r->out.data + r->out.len;
        r->z.avail_out = STREAM_OUT_CHUNK;
        zr = deflate(&r->z, s->flush);
        r->out.len += STREAM_OUT_CHUNK - r->z.avail_out;
        if (zr == Z_STREAM_ERROR)
            return CN_ENOMEM;
    } while (r->z.avail_out == 0 || (s->flush == Z_FINISH && zr != Z_STREAM_END));
    return 0;
}

static int stream_step(gz_req *r, cn_req *req, const void *p, size_t n, int flush)
{
    step_job s = {r, flush};
    int rc;

    r->z.next_in = (Bytef *)(uintptr_t)p;
    r->z.avail_in = (uInt)n;
    r->out.len = 0;
    rc = n >= r->g->pool_min_size ? cn__to_thread_cpu(deflate_step, &s) : deflate_step(&s);
    if (rc == 0)
        rc = cn__stream_emit(req, r->out.data, r->out.len);
    return rc;
}

static int filter_begin(cn_req *req, int status, const char *content_type, void *ctx)
{
    gz_req *r = ctx;
    cn_res *res = &req->res;
    const char *ct = cn_res_get_header(res, "content-type");
    int rc;

    if (ct == NULL)
        ct = content_type ? content_type : "application/octet-stream";
    if (!status_ok(status) || cn_res_get_header(res, "content-range") ||
        !cn__gzip_type_ok(ct, r->g->types))
        return 0;
    rc = cn__res_add_vary(res, "Accept-Encoding");
    if (rc < 0 || !r->accepts || cn_res_get_header(res, "content-encoding"))
        return rc;
    rc = mark_gzip(res);
    if (rc < 0)
        return rc;
    /* a known length is the uncompressed one: chunks instead */
    cn__res_stream_unsize(res);
    if (req->method == CN__M_HEAD)
        return 0; /* the head a GET would get; there are no bytes */
    rc = cn_req_defer(req, z_end, r);
    if (rc < 0)
        return rc;
    if (deflateInit2(&r->z, r->g->level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return CN_ENOMEM;
    r->z_live = true;
    return 1;
}

static int filter_write(cn_req *req, const void *p, size_t n, void *ctx)
{
    /* zlib counts in uInt: a larger write goes in pieces */
    const char *c = p;
    int rc = 0;

    while (rc == 0 && n > 0) {
        size_t k = n > (1u << 30) ? (1u << 30) : n;
        rc = stream_step(ctx, req, c, k, Z_SYNC_FLUSH);
        c += k;
        n -= k;
    }
    return rc;
}

static int filter_end(cn_req *req, void *ctx)
{
    gz_req *r = ctx;
    int rc = stream_step(r, req, NULL, 0, Z_FINISH);

    z_end(r);
    return rc;
}

static const cn__filter gzip_filter = {filter_begin, filter_write, filter_end};

/* ---- the middleware ---- */

static int gzip_mw(cn_req *req, cn_res *res, void *data)
{
    const gz *g = data;
    gz_req *r = cn_req_alloc(req, sizeof(*r));
    const char *ct;
    int rc, grc;

    if (r == NULL)
        return CN_ENOMEM;
    memset(r, 0, sizeof(*r));
    r->g = g;
    r->accepts = cn__accept_q(accept_encoding(req), "gzip") > 0;
    /* another filter (set by an outer middleware) has the stream */
    cn__res_set_filter(res, &gzip_filter, r);
    rc = cn_next(req, res);
    if (!res->body_set || res->head_sent || res->stream != CN__STREAM_NONE)
        return rc; /* nothing, or a stream (the filter's) */
    ct = cn_res_get_header(res, "content-type");
    if (!status_ok(res->status) || !cn__gzip_type_ok(ct, g->types) ||
        cn_res_get_header(res, "content-range"))
        return rc;
    grc = cn__res_add_vary(res, "Accept-Encoding");
    if (grc == 0 && r->accepts && res->body_len >= g->minimum_size &&
        cn_res_get_header(res, "content-encoding") == NULL)
        grc = compress_body(g, res);
    /* the inner result stands; a failure of ours is ours */
    return grc < 0 ? grc : rc;
}

int cn_app_gzip(cn_app *app, const cn_gzip_opts *opts)
{
    static const cn_gzip_opts none;
    gz *g;
    int rc;

    if (opts == NULL)
        opts = &none;
    if (app == NULL || opts->level < 0 || opts->level > 9)
        return CN_EINVAL;
    if (!cn__app_is_new(app))
        return CN_ESTATE;
    g = calloc(1, sizeof(*g));
    if (g == NULL)
        return CN_ENOMEM;
    g->minimum_size = opts->minimum_size ? opts->minimum_size : DEFAULT_MINIMUM_SIZE;
    g->pool_min_size = opts->pool_min_size ? opts->pool_min_size : DEFAULT_POOL_MIN_SIZE;
    g->level = opts->level ? opts->level : DEFAULT_LEVEL;
    g->types = opts->types;
    rc = cn__app_adopt(app, free, g);
    if (rc < 0) {
        free(g);
        return rc;
    }
    return cn_app_use(app, "gzip", gzip_mw, g);
}
