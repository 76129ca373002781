/*
 * fuzz_url.c -- percent-decoding, query strings, integers and URL escaping
 * (url.c). Oracles: a decode is never longer than its input and holds no
 * NUL; cn__query_find's value lies inside the query; cn__parse_i64 agrees
 * with strtoll; escaping then decoding gives the bytes back, and the
 * escaped form holds only unreserved characters and escapes.
 *
 * Input: [0] bit 0: '+' is a space; bit 1: escape as a query part; the rest
 * is split at the first '\n' into a query string and a parameter name.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <canteen.h>

#include "url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static void check_i64(const char *s, size_t n)
{
    char buf[64];
    int64_t v = 0;
    int rc = cn__parse_i64(s, n, &v);

    if (n >= sizeof buf || memchr(s, 0, n))
        return;
    memcpy(buf, s, n);
    buf[n] = 0;
    if (rc == 0) {
        char *end;
        long long w;
        errno = 0;
        w = strtoll(buf, &end, 10);
        if (errno || *end || end == buf || w != v) {
            fprintf(stderr, "fuzz_url: parse_i64(\"%s\") = %lld, strtoll says %lld\n", buf,
                    (long long)v, w);
            abort();
        }
    }
}

static void check_escape(const char *s, size_t n, int part)
{
    int len = cn_url_escape(NULL, 0, s, n, part);
    char *esc, *back;
    long dl;

    if (len < 0)
        return;
    esc = malloc((size_t)len + 1);
    back = malloc((size_t)len + 1);
    if (esc == NULL || back == NULL)
        abort();
    if (cn_url_escape(esc, (size_t)len + 1, s, n, part) != len || esc[len] != 0)
        abort();
    for (int i = 0; i < len; i++)
        if (!unreserved((unsigned char)esc[i]) && esc[i] != '%')
            abort();
    dl = cn__url_decode(back, esc, (size_t)len, part == CN_URL_QUERY);
    /* a decoded NUL is refused; anything else comes back as it was */
    if (memchr(s, 0, n) ? dl != -1 : (dl != (long)n || memcmp(back, s, n) != 0)) {
        fprintf(stderr, "fuzz_url: escape/decode round trip differs\n");
        abort();
    }
    /* a small buffer is never written past, nor left holding half an escape */
    if (len > 0) {
        size_t small = (size_t)len / 2 + 1;
        memset(back, 'Z', (size_t)len + 1);
        if (cn_url_escape(back, small, s, n, part) != len || strlen(back) >= small)
            abort();
        for (size_t i = strlen(back) + 1; i <= (size_t)len; i++)
            if (back[i] != 'Z')
                abort();
        const char *pct = strrchr(back, '%');
        if (pct && strlen(pct) < 3)
            abort();
    }
    free(esc);
    free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *q, *name, *nl, *val;
    size_t qlen, nlen, vlen;
    char *dst, *nm;
    long n;

    if (size < 1)
        return 0;
    q = (const char *)data + 1;
    qlen = size - 1;
    nl = memchr(q, '\n', qlen);
    name = nl ? nl + 1 : "";
    nlen = nl ? qlen - (size_t)(nl - q) - 1 : 0;
    if (nl)
        qlen = (size_t)(nl - q);

    dst = malloc(qlen + 1);
    if (dst == NULL)
        abort();
    n = cn__url_decode(dst, q, qlen, data[0] & 1);
    if (n >= 0 && ((size_t)n > qlen || dst[n] != 0 || strlen(dst) != (size_t)n))
        abort();
    if (n < -1)
        abort();
    free(dst);

    nm = malloc(nlen + 1);
    if (nm == NULL)
        abort();
    memcpy(nm, name, nlen);
    nm[nlen] = 0;
    if (cn__query_find(q, qlen, nm, &val, &vlen)) {
        if (val < q || val + vlen > q + qlen)
            abort();
    }
    free(nm);

    check_i64(q, qlen);
    check_i64(name, nlen);
    check_escape(q, qlen, (data[0] & 2) ? CN_URL_QUERY : CN_URL_SEGMENT);
    return 0;
}
