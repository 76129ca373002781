/*
 * test_json.c -- JSON texts in (what is refused, and where) and cJSON trees
 * out (the printer against cJSON_PrintUnformatted, byte for byte).
 */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json.h"
#include "jsoncheck.h"

static int parse(const char *s)
{
    cJSON *j = NULL;
    int rc = cn__json_parse(s, strlen(s), &j);

    if (rc == 0)
        assert_non_null(j);
    else
        assert_null(j);
    cJSON_Delete(j);
    return rc;
}

/* Where the checker stops, and with what, for the n bytes at s. */
static void check_at(const char *s, int want_rc, size_t want_pos, const char *want_msg)
{
    size_t pos = 12345;
    const char *msg = NULL;
    int rc = cn__json_check(s, strlen(s), &pos, &msg);

    if (rc != want_rc || (rc && (pos != want_pos || strcmp(msg, want_msg) != 0)))
        fail_msg("%s: got %d at %zu (%s), want %d at %zu (%s)", s, rc, pos, msg ? msg : "-",
                 want_rc, want_pos, want_msg);
}

/* What Python's json takes and a C string or a double cannot carry. */
static void refused_inside_strings(void **state)
{
    (void)state;
    check_at("\"a\\u0000b\"", 1, 2, "Invalid \\u0000 escape: NUL in a string");
    check_at("[\"\\ud800\"]", 1, 2, "Unpaired surrogate in \\uXXXX escape");
    check_at("\"\\udc00\"", 1, 1, "Unpaired surrogate in \\uXXXX escape");
    check_at("\"\\ud800\\u0041\"", 1, 1, "Unpaired surrogate in \\uXXXX escape");
    check_at("\"\\ud800x\"", 1, 1, "Unpaired surrogate in \\uXXXX escape");
    check_at("\"\\uD83D\\uDE00\"", 0, 0, ""); /* a pair: U+1F600 */
    check_at("\"\\u00e9\\u20ac\"", 0, 0, "");
    /* positions count characters, as Python's do */
    check_at("{\"\xc3\xa9\":\"\\u0000\"}", 1, 6, "Invalid \\u0000 escape: NUL in a string");
    for (const char *const *s = (const char *const[]){"\"a\\u0000b\"", "\"\\ud800\"", "\"\\udfff\"",
                                                      "\"\\udbff\\udbff\"", NULL};
         *s; s++)
        assert_int_equal(parse(*s), CN_EBADJSON);
}

static void a_surrogate_pair_becomes_one_character(void **state)
{
    cJSON *j = NULL;

    (void)state;
    assert_int_equal(cn__json_parse("\"\\ud83d\\ude00\"", 14, &j), 0);
    assert_string_equal(j->valuestring, "\xf0\x9f\x98\x80");
    cJSON_Delete(j);
}

/* Not UTF-8: invalid bytes, overlong forms, encoded surrogates, past U+10FFFF. */
static void refused_not_utf8(void **state)
{
    static const char *const bad[] = {
        "\"\xff\"",
        "\"a\x80\"",
        "\"\xc3\"",
        "\"\xc0\xaf\"",
        /* overlong '/' */ "\"\xe0\x80\xaf\"",
        "\"\xf0\x80\x80\xaf\"",
        "\"\xed\xa0\x80\"", /* U+D800 encoded */
        "\"\xed\xbf\xbf\"",
        "\"\xf4\x90\x80\x80\"", /* U+110000 */
    };

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(cn__utf8_valid(bad[i], strlen(bad[i])));
        assert_int_equal(parse(bad[i]), CN_EBADJSON);
    }
    assert_int_equal(parse("\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\""), 0);
}

/* NaN and Infinity are Python's, not JSON's. */
static void refused_nan_and_infinity(void **state)
{
    (void)state;
    check_at("[NaN]", 1, 1, "Expecting value");
    check_at("{\"a\": Infinity}", 1, 6, "Expecting value");
    check_at("-Infinity", 1, 0, "Expecting value");
    assert_int_equal(parse("NaN"), CN_EBADJSON);
}

