/* error.c -- the error table (cn_strerror, cn_err_name), HTTP reasons, logging. */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "canteen.h"
#include "common.h"

/*
 * libuv's own table, for codes Canteen's table does not name. uv_strerror and
 * uv_err_name return a fresh strdup'd "Unknown system error N" for a code
 * libuv does not know (a leak per call), so they are never called: an unknown
 * code gets a static string.
 */
static const char *uv_message(int err)
{
    switch (err) {
#define CN__UV_MSG(name, msg)                                                                      \
    case UV_##name:                                                                                \
        return msg;
        UV_ERRNO_MAP(CN__UV_MSG)
#undef CN__UV_MSG
    default:
        return "unknown error";
    }
}

static const char *uv_name(int err)
{
    switch (err) {
#define CN__UV_NAME(name, msg)                                                                     \
    case UV_##name:                                                                                \
        return #name;
        UV_ERRNO_MAP(CN__UV_NAME)
#undef CN__UV_NAME
    default:
        return "UNKNOWN";
    }
}

const char *cn_strerror(int err)
{
    switch (err) {
#define CN__ERR_MSG(name, value, msg)                                                              \
    case CN_E##name:                                                                               \
        return msg;
        CN_ERRNO_MAP(CN__ERR_MSG)
#undef CN__ERR_MSG
    case 0:
        return "success";
    default:
        /* libuv's own codes (and any other -errno) */
        return uv_message(err);
    }
}

const char *cn_err_name(int err)
{
    switch (err) {
#define CN__ERR_NAME(name, value, msg)                                                             \
    case CN_E##name:                                                                               \
        return "CN_E" #name;
        CN_ERRNO_MAP(CN__ERR_NAME)
#undef CN__ERR_NAME
    case 0:
        return "OK";
    default:
        return uv_name(err);
    }
}

#define CN__STATUS_MAP(XX)                                                                         \
    XX(100, "Continue")                                                                            \
    XX(101, "Switching Protocols")                                                                 \
    XX(200, "OK")                                                                                  \
    XX(201, "Created")                                                                             \
    XX(202, "Accepted")                                                                            \
    XX(204, "No Content")                                                                          \
    XX(206, "Partial Content")                                                                     \
    XX(301, "Moved Permanently")                                                                   \
    XX(302, "Found")                                                                               \
    XX(303, "See Other")                                                                           \
    XX(304, "Not Modified")                                                                        \
    XX(307, "Temporary Redirect")                                                                  \
    XX(308, "Permanent Redirect")                                                                  \
    XX(400, "Bad Request")                                                                         \
    XX(401, "Unauthorized")                                                                        \
    XX(403, "Forbidden")                                                                           \
    XX(404, "Not Found")                                                                           \
    XX(405, "Method Not Allowed")                                                                  \
    XX(406, "Not Acceptable")                                                                      \
    XX(408, "Request Timeout")                                                                     \
    XX(409, "Conflict")                                                                            \
    XX(410, "Gone")                                                                                \
    XX(411, "Length Required")                                                                     \
    XX(413, "Content Too Large")                                                                   \
    XX(414, "URI Too Long")                                                                        \
    XX(415, "Unsupported Media Type")                                                              \
    XX(417, "Expectation Failed")                                                                  \
    XX(422, "Unprocessable Content")                                                               \
    XX(429, "Too Many Requests")                                                                   \
    XX(431, "Request Header Fields Too Large")                                                     \
    XX(500, "Internal Server Error")                                                               \
    XX(501, "Not Implemented")                                                                     \
    XX(502, "Bad Gateway")                                                                         \
    XX(503, "Service Unavailable")                                                                 \
    XX(504, "Gateway Timeout")                                                                     \
    XX(505, "HTTP Version Not Supported")

const char *cn_status_reason(int status)
{
    switch (status) {
#define CN__STATUS_CASE(code, text)                                                                \
    case code:                                                                                     \
        return text;
        CN__STATUS_MAP(CN__STATUS_CASE)
#undef CN__STATUS_CASE
    default:
        return "Unknown";
    }
}

static cn_log_fn log_fn;
static void *log_data;
static _Atomic int log_level = CN_LOG_INFO;

void cn_log_set_level(int level)
{
    atomic_store(&log_level, level < CN_LOG_ERROR ? CN_LOG_ERROR : level);
}

bool cn__log_enabled(int level)
{
    return level <= atomic_load_explicit(&log_level, memory_order_relaxed);
}

void cn__log_line(int level, const char *line)
{
    char buf[4096 + 1];
    size_t n;

    if (!cn__log_enabled(level))
        return;
    if (log_fn) {
        log_fn(level, line, log_data);
        return;
    }
    /* the line as it is, and its newline, in one write: lines from
     * several processes sharing stderr do not interleave */
    n = strlen(line);
    if (n > sizeof buf - 1)
        n = sizeof buf - 1;
    memcpy(buf, line, n);
    buf[n++] = '\n';
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        memmove(buf, buf + w, n - (size_t)w);
        n -= (size_t)w;
    }
}

void cn_log_set_handler(cn_log_fn fn, void *data)
{
    log_fn = fn;
    log_data = data;
}

static void vlog(int level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void vlog(int level, const char *fmt, va_list ap)
{
    static const char *const words[] = {"ERROR", "WARNING", "INFO"};
    struct timespec ts;
    cn__tm tm;
    char line[1024];
    int n;

    if (!cn__log_enabled(level))
        return;
    if (log_fn) {
        vsnprintf(line, sizeof line, fmt, ap);
        log_fn(level, line, log_data);
        return;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    cn__utc(ts.tv_sec, &tm);
    n = snprintf(line, sizeof line,
                 "%04lld-%02u-%02uT%02u:%02u:%02u.%03ldZ canteen %s: ", (long long)tm.year, tm.mon,
                 tm.mday, tm.hour, tm.min, tm.sec, ts.tv_nsec / 1000000L,
                 words[level < 0 || level > 2 ? 0 : level]);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    /* one write per line so that concurrent loggers do not interleave */
    fprintf(stderr, "%s\n", line);
}

void cn__log(int level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

void cn_log(int level, const char *fmt, ...)
{
    va_list ap;

    if (fmt == NULL)
        return;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}
