#!/usr/bin/env python3
"""eval_oracle.py — PyTorch oracle for `dpoc eval` (issue 7).

    eval_oracle.py REFERENCE_DIR DUMP JUDGE_WORDS [NAME POLICY_DIR EVAL_JSON]...

DUMP is `dpoc eval --dump-samples` output; the lines of model NAME are the
samples of the policy in POLICY_DIR, whose figures are in EVAL_JSON. Checks (one `ok NAME` / `FAIL NAME: why` line each; exit 1
if any failed, so a missing torch fails too):
  - per sample, Σ log p(ids | prompt_ids) under the policy and under the
    reference, recomputed in float64 by torch_model.py's forward from the
    safetensors files, equal the dumped values within 1e-3;
  - EVAL_JSON's kl equals the mean over samples of the torch difference
    within 1e-4, and its n_samples the number of samples;
  - each dumped completion's judge score, recounted here from JUDGE_WORDS
    (lowercased runs of ASCII letters against the +/- lists), equals the
    dumped score, and EVAL_JSON's judge_score their mean.
"""
import json
import os
import re
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle_io import read_jsonl  # noqa: E402
from torch_dpo import read_safetensors, response_logps  # noqa: E402


def load(d):
    cfg = json.load(open(os.path.join(d, "config.json")))
    return cfg, read_safetensors(os.path.join(d, "model.safetensors"))


def check_model(check, rcfg, R, rows, name, pol_dir, eval_json, pos, neg):
    pcfg, P = load(pol_dir)
    rows = [r for r in rows if r["model"] == name]
    ev = json.load(open(eval_json))
    kl, judge, worst = [], [], 0.0
    for r in rows:
        with torch.no_grad():
            lp = response_logps(pcfg, P, r["prompt_ids"], r["ids"])[0].sum().item()
            lr = response_logps(rcfg, R, r["prompt_ids"], r["ids"])[0].sum().item()
        worst = max(worst, abs(lp - r["logp_policy"]), abs(lr - r["logp_reference"]))
        kl.append(lp - lr)
        score = sum((w in pos) - (w in neg) for w in re.findall(r"[a-z]+", r["completion"].lower()))
        check(f"{name}: judge {r['prompt_index']}/{r['sample']}", score == r["judge"],
              f"recount {score}, dumped {r['judge']}")
        judge.append(score)
    check(f"{name}: samples dumped", len(rows) > 0 and len(rows) == ev["n_samples"],
          f"{len(rows)} dumped, n_samples {ev['n_samples']}")
    if not rows:
        return
    check(f"{name}: per-sample logps", worst < 1e-3, f"max |torch - dpoc| = {worst:g}")
    mean_kl = sum(kl) / len(kl)
    check(f"{name}: kl", abs(mean_kl - ev["kl"]) < 1e-4, f"torch {mean_kl!r}, eval.json {ev['kl']!r}")
    mean_judge = sum(judge) / len(judge)
    check(f"{name}: judge_score", abs(mean_judge - ev["judge_score"]) < 1e-12,
          f"recount {mean_judge!r}, eval.json {ev['judge_score']!r}")
    print(f"{name}: kl {mean_kl:.6f} judge {mean_judge:.4f} over {len(rows)} samples")


def main():
    if len(sys.argv) < 7 or (len(sys.argv) - 4) % 3:
        raise SystemExit(__doc__)
    ref_dir, dump, words = sys.argv[1:4]
    failed = 0

    def check(label, cond, why=""):
        nonlocal failed
        print(f"ok {label}" if cond else f"FAIL {label}: {why}")
        failed += not cond

    pos, neg = set(), set()
    for line in open(words):
        line = line.strip()
        if line and not line.startswith("#"):
            (pos if line[0] == "+" else neg).add(line[1:].strip().lower())
    rcfg, R = load(ref_dir)
    rows = read_jsonl(dump)
    for k in range(4, len(sys.argv), 3):
        check_model(check, rcfg, R, rows, *sys.argv[k:k + 3], pos, neg)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
