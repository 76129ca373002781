/*
 * metrics.c -- loop lag and blocked-loop warnings.
 *
 * The scheduler times every coroutine step and reports the slow ones here
 * with the route's name: that is the warning ("GET /trap/blocking/{ms}
 * blocked the event loop for 200 ms"). User code runs on the loop only in
 * such steps; Canteen's own callbacks do not block. Each loop turn is also
 * measured -- the time since the previous turn minus the time spent waiting
 * in epoll (libuv's idle-time metric) -- and turns busier than the
 * threshold are counted (an overloaded loop, not necessarily a blocked
 * one). The lag probe is a repeating timer: how late it fires is how long a
 * request arriving at that moment would have waited.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "metrics.h"

struct cn__metrics {
    uv_loop_t *loop;
    uv_timer_t probe;
    uv_prepare_t prepare;
    uint64_t threshold_ns; /* 0: off */
    uint64_t interval_ms;
    uint64_t expected_ms;   /* when the probe should fire (loop time) */
    uint64_t iter_start_ns; /* previous prepare (0: the loop has not turned yet) */
    uint64_t iter_idle_ns;  /* idle time at that point */
    unsigned open_handles;
    /* the figures: written on the loop, read from any thread
     * (cn_app_loop_stats), one atomic each */
    struct {
        _Atomic double lag_ms_last, lag_ms_max, lag_ms_sum, slowest_ms, busiest_turn_ms;
        _Atomic uint64_t lag_samples, slow_steps, busy_turns;
    } st;
};

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)
#define STORE(x, v) atomic_store_explicit(&(x), (v), memory_order_relaxed)

static void on_probe(uv_timer_t *t)
{
    cn__metrics *m = t->data;
    uint64_t now = uv_now(m->loop);
    double lag = now > m->expected_ms ? (double)(now - m->expected_ms) : 0.0;

    /* The probe is armed in cn_app_new. If the app spent time before
     * cn_app_run (routes, a database, a model...), it fires overdue in the
     * loop's first turn, before anything ran on the loop: not a stall. */
    if (m->iter_start_ns == 0) {
        m->expected_ms = now + m->interval_ms;
        return;
    }
    STORE(m->st.lag_ms_last, lag);
    if (lag > LOAD(m->st.lag_ms_max))
        STORE(m->st.lag_ms_max, lag);
    /* the sum before the count: a reader never sees a sample counted
     * whose lag is not in the sum yet (the loop is their only writer) */
    STORE(m->st.lag_ms_sum, LOAD(m->st.lag_ms_sum) + lag);
    atomic_store_explicit(&m->st.lag_samples, LOAD(m->st.lag_samples) + 1, memory_order_release);
    m->expected_ms = now + m->interval_ms;
}

static void note_slow(cn__metrics *m, uint64_t ns)
{
    double ms = (double)ns / 1e6;

    STORE(m->st.slow_steps, LOAD(m->st.slow_steps) + 1);
    if (ms > LOAD(m->st.slowest_ms))
        STORE(m->st.slowest_ms, ms);
}

static void on_prepare(uv_prepare_t *p)
{
    cn__metrics *m = p->data;
    uint64_t now = uv_hrtime(), idle = uv_metrics_idle_time(m->loop);

    if (m->iter_start_ns && m->threshold_ns) {
        uint64_t wall = now - m->iter_start_ns, waited = idle - m->iter_idle_ns;
        uint64_t busy = wall > waited ? wall - waited : 0;
        /* A busy turn is counted, not logged: under load thousands of short
         * steps fill a turn without anyone blocking, and a warning there
         * would send people after a trap that is not in their code. What
         * does block (a long step) was named as it happened. */
        if (busy > m->threshold_ns) {
            double ms = (double)busy / 1e6;
            STORE(m->st.busy_turns, LOAD(m->st.busy_turns) + 1);
            if (ms > LOAD(m->st.busiest_turn_ms))
                STORE(m->st.busiest_turn_ms, ms);
        }
    }
    m->iter_start_ns = now;
    m->iter_idle_ns = idle;
}

cn__metrics *cn__metrics_new(uv_loop_t *loop, const cn_config *cfg)
{
    cn__metrics *m = calloc(1, sizeof(*m));

    if (m == NULL)
        return NULL;
    m->loop = loop;
    m->threshold_ns = cfg->slow_callback_ms > 0 ? (uint64_t)cfg->slow_callback_ms * 1000000u : 0;
    m->interval_ms = cfg->lag_interval_ms;
    /* idle-time accounting must be on before the loop first runs */
    uv_loop_configure(loop, UV_METRICS_IDLE_TIME);
    uv_timer_init(loop, &m->probe);
    uv_prepare_init(loop, &m->prepare);
    m->probe.data = m->prepare.data = m;
    m->open_handles = 2;
    m->expected_ms = uv_now(loop) + m->interval_ms;
    uv_timer_start(&m->probe, on_probe, m->interval_ms, m->interval_ms);
    uv_prepare_start(&m->prepare, on_prepare);
    uv_unref((uv_handle_t *)&m->probe);
    uv_unref((uv_handle_t *)&m->prepare);
    return m;
}

static void on_closed(uv_handle_t *h)
{
    cn__metrics *m = h->data;

    if (--m->open_handles == 0)
        free(m);
}

void cn__metrics_free(cn__metrics *m)
{
    if (m == NULL)
        return;
    uv_close((uv_handle_t *)&m->probe, on_closed);
    uv_close((uv_handle_t *)&m->prepare, on_closed);
}

void cn__metrics_step(cn__metrics *m, const char *label, const cn_req *req, uint64_t ns)
{
    if (m == NULL || m->threshold_ns == 0 || ns <= m->threshold_ns)
        return;
    note_slow(m, ns);
    cn_req_log(req, CN_LOG_WARN,
               "%s blocked the event loop for %.0f ms (threshold %.0f ms): use cn_sleep() "
               "instead of sleep(), and cn_to_thread() or a sync route for blocking or CPU-heavy "
               "work",
               label ? label : "a task", (double)ns / 1e6, (double)m->threshold_ns / 1e6);
}

void cn__metrics_loop_stats(const cn__metrics *m, cn_loop_stats *out)
{
    memset(out, 0, sizeof *out);
    out->lag_samples = atomic_load_explicit(&m->st.lag_samples, memory_order_acquire);
    out->lag_ms_sum = LOAD(m->st.lag_ms_sum);
    out->lag_ms_avg = out->lag_samples ? out->lag_ms_sum / (double)out->lag_samples : 0.0;
    out->lag_ms_last = LOAD(m->st.lag_ms_last);
    out->lag_ms_max = LOAD(m->st.lag_ms_max);
    out->slow_steps = LOAD(m->st.slow_steps);
    out->slowest_ms = LOAD(m->st.slowest_ms);
    out->busy_turns = LOAD(m->st.busy_turns);
    out->busiest_turn_ms = LOAD(m->st.busiest_turn_ms);
}
