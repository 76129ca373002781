/*
 * test_declare.c -- declared parameters and bodies, through the in-process
 * test client: every type, constraint, default and error shape, byte for
 * byte as pydantic v2 words it (pydantic-core's error messages), all errors
 * at once in FastAPI's order; the typed getters; the validated body. Then
 * the test client itself: the same requests over a real socket give the
 * same responses, and it runs the lifespan hooks.
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "json.h"

#include "app.h" /* cn__app_free_checked */
#include "demo.h"

/* ---- declarations ---- */

static const char *const colors[] = {"red", "green", "blue", NULL};

static const cn_field search_params[] = {
    {.name = "q", .type = CN_STR, .required = 1, .min_length = 2, .max_length = 8},
    {.name = "limit", .type = CN_INT, .dflt = "10", .ge = CN_NUM(1), .le = CN_NUM(100)},
    {.name = "ratio", .type = CN_FLOAT, .dflt = "0.5", .gt = CN_NUM(0), .lt = CN_NUM(1)},
    {.name = "flag", .type = CN_BOOL, .dflt = "false"},
    {.name = "color", .type = CN_ENUM, .values = colors, .dflt = "red"},
    {.name = "code", .type = CN_STR, .pattern = "^[A-Z]{3}$"},
    {.name = "x-token", .in = CN_HEADER, .type = CN_STR},
    {.name = "visits", .in = CN_COOKIE, .type = CN_INT, .dflt = "0"},
    {0},
};

static const cn_field user_params[] = {
    {.name = "id", .in = CN_PATH, .type = CN_INT, .ge = CN_NUM(1)},
    {.name = "verbose", .type = CN_BOOL},
    {.name = "x-key", .in = CN_HEADER, .type = CN_STR, .required = 1},
    {0},
};

static const cn_field point_fields[] = {
    {.name = "x", .type = CN_INT, .required = 1},
    {.name = "y", .type = CN_INT, .dflt = "0"},
    {0},
};

static const cn_field item_fields[] = {
    {.name = "name", .type = CN_STR, .required = 1, .min_length = 1},
    {.name = "price", .type = CN_FLOAT, .required = 1, .gt = CN_NUM(0)},
    {.name = "qty", .type = CN_INT, .dflt = "1"},
    {.name = "tags",
     .type = CN_ARRAY,
     .items = &(const cn_field){.type = CN_STR},
     .dflt = "[]",
     .max_length = 3},
    {.name = "at", .type = CN_OBJECT, .fields = point_fields, .nullable = 1},
    {.name = "note", .type = CN_STR, .nullable = 1},
    {.name = "paid", .type = CN_BOOL, .dflt = "false"},
    {0},
};

static const cn_field item = {.type = CN_OBJECT,
                              .model = "Item",
                              .required = 1,
                              .fields = item_fields,
                              .extra = CN_EXTRA_FORBID};

/* ---- handlers ---- */

static int search(cn_req *req, cn_res *res)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "q", cn_req_str(req, "q"));
    cJSON_AddNumberToObject(o, "limit", (double)cn_req_int(req, "limit"));
    cJSON_AddNumberToObject(o, "ratio", cn_req_float(req, "ratio"));
    cJSON_AddBoolToObject(o, "flag", cn_req_bool(req, "flag"));
    cJSON_AddStringToObject(o, "color", cn_req_str(req, "color"));
    cJSON_AddBoolToObject(o, "has_code", cn_req_has(req, "code"));
    if (cn_req_has(req, "x-token"))
        cJSON_AddStringToObject(o, "token", cn_req_str(req, "x-token"));
    else
        cJSON_AddNullToObject(o, "token");
    cJSON_AddNumberToObject(o, "visits", (double)cn_req_int(req, "visits"));
    return cn_res_json(res, 200, o);
}

static int get_user(cn_req *req, cn_res *res)
{
    return cn_res_json_str(res, 200,
                           cn_req_sprintf(req, "{\"id\":%lld}", (long long)cn_req_int(req, "id")));
}

static int create_item(cn_req *req, cn_res *res)
{
    cJSON *j;
    int rc = cn_req_json(req, &j);

    return rc < 0 ? rc : cn_res_json(res, 201, cJSON_Duplicate(j, 1));
}

