/* jinja_filters — Jinja's filters and tests, and the str/dict/list methods
 * templates call, with Python's semantics (str.strip's whitespace is
 * str.isspace; lengths and slices count code points). Mutating methods
 * (list.append, dict.update, ...) are refused as the immutable sandbox
 * refuses them. tojson is transformers' (json.dumps, keys unsorted, no
 * HTML escaping). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "jinja_internal.h"

typedef struct args {
    jv *pos;
    int n_pos;
    const char **kw_names;
    jv *kw;
    int n_kw;
} args;

/* Argument K (positional) or NAME (keyword), else DEF. */
static jv arg(const args *a, int k, const char *name, jv def) {
    if (k >= 0 && k < a->n_pos) return a->pos[k];
    for (int j = 0; j < a->n_kw; j++)
        if (name && !strcmp(a->kw_names[j], name)) return a->kw[j];
    return def;
}

static jv soft_str(jx_render *r, jv v) { return v.t == JV_UNDEF ? jv_cstr(r->c, "") : jv_to_str(r->c, v); }

static int64_t want_int(jx_render *r, const jnode *at, jv v, const char *what) {
    if (v.t == JV_INT) return v.i;
    if (v.t == JV_BOOL) return v.b;
    jx_fail(r->c, at->line, at->col, "%s: expected an integer, got %s", what, jv_type_name(v));
}

static jv want_str(jx_render *r, const jnode *at, jv v, const char *what) {
    if (v.t != JV_STR) jx_fail(r->c, at->line, at->col, "%s: expected a string, got %s", what, jv_type_name(v));
    return v;
}

jv jinja_iter_list(jx_render *r, jv v, const jnode *at) {
    jx_ctx *c = r->c;
    switch (v.t) {
    case JV_UNDEF: return jv_list_new(c, 1);
    case JV_LIST: return v;
    case JV_DICT: {
        jv l = jv_list_new(c, v.d->n);
        for (size_t i = 0; i < v.d->n; i++) jv_list_push(c, l, v.d->k[i]);
        return l;
    }
    case JV_STR: {
        jv l = jv_list_new(c, v.s->n);
        for (size_t b = 0; b < v.s->n;) {
            size_t e = b + 1;
            while (e < v.s->n && ((unsigned char)v.s->p[e] & 0xC0) == 0x80) e++;
            jv_list_push(c, l, jv_str(c, v.s->p + b, e - b));
            b = e;
        }
        return l;
    }
    default: jx_fail(c, at->line, at->col, "'%s' object is not iterable", jv_type_name(v));
    }
}

/* ---- Unicode helpers ---- */

static int py_space(utf8proc_int32_t cp) {
    const utf8proc_property_t *p = utf8proc_get_property(cp);
    return p->category == UTF8PROC_CATEGORY_ZS || p->bidi_class == UTF8PROC_BIDI_CLASS_WS ||
           p->bidi_class == UTF8PROC_BIDI_CLASS_B || p->bidi_class == UTF8PROC_BIDI_CLASS_S;
}

/* Decodes the code point at s[i] (invalid bytes count as themselves). */
static size_t cp_at(const char *s, size_t n, size_t i, utf8proc_int32_t *cp) {
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), cp);
    if (k <= 0) {
        *cp = (unsigned char)s[i];
        return 1;
    }
    return (size_t)k;
}

static int in_chars(utf8proc_int32_t cp, jv chars) {
    for (size_t i = 0; i < chars.s->n;) {
        utf8proc_int32_t d;
        i += cp_at(chars.s->p, chars.s->n, i, &d);
        if (d == cp) return 1;
    }
    return 0;
}

/* str.strip/lstrip/rstrip (WHICH: 1 left, 2 right, 3 both); CHARS a str or
 * None (whitespace). */
static jv strip(jx_render *r, jv s, jv chars, int which) {
    size_t b = 0, e = s.s->n;
    int ws = chars.t != JV_STR;
    if (which & 1)
        while (b < e) {
            utf8proc_int32_t cp;
            size_t k = cp_at(s.s->p, e, b, &cp);
            if (!(ws ? py_space(cp) : in_chars(cp, chars))) break;
            b += k;
        }
    if (which & 2)
        while (e > b) {
            size_t q = e - 1;
            while (q > b && ((unsigned char)s.s->p[q] & 0xC0) == 0x80) q--;
            utf8proc_int32_t cp;
            cp_at(s.s->p, e, q, &cp);
            if (!(ws ? py_space(cp) : in_chars(cp, chars))) break;
            e = q;
        }
    return jv_str(r->c, s.s->p + b, e - b);
}

