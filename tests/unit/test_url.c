/* test_url.c -- percent-decoding, query strings and integer parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "canteen.h"
#include "url.h"

/* ---- cn__url_decode ---------------------------------------------------- */

/*
 * Decode src (len bytes) into a heap buffer of exactly len+1 bytes, so that
 * ASan catches a write past the promised size. Returns the result; *out gets
 * the buffer (caller frees).
 */
static long decode(const char *src, size_t len, bool plus, char **out)
{
    char *dst = malloc(len + 1);
    long n;

    assert_non_null(dst);
    n = cn__url_decode(dst, src, len, plus);
    *out = dst;
    return n;
}

static void want_decoded(const char *src, bool plus, const char *want, size_t wantlen)
{
    char *dst;
    long n = decode(src, strlen(src), plus, &dst);

    assert_int_equal(n, (long)wantlen);
    assert_memory_equal(dst, want, wantlen);
    assert_int_equal(dst[wantlen], 0);
    free(dst);
}

static void want_refused(const char *src, size_t len, bool plus)
{
    char *dst;

    assert_int_equal(decode(src, len, plus, &dst), -1);
    free(dst);
}

static void decode_plain_text_is_unchanged(void **state)
{
    (void)state;
    want_decoded("/users/42", false, "/users/42", 9);
    want_decoded("abc-._~!$'()*,;=:@", true, "abc-._~!$'()*,;=:@", 18);
}

static void decode_valid_escapes(void **state)
{
    (void)state;
    want_decoded("a%20b", false, "a b", 3);
    want_decoded("%41%42%43", false, "ABC", 3);
    want_decoded("%2f%2F", false, "//", 2); /* both cases of hex */
    want_decoded("%aB%Ab", false, "\xab\xab", 2);
    want_decoded("caf%C3%A9", false, "caf\xc3\xa9", 5); /* UTF-8 bytes */
    want_decoded("%25", false, "%", 1);                 /* a literal percent */
    want_decoded("%2541", false, "%41", 3);             /* decoded once only */
    want_decoded("%ff", false, "\xff", 1);
}

static void decode_plus_is_space_in_queries_only(void **state)
{
    (void)state;
    want_decoded("a+b", true, "a b", 3);
    want_decoded("a+b", false, "a+b", 3);
    want_decoded("%2B", true, "+", 1); /* an encoded plus stays a plus */
    want_decoded("++", true, "  ", 2);
}

static void decode_truncated_escape_is_refused(void **state)
{
    (void)state;
    want_refused("%4", 2, false);
    want_refused("%", 1, false);
    want_refused("abc%", 4, true);
    want_refused("abc%4", 5, true);
    /* the escape is complete in memory but not within len */
    want_refused("%41", 2, false);
}

static void decode_invalid_hex_is_refused(void **state)
{
    (void)state;
    want_refused("%zz", 3, false);
    want_refused("%4g", 3, false);
    want_refused("%g4", 3, false);
    want_refused("a%-1", 4, true);
    want_refused("% 1", 3, true);
}

static void decode_nul_is_refused(void **state)
{
    (void)state;
    want_refused("%00", 3, false);
    want_refused("a%00b", 5, true);
    want_refused("a\0b", 3, false); /* a raw NUL inside len */
}

static void decode_empty(void **state)
{
    char *dst;

    (void)state;
    assert_int_equal(decode("", 0, false, &dst), 0);
    assert_string_equal(dst, "");
    free(dst);
    assert_int_equal(decode("", 0, true, &dst), 0);
    assert_string_equal(dst, "");
    free(dst);
}

static void decode_stops_at_len(void **state)
{
    char *dst;

    (void)state;
    assert_int_equal(decode("a%20bcdef", 5, false, &dst), 3);
    assert_string_equal(dst, "a b");
    free(dst);
}

/* ---- cn__query_find ----------------------------------------------------- */

static bool find(const char *q, const char *name, const char **val, size_t *vlen)
{
    *val = NULL;
    *vlen = 12345;
    return cn__query_find(q, strlen(q), name, val, vlen);
}

