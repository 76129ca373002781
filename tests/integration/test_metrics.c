/*
 * test_metrics.c -- the Prometheus endpoint over real sockets: the demo's
 * GET /metrics scraped with libcurl and read back by a strict parser of the
 * text format (prom_text.h), then the figures moving by exactly what the
 * test did between two scrapes -- requests, responses by status class,
 * connections accepted and refused, pool jobs, a loop stall, outbound
 * fetches -- and the ways to mount it: another path, a handler of one's
 * own, a sync route, and the errors of registering it.
 *
 * A scrape sees itself: its request is counted when it is routed, before
 * the text is made, and its response after. The deltas below say so.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "prom_text.h"

/* ------------------------------------------------------------------------ */
/* Scraping                                                                  */
/* ------------------------------------------------------------------------ */

/* GET path on a connection of its own (closed after): 200, the 0.0.4
 * content type, and a text the parser accepts. */
static pt_text scrape_path(h_server *s, const char *path)
{
    CURL *e = h_curl_new();
    h_http h;
    pt_text t;

    assert_int_equal(h_curl_get(e, s, path, &h), CURLE_OK);
    if (h.status != 200)
        fail_msg("GET %s: %ld %s", path, h.status, h.body);
    assert_non_null(strcasestr(h.headers, "\r\nContent-Type: " CN_METRICS_CONTENT_TYPE "\r\n"));
    t = pt_parse(h.body);
    h_http_free(&h);
    curl_easy_cleanup(e);
    return t;
}

static pt_text scrape(h_server *s)
{
    return scrape_path(s, "/metrics");
}

/* GET path n times on `e` (keep-alive), each answered `status`. */
static void get_n(CURL *e, h_server *s, const char *path, int n, long status)
{
    h_http h;

    for (int i = 0; i < n; i++) {
        assert_int_equal(h_curl_get(e, s, path, &h), CURLE_OK);
        if (h.status != status)
            fail_msg("GET %s: %ld, not %ld", path, h.status, status);
        h_http_free(&h);
    }
}

/* A sample's value as an integer (counters and counts). */
static int64_t ival(const pt_text *t, const char *name, const char *labels)
{
    return (int64_t)pt_value(t, name, labels);
}

/* How much a sample grew from one scrape to the next. */
static int64_t delta(const pt_text *a, const pt_text *b, const char *name, const char *labels)
{
    return ival(b, name, labels) - ival(a, name, labels);
}

static int64_t responses(const pt_text *t, const char *cls)
{
    char labels[32];

    snprintf(labels, sizeof labels, "class=\"%s\"", cls);
    return ival(t, "canteen_responses_total", labels);
}

static unsigned pool_busy(h_server *s)
{
    cn_pool_stats ps;

    cn_app_pool_stats(s->app, &ps);
    return ps.busy;
}

static uint64_t lag_probes(h_server *s)
{
    cn_loop_stats ls;

    cn_app_loop_stats(s->app, &ls);
    return ls.lag_samples;
}

