#!/usr/bin/env bash
# Stops what scripts/start-all.sh started: exactly the pids recorded in run/*.pid.
#
# Sends TERM, waits up to STOP_SECS (default 5) for each process to exit, then sends KILL, and
# removes the pid files. A pid whose process is gone, or now belongs to some other program (the
# pid was reused), is not signalled; its file is just removed. Safe to run any number of times.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "$(dirname "${BASH_SOURCE[0]}")/.."

STOP_SECS="${STOP_SECS:-5}"
RUN_DIR=run

# ours PID: true if PID is alive and its command line names one of our binaries (a pid reused
# by an unrelated program is left alone).
ours() {
    local cmdline
    alive "$1" || return 1
    [ -r "/proc/$1/cmdline" ] || return 0 # no procfs: trust the pid file
    cmdline=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null)
    [[ "$cmdline" == *rr-echo* || "$cmdline" == *rr-proxy* ]]
}

pidfiles=()
for f in "$RUN_DIR"/*.pid; do
    [ -e "$f" ] && pidfiles+=("$f")
done
if [ "${#pidfiles[@]}" -eq 0 ]; then
    echo "stop-all: nothing to stop (no $RUN_DIR/*.pid)"
    exit 0
fi

# Signal everything first so the processes shut down in parallel, then wait for each.
declare -A pid_of=()
names=()
for f in "${pidfiles[@]}"; do
    name=$(basename "$f" .pid)
    pid=$(cat "$f" 2>/dev/null || true)
    if [[ "$pid" =~ ^[0-9]+$ ]] && ours "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        pid_of[$name]=$pid
        names+=("$name")
    else
        echo "stop-all: $name was not running"
        rm -f "$f"
    fi
done

# One shared deadline: all got TERM at the same moment, so none needs a wait of its own.
ticks_left=$((STOP_SECS * 10))
for name in "${names[@]}"; do
    pid=${pid_of[$name]}
    while alive "$pid" && [ "$ticks_left" -gt 0 ]; do
        sleep 0.1
        ticks_left=$((ticks_left - 1))
    done
    if alive "$pid"; then
        echo "stop-all: $name (pid $pid) ignored TERM for ${STOP_SECS}s; sending KILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    echo "stop-all: stopped $name (pid $pid)"
    rm -f "$RUN_DIR/$name.pid"
done
