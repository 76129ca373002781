/*
 * 15_items_test.c -- chapter 15: the items service under test, with cmocka
 * and Canteen's test client (FastAPI's TestClient): the real stack, no
 * socket, no port. Built with 15_items.c compiled with -DITEMS_NO_MAIN.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <canteen.h>

cn_app *items_app(void);

/* One app and one client for the whole group (cmocka hands the group's
 * state to every test). */
typedef struct fixture {
    cn_app *app;
    cn_test_client *tc;
} fixture;

static fixture fx;

static int group_setup(void **state)
{
    fx.app = items_app();
    if (fx.app == NULL || cn_test_client_new(fx.app, &fx.tc) < 0) /* runs startup hooks */
        return -1;
    *state = fx.tc;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    cn_test_client_free(fx.tc); /* runs shutdown hooks */
    cn_app_free(fx.app);
    return 0;
}

static void test_read_item(void **state)
{
    cn_test_client *tc = *state;
    cn_test_response r;

    assert_int_equal(cn_test_get(tc, "/items/2", &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"id\":2,\"name\":\"pencil\"}");
    cn_test_response_free(&r);

    assert_int_equal(cn_test_get(tc, "/items/9", &r), 0);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "{\"detail\":\"Item not found\"}");
    cn_test_response_free(&r);
}

static void test_create_item_checks_the_body(void **state)
{
    cn_test_client *tc = *state;
    const char *json = "{\"name\":\"pen\",\"price\":\"1.5\"}";
    const char *bad = "{\"name\":\"pen\"}";
    cn_test_response r;

    assert_int_equal(cn_test_request(tc, "POST", "/items", NULL, json, strlen(json), 0, &r), 0);
    assert_int_equal(r.status, 201);
    assert_string_equal(r.body, "{\"name\":\"pen\",\"price\":1.5,\"tags\":[]}");
    cn_test_response_free(&r);

    assert_int_equal(cn_test_request(tc, "POST", "/items", NULL, bad, strlen(bad), 0, &r), 0);
    assert_int_equal(r.status, 422);
    assert_string_equal(r.body, "{\"detail\":[{\"type\":\"missing\",\"loc\":[\"body\",\"price\"],"
                                "\"msg\":\"Field required\",\"input\":{\"name\":\"pen\"}}]}");
    cn_test_response_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_item),
        cmocka_unit_test(test_create_item_checks_the_body),
    };
    return cmocka_run_group_tests_name("items", tests, group_setup, group_teardown);
}
