/* jinja_eval — renders a syntax tree: statements, expressions, scopes,
 * macros and the globals transformers adds (raise_exception,
 * strftime_now, range, namespace, dict). Filters, tests and methods are
 * jinja_filters.c's. Scopes as Jinja's: a for loop's body and a macro's
 * body are scopes of their own ("set" inside them does not leak out);
 * if-blocks are not. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jinja_internal.h"

enum { GO_ON, BROKE, CONTINUED };
enum { FN_RANGE = 1, FN_NAMESPACE, FN_DICT, FN_RAISE, FN_STRFTIME, FN_CYCLE };

static int render_body(jx_render *r, jx_scope *s, const jnode *body);

void jinja_step(jx_render *r, const jnode *at) {
    if (++r->c->steps > r->c->max_steps)
        jx_fail(r->c, at->line, at->col, "template ran more than %zu loop iterations or calls",
                r->c->max_steps);
}

static jx_scope *scope_new(jx_render *r, jx_scope *parent) {
    jx_scope *s = jx_alloc(r->c, sizeof *s);
    s->parent = parent;
    s->vars = jv_dict_new(r->c);
    return s;
}

static jv lookup(jx_render *r, jx_scope *s, const char *name) {
    for (; s; s = s->parent) {
        jv *v = jv_dict_findc(s->vars, name);
        if (v) return *v;
    }
    static const struct { const char *name; int fn; } builtins[] = {
        {"range", FN_RANGE}, {"namespace", FN_NAMESPACE}, {"dict", FN_DICT},
        {"raise_exception", FN_RAISE}, {"strftime_now", FN_STRFTIME}};
    for (size_t k = 0; k < sizeof builtins / sizeof *builtins; k++)
        if (!strcmp(name, builtins[k].name)) return (jv){.t = JV_FUNC, .fn = builtins[k].fn};
    char *msg = jx_alloc(r->c, strlen(name) + 20);
    sprintf(msg, "'%s' is undefined", name);
    return jv_undef(msg);
}

static void assign(jx_render *r, jx_scope *s, const char *name, jv v) {
    jv *slot = jv_dict_findc(s->vars, name);
    if (slot) *slot = v;
    else jv_dict_set(r->c, s->vars, jv_cstr(r->c, name), v);
}

/* Assigns V to the targets of node N (one name, or unpacking). */
static void assign_targets(jx_render *r, jx_scope *s, const jnode *n, jv v) {
    if (n->n_names == 1) return assign(r, s, n->names[0], v);
    jv items = jinja_iter_list(r, v, n);
    if ((int)items.l->n != n->n_names)
        jx_fail(r->c, n->line, n->col, "cannot unpack %zu values into %d names", items.l->n, n->n_names);
    for (int k = 0; k < n->n_names; k++) assign(r, s, n->names[k], items.l->a[k]);
}

static _Noreturn void undefined_error(jx_render *r, const jnode *at, jv v) {
    jx_fail(r->c, at->line, at->col, "%s", v.uname ? v.uname : "value is undefined");
}

jv jinja_getattr(jx_render *r, jv obj, jv key, const jnode *at) {
    if (obj.t == JV_UNDEF) undefined_error(r, at, obj);
    if (obj.t == JV_DICT) {
        jv *v = jv_dict_find(obj, key);
        if (v) return *v;
    } else if ((obj.t == JV_LIST || obj.t == JV_STR) && (key.t == JV_INT || key.t == JV_BOOL)) {
        int64_t i = key.t == JV_INT ? key.i : key.b;
        if (obj.t == JV_LIST) {
            int64_t n = (int64_t)obj.l->n;
            if (i < 0) i += n;
            if (i >= 0 && i < n) return obj.l->a[i];
        } else {
            int64_t n = (int64_t)jv_utf8_len(obj.s->p, obj.s->n);
            if (i < 0) i += n;
            if (i >= 0 && i < n) {
                size_t b = 0;
                for (int64_t k = 0; k <= i; b++)
                    if (((unsigned char)obj.s->p[b] & 0xC0) != 0x80 && k++ == i) break;
                size_t e = b + 1;
                while (e < obj.s->n && ((unsigned char)obj.s->p[e] & 0xC0) == 0x80) e++;
                return jv_str(r->c, obj.s->p + b, e - b);
            }
        }
    }
    jx_buf b = {0};
    jx_buf_puts(r->c, &b, "'");
    jx_buf_puts(r->c, &b, jv_type_name(obj));
    jx_buf_puts(r->c, &b, " object' has no attribute ");
    jv_write_repr(r->c, &b, key);
    return jv_undef(b.p);
}

