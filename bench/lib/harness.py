#!/usr/bin/env python3
"""harness.py -- the benchmark matrix behind bench/run.

Starts each server pinned to the server core, drives it with wrk pinned to the
client core, samples the server's CPU time and RSS from /proc, and hands the
records to report.py, which writes docs/benchmarks/. bench/run builds and
installs everything first; run this directly only to re-run part of a matrix:

    bench/lib/harness.py [--quick] [--servers canteen,node] [--workloads json-64]

Every process it starts is in its own process group and is killed on exit
(normal, error or signal); their group ids are also written to
build/bench/run.pids so that bench/run's EXIT trap can finish the job if this
process itself is killed. All traffic goes to 127.0.0.1.
"""
import argparse
import datetime
import http.client
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import report  # noqa: E402  (same folder)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tfb"))
import pgdb  # noqa: E402  (bench/tfb: the throwaway PostgreSQL)
import verify as tfb_verify  # noqa: E402  (bench/tfb: TechEmpower's rules)
from procinfo import rss_kib  # noqa: E402  (same folder)

WORK = os.path.join(ROOT, "build", "bench")
LOGS = os.path.join(WORK, "logs")
PIDFILE = os.path.join(WORK, "run.pids")
# BENCH_DEMO: measure another build of the demo (e.g. one with a branch merged in)
DEMO = os.environ.get("BENCH_DEMO") or os.path.join(ROOT, "build", "release", "examples",
                                                   "canteen-demo")
GO_PEER = os.path.join(WORK, "go-peer")
GO_PGX_PEER = os.path.join(WORK, "go-pgx-peer")
NODE_PG_DEBS = os.path.join(WORK, "node-pg", "usr", "share", "nodejs")  # see bench/run
PEERS = os.path.join(ROOT, "bench", "peers")
WRK_LUA = os.path.join(HERE, "wrk_stats.lua")
PY = "/usr/bin/python3"  # Debian's, where python3-fastapi and friends live

SERVER_CORE = "0"
CLIENT_CORE = "1" if (os.cpu_count() or 1) >= 2 else "0"
# PostgreSQL for the database workloads: on the server's core by default, so
# that what a server costs the database (round trips, one statement per row)
# and what it costs itself come out of the same core, as on TFB's hardware
# where both scale with the cores they get; --pg-core moves it (docs/benchmarks.md).
PG = {"core": SERVER_CORE, "server": None, "pool": 8, "error": None, "pgbench": []}
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
WRK_TIMEOUT_S = 10  # > 64 x 100 ms, the blocked lesson's worst honest latency

# ----------------------------------------------------------------------------
# Workloads. kind: wrk (one wrk), mixed (a background wrk saturating /cpu while
# the measured one runs), curl (sequential timed requests).
# ----------------------------------------------------------------------------


def W(wid, label, path, conns=0, kind="wrk", depth=1, ideal=None, quick=False, rss=False,
      warmup=True, bg_path=None, bg_conns=0, group=None, min_duration=0, test=None,
      cores=None, wrk_threads=1):
    # cores: the CPUs the server (a variant instance) and wrk both get, instead
    # of CPU 0 for the server and CPU 1 for wrk; wrk_threads: wrk's -t
    return dict(id=wid, label=label, path=path, conns=conns, kind=kind, depth=depth,
                ideal=ideal, quick=quick, rss=rss, warmup=warmup, bg_path=bg_path,
                bg_conns=bg_conns, group=group, min_duration=min_duration, test=test,
                cores=cores, wrk_threads=wrk_threads)


def T(wid, label, path, conns, test, quick=False):
    """A TechEmpower database workload: run on the server's database instance,
    measured only when that instance passed the verifier's `test`."""
    return W(wid, label, path, conns, group="tfb", test=test, quick=quick)


TFB_WORKLOADS = [
    T("db-64", "TFB db: GET /db, 64 conns", "/db", 64, "db"),
    T("db-256", "TFB db: GET /db, 256 conns", "/db", 256, "db", quick=True),
    T("queries-1", "TFB queries: GET /queries?queries=1, 256 conns", "/queries?queries=1", 256,
      "queries"),
    T("queries-20", "TFB queries: GET /queries?queries=20, 256 conns", "/queries?queries=20", 256,
      "queries", quick=True),
    T("fortunes-64", "TFB fortunes: GET /fortunes, 64 conns", "/fortunes", 64, "fortunes"),
    T("fortunes-256", "TFB fortunes: GET /fortunes, 256 conns", "/fortunes", 256, "fortunes",
      quick=True),
    T("updates-1", "TFB updates: GET /updates?queries=1, 256 conns", "/updates?queries=1", 256,
      "updates"),
    T("updates-20", "TFB updates: GET /updates?queries=20, 256 conns", "/updates?queries=20", 256,
      "updates", quick=True),
    T("cached-20", "TFB cached queries: GET /cached-queries?count=20, 256 conns",
      "/cached-queries?count=20", 256, "cached-queries"),
]


WORKLOADS = [
    W("plaintext-64", "GET /plaintext, 64 conns", "/plaintext", 64, quick=True, group="fast"),
    W("plaintext-256", "GET /plaintext, 256 conns", "/plaintext", 256, group="fast"),
    W("json-64", "GET /json, 64 conns", "/json", 64, group="fast"),
    W("json-256", "GET /json, 256 conns", "/json", 256, group="fast"),
    W("pipeline-16", "GET /plaintext, 256 conns, 16 pipelined", "/plaintext", 256, depth=16,
      quick=True, group="fast"),
    # Every other workload runs the demo --bare, as the peers do none of this;
    # here the same /json goes through the demo's web layer (request ID, CORS,
    # gzip's checks, the static mount's prefix test): its cost against json-64.
    W("json-web", "GET /json, 64 conns, through the demo's web layer (request ID, CORS, gzip)",
      "/json", 64, group="fast"),
    W("sleep-1k", "GET /sleep/100, 1,000 conns", "/sleep/100", 1000, ideal=10000, quick=True,
      rss=True, group="sleep"),
    W("sleep-10k", "GET /sleep/100, 10,000 conns", "/sleep/100", 10000, ideal=100000, rss=True,
      group="sleep"),
    W("lesson-async", "100 ms wait, async: GET /sleep/100, 64 conns", "/sleep/100", 64,
      ideal=640, quick=True, group="lesson"),
    W("lesson-sync", "100 ms wait, sync: GET /sync-sleep/100, 64 conns", "/sync-sleep/100", 64,
      ideal=640, quick=True, group="lesson"),
    # 10 s: in a 6 s run the first 100 ms answer nothing, which alone caps the
    # figure at 2,517 req/s, below issue 4's 2,530.
    W("sleep-under-cpu", "GET /sleep/100, 256 conns, while 16 clients load GET /cpu/100000",
      "/sleep/100", 256, kind="mixed", ideal=2560, bg_path="/cpu/100000", bg_conns=16,
      group="mixed", min_duration=20),
    W("fetch-multiple", "GET /fetch-multiple (2 upstream calls gathered), 64 conns, "
      "shared bench upstream", "/fetch-multiple", 64, group="fetch"),
    W("fetch-embedded", "GET /fetch-multiple, 64 conns, the demo's embedded upstream "
      "(same process)", "/fetch-multiple", 64, group="fetch"),
    W("users", "GET /users (SQLite via to_thread + upstream octocat, gathered), 64 conns",
      "/users", 64, group="fetch"),
    W("scenario", "GET /scenario: the guide's 200 + 1 + 1000 ms, gathered (wall time)",
      "/scenario", kind="curl", ideal=1000.0, quick=True, group="scenario"),
    # Every core (issue 14): the same load on one process and on two workers,
    # server and wrk (2 threads) both free to run on CPUs 0 and 1 -- so they
    # share the cores, and the second worker competes with wrk for them.
    W("workers-one", "GET /json, 64 conns, one process; server and wrk -t2 share CPUs 0-1",
      "/json", 64, group="workers", cores="0,1", wrk_threads=2),
    W("workers-two", "GET /json, 64 conns, --workers 2; server and wrk -t2 share CPUs 0-1",
      "/json", 64, group="workers", cores="0,1", wrk_threads=2),
] + TFB_WORKLOADS + [
    # Last for each server, with no warm-up: the requests queued behind a
    # blocked loop take 64 x 100 ms to drain, so the server is stopped instead.
    # At least 10 s: a server that answers a whole batch at once (uvicorn runs all
    # 64 ready handlers before it writes) shows nothing before 6.4 s.
    W("lesson-blocked", "100 ms wait, blocking in async: GET /trap/blocking/100, 64 conns",
      "/trap/blocking/100", 64, ideal=640, quick=True, warmup=False, group="lesson",
      min_duration=10),
]
# The order of the report (the run order above differs only by lesson-blocked).
DISPLAY_ORDER = ["plaintext-64", "plaintext-256", "json-64", "json-256", "pipeline-16", "json-web",
                 "sleep-1k", "sleep-10k", "lesson-async", "lesson-sync", "lesson-blocked",
                 "sleep-under-cpu", "fetch-multiple", "fetch-embedded", "users", "scenario",
                 "workers-one", "workers-two"] + [w["id"] for w in TFB_WORKLOADS]
