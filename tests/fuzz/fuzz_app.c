/*
 * fuzz_app.c -- see fuzz_app.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <uv.h>

#include <canteen.h>
#include <canteen/batteries.h>
#include <canteen/cookies.h>
#include <canteen/declare.h>
#include <canteen/uv.h>

#include "app.h"
#include "conn.h"
#include "fuzz_app.h"

/* Bounds on one run: loop turns while handlers finish, and after the hangup. */
#define SETTLE_TURNS 2000
#define CLOSE_TURNS 2000
#define FEED_RETRIES 1000

static cn_app *app;

/* ---- routes ---- */

static int rt_root(cn_req *req, cn_res *res)
{
    (void)req;
    return cn_res_text(res, 200, "ok");
}

/* GET /items/{id:int}: a typed path parameter, a query parameter, a header */
static int rt_item(cn_req *req, cn_res *res)
{
    int64_t id = 0;
    const char *q = cn_req_query(req, "q");
    const char *ua = cn_req_header(req, "user-agent");
    cJSON *j;

    cn_req_param_int(req, "id", &id);
    j = cJSON_CreateObject();
    if (j == NULL)
        return CN_ENOMEM;
    cJSON_AddNumberToObject(j, "id", (double)id);
    cJSON_AddStringToObject(j, "q", q ? q : "");
    cJSON_AddStringToObject(j, "ua", ua ? ua : "");
    return cn_res_json(res, 200, j);
}

/* GET /files/{rest:path}: the rest of the path, decoded, quoted back */
static int rt_files(cn_req *req, cn_res *res)
{
    const char *p = cn_req_param(req, "rest");
    const char *quoted = cn_req_json_quote(req, p ? p : "");

    if (quoted == NULL)
        return CN_ENOMEM;
    return cn_res_jsonf(res, 200, "{\"path\":%s}", quoted);
}

/* GET /query: every query parameter the client sent, and each header */
static int rt_query(cn_req *req, cn_res *res)
{
    int64_t n = 0;
    const char *a = cn_req_query(req, "a");
    int rc = cn_req_query_int(req, "n", &n);
    const char *cookie = cn_req_cookie(req, "session");
    size_t nh = cn_req_header_count(req);
    char *html = cn_req_html_escape(req, a ? a : "");

    if (html == NULL)
        return CN_ENOMEM;
    for (size_t i = 0; i < nh; i++) {
        cn_str name, value;
        if (cn_req_header_at(req, i, &name, &value) < 0)
            return CN_EINVAL;
    }
    if (cookie && cn_res_set_cookie(res, "seen", cookie, NULL) < 0)
        return cn_res_error(res, 400, "bad cookie");
    return cn_res_jsonf(res, 200, "{\"a\":%s,\"n\":%lld,\"rc\":%d,\"html\":%s}",
                        cn_req_json_quote(req, a ? a : ""), (long long)n, rc,
                        cn_req_json_quote(req, html));
}

static const char *const colors[] = {"red", "green", "blue", NULL};

static const cn_field search_params[] = {
    {.name = "q", .type = CN_STR, .required = 1, .min_length = 1, .max_length = 16},
    {.name = "limit", .type = CN_INT, .dflt = "10", .ge = CN_NUM(1), .le = CN_NUM(100)},
    {.name = "ratio", .type = CN_FLOAT, .dflt = "0.5", .gt = CN_NUM(0), .lt = CN_NUM(1)},
    {.name = "flag", .type = CN_BOOL, .dflt = "false"},
    {.name = "color", .type = CN_ENUM, .values = colors, .dflt = "red"},
    {.name = "code", .type = CN_STR, .pattern = "^[A-Z]{3}$"},
    {.name = "x-token", .in = CN_HEADER, .type = CN_STR},
    {.name = "visits", .in = CN_COOKIE, .type = CN_INT, .dflt = "0"},
    {0},
};

/* GET /search: declared parameters (422s) */
static int rt_search(cn_req *req, cn_res *res)
{
    return cn_res_jsonf(res, 200, "{\"q\":%s,\"limit\":%lld}",
                        cn_req_json_quote(req, cn_req_str(req, "q")),
                        (long long)cn_req_int(req, "limit"));
}