/* MODE: 'u' upper, 'l' lower, 'c' capitalize, 't' str.title, 'T' Jinja's title filter. */
static jv recase(jx_render *r, jv s, int mode) {
    jx_buf b = {0};
    jx_buf_add(r->c, &b, "", 0);
    int prev_cased = 0, word_start = 1;
    for (size_t i = 0, first = 1; i < s.s->n; first = 0) {
        utf8proc_int32_t cp;
        i += cp_at(s.s->p, s.s->n, i, &cp);
        utf8proc_int32_t out = cp;
        const utf8proc_property_t *p = utf8proc_get_property(cp);
        int cased = p->category == UTF8PROC_CATEGORY_LU || p->category == UTF8PROC_CATEGORY_LL ||
                    p->category == UTF8PROC_CATEGORY_LT;
        switch (mode) {
        case 'u': out = utf8proc_toupper(cp); break;
        case 'l': out = utf8proc_tolower(cp); break;
        case 'c': out = first ? utf8proc_toupper(cp) : utf8proc_tolower(cp); break;
        case 't': out = prev_cased ? utf8proc_tolower(cp) : utf8proc_toupper(cp); prev_cased = cased; break;
        case 'T': {
            int sep = cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || py_space(cp);
            out = sep ? cp : word_start ? utf8proc_toupper(cp) : utf8proc_tolower(cp);
            word_start = sep;
            break;
        }
        }
        if (cp == 0xDF && out == 0x1E9E) { /* Python's full case mapping: "ß".upper() == "SS" */
            jx_buf_puts(r->c, &b, mode == 'u' ? "SS" : "Ss");
            continue;
        }
        utf8proc_uint8_t enc[4];
        utf8proc_ssize_t k = utf8proc_encode_char(out, enc);
        jx_buf_add(r->c, &b, (const char *)enc, (size_t)k);
    }
    return jv_str(r->c, b.p, b.n);
}

static jv replace(jx_render *r, jv s, jv old, jv new, int64_t count) {
    jx_buf b = {0};
    jx_buf_add(r->c, &b, "", 0);
    size_t i = 0;
    int64_t done = 0;
    if (old.s->n == 0) { /* Python inserts NEW between characters */
        for (; i <= s.s->n && (count < 0 || done < count); done++) {
            jx_buf_add(r->c, &b, new.s->p, new.s->n);
            if (i == s.s->n) { i++; break; }
            utf8proc_int32_t cp;
            size_t k = cp_at(s.s->p, s.s->n, i, &cp);
            jx_buf_add(r->c, &b, s.s->p + i, k);
            i += k;
        }
        if (i < s.s->n) jx_buf_add(r->c, &b, s.s->p + i, s.s->n - i);
        return jv_str(r->c, b.p, b.n);
    }
    while (count < 0 || done < count) {
        const char *hit = memmem(s.s->p + i, s.s->n - i, old.s->p, old.s->n);
        if (!hit) break;
        jx_buf_add(r->c, &b, s.s->p + i, (size_t)(hit - s.s->p) - i);
        jx_buf_add(r->c, &b, new.s->p, new.s->n);
        i = (size_t)(hit - s.s->p) + old.s->n;
        done++;
    }
    jx_buf_add(r->c, &b, s.s->p + i, s.s->n - i);
    return jv_str(r->c, b.p, b.n);
}

/* str.split(sep, maxsplit) / rsplit (from the right when RIGHT). */
static jv split(jx_render *r, const jnode *at, jv s, jv sep, int64_t maxsplit, int right) {
    jx_ctx *c = r->c;
    jv out = jv_list_new(c, 4);
    const char *p = s.s->p;
    size_t n = s.s->n;
    if (sep.t == JV_STR) {
        if (!sep.s->n) jx_fail(c, at->line, at->col, "empty separator");
        if (!right) {
            size_t i = 0;
            for (int64_t k = 0; maxsplit < 0 || k < maxsplit; k++) {
                const char *hit = memmem(p + i, n - i, sep.s->p, sep.s->n);
                if (!hit) break;
                jv_list_push(c, out, jv_str(c, p + i, (size_t)(hit - p) - i));
                i = (size_t)(hit - p) + sep.s->n;
            }
            jv_list_push(c, out, jv_str(c, p + i, n - i));
            return out;
        }
        size_t e = n;
        jv rev = jv_list_new(c, 4);
        for (int64_t k = 0; maxsplit < 0 || k < maxsplit; k++) {
            size_t j = e;
            int found = 0;
            while (j >= sep.s->n) {
                if (!memcmp(p + j - sep.s->n, sep.s->p, sep.s->n)) { found = 1; break; }
                j--;
            }
            if (!found) break;
            jv_list_push(c, rev, jv_str(c, p + j, e - j));
            e = j - sep.s->n;
        }
        jv_list_push(c, rev, jv_str(c, p, e));
        for (size_t k = rev.l->n; k-- > 0;) jv_list_push(c, out, rev.l->a[k]);
        return out;
    }
    /* runs of whitespace; (rsplit with a maxsplit is rare: split from the left) */
    size_t i = 0;
    int64_t k = 0;
    for (;;) {
        utf8proc_int32_t cp;
        while (i < n) {
            size_t m = cp_at(p, n, i, &cp);
            if (!py_space(cp)) break;
            i += m;
        }
        if (i >= n) break;
        if (maxsplit >= 0 && k == maxsplit) {
            jv rest = strip(r, jv_str(c, p + i, n - i), jv_none(), 2);
            jv_list_push(c, out, rest);
            break;
        }
        size_t b = i;
        while (i < n) {
            size_t m = cp_at(p, n, i, &cp);
            if (py_space(cp)) break;
            i += m;
        }
        jv_list_push(c, out, jv_str(c, p + b, i - b));
        k++;
    }
    return out;
}

static int starts_ends(jv s, jv x, int end) {
    if (x.t != JV_STR) return 0;
    if (x.s->n > s.s->n) return 0;
    return !memcmp(s.s->p + (end ? s.s->n - x.s->n : 0), x.s->p, x.s->n);
}

/* ---- tests ---- */

