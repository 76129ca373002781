/*
 * gate.h -- a gate the pool tests' jobs wait at on a worker thread, so a
 * test holds workers busy for exactly as long as it wants: gate_close,
 * submit jobs that call gate_pass, watch gate_waiting, gate_release.
 * A pass waits at most 10 s, so a test that fails before it opens the gate
 * still ends. Header-only: each test program has its own gate.
 */
#ifndef CN_TEST_GATE_H
#define CN_TEST_GATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static bool gate_open;
static atomic_int gate_waiting;

static void gate_close(void)
{
    pthread_mutex_lock(&gate_mu);
    gate_open = false;
    pthread_mutex_unlock(&gate_mu);
    atomic_store(&gate_waiting, 0);
}

static void gate_release(void)
{
    pthread_mutex_lock(&gate_mu);
    gate_open = true;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
}

static void gate_pass(void)
{
    struct timespec ts;

    atomic_fetch_add(&gate_waiting, 1);
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    pthread_mutex_lock(&gate_mu);
    while (!gate_open)
        if (pthread_cond_timedwait(&gate_cv, &gate_mu, &ts) != 0)
            break;
    pthread_mutex_unlock(&gate_mu);
}

#endif
