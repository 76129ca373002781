/*
 * validate.h -- declared parameters and bodies (canteen/declare.h): what a
 * route declares, prepared once when it is registered, and each request
 * checked against it before its handler runs.
 */
#ifndef CN_VALIDATE_H
#define CN_VALIDATE_H

#include "canteen.h"

struct cn__route;

/*
 * Prepare a route's declarations: its path parameters (`{id:int}` declares
 * an int) merged with the declared ones, patterns compiled, defaults
 * checked. Sets rt->decl (NULL when there is nothing to check). 0, or
 * CN_EBADPATTERN (a declared path parameter not in the path, or one that
 * contradicts its `:int`), CN_EINVAL (a bad declaration: unknown type, a
 * default that does not parse, a pattern that does not compile), CN_ENOMEM.
 */
int cn__decl_prepare(struct cn__route *rt);
void cn__decl_free(struct cn__route *rt);

/* The route's parameters as checked, in FastAPI's order (path, query,
 * header, cookie): *out gets the array (the route's; NULL when none). */
unsigned cn__decl_params(const struct cn__route *rt, const cn_field *const **out);

/*
 * Check req against its route's declarations and keep the converted
 * values. 0 (valid: the getters and cn_req_json give them), CN_EHTTP (the
 * 422 -- or 400 for a body that is not UTF-8 -- is set on req->res), or
 * CN_ENOMEM. In the request's coroutine, on the loop.
 */
int cn__validate(cn_req *req);

/* "path", "query", "header" or "cookie": 422 locations and OpenAPI's "in". */
const char *cn__in_name(cn_in in);

#endif
