/* res.c -- the response builder, error bodies and HTTP/1.1 serialisation. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "json.h"
#include "pool.h"
#include "req.h"

/* Set status and body; `body` is copied into the arena unless it lives there already. */
static int put_body(cn_res *res, int status, const char *body, size_t len, const char *ctype,
                    cn__arena *arena, bool copy)
{
    char *p = (char *)(uintptr_t)body;

    if (res->body_set)
        return CN_ERESPONDED;
    if (status < 100 || status > 999)
        return CN_EINVAL;
    if (copy) {
        p = cn__arena_alloc(arena, len ? len : 1);
        if (p == NULL)
            return CN_ENOMEM;
        if (len)
            memcpy(p, body, len);
    }
    res->status = status;
    res->body = p;
    res->body_len = len;
    if (res->content_type == NULL)
        res->content_type = ctype;
    res->body_set = true;
    return 0;
}

static int set_body(cn_res *res, int status, const char *body, size_t len, const char *ctype,
                    cn__arena *arena)
{
    return put_body(res, status, body, len, ctype, arena, true);
}

/* The response is embedded in its request; the arena is the request's. */
static cn__arena *res_arena(cn_res *res)
{
    return &cn__res_req(res)->arena;
}

/* The headers the serialiser writes itself. */
bool cn__res_reserved_header(const char *name, size_t n)
{
    switch (n) {
    case 4:
        return cn__ieq(name, n, "date");
    case 6:
        return cn__ieq(name, n, "server");
    case 10:
        return cn__ieq(name, n, "connection");
    case 14:
        return cn__ieq(name, n, "content-length");
    case 17:
        return cn__ieq(name, n, "transfer-encoding");
    default:
        return false;
    }
}

static bool valid_value(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c < 32 && c != '\t') || c == 127)
            return false;
    }
    return true;
}

/* One more slot in the header array. */
static cn__hdr *header_slot(cn_res *res)
{
    if (res->nheaders == res->hcap) {
        unsigned cap = res->hcap ? res->hcap * 2 : 8;
        cn__hdr *h = cn__arena_realloc(res_arena(res), res->headers, res->hcap * sizeof(*h),
                                       cap * sizeof(*h));
        if (h == NULL)
            return NULL;
        res->headers = h;
        res->hcap = cap;
    }
    return &res->headers[res->nheaders];
}

static int add_header(cn_res *res, const char *name, size_t nlen, const char *value, size_t vlen)
{
    cn__hdr *h = header_slot(res);

    if (h == NULL)
        return CN_ENOMEM;
    h->name = name;
    h->nlen = nlen;
    h->value = value;
    h->vlen = vlen;
    if (cn__ieq(name, nlen, "content-type"))
        res->content_type = value;
    res->nheaders++;
    return 0;
}

int cn__res_header_trusted(cn_res *res, const char *name, size_t nlen, const char *value,
                           size_t vlen)
{
    if (res->head_sent)
        return CN_ERESPONDED;
    return add_header(res, name, nlen, value, vlen);
}

int cn_res_header(cn_res *res, const char *name, const char *value)
{
    cn__arena *a = res_arena(res);
    size_t nlen, vlen;
    char *n, *v;

    if (name == NULL || value == NULL)
        return CN_EINVAL;
    if (res->head_sent)
        return CN_ERESPONDED;
    nlen = strlen(name);
    if (!cn__is_token(name, nlen) || !valid_value(value) || cn__res_reserved_header(name, nlen))
        return CN_EBADHEADER;
    vlen = strlen(value);
    n = cn__arena_strndup(a, name, nlen);
    v = cn__arena_strndup(a, value, vlen);
    if (n == NULL || v == NULL)
        return CN_ENOMEM;
    return add_header(res, n, nlen, v, vlen);
}

int cn_res_text(cn_res *res, int status, const char *text)
{
    if (text == NULL)
        return CN_EINVAL;
    return set_body(res, status, text, strlen(text), "text/plain; charset=utf-8", res_arena(res));
}

