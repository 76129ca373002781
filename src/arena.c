/* arena.c -- bump allocation in chunks that grow geometrically. */
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"

#define ALIGN alignof(max_align_t)
#define MIN_CHUNK 4096u

struct cn__arena_chunk {
    cn__arena_chunk *next;
    size_t size;
    alignas(max_align_t) char data[];
};

static size_t round_up(size_t n)
{
    return (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
}

void cn__arena_init(cn__arena *a, void *initial, size_t size)
{
    uintptr_t p = (uintptr_t)initial, q = (p + ALIGN - 1) & ~(uintptr_t)(ALIGN - 1);

    a->chunks = NULL;
    a->total = 0;
    if (initial == NULL || size < q - p) {
        a->cur = a->end = NULL;
        return;
    }
    a->cur = (char *)q;
    a->end = (char *)initial + size;
}

static void *alloc_slow(cn__arena *a, size_t size)
{
    /* grow: at least twice the previous heap total, so a big request costs
     * O(log n) mallocs; never less than MIN_CHUNK */
    size_t want = size > MIN_CHUNK ? size : MIN_CHUNK;
    cn__arena_chunk *c;

    if (a->total > want)
        want = a->total;
    if (want > SIZE_MAX - sizeof(*c))
        return NULL;
    c = malloc(sizeof(*c) + want);
    if (c == NULL)
        return NULL;
    c->next = a->chunks;
    c->size = want;
    a->chunks = c;
    a->total += want;
    a->cur = c->data + size;
    a->end = c->data + want;
    return c->data;
}

void *cn__arena_alloc(cn__arena *a, size_t size)
{
    char *p;

    if (size == 0)
        size = 1;
    if (size > SIZE_MAX - ALIGN)
        return NULL;
    size = round_up(size);
    if ((size_t)(a->end - a->cur) < size || a->cur == NULL)
        return alloc_slow(a, size);
    p = a->cur;
    a->cur += size;
    return p;
}

char *cn__arena_strndup(cn__arena *a, const char *s, size_t n)
{
    char *p;

    if (n == SIZE_MAX)
        return NULL;
    p = cn__arena_alloc(a, n + 1);
    if (p == NULL)
        return NULL;
    if (n)
        memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void *cn__arena_realloc(cn__arena *a, void *p, size_t old_size, size_t new_size)
{
    char *q;

    if (p == NULL)
        return cn__arena_alloc(a, new_size);
    if (new_size <= old_size)
        return p;
    /* the newest allocation can grow in place */
    if ((char *)p + round_up(old_size) == a->cur && new_size <= SIZE_MAX - ALIGN &&
        (size_t)(a->end - (char *)p) >= round_up(new_size)) {
        a->cur = (char *)p + round_up(new_size);
        return p;
    }
    q = cn__arena_alloc(a, new_size);
    if (q == NULL)
        return NULL;
    memcpy(q, p, old_size);
    return q;
}

void cn__arena_free(cn__arena *a)
{
    cn__arena_chunk *c = a->chunks, *next;

    while (c != NULL) {
        next = c->next;
        free(c);
        c = next;
    }
    a->chunks = NULL;
    a->cur = a->end = NULL;
    a->total = 0;
}
