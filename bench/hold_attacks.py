#!/usr/bin/env python3
"""hold_attacks.py -- two ways one client tried to hold the demo, measured
against one or more canteen-demo binaries in the same run (say, a build
before a change and one after), each beside its own unloaded baseline.

usage: bench/hold_attacks.py DEMO [DEMO...]      (about 20 s per binary)

1. fetch queue: 8 clients on /fetch-multiple?delay_a=10000&delay_b=10000
   hold all 16 connections to the upstream for 10 s; then GET /users,
   whose fetch has a 5 s timeout. Reported: its status and time, beside
   /users unloaded.
2. fd limit: the demo runs under RLIMIT_NOFILE = 256 and 300 clients
   connect and ask GET /health, keeping their connections. Reported: how
   many got 200, 503, or a reset/EOF with no answer; then whether the
   held connections still answer and how fast (beside /health unloaded),
   and whether a new connection is served once they are closed.

Everything is on loopback, and every wait is bounded.
"""
import os
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time

FD_LIMIT = 256
FD_CLIENTS = 300


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def request(port, path, timeout=40.0, sock=None):
    """(status or a word, seconds). Keeps sock open when given one."""
    t0 = time.monotonic()
    own = sock is None
    try:
        if own:
            sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        sock.settimeout(timeout)
        sock.sendall(("GET %s HTTP/1.1\r\nHost: b\r\n\r\n" % path).encode())
        status = read_response(sock)
    except socket.timeout:
        status = "timeout"
    except (ConnectionResetError, BrokenPipeError):
        status = "reset"
    except OSError as e:
        status = "error:%s" % e.errno
    finally:
        if own and sock is not None:
            sock.close()
    return status, time.monotonic() - t0


def read_response(sock):
    """The status of one response (its body read by Content-Length or
    chunks), or 'eof' if the peer closed first."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = sock.recv(65536)
        if not d:
            return "eof"
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(b":")
        hdrs[k.strip().lower()] = v.strip()
    if b"content-length" in hdrs:
        n = int(hdrs[b"content-length"])
        while len(rest) < n:
            d = sock.recv(65536)
            if not d:
                break
            rest += d
    elif hdrs.get(b"transfer-encoding", b"").lower() == b"chunked":
        while not rest.endswith(b"0\r\n\r\n"):
            d = sock.recv(65536)
            if not d:
                break
            rest += d
    return status


class Demo:
    def __init__(self, binary, nofile=None):
        self.port = free_port()
        pre = None
        if nofile:
            def pre():
                hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))
        self.p = subprocess.Popen(
            [binary, "--port", str(self.port), "--log-level", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=pre)
        self.log = []
        threading.Thread(target=self._drain, daemon=True).start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if request(self.port, "/health", 1)[0] == 200:
                return
            time.sleep(0.05)
        raise RuntimeError("demo did not start")

    def _drain(self):
        for line in self.p.stderr:
            self.log.append(line.decode(errors="replace").rstrip())

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(15)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def ms(s):
    return "%.2f ms" % (s * 1000) if s < 0.01 else "%.0f ms" % (s * 1000)


def fetch_queue(binary):
    d = Demo(binary)
    try:
        base = [request(d.port, "/users", 10)[1] for _ in range(5)]
        attackers = [threading.Thread(target=request, args=(
            d.port, "/fetch-multiple?delay_a=10000&delay_b=10000", 30)) for _ in range(8)]
        for t in attackers:
            t.start()
        time.sleep(0.5)
        health = request(d.port, "/health", 10)
        status, took = request(d.port, "/users", 40)
        for t in attackers:
            t.join(40)
    finally:
        d.stop()
    print("  fetch queue: /users unloaded median %s (max %s); with 16 upstream connections held: "
          "%s after %s (the fetch's timeout: 5000 ms); /health meanwhile %s in %s"
          % (ms(statistics.median(base)), ms(max(base)), status, ms(took), health[0],
             ms(health[1])))


def fd_limit(binary):
    d = Demo(binary, nofile=FD_LIMIT)
    held, counts = [], {}
    try:
        s0 = socket.create_connection(("127.0.0.1", d.port), timeout=5)
        base = statistics.median(request(d.port, "/health", 5, sock=s0)[1] for _ in range(20))
        s0.close()
        time.sleep(0.2)
        for _ in range(FD_CLIENTS):
            try:
                s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
            except OSError:
                counts["connect failed"] = counts.get("connect failed", 0) + 1
                continue
            st, _ = request(d.port, "/health", 5, sock=s)
            counts[st] = counts.get(st, 0) + 1
            if st == 200:
                held.append(s)
            else:
                s.close()
        again = [request(d.port, "/health", 5, sock=s) for s in held[:50]]
        ok = sum(1 for st, _ in again if st == 200)
        lat = statistics.median(t for _, t in again) if again else float("nan")
        for s in held:
            s.close()
        time.sleep(0.5)
        after = request(d.port, "/health", 5)
        warnings = [ln for ln in d.log if "descriptor" in ln]
    finally:
        d.stop()
    print("  fd limit %d, %d clients: %s" % (FD_LIMIT, FD_CLIENTS, ", ".join(
        "%s: %d" % (k, v) for k, v in sorted(counts.items(), key=lambda kv: str(kv[0])))))
    print("    held connections still answer: %d of %d, /health median %s (unloaded, on a kept "
          "connection too: %s, %.1fx); "
          "after closing them a new connection gets %s; %d log line(s) on descriptors"
          % (ok, len(again), ms(lat), ms(base), lat / base, after[0], len(warnings)))


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    for b in sys.argv[1:]:
        print(b)
        fetch_queue(b)
        fd_limit(b)
    return 0


if __name__ == "__main__":
    sys.exit(main())
