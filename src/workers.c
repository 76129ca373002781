/*
 * workers.c -- the table a supervisor shares with its workers, and a
 * worker's side: its signals, its heartbeat, the accept balance, and the
 * whole server's metrics (workers.h).
 *
 * The accept balance. Every worker waits on the one inherited listener, and
 * the kernel wakes them all when a connection comes; libuv then accepts in
 * a loop until the queue is empty, so the worker that wakes first takes a
 * whole burst (64 connections of a starting load generator went 13/52,
 * 22/43, 22/43 to two workers; docs/benchmarks.md, "Workers"). A worker
 * holding more connections than the least busy one plus a margin turns on
 * single-accept mode (accept.c: one accept per wake-up, which leaves the
 * next connection to a sibling) and back off once it is level again: 32/33 in the same test, at no
 * cost while the load is even.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "canteen/uv.h"
#include "common.h"
#include "workers.h"

/* How often a worker beats and publishes its figures. */
#define BEAT_MS 250

uint64_t cn__mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- the table ---- */

cn__wtable *cn__wtable_new(void)
{
    void *p =
        mmap(NULL, sizeof(cn__wtable), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    return p == MAP_FAILED ? NULL : p; /* zeroed: every slot free */
}

void cn__wtable_free(cn__wtable *t)
{
    if (t)
        munmap(t, sizeof(*t));
}

static void table_begin(cn__wtable *t)
{
    atomic_fetch_add(&t->seq, 1);
}

static void table_end(cn__wtable *t)
{
    atomic_fetch_add(&t->seq, 1);
}

/* A slot's latest whole figures. False if none could be read (a writer
 * that keeps writing, or one killed mid-write on both copies). */
static bool read_figs(cn__wslot *s, cn__prom_figures *out)
{
    for (int tries = 0; tries < 64; tries++) {
        unsigned i = atomic_load(&s->cur) & 1;
        uint32_t a = atomic_load(&s->figs[i].seq), b;

        if (a & 1)
            continue;
        memcpy(out, &s->figs[i].f, sizeof(*out));
        atomic_thread_fence(memory_order_acquire);
        b = atomic_load(&s->figs[i].seq);
        if (a == b)
            return true;
    }
    memset(out, 0, sizeof(*out));
    return false;
}

/* The worker's side: write the copy not in use, then make it the latest. */
static void publish(cn__wslot *s, const cn__prom_figures *f)
{
    unsigned i = (atomic_load(&s->cur) & 1) ^ 1;

    atomic_fetch_add(&s->figs[i].seq, 1);
    atomic_thread_fence(memory_order_release);
    memcpy(&s->figs[i].f, f, sizeof(*f));
    atomic_thread_fence(memory_order_release);
    atomic_fetch_add(&s->figs[i].seq, 1);
    atomic_store(&s->cur, i);
}

int cn__wtable_claim(cn__wtable *t)
{
    for (int i = 0; i < CN__WORKER_SLOTS; i++) {
        cn__wslot *s = &t->slots[i];
        if (atomic_load(&s->state) != CN__W_FREE)
            continue;
        table_begin(t);
        atomic_store(&s->pid, 0);
        atomic_store(&s->heartbeat_ms, cn__mono_ms());
        atomic_store(&s->conns, 0);
        atomic_store(&s->cur, 0);
        for (int k = 0; k < 2; k++) {
            atomic_store(&s->figs[k].seq, 0);
            memset(&s->figs[k].f, 0, sizeof(s->figs[k].f));
        }
        atomic_store(&s->state, CN__W_STARTING);
        if ((unsigned)i + 1 > atomic_load(&t->hi))
            atomic_store(&t->hi, (unsigned)i + 1);
        table_end(t);
        return i;
    }
    return -1;
}

void cn__wtable_release(cn__wtable *t, int slot)
{
    cn__wslot *s = &t->slots[slot];
    cn__prom_figures f;

    read_figs(s, &f);
    table_begin(t);
    cn__prom_merge(&t->retired, &f, false);
    atomic_store(&s->state, CN__W_FREE);
    table_end(t);
}

/* ---- a worker ---- */

struct cn__worker {
    cn_app *app;
    cn__wtable *t;
    cn__wslot *slot;
    int index; /* of its slot */
    int id;    /* its number */
    int notify_fd;
    uv_timer_t beat;
    uv_signal_t sig_term, sig_quit;
    pid_t supervisor;
    bool stopping;
};

int cn__worker_id(const cn__worker *w)
{
    return w->id;
}

static void beat_now(cn__worker *w)
{
    cn__prom_figures f;

    atomic_store(&w->slot->heartbeat_ms, cn__mono_ms());
    cn__app_snapshot(w->app, &f);
    publish(w->slot, &f);
}

/* The least busy ready sibling's open connections (UINT64_MAX: none). */
static uint64_t least_sibling(cn__worker *w)
{
    unsigned hi = atomic_load_explicit(&w->t->hi, memory_order_relaxed);
    uint64_t least = UINT64_MAX;

    for (unsigned i = 0; i < hi; i++) {
        cn__wslot *s = &w->t->slots[i];
        if ((int)i == w->index ||
            atomic_load_explicit(&s->state, memory_order_relaxed) != CN__W_READY)
            continue;
        uint64_t c = atomic_load_explicit(&s->conns, memory_order_relaxed);
        if (c < least)
            least = c;
    }
    return least;
}

/*
 * Keep-alive connections stay where they were accepted: after a sibling
 * was replaced (or added by SIGTTIN) it would have none of them. A worker
 * holding many more than the least busy sibling lets half the difference
 * go, each after its next response (Connection: close); their clients
 * reconnect, and the accept balance sends them to the sibling.
 */
static void rebalance(cn__worker *w)
{
    uint64_t mine = atomic_load(&w->slot->conns), least = least_sibling(w), shed = 0;

    if (!w->stopping && least != UINT64_MAX && mine > least + 2 + least / 8)
        shed = (mine - least) / 2;
    cn__app_set_shed(w->app, (unsigned)shed);
}

static void on_beat(uv_timer_t *t)
{
    cn__worker *w = t->data;

    beat_now(w);
    rebalance(w);
    /* an orphan would hold the port with nobody to stop it: drain and go */
    if (!w->stopping && getppid() != w->supervisor) {
        cn__log(CN__LOG_WARN, "worker %d: the supervisor is gone; stopping", w->id);
        w->stopping = true;
        atomic_store(&w->slot->state, CN__W_STOPPING);
        cn_app_stop(w->app);
    }
}

/* SIGTERM: drain, once (systemd's KillMode=control-group sends it to every
 * process, and the supervisor forwards its own: the second is no hurry). */
static void on_term(uv_signal_t *s, int signum)
{
    cn__worker *w = s->data;

    (void)signum;
    if (w->stopping)
        return;
    w->stopping = true;
    atomic_store(&w->slot->state, CN__W_STOPPING);
    cn_app_stop(w->app);
}

/* SIGQUIT, from the supervisor on a second stop signal: stop waiting. */
static void on_quit(uv_signal_t *s, int signum)
{
    cn__worker *w = s->data;

    (void)signum;
    w->stopping = true;
    atomic_store(&w->slot->state, CN__W_STOPPING);
    cn_app_stop(w->app);
    cn_app_stop(w->app);
}

void cn__worker_running(cn__worker *w)
{
    ssize_t n;

    if (!w->stopping)
        atomic_store(&w->slot->state, CN__W_READY);
    beat_now(w);
    /* wake the supervisor (it reads the state from the table) */
    do
        n = write(w->notify_fd, "r", 1);
    while (n < 0 && errno == EINTR);
}

void cn__worker_conns(cn__worker *w, uint64_t open)
{
    atomic_store_explicit(&w->slot->conns, open, memory_order_relaxed);
}

bool cn__worker_accepted(cn__worker *w, uint64_t open)
{
    uint64_t least;

    cn__worker_conns(w, open);
    least = least_sibling(w);
    /* ahead of the least busy sibling by more than one and 1/16: let the
     * next connections go to the others */
    return least == UINT64_MAX || open <= least + 1 + least / 16;
}

size_t cn__worker_render(cn__worker *w, const cn__prom_figures *mine, const cn__prom_ext *ext,
                         size_t next, char *buf, size_t size)
{
    cn__wtable *t = w->t;
    cn__prom_worker *list = malloc(CN__WORKER_SLOTS * sizeof(*list));
    cn__prom_server srv;
    size_t len;

    if (list == NULL) {
        /* no room for the others: this worker's figures, said plainly */
        return cn__prom_render(mine, ext, next, buf, size);
    }
    /* ours first, so that the text shows them as they are now */
    publish(w->slot, mine);
    memset(&srv, 0, sizeof srv);
    for (int tries = 0; tries < 100; tries++) {
        uint32_t a = atomic_load(&t->seq), b;
        unsigned hi = atomic_load(&t->hi), n = 0;

        if (a & 1) {
            sched_yield();
            continue;
        }
        srv.total = t->retired;
        for (unsigned i = 0; i < hi; i++) {
            cn__wslot *s = &t->slots[i];
            int st = atomic_load(&s->state);
            if (st == CN__W_FREE)
                continue;
            list[n].id = atomic_load(&s->number);
            list[n].pid = atomic_load(&s->pid);
            list[n].state = st;
            list[n].draining = st == CN__W_STOPPING;
            read_figs(s, &list[n].f);
            cn__prom_merge(&srv.total, &list[n].f, true);
            n++;
        }
        srv.n = n;
        b = atomic_load(&t->seq);
        if (a == b)
            break;
    }
    srv.workers = list;
    srv.target = atomic_load(&t->target);
    srv.restarts = atomic_load(&t->restarts);
    len = cn__prom_render_server(&srv, ext, next, buf, size);
    free(list);
    return len;
}

/* Signals a worker leaves to its supervisor: Ctrl-C reaches the whole
 * process group, a rolling restart or a resize is the supervisor's. */
static void ignore_signals(void)
{
    static const int ignored[] = {SIGINT, SIGHUP, SIGTTIN, SIGTTOU};
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < CN__ARRAY_SIZE(ignored); i++)
        sigaction(ignored[i], &sa, NULL);
}

