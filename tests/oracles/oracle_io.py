"""oracle_io — the files the oracles read and write, by hand (struct + numpy;
no safetensors package): safetensors files and JSON Lines.

A safetensors file is an 8-byte little-endian header length N, N bytes of
JSON ({name: {"dtype", "shape", "data_offsets": [begin, end]}, optional
"__metadata__"}), then the data area the offsets index."""
import json
import struct

import numpy as np

# little-endian numpy types of the dtypes numpy has (BF16 goes by its bits)
NUMPY_DTYPE = {"F32": "<f4", "F16": "<f2", "F64": "<f8"}


def read_safetensors(path):
    """name -> float64 numpy array of the file's shape: F32, F16 and F64
    exactly, BF16 as the float32 its bits are the top half of."""
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
            a = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(raw, NUMPY_DTYPE[t["dtype"]])
        out[name] = a.astype(np.float64).reshape(t["shape"])
    return out


def write_safetensors(path, tensors, metadata, pad=True):
    """tensors: list of (name, dtype, shape, raw bytes), laid out in the given
    order; metadata: the "__metadata__" object (after the tensors in the
    header). pad=True pads the header with spaces to a multiple of 8 bytes;
    pad=False leaves its length odd, so the data starts at an odd offset."""
    header, blobs, at = {}, [], 0
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    header["__metadata__"] = metadata
    text = json.dumps(header).encode("utf-8")
    if pad:
        text += b" " * (-len(text) % 8)
    elif len(text) % 2 == 0:
        text += b" "
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def read_jsonl(path):
    """The JSON value of every non-blank line of PATH, in order."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
