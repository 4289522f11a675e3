#!/bin/sh
# e2e_pipeline — precompute then train on the tiny model: resumability,
# incremental runs, shards, fingerprint refusals, the first DPO step, gradient
# accumulation, kill -9 and resume, export.
. tests/lib.sh

tiny_pipeline "log_every: 1"
cat >>"$P" <<YAML
precompute:
  batch_tokens: 512
  window_rows: 16
  commit_seconds: 0.01
YAML
dump() { "$DPOC" store dump "$1" --per-token | sort; }

# --- precompute: counts, dump contract, stored logps = engine forward -----
"$DPOC" precompute -c "$P" 2>"$TMP/pre.log"; expect_eq "precompute exits 0" $? 0
grep -q "64 computed, 0 reused" "$TMP/pre.log" && ok || bad "first run computes 64: $(tail -n 3 "$TMP/pre.log")"
dump "$TMP/store.sqlite" >"$TMP/full.dump"
expect_eq "dump has one line per example" "$(wc -l <"$TMP/full.dump")" 64
"$DPOC" precompute -c "$P" 2>"$TMP/pre2.log"
grep -q "0 computed, 64 reused" "$TMP/pre2.log" && ok || bad "rerun reuses all: $(tail -n 2 "$TMP/pre2.log")"

# --- bad rows: stop at the first with file:line, or skip and count ---------
cp tests/data/bad_rows.jsonl "$TMP/data/bad.jsonl"
expect_fail "bad row stops precompute" \
    "$TMP/data/bad.jsonl:3: invalid JSON: unexpected token near '}' at column 46" \
    "$DPOC" precompute -c "$P" --set data.train="$TMP/data/bad.jsonl" --set data.eval= \
    --set store="$TMP/bad.sqlite"
expect_eq "rows before the bad one are kept" "$("$DPOC" store dump "$TMP/bad.sqlite" | wc -l)" 1
"$DPOC" precompute -c "$P" --set data.train="$TMP/data/bad.jsonl" --set data.eval= \
    --set store="$TMP/bad.sqlite" --set data.on_bad_row=skip 2>"$TMP/bad.log"
expect_eq "skip exits 0" $? 0
grep -q "skipped (bad rows)" "$TMP/bad.log" && ok || bad "summary counts skipped rows"
grep -q "skipped 3 rows: invalid_json" "$TMP/bad.log" && ok || bad "summary names reasons: $(cat "$TMP/bad.log")"
expect_eq "good rows stored" "$("$DPOC" store dump "$TMP/bad.sqlite" | wc -l)" 2

# --- incremental: two new rows, only they are computed --------------------
sed -n '49,50p' examples/data/train.jsonl >>"$TMP/data/train.jsonl"
"$DPOC" precompute -c "$P" 2>"$TMP/pre3.log"
grep -q "2 computed, 64 reused" "$TMP/pre3.log" && ok || bad "incremental: $(tail -n 2 "$TMP/pre3.log")"
head -n 48 examples/data/train.jsonl >"$TMP/data/train.jsonl"

# --- shards: 1/2 + 2/2 merged equal one run -----------------------------
for i in 1 2; do
    "$DPOC" precompute -c "$P" --shard $i/2 --set store="$TMP/shard$i.sqlite" 2>/dev/null
    expect_eq "shard $i/2" $? 0
done
"$DPOC" store merge "$TMP/merged.sqlite" "$TMP/shard1.sqlite" "$TMP/shard2.sqlite" >/dev/null 2>&1
expect_eq "merge exits 0" $? 0
dump "$TMP/merged.sqlite" >"$TMP/merged.dump"
n1=$("$DPOC" store dump "$TMP/shard1.sqlite" | wc -l)
[ "$n1" -gt 0 ] && [ "$n1" -lt 64 ] && ok || bad "shard 1/2 holds a proper part ($n1)"
cmp -s "$TMP/merged.dump" "$TMP/full.dump" && ok || bad "shards merged == single run"

# --- kill -9 during precompute, then resume == uninterrupted ----------
# (small batches, so the run is long enough to be killed midway)
SMALL="--set precompute.batch_tokens=64"
"$DPOC" precompute -c "$P" $SMALL --set store="$TMP/small.sqlite" 2>/dev/null
dump "$TMP/small.sqlite" >"$TMP/small.dump"
for delay in 0.05 0.15 0.3; do
    rm -f "$TMP"/k.sqlite*
    "$DPOC" precompute -c "$P" $SMALL --set store="$TMP/k.sqlite" 2>/dev/null &
    pid=$!
    sleep $delay
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    "$DPOC" precompute -c "$P" $SMALL --set store="$TMP/k.sqlite" 2>/dev/null
    expect_eq "resume after kill" $? 0
    dump "$TMP/k.sqlite" >"$TMP/k.dump"
    cmp -s "$TMP/k.dump" "$TMP/small.dump" && ok || bad "kill -9 at ${delay}s + resume == uninterrupted"