/* A number past a double's range is refused exactly where strtod overflows. */
static void numbers_refused_where_a_double_overflows(void **state)
{
    static const char *const nums[] = {
        "1e999",
        "-1e999",
        "1e309",
        "1E+309",
        "1.8e308",
        "1.7976931348623157e308",
        "1.7976931348623158e308",
        "1.79769313486231580793728971405303415079934e308",
        "1.79769313486231580793728971405303415079933e308",
        "1.797693134862315807e308",
        "1.797693134862315808e308",
        "17976931348623158e292",
        "0.17976931348623158e309",
        "179769313486231580793728971405303415079934132710037826936173778980444968292764750"
        "946649017977587207096330286416692887910946555547851940402630657488671505820681908"
        "902000708383676273854845817711531764475730270069855571366959622842914819860834936"
        "475292719074168444365510704342711559699508093042880177904174497792",
        "179769313486231580793728971405303415079934132710037826936173778980444968292764750"
        "946649017977587207096330286416692887910946555547851940402630657488671505820681908"
        "902000708383676273854845817711531764475730270069855571366959622842914819860834936"
        "475292719074168444365510704342711559699508093042880177904174497791",
        "1e308",
        "9.9e307",
        "1e-999",
        "-1e-400",
        "0e99999",
        "0.0000001e300",
        "0.00001e313",
        "1e99999999999999999999",
        "123456789012345678901234567890",
        "-0.0",
        "4.9e-324",
    };

    (void)state;
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        bool inf = isinf(strtod(nums[i], NULL));
        size_t pos;
        const char *msg;
        int rc = cn__json_check(nums[i], strlen(nums[i]), &pos, &msg);
        if (rc != (inf ? 1 : 0))
            fail_msg("%s: checker %d, strtod %s", nums[i], rc, inf ? "inf" : "finite");
        if (inf)
            assert_string_equal(msg, "Number out of range");
    }
    check_at("[1, 1e999]", 1, 4, "Number out of range");
}

static char *nested(size_t depth, const char *open, const char *inner, const char *close)
{
    size_t ol = strlen(open), il = strlen(inner), cl = strlen(close);
    char *s = malloc(depth * (ol + cl) + il + 1), *p = s;

    assert_non_null(s);
    for (size_t i = 0; i < depth; i++, p += ol)
        memcpy(p, open, ol);
    memcpy(p, inner, il);
    p += il;
    for (size_t i = 0; i < depth; i++, p += cl)
        memcpy(p, close, cl);
    *p = 0;
    return s;
}

/* Deep documents stop at CN_JSON_MAX_DEPTH, however deep they go (ASan
 * builds run this on a small stack's worth of recursion at most). */
static void nesting_is_bounded(void **state)
{
    char *ok = nested(CN_JSON_MAX_DEPTH, "[", "1", "]");
    char *deep = nested(CN_JSON_MAX_DEPTH + 1, "{\"a\":", "1", "}");
    char *huge = nested(200000, "[", "", "]");
    char *unclosed = nested(200000, "[", "", "");

    (void)state;
    assert_int_equal(parse(ok), 0);
    assert_int_equal(parse(deep), CN_EJSONDEPTH);
    assert_int_equal(parse(huge), CN_EJSONDEPTH);
    assert_int_equal(parse(unclosed), CN_EJSONDEPTH);
    check_at(deep, 2, 5 * CN_JSON_MAX_DEPTH, "Nesting too deep");
    free(ok);
    free(deep);
    free(huge);
    free(unclosed);
}

