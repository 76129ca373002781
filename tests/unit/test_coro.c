/*
 * test_coro.c -- coroutines: switching, pool, FP state, overflow report,
 * mapping failures. Tests that crash on purpose run in a fork()ed child.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fenv.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "canteen.h"
#include "coro/coro.h"
#include "coro/stack.h"

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define TEST_VALGRIND 1
#endif
#endif

#ifdef TEST_ASAN
static const int have_asan = 1;
#else
static const int have_asan = 0;
#endif

/* ThreadSanitizer owns SIGSEGV too, and its own allocator runs out first
 * when the address space or the mapping count is used up. */
#if defined(__SANITIZE_THREAD__)
static const int have_tsan = 1;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
static const int have_tsan = 1;
#else
static const int have_tsan = 0;
#endif
#else
static const int have_tsan = 0;
#endif

static int under_valgrind(void)
{
#ifdef TEST_VALGRIND
    return RUNNING_ON_VALGRIND != 0;
#else
    return 0;
#endif
}

/* Opaque to the optimizer: keeps values in registers and frames real. */
static uint64_t (*volatile opaque_fn)(uint64_t);
static uint64_t identity(uint64_t v)
{
    return v;
}
static uint64_t opaque(uint64_t v)
{
    return opaque_fn(v);
}

static void *(*volatile memset_fn)(void *, int, size_t) = memset;

/* ------------------------------------------------------------------------ */

struct pingpong {
    int in;
    int out;
    cn__coro *self;
    int current_ok;
};

static void pingpong_fn(void *arg)
{
    struct pingpong *s = arg;
    for (int i = 0; i < 5; i++) {
        s->out = s->in * 2 + 1;
        if (cn__coro_current() != s->self || cn__coro_arg(s->self) != s)
            s->current_ok = 0;
        cn__coro_yield();
    }
    s->out = -1;
}

static void test_ping_pong(void **state)
{
    (void)state;
    cn__stack_pool *p = cn__stack_pool_new(4);
    assert_non_null(p);
    struct pingpong s = {.current_ok = 1};
    cn__coro *c = NULL;
    assert_int_equal(cn__coro_new(p, 0, pingpong_fn, &s, &c), 0);
    s.self = c;
    assert_null(cn__coro_current());
    assert_ptr_equal(cn__coro_arg(c), &s);
    for (int i = 0; i < 5; i++) {
        s.in = i * 10;
        assert_int_equal(cn__coro_resume(c), 0);
        assert_int_equal(s.out, i * 20 + 1);
        assert_false(cn__coro_finished(c));
        assert_null(cn__coro_current());
    }
    assert_int_equal(cn__coro_resume(c), 1);
    assert_int_equal(s.out, -1);
    assert_true(cn__coro_finished(c));
    assert_true(s.current_ok);
    /* A finished coroutine cannot be resumed. */
    assert_int_equal(cn__coro_resume(c), CN_ESTATE);
    cn__coro_yield(); /* no-op on the main stack */
    cn__coro_free(c);
    assert_int_equal(cn__stack_pool_live(p), 0);
    cn__stack_pool_free(p);
}

/* ------------------------------------------------------------------------ */

struct nested {
    cn__coro *other;
    int rc;
};

static void nested_fn(void *arg)
{
    struct nested *n = arg;
    n->rc = cn__coro_resume(n->other); /* not allowed from a coroutine */
}

static void noop_fn(void *arg)
{
    (void)arg;
}

static void test_resume_inside_coroutine_refused(void **state)
{
    (void)state;
    cn__stack_pool *p = cn__stack_pool_new(4);
    cn__coro *a, *b;
    struct nested n = {0};
    assert_int_equal(cn__coro_new(p, 0, noop_fn, NULL, &b), 0);
    assert_int_equal(cn__coro_new(p, 0, nested_fn, &n, &a), 0);
    n.other = b;
    assert_int_equal(cn__coro_resume(a), 1);
    assert_int_equal(n.rc, CN_ESTATE);
    assert_false(cn__coro_finished(b));
    assert_int_equal(cn__coro_resume(b), 1);
    cn__coro_free(a);
    cn__coro_free(b);
    /* Argument checks. */
    cn__coro *c = (cn__coro *)&n;
    assert_int_equal(cn__coro_new(NULL, 0, noop_fn, NULL, &c), CN_EINVAL);
    assert_null(c);
    assert_int_equal(cn__coro_new(p, 0, NULL, NULL, &c), CN_EINVAL);
    assert_int_equal(cn__coro_new(p, (size_t)2 << 30, noop_fn, NULL, &c), CN_EINVAL);
    assert_int_equal(cn__stack_pool_live(p), 0);
    cn__stack_pool_free(p);
}

/* ------------------------------------------------------------------------ */

#define MANY 200

static int order[MANY * 8];
static int norder;

struct many {
    int id;
    int steps;
    uint64_t sum;
};

static void many_fn(void *arg)
{
    struct many *m = arg;
    uint64_t local = opaque((uint64_t)m->id * 1000003u);
    for (int i = 0; i < m->steps; i++) {
        order[norder++] = m->id;
        local = local * 31 + (uint64_t)i;
        cn__coro_yield();
    }
    m->sum = local;
}

static void test_many_interleaved(void **state)
{
    (void)state;
    cn__stack_pool *p = cn__stack_pool_new(MANY);
    static struct many m[MANY];
    static cn__coro *c[MANY];
    norder = 0;
    for (int i = 0; i < MANY; i++) {
        m[i] = (struct many){.id = i, .steps = i % 7 + 1};
        assert_int_equal(cn__coro_new(p, 32 * 1024, many_fn, &m[i], &c[i]), 0);
    }
    assert_int_equal(cn__stack_pool_live(p), MANY);
    int live = MANY, round = 0;
    while (live > 0) {
        int before = norder;
        for (int i = 0; i < MANY; i++) {
            if (!c[i] || cn__coro_finished(c[i]))
                continue;
            int r = cn__coro_resume(c[i]);
            assert_true(r == 0 || r == 1);
            if (r == 1) {
                live--;
                assert_int_equal(round, m[i].steps);
            }
        }
        /* This round ran, in id order, exactly the coroutines with steps left. */
        int prev = -1;
        for (int k = before; k < norder; k++) {
            assert_true(order[k] > prev);
            assert_true(m[order[k]].steps > round);
            prev = order[k];
        }
        round++;
        assert_true(round <= 8);
    }
    for (int i = 0; i < MANY; i++) {
        uint64_t want = (uint64_t)i * 1000003u;
        for (int s = 0; s < m[i].steps; s++)
            want = want * 31 + (uint64_t)s;
        assert_true(m[i].sum == want);
        cn__coro_free(c[i]);
    }
    assert_int_equal(cn__stack_pool_live(p), 0);
    assert_int_equal(cn__stack_pool_idle(p), MANY);
    cn__stack_pool_free(p);
}