/* "?page:int=1&sort?&tag" declares query parameters in the spec */
static int shorthand(cn_req *req, cn_res *res)
{
    return cn_res_jsonf(res, 200, "{\"page\":%lld,\"sort\":%s,\"tag\":\"%s\",\"rate\":%g}",
                        (long long)cn_req_int(req, "page"),
                        cn_req_has(req, "sort") ? "true" : "false", cn_req_str(req, "tag"),
                        cn_req_float(req, "rate"));
}

static const cn_field rate_param[] = {
    {.name = "rate", .type = CN_FLOAT, .dflt = "0.5", .le = CN_NUM(1)}, {0}};

static const cn_route table[] = {
    /* the declaration of rate wins over the shorthand's */
    {.spec = "GET /v/short?page:int=1&sort:bool?&tag&rate:float=2",
     .fn = shorthand,
     .opts.params = rate_param},
    {0},
};

static int setup(cn_app *app, void *arg)
{
    int rc = 0;

    (void)arg;
    rc = rc ? rc : cn_app_routes(app, table);
    rc = rc ? rc
            : cn_app_route_ex(app, "GET /v/search", search, NULL,
                              &(cn_route_opts){.params = search_params});
    rc = rc ? rc
            : cn_app_route_ex(app, "GET /v/users/{id:int}", get_user, NULL,
                              &(cn_route_opts){.params = user_params});
    rc = rc ? rc
            : cn_app_route_ex(app, "POST /v/items", create_item, NULL,
                              &(cn_route_opts){.body = &item, .status_code = 201});
    return rc;
}

/* ---- the fixture: an app behind a test client, no socket ---- */

typedef struct fixture {
    cn_app *app;
    cn_test_client *tc;
} fixture;

static int fx_setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    cn_config cfg = h_fast_config();

    f->app = cn_app_new(&cfg);
    assert_non_null(f->app);
    assert_int_equal(demo_register(f->app), 0); /* as h_start does */
    assert_int_equal(setup(f->app, NULL), 0);
    assert_int_equal(cn_test_client_new(f->app, &f->tc), 0);
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    fixture *f = *state;

    assert_int_equal(cn_test_client_free(f->tc), 0);
    assert_int_equal(cn__app_free_checked(f->app), 0);
    free(f);
    return 0;
}

/* Answer GET target (with extra headers): status and body must be these. */
static void want_get(void **state, const char *target, const char *const *headers, int status,
                     const char *body)
{
    fixture *f = *state;
    cn_test_response r;

    assert_int_equal(cn_test_request(f->tc, "GET", target, headers, NULL, 0, 0, &r), 0);
    if (r.status != status || strcmp(r.body, body) != 0)
        fail_msg("GET %s:\n  got  %d %s\n  want %d %s", target, r.status, r.body, status, body);
    cn_test_response_free(&r);
}

static void want_post(void **state, const char *body, const char *ctype, int status,
                      const char *want)
{
    fixture *f = *state;
    cn_test_response r;
    char *line = ctype ? h_strf("Content-Type: %s", ctype) : NULL;
    const char *ct[2] = {line, NULL};

    assert_int_equal(cn_test_request(f->tc, "POST", "/v/items", ctype ? ct : NULL, body,
                                     body ? strlen(body) : 0, 0, &r),
                     0);
    free(line);
    if (r.status != status || strcmp(r.body, want) != 0)
        fail_msg("POST %s:\n  got  %d %s\n  want %d %s", body ? body : "(none)", r.status, r.body,
                 status, want);
    cn_test_response_free(&r);
}

#define ERR1(x) "{\"detail\":[" x "]}"

/* ---- parameters ---- */

static void test_defaults_and_getters(void **state)
{
    want_get(state, "/v/search?q=abc", NULL, 200,
             "{\"q\":\"abc\",\"limit\":10,\"ratio\":0.5,\"flag\":false,\"color\":\"red\","
             "\"has_code\":false,\"token\":null,\"visits\":0}");
    want_get(state, "/v/search?q=abc&limit=%2012%20&ratio=.25&flag=Yes&color=blue&code=ABC",
             (const char *const[]){"X-Token: t0k", "Cookie: a=1; visits=\"41\"", NULL}, 200,
             "{\"q\":\"abc\",\"limit\":12,\"ratio\":0.25,\"flag\":true,\"color\":\"blue\","
             "\"has_code\":true,\"token\":\"t0k\",\"visits\":41}");
}

