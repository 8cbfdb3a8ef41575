#!/usr/bin/env python3
"""Parsing and aggregation for scripts/bench.sh.

bench.sh does the process work (start, pin, sample /proc, run wrk); this file turns what it
collected into numbers and tables, because that is clearer in Python than in bash.

    bench_report.py row --scenario ID --target NAME --round N --wrk FILE
                        [--cpu-ticks N --sys-ticks N --clk-tck HZ] [--rss-kb N] [--note TEXT]
        Parses one `wrk --latency` output and prints one TSV result row on stdout and a
        progress line on stderr.

    bench_report.py table --results FILE --scenarios FILE [--only ID | --summary-only]
        Prints, per scenario, the median of every metric per target over the rounds, and the
        ratios of the subject (rr-proxy, or rr-echo in the echo comparison) to its peers; then,
        unless --only is given, one summary line of ratios per scenario.

    bench_report.py body --bytes N --out FILE
        Writes a JSON document of exactly N bytes, for the POST scenarios.

Results file columns (TSV, no header): scenario, target, round, req/s, requests, p50 µs,
p99 µs, errors, CPU µs per request, peak RSS KiB, note, kernel CPU µs per request. A metric
that was not measured is "-".

The kernel's part of the CPU time (system time: syscalls, and on loopback the TCP receive work
each write does for its peer) is printed beside the total because it is the floor a proxy's
code cannot go below by itself: the subject's kernel time ÷ the best peer's total CPU is the
best CPU ratio it could reach with no user-space time at all.
Scenarios file columns: id, title, subject, comma-separated peers, direct target ("-" if none).
"""

import argparse
import json
import re
import statistics
import sys

# wrk prints sizes in binary units.
BYTE_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}

TIME_UNITS_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}

# Scale suffixes wrk uses for large counts, e.g. "1.23k" requests per second in summaries.
COUNT_SUFFIX = {"": 1, "k": 1e3, "M": 1e6, "G": 1e9}


def parse_wrk(text):
    """Returns a dict of the numbers in one `wrk --latency` output, or None if wrk ran nothing."""
    out = {"requests": None, "rps": None, "p50": None, "p99": None, "errors": 0, "read": None}
    m = re.search(r"^\s*(\d+) requests in [^,]+, ([\d.]+)([KMGT]?B) read", text, re.M)
    if m:
        out["requests"] = int(m.group(1))
        out["read"] = float(m.group(2)) * BYTE_UNITS[m.group(3)]
    m = re.search(r"^Requests/sec:\s*([\d.]+)([kMG]?)", text, re.M)
    if m:
        out["rps"] = float(m.group(1)) * COUNT_SUFFIX[m.group(2)]
    for pct, key in (("50", "p50"), ("99", "p99")):
        m = re.search(r"^\s*%s(?:\.0+)?%%\s+([\d.]+)(us|ms|s|m|h)\s*$" % pct, text, re.M)
        if m:
            out[key] = float(m.group(1)) * TIME_UNITS_US[m.group(2)]
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    if m:
        out["errors"] += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        out["errors"] += sum(int(g) for g in m.groups())
    if out["requests"] is None or out["rps"] is None:
        return None
    return out


def fmt_num(v, spec):
    return "-" if v is None else format(v, spec)


def cmd_row(a):
    with open(a.wrk, encoding="utf-8", errors="replace") as f:
        text = f.read()
    w = parse_wrk(text)
    note = a.note or ""
    cpu = sys_cpu = None
    if w is None:
        w = {"requests": 0, "rps": 0.0, "p50": None, "p99": None, "errors": 0, "read": None}
        note = (note + " wrk produced no result").strip()
    if a.cpu_ticks is not None and a.clk_tck and w["requests"]:
        cpu = a.cpu_ticks / a.clk_tck * 1e6 / w["requests"]
        if a.sys_ticks is not None:
            sys_cpu = a.sys_ticks / a.clk_tck * 1e6 / w["requests"]
    row = [
        a.scenario,
        a.target,
        str(a.round),
        f"{w['rps']:.1f}",
        str(w["requests"]),
        fmt_num(w["p50"], ".1f"),
        fmt_num(w["p99"], ".1f"),
        str(w["errors"]),
        fmt_num(cpu, ".3f"),
        "-" if a.rss_kb is None else str(a.rss_kb),
        note or "-",
        fmt_num(sys_cpu, ".3f"),
    ]
    print("\t".join(row))
    sys.stderr.write(
        f"    ({a.scenario}) round {a.round} {a.target:<10} {w['rps']:>11,.0f} req/s"
        f"  p50 {fmt_lat(w['p50']):>8}  p99 {fmt_lat(w['p99']):>8}  errors {w['errors']}"
        f"  cpu {fmt_num(cpu, '.2f')} µs/req"
        # Bytes read per response (headers included): a quick check that bodies came back whole.
        f"  {fmt_num(w['read'] / w['requests'] / 1024 if w['read'] and w['requests'] else None, '.1f')}"
        " KiB/resp"
        + (f"  [{note}]" if note else "")
        + "\n"
    )


