#!/usr/bin/python3
"""test_demo.py -- the demo's TechEmpower routes pass the verifier, all seven.

    /usr/bin/python3 bench/tfb/test_demo.py PATH/TO/canteen-demo

Starts a throwaway PostgreSQL (pgdb.py) and the demo with --database on
127.0.0.1 port 0, runs bench/tfb/verify.py's seven tests against it (the
query-count burst smaller than bench/run's: 64 connections x 2), and stops
both. Prints one line per test and "N passed, N failed".

Exit status: 0 when all seven pass; 1 otherwise; 77 (skipped) when
PostgreSQL is missing, unless CI is set, in which case that is a failure.
"""
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True
import pgdb  # noqa: E402
import verify  # noqa: E402


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
                    print("FAIL the demo exited with status %s:\n%s" % (rc, f.read()[-1500:]))
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
