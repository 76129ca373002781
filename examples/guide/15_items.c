/*
 * 15_items.c -- chapter 15: routes that declare what they take. Canteen
 * checks every request against the declaration (FastAPI's 422 when it does
 * not fit), hands the handler typed values, and documents the API at
 * /openapi.json and /docs from the same declarations.
 *
 *   GET  /items?q=&limit=10     search, limit 1..100
 *   GET  /items/{id:int}        one item, 404 when there is none
 *   POST /items                 a body like pydantic's Item, 201
 *   GET  /openapi.json, /docs   the API, described
 *
 * items_app() builds the app; 15_items_test.c drives the same app with the
 * test client, no socket (built with -DITEMS_NO_MAIN).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <canteen.h>

/* class Item(BaseModel): name: str; price: float = Field(gt=0); tags: list[str] = [] */
static const cn_field item_fields[] = {
    {.name = "name", .type = CN_STR, .required = 1, .min_length = 1},
    {.name = "price", .type = CN_FLOAT, .required = 1, .gt = CN_NUM(0)},
    {.name = "tags", .type = CN_ARRAY, .items = &(const cn_field){.type = CN_STR}, .dflt = "[]"},
    {0},
};
static const cn_field item = {.type = CN_OBJECT, .model = "Item", .required = 1,
                              .fields = item_fields};

/* q: str | None = None, limit: int = Query(10, ge=1, le=100) */
static const cn_field search_params[] = {
    {.name = "q", .type = CN_STR, .description = "a word the name contains"},
    {.name = "limit", .type = CN_INT, .dflt = "10", .ge = CN_NUM(1), .le = CN_NUM(100)},
    {0},
};

static const char *const names[] = {"pen", "pencil", "paper", "ink"};

static int search(cn_req *req, cn_res *res)
{
    const char *q = cn_req_str(req, "q"); /* NULL when absent */
    int64_t limit = cn_req_int(req, "limit");   /* 10 when absent */
    cJSON *list = cJSON_CreateArray();

    for (size_t i = 0; i < sizeof names / sizeof names[0] && limit > 0; i++) {
        if (q && strstr(names[i], q) == NULL)
            continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", (double)i + 1);
        cJSON_AddStringToObject(o, "name", names[i]);
        cJSON_AddItemToArray(list, o);
        limit--;
    }
    return cn_res_json(res, 200, list);
}

static int get_item(cn_req *req, cn_res *res)
{
    int64_t id = cn_req_int(req, "id"); /* {id:int}: checked, converted */

    if (id < 1 || id > (int64_t)(sizeof names / sizeof names[0]))
        return cn_res_raise(res, 404, "Item not found");
    return cn_res_json_str(
        res, 200, cn_req_sprintf(req, "{\"id\":%lld,\"name\":\"%s\"}", (long long)id, names[id - 1]));
}

static int create_item(cn_req *req, cn_res *res)
{
    cJSON *body;
    int rc = cn_req_json(req, &body); /* validated: "tags" is there, [] by default */

    return rc < 0 ? rc : cn_res_json(res, 201, cJSON_Duplicate(body, 1));
}

cn_app *items_app(void);

cn_app *items_app(void)
{
    cn_config cfg;
    cn_app *app;
    int rc = 0;

    cn_config_init(&cfg);
    cfg.handle_signals = 1;
    app = cn_app_new(&cfg);
    if (app == NULL)
        return NULL;
    rc = rc ? rc
            : cn_app_route_ex(app, "GET /items", search, NULL,
                              &(cn_route_opts){.params = search_params, .summary = "Search items"});
    rc = rc ? rc
            : cn_app_route_ex(app, "GET /items/{id:int}", get_item, NULL,
                              &(cn_route_opts){.summary = "Read an item"});
    rc = rc ? rc
            : cn_app_route_ex(app, "POST /items", create_item, NULL,
                              &(cn_route_opts){.body = &item, .status_code = 201});
    rc = rc ? rc : cn_app_openapi(app, &(cn_openapi_opts){.title = "Items", .version = "1.0.0"});
    if (rc < 0) {
        fprintf(stderr, "15_items: %s\n", cn_strerror(rc));
        cn_app_free(app);
        return NULL;
    }
    return app;
}

#ifndef ITEMS_NO_MAIN
int main(int argc, char **argv)
{
    cn_app *app = items_app();
    int rc;

    if (app == NULL)
        return 1;
    rc = cn_app_listen(app, "127.0.0.1", argc > 1 ? atoi(argv[1]) : 8000);
    if (rc == 0) {
        fprintf(stderr, "serving on http://127.0.0.1:%d\n", cn_app_port(app));
        rc = cn_app_run(app);
    }
    if (rc < 0)
        fprintf(stderr, "15_items: %s\n", cn_strerror(rc));
    cn_app_free(app);
    return rc < 0;
}
#endif
