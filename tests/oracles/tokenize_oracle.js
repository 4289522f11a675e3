// tokenize_oracle.js — expected results from @lenml/tokenizers (a JavaScript
// port of the Hugging Face tokenizers algorithm), the reference for
// tests/e2e_tokenizer.sh. One run loads the tokenizer once and writes:
//   OUT.ids      per input line, the JSON array of ids (add_special_tokens=false)
//   OUT.special  the same with add_special_tokens=true
//   OUT.text     decode(OUT.ids) as a JSON string (special tokens kept, no
//                clean-up of tokenization spaces)
//   OUT.nfc      1 if the input line is NFC-normalized, else 0
// Usage: node tokenize_oracle.js MODULES TOKENIZER_JSON OUT < in.jsonl
// MODULES: the node_modules directory holding @lenml/tokenizers; each input
// line is a JSON string. tokenizer_config.json beside TOKENIZER_JSON is used
// when present.
"use strict";
const fs = require("fs");
const path = require("path");

const [modules, tokPath, out] = process.argv.slice(2);
if (!modules || !tokPath || !out) {
  process.stderr.write("usage: node tokenize_oracle.js MODULES TOKENIZER_JSON OUT < in.jsonl\n");
  process.exit(2);
}
const { TokenizerLoader } = require(path.resolve(modules, "@lenml/tokenizers"));
const tokenizerJSON = JSON.parse(fs.readFileSync(tokPath, "utf8"));
const cfgPath = path.join(path.dirname(tokPath), "tokenizer_config.json");
const tokenizerConfig = fs.existsSync(cfgPath) ? JSON.parse(fs.readFileSync(cfgPath, "utf8")) : {};
const tok = TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig });

const lines = fs.readFileSync(0, "utf8").split("\n");
if (lines.length && lines[lines.length - 1] === "") lines.pop();
const res = { ids: [], special: [], text: [], nfc: [] };
for (const l of lines) {
  const s = JSON.parse(l);
  const ids = tok.encode(s, { add_special_tokens: false });
  res.ids.push(JSON.stringify(ids));
  res.special.push(JSON.stringify(tok.encode(s, { add_special_tokens: true })));
  // (the port refuses to decode an empty list; decoding nothing is "")
  const text = ids.length ? tok.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false }) : "";
  res.text.push(JSON.stringify(text));
  res.nfc.push(s.normalize("NFC") === s ? "1" : "0");
}
for (const k of Object.keys(res)) fs.writeFileSync(`${out}.${k}`, res[k].map((x) => x + "\n").join(""));
