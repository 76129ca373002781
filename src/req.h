/*
 * req.h -- the request and response objects (internal side). The connection
 * layer builds a request through these functions; handlers see it only
 * through the cn_req_* / cn_res_* API in canteen.h.
 */
#ifndef CN_REQ_H
#define CN_REQ_H

#include <stdbool.h>

#include "arena.h"
#include "buf.h"
#include "canteen.h"
#include "forwarded.h"
#include "router.h"

typedef struct cn__hdr {
    const char *name;
    size_t nlen;
    const char *value;
    size_t vlen;
} cn__hdr;

struct cn_res {
    int status;
    cn__hdr *headers;
    unsigned nheaders, hcap;
    const char *body;
    size_t body_len; /* set, or (streamed) written so far */
    const char *content_type;
    bool body_set;  /* a body was set or a stream begun */
    bool head_sent; /* serialised (a stream's head, or the whole response):
                     * nothing can change any more */
    int stream;     /* CN__STREAM_* */
    /* a stream of a known length (static files): Content-Length, no chunks */
    bool sized;
    size_t size;
    /* a body filter set by a middleware before cn_next (filter.h) */
    const struct cn__filter *filter;
    void *filter_ctx;
    bool filter_on; /* it takes this stream's bytes */
};

/* Where a streamed response is (cn_res_stream_*). */
enum { CN__STREAM_NONE, CN__STREAM_OPEN, CN__STREAM_ENDED };

typedef struct cn__defer cn__defer;
struct cn__run;
struct cn__dep_entry;

struct cn_req {
    cn__arena arena;
    cn_app *app;
    void *owner; /* the connection (opaque here) */
    int method;  /* CN__M_* or -1 for a method no route can have */
    const char *method_name;
    char *target; /* raw target, NUL-terminated */
    size_t target_len;
    char *path; /* decoded path */
    const char *query;
    size_t query_len;
    cn__hdr *headers;
    unsigned nheaders, hcap;
    char *body;
    size_t body_len, body_cap;
    int http_major, http_minor;
    cn__match match;
    const struct cn__req_io *io;    /* how the response gets out (dispatch.h); NULL once sent */
    struct cn_task *task;           /* the root task, until the request is answered */
    struct cn__run *run;            /* dispatch's state while its chain runs (dispatch.c) */
    struct cn__dep_entry *deps;     /* every dependency asked for, newest first (depends.c) */
    struct cn__dep_entry *resolved; /* those that resolved, newest first: cleanup order */
    char *id;                       /* cn_req_set_id, or NULL */
    bool deps_closed;               /* the dependencies' cleanups have run */
    struct cn__value *valid;        /* declared parameters' values (validate.c) */
    cn__addr peer;                  /* the connection's peer (family 0: none) */
    cn__addr client;                /* the client, once resolved (forwarded.c) */
    bool client_done;
    char *client_host; /* its text, in the arena */
    uint64_t start_ns; /* uv_hrtime() at the request's first byte */
    cJSON *json;
    int json_err;
    cn__defer *defers;
    cn_res res;
};

/* A new request with its arena (one malloc for both). NULL on OOM. */
cn_req *cn__req_new(cn_app *app, void *owner);
/* Run the deferred cleanups, free the JSON tree and the arena, free req. */
void cn__req_free(cn_req *req);

/* Builders used while parsing. Each returns 0 or CN_ENOMEM. */
/* Append to the raw target (it may arrive in pieces). */
int cn__req_set_target(cn_req *req, const char *s, size_t n);
/* Record a header whose NUL-terminated name and value already live in the
 * request's arena (they are not copied). */
int cn__req_add_header(cn_req *req, const char *name, size_t nlen, const char *value, size_t vlen);
int cn__req_append_body(cn_req *req, const char *p, size_t n);
/*
 * Split target into path/query and decode the path: 0, or the status to
 * answer with (400 for a malformed escape or target, 500 when out of
 * memory). An absolute-form target ("http://host/path?q") is made
 * origin-form first, its authority replacing the Host header's value.
 */
