/*
 * bench_pg.c -- libcanteen-pg against the alternatives, in one run, on a
 * real PostgreSQL (bench/bench_pg.sh starts a throwaway one; or set
 * CANTEEN_PG_CONNINFO yourself).
 *
 *   bench_pg [all|writes-on|writes-off] [tasks=64] [per_task=300]
 *
 * 1. Waits that overlap: N gathered SELECT pg_sleep(0.1) against the same N
 *    one after the other (the serial sum).
 * 2. Throughput: `tasks` coroutines each running `per_task` small queries
 *    (SELECT $1::int + 1) through the pool, against the same queries run
 *    with blocking libpq through cn_to_thread -- the way to reach a
 *    database without an async client. Both use 4 connections (pool
 *    max_size 4; pool_threads 4, one connection per worker thread).
 * 3. Writes: 100 small queries gathered on one connection, pipelined
 *    (depth 128) and not (depth 1), counting send(2) on unix sockets
 *    in-process; writes-on / writes-off run only that part, for
 *    `strace -f -c -e trace=sendto` to count the system calls itself.
 *
 * Everything runs in one process: the app on a thread, the driver making
 * plain HTTP requests to it on 127.0.0.1.
 */
#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <canteen/pg.h>

#include "send_counter.h" /* tests/pg: libpq's send(2) calls, counted */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static const char *conninfo;
static cn_pg_pool *pool4, *piped, *unpiped;

/* ---- 1. overlapping waits ---- */

static int sleep_task(void *arg)
{
    cn_pg_result *r;
    (void)arg;
    return cn_pg_query(pool4, "SELECT pg_sleep(0.1)", 0, NULL, &r);
}

static int rt_gathered(cn_req *req, cn_res *res)
{
    enum { N = 4 };
    cn_task *t[N];
    double t0, gathered, serial;
    char body[128];

    (void)req;
    t0 = now_ms();
    for (int i = 0; i < N; i++)
        cn_spawn(sleep_task, NULL, &t[i]);
    if (cn_gather(t, N, NULL) < 0)
        return CN_EDB;
    gathered = now_ms() - t0;
    t0 = now_ms();
    for (int i = 0; i < N; i++)
        if (sleep_task(NULL) < 0)
            return CN_EDB;
    serial = now_ms() - t0;
    snprintf(body, sizeof body, "%d %.1f %.1f", N, gathered, serial);
    return cn_res_text(res, 200, body);
}

/* ---- 2. throughput ---- */

typedef struct worker {
    int per;
    int mode; /* 0: the pool, 1: cn_to_thread + blocking libpq */
    int base;
    int errors;
} worker;

static __thread PGconn *thread_conn; /* one per pool thread */
static pthread_mutex_t conns_mu = PTHREAD_MUTEX_INITIALIZER;
static PGconn *all_conns[64];
static int nconns;

typedef struct blocking_q {
    int v;
    int ok;
} blocking_q;

static int blocking_query(void *arg)
{
    blocking_q *q = arg;
    char v[16];
    const char *p = v;
    PGresult *r;

    if (thread_conn == NULL) {
        thread_conn = PQconnectdb(conninfo); /* blocking: fine on a worker */
        pthread_mutex_lock(&conns_mu);
        if (nconns < 64)
            all_conns[nconns++] = thread_conn;
        pthread_mutex_unlock(&conns_mu);
    }
    snprintf(v, sizeof v, "%d", q->v);
    r = PQexecParams(thread_conn, "SELECT $1::int + 1", 1, NULL, &p, NULL, NULL, 0);
    q->ok = PQresultStatus(r) == PGRES_TUPLES_OK && atoi(PQgetvalue(r, 0, 0)) == q->v + 1;
    PQclear(r);
    return 0;
}

static int work_task(void *arg)
{
    worker *w = arg;

    for (int i = 0; i < w->per; i++) {
        int v = w->base + i;
        if (w->mode == 0) {
            char s[16];
            const char *p = s;
            cn_pg_result *r;
            int64_t got = 0;
            snprintf(s, sizeof s, "%d", v);
            if (cn_pg_query(pool4, "SELECT $1::int + 1", 1, &p, &r) < 0 ||
                cn_pg_result_int64(r, 0, 0, &got) < 0 || got != v + 1)
                w->errors++;
            cn_pg_result_free(r);
        } else {
            blocking_q q = {v, 0};
            if (cn_to_thread(blocking_query, &q) < 0 || !q.ok)
                w->errors++;
        }
    }
    return 0;
}

