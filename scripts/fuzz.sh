#!/usr/bin/env bash
# Runs the cargo-fuzz targets, each for a while, on a work copy of its committed corpus.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Defaults: 60 seconds, every target in fuzz/fuzz_targets. New inputs go to
# fuzz/corpus-work/<target> (ignored by git); the committed fuzz/corpus/<target> is only read.
# Shrink what was found back into it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz cmin <target> fuzz/corpus-work/<target>
# and copy the survivors over. Extra libFuzzer flags: FUZZ_ARGS="-max_len=1024".
# Exits non-zero if a target crashed, after printing where its crash input was written.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
[[ $secs =~ ^[0-9]+$ ]] || { echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2; exit 2; }
shift $(($# > 0 ? 1 : 0))
if (($# > 0)); then
    targets=("$@")
else
    targets=()
    for f in fuzz/fuzz_targets/*.rs; do targets+=("$(basename "$f" .rs)"); done
fi

# cargo-fuzz passes nightly-only flags to rustc; this lets a stable toolchain accept them.
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz
fi

# Build first, so a compile error is not mistaken for a crash. Debug assertions on, so an
# arithmetic overflow is a crash rather than a wrapped size.
cargo fuzz build --debug-assertions

failed=0
for t in "${targets[@]}"; do
    [[ -d fuzz/corpus/$t ]] || { echo "no corpus for target '$t'" >&2; exit 2; }
    work=fuzz/corpus-work/$t
    artifacts=fuzz/artifacts/$t
    mkdir -p "$work" "$artifacts"
    cp -n fuzz/corpus/"$t"/* "$work"/ 2>/dev/null || true
    stamp=$(mktemp)
    echo "== $t: ${secs}s"
    # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
    if ! cargo fuzz run --debug-assertions "$t" "$work" -- \
        -max_total_time="$secs" -max_len=8192 -print_final_stats=1 ${FUZZ_ARGS:-}; then
        failed=1
        echo "!! $t crashed; input:" >&2
        find "$artifacts" -type f -newer "$stamp" -print >&2
    fi
    rm -f "$stamp"
done
exit "$failed"
