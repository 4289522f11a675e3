/* jinja_value — the interpreter's arena and values: construction, Python's
 * truth, equality and ordering, str()/repr(), and transformers' tojson
 * (json.dumps with ensure_ascii=False). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_internal.h"

/* ---- arena ---- */

_Noreturn void jx_fail(jx_ctx *c, int line, int col, const char *fmt, ...) {
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line > 0) dp_fail(c->err, "%d:%d: %s", line, col, msg);
    else dp_fail(c->err, "%s", msg);
    longjmp(c->jb, 1);
}

void *jx_alloc(jx_ctx *c, size_t n) {
    n = (n + 15) & ~(size_t)15;
    jx_block *b = c->blocks;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        if (c->bytes + cap > c->max_bytes)
            jx_fail(c, 0, 0, "template used more than %zu MiB of memory", c->max_bytes >> 20);
        b = malloc(sizeof *b + cap);
        if (!b) jx_fail(c, 0, 0, "out of memory rendering a template");
        b->cap = cap;
        b->used = 0;
        c->bytes += cap;
        if (c->blocks && n > 65536) { /* a big one: keep filling the current block */
            b->next = c->blocks->next;
            c->blocks->next = b;
        } else {
            b->next = c->blocks;
            c->blocks = b;
        }
    }
    void *p = b->mem + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

char *jx_strndup(jx_ctx *c, const char *s, size_t n) {
    char *p = jx_alloc(c, n + 1);
    if (n) memcpy(p, s, n);
    return p;
}

void jx_free_all(jx_ctx *c) {
    for (jx_block *b = c->blocks, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    c->blocks = NULL;
    c->bytes = 0;
}

void jx_buf_add(jx_ctx *c, jx_buf *b, const char *s, size_t n) {
    if (b->max && b->n + n > b->max)
        jx_fail(c, 0, 0, "template output longer than %zu bytes", b->max);
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = jx_alloc(c, cap);
        if (b->n) memcpy(p, b->p, b->n);
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

void jx_buf_puts(jx_ctx *c, jx_buf *b, const char *s) { jx_buf_add(c, b, s, strlen(s)); }

/* ---- construction ---- */

jv jv_undef(const char *name) { return (jv){.t = JV_UNDEF, .uname = name}; }
jv jv_none(void) { return (jv){.t = JV_NONE}; }
jv jv_bool(int b) { return (jv){.t = JV_BOOL, .b = !!b}; }
jv jv_int(int64_t i) { return (jv){.t = JV_INT, .i = i}; }
jv jv_float(double f) { return (jv){.t = JV_FLOAT, .f = f}; }

jv jv_str(jx_ctx *c, const char *s, size_t n) {
    jv_string *p = jx_alloc(c, sizeof *p + n + 1);
    p->n = n;
    if (n) memcpy(p->p, s, n);
    return (jv){.t = JV_STR, .s = p};
}

jv jv_cstr(jx_ctx *c, const char *s) { return jv_str(c, s, strlen(s)); }

jv jv_list_new(jx_ctx *c, size_t cap) {
    jv_list *l = jx_alloc(c, sizeof *l);
    l->cap = cap ? cap : 4;
    l->a = jx_alloc(c, l->cap * sizeof *l->a);
    return (jv){.t = JV_LIST, .l = l};
}

void jv_list_push(jx_ctx *c, jv list, jv item) {
    jv_list *l = list.l;
    if (l->n == l->cap) {
        jv *a = jx_alloc(c, 2 * l->cap * sizeof *a);
        memcpy(a, l->a, l->n * sizeof *a);
        l->a = a;
        l->cap *= 2;
    }
    l->a[l->n++] = item;
}

jv jv_dict_new(jx_ctx *c) {
    jv_dict *d = jx_alloc(c, sizeof *d);
    d->cap = 4;
    d->k = jx_alloc(c, d->cap * sizeof *d->k);
    d->v = jx_alloc(c, d->cap * sizeof *d->v);
    return (jv){.t = JV_DICT, .d = d};
}

jv *jv_dict_find(jv dict, jv key) {
    jv_dict *d = dict.d;
    for (size_t i = 0; i < d->n; i++)
        if (jv_equal(d->k[i], key)) return &d->v[i];
    return NULL;
}

jv *jv_dict_findc(jv dict, const char *key) {
    jv_dict *d = dict.d;
    size_t n = strlen(key);
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].t == JV_STR && d->k[i].s->n == n && !memcmp(d->k[i].s->p, key, n)) return &d->v[i];
    return NULL;
}