static void want_value(const char *q, const char *name, const char *want)
{
    const char *v;
    size_t n;

    assert_true(find(q, name, &v, &n));
    assert_non_null(v);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(v, want, n);
}

static void want_missing(const char *q, const char *name)
{
    const char *v;
    size_t n;

    assert_false(find(q, name, &v, &n));
}

static void query_simple_lookup(void **state)
{
    (void)state;
    want_value("a=1&b=two&c=3", "a", "1");
    want_value("a=1&b=two&c=3", "b", "two");
    want_value("a=1&b=two&c=3", "c", "3");
}

static void query_first_match_wins(void **state)
{
    (void)state;
    want_value("a=1&a=2", "a", "1");
    want_value("x=0&a=first&a=second", "a", "first");
}

static void query_names_are_compared_decoded(void **state)
{
    (void)state;
    want_value("a%20b=1", "a b", "1");
    want_value("a+b=2", "a b", "2");
    want_value("%61=3", "a", "3");
    want_value("caf%C3%A9=4", "caf\xc3\xa9", "4");
    want_missing("a%20b=1", "a%20b");
}

static void query_value_stays_encoded(void **state)
{
    (void)state;
    want_value("x=a%20b+c", "x", "a%20b+c");
    want_value("x=a=b=c", "x", "a=b=c"); /* only the first '=' splits */
}

static void query_bare_flag_gives_empty_value(void **state)
{
    const char *v;
    size_t n;

    (void)state;
    assert_true(find("flag&x=1", "flag", &v, &n));
    assert_non_null(v);
    assert_int_equal(n, 0);
    assert_true(find("x=1&flag", "flag", &v, &n));
    assert_non_null(v);
    assert_int_equal(n, 0);
    assert_true(find("flag", "flag", &v, &n));
    assert_int_equal(n, 0);
}

static void query_empty_value(void **state)
{
    (void)state;
    want_value("a=", "a", "");
    want_value("a=&b=2", "a", "");
    want_value("b=2&a=", "a", "");
}

static void query_missing_name(void **state)
{
    (void)state;
    want_missing("a=1&b=2", "c");
    want_missing("", "a");
    want_missing("=1", "a");
    want_missing("a=1", "");
    want_missing("=1&=2", "");
}

static void query_names_that_are_prefixes(void **state)
{
    (void)state;
    want_value("ab=1&a=2", "a", "2");
    want_value("a=1&ab=2", "ab", "2");
    want_missing("ab=1", "a");
    want_missing("a=1", "ab");
    want_missing("abc", "ab");
}

static void query_empty_pieces_are_skipped(void **state)
{
    (void)state;
    want_value("&&a=1&&", "a", "1");
    want_value("a=1&&b=2", "b", "2");
    want_missing("&&&", "a");
}

static void query_is_bounded_by_qlen(void **state)
{
    const char *q = "a=1&b=2";
    const char *v;
    size_t n;

    (void)state;
    assert_false(cn__query_find(q, 3, "b", &v, &n));
    assert_true(cn__query_find(q, 3, "a", &v, &n));
    assert_int_equal(n, 1);
    /* a value cut by qlen */
    assert_true(cn__query_find("a=123", 4, "a", &v, &n));
    assert_int_equal(n, 2);
    assert_false(cn__query_find(q, 0, "a", &v, &n));
}

static void query_malformed_escape_in_a_name_never_matches(void **state)
{
    (void)state;
    want_missing("a%zz=1", "a%zz");
    want_missing("a%2=1", "a%2");
    want_value("a%zz=1&a=2", "a", "2");
}

/* ---- cn__parse_i64 ------------------------------------------------------ */

static int parse(const char *s, int64_t *out)
{
    *out = 777;
    return cn__parse_i64(s, strlen(s), out);
}

static void want_i64(const char *s, int64_t want)
{
    int64_t v;

    assert_int_equal(parse(s, &v), 0);
    assert_true(v == want);
}

static void want_i64_error(const char *s, int err)
{
    int64_t v;

    assert_int_equal(parse(s, &v), err);
}

