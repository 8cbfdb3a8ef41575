#!/usr/bin/env bash
# Soak test (issue #6): a bounded run of load through rr-proxy while its backends misbehave.
#
# Usage: scripts/soak.sh [--duration SECONDS] [--quick] [--slowloris N]
#
#   --duration S   length of the loaded run (default 120; at least 20)
#   --quick        30 s, for trying it out
#   --slowloris N  slow connections held open against the proxy (default 2000; 0 for none)
#
# On 127.0.0.1 only, it starts three rr-echo backends (s1, s2, s3) and rr-proxy in front of
# them with short health settings, warms up for a few seconds, then for the whole run:
#
#   - wrk -t1 -c50 GET /control, and wrk -t1 -c10 POST / with a small JSON body; a Lua script
#     tallies every answer by status and answering instance;
#   - every 10 s, kill -9 backend 1 and start it again 1.5 s later on the same port;
#   - every 10 s, 5 s after each kill, POST {"healthy":false} to backend 2's /control and
#     {"healthy":true} 3 s later, so the proxy's probes take it out and bring it back;
#   - N slowloris connections (scripts/soak_report.py slowloris) that send a partial head a
#     few bytes at a time and reconnect whenever the proxy's head timeout closes them;
#   - every 10 s, the proxy's open descriptors (split into client, backend and other), RSS and
#     VmData.
#
# The GETs go to /control, not /healthz: backend 2 answers /healthz with 503 on purpose while
# it is flipped to unhealthy, and until the probes take it out the proxy rightly passes that on.
# /control answers 200 whatever the health flag says, so every non-2xx GET is a real failure.
#
# At the end it prints a report and exits 1 when a GET failed (non-2xx or socket error; GETs
# are retried on another backend when they fail before any response byte, so none should),
# when descriptors leaked, or when RSS at the end (load on, and after it stopped) is more than
# 10 % above RSS at 30 s (a third of the run when it is shorter than 60 s). Descriptors are
# compared once the load has stopped and the proxy has settled (at most 15 s): a leak is any
# client socket still open, any socket in CLOSE_WAIT (the peer closed it, the proxy did not),
# descriptors other than backend connections more than 10 above the start, or more backend
# connections than the pools can hold (idle pooled connections are legitimate and usually gone
# by then: rr-echo closes idle keep-alive connections after 10 s). VmData is reported beside RSS:
# RSS rising under a flat VmData is freed memory being reused, not live data growing. Failed
# POSTs are reported, not failed on: a POST that reached a backend which then died is not
# retried. It exits 2 when the run could not happen as designed (a port taken, a process that
# would not start, a fault that could not be injected), 130 on Ctrl-C. Everything it started is
# stopped on every exit path.
#
# Logs, samples, wrk output and report.txt are kept in run/soak/<timestamp>/.
#
# Environment: SOAK_PORT_BASE (default 28080: the proxy there, the backends on the next three
# ports; keep it below the ephemeral port range); RR_BIN_DIR runs the binaries in that directory
# and skips `cargo build --release`.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

# Below the ephemeral range (ip_local_port_range, 32768 and up by default): backend 1's port is
# free for a moment at every restart, and an outgoing connection (thousands a minute here) that
# happened to take it as its local port would make the restart fail with "address in use".
readonly BASE=${SOAK_PORT_BASE:-28080}
readonly PROXY_PORT=$BASE
readonly PORTS=($((BASE + 1)) $((BASE + 2)) $((BASE + 3)))
readonly BIN=${RR_BIN_DIR:-target/release}
readonly HELPER=scripts/soak_report.py
# Health settings short enough that several transitions fit in every 10 s cycle.
readonly PROXY_FLAGS=(--health-interval 500ms --health-timeout 300ms --connect-timeout 500ms
    --head-timeout 10s)
