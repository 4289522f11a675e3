/* tok_split — PCRE2 patterns, normalizers and pre-tokenizers, with the
 * semantics of Hugging Face `tokenizers` (NormalizedString::split
 * behaviours, ByteLevel, Metaspace, Digits, Prepend/Replace/NFC...). */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tok_internal.h"

/* ------------------------------------------------------------- patterns */

/* Hugging Face runs Split regexes with Oniguruma. Its Unicode \s is
 * 0009-000D, 0085 and Zs/Zl/Zp (PCRE2's also matches U+180E); its \w is
 * Letter|Mark|Number|Connector_Punctuation (PCRE2 10.42's lacks marks). So
 * \s and \w (anywhere) and \S and \W (outside classes) are spelled out. */
#define WHITE_SPACE_ITEMS "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
#define WORD_ITEMS "\\p{L}\\p{M}\\p{N}\\p{Pc}"

static char *rewrite_classes(const char *src, size_t len, size_t *out_len) {
    size_t cap = len * 8 + 1, k = 0;
    char *out = malloc(cap);
    if (!out) return NULL;
    int in_class = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '\\' && i + 1 < len) {
            char e = src[i + 1];
            const char *rep = NULL;
            if (e == 's') rep = in_class ? WHITE_SPACE_ITEMS : "[" WHITE_SPACE_ITEMS "]";
            else if (e == 'S' && !in_class) rep = "[^" WHITE_SPACE_ITEMS "]";
            else if (e == 'w') rep = in_class ? WORD_ITEMS : "[" WORD_ITEMS "]";
            else if (e == 'W' && !in_class) rep = "[^" WORD_ITEMS "]";
            if (rep) {
                size_t rl = strlen(rep);
                if (k + rl + 2 > cap) {
                    char *o = realloc(out, cap = (k + rl + 2) * 2);
                    if (!o) return free(out), NULL;
                    out = o;
                }
                memcpy(out + k, rep, rl);
                k += rl;
            } else {
                if (k + 3 > cap) {
                    char *o = realloc(out, cap *= 2);
                    if (!o) return free(out), NULL;
                    out = o;
                }
                out[k++] = c;
                out[k++] = e;
            }
            i++;
            continue;
        }
        if (!in_class && c == '[') {
            in_class = 1;
            if (k + 4 > cap) {
                char *o = realloc(out, cap *= 2);
                if (!o) return free(out), NULL;
                out = o;
            }
            out[k++] = c;
            /* "[^]" / "[]": a ']' right after the opening is literal. */
            if (i + 1 < len && src[i + 1] == '^') out[k++] = src[++i];
            if (i + 1 < len && src[i + 1] == ']') out[k++] = src[++i];
            continue;
        }
        if (in_class && c == '[' && i + 1 < len && src[i + 1] == ':') {
            const char *end = NULL;
            for (size_t j = i + 2; j + 1 < len; j++)
                if (src[j] == ':' && src[j + 1] == ']') {
                    end = src + j + 2;
                    break;
                }
            if (end) {
                size_t n = (size_t)(end - (src + i));
                if (k + n + 1 > cap) {
                    char *o = realloc(out, cap = (k + n + 1) * 2);
                    if (!o) return free(out), NULL;
                    out = o;
                }
                memcpy(out + k, src + i, n);
                k += n;
                i += n - 1;
                continue;
            }
        }
        if (in_class && c == ']') in_class = 0;
        if (k + 2 > cap) {
            char *o = realloc(out, cap *= 2);
            if (!o) return free(out), NULL;
            out = o;
        }
        out[k++] = c;
    }
    out[k] = '\0';
    *out_len = k;
    return out;
}