/* pydantic's lax int from a string: signs, zeros, ".0", underscores; not hex, not 1e3. */
static void test_int_parsing(void **state)
{
    static const struct {
        const char *in;
        int64_t want; /* -999: refused */
    } cases[] = {
        {"5", 5},      {"+5", 5},      {"+007", 7},   {"007", 7},   {"5.0", 5},     {"5.000", 5},
        {"1_0", 10},   {"1__0", -999}, {"_1", -999},  {"1_", -999}, {"0x10", -999}, {"1e3", -999},
        {"5.5", -999}, {"", -999},     {"--5", -999}, {"5.", -999},
    };
    fixture *f = *state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cn_test_response r;
        char *target = h_strf("/v/search?q=ab&limit=%s", cases[i].in);
        assert_int_equal(cn_test_get(f->tc, target, &r), 0);
        if (cases[i].want == -999) {
            char *want = h_strf(ERR1("{\"type\":\"int_parsing\",\"loc\":[\"query\",\"limit\"],"
                                     "\"msg\":\"Input should be a valid integer, unable to parse "
                                     "string as an integer\",\"input\":\"%s\"}"),
                                cases[i].in);
            if (r.status != 422 || strcmp(r.body, want))
                fail_msg("limit=%s: %d %s", cases[i].in, r.status, r.body);
            free(want);
        } else {
            char *want = h_strf("\"limit\":%lld,", (long long)cases[i].want);
            if (r.status != 200 || !strstr(r.body, want))
                fail_msg("limit=%s: %d %s", cases[i].in, r.status, r.body);
            free(want);
        }
        cn_test_response_free(&r);
        free(target);
    }
}

static void test_param_errors(void **state)
{
    want_get(state, "/v/search", NULL, 422,
             ERR1("{\"type\":\"missing\",\"loc\":[\"query\",\"q\"],\"msg\":\"Field required\","
                  "\"input\":null}"));
    want_get(
        state, "/v/search?q=a", NULL, 422,
        ERR1("{\"type\":\"string_too_short\",\"loc\":[\"query\",\"q\"],\"msg\":\"String "
             "should have at least 2 characters\",\"input\":\"a\",\"ctx\":{\"min_length\":2}}"));
    want_get(state, "/v/search?q=abcdefghi", NULL, 422,
             ERR1("{\"type\":\"string_too_long\",\"loc\":[\"query\",\"q\"],\"msg\":\"String "
                  "should have at most 8 characters\",\"input\":\"abcdefghi\",\"ctx\":{\"max_"
                  "length\":8}}"));
    /* characters, not bytes: 8 two-byte letters fit */
    want_get(state, "/v/search?q=%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9", NULL, 200,
             "{\"q\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\","
             "\"limit\":10,\"ratio\":0.5,\"flag\":false,\"color\":\"red\",\"has_code\":false,"
             "\"token\":null,\"visits\":0}");
    want_get(state, "/v/search?q=ab&limit=0", NULL, 422,
             ERR1("{\"type\":\"greater_than_equal\",\"loc\":[\"query\",\"limit\"],\"msg\":\"Input "
                  "should be greater than or equal to 1\",\"input\":\"0\",\"ctx\":{\"ge\":1}}"));
    want_get(state, "/v/search?q=ab&limit=101", NULL, 422,
             ERR1("{\"type\":\"less_than_equal\",\"loc\":[\"query\",\"limit\"],\"msg\":\"Input "
                  "should be less than or equal to 100\",\"input\":\"101\",\"ctx\":{\"le\":100}}"));
    want_get(state, "/v/search?q=ab&ratio=0", NULL, 422,
             ERR1("{\"type\":\"greater_than\",\"loc\":[\"query\",\"ratio\"],\"msg\":\"Input "
                  "should be greater than 0\",\"input\":\"0\",\"ctx\":{\"gt\":0}}"));
    want_get(state, "/v/search?q=ab&ratio=1", NULL, 422,
             ERR1("{\"type\":\"less_than\",\"loc\":[\"query\",\"ratio\"],\"msg\":\"Input should be "
                  "less than 1\",\"input\":\"1\",\"ctx\":{\"lt\":1}}"));
    want_get(
        state, "/v/search?q=ab&ratio=half", NULL, 422,
        ERR1("{\"type\":\"float_parsing\",\"loc\":[\"query\",\"ratio\"],\"msg\":\"Input "
             "should be a valid number, unable to parse string as a number\",\"input\":\"half\"}"));
    want_get(state, "/v/search?q=ab&flag=maybe", NULL, 422,
             ERR1("{\"type\":\"bool_parsing\",\"loc\":[\"query\",\"flag\"],\"msg\":\"Input should "
                  "be a valid boolean, unable to interpret input\",\"input\":\"maybe\"}"));
    want_get(state, "/v/search?q=ab&color=purple", NULL, 422,
             ERR1("{\"type\":\"enum\",\"loc\":[\"query\",\"color\"],\"msg\":\"Input should be "
                  "'red', 'green' or 'blue'\",\"input\":\"purple\",\"ctx\":{\"expected\":\"'red', "
                  "'green' or 'blue'\"}}"));
    want_get(state, "/v/search?q=ab&code=abc", NULL, 422,
             ERR1("{\"type\":\"string_pattern_mismatch\",\"loc\":[\"query\",\"code\"],\"msg\":"
                  "\"String should match pattern '^[A-Z]{3}$'\",\"input\":\"abc\",\"ctx\":{"
                  "\"pattern\":\"^[A-Z]{3}$\"}}"));
    want_get(state, "/v/search?q=ab", (const char *const[]){"Cookie: visits=lots", NULL}, 422,
             ERR1("{\"type\":\"int_parsing\",\"loc\":[\"cookie\",\"visits\"],\"msg\":\"Input "
                  "should be a valid integer, unable to parse string as an integer\",\"input\":"
                  "\"lots\"}"));
}

