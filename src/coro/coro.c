/*
 * coro.c -- coroutines: creation from a stack pool, resume/yield with the
 * sanitizer annotations, and the stack-overflow report (see coro.h).
 *
 * Per thread (thread-local): the main context the coroutines switch back to,
 * the current coroutine and, under ASan, the bounds of the main stack.
 * Per process: the SIGSEGV handler, installed once.
 */
#include "coro/coro.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include "canteen.h"
#include "coro/stack.h"

#if defined(__SANITIZE_ADDRESS__)
#define CN__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CN__ASAN 1
#endif
#endif

#ifdef CN__ASAN
#include <sanitizer/common_interface_defs.h>
#define CN__NO_ASAN __attribute__((no_sanitize_address))
#define asan_start(save, bottom, size) __sanitizer_start_switch_fiber((save), (bottom), (size))
#define asan_finish(save, bottom, size) __sanitizer_finish_switch_fiber((save), (bottom), (size))
#else
#define CN__NO_ASAN
#define asan_start(save, bottom, size) ((void)0)
#define asan_finish(save, bottom, size) ((void)0)
#endif

/* ThreadSanitizer: each coroutine is a fiber of its own, and every switch
 * tells TSan whose stack runs next (its shadow stack and the happens-before
 * order follow the switch; without this it sees one thread jumping between
 * stacks and reports nonsense). Fibers on one thread run one at a time, so
 * each switch synchronises (flags 0). */
#if defined(__SANITIZE_THREAD__)
#define CN__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CN__TSAN 1
#endif
#endif

#ifdef CN__TSAN
#include <sanitizer/tsan_interface.h>
#endif

enum { ST_NEW, ST_SUSPENDED, ST_RUNNING, ST_FINISHED };

/* ------------------------------------------------------------------------ */
/* Contexts: the selected backend behind two calls                           */
/* ------------------------------------------------------------------------ */

#if CANTEEN_CORO_ASM
/* Defined in switch_<arch>.S. */
void cn__ctx_boot(void);
uint64_t cn__ctx_fpctl(void);

/*
 * Write the first frame of a new context, in the layout switch_<arch>.S
 * documents, so that the first switch "returns" into cn__ctx_boot, which
 * calls entry(arg). Not instrumented: the top of a reused stack may still
 * carry ASan poison from the coroutine that used it before.
 */
CN__NO_ASAN void *cn__ctx_make(void *lo, size_t size, cn__ctx_entry entry, void *arg)
{
    uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
#if defined(__x86_64__)
    /* 8 slots; after popping them rsp == top, 16-byte aligned for the call
     * in cn__ctx_boot. */
    uint64_t *f = (uint64_t *)(top - 8 * sizeof(uint64_t));
    f[0] = cn__ctx_fpctl();         /* MXCSR, x87 control word */
    f[1] = 0;                       /* r15 */
    f[2] = 0;                       /* r14 */
    f[3] = (uintptr_t)arg;          /* r13: the entry's argument */
    f[4] = (uintptr_t)entry;        /* r12: the entry */
    f[5] = 0;                       /* rbx */
    f[6] = 0;                       /* rbp: ends frame-pointer chains */
    f[7] = (uintptr_t)cn__ctx_boot; /* resume address */
#elif defined(__aarch64__)
    /* 22 slots (176 bytes); after the switch sp == top. */
    uint64_t *f = (uint64_t *)(top - 22 * sizeof(uint64_t));
    f[0] = (uintptr_t)entry; /* x19: the entry */
    f[1] = (uintptr_t)arg;   /* x20: its argument */
    f[2] = 0;                /* x21 .. x28 */
    f[3] = 0;
    f[4] = 0;
    f[5] = 0;
    f[6] = 0;
    f[7] = 0;
    f[8] = 0;
    f[9] = 0;
    f[10] = 0;                       /* x29: ends frame-pointer chains */
    f[11] = (uintptr_t)cn__ctx_boot; /* x30: resume address */
    f[12] = 0;                       /* d8 .. d15 */
    f[13] = 0;
    f[14] = 0;
    f[15] = 0;
    f[16] = 0;
    f[17] = 0;
    f[18] = 0;
    f[19] = 0;
    f[20] = cn__ctx_fpctl(); /* FPCR */
    f[21] = 0;
#else
#error "CANTEEN_CORO_ASM=1 needs x86-64 or AArch64; configure with CANTEEN_CORO_BACKEND=ucontext"
#endif
    return f;
}

typedef struct coro_ctx {
    void *sp;
} coro_ctx;

