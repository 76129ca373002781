/*
 * test_fetch.c -- outbound HTTP from handlers (cn_fetch / cn_fetch_all) over
 * real sockets: a front app whose test routes fetch from an upstream app,
 * both on 127.0.0.1 port 0 in their own threads.
 *
 * The upstream serves the demo's GitHub-like user API (upstream_register:
 * GET /users/{name}[?delay_ms=N]) and a few routes of this file: an error
 * status, a large body, a header, an echo. The front gets the upstream's
 * base URL as route data (and the demo's outbound routes through
 * demo_register_fetch).
 *
 * Covered: success (status, body, headers, JSON), POST with headers,
 * timeout (504), connection refused (502), upstream 404 and 500, a body
 * over the limit, cancellation mid-transfer by a client disconnect (the
 * upstream sees its request go too), 100 fetches in one cn_fetch_all with
 * the per-host connection cap, /fetch-multiple's overlap, connection reuse,
 * and the golden rule from a sync route.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "demo.h"
#include "app.h" /* cn__app_free_checked */
#include "harness.h"
#include "upstream.h"

/* ------------------------------------------------------------------------ */
/* Local helpers                                                             */
/* ------------------------------------------------------------------------ */

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v))
        fail_msg("no string \"%s\" in the answer", key);
    return v->valuestring;
}

/* Percent-encode a path for the ?path= query parameter. */
static char *qenc(const char *s)
{
    char *out = malloc(strlen(s) * 3 + 1), *o = out;
    assert_non_null(out);
    for (; *s; s++) {
        if (*s == '?' || *s == '&' || *s == '=' || *s == '%' || *s == ' ')
            o += sprintf(o, "%%%02X", (unsigned char)*s);
        else
            *o++ = *s;
    }
    *o = 0;
    return out;
}

/* GET <route>?path=<enc(path)><extra> on the front, as JSON. */
static cJSON *fetch_via(h_server *front, const char *route, const char *path, const char *extra,
                        int status)
{
    char *e = qenc(path);
    char *p = h_strf("%s?path=%s%s", route, e, extra ? extra : "");
    cJSON *o = h_get_json(front, p, status);
    free(e);
    free(p);
    return o;
}

/* GET /f/one?path=<enc(path)><extra> on the front, as JSON. */
static cJSON *fetch_one(h_server *front, const char *path, const char *extra, int status)
{
    return fetch_via(front, "/f/one", path, extra, status);
}

/* The mapped variant: the front's answer (status and JSON body). */
static cJSON *fetch_mapped(h_server *front, const char *path, const char *extra, int status)
{
    return fetch_via(front, "/f/mapped", path, extra, status);
}

/* ------------------------------------------------------------------------ */
/* A raw upstream: answers badly on purpose                                  */
/* ------------------------------------------------------------------------ */

enum { RAW_TRUNCATE, RAW_STALL_BODY };

typedef struct raw_server {
    int fd;
    int port;
    int mode;
    int conns; /* how many connections to serve */
    pthread_t thread;
    atomic_int served, body_sent, peer_closed;
} raw_server;

/* Read until the end of a request head (bounded). */
static void raw_read_head(int fd)
{
    char buf[4096];
    size_t len = 0;
    int64_t deadline = h_now_ms() + 5000;

    while (len < sizeof buf - 1 && h_now_ms() < deadline) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        ssize_t n;
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (n <= 0)
            return;
        len += (size_t)n;
        buf[len] = 0;
        if (strstr(buf, "\r\n\r\n"))
            return;
    }
}

static void raw_send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0)
            return;
        p += n;
        len -= (size_t)n;
    }
}

static void *raw_main(void *arg)
{
    raw_server *r = arg;

    for (int i = 0; i < r->conns; i++) {
        struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
        int c;

        if (poll(&pfd, 1, 5000) <= 0)
            break;
        c = accept(r->fd, NULL, NULL);
        if (c < 0)
            break;
        raw_read_head(c);
        if (r->mode == RAW_TRUNCATE) {
            static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort";
            raw_send_all(c, resp, sizeof resp - 1);
        } else {
            static const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n";
            char body[1000];
            int64_t deadline = h_now_ms() + 5000;
            memset(body, 'x', sizeof body);
            raw_send_all(c, head, sizeof head - 1);
            raw_send_all(c, body, sizeof body);
            atomic_store(&r->body_sent, 1);
            /* stall; wait for the peer to hang up (bounded) */
            while (h_now_ms() < deadline) {
                struct pollfd cp = {.fd = c, .events = POLLIN};
                char tmp[256];
                if (poll(&cp, 1, 50) > 0 && recv(c, tmp, sizeof tmp, 0) <= 0) {
                    atomic_store(&r->peer_closed, 1);
                    break;
                }
            }
        }
        close(c);
        atomic_fetch_add(&r->served, 1);
    }
    return NULL;
}

static raw_server *raw_start(int mode, int conns)
{
    raw_server *r = calloc(1, sizeof(*r));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t len = sizeof a;

    assert_non_null(r);
    r->mode = mode;
    r->conns = conns;
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(r->fd >= 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(r->fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(r->fd, 16), 0);
    assert_int_equal(getsockname(r->fd, (struct sockaddr *)&a, &len), 0);
    r->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&r->thread, NULL, raw_main, r), 0);
    return r;
}

static void raw_stop(raw_server *r)
{
    pthread_join(r->thread, NULL);
    close(r->fd);
    free(r);
}

/* ------------------------------------------------------------------------ */
/* The upstream app                                                          */
/* ------------------------------------------------------------------------ */

#define BIG_MAX (4u * 1024 * 1024)
static char big_pattern[BIG_MAX];

static void big_fill(void)
{
    for (size_t i = 0; i < BIG_MAX; i++)
        big_pattern[i] = (char)('a' + i % 26);
}

/* GET /u/status/{code:int}: that status with a JSON error body */
static int u_status(cn_req *req, cn_res *res)
{
    int64_t code = 500;
    cn_req_param_int(req, "code", &code);
    return cn_res_error(res, (int)code, "upstream says no");
}

/* GET /u/big/{n:int}: n bytes of the pattern */
static int u_big(cn_req *req, cn_res *res)
{
    int64_t n = 0;
    cn_req_param_int(req, "n", &n);
    if (n < 0 || n > (int64_t)BIG_MAX)
        return cn_res_error(res, 422, "n");
    return cn_res_bytes(res, 200, big_pattern, (size_t)n, "text/plain");
}

/* GET /u/header: a custom header; the request's X-Req back in the body */
static int u_header(cn_req *req, cn_res *res)
{
    cJSON *o = cJSON_CreateObject();
    const char *x = cn_req_header(req, "x-req");

    cn_res_header(res, "X-Upstream-Test", "hello");
    cJSON_AddStringToObject(o, "x_req", x ? x : "");
    return cn_res_json(res, 200, o);
}

/* POST /u/echo: the body back, the method and X-Req in headers */
static int u_echo(cn_req *req, cn_res *res)
{
    cn_str b = cn_req_body(req);
    const char *x = cn_req_header(req, "x-req");

    cn_res_header(res, "X-Method", cn_req_method(req));
    cn_res_header(res, "X-Req-Echo", x ? x : "");
    return cn_res_bytes(res, 200, b.ptr, b.len, "text/plain");
}

