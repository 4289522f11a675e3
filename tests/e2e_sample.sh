#!/bin/sh
# e2e_sample — dpoc sample on the tiny model: greedy ids against a PyTorch
# greedy decode (also for random Gemma 3 text and Phi-3 models), the JSON
# Lines contract, seeds, top-k 1 = greedy, stopping at EOS and at the token
# budget, --special, and errors.
. tests/lib.sh
need_torch
M="$TMP/model"
tiny_model "$M"

# --- greedy against torch ----------------------------------------------------
"$DPOC" sample --threads 1 --model "$M" --prompt "Review: the film was" --temperature 0 --max-new-tokens 24 \
    >"$TMP/greedy.jsonl" 2>"$TMP/err"
expect_eq "greedy exits 0" $? 0
expect_eq "one line" "$(wc -l <"$TMP/greedy.jsonl")" 1
"$PYTHON" - "$M" "$TMP/greedy.jsonl" >"$TMP/oracle.out" 2>&1 <<'PY'
import json, os, sys
sys.path.insert(0, "tests/oracles")
import torch
import torch_model
from torch_dpo import read_safetensors
d, path = sys.argv[1], sys.argv[2]
cfg = json.load(open(os.path.join(d, "config.json")))
P = read_safetensors(os.path.join(d, "model.safetensors"))
r = json.loads(open(path).readline())
ids = list(r["prompt"].encode())            # byte-level: one id per byte, no BOS
assert r["prompt"] == "Review: the film was", r
out = []
with torch.no_grad():
    for _ in range(24):
        logits = torch_model.gpt2_logits(cfg, P, torch.tensor(ids + out))[-1]
        out.append(int(torch.argmax(logits)))
        if out[-1] == cfg["eos_token_id"]:
            break
print("torch", out)
print("dpoc ", r["ids"])
sys.exit(0 if out == r["ids"] else 1)
PY
expect_eq "greedy ids = torch greedy decode" $? 0 || cat "$TMP/oracle.out" >&2
# the completion is the decoded ids (byte-level: the bytes themselves)
"$PYTHON" -c '
import json, sys
r = json.loads(open(sys.argv[1]).readline())
b = bytes(i for i in r["ids"] if i < 256).decode("utf-8", "replace")
sys.exit(0 if b == r["completion"] else 1)' "$TMP/greedy.jsonl"
expect_eq "completion = decoded ids" $? 0

# --- JSON Lines on stdin --------------------------------------------------------
printf '"Review: the film was"\n\n{"prompt": "The book", "extra": 1}\n"caf\\u00e9 \\"quoted\\""\n' >"$TMP/prompts.jsonl"
"$DPOC" sample --threads 1 --model "$M" --seed 5 --max-new-tokens 16 <"$TMP/prompts.jsonl" >"$TMP/s5.jsonl" 2>"$TMP/err"
expect_eq "stdin exits 0" $? 0
"$PYTHON" -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["prompt"] for r in rows] == ["Review: the film was", "The book", "caf\u00e9 \"quoted\""], rows
for r in rows:
    assert sorted(r) == ["completion", "ids", "prompt"], r
    assert 1 <= len(r["ids"]) <= 16 and all(0 <= i < 257 for i in r["ids"]), r
' "$TMP/s5.jsonl" 2>"$TMP/py.err"
expect_eq "one valid JSON line per prompt" $? 0 || cat "$TMP/py.err" >&2

# --- seeds ------------------------------------------------------------------------
"$DPOC" sample --threads 1 --model "$M" --seed 5 --max-new-tokens 16 <"$TMP/prompts.jsonl" >"$TMP/s5b.jsonl" 2>/dev/null
cmp -s "$TMP/s5.jsonl" "$TMP/s5b.jsonl" && ok || bad "same seed, same samples"
"$DPOC" sample --threads 1 --model "$M" --seed 6 --max-new-tokens 16 <"$TMP/prompts.jsonl" >"$TMP/s6.jsonl" 2>/dev/null
cmp -s "$TMP/s5.jsonl" "$TMP/s6.jsonl" && bad "another seed, other samples" || ok
# prompt 0 from --prompt and from stdin line 1 use the same stream
"$DPOC" sample --threads 1 --model "$M" --seed 5 --max-new-tokens 16 --prompt "Review: the film was" >"$TMP/p0.jsonl" 2>/dev/null
expect_eq "--prompt = stdin's first prompt" "$(cat "$TMP/p0.jsonl")" "$(head -n 1 "$TMP/s5.jsonl")"
"$DPOC" sample --threads 1 --model "$M" --seed 9 --top-k 1 --max-new-tokens 24 --prompt "Review: the film was" >"$TMP/k1.jsonl" 2>/dev/null
cmp -s "$TMP/k1.jsonl" "$TMP/greedy.jsonl" && ok || bad "top-k 1 = greedy"
"$DPOC" sample --threads 1 --model "$M" --seed 9 --top-p 0.000001 --max-new-tokens 24 --prompt "Review: the film was" >"$TMP/p1.jsonl" 2>/dev/null
cmp -s "$TMP/p1.jsonl" "$TMP/greedy.jsonl" && ok || bad "tiny top-p = greedy"

