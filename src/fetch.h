/* fetch.h -- outbound HTTP: one curl multi handle per loop (the loop side). */
#ifndef CN_FETCH_H
#define CN_FETCH_H

#include <uv.h>

#include "canteen.h"

typedef struct cn__fetch cn__fetch;

/* The multi handle and its timer on `loop`. NULL on failure. */
cn__fetch *cn__fetch_new(uv_loop_t *loop, const cn_config *cfg);

/* No transfer may be running. Closes cached connections; the memory goes
 * when the loop has run the close callbacks. NULL allowed. */
void cn__fetch_free(cn__fetch *f);

/* Fill out's fetch_* counters: new connections opened so far (reuse shows
 * as a small number), transfers finished, and those that got no response. */
void cn__fetch_stats(const cn__fetch *f, cn_stats *out);

#endif
