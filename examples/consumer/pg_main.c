/*
 * consumer_pg -- the smallest program built against an installed
 * libcanteen-pg: it creates an app and a pool (whose connections would open
 * once the loop ran), reads the pool's settings back, closes it and exits
 * without serving, so that it runs as a test with no database server.
 */
#include <stdio.h>

#include <canteen/pg.h>

int main(void)
{
    cn_app *app = cn_app_new(NULL);
    cn_pg_pool *pool;
    int rc;

    if (app == NULL)
        return 1;
    rc = cn_pg_pool_new(app, &(cn_pg_config){.conninfo = "host=/nonexistent dbname=x"}, &pool);
    if (rc < 0) {
        fprintf(stderr, "consumer_pg: cn_pg_pool_new: %s\n", cn_strerror(rc));
        cn_app_free(app);
        return 1;
    }
    printf("consumer_pg: pool of %u to %u connections\n", cn_pg_pool_config(pool)->min_size,
           cn_pg_pool_config(pool)->max_size);
    cn_pg_pool_close(pool);
    cn_app_free(app);
    return 0;
}