static void a_byte_order_mark_is_skipped(void **state)
{
    (void)state;
    assert_int_equal(parse("\xef\xbb\xbf{\"a\":1}"), 0);
    /* cJSON alone skips it only with two more bytes after it */
    assert_int_equal(parse("\xef\xbb\xbf"
                           "0"),
                     0);
    assert_int_equal(parse("\xef\xbb\xbf"
                           "1 "),
                     0);
    assert_int_equal(parse("\xef\xbb\xbf"), CN_EBADJSON);
    assert_int_equal(parse("\xef\xbb\xbf\xef\xbb\xbf"
                           "0"),
                     CN_EBADJSON);
}

/* ---- printing ---- */

static void same_as_cjson(const cJSON *j)
{
    char *want = cJSON_PrintUnformatted(j);
    cn__buf b = {0};

    assert_non_null(want);
    assert_int_equal(cn__json_print(j, &b), 0);
    assert_int_equal(cn__buf_append(&b, "", 1), 0);
    if (strcmp(b.data, want) != 0) {
        size_t at = 0;
        while (b.data[at] == want[at])
            at++;
        at = at > 40 ? at - 40 : 0;
        fail_msg("printed ...%.80s\n cJSON   ...%.80s", b.data + at, want + at);
    }
    cJSON_free(want);
    cn__buf_free(&b);
}

static void numbers_print_as_cjson_prints_them(void **state)
{
    static const double fixed[] = {0,
                                   -0.0,
                                   1,
                                   -1,
                                   7,
                                   10,
                                   100,
                                   123456,
                                   INT32_MAX,
                                   INT32_MIN,
                                   (double)INT32_MAX + 1,
                                   (double)INT32_MIN - 1,
                                   999999999999999.0,
                                   -999999999999999.0,
                                   1e15,
                                   -1e15,
                                   1e15 + 1,
                                   9007199254740992.0,
                                   9007199254740993.0,
                                   1e16,
                                   1e17,
                                   1e20,
                                   1e21,
                                   1e100,
                                   1e308,
                                   DBL_MAX,
                                   -DBL_MAX,
                                   0.1,
                                   0.2,
                                   0.3,
                                   1.0 / 3,
                                   2.0 / 3,
                                   1e-7,
                                   1e-5,
                                   0.5,
                                   1.5,
                                   -2.5,
                                   3.14159,
                                   1e-300,
                                   DBL_MIN,
                                   4.9e-324,
                                   123.456,
                                   1234567.125,
                                   0.000123,
                                   5e-324,
                                   1.7976931348623157e308,
                                   NAN,
                                   INFINITY,
                                   -INFINITY};
    cJSON *arr = cJSON_CreateArray();
    uint64_t x = 88172645463325252ULL;

    (void)state;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateNumber(fixed[i]));
    /* and a few thousand doubles from their bits, and integers of every size */
    for (int i = 0; i < 4000; i++) {
        double d;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(&d, &x, sizeof d);
        cJSON_AddItemToArray(arr, cJSON_CreateNumber(d));
        cJSON_AddItemToArray(arr, cJSON_CreateNumber((double)(int64_t)(x >> (i % 64))));
        cJSON_AddItemToArray(arr, cJSON_CreateNumber((double)(x % 100000) / 100));
    }
    same_as_cjson(arr);
    cJSON_Delete(arr);
}

