#!/usr/bin/env python3
"""The Python half of scripts/soak.sh: the slowloris holder, /proc sampling and the report.

soak.sh starts the processes, injects the faults and keeps the clock; what is clearer in
Python than in bash lives here.

    soak_report.py slowloris --port P --conns N --duration S --out FILE
        Holds N connections to 127.0.0.1:P that each send a partial request head, a few bytes
        every DRIP_SECS, and opens a new one whenever the proxy closes one (after its head
        timeout, with 408). Stops by itself after S seconds (or on SIGTERM), closes everything
        and writes its counts to FILE as JSON. Prints a progress line every 10 s.

    soak_report.py sample --pid PID --port P --backends P1,P2,.. --t T --label L --out FILE
        Appends one row to the samples TSV: the process's open descriptors, split into client
        sockets (local port P), backend sockets (remote port in the list), listening sockets,
        other sockets and everything else, and its VmRSS. Prints the row on stdout too.

    soak_report.py report --dir DIR --duration S --ref-t T --conns N --fd-margin M
                          --pool-bound B --port P --backends P1,P2,..
        Reads what the run left in DIR and prints the final table. Exits 1 when a check
        failed (a failed GET, a descriptor leak, RSS growth over 10 %), 2 when the run did not
        happen as designed (wrk produced nothing, a fault was not injected), 0 otherwise.

Files in DIR: wrk-get.txt and wrk-post.txt (wrk --latency output; the Lua script adds TALLY
lines: status, answering instance, count), samples.tsv (see `sample`), slowloris.json,
faults.tsv (t, action, detail, ok) and proxy.log.
"""

import argparse
import asyncio
import json
import os
import re
import resource
import signal
import sys
import time

HOST = "127.0.0.1"

# ---------------------------------------------------------------------------------------------
# slowloris

# Time between the few bytes each held connection sends: well under the proxy's 10 s head
# timeout, so the connection is never idle, only slow.
DRIP_SECS = 3.0
# The first connections are spread over this long, so 2,000 connects do not hit the listen
# backlog in one burst.
STAGGER_SECS = 2.0
# A connect that takes longer than this counts as failed (loopback connects take microseconds).
CONNECT_TIMEOUT_SECS = 5.0
# After the proxy's answer, how long to wait for it to close the connection.
CLOSE_WAIT_SECS = 2.0
# Pause before retrying after a failed connect, so a refusing proxy is not hammered.
RETRY_PAUSE_SECS = 0.5

PARTIAL_HEAD = b"GET /slowloris HTTP/1.1\r\nHost: 127.0.0.1\r\n"


class Holder:
    """Counts of what the held connections saw."""

    def __init__(self):
        self.open = 0
        self.max_open = 0
        self.opened = 0
        self.connect_failed = 0
        self.closed_by_proxy = 0
        self.answered = {}  # status line code -> count
        self.answered_not_closed = 0
        self.errors = {}  # exception class -> count
        # Seconds from starting the connect to seeing the proxy's close. The connect starts
        # before the proxy accepts, so a lifetime under the head timeout is an early close.
        self.lifetimes = []
        self.open_samples = []  # (t, open) once a second

    def error(self, e):
        name = type(e).__name__
        self.errors[name] = self.errors.get(name, 0) + 1


async def hold_one(idx, args, h, stop, deadline):
    loop = asyncio.get_running_loop()
    await asyncio.sleep(STAGGER_SECS * idx / max(1, args.conns))
    drip = 0
    while not stop.is_set() and loop.time() < deadline:
        born = loop.time()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(HOST, args.port), CONNECT_TIMEOUT_SECS
            )
        except (OSError, asyncio.TimeoutError) as e:
            h.connect_failed += 1
            h.error(e)
            await asyncio.sleep(RETRY_PAUSE_SECS)
            continue
        h.opened += 1
        h.open += 1
        h.max_open = max(h.max_open, h.open)
        try:
            writer.write(PARTIAL_HEAD)
            while not stop.is_set():
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    data = await asyncio.wait_for(reader.read(4096), min(DRIP_SECS, left))
                except asyncio.TimeoutError:
                    drip += 1
                    writer.write(b"X-%d: z\r\n" % (drip % 100))
                    continue
                if data:
                    code = data.split(b"\r\n", 1)[0].split(b" ")[1:2]
                    code = code[0].decode("ascii", "replace") if code else "?"
                    h.answered[code] = h.answered.get(code, 0) + 1
                    try:
                        while await asyncio.wait_for(reader.read(4096), CLOSE_WAIT_SECS):
                            pass
                    except asyncio.TimeoutError:
                        h.answered_not_closed += 1
                        break
                h.closed_by_proxy += 1
                h.lifetimes.append(loop.time() - born)
                break
        except OSError as e:
            h.error(e)
            h.closed_by_proxy += 1
            h.lifetimes.append(loop.time() - born)
        finally:
            h.open -= 1
            writer.close()


