/* test_error.c -- the error table (cn_strerror, cn_err_name) and HTTP reasons. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "canteen.h"

typedef struct entry {
    int code;
    const char *name;
    const char *msg;
} entry;

static const entry table[] = {
#define ENTRY(name, value, msg) {CN_E##name, "CN_E" #name, msg},
    CN_ERRNO_MAP(ENTRY)
#undef ENTRY
};

#define NENTRIES (sizeof(table) / sizeof(table[0]))

static void every_code_is_negative_and_distinct(void **state)
{
    (void)state;
    for (size_t i = 0; i < NENTRIES; i++) {
        assert_true(table[i].code < 0);
        for (size_t j = i + 1; j < NENTRIES; j++)
            assert_int_not_equal(table[i].code, table[j].code);
    }
}

static void codes_are_negated_errnos_or_own_codes(void **state)
{
    /* a -errno (small), or Canteen's own at -5000 and below: never in
     * libuv's private range (UV_EOF is -4095, UV_EAI_* near -3000) */
    (void)state;
    for (size_t i = 0; i < NENTRIES; i++)
        assert_true(table[i].code <= -5000 || table[i].code > -1000);
    assert_true(CN_EBADJSON <= -5000);
    assert_true(CN_EBADHEADER <= -5000);
}

static void strerror_gives_the_table_message_for_every_code(void **state)
{
    (void)state;
    for (size_t i = 0; i < NENTRIES; i++) {
        const char *m = cn_strerror(table[i].code);
        assert_non_null(m);
        assert_true(m[0] != 0);
        assert_string_equal(m, table[i].msg);
    }
}

static void strerror_messages_are_distinct(void **state)
{
    (void)state;
    for (size_t i = 0; i < NENTRIES; i++)
        for (size_t j = i + 1; j < NENTRIES; j++)
            assert_string_not_equal(cn_strerror(table[i].code), cn_strerror(table[j].code));
}

static void err_name_gives_cn_e_name_for_every_code(void **state)
{
    (void)state;
    for (size_t i = 0; i < NENTRIES; i++) {
        const char *n = cn_err_name(table[i].code);
        assert_non_null(n);
        assert_string_equal(n, table[i].name);
    }
}

static void err_names_are_distinct(void **state)
{
    (void)state;
    for (size_t i = 0; i < NENTRIES; i++)
        for (size_t j = i + 1; j < NENTRIES; j++)
            assert_string_not_equal(cn_err_name(table[i].code), cn_err_name(table[j].code));
}

static void errno_codes_equal_libuv_codes(void **state)
{
    (void)state;
    assert_int_equal(CN_ENOMEM, UV_ENOMEM);
    assert_int_equal(CN_EINVAL, UV_EINVAL);
    assert_int_equal(CN_ECANCELED, UV_ECANCELED);
    assert_int_equal(CN_ETIMEDOUT, UV_ETIMEDOUT);
    assert_int_equal(CN_EADDRINUSE, UV_EADDRINUSE);
    assert_int_equal(CN_ECONNREFUSED, UV_ECONNREFUSED);
    assert_int_equal(CN_EPIPE, UV_EPIPE);
}

static void libuv_codes_pass_through(void **state)
{
    (void)state;
    /* UV_EOF is -4095: not in Canteen's table, so libuv's words are used */
    assert_string_equal(cn_strerror(-4095), uv_strerror(UV_EOF));
    assert_string_equal(cn_strerror(-4095), "end of file");
    assert_string_equal(cn_err_name(-4095), "EOF");
    assert_string_equal(cn_strerror(UV_ECONNRESET), uv_strerror(UV_ECONNRESET));
    assert_string_equal(cn_err_name(UV_ECONNRESET), "ECONNRESET");
}

static void zero_is_success(void **state)
{
    (void)state;
    assert_non_null(cn_strerror(0));
    assert_true(cn_strerror(0)[0] != 0);
    assert_non_null(cn_err_name(0));
    assert_true(cn_err_name(0)[0] != 0);
}

static void unknown_codes_give_a_string(void **state)
{
    static const int codes[] = {-123456, -4999, -5999, 1, 77, -1000000};

    (void)state;
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *m = cn_strerror(codes[i]);
        const char *n = cn_err_name(codes[i]);
        assert_non_null(m);
        assert_true(m[0] != 0);
        assert_non_null(n);
        assert_true(n[0] != 0);
    }
}

/*
 * canteen.h: "A static ... message for any code ... the caller must not free
 * it". libuv's uv_strerror/uv_err_name strdup a fresh "Unknown system error N"
 * for codes it does not know, so each call leaks: a static answer is the same
 * pointer every time.
 */
static void unknown_code_message_is_static(void **state)
{
    (void)state;
    assert_ptr_equal(cn_strerror(-123456), cn_strerror(-123456));
    assert_ptr_equal(cn_err_name(-123456), cn_err_name(-123456));
}

static void status_reason_for_common_statuses(void **state)
{
    (void)state;
    assert_string_equal(cn_status_reason(200), "OK");
    assert_string_equal(cn_status_reason(201), "Created");
    assert_string_equal(cn_status_reason(204), "No Content");
    assert_string_equal(cn_status_reason(301), "Moved Permanently");
    assert_string_equal(cn_status_reason(304), "Not Modified");
    assert_string_equal(cn_status_reason(400), "Bad Request");
    assert_string_equal(cn_status_reason(404), "Not Found");
    assert_string_equal(cn_status_reason(405), "Method Not Allowed");
    assert_string_equal(cn_status_reason(408), "Request Timeout");
    assert_string_equal(cn_status_reason(413), "Content Too Large");
    assert_string_equal(cn_status_reason(422), "Unprocessable Content");
    assert_string_equal(cn_status_reason(431), "Request Header Fields Too Large");
    assert_string_equal(cn_status_reason(500), "Internal Server Error");
    assert_string_equal(cn_status_reason(503), "Service Unavailable");
}

static void status_reason_for_unknown_statuses(void **state)
{
    static const int codes[] = {0, -1, 99, 299, 418, 599, 600, 1000, 99999};

    (void)state;
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        assert_string_equal(cn_status_reason(codes[i]), "Unknown");
}

static void status_reason_never_null_or_empty(void **state)
{
    (void)state;
    for (int s = -10; s < 1100; s++) {
        const char *r = cn_status_reason(s);
        assert_non_null(r);
        assert_true(r[0] != 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_code_is_negative_and_distinct),
        cmocka_unit_test(codes_are_negated_errnos_or_own_codes),
        cmocka_unit_test(strerror_gives_the_table_message_for_every_code),
        cmocka_unit_test(strerror_messages_are_distinct),
        cmocka_unit_test(err_name_gives_cn_e_name_for_every_code),
        cmocka_unit_test(err_names_are_distinct),
        cmocka_unit_test(errno_codes_equal_libuv_codes),
        cmocka_unit_test(libuv_codes_pass_through),
        cmocka_unit_test(zero_is_success),
        cmocka_unit_test(unknown_codes_give_a_string),
        cmocka_unit_test(unknown_code_message_is_static),
        cmocka_unit_test(status_reason_for_common_statuses),
        cmocka_unit_test(status_reason_for_unknown_statuses),
        cmocka_unit_test(status_reason_never_null_or_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
