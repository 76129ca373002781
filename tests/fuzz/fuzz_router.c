/*
 * fuzz_router.c -- the route trie (router.c): registering fuzzer-made
 * specs, and matching fuzzer-made paths against a fixed table and against
 * those specs. Oracles: a match names a route of the right method (HEAD
 * may take GET's), its parameters are as many as the route declares and
 * no longer than the path; a 405 has an Allow mask; nothing else is
 * returned.
 *
 * Input: [0] the method (modulo the count); [1] bit 0: the first line is a
 * spec to register in a router of its own besides the table's; the rest
 * (after that line) is the path, still percent-encoded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "router.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static cn__router *table;

static int handler(cn_req *req, cn_res *res)
{
    (void)req;
    (void)res;
    return 0;
}

static const char *const specs[] = {
    "GET /",
    "GET /items",
    "POST /items",
    "GET /items/{id:int}",
    "PUT /items/{id:int}",
    "DELETE /items/{id:int}",
    "GET /items/{id:int}/tags/{tag}",
    "GET /items/special",
    "GET /users/{name}",
    "PATCH /users/{name}",
    "GET /users/{name}/posts/{post:int}",
    "GET /files/{rest:path}",
    "GET /static/{p:path}",
    "OPTIONS /items",
    "HEAD /only-head",
    "GET /a/b/c/d/e/f/g/h",
    "GET /{x}/{y}/{z}",
    "GET /search?q:str&limit:int=10",
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    table = cn__router_new();
    if (table == NULL)
        abort();
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
        if (cn__router_add(table, specs[i], handler, NULL, NULL, NULL) != 0) {
            fprintf(stderr, "fuzz_router: cannot register %s\n", specs[i]);
            abort();
        }
    return 0;
}

static void match(const cn__router *r, int method, const char *path, size_t len)
{
    char initial[512];
    cn__arena arena;
    cn__match m;
    int st;

    cn__arena_init(&arena, initial, sizeof initial);
    memset(&m, 0, sizeof m);
    st = cn__router_match(r, method, path, len, &arena, &m);
    switch (st) {
    case 0:
        if (m.route == NULL || m.nparams != m.route->nparams || m.nparams > CN__MAX_PARAMS)
            abort();
        if (m.route->method != method && !(method == CN__M_HEAD && m.route->method == CN__M_GET))
            abort();
        for (unsigned i = 0; i < m.nparams; i++) {
            if (m.params[i].value == NULL || m.params[i].len > len ||
                strlen(m.params[i].value) > m.params[i].len)
                abort();
        }
        break;
    case 405:
        if (m.allow == 0 || (m.allow & (1u << method)))
            abort();
        break;
    case 404:
    case 400:
        break;
    default:
        fprintf(stderr, "fuzz_router: match returned %d\n", st);
        abort();
    }
    cn__arena_free(&arena);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p;
    size_t n;
    int method;

    if (size < 2)
        return 0;
    method = data[0] % CN__M_COUNT;
    p = (const char *)data + 2;
    n = size - 2;
    if (data[1] & 1) {
        const char *nl = memchr(p, '\n', n);
        size_t sl = nl ? (size_t)(nl - p) : n;
        char *spec = malloc(sl + 1);
        cn__router *r = cn__router_new();
        if (spec == NULL || r == NULL)
            abort();
        memcpy(spec, p, sl);
        spec[sl] = 0;
        if (cn__router_add(r, spec, handler, NULL, NULL, NULL) == 0) {
            /* the same shape twice is refused */
            if (cn__router_add(r, spec, handler, NULL, NULL, NULL) != CN_EEXIST)
                abort();
        }
        free(spec);
        p += nl ? sl + 1 : sl;
        n -= nl ? sl + 1 : sl;
        match(r, method, p, n);
        cn__router_free(r);
    }
    match(table, method, p, n);
    return 0;
}
