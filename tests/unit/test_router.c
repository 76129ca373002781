/* test_router.c -- route specs, the segment trie, 404/405/400 and HEAD. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "router.h"

typedef struct fixture {
    cn__router *r;
    cn__arena arena;
    cn__match m;
} fixture;

static int handler(cn_req *req, cn_res *res)
{
    (void)req;
    (void)res;
    return 0;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    f->r = cn__router_new();
    if (f->r == NULL) {
        free(f);
        return -1;
    }
    cn__arena_init(&f->arena, NULL, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;

    cn__router_free(f->r);
    cn__arena_free(&f->arena);
    free(f);
    return 0;
}

static void add(fixture *f, const char *spec)
{
    assert_int_equal(cn__router_add(f->r, spec, handler, NULL, NULL, NULL), 0);
}

static int match(fixture *f, int method, const char *path)
{
    memset(&f->m, 0xee, sizeof f->m); /* no stale fields survive a call */
    return cn__router_match(f->r, method, path, strlen(path), &f->arena, &f->m);
}

/* Match and expect the route whose pattern is `pattern`. */
static void want_route(fixture *f, int method, const char *path, const char *pattern)
{
    assert_int_equal(match(f, method, path), 0);
    assert_non_null(f->m.route);
    assert_string_equal(f->m.route->pattern, pattern);
}

static void want_param(const fixture *f, unsigned i, const char *name, const char *value)
{
    assert_true(i < f->m.nparams);
    assert_string_equal(f->m.params[i].name, name);
    assert_string_equal(f->m.params[i].value, value);
    assert_int_equal(f->m.params[i].len, strlen(value));
}

static const char *allow_text(unsigned allow, char *buf, size_t size)
{
    size_t n = cn__allow_header(allow, buf, size);
    assert_int_equal(n, strlen(buf));
    return buf;
}

/* ---- methods ----------------------------------------------------------- */

static void method_names_round_trip(void **state)
{
    static const char *const names[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};

    (void)state;
    for (int m = 0; m < CN__M_COUNT; m++) {
        assert_int_equal(cn__method_index(names[m], strlen(names[m])), m);
        assert_string_equal(cn__method_name(m), names[m]);
    }
    assert_int_equal(cn__method_index("get", 3), -1);
    assert_int_equal(cn__method_index("TRACE", 5), -1);
    assert_int_equal(cn__method_index("GE", 2), -1);
    assert_int_equal(cn__method_index("GETS", 4), -1);
    assert_int_equal(cn__method_index("", 0), -1);
    assert_string_equal(cn__method_name(-1), "?");
    assert_string_equal(cn__method_name(CN__M_COUNT), "?");
}

/* ---- matching ---------------------------------------------------------- */

static void literal_routes_match_exactly(void **state)
{
    fixture *f = *state;

    add(f, "GET /users");
    add(f, "GET /users/list");
    want_route(f, CN__M_GET, "/users", "/users");
    assert_int_equal(f->m.nparams, 0);
    want_route(f, CN__M_GET, "/users/list", "/users/list");
    assert_int_equal(match(f, CN__M_GET, "/user"), 404);
    assert_int_equal(match(f, CN__M_GET, "/usersx"), 404);
    assert_int_equal(match(f, CN__M_GET, "/users/list/more"), 404);
    assert_int_equal(match(f, CN__M_GET, "/Users"), 404); /* case matters */
}

static void route_keeps_spec_handler_and_data(void **state)
{
    fixture *f = *state;
    int tag;
    cn_route_opts opts = {.mode = CN_ROUTE_SYNC, .stack_size = 65536};

    assert_int_equal(cn__router_add(f->r, "POST /items/{id:int}", handler, &tag, &opts, NULL), 0);
    assert_int_equal(match(f, CN__M_POST, "/items/5"), 0);
    assert_string_equal(f->m.route->spec, "POST /items/{id:int}");
    assert_string_equal(f->m.route->label, "POST /items/{id}");
    assert_string_equal(f->m.route->pattern, "/items/{id:int}");
    assert_int_equal(f->m.route->method, CN__M_POST);
    assert_ptr_equal(f->m.route->fn, handler);
    assert_ptr_equal(f->m.route->data, &tag);
    assert_int_equal(f->m.route->opts.mode, CN_ROUTE_SYNC);
    assert_int_equal(f->m.route->opts.stack_size, 65536);
}

