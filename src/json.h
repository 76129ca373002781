/*
 * json.h -- JSON texts to cJSON trees and back, and keeping the big ones
 * off the loop: a large text is parsed, a large tree printed and deleted on
 * the app's thread pool, so that one request's JSON cannot hold every
 * other request behind it. Small ones stay on the calling thread, where
 * handing them over would cost more than the work.
 */
#ifndef CN_JSON_H
#define CN_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "canteen.h"

/* A text from this many bytes is parsed on the pool (from a coroutine). */
#define CN__JSON_POOL_BYTES (16 * 1024)
/* A tree of this many nodes is printed and deleted on the pool. */
#define CN__JSON_POOL_NODES 4096

/*
 * Parse n bytes of JSON: well-formed UTF-8 (cn__utf8_valid), then the
 * grammar and Canteen's refusals (cn__json_check: NaN, a \u0000 escape, an
 * unpaired surrogate, a number past a double's range, nesting past
 * CN_JSON_MAX_DEPTH), then cJSON. The caller owns *out (NULL on error).
 * Errors: CN_EBADJSON (empty, malformed or refused), CN_EJSONDEPTH,
 * CN_ENOMEM (cJSON failed on a text the checks passed: they take nothing
 * cJSON refuses, so only memory is left). On the calling thread.
 */
int cn__json_parse(const char *s, size_t n, cJSON **out);

/* cJSON's part of cn__json_parse alone, for text already checked:
 * 0, or CN_ENOMEM. */
int cn__json_parse_checked(const char *s, size_t n, cJSON **out);

/*
 * cn__json_parse, on the pool when n >= CN__JSON_POOL_BYTES and the caller
 * is a coroutine (elsewhere, on the calling thread). Errors: as
 * cn__json_parse, and cn_to_thread's (CN_ECANCELED...).
 */
int cn__json_parse_off_loop(cn_app *app, const char *s, size_t n, cJSON **out);

/* The nodes of the tree at j, counted up to `cap` (then cap). */
size_t cn__json_nodes(const cJSON *j, size_t cap);

/*
 * Append the tree at j (not its siblings) to b, byte for byte what
 * cJSON_PrintUnformatted makes, without recursion (any depth is safe on
 * a coroutine's stack) and with integers printed without printf. 0, or
 * CN_EINVAL (an invalid node: cJSON_Invalid, a raw node without text),
 * CN_ENOMEM. On error b holds part of the text.
 */
int cn__json_print(const cJSON *j, cn__buf *b);

/*
 * Delete a tree: a big one (CN__JSON_POOL_NODES) on app's pool, when
 * there is one that takes the job; otherwise here. NULL j is nothing.
 */
void cn__json_free(cn_app *app, cJSON *j);

#endif
