#!/usr/bin/env python3
"""json_attack.py -- how long big JSON bodies keep the loop from /health.

    bench/attacks/json_attack.py [--demo PATH] [--conns 8] [--requests 24]
                                 [--bytes 1048576] [--shape numbers] [--bare]

Starts the demo (Release build by default) on a free loopback port, then:

  1. unloaded: a probe sends GET /health on one keep-alive connection every
     10 ms, 200 times, and records each answer's latency;
  2. attack: --conns connections share --requests POST /echo requests, each
     with a JSON body of --bytes bytes (default 1 MiB, the default body
     limit), one after another on each connection, while the same probe
     keeps sending /health every 10 ms until the last response is in.

It prints the probe's p50/p99/max in both phases from the same run, the
attack's wall time and the status codes it got. The probe runs in its own
process, so the attackers' Python never delays it.

Shapes: numbers  [0,0,0,...]          one cJSON node per 2 bytes (the worst)
        objects  [{"a":0},...]        two nodes per 8 bytes
        strings  ["xxxx...",...]      few nodes, long strings
Every loop is bounded: 200 probes unloaded, a 120 s cap on the attack.
"""
import argparse
import multiprocessing
import os
import re
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def body_of(shape, size):
    if shape == "numbers":
        unit, head, tail = b"0,", b"[", b"0]"
    elif shape == "objects":
        unit, head, tail = b'{"a":0},', b"[", b'{"a":0}]'
    elif shape == "strings":
        unit, head, tail = b'"' + b"x" * 1021 + b'",', b"[", b'""]'
    else:
        raise SystemExit("unknown shape " + shape)
    n = (size - len(head) - len(tail)) // len(unit)
    return head + unit * n + tail


def read_response(sock, buf):
    """One HTTP/1.1 response (Content-Length framed) -> (status, body, rest)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the head")
        buf += chunk
    head, _, buf = buf.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    m = re.search(rb"\r\ncontent-length: *(\d+)", head, re.I)
    n = int(m.group(1)) if m else 0
    while len(buf) < n:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("closed in the body")
        buf += chunk
    return status, buf[:n], buf[n:]


def probe(port, count, interval, stop, out):
    """GET /health every interval s; latencies (ms) go to out (a pipe)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    req = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    lat, buf, i = [], b"", 0
    deadline = time.monotonic() + 130
    while i < count and time.monotonic() < deadline and not stop.is_set():
        t0 = time.monotonic()
        try:
            s.sendall(req)
            status, _, buf = read_response(s, buf)
        except OSError:  # closed on us: counted as a failure, then again
            status, buf = 0, b""
            s.close()
            s = socket.create_connection(("127.0.0.1", port))
        lat.append((time.monotonic() - t0) * 1000)
        if status != 200:
            lat[-1] = float("inf")
        i += 1
        rest = interval - (time.monotonic() - t0)
        if rest > 0:
            time.sleep(rest)
    s.close()
    out.send(lat)


def attacker(port, body, n, codes, lock):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    head = (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body))
    buf = b""
    for _ in range(n):
        try:
            s.sendall(head + body)
            status, _, buf = read_response(s, buf)
        except OSError:
            status = "closed"
        with lock:
            codes[status] = codes.get(status, 0) + 1
        if status == "closed":
            break
    s.close()


