/*
 * test_accept_errors.c -- the acceptor under accept() failures that no
 * descriptor limit can produce on demand.
 *
 * accept4 is replaced for this program (dlsym RTLD_NEXT): while armed it
 * fails with the armed errno and counts the calls. That makes the case
 * test_fdlimit cannot reach: EMFILE or ENFILE although the spare's slot is
 * free and the spare can be taken back (another thread took the slot and
 * gave it back, or the system table is full). The listener stays readable
 * throughout, so an acceptor that retries at once spins on it.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "harness.h"

static atomic_int armed_errno; /* 0: the real accept4 */
static atomic_long failed_calls;

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    static int (*real)(int, struct sockaddr *, socklen_t *, int);
    int err = atomic_load(&armed_errno);

    if (err != 0) {
        atomic_fetch_add(&failed_calls, 1);
        errno = err;
        return -1;
    }
    if (real == NULL)
        real = (int (*)(int, struct sockaddr *, socklen_t *, int))dlsym(RTLD_NEXT, "accept4");
    return real(fd, addr, len, flags);
}

/*
 * A connection waits in the backlog while every accept fails with `err`.
 * The acceptor must pause and look again once per pause, not spin: per
 * pause it may call accept a few times (the first try, the one in the
 * spare's slot), where spinning calls it thousands of times. Disarmed, the
 * waiting connection is served and no more pauses come.
 */
static void pauses_on(void **state, int err)
{
    h_server *s;
    h_conn *waiting;
    h_response r;
    uint64_t pauses, after;
    long calls;

    atomic_store(&armed_errno, 0); /* a failed case before may have left it */
    s = h_start(NULL, NULL, NULL, NULL);
    *state = s;
    h_request(s, "GET", "/health", NULL, &r); /* one served before: the acceptor is warm */
    assert_int_equal(r.status, 200);
    h_response_free(&r);
    assert_int_equal(h_stats(s).accept_pauses, 0);

    atomic_store(&failed_calls, 0);
    atomic_store(&armed_errno, err);
    waiting = h_open(s); /* connect() completes in the kernel's backlog */
    h_sends(waiting, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");

    pauses = h_wait_accept_pauses_past(s, 2, H_TIMEOUT_MS, NULL);
    calls = atomic_load(&failed_calls);
    atomic_store(&armed_errno, 0);
    assert_true(pauses >= 3);
    /* a few calls per look; a spin makes thousands within one pause */
    assert_true(calls >= 1);
    assert_true(calls <= 4 * (long)(pauses + 1));

    /* the failure is over: the connection that waited is served */
    assert_int_equal(h_read_response(waiting, &r, H_TIMEOUT_MS), H_OK);
    assert_int_equal(r.status, 200);
    h_response_free(&r);
    after = h_stats(s).accept_pauses;
    h_request(s, "GET", "/health", NULL, &r);
    assert_int_equal(r.status, 200);
    h_response_free(&r);
    assert_int_equal(h_stats(s).accept_pauses, after);
    /* nothing could be answered while every accept failed */
    assert_int_equal(h_stats(s).connections_no_fd, 0);
    h_close(waiting);
}

static void test_emfile_with_the_spare_slot_free(void **state)
{
    pauses_on(state, EMFILE);
}

static void test_enfile_with_the_spare_slot_free(void **state)
{
    pauses_on(state, ENFILE);
}

/* ENOBUFS and ENOMEM: no spare can help; pause, do not spin. */
static void test_enobufs(void **state)
{
    pauses_on(state, ENOBUFS);
}

static void test_enomem(void **state)
{
    pauses_on(state, ENOMEM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_emfile_with_the_spare_slot_free, h_teardown),
        cmocka_unit_test_teardown(test_enfile_with_the_spare_slot_free, h_teardown),
        cmocka_unit_test_teardown(test_enobufs, h_teardown),
        cmocka_unit_test_teardown(test_enomem, h_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