/* Python's slice.indices for a sequence of length N. */
static void slice_indices(jx_render *r, const jnode *e, jv vs[3], int64_t n, int64_t *start,
                          int64_t *stop, int64_t *step) {
    *step = vs[2].t == JV_NONE || vs[2].t == JV_UNDEF ? 1 : vs[2].i;
    if (*step == 0) jx_fail(r->c, e->line, e->col, "slice step cannot be zero");
    int64_t lo = *step < 0 ? -1 : 0, hi = *step < 0 ? n - 1 : n;
    for (int k = 0; k < 2; k++) {
        int64_t *out = k ? stop : start;
        if (vs[k].t == JV_NONE || vs[k].t == JV_UNDEF) {
            *out = (*step < 0) == (k == 0) ? hi : lo;
        } else {
            int64_t v = vs[k].i;
            if (v < 0) v = v + n < lo ? lo : v + n;
            else if (v > hi) v = hi;
            *out = v;
        }
    }
}

static jv eval_slice(jx_render *r, jx_scope *s, const jnode *e) {
    jv obj = jinja_eval(r, s, e->a), vs[3];
    const jnode *parts[3] = {e->b, e->c, e->d};
    for (int k = 0; k < 3; k++) {
        vs[k] = parts[k] ? jinja_eval(r, s, parts[k]) : jv_none();
        if (vs[k].t == JV_BOOL) vs[k] = jv_int(vs[k].b);
        if (vs[k].t != JV_NONE && vs[k].t != JV_INT)
            jx_fail(r->c, e->line, e->col, "slice indices must be integers or None, not %s", jv_type_name(vs[k]));
    }
    if (obj.t == JV_UNDEF) undefined_error(r, e, obj);
    int64_t start, stop, step;
    if (obj.t == JV_LIST) {
        slice_indices(r, e, vs, (int64_t)obj.l->n, &start, &stop, &step);
        jv out = jv_list_new(r->c, 4);
        out.flag = obj.flag & JV_FLAG_TUPLE;
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) jv_list_push(r->c, out, obj.l->a[i]);
        return out;
    }
    if (obj.t == JV_STR) {
        size_t n = jv_utf8_len(obj.s->p, obj.s->n);
        size_t *off = jx_alloc(r->c, (n + 1) * sizeof *off);
        for (size_t b = 0, k = 0; b <= obj.s->n; b++)
            if (b == obj.s->n || ((unsigned char)obj.s->p[b] & 0xC0) != 0x80) off[k++] = b;
        slice_indices(r, e, vs, (int64_t)n, &start, &stop, &step);
        jx_buf b = {0};
        jx_buf_add(r->c, &b, "", 0);
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step)
            jx_buf_add(r->c, &b, obj.s->p + off[i], off[i + 1] - off[i]);
        return jv_str(r->c, b.p, b.n);
    }
    jx_fail(r->c, e->line, e->col, "'%s' object is not subscriptable", jv_type_name(obj));
}

static int is_intlike(jv v) { return v.t == JV_INT || v.t == JV_BOOL; }
static int64_t ival(jv v) { return v.t == JV_INT ? v.i : v.b; }
static double fval(jv v) { return v.t == JV_FLOAT ? v.f : (double)ival(v); }

/* Python's printf-style str % args: %s %r %d %i %f %x %% with flags,
 * width and precision. */
