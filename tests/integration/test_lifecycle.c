/*
 * test_lifecycle.c -- connections that go away, graceful shutdown, listeners
 * (port 0, IPv6), SIGPIPE.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "app.h" /* cn__app_free_checked */
#include "canteen/uv.h"
#include "demo.h"
#include "harness.h"

static int rt_stop(cn_req *req, cn_res *res)
{
    int rc = cn_app_stop(cn_req_app(req));
    return rc < 0 ? rc : cn_res_text(res, 200, "stopping");
}

static bool tick_fired; /* loop thread only */

static void free_tick(uv_handle_t *h)
{
    free(h);
}

static void on_tick(uv_timer_t *t)
{
    tick_fired = true;
    uv_close((uv_handle_t *)t, free_tick);
}

/*
 * cn_app_listen on a taken port (the app's own) while the app runs. A 0 ms
 * timer started just before must not have fired by the time it returns:
 * if it had, the failed listener's cleanup ran the loop from inside this
 * handler, which libuv forbids. Answers "<error name> <loop ran or not>".
 */
static int rt_listen_taken(cn_req *req, cn_res *res)
{
    cn_app *app = cn_req_app(req);
    uv_timer_t *t = malloc(sizeof(*t));
    bool ran;
    int rc, rc_name;

    if (t == NULL)
        return CN_ENOMEM;
    tick_fired = false;
    uv_timer_init(cn_app_loop(app), t);
    uv_timer_start(t, on_tick, 0, 0);
    rc = cn_app_listen(app, "127.0.0.1", cn_app_port(app));
    /* on the loop thread a host name would block: numeric only, refused */
    rc_name = cn_app_listen(app, "localhost", 0);
    ran = tick_fired;
    return cn_res_text(res, 200,
                       cn_req_sprintf(req, "%s %s %s", cn_err_name(rc), cn_err_name(rc_name),
                                      ran ? "loop-ran" : "loop-not-run"));
}

static int lifecycle_routes(cn_app *app, void *arg)
{
    int rc = h_test_routes(app, arg);
    rc = rc ? rc : cn_app_route(app, "GET /t/listen-taken", rt_listen_taken, NULL);
    return rc ? rc : cn_app_route(app, "GET /t/stop", rt_stop, NULL);
}

static h_server *start(void **state, const cn_config *cfg)
{
    h_server *s = h_start(cfg, NULL, lifecycle_routes, NULL);
    *state = s;
    return s;
}

/* ---- clients that go away ---- */