/* The server at rest: no connection, no request, no coroutine. */
static void wait_idle(h_server *s)
{
    assert_true(H_WAIT_UNTIL(h_stats(s).connections_active == 0 &&
                                 h_stats(s).requests_active == 0 && h_stats(s).coroutines_live == 0,
                             3000));
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* ------------------------------------------------------------------------ */
/* Test routes                                                               */
/* ------------------------------------------------------------------------ */

/* GET /t/status/{code:int}: answers with that status */
static int rt_status(cn_req *req, cn_res *res)
{
    int64_t code;

    cn_req_param_int(req, "code", &code);
    return cn_res_text(res, (int)code, "status");
}

/* GET /t/block/{ms:int}: holds the loop (wrong on purpose) */
static int rt_block(cn_req *req, cn_res *res)
{
    int64_t ms;

    cn_req_param_int(req, "ms", &ms);
    h_block_ms(ms);
    return cn_res_text(res, 200, "blocked");
}

/* GET /t/fetch?port=N: one cn_fetch of http://127.0.0.1:N/health; the
 * fetch's error code as the body */
static int rt_fetch(cn_req *req, cn_res *res)
{
    int64_t port;
    cn_fetch_result r;
    cn_fetch_opts o = {0};

    if (cn_req_query_int(req, "port", &port) < 0)
        return cn_res_error(res, 400, "port");
    o.url = cn_req_sprintf(req, "http://127.0.0.1:%d/health", (int)port);
    o.timeout_ms = 5000;
    cn_fetch(&o, &r);
    return cn_res_text(res, 200, cn_req_sprintf(req, "%d %d", r.error, r.status));
}

/* GET /t/guarded: the metrics behind a token, through cn_res_metrics */
static int rt_guarded(cn_req *req, cn_res *res)
{
    const char *token = cn_req_header(req, "x-token");

    if (token == NULL || strcmp(token, "s3cret") != 0)
        return cn_res_error(res, 403, "Forbidden");
    return cn_res_metrics(req, res);
}

/* GET /t/twice: cn_res_metrics once, then again (refused) */
static atomic_int twice_rc = H_NOT_YET;
static int rt_twice(cn_req *req, cn_res *res)
{
    int rc = cn_res_metrics(req, res);

    atomic_store(&twice_rc, cn_res_metrics(req, res));
    return rc;
}

static int setup_routes(cn_app *app, void *arg)
{
    cn_route_opts sync = {.mode = CN_ROUTE_SYNC};
    int rc = 0;

    (void)arg;
    rc = rc ? rc : cn_app_route(app, "GET /t/status/{code:int}", rt_status, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/block/{ms:int}", rt_block, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/fetch", rt_fetch, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/guarded", rt_guarded, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /t/twice", rt_twice, NULL);
    rc = rc ? rc : cn_app_route_ex(app, "GET /t/sync-metrics", cn_res_metrics, NULL, &sync);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                     */
/* ------------------------------------------------------------------------ */

/* The demo's /metrics: the format, Prometheus' naming rules, every figure
 * there, and a scrape on an idle server seeing only itself. */
static void test_scrape_format(void **state)
{
    static const char *const expected[] = {
        "canteen_build_info",
        "canteen_connections_accepted_total",
        "canteen_connections_rejected_total",
        "canteen_connections_no_fd_total",
        "canteen_accept_pauses_total",
        "canteen_connections_stalled_total",
        "canteen_connections_open",
        "canteen_requests_total",
        "canteen_requests_in_flight",
        "canteen_responses_total",
        "canteen_coroutines_live",
        "canteen_pool_threads",
        "canteen_pool_threads_busy",
        "canteen_pool_jobs_queued",
        "canteen_pool_jobs_submitted_total",
        "canteen_pool_jobs_completed_total",
        "canteen_pool_jobs_cancelled_total",
        "canteen_pool_queue_wait_seconds_sum",
        "canteen_pool_queue_wait_seconds_count",
        "canteen_pool_queue_wait_max_seconds",
        "canteen_pool_jobs_rejected_total",
        "canteen_pool_jobs_expired_total",
        "canteen_pool_route_waits_total",
        "canteen_pool_jobs_route_waiting",
        "canteen_loop_lag_seconds",
        "canteen_loop_lag_max_seconds",
        "canteen_loop_lag_probe_seconds_sum",
        "canteen_loop_lag_probe_seconds_count",
        "canteen_loop_slow_steps_total",
        "canteen_loop_slowest_step_seconds",
        "canteen_loop_busy_turns_total",
        "canteen_loop_busiest_turn_seconds",
        "canteen_fetch_connections_total",
        "canteen_fetch_requests_total",
        "canteen_fetch_failures_total",
        "canteen_fetch_queue_timeouts_total",
        "canteen_background_tasks_started_total",
        "canteen_background_tasks_failed_total",
        "canteen_background_tasks_running",
    };
    h_server *s = h_start(NULL, NULL, NULL, NULL);
    pt_text t;

    *state = s;
    wait_idle(s);
    t = scrape(s);
    for (size_t i = 0; i < t.n; i++) {
        const pt_sample *x = &t.samples[i];
        bool counter = strcmp(x->type, "counter") == 0;
        assert_true(strncmp(x->name, "canteen_", 8) == 0);
        if (strcmp(x->type, "summary") == 0)
            assert_true(ends_with(x->name, "_sum") || ends_with(x->name, "_count"));
        else
            assert_true(counter || strcmp(x->type, "gauge") == 0);
        if (counter != ends_with(x->name, "_total"))
            fail_msg("%s is a %s: _total goes on counters and only there", x->name, x->type);
        assert_true(x->help[0] != 0);
        assert_true(x->value >= 0);
    }
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        bool found = false;
        for (size_t j = 0; j < t.n && !found; j++)
            found = strcmp(t.samples[j].name, expected[i]) == 0;
        if (!found)
            fail_msg("no %s in the scrape", expected[i]);
    }
    assert_int_equal(ival(&t, "canteen_build_info", "version=\"" CN_VERSION_STRING "\""), 1);
    assert_int_equal(ival(&t, "canteen_pool_threads", ""), cn_app_config(s->app)->pool_threads);
    /* the scrape is the only request, coroutine and connection */
    assert_int_equal(ival(&t, "canteen_requests_in_flight", ""), 1);
    assert_int_equal(ival(&t, "canteen_coroutines_live", ""), 1);
    assert_int_equal(ival(&t, "canteen_connections_open", ""), 1);
    pt_free(&t);
}

/* N requests make requests_total grow by exactly N, and each response is
 * counted in its status class; a request refused before routing counts as
 * a response but not as a request. */
static void test_requests_and_responses(void **state)
{
    enum { N = 25 };
    h_server *s = h_start(NULL, NULL, setup_routes, NULL);
    CURL *e = h_curl_new();
    pt_text a, b;
    h_response r;

    *state = s;
    a = scrape(s);
    get_n(e, s, "/health", N, 200);
    b = scrape(s);
    /* the N, and the second scrape itself (routed before it renders) */
    assert_int_equal(delta(&a, &b, "canteen_requests_total", ""), N + 1);
    /* the N, and the first scrape's answer (counted after it rendered) */
    assert_int_equal(responses(&b, "2xx") - responses(&a, "2xx"), N + 1);
    pt_free(&a);
    a = b;

    get_n(e, s, "/nope", 3, 404);
    get_n(e, s, "/t/status/302", 1, 302);
    get_n(e, s, "/t/status/304", 1, 304);
    get_n(e, s, "/t/status/503", 2, 503);
    /* two Host headers: 400 from the parser, never routed */
    h_roundtrip(s, "GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", &r);
    assert_int_equal(r.status, 400);
    h_response_free(&r);
    b = scrape(s);
    print_message("responses 2xx..5xx: %lld %lld %lld %lld\n", (long long)responses(&b, "2xx"),
                  (long long)responses(&b, "3xx"), (long long)responses(&b, "4xx"),
                  (long long)responses(&b, "5xx"));
    assert_int_equal(delta(&a, &b, "canteen_requests_total", ""), 3 + 2 + 2 + 1);
    assert_int_equal(responses(&b, "1xx") - responses(&a, "1xx"), 0);
    assert_int_equal(responses(&b, "2xx") - responses(&a, "2xx"), 1); /* the scrape before */
    assert_int_equal(responses(&b, "3xx") - responses(&a, "3xx"), 2);
    assert_int_equal(responses(&b, "4xx") - responses(&a, "4xx"), 3 + 1);
    assert_int_equal(responses(&b, "5xx") - responses(&a, "5xx"), 2);
    pt_free(&a);
    pt_free(&b);
    curl_easy_cleanup(e);
}

/* Connections accepted and open; one refused at max_connections counts as
 * rejected and as a 5xx response. */
static void test_connections(void **state)
{
    cn_config cfg = h_fast_config();
    h_server *s;
    h_conn *held[3], *over;
    h_response r;
    pt_text a, b, c;

    cfg.max_connections = 3;
    cfg.header_timeout_ms = 10000; /* idle connections are held, not timed out */
    s = h_start(&cfg, NULL, NULL, NULL);
    *state = s;
    wait_idle(s);
    a = scrape(s);
    wait_idle(s);
    held[0] = h_open(s);
    held[1] = h_open(s);
    assert_true(h_wait_active(s, 2, H_TIMEOUT_MS));
    b = scrape(s);
    /* the two held, and the scrape's own */
    assert_int_equal(ival(&b, "canteen_connections_open", ""), 3);
    assert_int_equal(delta(&a, &b, "canteen_connections_accepted_total", ""), 3);

    /* three open, then a fourth over max_connections = 3 */
    assert_true(h_wait_active(s, 2, H_TIMEOUT_MS));
    held[2] = h_open(s);
    assert_true(h_wait_active(s, 3, H_TIMEOUT_MS));
    over = h_open(s);
    assert_int_equal(h_read_response(over, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 503);
    h_response_free(&r);
    h_close(over);
    for (int i = 0; i < 3; i++)
        h_close(held[i]);
    wait_idle(s);
    c = scrape(s);
    assert_int_equal(delta(&b, &c, "canteen_connections_rejected_total", ""), 1);
    assert_int_equal(responses(&c, "5xx") - responses(&b, "5xx"), 1);
    /* the third held, the refused one, the scrape's own */
    assert_int_equal(delta(&b, &c, "canteen_connections_accepted_total", ""), 3);
    assert_int_equal(ival(&c, "canteen_connections_open", ""), 1);
    pt_free(&a);
    pt_free(&b);
    pt_free(&c);
}

/* Pool jobs (sync routes and cn_to_thread) show in the pool's counters; a
 * job held running shows as a busy worker and a request in flight. */
static void test_pool_jobs(void **state)
{
    h_server *s = h_start(NULL, NULL, NULL, NULL);
    CURL *e = h_curl_new();
    h_conn *c;
    h_response r;
    pt_text a, b;

    *state = s;
    a = scrape(s);
    get_n(e, s, "/sync-sleep/1", 3, 200);
    get_n(e, s, "/to-thread/1", 2, 200);
    b = scrape(s);
    assert_int_equal(delta(&a, &b, "canteen_pool_jobs_submitted_total", ""), 5);
    assert_int_equal(delta(&a, &b, "canteen_pool_queue_wait_seconds_count", ""), 5);
    assert_int_equal(delta(&a, &b, "canteen_pool_jobs_completed_total", ""), 5);
    assert_int_equal(delta(&a, &b, "canteen_pool_jobs_cancelled_total", ""), 0);
    assert_int_equal(ival(&b, "canteen_pool_jobs_queued", ""), 0);
    assert_int_equal(ival(&b, "canteen_pool_threads_busy", ""), 0);
    /* waits only add up; the longest is part of the sum */
    assert_true(pt_value(&b, "canteen_pool_queue_wait_seconds_sum", "") >=
                pt_value(&a, "canteen_pool_queue_wait_seconds_sum", ""));
    assert_true(pt_value(&b, "canteen_pool_queue_wait_seconds_sum", "") >=
                pt_value(&b, "canteen_pool_queue_wait_max_seconds", ""));
    pt_free(&a);

    /* a sync route holding its worker while we look */
    c = h_send_get(s, "/sync-sleep/500");
    assert_true(H_WAIT_UNTIL(pool_busy(s) == 1, H_TIMEOUT_MS));
    a = scrape(s);
    assert_int_equal(ival(&a, "canteen_pool_threads_busy", ""), 1);
    assert_int_equal(ival(&a, "canteen_requests_in_flight", ""), 2);
    assert_int_equal(delta(&b, &a, "canteen_pool_queue_wait_seconds_count", ""), 1);
    assert_int_equal(delta(&b, &a, "canteen_pool_jobs_completed_total", ""), 0);
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    h_response_free(&r);
    pt_free(&a);
    pt_free(&b);
    curl_easy_cleanup(e);
}

/* A handler that holds the loop: one slow step, at least as long as the
 * hold, and the lag probe sees the stall. */
static void test_loop_stall(void **state)
{
    h_server *s = h_start(NULL, NULL, setup_routes, NULL);
    pt_text a, b;
    h_response r;
    uint64_t probes;

    *state = s;
    h_log_reset();
    a = scrape(s);
    h_roundtrip(s, "GET /t/block/250 HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    h_response_free(&r);
    /* probes after the stall have reported it */
    probes = lag_probes(s);
    assert_true(H_WAIT_UNTIL(lag_probes(s) >= probes + 2, H_TIMEOUT_MS));
    b = scrape(s);
    print_message("slowest step %.3f s, lag max %.3f s, busiest turn %.3f s\n",
                  pt_value(&b, "canteen_loop_slowest_step_seconds", ""),
                  pt_value(&b, "canteen_loop_lag_max_seconds", ""),
                  pt_value(&b, "canteen_loop_busiest_turn_seconds", ""));
    assert_int_equal(delta(&a, &b, "canteen_loop_slow_steps_total", ""), 1);
    assert_true(pt_value(&b, "canteen_loop_slowest_step_seconds", "") >= 0.25);
    assert_true(delta(&a, &b, "canteen_loop_busy_turns_total", "") >= 1);
    assert_true(pt_value(&b, "canteen_loop_busiest_turn_seconds", "") >= 0.25);
    /* the probe (every 100 ms) fell due during the 250 ms stall */
    assert_true(pt_value(&b, "canteen_loop_lag_max_seconds", "") >= 0.1);
    assert_true(delta(&a, &b, "canteen_loop_lag_probe_seconds_count", "") >= 2);
    assert_true(pt_value(&b, "canteen_loop_lag_probe_seconds_sum", "") >=
                pt_value(&b, "canteen_loop_lag_max_seconds", ""));
    assert_int_equal(h_log_count(CN_LOG_WARN, "GET /t/block/{ms}", "blocked the event loop"), 1);
    pt_free(&a);
    pt_free(&b);
}

/* cn_fetch: one transfer answered (the app's own /health), one refused. */
static void test_fetch_counters(void **state)
{
    h_server *s = h_start(NULL, NULL, setup_routes, NULL);
    CURL *e = h_curl_new();
    char *path, *refused = h_strf("%d 0", CN_ECONNREFUSED);
    pt_text a, b;
    h_http h;

    *state = s;
    a = scrape(s);
    path = h_strf("/t/fetch?port=%d", s->port);
    assert_int_equal(h_curl_get(e, s, path, &h), CURLE_OK);
    assert_string_equal(h.body, "0 200");
    h_http_free(&h);
    free(path);
    path = h_strf("/t/fetch?port=%d", h_dead_port());
    assert_int_equal(h_curl_get(e, s, path, &h), CURLE_OK);
    assert_string_equal(h.body, refused);
    h_http_free(&h);
    free(path);
    free(refused);
    b = scrape(s);
    assert_int_equal(delta(&a, &b, "canteen_fetch_requests_total", ""), 2);
    assert_int_equal(delta(&a, &b, "canteen_fetch_failures_total", ""), 1);
    /* one new connection each: to ourselves, and the refused attempt */
    assert_int_equal(delta(&a, &b, "canteen_fetch_connections_total", ""), 2);
    pt_free(&a);
    pt_free(&b);
    curl_easy_cleanup(e);
}

/* ---- mounting it ---- */

static int route_rcs[4];

static int setup_mounts(cn_app *app, void *arg)
{
    (void)arg;
    route_rcs[0] = cn_app_metrics_route(app, NULL); /* the demo's /metrics is there */
    route_rcs[1] = cn_app_metrics_route(app, "internal/metrics");
    route_rcs[2] = cn_app_metrics_route(NULL, "/x");
    route_rcs[3] = cn_app_metrics_route(app, "/internal/metrics");
    return setup_routes(app, NULL);
}

/* Another path, behind a token of one's own, on a sync route; the errors. */
static void test_mounting(void **state)
{
    h_server *s = h_start(NULL, NULL, setup_mounts, NULL);
    h_response r;
    pt_text t;

    *state = s;
    assert_int_equal(route_rcs[0], CN_EEXIST);
    assert_int_equal(route_rcs[1], CN_EBADPATTERN);
    assert_int_equal(route_rcs[2], CN_EINVAL);
    assert_int_equal(route_rcs[3], 0);
    assert_int_equal(cn_app_metrics_route(s->app, "/late"), CN_ESTATE);

    t = scrape_path(s, "/internal/metrics");
    assert_true(pt_find(&t, "canteen_requests_total", "") != NULL);
    pt_free(&t);

    h_roundtrip(s, "GET /t/guarded HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    assert_int_equal(r.status, 403);
    h_response_free(&r);
    h_roundtrip(s, "GET /t/guarded HTTP/1.1\r\nHost: t\r\nX-Token: s3cret\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(h_header_get(&r, "content-type"), CN_METRICS_CONTENT_TYPE);
    t = pt_parse(r.body);
    assert_true(pt_find(&t, "canteen_requests_total", "") != NULL);
    pt_free(&t);
    h_response_free(&r);

    /* from a worker: the scrape is the busy worker it reports */
    t = scrape_path(s, "/t/sync-metrics");
    assert_int_equal(ival(&t, "canteen_pool_threads_busy", ""), 1);
    pt_free(&t);

    /* a second response refused, the first one sent */
    t = scrape_path(s, "/t/twice");
    pt_free(&t);
    assert_int_equal(atomic_load(&twice_rc), CN_ERESPONDED);
}

/* cn_app_metrics_render: snprintf's contract, and its errors. */
static void test_render_to_buffer(void **state)
{
    h_server *s = h_start(NULL, NULL, NULL, NULL);
    char small[64], *full;
    int n, m;
    pt_text t;

    *state = s;
    wait_idle(s); /* nothing moves while the test reads */
    n = cn_app_metrics_render(s->app, NULL, 0);
    assert_true(n > 0);
    full = malloc((size_t)n + 1);
    assert_non_null(full);
    assert_int_equal(cn_app_metrics_render(s->app, full, (size_t)n + 1), n);
    assert_int_equal(strlen(full), n);
    t = pt_parse(full);
    assert_int_equal(ival(&t, "canteen_requests_in_flight", ""), 0);
    pt_free(&t);
    m = cn_app_metrics_render(s->app, small, sizeof small);
    assert_int_equal(m, n);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_memory_equal(small, full, sizeof small - 1);
    assert_int_equal(cn_app_metrics_render(NULL, small, sizeof small), CN_EINVAL);
    assert_int_equal(cn_app_metrics_render(s->app, NULL, 10), CN_EINVAL);
    free(full);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_scrape_format, h_teardown),
        cmocka_unit_test_teardown(test_requests_and_responses, h_teardown),
        cmocka_unit_test_teardown(test_connections, h_teardown),
        cmocka_unit_test_teardown(test_pool_jobs, h_teardown),
        cmocka_unit_test_teardown(test_loop_stall, h_teardown),
        cmocka_unit_test_teardown(test_fetch_counters, h_teardown),
        cmocka_unit_test_teardown(test_mounting, h_teardown),
        cmocka_unit_test_teardown(test_render_to_buffer, h_teardown),
    };
    int rc;

    h_log_capture_start();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    h_log_capture_stop();
    return rc;
}
