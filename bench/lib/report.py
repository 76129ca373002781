#!/usr/bin/env python3
"""report.py -- turn bench records into docs/benchmarks/{results.md,results.csv,*.png}.

harness.py calls write_all() at the end of a run. To redraw the table and the
plots from the last run without measuring again:

    /usr/bin/python3 bench/lib/report.py [build/bench/last-run.json] [out-dir]
"""
import csv
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
LAST = os.path.join(ROOT, "build", "bench", "last-run.json")

FIELDS = ["mode", "workload", "workload_label", "group", "server", "server_label", "connections",
          "pipeline", "duration_s", "requests", "rps", "p50_ms", "p90_ms", "p99_ms", "max_ms",
          "cpu_us_per_req", "server_cpu_pct", "client_cpu_pct", "rss_mib", "errors", "non2xx",
          "ideal", "vs_ideal", "bg_rps", "other_cpu0_pct", "other_cpu1_pct", "pg_cpu_pct",
          "pg_us_per_req", "status", "note"]
TFB_TESTS = ["json", "plaintext", "db", "queries", "fortunes", "cached-queries", "updates"]
# the TechEmpower targets of issue 12: Canteen the least server CPU per request
# and at least each peer's req/s on these
TFB_TARGETS = ["db-256", "queries-20", "fortunes-256", "updates-20"]
TFB_PEERS = ["node", "fastapi", "go"]

COLORS = {"canteen": "#d62728", "node": "#2ca02c", "fastapi": "#9467bd", "go": "#17becf",
          "h2o": "#7f7f7f"}
DASH = "—"


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------


def num(v):
    if v in ("", None):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def fmt_rps(v):
    v = num(v)
    return DASH if v is None else "{:,.0f}".format(v)


def fmt_ms(v):
    v = num(v)
    if v is None:
        return DASH
    if v >= 100:
        return "{:,.0f}".format(v)
    if v >= 10:
        return "%.1f" % v
    return "%.2f" % v


def fmt_plain(v, nd=1):
    v = num(v)
    return DASH if v is None else ("%.*f" % (nd, v))


def ratio(a, b):
    a, b = num(a), num(b)
    if a is None or b is None or b == 0:
        return DASH
    r = a / b
    return "%.2f×" % r if r < 10 else "%.1f×" % r


def by_key(records):
    return {(r["workload"], r["server"]): r for r in records}


def workloads_in(records, env=None):
    seen, out = set(), []
    for r in records:
        if r["workload"] not in seen:
            seen.add(r["workload"])
            out.append((r["workload"], r["workload_label"], r["group"]))
    order = (env or {}).get("order") or []
    rank = {w: i for i, w in enumerate(order)}
    return sorted(out, key=lambda w: rank.get(w[0], len(rank)))


def servers_in(records, env):
    return env.get("servers") or list(dict.fromkeys(r["server"] for r in records))


def ok(r):
    return r is not None and r["status"] == "ok"


# ----------------------------------------------------------------------------
# CSV and markdown
# ----------------------------------------------------------------------------


def write_csv(records, path):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in records:
            w.writerow(r)


def headline(r, wid):
    if r is None:
        return DASH
    if r["status"] != "ok":
        return DASH
    if wid == "scenario":
        return "%s ms wall" % fmt_ms(r["p50_ms"])
    if num(r["p99_ms"]) is None:
        return fmt_rps(r["rps"])
    return "%s (%s ms)" % (fmt_rps(r["rps"]), fmt_ms(r["p99_ms"]))


