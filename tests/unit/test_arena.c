/* test_arena.c -- the bump allocator: alignment, chunks, strndup, realloc, reuse. */
#include <setjmp.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arena.h"

#define ALIGN alignof(max_align_t)

static bool aligned(const void *p)
{
    return ((uintptr_t)p % ALIGN) == 0;
}

static void alignment_of_every_heap_allocation(void **state)
{
    cn__arena a;

    (void)state;
    cn__arena_init(&a, NULL, 0);
    for (size_t size = 0; size < 300; size++) {
        char *p = cn__arena_alloc(&a, size);
        assert_non_null(p);
        assert_true(aligned(p));
        memset(p, 0xab, size);
    }
    cn__arena_free(&a);
}

static void alignment_in_a_misaligned_initial_buffer(void **state)
{
    alignas(max_align_t) char buf[1024];
    cn__arena a;

    (void)state;
    for (size_t off = 0; off < ALIGN; off++) {
        cn__arena_init(&a, buf + off, sizeof buf - off);
        for (size_t size = 1; size < 40; size++) {
            char *p = cn__arena_alloc(&a, size);
            assert_non_null(p);
            assert_true(aligned(p));
            memset(p, 0xcd, size);
        }
        cn__arena_free(&a);
    }
}

static void initial_buffer_is_used_first(void **state)
{
    alignas(max_align_t) char buf[256];
    cn__arena a;
    char *p;

    (void)state;
    cn__arena_init(&a, buf, sizeof buf);
    p = cn__arena_alloc(&a, 100);
    assert_ptr_equal(p, buf);
    p = cn__arena_alloc(&a, 100);
    assert_true(p >= buf && p + 100 <= buf + sizeof buf);
    assert_int_equal(a.total, 0); /* nothing from malloc yet */
    /* the buffer is now too small: the next one comes from the heap */
    p = cn__arena_alloc(&a, 100);
    assert_non_null(p);
    assert_false(p >= buf && p < buf + sizeof buf);
    assert_true(a.total >= 100);
    cn__arena_free(&a);
}

static void init_without_a_buffer_allocates_from_the_heap(void **state)
{
    cn__arena a;
    char *p;

    (void)state;
    cn__arena_init(&a, NULL, 0);
    assert_null(a.chunks);
    assert_int_equal(a.total, 0);
    p = cn__arena_alloc(&a, 10);
    assert_non_null(p);
    assert_non_null(a.chunks);
    assert_true(a.total >= 10);
    memset(p, 1, 10);
    cn__arena_free(&a);
}

static void initial_buffer_too_small_to_align_is_ignored(void **state)
{
    alignas(max_align_t) char buf[32];
    cn__arena a;
    char *p;

    (void)state;
    /* 3 bytes starting one past an aligned address: no aligned byte fits */
    cn__arena_init(&a, buf + 1, 3);
    p = cn__arena_alloc(&a, 1);
    assert_non_null(p);
    assert_true(aligned(p));
    assert_false(p >= buf && p < buf + sizeof buf);
    cn__arena_free(&a);
}

static void zero_size_allocations_are_distinct(void **state)
{
    cn__arena a;
    void *p, *q;

    (void)state;
    cn__arena_init(&a, NULL, 0);
    p = cn__arena_alloc(&a, 0);
    q = cn__arena_alloc(&a, 0);
    assert_non_null(p);
    assert_non_null(q);
    assert_ptr_not_equal(p, q);
    cn__arena_free(&a);
}

static void many_small_allocations_cross_chunks_intact(void **state)
{
    enum { N = 20000, SZ = 24 };
    alignas(max_align_t) char buf[512];
    char **ptrs = malloc(N * sizeof(*ptrs));
    cn__arena a;

    (void)state;
    assert_non_null(ptrs);
    cn__arena_init(&a, buf, sizeof buf);
    for (size_t i = 0; i < N; i++) {
        ptrs[i] = cn__arena_alloc(&a, SZ);
        assert_non_null(ptrs[i]);
        assert_true(aligned(ptrs[i]));
        memset(ptrs[i], (int)(i & 0xff), SZ);
        memcpy(ptrs[i], &i, sizeof i);
    }
    assert_true(a.total >= (size_t)N * SZ - sizeof buf); /* several heap chunks */
    for (size_t i = 0; i < N; i++) {
        size_t got;
        memcpy(&got, ptrs[i], sizeof got);
        assert_int_equal(got, i);
        for (size_t k = sizeof i; k < SZ; k++)
            assert_int_equal((unsigned char)ptrs[i][k], i & 0xff);
    }
    cn__arena_free(&a);
    free(ptrs);
}

static void heap_growth_is_geometric(void **state)
{
    /* chunks at least double, so the waste stays a constant factor */
    size_t used = 0;
    cn__arena a;

    (void)state;
    cn__arena_init(&a, NULL, 0);
    while (used < (1u << 20)) {
        assert_non_null(cn__arena_alloc(&a, 64));
        used += 64;
    }
    assert_true(a.total >= used);
    assert_true(a.total <= 4 * used + 8192);
    cn__arena_free(&a);
}

