/*
 * fetch_routes.c -- the demo's outbound routes: several upstream calls at
 * once, and the guide's practical example that gathers a local store and an
 * upstream API. Each route's data is the upstream base URL.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <canteen.h>

#include "demo.h"
#include "store.h"

static const char *upstream_of(cn_req *req)
{
    return cn_req_route_data(req);
}

/*
 * The upstream URL of one user. The login is request data: escaped as the
 * one path segment it is, so "../admin" cannot name another resource.
 * NULL when it cannot be a segment at all, or out of memory.
 */
static char *user_url(cn_req *req, const char *login, int64_t delay_ms)
{
    const char *seg = cn_req_url_escape(req, login, CN_URL_SEGMENT);

    if (seg == NULL)
        return NULL;
    if (delay_ms > 0)
        return cn_req_sprintf(req, "%s/users/%s?delay_ms=%lld", upstream_of(req), seg,
                              (long long)delay_ms);
    return cn_req_sprintf(req, "%s/users/%s", upstream_of(req), seg);
}

/*
 * GitHub's rule for a login: 1 to 39 letters, digits and single hyphens,
 * not at either end. Anything else cannot be a user, so it is not sent.
 */
#define LOGIN_PATTERN "^[A-Za-z0-9]+(-[A-Za-z0-9]+)*$"
#define LOGIN_MAX 39

static bool valid_login(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > LOGIN_MAX || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        bool alnum = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                     (s[i] >= '0' && s[i] <= '9');
        if (!alnum && (s[i] != '-' || s[i + 1] == '-'))
            return false;
    }
    return true;
}

/* FastAPI's 422 for Path(max_length=39, pattern=LOGIN_PATTERN), as pydantic v2 words it. */
static int login_error(cn_res *res, const char *login)
{
    bool too_long = strlen(login) > LOGIN_MAX;
    cJSON *err = cJSON_CreateObject(), *loc = cJSON_CreateArray(), *ctx = cJSON_CreateObject();
    cJSON *body = cJSON_CreateObject(), *detail = cJSON_CreateArray();

    cJSON_AddStringToObject(err, "type", too_long ? "string_too_long" : "string_pattern_mismatch");
    cJSON_AddItemToArray(loc, cJSON_CreateString("path"));
    cJSON_AddItemToArray(loc, cJSON_CreateString("username"));
    cJSON_AddItemToObject(err, "loc", loc);
    cJSON_AddStringToObject(err, "msg",
                            too_long ? "String should have at most 39 characters"
                                     : "String should match pattern '" LOGIN_PATTERN "'");
    cJSON_AddStringToObject(err, "input", login);
    if (too_long)
        cJSON_AddNumberToObject(ctx, "max_length", LOGIN_MAX);
    else
        cJSON_AddStringToObject(ctx, "pattern", LOGIN_PATTERN);
    cJSON_AddItemToObject(err, "ctx", ctx);
    cJSON_AddItemToArray(detail, err);
    cJSON_AddItemToObject(body, "detail", detail);
    return cn_res_json(res, 422, body);
}

/* GET /fetch-multiple[?delay_a=ms&delay_b=ms]: two upstream users at once */
static const cn_field fetch_multiple_params[] = {
    {.name = "delay_a",
     .type = CN_INT,
     .dflt = "0",
     .ge = CN_NUM(0),
     .le = CN_NUM(10000),
     .description = "how long the upstream waits before the first user (ms)"},
    {.name = "delay_b",
     .type = CN_INT,
     .dflt = "0",
     .ge = CN_NUM(0),
     .le = CN_NUM(10000),
     .description = "and before the second"},
    {0},
};

static int fetch_multiple(cn_req *req, cn_res *res)
{
    cn_fetch_opts o[2] = {{0}, {0}};
    cn_fetch_result r[2];
    cJSON *list, *j;
    int rc;

    o[0].url = user_url(req, "octocat", cn_req_int(req, "delay_a"));
    o[1].url = user_url(req, "torvalds", cn_req_int(req, "delay_b"));
    rc = cn_fetch_all(o, 2, r);
    if (rc == CN_ECANCELED)
        return rc;
    list = cJSON_CreateArray();
    for (int i = 0; i < 2; i++) {
        if (r[i].error || r[i].status != 200) {
            cJSON_Delete(list);
            return cn_res_upstream_error(res, &r[i], "User not found");
        }
        if (cn_fetch_json(&r[i], &j) < 0) {
            cJSON_Delete(list);
            return cn_res_error(res, 502, "Upstream sent invalid JSON");
        }
        cJSON_AddItemToArray(list, cJSON_Duplicate(j, 1));
    }
    return cn_res_json(res, 200, list);
}

/* GET /github/{username}: one upstream call, its failures mapped */
static int github_user(cn_req *req, cn_res *res)
{
    const char *login = cn_req_param(req, "username");
    int64_t delay = 0;
    cn_fetch_opts o = {0};
    cn_fetch_result r;
    cJSON *j;

    if (!valid_login(login))
        return login_error(res, login);
    cn_req_query_int(req, "delay_ms", &delay);
    o.url = user_url(req, login, delay);
    if (o.url == NULL)
        return CN_ENOMEM;
    o.timeout_ms = 5000;
    if (cn_fetch(&o, &r) == CN_ECANCELED)
        return CN_ECANCELED;
    if (r.error || r.status != 200)
        return cn_res_upstream_error(res, &r, "User not found");
    if (cn_fetch_json(&r, &j) < 0)
        return cn_res_error(res, 502, "Upstream sent invalid JSON");
    return cn_res_json(res, 200, cJSON_Duplicate(j, 1));
}