static const cn_field point_fields[] = {
    {.name = "x", .type = CN_INT, .required = 1},
    {.name = "y", .type = CN_INT, .dflt = "0"},
    {0},
};

static const cn_field item_fields[] = {
    {.name = "name", .type = CN_STR, .required = 1, .min_length = 1, .max_length = 64},
    {.name = "price", .type = CN_FLOAT, .required = 1, .gt = CN_NUM(0)},
    {.name = "qty", .type = CN_INT, .dflt = "1"},
    {.name = "tags",
     .type = CN_ARRAY,
     .items = &(const cn_field){.type = CN_STR},
     .dflt = "[]",
     .max_length = 8},
    {.name = "at", .type = CN_OBJECT, .fields = point_fields, .nullable = 1},
    {.name = "note", .type = CN_STR, .nullable = 1},
    {.name = "paid", .type = CN_BOOL, .dflt = "false"},
    {0},
};

static const cn_field item_body = {
    .type = CN_OBJECT, .model = "Item", .required = 1, .fields = item_fields};

/* POST /items: a declared body, validated, echoed back as validated */
static int rt_create(cn_req *req, cn_res *res)
{
    cJSON *j = NULL;
    int rc = cn_req_json(req, &j);

    if (rc < 0)
        return rc;
    return cn_res_json(res, 201, cJSON_Duplicate(j, 1));
}

/* POST /echo: any JSON body, parsed and printed back */
static int rt_echo(cn_req *req, cn_res *res)
{
    cJSON *j = NULL;
    int rc = cn_req_json(req, &j);

    if (rc < 0)
        return rc;
    return cn_res_json(res, 200, cJSON_Duplicate(j, 1));
}

/* GET /async: waits on the loop's timer, then answers */
static int rt_async(cn_req *req, cn_res *res)
{
    int rc = cn_sleep(1);

    (void)req;
    if (rc < 0)
        return rc;
    return cn_res_text(res, 200, "slept");
}

/* GET /sync: runs on the pool */
static int rt_sync(cn_req *req, cn_res *res)
{
    const char *a = cn_req_query(req, "a");

    return cn_res_jsonf(res, 200, "{\"len\":%zu}", a ? strlen(a) : 0);
}

static int thread_job(void *arg)
{
    return (int)(strlen(arg) % 7);
}

/* GET /thread: an async route that hands work to the pool */
static int rt_thread(cn_req *req, cn_res *res)
{
    const char *a = cn_req_query(req, "a");
    char *arg = cn_req_strdup(req, a ? a : "x");
    int rc;

    if (arg == NULL)
        return CN_ENOMEM;
    rc = cn_to_thread(thread_job, arg);
    if (rc < 0)
        return rc;
    return cn_res_jsonf(res, 200, "{\"r\":%d}", rc);
}

/* GET /stream: a streamed body, in pieces with a yield between them */
static int rt_stream(cn_req *req, cn_res *res)
{
    int64_t n = 3;
    int rc;

    if (cn_req_query_int(req, "n", &n) < 0 || n < 0 || n > 64)
        n = 3;
    rc = cn_res_stream_begin(res, 200, "text/plain");
    for (int64_t i = 0; rc == 0 && i < n; i++) {
        rc = cn_res_stream_write(res, "piece\n", 6);
        if (rc == 0)
            rc = cn_yield();
    }
    return rc ? rc : cn_res_stream_end(res);
}

/* GET /big: a body past gzip's threshold */
static int rt_big(cn_req *req, cn_res *res)
{
    static char body[4096];

    (void)req;
    memset(body, 'a', sizeof body);
    return cn_res_bytes(res, 200, body, sizeof body, "text/plain");
}

/* GET /raise: a handler that fails on purpose, and one that fails */
static int rt_raise(cn_req *req, cn_res *res)
{
    (void)req;
    return cn_res_raise(res, 418, "teapot");
}

static const char *const cors_origins[] = {"https://a.example", NULL};
static const char *const cors_methods[] = {"GET", "POST", NULL};

