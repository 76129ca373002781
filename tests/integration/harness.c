/* harness.c -- see harness.h. */
#include "harness.h"

#include "app.h" /* cn__app_free_checked */

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "demo.h"

/* Bounds that keep every loop finite. */
#define H_MAX_HEAD (1024 * 1024)
#define H_JOIN_MS 15000

int64_t h_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining(int64_t deadline)
{
    int64_t r = deadline - h_now_ms();
    return r < 0 ? 0 : (int)r;
}

/* malloc'd vprintf; its length in *len. */
static char *vstrf(size_t *len, const char *fmt, va_list ap)
{
    va_list ap2;
    int n;
    char *p;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    assert_true(n >= 0);
    p = malloc((size_t)n + 1);
    assert_non_null(p);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    *len = (size_t)n;
    return p;
}

char *h_strf(const char *fmt, ...)
{
    va_list ap;
    size_t n;
    char *p;

    va_start(ap, fmt);
    p = vstrf(&n, fmt, ap);
    va_end(ap);
    return p;
}

/* ------------------------------------------------------------------------ */
/* Server                                                                    */
/* ------------------------------------------------------------------------ */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    /*
     * The server runs in this process. Canteen does not (yet) guard its own
     * writes against SIGPIPE, so a client that resets mid-response would
     * kill the whole test binary; test_lifecycle's test_sigpipe_not_fatal
     * checks that in a child process with the default disposition. Here it
     * is ignored so that one bug does not hide every other result.
     */
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    atexit(curl_global_cleanup);
}

cn_config h_fast_config(void)
{
    cn_config c = {0};
    c.header_timeout_ms = 300;
    c.keepalive_timeout_ms = 300;
    c.shutdown_timeout_ms = 2000;
    return c;
}

static void *server_main(void *arg)
{
    h_server *s = arg;
    s->run_rc = cn_app_run(s->app);
    return NULL;
}

h_server *h_start(const cn_config *cfg, const char *host, h_setup_fn setup, void *arg)
{
    h_server *s = calloc(1, sizeof(*s));
    cn_config c = cfg ? *cfg : h_fast_config();

    pthread_once(&curl_once, curl_init_once);
    assert_non_null(s);
    snprintf(s->host, sizeof s->host, "%s", host ? host : "127.0.0.1");
    s->run_rc = INT32_MIN;
    s->app = cn_app_new(&c);
    assert_non_null(s->app);
    assert_int_equal(demo_register(s->app), 0);
    if (setup)
        assert_int_equal(setup(s->app, arg), 0);
    assert_int_equal(cn_app_listen(s->app, s->host, 0), 0);
    s->port = cn_app_port(s->app);
    assert_true(s->port > 0 && s->port < 65536);
    assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
    s->thread_started = true;
    /* the listener already queues connections; an answer proves the loop runs */
    h_assert_healthy(s);
    return s;
}

int h_join(h_server *s, int timeout_ms)
{
    struct timespec ts;

    if (!s->thread_started)
        return s->run_rc;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    if (pthread_timedjoin_np(s->thread, NULL, &ts) != 0)
        return INT32_MIN;
    s->thread_started = false;
    return s->run_rc;
}

static void close_conns(h_server *s)
{
    while (s->conns)
        h_close(s->conns);
}

void h_join_and_free(h_server *s)
{
    int rc;

    if (s == NULL)
        return;
    close_conns(s);
    rc = h_join(s, H_JOIN_MS);
    if (rc == INT32_MIN)
        fail_msg("server thread did not end within %d ms after cn_app_stop", H_JOIN_MS);
    assert_int_equal(rc, 0);
    /* as libuv's own tests do: the loop must close with no handle left */
    assert_int_equal(cn__app_free_checked(s->app), 0);
    free(s);
}

void h_stop(h_server *s)
{
    int rc;

    if (s == NULL)
        return;
    close_conns(s);
    if (s->thread_started) {
        rc = cn_app_stop(s->app);
        /* CN_ESTATE: a test already stopped it and it is winding down */
        assert_true(rc == 0 || rc == CN_ESTATE);
    }
    h_join_and_free(s);
}

void h_assert_run_ended(void **state, h_server *s)
{
    assert_int_equal(h_join(s, H_TIMEOUT_MS), 0);
    *state = NULL;
    h_join_and_free(s);
}

void h_stop_expect_dropped(void **state, h_server *s, h_conn *c, int64_t min_ms, int64_t max_ms)
{
    int64_t t0 = h_now_ms(), dt;

    assert_int_equal(cn_app_stop(s->app), 0);
    assert_int_equal(h_expect_eof(c, H_TIMEOUT_MS), H_OK);
    dt = h_now_ms() - t0;
    assert_true(dt >= min_ms);
    assert_true(dt < max_ms);
    h_assert_run_ended(state, s);
}

int h_teardown(void **state)
{
    h_server *s = *state;
    *state = NULL;
    h_stop(s);
    return 0;
}

cn_stats h_stats(h_server *s)
{
    cn_stats st;
    cn_app_stats(s->app, &st);
    return st;
}

