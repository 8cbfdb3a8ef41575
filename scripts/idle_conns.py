#!/usr/bin/env python3
"""Idle keep-alive memory for scripts/bench.sh, scenario (g).

    idle_conns.py measure --port PORT --pids PID[,PID...] --target NAME [--conns N]
                          [--window W] [--warmup N] [--deadline S] [--path PATH] [--settle S]
        Reads the VmRSS of the pids (summed) before anything ("fresh"); opens --warmup
        connections, one GET each, and closes them, so that buffer pools and the allocator hold
        what any burst of --window requests leaves behind; reads VmRSS again ("before"); opens
        --conns connections, at most --window of them connecting or waiting for an answer at
        once, sends one keep-alive `GET PATH` on each and reads the whole response; when every
        one has been answered (or the deadline passed) and --settle seconds went by, reads VmRSS
        again ("idle"), checks that the connections are still open (none read as closed), then
        closes them. Prints one TSV row on stdout and a progress line on stderr. Exits 1 if not
        every connection was answered, or if some were closed while they should be idle.

    idle_conns.py table --results FILE [--baseline nginx] [--limit BYTES] [--summary]
        Prints the table of the rows in FILE: RSS fresh, before and with the idle connections,
        bytes per idle connection ((idle - before) / N), the verdict against the limit (default
        8 KiB), and the ratio to the baseline target; with --summary, one line of it.

Row columns (TSV, no header): target, pids (comma-separated), connections asked, connections
answered, fresh KiB, before KiB, idle KiB, seconds to open and answer all, closed by the peer
while idle, note ("-" if none).

Only the standard library: non-blocking sockets on one `selectors` loop, so 10 000 connections
cost the client little, and one deadline bounds the whole run.
"""

import argparse
import errno
import os
import resource
import selectors
import socket
import sys
import time

# The response head has to fit in this; rr-echo, nginx and HAProxy answer /healthz in far less.
HEAD_MAX = 16 * 1024


def vmrss_kb(pids):
    """VmRSS summed over the pids, in KiB; raises if one is gone."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
            else:
                raise RuntimeError(f"no VmRSS for pid {pid} (a zombie?)")
    return total


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = need if hard == resource.RLIM_INFINITY else min(max(soft, need), hard)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Conn:
    __slots__ = ("sock", "state", "buf", "need")

    def __init__(self, sock):
        self.sock = sock
        self.state = "connect"
        self.buf = b""
        self.need = None  # total bytes of the response once the head is known


class Failed(Exception):
    pass


def response_length(buf):
    """Bytes of the whole response once its head is in buf, or None if the head is not yet."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > HEAD_MAX:
            raise Failed("response head too large")
        return None
    head = buf[:end].decode("latin-1")
    lines = head.split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise Failed(f"not an HTTP/1.x response: {lines[0][:60]!r}")
    if parts[1] != "200":
        raise Failed(f"status {parts[1]}")
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        value = value.strip().lower()
        if name == "connection" and "close" in value:
            raise Failed("the response says Connection: close")
        if name == "transfer-encoding":
            raise Failed("chunked /healthz answer; expected Content-Length")
        if name == "content-length":
            length = int(value)
    if length is None:
        raise Failed("no Content-Length (body ends at close: not keep-alive)")
    return end + 4 + length


