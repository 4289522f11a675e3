#!/usr/bin/env python3
"""peft_writer.py BASE ADAPTER MERGED R ALPHA RSLORA TARGETS SEED DTYPE

An adapter as PEFT writes one, made without dpoc: ADAPTER/adapter_config.json
(sorted keys, indent 2) and ADAPTER/adapter_model.safetensors with PEFT's
names (base_model.model.<module>.lora_A.weight [r, in], lora_B.weight
[out, r]) in DTYPE (F32 or BF16), random A and B (B non-zero, so the adapter
changes the model); and MERGED, the base with the adapter folded in as
PEFT's merge does (W += scale · B A, transposed for GPT-2's Conv1D), computed
in float64 from the stored values, written F32 with BASE's config and
tokenizer files. TARGETS: comma-separated module names."""
import json
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle_io  # noqa: E402


def to_bf16(a):
    """float64 → bfloat16 bytes (round to nearest even), and the values kept."""
    u = a.astype(np.float32).view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    kept = (u.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return u.tobytes(), kept


def main():
    base, adapter, merged, r, alpha, rslora, targets, seed, dtype = sys.argv[1:10]
    r, alpha, rslora, seed = int(r), float(alpha), rslora == "true", int(seed)
    targets = targets.split(",")
    cfg = json.load(open(os.path.join(base, "config.json")))
    gpt2 = cfg["model_type"] == "gpt2"
    W = oracle_io.read_safetensors(os.path.join(base, "model.safetensors"))
    rng = np.random.default_rng(seed)
    scale = alpha / np.sqrt(r) if rslora else alpha / r
    tensors, out = [], dict(W)
    for name in sorted(W):
        if not name.endswith(".weight") or W[name].ndim != 2:
            continue
        module = name[: -len(".weight")]
        leaf = module.rsplit(".", 1)[-1]
        if leaf not in targets or "wte" in module or "embed" in module or "lm_head" in module:
            continue
        w = W[name]
        fan_in, fan_out = (w.shape[0], w.shape[1]) if gpt2 else (w.shape[1], w.shape[0])
        A = rng.uniform(-1, 1, (r, fan_in)) / np.sqrt(fan_in)
        B = rng.normal(0, 0.05, (fan_out, r))
        for ab, t in (("A", A), ("B", B)):
            key = f"base_model.model.{module}.lora_{ab}.weight"
            if dtype == "BF16":
                raw, kept = to_bf16(t)
            else:
                raw, kept = t.astype(np.float32).tobytes(), t.astype(np.float32).astype(np.float64)
            tensors.append((key, dtype, t.shape, raw))
            if ab == "A":
                A = kept
            else:
                B = kept
        delta = scale * (B @ A)
        out[name] = w + (delta.T if gpt2 else delta)
    os.makedirs(adapter, exist_ok=True)
    oracle_io.write_safetensors(os.path.join(adapter, "adapter_model.safetensors"), tensors,
                                {"format": "pt"})
    conf = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": base,
            "r": r, "lora_alpha": alpha, "lora_dropout": 0.05, "target_modules": targets,
            "bias": "none", "fan_in_fan_out": gpt2, "use_rslora": rslora, "use_dora": False,
            "modules_to_save": None, "init_lora_weights": True, "inference_mode": True,
            "rank_pattern": {}, "alpha_pattern": {}, "layers_to_transform": None,
            "revision": None, "megatron_config": None}
    with open(os.path.join(adapter, "adapter_config.json"), "w") as f:
        json.dump(conf, f, sort_keys=True, indent=2)
    os.makedirs(merged, exist_ok=True)
    oracle_io.write_safetensors(
        os.path.join(merged, "model.safetensors"),
        [(n, "F32", out[n].shape, out[n].astype(np.float32).tobytes()) for n in sorted(out)],
        {"format": "pt"})
    for f in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        if os.path.exists(os.path.join(base, f)):
            shutil.copy(os.path.join(base, f), merged)
    print(f"{len(tensors)} adapter tensors")


if __name__ == "__main__":
    main()
