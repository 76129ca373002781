/* jsoncheck.h -- where JSON text goes wrong, as Python's json module says it. */
#ifndef CN_JSONCHECK_H
#define CN_JSONCHECK_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Whether the n bytes of UTF-8 text at s are JSON that Canteen takes:
 * Python's json.loads grammar (a leading byte order mark skipped), less
 * what cJSON and C strings cannot carry (NaN/Infinity, a \u0000 escape, a
 * \uXXXX surrogate without its pair, a number past a double's range), and
 * nesting no deeper than CN_JSON_MAX_DEPTH. 0 if so; otherwise 1, or 2
 * when the nesting is what is wrong, with *pos the character index of the
 * error and *msg its message (Python's, "Expecting value", "Extra data"...,
 * where Python has one; static). Not recursive past CN_JSON_MAX_DEPTH
 * levels, and no allocation: safe on a coroutine's stack, on any thread.
 */
int cn__json_check(const char *s, size_t n, size_t *pos, const char **msg);

/* Whether the n bytes at s are well-formed UTF-8 (no overlong forms, no
 * surrogates, nothing past U+10FFFF). */
bool cn__utf8_valid(const char *s, size_t n);

#endif
