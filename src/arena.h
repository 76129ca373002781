/* arena.h -- a bump allocator freed in one go (one per request). */
#ifndef CN_ARENA_H
#define CN_ARENA_H

#include <stddef.h>

typedef struct cn__arena_chunk cn__arena_chunk;

typedef struct cn__arena {
    char *cur, *end;         /* free space in the current chunk */
    cn__arena_chunk *chunks; /* heap chunks, newest first */
    size_t total;            /* bytes obtained from malloc, for stats */
} cn__arena;

/* Start an arena in caller-provided memory (may be NULL/0). */
void cn__arena_init(cn__arena *a, void *initial, size_t size);

/* Aligned allocation (max_align_t); NULL on OOM. Never freed alone. */
void *cn__arena_alloc(cn__arena *a, size_t size);

/* Copy n bytes and a NUL. NULL on OOM. */
char *cn__arena_strndup(cn__arena *a, const char *s, size_t n);

/*
 * Grow the last allocation `p` (of old_size bytes) to new_size, in place when
 * it is the newest allocation and fits, else by copying. NULL on OOM (p
 * stays valid).
 */
void *cn__arena_realloc(cn__arena *a, void *p, size_t old_size, size_t new_size);

/* Free every heap chunk. The arena may be initialised again afterwards. */
void cn__arena_free(cn__arena *a);

#endif
