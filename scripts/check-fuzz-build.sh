#!/usr/bin/env bash
# Compiles and links the fuzz targets without running them: what CI does, so a change to a
# parser's API cannot leave the fuzz targets broken until someone next fuzzes.
#
#   scripts/check-fuzz-build.sh              plain debug build, shares the main target dir
#   scripts/check-fuzz-build.sh --sanitizers the real thing: cargo fuzz build (ASan, coverage)
#
# The plain build links libFuzzer's C++ (compiled by build.rs with the machine's C++ compiler)
# without instrumentation; it needs neither cargo-fuzz nor nightly flags. Sharing the main
# target dir lets it reuse the dependencies `cargo build`/`cargo test` already compiled.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ${1:-} == --sanitizers ]]; then
    export RUSTC_BOOTSTRAP=1
    cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz
    exec cargo fuzz build
fi
exec cargo build --manifest-path fuzz/Cargo.toml --bins --target-dir "${CARGO_TARGET_DIR:-target}"
