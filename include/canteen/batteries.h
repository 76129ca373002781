/*
 * canteen/batteries.h -- middleware that ships with Canteen: request IDs,
 * CORS, gzip and trailing-slash redirects (Starlette's middleware and
 * redirect_slashes). Included by canteen.h.
 *
 * Each cn_app_<name> call adds one app middleware (canteen/middleware.h)
 * at the place it is called, so the order of the calls is the order they
 * run in, the first outermost. The order that works:
 *
 *     cn_app_request_id(app, NULL);          // first: every log line has the ID
 *     cn_app_cors(app, &cors);               // preflights answered before anything else
 *     cn_app_gzip(app, NULL);                // compresses what the rest answers
 *     cn_app_redirect_slashes(app);          // last: only sees what no route takes
 *
 * Options structs are copied; the strings and arrays they point to are
 * kept and must outlive the app (static data, as in the examples). They
 * are app middleware: they see every request, those no route matches too.
 */
#ifndef CANTEEN_BATTERIES_H
#define CANTEEN_BATTERIES_H

#ifdef __cplusplus
extern "C" {
#endif

/* ---- request IDs ---- */

/* The request-ID middleware's options; NULL or all zero: the defaults. */
typedef struct cn_request_id_opts {
    const char *header;  /* NULL: "X-Request-ID" (read from the request, set on the response) */
    int ignore_incoming; /* 1: always make a new ID, never take the client's */
    void *reserved[4];   /* leave zero */
} cn_request_id_opts;

/*
 * Give every request an ID (cn_req_set_id) and return it in a response
 * header. The client's X-Request-ID is taken when cn_req_set_id accepts it
 * (1 to 128 printable ASCII characters, no space: a forged value with
 * CR/LF, spaces or 200 characters is replaced, never echoed); otherwise a
 * new one is made: 32 hex digits from getrandom(2). From then on every
 * line Canteen logs about the request starts with "[<id>] " (a handler's
 * failure, a slow step, the access log, cn_req_log). The header is set
 * before the rest of the chain runs, so error responses and streams carry
 * it too. Errors: CN_EINVAL (app NULL, a header name that is not a token
 * or is one Canteen writes itself, such as Date), CN_ESTATE (the app runs),
 * CN_ENOMEM.
 */
CN_EXTERN int cn_app_request_id(cn_app *app, const cn_request_id_opts *opts);

/* ---- CORS ---- */

/*
 * Cross-origin resource sharing (Starlette's CORSMiddleware). Lists are
 * NULL-terminated arrays of strings; "*" in a list allows anything.
 */
typedef struct cn_cors_opts {
    const char *const *allow_origins;  /* exact origins ("https://a.example"), or "*" */
    const char *allow_origin_regex;    /* POSIX extended regex an origin must match whole
                                        * ("https://.*\\.example\\.org"), or NULL */
    const char *const *allow_methods;  /* NULL: GET only (Starlette's default) */
    const char *const *allow_headers;  /* request headers a preflight may name, beyond
                                        * the safelisted Accept, Accept-Language,
                                        * Content-Language and Content-Type */
    const char *const *expose_headers; /* response headers scripts may read */
    int allow_credentials;             /* cookies and auth: the origin is echoed, never "*" */
    int max_age;                       /* seconds a preflight is cached; 0: 600; < 0: 0 */
    void *reserved[4];                 /* leave zero */
} cn_cors_opts;

/*
 * Answer CORS requests as Starlette does.
 *
 * A preflight (OPTIONS with Origin and Access-Control-Request-Method) is
 * answered here, for any path, routed or not: 200 "OK" with
 * Access-Control-Allow-Origin, -Methods, -Headers, -Max-Age (and
 * -Credentials), or 400 "Disallowed CORS origin, method, headers" naming
 * what is not allowed. The route never sees it.
 *
 * Any other request with an Origin goes on to the route; an allowed origin
 * gets Access-Control-Allow-Origin ("*" when every origin is allowed and
 * neither credentials nor a Cookie are involved; else the origin itself,
 * with Vary: Origin), -Credentials and -Expose-Headers on the response,
 * error responses and streams included. A disallowed origin gets none: the
 * browser then refuses the response to the script. When the allowed origin
 * depends on the request, every response carries Vary: Origin, so a cache
 * keeps them apart.
 *
 * Errors: CN_EINVAL (app or opts NULL, a regex that does not compile),
 * CN_ESTATE (the app runs), CN_ENOMEM.
 */
CN_EXTERN int cn_app_cors(cn_app *app, const cn_cors_opts *opts);

/* ---- gzip ---- */

/* The gzip middleware's options; NULL or all zero: the defaults. */
typedef struct cn_gzip_opts {
    size_t minimum_size;      /* smaller bodies go as they are; 0: 500 (Starlette's) */
    int level;                /* zlib level 1 (fast) .. 9 (small); 0: 6 (zlib's default) */
    size_t pool_min_size;     /* bodies from this size are compressed on the thread
                               * pool, not the loop; 0: 64 KiB; SIZE_MAX: never */
    const char *const *types; /* media types worth compressing, NULL-terminated; an
                               * entry ending in '/' is a prefix ("text/"); NULL: text/,
                               * JSON, JavaScript, XML, SVG, NDJSON, CSS, WASM,
                               * and every +json and +xml type */
    void *reserved[4];        /* leave zero */
} cn_gzip_opts;

/*
 * Compress responses with gzip (zlib), as Starlette's GZipMiddleware and
 * nginx's gzip do. A response is compressed when all of these hold:
 *
 *   - the client accepts gzip: Accept-Encoding names gzip (or x-gzip, or *)
 *     with a q-value above 0 ("gzip;q=0" refuses it, and so does "*;q=0"
 *     without gzip);
 *   - the request is not a HEAD for a stream, and the status has a body
 *     (not 1xx, 204, 206 or 304);
 *   - the response has no Content-Encoding yet and its type is in `types`;
 *   - a whole body is at least minimum_size bytes (a stream always is).
 *
 * A whole body is compressed once the route has answered: Content-Length
 * is the compressed size, a HEAD request gets the length a GET would, and
 * a strong ETag becomes weak (W/"...": the bytes differ). From
 * pool_min_size up the work goes to the thread pool (cn_to_thread): the
 * loop serves others meanwhile. A stream is compressed piece by piece:
 * each cn_res_stream_write is flushed (Z_SYNC_FLUSH), so the client gets
 * every piece as soon as it is written, and cn_res_stream_end finishes it
 * (Z_FINISH); it uses about 256 KiB of zlib state while it runs. Every
 * response of a compressible type gets Vary: Accept-Encoding, compressed or
 * not. What it costs is in docs/api/batteries.md.
 *
 * Errors: CN_EINVAL (app NULL, level out of 0..9), CN_ESTATE (the app
 * runs), CN_ENOMEM.
 */
CN_EXTERN int cn_app_gzip(cn_app *app, const cn_gzip_opts *opts);

/* ---- trailing slashes ---- */

/*
 * Starlette's redirect_slashes: a request that matches no route, whose path
 * with a trailing slash added ("/items" -> "/items/") or removed
 * ("/items/" -> "/items") matches one for its method, gets 307 Temporary
 * Redirect (the method and body are kept) with Location: the new path and
 * the query as they were sent. The Location is always a path on this
 * server: a path that starts with "//" or "/\" (which a browser would read
 * as another host) is never redirected. Errors: CN_EINVAL, CN_ESTATE,
 * CN_ENOMEM.
 */
CN_EXTERN int cn_app_redirect_slashes(cn_app *app);

#ifdef __cplusplus
}
#endif

#endif
