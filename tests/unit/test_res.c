/*
 * test_res.c -- the response builder and its serialisation, error bodies, and
 * the request side a handler sees (headers, path, query, JSON, defer,
 * arena helpers). Requests are made with cn__req_new(NULL, NULL): no socket.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cmocka.h>

#include "json.h"
#include "req.h"
#include "router.h"

static int setup(void **state)
{
    cn_req *req = cn__req_new(NULL, NULL);

    if (req == NULL)
        return -1;
    *state = req;
    return 0;
}

static int teardown(void **state)
{
    cn__req_free(*state);
    return 0;
}

/* ---- helpers --------------------------------------------------------------- */

static bool is_http_date(const char *s, size_t len)
{
    struct tm tm;
    const char *end;
    char copy[64];
    time_t t, now = time(NULL);

    if (len != 29 || len >= sizeof copy)
        return false;
    memcpy(copy, s, len);
    copy[len] = 0;
    if (copy[3] != ',' || copy[4] != ' ' || copy[7] != ' ' || copy[11] != ' ' || copy[16] != ' ' ||
        copy[19] != ':' || copy[22] != ':' || strcmp(copy + 25, " GMT") != 0)
        return false;
    memset(&tm, 0, sizeof tm);
    end = strptime(copy, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (end == NULL || *end != 0)
        return false;
    t = timegm(&tm);
    return t >= now - 5 && t <= now + 5;
}

typedef struct wire {
    char *s; /* serialised response with the Date value replaced by "<date>" */
    size_t len;
} wire;

/*
 * Check that the response in `out` (freed here) has exactly one Date header
 * holding an IMF-fixdate for about now; give its bytes with that value
 * replaced by "<date>" so the rest can be compared byte for byte.
 */
static wire undate(cn__buf out)
{
    wire w;
    const char *d, *e, *again;
    size_t pre, vlen;

    assert_non_null(out.data);
    assert_int_equal(cn__buf_append(&out, "", 1), 0); /* NUL for strstr */
    d = strstr(out.data, "\r\nDate: ");
    assert_non_null(d);
    d += 8;
    e = strstr(d, "\r\n");
    assert_non_null(e);
    vlen = (size_t)(e - d);
    assert_true(is_http_date(d, vlen));
    again = strstr(e, "\r\nDate: ");
    assert_true(again == NULL || again > strstr(out.data, "\r\n\r\n"));

    pre = (size_t)(d - out.data);
    w.len = out.len - 1 - vlen + 6;
    w.s = malloc(w.len + 1);
    assert_non_null(w.s);
    memcpy(w.s, out.data, pre);
    memcpy(w.s + pre, "<date>", 6);
    memcpy(w.s + pre + 6, e, out.len - 1 - pre - vlen);
    w.s[w.len] = 0;
    cn__buf_free(&out);
    return w;
}

/* req's response serialised, the Date checked and replaced (undate). */
static wire serialize(cn_req *req, bool keep_alive)
{
    cn__buf out = {0};

    assert_int_equal(cn__res_serialize(req, &out, keep_alive), 0);
    return undate(out);
}

static void want_bytes(wire w, const char *want, size_t want_len)
{
    if (w.len != want_len || memcmp(w.s, want, want_len) != 0) {
        print_error("got:\n%.*s\nwant:\n%.*s\n", (int)w.len, w.s, (int)want_len, want);
        free(w.s);
        fail_msg("the serialised response differs (above)");
    }
    free(w.s);
}

#define WANT_WIRE(req, ka, lit) want_bytes(serialize((req), (ka)), (lit), sizeof(lit) - 1)

/*
 * A streamed response: start it, then the head, each piece of `pieces`
 * (NULL-terminated) and the end, as the connection would queue them.
 */
static wire stream_wire(cn_req *req, bool keep_alive, const char *ctype, const char *const *pieces)
{
    cn__buf out = {0};

    assert_int_equal(cn__res_stream_start(&req->res, 200, ctype), 0);
    assert_int_equal(cn__res_stream_head(req, &out, keep_alive), 0);
    for (; *pieces; pieces++)
        assert_int_equal(cn__res_stream_chunk(req, &out, *pieces, strlen(*pieces)), 0);
    assert_int_equal(cn__res_stream_last(req, &out), 0);
    return undate(out);
}

#define WANT_STREAM(req, ka, ctype, pieces, lit)                                                   \
    want_bytes(stream_wire((req), (ka), (ctype), (pieces)), (lit), sizeof(lit) - 1)

/* Parse a body as JSON (the caller deletes it). */
static cJSON *body_json(const cn_res *res)
{
    cJSON *j = cJSON_ParseWithLength(res->body, res->body_len);
    assert_non_null(j);
    return j;
}

static const char *detail_of(cJSON *j)
{
    cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "detail");
    assert_true(cJSON_IsString(d));
    return d->valuestring;
}

static void want_body(const cn_res *res, const char *want)
{
    assert_int_equal(res->body_len, strlen(want));
    assert_memory_equal(res->body, want, res->body_len);
}

/* ---- body setters -------------------------------------------------------- */

static void text_sets_status_body_and_type(void **state)
{
    cn_req *req = *state;
    cn_res *res = &req->res;

    assert_int_equal(cn_res_status(res), 0);
    assert_int_equal(cn_res_text(res, 201, "hello"), 0);
    assert_int_equal(cn_res_status(res), 201);
    want_body(res, "hello");
    assert_string_equal(res->content_type, "text/plain; charset=utf-8");
}

static void text_body_is_copied(void **state)
{
    cn_req *req = *state;
    char msg[] = "volatile";

    assert_int_equal(cn_res_text(&req->res, 200, msg), 0);
    memset(msg, 'x', sizeof msg - 1);
    want_body(&req->res, "volatile");
}

static void bytes_sets_body_and_given_type(void **state)
{
    cn_req *req = *state;
    cn_res *res = &req->res;

    assert_int_equal(cn_res_bytes(res, 200, "a\0b", 3, "image/png"), 0);
    assert_int_equal(res->body_len, 3);
    assert_memory_equal(res->body, "a\0b", 3);
    assert_string_equal(res->content_type, "image/png");
}

static void bytes_default_type_is_octet_stream(void **state)
{
    cn_req *req = *state;

    assert_int_equal(cn_res_bytes(&req->res, 200, "xyz", 3, NULL), 0);
    assert_string_equal(req->res.content_type, "application/octet-stream");
}

static void bytes_argument_errors(void **state)
{
    cn_req *req = *state;
    cn_res *res = &req->res;

    assert_int_equal(cn_res_bytes(res, 200, NULL, 1, NULL), CN_EINVAL);
    assert_int_equal(cn_res_bytes(res, 200, "x", 1, "text/plain\r\nX-Evil: 1"), CN_EBADHEADER);
    assert_int_equal(cn_res_bytes(res, 200, "x", 1, "a\nb"), CN_EBADHEADER);
    assert_false(res->body_set);
    /* an empty body needs no pointer */
    assert_int_equal(cn_res_bytes(res, 200, NULL, 0, NULL), 0);
    assert_int_equal(res->body_len, 0);
}

static void json_serialises_and_sets_type(void **state)
{
    cn_req *req = *state;
    cJSON *j = cJSON_CreateObject();

    cJSON_AddNumberToObject(j, "a", 1);
    cJSON_AddStringToObject(j, "b", "x\"y");
    assert_int_equal(cn_res_json(&req->res, 200, j), 0);
    want_body(&req->res, "{\"a\":1,\"b\":\"x\\\"y\"}");
    assert_string_equal(req->res.content_type, "application/json");
    assert_int_equal(cn_res_status(&req->res), 200);
}