static void spec_is_copied(void **state)
{
    fixture *f = *state;
    char spec[] = "GET /copied";

    assert_int_equal(cn__router_add(f->r, spec, handler, NULL, NULL, NULL), 0);
    memset(spec, 'x', sizeof spec - 1);
    want_route(f, CN__M_GET, "/copied", "/copied");
}

static void params_are_captured_by_name(void **state)
{
    fixture *f = *state;

    add(f, "GET /users/{uid}/posts/{post_id}");
    want_route(f, CN__M_GET, "/users/42/posts/hello", "/users/{uid}/posts/{post_id}");
    assert_int_equal(f->m.nparams, 2);
    want_param(f, 0, "uid", "42");
    want_param(f, 1, "post_id", "hello");
    assert_int_equal(f->m.route->nparams, 2);
}

static void typed_int_params_are_captured_as_strings(void **state)
{
    fixture *f = *state;

    add(f, "GET /items/{id:int}");
    add(f, "GET /names/{name:str}");
    want_route(f, CN__M_GET, "/items/-17", "/items/{id:int}");
    want_param(f, 0, "id", "-17");
    assert_int_equal(f->m.route->param_types[0], CN__PARAM_INT);
    /* conversion is not the router's job: "abc" still matches (422 later) */
    want_route(f, CN__M_GET, "/items/abc", "/items/{id:int}");
    want_param(f, 0, "id", "abc");
    want_route(f, CN__M_GET, "/names/bob", "/names/{name:str}");
    assert_int_equal(f->m.route->param_types[0], CN__PARAM_STR);
}

static void param_needs_a_non_empty_segment(void **state)
{
    fixture *f = *state;

    add(f, "GET /users/{id}");
    assert_int_equal(match(f, CN__M_GET, "/users/"), 404);
    assert_int_equal(match(f, CN__M_GET, "/users"), 404);
    assert_int_equal(match(f, CN__M_GET, "/users/1/2"), 404);
}

static void literal_beats_param(void **state)
{
    fixture *f = *state;

    add(f, "GET /users/{id}"); /* registered first, still loses */
    add(f, "GET /users/me");
    want_route(f, CN__M_GET, "/users/me", "/users/me");
    assert_int_equal(f->m.nparams, 0);
    want_route(f, CN__M_GET, "/users/you", "/users/{id}");
    want_param(f, 0, "id", "you");
}

static void backtracking_from_a_dead_literal_branch(void **state)
{
    fixture *f = *state;

    add(f, "GET /a/{x}/c");
    add(f, "GET /a/b/d");
    want_route(f, CN__M_GET, "/a/b/c", "/a/{x}/c");
    want_param(f, 0, "x", "b");
    want_route(f, CN__M_GET, "/a/b/d", "/a/b/d");
    assert_int_equal(f->m.nparams, 0);
    want_route(f, CN__M_GET, "/a/z/c", "/a/{x}/c");
    assert_int_equal(match(f, CN__M_GET, "/a/z/d"), 404);
}

static void backtracking_restores_param_values(void **state)
{
    fixture *f = *state;

    add(f, "GET /{a}/{b}/x");
    add(f, "GET /{a}/lit/y");
    want_route(f, CN__M_GET, "/1/lit/x", "/{a}/{b}/x");
    assert_int_equal(f->m.nparams, 2);
    want_param(f, 0, "a", "1");
    want_param(f, 1, "b", "lit");
    want_route(f, CN__M_GET, "/1/lit/y", "/{a}/lit/y");
    assert_int_equal(f->m.nparams, 1);
    want_param(f, 0, "a", "1");
}

static void backtracking_to_a_method_match(void **state)
{
    /* the literal path exists but only for POST; GET continues to the param */
    fixture *f = *state;

    add(f, "POST /a/b");
    add(f, "GET /a/{x}");
    want_route(f, CN__M_GET, "/a/b", "/a/{x}");
    want_param(f, 0, "x", "b");
    want_route(f, CN__M_POST, "/a/b", "/a/b");
}

static void params_take_the_route_names(void **state)
{
    /* two routes share one param node with different names */
    fixture *f = *state;

    add(f, "GET /u/{id}");
    add(f, "DELETE /u/{user}");
    want_route(f, CN__M_GET, "/u/7", "/u/{id}");
    want_param(f, 0, "id", "7");
    want_route(f, CN__M_DELETE, "/u/7", "/u/{user}");
    want_param(f, 0, "user", "7");
}