int cn__req_finish_head(cn_req *req);
/* A Host field value (or an authority): reg-name, IPv4 or [IPv6], an
 * optional :port. The empty value is valid (RFC 9110 7.2). */
bool cn__valid_host(const char *h, size_t n);

/*
 * Serialise the response (status line, Server, Date, Content-Type,
 * Content-Length, Connection, user headers, body unless HEAD) onto out.
 * 0 or CN_ENOMEM.
 */
int cn__res_serialize(cn_req *req, cn__buf *out, bool keep_alive);
/*
 * Add a header the library has checked already: `name` a token that is not
 * reserved, `value` free of CR, LF and NUL. Neither is copied: both must
 * outlive the response (static, the app's, or the request's arena).
 * Errors: CN_ERESPONDED, CN_ENOMEM.
 */
/* A header the serialiser writes itself (Date, Content-Length, ...). */
bool cn__res_reserved_header(const char *name, size_t n);
int cn__res_header_trusted(cn_res *res, const char *name, size_t nlen, const char *value,
                           size_t vlen);

/*
 * Streamed responses. Start: check and record the status and Content-Type
 * the head will carry (0, CN_ERESPONDED, CN_EINVAL for a status without a
 * body, CN_EBADHEADER, CN_ENOMEM). The body is framed by the request's
 * version: chunked for HTTP/1.1; for HTTP/1.0 the bytes as they are, ended
 * by closing the connection (the only end such a client knows).
 */
int cn__res_stream_start(cn_res *res, int status, const char *content_type);
int cn__res_stream_state(const cn_res *res);
void cn__res_stream_mark_ended(cn_res *res);
bool cn__res_stream_chunked(const cn_req *req);
/* The body's end is marked (chunked, or a known length): the connection
 * may carry another request after it, if the stream was complete. */
bool cn__res_stream_framed(const cn_req *req);
bool cn__res_stream_complete(const cn_req *req);
/* The head (no Content-Length; Transfer-Encoding: chunked when chunked). */
int cn__res_stream_head(cn_req *req, cn__buf *out, bool keep_alive);
/* One piece of body (n > 0), and the end of it. Nothing for HEAD, and no
 * end marker when not chunked. 0 or CN_ENOMEM (out unchanged). */
int cn__res_stream_chunk(cn_req *req, cn__buf *out, const void *p, size_t n);
int cn__res_stream_last(const cn_req *req, cn__buf *out);

/* The request a response belongs to. */
cn_req *cn__res_req(cn_res *res);

/*
 * Replace the response with the canned error response for `err` (400 for
 * the JSON errors; 503 with Retry-After: retry_after_s for the refusals
 * under load, CN_EAGAIN and CN_EEXPIRED; 503 without it for a dependency's
 * CN_EUNAVAILABLE; 500 for anything else), keeping the first `keep`
 * headers (those set before the code that failed ran): 0 or CN_ENOMEM.
 * retry_after_s is the app's cn_config.retry_after_s.
 */
int cn__res_from_error(cn_res *res, int err, unsigned keep, unsigned retry_after_s);

/*
 * A 503 refusal under load: Retry-After: retry_after_s (the only one: a
 * Retry-After already set is dropped) and FastAPI's error body with
 * `detail` (NULL: the reason phrase). 0 or CN_ENOMEM (then still a 503,
 * perhaps without the header).
 */
int cn__res_busy(cn_res *res, const char *detail, unsigned retry_after_s);

/*
 * A complete standalone error response (for requests that never reached a
 * handler: 400, 408, 413, 431, 503...), with Connection: close.
 */
int cn__res_write_simple(cn__buf *out, int status, const char *detail, bool close,
                         const char *extra_headers);

/* The cached IMF-fixdate for the current second ("Sun, 06 Nov 1994 08:49:37 GMT"). */
const char *cn__http_date(void);

#endif
