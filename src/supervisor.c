/*
 * supervisor.c -- workers = N: the parent process, which forks the workers,
 * keeps them alive and passes the operator's signals on (workers.h).
 *
 * It is a plain poll(2) loop over a self-pipe (the signal handlers write
 * the signal's number into it, which is all they do) and a pipe the
 * workers write to when they are ready; every other fact comes from the
 * shared table and waitpid. No libuv here: the supervisor forks from its
 * loop, and a child must not inherit a loop's signal machinery. Its timers
 * are deadlines checked at each turn, and a turn comes at least every
 * TICK_MS.
 *
 * Restarts follow systemd's model (Restart=, RestartSec=, StartLimitBurst=):
 * a worker that dies after a stable run is replaced at once; one that dies
 * soon after it started waits 100 ms, then 200, 400... up to 10 s; five
 * startup failures in a row stop everything, since retrying would only
 * print the same error forever.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "app.h"
#include "common.h"
#include "workers.h"

#define TICK_MS 250
#define STABLE_MS 1000 /* up this long once ready: it did not "keep dying" */
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 10000
#define STARTUP_FAILURES_MAX 5
#define KILL_GRACE_MS 5000 /* after shutdown_timeout_ms, for the shutdown hooks */
#define MAX_PENDING CN__WORKER_SLOTS

/* A worker process, as the supervisor sees it. */
typedef struct proc {
    pid_t pid;
    int slot;     /* in the shared table */
    int number;   /* the worker's number: its replacement takes it again */
    unsigned gen; /* the SIGHUP generation it was started in */
    bool ready;
    bool asked;      /* told to stop (a roll, SIGTTOU, the shutdown) */
    pid_t replaces;  /* a roll's new worker: the old one it replaces */
    const char *why; /* why we killed it, or NULL */
    uint64_t started_ms, ready_ms, kill_at;
} proc;

typedef struct sup {
    cn_app *app;
    const cn_config *cfg;
    cn__wtable *t;
    proc procs[CN__WORKER_SLOTS];
    unsigned n;
    unsigned target;
    unsigned gen;
    struct {
        uint64_t at; /* when it may start */
        int number;  /* of the worker it replaces */
    } pending[MAX_PENDING];
    unsigned npending;
    unsigned streak;           /* workers in a row that died soon after starting */
    unsigned startup_failures; /* in a row */
    bool rolling;
    bool stopping;
    unsigned stop_signals;
    int rc;
    int notify[2];
} sup;

/* The self-pipe: written by the signal handlers and cn_app_stop. */
static int sig_pipe[2] = {-1, -1};
static atomic_flag busy = ATOMIC_FLAG_INIT;
static const int handled[] = {SIGTERM, SIGINT, SIGHUP, SIGTTIN, SIGTTOU, SIGCHLD};

static void on_signal(int signum)
{
    int saved = errno;
    unsigned char b = (unsigned char)signum;

    if (write(sig_pipe[1], &b, 1) < 0) {
        /* full: the supervisor has plenty to read already */
    }
    errno = saved;
}

void cn__supervisor_stop(void)
{
    unsigned char b = 0;

    if (sig_pipe[1] >= 0 && write(sig_pipe[1], &b, 1) < 0) {
        /* full: a wake-up is pending anyway */
    }
}

static int pipe_nb(int fds[2])
{
    if (pipe(fds) < 0)
        return -errno;
    for (int i = 0; i < 2; i++) {
        fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
        fcntl(fds[i], F_SETFD, FD_CLOEXEC);
    }
    return 0;
}

static const char *signame(int sig)
{
    const char *s = sigabbrev_np(sig);
    return s ? s : "?";
}

/* "exited with status 3", "was killed by SIGSEGV" */
static void describe(int status, char *buf, size_t size)
{
    if (WIFEXITED(status))
        snprintf(buf, size, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, size, "was killed by SIG%s", signame(WTERMSIG(status)));
    else
        snprintf(buf, size, "ended (status 0x%x)", (unsigned)status);
}

