/*
 * test_fdwait.c -- cn_wait_fd over socketpairs inside real handlers:
 * readable, writable, timeout, cancellation by a client disconnect, several
 * tasks on one fd, and the golden rule (CN_ENOTCORO).
 *
 * Each route answers with what its waits returned, as JSON; the cancel
 * test records into test-global atomics that the test thread polls with
 * deadlines. Nothing sleeps to synchronise.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

static int64_t now_ms(void)
{
    return h_now_ms();
}

/* A non-blocking socketpair, closed when the request ends. */
static void close_fd(void *arg)
{
    close((int)(intptr_t)arg);
}

static int pair(cn_req *req, int sv[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        return CN_EINVAL;
    cn_req_defer(req, close_fd, (void *)(intptr_t)sv[0]);
    cn_req_defer(req, close_fd, (void *)(intptr_t)sv[1]);
    return 0;
}

/* Fill fd's send buffer until the kernel takes no more. */
static void fill(int fd)
{
    static const char junk[4096];

    for (int i = 0; i < 100000; i++)
        if (write(fd, junk, sizeof junk) < 0)
            break;
}

static void drain(int fd)
{
    char buf[4096];

    for (int i = 0; i < 100000; i++)
        if (read(fd, buf, sizeof buf) <= 0)
            break;
}

typedef struct later {
    int fd;
    int64_t after_ms;
    int what; /* 0: write a byte, 1: drain */
} later;

static int set_flag(void *arg)
{
    *(int *)arg = 1;
    return 0;
}

static int do_later(void *arg)
{
    later *l = arg;
    int rc = cn_sleep(l->after_ms);

    if (rc < 0)
        return rc;
    if (l->what == 0)
        return write(l->fd, "x", 1) == 1 ? 0 : CN_EPIPE;
    drain(l->fd);
    return 0;
}

/* GET /t/fd/readable */
static int rt_readable(cn_req *req, cn_res *res)
{
    int sv[2];
    later l;
    cn_task *t;
    cJSON *o = cJSON_CreateObject();
    int64_t t0;
    int rc, ran;

    if (pair(req, sv) < 0)
        return CN_EINVAL;
    l = (later){sv[1], 40, 0};
    cn_spawn(do_later, &l, &t);
    t0 = now_ms();
    rc = cn_wait_fd(sv[0], CN_READABLE, 3000);
    cJSON_AddNumberToObject(o, "parked_rc", rc);
    cJSON_AddNumberToObject(o, "parked_ms", (double)(now_ms() - t0));
    cJSON_AddNumberToObject(o, "child_rc", cn_await(t));
    /* the byte is still unread: ready at once, no park (a child spawned
     * just before runs only once this task parks or yields) */
    ran = 0;
    cn_spawn(set_flag, &ran, &t);
    cJSON_AddNumberToObject(o, "ready_rc", cn_wait_fd(sv[0], CN_READABLE, 3000));
    cJSON_AddNumberToObject(o, "ready_parked", ran);
    cn_await(t);
    /* both asked for, both ready: a subset of what was asked */
    cJSON_AddNumberToObject(o, "both_rc", cn_wait_fd(sv[0], CN_READABLE | CN_WRITABLE, 3000));
    /* EOF is readiness too */
    shutdown(sv[1], SHUT_WR);
    drain(sv[0]);
    cJSON_AddNumberToObject(o, "eof_rc", cn_wait_fd(sv[0], CN_READABLE, 3000));
    return cn_res_json(res, 200, o);
}

/* GET /t/fd/writable */
static int rt_writable(cn_req *req, cn_res *res)
{
    int sv[2];
    later l;
    cn_task *t;
    cJSON *o = cJSON_CreateObject();
    int64_t t0;

    if (pair(req, sv) < 0)
        return CN_EINVAL;
    cJSON_AddNumberToObject(o, "empty_rc", cn_wait_fd(sv[0], CN_WRITABLE, 3000));
    fill(sv[0]);
    t0 = now_ms();
    cJSON_AddNumberToObject(o, "full_rc", cn_wait_fd(sv[0], CN_WRITABLE, 60));
    cJSON_AddNumberToObject(o, "full_ms", (double)(now_ms() - t0));
    /* the peer reads later: writable again, after a real park */
    l = (later){sv[1], 40, 1};
    cn_spawn(do_later, &l, &t);
    t0 = now_ms();
    cJSON_AddNumberToObject(o, "drained_rc", cn_wait_fd(sv[0], CN_WRITABLE, 3000));
    cJSON_AddNumberToObject(o, "drained_ms", (double)(now_ms() - t0));
    cJSON_AddNumberToObject(o, "child_rc", cn_await(t));
    return cn_res_json(res, 200, o);
}

/* GET /t/fd/timeout */
static int rt_timeout(cn_req *req, cn_res *res)
{
    int sv[2];
    cJSON *o = cJSON_CreateObject();
    int64_t t0;

    if (pair(req, sv) < 0)
        return CN_EINVAL;
    t0 = now_ms();
    cJSON_AddNumberToObject(o, "rc", cn_wait_fd(sv[0], CN_READABLE, 80));
    cJSON_AddNumberToObject(o, "ms", (double)(now_ms() - t0));
    cJSON_AddNumberToObject(o, "zero_rc", cn_wait_fd(sv[0], CN_READABLE, 0));
    /* the timer is the task's: a sleep after a timed-out wait still works */
    t0 = now_ms();
    cJSON_AddNumberToObject(o, "sleep_rc", cn_sleep(20));
    cJSON_AddNumberToObject(o, "sleep_ms", (double)(now_ms() - t0));
    cJSON_AddNumberToObject(o, "einval_fd", cn_wait_fd(-1, CN_READABLE, 10));
    cJSON_AddNumberToObject(o, "einval_none", cn_wait_fd(sv[0], 0, 10));
    cJSON_AddNumberToObject(o, "einval_bits", cn_wait_fd(sv[0], 4, 10));
    /* a closed fd */
    {
        int fd = dup(sv[0]);
        close(fd);
        cJSON_AddNumberToObject(o, "ebadf", cn_wait_fd(fd, CN_READABLE, 10));
    }
    return cn_res_json(res, 200, o);
}

/* ---- several tasks on one fd ---- */

typedef struct share {
    int fd;
    int events;
    int rc;
    int64_t woke_ms;
} share;

static int wait_share(void *arg)
{
    share *s = arg;

    s->rc = cn_wait_fd(s->fd, s->events, 3000);
    s->woke_ms = now_ms();
    return 0;
}

/* GET /t/fd/shared: a reader and a writer on one full, empty socket; two
 * readers on it too. Data arrives first (the readers wake, the writer does
 * not), then room (the writer wakes). */
static int rt_shared(cn_req *req, cn_res *res)
{
    int sv[2];
    share s[3];
    cn_task *t[3];
    cJSON *o = cJSON_CreateObject();
    int64_t t0;

    if (pair(req, sv) < 0)
        return CN_EINVAL;
    fill(sv[0]);
    s[0] = (share){sv[0], CN_READABLE, H_NOT_YET, 0};
    s[1] = (share){sv[0], CN_READABLE, H_NOT_YET, 0};
    s[2] = (share){sv[0], CN_WRITABLE, H_NOT_YET, 0};
    for (int i = 0; i < 3; i++)
        cn_spawn(wait_share, &s[i], &t[i]);
    cn_sleep(30); /* all three parked on the one poll handle */
    t0 = now_ms();
    if (write(sv[1], "x", 1) != 1)
        return CN_EPIPE;
    cn_sleep(60);
    cJSON_AddNumberToObject(o, "reader_a", s[0].rc);
    cJSON_AddNumberToObject(o, "reader_b", s[1].rc);
    cJSON_AddNumberToObject(o, "writer_before_room", s[2].rc);
    drain(sv[1]);
    cn_gather(t, 3, NULL);
    cJSON_AddNumberToObject(o, "writer", s[2].rc);
    cJSON_AddNumberToObject(o, "readers_woke_ms", (double)(s[0].woke_ms - t0));
    return cn_res_json(res, 200, o);
}

/* ---- cancellation ---- */

static atomic_int g_cancel_rc = H_NOT_YET;
static atomic_int g_after_rc = H_NOT_YET;
static atomic_int g_parked;

/* GET /t/fd/forever: waits with no limit until the client leaves */
static int rt_forever(cn_req *req, cn_res *res)
{
    int sv[2];
    int rc;

    (void)res;
    if (pair(req, sv) < 0)
        return CN_EINVAL;
    atomic_store(&g_parked, 1);
    rc = cn_wait_fd(sv[0], CN_READABLE, -1);
    atomic_store(&g_cancel_rc, rc);
    atomic_store(&g_after_rc, cn_wait_fd(sv[0], CN_READABLE, -1));
    return rc;
}

/* ---- the golden rule ---- */

static int rt_sync(cn_req *req, cn_res *res)
{
    (void)req;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "rc", cn_wait_fd(0, CN_READABLE, 10));
    return cn_res_json(res, 200, o);
}

