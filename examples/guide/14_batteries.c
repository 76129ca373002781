/*
 * 14_batteries.c -- chapter 14: what ships around the handler. Request
 * IDs, CORS, gzip, trailing-slash redirects, cookies and static files, on
 * a small service that logs in with a cookie.
 *
 *   GET  /api/items     50 items as JSON (about 3 KB: gzipped when asked)
 *   GET  /api/feed      the items again as a stream of NDJSON lines
 *                       (gzipped piece by piece)
 *   POST /api/login     sets the session cookie
 *   GET  /api/me        who the session cookie says you are, or 401
 *   POST /api/logout    deletes the cookie
 *   GET  /api/fail      a handler that fails: its log line has the request ID
 *   GET  /static/...    examples/guide/static/ (index.html for /static/)
 *
 *   ./14_batteries 8000 &
 *   curl -s --compressed -H 'X-Request-ID: demo-1' -D - localhost:8000/api/items
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <canteen.h>

#ifndef GUIDE_STATIC_DIR
#define GUIDE_STATIC_DIR "static"
#endif

/* The browser app that calls this API is served from another origin. */
static const char *const origins[] = {"http://localhost:3000", NULL};
static const char *const methods[] = {"GET", "POST", NULL};
static const char *const headers[] = {"Content-Type", "X-Request-ID", NULL};
static const char *const expose[] = {"X-Request-ID", NULL};
static cn_cors_opts cors = {
    .allow_origins = origins,
    .allow_methods = methods,
    .allow_headers = headers,
    .expose_headers = expose,
    .allow_credentials = 1, /* the session cookie comes along */
};

static cJSON *item(int i)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddNumberToObject(o, "id", i);
    cJSON_AddStringToObject(o, "name", "a canteen item");
    cJSON_AddNumberToObject(o, "price_cents", 250 + 10 * i);
    return o;
}

static int list_items(cn_req *req, cn_res *res)
{
    cJSON *all = cJSON_CreateArray();

    (void)req;
    for (int i = 1; i <= 50; i++)
        cJSON_AddItemToArray(all, item(i));
    return cn_res_json(res, 200, all);
}

static int feed(cn_req *req, cn_res *res)
{
    int rc = cn_res_stream_begin(res, 200, "application/x-ndjson");

    (void)req;
    for (int i = 1; rc == 0 && i <= 50; i++) {
        cJSON *o = item(i);
        char *line = cJSON_PrintUnformatted(o);
        rc = line ? cn_res_stream_write(res, line, strlen(line)) : CN_ENOMEM;
        if (rc == 0)
            rc = cn_res_stream_write(res, "\n", 1);
        cJSON_free(line);
        cJSON_Delete(o);
    }
    return rc < 0 ? rc : cn_res_stream_end(res);
}

static const cn_cookie_opts session_cookie = {
    .max_age = 3600,
    .http_only = 1,
    .same_site = CN_SAMESITE_LAX,
};

static int login(cn_req *req, cn_res *res)
{
    int rc = cn_res_set_cookie(res, "session", "ada", &session_cookie);

    (void)req;
    return rc < 0 ? rc : cn_res_json_str(res, 200, "{\"logged_in\":\"ada\"}");
}

static int me(cn_req *req, cn_res *res)
{
    const char *user = cn_req_cookie(req, "session");
    cJSON *o;

    if (user == NULL)
        return cn_res_raise(res, 401, "Not authenticated");
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "user", user);
    return cn_res_json(res, 200, o);
}

static int logout(cn_req *req, cn_res *res)
{
    int rc = cn_res_delete_cookie(res, "session", &session_cookie);

    (void)req;
    return rc < 0 ? rc : cn_res_json_str(res, 200, "{\"logged_in\":null}");
}

static int fail(cn_req *req, cn_res *res)
{
    (void)req;
    (void)res;
    return CN_ENOMEM; /* stands for any failure: a 500, logged with the ID */
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 8000;
    const char *dir = argc > 2 ? argv[2] : GUIDE_STATIC_DIR;
    cn_config cfg;
    cn_app *app;
    int rc;

    cn_config_init(&cfg);
    cfg.handle_signals = 1;
    app = cn_app_new(&cfg);
    if (app == NULL)
        return 1;
    /* the middleware, outermost first */
    rc = cn_app_request_id(app, NULL);
    if (rc == 0)
        rc = cn_app_cors(app, &cors);
    if (rc == 0)
        rc = cn_app_gzip(app, NULL);
    if (rc == 0)
        rc = cn_app_redirect_slashes(app);
    /* the routes, and a directory */
    if (rc == 0)
        rc = cn_app_route(app, "GET /api/items", list_items, NULL);
    if (rc == 0)
        rc = cn_app_route(app, "GET /api/feed", feed, NULL);
    if (rc == 0)
        rc = cn_app_route(app, "POST /api/login", login, NULL);
    if (rc == 0)
        rc = cn_app_route(app, "GET /api/me", me, NULL);
    if (rc == 0)
        rc = cn_app_route(app, "POST /api/logout", logout, NULL);
    if (rc == 0)
        rc = cn_app_route(app, "GET /api/fail", fail, NULL);
    if (rc == 0)
        rc = cn_app_static(app, "/static", dir, &(cn_static_opts){.html = 1});
    if (rc == 0)
        rc = cn_app_listen(app, "127.0.0.1", port);
    if (rc == 0) {
        fprintf(stderr, "serving on http://127.0.0.1:%d\n", cn_app_port(app));
        rc = cn_app_run(app);
    }
    if (rc < 0)
        fprintf(stderr, "14_batteries: %s\n", cn_strerror(rc));
    cn_app_free(app);
    return rc < 0;
}
