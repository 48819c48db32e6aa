#!/usr/bin/env bash
# Two example servers (two nodes) on one PostgreSQL database under wrk at once, each
# with cached tokens on `GET /ping`: the throughput of each node, and every statement
# the database ran meanwhile, counted by pg_stat_statements. Cached tokens must cause
# no token lookup (`SELECT … FROM tower_bearer_tokens WHERE digest = $1`); what the
# nodes do run (the change feed's heartbeat, the write-behind of `last_used_at`) is
# listed with its count.
#
#   scripts/load-test-nodes.sh [seconds] [connections per node] [tokens]
#
# Uses DATABASE_URL (a server with pg_stat_statements in shared_preload_libraries, and
# a user that may create databases) or, when it is not set, runs itself inside a
# throwaway cluster (pg_virtualenv, from Debian's postgresql-common). Installs wrk if
# it is missing.
set -euo pipefail
script=$(realpath "$0")
cd "$(dirname "$script")/.."
if [ -z "${DATABASE_URL:-}" ]; then
    exec pg_virtualenv -t -o shared_preload_libraries=pg_stat_statements bash -c \
        'DATABASE_URL="postgres://$PGUSER:$PGPASSWORD@$PGHOST:$PGPORT/postgres" exec "$0" "$@"' \
        "$script" "$@"
fi
duration=${1:-10}
connections=${2:-32}
tokens=${3:-100}

if ! command -v wrk >/dev/null; then
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
cargo build --quiet --release --example server --features full

work=$(mktemp -d)
database="tower_bearer_nodes_$$"
servers=()
cleanup() {
    kill "${servers[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    psql -q "$DATABASE_URL" -c "DROP DATABASE IF EXISTS $database" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
psql -q "$DATABASE_URL" -c "CREATE DATABASE $database"
url="${DATABASE_URL%/*}/$database"
psql -q "$url" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"

start() { # node name; sets addr (and token, on the node that minted the bootstrap admin)
    RUST_LOG=warn target/release/examples/server --addr 127.0.0.1:0 --db "$url" \
        --activity off --session-key-file "$work/session-key" \
        >"$work/$1.stdout" 2>"$work/$1.stderr" &
    servers+=($!)
    for _ in $(seq 100); do
        grep -q "^listening on" "$work/$1.stderr" 2>/dev/null && break
        sleep 0.1
    done
    addr=$(sed -n 's/^listening on http:\/\///p' "$work/$1.stderr")
    [ -n "$addr" ] || { cat "$work/$1.stderr"; exit 1; }
}
start a
a_addr=$addr
admin=$(sed -n 's/^admin token: //p' "$work/a.stdout")
start b
b_addr=$addr
[ -n "$admin" ] || { echo "node a printed no admin token" >&2; exit 1; }

# The tokens, issued through node A, in a wrk script that rotates over them.
{
    echo "local tokens = {"
    for n in $(seq "$tokens"); do
        curl -sf "http://$a_addr/tokens" -H "Authorization: Bearer $admin" \
            -H 'Content-Type: application/json' -d "{\"name\": \"load $n\", \"scopes\": [\"read\"]}" |
            python3 -c 'import json, sys; print("  \"%s\"," % json.load(sys.stdin)["token"])'
    done
    cat <<'LUA'
}
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/ping", { ["Authorization"] = "Bearer " .. tokens[n % #tokens + 1] })
end
LUA
} >"$work/tokens.lua"

# Every token once on each node: the misses happen here, before the count starts.
for node in "$a_addr" "$b_addr"; do
    wrk -t1 -c1 -d1s -s "$work/tokens.lua" "http://$node/ping" >/dev/null
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$node/ping" -H "Authorization: Bearer $admin")" = 200 ]
done
psql -qAt "$url" -c "SELECT pg_stat_statements_reset()" >/dev/null

run() { # node address: its throughput, p99 and answers that were not 2xx, in words
    wrk -t1 -c"$connections" -d"${duration}s" --latency -s "$work/tokens.lua" "http://$1/ping" |
        awk -f scripts/wrk-summary.awk |
        awk '{ printf "%s req/s, p99 %.2f ms, %d answers not 2xx\n", $1, $2, $3 }'
}
run "$a_addr" >"$work/a.result" &
load_a=$!
run "$b_addr" >"$work/b.result" &
wait "$load_a" $!
echo "node a: $(cat "$work/a.result")"
echo "node b: $(cat "$work/b.result")"

statements=$(psql -qAt -F $'\t' "$url" -c "
    SELECT calls, regexp_replace(query, '\s+', ' ', 'g') FROM pg_stat_statements
    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND query NOT LIKE '%pg_stat_statements%'
    ORDER BY calls DESC")
lookups=$(printf '%s\n' "$statements" |
    awk -F'\t' '$2 ~ /FROM tower_bearer_tokens WHERE digest = / { n += $1 } END { print n + 0 }')
echo "statements the database ran during the ${duration} s (both nodes, $tokens tokens cached):"
printf '%s\n' "$statements" | awk -F'\t' 'NF { printf "  %6d  %.110s\n", $1, $2 }'
echo "token lookups (cache misses reaching PostgreSQL): $lookups"
[ "$lookups" = 0 ]
