#!/usr/bin/env python3
"""torch_model.py OUTDIR — PyTorch oracle for common/model/model.c.

Writes, for each tiny configuration below, a random-weight Hugging Face model
directory OUTDIR/<name>/ (config.json + model.safetensors in F32, with the
tensor names and layouts transformers uses), the same weights as BF16 in
OUTDIR/<name>_bf16/ and F16 in OUTDIR/<name>_f16/ (the weights are chosen
exactly representable in all three dtypes, so one set of expected numbers
serves all), for llama a sharded copy OUTDIR/llama_sharded/, and for gpt2
OUTDIR/gpt2_noprefix/ named like the original GPT-2 files (no
"transformer." prefix, with the .attn.bias/.attn.masked_bias buffers).

The architectures (GPT-2, Llama, Mistral, Qwen2, Qwen3, Gemma, Gemma 2,
Gemma 3 text, Phi-3) are written here in plain torch following the Hugging
Face modeling code's semantics (no transformers package is needed),
evaluated in float64. Each example's prompt+chosen and prompt+rejected run
as two ordinary causal sequences; longrope (Phi-3) picks its factors from
the batch's longest sequence, as transformers does from a padded batch's
largest position id.

Also written: OUTDIR/batch.json (token ids and lengths of the batch), and
OUTDIR/<name>/expected.safetensors with "logps" [R] (per response token, in
model.h's output order), "mean_logits" [R] (vocabulary mean of the logits
predicting each), "weights" [R], and "grad.<hf name>" = d/dθ of
Σ weights·logps for every parameter.
"""
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle_io  # noqa: E402  (safetensors files)

torch.set_default_dtype(torch.float64)