# The proxy's default --pool-size: the most idle connections it keeps per backend.
readonly POOL_SIZE=64
# How far descriptors other than backend connections may end above the start.
readonly FD_MARGIN=10
# Load shape: one wrk thread each, so the 2-core machine keeps a core for the proxy.
readonly GET_CONNS=50 POST_CONNS=10
# wrk counts a request slower than this as a timeout error; loopback answers take milliseconds.
readonly WRK_TIMEOUT=5s
readonly WARMUP_SECS=3
# Fault schedule within each 10 s cycle (seconds after the cycle starts).
readonly KILL_AT=2 RESTART_AFTER_MS=1500 UNHEALTHY_AT=7 UNHEALTHY_FOR=3
# How long a (re)started process may take to accept connections.
readonly READY_SECS=10
# After the load stops, how long the proxy may take to close every client connection and the
# backends (rr-echo closes an idle keep-alive connection after 10 s) to close the pooled ones.
readonly SETTLE_SECS=15
readonly NOFILE=65536

usage() {
    sed -n '/^# Usage:/,/^# On 127/{/^# On 127/d;s/^# \{0,1\}//;p}' "$0"
    exit "${1:-0}"
}

die() {
    echo "soak: $*" >&2
    exit 2
}

duration=120
slowloris=2000
while [ $# -gt 0 ]; do
    case $1 in
    --duration) duration=${2:?--duration needs a value}; shift ;;
    --duration=*) duration=${1#*=} ;;
    --quick) duration=30 ;;
    --slowloris) slowloris=${2:?--slowloris needs a value}; shift ;;
    --slowloris=*) slowloris=${1#*=} ;;
    -h | --help) usage 0 ;;
    *) echo "soak: unknown argument '$1'" >&2; usage 2 ;;
    esac
    shift
done
if ! [[ "$duration" =~ ^[0-9]+$ ]] || [ "$duration" -lt 20 ]; then
    die "--duration must be a whole number of seconds, at least 20"
fi
[[ "$slowloris" =~ ^[0-9]+$ ]] || die "--slowloris must be a number of connections"
# RSS is compared with its value once the run has settled: at 30 s, or a third of a short run.
if [ "$duration" -ge 60 ]; then REF_T=30; else REF_T=$((duration / 3)); fi
MID_T=$((duration / 2))
END_T=$((duration - 1))

for tool in wrk curl python3; do
    command -v "$tool" >/dev/null || die "$tool is needed; install it first"
done
[ -n "${EPOCHREALTIME:-}" ] || die "needs bash 5 (EPOCHREALTIME)"

ulimit -n "$NOFILE" 2>/dev/null || ulimit -n "$(ulimit -Hn)" ||
    die "cannot raise the descriptor limit"
if [ "$(ulimit -n)" -lt $((slowloris + 1000)) ]; then
    die "ulimit -n is $(ulimit -n); $slowloris slowloris connections need $((slowloris + 1000))"
fi

if [ -z "${RR_BIN_DIR:-}" ]; then
    echo "soak: building release binaries"
    cargo build --release || die "cargo build --release failed"
fi
for b in rr-echo rr-proxy; do
    "$BIN/$b" --help >/dev/null 2>&1 || die "$BIN/$b --help failed; build it first"
done

OUT="$ROOT/run/soak/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"
SAMPLES="$OUT/samples.tsv"
FAULTS="$OUT/faults.tsv"
: >"$FAULTS"

# ---------------------------------------------------------------------------------------------
# Processes. Every pid started is remembered and stopped on exit, whatever the exit path.

declare -A PID=() # name -> pid of the process we started
started=()

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
    local rc=$? name
    trap - EXIT INT TERM
    for name in "${started[@]}"; do kill -TERM "${PID[$name]}" 2>/dev/null || true; done
    for name in "${started[@]}"; do stop_pid "${PID[$name]}"; done
    [ "$rc" -eq 0 ] || echo "soak: exit $rc; logs in $OUT" >&2
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "soak: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

