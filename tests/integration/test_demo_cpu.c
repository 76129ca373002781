/*
 * test_demo_cpu.c -- the demo's CPU-bound GET /cpu holds at most one
 * worker per usable core (its pool_limit): with two clients more than
 * that, the two wait in the route's line without a worker while the other
 * routes are served, and every worker comes free when the clients leave.
 *
 * The test waits on the pool's figures (bounded polls), never on time.
 */
#include <sched.h>
#include <stdlib.h>

#include "demo.h"
#include "harness.h"

static cn_pool_stats pool_stats(h_server *s)
{
    cn_pool_stats ps;
    cn_app_pool_stats(s->app, &ps);
    return ps;
}

/* What the demo counts: the cores this process may run on. */
static unsigned usable_cores(void)
{
    cpu_set_t set;

    assert_int_equal(sched_getaffinity(0, sizeof(set), &set), 0);
    return (unsigned)CPU_COUNT(&set);
}

static void test_cpu_route_takes_one_worker_per_core(void **state)
{
    unsigned cores = usable_cores();
    unsigned n = cores + 2;
    cn_config cfg = h_fast_config();
    h_conn **c = calloc(n, sizeof(*c));
    h_server *s;
    cJSON *o;
    cn_pool_stats ps;

    assert_non_null(c);
    cfg.pool_threads = cores + 4; /* room beside the route's share */
    cfg.pool_route_share = 100;   /* only the route's own limit applies */
    s = h_start(&cfg, NULL, NULL, NULL);
    *state = s;
    for (unsigned i = 0; i < n; i++)
        c[i] = h_send_get(s, "/cpu/2000000000");
    assert_true(H_WAIT_UNTIL((ps = pool_stats(s)).busy == cores && ps.route_waiting == 2, 5000));
    /* the rest of the pool serves everyone else meanwhile */
    o = h_get_json(s, "/to-thread/1", 200);
    cJSON_Delete(o);
    ps = pool_stats(s);
    assert_int_equal(ps.route_waits, 2);
    assert_true(ps.busy <= cores);
    /* the clients leave: the running sums see it, the waiting ones never run */
    for (unsigned i = 0; i < n; i++)
        h_close(c[i]);
    assert_true(H_WAIT_UNTIL((ps = pool_stats(s)).busy == 0 && ps.route_waiting == 0, 10000));
    h_assert_settles(s);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_cpu_route_takes_one_worker_per_core, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
