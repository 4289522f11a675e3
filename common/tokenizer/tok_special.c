/* tok_special — the named special tokens, resolved as transformers'
 * PreTrainedTokenizerBase._from_pretrained does, and the chat template's
 * location (REFERENCES §10–§11).
 *
 * For each name (bos_token, eos_token, unk_token, pad_token, sep_token,
 * cls_token, mask_token) the first of:
 *   1. tokenizer_config.json: a string, or an AddedToken {"content": ...};
 *   2. special_tokens_map.json, read only when tokenizer_config.json has no
 *      added_tokens_decoder (transformers' legacy path);
 *   3. the ids in generation_config.json, then config.json (bos_token_id,
 *      eos_token_id — an int or a list, whose first entry names the token —
 *      pad_token_id), looked up in the vocabulary;
 *   4. the tokenizer class's defaults: GPT2Tokenizer (tokenizer_class, or
 *      config.json's model_type "gpt2") has bos = eos = unk = <|endoftext|>;
 *   5. the post-processor's single BOS/EOS (tokenizer.json).
 * Generation stops on generation_config.json's eos_token_id (an int or a
 * list), else config.json's, else the tokenizer's EOS.
 * The chat template: chat_template.jinja beside the files wins over
 * tokenizer_config.json's chat_template (a string, or a list of
 * {"name", "template"} of which "default" is taken, and "tool_use" kept
 * for rows that give tools). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

static const char *const special_names[TOK_N_SPECIAL] = {
    "bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token"};
enum { SP_BOS, SP_EOS, SP_UNK, SP_PAD };

const char *tok_special_name(int k) { return k >= 0 && k < TOK_N_SPECIAL ? special_names[k] : NULL; }
int tok_special_count(void) { return TOK_N_SPECIAL; }

const char *tok_special(const tokenizer *t, int k, const char **source) {
    if (k < 0 || k >= TOK_N_SPECIAL) return NULL;
    if (source) *source = t->special_source[k];
    return t->special[k];
}

size_t tok_stop_ids(const tokenizer *t, const int32_t **ids) {
    *ids = t->stop_ids;
    return t->n_stop;
}

const char *tok_chat_template_source(const tokenizer *t) { return t->chat_template_source; }
const char *tok_chat_template_tool_use(const tokenizer *t) { return t->chat_template_tool_use; }

static const char *json_kind(const json_t *v) {
    return !v ? "nothing" : json_is_object(v) ? "an object" : json_is_array(v) ? "an array"
         : json_is_string(v) ? "a string" : json_is_number(v) ? "a number"
         : json_is_boolean(v) ? "a boolean" : "null";
}

static char *dupn(const char *s, size_t n, dp_err *err) {
    char *d = dp_malloc(n + 1, err);
    if (d) memcpy(d, s, n), d[n] = '\0';
    return d;
}

/* DIR/NAME into buf (DIR ends with '/' or is empty). */
static const char *beside(char *buf, size_t cap, const char *dir, const char *name) {
    snprintf(buf, cap, "%s%s", dir, name);
    return buf;
}

/* Loads FILE as a JSON object into *out; a missing file leaves *out NULL. */
static int load_json(const char *file, json_t **out, dp_err *err) {
    *out = NULL;
    FILE *f = fopen(file, "rb");
    if (!f) return 0;
    fclose(f);
    json_error_t je;
    json_t *c = json_load_file(file, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &je);
    if (!c) return dp_fail(err, "%s:%d:%d: %s", file, je.line, je.column, je.text);
    if (!json_is_object(c)) {
        dp_fail(err, "%s: expected a JSON object, got %s", file, json_kind(c));
        json_decref(c);
        return -1;
    }
    *out = c;
    return 0;
}

/* A token value: a string, {"content": string}, or null/absent (*s NULL). */
static int token_value(const char *file, const char *key, json_t *v, const char **s, size_t *n,
                       dp_err *err) {
    *s = NULL;
    if (json_is_object(v)) v = json_object_get(v, "content");
    if (json_is_string(v)) {
        *s = json_string_value(v);
        *n = json_string_length(v);
    } else if (v && !json_is_null(v)) {
        return dp_fail(err, "%s: %s: expected a token (a string or {\"content\": ...}), got %s",
                       file, key, json_kind(v));
    }
    return 0;
}

static int set_special(tokenizer *t, int k, const char *s, size_t n, const char *source, dp_err *err) {
    if (!(t->special[k] = dupn(s, n, err))) return -1;
    t->special_source[k] = source;
    return 0;
}

/* An id field of generation_config.json / config.json: an integer, a list
 * of them, or absent/null. Returns the count put in ids[0..cap). */
