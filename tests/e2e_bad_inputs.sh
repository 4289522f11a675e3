#!/bin/sh
# e2e_bad_inputs.sh — the bad-input catalogue: the real binary on malformed
# inputs of every kind a user may hand it (pipeline.yaml and --set,
# tokenizer.json, model directories and safetensors, stores, datasets). Each
# case must end with exit status 1 and exactly the expected one-line error
# as the last line of stderr, printed once, and no crash (under SANITIZE=1
# the binary runs with ASan and UBSan, whose reports would replace the last
# line). Inputs are made here: small edits of valid files (the tiny model's
# config and tokenizer, a safetensors file `dpoc model init` writes, a store
# written from schemas/store.sql with Python's sqlite3 and the zstd tool).
# Runs in $TMP so messages name short relative paths.
. tests/lib.sh
PYTHON=${PYTHON:-/usr/bin/python3}
ROOT=$(pwd)
case "$DPOC" in /*) ;; *) DPOC="$ROOT/$DPOC" ;; esac

if ! "$PYTHON" -c 'import sqlite3, json, struct' 2>/dev/null || ! command -v zstd >/dev/null 2>&1; then
    bad "oracle tools missing: $PYTHON with sqlite3, and the zstd tool, are required"
    summary
    exit 1
fi
cd "$TMP" || exit 1

# bad_input NAME MESSAGE CMD...: exit status 1, MESSAGE as the last stderr
# line, and that line printed only once.
bad_input() {
    name=$1 msg=$2
    expect_fail "$@"
    if [ "$rc" -ne 1 ]; then bad "$name: exit $rc, expected 1"; fi
    n=$(grep -cxF -- "$msg" "$TMP/err")
    if [ "$n" -gt 1 ]; then bad "$name: the message is printed $n times"; fi
}

# ------------------------------------------------------------ inputs
# Every input that takes more than printf is made by one Python script, in
# two steps: "base" writes a small GPT-2 model directory of our own, tiny/
# (config.json, a byte-level tokenizer.json, tokenizer_config.json; fixed
# here so that sizes and positions in the messages do not move when the
# example model changes), YAML and JSON bombs, edited tokenizers, and stores
# (one valid store from schemas/store.sql, blobs being shuffled planes in a
# zstd frame with content size and checksum, then a copy per defect); after
# `dpoc model init tiny` has written random weights, "checkpoints" writes
# edited copies of tiny/ (safetensors and config.json defects).
cat >make_inputs.py <<'EOF'
import copy, json, os, shutil, sqlite3, struct, subprocess, sys

ROOT = sys.argv[1]

def write(path, data):
    if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)

if sys.argv[2] == "checkpoints":
    # Checkpoints: tiny/model.safetensors, rewritten.
    d = open("tiny/model.safetensors", "rb").read()
    n = struct.unpack("<Q", d[:8])[0]
    hdr = json.loads(d[8:8 + n])
    data = d[8 + n:]
    tensors = {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]])
               for k, v in hdr.items() if k != "__metadata__"}
    def checkpoint(dirname, blob=None, ts=None):
        os.makedirs(dirname)
        for f in ("config.json", "tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join("tiny", f), dirname)
        if ts is not None:
            h, body = {}, b""
            for k, (dt, shape, r) in ts.items():
                h[k] = {"dtype": dt, "shape": shape, "data_offsets": [len(body), len(body) + len(r)]}
                body += r
            hb = json.dumps(h).encode()
            hb += b" " * (-len(hb) % 8)
            blob = struct.pack("<Q", len(hb)) + hb + body
        write(os.path.join(dirname, "model.safetensors"), blob)
    def shrink(name):
        ts = dict(tensors)
        dt, shape, r = ts[name]
        ts[name] = (dt, [shape[0] - 1] + shape[1:], r[:len(r) - len(r) // shape[0]])
        return ts
    checkpoint("st_truncated", d[:50000])
    checkpoint("st_header_past_end", struct.pack("<Q", 2 * len(d)) + d[8:])
    checkpoint("st_three_bytes", b"abc")
    checkpoint("st_empty", b"")
    checkpoint("st_not_json", struct.pack("<Q", 8) + b"{not js}")
    checkpoint("st_bad_utf8", d[:8] + b"\xff" + d[9:])
    hb = json.dumps({k: v for k, v in hdr.items() if k != "transformer.wte.weight"}).encode()
    checkpoint("st_trailing", struct.pack("<Q", len(hb)) + hb + data)
    checkpoint("st_missing_tensor", ts={k: v for k, v in tensors.items() if k != "transformer.wte.weight"})
    checkpoint("st_wrong_shape", ts=shrink("transformer.wte.weight"))
    checkpoint("st_wrong_shape_1d", ts=shrink("transformer.h.0.ln_1.weight"))
    ts = dict(tensors)
    dt, shape, r = ts["transformer.wte.weight"]
    ts["transformer.wte.weight"] = ("I32", shape, r)
    checkpoint("st_i32", ts=ts)
    ts = dict(tensors)
    ts["extra\nname\x1b[2J"] = ("Q4", [2], b"\0\0")
    checkpoint("st_control_name", ts=ts)
    write("st_missing_shard/config.json", open("tiny/config.json").read())
    write("st_missing_shard/model.safetensors.index.json",
          '{"weight_map": {"transformer.wte.weight": "nope.safetensors"}}')
    config = open("tiny/config.json").read()
    def model_config(dirname, old, new):
        assert old in config, old
        checkpoint(dirname, blob=d)
        write(os.path.join(dirname, "config.json"), config.replace(old, new))
    model_config("cfg_truncated", config, '{"model_type": "gpt2", "n_layer": ')
    model_config("cfg_type", '"n_layer": 1', '"n_layer": "two"')
    model_config("cfg_family", '"gpt2"', '"bert"')
    model_config("cfg_heads", '"n_head": 2', '"n_head": 3')
    model_config("cfg_zero_layers", '"n_layer": 1', '"n_layer": 0')
    model_config("cfg_negative_vocab", '"vocab_size": 257', '"vocab_size": -1')
    sys.exit(0)

# YAML and JSON bombs.
s = 'a: &a ["lol", "lol"]\n'
for i in range(1, 10):
    p, c = chr(96 + i), chr(97 + i)
    s += "%s: &%s [*%s, *%s, *%s, *%s]\n" % (c, c, p, p, p, p)
write("alias_bomb.yaml", s)
write("deep_flow.yaml", "train: " + "[" * 100000 + "]" * 100000 + "\n")
write("deep_block.yaml", "".join(" " * i + "k%d:\n" % i for i in range(200)))
write("deep.json", "[" * 100000 + "]" * 100000)
write("deep.jsonl", '{"prompt": ' + "[" * 10000 + "]" * 10000 + ', "chosen": "b", "rejected": "c"}\n')

# The model directory: GPT-2 shaped, 257 tokens (the 256 bytes and
# <|endoftext|>), byte-level BPE without merges.
bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
cs = bs[:] + [256 + k for k in range(256 - len(bs))]
bs += [b for b in range(256) if b not in bs]
vocab = {chr(c): b for b, c in zip(bs, cs)}
byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
              "use_regex": True}
tiny = {"version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": 256, "content": "<|endoftext|>", "single_word": False,
                          "lstrip": False, "rstrip": False, "normalized": False,
                          "special": True}],
        "normalizer": None, "pre_tokenizer": byte_level, "post_processor": byte_level,
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": "", "end_of_word_suffix": "", "fuse_unk": False,
                  "byte_fallback": False, "vocab": dict(sorted(vocab.items(), key=lambda kv: kv[1])),
                  "merges": []}}
raw = json.dumps(tiny, indent=1, ensure_ascii=False).encode()
config = json.dumps({"model_type": "gpt2", "vocab_size": 257, "n_positions": 64, "n_embd": 32,
                     "n_layer": 1, "n_head": 2, "n_inner": None,
                     "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
                     "bos_token_id": 256, "eos_token_id": 256, "tie_word_embeddings": True},
                    indent=1)
if sys.argv[2] == "base":
    write("tiny/tokenizer.json", raw)
    write("tiny/config.json", config)
    write("tiny/tokenizer_config.json", json.dumps({
        "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "add_bos_token": False}))

# Tokenizers: the tiny one, edited.
write("truncated.json", raw[:2000])
i = raw.index(b'"model"')
write("bad_utf8.json", raw[:i] + b'"x\xff": 1, ' + raw[i:])
def tok(name, path, value):
    t = copy.deepcopy(tiny)
    obj = t
    for k in path[:-1]:
        obj = obj[k]
    obj[path[-1]] = value
    write(name + ".json", json.dumps(t))
tok("vocab_string", ["model", "vocab"], "abc")
tok("wordpiece", ["model", "type"], "WordPiece")
tok("merge_unknown_part", ["model", "merges"], ["zz qq"])
tok("merge_unknown_result", ["model", "merges"], ["h e"])
tok("merge_three", ["model", "merges"], ["h e x"])
tok("merge_number", ["model", "merges"], [5])
tok("added_content_number", ["added_tokens", 0, "content"], 5)
tok("pre_tokenizer_type", ["pre_tokenizer"], {"type": "Nope"})
tok("bad_regex", ["pre_tokenizer"], {"type": "Split", "pattern": {"Regex": "(["},
                                     "behavior": "Isolated", "invert": False})
tok("added_id_range", ["added_tokens", 0, "id"], 1 << 24)
tok("added_id_negative", ["added_tokens", 0, "id"], -1)
tok("post_id_range", ["post_processor"], {
    "type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}},
                                             {"Sequence": {"id": "A", "type_id": 0}}],
    "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [300], "tokens": ["<|endoftext|>"]}}})
tok("post_cls_range", ["post_processor"], {"type": "RobertaProcessing", "cls": ["<s>", 257],
                                           "sep": ["</s>", 256]})
tok("merge_control", ["model", "merges"], ["h\x1b[31m e"])
tok("vocab_bad_id", ["model", "vocab", "a\nb"], 2.5)

# Stores.
def blob(fmt, vals):
    r = struct.pack("<%d%s" % (len(vals), fmt), *vals)
    write("blob.raw", b"".join(r[p::4] for p in range(4)))
    return subprocess.run(["zstd", "-q", "-c", "--check", "blob.raw"], check=True,
                          stdout=subprocess.PIPE).stdout
c = sqlite3.connect("good.sqlite")
c.executescript(open(os.path.join(ROOT, "schemas/store.sql")).read())
c.execute("INSERT INTO refs VALUES ('fp1', '{\"model\":\"tiny\"}')")
c.execute("INSERT INTO examples VALUES ('ex1', 'train', 'data.jsonl', 1, 0)")
c.execute("INSERT INTO ref_rows VALUES ('ex1', 'fp1', 2, 3, 2, -1.5, -2.5, ?, ?, ?, ?, ?)",
          (blob("i", [10, 11]), blob("i", [1, 2, 256]), blob("i", [3, 256]),
           blob("f", [-0.5, -0.5, -0.5]), blob("f", [-1.25, -1.25])))
c.commit()
c.execute("PRAGMA application_id = %d" % int.from_bytes(b"dpoc", "big"))
c.execute("PRAGMA user_version = 1")
c.commit()
c.close()
def store(name, *sql):
    shutil.copy("good.sqlite", name)
    c = sqlite3.connect(name)
    for q in sql:
        if isinstance(q, tuple):
            c.execute(*q)
        else:
            c.execute(q)
    c.commit()
    c.close()
store("newer.sqlite", "PRAGMA user_version = 2")
store("foreign.sqlite", "PRAGMA application_id = 0")
write("cut.sqlite", open("good.sqlite", "rb").read()[:5000])
b = bytearray(blob("i", [1, 2, 256]))
b[len(b) // 2] ^= 0xFF
store("corrupt.sqlite", ("UPDATE ref_rows SET chosen_ids = ?", (bytes(b),)))
store("count.sqlite", "UPDATE ref_rows SET n_chosen = 4")
store("not_zstd.sqlite", ("UPDATE ref_rows SET rejected_token_logps = ?", (b"not zstd at all",)))
store("huge_count.sqlite", "PRAGMA ignore_check_constraints = 1",
      "UPDATE ref_rows SET n_chosen = 2000000000")
store("negative_count.sqlite", "PRAGMA ignore_check_constraints = 1",
      "UPDATE ref_rows SET n_prompt = -5")
store("text_blob.sqlite", "UPDATE ref_rows SET chosen_ids = 'text'")
store("nan_logp.sqlite", ("UPDATE ref_rows SET chosen_token_logps = ?",
                          (blob("f", [-0.5, float("nan"), -0.5]),)))
store("inf_sum.sqlite", ("UPDATE ref_rows SET ref_chosen_logp = ?", (float("inf"),)))
store("negative_id.sqlite", ("UPDATE ref_rows SET chosen_ids = ?", (blob("i", [1, -7, 256]),)))
store("bad_id.sqlite", "UPDATE examples SET id = 'ex1; drop'",
      "UPDATE ref_rows SET example_id = 'ex1; drop'")
store("no_table.sqlite", "DROP TABLE ref_rows")
# Altered by hand: SQL that would run forever in place of a table, objects
# of one's own (refused by name before any table is read).
ENDLESS = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) "
store("view_examples.sqlite", "DROP TABLE examples", "CREATE VIEW examples AS " + ENDLESS +
      "SELECT printf('ex%d', n) AS id, 'train' AS split, 'x' AS source, 1 AS line, n AS ord FROM c")
store("view_refs.sqlite", "DROP TABLE refs", "CREATE VIEW refs AS " + ENDLESS +
      "SELECT printf('fp%d', n) AS fingerprint, '{}' AS description FROM c")
store("view_ref_rows.sqlite", "DROP TABLE ref_rows", "CREATE VIEW ref_rows AS " + ENDLESS +
      "SELECT 'ex1' AS example_id, printf('fp%d', n) AS fingerprint FROM c")
store("trigger.sqlite", "CREATE TRIGGER spy AFTER INSERT ON examples BEGIN SELECT 1; END")
store("extra_view.sqlite", "CREATE VIEW endless AS " + ENDLESS + "SELECT n FROM c")
store("extra_column.sqlite", "ALTER TABLE ref_rows ADD COLUMN note TEXT")
store("merge_out.sqlite")
os.remove("blob.raw")
EOF
if ! "$PYTHON" make_inputs.py "$ROOT" base 2>"$TMP/make.err"; then
    bad "making the inputs failed: $(tail -n 1 "$TMP/make.err")"
fi
if ! "$DPOC" model init tiny --seed 1 >/dev/null 2>"$TMP/init.err"; then
    bad "dpoc model init tiny --seed 1 failed: $(tail -n 1 "$TMP/init.err")"
fi
if ! "$PYTHON" make_inputs.py "$ROOT" checkpoints 2>"$TMP/make.err"; then
    bad "making the checkpoints failed: $(tail -n 1 "$TMP/make.err")"
fi

# ------------------------------------------------------------ pipeline.yaml
# cfg NAME MESSAGE YAML: `dpoc config -c NAME.yaml` on the YAML text.
cfg() {
    printf '%b' "$3" >"$1.yaml"
    bad_input "config $1" "$2" "$DPOC" config -c "$1.yaml"
}
cfg truncated "truncated.yaml:4:1: invalid YAML: did not find expected ',' or ']'" \
    'data:\n  max_length: 12\n  train: [a.jsonl, b'
cfg string_for_int 'string_for_int.yaml:2:15: data.max_length: expected an integer in [2, 1048576], got "long"' \
    'data:\n  max_length: "long"\n'
cfg list_for_number 'list_for_number.yaml:2:9: train.beta: expected a number > 0, got a list' \
    'train:\n  beta: [1, 2]\n'
cfg negative_size 'negative_size.yaml:2:15: train.batch_size: expected an integer in [1, 1000000], got -3' \
    'train:\n  batch_size: -3\n'
cfg int_overflow 'int_overflow.yaml:2:14: train.max_steps: expected an integer in [0, 1000000000], got "1e400"' \
    'train:\n  max_steps: 1e400\n'
cfg hex_overflow 'hex_overflow.yaml:2:9: train.seed: expected an integer in [0, 4294967295], got "0x7fffffffffffffffff"' \
    'train:\n  seed: 0x7fffffffffffffffff\n'
cfg nan 'nan.yaml:2:9: train.beta: expected a number > 0, got ".nan"' 'train:\n  beta: .nan\n'
cfg value_for_section 'value_for_section.yaml:1:8: train: expected a section (a mapping), got "5"' \
    'train: 5\n'
cfg unknown_key 'unknown_key.yaml:2:3: train.bta: unknown key; did you mean train.beta?' \
    'train:\n  bta: 0.1\n'
cfg alias 'alias.yaml:2:4: YAML aliases are not supported (use plain values)' 'a: &x [1, 2]\nb: *x\n'
bad_input "config alias bomb" 'alias_bomb.yaml:2:8: YAML aliases are not supported (use plain values)' \
    "$DPOC" config -c alias_bomb.yaml
bad_input "config deep flow nesting" 'deep_flow.yaml:1:39: nesting deeper than 32 levels' \
    "$DPOC" config -c deep_flow.yaml
bad_input "config deep block nesting" 'deep_block.yaml:33:33: nesting deeper than 32 levels' \
    "$DPOC" config -c deep_block.yaml
cfg nul_byte 'nul_byte.yaml: contains a NUL byte; expected YAML text' 'train:\n  output: runs\0/x\n'
cfg top_level_list 'top_level_list.yaml:1:1: expected a mapping of sections (store, reference, data, ...)' \
    '- a\n- b\n'
cfg tab_indent 'tab_indent.yaml:2:1: invalid YAML: found character that cannot start any token' \
    'train:\n\tbeta: 0.1\n'
cfg two_documents 'two_documents.yaml:2:1: expected one YAML document, found a second' \
    'store: a\n---\nstore: b\n'
cfg empty_sweep 'empty_sweep.yaml:2:15: sweep.train.beta: expected a non-empty list of values' \
    'sweep:\n  train.beta: []\n'
cfg bad_sweep_value 'bad_sweep_value.yaml:2:16: train.beta: expected a number > 0, got "fast"' \
    'sweep:\n  train.beta: [fast]\n'
# Invalid UTF-8 is found by libyaml's reader, which gives only an offset.
cfg bad_utf8 'bad_utf8.yaml:3:13: invalid YAML: invalid UTF-8 (byte 0xff)' \
    'train:\n  beta: 0.1\n  output: "r\0377"\n'
cfg cut_utf8 'cut_utf8.yaml:1:9: invalid YAML: invalid UTF-8 (byte 0xe2)' 'store: "\0342\0202"\n'
cfg control_char 'control_char.yaml:2:9: invalid YAML: control characters are not allowed (U+0007)' \
    'train:\n  beta: \007\n'
# Text from the file is quoted and escaped: a message stays one line.
cfg escaped_value 'escaped_value.yaml:2:9: train.beta: expected a number > 0, got "x\ny\x1b[2J"' \
    'train:\n  beta: "x\\ny\\e[2J"\n'
cfg escaped_key 'escaped_key.yaml:2:3: "train.be\nta": unknown key; did you mean train.beta?' \
    'train:\n  "be\\nta": 0.1\n'
bad_input "config missing file" 'missing.yaml: cannot open: No such file or directory' \
    "$DPOC" config -c missing.yaml
mkdir dir.yaml
bad_input "config directory" 'dir.yaml: not a regular file' "$DPOC" config -c dir.yaml
printf 'store: s.sqlite\n' >ok.yaml
bad_input "--set without =" '--set #1: expected key=value, got "train.beta"' \
    "$DPOC" config -c ok.yaml --set train.beta
bad_input "--set unknown key" '--set #1: train.bta: unknown key; did you mean train.beta?' \
    "$DPOC" config -c ok.yaml --set train.bta=1
bad_input "--set bad enum" \
    '--set #1: data.format: expected one of auto, standard, implicit, conversational, got "weird"' \
    "$DPOC" config -c ok.yaml --set data.format=weird
# Each --set error names which --set (1-based) is at fault.
bad_input "--set second of three" '--set #2: train.beta: expected a number > 0, got "abc"' \
    "$DPOC" config -c ok.yaml --set train.beta=0.2 --set train.beta=abc --set train.seed=1
bad_input "--set=form counts too" '--set #2: train.seed: expected an integer in [0, 4294967295], got -1' \
    "$DPOC" config -c ok.yaml --set train.beta=0.2 --set=train.seed=-1
bad_input "--set invalid YAML" "--set #1: train.loss: invalid YAML: did not find expected ',' or ']'" \
    "$DPOC" config -c ok.yaml --set 'train.loss=[sigmoid'
bad_input "--set control bytes" \
    '--set #1: data.format: invalid YAML: control characters are not allowed (U+001B)' \
    "$DPOC" config -c ok.yaml --set "data.format=a$(printf '\033')[31m"
bad_input "--set escaped control bytes" \
    '--set #1: data.format: expected one of auto, standard, implicit, conversational, got "a\x1b[31m"' \
    "$DPOC" config -c ok.yaml --set 'data.format="a\e[31m"'
expect_fail "unknown option, quoted" 'dpoc config: unknown option "--b\nogus" (dpoc config --help lists them)' \
    "$DPOC" config -c ok.yaml "$(printf -- '--b\nogus')"
if [ "$rc" -ne 2 ]; then bad "unknown option: exit $rc, expected 2"; fi
bad_input "--set newline in key" '--set #1: "train.b\neta": unknown key; did you mean train.beta?' \
    "$DPOC" config -c ok.yaml --set "$(printf 'train.b\neta=1')"

# ------------------------------------------------------------ tokenizer.json
# tok NAME MESSAGE [PATH]: `dpoc tokenize --tokenizer PATH` (default NAME.json).
tok() {
    echo '"hello"' >hello.jsonl
    bad_input "tokenizer $1" "$2" sh -c '"$1" tokenize --tokenizer "$2" <hello.jsonl' sh \
        "$DPOC" "${3:-$1.json}"
}
tok truncated "truncated.json:140:12: expected a string key"
echo 'this is not json' >not_json.json
tok not_json 'not_json.json:1:1: invalid JSON value'
echo '[1, 2, 3]' >array.json
tok array 'array.json: expected a JSON object (a tokenizer.json)'
echo '{}' >no_model.json
tok no_model 'no_model.json: model: expected an object, got nothing'
tok vocab_string 'vocab_string.json: model.vocab: expected an object, got a string'
tok wordpiece 'wordpiece.json: model.type: expected "BPE", got "WordPiece"'
tok merge_unknown_part 'merge_unknown_part.json: model.merges[0]: merge token "zz" is not in the vocabulary'
tok merge_unknown_result 'merge_unknown_result.json: model.merges[0]: merged token "he" is not in the vocabulary'
tok merge_three 'merge_three.json: model.merges[0]: expected "a b" or ["a", "b"], got "h e x"'
tok merge_number 'merge_number.json: model.merges[0]: expected "a b" or ["a", "b"], got 5'
tok merge_control 'merge_control.json: model.merges[0]: merge token "h\x1b[31m" is not in the vocabulary'
tok vocab_bad_id 'vocab_bad_id.json: model.vocab."a\nb": expected a token id (an integer in [0, 2^24)), got 2.5'
tok added_id_range 'added_id_range.json: added_tokens[0].id: expected a token id (an integer in [0, 2^24)), got 16777216'
tok added_id_negative 'added_id_negative.json: added_tokens[0].id: expected a token id (an integer in [0, 2^24)), got -1'
tok post_id_range 'post_id_range.json: post_processor.special_tokens."<|endoftext|>".ids[0]: token id 300 is outside the vocabulary (257 tokens)'
tok post_cls_range 'post_cls_range.json: post_processor.cls[1]: token id 257 is outside the vocabulary (257 tokens)'
tok added_content_number 'added_content_number.json: added_tokens[0].content: expected a string, got a number'
tok pre_tokenizer_type 'pre_tokenizer_type.json: pre_tokenizer: unsupported pre-tokenizer type "Nope"'
tok bad_regex 'bad_regex.json: pre_tokenizer.pattern: invalid pattern at offset 2: missing terminating ] for character class'
tok deep 'deep.json:1:258: nesting too deep'
tok bad_utf8 'bad_utf8.json:35:4: invalid UTF-8 in string'
tok missing 'missing.json: cannot open: No such file or directory'
mkdir empty_dir
tok empty_dir 'empty_dir/tokenizer.json: cannot open: No such file or directory' empty_dir
mkdir bad_config
cp tiny/tokenizer.json bad_config/
echo '{"add_bos_token": tru' >bad_config/tokenizer_config.json
tok bad_config "bad_config/tokenizer_config.json:1:21: invalid token near 'tru'" bad_config
# tok_config NAME JSON MESSAGE: tiny's tokenizer.json with JSON as its tokenizer_config.json.
tok_config() {
    mkdir "$1"
    cp tiny/tokenizer.json "$1/"
    echo "$2" >"$1/tokenizer_config.json"
    tok "$1" "$3" "$1"
}
tok_config config_array '[1, 2]' 'config_array/tokenizer_config.json: expected a JSON object, got an array'
tok_config config_flag '{"add_bos_token": "yes"}' \
    'config_flag/tokenizer_config.json: add_bos_token: expected true or false, got a string'
tok_config config_bos '{"bos_token": 5}' \
    'config_bos/tokenizer_config.json: bos_token: expected a token (a string or {"content": ...}), got a number'

# ------------------------------------------------------------ model directories, safetensors
model_info() { bad_input "model $1" "$2" "$DPOC" model info "$1"; }
model_info st_truncated 'st_truncated/model.safetensors: truncated: header and tensor data need 8 + 1472 + 92160 = 93640 bytes, file has 50000'
model_info st_header_past_end 'st_header_past_end/model.safetensors: header length 187280 runs past the end of the file (8 + 187280 > 93640 bytes)'
model_info st_three_bytes 'st_three_bytes/model.safetensors: file is 3 bytes, shorter than the 8-byte header length'
model_info st_empty 'st_empty/model.safetensors: empty file, expected an 8-byte header length'
model_info st_not_json "st_not_json/model.safetensors: header is not valid JSON: line 1 column 4: string or '}' expected near 'not'"
model_info st_bad_utf8 'st_bad_utf8/model.safetensors: header is not valid UTF-8 (byte 0xff at header offset 0)'
model_info st_trailing 'st_trailing/model.safetensors: 32896 trailing bytes after the tensor data (8 + 1510 + 59264 = 60782 bytes expected, file has 93678)'
model_info st_missing_tensor 'st_missing_tensor: tensor transformer.wte.weight: missing from the checkpoint'
model_info st_wrong_shape 'st_wrong_shape: tensor transformer.wte.weight: expected shape [257, 32] from config.json, found [256, 32]'
model_info st_wrong_shape_1d 'st_wrong_shape_1d: tensor transformer.h.0.ln_1.weight: expected shape [32] from config.json, found [31]'
model_info st_i32 'st_i32/model.safetensors: tensor "transformer.wte.weight": dtype I32 cannot be converted to F32 (expected F32, F16, BF16 or F64)'
model_info st_control_name 'st_control_name/model.safetensors: tensor "extra\nname\x1b[2J": unknown dtype "Q4"'
model_info st_missing_shard 'st_missing_shard/model.safetensors.index.json: weight_map names "nope.safetensors", which does not exist'
model_info cfg_truncated 'cfg_truncated/config.json:1:34: invalid JSON: unexpected token near end of file'
model_info cfg_type 'cfg_type/config.json: n_layer: expected an integer, got a non-integer'
model_info cfg_family 'cfg_family/config.json: model_type "bert" is not supported (gpt2, llama, mistral, qwen2, qwen3 are)'
model_info cfg_heads 'cfg_heads/config.json: n_embd 32 is not a multiple of n_head 3'
model_info cfg_zero_layers 'cfg_zero_layers/config.json: n_layer: expected a positive integer, got 0'
model_info cfg_negative_vocab 'cfg_negative_vocab/config.json: vocab_size: expected a positive integer, got -1'
mkdir no_config
model_info no_config 'no_config/config.json: cannot open: No such file or directory'
mkdir init_bert
echo '{"model_type": "bert"}' >init_bert/config.json
bad_input "model init unsupported family" \
    'init_bert/config.json: model_type "bert" is not supported (gpt2, llama, mistral, qwen2, qwen3 are)' \
    "$DPOC" model init init_bert --seed 1
if [ "$(ls init_bert)" != config.json ]; then bad "a failed model init left $(ls init_bert | tr '\n' ' ')"; fi

# ------------------------------------------------------------ stores
if ! "$DPOC" store verify good.sqlite >/dev/null 2>&1; then
    bad "the valid store does not verify: $("$DPOC" store verify good.sqlite 2>&1 | tail -n 1)"
fi
echo 'hello, not a database at all, definitely text' >text.sqlite
bad_input "store text file" 'text.sqlite: not a dpoc store: the file is not an SQLite database' \
    "$DPOC" store info text.sqlite
: >empty.sqlite
bad_input "store empty file" 'empty.sqlite: not a dpoc store: the database is empty' \
    "$DPOC" store info empty.sqlite
bad_input "store newer schema" 'newer.sqlite: schema version 2 is newer than this dpoc understands (1)' \
    "$DPOC" store info newer.sqlite
bad_input "store foreign SQLite" 'foreign.sqlite: not a dpoc store: application_id is 0x0, expected 0x64706f63' \
    "$DPOC" store verify foreign.sqlite
bad_input "store missing" 'nope.sqlite: cannot open the store: No such file or directory' \
    "$DPOC" store info nope.sqlite
[ -e nope.sqlite ] && bad "store info created the missing store"
mkdir dir.sqlite
bad_input "store directory" 'dir.sqlite: cannot open the store: disk I/O error (Is a directory)' \
    "$DPOC" store info dir.sqlite
bad_input "store cut short" 'cut.sqlite: cannot read the store: database disk image is malformed' \
    "$DPOC" store verify cut.sqlite
bad_input "store corrupted blob (verify)" \
    "corrupt.sqlite: example ex1, reference fp1: chosen_ids: corrupt zstd frame: Restored data doesn't match checksum" \
    "$DPOC" store verify corrupt.sqlite
bad_input "store corrupted blob (dump)" \
    "corrupt.sqlite: example ex1, reference fp1: chosen_ids: corrupt zstd frame: Restored data doesn't match checksum" \
    "$DPOC" store dump corrupt.sqlite
bad_input "store count mismatch" \
    'count.sqlite: example ex1, reference fp1: chosen_ids: zstd frame holds 12 bytes, expected 16 from the token count' \
    "$DPOC" store verify count.sqlite
bad_input "store blob not zstd" \
    'not_zstd.sqlite: example ex1, reference fp1: rejected_token_logps: expected a zstd frame, found 15 bytes without the zstd magic number' \
    "$DPOC" store verify not_zstd.sqlite
bad_input "store absurd count" \
    'huge_count.sqlite: example ex1, reference fp1: n_chosen: expected an integer from 1 to 16777216' \
    "$DPOC" store dump huge_count.sqlite
bad_input "store negative count" \
    'negative_count.sqlite: example ex1, reference fp1: n_prompt: expected an integer from 0 to 16777216' \
    "$DPOC" store verify negative_count.sqlite
bad_input "store text for blob" 'text_blob.sqlite: example ex1, reference fp1: chosen_ids: expected a blob' \
    "$DPOC" store verify text_blob.sqlite
bad_input "store NaN log-prob" \
    'nan_logp.sqlite: example ex1, reference fp1: chosen_token_logps[1] is nan, expected a finite log-probability' \
    "$DPOC" store verify nan_logp.sqlite
bad_input "store Inf summed log-prob" \
    'inf_sum.sqlite: example ex1, reference fp1: ref_chosen_logp is inf, expected a finite log-probability' \
    "$DPOC" store dump inf_sum.sqlite
bad_input "store negative token id" \
    'negative_id.sqlite: example ex1, reference fp1: chosen_ids[1] is -7, expected a token id >= 0' \
    "$DPOC" store verify negative_id.sqlite
bad_input "store bad example id" \
    'bad_id.sqlite: example id "ex1; drop": expected only [0-9A-Za-z_.:-], found byte 0x3b' \
    "$DPOC" store dump bad_id.sqlite
bad_input "store missing table" 'no_table.sqlite: table ref_rows is missing; refusing a store that was altered' \
    "$DPOC" store info no_table.sqlite
# `timeout`: a regression would hang, not fail, without it.
ALTERED='refusing a store that was altered'
bad_input "store view in place of examples" "view_examples.sqlite: examples is a view, not the table dpoc writes; $ALTERED" \
    timeout 20 "$DPOC" store verify view_examples.sqlite
bad_input "store view in place of refs" "view_refs.sqlite: refs is a view, not the table dpoc writes; $ALTERED" \
    timeout 20 "$DPOC" store info view_refs.sqlite
bad_input "store view in place of ref_rows" "view_ref_rows.sqlite: ref_rows is a view, not the table dpoc writes; $ALTERED" \
    timeout 20 "$DPOC" store dump view_ref_rows.sqlite
bad_input "store extra trigger" "trigger.sqlite: trigger spy is not part of a dpoc store; $ALTERED" \
    timeout 20 "$DPOC" store verify trigger.sqlite
bad_input "store extra view" "extra_view.sqlite: view endless is not part of a dpoc store; $ALTERED" \
    timeout 20 "$DPOC" store info extra_view.sqlite
bad_input "store extra column" "extra_column.sqlite: table ref_rows: column note is not in the one dpoc writes; $ALTERED" \
    timeout 20 "$DPOC" store dump extra_column.sqlite
bad_input "store merge from an altered store" "view_refs.sqlite: refs is a view, not the table dpoc writes; $ALTERED" \
    timeout 20 "$DPOC" store merge merge_out.sqlite view_refs.sqlite
bad_input "store merge from a non-store" 'text.sqlite: not a dpoc store: the file is not an SQLite database' \
    "$DPOC" store merge merge_out.sqlite text.sqlite
bad_input "store merge from a newer schema" 'newer.sqlite: schema version 2 is newer than this dpoc understands (1)' \
    "$DPOC" store merge merge_out.sqlite newer.sqlite
bad_input "store merge into a new store from a non-store" \
    'text.sqlite: not a dpoc store: the file is not an SQLite database' \
    "$DPOC" store merge merge_new.sqlite text.sqlite
if ls merge_new.sqlite* >/dev/null 2>&1; then bad "a failed merge left $(ls merge_new.sqlite*)"; fi

# ------------------------------------------------------------ datasets (precompute)
cat >p.yaml <<'EOF'
store: cache/store.sqlite
reference:
  model: tiny
data:
  train: d.jsonl
  max_length: 64
  max_prompt_length: 32
EOF
# rows NAME MESSAGE TEXT [FILE]: `dpoc precompute` on a dataset of TEXT.
rows() {
    f=${4:-d.jsonl}
    printf '%b' "$3" >"$f"
    sed "s/d\.jsonl/$f/" p.yaml >"p_$1.yaml"
    rm -rf cache
    bad_input "dataset $1" "$2" "$DPOC" precompute -c "p_$1.yaml"
}
rows bad_json 'd.jsonl:1: invalid JSON: unexpected token near end of file at column 43' \
    '{"prompt": "a", "chosen": "b", "rejected": \n'
rows not_object 'd.jsonl:1: expected a JSON object, got array' '[1,2,3]\n'
rows wrong_type 'd.jsonl:1: field "chosen": expected a string, got number' \
    '{"prompt": "a", "chosen": 5, "rejected": "c"}\n'
# The first row settles the format (auto); a later row is held to it.
rows missing_field_first_row 'd.jsonl:1: field "chosen": missing, expected a string or a list of messages' \
    '{"rejected": "c"}\n'
rows missing_field 'd.jsonl:2: field "prompt": missing, expected a string' \
    '{"prompt": "a", "chosen": "b", "rejected": "c"}\n{}\n'
rows invalid_utf8 "d.jsonl:1: invalid JSON: unable to decode byte 0xff near '\"a' at column 13" \
    '{"prompt": "a\0377", "chosen": "b", "rejected": "c"}\n'
rows identical 'd.jsonl:1: chosen and rejected are identical' \
    '{"prompt": "a", "chosen": "b", "rejected": "b"}\n'
rows duplicate_key "d.jsonl:1: invalid JSON: duplicate object key near '\"prompt\"' at column 24" \
    '{"prompt": "a", "prompt": "x", "chosen": "b", "rejected": "c"}\n'
sed 's/d\.jsonl/deep.jsonl/' p.yaml >p_deep.yaml
rm -rf cache
bad_input "dataset deep nesting" "deep.jsonl:1: invalid JSON: maximum parsing depth reached near '[' at column 2059" \
    "$DPOC" precompute -c p_deep.yaml
rows corrupt_zstd 'd.jsonl.zst: zstd: Data corruption detected' '\0050\0265\0057\0375 garbage' d.jsonl.zst
sed 's/d\.jsonl/missing.jsonl/' p.yaml >p_missing.yaml
bad_input "dataset missing file" 'missing.jsonl: cannot open: No such file or directory' \
    "$DPOC" precompute -c p_missing.yaml

summary
