/* test_cli.c -- cn_cli: defaults, CANTEEN_* variables, flags winning, the
 * program's own arguments left in argv, bad values, cn_cli_config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "canteen.h"

static const char *const vars[] = {
    "CANTEEN_HOST",
    "CANTEEN_PORT",
    "CANTEEN_WORKERS",
    "CANTEEN_LOG_LEVEL",
    "CANTEEN_ACCESS_LOG",
    "CANTEEN_ACCESS_LOG_FORMAT",
    "CANTEEN_FORWARDED_ALLOW_IPS",
    "CANTEEN_TIMEOUT_GRACEFUL_SHUTDOWN",
    "CANTEEN_TIMEOUT_WORKER_HEALTHCHECK",
};

static int clean_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
    return 0;
}

/* Parse a NULL-terminated list of arguments (argv[0] is "svc"), copied
 * into `store` so that argv holds writable strings, as main's does. */
static char store[16][64];

static int parse(cn_cli *cli, int *argc, char **argv, const char *const *args)
{
    int n = 0;

    snprintf(store[n], sizeof store[n], "svc");
    argv[n] = store[n];
    n++;
    for (; *args; args++, n++) {
        snprintf(store[n], sizeof store[n], "%s", *args);
        argv[n] = store[n];
    }
    argv[n] = NULL;
    *argc = n;
    cn_cli_init(cli, NULL, "1.2.3");
    return cn_cli_parse(cli, argc, argv);
}

static void test_defaults(void **state)
{
    cn_cli cli;
    char *argv[8];
    int argc;

    (void)state;
    assert_int_equal(parse(&cli, &argc, argv, (const char *const[]){NULL}), 0);
    assert_string_equal(cli.host, "127.0.0.1");
    assert_int_equal(cli.port, 8000);
    assert_int_equal(cli.workers, 0);
    assert_int_equal(cli.log_level, CN_LOG_INFO);
    assert_int_equal(cli.access_log, 0);
    assert_null(cli.access_log_format);
    assert_null(cli.forwarded_allow_ips);
    assert_int_equal(cli.shutdown_timeout_ms, -1);
    assert_int_equal(cli.worker_timeout_ms, -1);
    assert_int_equal(argc, 1);
}

/* The environment sets, a flag wins; both spellings of a flag's value */
static void test_env_then_flags(void **state)
{
    cn_cli cli;
    char *argv[16];
    int argc;

    (void)state;
    setenv("CANTEEN_PORT", "9000", 1);
    setenv("CANTEEN_HOST", "0.0.0.0", 1);
    setenv("CANTEEN_WORKERS", "3", 1);
    setenv("CANTEEN_ACCESS_LOG", "1", 1);
    setenv("CANTEEN_LOG_LEVEL", "WARNING", 1);
    setenv("CANTEEN_FORWARDED_ALLOW_IPS", "10.0.0.0/8", 1);
    setenv("CANTEEN_TIMEOUT_GRACEFUL_SHUTDOWN", "3", 1);
    assert_int_equal(parse(&cli, &argc, argv, (const char *const[]){NULL}), 0);
    assert_int_equal(cli.port, 9000);
    assert_string_equal(cli.host, "0.0.0.0");
    assert_int_equal(cli.workers, 3);
    assert_int_equal(cli.access_log, 1);
    assert_int_equal(cli.log_level, CN_LOG_WARN);
    assert_string_equal(cli.forwarded_allow_ips, "10.0.0.0/8");
    assert_int_equal(cli.shutdown_timeout_ms, 3000);

    assert_int_equal(parse(&cli, &argc, argv,
                           (const char *const[]){"--port", "9100", "--workers=0", "--no-access-log",
                                                 "--log-level", "error", "--host=::1", NULL}),
                     0);
    assert_int_equal(cli.port, 9100);
    assert_int_equal(cli.workers, 0);
    assert_int_equal(cli.access_log, 0);
    assert_int_equal(cli.log_level, CN_LOG_ERROR);
    assert_string_equal(cli.host, "::1");
    assert_int_equal(argc, 1);
}

/* What the helper does not know stays in argv, in order; "--" ends its part */
static void test_program_arguments_left(void **state)
{
    cn_cli cli;
    char *argv[16];
    int argc;

    (void)state;
    assert_int_equal(parse(&cli, &argc, argv,
                           (const char *const[]){"--with-traps", "--port", "1", "--upstream",
                                                 "http://x", "--", "--port", "2", NULL}),
                     0);
    assert_int_equal(cli.port, 1);
    assert_int_equal(argc, 6);
    assert_string_equal(argv[0], "svc");
    assert_string_equal(argv[1], "--with-traps");
    assert_string_equal(argv[2], "--upstream");
    assert_string_equal(argv[3], "http://x");
    assert_string_equal(argv[4], "--port");
    assert_string_equal(argv[5], "2");
    assert_null(argv[6]);
}

static void test_bad_values(void **state)
{
    const char *const *bad[] = {
        (const char *const[]){"--port", "70000", NULL},
        (const char *const[]){"--port", "80x", NULL},
        (const char *const[]){"--port", NULL},
        (const char *const[]){"--workers", "129", NULL},
        (const char *const[]){"--log-level", "loud", NULL},
        (const char *const[]){"--access-log=1", NULL},
        (const char *const[]){"--timeout-graceful-shutdown", "-1", NULL},
    };
    cn_cli cli;
    char *argv[8];
    int argc;

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(parse(&cli, &argc, argv, bad[i]), CN_EINVAL);
    setenv("CANTEEN_WORKERS", "many", 1);
    assert_int_equal(parse(&cli, &argc, argv, (const char *const[]){NULL}), CN_EINVAL);
}

/* --help and --version print and ask the program to exit 0 */
static void test_help_version(void **state)
{
    cn_cli cli;
    char *argv[8];
    int argc;

    (void)state;
    assert_int_equal(parse(&cli, &argc, argv, (const char *const[]){"--version", NULL}), 1);
    assert_int_equal(parse(&cli, &argc, argv, (const char *const[]){"--port", "1", "--help", NULL}),
                     1);
}

static void test_config(void **state)
{
    cn_cli cli;
    cn_config cfg;
    char *argv[16];
    int argc;

    (void)state;
    assert_int_equal(
        parse(&cli, &argc, argv,
              (const char *const[]){"--workers", "2", "--access-log", "--access-log-format",
                                    "combined", "--timeout-worker-healthcheck", "0", NULL}),
        0);
    cn_config_init(&cfg);
    cn_cli_config(&cli, &cfg);
    cn_log_set_level(CN_LOG_INFO);
    assert_int_equal(cfg.workers, 2);
    assert_int_equal(cfg.access_log, 1);
    assert_string_equal(cfg.access_log_format, "combined");
    assert_int_equal(cfg.handle_signals, 1);
    assert_int_equal(cfg.worker_timeout_ms, 0);
    assert_int_equal(cfg.shutdown_timeout_ms, CN_DEFAULT_SHUTDOWN_TIMEOUT_MS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, clean_env),
        cmocka_unit_test_setup(test_env_then_flags, clean_env),
        cmocka_unit_test_setup(test_program_arguments_left, clean_env),
        cmocka_unit_test_setup(test_bad_values, clean_env),
        cmocka_unit_test_setup(test_help_version, clean_env),
        cmocka_unit_test_setup(test_config, clean_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
