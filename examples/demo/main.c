/*
 * canteen-demo -- the async guide's service, runnable offline.
 *
 *   canteen-demo [--host 127.0.0.1] [--port 8000] [--access-log] [--with-traps]
 *                [--database URL [--db-pool N] [--db-pipeline N]]
 *
 * --database URL (or the environment's DATABASE_URL) keeps the local users
 * in PostgreSQL instead of the embedded SQLite: a libpq connection string
 * or URI ("postgresql://app@localhost/app", "host=/run/postgresql"). It
 * also serves the TechEmpower database tests (tfb.c: /db, /queries,
 * /fortunes, /updates, /cached-queries, for bench/run) on a pool of their
 * own: --db-pool connections (default 8), --db-pipeline queries in flight
 * on one connection (default: the pool's; 1 turns pipelining off).
 * --with-traps adds routes that misbehave on purpose (a blocking call in an
 * async route) so that the loop-block warning can be seen.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <canteen.h>

#include "demo.h"
#include "store.h"
#include "upstream.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: canteen-demo [--host HOST] [--port PORT] [--upstream URL] [--access-log]\n"
               "                    [--pool-threads N] [--pool-nice N] [--with-traps]\n"
               "                    [--database URL]  (default: $DATABASE_URL, else SQLite)\n"
               "                    [--db-pool N] [--db-pipeline N]\n");
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    const char *upstream_arg = NULL, *upstream_base, *database = getenv("DATABASE_URL");
    int port = 8000, rc, with_traps = 0, db_pool = 8, db_pipeline = 0;
    upstream *up = NULL;
    cn_config cfg = {.handle_signals = 1};
    cn_app *app;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            host = argv[++i];
        } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--access-log") == 0) {
            cfg.access_log = 1;
        } else if (strcmp(argv[i], "--database") == 0 && i + 1 < argc) {
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
            cfg.pool_nice = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--with-traps") == 0) {
            with_traps = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    /* the guide's external API: a real one if named, else our own offline */
    if (upstream_arg) {
        upstream_base = upstream_arg;
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
        return 1;
    }
    rc = demo_register(app);
    if (rc == 0)
        rc = demo_register_web(app);
    if (rc == 0 && with_traps)
        rc = demo_register_traps(app);
    if (rc == 0 && database && *database && (rc = demo_use_database(app, database)) < 0)
        fprintf(stderr, "canteen-demo: --database: %s\n",
                rc == CN_EINVAL ? "not a connection string libpq accepts (or built without "
                                  "libcanteen-pg)"
                                : cn_strerror(rc));
    if (rc == 0 && database && *database &&
        (rc = demo_register_tfb(app, database, db_pool > 0 ? (unsigned)db_pool : 8,
                                db_pipeline > 0 ? (unsigned)db_pipeline : 0)) < 0)
        fprintf(stderr, "canteen-demo: the TechEmpower routes: %s\n", cn_strerror(rc));
    if (rc == 0)
        rc = demo_register_fetch(app, upstream_base);
    if (rc == 0)
        rc = cn_app_listen(app, host, port);
    if (rc < 0) {
        fprintf(stderr, "canteen-demo: %s:%d: %s\n", host, port, cn_strerror(rc));
        cn_app_free(app);
        upstream_stop(up);
        return 1;
    }
    fprintf(
        stderr,
        "canteen-demo: serving on http://%s%s%s:%d (Ctrl-C to stop); upstream %s%s; users in %s\n",
        strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", cn_app_port(app),
        upstream_base, up ? " (embedded)" : "",
        database && *database ? "PostgreSQL" : "SQLite (embedded)");
    rc = cn_app_run(app);
    cn_app_free(app);
    if (up) {
        fprintf(stderr, "canteen-demo: the embedded upstream accepted %llu connection(s)\n",
                (unsigned long long)upstream_connections(up));
        upstream_stop(up);
    }
    store_close();
    if (rc < 0) {
        fprintf(stderr, "canteen-demo: %s\n", cn_strerror(rc));
        return 1;
    }
    return 0;
}
