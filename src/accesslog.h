/*
 * accesslog.h -- one line per answered request, in a format compiled once
 * from a template with nginx-style $variables ("uvicorn" and "combined"
 * name the two built-in ones).
 */
#ifndef CN_ACCESSLOG_H
#define CN_ACCESSLOG_H

#include "canteen.h"

typedef struct cn__access cn__access;

/*
 * Compile `fmt` (NULL or "uvicorn": uvicorn's default line; "combined": the
 * NCSA combined log format; anything else is a template). 0, CN_EINVAL
 * (*bad points at the variable that is not known, within fmt), CN_ENOMEM.
 */
int cn__access_compile(const char *fmt, cn__access **out, const char **bad);
void cn__access_free(cn__access *a);

/*
 * Log the line for `req`, answered with its response (status, body
 * length), through Canteen's log at INFO. `worker` is the worker's number,
 * or -1 in a single process. Loop thread.
 */
void cn__access_write(const cn__access *a, cn_req *req, int worker);

/* The same line into buf (at most size bytes, NUL included; no newline):
 * its length (cut short at size - 1). For the tests. */
size_t cn__access_format(const cn__access *a, cn_req *req, int worker, char *buf, size_t size);

#endif
