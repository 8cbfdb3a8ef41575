#!/usr/bin/env bash
# Starts a local demo stack: three rr-echo backends and rr-proxy in front of them.
#
# Builds in release mode, starts each process in the background with its log in run/NAME.log and
# its pid in run/NAME.pid, and waits (bounded) until each one says `listening on ADDR` or its
# port answers. If a port is taken or a process dies on the way up, it says which and stops
# everything it started. Stop the stack with scripts/stop-all.sh.
#
# Environment:
#   PROXY_PORT  port rr-proxy listens on, on 0.0.0.0 (default 8080)
#   ECHO_PORTS  comma- or space-separated backend ports on 127.0.0.1 (default 8081,8082,8083)
#   READY_SECS  how long to wait for each process to become ready (default 10)
#   RR_BIN_DIR  run the rr-echo and rr-proxy binaries in this directory; skips the build
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PROXY_PORT="${PROXY_PORT:-8080}"
ECHO_PORTS="${ECHO_PORTS:-8081,8082,8083}"
READY_SECS="${READY_SECS:-10}"
RUN_DIR=run
BIN_DIR=${RR_BIN_DIR:-target/release}

read -ra echo_ports <<<"${ECHO_PORTS//,/ }"
for port in "$PROXY_PORT" "${echo_ports[@]}"; do
    if ! [[ "$port" =~ ^[0-9]+$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
        echo "start-all: bad port '$port' (check PROXY_PORT and ECHO_PORTS)" >&2
        exit 2
    fi
done
if [ "${#echo_ports[@]}" -eq 0 ]; then
    echo "start-all: ECHO_PORTS is empty" >&2
    exit 2
fi

mkdir -p "$RUN_DIR"

# Refuse to start a second stack over a running one: its pid files would be overwritten and
# stop-all could no longer find it.
for pidfile in "$RUN_DIR"/*.pid; do
    [ -e "$pidfile" ] || continue
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if [ -n "$pid" ] && alive "$pid"; then
        echo "start-all: $pidfile (pid $pid) is still running; run scripts/stop-all.sh first" >&2
        exit 1
    fi
    rm -f "$pidfile"
done

# Names of the processes this run started, for cleanup on failure.
started=()

stop_started() {
    local name pid ticks_left=50
    local -a pids=()
    for name in "${started[@]}"; do
        pid=$(cat "$RUN_DIR/$name.pid" 2>/dev/null || true)
        rm -f "$RUN_DIR/$name.pid"
        [ -n "$pid" ] || continue
        kill -TERM "$pid" 2>/dev/null || true
        pids+=("$pid")
    done
    for pid in "${pids[@]}"; do
        while alive "$pid" && [ "$ticks_left" -gt 0 ]; do
            sleep 0.1
            ticks_left=$((ticks_left - 1))
        done
        kill -KILL "$pid" 2>/dev/null || true
    done
    started=()
}

fail() {
    echo "start-all: $*" >&2
    if [ "${#started[@]}" -gt 0 ]; then
        echo "start-all: stopping what this run started: ${started[*]}" >&2
        stop_started
    fi
    exit 1
}

trap 'fail "interrupted"' INT TERM

# port_answers PORT: true if something accepts TCP connections on 127.0.0.1:PORT.
port_answers() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# binary_ready BIN: true if BIN exists and its --help succeeds (the placeholder binaries exit 1
# saying "not yet").
binary_ready() {
    local out
    [ -x "$1" ] || return 1
    out=$("$1" --help 2>&1 </dev/null) || return 1
    ! grep -qi 'not yet' <<<"$out"
}

# launch NAME PORT CMD...: starts CMD in the background, records its pid, waits until it is ready.
launch() {
    local name=$1 port=$2 log pid i
    shift 2
    log="$RUN_DIR/$name.log"
    if port_answers "$port"; then
        fail "port $port is already in use; cannot start $name (override with PROXY_PORT / ECHO_PORTS)"
    fi
    nohup "$@" >"$log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$RUN_DIR/$name.pid"
    started+=("$name")
    for ((i = 0; i < READY_SECS * 10; i++)); do
        if ! alive "$pid"; then
            echo "start-all: $name (pid $pid) exited during startup; last lines of $log:" >&2
            tail -n 20 "$log" | sed 's/^/    /' >&2
            fail "$name failed to start"
        fi
        if grep -q 'listening on ' "$log" 2>/dev/null || port_answers "$port"; then
            echo "start-all: $name ready on port $port (pid $pid, log $log)"
            return 0
        fi
        sleep 0.1
    done
    fail "$name (pid $pid) not ready after ${READY_SECS}s; see $log"
}

if [ -z "${RR_BIN_DIR:-}" ]; then
    echo "start-all: building release binaries"
    cargo build --release || fail "cargo build --release failed"
fi

binary_ready "$BIN_DIR/rr-echo" || fail "$BIN_DIR/rr-echo --help failed; rr-echo is not usable yet"

backends=()
n=0
for port in "${echo_ports[@]}"; do
    n=$((n + 1))
    launch "echo-$n" "$port" "$BIN_DIR/rr-echo" --port "$port" --name "echo-$n"
    backends+=("127.0.0.1:$port")
done
backend_list=$(IFS=,; echo "${backends[*]}")

if binary_ready "$BIN_DIR/rr-proxy"; then
    launch proxy "$PROXY_PORT" "$BIN_DIR/rr-proxy" \
        --listen "0.0.0.0:$PROXY_PORT" --backends "$backend_list"
    trap - INT TERM
    echo
    echo "ready: rr-proxy on 0.0.0.0:$PROXY_PORT -> $backend_list"
    echo "try:   curl -s -X POST -d '{\"hello\":\"world\"}' http://127.0.0.1:$PROXY_PORT/"
else
    trap - INT TERM
    echo
    echo "note:  $BIN_DIR/rr-proxy --help failed (not built yet?); started the backends only"
    echo "ready: rr-echo on $backend_list"
    echo "try:   curl -s -X POST -d '{\"hello\":\"world\"}' http://127.0.0.1:${echo_ports[0]}/"
fi
echo "logs:  $RUN_DIR/*.log    stop: scripts/stop-all.sh"
