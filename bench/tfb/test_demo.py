#!/usr/bin/python3
"""test_demo.py -- the demo's TechEmpower routes pass the verifier, all seven, and survive
clients that leave mid-request.

    /usr/bin/python3 bench/tfb/test_demo.py PATH/TO/canteen-demo

Starts a throwaway PostgreSQL (pgdb.py) and the demo with --database on
127.0.0.1 port 0, runs bench/tfb/verify.py's seven tests against it (the
query-count burst smaller than bench/run's: 64 connections x 2), then has
hundreds of clients leave in the middle of their requests (the demo must
cancel them, queries in flight, and go on serving), and stops both. Prints
one line per check and "N passed, N failed".

Exit status: 0 when all pass; 1 otherwise; 77 (skipped) when
PostgreSQL is missing, unless CI is set, in which case that is a failure.
"""
import os
import re
import socket
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True
import pgdb  # noqa: E402
import verify  # noqa: E402


def walk_away(port, rounds=5, conns=128):
    """Clients that send a request with many queries and reset the connection
    without reading: the demo cancels those requests with their queries in
    flight, which must not hurt it (under ASan a use-after-free aborts it).
    Returns a problem or None."""
    paths = ["/queries?queries=20", "/updates?queries=20", "/db", "/fortunes"]
    for r in range(rounds):
        socks = []
        for i in range(conns):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % paths[i % len(paths)]).encode())
            socks.append(s)
        time.sleep(0.002 * r)  # a little later each round: some queries sent, some not
        for s in socks:
            # an RST, not a FIN: the server sees the connection fail at once
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
    time.sleep(0.5)
    try:
        r = verify.fetch(port, "/db")[0]
    except (OSError, verify.HttpError) as e:
        return "after clients walked away mid-request: GET /db: %s" % e
    if r.status != 200:
        return "after clients walked away mid-request: GET /db answers %d" % r.status
    return None


def main():
    if len(sys.argv) != 2:
        print("usage: test_demo.py CANTEEN_DEMO", file=sys.stderr)
        return 2
    demo = sys.argv[1]
    if pgdb.pg_bindir() is None:
        msg = "test_demo: PostgreSQL (postgresql, postgresql-contrib) is missing"
        if os.environ.get("CI"):
            print(msg + " (CI: a failure; script/bootstrap installs it)")
            return 1
        print(msg + ": skipped")
        return 77
    passed = failed = 0
    with pgdb.PgServer() as db:
        logf = os.path.join(db.dir, "demo.log")
        with open(logf, "w") as lf:
            p = subprocess.Popen([demo, "--host", "127.0.0.1", "--port", "0", "--database",
                                  db.url, "--db-pool", "4"], stdout=lf, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        try:
            port, t_end = None, time.time() + 30
            while port is None and time.time() < t_end and p.poll() is None:
                with open(logf) as f:
                    m = re.search(r"serving on http://127\.0\.0\.1:(\d+)", f.read())
                port = int(m.group(1)) if m else None
                time.sleep(0.05)
            if port is None:
                with open(logf) as f:
                    print("test_demo: the demo did not start:\n" + f.read()[-1500:])
                print("0 passed, 7 failed")
                return 1
            res = verify.Verifier(port, verify.Db(db.dir), conns=64, per_conn=2,
                                  log=lambda s: print(s, flush=True)).run(verify.TESTS)
            for t, probs in res.items():
                if probs:
                    failed += 1
                    print("FAIL %s: %s" % (t, "; ".join(probs[:3])))
                else:
                    passed += 1
                    print("ok   %s" % t)
            why = walk_away(port)
            if why or p.poll() is not None:
                failed += 1
                print("FAIL cancelled requests: %s" % (why or "the demo exited"))
            else:
                passed += 1
                print("ok   cancelled requests (queries in flight when the clients left)")
        finally:
            p.terminate()
            try:
                rc = p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = p.wait()
            if rc not in (0, -15):
                failed += 1
                with open(logf) as f:
                    text = f.read()
                    m = re.search(r"^SUMMARY: .*$", text, re.M)
                    print("FAIL the demo exited with status %s: %s\n%s" % (
                        rc, m.group(0) if m else "", text[-1500:]))
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
