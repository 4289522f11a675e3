#!/bin/sh
# e2e_mpi — data parallelism on loopback (issue 16): `mpirun -np 2` against
# one process with the same global batch, for precompute (the same rows and
# ids, values within 1e-5: bit-identical here, both at one thread), train
# (GPT-2 and Llama; AdamW and SGD; grad_accum 2; LoRA once) and sft: per-step
# metrics and final weights within 1e-5. Then failures: kill -9 of one rank
# ends the job (no hang) and a rerun resumes to the uninterrupted run's
# weights; SIGTERM saves a checkpoint at the next step and the resumed run is
# bit-identical (one process, and two ranks resumed by one process to float
# tolerance); SIGUSR1 to mpirun, which forwards it, stops alike. Every mpirun runs under a timeout; a missing mpirun fails.
. tests/lib.sh
need_torch

if ! command -v mpirun >/dev/null 2>&1; then
    bad "mpirun not found: install openmpi-bin (make deps)"
    summary
    exit 1
fi
# As root, without ssh, with only loopback, in a container (REFERENCES §13).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_plm=isolated OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_btl_tcp_if_include=lo
# Open MPI's own allocations are not ours to find leaks in.
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0"
DPOC=$(realpath "$DPOC")
CMP="$PYTHON $(realpath tests/oracles/compare_runs.py)"
mpi() { timeout 60 mpirun -np 2 "$DPOC" "$@"; }
# expect_cmp NAME KIND A B TOL
expect_cmp() {
    out=$($CMP "$2" "$3" "$4" "$5" 2>&1) && ok || bad "$1: $out"
}

mkdir -p "$TMP/gpt2" "$TMP/data"
cp examples/tiny/model/config.json examples/tiny/model/tokenizer.json \
   examples/tiny/model/tokenizer_config.json "$TMP/gpt2/"
tiny_llama "$TMP/llama"   # grouped-query attention, untied head (tests/lib.sh)
head -n 16 examples/data/train.jsonl >"$TMP/data/train.jsonl"
head -n 6 examples/data/eval.jsonl >"$TMP/data/eval.jsonl"
cd "$TMP" || exit 1

for m in gpt2 llama; do
    "$DPOC" model init $m --seed 5 >/dev/null 2>&1; expect_eq "$m: model init" $? 0
    cat >$m.yaml <<YAML
store: $m.sqlite
reference:
  model: $m
data:
  train: data/train.jsonl
  eval: data/eval.jsonl
  max_length: 96
  max_prompt_length: 48
precompute:
  threads: 1
  window_rows: 4
train:
  batch_size: 4
  learning_rate: 0.001
  adam_eps: 1.0e-6
  max_steps: 3
  shuffle: false
  log_every: 1
  eval_every: 2
  resume: never
  threads: 1
YAML
done

# ---- precompute: two ranks, one store ---------------------------------------
"$DPOC" precompute -c gpt2.yaml --set store=one.sqlite 2>pre1.log; expect_eq "precompute, one process" $? 0
mpi precompute -c gpt2.yaml 2>pre2.log; expect_eq "precompute, 2 ranks ($(tail -n 1 pre2.log))" $? 0
ls gpt2.sqlite.rank-* >/dev/null 2>&1 && bad "precompute: a rank's part was left behind" || ok
"$DPOC" store dump one.sqlite --per-token >one.dump
"$DPOC" store dump gpt2.sqlite --per-token >two.dump
expect_eq "precompute: rows" "$(wc -l <two.dump)" 22
expect_cmp "precompute: 2 ranks vs one process" dump two.dump one.dump 1e-5
cmp -s one.dump two.dump; expect_eq "precompute: bit-identical at the same thread count" $? 0
grep -q "merged the other ranks' parts" pre2.log; expect_eq "precompute: rank 0 merged the parts" $? 0
# A rank that died left its part (here: made by hand as --shard 2/2 makes
# it): the rerun reuses it and the merged store is a single run's.
"$DPOC" precompute -c gpt2.yaml --shard 2/2 --set store=resume.sqlite.rank-1 2>/dev/null
expect_eq "precompute: rank 1's part, by hand" $? 0
mpi precompute -c gpt2.yaml --set store=resume.sqlite 2>pre3.log
expect_eq "precompute: rerun over a part" $? 0
grep -q "precompute: 12 computed, 10 reused" pre3.log
expect_eq "precompute: the part's rows reused ($(grep -o '[0-9]* computed, [0-9]* reused' pre3.log))" $? 0
"$DPOC" store dump resume.sqlite --per-token >resume.dump
cmp -s one.dump resume.dump; expect_eq "precompute: resumed from a part == one process" $? 0
"$DPOC" precompute -c llama.yaml 2>/dev/null; expect_eq "precompute llama" $? 0
# The other commands are one process's.
mpi store info gpt2.sqlite >info.log 2>&1; rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "runs in one process" info.log && ok \
    || bad "store info under mpirun: exit $rc, $(head -n 1 info.log)"

