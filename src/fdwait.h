/* fdwait.h -- the per-loop registry behind cn_wait_fd (the loop side). */
#ifndef CN_FDWAIT_H
#define CN_FDWAIT_H

#include <uv.h>

typedef struct cn__fdwait cn__fdwait;

/* An empty registry for `loop`. NULL when out of memory. */
cn__fdwait *cn__fdwait_new(uv_loop_t *loop);

/* No task may be waiting (every task has completed). Poll handles still
 * closing free themselves when the loop runs their close callbacks. NULL
 * is allowed. */
void cn__fdwait_free(cn__fdwait *w);

#endif
