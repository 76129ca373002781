/*
 * prom.h -- the app's figures in Prometheus' text exposition format
 * (version 0.0.4). Formatting only: the caller takes the snapshot, so the
 * text never needs a lock or the loop.
 */
#ifndef CN_PROM_H
#define CN_PROM_H

#include <stdbool.h>
#include <stddef.h>

#include "canteen.h"

/* One snapshot of every figure an app keeps. */
typedef struct cn__prom_figures {
    cn_stats app;
    cn_pool_stats pool;
    cn_loop_stats loop;
} cn__prom_figures;

/* An extension's figures (cn_app_metrics_add). */
typedef struct cn__prom_ext {
    cn_metrics_fn fn;
    void *data;
} cn__prom_ext;

/*
 * Write the text for `f`, then each extension's, into buf: at most `size` bytes, NUL included (buf
 * may be NULL when size is 0). Returns the length of the whole text, as
 * snprintf does: a result >= size means it was cut short.
 */
size_t cn__prom_render(const cn__prom_figures *f, const cn__prom_ext *ext, size_t next, char *buf,
                       size_t size);

/*
 * Workers: add `from` into `into`, each figure as it adds up over processes
 * (counters add, worst-since-start gauges take the worst). `live` is false
 * for the figures of a worker that has exited: its gauges of the present
 * are left out.
 */
void cn__prom_merge(cn__prom_figures *into, const cn__prom_figures *from, bool live);

/* One worker in the server's text. */
typedef struct cn__prom_worker {
    int id, pid;
    int state;     /* CN__W_* (workers.h): a name in canteen_worker_info */
    bool draining; /* then the number is its replacement's too */
    cn__prom_figures f;
} cn__prom_worker;

/* A server of workers: the sums, and each worker. */
typedef struct cn__prom_server {
    cn__prom_figures total;
    const cn__prom_worker *workers;
    unsigned n;
    unsigned target;
    uint64_t restarts;
} cn__prom_server;

/* cn__prom_render for a server of workers: the totals under the usual
 * names, then canteen_workers*, and canteen_worker_* with a worker label,
 * then the extensions (the answering worker's own). */
size_t cn__prom_render_server(const cn__prom_server *srv, const cn__prom_ext *ext, size_t next,
                              char *buf, size_t size);

#endif
