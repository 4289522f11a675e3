#!/bin/sh
# e2e_eval — dpoc eval on the tiny model after precompute and a short train
# (and a two-point β sweep): every eval.json key; the reference's KL exactly
# 0; the reference evaluated as a policy gives KL 0 and loss ln 2; the
# preference figures equal train's own eval of the same model; the KL and
# judge figures recomputed by the PyTorch oracle from the dumped samples;
# reproducible; errors.
. tests/lib.sh
need_torch
tiny_pipeline "threads: 1"
# A judge that counts single letters, so random text scores non-zero.
for c in a b c d e f g h i j k l m; do echo "+ $c"; done >"$TMP/letters.words"
for c in n o p q r s t u v w x y z; do echo "- $c"; done >>"$TMP/letters.words"
cat >>"$P" <<YAML
eval:
  samples: 3
  max_new_tokens: 12
  max_prompts: 6
  judge: letters.words
sweep:
  train.beta: [0.1, 0.5]
YAML
# eval.json holds one key per line (the oracle parses it as JSON too)
jget() { sed -n "s/^ *\"$2\": \(.*\)\$/\1/p" "$1" | sed 's/,$//'; }
# near A B TOL: |A - B| <= TOL
near() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && b != "" && d <= t) }'; }
last_eval_loss() { grep eval_loss "$1" | tail -n 1 | sed 's/.*"eval_loss": \([^,}]*\).*/\1/'; }

"$DPOC" precompute -c "$P" >/dev/null 2>&1; expect_eq "precompute" $? 0
"$DPOC" train -c "$P" >/dev/null 2>&1; expect_eq "train" $? 0
"$DPOC" sweep -c "$P" >/dev/null 2>&1; expect_eq "sweep" $? 0

# --- eval of the reference, the run and both sweep points ------------------
"$DPOC" eval -c "$P" --dump-samples "$TMP/d1.jsonl" >"$TMP/out" 2>"$TMP/err"
expect_eq "eval exits 0" $? 0
for f in run/reference_eval.json run/eval.json "run/beta=0.1/eval.json" "run/beta=0.5/eval.json"; do
    [ -f "$TMP/$f" ] && ok || bad "eval wrote $f"
    keys=$(grep -o '^ *"[a-z_]*":' "$TMP/$f" | tr -d ' ":' | sort | tr '\n' ' ')
    expect_eq "$f keys" "$keys" "eval_accuracy eval_loss eval_margin judge_score kl model n_prompts n_samples "
done
expect_eq "table rows" "$(grep -c '^| ' "$TMP/out")" 5
expect_eq "reference kl is exactly 0" "$(jget "$TMP/run/reference_eval.json" kl)" "0.0"
expect_eq "reference eval_margin 0" "$(jget "$TMP/run/reference_eval.json" eval_margin)" "0.0"
near "$(jget "$TMP/run/reference_eval.json" eval_loss)" 0.6931471805599453 1e-12 && ok || bad "reference eval_loss ln 2"
expect_eq "n_prompts" "$(jget "$TMP/run/eval.json" n_prompts)" 6
expect_eq "n_samples" "$(jget "$TMP/run/eval.json" n_samples)" 18
kl=$(jget "$TMP/run/eval.json" kl)
near "$kl" 0 0.01 && bad "trained policy's KL is clearly positive (got $kl)" || ok

# Preference figures equal train's own final eval (packed, prefix-shared
# forward) of the same model, each sweep point with its own beta.
for d in run "run/beta=0.1" "run/beta=0.5"; do
    near "$(jget "$TMP/$d/eval.json" eval_loss)" "$(last_eval_loss "$TMP/$d/metrics.jsonl")" 1e-5 \
        && ok || bad "$d: eval_loss $(jget "$TMP/$d/eval.json" eval_loss) vs train's $(last_eval_loss "$TMP/$d/metrics.jsonl")"
done

# KL and judge against PyTorch and a recount: the run, one sweep point, and
# the reference's own samples.
"$PYTHON" tests/oracles/eval_oracle.py "$MODEL" "$TMP/d1.jsonl" "$TMP/letters.words" \
    run "$TMP/run/model" "$TMP/run/eval.json" \
    "beta=0.5" "$TMP/run/beta=0.5/model" "$TMP/run/beta=0.5/eval.json" \
    reference "$MODEL" "$TMP/run/reference_eval.json" >"$TMP/oracle.out" 2>&1
