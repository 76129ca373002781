/*
 * canteen/openapi.h -- the OpenAPI document of the app, made from its route
 * table and declarations (canteen/declare.h), and Swagger UI at /docs, as
 * FastAPI serves them. Included by canteen.h.
 *
 *     cn_app_openapi(app, &(cn_openapi_opts){.title = "Items", .version = "1.0.0"});
 *     // GET /openapi.json: the document; GET /docs: Swagger UI
 */
#ifndef CANTEEN_OPENAPI_H
#define CANTEEN_OPENAPI_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cn_openapi_opts {
    const char *title;       /* info.title; NULL: "Canteen" */
    const char *version;     /* info.version (your API's); NULL: "0.1.0" */
    const char *description; /* info.description; NULL: none */
    const char *openapi_url; /* NULL: "/openapi.json"; "": no document (and no /docs) */
    const char *docs_url;    /* NULL: "/docs"; "": no Swagger UI */
    /* Swagger UI's files (npm's swagger-ui-dist package). NULL: the
     * CANTEEN_SWAGGER_UI_DIR environment variable, else where
     * `npm install -g swagger-ui-dist` puts it (/usr/local/lib/node_modules
     * or /usr/lib/node_modules, whichever has it). */
    const char *swagger_ui_dir;
    void *reserved[4];
} cn_openapi_opts;

/*
 * Serve the app's OpenAPI 3.1 document at opts->openapi_url and Swagger UI
 * at opts->docs_url (FastAPI's openapi_url and docs_url; NULL opts: both at
 * their defaults). Call it once, before cn_app_run, after or before the
 * routes: the document is made on the first request, from every route
 * registered by then but hidden ones and these two, and kept. Swagger UI's
 * files are read from disk on the thread pool and kept in memory; when
 * they are missing, /docs answers 503 with a page saying how to install
 * them. Strings are copied. Errors: CN_EINVAL, CN_EBADPATTERN (a URL that
 * is not a path), CN_EEXIST (a URL taken, by a route or an earlier call),
 * CN_ESTATE (the app runs), CN_ENOMEM.
 */
CN_EXTERN int cn_app_openapi(cn_app *app, const cn_openapi_opts *opts);

/*
 * The document itself, as cn_app_openapi serves it (opts NULL: the
 * defaults), made from the routes registered now. The caller owns *out
 * (cJSON_Delete). Errors: CN_EINVAL, CN_ENOMEM.
 */
CN_EXTERN int cn_app_openapi_json(const cn_app *app, const cn_openapi_opts *opts, cJSON **out);

#ifdef __cplusplus
}
#endif

#endif
