/* scheduler.c -- running handlers (first version: inline on the loop). */
#include <stdlib.h>

#include "req.h"
#include "scheduler.h"

struct cn__sched {
    uv_loop_t *loop;
    const cn_config *cfg;
};

cn__sched *cn__sched_new(uv_loop_t *loop, const cn_config *cfg)
{
    cn__sched *s = calloc(1, sizeof(*s));
    if (s) {
        s->loop = loop;
        s->cfg = cfg;
    }
    return s;
}

void cn__sched_free(cn__sched *s)
{
    free(s);
}

int cn__sched_start(cn__sched *s, cn_req *req, const cn__route *route, cn__done_cb done, void *arg)
{
    (void)s;
    done(req, route->fn(req, &req->res), arg);
    return 0;
}

void cn__sched_cancel(cn__sched *s, cn_req *req)
{
    (void)s;
    (void)req;
}

uint64_t cn__sched_live(const cn__sched *s)
{
    (void)s;
    return 0;
}
