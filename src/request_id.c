/*
 * request_id.c -- the request-ID middleware (canteen/batteries.h): the
 * client's X-Request-ID when it is a valid ID, else a fresh random one, on
 * the request (so every log line about it carries it) and on the response.
 */
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <sys/random.h>

#include "app.h"
#include "batteries.h"
#include "common.h"
#include "req.h"

typedef struct rid {
    char *header;
    size_t header_len;
    bool ignore_incoming;
} rid;

static void rid_free(void *p)
{
    rid *r = p;

    free(r->header);
    free(r);
}

/*
 * 32 hex digits from the kernel's CSPRNG. false if it gave nothing. The
 * bytes are fetched 64 IDs at a time (per thread: one loop per thread), so
 * a request does not pay a system call for its ID.
 */
static _Thread_local unsigned char pool[64 * 16];
static _Thread_local size_t left;

/* A forked worker must not hand out its parent's bytes again. */
static void forget_pool(void)
{
    left = 0;
}

static void at_fork_once(void)
{
    pthread_atfork(NULL, NULL, forget_pool);
}

static bool random_id(char out[33])
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *b;

    if (left == 0) {
        size_t got = 0;
        /* never blocks once the pool is initialised (any running system);
         * GRND_NONBLOCK so that a machine just booted cannot stall the loop */
        while (got < sizeof pool) {
            ssize_t n = getrandom(pool + got, sizeof pool - got, GRND_NONBLOCK);
            if (n <= 0)
                return false;
            got += (size_t)n;
        }
        left = sizeof pool;
    }
    left -= 16;
    b = pool + left;
    for (size_t i = 0; i < 16; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[32] = 0;
    return true;
}

static int request_id(cn_req *req, cn_res *res, void *data)
{
    const rid *r = data;
    const char *in = r->ignore_incoming ? NULL : cn_req_header(req, r->header);
    char made[33];
    int rc;

    /* what cn_req_set_id refuses (CR/LF, spaces, 129+ bytes) is replaced */
    if (in == NULL || cn_req_set_id(req, in) < 0) {
        if (!random_id(made))
            return cn_next(req, res); /* no ID rather than no answer */
        rc = cn_req_set_id(req, made);
        if (rc < 0)
            return rc;
    }
    /* before the chain runs: error responses and streams carry it too */
    /* both checked already: the name when registered, the ID by cn_req_set_id */
    rc = cn__res_header_trusted(res, r->header, r->header_len, req->id, strlen(req->id));
    if (rc < 0)
        return rc;
    return cn_next(req, res);
}

int cn_app_request_id(cn_app *app, const cn_request_id_opts *opts)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    const char *h = opts && opts->header ? opts->header : "X-Request-ID";
    rid *r;
    int rc;

    pthread_once(&once, at_fork_once);
    if (app == NULL || !cn__is_token(h, strlen(h)) || cn__res_reserved_header(h, strlen(h)))
        return CN_EINVAL;
    if (!cn__app_is_new(app))
        return CN_ESTATE;
    r = calloc(1, sizeof(*r));
    if (r == NULL || (r->header = strdup(h)) == NULL) {
        free(r);
        return CN_ENOMEM;
    }
    r->header_len = strlen(h);
    r->ignore_incoming = opts && opts->ignore_incoming;
    rc = cn__app_adopt(app, rid_free, r);
    if (rc < 0) {
        rid_free(r);
        return rc;
    }
    return cn_app_use(app, "request-id", request_id, r);
}