/* GET /u/seg/{p}: the one segment as the upstream's router decoded it */
static int u_seg(cn_req *req, cn_res *res)
{
    return cn_res_text(res, 200, cn_req_param(req, "p"));
}

typedef struct up_server {
    cn_app *app;
    pthread_t thread;
    char url[64];
} up_server;

static void *up_main(void *arg)
{
    up_server *u = arg;
    cn_app_run(u->app);
    return NULL;
}

static up_server *up_start_ka(unsigned keepalive_ms)
{
    up_server *u = calloc(1, sizeof(*u));
    cn_config c = h_fast_config();
    int rc = 0;

    assert_non_null(u);
    c.keepalive_timeout_ms = keepalive_ms;
    c.header_timeout_ms = 10000;
    c.pool_threads = 2;
    u->app = cn_app_new(&c);
    assert_non_null(u->app);
    rc = rc ? rc : upstream_register(u->app);
    rc = rc ? rc : cn_app_route(u->app, "GET /u/status/{code:int}", u_status, NULL);
    rc = rc ? rc : cn_app_route(u->app, "GET /u/big/{n:int}", u_big, NULL);
    rc = rc ? rc : cn_app_route(u->app, "GET /u/header", u_header, NULL);
    rc = rc ? rc : cn_app_route(u->app, "GET /u/seg/{p}", u_seg, NULL);
    rc = rc ? rc : cn_app_route(u->app, "POST /u/echo", u_echo, NULL);
    assert_int_equal(rc, 0);
    assert_int_equal(cn_app_listen(u->app, "127.0.0.1", 0), 0);
    snprintf(u->url, sizeof u->url, "http://127.0.0.1:%d", cn_app_port(u->app));
    assert_int_equal(pthread_create(&u->thread, NULL, up_main, u), 0);
    return u;
}

static up_server *up_start(void)
{
    return up_start_ka(10000); /* idle connections stay for reuse */
}

static cn_stats up_stats(up_server *u)
{
    cn_stats st;
    cn_app_stats(u->app, &st);
    return st;
}

static void up_stop(up_server *u)
{
    if (u == NULL)
        return;
    cn_app_stop(u->app);
    pthread_join(u->thread, NULL);
    assert_int_equal(cn__app_free_checked(u->app), 0);
    free(u);
}

/* ------------------------------------------------------------------------ */
/* The front app's test routes (route data: the upstream's base URL)         */
/* ------------------------------------------------------------------------ */

static const char *base_of(cn_req *req)
{
    return cn_req_route_data(req);
}

static bool pattern_ok(const cn_str *b)
{
    for (size_t i = 0; i < b->len; i++)
        if (b->ptr[i] != (char)('a' + i % 26))
            return false;
    return true;
}

static void add_str(cJSON *o, const char *k, const char *v)
{
    if (v)
        cJSON_AddStringToObject(o, k, v);
    else
        cJSON_AddNullToObject(o, k);
}

static const char *const x_req_headers[] = {"X-Req: abc", NULL};

/* Build the options of /f/one and /f/mapped from the query. */
static void opts_from_query(cn_req *req, cn_fetch_opts *o)
{
    const char *path = cn_req_query(req, "path");
    const char *body = cn_req_query(req, "body");
    int64_t timeout = 0, maxb = 0;

    cn_req_query_int(req, "timeout_ms", &timeout);
    cn_req_query_int(req, "max_body", &maxb);
    memset(o, 0, sizeof(*o));
    if (cn_req_query(req, "url"))
        o->url = cn_req_query(req, "url");
    else
        o->url = cn_req_sprintf(req, "%s%s", base_of(req), path ? path : "/");
    o->method = cn_req_query(req, "method");
    o->headers = x_req_headers;
    o->body = body;
    o->body_len = body ? strlen(body) : 0;
    o->timeout_ms = timeout;
    o->max_body_bytes = (size_t)maxb;
}

/* GET /f/one?path=...: one fetch, everything it returned as JSON */
/* GET /f/seg/{name}: name (decoded here) sent on as one escaped segment */
static int rt_seg(cn_req *req, cn_res *res)
{
    const char *seg = cn_req_url_escape(req, cn_req_param(req, "name"), CN_URL_SEGMENT);
    cn_fetch_opts o = {0};
    cn_fetch_result r;

    if (seg == NULL)
        return cn_res_error(res, 422, "not a segment");
    o.url = cn_req_sprintf(req, "%s/u/seg/%s", base_of(req), seg);
    if (cn_fetch(&o, &r) < 0)
        return cn_res_upstream_error(res, &r, NULL);
    return cn_res_bytes(res, r.status, r.body.ptr, r.body.len, "text/plain");
}

static int rt_one(cn_req *req, cn_res *res)
{
    cn_fetch_opts o;
    cn_fetch_result r;
    cJSON *out = cJSON_CreateObject(), *j = NULL;
    int64_t t0 = h_now_ms();
    int rc, jrc;

    opts_from_query(req, &o);
    rc = cn_fetch(&o, &r);
    cJSON_AddNumberToObject(out, "rc", rc);
    cJSON_AddNumberToObject(out, "wall_ms", (double)(h_now_ms() - t0));
    cJSON_AddNumberToObject(out, "error", r.error);
    cJSON_AddNumberToObject(out, "status", r.status);
    cJSON_AddNumberToObject(out, "len", (double)r.body.len);
    cJSON_AddNumberToObject(out, "nheaders", (double)r.nheaders);
    cJSON_AddNumberToObject(out, "elapsed_ms", r.elapsed_ms);
    cJSON_AddBoolToObject(out, "pattern_ok", r.body.len > 0 && pattern_ok(&r.body));
    add_str(out, "ctype", cn_fetch_header(&r, "Content-Type"));
    add_str(out, "x_upstream_test", cn_fetch_header(&r, "x-UPSTREAM-test"));
    add_str(out, "x_method", cn_fetch_header(&r, "X-Method"));
    add_str(out, "x_req_echo", cn_fetch_header(&r, "X-Req-Echo"));
    add_str(out, "missing_header", cn_fetch_header(&r, "X-Not-There"));
    if (r.body.len > 0 && r.body.len < 512)
        add_str(out, "body", cn_req_strndup(req, r.body.ptr, r.body.len));
    jrc = cn_fetch_json(&r, &j);
    cJSON_AddNumberToObject(out, "json_rc", jrc);
    if (jrc == 0 && cJSON_IsObject(j)) {
        const cJSON *login = cJSON_GetObjectItemCaseSensitive(j, "login");
        const cJSON *xr = cJSON_GetObjectItemCaseSensitive(j, "x_req");
        add_str(out, "login", cJSON_IsString(login) ? login->valuestring : NULL);
        add_str(out, "x_req", cJSON_IsString(xr) ? xr->valuestring : NULL);
    }
    /* a success is not an upstream error */
    cJSON_AddNumberToObject(out, "map_success",
                            r.error == 0 && r.status < 400 ? cn_res_upstream_error(res, &r, NULL)
                                                           : 0);
    return cn_res_json(res, 200, out);
}

/* GET /f/mapped?path=...: the guide's mapping of upstream failures */
static int rt_mapped(cn_req *req, cn_res *res)
{
    cn_fetch_opts o;
    cn_fetch_result r;
    int rc;

    opts_from_query(req, &o);
    rc = cn_fetch(&o, &r);
    if (rc == CN_ECANCELED)
        return rc;
    if (cn_res_upstream_error(res, &r, "User not found") == CN_EINVAL)
        return cn_res_json_str(res, 200, "{\"ok\":true}");
    return 0;
}

