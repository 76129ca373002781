/* url.c -- percent-decoding, query strings and integer parsing. */
#include <limits.h>
#include <string.h>

#include "canteen.h"
#include "url.h"

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long cn__url_decode(char *dst, const char *src, size_t len, bool plus_is_space)
{
    size_t i, o = 0;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c == '%') {
            int hi, lo;
            if (len - i < 3)
                return -1;
            hi = hexval((unsigned char)src[i + 1]);
            lo = hexval((unsigned char)src[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (unsigned char)(hi * 16 + lo);
            if (c == 0)
                return -1;
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        } else if (c == 0) {
            return -1;
        }
        dst[o++] = (char)c;
    }
    dst[o] = 0;
    return (long)o;
}

/* Compare the decoded form of raw[0..n) with name, without allocating. */
static bool decoded_equals(const char *raw, size_t n, const char *name)
{
    size_t i = 0, j = 0;

    while (i < n) {
        unsigned char c = (unsigned char)raw[i];
        if (c == '%') {
            int hi, lo;
            if (n - i < 3)
                return false;
            hi = hexval((unsigned char)raw[i + 1]);
            lo = hexval((unsigned char)raw[i + 2]);
            if (hi < 0 || lo < 0)
                return false;
            c = (unsigned char)(hi * 16 + lo);
            i += 3;
        } else {
            if (c == '+')
                c = ' ';
            i++;
        }
        if (name[j] == 0 || (unsigned char)name[j] != c)
            return false;
        j++;
    }
    return name[j] == 0;
}

bool cn__query_find(const char *query, size_t qlen, const char *name, const char **val,
                    size_t *vlen)
{
    const char *p = query, *end = query + qlen;

    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        const char *kend = eq ? eq : stop;

        if (kend > p && decoded_equals(p, (size_t)(kend - p), name)) {
            *val = eq ? eq + 1 : stop;
            *vlen = eq ? (size_t)(stop - eq - 1) : 0;
            return true;
        }
        p = stop + 1;
    }
    return false;
}

int cn__parse_i64(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    uint64_t v = 0, limit;

    if (len == 0)
        return CN_EINVAL;
    if (s[0] == '-' || s[0] == '+') {
        neg = s[0] == '-';
        i = 1;
        if (len == 1)
            return CN_EINVAL;
    }
    limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < len; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9)
            return CN_EINVAL;
        if (v > (limit - d) / 10)
            return CN_ERANGE;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

/* RFC 3986 2.3: the only bytes a URL carries as themselves in any part. */
static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

int cn_url_escape(char *dst, size_t size, const char *src, size_t len, int part)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0, w = 0; /* bytes the whole text needs; bytes written */

    if ((src == NULL && len > 0) || (dst == NULL && size > 0) ||
        (part != CN_URL_SEGMENT && part != CN_URL_QUERY))
        return CN_EINVAL;
    /* "", "." and ".." name another resource than a segment of their own,
     * however they are encoded: servers decode %2E before they resolve dot
     * segments (RFC 3986 6.2.2.2, 5.2.4) */
    if (part == CN_URL_SEGMENT &&
        (len == 0 || (len == 1 && src[0] == '.') || (len == 2 && src[0] == '.' && src[1] == '.')))
        return CN_EINVAL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        char esc[3] = {(char)c};
        size_t n = 1;
        if (!unreserved(c)) {
            esc[0] = '%';
            esc[1] = hex[c >> 4];
            esc[2] = hex[c & 15];
            n = 3;
        }
        /* whole escapes only, and nothing after the first that does not fit */
        if (w == o && o + n < size) {
            memcpy(dst + w, esc, n);
            w += n;
        }
        o += n;
        if (o > INT_MAX - 3)
            return CN_ERANGE;
    }
    if (size > 0)
        dst[w] = 0;
    return (int)o;
}
