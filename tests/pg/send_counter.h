/*
 * send_counter.h -- count libpq's writes. libpq writes with send(2); a
 * program linked with send_counter.c interposes send() (the executable's
 * definition wins over libc's for every library in the process) and counts
 * the calls on unix sockets -- the database's, in the pg tests and
 * bench_pg, where HTTP goes over TCP.
 */
#ifndef CANTEEN_TEST_SEND_COUNTER_H
#define CANTEEN_TEST_SEND_COUNTER_H

/* send(2) calls on unix sockets so far, in the whole process. */
long pg_unix_sends(void);

#endif