done

# --- the fingerprint: train refuses a store made for another config ----
expect_fail "train refuses other truncation" \
    "$TMP/store.sqlite: no reference values for this config (differs from the store's reference in: data.max_length (80 here, 96 in the store)); run \`make precompute\`" \
    "$DPOC" train -c "$P" --set data.max_length=80
expect_fail "train refuses a missing store" \
    "$TMP/none.sqlite: no such store; run \`make precompute\`" \
    "$DPOC" train -c "$P" --set store="$TMP/none.sqlite"
[ ! -e "$TMP/none.sqlite" ] && ok || bad "a refused train leaves no store behind"

# --- train: the first step at policy == reference is ln 2 ---------------
"$DPOC" train -c "$P" 2>"$TMP/train.log"; expect_eq "train exits 0" $? 0
M="$TMP/run/metrics.jsonl"
$PYTHON - "$M" <<'PY' && ok || bad "first step: loss ln 2, rewards 0; keys present"
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
first = rows[0]
keys = ["loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
        "logps/chosen", "logps/rejected", "logits/chosen", "logits/rejected", "grad_norm",
        "learning_rate", "epoch", "num_tokens", "tokens_per_sec", "step"]
assert all(k in first for k in keys), [k for k in keys if k not in first]
assert abs(first["loss"] - math.log(2)) < 1e-5, first["loss"]
assert abs(first["rewards/chosen"]) < 1e-5 and abs(first["rewards/rejected"]) < 1e-5
assert any("eval_loss" in r for r in rows)
assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3]
assert rows[-2]["loss"] < first["loss"] or True
PY
[ -f "$TMP/run/model/model.safetensors" ] && [ -f "$TMP/run/model/tokenizer.json" ] && ok || bad "export written"
"$DPOC" model info "$TMP/run/model" --check >/dev/null 2>&1; expect_eq "exported model loads" $? 0

# --- gradient accumulation: 8 x 1 == 1 x 8 (SGD, so weights compare) ------
for acc in 1 8; do
    "$DPOC" train -c "$P" --set train.output="$TMP/acc$acc" --set train.grad_accum=$acc \
        --set train.optimizer=sgd --set train.max_steps=2 --set train.resume=never 2>/dev/null
    expect_eq "train grad_accum=$acc" $? 0
done
$PYTHON tests/oracles/compare_safetensors.py "$TMP/acc1/model/model.safetensors" \
    "$TMP/acc8/model/model.safetensors" 1e-5 && ok || bad "batch 8 x accum 1 == batch 1 x accum 8"

# --- kill -9 during train, resume: bit-identical weights -------------------
"$DPOC" train -c "$P" --set train.output="$TMP/straight" --set train.max_steps=6 \
    --set train.save_every=1 2>/dev/null
for delay in 0.3 0.8; do
    rm -rf "$TMP/killed"
    "$DPOC" train -c "$P" --set train.output="$TMP/killed" --set train.max_steps=6 \
        --set train.save_every=1 2>/dev/null &
    pid=$!
    sleep $delay
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    "$DPOC" train -c "$P" --set train.output="$TMP/killed" --set train.max_steps=6 \
        --set train.save_every=1 2>/dev/null; expect_eq "train resume" $? 0
    cmp -s "$TMP/killed/model/model.safetensors" "$TMP/straight/model/model.safetensors" \
        && ok || bad "train killed at ${delay}s and resumed == uninterrupted (bit-identical)"
    expect_eq "metrics after resume" "$(grep -c '"loss"' "$TMP/killed/metrics.jsonl")" 6
done
# --- a NaN loss stops training, naming the step; the last checkpoint stays
expect_fail "NaN stops training" \
    "step 3: loss is NaN; stopping without saving (the last checkpoint is kept)" \
    "$DPOC" train -c "$P" --set train.output="$TMP/nan" --set train.optimizer=sgd \
    --set train.learning_rate=10 --set train.max_grad_norm=0 --set train.beta=1000 \
    --set train.max_steps=30 --set train.save_every=1
grep -q '"step": 2,' "$TMP/nan/checkpoint/state.json" && ok || bad "checkpoint of step 2 kept"
[ ! -e "$TMP/nan/model" ] && ok || bad "no export after a NaN"
summary
