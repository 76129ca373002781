/*
 * accesslog.c -- the access log: formats compiled from templates with
 * nginx-style variables, written one line per answered request.
 *
 * The two built-in formats are byte for byte the ecosystem's (after the
 * "[<id>] " that starts every line about a request that has an ID):
 *
 *   uvicorn   INFO:     127.0.0.1:52345 - "GET /json HTTP/1.1" 200 OK
 *   combined  127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 2 "-" "curl/8.0"
 *
 * Everything a client sends is escaped on the way in, so that no request
 * can end a line or forge one: the path uvicorn's way (percent-encoded, as
 * urllib.parse.quote does), everything else nginx's way (", \, control
 * characters and bytes from 0x7f as \xHH). Client addresses are parsed IP
 * literals; the request ID was checked when it was set.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "accesslog.h"
#include "common.h"
#include "req.h"

#define UVICORN_FORMAT                                                                             \
    "INFO:     $remote_addr:$remote_port - \"$request_method $uri$is_args$args "                   \
    "$server_protocol\" $status $status_reason"
#define COMBINED_FORMAT                                                                            \
    "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent "             \
    "\"$http_referer\" \"$http_user_agent\""

/* A line is cut here (escaping keeps it one line whatever is cut). */
#define LINE_MAX_BYTES 4096

enum {
    V_TEXT, /* literal text of the template */
    V_REMOTE_ADDR,
    V_REMOTE_PORT,
    V_REMOTE_USER,
    V_TIME_LOCAL,
    V_TIME_ISO8601,
    V_MSEC,
    V_REQUEST,
    V_METHOD,
    V_REQUEST_URI,
    V_URI,
    V_ARGS,
    V_IS_ARGS,
    V_PROTOCOL,
    V_STATUS,
    V_STATUS_REASON,
    V_BYTES,
    V_REQUEST_TIME,
    V_REQUEST_ID,
    V_PID,
    V_WORKER,
    V_HTTP, /* a request header: $http_user_agent */
};

static const struct {
    const char *name;
    int kind;
} variables[] = {
    {"remote_addr", V_REMOTE_ADDR},
    {"remote_port", V_REMOTE_PORT},
    {"remote_user", V_REMOTE_USER},
    {"time_local", V_TIME_LOCAL},
    {"time_iso8601", V_TIME_ISO8601},
    {"msec", V_MSEC},
    {"request", V_REQUEST},
    {"request_method", V_METHOD},
    {"request_uri", V_REQUEST_URI},
    {"uri", V_URI},
    {"args", V_ARGS},
    {"query_string", V_ARGS},
    {"is_args", V_IS_ARGS},
    {"server_protocol", V_PROTOCOL},
    {"status", V_STATUS},
    {"status_reason", V_STATUS_REASON},
    {"body_bytes_sent", V_BYTES},
    {"request_time", V_REQUEST_TIME},
    {"request_id", V_REQUEST_ID},
    {"pid", V_PID},
    {"worker", V_WORKER},
};

typedef struct part {
    int kind;
    const char *text; /* V_TEXT: the text; V_HTTP: the header name, with '-' */
    size_t len;
} part;

struct cn__access {
    bool id_prefix; /* a built-in format: "[<id>] " first when the request has an ID */
    unsigned n;
    part *parts;
    char *store; /* the texts */
};

static bool var_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