static void json_null_is_einval(void **state)
{
    cn_req *req = *state;

    assert_int_equal(cn_res_json(&req->res, 200, NULL), CN_EINVAL);
    assert_false(req->res.body_set);
}

static void json_takes_ownership_on_error(void **state)
{
    /* run under ASan/valgrind: neither tree may leak */
    cn_req *req = *state;
    cJSON *bad_status = cJSON_CreateArray();

    cJSON_AddItemToArray(bad_status, cJSON_CreateString("leak me if you can"));
    assert_int_equal(cn_res_json(&req->res, 42, bad_status), CN_EINVAL);
    assert_int_equal(cn_res_text(&req->res, 200, "first"), 0);
    assert_int_equal(cn_res_json(&req->res, 200, cJSON_CreateString("second")), CN_ERESPONDED);
    want_body(&req->res, "first");
}

static void json_str_copies_the_text(void **state)
{
    cn_req *req = *state;
    char s[] = "[1,2,3]";

    assert_int_equal(cn_res_json_str(&req->res, 202, s), 0);
    s[1] = '9';
    want_body(&req->res, "[1,2,3]");
    assert_string_equal(req->res.content_type, "application/json");
    assert_int_equal(cn_res_json_str(&req->res, 200, NULL), CN_EINVAL);
}

static void error_gives_a_detail_body(void **state)
{
    cn_req *req = *state;

    assert_int_equal(cn_res_error(&req->res, 404, "Item not found"), 0);
    assert_int_equal(cn_res_status(&req->res), 404);
    want_body(&req->res, "{\"detail\":\"Item not found\"}");
    assert_string_equal(req->res.content_type, "application/json");
}

static void error_null_detail_is_the_reason_phrase(void **state)
{
    cn_req *req = *state;

    assert_int_equal(cn_res_error(&req->res, 403, NULL), 0);
    want_body(&req->res, "{\"detail\":\"Forbidden\"}");
}

static void error_escapes_json(void **state)
{
    static const char detail[] = "say \"hi\" \\ back\n\ttab \x01\x1f end \xc3\xa9 /";
    cn_req *req = *state;
    cJSON *j;

    assert_int_equal(cn_res_error(&req->res, 400, detail), 0);
    /* no raw control byte reaches the wire */
    for (size_t i = 0; i < req->res.body_len; i++)
        assert_true((unsigned char)req->res.body[i] >= 0x20);
    assert_non_null(memmem(req->res.body, req->res.body_len, "\\\"hi\\\"", 6));
    assert_non_null(memmem(req->res.body, req->res.body_len, "\\\\", 2));
    assert_non_null(memmem(req->res.body, req->res.body_len, "\\u0001", 6));
    j = body_json(&req->res);
    assert_string_equal(detail_of(j), detail);
    assert_int_equal(cJSON_GetArraySize(j), 1);
    cJSON_Delete(j);
}

static void jsonf_formats_into_the_arena(void **state)
{
    cn_req *req = *state;
    cn_res *res = &req->res;

    assert_int_equal(cn_res_jsonf(res, 201, "{\"id\":%d,\"ok\":%s}", 42, "true"), 0);
    assert_int_equal(cn_res_status(res), 201);
    want_body(res, "{\"id\":42,\"ok\":true}");
    assert_string_equal(res->content_type, "application/json");
    assert_int_equal(cn_res_jsonf(res, 200, "{}"), CN_ERESPONDED);
    assert_int_equal(cn_res_jsonf(res, 200, NULL), CN_EINVAL);
}

static void second_body_call_is_eresponded(void **state)
{
    cn_req *req = *state;
    cn_res *res = &req->res;

    assert_int_equal(cn_res_text(res, 200, "one"), 0);
    assert_int_equal(cn_res_text(res, 500, "two"), CN_ERESPONDED);
    assert_int_equal(cn_res_bytes(res, 500, "x", 1, NULL), CN_ERESPONDED);
    assert_int_equal(cn_res_json_str(res, 500, "{}"), CN_ERESPONDED);
    assert_int_equal(cn_res_error(res, 500, "no"), CN_ERESPONDED);
    assert_int_equal(cn_res_json(res, 500, cJSON_CreateObject()), CN_ERESPONDED);
    /* headers may still be added on the way out (a middleware's), until the
     * head is written */
    assert_int_equal(cn_res_header(res, "X-Late", "1"), 0);
    assert_int_equal(cn_res_status(res), 200);
    want_body(res, "one");
    assert_string_equal(res->content_type, "text/plain; charset=utf-8");
}

/* Once serialised, nothing about the response can change. */
static void after_serialize_is_eresponded(void **state)
{
    cn_req *req = *state;
    cn_res *res = &req->res;
    cn__buf out = {0};

    assert_int_equal(cn_res_text(res, 200, "one"), 0);
    assert_int_equal(cn__res_serialize(req, &out, true), 0);
    assert_int_equal(cn_res_header(res, "X-Late", "1"), CN_ERESPONDED);
    assert_int_equal(cn_res_set_status(res, 201), CN_ERESPONDED);
    assert_int_equal(cn_res_remove_header(res, "content-type"), CN_ERESPONDED);
    assert_int_equal(cn_res_reset(res), CN_ERESPONDED);
    assert_int_equal(cn_res_raise(res, 404, NULL), CN_ERESPONDED);
    assert_null(cn_res_get_header(res, "content-type"));
    assert_int_equal(cn_res_body(res).len, 0);
    cn__buf_free(&out);
}

static void invalid_status_is_einval(void **state)
{
    cn_req *req = *state;

    assert_int_equal(cn_res_text(&req->res, 99, "x"), CN_EINVAL);
    assert_int_equal(cn_res_text(&req->res, 1000, "x"), CN_EINVAL);
    assert_int_equal(cn_res_error(&req->res, -1, "x"), CN_EINVAL);
    assert_false(req->res.body_set);
    assert_int_equal(cn_res_text(&req->res, 200, "ok"), 0);
}

static void null_text_is_einval(void **state)
{
    cn_req *req = *state;

    assert_int_equal(cn_res_text(&req->res, 200, NULL), CN_EINVAL);
    assert_false(req->res.body_set);
}

/* ---- headers ----------------------------------------------------------------- */

static void header_refuses_cr_and_lf(void **state)
{
    cn_req *req = *state;
    cn_res *res = &req->res;

    assert_int_equal(cn_res_header(res, "X-A", "a\r\nSet-Cookie: x=1"), CN_EBADHEADER);
    assert_int_equal(cn_res_header(res, "X-A", "a\rb"), CN_EBADHEADER);
    assert_int_equal(cn_res_header(res, "X-A", "a\nb"), CN_EBADHEADER);
    assert_int_equal(cn_res_header(res, "X-A\r\n", "v"), CN_EBADHEADER);
    assert_int_equal(cn_res_header(res, "X\nA", "v"), CN_EBADHEADER);
    assert_int_equal(cn_res_header(res, "X-A", "bell\a"), CN_EBADHEADER);
    assert_int_equal(cn_res_header(res, "X-A", "del\x7f"), CN_EBADHEADER);
    assert_int_equal(res->nheaders, 0);
}

static void header_refuses_reserved_names(void **state)
{
    static const char *const names[] = {
        "Content-Length",
        "content-length",
        "CONTENT-LENGTH",
        "Date",
        "date",
        "Server",
        "SERVER",
        "Connection",
        "connection",
        "Transfer-Encoding",
        "transfer-encoding",
    };
    cn_req *req = *state;

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        assert_int_equal(cn_res_header(&req->res, names[i], "x"), CN_EBADHEADER);
    assert_int_equal(req->res.nheaders, 0);
}