/* Every error at once, in FastAPI's order: path, query, header, cookie. */
static void test_all_errors_in_order(void **state)
{
    want_get(state, "/v/users/0?verbose=perhaps", NULL, 422,
             "{\"detail\":[{\"type\":\"greater_than_equal\",\"loc\":[\"path\",\"id\"],\"msg\":"
             "\"Input should be greater than or equal to 1\",\"input\":\"0\",\"ctx\":{\"ge\":1}},"
             "{\"type\":\"bool_parsing\",\"loc\":[\"query\",\"verbose\"],\"msg\":\"Input should be "
             "a valid boolean, unable to interpret input\",\"input\":\"perhaps\"},"
             "{\"type\":\"missing\",\"loc\":[\"header\",\"x-key\"],\"msg\":\"Field required\","
             "\"input\":null}]}");
    want_get(state, "/v/users/abc", (const char *const[]){"X-Key: k", NULL}, 422,
             ERR1("{\"type\":\"int_parsing\",\"loc\":[\"path\",\"id\"],\"msg\":\"Input should be "
                  "a valid integer, unable to parse string as an integer\",\"input\":\"abc\"}"));
    want_get(state, "/v/users/7", (const char *const[]){"X-Key: k", NULL}, 200, "{\"id\":7}");
    /* the input is JSON-escaped */
    want_get(state, "/v/users/a%22b%5C%0A", (const char *const[]){"X-Key: k", NULL}, 422,
             ERR1("{\"type\":\"int_parsing\",\"loc\":[\"path\",\"id\"],\"msg\":\"Input should be "
                  "a valid integer, unable to parse string as an "
                  "integer\",\"input\":\"a\\\"b\\\\\\n\"}"));
}

/* The spec's query part declares parameters: typed, defaulted, optional, required. */
static void test_query_shorthand(void **state)
{
    want_get(state, "/v/short?tag=x", NULL, 200,
             "{\"page\":1,\"sort\":false,\"tag\":\"x\",\"rate\":0.5}");
    want_get(state, "/v/short?tag=x&page=3&sort=yes&rate=0.25", NULL, 200,
             "{\"page\":3,\"sort\":true,\"tag\":\"x\",\"rate\":0.25}");
    want_get(state, "/v/short?page=two", NULL, 422,
             "{\"detail\":[{\"type\":\"int_parsing\",\"loc\":[\"query\",\"page\"],\"msg\":\"Input "
             "should be a valid integer, unable to parse string as an integer\",\"input\":\"two\"},"
             "{\"type\":\"missing\",\"loc\":[\"query\",\"tag\"],\"msg\":\"Field required\","
             "\"input\":null}]}");
    want_get(state, "/v/short?tag=x&rate=2", NULL, 422,
             ERR1("{\"type\":\"less_than_equal\",\"loc\":[\"query\",\"rate\"],\"msg\":\"Input "
                  "should be less than or equal to 1\",\"input\":\"2\",\"ctx\":{\"le\":1}}"));
}