static void test_disconnect_mid_request(void **state)
{
    h_server *s = start(state, NULL);
    static const char *const partial[] = {
        "GET /hea",
        "GET /health HTTP/1.1\r\nHost: t\r\n",
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{\"half\":",
        "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n",
    };

    for (size_t i = 0; i < sizeof partial / sizeof partial[0]; i++) {
        h_conn *c = h_open(s);
        h_sends(c, partial[i]);
        /* wait for the 100 Continue where there is one, so the server is mid-request */
        if (strstr(partial[i], "100-continue")) {
            h_response r;
            assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
            assert_int_equal(r.status, 100);
            h_response_free(&r);
        }
        h_close(c);
        h_assert_healthy(s);
    }
    assert_true(h_wait_active(s, 0, H_TIMEOUT_MS));
    assert_int_equal(h_stats(s).requests_active, 0);
}

static void test_disconnect_mid_response(void **state)
{
    h_server *s = start(state, NULL);

    for (int i = 0; i < 6; i++) {
        h_conn *c = h_open_rcvbuf(s, 32 * 1024);
        h_sends(c, "GET /t/big HTTP/1.1\r\nHost: t\r\n\r\nGET /t/big HTTP/1.1\r\nHost: t\r\n\r\n");
        /* read nothing, a little, or most of the first response */
        if (i % 3 >= 1)
            assert_true(h_recv_more(c, H_TIMEOUT_MS) > 0);
        if (i % 3 == 2) {
            for (int k = 0; k < 10000 && c->len < H_BIG_SIZE / 2; k++)
                if (h_recv_more(c, H_TIMEOUT_MS) <= 0)
                    break;
        }
        if (i >= 3)
            shutdown(c->fd, SHUT_WR); /* FIN first, then close */
        h_close(c);
        h_assert_healthy(s);
    }
    assert_true(h_wait_active(s, 0, H_TIMEOUT_MS));
    assert_int_equal(h_stats(s).requests_active, 0);
}

/*
 * A client that resets mid-response must never kill the process with
 * SIGPIPE: the library has to write with MSG_NOSIGNAL or ignore SIGPIPE,
 * since the application cannot know it must. Runs in a child process with
 * SIGPIPE at its default disposition (the child uses no cmocka asserts).
 */
typedef struct child_srv {
    cn_app *app;
    int rc;
} child_srv;

static void *child_thread(void *arg)
{
    child_srv *cs = arg;
    cs->rc = cn_app_run(cs->app);
    return NULL;
}

static bool child_send(int fd, const char *s)
{
    size_t len = strlen(s);
    /* small: fits in the socket buffer of a fresh connection */
    return send(fd, s, len, MSG_NOSIGNAL) == (ssize_t)len;
}

static bool child_wait_readable(int fd, int ms)
{
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    return poll(&pf, 1, ms) == 1;
}

static bool child_health(int port)
{
    char buf[256];
    ssize_t n;
    int fd = h_connect_fd("127.0.0.1", port);
    bool ok;

    if (fd < 0)
        return false;
    ok = child_send(fd, "GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n") &&
         child_wait_readable(fd, H_TIMEOUT_MS);
    n = ok ? recv(fd, buf, sizeof buf - 1, 0) : -1;
    close(fd);
    return n > 12 && memcmp(buf, "HTTP/1.1 200", 12) == 0;
}

static void child_run(void)
{
    cn_config cfg = h_fast_config();
    child_srv cs = {NULL, -1};
    pthread_t th;
    int port;
    bool ok = true;

    signal(SIGPIPE, SIG_DFL);
    cs.app = cn_app_new(&cfg);
    if (cs.app == NULL || demo_register(cs.app) < 0 || h_test_routes(cs.app, NULL) < 0 ||
        cn_app_listen(cs.app, "127.0.0.1", 0) < 0)
        _exit(2);
    port = cn_app_port(cs.app);
    if (pthread_create(&th, NULL, child_thread, &cs) != 0)
        _exit(3);
    if (!child_health(port))
        _exit(4);
    for (int i = 0; i < 80 && ok; i++) {
        int fd = h_connect_fd("127.0.0.1", port);
        char buf[4096];
        if (fd < 0) {
            ok = false;
            break;
        }
        child_send(fd,
                   "GET /t/big HTTP/1.1\r\nHost: t\r\n\r\nGET /t/big HTTP/1.1\r\nHost: t\r\n\r\n"
                   "GET /t/big HTTP/1.1\r\nHost: t\r\n\r\n");
        switch (i % 4) {
        case 0: /* gone before any answer (FIN) */
            break;
        case 1: /* gone with unread data (RST) */
            child_wait_readable(fd, H_TIMEOUT_MS);
            break;
        case 2: /* half-close, read a bit, then go */
            shutdown(fd, SHUT_WR);
            if (child_wait_readable(fd, H_TIMEOUT_MS))
                (void)recv(fd, buf, sizeof buf, 0);
            break;
        default: { /* abortive close */
            struct linger lg = {1, 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            child_wait_readable(fd, H_TIMEOUT_MS);
            if (recv(fd, buf, sizeof buf, 0) <= 0)
                ok = false;
            break;
        }
        }
        close(fd);
    }
    ok = ok && child_health(port);
    cn_app_stop(cs.app);
    pthread_join(th, NULL);
    ok = ok && cs.rc == 0;
    assert_int_equal(cn__app_free_checked(cs.app), 0);
    _exit(ok ? 0 : 1);
}

static void test_sigpipe_not_fatal(void **state)
{
    pid_t pid;
    int status = 0;
    int64_t deadline = h_now_ms() + 60000;

    (void)state;
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        child_run();
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        assert_true(w == 0);
        if (h_now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("child did not finish within 60 s");
        }
        poll(NULL, 0, 20); /* bounded wait for the child's exit */
    }
    if (WIFSIGNALED(status))
        fail_msg("the server process was killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- graceful shutdown ---- */

/*
 * Stop with an idle keep-alive connection and one holding half a request
 * head: the idle one is closed at once, the half request is still answered
 * (with Connection: close) when it completes, then cn_app_run returns 0.
 */
static void test_graceful_shutdown_partial_request(void **state)
{
    cn_config cfg = h_fast_config();
    h_server *s;
    h_conn *idle, *busy;
    h_response r;
    int fd;

    cfg.header_timeout_ms = 10000;
    cfg.keepalive_timeout_ms = 10000;
    cfg.shutdown_timeout_ms = 10000;
    s = start(state, &cfg);
    idle = h_open(s);
    h_sends(idle, "GET /users/1 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(h_read_response(idle, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    h_response_free(&r);

    /* one write: a whole request and the first half of the next; the first
     * answer proves the server has parsed the half head too */
    busy = h_open(s);
    h_sends(busy, "GET /users/2 HTTP/1.1\r\nHost: t\r\n\r\nGET /users/3 HTTP/1.1\r\nHost: t\r\n");
    assert_int_equal(h_read_response(busy, &r, H_TIMEOUT_MS), H_OK);
    assert_string_equal(r.body, "{\"id\":2,\"name\":\"user2\"}");
    h_response_free(&r);

    assert_int_equal(cn_app_stop(s->app), 0);
    /* the idle connection is closed without a response */
    assert_int_equal(h_expect_eof(idle, H_TIMEOUT_MS), H_OK);
    /* the listener is gone: new connections are refused */
    fd = h_connect_fd(s->host, s->port);
    if (fd >= 0)
        close(fd);
    assert_int_equal(fd, -ECONNREFUSED);
    /* the app is still running: the half request holds it */
    assert_int_equal(h_join(s, 50), INT32_MIN);
    /* finish the request: it is answered, with Connection: close */
    h_sends(busy, "\r\n");
    assert_int_equal(h_read_response(busy, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"id\":3,\"name\":\"user3\"}");
    assert_true(h_connection_has(&r, "close"));
    h_response_free(&r);
    assert_int_equal(h_expect_eof(busy, H_TIMEOUT_MS), H_OK);
    h_close(busy);
    h_close(idle);
    h_assert_run_ended(state, s);
}

/* A request still incomplete at the shutdown deadline is dropped; run returns 0. */
static void test_shutdown_deadline(void **state)
{
    cn_config cfg = h_fast_config();
    h_server *s;
    h_conn *c;
    h_response r;

    cfg.header_timeout_ms = 10000;
    cfg.shutdown_timeout_ms = 300;
    s = start(state, &cfg);
    c = h_open(s);
    h_sends(c, "GET /users/2 HTTP/1.1\r\nHost: t\r\n\r\nGET /users/3 HTTP/1.1\r\nHost: t\r\n");
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    h_response_free(&r);
    h_stop_expect_dropped(state, s, c, 250, 3000);
}

/* Stopping an app with no connections returns promptly. */
static void test_stop_without_connections(void **state)
{
    h_server *s = start(state, NULL);
    int64_t t0;

    assert_true(h_wait_active(s, 0, H_TIMEOUT_MS));
    t0 = h_now_ms();
    assert_int_equal(cn_app_stop(s->app), 0);
    /* a second stop while stopping is harmless */
    {
        int rc = cn_app_stop(s->app);
        assert_true(rc == 0 || rc == CN_ESTATE);
    }
    assert_int_equal(h_join(s, 2000), 0);
    assert_true(h_now_ms() - t0 < 500);
    *state = NULL;
    h_join_and_free(s);
}

/* cn_app_stop from a handler: that response says close, then run returns 0. */
static void test_stop_from_handler(void **state)
{
    h_server *s = start(state, NULL);
    h_conn *c = h_open(s);
    h_response r;

    h_sends(c, "GET /t/stop HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "stopping");
    h_response_free(&r);
    assert_int_equal(h_expect_eof(c, H_TIMEOUT_MS), H_OK);
    h_close(c);
    h_assert_run_ended(state, s);
}

/* ---- listeners ---- */

static void test_ipv6_listener(void **state)
{
    h_server *s;
    CURL *e;
    h_http h;
    h_conn *c;
    h_response r;

    if (!h_ipv6_available())
        skip();
    s = h_start(NULL, "::1", h_test_routes, NULL);
    *state = s;
    e = h_curl_new();
    assert_int_equal(h_curl_get(e, s, "/users/6", &h), CURLE_OK);
    assert_int_equal(h.status, 200);
    assert_string_equal(h.body, "{\"id\":6,\"name\":\"user6\"}");
    h_http_free(&h);
    curl_easy_cleanup(e);
    c = h_open(s);
    h_sends(c, "GET /health HTTP/1.1\r\nHost: [::1]\r\n\r\n");
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    h_response_free(&r);
}

static void test_port_zero_and_errors(void **state)
{
    cn_app *a = cn_app_new(NULL), *b = cn_app_new(NULL);
    int port;

    (void)state;
    assert_non_null(a);
    assert_non_null(b);
    assert_true(cn_app_port(a) < 0);
    assert_int_equal(cn_app_run(a), CN_EINVAL); /* nothing to listen on */
    assert_int_equal(cn_app_listen(a, "127.0.0.1", 0), 0);
    port = cn_app_port(a);
    assert_true(port > 0 && port <= 65535);
    /* that port is really ours: binding it again fails */
    assert_int_equal(cn_app_listen(b, "127.0.0.1", port), CN_EADDRINUSE);
    assert_int_equal(cn_app_listen(b, "not an address", 0), CN_EINVAL);
    assert_int_equal(cn_app_listen(b, "127.0.0.1", 70000), CN_EINVAL);
    /* the port accepts connections even before run (the backlog) */
    {
        int fd = h_connect_fd("127.0.0.1", port);
        assert_true(fd >= 0);
        close(fd);
    }
    assert_int_equal(cn__app_free_checked(a), 0); /* never ran: frees cleanly */
    assert_int_equal(cn__app_free_checked(b), 0);
}

/*
 * A listen that fails while the app runs returns its error, leaves no
 * handle behind (the teardown asserts the loop closes clean) and never runs
 * the loop from inside the handler; the app goes on serving.
 */
static void test_listen_taken_while_running(void **state)
{
    h_server *s = start(state, NULL);
    char *want = h_strf("%s %s loop-not-run", cn_err_name(CN_EADDRINUSE), cn_err_name(CN_EINVAL));

    for (int i = 0; i < 3; i++) {
        h_response r;
        h_roundtrip(s, "GET /t/listen-taken HTTP/1.1\r\nHost: t\r\n\r\n", &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, want);
        h_response_free(&r);
        h_assert_healthy(s);
    }
    free(want);
}

/*
 * A handle left open on the app's loop is noticed (and logged): the loop
 * does not close, and the app's memory is kept so that the handle does not
 * point into freed memory; closing it afterwards lets the loop close.
 */
static void test_leaked_handle_is_noticed(void **state)
{
    cn_app *a = cn_app_new(NULL);
    uv_timer_t t;
    uv_loop_t *loop;

    (void)state;
    assert_non_null(a);
    loop = cn_app_loop(a);
    uv_timer_init(loop, &t);
    assert_int_equal(cn__app_free_checked(a), UV_EBUSY);
    uv_close((uv_handle_t *)&t, NULL);
    assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(loop), 0);
    free(a); /* what cn_app_free kept */
}

/* A stop that comes before cn_app_run is not lost: run returns 0 at once. */
static void test_stop_before_run(void **state)
{
    cn_app *a = cn_app_new(NULL);
    int64_t t0;

    (void)state;
    assert_non_null(a);
    assert_int_equal(demo_register(a), 0);
    assert_int_equal(cn_app_listen(a, "127.0.0.1", 0), 0);
    assert_int_equal(cn_app_stop(a), 0);
    t0 = h_now_ms();
    assert_int_equal(cn_app_run(a), 0);
    assert_true(h_now_ms() - t0 < 1000);
    assert_int_equal(cn_app_stop(a), CN_ESTATE); /* stopped for good */
    assert_true(cn_app_run(a) < 0);
    assert_int_equal(cn__app_free_checked(a), 0);
}

static void test_two_apps_side_by_side(void **state)
{
    h_server *a = h_start(NULL, NULL, NULL, NULL);
    h_server *b;

    *state = a;
    b = h_start(NULL, NULL, NULL, NULL);
    assert_int_not_equal(a->port, b->port);
    h_assert_healthy(a);
    h_assert_healthy(b);
    h_stop(b);
    h_assert_healthy(a);
}

static void test_stats_counters(void **state)
{
    h_server *s = start(state, NULL);
    cn_stats before, after;
    h_conn *c;

    assert_true(h_wait_active(s, 0, H_TIMEOUT_MS));
    before = h_stats(s);
    c = h_open(s);
    h_sends(c, "GET /health HTTP/1.1\r\nHost: t\r\n\r\nGET /nope HTTP/1.1\r\nHost: t\r\n\r\n"
               "GET /t/fail HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(h_read_responses(c, 3, H_TIMEOUT_MS, NULL), 3);
    assert_true(h_wait_active(s, 1, H_TIMEOUT_MS));
    h_close(c);
    assert_true(h_wait_active(s, 0, H_TIMEOUT_MS));
    after = h_stats(s);
    assert_int_equal(after.connections_accepted - before.connections_accepted, 1);
    assert_int_equal(after.requests_total - before.requests_total, 3);
    assert_int_equal(after.responses_4xx - before.responses_4xx, 1);
    assert_int_equal(after.responses_5xx - before.responses_5xx, 1);
    assert_int_equal(after.requests_active, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_disconnect_mid_request, h_teardown),
        cmocka_unit_test_teardown(test_disconnect_mid_response, h_teardown),
        cmocka_unit_test_teardown(test_sigpipe_not_fatal, h_teardown),
        cmocka_unit_test_teardown(test_graceful_shutdown_partial_request, h_teardown),
        cmocka_unit_test_teardown(test_shutdown_deadline, h_teardown),
        cmocka_unit_test_teardown(test_stop_without_connections, h_teardown),
        cmocka_unit_test_teardown(test_stop_from_handler, h_teardown),
        cmocka_unit_test_teardown(test_ipv6_listener, h_teardown),
        cmocka_unit_test_teardown(test_port_zero_and_errors, h_teardown),
        cmocka_unit_test_teardown(test_listen_taken_while_running, h_teardown),
        cmocka_unit_test(test_leaked_handle_is_noticed),
        cmocka_unit_test_teardown(test_stop_before_run, h_teardown),
        cmocka_unit_test_teardown(test_two_apps_side_by_side, h_teardown),
        cmocka_unit_test_teardown(test_stats_counters, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
