/*
 * stmt.c -- a connection's prepared statements, least recently used first
 * out (asyncpg's statement cache): a hash from SQL text to a statement
 * name ("cn_s17") plus an LRU list. Prepared statements live on one
 * server session, so the cache is per connection and dies with it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_int.h"

static uint64_t hash_sql(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static pg_stmt **slot(pg_conn *c, uint64_t h)
{
    return &c->table[h & (c->table_cap - 1)];
}

pg_stmt *pg__stmt_get(pg_conn *c, const char *sql)
{
    uint64_t h;

    if (c->table_cap == 0)
        return NULL;
    h = hash_sql(sql);
    for (pg_stmt *s = *slot(c, h); s; s = s->next) {
        if (s->hash == h && strcmp(s->sql, sql) == 0) {
            cn__list_remove(&s->lru);
            cn__list_push(&c->lru, &s->lru); /* the tail is the newest */
            return s;
        }
    }
    return NULL;
}

static void unlink_stmt(pg_conn *c, pg_stmt *s)
{
    s->cached = false;
    for (pg_stmt **pp = slot(c, s->hash); *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    cn__list_remove(&s->lru);
    c->nstmts--;
}

void pg__stmt_unref(pg_stmt *s)
{
    if (s && --s->refs == 0) {
        free(s->sql);
        free(s);
    }
}

void pg__stmt_drop(pg_conn *c, pg_stmt *s)
{
    if (!s->cached)
        return;
    unlink_stmt(c, s);
    pg__stmt_unref(s);
}

pg_stmt *pg__stmt_add(pg_conn *c, const char *sql, pg_stmt **evicted)
{
    size_t limit = (size_t)c->pool->cfg.statement_cache_size;
    pg_stmt *s;

    *evicted = NULL;
    if (c->table_cap == 0) {
        size_t cap = 16;
        while (cap < limit * 2)
            cap *= 2;
        c->table = calloc(cap, sizeof(*c->table));
        if (c->table == NULL)
            return NULL;
        c->table_cap = cap;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL || (s->sql = strdup(sql)) == NULL) {
        free(s);
        return NULL;
    }
    if (c->nstmts >= limit && !cn__list_empty(&c->lru)) {
        pg_stmt *old = CN__CONTAINER_OF(c->lru.next, pg_stmt, lru);
        unlink_stmt(c, old);
        *evicted = old;
    }
    s->hash = hash_sql(sql);
    s->refs = 1; /* the cache's */
    s->cached = true;
    snprintf(s->name, sizeof s->name, "cn_s%llu", (unsigned long long)++c->next_stmt);
    s->next = *slot(c, s->hash);
    *slot(c, s->hash) = s;
    cn__list_push(&c->lru, &s->lru);
    c->nstmts++;
    return s;
}

void pg__stmt_clear(pg_conn *c)
{
    while (!cn__list_empty(&c->lru))
        pg__stmt_drop(c, CN__CONTAINER_OF(c->lru.next, pg_stmt, lru));
    free(c->table);
    c->table = NULL;
    c->table_cap = 0;
}