async def slowloris_main(args):
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    h = Holder()
    start = loop.time()
    deadline = start + args.duration
    tasks = [
        asyncio.create_task(hold_one(i, args, h, stop, deadline)) for i in range(args.conns)
    ]
    next_report = start + 10
    while not stop.is_set() and loop.time() < deadline:
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except asyncio.TimeoutError:
            pass
        now = loop.time()
        h.open_samples.append((round(now - start, 1), h.open))
        if now >= next_report:
            next_report += 10
            print(
                f"slowloris t={now - start:.0f}s open={h.open} opened={h.opened} "
                f"closed_by_proxy={h.closed_by_proxy} answers={h.answered} "
                f"connect_failed={h.connect_failed}",
                flush=True,
            )
    stop.set()
    # Every task wakes within DRIP_SECS (its read times out) or CLOSE_WAIT_SECS; cancel the rest.
    done, pending = await asyncio.wait(tasks, timeout=DRIP_SECS + CLOSE_WAIT_SECS + 1)
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for t in done:
        if not t.cancelled() and t.exception() is not None:
            h.error(t.exception())
    return h


def cmd_slowloris(args):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.conns + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    h = asyncio.run(slowloris_main(args))
    # The steady part: after the first connections are all up and before the end.
    steady = [n for t, n in h.open_samples if STAGGER_SECS + 1 <= t <= args.duration - 1]
    out = {
        "conns": args.conns,
        "duration": args.duration,
        "opened": h.opened,
        "max_open": h.max_open,
        "steady_min_open": min(steady) if steady else None,
        "steady_mean_open": round(sum(steady) / len(steady), 1) if steady else None,
        "connect_failed": h.connect_failed,
        "closed_by_proxy": h.closed_by_proxy,
        "answered": h.answered,
        "answered_not_closed": h.answered_not_closed,
        "errors": h.errors,
        "lifetime_min": round(min(h.lifetimes), 2) if h.lifetimes else None,
        "lifetime_max": round(max(h.lifetimes), 2) if h.lifetimes else None,
    }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)
    print(f"slowloris done: {json.dumps(out)}", flush=True)


# ---------------------------------------------------------------------------------------------
# sample

SAMPLE_COLUMNS = ["t", "label", "fds", "clients", "backends", "close_wait", "listening",
                  "other_socks", "files", "rss_kb", "data_kb"]
SOCKET_LINK = re.compile(r"socket:\[(\d+)\]")
# Socket states in /proc/net/tcp. CLOSE_WAIT: the peer closed and this side has not yet: a
# descriptor the proxy forgot to close shows up here.
TCP_LISTEN = "0A"
TCP_CLOSE_WAIT = "08"
# How often `settle` looks again.
SETTLE_POLL_SECS = 0.25


def tcp_table(pid):
    """inode -> (local port, remote port, state) for the TCP sockets in PID's namespace."""
    table = {}
    for name in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{name}", encoding="ascii") as f:
                next(f, None)
                for line in f:
                    parts = line.split()
                    if len(parts) < 10:
                        continue
                    local, remote, state, inode = parts[1], parts[2], parts[3], parts[9]
                    table[inode] = (
                        int(local.rsplit(":", 1)[1], 16),
                        int(remote.rsplit(":", 1)[1], 16),
                        state,
                    )
        except FileNotFoundError:
            pass
    return table


