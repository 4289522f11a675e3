#!/bin/sh
# run.sh — builds the libFuzzer harnesses (tests/fuzz/fuzz_*.c) with clang,
# ASan and UBSan against common/*/*.c, then runs each for FUZZ_SECONDS.
#
#   sh tests/fuzz/run.sh                 every harness, FUZZ_SECONDS (60) each
#   FUZZ_TARGETS="config jsonl" sh tests/fuzz/run.sh      a subset
#   FUZZ_SECONDS=0 sh tests/fuzz/run.sh  build only
#   $BUILD/fuzz/fuzz_NAME FILE...        replay inputs (e.g. a reproducer)
#   FUZZ_KEEP_GOING=1 sh tests/fuzz/run.sh   go on after a crash (libFuzzer
#                                        -fork=1 -ignore_crashes=1), to find
#                                        several bugs in one run
#
# Seeds: tests/fuzz/corpus/NAME (committed, read only here); what the fuzzer
# finds goes to $BUILD/fuzz/corpus/NAME and survives between runs. Crashes,
# leaks, timeouts (-timeout=10) and out-of-memory (-rss_limit_mb=2048) stop
# the run: the reproducer is written under $BUILD/fuzz/artifacts/NAME/ and
# its path printed; the script then exits 1 once every harness has run.
# Minimize a reproducer with `$BUILD/fuzz/fuzz_NAME -minimize_crash=1
# -runs=10000 FILE` and add it to tests/fuzz/regressions/NAME/.
# Runs from the repository root (the harnesses load fixtures relative to it).
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
TARGETS=${FUZZ_TARGETS:-"safetensors tokenizer_json tokenize jsonl config store_blob store_open template"}
CC=${FUZZ_CC:-clang}
OUT=$BUILD/fuzz
PKGS="openblas sqlite3 libzstd yaml-0.1 jansson libpcre2-8 libutf8proc libxxhash zlib"

command -v "$CC" >/dev/null 2>&1 || { echo "fuzz: $CC not found (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
# The Makefile's flags, minus -Werror (clang warns about things gcc does not).
CFLAGS="-std=c11 -D_GNU_SOURCE -Wall -Wextra -fopenmp $(for d in common/*/; do printf -- "-I%s " "${d%/}"; done) -g -O1 $SAN $(pkg-config --cflags $PKGS)"
LIBS="$(pkg-config --libs $PKGS) -lm"

# max_len per harness: enough for a real input of that kind, small enough to
# keep executions fast.
max_len() {
    case $1 in
        safetensors) echo 16384 ;; tokenizer_json) echo 65536 ;; tokenize) echo 4096 ;;
        jsonl) echo 16384 ;; config) echo 8192 ;; store_blob) echo 65536 ;;
        store_open) echo 65536 ;; template) echo 8192 ;; *) echo 4096 ;;
    esac
}
dict() {
    case $1 in
        safetensors|tokenizer_json|jsonl) echo tests/fuzz/dict/json.dict ;;
        config) echo tests/fuzz/dict/yaml.dict ;; template) echo tests/fuzz/dict/jinja.dict ;; *) echo "" ;;
    esac
}

# ---- build: the library once (objects newer than their sources are kept).
mkdir -p "$OUT/obj"
objs=""
for src in common/*/*.c; do
    o="$OUT/obj/$(basename "$src" .c).o"
    if [ ! -f "$o" ] || [ "$src" -nt "$o" ] || [ -n "$(find common schemas -newer "$o" \( -name '*.h' -o -name '*.yaml' -o -name '*.sql' \) 2>/dev/null | head -n 1)" ]; then
        if ! $CC $CFLAGS -fsanitize=fuzzer-no-link -c "$src" -o "$o" 2>"$o.log"; then
            echo "fuzz: $src does not compile with $CC (skipped; see $o.log):" >&2
            head -n 5 "$o.log" >&2
            rm -f "$o"
            continue
        fi
    fi
    objs="$objs $o"
done
rm -f "$OUT/libdpoc-fuzz.a"
ar rcs "$OUT/libdpoc-fuzz.a" $objs || exit 1

failed=""
built=""
for t in $TARGETS; do
    bin="$OUT/fuzz_$t"
    if ! $CC $CFLAGS -fsanitize=fuzzer -DDPOC_LIBFUZZER -Itests/fuzz "tests/fuzz/fuzz_$t.c" \
            "$OUT/libdpoc-fuzz.a" $LIBS -o "$bin" 2>"$bin.log"; then
        echo "fuzz: fuzz_$t does not build (see $bin.log):" >&2
        head -n 10 "$bin.log" >&2
        failed="$failed $t(build)"
        continue
    fi
    built="$built $t"
done
[ "$FUZZ_SECONDS" = 0 ] && { [ -z "$failed" ] || { echo "fuzz: failed:$failed" >&2; exit 1; }; echo "fuzz: built$built"; exit 0; }

# ---- run
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export OMP_WAIT_POLICY=passive OMP_NUM_THREADS=1
# The harnesses' scratch files: one directory for the run, removed at the end
# (a crashing or killed input leaves its own behind).
base=/tmp; [ -w /dev/shm ] && base=/dev/shm
DPOC_FUZZ_TMP=$(mktemp -d "$base/dpoc-fuzz-run.XXXXXX") || exit 1
export DPOC_FUZZ_TMP
trap 'rm -rf "$DPOC_FUZZ_TMP"' EXIT
trap 'exit 130' INT TERM
keep=""
[ "${FUZZ_KEEP_GOING:-0}" = 1 ] && keep="-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1"
for t in $built; do
    bin="$OUT/fuzz_$t"
    work="$OUT/corpus/$t" art="$OUT/artifacts/$t/"
    mkdir -p "$work" "$art" "tests/fuzz/corpus/$t"
    log="$OUT/fuzz_$t.run.log"
    d=$(dict "$t")
    regs=""; [ -d "tests/fuzz/regressions/$t" ] && regs="tests/fuzz/regressions/$t"
    rm -f "$art"crash-* "$art"leak-* "$art"timeout-* "$art"oom-* "$art"slow-unit-*
    start=$(date +%s)
    "$bin" -max_total_time="$FUZZ_SECONDS" -max_len="$(max_len "$t")" -timeout=10 \
        -rss_limit_mb=2048 -artifact_prefix="$art" -print_final_stats=1 $keep \
        ${d:+-dict="$d"} "$work" "tests/fuzz/corpus/$t" $regs \
        >"$log" 2>&1
    rc=$?
    secs=$(( $(date +%s) - start ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
    repro=$(ls "$art" 2>/dev/null | head -n 1)
    if [ $rc -ne 0 ] || [ -n "$repro" ]; then
        failed="$failed $t"
        echo "FAIL fuzz_$t (${secs}s, ${execs:-?} runs, ${cov:-no cov}): exit $rc"
        grep -m 1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|fuzz property failed|ALARM' "$log" | sed 's/^/    /'
        [ -n "$repro" ] && echo "    reproducer: $art$repro   (replay: $bin $art$repro)"
        echo "    log: $log"
    else
        echo "ok   fuzz_$t (${secs}s, ${execs:-?} runs, ${cov:-no cov})"
        grep -m 1 'fuzz: note:' "$log" | cut -c1-300 | sed 's/^/    /'
    fi
done
[ -z "$failed" ] || { echo "fuzz: failed:$failed" >&2; exit 1; }
echo "fuzz: all clean"
