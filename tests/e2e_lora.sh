#!/bin/sh
# e2e_lora — LoRA end to end on the tiny pipeline (the numerics against
# PyTorch are in e2e_train_parity.sh): resume bit-identical with dropout on,
# seeded dropout reproducible, a sweep over ranks against one store and its
# evaluation from unmerged adapters; adapters written by an independent
# PEFT-layout writer (tests/oracles/peft_writer.py) load, merge to the
# writer's merged model and sample identically to it; bad adapter files and
# LoRA settings get one line naming the file and the tensor or field.
. tests/lib.sh
need_torch
tiny_pipeline
cd "$TMP" || exit 1
REPO=$(cd "$OLDPWD" && pwd)
DPOC=$(cd "$REPO" && cd "$(dirname "$DPOC")" && pwd)/$(basename "$DPOC")
ORACLES=$REPO/tests/oracles
"$DPOC" precompute -c p.yaml 2>pre.log; expect_eq "precompute" $? 0

LORA="--set train.lora.r=4 --set train.lora.alpha=8 --set train.learning_rate=0.01"
train() { out=$1; shift; "$DPOC" train -c p.yaml --set train.output="$out" $LORA "$@" 2>"$out.log"; }

# ---- resume and dropout ----------------------------------------------------
train full4 --set train.max_steps=4 --set train.lora.dropout=0.1; expect_eq "4 steps" $? 0
train half --set train.max_steps=2 --set train.lora.dropout=0.1; expect_eq "2 steps" $? 0
train half --set train.max_steps=4 --set train.lora.dropout=0.1; expect_eq "resumed to 4" $? 0
grep -q "resuming from" half.log; expect_eq "the second run resumed" $? 0
cmp -s full4/adapter/adapter_model.safetensors half/adapter/adapter_model.safetensors
expect_eq "resume gives the adapters of an uninterrupted run (dropout on)" $? 0
cmp -s full4/model/model.safetensors half/model/model.safetensors
expect_eq "and the same merged model" $? 0
train again --set train.max_steps=4 --set train.lora.dropout=0.1
cmp -s full4/adapter/adapter_model.safetensors again/adapter/adapter_model.safetensors
expect_eq "seeded dropout: the same adapters twice" $? 0
train nodrop --set train.max_steps=4
cmp -s full4/adapter/adapter_model.safetensors nodrop/adapter/adapter_model.safetensors
expect_eq "dropout 0.1 trains other adapters than dropout 0" $? 1
ls full4/checkpoint | tr '\n' ' ' >ck.txt
expect_eq "checkpoint holds adapters and optimizer state only" "$(cat ck.txt)" \
    "adapter_config.json adapter_model.safetensors optimizer.bin state.json "
grep -q '"target_modules": \[' full4/adapter/adapter_config.json && \
    grep -q '"c_attn",' full4/adapter/adapter_config.json && \
    grep -q '"fan_in_fan_out": true' full4/adapter/adapter_config.json
expect_eq "adapter_config.json: expanded targets, fan_in_fan_out for GPT-2" $? 0

# ---- a sweep over ranks against one store, evaluated unmerged --------------
cp "$REPO/examples/judge.words" judge.words
cat p.yaml >sweep.yaml
cat >>sweep.yaml <<'YAML'
eval:
  judge: judge.words
  samples: 1
  max_prompts: 2
  max_new_tokens: 8
sweep:
  train.lora.r: [2, 4]
YAML
"$DPOC" sweep -c sweep.yaml --set train.output=sw --set train.lora.merge=false \
    --set train.learning_rate=0.01 >sweep.out 2>sweep.log
expect_eq "LoRA sweep over ranks" $? 0
for r in 2 4; do
    grep -q "\"r\": $r," "sw/r=$r/adapter/adapter_config.json"; expect_eq "point r=$r has its rank" $? 0
    [ ! -e "sw/r=$r/model" ]; expect_eq "point r=$r: merge false writes no model" $? 0
done
"$DPOC" eval -c sweep.yaml --set train.output=sw >eval.out 2>eval.log
expect_eq "eval of the unmerged sweep points ($(tail -n 1 eval.log))" $? 0
grep -c '^| r=[24] |' eval.out >rows.txt; expect_eq "eval rows for both points" "$(cat rows.txt)" 2

# ---- adapters from an independent PEFT-layout writer -----------------------
(cd "$REPO" && tiny_llama "$TMP/llama")
"$DPOC" model init llama --seed 3 >/dev/null 2>&1
for spec in "model gpt2 4 8 false c_attn,c_proj F32" "llama llama 3 6 true q_proj,v_proj,down_proj BF16"; do
    set -- $spec
    base=$1 name=$2
    "$PYTHON" "$ORACLES/peft_writer.py" "$base" "peft-$name" "pymerged-$name" "$3" "$4" "$5" "$6" 11 "$7" \
        >/dev/null 2>"peft-$name.err"; expect_eq "$name: PEFT-layout writer ($(tail -n 1 "peft-$name.err"))" $? 0
    "$DPOC" model merge "$base" "peft-$name" "merged-$name" >/dev/null 2>&1
    expect_eq "$name: dpoc model merge" $? 0
    "$PYTHON" -c "
