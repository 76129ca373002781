/*
 * canteen/cookies.h -- reading the cookies a request carries and setting
 * them on a response (Starlette's request.cookies, response.set_cookie and
 * response.delete_cookie). Included by canteen.h.
 *
 *     const char *sid = cn_req_cookie(req, "session");
 *     ...
 *     rc = cn_res_set_cookie(res, "session", token,
 *                            &(cn_cookie_opts){.max_age = 3600, .http_only = 1, .secure = 1});
 *
 * Names must be tokens (RFC 9110 5.6.2) and values cookie-octets (RFC 6265
 * 4.1.1: printable ASCII but space, DQUOTE, comma, semicolon and
 * backslash), optionally in double quotes: no attribute and no header can
 * be smuggled in through a value (CN_EBADHEADER). Put anything else
 * (JSON, spaces, non-ASCII) into a cookie in an encoded form of your
 * choice (base64url, percent-encoding); Canteen does not encode or decode.
 */
#ifndef CANTEEN_COOKIES_H
#define CANTEEN_COOKIES_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The value of the cookie `name` the request carries, or NULL if it has
 * none by that name. Every Cookie header is read (a client may send
 * several), pairs are split at ';', spaces around them are ignored (RFC
 * 6265 5.4 is what user agents send; a lenient reader copes with "a=1;b=2"
 * too), and a value in double quotes is returned without them. The first
 * pair by that name wins. A pair without '=' is skipped. NUL-terminated, in
 * the request's arena (valid until the response is done; never free it).
 * NULL also when req or name is NULL, or out of memory.
 */
CN_EXTERN const char *cn_req_cookie(cn_req *req, const char *name);

/* SameSite (RFC 6265bis): Lax is the default, as in Starlette and browsers. */
typedef enum cn_same_site {
    CN_SAMESITE_LAX = 0, /* sent on top-level navigations from other sites, not sub-requests */
    CN_SAMESITE_STRICT,  /* only on requests from the same site */
    CN_SAMESITE_NONE,    /* on every request: needs `secure` (else CN_EINVAL) */
    CN_SAMESITE_OMIT,    /* no SameSite attribute at all */
} cn_same_site;

/*
 * A cookie's attributes. Zero fields are left out, except `path` ("/") and
 * `same_site` (Lax). Strings are read during the call only.
 */
typedef struct cn_cookie_opts {
    int64_t max_age;    /* seconds it lives (> 0); 0: none (a session cookie) */
    int64_t expires;    /* Unix time it expires, as an IMF-fixdate; 0: none */
    const char *path;   /* NULL: "/" */
    const char *domain; /* NULL: none (the cookie is host-only) */
    int secure;         /* only over HTTPS */
    int http_only;      /* hidden from JavaScript */
    cn_same_site same_site;
    void *reserved[4]; /* room for new attributes: leave zero */
} cn_cookie_opts;

/*
 * Add a Set-Cookie header: "name=value; Path=/; Max-Age=...; Expires=...;
 * Domain=...; Secure; HttpOnly; SameSite=Lax". `opts` may be NULL (all
 * defaults). Everything is copied. Errors: CN_EINVAL (NULL name or value, a
 * negative max_age or expires, SameSite=None without secure: browsers drop
 * such a cookie, so it is refused here rather than lost there),
 * CN_EBADHEADER (a name that is not a token, a value that is not
 * cookie-octets, a path or domain with a ';' or a control character),
 * CN_ERESPONDED (the head is sent), CN_ENOMEM.
 */
CN_EXTERN int cn_res_set_cookie(cn_res *res, const char *name, const char *value,
                                const cn_cookie_opts *opts);

/*
 * Tell the client to drop the cookie `name`: a Set-Cookie with an empty
 * value, Max-Age=0 and an Expires in 1970. A cookie is only dropped when
 * path and domain are those it was set with, so give the same `opts` (NULL:
 * path "/", no domain; max_age and expires are ignored). Errors as
 * cn_res_set_cookie.
 */
CN_EXTERN int cn_res_delete_cookie(cn_res *res, const char *name, const cn_cookie_opts *opts);

#ifdef __cplusplus
}
#endif

#endif