/* Workers alive and not told to stop. */
static unsigned serving(const sup *s)
{
    unsigned n = 0;

    for (unsigned i = 0; i < s->n; i++)
        n += !s->procs[i].asked;
    return n;
}

static proc *find(sup *s, pid_t pid)
{
    for (unsigned i = 0; i < s->n; i++)
        if (s->procs[i].pid == pid)
            return &s->procs[i];
    return NULL;
}

/* Fork worker `number`; in the child this never returns. NULL if it could not. */
static proc *start_worker(sup *s, int number, pid_t replaces)
{
    sigset_t all, old;
    int slot = cn__wtable_claim(s->t);
    pid_t pid;
    proc *p;

    if (slot < 0 || s->n == CN__WORKER_SLOTS) {
        cn__log(CN__LOG_ERROR, "supervisor: no room for another worker");
        if (slot >= 0)
            cn__wtable_release(s->t, slot);
        return NULL;
    }
    atomic_store(&s->t->slots[slot].number, number);
    /* buffered output would be written once by each process */
    fflush(NULL);
    /* no signal may reach the child's copy of our handlers, which would
     * write into our pipe: blocked until the child has its own */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pid = fork();
    if (pid == 0) {
        struct sigaction dfl;

        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigemptyset(&dfl.sa_mask);
        for (size_t i = 0; i < CN__ARRAY_SIZE(handled); i++)
            sigaction(handled[i], &dfl, NULL);
        close(sig_pipe[0]);
        close(sig_pipe[1]);
        sig_pipe[0] = sig_pipe[1] = -1;
        close(s->notify[0]);
        cn__worker_main(s->app, s->t, slot, s->notify[1], &old);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        cn__log(CN__LOG_ERROR, "supervisor: fork: %s", strerror(errno));
        cn__wtable_release(s->t, slot);
        return NULL;
    }
    atomic_store(&s->t->slots[slot].pid, (int)pid);
    p = &s->procs[s->n++];
    memset(p, 0, sizeof(*p));
    p->pid = pid;
    p->slot = slot;
    p->number = number;
    p->gen = s->gen;
    p->replaces = replaces;
    p->started_ms = cn__mono_ms();
    return p;
}

/* Worker `number` is to be started again after delay_ms. */
static void schedule(sup *s, uint64_t delay_ms, int number)
{
    if (s->npending < MAX_PENDING) {
        s->pending[s->npending].at = cn__mono_ms() + delay_ms;
        s->pending[s->npending].number = number;
        s->npending++;
    }
}

/* Whether some worker not told to stop, or one waiting to start, has it. */
static bool number_taken(const sup *s, int number)
{
    for (unsigned i = 0; i < s->n; i++)
        if (!s->procs[i].asked && s->procs[i].number == number)
            return true;
    for (unsigned i = 0; i < s->npending; i++)
        if (s->pending[i].number == number)
            return true;
    return false;
}

static int free_number(const sup *s)
{
    int n = 0;

    while (number_taken(s, n))
        n++;
    return n;
}

static void ask_stop(sup *s, proc *p, int sig)
{
    if (!p->asked)
        p->kill_at = cn__mono_ms() + s->cfg->shutdown_timeout_ms + KILL_GRACE_MS;
    p->asked = true;
    kill(p->pid, sig);
}

static void begin_stop(sup *s, const char *why)
{
    if (s->stopping) {
        /* a second stop: the workers stop waiting for their requests */
        cn__log(CN__LOG_WARN, "%s again: stopping now, cancelling the requests in flight",
                why ? why : "a stop");
        for (unsigned i = 0; i < s->n; i++)
            kill(s->procs[i].pid, SIGQUIT);
        return;
    }
    s->stopping = true;
    s->npending = 0;
    if (why)
        cn__log(CN__LOG_INFO, "%s: stopping %u worker(s) gracefully", why, s->n);
    for (unsigned i = 0; i < s->n; i++)
        ask_stop(s, &s->procs[i], SIGTERM);
}