/* ------------------------------------------------------------------------ */

static void yield_once_fn(void *arg)
{
    (void)arg;
    cn__coro_yield();
}

static void test_pool_reuse(void **state)
{
    (void)state;
    cn__stack_pool *p = cn__stack_pool_new(4);
    cn__coro *c;
    void *lo1, *lo2;
    size_t sz;

    assert_int_equal(cn__coro_new(p, 0, noop_fn, NULL, &c), 0);
    cn__coro_stack(c, &lo1, &sz);
    assert_int_equal(sz, 256 * 1024);
    assert_int_equal(cn__stack_pool_live(p), 1);
    assert_int_equal(cn__coro_resume(c), 1);
    cn__coro_free(c);
    assert_int_equal(cn__stack_pool_live(p), 0);
    assert_int_equal(cn__stack_pool_idle(p), 1);

    /* The same stack comes back. */
    assert_int_equal(cn__coro_new(p, 256 * 1024, noop_fn, NULL, &c), 0);
    cn__coro_stack(c, &lo2, NULL);
    assert_ptr_equal(lo1, lo2);
    assert_int_equal(cn__stack_pool_idle(p), 0);
    /* Another size gets its own stack. */
    cn__coro *d;
    assert_int_equal(cn__coro_new(p, 100 * 1000, noop_fn, NULL, &d), 0);
    cn__coro_stack(d, &lo2, &sz);
    assert_ptr_not_equal(lo1, lo2);
    assert_int_equal(sz % cn__stack_page_size(), 0);
    assert_true(sz >= 100 * 1000 && sz < 100 * 1000 + cn__stack_page_size());
    cn__coro_free(c); /* never started */
    cn__coro_free(d);
    assert_int_equal(cn__stack_pool_idle(p), 2);

    /* The free list is bounded. */
    cn__coro *many[10];
    for (int i = 0; i < 10; i++) {
        assert_int_equal(cn__coro_new(p, 0, yield_once_fn, NULL, &many[i]), 0);
        assert_int_equal(cn__coro_resume(many[i]), 0);
    }
    assert_int_equal(cn__stack_pool_live(p), 10);
    for (int i = 0; i < 10; i++)
        cn__coro_free(many[i]); /* suspended: abandoned */
    assert_int_equal(cn__stack_pool_live(p), 0);
    assert_int_equal(cn__stack_pool_idle(p), 4);

    /* Dropping the idle stacks unmaps them; a live coroutine keeps its own,
     * and the pool maps fresh ones afterwards. */
    assert_int_equal(cn__coro_new(p, 0, yield_once_fn, NULL, &c), 0);
    cn__coro_stack(c, &lo1, NULL);
    assert_int_equal(cn__coro_resume(c), 0);
    assert_int_equal(cn__stack_pool_idle(p), 3);
    cn__stack_pool_drop_idle(p);
    assert_int_equal(cn__stack_pool_idle(p), 0);
    assert_int_equal(cn__stack_pool_live(p), 1);
    assert_int_equal(cn__coro_resume(c), 1);
    cn__coro_free(c);
    assert_int_equal(cn__stack_pool_idle(p), 1);
    assert_int_equal(cn__coro_new(p, 0, noop_fn, NULL, &c), 0);
    cn__coro_stack(c, &lo2, NULL);
    assert_ptr_equal(lo1, lo2); /* the one it kept */
    cn__coro_free(c);
    cn__stack_pool_drop_idle(NULL);

    /* Small requests are raised to the minimum. */
    assert_int_equal(cn__coro_new(p, 1, noop_fn, NULL, &c), 0);
    cn__coro_stack(c, NULL, &sz);
    assert_int_equal(sz, CN__STACK_MIN_SIZE);
    cn__coro_free(c);
    cn__stack_pool_free(p);

    /* max_free 0: nothing is kept. */
    p = cn__stack_pool_new(0);
    assert_int_equal(cn__coro_new(p, 0, noop_fn, NULL, &c), 0);
    cn__coro_free(c);
    assert_int_equal(cn__stack_pool_idle(p), 0);
    cn__stack_pool_free(p);
}

/* ------------------------------------------------------------------------ */

/* Frames with arrays (ASan redzones) left suspended on the stack. */
static void deep_yield(int depth)
{
    char buf[1024];
    memset_fn(buf, depth, sizeof buf);
    if (depth > 0)
        deep_yield(depth - 1);
    else
        cn__coro_yield(); /* never resumed: abandoned here */
    buf[0] = (char)opaque(buf[1]);
}

static void abandon_fn(void *arg)
{
    (void)arg;
    deep_yield(20);
}

/* Uses the whole top of the stack, where the abandoned frames were. */
static void scribble_fn(void *arg)
{
    int *done = arg;
    char big[48 * 1024];
    memset_fn(big, 0x5a, sizeof big);
    cn__coro_yield();
    for (size_t i = 0; i < sizeof big; i += 4096)
        assert_true(big[i] == 0x5a);
    *done = 1;
}

struct reap_inside {
    cn__coro *victim;
};

static void free_other_fn(void *arg)
{
    struct reap_inside *r = arg;
    cn__coro_free(r->victim); /* freeing an abandoned coroutine from a coroutine */
}

static void test_abandon_then_reuse(void **state)
{
    (void)state;
    cn__stack_pool *p = cn__stack_pool_new(4);
    cn__coro *c;
    void *lo1, *lo2;
    for (int round = 0; round < 3; round++) {
        assert_int_equal(cn__coro_new(p, 0, abandon_fn, NULL, &c), 0);
        cn__coro_stack(c, &lo1, NULL);
        assert_int_equal(cn__coro_resume(c), 0);
        cn__coro_free(c);

        int done = 0;
        assert_int_equal(cn__coro_new(p, 0, scribble_fn, &done, &c), 0);
        cn__coro_stack(c, &lo2, NULL);
        assert_ptr_equal(lo1, lo2);
        assert_int_equal(cn__coro_resume(c), 0);
        assert_int_equal(cn__coro_resume(c), 1);
        assert_int_equal(done, 1);
        cn__coro_free(c);
    }
    /* The same, with the abandoned coroutine freed from inside another. */
    struct reap_inside r;
    cn__coro *killer;
    assert_int_equal(cn__coro_new(p, 0, abandon_fn, NULL, &r.victim), 0);
    assert_int_equal(cn__coro_resume(r.victim), 0);
    assert_int_equal(cn__coro_new(p, 0, free_other_fn, &r, &killer), 0);
    assert_int_equal(cn__coro_resume(killer), 1);
    cn__coro_free(killer);
    int done = 0;
    assert_int_equal(cn__coro_new(p, 0, scribble_fn, &done, &c), 0);
    assert_int_equal(cn__coro_resume(c), 0);
    cn__coro_free(c); /* abandoned again, with its 48 KiB frame */
    assert_int_equal(cn__stack_pool_live(p), 0);
    cn__stack_pool_free(p);
}

