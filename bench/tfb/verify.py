#!/usr/bin/env python3
"""verify.py -- TechEmpower's rules, applied to any server on a port.

    bench/tfb/verify.py --port 8000 --pg-socket /tmp/tfbpg.XXXX [--tests db,queries] [-v]

The server must already be running against the PostgreSQL whose unix socket
is in --pg-socket (bench/tfb/pgdb.py makes one). For each test it checks what
the official verifier checks, without its margins:

- every response: status 200; Server, Date, Content-Type and Content-Length or
  Transfer-Encoding present; Content-Type as the test requires; Date an
  RFC 9110 date; the Date of a second request 3 s later differs from the first;
- json: exactly {"message": "Hello, World!"}; plaintext: exactly
  "Hello, World!", also when 16 requests are pipelined in one write;
- db: one {"id", "randomNumber"} object, both integers 1..10000, a real row;
- queries, updates, cached-queries: the count clamped to 1..500 (0, "foo", an
  empty and a missing value count as 1; 501 as 500), an array of that many
  such objects (real rows, for queries);
- fortunes: the page parses to exactly the specification's rows plus the one
  added at request time, sorted, with the <script> row escaped and the
  Japanese row intact, in valid UTF-8, text/html; charset=utf-8;
- updates: every row returned is what the table holds afterwards, and at
  least 90 % of the distinct rows of a 500-row request got a new value;
- query counts, from pg_stat_statements, reset before and read after a burst
  of requests (256 connections x 2 by default): db runs exactly one SELECT on
  World per request, queries(20) exactly 20 with 20 rows read, fortunes one
  SELECT on Fortune with 12 rows, updates(20) 20 SELECTs and either one
  batched UPDATE or 20 UPDATEs per request, cached-queries none at all. No
  margin, except TFB's own 5 % on rows a batched UPDATE reports (a request's
  random ids may repeat, and a row is updated once per statement).

Exit status 0 when every test asked for passes, 1 otherwise. As a module,
verify(port, db, tests) returns {test: [problem, ...]} (empty list: passed).
"""
import argparse
import asyncio
import html.parser
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True
from fortunes import expected_rows  # noqa: E402

TESTS = ["json", "plaintext", "db", "queries", "fortunes", "cached-queries", "updates"]
URLS = {
    "json": "/json",
    "plaintext": "/plaintext",
    "db": "/db",
    "queries": "/queries?queries=",
    "fortunes": "/fortunes",
    "updates": "/updates?queries=",
    "cached-queries": "/cached-queries?count=",
}
CONTENT_TYPES = {
    "json": r"^application/json(; ?charset=(UTF|utf)-8)?$",
    "html": r"^text/html; ?charset=(UTF|utf)-8$",
    "plaintext": r"^text/plain(; ?charset=(UTF|utf)-8)?$",
}
KIND = {"json": "json", "plaintext": "plaintext", "db": "json", "queries": "json",
        "fortunes": "html", "updates": "json", "cached-queries": "json"}
# (value of the parameter, the count it must give); None: the parameter left out
CASES = [("2", 2), ("0", 1), ("foo", 1), ("501", 500), ("", 1), (None, 1), ("20", 20)]
HOST = "127.0.0.1"
IO_TIMEOUT = 15.0


# ----------------------------------------------------------------------------
# A small HTTP/1.1 client that shows the raw headers
# ----------------------------------------------------------------------------


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def header(self, name):
        v = self.headers.get(name.lower())
        return v[0] if v else None


class HttpError(Exception):
    pass


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
    if not m:
        raise HttpError("bad status line %r" % lines[0][:60])
    headers = {}
    for ln in lines[1:]:
        if not ln:
            continue
        if ":" not in ln:
            raise HttpError("bad header line %r" % ln[:60])
        k, v = ln.split(":", 1)
        headers.setdefault(k.strip().lower(), []).append(v.strip())
    te = ",".join(headers.get("transfer-encoding", [])).lower()
    if "chunked" in te:
        body = b""
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                break
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"][0]))
    else:
        body = await reader.read()
    return Response(int(m.group(1)), headers, body)