def targets(records):
    """Rows (target, measured, verdict) for the issues' figures that this run measured."""
    k = by_key(records)
    rows = []

    def get(w, s):
        r = k.get((w, s))
        return r if ok(r) else None

    fast = [w for w in ("plaintext-64", "plaintext-256", "json-64", "json-256") if (w, "canteen") in k]
    for w in fast:
        c, h = get(w, "canteen"), get(w, "h2o")
        if c and h and num(c["cpu_us_per_req"]) and num(h["cpu_us_per_req"]):
            cc, hh = num(c["cpu_us_per_req"]), num(h["cpu_us_per_req"])
            rows.append(("%s: server CPU per request ≤ h2o's" % w,
                         "%.2f µs vs %.2f µs" % (cc, hh),
                         verdict(cc <= hh, "%+.0f%%" % (100 * (cc / hh - 1)))))
    for w in fast:
        c, h = get(w, "canteen"), get(w, "h2o")
        if c and h:
            cc, hh = num(c["p99_ms"]), num(h["p99_ms"])
            rows.append(("%s: p99 no worse than h2o's" % w, "%s ms vs %s ms" % (fmt_ms(cc), fmt_ms(hh)),
                         verdict(cc <= hh, "%+.0f%%" % (100 * (cc / hh - 1)) if hh else "")))
    for w in fast:
        c = get(w, "canteen")
        for peer, factor in (("node", 2.5), ("fastapi", 10.0)):
            p = get(w, peer)
            if c and p:
                rr = num(c["rps"]) / num(p["rps"])
                rows.append(("%s: req/s ≥ %.1f× %s's" % (w, factor, "Node" if peer == "node" else "FastAPI"),
                             "%.2f× (%s vs %s)" % (rr, fmt_rps(c["rps"]), fmt_rps(p["rps"])),
                             verdict(rr >= factor, "%.0f%% of the target" % (100 * rr / factor))))
    c, h = get("pipeline-16", "canteen"), get("pipeline-16", "h2o")
    if c and h:
        rr = num(c["rps"]) / num(h["rps"])
        rows.append(("pipeline-16: req/s above h2o's", "%s vs %s (%.2f×)" % (fmt_rps(c["rps"]), fmt_rps(h["rps"]), rr),
                     verdict(rr > 1, "%+.0f%%" % (100 * (rr - 1)))))
    c = get("sleep-1k", "canteen")
    if c:
        v = num(c["rps"])
        rows.append(("sleep-1k: within 5% of 10,000 req/s", "%s req/s (%.1f%% of ideal)" % (fmt_rps(v), v / 100),
                     verdict(v >= 9500, "%.1f%% short" % (100 - v / 100))))
    c = get("sleep-under-cpu", "canteen")
    if c:
        v, p = num(c["rps"]), num(c["p99_ms"])
        rows.append(("sleep-under-cpu: ≥ 2,530 req/s", "%s req/s" % fmt_rps(v),
                     verdict(v >= 2530, "%.0f req/s short" % (2530 - v))))
        rows.append(("sleep-under-cpu: p99 ≤ 105 ms", "%s ms" % fmt_ms(p),
                     verdict(p <= 105, "%.1f ms over" % (p - 105))))
    c = get("scenario", "canteen")
    if c:
        v = num(c["p50_ms"])
        rows.append(("scenario: total near 1,000 ms, not 1,201", "%s ms wall" % fmt_ms(v),
                     verdict(v < 1100, "%.0f ms over" % (v - 1000))))
    rows += tfb_targets(records, k)
    return rows


def tfb_targets(records, k, env=None):
    rows = []
    env = env or ENV.get("env") or {}
    ver = env.get("verified") or {}
    if "canteen" in ver:
        bad = [t for t in TFB_TESTS if ver["canteen"].get(t, "not run")]
        rows.append(("TechEmpower: passes the verifier on all seven tests",
                     "all seven pass" if not bad else "fails %s" % ", ".join(bad),
                     verdict(not bad, "%d of 7 fail" % len(bad))))
    elif any(r["group"] == "tfb" and r["server"] == "canteen" for r in records):
        c = next(r for r in records if r["group"] == "tfb" and r["server"] == "canteen")
        rows.append(("TechEmpower: passes the verifier on all seven tests",
                     "not verified: %s" % c["note"], "missed (not run)"))
    for w in TFB_TARGETS:
        c = k.get((w, "canteen"))
        if c is not None and not ok(c):
            rows.append(("%s: least server CPU per request, req/s at least each peer's" % w,
                         "not measured: %s" % c["note"].replace("|", "/")[:160],
                         "missed (not measured)"))
        if not ok(c):
            continue
        peers = [(p, k.get((w, p))) for p in TFB_PEERS if ok(k.get((w, p)))]
        if not peers:
            continue
        cc = num(c["cpu_us_per_req"])
        pcs = [(p, num(r["cpu_us_per_req"])) for p, r in peers if num(r["cpu_us_per_req"])]
        if cc is not None and pcs:
            best_p, best = min(pcs, key=lambda x: x[1])
            rows.append(("%s: least server CPU per request of the four" % w,
                         "%.1f µs; least peer: %s %.1f µs" % (cc, best_p, best),
                         verdict(cc <= best, "%+.0f%% vs %s" % (100 * (cc / best - 1), best_p))))
        best_p, best_r = max(((p, r) for p, r in peers), key=lambda x: num(x[1]["rps"]))
        rr = num(c["rps"]) / num(best_r["rps"])
        rows.append(("%s: req/s at least each peer's" % w,
                     "%s vs %s %s (%.2f×)" % (fmt_rps(c["rps"]), best_p, fmt_rps(best_r["rps"]), rr),
                     verdict(rr >= 1, "%.0f%% of %s's" % (100 * rr, best_p))))
    c = k.get(("db-256", "canteen"))
    bench = [b for b in env.get("pgbench") or [] if num(b.get("tps"))]
    if ok(c) and bench:
        top = max(bench, key=lambda b: num(b["tps"]))
        rr = num(c["rps"]) / num(top["tps"])
        v = verdict(rr >= 0.8, "%.0f%% of pgbench's" % (100 * rr))
        if "noisy" in (top.get("note") or "") or "noisy:" in (c.get("note") or ""):
            v += " (a noisy run on either side: not a fair ceiling)"
        rows.append(("db-256: req/s ≥ 80% of pgbench's on the same database and core",
                     "%s vs pgbench -c %s %s (%.0f%%)" % (fmt_rps(c["rps"]), top["clients"],
                                                          fmt_rps(top["tps"]), 100 * rr), v))
    return rows


