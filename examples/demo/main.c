/*
 * canteen-demo -- the async guide's service, runnable offline.
 *
 *   canteen-demo [--host 127.0.0.1] [--port 8000] [--workers N] [--access-log]
 *                [--with-traps] ... (--help lists them all)
 *
 * The operator's options (--host, --port, --workers, --log-level, ...) and
 * their CANTEEN_* variables are cn_cli's (<canteen/cli.h>); the rest are
 * the demo's own.
 *
 * --database URL (or the environment's DATABASE_URL) keeps the local users
 * in PostgreSQL instead of the embedded SQLite: a libpq connection string
 * or URI ("postgresql://app@localhost/app", "host=/run/postgresql"). It
 * also serves the TechEmpower database tests (tfb.c: /db, /queries,
 * /fortunes, /updates, /cached-queries, for bench/run) on a pool of their
 * own: --db-pool connections (default 8), --db-pipeline queries in flight
 * on one connection (default: the pool's; 1 turns pipelining off).
 * --with-traps adds routes that misbehave on purpose (a blocking call in an
 * async route) so that the loop-block warning can be seen. --bare leaves
 * out the web layer (web.c: request IDs, CORS, gzip, /static), for
 * benchmarks against servers that do none of that.
 */
#define _GNU_SOURCE /* fork, sigwait, prctl: the embedded upstream's process */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <canteen.h>

#include "demo.h"
#include "store.h"
#include "upstream.h"

static const char demo_usage[] =
    "canteen-demo's own options:\n"
    "  --upstream URL      the GitHub-like API to call (default: one embedded, on a free port)\n"
    "  --pool-threads N    cn_config.pool_threads (40)\n"
    "  --pool-nice N       cn_config.pool_nice (10; -1 runs them at the loop's priority)\n"
    "  --with-traps        add routes that block the loop on purpose\n"
    "  --bare              no request IDs, CORS, gzip or /static around the routes\n"
    "                      (what bench/run measures against servers that do none of it)\n"
    "  --database URL      the users in PostgreSQL (default: $DATABASE_URL, else SQLite)\n"
    "  --db-pool N         the TechEmpower routes' connections (8)\n"
    "  --db-pipeline N     their queries in flight on one connection (the pool's; 1: none)\n";

/*
 * With --workers the supervisor forks, again and again: it must have no
 * thread of its own, since a lock another thread holds at a fork stays
 * held in the child for good (an allocator's, for one). The embedded
 * upstream, a Canteen app on a thread, then runs in a process of its own,
 * started before anything else and gone with the demo. Returns its pid,
 * its URL in url; -1 and *err on failure.
 */