static int add_routes(cn_app *a)
{
    int rc = 0;

    rc = rc ? rc : cn_app_request_id(a, NULL);
    rc = rc ? rc
            : cn_app_cors(
                  a, &(cn_cors_opts){.allow_origins = cors_origins, .allow_methods = cors_methods});
    rc = rc ? rc : cn_app_gzip(a, NULL);
    rc = rc ? rc : cn_app_redirect_slashes(a);
    rc = rc ? rc : cn_app_route(a, "GET /", rt_root, NULL);
    rc = rc ? rc : cn_app_route(a, "GET /items/{id:int}", rt_item, NULL);
    rc = rc ? rc : cn_app_route(a, "DELETE /items/{id:int}", rt_item, NULL);
    rc = rc ? rc : cn_app_route(a, "GET /files/{rest:path}", rt_files, NULL);
    rc = rc ? rc : cn_app_route(a, "GET /query", rt_query, NULL);
    rc = rc ? rc : cn_app_route(a, "GET /users/{name}/posts/{post}", rt_query, NULL);
    rc = rc ? rc
            : cn_app_route_ex(a, "GET /search", rt_search, NULL,
                              &(cn_route_opts){.params = search_params});
    rc = rc ? rc
            : cn_app_route_ex(a, "POST /items", rt_create, NULL,
                              &(cn_route_opts){.body = &item_body, .status_code = 201});
    rc = rc ? rc : cn_app_route(a, "POST /echo", rt_echo, NULL);
    rc = rc ? rc : cn_app_route(a, "PUT /echo", rt_echo, NULL);
    rc = rc ? rc : cn_app_route(a, "GET /async", rt_async, NULL);
    rc = rc ? rc
            : cn_app_route_ex(a, "GET /sync", rt_sync, NULL,
                              &(cn_route_opts){.mode = CN_ROUTE_SYNC});
    rc = rc ? rc
            : cn_app_route_ex(a, "POST /sync", rt_echo, NULL,
                              &(cn_route_opts){.mode = CN_ROUTE_SYNC});
    rc = rc ? rc : cn_app_route(a, "GET /thread", rt_thread, NULL);
    rc = rc ? rc : cn_app_route(a, "GET /stream", rt_stream, NULL);
    rc = rc ? rc : cn_app_route(a, "GET /big", rt_big, NULL);
    rc = rc ? rc : cn_app_route(a, "GET /raise", rt_raise, NULL);
    rc = rc ? rc : cn_app_metrics_route(a, "/metrics");
    return rc;
}

static void quiet_log(int level, const char *msg, void *data)
{
    (void)level;
    (void)msg;
    (void)data;
}

cn_app *cn_fuzz_app(void)
{
    cn_config cfg;

    if (app)
        return app;
    cn_log_set_handler(quiet_log, NULL);
    cn_config_init(&cfg);
    cfg.pool_threads = 2;
    cfg.max_body_bytes = 64 * 1024;
    cfg.max_header_bytes = 4096;
    cfg.max_headers = 32;
    cfg.stack_size = 64 * 1024;
    cfg.lag_interval_ms = 0;
    cfg.retry_after_s = CN_FUZZ_RETRY_AFTER_S;
    app = cn_app_new(&cfg);
    if (app == NULL)
        return NULL;
    if (add_routes(app) < 0 || cn__app_start_inline(app) < 0) {
        cn_app_free(app);
        app = NULL;
    }
    return app;
}

void cn_fuzz_drop_stacks(void)
{
    if (app)
        cn__app_drop_idle_stacks(app);
}

int cn_fuzz_app_free(void)
{
    int rc;

    if (app == NULL)
        return 0;
    cn__app_stop_inline(app);
    rc = cn__app_free_checked(app);
    app = NULL;
    return rc;
}

/* ---- one connection ---- */

/* Where the response reader is in the output. */
enum { R_HEAD, R_BODY, R_CHUNK_SIZE, R_CHUNK_DATA, R_CHUNK_END, R_TRAILER, R_REST };