static int id_list(const char *file, json_t *c, const char *key, int32_t vocab, int32_t *ids,
                   int cap, dp_err *err) {
    json_t *v = c ? json_object_get(c, key) : NULL;
    if (!v || json_is_null(v)) return 0;
    json_t *one[1] = {v};
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_is_array(v) ? json_array_get(v, i) : one[0];
        double d = json_number_value(e);
        if (!json_is_number(e) || d != (double)(int64_t)d || d < 0 || d >= vocab)
            return dp_fail(err, "%s: %s: expected a token id in [0, %d) or a list of them, got %s",
                           file, key, vocab, json_is_number(e) ? "an id outside it" : json_kind(e));
        if (k < cap) ids[k++] = (int32_t)d;
    }
    return k;
}

/* chat_template.jinja, or tokenizer_config.json's chat_template. */
static int load_template(tokenizer *t, const char *jinja, json_t *cfg, const char *cfg_file,
                         dp_err *err) {
    FILE *f = fopen(jinja, "rb");
    if (f) {
        size_t cap = 4096, n = 0;
        char *s = malloc(cap);
        for (size_t k; s && (k = fread(s + n, 1, cap - n - 1, f)) > 0;) {
            n += k;
            if (n + 1 == cap) {
                char *p = realloc(s, cap *= 2);
                if (!p) free(s);
                s = p;
            }
        }
        fclose(f);
        if (!s) return dp_fail(err, "%s: out of memory", jinja);
        s[n] = '\0';
        t->chat_template = s;
        t->chat_template_source = "chat_template.jinja";
        return 0;
    }
    json_t *ct = cfg ? json_object_get(cfg, "chat_template") : NULL;
    if (json_is_array(ct)) {
        json_t *pick = NULL;
        for (size_t i = 0; i < json_array_size(ct); i++) {
            json_t *e = json_array_get(ct, i);
            const char *nm = json_string_value(json_object_get(e, "name"));
            json_t *tx = json_object_get(e, "template");
            if (nm && !strcmp(nm, "default")) pick = tx;
            if (nm && !strcmp(nm, "tool_use") && json_is_string(tx) && !t->chat_template_tool_use &&
                !(t->chat_template_tool_use = dupn(json_string_value(tx), json_string_length(tx), err)))
                return -1;
        }
        if (!pick)
            return dp_fail(err, "%s: chat_template: a list of named templates without \"default\"",
                           cfg_file);
        ct = pick;
    }
    if (ct && !json_is_null(ct) && !json_is_string(ct))
        return dp_fail(err, "%s: chat_template: expected a string or a list of {\"name\", "
                            "\"template\"}, got %s", cfg_file, json_kind(ct));
    if (json_is_string(ct)) {
        if (!(t->chat_template = dupn(json_string_value(ct), json_string_length(ct), err))) return -1;
        t->chat_template_source = "tokenizer_config.json";
    }
    return 0;
}

