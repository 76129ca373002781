/*
 * test_fdlimit.c -- connections past the process's descriptor limit
 * (RLIMIT_NOFILE, lowered here with setrlimit): each one is answered 503
 * with Retry-After from the spare descriptor, counted in connections_no_fd
 * and logged once per interval; the connections already open are served
 * on; and once a descriptor frees up, new connections are served again.
 *
 * The clients live in this process too, so their sockets are made before
 * the limit comes down and moved above it with dup2: a descriptor above
 * the soft limit stays usable, only new ones must be below it. Every slot
 * below the limit is filled but ROOM, which is then exactly the room the
 * server has for new connections.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define HIGH_FD 900 /* where the client sockets go, above the lowered limit */
#define NCLIENTS 8
#define ROOM 3 /* descriptors the server may still take */
#define MAX_FILL 1024

static struct rlimit orig;
static int fill[MAX_FILL], nfill;

/* Raise the limit if the client sockets at HIGH_FD need it; orig is then the limit. */
static void raise_limit_for_clients(void)
{
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &orig), 0);
    if (orig.rlim_cur < HIGH_FD + NCLIENTS + 1) {
        struct rlimit up = orig;
        assert_true(orig.rlim_max >= HIGH_FD + NCLIENTS + 1);
        up.rlim_cur = HIGH_FD + NCLIENTS + 1;
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &up), 0);
        orig = up;
    }
}

/* An unconnected TCP socket at descriptor `at`. */
static void client_socket_at(int at)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(s >= 0);
    assert_int_equal(dup2(s, at), at);
    close(s);
}

/* Connect the socket at `fd` to the server; a harness connection for it. */
static h_conn *connect_at(h_server *s, int fd)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
    h_conn *c = calloc(1, sizeof(*c));

    assert_non_null(c);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    c->fd = fd;
    c->srv = s;
    c->next = s->conns;
    s->conns = c;
    return c;
}

/* GET /health on c: 200, kept open. */
static void assert_served(h_conn *c)
{
    h_response r;

    h_sends(c, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    h_response_free(&r);
}

/* The highest descriptor open below HIGH_FD. */
static int highest_open(void)
{
    int hi = -1;

    for (int fd = 0; fd < HIGH_FD; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            hi = fd;
    return hi;
}

/*
 * Fill every free slot up to the highest descriptor open now, then lower
 * the soft limit to leave `room` free slots above it.
 */
static void leave_room(int room)
{
    int hi = highest_open(), fd;
    struct rlimit lim = orig;

    while ((fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0 && fd < hi) {
        assert_true(nfill < MAX_FILL);
        fill[nfill++] = fd;
    }
    assert_true(fd >= 0);
    close(fd); /* fd == hi + 1: the first of the room */
    lim.rlim_cur = (rlim_t)(hi + 1 + room);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &lim), 0);
}

static void restore_limit(void)
{
    setrlimit(RLIMIT_NOFILE, &orig);
    while (nfill > 0)
        close(fill[--nfill]);
}

static int teardown(void **state)
{
    int rc;

    restore_limit();
    rc = h_teardown(state);
    for (int i = 0; i < NCLIENTS; i++) /* the ones never connected */
        close(HIGH_FD + i);
    return rc;
}

static void test_past_the_fd_limit(void **state)
{
    h_server *s;
    h_conn *open_[ROOM], *c;
    h_response r;
    cn_stats st;
    int next = 0;

    raise_limit_for_clients();
    s = h_start(NULL, NULL, NULL, NULL);
    *state = s;
    for (int i = 0; i < NCLIENTS; i++)
        client_socket_at(HIGH_FD + i);
    /* the health check's connection is gone: nothing closes behind our back */
    assert_true(h_wait_active(s, 0, H_TIMEOUT_MS));
    h_log_reset();
    leave_room(ROOM);

    /* ROOM connections fit, and are served */
    for (int i = 0; i < ROOM; i++) {
        open_[i] = connect_at(s, HIGH_FD + next++);
        assert_served(open_[i]);
    }
    assert_true(h_wait_active(s, ROOM, H_TIMEOUT_MS));

    /* past the limit: a 503 with Retry-After each, then the close */
    for (int i = 0; i < 3; i++) {
        c = connect_at(s, HIGH_FD + next++);
        assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
        assert_int_equal(r.status, 503);
        assert_non_null(h_header_get(&r, "Retry-After"));
        assert_string_equal(h_header_get(&r, "Retry-After"), "1"); /* the default */
        assert_true(h_connection_has(&r, "close"));
        h_response_free(&r);
        assert_int_equal(h_expect_eof(c, H_TIMEOUT_MS), H_OK);
        h_close(c);
    }
    /* counted before each answer was sent: no wait for the server */
    st = h_stats(s);
    assert_int_equal(st.connections_no_fd, 3);
    assert_true(st.responses_5xx >= 3);
    assert_int_equal(st.accept_pauses, 0); /* the spare answered: no pause */
    /* one warning for the burst, not one per connection */
    assert_int_equal(h_log_count(CN_LOG_WARN, "out of file descriptors", NULL), 1);

    /* the open ones are served on */
    for (int i = 0; i < ROOM; i++)
        assert_served(open_[i]);

    /* a descriptor frees up: the next connection is served */
    h_close(open_[0]);
    assert_true(h_wait_active(s, ROOM - 1, H_TIMEOUT_MS));
    c = connect_at(s, HIGH_FD + next++);
    assert_served(c);
    assert_int_equal(h_stats(s).connections_no_fd, 3);
    restore_limit();
    assert_true(next <= NCLIENTS);
}

/* Nothing has come on c: no answer, no close, no reset. (Not poll(),
 * which refuses more descriptors than the limit, here 0.) */
static void assert_nothing_yet(h_conn *c)
{
    char b;

    assert_int_equal(recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT), -1);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
}

