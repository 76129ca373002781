/*
 * metrics.h -- the loop's health: a lag probe (timer drift), and the
 * detector that names whoever blocked the loop for longer than
 * slow_callback_ms (a coroutine step, or any other loop callback).
 */
#ifndef CN_METRICS_H
#define CN_METRICS_H

#include <uv.h>

#include "canteen.h"

typedef struct cn__metrics cn__metrics;

/* Start the probes on `loop` (handles unref'd: they never keep it alive). */
cn__metrics *cn__metrics_new(uv_loop_t *loop, const cn_config *cfg);
/* Close the handles; the memory goes when the loop has run their close
 * callbacks. NULL allowed. */
void cn__metrics_free(cn__metrics *m);

/*
 * A coroutine step of `label` ("GET /x/{id}") ran `ns` nanoseconds on the
 * loop thread without yielding. Over the threshold: one warning (with
 * req's ID first, if it has one; req may be NULL).
 */
void cn__metrics_step(cn__metrics *m, const char *label, const cn_req *req, uint64_t ns);

void cn__metrics_loop_stats(const cn__metrics *m, cn_loop_stats *out);

#endif
