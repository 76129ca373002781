/*
 * cli.c -- a service's command line and environment (canteen/cli.h).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canteen.h"
#include "canteen/cli.h"
#include "common.h"

void cn_cli_init(cn_cli *cli, const char *prog, const char *version)
{
    memset(cli, 0, sizeof(*cli));
    cli->host = "127.0.0.1";
    cli->port = 8000;
    cli->log_level = CN_LOG_INFO;
    cli->shutdown_timeout_ms = -1;
    cli->worker_timeout_ms = -1;
    cli->prog = prog;
    cli->version = version;
}

typedef struct option {
    const char *flag;
    const char *env;
    const char *arg; /* NULL: a switch */
    const char *help;
} option;

enum {
    O_HOST,
    O_PORT,
    O_WORKERS,
    O_LOG_LEVEL,
    O_ACCESS_LOG,
    O_NO_ACCESS_LOG,
    O_ACCESS_LOG_FORMAT,
    O_FORWARDED,
    O_SHUTDOWN,
    O_HEALTHCHECK,
    O_HELP,
    O_VERSION,
};

static const option options[] = {
    [O_HOST] = {"--host", "CANTEEN_HOST", "HOST", "address to listen on (127.0.0.1)"},
    [O_PORT] = {"--port", "CANTEEN_PORT", "PORT", "port to listen on, 0 for any free one (8000)"},
    [O_WORKERS] = {"--workers", "CANTEEN_WORKERS", "N",
                   "worker processes, supervised; 0 serves in this process (0)"},
    [O_LOG_LEVEL] = {"--log-level", "CANTEEN_LOG_LEVEL", "LEVEL",
                     "critical, error, warning, info, debug or trace (info)"},
    [O_ACCESS_LOG] = {"--access-log", "CANTEEN_ACCESS_LOG", NULL,
                      "log one line per request (off; the variable takes 1 or 0)"},
    [O_NO_ACCESS_LOG] = {"--no-access-log", NULL, NULL, "do not"},
    [O_ACCESS_LOG_FORMAT] = {"--access-log-format", "CANTEEN_ACCESS_LOG_FORMAT", "FORMAT",
                             "uvicorn, combined, or a template of $variables (uvicorn)"},
    [O_FORWARDED] = {"--forwarded-allow-ips", "CANTEEN_FORWARDED_ALLOW_IPS", "LIST",
                     "proxies whose Forwarded/X-Forwarded-For name the client: addresses, "
                     "ranges, or * (none)"},
    [O_SHUTDOWN] = {"--timeout-graceful-shutdown", "CANTEEN_TIMEOUT_GRACEFUL_SHUTDOWN", "SECONDS",
                    "how long SIGTERM waits for requests in flight (10)"},
    [O_HEALTHCHECK] = {"--timeout-worker-healthcheck", "CANTEEN_TIMEOUT_WORKER_HEALTHCHECK",
                       "SECONDS",
                       "a worker whose loop is stuck this long is replaced; 0: never (30)"},
    [O_HELP] = {"--help", NULL, NULL, "this text"},
    [O_VERSION] = {"--version", NULL, NULL, "the program's and Canteen's versions"},
};

static const char *prog_name(const cn_cli *cli, char **argv)
{
    const char *p;

    if (cli->prog)
        return cli->prog;
    if (argv == NULL || argv[0] == NULL)
        return "canteen";
    p = strrchr(argv[0], '/');
    return p ? p + 1 : argv[0];
}

static void usage(const cn_cli *cli, const char *prog)
{
    printf("usage: %s [options]\n\noptions (and the environment variable for each; a flag wins):\n",
           prog);
    for (size_t i = 0; i < CN__ARRAY_SIZE(options); i++) {
        const option *o = &options[i];
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", o->flag, o->arg ? " " : "", o->arg ? o->arg : "");
        printf("  %-36s %s%s%s%s\n", left, o->help, o->env ? " [" : "", o->env ? o->env : "",
               o->env ? "]" : "");
    }
    printf("\nStarted by systemd with socket activation (LISTEN_FDS), it serves the sockets\n"
           "passed and ignores --host and --port. SIGTERM or SIGINT stops it gracefully;\n"
           "with workers, SIGHUP restarts them one at a time, SIGTTIN and SIGTTOU add or\n"
           "remove one.\n");
    if (cli->usage)
        printf("\n%s%s", cli->usage, cli->usage[strlen(cli->usage) - 1] == '\n' ? "" : "\n");
}

static bool parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;

    if (s == NULL || *s == 0)
        return false;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool parse_level(const char *s, int *out)
{
    static const struct {
        const char *name;
        int level;
    } levels[] = {{"critical", CN_LOG_ERROR}, {"error", CN_LOG_ERROR}, {"warning", CN_LOG_WARN},
                  {"warn", CN_LOG_WARN},      {"info", CN_LOG_INFO},   {"debug", CN_LOG_INFO},
                  {"trace", CN_LOG_INFO}};

    for (size_t i = 0; i < CN__ARRAY_SIZE(levels); i++)
        if (cn__ieq(s, strlen(s), levels[i].name)) {
            *out = levels[i].level;
            return true;
        }
    return false;
}

static bool parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"}, *const no[] = {"0", "false", "no",
                                                                                "off", ""};
    for (size_t i = 0; i < CN__ARRAY_SIZE(yes); i++)
        if (cn__ieq(s, strlen(s), yes[i])) {
            *out = 1;
            return true;
        }
    for (size_t i = 0; i < CN__ARRAY_SIZE(no); i++)
        if (cn__ieq(s, strlen(s), no[i])) {
            *out = 0;
            return true;
        }
    return false;
}