typedef struct run_state {
    cn_fuzz_result *res;
    size_t reset_after; /* writes fail once this many bytes went out */
    size_t at_line;     /* bytes of the current output line seen (5xx count) */
    char cur[16];
    /* the responses, read as a client reads them (as answers to GETs: after
     * a HEAD's answer, the body its Content-Length announces is looked for) */
    int rstate;
    char line[64]; /* the start of the current line */
    size_t line_len;
    unsigned status;         /* of the head being read, 0 before its status line */
    int retry;               /* its Retry-After so far, -1: none */
    bool chunked;            /* Transfer-Encoding: chunked */
    long long clen;          /* its Content-Length, -1: none */
    unsigned long long left; /* body or chunk bytes still to come */
} run_state;

/* The number at l[i..n) after blanks, in `base`; -1 if there is none. */
static long long parse_num(const char *l, size_t i, size_t n, int base)
{
    long long r = 0;
    bool any = false;

    while (i < n && (l[i] == ' ' || l[i] == '\t'))
        i++;
    for (; i < n; i++, any = true) {
        int d, c = l[i] | 0x20;
        if (l[i] >= '0' && l[i] <= '9')
            d = l[i] - '0';
        else if (base == 16 && c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else
            break;
        if (r > 1000000000000LL)
            return -1;
        r = r * base + d;
    }
    return any ? r : -1;
}

/* The number in header line l (n bytes) if it is "name: <number>" (the name
 * in any case), else -1. */
static long long header_num(const char *l, size_t n, const char *name)
{
    size_t k = strlen(name);

    if (n <= k || strncasecmp(l, name, k) != 0 || l[k] != ':')
        return -1;
    return parse_num(l, k + 1, n, 10);
}

/* A response head has ended: count it, and find where its body ends. */
static void end_head(run_state *st)
{
    if (st->res->responses++ == 0)
        st->res->retry_after = st->retry;
    if (st->status == 503) {
        st->res->n503++;
        if (st->retry == CN_FUZZ_RETRY_AFTER_S)
            st->res->n503_retry++;
    }
    if (st->status < 200 || st->status == 204 || st->status == 304)
        st->rstate = R_HEAD; /* no body */
    else if (st->chunked)
        st->rstate = R_CHUNK_SIZE;
    else if (st->clen > 0) {
        st->left = (unsigned long long)st->clen;
        st->rstate = R_BODY;
    } else if (st->clen < 0)
        st->rstate = R_REST; /* until the close */
    st->status = 0;
}

/* A whole line of output outside a body (its start in st->line). */
static void read_line(run_state *st)
{
    size_t n = st->line_len < sizeof st->line ? st->line_len : sizeof st->line;
    const char *l = st->line;
    long long v;

    if (n > 0 && l[n - 1] == '\n')
        n--;
    if (n > 0 && l[n - 1] == '\r')
        n--;
    switch (st->rstate) {
    case R_HEAD:
        if (st->status == 0) {
            if (n < 12 || memcmp(l, "HTTP/1.", 7) != 0 ||
                (st->status = (unsigned)atoi(l + 9)) == 0) {
                st->rstate = R_REST; /* not a response: read no further */
                return;
            }
            st->retry = -1;
            st->chunked = false;
            st->clen = -1;
        } else if (n == 0)
            end_head(st);
        else if ((v = header_num(l, n, "retry-after")) >= 0)
            st->retry = v > 1000000 ? 1000000 : (int)v;
        else if ((v = header_num(l, n, "content-length")) >= 0)
            st->clen = v;
        else if (n > 18 && strncasecmp(l, "transfer-encoding:", 18) == 0 &&
                 memmem(l, n, "chunked", 7))
            st->chunked = true;
        break;
    case R_CHUNK_SIZE:
        v = parse_num(l, 0, n, 16);
        if (v < 0)
            st->rstate = R_REST;
        else if (v == 0)
            st->rstate = R_TRAILER;
        else {
            st->left = (unsigned long long)v;
            st->rstate = R_CHUNK_DATA;
        }
        break;
    case R_CHUNK_END:
        st->rstate = R_CHUNK_SIZE;
        break;
    case R_TRAILER:
        if (n == 0)
            st->rstate = R_HEAD;
        break;
    default:
        break;
    }
}

/* Read the responses in p[0..n): heads line by line, bodies skipped. */
static void read_responses(run_state *st, const char *p, size_t n)
{
    size_t i = 0;

    while (i < n && st->rstate != R_REST) {
        if (st->rstate == R_BODY || st->rstate == R_CHUNK_DATA) {
            size_t k = n - i < st->left ? n - i : (size_t)st->left;
            i += k;
            st->left -= k;
            if (st->left == 0)
                st->rstate = st->rstate == R_BODY ? R_HEAD : R_CHUNK_END;
            continue;
        }
        if (st->line_len < sizeof st->line)
            st->line[st->line_len] = p[i];
        st->line_len++;
        if (p[i++] == '\n') {
            read_line(st);
            st->line_len = 0;
        }
    }
}

/* Counts status lines ("HTTP/1.1 5xx") that begin an output line. A body
 * may hold such a line too; the fuzz app's bodies do not start with one. */
static void scan(run_state *st, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (st->at_line < sizeof st->cur)
            st->cur[st->at_line] = p[i];
        st->at_line++;
        if (st->at_line == 12 && memcmp(st->cur, "HTTP/1.", 7) == 0 && st->cur[9] == '5')
            st->res->n5xx++;
        if (p[i] == '\n')
            st->at_line = 0;
    }
}

