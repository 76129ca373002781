#!/usr/bin/python3
"""PostgreSQL's CPU per query for the same batches of single-row prepared
SELECTs (PER_BATCH queries, one Sync), from three clients, in one run:

  libpq-text    libpq pipeline mode, text parameters and results: what
                libcanteen-pg's cn_pg_query_all sends (Bind, Describe portal,
                Execute per query)
  libpq-binary  the same with a binary int4 parameter and binary results
  pgx           Go + pgx v4 pgx.Batch on a prepared statement, as
                bench/peers/go-pgx sends /queries
  libpq-text x8  libpq-text with 8 batches (each its own Sync; libpq 15's
                PQpipelineSync writes each) sent before the first is read, as
                libcanteen-pg's pool pipelines requests on a connection
  asyncpg       Python + asyncpg 0.27 executemany on a prepared statement
                (Bind, Execute per query; one Sync)

The backend's CPU is read by each client from /proc/<backend pid>/schedstat
(ns) and /proc/<pid>/stat (utime+stime ticks) around the measured batches
only; the rounds interleave the clients and the median of each is printed
beside libpq-text's. The server is the throwaway one bench/tfb starts (World
table, pg_stat_statements on), pinned to one core with every client on the
other.

usage: bench/pg_cost/run.py [--batches 3000] [--per-batch 20] [--rounds 5]
"""
import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tfb"))
import pgdb  # noqa: E402

CANTEEN_SQL = "SELECT randomNumber FROM World WHERE id = $1"  # examples/demo/tfb.c
GO_SQL = "SELECT id, randomNumber FROM World WHERE id = $1"  # bench/peers/go-pgx


def build(work):
    """The C and Go clients, offline, the way bench/run builds its peers."""
    cflags = subprocess.run(["pkg-config", "--cflags", "--libs", "libpq"], check=True,
                            capture_output=True, text=True).stdout.split()
    subprocess.run(["cc", "-O2", "-Wall", "-Wextra", "-o", os.path.join(work, "pg_cost"),
                    os.path.join(HERE, "pg_cost.c")] + cflags, check=True)
    env = dict(os.environ, GOPATH="/usr/share/gocode", GO111MODULE="off", GOPROXY="off",
               GOFLAGS="", GOCACHE=os.path.join(work, "gocache"))
    subprocess.run(["go", "build", "-o", os.path.join(work, "pgx-cost"), "main.go"],
                   cwd=os.path.join(HERE, "pgx"), env=env, check=True)


def parse(line):
    kv = dict(f.split("=", 1) for f in line.split()[1:])
    q = int(kv["queries"])
    return int(kv["backend_ns"]) / q, int(kv["backend_ticks"]) * 1e9 / os.sysconf("SC_CLK_TCK") / q


async def asyncpg_cost(url, batches, per, sql):
    import asyncpg
    import random
    conn = await asyncpg.connect(url)
    stmt = await conn.prepare(sql)
    pid = conn.get_server_pid()
    rnd = random.Random(42)

    def args():
        return [(rnd.randint(1, 10000),) for _ in range(per)]

    def cpu():
        with open("/proc/%d/schedstat" % pid) as f:
            ns = int(f.read().split()[0])
        with open("/proc/%d/stat" % pid) as f:
            fl = f.read().rsplit(")", 1)[1].split()
        return ns, int(fl[11]) + int(fl[12])

    for _ in range(batches // 10 + 10):
        await stmt.executemany(args())
    ns0, t0 = cpu()
    for _ in range(batches):
        await stmt.executemany(args())
    ns1, t1 = cpu()
    await conn.close()
    return "asyncpg queries=%d backend_ns=%d backend_ticks=%d" % (batches * per, ns1 - ns0,
                                                                   t1 - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=3000)
    ap.add_argument("--per-batch", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="pg_cost.")
    try:
        build(work)
        ncpu = os.cpu_count() or 1
        pg_core, client_core = 0, (1 if ncpu > 1 else 0)
        with pgdb.PgServer(core=pg_core) as srv:
            url = srv.url
            pin = ["taskset", "-c", str(client_core)]
            os.sched_setaffinity(0, {client_core})
            b, p = str(a.batches), str(a.per_batch)
            clients = {
                "libpq-text": [os.path.join(work, "pg_cost"), url, "text", b, p, CANTEEN_SQL],
                "libpq-binary": [os.path.join(work, "pg_cost"), url, "binary", b, p, CANTEEN_SQL],
                "libpq-text x8": [os.path.join(work, "pg_cost"), url, "text", b, p, CANTEEN_SQL,
                                  "8"],
                "pgx": [os.path.join(work, "pgx-cost"), url, b, p, CANTEEN_SQL],
                "asyncpg": None,
                "libpq-text 2 cols": [os.path.join(work, "pg_cost"), url, "text", b, p, GO_SQL],
                "pgx 2 cols": [os.path.join(work, "pgx-cost"), url, b, p, GO_SQL],
            }
            res = {k: [] for k in clients}
            for _ in range(a.rounds):
                for name, argv in clients.items():
                    if argv is None:
                        line = asyncio.run(asyncpg_cost(url, a.batches, a.per_batch, CANTEEN_SQL))
                    else:
                        line = subprocess.run(pin + argv, check=True, capture_output=True,
                                              text=True).stdout.strip()
                    res[name].append(parse(line))
        print("PostgreSQL backend CPU per query, %d batches x %d prepared single-row SELECTs, "
              "one Sync per batch, median of %d interleaved rounds (server on core %d, "
              "clients on core %d):" % (a.batches, a.per_batch, a.rounds, pg_core, client_core))
        base = statistics.median(ns for ns, _ in res["libpq-text"])
        base_t = statistics.median(t for _, t in res["libpq-text"])
        for name, v in res.items():
            ns = statistics.median(x for x, _ in v)
            t = statistics.median(x for _, x in v)
            spread = (max(x for x, _ in v) - min(x for x, _ in v)) / ns * 100
            print("  %-18s %6.2f us/query (schedstat, spread %4.1f%%) %6.2f us/query "
                  "(utime+stime)  %.2fx libpq-text" % (name, ns / 1e3, spread, t / 1e3,
                                                       ns / base))
        print("  (utime+stime of libpq-text: %.2f us/query)" % (base_t / 1e3))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