static void header_refuses_bad_tokens(void **state)
{
    static const char *const names[] = {
        "",    "X A", "X:A",  "X-A:", "(x)",  "a\"b", "a/b",         "a@b",       "a,b",     "a;b",
        "a=b", "a?b", "a[b]", "a{b}", "a\\b", "a<b>", "caf\xc3\xa9", "tab\there", "del\x7f",
    };
    cn_req *req = *state;

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int rc = cn_res_header(&req->res, names[i], "v");
        if (rc != CN_EBADHEADER)
            fail_msg("name \"%s\": got %d, want CN_EBADHEADER", names[i], rc);
    }
    assert_int_equal(req->res.nheaders, 0);
}

static void header_accepts_tokens_and_plain_values(void **state)
{
    cn_req *req = *state;

    assert_int_equal(cn_res_header(&req->res, "X-Request-Id", "abc 123"), 0);
    assert_int_equal(cn_res_header(&req->res, "x!#$%&'*+-.^_`|~9", "tab\tok"), 0);
    assert_int_equal(cn_res_header(&req->res, "X-Empty", ""), 0);
    assert_int_equal(cn_res_header(&req->res, "X-Utf8", "caf\xc3\xa9"), 0);
    assert_int_equal(req->res.nheaders, 4);
}

static void header_null_arguments_are_einval(void **state)
{
    cn_req *req = *state;

    assert_int_equal(cn_res_header(&req->res, NULL, "v"), CN_EINVAL);
    assert_int_equal(cn_res_header(&req->res, "X-A", NULL), CN_EINVAL);
}

static void header_name_and_value_are_copied(void **state)
{
    cn_req *req = *state;
    char name[] = "X-Copy", value[] = "kept";

    assert_int_equal(cn_res_header(&req->res, name, value), 0);
    memset(name, 'z', sizeof name - 1);
    memset(value, 'z', sizeof value - 1);
    assert_int_equal(cn_res_text(&req->res, 200, ""), 0);
    WANT_WIRE(req, true,
              "HTTP/1.1 200 OK\r\n"
              "Server: canteen\r\n"
              "Date: <date>\r\n"
              "Content-Length: 0\r\n"
              "Content-Type: text/plain; charset=utf-8\r\n"
              "X-Copy: kept\r\n"
              "\r\n");
}

static void user_content_type_overrides_the_default(void **state)
{
    cn_req *req = *state;
    wire w;
    size_t count = 0;

    assert_int_equal(cn_res_header(&req->res, "content-type", "text/html; charset=utf-8"), 0);
    assert_int_equal(cn_res_text(&req->res, 200, "<p>hi</p>"), 0);
    assert_string_equal(req->res.content_type, "text/html; charset=utf-8");
    w = serialize(req, true);
    for (const char *p = w.s; (p = strcasestr(p, "\r\ncontent-type:")) != NULL; p++)
        count++;
    assert_int_equal(count, 1);
    assert_non_null(strstr(w.s, "\r\nContent-Type: text/html; charset=utf-8\r\n"));
    free(w.s);
}

static void user_content_type_overrides_json_default(void **state)
{
    cn_req *req = *state;

    assert_int_equal(cn_res_header(&req->res, "Content-Type", "application/problem+json"), 0);
    assert_int_equal(cn_res_error(&req->res, 400, "bad"), 0);
    assert_string_equal(req->res.content_type, "application/problem+json");
}

/* ---- serialisation ------------------------------------------------------------ */

static void serialize_keep_alive_http11(void **state)
{
    cn_req *req = *state;

    assert_int_equal(cn_res_text(&req->res, 200, "hello"), 0);
    WANT_WIRE(req, true,
              "HTTP/1.1 200 OK\r\n"
              "Server: canteen\r\n"
              "Date: <date>\r\n"
              "Content-Length: 5\r\n"
              "Content-Type: text/plain; charset=utf-8\r\n"
              "\r\n"
              "hello");
}

static void serialize_close_says_connection_close(void **state)
{
    cn_req *req = *state;

    assert_int_equal(cn_res_error(&req->res, 404, NULL), 0);
    WANT_WIRE(req, false,
              "HTTP/1.1 404 Not Found\r\n"
              "Server: canteen\r\n"
              "Date: <date>\r\n"
              "Content-Length: 22\r\n"
              "Content-Type: application/json\r\n"
              "Connection: close\r\n"
              "\r\n"
              "{\"detail\":\"Not Found\"}");
}

static void serialize_http10_keep_alive(void **state)
{
    cn_req *req = *state;

    req->http_minor = 0;
    assert_int_equal(cn_res_text(&req->res, 200, "ok"), 0);
    WANT_WIRE(req, true,
              "HTTP/1.1 200 OK\r\n"
              "Server: canteen\r\n"
              "Date: <date>\r\n"
              "Content-Length: 2\r\n"
              "Content-Type: text/plain; charset=utf-8\r\n"
              "Connection: keep-alive\r\n"
              "\r\n"
              "ok");
}

static void serialize_http10_close(void **state)
{
    cn_req *req = *state;

    req->http_minor = 0;
    assert_int_equal(cn_res_text(&req->res, 200, "ok"), 0);
    WANT_WIRE(req, false,
              "HTTP/1.1 200 OK\r\n"
              "Server: canteen\r\n"
              "Date: <date>\r\n"
              "Content-Length: 2\r\n"
              "Content-Type: text/plain; charset=utf-8\r\n"
              "Connection: close\r\n"
              "\r\n"
              "ok");
}

static void serialize_user_headers_in_order(void **state)
{
    cn_req *req = *state;

    assert_int_equal(cn_res_header(&req->res, "X-First", "1"), 0);
    assert_int_equal(cn_res_header(&req->res, "Set-Cookie", "a=b; Path=/"), 0);
    assert_int_equal(cn_res_header(&req->res, "Set-Cookie", "c=d"), 0);
    assert_int_equal(cn_res_json_str(&req->res, 201, "{}"), 0);
    WANT_WIRE(req, false,
              "HTTP/1.1 201 Created\r\n"
              "Server: canteen\r\n"
              "Date: <date>\r\n"
              "Content-Length: 2\r\n"
              "Content-Type: application/json\r\n"
              "Connection: close\r\n"
              "X-First: 1\r\n"
              "Set-Cookie: a=b; Path=/\r\n"
              "Set-Cookie: c=d\r\n"
              "\r\n"
              "{}");
}

static void serialize_many_headers(void **state)
{
    cn_req *req = *state;
    char name[32], line[64];
    wire w;
    const char *p;

    for (int i = 0; i < 40; i++) { /* beyond the first header array */
        snprintf(name, sizeof name, "X-H%d", i);
        assert_int_equal(cn_res_header(&req->res, name, name + 2), 0);
    }
    assert_int_equal(cn_res_text(&req->res, 200, "x"), 0);
    w = serialize(req, true);
    p = w.s;
    for (int i = 0; i < 40; i++) {
        snprintf(line, sizeof line, "\r\nX-H%d: H%d\r\n", i, i);
        p = strstr(p, line);
        assert_non_null(p);
    }
    free(w.s);
}

static void serialize_binary_body(void **state)
{
    cn_req *req = *state;

    assert_int_equal(cn_res_bytes(&req->res, 200, "\0\1\2", 3, NULL), 0);
    WANT_WIRE(req, true,
              "HTTP/1.1 200 OK\r\n"
              "Server: canteen\r\n"
              "Date: <date>\r\n"
              "Content-Length: 3\r\n"
              "Content-Type: application/octet-stream\r\n"
              "\r\n"
              "\0\1\2");
}

