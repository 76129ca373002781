/* depends.h -- the internal side of dependencies (canteen/depends.h). */
#ifndef CN_DEPENDS_H
#define CN_DEPENDS_H

#include "canteen.h"

/*
 * Run the cleanup of every dependency that resolved for req, newest first,
 * and forget them (cn_req_dep then finds none). In req's root task, after
 * the response: a cleanup may await.
 */
void cn__deps_cleanup(cn_req *req);

#endif