static jv format_percent(jx_render *r, const jnode *e, jv fmt, jv args) {
    jx_ctx *c = r->c;
    jv list = args.t == JV_LIST && (args.flag & JV_FLAG_TUPLE) ? args : jv_list_new(c, 1);
    if (list.l != args.l) jv_list_push(c, list, args);
    size_t k = 0;
    jx_buf b = {0};
    jx_buf_add(c, &b, "", 0);
    const char *p = fmt.s->p, *end = p + fmt.s->n;
    while (p < end) {
        const char *pct = memchr(p, '%', (size_t)(end - p));
        if (!pct) {
            jx_buf_add(c, &b, p, (size_t)(end - p));
            break;
        }
        jx_buf_add(c, &b, p, (size_t)(pct - p));
        const char *q = pct + 1;
        char spec[32] = "%";
        size_t sn = 1;
        while (q < end && strchr("-+ 0#", *q) && sn < 8) spec[sn++] = *q++;
        while (q < end && ((*q >= '0' && *q <= '9') || *q == '.') && sn < 24) spec[sn++] = *q++;
        if (q >= end) jx_fail(c, e->line, e->col, "incomplete format");
        char conv = *q++;
        if (conv == '%') {
            jx_buf_puts(c, &b, "%");
            p = q;
            continue;
        }
        if (k >= list.l->n) jx_fail(c, e->line, e->col, "not enough arguments for format string");
        jv v = list.l->a[k++];
        char out[512];
        if (conv == 's' || conv == 'r') {
            jx_buf t = {0};
            jx_buf_add(c, &t, "", 0);
            if (conv == 's') jv_write_str(c, &t, v);
            else jv_write_repr(c, &t, v);
            spec[sn++] = 's';
            spec[sn] = '\0';
            if (sn == 2) jx_buf_add(c, &b, t.p, t.n);
            else snprintf(out, sizeof out, spec, t.p), jx_buf_puts(c, &b, out);
        } else if (strchr("dixXo", conv)) {
            if (!is_intlike(v) && v.t != JV_FLOAT)
                jx_fail(c, e->line, e->col, "%%%c format: a real number is required, not %s", conv, jv_type_name(v));
            long long i = v.t == JV_FLOAT ? (long long)v.f : (long long)ival(v);
            spec[sn++] = 'l', spec[sn++] = 'l', spec[sn++] = conv == 'i' ? 'd' : conv;
            spec[sn] = '\0';
            snprintf(out, sizeof out, spec, i);
            jx_buf_puts(c, &b, out);
        } else if (strchr("feEgG", conv)) {
            if (!is_intlike(v) && v.t != JV_FLOAT)
                jx_fail(c, e->line, e->col, "must be real number, not %s", jv_type_name(v));
            spec[sn++] = conv;
            spec[sn] = '\0';
            snprintf(out, sizeof out, spec, fval(v));
            jx_buf_puts(c, &b, out);
        } else {
            jx_fail(c, e->line, e->col, "unsupported format character '%c'", conv);
        }
        p = q;
    }
    if (k < list.l->n) jx_fail(c, e->line, e->col, "not all arguments converted during string formatting");
    return jv_str(c, b.p, b.n);
}

static jv arith(jx_render *r, const jnode *e, const char *op, jv a, jv b) {
    jx_ctx *c = r->c;
    if (a.t == JV_UNDEF) undefined_error(r, e, a);
    if (b.t == JV_UNDEF) undefined_error(r, e, b);
    int an = is_intlike(a) || a.t == JV_FLOAT, bn = is_intlike(b) || b.t == JV_FLOAT;
    if (an && bn) {
        if (is_intlike(a) && is_intlike(b) && strcmp(op, "/")) {
            int64_t x = ival(a), y = ival(b), z = 0;
            int ovf = 0;
            switch (op[0]) {
            case '+': ovf = __builtin_add_overflow(x, y, &z); break;
            case '-': ovf = __builtin_sub_overflow(x, y, &z); break;
            case '*':
                if (op[1] == '*') {
                    if (y < 0) return jv_float(__builtin_pow((double)x, (double)y));
                    z = 1;
                    for (int64_t k = 0; k < y && !ovf; k++) ovf = __builtin_mul_overflow(z, x, &z);
                } else {
                    ovf = __builtin_mul_overflow(x, y, &z);
                }
                break;
            case '/':
            case '%':
                if (y == 0) jx_fail(c, e->line, e->col, "integer division or modulo by zero");
                if (x == INT64_MIN && y == -1) ovf = 1;
                else if (op[0] == '%') z = ((x % y) + y) % y;
                else z = x / y - ((x % y != 0) && ((x < 0) != (y < 0)));
                break;
            }
            if (ovf) jx_fail(c, e->line, e->col, "integer result out of range");
            return jv_int(z);
        }
        double x = fval(a), y = fval(b);
        switch (op[0]) {
        case '+': return jv_float(x + y);
        case '-': return jv_float(x - y);
        case '*': return jv_float(op[1] == '*' ? __builtin_pow(x, y) : x * y);
        default:
            if (y == 0) jx_fail(c, e->line, e->col, "float division by zero");
            if (!strcmp(op, "/")) return jv_float(x / y);
            double q = __builtin_floor(x / y);
            if (!strcmp(op, "//")) return jv_float(q);
            double m = __builtin_fmod(x, y);
            if (m != 0 && ((m < 0) != (y < 0))) m += y;
            return jv_float(m);
        }
    }
    if (!strcmp(op, "%") && a.t == JV_STR) return format_percent(r, e, a, b);
    if (!strcmp(op, "+") && a.t == b.t && a.t == JV_STR) {
        jx_buf o = {0};
        jx_buf_add(c, &o, a.s->p, a.s->n);
        jx_buf_add(c, &o, b.s->p, b.s->n);
        return jv_str(c, o.p, o.n);
    }
    if (!strcmp(op, "+") && a.t == b.t && a.t == JV_LIST && (a.flag & JV_FLAG_TUPLE) == (b.flag & JV_FLAG_TUPLE)) {
        jv o = jv_list_new(c, a.l->n + b.l->n);
        o.flag = a.flag;
        for (size_t i = 0; i < a.l->n; i++) jv_list_push(c, o, a.l->a[i]);
        for (size_t i = 0; i < b.l->n; i++) jv_list_push(c, o, b.l->a[i]);
        return o;
    }
    if (!strcmp(op, "*") && ((is_intlike(a) && (b.t == JV_STR || b.t == JV_LIST)) ||
                             (is_intlike(b) && (a.t == JV_STR || a.t == JV_LIST)))) {
        jv seq = is_intlike(a) ? b : a;
        int64_t k = is_intlike(a) ? ival(a) : ival(b);
        if (seq.t == JV_STR) {
            jx_buf o = {0};
            jx_buf_add(c, &o, "", 0);
            for (int64_t i = 0; i < k; i++) jx_buf_add(c, &o, seq.s->p, seq.s->n);
            return jv_str(c, o.p, o.n);
        }
        jv o = jv_list_new(c, 4);
        o.flag = seq.flag;
        for (int64_t i = 0; i < k; i++)
            for (size_t j = 0; j < seq.l->n; j++) jv_list_push(c, o, seq.l->a[j]);
        return o;
    }
    jx_fail(c, e->line, e->col, "unsupported operand type(s) for %s: '%s' and '%s'", op,
            jv_type_name(a), jv_type_name(b));
}