static void serialize_appends_to_the_buffer(void **state)
{
    /* pipelined responses share one output buffer */
    cn_req *req = *state;
    cn__buf out = {0};

    assert_int_equal(cn__buf_puts(&out, "previous"), 0);
    assert_int_equal(cn_res_text(&req->res, 200, "x"), 0);
    assert_int_equal(cn__res_serialize(req, &out, true), 0);
    assert_memory_equal(out.data, "previousHTTP/1.1 200 OK\r\n", 25);
    assert_int_equal(out.data[out.len - 1], 'x');
    cn__buf_free(&out);
}

static void serialize_head_omits_the_body(void **state)
{
    cn_req *req = *state;

    req->method = CN__M_HEAD;
    assert_int_equal(cn_res_text(&req->res, 200, "hello"), 0);
    WANT_WIRE(req, true,
              "HTTP/1.1 200 OK\r\n"
              "Server: canteen\r\n"
              "Date: <date>\r\n"
              "Content-Length: 5\r\n"
              "Content-Type: text/plain; charset=utf-8\r\n"
              "\r\n");
}

/* ---- streamed responses --------------------------------------------------- */

static void stream_http11_is_chunked(void **state)
{
    static const char *const pieces[] = {"hello", "", "world!", NULL};
    cn_req *req = *state;

    WANT_STREAM(req, true, "text/plain", pieces,
                "HTTP/1.1 200 OK\r\n"
                "Server: canteen\r\n"
                "Date: <date>\r\n"
                "Content-Type: text/plain\r\n"
                "Transfer-Encoding: chunked\r\n"
                "\r\n"
                "5\r\nhello\r\n"
                "6\r\nworld!\r\n"
                "0\r\n\r\n");
    assert_int_equal(req->res.body_len, 11);
}

static void stream_chunk_size_is_hex(void **state)
{
    cn_req *req = *state;
    static char big[0x1abc];
    cn__buf out = {0};

    memset(big, 'z', sizeof big);
    assert_int_equal(cn__res_stream_chunk(req, &out, big, sizeof big), 0);
    assert_int_equal(out.len, 6 + sizeof big + 2);
    assert_memory_equal(out.data, "1abc\r\nzz", 8);
    assert_memory_equal(out.data + out.len - 3, "z\r\n", 3);
    cn__buf_free(&out);
}

static void stream_http10_is_close_delimited(void **state)
{
    static const char *const pieces[] = {"hello", "world!", NULL};
    cn_req *req = *state;

    req->http_minor = 0;
    assert_false(cn__res_stream_chunked(req));
    WANT_STREAM(req, false, NULL, pieces,
                "HTTP/1.1 200 OK\r\n"
                "Server: canteen\r\n"
                "Date: <date>\r\n"
                "Content-Type: application/octet-stream\r\n"
                "Connection: close\r\n"
                "\r\n"
                "helloworld!");
}

static void stream_head_request_gets_no_body(void **state)
{
    static const char *const pieces[] = {"hello", NULL};
    cn_req *req = *state;

    req->method = CN__M_HEAD;
    assert_int_equal(cn_res_header(&req->res, "Content-Type", "text/csv"), 0);
    assert_int_equal(cn_res_header(&req->res, "X-Id", "7"), 0);
    WANT_STREAM(req, true, "text/plain", pieces,
                "HTTP/1.1 200 OK\r\n"
                "Server: canteen\r\n"
                "Date: <date>\r\n"
                "Content-Type: text/csv\r\n"
                "Transfer-Encoding: chunked\r\n"
                "X-Id: 7\r\n"
                "\r\n");
    assert_int_equal(req->res.body_len, 0);
}

static void stream_start_rules(void **state)
{
    cn_req *req = *state;
    cn_res *res = &req->res;

    assert_int_equal(cn__res_stream_state(res), CN__STREAM_NONE);
    assert_int_equal(cn__res_stream_start(res, 204, NULL), CN_EINVAL);
    assert_int_equal(cn__res_stream_start(res, 304, NULL), CN_EINVAL);
    assert_int_equal(cn__res_stream_start(res, 101, NULL), CN_EINVAL);
    assert_int_equal(cn__res_stream_start(res, 1000, NULL), CN_EINVAL);
    assert_int_equal(cn__res_stream_start(res, 200, "a\r\nb"), CN_EBADHEADER);
    assert_int_equal(cn__res_stream_state(res), CN__STREAM_NONE);
    assert_false(res->body_set);
    assert_int_equal(cn__res_stream_start(res, 206, NULL), 0);
    assert_int_equal(cn__res_stream_state(res), CN__STREAM_OPEN);
    assert_int_equal(cn_res_status(res), 206);
    /* the head is out: no other response, no more headers */
    assert_int_equal(cn__res_stream_start(res, 200, NULL), CN_ERESPONDED);
    assert_int_equal(cn_res_text(res, 200, "x"), CN_ERESPONDED);
    assert_int_equal(cn_res_header(res, "X-Late", "1"), CN_ERESPONDED);
    cn__res_stream_mark_ended(res);
    assert_int_equal(cn__res_stream_state(res), CN__STREAM_ENDED);
}

static void stream_after_a_body_is_eresponded(void **state)
{
    cn_req *req = *state;

    assert_int_equal(cn_res_text(&req->res, 200, "x"), 0);
    assert_int_equal(cn__res_stream_start(&req->res, 200, NULL), CN_ERESPONDED);
    assert_int_equal(cn__res_stream_state(&req->res), CN__STREAM_NONE);
}

static void stream_content_type_is_copied(void **state)
{
    cn_req *req = *state;
    char ctype[] = "text/plain";

    assert_int_equal(cn__res_stream_start(&req->res, 200, ctype), 0);
    memset(ctype, 'x', sizeof ctype - 1);
    assert_string_equal(req->res.content_type, "text/plain");
}

static void serialize_204_has_no_body(void **state)
{
    cn_req *req = *state;
    wire w;

    assert_int_equal(cn_res_text(&req->res, 204, "ignored"), 0);
    w = serialize(req, true);
    assert_true(w.len >= 4);
    assert_memory_equal(w.s + w.len - 4, "\r\n\r\n", 4); /* nothing after the head */
    assert_null(strstr(w.s, "ignored"));
    assert_memory_equal(w.s, "HTTP/1.1 204 No Content\r\n", 25);
    free(w.s);
}

/*
 * RFC 9110 8.6: "A server MUST NOT send a Content-Length header field in any
 * response with a status code of 1xx (Informational) or 204 (No Content)";
 * Starlette leaves it out too. (For 304 a Content-Length must be the 200
 * response's length, which Canteen cannot know, so 0 is wrong there as well.)
 */
static void serialize_204_has_no_content_length(void **state)
{
    cn_req *req = *state;

    assert_int_equal(cn_res_bytes(&req->res, 204, NULL, 0, NULL), 0);
    WANT_WIRE(req, true,
              "HTTP/1.1 204 No Content\r\n"
              "Server: canteen\r\n"
              "Date: <date>\r\n"
              "\r\n");
}

static void serialize_304_has_no_body(void **state)
{
    cn_req *req = *state;
    wire w;

    assert_int_equal(cn_res_header(&req->res, "ETag", "\"v1\""), 0);
    assert_int_equal(cn_res_bytes(&req->res, 304, NULL, 0, NULL), 0);
    w = serialize(req, true);
    assert_memory_equal(w.s + w.len - 4, "\r\n\r\n", 4);
    assert_non_null(strstr(w.s, "\r\nETag: \"v1\"\r\n"));
    free(w.s);
}

/* ---- canned error bodies ---------------------------------------------------- */

