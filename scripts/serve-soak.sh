#!/usr/bin/env bash
# Soak of `ctxwin serve`: the load mix of benches/serve_load.rs (64 clients, each a LoCoMo-size
# session: append a turn, then ask a 2,000-token window) for SECS seconds (default 1800), the
# server's resident memory sampled every 10 s; prints windows/s, latencies, errors and how flat the
# RSS stayed after warm-up, and fails on any error.
#   scripts/serve-soak.sh [SECS] [CLIENTS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SECS=${1:-1800}
CLIENTS=${2:-64}
cargo bench --bench serve_load -- --clients "$CLIENTS" --secs "$SECS" --budget 2000 --rss-every 10
