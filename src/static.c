/*
 * static.c -- a directory served under a prefix (canteen/static.h). The
 * route's {path:path} is checked for every way out of the directory, then
 * opened on the pool beneath the directory's descriptor (openat2 with
 * RESOLVE_BENEATH, or an O_NOFOLLOW walk where there is none); conditional
 * and range requests are answered from its fstat; the bytes are read on the
 * pool, small files whole, large ones piece by piece into a stream of a
 * known length that waits for the client between pieces.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sys/stat.h>
#include <sys/syscall.h>

#ifdef __linux__
#include <linux/openat2.h>
#endif

#include "app.h"
#include "batteries.h"
#include "common.h"
#include "filter.h"
#include "req.h"

/* Files up to this size are read whole into the response body. */
#define WHOLE_MAX (64 * 1024)
/* A plain GET of a file this small is read in the job that opens it: one
 * trip to the pool instead of two for the icons and stylesheets of a page. */
#define PREREAD_MAX (16 * 1024)
/* Larger ones go out in pieces of this size (one read, one stream write). */
#define PIECE (128 * 1024)

typedef struct mount {
    int root; /* O_PATH descriptor of the directory */
    bool html;
    char *cache_control;
} mount;

static void mount_free(void *p)
{
    mount *m = p;

    if (m->root >= 0)
        close(m->root);
    free(m->cache_control);
    free(m);
}

/* ---- checking the path ---- */

bool cn__static_path_ok(const char *p, size_t n)
{
    size_t i = 0;

    if (n > 0 && p[0] == '/')
        return false; /* "//etc/passwd": an absolute path, an empty segment */
    if (memchr(p, 0, n) || memchr(p, '\\', n))
        return false;
    while (i < n) {
        const char *slash = memchr(p + i, '/', n - i);
        size_t k = slash ? (size_t)(slash - (p + i)) : n - i;
        if (k == 0)
            return false; /* "a//b" */
        if ((k == 1 && p[i] == '.') || (k == 2 && p[i] == '.' && p[i + 1] == '.'))
            return false;
        i += k + 1; /* a trailing '/' ends the loop: a directory */
    }
    return true;
}

/* ---- opening beneath the root ---- */

static atomic_bool no_openat2;

void cn__static_force_fallback(bool on)
{
    atomic_store(&no_openat2, on);
}

/* Open `path` beneath dirfd, each segment with O_NOFOLLOW: no symlink at all. */
static int open_walk(int dirfd, const char *path, int flags)
{
    char seg[256];
    int fd = dirfd;

    for (;;) {
        const char *slash = strchr(path, '/');
        size_t k = slash ? (size_t)(slash - path) : strlen(path);
        bool last = slash == NULL || slash[1] == 0;
        int next;
        if (k >= sizeof seg) {
            errno = ENAMETOOLONG;
            next = -1;
        } else {
            memcpy(seg, path, k);
            seg[k] = 0;
            /* "a.txt/" names a directory, as it does to open(2) */
            int f = last ? flags | (slash ? O_DIRECTORY : 0) : O_RDONLY | O_DIRECTORY | O_CLOEXEC;
            next = openat(fd, k ? seg : ".", f | O_NOFOLLOW);
        }
        if (fd != dirfd) {
            int e = errno;
            close(fd);
            errno = e;
        }
        if (next < 0 || last)
            return next;
        fd = next;
        path = slash + 1;
    }
}

