#!/usr/bin/python3
"""fake_server.py -- a TechEmpower server that gets the rules wrong on purpose.

    DATABASE_URL=... /usr/bin/python3 bench/tfb/fake_server.py --port 8000

Serves the seven tests under /m/MODE/...: /m/good/db is right, /m/no-date/db
leaves out the Date header, and so on for every mode in MODES. test_verify.py
starts it once and runs the verifier against each mode to show that the
verifier passes the right one and fails each broken one, for the right
reason. Plain asyncio and asyncpg, nothing else: the HTTP is written by hand
so that each rule can be broken on its own.
"""
import argparse
import asyncio
import json
import os
import random
import sys
import time
from email.utils import formatdate

import asyncpg

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True
from fortunes import ADDED, escape  # noqa: E402

# mode -> what it gets wrong (the tests of the verifier read this too)
MODES = {
    "good": "nothing",
    "no-server": "no Server header",
    "no-date": "no Date header",
    "cached-date": "the Date of the first request, forever",
    "bad-date": "a Date that is not an HTTP date",
    "no-length": "neither Content-Length nor Transfer-Encoding (closes instead)",
    "text-json": "JSON sent as text/plain",
    "json-wrong": 'json says "Hello World"',
    "plaintext-newline": "plaintext ends with a newline",
    "pipeline-one": "answers only the first of pipelined requests",
    "db-fake": "db makes up a row without asking the database",
    "db-array": "db answers an array of one",
    "db-twice": "db runs two SELECTs per request",
    "no-clamp": "counts are not clamped to 1..500",
    "foo-400": "an invalid count is a 400, not 1",
    "missing-0": "a missing count gives an empty array",
    "queries-any": "queries reads N rows in one SELECT ... = ANY($1)",
    "string-ids": "ids are strings",
    "fortunes-raw": "fortunes not escaped",
    "fortunes-no-added": "fortunes without the row added at request time",
    "fortunes-unsorted": "fortunes in id order",
    "fortunes-mojibake": "fortunes' UTF-8 encoded twice",
    "fortunes-cp1252": "fortunes page sent in Windows-1252, ? for what does not fit",
    "fortunes-ctype": "fortunes as text/html without a charset",
    "updates-not-saved": "updates answers new numbers and writes nothing",
    "updates-same": "updates writes the numbers it read",
    "updates-half": "updates writes only the first half of the rows",
    "cached-db": "cached-queries reads the database each time",
}


class State:
    pool = None
    cache = {}
    first_date = None


def count(qs, name):
    for part in qs.split("&"):
        k, _, v = part.partition("=")
        if k == name:
            try:
                return max(1, min(500, int(v)))
            except ValueError:
                return 1
    return 1


def raw_count(qs, name):
    for part in qs.split("&"):
        k, _, v = part.partition("=")
        if k == name:
            return v
    return None