static int contains(jx_render *r, const jnode *e, jv needle, jv hay) {
    if (hay.t == JV_UNDEF) undefined_error(r, e, hay);
    if (hay.t == JV_STR) {
        if (needle.t != JV_STR)
            jx_fail(r->c, e->line, e->col, "'in <string>' requires string as left operand, not %s", jv_type_name(needle));
        return needle.s->n == 0 || memmem(hay.s->p, hay.s->n, needle.s->p, needle.s->n) != NULL;
    }
    if (hay.t == JV_LIST) {
        for (size_t i = 0; i < hay.l->n; i++)
            if (jv_equal(hay.l->a[i], needle)) return 1;
        return 0;
    }
    if (hay.t == JV_DICT) return jv_dict_find(hay, needle) != NULL;
    jx_fail(r->c, e->line, e->col, "argument of type '%s' is not iterable", jv_type_name(hay));
}

static int compare_op(jx_render *r, const jnode *e, const char *op, jv a, jv b) {
    if (!strcmp(op, "==")) return jv_equal(a, b);
    if (!strcmp(op, "!=")) return !jv_equal(a, b);
    if (!strcmp(op, "in")) return contains(r, e, a, b);
    if (!strcmp(op, "notin")) return !contains(r, e, a, b);
    if (a.t == JV_UNDEF) undefined_error(r, e, a);
    if (b.t == JV_UNDEF) undefined_error(r, e, b);
    int k = jv_compare(r->c, a, b, e->line, e->col);
    return !strcmp(op, "<") ? k < 0 : !strcmp(op, "<=") ? k <= 0 : !strcmp(op, ">") ? k > 0 : k >= 0;
}

/* ---- calls ---- */

typedef struct call_args {
    jv *pos;
    int n_pos;
    const char **kw_names;
    jv *kw;
    int n_kw;
} call_args;

static call_args eval_args(jx_render *r, jx_scope *s, const jnode *e) {
    call_args a = {0};
    a.n_pos = e->n_kids;
    a.pos = jx_alloc(r->c, (size_t)(e->n_kids + 1) * sizeof *a.pos);
    for (int k = 0; k < e->n_kids; k++) a.pos[k] = jinja_eval(r, s, e->kids[k]);
    a.n_kw = e->n_kw;
    a.kw_names = e->kw_names;
    a.kw = jx_alloc(r->c, (size_t)(e->n_kw + 1) * sizeof *a.kw);
    for (int k = 0; k < e->n_kw; k++) a.kw[k] = jinja_eval(r, s, e->kw[k]);
    return a;
}

