#!/usr/bin/env python3
"""compare_safetensors.py A B TOL — exits 0 if the two safetensors files hold
the same tensor names and shapes and every tensor agrees within TOL relative
(norm-wise: |a - b| <= TOL * max(|b|, 1e-12)); prints the worst tensor."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle_io import read_safetensors as load  # noqa: E402


def main():
    a, b, tol = load(sys.argv[1]), load(sys.argv[2]), float(sys.argv[3])
    if sorted(a) != sorted(b):
        print("tensor names differ:", sorted(set(a) ^ set(b)))
        return 1
    worst, worst_name = 0.0, ""
    for k in a:
        if a[k].shape != b[k].shape:
            print(f"{k}: shape {a[k].shape} vs {b[k].shape}")
            return 1
        rel = np.linalg.norm(a[k] - b[k]) / max(np.linalg.norm(b[k]), 1e-12)
        if rel > worst:
            worst, worst_name = rel, k
    print(f"worst relative difference {worst:.3g} ({worst_name})")
    return 0 if worst <= tol else 1


if __name__ == "__main__":
    sys.exit(main())
