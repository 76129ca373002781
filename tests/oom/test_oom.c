/*
 * test_oom.c -- out of memory on a request's whole path, curl's torture
 * test way: for each request, fail the first allocation it makes, then
 * the second, and so on, until a run makes fewer allocations than the one
 * that was to fail (nothing was injected: that run must give the normal
 * answer). A run with a failure must not crash, hang or leak
 * (LeakSanitizer, in the ASan build), and must end in a 500 or 503, in the
 * normal answer (a failure that was recovered from), or in a close. Every
 * 503 must carry Canteen's Retry-After (the fuzz app's retry_after_s, not
 * the default).
 *
 * "Allocations" are malloc, calloc and realloc, and the calls that make a
 * coroutine stack (src/coro/stack.c): its mmap (MAP_STACK) and its guard
 * (madvise MADV_GUARD_INSTALL, or mprotect PROT_NONE where that is
 * refused). The scheduler keeps finished coroutines' stacks for reuse, so
 * before each run the test has the app unmap its idle ones
 * (cn_fuzz_drop_stacks): every run maps the stacks it needs afresh. All
 * the cases run twice: the second time madvise refuses guards (EINVAL, as
 * before Linux 6.13), so that the mprotect guard is failed too.
 *
 * The seam: this program defines malloc, calloc, realloc, mmap, madvise and
 * mprotect, which every library in the process calls (glibc supports
 * replacing malloc; under ASan ours sit in front of ASan's). They forward
 * to the next definition (dlsym RTLD_NEXT) and, while armed, fail the Nth
 * counted call made on any thread (ENOMEM): the loop's (parser, router,
 * handlers, response, coroutine stacks) and the pool's (sync routes,
 * to_thread). mmap, madvise and mprotect count only the stack calls above;
 * the rest pass untouched. Requests go through the fuzz targets' in-memory
 * connection (tests/fuzz/fuzz_app.h), no socket.
 *
 * CANTEEN_OOM_VERBOSE=1 prints each failing N, which call it was, and what
 * it led to.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fuzz_app.h"

/* Linux 6.13; older headers lack it (as in src/coro/stack.c). */
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

/* ---- the allocation hook ---- */

/* The hook runs before the sanitizers are set up (ASan's own start-up
 * calls dlsym, which allocates): it must not be instrumented. */
#define HOOK __attribute__((no_sanitize("address", "undefined")))

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static void *(*real_mmap)(void *, size_t, int, int, int, off_t);
static int (*real_madvise)(void *, size_t, int);
static int (*real_mprotect)(void *, size_t, int);

static atomic_bool armed;
static atomic_ulong calls;         /* allocations since armed */
static unsigned long fail_at;      /* which one fails (1-based) */
static atomic_ulong injected;      /* failures made since armed */
static const char *_Atomic failed; /* which call the failure was */
/* mmap, madvise and mprotect calls made before the real ones were known
 * (made by system call instead); printed in verbose mode */
static atomic_ulong early;
/* madvise(MADV_GUARD_INSTALL) answers EINVAL, as kernels before 6.13 do */
static atomic_bool refuse_madvise_guard;

/* dlsym may allocate (calloc) before the real functions are known: a few
 * small blocks from here, never freed (free ignores them). */
static _Alignas(16) char boot[4096];
static size_t boot_used;

HOOK static bool from_boot(const void *p)
{
    return (const char *)p >= boot && (const char *)p < boot + sizeof boot;
}

HOOK static void *boot_alloc(size_t n)
{
    void *p;

    n = (n + 15) & ~(size_t)15;
    if (boot_used + n > sizeof boot)
        return NULL;
    p = boot + boot_used;
    boot_used += n;
    return p;
}

HOOK static void resolve(void)
{
    static atomic_int resolving;

    if (real_malloc || atomic_exchange(&resolving, 1))
        return;
    real_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
    real_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
    real_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
    real_mmap = (void *(*)(void *, size_t, int, int, int, off_t))dlsym(RTLD_NEXT, "mmap");
    real_madvise = (int (*)(void *, size_t, int))dlsym(RTLD_NEXT, "madvise");
    real_mprotect = (int (*)(void *, size_t, int))dlsym(RTLD_NEXT, "mprotect");
    real_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc"); /* last: resolved */
}

