/*
 * accept.c -- the accept path: a uv_poll on each listening socket and our
 * own accept loop, instead of uv_listen's.
 *
 * Why not libuv's: when accept() fails with EMFILE or ENFILE (the process's
 * or the system's descriptors are all taken), libuv closes a spare
 * descriptor it keeps, accepts every pending connection, closes each at
 * once, and takes the spare again (uv__emfile_trick in uv__server_io). Its
 * callback never hears of it: the clients see a reset, and the server
 * counts nothing and logs nothing.
 *
 * Here the same idea answers instead. A spare descriptor is held from the
 * start; on EMFILE/ENFILE it is closed, one connection is accepted into
 * its slot, given a short 503 with Retry-After and closed, and the spare is
 * taken again; then the next, up to the batch. Each counts in
 * connections_no_fd (and as a 5xx response), and one warning per
 * LOG_INTERVAL_MS says how many there were. The connections already open
 * are served as usual, and as descriptors free up the next accept() simply
 * succeeds again.
 *
 * Without a spare there is no answer to give, and the listener stays
 * readable while the connection waits in the backlog: accepting pauses for
 * PAUSE_MS (nginx pauses too, for its accept_mutex_delay) instead of
 * spinning, and every PAUSE_MS it tries again, taking the spare back
 * first. That happens when the spare cannot be taken back (another thread
 * took the slot in between, or the limit was lowered below it with
 * prlimit), and when accept() still fails with the spare's slot free (the
 * system's table, ENFILE, is full). Each pause counts in accept_pauses.
 * The waiting connection is served once descriptors come back.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "accept.h"
#include "buf.h"
#include "common.h"
#include "req.h"

/* Connections taken per wake-up at most: the loop's other work goes on. */
#define ACCEPT_BATCH 128
/* Out of descriptors with no spare: how long accepting pauses. */
#define PAUSE_MS 100
/* At most one "out of descriptors" warning this often. */
#define LOG_INTERVAL_MS 10000

struct cn__acceptor {
    uv_poll_t poll;
    uv_timer_t pause;
    cn__server *srv;
    cn__accepted_fn accepted;
    void *arg;
    int fd;    /* the listening socket (the caller's) */
    int spare; /* held for the out-of-descriptors answer; -1: none */
    bool single;
    int open_handles;
    /* the warning's rate limit */
    uint64_t logged_at;
    uint64_t unlogged; /* connections answered since the last warning */
};