/* ---- bodies ---- */

static void test_body_valid(void **state)
{
    /* defaults filled in; strings converted as pydantic converts them */
    want_post(state, "{\"name\":\"pen\",\"price\":\"1.5\",\"qty\":2.0,\"paid\":\"yes\"}", NULL, 201,
              "{\"name\":\"pen\",\"price\":1.5,\"qty\":2,\"tags\":[],\"at\":null,\"note\":null,"
              "\"paid\":true}");
    want_post(
        state,
        "{\"name\":\"pen\",\"price\":2,\"qty\":true,\"tags\":[\"a\",\"b\"],\"at\":{\"x\":\"3\"},"
        "\"note\":null}",
        "application/json; charset=utf-8", 201,
        "{\"name\":\"pen\",\"price\":2,\"qty\":1,\"tags\":[\"a\",\"b\"],\"at\":{\"x\":3,\"y\":0},"
        "\"note\":null,\"paid\":false}");
}

static void test_body_errors(void **state)
{
    want_post(state, "{\"name\":\"pen\"}", NULL, 422,
              ERR1("{\"type\":\"missing\",\"loc\":[\"body\",\"price\"],\"msg\":\"Field required\","
                   "\"input\":{\"name\":\"pen\"}}"));
    want_post(
        state, "{\"name\":5,\"price\":\"abc\",\"qty\":1.5,\"tags\":\"x\",\"paid\":2}", NULL, 422,
        "{\"detail\":[{\"type\":\"string_type\",\"loc\":[\"body\",\"name\"],\"msg\":\"Input "
        "should be a valid string\",\"input\":5},{\"type\":\"float_parsing\",\"loc\":[\"body\","
        "\"price\"],\"msg\":\"Input should be a valid number, unable to parse string as a "
        "number\",\"input\":\"abc\"},{\"type\":\"int_from_float\",\"loc\":[\"body\",\"qty\"],"
        "\"msg\":\"Input should be a valid integer, got a number with a fractional part\","
        "\"input\":1.5},{\"type\":\"list_type\",\"loc\":[\"body\",\"tags\"],\"msg\":\"Input "
        "should be a valid list\",\"input\":\"x\"},{\"type\":\"bool_parsing\",\"loc\":[\"body\","
        "\"paid\"],\"msg\":\"Input should be a valid boolean, unable to interpret input\","
        "\"input\":2}]}");
    want_post(
        state, "{\"name\":\"\",\"price\":-1,\"tags\":[1,\"b\",\"c\",\"d\"],\"at\":[1],\"zz\":0}",
        NULL, 422,
        "{\"detail\":[{\"type\":\"string_too_short\",\"loc\":[\"body\",\"name\"],\"msg\":\"String "
        "should have at least 1 character\",\"input\":\"\",\"ctx\":{\"min_length\":1}},"
        "{\"type\":\"greater_than\",\"loc\":[\"body\",\"price\"],\"msg\":\"Input should be "
        "greater than 0\",\"input\":-1,\"ctx\":{\"gt\":0}},{\"type\":\"string_type\",\"loc\":"
        "[\"body\",\"tags\",0],\"msg\":\"Input should be a valid string\",\"input\":1},"
        "{\"type\":\"model_attributes_type\",\"loc\":[\"body\",\"at\"],\"msg\":\"Input should "
        "be a valid dictionary or object to extract fields from\",\"input\":[1]},"
        "{\"type\":\"extra_forbidden\",\"loc\":[\"body\",\"zz\"],\"msg\":\"Extra inputs are not "
        "permitted\",\"input\":0}]}");
    want_post(
        state, "{\"name\":\"a\",\"price\":1,\"tags\":[\"a\",\"b\",\"c\",\"d\"]}", NULL, 422,
        ERR1("{\"type\":\"too_long\",\"loc\":[\"body\",\"tags\"],\"msg\":\"List should have at "
             "most 3 items after validation, not 4\",\"input\":[\"a\",\"b\",\"c\",\"d\"],"
             "\"ctx\":{\"field_type\":\"List\",\"max_length\":3,\"actual_length\":4}}"));
    want_post(state, "{\"name\":\"a\",\"price\":1,\"at\":{}}", NULL, 422,
              ERR1("{\"type\":\"missing\",\"loc\":[\"body\",\"at\",\"x\"],\"msg\":\"Field "
                   "required\",\"input\":{}}"));
    want_post(
        state, "[1,2]", NULL, 422,
        ERR1("{\"type\":\"model_attributes_type\",\"loc\":[\"body\"],\"msg\":\"Input should be "
             "a valid dictionary or object to extract fields from\",\"input\":[1,2]}"));
    want_post(state, NULL, NULL, 422,
              ERR1("{\"type\":\"missing\",\"loc\":[\"body\"],\"msg\":\"Field required\","
                   "\"input\":null}"));
    want_post(
        state, "name=pen", "text/plain", 422,
        ERR1("{\"type\":\"model_attributes_type\",\"loc\":[\"body\"],\"msg\":\"Input should be "
             "a valid dictionary or object to extract fields from\",\"input\":\"name=pen\"}"));
}