static size_t vm_size(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%lu", &pages), 1);
    fclose(f);
    return pages * cn__stack_page_size();
}

static void finish_with_arrays_fn(void *arg)
{
    char buf[2048];
    memset_fn(buf, 1, sizeof buf);
    cn__coro_yield();
    *(int *)arg += buf[100];
}

/*
 * Coroutines that finish or are abandoned give back everything: under ASan
 * (detect_stack_use_after_return) each one that ran owns a fake stack of a
 * few MiB that only the right final switch (or the reaper) releases.
 */
static void test_coroutines_release_memory(void **state)
{
    (void)state;
    cn__stack_pool *p = cn__stack_pool_new(4);
    cn__coro *c;
    int sum = 0;
    /* Warm up the pool and ASan's own allocations. */
    for (int i = 0; i < 8; i++) {
        assert_int_equal(cn__coro_new(p, 0, finish_with_arrays_fn, &sum, &c), 0);
        assert_int_equal(cn__coro_resume(c), 0);
        assert_int_equal(cn__coro_resume(c), 1);
        cn__coro_free(c);
    }
    size_t before = vm_size();
    for (int i = 0; i < 200; i++) {
        assert_int_equal(cn__coro_new(p, 0, finish_with_arrays_fn, &sum, &c), 0);
        assert_int_equal(cn__coro_resume(c), 0);
        assert_int_equal(cn__coro_resume(c), 1);
        cn__coro_free(c);
        assert_int_equal(cn__coro_new(p, 0, abandon_fn, NULL, &c), 0);
        assert_int_equal(cn__coro_resume(c), 0);
        cn__coro_free(c);
    }
    size_t after = vm_size();
    assert_int_equal(sum, 208);
    assert_true(after < before + 32 * 1024 * 1024);
    assert_int_equal(cn__stack_pool_live(p), 0);
    cn__stack_pool_free(p);
}

/* ------------------------------------------------------------------------ */
/* Floating-point control state                                              */
/* ------------------------------------------------------------------------ */

#if defined(__x86_64__)
#define FLUSH_BIT 0x8000u /* MXCSR.FTZ */
static uint64_t fpctl_get(void)
{
    uint16_t cw;
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    return (uint64_t)__builtin_ia32_stmxcsr() | (uint64_t)cw << 32;
}
static void flush_set(int on)
{
    unsigned m = __builtin_ia32_stmxcsr();
    __builtin_ia32_ldmxcsr(on ? (m | FLUSH_BIT) : (m & ~FLUSH_BIT));
}
static int flush_get(void)
{
    return (__builtin_ia32_stmxcsr() & FLUSH_BIT) != 0;
}
#elif defined(__aarch64__)
#define FLUSH_BIT ((uint64_t)1 << 24) /* FPCR.FZ */
static uint64_t fpctl_get(void)
{
    uint64_t v;
    __asm__ volatile("mrs %0, fpcr" : "=r"(v));
    return v;
}
static void flush_set(int on)
{
    uint64_t v = fpctl_get();
    v = on ? (v | FLUSH_BIT) : (v & ~FLUSH_BIT);
    __asm__ volatile("msr fpcr, %0" : : "r"(v));
}
static int flush_get(void)
{
    return (fpctl_get() & FLUSH_BIT) != 0;
}
#else
static uint64_t fpctl_get(void)
{
    return 0;
}
static void flush_set(int on)
{
    (void)on;
}
static int flush_get(void)
{
    return 0;
}
#endif

struct fp {
    int check_flush;
    int start_round;  /* what the coroutine saw when it started */
    int after_resume; /* its mode after main changed main's */
    int flush_after;
    double third_up;
    uint64_t ctl_mine;
    uint64_t ctl_after;
};

static volatile double one = 1.0, three = 3.0;

static void fp_fn(void *arg)
{
    struct fp *f = arg;
    f->start_round = fegetround();
    fesetround(FE_UPWARD);
    if (f->check_flush)
        flush_set(1);
    f->ctl_mine = fpctl_get();
    cn__coro_yield();
    f->after_resume = fegetround();
    f->flush_after = flush_get();
    f->ctl_after = fpctl_get();
    f->third_up = one / three;
}

static void test_fp_control_isolated(void **state)
{
    (void)state;
    /* Valgrind does not emulate FTZ (it warns and ignores it). */
    int check_flush = !under_valgrind();
    cn__stack_pool *p = cn__stack_pool_new(4);
    assert_int_equal(fegetround(), FE_TONEAREST);
    uint64_t ctl_main = fpctl_get();

    /* A coroutine starts with the creator's mode at creation time. */
    assert_int_equal(fesetround(FE_TOWARDZERO), 0);
    struct fp f = {.check_flush = check_flush};
    cn__coro *c;
    assert_int_equal(cn__coro_new(p, 0, fp_fn, &f, &c), 0);
    assert_int_equal(fesetround(FE_TONEAREST), 0);

    /* Its change stays inside it. */
    assert_int_equal(cn__coro_resume(c), 0);
    assert_int_equal(f.start_round, FE_TOWARDZERO);
    assert_int_equal(fegetround(), FE_TONEAREST);
    assert_false(flush_get());
    assert_true(fpctl_get() == ctl_main);
    assert_true(f.ctl_mine != ctl_main);

    /* And main's change stays in main. */
    assert_int_equal(fesetround(FE_DOWNWARD), 0);
    volatile double third_down = one / three;
    assert_int_equal(cn__coro_resume(c), 1);
    assert_int_equal(f.after_resume, FE_UPWARD);
    assert_int_equal(f.flush_after, check_flush);
    assert_true(f.ctl_after == f.ctl_mine);
    assert_int_equal(fegetround(), FE_DOWNWARD);
    /* The modes really differed (Valgrind computes SSE arithmetic in
     * round-to-nearest whatever MXCSR says, so it cannot show this). */
    if (!under_valgrind())
        assert_true(f.third_up > third_down);
    assert_int_equal(fesetround(FE_TONEAREST), 0);
    assert_true(fpctl_get() == ctl_main);
    cn__coro_free(c);
    cn__stack_pool_free(p);
}

