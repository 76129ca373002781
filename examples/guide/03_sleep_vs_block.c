/*
 * 03_sleep_vs_block.c -- chapter 3: cn_sleep against a blocking sleep.
 *
 *   GET /nap/{ms:int}     waits with cn_sleep: the loop goes on
 *   GET /block/{ms:int}   waits with nanosleep(2) inside an async route: the
 *                         loop stops (the trap the detector reports)
 *   GET /ping             answers at once, when the loop is free to answer
 *   GET /loop             the loop's health (cn_app_loop_stats)
 *   GET /ticks/{n:int}    a streamed response: n NDJSON lines, one every
 *                         every_ms (query, default 100), each sent when made
 *   GET /ticks-sync/{n:int}  the same handler as a sync route: CN_ENOTCORO
 *   GET /bulk/{mib:int}   mib MiB streamed in 64 KiB pieces: a slow client
 *                         parks the writer, memory stays about 256 KiB
 *
 *   ./03_sleep_vs_block 8000 &
 *   curl -s localhost:8000/block/300 & sleep 0.05; \
 *   curl -s -w ' %{time_total}s\n' localhost:8000/ping; wait
 *   curl -sN localhost:8000/ticks/5
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <canteen.h>

static int nap(cn_req *req, cn_res *res)
{
    int64_t ms;
    int rc;

    cn_req_param_int(req, "ms", &ms);
    rc = cn_sleep(ms); /* right: parks this request only */
    if (rc < 0)
        return rc;
    return cn_res_text(res, 200, "napped\n");
}

static int block(cn_req *req, cn_res *res)
{
    int64_t ms;
    struct timespec ts;

    cn_req_param_int(req, "ms", &ms);
    ts.tv_sec = (time_t)(ms / 1000);
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    nanosleep(&ts, NULL); /* wrong in an async route: every request waits */
    return cn_res_text(res, 200, "blocked\n");
}

/* A body made over time (StreamingResponse): each line goes out when made. */
static int ticks(cn_req *req, cn_res *res)
{
    int64_t n, every_ms = 100, sent = 0;
    char line[64];
    int rc;

    cn_req_param_int(req, "n", &n);
    cn_req_query_int(req, "every_ms", &every_ms);
    rc = cn_res_stream_begin(res, 200, "application/x-ndjson");
    while (rc == 0 && sent < n) {
        int len = snprintf(line, sizeof line, "{\"tick\":%lld,\"of\":%lld}\n", (long long)sent,
                           (long long)n);
        rc = cn_res_stream_write(res, line, (size_t)len); /* parks while the client is behind */
        if (rc == 0 && ++sent < n)
            rc = cn_sleep(every_ms); /* the loop serves everyone else meanwhile */
    }
    if (rc == CN_ECANCELED) /* the client left: stop making lines nobody reads */
        printf("GET /ticks: client gone after %lld of %lld lines\n", (long long)sent, (long long)n);
    return rc < 0 ? rc : cn_res_stream_end(res);
}

/* A big body in pieces: as fast as the client takes it, and no faster. */
static int bulk(cn_req *req, cn_res *res)
{
    int64_t mib, kib = 0;
    size_t piece_len = 64 * 1024;
    char *piece = cn_req_alloc(req, piece_len); /* freed with the request */
    cn_stats st;
    int rc;

    if (piece == NULL)
        return CN_ENOMEM;
    memset(piece, '.', piece_len);
    cn_req_param_int(req, "mib", &mib);
    rc = cn_res_stream_begin(res, 200, "text/plain");
    while (rc == 0 && kib < mib * 1024) {
        rc = cn_res_stream_write(res, piece, piece_len); /* copied: piece is ours again */
        if (rc == 0)
            kib += 64;
    }
    cn_app_stats(cn_req_app(req), &st);
    printf("GET /bulk: %s after %lld KiB; at most %llu KiB waited in memory\n",
           rc == 0 ? "ended" : cn_err_name(rc), (long long)kib,
           (unsigned long long)(st.write_queue_peak / 1024));
    return rc < 0 ? rc : cn_res_stream_end(res);
}

static int ping(cn_req *req, cn_res *res)
{
    (void)req;
    return cn_res_text(res, 200, "pong");
}

static int loop(cn_req *req, cn_res *res)
{
    cn_loop_stats st;
    cJSON *o = cJSON_CreateObject();

    cn_app_loop_stats(cn_req_app(req), &st);
    cJSON_AddNumberToObject(o, "lag_ms_max", st.lag_ms_max);
    cJSON_AddNumberToObject(o, "slow_steps", (double)st.slow_steps);
    cJSON_AddNumberToObject(o, "slowest_ms", st.slowest_ms);
    return cn_res_json(res, 200, o);
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 8000;
    cn_config cfg = {.handle_signals = 1};
    cn_route_opts sync = {.mode = CN_ROUTE_SYNC};
    cn_app *app = cn_app_new(&cfg);
    int rc;

    if (app == NULL)
        return 1;
    setvbuf(stdout, NULL, _IOLBF, 0); /* the handlers' lines, as they happen */
    rc = cn_app_route(app, "GET /nap/{ms:int}", nap, NULL);
    if (rc == 0)
        rc = cn_app_route(app, "GET /block/{ms:int}", block, NULL);
    if (rc == 0)
        rc = cn_app_route(app, "GET /ping", ping, NULL);
    if (rc == 0)
        rc = cn_app_route(app, "GET /loop", loop, NULL);
    if (rc == 0)
        rc = cn_app_route(app, "GET /ticks/{n:int}", ticks, NULL);
    if (rc == 0)
        rc = cn_app_route_ex(app, "GET /ticks-sync/{n:int}", ticks, NULL, &sync);
    if (rc == 0)
        rc = cn_app_route(app, "GET /bulk/{mib:int}", bulk, NULL);
    if (rc == 0)
        rc = cn_app_listen(app, "127.0.0.1", port);
    if (rc == 0) {
        fprintf(stderr, "serving on http://127.0.0.1:%d\n", cn_app_port(app));
        rc = cn_app_run(app);
    }
    if (rc < 0)
        fprintf(stderr, "03_sleep_vs_block: %s\n", cn_strerror(rc));
    cn_app_free(app);
    return rc < 0;
}