bool h_wait_active(h_server *s, uint64_t want, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;

    for (int i = 0; i < 100000; i++) {
        if (h_stats(s).connections_active == want)
            return true;
        if (h_now_ms() >= deadline)
            break;
        /* a bounded poll of observable state: 5 ms between looks */
        poll(NULL, 0, 5);
    }
    return h_stats(s).connections_active == want;
}

uint64_t h_wait_accept_pauses_past(h_server *s, uint64_t from, int timeout_ms, int64_t *at)
{
    int64_t deadline = h_now_ms() + timeout_ms, t = h_now_ms();
    uint64_t n = h_stats(s).accept_pauses;

    for (int i = 0; i < 100000 && n <= from && t < deadline; i++) {
        poll(NULL, 0, 2); /* a bounded look at a counter, 2 ms apart */
        t = h_now_ms();
        n = h_stats(s).accept_pauses;
    }
    if (at)
        *at = t;
    return n;
}

void h_assert_healthy(h_server *s)
{
    h_conn *c = h_open(s);
    h_response r;

    h_sends(c, "GET /health HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"status\":\"ok\"}");
    h_response_free(&r);
    h_close(c);
}

/* ------------------------------------------------------------------------ */
/* Raw sockets                                                               */
/* ------------------------------------------------------------------------ */

static int fill_addr(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    if (strchr(host, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
            return -EINVAL;
        *len = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
            return -EINVAL;
        *len = sizeof(*a);
    }
    return 0;
}

static int connect_fd(const char *host, int port, int rcvbuf)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd, rc, err = 0;
    socklen_t elen = sizeof err;
    struct pollfd p;

    if ((rc = fill_addr(host, port, &ss, &len)) < 0)
        return rc;
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
        if (errno != EINPROGRESS) {
            err = errno;
            close(fd);
            return -err;
        }
        p.fd = fd;
        p.events = POLLOUT;
        p.revents = 0;
        if (poll(&p, 1, H_TIMEOUT_MS) != 1) {
            close(fd);
            return -ETIMEDOUT;
        }
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
        if (err) {
            close(fd);
            return -err;
        }
    }
    return fd;
}

int h_connect_fd(const char *host, int port)
{
    return connect_fd(host, port, 0);
}

static h_conn *open_conn(const char *host, int port, int rcvbuf)
{
    h_conn *c = calloc(1, sizeof(*c));
    int fd;

    assert_non_null(c);
    fd = connect_fd(host, port, rcvbuf);
    if (fd < 0)
        fail_msg("connect to %s port %d: %s", host, port, strerror(-fd));
    c->fd = fd;
    return c;
}

h_conn *h_open_at(const char *host, int port)
{
    return open_conn(host, port, 0);
}

h_conn *h_open_rcvbuf(h_server *s, int rcvbuf)
{
    h_conn *c = open_conn(s->host, s->port, rcvbuf);

    c->srv = s;
    c->next = s->conns;
    s->conns = c;
    return c;
}

h_conn *h_open(h_server *s)
{
    return h_open_rcvbuf(s, 0);
}

void h_close(h_conn *c)
{
    if (c == NULL)
        return;
    for (h_conn **pp = c->srv ? &c->srv->conns : NULL; pp && *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    close(c->fd);
    free(c->buf);
    free(c);
}

int h_try_send(h_conn *c, const void *data, size_t len)
{
    const char *p = data;
    int64_t deadline = h_now_ms() + H_TIMEOUT_MS;

    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            deadline = h_now_ms() + H_TIMEOUT_MS; /* progress */
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pf = {.fd = c->fd, .events = POLLOUT};
            int t = remaining(deadline);
            if (t == 0 || poll(&pf, 1, t) == 0)
                return -ETIMEDOUT;
            continue;
        }
        return n < 0 ? -errno : -EIO;
    }
    return 0;
}

void h_send(h_conn *c, const void *data, size_t len)
{
    int rc = h_try_send(c, data, len);
    if (rc < 0)
        fail_msg("send of %zu bytes failed: %s", len, strerror(-rc));
}

void h_sends(h_conn *c, const char *s)
{
    h_send(c, s, strlen(s));
}

void h_sendf(h_conn *c, const char *fmt, ...)
{
    va_list ap;
    size_t n;
    char *p;

    va_start(ap, fmt);
    p = vstrf(&n, fmt, ap);
    va_end(ap);
    h_send(c, p, n);
    free(p);
}

ssize_t h_recv_more(h_conn *c, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;

    if (c->eof)
        return H_EOF;
    for (int i = 0; i < 1000; i++) {
        struct pollfd pf = {.fd = c->fd, .events = POLLIN};
        int pr = poll(&pf, 1, remaining(deadline));
        ssize_t n;

        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            return H_TIMEOUT;
        if (c->cap - c->len < 65536) {
            size_t cap = c->cap ? c->cap * 2 : 131072;
            while (cap - c->len < 65536)
                cap *= 2;
            c->buf = realloc(c->buf, cap + 1);
            assert_non_null(c->buf);
            c->cap = cap;
        }
        n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (n > 0) {
            c->len += (size_t)n;
            c->buf[c->len] = 0;
            return n;
        }
        if (n == 0) {
            c->eof = true;
            return H_EOF;
        }
        if (errno == EINTR || errno == EAGAIN)
            continue;
        c->eof = true;
        c->reset = (errno == ECONNRESET);
        return H_EOF;
    }
    return H_TIMEOUT;
}