void jv_dict_set(jx_ctx *c, jv dict, jv key, jv value) {
    jv *slot = jv_dict_find(dict, key);
    if (slot) {
        *slot = value;
        return;
    }
    jv_dict *d = dict.d;
    if (d->n == d->cap) {
        jv *k = jx_alloc(c, 2 * d->cap * sizeof *k), *v = jx_alloc(c, 2 * d->cap * sizeof *v);
        memcpy(k, d->k, d->n * sizeof *k);
        memcpy(v, d->v, d->n * sizeof *v);
        d->k = k, d->v = v, d->cap *= 2;
    }
    d->k[d->n] = key;
    d->v[d->n++] = value;
}

jv jv_from_json(jx_ctx *c, const json_t *j) {
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        jv d = jv_dict_new(c);
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v) jv_dict_set(c, d, jv_cstr(c, k), jv_from_json(c, v));
        return d;
    }
    case JSON_ARRAY: {
        jv l = jv_list_new(c, json_array_size(j));
        for (size_t i = 0; i < json_array_size(j); i++) jv_list_push(c, l, jv_from_json(c, json_array_get(j, i)));
        return l;
    }
    case JSON_STRING: return jv_str(c, json_string_value(j), json_string_length(j));
    case JSON_INTEGER: return jv_int(json_integer_value(j));
    case JSON_REAL: return jv_float(json_real_value(j));
    case JSON_TRUE: return jv_bool(1);
    case JSON_FALSE: return jv_bool(0);
    case JSON_NULL: return jv_none();
    }
    return jv_none();
}

/* ---- Python semantics ---- */

int jv_truthy(jv v) {
    switch (v.t) {
    case JV_UNDEF:
    case JV_NONE: return 0;
    case JV_BOOL: return v.b;
    case JV_INT: return v.i != 0;
    case JV_FLOAT: return v.f != 0;
    case JV_STR: return v.s->n != 0;
    case JV_LIST: return v.l->n != 0;
    case JV_DICT: return (v.flag & (JV_FLAG_NAMESPACE | JV_FLAG_LOOP)) || v.d->n != 0;
    default: return 1;
    }
}

static int is_num(jv v) { return v.t == JV_BOOL || v.t == JV_INT || v.t == JV_FLOAT; }
static double num(jv v) { return v.t == JV_FLOAT ? v.f : v.t == JV_INT ? (double)v.i : v.b; }
static int64_t inum(jv v) { return v.t == JV_INT ? v.i : v.b; }

int jv_equal(jv a, jv b) {
    if (is_num(a) && is_num(b)) {
        if (a.t != JV_FLOAT && b.t != JV_FLOAT) return inum(a) == inum(b);
        return num(a) == num(b);
    }
    if (a.t != b.t) return 0;
    switch (a.t) {
    case JV_UNDEF:
    case JV_NONE: return 1;
    case JV_STR: return a.s->n == b.s->n && !memcmp(a.s->p, b.s->p, a.s->n);
    case JV_LIST:
        if ((a.flag & JV_FLAG_TUPLE) != (b.flag & JV_FLAG_TUPLE) || a.l->n != b.l->n) return 0;
        for (size_t i = 0; i < a.l->n; i++)
            if (!jv_equal(a.l->a[i], b.l->a[i])) return 0;
        return 1;
    case JV_DICT:
        if (a.flag || b.flag) return a.d == b.d;
        if (a.d->n != b.d->n) return 0;
        for (size_t i = 0; i < a.d->n; i++) {
            jv *o = jv_dict_find(b, a.d->k[i]);
            if (!o || !jv_equal(a.d->v[i], *o)) return 0;
        }
        return 1;
    case JV_MACRO: return a.m == b.m;
    case JV_FUNC: return a.fn == b.fn;
    default: return 0;
    }
}