def open_many(port, count, window, request, deadline, keep):
    """Opens count connections to port, at most window in progress at once, sends request on
    each and reads one whole response. Returns (answered sockets, failures by reason). With keep
    false, each connection is closed as soon as it is answered."""
    sel = selectors.DefaultSelector()
    answered = []
    failures = {}
    started = 0
    in_flight = 0

    def fail(c, why):
        nonlocal in_flight
        failures[why] = failures.get(why, 0) + 1
        sel.unregister(c.sock)
        c.sock.close()
        in_flight -= 1

    def start_one():
        nonlocal started, in_flight
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rc = s.connect_ex(("127.0.0.1", port))
        c = Conn(s)
        started += 1
        in_flight += 1
        if rc not in (0, errno.EINPROGRESS):
            sel.register(s, selectors.EVENT_WRITE, c)
            fail(c, f"connect: {os.strerror(rc)}")
            return
        sel.register(s, selectors.EVENT_WRITE, c)

    while started < count or in_flight > 0:
        while started < count and in_flight < window:
            start_one()
        left = deadline - time.monotonic()
        if left <= 0:
            break
        for key, _ in sel.select(min(left, 1.0)):
            c = key.data
            try:
                if c.state == "connect":
                    err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise Failed(f"connect: {os.strerror(err)}")
                    # A few dozen bytes: one send takes them all on a fresh socket.
                    if c.sock.send(request) != len(request):
                        raise Failed("short send")
                    c.state = "read"
                    sel.modify(c.sock, selectors.EVENT_READ, c)
                    continue
                data = c.sock.recv(65536)
                if not data:
                    raise Failed("closed before the whole response")
                c.buf += data
                if c.need is None:
                    c.need = response_length(c.buf)
                if c.need is not None and len(c.buf) >= c.need:
                    if len(c.buf) > c.need:
                        raise Failed("bytes after the response")
                    sel.unregister(c.sock)
                    in_flight -= 1
                    c.state = "idle"
                    c.buf = b""
                    if keep:
                        answered.append(c.sock)
                    else:
                        c.sock.close()
                        answered.append(None)
            except (Failed, OSError, ValueError) as e:
                fail(c, str(e) if isinstance(e, Failed) else f"{type(e).__name__}: {e}")
    # Whatever is still in progress at the deadline counts as unanswered.
    for key in list(sel.get_map().values()):
        failures["no answer before the deadline"] = failures.get("no answer before the deadline", 0) + 1
        key.fileobj.close()
    sel.close()
    return answered, failures


def closed_count(socks):
    """How many of the idle sockets are readable now: closed by the peer (or sent something)."""
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    n = len(sel.select(0))
    sel.close()
    return n


def cmd_measure(a):
    pids = [int(p) for p in a.pids.split(",") if p]
    limit = raise_nofile(a.conns + 256)
    if limit < a.conns + 64:
        sys.exit(f"idle_conns: open-file limit {limit} is too low for {a.conns} connections")
    request = f"GET {a.path} HTTP/1.1\r\nHost: bench\r\nUser-Agent: idle_conns\r\n\r\n".encode()
    t0 = time.monotonic()
    deadline = t0 + a.deadline
    notes = []

    fresh = vmrss_kb(pids)
    if a.warmup:
        warm, failures = open_many(a.port, a.warmup, a.window, request, deadline, keep=False)
        if failures:
            notes.append("warm-up failures: " + "; ".join(f"{k} x{v}" for k, v in failures.items()))
        time.sleep(a.settle)
    before = vmrss_kb(pids)

    t1 = time.monotonic()
    socks, failures = open_many(a.port, a.conns, a.window, request, deadline, keep=True)
    secs = time.monotonic() - t1
    if failures:
        notes.append("; ".join(f"{k} x{v}" for k, v in sorted(failures.items())))
    time.sleep(a.settle)
    idle = vmrss_kb(pids)
    closed = closed_count(socks)
    if closed:
        notes.append(f"{closed} closed by the peer while idle")
    for s in socks:
        s.close()

    row = [a.target, ",".join(map(str, pids)), str(a.conns), str(len(socks)), str(fresh),
           str(before), str(idle), f"{secs:.2f}", str(closed), "; ".join(notes) or "-"]
    print("\t".join(row))
    per = (idle - before) * 1024 / len(socks) if socks else None
    sys.stderr.write(
        f"    (g) {a.target:<10} {len(socks):>6}/{a.conns} answered in {secs:.2f}s"
        f"  RSS fresh {fresh / 1024:.1f} MiB, before {before / 1024:.1f} MiB,"
        f" idle {idle / 1024:.1f} MiB"
        f"  -> {'-' if per is None else f'{per:,.0f}'} B/conn"
        + (f"  [{'; '.join(notes)}]" if notes else "")
        + "\n"
    )
    if len(socks) != a.conns or closed:
        sys.exit(1)