static pid_t upstream_process(char *url, size_t size, int *err)
{
    int fds[2];
    ssize_t n;
    pid_t pid;

    if (pipe(fds) < 0) {
        *err = CN_EAGAIN;
        return -1;
    }
    pid = fork();
    if (pid == 0) {
        sigset_t term;
        upstream *u;
        int sig;

        close(fds[0]);
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* the demo gone, it goes too */
        /* the operator's signals are for the supervisor (Ctrl-C reaches
         * the whole process group) */
        signal(SIGINT, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
        signal(SIGTTIN, SIG_IGN);
        signal(SIGTTOU, SIG_IGN);
        sigemptyset(&term);
        sigaddset(&term, SIGTERM);
        sigprocmask(SIG_BLOCK, &term, NULL); /* for sigwait, in every thread */
        u = upstream_start("127.0.0.1", 0, err);
        n = u ? (ssize_t)strlen(upstream_url(u)) : 0;
        if (write(fds[1], u ? upstream_url(u) : "", (size_t)n + 1) != n + 1 || u == NULL)
            _exit(1);
        close(fds[1]);
        sigwait(&term, &sig);
        upstream_stop(u);
        _exit(0);
    }
    close(fds[1]);
    n = pid < 0 ? -1 : read(fds[0], url, size - 1);
    close(fds[0]);
    if (n <= 1) {
        if (pid > 0)
            waitpid(pid, NULL, 0);
        *err = CN_EAGAIN;
        return -1;
    }
    url[n] = 0;
    return pid;
}

static void stop_process(pid_t pid)
{
    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
}

/* The line the tests and the deploy scripts read the port from. */
static void print_serving(const cn_cli *cli, cn_app *app, const char *upstream_url_, bool embedded,
                          bool postgres)
{
    bool v6 = strchr(cli->host, ':') != NULL;
    char workers[32] = "";

    if (cli->workers)
        snprintf(workers, sizeof workers, ", %u workers", cli->workers);
    fprintf(stderr,
            "canteen-demo: serving on http://%s%s%s:%d (Ctrl-C to stop%s); upstream %s%s; users in "
            "%s\n",
            v6 ? "[" : "", cli->host, v6 ? "]" : "", cn_app_port(app), workers, upstream_url_,
            embedded ? " (embedded)" : "", postgres ? "PostgreSQL" : "SQLite (embedded)");
}

int main(int argc, char **argv)
{
    const char *upstream_arg = NULL, *upstream_base, *database = getenv("DATABASE_URL");
    int rc, with_traps = 0, bare = 0, db_pool = 8, db_pipeline = 0;
    upstream *up = NULL;
    pid_t up_pid = -1;
    char up_url[64];
    cn_config cfg;
    cn_cli cli;
    cn_app *app;

    cn_cli_init(&cli, "canteen-demo", CN_VERSION_STRING);
    cli.usage = demo_usage;
    rc = cn_cli_parse(&cli, &argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    cn_config_init(&cfg);
    cn_cli_config(&cli, &cfg);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--database") == 0 && i + 1 < argc) {
            database = argv[++i];
        } else if (strcmp(argv[i], "--db-pool") == 0 && i + 1 < argc) {
            db_pool = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--db-pipeline") == 0 && i + 1 < argc) {
            db_pipeline = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--upstream") == 0 && i + 1 < argc) {
            upstream_arg = argv[++i];
        } else if (strcmp(argv[i], "--pool-threads") == 0 && i + 1 < argc) {
            cfg.pool_threads = (unsigned)atoi(argv[++i]);
        } else if (strcmp(argv[i], "--pool-nice") == 0 && i + 1 < argc) {
            /* 0 keeps the default (+10); -1 runs workers at the loop's priority */
            int nice = atoi(argv[++i]);
            cfg.pool_nice = nice == 0 ? CN_DEFAULT_POOL_NICE : nice;
        } else if (strcmp(argv[i], "--with-traps") == 0) {
            with_traps = 1;
        } else if (strcmp(argv[i], "--bare") == 0) {
            bare = 1;
        } else {
            fprintf(stderr, "canteen-demo: unknown option %s (see --help)\n", argv[i]);
            return 2;
        }
    }
    /* the guide's external API: a real one if named, else our own offline */
    if (upstream_arg) {
        upstream_base = upstream_arg;
    } else if (cfg.workers > 0) {
        up_pid = upstream_process(up_url, sizeof up_url, &rc);
        if (up_pid < 0) {
            fprintf(stderr, "canteen-demo: embedded upstream: %s\n", cn_strerror(rc));
            return 1;
        }
        upstream_base = up_url;
    } else {
        up = upstream_start("127.0.0.1", 0, &rc);
        if (up == NULL) {
            fprintf(stderr, "canteen-demo: embedded upstream: %s\n", cn_strerror(rc));
            return 1;
        }
        upstream_base = upstream_url(up);
    }
    app = cn_app_new(&cfg);
    if (app == NULL) {
        fprintf(stderr, "canteen-demo: out of memory\n");
        upstream_stop(up);
        stop_process(up_pid);
        return 1;
    }
    rc = demo_register(app);
    if (rc == 0 && !bare)
        rc = demo_register_web(app);
    if (rc == 0 && with_traps)
        rc = demo_register_traps(app);
    if (rc == 0 && database && *database && (rc = demo_use_database(app, database)) < 0) {
        fprintf(stderr, "canteen-demo: --database: %s\n",
                rc == CN_EINVAL ? "not a connection string libpq accepts (or built without "
                                  "libcanteen-pg)"
                                : cn_strerror(rc));
    } else if (rc == 0 && database && *database &&
               (rc = demo_register_tfb(app, database, db_pool > 0 ? (unsigned)db_pool : 8,
                                       db_pipeline > 0 ? (unsigned)db_pipeline : 0)) < 0) {
        fprintf(stderr, "canteen-demo: the TechEmpower routes: %s\n", cn_strerror(rc));
    } else {
        if (rc == 0)
            rc = demo_register_fetch(app, upstream_base);
        if (rc < 0)
            fprintf(stderr, "canteen-demo: %s\n", cn_strerror(rc));
        else if ((rc = cn_cli_listen(&cli, app)) == 0)
            print_serving(&cli, app, upstream_base, up != NULL || up_pid > 0,
                          database && *database);
    }
    if (rc < 0) {
        cn_app_free(app);
        upstream_stop(up);
        stop_process(up_pid);
        return 1;
    }
    rc = cn_app_run(app);
    cn_app_free(app);
    if (up) {
        fprintf(stderr, "canteen-demo: the embedded upstream accepted %llu connection(s)\n",
                (unsigned long long)upstream_connections(up));
        upstream_stop(up);
    }
    stop_process(up_pid);
    store_close();
    if (rc < 0) {
        fprintf(stderr, "canteen-demo: %s\n", cn_strerror(rc));
        return 1;
    }
    return 0;
}