int tok_pattern_compile(tok_pattern *p, const char *src, size_t len, int literal, dp_err *err) {
    int code;
    PCRE2_SIZE off;
    uint32_t opts = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
    char *rw = NULL;
    if (!literal) {
        if (!(rw = rewrite_classes(src, len, &len))) return dp_fail(err, "out of memory");
        src = rw;
    }
    p->re = pcre2_compile((PCRE2_SPTR)src, len, opts, &code, &off, NULL);
    free(rw);
    if (!p->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return dp_fail(err, "invalid pattern at offset %zu: %s", (size_t)off, (char *)msg);
    }
    pcre2_jit_compile(p->re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter if absent */
    return 0;
}

void tok_pattern_free(tok_pattern *p) {
    pcre2_code_free(p->re);
    p->re = NULL;
}

int tok_matcher_init(tok_matcher *m, dp_err *err) {
    memset(m, 0, sizeof *m);
    m->md = pcre2_match_data_create(32, NULL);
    m->mctx = pcre2_match_context_create(NULL);
    if (!m->md || !m->mctx) {
        tok_matcher_free(m);
        return dp_fail(err, "out of memory creating regex match data");
    }
    return 0;
}

void tok_matcher_free(tok_matcher *m) {
    pcre2_match_data_free(m->md);
    pcre2_match_context_free(m->mctx);
    pcre2_jit_stack_free(m->jit);
    memset(m, 0, sizeof *m);
}

int tok_pattern_find(const tok_pattern *p, tok_matcher *m, const char *s, size_t n, size_t start,
                     size_t *ms, size_t *me, dp_err *err) {
    if (start > n) return 0;
    int rc = pcre2_match(p->re, (PCRE2_SPTR)s, n, start, PCRE2_NO_UTF_CHECK, m->md, m->mctx);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !m->jit) {
        /* Only long backtracking runs need more than the default 32 KB. */
        m->jit = pcre2_jit_stack_create(64 * 1024, 64 * 1024 * 1024, NULL);
        if (!m->jit) return dp_fail(err, "out of memory creating a regex stack");
        pcre2_jit_stack_assign(m->mctx, NULL, m->jit);
        rc = pcre2_match(p->re, (PCRE2_SPTR)s, n, start, PCRE2_NO_UTF_CHECK, m->md, m->mctx);
    }
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    if (rc < 0) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof msg);
        return dp_fail(err, "regex matching failed at byte %zu: %s", start, (char *)msg);
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(m->md);
    *ms = ov[0];
    *me = ov[1];
    return 1;
}

/* All matches of P in s as (start, end) pairs, advancing one character past
 * empty matches (as Oniguruma's find_iter does). *pairs is malloc'd. */
static int find_all(const tok_pattern *p, tok_matcher *m, const char *s, size_t n, size_t **pairs,
                    size_t *npairs, dp_err *err) {
    size_t cap = 0, k = 0, pos = 0, ms, me;
    *pairs = NULL;
    while (pos <= n) {
        int r = tok_pattern_find(p, m, s, n, pos, &ms, &me, err);
        if (r < 0) return free(*pairs), *pairs = NULL, -1;
        if (!r) break;
        if (tok_grow((void **)pairs, &cap, 2 * k + 2, sizeof **pairs, err))
            return free(*pairs), *pairs = NULL, -1;
        (*pairs)[2 * k] = ms;
        (*pairs)[2 * k + 1] = me;
        k++;
        if (me > ms) pos = me;
        else {
            if (ms >= n) break;
            int32_t cp;
            pos = ms + (size_t)tok_utf8_decode((const unsigned char *)s + ms, n - ms, &cp);
        }
    }
    *npairs = k;
    return 0;
}

/* NormalizedString::split: appends the pieces of s[0..n) (already in
 * out->buf at BASE) to OUT as spans. */