/* Not JSON: FastAPI's json_invalid with Python's message and character position. */
static void test_body_not_json(void **state)
{
    static const struct {
        const char *body;
        int pos;
        const char *error;
    } cases[] = {
        {"{\"name\": }", 9, "Expecting value"},
        {"{\"name\" 1}", 8, "Expecting ':' delimiter"},
        {"{\"a\":1 \"b\":2}", 7, "Expecting ',' delimiter"},
        {"{\"a\":1,}", 7, "Expecting property name enclosed in double quotes"},
        {"{'a':1}", 1, "Expecting property name enclosed in double quotes"},
        {"[1,]", 3, "Expecting value"},
        {"{} x", 3, "Extra data"},
        {"{\"a\":\"b", 5, "Unterminated string starting at"},
        {"{\"a\":\"\\q\"}", 6, "Invalid \\\\escape"},
        {"{\"a\":\"\\u12\"}", 7, "Invalid \\\\uXXXX escape"},
        {"{\"\xc3\xa9\": x}", 6, "Expecting value"}, /* characters, not bytes */
        {"  ", 2, "Expecting value"},
        /* what Python takes and Canteen refuses: the same shape, our message */
        {"{\"name\":\"a\\u0000b\"}", 10, "Invalid \\\\u0000 escape: NUL in a string"},
        {"{\"name\":\"\\ud800\"}", 9, "Unpaired surrogate in \\\\uXXXX escape"},
        {"{\"name\":\"\\udc00\\ud800\"}", 9, "Unpaired surrogate in \\\\uXXXX escape"},
        {"{\"price\":1e999}", 9, "Number out of range"},
        {"{\"price\":NaN}", 9, "Expecting value"},
        {"{\"price\":-Infinity}", 9, "Expecting value"},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *want = h_strf(ERR1("{\"type\":\"json_invalid\",\"loc\":[\"body\",%d],\"msg\":\"JSON "
                                 "decode error\",\"input\":{},\"ctx\":{\"error\":\"%s\"}}"),
                            cases[i].pos, cases[i].error);
        want_post(state, cases[i].body, NULL, 422, want);
        free(want);
    }
    /* not even UTF-8: Python cannot decode it, FastAPI answers 400; the
     * same for overlong forms and for surrogates encoded in UTF-8 (which
     * Python's surrogatepass would let through: RFC 3629 does not) */
    for (const char *const *b =
             (const char *const[]){"{\"name\":\"\xff\"}", "{\"name\":\"\xc0\xaf\"}",
                                   "{\"name\":\"\xed\xa0\x80\"}", NULL};
         *b; b++)
        want_post(state, *b, NULL, 400, "{\"detail\":\"There was an error parsing the body\"}");
    /* too deep for Python's recursion: a RecursionError, FastAPI's 400 */
    {
        char *deep = malloc(300001);
        assert_non_null(deep);
        memset(deep, '[', 300000);
        deep[300000] = 0;
        want_post(state, deep, NULL, 400, "{\"detail\":\"There was an error parsing the body\"}");
        free(deep);
    }
}