/* ------------------------------------------------------------------------ */
/* Callee-saved registers: many values live across switches on both sides   */
/* ------------------------------------------------------------------------ */

struct regs {
    uint64_t seed;
    uint64_t result;
    double dresult;
};

static uint64_t mix(uint64_t a, uint64_t b)
{
    return (a ^ (b >> 7)) * 0x9e3779b97f4a7c15u + b;
}

/* The same arithmetic with or without yields between the steps. */
static void regs_work(struct regs *r, int yield)
{
    uint64_t a = opaque(r->seed), b = opaque(a + 1), c = opaque(a + 2), d = opaque(a + 3);
    uint64_t e = opaque(a + 4), f = opaque(a + 5), g = opaque(a + 6), h = opaque(a + 7);
    double x = (double)opaque(3) * 0.5, y = (double)opaque(5) * 0.25;
    double z = (double)opaque(7) * 0.125, w = (double)opaque(11) * 0.0625;
    for (int i = 0; i < 16; i++) {
        if (yield)
            cn__coro_yield();
        a = mix(a, h);
        b = mix(b, a);
        c = mix(c, b);
        d = mix(d, c);
        e = mix(e, d);
        f = mix(f, e);
        g = mix(g, f);
        h = mix(h, g);
        x = x * 1.5 + y;
        y = y * 0.5 + z;
        z = z * 1.25 + w;
        w = w * 0.75 + x;
    }
    r->result = a ^ b ^ c ^ d ^ e ^ f ^ g ^ h;
    r->dresult = x + y + z + w;
}

static void regs_fn(void *arg)
{
    regs_work(arg, 1);
}

static void test_callee_saved_preserved(void **state)
{
    (void)state;
    cn__stack_pool *p = cn__stack_pool_new(4);
    struct regs want = {.seed = 12345},
                got[3] = {{.seed = 12345}, {.seed = 12345}, {.seed = 12345}};
    regs_work(&want, 0);
    cn__coro *c[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(cn__coro_new(p, 0, regs_fn, &got[i], &c[i]), 0);
    /* Main keeps its own values in registers across the resumes. */
    uint64_t m1 = opaque(1), m2 = opaque(2), m3 = opaque(3), m4 = opaque(4), m5 = opaque(5);
    double d1 = (double)opaque(6), d2 = (double)opaque(7);
    int running = 3;
    while (running > 0) {
        for (int i = 0; i < 3; i++) {
            if (cn__coro_finished(c[i]))
                continue;
            if (cn__coro_resume(c[i]) == 1)
                running--;
            m1 = mix(m1, m5);
            m2 = mix(m2, m1);
            m3 = mix(m3, m2);
            m4 = mix(m4, m3);
            m5 = mix(m5, m4);
            d1 = d1 * 1.5 + d2;
            d2 = d2 * 0.5 + d1;
        }
    }
    for (int i = 0; i < 3; i++) {
        assert_true(got[i].result == want.result);
        assert_true(got[i].dresult == want.dresult);
        cn__coro_free(c[i]);
    }
    /* The same mixing without coroutines. */
    uint64_t n1 = 1, n2 = 2, n3 = 3, n4 = 4, n5 = 5;
    double e1 = 6, e2 = 7;
    for (int k = 0; k < 3 * 17; k++) {
        n1 = mix(n1, n5);
        n2 = mix(n2, n1);
        n3 = mix(n3, n2);
        n4 = mix(n4, n3);
        n5 = mix(n5, n4);
        e1 = e1 * 1.5 + e2;
        e2 = e2 * 0.5 + e1;
    }
    assert_true(m1 == n1 && m2 == n2 && m3 == n3 && m4 == n4 && m5 == n5);
    assert_true(d1 == e1 && d2 == e2);
    cn__stack_pool_free(p);
}

/* ------------------------------------------------------------------------ */
/* Deep recursion: ~200 KiB of a 256 KiB stack                               */
/* ------------------------------------------------------------------------ */

struct deep {
    uintptr_t top;
    size_t want;
    size_t used;
    int depth;
};

static uint64_t recurse_to(struct deep *d, int depth)
{
    char buf[512];
    memset_fn(buf, depth & 0xff, sizeof buf);
    uintptr_t here = (uintptr_t)__builtin_frame_address(0);
    uint64_t r;
    if (d->top - here < d->want && depth < 100000) {
        r = recurse_to(d, depth + 1);
    } else {
        d->used = d->top - here;
        d->depth = depth;
        cn__coro_yield(); /* switch out and back in at the deepest point */
        r = 0;
    }
    return r + (uint64_t)buf[depth % 512] + opaque(1);
}

static void deep_fn(void *arg)
{
    struct deep *d = arg;
    recurse_to(d, 0);
}

static void test_deep_recursion(void **state)
{
    (void)state;
    cn__stack_pool *p = cn__stack_pool_new(4);
    cn__coro *c;
    struct deep d = {.want = 200 * 1024};
    assert_int_equal(cn__coro_new(p, 256 * 1024, deep_fn, &d, &c), 0);
    void *lo;
    size_t size;
    cn__coro_stack(c, &lo, &size);
    d.top = (uintptr_t)lo + size;
    assert_int_equal(cn__coro_resume(c), 0);
    assert_true(d.used >= 200 * 1024);
    assert_true(d.used < 256 * 1024);
    assert_int_equal(cn__coro_resume(c), 1);
    cn__coro_free(c);
    cn__stack_pool_free(p);
}

/* ------------------------------------------------------------------------ */
/* Stacks: guard page, one VMA with MADV_GUARD_INSTALL, lazy commit          */
/* ------------------------------------------------------------------------ */

/* How many lines of /proc/self/maps overlap [lo, hi); perms of the one at lo. */
static int count_vmas(uintptr_t lo, uintptr_t hi, char perms_at_lo[5])
{
    FILE *f = fopen("/proc/self/maps", "r");
    assert_non_null(f);
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long a, b;
        char perms[5];
        if (sscanf(line, "%lx-%lx %4s", &a, &b, perms) != 3)
            continue;
        if (a < hi && b > lo) {
            n++;
            if (a <= lo && lo < b)
                memcpy(perms_at_lo, perms, 5);
        }
    }
    fclose(f);
    return n;
}