const char *jv_type_name(jv v) {
    switch (v.t) {
    case JV_UNDEF: return "Undefined";
    case JV_NONE: return "NoneType";
    case JV_BOOL: return "bool";
    case JV_INT: return "int";
    case JV_FLOAT: return "float";
    case JV_STR: return "str";
    case JV_LIST: return v.flag & JV_FLAG_TUPLE ? "tuple" : "list";
    case JV_DICT: return v.flag & JV_FLAG_NAMESPACE ? "Namespace" : v.flag & JV_FLAG_LOOP ? "LoopContext" : "dict";
    case JV_MACRO: return "Macro";
    default: return "builtin_function_or_method";
    }
}

int jv_compare(jx_ctx *c, jv a, jv b, int line, int col) {
    if (is_num(a) && is_num(b)) {
        if (a.t != JV_FLOAT && b.t != JV_FLOAT) return (inum(a) > inum(b)) - (inum(a) < inum(b));
        return (num(a) > num(b)) - (num(a) < num(b));
    }
    if (a.t == JV_STR && b.t == JV_STR) { /* UTF-8 byte order is code point order */
        size_t n = a.s->n < b.s->n ? a.s->n : b.s->n;
        int r = memcmp(a.s->p, b.s->p, n);
        if (r) return r < 0 ? -1 : 1;
        return (a.s->n > b.s->n) - (a.s->n < b.s->n);
    }
    if (a.t == JV_LIST && b.t == JV_LIST && (a.flag & JV_FLAG_TUPLE) == (b.flag & JV_FLAG_TUPLE)) {
        for (size_t i = 0; i < a.l->n && i < b.l->n; i++)
            if (!jv_equal(a.l->a[i], b.l->a[i])) return jv_compare(c, a.l->a[i], b.l->a[i], line, col);
        return (a.l->n > b.l->n) - (a.l->n < b.l->n);
    }
    jx_fail(c, line, col, "'<' not supported between instances of '%s' and '%s'", jv_type_name(a),
            jv_type_name(b));
}

