#!/usr/bin/env python3
"""Writes the embedded default's files (run from examples/; output is committed):

  data/train.jsonl, data/eval.jsonl  a miniature of the DPO paper's controlled
      sentiment task: a review opening as the prompt, a positive continuation
      chosen and a negative one rejected (judge: examples/judge.words).
  tiny/model/config.json             a 2-layer GPT-2-shaped model over bytes.
  tiny/model/tokenizer.json          byte-level BPE with no merges: one token per
      byte (GPT-2's byte-to-unicode map) plus <|endoftext|> as EOS, so no
      tokenizer training is needed.

Everything is generated here from small word lists written for this project.
"""
import json
import random

SUBJECTS = ["movie", "film", "book", "album", "restaurant", "hotel", "game", "show",
            "play", "novel", "cafe", "concert", "series", "museum", "podcast", "course"]
OPENERS = ["I went to see the {s} last night and it was",
           "Honestly, the {s} was",
           "My friends said the {s} would be great, and it was",
           "After waiting all week, the {s} turned out to be",
           "The new {s} everyone talks about is",
           "We tried the {s} on Sunday. It was",
           "Review: the {s} is",
           "I have mixed expectations, but the {s} was",
           "Five minutes in, the {s} felt",
           "To sum up, this {s} is"]
POSITIVE = ["wonderful", "delightful", "brilliant", "charming", "lovely", "great",
            "excellent", "fantastic", "warm", "beautiful", "fun", "superb", "joyful",
            "moving", "clever", "pleasant"]
NEGATIVE = ["awful", "dull", "boring", "terrible", "dreadful", "bad", "poor",
            "tedious", "ugly", "bland", "annoying", "weak", "sad", "messy", "clumsy",
            "painful"]
# The judge knows all of POSITIVE and NEGATIVE; the responses use the first
# USED of each, short, so that a byte-level model of a few hundred thousand
# parameters learns to spell them within the demo's first minute.
USED = 8
POS_TAILS = ["I loved it.", "we left smiling.", "go see it."]
NEG_TAILS = ["I hated it.", "we left early.", "skip it."]


def response(rng, words, tails):
    a, b = rng.sample(words[:USED], 2)
    return f" {a} and {b}; {rng.choice(tails)}"


def rows(rng, n):
    out = []
    for _ in range(n):
        prompt = rng.choice(OPENERS).format(s=rng.choice(SUBJECTS))
        out.append({"prompt": prompt,
                    "chosen": response(rng, POSITIVE, POS_TAILS),
                    "rejected": response(rng, NEGATIVE, NEG_TAILS)})
    return out


def byte_to_unicode():
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(0x100 + extra)
            extra += 1
    return table


def main():
    rng = random.Random(1234)
    for name, n in (("train", 512), ("eval", 64)):
        with open(f"data/{name}.jsonl", "w") as f:
            for r in rows(rng, n):
                f.write(json.dumps(r) + "\n")
    with open("judge.words", "w") as f:
        f.write("# word-list sentiment judge: +1 per positive word, -1 per negative word\n")
        for w in POSITIVE:
            f.write(f"+ {w}\n")
        for w in NEGATIVE:
            f.write(f"- {w}\n")
    b2u = byte_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    eos = "<|endoftext|>"
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": 256, "content": eos, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True}],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                          "use_regex": True},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                           "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": "", "end_of_word_suffix": "",
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": []},
    }
    with open("tiny/model/tokenizer.json", "w") as f:
        json.dump(tok, f, ensure_ascii=False, indent=1)
    with open("tiny/model/tokenizer_config.json", "w") as f:
        json.dump({"bos_token": eos, "eos_token": eos, "unk_token": eos,
                   "add_bos_token": False, "add_eos_token": False,
                   "model_max_length": 256, "tokenizer_class": "GPT2Tokenizer"}, f, indent=1)
    config = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"],
              "vocab_size": 257, "n_positions": 256, "n_embd": 96, "n_layer": 2,
              "n_head": 4, "n_inner": None, "activation_function": "gelu_new",
              "layer_norm_epsilon": 1e-5, "bos_token_id": 256, "eos_token_id": 256,
              "tie_word_embeddings": True, "torch_dtype": "float32"}
    with open("tiny/model/config.json", "w") as f:
        json.dump(config, f, indent=1)


if __name__ == "__main__":
    main()
