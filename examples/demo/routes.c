/* routes.c -- the demo's routes: the async guide's service. */
#include <canteen.h>

#include "demo.h"

/* GET /health */
static int health(cn_req *req, cn_res *res)
{
    (void)req;
    return cn_res_json_str(res, 200, "{\"status\":\"ok\"}");
}

/* GET /plaintext (benchmarks) */
static int plaintext(cn_req *req, cn_res *res)
{
    (void)req;
    return cn_res_text(res, 200, "Hello, World!");
}

/* GET /json (benchmarks) */
static int json(cn_req *req, cn_res *res)
{
    cJSON *o = cJSON_CreateObject();
    (void)req;
    cJSON_AddStringToObject(o, "message", "Hello, World!");
    return cn_res_json(res, 200, o);
}

/* GET /users/{id:int} */
static int user_by_id(cn_req *req, cn_res *res)
{
    int64_t id;
    cJSON *o;

    cn_req_param_int(req, "id", &id);
    if (id <= 0)
        return cn_res_error(res, 404, "User not found");
    o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)id);
    cJSON_AddStringToObject(o, "name", cn_req_sprintf(req, "user%lld", (long long)id));
    return cn_res_json(res, 200, o);
}

/* POST /echo: the JSON body back (400 when it is not JSON) */
static int echo(cn_req *req, cn_res *res)
{
    cJSON *body;
    int rc = cn_req_json(req, &body);

    if (rc < 0)
        return rc;
    return cn_res_json(res, 200, cJSON_Duplicate(body, 1));
}

int demo_register(cn_app *app)
{
    int rc = 0;
    rc = rc ? rc : cn_app_route(app, "GET /health", health, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /plaintext", plaintext, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /json", json, NULL);
    rc = rc ? rc : cn_app_route(app, "GET /users/{id:int}", user_by_id, NULL);
    rc = rc ? rc : cn_app_route(app, "POST /echo", echo, NULL);
    return rc;
}