static int kernel_at_least(int major, int minor)
{
    struct utsname u;
    int ma = 0, mi = 0;
    if (uname(&u) != 0 || sscanf(u.release, "%d.%d", &ma, &mi) != 2)
        return 0;
    return ma > major || (ma == major && mi >= minor);
}

static void test_stack_guard_and_lazy_commit(void **state)
{
    (void)state;
    size_t pg = cn__stack_page_size();
    cn__stack s;
    size_t guard = cn__stack_guard_size();
    assert_true(guard >= 64 * 1024 && guard % pg == 0);
    assert_int_equal(cn__stack_map(&s, 256 * 1024), 0);
    assert_ptr_equal(s.lo, s.map + guard);
    assert_int_equal(s.map_size, 256 * 1024 + guard);
    char perms[5] = "";
    int n = count_vmas((uintptr_t)s.map, (uintptr_t)s.map + s.map_size, perms);
    if (s.guard == CN__GUARD_MADVISE) {
        assert_int_equal(n, 1); /* the guard does not split the mapping */
    } else {
        assert_int_equal(s.guard, CN__GUARD_MPROTECT);
        assert_int_equal(n, 2);
        assert_string_equal(perms, "---p");
    }
    if (kernel_at_least(6, 13) && !under_valgrind())
        assert_int_equal(s.guard, CN__GUARD_MADVISE);

    /* Nothing is resident until touched. */
    size_t npages = s.map_size / pg;
    unsigned char vec[1024];
    assert_true(npages <= sizeof vec);
    assert_int_equal(mincore(s.map, s.map_size, vec), 0);
    size_t resident = 0;
    for (size_t i = 0; i < npages; i++)
        resident += vec[i] & 1;
    assert_int_equal(resident, 0);
    s.lo[s.size - 1] = 1;
    assert_int_equal(mincore(s.map, s.map_size, vec), 0);
    resident = 0;
    for (size_t i = 0; i < npages; i++)
        resident += vec[i] & 1;
    assert_int_equal(resident, 1);
    cn__stack_unmap(&s);

    /* A new coroutine touches only the top of its stack. */
    cn__stack_pool *p = cn__stack_pool_new(1);
    cn__coro *c;
    assert_int_equal(cn__coro_new(p, 0, noop_fn, NULL, &c), 0);
    void *lo;
    size_t size;
    cn__coro_stack(c, &lo, &size);
    assert_int_equal(mincore(lo, size, vec), 0);
    resident = 0;
    for (size_t i = 0; i < size / pg; i++)
        resident += vec[i] & 1;
    assert_true(resident <= 1);
    cn__coro_free(c);
    cn__stack_pool_free(p);
}

/* ------------------------------------------------------------------------ */
/* Children: overflow report, fault chaining, mapping refused                */
/* ------------------------------------------------------------------------ */

/* SIGSEGV disposition before cmocka's per-test handler: the default, or
 * ASan's handler under ASan. */
static struct sigaction initial_segv;

struct child {
    int status;
    char out[65536]; /* an ASan report with a deep stack runs past 8 KiB */
};

/* Run fn in a child whose stderr goes to a pipe; collect status and output. */
static void run_child(void (*fn)(void), struct child *ch)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], STDERR_FILENO);
        close(fds[1]);
        alarm(under_valgrind() ? 120 : 20);
        /* cmocka catches SIGSEGV around each test: give the child the
         * disposition the process had before (the default, or ASan's), then
         * our handler on top, as in a server. */
        sigaction(SIGSEGV, &initial_segv, NULL);
        cn__coro_overflow_handler_install();
        fn();
        _exit(0);
    }
    close(fds[1]);
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fds[0], ch->out + n, sizeof ch->out - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n == sizeof ch->out - 1)
            break;
    }
    ch->out[n] = '\0';
    close(fds[0]);
    while (waitpid(pid, &ch->status, 0) < 0 && errno == EINTR)
        ;
}

static uint64_t recurse_forever(uint64_t n)
{
    char buf[256];
    memset_fn(buf, (int)n, sizeof buf);
    if (n == opaque(UINT64_MAX)) /* never: keeps the compiler from objecting */
        return 0;
    return recurse_forever(n + 1) + (uint64_t)opaque((uint64_t)buf[n % 256]);
}

static void overflow_fn(void *arg)
{
    (void)arg;
    recurse_forever(0);
}

static void overflow_child(void)
{
    cn__stack_pool *p = cn__stack_pool_new(1);
    cn__coro *c;
    if (cn__coro_new(p, 64 * 1024, overflow_fn, NULL, &c) != 0)
        _exit(3);
    cn__coro_set_label(c, "GET /deep");
    cn__coro_resume(c);
    _exit(4); /* not reached */
}

static void test_overflow_message(void **state)
{
    (void)state;
    struct child ch;
    run_child(overflow_child, &ch);
    if (have_asan) {
        /* We install no handler under ASan: its own report must still come
         * (our fiber annotations tell it the coroutine stack's bounds). */
        assert_non_null(strstr(ch.out, "AddressSanitizer: stack-overflow"));
        assert_non_null(strstr(ch.out, "canteen: the report above comes from the coroutine of "
                                       "route GET /deep (stack 65536 bytes)"));
        assert_false(WIFEXITED(ch.status) && WEXITSTATUS(ch.status) == 0);
        return;
    }
    assert_true(WIFSIGNALED(ch.status));
    assert_int_equal(WTERMSIG(ch.status), SIGABRT);
    assert_non_null(strstr(ch.out, "canteen: stack overflow in coroutine of route GET /deep "
                                   "(stack 65536 bytes)"));
    assert_non_null(strstr(ch.out, "stack_size"));
}

/*
 * A frame far larger than a page (a 24 KiB local array) moves the stack
 * pointer past a one-page guard in one step. With the mapping right below the
 * stack writable, such an overflow would scribble on it silently; the 64 KiB
 * guard must catch it instead. The "mapping below" is a shared file mapping
 * placed just under the guard, so that the parent can check it afterwards.
 */
static int below_fd = -1;

static uint64_t big_frames(uint64_t n)
{
    char buf[24 * 1024]; /* on a 64 KiB stack, frame 3 starts 8 KiB below it */
    memset_fn(buf, (int)(n | 1), sizeof buf);
    if (n == opaque(UINT64_MAX))
        return 0;
    return big_frames(n + 1) + (uint64_t)opaque((uint64_t)buf[n % sizeof buf]);
}