port_answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# spawn NAME LOG CMD...: starts CMD in the background, its output appended to LOG.
spawn() {
    local name=$1 log=$2
    shift 2
    "$@" >>"$log" 2>&1 </dev/null &
    PID[$name]=$!
    [[ " ${started[*]} " == *" $name "* ]] || started+=("$name")
}

# forget NAME: NAME's process was reaped; its pid may be reused and must not be signalled.
forget() {
    local name keep=()
    for name in "${started[@]}"; do [ "$name" = "$1" ] || keep+=("$name"); done
    started=("${keep[@]}")
    unset "PID[$1]"
}

# wait_port NAME PORT: true once PORT accepts connections, false if NAME died or time ran out.
wait_port() {
    local i
    for ((i = 0; i < READY_SECS * 50; i++)); do
        alive "${PID[$1]}" || return 1
        port_answers "$2" && return 0
        sleep 0.02
    done
    return 1
}

# start_echo N: starts backend N (1-3) as sN and waits until it answers.
start_echo() {
    local n=$1 port=${PORTS[$(($1 - 1))]}
    spawn "s$n" "$OUT/s$n.log" "$BIN/rr-echo" --port "$port" --name "s$n"
    wait_port "s$n" "$port"
}

# now_ms: milliseconds since the load started.
now_ms() {
    local t=${EPOCHREALTIME/./}
    echo $(((t / 1000) - T0_MS))
}

# fault ACTION DETAIL OK: one line in the fault log, stamped with the run clock.
fault() {
    local t
    t=$(now_ms)
    printf '%d.%03d\t%s\t%s\t%s\n' $((t / 1000)) $((t % 1000)) "$1" "$2" "$3" >>"$FAULTS"
    printf 'soak: t=%4d.%ds %-9s %s\n' $((t / 1000)) $(((t % 1000) / 100)) "$1" "$2"
}

# sample T LABEL: one row of descriptors and RSS in samples.tsv.
sample() {
    python3 "$HELPER" sample --pid "${PID[proxy]}" --port "$PROXY_PORT" \
        --backends "$(IFS=,; echo "${PORTS[*]}")" --t "$1" --label "$2" --out "$SAMPLES" |
        sed "s/^/soak: /" || echo "soak: no sample at t=$1 (is rr-proxy gone?)" >&2
}

# set_health HEALTHY: flips backend 2's health flag through its control endpoint.
set_health() {
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 -X POST \
        -d "{\"healthy\":$1}" "http://127.0.0.1:${PORTS[1]}/control") || true
    if [ "$code" = 200 ]; then
        fault "$([ "$1" = true ] && echo healthy || echo unhealthy)" "s2 /control $code" 1
    else
        fault "$([ "$1" = true ] && echo healthy || echo unhealthy)" "s2 /control ${code:-none}" 0
    fi
}

# kill_s1: kill -9 backend 1 and reap it.
kill_s1() {
    local pid=${PID[s1]:-}
    if [ -z "$pid" ]; then
        fault kill "s1 was not running" 0
        return
    fi
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    forget s1
    fault kill "s1 pid $pid" 1
}

# restart_s1: starts backend 1 again on its port; logs how long until it answered.
restart_s1() {
    local t0 t1
    t0=${EPOCHREALTIME/./}
    if start_echo 1; then
        t1=${EPOCHREALTIME/./}
        fault restart "$(((t1 - t0) / 1000)) ms, pid ${PID[s1]}" 1
    else
        fault restart "s1 did not answer within ${READY_SECS}s; see s1.log" 0
    fi
}

# ---------------------------------------------------------------------------------------------
# Start