static int routes(cn_app *app, void *arg)
{
    cn_route_opts sync = {.mode = CN_ROUTE_SYNC};
    int rc = 0;

    (void)arg;
    rc = rc ? rc : cn_app_route(app, "GET /t/fd/readable", rt_readable, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/fd/writable", rt_writable, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/fd/timeout", rt_timeout, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/fd/shared", rt_shared, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/fd/forever", rt_forever, NULL);
    rc = rc ? rc : cn_app_route_ex(app, "GET /t/fd/sync", rt_sync, NULL, &sync);
    return rc;
}

static h_server *start(void **state)
{
    h_server *s = h_start(NULL, NULL, routes, NULL);
    *state = s;
    return s;
}

static void test_readable(void **state)
{
    cJSON *o = h_get_json(start(state), "/t/fd/readable", 200);

    h_assert_code(o, "parked_rc", CN_READABLE);
    assert_true(h_jint(o, "parked_ms") >= 35);
    assert_int_equal(h_jint(o, "child_rc"), 0);
    h_assert_code(o, "ready_rc", CN_READABLE);
    assert_int_equal(h_jint(o, "ready_parked"), 0);
    h_assert_code(o, "both_rc", CN_READABLE | CN_WRITABLE);
    h_assert_code(o, "eof_rc", CN_READABLE);
    cJSON_Delete(o);
    h_assert_settles(*state);
}

