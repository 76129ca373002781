/*
 * listen_split.c -- how connections split between pre-forked workers, for
 * the listener decision of issue 14 (docs/benchmarks.md, "Workers").
 *
 *   listen_split MODE N [close]
 *
 * forks N workers, each with its own libuv loop answering every request with
 * a fixed 200 (keep-alive), and prints "port P" once all of them listen.
 * MODE is how they get their connections:
 *
 *   shared          one listening socket made by the parent and inherited;
 *                   libuv accepts in a loop until EAGAIN (its default)
 *   shared-single   the same, with uv_tcp_simultaneous_accepts(0): one
 *                   accept per wake-up, then a 1 ns nanosleep (libuv's knob
 *                   for multi-process servers)
 *   shared-balanced the same socket; single-accept only while this worker
 *                   holds more connections than the least busy one by more
 *                   than 1 + 1/16 (counts in shared memory): what
 *                   src/workers.c does
 *   reuseport       one SO_REUSEPORT socket per worker (the kernel hashes
 *                   each connection to one of them)
 *
 * With "close" every response says Connection: close and the connection is
 * closed after it (one connection per request: accept-bound).
 *
 * On SIGTERM (to the parent) each worker prints "worker I conns C requests R"
 * and everything exits. Drive it with wrk and read the split; bench/run_listen
 * does. Loopback only.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uv.h>

enum { SHARED, SHARED_SINGLE, SHARED_BALANCED, REUSEPORT };

static const char response[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: "
                               "text/plain\r\n\r\nok";
static const char response_close[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: "
                                     "close\r\nContent-Type: text/plain\r\n\r\nok";

static int worker_index, nworkers, mode, close_each;
static unsigned long long nconns, nrequests;
static volatile unsigned *open_conns; /* shared: per worker */
static uv_loop_t *loop;

typedef struct client {
    uv_tcp_t tcp;
    int matched; /* bytes of "\r\n\r\n" seen in a row */
} client;

static void on_close(uv_handle_t *h)
{
    __atomic_sub_fetch(&open_conns[worker_index], 1, __ATOMIC_RELAXED);
    free(h);
}

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *b)
{
    static char buf[65536];
    (void)h;
    (void)size;
    b->base = buf;
    b->len = sizeof buf;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    client *c = (client *)s;
    static const char end[] = "\r\n\r\n";
    unsigned answers = 0;

    if (n < 0) {
        uv_close((uv_handle_t *)s, on_close);
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (b->base[i] == end[c->matched]) {
            if (++c->matched == 4) {
                answers++;
                c->matched = 0;
            }
        } else {
            c->matched = b->base[i] == '\r';
        }
    }
    nrequests += answers;
    if (close_each && answers > 0) {
        uv_buf_t out = {(char *)response_close, sizeof response_close - 1};
        uv_try_write(s, &out, 1);
        uv_close((uv_handle_t *)s, on_close);
        return;
    }
    while (answers-- > 0) {
        uv_buf_t out = {(char *)response, sizeof response - 1};
        if (uv_try_write(s, &out, 1) != (int)out.len) {
            uv_close((uv_handle_t *)s, on_close);
            return;
        }
    }
}

/* shared-balanced: ahead of the least busy sibling by more than 1 + 1/16 */
static int ahead(void)
{
    unsigned least = ~0u, mine = open_conns[worker_index];

    for (int i = 0; i < nworkers; i++)
        if (i != worker_index && open_conns[i] < least)
            least = open_conns[i];
    return least != ~0u && mine > least + 1 + least / 16;
}

static void on_connection(uv_stream_t *server, int status)
{
    client *c;

    if (status < 0)
        return;
    c = calloc(1, sizeof(*c));
    uv_tcp_init(loop, &c->tcp);
    __atomic_add_fetch(&open_conns[worker_index], 1, __ATOMIC_RELAXED);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        uv_close((uv_handle_t *)&c->tcp, on_close);
        return;
    }
    nconns++;
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (mode == SHARED_BALANCED)
        uv_tcp_simultaneous_accepts((uv_tcp_t *)server, !ahead());
}

static void on_term(uv_signal_t *s, int sig)
{
    (void)sig;
    printf("worker %d conns %llu requests %llu\n", worker_index, nconns, nrequests);
    fflush(stdout);
    uv_stop(s->loop);
}

static int reuseport_socket(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        perror("reuseport socket");
        exit(1);
    }
    return fd;
}

static void run_worker(int fd, int ready)
{
    uv_tcp_t server;
    uv_signal_t term;

    loop = uv_default_loop();
    uv_tcp_init(loop, &server);
    uv_tcp_open(&server, fd);
    if (mode == SHARED_SINGLE)
        uv_tcp_simultaneous_accepts(&server, 0);
    if (uv_listen((uv_stream_t *)&server, 511, on_connection) < 0) {
        perror("listen");
        exit(1);
    }
    uv_signal_init(loop, &term);
    uv_signal_start(&term, on_term, SIGTERM);
    if (write(ready, "r", 1) != 1)
        exit(1);
    close(ready);
    uv_run(loop, UV_RUN_DEFAULT);
    exit(0);
}

int main(int argc, char **argv)
{
    static const char *const modes[] = {"shared", "shared-single", "shared-balanced", "reuseport"};
    int fd = -1, port, ready[2], sig;
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t alen = sizeof a;
    pid_t *pids;
    sigset_t set;
    char c;

    mode = -1;
    for (int i = 0; argc >= 3 && i < 4; i++)
        if (strcmp(argv[1], modes[i]) == 0)
            mode = i;
    nworkers = argc >= 3 ? atoi(argv[2]) : 0;
    close_each = argc == 4 && strcmp(argv[3], "close") == 0;
    if (mode < 0 || nworkers < 1 || nworkers > 64 || argc > 4) {
        fprintf(stderr, "usage: listen_split shared|shared-single|shared-balanced|reuseport N "
                        "[close]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN); /* a client gone mid-write is EPIPE, not death */
    open_conns = mmap(NULL, 64 * sizeof(unsigned), PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (open_conns == MAP_FAILED)
        return 1;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (mode == REUSEPORT) {
        /* bound, never listening: holds the port, takes no connections */
        fd = reuseport_socket(0);
    } else {
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 511) < 0) {
            perror("listen");
            return 1;
        }
    }
    getsockname(fd, (struct sockaddr *)&a, &alen);
    port = ntohs(a.sin_port);
    if (pipe(ready) < 0)
        return 1;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    pids = calloc((size_t)nworkers, sizeof(*pids));
    for (int i = 0; i < nworkers; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            sigprocmask(SIG_UNBLOCK, &set, NULL);
            worker_index = i;
            close(ready[0]);
            run_worker(mode == REUSEPORT ? reuseport_socket(port) : fd, ready[1]);
        }
    }
    close(ready[1]);
    for (int i = 0; i < nworkers; i++)
        if (read(ready[0], &c, 1) != 1)
            return 1;
    printf("port %d\n", port);
    fflush(stdout);
    sigwait(&set, &sig);
    for (int i = 0; i < nworkers; i++)
        kill(pids[i], SIGTERM);
    for (int i = 0; i < nworkers; i++)
        waitpid(pids[i], NULL, 0);
    return 0;
}
