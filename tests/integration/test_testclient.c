/*
 * test_testclient.c -- the in-process test client's own contract, beyond
 * what test_declare shows (requests, lifespan, the same bytes as a
 * socket): a body read as it arrives (cn_test_stream, cn_test_read) and
 * dropped half-read; running the app until it is at rest (cn_test_settle)
 * or until a condition holds (cn_test_run_until); a connection the app
 * closed while idle, reopened; repeated headers; argument checks.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* ---- routes ---- */

static atomic_int go;          /* the test lets a stream go on */
static atomic_int stream_rc;   /* what the endless stream's last write returned */
static atomic_int bg_done;     /* the background task ended */
static atomic_int pool_done;   /* a pool job's completion ran on the loop */
static atomic_int pool_worked; /* and its work on a worker */

/* "one", then (once the test says go) "two", "three" */
static int gated(cn_req *req, cn_res *res)
{
    int rc = cn_res_stream_begin(res, 200, "text/plain");

    (void)req;
    if (rc == 0)
        rc = cn_res_stream_write(res, "one", 3);
    for (int i = 0; rc == 0 && !go && i < 2000; i++)
        rc = cn_sleep(5);
    if (rc == 0)
        rc = cn_res_stream_write(res, "two", 3);
    if (rc == 0)
        rc = cn_res_stream_write(res, "three", 5);
    return rc < 0 ? rc : cn_res_stream_end(res);
}

/* writes until the client leaves */
static int endless(cn_req *req, cn_res *res)
{
    int rc = cn_res_stream_begin(res, 200, "text/plain");

    (void)req;
    stream_rc = H_NOT_YET;
    for (int i = 0; rc == 0 && i < 10000; i++) {
        rc = cn_res_stream_write(res, "x", 1);
        if (rc == 0)
            rc = cn_sleep(1);
    }
    stream_rc = rc;
    return rc;
}

static int nap(void *arg)
{
    int rc = cn_sleep((int)(intptr_t)arg);

    bg_done = rc == 0 ? 1 : rc;
    return rc;
}

/* answers at once; a background task sleeps ?ms= after it */
static int later(cn_req *req, cn_res *res)
{
    int64_t ms = 100;

    cn_req_query_int(req, "ms", &ms);
    bg_done = 0;
    cn_req_background(req, nap, (void *)(intptr_t)ms);
    return cn_res_text(res, 200, "later");
}

static void pool_work(void *arg)
{
    (void)arg;
    h_block_ms(50);
    pool_worked = 1;
}

static void pool_finish(void *arg, int status)
{
    (void)arg;
    pool_done = status == 0 ? 1 : status;
}

/* hands a job to the pool outside any coroutine; answers at once */
static int submit(cn_req *req, cn_res *res)
{
    pool_done = pool_worked = 0;
    if (cn_app_pool_submit(cn_req_app(req), pool_work, pool_finish, NULL) < 0)
        return CN_ENOMEM;
    return cn_res_text(res, 200, "submitted");
}

static int two_cookies(cn_req *req, cn_res *res)
{
    (void)req;
    if (cn_res_set_cookie(res, "a", "1", NULL) < 0 || cn_res_set_cookie(res, "b", "2", NULL) < 0)
        return CN_ENOMEM;
    return cn_res_text(res, 200, "two");
}

static int setup(cn_app *app, void *arg)
{
    (void)arg;
    if (cn_app_route(app, "GET /tc/gated", gated, NULL) ||
        cn_app_route(app, "GET /tc/endless", endless, NULL) ||
        cn_app_route(app, "GET /tc/later", later, NULL) ||
        cn_app_route(app, "GET /tc/submit", submit, NULL) ||
        cn_app_route(app, "GET /tc/cookies", two_cookies, NULL))
        return -1;
    return 0;
}

static h_client *start(void **state, const cn_config *cfg)
{
    h_client *c = h_tc_start(cfg, setup, NULL);

    *state = c;
    go = 0;
    return c;
}

/* ---- streams ---- */