HOOK static bool fail_now(const char *what)
{
    if (!atomic_load_explicit(&armed, memory_order_relaxed))
        return false;
    if (atomic_fetch_add(&calls, 1) + 1 != fail_at)
        return false;
    atomic_store(&failed, what);
    atomic_fetch_add(&injected, 1);
    return true;
}

HOOK void *malloc(size_t n)
{
    resolve();
    if (real_malloc == NULL)
        return boot_alloc(n);
    if (fail_now("malloc")) {
        errno = ENOMEM;
        return NULL;
    }
    return real_malloc(n);
}

HOOK void *calloc(size_t n, size_t size)
{
    resolve();
    if (real_calloc == NULL) {
        void *p = n && size > SIZE_MAX / n ? NULL : boot_alloc(n * size);
        if (p)
            memset(p, 0, n * size);
        return p;
    }
    if (fail_now("calloc")) {
        errno = ENOMEM;
        return NULL;
    }
    return real_calloc(n, size);
}

HOOK void *realloc(void *p, size_t n)
{
    resolve();
    if (from_boot(p) || real_realloc == NULL)
        return NULL;
    if (n > 0 && fail_now("realloc")) {
        errno = ENOMEM;
        return NULL;
    }
    return real_realloc(p, n);
}

HOOK void free(void *p)
{
    if (p == NULL || from_boot(p))
        return;
    resolve();
    if (real_free) /* else: freed while dlsym runs, in start-up; kept */
        real_free(p);
}

/* The stack calls. Before resolve() has found the real ones (a loader or
 * sanitizer start-up calling in; or dlsym itself), the system call is made
 * directly: a mapping must never fail for want of a pointer. */

HOOK void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    resolve();
    if (real_mmap == NULL) {
        atomic_fetch_add(&early, 1);
        return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
    }
    if ((flags & MAP_STACK) && fail_now("mmap(MAP_STACK)")) {
        errno = ENOMEM;
        return MAP_FAILED;
    }
    return real_mmap(addr, len, prot, flags, fd, off);
}

HOOK int madvise(void *addr, size_t len, int advice)
{
    resolve();
    if (real_madvise == NULL) {
        atomic_fetch_add(&early, 1);
        return (int)syscall(SYS_madvise, addr, len, advice);
    }
    if (advice == MADV_GUARD_INSTALL && atomic_load(&refuse_madvise_guard)) {
        errno = EINVAL; /* not counted: a kernel without guards */
        return -1;
    }
    if (advice == MADV_GUARD_INSTALL && fail_now("madvise(MADV_GUARD_INSTALL)")) {
        errno = ENOMEM;
        return -1;
    }
    return real_madvise(addr, len, advice);
}

HOOK int mprotect(void *addr, size_t len, int prot)
{
    resolve();
    if (real_mprotect == NULL) {
        atomic_fetch_add(&early, 1);
        return (int)syscall(SYS_mprotect, addr, len, prot);
    }
    if (prot == PROT_NONE && fail_now("mprotect(PROT_NONE)")) {
        errno = ENOMEM;
        return -1;
    }
    return real_mprotect(addr, len, prot);
}

/* ---- the requests ---- */

#define H "Host: x\r\n"