CONFIGS = {
    "gpt2": {"model_type": "gpt2", "n_layer": 2, "n_head": 2, "n_embd": 16, "n_inner": 40,
             "vocab_size": 50, "n_positions": 32, "layer_norm_epsilon": 1e-5,
             "activation_function": "gelu_new", "bos_token_id": 1, "eos_token_id": 2},
    "llama": {"model_type": "llama", "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "hidden_size": 32, "head_dim": 8, "intermediate_size": 48,
              "vocab_size": 50, "max_position_embeddings": 64, "rms_norm_eps": 1e-5,
              "rope_theta": 100.0, "tie_word_embeddings": False, "attention_bias": True,
              "mlp_bias": True, "hidden_act": "silu",
              "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                               "high_freq_factor": 4.0, "original_max_position_embeddings": 32}},
    "llama_linear": {"model_type": "llama", "num_hidden_layers": 1, "num_attention_heads": 2,
                     "num_key_value_heads": 1, "hidden_size": 16, "intermediate_size": 24,
                     "vocab_size": 50, "max_position_embeddings": 64, "rms_norm_eps": 1e-6,
                     "rope_theta": 10000.0, "tie_word_embeddings": True, "hidden_act": "silu",
                     "rope_scaling": {"type": "linear", "factor": 2.0}},
    "qwen2": {"model_type": "qwen2", "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "hidden_size": 32, "intermediate_size": 48,
              "vocab_size": 50, "max_position_embeddings": 64, "rms_norm_eps": 1e-6,
              "rope_theta": 1000.0, "tie_word_embeddings": True, "hidden_act": "silu",
              "use_sliding_window": False},
    "qwen3": {"model_type": "qwen3", "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 1, "hidden_size": 32, "head_dim": 12, "intermediate_size": 48,
              "vocab_size": 50, "max_position_embeddings": 64, "rms_norm_eps": 1e-6,
              "rope_theta": 1000.0, "tie_word_embeddings": False, "attention_bias": False,
              "hidden_act": "silu"},
    "mistral": {"model_type": "mistral", "num_hidden_layers": 2, "num_attention_heads": 4,
                "num_key_value_heads": 2, "hidden_size": 32, "intermediate_size": 48,
                "vocab_size": 50, "max_position_embeddings": 64, "rms_norm_eps": 1e-5,
                "rope_theta": 10000.0, "sliding_window": 4, "tie_word_embeddings": False,
                "hidden_act": "silu"},
    # Gemma: tied head, head_dim × heads ≠ hidden_size, Gemma 1.0's "gelu"
    # with hidden_activation naming the tanh approximation.
    "gemma": {"model_type": "gemma", "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 1, "hidden_size": 32, "head_dim": 12,
              "intermediate_size": 48, "vocab_size": 50, "max_position_embeddings": 64,
              "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "hidden_act": "gelu",
              "hidden_activation": "gelu_pytorch_tanh", "tie_word_embeddings": True},
    # Gemma 2 with small soft-caps (so they bend), a window of 3 on layers
    # 0 and 2, query_pre_attn_scalar ≠ head_dim.
    "gemma2": {"model_type": "gemma2", "num_hidden_layers": 3, "num_attention_heads": 4,
               "num_key_value_heads": 2, "hidden_size": 32, "head_dim": 12,
               "intermediate_size": 48, "vocab_size": 50, "max_position_embeddings": 64,
               "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
               "hidden_activation": "gelu_pytorch_tanh", "query_pre_attn_scalar": 16,
               "attn_logit_softcapping": 2.0, "final_logit_softcapping": 3.0,
               "sliding_window": 3, "tie_word_embeddings": True},
    # Edge cases: soft-caps and window null, untied head.
    "gemma2_nocap": {"model_type": "gemma2", "num_hidden_layers": 2, "num_attention_heads": 2,
                     "num_key_value_heads": 2, "hidden_size": 32, "head_dim": 8,
                     "intermediate_size": 40, "vocab_size": 50, "max_position_embeddings": 64,
                     "rms_norm_eps": 1e-6, "rope_theta": 1000.0,
                     "hidden_activation": "gelu_pytorch_tanh", "query_pre_attn_scalar": 8,
                     "attn_logit_softcapping": None, "final_logit_softcapping": None,
                     "sliding_window": None, "tie_word_embeddings": False},
    # Gemma 3 text: q/k norms, layer_types (every third layer global),
    # local RoPE base on sliding layers, linear scaling on global ones, a
    # final soft-cap, and an attention soft-cap that Gemma 3 ignores.
    "gemma3_text": {"model_type": "gemma3_text", "num_hidden_layers": 4,
                    "num_attention_heads": 4, "num_key_value_heads": 2, "hidden_size": 32,
                    "head_dim": 8, "intermediate_size": 48, "vocab_size": 50,
                    "max_position_embeddings": 64, "rms_norm_eps": 1e-6, "rope_theta": 1000.0,
                    "rope_local_base_freq": 100.0,
                    "rope_scaling": {"rope_type": "linear", "factor": 2.0},
                    "hidden_activation": "gelu_pytorch_tanh", "query_pre_attn_scalar": 16,
                    "attn_logit_softcapping": 2.0, "final_logit_softcapping": 3.0,
                    "sliding_window": 3,
                    "layer_types": ["sliding_attention", "sliding_attention", "full_attention",
                                    "sliding_attention"],
                    "tie_word_embeddings": True},
    # Phi-3: fused projections, partial rotary, longrope beyond an original
    # context of 8 (the batch reaches 10 tokens: long factors), a window.
    "phi3": {"model_type": "phi3", "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "hidden_size": 32, "intermediate_size": 40,
             "vocab_size": 50, "max_position_embeddings": 64,
             "original_max_position_embeddings": 8, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
             "partial_rotary_factor": 0.5, "sliding_window": 5, "hidden_act": "silu",
             "tie_word_embeddings": False,
             "rope_scaling": {"type": "longrope", "short_factor": [1.0, 1.5],
                              "long_factor": [2.0, 7.0]}},
    # Phi-3 as Phi-3.5-mini: full rotary, longrope within the original
    # context (short factors, the attention factor), no window.
    "phi3_short": {"model_type": "phi3", "num_hidden_layers": 1, "num_attention_heads": 2,
                   "num_key_value_heads": 2, "hidden_size": 16, "intermediate_size": 24,
                   "vocab_size": 50, "max_position_embeddings": 512,
                   "original_max_position_embeddings": 32, "rms_norm_eps": 1e-5,
                   "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": False,
                   "rope_scaling": {"type": "su", "short_factor": [1.0, 1.1, 1.3, 2.0],
                                    "long_factor": [1.0, 3.0, 9.0, 20.0]}},
}

GEMMA = ("gemma", "gemma2", "gemma3_text")

# (prompt, chosen, rejected) lengths; the last example has no rejected side.
LENGTHS = [(4, 5, 3), (6, 2, 4), (3, 3, 0)]


# ---- parameters ----

def param_shapes(cfg):
    """HF names and shapes, in a fixed order."""
    out = []
    if cfg["model_type"] == "gpt2":
        C, F, V = cfg["n_embd"], cfg["n_inner"], cfg["vocab_size"]
        out += [("transformer.wte.weight", (V, C)), ("transformer.wpe.weight", (cfg["n_positions"], C))]
        for l in range(cfg["n_layer"]):
            p = f"transformer.h.{l}."
            out += [(p + "ln_1.weight", (C,)), (p + "ln_1.bias", (C,)),
                    (p + "attn.c_attn.weight", (C, 3 * C)), (p + "attn.c_attn.bias", (3 * C,)),
                    (p + "attn.c_proj.weight", (C, C)), (p + "attn.c_proj.bias", (C,)),
                    (p + "ln_2.weight", (C,)), (p + "ln_2.bias", (C,)),
                    (p + "mlp.c_fc.weight", (C, F)), (p + "mlp.c_fc.bias", (F,)),
                    (p + "mlp.c_proj.weight", (F, C)), (p + "mlp.c_proj.bias", (C,))]
        out += [("transformer.ln_f.weight", (C,)), ("transformer.ln_f.bias", (C,))]
        return out
    C, F, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = cfg.get("head_dim", C // H)
    t = cfg["model_type"]
    if t in GEMMA or t == "phi3":
        post = t in ("gemma2", "gemma3_text")
        out.append(("model.embed_tokens.weight", (V, C)))
        for l in range(cfg["num_hidden_layers"]):
            p = f"model.layers.{l}."
            out.append((p + "input_layernorm.weight", (C,)))
            if t == "phi3":
                out.append((p + "self_attn.qkv_proj.weight", ((H + 2 * KV) * D, C)))
            else:
                out += [(p + f"self_attn.{n}_proj.weight", (o, C))
                        for n, o in (("q", H * D), ("k", KV * D), ("v", KV * D))]
            out.append((p + "self_attn.o_proj.weight", (C, H * D)))
            if t == "gemma3_text":
                out += [(p + "self_attn.q_norm.weight", (D,)), (p + "self_attn.k_norm.weight", (D,))]
            out.append((p + "post_attention_layernorm.weight", (C,)))
            if post:
                out += [(p + "pre_feedforward_layernorm.weight", (C,)),
                        (p + "post_feedforward_layernorm.weight", (C,))]
            if t == "phi3":
                out += [(p + "mlp.gate_up_proj.weight", (2 * F, C)), (p + "mlp.down_proj.weight", (C, F))]
            else:
                out += [(p + f"mlp.{n}_proj.weight", shp)
                        for n, shp in (("gate", (F, C)), ("up", (F, C)), ("down", (C, F)))]
        out.append(("model.norm.weight", (C,)))
        if not cfg.get("tie_word_embeddings", t in GEMMA):
            out.append(("lm_head.weight", (V, C)))
        return out
    qwen2 = cfg["model_type"] == "qwen2"
    qkv_bias = qwen2 or cfg.get("attention_bias", False)
    o_bias = (not qwen2) and cfg.get("attention_bias", False)
    mlp_bias = cfg.get("mlp_bias", False)
    out.append(("model.embed_tokens.weight", (V, C)))
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        out.append((p + "input_layernorm.weight", (C,)))
        for n, o in (("q", H * D), ("k", KV * D), ("v", KV * D)):
            out.append((p + f"self_attn.{n}_proj.weight", (o, C)))
            if qkv_bias:
                out.append((p + f"self_attn.{n}_proj.bias", (o,)))
        out.append((p + "self_attn.o_proj.weight", (C, H * D)))
        if o_bias:
            out.append((p + "self_attn.o_proj.bias", (C,)))
        if cfg["model_type"] == "qwen3":
            out += [(p + "self_attn.q_norm.weight", (D,)), (p + "self_attn.k_norm.weight", (D,))]
        out.append((p + "post_attention_layernorm.weight", (C,)))
        for n, shp in (("gate", (F, C)), ("up", (F, C)), ("down", (C, F))):
            out.append((p + f"mlp.{n}_proj.weight", shp))
            if mlp_bias:
                out.append((p + f"mlp.{n}_proj.bias", (shp[0],)))
    out.append(("model.norm.weight", (C,)))
    if not cfg.get("tie_word_embeddings", False):
        out.append(("lm_head.weight", (V, C)))
    return out


def exact_in_all_dtypes(x):
    """Rounds to bf16 and zeroes values below f16's normal range, so the
    tensor is exact in F32, BF16 and F16."""
    x = x.float().to(torch.bfloat16).float()
    x[x.abs() < 2.0 ** -14] = 0.0
    assert torch.equal(x.half().float(), x)
    return x.double()


def random_params(cfg, gen):
    params = {}
    for name, shape in param_shapes(cfg):
        is_norm = any(s in name for s in ("ln_", "norm")) and name.endswith("weight")
        if is_norm and cfg["model_type"] in GEMMA:  # used as 1 + w
            x = 0.1 * torch.randn(shape, generator=gen)
        elif is_norm:
            x = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        elif name.endswith("bias"):
            x = 0.1 * torch.randn(shape, generator=gen)
        else:
            x = 0.15 * torch.randn(shape, generator=gen)
        params[name] = exact_in_all_dtypes(x).requires_grad_(True)
    return params


# ---- architectures, Hugging Face semantics ----

def layer_norm(x, w, b, eps):
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), w, b, eps)