WL = {w["id"]: w for w in WORKLOADS}

# ----------------------------------------------------------------------------
# Servers
# ----------------------------------------------------------------------------

H2O_ONLY = ("plaintext-64", "plaintext-256", "json-64", "json-256", "pipeline-16")
USERS_REASON = "the guide's /users example (SQLite store + upstream) exists only in the Canteen demo"
WORKERS_REASON = "one process against Canteen's own supervised workers: measured for Canteen only"
WORKERS_WL = ("workers-one", "workers-two")
WEB_REASON = "Canteen's web layer against Canteen bare (json-64): measured for Canteen only"
EMBED_REASON = "the embedded upstream is part of the Canteen demo; peers use the shared one"


def demo_has_flag(flag):
    try:
        out = subprocess.run([DEMO, "--help"], capture_output=True, text=True, timeout=5)
        return flag in (out.stdout + out.stderr)
    except (OSError, subprocess.TimeoutExpired):
        return False


def server_specs(upstream_url):
    """name -> spec. cmd/env are filled with the port by start_server()."""
    specs = {}
    demo_up = demo_has_flag("--upstream")
    # --bare: without the demo's request IDs, CORS, gzip and /static, which the
    # peers do not do either (json-web measures them)
    bare = ["--bare"] if demo_has_flag("--bare") else []
    web = lambda p: [DEMO, "--host", HOST, "--port", str(p), "--with-traps"]  # noqa: E731
    demo = lambda p: web(p) + bare  # noqa: E731
    specs["canteen"] = dict(
        label="Canteen", cmd=demo, env={}, cwd=ROOT, skip={},
        # The main instance uses the demo's embedded upstream (its default);
        # fetch-multiple runs on a second instance pointed at the shared one.
        variants=dict({"fetch-multiple": lambda p: demo(p) + ["--upstream", upstream_url]}
                      if demo_up else {},
                      **{"json-web": web,
                         "workers-one": demo,
                         "workers-two": lambda p: demo(p) + ["--workers", "2"]}),
        notes={"json-web": "a second instance, without --bare: the demo's web layer on",
               "fetch-multiple": "a second instance, started with --upstream (the shared one)",
               "fetch-embedded": "the upstream is a second Canteen app on a thread of the same "
                                 "process, so on the same core",
               "users": "the demo's embedded upstream (same process)",
               "workers-one": "a second instance, unpinned (CPUs 0-1), beside wrk -t2",
               "workers-two": "a second instance with --workers 2, unpinned (CPUs 0-1), beside "
                              "wrk -t2; CPU is the supervisor's and its workers'"})
    if not bare:
        specs["canteen"]["skip"]["json-web"] = "this build of the demo has no --bare"
    if not demo_has_flag("--workers"):
        for w in WORKERS_WL:
            specs["canteen"]["skip"][w] = "this build of the demo has no --workers"
    if not demo_up:
        specs["canteen"]["skip"]["fetch-multiple"] = "this build of the demo has no --upstream"
    node_skip = dict({w: WORKERS_REASON for w in WORKERS_WL}, **{"json-web": WEB_REASON})
    node_skip.update({
        "lesson-sync": "Node has no thread pool for handlers: a blocking wait in Node is "
                       "the trap (see the blocking-in-async row)",
        "users": USERS_REASON, "fetch-embedded": EMBED_REASON})
    specs["node"] = dict(
        label="Node.js http",
        cmd=lambda p: ["node", os.path.join(PEERS, "node", "server.js")],
        env=lambda p: {"PORT": str(p), "HOST": HOST, "UPSTREAM": upstream_url},
        cwd=PEERS, skip=node_skip,
        notes={"sleep-under-cpu": "/cpu runs on the loop (no pool)"})
    specs["fastapi"] = dict(
        label="FastAPI/uvicorn",
        cmd=lambda p: [PY, "-m", "uvicorn", "app:app", "--host", HOST, "--port", str(p),
                       "--loop", "uvloop", "--http", "httptools", "--workers", "1",
                       "--no-access-log", "--log-level", "warning"],
        env=lambda p: {"UPSTREAM": upstream_url},
        cwd=os.path.join(PEERS, "fastapi"),
        skip=dict({w: WORKERS_REASON for w in WORKERS_WL}, users=USERS_REASON,
                  **{"fetch-embedded": EMBED_REASON, "json-web": WEB_REASON}), notes={})
    specs["go"] = dict(
        label="Go net/http",
        cmd=lambda p: [GO_PEER, "-addr", "%s:%d" % (HOST, p)],
        env=lambda p: {"GOMAXPROCS": "1", "UPSTREAM": upstream_url},
        cwd=WORK, skip=dict({w: WORKERS_REASON for w in WORKERS_WL}, users=USERS_REASON,
                            **{"fetch-embedded": EMBED_REASON, "json-web": WEB_REASON}),
        notes={"lesson-sync": "same time.Sleep as async",
               "lesson-blocked": "raw nanosleep syscall: the runtime hands the P to another "
                                 "thread, so Go is not blocked"})
    # The database instances: a second process per server, started for the TFB
    # workloads alone (tfb_instance()), with the same pool size for everyone.
    pool = lambda: str(PG["pool"])  # noqa: E731
    if demo_has_flag("--database"):
        # --db-pool came with the demo's TechEmpower routes; without them the
        # verifier is the one to say what is missing
        db_pool = demo_has_flag("--db-pool")
        specs["canteen"]["tfb"] = dict(
            cmd=lambda p, db: [DEMO, "--host", HOST, "--port", str(p), "--database", db.url] + bare +
            (["--db-pool", pool()] if db_pool else []),
            env=lambda p, db: {}, cwd=ROOT, what="the demo with --database (libcanteen-pg)")
    else:
        specs["canteen"]["tfb_missing"] = ("this build of the demo has no --database: the "
                                           "PostgreSQL pool (issue 11) has not landed")
    specs["node"]["tfb"] = dict(
        cmd=lambda p, db: ["node", os.path.join(PEERS, "node-pg", "server.js")],
        env=lambda p, db: dict(db.env(), PORT=str(p), HOST=HOST, POOL_SIZE=pool(),
                               **node_pg_env()),
        cwd=os.path.join(PEERS, "node-pg"), what="node-pg, a pg.Pool")
    specs["fastapi"]["tfb"] = dict(
        cmd=lambda p, db: [PY, "-m", "uvicorn", "app:app", "--host", HOST, "--port", str(p),
                           "--loop", "uvloop", "--http", "httptools", "--workers", "1",
                           "--no-access-log", "--log-level", "warning"],
        env=lambda p, db: dict(db.env(), POOL_SIZE=pool()),
        cwd=os.path.join(PEERS, "fastapi-pg"), what="asyncpg, a pool opened in the lifespan")
    specs["go"]["tfb"] = dict(
        cmd=lambda p, db: [GO_PGX_PEER, "-addr", "%s:%d" % (HOST, p)],
        env=lambda p, db: dict(db.env(), GOMAXPROCS="1", POOL_SIZE=pool()),
        cwd=WORK, what="pgx v4, a pgxpool")
    if not os.path.exists(GO_PGX_PEER):
        specs["go"]["tfb_missing"] = "the Go pgx peer was not built (golang-github-jackc-pgx-v4-dev?)"
    h2o_reason = "h2o serves only the static /plaintext and /json files here"
    specs["h2o"] = dict(
        label="h2o",
        cmd=lambda p: ["h2o", "-c", h2o_config(p)],
        env={}, cwd=WORK,
        skip={w["id"]: h2o_reason for w in WORKLOADS if w["id"] not in H2O_ONLY},
        notes={})
    specs["h2o"]["tfb_missing"] = "h2o has no database side here"
    return specs


