/* jsoncheck.h -- where JSON text goes wrong, as Python's json module says it. */
#ifndef CN_JSONCHECK_H
#define CN_JSONCHECK_H

#include <stdbool.h>
#include <stddef.h>

/*
 * 0 if Python's json.loads would accept the n bytes of UTF-8 text at s;
 * otherwise 1, with *pos the character index of the error and *msg
 * Python's message ("Expecting value", "Extra data"...; static).
 */
int cn__json_check(const char *s, size_t n, size_t *pos, const char **msg);

/* Whether the n bytes at s are well-formed UTF-8 (no overlong forms, no
 * surrogates, nothing past U+10FFFF). */
bool cn__utf8_valid(const char *s, size_t n);

#endif