read -r eph_lo eph_hi </proc/sys/net/ipv4/ip_local_port_range || eph_lo=32768 eph_hi=60999
for port in "$PROXY_PORT" "${PORTS[@]}"; do
    port_answers "$port" && die "port $port is already in use (move the block with SOAK_PORT_BASE)"
    if [ "$port" -ge "$eph_lo" ] && [ "$port" -le "$eph_hi" ]; then
        echo "soak: warning: port $port is in the ephemeral range $eph_lo-$eph_hi; a restart may" \
            "find it taken by an outgoing connection" >&2
    fi
done

echo "soak: ${duration}s, $slowloris slowloris connections, ulimit -n $(ulimit -n); logs in $OUT"
for n in 1 2 3; do start_echo "$n" || die "rr-echo s$n did not start; see $OUT/s$n.log"; done
backend_list=$(printf '127.0.0.1:%s,' "${PORTS[@]}")
RUST_LOG=info spawn proxy "$OUT/proxy.log" "$BIN/rr-proxy" \
    --listen "127.0.0.1:$PROXY_PORT" --backends "${backend_list%,}" "${PROXY_FLAGS[@]}"
wait_port proxy "$PROXY_PORT" || die "rr-proxy did not start; see $OUT/proxy.log"

# The Lua script: `-- get` or `-- post` picks the request; every answer is tallied by status and
# answering instance (X-Echo-Instance; "proxy" when the proxy answered by itself).
cat >"$OUT/soak.lua" <<'EOF'
counts = {}
local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    if args[1] == "post" then
        wrk.method = "POST"
        wrk.headers["Content-Type"] = "application/json"
        wrk.body = '{"soak":true,"payload":"0123456789abcdef0123456789abcdef"}'
    end
end

function response(status, headers, body)
    local key = status .. " " .. (headers["X-Echo-Instance"] or "proxy")
    counts[key] = (counts[key] or 0) + 1
end

function done(summary, latency, requests)
    for _, thread in ipairs(threads) do
        for key, n in pairs(thread:get("counts")) do
            io.write(string.format("TALLY %s %d\n", key, n))
        end
    end
end
EOF

# run_wrk NAME SECONDS CONNS PATH MODE: wrk in the background, output in $OUT/wrk-NAME.txt.
run_wrk() {
    spawn "wrk-$1" "$OUT/wrk-$1.txt" wrk -t1 -c"$3" -d"$2"s --timeout "$WRK_TIMEOUT" --latency \
        -s "$OUT/soak.lua" "http://127.0.0.1:$PROXY_PORT$4" -- "$5"
}

echo "soak: warming up for ${WARMUP_SECS}s"
run_wrk warmup-get "$WARMUP_SECS" "$GET_CONNS" /control get
run_wrk warmup-post "$WARMUP_SECS" "$POST_CONNS" / post
for name in wrk-warmup-get wrk-warmup-post; do
    wait "${PID[$name]}" || die "$name failed; see $OUT/$name.txt"
    forget "$name"
done
grep -q '^TALLY 200 ' "$OUT/wrk-warmup-get.txt" ||
    die "the warm-up got no 200 answers; see $OUT/wrk-warmup-get.txt"

# ---------------------------------------------------------------------------------------------
# The run. One loop keeps the clock: faults and samples happen at fixed offsets from T0.

T0_MS=$((${EPOCHREALTIME/./} / 1000))
sample 0 start
run_wrk get "$duration" "$GET_CONNS" /control get
run_wrk post "$duration" "$POST_CONNS" / post
if [ "$slowloris" -gt 0 ]; then
    spawn slowloris "$OUT/slowloris.log" python3 "$HELPER" slowloris --port "$PROXY_PORT" \
        --conns "$slowloris" --duration "$duration" --out "$OUT/slowloris.json"
else
    echo '{"conns": 0}' >"$OUT/slowloris.json"
fi

# Every event as "milliseconds action", in time order. Faults stop early enough that the last
# restart and the last return to health finish before the load ends.
events=()
for ((c = 0; c * 10 + KILL_AT + 5 <= duration; c++)); do
    events+=("$(((c * 10 + KILL_AT) * 1000)) kill")
    events+=("$(((c * 10 + KILL_AT) * 1000 + RESTART_AFTER_MS)) restart")
