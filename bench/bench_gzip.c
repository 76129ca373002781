/*
 * bench_gzip.c -- what the gzip middleware costs: 1 MiB compressed with the
 * settings it uses (gzip wrapper, windowBits 15, memLevel 8), at levels 1,
 * 6 (its default) and 9, for three kinds of body: a JSON array of records,
 * repetitive log-like text, and bytes that do not compress. Each figure is
 * the median of several runs, in ms per MiB, with the ratio it reached;
 * and a stream of 4 KiB writes each flushed (Z_SYNC_FLUSH), as a streamed
 * response is compressed, against one deflate of the same bytes.
 *
 *     bench_gzip [runs]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* clock_gettime under -std=c11 */
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zlib.h>

#include "bench_util.h"

#define MIB (1024 * 1024)

static void make_json(unsigned char *p, size_t n)
{
    size_t o = 0;
    for (unsigned i = 0; o < n; i++) {
        char rec[160];
        int k =
            snprintf(rec, sizeof rec,
                     "{\"id\":%u,\"name\":\"user%u\",\"email\":\"user%u@example.org\","
                     "\"score\":%u,\"active\":%s},",
                     i, i * 7919 % 100000, i, (i * 2654435761u) % 1000, i % 3 ? "true" : "false");
        size_t take = (size_t)k < n - o ? (size_t)k : n - o;
        memcpy(p + o, rec, take);
        o += take;
    }
}

static void make_text(unsigned char *p, size_t n)
{
    size_t o = 0;
    for (unsigned i = 0; o < n; i++) {
        char line[96];
        int k = snprintf(line, sizeof line, "2026-12-02T14:%02u:%02u GET /items/%u 200 %u us\n",
                         i / 60 % 60, i % 60, i % 977, 100 + i * 37 % 900);
        size_t take = (size_t)k < n - o ? (size_t)k : n - o;
        memcpy(p + o, line, take);
        o += take;
    }
}

static void make_random(unsigned char *p, size_t n)
{
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (unsigned char)x;
    }
}

/* One deflate of in[0..n), or n/piece flushed pieces; returns the output size. */
static size_t compress_once(const unsigned char *in, size_t n, int level, size_t piece,
                            unsigned char *out, size_t cap)
{
    z_stream z;
    size_t o = 0;

    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        abort();
    for (size_t off = 0; off < n || piece == 0; off += piece ? piece : n) {
        size_t k = piece ? (n - off < piece ? n - off : piece) : n;
        int flush = off + k >= n ? Z_FINISH : Z_SYNC_FLUSH;
        z.next_in = (Bytef *)(uintptr_t)(in + off);
        z.avail_in = (uInt)k;
        do {
            z.next_out = out + o;
            z.avail_out = (uInt)(cap - o);
            deflate(&z, flush);
            o = cap - z.avail_out;
        } while (z.avail_in > 0);
        if (piece == 0)
            break;
    }
    deflateEnd(&z);
    return o;
}

static double median_ms(const unsigned char *in, size_t n, int level, size_t piece, int runs,
                        size_t *out_len)
{
    size_t cap = compressBound(n) + 64 + (piece ? n / piece * 8 : 0);
    unsigned char *out = malloc(cap);
    double *t = malloc(sizeof(double) * (size_t)runs), m;

    for (int r = 0; r < runs; r++) {
        double t0 = bench_now_ns();
        *out_len = compress_once(in, n, level, piece, out, cap);
        t[r] = (bench_now_ns() - t0) / 1e6;
    }
    m = bench_summarize(t, (size_t)runs).median;
    free(t);
    free(out);
    return m;
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 9;
    unsigned char *buf = malloc(MIB);
    static const struct {
        const char *name;
        void (*make)(unsigned char *, size_t);
    } kinds[] = {{"json", make_json}, {"text", make_text}, {"random", make_random}};
    static const int levels[] = {1, 6, 9};

    if (runs < 1)
        runs = 1;
    printf("zlib %s, 1 MiB, median of %d runs (ms per MiB, compressed/original)\n", zlibVersion(),
           runs);
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        kinds[k].make(buf, MIB);
        printf("  %-7s", kinds[k].name);
        for (size_t l = 0; l < sizeof levels / sizeof levels[0]; l++) {
            size_t out;
            double ms = median_ms(buf, MIB, levels[l], 0, runs, &out);
            printf("  level %d: %6.2f ms %5.1f%%", levels[l], ms, 100.0 * (double)out / MIB);
        }
        printf("\n");
    }
    make_json(buf, MIB);
    {
        size_t whole, flushed;
        double a = median_ms(buf, MIB, 6, 0, runs, &whole);
        double b = median_ms(buf, MIB, 6, 4096, runs, &flushed);
        printf("  json as a stream of 4 KiB writes, each flushed (level 6): %.2f ms %5.1f%% "
               "(one deflate: %.2f ms %5.1f%%)\n",
               b, 100.0 * (double)flushed / MIB, a, 100.0 * (double)whole / MIB);
    }
    free(buf);
    return 0;
}