void h_consume(h_conn *c, size_t n)
{
    if (n >= c->len) {
        c->len = 0;
    } else {
        memmove(c->buf, c->buf + n, c->len - n);
        c->len -= n;
    }
    if (c->buf)
        c->buf[c->len] = 0;
}

static char *memstr(const char *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    if (n < k)
        return NULL;
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(hay + i, needle, k) == 0)
            return (char *)(uintptr_t)(hay + i);
    return NULL;
}

void h_response_free(h_response *r)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free(r->headers);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

static bool ieq(const char *a, const char *b)
{
    return strcasecmp(a, b) == 0;
}

const char *h_header_get(const h_response *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (ieq(r->headers[i].name, name))
            return r->headers[i].value;
    return NULL;
}

size_t h_header_count(const h_response *r, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < r->nheaders; i++)
        if (ieq(r->headers[i].name, name))
            n++;
    return n;
}

bool h_connection_has(const h_response *r, const char *token)
{
    size_t tl = strlen(token);

    for (size_t i = 0; i < r->nheaders; i++) {
        const char *v;
        if (!ieq(r->headers[i].name, "connection"))
            continue;
        for (v = r->headers[i].value; *v;) {
            size_t n;
            while (*v == ' ' || *v == '\t' || *v == ',')
                v++;
            n = strcspn(v, " \t,");
            if (n == tl && strncasecmp(v, token, tl) == 0)
                return true;
            v += n;
        }
    }
    return false;
}

/* Parse the head in buf[0..hlen) (ending with CRLFCRLF) into r. */
static int parse_head(const char *buf, size_t hlen, h_response *r)
{
    const char *p = buf, *end = buf + hlen - 2; /* stop at the final CRLF */
    const char *eol = memstr(p, (size_t)(end - p), "\r\n");
    int status;
    char reason[64];

    memset(r, 0, sizeof(*r));
    r->content_length = -1;
    if (eol == NULL || eol - p < 12 || memcmp(p, "HTTP/1.", 7) != 0 ||
        !isdigit((unsigned char)p[7]) || p[8] != ' ')
        return H_BAD;
    r->minor = p[7] - '0';
    if (!isdigit((unsigned char)p[9]) || !isdigit((unsigned char)p[10]) ||
        !isdigit((unsigned char)p[11]))
        return H_BAD;
    status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    reason[0] = 0;
    if (eol - p > 13) {
        size_t rl = (size_t)(eol - (p + 13));
        if (rl >= sizeof reason)
            rl = sizeof reason - 1;
        memcpy(reason, p + 13, rl);
        reason[rl] = 0;
    }
    r->status = status;
    snprintf(r->reason, sizeof r->reason, "%s", reason);
    for (p = eol + 2; p < end;) {
        const char *colon, *v, *ve;
        h_header *h;
        eol = memstr(p, (size_t)(end + 2 - p), "\r\n");
        if (eol == NULL)
            return H_BAD;
        colon = memchr(p, ':', (size_t)(eol - p));
        if (colon == NULL || colon == p)
            return H_BAD;
        for (const char *q = p; q < colon; q++)
            if (*q <= ' ' || *q >= 127)
                return H_BAD;
        v = colon + 1;
        while (v < eol && (*v == ' ' || *v == '\t'))
            v++;
        ve = eol;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        h = realloc(r->headers, (r->nheaders + 1) * sizeof(*h));
        assert_non_null(h);
        r->headers = h;
        h[r->nheaders].name = strndup(p, (size_t)(colon - p));
        h[r->nheaders].value = strndup(v, (size_t)(ve - v));
        r->nheaders++;
        p = eol + 2;
    }
    return H_OK;
}

/*
 * Decode a chunked body at buf[0..n). Returns the bytes the encoding took,
 * 0 if incomplete, or H_BAD. The decoded body goes to *out (malloc'd).
 */
static long decode_chunked(const char *buf, size_t n, char **out, size_t *olen)
{
    size_t pos = 0, blen = 0;
    char *body = NULL;

    for (int guard = 0; guard < 1000000; guard++) {
        const char *eol = memstr(buf + pos, n - pos, "\r\n");
        unsigned long long sz = 0;
        const char *q;
        if (eol == NULL)
            goto incomplete;
        for (q = buf + pos; q < eol && isxdigit((unsigned char)*q); q++) {
            int d = isdigit((unsigned char)*q) ? *q - '0' : (tolower((unsigned char)*q) - 'a' + 10);
            sz = sz * 16 + (unsigned)d;
            if (sz > (1ull << 40))
                goto bad;
        }
        if (q == buf + pos)
            goto bad;
        pos = (size_t)(eol - buf) + 2;
        if (sz == 0) {
            /* trailers until an empty line */
            for (int t = 0; t < 1000; t++) {
                eol = memstr(buf + pos, n - pos, "\r\n");
                if (eol == NULL)
                    goto incomplete;
                if (eol == buf + pos) {
                    pos += 2;
                    *out = body ? body : calloc(1, 1);
                    if (body)
                        body[blen] = 0;
                    *olen = blen;
                    return (long)pos;
                }
                pos = (size_t)(eol - buf) + 2;
            }
            goto bad;
        }
        if (n - pos < sz + 2)
            goto incomplete;
        if (memcmp(buf + pos + sz, "\r\n", 2) != 0)
            goto bad;
        body = realloc(body, blen + sz + 1);
        assert_non_null(body);
        memcpy(body + blen, buf + pos, sz);
        blen += sz;
        pos += sz + 2;
    }
bad:
    free(body);
    return H_BAD;
incomplete:
    free(body);
    return 0;
}

