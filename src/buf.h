/* buf.h -- a growable byte buffer (malloc'd), used for output. */
#ifndef CN_BUF_H
#define CN_BUF_H

#include <stdlib.h>
#include <string.h>

typedef struct cn__buf {
    char *data;
    size_t len, cap;
} cn__buf;

/* Make room for n more bytes. 0 or -1 (OOM). */
static inline int cn__buf_reserve(cn__buf *b, size_t n)
{
    size_t cap;
    char *p;

    if (b->cap - b->len >= n)
        return 0;
    cap = b->cap ? b->cap : 512;
    while (cap - b->len < n) {
        if (cap > ((size_t)-1) / 2)
            return -1;
        cap *= 2;
    }
    p = realloc(b->data, cap);
    if (p == NULL)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

static inline int cn__buf_append(cn__buf *b, const void *p, size_t n)
{
    if (cn__buf_reserve(b, n))
        return -1;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

static inline int cn__buf_puts(cn__buf *b, const char *s)
{
    return cn__buf_append(b, s, strlen(s));
}

static inline void cn__buf_free(cn__buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

#endif
