#!/bin/sh
# deps.sh check|install — the Debian packages dpoc builds and tests with.
# Build: compilers and the -dev libraries found with pkg-config.
# Test only: python3-torch (numerical oracle), nodejs/npm (tokenizer fixtures),
# python3-jinja2 (chat-template oracle).
set -u
PKGS="gcc make pkg-config libopenblas-dev libsqlite3-dev libzstd-dev libyaml-dev libjansson-dev
libpcre2-dev libutf8proc-dev libxxhash-dev zlib1g-dev python3 python3-torch python3-numpy
nodejs npm sqlite3 zstd gnuplot-nox clang libclang-rt-14-dev libomp-14-dev python3-jinja2"
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
