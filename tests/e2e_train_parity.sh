#!/bin/sh
# e2e_train_parity — whole `dpoc train` runs against PyTorch (issue 6, "Tests
# that prove it"): for a GPT-2 and a Llama (GQA, untied head) configuration
# with random weights, precompute + 3 optimizer steps for several losses,
# optimizers, gradient accumulation and LD-DPO; tests/oracles/torch_dpo.py
# redoes every run in float64 torch from the store dump and compares each
# step's metrics and the exported weights (see its docstring for the
# semantics and tolerances). A negative control checks that the comparison
# fails when the oracle is given a different beta.
. tests/lib.sh
PYTHON=${PYTHON:-/usr/bin/python3}

mkdir -p "$TMP/gpt2" "$TMP/llama" "$TMP/data"
cp examples/tiny/model/config.json examples/tiny/model/tokenizer.json \
   examples/tiny/model/tokenizer_config.json "$TMP/gpt2/"
# Llama with grouped-query attention and an untied head (tests/lib.sh).
tiny_llama "$TMP/llama"
head -n 16 examples/data/train.jsonl >"$TMP/data/train.jsonl"

# The runs: NAME then the --set overrides, given alike to dpoc and the oracle
# (oracle.* keys only to the oracle; dpoc:KEY only to dpoc, for switches that
# must not change a bit, which the oracle has no notion of). Common to all: 4 pairs per step in store
# order, 3 steps, metrics every step; adam_eps 1e-6 keeps AdamW's update of
# near-zero gradients from depending on float32 rounding (torch_dpo.py). LoRA
# runs use 1e-4: at step 2 A's gradient is B's first small step times the
# input, so AdamW's 1/(|g| + eps) would magnify float32 rounding of it.
COMMON="train.batch_size=4 train.max_steps=3 train.learning_rate=0.001 train.adam_eps=1e-6"
cat >"$TMP/runs" <<'RUNS'
sigmoid_adamw train.loss=sigmoid train.optimizer=adamw train.weight_decay=0.01 train.warmup_steps=1 train.lr_schedule=linear
sigmoid_sgd train.loss=sigmoid train.optimizer=sgd train.momentum=0.9 train.weight_decay=0.01 train.learning_rate=0.5 train.lr_schedule=constant
ipo_adamw train.loss=ipo train.optimizer=adamw train.lr_schedule=cosine
simpo_sgd train.loss=simpo train.optimizer=sgd train.learning_rate=0.5 train.lr_schedule=constant
sigmoid_sft_adamw train.loss=[sigmoid,sft] train.loss_weights=[1,0.5] train.optimizer=adamw
accum2_adamw train.loss=sigmoid train.optimizer=adamw train.grad_accum=2
ld_adamw train.loss=sigmoid train.optimizer=adamw train.ld_alpha=0.5
decay_adamw train.loss=sigmoid train.optimizer=adamw train.weight_decay=0.5 train.lr_schedule=constant
noclip_sgd train.loss=sigmoid train.optimizer=sgd train.learning_rate=0.1 train.max_grad_norm=0
sft_accum2_adamw train.loss=[sigmoid,sft] train.loss_weights=[1,0.5] train.grad_accum=2 oracle.sft_mean=batch
recompute_accum2_adamw train.loss=sigmoid train.optimizer=adamw train.grad_accum=2 dpoc:train.recompute=true
lora_adamw train.loss=sigmoid train.optimizer=adamw train.weight_decay=0.01 train.learning_rate=0.01 train.lora.r=4 train.lora.alpha=8 train.warmup_steps=1 train.adam_eps=1e-4
lora_sgd_accum2 train.loss=sigmoid train.optimizer=sgd train.momentum=0.9 train.learning_rate=0.5 train.lr_schedule=constant train.grad_accum=2 train.lora.r=2 train.lora.alpha=4
lora_rslora_subset@gpt2 train.loss=sigmoid train.optimizer=adamw train.learning_rate=0.01 train.lora.r=4 train.lora.alpha=8 train.lora.use_rslora=true train.lora.target_modules=[c_attn,c_fc] train.adam_eps=1e-4
lora_rslora_subset@llama train.loss=sigmoid train.optimizer=adamw train.learning_rate=0.01 train.lora.r=4 train.lora.alpha=8 train.lora.use_rslora=true train.lora.target_modules=[q_proj,v_proj,down_proj] train.adam_eps=1e-4
lora_recompute_ipo train.loss=ipo train.optimizer=adamw train.learning_rate=0.01 train.lora.r=3 train.seed=7 train.adam_eps=1e-4 dpoc:train.recompute=true
RUNS

