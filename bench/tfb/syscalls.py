#!/usr/bin/python3
"""syscalls.py -- system calls per request, server and PostgreSQL, on the database tests.

    bench/tfb/syscalls.py [--servers canteen,go,node,fastapi] [--workloads db-256,queries-20]
                          [--duration 3]

For each server's database instance (as bench/run starts them, pinned the
same way: server and PostgreSQL on CPU 0, wrk on CPU 1), after a warm-up,
counts the system calls the server's threads and PostgreSQL's processes make
during a wrk run (perf stat, raw_syscalls:sys_enter), and prints them per
request and per query, next to req/s. Canteen also runs with its pool's
pipelining off (--db-pipeline 1), which is the comparison the numbers are
for: how many round trips, writes and wake-ups a query costs with and
without it. The counting itself slows every process a little, so req/s here
are lower than bench/run's; compare the counts, not the speeds. Needs perf
(linux-perf) and root.
"""
import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))
sys.dont_write_bytecode = True
import harness as H  # noqa: E402

QUERIES = {"db-64": 1, "db-256": 1, "queries-1": 1, "queries-20": 20, "fortunes-64": 1,
           "fortunes-256": 1, "updates-1": 2, "updates-20": 21, "cached-20": 0}


def pg_pids(db):
    pids = [db.postmaster_pid]
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                with open("/proc/%s/stat" % e) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == db.postmaster_pid:
                        pids.append(int(e))
            except (OSError, IndexError, ValueError):
                pass
    return pids


def count(pids, seconds):
    """perf stat of raw syscalls entered by pids over `seconds`: the count."""
    p = subprocess.Popen(["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p",
                          ",".join(str(x) for x in pids), "--", "sleep", str(seconds)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return p


def read_count(p):
    _, err = p.communicate(timeout=120)
    for ln in err.splitlines():
        parts = ln.split(",")
        if len(parts) > 2 and parts[2].startswith("raw_syscalls:sys_enter"):
            try:
                return int(parts[0])
            except ValueError:
                return None
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--servers", default="canteen,go,node,fastapi")
    ap.add_argument("--workloads", default="db-256,queries-20")
    ap.add_argument("--duration", type=int, default=3)
    ap.add_argument("--pool-size", type=int, default=8)
    args = ap.parse_args()
    H.PG["pool"] = args.pool_size
    os.makedirs(H.LOGS, exist_ok=True)
    specs = H.server_specs("http://127.0.0.1:1")
    runs = []
    for s in args.servers.split(","):
        if "tfb" not in specs[s]:
            print("syscalls: %s: %s" % (s, specs[s].get("tfb_missing", "no database instance")))
            continue
        runs.append((s, specs[s]["label"], specs[s]["tfb"], []))
        if s == "canteen":
            runs.append((s, "Canteen, no pipelining", specs[s]["tfb"], ["--db-pipeline", "1"]))
    try:
        db = H.start_pg()
        if db is None:
            return 1
        print("%-24s %-12s %9s %10s %10s %10s %10s" % ("server", "workload", "req/s",
                                                      "srv sc/req", "srv sc/q", "pg sc/req",
                                                      "pg sc/q"))
        for name, label, t, extra in runs:
            port = H.pick_port(18500)
            proc = H.spawn(name + "-sc", t["cmd"](port, db) + extra, env=t["env"](port, db),
                           cwd=t["cwd"], log=os.path.join(H.LOGS, "%s-syscalls.log" % name))
            err = H.wait_ready(proc, port)
            if err:
                print("syscalls: %s did not start: %s" % (label, err))
                H.kill_group(proc)
                continue
            for wid in args.workloads.split(","):
                wl = H.WL[wid]
                H.Wrk(port, wl["path"], wl["conns"], 2).finish()
                H.wait_idle(proc, port, limit=10)
                w = H.Wrk(port, wl["path"], wl["conns"], args.duration + 2)
                time.sleep(1.0)  # counted from the second second to the last but one
                ps = count([proc.pid], args.duration)
                pp = count(pg_pids(db), args.duration)
                srv, pg = read_count(ps), read_count(pp)
                r = w.finish()
                if "error" in r or not r["requests"] or srv is None or pg is None:
                    print("%-24s %-12s failed: %s" % (label, wid, r.get("error", "no count")))
                    continue
                rps = r["requests"] / (r["duration_us"] / 1e6)
                n = rps * args.duration  # requests answered while perf counted
                q = QUERIES[wid] or None
                print("%-24s %-12s %9.0f %10.2f %10s %10.2f %10s" % (
                    label, wid, rps, srv / n, "%.2f" % (srv / n / q) if q else "-", pg / n,
                    "%.2f" % (pg / n / q) if q else "-"), flush=True)
            H.kill_group(proc, grace=2.0)
    finally:
        H.stop_pg()
        H.kill_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