static const char *const logins[4] = {"octocat", "torvalds", "gvanrossum", "tiangolo"};

/* GET /f/many?n=&delay=: n fetches in one cn_fetch_all */
static int rt_many(cn_req *req, cn_res *res)
{
    int64_t n = 0, delay = 0, t0;
    cn_fetch_opts *o;
    cn_fetch_result *r;
    cJSON *out = cJSON_CreateObject();
    int rc, ok = 0;

    cn_req_query_int(req, "n", &n);
    cn_req_query_int(req, "delay", &delay);
    o = cn_req_alloc(req, (size_t)n * sizeof(*o));
    r = cn_req_alloc(req, (size_t)n * sizeof(*r));
    for (int64_t i = 0; i < n; i++) {
        memset(&o[i], 0, sizeof(o[i]));
        o[i].url = cn_req_sprintf(req, "%s/users/%s?delay_ms=%lld", base_of(req), logins[i % 4],
                                  (long long)delay);
    }
    t0 = h_now_ms();
    rc = cn_fetch_all(o, (size_t)n, r);
    cJSON_AddNumberToObject(out, "wall_ms", (double)(h_now_ms() - t0));
    cJSON_AddNumberToObject(out, "rc", rc);
    for (int64_t i = 0; i < n; i++) {
        cJSON *j;
        if (r[i].error || r[i].status != 200 || cn_fetch_json(&r[i], &j) < 0)
            continue;
        const cJSON *login = cJSON_GetObjectItemCaseSensitive(j, "login");
        if (cJSON_IsString(login) && strcmp(login->valuestring, logins[i % 4]) == 0)
            ok++;
    }
    cJSON_AddNumberToObject(out, "ok", ok);
    return cn_res_json(res, 200, out);
}

/* GET /f/mixed?dead=port: [ok, refused, 404, timeout] in one cn_fetch_all */
static int rt_mixed(cn_req *req, cn_res *res)
{
    int64_t dead = 1;
    cn_fetch_opts o[4];
    cn_fetch_result r[4];
    cJSON *out = cJSON_CreateObject(), *errs = cJSON_CreateArray(), *sts = cJSON_CreateArray();
    int rc;

    cn_req_query_int(req, "dead", &dead);
    memset(o, 0, sizeof o);
    o[0].url = cn_req_sprintf(req, "%s/users/octocat", base_of(req));
    o[1].url = cn_req_sprintf(req, "http://127.0.0.1:%lld/users/octocat", (long long)dead);
    o[2].url = cn_req_sprintf(req, "%s/users/nobody-here", base_of(req));
    o[3].url = cn_req_sprintf(req, "%s/users/octocat?delay_ms=60000", base_of(req));
    o[3].timeout_ms = 100;
    rc = cn_fetch_all(o, 4, r);
    for (int i = 0; i < 4; i++) {
        cJSON_AddItemToArray(errs, cJSON_CreateNumber(r[i].error));
        cJSON_AddItemToArray(sts, cJSON_CreateNumber(r[i].status));
    }
    cJSON_AddNumberToObject(out, "rc", rc);
    cJSON_AddItemToObject(out, "errors", errs);
    cJSON_AddItemToObject(out, "statuses", sts);
    return cn_res_json(res, 200, out);
}

/* GET /f/seq?n=: n fetches one after the other in one handler */
static int rt_seq(cn_req *req, cn_res *res)
{
    int64_t n = 0;
    int ok = 0;
    cJSON *out = cJSON_CreateObject();

    cn_req_query_int(req, "n", &n);
    for (int64_t i = 0; i < n; i++) {
        cn_fetch_opts o = {.url = cn_req_sprintf(req, "%s/users/octocat", base_of(req))};
        cn_fetch_result r;
        if (cn_fetch(&o, &r) == 0 && r.status == 200)
            ok++;
    }
    cJSON_AddNumberToObject(out, "ok", ok);
    return cn_res_json(res, 200, out);
}

/* What the cancelled handlers saw. */
static atomic_int f_started, f_rc, f_err[3], f_status0;

static void cancel_reset(void)
{
    atomic_store(&f_started, 0);
    atomic_store(&f_rc, H_NOT_YET);
    atomic_store(&f_status0, H_NOT_YET);
    for (int i = 0; i < 3; i++)
        atomic_store(&f_err[i], H_NOT_YET);
}

/* GET /f/cancel: one fetch that waits 60 s upstream (until it is cancelled) */
static int rt_cancel(cn_req *req, cn_res *res)
{
    cn_fetch_opts o = {.url = cn_req_sprintf(req, "%s/users/octocat?delay_ms=60000", base_of(req))};
    cn_fetch_result r;
    int rc;

    atomic_store(&f_started, 1);
    rc = cn_fetch(&o, &r);
    atomic_store(&f_err[0], r.error);
    atomic_store(&f_rc, rc);
    if (rc < 0)
        return rc;
    return cn_res_text(res, 200, "fetched");
}

/* GET /f/cancel-all: three transfers, one quick and two slow */
static int rt_cancel_all(cn_req *req, cn_res *res)
{
    cn_fetch_opts o[3] = {
        {.url = cn_req_sprintf(req, "%s/users/octocat", base_of(req))},
        {.url = cn_req_sprintf(req, "%s/users/torvalds?delay_ms=5000", base_of(req))},
        {.url = cn_req_sprintf(req, "%s/users/gvanrossum?delay_ms=5000", base_of(req))},
    };
    cn_fetch_result r[3];
    int rc;

    atomic_store(&f_started, 1);
    rc = cn_fetch_all(o, 3, r);
    for (int i = 0; i < 3; i++)
        atomic_store(&f_err[i], r[i].error);
    atomic_store(&f_status0, r[0].status);
    atomic_store(&f_rc, rc);
    if (rc < 0)
        return rc;
    return cn_res_text(res, 200, "fetched");
}

/* GET /f/sync (a SYNC route): fetch is a golden-rule error there */
static int rt_sync(cn_req *req, cn_res *res)
{
    cn_fetch_opts o = {.url = cn_req_sprintf(req, "%s/users/octocat", base_of(req))};
    cn_fetch_result r[2];
    cJSON *out = cJSON_CreateObject();

    cJSON_AddNumberToObject(out, "fetch", cn_fetch(&o, &r[0]));
    cJSON_AddNumberToObject(out, "fetch_all", cn_fetch_all(&o, 1, r));
    return cn_res_json(res, 200, out);
}

/* GET /f/args: argument checks inside a coroutine */
static int rt_args(cn_req *req, cn_res *res)
{
    cn_fetch_opts o = {0};
    cn_fetch_result r;
    cJSON *out = cJSON_CreateObject(), *j;

    (void)req;
    cJSON_AddNumberToObject(out, "no_url", cn_fetch(&o, &r));
    cJSON_AddNumberToObject(out, "null_opts", cn_fetch(NULL, &r));
    cJSON_AddNumberToObject(out, "null_out", cn_fetch(&o, NULL));
    cJSON_AddNumberToObject(out, "all_zero", cn_fetch_all(NULL, 0, NULL));
    memset(&r, 0, sizeof r);
    cJSON_AddNumberToObject(out, "json_empty", cn_fetch_json(&r, &j));
    cJSON_AddNumberToObject(out, "map_null", cn_res_upstream_error(res, NULL, NULL));
    cJSON_AddBoolToObject(out, "header_null", cn_fetch_header(NULL, "x") == NULL);
    return cn_res_json(res, 200, out);
}