static void on_ready(sup *s, proc *p)
{
    proc *old;

    p->ready = true;
    p->ready_ms = cn__mono_ms();
    s->startup_failures = 0;
    if (p->asked)
        return;
    old = p->replaces ? find(s, p->replaces) : NULL;
    if (old && !old->asked) {
        cn__log(CN__LOG_INFO, "worker %d (pid %d) ready; the old worker %d (pid %d) drains",
                p->number, (int)p->pid, old->number, (int)old->pid);
        ask_stop(s, old, SIGTERM);
    } else {
        cn__log(CN__LOG_INFO, "worker %d (pid %d) ready", p->number, (int)p->pid);
    }
    p->replaces = 0;
}

/* A worker is gone: forget it, and replace it if it went unasked. */
static void on_exit_(sup *s, unsigned i, int status)
{
    proc p = s->procs[i];
    uint64_t now = cn__mono_ms(), delay;
    char how[64];

    s->procs[i] = s->procs[--s->n];
    cn__wtable_release(s->t, p.slot);
    describe(status, how, sizeof how);
    if (p.asked || s->stopping) {
        if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
            cn__log(CN__LOG_WARN, "worker %d (pid %d) %s%s%s", p.number, (int)p.pid, how,
                    p.why ? ": " : " while stopping", p.why ? p.why : "");
        return;
    }
    if (!p.ready) {
        if (p.replaces) {
            /* a rolling restart's new worker: the old ones keep serving */
            cn__log(CN__LOG_ERROR,
                    "worker %d (pid %d) %s%s%s before it was ready: rolling restart abandoned, "
                    "the running workers stay",
                    p.number, (int)p.pid, how, p.why ? ": " : "", p.why ? p.why : "");
            for (unsigned k = 0; k < s->n; k++)
                s->procs[k].gen = s->gen;
            s->rolling = false;
            return;
        }
        s->startup_failures++;
        if (s->startup_failures >= STARTUP_FAILURES_MAX) {
            cn__log(CN__LOG_ERROR,
                    "worker %d (pid %d) %s%s%s before it was ready: %u workers in a row failed "
                    "at startup; stopping (the worker's own error is above)",
                    p.number, (int)p.pid, how, p.why ? ": " : "", p.why ? p.why : "",
                    s->startup_failures);
            s->rc = CN_EWORKERS;
            begin_stop(s, NULL);
            return;
        }
    }
    atomic_fetch_add(&s->t->restarts, 1);
    if (p.ready && now - p.ready_ms >= STABLE_MS)
        s->streak = 0;
    delay = 0;
    if (!(p.ready && now - p.ready_ms >= STABLE_MS)) {
        delay = BACKOFF_FIRST_MS << (s->streak < 7 ? s->streak : 7);
        if (delay > BACKOFF_MAX_MS)
            delay = BACKOFF_MAX_MS;
        s->streak++;
    }
    if (p.ready)
        cn__log(CN__LOG_WARN, "worker %d (pid %d) %s%s%s; %s", p.number, (int)p.pid, how,
                p.why ? ": " : "", p.why ? p.why : "",
                delay ? "replacing it soon" : "replacing it");
    else
        cn__log(CN__LOG_WARN, "worker %d (pid %d) %s%s%s before it was ready (%u of %u)", p.slot,
                (int)p.pid, how, p.why ? ": " : "", p.why ? p.why : "", s->startup_failures,
                STARTUP_FAILURES_MAX);
    if (delay)
        cn__log(CN__LOG_INFO, "starting a new worker in %llu ms", (unsigned long long)delay);
    schedule(s, delay, p.number);
}

static void reap(sup *s)
{
    for (unsigned i = 0; i < s->n;) {
        int status;
        pid_t r = waitpid(s->procs[i].pid, &status, WNOHANG);
        if (r == s->procs[i].pid)
            on_exit_(s, i, status); /* procs[i] is now another one */
        else
            i++;
    }
}

static void check_ready(sup *s)
{
    for (unsigned i = 0; i < s->n; i++) {
        proc *p = &s->procs[i];
        if (!p->ready && atomic_load(&s->t->slots[p->slot].state) == CN__W_READY)
            on_ready(s, p);
    }
}