static void from_error_badjson_is_400(void **state)
{
    cn_req *req = *state;
    cJSON *j;

    assert_int_equal(cn__res_from_error(&req->res, CN_EBADJSON, 0, 1), 0);
    assert_int_equal(cn_res_status(&req->res), 400);
    assert_string_equal(req->res.content_type, "application/json");
    j = body_json(&req->res);
    assert_true(detail_of(j)[0] != 0);
    cJSON_Delete(j);
}

static void from_error_jsondepth_is_400(void **state)
{
    cn_req *req = *state;
    cJSON *j;

    assert_int_equal(cn__res_from_error(&req->res, CN_EJSONDEPTH, 0, 1), 0);
    assert_int_equal(cn_res_status(&req->res), 400);
    j = body_json(&req->res);
    assert_true(detail_of(j)[0] != 0);
    cJSON_Delete(j);
}

static void from_error_others_are_500(void **state)
{
    static const int codes[] = {CN_ENOMEM, CN_EINVAL,     CN_ENOENT, CN_ERANGE,
                                CN_ESTATE, CN_EBADHEADER, -4095,     -123456};

    (void)state;
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        cn_req *req = cn__req_new(NULL, NULL);
        assert_non_null(req);
        assert_int_equal(cn__res_from_error(&req->res, codes[i], 0, 1), 0);
        assert_int_equal(cn_res_status(&req->res), 500);
        assert_string_equal(req->res.content_type, "application/json");
        want_body(&req->res, "{\"detail\":\"Internal Server Error\"}");
        cn__req_free(req);
    }
}

/* cn__res_from_error's 503 on the wire, around its Retry-After if any */
#define WIRE_503_HEAD                                                                              \
    "HTTP/1.1 503 Service Unavailable\r\n"                                                         \
    "Server: canteen\r\n"                                                                          \
    "Date: <date>\r\n"                                                                             \
    "Content-Length: 32\r\n"                                                                       \
    "Content-Type: application/json\r\n"                                                           \
    "Connection: close\r\n"
#define WIRE_503_END "\r\n{\"detail\":\"Service Unavailable\"}"

/* The refusals under load are 503s that say when to come back: the app's
 * retry_after_s, written once (a Retry-After kept from before replaced). */
static void from_error_busy_is_503_with_retry_after(void **state)
{
    static const int codes[] = {CN_EAGAIN, CN_EEXPIRED};

    (void)state;
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        cn_req *req = cn__req_new(NULL, NULL);
        assert_non_null(req);
        assert_int_equal(cn_res_header(&req->res, "Retry-After", "99"), 0);
        assert_int_equal(cn__res_from_error(&req->res, codes[i], 1, 7), 0);
        assert_int_equal(cn_res_status(&req->res), 503);
        WANT_WIRE(req, false, WIRE_503_HEAD "Retry-After: 7\r\n" WIRE_503_END);
        cn__req_free(req);
    }
}

/* A dependency's CN_EUNAVAILABLE is a 503 with no Retry-After of Canteen's. */
static void from_error_unavailable_has_no_retry_after(void **state)
{
    cn_req *req = cn__req_new(NULL, NULL);

    (void)state;
    assert_non_null(req);
    assert_int_equal(cn__res_from_error(&req->res, CN_EUNAVAILABLE, 1, 7), 0);
    assert_int_equal(cn_res_status(&req->res), 503);
    WANT_WIRE(req, false, WIRE_503_HEAD WIRE_503_END);
    cn__req_free(req);
}

static void from_error_replaces_a_half_set_response(void **state)
{
    cn_req *req = *state;

    assert_int_equal(cn_res_header(&req->res, "X-Partial", "1"), 0);
    assert_int_equal(cn_res_header(&req->res, "Content-Type", "text/html"), 0);
    assert_int_equal(cn_res_text(&req->res, 200, "half"), 0);
    assert_int_equal(cn__res_from_error(&req->res, CN_ENOMEM, 0, 1), 0);
    WANT_WIRE(req, false,
              "HTTP/1.1 500 Internal Server Error\r\n"
              "Server: canteen\r\n"
              "Date: <date>\r\n"
              "Content-Length: 34\r\n"
              "Content-Type: application/json\r\n"
              "Connection: close\r\n"
              "\r\n"
              "{\"detail\":\"Internal Server Error\"}");
}

static void write_simple_is_a_complete_response(void **state)
{
    cn__buf out = {0};

    (void)state;
    assert_int_equal(cn__res_write_simple(&out, 503, "busy \"now\"", true, "Retry-After: 1\r\n"),
                     0);
    assert_int_equal(cn__buf_append(&out, "", 1), 0);
    assert_non_null(strstr(out.data, "HTTP/1.1 503 Service Unavailable\r\nServer: canteen\r\n"));
    assert_non_null(strstr(out.data, "\r\nContent-Length: 25\r\n"
                                     "Content-Type: application/json\r\n"
                                     "Connection: close\r\n"
                                     "Retry-After: 1\r\n"
                                     "\r\n"
                                     "{\"detail\":\"busy \\\"now\\\"\"}"));
    cn__buf_free(&out);
}

static void http_date_is_imf_fixdate(void **state)
{
    const char *d = cn__http_date();

    (void)state;
    assert_non_null(d);
    assert_int_equal(strlen(d), 29);
    assert_string_equal(d + 26, "GMT");
    assert_true(is_http_date(d, strlen(d)));
}

/* ---- the request side ----------------------------------------------------------- */

static void request_defaults(void **state)
{
    cn_req *req = *state;
    cn_str body = cn_req_body(req);

    assert_string_equal(cn_req_method(req), "");
    assert_string_equal(cn_req_path(req), "");
    assert_string_equal(cn_req_target(req), "");
    assert_null(cn_req_route(req));
    assert_null(cn_req_route_data(req));
    assert_int_equal(cn_req_http_minor(req), 1);
    assert_null(cn_req_app(req));
    assert_int_equal(cn_req_header_count(req), 0);
    assert_null(cn_req_header(req, "Host"));
    assert_null(cn_req_query(req, "a"));
    assert_non_null(body.ptr);
    assert_int_equal(body.len, 0);
}

static void add_header(cn_req *req, const char *name, const char *value)
{
    assert_int_equal(cn__req_add_header(req, name, strlen(name), value, strlen(value)), 0);
}

static void req_header_is_case_insensitive(void **state)
{
    cn_req *req = *state;

    add_header(req, "Content-Type", "application/json");
    add_header(req, "X-Multi", "1");
    add_header(req, "x-multi", "2");
    assert_string_equal(cn_req_header(req, "content-type"), "application/json");
    assert_string_equal(cn_req_header(req, "CONTENT-TYPE"), "application/json");
    assert_string_equal(cn_req_header(req, "Content-Type"), "application/json");
    assert_string_equal(cn_req_header(req, "X-MULTI"), "1"); /* the first one */
    assert_null(cn_req_header(req, "Content"));
    assert_null(cn_req_header(req, "Content-Type-X"));
    assert_null(cn_req_header(req, "Host"));
}

static void req_header_at_lists_all(void **state)
{
    cn_req *req = *state;
    cn_str n, v;

    add_header(req, "A", "1");
    add_header(req, "a", "2");
    assert_int_equal(cn_req_header_count(req), 2);
    assert_int_equal(cn_req_header_at(req, 1, &n, &v), 0);
    assert_int_equal(n.len, 1);
    assert_memory_equal(n.ptr, "a", 1);
    assert_int_equal(v.len, 1);
    assert_memory_equal(v.ptr, "2", 1);
    assert_int_equal(cn_req_header_at(req, 0, NULL, &v), 0);
    assert_memory_equal(v.ptr, "1", 1);
    assert_int_equal(cn_req_header_at(req, 2, &n, &v), CN_ENOENT);
}

