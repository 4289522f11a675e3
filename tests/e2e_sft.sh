#!/bin/sh
# e2e_sft — dpoc sft: the first-step loss and gradient norm of a random
# model equal PyTorch's token-mean NLL of the response tokens (and its
# gradient) for the same weights; fine-tuning a trained model likewise, where
# prompt and response NLLs differ, so a loss or gradient that touched the
# prompt would fail; the loss falls; the written model loads; resume
# continues bit-identically; bad configs get one clear line.
. tests/lib.sh

mkdir -p "$TMP/cfg"
cp examples/tiny/model/tokenizer.json examples/tiny/model/tokenizer_config.json "$TMP/cfg/"
cat >"$TMP/cfg/config.json" <<'JSON'
{"model_type": "gpt2", "vocab_size": 257, "n_positions": 128, "n_embd": 32, "n_layer": 2,
 "n_head": 2, "n_inner": null, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
 "bos_token_id": 256, "eos_token_id": 256, "tie_word_embeddings": true}
JSON
tiny_data 16 8
cat >"$TMP/p.yaml" <<YAML
data:
  train: data/train.jsonl
  eval: data/eval.jsonl
  max_length: 128
  max_prompt_length: 64
sft:
  init_config: cfg/config.json
  "on": chosen
  output: run
  learning_rate: 0.01
  lr_schedule: constant
  batch_size: 16
  max_steps: 8
  max_grad_norm: 0
  seed: 5
  threads: 2
YAML
P="$TMP/p.yaml"

# The oracle: token-mean NLL of the response tokens of every row (chosen, or
# chosen and rejected) and the L2 norm of its gradient, in float64 PyTorch,
# for the weights in MODEL_DIR. Byte-level tokenizer: id = byte, EOS 256.
# With --check-prompt it also requires the all-token mean to differ, so the
# comparison can tell a prompt-inclusive loss from the right one.
oracle() {
    $PYTHON - "$@" <<'PY'
import json, math, sys
sys.path.insert(0, "tests/oracles")
import torch
from oracle_io import read_safetensors
from torch_model import gpt2_logits
torch.set_default_dtype(torch.float64)
model_dir, data, on, got_loss, got_norm = sys.argv[1:6]
check_prompt = "--check-prompt" in sys.argv
cfg = json.load(open(model_dir + "/config.json"))
P = {k: torch.tensor(v, requires_grad=True) for k, v in read_safetensors(model_dir + "/model.safetensors").items()}
nll, n, all_nll, all_n = 0, 0, 0.0, 0
for line in open(data):
    row = json.loads(line)
    prompt = list(row["prompt"].encode())
    for side in (["chosen"] if on == "chosen" else ["chosen", "rejected"]):
        ids = prompt + list(row[side].encode()) + [256]
        lp = torch.log_softmax(gpt2_logits(cfg, P, torch.tensor(ids)), -1)
        tok = -lp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])]
        nll = nll + tok[len(prompt) - 1:].sum()
        n += len(ids) - len(prompt)
        all_nll += float(tok.sum())
        all_n += len(ids) - 1
loss = nll / n
loss.backward()
norm = math.sqrt(sum(float((p.grad ** 2).sum()) for p in P.values()))
ok = abs(float(loss) - float(got_loss)) < 2e-5 and abs(norm - float(got_norm)) < 1e-4 * norm
if check_prompt:
    ok = ok and abs(all_nll / all_n - float(loss)) > 0.05
if not ok:
    print(f"oracle: loss {float(loss):.7f} grad_norm {norm:.7f} (all tokens {all_nll / all_n:.5f}); "
          f"dpoc: {got_loss} {got_norm}", file=sys.stderr)
sys.exit(0 if ok else 1)
PY
}
field() { # field FILE STEP KEY: KEY of the training line of STEP
    $PYTHON -c "import json,sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r['step'] == int(sys.argv[2]) and sys.argv[3] in r: print(r[sys.argv[3]])" "$1" "$2" "$3"
}

# --- from random weights: first step == PyTorch on the same weights ----------
"$DPOC" sft -c "$P" 2>"$TMP/sft.log"; expect_eq "sft exits 0" $? 0
M="$TMP/run/metrics.jsonl"
mkdir -p "$TMP/init"; cp "$TMP/cfg/"* "$TMP/init/"
"$DPOC" model init "$TMP/init" --seed 5 >/dev/null 2>&1
l1=$(field "$M" 1 loss); g1=$(field "$M" 1 grad_norm)
oracle "$TMP/init" "$TMP/data/train.jsonl" chosen "$l1" "$g1" && ok || bad "random init: first-step loss and grad_norm == PyTorch"
$PYTHON -c "import math,sys; sys.exit(not abs(float(sys.argv[1]) - math.log(257)) < 0.05)" "$l1" \
    && ok || bad "first-step loss $l1 is about ln 257"