static jv call_macro(jx_render *r, const jnode *at, jv_macro *m, call_args *a) {
    const jnode *def = m->node;
    jx_ctx *c = r->c;
    if (++c->depth > c->max_depth)
        jx_fail(c, at->line, at->col, "template calls nested more than %zu deep", c->max_depth);
    jinja_step(r, at);
    jx_scope *s = scope_new(r, m->closure);
    if (a->n_pos > def->n_names)
        jx_fail(c, at->line, at->col, "macro '%s' takes not more than %d argument(s)",
                def->name ? def->name : "caller", def->n_names);
    for (int k = 0; k < def->n_names; k++) {
        jv v = jv_undef(NULL);
        int given = 0;
        if (k < a->n_pos) v = a->pos[k], given = 1;
        for (int j = 0; j < a->n_kw; j++)
            if (!strcmp(a->kw_names[j], def->names[k])) v = a->kw[j], given = 1;
        if (!given) {
            if (def->kw[k]) v = jinja_eval(r, s, def->kw[k]);
            else {
                char *msg = jx_alloc(c, strlen(def->names[k]) + 64);
                sprintf(msg, "parameter '%s' was not provided", def->names[k]);
                v = jv_undef(msg);
            }
        }
        assign(r, s, def->names[k], v);
    }
    for (int j = 0; j < a->n_kw; j++) {
        int known = 0;
        for (int k = 0; k < def->n_names; k++) known |= !strcmp(a->kw_names[j], def->names[k]);
        if (!known)
            jx_fail(c, at->line, at->col, "macro '%s' takes no keyword argument '%s'",
                    def->name ? def->name : "caller", a->kw_names[j]);
    }
    if (m->caller.t == JV_MACRO) assign(r, s, "caller", m->caller);
    jx_buf *saved = r->out, out = {0};
    out.max = r->max_output;
    jx_buf_add(c, &out, "", 0);
    r->out = &out;
    render_body(r, s, def->b);
    r->out = saved;
    c->depth--;
    return jv_str(c, out.p, out.n);
}

static jv call_builtin(jx_render *r, const jnode *at, int fn, call_args *a, jv self) {
    jx_ctx *c = r->c;
    switch (fn) {
    case FN_RANGE: {
        int64_t v[3] = {0, 0, 1};
        if (a->n_pos < 1 || a->n_pos > 3) jx_fail(c, at->line, at->col, "range expected 1 to 3 arguments, got %d", a->n_pos);
        for (int k = 0; k < a->n_pos; k++) {
            if (!is_intlike(a->pos[k]))
                jx_fail(c, at->line, at->col, "'%s' object cannot be interpreted as an integer", jv_type_name(a->pos[k]));
            v[a->n_pos == 1 ? 1 : k] = ival(a->pos[k]);
        }
        if (v[2] == 0) jx_fail(c, at->line, at->col, "range() arg 3 must not be zero");
        jv out = jv_list_new(c, 4);
        for (int64_t i = v[0]; v[2] > 0 ? i < v[1] : i > v[1]; i += v[2]) {
            jinja_step(r, at);
            jv_list_push(c, out, jv_int(i));
        }
        return out;
    }
    case FN_NAMESPACE:
    case FN_DICT: {
        jv d = jv_dict_new(c);
        if (fn == FN_NAMESPACE) d.flag = JV_FLAG_NAMESPACE;
        for (int k = 0; k < a->n_pos; k++) {
            if (a->pos[k].t != JV_DICT) jx_fail(c, at->line, at->col, "%s() takes a mapping", fn == FN_DICT ? "dict" : "namespace");
            for (size_t i = 0; i < a->pos[k].d->n; i++) jv_dict_set(c, d, a->pos[k].d->k[i], a->pos[k].d->v[i]);
        }
        for (int k = 0; k < a->n_kw; k++) jv_dict_set(c, d, jv_cstr(c, a->kw_names[k]), a->kw[k]);
        return d;
    }
    case FN_RAISE: {
        jv msg = a->n_pos ? jv_to_str(c, a->pos[0]) : jv_cstr(c, "");
        jx_fail(c, at->line, at->col, "%s", msg.s->p);
    }
    case FN_STRFTIME: {
        if (a->n_pos != 1 || a->pos[0].t != JV_STR) jx_fail(c, at->line, at->col, "strftime_now expects one string");
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        char buf[512];
        size_t n = strftime(buf, sizeof buf, a->pos[0].s->p, &tm);
        return jv_str(c, buf, n);
    }
    case FN_CYCLE: {
        if (!a->n_pos) jx_fail(c, at->line, at->col, "no items for cycling given");
        jv *i0 = jv_dict_findc(self, "index0");
        return a->pos[(i0 ? ival(*i0) : 0) % a->n_pos];
    }
    }
    jx_fail(c, at->line, at->col, "object is not callable");
}

