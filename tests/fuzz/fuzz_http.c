/*
 * fuzz_http.c -- the request path on a fuzzer's bytes: llhttp, conn.c's
 * checks, the router, middleware, declared parameters and bodies, every
 * kind of handler and the response writer, through an in-memory
 * connection (fuzz_app.h).
 *
 * Input: 4 control bytes, then what the client sends.
 *   [0] bit 0: the client goes away once [2..3] (little endian, modulo the
 *       length + 1) bytes are in; bit 1: the run also goes out in one piece
 *       first (the same bytes, fed whole)
 *       bit 2: the client resets the connection: the server's writes fail
 *       once [2..3] bytes of output went out (the hangup's count, when both)
 *   [1] piece size: bytes are fed this many at a time (0: all at once)
 * A response with status 500 is a bug here (the app's handlers never fail
 * on their own), as is a crash, a leak, a hang or bytes that are not a
 * response.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_app.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (cn_fuzz_app() == NULL) {
        fprintf(stderr, "fuzz_http: the app did not start\n");
        abort();
    }
    return 0;
}

static void check(const cn_fuzz_result *r, size_t len, bool hung_up)
{
    if (!r->opened) {
        fprintf(stderr, "fuzz_http: no connection\n");
        abort();
    }
    if (r->out_len > 0 && r->status == 0) {
        fprintf(stderr, "fuzz_http: the output does not start with a status line\n");
        abort();
    }
    if (r->n5xx > 0 && !hung_up) {
        /* 505 (HTTP/2.0 asked for) and 503 are answers; 500 is a failure */
        if (r->status == 500) {
            fprintf(stderr, "fuzz_http: a 500 for %zu bytes of input\n", len);
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cn_fuzz_result r;
    size_t len, hang = SIZE_MAX, reset = SIZE_MAX;
    unsigned flags, chunk;

    if (size < 4)
        return 0;
    flags = data[0];
    chunk = data[1];
    len = size - 4;
    if (flags & 1)
        hang = ((size_t)data[2] | (size_t)data[3] << 8) % (len + 1);
    if (flags & 4)
        reset = (size_t)data[2] | (size_t)data[3] << 8;
    if (flags & 2) {
        cn_fuzz_run(data + 4, len, 0, SIZE_MAX, &r);
        check(&r, len, false);
    }
    cn_fuzz_run_ex(data + 4, len, chunk, hang, reset, &r);
    check(&r, len, hang != SIZE_MAX || reset != SIZE_MAX);
    return 0;
}
