#!/usr/bin/env bash
# Fuzzes the flow engine (definitions, conditions, templates) and the API path scoping with
# cargo-fuzz (libFuzzer), each target for FUZZ_SECONDS (default 10), starting from the seeds in
# services/addon-core/fuzz/seeds (the inputs that once crashed the process among them). Prints
# executions and time per target; any crash fails the run and leaves the input in
# services/addon-core/fuzz/artifacts/.
#
# cargo-fuzz wants nightly for its sanitizer flags; this machine has one stable toolchain, so it
# runs without a sanitizer (-s none; Rust is memory-safe, panics, aborts and stack overflows
# are what we hunt) and RUSTC_BOOTSTRAP=1 lets the coverage instrumentation build on stable.
set -euo pipefail
cd "$(dirname "$0")/../services/addon-core/fuzz"
seconds=${FUZZ_SECONDS:-10}
if ! command -v cargo-fuzz >/dev/null; then
    echo "installing cargo-fuzz"
    cargo install --locked cargo-fuzz@0.13.2 >/dev/null 2>&1
fi
export RUSTC_BOOTSTRAP=1
# The instrumented build lives outside the checkout, so a fresh clone on the same machine reuses
# it (cargo rebuilds whatever changed); FUZZ_TARGET_DIR moves it.
target_dir=${FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/clockify-addons/fuzz-target}
mkdir -p "$target_dir"
cargo fuzz build -s none --dev --target-dir "$target_dir" >/dev/null 2>&1 \
    || cargo fuzz build -s none --dev --target-dir "$target_dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for target in flow template api_path; do
    mkdir -p "$work/$target"
    log="$work/$target.log"
    if ! cargo fuzz run -s none --dev --target-dir "$target_dir" "$target" "$work/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=1024 -max_len=65536 -timeout=5 >"$log" 2>&1; then
        tail -40 "$log" >&2
        echo "fuzz target $target failed; the input is in services/addon-core/fuzz/artifacts/$target/" >&2
        exit 1
    fi
    runs=$(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1)
    echo "fuzz $target: ${runs:-no summary} (corpus $(ls "$work/$target" | wc -l) inputs)"
done