static void big_frames_fn(void *arg)
{
    (void)arg;
    big_frames(0);
}

static void big_frame_child(void)
{
    cn__stack_pool *p = cn__stack_pool_new(0);
    size_t below = 64 * 1024;
    /* Rarely the address under a new stack is taken: try a few stacks. */
    for (int i = 0; i < 16; i++) {
        cn__coro *c;
        if (cn__coro_new(p, 64 * 1024, big_frames_fn, NULL, &c) != 0)
            _exit(3);
        void *lo;
        cn__coro_stack(c, &lo, NULL);
        char *map = (char *)lo - cn__stack_guard_size();
        void *m = mmap(map - below, below, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED_NOREPLACE,
                       below_fd, 0);
        if (m == map - below) {
            cn__coro_set_label(c, "GET /big");
            cn__coro_resume(c);
            _exit(4); /* not reached */
        }
        if (m != MAP_FAILED)
            munmap(m, below); /* an old kernel ignored the hint */
    }
    _exit(5);
}

static void test_overflow_big_frame(void **state)
{
    (void)state;
    /* Under ASan the arrays live on its fake stack, not on ours; Valgrind
     * follows its own rules for stack jumps; under TSan the runtime's own
     * mappings may take the address under every new stack, so the witness
     * mapping below the guard cannot be placed (seen 1 run in 40: the child
     * exits 5). The normal build runs it. */
    if (have_asan || have_tsan || under_valgrind())
        skip();
    char path[] = "/tmp/canteen-test-below-XXXXXX";
    below_fd = mkstemp(path);
    assert_true(below_fd >= 0);
    unlink(path);
    assert_int_equal(ftruncate(below_fd, 64 * 1024), 0);
    struct child ch;
    run_child(big_frame_child, &ch);
    assert_true(WIFSIGNALED(ch.status));
    assert_int_equal(WTERMSIG(ch.status), SIGABRT);
    assert_non_null(strstr(ch.out, "canteen: stack overflow in coroutine of route GET /big"));
    /* Not one byte of the mapping below was written. */
    static char below[64 * 1024];
    assert_int_equal(pread(below_fd, below, sizeof below, 0), (ssize_t)sizeof below);
    for (size_t i = 0; i < sizeof below; i++)
        if (below[i] != 0)
            fail_msg("byte %zu below the guard was written", i);
    close(below_fd);
    below_fd = -1;
}

static void null_fn(void *arg)
{
    (void)arg;
    *(volatile int *)opaque(0) = 1;
}

static void null_child(void)
{
    cn__stack_pool *p = cn__stack_pool_new(1);
    cn__coro *c;
    if (cn__coro_new(p, 0, null_fn, NULL, &c) != 0)
        _exit(3);
    cn__coro_set_label(c, "GET /null");
    cn__coro_resume(c);
    _exit(4);
}

static void prev_handler(int sig)
{
    static const char msg[] = "previous handler ran\n";
    (void)sig;
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
    _exit(42);
}

static void chained_child(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = prev_handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    cn__coro_overflow_handler_install(); /* ours on top, chaining to it */
    null_child();
}

static void chained_overflow_child(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = prev_handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    cn__coro_overflow_handler_install();
    overflow_child();
}

static void test_other_faults_not_ours(void **state)
{
    (void)state;
    if (have_asan || have_tsan)
        skip(); /* ASan (TSan) owns SIGSEGV there */
    struct child ch;
    /* The null dereferences below are (rightly) Valgrind errors. */
    if (under_valgrind())
        goto overflow;
    /* A fault that is not an overflow keeps its default action. */
    run_child(null_child, &ch);
    assert_true(WIFSIGNALED(ch.status));
    assert_int_equal(WTERMSIG(ch.status), SIGSEGV);
    assert_null(strstr(ch.out, "stack overflow"));
    /* A handler installed before ours gets it. */
    run_child(chained_child, &ch);
    assert_true(WIFEXITED(ch.status));
    assert_int_equal(WEXITSTATUS(ch.status), 42);
    assert_non_null(strstr(ch.out, "previous handler ran"));
    assert_null(strstr(ch.out, "stack overflow"));
overflow:
    /* ... but an overflow is still reported by us. */
    run_child(chained_overflow_child, &ch);
    assert_true(WIFSIGNALED(ch.status));
    assert_int_equal(WTERMSIG(ch.status), SIGABRT);
    assert_non_null(strstr(ch.out, "GET /deep"));
}

static int count_substr(const char *s, const char *needle)
{
    int n = 0;
    for (const char *q = strstr(s, needle); q; q = strstr(q + 1, needle))
        n++;
    return n;
}

/* Fill the process's map count with 1-page mappings that cannot merge. */
static void exhaust_map_count(void)
{
    for (int i = 0; i < 1 << 20; i++) {
        void *m = mmap(NULL, 4096, (i & 1) ? PROT_READ : PROT_NONE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) {
            if (errno != ENOMEM)
                _exit(5);
            return;
        }
    }
    _exit(6);
}

/* Exit codes: 0 ok; 10+ what went wrong. */
static void eagain_child_common(void (*exhaust)(void))
{
    cn__stack_pool *p = cn__stack_pool_new(4);
    cn__coro *c;
    /* Warm up: handler, alternate stack, one pooled stack. */
    if (cn__coro_new(p, 0, noop_fn, NULL, &c) != 0)
        _exit(10);
    if (cn__coro_resume(c) != 1)
        _exit(11);
    cn__coro_free(c);
    exhaust();
    /* The pooled stack still works. */
    if (cn__coro_new(p, 0, noop_fn, NULL, &c) != 0)
        _exit(12);
    /* A new one is refused, twice, without crashing. */
    cn__coro *d = (cn__coro *)p;
    if (cn__coro_new(p, 0, noop_fn, NULL, &d) != CN_EAGAIN || d != NULL)
        _exit(13);
    if (cn__coro_new(p, 128 * 1024, noop_fn, NULL, &d) != CN_EAGAIN)
        _exit(14);
    if (cn__coro_resume(c) != 1)
        _exit(15);
    cn__coro_free(c);
    if (cn__stack_pool_live(p) != 0)
        _exit(16);
    _exit(0);
}

static void eagain_map_count_child(void)
{
    eagain_child_common(exhaust_map_count);
}