/* A body big enough to be checked on the pool: the same answers. */
static void test_big_body_on_the_pool(void **state)
{
    size_t n = 12000; /* characters of two bytes each */
    char *name = malloc(2 * n + 1), *body, *want;

    assert_non_null(name);
    for (size_t i = 0; i < n; i++)
        memcpy(name + 2 * i, "\xc3\xa9", 2);
    name[2 * n] = 0;
    body = h_strf("{\"name\":\"%s\",\"price\":2}", name);
    want = h_strf("{\"name\":\"%s\",\"price\":2,\"qty\":1,\"tags\":[],\"at\":null,"
                  "\"note\":null,\"paid\":false}",
                  name);
    assert_true(strlen(body) > CN__JSON_POOL_BYTES);
    want_post(state, body, NULL, 201, want);
    free(body);
    free(want);
    /* malformed at the end: Python's position, in characters */
    body = h_strf("{\"name\":\"%s\",\"price\": }", name);
    want = h_strf(ERR1("{\"type\":\"json_invalid\",\"loc\":[\"body\",%zu],\"msg\":\"JSON "
                       "decode error\",\"input\":{},\"ctx\":{\"error\":\"Expecting value\"}}"),
                  n + 20);
    want_post(state, body, NULL, 422, want);
    free(body);
    free(want);
    free(name);
}

/* ---- the test client ---- */

/* The same requests, in process and over a socket: the same responses. */
static void test_same_as_socket(void **state)
{
    static const char *const targets[] = {
        "/v/search?q=abc&limit=3", "/v/search?q=a", "/users/42", "/users/abc", "/nope", "/json"};
    fixture *f = *state;
    h_server *s = h_start(NULL, NULL, setup, NULL);

    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
        h_response wire;
        cn_test_response mem;
        char *raw = h_strf("GET %s HTTP/1.1\r\nHost: testserver\r\n\r\n", targets[i]);
        h_roundtrip(s, raw, &wire);
        free(raw);
        /* the in-process app has the demo's routes too, for /users and /json */
        assert_int_equal(cn_test_get(f->tc, targets[i], &mem), 0);
        assert_int_equal(mem.status, wire.status);
        assert_string_equal(mem.body, wire.body);
        assert_string_equal(cn_test_header(&mem, "content-type"),
                            h_header_get(&wire, "content-type"));
        assert_string_equal(cn_test_header(&mem, "content-length"),
                            h_header_get(&wire, "content-length"));
        assert_string_equal(cn_test_header(&mem, "server"), "canteen");
        assert_non_null(cn_test_header(&mem, "date"));
        cn_test_response_free(&mem);
        h_response_free(&wire);
    }
    h_stop(s);
}

static int noted_startup, noted_shutdown;

static int startup(cn_app *app, void *arg)
{
    (void)app;
    (void)arg;
    noted_startup++;
    return cn_sleep(10);
}

static int shutdown_hook(cn_app *app, void *arg)
{
    (void)app;
    (void)arg;
    noted_shutdown++;
    return 0;
}

static int sync_route(cn_req *req, cn_res *res)
{
    (void)req;
    return cn_res_text(res, 200, "pool");
}

static int stream_route(cn_req *req, cn_res *res)
{
    int rc = cn_res_stream_begin(res, 200, "text/plain");

    (void)req;
    for (int i = 0; rc == 0 && i < 3; i++)
        rc = cn_res_stream_write(res, "ab", 2);
    return rc;
}

static int failing_startup(cn_app *app, void *arg)
{
    (void)app;
    (void)arg;
    return CN_ECONNREFUSED;
}

