#!/usr/bin/env bash
# Soak the example server: mixed load and management churn for SECONDS (default 600).
#   scripts/soak.sh [SECONDS]
# Builds the example server in release mode, then runs scripts/soak.py against it.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
cargo build --release --example server --features full --quiet
python3 scripts/soak.py target/release/examples/server "$seconds"