static int apply_test(jx_render *r, const jnode *at, const char *name, jv v, const args *a) {
    jx_ctx *c = r->c;
    jv x = arg(a, 0, NULL, jv_undef(NULL));
    if (!strcmp(name, "defined")) return v.t != JV_UNDEF;
    if (!strcmp(name, "undefined")) return v.t == JV_UNDEF;
    if (!strcmp(name, "none")) return v.t == JV_NONE;
    if (!strcmp(name, "boolean")) return v.t == JV_BOOL;
    if (!strcmp(name, "true")) return v.t == JV_BOOL && v.b;
    if (!strcmp(name, "false")) return v.t == JV_BOOL && !v.b;
    if (!strcmp(name, "integer")) return v.t == JV_INT;
    if (!strcmp(name, "float")) return v.t == JV_FLOAT;
    if (!strcmp(name, "number")) return v.t == JV_INT || v.t == JV_FLOAT || v.t == JV_BOOL;
    if (!strcmp(name, "string")) return v.t == JV_STR;
    if (!strcmp(name, "mapping")) return v.t == JV_DICT && !(v.flag & JV_FLAG_LOOP);
    if (!strcmp(name, "iterable")) return v.t == JV_STR || v.t == JV_LIST || v.t == JV_DICT || v.t == JV_UNDEF;
    if (!strcmp(name, "sequence")) return v.t == JV_STR || v.t == JV_LIST || v.t == JV_DICT;
    if (!strcmp(name, "callable")) return v.t == JV_MACRO || v.t == JV_FUNC;
    if (!strcmp(name, "sameas")) return jv_equal(v, x) && v.t == x.t;
    if (!strcmp(name, "eq") || !strcmp(name, "equalto") || !strcmp(name, "==")) return jv_equal(v, x);
    if (!strcmp(name, "ne") || !strcmp(name, "!=")) return !jv_equal(v, x);
    if (!strcmp(name, "in")) {
        if (x.t == JV_STR) return v.t == JV_STR && memmem(x.s->p, x.s->n, v.s->p, v.s->n) != NULL;
        if (x.t == JV_DICT) return jv_dict_find(x, v) != NULL;
        jv l = jinja_iter_list(r, x, at);
        for (size_t i = 0; i < l.l->n; i++)
            if (jv_equal(l.l->a[i], v)) return 1;
        return 0;
    }
    static const char *const ord[][2] = {{"lt", "<"}, {"lessthan", "<"}, {"<", "<"}, {"le", "<="}, {"<=", "<="},
                                         {"gt", ">"}, {"greaterthan", ">"}, {">", ">"}, {"ge", ">="}, {">=", ">="}};
    for (size_t k = 0; k < sizeof ord / sizeof *ord; k++)
        if (!strcmp(name, ord[k][0])) {
            int cmp = jv_compare(c, v, x, at->line, at->col);
            const char *o = ord[k][1];
            return o[0] == '<' ? (o[1] ? cmp <= 0 : cmp < 0) : (o[1] ? cmp >= 0 : cmp > 0);
        }
    if (!strcmp(name, "odd") || !strcmp(name, "even")) {
        int64_t i = want_int(r, at, v, name);
        return (((i % 2) + 2) % 2) == (name[0] == 'o');
    }
    if (!strcmp(name, "divisibleby")) {
        int64_t d = want_int(r, at, x, name);
        if (d == 0) jx_fail(c, at->line, at->col, "integer division or modulo by zero");
        return want_int(r, at, v, name) % d == 0;
    }
    if (!strcmp(name, "lower") || !strcmp(name, "upper")) {
        jv s = soft_str(r, v);
        return jv_equal(s, recase(r, s, name[0]));
    }
    jx_fail(c, at->line, at->col, "no test named '%s'", name);
}

/* ---- filters ---- */

static jv attr_path(jx_render *r, const jnode *at, jv v, jv attr) {
    if (attr.t == JV_INT) return jinja_getattr(r, v, attr, at);
    jv name = want_str(r, at, attr, "attribute");
    const char *p = name.s->p;
    for (;;) { /* "a.b.0": dotted paths; digits index */
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        char *end;
        long long i = strtoll(p, &end, 10);
        jv key = end == p + n && n ? jv_int(i) : jv_str(r->c, p, n);
        if (v.t == JV_UNDEF) return v;
        v = jinja_getattr(r, v, key, at);
        if (key.t == JV_INT && v.t == JV_UNDEF) v = jinja_getattr(r, v, jv_str(r->c, p, n), at);
        if (!dot) return v;
        p = dot + 1;
    }
}

static jv apply_filter(jx_render *r, const jnode *at, const char *name, jv v, const args *a);

static jv sorted(jx_render *r, const jnode *at, jv l, int reverse, int case_sensitive, jv attribute) {
    size_t n = l.l->n;
    jv out = jv_list_new(r->c, n);
    jv *keys = jx_alloc(r->c, (n + 1) * sizeof *keys);
    for (size_t i = 0; i < n; i++) {
        jv_list_push(r->c, out, l.l->a[i]);
        jv k = attribute.t == JV_UNDEF ? l.l->a[i] : attr_path(r, at, l.l->a[i], attribute);
        keys[i] = !case_sensitive && k.t == JV_STR ? recase(r, k, 'l') : k;
    }
    /* stable insertion sort: lists in templates are short */
    for (size_t i = 1; i < n; i++) {
        jv item = out.l->a[i], key = keys[i];
        size_t j = i;
        while (j > 0) {
            int cmp = jv_compare(r->c, keys[j - 1], key, at->line, at->col);
            if (reverse ? cmp >= 0 : cmp <= 0) break;
            out.l->a[j] = out.l->a[j - 1], keys[j] = keys[j - 1];
            j--;
        }
        out.l->a[j] = item, keys[j] = key;
    }
    return out;
}