static int sink(void *arg, const char *data, size_t len)
{
    run_state *st = arg;

    if (data == NULL) {
        st->res->closed = true;
        return 0;
    }
    if (st->res->out_len >= st->reset_after) {
        st->res->reset = true;
        return CN_EPIPE; /* the client reset: this write fails */
    }
    if (st->res->out_len == 0 && len >= 12 && memcmp(data, "HTTP/1.", 7) == 0)
        st->res->status = (unsigned)atoi(data + 9);
    st->res->out_len += len;
    scan(st, data, len);
    read_responses(st, data, len);
    if (getenv("CN_FUZZ_ECHO"))
        fwrite(data, 1, len, stderr);
    return 0;
}

static bool busy(void)
{
    cn_stats s;
    cn_pool_stats p;

    cn_app_stats(app, &s);
    cn_app_pool_stats(app, &p);
    return s.coroutines_live > 0 || p.busy > 0 || p.queue_depth > 0;
}

static uint64_t active(void)
{
    cn_stats s;

    cn_app_stats(app, &s);
    return s.connections_active;
}

void cn_fuzz_run(const uint8_t *data, size_t len, size_t chunk, size_t hangup_at,
                 cn_fuzz_result *out)
{
    cn_fuzz_run_ex(data, len, chunk, hangup_at, SIZE_MAX, out);
}

void cn_fuzz_run_ex(const uint8_t *data, size_t len, size_t chunk, size_t hangup_at,
                    size_t reset_after, cn_fuzz_result *out)
{
    run_state st = {.res = out, .reset_after = reset_after};
    struct cn__conn *c = NULL;
    uv_loop_t *loop = cn_app_loop(app);
    size_t pos = 0;
    unsigned tries = 0;

    memset(out, 0, sizeof *out);
    out->retry_after = -1;
    if (cn__app_mem_open(app, sink, &st, &c) < 0)
        return;
    out->opened = true;
    if (chunk == 0)
        chunk = len ? len : 1;
    while (!out->closed && pos < len && pos < hangup_at) {
        size_t k = len - pos < chunk ? len - pos : chunk;
        int rc;
        if (hangup_at - pos < k)
            k = hangup_at - pos;
        rc = cn__conn_mem_feed(c, data + pos, k);
        if (rc == CN_EAGAIN) {
            /* backed up: the handlers and the output must move first */
            if (++tries > FEED_RETRIES)
                break;
            uv_run(loop, UV_RUN_ONCE);
            continue;
        }
        if (rc < 0)
            break;
        pos += k;
        uv_run(loop, UV_RUN_NOWAIT);
    }
    /* the requests that came in whole get their answers (not after a hangup) */
    for (int i = 0; i < SETTLE_TURNS && !out->closed && hangup_at > len && busy(); i++)
        uv_run(loop, UV_RUN_ONCE);
    if (!out->closed)
        cn__conn_mem_hangup(c);
    for (int i = 0; i < CLOSE_TURNS && active() > 0; i++)
        uv_run(loop, UV_RUN_ONCE);
    if (active() > 0 || busy()) {
        fprintf(stderr, "fuzz_app: connection still open after its bounds (a hang)\n");
        abort();
    }
}