/* The head, then each piece as it comes, before the handler has ended. */
static void test_stream_as_it_comes(void **state)
{
    h_client *c = start(state, NULL);
    cn_test_response r, other;
    char buf[64], all[64];
    size_t n = 0;
    int k;

    assert_int_equal(cn_test_stream(c->tc, "GET", "/tc/gated", NULL, NULL, 0, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_true(h_tc_chunked(&r));
    assert_string_equal(r.body, "");
    assert_int_equal(r.body_len, 0);
    cn_test_response_free(&r);
    /* the first piece, while the handler waits for the go */
    k = cn_test_read(c->tc, buf, sizeof buf, 0);
    assert_int_equal(k, 3);
    assert_memory_equal(buf, "one", 3);
    /* one request at a time: nothing else while the stream is open */
    assert_int_equal(cn_test_get(c->tc, "/health", &other), CN_ESTATE);
    assert_int_equal(cn_test_stream(c->tc, "GET", "/health", NULL, NULL, 0, 0, &other), CN_ESTATE);
    go = 1;
    /* the rest, two bytes at a time, then the end */
    while ((k = cn_test_read(c->tc, buf, 2, 0)) > 0) {
        assert_true(k <= 2);
        memcpy(all + n, buf, (size_t)k);
        n += (size_t)k;
    }
    assert_int_equal(k, 0);
    assert_int_equal(n, 8);
    assert_memory_equal(all, "twothree", 8);
    /* closed at its end: no stream now, and the connection goes on */
    assert_int_equal(cn_test_read(c->tc, buf, sizeof buf, 0), CN_ESTATE);
    cn_test_stream_close(c->tc); /* nothing open: nothing happens */
    h_tc_assert_healthy(c);
    assert_int_equal(h_tc_stats(c).connections_accepted, 1);
}

/* A HEAD has no body: the stream ends at once. */
static void test_stream_head(void **state)
{
    h_client *c = start(state, NULL);
    cn_test_response r;
    char buf[8];

    assert_int_equal(cn_test_stream(c->tc, "HEAD", "/health", NULL, NULL, 0, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(cn_test_header(&r, "content-length"), "15");
    cn_test_response_free(&r);
    assert_int_equal(cn_test_read(c->tc, buf, sizeof buf, 0), 0);
    h_tc_assert_healthy(c);
}

/* Nothing new in time: CN_ETIMEDOUT, and the stream is still there to read. */
static void test_read_timeout(void **state)
{
    h_client *c = start(state, NULL);
    cn_test_response r;
    char buf[16];
    int64_t t0;

    assert_int_equal(cn_test_stream(c->tc, "GET", "/tc/gated", NULL, NULL, 0, 0, &r), 0);
    cn_test_response_free(&r);
    assert_int_equal(cn_test_read(c->tc, buf, sizeof buf, 0), 3);
    t0 = h_now_ms();
    assert_int_equal(cn_test_read(c->tc, buf, sizeof buf, 100), CN_ETIMEDOUT);
    assert_true(h_now_ms() - t0 >= 90);
    go = 1;
    assert_true(cn_test_read(c->tc, buf, sizeof buf, 0) > 0);
    cn_test_stream_close(c->tc); /* half read: the app sees the client leave */
    h_tc_settle(c);
    h_tc_assert_healthy(c);
}

/* Closed half read: the handler's next write fails, as for a client that left. */
static void test_stream_close_leaves(void **state)
{
    h_client *c = start(state, NULL);
    cn_test_response r;
    char buf[4];

    assert_int_equal(cn_test_stream(c->tc, "GET", "/tc/endless", NULL, NULL, 0, 0, &r), 0);
    cn_test_response_free(&r);
    assert_true(cn_test_read(c->tc, buf, sizeof buf, 0) > 0);
    cn_test_stream_close(c->tc);
    h_tc_settle(c);
    assert_int_equal(stream_rc, CN_ECANCELED);
    assert_int_equal(h_tc_stats(c).connections_active, 0);
    /* and the next request opens another connection */
    h_tc_assert_healthy(c);
    assert_int_equal(h_tc_stats(c).connections_accepted, 2);
}

/* ---- running the app between requests ---- */

static int bg_finished(void *arg)
{
    (void)arg;
    return bg_done != 0;
}

static int never(void *arg)
{
    (void)arg;
    return 0;
}

/* A request returns at its response; settle runs the background task to its end. */
static void test_settle(void **state)
{
    cn_config cfg = h_fast_config();
    h_client *c;
    cn_test_response r;

    cfg.shutdown_timeout_ms = 200; /* the last task is cut short by the stop */
    c = start(state, &cfg);
    h_tc_request(c, "GET", "/tc/later?ms=100", NULL, NULL, &r);
    assert_string_equal(r.body, "later");
    cn_test_response_free(&r);
    assert_int_equal(bg_done, 0);
    assert_int_equal(cn_test_settle(c->tc, 0), 0);
    assert_int_equal(bg_done, 1);
    assert_int_equal(h_tc_stats(c).background_running, 0);
    /* at rest already: at once */
    assert_int_equal(cn_test_settle(c->tc, 0), 0);
    /* a job handed to the pool outside any task: settled once its
     * completion has run on the loop */
    h_tc_request(c, "GET", "/tc/submit", NULL, NULL, &r);
    cn_test_response_free(&r);
    assert_int_equal(cn_test_settle(c->tc, 0), 0);
    assert_int_equal(pool_worked, 1);
    assert_int_equal(pool_done, 1);
    /* busy past the deadline */
    h_tc_request(c, "GET", "/tc/later?ms=10000", NULL, NULL, &r);
    cn_test_response_free(&r);
    assert_int_equal(cn_test_settle(c->tc, 100), CN_ETIMEDOUT);
    assert_int_equal(bg_done, 0);
    assert_int_equal(cn_test_settle(NULL, 0), CN_EINVAL);
}

static void test_run_until(void **state)
{
    h_client *c = start(state, NULL);
    cn_test_response r;
    int64_t t0;

    h_tc_request(c, "GET", "/tc/later?ms=50", NULL, NULL, &r);
    cn_test_response_free(&r);
    assert_int_equal(cn_test_run_until(c->tc, bg_finished, NULL, 0), 0);
    assert_int_equal(bg_done, 1);
    /* holds already: at once */
    assert_int_equal(cn_test_run_until(c->tc, bg_finished, NULL, 0), 0);
    t0 = h_now_ms();
    assert_int_equal(cn_test_run_until(c->tc, never, NULL, 100), CN_ETIMEDOUT);
    assert_true(h_now_ms() - t0 >= 90);
    assert_int_equal(cn_test_run_until(c->tc, NULL, NULL, 0), CN_EINVAL);
    assert_int_equal(cn_test_run_until(NULL, never, NULL, 0), CN_EINVAL);
}

static int no_connection(void *app)
{
    cn_stats st;

    cn_app_stats(app, &st);
    return st.connections_active == 0;
}

/* The app closes the idle connection (its keep-alive timeout): the next request reconnects. */
static void test_idle_connection_closed(void **state)
{
    cn_config cfg = h_fast_config();
    h_client *c;

    cfg.keepalive_timeout_ms = 50;
    c = start(state, &cfg);
    h_tc_assert_healthy(c);
    assert_int_equal(h_tc_stats(c).connections_active, 1);
    assert_int_equal(cn_test_run_until(c->tc, no_connection, c->app, 0), 0);
    h_tc_assert_healthy(c);
    assert_int_equal(h_tc_stats(c).connections_accepted, 2);
}

/* ---- responses and arguments ---- */

static void test_headers_and_arguments(void **state)
{
    h_client *c = start(state, NULL);
    cn_test_response r;
    char buf[4];

    h_tc_request(c, "GET", "/tc/cookies", NULL, NULL, &r);
    assert_int_equal(cn_test_header_count(&r, "set-cookie"), 2);
    assert_int_equal(cn_test_header_count(&r, "Set-Cookie"), 2);
    assert_int_equal(cn_test_header_count(&r, "x-none"), 0);
    assert_int_equal(cn_test_header_count(NULL, "set-cookie"), 0);
    assert_int_equal(cn_test_header_count(&r, NULL), 0);
    cn_test_response_free(&r);
    /* a target or method that would not make one request line */
    assert_int_equal(cn_test_get(c->tc, "/a b", &r), CN_EINVAL);
    assert_int_equal(cn_test_get(c->tc, "/a\r\nX-Evil: 1", &r), CN_EINVAL);
    assert_int_equal(cn_test_get(c->tc, "", &r), CN_EINVAL);
    assert_int_equal(cn_test_request(c->tc, "GE T", "/", NULL, NULL, 0, 0, &r), CN_EINVAL);
    assert_int_equal(cn_test_request(c->tc, "", "/", NULL, NULL, 0, 0, &r), CN_EINVAL);
    assert_int_equal(cn_test_request(c->tc, "POST", "/", NULL, NULL, 3, 0, &r), CN_EINVAL);
    assert_int_equal(cn_test_stream(c->tc, "GET", "/\n", NULL, NULL, 0, 0, &r), CN_EINVAL);
    memset(&r, 0xff, sizeof r); /* whatever it held */
    assert_int_equal(
        cn_test_stream(c->tc, "GET", "/", (const char *const[]){"X", NULL}, NULL, 0, 0, &r),
        CN_EBADHEADER);
    /* after an error the response holds nothing */
    assert_int_equal(r.status, 0);
    assert_null(r.body);
    assert_int_equal(r.nheaders, 0);
    cn_test_response_free(&r);
    assert_int_equal(cn_test_read(c->tc, buf, sizeof buf, 0), CN_ESTATE);
    assert_int_equal(cn_test_read(c->tc, NULL, 1, 0), CN_EINVAL);
    assert_int_equal(cn_test_read(c->tc, buf, 0, 0), CN_EINVAL);
    assert_int_equal(cn_test_read(NULL, buf, sizeof buf, 0), CN_EINVAL);
    cn_test_stream_close(NULL);
    /* none of that reached the app, nor closed the connection */
    h_tc_assert_healthy(c);
    assert_int_equal(h_tc_stats(c).requests_total, 2);
    assert_int_equal(h_tc_stats(c).connections_accepted, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_stream_as_it_comes, h_tc_teardown),
        cmocka_unit_test_teardown(test_stream_head, h_tc_teardown),
        cmocka_unit_test_teardown(test_read_timeout, h_tc_teardown),
        cmocka_unit_test_teardown(test_stream_close_leaves, h_tc_teardown),
        cmocka_unit_test_teardown(test_settle, h_tc_teardown),
        cmocka_unit_test_teardown(test_run_until, h_tc_teardown),
        cmocka_unit_test_teardown(test_idle_connection_closed, h_tc_teardown),
        cmocka_unit_test_teardown(test_headers_and_arguments, h_tc_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
