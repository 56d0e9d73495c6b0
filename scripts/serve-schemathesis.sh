#!/usr/bin/env bash
# Runs schemathesis against a running `ctxwin serve` and its served OpenAPI document:
#   scripts/serve-schemathesis.sh [BINARY] [MAX_EXAMPLES]
# BINARY defaults to target/debug/ctxwin (built by the test step); MAX_EXAMPLES to 30. Installs
# schemathesis from PyPI into a virtualenv (target/schemathesis-venv, kept between runs), starts
# the server on a free loopback port over a throwaway SQLite file, runs the checks
# not_a_server_error and response_schema_conformance (fixed seed), and stops the server (SIGTERM,
# graceful) on any exit. Fails on any failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BIN=${1:-target/debug/ctxwin}
MAX=${2:-30}
VENV=${CTXWIN_SCHEMATHESIS_VENV:-target/schemathesis-venv}

if [ ! -x "$VENV/bin/schemathesis" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q 'schemathesis>=4,<5'
fi

WORK=$(mktemp -d)
LOG="$WORK/server.log"
"$BIN" serve --addr 127.0.0.1:0 --store "sqlite:$WORK/schemathesis.db" >"$LOG" 2>&1 &
PID=$!
cleanup() {
    kill -TERM "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

URL=""
for _ in $(seq 1 100); do
    URL=$(grep -o 'http://[0-9.:]*' "$LOG" | head -n1 || true)
    [ -n "$URL" ] && break
    kill -0 "$PID" 2>/dev/null || { cat "$LOG" >&2; exit 1; }
    sleep 0.1
done
[ -n "$URL" ] || { echo "serve-schemathesis: the server printed no address" >&2; cat "$LOG" >&2; exit 1; }

"$VENV/bin/schemathesis" run "$URL/openapi.json" \
    --checks not_a_server_error,response_schema_conformance \
    --max-examples "$MAX" --seed 12 --workers 1 --no-color