static void huge_allocation_succeeds_and_is_usable(void **state)
{
    size_t big = (size_t)16 << 20;
    cn__arena a;
    char *small, *p, *after;

    (void)state;
    cn__arena_init(&a, NULL, 0);
    small = cn__arena_alloc(&a, 8);
    assert_non_null(small);
    memcpy(small, "arena!!", 8);
    p = cn__arena_alloc(&a, big);
    assert_non_null(p);
    assert_true(aligned(p));
    memset(p, 0x5a, big);
    assert_true(a.total >= big);
    after = cn__arena_alloc(&a, 32);
    assert_non_null(after);
    memset(after, 0, 32);
    assert_int_equal((unsigned char)p[0], 0x5a);
    assert_int_equal((unsigned char)p[big - 1], 0x5a);
    assert_string_equal(small, "arena!!");
    cn__arena_free(&a);
}

static void impossible_sizes_return_null(void **state)
{
    cn__arena a;

    (void)state;
    cn__arena_init(&a, NULL, 0);
    assert_null(cn__arena_alloc(&a, SIZE_MAX));
    assert_null(cn__arena_alloc(&a, SIZE_MAX - ALIGN + 1));
    assert_null(cn__arena_alloc(&a, SIZE_MAX - ALIGN));
    assert_null(cn__arena_strndup(&a, "x", SIZE_MAX));
    /* the arena is still usable */
    assert_non_null(cn__arena_alloc(&a, 16));
    cn__arena_free(&a);
}

static void strndup_copies_n_bytes_and_a_nul(void **state)
{
    cn__arena a;
    char *s;

    (void)state;
    cn__arena_init(&a, NULL, 0);
    s = cn__arena_strndup(&a, "hello world", 5);
    assert_non_null(s);
    assert_string_equal(s, "hello");
    s = cn__arena_strndup(&a, "abc", 3);
    assert_string_equal(s, "abc");
    s = cn__arena_strndup(&a, "ignored", 0);
    assert_non_null(s);
    assert_string_equal(s, "");
    /* embedded NULs are copied as bytes */
    s = cn__arena_strndup(&a, "a\0b", 3);
    assert_memory_equal(s, "a\0b", 4);
    cn__arena_free(&a);
}

static void strndup_of_a_long_string(void **state)
{
    size_t n = 100000;
    char *src = malloc(n);
    cn__arena a;
    char *s;

    (void)state;
    assert_non_null(src);
    memset(src, 'q', n);
    cn__arena_init(&a, NULL, 0);
    s = cn__arena_strndup(&a, src, n);
    assert_non_null(s);
    assert_memory_equal(s, src, n);
    assert_int_equal(s[n], 0);
    cn__arena_free(&a);
    free(src);
}

static void realloc_grows_the_newest_allocation_in_place(void **state)
{
    cn__arena a;
    char *p, *q;

    (void)state;
    cn__arena_init(&a, NULL, 0);
    p = cn__arena_alloc(&a, 10);
    memcpy(p, "0123456789", 10);
    q = cn__arena_realloc(&a, p, 10, 100);
    assert_ptr_equal(q, p);
    assert_memory_equal(q, "0123456789", 10);
    memset(q + 10, 'x', 90);
    /* the next allocation comes after the grown block */
    q = cn__arena_alloc(&a, 8);
    assert_true(q >= p + 100);
    cn__arena_free(&a);
}

static void realloc_in_place_in_the_initial_buffer(void **state)
{
    alignas(max_align_t) char buf[512];
    cn__arena a;
    char *p, *q;

    (void)state;
    cn__arena_init(&a, buf, sizeof buf);
    p = cn__arena_alloc(&a, 3);
    memcpy(p, "abc", 3);
    q = cn__arena_realloc(&a, p, 3, 300);
    assert_ptr_equal(q, p);
    assert_memory_equal(q, "abc", 3);
    assert_int_equal(a.total, 0);
    cn__arena_free(&a);
}

static void realloc_copies_an_older_allocation(void **state)
{
    cn__arena a;
    char *p, *other, *q;

    (void)state;
    cn__arena_init(&a, NULL, 0);
    p = cn__arena_alloc(&a, 10);
    memcpy(p, "0123456789", 10);
    other = cn__arena_alloc(&a, 16);
    memcpy(other, "do not overwrite", 16);
    q = cn__arena_realloc(&a, p, 10, 64);
    assert_non_null(q);
    assert_ptr_not_equal(q, p);
    assert_memory_equal(q, "0123456789", 10);
    memset(q + 10, 'y', 54);
    assert_memory_equal(other, "do not overwrite", 16);
    cn__arena_free(&a);
}

