#!/bin/sh
# e2e_first_contact — what a new user meets on a fresh clone (a copy of the
# Makefile, pipeline.yaml and examples/, shortened with SET):
# `make train` before anything else says which command to run; `make
# precompute && make train` runs sft → precompute → train with the default
# pipeline; another config with a missing reference gets one line naming the
# command that makes it; step lines carry elapsed time and an ETA and each
# stage ends with a summary line; make deps / make demo install only the
# runtime packages, make test adds the test set.
. tests/lib.sh

case $DPOC in /*) D=$DPOC ;; *) D=$(pwd)/$DPOC ;; esac
CLONE="$TMP/clone"
mkdir -p "$CLONE"
cp -r Makefile pipeline.yaml examples "$CLONE/"
SHORT="sft.max_steps=8 sft.log_every=4 train.max_steps=4 train.log_every=1 train.eval_every=0"
mk() { make --no-print-directory -C "$CLONE" "$@" DPOC="$D" SET="$SHORT"; }

# the Makefile's DEFAULT_REFERENCE is pipeline.yaml's reference.model
grep -q '^  model: runs/sft/model$' pipeline.yaml && grep -q '^DEFAULT_REFERENCE := runs/sft/model/' Makefile \
    && ok || bad "Makefile DEFAULT_REFERENCE and pipeline.yaml reference.model agree"

mk train >"$TMP/train0.out" 2>&1; rc=$?
[ $rc -ne 0 ] && grep -qx 'cache/store.sqlite: no such store; run `make precompute`' "$TMP/train0.out" \
    && ok || bad "make train on a fresh clone says make precompute: exit $rc, $(cat "$TMP/train0.out")"
mk eval >"$TMP/eval0.out" 2>&1; rc=$?
[ $rc -ne 0 ] && grep -qx 'cache/store.sqlite: no such store; run `make precompute`' "$TMP/eval0.out" \
    && ok || bad "make eval on a fresh clone says make precompute: exit $rc, $(cat "$TMP/eval0.out")"
grep -q "cannot open" "$TMP/train0.out" "$TMP/eval0.out" && bad "no raw 'cannot open' on a fresh clone" || ok
# dpoc itself (no make chain) names the command that makes the reference
expect_fail "dpoc precompute on a fresh clone" \
    'pipeline.yaml: reference.model: runs/sft/model does not exist yet; it is the model `dpoc sft -c pipeline.yaml` (make sft) writes' \
    sh -c "cd '$CLONE' && '$D' precompute -c pipeline.yaml"

mk precompute >"$TMP/pre.out" 2>&1; expect_eq "make precompute on a fresh clone" $? 0
[ -f "$CLONE/runs/sft/model/model.safetensors" ] && ok || bad "make precompute trained the reference (make sft) first"
grep -q "^dpoc: sft: 8 steps (128 responses, [0-9]* tokens) in [0-9.]* s, [0-9]* tokens/s, peak memory .*; model in runs/sft/model$" "$TMP/pre.out" \
    && ok || bad "sft summary line: $(grep 'dpoc: sft' "$TMP/pre.out" | tail -n 1)"
grep -q "^dpoc: step 4/8  loss .* tok/s  elapsed [0-9]*s, ETA [0-9]*s$" "$TMP/pre.out" \
    && ok || bad "sft step line with elapsed and ETA: $(grep 'step 4/8' "$TMP/pre.out")"
grep -q "^dpoc: precompute: 576 computed" "$TMP/pre.out" && ok || bad "precompute ran: $(tail -n 3 "$TMP/pre.out")"

mk train >"$TMP/train.out" 2>&1; expect_eq "make train after make precompute" $? 0
grep -q "^dpoc: step 2/4  loss .* tok/s  elapsed [0-9]*s, ETA [0-9]*s$" "$TMP/train.out" \
    && ok || bad "train step line with elapsed and ETA: $(grep 'step 2/4' "$TMP/train.out")"
grep -q "^dpoc: step 4/4  loss .* tok/s  elapsed [0-9]*s$" "$TMP/train.out" \
    && ok || bad "last step line: elapsed, no ETA: $(grep 'step 4/4' "$TMP/train.out")"
grep -q "^dpoc: train: 4 steps (64 pairs, [0-9]* tokens) in [0-9.]* s, [0-9]* tokens/s, peak memory .*; model in runs/dpo/model$" "$TMP/train.out" \
    && ok || bad "train summary line: $(tail -n 1 "$TMP/train.out")"

# the reference exists now: make precompute does not train it again
mk precompute >"$TMP/pre2.out" 2>&1; expect_eq "make precompute again" $? 0
grep -q "dpoc: sft" "$TMP/pre2.out" && bad "make precompute retrained an existing reference" || ok

# another config: dpoc names the command, with CONFIG=
cp "$CLONE/pipeline.yaml" "$CLONE/my.yaml"
expect_fail "missing reference, another config" \
    'my.yaml: reference.model: runs/sft/model does not exist yet; it is the model `dpoc sft -c my.yaml` (make sft CONFIG=my.yaml) writes' \
    sh -c "cd '$CLONE' && rm -rf runs && '$D' precompute -c my.yaml"
expect_fail "missing reference that no stage writes" \
    "my.yaml: reference.model: nope: No such file or directory (expected a Hugging Face model directory: config.json, model.safetensors, tokenizer.json)" \
    sh -c "cd '$CLONE' && '$D' train -c my.yaml --set reference.model=nope"

# packages: a dpkg-query that knows of nothing, so deps.sh lists each set
mkdir -p "$TMP/bin"
printf '#!/bin/sh\nexit 1\n' >"$TMP/bin/dpkg-query"
chmod +x "$TMP/bin/dpkg-query"
runtime=$(PATH="$TMP/bin:$PATH" sh tests/deps.sh check runtime)
all=$(PATH="$TMP/bin:$PATH" sh tests/deps.sh check test)
# (nodejs and npm are left out: deps.sh accepts them from PATH)
for p in python3-torch python3-numpy clang sqlite3; do
    case " $runtime " in *" $p "*) bad "runtime set holds test-only $p" ;; *) ok ;; esac
    case " $all " in *" $p "*) ok ;; *) bad "test set lacks $p" ;; esac
done
for p in gcc libopenblas-dev libsqlite3-dev libzstd-dev libyaml-dev gnuplot-nox; do
    case " $runtime " in *" $p "*) ok ;; *) bad "runtime set lacks $p" ;; esac
done
make -n -C "$CLONE" demo 2>/dev/null | grep -q "deps.sh install runtime$" && ok || bad "make demo installs the runtime set"
for t in test bench fuzz; do
    make -n -C "$CLONE" $t 2>/dev/null | grep -q "deps.sh install test$" && ok || bad "make $t installs the test set"
done
summary
