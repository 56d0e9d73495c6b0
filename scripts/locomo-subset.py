#!/usr/bin/env python3
"""Cut LoCoMo to a small fixed subset for slow measurements (generated summaries).

Keeps the named conversations, each cut to its first N sessions, with only the questions of
categories 1-4 whose every evidence id lies in those sessions (questions without evidence or
with an unparsable id are left out). The output is LoCoMo's own format, so `ctxbench compare
--dataset OUT` reads it like the full file. The subset stays out of the repository.

Usage: scripts/locomo-subset.py LOCOMO10.json OUT.json --conversations 0,1 --sessions 4
"""
import argparse
import json
import re
import sys


def evidence_sessions(q):
    """The session numbers of a question's evidence ids, or None if any id does not parse."""
    ev = q.get("evidence") or []
    out = []
    for e in ev:
        m = re.fullmatch(r"D(\d+):\d+", str(e).strip())
        if not m:
            return None
        out.append(int(m.group(1)))
    return out or None


def cut(conv, sessions):
    c = conv["conversation"]
    kept = {k: v for k, v in c.items() if not re.fullmatch(r"session_\d+(_date_time)?", k)}
    for s in range(1, sessions + 1):
        for k in (f"session_{s}", f"session_{s}_date_time"):
            if k in c:
                kept[k] = c[k]
    qa = []
    for q in conv["qa"]:
        ss = evidence_sessions(q)
        if q.get("category") in (1, 2, 3, 4) and "answer" in q and ss and max(ss) <= sessions:
            qa.append(q)
    return {"qa": qa, "conversation": kept, "sample_id": conv["sample_id"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("locomo")
    ap.add_argument("out")
    ap.add_argument("--conversations", default="0,1", help="indices into the file, comma-separated")
    ap.add_argument("--sessions", type=int, default=4, help="first N sessions of each")
    a = ap.parse_args()
    with open(a.locomo) as f:
        data = json.load(f)
    out = [cut(data[int(i)], a.sessions) for i in a.conversations.split(",")]
    with open(a.out, "w") as f:
        json.dump(out, f)
    for c in out:
        words = sum(len(t["text"].split()) for k, v in c["conversation"].items() if re.fullmatch(r"session_\d+", k) for t in v)
        print(f"{c['sample_id']}: {words} words, {len(c['qa'])} questions", file=sys.stderr)


if __name__ == "__main__":
    main()