# --- EOS and the budget: near-uniform sampling hits the EOS (id 256) now and then
i=0; : >"$TMP/many.jsonl"
while [ $i -lt 24 ]; do echo '"x"' >>"$TMP/many.jsonl"; i=$((i + 1)); done
for special in "" --special; do
    "$DPOC" sample --threads 1 --model "$M" --temperature 1000 --max-new-tokens 20 --seed 3 $special \
        <"$TMP/many.jsonl" >"$TMP/eos.jsonl" 2>/dev/null
    "$PYTHON" -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
special = sys.argv[2] == "--special"
stopped = 0
for r in rows:
    ids = r["ids"]
    assert 256 not in ids[:-1], ids
    if ids[-1] == 256:
        stopped += 1
        assert r["completion"].endswith("<|endoftext|>") == special, r
    else:
        assert len(ids) == 20, ids
assert len(rows) == 24 and 0 < stopped < 24, stopped
' "$TMP/eos.jsonl" "$special" 2>"$TMP/py.err"
    expect_eq "stops at EOS / budget ($special)" $? 0 || cat "$TMP/py.err" >&2
done

# --- errors ---------------------------------------------------------------------
"$DPOC" sample --prompt hi >/dev/null 2>"$TMP/err"; expect_eq "no --model" $? 2
"$DPOC" sample --threads 1 --model "$M" --top-p 0 --prompt hi >/dev/null 2>"$TMP/err"; expect_eq "top-p 0" $? 2
expect_eq "top-p message" "$(cat "$TMP/err")" 'dpoc sample: --top-p: expected a number in [1e-09, 1], got "0"'
"$DPOC" sample --threads 1 --model "$M" --top-k 1.5 --prompt hi >/dev/null 2>&1; expect_eq "top-k 1.5" $? 2
"$DPOC" sample --threads 1 --model "$M" --temperature -1 --prompt hi >/dev/null 2>&1; expect_eq "temperature -1" $? 2
"$DPOC" sample --threads 1 --model "$M" --max-new-tokens 0 --prompt hi >/dev/null 2>&1; expect_eq "max-new-tokens 0" $? 2
"$DPOC" sample --threads 1 --model "$M" --bogus >/dev/null 2>&1; expect_eq "unknown option" $? 2
"$DPOC" sample --threads 1 --model "$M" --seed >/dev/null 2>&1; expect_eq "missing value" $? 2
expect_fail "no such model" "$TMP/none: cannot open: No such file or directory" \
    "$DPOC" sample --model "$TMP/none" --prompt hi
mkdir -p "$TMP/notok"; cp "$M/config.json" "$TMP/notok/"
"$DPOC" sample --model "$TMP/notok" --prompt hi >/dev/null 2>"$TMP/err"; expect_eq "no tokenizer" $? 1
grep -q "tokenizer.json" "$TMP/err" && ok || bad "no tokenizer message: $(cat "$TMP/err")"
printf '"ok"\n{"prompt": 3}\n' | "$DPOC" sample --threads 1 --model "$M" --max-new-tokens 2 >"$TMP/out" 2>"$TMP/err"
expect_eq "non-string prompt" $? 1
expect_eq "non-string prompt message" "$(cat "$TMP/err")" 'stdin:2: expected a JSON string or an object with a string "prompt", got a non-string "prompt"'
expect_eq "lines before the error are printed" "$(wc -l <"$TMP/out")" 1
printf '{"prompt": "a"\n' | "$DPOC" sample --threads 1 --model "$M" >/dev/null 2>"$TMP/err"
expect_eq "invalid JSON" $? 1
grep -q '^stdin:1:[0-9]*: invalid JSON' "$TMP/err" && ok || bad "invalid JSON message: $(cat "$TMP/err")"
printf '[1]\n' | "$DPOC" sample --threads 1 --model "$M" >/dev/null 2>"$TMP/err"; expect_eq "array line" $? 1
"$DPOC" sample --threads 1 --model "$M" --prompt "$(printf 'a\377b')" >/dev/null 2>"$TMP/err"; expect_eq "invalid UTF-8 prompt" $? 1
long=$(printf '%0300d' 0)
expect_fail "prompt fills the context" "the prompt's 300 tokens leave no room in the model's 256 positions" \
    "$DPOC" sample --threads 1 --model "$M" --prompt "$long"
