/*
 * canteen/static.h -- a directory of files served under a path prefix
 * (Starlette's StaticFiles). Included by canteen.h.
 *
 *     cn_app_static(app, "/static", "/srv/www/static", NULL);
 *     // GET /static/css/site.css -> /srv/www/static/css/site.css
 */
#ifndef CANTEEN_STATIC_H
#define CANTEEN_STATIC_H

#ifdef __cplusplus
extern "C" {
#endif

/* Options for cn_app_static; NULL or all zero: the defaults. */
typedef struct cn_static_opts {
    int html;                  /* a directory serves its index.html ("/docs/" ->
                                * docs/index.html; "/docs" is redirected to "/docs/") */
    const char *cache_control; /* a Cache-Control value for every file ("public,
                                * max-age=3600"), copied; NULL: none */
    void *reserved[6];         /* leave zero */
} cn_static_opts;

/*
 * Serve the files under directory `dir` at `prefix` ("/static": GET and
 * HEAD "/static/<path>"; "" serves them at the root). The directory is
 * opened now and held until the app is freed (renaming it later does not
 * change what is served; its contents may change). `prefix` and `opts` are
 * copied.
 *
 * What a request gets:
 *   - the file's bytes with Content-Type from its extension (text types in
 *     UTF-8; application/octet-stream when unknown), Content-Length,
 *     Last-Modified, ETag ("<mtime>-<size>" in hex) and Accept-Ranges;
 *   - 304 Not Modified when If-None-Match names the ETag (or is "*"), or,
 *     without If-None-Match, when If-Modified-Since is not older than the
 *     file;
 *   - for "Range: bytes=a-b" (or "a-", or "-n"), 206 with Content-Range;
 *     416 with "Content-Range: bytes * /size" (no space) when no byte of
 *     the range exists; several ranges, a malformed one, or an If-Range
 *     that does not match: the whole file, 200;
 *   - HEAD: the same head, no body;
 *   - 404 {"detail":"Not Found"} for anything else: a missing file, a
 *     directory (unless `html`), a special file, and every path that
 *     would leave `dir`: "..", "%2e%2e", "..%2f", a backslash, an empty
 *     segment ("//etc", an absolute path), a symlink that leads outside.
 *     (A NUL, "%00", is refused with 400 before any route is matched.)
 *
 * No file I/O runs on the loop: opening, fstat and reads go to the thread
 * pool (cn_to_thread); a plain GET of a file up to 16 KiB is read in the
 * job that opens it. Small files are read whole; larger ones are sent in
 * 128 KiB pieces, each read when the client has taken the one before (the
 * stream's backpressure), so a file of any size costs about 256 KiB of
 * memory per client. If a read fails once the head is out (an I/O error, a
 * file truncated while it is sent), the connection is closed: the client
 * sees fewer bytes than Content-Length said.
 *
 * Symlinks that stay inside `dir` are followed. On Linux 5.6 and later
 * every open is an openat2(2) with RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
 * so the kernel itself refuses a path that resolves outside, whatever a
 * symlink or a concurrent rename does. Without openat2 (older kernels,
 * seccomp filters that refuse it), each path segment is opened with
 * O_NOFOLLOW: no symlink is followed at all, and those inside `dir` get
 * 404 too.
 *
 * Routes: "GET <prefix>/{path:path}" (HEAD follows GET), so another route
 * under the prefix with a literal path wins over a file. Errors: CN_EINVAL
 * (app or dir NULL, a prefix that does not start with '/' or ends with
 * one), CN_ENOENT / CN_EPERM and other codes from opening `dir` (not a
 * directory: CN_EINVAL), CN_EEXIST (the route is taken), CN_ESTATE (the
 * app runs), CN_ENOMEM.
 */
CN_EXTERN int cn_app_static(cn_app *app, const char *prefix, const char *dir,
                            const cn_static_opts *opts);

#ifdef __cplusplus
}
#endif

#endif