typedef struct fixture {
    up_server *up;
    h_server *front;
} fixture;

static int front_routes(cn_app *app, void *arg)
{
    const char *base = arg;
    void *data = (void *)(uintptr_t)base;
    cn_route_opts sync = {.mode = CN_ROUTE_SYNC};
    int rc = 0;

    rc = rc ? rc : demo_register_fetch(app, base);
    rc = rc ? rc : cn_app_route(app, "GET /f/one", rt_one, data);
    rc = rc ? rc : cn_app_route(app, "GET /f/seg/{name}", rt_seg, data);
    rc = rc ? rc : cn_app_route(app, "GET /f/mapped", rt_mapped, data);
    rc = rc ? rc : cn_app_route(app, "GET /f/many", rt_many, data);
    rc = rc ? rc : cn_app_route(app, "GET /f/seq", rt_seq, data);
    rc = rc ? rc : cn_app_route(app, "GET /f/mixed", rt_mixed, data);
    rc = rc ? rc : cn_app_route(app, "GET /f/cancel", rt_cancel, data);
    rc = rc ? rc : cn_app_route(app, "GET /f/cancel-all", rt_cancel_all, data);
    rc = rc ? rc : cn_app_route(app, "GET /f/args", rt_args, data);
    rc = rc ? rc : cn_app_route_ex(app, "GET /f/sync", rt_sync, data, &sync);
    return rc;
}

static fixture *start(void **state, const cn_config *cfg)
{
    fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    *state = f;
    cancel_reset();
    f->up = up_start();
    f->front = h_start(cfg, NULL, front_routes, f->up->url);
    return f;
}

static int teardown(void **state)
{
    fixture *f = *state;

    if (f == NULL)
        return 0;
    /* the front first: its cached connections go before the upstream does */
    h_stop(f->front);
    up_stop(f->up);
    free(f);
    return 0;
}

static void assert_up_settles(up_server *u)
{
    bool ok =
        H_WAIT_UNTIL(up_stats(u).coroutines_live == 0 && up_stats(u).requests_active == 0, 3000);
    if (!ok)
        fail_msg("upstream did not settle: coroutines_live=%llu requests_active=%llu",
                 (unsigned long long)up_stats(u).coroutines_live,
                 (unsigned long long)up_stats(u).requests_active);
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                     */
/* ------------------------------------------------------------------------ */

/* Status, body, headers (case-insensitive) and JSON of a plain GET. */
static void test_fetch_success(void **state)
{
    fixture *f = start(state, NULL);
    cJSON *o = fetch_one(f->front, "/users/octocat", NULL, 200);

    h_assert_code(o, "rc", 0);
    h_assert_code(o, "error", 0);
    assert_int_equal(h_jint(o, "status"), 200);
    assert_true(h_jint(o, "len") > 0);
    assert_true(h_jint(o, "nheaders") >= 3);
    assert_string_equal(jstr(o, "ctype"), "application/json");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "missing_header")));
    h_assert_code(o, "json_rc", 0);
    assert_string_equal(jstr(o, "login"), "octocat");
    h_assert_code(o, "map_success", CN_EINVAL);
    cJSON_Delete(o);

    /* a custom response header; the request's own header reached upstream */
    o = fetch_one(f->front, "/u/header", NULL, 200);
    assert_int_equal(h_jint(o, "status"), 200);
    assert_string_equal(jstr(o, "x_upstream_test"), "hello");
    assert_string_equal(jstr(o, "x_req"), "abc");
    cJSON_Delete(o);

    /* a body that is not JSON */
    o = fetch_one(f->front, "/u/big/10", NULL, 200);
    assert_int_equal(h_jint(o, "len"), 10);
    assert_string_equal(jstr(o, "body"), "abcdefghij");
    h_assert_code(o, "json_rc", CN_EBADJSON);
    cJSON_Delete(o);

    /* the demo's route: one upstream user as JSON */
    o = h_get_json(f->front, "/github/octocat", 200);
    assert_string_equal(jstr(o, "login"), "octocat");
    assert_int_equal(h_jint(o, "id"), 583231);
    cJSON_Delete(o);
    h_assert_settles(f->front);
}

/* POST with a body (method defaults to POST) and request headers. */
static void test_fetch_post_with_headers(void **state)
{
    fixture *f = start(state, NULL);
    cJSON *o = fetch_one(f->front, "/u/echo", "&body=hello", 200);

    h_assert_code(o, "rc", 0);
    assert_int_equal(h_jint(o, "status"), 200);
    assert_string_equal(jstr(o, "body"), "hello");
    assert_string_equal(jstr(o, "x_method"), "POST");
    assert_string_equal(jstr(o, "x_req_echo"), "abc");
    cJSON_Delete(o);
    /* an explicit method */
    o = fetch_one(f->front, "/u/status/418", "&method=GET", 200);
    assert_int_equal(h_jint(o, "status"), 418);
    cJSON_Delete(o);
}

/* timeout_ms = 100 against a 60 s upstream: CN_ETIMEDOUT, mapped to 504. */
static void test_fetch_timeout(void **state)
{
    fixture *f = start(state, NULL);
    cJSON *o = fetch_one(f->front, "/users/octocat?delay_ms=60000", "&timeout_ms=100", 200);

    h_assert_code(o, "rc", CN_ETIMEDOUT);
    h_assert_code(o, "error", CN_ETIMEDOUT);
    assert_int_equal(h_jint(o, "status"), 0);
    assert_true(h_jint(o, "wall_ms") >= 90);
    assert_true(h_jint(o, "wall_ms") < 30000); /* long before the upstream's answer */
    cJSON_Delete(o);

    o = fetch_mapped(f->front, "/users/octocat?delay_ms=60000", "&timeout_ms=100", 504);
    assert_string_equal(jstr(o, "detail"), "Upstream timed out");
    cJSON_Delete(o);
    /* they were sent, then timed out: not queue timeouts */
    assert_int_equal(h_stats(f->front).fetch_queue_timeouts, 0);
    /* the upstream's abandoned requests were cancelled when curl hung up */
    assert_up_settles(f->up);
    h_assert_settles(f->front);
}

/* fetch_connects counts the outbound connections cn_fetch opened, whatever
 * became of the transfer: a timed-out or cancelled transfer opened one too
 * (and curl closed it). The upstream, whose only client is the front,
 * accepted exactly those. */
