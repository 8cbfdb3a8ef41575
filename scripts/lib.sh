# shellcheck shell=bash
# Helpers the scripts share; sourced, not run.

# alive PID: true if PID exists and is not a zombie. A child of the calling script that died
# stays a zombie until reaped, and kill -0 still succeeds on it.
alive() {
    local stat
    kill -0 "$1" 2>/dev/null || return 1
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0 # no procfs: kill -0 is all we know
    stat=${stat##*) }
    [ "${stat:0:1}" != Z ]
}

# stop_pid PID: TERM, up to 5 s to exit, then KILL; reaps it when it is our child.
stop_pid() {
    local i
    kill -TERM "$1" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        alive "$1" || break
        sleep 0.1
    done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
