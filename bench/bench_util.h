/*
 * bench_util.h -- what the micro-benchmarks share: a monotonic clock, and
 * the median and minimum of a set of runs.
 */
#ifndef CANTEEN_BENCH_UTIL_H
#define CANTEEN_BENCH_UTIL_H

#include <stddef.h>
#include <stdlib.h>
#include <time.h>

/* CLOCK_MONOTONIC in nanoseconds. */
static inline double bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct bench_result {
    double median, min;
} bench_result;

/* The median (the upper one of an even count) and the minimum of v[0..n-1]; sorts v. */
static inline bench_result bench_summarize(double *v, size_t n)
{
    qsort(v, n, sizeof *v, bench_cmp_double);
    return (bench_result){v[n / 2], v[0]};
}

#endif
