#!/usr/bin/env python3
"""make_corpus.py — writes the seed corpora under tests/fuzz/corpus/<harness>/.

Seeds are small, valid (or nearly valid) inputs of each kind, made here from
the formats' rules and the repository's own fixtures, so the fuzzer starts
from the interesting parts of each parser. Run from the repository root;
rewrites the files it owns (names start with "seed_") and leaves the rest.
Only the standard library is used (zstd seeds are made with the `zstd` CLI
when present; gzip with the gzip module)."""
import gzip
import json
import os
import shutil
import struct
import subprocess
import sys

ROOT = "tests/fuzz/corpus"


def put(harness, name, data):
    d = os.path.join(ROOT, harness)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, "seed_" + name), "wb") as f:
        f.write(data)


# ---- safetensors ------------------------------------------------------------
def safetensors(tensors, metadata=None, pad=True):
    """tensors: list of (name, dtype, shape, raw bytes) in data order."""
    header, off, blob = {}, 0, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blob += raw
    if metadata is not None:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blob


def f32(*v):
    return struct.pack("<%df" % len(v), *v)


def st_seeds():
    put("safetensors", "f32.safetensors",
        safetensors([("wte", "F32", [2, 3], f32(1, 2, 3, 4, 5, 6))], {"format": "pt"}))
    put("safetensors", "mixed.safetensors", safetensors([
        ("a.bias", "F16", [3], struct.pack("<3H", 0x3C00, 0xC000, 0x7C00)),
        ("a.weight", "BF16", [2, 2], struct.pack("<4H", 0x3F80, 0x4000, 0x7FC0, 0x0001)),
        ("b", "F64", [2], struct.pack("<2d", 1.5, -1e300)),
        ("c", "I64", [1], struct.pack("<q", -7)),
        ("d", "BOOL", [2], b"\x01\x00"),
        ("e", "U8", [0], b""),
        ("f", "F32", [], f32(3.25)),
    ]))
    put("safetensors", "nan_inf.safetensors",
        safetensors([("x", "F32", [4], f32(float("nan"), float("inf"), -float("inf"), 0.0))]))
    put("safetensors", "unpadded.safetensors",
        safetensors([("x", "F32", [1, 1, 1, 1, 1, 1, 1, 1], f32(1))], pad=False))
    put("safetensors", "empty_header.safetensors", struct.pack("<Q", 2) + b"{}")
    good = safetensors([("x", "F32", [2], f32(1, 2))])
    put("safetensors", "truncated.safetensors", good[:-3])
    put("safetensors", "trailing.safetensors", good + b"\0\0\0\0")
    put("safetensors", "header_past_end.safetensors", struct.pack("<Q", 1 << 40) + b"{}")
    put("safetensors", "index.json", json.dumps({
        "metadata": {"total_size": 14},
        "weight_map": {"a": "s1.safetensors", "b": "s1.safetensors"}}))
    put("safetensors", "index_missing.json", json.dumps({
        "weight_map": {"a": "s1.safetensors", "z": "s2.safetensors"}}))


