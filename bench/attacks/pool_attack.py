#!/usr/bin/env python3
"""pool_attack.py -- can a few clients hold Canteen's thread pool?

    bench/attacks/pool_attack.py [--demo build/release/examples/canteen-demo]
                                 [--attack /sync-sleep/15000] [--clients 40]
                                 [--unloaded 5] [--loaded 20] [--rate 20] [--retry-ms 100]
                                 [-- demo options...]

Starts the demo on a free loopback port, then in one run:

  1. unloaded: GET /users and GET /to-thread/10, --rate a second each,
     open loop (each on its own connection, sent on schedule whether the
     ones before were answered or not), for --unloaded seconds;
  2. loaded: --clients attackers each hold a connection on the --attack
     path (send, wait for the answer however long it takes, send again
     --retry-ms after it), and after a second for them to settle the same
     probes run for --loaded seconds.

It prints each probe's p50 and p99 in both phases and the loaded/unloaded
ratio of the p99 (the target: at most 2x), and what the attackers got
(status counts). Every probe has a deadline (30 s); the demo is killed at
the end (a job that runs on after its client left must not outlive the
run). Loopback only; standalone (the Python standard library).
"""
import argparse
import asyncio
import re
import signal
import subprocess
import sys
import threading
import time

PROBES = ("/users", "/to-thread/10")
PROBE_TIMEOUT = 30.0


async def read_response(reader):
    """One HTTP/1.1 response (Content-Length framed): its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    if not m:
        raise ValueError("not an HTTP response")
    cl = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    if cl:
        await reader.readexactly(int(cl.group(1)))
    return int(m.group(1))


async def get_once(port, path):
    """GET path on a fresh connection: (status or None, seconds)."""
    t0 = time.monotonic()
    writer = None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), PROBE_TIMEOUT)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
        status = await asyncio.wait_for(read_response(reader), PROBE_TIMEOUT - (time.monotonic() - t0))
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError):
        status = None
    finally:
        if writer:
            writer.close()
    return status, time.monotonic() - t0


async def probe(port, path, seconds, rate, out):
    """Open loop: a GET every 1/rate s for `seconds`, each on its own
    connection, whether the ones before it have been answered or not (a
    stall then shows in every probe that arrived during it, as it does for
    real clients, not in one)."""
    tasks = []
    t0 = time.monotonic()
    n = int(seconds * rate)
    for i in range(n):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(get_once(port, path)))
    out.extend(await asyncio.gather(*tasks))


async def attacker(port, path, stop, retry_s, counts):
    """Hold a connection on `path`: send, wait for the answer however long
    it takes, send again retry_s after it; leave when stopped."""
    writer = None
    try:
        while not stop.is_set():
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
            get = asyncio.ensure_future(read_response(reader))
            halt = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait({get, halt}, return_when=asyncio.FIRST_COMPLETED)
            if get not in done:
                get.cancel()
                break
            halt.cancel()
            try:
                status = get.result()
            except (OSError, asyncio.IncompleteReadError, ValueError):
                status = None
                writer.close()
                writer = None
            counts[status] = counts.get(status, 0) + 1
            try:
                await asyncio.wait_for(stop.wait(), retry_s)
            except asyncio.TimeoutError:
                pass
    except OSError:
        counts["connect failed"] = counts.get("connect failed", 0) + 1
    finally:
        if writer:
            writer.close()  # the client leaves


async def run_probes(port, seconds, rate):
    results = {p: [] for p in PROBES}
    await asyncio.gather(*(probe(port, p, seconds, rate, results[p]) for p in PROBES))
    return results


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(p / 100.0 * len(xs) + 0.5)) - 1))
    return xs[k]


def start_demo(demo, extra):
    proc = subprocess.Popen([demo, "--host", "127.0.0.1", "--port", "0"] + extra,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 20
    port = None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        m = re.search(r"serving on http://127\.0\.0\.1:(\d+)", line)
        if m:
            port = int(m.group(1))
            break
    if port is None:
        proc.kill()
        sys.exit("pool_attack: the demo did not start")
    # keep draining its log so that it never blocks on a full pipe
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    return proc, port


async def session(a, port):
    for p in PROBES:  # warm up: the pool's threads, SQLite, the upstream
        await get_once(port, p)
    base = await run_probes(port, a.unloaded, a.rate)
    stop = asyncio.Event()
    counts = {}
    atk = [asyncio.ensure_future(attacker(port, a.attack, stop, a.retry_ms / 1000.0, counts))
           for _ in range(a.clients)]
    await asyncio.sleep(1.0)  # let them take what they can before the probes start
    loaded = await run_probes(port, a.loaded, a.rate)
    stop.set()
    await asyncio.wait(atk, timeout=2.0)
    return base, loaded, counts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--demo", default="build/release/examples/canteen-demo")
    ap.add_argument("--attack", default="/sync-sleep/15000")
    ap.add_argument("--clients", type=int, default=40)
    ap.add_argument("--unloaded", type=float, default=5.0)
    ap.add_argument("--loaded", type=float, default=20.0)
    ap.add_argument("--rate", type=float, default=20.0, help="probes per second per path")
    ap.add_argument("--retry-ms", type=int, default=100)
    ap.add_argument("demo_args", nargs="*", help="passed to the demo (after --)")
    a = ap.parse_args()

    proc, port = start_demo(a.demo, a.demo_args)
    try:
        base, loaded, counts = asyncio.run(session(a, port))
    finally:
        proc.send_signal(signal.SIGKILL)  # a job that outlived its client goes too
        proc.wait()

    print(f"attack: {a.clients} clients on GET {a.attack} (retry {a.retry_ms} ms); probes at "
          f"{a.rate:.0f}/s per path, open loop, {a.unloaded:.0f} s unloaded then {a.loaded:.0f} s loaded")
    for p in PROBES:
        b = [t for s, t in base[p] if s == 200]
        l_all = loaded[p]
        # a probe that failed or timed out counts with its time: it waited that long
        l_times = [t for _, t in l_all]
        bad = sum(1 for s, _ in l_all if s != 200)
        b99, l99 = pct(b, 99), pct(l_times, 99)
        print(f"  GET {p:14s} unloaded p50 {pct(b, 50) * 1000:7.1f} ms p99 {b99 * 1000:7.1f} ms"
              f" (n={len(b)}) | loaded p50 {pct(l_times, 50) * 1000:7.1f} ms p99 {l99 * 1000:8.1f}"
              f" ms max {max(l_times, default=0) * 1000:8.1f} ms (n={len(l_all)}, {bad} not 200)"
              f" | p99 ratio {l99 / b99:6.2f}x")
    got = ", ".join(f"{k if k is not None else 'no answer'}: {v}"
                    for k, v in sorted(counts.items(), key=lambda kv: str(kv[0])))
    print(f"  attackers' answers during the run: {got}")


if __name__ == "__main__":
    main()
