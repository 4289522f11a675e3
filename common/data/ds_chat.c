/* ds_chat — conversations rendered with a model's own Jinja chat template
 * (common/template), with the variables transformers' apply_chat_template
 * passes (REFERENCES §10): messages, tools (None when absent),
 * add_generation_prompt, and every named special token as a string. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "dataset.h"

void ds_options_free(ds_options *opt) {
    tmpl_free(opt->jinja);
    tmpl_free(opt->jinja_tools);
    opt->jinja = opt->jinja_tools = NULL;
}

int ds_chat_load_tool_use(const tokenizer *t, tmpl **out, dp_err *err) {
    *out = NULL;
    const char *text = tok_chat_template_tool_use(t);
    if (!text) return 0;
    if (tmpl_parse(out, text, strlen(text), err)) return dp_context(err, "tokenizer_config.json: chat_template \"tool_use\"");
    return 0;
}

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

int ds_chat_render_builtin(ds_template tpl, const tokenizer *t, const json_t *messages,
                           int add_generation_prompt, char **out, size_t *len, dp_err *err) {
    *out = NULL;
    size_t n = json_array_size(messages);
    const char **role = calloc(n + 1, sizeof *role), **content = calloc(n + 1, sizeof *content);
    int rc = 0;
    if (!role || !content) rc = dp_fail(err, "out of memory");
    for (size_t i = 0; !rc && i < n; i++) {
        json_t *m = json_array_get(messages, i);
        role[i] = json_string_value(json_object_get(m, "role"));
        content[i] = json_string_value(json_object_get(m, "content"));
        if (!role[i] || !content[i])
            rc = dp_fail(err, "message %zu: the built-in templates need string \"role\" and \"content\"", i);
    }
    char *text = NULL;
    if (!rc) rc = ds_render_chat(tpl, role, content, (int)n, add_generation_prompt, &text, err);
    free(role);
    free(content);
    if (rc) return -1;
    /* The built-ins leave a leading bos_token out of the text (chat.h): put it back. */
    const char *bos = chat_starts_with_bos(tpl) && t ? tok_special(t, 0, NULL) : NULL;
    size_t nb = bos ? strlen(bos) : 0, nt = strlen(text);
    *out = malloc(nb + nt + 1);
    if (!*out) {
        free(text);
        return dp_fail(err, "out of memory");
    }
    if (nb) memcpy(*out, bos, nb);
    memcpy(*out + nb, text, nt + 1);
    free(text);
    *len = nb + nt;
    return 0;
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

/* The messages of field KEY of ROW: a JSON list of objects, each with a
 * string "role". FILE:LINE name the row in errors. */
static int get_list(const json_t *row, const char *key, const char *file, long line, json_t **out,
                    dp_err *err) {
    json_t *v = json_object_get(row, key);
    if (!json_is_array(v))
        return dp_fail(err, "%s:%ld: field \"%s\": %s, expected a list of {\"role\", \"content\"} messages",
                       file, line, key, v ? "not a list" : "missing");
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *m = json_array_get(v, i);
        if (!json_is_object(m) || !json_is_string(json_object_get(m, "role")))
            return dp_fail(err, "%s:%ld: field \"%s\": message %zu: expected an object with a string \"role\"",
                           file, line, key, i);
    }
    *out = v;
    return 0;
}

static json_t *concat(const json_t *a, size_t from_a, const json_t *b, size_t from_b, size_t n_a) {
    json_t *out = json_array();
    for (size_t i = from_a; out && i < n_a; i++) json_array_append(out, json_array_get(a, i));
    for (size_t i = from_b; out && b && i < json_array_size(b); i++) json_array_append(out, json_array_get(b, i));
    return out;
}

int ds_chat_row(const tmpl *tp, const tmpl *tp_tools, const tokenizer *t, const json_t *row,
                const char *file, long line, char *texts[3], dp_err *err) {
    texts[0] = texts[1] = texts[2] = NULL;
    json_t *p = NULL, *c, *j;
    int explicit_prompt = json_object_get(row, "prompt") != NULL;
    if ((explicit_prompt && get_list(row, "prompt", file, line, &p, err)) ||
        get_list(row, "chosen", file, line, &c, err) || get_list(row, "rejected", file, line, &j, err))
        return 2;
    json_t *tools = json_object_get(row, "tools");
    if (json_is_null(tools)) tools = NULL;
    if (tools && tp_tools) tp = tp_tools;
    json_t *lists[3] = {NULL, NULL, NULL};
    if (explicit_prompt) {
        lists[0] = concat(p, 0, NULL, 0, json_array_size(p));
        lists[1] = concat(p, 0, c, 0, json_array_size(p));
        lists[2] = concat(p, 0, j, 0, json_array_size(p));
    } else { /* the messages chosen and rejected share at the start are the prompt */
        size_t k = 0;
        while (k < json_array_size(c) && k < json_array_size(j) &&
               json_equal(json_array_get(c, k), json_array_get(j, k)))
            k++;
        lists[0] = concat(c, 0, NULL, 0, k);
        lists[1] = concat(c, 0, NULL, 0, json_array_size(c));
        lists[2] = concat(j, 0, NULL, 0, json_array_size(j));
        if (k == json_array_size(c) || k == json_array_size(j)) {
            for (int i = 0; i < 3; i++) json_decref(lists[i]);
            dp_fail(err, "%s:%ld: field \"%s\": empty response (no messages after the prompt)", file,
                    line, k == json_array_size(c) ? "chosen" : "rejected");
            return 2;
        }
    }
    int rc = 0;
    for (int i = 0; i < 3 && !rc; i++) {
        size_t len;
        if (!lists[i]) rc = dp_fail(err, "out of memory");
        else if (ds_chat_render(tp, t, lists[i], tools, i == 0, &texts[i], &len, err)) {
            dp_context(err, "%s:%ld: field \"%s\"", file, line, i == 0 ? (explicit_prompt ? "prompt" : "chosen")
                                                            : i == 1 ? "chosen" : "rejected");
            rc = 2;
        }
    }
    for (int i = 0; i < 3; i++) json_decref(lists[i]);
    if (rc) {
        for (int i = 0; i < 3; i++) free(texts[i]), texts[i] = NULL;
        return rc < 0 ? -1 : 2;
    }
    return 0;
}