static const struct {
    const char *name;
    const char *bytes;
    unsigned status; /* the normal answer (of the first request) */
} cases[] = {
    {"text", "GET / HTTP/1.1\r\n" H "\r\n", 200},
    {"path and query", "GET /items/42?q=a%20b HTTP/1.1\r\n" H "User-Agent: t\r\n\r\n", 200},
    {"path convertor", "GET /files/a/b%2Fc HTTP/1.1\r\n" H "\r\n", 200},
    {"query and cookie",
     "GET /query?a=%3Cb%3E&n=-7 HTTP/1.1\r\n" H "Cookie: session=abc; o=1\r\nX-A: 1\r\n\r\n", 200},
    {"declared params",
     "GET /search?q=hi&limit=5&ratio=0.3&flag=yes&color=blue&code=ABC HTTP/1.1\r\n" H
     "x-token: t\r\nCookie: visits=3\r\n\r\n",
     200},
    {"declared params 422", "GET /search?limit=0&ratio=2&color=pink HTTP/1.1\r\n" H "\r\n", 422},
    {"declared body",
     "POST /items HTTP/1.1\r\n" H "Content-Type: application/json\r\nContent-Length: 56\r\n\r\n"
     "{\"name\":\"a\",\"price\":1.5,\"tags\":[\"x\"],\"at\":{\"x\":1,\"y\":2}}",
     201},
    {"declared body 422",
     "POST /items HTTP/1.1\r\n" H "Content-Type: application/json\r\nContent-Length: 21\r\n\r\n"
     "{\"name\":\"\",\"price\":0}",
     422},
    {"json echo, chunked",
     "POST /echo HTTP/1.1\r\n" H "Content-Type: application/json\r\n"
     "Transfer-Encoding: chunked\r\n\r\n5\r\n[1,2,\r\n7\r\n{\"a\":3}\r\n1\r\n]\r\n0\r\n\r\n",
     200},
    {"async", "GET /async HTTP/1.1\r\n" H "\r\n", 200},
    {"sync route", "GET /sync?a=xyz HTTP/1.1\r\n" H "\r\n", 200},
    {"sync json",
     "POST /sync HTTP/1.1\r\n" H "Content-Type: application/json\r\nContent-Length: 9\r\n\r\n"
     "{\"a\":[1]}",
     200},
    {"to_thread", "GET /thread?a=q HTTP/1.1\r\n" H "\r\n", 200},
    {"stream", "GET /stream?n=4 HTTP/1.1\r\n" H "\r\n", 200},
    {"gzip", "GET /big HTTP/1.1\r\n" H "Accept-Encoding: gzip\r\n\r\n", 200},
    {"cors preflight",
     "OPTIONS /items HTTP/1.1\r\n" H "Origin: https://a.example\r\n"
     "Access-Control-Request-Method: POST\r\n\r\n",
     200},
    {"slash redirect", "GET /query/ HTTP/1.1\r\n" H "X-Request-ID: abc-123\r\n\r\n", 307},
    {"metrics", "GET /metrics HTTP/1.1\r\n" H "\r\n", 200},
    {"405", "PATCH /items/1 HTTP/1.1\r\n" H "Content-Length: 0\r\n\r\n", 405},
    {"404", "GET /nowhere HTTP/1.1\r\n" H "\r\n", 404},
    {"raise", "GET /raise HTTP/1.0\r\n\r\n", 418},
    {"bad request", "GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400},
    {"pipelined",
     "GET /async HTTP/1.1\r\n" H "\r\nGET /sync HTTP/1.1\r\n" H "\r\nGET / HTTP/1.1\r\n" H "\r\n",
     200},
};

#define MAX_N 100000

/* How many requests (request lines) the bytes hold: each gets a response. */
static unsigned requests(const char *b)
{
    unsigned n = 0;

    for (; (b = strstr(b, " HTTP/1.")) != NULL; b++)
        n++;
    return n;
}

/* One request with allocation n failing (0: none); returns how many
 * allocations it made and whether one failed. Its coroutines map fresh
 * stacks. */
static unsigned long run(size_t i, unsigned long n, cn_fuzz_result *r, bool *hit)
{
    const char *b = cases[i].bytes;
    unsigned long made;

    cn_fuzz_drop_stacks();
    fail_at = n;
    atomic_store(&calls, 0);
    atomic_store(&injected, 0);
    atomic_store(&failed, NULL);
    atomic_store(&armed, true);
    cn_fuzz_run((const uint8_t *)b, strlen(b), 0, SIZE_MAX, r);
    atomic_store(&armed, false);
    made = atomic_load(&calls);
    *hit = atomic_load(&injected) > 0;
    return made;
}

/* The stack calls, as fail_now names them. */
static const char *const stack_calls[] = {"mmap(MAP_STACK)", "madvise(MADV_GUARD_INSTALL)",
                                          "mprotect(PROT_NONE)"};
#define N_STACK_CALLS 3

/* Case i, each of its allocations failing in turn; adds the failures made
 * to *total and those of stack calls to failed_stack (by stack_calls'
 * order). Returns the number of checks that failed. */
static int one_case(size_t i, bool verbose, unsigned long *total,
                    unsigned long failed_stack[N_STACK_CALLS])
{
    cn_fuzz_result r;
    bool hit;
    unsigned long n, made, closes = 0, errors = 0, normal = 0, stacks = 0;
    int failures = 0;

    /* a first run without failures: the lazily made state (arenas kept
     * for reuse, a thread's signal stack) is made, and the answer
     * checked */
    made = run(i, 0, &r, &hit);
    if (r.status != cases[i].status || r.n503_retry != r.n503 ||
        r.responses != requests(cases[i].bytes)) {
        fprintf(stderr, "test_oom: %s: status %u and %u responses without a failure, wanted %u\n",
                cases[i].name, r.status, r.responses, cases[i].status);
        return 1;
    }
    for (n = 1; n < MAX_N; n++) {
        const char *what;

        made = run(i, n, &r, &hit);
        if (!hit)
            break;
        what = atomic_load(&failed);
        for (int k = 0; k < N_STACK_CALLS; k++)
            if (strcmp(what, stack_calls[k]) == 0) {
                stacks++;
                failed_stack[k]++;
            }
        if (verbose)
            fprintf(stderr,
                    "  %s: allocation %lu of %lu (%s) fails: status %u, %zu bytes, %u 503s "
                    "(%u with Retry-After)%s\n",
                    cases[i].name, n, made, what, r.status, r.out_len, r.n503, r.n503_retry,
                    r.closed ? ", closed" : "");
        if ((r.status == 503 && r.retry_after != CN_FUZZ_RETRY_AFTER_S) || r.n503_retry != r.n503) {
            fprintf(stderr,
                    "test_oom: %s: allocation %lu (%s) failing gave %u 503s, %u with "
                    "Retry-After: %d (the first response: %u, Retry-After %d, -1: none)\n",
                    cases[i].name, n, what, r.n503, r.n503_retry, CN_FUZZ_RETRY_AFTER_S, r.status,
                    r.retry_after);
            failures++;
        }
        if (r.out_len == 0)
            closes++;
        else if (r.status == 500 || r.status == 503)
            errors++;
        else if (r.status == cases[i].status)
            normal++;
        else {
            fprintf(stderr,
                    "test_oom: %s: allocation %lu failing gave status %u (wanted %u, "
                    "500, 503 or a close)\n",
                    cases[i].name, n, r.status, cases[i].status);
            failures++;
        }
    }
    /* the run that made fewer allocations than the one to fail: normal */
    if (n == MAX_N || r.status != cases[i].status) {
        fprintf(stderr, "test_oom: %s: no clean run after %lu failures (status %u)\n",
                cases[i].name, n - 1, r.status);
        failures++;
    }
    *total += n - 1;
    printf("%-22s %4lu allocations (%lu for stacks): %4lu closed, %4lu 500/503, %4lu "
           "recovered\n",
           cases[i].name, made, stacks, closes, errors, normal);
    return failures;
}

int main(void)
{
    bool verbose = getenv("CANTEEN_OOM_VERBOSE") != NULL;
    int failures = 0;

    if (cn_fuzz_app() == NULL) {
        fprintf(stderr, "test_oom: the app did not start\n");
        return 1;
    }
    for (int pass = 0; pass < 2; pass++) {
        unsigned long total = 0, failed_stack[N_STACK_CALLS] = {0};

        /* the second pass as on a kernel before 6.13, whose madvise refuses
         * guards (EINVAL): stack.c then guards with mprotect */
        atomic_store(&refuse_madvise_guard, pass == 1);
        if (pass == 1)
            printf("madvise guards refused, as before Linux 6.13:\n");
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            failures += one_case(i, verbose, &total, failed_stack);
        printf("%lu failed allocations injected; for stacks: %lu mmap, %lu madvise, %lu "
               "mprotect\n",
               total, failed_stack[0], failed_stack[1], failed_stack[2]);
        if (failed_stack[0] == 0 || failed_stack[1] + failed_stack[2] == 0 ||
            (pass == 1 && failed_stack[2] == 0)) {
            fprintf(stderr, "test_oom: a coroutine stack's mapping or guard was never failed\n");
            failures++;
        }
    }
    if (verbose)
        fprintf(stderr, "  %lu mmap/madvise/mprotect calls before dlsym had found them\n",
                atomic_load(&early));
    if (cn_fuzz_app_free() != 0) {
        fprintf(stderr, "test_oom: the loop did not close clean (a handle leaked)\n");
        failures++;
    }
    return failures ? 1 : 0;
}