static void unknown_paths_are_404(void **state)
{
    fixture *f = *state;

    add(f, "GET /a");
    assert_int_equal(match(f, CN__M_GET, "/b"), 404);
    assert_null(f->m.route);
    assert_int_equal(match(f, CN__M_GET, ""), 404);
    assert_int_equal(match(f, CN__M_GET, "a"), 404);
    assert_int_equal(match(f, CN__M_GET, "*"), 404);
    assert_int_equal(match(f, CN__M_GET, "http://x/a"), 404);
}

static void empty_router_gives_404(void **state)
{
    fixture *f = *state;

    assert_int_equal(match(f, CN__M_GET, "/"), 404);
    assert_int_equal(match(f, CN__M_GET, "/x/y"), 404);
}

static void prefix_of_a_route_is_404_not_405(void **state)
{
    /* intermediate trie nodes hold no route for any method */
    fixture *f = *state;

    add(f, "GET /a/b/c");
    assert_int_equal(match(f, CN__M_GET, "/a/b"), 404);
    assert_int_equal(match(f, CN__M_POST, "/a/b"), 404);
}

static void match_uses_only_len_bytes(void **state)
{
    /* the path is a view into the request buffer, not NUL-terminated */
    fixture *f = *state;
    const char *buf = "/a/b?x=1";

    add(f, "GET /a");
    add(f, "GET /a/b");
    assert_int_equal(cn__router_match(f->r, CN__M_GET, buf, 2, &f->arena, &f->m), 0);
    assert_string_equal(f->m.route->pattern, "/a");
    assert_int_equal(cn__router_match(f->r, CN__M_GET, buf, 4, &f->arena, &f->m), 0);
    assert_string_equal(f->m.route->pattern, "/a/b");
}

static void very_deep_paths_are_404(void **state)
{
    fixture *f = *state;
    char path[2 * (CN__MAX_SEGMENTS + 10) + 1];

    add(f, "GET /a");
    for (size_t i = 0; i < CN__MAX_SEGMENTS + 10; i++)
        memcpy(path + 2 * i, "/a", 2);
    path[sizeof path - 1] = 0;
    assert_int_equal(match(f, CN__M_GET, path), 404);
}

static void wrong_method_is_405_with_allow_mask(void **state)
{
    fixture *f = *state;
    char buf[64];

    add(f, "GET /r");
    add(f, "POST /r");
    assert_int_equal(match(f, CN__M_DELETE, "/r"), 405);
    assert_null(f->m.route);
    assert_int_equal(f->m.allow, (1u << CN__M_GET) | (1u << CN__M_HEAD) | (1u << CN__M_POST));
    assert_string_equal(allow_text(f->m.allow, buf, sizeof buf), "GET, HEAD, POST");
}

static void allow_without_get_has_no_head(void **state)
{
    fixture *f = *state;
    char buf[64];

    add(f, "PUT /x");
    add(f, "DELETE /x");
    assert_int_equal(match(f, CN__M_GET, "/x"), 405);
    assert_string_equal(allow_text(f->m.allow, buf, sizeof buf), "PUT, DELETE");
    assert_int_equal(match(f, CN__M_HEAD, "/x"), 405);
    assert_string_equal(allow_text(f->m.allow, buf, sizeof buf), "PUT, DELETE");
}

static void unknown_method_on_a_known_path_is_405(void **state)
{
    fixture *f = *state;
    char buf[64];

    add(f, "GET /r");
    assert_int_equal(match(f, -1, "/r"), 405);
    assert_string_equal(allow_text(f->m.allow, buf, sizeof buf), "GET, HEAD");
    assert_int_equal(match(f, -1, "/nope"), 404);
}

/*
 * RFC 9110 15.5.6: a 405 MUST list the target resource's supported methods.
 * With "POST /a/b" and "GET /a/{x}", GET /a/b is served (by the param route),
 * so DELETE /a/b must answer Allow: GET, HEAD, POST -- not only the methods
 * of the first node whose path matched.
 */
static void allow_mask_covers_every_route_matching_the_path(void **state)
{
    fixture *f = *state;
    char buf[64];

    add(f, "POST /a/b");
    add(f, "GET /a/{x}");
    want_route(f, CN__M_GET, "/a/b", "/a/{x}"); /* GET really is supported */
    assert_int_equal(match(f, CN__M_DELETE, "/a/b"), 405);
    assert_string_equal(allow_text(f->m.allow, buf, sizeof buf), "GET, HEAD, POST");
}

