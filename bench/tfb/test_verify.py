#!/usr/bin/python3
"""test_verify.py -- the verifier, checked against servers known to be wrong.

    /usr/bin/python3 bench/tfb/test_verify.py [-v] [MODE ...]

Starts a throwaway PostgreSQL (pgdb.py) and fake_server.py, then runs the
verifier against each of the fake's modes: the good one must pass all seven
tests, and each broken one must fail the test it breaks, with a message that
names the fault. Prints one line per mode and "N passed, N failed" at the end.

Exit status: 0 when every mode came out as expected; 1 when one did not; 77
(skipped) when PostgreSQL or asyncpg is missing, unless CI is set, in which
case a missing component is a failure.
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

# mode -> (tests to run, the test that must fail, a regex its problems must match)
EXPECT = {
    "no-server": (["json"], "json", r"header Server missing"),
    "no-date": (["plaintext"], "plaintext", r"header Date missing"),
    "cached-date": (["db"], "db", r"did not change"),
    "bad-date": (["json"], "json", r"not an HTTP date"),
    "no-length": (["json"], "json", r"neither Content-Length nor Transfer-Encoding"),
    "text-json": (["db"], "db", r"Content-Type 'text/plain'"),
    "json-wrong": (["json"], "json", r"expected \{\"message\""),
    "plaintext-newline": (["plaintext"], "plaintext", r"expected b'Hello, World!'"),
    "pipeline-one": (["plaintext"], "plaintext", r"pipelined|closed mid-response|no answer"),
    "db-fake": (["db"], "db", r"in the table, the answer says|0 SELECTs"),
    "db-array": (["db"], "db", r"expected an object"),
    "db-twice": (["db"], "db", r"SELECTs on World, expected exactly"),
    "no-clamp": (["queries"], "queries", r"queries=501: 501 objects, expected 500"),
    "foo-400": (["updates"], "updates", r"queries=foo: status 400"),
    "missing-0": (["cached-queries"], "cached-queries", r"/cached-queries: 0 objects, expected 1"),
    "queries-any": (["queries"], "queries", r"SELECTs on World, expected exactly \d+ \(one per row"),
    "string-ids": (["queries"], "queries", r"id is '\d+', not an integer"),
    "fortunes-raw": (["fortunes"], "fortunes", r"<script> element"),
    "fortunes-no-added": (["fortunes"], "fortunes", r"token \d+ is"),
    "fortunes-unsorted": (["fortunes"], "fortunes", r"token \d+ is"),
    "fortunes-mojibake": (["fortunes"], "fortunes", r"token \d+ is"),
    "fortunes-cp1252": (["fortunes"], "fortunes", r"not valid UTF-8"),
    "fortunes-ctype": (["fortunes"], "fortunes", r"Content-Type 'text/html' does not match"),
    "updates-not-saved": (["updates"], "updates", r"not what the table holds"),
    "updates-same": (["updates"], "updates", r"distinct rows changed"),
    "updates-half": (["updates"], "updates", r"not what the table holds"),
    "cached-db": (["cached-queries"], "cached-queries", r"queries on World while serving"),
}


def missing_components():
    out = []
    if pgdb.pg_bindir() is None:
        out.append("PostgreSQL server binaries (postgresql)")
    r = subprocess.run(["/usr/bin/python3", "-c", "import asyncpg"], capture_output=True)
    if r.returncode != 0:
        out.append("asyncpg (python3-asyncpg)")
    if not any(os.path.exists(os.path.join(d, "psql")) for d in
               os.environ.get("PATH", "/usr/bin").split(":")):
        out.append("psql (postgresql-client)")
    if pgdb.pg_bindir() and not os.path.exists(
            "/usr/share/postgresql/15/extension/pg_stat_statements.control") and not any(
            os.path.exists(p) for p in
            __import__("glob").glob("/usr/share/postgresql/*/extension/pg_stat_statements.control")):
        out.append("pg_stat_statements (postgresql-contrib)")
    return out


def wait_port(proc, logf, timeout=30.0):
    t_end = time.time() + timeout
    while time.time() < t_end:
        if proc.poll() is not None:
            break
        with open(logf) as f:
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", f.read())
        if m:
            return int(m.group(1))
        time.sleep(0.05)
    with open(logf) as f:
        raise RuntimeError("fake_server did not start: %s" % f.read()[-500:])


def main():
    verbose = "-v" in sys.argv[1:]
    only = [a for a in sys.argv[1:] if not a.startswith("-")]
    miss = missing_components()
    if miss:
        msg = "test_verify: missing %s" % ", ".join(miss)
        if os.environ.get("CI"):
            print(msg + " (CI: a failure; script/bootstrap installs them)")
            return 1
        print(msg + ": skipped (script/bootstrap installs them)")
        return 77
    passed, failed = 0, 0
    with pgdb.PgServer() as db:
        logf = os.path.join(db.dir, "fake.log")
        with open(logf, "w") as lf:
            fake = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "fake_server.py")],
                                    env=dict(os.environ, **db.env()), stdout=lf,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        try:
            port = wait_port(fake, logf)
            modes = ["good"] + [m for m in EXPECT]
            if only:
                modes = [m for m in modes if m in only]
            for mode in modes:
                urls = {t: "/m/%s%s" % (mode, u) for t, u in verify.URLS.items()}
                tests = verify.TESTS if mode == "good" else EXPECT[mode][0]
                t0 = time.time()
                # 1.1 s between the two Date requests instead of TFB's 3 s: a Date
                # that is computed per second differs after 1.1 s all the same.
                res = verify.Verifier(port, verify.Db(db.dir), urls, conns=32, per_conn=2,
                                      date_gap=1.1).run(tests)
                took = time.time() - t0
                if mode == "good":
                    bad = {t: p for t, p in res.items() if p}
                    ok, why = not bad, "; ".join("%s: %s" % (t, p[0]) for t, p in bad.items())
                else:
                    _, must_fail, rx = EXPECT[mode]
                    probs = res[must_fail]
                    hit = [p for p in probs if re.search(rx, p)]
                    ok = bool(hit)
                    why = ("passed the verifier" if not probs else
                           "failed, but not for the expected reason /%s/: %s" % (rx, probs[0]))
                if ok:
                    passed += 1
                    detail = "" if mode == "good" else " (%s)" % hit[0]
                    print("ok   %-18s %.1f s%s" % (mode, took, detail if verbose else ""))
                else:
                    failed += 1
                    print("FAIL %-18s %s" % (mode, why))
        finally:
            fake.terminate()
            try:
                fake.wait(timeout=5)
            except subprocess.TimeoutExpired:
                fake.kill()
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
