/*
 * coro.h -- stackful coroutines: a context switch and a pool of stacks.
 *
 * A coroutine runs fn(arg) on its own mmap'ed stack (see stack.h). The loop
 * thread resumes it; it runs until it yields or fn returns, and control comes
 * back to the resume call:
 *
 *     cn__coro *c;
 *     if (cn__coro_new(pool, 0, handler_main, req, &c) == 0) {
 *         while (cn__coro_resume(c) == 0)
 *             ;                     // c yielded: wait for its event, then resume
 *         cn__coro_free(c);         // stack back to the pool
 *     }
 *
 * Rules, written once:
 * - Coroutines are resumed only from the thread's main context (the loop's
 *   own stack), never from inside another coroutine, and always on the thread
 *   that created them. "Current" and the main context are thread-local, so
 *   several threads may each run their own loop and coroutines.
 * - A stack pool belongs to one thread (no locking).
 * - A coroutine starts with the floating-point control state (rounding mode,
 *   exception masks, FTZ/DAZ: MXCSR and the x87 control word on x86-64, FPCR
 *   on AArch64) the creating thread had in cn__coro_new; after that each
 *   context keeps its own across switches.
 * - Stack overflow hits the guard (stack.h). Outside AddressSanitizer builds a SIGSEGV
 *   handler then prints "canteen: stack overflow in coroutine of route <label>
 *   ..." and aborts; faults elsewhere go to the previous handler (or the
 *   default action). Under ASan, ASan's own handler reports the overflow,
 *   and a line naming the route of the coroutine follows any ASan report
 *   made while one runs (ASan's death callback, set once per process: an
 *   application's own death callback would be replaced).
 *
 * The switch is hand-written assembly (switch_x86_64.S, switch_aarch64.S)
 * when CANTEEN_CORO_ASM is 1 and ucontext (switch_ucontext.c) otherwise; the
 * low-level primitives of both are declared at the end of this file.
 */
#ifndef CANTEEN_CORO_CORO_H
#define CANTEEN_CORO_CORO_H

#include <stddef.h>
#include <ucontext.h>

/*
 * The build passes CANTEEN_CORO_ASM (1: asm switch, 0: ucontext). Code built
 * without it (a bench or test outside the library target) assumes asm on the
 * architectures that have it.
 */
#ifndef CANTEEN_CORO_ASM
#if defined(__x86_64__) || defined(__aarch64__)
#define CANTEEN_CORO_ASM 1
#else
#define CANTEEN_CORO_ASM 0
#endif
#endif

typedef struct cn__coro cn__coro;
typedef struct cn__stack_pool cn__stack_pool;
typedef void (*cn__coro_fn)(void *arg);

/*
 * A pool of stacks for one thread. Freed coroutines keep their stack (and
 * their descriptor) on a free list of at most `max_free` entries for reuse by
 * cn__coro_new; beyond that they are unmapped. Up to 8 distinct stack sizes
 * are pooled. NULL when out of memory.
 */
cn__stack_pool *cn__stack_pool_new(size_t max_free);

/* Unmap every pooled stack and free the pool. All its coroutines must have
 * been freed (cn__stack_pool_live(p) == 0). NULL is allowed. */
void cn__stack_pool_free(cn__stack_pool *p);

/* Coroutines created from `p` and not yet freed. */
size_t cn__stack_pool_live(const cn__stack_pool *p);

/* Addition: stacks waiting on the free list (at most max_free). */
size_t cn__stack_pool_idle(const cn__stack_pool *p);

/* Unmap every stack on the free list (and free its descriptor), so that the
 * next cn__coro_new maps a fresh one; live coroutines keep theirs. For the
 * out-of-memory test, which must reach the mapping. The pool's thread only;
 * NULL is allowed. */
void cn__stack_pool_drop_idle(cn__stack_pool *p);

/*
 * Create a suspended coroutine that will run fn(arg) on a stack of at least
 * `stack_size` usable bytes (0: 256 KiB; raised to 16 KiB at least; rounded up
 * to pages), from the pool when one of that size is free. The first
 * cn__coro_resume starts fn. Returns 0 and sets *out; CN_EINVAL (NULL
 * argument, stack_size above 1 GiB); CN_ENOMEM; CN_EAGAIN when the kernel
 * refuses more mappings (vm.max_map_count): one line naming the sysctl and how
 * to raise it is then printed on stderr, once per process.
 * The first call on a thread also installs the overflow handler (once per
 * process) and the thread's alternate signal stack.
 */