import sys; sys.path.insert(0, '$ORACLES')
import oracle_io, numpy as np
a = oracle_io.read_safetensors('merged-$name/model.safetensors')
b = oracle_io.read_safetensors('pymerged-$name/model.safetensors')
assert sorted(a) == sorted(b), 'names differ'
worst = max(np.linalg.norm(a[k] - b[k]) / max(np.linalg.norm(b[k]), 1e-30) for k in a)
changed = sum(1 for k in a if not np.array_equal(a[k], oracle_io.read_safetensors('$base/model.safetensors')[k]))
print(worst, changed)
sys.exit(0 if worst < 1e-6 and changed > 0 else 1)
" >"cmp-$name.txt" 2>&1
    expect_eq "$name: merged = W + scale·B·A from the writer ($(cat "cmp-$name.txt" | tail -n 1))" $? 0
    "$DPOC" sample --model "$base" --adapter "peft-$name" --prompt "The movie was" --temperature 0 \
        --max-new-tokens 12 --threads 1 >"s-adapter-$name.txt" 2>&1
    "$DPOC" sample --model "pymerged-$name" --prompt "The movie was" --temperature 0 \
        --max-new-tokens 12 --threads 1 >"s-merged-$name.txt" 2>&1
    "$DPOC" sample --model "$base" --prompt "The movie was" --temperature 0 \
        --max-new-tokens 12 --threads 1 >"s-base-$name.txt" 2>&1
    cmp -s "s-adapter-$name.txt" "s-merged-$name.txt"
    expect_eq "$name: sampling with --adapter = sampling the merged model" $? 0
    cmp -s "s-adapter-$name.txt" "s-base-$name.txt"
    expect_eq "$name: the adapter changes the samples" $? 1
done

# ---- bad adapters: one line naming the file and the tensor or field --------
bad_copy() { rm -rf "$1"; cp -r peft-gpt2 "$1"; }
edit_json() { "$PYTHON" -c "
import json, sys
p = '$1/adapter_config.json'; c = json.load(open(p)); $2; json.dump(c, open(p, 'w'))"; }
A=base_model.model.transformer.h
bad_copy b1; rm b1/adapter_config.json
expect_fail "no adapter_config.json" \
    "b1/adapter_config.json: cannot open: No such file or directory" \
    "$DPOC" model merge model b1 out1
bad_copy b2; edit_json b2 "c['target_modules'] = ['c_attn', 'c_proj', 'c_fc']"
expect_fail "a listed target without tensors" \
    "b2/adapter_model.safetensors: tensor $A.0.mlp.c_fc.lora_A.weight: missing (target_modules lists it)" \
    "$DPOC" model merge model b2 out2
bad_copy b3; edit_json b3 "c['target_modules'] = ['c_attn']"
expect_fail "a tensor of no listed target" \
    "b3/adapter_model.safetensors: tensor $A.0.attn.c_proj.lora_A.weight: not an adapter of a target of this gpt2 model" \
    "$DPOC" model merge model b3 out3
bad_copy b4; edit_json b4 "c['r'] = 3"
expect_fail "rank disagreeing with the tensors" \
    "b4/adapter_model.safetensors: tensor $A.0.attn.c_proj.lora_A.weight: expected shape [3, 96] (r 3), found [4, 96]" \
    "$DPOC" model merge model b4 out4
bad_copy b5; edit_json b5 "c['target_modules'] = ['q_proj']"
expect_fail "a target the base does not have" \
    "b5/adapter_config.json: lora.target_modules: \"q_proj\" is not a linear layer of a gpt2 model (all-linear, c_attn, c_fc, c_proj are)" \
    "$DPOC" sample --model model --adapter b5 --prompt x
bad_copy b6; edit_json b6 "c['use_dora'] = True"
expect_fail "DoRA" "b6/adapter_config.json: use_dora: DoRA adapters are not supported" \
    "$DPOC" model merge model b6 out6
bad_copy b7; edit_json b7 "c['rank_pattern'] = {'c_attn': 8}"
expect_fail "rank pattern" "b7/adapter_config.json: rank_pattern: per-module ranks and alphas are not supported" \
    "$DPOC" model merge model b7 out7
bad_copy b8; printf 'not json' >b8/adapter_config.json
expect_fail "adapter_config.json not JSON" "b8/adapter_config.json:1: not JSON: '[' or '{' expected near 'not'" \
    "$DPOC" model merge model b8 out8
[ ! -e out2 ] && [ ! -e out4 ]; expect_eq "a refused merge writes nothing" $? 0

# ---- bad settings ----------------------------------------------------------
expect_fail "a target the family does not have" \
    "train.lora: lora.target_modules: \"q_proj\" is not a linear layer of a gpt2 model (all-linear, c_attn, c_fc, c_proj are)" \
    "$DPOC" train -c p.yaml --set train.output=bad1 --set train.lora.r=2 --set "train.lora.target_modules=[q_proj]"
expect_fail "dropout 1" \
    "--set #2: train.lora.dropout: expected a number in [0, 1), got 1" \
    "$DPOC" train -c p.yaml --set train.output=bad2 --set train.lora.dropout=1
"$DPOC" train -c p.yaml --set train.output=kind --set train.max_steps=1 2>/dev/null
expect_fail "resuming a full checkpoint with LoRA on" \
    "kind/checkpoint: the checkpoint holds a full model, but this config trains LoRA adapters (use another output directory or resume=never)" \
    "$DPOC" train -c p.yaml --set train.output=kind --set train.lora.r=2
summary