static void req_many_headers(void **state)
{
    cn_req *req = *state;
    char name[32], *s;

    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof name, "X-Hdr-%d", i);
        s = cn_req_strdup(req, name);
        assert_non_null(s);
        add_header(req, s, s + 2);
    }
    assert_int_equal(cn_req_header_count(req), 100);
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof name, "x-hdr-%d", i);
        assert_non_null(cn_req_header(req, name));
        assert_string_equal(cn_req_header(req, name) + 4, name + 6);
    }
}

static void set_target(cn_req *req, const char *t)
{
    assert_int_equal(cn__req_set_target(req, t, strlen(t)), 0);
}

static void finish_head_splits_and_decodes(void **state)
{
    cn_req *req = *state;

    set_target(req, "/a%20b");
    assert_non_null(cn_req_alloc(req, 8)); /* the target is no longer the newest block */
    set_target(req, "/c+d?x=1&y=%41");     /* targets may arrive in pieces */
    assert_int_equal(cn__req_finish_head(req), 0);
    assert_string_equal(cn_req_target(req), "/a%20b/c+d?x=1&y=%41");
    assert_string_equal(cn_req_path(req), "/a b/c+d");
    assert_int_equal(req->query_len, 9);
    assert_memory_equal(req->query, "x=1&y=%41", 9);
    assert_string_equal(cn_req_query(req, "y"), "A");
}

static void finish_head_without_query(void **state)
{
    cn_req *req = *state;

    set_target(req, "/plain");
    assert_int_equal(cn__req_finish_head(req), 0);
    assert_string_equal(cn_req_path(req), "/plain");
    assert_null(req->query);
    assert_null(cn_req_query(req, "plain"));
}

static void finish_head_empty_query(void **state)
{
    cn_req *req = *state;

    set_target(req, "/p?");
    assert_int_equal(cn__req_finish_head(req), 0);
    assert_string_equal(cn_req_path(req), "/p");
    assert_non_null(req->query);
    assert_int_equal(req->query_len, 0);
    assert_null(cn_req_query(req, "p"));
}

static void finish_head_splits_at_the_first_question_mark(void **state)
{
    cn_req *req = *state;

    set_target(req, "/p?a=1?b=2");
    assert_int_equal(cn__req_finish_head(req), 0);
    assert_string_equal(cn_req_path(req), "/p");
    assert_string_equal(cn_req_query(req, "a"), "1?b=2");
}

static void finish_head_bad_path_escape_is_400(void **state)
{
    static const char *const targets[] = {"/a%zz", "/a%2?x=1", "/a%00b", "/%"};

    (void)state;
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        cn_req *req = cn__req_new(NULL, NULL);
        assert_non_null(req);
        set_target(req, targets[i]);
        assert_int_equal(cn__req_finish_head(req), 400);
        cn__req_free(req);
    }
}

static void finish_head_leaves_query_escapes_for_later(void **state)
{
    cn_req *req = *state;

    set_target(req, "/ok?x=%zz&y=1");
    assert_int_equal(cn__req_finish_head(req), 0);
    assert_null(cn_req_query(req, "x"));
    assert_string_equal(cn_req_query(req, "y"), "1");
}

static void long_target_beyond_the_inline_arena(void **state)
{
    cn_req *req = *state;
    char piece[101];

    memset(piece, 'a', 100);
    piece[0] = '/';
    piece[100] = 0;
    for (int i = 0; i < 50; i++)
        set_target(req, piece);
    assert_int_equal(req->target_len, 5000);
    assert_int_equal(cn__req_finish_head(req), 0);
    assert_int_equal(strlen(cn_req_path(req)), 5000);
    assert_memory_equal(cn_req_path(req), piece, 100);
}

static void query_decoding(void **state)
{
    cn_req *req = *state;
    int64_t v = 0;

    set_target(req, "/s?name=J%C3%B6rg+M%C3%BCller&flag&empty=&n=42&neg=-7&big="
                    "9223372036854775808&bad=%zz&a%20b=sp&name=second");
    assert_int_equal(cn__req_finish_head(req), 0);
    assert_string_equal(cn_req_query(req, "name"), "J\xc3\xb6rg M\xc3\xbcller");
    assert_string_equal(cn_req_query(req, "flag"), "");
    assert_string_equal(cn_req_query(req, "empty"), "");
    assert_string_equal(cn_req_query(req, "a b"), "sp");
    assert_null(cn_req_query(req, "missing"));
    assert_null(cn_req_query(req, "bad"));
    assert_null(cn_req_query(req, NULL));
    assert_int_equal(cn_req_query_int(req, "n", &v), 0);
    assert_true(v == 42);
    assert_int_equal(cn_req_query_int(req, "neg", &v), 0);
    assert_true(v == -7);
    assert_int_equal(cn_req_query_int(req, "name", &v), CN_EINVAL);
    assert_int_equal(cn_req_query_int(req, "flag", &v), CN_EINVAL);
    assert_int_equal(cn_req_query_int(req, "big", &v), CN_ERANGE);
    assert_int_equal(cn_req_query_int(req, "missing", &v), CN_ENOENT);
}

static int dummy_handler(cn_req *req, cn_res *res)
{
    (void)req;
    (void)res;
    return 0;
}

static void params_from_a_router_match(void **state)
{
    static const char target[] = "/users/-12/J%C3%B6rg";
    cn_req *req = *state;
    cn__router *r = cn__router_new();
    int tag;
    int64_t v = 0;

    assert_non_null(r);
    assert_int_equal(
        cn__router_add(r, "GET /users/{id:int}/{name}", dummy_handler, &tag, NULL, NULL), 0);
    set_target(req, target);
    assert_int_equal(cn__req_finish_head(req), 0);
    assert_int_equal(
        cn__router_match(r, CN__M_GET, req->target, strlen(target), &req->arena, &req->match), 0);
    assert_string_equal(cn_req_route(req), "/users/{id:int}/{name}");
    assert_ptr_equal(cn_req_route_data(req), &tag);
    assert_string_equal(cn_req_param(req, "id"), "-12");
    assert_string_equal(cn_req_param(req, "name"), "J\xc3\xb6rg");
    assert_null(cn_req_param(req, "missing"));
    assert_int_equal(cn_req_param_int(req, "id", &v), 0);
    assert_true(v == -12);
    assert_int_equal(cn_req_param_int(req, "name", &v), CN_EINVAL);
    assert_int_equal(cn_req_param_int(req, "missing", &v), CN_ENOENT);
    cn__router_free(r);
}

/* ---- JSON bodies ------------------------------------------------------------------ */

static void set_body(cn_req *req, const char *s, size_t n)
{
    assert_int_equal(cn__req_append_body(req, s, n), 0);
}

static char *nested(const char *open, const char *inner, const char *close, int depth)
{
    size_t ol = strlen(open), il = strlen(inner), cl = strlen(close);
    char *s = malloc((ol + cl) * (size_t)depth + il + 1), *p = s;

    assert_non_null(s);
    for (int i = 0; i < depth; i++, p += ol)
        memcpy(p, open, ol);
    memcpy(p, inner, il);
    p += il;
    for (int i = 0; i < depth; i++, p += cl)
        memcpy(p, close, cl);
    *p = 0;
    return s;
}

static void json_parse_helper_gives_the_caller_the_tree(void **state)
{
    cJSON *j = NULL;

    (void)state;
    assert_int_equal(cn__json_parse("{\"k\":true} ", 11, &j), 0);
    assert_non_null(j);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "k")));
    cJSON_Delete(j); /* the caller owns it */
    assert_int_equal(cn__json_parse(NULL, 0, &j), CN_EBADJSON);
    assert_null(j);
    assert_int_equal(cn__json_parse("[1] [", 5, &j), CN_EBADJSON);
    assert_null(j);
}

