#!/usr/bin/env bash
# Instructions per cache hit, counted by callgrind over the `profile_hit` loop: a number
# that does not move with a noisy machine. For each variant, the loop runs twice (N and
# 2N requests) and the difference divided by N is the cost of one request, setup
# excluded. Fails when a variant exceeds its budget in benches/instructions-budget (the
# figure recorded when the budget was set, plus 10%); raise a budget deliberately, with
# the reason in the commit.
#
# usage: scripts/instructions.sh [--update]   (--update rewrites the budgets from this run)
set -euo pipefail
cd "$(dirname "$0")/.."

budget_file=benches/instructions-budget
requests=20000
binary=$(cargo bench --all-features --bench profile_hit --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "profile_hit" and m.get("executable"):
        print(m["executable"])')

count() { # variant iterations -> instructions collected
    local out
    out=$(mktemp)
    valgrind --tool=callgrind --callgrind-out-file="$out" "$binary" "$1" "$2" >/dev/null 2>"$out.log"
    grep -o 'Collected : [0-9]*' "$out.log" | grep -o '[0-9]*$'
    rm -f "$out" "$out.log"
}

status=0
updated=""
# What the same loop costs without authentication (axum and the loop): for reference.
none=$(( ($(count none "$((2 * requests))") - $(count none "$requests")) / requests ))
echo "none: $none instructions per request (no budget: not this crate's code)"
for variant in auth auth-outer auth-logged auth-limited; do
    small=$(count "$variant" "$requests")
    large=$(count "$variant" "$((2 * requests))")
    per_request=$(((large - small) / requests))
    budget=$(awk -v v="$variant" '$1 == v { print $2 }' "$budget_file" 2>/dev/null || true)
    if [ "${1:-}" = "--update" ]; then
        budget=$((per_request * 11 / 10))
        updated+="$variant $budget"$'\n'
        echo "$variant: $per_request instructions per request; budget set to $budget"
    elif [ -z "$budget" ]; then
        echo "$variant: $per_request instructions per request; no budget in $budget_file" >&2
        status=1
    elif [ "$per_request" -gt "$budget" ]; then
        echo "$variant: $per_request instructions per request, over the budget of $budget" >&2
        status=1
    else
        echo "$variant: $per_request instructions per request (budget $budget)"
    fi
done
if [ "${1:-}" = "--update" ]; then
    {
        echo "# variant  instructions per request (callgrind, scripts/instructions.sh): measured + 10%"
        printf '%s' "$updated"
    } >"$budget_file"
fi
exit "$status"
