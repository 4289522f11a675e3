/* chat — the built-in chat templates (see chat.h, dataset.h).
 *
 * Sources transcribed (tokenizer_config.json "chat_template"):
 *   chatml   the generic ChatML template (no default system prompt):
 *            <|im_start|>ROLE\nCONTENT<|im_end|>\n ...; generation prompt
 *            "<|im_start|>assistant\n".
 *   llama3   Meta-Llama-3-8B-Instruct: bos_token, then per message
 *            <|start_header_id|>ROLE<|end_header_id|>\n\n + trim(CONTENT)
 *            + <|eot_id|>; generation prompt the assistant header.
 *   llama2   Llama-2-chat: an optional leading system message goes into the
 *            first user turn as <<SYS>>\n...\n<</SYS>>\n\n; roles must
 *            alternate user/assistant; each user turn is
 *            bos_token + "[INST] " + strip(..) + " [/INST]", each assistant
 *            turn " " + strip(..) + " " + eos_token ("</s>").
 *   mistral  Mistral-7B-Instruct-v0.1/v0.2: bos_token once, user turns
 *            "[INST] " + CONTENT + " [/INST]", assistant CONTENT + "</s>",
 *            only user/assistant roles, alternating.
 *   zephyr   zephyr-7b-beta (Jinja trim_blocks): <|ROLE|>\nCONTENT</s>\n
 *            for user/system/assistant, other roles dropped; generation
 *            prompt "<|assistant|>\n" after the last message.
 *   gemma    gemma-3-it (gemma 1/2 are the same without system support):
 *            bos_token; a leading system message is prefixed to the first
 *            user turn with "\n\n"; <start_of_turn>ROLE\n + trim(CONTENT) +
 *            <end_of_turn>\n with "assistant" named "model"; alternating.
 * trim/strip are Python's str.strip(): Unicode whitespace as str.isspace. */
#include "chat.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int failed;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
    if (b->failed) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) { b->failed = 1; return; }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

/* Python's str.isspace for one code point: bidi class WS, B or S, or
 * category Zs. */
static int is_py_space(utf8proc_int32_t c) {
    const utf8proc_property_t *p = utf8proc_get_property(c);
    return p->category == UTF8PROC_CATEGORY_ZS || p->bidi_class == UTF8PROC_BIDI_CLASS_WS ||
           p->bidi_class == UTF8PROC_BIDI_CLASS_B || p->bidi_class == UTF8PROC_BIDI_CLASS_S;
}

/* Appends S with Python's strip() applied. S is valid UTF-8 (jansson
 * guarantees it); an undecodable byte simply stops the stripping. */
static void sb_add_stripped(sbuf *b, const char *s) {
    const utf8proc_uint8_t *u = (const utf8proc_uint8_t *)s;
    size_t n = strlen(s), start = 0, end = n;
    while (start < n) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(u + start, (utf8proc_ssize_t)(n - start), &c);
        if (k <= 0 || !is_py_space(c)) break;
        start += (size_t)k;
    }
    while (end > start) {
        size_t b0 = end - 1;
        while (b0 > start && (u[b0] & 0xC0) == 0x80) b0--;
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(u + b0, (utf8proc_ssize_t)(end - b0), &c);
        if (k <= 0 || (size_t)k != end - b0 || !is_py_space(c)) break;
        end = b0;
    }
    sb_add(b, s + start, end - start);
}

const char *chat_template_name(ds_template tpl) {
    switch (tpl) {
    case DS_TEMPLATE_AUTO: return "auto";
    case DS_TEMPLATE_CHATML: return "chatml";
    case DS_TEMPLATE_LLAMA3: return "llama3";
    case DS_TEMPLATE_LLAMA2: return "llama2";
    case DS_TEMPLATE_MISTRAL: return "mistral";
    case DS_TEMPLATE_ZEPHYR: return "zephyr";
    case DS_TEMPLATE_GEMMA: return "gemma";
    }
    return "?";
}