static jv eval_call(jx_render *r, jx_scope *s, const jnode *e) {
    jv callee;
    if (e->a->kind == JN_ATTR) {
        jv obj = jinja_eval(r, s, e->a->a);
        if (obj.t == JV_UNDEF) undefined_error(r, e->a, obj);
        if (obj.t == JV_DICT && (obj.flag & JV_FLAG_LOOP) && !strcmp(e->a->name, "cycle")) {
            call_args a = eval_args(r, s, e);
            return call_builtin(r, e, FN_CYCLE, &a, obj);
        }
        jv *member = obj.t == JV_DICT ? jv_dict_findc(obj, e->a->name) : NULL;
        if (member && (member->t == JV_MACRO || member->t == JV_FUNC)) {
            callee = *member;
        } else {
            call_args a = eval_args(r, s, e);
            int handled = 0;
            jv v = jinja_method(r, obj, e->a->name, a.pos, a.n_pos, a.kw_names, a.kw, a.n_kw, e, &handled);
            if (handled) return v;
            jx_fail(r->c, e->line, e->col, "'%s' object has no callable attribute '%s'", jv_type_name(obj), e->a->name);
        }
    } else {
        callee = jinja_eval(r, s, e->a);
    }
    if (callee.t == JV_UNDEF) undefined_error(r, e->a, callee);
    call_args a = eval_args(r, s, e);
    if (callee.t == JV_MACRO) return call_macro(r, e, callee.m, &a);
    if (callee.t == JV_FUNC) return call_builtin(r, e, callee.fn, &a, jv_none());
    jx_fail(r->c, e->line, e->col, "'%s' object is not callable", jv_type_name(callee));
}

jv jinja_eval(jx_render *r, jx_scope *s, const jnode *e) {
    jx_ctx *c = r->c;
    switch (e->kind) {
    case JN_LIT: return e->lit;
    case JN_NAME: return lookup(r, s, e->name);
    case JN_LIST:
    case JN_TUPLE: {
        jv l = jv_list_new(c, (size_t)e->n_kids);
        if (e->kind == JN_TUPLE) l.flag = JV_FLAG_TUPLE;
        for (int k = 0; k < e->n_kids; k++) jv_list_push(c, l, jinja_eval(r, s, e->kids[k]));
        return l;
    }
    case JN_DICT: {
        jv d = jv_dict_new(c);
        for (int k = 0; k + 1 < e->n_kids; k += 2) {
            jv key = jinja_eval(r, s, e->kids[k]);
            if (key.t == JV_LIST && !(key.flag & JV_FLAG_TUPLE)) jx_fail(c, e->line, e->col, "unhashable type: 'list'");
            if (key.t == JV_DICT) jx_fail(c, e->line, e->col, "unhashable type: 'dict'");
            jv_dict_set(c, d, key, jinja_eval(r, s, e->kids[k + 1]));
        }
        return d;
    }
    case JN_ATTR: {
        jv obj = jinja_eval(r, s, e->a);
        if (obj.t == JV_UNDEF) undefined_error(r, e, obj);
        return jinja_getattr(r, obj, jv_cstr(c, e->name), e);
    }
    case JN_ITEM: {
        jv obj = jinja_eval(r, s, e->a), key = jinja_eval(r, s, e->b);
        return jinja_getattr(r, obj, key, e);
    }
    case JN_SLICE: return eval_slice(r, s, e);
    case JN_CALL: return eval_call(r, s, e);
    case JN_FILTER: return jinja_filter(r, s, e, jinja_eval(r, s, e->a));
    case JN_TEST: return jv_bool(jinja_test(r, s, e, jinja_eval(r, s, e->a)) != e->flag);
    case JN_BINOP: {
        jv a = jinja_eval(r, s, e->a), b = jinja_eval(r, s, e->b);
        if (!strcmp(e->name, "~")) {
            jx_buf o = {0};
            jx_buf_add(c, &o, "", 0);
            jv_write_str(c, &o, a);
            jv_write_str(c, &o, b);
            return jv_str(c, o.p, o.n);
        }
        return arith(r, e, e->name, a, b);
    }
    case JN_NEG:
    case JN_POS: {
        jv a = jinja_eval(r, s, e->a);
        if (a.t == JV_FLOAT) return jv_float(e->kind == JN_NEG ? -a.f : a.f);
        if (!is_intlike(a)) {
            if (a.t == JV_UNDEF) undefined_error(r, e, a);
            jx_fail(c, e->line, e->col, "bad operand type for unary %c: '%s'", e->kind == JN_NEG ? '-' : '+', jv_type_name(a));
        }
        if (e->kind == JN_NEG && ival(a) == INT64_MIN) jx_fail(c, e->line, e->col, "integer result out of range");
        return jv_int(e->kind == JN_NEG ? -ival(a) : ival(a));
    }
    case JN_NOT: return jv_bool(!jv_truthy(jinja_eval(r, s, e->a)));
    case JN_AND: {
        jv a = jinja_eval(r, s, e->a);
        return jv_truthy(a) ? jinja_eval(r, s, e->b) : a;
    }
    case JN_OR: {
        jv a = jinja_eval(r, s, e->a);
        return jv_truthy(a) ? a : jinja_eval(r, s, e->b);
    }
    case JN_COND:
        if (jv_truthy(jinja_eval(r, s, e->a))) return jinja_eval(r, s, e->b);
        return e->c ? jinja_eval(r, s, e->c) : jv_undef("the inline if-expression on false has no else");
    case JN_COMPARE: {
        jv a = jinja_eval(r, s, e->a);
        for (int k = 0; k < e->n_kids; k++) {
            jv b = jinja_eval(r, s, e->kids[k]);
            if (!compare_op(r, e, e->ops[k], a, b)) return jv_bool(0);
            a = b;
        }
        return jv_bool(1);
    }
    default: jx_fail(c, e->line, e->col, "not an expression");
    }
}

