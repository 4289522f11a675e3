#!/bin/sh
# run.sh [--smoke] — the benchmark suite (`make bench`): the engine against
# eager PyTorch on random-weight models of real shapes (GPT-2 124M and a
# SmolLM-135M-shaped Llama, tests/bench/configs/) over synthetic preference
# pairs with HH-like (long prompts) and UltraFeedback-like (long responses)
# lengths, fixed seed. Prints one table and writes it as JSON to
# $BUILD/bench/results.json; the pieces are in $BUILD/bench/parts/.
#
# Measures, each workload in its own process (separate peak memory):
#   precompute tokens/s with prefix sharing on and off, and PyTorch's;
#   train pairs/s and tokens/s of full DPO optimizer steps, and PyTorch's
#   online DPO step (reference forward + policy forward/backward + AdamW);
#   the same for LoRA r 16 on every linear layer against PyTorch's LoRA DPO
#   step (the reference is the base with the adapters off, as TRL with PEFT);
#   MFU against a cblas_sgemm peak measured in the same run; peak RSS next
#   to model_memory_estimate and what an online DPO would hold; tokenizer
#   MB/s; store bytes per token.
#
#   (default)   a short run: a few batches each, ~25 minutes on 2 cores
#   BENCH_FULL=1  longer runs (more pairs and steps; train without sharing too)
#   --smoke     tiny shapes and lengths, < 20 s: proves the suite runs
#               (tests/e2e_bench_smoke.sh); its numbers mean nothing
# Env: BUILD (build dir holding libdpoc.a), PYTHON (python with torch),
# BENCH_THREADS (default: every core), BENCH_OUT (default $BUILD/bench),
# SANITIZE (1: link like the ASan build).
# Benchmarks are measurements, never pass/fail on speed.
set -u
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
SMOKE=0
case "${1:-}" in
    --smoke) SMOKE=1 ;;
    "") ;;
    *) echo "usage: tests/bench/run.sh [--smoke]" >&2; exit 2 ;;
esac
OUT=${BENCH_OUT:-$BUILD/bench}
PARTS=$OUT/parts
BIN=$OUT/bench
# Our workloads run with the thread settings the dpoc binary chooses unless
# the user did (stages/main.c); PyTorch keeps its own defaults.
ours() { OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} \
    OPENBLAS_THREAD_TIMEOUT=${OPENBLAS_THREAD_TIMEOUT:-4} "$@"; }
rm -rf "$PARTS"
mkdir -p "$PARTS"

# ---- build the bench program with the Makefile's flags ----
PKGS="openblas sqlite3 libzstd yaml-0.1 jansson libpcre2-8 libutf8proc libxxhash zlib"
SANFLAGS=""
if [ "${SANITIZE:-}" = 1 ]; then
    SANFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1"
fi
if [ ! -f "$BUILD/libdpoc.a" ]; then
    make --no-print-directory BUILD="$BUILD" SANITIZE="${SANITIZE:-}" "$BUILD/libdpoc.a" >&2 || exit 1