static int resolve(tokenizer *t, const char *dir, json_t *cfg, json_t *map, json_t *gen,
                   json_t *mc, dp_err *err) {
    char f1[4200], f2[4200];
    const char *cfg_file = beside(f1, sizeof f1, dir, "tokenizer_config.json");
    int32_t pp_ids[2] = {t->bos_id, t->eos_id};
    for (int k = 0; k < TOK_N_SPECIAL; k++) {
        const char *s;
        size_t n;
        if (token_value(cfg_file, special_names[k], cfg ? json_object_get(cfg, special_names[k]) : NULL,
                        &s, &n, err))
            return -1;
        if (s) {
            if (set_special(t, k, s, n, "tokenizer_config.json", err)) return -1;
            continue;
        }
        if (map && !(cfg && json_object_get(cfg, "added_tokens_decoder"))) {
            if (token_value(beside(f2, sizeof f2, dir, "special_tokens_map.json"), special_names[k],
                            json_object_get(map, special_names[k]), &s, &n, err))
                return -1;
            if (s) {
                if (set_special(t, k, s, n, "special_tokens_map.json", err)) return -1;
                continue;
            }
        }
        if (k > SP_PAD) continue;
        char key[32];
        snprintf(key, sizeof key, "%s_id", special_names[k]);
        int32_t id = -1;
        const char *src = NULL;
        if (k != SP_UNK) {
            int got = id_list(beside(f2, sizeof f2, dir, "generation_config.json"), gen, key,
                              t->vocab_size, &id, 1, err);
            if (got < 0) return -1;
            src = "generation_config.json";
            if (!got) {
                if ((got = id_list(beside(f2, sizeof f2, dir, "config.json"), mc, key, t->vocab_size,
                                   &id, 1, err)) < 0)
                    return -1;
                src = "config.json";
            }
            if (!got) id = -1;
        }
        size_t len;
        const char *str = id >= 0 ? tok_id_str(t, id, &len) : NULL;
        if (str) {
            if (set_special(t, k, str, len, src, err)) return -1;
            continue;
        }
        const char *cls = cfg ? json_string_value(json_object_get(cfg, "tokenizer_class")) : NULL;
        const char *type = mc ? json_string_value(json_object_get(mc, "model_type")) : NULL;
        int gpt2 = cls ? !strncmp(cls, "GPT2Tokenizer", 13) : type && !strcmp(type, "gpt2");
        if (gpt2 && k != SP_PAD) {
            if (set_special(t, k, "<|endoftext|>", 13, "GPT2Tokenizer default", err)) return -1;
            continue;
        }
        if ((k == SP_BOS || k == SP_EOS) && pp_ids[k] >= 0 && (str = tok_id_str(t, pp_ids[k], &len)) &&
            set_special(t, k, str, len, "tokenizer.json post_processor", err))
            return -1;
    }
    /* BOS/EOS ids: the resolved token strings' (a string outside the
     * vocabulary leaves the post-processor's id, as before). */
    for (int k = 0; k < 2; k++) {
        int32_t id = t->special[k] ? tok_token_id(t, t->special[k], strlen(t->special[k])) : -1;
        if (id >= 0) *(k == SP_BOS ? &t->bos_id : &t->eos_id) = id;
    }
    /* Stop ids. */
    int32_t ids[64];
    int n = id_list(beside(f2, sizeof f2, dir, "generation_config.json"), gen, "eos_token_id",
                    t->vocab_size, ids, 64, err);
    if (n < 0) return -1;
    if (n == 0 && (n = id_list(beside(f2, sizeof f2, dir, "config.json"), mc, "eos_token_id",
                               t->vocab_size, ids, 64, err)) < 0)
        return -1;
    if (n == 0 && t->eos_id >= 0) ids[n++] = t->eos_id;
    if (n) {
        if (!(t->stop_ids = dp_malloc((size_t)n * sizeof *ids, err))) return -1;
        memcpy(t->stop_ids, ids, (size_t)n * sizeof *ids);
        t->n_stop = (size_t)n;
    }
    /* add_bos_token / add_eos_token: the config decides (as
     * LlamaTokenizerFast/GemmaTokenizerFast rebuild the post-processor). */
    json_t *ab = cfg ? json_object_get(cfg, "add_bos_token") : NULL;
    json_t *ae = cfg ? json_object_get(cfg, "add_eos_token") : NULL;
    if ((ab && !json_is_boolean(ab) && !json_is_null(ab)) || (ae && !json_is_boolean(ae) && !json_is_null(ae)))
        return dp_fail(err, "%s: %s: expected true or false, got %s", cfg_file,
                       ab && !json_is_boolean(ab) && !json_is_null(ab) ? "add_bos_token" : "add_eos_token",
                       json_kind(ab && !json_is_boolean(ab) && !json_is_null(ab) ? ab : ae));
    if (json_is_boolean(ab) || json_is_boolean(ae)) {
        free(t->prefix_ids), free(t->suffix_ids);
        t->prefix_ids = t->suffix_ids = NULL;
        t->n_prefix = t->n_suffix = 0;
        if (json_is_true(ab) && t->bos_id >= 0) {
            if (!(t->prefix_ids = dp_malloc(sizeof *t->prefix_ids, err))) return -1;
            t->prefix_ids[t->n_prefix++] = t->bos_id;
        }
        if (json_is_true(ae) && t->eos_id >= 0) {
            if (!(t->suffix_ids = dp_malloc(sizeof *t->suffix_ids, err))) return -1;
            t->suffix_ids[t->n_suffix++] = t->eos_id;
        }
    }
    return load_template(t, beside(f2, sizeof f2, dir, "chat_template.jinja"), cfg, cfg_file, err);
}

int tok_load_special(tokenizer *t, const char *path, dp_err *err) {
    const char *slash = strrchr(path, '/');
    size_t dl = slash ? (size_t)(slash - path + 1) : 0;
    if (dl > 4000) return dp_fail(err, "%.60s...: path too long", path);
    char dir[4096], f[4200];
    memcpy(dir, path, dl);
    dir[dl] = '\0';
    json_t *cfg = NULL, *map = NULL, *gen = NULL, *mc = NULL;
    int rc = load_json(beside(f, sizeof f, dir, "tokenizer_config.json"), &cfg, err) ||
             load_json(beside(f, sizeof f, dir, "special_tokens_map.json"), &map, err) ||
             load_json(beside(f, sizeof f, dir, "generation_config.json"), &gen, err) ||
             load_json(beside(f, sizeof f, dir, "config.json"), &mc, err) ||
             resolve(t, dir, cfg, map, gen, mc, err);
    json_decref(cfg);
    json_decref(map);
    json_decref(gen);
    json_decref(mc);
    return rc ? -1 : 0;
}