_Noreturn void cn__worker_main(cn_app *app, cn__wtable *t, int slot, int notify_fd,
                               const sigset_t *mask)
{
    static cn__worker w;
    uv_loop_t *loop;
    int rc;

    w.app = app;
    w.t = t;
    w.slot = &t->slots[slot];
    w.index = slot;
    w.id = atomic_load(&w.slot->number);
    w.notify_fd = notify_fd;
    w.supervisor = getppid();
#ifdef __linux__
    /* the supervisor killed (-9): SIGTERM, a graceful stop; the heartbeat
     * also looks (in case it died before this line) */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
    atomic_store(&w.slot->pid, (int)getpid());
    atomic_store(&w.slot->heartbeat_ms, cn__mono_ms());
    rc = cn__app_fork_child(app, &w);
    if (rc < 0) {
        cn__log(CN__LOG_ERROR, "worker %d: cannot set up its loop: %s", w.id, cn_strerror(rc));
        _exit(3);
    }
    loop = cn_app_loop(app);
    ignore_signals();
    /* none of these keeps the loop running: the app's own handles do */
    uv_signal_init(loop, &w.sig_term);
    uv_signal_init(loop, &w.sig_quit);
    w.sig_term.data = w.sig_quit.data = &w;
    uv_signal_start(&w.sig_term, on_term, SIGTERM);
    uv_signal_start(&w.sig_quit, on_quit, SIGQUIT);
    uv_unref((uv_handle_t *)&w.sig_term);
    uv_unref((uv_handle_t *)&w.sig_quit);
    uv_timer_init(loop, &w.beat);
    w.beat.data = &w;
    uv_timer_start(&w.beat, on_beat, BEAT_MS, BEAT_MS);
    uv_unref((uv_handle_t *)&w.beat);
    /* what the supervisor held back during the fork arrives now */
    pthread_sigmask(SIG_SETMASK, mask, NULL);
    rc = cn_app_run(app);
    /* the last figures, for the supervisor to keep once this one is gone */
    beat_now(&w);
    fflush(NULL);
    _exit(rc < 0 ? 3 : 0);
}