int cn_res_bytes(cn_res *res, int status, const void *body, size_t len, const char *content_type)
{
    if (body == NULL && len)
        return CN_EINVAL;
    if (content_type && !valid_value(content_type))
        return CN_EBADHEADER;
    return set_body(res, status, body, len,
                    content_type ? content_type : "application/octet-stream", res_arena(res));
}

/* Printing a tree (and deleting it, when it is the caller's to give). */
typedef struct print_job {
    cJSON *json;
    bool del;
    cn__buf out;
    int rc;
    bool ran;
} print_job;

static int print_work(void *arg)
{
    print_job *j = arg;

    j->rc = cn__json_print(j->json, &j->out);
    if (j->del)
        cJSON_Delete(j->json);
    j->ran = true;
    return 0;
}

/* A printed body this large becomes the response as it is, not copied. */
#define KEEP_PRINTED (64 * 1024)

int cn_res_json(cn_res *res, int status, cJSON *json)
{
    cn_req *req = cn__res_req(res);
    /* the request's own tree (cn_req_json's) stays the request's */
    print_job j = {.json = json, .del = json != req->json};
    int rc = CN_ENOTCORO;

    if (json == NULL)
        return CN_EINVAL;
    if (res->body_set) {
        if (j.del)
            cn__json_free(req->app, json);
        return CN_ERESPONDED;
    }
    /* a big tree is printed (and deleted) on the pool */
    if (cn__json_nodes(json, CN__JSON_POOL_NODES) >= CN__JSON_POOL_NODES)
        rc = cn__to_thread_cpu(print_work, &j);
    if (rc == CN_ENOTCORO)
        rc = print_work(&j);
    if (!j.ran && j.del)
        cn__json_free(req->app, json); /* dropped from the queue */
    if (rc == 0)
        rc = j.rc;
    if (rc == 0 && j.out.len >= KEEP_PRINTED && cn_req_defer(req, free, j.out.data) == 0)
        return put_body(res, status, j.out.data, j.out.len, "application/json", res_arena(res),
                        false);
    if (rc == 0)
        rc = set_body(res, status, j.out.data ? j.out.data : "", j.out.len, "application/json",
                      res_arena(res));
    cn__buf_free(&j.out);
    return rc;
}

int cn_res_jsonf(cn_res *res, int status, const char *fmt, ...)
{
    va_list ap;
    int n, rc;
    char *p;

    if (fmt == NULL)
        return CN_EINVAL;
    if (res->body_set)
        return CN_ERESPONDED;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return CN_EINVAL;
    p = cn__arena_alloc(res_arena(res), (size_t)n + 1);
    if (p == NULL)
        return CN_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    /* made in the arena already: no second copy */
    rc = put_body(res, status, p, (size_t)n, "application/json", res_arena(res), false);
    return rc;
}

int cn_res_json_str(cn_res *res, int status, const char *json)
{
    if (json == NULL)
        return CN_EINVAL;
    return set_body(res, status, json, strlen(json), "application/json", res_arena(res));
}

/* Append a JSON string literal (quotes and escapes) to b. */
static int json_quote(cn__buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";

    if (cn__buf_append(b, "\"", 1))
        return -1;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        if (c == '"' || c == '\\') {
            char two[2] = {'\\', (char)c};
            if (cn__buf_append(b, two, 2))
                return -1;
        } else if (c < 0x20) {
            if (cn__buf_append(b, esc, 6))
                return -1;
        } else if (cn__buf_append(b, s, 1)) {
            return -1;
        }
    }
    return cn__buf_append(b, "\"", 1);
}

const char *cn_req_json_quote(cn_req *req, const char *s)
{
    cn__buf b = {0};
    char *p;

    if (req == NULL)
        return NULL;
    if (s == NULL)
        return "null";
    if (json_quote(&b, s)) {
        cn__buf_free(&b);
        return NULL;
    }
    p = cn_req_strndup(req, b.data, b.len);
    cn__buf_free(&b);
    return p;
}

int cn_res_error(cn_res *res, int status, const char *detail)
{
    cn__buf b = {0};
    int rc;

    if (detail == NULL)
        detail = cn_status_reason(status);
    if (cn__buf_puts(&b, "{\"detail\":") || json_quote(&b, detail) || cn__buf_puts(&b, "}")) {
        cn__buf_free(&b);
        return CN_ENOMEM;
    }
    rc = set_body(res, status, b.data, b.len, "application/json", res_arena(res));
    cn__buf_free(&b);
    return rc;
}