/* select/reject/selectattr/rejectattr: KEEP says which; ATTR whether the
 * first argument is an attribute. */
static jv select_items(jx_render *r, const jnode *at, jv v, const args *a, int keep, int attr) {
    jv l = jinja_iter_list(r, v, at), out = jv_list_new(r->c, l.l->n);
    int off = attr ? 1 : 0;
    jv test = arg(a, off, NULL, jv_undef(NULL));
    args rest = {a->pos + off + 1, a->n_pos > off + 1 ? a->n_pos - off - 1 : 0, a->kw_names, a->kw, a->n_kw};
    for (size_t i = 0; i < l.l->n; i++) {
        jinja_step(r, at);
        jv item = attr ? attr_path(r, at, l.l->a[i], arg(a, 0, NULL, jv_undef(NULL))) : l.l->a[i];
        int ok = test.t == JV_UNDEF ? jv_truthy(item)
                                    : apply_test(r, at, want_str(r, at, test, "test name").s->p, item, &rest);
        if (ok == keep) jv_list_push(r->c, out, l.l->a[i]);
    }
    return out;
}

static jv to_int(jv v, jv def) {
    switch (v.t) {
    case JV_INT: return v;
    case JV_BOOL: return jv_int(v.b);
    case JV_FLOAT: return isfinite(v.f) && fabs(v.f) < 9.2e18 ? jv_int((int64_t)v.f) : def;
    case JV_STR: {
        char *end;
        const char *p = v.s->p;
        long long i = strtoll(p, &end, 10);
        while (*end == ' ' || *end == '\t' || *end == '\n') end++;
        if (end != p && !*end) return jv_int(i);
        double f = strtod(p, &end);
        while (*end == ' ' || *end == '\t' || *end == '\n') end++;
        if (end != p && !*end && isfinite(f) && fabs(f) < 9.2e18) return jv_int((int64_t)f);
        return def;
    }
    default: return def;
    }
}

