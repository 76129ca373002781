/*
 * filter.h -- a body filter: a middleware's hook on a streamed response's
 * way out (gzip compresses each piece). Set before cn_next, it is asked
 * at cn_res_stream_begin whether it takes the stream; if it does, every
 * cn_res_stream_write goes through it and cn_res_stream_end lets it flush.
 * Whole bodies do not go through it: a middleware changes those after
 * cn_next with the inspection API. One filter per response.
 *
 * Also here: streams of a known length (static files), sent with a
 * Content-Length instead of chunks.
 */
#ifndef CN_FILTER_H
#define CN_FILTER_H

#include "req.h"

typedef struct cn__filter {
    /*
     * The stream's head is about to be built: status and headers can still
     * change (add Content-Encoding, drop a length). `content_type` is the
     * one given to cn_res_stream_begin (a Content-Type header wins over
     * it). 1: the filter takes the bytes; 0: they pass as they are;
     * negative: the stream does not begin (the code is returned).
     */
    int (*begin)(cn_req *req, int status, const char *content_type, void *ctx);
    /* n > 0 bytes the handler wrote: pass on what they become (cn__stream_emit). */
    int (*write)(cn_req *req, const void *p, size_t n, void *ctx);
    /* The handler ended the stream: emit what is left. */
    int (*end)(cn_req *req, void *ctx);
} cn__filter;

/* Set res's filter (kept). 0, or CN_EBUSY when one is set, CN_ERESPONDED. */
int cn__res_set_filter(cn_res *res, const cn__filter *f, void *ctx);

/*
 * From a filter: send n bytes of body to the client (framed as the stream
 * is), parking while it is behind. Errors as cn_res_stream_write.
 */
int cn__stream_emit(cn_req *req, const void *p, size_t n);

/*
 * Before cn_res_stream_begin: the stream will carry exactly `size` bytes,
 * sent with Content-Length and no chunk framing (so HTTP/1.0 clients keep
 * their connection too). A write past it is CN_EINVAL; an end short of it
 * closes the connection (the client sees a short body). A filter that
 * changes the bytes calls cn__res_stream_unsize.
 */
void cn__res_stream_size(cn_res *res, size_t size);
void cn__res_stream_unsize(cn_res *res);

#endif