def node_pg_env():
    """NODE_PATH for node-pg when bench/run had to unpack Debian's package itself
    (a Node.js from elsewhere than Debian stops apt from installing it)."""
    if subprocess.run(["node", "-e", "require('pg')"], capture_output=True).returncode == 0:
        return {}
    return {"NODE_PATH": NODE_PG_DEBS} if os.path.isdir(NODE_PG_DEBS) else {}


def h2o_conf(peer, port, **subst):
    """bench/peers/<peer>/h2o.conf.in with @PORT@, @LOG@ and each @KEY@ of
    subst filled in, written to the work dir; returns its path."""
    with open(os.path.join(PEERS, peer, "h2o.conf.in")) as f:
        text = f.read()
    subst = dict(subst, PORT=str(port), LOG=os.path.join(LOGS, peer + "-error.log"))
    for key, value in subst.items():
        text = text.replace("@%s@" % key, value)
    dst = os.path.join(WORK, peer + ".conf")
    with open(dst, "w") as f:
        f.write(text)
    return dst


def upstream_config(port):
    return h2o_conf("upstream", port, DIR=os.path.join(PEERS, "upstream"))


def h2o_config(port):
    return h2o_conf("h2o", port, WWW=os.path.join(PEERS, "h2o", "www"))


# ----------------------------------------------------------------------------
# Processes
# ----------------------------------------------------------------------------

STARTED = []  # (pgid, name)
UPSTREAM_PROC = {"p": None}  # the shared upstream, on the client core


def record_pids():
    with open(PIDFILE, "w") as f:
        for pgid, _ in STARTED:
            f.write("%d\n" % pgid)


def spawn(name, argv, env=None, cwd=None, core=SERVER_CORE, log=None):
    """Start argv pinned to `core` in a new process group; return the Popen."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    out = open(log, "ab") if log else subprocess.DEVNULL
    p = subprocess.Popen(["taskset", "-c", core] + argv, env=full_env, cwd=cwd,
                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True)
    if log:
        out.close()
    STARTED.append((p.pid, name))
    record_pids()
    return p


def kill_group(p, grace=5.0):
    """SIGTERM the process group of p, SIGKILL it after `grace` seconds."""
    try:
        os.killpg(p.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.time() + grace
    while time.time() < deadline:
        if p.poll() is not None and not group_alive(p.pid):
            break
        time.sleep(0.05)
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        p.wait(timeout=2)
    except subprocess.TimeoutExpired:
        pass
    STARTED[:] = [(g, n) for g, n in STARTED if g != p.pid]
    record_pids()


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def kill_all():
    for pgid, _ in list(STARTED):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            time.sleep(0.3)
    STARTED.clear()
    record_pids()


def cpu_ticks(pid):
    """utime + stime of the process (all its threads), in clock ticks."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)
    except (OSError, IndexError, ValueError):
        return None


def group_cpu_ticks(pgid):
    """cpu_ticks summed over every process of the process group (a supervisor
    and its workers: /proc/PID/stat counts a child only once it is reaped)."""
    total, seen = 0, False
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:  # field 5 of stat(5): the process group
                total += int(fields[11]) + int(fields[12])
                seen = True
        except (OSError, IndexError, ValueError):
            continue
    return total if seen else None


def core_busy():
    """{cpu index: (busy ticks, total ticks)} from /proc/stat."""
    out = {}
    try:
        with open("/proc/stat") as f:
            for line in f:
                m = re.match(r"cpu(\d+)\s+(.*)", line)
                if m:
                    v = [int(x) for x in m.group(2).split()] + [0] * 8
                    # busy: user, nice, system, steal. Not irq/softirq: on loopback
                    # that is mostly the benchmark's own packets (about 7 % of the
                    # client core at 25,000 req/s), not another process.
                    busy = v[0] + v[1] + v[2] + v[7]
                    out[int(m.group(1))] = (busy, sum(v[:8]))
    except (OSError, ValueError):
        pass
    return out


def other_load(before, after, core, own_ticks):
    """Percent of `core` busy with something else than `own_ticks` over the interval."""
    try:
        b0, t0 = before[int(core)]
        b1, t1 = after[int(core)]
    except (KeyError, ValueError):
        return ""
    if t1 <= t0:
        return ""
    return round(max(0.0, 100.0 * ((b1 - b0) - own_ticks) / (t1 - t0)), 1)