int cn__access_compile(const char *fmt, cn__access **out, const char **bad)
{
    cn__access *a;
    size_t flen;
    char *st;

    bool builtin = true;

    *out = NULL;
    if (bad)
        *bad = NULL;
    if (fmt == NULL || strcmp(fmt, "uvicorn") == 0)
        fmt = UVICORN_FORMAT;
    else if (strcmp(fmt, "combined") == 0)
        fmt = COMBINED_FORMAT;
    else
        builtin = false;
    flen = strlen(fmt);
    a = calloc(1, sizeof(*a));
    if (a == NULL)
        return CN_ENOMEM;
    /* Canteen's rule for every line about a request (cn_req_set_id): its
     * ID first. A template says where $request_id goes itself. */
    a->id_prefix = builtin;
    /* at most one part per character, and the texts fit in a copy of fmt */
    a->parts = calloc(flen + 1, sizeof(part));
    a->store = malloc(flen + 1);
    if (a->parts == NULL || a->store == NULL) {
        cn__access_free(a);
        return CN_ENOMEM;
    }
    st = a->store;
    for (size_t i = 0; i < flen;) {
        part *p = &a->parts[a->n];
        const char *name;
        size_t nlen, k;
        bool braces;

        if (fmt[i] != '$' || i + 1 == flen || !(var_char(fmt[i + 1]) || fmt[i + 1] == '{')) {
            /* literal text, up to the next variable ("$$" is a '$') */
            if (a->n == 0 || a->parts[a->n - 1].kind != V_TEXT) {
                p->kind = V_TEXT;
                p->text = st;
                p->len = 0;
                a->n++;
            }
            p = &a->parts[a->n - 1];
            st[p->len++] = fmt[i];
            i += fmt[i] == '$' && i + 1 < flen && fmt[i + 1] == '$' ? 2 : 1;
            continue;
        }
        if (a->n > 0 && a->parts[a->n - 1].kind == V_TEXT) {
            st += a->parts[a->n - 1].len; /* close the text before */
        }
        braces = fmt[i + 1] == '{';
        name = fmt + i + (braces ? 2 : 1);
        for (nlen = 0; name + nlen < fmt + flen && var_char(name[nlen]); nlen++)
            ;
        if (nlen == 0 || (braces && (name + nlen == fmt + flen || name[nlen] != '}')))
            goto unknown;
        i = (size_t)(name - fmt) + nlen + (braces ? 1 : 0);
        for (k = 0; k < CN__ARRAY_SIZE(variables); k++)
            if (strlen(variables[k].name) == nlen && memcmp(variables[k].name, name, nlen) == 0)
                break;
        if (k < CN__ARRAY_SIZE(variables)) {
            p->kind = variables[k].kind;
        } else if (nlen > 5 && memcmp(name, "http_", 5) == 0) {
            p->kind = V_HTTP;
            p->text = st;
            p->len = nlen - 5;
            for (size_t j = 0; j < p->len; j++)
                st[j] = name[5 + j] == '_' ? '-' : name[5 + j];
            st += p->len;
        } else {
            goto unknown;
        }
        a->n++;
        continue;
    unknown:
        if (bad)
            *bad = fmt + i;
        cn__access_free(a);
        return CN_EINVAL;
    }
    *out = a;
    return 0;
}

void cn__access_free(cn__access *a)
{
    if (a == NULL)
        return;
    free(a->parts);
    free(a->store);
    free(a);
}

/* ---- the line ---- */

typedef struct line {
    char *buf;
    size_t size, len; /* len < size always: room for the NUL */
} line;

static void put(line *l, const char *s, size_t n)
{
    if (n > l->size - 1 - l->len)
        n = l->size - 1 - l->len;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void puts_(line *l, const char *s)
{
    put(l, s, strlen(s));
}

static const char hex[] = "0123456789ABCDEF";

/* nginx's escaping: ", \, control characters and 0x7f and up as \xHH */
static void put_escaped(line *l, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
            char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
            put(l, e, 4);
        } else {
            put(l, (const char *)&c, 1);
        }
    }
}

/* urllib.parse.quote(path): all but A-Z a-z 0-9 _ . - ~ / as %XX */
static void put_quoted(line *l, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '_' || c == '.' || c == '-' || c == '~' || c == '/') {
            put(l, (const char *)&c, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            put(l, e, 3);
        }
    }
}

static void put_u64(line *l, unsigned long long v)
{
    char num[24];
    int n = snprintf(num, sizeof num, "%llu", v);
    put(l, num, (size_t)n);
}

static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* 10/Oct/2000:13:55:36 -0700 (or, iso, 2000-10-10T13:55:36-07:00), local time */
static void put_time(line *l, bool iso)
{
    static _Thread_local char cache[2][96];
    static _Thread_local time_t cached[2];
    time_t now = time(NULL);
    int k = iso ? 1 : 0;

    if (cached[k] != now) {
        struct tm tm;
        int off;
        char sign;

        localtime_r(&now, &tm);
        off = (int)(tm.tm_gmtoff / 60);
        sign = off < 0 ? '-' : '+';
        if (off < 0)
            off = -off;
        off %= 24 * 60;
        if (iso)
            snprintf(cache[k], sizeof cache[k], "%04d-%02d-%02dT%02d:%02d:%02d%c%02d:%02d",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     sign, off / 60, off % 60);
        else
            snprintf(cache[k], sizeof cache[k], "%02d/%s/%04d:%02d:%02d:%02d %c%02d%02d",
                     tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, sign, off / 60, off % 60);
        cached[k] = now;
    }
    puts_(l, cache[k]);
}

/* The raw target's path and query. */
static void split_target(const cn_req *req, cn_str *path, cn_str *query)
{
    const char *t = req->target ? req->target : "";
    size_t n = req->target ? req->target_len : 0;
    const char *q = memchr(t, '?', n);

    *path = (cn_str){t, q ? (size_t)(q - t) : n};
    *query = q ? (cn_str){q + 1, n - (size_t)(q + 1 - t)} : (cn_str){"", 0};
}

