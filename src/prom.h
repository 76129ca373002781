/*
 * prom.h -- the app's figures in Prometheus' text exposition format
 * (version 0.0.4). Formatting only: the caller takes the snapshot, so the
 * text never needs a lock or the loop.
 */
#ifndef CN_PROM_H
#define CN_PROM_H

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

#endif
