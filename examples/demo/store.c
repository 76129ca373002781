/* store.c -- the demo's SQLite user store (see store.h). */
#include <sqlite3.h>
#include <stddef.h>
#include <stdlib.h>

#include <canteen.h>

#include "store.h"

static sqlite3 *db;

int store_open(void)
{
    char *err = NULL;

    static int registered;

    if (db)
        return 0;
    /* the store lives as long as the process; close it on the way out so
     * memory checkers see every byte returned */
    if (!registered && atexit(store_close) == 0)
        registered = 1;
    /* serialized mode: one connection shared safely by the pool's workers */
    if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL) !=
        SQLITE_OK)
        return -1;
    if (sqlite3_exec(db,
                     "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                     " email TEXT NOT NULL);"
                     "INSERT INTO users (id, name, email) VALUES"
                     " (1, 'Alice', 'alice@example.com'),"
                     " (2, 'Bob', 'bob@example.com');",
                     NULL, NULL, &err) != SQLITE_OK) {
        sqlite3_free(err);
        store_close();
        return -1;
    }
    return 0;
}

void store_close(void)
{
    sqlite3_close(db);
    db = NULL;
}

int store_list_users(cJSON **out)
{
    sqlite3_stmt *st;
    cJSON *arr;
    int rc;

    *out = NULL;
    if (db == NULL)
        return CN_ESTATE;
    if (sqlite3_prepare_v2(db, "SELECT id, name, email FROM users ORDER BY id", -1, &st, NULL) !=
        SQLITE_OK)
        return CN_EINVAL;
    arr = cJSON_CreateArray();
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        cJSON *u = cJSON_CreateObject();
        cJSON_AddNumberToObject(u, "id", sqlite3_column_int(st, 0));
        cJSON_AddStringToObject(u, "name", (const char *)sqlite3_column_text(st, 1));
        cJSON_AddStringToObject(u, "email", (const char *)sqlite3_column_text(st, 2));
        cJSON_AddItemToArray(arr, u);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        cJSON_Delete(arr);
        return CN_EINVAL;
    }
    *out = arr;
    return 0;
}