static void allow_header_text(void **state)
{
    char buf[64];

    (void)state;
    assert_string_equal(allow_text(0, buf, sizeof buf), "");
    assert_string_equal(allow_text(1u << CN__M_OPTIONS, buf, sizeof buf), "OPTIONS");
    assert_string_equal(allow_text((1u << CN__M_COUNT) - 1, buf, sizeof buf),
                        "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS");
}

static void allow_header_never_overflows(void **state)
{
    const char *full = "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS";
    unsigned all = (1u << CN__M_COUNT) - 1;

    (void)state;
    assert_int_equal(cn__allow_header(all, NULL, 0), 0);
    for (size_t size = 1; size <= strlen(full) + 1; size++) {
        char *buf = malloc(size); /* exact size, for ASan */
        size_t n;
        assert_non_null(buf);
        n = cn__allow_header(all, buf, size);
        assert_true(n < size);
        assert_int_equal(strlen(buf), n);
        assert_memory_equal(buf, full, n); /* a prefix of the whole text */
        free(buf);
    }
}

static void head_falls_back_to_get(void **state)
{
    fixture *f = *state;

    add(f, "GET /h/{id}");
    want_route(f, CN__M_HEAD, "/h/1", "/h/{id}");
    assert_int_equal(f->m.route->method, CN__M_GET);
    want_param(f, 0, "id", "1");
}

static void explicit_head_route_wins_over_get(void **state)
{
    fixture *f = *state;

    add(f, "GET /h");
    add(f, "HEAD /h");
    assert_int_equal(match(f, CN__M_HEAD, "/h"), 0);
    assert_int_equal(f->m.route->method, CN__M_HEAD);
    assert_int_equal(match(f, CN__M_GET, "/h"), 0);
    assert_int_equal(f->m.route->method, CN__M_GET);
}

static void head_on_a_post_only_path_is_405(void **state)
{
    fixture *f = *state;

    add(f, "POST /p");
    assert_int_equal(match(f, CN__M_HEAD, "/p"), 405);
    assert_int_equal(f->m.allow, 1u << CN__M_POST);
}

/* ---- registration errors ------------------------------------------------ */

static void duplicate_route_is_eexist(void **state)
{
    fixture *f = *state;

    add(f, "GET /d/{id}");
    assert_int_equal(cn__router_add(f->r, "GET /d/{id}", handler, NULL, NULL, NULL), CN_EEXIST);
    /* same shape, other parameter name or type */
    assert_int_equal(cn__router_add(f->r, "GET /d/{other}", handler, NULL, NULL, NULL), CN_EEXIST);
    assert_int_equal(cn__router_add(f->r, "GET /d/{id:int}", handler, NULL, NULL, NULL), CN_EEXIST);
    /* the original is untouched; another method on the same shape is fine */
    want_route(f, CN__M_GET, "/d/5", "/d/{id}");
    want_param(f, 0, "id", "5");
    add(f, "PUT /d/{id}");
    add(f, "GET /d");
}

static void duplicate_root_is_eexist(void **state)
{
    fixture *f = *state;

    add(f, "GET /");
    assert_int_equal(cn__router_add(f->r, "GET /", handler, NULL, NULL, NULL), CN_EEXIST);
}

static void malformed_specs_are_ebadpattern(void **state)
{
    static const char *const bad[] = {
        "",                 /* nothing */
        "/a",               /* no method */
        "GET",              /* no path */
        "GET ",             /* empty path */
        "FETCH /a",         /* unknown method */
        "get /a",           /* methods are upper case */
        "GET a",            /* no leading slash */
        "GET  /a",          /* two spaces: the path does not start with '/' */
        "GET /{",           /* unterminated */
        "GET /{}",          /* empty name */
        "GET /{1x}",        /* name starts with a digit */
        "GET /{a-b}",       /* not an identifier */
        "GET /{a:float}",   /* unknown type */
        "GET /{a:}",        /* empty type */
        "GET /{:int}",      /* empty name with a type */
        "GET /{a:int:x}",   /* junk after the type */
        "GET /{a}/{a}",     /* duplicate names */
        "GET /{a}/{a:int}", /* the same name, once typed */
        "GET /x{a}",        /* a param must be a whole segment */
        "GET /{a}x",
        "GET /{a}}",
        "GET /{{a}",
        "GET /a}",
        "GET /a{",
    };
    fixture *f = *state;

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = cn__router_add(f->r, bad[i], handler, NULL, NULL, NULL);
        if (rc != CN_EBADPATTERN)
            fail_msg("spec \"%s\": got %d, want CN_EBADPATTERN", bad[i], rc);
    }
    /* nothing half-registered matches */
    assert_int_equal(match(f, CN__M_GET, "/a"), 404);
    assert_int_equal(match(f, CN__M_GET, "/x"), 404);
}