/* Open `path` beneath dirfd; never a path that resolves outside it. */
static int open_beneath(int dirfd, const char *path)
{
    /* O_NONBLOCK: a FIFO must not hold a worker in open(2) */
    int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;

    if (path[0] == 0)
        path = ".";
#if defined(__linux__) && defined(SYS_openat2)
    if (!atomic_load(&no_openat2)) {
        struct open_how how = {.flags = (uint64_t)flags,
                               .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
        long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
        if (fd >= 0 || (errno != ENOSYS && errno != EPERM))
            return (int)fd;
        /* no openat2 here: an old kernel (ENOSYS: for good), or a seccomp
         * filter that refuses it (EPERM, which a file can give too: only
         * this once); the walk, which follows no symlink at all */
        if (errno == ENOSYS)
            atomic_store(&no_openat2, true);
    }
#endif
    return open_walk(dirfd, path, flags);
}

typedef struct open_job {
    const mount *m;
    const char *path;
    int fd;
    int err;    /* errno of what failed, or 0 */
    bool dir;   /* a directory (the fd is closed then, unless index.html opened) */
    bool index; /* what is open is a directory's index.html */
    struct stat st;
    char *pre;   /* PREREAD_MAX bytes for a small file's bytes, or NULL */
    bool pre_ok; /* they are there: the whole file */
} open_job;

/* pread until n bytes are in or the file ends early. The count read, or -1. */
static ssize_t read_full(int fd, char *buf, size_t n, uint64_t off)
{
    size_t got = 0;

    while (got < n) {
        ssize_t k = pread(fd, buf + got, n - got, (off_t)(off + got));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return k < 0 ? -1 : (ssize_t)got;
        got += (size_t)k;
    }
    return (ssize_t)got;
}

/* On the pool: open the file (or a directory's index.html) and fstat it. */
static int open_file(void *arg)
{
    open_job *j = arg;
    size_t n = strlen(j->path);

    j->fd = open_beneath(j->m->root, j->path);
    if (j->fd < 0 || fstat(j->fd, &j->st) < 0)
        goto fail;
    if (S_ISDIR(j->st.st_mode)) {
        int dfd = j->fd;
        j->dir = true;
        j->fd = -1;
        /* "/docs" (no slash) is redirected first: relative links need it */
        if (j->m->html && (n == 0 || j->path[n - 1] == '/')) {
            j->fd = open_beneath(dfd, "index.html");
            if (j->fd >= 0 && fstat(j->fd, &j->st) < 0) {
                close(j->fd);
                j->fd = -1;
            }
            j->dir = false;
            j->index = true;
        }
        close(dfd);
        if (j->fd < 0 && !j->dir)
            goto fail;
    }
    if (j->pre && j->fd >= 0 && S_ISREG(j->st.st_mode) && j->st.st_size <= PREREAD_MAX)
        j->pre_ok = read_full(j->fd, j->pre, (size_t)j->st.st_size, 0) == j->st.st_size;
    return 0;
fail:
    j->err = errno ? errno : EIO;
    if (j->fd >= 0)
        close(j->fd);
    j->fd = -1;
    return 0;
}

typedef struct read_job {
    int fd;
    char *buf;
    size_t n;
    uint64_t off;
    int err; /* errno, or EIO for a file that ended early */
} read_job;

/* On the pool: n bytes at off, all of them, or an error. */
static int read_piece(void *arg)
{
    read_job *j = arg;
    ssize_t got = read_full(j->fd, j->buf, j->n, j->off);

    /* short: it shrank under us */
    j->err = got < 0 ? errno : (size_t)got < j->n ? EIO : 0;
    return 0;
}

static void close_fd(void *arg)
{
    close((int)(intptr_t)arg);
}

/* ---- conditional and range requests ---- */

bool cn__etag_match(const char *inm, const char *etag)
{
    /* weak comparison (RFC 9110 8.8.3.2): the opaque tags, W/ ignored */
    const char *tag = strncmp(etag, "W/", 2) == 0 ? etag + 2 : etag;
    size_t tl = strlen(tag);
    const char *p = inm;

    while (*p) {
        const char *e;
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '*')
            return true;
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        if (*p != '"')
            return false; /* malformed: no match */
        e = strchr(p + 1, '"');
        if (e == NULL)
            return false;
        if ((size_t)(e + 1 - p) == tl && memcmp(p, tag, tl) == 0)
            return true;
        p = e + 1;
    }
    return false;
}

