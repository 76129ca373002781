/*
 * pg_cost.c -- PostgreSQL's own CPU per query for a batch of single-row
 * prepared SELECTs sent through libpq in pipeline mode, one Sync per batch,
 * the way libcanteen-pg sends cn_pg_query_all (src/pg/conn.c).
 *
 * usage: pg_cost CONNINFO text|binary BATCHES PER_BATCH SQL [DEPTH]
 *
 * DEPTH (default 1): batches sent before the first is read, each with its
 * own Sync, as the pool pipelines several requests' batches on a connection.
 *
 * text:   text parameters and results (what libcanteen-pg sends today)
 * binary: binary int4 parameter and binary results
 *
 * Prints one line: "<mode> queries=<n> backend_ns=<ns> backend_ticks=<t>",
 * the backend's CPU (from /proc/<PQbackendPID>/schedstat, and utime+stime
 * from /proc/<pid>/stat) over the measured batches only. Run by
 * bench/pg_cost/run.py, which starts the server and prints the ratios.
 */
#include <arpa/inet.h>
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int backend_cpu(int pid, unsigned long long *ns, unsigned long long *ticks)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/schedstat", pid);
    FILE *f = fopen(path, "r");
    if (!f || fscanf(f, "%llu", ns) != 1) {
        if (f)
            fclose(f);
        return -1;
    }
    fclose(f);
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    f = fopen(path, "r");
    if (!f || !fgets(buf, sizeof buf, f)) {
        if (f)
            fclose(f);
        return -1;
    }
    fclose(f);
    char *p = strrchr(buf, ')');
    unsigned long long ut = 0, st = 0;
    /* after ")": state ppid pgrp session tty tpgid flags minflt cminflt
     * majflt cmajflt utime stime */
    if (!p ||
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    *ticks = ut + st;
    return 0;
}

static int run_batch(PGconn *pg, int binary, int per_batch, int depth, unsigned *seed)
{
    char text[16];
    uint32_t be;
    for (int i = 0; i < per_batch * depth; i++) {
        int id = (int)(rand_r(seed) % 10000) + 1;
        const char *val;
        int len = 0, fmt = binary;
        if (binary) {
            be = htonl((uint32_t)id);
            val = (const char *)&be;
            len = 4;
        } else {
            snprintf(text, sizeof text, "%d", id);
            val = text;
        }
        if (!PQsendQueryPrepared(pg, "w", 1, &val, &len, &fmt, binary))
            return -1;
        /* PQpipelineSync flushes: the last one sends the whole group */
        if ((i + 1) % per_batch == 0 && !PQpipelineSync(pg))
            return -1;
    }
    int rows = 0, syncs = 0;
    for (;;) {
        PGresult *r = PQgetResult(pg);
        if (!r)
            continue; /* end of one query's results */
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            if (++syncs == depth)
                break;
            continue;
        }
        if (st != PGRES_TUPLES_OK || PQntuples(r) != 1) {
            fprintf(stderr, "pg_cost: %s", PQresultErrorMessage(r));
            PQclear(r);
            return -1;
        }
        rows++;
        PQclear(r);
    }
    return rows == per_batch * depth ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc != 6 && argc != 7) {
        fprintf(stderr, "usage: pg_cost CONNINFO text|binary BATCHES PER_BATCH SQL [DEPTH]\n");
        return 2;
    }
    int binary = strcmp(argv[2], "binary") == 0;
    int batches = atoi(argv[3]), per_batch = atoi(argv[4]);
    int depth = argc == 7 ? atoi(argv[6]) : 1;
    if (batches < 1 || per_batch < 1 || depth < 1)
        return 2;
    batches = (batches + depth - 1) / depth; /* groups of DEPTH batches */
    PGconn *pg = PQconnectdb(argv[1]);
    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "pg_cost: %s", PQerrorMessage(pg));
        return 1;
    }
    PGresult *r = PQprepare(pg, "w", argv[5], 1, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "pg_cost: prepare: %s", PQresultErrorMessage(r));
        return 1;
    }
    PQclear(r);
    if (!PQenterPipelineMode(pg))
        return 1;
    unsigned seed = 42;
    int warm = batches / 10 + 10;
    for (int i = 0; i < warm; i++)
        if (run_batch(pg, binary, per_batch, depth, &seed))
            return 1;
    unsigned long long ns0, ns1, t0, t1;
    int pid = PQbackendPID(pg);
    if (backend_cpu(pid, &ns0, &t0))
        return 1;
    for (int i = 0; i < batches; i++)
        if (run_batch(pg, binary, per_batch, depth, &seed))
            return 1;
    if (backend_cpu(pid, &ns1, &t1))
        return 1;
    printf("libpq-%s queries=%d backend_ns=%llu backend_ticks=%llu\n", argv[2],
           batches * per_batch * depth, ns1 - ns0, t1 - t0);
    PQfinish(pg);
    return 0;
}