# ---- train and sft: two ranks against one process ---------------------------
# NAME MODEL then --set overrides
cat >runs <<'RUNS'
adamw_accum2 gpt2 train.optimizer=adamw train.grad_accum=2 train.weight_decay=0.01 train.warmup_steps=1 train.lr_schedule=linear
adamw_sft_noaccum gpt2 train.loss=[sigmoid,sft] train.loss_weights=[1,0.5] train.max_grad_norm=0.5
lora gpt2 train.lora.r=4 train.lora.alpha=8 train.learning_rate=0.01 train.adam_eps=1e-4 train.grad_accum=2
adamw_accum2 llama train.optimizer=adamw train.grad_accum=2 train.weight_decay=0.01 train.lr_schedule=cosine
sgd_accum2 llama train.optimizer=sgd train.learning_rate=0.5 train.grad_accum=2 train.lr_schedule=constant
RUNS
while read -r name m sets; do
    args=""
    for kv in $sets; do args="$args --set $kv"; done
    # shellcheck disable=SC2086
    "$DPOC" train -c $m.yaml --set train.output=$m-$name-1 $args 2>$m-$name-1.log
    expect_eq "$m $name: one process" $? 0
    # shellcheck disable=SC2086
    mpi train -c $m.yaml --set train.output=$m-$name-2 $args >$m-$name-2.log 2>&1
    expect_eq "$m $name: 2 ranks ($(grep -v '^dpoc' $m-$name-2.log | head -n 1))" $? 0
    expect_cmp "$m $name: metrics" metrics $m-$name-2/metrics.jsonl $m-$name-1/metrics.jsonl 1e-5
    w=model/model.safetensors
    [ "$name" = lora ] && w=adapter/adapter_model.safetensors
    expect_cmp "$m $name: weights" weights $m-$name-2/$w $m-$name-1/$w 1e-5
done <runs
grep -qi -e mpi -e rank -e orte gpt2-adamw_accum2-1.log
expect_eq "one process: nothing of MPI in its output" $? 1
grep -q "2 ranks: .* in communication" gpt2-adamw_accum2-2.log
expect_eq "train: the share of time in communication is reported" $? 0

cat >sft.yaml <<'YAML'
reference:
  model: sft/model
data:
  train: data/train.jsonl
  eval: data/eval.jsonl
  max_length: 96
  max_prompt_length: 48
sft:
  init: gpt2
  batch_size: 5
  max_steps: 4
  learning_rate: 0.001
  log_every: 1
  eval_every: 2
  resume: never
  threads: 1
YAML
"$DPOC" sft -c sft.yaml --set sft.output=sft1 2>sft1.log; expect_eq "sft: one process" $? 0
mpi sft -c sft.yaml --set sft.output=sft2 >sft2.log 2>&1; expect_eq "sft: 2 ranks" $? 0
expect_cmp "sft: metrics" metrics sft2/metrics.jsonl sft1/metrics.jsonl 1e-5
expect_cmp "sft: weights" weights sft2/model/model.safetensors sft1/model/model.safetensors 1e-5