static void parse_i64_ordinary_values(void **state)
{
    (void)state;
    want_i64("0", 0);
    want_i64("42", 42);
    want_i64("-42", -42);
    want_i64("007", 7);
    want_i64("-0", 0);
    want_i64("+5", 5);
}

static void parse_i64_limits(void **state)
{
    (void)state;
    want_i64("9223372036854775807", INT64_MAX);
    want_i64("-9223372036854775808", INT64_MIN);
    want_i64("+9223372036854775807", INT64_MAX);
    want_i64("0000000000000000000000009223372036854775807", INT64_MAX);
}

static void parse_i64_overflow_is_erange(void **state)
{
    (void)state;
    want_i64_error("9223372036854775808", CN_ERANGE);
    want_i64_error("-9223372036854775809", CN_ERANGE);
    want_i64_error("+9223372036854775808", CN_ERANGE);
    want_i64_error("18446744073709551616", CN_ERANGE);
    want_i64_error("99999999999999999999999999", CN_ERANGE);
    want_i64_error("-99999999999999999999999999", CN_ERANGE);
}

static void parse_i64_sign_only_is_einval(void **state)
{
    (void)state;
    want_i64_error("-", CN_EINVAL);
    want_i64_error("+", CN_EINVAL);
    want_i64_error("--1", CN_EINVAL);
    want_i64_error("+-1", CN_EINVAL);
}

static void parse_i64_empty_is_einval(void **state)
{
    int64_t v = 777;

    (void)state;
    assert_int_equal(cn__parse_i64("", 0, &v), CN_EINVAL);
    assert_int_equal(cn__parse_i64("123", 0, &v), CN_EINVAL);
}

static void parse_i64_spaces_and_junk_are_einval(void **state)
{
    (void)state;
    want_i64_error(" 1", CN_EINVAL);
    want_i64_error("1 ", CN_EINVAL);
    want_i64_error("- 1", CN_EINVAL);
    want_i64_error("1a", CN_EINVAL);
    want_i64_error("0x10", CN_EINVAL);
    want_i64_error("1.0", CN_EINVAL);
    want_i64_error("1e3", CN_EINVAL);
    want_i64_error("abc", CN_EINVAL);
    want_i64_error("\xd9\xa1", CN_EINVAL); /* a non-ASCII digit */
}

static void parse_i64_uses_only_len_bytes(void **state)
{
    static const char nul_inside[] = {'1', '2', '\0', '3'};
    int64_t v = 0;

    (void)state;
    assert_int_equal(cn__parse_i64("12345", 3, &v), 0);
    assert_true(v == 123);
    assert_int_equal(cn__parse_i64(nul_inside, sizeof nul_inside, &v), CN_EINVAL);
}

/* ---- cn_url_escape ------------------------------------------------------ */

static void want_escaped(const char *src, size_t len, int part, const char *want)
{
    char buf[256];
    int n = cn_url_escape(buf, sizeof buf, src, len, part);

    assert_int_equal(n, (int)strlen(want));
    assert_string_equal(buf, want);
    /* measuring alone gives the same length */
    assert_int_equal(cn_url_escape(NULL, 0, src, len, part), n);
}

static void escape_unreserved_stay(void **state)
{
    (void)state;
    want_escaped("octocat", 7, CN_URL_SEGMENT, "octocat");
    want_escaped("A-Z_a.z~09", 10, CN_URL_SEGMENT, "A-Z_a.z~09");
    want_escaped("...", 3, CN_URL_SEGMENT, "...");
}

static void escape_everything_else(void **state)
{
    (void)state;
    /* the attack from the demo: decoded "../../admin/delete?all=1" */
    want_escaped("../../admin/delete?all=1", 24, CN_URL_SEGMENT,
                 "..%2F..%2Fadmin%2Fdelete%3Fall%3D1");
    want_escaped("a b+c&d=e#f%g", 13, CN_URL_QUERY, "a%20b%2Bc%26d%3De%23f%25g");
    want_escaped("\r\n", 2, CN_URL_QUERY, "%0D%0A");
    want_escaped("x\0y", 3, CN_URL_QUERY, "x%00y");
    want_escaped("\xc3\xa9\xff", 3, CN_URL_SEGMENT, "%C3%A9%FF");
    want_escaped(";,/:@!$'()*", 11, CN_URL_SEGMENT, "%3B%2C%2F%3A%40%21%24%27%28%29%2A");
}