/* ---- statements ---- */

static int render_for(jx_render *r, jx_scope *s, const jnode *n) {
    jx_ctx *c = r->c;
    jv seq = jinja_eval(r, s, n->a);
    jv items = seq.t == JV_UNDEF ? jv_list_new(c, 1) : jinja_iter_list(r, seq, n->a);
    jx_scope *ls = scope_new(r, s);
    if (n->d) { /* {% for x in xs if cond %}: filtered before the loop */
        jv kept = jv_list_new(c, items.l->n);
        for (size_t i = 0; i < items.l->n; i++) {
            jinja_step(r, n);
            assign_targets(r, ls, n, items.l->a[i]);
            if (jv_truthy(jinja_eval(r, ls, n->d))) jv_list_push(c, kept, items.l->a[i]);
        }
        items = kept;
    }
    size_t len = items.l->n;
    if (len == 0) return n->c ? render_body(r, s, n->c) : GO_ON;
    jv loop = jv_dict_new(c);
    loop.flag = JV_FLAG_LOOP;
    static const char *const keys[] = {"index", "index0", "revindex", "revindex0", "first", "last",
                                       "length", "previtem", "nextitem", "depth", "depth0"};
    for (int k = 0; k < 11; k++) jv_dict_set(c, loop, jv_cstr(c, keys[k]), jv_none());
    jv *v = loop.d->v;
    ls = scope_new(r, s);
    size_t base = 0;
    for (size_t i = 0; i < len; i++) {
        jinja_step(r, n);
        /* Each iteration starts afresh, as in Jinja: what the body set in
         * the last one is dropped (the loop variables stay in place, so a
         * long loop allocates nothing per iteration). */
        if (i > 0) ls->vars.d->n = base;
        v[0] = jv_int((int64_t)i + 1), v[1] = jv_int((int64_t)i);
        v[2] = jv_int((int64_t)(len - i)), v[3] = jv_int((int64_t)(len - i - 1));
        v[4] = jv_bool(i == 0), v[5] = jv_bool(i + 1 == len), v[6] = jv_int((int64_t)len);
        v[7] = i ? items.l->a[i - 1] : jv_undef("there is no previous item");
        v[8] = i + 1 < len ? items.l->a[i + 1] : jv_undef("there is no next item");
        v[9] = jv_int(1), v[10] = jv_int(0);
        assign(r, ls, "loop", loop);
        assign_targets(r, ls, n, items.l->a[i]);
        if (i == 0) base = ls->vars.d->n;
        int st = render_body(r, ls, n->b);
        if (st == BROKE) break;
    }
    return GO_ON;
}

static jv render_to_string(jx_render *r, jx_scope *s, const jnode *body) {
    jx_buf *saved = r->out, out = {0};
    out.max = r->max_output;
    jx_buf_add(r->c, &out, "", 0);
    r->out = &out;
    int st = render_body(r, s, body);
    (void)st;
    r->out = saved;
    return jv_str(r->c, out.p, out.n);
}

/* Applies the filter chain F (whose innermost input is a placeholder
 * literal) to V. */
static jv apply_chain(jx_render *r, jx_scope *s, const jnode *f, jv v) {
    if (f->kind != JN_FILTER) return v;
    return jinja_filter(r, s, f, apply_chain(r, s, f->a, v));
}