static int split_spans(const tok_pattern *p, tok_matcher *m, int behavior, int invert,
                       tok_list *out, size_t base, size_t n, int at_start, dp_err *err) {
    size_t *pairs, np;
    if (find_all(p, m, out->buf + base, n, &pairs, &np, err)) return -1;
    /* The covering list of (start, end, is_match). */
    size_t cap = 2 * np + 2, k = 0, prev = 0;
    size_t *seg = malloc(cap * 3 * sizeof *seg);
    if (!seg) return free(pairs), dp_fail(err, "out of memory splitting a piece");
    for (size_t i = 0; i < np; i++) {
        size_t ms = pairs[2 * i], me = pairs[2 * i + 1];
        if (prev != ms) seg[3 * k] = prev, seg[3 * k + 1] = ms, seg[3 * k + 2] = 0, k++;
        seg[3 * k] = ms, seg[3 * k + 1] = me, seg[3 * k + 2] = 1, k++;
        prev = me;
    }
    if (prev != n) seg[3 * k] = prev, seg[3 * k + 1] = n, seg[3 * k + 2] = 0, k++;
    free(pairs);
    if (invert)
        for (size_t i = 0; i < k; i++) seg[3 * i + 2] = !seg[3 * i + 2];
    /* Resolve the behaviour into kept pieces, in order. */
    size_t *piece = malloc((k + 1) * 2 * sizeof *piece), np2 = 0;
    if (!piece) return free(seg), dp_fail(err, "out of memory splitting a piece");
    int prev_match = 0;
    switch (behavior) {
    case TOK_SPLIT_REMOVED:
        for (size_t i = 0; i < k; i++)
            if (!seg[3 * i + 2]) piece[2 * np2] = seg[3 * i], piece[2 * np2 + 1] = seg[3 * i + 1], np2++;
        break;
    case TOK_SPLIT_ISOLATED:
        for (size_t i = 0; i < k; i++) piece[2 * np2] = seg[3 * i], piece[2 * np2 + 1] = seg[3 * i + 1], np2++;
        break;
    case TOK_SPLIT_CONTIGUOUS:
        for (size_t i = 0; i < k; i++) {
            int im = (int)seg[3 * i + 2];
            if (im == prev_match && np2) piece[2 * np2 - 1] = seg[3 * i + 1];
            else piece[2 * np2] = seg[3 * i], piece[2 * np2 + 1] = seg[3 * i + 1], np2++;
            prev_match = im;
        }
        break;
    case TOK_SPLIT_MERGED_PREV:
        for (size_t i = 0; i < k; i++) {
            int im = (int)seg[3 * i + 2];
            if (im && !prev_match && np2) piece[2 * np2 - 1] = seg[3 * i + 1];
            else piece[2 * np2] = seg[3 * i], piece[2 * np2 + 1] = seg[3 * i + 1], np2++;
            prev_match = im;
        }
        break;
    case TOK_SPLIT_MERGED_NEXT:
        /* Built right to left, then emitted reversed. */
        for (size_t i = k; i-- > 0;) {
            int im = (int)seg[3 * i + 2];
            if (im && !prev_match && np2) piece[2 * np2 - 2] = seg[3 * i];
            else piece[2 * np2] = seg[3 * i], piece[2 * np2 + 1] = seg[3 * i + 1], np2++;
            prev_match = im;
        }
        for (size_t i = 0; i < np2 / 2; i++) {
            size_t a0 = piece[2 * i], a1 = piece[2 * i + 1];
            piece[2 * i] = piece[2 * (np2 - 1 - i)], piece[2 * i + 1] = piece[2 * (np2 - 1 - i) + 1];
            piece[2 * (np2 - 1 - i)] = a0, piece[2 * (np2 - 1 - i) + 1] = a1;
        }
        break;
    }
    free(seg);
    int rc = 0;
    for (size_t i = 0; i < np2 && !rc; i++)
        if (piece[2 * i + 1] > piece[2 * i])
            rc = tok_list_span(out, base + piece[2 * i], piece[2 * i + 1] - piece[2 * i], -1,
                               at_start && piece[2 * i] == 0, err);
    free(piece);
    return rc;
}

/* ---------------------------------------------------------- normalizers */

static int norm_utf8proc(const char *s, size_t n, int opts, char **res, size_t *res_len,
                         dp_err *err) {
    if (!n) {
        *res = dp_calloc(1, 1, err);
        *res_len = 0;
        return *res ? 0 : -1;
    }
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst,
                                      (utf8proc_option_t)(UTF8PROC_STABLE | opts));
    if (r < 0) return dp_fail(err, "unicode normalization failed: %s", utf8proc_errmsg(r));
    *res = (char *)dst;
    *res_len = (size_t)r;
    return 0;
}