ENV = {}


def verdict(good, gap):
    return "met" if good else "missed (%s)" % gap


def write_md(records, env, path, plots):
    servers = servers_in(records, env)
    labels = env.get("labels", {})
    k = by_key(records)
    wls = workloads_in(records, env)
    L = []
    L.append("# Benchmark results")
    L.append("")
    quick = env.get("mode") == "quick"
    L.append("Generated by `bench/run%s` on %s; do not edit by hand (method and discussion: "
             "[../benchmarks.md](../benchmarks.md)). Each server is pinned to CPU 0 and wrk "
             "(one thread) to CPU 1. Runs are measured for %s s%s, each after a warm-up run "
             "of %s s of the same workload (%s)." % (
                 " --quick" if quick else "", env.get("date", "?"), env.get("duration_s", "?"),
                 "" if quick else " (the /cpu-saturation run: 20 s; the blocking-in-async run: 10 s)", env.get("warmup_s", "?"),
                 "quick mode warms up only the plaintext/json and /sleep workloads; the "
                 "blocking-in-async run never has one" if quick else
                 "except the blocking-in-async run, which comes last and has none"))
    L.append("")
    L.append("Machine: %s, %s cores, %s, Linux %s (%s). The whole run took %s s." % (
        env.get("cpu"), env.get("cores"), env.get("memory"), env.get("kernel"), env.get("os"),
        env.get("elapsed_s", "?")))
    L.append("")
    measured = [x for x in records if x["status"] == "ok"]
    noisy = [x for x in measured if "noisy:" in (x.get("note") or "")]
    if noisy:
        L.append("**Caution:** in %d of the %d measured runs another process kept the server's "
                 "core, or the client's core while wrk needed all of it, at least 10 %% busy "
                 "(marked *noisy* in the notes, with how much); "
                 "the harness waited %s s in all for quiet cores before runs. Figures of noisy "
                 "runs understate the server and the client alike." % (
                     len(noisy), len(measured), env.get("quiet_waited_s", 0)))
        L.append("")
    L.append("## Summary: req/s (p99)")
    L.append("")
    L.append("| workload | " + " | ".join(labels.get(s, s) for s in servers) + " |")
    L.append("| --- |" + " ---: |" * len(servers))
    for wid, label, _ in wls:
        L.append("| %s | " % label + " | ".join(headline(k.get((wid, s)), wid) for s in servers) + " |")
    L.append("")
    L.append("A dash is a workload the server cannot run or a route that is not there yet; the "
             "reason is in the detail tables below.")
    L.append("")
    rows = targets(records)
    if rows:
        L.append("## Targets from the issues")
        L.append("")
        L.append("| target (Canteen) | measured | verdict |")
        L.append("| --- | --- | --- |")
        for t, m, v in rows:
            L.append("| %s | %s | %s |" % (t, m, v))
        L.append("")
    L += tfb_section(records, env, servers, labels)
    L.append("## Details")
    L.append("")
    L.append("CPU/req is the server's user + system CPU time over the run divided by the "
             "requests answered (from /proc/PID/stat, all threads). srv CPU and wrk CPU are "
             "the share of one core used by the server and by the load generator: when "
             "wrk's is near 100 %, the client is the limit. Ratios are Canteen's figure "
             "divided by the peer's: above 1× is better for req/s, below 1× is better for "
             "p99 and CPU/req.")
    L.append("")
    for wid, label, group in wls:
        L.append("### %s" % label)
        L.append("")
        c = k.get((wid, "canteen"))
        if wid == "scenario":
            L.append("| server | wall p50 ms | wall max ms | requests | vs ideal (1,000 ms) "
                     "| Canteen/peer wall | note |")
            L.append("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
            for s in servers:
                r = k.get((wid, s))
                if r is None:
                    continue
                okr = ok(r)
                L.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                    labels.get(s, s), fmt_ms(r["p50_ms"]) if okr else DASH,
                    fmt_ms(r["max_ms"]) if okr else DASH, r["requests"] if okr else DASH,
                    ("%.3f" % num(r["vs_ideal"])) if okr and num(r["vs_ideal"]) else DASH,
                    ratio(c["p50_ms"], r["p50_ms"]) if ok(c) and okr and s != "canteen" else DASH,
                    note_cell(r)))
            L.append("")
            continue
        if any(int(num(x["pipeline"]) or 1) > 1 for x in records if x["workload"] == wid):
            L.append("No latency under pipelining: wrk times a batch of 16, not a request, "
                     "and its coordinated-omission correction then miscounts (p99 comes out "
                     "as 0). Throughput and CPU per request are the figures here.")
            L.append("")
        cols = ["server", "req/s", "p50 ms", "p99 ms", "CPU/req µs", "srv CPU", "wrk CPU"]
        has_pg = group == "tfb"
        if has_pg:
            cols += ["PG µs/req", "PG CPU"]
        has_rss = any(num(r["rss_mib"]) is not None for r in records if r["workload"] == wid)
        has_ideal = any(num(r["ideal"]) is not None for r in records if r["workload"] == wid)
        has_bg = any(num(r["bg_rps"]) is not None for r in records if r["workload"] == wid)
        if has_rss:
            cols.append("RSS MiB")
        if has_ideal:
            cols.append("vs ideal")
        if has_bg:
            cols.append("/cpu req/s")
        cols += ["errors", "C/peer req/s", "C/peer p99", "C/peer CPU/req", "note"]
        L.append("| " + " | ".join(cols) + " |")
        L.append("| --- |" + " ---: |" * (len(cols) - 2) + " --- |")
        for s in servers:
            r = k.get((wid, s))
            if r is None:
                continue
            okr = ok(r)
            cells = [labels.get(s, s)]
            if okr:
                cells += [fmt_rps(r["rps"]), fmt_ms(r["p50_ms"]), fmt_ms(r["p99_ms"]),
                          fmt_plain(r["cpu_us_per_req"], 2), pct(r["server_cpu_pct"]),
                          pct(r["client_cpu_pct"])]
                if has_pg:
                    cells += [fmt_plain(r.get("pg_us_per_req"), 2), pct(r.get("pg_cpu_pct"))]
                if has_rss:
                    cells.append(fmt_plain(r["rss_mib"]))
                if has_ideal:
                    cells.append(("%.1f%%" % (100 * num(r["vs_ideal"])))
                                 if num(r["vs_ideal"]) is not None else DASH)
                if has_bg:
                    cells.append(fmt_rps(r["bg_rps"]))
                err = int(num(r["errors"]) or 0) + int(num(r["non2xx"]) or 0)
                cells.append(str(err) if err else "0")
            else:
                cells += [DASH] * (6 + 2 * has_pg + has_rss + has_ideal + has_bg + 1)
            peer_ok = okr and ok(c) and s != "canteen"
            cells += [ratio(c["rps"], r["rps"]) if peer_ok else DASH,
                      ratio(c["p99_ms"], r["p99_ms"]) if peer_ok else DASH,
                      ratio(c["cpu_us_per_req"], r["cpu_us_per_req"]) if peer_ok else DASH,
                      note_cell(r)]
            L.append("| " + " | ".join(cells) + " |")
        L.append("")
    L.append("## Versions")
    L.append("")
    for key, name in (("canteen", "Canteen"), ("node", "Node.js"), ("fastapi", "FastAPI stack"),
                      ("go", "Go"), ("h2o", "h2o"), ("wrk", "wrk"), ("curl", "curl"),
                      ("postgresql", "PostgreSQL"), ("db_drivers", "database drivers")):
        if key not in env:
            continue
        L.append("- %s: %s" % (name, env.get(key, "?")))
    L.append("- open files limit (ulimit -n): %s; net.core.somaxconn: %s" % (
        env.get("nofile", "?"), env.get("somaxconn", "?")))
    L.append("")
    if plots:
        L.append("## Plots")
        L.append("")
        for p, title in plots:
            L.append("![%s](%s)" % (title, p))
            L.append("")
    with open(path, "w") as f:
        f.write("\n".join(L))


