#!/bin/sh
# deps.sh check|install [runtime|test] — the Debian packages dpoc needs.
#   runtime (default): building dpoc and running every stage, make demo included,
#                      under mpirun too (Open MPI)
#                      (compilers, the -dev libraries found with pkg-config,
#                      gnuplot for dpoc report);
#   test:              runtime plus what only make test, make bench and make
#                      fuzz use (the PyTorch oracle, Node.js for the tokenizer
#                      fixtures, the sqlite3/zstd command lines, clang for
#                      libFuzzer, python3-jinja2 for the chat-template oracle).
# One package per word; add a package to the set that first needs it.
set -u
RUNTIME_PKGS="
gcc make pkg-config
libopenblas-dev libsqlite3-dev libzstd-dev libyaml-dev libjansson-dev
libpcre2-dev libutf8proc-dev libxxhash-dev zlib1g-dev
libopenmpi-dev openmpi-bin
gnuplot-nox
"
TEST_PKGS="
python3 python3-torch python3-numpy python3-jinja2
nodejs npm
sqlite3 zstd
clang libclang-rt-14-dev libomp-14-dev
"
case "${2:-runtime}" in
    runtime) PKGS=$RUNTIME_PKGS ;;
    test) PKGS="$RUNTIME_PKGS $TEST_PKGS" ;;
    *) echo "usage: deps.sh check|install [runtime|test]" >&2; exit 2 ;;
esac
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# node/npm may come from elsewhere than Debian; accept them if on PATH.
case "$missing" in *nodejs*|*npm*)
    if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
        missing=$(echo "$missing" | tr ' ' '\n' | grep -vx -e nodejs -e npm | tr '\n' ' ')
    fi;;
esac
missing=$(echo $missing)
[ -z "$missing" ] && exit 0
if [ "${1:-check}" = check ]; then echo "missing packages: $missing"; exit 1; fi
if [ "$(id -u)" = 0 ]; then SUDO=""
elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"
else echo "dpoc needs these packages; run as root: apt-get install -y $missing" >&2; exit 1
fi
echo "installing: $missing"
$SUDO apt-get update -qq >/dev/null && \
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null || {
    echo "apt-get install failed; run: $SUDO apt-get install -y $missing" >&2; exit 1; }