# ---- tokenizer.json ---------------------------------------------------------
def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def tok_seeds():
    tiny = open("examples/tiny/model/tokenizer.json", encoding="utf-8").read()
    put("tokenizer_json", "tiny.json", tiny)
    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    merges = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a"]
    for m in merges:
        a, b = m.split(" ")
        vocab[a + b] = len(vocab)
    added = [{"id": len(vocab), "content": "<|endoftext|>", "single_word": False,
              "lstrip": False, "rstrip": False, "normalized": False, "special": True}]
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    gpt2 = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
            "normalizer": None, "pre_tokenizer": bl, "post_processor": bl, "decoder": bl,
            "model": {"type": "BPE", "dropout": None, "unk_token": None,
                      "continuing_subword_prefix": "", "end_of_word_suffix": "",
                      "fuse_unk": False, "byte_fallback": False, "vocab": vocab,
                      "merges": merges}}
    put("tokenizer_json", "bytelevel_merges.json", json.dumps(gpt2))
    g2 = dict(gpt2)
    g2["model"] = dict(gpt2["model"], merges=[m.split(" ") for m in merges], ignore_merges=True)
    g2["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
         "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
    g2["post_processor"] = {"type": "TemplateProcessing",
                            "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}},
                                       {"Sequence": {"id": "A", "type_id": 0}}],
                            "pair": [], "special_tokens": {"<|endoftext|>": {
                                "id": "<|endoftext|>", "ids": [len(vocab)], "tokens": ["<|endoftext|>"]}}}
    put("tokenizer_json", "split_regex_template.json",
        json.dumps(g2) + "\n@@tokenizer_config.json@@\n" + json.dumps({
            "add_bos_token": True, "bos_token": {"content": "<|endoftext|>"},
            "eos_token": "<|endoftext|>",
            "chat_template": [{"name": "default", "template": "{{ messages }}"}]}))
    # SentencePiece-style BPE (Llama 2 shape): Metaspace-like normalizer, byte fallback.
    sp_vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        sp_vocab["<0x%02X>" % b] = len(sp_vocab)
    for piece in ["▁", "e", "h", "l", "o", "▁h", "he", "ll", "▁he", "▁hell", "▁hello", "w", "r", "d"]:
        sp_vocab.setdefault(piece, len(sp_vocab))
    sp = {"version": "1.0", "truncation": None, "padding": None,
          "added_tokens": [{"id": i, "content": c, "single_word": False, "lstrip": False,
                            "rstrip": False, "normalized": False, "special": True}
                           for c, i in [("<unk>", 0), ("<s>", 1), ("</s>", 2)]],
          "normalizer": {"type": "Sequence", "normalizers": [
              {"type": "Prepend", "prepend": "▁"},
              {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
          "pre_tokenizer": None,
          "post_processor": {"type": "TemplateProcessing",
                             "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                        {"Sequence": {"id": "A", "type_id": 0}}],
                             "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
          "decoder": {"type": "Sequence", "decoders": [
              {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
              {"type": "ByteFallback"}, {"type": "Fuse"},
              {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
          "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                    "continuing_subword_prefix": None, "end_of_word_suffix": None,
                    "fuse_unk": True, "byte_fallback": True, "vocab": sp_vocab,
                    "merges": ["▁ h", "h e", "l l", "▁h e", "▁he ll", "▁hell o"]}}
    put("tokenizer_json", "sentencepiece_bpe.json", json.dumps(sp, ensure_ascii=False))
    sp2 = dict(sp)
    sp2["normalizer"] = None
    sp2["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first",
                            "split": False}
    sp2["decoder"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first",
                      "split": False}
    put("tokenizer_json", "metaspace.json", json.dumps(sp2, ensure_ascii=False))
    nfc = dict(gpt2)
    nfc["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Lowercase"}]}
    put("tokenizer_json", "normalizers.json", json.dumps(nfc))
    put("tokenizer_json", "bad_merge.json", json.dumps(dict(gpt2, model=dict(
        gpt2["model"], merges=["Ġ t", "zz qq"]))))
    put("tokenizer_json", "bad_id.json", json.dumps(dict(gpt2, added_tokens=[dict(
        added[0], id=2147483647)])))
    put("tokenizer_json", "deep.json", "[" * 200 + "]" * 200)
    put("tokenizer_json", "truncated.json", json.dumps(gpt2)[:300])


# ---- text to tokenize -------------------------------------------------------
def tokenize_seeds():
    put("tokenize", "ascii.txt", "Hello, world! It's a test of the tokenizer's 123 4567 pieces.\n")
    put("tokenize", "unicode.txt", "héllo wörld — 世界 😀 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 Ω≈ç√ ǅ İ ß ﬁ\u0301\u00e9 e\u0301")
    put("tokenize", "specials.txt", "<|endoftext|>Hi<|endoftext|> <|begin_of_text|><|eot_id|>x")
    put("tokenize", "spaces.txt", "  a\t\tb\n\n\nc   \r\n d  \u00a0\u2003e\u3000")
    put("tokenize", "contractions.txt", "I'm you're he'll she'd they've it's DON'T 'S")
    put("tokenize", "numbers.txt", "3.14159 1,000,000 12345678901234567890 ٣٤٥ ①②")
    put("tokenize", "invalid_utf8.bin", b"ok \xff\xfe bad \xc3 \xed\xa0\x80 \xf4\x90\x80\x80 end")
    put("tokenize", "nul.bin", b"a\x00b\x00\x00c")
    put("tokenize", "long_word.txt", "a" * 600 + " " + "ab" * 300)
    put("tokenize", "code.txt", "def f(x):\n    return {'k': [x, x**2]}  # comment\n")
    with open("tests/data/tokenizer_corpus.jsonl", encoding="utf-8") as f:
        texts = [t for t in (json.loads(line) for line in f) if isinstance(t, str) and t]
    # A few lines of the tokenizer corpus, joined: its hard cases are there.
    for k in range(4):
        put("tokenize", "corpus%d.txt" % k, "\n".join(texts[k::4])[:1500])


# ---- JSONL rows -------------------------------------------------------------
def jsonl_seeds():
    for name in ["examples/data/train.jsonl", "examples/data/conversational_sample.jsonl",
                 "examples/data/hh_sample.jsonl", "tests/data/bad_rows.jsonl",
                 "tests/data/bad_conversational.jsonl", "tests/data/llama2_alternation.jsonl"]:
        if os.path.exists(name):
            lines = open(name, "rb").read().split(b"\n")[:5]
            put("jsonl", os.path.basename(name), b"\n".join(lines)[:3000] + b"\n")
    put("jsonl", "implicit.jsonl",
        '{"chosen": "\\n\\nHuman: hi\\n\\nAssistant: hello", "rejected": "\\n\\nHuman: hi\\n\\nAssistant: go"}\n'
        '{"chosen": "same", "rejected": "same"}\n'
        '{"chosen": "caf\\u00e9 ok", "rejected": "caf\\u00e8 no"}\n')
    put("jsonl", "conversational_implicit.jsonl", json.dumps({
        "chosen": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "2+2?"},
                   {"role": "assistant", "content": "4"}],
        "rejected": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "2+2?"},
                     {"role": "assistant", "content": "5"}]}) + "\n")
    put("jsonl", "mixed.jsonl", '\n  \n{"prompt": "", "chosen": "a", "rejected": "b"}\n[1,2]\n'
        '{"prompt": "p", "chosen": "a", "rejected": "b", "prompt": "dup"}\n'
        '{"prompt": "p\\u0000", "chosen": "a", "rejected": "b"}\n'
        '{"prompt": "' + "x" * 200 + '", "chosen": "a", "rejected": "b"}\n')
    row = b'{"prompt": "Hi", "chosen": " yes", "rejected": " no"}\n' * 3
    put("jsonl", "rows.jsonl.gz", gzip.compress(row, mtime=0))
    if shutil.which("zstd"):
        z = subprocess.run(["zstd", "-q", "-c", "--no-check"], input=row, stdout=subprocess.PIPE,
                           check=True).stdout
        put("jsonl", "rows.jsonl.zst", z)


# ---- pipeline.yaml ----------------------------------------------------------
def config_seeds():
    put("config", "pipeline.yaml", open("pipeline.yaml", encoding="utf-8").read())
    put("config", "flow.yaml", "store: s.sqlite\ntrain: {beta: 0.5, loss: [sigmoid, sft], "
        "loss_weights: [1, 0.5]}\ndata: {train: [a.jsonl, b.jsonl.gz], format: conversational}\n")
    put("config", "sweep.yaml", "sweep:\n  train.beta: [0.05, 0.1]\n  train.learning_rate: [1e-4]\n")
    put("config", "quoted.yaml", "train:\n  output: 'runs/a b'\n  beta: !!float 1\n"
        "  loss: \"ipo\"\nreference:\n  model: >\n    folded\n")
    put("config", "set_lines.yaml", "train.beta=0.2\ndata.max_length=64\nsweep={}\n"
        "train.loss=[sigmoid, ipo]\nstore=\ntrain.bta=1\n")
    put("config", "alias.yaml", "a: &x [1, 2]\nb: *x\n")
    put("config", "deep.yaml", "a: " + "[" * 40 + "]" * 40 + "\n")
    put("config", "bad_types.yaml", "data:\n  max_length: 1000000000000\n  format: 7\n"
        "train:\n  beta: .nan\n  shuffle: maybe\n")
    put("config", "multidoc.yaml", "store: a\n---\nstore: b\n")
    put("config", "tabs.yaml", "train:\n\tbeta: 1\n")


# ---- store blobs --------------------------------------------------------------
def z(raw, check=True):
    # From a file, so that the frame header declares the content size.
    tmp = os.path.join(ROOT, ".blob.tmp")
    with open(tmp, "wb") as f:
        f.write(raw)
    args = ["zstd", "-q", "-c", "-3", "--content-size"] + ([] if check else ["--no-check"])
    out = subprocess.run(args + [tmp], stdout=subprocess.PIPE, check=True).stdout
    os.remove(tmp)
    return out


def blob_seeds():
    if not shutil.which("zstd"):
        print("make_corpus: zstd CLI not found; store_blob seeds skipped", file=sys.stderr)
        return
    ids = struct.pack("<8i", 15496, 11, 995, 0, 50256, 1, 2, 3)
    logps = struct.pack("<6f", -0.5, -1.25, -3.0, -0.001, -7.5, -2.0)
    # shuffled planes of the log-probs, as store_blob_encode writes them
    planes = b"".join(logps[p::4] for p in range(4))
    put("store_blob", "ids.zst", z(ids))
    put("store_blob", "logps_planes.zst", z(planes))
    put("store_blob", "empty.zst", z(b""))
    put("store_blob", "no_checksum.zst", z(ids, check=False))
    put("store_blob", "two_frames.zst", z(ids) + z(ids))
    put("store_blob", "truncated.zst", z(logps * 4)[:-5])
    put("store_blob", "not_zstd.bin", b"SQLite format 3\0")


# ---- whole stores -------------------------------------------------------------
# A valid store (schemas/store.sql, one example with values) with 512-byte
# pages and no WAL, so a seed is a few KiB in one file, and copies altered
# as a careful user might receive them: views over endless recursive CTEs in
# place of each table, objects of one's own, another application_id.
def store_open_seeds():
    if not shutil.which("zstd"):
        print("make_corpus: zstd CLI not found; store_open seeds skipped", file=sys.stderr)
        return
    import sqlite3

    def planes(fmt, vals):
        r = struct.pack("<%d%s" % (len(vals), fmt), *vals)
        return z(b"".join(r[p::4] for p in range(4)))

    tmp = os.path.join(ROOT, ".store.tmp")
    endless = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) "
    cases = {
        "good.sqlite": [],
        "view_examples.sqlite": ["DROP TABLE examples", "CREATE VIEW examples AS " + endless +
                                 "SELECT printf('ex%d', n) AS id, 'train' AS split, 'x' AS source, "
                                 "1 AS line, n AS ord FROM c"],
        "view_refs.sqlite": ["DROP TABLE refs", "CREATE VIEW refs AS " + endless +
                             "SELECT printf('fp%d', n) AS fingerprint, '{}' AS description FROM c"],
        "view_ref_rows.sqlite": ["DROP TABLE ref_rows", "CREATE VIEW ref_rows AS " + endless +
                                 "SELECT 'ex1' AS example_id, 'fp1' AS fingerprint, 0 AS n_prompt, "
                                 "1 AS n_chosen, 1 AS n_rejected, 0.0 AS ref_chosen_logp, "
                                 "0.0 AS ref_rejected_logp, x'' AS prompt_ids, x'' AS chosen_ids, "
                                 "x'' AS rejected_ids, x'' AS chosen_token_logps, "
                                 "x'' AS rejected_token_logps FROM c"],
        "trigger.sqlite": ["CREATE TRIGGER spy AFTER INSERT ON examples BEGIN SELECT 1; END"],
        "extra_view.sqlite": ["CREATE VIEW endless AS " + endless + "SELECT n FROM c"],
        "extra_column.sqlite": ["ALTER TABLE examples ADD COLUMN note TEXT"],
        "app_id.sqlite": ["PRAGMA application_id = 1"],
    }
    for name, sql in cases.items():
        if os.path.exists(tmp):
            os.remove(tmp)
        c = sqlite3.connect(tmp)
        c.execute("PRAGMA page_size = 512")
        c.executescript(open("schemas/store.sql").read())
        c.execute("PRAGMA application_id = %d" % int.from_bytes(b"dpoc", "big"))
        c.execute("PRAGMA user_version = 1")
        c.execute("INSERT INTO refs VALUES ('fp1', '{\"model\":\"tiny\"}')")
        c.execute("INSERT INTO examples VALUES ('ex1', 'train', 'data.jsonl', 1, 0)")
        c.execute("INSERT INTO ref_rows VALUES ('ex1', 'fp1', 2, 3, 2, -1.5, -2.5, ?, ?, ?, ?, ?)",
                  (planes("i", [10, 11]), planes("i", [1, 2, 256]), planes("i", [3, 256]),
                   planes("f", [-0.5, -0.5, -0.5]), planes("f", [-1.25, -1.25])))
        c.commit()
        for q in sql:
            c.execute(q)
        c.commit()
        c.execute("VACUUM")
        c.close()
        with open(tmp, "rb") as f:
            put("store_open", name, f.read())
        os.remove(tmp)


if __name__ == "__main__":
    st_seeds()
    tok_seeds()
    tokenize_seeds()
    jsonl_seeds()
    config_seeds()
    blob_seeds()
    store_open_seeds()