async def handle(mode, route, qs):
    """(status, content type, body bytes) for one request in `mode`."""
    pool = State.pool
    if route == "/json":
        msg = "Hello World" if mode == "json-wrong" else "Hello, World!"
        return 200, "application/json", json.dumps({"message": msg}).encode()
    if route == "/plaintext":
        return 200, "text/plain", b"Hello, World!" + (b"\n" if mode == "plaintext-newline"
                                                        else b"")
    if route == "/db":
        if mode == "db-fake":
            row = {"id": random.randint(1, 10000), "randomNumber": random.randint(1, 10000)}
        else:
            async with pool.acquire() as c:
                i = random.randint(1, 10000)
                n = await c.fetchval("SELECT randomNumber FROM World WHERE id = $1", i)
                if mode == "db-twice":
                    await c.fetchval("SELECT randomNumber FROM World WHERE id = $1", i)
            row = {"id": i, "randomNumber": n}
        return 200, "application/json", json.dumps([row] if mode == "db-array" else row).encode()
    if route in ("/queries", "/updates", "/cached-queries"):
        name = "count" if route == "/cached-queries" else "queries"
        n = count(qs, name)
        raw = raw_count(qs, name)
        if mode == "no-clamp":
            try:
                n = int(raw)
            except (TypeError, ValueError):
                n = 1
        if mode == "foo-400" and raw is not None and not raw.lstrip("-").isdigit():
            return 400, "application/json", b'{"detail":"queries must be an integer"}'
        if mode == "missing-0" and raw is None:
            n = 0
        ids = [random.randint(1, 10000) for _ in range(n)]
        if route == "/cached-queries" and mode != "cached-db":
            rows = [{"id": i, "randomNumber": State.cache[i]} for i in ids]
        else:
            async with pool.acquire() as c:
                if mode == "queries-any" and route == "/queries":
                    got = {r[0]: r[1] for r in await c.fetch(
                        "SELECT id, randomNumber FROM World WHERE id = ANY($1)", ids)}
                    rows = [{"id": i, "randomNumber": got[i]} for i in ids]
                else:
                    st = await c.prepare("SELECT randomNumber FROM World WHERE id = $1")
                    rows = [{"id": i, "randomNumber": await st.fetchval(i)} for i in ids]
                if route == "/updates":
                    for r in rows:
                        if mode != "updates-same":
                            r["randomNumber"] = random.randint(1, 10000)
                    todo = rows[: len(rows) // 2] if mode == "updates-half" else rows
                    if mode != "updates-not-saved" and todo:
                        await c.executemany(
                            "UPDATE World SET randomNumber = $2 WHERE id = $1",
                            sorted((r["id"], r["randomNumber"]) for r in todo))
        if mode == "string-ids":
            rows = [{"id": str(r["id"]), "randomNumber": r["randomNumber"]} for r in rows]
        return 200, "application/json", json.dumps(rows).encode()
    if route == "/fortunes":
        async with pool.acquire() as c:
            rows = [(r[0], r[1]) for r in await c.fetch("SELECT id, message FROM Fortune")]
        if mode != "fortunes-no-added":
            rows.append(ADDED)
        rows.sort(key=(lambda r: r[0]) if mode == "fortunes-unsorted" else (lambda r: r[1]))
        esc = (lambda s: s) if mode == "fortunes-raw" else escape
        page = ("<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table>"
                "<tr><th>id</th><th>message</th></tr>"
                + "".join("<tr><td>%d</td><td>%s</td></tr>" % (i, esc(m)) for i, m in rows)
                + "</table></body></html>")
        if mode == "fortunes-mojibake":
            body = page.encode("utf-8").decode("latin-1").encode("utf-8")
        elif mode == "fortunes-cp1252":
            body = page.encode("cp1252", "replace")
        else:
            body = page.encode("utf-8")
        ctype = "text/html" if mode == "fortunes-ctype" else "text/html; charset=utf-8"
        return 200, ctype, body
    return 404, "application/json", b'{"detail":"Not Found"}'


def head(mode, status, ctype, length):
    date = formatdate(usegmt=True)
    if mode == "cached-date":
        State.first_date = State.first_date or date
        date = State.first_date
    elif mode == "bad-date":
        date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if mode == "text-json" and ctype == "application/json":
        ctype = "text/plain"
    lines = ["HTTP/1.1 %d %s" % (status, "OK" if status == 200 else "Error")]
    if mode != "no-server":
        lines.append("Server: fake")
    if mode != "no-date":
        lines.append("Date: " + date)
    lines.append("Content-Type: " + ctype)
    if mode != "no-length":
        lines.append("Content-Length: %d" % length)
    else:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def serve(reader, writer):
    try:
        while True:
            try:
                req = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            target = req.split(b" ", 2)[1].decode()
            path, _, qs = target.partition("?")
            parts = path.split("/", 3)  # '', 'm', mode, route
            mode = parts[2] if len(parts) == 4 and parts[1] == "m" else ""
            if mode not in MODES:
                writer.write(head("good", 404, "application/json", 2) + b"{}")
                await writer.drain()
                continue
            try:
                status, ctype, body = await handle(mode, "/" + parts[3], qs)
            except Exception as e:  # a bug here should be visible, not a hang
                status, ctype, body = 500, "text/plain", repr(e).encode()
            writer.write(head(mode, status, ctype, len(body)) + body)
            await writer.drain()
            if mode == "no-length":
                break
            if mode == "pipeline-one" and reader._buffer:  # noqa: SLF001
                break  # requests already waiting behind this one are dropped
    finally:
        writer.close()


async def main_async(port, url):
    State.pool = await asyncpg.create_pool(url, min_size=4, max_size=4)
    async with State.pool.acquire() as c:
        State.cache = {r[0]: r[1] for r in await c.fetch("SELECT id, randomNumber FROM World")}
    server = await asyncio.start_server(serve, "127.0.0.1", port, backlog=1024)
    print("fake_server: listening on 127.0.0.1:%d" % server.sockets[0].getsockname()[1],
          flush=True)
    async with server:
        await server.serve_forever()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    if args.list:
        for m, what in MODES.items():
            print("%-20s %s" % (m, what))
        return 0
    try:
        asyncio.run(main_async(args.port, os.environ["DATABASE_URL"]))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