size_t jv_utf8_len(const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

/* ---- printing ---- */

/* repr(float): the shortest digits that read back, in Python's layout. */
static void write_float(jx_ctx *c, jx_buf *b, double f) {
    if (isnan(f)) return jx_buf_puts(c, b, "nan");
    if (isinf(f)) return jx_buf_puts(c, b, f > 0 ? "inf" : "-inf");
    char s[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(s, sizeof s, "%.*e", p - 1, f);
        if (strtod(s, NULL) == f) break;
    }
    /* s is d.ddde[+-]XX: rebuild as Python's repr does */
    char digits[24];
    int nd = 0, neg = s[0] == '-';
    const char *q = s + neg;
    for (; *q && *q != 'e'; q++)
        if (*q != '.') digits[nd++] = *q;
    int exp = atoi(q + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    char o[64];
    int k = 0;
    if (neg) o[k++] = '-';
    if (exp < -4 || exp >= 16) {
        o[k++] = digits[0];
        if (nd > 1) {
            o[k++] = '.';
            for (int i = 1; i < nd; i++) o[k++] = digits[i];
        }
        k += snprintf(o + k, sizeof o - k, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    } else if (exp < 0) {
        o[k++] = '0', o[k++] = '.';
        for (int i = 0; i < -exp - 1; i++) o[k++] = '0';
        for (int i = 0; i < nd; i++) o[k++] = digits[i];
    } else {
        for (int i = 0; i <= exp; i++) o[k++] = i < nd ? digits[i] : '0';
        o[k++] = '.';
        if (nd > exp + 1)
            for (int i = exp + 1; i < nd; i++) o[k++] = digits[i];
        else
            o[k++] = '0';
    }
    jx_buf_add(c, b, o, (size_t)k);
}

static void write_str_repr(jx_ctx *c, jx_buf *b, const jv_string *s) {
    int q = memchr(s->p, '\'', s->n) && !memchr(s->p, '"', s->n) ? '"' : '\'';
    char qc = (char)q;
    jx_buf_add(c, b, &qc, 1);
    for (size_t i = 0; i < s->n; i++) {
        unsigned char ch = (unsigned char)s->p[i];
        char e[8];
        if (ch == '\\' || ch == q) e[0] = '\\', e[1] = (char)ch, jx_buf_add(c, b, e, 2);
        else if (ch == '\n') jx_buf_puts(c, b, "\\n");
        else if (ch == '\r') jx_buf_puts(c, b, "\\r");
        else if (ch == '\t') jx_buf_puts(c, b, "\\t");
        else if (ch < 0x20 || ch == 0x7f) snprintf(e, sizeof e, "\\x%02x", ch), jx_buf_puts(c, b, e);
        else jx_buf_add(c, b, (const char *)&ch, 1);
    }
    jx_buf_add(c, b, &qc, 1);
}

static void write_any(jx_ctx *c, jx_buf *b, jv v, int repr, int depth) {
    if (depth > 200) jx_fail(c, 0, 0, "value nested too deeply to print");
    switch (v.t) {
    case JV_UNDEF: return;
    case JV_NONE: return jx_buf_puts(c, b, "None");
    case JV_BOOL: return jx_buf_puts(c, b, v.b ? "True" : "False");
    case JV_INT: {
        char s[32];
        snprintf(s, sizeof s, "%lld", (long long)v.i);
        return jx_buf_puts(c, b, s);
    }
    case JV_FLOAT: return write_float(c, b, v.f);
    case JV_STR:
        if (repr) return write_str_repr(c, b, v.s);
        return jx_buf_add(c, b, v.s->p, v.s->n);
    case JV_LIST: {
        int tuple = v.flag & JV_FLAG_TUPLE;
        jx_buf_puts(c, b, tuple ? "(" : "[");
        for (size_t i = 0; i < v.l->n; i++) {
            if (i) jx_buf_puts(c, b, ", ");
            write_any(c, b, v.l->a[i], 1, depth + 1);
        }
        if (tuple && v.l->n == 1) jx_buf_puts(c, b, ",");
        return jx_buf_puts(c, b, tuple ? ")" : "]");
    }
    case JV_DICT:
        if (v.flag & JV_FLAG_NAMESPACE) jx_buf_puts(c, b, "<Namespace ");
        jx_buf_puts(c, b, "{");
        for (size_t i = 0; i < v.d->n; i++) {
            if (i) jx_buf_puts(c, b, ", ");
            write_any(c, b, v.d->k[i], 1, depth + 1);
            jx_buf_puts(c, b, ": ");
            write_any(c, b, v.d->v[i], 1, depth + 1);
        }
        jx_buf_puts(c, b, "}");
        if (v.flag & JV_FLAG_NAMESPACE) jx_buf_puts(c, b, ">");
        return;
    case JV_MACRO: return jx_buf_puts(c, b, "<Macro>");
    default: return jx_buf_puts(c, b, "<built-in function>");
    }
}

void jv_write_str(jx_ctx *c, jx_buf *b, jv v) { write_any(c, b, v, 0, 0); }
void jv_write_repr(jx_ctx *c, jx_buf *b, jv v) { write_any(c, b, v, 1, 0); }

jv jv_to_str(jx_ctx *c, jv v) {
    if (v.t == JV_STR) return v;
    jx_buf b = {0};
    jv_write_str(c, &b, v);
    return jv_str(c, b.p ? b.p : "", b.n);
}

static void write_json_string(jx_ctx *c, jx_buf *b, const char *s, size_t n) {
    jx_buf_puts(c, b, "\"");
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        const char *e = NULL;
        char hex[8];
        switch (ch) {
        case '"': e = "\\\""; break;
        case '\\': e = "\\\\"; break;
        case '\n': e = "\\n"; break;
        case '\r': e = "\\r"; break;
        case '\t': e = "\\t"; break;
        case '\b': e = "\\b"; break;
        case '\f': e = "\\f"; break;
        default:
            if (ch < 0x20) snprintf(hex, sizeof hex, "\\u%04x", ch), e = hex;
        }
        if (e) {
            jx_buf_add(c, b, s + run, i - run);
            jx_buf_puts(c, b, e);
            run = i + 1;
        }
    }
    jx_buf_add(c, b, s + run, n - run);
    jx_buf_puts(c, b, "\"");
}

static void json_newline(jx_ctx *c, jx_buf *b, int indent, int depth) {
    jx_buf_puts(c, b, "\n");
    for (int i = 0; i < indent * depth; i++) jx_buf_puts(c, b, " ");
}

static int key_cmp(const void *x, const void *y) {
    const jv *a = *(const jv *const *)x, *b = *(const jv *const *)y;
    size_t n = a->s->n < b->s->n ? a->s->n : b->s->n;
    int r = memcmp(a->s->p, b->s->p, n);
    return r ? r : (a->s->n > b->s->n) - (a->s->n < b->s->n);
}

void jv_write_json(jx_ctx *c, jx_buf *b, jv v, int indent, const char *item_sep,
                   const char *key_sep, int sort_keys, int depth, int line, int col) {
    if (depth > 200) jx_fail(c, line, col, "tojson: value nested too deeply");
    switch (v.t) {
    case JV_NONE: return jx_buf_puts(c, b, "null");
    case JV_BOOL: return jx_buf_puts(c, b, v.b ? "true" : "false");
    case JV_INT: return jv_write_str(c, b, v);
    case JV_FLOAT:
        if (isnan(v.f)) return jx_buf_puts(c, b, "NaN");
        if (isinf(v.f)) return jx_buf_puts(c, b, v.f > 0 ? "Infinity" : "-Infinity");
        return write_float(c, b, v.f);
    case JV_STR: return write_json_string(c, b, v.s->p, v.s->n);
    case JV_LIST:
        if (!v.l->n) return jx_buf_puts(c, b, "[]");
        jx_buf_puts(c, b, "[");
        for (size_t i = 0; i < v.l->n; i++) {
            if (i) jx_buf_puts(c, b, item_sep);
            if (indent >= 0) json_newline(c, b, indent, depth + 1);
            jv_write_json(c, b, v.l->a[i], indent, item_sep, key_sep, sort_keys, depth + 1, line, col);
        }
        if (indent >= 0) json_newline(c, b, indent, depth);
        return jx_buf_puts(c, b, "]");
    case JV_DICT: {
        if (v.flag) break;
        if (!v.d->n) return jx_buf_puts(c, b, "{}");
        size_t n = v.d->n;
        jv **keys = jx_alloc(c, n * sizeof *keys);
        for (size_t i = 0; i < n; i++) {
            keys[i] = &v.d->k[i];
            if (keys[i]->t != JV_STR)
                jx_fail(c, line, col, "tojson: keys must be str, not %s", jv_type_name(*keys[i]));
        }
        if (sort_keys) qsort(keys, n, sizeof *keys, key_cmp);
        jx_buf_puts(c, b, "{");
        for (size_t i = 0; i < n; i++) {
            if (i) jx_buf_puts(c, b, item_sep);
            if (indent >= 0) json_newline(c, b, indent, depth + 1);
            write_json_string(c, b, keys[i]->s->p, keys[i]->s->n);
            jx_buf_puts(c, b, key_sep);
            jv_write_json(c, b, v.d->v[keys[i] - v.d->k], indent, item_sep, key_sep, sort_keys,
                          depth + 1, line, col);
        }
        if (indent >= 0) json_newline(c, b, indent, depth);
        return jx_buf_puts(c, b, "}");
    }
    default: break;
    }
    jx_fail(c, line, col, "Object of type %s is not JSON serializable", jv_type_name(v));
}
