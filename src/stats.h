/*
 * stats.h -- the app's live counters (cn_stats), as the loop thread keeps
 * them: each one a C11 atomic, so that cn_app_stats (and the tests, and a
 * worker's supervisor) may read them from any thread while the loop
 * counts. Only the loop thread writes them; an increment is an atomic
 * read-modify-write all the same (cheap next to a request), so that a
 * counter bumped from elsewhere later stays right.
 *
 * A new figure goes in cn_stats (canteen.h) and in CN__STATS_FIELDS.
 */
#ifndef CN_STATS_H
#define CN_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "canteen.h"

#define CN__STATS_FIELDS(X)                                                                        \
    X(connections_accepted)                                                                        \
    X(connections_active)                                                                          \
    X(connections_rejected)                                                                        \
    X(requests_total)                                                                              \
    X(requests_active)                                                                             \
    X(responses_1xx)                                                                               \
    X(responses_2xx)                                                                               \
    X(responses_3xx)                                                                               \
    X(responses_4xx)                                                                               \
    X(responses_5xx)                                                                               \
    X(write_queue_peak)                                                                            \
    X(background_started)                                                                          \
    X(background_failed)                                                                           \
    X(background_running)                                                                          \
    X(connections_no_fd)                                                                           \
    X(connections_stalled)                                                                         \
    X(accept_pauses)

typedef struct cn__stats {
#define CN__STATS_DECLARE(name) _Atomic uint64_t name;
    CN__STATS_FIELDS(CN__STATS_DECLARE)
#undef CN__STATS_DECLARE
} cn__stats;

/* Copy the counters into *out (the fields cn__stats does not keep, such as
 * coroutines_live and the fetch figures, are left as they were). */
static inline void cn__stats_copy(const cn__stats *s, cn_stats *out)
{
#define CN__STATS_COPY(name) out->name = atomic_load_explicit(&s->name, memory_order_relaxed);
    CN__STATS_FIELDS(CN__STATS_COPY)
#undef CN__STATS_COPY
}

#endif
