/*
 * 12_wait_fd.c -- chapter 12: bring your own client. A non-blocking client
 * for a protocol Canteen knows nothing about, written with cn_wait_fd: it
 * parks the coroutine until its socket is ready, so the loop serves
 * everyone else meanwhile -- asyncio's loop.sock_connect / sock_recv.
 *
 * The protocol is a line one, served by a small blocking server on a thread
 * of this process (it stands for Redis, memcached, an in-house service):
 * the client sends "<ms> <word>\n", the server waits ms and answers
 * "<WORD>\n" in capitals.
 *
 *   GET /shout/{word}?ms=200      one call: {"answer":"HELLO","ms":200}
 *   GET /shout-many?n=5&ms=200    n calls at once, gathered: ~200 ms in all
 *   GET /shout/{word}?ms=2000&timeout=100   504 after 100 ms
 */
#define _GNU_SOURCE /* SOCK_NONBLOCK, clock_gettime, nanosleep */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <canteen.h>

/* ---- the stand-in service: blocking, one thread per connection ---- */

static void *serve_one(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char line[256];
    size_t len = 0;
    ssize_t n;

    while (len < sizeof line - 1 && (n = read(fd, line + len, sizeof line - 1 - len)) > 0) {
        char *nl;
        len += (size_t)n;
        line[len] = 0;
        if ((nl = strchr(line, '\n')) != NULL) {
            long ms = strtol(line, NULL, 10);
            char *w = strchr(line, ' ');
            struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
            for (char *p = w ? w + 1 : nl; p < nl; p++)
                *p = (char)toupper((unsigned char)*p);
            if (w && write(fd, w + 1, (size_t)(nl - w)) < 0)
                break;
            break;
        }
    }
    close(fd);
    return NULL;
}

static void *serve(void *arg)
{
    int lfd = (int)(intptr_t)arg;

    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        pthread_t t;
        if (fd < 0)
            continue;
        if (pthread_create(&t, NULL, serve_one, (void *)(intptr_t)fd) == 0)
            pthread_detach(t);
        else
            close(fd);
    }
    return NULL;
}

static int service_port;

static int start_service(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    pthread_t t;

    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 128) < 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &al) < 0)
        return -1;
    service_port = ntohs(a.sin_port);
    return pthread_create(&t, NULL, serve, (void *)(intptr_t)lfd) == 0 ? 0 : -1;
}

/* ---- the client: plain non-blocking sockets, awaited with cn_wait_fd ---- */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Wait until fd is ready for `events`, or the deadline passes. */
static int wait_until(int fd, int events, double deadline)
{
    double left = deadline - now_ms();
    return cn_wait_fd(fd, events, left > 0 ? (int64_t)left + 1 : 0);
}

/* One call: connect, send the line, read the answer line. Every step that
 * would block parks the coroutine instead. */
static int shout(const char *word, int64_t ms, int64_t timeout_ms, char *answer, size_t size)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)service_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    double deadline = now_ms() + (double)timeout_ms;
    char req[160];
    size_t sent = 0, got = 0, reqlen;
    int fd, rc = 0;

    reqlen = (size_t)snprintf(req, sizeof req, "%lld %s\n", (long long)ms, word);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return CN_ENOMEM;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS)
        rc = CN_ECONNREFUSED;
    while (rc >= 0 && sent < reqlen) { /* connected once writable */
        ssize_t n = send(fd, req + sent, reqlen - sent, MSG_NOSIGNAL);
        if (n > 0)
            sent += (size_t)n;
        else if (n < 0 && (errno == EAGAIN || errno == ENOTCONN))
            rc = wait_until(fd, CN_WRITABLE, deadline);
        else
            rc = CN_ECONNREFUSED;
    }
    while (rc >= 0 && (got == 0 || answer[got - 1] != '\n')) {
        ssize_t n = recv(fd, answer + got, size - 1 - got, 0);
        if (n > 0 && got + (size_t)n < size - 1)
            got += (size_t)n;
        else if (n < 0 && errno == EAGAIN)
            rc = wait_until(fd, CN_READABLE, deadline); /* spurious wake-ups loop here */
        else
            rc = CN_EPIPE;
    }
    /* no task waits on fd any more: it may be closed now */
    close(fd);
    if (rc < 0)
        return rc;
    answer[got - 1] = 0;
    return 0;
}

