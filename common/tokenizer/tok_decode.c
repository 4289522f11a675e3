/* tok_decode — decoders of Hugging Face `tokenizers`: each takes the list of
 * token strings and returns a new list (decode_chain); the caller joins the
 * final list. ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip and
 * Sequence. */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* "<0xXX>" → the byte, else -1. */
static int byte_token(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
    int h = hexval(s[3]), l = hexval(s[4]);
    return h < 0 || l < 0 ? -1 : h * 16 + l;
}

static int flush_bytes(tok_list *out, tok_list *bytes, dp_err *err) {
    if (!bytes->len) return 0;
    int valid = 1;
    for (size_t i = 0; i < bytes->len;) {
        int l = utf8_valid_len((const unsigned char *)bytes->buf + i, bytes->len - i);
        if (!l) {
            valid = 0;
            break;
        }
        i += (size_t)l;
    }
    int rc = 0;
    if (valid) rc = tok_list_push(out, bytes->buf, bytes->len, -1, 0, err);
    else
        for (size_t i = 0; i < bytes->len && !rc; i++)
            rc = tok_list_push(out, "\xEF\xBF\xBD", 3, -1, 0, err);
    tok_list_clear(bytes);
    return rc;
}

static int dec_one(const tok_dec *d, tok_matcher *m, const tok_list *in, tok_list *out,
                   dp_err *err) {
    switch (d->type) {
    case TOK_DEC_BYTELEVEL: {
        tok_list raw = {0};
        int rc = 0;
        for (size_t i = 0; i < in->n && !rc; i++) {
            const char *s = in->buf + in->sp[i].off;
            size_t n = in->sp[i].len, start = raw.len;
            for (size_t j = 0; j < n && !rc;) {
                int32_t cp;
                j += (size_t)tok_utf8_decode((const unsigned char *)s + j, n - j, &cp);
                int b = tok_char_byte(cp);
                if (b < 0) {
                    /* A char outside the map: the token's own bytes are kept. */
                    raw.len = start;
                    rc = tok_list_bytes(&raw, s, n, err);
                    break;
                }
                char c = (char)b;
                rc = tok_list_bytes(&raw, &c, 1, err);
            }
        }
        size_t off = out->len;
        if (!rc) rc = tok_utf8_lossy(out, raw.buf ? raw.buf : "", raw.len, err);
        if (!rc) rc = tok_list_span(out, off, out->len - off, -1, 0, err);
        tok_list_free(&raw);
        return rc;
    }
    case TOK_DEC_METASPACE:
        for (size_t i = 0; i < in->n; i++) {
            const char *s = in->buf + in->sp[i].off;
            size_t n = in->sp[i].len, off = out->len;
            for (size_t j = 0; j < n;) {
                if (j + d->repl_len <= n && !memcmp(s + j, d->repl, d->repl_len)) {
                    if (!(i == 0 && d->prepend_scheme != TOK_PREPEND_NEVER) &&
                        tok_list_bytes(out, " ", 1, err))
                        return -1;
                    j += d->repl_len;
                } else {
                    if (tok_list_bytes(out, s + j, 1, err)) return -1;
                    j++;
                }
            }
            if (tok_list_span(out, off, out->len - off, -1, 0, err)) return -1;
        }
        return 0;
    case TOK_DEC_REPLACE:
        for (size_t i = 0; i < in->n; i++) {
            char *r;
            size_t rl;
            tok_norm nm = {.type = TOK_NORM_REPLACE, .str = d->str, .str_len = d->str_len, .pat = d->pat};
            if (tok_normalize(&nm, m, in->buf + in->sp[i].off, in->sp[i].len, &r, &rl, err))
                return -1;
            int rc = tok_list_push(out, r, rl, -1, 0, err);
            free(r);
            if (rc) return -1;
        }
        return 0;
    case TOK_DEC_BYTEFALLBACK: {
        tok_list bytes = {0};
        int rc = 0;
        for (size_t i = 0; i < in->n && !rc; i++) {
            const char *s = in->buf + in->sp[i].off;
            int b = byte_token(s, in->sp[i].len);
            if (b >= 0) {
                char c = (char)b;
                rc = tok_list_bytes(&bytes, &c, 1, err);
            } else {
                rc = flush_bytes(out, &bytes, err);
                if (!rc) rc = tok_list_push(out, s, in->sp[i].len, -1, 0, err);
            }
        }
        if (!rc) rc = flush_bytes(out, &bytes, err);
        tok_list_free(&bytes);
        return rc;
    }
    case TOK_DEC_FUSE: {
        size_t off = out->len;
        for (size_t i = 0; i < in->n; i++)
            if (tok_list_bytes(out, in->buf + in->sp[i].off, in->sp[i].len, err)) return -1;
        return tok_list_span(out, off, out->len - off, -1, 0, err);
    }
    case TOK_DEC_STRIP:
        for (size_t i = 0; i < in->n; i++) {
            const char *s = in->buf + in->sp[i].off;
            size_t a = 0, b = in->sp[i].len, c = d->str_len;
            for (int k = 0; k < d->start && a + c <= b && !memcmp(s + a, d->str, c); k++) a += c;
            for (int k = 0; k < d->stop && b >= a + c && !memcmp(s + b - c, d->str, c); k++) b -= c;
            if (tok_list_push(out, s + a, b - a, -1, 0, err)) return -1;
        }
        return 0;
    case TOK_DEC_SEQUENCE: {
        tok_list a = {0}, b = {0};
        const tok_list *cur = in;
        int rc = 0;
        for (size_t k = 0; k < d->n_sub && !rc; k++) {
            tok_list *dst = k + 1 == d->n_sub ? out : (cur == &a ? &b : &a);
            if (dst != out) tok_list_clear(dst);
            rc = dec_one(&d->sub[k], m, cur, dst, err);
            cur = dst;
        }
        if (!rc && !d->n_sub)
            for (size_t i = 0; i < in->n && !rc; i++)
                rc = tok_list_push(out, in->buf + in->sp[i].off, in->sp[i].len, -1, 0, err);
        tok_list_free(&a);
        tok_list_free(&b);
        return rc;
    }
    }
    return dp_fail(err, "internal: unknown decoder %d", d->type);
}

int tok_decode_chain(const tok_dec *d, tok_matcher *m, const tok_list *in, tok_list *out,
                     dp_err *err) {
    return dec_one(d, m, in, out, err);
}

void tok_dec_free(tok_dec *d) {
    for (size_t i = 0; i < d->n_sub; i++) tok_dec_free(&d->sub[i]);
    free(d->sub);
    free(d->str);
    tok_pattern_free(&d->pat);
    memset(d, 0, sizeof *d);
}