static int take_spare(void)
{
    return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static int accept_one(int fd)
{
#ifdef __linux__
    return accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
#else
    int c = accept(fd, NULL, NULL);
    if (c >= 0) {
        fcntl(c, F_SETFD, FD_CLOEXEC);
        fcntl(c, F_SETFL, fcntl(c, F_GETFL) | O_NONBLOCK);
    }
    return c;
#endif
}

/* One warning per interval, with the count since the last one; `answered`
 * false: no answer could be given, and accepting pauses. */
static void warn_no_fd(cn__acceptor *a, int err, bool answered)
{
    uint64_t now = uv_now(a->srv->loop);
    char paused[96] = "";

    a->unlogged += answered;
    if (a->logged_at != 0 && now - a->logged_at < LOG_INTERVAL_MS)
        return;
    if (!answered)
        snprintf(paused, sizeof paused,
                 "; no spare descriptor to answer with: accepting paused, retried every %d ms",
                 PAUSE_MS);
    cn__log(CN__LOG_WARN,
            "accept: out of file descriptors (%s): %llu connection(s) answered 503 since the "
            "last warning, %llu open%s (raise ulimit -n, or lower max_connections)",
            err == ENFILE ? "ENFILE, system-wide" : "EMFILE", (unsigned long long)a->unlogged,
            (unsigned long long)a->srv->stats->connections_active, paused);
    a->logged_at = now ? now : 1;
    a->unlogged = 0;
}

/* Answer a connection accepted into the spare's slot, then let it go. */
static void refuse(cn__acceptor *a, int fd)
{
    cn__buf out = {0};
    char sink[4096], retry[40];

    /* counted before the client can see the answer */
    a->srv->stats->connections_no_fd++;
    a->srv->stats->responses_5xx++;
    snprintf(retry, sizeof retry, "Retry-After: %u\r\n", a->srv->cfg->retry_after_s);
    if (cn__res_write_simple(&out, 503, "Out of file descriptors", true, retry) == 0)
        (void)send(fd, out.data, out.len, MSG_DONTWAIT | MSG_NOSIGNAL);
    cn__buf_free(&out);
    shutdown(fd, SHUT_WR);
    /* a request already here would turn the close into a reset (bounded:
     * a client that keeps sending gets its reset) */
    for (int i = 0; i < 4 && recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; i++)
        ;
    close(fd);
}

static void on_readable(uv_poll_t *p, int status, int events);

static void on_resume(uv_timer_t *t)
{
    cn__acceptor *a = t->data;

    /* on_readable takes the spare back before it accepts */
    uv_poll_start(&a->poll, UV_READABLE, on_readable);
}

static void pause_accepting(cn__acceptor *a)
{
    a->srv->stats->accept_pauses++;
    uv_poll_stop(&a->poll);
    uv_timer_start(&a->pause, on_resume, PAUSE_MS, 0);
}

/*
 * accept() failed with EMFILE/ENFILE: answer one pending connection through
 * the spare's slot. False when there is nothing more to do this time (none
 * pending, or accepting paused).
 */
static bool out_of_fds(cn__acceptor *a, int err)
{
    int fd, again;

    if (a->spare < 0) {
        warn_no_fd(a, err, false);
        pause_accepting(a);
        return false;
    }
    close(a->spare);
    a->spare = -1;
    fd = accept_one(a->fd);
    again = errno;
    if (fd >= 0) {
        warn_no_fd(a, err, true);
        refuse(a, fd);
    }
    a->spare = take_spare();
    if (fd < 0 && (again == EMFILE || again == ENFILE)) {
        /* not even the spare's slot would do: retrying at once would spin */
        warn_no_fd(a, again, false);
        pause_accepting(a);
        return false;
    }
    if (a->spare < 0) {
        warn_no_fd(a, err, false);
        pause_accepting(a);
        return false;
    }
    return fd >= 0 || again == EINTR || again == ECONNABORTED;
}

static void on_readable(uv_poll_t *p, int status, int events)
{
    cn__acceptor *a = p->data;

    (void)events;
    if (status < 0) {
        cn__log(CN__LOG_ERROR, "accept: %s", uv_strerror(status));
        pause_accepting(a);
        return;
    }
    /* lost when descriptors ran out: take it back before the next accept */
    if (a->spare < 0)
        a->spare = take_spare();
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd = accept_one(a->fd), rc;

        if (fd < 0) {
            int err = errno;
            if (err == EINTR || err == ECONNABORTED)
                continue;
            if (err == EAGAIN || err == EWOULDBLOCK)
                return;
            if (err == EMFILE || err == ENFILE) {
                if (!out_of_fds(a, err))
                    return;
                continue;
            }
            /* ENOBUFS, ENOMEM...: let the system breathe */
            cn__log(CN__LOG_ERROR, "accept: %s", strerror(err));
            pause_accepting(a);
            return;
        }
        rc = cn__conn_accept_fd(a->srv, fd);
        if (rc < 0)
            cn__log(CN__LOG_ERROR, "accept: %s", uv_strerror(rc));
        if (a->accepted)
            a->accepted(a, a->arg);
        if (a->single)
            return; /* the next one is left to a sibling that is less busy */
    }
}

cn__acceptor *cn__acceptor_start(cn__server *srv, int fd, cn__accepted_fn accepted, void *arg)
{
    cn__acceptor *a = calloc(1, sizeof(*a));

    if (a == NULL)
        return NULL;
    if (uv_poll_init_socket(srv->loop, &a->poll, fd) < 0) {
        free(a);
        return NULL;
    }
    uv_timer_init(srv->loop, &a->pause);
    a->poll.data = a->pause.data = a;
    a->open_handles = 2;
    a->srv = srv;
    a->fd = fd;
    a->accepted = accepted;
    a->arg = arg;
    a->spare = take_spare();
    uv_poll_start(&a->poll, UV_READABLE, on_readable);
    return a;
}

void cn__acceptor_single(cn__acceptor *a, bool on)
{
    a->single = on;
}

static void on_closed(uv_handle_t *h)
{
    cn__acceptor *a = h->data;

    if (--a->open_handles == 0)
        free(a);
}

void cn__acceptor_close(cn__acceptor *a)
{
    if (a == NULL)
        return;
    if (a->spare >= 0)
        close(a->spare);
    a->spare = -1;
    uv_close((uv_handle_t *)&a->poll, on_closed);
    uv_close((uv_handle_t *)&a->pause, on_closed);
}
