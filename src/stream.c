/*
 * stream.c -- streamed responses (FastAPI's StreamingResponse): the rules
 * of cn_res_stream_*. The response layer builds the head and the chunks;
 * the connection sends them and parks the writer while the client is
 * behind. Like every awaitable, these run only in a coroutine of the
 * request they answer.
 */
#include "dispatch.h"
#include "filter.h"
#include "req.h"
#include "scheduler.h"

/* The checks every call makes first; on success *req is res's request. */
static int stream_check(cn_res *res, cn__task **task, cn_req **req)
{
    cn__task *t = cn__task_current();

    if (t == NULL)
        return CN_ENOTCORO;
    if (res == NULL || cn__task_req(t) != cn__res_req(res))
        return CN_EINVAL;
    if (cn__task_is_cancelled(t))
        return CN_ECANCELED;
    if (cn__res_req(res)->io == NULL)
        return CN_ERESPONDED; /* answered already: nothing goes out any more */
    *task = t;
    *req = cn__res_req(res);
    return 0;
}

/* As stream_check, and the stream must be open. */
static int stream_check_open(cn_res *res, cn__task **task, cn_req **req)
{
    int rc = stream_check(res, task, req);

    if (rc == 0 && cn__res_stream_state(res) != CN__STREAM_OPEN)
        rc = CN_ESTATE;
    return rc;
}

int cn_res_stream_begin(cn_res *res, int status, const char *content_type)
{
    cn__task *t;
    cn_req *req;
    int rc = stream_check(res, &t, &req);

    /* a filter decides now, while the head can still change */
    if (rc == 0 && res->filter && !res->body_set) {
        rc = res->filter->begin(req, status, content_type, res->filter_ctx);
        res->filter_on = rc > 0;
        rc = rc > 0 ? 0 : rc;
    }
    if (rc == 0)
        rc = cn__res_stream_start(res, status, content_type);
    return rc < 0 ? rc : req->io->stream_begin(req);
}

int cn_res_stream_write(cn_res *res, const void *data, size_t len)
{
    cn__task *t;
    cn_req *req;
    int rc = stream_check_open(res, &t, &req);

    if (rc < 0)
        return rc;
    if (data == NULL && len > 0)
        return CN_EINVAL;
    /* a chunk of size 0 would end the body */
    if (len == 0)
        return 0;
    if (res->filter_on)
        return res->filter->write(req, data, len, res->filter_ctx);
    return req->io->stream_write(req, t, data, len);
}

int cn_res_stream_end(cn_res *res)
{
    cn__task *t;
    cn_req *req;
    int rc = stream_check_open(res, &t, &req);

    if (rc == 0 && res->filter_on)
        rc = res->filter->end(req, res->filter_ctx);
    if (rc == 0)
        rc = req->io->stream_end(req);
    if (rc == 0)
        cn__res_stream_mark_ended(res);
    return rc;
}

/* ---- body filters and sized streams (filter.h) ---- */

int cn__res_set_filter(cn_res *res, const cn__filter *f, void *ctx)
{
    if (res->head_sent)
        return CN_ERESPONDED;
    if (res->filter)
        return CN_EBUSY;
    res->filter = f;
    res->filter_ctx = ctx;
    return 0;
}

int cn__stream_emit(cn_req *req, const void *p, size_t n)
{
    cn__task *t;
    cn_req *r;
    int rc = stream_check_open(&req->res, &t, &r);

    if (rc < 0 || n == 0)
        return rc;
    return req->io->stream_write(req, t, p, n);
}

void cn__res_stream_size(cn_res *res, size_t size)
{
    res->sized = true;
    res->size = size;
}

void cn__res_stream_unsize(cn_res *res)
{
    res->sized = false;
}