/* h_recv_more bounded by an absolute deadline, even if bytes keep coming. */
static int recv_until(h_conn *c, int64_t deadline)
{
    if (h_now_ms() > deadline)
        return H_TIMEOUT;
    return (int)h_recv_more(c, remaining(deadline));
}

int h_read_response_ex(h_conn *c, h_response *r, int timeout_ms, bool head_request)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    char *hend;
    size_t hlen;
    int rc;

    memset(r, 0, sizeof(*r));
    for (;;) {
        hend = c->len ? memstr(c->buf, c->len, "\r\n\r\n") : NULL;
        if (hend)
            break;
        if (c->len > H_MAX_HEAD)
            return H_BAD;
        rc = recv_until(c, deadline);
        if (rc == H_EOF || rc == H_TIMEOUT)
            return rc;
    }
    hlen = (size_t)(hend - c->buf) + 4;
    rc = parse_head(c->buf, hlen, r);
    if (rc != H_OK) {
        h_response_free(r);
        return rc;
    }
    {
        const char *cl = h_header_get(r, "content-length");
        const char *te = h_header_get(r, "transfer-encoding");
        bool no_body = head_request || r->status < 200 || r->status == 204 || r->status == 304;
        if (cl) {
            char *e;
            r->has_content_length = true;
            r->content_length = strtoll(cl, &e, 10);
            if (*e || r->content_length < 0 || e == cl) {
                h_response_free(r);
                return H_BAD;
            }
        }
        if (te && strcasestr(te, "chunked"))
            r->chunked = true;
        if (no_body) {
            r->body = calloc(1, 1);
            h_consume(c, hlen);
            return H_OK;
        }
        if (r->chunked) {
            for (;;) {
                char *body = NULL;
                size_t blen = 0;
                long used = decode_chunked(c->buf + hlen, c->len - hlen, &body, &blen);
                if (used < 0) {
                    h_response_free(r);
                    return H_BAD;
                }
                if (used > 0) {
                    r->body = body;
                    r->body_len = blen;
                    h_consume(c, hlen + (size_t)used);
                    return H_OK;
                }
                rc = recv_until(c, deadline);
                if (rc == H_EOF || rc == H_TIMEOUT) {
                    h_response_free(r);
                    return rc;
                }
            }
        }
        if (r->has_content_length) {
            size_t need = hlen + (size_t)r->content_length;
            while (c->len < need) {
                rc = recv_until(c, deadline);
                if (rc == H_EOF || rc == H_TIMEOUT) {
                    h_response_free(r);
                    return rc;
                }
            }
            r->body = malloc((size_t)r->content_length + 1);
            assert_non_null(r->body);
            memcpy(r->body, c->buf + hlen, (size_t)r->content_length);
            r->body[r->content_length] = 0;
            r->body_len = (size_t)r->content_length;
            h_consume(c, need);
            return H_OK;
        }
        /* close-delimited */
        for (;;) {
            rc = recv_until(c, deadline);
            if (rc == H_TIMEOUT) {
                h_response_free(r);
                return rc;
            }
            if (rc == H_EOF)
                break;
        }
        r->body_len = c->len - hlen;
        r->body = malloc(r->body_len + 1);
        assert_non_null(r->body);
        memcpy(r->body, c->buf + hlen, r->body_len);
        r->body[r->body_len] = 0;
        h_consume(c, c->len);
        return H_OK;
    }
}

int h_read_response(h_conn *c, h_response *r, int timeout_ms)
{
    return h_read_response_ex(c, r, timeout_ms, false);
}

int h_read_responses(h_conn *c, int max, int timeout_ms, h_response *out)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    int n = 0;

    for (; n < max; n++) {
        h_response r;
        if (h_read_response(c, &r, remaining(deadline)) != H_OK)
            break;
        if (out)
            out[n] = r;
        else
            h_response_free(&r);
    }
    return n;
}

int h_expect_eof(h_conn *c, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;

    if (c->len > 0)
        return H_DATA;
    for (int i = 0; i < 100000; i++) {
        ssize_t n = h_recv_more(c, remaining(deadline));
        if (n > 0)
            return H_DATA;
        if (n == H_EOF)
            return H_OK;
        if (n == H_TIMEOUT)
            return H_TIMEOUT;
    }
    return H_TIMEOUT;
}

int h_expect_quiet(h_conn *c, int quiet_ms)
{
    ssize_t n;

    if (c->len > 0)
        return H_DATA;
    n = h_recv_more(c, quiet_ms);
    if (n > 0)
        return H_DATA;
    return (int)n;
}