static void lower_rlimit_as(void)
{
    /* Address space in use now, plus a little: the next stack won't fit. */
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (!f || fscanf(f, "%lu", &pages) != 1)
        _exit(7);
    fclose(f);
    struct rlimit rl;
    rl.rlim_cur = rl.rlim_max = pages * cn__stack_page_size() + 64 * 1024;
    if (setrlimit(RLIMIT_AS, &rl) != 0)
        _exit(8);
}

static void eagain_rlimit_child(void)
{
    eagain_child_common(lower_rlimit_as);
}

static void check_eagain_child(const struct child *ch)
{
    if (!WIFEXITED(ch->status) || WEXITSTATUS(ch->status) != 0)
        fprintf(stderr, "child status %#x, output:\n%s\n", ch->status, ch->out);
    assert_true(WIFEXITED(ch->status));
    assert_int_equal(WEXITSTATUS(ch->status), 0);
    /* One line, printed once, naming the sysctl and how to raise it. */
    assert_int_equal(count_substr(ch->out, "cannot map a coroutine stack"), 1);
    assert_non_null(strstr(ch->out, "vm.max_map_count"));
    assert_non_null(strstr(ch->out, "sysctl -w vm.max_map_count="));
}

static void test_eagain_when_map_count_exhausted(void **state)
{
    (void)state;
    if (under_valgrind() || have_tsan)
        skip(); /* Valgrind's own segment table (TSan's allocator) runs out first */
    struct child ch;
    run_child(eagain_map_count_child, &ch);
    check_eagain_child(&ch);
}

static void test_eagain_when_address_space_exhausted(void **state)
{
    (void)state;
    if (have_tsan)
        skip(); /* TSan's allocator runs out first */
    struct child ch;
    run_child(eagain_rlimit_child, &ch);
    check_eagain_child(&ch);
}

/* ------------------------------------------------------------------------ */
/* Threads: each has its own current coroutine and main context              */
/* ------------------------------------------------------------------------ */

struct tjob {
    int ok;
};

struct tco {
    cn__coro *self;
    int bad;
    int n;
};

static void thread_coro_fn(void *arg)
{
    struct tco *t = arg;
    for (int i = 0; i < 100; i++) {
        if (cn__coro_current() != t->self)
            t->bad++;
        t->n++;
        cn__coro_yield();
    }
}

static void *thread_main(void *arg)
{
    struct tjob *j = arg;
    cn__stack_pool *p = cn__stack_pool_new(8);
    struct tco t[8];
    cn__coro *c[8];
    j->ok = 1;
    for (int i = 0; i < 8; i++) {
        t[i] = (struct tco){0};
        if (cn__coro_new(p, 64 * 1024, thread_coro_fn, &t[i], &c[i]) != 0)
            j->ok = 0;
        t[i].self = c[i];
    }
    if (!j->ok)
        return NULL;
    for (int done = 0; done < 8;) {
        for (int i = 0; i < 8; i++) {
            if (cn__coro_finished(c[i]))
                continue;
            if (cn__coro_resume(c[i]) == 1)
                done++;
            if (cn__coro_current() != NULL)
                j->ok = 0;
        }
    }
    for (int i = 0; i < 8; i++) {
        if (t[i].bad || t[i].n != 100)
            j->ok = 0;
        cn__coro_free(c[i]);
    }
    if (cn__stack_pool_live(p) != 0)
        j->ok = 0;
    cn__stack_pool_free(p);
    return NULL;
}

static void test_threads_independent(void **state)
{
    (void)state;
    pthread_t th[3];
    struct tjob j[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&th[i], NULL, thread_main, &j[i]), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_true(j[i].ok);
    }
}

/* ------------------------------------------------------------------------ */
/* The low-level primitives of both backends                                 */
/* ------------------------------------------------------------------------ */

#if CANTEEN_CORO_ASM
static void *ll_main_sp, *ll_co_sp;
static int ll_value;

static void ll_entry(void *arg)
{
    int *steps = arg;
    for (;;) {
        ll_value = ll_value * 2 + 1;
        (*steps)++;
        cn__ctx_switch(&ll_co_sp, ll_main_sp);
    }
}
#endif

static cn__uctx u_main, u_co;
static int u_value;

static void u_entry(void *arg)
{
    int *steps = arg;
    for (;;) {
        u_value = u_value * 2 + 1;
        (*steps)++;
        cn__uctx_switch(&u_co, &u_main);
    }
}

static void test_low_level_switches(void **state)
{
    (void)state;
    cn__stack s;
    assert_int_equal(cn__stack_map(&s, 64 * 1024), 0);
    int steps = 0;
#if CANTEEN_CORO_ASM
    ll_co_sp = cn__ctx_make(s.lo, s.size, ll_entry, &steps);
    for (int i = 0; i < 10; i++)
        cn__ctx_switch(&ll_main_sp, ll_co_sp);
    assert_int_equal(steps, 10);
    assert_int_equal(ll_value, 1023);
#endif
    steps = 0;
    memset(&u_main, 0, sizeof u_main);
    assert_int_equal(cn__uctx_make(&u_co, s.lo, s.size, u_entry, &steps), 0);
    for (int i = 0; i < 10; i++)
        cn__uctx_switch(&u_main, &u_co);
    assert_int_equal(steps, 10);
    assert_int_equal(u_value, 1023);
    cn__stack_unmap(&s);
    assert_string_equal(cn__coro_backend(), CANTEEN_CORO_ASM ? "asm" : "ucontext");
}

/*
 * Every callee-saved register, checked right at cn__ctx_switch (the tests
 * above go through cn__coro_resume/yield, whose own prologues may save some
 * registers and hide a switch that forgets them). regs_probe(save, to, out,
 * base) loads base+1, base+2, ... into all callee-saved registers, switches,
 * and when switched back stores what the registers hold into out[].
 */
#if CANTEEN_CORO_ASM && defined(__x86_64__)
#define PROBE_REGS 6 /* rbx rbp r12 r13 r14 r15 */
__asm__(".text\n"
        ".p2align 4\n"
        "regs_probe:\n"
        "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
        "  pushq %rdx\n" /* out; rsp is now 16-byte aligned for the call */
        "  leaq 1(%rcx), %rbx\n  leaq 2(%rcx), %rbp\n  leaq 3(%rcx), %r12\n"
        "  leaq 4(%rcx), %r13\n  leaq 5(%rcx), %r14\n  leaq 6(%rcx), %r15\n"
        "  call cn__ctx_switch\n"
        "  popq %rdx\n"
        "  movq %rbx, 0(%rdx)\n  movq %rbp, 8(%rdx)\n  movq %r12, 16(%rdx)\n"
        "  movq %r13, 24(%rdx)\n  movq %r14, 32(%rdx)\n  movq %r15, 40(%rdx)\n"
        "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
        "  ret\n");