static void too_many_params_is_ebadpattern(void **state)
{
    fixture *f = *state;
    char spec[512], path[256];
    int n = snprintf(spec, sizeof spec, "GET");
    int pn = 0;

    for (int i = 0; i < CN__MAX_PARAMS; i++) {
        n += snprintf(spec + n, sizeof spec - (size_t)n, "%s{p%d}", i ? "/" : " /", i);
        pn += snprintf(path + pn, sizeof path - (size_t)pn, "/%d", i);
    }
    /* exactly CN__MAX_PARAMS is allowed and all are captured */
    add(f, spec);
    assert_int_equal(match(f, CN__M_GET, path), 0);
    assert_int_equal(f->m.nparams, CN__MAX_PARAMS);
    want_param(f, CN__MAX_PARAMS - 1, "p15", "15");
    /* one more is refused */
    snprintf(spec + n, sizeof spec - (size_t)n, "/{p%d}", CN__MAX_PARAMS);
    assert_int_equal(cn__router_add(f->r, spec, handler, NULL, NULL, NULL), CN_EBADPATTERN);
}

static void null_spec_or_handler_is_einval(void **state)
{
    fixture *f = *state;

    assert_int_equal(cn__router_add(f->r, NULL, handler, NULL, NULL, NULL), CN_EINVAL);
    assert_int_equal(cn__router_add(f->r, "GET /a", NULL, NULL, NULL, NULL), CN_EINVAL);
}

static void valid_param_names(void **state)
{
    fixture *f = *state;

    add(f, "GET /a/{_}");
    add(f, "GET /b/{x1}");
    add(f, "GET /c/{Snake_Case_9}");
    add(f, "GET /d/{n:str}");
    want_route(f, CN__M_GET, "/c/v", "/c/{Snake_Case_9}");
    want_param(f, 0, "Snake_Case_9", "v");
}

/* ---- encoding ------------------------------------------------------------ */

static void percent_encoded_segments_match_decoded(void **state)
{
    fixture *f = *state;

    add(f, "GET /hello world");
    add(f, "GET /caf\xc3\xa9");
    want_route(f, CN__M_GET, "/hello%20world", "/hello world");
    want_route(f, CN__M_GET, "/hello world", "/hello world");
    want_route(f, CN__M_GET, "/caf%C3%A9", "/caf\xc3\xa9");
    want_route(f, CN__M_GET, "/caf%c3%a9", "/caf\xc3\xa9");
    /* '+' is not a space in a path */
    assert_int_equal(match(f, CN__M_GET, "/hello+world"), 404);
}

static void encoded_letters_match_literals(void **state)
{
    fixture *f = *state;

    add(f, "GET /users/me");
    want_route(f, CN__M_GET, "/%75sers/m%65", "/users/me");
}

static void params_are_decoded(void **state)
{
    fixture *f = *state;

    add(f, "GET /files/{name}");
    want_route(f, CN__M_GET, "/files/a%20b", "/files/{name}");
    want_param(f, 0, "name", "a b");
    /* an encoded slash is data, not a separator */
    want_route(f, CN__M_GET, "/files/a%2Fb", "/files/{name}");
    want_param(f, 0, "name", "a/b");
    want_route(f, CN__M_GET, "/files/a+b", "/files/{name}");
    want_param(f, 0, "name", "a+b");
}

static void bad_escapes_are_400(void **state)
{
    fixture *f = *state;

    add(f, "GET /a");
    add(f, "GET /f/{x}");
    assert_int_equal(match(f, CN__M_GET, "/a%zz"), 400);
    assert_int_equal(match(f, CN__M_GET, "/a%2"), 400);
    assert_int_equal(match(f, CN__M_GET, "/a%"), 400);
    assert_int_equal(match(f, CN__M_GET, "/f/%00"), 400);
    assert_int_equal(match(f, CN__M_GET, "/nowhere/%zz"), 400);
}

/* ---- shapes -------------------------------------------------------------- */