static void test_fetch_connects_counts_failed_transfers(void **state)
{
    fixture *f = start(state, NULL);
    h_conn *c;
    cJSON *o;

    o = fetch_one(f->front, "/users/octocat?delay_ms=60000", "&timeout_ms=100", 200);
    h_assert_code(o, "rc", CN_ETIMEDOUT);
    cJSON_Delete(o);
    /* the upstream took that connection, and let its request go when curl
     * hung up: the one request it holds next is the cancelled transfer's
     * (else the wait below could see the timed-out one's, and the client
     * leave before the front had even begun its transfer) */
    assert_true(H_WAIT_UNTIL(up_stats(f->up).connections_accepted == 1, 3000));
    assert_up_settles(f->up);
    c = h_send_get(f->front, "/f/cancel");
    assert_true(H_WAIT_UNTIL(up_stats(f->up).requests_active == 1, 3000));
    assert_int_equal(up_stats(f->up).connections_accepted, 2);
    h_close(c);
    h_assert_settles(f->front);
    assert_up_settles(f->up);
    o = fetch_one(f->front, "/users/octocat", NULL, 200);
    h_assert_code(o, "rc", 0);
    cJSON_Delete(o);
    print_message("fetch_connects=%llu upstream accepted=%llu\n",
                  (unsigned long long)h_stats(f->front).fetch_connects,
                  (unsigned long long)up_stats(f->up).connections_accepted);
    assert_int_equal(up_stats(f->up).connections_accepted, 3);
    assert_int_equal(h_stats(f->front).fetch_connects, 3);
}

/* Nothing listens: CN_ECONNREFUSED, mapped to 502. */
static void test_fetch_connection_refused(void **state)
{
    fixture *f = start(state, NULL);
    int port = h_dead_port();
    char *extra = h_strf("&url=http://127.0.0.1:%d/users/octocat", port);
    cJSON *o = fetch_one(f->front, "/", extra, 200);

    h_assert_code(o, "rc", CN_ECONNREFUSED);
    assert_int_equal(h_jint(o, "status"), 0);
    assert_int_equal(h_jint(o, "len"), 0);
    cJSON_Delete(o);
    o = fetch_mapped(f->front, "/", extra, 502);
    assert_non_null(strstr(jstr(o, "detail"), cn_strerror(CN_ECONNREFUSED)));
    cJSON_Delete(o);
    free(extra);
    h_assert_settles(f->front);
}

/* Upstream 404 -> 404 {"detail":"User not found"} through /github/{username}. */
static void test_upstream_404(void **state)
{
    fixture *f = start(state, NULL);
    h_response r;
    cJSON *o;

    h_roundtrip(f->front, "GET /github/nobody-here HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "{\"detail\":\"User not found\"}");
    h_response_free(&r);
    /* a 404 is a response, not an error of the fetch itself */
    o = fetch_one(f->front, "/users/nobody-here", NULL, 200);
    h_assert_code(o, "rc", 0);
    assert_int_equal(h_jint(o, "status"), 404);
    cJSON_Delete(o);
}

/*
 * The demo's /github/{username} once put its decoded parameter into the
 * upstream URL: "..%2F..%2Fadmin%2Fdelete%3Fall%3D1" made it ask the
 * upstream for /admin/delete?all=1. Logins outside GitHub's rules get 422
 * and send nothing.
 */
static void test_github_login_validated(void **state)
{
    static const char *const bad[] = {
        "..%2F..%2Fadmin%2Fdelete%3Fall%3D1",
        "..",
        "octo%2Fcat",
        "octocat%3Fx%3D1",
        "octocat%23frag",
        "-octocat",
        "octocat-",
        "octo--cat",
        "octo%20cat",
        "%C3%A9",
    };
    fixture *f = start(state, NULL);
    uint64_t before = up_stats(f->up).requests_total;
    h_response r;
    char raw[256];

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(raw, sizeof raw, "GET /github/%s HTTP/1.1\r\nHost: t\r\n\r\n", bad[i]);
        h_roundtrip(f->front, raw, &r);
        if (r.status != 422)
            fail_msg("/github/%s: status %d, body %s", bad[i], r.status, r.body);
        assert_non_null(strstr(r.body, "\"type\":\"string_pattern_mismatch\""));
        assert_non_null(strstr(r.body, "\"loc\":[\"path\",\"username\"]"));
        h_response_free(&r);
    }
    h_roundtrip(f->front,
                "GET /github/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: t\r\n\r\n",
                &r);
    assert_int_equal(r.status, 422);
    assert_string_equal(r.body,
                        "{\"detail\":[{\"type\":\"string_too_long\",\"loc\":[\"path\","
                        "\"username\"],\"msg\":\"String should have at most 39 characters\","
                        "\"input\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
                        "\"ctx\":{\"max_length\":39}}]}");
    h_response_free(&r);
    /* none of them reached the upstream */
    assert_int_equal(up_stats(f->up).requests_total, before);
    /* a valid one still does */
    cJSON_Delete(h_get_json(f->front, "/github/octocat", 200));
    assert_int_equal(up_stats(f->up).requests_total, before + 1);
}

/* cn_req_url_escape: a decoded parameter arrives upstream as the same one segment. */
static void test_url_escape_round_trip(void **state)
{
    static const char *const names[][2] = {
        {"..%2F..%2Fadmin%2Fdelete%3Fall%3D1", "../../admin/delete?all=1"},
        {"a%20b%2Bc%26d%3De", "a b+c&d=e"},
        {"%23frag%25", "#frag%"},
        {"caf%C3%A9", "caf\xc3\xa9"},
        {"...", "..."},
    };
    fixture *f = start(state, NULL);
    h_response r;
    char raw[256];

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(raw, sizeof raw, "GET /f/seg/%s HTTP/1.1\r\nHost: t\r\n\r\n", names[i][0]);
        h_roundtrip(f->front, raw, &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, names[i][1]);
        h_response_free(&r);
    }
    /* a dot segment cannot be escaped into a safe one */
    h_roundtrip(f->front, "GET /f/seg/%2E%2E HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 422);
    h_response_free(&r);
}

/* Upstream 500 -> 502. */
static void test_upstream_500(void **state)
{
    fixture *f = start(state, NULL);
    cJSON *o = fetch_one(f->front, "/u/status/500", NULL, 200);

    h_assert_code(o, "rc", 0);
    assert_int_equal(h_jint(o, "status"), 500);
    assert_non_null(strstr(jstr(o, "body"), "upstream says no"));
    cJSON_Delete(o);
    o = fetch_mapped(f->front, "/u/status/500", NULL, 502);
    assert_string_equal(jstr(o, "detail"), "Upstream returned 500");
    cJSON_Delete(o);
    o = fetch_mapped(f->front, "/u/status/503", NULL, 502);
    cJSON_Delete(o);
}

/* A 2 MiB body over a 1 MiB limit: CN_ETOOBIG (502 when mapped); the
 * per-call limit overrides the app's; exactly the limit is fine. */
static void test_body_over_limit(void **state)
{
    cn_config cfg = h_fast_config();
    fixture *f;
    cJSON *o;

    cfg.fetch_max_body_bytes = 1024 * 1024;
    f = start(state, &cfg);
    o = fetch_one(f->front, "/u/big/2097152", NULL, 200);
    h_assert_code(o, "rc", CN_ETOOBIG);
    assert_int_equal(h_jint(o, "status"), 0);
    assert_int_equal(h_jint(o, "len"), 0);
    cJSON_Delete(o);
    o = fetch_mapped(f->front, "/u/big/2097152", NULL, 502);
    cJSON_Delete(o);

    o = fetch_one(f->front, "/u/big/1048576", NULL, 200);
    h_assert_code(o, "rc", 0);
    assert_int_equal(h_jint(o, "len"), 1048576);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "pattern_ok")));
    cJSON_Delete(o);

    o = fetch_one(f->front, "/u/big/2097152", "&max_body=4194304", 200);
    h_assert_code(o, "rc", 0);
    assert_int_equal(h_jint(o, "len"), 2097152);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "pattern_ok")));
    cJSON_Delete(o);

    o = fetch_one(f->front, "/u/big/2097152", "&max_body=1000", 200);
    h_assert_code(o, "rc", CN_ETOOBIG);
    cJSON_Delete(o);
    h_assert_settles(f->front);
}