def port_free(port):
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((HOST, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def http_get(port, path, timeout=5.0):
    """(status, body) or (None, error text)."""
    c = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    except (OSError, http.client.HTTPException) as e:
        return None, str(e)
    finally:
        c.close()


def wait_ready(p, port, timeout=20.0, path="/plaintext"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if p.poll() is not None:
            return "exited with status %s" % p.returncode
        st, _ = http_get(port, path, timeout=1.0)
        if st == 200:
            return None
        time.sleep(0.1)
    return "not answering GET /plaintext after %.0f s" % timeout


def wait_idle(p, port, limit=20.0):
    """Wait until the server uses < 5 % CPU and answers quickly (bounded)."""
    t_end = time.time() + limit
    while time.time() < t_end:
        a = cpu_ticks(p.pid)
        time.sleep(0.25)
        b = cpu_ticks(p.pid)
        if a is None or b is None:
            return False
        if (b - a) / CLK_TCK < 0.0125:
            t0 = time.time()
            st, _ = http_get(port, "/plaintext", timeout=2.0)
            if st == 200 and time.time() - t0 < 0.05:
                return True
    return False


# ----------------------------------------------------------------------------
# wrk
# ----------------------------------------------------------------------------


class Wrk:
    """One wrk process pinned to the client core; .finish() returns its figures."""

    count = 0

    def __init__(self, port, path, conns, duration, depth=1, cores=None, threads=1):
        self.cmd = ["taskset", "-c", cores or CLIENT_CORE, "wrk", "-t%d" % threads,
                    "-c%d" % conns,
                    "-d%ds" % duration, "--timeout", "%ds" % WRK_TIMEOUT_S, "--latency",
                    "-s", WRK_LUA, "http://%s:%d%s" % (HOST, port, path)]
        if depth > 1:
            self.cmd += ["--", str(depth)]
        self.duration = duration
        Wrk.count += 1
        self.out_path = os.path.join(LOGS, "wrk-%d.out" % (Wrk.count % 2))
        self.out = open(self.out_path, "w+")
        self.p = subprocess.Popen(self.cmd, stdout=self.out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
        STARTED.append((self.p.pid, "wrk"))
        self.t0 = time.time()

    def finish(self):
        deadline = self.t0 + self.duration + WRK_TIMEOUT_S + 30
        status, ru = None, None
        while time.time() < deadline:
            pid, st, ru_ = os.wait4(self.p.pid, os.WNOHANG)
            if pid:
                status, ru = st, ru_
                break
            time.sleep(0.05)
        if status is None:
            kill_group(self.p, grace=1)
            self.p.returncode = -9
        else:
            self.p.returncode = os.waitstatus_to_exitcode(status)
            STARTED[:] = [(g, n) for g, n in STARTED if g != self.p.pid]
        self.out.seek(0)
        text = self.out.read()
        self.out.close()
        m = re.search(r"^BENCHJSON (\{.*\})$", text, re.M)
        if not m:
            tail = [ln for ln in text.strip().splitlines() if ln.strip()][-1:] or ["no output"]
            return {"error": "wrk failed (exit %s): %s" % (self.p.returncode, tail[0][:200])}
        r = json.loads(m.group(1))
        if ru is not None:
            r["client_cpu_s"] = ru.ru_utime + ru.ru_stime
        return r


# ----------------------------------------------------------------------------
# Runs
# ----------------------------------------------------------------------------


def base_record(server, spec, wl, mode):
    return dict(mode=mode, workload=wl["id"], workload_label=wl["label"], group=wl["group"],
                server=server, server_label=spec["label"], connections=wl["conns"] or "",
                pipeline=wl["depth"], duration_s="", requests="", rps="", p50_ms="",
                p90_ms="", p99_ms="", max_ms="", cpu_us_per_req="", server_cpu_pct="",
                client_cpu_pct="", rss_mib="", errors="", non2xx="", ideal="",
                vs_ideal="", bg_rps="", other_cpu0_pct="", other_cpu1_pct="", pg_cpu_pct="",
                pg_us_per_req="", status="ok", note=spec["notes"].get(wl["id"], ""))


def fill_wrk(rec, r, ticks, wall, depth=1):
    secs = r["duration_us"] / 1e6
    rec["duration_s"] = round(secs, 2)
    rec["requests"] = r["requests"]
    rec["rps"] = round(r["requests"] / secs, 1) if secs else ""
    for k in ("p50", "p90", "p99", "max"):
        rec[k + "_ms"] = round(r[k + "_us"] / 1000.0, 3)
    rec["errors"] = r["connect"] + r["read"] + r["write"] + r["timeout"]
    rec["non2xx"] = r["status"]
    if ticks is not None and wall > 0:
        cpu_s = ticks / CLK_TCK
        rec["server_cpu_pct"] = round(100.0 * cpu_s / wall, 1)
        # /proc counts in clock ticks (10 ms): below 20 ticks the figure is noise.
        if r["requests"] and ticks >= 20:
            rec["cpu_us_per_req"] = round(1e6 * cpu_s / r["requests"], 2)
    if "client_cpu_s" in r and secs:
        rec["client_cpu_pct"] = round(100.0 * r["client_cpu_s"] / wall, 1)
    if not r["requests"]:
        for k in ("p50", "p90", "p99", "max"):
            rec[k + "_ms"] = ""
        rec["note"] = (rec["note"] + "; " if rec["note"] else "") + \
            "no response completed within the %.0f s run" % secs
        return
    if depth > 1:
        # wrk times a pipelined batch, not a request, and its coordinated-omission
        # correction (stats_correct) then adds samples below the histogram's
        # minimum, so p99 often comes out as 0: no latency for pipelined runs.
        for k in ("p50", "p90", "p99", "max"):
            rec[k + "_ms"] = ""
    elif rec["p99_ms"] < rec["p50_ms"] or rec["p90_ms"] < rec["p50_ms"] or not rec["p50_ms"]:
        for k in ("p50", "p90", "p99", "max"):
            rec[k + "_ms"] = ""
        rec["note"] = (rec["note"] + "; " if rec["note"] else "") + \
            "wrk's latency histogram was unusable (p99 < p50 or 0): not reported"
    if r["connect"] or r["read"] or r["write"] or r["timeout"]:
        parts = ["%s %d" % (k, r[k]) for k in ("connect", "read", "write", "timeout") if r[k]]
        extra = "socket errors: " + ", ".join(parts)
        rec["note"] = (rec["note"] + "; " if rec["note"] else "") + extra


def run_wide(proc, port, wl, args, rec):
    """A workload whose server and wrk share wl["cores"]: no per-core noise
    accounting (they are the noise), CPU summed over the server's processes."""
    D, Wu = args.duration, args.warmup
    if not args.quick:
        D = max(D, wl["min_duration"])
    if Wu > 0:
        Wrk(port, wl["path"], wl["conns"], Wu, cores=wl["cores"],
            threads=wl["wrk_threads"]).finish()
        wait_idle(proc, port, limit=10)
    t0, c0 = group_cpu_ticks(proc.pid), core_busy()
    w0 = time.time()
    r = Wrk(port, wl["path"], wl["conns"], D, cores=wl["cores"],
            threads=wl["wrk_threads"]).finish()
    wall = time.time() - w0
    t1, c1 = group_cpu_ticks(proc.pid), core_busy()
    if "error" in r:
        rec["status"], rec["note"] = "fail", r["error"]
        return
    fill_wrk(rec, r, None if t0 is None or t1 is None else t1 - t0, wall)
    # what else ran on the two cores: their busy time less the server's and wrk's
    try:
        cores = [int(c) for c in wl["cores"].split(",")]
        busy = sum(c1[c][0] - c0[c][0] for c in cores)
        total = sum(c1[c][1] - c0[c][1] for c in cores)
        own = (t1 - t0) + r.get("client_cpu_s", 0) * CLK_TCK
        other = max(0.0, 100.0 * (busy - own) / total) * len(cores) if total > 0 else None
    except (KeyError, TypeError, ValueError):
        other = None
    if other is not None:
        # in percent of one core, as srv CPU and wrk CPU are
        rec["other_cpu0_pct"] = round(other, 1)
        if other >= NOISE_PCT:
            rec["note"] = (rec["note"] + "; " if rec["note"] else "") + \
                "noisy: other processes used %.0f%% of a core on CPUs %s" % (other, wl["cores"])


def run_wrk(proc, port, wl, args, rec):
    if wl["cores"]:
        return run_wide(proc, port, wl, args, rec)
    D, Wu = args.duration, args.warmup
    if not args.quick:
        D = max(D, wl["min_duration"])
    if args.quick and wl["group"] not in ("fast", "sleep"):
        Wu = 0  # the server is already warm: quick mode saves the time
    if wl["warmup"] and Wu > 0:
        Wrk(port, wl["path"], wl["conns"], Wu, wl["depth"]).finish()
        wait_idle(proc, port, limit=10)
    t0, c0, u0, g0 = cpu_ticks(proc.pid), core_busy(), upstream_ticks(), pg_ticks()
    w0 = time.time()
    r = Wrk(port, wl["path"], wl["conns"], D, wl["depth"]).finish()
    wall = time.time() - w0
    t1, c1, u1, g1 = cpu_ticks(proc.pid), core_busy(), upstream_ticks(), pg_ticks()
    st = None if t0 is None or t1 is None else t1 - t0
    # PostgreSQL's CPU is the benchmark's own load, on whichever core it is pinned to
    pg = (g1 - g0) if g0 is not None and g1 is not None else 0
    on_server = PG["core"] == SERVER_CORE
    note_noise(rec, r, c0, c1, None if st is None else st + (pg if on_server else 0),
               extra1=u1 - u0 + (0 if on_server else pg))
    if wl["group"] == "tfb" and g0 is not None and g1 is not None and wall > 0:
        rec["pg_cpu_pct"] = round(100.0 * pg / CLK_TCK / wall, 1)
        if "error" not in r and r["requests"] and pg >= 20:
            rec["pg_us_per_req"] = round(1e6 * pg / CLK_TCK / r["requests"], 2)
    if wl["id"] == "fetch-multiple" and wall > 0:
        rec["note"] = (rec["note"] + "; " if rec["note"] else "") + \
            "shared upstream used %.0f%% of CPU %s" % (100.0 * (u1 - u0) / CLK_TCK / wall,
                                                      CLIENT_CORE)
    if wl["rss"]:
        rss = rss_kib(proc.pid)
        rec["rss_mib"] = round(rss / 1024.0, 1) if rss else ""
    if "error" in r:
        rec["status"], rec["note"] = "fail", r["error"]
        return
    fill_wrk(rec, r, None if t0 is None or t1 is None else t1 - t0, wall, wl["depth"])


NOISE_PCT = 10.0
QUIET = {"budget": 0.0, "waited": 0.0}


def wait_quiet(proc, cap=10.0):
    """Before a measured run, wait (bounded by cap and by the run's budget) until
    no other process keeps the two cores busy. Returns the other load seen last."""
    t_end = time.time() + min(cap, max(0.0, QUIET["budget"] - QUIET["waited"]))
    t_start = time.time()
    worst = 0.0
    while True:
        own = (lambda: cpu_ticks(proc.pid) or 0) if proc is not None else (lambda: 0)
        a, s0, g0 = core_busy(), own(), pg_ticks() or 0
        time.sleep(0.5)
        b, s1, g1 = core_busy(), own(), pg_ticks() or 0
        pg_on_server = PG["core"] == SERVER_CORE
        o0 = other_load(a, b, SERVER_CORE, s1 - s0 + (g1 - g0 if pg_on_server else 0)) or 0.0
        o1 = other_load(a, b, CLIENT_CORE, 0 if pg_on_server else g1 - g0) or 0.0 \
            if CLIENT_CORE != SERVER_CORE else 0.0
        worst = max(o0, o1)
        if worst < NOISE_PCT or time.time() >= t_end:
            break
    QUIET["waited"] += time.time() - t_start
    return worst


def pg_ticks():
    """PostgreSQL's CPU (postmaster and backends), in clock ticks; None without it."""
    return PG["server"].cpu_ticks() if PG["server"] is not None else None


def upstream_ticks():
    p = UPSTREAM_PROC["p"]
    return (cpu_ticks(p.pid) or 0) if p is not None else 0


def note_noise(rec, r, c0, c1, server_ticks, client=True, extra1=0):
    """Record how busy each core was with other processes during the run."""
    if server_ticks is not None:
        rec["other_cpu0_pct"] = other_load(c0, c1, SERVER_CORE, server_ticks)
    if client and "client_cpu_s" in r and CLIENT_CORE != SERVER_CORE:
        rec["other_cpu1_pct"] = other_load(c0, c1, CLIENT_CORE,
                                           r["client_cpu_s"] * CLK_TCK + extra1)
    parts = []
    o0, o1 = rec.get("other_cpu0_pct"), rec.get("other_cpu1_pct")
    if isinstance(o0, float) and o0 >= NOISE_PCT:
        parts.append("other processes used %.0f%% of the server's CPU %s" % (o0, SERVER_CORE))
    # On the client core, other load matters only when wrk was short of CPU.
    wrk_pct = 100.0 * r.get("client_cpu_s", 0) / max(r["duration_us"] / 1e6, 1e-9)
    if isinstance(o1, float) and o1 >= NOISE_PCT and wrk_pct + o1 >= 90.0:
        parts.append("other processes used %.0f%% of wrk's CPU %s" % (o1, CLIENT_CORE))
    if parts:
        rec["note"] = (rec["note"] + "; " if rec["note"] else "") + "noisy: " + ", ".join(parts)


def run_mixed(proc, port, wl, args, rec):
    """The measured wrk runs while a second wrk keeps /cpu busy (both on the client core)."""
    D, Wu = args.duration, max(args.warmup, 1)
    if not args.quick:
        D = max(D, wl["min_duration"])
    bg = Wrk(port, wl["bg_path"], wl["bg_conns"], Wu + D + 1)
    Wrk(port, wl["path"], wl["conns"], Wu).finish()
    t0, c0 = cpu_ticks(proc.pid), core_busy()
    w0 = time.time()
    r = Wrk(port, wl["path"], wl["conns"], D).finish()
    wall = time.time() - w0
    t1, c1 = cpu_ticks(proc.pid), core_busy()
    b = bg.finish()
    note_noise(rec, r, c0, c1, None if t0 is None or t1 is None else t1 - t0, client=False)
    if "error" in r:
        rec["status"], rec["note"] = "fail", r["error"]
        return
    fill_wrk(rec, r, None if t0 is None or t1 is None else t1 - t0, wall)
    rec["cpu_us_per_req"] = ""  # shared with the /cpu load: not per request
    if "error" not in b and b["duration_us"]:
        rec["bg_rps"] = round(b["requests"] / (b["duration_us"] / 1e6), 1)
        if b["status"]:
            rec["note"] = (rec["note"] + "; " if rec["note"] else "") + \
                "/cpu non-2xx %d" % b["status"]


def run_curl(proc, port, wl, args, rec):
    n = 1 if args.quick else 3
    walls, bad = [], []
    for _ in range(n):
        out = subprocess.run(["taskset", "-c", CLIENT_CORE, "curl", "-s", "-o", "/dev/null",
                              "--max-time", "10", "-w", "%{http_code} %{time_total}",
                              "http://%s:%d%s" % (HOST, port, wl["path"])],
                             capture_output=True, text=True, timeout=20)
        try:
            code, t = out.stdout.split()
            if code == "200":
                walls.append(float(t) * 1000.0)
            else:
                bad.append(code)
        except ValueError:
            bad.append("curl exit %d" % out.returncode)
    if not walls:
        rec["status"], rec["note"] = "fail", "no 200 answer: %s" % ", ".join(bad)
        return
    rec["requests"] = len(walls)
    rec["p50_ms"] = round(statistics.median(walls), 1)
    rec["max_ms"] = round(max(walls), 1)
    rec["p99_ms"] = rec["max_ms"]
    rec["non2xx"] = len(bad)


def probe(port, wl):
    """None when the route answers 200, else a reason for the dash."""
    path = wl["bg_path"] or wl["path"]
    for pth in ([wl["path"], wl["bg_path"]] if wl["bg_path"] else [path]):
        for _ in range(6):  # a 503 right after a 10,000-connection run may pass
            st, body = http_get(port, pth, timeout=15.0)
            if st != 503:
                break
            time.sleep(1.0)
        if st is None:
            return "GET %s failed: %s" % (pth, body)
        if st in (404, 405):
            return "GET %s answers %d: route not implemented" % (pth, st)
        if st != 200:
            return "GET %s answers %d: %s" % (pth, st, body[:80].decode("utf-8", "replace"))
    return None


# ----------------------------------------------------------------------------
# The database workloads: PostgreSQL, pgbench, each server's database instance
# ----------------------------------------------------------------------------


def start_pg():
    """The run's one PostgreSQL, started at the first database workload. None
    (and PG["error"]) when it cannot start."""
    if PG["server"] is not None or PG["error"]:
        return PG["server"]
    db = pgdb.PgServer(core=PG["core"], log=os.path.join(LOGS, "postgresql.log"))
    try:
        db.start()
    except (pgdb.PgError, OSError, subprocess.TimeoutExpired) as e:
        db.stop()
        PG["error"] = "PostgreSQL did not start: %s" % e
        log("bench: " + PG["error"])
        return None
    PG["server"] = db
    # the postmaster leads its own process group: bench/run's trap can reach it
    STARTED.append((db.postmaster_pid, "postgresql"))
    record_pids()
    with open(os.path.join(WORK, "pg.dir"), "w") as f:
        f.write(db.dir + "\n")
    log("bench: PostgreSQL %s up on CPU %s, socket in %s, pool size %d for every server" % (
        pg_version(), PG["core"], db.dir, PG["pool"]))
    return db


def pg_version():
    m = re.search(r"(\d+\.\d+)", cmd_out([os.path.join(pgdb.pg_bindir() or "/usr/bin", "postgres"),
                                          "--version"]))
    return m.group(1) if m else "?"


def stop_pg():
    db = PG["server"]
    if db is None:
        return
    PG["server"] = None
    db.stop()
    STARTED[:] = [(g, n) for g, n in STARTED if g != db.postmaster_pid]
    record_pids()
    try:
        os.unlink(os.path.join(WORK, "pg.dir"))
    except OSError:
        pass


PGBENCH_SQL = "\\set id random(1, 10000)\nSELECT id, randomNumber FROM World WHERE id = :id;\n"


def run_pgbench(db, args):
    """pgbench's figure for the db test's own query, from the client core, at the
    servers' pool size and at 256 clients: the database's ceiling here."""
    script = os.path.join(WORK, "pgbench-db.sql")
    with open(script, "w") as f:
        f.write(PGBENCH_SQL)
    D = args.duration
    for clients in sorted({PG["pool"], 256}):
        rec = dict(clients=clients, tps="", pg_cpu_pct="", pg_us_per_query="", note="",
                   core=PG["core"], client_core=CLIENT_CORE)
        argv = ["taskset", "-c", CLIENT_CORE, "pgbench", "-n", "-M", "prepared", "-c",
                str(clients), "-j", "1", "-f", script, "-h", db.dir, "-U", pgdb.DB_USER,
                pgdb.DB_NAME]
        try:
            subprocess.run(argv + ["-T", str(max(1, args.warmup))], capture_output=True,
                           timeout=args.warmup + 60)
            if QUIET["budget"] > QUIET["waited"]:
                wait_quiet(None)
            g0, c0, w0 = pg_ticks(), core_busy(), time.time()
            p = subprocess.Popen(argv + ["-T", str(D)], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, start_new_session=True)
            STARTED.append((p.pid, "pgbench"))
            try:
                out, _ = p.communicate(timeout=D + 60)
            except subprocess.TimeoutExpired:
                kill_group(p, grace=1)
                out = ""
            wall = time.time() - w0
            g1, c1 = pg_ticks(), core_busy()
            STARTED[:] = [(g, n) for g, n in STARTED if g != p.pid]
        except (OSError, subprocess.TimeoutExpired) as e:
            rec["note"] = "pgbench failed: %s" % e
            PG["pgbench"].append(rec)
            continue
        m = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out)
        if not m:
            rec["note"] = "pgbench failed: %s" % (out.strip().splitlines() or ["no output"])[-1]
        else:
            rec["tps"] = round(float(m.group(1)), 1)
            pg = (g1 or 0) - (g0 or 0)
            rec["pg_cpu_pct"] = round(100.0 * pg / CLK_TCK / wall, 1)
            if rec["tps"]:
                rec["pg_us_per_query"] = round(1e6 * pg / CLK_TCK / (rec["tps"] * wall), 2)
            o = other_load(c0, c1, PG["core"], pg)
            if isinstance(o, float) and o >= NOISE_PCT:
                rec["note"] = "noisy: other processes used %.0f%% of CPU %s" % (o, PG["core"])
        PG["pgbench"].append(rec)
        log("bench: pgbench -c %-3d (the db query, prepared) %s tps  postgres %s%% of CPU %s%s"
            % (clients, "{:,.0f}".format(rec["tps"]) if rec["tps"] != "" else "-",
               rec["pg_cpu_pct"], PG["core"], ("  " + rec["note"]) if rec["note"] else ""))


class TfbInstance:
    """A server's database instance: started at the server's first TFB workload,
    verified once with bench/tfb/verify.py, measured only on the tests it passed."""

    def __init__(self, name, spec, port, args):
        self.name, self.spec, self.port, self.args = name, spec, port, args
        self.proc, self.error, self.problems, self.last = None, None, None, None

    def check(self, wl):
        """(status, reason): (None, None) to measure wl; ("skip"|"fail", why) if not."""
        if "tfb_missing" in self.spec:
            return "skip", self.spec["tfb_missing"]
        if pgdb.pg_bindir() is None:
            return "skip", "PostgreSQL is not installed (postgresql, postgresql-contrib)"
        if self.error is None and self.proc is None:
            self.start()
        if self.error is None and self.proc.poll() is not None:
            self.error = "the database instance exited (status %s) after %s" % (
                self.proc.returncode, self.last or "its verification")
        if self.error:
            return "fail", self.error
        self.last = wl["id"]
        probs = self.problems.get(wl["test"])
        if probs:
            return "fail", "failed the verifier's %s test: %s" % (wl["test"], probs[0])
        return None, None

    def start(self):
        db = start_pg()
        if db is None:
            self.error = PG["error"]
            return
        t = self.spec["tfb"]
        logf = os.path.join(LOGS, "%s-tfb.log" % self.name)
        try:
            self.proc = spawn(self.name + "-tfb", t["cmd"](self.port, db),
                              env=t["env"](self.port, db), cwd=t["cwd"], log=logf)
        except OSError as e:
            self.error = "the database instance did not start: %s" % e
            return
        err = wait_ready(self.proc, self.port)
        if err:
            self.error = "the database instance did not start: %s (see %s)" % (err, logf)
            return
        t0 = time.time()
        try:
            self.problems = tfb_verify.verify(self.port, tfb_verify.Db(db.dir))
        except Exception as e:  # the verifier's own failure must not pass a server
            self.error = "the verifier could not run: %r" % e
            return
        verdict = ", ".join("%s %s" % (t, "FAIL" if p else "pass")
                            for t, p in self.problems.items())
        log("bench: %s database instance (%s) on port %d, verified in %.0f s: %s" % (
            self.spec["label"], t["what"], self.port, time.time() - t0, verdict))
        for t_, p in self.problems.items():
            for line in p[:3]:
                log("bench:   %s: %s" % (t_, line))
        VERIFIED[self.name] = {t_: (p[0] if p else "") for t_, p in self.problems.items()}

    def stop(self):
        if self.proc is not None:
            kill_group(self.proc, grace=2.0)
            self.proc = None


VERIFIED = {}  # server -> {test: "" (passed) or the first problem}


def pick_port(start):
    p = start
    while not port_free(p) and p < start + 50:
        p += 1
    return p


def log(msg):
    print(msg, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--servers", default="canteen,node,fastapi,go,h2o")
    ap.add_argument("--workloads", default="", help="comma list of workload ids")
    ap.add_argument("--duration", type=int, default=0, help="measured seconds per run")
    ap.add_argument("--warmup", type=int, default=-1, help="warm-up seconds per run")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks"))
    ap.add_argument("--quiet-budget", type=float, default=-1,
                    help="seconds in all to wait for other processes to leave the cores "
                         "alone before measured runs (default: 0 quick, 180 full)")
    ap.add_argument("--pg-core", default=SERVER_CORE,
                    help="CPU for PostgreSQL in the database workloads (default: the server's)")
    ap.add_argument("--pool-size", type=int, default=8,
                    help="database connections per server, the same for everyone (default 8)")
    ap.add_argument("--list", action="store_true", help="list workloads and exit")
    args = ap.parse_args()
    PG["core"], PG["pool"] = str(args.pg_core), args.pool_size
    if args.list:
        for w in WORKLOADS:
            print("%-16s %s%s" % (w["id"], w["label"], "  [quick]" if w["quick"] else ""))
        return 0
    args.duration = args.duration or (2 if args.quick else 6)
    args.warmup = args.warmup if args.warmup >= 0 else (1 if args.quick else 2)
    mode = "quick" if args.quick else "full"
    QUIET["budget"] = args.quiet_budget if args.quiet_budget >= 0 else (0 if args.quick else 180)
    os.makedirs(LOGS, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)

    wanted = [w for w in WORKLOADS if (w["quick"] or not args.quick)]
    if args.workloads:
        ids = args.workloads.split(",")
        bad = [i for i in ids if i not in WL]
        if bad:
            ap.error("unknown workload(s): %s (see --list)" % ", ".join(bad))
        wanted = [w for w in WORKLOADS if w["id"] in ids]
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]

    t_start = time.time()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda s, f: sys.exit(128 + s))
    records = []
    try:
        upstream_port = pick_port(18190)
        upstream = None
        upstream_url = "http://%s:%d" % (HOST, upstream_port)
        needs_up = any(w["id"] == "fetch-multiple" for w in wanted)
        if needs_up:
            # A static h2o (or, without h2o, the Go peer's fake API) on the client core:
            # it costs little next to wrk, and the same upstream serves every server.
            if shutil.which("h2o"):
                argv = ["h2o", "-c", upstream_config(upstream_port)]
            elif os.path.exists(GO_PEER):
                argv = [GO_PEER, "-upstream-mode", "-addr", "%s:%d" % (HOST, upstream_port)]
            else:
                argv = None
            if argv:
                upstream = spawn("upstream", argv, env={"GOMAXPROCS": "1"}, core=CLIENT_CORE,
                                 log=os.path.join(LOGS, "upstream.log"))
                err = wait_ready(upstream, upstream_port, path="/users/octocat")
                if err:
                    log("bench: the shared upstream did not start: %s" % err)
                    kill_group(upstream)
                    upstream = None
                else:
                    UPSTREAM_PROC["p"] = upstream
        specs = server_specs(upstream_url)
        unknown = [s for s in servers if s not in specs]
        if unknown:
            ap.error("unknown server(s): %s" % ", ".join(unknown))
        total = len(servers) * len(wanted)
        log("bench: %s matrix: %d servers x %d workloads, %d s runs after %d s warm-up, "
            "server on CPU %s, wrk on CPU %s" % (mode, len(servers), len(wanted),
                                                 args.duration, args.warmup, SERVER_CORE,
                                                 CLIENT_CORE))
        load = open("/proc/loadavg").read().split()[:3]
        log("bench: load average before the run: %s (other processes' CPU use on the two "
            "cores is recorded for every run)" % " ".join(load))
        if upstream:
            time.sleep(0.3)
        if any(w["group"] == "tfb" for w in wanted) and any(
                "tfb" in specs[s] for s in servers):
            db = start_pg()
            if db is not None:
                run_pgbench(db, args)
        n = 0
        for si, name in enumerate(servers):
            spec = specs[name]
            port = pick_port(18100 + 10 * si)
            env = spec["env"](port) if callable(spec["env"]) else spec["env"]
            logf = os.path.join(LOGS, "%s.log" % name)
            if os.path.exists(logf):
                os.unlink(logf)
            start_err = None
            if name == "go" and not os.path.exists(GO_PEER):
                start_err = "the Go peer was not built (golang-go missing?)"
            proc = None
            if start_err is None:
                try:
                    proc = spawn(name, spec["cmd"](port), env=env, cwd=spec["cwd"], log=logf)
                    start_err = wait_ready(proc, port)
                except OSError as e:
                    start_err = str(e)
            if start_err:
                log("bench: %s did not start: %s (see %s)" % (name, start_err, logf))
            else:
                log("bench: %s up on port %d (pid %d)" % (spec["label"], port, proc.pid))
            tfb = TfbInstance(name, spec, pick_port(port + 7), args)
            for wl in wanted:
                n += 1
                rec = base_record(name, spec, wl, mode)
                head = "[%2d/%d %s] %-8s %-16s" % (n, total, elapsed(t_start), name, wl["id"])
                reason = spec["skip"].get(wl["id"])
                run_proc, run_port, variant = proc, port, None
                if reason is None and wl["group"] == "tfb":
                    # the database instance is another process: the main one's
                    # state does not matter, and the verifier decides
                    status, why = tfb.check(wl)
                    if status == "fail":
                        rec["status"], rec["note"] = "fail", why
                        records.append(rec)
                        log("%s FAIL %s" % (head, why))
                        continue
                    reason = why
                    if reason is None:
                        run_proc, run_port = tfb.proc, tfb.port
                if reason is None and start_err and wl["group"] != "tfb":
                    reason = "server did not start: " + start_err
                if reason is None and wl["id"] == "fetch-multiple" and not upstream:
                    reason = "the shared upstream did not start (h2o missing?)"
                # A workload may need the server started differently (a variant):
                # a second instance runs for that workload alone.
                if reason is None and wl["id"] in spec.get("variants", {}):
                    run_port = pick_port(port + 5)
                    variant = spawn(name + "-variant", spec["variants"][wl["id"]](run_port),
                                    env=env, cwd=spec["cwd"], log=logf,
                                    core=wl["cores"] or SERVER_CORE)
                    err = wait_ready(variant, run_port)
                    if err:
                        reason = "the variant instance did not start: " + err
                    run_proc = variant
                if reason is None:
                    reason = probe(run_port, wl)
                if reason:
                    rec["status"], rec["note"] = "skip", reason
                    records.append(rec)
                    log("%s -  %s" % (head, reason))
                    if variant is not None:
                        kill_group(variant, grace=2.0)
                    continue
                if wl["ideal"] is not None:
                    rec["ideal"] = wl["ideal"]
                print(head, end=" ", flush=True)
                wait_idle(run_proc, run_port)
                if QUIET["budget"] > QUIET["waited"]:
                    wait_quiet(run_proc)
                if wl["kind"] == "wrk":
                    run_wrk(run_proc, run_port, wl, args, rec)
                elif wl["kind"] == "mixed":
                    run_mixed(run_proc, run_port, wl, args, rec)
                else:
                    run_curl(run_proc, run_port, wl, args, rec)
                if rec["status"] == "ok" and rec["ideal"] != "":
                    if wl["kind"] == "curl":
                        rec["vs_ideal"] = round(rec["p50_ms"] / wl["ideal"], 3)
                    elif rec["rps"] != "":
                        rec["vs_ideal"] = round(rec["rps"] / wl["ideal"], 3)
                if run_proc.poll() is not None:
                    rec["status"] = "fail"
                    rec["note"] = "server exited (status %s) during the run" % run_proc.returncode
                records.append(rec)
                log(summary_line(rec))
                if variant is not None:
                    kill_group(variant, grace=2.0)
                elif wl["group"] == "tfb":
                    if run_proc.poll() is not None:
                        tfb.error = "the database instance exited during %s" % wl["id"]
                        tfb.proc = None
                elif proc.poll() is not None:
                    start_err = "exited during %s" % wl["id"]
            tfb.stop()
            if proc is not None:
                kill_group(proc, grace=2.0)
        env_info = environment(specs, servers, args)
        env_info["elapsed_s"] = round(time.time() - t_start, 1)
        env_info["quiet_waited_s"] = round(QUIET["waited"], 1)
        env_info["noisy_runs"] = sum(1 for r in records if r["note"].find("noisy:") >= 0)
        env_info["pg_core"], env_info["pool_size"] = PG["core"], PG["pool"]
        env_info["pgbench"], env_info["verified"] = PG["pgbench"], VERIFIED
        env_info["postgresql"] = pg_version()
        env_info["db_drivers"] = "asyncpg %s, node-pg %s, pgx %s (Debian packages)" % (
            cmd_out([PY, "-c", "import asyncpg; print(asyncpg.__version__)"]),
            cmd_out(["node", "-e", "console.log(require('pg/package.json').version)"],
                    env=dict(os.environ, **node_pg_env())),
            dpkg_version("golang-github-jackc-pgx-v4-dev"))
        env_info["tfb_drivers"] = {s: specs[s]["tfb"]["what"] for s in servers
                                   if "tfb" in specs[s]}
        report.write_all(records, env_info, args.out)
        log("bench: wrote %s (results.md, results.csv, plots) in %s" %
            (os.path.relpath(args.out, ROOT), elapsed(t_start)))
    finally:
        stop_pg()
        kill_all()
    return 0


def elapsed(t0):
    s = int(time.time() - t0)
    return "%02d:%02d" % (s // 60, s % 60)


def summary_line(r):
    if r["status"] != "ok":
        return "FAIL %s" % r["note"]
    if r["workload"] == "scenario":
        return "wall %s ms (max %s ms)" % (r["p50_ms"], r["max_ms"])
    s = "%9s req/s  p50 %8s ms  p99 %8s ms" % ("{:,.0f}".format(r["rps"]), r["p50_ms"] or "-",
                                               r["p99_ms"] or "-")
    if r["cpu_us_per_req"] != "":
        s += "  %6.2f us/req" % r["cpu_us_per_req"]
    if r["server_cpu_pct"] != "":
        s += "  srv %s%%" % r["server_cpu_pct"]
    if r["client_cpu_pct"] != "":
        s += "  wrk %s%%" % r["client_cpu_pct"]
    if "noisy:" in r["note"]:
        s += "  [noisy: other load cpu%s %s%%, cpu%s %s%%]" % (
            SERVER_CORE, r["other_cpu0_pct"], CLIENT_CORE, r["other_cpu1_pct"])
    if r["rss_mib"] != "":
        s += "  rss %s MiB" % r["rss_mib"]
    if r["errors"]:
        s += "  err %s" % r["errors"]
    if r["non2xx"]:
        s += "  non-2xx %s" % r["non2xx"]
    if r["bg_rps"] != "":
        s += "  (/cpu %s req/s)" % "{:,.0f}".format(r["bg_rps"])
    return s


def cmd_out(argv, timeout=10, env=None):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
        return (out.stdout + out.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        return "unavailable (%s)" % e


def dpkg_version(pkg):
    v = cmd_out(["dpkg-query", "-W", "-f", "${Version}", pkg])
    return v if v and "no packages" not in v else "not installed"


def environment(specs, servers, args):
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    pyv = cmd_out([PY, "-c", "import fastapi, uvicorn, uvloop, httptools, starlette;"
                   "print('FastAPI %s, Starlette %s, uvicorn %s, uvloop %s, httptools %s' % ("
                   "fastapi.__version__, starlette.__version__, uvicorn.__version__,"
                   "uvloop.__version__, httptools.__version__))"])
    gcc = cmd_out(["cc", "--version"]).splitlines()[:1]
    try:
        with open("/proc/meminfo") as f:
            mem = f.readline().split()[1]
        mem = "%.1f GiB" % (int(mem) / 1048576)
    except (OSError, IndexError, ValueError):
        mem = "unknown"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": "quick" if args.quick else "full",
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": mem,
        "kernel": platform.release(),
        "os": cmd_out(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "canteen": "%s (git %s), %s, Release, libuv %s" % (
            cmd_out(["sh", "-c", "grep -m1 'project(canteen VERSION' %s/CMakeLists.txt | "
                     "sed 's/.*VERSION \\([0-9.]*\\).*/\\1/'" % ROOT]),
            cmd_out(["git", "-C", ROOT, "describe", "--always", "--dirty"]),
            gcc[0] if gcc else "cc", dpkg_version("libuv1")),
        "node": "Node.js %s" % cmd_out(["node", "--version"]),
        "fastapi": pyv + ", Python " + cmd_out([PY, "-c", "import sys;print(sys.version.split()[0])"]),
        "go": cmd_out(["go", "version"]),
        "h2o": cmd_out(["h2o", "--version"]).splitlines()[0] if shutil.which("h2o") else "missing",
        "wrk": cmd_out(["wrk", "-v"]).splitlines()[0] if shutil.which("wrk") else "missing",
        "curl": cmd_out(["curl", "--version"]).splitlines()[0],
        "somaxconn": open("/proc/sys/net/core/somaxconn").read().strip(),
        "nofile": str(resource.getrlimit(resource.RLIMIT_NOFILE)[0]),
        "servers": servers,
        "order": DISPLAY_ORDER,
        "labels": {s: specs[s]["label"] for s in servers},
    }


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        kill_all()
        sys.exit(130)