static jv apply_filter(jx_render *r, const jnode *at, const char *name, jv v, const args *a) {
    jx_ctx *c = r->c;
    if (!strcmp(name, "default") || !strcmp(name, "d")) {
        jv def = arg(a, 0, "default_value", jv_cstr(c, ""));
        int boolean = jv_truthy(arg(a, 1, "boolean", jv_bool(0)));
        return (v.t == JV_UNDEF || (boolean && !jv_truthy(v))) ? def : v;
    }
    if (!strcmp(name, "length") || !strcmp(name, "count")) {
        switch (v.t) {
        case JV_UNDEF: return jv_int(0);
        case JV_STR: return jv_int((int64_t)jv_utf8_len(v.s->p, v.s->n));
        case JV_LIST: return jv_int((int64_t)v.l->n);
        case JV_DICT: return jv_int((int64_t)v.d->n);
        default: jx_fail(c, at->line, at->col, "object of type '%s' has no len()", jv_type_name(v));
        }
    }
    if (!strcmp(name, "string")) return soft_str(r, v);
    if (!strcmp(name, "safe")) return v;
    if (!strcmp(name, "trim")) return strip(r, soft_str(r, v), arg(a, 0, "chars", jv_none()), 3);
    if (!strcmp(name, "upper")) return recase(r, soft_str(r, v), 'u');
    if (!strcmp(name, "lower")) return recase(r, soft_str(r, v), 'l');
    if (!strcmp(name, "capitalize")) return recase(r, soft_str(r, v), 'c');
    if (!strcmp(name, "title")) return recase(r, soft_str(r, v), 'T');
    if (!strcmp(name, "escape") || !strcmp(name, "e")) {
        jv s = soft_str(r, v);
        jx_buf b = {0};
        jx_buf_add(c, &b, "", 0);
        for (size_t i = 0; i < s.s->n; i++) {
            const char *e = NULL;
            switch (s.s->p[i]) {
            case '&': e = "&amp;"; break;
            case '<': e = "&lt;"; break;
            case '>': e = "&gt;"; break;
            case '"': e = "&#34;"; break;
            case '\'': e = "&#39;"; break;
            }
            if (e) jx_buf_puts(c, &b, e);
            else jx_buf_add(c, &b, s.s->p + i, 1);
        }
        return jv_str(c, b.p, b.n);
    }
    if (!strcmp(name, "replace")) {
        jv count = arg(a, 2, "count", jv_none());
        return replace(r, soft_str(r, v), want_str(r, at, jv_to_str(c, arg(a, 0, "old", jv_undef(NULL))), "replace"),
                       jv_to_str(c, arg(a, 1, "new", jv_cstr(c, ""))),
                       count.t == JV_NONE ? -1 : want_int(r, at, count, "replace count"));
    }
    if (!strcmp(name, "join")) {
        jv l = jinja_iter_list(r, v, at), sep = soft_str(r, arg(a, 0, "d", jv_cstr(c, "")));
        jv attribute = arg(a, 1, "attribute", jv_undef(NULL));
        jx_buf b = {0};
        jx_buf_add(c, &b, "", 0);
        for (size_t i = 0; i < l.l->n; i++) {
            if (i) jx_buf_add(c, &b, sep.s->p, sep.s->n);
            jv item = attribute.t == JV_UNDEF ? l.l->a[i] : attr_path(r, at, l.l->a[i], attribute);
            jv_write_str(c, &b, item);
        }
        return jv_str(c, b.p, b.n);
    }
    if (!strcmp(name, "first") || !strcmp(name, "last")) {
        jv l = jinja_iter_list(r, v, at);
        if (!l.l->n) return jv_undef("no first item, sequence was empty");
        return l.l->a[name[0] == 'f' ? 0 : l.l->n - 1];
    }
    if (!strcmp(name, "list")) {
        jv l = jinja_iter_list(r, v, at), out = jv_list_new(c, l.l->n);
        for (size_t i = 0; i < l.l->n; i++) jv_list_push(c, out, l.l->a[i]);
        return out;
    }
    if (!strcmp(name, "reverse")) {
        if (v.t == JV_STR) {
            jv l = jinja_iter_list(r, v, at);
            jx_buf b = {0};
            jx_buf_add(c, &b, "", 0);
            for (size_t i = l.l->n; i-- > 0;) jx_buf_add(c, &b, l.l->a[i].s->p, l.l->a[i].s->n);
            return jv_str(c, b.p, b.n);
        }
        jv l = jinja_iter_list(r, v, at), out = jv_list_new(c, l.l->n);
        for (size_t i = l.l->n; i-- > 0;) jv_list_push(c, out, l.l->a[i]);
        return out;
    }
    if (!strcmp(name, "items") || !strcmp(name, "dictsort")) {
        if (v.t == JV_UNDEF) return jv_list_new(c, 1);
        if (v.t != JV_DICT) jx_fail(c, at->line, at->col, "%s: expected a mapping, got %s", name, jv_type_name(v));
        jv out = jv_list_new(c, v.d->n);
        for (size_t i = 0; i < v.d->n; i++) {
            jv pair = jv_list_new(c, 2);
            pair.flag = JV_FLAG_TUPLE;
            jv_list_push(c, pair, v.d->k[i]);
            jv_list_push(c, pair, v.d->v[i]);
            jv_list_push(c, out, pair);
        }
        if (name[0] == 'd') {
            int by_value = 0;
            jv by = arg(a, 2, "by", jv_cstr(c, "key"));
            if (by.t == JV_STR && !strcmp(by.s->p, "value")) by_value = 1;
            return sorted(r, at, out, jv_truthy(arg(a, 1, "reverse", jv_bool(0))),
                          jv_truthy(arg(a, 0, "case_sensitive", jv_bool(0))), jv_int(by_value));
        }
        return out;
    }
    if (!strcmp(name, "sort"))
        return sorted(r, at, jinja_iter_list(r, v, at), jv_truthy(arg(a, 0, "reverse", jv_bool(0))),
                      jv_truthy(arg(a, 1, "case_sensitive", jv_bool(0))), arg(a, 2, "attribute", jv_undef(NULL)));
    if (!strcmp(name, "unique")) {
        jv l = jinja_iter_list(r, v, at), out = jv_list_new(c, l.l->n);
        int cs = jv_truthy(arg(a, 0, "case_sensitive", jv_bool(0)));
        jv attribute = arg(a, 1, "attribute", jv_undef(NULL));
        jv seen = jv_list_new(c, l.l->n);
        for (size_t i = 0; i < l.l->n; i++) {
            jv k = attribute.t == JV_UNDEF ? l.l->a[i] : attr_path(r, at, l.l->a[i], attribute);
            if (!cs && k.t == JV_STR) k = recase(r, k, 'l');
            int dup = 0;
            for (size_t j = 0; j < seen.l->n && !dup; j++) dup = jv_equal(seen.l->a[j], k);
            if (!dup) jv_list_push(c, seen, k), jv_list_push(c, out, l.l->a[i]);
        }
        return out;
    }
    if (!strcmp(name, "min") || !strcmp(name, "max")) {
        jv l = sorted(r, at, jinja_iter_list(r, v, at), name[1] == 'a', jv_truthy(arg(a, 0, "case_sensitive", jv_bool(0))),
                      arg(a, 1, "attribute", jv_undef(NULL)));
        return l.l->n ? l.l->a[0] : jv_undef("no min/max item, sequence was empty");
    }
    if (!strcmp(name, "sum")) {
        jv l = jinja_iter_list(r, v, at), attribute = arg(a, 0, "attribute", jv_undef(NULL));
        jv total = arg(a, 1, "start", jv_int(0));
        for (size_t i = 0; i < l.l->n; i++) {
            jv item = attribute.t == JV_UNDEF ? l.l->a[i] : attr_path(r, at, l.l->a[i], attribute);
            if (total.t == JV_INT && item.t == JV_INT) {
                if (__builtin_add_overflow(total.i, item.i, &total.i)) jx_fail(c, at->line, at->col, "integer result out of range");
            } else if ((total.t == JV_INT || total.t == JV_FLOAT) && (item.t == JV_INT || item.t == JV_FLOAT || item.t == JV_BOOL)) {
                total = jv_float((total.t == JV_INT ? (double)total.i : total.f) +
                                 (item.t == JV_FLOAT ? item.f : item.t == JV_INT ? (double)item.i : item.b));
            } else {
                jx_fail(c, at->line, at->col, "sum: unsupported operand types %s and %s", jv_type_name(total), jv_type_name(item));
            }
        }
        return total;
    }
    if (!strcmp(name, "abs")) {
        if (v.t == JV_INT) {
            if (v.i == INT64_MIN) jx_fail(c, at->line, at->col, "integer result out of range");
            return jv_int(v.i < 0 ? -v.i : v.i);
        }
        if (v.t == JV_BOOL) return jv_int(v.b);
        if (v.t == JV_FLOAT) return jv_float(fabs(v.f));
        jx_fail(c, at->line, at->col, "bad operand type for abs(): '%s'", jv_type_name(v));
    }
    if (!strcmp(name, "int")) return to_int(v, arg(a, 0, "default", jv_int(0)));
    if (!strcmp(name, "float")) {
        jv def = arg(a, 0, "default", jv_float(0));
        if (v.t == JV_FLOAT) return v;
        if (v.t == JV_INT || v.t == JV_BOOL) return jv_float((double)(v.t == JV_INT ? v.i : v.b));
        if (v.t == JV_STR) {
            char *end;
            double f = strtod(v.s->p, &end);
            return end != v.s->p && !*end ? jv_float(f) : def;
        }
        return def;
    }
    if (!strcmp(name, "round")) {
        int64_t prec = want_int(r, at, arg(a, 0, "precision", jv_int(0)), "round precision");
        jv method = arg(a, 1, "method", jv_cstr(c, "common"));
        if (v.t != JV_FLOAT && v.t != JV_INT && v.t != JV_BOOL) jx_fail(c, at->line, at->col, "round: expected a number, got %s", jv_type_name(v));
        if (prec < 0 || prec > 17) jx_fail(c, at->line, at->col, "round: precision out of range");
        double x = v.t == JV_FLOAT ? v.f : (double)(v.t == JV_INT ? v.i : v.b);
        const char *m = method.t == JV_STR ? method.s->p : "";
        if (!strcmp(m, "common")) {
            if (v.t != JV_FLOAT) return jv_int(v.t == JV_INT ? v.i : v.b);
            char buf[400];
            snprintf(buf, sizeof buf, "%.*f", (int)prec, x);
            return jv_float(strtod(buf, NULL));
        }
        double p10 = pow(10, (double)prec);
        if (!strcmp(m, "floor")) return jv_float(floor(x * p10) / p10);
        if (!strcmp(m, "ceil")) return jv_float(ceil(x * p10) / p10);
        jx_fail(c, at->line, at->col, "method must be common, ceil or floor");
    }
    if (!strcmp(name, "tojson")) {
        jv indent = arg(a, 0, "indent", jv_none());
        jv seps = arg(a, -1, "separators", jv_none());
        int ind = indent.t == JV_NONE ? -1 : (int)want_int(r, at, indent, "tojson indent");
        if (ind > 64) ind = 64;
        const char *item_sep = ind >= 0 ? "," : ", ", *key_sep = ": ";
        if (seps.t == JV_LIST && seps.l->n == 2 && seps.l->a[0].t == JV_STR && seps.l->a[1].t == JV_STR)
            item_sep = seps.l->a[0].s->p, key_sep = seps.l->a[1].s->p;
        jx_buf b = {0};
        jx_buf_add(c, &b, "", 0);
        jv_write_json(c, &b, v, ind, item_sep, key_sep, jv_truthy(arg(a, -1, "sort_keys", jv_bool(0))), 0,
                      at->line, at->col);
        return jv_str(c, b.p, b.n);
    }
    if (!strcmp(name, "indent")) {
        jv width = arg(a, 0, "width", jv_int(4));
        int first = jv_truthy(arg(a, 1, "first", jv_bool(0))), blank = jv_truthy(arg(a, 2, "blank", jv_bool(0)));
        jx_buf pad = {0};
        jx_buf_add(c, &pad, "", 0);
        if (width.t == JV_STR) jx_buf_add(c, &pad, width.s->p, width.s->n);
        else for (int64_t k = want_int(r, at, width, "indent width"); k > 0 && pad.n < 1024; k--) jx_buf_puts(c, &pad, " ");
        jv s = soft_str(r, v);
        jx_buf b = {0};
        jx_buf_add(c, &b, "", 0);
        size_t i = 0;
        for (int line = 0; i <= s.s->n; line++) {
            const char *nl = memchr(s.s->p + i, '\n', s.s->n - i);
            size_t e = nl ? (size_t)(nl - s.s->p) : s.s->n;
            int empty = e == i;
            if ((line > 0 || first) && (blank || !empty)) jx_buf_add(c, &b, pad.p, pad.n);
            jx_buf_add(c, &b, s.s->p + i, e - i);
            if (!nl) break;
            jx_buf_puts(c, &b, "\n");
            i = e + 1;
        }
        return jv_str(c, b.p, b.n);
    }
    if (!strcmp(name, "wordcount")) return jv_int((int64_t)split(r, at, soft_str(r, v), jv_none(), -1, 0).l->n);
    if (!strcmp(name, "attr")) return attr_path(r, at, v, arg(a, 0, "name", jv_undef(NULL)));
    if (!strcmp(name, "map")) {
        jv l = jinja_iter_list(r, v, at), out = jv_list_new(c, l.l->n);
        jv attribute = arg(a, -1, "attribute", jv_undef(NULL));
        for (size_t i = 0; i < l.l->n; i++) {
            jinja_step(r, at);
            jv item = l.l->a[i];
            if (attribute.t != JV_UNDEF) {
                item = attr_path(r, at, item, attribute);
                if (item.t == JV_UNDEF) item = arg(a, -1, "default", item);
            } else {
                jv f = want_str(r, at, arg(a, 0, NULL, jv_undef(NULL)), "map filter name");
                args rest = {a->pos + 1, a->n_pos > 1 ? a->n_pos - 1 : 0, a->kw_names, a->kw, a->n_kw};
                item = apply_filter(r, at, f.s->p, item, &rest);
            }
            jv_list_push(c, out, item);
        }
        return out;
    }
    if (!strcmp(name, "select")) return select_items(r, at, v, a, 1, 0);
    if (!strcmp(name, "reject")) return select_items(r, at, v, a, 0, 0);
    if (!strcmp(name, "selectattr")) return select_items(r, at, v, a, 1, 1);
    if (!strcmp(name, "rejectattr")) return select_items(r, at, v, a, 0, 1);
    if (!strcmp(name, "center")) {
        jv s = soft_str(r, v);
        int64_t w = want_int(r, at, arg(a, 0, "width", jv_int(80)), "center width");
        int64_t n = (int64_t)jv_utf8_len(s.s->p, s.s->n);
        if (w <= n || w > 100000) return s;
        int64_t left = (w - n) / 2 + ((w - n) & w & 1), right = w - n - left;
        jx_buf b = {0};
        for (int64_t k = 0; k < left; k++) jx_buf_puts(c, &b, " ");
        jx_buf_add(c, &b, s.s->p, s.s->n);
        for (int64_t k = 0; k < right; k++) jx_buf_puts(c, &b, " ");
        return jv_str(c, b.p, b.n);
    }
    jx_fail(c, at->line, at->col, "no filter named '%s'", name);
}

