/* tokenizer — see tokenizer.h. The encode/decode pipelines; the pieces live
 * in tok_load.c (reading tokenizer.json), tok_json.c (its parser),
 * tok_text.c (lists, UTF-8, added-token trie), tok_split.c (normalizers,
 * pre-tokenizers), tok_bpe.c (the model) and tok_decode.c (decoders);
 * tok_internal.h has their shared structures.
 *
 * Encoding follows Hugging Face `tokenizers` (AddedVocabulary::
 * extract_and_normalize, then pre-tokenizer, then the model):
 *   1. added tokens with normalized=false are split out of the raw text,
 *      leftmost-longest, honouring single_word / lstrip / rstrip;
 *   2. each remaining piece is normalized on its own (so Prepend applies to
 *      every piece), then added tokens with normalized=true are split out;
 *   3. the pre-tokenizer splits the pieces; BPE encodes each. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

void tok_free(tokenizer *t) {
    if (!t) return;
    free(t->path);
    tok_bpe_free(&t->bpe);
    for (size_t i = 0; i < t->n_added; i++) free(t->added[i].content);
    free(t->added);
    tok_trie_free(&t->trie_raw);
    tok_trie_free(&t->trie_norm);
    if (t->has_norm) tok_norm_free(&t->norm);
    if (t->has_pre) tok_pre_free(&t->pre);
    if (t->has_dec) tok_dec_free(&t->dec);
    free(t->prefix_ids);
    free(t->suffix_ids);
    free(t->chat_template);
    free(t->chat_template_tool_use);
    for (int k = 0; k < TOK_N_SPECIAL; k++) free(t->special[k]);
    free(t->stop_ids);
    free(t->id_str);
    free(t->id_len);
    free(t);
}

/* ------------------------------------------------------------ encoding */

static int starts_with_word(const char *s, size_t n) {
    int32_t cp;
    return n && (tok_utf8_decode((const unsigned char *)s, n, &cp), tok_is_word(cp));
}

static int ends_with_word(const char *s, size_t n) {
    if (!n) return 0;
    size_t q = n - 1;
    while (q > 0 && ((unsigned char)s[q] & 0xC0) == 0x80) q--;
    int32_t cp;
    tok_utf8_decode((const unsigned char *)s + q, n - q, &cp);
    return tok_is_word(cp);
}

/* AddedVocabulary::find_matches over s[0..n): appends text spans and token
 * spans to OUT (bytes of s copied into OUT). */
static int split_added(const tokenizer *t, const tok_trie *trie, const char *s, size_t n,
                       int at_start, tok_list *out, dp_err *err) {
    size_t start_offset = 0, pos = 0, base = out->len;
    if (tok_list_bytes(out, s, n, err)) return -1;
    while (trie->n_nodes && pos < n) {
        size_t start = pos, mlen = 0;
        int32_t k = -1;
        for (; start < n; start++)
            if ((k = tok_trie_longest(trie, s + start, n - start, &mlen)) >= 0) break;
        if (k < 0) break;
        size_t stop = start + mlen;
        pos = stop;
        const tok_added *ad = &t->added[k];
        if (ad->single_word && ((start > 0 && ends_with_word(s, start)) ||
                                (stop < n && starts_with_word(s + stop, n - stop))))
            continue;
        if (ad->lstrip) {
            size_t ns = start;
            while (ns > 0) {
                size_t q = ns - 1;
                while (q > 0 && ((unsigned char)s[q] & 0xC0) == 0x80) q--;
                int32_t cp;
                tok_utf8_decode((const unsigned char *)s + q, ns - q, &cp);
                if (!tok_is_whitespace(cp)) break;
                ns = q;
            }
            start = ns > start_offset ? ns : start_offset;
        }
        if (ad->rstrip)
            while (stop < n) {
                int32_t cp;
                int l = tok_utf8_decode((const unsigned char *)s + stop, n - stop, &cp);
                if (!tok_is_whitespace(cp)) break;
                stop += (size_t)l;
            }
        if (start_offset < start &&
            tok_list_span(out, base + start_offset, start - start_offset, -1, at_start && start_offset == 0, err))
            return -1;
        if (tok_list_span(out, base + start, stop - start, ad->id, at_start && start == 0, err)) return -1;
        start_offset = stop;
    }
    if (start_offset < n &&
        tok_list_span(out, base + start_offset, n - start_offset, -1, at_start && start_offset == 0, err))
        return -1;
    return 0;
}

static int encode_checked(const tokenizer *t, const char *text, size_t len, int32_t **ids_out,
                          size_t *n_out, dp_err *err) {
    tok_list raw = {0}, normd = {0}, pre = {0};
    tok_matcher m;
    int32_t *ids = NULL;
    size_t nids = 0, cap = 0;
    if (tok_matcher_init(&m, err)) return -1;
    int rc = split_added(t, &t->trie_raw, text, len, 1, &raw, err);
    for (size_t i = 0; i < raw.n && !rc; i++) {
        tok_span sp = raw.sp[i];
        if (sp.id >= 0) {
            rc = tok_list_span(&normd, normd.len, 0, sp.id, sp.at_start, err);
            continue;
        }
        char *ns = NULL;
        size_t nl = sp.len;
        if (t->has_norm && (rc = tok_normalize(&t->norm, &m, raw.buf + sp.off, sp.len, &ns, &nl, err)))
            break;
        if (nl) rc = split_added(t, &t->trie_norm, ns ? ns : raw.buf + sp.off, nl, sp.at_start, &normd, err);
        free(ns);
    }
    const tok_list *pieces = &normd;
    if (!rc && t->has_pre) {
        rc = tok_pretokenize(&t->pre, &m, &normd, &pre, err);
        pieces = &pre;
    }
    for (size_t i = 0; i < pieces->n && !rc; i++) {
        tok_span sp = pieces->sp[i];
        if (sp.id >= 0) {
            if (nids == cap) {
                size_t c = cap ? cap * 2 : 64;
                int32_t *p = realloc(ids, c * sizeof *p);
                if (!p) {
                    rc = dp_fail(err, "out of memory growing the id list to %zu", c);
                    break;
                }
                ids = p, cap = c;
            }
            ids[nids++] = sp.id;
        } else
            rc = tok_bpe_encode(&t->bpe, pieces->buf + sp.off, sp.len, &ids, &nids, &cap, err);
    }
    tok_matcher_free(&m);
    tok_list_free(&raw);
    tok_list_free(&normd);
    tok_list_free(&pre);
    if (rc) return free(ids), -1;
    if (!ids && !(ids = dp_malloc(sizeof *ids, err))) return -1;
    *ids_out = ids;
    *n_out = nids;
    return 0;
}