#define HAVE_PROBE 1
#elif CANTEEN_CORO_ASM && defined(__aarch64__)
#define PROBE_REGS 19 /* x19-x29, d8-d15 */
__asm__(".text\n"
        ".p2align 4\n"
        "regs_probe:\n"
        "  sub sp, sp, #176\n"
        "  stp x19, x20, [sp, #0]\n  stp x21, x22, [sp, #16]\n  stp x23, x24, [sp, #32]\n"
        "  stp x25, x26, [sp, #48]\n  stp x27, x28, [sp, #64]\n  stp x29, x30, [sp, #80]\n"
        "  stp d8, d9, [sp, #96]\n  stp d10, d11, [sp, #112]\n  stp d12, d13, [sp, #128]\n"
        "  stp d14, d15, [sp, #144]\n  str x2, [sp, #160]\n"
        "  add x19, x3, #1\n  add x20, x3, #2\n  add x21, x3, #3\n  add x22, x3, #4\n"
        "  add x23, x3, #5\n  add x24, x3, #6\n  add x25, x3, #7\n  add x26, x3, #8\n"
        "  add x27, x3, #9\n  add x28, x3, #10\n  add x29, x3, #11\n"
        "  add x9, x3, #12\n  fmov d8, x9\n  add x9, x3, #13\n  fmov d9, x9\n"
        "  add x9, x3, #14\n  fmov d10, x9\n  add x9, x3, #15\n  fmov d11, x9\n"
        "  add x9, x3, #16\n  fmov d12, x9\n  add x9, x3, #17\n  fmov d13, x9\n"
        "  add x9, x3, #18\n  fmov d14, x9\n  add x9, x3, #19\n  fmov d15, x9\n"
        "  bl cn__ctx_switch\n"
        "  ldr x2, [sp, #160]\n"
        "  stp x19, x20, [x2, #0]\n  stp x21, x22, [x2, #16]\n  stp x23, x24, [x2, #32]\n"
        "  stp x25, x26, [x2, #48]\n  stp x27, x28, [x2, #64]\n  str x29, [x2, #80]\n"
        "  str d8, [x2, #88]\n  str d9, [x2, #96]\n  str d10, [x2, #104]\n  str d11, [x2, #112]\n"
        "  str d12, [x2, #120]\n  str d13, [x2, #128]\n  str d14, [x2, #136]\n"
        "  str d15, [x2, #144]\n"
        "  ldp x19, x20, [sp, #0]\n  ldp x21, x22, [sp, #16]\n  ldp x23, x24, [sp, #32]\n"
        "  ldp x25, x26, [sp, #48]\n  ldp x27, x28, [sp, #64]\n  ldp x29, x30, [sp, #80]\n"
        "  ldp d8, d9, [sp, #96]\n  ldp d10, d11, [sp, #112]\n  ldp d12, d13, [sp, #128]\n"
        "  ldp d14, d15, [sp, #144]\n"
        "  add sp, sp, #176\n"
        "  ret\n");
#define HAVE_PROBE 1
#endif

#ifdef HAVE_PROBE
void regs_probe(void **save, void *to, uint64_t *out, uint64_t base);

#define MAIN_BASE UINT64_C(0x1111111111111100)
#define CO_BASE UINT64_C(0x2222222222222200)
static void *probe_main_sp, *probe_co_sp;
static uint64_t probe_co_out[4][PROBE_REGS];

static void probe_entry(void *arg)
{
    (void)arg;
    for (int i = 0;; i = (i + 1) % 4)
        regs_probe(&probe_co_sp, probe_main_sp, probe_co_out[i], CO_BASE + (uint64_t)i * 64);
}
#endif

static void test_switch_keeps_every_callee_saved_register(void **state)
{
    (void)state;
#ifndef HAVE_PROBE
    skip(); /* the ucontext build: swapcontext saves every register */
#else
    cn__stack s;
    assert_int_equal(cn__stack_map(&s, 64 * 1024), 0);
    probe_co_sp = cn__ctx_make(s.lo, s.size, probe_entry, NULL);
    uint64_t out[PROBE_REGS];
    /* The first switch starts the coroutine; each later one resumes its probe. */
    for (int round = 0; round < 4; round++) {
        uint64_t base = MAIN_BASE + (uint64_t)round * 64;
        regs_probe(&probe_main_sp, probe_co_sp, out, base);
        for (int r = 0; r < PROBE_REGS; r++)
            assert_true(out[r] == base + (uint64_t)r + 1);
        if (round > 0) {
            uint64_t cbase = CO_BASE + (uint64_t)(round - 1) * 64;
            for (int r = 0; r < PROBE_REGS; r++)
                assert_true(probe_co_out[round - 1][r] == cbase + (uint64_t)r + 1);
        }
    }
    cn__stack_unmap(&s);
#endif
}

int main(void)
{
    opaque_fn = identity;
    sigaction(SIGSEGV, NULL, &initial_segv);
    /* CN_TEST_FILTER=test_ping_pong (a glob) runs only the matching tests. */
    if (getenv("CN_TEST_FILTER"))
        cmocka_set_test_filter(getenv("CN_TEST_FILTER"));
    alarm(under_valgrind() ? 600 : 120); /* the whole suite is bounded */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ping_pong),
        cmocka_unit_test(test_resume_inside_coroutine_refused),
        cmocka_unit_test(test_many_interleaved),
        cmocka_unit_test(test_pool_reuse),
        cmocka_unit_test(test_abandon_then_reuse),
        cmocka_unit_test(test_coroutines_release_memory),
        cmocka_unit_test(test_fp_control_isolated),
        cmocka_unit_test(test_callee_saved_preserved),
        cmocka_unit_test(test_switch_keeps_every_callee_saved_register),
        cmocka_unit_test(test_deep_recursion),
        cmocka_unit_test(test_stack_guard_and_lazy_commit),
        cmocka_unit_test(test_overflow_message),
        cmocka_unit_test(test_overflow_big_frame),
        cmocka_unit_test(test_other_faults_not_ours),
        cmocka_unit_test(test_eagain_when_map_count_exhausted),
        cmocka_unit_test(test_eagain_when_address_space_exhausted),
        cmocka_unit_test(test_threads_independent),
        cmocka_unit_test(test_low_level_switches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
