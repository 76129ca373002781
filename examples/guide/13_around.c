/*
 * 13_around.c -- chapter 13: the layer around the handler.
 *
 *   lifespan     the startup hook opens the store before anything is
 *                served (its wait stands for connecting to a database);
 *                the shutdown hook closes it after the drain
 *   middleware   "access" (outermost) gives each request an ID and logs it
 *                in and out; "timing" adds X-Process-Time-Ms
 *   router       /items: every route of it needs the "user" dependency
 *                (401 without a valid token); its routes also ask for
 *                "db", a store connection given back after the response
 *
 *   GET  /health                  no router, no dependency
 *   GET  /items                   every item
 *   GET  /items/{id:int}          one item; 404 from cn_res_raise
 *   POST /items/{id:int}/orders   an order; its confirmation is sent by a
 *                                 background task, after the response
 *
 * Every route is async, so the store is only touched on the loop thread:
 * it needs no lock.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <canteen.h>

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- the store: opened at startup, reached through the app's data ---- */

typedef struct item {
    int64_t id;
    const char *name;
    int stock;
} item;

typedef struct store {
    item items[3];
    int next_conn; /* connection IDs handed out */
    int conns_out; /* connections lent to requests now */
    int64_t orders;
} store;

static int open_store(cn_app *app, void *arg)
{
    double t0 = now_ms();
    store *st = calloc(1, sizeof(*st));
    int rc;

    (void)arg;
    if (st == NULL)
        return CN_ENOMEM;
    /* a real service connects to its database here: the wait stands for it */
    rc = cn_sleep(300);
    if (rc < 0) {
        free(st);
        return rc; /* cn_app_run returns it, without serving */
    }
    st->items[0] = (item){1, "tea", 10};
    st->items[1] = (item){2, "coffee", 10};
    st->items[2] = (item){3, "cake", 1};
    cn_app_set_data(app, st);
    printf("startup: store open after %.0f ms\n", now_ms() - t0);
    return 0;
}

static int close_store(cn_app *app, void *arg)
{
    store *st = cn_app_data(app);

    (void)arg;
    printf("shutdown: store closed; orders taken: %lld\n", (long long)st->orders);
    free(st);
    cn_app_set_data(app, NULL);
    return 0;
}

static item *find_item(store *st, int64_t id)
{
    for (size_t i = 0; i < sizeof st->items / sizeof st->items[0]; i++)
        if (st->items[i].id == id)
            return &st->items[i];
    return NULL;
}

/* ---- middleware ---- */

/* The outermost: an ID for the request, a line on the way in and out. */
static int access(cn_req *req, cn_res *res, void *data)
{
    unsigned long *count = data;
    const char *took;
    char id[32];
    int rc;

    snprintf(id, sizeof id, "req-%lu", ++*count);
    cn_req_set_id(req, id); /* every log line about this request starts with it */
    cn_req_log(req, CN_LOG_INFO, "-> %s %s", cn_req_method(req), cn_req_target(req));
    rc = cn_next(req, res); /* the rest of the chain: timing, dependencies, handler */
    took = cn_res_get_header(res, "X-Process-Time-Ms"); /* set by timing, on its way out */
    cn_req_log(req, CN_LOG_INFO, "<- %d in %s ms", cn_res_status(res), took ? took : "?");
    return rc; /* what happened inside, passed on */
}

/* Starlette's add_process_time_header, inside access. */
static int timing(cn_req *req, cn_res *res, void *data)
{
    double t0 = now_ms();
    int rc = cn_next(req, res);
    char ms[32];

    (void)data;
    snprintf(ms, sizeof ms, "%.3f", now_ms() - t0);
    cn_res_header(res, "X-Process-Time-Ms", ms); /* a whole body: headers may still change */
    return rc;
}

/* ---- dependencies ---- */

typedef struct user {
    const char *token;
    const char *name;
} user;

static user users[] = {{"alice-token", "alice"}, {"bob-token", "bob"}};

/* "user": the caller, from its bearer token, or 401. */
static int current_user(cn_req *req, cn_res *res, void *data, void **value)
{
    const char *auth = cn_req_header(req, "authorization");

    (void)data;
    for (size_t i = 0; auth && i < sizeof users / sizeof users[0]; i++) {
        if (strncmp(auth, "Bearer ", 7) == 0 && strcmp(auth + 7, users[i].token) == 0) {
            *value = &users[i];
            return 0;
        }
    }
    cn_res_header(res, "WWW-Authenticate", "Bearer");
    return cn_res_raise(res, 401, "Not authenticated"); /* the handler does not run */
}

static const cn_dep dep_user = {.name = "user", .resolve = current_user};

/* "db": a connection lent by the store for this request. */
typedef struct conn {
    store *st;
    int id;
} conn;

static int db_acquire(cn_req *req, cn_res *res, void *data, void **value)
{
    conn *c = cn_req_alloc(req, sizeof(*c)); /* lives until the cleanup has run */

    (void)res;
    (void)data;
    if (c == NULL)
        return CN_ENOMEM;
    c->st = cn_app_data(cn_req_app(req));
    c->id = ++c->st->next_conn;
    c->st->conns_out++;
    *value = c;
    return 0;
}