int tok_encode(const tokenizer *t, const char *text, size_t len, int replace_invalid,
               int32_t **ids, size_t *n, dp_err *err) {
    *ids = NULL;
    *n = 0;
    long bad = tok_utf8_first_invalid(text, len);
    if (bad < 0) return encode_checked(t, text ? text : "", len, ids, n, err);
    if (!replace_invalid)
        return dp_fail(err, "byte offset %ld: invalid UTF-8 (byte 0x%02X)", bad, (unsigned char)text[bad]);
    char *fixed;
    size_t fl;
    if (tok_utf8_replace(text, len, &fixed, &fl, err)) return -1;
    int rc = encode_checked(t, fixed, fl, ids, n, err);
    free(fixed);
    return rc;
}

int tok_encode_special(const tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n,
                       dp_err *err) {
    int32_t *body;
    size_t nb;
    if (tok_encode(t, text, len, 0, &body, &nb, err)) return -1;
    int32_t *all = dp_malloc((t->n_prefix + nb + t->n_suffix + 1) * sizeof *all, err);
    if (!all) return free(body), -1;
    if (t->n_prefix) memcpy(all, t->prefix_ids, t->n_prefix * sizeof *all);
    if (nb) memcpy(all + t->n_prefix, body, nb * sizeof *all);
    if (t->n_suffix) memcpy(all + t->n_prefix + nb, t->suffix_ids, t->n_suffix * sizeof *all);
    free(body);
    *ids = all;
    *n = t->n_prefix + nb + t->n_suffix;
    return 0;
}

/* ------------------------------------------------------------ decoding */

const char *tok_id_str(const tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->vocab_size || !t->id_str[id]) return NULL;
    *len = t->id_len[id];
    return t->id_str[id];
}

int tok_decode(const tokenizer *t, const int32_t *ids, size_t n, char **text, size_t *len,
               dp_err *err) {
    tok_list toks = {0}, out = {0};
    tok_matcher m = {0};
    *text = NULL;
    *len = 0;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        size_t l;
        const char *s = tok_id_str(t, ids[i], &l);
        if (!s) {
            rc = dp_fail(err, "token %zu: id %d is not in the vocabulary (size %d)", i, (int)ids[i],
                         (int)t->vocab_size);
            break;
        }
        rc = tok_list_push(&toks, s, l, -1, 0, err);
    }
    const tok_list *res = &toks;
    if (!rc && t->has_dec) {
        rc = tok_matcher_init(&m, err);
        if (!rc) rc = tok_decode_chain(&t->dec, &m, &toks, &out, err);
        res = &out;
    }
    /* Without a decoder Hugging Face joins the tokens with spaces. */
    tok_list joined = {0};
    for (size_t i = 0; i < res->n && !rc; i++)
        rc = (!t->has_dec && i && tok_list_bytes(&joined, " ", 1, err)) ||
             tok_list_bytes(&joined, res->buf + res->sp[i].off, res->sp[i].len, err);
    if (!rc) rc = tok_list_bytes(&joined, "", 0, err);
    tok_matcher_free(&m);
    tok_list_free(&toks);
    tok_list_free(&out);
    if (rc) return tok_list_free(&joined), -1;
    free(joined.sp);
    *text = joined.buf;
    *len = joined.len;
    return 0;
}

long tok_utf8_first_invalid(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        int l = utf8_valid_len((const unsigned char *)s + i, n - i);
        if (!l) return (long)i;
        i += (size_t)l;
    }
    return -1;
}

int tok_utf8_replace(const char *s, size_t n, char **out, size_t *out_len, dp_err *err) {
    tok_list l = {0};
    if (tok_utf8_lossy(&l, s, n, err) || tok_list_bytes(&l, "", 0, err)) return tok_list_free(&l), -1;
    free(l.sp);
    *out = l.buf;
    *out_len = l.len;
    return 0;
}

int tok_token_id(const tokenizer *t, const char *s, size_t len) {
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].len == len && !memcmp(t->added[i].content, s, len)) return t->added[i].id;
    return tok_strmap_get(&t->bpe.vocab, s, len);
}

const char *tok_token_str(const tokenizer *t, int id, size_t *len) { return tok_id_str(t, id, len); }

int tok_vocab_size(const tokenizer *t) { return t->vocab_size; }
int tok_bos_id(const tokenizer *t) { return t->bos_id; }
int tok_eos_id(const tokenizer *t) { return t->eos_id; }
int tok_adds_bos(const tokenizer *t) { return t->n_prefix > 0 && t->bos_id >= 0 && t->prefix_ids[0] == t->bos_id; }
const char *tok_chat_template(const tokenizer *t) { return t->chat_template; }