# ---- failures -----------------------------------------------------------------
# A long run of tiny steps, a checkpoint every 5.
LONG="--set train.max_steps=30 --set train.save_every=5 --set train.log_every=5 --set train.eval_every=0 --set train.resume=auto"
# wait_ckpt DIR: until DIR/checkpoint/state.json exists (at most 30 s).
wait_ckpt() {
    i=0
    while [ ! -f "$1/checkpoint/state.json" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
}
# ranks_of OUT: the pids of the dpoc processes training into OUT.
ranks_of() {
    pgrep -f "train.output=$1" | while read -r p; do
        [ "$(readlink /proc/$p/exe 2>/dev/null)" = "$DPOC" ] && echo "$p"; done
}
# shellcheck disable=SC2086
mpi train -c gpt2.yaml --set train.output=full2 $LONG >full2.log 2>&1
expect_eq "long run, 2 ranks" $? 0

# kill -9 of rank 1: the job ends within seconds, the checkpoint stays.
# shellcheck disable=SC2086
timeout 60 mpirun -np 2 "$DPOC" train -c gpt2.yaml --set train.output=killed $LONG >killed.log 2>&1 &
job=$!
wait_ckpt killed
victim=$(ranks_of killed | tail -n 1)
t0=$(date +%s)
[ -n "$victim" ] && kill -9 "$victim"
wait $job; rc=$?
secs=$(( $(date +%s) - t0 ))
[ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $secs -le 15 ] && ok \
    || bad "kill -9 of a rank: mpirun exit $rc after ${secs}s (expected a failure within seconds)"
[ -f killed/checkpoint/state.json ] && ok || bad "kill -9: no checkpoint left"
# shellcheck disable=SC2086
mpi train -c gpt2.yaml --set train.output=killed $LONG >resumed.log 2>&1
expect_eq "rerun after kill -9" $? 0
grep -q "resuming from" resumed.log; expect_eq "the rerun resumed" $? 0
cmp -s killed/model/model.safetensors full2/model/model.safetensors
expect_eq "kill -9 + rerun: the uninterrupted run's weights, bit for bit" $? 0

# SIGTERM, one process: a checkpoint at the next step, exit 143, the line
# saying how to resume; the resumed run is bit-identical.
# shellcheck disable=SC2086
"$DPOC" train -c gpt2.yaml --set train.output=full1 $LONG 2>full1.log
expect_eq "long run, one process" $? 0
# shellcheck disable=SC2086
"$DPOC" train -c gpt2.yaml --set train.output=term1 $LONG 2>term1.log &
job=$!
wait_ckpt term1
kill -TERM $job
wait $job; rc=$?
expect_eq "SIGTERM: exit status" $rc 143
tail -n 1 term1.log | grep -q "^train: stopped by SIGTERM at step [0-9]*; checkpoint saved in term1/checkpoint; rerun the same command to resume$"
expect_eq "SIGTERM: the message ($(tail -n 1 term1.log))" $? 0
step=$(sed 's/.*"step": \([0-9]*\).*/\1/' term1/checkpoint/state.json)
[ "$step" -gt 0 ] && [ "$step" -lt 30 ] && ok || bad "SIGTERM: checkpoint at step $step, expected mid-run"
# shellcheck disable=SC2086
"$DPOC" train -c gpt2.yaml --set train.output=term1 $LONG 2>term1b.log
expect_eq "SIGTERM: resume" $? 0
cmp -s term1/model/model.safetensors full1/model/model.safetensors
expect_eq "SIGTERM + resume: bit-identical weights" $? 0

# SIGTERM to one rank of two: every rank stops at the same step with the
# checkpoint; one process resumes it (another N: float tolerance).
# shellcheck disable=SC2086
timeout 60 mpirun -np 2 "$DPOC" train -c gpt2.yaml --set train.output=term2 $LONG >term2.log 2>&1 &
job=$!
wait_ckpt term2
victim=$(ranks_of term2 | tail -n 1)
[ -n "$victim" ] && kill -TERM "$victim"
wait $job; rc=$?
[ $rc -ne 124 ] && ok || bad "SIGTERM to a rank: the job hung"
grep -q "stopped by SIGTERM at step" term2.log; expect_eq "SIGTERM to a rank: stopped ($(tail -n 1 term2.log))" $? 0
# shellcheck disable=SC2086
"$DPOC" train -c gpt2.yaml --set train.output=term2 $LONG 2>term2b.log
expect_eq "2-rank checkpoint resumed by one process" $? 0
expect_cmp "2-rank checkpoint resumed by one process: weights" weights \
    term2/model/model.safetensors full1/model/model.safetensors 1e-4

# SIGUSR1 to mpirun, which forwards it: the same stop.
# shellcheck disable=SC2086
timeout 60 mpirun -np 2 "$DPOC" train -c gpt2.yaml --set train.output=usr1 $LONG >usr1.log 2>&1 &
job=$!
wait_ckpt usr1
launcher=$(pgrep -f "^mpirun -np 2 $DPOC train -c gpt2.yaml --set train.output=usr1")
[ -n "$launcher" ] && kill -USR1 "$launcher"
wait $job
grep -q "train: stopped by SIGUSR1 at step [0-9]*; checkpoint saved" usr1.log
expect_eq "SIGUSR1 to mpirun: stopped with a checkpoint ($(grep -v '^dpoc' usr1.log | head -n 1))" $? 0

# An error on the ranks: each says which it is, and the job ends (no hang).
mpi train -c gpt2.yaml --set store=nope.sqlite >nope.log 2>&1; rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q '^rank [01]/2: nope.sqlite: no such store; run `make precompute`$' nope.log && ok \
    || bad "an error under mpirun: exit $rc, $(grep -v '^dpoc' nope.log | head -n 1)"

# model info: the memory per rank
"$DPOC" model info gpt2 --ranks 2 >info.out 2>&1; expect_eq "model info --ranks 2" $? 0
grep -q "per rank with 2 ranks" info.out; expect_eq "model info --ranks: per-rank memory" $? 0
summary
