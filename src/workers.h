/*
 * workers.h -- workers = N, inside: the table the supervisor and its
 * workers share (workers.c), the supervisor (supervisor.c), and the few
 * places where the app calls into a worker.
 *
 * The table is one anonymous MAP_SHARED mapping made by the supervisor
 * before the first fork, so every worker sees it at the same address. One
 * slot per worker process: its state, heartbeat, open connections (for the
 * accept balance) and its latest figures, published by the worker a few
 * times a second and on every /metrics. Counters of workers that have
 * exited are added into `retired` by the supervisor, so that sums never go
 * back. Writers: the supervisor owns which slots are in use and `retired`
 * (under the table's sequence counter); each worker owns its slot's
 * figures (double-buffered, each copy under its own sequence counter, so
 * that a worker killed in the middle of a write leaves the other copy
 * whole).
 */
#ifndef CN_WORKERS_H
#define CN_WORKERS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

#include "canteen.h"
#include "prom.h"

/* Slots: every worker alive at once, those draining after a SIGHUP too. */
#define CN__WORKER_SLOTS (2 * CN_WORKERS_MAX + 2)

/* A slot's state, as the supervisor and the worker see it. */
enum {
    CN__W_FREE = 0,
    CN__W_STARTING, /* forked; running its startup hooks */
    CN__W_READY,    /* accepting */
    CN__W_STOPPING, /* draining */
};

typedef struct cn__wfigs {
    _Atomic uint32_t seq; /* odd while being written */
    cn__prom_figures f;
} cn__wfigs;

typedef struct cn__wslot {
    _Atomic int state;
    _Atomic int pid;
    _Atomic int number;            /* the worker's number (cn_app_worker_id) */
    _Atomic uint64_t heartbeat_ms; /* CLOCK_MONOTONIC, the worker's loop */
    _Atomic uint64_t conns;        /* open connections now */
    _Atomic unsigned cur;          /* which of figs[] is the latest whole one */
    cn__wfigs figs[2];
} cn__wslot;

typedef struct cn__wtable {
    _Atomic uint32_t seq;      /* odd while the supervisor changes slots or retired */
    _Atomic uint64_t restarts; /* workers replaced after an unplanned exit */
    _Atomic unsigned target;   /* workers the supervisor keeps */
    _Atomic unsigned hi;       /* 1 + the highest slot ever used: scans stop there */
    cn__prom_figures retired;  /* counters of the workers that exited */
    cn__wslot slots[CN__WORKER_SLOTS];
} cn__wtable;

/* CLOCK_MONOTONIC in milliseconds (the same clock in every process). */
uint64_t cn__mono_ms(void);

/* ---- the table (workers.c) ---- */

cn__wtable *cn__wtable_new(void);
void cn__wtable_free(cn__wtable *t);
/* Supervisor: take a free slot for a new worker (-1 if none); give it back
 * once the worker has exited, its counters added into retired. */
int cn__wtable_claim(cn__wtable *t);
void cn__wtable_release(cn__wtable *t, int slot);

/* ---- a worker (workers.c), in the child after fork ---- */

typedef struct cn__worker cn__worker;

/* Run the app as the worker of `slot` and exit the process with its status
 * (0 after a graceful stop, 3 when its startup failed). */
_Noreturn void cn__worker_main(cn_app *app, cn__wtable *t, int slot, int notify_fd,
                               const sigset_t *mask);

/* The app calls these when it is a worker's (app.c). */
void cn__worker_running(cn__worker *w); /* startup done, accepting */
/* A connection was accepted (open: the worker's now); false: take one
 * connection per wake-up for now, leaving the next to a sibling. */
bool cn__worker_accepted(cn__worker *w, uint64_t open);
void cn__worker_conns(cn__worker *w, uint64_t open);
int cn__worker_id(const cn__worker *w);
/* The whole server's metrics text (prom.c's format), `mine` being this
 * worker's own figures, then this worker's extensions: as cn__prom_render. */
size_t cn__worker_render(cn__worker *w, const cn__prom_figures *mine, const cn__prom_ext *ext,
                         size_t next, char *buf, size_t size);

/* ---- the supervisor (supervisor.c) ---- */

/* cn_app_run with workers > 0 in the calling process: fork, supervise,
 * return 0 after a graceful stop or CN_EWORKERS. */
int cn__supervise(cn_app *app);
/* cn_app_stop while supervising: thread-safe (a write to a pipe). */
void cn__supervisor_stop(void);

#endif