void h_roundtrip(h_server *s, const char *raw, h_response *r)
{
    h_conn *c = h_open(s);
    int rc;

    h_sends(c, raw);
    rc = h_read_response(c, r, H_TIMEOUT_MS);
    if (rc != H_OK)
        fail_msg("no response (%d) to: %s", rc, raw);
    h_close(c);
}

int h_probe_rejected(h_server *s, const char *raw, size_t len, int status, char *why, size_t whylen)
{
    h_conn *c = h_open(s);
    h_response r;
    int rc, bad = 1;

    why[0] = 0;
    if (h_try_send(c, raw, len) < 0) {
        /* the server may close early: what it answered is still readable */
    }
    rc = h_read_response(c, &r, H_TIMEOUT_MS);
    if (rc != H_OK) {
        snprintf(why, whylen, "no response (%d)", rc);
        goto out;
    }
    if (r.status != status) {
        snprintf(why, whylen, "status %d (body %.100s), expected %d", r.status, r.body, status);
        h_response_free(&r);
        goto out;
    }
    if (!h_connection_has(&r, "close")) {
        snprintf(why, whylen, "status %d without Connection: close", r.status);
        h_response_free(&r);
        goto out;
    }
    h_assert_standard_headers(&r, false);
    h_response_free(&r);
    rc = h_expect_eof(c, H_TIMEOUT_MS);
    if (rc == H_DATA) {
        snprintf(why, whylen, "the request after it was answered: %.60s", c->buf);
        goto out;
    }
    if (rc != H_OK) {
        snprintf(why, whylen, "no EOF after the rejection (%d)", rc);
        goto out;
    }
    bad = 0;
out:
    h_close(c);
    h_assert_healthy(s);
    return bad;
}

void h_expect_rejected(h_server *s, const char *raw, size_t len, int status)
{
    char why[256];

    if (h_probe_rejected(s, raw, len, status, why, sizeof why))
        fail_msg("%s", why);
}

void h_expect_all_rejected(h_server *s, const h_bad_case *cases, size_t n)
{
    int failed = 0;

    for (size_t i = 0; i < n; i++) {
        char why[256];
        if (h_probe_rejected(s, cases[i].raw, cases[i].len, cases[i].status, why, sizeof why)) {
            print_error("case \"%s\": %s\n", cases[i].name, why);
            failed++;
        }
    }
    if (failed)
        fail_msg("%d of %zu cases failed", failed, n);
}

/* What every response carries, whichever client read it (see harness.h). */
static void check_standard(int status, const char *server, size_t nserver, const char *date,
                           size_t ndate, const char *cl, size_t ncl, long long body_len,
                           bool head_request)
{
    struct tm tm;
    const char *end;
    time_t t, now = time(NULL);

    assert_non_null(server);
    assert_string_equal(server, "canteen");
    assert_int_equal(nserver, 1);
    assert_non_null(date);
    assert_int_equal(ndate, 1);
    /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
    assert_int_equal(strlen(date), 29);
    memset(&tm, 0, sizeof tm);
    end = strptime(date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    assert_non_null(end);
    assert_int_equal(*end, 0);
    t = timegm(&tm);
    assert_true(t >= now - 5 && t <= now + 5);
    if (status >= 200 && status != 204) {
        assert_non_null(cl);
        assert_int_equal(ncl, 1);
        if (!head_request)
            assert_int_equal(body_len, atoll(cl));
    }
}

void h_assert_standard_headers(const h_response *r, bool head_request)
{
    check_standard(r->status, h_header_get(r, "server"), h_header_count(r, "server"),
                   h_header_get(r, "date"), h_header_count(r, "date"),
                   h_header_get(r, "content-length"), h_header_count(r, "content-length"),
                   (long long)r->body_len, head_request);
}

/* ------------------------------------------------------------------------ */
/* libcurl                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct growbuf {
    char **data;
    size_t *len;
} growbuf;

static size_t on_curl_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    growbuf *g = ud;
    size_t n = size * nmemb;
    char *p = realloc(*g->data, *g->len + n + 1);

    if (p == NULL)
        return 0;
    memcpy(p + *g->len, ptr, n);
    *g->len += n;
    p[*g->len] = 0;
    *g->data = p;
    return n;
}

CURL *h_curl_new(void)
{
    CURL *e;

    pthread_once(&curl_once, curl_init_once);
    e = curl_easy_init();
    assert_non_null(e);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    return e;
}

static char *make_url(h_server *s, const char *path)
{
    if (strchr(s->host, ':'))
        return h_strf("http://[%s]:%d%s", s->host, s->port, path);
    return h_strf("http://%s:%d%s", s->host, s->port, path);
}

static int curl_do(CURL *e, h_server *s, const char *path, h_http *out, struct curl_slist *hdrs)
{
    char *url = make_url(s, path);
    growbuf gb = {&out->body, &out->body_len}, gh = {&out->headers, &out->headers_len};
    CURLcode rc;

    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_curl_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &gb);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_curl_data);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &gh);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    rc = curl_easy_perform(e);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &out->status);
    curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &out->num_connects);
    curl_easy_getinfo(e, CURLINFO_LOCAL_PORT, &out->local_port);
    if (out->body == NULL)
        out->body = calloc(1, 1);
    free(url);
    return (int)rc;
}

int h_curl_get(CURL *easy, h_server *s, const char *path, h_http *out)
{
    memset(out, 0, sizeof(*out));
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
    return curl_do(easy, s, path, out, NULL);
}

int h_curl_post(CURL *easy, h_server *s, const char *path, const char *body,
                const char *content_type, h_http *out)
{
    struct curl_slist *h = NULL;
    char *ct = h_strf("Content-Type: %s", content_type ? content_type : "application/json");
    int rc;

    memset(out, 0, sizeof(*out));
    h = curl_slist_append(h, ct);
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    rc = curl_do(easy, s, path, out, h);
    curl_slist_free_all(h);
    free(ct);
    return rc;
}

void h_http_free(h_http *h)
{
    free(h->body);
    free(h->headers);
    memset(h, 0, sizeof(*h));
}

int h_dead_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    assert_true(fd >= 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

void h_block_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

bool h_ipv6_available(void)
{
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok;

    if (fd < 0)
        return false;
    ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* ------------------------------------------------------------------------ */
/* Shared test routes                                                        */
/* ------------------------------------------------------------------------ */

static char big_body[H_BIG_SIZE];
static pthread_once_t big_once = PTHREAD_ONCE_INIT;

static void big_init(void)
{
    for (size_t i = 0; i < H_BIG_SIZE; i++)
        big_body[i] = (char)('a' + i % 26);
}

bool h_big_body_ok(const char *body, size_t len)
{
    pthread_once(&big_once, big_init);
    return len == H_BIG_SIZE && memcmp(body, big_body, H_BIG_SIZE) == 0;
}

static int rt_big(cn_req *req, cn_res *res)
{
    (void)req;
    pthread_once(&big_once, big_init);
    return cn_res_bytes(res, 200, big_body, H_BIG_SIZE, "text/plain");
}

static int rt_param(cn_req *req, cn_res *res)
{
    const char *v = cn_req_param(req, "name");
    return cn_res_text(res, 200, v ? v : "(null)");
}

static int rt_path(cn_req *req, cn_res *res)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "path", cn_req_path(req));
    cJSON_AddStringToObject(o, "target", cn_req_target(req));
    cJSON_AddStringToObject(o, "rest", cn_req_param(req, "rest"));
    return cn_res_json(res, 200, o);
}

