/* service.c -- a small service, route for route FastAPI's fastapi_app.py (README.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <canteen.h>

static const char *upstream; /* $UPSTREAM, as FastAPI's reads it */

static int do_sleep(cn_req *req, cn_res *res)
{
    int rc = cn_sleep(cn_req_int(req, "ms"));
    return rc < 0 ? rc : cn_res_jsonf(res, 200, "{\"slept_ms\":%ld}", cn_req_int(req, "ms"));
}

static int cpu(cn_req *req, cn_res *res) /* a sync route: on the pool */
{
    long n = cn_req_int(req, "n"), sum = 0;
    for (long i = 0; i < n; i++)
        sum += i;
    return cn_res_jsonf(res, 200, "{\"n\":%ld,\"sum\":%ld}", n, sum);
}

static int gather(cn_req *req, cn_res *res)
{
    cn_fetch_opts o[2] = {{0}, {0}};
    cn_fetch_result r[2];
    cJSON *j[2], *list;
    o[0].url = cn_req_sprintf(req, "%s/items/1?delay=%ld", upstream, cn_req_int(req, "delay_a"));
    o[1].url = cn_req_sprintf(req, "%s/items/2?delay=%ld", upstream, cn_req_int(req, "delay_b"));
    cn_fetch_all(o, 2, r); /* both at once: the slowest's time, not the sum */
    for (int i = 0; i < 2; i++)
        if (r[i].error || r[i].status >= 400 || cn_fetch_json(&r[i], &j[i]) < 0)
            return cn_res_upstream_error(res, &r[i], "Item not found");
    list = cJSON_CreateArray();
    cJSON_AddItemToArray(list, cJSON_Duplicate(j[0], 1));
    cJSON_AddItemToArray(list, cJSON_Duplicate(j[1], 1));
    return cn_res_json(res, 200, list);
}

static const cn_field item_fields[] = {
    {.name = "name", .type = CN_STR, .required = 1},
    {.name = "price", .type = CN_FLOAT, .required = 1},
    {.name = "tags", .type = CN_ARRAY, .dflt = "[]", .items = &(const cn_field){.type = CN_STR}},
    {0}};
static const cn_field item = {.type = CN_OBJECT, .required = 1, .fields = item_fields};
static int create_item(cn_req *req, cn_res *res)
{
    cJSON *body;
    int rc = cn_req_json(req, &body); /* validated, defaults filled in */
    return rc < 0 ? rc : cn_res_json(res, 201, cJSON_Duplicate(body, 1));
}

static int get_item(cn_req *req, cn_res *res)
{
    if (cn_req_int(req, "id") != 1)
        return cn_res_raise(res, 404, "Item not found");
    return cn_res_json_str(res, 200, "{\"id\":1,\"name\":\"item1\"}");
}

static const cn_field hello_q[] = {{.name = "x-token", .in = CN_HEADER, .type = CN_STR},
                                   {.name = "visits", .in = CN_COOKIE, .type = CN_INT, .dflt = "0"},
                                   {0}};
static int hello(cn_req *req, cn_res *res)
{
    long visits = cn_req_int(req, "visits") + 1;
    const char *msg = cn_req_sprintf(req, "Hello, %s!", cn_req_str(req, "name"));
    cn_res_header(res, "X-App", "myapp");
    cn_res_set_cookie(res, "visits", cn_req_sprintf(req, "%ld", visits),
                      &(cn_cookie_opts){.http_only = 1});
    return cn_res_jsonf(res, 200, "{\"message\":%s,\"visits\":%ld,\"token\":%s}",
                        cn_req_json_quote(req, msg), visits,
                        cn_req_json_quote(req, cn_req_str(req, "x-token")));
}

static int stream(cn_req *req, cn_res *res)
{
    int rc = cn_res_stream_begin(res, 200, "application/x-ndjson");
    for (long i = 0; rc == 0 && i < cn_req_int(req, "n"); i++) {
        const char *line = cn_req_sprintf(req, "{\"i\":%ld}\n", i);
        if ((rc = cn_res_stream_write(res, line, strlen(line))) == 0)
            rc = cn_sleep(50);
    }
    return rc;
}

static const cn_route routes[] = {
    {.spec = "GET /sleep?ms:int=100", .fn = do_sleep},
    {.spec = "GET /cpu/{n:int}", .fn = cpu, .opts.mode = CN_ROUTE_SYNC},
    {.spec = "GET /gather?delay_a:int=300&delay_b:int=500", .fn = gather},
    {.spec = "POST /items", .fn = create_item, .opts = {.body = &item, .status_code = 201}},
    {.spec = "GET /items/{id:int}", .fn = get_item},
    {.spec = "GET /hello?name=World", .fn = hello, .opts.params = hello_q},
    {.spec = "GET /stream?n:int=5", .fn = stream},
    {0}};

int main(int argc, char **argv)
{
    cn_app *app = cn_app_new(NULL);
    upstream = getenv("UPSTREAM") ? getenv("UPSTREAM") : "http://127.0.0.1:8101";
    int rc = cn_app_routes(app, routes);
    rc = rc ? rc : cn_app_listen(app, "127.0.0.1", argc > 1 ? atoi(argv[1]) : 8100);
    fprintf(stderr, "serving on http://127.0.0.1:%d\n", cn_app_port(app));
    rc = rc ? rc : cn_app_run(app);
    cn_app_free(app);
    return rc < 0;
}
