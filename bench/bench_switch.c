/*
 * bench_switch.c -- cost of a context switch: the assembly switch against
 * ucontext (swapcontext) in the same run, and the full cn__coro_resume +
 * cn__coro_yield round trip of the selected backend.
 *
 * A round trip (main -> coroutine -> main) is 2 switches; figures are ns per
 * switch. Each figure is the median of several runs (min in brackets).
 *
 * On x86-64 it also times the one instruction every switch must run to save
 * the MXCSR (stmxcsr): on some cores (AMD Zen 4) it is serialising and costs
 * more than the rest of the switch, which sets the floor of the figure.
 *
 *     bench_switch [round_trips]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* clock_gettime under -std=c11 */
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bench_util.h"
#include "coro/coro.h"
#include "coro/stack.h"

#define RUNS 7

/* ---- baseline: an indirect call that does nothing ---------------------- */

static void empty(void *arg)
{
    (void)arg;
}
static void (*volatile empty_fn)(void *) = empty;

static double bench_call(long n)
{
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++)
        empty_fn(NULL);
    return (bench_now_ns() - t0) / (double)n;
}

/* ---- the MXCSR read alone (x86-64) -------------------------------------- */

#if defined(__x86_64__)
static double bench_stmxcsr(long n)
{
    unsigned m;
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++)
        __asm__ volatile("stmxcsr %0" : "=m"(m));
    (void)m;
    return (bench_now_ns() - t0) / (double)n;
}
#endif

/* ---- assembly switch ---------------------------------------------------- */

#if CANTEEN_CORO_ASM
static void *asm_main_sp, *asm_co_sp;

static void asm_entry(void *arg)
{
    (void)arg;
    for (;;)
        cn__ctx_switch(&asm_co_sp, asm_main_sp);
}

static double bench_asm(const cn__stack *s, long n)
{
    asm_co_sp = cn__ctx_make(s->lo, s->size, asm_entry, NULL);
    cn__ctx_switch(&asm_main_sp, asm_co_sp); /* start it */
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++)
        cn__ctx_switch(&asm_main_sp, asm_co_sp);
    return (bench_now_ns() - t0) / (2.0 * (double)n);
}
#endif

/* ---- ucontext ------------------------------------------------------------ */

static cn__uctx u_main, u_co;

static void u_entry(void *arg)
{
    (void)arg;
    for (;;)
        cn__uctx_switch(&u_co, &u_main);
}

static double bench_uctx(const cn__stack *s, long n)
{
    if (cn__uctx_make(&u_co, s->lo, s->size, u_entry, NULL) != 0)
        return -1;
    cn__uctx_switch(&u_main, &u_co);
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++)
        cn__uctx_switch(&u_main, &u_co);
    return (bench_now_ns() - t0) / (2.0 * (double)n);
}

/* ---- the coroutine API (selected backend) ------------------------------- */

static void coro_loop(void *arg)
{
    (void)arg;
    for (;;)
        cn__coro_yield();
}

static double bench_coro(cn__stack_pool *p, long n)
{
    cn__coro *c;
    if (cn__coro_new(p, 0, coro_loop, NULL, &c) != 0)
        return -1;
    cn__coro_resume(c);
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++)
        cn__coro_resume(c);
    double r = (bench_now_ns() - t0) / (2.0 * (double)n);
    cn__coro_free(c); /* suspended: abandoned */
    return r;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 10000000;
    long nu = n / 20 > 0 ? n / 20 : 1; /* ucontext is much slower */
    cn__stack s;
    if (cn__stack_map(&s, 64 * 1024) != 0)
        return 1;
    cn__stack_pool *p = cn__stack_pool_new(4);
    double call[RUNS], uc[RUNS], co[RUNS];
#if defined(__x86_64__)
    double st[RUNS];
#endif
#if CANTEEN_CORO_ASM
    double as[RUNS];
#endif
    for (int r = 0; r < RUNS; r++) {
        call[r] = bench_call(n);
#if defined(__x86_64__)
        st[r] = bench_stmxcsr(n);
#endif
#if CANTEEN_CORO_ASM
        as[r] = bench_asm(&s, n);
#endif
        uc[r] = bench_uctx(&s, nu);
        co[r] = bench_coro(p, n);
    }
    bench_result rc = bench_summarize(call, RUNS), ru = bench_summarize(uc, RUNS),
                 ro = bench_summarize(co, RUNS);
#if CANTEEN_CORO_ASM
    bench_result ra = bench_summarize(as, RUNS);
#endif
    printf("context switch, ns per switch (a resume+yield round trip is 2), median of %d "
           "[min]\n",
           RUNS);
    printf("  baseline: indirect call         %6.2f ns  [%.2f]\n", rc.median, rc.min);
#if defined(__x86_64__)
    bench_result rs = bench_summarize(st, RUNS);
    printf("  floor: one stmxcsr (MXCSR save) %6.2f ns  [%.2f]   serialising on some cores\n",
           rs.median, rs.min);
#endif
#if CANTEEN_CORO_ASM
    printf("  asm switch (cn__ctx_switch)     %6.2f ns  [%.2f]   %ld round trips\n", ra.median,
           ra.min, n);
#endif
    printf("  ucontext (swapcontext)          %6.2f ns  [%.2f]   %ld round trips\n", ru.median,
           ru.min, nu);
#if CANTEEN_CORO_ASM
    printf("  ucontext / asm                  %6.1fx\n", ru.median / ra.median);
#endif
    printf("  cn__coro_resume+yield (%s)  %6.2f ns  [%.2f]   per switch, with bookkeeping\n",
           cn__coro_backend(), ro.median, ro.min);
    cn__stack_pool_free(p);
    cn__stack_unmap(&s);
    return 0;
}