def fmt_lat(us):
    if us is None:
        return "-"
    if us < 1000:
        return f"{us:.0f}us"
    if us < 1e6:
        return f"{us / 1e3:.2f}ms"
    return f"{us / 1e6:.2f}s"


def fmt_share(a):
    """The kernel's share of a target's CPU time, as a percentage."""
    if a["cpu"] is None or a["sys"] is None or a["cpu"] == 0:
        return "-"
    return f"{100 * a['sys'] / a['cpu']:.0f}%"


def fmt_rss(kb):
    return "-" if kb is None else f"{kb / 1024:.1f} MiB"


def num(s, kind=float):
    return None if s == "-" else kind(s)


def median(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def load(results_path, scenarios_path):
    scenarios = []
    with open(scenarios_path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            sid, title, subject, peers, direct = line.rstrip("\n").split("\t")
            scenarios.append(
                {
                    "id": sid,
                    "title": title,
                    "subject": subject,
                    "peers": [p for p in peers.split(",") if p],
                    "direct": None if direct == "-" else direct,
                }
            )
    rows = []
    with open(results_path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            c = line.rstrip("\n").split("\t")
            rows.append(
                {
                    "scenario": c[0],
                    "target": c[1],
                    "round": int(c[2]),
                    "rps": float(c[3]),
                    "requests": int(c[4]),
                    "p50": num(c[5]),
                    "p99": num(c[6]),
                    "errors": int(c[7]),
                    "cpu": num(c[8]),
                    "rss": num(c[9], int),
                    "note": "" if c[10] == "-" else c[10],
                    # Results written before the column existed have 11.
                    "sys": num(c[11]) if len(c) > 11 else None,
                }
            )
    return scenarios, rows


def aggregate(rows):
    """Medians per target, in order of first appearance; errors are summed over the rounds."""
    by_target = {}
    for r in rows:
        by_target.setdefault(r["target"], []).append(r)
    agg = {}
    for target, rs in by_target.items():
        agg[target] = {
            "rounds": len(rs),
            "rps": median([r["rps"] for r in rs]),
            "p50": median([r["p50"] for r in rs]),
            "p99": median([r["p99"] for r in rs]),
            "errors": sum(r["errors"] for r in rs),
            "cpu": median([r["cpu"] for r in rs]),
            "sys": median([r["sys"] for r in rs]),
            "rss": median([r["rss"] for r in rs]),
            "notes": sorted({r["note"] for r in rs if r["note"]}),
        }
    return agg


def ratios(sc, agg):
    """The three headline ratios of one scenario, each None when a side is missing."""
    subj = agg.get(sc["subject"])
    peers = [(p, agg[p]) for p in sc["peers"] if p in agg]
    cpu_peers = [(p, a["cpu"]) for p, a in peers if a["cpu"]]
    rps_peers = [(p, a["rps"]) for p, a in peers if a["rps"]]
    best_cpu = min(cpu_peers, key=lambda x: x[1]) if cpu_peers else None
    best_rps = max(rps_peers, key=lambda x: x[1]) if rps_peers else None
    direct = agg.get(sc["direct"]) if sc["direct"] else None
    out = {"best_cpu": best_cpu, "best_rps": best_rps, "cpu": None, "sys": None, "rps": None,
           "direct": None}
    if subj and subj["cpu"] and best_cpu:
        out["cpu"] = subj["cpu"] / best_cpu[1]
    if subj and subj["sys"] and best_cpu:
        out["sys"] = subj["sys"] / best_cpu[1]
    if subj and subj["rps"] and best_rps:
        out["rps"] = subj["rps"] / best_rps[1]
    if subj and subj["rps"] and direct and direct["rps"]:
        out["direct"] = subj["rps"] / direct["rps"]
    return out


def print_scenario(sc, rows):
    rows = [r for r in rows if r["scenario"] == sc["id"]]
    print(f"\n({sc['id']}) {sc['title']}")
    if not rows:
        print("    no results")
        return
    agg = aggregate(rows)
    n = max(a["rounds"] for a in agg.values())
    print(f"    medians over {n} round(s); errors summed over all rounds")
    header = (
        f"    {'target':<10} {'req/s':>11} {'p50':>9} {'p99':>9} {'errors':>7}"
        f" {'CPU µs/req':>11} {'kernel':>7} {'peak RSS':>10}"
    )
    print(header)
    for target, a in agg.items():
        print(
            f"    {target:<10} {a['rps']:>11,.0f} {fmt_lat(a['p50']):>9} {fmt_lat(a['p99']):>9}"
            f" {a['errors']:>7} {fmt_num(a['cpu'], '.2f'):>11} {fmt_share(a):>7}"
            f" {fmt_rss(a['rss']):>10}"
            + (f"  ({'; '.join(a['notes'])})" if a["notes"] else "")
        )
    r = ratios(sc, agg)
    s = sc["subject"]
    if s not in agg:
        print(f"    {s} not measured; no ratios")
        return
    if r["cpu"] is not None:
        p, v = r["best_cpu"]
        print(f"    {s} CPU/req ÷ best peer CPU/req ({p}, {v:.2f} µs): {r['cpu']:.2f}"
              "   (below 1: cheaper than the best peer)")
    if r["sys"] is not None:
        print(f"    {s} kernel CPU/req alone ÷ best peer CPU/req: {r['sys']:.2f}"
              "   (the ratio above with no user-space time at all)")
    if r["rps"] is not None:
        p, v = r["best_rps"]
        print(f"    {s} req/s ÷ best peer req/s ({p}, {v:,.0f}): {r['rps']:.2f}")
    if r["direct"] is not None:
        print(f"    {s} req/s ÷ direct req/s: {r['direct']:.2f}")


def print_summary(scenarios, rows):
    lines = []
    for sc in scenarios:
        agg = aggregate([r for r in rows if r["scenario"] == sc["id"]])
        if sc["subject"] not in agg:
            continue
        r = ratios(sc, agg)
        lines.append(
            f"    {'(' + sc['id'] + ')':<7} {sc['subject']:<9} {fmt_num(r['cpu'], '.2f'):>9}"
            f" {fmt_num(r['sys'], '.2f'):>9} {fmt_num(r['rps'], '.2f'):>9}"
            f" {fmt_num(r['direct'], '.2f'):>9}   {sc['title']}"
        )
    if not lines:
        return
    print("\nsummary of ratios (subject ÷ best peer; CPU below 1 and req/s above 1 favour the subject)")
    print("    (kernel: the subject's kernel CPU alone ÷ the best peer's CPU, the CPU ratio's floor)")
    print(f"    {'':<7} {'subject':<9} {'CPU/req':>9} {'kernel':>9} {'req/s':>9} {'÷ direct':>9}")
    print("\n".join(lines))


def cmd_table(a):
    scenarios, rows = load(a.results, a.scenarios)
    chosen = [s for s in scenarios if a.only is None or s["id"] == a.only]
    if not a.summary_only:
        for sc in chosen:
            print_scenario(sc, rows)
    if a.only is None:
        print_summary(scenarios, rows)


def cmd_body(a):
    """Writes a JSON object of exactly a.bytes bytes: records like an API payload, then padding."""
    doc = {"request_id": "bench-0001", "items": []}
    i = 0
    while True:
        item = {"id": i, "sku": f"SKU-{i:06d}", "name": f"item number {i}", "qty": i % 7 + 1,
                "price": round(3.5 + i * 0.25, 2), "tags": ["bench", "json"]}
        doc["items"].append(item)
        if len(json.dumps(doc, separators=(",", ":"))) + 64 > a.bytes:
            doc["items"].pop()
            break
        i += 1
    doc["pad"] = ""
    base = len(json.dumps(doc, separators=(",", ":")))
    if base > a.bytes:
        sys.exit(f"body: cannot fit a JSON document in {a.bytes} bytes")
    doc["pad"] = "x" * (a.bytes - base)
    text = json.dumps(doc, separators=(",", ":"))
    assert len(text) == a.bytes, (len(text), a.bytes)
    with open(a.out, "w", encoding="ascii") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    row = sub.add_parser("row")
    row.add_argument("--scenario", required=True)
    row.add_argument("--target", required=True)
    row.add_argument("--round", type=int, required=True)
    row.add_argument("--wrk", required=True)
    row.add_argument("--cpu-ticks", type=int)
    row.add_argument("--sys-ticks", type=int)
    row.add_argument("--clk-tck", type=int)
    row.add_argument("--rss-kb", type=int)
    row.add_argument("--note")
    row.set_defaults(func=cmd_row)

    table = sub.add_parser("table")
    table.add_argument("--results", required=True)
    table.add_argument("--scenarios", required=True)
    table.add_argument("--only")
    table.add_argument("--summary-only", action="store_true")
    table.set_defaults(func=cmd_table)

    body = sub.add_parser("body")
    body.add_argument("--bytes", type=int, required=True)
    body.add_argument("--out", required=True)
    body.set_defaults(func=cmd_body)

    a = ap.parse_args()
    a.func(a)


if __name__ == "__main__":
    main()