static void escape_refuses_dot_and_empty_segments(void **state)
{
    char buf[16];

    (void)state;
    assert_int_equal(cn_url_escape(buf, sizeof buf, "", 0, CN_URL_SEGMENT), CN_EINVAL);
    assert_int_equal(cn_url_escape(buf, sizeof buf, ".", 1, CN_URL_SEGMENT), CN_EINVAL);
    assert_int_equal(cn_url_escape(buf, sizeof buf, "..", 2, CN_URL_SEGMENT), CN_EINVAL);
    /* as query values they are plain text */
    want_escaped("", 0, CN_URL_QUERY, "");
    want_escaped("..", 2, CN_URL_QUERY, "..");
}

static void escape_bad_arguments(void **state)
{
    char buf[16];

    (void)state;
    assert_int_equal(cn_url_escape(buf, sizeof buf, NULL, 1, CN_URL_QUERY), CN_EINVAL);
    assert_int_equal(cn_url_escape(NULL, 4, "a", 1, CN_URL_QUERY), CN_EINVAL);
    assert_int_equal(cn_url_escape(buf, sizeof buf, "a", 1, 7), CN_EINVAL);
}

/* A short buffer gets whole escapes only, NUL-terminated, never garbage. */
static void escape_truncates_on_escape_boundaries(void **state)
{
    char buf[5];

    (void)state;
    memset(buf, 'X', sizeof buf);
    assert_int_equal(cn_url_escape(buf, 4, "a/b", 3, CN_URL_SEGMENT), 5);
    assert_string_equal(buf, "a");
    assert_int_equal(buf[4], 'X');
    assert_int_equal(cn_url_escape(buf, 5, "a/b", 3, CN_URL_SEGMENT), 5);
    assert_string_equal(buf, "a%2F");
    assert_int_equal(cn_url_escape(buf, 1, "ab", 2, CN_URL_SEGMENT), 2);
    assert_string_equal(buf, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(decode_plain_text_is_unchanged),
        cmocka_unit_test(decode_valid_escapes),
        cmocka_unit_test(decode_plus_is_space_in_queries_only),
        cmocka_unit_test(decode_truncated_escape_is_refused),
        cmocka_unit_test(decode_invalid_hex_is_refused),
        cmocka_unit_test(decode_nul_is_refused),
        cmocka_unit_test(decode_empty),
        cmocka_unit_test(decode_stops_at_len),
        cmocka_unit_test(query_simple_lookup),
        cmocka_unit_test(query_first_match_wins),
        cmocka_unit_test(query_names_are_compared_decoded),
        cmocka_unit_test(query_value_stays_encoded),
        cmocka_unit_test(query_bare_flag_gives_empty_value),
        cmocka_unit_test(query_empty_value),
        cmocka_unit_test(query_missing_name),
        cmocka_unit_test(query_names_that_are_prefixes),
        cmocka_unit_test(query_empty_pieces_are_skipped),
        cmocka_unit_test(query_is_bounded_by_qlen),
        cmocka_unit_test(query_malformed_escape_in_a_name_never_matches),
        cmocka_unit_test(parse_i64_ordinary_values),
        cmocka_unit_test(parse_i64_limits),
        cmocka_unit_test(parse_i64_overflow_is_erange),
        cmocka_unit_test(parse_i64_sign_only_is_einval),
        cmocka_unit_test(parse_i64_empty_is_einval),
        cmocka_unit_test(parse_i64_spaces_and_junk_are_einval),
        cmocka_unit_test(parse_i64_uses_only_len_bytes),
        cmocka_unit_test(escape_unreserved_stay),
        cmocka_unit_test(escape_everything_else),
        cmocka_unit_test(escape_refuses_dot_and_empty_segments),
        cmocka_unit_test(escape_bad_arguments),
        cmocka_unit_test(escape_truncates_on_escape_boundaries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