int cn_res_status(const cn_res *res)
{
    return res->status;
}

int cn_res_raise(cn_res *res, int status, const char *detail)
{
    int rc;

    if (res == NULL || status < 100 || status > 999)
        return CN_EINVAL;
    if (res->head_sent)
        return CN_ERESPONDED;
    res->body_set = false;
    cn_res_remove_header(res, "content-type"); /* the error body is JSON */
    rc = cn_res_error(res, status, detail);
    return rc < 0 ? rc : CN_EHTTP;
}

int cn_res_set_status(cn_res *res, int status)
{
    if (res == NULL || status < 100 || status > 999)
        return CN_EINVAL;
    if (res->head_sent)
        return CN_ERESPONDED;
    if (!res->body_set)
        return CN_ESTATE;
    res->status = status;
    return 0;
}

const char *cn_res_get_header(const cn_res *res, const char *name)
{
    if (res == NULL || name == NULL || res->head_sent)
        return NULL;
    for (unsigned i = 0; i < res->nheaders; i++)
        if (cn__ieq(res->headers[i].name, res->headers[i].nlen, name))
            return res->headers[i].value;
    /* a body's own type is a header like the others */
    if (res->content_type && cn__ieq("content-type", 12, name))
        return res->content_type;
    return NULL;
}

int cn_res_remove_header(cn_res *res, const char *name)
{
    unsigned n = 0;

    if (res == NULL || name == NULL)
        return CN_EINVAL;
    if (res->head_sent)
        return CN_ERESPONDED;
    for (unsigned i = 0; i < res->nheaders; i++) {
        if (cn__ieq(res->headers[i].name, res->headers[i].nlen, name))
            continue;
        res->headers[n++] = res->headers[i];
    }
    int removed = (int)(res->nheaders - n);
    res->nheaders = n;
    if (cn__ieq(name, strlen(name), "content-type"))
        res->content_type = NULL;
    return removed;
}

cn_str cn_res_body(const cn_res *res)
{
    if (res == NULL || !res->body_set || res->stream != CN__STREAM_NONE || res->head_sent)
        return (cn_str){"", 0};
    return (cn_str){res->body, res->body_len};
}

int cn_res_reset(cn_res *res)
{
    if (res == NULL)
        return CN_EINVAL;
    if (res->head_sent)
        return CN_ERESPONDED;
    res->status = 0;
    res->nheaders = 0;
    res->body = NULL;
    res->body_len = 0;
    res->content_type = NULL;
    res->body_set = false;
    return 0;
}

int cn__res_busy(cn_res *res, const char *detail, unsigned retry_after_s)
{
    char v[CN__UTOA_MAX + 1];

    v[cn__utoa(v, retry_after_s)] = 0;
    cn_res_remove_header(res, "retry-after");   /* one, Canteen's */
    (void)cn_res_header(res, "Retry-After", v); /* without it, still a 503 */
    return cn_res_error(res, 503, detail);
}

int cn__res_from_error(cn_res *res, int err, unsigned keep, unsigned retry_after_s)
{
    /* a fresh start: whatever the failing code half-set is dropped */
    res->body_set = false;
    res->status = 0;
    if (keep < res->nheaders)
        res->nheaders = keep;
    cn_res_remove_header(res, "content-type"); /* the error body is JSON */
    switch (err) {
    case CN_EBADJSON:
        return cn_res_error(res, 400, "JSON decode error");
    case CN_EJSONDEPTH:
        return cn_res_error(res, 400, "JSON nesting too deep");
    case CN_EUNAVAILABLE:
        /* a dependency (a database pool) cannot serve now; how long that
         * lasts is the dependency's business, so no Retry-After */
        return cn_res_error(res, 503, NULL);
    case CN_EAGAIN:
    case CN_EEXPIRED:
        /* the thread pool's queue is full, or the job waited past its
         * limit: the server is busy, the client may come back */
        return cn__res_busy(res, NULL, retry_after_s);
    default:
        return cn_res_error(res, 500, NULL);
    }
}

