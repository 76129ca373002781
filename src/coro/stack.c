/*
 * stack.c -- mapping, guarding and unmapping coroutine stacks (see stack.h).
 */
#include "coro/stack.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "canteen.h"
#include "common.h"

#if defined(__SANITIZE_ADDRESS__)
#define CN__STACK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CN__STACK_ASAN 1
#endif
#endif
#ifdef CN__STACK_ASAN
#include <sanitizer/asan_interface.h>
#endif

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define CN__STACK_VALGRIND 1
#endif
#endif

/* Linux 6.13 (include/uapi/asm-generic/mman-common.h); older headers lack it. */
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

/* 0: not tried yet, 1: madvise guards work, -1: the kernel said EINVAL. */
static atomic_int madvise_guard_state;
static atomic_size_t page_size_cache;
static atomic_int map_failure_logged;

size_t cn__stack_page_size(void)
{
    size_t pg = atomic_load_explicit(&page_size_cache, memory_order_relaxed);
    if (pg == 0) {
        long v = sysconf(_SC_PAGESIZE);
        pg = v > 0 ? (size_t)v : 4096;
        atomic_store_explicit(&page_size_cache, pg, memory_order_relaxed);
    }
    return pg;
}

size_t cn__stack_guard_size(void)
{
    size_t pg = cn__stack_page_size();
    return (CN__STACK_GUARD_SIZE + pg - 1) & ~(pg - 1);
}

int cn__stack_round(size_t req, size_t *out)
{
    size_t pg = cn__stack_page_size();
    if (req == 0)
        req = CN__STACK_DEFAULT_SIZE;
    if (req > CN__STACK_MAX_SIZE)
        return CN_EINVAL;
    if (req < CN__STACK_MIN_SIZE)
        req = CN__STACK_MIN_SIZE;
    *out = (req + pg - 1) & ~(pg - 1);
    return 0;
}

void cn__stack_log_map_failure(int err)
{
    if (atomic_exchange(&map_failure_logged, 1))
        return;
    /* The current limit, to make the advice concrete. */
    char cur[32] = "unknown";
    FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
    if (f) {
        if (fgets(cur, sizeof cur, f))
            cur[strcspn(cur, "\n")] = '\0';
        fclose(f);
    }
    cn__log(CN__LOG_ERROR,
            "cannot map a coroutine stack (%s): the kernel refused more memory mappings; "
            "each coroutine stack uses one or two of the sysctl vm.max_map_count (now %s): raise "
            "it, e.g. `sysctl -w vm.max_map_count=262144` (persist it in /etc/sysctl.d/), or "
            "lower max_connections; also check RLIMIT_AS (ulimit -v)",
            strerror(err), cur);
}

/* Make the lowest `guard` bytes of the mapping inaccessible; errno on failure. */
static int install_guard(cn__stack *s, size_t guard)
{
    if (atomic_load_explicit(&madvise_guard_state, memory_order_relaxed) >= 0) {
        if (madvise(s->map, guard, MADV_GUARD_INSTALL) == 0) {
            atomic_store_explicit(&madvise_guard_state, 1, memory_order_relaxed);
            s->guard = CN__GUARD_MADVISE;
            return 0;
        }
        /* EINVAL: a kernel before 6.13. Anything else: try mprotect this time. */
        if (errno == EINVAL)
            atomic_store_explicit(&madvise_guard_state, -1, memory_order_relaxed);
    }
    if (mprotect(s->map, guard, PROT_NONE) != 0)
        return errno;
    s->guard = CN__GUARD_MPROTECT;
    return 0;
}

int cn__stack_map(cn__stack *s, size_t size)
{
    size_t guard = cn__stack_guard_size();
    memset(s, 0, sizeof *s);
    void *m = mmap(NULL, guard + size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (m == MAP_FAILED) {
        int e = errno;
        if (e == ENOMEM) {
            cn__stack_log_map_failure(e);
            return CN_EAGAIN;
        }
        return CN_ENOMEM;
    }
    s->map = m;
    s->map_size = guard + size;
    s->lo = s->map + guard;
    s->size = size;
    int e = install_guard(s, guard);
    if (e != 0) {
        munmap(s->map, s->map_size);
        s->map = NULL;
        if (e == ENOMEM) { /* splitting the VMA needs one more map count */
            cn__stack_log_map_failure(e);
            return CN_EAGAIN;
        }
        return CN_ENOMEM;
    }
#ifdef CN__STACK_VALGRIND
    s->vg_id = VALGRIND_STACK_REGISTER(s->lo, s->lo + s->size);
#endif
    return 0;
}

void cn__stack_unmap(cn__stack *s)
{
    if (!s->map)
        return;
#ifdef CN__STACK_VALGRIND
    VALGRIND_STACK_DEREGISTER(s->vg_id);
#endif
    cn__stack_unpoison(s);
    munmap(s->map, s->map_size);
    s->map = NULL;
    s->lo = NULL;
}

void cn__stack_unpoison(const cn__stack *s)
{
#ifdef CN__STACK_ASAN
    ASAN_UNPOISON_MEMORY_REGION(s->lo, s->size);
#else
    (void)s;
#endif
}