expect_eq "oracle" $? 0
grep FAIL "$TMP/oracle.out" | head -n 5 >&2
judge=$(jget "$TMP/run/eval.json" judge_score)
near "$judge" 0 0 && bad "letter judge scores something ($judge)" || ok

# A hand count: the first dumped completion's letters, counted by grep.
first=$(head -n 1 "$TMP/d1.jsonl" | "$PYTHON" -c 'import json,sys; r=json.loads(sys.stdin.read()); print(r["completion"].encode("ascii","replace").decode()); print(r["judge"], file=sys.stderr)' 2>"$TMP/j1")
plus=$(printf '%s' "$first" | tr 'A-Z' 'a-z' | grep -o '[a-z]\+' | grep -c '^[a-m]$')
minus=$(printf '%s' "$first" | tr 'A-Z' 'a-z' | grep -o '[a-z]\+' | grep -c '^[n-z]$')
expect_eq "hand count of the first completion" "$(cat "$TMP/j1")" "$((plus - minus))"

# --- reproducible --------------------------------------------------------
cp "$TMP/run/eval.json" "$TMP/eval1.json"
"$DPOC" eval -c "$P" --dump-samples "$TMP/d2.jsonl" >/dev/null 2>&1
cmp -s "$TMP/d1.jsonl" "$TMP/d2.jsonl" && ok || bad "samples are reproducible"
cmp -s "$TMP/eval1.json" "$TMP/run/eval.json" && ok || bad "eval.json is reproducible"
"$DPOC" eval -c "$P" --set eval.seed=2 --dump-samples "$TMP/d3.jsonl" >/dev/null 2>&1
cmp -s "$TMP/d1.jsonl" "$TMP/d3.jsonl" && bad "another seed gives other samples" || ok

# --- the reference as the policy: KL 0, loss ln 2 --------------------------
"$DPOC" eval -c "$P" --model "$MODEL" --output "$TMP/self.json" >/dev/null 2>&1
expect_eq "eval --model exits 0" $? 0
expect_eq "self kl is exactly 0" "$(jget "$TMP/self.json" kl)" "0.0"
near "$(jget "$TMP/self.json" eval_loss)" 0.6931471805599453 1e-5 && ok || bad "self eval_loss ln 2: $(jget "$TMP/self.json" eval_loss)"
near "$(jget "$TMP/self.json" eval_margin)" 0 1e-5 && ok || bad "self eval_margin 0"
expect_eq "self judge = reference judge" "$(jget "$TMP/self.json" judge_score)" "$(jget "$TMP/run/reference_eval.json" judge_score)"
# --model .../model writes beside it
rm -f "$TMP/run/eval.json"
"$DPOC" eval -c "$P" --model "$TMP/run/model" >/dev/null 2>&1
cmp -s "$TMP/eval1.json" "$TMP/run/eval.json" && ok || bad "--model RUN/model writes RUN/eval.json"

# --- errors ----------------------------------------------------------------
expect_fail "no store" "$TMP/nope.sqlite: no such store; run \`make precompute\`" \
    "$DPOC" eval -c "$P" --set store="$TMP/nope.sqlite"
printf '+ good\n* bad\n' >"$TMP/bad.words"
expect_fail "bad judge file" "$TMP/bad.words:2: expected \"+ word\" or \"- word\" (a word of 1..63 ASCII letters), got \"* bad\"" \
    "$DPOC" eval -c "$P" --set eval.judge="$TMP/bad.words"
expect_fail "missing model" "/nonexistent/config.json: cannot open: No such file or directory" \
    "$DPOC" eval -c "$P" --model /nonexistent
"$DPOC" eval -c "$P" --output "$TMP/x.json" >/dev/null 2>&1; expect_eq "--output without --model" $? 2
"$DPOC" eval -c "$P" --set eval.samples=0 >/dev/null 2>&1; expect_eq "eval.samples=0 refused" $? 1
"$DPOC" eval -c "$P" --set data.eval= >"$TMP/out" 2>"$TMP/err"; expect_eq "no eval split refused" $? 1
grep -q "data.eval: empty" "$TMP/err" && ok || bad "no eval split: $(tail -n 1 "$TMP/err")"
"$DPOC" eval --help | grep -q -- "--dump-samples" && ok || bad "help lists --dump-samples"
summary