/* Digits to a uint64; false on none, or overflow. */
static bool parse_u64(const char **pp, uint64_t *out)
{
    const char *p = *pp;
    uint64_t v = 0;

    if (*p < '0' || *p > '9')
        return false;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *pp = p;
    *out = v;
    return true;
}

int cn__parse_range(const char *h, uint64_t size, uint64_t *first, uint64_t *last)
{
    const char *p = h;
    uint64_t a, b;

    while (*p == ' ')
        p++;
    if (strncasecmp(p, "bytes=", 6) != 0)
        return CN__RANGE_NONE; /* another unit: ignored */
    p += 6;
    while (*p == ' ')
        p++;
    if (strchr(p, ','))
        return CN__RANGE_NONE; /* several ranges: the whole file (RFC 9110 14.2 allows it) */
    if (*p == '-') {
        /* the last b bytes */
        p++;
        if (!parse_u64(&p, &b))
            return CN__RANGE_NONE;
        while (*p == ' ')
            p++;
        if (*p)
            return CN__RANGE_NONE;
        if (b == 0 || size == 0)
            return CN__RANGE_UNSATISFIABLE;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return CN__RANGE_OK;
    }
    if (!parse_u64(&p, &a) || *p++ != '-')
        return CN__RANGE_NONE;
    b = UINT64_MAX;
    if (*p >= '0' && *p <= '9' && !parse_u64(&p, &b))
        return CN__RANGE_NONE;
    while (*p == ' ')
        p++;
    if (*p || b < a)
        return CN__RANGE_NONE; /* "5-2" is invalid: ignored */
    if (a >= size)
        return CN__RANGE_UNSATISFIABLE;
    *first = a;
    *last = b >= size ? size - 1 : b;
    return CN__RANGE_OK;
}

/* ---- content types ---- */