static void root_route(void **state)
{
    fixture *f = *state;

    add(f, "GET /");
    want_route(f, CN__M_GET, "/", "/");
    assert_int_equal(f->m.nparams, 0);
    assert_int_equal(match(f, CN__M_GET, "//"), 404);
    assert_int_equal(match(f, CN__M_GET, "/x"), 404);
    assert_int_equal(match(f, CN__M_POST, "/"), 405);
}

static void root_param_does_not_match_root(void **state)
{
    fixture *f = *state;

    add(f, "GET /{x}");
    assert_int_equal(match(f, CN__M_GET, "/"), 404);
    want_route(f, CN__M_GET, "/v", "/{x}");
}

static void trailing_slash_is_a_distinct_route(void **state)
{
    fixture *f = *state;

    add(f, "GET /a");
    assert_int_equal(match(f, CN__M_GET, "/a/"), 404);
    add(f, "GET /a/");
    want_route(f, CN__M_GET, "/a/", "/a/");
    want_route(f, CN__M_GET, "/a", "/a");
}

static void scaling_ten_thousand_routes(void **state)
{
    /*
     * Correctness only (timing belongs in bench/): with 10,000 sibling
     * literals every one still resolves to its own route, and near misses do
     * not. Matching each of them runs in well under the test timeout only if
     * a match does not scan all routes.
     */
    enum { N = 10000 };
    fixture *f = *state;
    static int tags[N];
    char spec[64], path[64];

    for (int i = 0; i < N; i++) {
        snprintf(spec, sizeof spec, "GET /r%d/x", i);
        assert_int_equal(cn__router_add(f->r, spec, handler, &tags[i], NULL, NULL), 0);
    }
    for (int i = 0; i < N; i++) {
        snprintf(path, sizeof path, "/r%d/x", i);
        assert_int_equal(match(f, CN__M_GET, path), 0);
        assert_ptr_equal(f->m.route->data, &tags[i]);
        snprintf(spec, sizeof spec, "/r%d/x", i);
        assert_string_equal(f->m.route->pattern, spec);
        if (i % 64 == 0) { /* keep the arena small */
            cn__arena_free(&f->arena);
            cn__arena_init(&f->arena, NULL, 0);
        }
    }
    assert_int_equal(match(f, CN__M_GET, "/r10000/x"), 404);
    assert_int_equal(match(f, CN__M_GET, "/r5000/y"), 404);
    assert_int_equal(match(f, CN__M_GET, "/r5000"), 404);
    assert_int_equal(match(f, CN__M_GET, "/r/x"), 404);
    assert_int_equal(match(f, CN__M_POST, "/r9999/x"), 405);
    assert_int_equal(cn__router_add(f->r, "GET /r1234/x", handler, NULL, NULL, NULL), CN_EEXIST);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(method_names_round_trip),
        T(literal_routes_match_exactly),
        T(route_keeps_spec_handler_and_data),
        T(spec_is_copied),
        T(params_are_captured_by_name),
        T(typed_int_params_are_captured_as_strings),
        T(param_needs_a_non_empty_segment),
        T(literal_beats_param),
        T(backtracking_from_a_dead_literal_branch),
        T(backtracking_restores_param_values),
        T(backtracking_to_a_method_match),
        T(params_take_the_route_names),
        T(unknown_paths_are_404),
        T(empty_router_gives_404),
        T(prefix_of_a_route_is_404_not_405),
        T(match_uses_only_len_bytes),
        T(very_deep_paths_are_404),
        T(wrong_method_is_405_with_allow_mask),
        T(allow_without_get_has_no_head),
        T(unknown_method_on_a_known_path_is_405),
        T(allow_mask_covers_every_route_matching_the_path),
        cmocka_unit_test(allow_header_text),
        cmocka_unit_test(allow_header_never_overflows),
        T(head_falls_back_to_get),
        T(explicit_head_route_wins_over_get),
        T(head_on_a_post_only_path_is_405),
        T(duplicate_route_is_eexist),
        T(duplicate_root_is_eexist),
        T(malformed_specs_are_ebadpattern),
        T(too_many_params_is_ebadpattern),
        T(null_spec_or_handler_is_einval),
        T(valid_param_names),
        T(percent_encoded_segments_match_decoded),
        T(encoded_letters_match_literals),
        T(params_are_decoded),
        T(bad_escapes_are_400),
        T(root_route),
        T(root_param_does_not_match_root),
        T(trailing_slash_is_a_distinct_route),
        T(scaling_ten_thousand_routes),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