static void test_writable(void **state)
{
    cJSON *o = h_get_json(start(state), "/t/fd/writable", 200);

    h_assert_code(o, "empty_rc", CN_WRITABLE);
    h_assert_code(o, "full_rc", CN_ETIMEDOUT);
    assert_true(h_jint(o, "full_ms") >= 55);
    h_assert_code(o, "drained_rc", CN_WRITABLE);
    assert_true(h_jint(o, "drained_ms") >= 35);
    assert_int_equal(h_jint(o, "child_rc"), 0);
    cJSON_Delete(o);
    h_assert_settles(*state);
}

static void test_timeout_and_arguments(void **state)
{
    cJSON *o = h_get_json(start(state), "/t/fd/timeout", 200);

    h_assert_code(o, "rc", CN_ETIMEDOUT);
    assert_true(h_jint(o, "ms") >= 75);
    assert_true(h_jint(o, "ms") < 2000);
    h_assert_code(o, "zero_rc", CN_ETIMEDOUT);
    h_assert_code(o, "sleep_rc", 0);
    assert_true(h_jint(o, "sleep_ms") >= 15);
    h_assert_code(o, "einval_fd", CN_EINVAL);
    h_assert_code(o, "einval_none", CN_EINVAL);
    h_assert_code(o, "einval_bits", CN_EINVAL);
    h_assert_code(o, "ebadf", -EBADF); /* UV_EBADF */
    cJSON_Delete(o);
}

static void test_shared_fd(void **state)
{
    cJSON *o = h_get_json(start(state), "/t/fd/shared", 200);

    h_assert_code(o, "reader_a", CN_READABLE);
    h_assert_code(o, "reader_b", CN_READABLE);
    /* readiness for reading did not wake the task that waits to write */
    h_assert_code(o, "writer_before_room", H_NOT_YET);
    h_assert_code(o, "writer", CN_WRITABLE);
    assert_true(h_jint(o, "readers_woke_ms") < 1000);
    cJSON_Delete(o);
    h_assert_settles(*state);
}

static void test_cancel(void **state)
{
    h_server *s = start(state);
    h_conn *c = h_send_get(s, "/t/fd/forever");

    assert_true(H_WAIT_UNTIL(atomic_load(&g_parked) == 1, 3000));
    assert_true(H_WAIT_UNTIL(h_stats(s).coroutines_live == 1, 3000));
    h_close(c);
    assert_true(H_WAIT_UNTIL(atomic_load(&g_cancel_rc) != H_NOT_YET, 3000));
    assert_int_equal(atomic_load(&g_cancel_rc), CN_ECANCELED);
    assert_int_equal(atomic_load(&g_after_rc), CN_ECANCELED);
    h_assert_settles(s);
    /* the fds were closed by the request's deferred clean-ups right after
     * the wait gave them up; the next request reuses the numbers */
    cJSON_Delete(h_get_json(s, "/t/fd/readable", 200));
    h_assert_healthy(s);
}

static void test_not_a_coroutine(void **state)
{
    cJSON *o = h_get_json(start(state), "/t/fd/sync", 200);

    h_assert_code(o, "rc", CN_ENOTCORO);
    cJSON_Delete(o);
    /* nor on a thread of our own */
    assert_int_equal(cn_wait_fd(0, CN_READABLE, 10), CN_ENOTCORO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_readable, h_teardown),
        cmocka_unit_test_teardown(test_writable, h_teardown),
        cmocka_unit_test_teardown(test_timeout_and_arguments, h_teardown),
        cmocka_unit_test_teardown(test_shared_fd, h_teardown),
        cmocka_unit_test_teardown(test_cancel, h_teardown),
        cmocka_unit_test_teardown(test_not_a_coroutine, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