done
for ((c = 0; c * 10 + UNHEALTHY_AT + UNHEALTHY_FOR + 2 <= duration; c++)); do
    events+=("$(((c * 10 + UNHEALTHY_AT) * 1000)) unhealthy")
    events+=("$(((c * 10 + UNHEALTHY_AT + UNHEALTHY_FOR) * 1000)) healthy")
done
for ((t = 10; t < duration; t += 10)); do
    case $t in
    "$REF_T" | "$MID_T" | "$END_T") ;; # sampled below under their own label
    *) events+=("$((t * 1000)) sample:$t:every10s") ;;
    esac
done
events+=("$((REF_T * 1000)) sample:$REF_T:ref" "$((MID_T * 1000)) sample:$MID_T:mid"
    "$((END_T * 1000)) sample:$END_T:end")
mapfile -t events < <(printf '%s\n' "${events[@]}" | sort -n -k1,1)

for ev in "${events[@]}"; do
    at=${ev%% *}
    what=${ev#* }
    while [ "$(now_ms)" -lt "$at" ]; do sleep 0.05; done
    case $what in
    kill) kill_s1 ;;
    restart) restart_s1 ;;
    unhealthy) set_health false ;;
    healthy) set_health true ;;
    sample:*)
        IFS=: read -r _ t label <<<"$what"
        sample "$t" "$label"
        ;;
    esac
done

# ---------------------------------------------------------------------------------------------
# Stop the load, let the proxy settle, sample once more, report.

# Backend 1 must be up and backend 2 healthy whatever happened above, so the end state is clean.
alive "${PID[s1]:-0}" || restart_s1
curl -s -o /dev/null --max-time 2 -X POST -d '{"healthy":true}' \
    "http://127.0.0.1:${PORTS[1]}/control" || true

echo "soak: load ends at t=${duration}s; waiting for wrk and the slowloris holder"
limit=$(((duration + 20) * 1000))
for name in wrk-get wrk-post slowloris; do
    [ -n "${PID[$name]:-}" ] || continue
    while alive "${PID[$name]}" && [ "$(now_ms)" -lt "$limit" ]; do sleep 0.2; done
    if alive "${PID[$name]}"; then
        echo "soak: $name still running at t=$(($(now_ms) / 1000))s; stopping it" >&2
        stop_pid "${PID[$name]}"
    else
        wait "${PID[$name]}" || echo "soak: $name exited with status $?" >&2
    fi
    forget "$name"
done

# Every client is gone: wait (bounded) until the proxy has closed their sockets and the
# backends' keep-alive timeout (10 s) has closed the idle pooled connections.
python3 "$HELPER" settle --pid "${PID[proxy]}" --port "$PROXY_PORT" \
    --backends "$(IFS=,; echo "${PORTS[*]}")" --samples "$SAMPLES" --timeout "$SETTLE_SECS" \
    --out "$OUT/settle.txt" | sed "s/^/soak: /"
sample "$(($(now_ms) / 1000))" final

alive "${PID[proxy]}" || echo "soak: rr-proxy is no longer running; see $OUT/proxy.log" >&2

set +e
python3 "$HELPER" report --dir "$OUT" --duration "$duration" --ref-t "$REF_T" \
    --conns "$slowloris" --fd-margin "$FD_MARGIN" --pool-bound $((POOL_SIZE * 3 + 3)) \
    --port "$PROXY_PORT" --backends "$(IFS=,; echo "${PORTS[*]}")" |
    tee "$OUT/report.txt"
rc=${PIPESTATUS[0]}
set -e
if ! alive "${PID[proxy]}"; then
    echo "soak: FAIL: rr-proxy died during the run" | tee -a "$OUT/report.txt"
    rc=1
fi
exit "$rc"