def loop_metrics(port):
    """The server's own view: the longest loop turn and loop lag so far (s)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    _, body, _ = read_response(s, b"")
    s.close()
    out = {}
    for line in body.decode().splitlines():
        for name in ("canteen_loop_busiest_turn_seconds", "canteen_loop_lag_max_seconds"):
            if line.startswith(name + " "):
                out[name] = float(line.split()[1])
    return out


def loop_cpu(pid):
    """CPU time (s) the loop thread (the demo's main thread) has used."""
    with open("/proc/%d/task/%d/stat" % (pid, pid)) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def run_probe(port, count, stop):
    rd, wr = multiprocessing.Pipe(duplex=False)
    p = multiprocessing.Process(target=probe, args=(port, count, 0.010, stop, wr))
    p.start()
    return p, rd


def summary(name, lat):
    return "%-9s /health n=%4d  p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms" % (
        name, len(lat), pct(lat, 50), pct(lat, 99), max(lat) if lat else float("nan"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--demo", default=os.path.join(ROOT, "build/release/examples/canteen-demo"))
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--requests", type=int, default=24)
    ap.add_argument("--bytes", type=int, default=1 << 20)
    ap.add_argument("--shape", default="numbers", choices=["numbers", "objects", "strings"])
    ap.add_argument("--bare", action="store_true", help="run the demo --bare")
    ap.add_argument("--nice", type=int, default=0,
                    help="run the demo at this nice value (e.g. -5 on a machine other "
                         "processes keep busy: what is left is the server's own delay)")
    a = ap.parse_args()

    cmd = [a.demo, "--port", "0"] + (["--bare"] if a.bare else [])
    if a.nice:
        cmd = ["nice", "-n", str(a.nice)] + cmd
    srv = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    log = []
    try:
        port = None
        t_end = time.monotonic() + 10
        while port is None and time.monotonic() < t_end:
            line = srv.stderr.readline()
            if not line:
                break
            m = re.search(r"serving on http://[^ ]*:(\d+)", line)
            if m:
                port = int(m.group(1))
        if port is None:
            raise SystemExit("the demo did not say its port")
        log = []  # the demo's stderr, shown if it dies
        threading.Thread(target=lambda: [log.append(x) for x in srv.stderr], daemon=True).start()

        body = body_of(a.shape, a.bytes)
        stop = multiprocessing.Event()
        p, rd = run_probe(port, 200, stop)
        unloaded = rd.recv()
        p.join()
        before = loop_metrics(port)
        cpu0 = loop_cpu(srv.pid)

        codes, lock = {}, threading.Lock()
        per = [a.requests // a.conns + (1 if i < a.requests % a.conns else 0)
               for i in range(a.conns)]
        stop = multiprocessing.Event()
        p, rd = run_probe(port, 100000, stop)
        time.sleep(0.05)  # the probe is connected and ticking
        t0 = time.monotonic()
        ts = [threading.Thread(target=attacker, args=(port, body, n, codes, lock))
              for n in per if n]
        for t in ts:
            t.start()
        for t in ts:
            t.join(timeout=max(0.0, 120 - (time.monotonic() - t0)))
        wall = time.monotonic() - t0
        stop.set()
        loaded = rd.recv()
        p.join()
        after = loop_metrics(port)
        cpu = loop_cpu(srv.pid) - cpu0

        print("demo %s%s, %d x POST /echo of %d bytes (%s) on %d connections"
              % (os.path.relpath(a.demo, ROOT), " (nice %d)" % a.nice if a.nice else "", a.requests, len(body), a.shape, a.conns))
        print(summary("unloaded", unloaded))
        print(summary("attack", loaded))
        print("attack wall %.2f s, answers %s; /health p99 under attack / unloaded: %.1fx, "
              "max - unloaded p99: %.1f ms"
              % (wall, dict(sorted(codes.items(), key=str)), pct(loaded, 99) / pct(unloaded, 99),
                 max(loaded) - pct(unloaded, 99)))
        ms = [1000 * m.get(k, float("nan"))
              for k in ("canteen_loop_busiest_turn_seconds", "canteen_loop_lag_max_seconds")
              for m in (before, after)]
        print("server: busiest loop turn %.1f ms before the attack, %.1f ms after; "
              "loop lag max %.1f ms before, %.1f ms after" % tuple(ms))
        print("server: the loop thread used %.0f ms of CPU during the attack (%.1f ms a request)"
              % (cpu * 1000, cpu * 1000 / a.requests))
    finally:
        if srv.poll() is not None:
            sys.stderr.write("the demo exited with %s:\n%s" % (srv.returncode, "".join(log[-20:])))
        srv.terminate()
        try:
            srv.wait(timeout=15)
        except subprocess.TimeoutExpired:
            srv.kill()


if __name__ == "__main__":
    main()
