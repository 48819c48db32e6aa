#!/usr/bin/env bash
# HTTP throughput of the example server over loopback, with authentication (`GET /ping`,
# a cached token) versus without (`GET /health`), on the same server process started
# with `--activity off`; and `/ping` on a second server that records every request in its
# activity log (the log's own cost, beside the target).
# Target: authenticated RPS >= 97% of unauthenticated RPS.
#
#   scripts/load-test.sh [seconds per run] [connections] [rounds]
#
# Installs wrk (Debian package) if it is missing. Runs alternate rounds and reports the
# median of each side and the median of the rounds' own ratios (the two sides of one round
# ran seconds apart, on the same noisy machine), since wrk and the server share this
# machine's cores: on a 2-vCPU VM one side's RPS moves by 30 % between rounds, so take
# at least seven.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
connections=${2:-64}
rounds=${3:-7}

if ! command -v wrk >/dev/null; then
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
cargo build --quiet --release --example server --features full

work=$(mktemp -d)
servers=()
trap 'kill "${servers[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
start() { # name, then server flags; sets addr and token
    RUST_LOG=warn target/release/examples/server --addr 127.0.0.1:0 --db "$work/$1.db" "${@:2}" \
        >"$work/$1.stdout" 2>"$work/$1.stderr" &
    servers+=($!)
    for _ in $(seq 100); do
        grep -q "listening on" "$work/$1.stderr" 2>/dev/null && break
        sleep 0.1
    done
    addr=$(sed -n 's/^listening on http:\/\///p' "$work/$1.stderr")
    token=$(sed -n 's/^admin token: //p' "$work/$1.stdout")
    [ -n "$addr" ] && [ -n "$token" ] || { cat "$work/$1.stderr"; exit 1; }
    curl -sf "http://$addr/ping" -H "Authorization: Bearer $token" >/dev/null
}
# Authentication alone (the target), and with every request recorded in the activity log.
start plain --activity off
plain_addr=$addr plain_token=$token
start logged
logged_addr=$addr logged_token=$token

run() { # wrk arguments; prints "rps p99_ms"
    wrk -t2 -c"$connections" -d"${duration}s" --latency "$@" |
        awk -f scripts/wrk-summary.awk | cut -d' ' -f1-2
}

: >"$work/none"; : >"$work/auth"; : >"$work/logged"
for round in $(seq "$rounds"); do
    run "http://$plain_addr/health" >>"$work/none"
    run -H "Authorization: Bearer $plain_token" "http://$plain_addr/ping" >>"$work/auth"
    run -H "Authorization: Bearer $logged_token" "http://$logged_addr/ping" >>"$work/logged"
    echo "round $round: no auth $(tail -1 "$work/none"), auth $(tail -1 "$work/auth"), auth + activity log $(tail -1 "$work/logged") (rps p99_ms)"
done
median() { sort -n -k"$2" "$1" | awk -v col="$2" '{ v[NR] = $col } END { print v[int((NR + 1) / 2)] }'; }
none_rps=$(median "$work/none" 1); auth_rps=$(median "$work/auth" 1); logged_rps=$(median "$work/logged" 1)
none_p99=$(median "$work/none" 2); auth_p99=$(median "$work/auth" 2); logged_p99=$(median "$work/logged" 2)
echo "no auth:                  ${none_rps} req/s, p99 ${none_p99} ms"
echo "with auth:                ${auth_rps} req/s, p99 ${auth_p99} ms"
echo "with auth + activity log: ${logged_rps} req/s, p99 ${logged_p99} ms"
awk -v a="$auth_rps" -v l="$logged_rps" -v n="$none_rps" 'BEGIN {
    printf "ratio: %.1f%% of no-auth throughput (target >= 97%%); with the activity log %.1f%%\n", 100 * a / n, 100 * l / n
}'
paste "$work/none" "$work/auth" "$work/logged" | awk '{ print 100 * $3 / $1, 100 * $5 / $1 }' >"$work/ratios"
printf "median of the rounds' ratios: %.1f%% (activity log %.1f%%); per round: %s\n" \
    "$(median "$work/ratios" 1)" "$(median "$work/ratios" 2)" \
    "$(cut -d' ' -f1 "$work/ratios" | xargs printf '%.1f%% ')"
