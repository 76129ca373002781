/*
 * testclient.c -- the in-process test client (canteen/testclient.h).
 *
 * The client holds one end of a socketpair; the app serves the other end
 * as one of its connections (cn__app_adopt_fd), through the same conn.c,
 * parser and dispatch a TCP client gets. The app's loop runs on the
 * caller's thread, one turn at a time, while the client waits: a uv_poll
 * on the client's end wakes that turn when the answer arrives, and a timer
 * bounds the wait. The response is read back with llhttp, as a client
 * would.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>
#include <unistd.h>

#include <llhttp.h>
#include <uv.h>

#include <canteen/uv.h>

#include "app.h"
#include "buf.h"
#include "common.h"

#define DEFAULT_TIMEOUT_MS 30000

struct cn_test_client {
    cn_app *app;
    int fd; /* our end, -1 when closed */
    uv_poll_t *poll;
    uv_timer_t *timer;
    bool ready, timed_out;
};

/* A response being parsed. */
typedef struct reading {
    cn_test_response *out;
    cn__buf field, value, body;
    size_t cap_headers;
    bool in_value, done, head;
} reading;

static void on_close_free(uv_handle_t *h)
{
    free(h);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    cn_test_client *tc = p->data;

    (void)status;
    (void)events;
    tc->ready = true;
}

static void on_timer(uv_timer_t *t)
{
    ((cn_test_client *)t->data)->timed_out = true;
}

static void disconnect(cn_test_client *tc)
{
    if (tc->poll) {
        uv_poll_stop(tc->poll);
        uv_close((uv_handle_t *)tc->poll, on_close_free);
        tc->poll = NULL;
    }
    if (tc->fd >= 0) {
        close(tc->fd);
        tc->fd = -1;
    }
}

static int connect_app(cn_test_client *tc)
{
    int sv[2], rc;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        return uv_translate_sys_error(errno);
    rc = cn__app_adopt_fd(tc->app, sv[1]);
    if (rc < 0) {
        close(sv[0]);
        close(sv[1]);
        return rc;
    }
    tc->poll = malloc(sizeof(*tc->poll));
    if (tc->poll == NULL || uv_poll_init(cn_app_loop(tc->app), tc->poll, sv[0]) < 0) {
        free(tc->poll);
        tc->poll = NULL;
        close(sv[0]);
        return CN_ENOMEM;
    }
    tc->poll->data = tc;
    tc->fd = sv[0];
    return 0;
}

int cn_test_client_new(cn_app *app, cn_test_client **out)
{
    cn_test_client *tc;
    int rc;

    if (app == NULL || out == NULL)
        return CN_EINVAL;
    tc = calloc(1, sizeof(*tc));
    if (tc == NULL)
        return CN_ENOMEM;
    tc->app = app;
    tc->fd = -1;
    tc->timer = malloc(sizeof(*tc->timer));
    if (tc->timer == NULL) {
        free(tc);
        return CN_ENOMEM;
    }
    rc = cn__app_start_inline(app);
    if (rc < 0) {
        free(tc->timer);
        free(tc);
        return rc;
    }
    uv_timer_init(cn_app_loop(app), tc->timer);
    tc->timer->data = tc;
    *out = tc;
    return 0;
}

/* Run the app's loop until our end is ready for `events`, or the deadline. */
static int wait_ready(cn_test_client *tc, int events)
{
    tc->ready = false;
    uv_poll_start(tc->poll, events, on_poll);
    while (!tc->ready && !tc->timed_out)
        cn__app_run_once(tc->app);
    uv_poll_stop(tc->poll);
    return tc->timed_out ? CN_ETIMEDOUT : 0;
}

static int send_all(cn_test_client *tc, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(tc->fd, p, n, MSG_NOSIGNAL);
        if (k > 0) {
            p += k;
            n -= (size_t)k;
        } else if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_ready(tc, UV_WRITABLE);
            if (rc < 0)
                return rc;
        } else if (k < 0 && errno == EINTR) {
            continue;
        } else {
            return CN_EPIPE;
        }
    }
    return 0;
}