static int rt_tput(cn_req *req, cn_res *res)
{
    int64_t tasks = 64, per = 300, mode = 0;
    worker *w;
    cn_task **t;
    double t0, ms;
    int errors = 0;

    cn_req_query_int(req, "tasks", &tasks);
    cn_req_query_int(req, "per", &per);
    cn_req_query_int(req, "mode", &mode);
    w = cn_req_alloc(req, (size_t)tasks * sizeof(*w));
    t = cn_req_alloc(req, (size_t)tasks * sizeof(*t));
    t0 = now_ms();
    for (int64_t i = 0; i < tasks; i++) {
        w[i] = (worker){(int)per, (int)mode, (int)(i * per), 0};
        cn_spawn(work_task, &w[i], &t[i]);
    }
    cn_gather(t, (size_t)tasks, NULL);
    ms = now_ms() - t0;
    for (int64_t i = 0; i < tasks; i++)
        errors += w[i].errors;
    return cn_res_text(res, 200,
                       cn_req_sprintf(req, "%lld %.1f %d", (long long)(tasks * per), ms, errors));
}

/* ---- 3. writes ---- */

static int small_task(void *arg)
{
    cn_pg_pool *p = arg;
    cn_pg_result *r;
    return cn_pg_query(p, "SELECT 1", 0, NULL, &r);
}

static int rt_writes(cn_req *req, cn_res *res)
{
    enum { N = 100 };
    cn_pg_pool *p = strcmp(cn_req_param(req, "how"), "on") == 0 ? piped : unpiped;
    cn_task *t[N];
    long s0 = pg_unix_sends();
    cn_pg_stats a, b;

    cn_pg_pool_stats(p, &a);
    for (int i = 0; i < N; i++)
        cn_spawn(small_task, p, &t[i]);
    if (cn_gather(t, N, NULL) < 0)
        return CN_EDB;
    cn_pg_pool_stats(p, &b);
    return cn_res_text(res, 200,
                       cn_req_sprintf(req, "%ld %llu", pg_unix_sends() - s0,
                                      (unsigned long long)(b.batches - a.batches)));
}

/* ---- the driver ---- */

static cn_app *app;
static int port;

static void *run_app(void *arg)
{
    (void)arg;
    cn_app_run(app);
    return NULL;
}

/* GET path on 127.0.0.1:port; the body into buf. */
static int get(const char *path, char *buf, size_t size)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char req[256];
    size_t len = 0;
    ssize_t n;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    char *body;

    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
        return -1;
    n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    while (len < size - 1 && (n = read(fd, buf + len, size - 1 - len)) > 0)
        len += (size_t)n;
    close(fd);
    buf[len] = 0;
    body = strstr(buf, "\r\n\r\n");
    if (body == NULL || strncmp(buf, "HTTP/1.1 200", 12) != 0)
        return -1;
    memmove(buf, body + 4, strlen(body + 4) + 1);
    return 0;
}

static void wait_idle(cn_pg_pool *p, unsigned want)
{
    for (int i = 0; i < 1000; i++) { /* at most 10 s */
        cn_pg_stats st;
        cn_pg_pool_stats(p, &st);
        if (st.idle >= want)
            return;
        usleep(10000);
    }
    fprintf(stderr, "bench_pg: the pool did not open its connections: %s\n",
            cn_pg_pool_last_error(p));
    exit(1);
}