/* The client leaves while its handler waits on a 60 s upstream: the handler
 * sees CN_ECANCELED, the transfer is removed (the upstream sees its request
 * cancelled too), no coroutine is left. */
static void test_cancel_mid_transfer(void **state)
{
    fixture *f = start(state, NULL);
    h_conn *c = h_send_get(f->front, "/f/cancel");
    h_conn *other;
    int64_t closed_at;
    cJSON *o;

    assert_true(H_WAIT_UNTIL(up_stats(f->up).requests_active == 1, 3000));
    assert_int_equal(atomic_load(&f_started), 1);
    assert_int_equal(h_stats(f->front).coroutines_live, 1);
    /* another request's transfer is in flight at the same time */
    other = h_send_get(f->front, "/github/torvalds?delay_ms=1000");
    assert_true(H_WAIT_UNTIL(up_stats(f->up).requests_active == 2, 3000));
    closed_at = h_now_ms();
    h_close(c);
    assert_true(H_WAIT_UNTIL(atomic_load(&f_rc) != H_NOT_YET, 3000));
    assert_int_equal(atomic_load(&f_rc), CN_ECANCELED);
    assert_int_equal(atomic_load(&f_err[0]), CN_ECANCELED);
    assert_true(h_now_ms() - closed_at < 30000); /* not the upstream's 60 s */
    /* it is untouched by the cancel */
    o = h_read_json(other, 200);
    assert_string_equal(jstr(o, "login"), "torvalds");
    cJSON_Delete(o);
    h_close(other);
    h_assert_settles(f->front);
    assert_up_settles(f->up);
    assert_true(h_now_ms() - closed_at < 30000); /* before the upstream would have answered */
    /* the front still fetches */
    o = fetch_one(f->front, "/users/torvalds", NULL, 200);
    assert_string_equal(jstr(o, "login"), "torvalds");
    cJSON_Delete(o);
}

/* Shutdown passes its deadline while a handler waits on a fetch: the
 * transfer is removed, the handler sees CN_ECANCELED, the app stops. */
static void test_shutdown_mid_transfer(void **state)
{
    cn_config cfg = h_fast_config();
    fixture *f;
    static const char req[] = "GET /f/cancel HTTP/1.1\r\nHost: t\r\n\r\n";
    int fd;

    cfg.shutdown_timeout_ms = 100;
    f = start(state, &cfg);
    fd = h_connect_fd(f->front->host, f->front->port); /* untracked: h_stop keeps it */
    assert_true(fd >= 0);
    assert_int_equal(send(fd, req, sizeof req - 1, MSG_NOSIGNAL), (ssize_t)(sizeof req - 1));
    assert_true(H_WAIT_UNTIL(up_stats(f->up).requests_active == 1, 3000));
    assert_int_equal(cn_app_stop(f->front->app), 0);
    assert_int_equal(h_join(f->front, 5000), 0);
    assert_int_equal(atomic_load(&f_rc), CN_ECANCELED);
    assert_int_equal(h_stats(f->front).coroutines_live, 0);
    assert_int_equal(h_stats(f->front).requests_active, 0);
    /* the upstream saw the connection go */
    assert_up_settles(f->up);
    close(fd);
}

/* A cancelled cn_fetch_all: the finished transfer keeps its result, the
 * running ones are removed with CN_ECANCELED. */
static void test_cancel_fetch_all_partial(void **state)
{
    fixture *f = start(state, NULL);
    h_conn *c = h_send_get(f->front, "/f/cancel-all");

    /* the quick one is done (its connection counted), the two slow ones wait */
    assert_true(H_WAIT_UNTIL(
        h_stats(f->front).fetch_connects >= 1 && up_stats(f->up).requests_active == 2, 3000));
    h_close(c);
    assert_true(H_WAIT_UNTIL(atomic_load(&f_rc) != H_NOT_YET, 3000));
    assert_int_equal(atomic_load(&f_rc), CN_ECANCELED);
    assert_int_equal(atomic_load(&f_err[0]), 0);
    assert_int_equal(atomic_load(&f_status0), 200);
    assert_int_equal(atomic_load(&f_err[1]), CN_ECANCELED);
    assert_int_equal(atomic_load(&f_err[2]), CN_ECANCELED);
    h_assert_settles(f->front);
    assert_up_settles(f->up);
}

/* 100 fetches in one cn_fetch_all: all succeed, all at once on the
 * upstream when the per-host cap allows it. */
static void test_fetch_all_100(void **state)
{
    cn_config cfg = h_fast_config();
    fixture *f;
    h_conn *c;
    cJSON *o;
    uint64_t up0;
    cn_stats st;

    cfg.fetch_max_host_conns = 100;
    f = start(state, &cfg);
    up0 = up_stats(f->up).connections_accepted;
    c = h_send_get(f->front, "/f/many?n=100&delay=2000");
    /* all at once: the upstream holds the hundred requests together */
    assert_true(H_WAIT_UNTIL(up_stats(f->up).requests_active == 100, 10000));
    o = h_read_json(c, 200);
    h_close(c);
    print_message("100 x 2000 ms gathered: %lld ms\n", (long long)h_jint(o, "wall_ms"));
    h_assert_code(o, "rc", 0);
    assert_int_equal(h_jint(o, "ok"), 100);
    assert_true(h_jint(o, "wall_ms") >= 1999);
    cJSON_Delete(o);
    st = h_stats(f->front);
    print_message("fetch_connects=%llu upstream accepted=%llu\n",
                  (unsigned long long)st.fetch_connects,
                  (unsigned long long)(up_stats(f->up).connections_accepted - up0));
    assert_true(st.fetch_connects >= 1 && st.fetch_connects <= 100 + 4);
    assert_true(up_stats(f->up).connections_accepted - up0 <= 100 + 4);
    /* a second round reuses those connections */
    o = h_get_json(f->front, "/f/many?n=100&delay=0", 200);
    assert_int_equal(h_jint(o, "ok"), 100);
    cJSON_Delete(o);
    assert_true(h_stats(f->front).fetch_connects <= 100 + 4);
    h_assert_settles(f->front);
}

/* With the default cap (16 per host) 100 gathered fetches queue for
 * connections: all succeed, the connections stay bounded. */
static void test_fetch_all_capped(void **state)
{
    fixture *f = start(state, NULL);
    unsigned cap = cn_app_config(f->front->app)->fetch_max_host_conns;
    uint64_t up0 = up_stats(f->up).connections_accepted;
    cJSON *o = h_get_json(f->front, "/f/many?n=100&delay=50", 200);
    cn_stats st = h_stats(f->front);

    print_message("100 x 50 ms over %u connections: %lld ms, fetch_connects=%llu\n", cap,
                  (long long)h_jint(o, "wall_ms"), (unsigned long long)st.fetch_connects);
    assert_int_equal(cap, 16);
    h_assert_code(o, "rc", 0);
    assert_int_equal(h_jint(o, "ok"), 100);
    /* ceil(100 / 16) = 7 rounds of 50 ms */
    assert_true(h_jint(o, "wall_ms") >= 300);
    assert_true(st.fetch_connects >= 1 && st.fetch_connects <= cap + 4);
    assert_true(up_stats(f->up).connections_accepted - up0 <= cap + 4);
    cJSON_Delete(o);
}

