#!/usr/bin/env python3
"""jinja_oracle.py — renders chat templates with python3-jinja2, configured
as transformers' apply_chat_template configures it (REFERENCES §10), for the
template tests to compare dpoc's interpreter against.

usage: jinja_oracle.py TEMPLATE_SOURCE [MODEL_DIR] < rows.jsonl
       jinja_oracle.py --each MODEL_DIR FILE.jinja... < rows.jsonl
  (--each: every template over the rows in one run; each output line is the
  template's file name, a tab, then what the first form prints)
  TEMPLATE_SOURCE: a .jinja file, or a model directory (chat_template.jinja,
  else tokenizer_config.json's chat_template; named lists: "default").
  Each input line: {"messages": [...], "add_generation_prompt": bool,
  "tools": [...]?, "vars": {...}?} ("vars": extra variables, e.g. special
  tokens; for a model directory — TEMPLATE_SOURCE or MODEL_DIR — its
  tokenizer_config.json's named tokens are passed as transformers would). Each output line: the rendering as a JSON
  string, or {"error": "message"} when the template raised.
"""
import datetime
import json
import os
import sys

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

SPECIAL = ["bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token"]


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    # transformers' replacement of Jinja's tojson: plain json.dumps, keys in
    # their order, no HTML escaping.
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(fmt):
    return datetime.datetime.now().strftime(fmt)


def environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def load(source, model_dir=None):
    special = {}
    if model_dir:
        special = load(model_dir)[1]
    if os.path.isdir(source):
        cfg_path = os.path.join(source, "tokenizer_config.json")
        cfg = json.load(open(cfg_path, encoding="utf-8")) if os.path.exists(cfg_path) else {}
        for name in SPECIAL:
            v = cfg.get(name)
            if isinstance(v, dict):
                v = v.get("content")
            if isinstance(v, str):
                special[name] = v
        jinja_path = os.path.join(source, "chat_template.jinja")
        if os.path.exists(jinja_path):
            text = open(jinja_path, encoding="utf-8").read()
        else:
            text = cfg.get("chat_template")
            if isinstance(text, list):
                text = {t["name"]: t["template"] for t in text}["default"]
    else:
        text = open(source, encoding="utf-8").read()
    return text, special


def render_rows(template, special, rows, prefix=""):
    for row in rows:
        kwargs = dict(special)
        kwargs.update(row.get("vars", {}))
        try:
            out = template.render(messages=row["messages"], tools=row.get("tools"),
                                  add_generation_prompt=row.get("add_generation_prompt", False), **kwargs)
            print(prefix + json.dumps(out, ensure_ascii=False))
        except jinja2.exceptions.TemplateError as e:
            print(prefix + json.dumps({"error": str(e)}))


def main():
    rows = [json.loads(line) for line in sys.stdin if line.strip()]
    if sys.argv[1] == "--each":
        special = load(sys.argv[2])[1]
        for path in sys.argv[3:]:
            text = open(path, encoding="utf-8").read()
            render_rows(environment().from_string(text), special, rows, os.path.basename(path) + "\t")
        return
    text, special = load(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
    render_rows(environment().from_string(text), special, rows)


if __name__ == "__main__":
    main()
