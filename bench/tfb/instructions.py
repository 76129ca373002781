#!/usr/bin/env python3
"""instructions.py -- instructions per request of one database route, by callgrind.

    bench/tfb/instructions.py [--demo PATH] [--path /queries?queries=20]
                              [--few 200] [--many 2200] [--conns 16]

Runs the demo (--bare --database, a pool of 8) under valgrind --tool=callgrind
twice against one throwaway PostgreSQL with the TechEmpower tables
(pgdb.PgServer): once serving `few` requests of `path`, once `many`, each
from `conns` keep-alive connections, then stops it with SIGTERM. The
instructions callgrind counted in the demo (every thread) are start-up +
requests + shutdown; the difference of the two runs divided by many - few is
what one request costs, start-up and shutdown cancelled out. PostgreSQL's own
instructions are not counted (it is another process). Prints one line per run
and the figure; valgrind's slowdown makes the wall times meaningless.
"""
import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True
from pgdb import PgServer  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_up(port, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the demo exited before it served")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("the demo did not answer in %d s" % timeout)


def read_response(f):
    status = f.readline()
    if not status.startswith(b"HTTP/1.1 200"):
        raise RuntimeError("bad response: %r" % status)
    length = None
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            break
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    if length is None:
        raise RuntimeError("no Content-Length")
    f.read(length)


def load(port, path, total, conns):
    """total requests over conns keep-alive connections, each one at a time."""
    lock = threading.Lock()
    left = [total]
    errors = []
    req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path).encode()

    def worker():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=300) as s:
                f = s.makefile("rb")
                while True:
                    with lock:
                        if left[0] == 0:
                            return
                        left[0] -= 1
                    s.sendall(req)
                    read_response(f)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit("load failed: %s" % errors[0])


def run_once(demo, db, path, n, conns, outdir):
    port = free_port()
    out = os.path.join(outdir, "callgrind.%d.out" % n)
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
           demo, "--host", "127.0.0.1", "--port", str(port), "--bare",
           "--database", db.url, "--db-pool", "8", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        wait_up(port, proc)
        t0 = time.time()
        load(port, path, n, conns)
        wall = time.time() - t0
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    m = re.findall(rb"Collected : (\d+)", err)
    if not m:
        raise SystemExit("no callgrind total:\n" + err.decode(errors="replace")[-2000:])
    ir = int(m[-1])
    print("  %5d requests: %d instructions (%.1f s under valgrind)" % (n, ir, wall), flush=True)
    return ir


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--demo", default=os.environ.get(
        "BENCH_DEMO", os.path.join(ROOT, "build/release/examples/canteen-demo")))
    ap.add_argument("--path", default="/queries?queries=20")
    ap.add_argument("--few", type=int, default=200)
    ap.add_argument("--many", type=int, default=2200)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--keep", metavar="DIR", help="keep callgrind's files there (callgrind_annotate)")
    a = ap.parse_args()
    if not os.path.exists(a.demo):
        raise SystemExit("no demo at %s (build/release, target canteen-demo)" % a.demo)
    print("%s: %s, %d vs %d requests on %d connections" % (a.demo, a.path, a.few, a.many, a.conns))
    with PgServer() as db, tempfile.TemporaryDirectory() as tmp:
        out = a.keep or tmp
        if a.keep:
            os.makedirs(a.keep, exist_ok=True)
        few = run_once(a.demo, db, a.path, a.few, a.conns, out)
        many = run_once(a.demo, db, a.path, a.many, a.conns, out)
    print("instructions per request: %.0f" % ((many - few) / (a.many - a.few)))


if __name__ == "__main__":
    main()