int cn__coro_new(cn__stack_pool *p, size_t stack_size, cn__coro_fn fn, void *arg, cn__coro **out);

/* Name the coroutine for the overflow message, e.g. "GET /users/{id}". Not
 * copied: the string must outlive c. NULL clears it. */
void cn__coro_set_label(cn__coro *c, const char *label);

/* Addition: the label set by cn__coro_set_label, or NULL. */
const char *cn__coro_label(const cn__coro *c);

/*
 * From the thread's main context (not from inside a coroutine), switch into
 * c. Returns 0 when c yields, 1 when fn has returned (c is then finished).
 * Addition: returns CN_ESTATE, without switching, when called from inside a
 * coroutine, or when c is finished or running.
 */
int cn__coro_resume(cn__coro *c);

/* From inside the running coroutine, switch back to the context that resumed
 * it; returns when the coroutine is resumed again. No-op on the main stack. */
void cn__coro_yield(void);

/* The coroutine running on this thread, NULL on the main stack. */
cn__coro *cn__coro_current(void);

/* The arg given to cn__coro_new. */
void *cn__coro_arg(const cn__coro *c);

/* 1 once fn has returned, else 0. */
int cn__coro_finished(const cn__coro *c);

/* Addition: the usable stack of c: its lowest byte and its size in bytes
 * (the guard lies just below *lo). Either pointer may be NULL. */
void cn__coro_stack(const cn__coro *c, void **lo, size_t *size);

/*
 * Return c's stack to its pool (unmap it if the free list is full) and free
 * c. c is finished, not yet started, or suspended and never to be resumed
 * again (abandoned mid-way: its frames are simply dropped, no cleanup runs on
 * them; under ASan its fake stack is released and the stack unpoisoned before
 * reuse). Must not be called on the running coroutine (aborts). NULL is
 * allowed.
 */
void cn__coro_free(cn__coro *c);

/*
 * Addition: put the overflow SIGSEGV handler back in place if it is not the
 * current one, chaining to whatever handler is there now. cn__coro_new does
 * this once per process; call it again after code that replaced the SIGSEGV
 * handler without chaining (a test framework, a crash reporter). Under ASan it
 * does nothing.
 */
void cn__coro_overflow_handler_install(void);

/* Addition: "asm" or "ucontext", the switch this build uses. */
const char *cn__coro_backend(void);

/* ------------------------------------------------------------------------ */
/* Low-level contexts, for coro.c and the switch benchmark.                  */
/* These know nothing of ASan, Valgrind, pools or "current".                */
/* ------------------------------------------------------------------------ */

/*
 * An entry function of a new context. It must never return: its last act is
 * a switch away for good (the asm trampoline traps, ucontext aborts).
 */
typedef void (*cn__ctx_entry)(void *arg);

#if CANTEEN_CORO_ASM
/*
 * Assembly switch (switch_x86_64.S / switch_aarch64.S). A suspended context
 * is its saved stack pointer: the callee-saved registers and the FP control
 * state sit on its own stack.
 *
 * cn__ctx_make writes the first frame of a context at the top of the stack
 * [lo, lo + size) so that the first switch to it calls entry(arg) with the
 * FP control state of the calling thread; returns the context's stack
 * pointer.
 */
void *cn__ctx_make(void *lo, size_t size, cn__ctx_entry entry, void *arg);

/* Save the current context, storing its stack pointer in *save_sp, and
 * continue the context whose stack pointer is to_sp. */
void cn__ctx_switch(void **save_sp, void *to_sp);
#endif

/* ucontext switch (switch_ucontext.c), always built. */
typedef struct cn__uctx {
    ucontext_t uc;
    cn__ctx_entry entry;
    void *arg;
} cn__uctx;

/* Prepare *u to call entry(arg) on the stack [lo, lo + size) when first
 * switched to (getcontext + makecontext). 0, or CN_EINVAL if getcontext
 * fails. */
int cn__uctx_make(cn__uctx *u, void *lo, size_t size, cn__ctx_entry entry, void *arg);

/* Save the current context in *from and continue *to (swapcontext). */
void cn__uctx_switch(cn__uctx *from, const cn__uctx *to);

#endif /* CANTEEN_CORO_CORO_H */
