/* common.h -- small helpers shared by every layer (no HTTP, no libuv). */
#ifndef CN_COMMON_H
#define CN_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define CN__LIKELY(x) __builtin_expect(!!(x), 1)
#define CN__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define CN__ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define CN__CONTAINER_OF(ptr, type, field) ((type *)((char *)(ptr)-offsetof(type, field)))

/* An intrusive doubly linked list (a ring with a sentinel head). */
typedef struct cn__list {
    struct cn__list *prev, *next;
} cn__list;

static inline void cn__list_init(cn__list *h)
{
    h->prev = h->next = h;
}
static inline bool cn__list_empty(const cn__list *h)
{
    return h->next == h;
}
static inline void cn__list_push(cn__list *h, cn__list *n)
{
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}
static inline void cn__list_remove(cn__list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

/*
 * A route's lane on the thread pool (pool.h): at most `limit` of its jobs
 * are in the pool's queue or running at once; the rest wait in `waiting`,
 * holding no worker. The pool's lock guards every field but `limit`; a
 * route owns its lane (router.c), the pool only borrows it.
 */
typedef struct cn__lane {
    unsigned limit;
    unsigned inflight;
    cn__list waiting;
} cn__lane;

/* Logging to stderr with a timestamp and a level word. */
enum { CN__LOG_ERROR = 0, CN__LOG_WARN = 1, CN__LOG_INFO = 2 };
void cn__log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Whether lines of `level` are logged (cn_log_set_level). */
bool cn__log_enabled(int level);
/* A line as it is (no timestamp, no level word), if its level is logged:
 * to the log handler, or to stderr with its newline in one write. */
void cn__log_line(int level, const char *line);

/* ascii.c. ASCII case-insensitive comparison of a view against a NUL-terminated name. */
bool cn__ieq(const char *a, size_t alen, const char *b);
/* An RFC 9110 token (a header, cookie or parameter name): tchars, not empty. */
bool cn__is_token(const char *s, size_t n);
/* `v` in decimal, NUL-terminated, into `out`; returns the digit count. */
#define CN__UTOA_MAX 21
size_t cn__utoa(char out[CN__UTOA_MAX], uint64_t v);
/* UTC calendar fields of `t` by arithmetic alone: gmtime_r reads the
 * time zone file on first use, which the loop must not. mon 1..12. */
typedef struct cn__tm {
    int64_t year;
    unsigned mon, mday, wday, hour, min, sec;
} cn__tm;
void cn__utc(time_t t, cn__tm *tm);
/* `t` as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), whatever the
 * locale and time zone; years past 9999 are written as 9999. */
void cn__imf_date(time_t t, char buf[32]);

#endif
