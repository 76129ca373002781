/*
 * switch_ucontext.c -- the portable context switch: getcontext, makecontext,
 * swapcontext. Always compiled, so the switch benchmark can compare it with
 * the assembly switch in the same run; coro.c uses it when CANTEEN_CORO_ASM
 * is 0.
 *
 * It is slow because swapcontext saves and restores the signal mask with a
 * rt_sigprocmask system call on every switch (see docs/coro-notes.md for the
 * figures). glibc's swapcontext also restores the x87 environment and MXCSR,
 * so the floating-point control state stays per context here too.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <ucontext.h>

#include "canteen.h"
#include "coro/coro.h"

/*
 * makecontext passes int arguments only: the cn__uctx pointer travels as two
 * 32-bit halves.
 */
static void uctx_trampoline(unsigned lo, unsigned hi)
{
    uintptr_t p = ((uintptr_t)hi << 16 << 16) | (uintptr_t)lo;
    cn__uctx *u = (cn__uctx *)p;
    u->entry(u->arg);
    /* An entry must switch away for good, never return (uc_link is NULL:
     * returning would end the thread). */
    fputs("canteen: coroutine entry returned\n", stderr);
    abort();
}

int cn__uctx_make(cn__uctx *u, void *lo, size_t size, cn__ctx_entry entry, void *arg)
{
    if (getcontext(&u->uc) != 0)
        return CN_EINVAL;
    u->uc.uc_stack.ss_sp = lo;
    u->uc.uc_stack.ss_size = size;
    u->uc.uc_stack.ss_flags = 0;
    u->uc.uc_link = NULL;
    u->entry = entry;
    u->arg = arg;
    uintptr_t p = (uintptr_t)u;
    makecontext(&u->uc, (void (*)(void))uctx_trampoline, 2, (unsigned)(p & 0xffffffffu),
                (unsigned)(p >> 16 >> 16));
    return 0;
}

void cn__uctx_switch(cn__uctx *from, const cn__uctx *to)
{
    swapcontext(&from->uc, &to->uc);
}