const char *cn__http_date(void)
{
    static _Thread_local char buf[32];
    static _Thread_local time_t cached;
    time_t now = time(NULL);

    if (now != cached) {
        cn__imf_date(now, buf);
        cached = now;
    }
    return buf;
}

/* Status line for a code: "HTTP/1.1 404 Not Found\r\n". */
static int put_status_line(cn__buf *out, int status)
{
    char code[CN__UTOA_MAX];
    size_t n = cn__utoa(code, (unsigned)status);

    return cn__buf_append(out, "HTTP/1.1 ", 9) || cn__buf_append(out, code, n) ||
           cn__buf_append(out, " ", 1) || cn__buf_puts(out, cn_status_reason(status)) ||
           cn__buf_append(out, "\r\n", 2);
}

/* Server, Date, Content-Length (unless clen is NULL), Content-Type, Connection. */
static int put_common(cn__buf *out, const size_t *clen, const char *ctype, bool keep_alive,
                      bool close_explicit)
{
    char num[CN__UTOA_MAX];

    if (cn__buf_puts(out, "Server: canteen\r\nDate: ") || cn__buf_puts(out, cn__http_date()) ||
        cn__buf_puts(out, "\r\n"))
        return -1;
    if (clen) {
        size_t n = cn__utoa(num, *clen);
        if (cn__buf_puts(out, "Content-Length: ") || cn__buf_append(out, num, n) ||
            cn__buf_puts(out, "\r\n"))
            return -1;
    }
    if (ctype && (cn__buf_puts(out, "Content-Type: ") || cn__buf_puts(out, ctype) ||
                  cn__buf_puts(out, "\r\n")))
        return -1;
    if (!keep_alive && close_explicit && cn__buf_puts(out, "Connection: close\r\n"))
        return -1;
    return 0;
}

/*
 * Status line and headers, through the blank line. `clen`: the
 * Content-Length (NULL: none); `ctype`: the Content-Type (NULL: none).
 */
static int put_head(const cn_req *req, cn__buf *out, bool keep_alive, const size_t *clen,
                    const char *ctype, bool chunked)
{
    const cn_res *res = &req->res;

    if (put_status_line(out, res->status) || put_common(out, clen, ctype, keep_alive, true))
        return -1;
    if (chunked && cn__buf_puts(out, "Transfer-Encoding: chunked\r\n"))
        return -1;
    /* HTTP/1.0 clients only keep the connection when told so */
    if (keep_alive && req->http_minor == 0 && cn__buf_puts(out, "Connection: keep-alive\r\n"))
        return -1;
    for (unsigned i = 0; i < res->nheaders; i++) {
        const cn__hdr *h = &res->headers[i];
        if (cn__ieq(h->name, h->nlen, "content-type"))
            continue; /* written above */
        if (cn__buf_append(out, h->name, h->nlen) || cn__buf_append(out, ": ", 2) ||
            cn__buf_append(out, h->value, h->vlen) || cn__buf_append(out, "\r\n", 2))
            return -1;
    }
    return cn__buf_append(out, "\r\n", 2);
}

int cn__res_serialize(cn_req *req, cn__buf *out, bool keep_alive)
{
    cn_res *res = &req->res;
    size_t start = out->len;
    bool head = req->method == CN__M_HEAD;
    /* 1xx, 204 and 304 responses carry no body (RFC 9110 6.4.1), and no
     * Content-Length either: 1xx/204 MUST NOT have one, and a 304's would
     * have to be the 200's length, which is not known here (RFC 9110 8.6) */
    bool no_body = res->status < 200 || res->status == 204 || res->status == 304;

    if (put_head(req, out, keep_alive, no_body ? NULL : &res->body_len,
                 no_body ? NULL : res->content_type, false) ||
        (!head && !no_body && cn__buf_append(out, res->body, res->body_len))) {
        out->len = start;
        return CN_ENOMEM;
    }
    res->head_sent = true;
    return 0;
}

/* ---- streamed responses ---- */