static int ctx_make(coro_ctx *x, const cn__stack *s, cn__ctx_entry entry, void *arg)
{
    x->sp = cn__ctx_make(s->lo, s->size, entry, arg);
    return 0;
}

static inline void ctx_switch(coro_ctx *from, const coro_ctx *to)
{
    cn__ctx_switch(&from->sp, to->sp);
}
#else
typedef cn__uctx coro_ctx;

static int ctx_make(coro_ctx *x, const cn__stack *s, cn__ctx_entry entry, void *arg)
{
    return cn__uctx_make(x, s->lo, s->size, entry, arg);
}

static inline void ctx_switch(coro_ctx *from, const coro_ctx *to)
{
    cn__uctx_switch(from, to);
}
#endif

const char *cn__coro_backend(void)
{
    return CANTEEN_CORO_ASM ? "asm" : "ucontext";
}

/* ------------------------------------------------------------------------ */
/* Objects                                                                   */
/* ------------------------------------------------------------------------ */

struct cn__coro {
    coro_ctx ctx; /* saved context while not running */
    cn__coro_fn fn;
    void *arg;
    const char *label;
    cn__stack_pool *pool;
    cn__coro *next; /* free-list link while pooled */
    cn__stack stack;
    int state;
#ifdef CN__ASAN
    void *asan_fake; /* ASan's fake stack of this coroutine while suspended */
#endif
#ifdef CN__TSAN
    void *tsan_fiber; /* TSan's context of this coroutine (a fiber) */
#endif
};

#define POOL_CLASSES 8

struct cn__stack_pool {
    size_t max_free;
    size_t idle;         /* on the free lists, all classes */
    _Atomic size_t live; /* created, not yet freed (read from any thread: cn_app_stats) */
    struct {
        size_t size; /* usable stack size of this class (0: unused slot) */
        size_t n;
        cn__coro *head;
    } cls[POOL_CLASSES];
};

typedef struct thread_state {
    coro_ctx main;     /* the thread's main context while a coroutine runs */
    cn__coro *current; /* the running coroutine, NULL on the main stack */
    int ready;         /* handler installed, alternate signal stack set */
#ifdef CN__ASAN
    void *main_fake;         /* ASan's fake stack of the main context */
    const void *main_bottom; /* bounds of the main stack, learnt on the first switch */
    size_t main_size;
    coro_ctx *reap_back; /* where the ASan reaper switches back to */
#endif
#ifdef CN__TSAN
    void *tsan_main; /* TSan's context of the main stack while a coroutine runs */
#endif
} thread_state;

static _Thread_local thread_state tls;

/* ------------------------------------------------------------------------ */
/* Stack overflow: a SIGSEGV handler on an alternate signal stack            */
/* ------------------------------------------------------------------------ */

static pthread_once_t process_once = PTHREAD_ONCE_INIT;
static pthread_key_t altstack_key;
static int altstack_key_ok;
static size_t altstack_size;

/* Async-signal-safe string building for the report. */
static size_t put_str(char *buf, size_t n, size_t cap, const char *s)
{
    while (*s && n < cap)
        buf[n++] = *s++;
    return n;
}

