/* html.c -- escaping text for an HTML page (cn_html_escape, cn_req_html_escape). */
#include <limits.h>
#include <string.h>

#include "common.h"
#include "req.h"

/* What a byte becomes in HTML text or a quoted attribute value: Python's
 * html.escape(quote=True), the five characters HTML gives meaning to. */
static const char *entity(unsigned char c, size_t *n)
{
    switch (c) {
    case '&':
        *n = 5;
        return "&amp;";
    case '<':
        *n = 4;
        return "&lt;";
    case '>':
        *n = 4;
        return "&gt;";
    case '"':
        *n = 6;
        return "&quot;";
    case '\'':
        *n = 6;
        return "&#x27;";
    default:
        *n = 1;
        return NULL;
    }
}

int cn_html_escape(char *dst, size_t size, const char *src, size_t len)
{
    size_t o = 0, w = 0; /* bytes the whole text needs; bytes written */

    if ((src == NULL && len > 0) || (dst == NULL && size > 0))
        return CN_EINVAL;
    for (size_t i = 0; i < len; i++) {
        size_t n;
        const char *e = entity((unsigned char)src[i], &n);
        /* whole entities only, and nothing after the first that does not fit */
        if (w == o && o + n < size) {
            if (e)
                memcpy(dst + w, e, n);
            else
                dst[w] = src[i];
            w += n;
        }
        o += n;
        if (o > INT_MAX - 6)
            return CN_ERANGE;
    }
    if (size > 0)
        dst[w] = 0;
    return (int)o;
}

char *cn_req_html_escape(cn_req *req, const char *s)
{
    size_t len;
    int n;
    char *out;

    if (req == NULL || s == NULL)
        return NULL;
    len = strlen(s);
    n = cn_html_escape(NULL, 0, s, len);
    if (n < 0)
        return NULL;
    out = cn_req_alloc(req, (size_t)n + 1);
    if (out)
        cn_html_escape(out, (size_t)n + 1, s, len);
    return out;
}