def sample(pid, port, backend_ports):
    counts = {"fds": 0, "clients": 0, "backends": 0, "close_wait": 0, "listening": 0,
              "other_socks": 0, "files": 0}
    inodes = []
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            link = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue  # closed between listdir and readlink
        counts["fds"] += 1
        m = SOCKET_LINK.fullmatch(link)
        if m:
            inodes.append(m.group(1))
        else:
            counts["files"] += 1
    table = tcp_table(pid)
    for inode in inodes:
        entry = table.get(inode)
        if entry is not None and entry[2] == TCP_CLOSE_WAIT:
            counts["close_wait"] += 1
        if entry is None:
            counts["other_socks"] += 1
        elif entry[2] == TCP_LISTEN:
            counts["listening"] += 1
        elif entry[0] == port:
            counts["clients"] += 1
        elif entry[1] in backend_ports:
            counts["backends"] += 1
        else:
            counts["other_socks"] += 1
    # VmData is the heap and anonymous mappings as allocated; RSS the part of it touched. RSS
    # rising under a flat VmData is the allocator reusing freed memory, not live data growing.
    counts["rss_kb"] = counts["data_kb"] = None
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                counts["rss_kb"] = int(line.split()[1])
            elif line.startswith("VmData:"):
                counts["data_kb"] = int(line.split()[1])
    return counts


def cmd_sample(args):
    ports = {int(p) for p in args.backends.split(",") if p}
    try:
        c = sample(args.pid, args.port, ports)
    except (FileNotFoundError, ProcessLookupError):
        print(f"sample: process {args.pid} is gone", file=sys.stderr)
        return 1
    row = {"t": args.t, "label": args.label, **c}
    new = not os.path.exists(args.out)
    with open(args.out, "a", encoding="utf-8") as f:
        if new:
            f.write("\t".join(SAMPLE_COLUMNS) + "\n")
        f.write("\t".join(str(row[k]) for k in SAMPLE_COLUMNS) + "\n")
    print("  ".join(f"{k}={row[k]}" for k in SAMPLE_COLUMNS), flush=True)
    return 0


def cmd_settle(args):
    """Waits until the proxy holds no client socket, no CLOSE_WAIT socket and no more backend
    connections than at the start (its idle pooled ones close when the backends' keep-alive
    timeout closes them), or until the timeout; says which and how long it took."""
    ports = {int(p) for p in args.backends.split(",") if p}
    start = next((r for r in read_samples(args.samples) if r["label"] == "start"), None)
    max_backends = start["backends"] if start else 0
    began = time.monotonic()
    while True:
        try:
            c = sample(args.pid, args.port, ports)
        except (FileNotFoundError, ProcessLookupError):
            msg = "rr-proxy is gone"
            break
        took = time.monotonic() - began
        if c["clients"] == 0 and c["close_wait"] == 0 and c["backends"] <= max_backends:
            msg = f"settled in {took:.1f} s"
            break
        if took >= args.timeout:
            msg = (f"not settled after {took:.1f} s: clients {c['clients']}, close_wait "
                   f"{c['close_wait']}, backends {c['backends']} (start {max_backends})")
            break
        time.sleep(SETTLE_POLL_SECS)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(msg + "\n")
    print(msg, flush=True)
    return 0


# ---------------------------------------------------------------------------------------------
# report

TIME_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6}
COUNT_SUFFIX = {"": 1, "k": 1e3, "M": 1e6, "G": 1e9}


