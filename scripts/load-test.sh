#!/usr/bin/env bash
# HTTP throughput of the example server over loopback, with authentication (`GET /ping`,
# a cached token) versus without (`GET /health`), on the same server process.
# Target: authenticated RPS >= 97% of unauthenticated RPS.
#
#   scripts/load-test.sh [seconds per run] [connections] [rounds]
#
# Installs wrk (Debian package) if it is missing. Runs alternate rounds and reports the
# median of each side, since wrk and the server share this machine's cores.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
connections=${2:-64}
rounds=${3:-3}

if ! command -v wrk >/dev/null; then
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
cargo build --quiet --release --example server --features sqlite,admin

work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
RUST_LOG=warn target/release/examples/server --addr 127.0.0.1:0 --db "$work/load.db" \
    >"$work/stdout" 2>"$work/stderr" &
server=$!
for _ in $(seq 100); do
    grep -q "listening on" "$work/stderr" 2>/dev/null && break
    sleep 0.1
done
addr=$(sed -n 's/^listening on http:\/\///p' "$work/stderr")
token=$(sed -n 's/^admin token: //p' "$work/stdout")
[ -n "$addr" ] && [ -n "$token" ] || { cat "$work/stderr"; exit 1; }
curl -sf "http://$addr/ping" -H "Authorization: Bearer $token" >/dev/null

run() { # name, then wrk arguments; prints "rps p99_ms"
    wrk -t2 -c"$connections" -d"${duration}s" --latency "$@" | awk '
        /Requests\/sec/ { rps = $2 }
        /^ +99%/ { p99 = $2 }
        END {
            unit = p99; sub(/[0-9.]+/, "", unit); value = p99 + 0
            if (unit == "us") value /= 1000; else if (unit == "s") value *= 1000
            printf "%s %.3f\n", rps, value
        }'
}

: >"$work/none"; : >"$work/auth"
for round in $(seq "$rounds"); do
    run "http://$addr/health" >>"$work/none"
    run -H "Authorization: Bearer $token" "http://$addr/ping" >>"$work/auth"
    echo "round $round: no auth $(tail -1 "$work/none"), auth $(tail -1 "$work/auth") (rps p99_ms)"
done
median() { sort -n -k"$2" "$1" | awk -v col="$2" '{ v[NR] = $col } END { print v[int((NR + 1) / 2)] }'; }
none_rps=$(median "$work/none" 1); auth_rps=$(median "$work/auth" 1)
none_p99=$(median "$work/none" 2); auth_p99=$(median "$work/auth" 2)
echo "no auth:   ${none_rps} req/s, p99 ${none_p99} ms"
echo "with auth: ${auth_rps} req/s, p99 ${auth_p99} ms"
awk -v a="$auth_rps" -v n="$none_rps" 'BEGIN { printf "ratio: %.1f%% of no-auth throughput (target >= 97%%)\n", 100 * a / n }'
