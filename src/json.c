/*
 * json.c -- JSON texts to cJSON trees and back, the big ones off the loop.
 *
 * Where the time goes for a 1 MiB body of small numbers echoed back
 * (callgrind, Release, one request): printing 67% (cJSON prints every
 * number with sprintf("%1.15g"), reads it back with sscanf and may print it
 * again), parsing 18% (strtod and localeconv per number), deleting and
 * copying trees the rest; half a million 64-byte nodes, each its own
 * malloc. So: integers are printed here without printf, the printer writes
 * straight into one buffer that becomes the response body, and whatever
 * is still large (a text from CN__JSON_POOL_BYTES, a tree from
 * CN__JSON_POOL_NODES) is parsed, printed and deleted on the thread pool,
 * so the loop only hands it over.
 */
#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "json.h"
#include "jsoncheck.h"
#include "pool.h"

/* ---- parsing ---- */

int cn__json_parse_checked(const char *s, size_t n, cJSON **out)
{
    const char *end = NULL;
    cJSON *j;

    *out = NULL;
    /* the checker skips a byte order mark; cJSON 1.7 only when 2 more bytes
     * follow it ("\xEF\xBB\xBF0" is malformed to it): skipped here */
    if (n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
        s += 3;
        n -= 3;
    }
    j = cJSON_ParseWithLengthOpts(s, n, &end, 0);
    /* the text passed cn__json_check, which takes nothing cJSON refuses
     * (NaN, a lone surrogate...): a failure here is out of memory */
    if (j == NULL)
        return CN_ENOMEM;
    /* trailing garbage after the value is malformed too */
    while (end && end < s + n && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
        end++;
    if (end != s + n) {
        cJSON_Delete(j);
        return CN_EBADJSON;
    }
    *out = j;
    return 0;
}

int cn__json_parse(const char *s, size_t n, cJSON **out)
{
    size_t pos;
    const char *msg;
    int rc;

    *out = NULL;
    if (s == NULL || n == 0)
        return CN_EBADJSON;
    if (!cn__utf8_valid(s, n))
        return CN_EBADJSON;
    rc = cn__json_check(s, n, &pos, &msg);
    if (rc)
        return rc == 2 ? CN_EJSONDEPTH : CN_EBADJSON;
    return cn__json_parse_checked(s, n, out);
}

typedef struct parse_job {
    const char *s;
    size_t n;
    cJSON *out;
    int rc;
    bool ran;
} parse_job;

static int parse_work(void *arg)
{
    parse_job *j = arg;

    j->rc = cn__json_parse(j->s, j->n, &j->out);
    j->ran = true;
    return 0;
}

int cn__json_parse_off_loop(cn_app *app, const char *s, size_t n, cJSON **out)
{
    parse_job j = {.s = s, .n = n};
    int rc;

    *out = NULL;
    if (n >= CN__JSON_POOL_BYTES) {
        rc = cn__to_thread_cpu(parse_work, &j);
        if (rc == 0) {
            *out = j.out;
            return j.rc;
        }
        if (rc != CN_ENOTCORO) {
            /* cancelled while it ran: what it made is not wanted */
            cn__json_free(app, j.out);
            return rc;
        }
    }
    return cn__json_parse(s, n, out);
}

/* ---- walking a tree without recursion ---- */

/* The containers above the node being visited. */
typedef struct path {
    const cJSON **up;
    size_t n, cap;
    const cJSON *inline_[32];
} path;

static int path_push(path *p, const cJSON *c)
{
    if (p->n == p->cap) {
        size_t cap = p->cap * 2;
        const cJSON **up;
        if (p->up == p->inline_) {
            up = malloc(cap * sizeof(*up));
            if (up)
                memcpy(up, p->up, p->n * sizeof(*up));
        } else {
            up = realloc(p->up, cap * sizeof(*up));
        }
        if (up == NULL)
            return -1;
        p->up = up;
        p->cap = cap;
    }
    p->up[p->n++] = c;
    return 0;
}

static void path_init(path *p)
{
    p->up = p->inline_;
    p->n = 0;
    p->cap = sizeof p->inline_ / sizeof p->inline_[0];
}

static void path_free(path *p)
{
    if (p->up != p->inline_)
        free(p->up);
}

static bool is_container(const cJSON *j)
{
    int t = j->type & 0xFF;
    return t == cJSON_Array || t == cJSON_Object;
}

size_t cn__json_nodes(const cJSON *j, size_t cap)
{
    path p;
    size_t n = 0;

    if (j == NULL)
        return 0;
    path_init(&p);
    for (;;) {
        if (++n >= cap)
            break;
        if (is_container(j) && j->child) {
            if (path_push(&p, j) < 0) {
                n = cap; /* too big to count: big */
                break;
            }
            j = j->child;
            continue;
        }
        while (p.n && j->next == NULL)
            j = p.up[--p.n];
        if (p.n == 0)
            break;
        j = j->next;
    }
    path_free(&p);
    return n;
}

/* ---- printing ---- */

static int put(cn__buf *b, const char *s, size_t n)
{
    return cn__buf_append(b, s, n) ? CN_ENOMEM : 0;
}

/* A string literal, escaped as cJSON escapes it. */
static int put_string(cn__buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t extra = 0, len;
    char *o;

    if (s == NULL)
        return put(b, "\"\"", 2);
    for (len = 0; p[len]; len++) {
        unsigned char c = p[len];
        if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t')
            extra += 1;
        else if (c < 32)
            extra += 5;
    }
    if (cn__buf_reserve(b, len + extra + 2))
        return CN_ENOMEM;
    o = b->data + b->len;
    *o++ = '"';
    if (extra == 0) {
        memcpy(o, s, len);
        o += len;
    } else {
        for (size_t i = 0; i < len; i++) {
            unsigned char c = p[i];
            const char *e = NULL;
            switch (c) {
            case '"':
                e = "\\\"";
                break;
            case '\\':
                e = "\\\\";
                break;
            case '\b':
                e = "\\b";
                break;
            case '\f':
                e = "\\f";
                break;
            case '\n':
                e = "\\n";
                break;
            case '\r':
                e = "\\r";
                break;
            case '\t':
                e = "\\t";
                break;
            default:
                break;
            }
            if (e) {
                *o++ = e[0];
                *o++ = e[1];
            } else if (c < 32) {
                memcpy(o, "\\u00", 4);
                o[4] = hex[c >> 4];
                o[5] = hex[c & 15];
                o += 6;
            } else {
                *o++ = (char)c;
            }
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    return 0;
}

/*
 * A number as cJSON 1.7 prints it: null when not finite, else "%1.15g" if
 * that reads back as the same double (cJSON's comparison, within
 * DBL_EPSILON), else "%1.17g", the locale's decimal point written as '.'.
 * An integer below 1e15 is one "%1.15g" prints digit for digit ("-0" for
 * minus zero): those, the common case, are written here without printf.
 */
static int put_number(cn__buf *b, double d)
{
    char tmp[32];
    int n;

    if (isnan(d) || isinf(d))
        return put(b, "null", 4);
    if (d > -1e15 && d < 1e15 && d == (double)(long long)d) {
        long long v = (long long)d;
        unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
        char *e = tmp + sizeof tmp, *p = e;
        do {
            *--p = (char)('0' + u % 10);
            u /= 10;
        } while (u);
        if (v < 0 || (v == 0 && signbit(d)))
            *--p = '-';
        return put(b, p, (size_t)(e - p));
    }
    n = snprintf(tmp, sizeof tmp, "%1.15g", d);
    {
        double back = strtod(tmp, NULL);
        double big = fabs(back) > fabs(d) ? fabs(back) : fabs(d);
        if (!(fabs(back - d) <= big * DBL_EPSILON))
            n = snprintf(tmp, sizeof tmp, "%1.17g", d);
    }
    if (n < 0 || (size_t)n >= sizeof tmp)
        return CN_EINVAL;
    {
        char point = localeconv()->decimal_point[0];
        if (point != '.')
            for (int i = 0; i < n; i++)
                if (tmp[i] == point)
                    tmp[i] = '.';
    }
    return put(b, tmp, (size_t)n);
}

/* One node: a scalar whole, a container's opening bracket. */
static int put_node(cn__buf *b, const cJSON *j)
{
    switch (j->type & 0xFF) {
    case cJSON_NULL:
        return put(b, "null", 4);
    case cJSON_False:
        return put(b, "false", 5);
    case cJSON_True:
        return put(b, "true", 4);
    case cJSON_Number:
        return put_number(b, j->valuedouble);
    case cJSON_String:
        return put_string(b, j->valuestring);
    case cJSON_Raw:
        return j->valuestring ? put(b, j->valuestring, strlen(j->valuestring)) : CN_EINVAL;
    case cJSON_Array:
        return put(b, "[", 1);
    case cJSON_Object:
        return put(b, "{", 1);
    default:
        return CN_EINVAL;
    }
}

static int put_close(cn__buf *b, const cJSON *c)
{
    return put(b, (c->type & 0xFF) == cJSON_Array ? "]" : "}", 1);
}

int cn__json_print(const cJSON *j, cn__buf *b)
{
    path p;
    int rc = 0;

    if (j == NULL)
        return CN_EINVAL;
    path_init(&p);
    for (;;) {
        /* a member of an object has its key first */
        if (p.n && (p.up[p.n - 1]->type & 0xFF) == cJSON_Object) {
            rc = put_string(b, j->string);
            rc = rc ? rc : put(b, ":", 1);
        }
        rc = rc ? rc : put_node(b, j);
        if (rc)
            break;
        if (is_container(j)) {
            if (j->child) {
                if (path_push(&p, j) < 0) {
                    rc = CN_ENOMEM;
                    break;
                }
                j = j->child;
                continue;
            }
            rc = put_close(b, j);
        }
        /* the last of its siblings closes its container, and so on up */
        while (rc == 0 && p.n && j->next == NULL) {
            j = p.up[--p.n];
            rc = put_close(b, j);
        }
        if (rc || p.n == 0)
            break;
        rc = put(b, ",", 1);
        if (rc)
            break;
        j = j->next;
    }
    path_free(&p);
    return rc;
}

/* ---- deleting ---- */

static void delete_work(void *arg)
{
    cJSON_Delete(arg);
}

static void delete_done(void *arg, int status)
{
    if (status < 0)
        cJSON_Delete(arg); /* no worker took it: the app is going */
}

void cn__json_free(cn_app *app, cJSON *j)
{
    if (j == NULL)
        return;
    if (app && cn__json_nodes(j, CN__JSON_POOL_NODES) >= CN__JSON_POOL_NODES &&
        cn__app_pool_submit_cpu(app, delete_work, delete_done, j) == 0)
        return;
    cJSON_Delete(j);
}