/* /fetch-multiple with 1.5 s and 2 s upstream delays: both at once on the
 * upstream, not one after the other. */
static void test_fetch_multiple_overlaps(void **state)
{
    fixture *f = start(state, NULL);
    int64_t t0 = h_now_ms(), took;
    h_conn *c = h_send_get(f->front, "/fetch-multiple?delay_a=1500&delay_b=2000");
    cJSON *o;

    assert_true(H_WAIT_UNTIL(up_stats(f->up).requests_active == 2, 5000));
    o = h_read_json(c, 200);
    h_close(c);
    took = h_now_ms() - t0;
    print_message("/fetch-multiple 1500+2000: %lld ms\n", (long long)took);
    assert_true(took >= 2000);
    assert_true(cJSON_IsArray(o));
    assert_int_equal(cJSON_GetArraySize(o), 2);
    assert_string_equal(jstr(cJSON_GetArrayItem(o, 0), "login"), "octocat");
    assert_string_equal(jstr(cJSON_GetArrayItem(o, 1), "login"), "torvalds");
    cJSON_Delete(o);

    /* and the guide's /users: SQLite through to_thread gathered with a fetch */
    o = h_get_json(f->front, "/users", 200);
    assert_true(cJSON_IsArray(o));
    assert_int_equal(cJSON_GetArraySize(o), 3);
    assert_string_equal(jstr(cJSON_GetArrayItem(o, 0), "name"), "Alice");
    assert_string_equal(jstr(cJSON_GetArrayItem(o, 2), "login"), "octocat");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(o, 2), "is_github")));
    cJSON_Delete(o);
    h_assert_settles(f->front);
}

/* 20 sequential fetches reuse one connection (1 or 2, not 20). */
static void test_connection_reuse(void **state)
{
    fixture *f = start(state, NULL);
    uint64_t up0 = up_stats(f->up).connections_accepted, fc0 = h_stats(f->front).fetch_connects;
    CURL *e = h_curl_new();
    cJSON *o;

    /* 20 client requests, each one fetch */
    for (int i = 0; i < 20; i++) {
        h_http h;
        assert_int_equal(h_curl_get(e, f->front, "/github/octocat", &h), CURLE_OK);
        assert_int_equal(h.status, 200);
        h_http_free(&h);
    }
    curl_easy_cleanup(e);
    print_message("20 requests: upstream accepted %llu, fetch_connects %llu\n",
                  (unsigned long long)(up_stats(f->up).connections_accepted - up0),
                  (unsigned long long)(h_stats(f->front).fetch_connects - fc0));
    assert_true(up_stats(f->up).connections_accepted - up0 >= 1);
    assert_true(up_stats(f->up).connections_accepted - up0 <= 2);
    assert_true(h_stats(f->front).fetch_connects - fc0 <= 2);

    /* 20 fetches in one handler, one after the other */
    o = h_get_json(f->front, "/f/seq?n=20", 200);
    assert_int_equal(h_jint(o, "ok"), 20);
    cJSON_Delete(o);
    assert_true(up_stats(f->up).connections_accepted - up0 <= 2);
    assert_true(h_stats(f->front).fetch_connects - fc0 <= 2);
}

/* The golden rule: fetch from a sync route is CN_ENOTCORO and sends nothing. */
static void test_fetch_from_sync_route(void **state)
{
    fixture *f = start(state, NULL);
    uint64_t acc0 = up_stats(f->up).connections_accepted;
    uint64_t req0 = up_stats(f->up).requests_total;
    cJSON *o = h_get_json(f->front, "/f/sync", 200);

    h_assert_code(o, "fetch", CN_ENOTCORO);
    h_assert_code(o, "fetch_all", CN_ENOTCORO);
    cJSON_Delete(o);
    /* prove the upstream is reachable, then that the sync call sent nothing */
    o = h_get_json(f->front, "/github/octocat", 200);
    cJSON_Delete(o);
    assert_int_equal(up_stats(f->up).requests_total, req0 + 1);
    assert_int_equal(up_stats(f->up).connections_accepted, acc0 + 1);
    assert_int_equal(h_stats(f->front).fetch_connects, 1);
}

/* Argument checks. */
static void test_fetch_arguments(void **state)
{
    fixture *f = start(state, NULL);
    cJSON *o = h_get_json(f->front, "/f/args", 200);

    h_assert_code(o, "no_url", CN_EINVAL);
    h_assert_code(o, "null_opts", CN_EINVAL);
    h_assert_code(o, "null_out", CN_EINVAL);
    h_assert_code(o, "all_zero", 0);
    h_assert_code(o, "json_empty", CN_EBADJSON);
    h_assert_code(o, "map_null", CN_EINVAL);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(o, "header_null")));
    cJSON_Delete(o);
}

/* Mixed outcomes in one cn_fetch_all: every result is its own; the call
 * returns the first error in index order. */
static void test_fetch_all_mixed_results(void **state)
{
    fixture *f = start(state, NULL);
    char *path = h_strf("/f/mixed?dead=%d", h_dead_port());
    cJSON *o = h_get_json(f->front, path, 200);
    const cJSON *errs = cJSON_GetObjectItem(o, "errors"), *sts = cJSON_GetObjectItem(o, "statuses");
    static const int want_err[4] = {0, CN_ECONNREFUSED, 0, CN_ETIMEDOUT};
    static const int want_status[4] = {200, 0, 404, 0};

    h_assert_code(o, "rc", CN_ECONNREFUSED);
    for (int i = 0; i < 4; i++) {
        assert_int_equal((int)cJSON_GetArrayItem(errs, i)->valuedouble, want_err[i]);
        assert_int_equal((int)cJSON_GetArrayItem(sts, i)->valuedouble, want_status[i]);
    }
    cJSON_Delete(o);
    free(path);
    h_assert_settles(f->front);
    assert_up_settles(f->up);
}

/* The app's fetch_timeout_ms applies when a call gives none. */
static void test_fetch_timeout_from_config(void **state)
{
    cn_config cfg = h_fast_config();
    fixture *f;
    cJSON *o;

    cfg.fetch_timeout_ms = 150;
    f = start(state, &cfg);
    o = fetch_one(f->front, "/users/octocat?delay_ms=60000", NULL, 200);
    h_assert_code(o, "rc", CN_ETIMEDOUT);
    assert_true(h_jint(o, "wall_ms") >= 140 && h_jint(o, "wall_ms") < 30000);
    cJSON_Delete(o);
    /* a per-call timeout overrides it */
    o = fetch_one(f->front, "/users/octocat?delay_ms=300", "&timeout_ms=3000", 200);
    h_assert_code(o, "rc", 0);
    assert_string_equal(jstr(o, "login"), "octocat");
    cJSON_Delete(o);
    assert_up_settles(f->up);
}

/* A fetch's timeout covers the time it waits for a connection: with the one
 * connection to the upstream held by a 2 s fetch, a second fetch with a
 * 200 ms timeout fails with CN_ETIMEDOUT after about 200 ms (curl's own
 * clock would only start once the first is done), and counts as a queue
 * timeout. A queued fetch whose client leaves is cancelled with its timer
 * (that timer, left armed, would fire on freed memory under ASan before the
 * first fetch ends); the held fetch and a later one complete normally. */
