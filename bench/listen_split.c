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
 *   shared         one listening socket made by the parent and inherited;
 *                  libuv accepts in a loop until EAGAIN (its default)
 *   shared-single  the same, with uv_tcp_simultaneous_accepts(0): one accept
 *                  per wake-up, then a 1 ns nanosleep (libuv's knob for
 *                  multi-process servers)
 *   shared-turn    the same socket; one connection taken per loop turn (a
 *                  second one libuv hands over is kept for the next turn),
 *                  no sleep
 *   shared-adaptive  the same socket; libuv's single-accept pause only while
 *                  this worker holds more connections than the least busy
 *                  one plus one (counts in shared memory)
 *   reuseport      one SO_REUSEPORT socket per worker (the kernel hashes
 *                  each connection to one of them)
 *
 * With "close" every response says Connection: close and the connection is
 * closed after it (one connection per request: accept-bound).
 *
 * On SIGTERM (to the parent) each worker prints "worker I conns C requests R"
 * and everything exits. Drive it with wrk and read the split. Loopback only.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uv.h>

static const char response[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: "
                               "text/plain\r\n\r\nok";

static const char response_close[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: "
                                     "close\r\nContent-Type: text/plain\r\n\r\nok";

static int worker_index, close_each;
static unsigned long long nconns, nrequests;
static uv_loop_t *loop;

typedef struct client {
    uv_tcp_t tcp;
    int matched; /* bytes of "\r\n\r\n" seen in a row */
} client;

static volatile unsigned *active;

static void on_close(uv_handle_t *h)
{
    free(h);
}

static void on_client_close(uv_handle_t *h)
{
    if (active)
        __atomic_sub_fetch(&active[worker_index], 1, __ATOMIC_RELAXED);
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
        uv_close((uv_handle_t *)s, on_client_close);
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
        uv_close((uv_handle_t *)s, on_client_close);
        return;
    }
    while (answers-- > 0) {
        uv_buf_t out = {(char *)response, sizeof response - 1};
        if (uv_try_write(s, &out, 1) != (int)out.len) {
            uv_close((uv_handle_t *)s, on_client_close);
            return;
        }
    }
}

static int per_turn; /* mode shared-turn: connections taken this loop turn */
static bool held;    /* one accepted by libuv, left for the next turn */
static uv_stream_t *listener;

static void take(uv_stream_t *server)
{
    client *c = calloc(1, sizeof(*c));

    uv_tcp_init(loop, &c->tcp);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        uv_close((uv_handle_t *)&c->tcp, on_close);
        return;
    }
    nconns++;
    if (active)
        __atomic_add_fetch(&active[worker_index], 1, __ATOMIC_RELAXED);
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static int turn_mode, adaptive, nworkers;
/* active: shared, open connections per worker */

/* mode shared-adaptive: one accept per wake-up (libuv's single-accept
 * pause) only while this worker holds more connections than the others */
static unsigned least_other(void)
{
    unsigned least = ~0u;

    for (int i = 0; i < nworkers; i++)
        if (i != worker_index && active[i] < least)
            least = active[i];
    return least;
}

static bool ahead(void)
{
    unsigned least = least_other();
    return active[worker_index] > least + 2 + least / 8;
}

static void balance(uv_stream_t *server)
{
    uv_tcp_simultaneous_accepts((uv_tcp_t *)server, !ahead());
}

/* mode shared-hold: while ahead, leave the next connection with libuv (it
 * stops watching the listener) and take it 1 ms later */
static uv_timer_t hold_timer;
static int hold_mode;

static void on_hold(uv_timer_t *t)
{
    (void)t;
    take(listener);
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    if (hold_mode && ahead()) {
        uv_timer_start(&hold_timer, on_hold, 1, 0);
        return;
    }
    if (turn_mode && per_turn >= 1) {
        /* not uv_accept'ed: libuv stops watching the listener until we do */
        held = true;
        return;
    }
    per_turn++;
    take(server);
    if (adaptive)
        balance(server);
}

/* Before the loop blocks: a new turn; take the one held back, which makes
 * libuv watch the listener again. */
static void on_prepare(uv_prepare_t *p)
{
    (void)p;
    per_turn = 0;
    if (held) {
        held = false;
        per_turn++;
        take(listener);
    }
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

static void run_worker(int fd, int mode, int ready)
{
    uv_tcp_t server;
    uv_signal_t term;
    uv_prepare_t prep;

    loop = uv_default_loop();
    uv_tcp_init(loop, &server);
    uv_tcp_open(&server, fd);
    if (mode == 1)
        uv_tcp_simultaneous_accepts(&server, 0);
    listener = (uv_stream_t *)&server;
    turn_mode = mode == 3;
    adaptive = mode == 4;
    hold_mode = mode == 5;
    uv_timer_init(loop, &hold_timer);
    uv_prepare_init(loop, &prep);
    uv_prepare_start(&prep, on_prepare);
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
    int mode, n, fd = -1, port, ready[2], sig;
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t alen = sizeof a;
    pid_t *pids;
    sigset_t set;
    char c;

    if (argc < 3 || argc > 4) {
        fprintf(
            stderr,
            "usage: listen_split "
            "shared|shared-single|shared-turn|shared-adaptive|shared-hold|reuseport N [close]\n");
        return 2;
    }
    mode = strcmp(argv[1], "shared") == 0            ? 0
           : strcmp(argv[1], "shared-single") == 0   ? 1
           : strcmp(argv[1], "reuseport") == 0       ? 2
           : strcmp(argv[1], "shared-turn") == 0     ? 3
           : strcmp(argv[1], "shared-adaptive") == 0 ? 4
           : strcmp(argv[1], "shared-hold") == 0     ? 5
                                                     : -1;
    n = atoi(argv[2]);
    nworkers = n;
    active = mmap(NULL, 64 * sizeof(unsigned), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                  -1, 0);
    close_each = argc == 4 && strcmp(argv[3], "close") == 0;
    if (mode < 0 || n < 1 || n > 64) {
        fprintf(stderr, "listen_split: bad arguments\n");
        return 2;
    }
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (mode == 2) {
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
    pids = calloc((size_t)n, sizeof(*pids));
    for (int i = 0; i < n; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            sigprocmask(SIG_UNBLOCK, &set, NULL);
            worker_index = i;
            close(ready[0]);
            run_worker(mode == 2 ? reuseport_socket(port) : fd, mode, ready[1]);
        }
    }
    close(ready[1]);
    for (int i = 0; i < n; i++)
        if (read(ready[0], &c, 1) != 1)
            return 1;
    printf("port %d\n", port);
    fflush(stdout);
    sigwait(&set, &sig);
    for (int i = 0; i < n; i++)
        kill(pids[i], SIGTERM);
    for (int i = 0; i < n; i++)
        waitpid(pids[i], NULL, 0);
    return 0;
}