static void json_valid_body(void **state)
{
    cn_req *req = *state;
    const char *body = "{\"a\":[1,2],\"s\":\"x\"}";
    cJSON *j = NULL, *again = NULL;

    set_body(req, body, strlen(body));
    assert_int_equal(cn_req_json(req, &j), 0);
    assert_non_null(j);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "a")), 2);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "s")->valuestring, "x");
    assert_int_equal(cn_req_json(req, &again), 0);
    assert_ptr_equal(again, j); /* parsed once */
    assert_int_equal(cn_req_json(req, NULL), 0);
    /* not deleted here: the request owns the tree (ASan checks it is freed) */
}

static void json_body_in_pieces_with_whitespace(void **state)
{
    cn_req *req = *state;
    cJSON *j = NULL;

    set_body(req, " \n[1, ", 6);
    set_body(req, "2 ]\r\n\t ", 7);
    assert_int_equal(cn_req_json(req, &j), 0);
    assert_int_equal(cJSON_GetArraySize(j), 2);
}

static void json_malformed_is_ebadjson(void **state)
{
    static const char *const bodies[] = {"{\"a\":", "{a:1}", "[1,]", "nul", "'x'", "   ", "}"};

    (void)state;
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        cn_req *req = cn__req_new(NULL, NULL);
        static cJSON sentinel;
        cJSON *j = &sentinel; /* must be cleared on error */
        assert_non_null(req);
        set_body(req, bodies[i], strlen(bodies[i]));
        assert_int_equal(cn_req_json(req, &j), CN_EBADJSON);
        assert_null(j);
        assert_int_equal(cn_req_json(req, &j), CN_EBADJSON); /* remembered */
        cn__req_free(req);
    }
}

static void json_trailing_garbage_is_ebadjson(void **state)
{
    static const char *const bodies[] = {"{} x", "{}{}", "[1]]", "1 2", "\"a\"b"};

    (void)state;
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        cn_req *req = cn__req_new(NULL, NULL);
        cJSON *j = NULL;
        assert_non_null(req);
        set_body(req, bodies[i], strlen(bodies[i]));
        assert_int_equal(cn_req_json(req, &j), CN_EBADJSON);
        assert_null(j);
        cn__req_free(req);
    }
}

static void json_embedded_nul_is_ebadjson(void **state)
{
    cn_req *req = *state;
    cJSON *j = NULL;

    set_body(req, "{}\0", 3);
    assert_int_equal(cn_req_json(req, &j), CN_EBADJSON);
}

static void json_empty_body_is_ebadjson(void **state)
{
    cn_req *req = *state;
    cJSON *j = NULL;

    assert_int_equal(cn_req_json(req, &j), CN_EBADJSON);
    assert_null(j);
}

static void json_depth_at_the_limit_is_accepted(void **state)
{
    cn_req *req = *state;
    char *s = nested("[", "1", "]", CN_JSON_MAX_DEPTH);
    cJSON *j = NULL;

    set_body(req, s, strlen(s));
    free(s);
    assert_int_equal(cn_req_json(req, &j), 0);
    assert_true(cJSON_IsArray(j));
}

static void json_depth_over_the_limit_is_ejsondepth(void **state)
{
    cn_req *req = *state;
    char *s = nested("[", "1", "]", CN_JSON_MAX_DEPTH + 1);
    cJSON *j = NULL;

    set_body(req, s, strlen(s));
    free(s);
    assert_int_equal(cn_req_json(req, &j), CN_EJSONDEPTH);
    assert_null(j);
    assert_int_equal(cn_req_json(req, &j), CN_EJSONDEPTH);
}

static void json_object_depth_over_the_limit_is_ejsondepth(void **state)
{
    cn_req *req = *state;
    char *s = nested("{\"a\":", "1", "}", CN_JSON_MAX_DEPTH + 1);

    set_body(req, s, strlen(s));
    free(s);
    assert_int_equal(cn_req_json(req, NULL), CN_EJSONDEPTH);
}

static void json_depth_is_refused_before_parsing_even_if_malformed(void **state)
{
    cn_req *req = *state;
    char *s = nested("[", "", "", 10000); /* unterminated and deep */

    set_body(req, s, strlen(s));
    free(s);
    assert_int_equal(cn_req_json(req, NULL), CN_EJSONDEPTH);
}

static void json_brackets_inside_strings_do_not_count(void **state)
{
    cn_req *req = *state;
    char *inner = nested("[{", "", "", 300);
    size_t n = strlen(inner) + 16;
    char *body = malloc(n);
    cJSON *j = NULL;

    assert_non_null(body);
    /* an escaped quote does not end the string */
    snprintf(body, n, "[\"\\\"%s\"]", inner);
    set_body(req, body, strlen(body));
    assert_int_equal(cn_req_json(req, &j), 0);
    assert_int_equal(strlen(cJSON_GetArrayItem(j, 0)->valuestring), 1 + strlen(inner));
    free(inner);
    free(body);
}

static void json_escaped_backslash_ends_the_string(void **state)
{
    /* ["\\", [[...]]]: the quote after \\ closes the string, so the real
     * nesting (1 + CN_JSON_MAX_DEPTH) counts */
    cn_req *req = *state;
    char *deep = nested("[", "1", "]", CN_JSON_MAX_DEPTH);
    size_t n = strlen(deep) + 16;
    char *body = malloc(n);

    assert_non_null(body);
    snprintf(body, n, "[\"\\\\\",%s]", deep);
    set_body(req, body, strlen(body));
    assert_int_equal(cn_req_json(req, NULL), CN_EJSONDEPTH);
    free(deep);
    free(body);
}

/* ---- defer, arena helpers ---------------------------------------------------------- */

static char defer_log[64];
static size_t defer_len;

static void log_char(void *arg)
{
    defer_log[defer_len++] = *(const char *)arg;
    defer_log[defer_len] = 0;
}

static void log_string(void *arg)
{
    /* arg lives in the request's arena: still valid while defers run */
    size_t n = strlen(arg);
    memcpy(defer_log + defer_len, arg, n + 1);
    defer_len += n;
}

static void defer_runs_in_reverse_order_at_free(void **state)
{
    static char chars[] = "123";
    cn_req *req = cn__req_new(NULL, NULL);

    (void)state;
    assert_non_null(req);
    defer_len = 0;
    defer_log[0] = 0;
    for (int i = 0; i < 3; i++)
        assert_int_equal(cn_req_defer(req, log_char, &chars[i]), 0);
    assert_string_equal(defer_log, ""); /* nothing runs before the end */
    cn__req_free(req);
    assert_string_equal(defer_log, "321");
}

static void defer_sees_arena_memory(void **state)
{
    cn_req *req = cn__req_new(NULL, NULL);
    char *s;

    (void)state;
    assert_non_null(req);
    defer_len = 0;
    defer_log[0] = 0;
    s = cn_req_strdup(req, "arena-data");
    assert_non_null(s);
    assert_int_equal(cn_req_defer(req, log_string, s), 0);
    for (int i = 0; i < 200; i++) /* push the arena onto the heap */
        assert_non_null(cn_req_alloc(req, 100));
    cn__req_free(req);
    assert_string_equal(defer_log, "arena-data");
}

static void defer_null_fn_is_einval(void **state)
{
    cn_req *req = *state;

    assert_int_equal(cn_req_defer(req, NULL, NULL), CN_EINVAL);
}