static void test_fetch_timeout_covers_queueing(void **state)
{
    cn_config cfg = h_fast_config();
    fixture *f;
    h_conn *held, *left;
    char *e, *path;
    cJSON *o;

    cfg.fetch_max_host_conns = 1;
    f = start(state, &cfg);
    e = qenc("/users/octocat?delay_ms=2000");
    path = h_strf("/f/one?path=%s", e);
    held = h_send_get(f->front, path);
    free(path);
    free(e);
    assert_true(H_WAIT_UNTIL(up_stats(f->up).requests_active == 1, 3000));

    o = fetch_one(f->front, "/users/torvalds", "&timeout_ms=200", 200);
    h_assert_code(o, "rc", CN_ETIMEDOUT);
    h_assert_code(o, "error", CN_ETIMEDOUT);
    assert_true(h_jint(o, "wall_ms") >= 190);
    assert_true(h_jint(o, "wall_ms") < 1000); /* the held one ends at 2000 */
    assert_true(h_jint(o, "elapsed_ms") >= 190);
    cJSON_Delete(o);
    assert_int_equal(h_stats(f->front).fetch_queue_timeouts, 1);

    left = h_send_get(f->front, "/f/one?path=/users/gvanrossum&timeout_ms=400");
    assert_true(H_WAIT_UNTIL(h_stats(f->front).requests_active == 2, 3000));
    h_close(left);
    assert_true(H_WAIT_UNTIL(h_stats(f->front).requests_active == 1, 3000));

    o = h_read_json(held, 200);
    h_assert_code(o, "rc", 0);
    assert_int_equal(h_jint(o, "status"), 200);
    assert_string_equal(jstr(o, "login"), "octocat");
    assert_true(h_jint(o, "wall_ms") >= 1900);
    cJSON_Delete(o);
    h_close(held);
    /* the cancelled one's timer never fired */
    assert_int_equal(h_stats(f->front).fetch_queue_timeouts, 1);

    o = fetch_one(f->front, "/users/torvalds", "&timeout_ms=3000", 200);
    h_assert_code(o, "rc", 0);
    assert_string_equal(jstr(o, "login"), "torvalds");
    cJSON_Delete(o);
    h_assert_settles(f->front);
    assert_up_settles(f->up);
}

/* An upstream that closes before the announced body ends: CN_EUPSTREAM, 502. */
static void test_upstream_truncated_response(void **state)
{
    fixture *f = start(state, NULL);
    raw_server *r = raw_start(RAW_TRUNCATE, 2);
    char *extra = h_strf("&url=http://127.0.0.1:%d/x", r->port);
    cJSON *o = fetch_one(f->front, "/", extra, 200);

    h_assert_code(o, "rc", CN_EUPSTREAM);
    assert_int_equal(h_jint(o, "status"), 0);
    assert_int_equal(h_jint(o, "len"), 0);
    cJSON_Delete(o);
    o = fetch_mapped(f->front, "/", extra, 502);
    assert_non_null(strstr(jstr(o, "detail"), "Upstream unavailable"));
    cJSON_Delete(o);
    free(extra);
    raw_stop(r);
    h_assert_settles(f->front);
}

/* The client leaves while the body is arriving (half of it is in): the
 * transfer is removed, the upstream connection closed, nothing leaks. */
static void test_cancel_mid_body(void **state)
{
    fixture *f = start(state, NULL);
    raw_server *r = raw_start(RAW_STALL_BODY, 1);
    char *path = h_strf("/f/one?path=/&url=http://127.0.0.1:%d/x", r->port);
    h_conn *c = h_send_get(f->front, path);

    assert_true(H_WAIT_UNTIL(atomic_load(&r->body_sent) == 1, 3000));
    h_close(c);
    assert_true(H_WAIT_UNTIL(atomic_load(&r->peer_closed) == 1, 3000));
    h_assert_settles(f->front);
    assert_int_equal(h_stats(f->front).connections_active, 0);
    free(path);
    raw_stop(r);
    h_assert_healthy(f->front);
}

/* The upstream closes an idle kept-alive connection: the next fetch does
 * not fail on the stale one, it connects again. */
static void test_stale_connection_reconnects(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    cJSON *o;

    assert_non_null(f);
    *state = f;
    cancel_reset();
    f->up = up_start_ka(100);
    f->front = h_start(NULL, NULL, front_routes, f->up->url);
    o = fetch_one(f->front, "/users/octocat", NULL, 200);
    h_assert_code(o, "rc", 0);
    cJSON_Delete(o);
    assert_int_equal(h_stats(f->front).fetch_connects, 1);
    /* the upstream hangs up on the idle connection the front keeps */
    assert_true(H_WAIT_UNTIL(up_stats(f->up).connections_active == 0, 3000));
    for (int i = 0; i < 3; i++) {
        o = fetch_one(f->front, "/users/torvalds", NULL, 200);
        h_assert_code(o, "rc", 0);
        assert_int_equal(h_jint(o, "status"), 200);
        cJSON_Delete(o);
        assert_true(H_WAIT_UNTIL(up_stats(f->up).connections_active == 0, 3000));
    }
    assert_int_equal(h_stats(f->front).fetch_connects, 4);
    h_assert_settles(f->front);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_fetch_success, teardown),
        cmocka_unit_test_teardown(test_fetch_post_with_headers, teardown),
        cmocka_unit_test_teardown(test_fetch_timeout, teardown),
        cmocka_unit_test_teardown(test_fetch_connection_refused, teardown),
        cmocka_unit_test_teardown(test_upstream_404, teardown),
        cmocka_unit_test_teardown(test_github_login_validated, teardown),
        cmocka_unit_test_teardown(test_url_escape_round_trip, teardown),
        cmocka_unit_test_teardown(test_upstream_500, teardown),
        cmocka_unit_test_teardown(test_body_over_limit, teardown),
        cmocka_unit_test_teardown(test_cancel_mid_transfer, teardown),
        cmocka_unit_test_teardown(test_cancel_fetch_all_partial, teardown),
        cmocka_unit_test_teardown(test_shutdown_mid_transfer, teardown),
        cmocka_unit_test_teardown(test_fetch_all_100, teardown),
        cmocka_unit_test_teardown(test_fetch_all_capped, teardown),
        cmocka_unit_test_teardown(test_fetch_multiple_overlaps, teardown),
        cmocka_unit_test_teardown(test_connection_reuse, teardown),
        cmocka_unit_test_teardown(test_fetch_from_sync_route, teardown),
        cmocka_unit_test_teardown(test_fetch_arguments, teardown),
        cmocka_unit_test_teardown(test_fetch_all_mixed_results, teardown),
        cmocka_unit_test_teardown(test_fetch_connects_counts_failed_transfers, teardown),
        cmocka_unit_test_teardown(test_fetch_timeout_from_config, teardown),
        cmocka_unit_test_teardown(test_fetch_timeout_covers_queueing, teardown),
        cmocka_unit_test_teardown(test_upstream_truncated_response, teardown),
        cmocka_unit_test_teardown(test_cancel_mid_body, teardown),
        cmocka_unit_test_teardown(test_stale_connection_reconnects, teardown),
    };

    big_fill();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
