/*
 * 02_event_loop.c -- chapter 2: one thread, many orders in flight.
 *
 *   GET /order/{name}?cook_ms=N   logs when the order is placed and when it
 *                                 is served; waits N ms (default 500) in
 *                                 cn_sleep
 *   GET /count/{n:int}            counts to n in slices of 1,000,000 and
 *                                 calls cn_yield() between slices
 *
 *   ./02_event_loop 8000 &
 *   curl -s 'localhost:8000/order/alice?cook_ms=300' & \
 *   curl -s 'localhost:8000/order/bob?cook_ms=100' & \
 *   curl -s 'localhost:8000/order/carol?cook_ms=200' & wait
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <canteen.h>

static double start_ms;

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6 - start_ms;
}

/* Plain sequential C: the wait in the middle is a park, not a block. */
static int order(cn_req *req, cn_res *res)
{
    const char *name = cn_req_param(req, "name");
    int64_t cook_ms = 500;
    int rc;

    cn_req_query_int(req, "cook_ms", &cook_ms);
    printf("%7.1f ms  %-5s order placed  (thread %#lx)\n", now_ms(), name,
           (unsigned long)pthread_self());
    rc = cn_sleep(cook_ms); /* the loop serves the other orders meanwhile */
    if (rc < 0)
        return rc;
    printf("%7.1f ms  %-5s served        (thread %#lx)\n", now_ms(), name,
           (unsigned long)pthread_self());
    return cn_res_text(res, 200, cn_req_sprintf(req, "%s: served\n", name));
}

/* A long loop that gives the loop a turn between slices. */
static int count(cn_req *req, cn_res *res)
{
    int64_t n, yields = 0;
    volatile int64_t sum = 0;

    cn_req_param_int(req, "n", &n);
    for (int64_t i = 0; i < n; i++) {
        sum += i;
        if (i % 1000000 == 999999) {
            int rc = cn_yield(); /* let every other ready request run once */
            if (rc < 0)
                return rc;
            yields++;
        }
    }
    return cn_res_text(
        res, 200, cn_req_sprintf(req, "sum=%lld yields=%lld\n", (long long)sum, (long long)yields));
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
    start_ms = now_ms();
    rc = cn_app_route(app, "GET /order/{name}", order, NULL);
    if (rc == 0)
        rc = cn_app_route(app, "GET /count/{n:int}", count, NULL);
    if (rc == 0)
        rc = cn_app_listen(app, "127.0.0.1", port);
    if (rc == 0) {
        fprintf(stderr, "serving on http://127.0.0.1:%d\n", cn_app_port(app));
        rc = cn_app_run(app);
    }
    if (rc < 0)
        fprintf(stderr, "02_event_loop: %s\n", cn_strerror(rc));
    cn_app_free(app);
    return rc < 0;
}