def tfb_section(records, env, servers, labels):
    """The database workloads: how they ran, the verifier's verdicts, pgbench."""
    if not any(r["group"] == "tfb" for r in records):
        return []
    L = ["## The TechEmpower database tests", ""]
    L.append("PostgreSQL %s (a throwaway server from bench/tfb/pgdb.py, unix socket, fsync "
             "off) pinned to CPU %s; every server has a pool of %s connections. CPU/req is "
             "the server's own CPU per request, PG µs/req the database's (postmaster and "
             "backends) per request. Each database instance passed bench/tfb/verify.py "
             "before it was measured; a workload whose test failed is reported as failed, "
             "not measured." % (
                 env.get("postgresql") or "?", env.get("pg_core", "?"),
                 env.get("pool_size", "?")))
    L.append("")
    ver = env.get("verified") or {}
    drivers = env.get("tfb_drivers") or {}
    if ver:
        L.append("| server | driver | " + " | ".join(TFB_TESTS) + " |")
        L.append("| --- | --- |" + " :---: |" * len(TFB_TESTS))
        for s in servers:
            if s not in ver:
                continue
            L.append("| %s | %s | " % (labels.get(s, s), drivers.get(s, "")) + " | ".join(
                "pass" if not ver[s].get(t, "not run") else "**fail**" for t in TFB_TESTS) + " |")
        L.append("")
        for s in servers:
            for t in TFB_TESTS:
                why = (ver.get(s) or {}).get(t)
                if why:
                    L.append("- %s, %s: %s" % (labels.get(s, s), t, why.replace("|", "/")))
        L.append("")
    bench = env.get("pgbench") or []
    if bench:
        L.append("The database's own ceiling: pgbench (`-M prepared -j 1`, pinned to CPU %s) "
                 "running the db test's query, `SELECT id, randomNumber FROM World WHERE "
                 "id = $1` with a random id, against the same server on CPU %s:" % (
                     bench[0].get("client_core", "?"), bench[0].get("core", "?")))
        L.append("")
        L.append("| pgbench clients | queries/s | PG CPU | PG µs/query | note |")
        L.append("| ---: | ---: | ---: | ---: | --- |")
        for b in bench:
            L.append("| %s | %s | %s | %s | %s |" % (b["clients"], fmt_rps(b["tps"]),
                                                     pct(b["pg_cpu_pct"]),
                                                     fmt_plain(b["pg_us_per_query"], 2),
                                                     b.get("note", "")))
        L.append("")
    return L