/* Lifespan, sync routes, streams, HEAD, keep-alive across requests; no port. */
static void test_client_lifecycle(void **state)
{
    cn_app *app = cn_app_new(NULL);
    cn_test_client *tc;
    cn_test_response r;

    (void)state;
    noted_startup = noted_shutdown = 0;
    assert_int_equal(cn_app_lifespan(app, startup, shutdown_hook, NULL), 0);
    assert_int_equal(cn_app_route_ex(app, "GET /sync", sync_route, NULL,
                                     &(cn_route_opts){.mode = CN_ROUTE_SYNC}),
                     0);
    assert_int_equal(cn_app_route(app, "GET /stream", stream_route, NULL), 0);
    assert_int_equal(cn_test_client_new(app, &tc), 0);
    assert_int_equal(noted_startup, 1);
    assert_int_equal(cn_app_port(app), CN_ENOENT); /* nothing listens */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cn_test_get(tc, "/sync", &r), 0);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "pool");
        cn_test_response_free(&r);
    }
    assert_int_equal(cn_test_get(tc, "/stream", &r), 0);
    assert_string_equal(r.body, "ababab");
    assert_string_equal(cn_test_header(&r, "transfer-encoding"), "chunked");
    cn_test_response_free(&r);
    assert_int_equal(cn_test_request(tc, "HEAD", "/sync", NULL, NULL, 0, 0, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    assert_string_equal(cn_test_header(&r, "content-length"), "4");
    cn_test_response_free(&r);
    assert_int_equal(
        cn_test_request(tc, "GET", "/sync", (const char *const[]){"Bad", NULL}, NULL, 0, 0, &r),
        CN_EBADHEADER);
    assert_int_equal(cn_test_client_free(tc), 0);
    assert_int_equal(noted_shutdown, 1);
    assert_int_equal(cn__app_free_checked(app), 0);

    /* a startup that fails: its error, and the app is stopped */
    app = cn_app_new(NULL);
    assert_int_equal(cn_app_on_startup(app, failing_startup, NULL), 0);
    assert_int_equal(cn_test_client_new(app, &tc), CN_ECONNREFUSED);
    assert_int_equal(cn__app_free_checked(app), 0);
}

/* Declarations that cannot work are refused when the route is registered. */
static void test_bad_declarations(void **state)
{
    static const cn_field not_in_path[] = {{.name = "id", .in = CN_PATH, .type = CN_INT}, {0}};
    static const cn_field str_for_int[] = {{.name = "id", .in = CN_PATH, .type = CN_STR}, {0}};
    static const cn_field bad_default[] = {{.name = "n", .type = CN_INT, .dflt = "ten"}, {0}};
    static const cn_field bad_pattern[] = {{.name = "s", .type = CN_STR, .pattern = "(["}, {0}};
    static const cn_field no_values[] = {{.name = "e", .type = CN_ENUM}, {0}};
    static const cn_field array_param[] = {{.name = "a", .type = CN_ARRAY}, {0}};
    static const cn_route bad_table[] = {
        {.spec = "GET /ok", .fn = search}, {.spec = "GET /no?x:uint", .fn = search}, {0}};
    cn_app *app = cn_app_new(NULL);

    (void)state;
    assert_int_equal(
        cn_app_route_ex(app, "GET /a", search, NULL, &(cn_route_opts){.params = not_in_path}),
        CN_EBADPATTERN);
    assert_int_equal(cn_app_route_ex(app, "GET /b/{id:int}", search, NULL,
                                     &(cn_route_opts){.params = str_for_int}),
                     CN_EBADPATTERN);
    assert_int_equal(
        cn_app_route_ex(app, "GET /c", search, NULL, &(cn_route_opts){.params = bad_default}),
        CN_EINVAL);
    assert_int_equal(
        cn_app_route_ex(app, "GET /d", search, NULL, &(cn_route_opts){.params = bad_pattern}),
        CN_EINVAL);
    assert_int_equal(
        cn_app_route_ex(app, "GET /e", search, NULL, &(cn_route_opts){.params = no_values}),
        CN_EINVAL);
    assert_int_equal(
        cn_app_route_ex(app, "GET /f", search, NULL, &(cn_route_opts){.params = array_param}),
        CN_EINVAL);
    /* the shorthand's grammar: a known type, then =default, ? or nothing */
    assert_int_equal(cn_app_route(app, "GET /g?n:long", search, NULL), CN_EBADPATTERN);
    assert_int_equal(cn_app_route(app, "GET /h?n:int!", search, NULL), CN_EBADPATTERN);
    assert_int_equal(cn_app_route(app, "GET /i?1n", search, NULL), CN_EBADPATTERN);
    assert_int_equal(cn_app_route(app, "GET /j?n:int=ten", search, NULL), CN_EINVAL);
    /* a table stops at its first bad route; those before it stay */
    assert_int_equal(cn_app_routes(app, bad_table), CN_EBADPATTERN);
    assert_int_equal(cn_app_route(app, "GET /ok", search, NULL), CN_EEXIST);
    assert_int_equal(cn_app_routes(app, NULL), CN_EINVAL);
    /* a refused route is not registered: the same spec can be added right */
    assert_int_equal(cn_app_route(app, "GET /a", search, NULL), 0);
    assert_int_equal(cn__app_free_checked(app), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults_and_getters, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_int_parsing, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_param_errors, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_all_errors_in_order, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_query_shorthand, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_body_valid, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_body_errors, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_body_not_json, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_big_body_on_the_pool, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_same_as_socket, fx_setup, fx_teardown),
        cmocka_unit_test(test_client_lifecycle),
        cmocka_unit_test(test_bad_declarations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
