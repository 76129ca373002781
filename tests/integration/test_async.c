/*
 * test_async.c -- handlers that wait (coroutines) and sync handlers (the
 * pool) over real sockets: in-flight requests at shutdown, cancellation when
 * the client goes away, concurrency, order of pipelined answers.
 *
 * Uses the demo's GET /sleep/{ms} (cn_sleep in an async handler) and
 * GET /sync-sleep/{ms} (a blocking sleep in a sync handler).
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static h_server *start(void **state, const cn_config *cfg)
{
    h_server *s = h_start(cfg, NULL, h_test_routes, NULL);
    *state = s;
    return s;
}

/* Many parked handlers at once: all ten are parked together (the total is
 * the longest wait, not the sum). */
static void test_concurrent_sleeps(void **state)
{
    h_server *s = start(state, NULL);
    h_conn *cs[10];
    int64_t t0 = h_now_ms(), dt;

    for (int i = 0; i < 10; i++) {
        cs[i] = h_open(s);
        h_sends(cs[i], "GET /sleep/2000 HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    assert_true(H_WAIT_UNTIL(h_stats(s).requests_active == 10, H_TIMEOUT_MS));
    for (int i = 0; i < 10; i++) {
        h_response r;
        assert_int_equal(h_read_response(cs[i], &r, H_TIMEOUT_MS), H_OK);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "{\"slept_ms\":2000}");
        h_response_free(&r);
    }
    dt = h_now_ms() - t0;
    print_message("10 x /sleep/2000: %lld ms\n", (long long)dt);
    assert_true(dt >= 1990);
}

/*
 * GET `slow` on one connection and, once its handler runs, GET `fast` on
 * another: fast must be answered 200 while slow still waits (shown by the
 * order of the answers, not by a clock). Returns slow's connection, its
 * answer not read yet.
 */
static h_conn *answered_meanwhile(h_server *s, const char *slow, const char *fast)
{
    h_conn *sc = h_open(s), *fc = h_open(s);
    h_response r;

    h_sendf(sc, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", slow);
    assert_true(H_WAIT_UNTIL(h_stats(s).requests_active == 1, H_TIMEOUT_MS));
    h_sendf(fc, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", fast);
    assert_int_equal(h_read_response(fc, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    h_response_free(&r);
    assert_int_equal(h_expect_quiet(sc, 0), H_TIMEOUT);
    h_close(fc);
    return sc;
}

/* While a handler is parked, the loop answers others. */
static void test_parked_handler_does_not_block(void **state)
{
    h_server *s = start(state, NULL);
    h_conn *slow = answered_meanwhile(s, "/sleep/3000", "/users/5");
    h_response r;

    /* its 3 s, longer on a loaded machine */
    assert_int_equal(h_read_response(slow, &r, 20000), H_OK);
    assert_string_equal(r.body, "{\"slept_ms\":3000}");
    h_response_free(&r);
}

/* A blocking sync handler runs on the pool: the loop still answers. */
static void test_sync_handler_does_not_block(void **state)
{
    h_server *s = start(state, NULL);
    h_conn *slow = answered_meanwhile(s, "/sync-sleep/3000", "/health");
    h_response r;

    /* its 3 s, longer on a loaded machine (a sync sleep is 10 ms slices) */
    assert_int_equal(h_read_response(slow, &r, 20000), H_OK);
    assert_int_equal(r.status, 200);
    h_response_free(&r);
}

/* Pipelined requests with parked handlers are still answered in order. */
static void test_pipeline_order_with_parking(void **state)
{
    h_server *s = start(state, NULL);
    h_conn *c = h_open(s);
    static const char *const want[] = {
        "{\"slept_ms\":60}", "{\"id\":1,\"name\":\"user1\"}", "{\"slept_ms\":5}",
        "{\"slept_ms\":0}",  "{\"id\":2,\"name\":\"user2\"}",
    };

    h_sends(c, "GET /sleep/60 HTTP/1.1\r\nHost: t\r\n\r\n"
               "GET /users/1 HTTP/1.1\r\nHost: t\r\n\r\n"
               "GET /sleep/5 HTTP/1.1\r\nHost: t\r\n\r\n"
               "GET /sleep/0 HTTP/1.1\r\nHost: t\r\n\r\n"
               "GET /users/2 HTTP/1.1\r\nHost: t\r\n\r\n");
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        h_response r;
        assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
        assert_string_equal(r.body, want[i]);
        h_response_free(&r);
    }
}

/*
 * The client goes away while its handler is parked: the request is
 * cancelled at once (not when the 5 s sleep would have ended) and every
 * resource is returned.
 */
static void test_disconnect_cancels_parked_handler(void **state)
{
    h_server *s = start(state, NULL);
    h_conn *c = h_open(s);
    int64_t t0;

    h_sends(c, "GET /sleep/5000 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(H_WAIT_UNTIL(h_stats(s).requests_active == 1, H_TIMEOUT_MS));
    t0 = h_now_ms();
    h_close(c);
    assert_true(H_WAIT_UNTIL(h_stats(s).requests_active == 0, 2000));
    assert_true(H_WAIT_UNTIL(h_stats(s).coroutines_live == 0, 2000));
    assert_true(h_wait_active(s, 0, 2000));
    assert_true(h_now_ms() - t0 < 2000);
    h_assert_healthy(s);
}

/* In flight at shutdown: the answer is still sent (Connection: close). */
static void test_shutdown_waits_for_inflight(void **state)
{
    cn_config cfg = h_fast_config();
    h_server *s;
    h_conn *c, *idle;
    h_response r;

    cfg.shutdown_timeout_ms = 5000;
    cfg.keepalive_timeout_ms = 10000;
    s = start(state, &cfg);
    idle = h_open(s);
    h_sends(idle, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(h_read_response(idle, &r, H_TIMEOUT_MS), H_OK);
    h_response_free(&r);
    c = h_open(s);
    h_sends(c, "GET /sleep/400 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(H_WAIT_UNTIL(h_stats(s).requests_active == 1, H_TIMEOUT_MS));
    assert_int_equal(cn_app_stop(s->app), 0);
    assert_int_equal(h_expect_eof(idle, H_TIMEOUT_MS), H_OK);
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"slept_ms\":400}");
    assert_true(h_connection_has(&r, "close"));
    h_response_free(&r);
    assert_int_equal(h_expect_eof(c, H_TIMEOUT_MS), H_OK);
    h_close(c);
    h_close(idle);
    h_assert_run_ended(state, s);
}

/* Past shutdown_timeout_ms a parked handler is cancelled; run returns 0. */
static void test_shutdown_deadline_cancels_inflight(void **state)
{
    cn_config cfg = h_fast_config();
    h_server *s;
    h_conn *c;

    cfg.shutdown_timeout_ms = 300;
    s = start(state, &cfg);
    c = h_open(s);
    h_sends(c, "GET /sleep/10000 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(H_WAIT_UNTIL(h_stats(s).requests_active == 1, H_TIMEOUT_MS));
    h_stop_expect_dropped(state, s, c, 250, 3000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_concurrent_sleeps, h_teardown),
        cmocka_unit_test_teardown(test_parked_handler_does_not_block, h_teardown),
        cmocka_unit_test_teardown(test_sync_handler_does_not_block, h_teardown),
        cmocka_unit_test_teardown(test_pipeline_order_with_parking, h_teardown),
        cmocka_unit_test_teardown(test_disconnect_cancels_parked_handler, h_teardown),
        cmocka_unit_test_teardown(test_shutdown_waits_for_inflight, h_teardown),
        cmocka_unit_test_teardown(test_shutdown_deadline_cancels_inflight, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
