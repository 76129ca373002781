/*
 * 06_to_thread.c -- chapter 6: a blocking library called from async code.
 *
 * SQLite has no asynchronous API: every call blocks its thread until the
 * answer is in. cn_to_thread runs such a call on Canteen's thread pool and
 * parks the request (not the loop) until it returns.
 *
 *   GET /count/{n:int}   counts to n in SQL (a recursive query that keeps a
 *                        pool thread busy for a while) via cn_to_thread
 *   GET /ping            answers at once, even while queries run
 *
 *   ./06_to_thread 8000 &
 *   curl -s localhost:8000/count/3000000
 */
#define _POSIX_C_SOURCE 200809L
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <canteen.h>

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* What the query needs and what it gives back: in the request's arena. */
typedef struct count_job {
    int64_t n;
    int64_t count;
    double took_ms;
} count_job;

/* Runs on a pool thread: it may block. No awaitables, no cn_res_* here. */
static int count_rows(void *arg)
{
    count_job *job = arg;
    double t0 = now_ms();
    sqlite3 *db;
    sqlite3_stmt *st;
    int rc = CN_EINVAL;

    if (sqlite3_open(":memory:", &db) != SQLITE_OK) {
        sqlite3_close(db);
        return CN_ENOMEM;
    }
    if (sqlite3_prepare_v2(db,
                           "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c"
                           " WHERE x < ?1) SELECT count(*) FROM c",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, job->n);
        if (sqlite3_step(st) == SQLITE_ROW) {
            job->count = sqlite3_column_int64(st, 0);
            rc = 0;
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    job->took_ms = now_ms() - t0;
    return rc;
}

static int count(cn_req *req, cn_res *res)
{
    count_job *job = cn_req_alloc(req, sizeof(*job));
    int rc;

    if (job == NULL)
        return CN_ENOMEM;
    *job = (count_job){0};
    cn_req_param_int(req, "n", &job->n);
    rc = cn_to_thread(count_rows, job); /* parks until count_rows returns */
    if (rc == CN_ECANCELED) {
        /* the client left: a queued job is dropped, a running one ends first */
        printf("client gone; the query %s (%.0f ms)\n",
               job->took_ms > 0 ? "had run to its end" : "never ran", job->took_ms);
        return rc;
    }
    if (rc < 0)
        return rc;
    return cn_res_text(res, 200,
                       cn_req_sprintf(req, "count=%lld in %.0f ms on a pool thread\n",
                                      (long long)job->count, job->took_ms));
}

static int ping(cn_req *req, cn_res *res)
{
    (void)req;
    return cn_res_text(res, 200, "pong");
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 8000;
    cn_config cfg = {.handle_signals = 1};
    cn_app *app = cn_app_new(&cfg);
    int rc;

    if (app == NULL)
        return 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    rc = cn_app_route(app, "GET /count/{n:int}", count, NULL);
    if (rc == 0)
        rc = cn_app_route(app, "GET /ping", ping, NULL);
    if (rc == 0)
        rc = cn_app_listen(app, "127.0.0.1", port);
    if (rc == 0) {
        fprintf(stderr, "serving on http://127.0.0.1:%d\n", cn_app_port(app));
        rc = cn_app_run(app);
    }
    if (rc < 0)
        fprintf(stderr, "06_to_thread: %s\n", cn_strerror(rc));
    cn_app_free(app);
    return rc < 0;
}