const char *cn__mime_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {"html", "text/html; charset=utf-8"},
        {"htm", "text/html; charset=utf-8"},
        {"css", "text/css; charset=utf-8"},
        {"js", "text/javascript; charset=utf-8"},
        {"mjs", "text/javascript; charset=utf-8"},
        {"json", "application/json"},
        {"map", "application/json"},
        {"txt", "text/plain; charset=utf-8"},
        {"md", "text/markdown; charset=utf-8"},
        {"csv", "text/csv; charset=utf-8"},
        {"xml", "application/xml"},
        {"svg", "image/svg+xml"},
        {"png", "image/png"},
        {"jpg", "image/jpeg"},
        {"jpeg", "image/jpeg"},
        {"gif", "image/gif"},
        {"webp", "image/webp"},
        {"avif", "image/avif"},
        {"ico", "image/vnd.microsoft.icon"},
        {"pdf", "application/pdf"},
        {"wasm", "application/wasm"},
        {"woff", "font/woff"},
        {"woff2", "font/woff2"},
        {"ttf", "font/ttf"},
        {"otf", "font/otf"},
        {"mp4", "video/mp4"},
        {"webm", "video/webm"},
        {"mp3", "audio/mpeg"},
        {"ogg", "audio/ogg"},
        {"wav", "audio/wav"},
        {"zip", "application/zip"},
        {"gz", "application/gzip"},
        {"tar", "application/x-tar"},
    };
    const char *slash = strrchr(name, '/'), *dot = strrchr(slash ? slash + 1 : name, '.');

    if (dot && dot[1])
        for (size_t i = 0; i < CN__ARRAY_SIZE(types); i++)
            if (strcasecmp(dot + 1, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

/* ---- answering ---- */

/* If-Range: the range applies only to the representation it names. */
static bool if_range_ok(cn_req *req, const char *etag, time_t mtime)
{
    const char *ir = cn_req_header(req, "if-range");
    time_t t;

    if (ir == NULL)
        return true;
    if (ir[0] == '"' || strncmp(ir, "W/", 2) == 0)
        return strcmp(ir, etag) == 0; /* a strong comparison: W/ never matches */
    return cn__parse_http_date(ir, &t) && t == mtime;
}

/* Not Modified (RFC 9110 13.1.2, 13.1.3): If-None-Match first, then the date. */
static bool not_modified(cn_req *req, const char *etag, time_t mtime)
{
    const char *inm = cn_req_header(req, "if-none-match");
    const char *ims;
    time_t t;

    if (inm)
        return cn__etag_match(inm, etag);
    ims = cn_req_header(req, "if-modified-since");
    return ims && cn__parse_http_date(ims, &t) && mtime <= t;
}

/* bytes [off, off + n) of fd as the body, `status` (200 or 206). */
static int send_bytes(cn_req *req, cn_res *res, int fd, uint64_t off, uint64_t n, int status,
                      const char *ctype)
{
    read_job j = {.fd = fd, .off = off};
    int rc;

    if (n <= WHOLE_MAX && req->method != CN__M_HEAD) {
        j.buf = cn_req_alloc(req, (size_t)n + 1);
        j.n = (size_t)n;
        if (j.buf == NULL)
            return CN_ENOMEM;
        rc = n ? cn_to_thread(read_piece, &j) : 0;
        if (rc < 0)
            return rc;
        if (j.err)
            return -j.err; /* nothing went out yet: a 500 */
        return cn_res_bytes(res, status, j.buf, j.n, ctype);
    }
    /* a stream of a known length: Content-Length, each piece read when the
     * client has taken the one before (cn_res_stream_write parks) */
    cn__res_stream_size(res, (size_t)n);
    rc = cn_res_stream_begin(res, status, ctype);
    if (rc < 0 || req->method == CN__M_HEAD)
        return rc;
    j.buf = cn_req_alloc(req, PIECE);
    if (j.buf == NULL)
        return CN_ENOMEM;
    while (n > 0) {
        j.n = n < PIECE ? (size_t)n : PIECE;
        rc = cn_to_thread(read_piece, &j);
        if (rc < 0)
            return rc;
        if (j.err) {
            /* the head is out: closing the connection is all there is */
            cn_req_log(req, CN_LOG_ERROR, "static file %s: read failed at byte %llu: %s",
                       cn_req_path(req), (unsigned long long)j.off, strerror(j.err));
            return -j.err;
        }
        rc = cn_res_stream_write(res, j.buf, j.n);
        if (rc < 0)
            return rc;
        j.off += j.n;
        n -= j.n;
    }
    return cn_res_stream_end(res);
}

static int not_found(cn_res *res)
{
    return cn_res_error(res, 404, NULL);
}

static int static_get(cn_req *req, cn_res *res)
{
    const mount *m = cn_req_route_data(req);
    const char *path = cn_req_param(req, "path");
    open_job j = {.m = m, .path = path, .fd = -1};
    char etag[64], lm[32], cr[80];
    const char *range, *ctype;
    uint64_t size, first = 0, last = 0;
    int rc, status = 200;

    if (path == NULL || !cn__static_path_ok(path, strlen(path)))
        return not_found(res);
    /* a plain GET will want the bytes of a small file: read them at once */
    if (req->method == CN__M_GET && !cn_req_header(req, "range") &&
        !cn_req_header(req, "if-none-match") && !cn_req_header(req, "if-modified-since") &&
        (j.pre = cn_req_alloc(req, PREREAD_MAX)) == NULL)
        return CN_ENOMEM;
    rc = cn_to_thread(open_file, &j);
    if (rc < 0) {
        /* cancelled while it ran: what it opened is ours to close */
        if (j.fd >= 0)
            close(j.fd);
        return rc;
    }
    if (j.fd >= 0 && cn_req_defer(req, close_fd, (void *)(intptr_t)j.fd) < 0) {
        close(j.fd);
        return CN_ENOMEM;
    }
    if (j.dir && m->html) {
        /* "/docs" -> "/docs/", so that the index's relative links work */
        const char *t = cn_req_target(req);
        size_t plen = strcspn(t, "?");
        char *loc = cn_req_sprintf(req, "%.*s/%s", (int)plen, t, t + plen);
        if (loc == NULL)
            return CN_ENOMEM;
        return cn__res_redirect(res, 307, loc);
    }
    if (j.fd < 0 || !S_ISREG(j.st.st_mode))
        return not_found(res);
    size = (uint64_t)j.st.st_size;
    snprintf(etag, sizeof etag, "\"%llx-%llx\"", (unsigned long long)j.st.st_mtime,
             (unsigned long long)size);
    cn__imf_date(j.st.st_mtime, lm);
    if ((rc = cn_res_header(res, "Last-Modified", lm)) < 0 ||
        (rc = cn_res_header(res, "ETag", etag)) < 0 ||
        (rc = cn_res_header(res, "Accept-Ranges", "bytes")) < 0 ||
        (m->cache_control && (rc = cn_res_header(res, "Cache-Control", m->cache_control)) < 0))
        return rc;
    if (not_modified(req, etag, j.st.st_mtime))
        return cn_res_bytes(res, 304, "", 0, NULL);
    range = cn_req_header(req, "range");
    if (range && if_range_ok(req, etag, j.st.st_mtime)) {
        switch (cn__parse_range(range, size, &first, &last)) {
        case CN__RANGE_UNSATISFIABLE:
            snprintf(cr, sizeof cr, "bytes */%llu", (unsigned long long)size);
            rc = cn_res_header(res, "Content-Range", cr);
            return rc < 0 ? rc : cn_res_error(res, 416, NULL);
        case CN__RANGE_OK:
            snprintf(cr, sizeof cr, "bytes %llu-%llu/%llu", (unsigned long long)first,
                     (unsigned long long)last, (unsigned long long)size);
            if ((rc = cn_res_header(res, "Content-Range", cr)) < 0)
                return rc;
            status = 206;
            break;
        default:
            break;
        }
    }
    if (status == 200)
        last = size ? size - 1 : 0;
    ctype = cn__mime_type(j.index ? "index.html" : path);
    if (status == 200 && j.pre_ok)
        return cn_res_bytes(res, 200, j.pre, (size_t)size, ctype);
    return send_bytes(req, res, j.fd, first, size ? last - first + 1 : 0, status, ctype);
}

int cn_app_static(cn_app *app, const char *prefix, const char *dir, const cn_static_opts *opts)
{
    size_t plen;
    char *spec;
    mount *m;
    int rc;

    if (app == NULL || dir == NULL)
        return CN_EINVAL;
    if (prefix == NULL)
        prefix = "";
    plen = strlen(prefix);
    if ((plen > 0 && (prefix[0] != '/' || prefix[plen - 1] == '/')) || strpbrk(prefix, "{}?# "))
        return CN_EINVAL;
    if (!cn__app_is_new(app))
        return CN_ESTATE;
    m = calloc(1, sizeof(*m));
    if (m == NULL)
        return CN_ENOMEM;
    m->root = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (m->root < 0) {
        rc = errno == ENOTDIR ? CN_EINVAL : -errno;
        free(m);
        return rc;
    }
    m->html = opts && opts->html;
    if (opts && opts->cache_control && (m->cache_control = strdup(opts->cache_control)) == NULL) {
        mount_free(m);
        return CN_ENOMEM;
    }
    rc = cn__app_adopt(app, mount_free, m);
    if (rc < 0) {
        mount_free(m);
        return rc;
    }
    spec = malloc(plen + sizeof "GET /{path:path}");
    if (spec == NULL)
        return CN_ENOMEM;
    snprintf(spec, plen + sizeof "GET /{path:path}", "GET %s/{path:path}", prefix);
    /* a mount, as in FastAPI: not an operation of the OpenAPI document */
    rc = cn_app_route_ex(app, spec, static_get, m, &(cn_route_opts){.hidden = 1});
    free(spec);
    return rc;
}