static void kill_worker(proc *p, const char *why)
{
    if (p->why)
        return;
    p->why = why;
    cn__log(CN__LOG_ERROR, "worker %d (pid %d): %s; killing it", p->number, (int)p->pid, why);
    kill(p->pid, SIGKILL);
}

/* Deadlines: replacements due, heartbeats, stops that take too long. */
static void check_time(sup *s, uint64_t now)
{
    unsigned timeout = s->cfg->worker_timeout_ms;

    for (unsigned i = 0; i < s->npending;) {
        if (s->pending[i].at <= now && !s->stopping) {
            int number = s->pending[i].number;
            s->pending[i] = s->pending[--s->npending];
            if (serving(s) < s->target && !number_taken(s, number))
                start_worker(s, number, 0);
        } else {
            i++;
        }
    }
    for (unsigned i = 0; i < s->n; i++) {
        proc *p = &s->procs[i];
        uint64_t beat = atomic_load(&s->t->slots[p->slot].heartbeat_ms);

        if (p->asked && now >= p->kill_at)
            kill_worker(p, "still running past the shutdown deadline");
        else if (timeout && !p->ready && now > p->started_ms && now - p->started_ms > timeout)
            kill_worker(p, "not ready within worker_timeout_ms");
        else if (timeout && now > beat && now - beat > timeout)
            kill_worker(p, "no heartbeat within worker_timeout_ms (its loop is blocked)");
    }
}

/* SIGHUP's rolling restart: one new worker at a time, ready before the old drains. */
static void roll(sup *s)
{
    proc *old = NULL;

    if (!s->rolling || s->stopping)
        return;
    for (unsigned i = 0; i < s->n; i++)
        if (s->procs[i].replaces && !s->procs[i].asked)
            return; /* one is starting: wait for it */
    for (unsigned i = 0; i < s->n; i++) {
        proc *p = &s->procs[i];
        if (!p->asked && p->gen < s->gen && (old == NULL || p->started_ms < old->started_ms))
            old = p;
    }
    if (old == NULL) {
        s->rolling = false;
        cn__log(CN__LOG_INFO, "rolling restart done");
        return;
    }
    if (start_worker(s, old->number, old->pid) == NULL)
        s->rolling = false;
}

static void resize(sup *s, int by)
{
    if (by > 0) {
        if (s->target >= CN_WORKERS_MAX) {
            cn__log(CN__LOG_WARN, "SIGTTIN: already %u workers, the most there may be", s->target);
            return;
        }
        s->target++;
        cn__log(CN__LOG_INFO, "SIGTTIN: %u workers", s->target);
        start_worker(s, free_number(s), 0);
    } else {
        proc *last = NULL;
        unsigned drop = 0;
        if (s->target <= 1) {
            cn__log(CN__LOG_WARN, "SIGTTOU: one worker is the fewest");
            return;
        }
        s->target--;
        cn__log(CN__LOG_INFO, "SIGTTOU: %u workers", s->target);
        /* the highest number goes: a replacement waiting for it is simply
         * not started, else the worker that has it drains */
        for (unsigned i = 0; i < s->n; i++) {
            proc *p = &s->procs[i];
            if (!p->asked && (last == NULL || p->number > last->number))
                last = p;
        }
        for (unsigned i = 1; i < s->npending; i++)
            if (s->pending[i].number > s->pending[drop].number)
                drop = i;
        if (s->npending > 0 && (last == NULL || s->pending[drop].number > last->number))
            s->pending[drop] = s->pending[--s->npending];
        else if (last)
            ask_stop(s, last, SIGTERM);
    }
    atomic_store(&s->t->target, s->target);
}

static void on_signal_byte(sup *s, int b)
{
    switch (b) {
    case 0:
        begin_stop(s, "cn_app_stop");
        break;
    case SIGTERM:
    case SIGINT:
        begin_stop(s, b == SIGTERM ? "SIGTERM" : "SIGINT");
        break;
    case SIGHUP:
        if (s->stopping)
            break;
        s->gen++;
        s->rolling = true;
        cn__log(CN__LOG_INFO, "SIGHUP: replacing the workers one at a time");
        break;
    case SIGTTIN:
    case SIGTTOU:
        if (!s->stopping)
            resize(s, b == SIGTTIN ? 1 : -1);
        break;
    default:
        break; /* SIGCHLD: reaped at the next turn */
    }
}

