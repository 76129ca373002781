/*
 * canteen/cli.h -- the command line and environment an operator expects of
 * a service, in three calls (uvicorn's options, with CANTEEN_* variables;
 * a flag wins over its variable, which wins over the default):
 *
 *     cn_cli cli;
 *     cn_cli_init(&cli, "hello", "1.0.0");
 *     int rc = cn_cli_parse(&cli, &argc, argv);
 *     if (rc != 0)
 *         return rc > 0 ? 0 : 2;            // --help/--version, or a bad option
 *     cn_config cfg;
 *     cn_config_init(&cfg);
 *     cn_cli_config(&cli, &cfg);
 *     cn_app *app = cn_app_new(&cfg);
 *     ...routes...
 *     rc = cn_cli_listen(&cli, app);        // systemd's sockets, or --host:--port
 *     if (rc == 0)
 *         rc = cn_app_run(app);
 *
 *   --host HOST                     CANTEEN_HOST                      127.0.0.1
 *   --port PORT                     CANTEEN_PORT                      8000
 *   --workers N                     CANTEEN_WORKERS                   0 (one process)
 *   --log-level LEVEL               CANTEEN_LOG_LEVEL                 info
 *   --access-log, --no-access-log   CANTEEN_ACCESS_LOG (1/0)          off
 *   --access-log-format FORMAT      CANTEEN_ACCESS_LOG_FORMAT         uvicorn
 *   --forwarded-allow-ips LIST      CANTEEN_FORWARDED_ALLOW_IPS       none
 *   --timeout-graceful-shutdown S   CANTEEN_TIMEOUT_GRACEFUL_SHUTDOWN the config's (10)
 *   --timeout-worker-healthcheck S  CANTEEN_TIMEOUT_WORKER_HEALTHCHECK the config's (30)
 *   --help, --version
 *
 * LEVEL is critical, error, warning, info, debug or trace (uvicorn's words;
 * Canteen logs error, warning and info: critical is error, debug and trace
 * are info). Values may also be given as --port=8000.
 */
#ifndef CANTEEN_CLI_H
#define CANTEEN_CLI_H

#include <canteen.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What the command line and the environment said. Strings point into argv
 * or the environment: valid as long as those are. */
typedef struct cn_cli {
    const char *host;
    int port;
    unsigned workers;
    int log_level;  /* CN_LOG_* */
    int access_log; /* 0 or 1 */
    const char *access_log_format;
    const char *forwarded_allow_ips;
    int shutdown_timeout_ms; /* -1: the config's own */
    int worker_timeout_ms;   /* -1: the config's own */
    const char *prog;        /* the name in messages */
    const char *version;     /* what --version prints, before Canteen's */
    const char *usage;       /* the program's own options, for --help */
    void *reserved[8];       /* room for new options: leave zero */
} cn_cli;

/*
 * Fill *cli with the defaults above. `prog` names the program in messages
 * and --help (NULL: argv[0]'s last part, at parse time); `version` is
 * printed by --version (NULL: Canteen's alone). Both are kept, not copied.
 * Set cli->usage to a text describing the program's own options, if any.
 */
CN_EXTERN void cn_cli_init(cn_cli *cli, const char *prog, const char *version);

/*
 * Read the CANTEEN_* variables, then the options in argv. The options it
 * knows are taken out of argv (and *argc lowered): what is left is the
 * program's own, in their order, argv[0] first. Returns 0 to go on; 1 when
 * --help or --version was printed on stdout (exit with 0); CN_EINVAL for a
 * bad value or a missing one, said in one line on stderr (exit with 2).
 */
CN_EXTERN int cn_cli_parse(cn_cli *cli, int *argc, char **argv);

/*
 * Copy what was read into a config (workers, access_log,
 * access_log_format, forwarded_allow_ips, the timeouts given), turn on
 * handle_signals, and set the log level (cn_log_set_level). Call it before
 * cn_app_new (which copies the config and its strings).
 */
CN_EXTERN void cn_cli_config(const cn_cli *cli, cn_config *cfg);

/*
 * Listen as the operator asked: on the sockets systemd passed
 * (cn_app_listen_systemd), or else on --host and --port. A failure is said
 * in one line on stderr with what to do (a port in use: stop the other
 * server or choose another --port) and returned: the codes of
 * cn_app_listen and cn_app_listen_systemd.
 */
CN_EXTERN int cn_cli_listen(const cn_cli *cli, cn_app *app);

#ifdef __cplusplus
}
#endif

#endif /* CANTEEN_CLI_H */
