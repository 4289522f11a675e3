# lib.sh — sourced by tests/e2e_*.sh. Provides check helpers and the summary
# line. DPOC is the binary under test; TMP a fresh scratch directory.
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
