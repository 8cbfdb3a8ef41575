#!/usr/bin/env bash
# Side-by-side benchmark: rr-proxy against nginx and HAProxy in front of the same rr-echo
# backends, plus a direct run against one backend as the ceiling.
#
# Usage: scripts/bench.sh [all|echo] [--quick] [--rounds N] [--duration S] [--scenarios LIST]
#
#   all          (default) scenarios a-h and the echo comparison
#   echo         only the echo comparison: rr-echo vs nginx `return 200`, GET /healthz, wrk -t1 -c50
#   --quick      1 round of 2 s per run, no warm-up (the whole default run in under two minutes)
#   --rounds N   rounds per scenario (default 3); each round runs every target once, and the
#                order alternates (A B C D, then D C B A, ...) so drift does not favour one target
#   --duration S seconds per wrk run (default 5)
#   --scenarios  comma-separated subset of a,b,c,d,e,f,g,h,echo
#
# Scenarios (wrk -t1; the proxy under test on core 0, wrk and the backends on core 1):
#   a  GET /healthz, 50 connections          d  GET /healthz with `Connection: close`, 50 conns
#   b  GET /healthz, 200 connections         e  1 KiB JSON POST, echoed back, 50 connections
#   c  64 KiB JSON POST, echoed back, 50     f  L4: rr-proxy --mode tcp vs HAProxy mode tcp
#   g  idle: memory per idle keep-alive client connection (10 000 of them), not wrk; see below
#   h  GET /healthz, 1000 connections: more busy clients than a small backend pool holds
#
# Per run it records req/s, p50/p99 latency, errors (non-2xx plus socket errors), the proxy's CPU
# time per request (utime+stime from /proc/PID/stat before and after, over every process of the
# target: nginx master plus worker) with the share of it spent in the kernel (stime), and its
# peak RSS during the run (VmHWM, reset before each run). It prints per scenario the median per target and the ratios rr-proxy ÷ best peer and
# rr-proxy ÷ direct. Results are kept in run/bench/<timestamp>/.
#
# Scenario g (issue #6: at most 8 KiB resident per idle connection) runs on fresh instances of
# rr-proxy, nginx and HAProxy of its own, started for it with room for 12 000 clients and a 10 min
# keep-alive timeout, so the traffic of a-f neither pre-grows their heaps nor changes a-f's
# configs. Per target, scripts/idle_conns.py (on the load core) opens 1 000 connections with one
# GET /healthz each and closes them (a warm-up: pools a burst fills are not charged to idle
# connections), reads VmRSS ("before"; nginx: master + worker summed), opens 10 000 connections
# (100 in progress at once) with one keep-alive GET /healthz each, reads every answer, reads
# VmRSS again, checks none was closed, and closes them. It reports (idle - before) / 10 000 bytes
# per connection, the verdict against 8 KiB and the ratio to nginx, once per target and run
# (a second pass on the same process reuses freed memory and reads near zero). nginx allocates
# and touches its worker_connections slots (about 0.4 KiB each) at start, so they sit in its
# "before", not in its per-connection figure.
#
# Needs wrk, nginx, haproxy and python3; installs missing ones with apt-get. Everything it starts
# is stopped on exit. If rr-proxy is not built yet (its --help fails), the rr-proxy targets are
# skipped with a note and the rest still runs.
#
# Environment: PROXY_CPU (default 0) and LOAD_CPU (default 1) choose the cores; RR_BIN_DIR uses
# the rr-proxy and rr-echo binaries in that directory and skips `cargo build --release`;
# BENCH_PORT_BASE (default 18080) moves every port the benchmark uses.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
export PATH="$PATH:/usr/sbin:/sbin"

# ---------------------------------------------------------------------------------------------
# Fixed layout. Ports are away from start-all.sh's 8080-8083 so both can run at once.

