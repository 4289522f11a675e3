#!/usr/bin/env python3
"""compare_safetensors.py A B TOL — exits 0 if the two safetensors files hold
the same tensor names and shapes and every tensor agrees within TOL relative
(norm-wise: |a - b| <= TOL * max(|b|, 1e-12)); prints the worst tensor."""
import json
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


def load(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        b, e = t["data_offsets"]
        raw = data[8 + n + b:8 + n + e]
        if t["dtype"] == "BF16":
            arr = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, DTYPES[t["dtype"]]).astype(np.float32)
        out[name] = arr.reshape(t["shape"]).astype(np.float64)
    return out


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
