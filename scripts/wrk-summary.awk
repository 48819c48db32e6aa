# wrk's report (run with --latency) as one line: "requests_per_second p99_ms non_2xx".
# Shared by scripts/load-test.sh and scripts/load-test-nodes.sh.
/Requests\/sec/ { rps = $2 }
/^ +99%/ { p99 = $2 }
/Non-2xx/ { errors = $NF }
END {
    unit = p99; sub(/[0-9.]+/, "", unit); value = p99 + 0
    if (unit == "us") value /= 1000; else if (unit == "s") value *= 1000
    printf "%s %.3f %d\n", rps, value, errors
}
