# lib.sh — sourced by tests/e2e_*.sh. Provides check helpers, the summary
# line and the tiny-model set-up the pipeline suites share. DPOC is the
# binary under test; TMP a fresh scratch directory; PYTHON the oracles'.
set -u
DPOC=${DPOC:-build/dpoc}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/dpoc-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
_pass=0 _fail=0
ok()   { _pass=$((_pass + 1)); }
bad()  { _fail=$((_fail + 1)); echo "FAIL: $*" >&2; }
# expect_eq NAME GOT EXPECTED
expect_eq() { if [ "$2" = "$3" ]; then ok; else bad "$1: got [$2], expected [$3]"; fi; }
# expect_fail NAME EXPECTED_MESSAGE CMD... — command must exit non-zero with
# exactly EXPECTED_MESSAGE as the last line of stderr.
expect_fail() {
    name=$1 msg=$2; shift 2
    "$@" >"$TMP/out" 2>"$TMP/err"; rc=$?
    got=$(tail -n 1 "$TMP/err")
    if [ $rc -ne 0 ] && [ $rc -lt 128 ] && [ "$got" = "$msg" ]; then ok
    else bad "$name: exit $rc, stderr [$got], expected [$msg]"; fi
}
summary() { echo "$_pass passed, $_fail failed"; [ $_fail -eq 0 ]; }

# ---- the tiny-model set-up the pipeline suites share -----------------------
# PYTHON: the interpreter with torch and numpy the oracles need.
PYTHON=${PYTHON:-/usr/bin/python3}

# need_torch: ends the suite as failed unless $PYTHON imports torch and numpy
# (a missing oracle fails, it never passes silently).
need_torch() {
    "$PYTHON" -c 'import torch, numpy' 2>/dev/null && return 0
    bad "oracle missing: $PYTHON with torch and numpy is required"
    summary
    exit 1
}

# tiny_model DIR: the tiny byte-level GPT-2 of examples/tiny/model (config
# and tokenizer files) with random weights of seed 7. One check.
tiny_model() {
    mkdir -p "$1"
    cp examples/tiny/model/config.json examples/tiny/model/tokenizer.json \
       examples/tiny/model/tokenizer_config.json "$1/"
    "$DPOC" model init "$1" --seed 7 >/dev/null 2>&1; expect_eq "model init" $? 0
}

# tiny_llama DIR: a Llama config with grouped-query attention (4 heads, 2 KV
# heads) and an untied head on the byte-level tokenizer (vocabulary 257),
# with the tokenizer files; no weights (dpoc model init DIR makes them).
tiny_llama() {
    mkdir -p "$1"
    cp examples/tiny/model/tokenizer.json examples/tiny/model/tokenizer_config.json "$1/"
    cat >"$1/config.json" <<'JSON'
{"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 257,
 "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
 "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
 "max_position_embeddings": 128, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
 "hidden_act": "silu", "tie_word_embeddings": false,
 "bos_token_id": 256, "eos_token_id": 256, "torch_dtype": "float32"}
JSON
}

# tiny_data N_TRAIN N_EVAL: $TMP/data/train.jsonl and eval.jsonl, the first
# rows of examples/data's splits.
tiny_data() {
    mkdir -p "$TMP/data"
    head -n "$1" examples/data/train.jsonl >"$TMP/data/train.jsonl"
    head -n "$2" examples/data/eval.jsonl >"$TMP/data/eval.jsonl"
}

# tiny_pipeline [TRAIN_LINE...]: MODEL=$TMP/model (tiny_model), 48 train and
# 16 eval rows (tiny_data), and P=$TMP/p.yaml with the store, the reference,
# the data and a 3-step train section, plus each TRAIN_LINE ("key: value")
# in train:. Callers append their other sections to $P.
tiny_pipeline() {
    MODEL="$TMP/model" P="$TMP/p.yaml"
    tiny_model "$MODEL"
    tiny_data 48 16
    cat >"$P" <<YAML
store: store.sqlite
reference:
  model: model
data:
  train: data/train.jsonl
  eval: data/eval.jsonl
  max_length: 96
  max_prompt_length: 48
train:
  output: run
  batch_size: 8
  learning_rate: 0.001
  lr_schedule: constant
  max_steps: 3
  shuffle: false
YAML
    for line in "$@"; do echo "  $line"; done >>"$P"
}
