/*
 * web.c -- what the demo puts around its routes for browsers and
 * operators (Starlette's middleware stack): a request ID on every request
 * and every log line about it, CORS for the API, gzip for clients that
 * take it, and a small static page at /static/.
 */
#include <stdlib.h>

#include <canteen.h>

#include "demo.h"

#ifndef DEMO_STATIC_DIR
#define DEMO_STATIC_DIR "static"
#endif

static const cn_cors_opts cors = {
    .allow_origins = (const char *const[]){"*", NULL},
    .allow_methods = (const char *const[]){"GET", "POST", NULL},
    .allow_headers = (const char *const[]){"Content-Type", "Authorization", NULL},
};

int demo_register_web(cn_app *app)
{
    const char *dir = getenv("CANTEEN_DEMO_STATIC_DIR");
    int rc = 0;

    /* outermost first: the ID is set before anything logs */
    rc = rc ? rc : cn_app_request_id(app, NULL);
    rc = rc ? rc : cn_app_cors(app, &cors);
    rc = rc ? rc : cn_app_gzip(app, NULL);
    rc = rc ? rc
            : cn_app_static(app, "/static", dir && *dir ? dir : DEMO_STATIC_DIR,
                            &(cn_static_opts){.html = 1, .cache_control = "public, max-age=60"});
    return rc;
}