/*
 * Out of descriptors with no spare to answer from: the limit comes down to
 * 0, below every descriptor the server holds, so closing the spare frees
 * no usable slot and it cannot be taken back. A connection then waits in
 * the backlog; the server must not spin on the listener, which stays
 * readable, but pause accepting and look again every 100 ms; and once the
 * limit is back, serve that very connection and take its spare back.
 */
static void test_no_spare_pauses(void **state)
{
    cn_config cfg = h_fast_config();
    h_server *s;
    h_conn *waiting, *c;
    h_response r;
    struct rlimit none;
    uint64_t first, later;
    int64_t t0, t1, elapsed;
    int next = 0;

    raise_limit_for_clients();
    cfg.retry_after_s = 9; /* the 503 at the end says so */
    s = h_start(&cfg, NULL, NULL, NULL);
    *state = s;
    for (int i = 0; i < NCLIENTS; i++)
        client_socket_at(HIGH_FD + i);
    assert_true(h_wait_active(s, 0, H_TIMEOUT_MS));
    h_log_reset();
    assert_int_equal(h_stats(s).accept_pauses, 0);

    /* no new descriptor for anyone in this process from here on */
    none = orig;
    none.rlim_cur = 0;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &none), 0);
    waiting = connect_at(s, HIGH_FD + next++);
    h_sends(waiting, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");

    /* the first pause: the spare is let go and cannot be taken back */
    first = h_wait_accept_pauses_past(s, 0, H_TIMEOUT_MS, &t0);
    assert_true(first >= 1);
    /*
     * Then one look per pause. Spinning would count thousands at once.
     * Pausing, pause first + 1 comes after t0 (the look at t0 read first),
     * and first + 3 two whole pauses later: 200 ms, less the loop clock's
     * rounding. 150 ms leaves a wide margin; a slow machine only adds.
     */
    later = h_wait_accept_pauses_past(s, first + 2, H_TIMEOUT_MS, &t1);
    elapsed = h_now_ms() - t0; /* after the look that read it */
    assert_true(later >= first + 3);
    assert_true(elapsed >= 150);
    /* no answer could be given (no spare), and nothing was reset */
    assert_nothing_yet(waiting);
    assert_int_equal(h_stats(s).connections_no_fd, 0);
    /* logged once, not once per look, and saying why nothing was answered */
    assert_int_equal(h_log_count(CN_LOG_WARN, "out of file descriptors", NULL), 1);
    assert_int_equal(h_log_count(CN_LOG_WARN, "out of file descriptors", "accepting paused"), 1);

    /* descriptors come back: the waiting connection is served */
    restore_limit();
    assert_int_equal(h_read_response(waiting, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    h_response_free(&r);
    later = h_stats(s).accept_pauses;
    c = connect_at(s, HIGH_FD + next++);
    assert_served(c);
    assert_served(waiting);
    assert_int_equal(h_stats(s).accept_pauses, later);

    /* and the spare is back: past the limit again, a 503 instead of a wait */
    assert_true(h_wait_active(s, 2, H_TIMEOUT_MS));
    leave_room(0);
    c = connect_at(s, HIGH_FD + next++);
    assert_int_equal(h_read_response(c, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 503);
    assert_non_null(h_header_get(&r, "Retry-After"));
    assert_string_equal(h_header_get(&r, "Retry-After"), "9");
    h_response_free(&r);
    assert_int_equal(h_expect_eof(c, H_TIMEOUT_MS), H_OK);
    h_close(c);
    assert_int_equal(h_stats(s).connections_no_fd, 1);
    assert_int_equal(h_stats(s).accept_pauses, later);
    restore_limit();
    assert_true(next <= NCLIENTS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_past_the_fd_limit, teardown),
        cmocka_unit_test_teardown(test_no_spare_pauses, teardown),
    };
    int rc;

    h_log_capture_start();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    h_log_capture_stop();
    return rc;
}
