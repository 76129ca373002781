#!/usr/bin/env python3
"""listen_queue.py -- what becomes of connections queued on a worker's
listener when that worker exits (issue 14's listener decision).

    bench/listen_queue.py [--conns N]

Two "workers" listen on one port and accept nothing; N clients connect (the
kernel completes their handshakes into the accept queue); worker A then goes
away (closes its listener) and worker B accepts everything it can. Counted:
how many clients B got, and how many were reset instead. Three set-ups:

  inherited   one socket, A and B each hold a descriptor of it (what a
              forked worker has): A's close leaves the socket and its queue
  reuseport   one SO_REUSEPORT socket each: the kernel hashes every
              connection to one of them, and A's queue dies with A
  reuseport+migrate
              the same in a new network namespace (unshare -n, root) with
              net.ipv4.tcp_migrate_req=1 (Linux 5.14): A's queue moves to B

Loopback only; prints one line per set-up.
"""
import argparse
import errno
import os
import select
import socket
import subprocess
import sys
import time


def listener(port=0, reuseport=False):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if reuseport:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", port))
    s.listen(4096)
    return s


def measure(mode, n):
    if mode == "inherited":
        a = listener()
        b_fd = os.dup(a.fileno())
        b = socket.socket(fileno=b_fd)
    else:
        a = listener(reuseport=True)
        b = listener(a.getsockname()[1], reuseport=True)
    port = a.getsockname()[1]
    clients = []
    for _ in range(n):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.connect(("127.0.0.1", port))  # completes: the kernel queues it
        clients.append(c)
    a.close()  # worker A goes away without accepting
    b.setblocking(False)
    got = []
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            conn, _ = b.accept()
            got.append(conn)
        except BlockingIOError:
            if len(got) == n or not select.select([b], [], [], 0.2)[0]:
                break
    reset = 0
    for c in clients:
        c.setblocking(False)
        try:
            if c.recv(1) == b"":
                reset += 1  # an orderly close counts as lost too
        except BlockingIOError:
            pass  # still open: fine
        except ConnectionResetError:
            reset += 1
    for s in got + clients:
        s.close()
    b.close()
    return len(got), reset


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=200)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        got, reset = measure(args.one, args.conns)
        print("%d %d" % (got, reset))
        return
    kernel = os.uname().release
    for mode in ("inherited", "reuseport"):
        got, reset = measure(mode, args.conns)
        print("%-18s %d queued: %d accepted by the other worker, %d reset (kernel %s)"
              % (mode, args.conns, got, reset, kernel))
    # the migration needs a network namespace of our own, where the sysctl is ours
    cmd = ["unshare", "-n", "sh", "-c",
           "ip link set lo up 2>/dev/null || ifconfig lo up; "
           "sysctl -qw net.ipv4.tcp_migrate_req=1 && exec %s %s --one reuseport --conns %d"
           % (sys.executable, os.path.abspath(__file__), args.conns)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if out.returncode == 0:
            got, reset = map(int, out.stdout.split())
            print("%-18s %d queued: %d accepted by the other worker, %d reset (kernel %s)"
                  % ("reuseport+migrate", args.conns, got, reset, kernel))
        else:
            print("reuseport+migrate  not measured: %s" % (out.stderr.strip() or "unshare failed"))
    except (OSError, subprocess.TimeoutExpired) as e:
        print("reuseport+migrate  not measured: %s" % e)


if __name__ == "__main__":
    main()