# BENCH_PORT_BASE moves the whole block (default 18080: rr-proxy 18080, backends 18081-18083);
# keep it below the ephemeral range (ip_local_port_range), where client sockets may hold a port.
readonly BASE=${BENCH_PORT_BASE:-18080}
readonly BACKEND_PORTS=($((BASE + 1)) $((BASE + 2)) $((BASE + 3)))
readonly PORT_RR_PROXY=$BASE
readonly PORT_RR_PROXY_TCP=$((BASE + 8))
readonly PORT_NGINX=$((BASE + 10))
readonly PORT_HAPROXY=$((BASE + 11))
readonly PORT_HAPROXY_TCP=$((BASE + 12))
readonly PORT_NGINX_STATIC=$((BASE + 13))
# Scenario g's own instances.
readonly PORT_RR_PROXY_IDLE=$((BASE + 14))
readonly PORT_NGINX_IDLE=$((BASE + 15))
readonly PORT_HAPROXY_IDLE=$((BASE + 16))
# The rr-echo under test in the echo comparison: its own instance, on the proxy core.
readonly PORT_ECHO_SUBJECT=$((BASE + 4))
# RR_BIN_DIR benchmarks prebuilt binaries (say, an older build kept aside) instead of building.
readonly BIN=${RR_BIN_DIR:-target/release}
readonly REPORT=scripts/bench_report.py
readonly IDLE=scripts/idle_conns.py
# Scenario g: idle connections measured, the limit per connection, and the room every proxy gets.
readonly IDLE_CONNS=10000
readonly IDLE_LIMIT_BYTES=8192
readonly IDLE_ROOM=12000
readonly IDLE_TIMEOUT_S=600
# How long a started process may take to accept connections.
readonly READY_SECS=10

usage() {
    sed -n '/^# Usage:/,/^set -euo/{/^#/{s/^# \{0,1\}//;p}}' "$0"
    exit 0
}

die() {
    echo "bench: $*" >&2
    exit 1
}

mode=all
quick=0
rounds=
duration=
only=
while [ $# -gt 0 ]; do
    case $1 in
    all | echo) mode=$1 ;;
    --quick) quick=1 ;;
    --rounds) rounds=${2:?--rounds needs a value}; shift ;;
    --rounds=*) rounds=${1#*=} ;;
    --duration) duration=${2:?--duration needs a value}; shift ;;
    --duration=*) duration=${1#*=} ;;
    --scenarios) only=${2:?--scenarios needs a value}; shift ;;
    --scenarios=*) only=${1#*=} ;;
    -h | --help) usage ;;
    *) echo "bench: unknown argument '$1' (see scripts/bench.sh --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ "$quick" = 1 ]; then
    ROUNDS=${rounds:-1} DURATION=${duration:-2} WARMUP=0
else
    ROUNDS=${rounds:-3} DURATION=${duration:-5} WARMUP=1
fi
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer"
[[ "$DURATION" =~ ^[1-9][0-9]*$ ]] || die "--duration must be a positive number of seconds"
if [ "$mode" = echo ]; then
    only=${only:-echo}
fi
only=${only:-a,b,c,d,e,f,g,h,echo}

wanted() { [[ ",$only," == *",$1,"* ]]; }

# ---------------------------------------------------------------------------------------------
# Tools

