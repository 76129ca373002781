/*
 * test_prom.c -- the Prometheus text (src/prom.h) from snapshots made up
 * here: the format (checked line by line by prom_text.c), the naming
 * conventions, every figure landing in its sample with times in seconds,
 * numbers that a decimal-comma locale cannot touch, snprintf-style
 * truncation; and the checker itself refusing what the format forbids.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prom.h"
#include "prom_text.h"

/* The whole text of f, malloc'd. */
static char *render(const cn__prom_figures *f)
{
    size_t n = cn__prom_render(f, NULL, 0, NULL, 0);
    char *text = malloc(n + 1);

    assert_non_null(text);
    assert_int_equal(cn__prom_render(f, NULL, 0, text, n + 1), n);
    assert_int_equal(strlen(text), n);
    return text;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Every metric has HELP and TYPE, a canteen_ name, _total on counters only;
 * the summaries are times, with _sum and _count. */
static void test_format_and_names(void **state)
{
    cn__prom_figures f = {0};
    char *text = render(&f);
    pt_text t = pt_parse(text);

    (void)state;
    assert_true(t.n >= 30);
    for (size_t i = 0; i < t.n; i++) {
        const pt_sample *s = &t.samples[i];
        assert_true(strncmp(s->name, "canteen_", 8) == 0);
        assert_true(s->help[0] != 0);
        if (strcmp(s->type, "counter") == 0)
            assert_true(ends_with(s->name, "_total"));
        else if (strcmp(s->type, "gauge") == 0)
            assert_false(ends_with(s->name, "_total"));
        else if (strcmp(s->type, "summary") == 0)
            assert_true(ends_with(s->name, "_seconds_sum") || ends_with(s->name, "_seconds_count"));
        else
            fail_msg("%s: unexpected type %s", s->name, s->type);
        /* a counter x_total or a summary x: no other metric may be named x,
         * or client libraries (which name such metrics x) read two as one */
        if (strcmp(s->type, "gauge") != 0) {
            char base[128];
            snprintf(base, sizeof base, "%.*s", (int)(strrchr(s->name, '_') - s->name), s->name);
            for (size_t j = 0; j < t.n; j++)
                if (strcmp(t.samples[j].name, base) == 0)
                    fail_msg("%s and %s are one metric to a client library", s->name, base);
        }
        /* a time is in seconds, and says so */
        assert_null(strstr(s->name, "_ms"));
        if (strcmp(s->name, "canteen_build_info") == 0)
            assert_true(s->value == 1.0);
        else
            assert_true(s->value == 0.0);
    }
    assert_string_equal(
        pt_find(&t, "canteen_build_info", "version=\"" CN_VERSION_STRING "\"")->type, "gauge");
    pt_free(&t);
    free(text);
}

/* Each figure of the snapshot shows in its own sample, ms as seconds. */
static void test_values(void **state)
{
    cn__prom_figures f = {0};
    char *text;
    pt_text t;

    (void)state;
    f.app.connections_accepted = 7;
    f.app.connections_active = 3;
    f.app.connections_rejected = 2;
    f.app.requests_total = 42;
    f.app.requests_active = 1;
    f.app.coroutines_live = 5;
    f.app.responses_1xx = 11;
    f.app.responses_2xx = 12;
    f.app.responses_3xx = 13;
    f.app.responses_4xx = 14;
    f.app.responses_5xx = 15;
    f.app.fetch_connects = 4;
    f.app.fetch_requests = 9;
    f.app.fetch_failures = 6;
    f.app.write_queue_peak = 262144;
    f.pool.threads = 40;
    f.pool.busy = 2;
    f.pool.queue_depth = 8;
    f.pool.submitted = 100;
    f.pool.started = 92;
    f.pool.completed = 90;
    f.pool.cancelled = 3;
    f.pool.wait_ms_sum = 1500.25;
    f.pool.wait_ms_max = 0.000001; /* 1 ns */
    f.loop.lag_ms_last = 225;
    f.loop.lag_ms_max = 1000;
    f.loop.lag_ms_sum = 12345;
    f.loop.lag_samples = 77;
    f.loop.slow_steps = 1;
    f.loop.slowest_ms = 300.105173;
    f.loop.busy_turns = 18446744073709551615u;
    f.loop.busiest_turn_ms = 0.5;
    text = render(&f);
    t = pt_parse(text);

    assert_true(pt_value(&t, "canteen_connections_accepted_total", "") == 7);
    assert_true(pt_value(&t, "canteen_connections_open", "") == 3);
    assert_true(pt_value(&t, "canteen_connections_rejected_total", "") == 2);
    assert_true(pt_value(&t, "canteen_requests_total", "") == 42);
    assert_true(pt_value(&t, "canteen_requests_in_flight", "") == 1);
    assert_true(pt_value(&t, "canteen_coroutines_live", "") == 5);
    assert_true(pt_value(&t, "canteen_responses_total", "class=\"1xx\"") == 11);
    assert_true(pt_value(&t, "canteen_responses_total", "class=\"2xx\"") == 12);
    assert_true(pt_value(&t, "canteen_responses_total", "class=\"3xx\"") == 13);
    assert_true(pt_value(&t, "canteen_responses_total", "class=\"4xx\"") == 14);
    assert_true(pt_value(&t, "canteen_responses_total", "class=\"5xx\"") == 15);
    assert_true(pt_value(&t, "canteen_fetch_connections_total", "") == 4);
    assert_true(pt_value(&t, "canteen_fetch_requests_total", "") == 9);
    assert_true(pt_value(&t, "canteen_fetch_failures_total", "") == 6);
    assert_true(pt_value(&t, "canteen_write_queue_peak_bytes", "") == 262144);
    assert_true(pt_value(&t, "canteen_pool_threads", "") == 40);
    assert_true(pt_value(&t, "canteen_pool_threads_busy", "") == 2);
    assert_true(pt_value(&t, "canteen_pool_jobs_queued", "") == 8);
    assert_true(pt_value(&t, "canteen_pool_jobs_submitted_total", "") == 100);
    assert_true(pt_value(&t, "canteen_pool_jobs_completed_total", "") == 90);
    assert_true(pt_value(&t, "canteen_pool_jobs_cancelled_total", "") == 3);
    assert_true(pt_value(&t, "canteen_pool_queue_wait_seconds_sum", "") == 1.50025);
    assert_true(pt_value(&t, "canteen_pool_queue_wait_seconds_count", "") == 92);
    assert_true(pt_value(&t, "canteen_pool_queue_wait_max_seconds", "") == 1e-9);
    assert_true(pt_value(&t, "canteen_loop_lag_seconds", "") == 0.225);
    assert_true(pt_value(&t, "canteen_loop_lag_max_seconds", "") == 1);
    assert_true(pt_value(&t, "canteen_loop_lag_probe_seconds_sum", "") == 12.345);
    assert_true(pt_value(&t, "canteen_loop_lag_probe_seconds_count", "") == 77);
    assert_true(pt_value(&t, "canteen_loop_slow_steps_total", "") == 1);
    assert_true(pt_value(&t, "canteen_loop_slowest_step_seconds", "") == 0.300105173);
    assert_true(pt_value(&t, "canteen_loop_busy_turns_total", "") == 18446744073709551615.0);
    assert_true(pt_value(&t, "canteen_loop_busiest_turn_seconds", "") == 0.0005);
    pt_free(&t);

    /* written as plain decimals, whatever the locale's decimal point */
    assert_non_null(strstr(text, "\ncanteen_loop_lag_seconds 0.225\n"));
    assert_non_null(strstr(text, "\ncanteen_loop_lag_max_seconds 1\n"));
    assert_non_null(strstr(text, "\ncanteen_pool_queue_wait_max_seconds 0.000000001\n"));
    assert_non_null(strstr(text, "\ncanteen_loop_busy_turns_total 18446744073709551615\n"));
    free(text);
}

/* Like snprintf: the full length back, a NUL-terminated prefix in buf. */
static void test_truncation(void **state)
{
    cn__prom_figures f = {0};
    char *full = render(&f), *tight, small[100], one[1] = {'x'};
    size_t n = strlen(full);

    (void)state;
    assert_int_equal(cn__prom_render(&f, NULL, 0, small, sizeof small), n);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_memory_equal(small, full, sizeof small - 1);
    assert_int_equal(cn__prom_render(&f, NULL, 0, one, 1), n);
    assert_int_equal(one[0], 0);
    /* exactly the length: one byte short of the NUL */
    tight = malloc(n);
    assert_non_null(tight);
    assert_int_equal(cn__prom_render(&f, NULL, 0, tight, n), n);
    assert_int_equal(strlen(tight), n - 1);
    free(tight);
    free(full);
}

/* The checker the /metrics tests rely on refuses what the format does not allow. */
static void test_checker_rejects_bad_text(void **state)
{
    static const struct {
        const char *text, *why;
    } bad[] = {
        {"x 1\n", "no TYPE line before it"},
        {"# TYPE x gauge\nx 1", "does not end with a line feed"},
        {"# TYPE x gauge\nx abc\n", "is not a float"},
        {"# TYPE x gauge\nx 0x1p3\n", "is not a float"},
        {"# TYPE 1x gauge\n1x 1\n", "without a valid metric name"},
        {"# TYPE x-y gauge\nx-y 1\n", "without a valid metric name"},
        {"# TYPE x gauge\n# TYPE x gauge\nx 1\n", "a second TYPE"},
        {"# HELP x a\n# HELP x b\n# TYPE x gauge\nx 1\n", "a second HELP"},
        {"# HELP x a\\b\n# TYPE x gauge\nx 1\n", "a backslash"},
        {"# TYPE x gauge\nx{a=\"1\"} 1\n# TYPE y gauge\ny 1\nx{a=\"2\"} 1\n", "two groups"},
        {"# TYPE x gauge\nx 1\nx 2\n", "appears twice"},
        {"# TYPE x gauge\nx{__a=\"1\"} 1\n", "reserved"},
        {"# TYPE x gauge\nx{1a=\"1\"} 1\n", "label name"},
        {"# TYPE x gauge\nx{a=\"\\q\"} 1\n", "invalid escape"},
        {"# TYPE x gauge\nx{a=\"1\" b=\"2\"} 1\n", "commas"},
        {"# TYPE x foo\nx 1\n", "not a known type"},
        {"# TYPE x gauge\nx 1 12a\n", "timestamp"},
        {"x 1\n# TYPE x gauge\n", "no TYPE line before it"},
        {"# TYPE x counter\nx_sum 1\n", "no TYPE line before it"},
    };
    const char *good = "# HELP s a \\\\ and\\n\n# TYPE s summary\ns_sum 1.5e3\ns_count 2\n"
                       "# TYPE g gauge\ng{a=\"x\\\"y\",b=\"\"} -Inf 1700000000000\ng NaN\n";
    char why[512];
    pt_text t;

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (pt_check(bad[i].text, &t, why, sizeof why) == 0)
            fail_msg("accepted: %s", bad[i].text);
        if (strstr(why, bad[i].why) == NULL)
            fail_msg("'%s': wrong reason: %s", bad[i].text, why);
        assert_int_equal(t.n, 0);
    }
    if (pt_check(good, &t, why, sizeof why) < 0)
        fail_msg("refused valid text: %s", why);
    assert_int_equal(t.n, 4);
    assert_true(pt_value(&t, "s_sum", "") == 1500);
    assert_string_equal(pt_find(&t, "s_count", "")->type, "summary");
    assert_true(pt_value(&t, "g", "a=\"x\\\"y\",b=\"\"") < 0);
    pt_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_and_names),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_checker_rejects_bad_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