"$DPOC" sample --help | grep -q -- "--top-p" && ok || bad "help lists --top-p"
# --- other families: greedy against torch ------------------------------------
# Gemma 3 text (q/k norms, a window of 4 on sliding layers, local RoPE base,
# final soft-cap) and Phi-3 (fused projections, partial rotary, longrope),
# random weights on the byte-level tokenizer.
mkdir -p "$TMP/gemma3" "$TMP/phi3"
cat >"$TMP/gemma3/config.json" <<'JSON'
{"model_type": "gemma3_text", "vocab_size": 257, "hidden_size": 32, "intermediate_size": 48,
 "num_hidden_layers": 3, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16,
 "max_position_embeddings": 256, "sliding_window": 4, "sliding_window_pattern": 3,
 "rope_theta": 10000.0, "rope_local_base_freq": 100.0, "final_logit_softcapping": 0.05,
 "bos_token_id": 256, "eos_token_id": 256}
JSON
cat >"$TMP/phi3/config.json" <<'JSON'
{"model_type": "phi3", "vocab_size": 257, "hidden_size": 32, "intermediate_size": 48,
 "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
 "max_position_embeddings": 1024, "original_max_position_embeddings": 256,
 "partial_rotary_factor": 0.5, "sliding_window": 6,
 "rope_scaling": {"type": "longrope", "short_factor": [1.0, 1.5], "long_factor": [2.0, 3.0]},
 "bos_token_id": 256, "eos_token_id": 256}
JSON
for f in gemma3 phi3; do
    cp examples/tiny/model/tokenizer.json examples/tiny/model/tokenizer_config.json "$TMP/$f/"
    "$DPOC" model init "$TMP/$f" --seed 3 >/dev/null 2>&1; expect_eq "$f: model init" $? 0
    "$DPOC" sample --threads 1 --model "$TMP/$f" --prompt "Review: the film was" --temperature 0 \
        --max-new-tokens 12 >"$TMP/$f.jsonl" 2>"$TMP/err"
    expect_eq "$f: greedy exits 0" $? 0
    "$PYTHON" - "$TMP/$f" "$TMP/$f.jsonl" >"$TMP/oracle.out" 2>&1 <<'PY'
import json, os, sys
sys.path.insert(0, "tests/oracles")
import torch
import torch_model
from torch_dpo import read_safetensors
d, path = sys.argv[1], sys.argv[2]
cfg = json.load(open(os.path.join(d, "config.json")))
P = read_safetensors(os.path.join(d, "model.safetensors"))
r = json.loads(open(path).readline())
ids, out = list(r["prompt"].encode()), []
with torch.no_grad():
    for _ in range(12):
        seq = ids + out
        logits = torch_model.gemma_phi3_logits(cfg, P, torch.tensor(seq), len(seq))[-1]
        out.append(int(torch.argmax(logits)))
        if out[-1] == cfg["eos_token_id"]:
            break
print("torch", out)
print("dpoc ", r["ids"])
sys.exit(0 if out == r["ids"] else 1)
PY
    expect_eq "$f: greedy ids = torch greedy decode" $? 0 || cat "$TMP/oracle.out" >&2
done
"$DPOC" model info "$TMP/phi3" >"$TMP/info" 2>&1
grep -q "^rotary dims:  4 of 8 per head" "$TMP/info" && grep -q "^projections:  fused qkv_proj, gate_up_proj" "$TMP/info" \
    && grep -q "^rope scaling: longrope (original context 256" "$TMP/info" && ok \
    || bad "phi3 model info: $(cat "$TMP/info")"
"$DPOC" model info "$TMP/gemma3" >"$TMP/info" 2>&1
grep -q "^window:       4 on layers i with (i + 1) % 3 != 0" "$TMP/info" \
    && grep -q "^rope bases:   10000 global, 100 sliding layers" "$TMP/info" && ok \
    || bad "gemma3 model info: $(cat "$TMP/info")"
summary
