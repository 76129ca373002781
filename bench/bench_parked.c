/*
 * bench_parked.c -- what a parked request costs.
 *
 *   bench_parked [connections=10000] [tasks=50000]
 *
 * A server runs in a child process (so its RSS is its own); the parent opens
 * `connections` keep-alive connections and measures the server's RSS three
 * times: at rest, with every connection open but idle (the baseline), and
 * with a GET /sleep/3000 parked on each. The difference over the count is
 * the cost of one parked request, connection and request state included.
 * Then one request spawns `tasks` child tasks that all sleep at once, to
 * show that many coroutines parked together (or the clear 503 when the
 * kernel's map limit stops it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <canteen.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the server (child process) ---- */

static int sleep_route(cn_req *req, cn_res *res)
{
    int64_t ms = 0;
    cn_req_param_int(req, "ms", &ms);
    int rc = cn_sleep(ms);
    return rc < 0 ? rc : cn_res_text(res, 200, "slept");
}

static int park_one(void *arg)
{
    (void)arg;
    return cn_sleep(2000);
}

/* GET /park/{n}: n child tasks parked in one sleep together */
static int park_route(cn_req *req, cn_res *res)
{
    int64_t n = 0;
    cn_task **ts;
    int64_t i;
    int rc = 0;

    cn_req_param_int(req, "n", &n);
    ts = cn_req_alloc(req, (size_t)n * sizeof(*ts));
    if (ts == NULL)
        return CN_ENOMEM;
    for (i = 0; i < n; i++) {
        rc = cn_spawn(park_one, NULL, &ts[i]);
        if (rc < 0)
            break;
    }
    if (i < n) {
        cn_gather(ts, (size_t)i, NULL);
        return cn_res_error(res, 503, cn_req_sprintf(req, "only %lld tasks: %s", (long long)i,
                                                     cn_strerror(rc)));
    }
    rc = cn_gather(ts, (size_t)n, NULL);
    if (rc < 0)
        return rc;
    return cn_res_text(res, 200, cn_req_sprintf(req, "%lld tasks parked and done", (long long)n));
}

static void serve(int port_pipe, unsigned max_conns)
{
    cn_config cfg = {.max_connections = max_conns, .header_timeout_ms = 60000,
                     .keepalive_timeout_ms = 60000, .pool_threads = 1};
    cn_app *app = cn_app_new(&cfg);
    int port;

    cn_app_route(app, "GET /sleep/{ms:int}", sleep_route, NULL);
    cn_app_route(app, "GET /park/{n:int}", park_route, NULL);
    if (cn_app_listen(app, "127.0.0.1", 0) < 0)
        _exit(1);
    port = cn_app_port(app);
    if (write(port_pipe, &port, sizeof port) != sizeof port)
        _exit(1);
    close(port_pipe);
    cn_app_run(app);
    cn_app_free(app);
    _exit(0);
}

/* ---- the client (parent) ---- */

static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = -1;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

static int connect_to(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One blocking request on its own connection, with a deadline. */
static int one_request(int port, const char *target, char *out, size_t size, int timeout_ms)
{
    int fd = connect_to(port);
    char req[256];
    size_t got = 0;
    int n;

    if (fd < 0)
        return -1;
    n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n",
                 target);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    while (got + 1 < size) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, timeout_ms) <= 0)
            break;
        n = (int)read(fd, out + got, size - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    out[got] = 0;
    close(fd);
    return (int)got;
}

/* Wait until the server's RSS stops moving (bounded). */
static long settled_rss(pid_t pid)
{
    long prev = -1, cur = rss_kib(pid);
    for (int i = 0; i < 20 && cur != prev; i++) {
        usleep(100 * 1000);
        prev = cur;
        cur = rss_kib(pid);
    }
    return cur;
}