static void strings_and_shapes_print_as_cjson_prints_them(void **state)
{
    char all[40];
    cJSON *o = cJSON_CreateObject(), *a = cJSON_CreateArray(), *e = cJSON_CreateObject();

    (void)state;
    for (int i = 1; i < 40; i++)
        all[i - 1] = (char)i;
    all[39] = 0;
    cJSON_AddStringToObject(o, "controls", all);
    cJSON_AddStringToObject(o, "quotes \"\\/", "a\"b\\c/d");
    cJSON_AddStringToObject(o, "utf8 \xc3\xa9", "\xe2\x82\xac \xf0\x9f\x98\x80 \x7f");
    cJSON_AddStringToObject(o, "", "");
    cJSON_AddItemToObject(o, "empty array", cJSON_CreateArray());
    cJSON_AddItemToObject(o, "empty object", e);
    cJSON_AddItemToObject(o, "raw", cJSON_CreateRaw("{\"pre\": 1}"));
    cJSON_AddItemToArray(a, cJSON_CreateNull());
    cJSON_AddItemToArray(a, cJSON_CreateTrue());
    cJSON_AddItemToArray(a, cJSON_CreateFalse());
    cJSON_AddItemToArray(a, cJSON_CreateString("x"));
    cJSON_AddItemToArray(a, cJSON_Parse("[[[]],{\"k\":[{}]},[1,[2,[3]]]]"));
    cJSON_AddItemToObject(o, "nested", a);
    same_as_cjson(o);
    same_as_cjson(a->child->next->next->next->next); /* not its siblings */
    same_as_cjson(cJSON_GetObjectItem(o, "empty object"));
    cJSON_Delete(o);
}

static void invalid_nodes_do_not_print(void **state)
{
    cJSON *a = cJSON_CreateArray(), *raw = cJSON_CreateRaw("1");
    cn__buf b = {0};

    (void)state;
    cJSON_AddItemToArray(a, raw);
    cJSON_free(raw->valuestring);
    raw->valuestring = NULL;
    assert_int_equal(cn__json_print(a, &b), CN_EINVAL);
    cn__buf_free(&b);
    raw->type = cJSON_Invalid;
    assert_int_equal(cn__json_print(a, &b), CN_EINVAL);
    cn__buf_free(&b);
    assert_int_equal(cn__json_print(NULL, &b), CN_EINVAL);
    cJSON_Delete(a);
}

/* A tree deeper than any stack would take recursion for prints all the same. */
static void a_very_deep_tree_prints_without_recursion(void **state)
{
    enum { DEPTH = 100000 };
    cJSON *root = cJSON_CreateArray(), *at = root;
    cn__buf b = {0};

    (void)state;
    for (int i = 1; i < DEPTH; i++) {
        cJSON *c = cJSON_CreateArray();
        cJSON_AddItemToArray(at, c);
        at = c;
    }
    assert_int_equal(cn__json_print(root, &b), 0);
    assert_int_equal(b.len, 2 * DEPTH);
    assert_int_equal(b.data[DEPTH - 1], '[');
    assert_int_equal(b.data[DEPTH], ']');
    assert_int_equal(cn__json_nodes(root, SIZE_MAX), DEPTH);
    cn__buf_free(&b);
    /* cJSON_Delete recurses: take it apart from the top, a level at a time */
    while (root) {
        cJSON *c = root->child;
        if (c)
            cJSON_DetachItemViaPointer(root, c);
        cJSON_Delete(root);
        root = c;
    }
}

static void nodes_are_counted_up_to_the_cap(void **state)
{
    cJSON *j = cJSON_Parse("{\"a\":[1,2,{\"b\":null}],\"c\":\"d\"}");

    (void)state;
    assert_int_equal(cn__json_nodes(j, 1000), 7);
    assert_int_equal(cn__json_nodes(j, 5), 5);
    assert_int_equal(cn__json_nodes(NULL, 5), 0);
    cJSON_Delete(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(refused_inside_strings),
        cmocka_unit_test(a_surrogate_pair_becomes_one_character),
        cmocka_unit_test(refused_not_utf8),
        cmocka_unit_test(refused_nan_and_infinity),
        cmocka_unit_test(numbers_refused_where_a_double_overflows),
        cmocka_unit_test(nesting_is_bounded),
        cmocka_unit_test(a_byte_order_mark_is_skipped),
        cmocka_unit_test(numbers_print_as_cjson_prints_them),
        cmocka_unit_test(strings_and_shapes_print_as_cjson_prints_them),
        cmocka_unit_test(invalid_nodes_do_not_print),
        cmocka_unit_test(a_very_deep_tree_prints_without_recursion),
        cmocka_unit_test(nodes_are_counted_up_to_the_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
