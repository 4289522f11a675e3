/* jinja_lex — template source to tokens, with Jinja's whitespace rules as
 * transformers configures them:
 *   - the source's newlines are normalized to "\n" and one trailing
 *     newline is dropped (keep_trailing_newline=False);
 *   - trim_blocks: the first "\n" after a block or comment tag is removed
 *     (not after "+%}");
 *   - lstrip_blocks: spaces and tabs from the start of a line up to a block
 *     or comment tag are removed (not before "{%+");
 *   - "{%-" / "-%}" (and {{- -}}, {#- -#}) strip all whitespace before /
 *     after the tag;
 *   - {% raw %}...{% endraw %} is text. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_internal.h"

typedef struct lexer {
    jx_ctx *c;
    const char *s;
    size_t n, pos;
    int line, col;              /* of pos */
    int end_line, end_col;      /* of the last tag's end marker */
    jt_token *t;
    size_t nt, cap;
} lexer;

static void advance(lexer *L, size_t k) {
    for (size_t i = 0; i < k && L->pos < L->n; i++, L->pos++) {
        if (L->s[L->pos] == '\n') L->line++, L->col = 1;
        else if (((unsigned char)L->s[L->pos] & 0xC0) != 0x80) L->col++;
    }
}

static jt_token *emit(lexer *L, jt_kind kind, int line, int col) {
    if (L->nt == L->cap) {
        size_t cap = L->cap ? 2 * L->cap : 256;
        jt_token *t = jx_alloc(L->c, cap * sizeof *t);
        if (L->nt) memcpy(t, L->t, L->nt * sizeof *t);
        L->t = t;
        L->cap = cap;
    }
    jt_token *t = &L->t[L->nt++];
    memset(t, 0, sizeof *t);
    t->kind = kind;
    t->line = line;
    t->col = col;
    return t;
}

static int is_ws(char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v'; }

/* The next tag start at or after FROM: "{{", "{%" or "{#"; n when none. */
static size_t next_tag(const lexer *L, size_t from) {
    for (size_t i = from; i + 1 < L->n; i++)
        if (L->s[i] == '{' && (L->s[i + 1] == '{' || L->s[i + 1] == '%' || L->s[i + 1] == '#')) return i;
    return L->n;
}

/* Emits the text s[from, to) as one token, stripping as the tag after it
 * asks: RSTRIP (its "-") removes trailing whitespace; LSTRIP (lstrip_blocks
 * before a block/comment tag) the spaces of the tag's own line. */
static void emit_text(lexer *L, size_t from, size_t to, int line, int col, int rstrip, int lstrip,
                      int line_starting) {
    if (rstrip) {
        while (to > from && is_ws(L->s[to - 1])) to--;
    } else if (lstrip) {
        size_t l = to;
        while (l > from && L->s[l - 1] != '\n') l--;
        if (l > from || line_starting) {
            size_t k = l;
            while (k < to && is_ws(L->s[k])) k++;
            if (k == to && to > l) to = l;
        }
    }
    if (to > from) {
        jt_token *t = emit(L, JT_TEXT, line, col);
        t->s = L->s + from;
        t->n = to - from;
    }
}

/* A string literal at pos (quote included): its value with Python's
 * escapes (\n \t \\ \' \" \xNN \uNNNN \UNNNNNNNN), into the arena. */
static void lex_string(lexer *L, jt_token *t) {
    char q = L->s[L->pos];
    size_t i = L->pos + 1;
    jx_buf b = {0};
    jx_buf_add(L->c, &b, "", 0);
    while (i < L->n && L->s[i] != q) {
        char ch = L->s[i];
        if (ch != '\\' || i + 1 >= L->n) {
            jx_buf_add(L->c, &b, &ch, 1);
            i++;
            continue;
        }
        char e = L->s[i + 1], out = 0;
        i += 2;
        switch (e) {
        case 'n': out = '\n'; break;
        case 't': out = '\t'; break;
        case 'r': out = '\r'; break;
        case '\\': out = '\\'; break;
        case '\'': out = '\''; break;
        case '"': out = '"'; break;
        case 'a': out = '\a'; break;
        case 'b': out = '\b'; break;
        case 'f': out = '\f'; break;
        case 'v': out = '\v'; break;
        case '0': out = '\0'; break;
        case '\n': continue;
        case 'x':
        case 'u':
        case 'U': {
            int digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            unsigned long cp = 0;
            for (int k = 0; k < digits; k++, i++) {
                if (i >= L->n || !isxdigit((unsigned char)L->s[i]))
                    jx_fail(L->c, t->line, t->col, "truncated \\%cXX escape in a string", e);
                char hx[2] = {L->s[i], 0};
                cp = cp * 16 + strtoul(hx, NULL, 16);
            }
            if (cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000))
                jx_fail(L->c, t->line, t->col, "escape \\%c in a string is not a code point", e);
            char u[4];
            int k = cp < 0x80 ? (u[0] = (char)cp, 1)
                  : cp < 0x800 ? (u[0] = (char)(0xC0 | cp >> 6), u[1] = (char)(0x80 | (cp & 63)), 2)
                  : cp < 0x10000 ? (u[0] = (char)(0xE0 | cp >> 12), u[1] = (char)(0x80 | ((cp >> 6) & 63)),
                                    u[2] = (char)(0x80 | (cp & 63)), 3)
                  : (u[0] = (char)(0xF0 | cp >> 18), u[1] = (char)(0x80 | ((cp >> 12) & 63)),
                     u[2] = (char)(0x80 | ((cp >> 6) & 63)), u[3] = (char)(0x80 | (cp & 63)), 4);
            jx_buf_add(L->c, &b, u, (size_t)k);
            continue;
        }
        default: /* unknown escapes stay as written */
            jx_buf_add(L->c, &b, "\\", 1);
            out = e;
        }
        jx_buf_add(L->c, &b, &out, 1);
    }
    if (i >= L->n) jx_fail(L->c, t->line, t->col, "unterminated string");
    t->s = b.p;
    t->n = b.n;
    advance(L, i + 1 - L->pos);
}

