/*
 * bench_stack.c -- cost of getting a coroutine stack: create + free from a
 * warm pool against mapping a fresh stack (mmap + guard + munmap) each time.
 *
 * Each figure is the median of several runs (min in brackets).
 *
 *     bench_stack [iterations]
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

static void noop(void *arg)
{
    (void)arg;
}

/* cn__coro_new + cn__coro_free; with max_free 0 every stack is fresh. */
static double bench_coro(cn__stack_pool *p, long n, int run)
{
    cn__coro *c;
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        if (cn__coro_new(p, 0, noop, NULL, &c) != 0)
            exit(1);
        if (run)
            cn__coro_resume(c);
        cn__coro_free(c);
    }
    return (bench_now_ns() - t0) / (double)n;
}

/* A fresh 256 KiB stack each time: mmap, guard page, (touch), munmap. */
static double bench_map(long n, int touch)
{
    cn__stack s;
    size_t size;
    cn__stack_round(0, &size);
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        if (cn__stack_map(&s, size) != 0)
            exit(1);
        if (touch)
            ((volatile char *)s.lo)[s.size - 1] = 1; /* the first frame's page */
        cn__stack_unmap(&s);
    }
    return (bench_now_ns() - t0) / (double)n;
}

static void report(const char *what, double *v, double base)
{
    bench_result r = bench_summarize(v, RUNS);

    printf("  %-44s %9.1f ns  [%.1f]", what, r.median, r.min);
    if (base > 0)
        printf("  %6.1fx the pool", r.median / base);
    printf("\n");
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000;
    cn__stack_pool *warm = cn__stack_pool_new(16);
    cn__stack_pool *cold = cn__stack_pool_new(0);
    double pool[RUNS], pool_run[RUNS], fresh[RUNS], map[RUNS], map_touch[RUNS];
    bench_coro(warm, 100, 0); /* warm up: one stack in the pool */
    for (int r = 0; r < RUNS; r++) {
        pool[r] = bench_coro(warm, n, 0);
        pool_run[r] = bench_coro(warm, n, 1);
        fresh[r] = bench_coro(cold, n / 10, 1);
        map[r] = bench_map(n / 10, 0);
        map_touch[r] = bench_map(n / 10, 1);
    }
    printf("coroutine stack (256 KiB), ns per create+free, median of %d [min]\n", RUNS);
    double v[RUNS];
    for (int r = 0; r < RUNS; r++)
        v[r] = pool[r];
    double base = bench_summarize(v, RUNS).median;
    report("warm pool: cn__coro_new + cn__coro_free", pool, 0);
    report("warm pool: new + run to the end + free", pool_run, base);
    report("no pool: new + run to the end + free", fresh, base);
    report("mmap + guard + munmap (baseline)", map, base);
    report("mmap + guard + touch top page + munmap", map_touch, base);
    cn__stack_pool_free(warm);
    cn__stack_pool_free(cold);
    return 0;
}
