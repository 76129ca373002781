/* url.h -- percent-decoding, query strings and integer parsing. */
#ifndef CN_URL_H
#define CN_URL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Percent-decode src[0..len) into dst (at least len+1 bytes), NUL-terminated.
 * `plus_is_space` for query strings. Returns the decoded length, or -1 for a
 * malformed escape or a decoded NUL (both are refused: 400).
 */
long cn__url_decode(char *dst, const char *src, size_t len, bool plus_is_space);

/*
 * Find parameter `name` in a raw query string ("a=1&b=x%20y"); names are
 * compared after decoding. On success sets *val and *vlen to the raw (still
 * encoded) value and returns true; "" for a bare `?flag`.
 */
bool cn__query_find(const char *query, size_t qlen, const char *name, const char **val,
                    size_t *vlen);

/* Parse a whole string as a signed decimal int64. 0, CN_EINVAL or CN_ERANGE. */
int cn__parse_i64(const char *s, size_t len, int64_t *out);

#endif