int chat_template_detect(const char *text, ds_template *out, dp_err *err) {
    static const char looked_for[] =
        "<|im_start|> (chatml), <|start_header_id|> (llama3), <start_of_turn> (gemma), "
        "<|user|> (zephyr), [INST] with <<SYS>> (llama2), [INST] (mistral)";
    if (!text)
        return dp_fail(err, "data.chat_template: auto needs tokenizer_config.json's chat_template, "
                            "found none; set data.chat_template to one of chatml, llama3, llama2, "
                            "mistral, zephyr, gemma");
    if (strstr(text, "<|im_start|>")) *out = DS_TEMPLATE_CHATML;
    else if (strstr(text, "<|start_header_id|>")) *out = DS_TEMPLATE_LLAMA3;
    else if (strstr(text, "<start_of_turn>")) *out = DS_TEMPLATE_GEMMA;
    else if (strstr(text, "<|user|>")) *out = DS_TEMPLATE_ZEPHYR;
    else if (strstr(text, "[INST]")) *out = strstr(text, "<<SYS>>") ? DS_TEMPLATE_LLAMA2 : DS_TEMPLATE_MISTRAL;
    else
        return dp_fail(err, "data.chat_template: auto found none of the markers %s in "
                            "tokenizer_config.json's chat_template; set data.chat_template",
                       looked_for);
    return 0;
}

int chat_starts_with_bos(ds_template tpl) {
    return tpl == DS_TEMPLATE_LLAMA3 || tpl == DS_TEMPLATE_LLAMA2 || tpl == DS_TEMPLATE_MISTRAL ||
           tpl == DS_TEMPLATE_GEMMA;
}

size_t chat_turn_separator_len(ds_template tpl) {
    return (tpl == DS_TEMPLATE_CHATML || tpl == DS_TEMPLATE_ZEPHYR || tpl == DS_TEMPLATE_GEMMA) ? 1 : 0;
}

/* raise_exception('Conversation roles must alternate ...') of llama2,
 * mistral and gemma: message i (of the loop) must be "user" iff i is even. */
static int check_alternation(const char *tpl, const char *role, int i, int shown, dp_err *err) {
    int is_user = strcmp(role, "user") == 0;
    char q[DP_QUOTE_CAP];
    if (is_user != (i % 2 == 0))
        return dp_fail(err, "%s template: message %d: roles must alternate user/assistant, expected "
                            "\"%s\", got %s",
                       tpl, shown, i % 2 == 0 ? "user" : "assistant", dp_quote(q, role, (size_t)-1));
    return 0;
}

/* llama2 and gemma: an optional leading system message is set aside in
 * *system, and the messages after it must alternate user/assistant. Returns
 * the index of the first of those, or -1 with err. */
static int split_system(const char *tpl, const char *const *roles, const char *const *contents,
                        int n, const char **system, dp_err *err) {
    int first = n > 0 && strcmp(roles[0], "system") == 0;
    *system = first ? contents[0] : NULL;
    for (int i = first; i < n; i++)
        if (check_alternation(tpl, roles[i], i - first, i, err)) return -1;
    return first;
}