int main(int argc, char **argv)
{
    int nconn = argc > 1 ? atoi(argv[1]) : 10000;
    int ntasks = argc > 2 ? atoi(argv[2]) : 50000;
    int pfd[2], port, *fds, ok = 0, ep;
    struct rlimit rl;
    long rss0, rss_idle, rss_parked;
    double t0, t1;
    pid_t pid;
    char buf[4096];

    /* every fd we can have: the server and the client each need nconn */
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if ((rlim_t)nconn + 64 > rl.rlim_cur) {
        fprintf(stderr, "bench_parked: the fd limit (%lu) caps connections at %lu\n",
                (unsigned long)rl.rlim_cur, (unsigned long)rl.rlim_cur - 64);
        nconn = (int)rl.rlim_cur - 64;
    }
    if (pipe(pfd) < 0)
        return 1;
    pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        serve(pfd[1], (unsigned)nconn + 16);
    }
    close(pfd[1]);
    if (read(pfd[0], &port, sizeof port) != sizeof port) {
        fprintf(stderr, "bench_parked: the server did not start\n");
        return 1;
    }
    one_request(port, "/sleep/0", buf, sizeof buf, 2000); /* warm-up */
    rss0 = settled_rss(pid);

    fds = calloc((size_t)nconn, sizeof(*fds));
    for (int i = 0; i < nconn; i++) {
        fds[i] = connect_to(port);
        if (fds[i] < 0) {
            fprintf(stderr, "bench_parked: connect %d: %s\n", i, strerror(errno));
            nconn = i;
            break;
        }
    }
    rss_idle = settled_rss(pid);

    t0 = now_s();
    for (int i = 0; i < nconn; i++) {
        static const char req[] = "GET /sleep/3000 HTTP/1.1\r\nHost: bench\r\n\r\n";
        if (write(fds[i], req, sizeof req - 1) != (ssize_t)(sizeof req - 1))
            fprintf(stderr, "bench_parked: short write\n");
    }
    usleep(1000 * 1000); /* all parked: the sleep is 3 s */
    rss_parked = rss_kib(pid);

    /* every answer must come back */
    ep = epoll_create1(0);
    for (int i = 0; i < nconn; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fds[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
    }
    while (ok < nconn && now_s() - t0 < 30) {
        struct epoll_event evs[256];
        int n = epoll_wait(ep, evs, 256, 1000);
        for (int k = 0; k < n; k++) {
            ssize_t r = read(evs[k].data.fd, buf, sizeof buf);
            if (r > 0 && strncmp(buf, "HTTP/1.1 200", 12) == 0)
                ok++;
            epoll_ctl(ep, EPOLL_CTL_DEL, evs[k].data.fd, NULL);
        }
    }
    t1 = now_s();
    for (int i = 0; i < nconn; i++)
        close(fds[i]);
    close(ep);

    printf("server RSS at rest:                 %8ld KiB\n", rss0);
    printf("%6d idle connections:             %8ld KiB  (%.2f KiB per connection: the baseline)\n",
           nconn, rss_idle, (double)(rss_idle - rss0) / nconn);
    printf("%6d parked GET /sleep/3000:       %8ld KiB  (%.2f KiB per parked request, "
           "connection and request state included; target <= 16)\n",
           nconn, rss_parked, (double)(rss_parked - rss0) / nconn);
    printf("answered 200: %d of %d in %.2f s (ideal 3.00 s)\n", ok, nconn, t1 - t0);

    if (ntasks > 0) {
        char target[64];
        snprintf(target, sizeof target, "/park/%d", ntasks);
        t0 = now_s();
        one_request(port, target, buf, sizeof buf, 30000);
        t1 = now_s();
        char *body = strstr(buf, "\r\n\r\n");
        printf("%d tasks parked in one sleep (2 s): %.2f s, answer: %.12s %s\n", ntasks,
               t1 - t0, buf, body ? body + 4 : "(none)");
    }
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    free(fds);
    return ok == nconn ? 0 : 1;
}
