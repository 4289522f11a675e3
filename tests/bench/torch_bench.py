"""torch_bench — PyTorch's side of the benchmark suite (tests/bench/run.sh).

The same two architectures as the engine (GPT-2, Llama) in plain eager
PyTorch on the CPU, run the way DPO is usually run (TRL's DPOTrainer): for
every pair, chosen and rejected are each concatenated with the prompt, the
2·B sequences are right-padded into one batch, the model produces the full
logits, and log_softmax + gather give the per-token log-probabilities,
summed over the response tokens.

  torch_bench.py info OUT.json
      whether torch imports, its version; exit 0 either way
  torch_bench.py run THREADS OUT_DIR JOB [JOB ...]
      writes OUT_DIR/torch_info.json as info does; without torch, runs
      nothing and exits 0
      JOB = precompute,CONFIG,LENGTHS,BATCH,NAME
            forward (no_grad) over every pair of LENGTHS in file order,
            BATCH pairs a batch
          | train,CONFIG,LENGTHS,BATCH,STEPS,NAME
            online DPO steps: reference forward under no_grad, policy
            forward and backward, clip to norm 1, AdamW
      writes OUT_DIR/NAME.json per job

Tokens are counted as real tokens, (P+C) + (P+R) per pair, never padding,
the same count bench.c uses. A warm-up on the first batch (a forward, or a
whole step) runs untimed first, as bench.c does. Peak memory is the process's
ru_maxrss, so run.sh gives each job its own process."""
import json
import math
import resource
import sys
import time


def write(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)


def cmd_info(out):
    try:
        import torch
    except Exception as e:  # ImportError, or a broken install
        write(out, {"available": False, "reason": "import torch failed: %s" % e})
        return 0
    write(out, {"available": True, "version": torch.__version__,
                "default_threads": torch.get_num_threads()})
    return 0


def read_lengths(path):
    with open(path) as f:
        head = f.readline().split()
        if len(head) != 4 or head[0] != "#":
            raise SystemExit("%s:1: expected \"# DIST N SEED\"" % path)
        pairs = [tuple(int(x) for x in line.split()) for line in f if line.strip()]
    return head[1], pairs


