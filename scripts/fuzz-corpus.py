#!/usr/bin/env python3
"""Writes the fuzz seed corpora into fuzz/corpus/<target>/ (git-ignored): the repo's samples, and
small slices of ../shared/datasets (read in place; never copied into the repo): the first item of a
JSON array with its lists cut to a few entries, the first lines of JSONL / Markdown."""
import glob, json, os, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared", "datasets")
OUT = os.path.join(ROOT, "fuzz", "corpus")
MAX_BYTES = 16_000


def cut(v, n=6, depth=0):
    """A JSON value with every list cut to n entries and long strings to 400 characters."""
    if isinstance(v, list):
        return [cut(x, n, depth + 1) for x in v[:n]]
    if isinstance(v, dict):
        return {k: cut(x, n, depth + 1) for k, x in v.items()}
    if isinstance(v, str):
        return v[:400]
    return v


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data[:MAX_BYTES] if not name.endswith(".json") else data)


def json_slices(target, pattern, files=3):
    for i, p in enumerate(sorted(glob.glob(pattern))[:files]):
        try:
            v = json.load(open(p))
        except Exception:
            continue
        first = v[0] if isinstance(v, list) and v else v
        for n in (2, 6):
            s = json.dumps([cut(first, n)] if isinstance(v, list) else cut(first, n))
            if len(s) <= MAX_BYTES * 2:
                put(target, f"shared-{i}-{n}.json", s)


def text_slices(target, pattern, lines, files=3):
    for i, p in enumerate(sorted(glob.glob(pattern))[:files]):
        with open(p, encoding="utf-8", errors="replace") as f:
            put(target, f"shared-{i}.txt", "".join(f.readlines()[:lines]))


def main():
    s = os.path.join(ROOT, "datasets", "samples")
    samples = {
        "load_locomo": ["synth-conversation.locomo.json"],
        "load_openai_chat": ["openai-chat.json", "synth-agent.openai.json", "malformed/wrong-types-openai.json", "malformed/tau-bench-bad-action.json"],
        "load_anthropic": ["anthropic-messages.json", "malformed/wrong-types.json"],
        "load_claude_code": ["claude-code-session.jsonl", "claude-code-long.jsonl", "malformed/bad-line.jsonl", "malformed/wrong-types.jsonl"],
        "load_mini_swe_agent": [], "load_longmemeval": [], "load_aider": [],
    }
    for target, names in samples.items():
        for n in names:
            with open(os.path.join(s, n), "rb") as f:
                data = f.read()
            if n.endswith(".json") and len(data) > MAX_BYTES:
                data = json.dumps(cut(json.loads(data), 4)).encode()
            put(target, "sample-" + n.replace("/", "-"), data[:MAX_BYTES * 2])
        put(target, "truncated.json", open(os.path.join(s, "malformed", "truncated.json"), "rb").read())
    if os.path.isdir(SHARED):
        json_slices("load_locomo", os.path.join(SHARED, "locomo", "*.json"), 1)
        json_slices("load_longmemeval", os.path.join(SHARED, "longmemeval-s-derived", "*.json"))
        json_slices("load_mini_swe_agent", os.path.join(SHARED, "mini-swe-agent", "*.json"))
        json_slices("load_openai_chat", os.path.join(SHARED, "tau-bench", "*.json"))
        json_slices("load_openai_chat", os.path.join(SHARED, "swe-agent", "*"))
        text_slices("load_aider", os.path.join(SHARED, "aider", "*.md"), 120)
    else:
        print(f"{SHARED} is absent: seeding from the samples only", file=sys.stderr)
    policies = os.path.join(ROOT, "datasets", "policies")
    put("policy_toml", "preset.toml", 'preset = "ctxwin"\ntail_turns = 4\n[weights]\nbm25 = 1.0\n')
    put("policy_toml", "tool-clearing.toml", 'preset = "tool-clearing"\nkeep_tool_results = 2\n')
    put("policy_json", "preset.json", '{"preset": "rag", "rag_top_k": 3, "weights": {"bm25": 1.0}}')
    put("policy_json", "compaction.json", '{"preset": "compaction", "compaction_threshold": 0.5}')
    for target in ("engine_ops", "normalize"):
        for i in range(8):
            put(target, f"seed-{i}", bytes((i * 37 + k * 11) % 256 for k in range(64 * (i + 1))))


if __name__ == "__main__":
    main()