size_t cn__access_format(const cn__access *a, cn_req *req, int worker, char *buf, size_t size)
{
    line l = {buf, size, 0};
    cn_str path, query;

    if (size == 0)
        return 0;
    split_target(req, &path, &query);
    if (a->id_prefix && req->id) {
        put(&l, "[", 1);
        puts_(&l, req->id);
        put(&l, "] ", 2);
    }
    for (unsigned i = 0; i < a->n; i++) {
        const part *p = &a->parts[i];

        switch (p->kind) {
        case V_TEXT:
            put(&l, p->text, p->len);
            break;
        case V_REMOTE_ADDR: {
            const char *h = cn_req_client_host(req);
            puts_(&l, h ? h : "-");
            break;
        }
        case V_REMOTE_PORT:
            put_u64(&l, (unsigned)(cn_req_client_port(req) > 0 ? cn_req_client_port(req) : 0));
            break;
        case V_REMOTE_USER:
            puts_(&l, "-");
            break;
        case V_TIME_LOCAL:
        case V_TIME_ISO8601:
            put_time(&l, p->kind == V_TIME_ISO8601);
            break;
        case V_MSEC: {
            struct timespec ts;
            char num[32];
            int n;
            clock_gettime(CLOCK_REALTIME, &ts);
            n = snprintf(num, sizeof num, "%lld.%03ld", (long long)ts.tv_sec, ts.tv_nsec / 1000000);
            put(&l, num, (size_t)n);
            break;
        }
        case V_REQUEST:
            puts_(&l, req->method_name);
            put(&l, " ", 1);
            put_escaped(&l, req->target ? req->target : "", req->target ? req->target_len : 0);
            puts_(&l, req->http_minor == 0 ? " HTTP/1.0" : " HTTP/1.1");
            break;
        case V_METHOD:
            puts_(&l, req->method_name);
            break;
        case V_REQUEST_URI:
            put_escaped(&l, req->target ? req->target : "", req->target ? req->target_len : 0);
            break;
        case V_URI:
            /* uvicorn quotes the decoded path; the raw one is what remains
             * when decoding was refused (a 400 never gets here) */
            if (req->path)
                put_quoted(&l, req->path, strlen(req->path));
            else
                put_quoted(&l, path.ptr, path.len);
            break;
        case V_ARGS:
            put_escaped(&l, query.ptr, query.len);
            break;
        case V_IS_ARGS:
            if (memchr(req->target ? req->target : "", '?', req->target ? req->target_len : 0))
                put(&l, "?", 1);
            break;
        case V_PROTOCOL:
            puts_(&l, req->http_minor == 0 ? "HTTP/1.0" : "HTTP/1.1");
            break;
        case V_STATUS:
            put_u64(&l, (unsigned)req->res.status);
            break;
        case V_STATUS_REASON:
            puts_(&l, cn_status_reason(req->res.status));
            break;
        case V_BYTES:
            put_u64(&l, strcmp(req->method_name, "HEAD") == 0 ? 0 : req->res.body_len);
            break;
        case V_REQUEST_TIME: {
            uint64_t ns = req->start_ns ? uv_hrtime() - req->start_ns : 0;
            char num[32];
            int n = snprintf(num, sizeof num, "%llu.%03llu", (unsigned long long)(ns / 1000000000u),
                             (unsigned long long)(ns / 1000000u % 1000u));
            put(&l, num, (size_t)n);
            break;
        }
        case V_REQUEST_ID:
            puts_(&l, req->id ? req->id : "-");
            break;
        case V_PID:
            put_u64(&l, (unsigned long long)getpid());
            break;
        case V_WORKER:
            if (worker >= 0)
                put_u64(&l, (unsigned)worker);
            else
                put(&l, "-", 1);
            break;
        case V_HTTP: {
            char name[128];
            const char *v;
            size_t n = p->len < sizeof name - 1 ? p->len : sizeof name - 1;
            memcpy(name, p->text, n);
            name[n] = 0;
            v = cn_req_header(req, name);
            if (v)
                put_escaped(&l, v, strlen(v));
            else
                put(&l, "-", 1);
            break;
        }
        default:
            break;
        }
    }
    buf[l.len] = 0;
    return l.len;
}

void cn__access_write(const cn__access *a, cn_req *req, int worker)
{
    char buf[LINE_MAX_BYTES];

    if (a == NULL || !cn__log_enabled(CN__LOG_INFO))
        return;
    cn__access_format(a, req, worker, buf, sizeof buf);
    cn__log_line(CN__LOG_INFO, buf);
}