static const char *const ops[] = {"**", "//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~",
                                  "<", ">", "=", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|"};

/* Tokens of one tag up to its end ("}}" or "%}", "-" or "+" before it).
 * Returns the end's modifier ('-', '+' or 0); L->pos is after the end. */
static int lex_tag(lexer *L, char close, int *opened) {
    int depth = 0;
    for (;;) {
        while (L->pos < L->n && is_ws(L->s[L->pos])) advance(L, 1);
        if (L->pos >= L->n) jx_fail(L->c, L->line, L->col, "unexpected end of template, expected '%c}'", close);
        const char *p = L->s + L->pos;
        size_t left = L->n - L->pos;
        if (depth == 0) {
            int mod = (p[0] == '-' || p[0] == '+') && left >= 3 && p[1] == close && p[2] == '}' ? p[0] : 0;
            if (mod || (left >= 2 && p[0] == close && p[1] == '}')) {
                L->end_line = L->line, L->end_col = L->col;
                advance(L, mod ? 3 : 2);
                return mod;
            }
        }
        int line = L->line, col = L->col;
        unsigned char ch = (unsigned char)p[0];
        if (ch == '"' || ch == '\'') {
            lex_string(L, emit(L, JT_STRING, line, col));
        } else if (isdigit(ch)) {
            size_t k = 0;
            int is_float = 0;
            while (k < left && (isdigit((unsigned char)p[k]) || p[k] == '_')) k++;
            if (k + 1 < left && p[k] == '.' && isdigit((unsigned char)p[k + 1])) {
                is_float = 1;
                for (k++; k < left && (isdigit((unsigned char)p[k]) || p[k] == '_'); k++) {}
            }
            if (k < left && (p[k] == 'e' || p[k] == 'E')) {
                size_t e = k + 1;
                if (e < left && (p[e] == '+' || p[e] == '-')) e++;
                if (e < left && isdigit((unsigned char)p[e])) {
                    is_float = 1;
                    for (k = e; k < left && isdigit((unsigned char)p[k]); k++) {}
                }
            }
            char num[64];
            size_t m = 0;
            for (size_t i = 0; i < k && m < sizeof num - 1; i++)
                if (p[i] != '_') num[m++] = p[i];
            num[m] = '\0';
            jt_token *t = emit(L, is_float ? JT_FLOAT : JT_INT, line, col);
            if (is_float) t->f = strtod(num, NULL);
            else {
                errno = 0;
                t->i = strtoll(num, NULL, 10);
                if (errno) jx_fail(L->c, line, col, "integer literal too large");
            }
            advance(L, k);
        } else if (isalpha(ch) || ch == '_') {
            size_t k = 0;
            while (k < left && (isalnum((unsigned char)p[k]) || p[k] == '_')) k++;
            jt_token *t = emit(L, JT_NAME, line, col);
            t->s = p;
            t->n = k;
            advance(L, k);
        } else {
            size_t i = 0, nops = sizeof ops / sizeof *ops;
            for (; i < nops; i++)
                if (!strncmp(p, ops[i], strlen(ops[i]))) break;
            if (i == nops) jx_fail(L->c, line, col, "unexpected char '%c'", ch < 0x80 && ch >= 0x20 ? ch : '?');
            if (strchr("([{", ops[i][0])) depth++;
            if (strchr(")]}", ops[i][0])) {
                if (depth == 0) jx_fail(L->c, line, col, "unexpected '%s'", ops[i]);
                depth--;
            }
            jt_token *t = emit(L, JT_OP, line, col);
            t->s = ops[i];
            t->n = strlen(ops[i]);
            advance(L, t->n);
        }
        (void)opened;
    }
}

/* After "{% raw %}": the text up to "{% endraw %}" (either may carry "-"). */
static void lex_raw(lexer *L, int strip_after_open) {
    size_t start = L->pos;
    int line = L->line, col = L->col;
    for (size_t i = start; i + 1 < L->n; i++) {
        if (L->s[i] != '{' || L->s[i + 1] != '%') continue;
        size_t k = i + 2;
        int minus = k < L->n && L->s[k] == '-';
        if (minus || (k < L->n && L->s[k] == '+')) k++;
        while (k < L->n && is_ws(L->s[k])) k++;
        if (L->n - k < 6 || strncmp(L->s + k, "endraw", 6)) continue;
        k += 6;
        while (k < L->n && is_ws(L->s[k])) k++;
        int end_minus = k < L->n && L->s[k] == '-';
        if (end_minus || (k < L->n && L->s[k] == '+')) k++;
        if (k + 1 >= L->n || L->s[k] != '%' || L->s[k + 1] != '}') continue;
        size_t from = start;
        if (strip_after_open)
            while (from < i && is_ws(L->s[from])) from++;
        emit_text(L, from, i, line, col, minus, 0, 0);
        advance(L, k + 2 - L->pos);
        if (end_minus)
            while (L->pos < L->n && is_ws(L->s[L->pos])) advance(L, 1);
        else if (L->s[k - 1] != '+' && L->pos < L->n && L->s[L->pos] == '\n')
            advance(L, 1);
        return;
    }
    jx_fail(L->c, line, col, "missing end of raw directive");
}

jt_token *jinja_lex(jx_ctx *c, const char *src, size_t len, size_t *n_tokens) {
    /* newlines normalized; one trailing newline dropped */
    char *s = jx_alloc(c, len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            s[n++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n') i++;
        } else {
            s[n++] = src[i];
        }
    }
    if (n && s[n - 1] == '\n') n--;
    lexer Lv = {c, s, n, 0, 1, 1, 1, 1, NULL, 0, 0}, *L = &Lv;
    int line_starting = 1, strip_next = 0;
    while (L->pos < L->n) {
        if (strip_next)
            while (L->pos < L->n && is_ws(L->s[L->pos])) advance(L, 1);
        strip_next = 0;
        size_t text_from = L->pos, tag = next_tag(L, L->pos);
        int tline = L->line, tcol = L->col;
        if (tag == L->n) {
            emit_text(L, text_from, L->n, tline, tcol, 0, 0, 0);
            break;
        }
        char kind = L->s[tag + 1];
        char mod = tag + 2 < L->n ? L->s[tag + 2] : 0;
        int minus = mod == '-', plus = mod == '+' && kind != '{';
        emit_text(L, text_from, tag, tline, tcol, minus, kind != '{' && !plus, line_starting);
        advance(L, tag - L->pos);
        int line = L->line, col = L->col;
        advance(L, 2 + (minus || plus));
        int end_mod;
        if (kind == '#') {
            size_t i = L->pos;
            for (; i + 1 < L->n; i++)
                if (L->s[i] == '#' && L->s[i + 1] == '}') break;
            if (i + 1 >= L->n) jx_fail(c, line, col, "missing end of comment tag");
            end_mod = i > L->pos && (L->s[i - 1] == '-' || L->s[i - 1] == '+') ? L->s[i - 1] : 0;
            advance(L, i + 2 - L->pos);
        } else {
            size_t first = L->nt;
            emit(L, kind == '{' ? JT_VAR_BEGIN : JT_BLOCK_BEGIN, line, col);
            end_mod = lex_tag(L, kind == '{' ? '}' : '%', NULL);
            emit(L, kind == '{' ? JT_VAR_END : JT_BLOCK_END, L->end_line, L->end_col);
            if (kind == '%' && L->nt - first == 3 && L->t[first + 1].kind == JT_NAME &&
                L->t[first + 1].n == 3 && !memcmp(L->t[first + 1].s, "raw", 3)) {
                L->nt = first;
                lex_raw(L, end_mod == '-');
                line_starting = L->pos > 0 && L->s[L->pos - 1] == '\n';
                continue;
            }
        }
        line_starting = 0;
        if (end_mod == '-') {
            strip_next = 1;
            size_t k = L->pos;
            while (k < L->n && is_ws(L->s[k])) k++;
            line_starting = k > L->pos && L->s[k - 1] == '\n';
        } else if (kind != '{' && end_mod != '+' && L->pos < L->n && L->s[L->pos] == '\n') {
            advance(L, 1); /* trim_blocks */
            line_starting = 1;
        }
    }
    emit(L, JT_EOF, L->line, L->col);
    *n_tokens = L->nt;
    return L->t;
}