def parse_wrk(path):
    """The numbers of one `wrk --latency` run plus the Lua tallies, or None if it ran nothing."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    m = re.search(r"^\s*(\d+) requests in ([\d.]+)(\w+),", text, re.M)
    if not m:
        return None
    w = {"requests": int(m.group(1)), "non2xx": 0, "connect": 0, "read": 0, "write": 0,
         "timeout": 0, "tally": {}}
    m = re.search(r"^Requests/sec:\s*([\d.]+)([kMG]?)", text, re.M)
    w["rps"] = float(m.group(1)) * COUNT_SUFFIX[m.group(2)] if m else None
    m = re.search(r"^\s*Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s|m)", text, re.M)
    w["max_us"] = float(m.group(1)) * TIME_US[m.group(2)] if m else None
    for pct in ("50", "99"):
        m = re.search(r"^\s*%s(?:\.0+)?%%\s+([\d.]+)(us|ms|s|m)\s*$" % pct, text, re.M)
        w["p" + pct] = float(m.group(1)) * TIME_US[m.group(2)] if m else None
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    if m:
        w["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        w["connect"], w["read"], w["write"], w["timeout"] = (int(g) for g in m.groups())
    for status, who, n in re.findall(r"^TALLY (\d+) (\S+) (\d+)$", text, re.M):
        w["tally"][(int(status), who)] = int(n)
    return w


def failures(w):
    """(total, by-kind text) of one wrk run: non-2xx answers (by status) plus socket errors."""
    by_status = {}
    for (status, _), n in w["tally"].items():
        if status >= 400:
            by_status[status] = by_status.get(status, 0) + n
    parts = [f"{s}×{n}" for s, n in sorted(by_status.items())]
    non2xx = f"non-2xx {w['non2xx']}" + (f" ({', '.join(parts)})" if parts else "")
    kinds = [non2xx] + [f"{k} {w[k]}" for k in ("connect", "read", "write", "timeout")]
    total = w["non2xx"] + w["connect"] + w["read"] + w["write"] + w["timeout"]
    return total, ", ".join(kinds)


def by_instance(w):
    counts = {}
    for (status, who), n in w["tally"].items():
        if 200 <= status < 300:
            counts[who] = counts.get(who, 0) + n
    total = sum(counts.values()) or 1
    return ", ".join(f"{who} {100 * n / total:.1f} %" for who, n in sorted(counts.items()))


def read_samples(path):
    rows = []
    try:
        with open(path, encoding="utf-8") as f:
            header = f.readline().rstrip("\n").split("\t")
            for line in f:
                vals = line.rstrip("\n").split("\t")
                row = dict(zip(header, vals))
                for k in header:
                    if k != "label":
                        try:
                            row[k] = float(row[k]) if k == "t" else int(row[k])
                        except ValueError:
                            row[k] = None
                rows.append(row)
    except FileNotFoundError:
        pass
    return rows


def read_faults(path):
    rows = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) == 4:
                    rows.append({"t": parts[0], "action": parts[1], "detail": parts[2],
                                 "ok": parts[3] == "1"})
    except FileNotFoundError:
        pass
    return rows


def log_summary(path, known_ports, top=12):
    """The proxy's log lines, most frequent first, with durations and client addresses (any
    port not in `known_ports`) folded so that lines differing only in them count together."""
    counts = {}

    def fold(m):
        return m.group(0) if int(m.group(1)) in known_ports else "<client>"

    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                # Drop the timestamp, with or without brackets around the line's prefix.
                line = re.sub(r"^(\[?)\d{4}-\d\d-\d\dT\S+\s+", r"\1", line.strip())
                line = re.sub(r"127\.0\.0\.1:(\d+)", fold, line)
                line = re.sub(r"\b\d+(\.\d+)?(ms|s)\b", "<dur>", line)
                if line:
                    counts[line] = counts.get(line, 0) + 1
    except FileNotFoundError:
        return []
    return sorted(counts.items(), key=lambda kv: -kv[1])[:top]


def mib(kb):
    return "-" if kb is None else f"{kb / 1024:.1f} MiB"


def us(v):
    if v is None:
        return "-"
    return f"{v / 1e3:.2f} ms" if v < 1e6 else f"{v / 1e6:.2f} s"


def pick(samples, label):
    for row in samples:
        if row["label"] == label:
            return row
    return None


def fd_text(row):
    if row is None:
        return "-"
    return (f"{row['fds']} (clients {row['clients']}, backends {row['backends']}, "
            f"other {row['fds'] - row['clients'] - row['backends']}, "
            f"CLOSE_WAIT {row['close_wait']})")


def cmd_report(a):
    d = a.dir
    get = parse_wrk(os.path.join(d, "wrk-get.txt"))
    post = parse_wrk(os.path.join(d, "wrk-post.txt"))
    samples = read_samples(os.path.join(d, "samples.tsv"))
    faults = read_faults(os.path.join(d, "faults.tsv"))
    try:
        with open(os.path.join(d, "slowloris.json"), encoding="utf-8") as f:
            slow = json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        slow = None

    problems = []  # the proxy failed a check: exit 1
    broken = []  # the run did not happen as designed: exit 2
    rows = []

    def row(name, value, check=""):
        rows.append((name, value, check))

    if get is None:
        broken.append("the GET wrk produced no result")
        row("GET requests", "-")
    else:
        row("GET /control", f"{get['requests']} requests, {get['rps'] or 0:.0f} req/s, "
            f"p50 {us(get['p50'])}, p99 {us(get['p99'])}, max {us(get['max_us'])}")
        row("GET answered by", by_instance(get))
        total, kinds = failures(get)
        ok = total == 0
        if not ok:
            problems.append(f"{total} failed GETs")
        row("failed GETs", f"{total}: {kinds}", "ok" if ok else "FAIL")
    if post is None:
        broken.append("the POST wrk produced no result")
        row("POST requests", "-")
    else:
        row("POST / (JSON)", f"{post['requests']} requests, {post['rps'] or 0:.0f} req/s, "
            f"p50 {us(post['p50'])}, p99 {us(post['p99'])}, max {us(post['max_us'])}")
        total, kinds = failures(post)
        row("failed POSTs", f"{total}: {kinds}", "reported only (not idempotent)")

    kills = [f for f in faults if f["action"] == "kill"]
    restarts = [f for f in faults if f["action"] == "restart"]
    downs = [f for f in faults if f["action"] == "unhealthy"]
    ups = [f for f in faults if f["action"] == "healthy"]
    failed = [f for f in faults if not f["ok"]]
    ready = [float(f["detail"].split()[0]) for f in restarts
             if f["ok"] and f["detail"].split()[0].replace(".", "").isdigit()]
    ready_text = f" (answering {min(ready):.0f}-{max(ready):.0f} ms after start)" if ready else ""
    row("faults", f"backend 1 killed {len(kills)}×, restarted {len(restarts)}×{ready_text}; "
        f"backend 2 unhealthy {len(downs)}×, healthy {len(ups)}×",
        "ok" if not failed and kills else "NOT INJECTED")
    for f in failed:
        broken.append(f"fault at t={f['t']}: {f['action']} failed ({f['detail']})")
    if not kills:
        broken.append("no backend kill happened (duration too short?)")

    if slow is None:
        broken.append("the slowloris holder left no counts")
        row("slowloris", "-")
    elif slow["conns"] == 0:
        row("slowloris", "off")
    else:
        row("slowloris", f"{slow['conns']} wanted, held open min {slow['steady_min_open']} / "
            f"mean {slow['steady_mean_open']} / max {slow['max_open']}; "
            f"{slow['opened']} opened, {slow['closed_by_proxy']} closed by the proxy "
            f"(answers {slow['answered']}), connect-to-close {slow['lifetime_min']}-"
            f"{slow['lifetime_max']} s, connect failures {slow['connect_failed']}, "
            f"errors {slow['errors'] or 0}")

    start, ref, mid = pick(samples, "start"), pick(samples, "ref"), pick(samples, "mid")
    end, final = pick(samples, "end"), pick(samples, "final")
    row("fds start", fd_text(start))
    row("fds mid", fd_text(mid))
    row("fds end (load on)", fd_text(end))
    if start is None or final is None:
        broken.append("missing the start or final descriptor sample")
        row("fds after stop", fd_text(final), "NO DATA")
    else:
        # Idle pooled backend connections are legitimate (up to --pool-size per backend), and
        # how many there are depends on the load's last moments; everything else must return
        # to where it started.
        rest_start = start["fds"] - start["backends"]
        rest_final = final["fds"] - final["backends"]
        why = []
        if final["clients"] > 0:
            why.append(f"{final['clients']} client sockets still open")
        if final["close_wait"] > 0:
            why.append(f"{final['close_wait']} sockets in CLOSE_WAIT (peer gone, not closed)")
        if rest_final > rest_start + a.fd_margin:
            why.append(f"non-backend fds {rest_start} -> {rest_final} (margin {a.fd_margin})")
        if final["backends"] > a.pool_bound:
            why.append(f"{final['backends']} backend sockets > pool bound {a.pool_bound}")
        if why:
            problems.append("descriptors leaked: " + "; ".join(why))
        raw = final["fds"] - start["fds"]
        try:
            with open(os.path.join(d, "settle.txt"), encoding="utf-8") as f:
                settled = f.read().strip()
        except FileNotFoundError:
            settled = "no settle record"
        row("fds after stop", f"{fd_text(final)}; {raw:+d} vs start; {settled}",
            "FAIL: " + "; ".join(why) if why else "ok")

    row("RSS start", mib(start and start["rss_kb"]))
    row(f"RSS {a.ref_t:g}s", mib(ref and ref["rss_kb"]))
    row("RSS mid", mib(mid and mid["rss_kb"]))
    if ref is None or end is None:
        broken.append("missing the RSS reference or end sample")
        row("RSS end", mib(end and end["rss_kb"]), "NO DATA")
    else:
        worst = max(end["rss_kb"], final["rss_kb"] if final else 0)
        growth = (worst - ref["rss_kb"]) / ref["rss_kb"] * 100
        ok = growth <= 10.0
        if not ok:
            problems.append(f"RSS grew {growth:.1f} % after t={a.ref_t:g}s")
        row("RSS end", f"{mib(end['rss_kb'])} (load on), {mib(final and final['rss_kb'])} "
            f"after stop; {growth:+.1f} % vs t={a.ref_t:g}s", "ok" if ok else "FAIL (> 10 %)")

    if ref is not None and end is not None and ref.get("data_kb") and end.get("data_kb"):
        # Context for the RSS check: allocated memory (VmData) flat while RSS rises means freed
        # buffers being reused and touched, not live data growing.
        row("VmData (allocated)", f"{mib(ref['data_kb'])} at t={a.ref_t:g}s, "
            f"{mib(end['data_kb'])} at the end")
    if problems:
        verdict, code = "FAIL: " + "; ".join(problems), 1
    elif broken:
        verdict, code = "INCOMPLETE: " + "; ".join(broken), 2
    else:
        verdict, code = "PASS", 0
    if problems and broken:
        verdict += " (also: " + "; ".join(broken) + ")"
    row("verdict", verdict)

    width = max(len(r[0]) for r in rows)
    print(f"rr-proxy soak: {a.duration:g} s, {a.conns} slowloris connections, results in {d}")
    print("-" * 100)
    for name, value, check in rows:
        tail = f"   [{check}]" if check else ""
        print(f"{name:<{width}}  {value}{tail}")
    print("-" * 100)
    print("samples (every 10 s):")
    for r in samples:
        print(f"  t={r['t']:>4g}s {r['label']:<8} fds {r['fds']:>5} (clients {r['clients']:>5}, "
              f"backends {r['backends']:>3}, CLOSE_WAIT {r['close_wait']:>3})  "
              f"RSS {mib(r['rss_kb'])}, VmData {mib(r.get('data_kb'))}")
    known = {a.port} | {int(p) for p in a.backends.split(",") if p}
    summary = log_summary(os.path.join(d, "proxy.log"), known)
    if summary:
        print("proxy log, most frequent lines (numbers folded):")
        for line, n in summary:
            print(f"  {n:>7}  {line[:140]}")
    return code


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("slowloris")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--conns", type=int, required=True)
    s.add_argument("--duration", type=float, required=True)
    s.add_argument("--out", required=True)
    s = sub.add_parser("sample")
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--backends", required=True)
    s.add_argument("--t", type=float, required=True)
    s.add_argument("--label", required=True)
    s.add_argument("--out", required=True)
    s = sub.add_parser("settle")
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--backends", required=True)
    s.add_argument("--samples", required=True)
    s.add_argument("--timeout", type=float, required=True)
    s.add_argument("--out", required=True)
    s = sub.add_parser("report")
    s.add_argument("--dir", required=True)
    s.add_argument("--duration", type=float, required=True)
    s.add_argument("--ref-t", type=float, required=True)
    s.add_argument("--conns", type=int, required=True)
    s.add_argument("--fd-margin", type=int, default=10)
    s.add_argument("--pool-bound", type=int, required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--backends", required=True)
    a = p.parse_args()
    if a.cmd == "slowloris":
        cmd_slowloris(a)
        return 0
    if a.cmd == "sample":
        return cmd_sample(a)
    if a.cmd == "settle":
        return cmd_settle(a)
    return cmd_report(a)


if __name__ == "__main__":
    sys.exit(main())