int tok_normalize(const tok_norm *nm, tok_matcher *m, const char *s, size_t n, char **res,
                  size_t *res_len, dp_err *err) {
    tok_list out = {0};
    switch (nm->type) {
    case TOK_NORM_NFC: return norm_utf8proc(s, n, UTF8PROC_COMPOSE, res, res_len, err);
    case TOK_NORM_NFD: return norm_utf8proc(s, n, UTF8PROC_DECOMPOSE, res, res_len, err);
    case TOK_NORM_NFKC:
        return norm_utf8proc(s, n, UTF8PROC_COMPOSE | UTF8PROC_COMPAT, res, res_len, err);
    case TOK_NORM_NFKD:
        return norm_utf8proc(s, n, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT, res, res_len, err);
    case TOK_NORM_PREPEND:
        if (n && tok_list_bytes(&out, nm->str, nm->str_len, err)) goto fail;
        if (tok_list_bytes(&out, s, n, err)) goto fail;
        break;
    case TOK_NORM_REPLACE: {
        size_t *pairs, np, prev = 0;
        if (find_all(&nm->pat, m, s, n, &pairs, &np, err)) return -1;
        int rc = 0;
        for (size_t i = 0; i < np && !rc; i++) {
            rc = tok_list_bytes(&out, s + prev, pairs[2 * i] - prev, err) ||
                 tok_list_bytes(&out, nm->str, nm->str_len, err);
            prev = pairs[2 * i + 1];
        }
        free(pairs);
        if (rc || tok_list_bytes(&out, s + prev, n - prev, err)) goto fail;
        break;
    }
    case TOK_NORM_STRIP: {
        size_t a = 0, b = n;
        int32_t cp;
        while (nm->strip_left && a < b) {
            int l = tok_utf8_decode((const unsigned char *)s + a, b - a, &cp);
            if (!tok_is_whitespace(cp)) break;
            a += (size_t)l;
        }
        while (nm->strip_right && b > a) {
            size_t q = b - 1;
            while (q > a && ((unsigned char)s[q] & 0xC0) == 0x80) q--;
            tok_utf8_decode((const unsigned char *)s + q, b - q, &cp);
            if (!tok_is_whitespace(cp)) break;
            b = q;
        }
        if (tok_list_bytes(&out, s + a, b - a, err)) goto fail;
        break;
    }
    case TOK_NORM_SEQUENCE: {
        char *cur = malloc(n + 1);
        if (!cur) return dp_fail(err, "out of memory normalizing %zu bytes", n);
        memcpy(cur, s, n);
        cur[n] = '\0';
        size_t cur_len = n;
        for (size_t i = 0; i < nm->n_sub; i++) {
            char *next;
            size_t next_len;
            if (tok_normalize(&nm->sub[i], m, cur, cur_len, &next, &next_len, err))
                return free(cur), -1;
            free(cur);
            cur = next;
            cur_len = next_len;
        }
        *res = cur;
        *res_len = cur_len;
        return 0;
    }
    }
    if (tok_list_bytes(&out, "", 0, err)) goto fail;
    free(out.sp);
    *res = out.buf;
    *res_len = out.len;
    return 0;
fail:
    tok_list_free(&out);
    return -1;
}

void tok_norm_free(tok_norm *nm) {
    for (size_t i = 0; i < nm->n_sub; i++) tok_norm_free(&nm->sub[i]);
    free(nm->sub);
    free(nm->str);
    tok_pattern_free(&nm->pat);
    memset(nm, 0, sizeof *nm);
}

/* ------------------------------------------------------- pre-tokenizers */

