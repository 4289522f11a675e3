"""safetensors oracle for tests/test_safetensors.c.

Writes safetensors files by hand (struct + numpy, values converted by numpy
and torch) for the C reader, and checks the files the C writer produced
against the format's rules and torch's fp32 -> bf16 rounding.

  safetensors_oracle.py write DIR   files for the C reader (see write())
  safetensors_oracle.py check DIR   checks DIR/c_f32.safetensors, DIR/c_bf16.safetensors

Exit status 0 when everything matches; otherwise one line per problem.
"""
import json
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle_io import write_safetensors  # noqa: E402

DTYPE_SIZE = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8}


def write_file(path, tensors, pad=True):
    """tensors: list of (name, dtype, shape, raw bytes), written in the given
    order (deliberately not sorted). pad=False leaves the header length
    unaligned so the data starts at an odd offset."""
    write_safetensors(path, tensors, {"format": "pt", "writer": "oracle"}, pad)


def f32(a):
    return np.ascontiguousarray(a, dtype="<f4")


def write(d):
    rng = np.random.default_rng(1234)
    os.makedirs(d, exist_ok=True)

    # F16: every bit pattern, and its fp32 value as numpy converts it.
    bits16 = np.arange(65536, dtype="<u2")
    half = bits16.view("<f2")
    x16 = (rng.standard_normal((3, 5, 7)) * 10).astype("<f2")
    write_file(os.path.join(d, "f16.safetensors"), [
        ("all", "F16", [256, 256], half.tobytes()),
        ("all_expect", "F32", [256, 256], f32(half.astype(np.float32)).tobytes()),
        ("x", "F16", [3, 5, 7], x16.tobytes()),
        ("x_expect", "F32", [3, 5, 7], f32(x16.astype(np.float32)).tobytes()),
    ], pad=False)

    # BF16: every bit pattern, converted by torch.
    bf = torch.from_numpy(bits16.view(np.int16).copy()).view(torch.bfloat16)
    xb = (torch.randn(4, 9, generator=torch.Generator().manual_seed(7)) * 3).to(torch.bfloat16)
    write_file(os.path.join(d, "bf16.safetensors"), [
        ("all", "BF16", [65536], bf.view(torch.int16).numpy().tobytes()),
        ("all_expect", "F32", [65536], f32(bf.float().numpy()).tobytes()),
        ("x", "BF16", [4, 9], xb.view(torch.int16).numpy().tobytes()),
        ("x_expect", "F32", [4, 9], f32(xb.float().numpy()).tobytes()),
    ])

    # F32 (including a scalar and an empty tensor) and F64.
    x32 = f32(rng.standard_normal((2, 3, 4)))
    x64 = np.ascontiguousarray(rng.standard_normal(33) * 1e3, dtype="<f8")
    write_file(os.path.join(d, "f32.safetensors"), [
        ("x", "F32", [2, 3, 4], x32.tobytes()),
        ("x_expect", "F32", [2, 3, 4], x32.tobytes()),
        ("scalar", "F32", [], f32([2.5]).tobytes()),
        ("scalar_expect", "F32", [], f32([2.5]).tobytes()),
        ("empty", "F32", [0, 3], b""),
        ("empty_expect", "F32", [0, 3], b""),
        ("d", "F64", [3, 11], x64.tobytes()),
        ("d_expect", "F32", [3, 11], f32(x64.astype(np.float32)).tobytes()),
    ])

    # Sharded: tensor "layer.K" (K = 0..4) holds K*16 + arange(6)/2 as shape [2, 3];
    # layers 0-2 in shard 1 (F32), layers 3-4 in shard 2 (BF16, values exact).
    sd = os.path.join(d, "sharded")
    os.makedirs(sd, exist_ok=True)
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    wm, shard = {}, [[], []]
    for k in range(5):
        v = k * 16 + np.arange(6, dtype=np.float32) / 2
        s = 0 if k < 3 else 1
        if s == 0:
            shard[0].append((f"layer.{k}", "F32", [2, 3], f32(v).tobytes()))
        else:
            b = torch.from_numpy(v).to(torch.bfloat16).view(torch.int16).numpy().tobytes()
            shard[1].append((f"layer.{k}", "BF16", [2, 3], b))
        wm[f"layer.{k}"] = names[s]
    for s in range(2):
        write_file(os.path.join(sd, names[s]), shard[s])
    with open(os.path.join(sd, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": wm}, f)


# ---- checking what the C writer produced ------------------------------------

def lcg_bits(n):
    """The C test's generator: x = x * 6364136223846793005 + 1442695040888963407
    (mod 2^64) from x = 42, value bits = x >> 32."""
    out, x = [], 42
    for _ in range(n):
        x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        out.append(x >> 32)
    return np.array(out, dtype="<u4").view("<f4")


def expected_tensors():
    """What the C test writes (see test_oracle_reads_c in test_safetensors.c)."""
    ramp = f32([(i * 37 % 1000 - 500) / 64.0 for i in range(100)]).reshape(4, 25)
    special = f32([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, 3.4028234663852886e38,
                   1 + 2.0**-8, 1 + 3 * 2.0**-8, -(1 + 2.0**-8), 1.0 / 3.0, 65504.0,
                   2.0**-126 * 0.75])
    special = np.concatenate([special, np.array([0x7F800001, 0xFF812345], "<u4").view("<f4")])
    return {
        "z.lcg": lcg_bits(1000).reshape(10, 100),
        "a.ramp": ramp,
        "m.special": special,
        "e.empty": np.zeros((0, 4), "<f4"),
        "s.scalar": f32(3.5).reshape(()),
    }


def read_file(path, problems):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    text = raw[8:8 + n]
    if n % 8 != 0:
        problems.append(f"{path}: header length {n} is not a multiple of 8")
    stripped = text.rstrip(b" ")
    if not stripped.endswith(b"}"):
        problems.append(f"{path}: header padding is not spaces")
    header = json.loads(text.decode("utf-8"))
    meta = header.pop("__metadata__", None)
    if meta != {"format": "pt"}:
        problems.append(f"{path}: __metadata__ is {meta!r}, expected {{'format': 'pt'}}")
    data = raw[8 + n:]
    by_offset = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"])
    if [k for k, _ in by_offset] != sorted(header):
        problems.append(f"{path}: tensors are not laid out in name order")
    at = 0
    out = {}
    for name, e in by_offset:
        b, end = e["data_offsets"]
        if b != at:
            problems.append(f"{path}: {name} starts at {b}, expected {at}")
        size = DTYPE_SIZE[e["dtype"]] * int(np.prod(e["shape"], dtype=np.int64))
        if end - b != size:
            problems.append(f"{path}: {name} has {end - b} bytes, expected {size}")
        out[name] = (e["dtype"], e["shape"], data[b:end])
        at = end
    if at != len(data):
        problems.append(f"{path}: data area is {len(data)} bytes, tensors cover {at}")
    return out


def check(d):
    problems = []
    want = expected_tensors()
    got32 = read_file(os.path.join(d, "c_f32.safetensors"), problems)
    got16 = read_file(os.path.join(d, "c_bf16.safetensors"), problems)
    for got, dtype in ((got32, "F32"), (got16, "BF16")):
        if sorted(got) != sorted(want):
            problems.append(f"{dtype} file has tensors {sorted(got)}, expected {sorted(want)}")
            continue
        for name, ref in want.items():
            dt, shape, raw = got[name]
            if dt != dtype or list(shape) != list(ref.shape):
                problems.append(f"{dtype} {name}: dtype {dt} shape {shape}, expected "
                                f"{dtype} {list(ref.shape)}")
                continue
            if dtype == "F32":
                a = np.frombuffer(raw, "<u4")
                b = ref.reshape(-1).view("<u4")
                bad = np.nonzero(a != b)[0]
            else:
                a = np.frombuffer(raw, "<u2").astype(np.int64)
                tb = torch.from_numpy(ref.reshape(-1).copy()).to(torch.bfloat16)
                b = tb.view(torch.int16).numpy().view("<u2").astype(np.int64)
                nan_a = (a & 0x7FFF) > 0x7F80
                nan_b = (b & 0x7FFF) > 0x7F80
                bad = np.nonzero((a != b) & ~(nan_a & nan_b))[0]
            for i in bad[:5]:
                problems.append(f"{dtype} {name}[{i}]: bits {a[i]:#x}, expected {b[i]:#x}")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("write", "check"):
        sys.exit("usage: safetensors_oracle.py write|check DIR")
    if sys.argv[1] == "write":
        write(sys.argv[2])
        sys.exit(0)
    sys.exit(check(sys.argv[2]))