def build(torch, cfg):
    nn, F = torch.nn, torch.nn.functional

    def causal_attention(q, k, v):
        # q [B, H, T, D], k/v [B, H, T, D]; right padding needs only the causal mask.
        T = q.shape[2]
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        att = att.masked_fill(mask, float("-inf")).softmax(dim=-1)
        return att @ v

    if cfg["model_type"] == "gpt2":
        C, H, L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
        Fdim = cfg.get("n_inner") or 4 * C
        eps = cfg.get("layer_norm_epsilon", 1e-5)

        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.ln_1, self.ln_2 = nn.LayerNorm(C, eps=eps), nn.LayerNorm(C, eps=eps)
                self.c_attn, self.c_proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
                self.c_fc, self.mlp_proj = nn.Linear(C, Fdim), nn.Linear(Fdim, C)

            def forward(self, x):
                B, T, _ = x.shape
                q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
                q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in (q, k, v))
                y = causal_attention(q, k, v).transpose(1, 2).reshape(B, T, C)
                x = x + self.c_proj(y)
                return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))

        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.wte = nn.Embedding(cfg["vocab_size"], C)
                self.wpe = nn.Embedding(cfg["n_positions"], C)
                self.h = nn.ModuleList(Block() for _ in range(L))
                self.ln_f = nn.LayerNorm(C, eps=eps)

            def forward(self, ids):
                pos = torch.arange(ids.shape[1])
                x = self.wte(ids) + self.wpe(pos)
                for b in self.h:
                    x = b(x)
                return self.ln_f(x) @ self.wte.weight.t()  # tied lm_head
        return Model()

    C, H, L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    KV = cfg.get("num_key_value_heads", H)
    D = cfg.get("head_dim") or C // H
    Fdim, eps = cfg["intermediate_size"], cfg.get("rms_norm_eps", 1e-6)
    theta = cfg.get("rope_theta", 10000.0)

    class RMSNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(C))

        def forward(self, x):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * self.weight

    def rotate_half(x):
        return torch.cat((-x[..., D // 2:], x[..., :D // 2]), dim=-1)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.input_layernorm, self.post_attention_layernorm = RMSNorm(), RMSNorm()
            self.q_proj, self.k_proj = nn.Linear(C, H * D, bias=False), nn.Linear(C, KV * D, bias=False)
            self.v_proj, self.o_proj = nn.Linear(C, KV * D, bias=False), nn.Linear(H * D, C, bias=False)
            self.gate_proj, self.up_proj = nn.Linear(C, Fdim, bias=False), nn.Linear(C, Fdim, bias=False)
            self.down_proj = nn.Linear(Fdim, C, bias=False)

        def forward(self, x, cos, sin):
            B, T, _ = x.shape
            h = self.input_layernorm(x)
            q = self.q_proj(h).view(B, T, H, D).transpose(1, 2)
            k = self.k_proj(h).view(B, T, KV, D).transpose(1, 2)
            v = self.v_proj(h).view(B, T, KV, D).transpose(1, 2)
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
            k, v = k.repeat_interleave(H // KV, dim=1), v.repeat_interleave(H // KV, dim=1)
            y = causal_attention(q, k, v).transpose(1, 2).reshape(B, T, H * D)
            x = x + self.o_proj(y)
            h = self.post_attention_layernorm(x)
            return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed_tokens = nn.Embedding(cfg["vocab_size"], C)
            self.layers = nn.ModuleList(Block() for _ in range(L))
            self.norm = RMSNorm()
            self.register_buffer("inv_freq", 1.0 / theta ** (torch.arange(0, D, 2).float() / D))

        def forward(self, ids):
            t = torch.arange(ids.shape[1]).float()
            ang = torch.outer(t, self.inv_freq)
            ang = torch.cat((ang, ang), dim=-1)
            cos, sin = ang.cos(), ang.sin()
            x = self.embed_tokens(ids)
            for b in self.layers:
                x = b(x, cos, sin)
            return self.norm(x) @ self.embed_tokens.weight.t()  # tied lm_head
    if not cfg.get("tie_word_embeddings", True):
        raise SystemExit("torch_bench: only tied embeddings are written here")
    return Model()


def make_model(torch, cfg):
    m = build(torch, cfg)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.02)
    return m


def pair_batch(torch, pairs, vocab, gen):
    """Right-padded [2B, Lmax] ids and the response mask over the predicted
    positions [2B, Lmax-1]: rows 0..B-1 are prompt+chosen, B..2B-1
    prompt+rejected (TRL's concatenated_inputs)."""
    B = len(pairs)
    rows, prompts = [], []
    for (P, C, R) in pairs:
        ids = torch.randint(0, vocab, (P + C + R,), generator=gen)
        rows.append(ids[:P + C]), prompts.append(P)
    for i, (P, C, R) in enumerate(pairs):
        rows.append(torch.cat((rows[i][:P], torch.randint(0, vocab, (R,), generator=gen))))
        prompts.append(P)
    Lmax = max(len(r) for r in rows)
    ids = torch.zeros(2 * B, Lmax, dtype=torch.long)
    mask = torch.zeros(2 * B, Lmax - 1, dtype=torch.bool)
    for i, (r, P) in enumerate(zip(rows, prompts)):
        ids[i, :len(r)] = r
        mask[i, P - 1:len(r) - 1] = True
    return ids, mask


def sequence_logps(torch, model, ids, mask):
    logits = model(ids)[:, :-1]
    lp = logits.log_softmax(-1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return (lp * mask).sum(-1)


def real_tokens(pairs):
    return sum(2 * P + C + R for (P, C, R) in pairs)


def peak_rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def job_precompute(torch, config, lengths, batch, out):
    cfg = json.load(open(config))
    dist, pairs = read_lengths(lengths)
    model = make_model(torch, cfg).eval()
    vocab = cfg["vocab_size"]
    gen = torch.Generator().manual_seed(1)
    batches = [pairs[i:i + batch] for i in range(0, len(pairs), batch)]
    with torch.no_grad():
        ids, mask = pair_batch(torch, batches[0], vocab, gen)
        sequence_logps(torch, model, ids, mask)  # warm-up on the first batch, untimed
        secs, padded = 0.0, 0
        for b in batches:
            ids, mask = pair_batch(torch, b, vocab, gen)
            t0 = time.perf_counter()
            sequence_logps(torch, model, ids, mask)
            secs += time.perf_counter() - t0
            padded += ids.numel()
    n_tok = real_tokens(pairs)
    write(out, {"kind": "torch_precompute", "dist": dist, "pairs": len(pairs), "batch_pairs": batch,
                "seq_tokens": n_tok, "padded_tokens": padded, "seconds": secs,
                "tokens_per_s": n_tok / secs, "pairs_per_s": len(pairs) / secs,
                "threads": torch.get_num_threads(), "peak_rss_bytes": peak_rss()})


def job_train(torch, config, lengths, batch, steps, out, lora_r=0):
    """The online DPO step (reference forward + policy forward/backward +
    AdamW). With lora_r > 0 the policy's blocks carry LoRA adapters (add_lora)
    and only they train; the reference is the same model with them off, as
    TRL runs a PEFT model."""
    import copy
    cfg = json.load(open(config))
    dist, pairs = read_lengths(lengths)
    policy = make_model(torch, cfg).train()
    if lora_r:
        trained, state = add_lora(torch, policy, lora_r)
        opt = torch.optim.AdamW(trained, lr=1e-4, weight_decay=0.0)
    else:
        reference = copy.deepcopy(policy).eval()
        for p in reference.parameters():
            p.requires_grad_(False)
        trained = list(policy.parameters())
        opt = torch.optim.AdamW(trained, lr=1e-6, weight_decay=0.0)

    def reference_logps(ids, mask):
        if not lora_r:
            return sequence_logps(torch, reference, ids, mask)
        state["on"] = False
        try:
            return sequence_logps(torch, policy, ids, mask)
        finally:
            state["on"] = True

    vocab, beta = cfg["vocab_size"], 0.1
    gen = torch.Generator().manual_seed(2)
    t_steps, t_ref, tokens, padded = [], [], [], []
    warmup = 0.0
    for s in range(-1, steps):
        # Step -1: the first batch, untimed (allocator, AdamW state), as bench.c does.
        b = [pairs[(max(s, 0) * batch + k) % len(pairs)] for k in range(batch)]
        ids, mask = pair_batch(torch, b, vocab, gen)
        t0 = time.perf_counter()
        with torch.no_grad():
            ref = reference_logps(ids, mask)
        t1 = time.perf_counter()
        pol = sequence_logps(torch, policy, ids, mask)
        n = len(b)
        logits = beta * ((pol[:n] - ref[:n]) - (pol[n:] - ref[n:]))
        loss = -torch.nn.functional.logsigmoid(logits).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        t2 = time.perf_counter()
        if s < 0:
            warmup = t2 - t0
            continue
        t_steps.append(t2 - t0), t_ref.append(t1 - t0)
        tokens.append(real_tokens(b)), padded.append(ids.numel())
    secs, ref_secs, n_tok = sum(t_steps), sum(t_ref), sum(tokens)
    write(out, {"kind": "torch_train_lora" if lora_r else "torch_train", "dist": dist,
                "batch_pairs": batch, "steps": steps, "lora_r": lora_r,
                "timed_steps": steps, "warmup_seconds": warmup,
                "seconds_per_step": secs / steps, "reference_seconds_per_step": ref_secs / steps,
                "tokens_per_s": n_tok / secs, "pairs_per_s": batch * steps / secs,
                "policy_only_tokens_per_s": n_tok / (secs - ref_secs),
                "padded_tokens": sum(padded), "threads": torch.get_num_threads(),
                "peak_rss_bytes": peak_rss()})


def add_lora(torch, model, r):
    """Freezes every parameter and wraps every nn.Linear of the blocks (the
    LM head is the tied embedding, never wrapped) as PEFT's LoRA does:
    y = W x + b + (alpha / r) · B A x, A kaiming-uniform, B zero, alpha 2r.
    Returns the adapters' parameters and a switch that turns them off (the
    reference forward, as TRL runs it for a PEFT model)."""
    nn = torch.nn
    state = {"on": True}

    class LoRALinear(nn.Module):
        def __init__(self, base):
            super().__init__()
            self.base = base
            self.A = nn.Parameter(torch.empty(r, base.in_features).uniform_(
                -1 / math.sqrt(base.in_features), 1 / math.sqrt(base.in_features)))
            self.B = nn.Parameter(torch.zeros(base.out_features, r))
            self.scale = 2.0 * r / r

        def forward(self, x):
            y = self.base(x)
            return y + self.scale * ((x @ self.A.t()) @ self.B.t()) if state["on"] else y

    for p in model.parameters():
        p.requires_grad_(False)
    blocks = model.h if hasattr(model, "h") else model.layers
    adapters = []
    for block in blocks:
        for name, mod in list(block.named_children()):
            if isinstance(mod, nn.Linear):
                wrapped = LoRALinear(mod)
                setattr(block, name, wrapped)
                adapters += [wrapped.A, wrapped.B]
    return adapters, state


def cmd_run(threads, out_dir, jobs):
    cmd_info(out_dir + "/torch_info.json")
    try:
        import torch
    except Exception:
        return 0  # torch_info.json says why; run.sh reports the rest without PyTorch
    torch.manual_seed(0)
    torch.set_num_threads(threads)
    for job in jobs:
        f = job.split(",")
        if f[0] == "precompute" and len(f) == 5:
            job_precompute(torch, f[1], f[2], int(f[3]), "%s/%s.json" % (out_dir, f[4]))
        elif f[0] == "train" and len(f) == 6:
            job_train(torch, f[1], f[2], int(f[3]), int(f[4]), "%s/%s.json" % (out_dir, f[5]))
        elif f[0] == "train_lora" and len(f) == 7:
            job_train(torch, f[1], f[2], int(f[3]), int(f[4]), "%s/%s.json" % (out_dir, f[6]),
                      lora_r=int(f[5]))
        else:
            raise SystemExit("torch_bench: bad job %r" % job)
    return 0


def main(argv):
    if len(argv) == 3 and argv[1] == "info":
        return cmd_info(argv[2])
    if len(argv) >= 5 and argv[1] == "run":
        return cmd_run(int(argv[2]), argv[3], argv[4:])
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