static size_t put_uint(char *buf, size_t n, size_t cap, size_t v)
{
    char tmp[24];
    size_t k = 0;
    do {
        tmp[k++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (k > 0 && n < cap)
        buf[n++] = tmp[--k];
    return n;
}

/* "<route> (stack <n> bytes)" */
static size_t put_route(char *buf, size_t n, size_t cap, const cn__coro *c)
{
    n = put_str(buf, n, cap, c->label ? c->label : "(unlabelled)");
    n = put_str(buf, n, cap, " (stack ");
    n = put_uint(buf, n, cap, c->stack.size);
    return put_str(buf, n, cap, " bytes)");
}

#ifdef CN__ASAN
/*
 * Under ASan, ASan owns SIGSEGV and reports an overflow (or any error) by
 * itself, without knowing routes; just before the process dies, name the
 * coroutine the report came from.
 */
static void asan_death(void)
{
    const cn__coro *c = tls.current;
    if (!c)
        return;
    char buf[512];
    size_t cap = sizeof buf - 1, n = 0;
    n = put_str(buf, n, cap, "canteen: the report above comes from the coroutine of route ");
    n = put_route(buf, n, cap, c);
    buf[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, n);
    (void)w;
}
#endif

#ifndef CN__ASAN
static struct sigaction prev_segv; /* the handler we chain to */

/* Did this fault come from the running coroutine overflowing its stack? */
static int is_overflow(const cn__coro *c, const siginfo_t *si, const void *uctx)
{
    uintptr_t addr = (uintptr_t)si->si_addr;
    uintptr_t guard_lo = (uintptr_t)c->stack.map;
    uintptr_t lo = (uintptr_t)c->stack.lo;
    if (addr >= guard_lo && addr < lo)
        return 1;
    /* A frame larger than the guard may jump over it: if both the fault and
     * the stack pointer lie just below the stack, it overflowed too. (If the
     * jump lands in another mapping there is no fault at all: build with
     * -fstack-clash-protection to make large frames probe page by page.) */
    uintptr_t sp = 0;
    const ucontext_t *uc = uctx;
#if defined(__x86_64__)
    sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
    sp = (uintptr_t)uc->uc_mcontext.sp;
#else
    (void)uc;
#endif
    const uintptr_t window = 64 * 1024;
    return sp < lo && sp + window >= guard_lo && addr < lo && addr + window >= guard_lo;
}

static void segv_handler(int sig, siginfo_t *si, void *uctx)
{
    int saved_errno = errno;
    const cn__coro *c = tls.current;
    if (c && is_overflow(c, si, uctx)) {
        char buf[512];
        size_t cap = sizeof buf - 1, n = 0;
        n = put_str(buf, n, cap, "canteen: stack overflow in coroutine of route ");
        n = put_route(buf, n, cap, c);
        n = put_str(buf, n, cap,
                    "; raise its stack size with cn_route_opts.stack_size or "
                    "cn_config.stack_size");
        buf[n++] = '\n';
        ssize_t w = write(STDERR_FILENO, buf, n);
        (void)w;
        abort();
    }
    /* Not ours: chain to the handler that was there before us. */
    if ((prev_segv.sa_flags & SA_SIGINFO) && prev_segv.sa_sigaction) {
        prev_segv.sa_sigaction(sig, si, uctx);
    } else if (!(prev_segv.sa_flags & SA_SIGINFO) && prev_segv.sa_handler != SIG_DFL &&
               prev_segv.sa_handler != SIG_IGN) {
        prev_segv.sa_handler(sig);
    } else {
        /* Restore the default action and return: the faulting instruction
         * runs again and the fault kills the process as usual (core dump
         * included). A SIGSEGV sent with kill() is not re-raised by
         * returning, so raise it (it is blocked until we return). */
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigemptyset(&dfl.sa_mask);
        sigaction(SIGSEGV, &dfl, NULL);
        if (si->si_code <= 0)
            raise(sig);
    }
    errno = saved_errno;
}

#endif /* !CN__ASAN */

/* Thread exit: disable and unmap the alternate signal stack we set. */
static void altstack_release(void *mem)
{
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && cur.ss_sp == mem) {
        stack_t off;
        memset(&off, 0, sizeof off);
        off.ss_flags = SS_DISABLE;
        sigaltstack(&off, NULL);
    }
    munmap(mem, altstack_size);
}

/* Put segv_handler in place unless it already is, chaining to the current
 * handler. */
static void install_handler(void)
{
#ifndef CN__ASAN
    struct sigaction cur;
    if (sigaction(SIGSEGV, NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) &&
        cur.sa_sigaction == segv_handler)
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = segv_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &prev_segv);
#else
    /* Under ASan we install nothing: ASan's own SIGSEGV handler (on its own
     * alternate stack) reports the overflow as a stack-overflow, knowing the
     * coroutine stacks from the fiber annotations. Chaining in front of it
     * would hide its report. */
#endif
}

static void process_init(void)
{
    long min = sysconf(_SC_SIGSTKSZ);
    altstack_size = 64 * 1024;
    if (min > 0 && (size_t)min * 4 > altstack_size)
        altstack_size = (size_t)min * 4;
    altstack_key_ok = pthread_key_create(&altstack_key, altstack_release) == 0;
    install_handler();
#ifdef CN__ASAN
    __sanitizer_set_death_callback(asan_death);
#endif
}

void cn__coro_overflow_handler_install(void)
{
    pthread_once(&process_once, process_init);
    install_handler();
}

/*
 * The first coroutine of a thread: make sure the handler exists and that the
 * thread has an alternate signal stack (the handler cannot run on the stack
 * that overflowed). A stack the application set is kept. If the mapping
 * fails we try again on the next creation; meanwhile an overflow is a plain
 * SIGSEGV.
 */
static void thread_init(void)
{
    pthread_once(&process_once, process_init);
#ifdef CN__ASAN
    tls.ready = 1;
#else
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE)) {
        tls.ready = 1;
        return;
    }
    void *mem = mmap(NULL, altstack_size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (mem == MAP_FAILED)
        return;
    stack_t ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_sp = mem;
    ss.ss_size = altstack_size;
    if (sigaltstack(&ss, NULL) != 0) {
        munmap(mem, altstack_size);
        return;
    }
    if (altstack_key_ok)
        pthread_setspecific(altstack_key, mem);
    tls.ready = 1;
#endif
}