static int64_t query_int(cn_req *req, const char *name, int64_t dflt)
{
    int64_t v;
    return cn_req_query_int(req, name, &v) == 0 ? v : dflt;
}

/* GET /shout/{word} */
static int shout_one(cn_req *req, cn_res *res)
{
    char answer[128];
    double t0 = now_ms();
    cJSON *o;
    int rc = shout(cn_req_param(req, "word"), query_int(req, "ms", 200),
                   query_int(req, "timeout", 5000), answer, sizeof answer);

    if (rc == CN_ETIMEDOUT)
        return cn_res_error(res, 504, "The service did not answer in time");
    if (rc < 0)
        return rc;
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "answer", answer);
    cJSON_AddNumberToObject(o, "ms", (double)(int64_t)(now_ms() - t0));
    return cn_res_json(res, 200, o);
}

/* GET /shout-many?n=5&ms=200: n calls, each in its own task, gathered */
typedef struct call {
    int64_t ms;
    char word[16];
    char answer[32];
} call;

static int call_task(void *arg)
{
    call *c = arg;
    return shout(c->word, c->ms, 5000, c->answer, sizeof c->answer);
}

static int shout_many(cn_req *req, cn_res *res)
{
    int64_t n = query_int(req, "n", 5);
    call *calls;
    cn_task **t;
    double t0 = now_ms();
    cJSON *o, *answers;
    int rc;

    if (n < 1 || n > 100)
        return cn_res_error(res, 422, "n must be between 1 and 100");
    calls = cn_req_alloc(req, (size_t)n * sizeof(*calls));
    t = cn_req_alloc(req, (size_t)n * sizeof(*t));
    if (calls == NULL || t == NULL)
        return CN_ENOMEM;
    for (int64_t i = 0; i < n; i++) {
        calls[i].ms = query_int(req, "ms", 200);
        snprintf(calls[i].word, sizeof calls[i].word, "call%lld", (long long)i);
        rc = cn_spawn(call_task, &calls[i], &t[i]);
        if (rc < 0) {
            cn_gather(t, (size_t)i, NULL);
            return rc;
        }
    }
    rc = cn_gather(t, (size_t)n, NULL); /* the sockets wait together */
    if (rc < 0)
        return rc;
    o = cJSON_CreateObject();
    answers = cJSON_AddArrayToObject(o, "answers");
    for (int64_t i = 0; i < n; i++)
        cJSON_AddItemToArray(answers, cJSON_CreateString(calls[i].answer));
    cJSON_AddNumberToObject(o, "total_ms", (double)(int64_t)(now_ms() - t0));
    return cn_res_json(res, 200, o);
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 8000;
    cn_config cfg = {.handle_signals = 1};
    cn_app *app;
    int rc;

    if (start_service() < 0) {
        perror("12_wait_fd: the stand-in service");
        return 1;
    }
    app = cn_app_new(&cfg);
    if (app == NULL)
        return 1;
    rc = cn_app_route(app, "GET /shout/{word}", shout_one, NULL);
    if (rc == 0)
        rc = cn_app_route(app, "GET /shout-many", shout_many, NULL);
    if (rc == 0)
        rc = cn_app_listen(app, "127.0.0.1", port);
    if (rc == 0) {
        fprintf(stderr, "serving on http://127.0.0.1:%d\n", cn_app_port(app));
        rc = cn_app_run(app);
    }
    if (rc < 0)
        fprintf(stderr, "12_wait_fd: %s\n", cn_strerror(rc));
    cn_app_free(app);
    return rc < 0;
}