/* ---- reading the response ---- */

static reading *rd_of(llhttp_t *p)
{
    return p->data;
}

static int add_header(reading *rd)
{
    cn_test_response *r = rd->out;

    if (r->nheaders == rd->cap_headers) {
        size_t cap = rd->cap_headers ? rd->cap_headers * 2 : 16;
        cn_str *n = realloc(r->header_names, cap * sizeof(*n));
        cn_str *v = n ? realloc(r->header_values, cap * sizeof(*v)) : NULL;
        if (n)
            r->header_names = n;
        if (v == NULL)
            return -1;
        r->header_values = v;
        rd->cap_headers = cap;
    }
    if (cn__buf_append(&rd->field, "", 1) || cn__buf_append(&rd->value, "", 1))
        return -1;
    r->header_names[r->nheaders] = (cn_str){rd->field.data, rd->field.len - 1};
    r->header_values[r->nheaders] = (cn_str){rd->value.data, rd->value.len - 1};
    r->nheaders++;
    rd->field = (cn__buf){0};
    rd->value = (cn__buf){0};
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    reading *rd = rd_of(p);

    if (rd->in_value && add_header(rd) < 0)
        return HPE_USER;
    rd->in_value = false;
    return cn__buf_append(&rd->field, at, n) ? HPE_USER : 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    reading *rd = rd_of(p);

    rd->in_value = true;
    return cn__buf_append(&rd->value, at, n) ? HPE_USER : 0;
}

static int on_headers_complete(llhttp_t *p)
{
    reading *rd = rd_of(p);

    if (rd->in_value && add_header(rd) < 0)
        return HPE_USER;
    rd->in_value = false;
    rd->out->status = p->status_code;
    /* 1xx (100 Continue): not the response; a HEAD's has no body */
    if (p->status_code < 200)
        return 0;
    return rd->head ? 1 : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    return cn__buf_append(&rd_of(p)->body, at, n) ? HPE_USER : 0;
}

static int on_message_complete(llhttp_t *p)
{
    reading *rd = rd_of(p);

    if (p->status_code < 200) {
        /* an interim answer: its headers are not the response's */
        cn_test_response_free(rd->out);
        memset(rd->out, 0, sizeof(*rd->out));
        rd->cap_headers = 0;
        return 0;
    }
    rd->done = true;
    return HPE_PAUSED;
}

static const llhttp_settings_t response_settings = {
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static int read_response(cn_test_client *tc, reading *rd, bool *keep)
{
    llhttp_t parser;
    char buf[16384];
    int rc = 0;

    llhttp_init(&parser, HTTP_RESPONSE, &response_settings);
    parser.data = rd;
    while (!rd->done) {
        ssize_t n = recv(tc->fd, buf, sizeof buf, 0);
        llhttp_errno_t err;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            rc = wait_ready(tc, UV_READABLE);
            if (rc < 0)
                return rc;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            /* the end of a close-delimited body, or of nothing */
            if (llhttp_finish(&parser) == HPE_OK && rd->done)
                break;
            return CN_EPIPE;
        }
        err = llhttp_execute(&parser, buf, (size_t)n);
        if (err != HPE_OK && err != HPE_PAUSED)
            return err == HPE_USER ? CN_ENOMEM : CN_EPIPE;
    }
    *keep = llhttp_should_keep_alive(&parser);
    return 0;
}

static bool has_header(const char *const *headers, const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; headers && headers[i]; i++)
        if (strncasecmp(headers[i], name, n) == 0 && headers[i][n] == ':')
            return true;
    return false;
}

