/*
 * 08_fetch.c -- chapter 8: outbound HTTP with cn_fetch and cn_fetch_all.
 *
 * To run offline, the app is its own upstream: /slow/{ms} and /status/{code}
 * stand for an external API, and the other routes call them over HTTP.
 *
 *   GET /slow/{ms:int}      the "external API": answers after ms
 *   GET /status/{code:int}  the "external API": answers with that status
 *   GET /both?a=300&b=500   two calls at once (cn_fetch_all): ~500 ms
 *   GET /one-by-one?a=300&b=500   the same two, one after the other: ~800 ms
 *   GET /mapped/{what}      what = ok, 404, 500, timeout or refused: the
 *                           failure turned into a response by
 *                           cn_res_upstream_error
 *   GET /connects           outbound connections opened so far
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <canteen.h>

/* ---- the stand-in upstream ---- */

static int slow(cn_req *req, cn_res *res)
{
    int64_t ms;
    int rc;

    cn_req_param_int(req, "ms", &ms);
    rc = cn_sleep(ms);
    if (rc < 0)
        return rc;
    return cn_res_json_str(res, 200, cn_req_sprintf(req, "{\"waited_ms\":%lld}", (long long)ms));
}

static int status(cn_req *req, cn_res *res)
{
    int64_t code;

    cn_req_param_int(req, "code", &code);
    return cn_res_error(res, (int)code, NULL);
}

/* ---- the routes that call it ---- */

static const char *base(cn_req *req)
{
    return cn_req_route_data(req); /* "http://127.0.0.1:PORT" */
}

static int64_t query_ms(cn_req *req, const char *name, int64_t dflt)
{
    int64_t v;
    return cn_req_query_int(req, name, &v) == 0 ? v : dflt;
}

static int both(cn_req *req, cn_res *res)
{
    cn_fetch_opts o[2] = {{0}, {0}};
    cn_fetch_result r[2];
    cJSON *out, *list;
    int rc;

    o[0].url = cn_req_sprintf(req, "%s/slow/%lld", base(req), (long long)query_ms(req, "a", 300));
    o[1].url = cn_req_sprintf(req, "%s/slow/%lld", base(req), (long long)query_ms(req, "b", 500));
    rc = cn_fetch_all(o, 2, r); /* both in flight at once; parks until both are done */
    if (rc == CN_ECANCELED)
        return rc;
    out = cJSON_CreateObject();
    list = cJSON_AddArrayToObject(out, "calls");
    for (int i = 0; i < 2; i++) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddNumberToObject(c, "status", r[i].status);
        cJSON_AddNumberToObject(c, "elapsed_ms", (double)(int64_t)r[i].elapsed_ms);
        cJSON_AddItemToArray(list, c);
    }
    return cn_res_json(res, 200, out);
}

static int one_by_one(cn_req *req, cn_res *res)
{
    cn_fetch_opts o = {0};
    cn_fetch_result r;
    double total = 0;
    int rc;

    o.url = cn_req_sprintf(req, "%s/slow/%lld", base(req), (long long)query_ms(req, "a", 300));
    rc = cn_fetch(&o, &r);
    if (rc < 0)
        return rc == CN_ECANCELED ? rc : cn_res_upstream_error(res, &r, NULL);
    total += r.elapsed_ms;
    o.url = cn_req_sprintf(req, "%s/slow/%lld", base(req), (long long)query_ms(req, "b", 500));
    rc = cn_fetch(&o, &r); /* starts only when the first has finished */
    if (rc < 0)
        return rc == CN_ECANCELED ? rc : cn_res_upstream_error(res, &r, NULL);
    total += r.elapsed_ms;
    return cn_res_json_str(res, 200, cn_req_sprintf(req, "{\"elapsed_ms_sum\":%.0f}", total));
}

static int mapped(cn_req *req, cn_res *res)
{
    const char *what = cn_req_param(req, "what");
    cn_fetch_opts o = {0};
    cn_fetch_result r;
    cJSON *j;

    if (strcmp(what, "timeout") == 0) {
        o.url = cn_req_sprintf(req, "%s/slow/2000", base(req));
        o.timeout_ms = 200;
    } else if (strcmp(what, "refused") == 0) {
        o.url = "http://127.0.0.1:1/"; /* nothing listens there */
    } else if (strcmp(what, "ok") == 0) {
        o.url = cn_req_sprintf(req, "%s/slow/0", base(req));
    } else {
        /* request data goes into the URL escaped, as the one segment it is */
        const char *code = cn_req_url_escape(req, what, CN_URL_SEGMENT);
        if (code == NULL)
            return cn_res_error(res, 422, "Not a path segment");
        o.url = cn_req_sprintf(req, "%s/status/%s", base(req), code);
    }
    if (cn_fetch(&o, &r) == CN_ECANCELED)
        return CN_ECANCELED;
    if (r.error || r.status >= 400)
        /* 404 -> 404 with our detail; timeout -> 504; anything else -> 502 */
        return cn_res_upstream_error(res, &r, "Item not found");
    if (cn_fetch_json(&r, &j) < 0) /* the tree belongs to the request */
        return cn_res_error(res, 502, "Upstream sent invalid JSON");
    return cn_res_json(res, 200, cJSON_Duplicate(j, 1));
}

static int connects(cn_req *req, cn_res *res)
{
    cn_stats st;

    cn_app_stats(cn_req_app(req), &st);
    return cn_res_json_str(
        res, 200,
        cn_req_sprintf(req, "{\"fetch_connects\":%llu}", (unsigned long long)st.fetch_connects));
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 8000;
    cn_config cfg = {.handle_signals = 1};
    cn_app *app = cn_app_new(&cfg);
    char url[64];
    int rc;

    if (app == NULL)
        return 1;
    /* listen first: the routes need the port to call themselves */
    rc = cn_app_listen(app, "127.0.0.1", port);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", cn_app_port(app));
    if (rc == 0)
        rc = cn_app_route(app, "GET /slow/{ms:int}", slow, NULL);
    if (rc == 0)
        rc = cn_app_route(app, "GET /status/{code:int}", status, NULL);
    if (rc == 0)
        rc = cn_app_route(app, "GET /both", both, url);
    if (rc == 0)
        rc = cn_app_route(app, "GET /one-by-one", one_by_one, url);
    if (rc == 0)
        rc = cn_app_route(app, "GET /mapped/{what}", mapped, url);
    if (rc == 0)
        rc = cn_app_route(app, "GET /connects", connects, NULL);
    if (rc == 0) {
        fprintf(stderr, "serving on %s\n", url);
        rc = cn_app_run(app);
    }
    if (rc < 0)
        fprintf(stderr, "08_fetch: %s\n", cn_strerror(rc));
    cn_app_free(app);
    return rc < 0;
}