/* The two halves of GET /users, run as tasks and gathered. */
typedef struct users_job {
    cn_req *req;
    cJSON *local;       /* from SQLite, on the pool */
    cn_fetch_result gh; /* from the upstream */
} users_job;

static int query_store(void *arg)
{
    /* runs on a worker thread: SQLite blocks */
    return store_list_users(&((users_job *)arg)->local);
}

static int load_local(void *arg)
{
    return cn_to_thread(query_store, arg);
}

#ifdef DEMO_HAVE_PG
/* the same users from PostgreSQL: the pool waits on the loop, no thread */
static int load_local_pg(void *arg)
{
    return store_pg_list_users(&((users_job *)arg)->local);
}
#endif

static cn_task_fn local_loader(void)
{
#ifdef DEMO_HAVE_PG
    if (store_pg_enabled())
        return load_local_pg;
#endif
    return load_local;
}

static int load_github(void *arg)
{
    users_job *u = arg;
    cn_fetch_opts o = {.url = user_url(u->req, "octocat", 0), .timeout_ms = 5000};
    int rc = cn_fetch(&o, &u->gh);
    return rc < 0 ? rc : 0;
}

static const char *str_or_empty(const cJSON *o, const char *key)
{
    const char *v = cJSON_GetStringValue(cJSON_GetObjectItem(o, key));
    return v ? v : "";
}

/* GET /users: the local users plus GitHub's octocat, fetched concurrently */
static int users(cn_req *req, cn_res *res)
{
    users_job *u = cn_req_alloc(req, sizeof(*u));
    cn_task *t[2];
    int results[2], rc;
    cJSON *gh, *out;

    if (u == NULL)
        return CN_ENOMEM;
    memset(u, 0, sizeof(*u));
    u->req = req;
    rc = cn_spawn(local_loader(), u, &t[0]);
    if (rc < 0)
        return rc;
    rc = cn_spawn(load_github, u, &t[1]);
    if (rc < 0) {
        cn_await(t[0]);
        cJSON_Delete(u->local);
        return rc;
    }
    rc = cn_gather(t, 2, results);
    if (rc == CN_ECANCELED || results[0] < 0) {
        cJSON_Delete(u->local);
        return rc < 0 ? rc : results[0];
    }
    out = u->local;
    if (u->gh.error || u->gh.status != 200) {
        cJSON_Delete(out);
        return cn_res_upstream_error(res, &u->gh, "User not found");
    }
    if (cn_fetch_json(&u->gh, &gh) < 0) {
        cJSON_Delete(out);
        return cn_res_error(res, 502, "Upstream sent invalid JSON");
    }
    cJSON *item = cJSON_CreateObject();
    cJSON *id = cJSON_GetObjectItem(gh, "id");
    cJSON_AddNumberToObject(item, "id", cJSON_IsNumber(id) ? id->valuedouble : 0);
    cJSON_AddStringToObject(item, "name", str_or_empty(gh, "name"));
    cJSON_AddStringToObject(item, "login", str_or_empty(gh, "login"));
    cJSON_AddStringToObject(item, "avatar_url", str_or_empty(gh, "avatar_url"));
    cJSON_AddBoolToObject(item, "is_github", 1);
    cJSON_AddItemToArray(out, item);
    return cn_res_json(res, 200, out);
}

/* The SQLite store opens in the app's startup and closes in its shutdown;
 * SQLite blocks, so both go to the pool. */
static int store_open_job(void *arg)
{
    (void)arg;
    return store_open() < 0 ? CN_EINVAL : 0;
}

static int store_close_job(void *arg)
{
    (void)arg;
    store_close();
    return 0;
}

static int open_store(cn_app *app, void *arg)
{
    (void)app;
    return cn_to_thread(store_open_job, arg);
}

static int close_store(cn_app *app, void *arg)
{
    (void)app;
    return cn_to_thread(store_close_job, arg);
}

int demo_register_fetch(cn_app *app, const char *upstream_url)
{
    void *u = (void *)(uintptr_t)upstream_url; /* read-only route data */
    int rc = 0;

    rc = cn_app_lifespan(app, open_store, close_store, NULL);
#ifdef DEMO_HAVE_PG
    if (store_pg_enabled())
        rc = rc ? rc : store_pg_register(app);
#endif
    rc = rc ? rc
            : cn_app_route_ex(app, "GET /fetch-multiple", fetch_multiple, u,
                              &(cn_route_opts){.params = fetch_multiple_params,
                                               .summary = "Two upstream calls at once",
                                               .tags = (const char *const[]){"upstream", NULL}});
    rc = rc ? rc : cn_app_route(app, "GET /users", users, u);
    rc = rc ? rc : cn_app_route(app, "GET /github/{username}", github_user, u);
    return rc;
}

int demo_use_database(cn_app *app, const char *url)
{
#ifdef DEMO_HAVE_PG
    return store_pg_open(app, url);
#else
    (void)app;
    (void)url;
    return CN_EINVAL;
#endif
}