/* Apply one option's value; false if it does not parse. */
static bool apply(cn_cli *cli, int opt, const char *v)
{
    long n;

    switch (opt) {
    case O_HOST:
        if (*v == 0)
            return false;
        cli->host = v;
        return true;
    case O_PORT:
        if (!parse_long(v, 0, 65535, &n))
            return false;
        cli->port = (int)n;
        return true;
    case O_WORKERS:
        if (!parse_long(v, 0, CN_WORKERS_MAX, &n))
            return false;
        cli->workers = (unsigned)n;
        return true;
    case O_LOG_LEVEL:
        return parse_level(v, &cli->log_level);
    case O_ACCESS_LOG:
        return parse_bool(v, &cli->access_log);
    case O_ACCESS_LOG_FORMAT:
        cli->access_log_format = *v ? v : NULL;
        return true;
    case O_FORWARDED:
        cli->forwarded_allow_ips = *v ? v : NULL;
        return true;
    case O_SHUTDOWN:
    case O_HEALTHCHECK:
        if (!parse_long(v, 0, INT_MAX / 1000, &n))
            return false;
        if (opt == O_SHUTDOWN)
            cli->shutdown_timeout_ms = (int)(n * 1000);
        else
            cli->worker_timeout_ms = (int)(n * 1000);
        return true;
    default:
        return false;
    }
}

int cn_cli_parse(cn_cli *cli, int *argc, char **argv)
{
    const char *prog = prog_name(cli, argv);
    int out = 1;

    if (cli == NULL || argc == NULL || *argc < 0 || (argv == NULL && *argc > 0))
        return CN_EINVAL;
    /* the environment first: the flags then win */
    for (size_t i = 0; i < CN__ARRAY_SIZE(options); i++) {
        const char *v = options[i].env ? getenv(options[i].env) : NULL;
        if (v && !apply(cli, (int)i, v)) {
            fprintf(stderr, "%s: %s=%s: not a valid value (%s)\n", prog, options[i].env, v,
                    options[i].help);
            return CN_EINVAL;
        }
    }
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i], *eq = strchr(a, '=');
        size_t flen = eq ? (size_t)(eq - a) : strlen(a);
        size_t k;

        if (strcmp(a, "--") == 0) {
            /* the rest is the program's ("--" itself is taken) */
            for (i++; i < *argc;)
                argv[out++] = argv[i++];
            break;
        }
        for (k = 0; k < CN__ARRAY_SIZE(options); k++)
            if (strlen(options[k].flag) == flen && strncmp(options[k].flag, a, flen) == 0)
                break;
        if (k == CN__ARRAY_SIZE(options)) {
            argv[out++] = argv[i]; /* the program's own */
            continue;
        }
        if (k == O_HELP || k == O_VERSION) {
            if (k == O_HELP)
                usage(cli, prog);
            else if (cli->version)
                printf("%s %s (Canteen %s)\n", prog, cli->version, cn_version_string());
            else
                printf("%s (Canteen %s)\n", prog, cn_version_string());
            return 1;
        }
        if (options[k].arg == NULL) {
            if (eq) {
                fprintf(stderr, "%s: %s takes no value\n", prog, options[k].flag);
                return CN_EINVAL;
            }
            cli->access_log = k == O_ACCESS_LOG;
            continue;
        }
        const char *v = eq ? eq + 1 : (i + 1 < *argc ? argv[++i] : NULL);
        if (v == NULL) {
            fprintf(stderr, "%s: %s needs a value: %s %s\n", prog, options[k].flag, options[k].flag,
                    options[k].arg);
            return CN_EINVAL;
        }
        if (!apply(cli, (int)k, v)) {
            fprintf(stderr, "%s: %s %s: not a valid value (%s)\n", prog, options[k].flag, v,
                    options[k].help);
            return CN_EINVAL;
        }
    }
    if (*argc > 0) {
        argv[out] = NULL;
        *argc = out;
    }
    return 0;
}

void cn_cli_config(const cn_cli *cli, cn_config *cfg)
{
    cfg->workers = cli->workers;
    cfg->access_log = cli->access_log;
    cfg->access_log_format = cli->access_log_format;
    cfg->forwarded_allow_ips = cli->forwarded_allow_ips;
    cfg->handle_signals = 1;
    if (cli->shutdown_timeout_ms >= 0)
        cfg->shutdown_timeout_ms = (unsigned)cli->shutdown_timeout_ms;
    if (cli->worker_timeout_ms >= 0)
        cfg->worker_timeout_ms = (unsigned)cli->worker_timeout_ms;
    cn_log_set_level(cli->log_level);
}

int cn_cli_listen(const cn_cli *cli, cn_app *app)
{
    const char *prog = cli->prog ? cli->prog : "canteen";
    bool v6 = strchr(cli->host, ':') != NULL;
    int rc = cn_app_listen_systemd(app);

    if (rc > 0)
        return 0;
    if (rc < 0) {
        fprintf(stderr, "%s: the sockets systemd passed cannot be used: %s\n", prog,
                cn_strerror(rc));
        return rc;
    }
    rc = cn_app_listen(app, cli->host, cli->port);
    if (rc == CN_EADDRINUSE)
        fprintf(stderr,
                "%s: %s%s%s:%d is already in use (another server is running there?): stop it, or "
                "choose another port with --port or CANTEEN_PORT\n",
                prog, v6 ? "[" : "", cli->host, v6 ? "]" : "", cli->port);
    else if (rc == -EACCES)
        fprintf(stderr,
                "%s: port %d needs privileges (ports below 1024 do): choose --port 8000, say\n",
                prog, cli->port);
    else if (rc < 0)
        fprintf(stderr, "%s: cannot listen on %s%s%s:%d: %s\n", prog, v6 ? "[" : "", cli->host,
                v6 ? "]" : "", cli->port, cn_strerror(rc));
    return rc;
}