static void sprintf_formats_into_the_arena(void **state)
{
    cn_req *req = *state;
    char *s, *big;

    s = cn_req_sprintf(req, "%s-%d-%05.1f-%%", "id", 42, 3.14159);
    assert_string_equal(s, "id-42-003.1-%");
    s = cn_req_sprintf(req, "%s", "");
    assert_non_null(s);
    assert_string_equal(s, "");
    big = cn_req_sprintf(req, "%3000d|", 7);
    assert_non_null(big);
    assert_int_equal(strlen(big), 3001);
    assert_string_equal(big + 2999, "7|");
    assert_string_equal(s, ""); /* earlier results stay valid */
}

static void alloc_and_strdup_helpers(void **state)
{
    cn_req *req = *state;
    char *p;

    for (size_t n = 1; n < 64; n++) {
        p = cn_req_alloc(req, n);
        assert_non_null(p);
        assert_true((uintptr_t)p % _Alignof(max_align_t) == 0);
        memset(p, 0, n);
    }
    assert_string_equal(cn_req_strdup(req, "dup"), "dup");
    assert_string_equal(cn_req_strndup(req, "dupe", 3), "dup");
    assert_null(cn_req_strdup(req, NULL));
    assert_null(cn_req_strndup(req, NULL, 3));
}

static void body_accumulates(void **state)
{
    cn_req *req = *state;
    char chunk[700];
    cn_str b;

    memset(chunk, 'b', sizeof chunk);
    for (int i = 0; i < 10; i++)
        set_body(req, chunk, sizeof chunk);
    b = cn_req_body(req);
    assert_int_equal(b.len, 7000);
    assert_int_equal(b.ptr[0], 'b');
    assert_int_equal(b.ptr[6999], 'b');
    assert_int_equal(b.ptr[7000], 0); /* kept NUL-terminated */
}

/* ---- HTML escaping ---- */

static void html_escape_the_five_and_nothing_else(void **state)
{
    const char *src = "<script>alert(\"a&b\")</script> it's \xe3\x83\x95 ok";
    char buf[128];
    int n = cn_html_escape(buf, sizeof buf, src, strlen(src));

    (void)state;
    assert_string_equal(buf, "&lt;script&gt;alert(&quot;a&amp;b&quot;)&lt;/script&gt; "
                             "it&#x27;s \xe3\x83\x95 ok");
    assert_int_equal(n, (int)strlen(buf));
    assert_int_equal(cn_html_escape(NULL, 0, src, strlen(src)), n); /* measures */
    assert_int_equal(cn_html_escape(buf, sizeof buf, "", 0), 0);
    assert_string_equal(buf, "");
    assert_int_equal(cn_html_escape(buf, sizeof buf, NULL, 1), CN_EINVAL);
    assert_int_equal(cn_html_escape(NULL, 4, "a", 1), CN_EINVAL);
}

static void html_escape_never_cuts_an_entity(void **state)
{
    char buf[8];

    (void)state;
    memset(buf, 'X', sizeof buf);
    assert_int_equal(cn_html_escape(buf, 4, "a&b", 3), 7);
    assert_string_equal(buf, "a"); /* "&amp;" does not fit: nothing after it either */
    assert_int_equal(buf[4], 'X');
    assert_int_equal(cn_html_escape(buf, 8, "a&b", 3), 7);
    assert_string_equal(buf, "a&amp;b");
}

static void html_escape_in_the_arena(void **state)
{
    cn_req *req = cn__req_new(NULL, NULL);

    (void)state;
    assert_non_null(req);
    assert_string_equal(cn_req_html_escape(req, "<b>"), "&lt;b&gt;");
    assert_string_equal(cn_req_html_escape(req, ""), "");
    assert_null(cn_req_html_escape(req, NULL));
    assert_null(cn_req_html_escape(NULL, "x"));
    cn__req_free(req);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(text_sets_status_body_and_type),
        T(html_escape_the_five_and_nothing_else),
        T(html_escape_never_cuts_an_entity),
        T(html_escape_in_the_arena),
        T(text_body_is_copied),
        T(bytes_sets_body_and_given_type),
        T(bytes_default_type_is_octet_stream),
        T(bytes_argument_errors),
        T(json_serialises_and_sets_type),
        T(json_null_is_einval),
        T(json_takes_ownership_on_error),
        T(json_str_copies_the_text),
        T(error_gives_a_detail_body),
        T(error_null_detail_is_the_reason_phrase),
        T(error_escapes_json),
        T(second_body_call_is_eresponded),
        T(jsonf_formats_into_the_arena),
        T(after_serialize_is_eresponded),
        T(invalid_status_is_einval),
        T(null_text_is_einval),
        T(header_refuses_cr_and_lf),
        T(header_refuses_reserved_names),
        T(header_refuses_bad_tokens),
        T(header_accepts_tokens_and_plain_values),
        T(header_null_arguments_are_einval),
        T(header_name_and_value_are_copied),
        T(user_content_type_overrides_the_default),
        T(user_content_type_overrides_json_default),
        T(serialize_keep_alive_http11),
        T(serialize_close_says_connection_close),
        T(serialize_http10_keep_alive),
        T(serialize_http10_close),
        T(serialize_user_headers_in_order),
        T(serialize_many_headers),
        T(serialize_binary_body),
        T(serialize_appends_to_the_buffer),
        T(serialize_head_omits_the_body),
        T(serialize_204_has_no_body),
        T(serialize_204_has_no_content_length),
        T(serialize_304_has_no_body),
        T(stream_http11_is_chunked),
        T(stream_chunk_size_is_hex),
        T(stream_http10_is_close_delimited),
        T(stream_head_request_gets_no_body),
        T(stream_start_rules),
        T(stream_after_a_body_is_eresponded),
        T(stream_content_type_is_copied),
        T(from_error_badjson_is_400),
        T(from_error_jsondepth_is_400),
        cmocka_unit_test(from_error_others_are_500),
        cmocka_unit_test(from_error_busy_is_503_with_retry_after),
        cmocka_unit_test(from_error_unavailable_has_no_retry_after),
        T(from_error_replaces_a_half_set_response),
        cmocka_unit_test(write_simple_is_a_complete_response),
        cmocka_unit_test(http_date_is_imf_fixdate),
        T(request_defaults),
        T(req_header_is_case_insensitive),
        T(req_header_at_lists_all),
        T(req_many_headers),
        T(finish_head_splits_and_decodes),
        T(finish_head_without_query),
        T(finish_head_empty_query),
        T(finish_head_splits_at_the_first_question_mark),
        cmocka_unit_test(finish_head_bad_path_escape_is_400),
        T(finish_head_leaves_query_escapes_for_later),
        T(long_target_beyond_the_inline_arena),
        T(query_decoding),
        T(params_from_a_router_match),
        cmocka_unit_test(json_parse_helper_gives_the_caller_the_tree),
        T(json_valid_body),
        T(json_body_in_pieces_with_whitespace),
        cmocka_unit_test(json_malformed_is_ebadjson),
        cmocka_unit_test(json_trailing_garbage_is_ebadjson),
        T(json_embedded_nul_is_ebadjson),
        T(json_empty_body_is_ebadjson),
        T(json_depth_at_the_limit_is_accepted),
        T(json_depth_over_the_limit_is_ejsondepth),
        T(json_object_depth_over_the_limit_is_ejsondepth),
        T(json_depth_is_refused_before_parsing_even_if_malformed),
        T(json_brackets_inside_strings_do_not_count),
        T(json_escaped_backslash_ends_the_string),
        cmocka_unit_test(defer_runs_in_reverse_order_at_free),
        cmocka_unit_test(defer_sees_arena_memory),
        T(defer_null_fn_is_einval),
        T(sprintf_formats_into_the_arena),
        T(alloc_and_strdup_helpers),
        T(body_accumulates),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