/* ------------------------------------------------------------------------ */
/* Switching                                                                 */
/* ------------------------------------------------------------------------ */

/* Main context -> c. Returns when c switches back. */
static inline void switch_into(cn__coro *c)
{
#ifdef CN__ASAN
    asan_start(&tls.main_fake, c->stack.lo, c->stack.size);
#endif
#ifdef CN__TSAN
    tls.tsan_main = __tsan_get_current_fiber();
    __tsan_switch_to_fiber(c->tsan_fiber, 0);
#endif
    ctx_switch(&tls.main, &c->ctx);
#ifdef CN__ASAN
    asan_finish(tls.main_fake, NULL, NULL);
#endif
}

/* c -> main context. `last`: c has finished, its ASan fake stack dies. */
static inline void switch_out(cn__coro *c, int last)
{
#ifdef CN__ASAN
    asan_start(last ? NULL : &c->asan_fake, tls.main_bottom, tls.main_size);
#else
    (void)last;
#endif
#ifdef CN__TSAN
    __tsan_switch_to_fiber(tls.tsan_main, 0);
#endif
    ctx_switch(&c->ctx, &tls.main);
#ifdef CN__ASAN
    asan_finish(c->asan_fake, &tls.main_bottom, &tls.main_size);
#endif
}

static void coro_entry(void *p)
{
    cn__coro *c = p;
#ifdef CN__ASAN
    asan_finish(NULL, &tls.main_bottom, &tls.main_size);
#endif
    c->fn(c->arg);
    c->state = ST_FINISHED;
    switch_out(c, 1);
    abort(); /* a finished coroutine is never resumed */
}

int cn__coro_resume(cn__coro *c)
{
    if (!c || tls.current || c->state == ST_FINISHED || c->state == ST_RUNNING)
        return CN_ESTATE;
    c->state = ST_RUNNING;
    tls.current = c;
    switch_into(c);
    tls.current = NULL;
    return c->state == ST_FINISHED;
}

void cn__coro_yield(void)
{
    cn__coro *c = tls.current;
    if (!c)
        return;
    c->state = ST_SUSPENDED;
    switch_out(c, 0);
}

cn__coro *cn__coro_current(void)
{
    return tls.current;
}

void *cn__coro_arg(const cn__coro *c)
{
    return c->arg;
}

int cn__coro_finished(const cn__coro *c)
{
    return c->state == ST_FINISHED;
}

void cn__coro_set_label(cn__coro *c, const char *label)
{
    c->label = label;
}

const char *cn__coro_label(const cn__coro *c)
{
    return c->label;
}

void cn__coro_stack(const cn__coro *c, void **lo, size_t *size)
{
    if (lo)
        *lo = c->stack.lo;
    if (size)
        *size = c->stack.size;
}

#ifdef CN__ASAN
/*
 * An abandoned coroutine still owns an ASan fake stack (with
 * detect_stack_use_after_return), which only a switch away from it with a
 * NULL save can release. So run a last tiny context on its stack that adopts
 * that fake stack, leaves for good, and comes back here. Works from the main
 * context or from inside another coroutine.
 */
static void reap_entry(void *p)
{
    cn__coro *c = p;
    const void *back_bottom;
    size_t back_size;
    asan_finish(c->asan_fake, &back_bottom, &back_size);
    asan_start(NULL, back_bottom, back_size);
    ctx_switch(&c->ctx, tls.reap_back);
    abort();
}

static void asan_reap(cn__coro *c)
{
    coro_ctx back;
    void *fake = NULL;
    memset(&back, 0, sizeof back); /* ASan's swapcontext reads uc_stack */
    cn__stack_unpoison(&c->stack);
    if (ctx_make(&c->ctx, &c->stack, reap_entry, c) != 0)
        return; /* leave the fake stack: a leak, not an error */
    coro_ctx *saved = tls.reap_back;
    tls.reap_back = &back;
    asan_start(&fake, c->stack.lo, c->stack.size);
    ctx_switch(&back, &c->ctx);
    asan_finish(fake, NULL, NULL);
    tls.reap_back = saved;
    c->asan_fake = NULL;
}
#endif

/* ------------------------------------------------------------------------ */
/* Pool                                                                      */
/* ------------------------------------------------------------------------ */

cn__stack_pool *cn__stack_pool_new(size_t max_free)
{
    cn__stack_pool *p = calloc(1, sizeof *p);
    if (p)
        p->max_free = max_free;
    return p;
}