static void add_str_or_null(cJSON *o, const char *k, const char *v)
{
    if (v)
        cJSON_AddStringToObject(o, k, v);
    else
        cJSON_AddNullToObject(o, k);
}

static int rt_query(cn_req *req, cn_res *res)
{
    cJSON *o = cJSON_CreateObject();
    int64_t n = 0;
    int rc;

    add_str_or_null(o, "name", cn_req_query(req, "name"));
    add_str_or_null(o, "flag", cn_req_query(req, "flag"));
    add_str_or_null(o, "missing", cn_req_query(req, "missing"));
    add_str_or_null(o, "x", cn_req_query(req, "x"));
    rc = cn_req_query_int(req, "n", &n);
    if (rc == 0)
        cJSON_AddNumberToObject(o, "n", (double)n);
    else
        cJSON_AddStringToObject(o, "n", cn_err_name(rc));
    return cn_res_json(res, 200, o);
}

static int rt_header(cn_req *req, cn_res *res)
{
    cJSON *o = cJSON_CreateObject();
    add_str_or_null(o, "lower", cn_req_header(req, "x-custom-header"));
    add_str_or_null(o, "upper", cn_req_header(req, "X-CUSTOM-HEADER"));
    add_str_or_null(o, "mixed", cn_req_header(req, "X-Custom-Header"));
    add_str_or_null(o, "first", cn_req_header(req, "x-dup"));
    cJSON_AddNumberToObject(o, "count", (double)cn_req_header_count(req));
    return cn_res_json(res, 200, o);
}

static int rt_nocontent(cn_req *req, cn_res *res)
{
    (void)req;
    return cn_res_text(res, 204, "this must not be sent");
}

static int rt_fail(cn_req *req, cn_res *res)
{
    (void)req;
    (void)res;
    return CN_EINVAL;
}

static int rt_none(cn_req *req, cn_res *res)
{
    (void)req;
    (void)res;
    return 0;
}

static int rt_raw(cn_req *req, cn_res *res)
{
    cn_str b = cn_req_body(req);
    char *n = cn_req_sprintf(req, "%zu", b.len);
    int rc = cn_res_header(res, "X-Body-Length", n);
    if (rc < 0)
        return rc;
    return cn_res_bytes(res, 200, b.ptr, b.len, NULL);
}

