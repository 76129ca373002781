/*
 * jsoncheck.c -- where a JSON text goes wrong, told the way Python's json
 * module tells it ("Expecting ',' delimiter" at character 12). FastAPI
 * answers a body that is not JSON with 422 json_invalid, whose `loc` and
 * `ctx.error` come from Python's JSONDecodeError; this scanner walks the
 * same grammar as CPython's json scanner (3.11/3.12: NaN, Infinity and
 * -Infinity are values there) and stops where it would stop, with its
 * message. Positions count characters (code points), as Python's do.
 */
#include <string.h>

#include "jsoncheck.h"

typedef struct scan {
    const unsigned char *s;
    size_t n;
    size_t err; /* byte offset of the error */
    const char *msg;
    int depth;
} scan;

static int fail(scan *sc, size_t at, const char *msg)
{
    sc->err = at;
    sc->msg = msg;
    return -1;
}

static size_t skip_ws(const scan *sc, size_t i)
{
    while (i < sc->n &&
           (sc->s[i] == ' ' || sc->s[i] == '\t' || sc->s[i] == '\n' || sc->s[i] == '\r'))
        i++;
    return i;
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_hex(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool has(const scan *sc, size_t i, const char *word)
{
    size_t k = strlen(word);
    return sc->n - i >= k && memcmp(sc->s + i, word, k) == 0;
}

/* A string whose opening quote is at `begin`; *end gets the index after it. */
static int scan_string(scan *sc, size_t begin, size_t *end)
{
    size_t i = begin + 1;

    for (;;) {
        unsigned char c;
        if (i >= sc->n)
            return fail(sc, begin, "Unterminated string starting at");
        c = sc->s[i];
        if (c == '"') {
            *end = i + 1;
            return 0;
        }
        if (c < 0x20)
            return fail(sc, i, "Invalid control character at");
        if (c != '\\') {
            i++;
            continue;
        }
        if (i + 1 >= sc->n)
            return fail(sc, begin, "Unterminated string starting at");
        c = sc->s[i + 1];
        if (c == 'u') {
            /* CPython reports these at the 'u', and wants a character after
             * the four digits (the closing quote at least) */
            if (i + 6 >= sc->n || !is_hex(sc->s[i + 2]) || !is_hex(sc->s[i + 3]) ||
                !is_hex(sc->s[i + 4]) || !is_hex(sc->s[i + 5]))
                return fail(sc, i + 1, "Invalid \\uXXXX escape");
            i += 6;
        } else if (strchr("\"\\/bfnrt", c) && c != 0) {
            i += 2;
        } else {
            return fail(sc, i, "Invalid \\escape");
        }
    }
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?, or no match (0). */
static size_t number_len(const scan *sc, size_t i)
{
    size_t j = i;

    if (j < sc->n && sc->s[j] == '-')
        j++;
    if (j >= sc->n || !is_digit(sc->s[j]))
        return 0;
    if (sc->s[j] == '0')
        j++;
    else
        while (j < sc->n && is_digit(sc->s[j]))
            j++;
    if (j + 1 < sc->n && sc->s[j] == '.' && is_digit(sc->s[j + 1])) {
        j += 2;
        while (j < sc->n && is_digit(sc->s[j]))
            j++;
    }
    if (j < sc->n && (sc->s[j] == 'e' || sc->s[j] == 'E')) {
        size_t k = j + 1;
        if (k < sc->n && (sc->s[k] == '+' || sc->s[k] == '-'))
            k++;
        if (k < sc->n && is_digit(sc->s[k])) {
            while (k < sc->n && is_digit(sc->s[k]))
                k++;
            j = k;
        }
    }
    return j - i;
}

static int scan_value(scan *sc, size_t i, size_t *end);

static int scan_object(scan *sc, size_t i, size_t *end)
{
    i = skip_ws(sc, i);
    if (i < sc->n && sc->s[i] == '}') {
        *end = i + 1;
        return 0;
    }
    for (;;) {
        if (i >= sc->n || sc->s[i] != '"')
            return fail(sc, i, "Expecting property name enclosed in double quotes");
        if (scan_string(sc, i, &i) < 0)
            return -1;
        i = skip_ws(sc, i);
        if (i >= sc->n || sc->s[i] != ':')
            return fail(sc, i, "Expecting ':' delimiter");
        i = skip_ws(sc, i + 1);
        if (scan_value(sc, i, &i) < 0)
            return -1;
        i = skip_ws(sc, i);
        if (i < sc->n && sc->s[i] == '}') {
            *end = i + 1;
            return 0;
        }
        if (i >= sc->n || sc->s[i] != ',')
            return fail(sc, i, "Expecting ',' delimiter");
        i = skip_ws(sc, i + 1);
    }
}

static int scan_array(scan *sc, size_t i, size_t *end)
{
    i = skip_ws(sc, i);
    if (i < sc->n && sc->s[i] == ']') {
        *end = i + 1;
        return 0;
    }
    for (;;) {
        if (scan_value(sc, i, &i) < 0)
            return -1;
        i = skip_ws(sc, i);
        if (i < sc->n && sc->s[i] == ']') {
            *end = i + 1;
            return 0;
        }
        if (i >= sc->n || sc->s[i] != ',')
            return fail(sc, i, "Expecting ',' delimiter");
        i = skip_ws(sc, i + 1);
    }
}

static int scan_value(scan *sc, size_t i, size_t *end)
{
    size_t k;
    int rc;

    if (i >= sc->n)
        return fail(sc, i, "Expecting value");
    switch (sc->s[i]) {
    case '"':
        return scan_string(sc, i, end);
    case '{':
    case '[':
        /* Python recurses too; its limit is the interpreter's, ours a bound */
        if (++sc->depth > 10000)
            return fail(sc, i, "Expecting value");
        rc = sc->s[i] == '{' ? scan_object(sc, i + 1, end) : scan_array(sc, i + 1, end);
        sc->depth--;
        return rc;
    default:
        break;
    }
    static const char *const words[] = {"null", "true", "false", "NaN", "Infinity", "-Infinity"};
    for (size_t w = 0; w < sizeof words / sizeof words[0]; w++)
        if (has(sc, i, words[w])) {
            *end = i + strlen(words[w]);
            return 0;
        }
    k = number_len(sc, i);
    if (k == 0)
        return fail(sc, i, "Expecting value");
    *end = i + k;
    return 0;
}

/* Characters (code points) before byte offset `at` of UTF-8 text. */
static size_t chars_before(const unsigned char *s, size_t at)
{
    size_t n = 0;

    for (size_t i = 0; i < at; i++)
        if ((s[i] & 0xC0) != 0x80)
            n++;
    return n;
}

int cn__json_check(const char *text, size_t n, size_t *pos, const char **msg)
{
    scan sc = {.s = (const unsigned char *)text, .n = n};
    size_t i = skip_ws(&sc, 0), end;

    if (scan_value(&sc, i, &end) == 0) {
        end = skip_ws(&sc, end);
        if (end == n)
            return 0;
        fail(&sc, end, "Extra data");
    }
    *pos = chars_before(sc.s, sc.err);
    *msg = sc.msg;
    return 1;
}

bool cn__utf8_valid(const char *text, size_t n)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;

    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        unsigned cp;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        /* overlong forms, surrogates, past U+10FFFF */
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}