static void realloc_copies_when_the_chunk_is_full(void **state)
{
    alignas(max_align_t) char buf[64];
    cn__arena a;
    char *p, *q;

    (void)state;
    cn__arena_init(&a, buf, sizeof buf);
    p = cn__arena_alloc(&a, 16);
    memcpy(p, "sixteen bytes!!", 16);
    q = cn__arena_realloc(&a, p, 16, 1000); /* newest, but cannot fit */
    assert_non_null(q);
    assert_ptr_not_equal(q, p);
    assert_memory_equal(q, "sixteen bytes!!", 16);
    memset(q, 0, 1000);
    cn__arena_free(&a);
}

static void realloc_to_a_smaller_size_keeps_the_pointer(void **state)
{
    cn__arena a;
    char *p;

    (void)state;
    cn__arena_init(&a, NULL, 0);
    p = cn__arena_alloc(&a, 100);
    (void)cn__arena_alloc(&a, 1);
    assert_ptr_equal(cn__arena_realloc(&a, p, 100, 50), p);
    assert_ptr_equal(cn__arena_realloc(&a, p, 100, 100), p);
    cn__arena_free(&a);
}

static void realloc_of_null_allocates(void **state)
{
    cn__arena a;
    char *p;

    (void)state;
    cn__arena_init(&a, NULL, 0);
    p = cn__arena_realloc(&a, NULL, 0, 40);
    assert_non_null(p);
    assert_true(aligned(p));
    memset(p, 0, 40);
    cn__arena_free(&a);
}

static void repeated_growth_keeps_contents(void **state)
{
    /* the pattern cn__req_set_target uses: grow the newest block piece by piece */
    alignas(max_align_t) char buf[128];
    cn__arena a;
    char *s = NULL;
    size_t len = 0;

    (void)state;
    cn__arena_init(&a, buf, sizeof buf);
    for (size_t i = 0; i < 5000; i++) {
        char *t = cn__arena_realloc(&a, s, len, len + 1);
        assert_non_null(t);
        t[len++] = (char)('a' + i % 26);
        s = t;
        if (i % 7 == 0) /* an unrelated allocation forces a copy next time */
            assert_non_null(cn__arena_alloc(&a, 5));
    }
    for (size_t i = 0; i < len; i++)
        assert_int_equal(s[i], 'a' + i % 26);
    cn__arena_free(&a);
}

static void free_then_reuse(void **state)
{
    alignas(max_align_t) char buf[256];
    cn__arena a;

    (void)state;
    cn__arena_init(&a, NULL, 0);
    for (int i = 0; i < 1000; i++)
        assert_non_null(cn__arena_alloc(&a, 100));
    cn__arena_free(&a);
    assert_null(a.chunks);
    assert_int_equal(a.total, 0);
    /* initialised again, without and with a buffer */
    cn__arena_init(&a, NULL, 0);
    for (int i = 0; i < 100; i++)
        assert_non_null(cn__arena_alloc(&a, 100));
    cn__arena_free(&a);
    cn__arena_init(&a, buf, sizeof buf);
    assert_ptr_equal(cn__arena_alloc(&a, 8), buf);
    for (int i = 0; i < 100; i++)
        assert_non_null(cn__arena_alloc(&a, 100));
    cn__arena_free(&a);
    cn__arena_free(&a); /* twice is harmless */
}

static void free_of_a_buffer_only_arena(void **state)
{
    alignas(max_align_t) char buf[256];
    cn__arena a;

    (void)state;
    cn__arena_init(&a, buf, sizeof buf);
    assert_non_null(cn__arena_alloc(&a, 8));
    cn__arena_free(&a); /* must not free the caller's buffer */
    assert_null(a.chunks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(alignment_of_every_heap_allocation),
        cmocka_unit_test(alignment_in_a_misaligned_initial_buffer),
        cmocka_unit_test(initial_buffer_is_used_first),
        cmocka_unit_test(init_without_a_buffer_allocates_from_the_heap),
        cmocka_unit_test(initial_buffer_too_small_to_align_is_ignored),
        cmocka_unit_test(zero_size_allocations_are_distinct),
        cmocka_unit_test(many_small_allocations_cross_chunks_intact),
        cmocka_unit_test(heap_growth_is_geometric),
        cmocka_unit_test(huge_allocation_succeeds_and_is_usable),
        cmocka_unit_test(impossible_sizes_return_null),
        cmocka_unit_test(strndup_copies_n_bytes_and_a_nul),
        cmocka_unit_test(strndup_of_a_long_string),
        cmocka_unit_test(realloc_grows_the_newest_allocation_in_place),
        cmocka_unit_test(realloc_in_place_in_the_initial_buffer),
        cmocka_unit_test(realloc_copies_an_older_allocation),
        cmocka_unit_test(realloc_copies_when_the_chunk_is_full),
        cmocka_unit_test(realloc_to_a_smaller_size_keeps_the_pointer),
        cmocka_unit_test(realloc_of_null_allocates),
        cmocka_unit_test(repeated_growth_keeps_contents),
        cmocka_unit_test(free_then_reuse),
        cmocka_unit_test(free_of_a_buffer_only_arena),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