def load_rows(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            c = line.rstrip("\n").split("\t")
            rows.append({
                "target": c[0], "pids": c[1], "asked": int(c[2]), "answered": int(c[3]),
                "fresh": int(c[4]), "before": int(c[5]), "idle": int(c[6]),
                "secs": float(c[7]), "closed": int(c[8]), "note": "" if c[9] == "-" else c[9],
            })
    return rows


def fmt_kib(kb):
    return f"{kb / 1024:.1f} MiB"


def cmd_table(a):
    rows = load_rows(a.results)
    if not rows:
        print("    no results")
        return
    for r in rows:
        n = r["answered"]
        r["per"] = (r["idle"] - r["before"]) * 1024 / n if n else None
    base = next((r["per"] for r in rows if r["target"] == a.baseline), None)
    n = max(r["asked"] for r in rows)
    if a.summary:
        parts = []
        for r in rows:
            p = r["per"]
            parts.append(f"{r['target']} {'-' if p is None else f'{p:,.0f}'} B/conn"
                         + ("" if p is None else (" (ok)" if p <= a.limit else " (OVER)")))
        print(f"    (g)     {n:,} idle keep-alive connections, limit {fmt_limit(a.limit)}:"
              f" {', '.join(parts)}")
        return
    print(f"    {n:,} idle keep-alive connections, each after one GET; RSS is VmRSS"
          + (" (nginx: master + worker summed; the master does not change)"
             if any(r["target"] == "nginx" for r in rows) else ""))
    print(f"    {'target':<10} {'RSS fresh':>10} {'RSS before':>11} {'RSS idle':>10}"
          f" {'B/conn':>8} {'vs ' + fmt_limit(a.limit):<9} {'÷ ' + a.baseline:>8}"
          f" {'B/conn, from fresh':>19}")
    for r in rows:
        p = r["per"]
        verdict = "-" if p is None else ("ok" if p <= a.limit else "OVER")
        ratio = "-" if p is None or not base or base <= 0 else f"{p / base:.2f}"
        from_fresh = ((r["idle"] - r["fresh"]) * 1024 / r["answered"]) if r["answered"] else None
        extra = []
        if r["answered"] != r["asked"]:
            extra.append(f"only {r['answered']:,} of {r['asked']:,} answered")
        if r["note"]:
            extra.append(r["note"])
        print(f"    {r['target']:<10} {fmt_kib(r['fresh']):>10} {fmt_kib(r['before']):>11}"
              f" {fmt_kib(r['idle']):>10} {'-' if p is None else f'{p:,.0f}':>8}"
              f" {verdict:<9} {ratio:>8}"
              f" {'-' if from_fresh is None else f'{from_fresh:,.0f}':>19}"
              + (f"  ({'; '.join(extra)})" if extra else ""))
    print("    B/conn = (RSS idle - RSS before) / connections; 'before' is after a warm-up burst,"
          " so pools a burst fills are not charged to the idle connections ('from fresh' does"
          " charge them)")


def fmt_limit(b):
    return f"{b / 1024:g} KiB" if b % 1024 == 0 else f"{b} B"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    m = sub.add_parser("measure")
    m.add_argument("--port", type=int, required=True)
    m.add_argument("--pids", required=True)
    m.add_argument("--target", required=True)
    m.add_argument("--conns", type=int, default=10000)
    m.add_argument("--window", type=int, default=100)
    m.add_argument("--warmup", type=int, default=1000)
    m.add_argument("--deadline", type=float, default=60.0)
    m.add_argument("--settle", type=float, default=0.5)
    m.add_argument("--path", default="/healthz")
    m.set_defaults(func=cmd_measure)

    t = sub.add_parser("table")
    t.add_argument("--results", required=True)
    t.add_argument("--baseline", default="nginx")
    t.add_argument("--limit", type=int, default=8192)
    t.add_argument("--summary", action="store_true", help="one line instead of the table")
    t.set_defaults(func=cmd_table)

    a = ap.parse_args()
    a.func(a)


if __name__ == "__main__":
    main()