static void destroy(cn__coro *c)
{
#ifdef CN__TSAN
    if (c->tsan_fiber)
        __tsan_destroy_fiber(c->tsan_fiber);
#endif
    cn__stack_unmap(&c->stack);
    free(c);
}

void cn__stack_pool_drop_idle(cn__stack_pool *p)
{
    if (!p)
        return;
    for (int i = 0; i < POOL_CLASSES; i++) {
        cn__coro *c = p->cls[i].head;
        while (c) {
            cn__coro *next = c->next;
            destroy(c);
            c = next;
        }
        p->cls[i].head = NULL;
        p->cls[i].n = 0;
    }
    p->idle = 0;
}

void cn__stack_pool_free(cn__stack_pool *p)
{
    if (!p)
        return;
    cn__stack_pool_drop_idle(p);
    free(p);
}

size_t cn__stack_pool_live(const cn__stack_pool *p)
{
    return atomic_load_explicit(&p->live, memory_order_relaxed);
}

size_t cn__stack_pool_idle(const cn__stack_pool *p)
{
    return p->idle;
}

static cn__coro *pool_take(cn__stack_pool *p, size_t size)
{
    for (int i = 0; i < POOL_CLASSES; i++) {
        if (p->cls[i].size == size && p->cls[i].head) {
            cn__coro *c = p->cls[i].head;
            p->cls[i].head = c->next;
            p->cls[i].n--;
            p->idle--;
            return c;
        }
    }
    return NULL;
}

/* Keep c for reuse; 0 if the pool is full or has no class for its size. */
static int pool_put(cn__stack_pool *p, cn__coro *c)
{
    if (p->idle >= p->max_free)
        return 0;
    int slot = -1;
    for (int i = 0; i < POOL_CLASSES; i++) {
        if (p->cls[i].size == c->stack.size) {
            slot = i;
            break;
        }
        if (slot < 0 && p->cls[i].n == 0)
            slot = i;
    }
    if (slot < 0)
        return 0;
    p->cls[slot].size = c->stack.size;
    c->next = p->cls[slot].head;
    p->cls[slot].head = c;
    p->cls[slot].n++;
    p->idle++;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Create and free                                                           */
/* ------------------------------------------------------------------------ */

int cn__coro_new(cn__stack_pool *p, size_t stack_size, cn__coro_fn fn, void *arg, cn__coro **out)
{
    if (!out)
        return CN_EINVAL;
    *out = NULL;
    if (!p || !fn)
        return CN_EINVAL;
    size_t size;
    int rc = cn__stack_round(stack_size, &size);
    if (rc < 0)
        return rc;
    if (!tls.ready)
        thread_init();

    cn__coro *c = pool_take(p, size);
    if (!c) {
        /* The mapping first: when the kernel refuses mappings, fail before
         * asking malloc (which may need a mapping too). */
        cn__stack st;
        rc = cn__stack_map(&st, size);
        if (rc < 0)
            return rc;
        c = malloc(sizeof *c);
        if (!c) {
            cn__stack_unmap(&st);
            return CN_ENOMEM;
        }
        c->stack = st;
        c->pool = p;
#ifdef CN__TSAN
        c->tsan_fiber = NULL;
#endif
    }
    c->fn = fn;
    c->arg = arg;
    c->label = NULL;
    c->next = NULL;
    c->state = ST_NEW;
#ifdef CN__ASAN
    c->asan_fake = NULL;
#endif
    if (ctx_make(&c->ctx, &c->stack, coro_entry, c) != 0) {
        destroy(c);
        return CN_ENOMEM;
    }
#ifdef CN__TSAN
    /* a fresh fiber per run: a pooled stack's old one died with its run */
    if (c->tsan_fiber == NULL)
        c->tsan_fiber = __tsan_create_fiber(0);
#endif
    p->live++;
    *out = c;
    return 0;
}

void cn__coro_free(cn__coro *c)
{
    if (!c)
        return;
    if (c->state == ST_RUNNING) {
        static const char msg[] = "canteen: cn__coro_free called on the running coroutine\n";
        ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
        (void)w;
        abort();
    }
#ifdef CN__ASAN
    if (c->state == ST_SUSPENDED && c->asan_fake)
        asan_reap(c);
#endif
    cn__stack_unpoison(&c->stack);
#ifdef CN__TSAN
    __tsan_destroy_fiber(c->tsan_fiber);
    c->tsan_fiber = NULL;
#endif
    cn__stack_pool *p = c->pool;
    p->live--;
    if (!pool_put(p, c))
        destroy(c);
}
