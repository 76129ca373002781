/*
 * batteries.h -- the parsers behind the shipped middleware, static files
 * and cookies (canteen/batteries.h, canteen/static.h, canteen/cookies.h),
 * pure functions of their input so that unit tests can reach every corner.
 */
#ifndef CN_BATTERIES_H
#define CN_BATTERIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "canteen.h"

/*
 * Find the cookie `name` in one Cookie header value (RFC 6265 5.4, read
 * leniently: ';' separated pairs, spaces and tabs around them ignored, a
 * pair without '=' skipped). *value gets the value without its double
 * quotes (a view into `hdr`). true if found.
 */
bool cn__cookie_find(const char *hdr, size_t len, const char *name, cn_str *value);

/* RFC 6265 cookie-value: cookie-octets, optionally in one pair of DQUOTEs. */
bool cn__is_cookie_value(const char *s, size_t n);

/* A comma-separated header value ("Origin, Accept-Encoding") holds `tok`
 * (case-insensitive). */
bool cn__list_has_token(const char *list, const char *tok);

/* Add `value` (a static header token list: not copied) to the response's
 * Vary unless it (or "*") is there: 0, CN_ERESPONDED, CN_ENOMEM. */
int cn__res_add_vary(cn_res *res, const char *value);

/* Answer `status` (a 3xx) with Location and an empty body: no Content-Type. */
int cn__res_redirect(cn_res *res, int status, const char *location);

/* Parse an IMF-fixdate (also RFC 850 and asctime forms, RFC 9110 5.6.7). */
bool cn__parse_http_date(const char *s, time_t *out);

/*
 * The q-value Accept-Encoding gives `coding` ("gzip"): 0..1000 (q * 1000),
 * from an exact entry (x-gzip counts as gzip), else from "*", else 0 when
 * neither is listed. `ae` NULL (no header): -1 (any coding is acceptable,
 * RFC 9110 12.5.3; the gzip middleware still does not compress then).
 */
int cn__accept_q(const char *ae, const char *coding);

/*
 * A Range header against a resource of `size` bytes (RFC 9110 14.2):
 * CN__RANGE_OK with [*first, *last] (inclusive) for one satisfiable range;
 * CN__RANGE_NONE for a header to ignore (malformed, another unit, several
 * ranges: the whole resource is sent); CN__RANGE_UNSATISFIABLE (416).
 */
enum { CN__RANGE_NONE = 0, CN__RANGE_OK = 1, CN__RANGE_UNSATISFIABLE = 2 };
int cn__parse_range(const char *h, uint64_t size, uint64_t *first, uint64_t *last);

/* If-None-Match (a list of entity tags, or "*") names `etag` (weak comparison). */
bool cn__etag_match(const char *inm, const char *etag);

/* A media type worth compressing, by the gzip middleware's list (NULL: its default). */
bool cn__gzip_type_ok(const char *content_type, const char *const *types);

/* Content-Type for a file name by its extension (a static string). */
const char *cn__mime_type(const char *name);

/*
 * A path under a static directory, as the route's {path:path} gives it:
 * false when it could leave the directory or name a hidden trick (a ".."
 * or "." segment, an empty segment but a last one, a backslash, a NUL, a
 * leading '/').
 */
bool cn__static_path_ok(const char *p, size_t n);

/* Tests: open static files as if the kernel had no openat2 (the O_NOFOLLOW walk). */
void cn__static_force_fallback(bool on);

#endif