static int render_body(jx_render *r, jx_scope *s, const jnode *body) {
    jx_ctx *c = r->c;
    for (int k = 0; k < body->n_kids; k++) {
        const jnode *n = body->kids[k];
        int st = GO_ON;
        switch (n->kind) {
        case JN_TEXT: jx_buf_add(c, r->out, n->lit.s->p, n->lit.s->n); break;
        case JN_OUTPUT: {
            jv v = jinja_eval(r, s, n->a);
            jv_write_str(c, r->out, v);
            break;
        }
        case JN_BODY: st = render_body(r, s, n); break;
        case JN_IF: {
            const jnode *cur = n;
            while (cur && cur->kind == JN_IF && !jv_truthy(jinja_eval(r, s, cur->a))) cur = cur->c;
            if (cur) st = render_body(r, s, cur->kind == JN_IF ? cur->b : cur);
            break;
        }
        case JN_FOR: st = render_for(r, s, n); break;
        case JN_SET: assign_targets(r, s, n, jinja_eval(r, s, n->a)); break;
        case JN_SET_ATTR: {
            jv ns = lookup(r, s, n->names[0]);
            if (ns.t != JV_DICT || !(ns.flag & JV_FLAG_NAMESPACE))
                jx_fail(c, n->line, n->col, "cannot assign attribute on non-namespace object");
            jv_dict_set(c, ns, jv_cstr(c, n->name), jinja_eval(r, s, n->a));
            break;
        }
        case JN_SET_BLOCK: {
            jv v = render_to_string(r, s, n->b);
            if (n->c) v = apply_chain(r, s, n->c, v);
            assign(r, s, n->names[0], v);
            break;
        }
        case JN_MACRO: {
            jv_macro *m = jx_alloc(c, sizeof *m);
            m->node = n;
            m->closure = s;
            assign(r, s, n->name, (jv){.t = JV_MACRO, .m = m});
            break;
        }
        case JN_CALL_BLOCK: {
            jv_macro *caller = jx_alloc(c, sizeof *caller);
            caller->node = n;
            caller->closure = s;
            jv callee = jinja_eval(r, s, n->a->a);
            if (callee.t != JV_MACRO) jx_fail(c, n->line, n->col, "{%% call %%} needs a macro, got %s", jv_type_name(callee));
            jv_macro bound = *callee.m;
            bound.caller = (jv){.t = JV_MACRO, .m = caller};
            call_args a = eval_args(r, s, n->a);
            jv out = call_macro(r, n, &bound, &a);
            jx_buf_add(c, r->out, out.s->p, out.s->n);
            break;
        }
        case JN_FILTER_BLOCK: {
            jv v = apply_chain(r, s, n->c, render_to_string(r, s, n->b));
            jv_write_str(c, r->out, v);
            break;
        }
        case JN_BREAK: return BROKE;
        case JN_CONTINUE: return CONTINUED;
        default: jx_fail(c, n->line, n->col, "not a statement");
        }
        if (st != GO_ON) return st;
    }
    return GO_ON;
}

/* ---- public ---- */

int tmpl_parse(tmpl **out, const char *src, size_t len, dp_err *err) {
    *out = NULL;
    tmpl *t = calloc(1, sizeof *t);
    if (!t) return dp_fail(err, "out of memory parsing a template");
    t->ctx.err = err;
    t->ctx.max_bytes = (size_t)256 << 20;
    if (setjmp(t->ctx.jb)) {
        jx_free_all(&t->ctx);
        free(t);
        return -1;
    }
    size_t n;
    jt_token *toks = jinja_lex(&t->ctx, src, len, &n);
    t->root = jinja_parse(&t->ctx, toks, n);
    t->ctx.err = NULL;
    *out = t;
    return 0;
}

void tmpl_free(tmpl *t) {
    if (!t) return;
    jx_free_all(&t->ctx);
    free(t);
}

int tmpl_render(const tmpl *t, const json_t *vars, const tmpl_limits *lim, char **out, size_t *len,
                dp_err *err) {
    *out = NULL;
    if (len) *len = 0;
    if (!json_is_object(vars)) return dp_fail(err, "template variables: expected a JSON object");
    jx_ctx cv, *c = &cv;
    memset(c, 0, sizeof *c);
    c->err = err;
    c->max_steps = lim && lim->max_steps ? lim->max_steps : 10000000;
    c->max_depth = lim && lim->max_depth ? lim->max_depth : 100;
    c->max_bytes = lim && lim->max_bytes ? lim->max_bytes : (size_t)256 << 20;
    size_t max_out = lim && lim->max_output ? lim->max_output : (size_t)64 << 20;
    jx_buf buf = {0};
    buf.max = max_out;
    jx_render r = {c, &buf, max_out};
    if (setjmp(c->jb)) {
        jx_free_all(c);
        return -1;
    }
    jx_scope *top = scope_new(&r, NULL);
    top->vars = jv_from_json(c, vars);
    jx_scope *s = scope_new(&r, top);
    jx_buf_add(c, &buf, "", 0);
    render_body(&r, s, t->root);
    char *text = malloc(buf.n + 1);
    if (!text) {
        jx_free_all(c);
        return dp_fail(err, "out of memory rendering a template");
    }
    memcpy(text, buf.p, buf.n + 1);
    if (len) *len = buf.n;
    *out = text;
    jx_free_all(c);
    return 0;
}