int h_test_routes(cn_app *app, void *arg)
{
    int rc = 0;
    (void)arg;
    rc = rc ? rc : cn_app_route(app, "GET /t/big", rt_big, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/param/{name}", rt_param, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/path/{rest}", rt_path, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/query", rt_query, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/header", rt_header, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/nocontent", rt_nocontent, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/fail", rt_fail, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/none", rt_none, NULL);
    rc = rc ? rc : cn_app_route(app, "POST /t/raw", rt_raw, NULL);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Polling test-global state                                                 */
/* ------------------------------------------------------------------------ */

void h_nap_ms(int ms)
{
    struct timespec ts = {0, (long)ms * 1000000L};
    nanosleep(&ts, NULL);
}

void h_assert_settles(h_server *s)
{
    bool ok =
        H_WAIT_UNTIL(h_stats(s).coroutines_live == 0 && h_stats(s).requests_active == 0, 3000);
    if (!ok) {
        cn_stats st = h_stats(s);
        fail_msg("server did not settle: coroutines_live=%llu requests_active=%llu",
                 (unsigned long long)st.coroutines_live, (unsigned long long)st.requests_active);
    }
}

int h_noop(void *arg)
{
    (void)arg;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Captured log lines                                                        */
/* ------------------------------------------------------------------------ */

/* The hook is process-wide and may run on any thread. */
#define H_LOG_MAX 256
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char *log_lines[H_LOG_MAX];
static int log_levels[H_LOG_MAX];
static int log_n;

static void capture_log(int level, const char *msg, void *data)
{
    (void)data;
    pthread_mutex_lock(&log_mu);
    if (log_n < H_LOG_MAX) {
        log_lines[log_n] = strdup(msg);
        log_levels[log_n] = level;
        log_n++;
    }
    pthread_mutex_unlock(&log_mu);
    fprintf(stderr, "[canteen log %d] %s\n", level, msg);
}

void h_log_capture_start(void)
{
    cn_log_set_handler(capture_log, NULL);
}

void h_log_capture_stop(void)
{
    cn_log_set_handler(NULL, NULL);
    h_log_reset();
}

void h_log_reset(void)
{
    pthread_mutex_lock(&log_mu);
    for (int i = 0; i < log_n; i++)
        free(log_lines[i]);
    log_n = 0;
    pthread_mutex_unlock(&log_mu);
}

int h_log_count(int level, const char *a, const char *b)
{
    int n = 0;

    pthread_mutex_lock(&log_mu);
    for (int i = 0; i < log_n; i++)
        if ((level < 0 || log_levels[i] == level) && (a == NULL || strstr(log_lines[i], a)) &&
            (b == NULL || strstr(log_lines[i], b)))
            n++;
    pthread_mutex_unlock(&log_mu);
    return n;
}

void h_log_find(const char *a, char *buf, size_t size)
{
    buf[0] = 0;
    pthread_mutex_lock(&log_mu);
    for (int i = 0; i < log_n; i++)
        if (strstr(log_lines[i], a)) {
            snprintf(buf, size, "%s", log_lines[i]);
            break;
        }
    pthread_mutex_unlock(&log_mu);
}

/* ------------------------------------------------------------------------ */
/* JSON over raw sockets                                                     */
/* ------------------------------------------------------------------------ */

h_conn *h_send_get(h_server *s, const char *path)
{
    h_conn *c = h_open(s);
    h_sendf(c, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    return c;
}

cJSON *h_read_json(h_conn *c, int status)
{
    h_response r;
    cJSON *j;
    int rc = h_read_response(c, &r, H_TIMEOUT_MS);

    if (rc != H_OK)
        fail_msg("no response (%d)", rc);
    if (r.status != status)
        fail_msg("status %d, expected %d; body %s", r.status, status, r.body);
    j = cJSON_Parse(r.body);
    if (j == NULL)
        fail_msg("body is not JSON: %s", r.body);
    h_response_free(&r);
    return j;
}

cJSON *h_get_json(h_server *s, const char *path, int status)
{
    h_conn *c = h_send_get(s, path);
    cJSON *j = h_read_json(c, status);
    h_close(c);
    return j;
}

int64_t h_jint(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v))
        fail_msg("no number \"%s\" in the answer", key);
    return (int64_t)v->valuedouble;
}

void h_assert_code(const cJSON *o, const char *key, int want)
{
    int got = (int)h_jint(o, key);
    if (got != want)
        fail_msg("%s: got %s (%d), expected %s (%d)", key, cn_err_name(got), got, cn_err_name(want),
                 want);
}

/* ------------------------------------------------------------------------ */
/* One request, one response                                                 */
/* ------------------------------------------------------------------------ */

void h_request(h_server *s, const char *method, const char *target, const char *extra,
               h_response *r)
{
    h_conn *c = h_open(s);
    int rc;

    h_sendf(c, "%s %s HTTP/1.1\r\nHost: t\r\n%s\r\n", method, target, extra ? extra : "");
    rc = h_read_response_ex(c, r, 30000, strcmp(method, "HEAD") == 0);
    if (rc != H_OK)
        fail_msg("no response (%d) to %s %s", rc, method, target);
    h_close(c);
}

/* A header `name` whose value is `got` (NULL: none) must be `want`. */
static void check_header(const char *name, const char *got, const char *want)
{
    if (got == NULL)
        fail_msg("no %s header (expected '%s')", name, want);
    if (strcmp(got, want) != 0)
        fail_msg("%s: '%s', expected '%s'", name, got, want);
}

void h_assert_header(const h_response *r, const char *name, const char *want)
{
    check_header(name, h_header_get(r, name), want);
}

/* ---- the trace ---- */

static pthread_mutex_t trace_mu = PTHREAD_MUTEX_INITIALIZER;
static char trace_buf[512];

void h_trace(const char *s)
{
    pthread_mutex_lock(&trace_mu);
    strncat(trace_buf, s, sizeof trace_buf - strlen(trace_buf) - 1);
    pthread_mutex_unlock(&trace_mu);
}

void h_trace_reset(void)
{
    pthread_mutex_lock(&trace_mu);
    trace_buf[0] = 0;
    pthread_mutex_unlock(&trace_mu);
}

static void trace_copy(char got[sizeof trace_buf])
{
    pthread_mutex_lock(&trace_mu);
    memcpy(got, trace_buf, sizeof trace_buf);
    pthread_mutex_unlock(&trace_mu);
}

bool h_trace_is(const char *want)
{
    char got[sizeof trace_buf];

    trace_copy(got);
    return strcmp(got, want) == 0;
}

bool h_trace_has(const char *part)
{
    char got[sizeof trace_buf];

    trace_copy(got);
    return strstr(got, part) != NULL;
}

void h_assert_trace(const char *want)
{
    char got[sizeof trace_buf];

    trace_copy(got);
    assert_string_equal(got, want);
}

/* ---- the in-process test client ---- */

h_client *h_tc_start(const cn_config *cfg, h_setup_fn setup, void *arg)
{
    h_client *c = calloc(1, sizeof(*c));
    cn_config conf = cfg ? *cfg : h_fast_config();

    /* the routes fetch from curl, as they do under h_start */
    pthread_once(&curl_once, curl_init_once);
    assert_non_null(c);
    c->app = cn_app_new(&conf);
    assert_non_null(c->app);
    assert_int_equal(demo_register(c->app), 0);
    if (setup)
        assert_int_equal(setup(c->app, arg), 0);
    assert_int_equal(cn_test_client_new(c->app, &c->tc), 0);
    return c;
}

void h_tc_stop(h_client *c)
{
    if (c == NULL)
        return;
    assert_int_equal(cn_test_client_free(c->tc), 0);
    /* as libuv's own tests do: the loop must close with no handle left */
    assert_int_equal(cn__app_free_checked(c->app), 0);
    free(c);
}

int h_tc_teardown(void **state)
{
    h_client *c = *state;

    *state = NULL;
    h_tc_stop(c);
    return 0;
}

void h_tc_request(h_client *c, const char *method, const char *target, const char *const *headers,
                  const char *body, cn_test_response *r)
{
    int rc = cn_test_request(c->tc, method, target, headers, body, body ? strlen(body) : 0, 0, r);

    if (rc != 0)
        fail_msg("%s %s: the test client returned %s", method, target, cn_err_name(rc));
}

cJSON *h_tc_json(h_client *c, const char *path, const char *const *headers, int status)
{
    cn_test_response r;
    cJSON *j;

    h_tc_request(c, "GET", path, headers, NULL, &r);
    if (r.status != status)
        fail_msg("GET %s: status %d, expected %d; body %s", path, r.status, status, r.body);
    j = cJSON_Parse(r.body);
    if (j == NULL)
        fail_msg("GET %s: body is not JSON: %s", path, r.body);
    cn_test_response_free(&r);
    return j;
}

void h_tc_assert_header(const cn_test_response *r, const char *name, const char *want)
{
    check_header(name, cn_test_header(r, name), want);
}

long long h_tc_content_length(const cn_test_response *r)
{
    const char *v = cn_test_header(r, "content-length");

    return v ? atoll(v) : -1;
}

bool h_tc_chunked(const cn_test_response *r)
{
    const char *v = cn_test_header(r, "transfer-encoding");

    return v && strcasecmp(v, "chunked") == 0;
}

void h_tc_assert_standard_headers(const cn_test_response *r, bool head_request)
{
    check_standard(r->status, cn_test_header(r, "server"), cn_test_header_count(r, "server"),
                   cn_test_header(r, "date"), cn_test_header_count(r, "date"),
                   cn_test_header(r, "content-length"), cn_test_header_count(r, "content-length"),
                   (long long)r->body_len, head_request);
}

void h_tc_assert_healthy(h_client *c)
{
    cn_test_response r;

    h_tc_request(c, "GET", "/health", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"status\":\"ok\"}");
    cn_test_response_free(&r);
}

void h_tc_settle(h_client *c)
{
    int rc = cn_test_settle(c->tc, 3000);

    if (rc != 0) {
        cn_stats st = h_tc_stats(c);
        fail_msg("app did not settle (%s): coroutines_live=%llu requests_active=%llu "
                 "background_running=%llu",
                 cn_err_name(rc), (unsigned long long)st.coroutines_live,
                 (unsigned long long)st.requests_active, (unsigned long long)st.background_running);
    }
}

cn_stats h_tc_stats(h_client *c)
{
    cn_stats st;

    cn_app_stats(c->app, &st);
    return st;
}
