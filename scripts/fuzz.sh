#!/usr/bin/env bash
# Every fuzz target for a while, from the committed seed corpus, several at a time
# (libFuzzer runs on one core). New inputs go to fuzz/corpus-run/<target>, which is not
# committed; a crash fails the script and leaves its input under fuzz/artifacts/<target>.
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`); runs on stable.
#
# usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGETS_AT_ONCE]   (defaults: 60, one per core)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
jobs=${2:-$(nproc)}
export RUSTC_BOOTSTRAP=1

# Every target in one build, so that the runs below only start them.
cargo fuzz build
mkdir -p target

run() { # target: fuzzes it; its whole output in target/fuzz-<target>.log
    local target=$1
    local log="target/fuzz-$target.log"
    mkdir -p "fuzz/corpus-run/$target"
    if cargo fuzz run "$target" "fuzz/corpus-run/$target" "fuzz/corpus/$target" \
        -- -max_total_time="$seconds" >"$log" 2>&1; then
        echo "fuzz $target: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$log")"
    else
        # One write, so that the report does not interleave with another target's.
        printf '%s\nfuzz target %s failed; the input is under fuzz/artifacts/%s\n' \
            "$(tail -n 60 "$log")" "$target" "$target" >&2
        return 1
    fi
}

status=0
running=0
for target in $(cargo fuzz list); do
    if [ "$running" -ge "$jobs" ]; then
        wait -n || status=1
        running=$((running - 1))
    fi
    run "$target" &
    running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
    wait -n || status=1
    running=$((running - 1))
done
exit "$status"