l8=$(field "$M" 8 loss)
$PYTHON -c "import sys; sys.exit(not float(sys.argv[2]) < float(sys.argv[1]) - 1.0)" "$l1" "$l8" \
    && ok || bad "loss falls over 8 steps: $l1 -> $l8"
$PYTHON - "$M" <<'PY' && ok || bad "metrics: keys, steps 1..8, eval_loss at the end"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
train = [r for r in rows if "loss" in r]
keys = {"step", "loss", "grad_norm", "learning_rate", "epoch", "num_tokens", "tokens_per_sec"}
assert all(set(r) == keys for r in train), train[0]
assert [r["step"] for r in train] == list(range(1, 9))
assert "eval_loss" in rows[-1] and rows[-1]["step"] == 8
PY
"$DPOC" model info "$TMP/run/model" --check >/dev/null 2>&1; expect_eq "written model loads" $? 0
[ -f "$TMP/run/model/tokenizer.json" ] && [ -f "$TMP/run/model/tokenizer_config.json" ] \
    && ok || bad "tokenizer files copied"

# --- fine-tuning a trained model on both sides: the prompt carries no loss ----
"$DPOC" sft -c "$P" --set sft.init_config= --set sft.init="$TMP/run/model" \
    --set sft.on=both --set sft.output="$TMP/ft" --set sft.max_steps=1 --set sft.batch_size=32 \
    2>/dev/null
expect_eq "sft from a model exits 0" $? 0
oracle "$TMP/run/model" "$TMP/data/train.jsonl" both "$(field "$TMP/ft/metrics.jsonl" 1 loss)" \
    "$(field "$TMP/ft/metrics.jsonl" 1 grad_norm)" --check-prompt \
    && ok || bad "fine-tune: loss and grad_norm over response tokens only == PyTorch"

# --- resume: 3 steps, then on to 6 == 6 straight (constant schedule) ---------
R="--set sft.batch_size=4 --set sft.max_grad_norm=1"
"$DPOC" sft -c "$P" $R --set sft.output="$TMP/straight" --set sft.max_steps=6 2>/dev/null
"$DPOC" sft -c "$P" $R --set sft.output="$TMP/resumed" --set sft.max_steps=3 2>/dev/null
"$DPOC" sft -c "$P" $R --set sft.output="$TMP/resumed" --set sft.max_steps=6 2>"$TMP/resume.log"
expect_eq "resumed sft exits 0" $? 0
grep -q "resuming from .* at step 3" "$TMP/resume.log" && ok || bad "resume announced: $(cat "$TMP/resume.log")"
cmp -s "$TMP/straight/model/model.safetensors" "$TMP/resumed/model/model.safetensors" \
    && ok || bad "3 steps + resume to 6 == 6 steps (bit-identical)"
expect_eq "metrics after resume" "$(grep -c '"loss"' "$TMP/resumed/metrics.jsonl")" 6
"$DPOC" sft -c "$P" $R --set sft.output="$TMP/resumed" --set sft.max_steps=6 \
    --set sft.on=both 2>"$TMP/err"
tail -n 1 "$TMP/err" | grep -q "checkpoint was trained against examples .*, this config's is .* (use another sft.output or sft.resume=never)" \
    && ok || bad "a checkpoint of other data is refused: $(tail -n 1 "$TMP/err")"

# --- bad configs -----------------------------------------------------------
expect_fail "neither init" \
    "sft: set exactly one of sft.init_config (a config.json: random weights) and sft.init (a model directory to fine-tune)" \
    "$DPOC" sft -c "$P" --set sft.init_config=
expect_fail "both inits" \
    "sft: set exactly one of sft.init_config (a config.json: random weights) and sft.init (a model directory to fine-tune), not both" \
    "$DPOC" sft -c "$P" --set sft.init="$TMP/run/model"
(head -n 2 "$TMP/data/train.jsonl"; echo '{"prompt": "x", "chosen": 3, "rejected": "y"}') >"$TMP/data/bad.jsonl"
expect_fail "a bad row names file and line" \
    "$TMP/data/bad.jsonl:3: field \"chosen\": expected a string, got number" \
    "$DPOC" sft -c "$P" --set data.train="$TMP/data/bad.jsonl" --set sft.output="$TMP/bad"
"$DPOC" sft -c "$P" --set data.train="$TMP/data/bad.jsonl" --set sft.output="$TMP/skip" \
    --set data.on_bad_row=skip --set sft.max_steps=1 2>"$TMP/skip.log"
grep -q "sft: skipped 1 bad rows" "$TMP/skip.log" && ok || bad "on_bad_row=skip counts: $(cat "$TMP/skip.log")"
summary