def pct(v):
    v = num(v)
    return DASH if v is None else "%.0f%%" % v


def note_cell(r):
    n = r.get("note") or ""
    if r["status"] == "skip":
        n = "not run: " + n
    elif r["status"] == "fail":
        n = "failed: " + n
    return n.replace("|", "/")


# ----------------------------------------------------------------------------
# plots
# ----------------------------------------------------------------------------


def plots(records, env, out):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report: matplotlib missing (python3-matplotlib): no plots", file=sys.stderr)
        return []
    servers = servers_in(records, env)
    labels = env.get("labels", {})
    k = by_key(records)
    wls = workloads_in(records, env)
    made = []

    def grid(metric, fname, title, unit, include):
        items = [w for w in wls if include(w)]
        if not items:
            return
        ncol = min(4, len(items))
        nrow = (len(items) + ncol - 1) // ncol
        fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.3 * nrow), squeeze=False)
        for i, (wid, label, _) in enumerate(items):
            ax = axes[i // ncol][i % ncol]
            m = "p50_ms" if (wid == "scenario") else metric
            vals = []
            for s in servers:
                r = k.get((wid, s))
                vals.append(num(r[m]) if ok(r) else None)
            xs = range(len(servers))
            ax.bar(xs, [v or 0 for v in vals], color=[COLORS.get(s, "#333") for s in servers])
            top = max([v for v in vals if v] or [1])
            for x, v in zip(xs, vals):
                txt = "n/a" if v is None else (fmt_rps(v) if m == "rps" else fmt_ms(v))
                ax.text(x, (v or 0) + top * 0.02, txt, ha="center", va="bottom", fontsize=7,
                        color="#555" if v is None else "black")
            ideal = None
            r0 = next((k.get((wid, s)) for s in servers if k.get((wid, s))), None)
            if r0 is not None and num(r0["ideal"]) is not None and (m == "rps" or wid == "scenario"):
                ideal = num(r0["ideal"])
                ax.axhline(ideal, color="black", ls="--", lw=0.8)
                ax.text(len(servers) - 0.5, ideal, " ideal", fontsize=7, va="bottom", ha="right")
            ax.set_ylim(0, max(top, ideal or 0) * 1.18)
            ax.set_xticks(list(xs))
            ax.set_xticklabels([labels.get(s, s).split()[0].split("/")[0] for s in servers],
                               fontsize=8)
            ax.set_title(short(label), fontsize=8)
            ax.tick_params(axis="y", labelsize=7)
            ax.set_ylabel("wall ms" if wid == "scenario" else unit, fontsize=8)
        for j in range(len(items), nrow * ncol):
            axes[j // ncol][j % ncol].axis("off")
        fig.suptitle(title + " (server on CPU 0, wrk on CPU 1; n/a: not run)", fontsize=10)
        fig.tight_layout(rect=(0, 0, 1, 0.96))
        fig.savefig(os.path.join(out, fname), dpi=110)
        plt.close(fig)
        made.append((fname, title))

    grid("rps", "throughput.png", "Throughput per workload, req/s (higher is better)", "req/s",
         lambda w: w[0] != "scenario")
    grid("p99_ms", "p99.png", "p99 latency per workload, ms (lower is better)", "p99 ms",
         lambda w: w[0] != "pipeline-16")
    grid("cpu_us_per_req", "cpu_per_request.png",
         "Server CPU time per request, µs (lower is better)", "µs/request",
         lambda w: w[2] == "fast")

    tfb = [w for w in wls if w[2] == "tfb"]
    # the servers with a database side (h2o has none here)
    tservers = [s for s in servers if any((k.get((w[0], s)) or {}).get("status") != "skip"
                                          for w in tfb)] or servers
    if tfb:
        ncol = min(3, len(tfb))
        nrow = (len(tfb) + ncol - 1) // ncol
        fig, axes = plt.subplots(nrow, ncol, figsize=(4.4 * ncol, 3.3 * nrow), squeeze=False)
        for i, (wid, label, _) in enumerate(tfb):
            ax = axes[i // ncol][i % ncol]
            srv = [num(k[(wid, s)]["cpu_us_per_req"]) if ok(k.get((wid, s))) else None
                   for s in tservers]
            pgv = [num(k[(wid, s)].get("pg_us_per_req")) if ok(k.get((wid, s))) else None
                   for s in tservers]
            xs = range(len(tservers))
            ax.bar(xs, [v or 0 for v in srv], color=[COLORS.get(s, "#333") for s in tservers],
                   label="server")
            ax.bar(xs, [v or 0 for v in pgv], bottom=[v or 0 for v in srv], color="#bbbbbb",
                   label="PostgreSQL")
            top = max([(a or 0) + (b or 0) for a, b in zip(srv, pgv)] or [1]) or 1
            for x, a, b in zip(xs, srv, pgv):
                txt = "n/a" if a is None else "%s+%s" % (fmt_ms(a), fmt_ms(b) if b else "~0")
                ax.text(x, (a or 0) + (b or 0) + top * 0.02, txt, ha="center", va="bottom",
                        fontsize=6.5)
            ax.set_ylim(0, top * 1.2)
            ax.set_xticks(list(xs))
            ax.set_xticklabels([labels.get(s, s).split()[0].split("/")[0] for s in tservers],
                               fontsize=8)
            ax.set_title(short(label.replace("TFB ", "")), fontsize=8)
            ax.tick_params(axis="y", labelsize=7)
            ax.set_ylabel("µs/request", fontsize=8)
            if i == 0:
                ax.legend(fontsize=7, loc="upper left")
        for j in range(len(tfb), nrow * ncol):
            axes[j // ncol][j % ncol].axis("off")
        fig.suptitle("TechEmpower database tests: CPU per request, server (colour) + "
                     "PostgreSQL (grey), µs (lower is better)", fontsize=10)
        fig.tight_layout(rect=(0, 0, 1, 0.95))
        fig.savefig(os.path.join(out, "tfb_cpu_per_request.png"), dpi=110)
        plt.close(fig)
        made.append(("tfb_cpu_per_request.png", "TechEmpower tests: CPU per request"))

    # The async guide's lesson: the same 100 ms wait three ways.
    lesson = [("lesson-async", "async (await sleep)", "#2ca02c"),
              ("lesson-sync", "sync (def route on the pool)", "#ff7f0e"),
              ("lesson-blocked", "blocking call in async", "#d62728")]
    if any((w, s) in k for w, _, _ in lesson for s in servers):
        srv = [s for s in servers if any(ok(k.get((w, s))) for w, _, _ in lesson)] or servers
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
        width = 0.27
        for ai, (m, ylabel) in enumerate((("rps", "req/s (log scale)"),
                                          ("p99_ms", "p99 ms (log scale)"))):
            ax = axes[ai]
            allv = []
            for li, (wid, name, color) in enumerate(lesson):
                xs = [i + (li - 1) * width for i in range(len(srv))]
                vals = [num(k[(wid, s)][m]) if ok(k.get((wid, s))) else None for s in srv]
                vals = [v if v else None for v in vals]  # 0 cannot sit on a log scale
                allv += [v for v in vals if v]
                ax.bar(xs, [v or 0 for v in vals], width, label=name, color=color)
                for x, v in zip(xs, vals):
                    if v is None:
                        ax.text(x, 1.3, "n/a", ha="center", va="bottom", fontsize=7,
                                rotation=90, color=color)
                    else:
                        txt = fmt_rps(v) if m == "rps" else fmt_ms(v)
                        ax.text(x, v * 1.08, txt, ha="center", va="bottom", fontsize=7)
            ax.set_yscale("log")
            ax.set_ylim(1, max(allv + [640]) * 4)
            ax.set_xticks(range(len(srv)))
            ax.set_xticklabels([labels.get(s, s) for s in srv], fontsize=8)
            ax.set_ylabel(ylabel, fontsize=9)
            if m == "rps":
                ax.axhline(640, color="black", ls="--", lw=0.8)
                ax.set_title("Throughput, 64 connections (dashed: the ideal, 640 req/s)",
                             fontsize=9)
            else:
                ax.axhline(100, color="black", ls="--", lw=0.8)
                ax.set_title("p99 latency (dashed: the 100 ms wait itself)", fontsize=9)
        handles, names = axes[0].get_legend_handles_labels()
        fig.legend(handles, names, loc="lower center", ncol=3, fontsize=8, frameon=False)
        fig.suptitle("The same 100 ms wait: awaited, in a sync route, and blocking the loop "
                     "(n/a: the server has no such route)", fontsize=10)
        fig.tight_layout(rect=(0, 0.06, 1, 0.95))
        fig.savefig(os.path.join(out, "async_sync_blocked.png"), dpi=110)
        plt.close(fig)
        made.append(("async_sync_blocked.png", "async vs sync vs blocked"))
    return made


def short(label):
    return label if len(label) <= 48 else label[:46] + "…"


def write_all(records, env, out):
    ENV["env"] = env
    os.makedirs(out, exist_ok=True)
    os.makedirs(os.path.dirname(LAST), exist_ok=True)
    with open(LAST, "w") as f:
        json.dump({"env": env, "records": records}, f, indent=1)
    write_csv(records, os.path.join(out, "results.csv"))
    made = plots(records, env, out)
    write_md(records, env, os.path.join(out, "results.md"), made)


if __name__ == "__main__":
    src = sys.argv[1] if len(sys.argv) > 1 else LAST
    dst = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "docs", "benchmarks")
    with open(src) as f:
        data = json.load(f)
    os.makedirs(dst, exist_ok=True)
    ENV["env"] = data["env"]
    write_csv(data["records"], os.path.join(dst, "results.csv"))
    made = plots(data["records"], data["env"], dst)
    write_md(data["records"], data["env"], os.path.join(dst, "results.md"), made)
    print("report: wrote %s" % dst)