int cn__res_stream_start(cn_res *res, int status, const char *content_type)
{
    if (res->body_set)
        return CN_ERESPONDED;
    /* a stream is a body: the statuses that cannot carry one are refused */
    if (status < 200 || status > 999 || status == 204 || status == 304)
        return CN_EINVAL;
    if (content_type && !valid_value(content_type))
        return CN_EBADHEADER;
    /* as for the body calls, a Content-Type header added before wins */
    if (res->content_type == NULL) {
        const char *ct = content_type ? content_type : "application/octet-stream";
        res->content_type = cn__arena_strndup(res_arena(res), ct, strlen(ct));
        if (res->content_type == NULL)
            return CN_ENOMEM;
    }
    res->status = status;
    res->body_len = 0;
    res->body_set = true;
    res->head_sent = true; /* cn_res_stream_begin writes it right away */
    res->stream = CN__STREAM_OPEN;
    return 0;
}

int cn__res_stream_state(const cn_res *res)
{
    return res->stream;
}

void cn__res_stream_mark_ended(cn_res *res)
{
    res->stream = CN__STREAM_ENDED;
}

bool cn__res_stream_chunked(const cn_req *req)
{
    return req->http_minor >= 1 && !req->res.sized;
}

bool cn__res_stream_framed(const cn_req *req)
{
    return req->res.sized || cn__res_stream_chunked(req);
}

bool cn__res_stream_complete(const cn_req *req)
{
    return !req->res.sized || req->method == CN__M_HEAD || req->res.body_len == req->res.size;
}

int cn__res_stream_head(cn_req *req, cn__buf *out, bool keep_alive)
{
    size_t start = out->len;

    const size_t *clen = req->res.sized ? &req->res.size : NULL;

    if (put_head(req, out, keep_alive, clen, req->res.content_type, cn__res_stream_chunked(req))) {
        out->len = start;
        return CN_ENOMEM;
    }
    req->res.head_sent = true;
    return 0;
}

int cn__res_stream_chunk(cn_req *req, cn__buf *out, const void *p, size_t n)
{
    char size[24] = "";
    size_t k = 0;

    if (req->method == CN__M_HEAD || n == 0)
        return 0;
    /* past a declared length the bytes would be read as the next response */
    if (req->res.sized && n > req->res.size - req->res.body_len)
        return CN_EINVAL;
    /* "<hex size>\r\n<data>\r\n" (RFC 9112 7.1), or the bare bytes */
    if (cn__res_stream_chunked(req))
        k = (size_t)snprintf(size, sizeof size, "%zx\r\n", n);
    if (cn__buf_reserve(out, k + n + 2))
        return CN_ENOMEM;
    cn__buf_append(out, size, k);
    cn__buf_append(out, p, n);
    if (k)
        cn__buf_append(out, "\r\n", 2);
    req->res.body_len += n;
    return 0;
}

int cn__res_stream_last(const cn_req *req, cn__buf *out)
{
    if (req->method == CN__M_HEAD || !cn__res_stream_chunked(req))
        return 0;
    return cn__buf_puts(out, "0\r\n\r\n") ? CN_ENOMEM : 0;
}

cn_req *cn__res_req(cn_res *res)
{
    return CN__CONTAINER_OF(res, cn_req, res);
}

int cn__res_write_simple(cn__buf *out, int status, const char *detail, bool close,
                         const char *extra_headers)
{
    cn__buf body = {0};
    size_t start = out->len;
    int rc = CN_ENOMEM;

    if (detail == NULL)
        detail = cn_status_reason(status);
    if (cn__buf_puts(&body, "{\"detail\":") || json_quote(&body, detail) ||
        cn__buf_puts(&body, "}"))
        goto out;
    if (put_status_line(out, status) ||
        put_common(out, &body.len, "application/json", !close, true) ||
        (extra_headers && cn__buf_puts(out, extra_headers)) || cn__buf_append(out, "\r\n", 2) ||
        cn__buf_append(out, body.data, body.len)) {
        out->len = start;
        goto out;
    }
    rc = 0;
out:
    cn__buf_free(&body);
    return rc;
}