static int build_request(cn__buf *b, const char *method, const char *target,
                         const char *const *headers, const void *body, size_t len)
{
    char num[32];

    if (cn__buf_puts(b, method) || cn__buf_puts(b, " ") || cn__buf_puts(b, target) ||
        cn__buf_puts(b, " HTTP/1.1\r\n"))
        return CN_ENOMEM;
    for (size_t i = 0; headers && headers[i]; i++) {
        if (strstr(headers[i], ": ") == NULL || strpbrk(headers[i], "\r\n"))
            return CN_EBADHEADER;
        if (cn__buf_puts(b, headers[i]) || cn__buf_puts(b, "\r\n"))
            return CN_ENOMEM;
    }
    if (!has_header(headers, "host") && cn__buf_puts(b, "Host: testserver\r\n"))
        return CN_ENOMEM;
    if ((len > 0 || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
         strcmp(method, "PATCH") == 0) &&
        !has_header(headers, "content-length") && !has_header(headers, "transfer-encoding")) {
        snprintf(num, sizeof num, "%zu", len);
        if (cn__buf_puts(b, "Content-Length: ") || cn__buf_puts(b, num) || cn__buf_puts(b, "\r\n"))
            return CN_ENOMEM;
    }
    if (cn__buf_puts(b, "\r\n") || (len && cn__buf_append(b, body, len)))
        return CN_ENOMEM;
    return 0;
}

int cn_test_request(cn_test_client *tc, const char *method, const char *target,
                    const char *const *headers, const void *body, size_t len, int timeout_ms,
                    cn_test_response *out)
{
    cn__buf req = {0};
    reading rd = {.out = out};
    bool keep = false;
    int rc;

    if (tc == NULL || method == NULL || target == NULL || out == NULL || (body == NULL && len))
        return CN_EINVAL;
    memset(out, 0, sizeof(*out));
    rd.head = strcmp(method, "HEAD") == 0;
    rc = build_request(&req, method, target, headers, body, len);
    if (rc == 0 && tc->fd < 0)
        rc = connect_app(tc);
    if (rc < 0) {
        cn__buf_free(&req);
        return rc;
    }
    tc->timed_out = false;
    uv_timer_start(tc->timer, on_timer,
                   (uint64_t)(timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS), 0);
    rc = send_all(tc, req.data, req.len);
    if (rc == 0)
        rc = read_response(tc, &rd, &keep);
    uv_timer_stop(tc->timer);
    cn__buf_free(&req);
    cn__buf_free(&rd.field);
    cn__buf_free(&rd.value);
    if (rc == 0 && (cn__buf_append(&rd.body, "", 1) < 0))
        rc = CN_ENOMEM;
    if (rc < 0) {
        cn__buf_free(&rd.body);
        cn_test_response_free(out);
        disconnect(tc);
        return rc;
    }
    out->body = rd.body.data;
    out->body_len = rd.body.len - 1;
    if (!keep)
        disconnect(tc); /* the app closes its end: the next request reconnects */
    return 0;
}

int cn_test_get(cn_test_client *tc, const char *target, cn_test_response *out)
{
    return cn_test_request(tc, "GET", target, NULL, NULL, 0, 0, out);
}

const char *cn_test_header(const cn_test_response *r, const char *name)
{
    if (r == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < r->nheaders; i++)
        if (cn__ieq(r->header_names[i].ptr, r->header_names[i].len, name))
            return r->header_values[i].ptr;
    return NULL;
}

void cn_test_response_free(cn_test_response *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nheaders; i++) {
        /* both were malloc'd here (add_header): the const is the view's */
        free((void *)(uintptr_t)r->header_names[i].ptr);
        free((void *)(uintptr_t)r->header_values[i].ptr);
    }
    free(r->header_names);
    free(r->header_values);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

int cn_test_client_free(cn_test_client *tc)
{
    int rc;

    if (tc == NULL)
        return 0;
    disconnect(tc);
    uv_close((uv_handle_t *)tc->timer, on_close_free);
    rc = cn__app_stop_inline(tc->app);
    free(tc);
    return rc;
}
