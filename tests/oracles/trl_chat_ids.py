#!/usr/bin/env python3
"""trl_chat_ids.py — the token ids TRL's current DPO builds from
conversational rows (REFERENCES §10): prompt_ids = encode(render(prompt,
add_generation_prompt=True)); each response's ids = encode(render(prompt +
response))[len(prompt_ids):], no special tokens added (the template writes
them). Renders come from jinja_oracle.py (python3-jinja2 set up as
transformers sets it up), ids from tokenize_oracle.js (@lenml/tokenizers).

usage: trl_chat_ids.py MODEL_DIR NODE_MODULES < rows.jsonl > ids.jsonl
Each output line: {"prompt_ids": [...], "chosen_ids": [...], "rejected_ids": [...]}.
"""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jinja_oracle  # noqa: E402


def main():
    model, modules = sys.argv[1], sys.argv[2]
    text, special = jinja_oracle.load(model)
    template = jinja_oracle.environment().from_string(text)

    def render(msgs, gen):
        return template.render(messages=msgs, tools=None, add_generation_prompt=gen, **special)

    texts = []
    for line in sys.stdin:
        if not line.strip():
            continue
        row = json.loads(line)
        if "prompt" in row:
            p, c, r = row["prompt"], row["prompt"] + row["chosen"], row["prompt"] + row["rejected"]
        else:
            k = 0
            while k < min(len(row["chosen"]), len(row["rejected"])) and row["chosen"][k] == row["rejected"][k]:
                k += 1
            p, c, r = row["chosen"][:k], row["chosen"], row["rejected"]
        texts += [render(p, True), render(c, False), render(r, False)]
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "in.jsonl")
        with open(src, "w", encoding="utf-8") as f:
            for t in texts:
                f.write(json.dumps(t) + "\n")
        here = os.path.dirname(os.path.abspath(__file__))
        subprocess.run(["node", os.path.join(here, "tokenize_oracle.js"), modules,
                        os.path.join(model, "tokenizer.json"), os.path.join(d, "out")],
                       stdin=open(src, encoding="utf-8"), check=True)
        ids = [json.loads(l) for l in open(os.path.join(d, "out.ids"), encoding="utf-8")]
    for i in range(0, len(ids), 3):
        p, c, r = ids[i:i + 3]
        print(json.dumps({"prompt_ids": p, "chosen_ids": c[len(p):], "rejected_ids": r[len(p):]}))


if __name__ == "__main__":
    main()