static void writes(const char *how, long *sends, unsigned long long *batches)
{
    char buf[4096], path[32];

    snprintf(path, sizeof path, "/writes/%s", how);
    if (get(path, buf, sizeof buf) < 0 || sscanf(buf, "%ld %llu", sends, batches) != 2) {
        fprintf(stderr, "bench_pg: %s failed: %s\n", path, buf);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "all";
    int tasks = argc > 2 ? atoi(argv[2]) : 64, per = argc > 3 ? atoi(argv[3]) : 300;
    cn_config cfg = {.pool_threads = 4};
    char buf[4096], path[96];
    pthread_t th;

    conninfo = getenv("CANTEEN_PG_CONNINFO");
    if (conninfo == NULL) {
        fprintf(stderr, "bench_pg: set CANTEEN_PG_CONNINFO (bench/bench_pg.sh does)\n");
        return 2;
    }
    app = cn_app_new(&cfg);
    if (cn_pg_pool_new(
            app,
            &(cn_pg_config){.conninfo = conninfo, .name = "four", .min_size = 4, .max_size = 4},
            &pool4) < 0 ||
        cn_pg_pool_new(app,
                       &(cn_pg_config){.conninfo = conninfo,
                                       .name = "piped",
                                       .min_size = 1,
                                       .max_size = 1,
                                       .pipeline_depth = 128},
                       &piped) < 0 ||
        cn_pg_pool_new(app,
                       &(cn_pg_config){.conninfo = conninfo,
                                       .name = "unpiped",
                                       .min_size = 1,
                                       .max_size = 1,
                                       .pipeline_depth = 1},
                       &unpiped) < 0 ||
        cn_app_route(app, "GET /gathered", rt_gathered, NULL) < 0 ||
        cn_app_route(app, "GET /tput", rt_tput, NULL) < 0 ||
        cn_app_route(app, "GET /writes/{how}", rt_writes, NULL) < 0 ||
        cn_app_listen(app, "127.0.0.1", 0) < 0) {
        fprintf(stderr, "bench_pg: setup failed\n");
        return 1;
    }
    port = cn_app_port(app);
    pthread_create(&th, NULL, run_app, NULL);
    wait_idle(pool4, 4);
    wait_idle(piped, 1);
    wait_idle(unpiped, 1);

    if (strcmp(mode, "writes-on") == 0 || strcmp(mode, "writes-off") == 0) {
        long s;
        unsigned long long b;
        writes(mode + 7, &s, &b);
        printf("writes %s: %ld send(2), %llu batches for 100 queries\n", mode + 7, s, b);
    } else {
        int n, q1, q2, e1, e2;
        double g, sum, ms1, ms2;
        long son, soff;
        unsigned long long bon, boff;

        if (get("/gathered", buf, sizeof buf) < 0 || sscanf(buf, "%d %lf %lf", &n, &g, &sum) != 3)
            return 1;
        printf("gathered waits: %d x SELECT pg_sleep(0.1): %.0f ms gathered, %.0f ms one after "
               "another (the serial sum) -> %.1fx\n",
               n, g, sum, sum / g);
        /* a warm-up of each, then the measured runs */
        snprintf(path, sizeof path, "/tput?tasks=%d&per=20&mode=0", tasks);
        get(path, buf, sizeof buf);
        snprintf(path, sizeof path, "/tput?tasks=%d&per=20&mode=1", tasks);
        get(path, buf, sizeof buf);
        snprintf(path, sizeof path, "/tput?tasks=%d&per=%d&mode=0", tasks, per);
        if (get(path, buf, sizeof buf) < 0 || sscanf(buf, "%d %lf %d", &q1, &ms1, &e1) != 3)
            return 1;
        snprintf(path, sizeof path, "/tput?tasks=%d&per=%d&mode=1", tasks, per);
        if (get(path, buf, sizeof buf) < 0 || sscanf(buf, "%d %lf %d", &q2, &ms2, &e2) != 3)
            return 1;
        printf("throughput, %d tasks x %d queries, 4 connections each way:\n"
               "  pool (libpq pipelined on the loop): %8.0f queries/s (%d errors)\n"
               "  cn_to_thread + blocking libpq:      %8.0f queries/s (%d errors)\n"
               "  -> the pool does %.2fx the queries per second\n",
               tasks, per, q1 / (ms1 / 1e3), e1, q2 / (ms2 / 1e3), e2, (q1 / ms1) / (q2 / ms2));
        writes("on", &son, &bon);
        writes("off", &soff, &boff);
        printf("writes for 100 small queries on one connection: pipelined %ld send(2) in %llu "
               "batches, not pipelined %ld in %llu -> %.0fx fewer\n",
               son, bon, soff, boff, son ? (double)soff / (double)son : 0.0);
    }
    cn_app_stop(app);
    pthread_join(th, NULL);
    cn_pg_pool_close(pool4);
    cn_pg_pool_close(piped);
    cn_pg_pool_close(unpiped);
    cn_app_free(app);
    for (int i = 0; i < nconns; i++)
        PQfinish(all_conns[i]);
    return 0;
}
