#!/usr/bin/env bash
# Runs each cargo-fuzz target for SECONDS (default 600), one at a time, and copies any new crash
# input into tests/fuzz-regressions/<target>/, where `cargo test --test tests suite::fuzz_regressions`
# replays them all. Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     (FUZZ_TIMEOUT=S: one input's limit, default 120 s)
#
# Seeds come from scripts/fuzz-corpus.py (samples + small slices of ../shared/datasets, written to
# the git-ignored fuzz/corpus/). Builds without a sanitizer (safe Rust) and with debug assertions,
# so integer overflow is a crash.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
secs=${1:-600}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
python3 scripts/fuzz-corpus.py
cargo +nightly fuzz build -s none -a
mkdir -p fuzz/logs
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    start=$(date +%s)
    set +e
    cargo +nightly fuzz run -s none -a "$t" "fuzz/corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=4096 -timeout="${FUZZ_TIMEOUT:-120}" \
        -print_final_stats=1 >"fuzz/logs/$t.log" 2>&1
    rc=$?
    set -e
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "fuzz/logs/$t.log" | grep -o '[0-9]*$' || echo "?")
    # slow-unit-* files are libFuzzer's reports of its slowest input so far, not failures.
    crashes=$(find "fuzz/artifacts/$t" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
    ops=$(grep -o '^#ops [0-9]*' "fuzz/logs/$t.log" | tail -1 | grep -o '[0-9]*$' || true)
    echo "$t: $(( $(date +%s) - start )) s, $execs execs${ops:+, $ops operations}, exit $rc, $crashes crash/timeout/oom inputs"
    for f in "fuzz/artifacts/$t"/crash-* "fuzz/artifacts/$t"/timeout-* "fuzz/artifacts/$t"/oom-*; do
        [ -f "$f" ] || continue
        mkdir -p "tests/fuzz-regressions/$t"
        cp -n "$f" "tests/fuzz-regressions/$t/"
    done
done