fi
CC=${CC:-gcc}
# shellcheck disable=SC2046
$CC -O2 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fopenmp $(for d in common/*/; do printf -- "-I%s " "${d%/}"; done) $SANFLAGS \
    $(pkg-config --cflags $PKGS) tests/bench/bench.c tests/bench/big.c -o "$BIN" "$BUILD/libdpoc.a" \
    -fopenmp $SANFLAGS $(pkg-config --libs $PKGS) -lm || { echo "run.sh: building $BIN failed" >&2; exit 1; }

THREADS=${BENCH_THREADS:-$(nproc)}
export BENCH_THREADS=$THREADS

# ---- sizes ----
# Train batches are 4 pairs: PyTorch's usual implementation (full logits,
# eager attention) needs ~17 GB for 4 UltraFeedback-length pairs of the
# SmolLM shape, so 8 would not fit the 24 GB these machines have.
if [ $SMOKE = 1 ]; then
    MODE=smoke MODELS="gpt2-tiny llama-tiny" SCALE=0.125
    PRE_PAIRS=8 TRAIN_BATCH=4 TRAIN_STEPS=1 SGEMM_N=256 TOK_BYTES=65536 TRAIN_OFF=0
elif [ "${BENCH_FULL:-}" = 1 ]; then
    MODE=full MODELS="gpt2-124m smollm-135m" SCALE=1
    PRE_PAIRS=64 TRAIN_BATCH=4 TRAIN_STEPS=4 SGEMM_N=2048 TOK_BYTES=16000000 TRAIN_OFF=1
else
    MODE=default MODELS="gpt2-124m smollm-135m" SCALE=1
    PRE_PAIRS=8 TRAIN_BATCH=4 TRAIN_STEPS=1 SGEMM_N=2048 TOK_BYTES=4000000 TRAIN_OFF=0
fi
DISTS="hh uf"
LORA_R=16
MAX_TOKENS=4096
TORCH_PRE_BATCH=8
echo "dpoc bench ($MODE): $THREADS threads; OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset}; logs in $PARTS" >&2

step() { echo "  $(date +%H:%M:%S) $*" >&2; }
run() { # run NAME CMD... — one workload; a failure is reported and the suite goes on
    name=$1; shift
    "$@" >"$PARTS/$name.log" 2>&1 || { echo "run.sh: $name failed (exit $?), log follows" >&2;
        tail -n 20 "$PARTS/$name.log" | sed 's/^/    /' >&2; FAILED="$FAILED $name"; }
}
FAILED=""

LOAD_START=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo null)
step "sgemm peak ($SGEMM_N³, best of 3)"
run sgemm ours "$BIN" sgemm $SGEMM_N 3 "$PARTS/sgemm.json"

# The GPT-2 tokenizer when tests/fixtures.sh has assembled it; else the
# byte-level tiny one shipped with the examples.
TOK=build/fixtures/gpt2/tokenizer.json
[ -s "$TOK" ] || TOK=examples/tiny/model/tokenizer.json
step "tokenizer ($TOK, $TOK_BYTES bytes)"
run tokenizer ours "$BIN" tokenizer "$TOK" $TOK_BYTES "$PARTS/tokenizer.json"

for d in $DISTS; do
    "$BIN" lengths $d $PRE_PAIRS 1234 "$PARTS/$d.lengths" $SCALE || exit 1
done

# PyTorch's jobs write $PARTS/torch_info.json (whether torch imports, its
# version); without torch they run nothing and the report says so.
echo '{"available": false, "reason": "torch_bench.py did not run"}' >"$PARTS/torch_info.json"
PY_OK=1
if ! "$PYTHON" -c pass 2>/dev/null; then
    PY_OK=0
    echo "{\"available\": false, \"reason\": \"$PYTHON does not run\"}" >"$PARTS/torch_info.json"
fi
TORCH_JOBS=""
# BENCH_ONLY_BIG=1: only the big-checkpoint rows below.
[ "${BENCH_ONLY_BIG:-}" = 1 ] && MODELS=""
for m in $MODELS; do
    cfg=tests/bench/configs/$m.json
    for d in $DISTS; do
        L=$PARTS/$d.lengths
        step "$m $d: precompute, prefix sharing on / off"
        run $m.$d.pre_on ours "$BIN" precompute "$cfg" "$L" 1 $MAX_TOKENS "$PARTS/$m.$d.pre_on.json"
        run $m.$d.pre_off ours "$BIN" precompute "$cfg" "$L" 0 $MAX_TOKENS "$PARTS/$m.$d.pre_off.json"
        step "$m $d: train, $TRAIN_BATCH pairs x $TRAIN_STEPS steps"
        run $m.$d.train_on ours "$BIN" train "$cfg" "$L" 1 $TRAIN_BATCH $TRAIN_STEPS "$PARTS/$m.$d.train_on.json"
        step "$m $d: LoRA r$LORA_R train, $TRAIN_BATCH pairs x $TRAIN_STEPS steps"
        run $m.$d.train_lora ours "$BIN" train "$cfg" "$L" 1 $TRAIN_BATCH $TRAIN_STEPS "$PARTS/$m.$d.train_lora.json" $LORA_R
        if [ $TRAIN_OFF = 1 ]; then
            run $m.$d.train_off ours "$BIN" train "$cfg" "$L" 0 $TRAIN_BATCH $TRAIN_STEPS "$PARTS/$m.$d.train_off.json"
        fi
        jobs="precompute,$cfg,$L,$TORCH_PRE_BATCH,$m.$d.torch_pre train,$cfg,$L,$TRAIN_BATCH,$TRAIN_STEPS,$m.$d.torch_train"
        jobs="$jobs train_lora,$cfg,$L,$TRAIN_BATCH,$TRAIN_STEPS,$LORA_R,$m.$d.torch_lora"
        if [ $SMOKE = 0 ] && [ $PY_OK = 1 ]; then
            for j in $jobs; do
                step "$m $d: PyTorch ${j%%,*}"
                # shellcheck disable=SC2086
                run "${j##*,}" "$PYTHON" tests/bench/torch_bench.py run $THREADS "$PARTS" $j
            done
        fi
        TORCH_JOBS="$TORCH_JOBS $jobs"
    done
done
# The smoke run starts Python once for every job (importing torch costs
# seconds); its peaks are then cumulative, which it does not care about.
if [ $SMOKE = 1 ] && [ $PY_OK = 1 ]; then
    step "PyTorch: every job in one process"
    # shellcheck disable=SC2086
    run torch "$PYTHON" tests/bench/torch_bench.py run $THREADS "$PARTS" $TORCH_JOBS
fi

# ---- big BF16 checkpoints from their mapping (issue 14's targets) ----
# Written to disk as published (sharded, tensor by tensor), run through the
# real loader with and without memory.budget's plans. BENCH_BIG=0 skips them
# (about 15 minutes and 15 GiB of disk; the checkpoints are deleted after
# the run unless BENCH_KEEP=1).
BIG=${BENCH_BIG:-1}
if [ $BIG = 1 ]; then
    CK=$OUT/ckpt
    if [ $SMOKE = 1 ]; then
        C1=tests/bench/configs/llama-tiny.json C7=tests/bench/configs/llama-tiny.json
        SHARD=100000 BIG_PAIRS=3 B7=$((200 << 20))
    else
        C1=tests/bench/configs/llama-3.2-1b.json C7=tests/bench/configs/llama-2-7b.json
        SHARD=5000000000 BIG_PAIRS=3 B7=$((4 << 30))
    fi
    "$BIN" lengths hh $BIG_PAIRS 4321 "$PARTS/big.lengths" $SCALE || exit 1
    for k in 1b 7b; do
        cfg=$C1; [ $k = 7b ] && cfg=$C7
        if [ ! -s "$CK/$k/model.safetensors.index.json" ]; then
            step "$k: writing a random BF16 checkpoint ($cfg)"
            mkdir -p "$CK/$k"
            run big.$k.write "$BIN" write_ckpt "$cfg" "$CK/$k" $SHARD 7
        fi
    done
    step "1B: precompute and a LoRA r16 step from the mapping"
    run big.1b.pre ours "$BIN" big_precompute "$CK/1b" "$PARTS/big.lengths" 4096 0 "$PARTS/big.1b.pre.json"
    run big.1b.lora ours "$BIN" big_lora "$CK/1b" "$PARTS/big.lengths" 1 3 16 0 "$PARTS/big.1b.lora.json"
    if [ $SMOKE = 0 ] && [ $PY_OK = 1 ]; then
        step "1B: PyTorch precompute and LoRA step (float32)"
        run big.1b.torch "$PYTHON" tests/bench/torch_bench.py run $THREADS "$PARTS" \
            "precompute,$C1,$PARTS/big.lengths,$TORCH_PRE_BATCH,big.1b.torch_pre" \
            "train_lora,$C1,$PARTS/big.lengths,1,3,16,big.1b.torch_lora"
    fi
    step "7B: precompute without a budget, then precompute and a LoRA r16 step within $((B7 >> 20)) MiB"
    run big.7b.pre ours "$BIN" big_precompute "$CK/7b" "$PARTS/big.lengths" 1024 0 "$PARTS/big.7b.pre.json"
    run big.7b.pre_budget ours "$BIN" big_precompute "$CK/7b" "$PARTS/big.lengths" 1024 $B7 "$PARTS/big.7b.pre_budget.json"
    run big.7b.lora_budget ours "$BIN" big_lora "$CK/7b" "$PARTS/big.lengths" 1 1 16 $B7 "$PARTS/big.7b.lora_budget.json"
    [ "${BENCH_KEEP:-}" = 1 ] || rm -rf "$CK"
fi

# The peak again at the end; the report takes the better of the two, so
# MFU is never flattered by a peak measured while the machine was busy.
step "sgemm peak again"
run sgemm_end "$BIN" sgemm $SGEMM_N 3 "$PARTS/sgemm_end.json"

# The machine's load around the run: other work on the cores skews every
# figure, and not equally for both sides, so it is recorded (the report
# warns when the machine was busy).
LOAD_END=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo null)
printf '{"load_average_start": %s, "load_average_end": %s, "omp_wait_policy": "%s", "nproc": %s}\n' \
    "$LOAD_START" "$LOAD_END" "${OMP_WAIT_POLICY:-}" "$(nproc)" >"$PARTS/env.json"
grep -q '"available": true' "$PARTS/torch_info.json" ||
    echo "run.sh: PyTorch unavailable: $(tr -d '\n' <"$PARTS/torch_info.json"); its columns stay empty" >&2
[ -z "$MODELS" ] || "$BIN" report "$PARTS" "$OUT/results.json" $MODE "$(echo $MODELS | tr ' ' ,)" \
    "$(echo $DISTS | tr ' ' ,)" || exit 1
if [ $BIG = 1 ]; then
    "$BIN" big_report "$PARTS" "$OUT/big.json" || exit 1
fi
if [ -n "$FAILED" ]; then
    echo "run.sh: workloads that failed:$FAILED (logs in $PARTS)" >&2
    exit 1
fi
