/*
 * store.h -- the demo's local user store: a real embedded SQLite database.
 * SQLite has no async API (the guide's "library with no async version"), so
 * async routes reach it through cn_to_thread.
 */
#ifndef CANTEEN_DEMO_STORE_H
#define CANTEEN_DEMO_STORE_H

#include <cjson/cJSON.h>

/* Open the in-memory database and seed it (Alice and Bob). 0 or -1. */
int store_open(void);
void store_close(void);

/* Blocking: every user as a JSON array into *out (caller owns it). 0 or a
 * negative CN_E* code. Thread-safe (the connection is serialised). */
int store_list_users(cJSON **out);

/* PostgreSQL (store_pg.c, when built with libcanteen-pg). Awaitable: call
 * from a coroutine. The rows as a JSON array into *out (caller owns it). */
#include <stdbool.h>
#include <canteen.h>
int store_pg_open(cn_app *app, const char *url); /* registers the lifespan */
bool store_pg_enabled(void);
int store_pg_list_users(cJSON **out);
int store_pg_register(cn_app *app);

#endif