static args eval_node_args(jx_render *r, jx_scope *s, const jnode *f) {
    args a = {0};
    a.n_pos = f->n_kids;
    a.pos = jx_alloc(r->c, (size_t)(f->n_kids + 1) * sizeof *a.pos);
    for (int k = 0; k < f->n_kids; k++) a.pos[k] = jinja_eval(r, s, f->kids[k]);
    a.n_kw = f->n_kw;
    a.kw_names = f->kw_names;
    a.kw = jx_alloc(r->c, (size_t)(f->n_kw + 1) * sizeof *a.kw);
    for (int k = 0; k < f->n_kw; k++) a.kw[k] = jinja_eval(r, s, f->kw[k]);
    return a;
}

jv jinja_filter(jx_render *r, jx_scope *s, const jnode *f, jv v) {
    args a = eval_node_args(r, s, f);
    return apply_filter(r, f, f->name, v, &a);
}

int jinja_test(jx_render *r, jx_scope *s, const jnode *t, jv v) {
    args a = eval_node_args(r, s, t);
    return apply_test(r, t, t->name, v, &a);
}

/* ---- methods ---- */

jv jinja_method(jx_render *r, jv obj, const char *name, jv *pos, int n_pos, const char **kw_names,
                jv *kw, int n_kw, const jnode *at, int *handled) {
    jx_ctx *c = r->c;
    args a = {pos, n_pos, kw_names, kw, n_kw};
    *handled = 1;
    if (obj.t == JV_STR) {
        if (!strcmp(name, "strip")) return strip(r, obj, arg(&a, 0, NULL, jv_none()), 3);
        if (!strcmp(name, "lstrip")) return strip(r, obj, arg(&a, 0, NULL, jv_none()), 1);
        if (!strcmp(name, "rstrip")) return strip(r, obj, arg(&a, 0, NULL, jv_none()), 2);
        if (!strcmp(name, "upper")) return recase(r, obj, 'u');
        if (!strcmp(name, "lower")) return recase(r, obj, 'l');
        if (!strcmp(name, "title")) return recase(r, obj, 't');
        if (!strcmp(name, "capitalize")) return recase(r, obj, 'c');
        if (!strcmp(name, "split") || !strcmp(name, "rsplit")) {
            jv ms = arg(&a, 1, "maxsplit", jv_int(-1));
            return split(r, at, obj, arg(&a, 0, "sep", jv_none()), want_int(r, at, ms, "maxsplit"), name[0] == 'r');
        }
        if (!strcmp(name, "splitlines")) {
            jv out = jv_list_new(c, 4);
            size_t i = 0;
            while (i < obj.s->n) {
                size_t e = i;
                while (e < obj.s->n && obj.s->p[e] != '\n' && obj.s->p[e] != '\r') e++;
                jv_list_push(c, out, jv_str(c, obj.s->p + i, e - i));
                if (e < obj.s->n && obj.s->p[e] == '\r' && e + 1 < obj.s->n && obj.s->p[e + 1] == '\n') e++;
                i = e + 1;
            }
            return out;
        }
        if (!strcmp(name, "startswith") || !strcmp(name, "endswith")) {
            jv x = arg(&a, 0, NULL, jv_undef(NULL));
            int end = name[0] == 'e';
            if (x.t == JV_LIST) {
                for (size_t i = 0; i < x.l->n; i++)
                    if (starts_ends(obj, x.l->a[i], end)) return jv_bool(1);
                return jv_bool(0);
            }
            want_str(r, at, x, name);
            return jv_bool(starts_ends(obj, x, end));
        }
        if (!strcmp(name, "replace")) {
            jv count = arg(&a, 2, NULL, jv_int(-1));
            return replace(r, obj, want_str(r, at, arg(&a, 0, NULL, jv_undef(NULL)), "replace"),
                           want_str(r, at, arg(&a, 1, NULL, jv_undef(NULL)), "replace"), want_int(r, at, count, "count"));
        }
        if (!strcmp(name, "find") || !strcmp(name, "rfind") || !strcmp(name, "index") || !strcmp(name, "count")) {
            jv x = want_str(r, at, arg(&a, 0, NULL, jv_undef(NULL)), name);
            if (name[0] == 'c') {
                int64_t k = 0;
                if (!x.s->n) return jv_int((int64_t)jv_utf8_len(obj.s->p, obj.s->n) + 1);
                for (const char *p = obj.s->p; (p = memmem(p, obj.s->n - (size_t)(p - obj.s->p), x.s->p, x.s->n)); p += x.s->n) k++;
                return jv_int(k);
            }
            const char *hit = NULL;
            if (name[0] == 'r') {
                for (size_t j = obj.s->n + 1; j-- > 0 && !hit;)
                    if (j + x.s->n <= obj.s->n && !memcmp(obj.s->p + j, x.s->p, x.s->n)) hit = obj.s->p + j;
            } else {
                hit = memmem(obj.s->p, obj.s->n, x.s->p, x.s->n);
            }
            if (!hit && name[0] == 'i') jx_fail(c, at->line, at->col, "substring not found");
            return jv_int(hit ? (int64_t)jv_utf8_len(obj.s->p, (size_t)(hit - obj.s->p)) : -1);
        }
        if (!strcmp(name, "join")) {
            jv l = jinja_iter_list(r, arg(&a, 0, NULL, jv_undef(NULL)), at);
            jx_buf b = {0};
            jx_buf_add(c, &b, "", 0);
            for (size_t i = 0; i < l.l->n; i++) {
                if (i) jx_buf_add(c, &b, obj.s->p, obj.s->n);
                jx_buf_add(c, &b, want_str(r, at, l.l->a[i], "join item").s->p, l.l->a[i].s->n);
            }
            return jv_str(c, b.p, b.n);
        }
        if (!strncmp(name, "is", 2)) {
            int all = obj.s->n > 0, any_cased = 0;
            for (size_t i = 0; i < obj.s->n && all;) {
                utf8proc_int32_t cp;
                i += cp_at(obj.s->p, obj.s->n, i, &cp);
                utf8proc_category_t cat = utf8proc_category(cp);
                int letter = cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
                int digit = cat == UTF8PROC_CATEGORY_ND;
                if (!strcmp(name, "isdigit") || !strcmp(name, "isnumeric") || !strcmp(name, "isdecimal")) all = digit;
                else if (!strcmp(name, "isalpha")) all = letter;
                else if (!strcmp(name, "isalnum")) all = letter || digit;
                else if (!strcmp(name, "isspace")) all = py_space(cp);
                else if (!strcmp(name, "isupper") || !strcmp(name, "islower")) {
                    int up = cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LT, lo = cat == UTF8PROC_CATEGORY_LL;
                    any_cased |= up || lo;
                    if (name[2] == 'u' ? lo : up) all = 0;
                } else {
                    *handled = 0;
                    return jv_none();
                }
            }
            if (!strcmp(name, "isupper") || !strcmp(name, "islower")) all = all && any_cased;
            return jv_bool(all);
        }
    } else if (obj.t == JV_DICT && !(obj.flag & (JV_FLAG_NAMESPACE | JV_FLAG_LOOP))) {
        if (!strcmp(name, "items")) return apply_filter(r, at, "items", obj, &(args){0});
        if (!strcmp(name, "keys")) return jinja_iter_list(r, obj, at);
        if (!strcmp(name, "values")) {
            jv out = jv_list_new(c, obj.d->n);
            for (size_t i = 0; i < obj.d->n; i++) jv_list_push(c, out, obj.d->v[i]);
            return out;
        }
        if (!strcmp(name, "get")) {
            jv *v = jv_dict_find(obj, arg(&a, 0, NULL, jv_undef(NULL)));
            return v ? *v : arg(&a, 1, NULL, jv_none());
        }
        static const char *const unsafe[] = {"update", "pop", "popitem", "setdefault", "clear"};
        for (size_t k = 0; k < sizeof unsafe / sizeof *unsafe; k++)
            if (!strcmp(name, unsafe[k]))
                jx_fail(c, at->line, at->col, "access to attribute '%s' of 'dict' object is unsafe.", name);
    } else if (obj.t == JV_LIST) {
        if (!strcmp(name, "index") || !strcmp(name, "count")) {
            jv x = arg(&a, 0, NULL, jv_undef(NULL));
            int64_t k = 0;
            for (size_t i = 0; i < obj.l->n; i++)
                if (jv_equal(obj.l->a[i], x)) {
                    if (name[0] == 'i') return jv_int((int64_t)i);
                    k++;
                }
            if (name[0] == 'i') jx_fail(c, at->line, at->col, "value is not in list");
            return jv_int(k);
        }
        static const char *const unsafe[] = {"append", "extend", "insert", "pop", "remove", "reverse", "sort", "clear"};
        for (size_t k = 0; k < sizeof unsafe / sizeof *unsafe; k++)
            if (!strcmp(name, unsafe[k]))
                jx_fail(c, at->line, at->col, "access to attribute '%s' of '%s' object is unsafe.", name, jv_type_name(obj));
    }
    *handled = 0;
    return jv_none();
}