: >"$TMP/cases"
for m in gpt2 llama; do
    "$DPOC" model init "$TMP/$m" --seed 5 >/dev/null 2>&1; expect_eq "$m: model init" $? 0
    cat >"$TMP/$m.yaml" <<YAML
store: $m.sqlite
reference:
  model: $m
data:
  train: data/train.jsonl
  max_length: 96
  max_prompt_length: 48
precompute:
  threads: 1
train:
  shuffle: false
  log_every: 1
  resume: never
  threads: 1
YAML
    "$DPOC" precompute -c "$TMP/$m.yaml" 2>"$TMP/$m.pre.log"
    expect_eq "$m: precompute" $? 0
    "$DPOC" store dump "$TMP/$m.sqlite" --per-token >"$TMP/$m.dump"
    echo "model $m $TMP/$m $TMP/$m.dump $TMP/data/train.jsonl" >>"$TMP/cases"
    while read -r name sets; do
        case $name in *@*) [ "${name#*@}" = "$m" ] || continue; name=${name%@*} ;; esac
        args="" oracle_sets=""
        for kv in $COMMON $sets; do
            case $kv in
                oracle.*) oracle_sets="$oracle_sets $kv" ;;
                dpoc:*) args="$args --set ${kv#dpoc:}" ;;
                *) args="$args --set $kv" oracle_sets="$oracle_sets $kv" ;;
            esac
        done
        # shellcheck disable=SC2086
        "$DPOC" train -c "$TMP/$m.yaml" --set train.output="$TMP/$m-$name" $args \
            2>"$TMP/$m-$name.log"
        expect_eq "$m $name: train exits 0 ($(tail -n 1 "$TMP/$m-$name.log"))" $? 0
        echo "run $m/$name $TMP/$m-$name$oracle_sets" >>"$TMP/cases"
    done <"$TMP/runs"
    # LoRA: B starts at zero, so the first step's loss is exactly ln 2.
    head -n 1 "$TMP/$m-lora_adamw/metrics.jsonl" | grep -q '"loss": 0.693147' ; expect_eq "$m lora: step 1 loss is ln 2" $? 0
    # Activation recomputation changes no bit: the same weights as its twin.
    cmp -s "$TMP/$m-accum2_adamw/model/model.safetensors" \
        "$TMP/$m-recompute_accum2_adamw/model/model.safetensors"
    expect_eq "$m: train.recompute gives bit-identical weights" $? 0
    # Negative control, in the same oracle run: beta 0.11 in the oracle for
    # a run made with 0.1 must fail the comparison.
    [ $m = gpt2 ] && echo "run neg/gpt2 $TMP/gpt2-sigmoid_sft_adamw $COMMON" \
        "train.loss=[sigmoid,sft] train.loss_weights=[1,0.5] train.beta=0.11" >>"$TMP/cases"
done

# The oracle: one line per check, "ok NAME" or "FAIL NAME: why", then "done".
"$PYTHON" tests/oracles/torch_dpo.py "$TMP/cases" >"$TMP/oracle.out" 2>"$TMP/oracle.err"
grep -q '^done' "$TMP/oracle.out" && ok \
    || bad "torch oracle did not finish: $(tail -n 3 "$TMP/oracle.err")"
while IFS= read -r line; do
    case $line in
        "ok neg/"*|"FAIL neg/"*) ;;
        "ok "*) ok ;;
        "FAIL "*) bad "${line#FAIL }" ;;
    esac
done <"$TMP/oracle.out"
grep -q '^FAIL neg/gpt2: step 1 grad_norm' "$TMP/oracle.out" \
    && grep -q '^FAIL neg/gpt2: step 3 loss' "$TMP/oracle.out" \
    && grep -q '^FAIL neg/gpt2: final weights' "$TMP/oracle.out" && ok \
    || bad "negative control: a wrong beta must fail the comparison: $(grep '^FAIL neg/' "$TMP/oracle.out" | cut -d: -f2 | tr '\n' ',')"
summary
