/*
 * jsoncheck.c -- where a JSON text goes wrong, told the way Python's json
 * module tells it ("Expecting ',' delimiter" at character 12). FastAPI
 * answers a body that is not JSON with 422 json_invalid, whose `loc` and
 * `ctx.error` come from Python's JSONDecodeError; this scanner walks the
 * same grammar as CPython's json scanner and stops where it would stop,
 * with its message. Positions count characters (code points), as Python's
 * do.
 *
 * It also stops at what Python takes and Canteen refuses, because a C
 * string or a cJSON number cannot carry it: NaN and Infinity (not JSON:
 * "Expecting value"), a \u0000 escape (it would end the string early),
 * a \uXXXX surrogate without its pair (RFC 8259 8.2: not a character),
 * and a number too large for a double (1e999 would become null). And it
 * stops at nesting deeper than CN_JSON_MAX_DEPTH, so that neither this
 * scanner's recursion nor cJSON's can run a coroutine's stack out.
 */
#include <string.h>

#include "canteen.h"
#include "jsoncheck.h"

typedef struct scan {
    const unsigned char *s;
    size_t n;
    size_t err; /* byte offset of the error */
    const char *msg;
    int depth;
    bool deep; /* the error is the nesting */
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

/* Four hex digits at i, and a character after them; their value in *u. */
static bool hex4(const scan *sc, size_t i, unsigned *u)
{
    *u = 0;
    if (i + 4 >= sc->n)
        return false;
    for (size_t k = i; k < i + 4; k++) {
        unsigned char c = sc->s[k];
        if (!is_hex(c))
            return false;
        *u = *u * 16 + (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return true;
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
            unsigned u;
            /* CPython reports these at the 'u', and wants a character after
             * the four digits (the closing quote at least) */
            if (!hex4(sc, i + 2, &u))
                return fail(sc, i + 1, "Invalid \\uXXXX escape");
            if (u == 0)
                return fail(sc, i, "Invalid \\u0000 escape: NUL in a string");
            if (u >= 0xDC00 && u <= 0xDFFF)
                return fail(sc, i, "Unpaired surrogate in \\uXXXX escape");
            if (u >= 0xD800 && u <= 0xDBFF) {
                unsigned lo;
                if (i + 7 >= sc->n || sc->s[i + 6] != '\\' || sc->s[i + 7] != 'u' ||
                    !hex4(sc, i + 8, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                    return fail(sc, i, "Unpaired surrogate in \\uXXXX escape");
                i += 6;
            }
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

/* The significant digits of the number of k bytes at s (number_len's),
 * one by one: *at is where to look next; -1 at the end. */
static int next_digit(const unsigned char *s, size_t k, size_t *at)
{
    while (*at < k && s[*at] == '.')
        (*at)++;
    if (*at >= k || s[*at] == 'e' || s[*at] == 'E')
        return -1;
    return s[(*at)++] - '0';
}

/*
 * Whether the number of k bytes at s (number_len's) is beyond a double's
 * range, where strtod gives HUGE_VAL and cJSON would print null. The
 * decimal exponent of its first significant digit decides: past 308 it
 * overflows (DBL_MAX is 1.797...e308), below it it does not; at 308 its
 * digits are compared with those of the halfway point between DBL_MAX and
 * 2^1024, from which on a double rounds to infinity. Tiny numbers round to
 * 0, as in Python: not an error.
 */
static bool number_too_big(const unsigned char *s, size_t k)
{
    static const char half[] = /* 2^1024 - 2^970, exactly */
        "17976931348623158079372897140530341507993413271003782693617377898044496829276475094664"
        "90179775872070963302864166928879109465555478519404026306574886715058206819089020007083"
        "83676273854845817711531764475730270069855571366959622842914819860834936475292719074168"
        "444365510704342711559699508093042880177904174497792";
    size_t j = 0, start, lead = 0;
    long mag = 0, exp = 0, e10;
    bool frac = false;
    int d;

    /* no exponent and fewer than 308 digits: finite (the common case) */
    if (k < 308 && memchr(s, 'e', k) == NULL && memchr(s, 'E', k) == NULL)
        return false;
    if (s[j] == '-')
        j++;
    /* leading zeros (0.000123): they only move the exponent */
    for (; j < k && (s[j] == '0' || s[j] == '.'); j++) {
        lead += frac;
        frac |= s[j] == '.';
    }
    start = j;
    if (j >= k || s[j] == 'e' || s[j] == 'E')
        return false; /* zero */
    for (; !frac && j < k && s[j] != 'e' && s[j] != 'E' && s[j] != '.'; j++)
        mag++; /* integer digits from the first significant one */
    while (j < k && s[j] != 'e' && s[j] != 'E')
        j++;
    if (j < k) {
        bool neg = false;
        j++;
        if (s[j] == '+' || s[j] == '-')
            neg = s[j++] == '-';
        for (; j < k && exp <= 100000; j++)
            exp = exp * 10 + (s[j] - '0'); /* past 100000: far past either edge */
        if (neg)
            exp = -exp;
    }
    e10 = (mag > 0 ? mag - 1 : -(long)lead - 1) + exp;
    if (e10 != 308)
        return e10 > 308;
    j = start;
    for (size_t h = 0; (d = next_digit(s, k, &j)) >= 0; h++) {
        int hd = h < sizeof half - 1 ? half[h] - '0' : 0;
        if (d != hd)
            return d > hd;
    }
    /* a prefix of the halfway point: at or past it only if all of it */
    j = start;
    size_t nd = 0;
    while (next_digit(s, k, &j) >= 0)
        nd++;
    for (size_t h = nd; h < sizeof half - 1; h++)
        if (half[h] != '0')
            return false;
    return true;
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
        /* Python recurses too (RecursionError); ours is a bound */
        if (++sc->depth > CN_JSON_MAX_DEPTH) {
            sc->deep = true;
            return fail(sc, i, "Nesting too deep");
        }
        rc = sc->s[i] == '{' ? scan_object(sc, i + 1, end) : scan_array(sc, i + 1, end);
        sc->depth--;
        return rc;
    default:
        break;
    }
    /* Python takes NaN, Infinity and -Infinity too; JSON does not */
    static const char *const words[] = {"null", "true", "false"};
    for (size_t w = 0; w < sizeof words / sizeof words[0]; w++)
        if (has(sc, i, words[w])) {
            *end = i + strlen(words[w]);
            return 0;
        }
    k = number_len(sc, i);
    if (k == 0)
        return fail(sc, i, "Expecting value");
    if (number_too_big(sc->s + i, k))
        return fail(sc, i, "Number out of range");
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
    size_t i = 0, end;

    /* a UTF-8 byte order mark: Python's json.loads of bytes skips it */
    if (n >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        i = 3;
    i = skip_ws(&sc, i);
    if (scan_value(&sc, i, &end) == 0) {
        end = skip_ws(&sc, end);
        if (end == n)
            return 0;
        fail(&sc, end, "Extra data");
    }
    *pos = chars_before(sc.s, sc.err);
    *msg = sc.msg;
    return sc.deep ? 2 : 1;
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