static void drain_fd(int fd, sup *s, bool signals)
{
    unsigned char buf[64];
    ssize_t n;

    while ((n = read(fd, buf, sizeof buf)) > 0)
        if (signals)
            for (ssize_t i = 0; i < n; i++)
                on_signal_byte(s, buf[i]);
}

static void run(sup *s)
{
    while (!(s->stopping && s->n == 0)) {
        struct pollfd fds[2] = {{sig_pipe[0], POLLIN, 0}, {s->notify[0], POLLIN, 0}};
        uint64_t now, next;
        int timeout = TICK_MS;

        reap(s);
        check_ready(s);
        now = cn__mono_ms();
        check_time(s, now);
        roll(s);
        if (s->stopping && s->n == 0)
            break;
        if (!s->stopping && s->n == 0 && s->npending == 0) {
            /* everything failed to start (fork, or no slot): try again later */
            for (unsigned i = 0; i < s->target; i++)
                schedule(s, BACKOFF_MAX_MS, (int)i);
        }
        next = now + TICK_MS;
        for (unsigned i = 0; i < s->npending; i++)
            if (s->pending[i].at < next)
                next = s->pending[i].at;
        timeout = next > now ? (int)(next - now) : 0;
        if (poll(fds, 2, timeout) < 0 && errno != EINTR)
            break;
        if (fds[0].revents)
            drain_fd(sig_pipe[0], s, true);
        if (fds[1].revents)
            drain_fd(s->notify[0], s, false);
    }
}

int cn__supervise(cn_app *app)
{
    struct sigaction sa, saved[CN__ARRAY_SIZE(handled)];
    sup *s;
    int rc;

    if (atomic_flag_test_and_set(&busy)) {
        cn__log(CN__LOG_ERROR, "workers: one supervisor per process (another app runs one)");
        return CN_ESTATE;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL || (s->t = cn__wtable_new()) == NULL) {
        free(s);
        atomic_flag_clear(&busy);
        return CN_ENOMEM;
    }
    s->app = app;
    s->cfg = cn_app_config(app);
    s->target = s->cfg->workers;
    atomic_store(&s->t->target, s->target);
    s->notify[0] = s->notify[1] = -1;
    rc = pipe_nb(sig_pipe);
    if (rc == 0)
        rc = pipe_nb(s->notify);
    if (rc < 0) {
        cn__log(CN__LOG_ERROR, "supervisor: pipe: %s", strerror(-rc));
        goto out;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    for (size_t i = 0; i < CN__ARRAY_SIZE(handled); i++)
        sigaction(handled[i], &sa, &saved[i]);
    cn__app_set_supervised(app, true);
    cn__log(CN__LOG_INFO, "supervisor (pid %d): starting %u workers on port %d", (int)getpid(),
            s->target, cn_app_port(app));
    if (cn__app_stop_pending(app))
        begin_stop(s, "cn_app_stop");
    for (unsigned i = 0; i < s->target && !s->stopping; i++)
        start_worker(s, (int)i, 0);
    run(s);
    cn__app_set_supervised(app, false);
    for (size_t i = 0; i < CN__ARRAY_SIZE(handled); i++)
        sigaction(handled[i], &saved[i], NULL);
    rc = s->rc;
    if (rc == 0)
        cn__log(CN__LOG_INFO, "supervisor: every worker has stopped");
out:
    for (int i = 0; i < 2; i++) {
        if (sig_pipe[i] >= 0)
            close(sig_pipe[i]);
        if (s->notify[i] >= 0)
            close(s->notify[i]);
        sig_pipe[i] = -1;
    }
    cn__wtable_free(s->t);
    free(s);
    atomic_flag_clear(&busy);
    return rc;
}