int ds_render_chat(ds_template tpl, const char *const *roles, const char *const *contents, int n,
                   int add_generation_prompt, char **out, dp_err *err) {
    sbuf b = {0};
    *out = NULL;
    sb_add(&b, "", 0);
    const char *name = chat_template_name(tpl);
    switch (tpl) {
    case DS_TEMPLATE_CHATML:
        for (int i = 0; i < n; i++) {
            sb_puts(&b, "<|im_start|>");
            sb_puts(&b, roles[i]);
            sb_puts(&b, "\n");
            sb_puts(&b, contents[i]);
            sb_puts(&b, "<|im_end|>\n");
        }
        if (add_generation_prompt) sb_puts(&b, "<|im_start|>assistant\n");
        break;
    case DS_TEMPLATE_LLAMA3:
        for (int i = 0; i < n; i++) {
            sb_puts(&b, "<|start_header_id|>");
            sb_puts(&b, roles[i]);
            sb_puts(&b, "<|end_header_id|>\n\n");
            sb_add_stripped(&b, contents[i]);
            sb_puts(&b, "<|eot_id|>");
        }
        if (add_generation_prompt) sb_puts(&b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
    case DS_TEMPLATE_LLAMA2: {
        const char *system;
        int first = split_system(name, roles, contents, n, &system, err);
        if (first < 0) goto fail;
        for (int i = first; i < n; i++) {
            int k = i - first;
            if (strcmp(roles[i], "user") == 0) {
                /* The first bos_token is the tokenizer's BOS (chat.h). */
                if (k > 0) sb_puts(&b, "<s>");
                sb_puts(&b, "[INST] ");
                if (k == 0 && system) {
                    sbuf c = {0};
                    sb_puts(&c, "<<SYS>>\n");
                    sb_puts(&c, system);
                    sb_puts(&c, "\n<</SYS>>\n\n");
                    sb_puts(&c, contents[i]);
                    if (c.failed) { free(c.p); b.failed = 1; break; }
                    sb_add_stripped(&b, c.p);
                    free(c.p);
                } else {
                    sb_add_stripped(&b, contents[i]);
                }
                sb_puts(&b, " [/INST]");
            } else if (strcmp(roles[i], "assistant") == 0) {
                sb_puts(&b, " ");
                sb_add_stripped(&b, contents[i]);
                sb_puts(&b, " </s>");
            }
        }
        break;
    }
    case DS_TEMPLATE_MISTRAL:
        for (int i = 0; i < n; i++) {
            if (check_alternation(name, roles[i], i, i, err)) goto fail;
            if (strcmp(roles[i], "user") == 0) {
                sb_puts(&b, "[INST] ");
                sb_puts(&b, contents[i]);
                sb_puts(&b, " [/INST]");
            } else if (strcmp(roles[i], "assistant") == 0) {
                sb_puts(&b, contents[i]);
                sb_puts(&b, "</s>");
            } else {
                char q[DP_QUOTE_CAP];
                dp_fail(err, "mistral template: message %d: only user and assistant roles are "
                             "supported, got %s", i, dp_quote(q, roles[i], (size_t)-1));
                goto fail;
            }
        }
        break;
    case DS_TEMPLATE_ZEPHYR:
        for (int i = 0; i < n; i++) {
            if (strcmp(roles[i], "user") == 0 || strcmp(roles[i], "system") == 0 ||
                strcmp(roles[i], "assistant") == 0) {
                sb_puts(&b, "<|");
                sb_puts(&b, roles[i]);
                sb_puts(&b, "|>\n");
                sb_puts(&b, contents[i]);
                sb_puts(&b, "</s>\n");
            }
            if (i == n - 1 && add_generation_prompt) sb_puts(&b, "<|assistant|>\n");
        }
        break;
    case DS_TEMPLATE_GEMMA: {
        const char *system;
        int first = split_system(name, roles, contents, n, &system, err);
        if (first < 0) goto fail;
        for (int i = first; i < n; i++) {
            int k = i - first;
            sb_puts(&b, "<start_of_turn>");
            sb_puts(&b, strcmp(roles[i], "assistant") == 0 ? "model" : roles[i]);
            sb_puts(&b, "\n");
            if (k == 0 && system) {
                sb_puts(&b, system);
                sb_puts(&b, "\n\n");
            }
            sb_add_stripped(&b, contents[i]);
            sb_puts(&b, "<end_of_turn>\n");
        }
        if (add_generation_prompt) sb_puts(&b, "<start_of_turn>model\n");
        break;
    }
    case DS_TEMPLATE_AUTO:
    default:
        dp_fail(err, "ds_render_chat: template must be resolved before rendering, got %s", name);
        goto fail;
    }
    if (b.failed) {
        dp_fail(err, "out of memory rendering a %s conversation", name);
        goto fail;
    }
    *out = b.p;
    return 0;
fail:
    free(b.p);
    return -1;
}
