#!/usr/bin/env python3
"""Long real histories from LoCoMo, for candidate generation (issue 9): concatenates LoCoMo's
conversations into longer ones, sessions renumbered and evidence ids remapped, so each question
must be answered from one conversation among several (~1,200 turns for pairs, ~5,900 for all ten).

    python3 scripts/locomo-concat.py ../shared/datasets/locomo/locomo10.json /tmp/locomo-long
    ctxbench compare --dataset /tmp/locomo-long --policies ctxwin --budgets 1000,2000,4000,8000

Writes locomo-pairs.json (five conversations of two) and locomo-all.json (one of ten) into the
output folder; the data stays outside the repository, as the shared datasets do.
"""
import copy
import json
import os
import re
import sys


def session_numbers(conv):
    return sorted(int(m.group(1)) for k in conv for m in [re.fullmatch(r"session_(\d+)", k)] if m)


def merge(samples, sample_id):
    first = samples[0]["conversation"]
    conv = {"speaker_a": first["speaker_a"], "speaker_b": first["speaker_b"]}
    qa, offset = [], 0
    for s in samples:
        c = s["conversation"]
        nums = session_numbers(c)
        remap = {n: offset + n for n in nums}
        for n in nums:
            turns = copy.deepcopy(c[f"session_{n}"])
            for t in turns:
                sess, turn = t["dia_id"][1:].split(":")
                t["dia_id"] = f"D{remap[int(sess)]}:{turn}"
            conv[f"session_{remap[n]}_date_time"] = c[f"session_{n}_date_time"]
            conv[f"session_{remap[n]}"] = turns
        for q in s["qa"]:
            q = copy.deepcopy(q)
            evidence = []
            for e in q.get("evidence", []):
                m = re.fullmatch(r"D(\d+):(\d+)", e.strip())
                evidence.append(f"D{remap[int(m.group(1))]}:{m.group(2)}" if m and int(m.group(1)) in remap else e)
            q["evidence"] = evidence
            qa.append(q)
        offset += max(nums)
    return {"qa": qa, "conversation": conv, "sample_id": sample_id}


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        data = json.load(f)
    os.makedirs(sys.argv[2], exist_ok=True)
    pairs = [merge(data[i : i + 2], f"pair-{i}") for i in range(0, len(data) - 1, 2)]
    with open(os.path.join(sys.argv[2], "locomo-pairs.json"), "w") as f:
        json.dump(pairs, f)
    with open(os.path.join(sys.argv[2], "locomo-all.json"), "w") as f:
        json.dump([merge(data, "all")], f)


if __name__ == "__main__":
    main()