static int pre_one(const tok_pre *pt, tok_matcher *m, const char *s, size_t n, int at_start,
                   tok_list *out, dp_err *err) {
    size_t base = out->len;
    switch (pt->type) {
    case TOK_PRE_SPLIT:
    case TOK_PRE_DIGITS:
        if (tok_list_bytes(out, s, n, err)) return -1;
        return split_spans(&pt->pat, m, pt->behavior, pt->invert, out, base, n, at_start, err);
    case TOK_PRE_METASPACE: {
        int starts = n >= pt->repl_len && !memcmp(s, pt->repl, pt->repl_len);
        int prepend = pt->prepend_scheme == TOK_PREPEND_ALWAYS ||
                      (pt->prepend_scheme == TOK_PREPEND_FIRST && at_start);
        /* A space becomes the replacement, so a leading space counts as one. */
        if (n && s[0] == ' ') starts = 1;
        if (prepend && !starts && tok_list_bytes(out, pt->repl, pt->repl_len, err)) return -1;
        for (size_t i = 0; i < n; i++)
            if (s[i] == ' ' ? tok_list_bytes(out, pt->repl, pt->repl_len, err)
                            : tok_list_bytes(out, s + i, 1, err))
                return -1;
        size_t len = out->len - base;
        if (!pt->split) return len ? tok_list_span(out, base, len, -1, at_start, err) : 0;
        return split_spans(&pt->pat, m, TOK_SPLIT_MERGED_NEXT, 0, out, base, len, at_start, err);
    }
    case TOK_PRE_BYTELEVEL: {
        tok_list tmp = {0};
        if (pt->add_prefix_space && !(n && s[0] == ' ') && tok_list_bytes(&tmp, " ", 1, err))
            goto fail;
        if (tok_list_bytes(&tmp, s, n, err)) goto fail;
        if (pt->use_regex) {
            if (split_spans(&pt->pat, m, TOK_SPLIT_ISOLATED, 0, &tmp, 0, tmp.len, at_start, err))
                goto fail;
        } else if (tmp.len && tok_list_span(&tmp, 0, tmp.len, -1, at_start, err))
            goto fail;
        for (size_t i = 0; i < tmp.n; i++) {
            size_t off = out->len;
            for (size_t j = 0; j < tmp.sp[i].len; j++) {
                unsigned char b = (unsigned char)tmp.buf[tmp.sp[i].off + j];
                if (tok_list_bytes(out, tok_byte_char[b], tok_byte_char_len[b], err)) goto fail;
            }
            if (tok_list_span(out, off, out->len - off, -1, tmp.sp[i].at_start, err)) goto fail;
        }
        tok_list_free(&tmp);
        return 0;
    fail:
        tok_list_free(&tmp);
        return -1;
    }
    }
    return dp_fail(err, "internal: unknown pre-tokenizer %d", pt->type);
}

int tok_pretokenize(const tok_pre *pt, tok_matcher *m, const tok_list *in, tok_list *out,
                    dp_err *err) {
    if (pt->type != TOK_PRE_SEQUENCE) {
        for (size_t i = 0; i < in->n; i++) {
            const tok_span *sp = &in->sp[i];
            if (sp->id >= 0) {
                if (tok_list_span(out, out->len, 0, sp->id, sp->at_start, err)) return -1;
            } else if (pre_one(pt, m, in->buf + sp->off, sp->len, sp->at_start, out, err))
                return -1;
        }
        return 0;
    }
    tok_list a = {0}, b = {0};
    const tok_list *cur = in;
    int rc = 0;
    for (size_t k = 0; k < pt->n_sub && !rc; k++) {
        tok_list *dst = k + 1 == pt->n_sub ? out : (cur == &a ? &b : &a);
        if (dst != out) tok_list_clear(dst);
        rc = tok_pretokenize(&pt->sub[k], m, cur, dst, err);
        cur = dst;
    }
    if (!rc && pt->n_sub == 0)
        for (size_t i = 0; i < in->n && !rc; i++)
            rc = tok_list_push(out, in->buf + in->sp[i].off, in->sp[i].len, in->sp[i].id,
                               in->sp[i].at_start, err);
    tok_list_free(&a);
    tok_list_free(&b);
    return rc;
}

void tok_pre_free(tok_pre *pt) {
    for (size_t i = 0; i < pt->n_sub; i++) tok_pre_free(&pt->sub[i]);
    free(pt->sub);
    tok_pattern_free(&pt->pat);
    memset(pt, 0, sizeof *pt);
}
