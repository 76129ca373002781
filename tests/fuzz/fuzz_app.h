/*
 * fuzz_app.h -- an app with one route of each kind (sync on the pool,
 * async in a coroutine, to_thread, streamed, declared parameters and
 * bodies, path and query parameters, middleware), served through an
 * in-memory connection (conn.h, cn__conn_mem_open): the real parser,
 * router, handlers and response writer on a fuzzer's bytes, no socket.
 * Shared by the fuzz targets and the out-of-memory test.
 */
#ifndef CN_FUZZ_APP_H
#define CN_FUZZ_APP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <canteen.h>

#define CN_FUZZ_RETRY_AFTER_S 7

/* The app, started on the calling thread (whose loop the runs below turn);
 * NULL if it could not start. Made once; cn_fuzz_app_free ends it. Its
 * cn_config.retry_after_s is CN_FUZZ_RETRY_AFTER_S, not the default, so that
 * a run can tell Canteen's Retry-After from none. */
cn_app *cn_fuzz_app(void);
/* Stop and free the app; 0 when its loop closed clean. */
int cn_fuzz_app_free(void);
/* Unmap the coroutine stacks the app keeps for reuse: the next async
 * routes map fresh ones (the out-of-memory test fails those mappings).
 * Between runs only. */
void cn_fuzz_drop_stacks(void);

/* What one connection's run saw. */
typedef struct cn_fuzz_result {
    bool opened;     /* the connection was made */
    bool closed;     /* the server closed it (or the hangup did) */
    bool reset;      /* a write failed (cn_fuzz_run_ex's reset_after) */
    size_t out_len;  /* bytes the server wrote */
    unsigned status; /* the first response's status, 0 if none */
    unsigned n5xx;   /* responses with a 5xx status line */
    /* read from the responses as a client reads them (Content-Length,
     * chunked), from the heads that ended before the close: */
    int retry_after;     /* the first response's Retry-After (seconds), -1 if none */
    unsigned n503;       /* responses with a 503 status */
    unsigned n503_retry; /* of them, those with Retry-After: CN_FUZZ_RETRY_AFTER_S */
    unsigned responses;  /* response heads (an interim 1xx counts) */
} cn_fuzz_result;

/*
 * One connection: feed `data` in pieces of `chunk` bytes (0: all at once),
 * running the loop between pieces; with hangup_at <= len the client goes
 * away once that many bytes are in. Then let the handlers finish (bounded),
 * hang up, and run the loop until the connection is freed. Aborts if the
 * connection outlives its bounds (a hang).
 */
void cn_fuzz_run(const uint8_t *data, size_t len, size_t chunk, size_t hangup_at,
                 cn_fuzz_result *out);

/* cn_fuzz_run, with the client resetting the connection: the write that
 * comes once reset_after bytes of output went out fails (SIZE_MAX: none). */
void cn_fuzz_run_ex(const uint8_t *data, size_t len, size_t chunk, size_t hangup_at,
                    size_t reset_after, cn_fuzz_result *out);

#endif
