#!/bin/sh
# e2e_memory — low-memory machinery on tiny BF16 checkpoints: streaming the
# half-precision weights layer by layer gives the very store values and
# LoRA adapters of a run without it; memory.budget plans (and refuses, up
# front, with one line) before any work; dpoc model info --budget plans a
# 7B-shaped model from its config alone; a weight file truncated while in
# use ends the run with one line naming it.
. tests/lib.sh
tiny_pipeline
cd "$TMP" || exit 1
REPO=$(cd "$OLDPWD" && pwd)
DPOC=$(cd "$REPO" && cd "$(dirname "$DPOC")" && pwd)/$(basename "$DPOC")
"$DPOC" model init model --seed 7 --bf16 >/dev/null 2>&1; expect_eq "BF16 tiny model" $? 0

pre() { out=$1; shift; "$DPOC" precompute -c p.yaml --set store="$out.sqlite" "$@" 2>"$out.log"; }
pre plain; expect_eq "precompute" $? 0
pre streamed --set memory.stream=true; expect_eq "precompute, streamed" $? 0
pre budget --set memory.budget=8GiB; expect_eq "precompute under a generous budget" $? 0
for s in plain streamed budget; do "$DPOC" store dump "$s.sqlite" --per-token >"$s.dump"; done
cmp -s plain.dump streamed.dump; expect_eq "streamed values = plain values, bit for bit" $? 0
cmp -s plain.dump budget.dump; expect_eq "budgeted values = plain values" $? 0
grep -q "read .* of half-precision weights from the checkpoint in .* bytes per token" streamed.log
expect_eq "the log says how many weight bytes were read" $? 0
grep -q "precompute: memory plan for memory.budget 8GiB: .* = " budget.log; expect_eq "the plan is logged" $? 0
expect_fail "a budget nothing fits" \
    "memory.budget 1.0 MiB: no plan fits; the smallest needs 170.7 MiB (weights streamed, 194 tokens per batch: weights 0.3 MiB + scratch 8.4 MiB + adapters 0.0 MiB + activations 2.0 MiB + process 160.0 MiB = 170.7 MiB)" \
    "$DPOC" precompute -c p.yaml --set store=small.sqlite --set memory.budget=1MiB
[ ! -e small.sqlite ]; expect_eq "no store is made when nothing fits" $? 0
expect_fail "a malformed budget" \
    "memory.budget: expected a size like 4GiB, 512MiB or a byte count, got \"four gigs\"" \
    "$DPOC" precompute -c p.yaml --set store=bad.sqlite --set "memory.budget=four gigs"

# ---- LoRA on the half-precision base, streamed or not -----------------------
tr() { out=$1; shift; "$DPOC" train -c p.yaml --set store=plain.sqlite --set train.output="$out" \
    --set train.lora.r=4 --set train.learning_rate=0.01 "$@" 2>"$out.log"; }
tr lplain; expect_eq "LoRA on a BF16 base" $? 0
tr lstream --set memory.stream=true; expect_eq "LoRA, base streamed" $? 0
tr lbudget --set memory.budget=8GiB; expect_eq "LoRA under a generous budget" $? 0
cmp -s lplain/adapter/adapter_model.safetensors lstream/adapter/adapter_model.safetensors
expect_eq "streamed base: the same adapters, bit for bit" $? 0
cmp -s lplain/adapter/adapter_model.safetensors lbudget/adapter/adapter_model.safetensors
expect_eq "budgeted: the same adapters" $? 0
grep -q "train: memory plan for memory.budget 8GiB: .*grad_accum 1" lbudget.log; expect_eq "train logs its plan" $? 0
expect_fail "full training over budget" \
    "memory.budget 100.0 MiB: no plan fits; the smallest needs 167.4 MiB (recompute, 194 tokens per batch: weights 4.2 MiB + scratch 0.0 MiB + adapters 0.0 MiB + activations 3.2 MiB + process 160.0 MiB = 167.4 MiB)" \
    "$DPOC" train -c p.yaml --set store=plain.sqlite --set train.output=full --set memory.budget=100MiB
[ ! -e full/checkpoint ]; expect_eq "before any work" $? 0

# ---- plans from a config alone ----------------------------------------------
mkdir -p l7
cat >l7/config.json <<'JSON'
{"model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
 "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32000,
 "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "tie_word_embeddings": false,
 "hidden_act": "silu", "torch_dtype": "bfloat16"}
JSON
"$DPOC" model info l7 --tokens 1024 --budget 4GiB >l7.txt 2>&1; expect_eq "model info --budget" $? 0
grep -q "^  precompute     weights streamed, 1024 tokens per batch: .* = [0-3]\.[0-9]* GiB$" l7.txt
expect_eq "7B precompute streams within 4 GiB" $? 0
grep -q "^  LoRA           weights streamed, recompute, .* = [0-3]\.[0-9]* GiB$" l7.txt
expect_eq "7B LoRA streams within 4 GiB" $? 0
grep -q "^  full training  does not fit: .*LoRA r 16 would need" l7.txt
expect_eq "7B full training does not, and says LoRA would" $? 0

# ---- a weight file truncated while in use ----------------------------------
mkfifo prompts
"$DPOC" sample --model model --temperature 0 --max-new-tokens 4 --threads 1 <prompts >s.out 2>s.err &
pid=$!
exec 3>prompts
echo '"The movie"' >&3
i=0; while [ ! -s s.out ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
truncate -s 4096 model/model.safetensors
echo '"The movie"' >&3
exec 3>&-
wait $pid; rc=$?
expect_eq "truncated while mapped: exit 1" $rc 1
expect_eq "one line naming the file" "$(tail -n 1 s.err)" \
    "model/model.safetensors: the file changed size while in use (truncated or replaced?); stopping"
summary
