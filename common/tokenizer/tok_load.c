/* tok_load — reads tokenizer.json (through tok_json, the fast parser) and
 * into a struct tokenizer: the BPE model, added tokens and their tries,
 * normalizer, pre-tokenizer, decoder and the post-processor's BOS/EOS; the
 * files beside it (special tokens, chat template) are tok_special.c's.
 * Errors name the file and the JSON path. */
#include <assert.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tok_internal.h"


typedef struct loader {
    const char *file;
    const tj_doc *d;
    dp_err *err;
} loader;

#define GET(o, key) tj_get(L->d, (o), (key))
#define IS_STR(n) ((n) && (n)->type == TJ_STR)
#define IS_ARR(n) ((n) && (n)->type == TJ_ARR)
#define IS_OBJ(n) ((n) && (n)->type == TJ_OBJ)
#define IS_NULL(n) (!(n) || (n)->type == TJ_NULL)
#define STR(n) TJ_STR_OF(L->d, (n))
#define EACH(c, parent) for (const tj_node *c = tj_first(L->d, (parent)); c; c = tj_next(L->d, (parent), c))

/* "FILE: PATH: message"; PATH is the JSON path at fault. */
static int jfail(loader *L, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int jfail(loader *L, const char *path, const char *fmt, ...) {
    char what[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return dp_fail(L->err, "%s: %s: %s", L->file, path, what);
}

/* What node N holds, for "got ...": a string quoted, a number as written,
 * else its kind ("an object", "nothing"). */
static const char *got(loader *L, const tj_node *n, char buf[DP_QUOTE_CAP]) {
    if (n && n->type == TJ_STR) return dp_quote(buf, STR(n), n->len);
    if (n && n->type == TJ_NUM) {
        /* number text holds only [-+.0-9eE] (tok_json) */
        snprintf(buf, DP_QUOTE_CAP, "%.*s%s", (int)(n->len > 40 ? 40 : n->len), STR(n),
                 n->len > 40 ? "..." : "");
        return buf;
    }
    return tj_type_name(n);
}

/* Optional boolean member; default when absent or null. */
static int jbool(loader *L, const tj_node *o, const char *key, int def, const char *path, int *out) {
    const tj_node *v = GET(o, key);
    if (IS_NULL(v)) return *out = def, 0;
    if (v->type != TJ_TRUE && v->type != TJ_FALSE) {
        char p[512];
        snprintf(p, sizeof p, "%s.%s", path, key);
        return jfail(L, p, "expected a boolean, got %s", tj_type_name(v));
    }
    *out = v->type == TJ_TRUE;
    return 0;
}

/* Required (or optional when DEF_NULL) string member. */
static int jstr(loader *L, const tj_node *o, const char *key, const char *path, int optional,
                const char **s, size_t *n) {
    const tj_node *v = GET(o, key);
    if (IS_NULL(v) && optional) return *s = NULL, *n = 0, 0;
    if (!IS_STR(v)) {
        char p[512];
        snprintf(p, sizeof p, "%s.%s", path, key);
        return jfail(L, p, "expected a string, got %s", v ? tj_type_name(v) : "nothing");
    }
    *s = STR(v);
    *n = v->len;
    return 0;
}

static char *dupn(const char *s, size_t n, dp_err *err) {
    char *d = dp_malloc(n + 1, err);
    if (d) memcpy(d, s, n), d[n] = '\0';
    return d;
}

/* pattern: {"String": s} or {"Regex": r}. */
static int load_pattern(loader *L, const tj_node *o, const char *path, tok_pattern *p) {
    char pp[512];
    snprintf(pp, sizeof pp, "%s.pattern", path);
    const tj_node *pat = GET(o, "pattern");
    const tj_node *s = GET(pat, "String"), *r = GET(pat, "Regex");
    const tj_node *v = s ? s : r;
    char q[DP_QUOTE_CAP];
    if (!IS_STR(v))
        return jfail(L, pp, "expected {\"String\": ...} or {\"Regex\": ...}, got %s",
                     got(L, v ? v : pat, q));
    if (tok_pattern_compile(p, STR(v), v->len, s != NULL, L->err))
        return dp_context(L->err, "%s: %s", L->file, pp);
    return 0;
}

static int load_norm(loader *L, const tj_node *o, const char *path, tok_norm *nm) {
    char q[DP_QUOTE_CAP];
    const char *type;
    size_t tl;
    if (!IS_OBJ(o)) return jfail(L, path, "expected an object, got %s", tj_type_name(o));
    if (jstr(L, o, "type", path, 0, &type, &tl)) return -1;
    if (!strcmp(type, "NFC")) nm->type = TOK_NORM_NFC;
    else if (!strcmp(type, "NFD")) nm->type = TOK_NORM_NFD;
    else if (!strcmp(type, "NFKC")) nm->type = TOK_NORM_NFKC;
    else if (!strcmp(type, "NFKD")) nm->type = TOK_NORM_NFKD;
    else if (!strcmp(type, "Prepend") || !strcmp(type, "Replace")) {
        const char *s;
        size_t n;
        int prep = type[0] == 'P';
        nm->type = prep ? TOK_NORM_PREPEND : TOK_NORM_REPLACE;
        if (jstr(L, o, prep ? "prepend" : "content", path, 0, &s, &n)) return -1;
        if (!(nm->str = dupn(s, n, L->err))) return -1;
        nm->str_len = n;
        if (!prep && load_pattern(L, o, path, &nm->pat)) return -1;
    } else if (!strcmp(type, "Strip")) {
        nm->type = TOK_NORM_STRIP;
        if (jbool(L, o, "strip_left", 1, path, &nm->strip_left) ||
            jbool(L, o, "strip_right", 1, path, &nm->strip_right))
            return -1;
    } else if (!strcmp(type, "Sequence")) {
        nm->type = TOK_NORM_SEQUENCE;
        const tj_node *a = GET(o, "normalizers");
        if (!IS_ARR(a)) return jfail(L, path, "Sequence: expected \"normalizers\": [...], got %s", got(L, a, q));
        nm->n_sub = a->count;
        if (!(nm->sub = dp_calloc(nm->n_sub, sizeof *nm->sub, L->err))) return nm->n_sub = 0, -1;
        size_t i = 0;
        EACH(c, a) {
            char p[512];
            snprintf(p, sizeof p, "%s.normalizers[%zu]", path, i);
            if (load_norm(L, c, p, &nm->sub[i++])) return -1;
        }
    } else
        return jfail(L, path, "unsupported normalizer type %s", dp_quote(q, type, tl));
    return 0;
}

/* The GPT-2 pre-tokenization regex (ByteLevel with use_regex). */
static const char gpt2_regex[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static int load_prepend_scheme(loader *L, const tj_node *o, const char *path, int *scheme) {
    char q[DP_QUOTE_CAP];
    const tj_node *ps = GET(o, "prepend_scheme");
    if (IS_STR(ps)) {
        const char *s = STR(ps);
        if (!strcmp(s, "always")) *scheme = TOK_PREPEND_ALWAYS;
        else if (!strcmp(s, "first")) *scheme = TOK_PREPEND_FIRST;
        else if (!strcmp(s, "never")) *scheme = TOK_PREPEND_NEVER;
        else return jfail(L, path, "prepend_scheme: expected always, first or never, got %s", got(L, ps, q));
        return 0;
    }
    int add;
    if (jbool(L, o, "add_prefix_space", 1, path, &add)) return -1;
    *scheme = add ? TOK_PREPEND_ALWAYS : TOK_PREPEND_NEVER;
    return 0;
}

static int load_replacement(loader *L, const tj_node *o, const char *path, char *repl, size_t *rl) {
    const char *s;
    size_t n;
    if (jstr(L, o, "replacement", path, 1, &s, &n)) return -1;
    if (!s) s = "\xE2\x96\x81", n = 3;
    char q[DP_QUOTE_CAP];
    if (n == 0 || n > 4 || utf8_valid_len((const unsigned char *)s, n) != (int)n)
        return jfail(L, path, "replacement: expected one character, got %s", dp_quote(q, s, n));
    memcpy(repl, s, n);
    repl[n] = '\0';
    *rl = n;
    return 0;
}

static int load_pre(loader *L, const tj_node *o, const char *path, tok_pre *pt) {
    char q[DP_QUOTE_CAP];
    const char *type;
    size_t tl;
    if (!IS_OBJ(o)) return jfail(L, path, "expected an object, got %s", tj_type_name(o));
    if (jstr(L, o, "type", path, 0, &type, &tl)) return -1;
    if (!strcmp(type, "ByteLevel")) {
        pt->type = TOK_PRE_BYTELEVEL;
        if (jbool(L, o, "add_prefix_space", 1, path, &pt->add_prefix_space) ||
            jbool(L, o, "use_regex", 1, path, &pt->use_regex))
            return -1;
        if (pt->use_regex && tok_pattern_compile(&pt->pat, gpt2_regex, sizeof gpt2_regex - 1, 0, L->err))
            return -1;
    } else if (!strcmp(type, "Split")) {
        const char *b;
        size_t bl;
        pt->type = TOK_PRE_SPLIT;
        if (load_pattern(L, o, path, &pt->pat) || jstr(L, o, "behavior", path, 0, &b, &bl) ||
            jbool(L, o, "invert", 0, path, &pt->invert))
            return -1;
        if (!strcmp(b, "Removed")) pt->behavior = TOK_SPLIT_REMOVED;
        else if (!strcmp(b, "Isolated")) pt->behavior = TOK_SPLIT_ISOLATED;
        else if (!strcmp(b, "MergedWithPrevious")) pt->behavior = TOK_SPLIT_MERGED_PREV;
        else if (!strcmp(b, "MergedWithNext")) pt->behavior = TOK_SPLIT_MERGED_NEXT;
        else if (!strcmp(b, "Contiguous")) pt->behavior = TOK_SPLIT_CONTIGUOUS;
        else return jfail(L, path, "behavior: unsupported value %s", dp_quote(q, b, bl));
    } else if (!strcmp(type, "Digits")) {
        int indiv;
        pt->type = TOK_PRE_DIGITS;
        if (jbool(L, o, "individual_digits", 0, path, &indiv)) return -1;
        pt->behavior = indiv ? TOK_SPLIT_ISOLATED : TOK_SPLIT_CONTIGUOUS;
        if (tok_pattern_compile(&pt->pat, "\\p{N}", 5, 0, L->err)) return -1;
    } else if (!strcmp(type, "Metaspace")) {
        pt->type = TOK_PRE_METASPACE;
        if (load_replacement(L, o, path, pt->repl, &pt->repl_len) ||
            load_prepend_scheme(L, o, path, &pt->prepend_scheme) ||
            jbool(L, o, "split", 1, path, &pt->split))
            return -1;
        if (tok_pattern_compile(&pt->pat, pt->repl, pt->repl_len, 1, L->err)) return -1;
    } else if (!strcmp(type, "Whitespace") || !strcmp(type, "WhitespaceSplit")) {
        /* Whitespace keeps \w+|[^\w\s]+; WhitespaceSplit removes whitespace. */
        int ws = type[10] == 'S';
        pt->type = TOK_PRE_SPLIT;
        pt->behavior = TOK_SPLIT_REMOVED;
        pt->invert = !ws;
        const char *re = ws ? "\\s+" : "\\w+|[^\\w\\s]+";
        if (tok_pattern_compile(&pt->pat, re, strlen(re), 0, L->err)) return -1;
    } else if (!strcmp(type, "Sequence")) {
        pt->type = TOK_PRE_SEQUENCE;
        const tj_node *a = GET(o, "pretokenizers");
        if (!IS_ARR(a)) return jfail(L, path, "Sequence: expected \"pretokenizers\": [...], got %s", got(L, a, q));
        pt->n_sub = a->count;
        if (!(pt->sub = dp_calloc(pt->n_sub, sizeof *pt->sub, L->err))) return pt->n_sub = 0, -1;
        size_t i = 0;
        EACH(c, a) {
            char p[512];
            snprintf(p, sizeof p, "%s.pretokenizers[%zu]", path, i);
            if (load_pre(L, c, p, &pt->sub[i++])) return -1;
        }
    } else
        return jfail(L, path, "unsupported pre-tokenizer type %s", dp_quote(q, type, tl));
    return 0;
}

static int load_dec(loader *L, const tj_node *o, const char *path, tok_dec *d) {
    char q[DP_QUOTE_CAP];
    const char *type;
    size_t tl;
    if (!IS_OBJ(o)) return jfail(L, path, "expected an object, got %s", tj_type_name(o));
    if (jstr(L, o, "type", path, 0, &type, &tl)) return -1;
    if (!strcmp(type, "ByteLevel")) d->type = TOK_DEC_BYTELEVEL;
    else if (!strcmp(type, "Metaspace")) {
        d->type = TOK_DEC_METASPACE;
        if (load_replacement(L, o, path, d->repl, &d->repl_len) ||
            load_prepend_scheme(L, o, path, &d->prepend_scheme))
            return -1;
    } else if (!strcmp(type, "Replace")) {
        const char *s;
        size_t n;
        d->type = TOK_DEC_REPLACE;
        if (jstr(L, o, "content", path, 0, &s, &n) || load_pattern(L, o, path, &d->pat)) return -1;
        if (!(d->str = dupn(s, n, L->err))) return -1;
        d->str_len = n;
    } else if (!strcmp(type, "ByteFallback")) d->type = TOK_DEC_BYTEFALLBACK;
    else if (!strcmp(type, "Fuse")) d->type = TOK_DEC_FUSE;
    else if (!strcmp(type, "Strip")) {
        const char *s;
        size_t n;
        d->type = TOK_DEC_STRIP;
        if (jstr(L, o, "content", path, 0, &s, &n)) return -1;
        if (!(d->str = dupn(s, n, L->err))) return -1;
        d->str_len = n;
        long long a, b;
        if (tj_int(L->d, GET(o, "start"), &a) || tj_int(L->d, GET(o, "stop"), &b) || a < 0 || b < 0 ||
            a > INT_MAX || b > INT_MAX) {
            char q2[DP_QUOTE_CAP];
            return jfail(L, path, "Strip: expected integers \"start\" and \"stop\" >= 0, got %s and %s",
                         got(L, GET(o, "start"), q), got(L, GET(o, "stop"), q2));
        }
        d->start = (int)a;
        d->stop = (int)b;
    } else if (!strcmp(type, "Sequence")) {
        d->type = TOK_DEC_SEQUENCE;
        const tj_node *a = GET(o, "decoders");
        if (!IS_ARR(a)) return jfail(L, path, "Sequence: expected \"decoders\": [...], got %s", got(L, a, q));
        d->n_sub = a->count;
        if (!(d->sub = dp_calloc(d->n_sub, sizeof *d->sub, L->err))) return d->n_sub = 0, -1;
        size_t i = 0;
        EACH(c, a) {
            char p[512];
            snprintf(p, sizeof p, "%s.decoders[%zu]", path, i);
            if (load_dec(L, c, p, &d->sub[i++])) return -1;
        }
    } else
        return jfail(L, path, "unsupported decoder type %s", dp_quote(q, type, tl));
    return 0;
}

static int append_ids(int32_t **a, size_t *n, const int32_t *src, size_t k, dp_err *err) {
    int32_t *p = realloc(*a, (*n + k + 1) * sizeof *p);
    if (!p) return dp_fail(err, "out of memory");
    if (k) memcpy(p + *n, src, k * sizeof *p);
    *a = p;
    *n += k;
    return 0;
}

/* Ids index arrays sized by the largest one; real vocabularies stay far below. */
#define TOK_MAX_ID (1 << 24)

static int node_id(loader *L, const tj_node *n, int32_t *id) {
    long long v;
    if (tj_int(L->d, n, &v) || v < 0 || v >= TOK_MAX_ID) return -1;
    *id = (int32_t)v;
    return 0;
}

/* A post-processor's token id: an integer naming a token of the vocabulary
 * (t->vocab_size, set from the model and the added tokens). */
static int post_id(loader *L, const tokenizer *t, const tj_node *n, const char *path, int32_t *id) {
    char q[DP_QUOTE_CAP];
    if (node_id(L, n, id))
        return jfail(L, path, "expected a token id (an integer in [0, 2^24)), got %s", got(L, n, q));
    if (*id >= t->vocab_size)
        return jfail(L, path, "token id %d is outside the vocabulary (%d tokens)", (int)*id,
                     (int)t->vocab_size);
    return 0;
}

/* Post-processor → the ids around a single sequence. Nested processors
 * (Sequence) wrap each other in order. */
static int load_post(loader *L, tokenizer *t, const tj_node *o, const char *path) {
    char q[DP_QUOTE_CAP];
    const char *type;
    size_t tl;
    if (!IS_OBJ(o)) return jfail(L, path, "expected an object, got %s", tj_type_name(o));
    if (jstr(L, o, "type", path, 0, &type, &tl)) return -1;
    if (!strcmp(type, "ByteLevel")) return 0;
    if (!strcmp(type, "Sequence")) {
        const tj_node *a = GET(o, "processors");
        if (!IS_ARR(a)) return jfail(L, path, "Sequence: expected \"processors\": [...], got %s", got(L, a, q));
        size_t i = 0;
        EACH(c, a) {
            char p[512];
            snprintf(p, sizeof p, "%s.processors[%zu]", path, i++);
            if (load_post(L, t, c, p)) return -1;
        }
        return 0;
    }
    int32_t *pre = NULL, *suf = NULL;
    size_t npre = 0, nsuf = 0;
    if (!strcmp(type, "TemplateProcessing")) {
        const tj_node *single = GET(o, "single"), *special = GET(o, "special_tokens");
        if (!IS_ARR(single)) return jfail(L, path, "single: expected an array, got %s", got(L, single, q));
        int seen_a = 0;
        size_t i = 0;
        EACH(it, single) {
            char p[512];
            snprintf(p, sizeof p, "%s.single[%zu]", path, i++);
            if (GET(it, "Sequence")) {
                seen_a = 1;
                continue;
            }
            const tj_node *name = GET(GET(it, "SpecialToken"), "id");
            if (!IS_STR(name)) {
                free(pre), free(suf);
                return jfail(L, p, "expected {\"Sequence\": ...} or {\"SpecialToken\": {\"id\": ...}}, "
                             "got %s", got(L, it, q));
            }
            const tj_node *ids = GET(GET(special, STR(name)), "ids");
            if (!IS_ARR(ids)) {
                free(pre), free(suf);
                return jfail(L, p, "SpecialToken %s is not in special_tokens (with an \"ids\" array)",
                             got(L, name, q));
            }
            size_t k = 0;
            EACH(e, ids) {
                int32_t id;
                char pi[512];
                snprintf(pi, sizeof pi, "%s.special_tokens.%s.ids[%zu]", path, got(L, name, q), k++);
                if (post_id(L, t, e, pi, &id)) return free(pre), free(suf), -1;
                if (append_ids(seen_a ? &suf : &pre, seen_a ? &nsuf : &npre, &id, 1, L->err))
                    return free(pre), free(suf), -1;
            }
        }
    } else if (!strcmp(type, "RobertaProcessing") || !strcmp(type, "BertProcessing")) {
        int32_t c, s;
        char pc[512], ps[512];
        snprintf(pc, sizeof pc, "%s.cls[1]", path);
        snprintf(ps, sizeof ps, "%s.sep[1]", path);
        if (post_id(L, t, tj_at(L->d, GET(o, "cls"), 1), pc, &c) ||
            post_id(L, t, tj_at(L->d, GET(o, "sep"), 1), ps, &s))
            return -1;
        if (append_ids(&pre, &npre, &c, 1, L->err) || append_ids(&suf, &nsuf, &s, 1, L->err))
            return free(pre), free(suf), -1;
    } else
        return jfail(L, path, "unsupported post-processor type %s", dp_quote(q, type, tl));
    /* Wrap: new prefix = pre + old prefix; new suffix = old suffix + suf. */
    int rc = append_ids(&pre, &npre, t->prefix_ids, t->n_prefix, L->err) ||
             append_ids(&t->suffix_ids, &t->n_suffix, suf, nsuf, L->err);
    free(suf);
    if (rc) return free(pre), -1;
    free(t->prefix_ids);
    t->prefix_ids = pre;
    t->n_prefix = npre;
    return 0;
}

static int load_model(loader *L, tokenizer *t, const tj_node *m) {
    tok_bpe *b = &t->bpe;
    const char *type, *s;
    size_t tl, n;
    if (!IS_OBJ(m)) return jfail(L, "model", "expected an object, got %s", tj_type_name(m));
    if (jstr(L, m, "type", "model", 1, &type, &tl)) return -1;
    char q[DP_QUOTE_CAP];
    if (type && strcmp(type, "BPE")) return jfail(L, "model.type", "expected \"BPE\", got %s", dp_quote(q, type, tl));
    const tj_node *vocab = GET(m, "vocab"), *merges = GET(m, "merges");
    if (!IS_OBJ(vocab)) return jfail(L, "model.vocab", "expected an object, got %s", tj_type_name(vocab));
    if (!IS_ARR(merges)) return jfail(L, "model.merges", "expected an array, got %s", tj_type_name(merges));
    const tj_node *dropout = GET(m, "dropout");
    if (dropout && dropout->type == TJ_NUM && tj_num(L->d, dropout) > 0)
        return jfail(L, "model.dropout", "BPE dropout is not supported (expected null)");
    int32_t max_id = -1;
    EACH(v, vocab) {
        int32_t id;
        if (node_id(L, v, &id)) {
            char p[512];
            snprintf(p, sizeof p, "model.vocab.%s", dp_quote(q, TJ_KEY_OF(L->d, v), v->key_len));
            return jfail(L, p, "expected a token id (an integer in [0, 2^24)), got %s", got(L, v, q));
        }
        if (id > max_id) max_id = id;
    }
    b->n = max_id + 1;
    b->str = dp_calloc((size_t)b->n, sizeof *b->str, L->err);
    b->str_len = dp_calloc((size_t)b->n, sizeof *b->str_len, L->err);
    if (!b->str || !b->str_len || tok_strmap_reserve(&b->vocab, vocab->count, L->err) ||
        tok_bpe_reserve_merges(b, merges->count, L->err))
        return -1;
    EACH(v, vocab) {
        int32_t id = 0;
        node_id(L, v, &id);
        if (b->str[id]) continue; /* two strings for one id: the first keeps it */
        if (!(b->str[id] = dupn(TJ_KEY_OF(L->d, v), v->key_len, L->err))) return -1;
        b->str_len[id] = v->key_len;
        if (tok_strmap_put(&b->vocab, b->str[id], v->key_len, id, L->err)) return -1;
    }
    int fb;
    if (jbool(L, m, "fuse_unk", 0, "model", &b->fuse_unk) ||
        jbool(L, m, "byte_fallback", 0, "model", &fb) ||
        jbool(L, m, "ignore_merges", 0, "model", &b->ignore_merges))
        return -1;
    b->byte_fallback = fb;
    b->unk_id = -1;
    if (jstr(L, m, "unk_token", "model", 1, &s, &n)) return -1;
    if (s) b->unk_id = tok_strmap_get(&b->vocab, s, n);
    if (jstr(L, m, "continuing_subword_prefix", "model", 1, &s, &n)) return -1;
    if (s && n && !(b->prefix = dupn(s, n, L->err))) return -1;
    if (jstr(L, m, "end_of_word_suffix", "model", 1, &s, &n)) return -1;
    if (s && n && !(b->suffix = dupn(s, n, L->err))) return -1;
    for (int i = 0; i < 256; i++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", i);
        b->byte_id[i] = tok_strmap_get(&b->vocab, name, 6);
    }
    int32_t rank = 0;
    EACH(e, merges) {
        const char *l = NULL, *r = NULL;
        size_t ll = 0, rl = 0;
        if (IS_STR(e)) {
            const char *str = STR(e), *sp = memchr(str, ' ', e->len);
            if (sp && !memchr(sp + 1, ' ', e->len - (size_t)(sp + 1 - str)))
                l = str, ll = (size_t)(sp - str), r = sp + 1, rl = e->len - ll - 1;
        } else if (IS_ARR(e) && e->count == 2) {
            const tj_node *a = tj_first(L->d, e), *c = tj_next(L->d, e, a);
            if (IS_STR(a) && IS_STR(c)) l = STR(a), ll = a->len, r = STR(c), rl = c->len;
        }
        if (!l || tok_bpe_add_merge(b, l, ll, r, rl, rank, L->err)) {
            char p[64];
            snprintf(p, sizeof p, "model.merges[%d]", (int)rank);
            if (!l) return jfail(L, p, "expected \"a b\" or [\"a\", \"b\"], got %s", got(L, e, q));
            return dp_context(L->err, "%s: %s", L->file, p);
        }
        rank++;
    }
    return 0;
}

static int load_added(loader *L, tokenizer *t, const tj_node *a) {
    if (IS_NULL(a)) return 0;
    if (!IS_ARR(a)) return jfail(L, "added_tokens", "expected an array, got %s", tj_type_name(a));
    t->n_added = a->count;
    if (!(t->added = dp_calloc(t->n_added, sizeof *t->added, L->err))) return t->n_added = 0, -1;
    size_t i = 0;
    EACH(o, a) {
        tok_added *ad = &t->added[i];
        char p[64];
        const char *s;
        size_t n;
        int32_t id;
        int sp, nz, ls, rs, sw;
        snprintf(p, sizeof p, "added_tokens[%zu]", i++);
        if (!IS_OBJ(o)) return jfail(L, p, "expected an object, got %s", tj_type_name(o));
        if (node_id(L, GET(o, "id"), &id)) {
            char q[DP_QUOTE_CAP], pid[80];
            snprintf(pid, sizeof pid, "%s.id", p);
            return jfail(L, pid, "expected a token id (an integer in [0, 2^24)), got %s",
                         got(L, GET(o, "id"), q));
        }
        if (jstr(L, o, "content", p, 0, &s, &n) || jbool(L, o, "special", 0, p, &sp) ||
            jbool(L, o, "normalized", !sp, p, &nz) || jbool(L, o, "lstrip", 0, p, &ls) ||
            jbool(L, o, "rstrip", 0, p, &rs) || jbool(L, o, "single_word", 0, p, &sw))
            return -1;
        if (!(ad->content = dupn(s, n, L->err))) return -1;
        *ad = (tok_added){ad->content, n, id, (uint8_t)sp, (uint8_t)nz, (uint8_t)ls, (uint8_t)rs, (uint8_t)sw};
    }
    /* Special tokens first, then the others, as Hugging Face orders its tries. */
    for (int pass = 1; pass >= 0; pass--)
        for (i = 0; i < t->n_added; i++) {
            tok_added *ad = &t->added[i];
            if (ad->special != pass || !ad->len) continue;
            if (!ad->normalized) {
                if (tok_trie_add(&t->trie_raw, ad->content, ad->len, (int32_t)i, L->err)) return -1;
                continue;
            }
            char *nc = NULL;
            size_t ncl = ad->len;
            tok_matcher m;
            if (tok_matcher_init(&m, L->err)) return -1;
            int rc = t->has_norm ? tok_normalize(&t->norm, &m, ad->content, ad->len, &nc, &ncl, L->err) : 0;
            tok_matcher_free(&m);
            if (rc) return -1;
            rc = tok_trie_add(&t->trie_norm, nc ? nc : ad->content, ncl, (int32_t)i, L->err);
            free(nc);
            if (rc) return -1;
        }
    return 0;
}

int tok_load(tokenizer **out, const char *path, dp_err *err) {
    *out = NULL;
    tok_bytelevel_init();
    struct stat st;
    if (!stat(path, &st) && S_ISDIR(st.st_mode)) {
        /* A model directory: its tokenizer.json. */
        size_t n = strlen(path);
        char *file = dp_malloc(n + 32, err);
        if (!file) return -1;
        snprintf(file, n + 32, "%s%stokenizer.json", path, n && path[n - 1] == '/' ? "" : "/");
        int rc = tok_load(out, file, err);
        free(file);
        return rc;
    }
    tj_doc doc;
    if (tj_parse_file(&doc, path, err)) return -1;
    const tj_node *root = doc.nodes, *v;
    if (!IS_OBJ(root)) {
        tj_free(&doc);
        return dp_fail(err, "%s: expected a JSON object (a tokenizer.json)", path);
    }
    tokenizer *t = dp_calloc(1, sizeof *t, err);
    if (!t) return tj_free(&doc), -1;
    t->bos_id = t->eos_id = -1;
    loader Lv = {path, &doc, err}, *L = &Lv;
    int rc = !(t->path = dupn(path, strlen(path), err));
    if (!rc) rc = load_model(L, t, GET(root, "model"));
    if (!rc && !IS_NULL(v = GET(root, "normalizer"))) {
        t->has_norm = 1;
        rc = load_norm(L, v, "normalizer", &t->norm);
    }
    if (!rc && !IS_NULL(v = GET(root, "pre_tokenizer"))) {
        t->has_pre = 1;
        rc = load_pre(L, v, "pre_tokenizer", &t->pre);
    }
    if (!rc && !IS_NULL(v = GET(root, "decoder"))) {
        t->has_dec = 1;
        rc = load_dec(L, v, "decoder", &t->dec);
    }
    if (!rc) rc = load_added(L, t, GET(root, "added_tokens"));
    if (!rc) {
        t->vocab_size = t->bpe.n;
        for (size_t i = 0; i < t->n_added; i++)
            if (t->added[i].id + 1 > t->vocab_size) t->vocab_size = t->added[i].id + 1;
    }
    if (!rc && !IS_NULL(v = GET(root, "post_processor"))) rc = load_post(L, t, v, "post_processor");
    tj_free(&doc);
    if (!rc) {
        /* Without a config, BOS/EOS are the template's single tokens. */
        if (t->n_prefix == 1) t->bos_id = t->prefix_ids[0];
        if (t->n_suffix == 1) t->eos_id = t->suffix_ids[0];
    }
    if (rc) return tok_free(t), -1;
    t->id_str = dp_calloc((size_t)t->vocab_size, sizeof *t->id_str, err);
    t->id_len = dp_calloc((size_t)t->vocab_size, sizeof *t->id_len, err);
    if (!t->id_str || !t->id_len) return tok_free(t), -1;
    /* Post-processor ids were checked as they were read (post_id). */
    assert(t->bos_id < t->vocab_size && t->eos_id < t->vocab_size);
    for (int32_t i = 0; i < t->bpe.n; i++) t->id_str[i] = t->bpe.str[i], t->id_len[i] = t->bpe.str_len[i];
    for (size_t i = 0; i < t->n_added; i++)
        t->id_str[t->added[i].id] = t->added[i].content, t->id_len[t->added[i].id] = (uint32_t)t->added[i].len;
    if (tok_load_special(t, path, err)) return tok_free(t), -1;
    *out = t;
    return 0;
}
