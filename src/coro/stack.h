/*
 * stack.h -- coroutine stacks: one anonymous mapping each, a guard zone below.
 *
 * A stack is mmap'ed with MAP_NORESERVE | MAP_STACK, so only the pages a
 * coroutine touches cost memory. The lowest 64 KiB are a guard: touching them
 * faults (SIGSEGV) instead of silently running into the mapping below. One
 * page would do for small frames, but a function with a large local array
 * (char buf[16384]) moves the stack pointer past a single page in one step
 * and writes wherever it lands; 64 KiB catches frames up to that size at the
 * cost of address space only (no memory, no extra mapping). Code built with
 * -fstack-clash-protection probes every page and cannot jump any guard. The
 * guard is installed with madvise(MADV_GUARD_INSTALL) where the kernel has it
 * (Linux 6.13+: page-table markers, the mapping stays one VMA) and with
 * mprotect(PROT_NONE) elsewhere (the mapping is split in two VMAs).
 *
 *     map                 lo                                   lo + size
 *     | guard (PROT_NONE) | usable stack  <- grows down from the top |
 *
 * This file knows nothing of coroutines: coro.c pairs a stack with a context
 * and keeps stacks for reuse in a cn__stack_pool.
 */
#ifndef CANTEEN_CORO_STACK_H
#define CANTEEN_CORO_STACK_H

#include <stddef.h>

#define CN__STACK_DEFAULT_SIZE ((size_t)256 * 1024) /* stack_size 0 */
#define CN__STACK_MIN_SIZE ((size_t)16 * 1024)      /* smaller requests are raised */
#define CN__STACK_MAX_SIZE ((size_t)1 << 30)        /* larger requests: CN_EINVAL */
#define CN__STACK_GUARD_SIZE ((size_t)64 * 1024)    /* rounded up to whole pages */

/* How the guard of a stack was made. */
enum { CN__GUARD_MADVISE = 1, CN__GUARD_MPROTECT = 2 };

typedef struct cn__stack {
    char *map;           /* start of the mapping: the guard */
    size_t map_size;     /* guard + usable bytes */
    char *lo;            /* lowest usable byte, just above the guard */
    size_t size;         /* usable bytes: the stack grows down from lo + size */
    unsigned vg_id;      /* Valgrind's id for the registered stack (0 without) */
    unsigned char guard; /* CN__GUARD_MADVISE or CN__GUARD_MPROTECT */
} cn__stack;

/* The system page size (cached). */
size_t cn__stack_page_size(void);

/* The guard below every stack: CN__STACK_GUARD_SIZE rounded up to pages. */
size_t cn__stack_guard_size(void);

/*
 * The usable size a request of `req` bytes gets: 0 means the 256 KiB default,
 * anything below CN__STACK_MIN_SIZE is raised to it, and the result is rounded
 * up to whole pages. CN_EINVAL above CN__STACK_MAX_SIZE.
 */
int cn__stack_round(size_t req, size_t *out);

/*
 * Map a stack of `size` usable bytes (already rounded by cn__stack_round) plus
 * its guard, and register it with Valgrind. Returns 0; CN_EAGAIN when the
 * kernel refuses the mapping (mmap or mprotect fail with ENOMEM: usually
 * vm.max_map_count, possibly RLIMIT_AS), after printing the one-time line of
 * cn__stack_log_map_failure(); CN_ENOMEM on any other failure.
 */
int cn__stack_map(cn__stack *s, size_t size);

/* Deregister and unmap a stack from cn__stack_map. */
void cn__stack_unmap(cn__stack *s);

/*
 * Under AddressSanitizer, clear the shadow of the usable range: the frames of
 * a coroutine that was abandoned mid-way leave poisoned redzones behind, which
 * would be reported as errors when the stack is reused. No-op otherwise.
 */
void cn__stack_unpoison(const cn__stack *s);

/*
 * Print, once per process, one line on stderr saying that the kernel refused a
 * stack mapping, naming the sysctl vm.max_map_count (with its current value)
 * and how to raise it. `err` is the errno of the failed call. Thread-safe.
 */
void cn__stack_log_map_failure(int err);

#endif /* CANTEEN_CORO_STACK_H */