ensure_tools() {
    local need=() sudo=
    command -v wrk >/dev/null || need+=(wrk)
    command -v nginx >/dev/null || need+=(nginx)
    if [ "$mode" = all ] && ! command -v haproxy >/dev/null; then need+=(haproxy); fi
    command -v python3 >/dev/null || need+=(python3)
    command -v taskset >/dev/null || need+=(util-linux)
    [ "${#need[@]}" -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || die "missing ${need[*]} and not root; install them first"
        sudo=sudo
    fi
    echo "bench: installing ${need[*]}"
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y "${need[@]}"
}

# ready_bin BIN: true if BIN runs and its --help succeeds (placeholders print "not yet", exit 1).
ready_bin() {
    local out
    [ -x "$1" ] || return 1
    out=$("$1" --help 2>&1 </dev/null) || return 1
    ! grep -qi 'not yet' <<<"$out"
}

ensure_tools
if [ -z "${RR_BIN_DIR:-}" ]; then
    echo "bench: building release binaries"
    cargo build --release
fi
ready_bin "$BIN/rr-echo" || die "$BIN/rr-echo --help failed; rr-echo is needed as the backend"
have_proxy=0
have_tcp=0
if ready_bin "$BIN/rr-proxy"; then
    have_proxy=1
    # Captured first: `--help | grep -q` under pipefail fails whenever grep exits before the
    # writer is done (EPIPE), which would skip (f) by chance.
    proxy_help=$("$BIN/rr-proxy" --help 2>&1 </dev/null) || true
    if grep -q -- '--mode' <<<"$proxy_help"; then have_tcp=1; fi
else
    echo "bench: note: $BIN/rr-proxy --help failed (not built yet?); skipping the rr-proxy targets"
fi

read -r load1 _ </proc/loadavg
if awk -v l="$load1" 'BEGIN { exit !(l > 1.0) }'; then
    echo "bench: warning: load average is $load1 before starting; other work will skew the numbers"
fi

CLK_TCK=$(getconf CLK_TCK)
PIN=1
if [ "$(nproc)" -lt 2 ] || ! command -v taskset >/dev/null; then
    echo "bench: note: fewer than 2 cores or no taskset; running unpinned, numbers are noisier"
    PIN=0
fi
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# rr-proxy logs through env_logger; keep per-request logging out of the measurement.
export RUST_LOG="${RUST_LOG:-warn}"

# pin CPU CMD...: runs CMD on core CPU (exec, so the pid is CMD's).
pin() {
    local cpu=$1
    shift
    if [ "$PIN" = 1 ]; then exec taskset -c "$cpu" "$@"; else exec "$@"; fi
}

# ---------------------------------------------------------------------------------------------
# Processes. Every started pid is remembered and stopped on exit, whatever the exit path.

WORK=$(mktemp -d /tmp/rr-bench.XXXXXX)
chmod 755 "$WORK" # nginx workers run as nobody and must reach their temp dirs
STAMP=$(date +%Y%m%d-%H%M%S)
OUT="$ROOT/run/bench/$STAMP"
mkdir -p "$OUT"
RESULTS="$OUT/results.tsv"
SCENARIOS="$OUT/scenarios.tsv"
: >"$RESULTS"
: >"$SCENARIOS"

declare -A PID=()   # name -> pid of the process we started
declare -A LOG=()   # name -> its log
started=()

cleanup() {
    local rc=$? name
    trap - EXIT INT TERM
    # TERM them all first, so they wind down together; then stop_pid waits for each.
    for name in "${started[@]}"; do kill -TERM "${PID[$name]}" 2>/dev/null || true; done
    for name in "${started[@]}"; do stop_pid "${PID[$name]}"; done
    if [ "$rc" -ne 0 ]; then
        cp "$WORK"/*.log "$OUT"/ 2>/dev/null || true
        echo "bench: failed (exit $rc); logs kept in $OUT" >&2
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# haproxy_servers: the backends as HAProxy server lines, checked like the others' probes.
haproxy_servers() {
    local n=0 p
    for p in "${BACKEND_PORTS[@]}"; do
        n=$((n + 1))
        echo "    server echo-$n 127.0.0.1:$p check inter 2s"
    done
}

port_answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start NAME CPU PORT CMD...: starts CMD pinned to CPU, waits until PORT accepts connections.
start() {
    local name=$1 cpu=$2 port=$3 i
    shift 3
    port_answers "$port" && die "port $port is already in use; cannot start $name"
    LOG[$name]="$WORK/$name.log"
    (pin "$cpu" "$@") >"${LOG[$name]}" 2>&1 </dev/null &
    PID[$name]=$!
    started+=("$name")
    for ((i = 0; i < READY_SECS * 10; i++)); do
        if ! alive "${PID[$name]}"; then
            tail -n 20 "${LOG[$name]}" | sed 's/^/    /' >&2
            die "$name exited during startup"
        fi
        port_answers "$port" && return 0
        sleep 0.1
    done
    die "$name did not accept connections on port $port within ${READY_SECS}s"
}

# children PID: the pids whose parent is PID.
children() {
    local f stat
    for f in /proc/[0-9]*/stat; do
        stat=$(cat "$f" 2>/dev/null) || continue
        stat=${stat##*) }
        read -r _ ppid _ <<<"$stat"
        [ "$ppid" = "$1" ] && { f=${f#/proc/}; echo "${f%/stat}"; }
    done
    return 0
}

# http_ok PORT PATH: true if one GET answers 200.
http_ok() {
    local line fd
    exec {fd}<>"/dev/tcp/127.0.0.1/$1" || return 1
    printf 'GET %s HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n' "$2" >&"$fd"
    IFS= read -r -t 3 line <&"$fd" || true
    exec {fd}>&-
    [[ "$line" == HTTP/1.?" 200"* ]]
}

# ---------------------------------------------------------------------------------------------
# Configurations, all inside $WORK.

backend_list=$(printf '127.0.0.1:%s,' "${BACKEND_PORTS[@]}")
backend_list=${backend_list%,}

# write_nginx_conf NAME PORT STATIC_PORT WORKER_CONNECTIONS KEEPALIVE_TIMEOUT: writes
# $WORK/NAME.conf (prefix $WORK/NAME/); STATIC_PORT "-" leaves out the `return 200` server.
write_nginx_conf() {
    local name=$1 port=$2 static_port=$3 worker_conns=$4 keepalive=$5 p
    mkdir -p "$WORK/$name"
    {
        cat <<EOF
worker_processes 1;
daemon off;
master_process on;
pid $WORK/$name.pid;
error_log $WORK/$name-error.log warn;
events { worker_connections $worker_conns; }
http {
    access_log off;
    client_body_temp_path $WORK/$name/client_body;
    proxy_temp_path $WORK/$name/proxy;
    fastcgi_temp_path $WORK/$name/fastcgi;
    uwsgi_temp_path $WORK/$name/uwsgi;
    scgi_temp_path $WORK/$name/scgi;
    # The default of 1000 requests per client connection would add reconnects nobody else pays.
    keepalive_requests 1000000;
    keepalive_timeout $keepalive;
    # Keep the 64 KiB request and response bodies in memory, never in temp files.
    client_body_buffer_size 128k;
    client_max_body_size 1m;
    proxy_buffer_size 16k;
    proxy_buffers 8 16k;
    proxy_busy_buffers_size 32k;
    proxy_max_temp_file_size 0;

    upstream rr_echo {
EOF
        for p in "${BACKEND_PORTS[@]}"; do echo "        server 127.0.0.1:$p;"; done
        cat <<EOF
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen 127.0.0.1:$port backlog=4096;
        location / {
            proxy_pass http://rr_echo;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
EOF
        [ "$static_port" = - ] || cat <<EOF
    # The echo comparison: nginx answering by itself, with the body rr-echo's /healthz sends.
    server {
        listen 127.0.0.1:$static_port backlog=4096;
        location / {
            default_type application/json;
            return 200 '{"status":"ok"}';
        }
    }
EOF
        echo "}"
    } >"$WORK/$name.conf"
}

# write_haproxy_conf NAME MAXCONN IDLE_TIMEOUT: writes $WORK/NAME.cfg. IDLE_TIMEOUT is both
# `timeout client` and `timeout http-keep-alive`. Only NAME "haproxy" gets the L4 listener.
write_haproxy_conf() {
    local name=$1 maxconn=$2 idle=$3 port=$PORT_HAPROXY p n
    [ "$name" = haproxy ] || port=$PORT_HAPROXY_IDLE
    {
        cat <<EOF
global
    nbthread 1
    maxconn $maxconn
    pidfile $WORK/$name.pid
EOF
        # HAProxy wants two descriptors per connection (client and server side) and refuses to
        # start when the limit is lower; idle clients hold no server side, so one is enough.
        if [ "$((maxconn * 2 + 100))" -gt "$(ulimit -n)" ]; then
            echo "    no strict-limits"
        fi
        cat <<EOF

defaults
    timeout connect 5s
    timeout client $idle
    timeout server 30s
    timeout http-keep-alive $idle
    timeout http-request 10s
    maxconn $maxconn

frontend http_in
    mode http
    bind 127.0.0.1:$port
    option http-keep-alive
    default_backend rr_echo

backend rr_echo
    mode http
    balance roundrobin
    option http-keep-alive
    http-reuse always
    option httpchk GET /healthz
EOF
        haproxy_servers
        if [ "$name" = haproxy ]; then
            cat <<EOF

listen tcp_in
    mode tcp
    bind 127.0.0.1:$PORT_HAPROXY_TCP
    balance roundrobin
EOF
            haproxy_servers
        fi
    } >"$WORK/$name.cfg"
}

write_lua() {
    local name=$1 bytes=$2
    python3 "$REPORT" body --bytes "$bytes" --out "$WORK/$name.json"
    cat >"$WORK/$name.lua" <<EOF
-- POST a ${bytes}-byte JSON document; rr-echo sends it back.
local f = assert(io.open("$WORK/$name.json", "rb"))
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = f:read("*a")
f:close()
EOF
}

# ---------------------------------------------------------------------------------------------
# Measurement

# cpu_ticks PID...: utime+stime, then stime alone, summed over the pids, or "-" if one is gone.
cpu_ticks() {
    local pid stat total=0 sys=0 f
    for pid; do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || { echo -; return; }
        read -ra f <<<"${stat##*) }"
        # After the comm field: f[0] is field 3 (state), so utime (14) is f[11], stime (15) f[12].
        total=$((total + f[11] + f[12]))
        sys=$((sys + f[12]))
    done
    echo "$total $sys"
}

# rss_kb PID...: VmHWM summed over the pids, or "-".
rss_kb() {
    local pid kb total=0
    for pid; do
        kb=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || true
        [ -n "$kb" ] || { echo -; return; }
        total=$((total + kb))
    done
    echo "$total"
}

# reset_peak PID...: restarts the VmHWM count so it covers only the coming run.
reset_peak() {
    local pid
    for pid; do echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true; done
}

# Targets: label -> "port pid pid ...". Set up once the processes run.
declare -A TARGET=()

# run_wrk OUTFILE CONNS PORT PATH SECS EXTRA...: one wrk run on the load core.
run_wrk() {
    local out=$1 conns=$2 port=$3 path=$4 secs=$5
    shift 5
    (pin "$LOAD_CPU" wrk -t1 -c"$conns" -d"${secs}s" --latency "$@" \
        "http://127.0.0.1:$port$path") >"$out" 2>&1 </dev/null || true
}

# scenario ID TITLE SUBJECT PEERS DIRECT CONNS PATH TARGETS -- WRK_EXTRA...
# Runs every round of one scenario and prints its table.
scenario() {
    local id=$1 title=$2 subject=$3 peers=$4 direct=$5 conns=$6 path=$7
    local -a targets=() extra=() order=()
    shift 7
    while [ $# -gt 0 ] && [ "$1" != -- ]; do targets+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    extra=("$@")
    printf '%s\t%s\t%s\t%s\t%s\n' "$id" "$title" "$subject" "$peers" "$direct" >>"$SCENARIOS"
    echo
    echo "bench: ($id) $title"

    local t spec port r i note before after rss out
    local -a pids
    for t in "${targets[@]}"; do
        spec=${TARGET[$t]}
        port=${spec%% *}
        if ! http_ok "$port" /healthz; then
            die "($id) $t on port $port does not answer GET /healthz with 200"
        fi
        if [ "$WARMUP" -gt 0 ]; then
            run_wrk "$WORK/warmup.out" "$conns" "$port" "$path" "$WARMUP" "${extra[@]}"
        fi
    done

    for ((r = 1; r <= ROUNDS; r++)); do
        order=()
        if ((r % 2 == 1)); then
            order=("${targets[@]}")
        else
            for ((i = ${#targets[@]} - 1; i >= 0; i--)); do order+=("${targets[i]}"); done
        fi
        for t in "${order[@]}"; do
            read -ra pids <<<"${TARGET[$t]}"
            port=${pids[0]}
            pids=("${pids[@]:1}")
            out="$WORK/$id-$t-$r.out"
            note=
            reset_peak "${pids[@]}"
            read -r before before_sys <<<"$(cpu_ticks "${pids[@]}")"
            run_wrk "$out" "$conns" "$port" "$path" "$DURATION" "${extra[@]}"
            read -r after after_sys <<<"$(cpu_ticks "${pids[@]}")"
            rss=$(rss_kb "${pids[@]}")
            local -a cpu_args=()
            if [ "${#pids[@]}" -gt 0 ] && [ "$before" != - ] && [ "$after" != - ]; then
                cpu_args=(--cpu-ticks "$((after - before))" --sys-ticks "$((after_sys - before_sys))"
                    --clk-tck "$CLK_TCK")
            fi
            [ "${#pids[@]}" -gt 0 ] && [ "$rss" != - ] && cpu_args+=(--rss-kb "$rss")
            for pid in "${pids[@]}"; do alive "$pid" || note="process $pid died"; done
            python3 "$REPORT" row --scenario "$id" --target "$t" --round "$r" --wrk "$out" \
                ${note:+--note "$note"} "${cpu_args[@]}" >>"$RESULTS"
            [ -z "$note" ] || die "($id) $t: $note; see ${LOG[*]}"
            sleep 0.3
        done
    done
    python3 "$REPORT" table --results "$RESULTS" --scenarios "$SCENARIOS" --only "$id"
}

# ---------------------------------------------------------------------------------------------
# Start everything the chosen scenarios need.

need_backends=0 need_haproxy=0
for s in a b c d e f h; do wanted "$s" && need_backends=1 need_haproxy=1; done
[ "$mode" = echo ] && need_haproxy=0
# Scenario g starts its own proxies, but they relay to the same backends.
wanted g && need_backends=1

write_nginx_conf nginx "$PORT_NGINX" "$PORT_NGINX_STATIC" 8192 60s
nginx -t -q -e "$WORK/nginx-error.log" -p "$WORK/nginx/" -c "$WORK/nginx.conf" ||
    die "nginx rejected the generated config ($WORK/nginx.conf)"
if [ "$need_haproxy" = 1 ]; then
    write_haproxy_conf haproxy 4096 30s
    haproxy -c -q -f "$WORK/haproxy.cfg" || die "haproxy rejected the generated config"
fi
write_lua post-64k 65536
write_lua post-1k 1024

echo "bench: starting processes (proxies on core $PROXY_CPU, wrk and backends on core $LOAD_CPU)"
if [ "$need_backends" = 1 ]; then
    n=0
    for p in "${BACKEND_PORTS[@]}"; do
        n=$((n + 1))
        start "echo-$n" "$LOAD_CPU" "$p" "$BIN/rr-echo" --port "$p" --name "echo-$n"
    done
    TARGET[direct]="${BACKEND_PORTS[0]}"
fi
if wanted echo; then
    start rr-echo "$PROXY_CPU" "$PORT_ECHO_SUBJECT" \
        "$BIN/rr-echo" --port "$PORT_ECHO_SUBJECT" --name echo-subject
fi
# start_nginx NAME PORT: starts nginx with $WORK/NAME.conf and sets NGINX_PIDS[NAME] to
# "master worker...".
declare -A NGINX_PIDS=()
start_nginx() {
    local name=$1 port=$2 workers='' i
    start "$name" "$PROXY_CPU" "$port" \
        nginx -e "$WORK/$name-error.log" -p "$WORK/$name/" -c "$WORK/$name.conf"
    # The master binds before it forks the worker, so the port can answer before the worker
    # exists.
    for ((i = 0; i < READY_SECS * 10; i++)); do
        workers=$(children "${PID[$name]}" | tr '\n' ' ')
        [ -n "$workers" ] && break
        sleep 0.1
    done
    [ -n "$workers" ] || die "$name started no worker; see $WORK/$name-error.log"
    NGINX_PIDS[$name]="${PID[$name]} ${workers% }"
}

start_nginx nginx "$PORT_NGINX"
nginx_pids=${NGINX_PIDS[nginx]}
if [ "$need_haproxy" = 1 ]; then
    start haproxy "$PROXY_CPU" "$PORT_HAPROXY" haproxy -db -f "$WORK/haproxy.cfg"
fi
if [ "$need_haproxy" = 1 ] && [ "$have_proxy" = 1 ]; then
    start rr-proxy "$PROXY_CPU" "$PORT_RR_PROXY" \
        "$BIN/rr-proxy" --listen "127.0.0.1:$PORT_RR_PROXY" --backends "$backend_list"
    TARGET[rr-proxy]="$PORT_RR_PROXY ${PID[rr-proxy]}"
fi
if wanted f && [ "$have_tcp" = 1 ]; then
    start rr-proxy-tcp "$PROXY_CPU" "$PORT_RR_PROXY_TCP" "$BIN/rr-proxy" --mode tcp \
        --listen "127.0.0.1:$PORT_RR_PROXY_TCP" --backends "$backend_list"
fi
TARGET[nginx]="$PORT_NGINX $nginx_pids"
[ "$need_haproxy" = 1 ] && TARGET[haproxy]="$PORT_HAPROXY ${PID[haproxy]}"
# Give HAProxy's first health checks time to pass before any traffic.
[ "$need_haproxy" = 1 ] && sleep 1

http_targets=(nginx haproxy direct)
[ "$have_proxy" = 1 ] && http_targets=(rr-proxy "${http_targets[@]}")
peers=nginx,haproxy
echo "bench: $ROUNDS round(s) of ${DURATION}s per target and scenario; results in $OUT"

wanted a && scenario a "GET /healthz, 50 connections" rr-proxy "$peers" direct 50 /healthz \
    "${http_targets[@]}"
wanted b && scenario b "GET /healthz, 200 connections" rr-proxy "$peers" direct 200 /healthz \
    "${http_targets[@]}"
wanted c && scenario c "64 KiB JSON POST echoed back (64 KiB each way), 50 connections" \
    rr-proxy "$peers" direct 50 / "${http_targets[@]}" -- -s "$WORK/post-64k.lua"
wanted d && scenario d "GET /healthz with Connection: close, 50 connections" \
    rr-proxy "$peers" direct 50 /healthz "${http_targets[@]}" -- -H 'Connection: close'
wanted e && scenario e "1 KiB JSON POST echoed back, 50 connections" \
    rr-proxy "$peers" direct 50 / "${http_targets[@]}" -- -s "$WORK/post-1k.lua"
wanted h && scenario h "GET /healthz, 1000 connections" rr-proxy "$peers" direct 1000 /healthz \
    "${http_targets[@]}"
if wanted f; then
    if [ "$have_tcp" = 1 ]; then
        # Same labels as the HTTP scenarios so the table reads alike; other ports and processes.
        TARGET[rr-proxy]="$PORT_RR_PROXY_TCP ${PID[rr-proxy-tcp]}"
        TARGET[haproxy]="$PORT_HAPROXY_TCP ${PID[haproxy]}"
        scenario f "L4 (TCP mode): GET /healthz through a byte relay, 50 connections" \
            rr-proxy haproxy direct 50 /healthz rr-proxy haproxy direct
    else
        echo
        echo "bench: (f) skipped: rr-proxy --help does not mention --mode (no TCP mode yet)"
    fi
fi
if wanted echo; then
    TARGET[rr-echo]="$PORT_ECHO_SUBJECT ${PID[rr-echo]}"
    TARGET[nginx]="$PORT_NGINX_STATIC $nginx_pids"
    scenario echo "rr-echo vs nginx 'return 200', GET /healthz, wrk -t1 -c50" \
        rr-echo nginx - 50 /healthz rr-echo nginx
fi

# ---------------------------------------------------------------------------------------------
# Scenario g: memory per idle keep-alive connection. Last, so that the sockets it leaves in
# TIME_WAIT cannot touch the throughput runs. Fresh processes of its own (see the header).

IDLE_RESULTS="$OUT/idle.tsv"
: >"$IDLE_RESULTS"

# idle_run LABEL PORT PID...: one measurement of one target, appended to $IDLE_RESULTS.
idle_run() {
    local label=$1 port=$2 pid
    shift 2
    http_ok "$port" /healthz || die "(g) $label on port $port does not answer GET /healthz with 200"
    local pids
    pids=$(tr ' ' ',' <<<"$*")
    if ! (pin "$LOAD_CPU" python3 "$IDLE" measure --port "$port" --pids "$pids" \
        --target "$label" --conns "$IDLE_CONNS" --deadline 120) >>"$IDLE_RESULTS" </dev/null; then
        echo "bench: (g) $label: not every connection was answered and kept (see the table)" >&2
    fi
    for pid; do alive "$pid" || die "(g) $label: process $pid died; see ${LOG[*]}"; done
}

if wanted g; then
    echo
    echo "bench: (g) idle: resident memory per idle keep-alive connection," \
        "$IDLE_CONNS connections per target"
    nofile=$(ulimit -n)
    if [ "$nofile" -lt $((IDLE_CONNS + 200)) ]; then
        echo "bench: (g) skipped: the open-file limit ($nofile) is below $((IDLE_CONNS + 200))"
    else
        write_nginx_conf nginx-idle "$PORT_NGINX_IDLE" - "$IDLE_ROOM" "${IDLE_TIMEOUT_S}s"
        nginx -t -q -e "$WORK/nginx-idle-error.log" -p "$WORK/nginx-idle/" \
            -c "$WORK/nginx-idle.conf" || die "nginx rejected $WORK/nginx-idle.conf"
        write_haproxy_conf haproxy-idle "$IDLE_ROOM" "${IDLE_TIMEOUT_S}s"
        haproxy -c -q -f "$WORK/haproxy-idle.cfg" || die "haproxy rejected $WORK/haproxy-idle.cfg"
        if grep -q 'no strict-limits' "$WORK/haproxy-idle.cfg"; then
            echo "bench: (g) note: open-file limit $nofile < 2 x maxconn $IDLE_ROOM; HAProxy runs" \
                "with 'no strict-limits' (idle clients hold no server-side descriptor)"
        fi
        idle_targets=()
        if [ "$have_proxy" = 1 ]; then
            start rr-proxy-idle "$PROXY_CPU" "$PORT_RR_PROXY_IDLE" "$BIN/rr-proxy" \
                --listen "127.0.0.1:$PORT_RR_PROXY_IDLE" --backends "$backend_list" \
                --max-conns "$IDLE_ROOM" --idle-timeout "${IDLE_TIMEOUT_S}s"
            idle_targets+=(rr-proxy)
        fi
        start_nginx nginx-idle "$PORT_NGINX_IDLE"
        read -ra nginx_idle_pids <<<"${NGINX_PIDS[nginx-idle]}"
        start haproxy-idle "$PROXY_CPU" "$PORT_HAPROXY_IDLE" haproxy -db -f "$WORK/haproxy-idle.cfg"
        idle_targets+=(nginx haproxy)
        sleep 1 # HAProxy's first health checks
        for t in "${idle_targets[@]}"; do
            case $t in
            rr-proxy) idle_run rr-proxy "$PORT_RR_PROXY_IDLE" "${PID[rr-proxy-idle]}" ;;
            nginx) idle_run nginx "$PORT_NGINX_IDLE" "${nginx_idle_pids[@]}" ;;
            haproxy) idle_run haproxy "$PORT_HAPROXY_IDLE" "${PID[haproxy-idle]}" ;;
            esac
        done
        echo
        echo "(g) idle: $IDLE_CONNS keep-alive connections after one GET /healthz each"
        python3 "$IDLE" table --results "$IDLE_RESULTS" --limit "$IDLE_LIMIT_BYTES"
    fi
fi

python3 "$REPORT" table --results "$RESULTS" --scenarios "$SCENARIOS" >"$OUT/report.txt"
python3 "$REPORT" table --results "$RESULTS" --scenarios "$SCENARIOS" --summary-only
if [ -s "$IDLE_RESULTS" ]; then
    {
        echo
        echo "(g) idle: $IDLE_CONNS keep-alive connections after one GET /healthz each"
        python3 "$IDLE" table --results "$IDLE_RESULTS" --limit "$IDLE_LIMIT_BYTES"
    } >>"$OUT/report.txt"
    python3 "$IDLE" table --results "$IDLE_RESULTS" --limit "$IDLE_LIMIT_BYTES" --summary
fi
echo
echo "bench: all tables in $OUT/report.txt"