def rms_norm(x, w, eps):
    var = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + eps))


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def attention(q, k, v, window, scale=None, softcap=None):
    """q [H,T,D], k, v [KV,T,D]; causal (and sliding window: keys k with
    q − window < k ≤ q) softmax of scores scale·q·k (1/√D by default),
    soft-capped as cap·tanh(s / cap) before the mask when softcap is set."""
    H, T, D = q.shape
    rep = H // k.shape[0]
    k = k.repeat_interleave(rep, dim=0)
    v = v.repeat_interleave(rep, dim=0)
    scores = q @ k.transpose(1, 2) * (scale if scale else 1.0 / math.sqrt(D))
    if softcap:
        scores = torch.tanh(scores / softcap) * softcap
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    masked = j > i
    if window:
        masked = masked | (j <= i - window)
    scores = scores.masked_fill(masked, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def gpt2_logits(cfg, P, ids):
    T, C, H = len(ids), cfg["n_embd"], cfg["n_head"]
    eps = cfg["layer_norm_epsilon"]
    x = P["transformer.wte.weight"][ids] + P["transformer.wpe.weight"][torch.arange(T)]
    for l in range(cfg["n_layer"]):
        p = f"transformer.h.{l}."
        a = layer_norm(x, P[p + "ln_1.weight"], P[p + "ln_1.bias"], eps)
        qkv = a @ P[p + "attn.c_attn.weight"] + P[p + "attn.c_attn.bias"]  # Conv1D: x·W + b
        q, k, v = qkv.split(C, dim=-1)
        heads = lambda t: t.view(T, H, C // H).transpose(0, 1)
        o = attention(heads(q), heads(k), heads(v), 0).transpose(0, 1).reshape(T, C)
        x = x + o @ P[p + "attn.c_proj.weight"] + P[p + "attn.c_proj.bias"]
        m = layer_norm(x, P[p + "ln_2.weight"], P[p + "ln_2.bias"], eps)
        f = gelu_new(m @ P[p + "mlp.c_fc.weight"] + P[p + "mlp.c_fc.bias"])
        x = x + f @ P[p + "mlp.c_proj.weight"] + P[p + "mlp.c_proj.bias"]
    x = layer_norm(x, P["transformer.ln_f.weight"], P["transformer.ln_f.bias"], eps)
    return x @ P["transformer.wte.weight"].T


def rope_inv_freq(cfg, D):
    base = cfg.get("rope_theta", 10000.0)
    inv = 1.0 / (base ** (torch.arange(0, D, 2, dtype=torch.int64).double() / D))
    rs = cfg.get("rope_scaling")
    if rs:
        kind = rs.get("rope_type", rs.get("type"))
        factor = rs["factor"]
        if kind == "linear":
            inv = inv / factor
        elif kind == "llama3":
            low, high = rs["low_freq_factor"], rs["high_freq_factor"]
            old = rs["original_max_position_embeddings"]
            low_wavelen, high_wavelen = old / low, old / high
            wavelen = 2 * math.pi / inv
            inv_l = torch.where(wavelen > low_wavelen, inv / factor, inv)
            smooth = (old / wavelen - low) / (high - low)
            smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
            medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
            inv = torch.where(medium, smoothed, inv_l)
    return inv


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def llama_logits(cfg, P, ids):
    T, C = len(ids), cfg["hidden_size"]
    H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = cfg.get("head_dim", C // H)
    eps = cfg["rms_norm_eps"]
    window = cfg.get("sliding_window") or 0 if cfg["model_type"] == "mistral" else 0
    inv = rope_inv_freq(cfg, D)
    freqs = torch.arange(T).double()[:, None] * inv[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()

    def lin(x, name):
        y = x @ P[name + ".weight"].T
        return y + P[name + ".bias"] if name + ".bias" in P else y

    x = P["model.embed_tokens.weight"][ids]
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        a = rms_norm(x, P[p + "input_layernorm.weight"], eps)
        q = lin(a, p + "self_attn.q_proj").view(T, H, D)
        k = lin(a, p + "self_attn.k_proj").view(T, KV, D)
        v = lin(a, p + "self_attn.v_proj").view(T, KV, D)
        if cfg["model_type"] == "qwen3":
            q = rms_norm(q, P[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, P[p + "self_attn.k_norm.weight"], eps)
        q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        o = attention(q, k, v, window).transpose(0, 1).reshape(T, H * D)
        x = x + lin(o, p + "self_attn.o_proj")
        m = rms_norm(x, P[p + "post_attention_layernorm.weight"], eps)
        g = lin(m, p + "mlp.gate_proj")
        x = x + lin(torch.nn.functional.silu(g) * lin(m, p + "mlp.up_proj"), p + "mlp.down_proj")
    x = rms_norm(x, P["model.norm.weight"], eps)
    head = P["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else P["lm_head.weight"]
    return x @ head.T


def gemma_norm(x, w, eps):
    """Gemma's RMSNorm: the weight is used as 1 + w."""
    var = x.pow(2).mean(-1, keepdim=True)
    return (x * torch.rsqrt(var + eps)) * (1.0 + w)


def rope_cos_sin(inv, T, mscale=1.0):
    freqs = torch.arange(T).double()[:, None] * inv[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos() * mscale, emb.sin() * mscale


def apply_rope(x, cos, sin):
    """Rotates the first cos.shape[-1] dims of x [.., T, D] (partial rotary);
    the rest pass through."""
    rot = cos.shape[-1]
    xr, xp = x[..., :rot], x[..., rot:]
    return torch.cat((xr * cos + rotate_half(xr) * sin, xp), dim=-1)


def longrope(cfg, rot, seq_len):
    """Phi-3's longrope: inv_freq = 1 / (factor_i · θ^(2i/rot)), the long
    factors when the sequence exceeds original_max_position_embeddings, and
    the attention factor √(1 + ln f / ln original), f = the scaling's factor
    or max_pos / original."""
    rs = cfg["rope_scaling"]
    orig = cfg.get("original_max_position_embeddings", 4096)
    f = rs.get("factor") or cfg["max_position_embeddings"] / orig
    att = rs.get("attention_factor")
    if att is None:
        att = 1.0 if f <= 1.0 else math.sqrt(1 + math.log(f) / math.log(orig))
    ext = torch.tensor(rs["long_factor"] if seq_len > orig else rs["short_factor"]).double()
    inv = 1.0 / (ext * cfg.get("rope_theta", 10000.0) ** (torch.arange(0, rot, 2).double() / rot))
    return inv, att


def gemma_phi3_logits(cfg, P, ids, rope_seq_len=None):
    """Gemma (1, 2, 3 text) and Phi-3, as transformers' modeling_gemma*.py
    and modeling_phi3.py define them."""
    t = cfg["model_type"]
    gemma, post, g3 = t in GEMMA, t in ("gemma2", "gemma3_text"), t == "gemma3_text"
    T, C = len(ids), cfg["hidden_size"]
    H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = cfg.get("head_dim", 256 if gemma else C // H)
    F = cfg["intermediate_size"]
    eps = cfg.get("rms_norm_eps", 1e-6)
    norm = gemma_norm if gemma else rms_norm
    L = cfg["num_hidden_layers"]
    scale = cfg.get("query_pre_attn_scalar", 256) ** -0.5 if post else None
    softcap = cfg.get("attn_logit_softcapping", 50.0) if t == "gemma2" else None
    final_cap = cfg.get("final_logit_softcapping", 30.0 if t == "gemma2" else None) if post else None
    # which layers slide: Gemma 2 even layers, Gemma 3 by layer_types (or
    # every sliding_window_pattern-th layer full), Phi-3 all
    if t == "gemma2":
        sliding = [l % 2 == 0 for l in range(L)]
    elif g3 and cfg.get("layer_types"):
        sliding = [x == "sliding_attention" for x in cfg["layer_types"]]
    elif g3:
        pat = cfg.get("sliding_window_pattern", 6)
        sliding = [(l + 1) % pat != 0 for l in range(L)]
    else:
        sliding = [t == "phi3"] * L
    window = cfg.get("sliding_window", 4096 if post else None) or 0
    rot = int(D * cfg.get("partial_rotary_factor", 1.0))
    mscale = 1.0
    rs = cfg.get("rope_scaling")
    if t == "phi3" and rs and rs.get("type", rs.get("rope_type")) in ("longrope", "su", "yarn"):
        inv, mscale = longrope(cfg, rot, rope_seq_len or T)
    else:
        inv = rope_inv_freq(dict(cfg, rope_theta=cfg.get("rope_theta", 1e6 if g3 else 10000.0)), rot)
    cos, sin = rope_cos_sin(inv, T, mscale)
    if g3:  # sliding layers: their own base, no scaling
        local = rope_inv_freq({"rope_theta": cfg.get("rope_local_base_freq", 10000.0)}, rot)
        cos_l, sin_l = rope_cos_sin(local, T)

    x = P["model.embed_tokens.weight"][ids]
    if gemma:  # × √hidden_size, the constant rounded to float32 (the compute dtype)
        x = x * torch.tensor(math.sqrt(C), dtype=torch.float32).double()
    for l in range(L):
        p = f"model.layers.{l}."
        a = norm(x, P[p + "input_layernorm.weight"], eps)
        if t == "phi3":
            qkv = a @ P[p + "self_attn.qkv_proj.weight"].T
            q, k, v = qkv[:, :H * D], qkv[:, H * D:(H + KV) * D], qkv[:, (H + KV) * D:]
        else:
            q, k, v = (a @ P[p + f"self_attn.{n}_proj.weight"].T for n in "qkv")
        q, k, v = q.view(T, H, D), k.view(T, KV, D), v.view(T, KV, D)
        if g3:
            q = gemma_norm(q, P[p + "self_attn.q_norm.weight"], eps)
            k = gemma_norm(k, P[p + "self_attn.k_norm.weight"], eps)
        q, k, v = q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1)
        c_, s_ = (cos_l, sin_l) if g3 and sliding[l] else (cos, sin)
        q, k = apply_rope(q, c_, s_), apply_rope(k, c_, s_)
        o = attention(q, k, v, window if sliding[l] else 0, scale, softcap)
        o = o.transpose(0, 1).reshape(T, H * D) @ P[p + "self_attn.o_proj.weight"].T
        if post:
            x = x + norm(o, P[p + "post_attention_layernorm.weight"], eps)
            m = norm(x, P[p + "pre_feedforward_layernorm.weight"], eps)
        else:
            x = x + o
            m = norm(x, P[p + "post_attention_layernorm.weight"], eps)
        if t == "phi3":
            gu = m @ P[p + "mlp.gate_up_proj.weight"].T
            h = gu[:, F:] * torch.nn.functional.silu(gu[:, :F])
        else:
            h = gelu_new(m @ P[p + "mlp.gate_proj.weight"].T) * (m @ P[p + "mlp.up_proj.weight"].T)
        h = h @ P[p + "mlp.down_proj.weight"].T
        x = x + (norm(h, P[p + "post_feedforward_layernorm.weight"], eps) if post else h)
    x = norm(x, P["model.norm.weight"], eps)
    head = P["lm_head.weight"] if "lm_head.weight" in P else P["model.embed_tokens.weight"]
    logits = x @ head.T
    if final_cap:
        logits = torch.tanh(logits / final_cap) * final_cap
    return logits


def response_logps(cfg, P, prompt, resp, rope_seq_len=None):
    """log p(resp_j | prompt, resp_<j) for one causal sequence prompt+resp,
    and the vocabulary mean of the logits that predicted each resp_j
    (rope_seq_len: the batch's longest sequence, for longrope)."""
    if not resp:
        return torch.zeros(0), torch.zeros(0)
    ids = torch.tensor(prompt + resp)
    if cfg["model_type"] == "gpt2":
        logits = gpt2_logits(cfg, P, ids)
    elif cfg["model_type"] in GEMMA or cfg["model_type"] == "phi3":
        logits = gemma_phi3_logits(cfg, P, ids, rope_seq_len)
    else:
        logits = llama_logits(cfg, P, ids)
    lp = torch.log_softmax(logits, dim=-1)
    n = len(prompt)
    rows = torch.arange(n - 1, n - 1 + len(resp))
    return lp[rows, torch.tensor(resp)], logits[rows].mean(-1).detach()


# ---- files ----

def write_safetensors(path, tensors, dtype):
    """tensors: list of (name, float64 tensor); dtype F32, BF16 or F16; laid
    out in name order."""
    items = []
    for name, t in sorted(tensors, key=lambda nt: nt[0]):
        a = t.detach().float().numpy()
        if dtype == "F32":
            raw = a.astype("<f4").tobytes()
        elif dtype == "F16":
            raw = a.astype("<f2").tobytes()
        else:
            raw = (a.astype("<f4").view("<u4") >> 16).astype("<u2").tobytes()
        items.append((name, dtype, a.shape, raw))
    oracle_io.write_safetensors(path, items, {"format": "pt"})


def write_model_dir(d, cfg, params, dtype):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    write_safetensors(os.path.join(d, "model.safetensors"), list(params.items()), dtype)


def write_sharded(d, cfg, params):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    items = sorted(params.items())
    half = len(items) // 2
    shards = [items[:half], items[half:]]
    weight_map = {}
    for i, shard in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        write_safetensors(os.path.join(d, fname), shard, "F32")
        for name, _ in shard:
            weight_map[name] = fname
    total = sum(t.numel() * 4 for _, t in items)
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    gen = torch.Generator().manual_seed(20261127)
    examples, tokens = [], []
    for P_, C_, R_ in LENGTHS:
        ids = torch.randint(0, 50, (P_ + C_ + R_,), generator=gen).tolist()
        examples.append((ids[:P_], ids[P_:P_ + C_], ids[P_ + C_:]))
        tokens += ids
    with open(os.path.join(out, "batch.json"), "w") as f:
        json.dump({"tokens": tokens, "n_prompt": [l[0] for l in LENGTHS],
                   "n_chosen": [l[1] for l in LENGTHS], "n_rejected": [l[2] for l in LENGTHS]}, f)
    longest = max(len(p) + max(len(c), len(r)) for p, c, r in examples)
    for name, cfg in CONFIGS.items():
        params = random_params(cfg, gen)
        sides = [response_logps(cfg, params, p, side, longest)
                 for p, c, r in examples for side in (c, r)]
        logps = torch.cat([lp for lp, _ in sides])
        mean_logits = torch.cat([ml for _, ml in sides])
        weights = exact_in_all_dtypes(torch.randn(logps.shape, generator=gen))
        (weights * logps).sum().backward()
        expected = [("logps", logps.detach()), ("mean_logits", mean_logits), ("weights", weights)]
        expected += [("grad." + n, t.grad) for n, t in params.items()]
        write_model_dir(os.path.join(out, name), cfg, params, "F32")
        write_safetensors(os.path.join(out, name, "expected.safetensors"), expected, "F32")
        write_model_dir(os.path.join(out, name + "_bf16"), cfg, params, "BF16")
        write_model_dir(os.path.join(out, name + "_f16"), cfg, params, "F16")
        if name == "llama":
            write_sharded(os.path.join(out, "llama_sharded"), cfg, params)
        if name == "gpt2":
            # As the original GPT-2 files: no "transformer." prefix, with the
            # attention mask buffers stored alongside the weights.
            T = cfg["n_positions"]
            hf = [(n[len("transformer."):], t) for n, t in params.items()]
            for l in range(cfg["n_layer"]):
                hf.append((f"h.{l}.attn.bias", torch.tril(torch.ones(T, T)).view(1, 1, T, T)))
                hf.append((f"h.{l}.attn.masked_bias", torch.tensor(-1e4)))
            d = os.path.join(out, "gpt2_noprefix")
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "config.json"), "w") as f:
                json.dump(cfg, f, indent=2)
            write_safetensors(os.path.join(d, "model.safetensors"), hf, "F32")


if __name__ == "__main__":
    main()
