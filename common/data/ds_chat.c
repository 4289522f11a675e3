/* ds_chat — conversations rendered with a model's own Jinja chat template
 * (common/template), with the variables transformers' apply_chat_template
 * passes (REFERENCES §10): messages, tools (None when absent),
 * add_generation_prompt, and every named special token as a string. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"

json_t *ds_chat_vars(const tokenizer *t, const json_t *messages, const json_t *tools,
                     int add_generation_prompt) {
    json_t *v = json_object();
    if (!v) return NULL;
    int bad = 0;
    for (int k = 0; t && k < tok_special_count(); k++) {
        const char *s = tok_special(t, k, NULL);
        if (s) bad |= json_object_set_new(v, tok_special_name(k), json_string(s));
    }
    bad |= json_object_set(v, "messages", (json_t *)messages);
    bad |= json_object_set_new(v, "tools", tools ? json_incref((json_t *)tools) : json_null());
    bad |= json_object_set_new(v, "add_generation_prompt", json_boolean(add_generation_prompt));
    if (bad) {
        json_decref(v);
        return NULL;
    }
    return v;
}

int ds_chat_render(const tmpl *tp, const tokenizer *t, const json_t *messages, const json_t *tools,
                   int add_generation_prompt, char **out, size_t *len, dp_err *err) {
    json_t *vars = ds_chat_vars(t, messages, tools, add_generation_prompt);
    if (!vars) return dp_fail(err, "out of memory");
    int rc = tmpl_render(tp, vars, NULL, out, len, err);
    json_decref(vars);
    if (rc) dp_context(err, "chat template");
    return rc;
}

int ds_chat_load(const char *spec, const tokenizer *t, tmpl **out, const char **source, dp_err *err) {
    *out = NULL;
    *source = NULL;
    const char *text = NULL;
    char *file_text = NULL;
    size_t n = 0;
    if (spec && strlen(spec) > 6 && !strcmp(spec + strlen(spec) - 6, ".jinja")) {
        FILE *f = fopen(spec, "rb");
        char q[DP_QUOTE_CAP];
        if (!f) return dp_fail(err, "%s: cannot open the chat template", dp_label(q, spec));
        size_t cap = 4096;
        file_text = malloc(cap);
        for (size_t k; file_text && (k = fread(file_text + n, 1, cap - n - 1, f)) > 0;) {
            n += k;
            if (n + 1 == cap) {
                char *p = realloc(file_text, cap *= 2);
                if (!p) free(file_text);
                file_text = p;
            }
        }
        fclose(f);
        if (!file_text) return dp_fail(err, "%s: out of memory", dp_label(q, spec));
        file_text[n] = '\0';
        text = file_text;
        *source = spec;
    } else {
        text = tok_chat_template(t);
        if (!text) return 0;
        n = strlen(text);
        *source = tok_chat_template_source(t);
    }
    int rc = tmpl_parse(out, text, n, err);
    if (rc) {
        char q[DP_QUOTE_CAP];
        dp_context(err, "%s: chat template", dp_label(q, *source));
    }
    free(file_text);
    return rc;
}