def request_bytes(path, port):
    return ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: */*\r\nUser-Agent: tfb-verify\r\n\r\n"
            % (path, HOST, port)).encode()


async def fetch_async(port, path, pipeline=1):
    reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), IO_TIMEOUT)
    try:
        writer.write(request_bytes(path, port) * pipeline)
        await writer.drain()
        out = []
        for _ in range(pipeline):
            out.append(await asyncio.wait_for(read_response(reader), IO_TIMEOUT))
        return out
    finally:
        writer.close()


def fetch(port, path, pipeline=1):
    """[Response] (pipeline of them) or raises HttpError/OSError/timeout."""
    try:
        return asyncio.run(fetch_async(port, path, pipeline))
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
        raise HttpError("connection closed mid-response (%s)" % e.__class__.__name__)
    except asyncio.TimeoutError:
        raise HttpError("no answer within %.0f s" % IO_TIMEOUT)


async def _burst(port, path, conns, per_conn, deadline_s):
    failures = []

    async def one():
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
        except OSError as e:
            failures.append("connect: %s" % e)
            return
        try:
            for _ in range(per_conn):
                writer.write(request_bytes(path, port))
                await writer.drain()
                r = await read_response(reader)
                if r.status != 200:
                    failures.append("status %d" % r.status)
        except (OSError, HttpError, asyncio.IncompleteReadError, ValueError) as e:
            failures.append("%s: %s" % (e.__class__.__name__, e))
        finally:
            writer.close()

    try:
        await asyncio.wait_for(asyncio.gather(*[one() for _ in range(conns)]), deadline_s)
    except asyncio.TimeoutError:
        failures.append("the burst did not finish within %.0f s" % deadline_s)
    return failures


def burst(port, path, conns, per_conn, deadline_s=60.0):
    """conns keep-alive connections, per_conn requests each; the failures."""
    return asyncio.run(_burst(port, path, conns, per_conn, deadline_s))


# ----------------------------------------------------------------------------
# The database side
# ----------------------------------------------------------------------------


class Db:
    """psql over the unix socket in socket_dir (as benchmarkdbuser)."""

    def __init__(self, socket_dir, user="benchmarkdbuser", dbname="hello_world"):
        self.dir, self.user, self.dbname = socket_dir, user, dbname

    def psql(self, sql, timeout=60):
        r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-h", self.dir,
                            "-U", self.user, "-d", self.dbname, "-c", sql],
                           capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError("psql: %s" % r.stderr.strip()[-300:])
        return r.stdout

    def worlds(self):
        out = {}
        for ln in self.psql("SELECT id, randomNumber FROM World").split():
            i, n = ln.split("|")
            out[int(i)] = int(n)
        return out

    def reset_stats(self):
        self.psql("SELECT pg_stat_statements_reset()")

    def stats(self, table):
        """(select calls, select rows, update calls, update rows) on `table` since
        the reset; the verifier's own reads of pg_stat_statements excluded."""
        row = self.psql(
            "SELECT coalesce(sum(calls) FILTER (WHERE NOT u), 0), "
            "coalesce(sum(rows) FILTER (WHERE NOT u), 0), "
            "coalesce(sum(calls) FILTER (WHERE u), 0), coalesce(sum(rows) FILTER (WHERE u), 0) "
            "FROM (SELECT calls, rows, query ~* '\\mupdate\\M' AS u FROM pg_stat_statements "
            "WHERE query ~* '\\m%s\\M' AND query !~* 'pg_stat_statements') s" % table).strip()
        return tuple(int(x) for x in row.split("|"))


# ----------------------------------------------------------------------------
# Checks
# ----------------------------------------------------------------------------


def check_headers(r, kind, where, problems):
    for h in ("Server", "Date", "Content-Type"):
        if r.header(h) is None:
            problems.append("%s: required header %s missing" % (where, h))
    if r.header("Content-Length") is None and r.header("Transfer-Encoding") is None:
        problems.append("%s: neither Content-Length nor Transfer-Encoding" % where)
    ct = r.header("Content-Type")
    if ct is not None and not re.match(CONTENT_TYPES[kind], ct):
        problems.append("%s: Content-Type %r does not match %s" % (where, ct, CONTENT_TYPES[kind]))
    d = r.header("Date")
    if d is not None:
        try:
            time.strptime(d, "%a, %d %b %Y %H:%M:%S GMT")
        except ValueError:
            problems.append("%s: Date %r is not an HTTP date (e.g. Sun, 06 Nov 1994 08:49:37 "
                            "GMT)" % (where, d))
    if r.status != 200:
        problems.append("%s: status %d, not 200" % (where, r.status))


def parse_json(r, where, problems):
    try:
        return json.loads(r.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        problems.append("%s: not JSON (%s): %r" % (where, e, r.body[:80]))
        return None


def check_world(obj, where, problems, worlds=None):
    """One {"id", "randomNumber"} object; returns (id, randomNumber) or None."""
    if not isinstance(obj, dict):
        problems.append("%s: expected an object, got %r" % (where, str(obj)[:40]))
        return None
    keys = {k.lower(): v for k, v in obj.items()}
    missing = [k for k in ("id", "randomnumber") if k not in keys]
    if missing:
        problems.append("%s: missing key(s) %s in %r" % (where, ", ".join(missing),
                                                          str(obj)[:60]))
        return None
    if len(keys) > 2:
        problems.append("%s: extra key(s) %s" % (where, ", ".join(sorted(set(keys) - {
            "id", "randomnumber"}))))
    i, n = keys["id"], keys["randomnumber"]
    for name, v in (("id", i), ("randomNumber", n)):
        if not isinstance(v, int) or isinstance(v, bool):
            problems.append("%s: %s is %r, not an integer" % (where, name, v))
            return None
        if not 1 <= v <= 10000:
            problems.append("%s: %s %d outside 1..10000" % (where, name, v))
            return None
    if worlds is not None and worlds.get(i) != n:
        problems.append("%s: row %d has randomNumber %s in the table, the answer says %d"
                        % (where, i, worlds.get(i), n))
    return (i, n)


def check_list(r, expected_len, where, problems, worlds=None):
    data = parse_json(r, where, problems)
    if data is None:
        return []
    if not isinstance(data, list):
        problems.append("%s: top level is %s, not an array" % (where, type(data).__name__))
        return []
    if len(data) != expected_len:
        problems.append("%s: %d objects, expected %d" % (where, len(data), expected_len))
    rows, bad = [], 0
    for obj in data:
        n = len(problems)
        row = check_world(obj, where, problems, worlds)
        if row:
            rows.append(row)
        if len(problems) > n:
            bad += 1
            if bad >= 5:
                problems.append("%s: (stopped after 5 bad objects)" % where)
                break
    return rows


class FortuneParser(html.parser.HTMLParser):
    """Tokens of the page: ("tag", "<name>"/"</name>") and ("text", decoded text),
    adjacent text joined, whitespace-only text between tags dropped."""

    IGNORED = {"meta", "link", "thead", "tbody"}

    def __init__(self):
        super().__init__(convert_charrefs=False)
        self.tokens = []
        self.text = []
        self.bad_refs = []

    def flush(self):
        t = "".join(self.text)
        self.text = []
        if t.strip():
            self.tokens.append(("text", t))

    def handle_decl(self, decl):
        self.flush()
        self.tokens.append(("tag", "<!%s>" % decl.lower()))

    def handle_starttag(self, tag, attrs):
        self.flush()
        if tag not in self.IGNORED:
            self.tokens.append(("tag", "<%s>" % tag))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag):
        self.flush()
        if tag not in self.IGNORED:
            self.tokens.append(("tag", "</%s>" % tag))

    def handle_data(self, data):
        self.text.append(data)

    def handle_entityref(self, name):
        v = html.unescape("&%s;" % name)
        if v == "&%s;" % name:
            self.bad_refs.append(name)
        self.text.append(v)

    def handle_charref(self, name):
        try:
            self.text.append(chr(int(name[1:], 16) if name[:1] in "xX" else int(name)))
        except ValueError:
            self.bad_refs.append("#" + name)

    def unknown_decl(self, data):
        self.bad_refs.append(data)


def fortune_tokens(rows):
    t = [("tag", "<!doctype html>"), ("tag", "<html>"), ("tag", "<head>"), ("tag", "<title>"),
         ("text", "Fortunes"), ("tag", "</title>"), ("tag", "</head>"), ("tag", "<body>"),
         ("tag", "<table>"), ("tag", "<tr>"), ("tag", "<th>"), ("text", "id"), ("tag", "</th>"),
         ("tag", "<th>"), ("text", "message"), ("tag", "</th>"), ("tag", "</tr>")]
    for i, m in rows:
        t += [("tag", "<tr>"), ("tag", "<td>"), ("text", str(i)), ("tag", "</td>"),
              ("tag", "<td>"), ("text", m), ("tag", "</td>"), ("tag", "</tr>")]
    return t + [("tag", "</table>"), ("tag", "</body>"), ("tag", "</html>")]


def check_fortunes(r, where, problems):
    try:
        text = r.body.decode("utf-8")
    except UnicodeDecodeError as e:
        problems.append("%s: the page is not valid UTF-8 (%s)" % (where, e))
        return
    p = FortuneParser()
    p.feed(text)
    p.close()
    p.flush()
    if p.bad_refs:
        problems.append("%s: unknown character references %s" % (where, p.bad_refs[:3]))
    want = fortune_tokens(expected_rows())
    got = p.tokens
    if got == want:
        return
    if any(tok == ("tag", "<script>") for tok in got):
        problems.append("%s: a <script> element in the page: row 11 was not escaped" % where)
    for k, (a, b) in enumerate(zip(want, got)):
        if a != b:
            problems.append("%s: token %d is %r, expected %r" % (where, k, b[1][:80], a[1][:80]))
            break
    else:
        problems.append("%s: %d tokens, expected %d" % (where, len(got), len(want)))


# ----------------------------------------------------------------------------
# The tests
# ----------------------------------------------------------------------------


class Verifier:
    def __init__(self, port, db, urls=None, conns=256, per_conn=2, log=None, date_gap=3.0):
        self.port, self.db, self.date_gap = port, db, date_gap
        self.urls = dict(URLS, **(urls or {}))
        self.conns, self.per_conn = conns, per_conn
        self.log = log or (lambda s: None)

    def get(self, test, path, problems, pipeline=1):
        try:
            rs = fetch(self.port, path, pipeline)
        except (OSError, HttpError) as e:
            problems.append("GET %s: %s" % (path, e))
            return None
        for r in rs:
            check_headers(r, KIND[test], "GET %s" % path, problems)
        return rs if pipeline > 1 else rs[0]

    def case_url(self, test, value):
        base = self.urls[test]
        if value is None:
            return base.split("?", 1)[0] if "?" in base else base.rstrip("/")
        return base + value

    def dates(self, tests, results):
        """Two requests to each test 3 s apart: the Date must have changed."""
        first = {}
        for t in tests:
            path = self.case_url(t, "1") if "?" in self.urls[t] else self.urls[t]
            try:
                first[t] = (path, fetch(self.port, path)[0].header("Date"))
            except (OSError, HttpError) as e:
                results[t].append("GET %s: %s" % (path, e))
        time.sleep(self.date_gap)
        for t, (path, d1) in first.items():
            try:
                d2 = fetch(self.port, path)[0].header("Date")
            except (OSError, HttpError) as e:
                results[t].append("GET %s: %s" % (path, e))
                continue
            if d1 is not None and d1 == d2:
                results[t].append("GET %s: Date %r did not change in %.1f s (cached)"
                                  % (path, d1, self.date_gap))

    def count(self, test, path, table):
        """Reset pg_stat_statements, run the burst, return (failures, stats, requests)."""
        self.db.reset_stats()
        fails = burst(self.port, path, self.conns, self.per_conn)
        return fails, self.db.stats(table), self.conns * self.per_conn

    def counted(self, test, path, table, problems, expect):
        fails, (sc, sr, uc, ur), n = self.count(test, path, table)
        self.log("  %s: %d requests -> %s SELECT calls %d rows %d, UPDATE calls %d rows %d"
                 % (test, n, table, sc, sr, uc, ur))
        if fails:
            problems.append("%s x %d: %d failed requests (%s)" % (path, n, len(fails), fails[0]))
            return
        for msg in expect(n, sc, sr, uc, ur):
            problems.append("%s x %d: %s" % (path, n, msg))

    def run(self, tests):
        results = {t: [] for t in tests}
        self.dates(tests, results)
        for t in tests:
            self.log("verifying %s" % t)
            getattr(self, "t_" + t.replace("-", "_"))(results[t])
        return results

    # -- one method per test --------------------------------------------------

    def t_json(self, problems):
        r = self.get("json", self.urls["json"], problems)
        if r is None:
            return
        data = parse_json(r, "GET %s" % self.urls["json"], problems)
        if data is not None and data != {"message": "Hello, World!"}:
            problems.append("GET %s: body %r, expected {\"message\": \"Hello, World!\"}"
                            % (self.urls["json"], r.body[:80]))

    def t_plaintext(self, problems):
        path = self.urls["plaintext"]
        r = self.get("plaintext", path, problems)
        if r is not None and r.body != b"Hello, World!":
            problems.append("GET %s: body %r, expected b'Hello, World!'" % (path, r.body[:80]))
        rs = self.get("plaintext", path, problems, pipeline=16)
        if rs is not None:
            bad = [x for x in rs if x.body != b"Hello, World!"]
            if bad:
                problems.append("GET %s x 16 pipelined: %d bodies were not Hello, World!"
                                % (path, len(bad)))

    def t_db(self, problems):
        path = self.urls["db"]
        worlds = self.db.worlds()
        for _ in range(3):
            r = self.get("db", path, problems)
            if r is None:
                return
            data = parse_json(r, "GET %s" % path, problems)
            if data is None:
                return
            check_world(data, "GET %s" % path, problems, worlds)
            if problems:
                return
        self.counted("db", path, "world", problems, lambda n, sc, sr, uc, ur: (
            ["%d SELECTs on World, expected exactly %d" % (sc, n)] if sc != n else []) + (
            ["%d rows read, expected %d" % (sr, n)] if sr != n else []) + (
            ["%d UPDATEs on World, expected none" % uc] if uc else []))

    def cases(self, test, problems, worlds=None):
        for value, want in CASES:
            path = self.case_url(test, value)
            r = self.get(test, path, problems)
            if r is None:
                continue
            check_list(r, want, "GET %s" % path, problems, worlds)

    def t_queries(self, problems):
        self.cases("queries", problems, self.db.worlds())
        if problems:
            return
        self.counted("queries", self.case_url("queries", "20"), "world", problems,
                     lambda n, sc, sr, uc, ur: (
                         ["%d SELECTs on World, expected exactly %d (one per row)" % (sc, 20 * n)]
                         if sc != 20 * n else []) + (
                         ["%d rows read, expected %d" % (sr, 20 * n)] if sr != 20 * n else []) + (
                         ["%d UPDATEs on World, expected none" % uc] if uc else []))

    def t_cached_queries(self, problems):
        self.cases("cached-queries", problems)
        if problems:
            return
        self.counted("cached-queries", self.case_url("cached-queries", "20"), "world", problems,
                     lambda n, sc, sr, uc, ur: (
                         ["%d queries on World while serving from the cache, expected none"
                          % (sc + uc)] if sc + uc else []))

    def t_fortunes(self, problems):
        path = self.urls["fortunes"]
        for _ in range(2):
            r = self.get("fortunes", path, problems)
            if r is None:
                return
            check_fortunes(r, "GET %s" % path, problems)
            if problems:
                return
        self.counted("fortunes", path, "fortune", problems, lambda n, sc, sr, uc, ur: (
            ["%d SELECTs on Fortune, expected exactly %d" % (sc, n)] if sc != n else []) + (
            ["%d rows read, expected %d (12 per request)" % (sr, 12 * n)]
            if sr != 12 * n else []))

    def t_updates(self, problems):
        self.cases("updates", problems)
        if problems:
            return
        # persisted: what a request answers is what the table holds afterwards
        for value in ("20", "501"):
            before = self.db.worlds()
            path = self.case_url("updates", value)
            r = self.get("updates", path, problems)
            if r is None:
                return
            rows = check_list(r, 500 if value == "501" else 20, "GET %s" % path, problems)
            after = self.db.worlds()
            answered = {}
            for i, n in rows:
                answered.setdefault(i, set()).add(n)
            lost = [i for i, ns in answered.items() if after.get(i) not in ns]
            if lost:
                problems.append("GET %s: %d of %d rows answered are not what the table holds "
                                "afterwards (row %d: table %s, answer %s)"
                                % (path, len(lost), len(answered), lost[0], after.get(lost[0]),
                                   sorted(answered[lost[0]])))
            changed = sum(1 for i in answered if after.get(i) != before.get(i))
            if value == "501" and changed < 0.9 * len(answered):
                problems.append("GET %s: only %d of %d distinct rows changed in the table"
                                % (path, changed, len(answered)))
        if problems:
            return

        def expect(n, sc, sr, uc, ur):
            out = []
            if sc != 20 * n:
                out.append("%d SELECTs on World, expected exactly %d (one per row)" % (sc, 20 * n))
            if sr != 20 * n:
                out.append("%d rows read, expected %d" % (sr, 20 * n))
            if uc == n:  # one batched UPDATE per request: a repeated id is one row
                if not 0.95 * 20 * n <= ur <= 20 * n:
                    out.append("%d rows updated by %d batched UPDATEs, expected %d (5 %% margin "
                               "for repeated ids)" % (ur, uc, 20 * n))
            elif uc == 20 * n:
                if ur != 20 * n:
                    out.append("%d rows updated, expected %d" % (ur, 20 * n))
            else:
                out.append("%d UPDATEs on World, expected %d (one batch per request) or %d "
                           "(one per row)" % (uc, n, 20 * n))
            return out

        self.counted("updates", self.case_url("updates", "20"), "world", problems, expect)


def verify(port, db, tests=None, urls=None, conns=256, per_conn=2, log=None):
    return Verifier(port, db, urls, conns, per_conn, log).run(tests or TESTS)


def report(results, out=sys.stdout):
    ok = True
    for t, problems in results.items():
        if problems:
            ok = False
            print("FAIL %-15s %s" % (t, problems[0]), file=out)
            for p in problems[1:6]:
                print("     %-15s %s" % ("", p), file=out)
            if len(problems) > 6:
                print("     %-15s (%d more)" % ("", len(problems) - 6), file=out)
        else:
            print("PASS %s" % t, file=out)
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pg-socket", required=True,
                    help="directory of the PostgreSQL unix socket the server uses")
    ap.add_argument("--tests", default=",".join(TESTS))
    ap.add_argument("--conns", type=int, default=256, help="connections of the counted burst")
    ap.add_argument("--per-conn", type=int, default=2, help="requests per connection in it")
    ap.add_argument("--json", action="store_true", help="print the problems as JSON")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    tests = [t for t in args.tests.split(",") if t]
    bad = [t for t in tests if t not in TESTS]
    if bad:
        ap.error("unknown test(s) %s; known: %s" % (", ".join(bad), ", ".join(TESTS)))
    log = (lambda s: print(s, file=sys.stderr)) if args.verbose else None
    res = verify(args.port, Db(args.pg_socket), tests, conns=args.conns, per_conn=args.per_conn,
                 log=log)
    if args.json:
        print(json.dumps(res, indent=1))
        return 0 if not any(res.values()) else 1
    return 0 if report(res) else 1


if __name__ == "__main__":
    sys.exit(main())
