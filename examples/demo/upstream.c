/* upstream.c -- the embedded GitHub-like user API (see upstream.h). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upstream.h"

struct upstream {
    cn_app *app;
    pthread_t thread;
    char url[64];
};

static const struct gh_user {
    int id;
    const char *login, *name, *company, *location;
    int public_repos;
} users[] = {
    {583231, "octocat", "The Octocat", "@github", "San Francisco", 8},
    {1024025, "torvalds", "Linus Torvalds", "Linux Foundation", "Portland, OR", 7},
    {6490553, "gvanrossum", "Guido van Rossum", NULL, "San Francisco Bay Area", 23},
    {1326112, "tiangolo", "Sebastián Ramírez", NULL, "Berlin, Germany", 60},
};

/* GET /users/{name}[?delay_ms=N] */
static int get_user(cn_req *req, cn_res *res)
{
    const char *login = cn_req_param(req, "name");
    int64_t delay = 0;
    cJSON *o;

    if (cn_req_query_int(req, "delay_ms", &delay) == 0 && delay > 0) {
        int rc = cn_sleep(delay > 60000 ? 60000 : delay);
        if (rc < 0)
            return rc;
    }
    for (size_t i = 0; i < sizeof users / sizeof users[0]; i++) {
        const struct gh_user *u = &users[i];
        if (strcmp(u->login, login) != 0)
            continue;
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "login", u->login);
        cJSON_AddNumberToObject(o, "id", u->id);
        cJSON_AddStringToObject(
            o, "avatar_url",
            cn_req_sprintf(req, "https://avatars.githubusercontent.com/u/%d?v=4", u->id));
        cJSON_AddStringToObject(o, "html_url",
                                cn_req_sprintf(req, "https://github.com/%s", u->login));
        cJSON_AddStringToObject(o, "type", "User");
        cJSON_AddStringToObject(o, "name", u->name);
        if (u->company)
            cJSON_AddStringToObject(o, "company", u->company);
        else
            cJSON_AddNullToObject(o, "company");
        cJSON_AddStringToObject(o, "location", u->location);
        cJSON_AddNumberToObject(o, "public_repos", u->public_repos);
        return cn_res_json(res, 200, o);
    }
    /* GitHub's own 404 body */
    return cn_res_json_str(res, 404,
                           "{\"message\":\"Not Found\",\"documentation_url\":"
                           "\"https://docs.github.com/rest/users/users#get-a-user\"}");
}

int upstream_register(cn_app *app)
{
    return cn_app_route(app, "GET /users/{name}", get_user, NULL);
}

static void *run(void *arg)
{
    upstream *u = arg;
    cn_app_run(u->app);
    return NULL;
}

upstream *upstream_start(const char *host, int port, int *err)
{
    upstream *u = calloc(1, sizeof(*u));
    int rc;

    if (u == NULL) {
        *err = CN_ENOMEM;
        return NULL;
    }
    u->app = cn_app_new(&(cn_config){.pool_threads = 1});
    rc = u->app ? upstream_register(u->app) : CN_ENOMEM;
    if (rc == 0)
        rc = cn_app_listen(u->app, host, port);
    if (rc == 0 && pthread_create(&u->thread, NULL, run, u) != 0)
        rc = CN_ENOMEM;
    if (rc < 0) {
        cn_app_free(u->app);
        free(u);
        *err = rc;
        return NULL;
    }
    snprintf(u->url, sizeof u->url, "http://%s:%d", host, cn_app_port(u->app));
    return u;
}

const char *upstream_url(const upstream *u)
{
    return u->url;
}

uint64_t upstream_connections(const upstream *u)
{
    cn_stats st;
    cn_app_stats(u->app, &st);
    return st.connections_accepted;
}

void upstream_stop(upstream *u)
{
    if (u == NULL)
        return;
    /* safe from any thread, even before the run has started */
    cn_app_stop(u->app);
    pthread_join(u->thread, NULL);
    cn_app_free(u->app);
    free(u);
}