/* After the response: reset the connection, then give it back. */
static void db_release(cn_req *req, void *value, void *data)
{
    conn *c = value;

    (void)data;
    /* a pool resets a connection before it takes it back: a round trip to
     * the database, which the wait stands for (the client has its answer) */
    cn_sleep(200);
    c->st->conns_out--;
    cn_req_log(req, CN_LOG_INFO, "db: connection %d back in the store", c->id);
}

static const cn_dep dep_db = {.name = "db", .resolve = db_acquire, .cleanup = db_release};
static const cn_dep *const needs_db[] = {&dep_db, NULL};

/* ---- a background task ---- */

typedef struct confirmation {
    const char *to;
    int64_t order;
} confirmation;

static int send_confirmation(void *arg)
{
    confirmation *m = arg;  /* in the request's arena: still there */
    int rc = cn_sleep(300); /* stands for the mail server's round trip */

    if (rc < 0)
        return rc;
    cn_req_log(cn_req_current(), CN_LOG_INFO, "background: confirmation of order %lld sent to %s",
               (long long)m->order, m->to);
    return 0;
}

/* ---- handlers ---- */

static int health(cn_req *req, cn_res *res)
{
    (void)req;
    return cn_res_text(res, 200, "ok");
}

static int list_items(cn_req *req, cn_res *res)
{
    conn *db = cn_req_dep(req, "db");
    cJSON *a = cJSON_CreateArray();

    for (size_t i = 0; a && i < sizeof db->st->items / sizeof db->st->items[0]; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", (double)db->st->items[i].id);
        cJSON_AddStringToObject(o, "name", db->st->items[i].name);
        cJSON_AddItemToArray(a, o);
    }
    return cn_res_json(res, 200, a);
}

static int get_item(cn_req *req, cn_res *res)
{
    conn *db = cn_req_dep(req, "db");
    user *u = cn_req_dep(req, "user");
    int64_t id;
    item *it;

    cn_req_param_int(req, "id", &id);
    cn_req_log(req, CN_LOG_INFO, "get_item: %s reads item %lld on connection %d", u->name,
               (long long)id, db->id);
    it = find_item(db->st, id);
    if (it == NULL)
        return cn_res_raise(res, 404, "Item not found");
    return cn_res_json_str(res, 200,
                           cn_req_sprintf(req, "{\"id\":%lld,\"name\":\"%s\",\"stock\":%d}",
                                          (long long)it->id, it->name, it->stock));
}

static int place_order(cn_req *req, cn_res *res)
{
    conn *db = cn_req_dep(req, "db");
    user *u = cn_req_dep(req, "user");
    confirmation *m = cn_req_alloc(req, sizeof(*m));
    int64_t id;
    item *it;
    int rc;

    if (m == NULL)
        return CN_ENOMEM;
    cn_req_param_int(req, "id", &id);
    it = find_item(db->st, id);
    if (it == NULL)
        return cn_res_raise(res, 404, "Item not found");
    if (it->stock == 0)
        return cn_res_raise(res, 409, "Out of stock");
    it->stock--;
    m->to = u->name;
    m->order = ++db->st->orders;
    rc = cn_req_background(req, send_confirmation, m); /* runs after the response */
    if (rc < 0)
        return rc;
    return cn_res_json_str(res, 201,
                           cn_req_sprintf(req, "{\"order\":%lld,\"item\":\"%s\",\"user\":\"%s\"}",
                                          (long long)m->order, it->name, u->name));
}

/* ---- the app ---- */

static int add_routes(cn_app *app, unsigned long *count)
{
    cn_route_opts with_db = {.deps = needs_db};
    cn_router *items = cn_router_new("/items");
    int rc = items ? 0 : CN_ENOMEM;

    if (rc == 0)
        rc = cn_app_use(app, "access", access, count); /* added first: outermost */
    if (rc == 0)
        rc = cn_app_use(app, "timing", timing, NULL);
    if (rc == 0)
        rc = cn_app_route(app, "GET /health", health, NULL);
    if (rc == 0)
        rc = cn_router_depends(items, &dep_user); /* every route of the router */
    if (rc == 0)
        rc = cn_router_route(items, "GET ", list_items, NULL, &with_db); /* GET /items */
    if (rc == 0)
        rc = cn_router_route(items, "GET /{id:int}", get_item, NULL, &with_db);
    if (rc == 0)
        rc = cn_router_route(items, "POST /{id:int}/orders", place_order, NULL, &with_db);
    if (rc == 0)
        return cn_app_include(app, items); /* the app owns the router from here */
    cn_router_free(items);
    return rc;
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 8000;
    static unsigned long requests; /* request IDs; only the loop touches it */
    cn_config cfg;
    cn_app *app;
    int rc;

    cn_config_init(&cfg);
    cfg.handle_signals = 1;
    app = cn_app_new(&cfg);
    if (app == NULL)
        return 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    rc = cn_app_lifespan(app, open_store, close_store, NULL);
    if (rc == 0)
        rc = add_routes(app, &requests);
    if (rc == 0)
        rc = cn_app_listen(app, "127.0.0.1", port); /* bound now; accepted after startup */
    if (rc == 0) {
        fprintf(stderr, "serving on http://127.0.0.1:%d\n", cn_app_port(app));
        rc = cn_app_run(app); /* startup, serving, drain, shutdown */
    }
    if (rc < 0)
        fprintf(stderr, "13_around: %s\n", cn_strerror(rc));
    cn_app_free(app);
    return rc < 0;
}
