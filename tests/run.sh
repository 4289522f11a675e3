#!/bin/sh
# run.sh — runs every test: the C unit tests (build/tests/test_*) and the
# shell end-to-end tests (tests/e2e_*.sh). Each prints "N passed, N failed";
# this sums them and fails if any test failed or any suite crashed.
# Env: BUILD (build dir), PYTHON (python with torch), SANITIZE.
set -u
BUILD=${BUILD:-build}
export BUILD PYTHON="${PYTHON:-/usr/bin/python3}" DPOC="$BUILD/dpoc"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export OMP_WAIT_POLICY=passive
pass=0 fail=0 broken=""
mkdir -p "$BUILD/logs"
for t in "$BUILD"/tests/test_* tests/e2e_*.sh; do
    [ -e "$t" ] || continue
    case "$t" in *.d) continue;; esac
    name=$(basename "$t")
    log="$BUILD/logs/$name.log"
    start=$(date +%s)
    case "$t" in
        *.sh) sh "$t" >"$log" 2>&1 ;;
        *) "$t" >"$log" 2>&1 ;;
    esac
    rc=$?
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    p=$(echo "$line" | sed -n 's/^\([0-9]*\) passed.*/\1/p'); p=${p:-0}
    f=$(echo "$line" | sed -n 's/.* \([0-9]*\) failed.*/\1/p'); f=${f:-0}
    pass=$((pass + p)); fail=$((fail + f))
    if [ $rc -ne 0 ] && [ "$f" = 0 ]; then fail=$((fail + 1)); fi
    secs=$(( $(date +%s) - start ))
    if [ $rc -ne 0 ] || [ -z "$line" ]; then
        broken="$broken $name"
        echo "FAIL $name (${secs}s): ${line:-no summary line}, exit $rc — log follows"
        tail -n 40 "$log" | sed 's/^/    /'
    else
        echo "ok   $name (${secs}s): $line"
    fi
done
echo
[ -n "$broken" ] && echo "failing suites:$broken"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ] && [ -z "$broken" ]
