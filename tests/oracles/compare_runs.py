#!/usr/bin/env python3
"""compare_runs.py KIND A B TOL — one run against another within TOL (the
data-parallel tests: mpirun -np 2 against one process). Prints one line,
"ok ..." or "FAIL ...", and exits 0 or 1.

  metrics A/metrics.jsonl B/metrics.jsonl: the same lines with the same keys
      and steps; every number within TOL (absolute, or relative to the
      value when it is above 1); timing keys (tokens_per_sec) are ignored.
  weights A.safetensors B.safetensors: the same tensors and shapes, every
      element within TOL (absolute, or relative above 1).
  dump A B: two `dpoc store dump --per-token` outputs: the same rows in the
      same order with the same ids, token ids, splits and sources; every
      log-probability within TOL.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle_io import read_safetensors  # noqa: E402

SKIP = {"tokens_per_sec"}


def close(a, b, tol):
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


def cmp_values(where, a, b, tol):
    """Recursively compares JSON values; returns a failure string or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        if sorted(a) != sorted(b):
            return f"{where}: keys differ: {sorted(set(a) ^ set(b))}"
        for k in a:
            if k in SKIP:
                continue
            bad = cmp_values(f"{where}.{k}", a[k], b[k], tol)
            if bad:
                return bad
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{where}: lengths {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            bad = cmp_values(f"{where}[{i}]", x, y, tol)
            if bad:
                return bad
        return None
    if isinstance(a, bool) or isinstance(a, str) or a is None:
        return None if a == b else f"{where}: {a!r} vs {b!r}"
    if isinstance(a, int) and isinstance(b, int):
        return None if a == b else f"{where}: {a} vs {b}"
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return None if close(float(a), float(b), tol) else f"{where}: {a} vs {b}"
    return f"{where}: {a!r} vs {b!r}"


def lines(path):
    with open(path) as f:
        return [json.loads(x) for x in f if x.strip()]


def metrics(a, b, tol):
    la, lb = lines(a), lines(b)
    if len(la) != len(lb):
        return f"{len(la)} lines vs {len(lb)}"
    for i, (x, y) in enumerate(zip(la, lb)):
        bad = cmp_values(f"line {i + 1}", x, y, tol)
        if bad:
            return bad
    return None


def dump(a, b, tol):
    la, lb = lines(a), lines(b)
    if len(la) != len(lb):
        return f"{len(la)} rows vs {len(lb)}"
    for x, y in zip(la, lb):
        bad = cmp_values(f"row {x.get('id')}", x, y, tol)
        if bad:
            return bad
    return None


def weights(a, b, tol):
    ta, tb = read_safetensors(a), read_safetensors(b)
    if sorted(ta) != sorted(tb):
        return f"tensor names differ: {sorted(set(ta) ^ set(tb))}"
    worst, name = 0.0, ""
    for k in ta:
        if ta[k].shape != tb[k].shape:
            return f"{k}: shape {ta[k].shape} vs {tb[k].shape}"
        x, y = ta[k].astype(np.float64), tb[k].astype(np.float64)
        d = np.max(np.abs(x - y) / np.maximum(1.0, np.maximum(np.abs(x), np.abs(y))), initial=0.0)
        if d > worst:
            worst, name = d, k
    if worst > tol:
        return f"{name}: differs by {worst:.3g} > {tol}"
    return None


def main():
    kind, a, b, tol = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    bad = {"metrics": metrics, "weights": weights, "dump": dump}[kind](a, b, tol)
    if bad:
        print(f"FAIL {kind}: {bad}")
        return 1
    print(f"ok {kind}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
