/*
 * fuzz_json.c -- JSON bodies: the fuzzer's bytes as the body of a request
 * to a route with a declared model (validate.c) and to one that parses any
 * JSON (cn_req_json), through the whole request path (fuzz_app.h); and on
 * their own, cJSON's parser against Canteen's checker (jsoncheck.c): valid
 * UTF-8 the checker passes as JSON must parse.
 *
 * Input: [0] bits 0-1: the route (POST /items, POST /echo, POST /sync,
 * PUT /echo); bit 2: chunked; the rest is the body.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "fuzz_app.h"
#include "jsoncheck.h"
#include "json.h" /* cn__json_parse: what cn_req_json does */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (cn_fuzz_app() == NULL) {
        fprintf(stderr, "fuzz_json: the app did not start\n");
        abort();
    }
    return 0;
}

static const char *const targets[] = {"POST /items", "POST /echo", "POST /sync", "PUT /echo"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cn_fuzz_result r;
    const char *body;
    size_t blen, pos = 0;
    const char *msg = NULL;
    cJSON *j = NULL;
    char *req;
    int n;

    if (size < 1)
        return 0;
    body = (const char *)data + 1;
    blen = size - 1;

    /* what the checker passes (on UTF-8), cJSON must parse: cn__json_parse
     * takes a cJSON failure after the checks for out of memory (a 500), so
     * any text the checker lets through and cJSON refuses is a bug */
    if (cn__utf8_valid(body, blen) && cn__json_check(body, blen, &pos, &msg) == 0) {
        int rc = cn__json_parse(body, blen, &j);
        if (rc != 0) {
            fprintf(stderr, "fuzz_json: checked, but not parsed: %s\n", cn_strerror(rc));
            abort();
        }
        cJSON_Delete(j);
    }

    req = malloc(blen * 2 + 256);
    if (req == NULL)
        return 0;
    if (data[0] & 4) {
        n = sprintf(req,
                    "%s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n",
                    targets[data[0] & 3]);
        if (blen > 0) {
            n += sprintf(req + n, "%zx\r\n", blen);
            memcpy(req + n, body, blen);
            n += (int)blen;
            n += sprintf(req + n, "\r\n");
        }
        n += sprintf(req + n, "0\r\n\r\n");
    } else {
        n = sprintf(req,
                    "%s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    "Content-Length: %zu\r\n\r\n",
                    targets[data[0] & 3], blen);
        memcpy(req + n, body, blen);
        n += (int)blen;
    }
    cn_fuzz_run((const uint8_t *)req, (size_t)n, 0, SIZE_MAX, &r);
    free(req);
    if (r.status == 0 || r.status >= 500) {
        fprintf(stderr, "fuzz_json: status %u for a %zu-byte body\n", r.status, blen);
        abort();
    }
    return 0;
}
