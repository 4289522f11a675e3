/* jinja_parse — tokens to a syntax tree, by recursive descent with Jinja's
 * precedence (lowest first): conditional expression, or, and, not,
 * comparisons and "in", + -, ~, * / // %, **, unary - +, then postfix
 * (.attr, [item or slice], call), filters "|" and tests "is". Statements:
 * if/elif/else, for (targets, "if" filter, else, recursive), set (plain,
 * tuple targets, namespace attribute, block), macro, call, filter, break,
 * continue, generation; raw is the lexer's. include/import/extends and
 * other tags are refused: a template reads no files. */
#include <stdlib.h>
#include <string.h>

#include "jinja_internal.h"

#define MAX_NESTING 200

typedef struct parser {
    jx_ctx *c;
    const jt_token *t;
    size_t n, i;
    int nesting;
} parser;

static const jt_token *peek(parser *P) { return &P->t[P->i]; }
static const jt_token *next(parser *P) { return &P->t[P->i < P->n - 1 ? P->i++ : P->i]; }

static int is_op(const jt_token *t, const char *op) {
    return t->kind == JT_OP && strlen(op) == t->n && !memcmp(t->s, op, t->n);
}
static int is_name(const jt_token *t, const char *name) {
    return t->kind == JT_NAME && strlen(name) == t->n && !memcmp(t->s, name, t->n);
}

static const char *describe(parser *P, const jt_token *t) {
    switch (t->kind) {
    case JT_TEXT: return "template data";
    case JT_VAR_BEGIN: return "'{{'";
    case JT_VAR_END: return "end of print statement";
    case JT_BLOCK_BEGIN: return "'{%'";
    case JT_BLOCK_END: return "end of statement block";
    case JT_STRING: return "string";
    case JT_INT:
    case JT_FLOAT: return "number";
    case JT_EOF: return "end of template";
    default: {
        char *s = jx_alloc(P->c, t->n + 3);
        s[0] = '\'';
        memcpy(s + 1, t->s, t->n < 40 ? t->n : 40);
        strcat(s, "'");
        return s;
    }
    }
}

static _Noreturn void unexpected(parser *P, const jt_token *t, const char *wanted) {
    jx_fail(P->c, t->line, t->col, "expected %s, got %s", wanted, describe(P, t));
}

static void expect_op(parser *P, const char *op) {
    if (!is_op(peek(P), op)) {
        char w[16];
        snprintf(w, sizeof w, "'%s'", op);
        unexpected(P, peek(P), w);
    }
    next(P);
}

static const char *expect_name(parser *P) {
    const jt_token *t = peek(P);
    if (t->kind != JT_NAME) unexpected(P, t, "a name");
    next(P);
    return jx_strndup(P->c, t->s, t->n);
}

static jnode *node(parser *P, jn_kind kind, const jt_token *at) {
    jnode *n = jx_alloc(P->c, sizeof *n);
    n->kind = kind;
    n->line = at->line;
    n->col = at->col;
    return n;
}

/* growable arrays of pointers in the arena */
static void push(parser *P, void ***a, int *n, void *item) {
    if ((*n & (*n - 1)) == 0) { /* 0, 1, 2, 4, ...: grow */
        void **b = jx_alloc(P->c, (size_t)(*n ? 2 * *n : 1) * sizeof *b);
        if (*n) memcpy(b, *a, (size_t)*n * sizeof *b);
        *a = b;
    }
    (*a)[(*n)++] = item;
}
#define PUSH(P, arr, cnt, item) push((P), (void ***)&(arr), &(cnt), (void *)(item))

static jnode *parse_expr(parser *P);
static jnode *parse_or(parser *P);
static jnode *parse_unary(parser *P, int with_filter);

static void enter(parser *P, const jt_token *at) {
    if (++P->nesting > MAX_NESTING) jx_fail(P->c, at->line, at->col, "template nested too deeply");
}

/* Call arguments after "(": positional, then name=value. */
static void parse_args(parser *P, jnode *n) {
    while (!is_op(peek(P), ")")) {
        if (n->n_kids || n->n_kw) expect_op(P, ",");
        if (is_op(peek(P), ")")) break;
        const jt_token *t = peek(P);
        if (t->kind == JT_NAME && is_op(&P->t[P->i + 1], "=")) {
            next(P), next(P);
            PUSH(P, n->kw_names, n->n_kw, jx_strndup(P->c, t->s, t->n));
            int k = n->n_kw - 1;
            n->n_kw = k;
            PUSH(P, n->kw, n->n_kw, parse_expr(P));
        } else {
            if (n->n_kw) jx_fail(P->c, t->line, t->col, "positional argument follows keyword argument");
            PUSH(P, n->kids, n->n_kids, parse_expr(P));
        }
    }
    next(P);
}

static jnode *parse_primary(parser *P) {
    const jt_token *t = next(P);
    jnode *n;
    switch (t->kind) {
    case JT_NAME:
        n = node(P, JN_LIT, t);
        if (is_name(t, "true") || is_name(t, "True")) n->lit = jv_bool(1);
        else if (is_name(t, "false") || is_name(t, "False")) n->lit = jv_bool(0);
        else if (is_name(t, "none") || is_name(t, "None")) n->lit = jv_none();
        else {
            n->kind = JN_NAME;
            n->name = jx_strndup(P->c, t->s, t->n);
        }
        return n;
    case JT_STRING: {
        n = node(P, JN_LIT, t);
        jx_buf b = {0};
        jx_buf_add(P->c, &b, t->s, t->n);
        while (peek(P)->kind == JT_STRING) { /* adjacent strings concatenate */
            const jt_token *u = next(P);
            jx_buf_add(P->c, &b, u->s, u->n);
        }
        n->lit = jv_str(P->c, b.p, b.n);
        return n;
    }
    case JT_INT: n = node(P, JN_LIT, t); n->lit = jv_int(t->i); return n;
    case JT_FLOAT: n = node(P, JN_LIT, t); n->lit = jv_float(t->f); return n;
    case JT_OP:
        if (is_op(t, "(")) {
            enter(P, t);
            if (is_op(peek(P), ")")) {
                next(P);
                P->nesting--;
                return node(P, JN_TUPLE, t);
            }
            jnode *e = parse_expr(P);
            if (is_op(peek(P), ",")) {
                n = node(P, JN_TUPLE, t);
                PUSH(P, n->kids, n->n_kids, e);
                while (is_op(peek(P), ",")) {
                    next(P);
                    if (is_op(peek(P), ")")) break;
                    PUSH(P, n->kids, n->n_kids, parse_expr(P));
                }
                e = n;
            }
            expect_op(P, ")");
            P->nesting--;
            return e;
        }
        if (is_op(t, "[")) {
            enter(P, t);
            n = node(P, JN_LIST, t);
            while (!is_op(peek(P), "]")) {
                if (n->n_kids) expect_op(P, ",");
                if (is_op(peek(P), "]")) break;
                PUSH(P, n->kids, n->n_kids, parse_expr(P));
            }
            next(P);
            P->nesting--;
            return n;
        }
        if (is_op(t, "{")) {
            enter(P, t);
            n = node(P, JN_DICT, t);
            while (!is_op(peek(P), "}")) {
                if (n->n_kids) expect_op(P, ",");
                if (is_op(peek(P), "}")) break;
                PUSH(P, n->kids, n->n_kids, parse_expr(P));
                expect_op(P, ":");
                PUSH(P, n->kids, n->n_kids, parse_expr(P));
            }
            next(P);
            P->nesting--;
            return n;
        }
        break;
    default: break;
    }
    unexpected(P, t, "an expression");
}

static jnode *parse_postfix(parser *P, jnode *n) {
    for (;;) {
        const jt_token *t = peek(P);
        if (is_op(t, ".")) {
            next(P);
            const jt_token *a = next(P);
            jnode *m = node(P, JN_ATTR, t);
            m->a = n;
            if (a->kind == JT_NAME) m->name = jx_strndup(P->c, a->s, a->n);
            else if (a->kind == JT_INT) {
                m->kind = JN_ITEM;
                m->b = node(P, JN_LIT, a);
                m->b->lit = jv_int(a->i);
            } else unexpected(P, a, "an attribute name");
            n = m;
        } else if (is_op(t, "[")) {
            next(P);
            enter(P, t);
            jnode *parts[3] = {NULL, NULL, NULL};
            int slice = 0;
            for (int k = 0; k < 3; k++) {
                if (!is_op(peek(P), ":") && !is_op(peek(P), "]")) parts[k] = parse_expr(P);
                if (k < 2 && is_op(peek(P), ":")) {
                    next(P);
                    slice = 1;
                } else break;
            }
            expect_op(P, "]");
            P->nesting--;
            jnode *m = node(P, slice ? JN_SLICE : JN_ITEM, t);
            m->a = n;
            if (slice) m->b = parts[0], m->c = parts[1], m->d = parts[2];
            else if (!(m->b = parts[0])) unexpected(P, t, "a subscript");
            n = m;
        } else if (is_op(t, "(")) {
            next(P);
            enter(P, t);
            jnode *m = node(P, JN_CALL, t);
            m->line = n->line, m->col = n->col;
            m->a = n;
            parse_args(P, m);
            P->nesting--;
            n = m;
        } else {
            return n;
        }
    }
}

/* "|name(args)" chains and "is [not] name args" tests after N. */
static jnode *parse_filters(parser *P, jnode *n) {
    for (;;) {
        const jt_token *t = peek(P);
        if (is_op(t, "|")) {
            next(P);
            jnode *f = node(P, JN_FILTER, peek(P));
            f->name = expect_name(P);
            while (is_op(peek(P), ".")) { /* dotted filter names */
                next(P);
                const char *more = expect_name(P);
                char *full = jx_alloc(P->c, strlen(f->name) + strlen(more) + 2);
                sprintf(full, "%s.%s", f->name, more);
                f->name = full;
            }
            f->a = n;
            if (is_op(peek(P), "(")) {
                next(P);
                parse_args(P, f);
            }
            n = f;
        } else if (is_name(t, "is")) {
            next(P);
            jnode *f = node(P, JN_TEST, peek(P));
            if (is_name(peek(P), "not")) next(P), f->flag = 1;
            f->name = expect_name(P);
            f->a = n;
            const jt_token *u = peek(P);
            if (is_op(u, "(")) {
                next(P);
                parse_args(P, f);
            } else if (u->kind == JT_STRING || u->kind == JT_INT || u->kind == JT_FLOAT || is_op(u, "[") ||
                       is_op(u, "{") || (u->kind == JT_NAME && !is_name(u, "else") && !is_name(u, "or") &&
                                         !is_name(u, "and") && !is_name(u, "if") && !is_name(u, "is") &&
                                         !is_name(u, "in") && !is_name(u, "not"))) {
                jnode *arg = parse_postfix(P, parse_primary(P));
                PUSH(P, f->kids, f->n_kids, arg);
            }
            n = f;
        } else {
            return n;
        }
    }
}

static jnode *parse_unary(parser *P, int with_filter) {
    const jt_token *t = peek(P);
    jnode *n;
    enter(P, t);
    if (is_op(t, "-") || is_op(t, "+")) {
        next(P);
        n = node(P, is_op(t, "-") ? JN_NEG : JN_POS, t);
        n->a = parse_unary(P, 0);
    } else {
        n = parse_postfix(P, parse_primary(P));
    }
    P->nesting--;
    return with_filter ? parse_filters(P, n) : n;
}

static jnode *binop(parser *P, const jt_token *at, const char *op, jnode *a, jnode *b) {
    jnode *n = node(P, JN_BINOP, at);
    n->name = op;
    n->a = a;
    n->b = b;
    return n;
}

static jnode *parse_pow(parser *P) {
    jnode *n = parse_unary(P, 1);
    while (is_op(peek(P), "**")) {
        const jt_token *t = next(P);
        n = binop(P, t, "**", n, parse_unary(P, 1));
    }
    return n;
}

static jnode *parse_math2(parser *P) {
    jnode *n = parse_pow(P);
    for (;;) {
        const jt_token *t = peek(P);
        const char *op = is_op(t, "*") ? "*" : is_op(t, "/") ? "/" : is_op(t, "//") ? "//" : is_op(t, "%") ? "%" : NULL;
        if (!op) return n;
        next(P);
        n = binop(P, t, op, n, parse_pow(P));
    }
}

static jnode *parse_concat(parser *P) {
    jnode *n = parse_math2(P);
    while (is_op(peek(P), "~")) {
        const jt_token *t = next(P);
        n = binop(P, t, "~", n, parse_math2(P));
    }
    return n;
}

static jnode *parse_math1(parser *P) {
    jnode *n = parse_concat(P);
    for (;;) {
        const jt_token *t = peek(P);
        const char *op = is_op(t, "+") ? "+" : is_op(t, "-") ? "-" : NULL;
        if (!op) return n;
        next(P);
        n = binop(P, t, op, n, parse_concat(P));
    }
}

static jnode *parse_compare(parser *P) {
    jnode *first = parse_math1(P), *n = NULL;
    for (;;) {
        const jt_token *t = peek(P);
        const char *op = NULL;
        static const char *const cmp[] = {"==", "!=", "<", "<=", ">", ">="};
        for (int k = 0; k < 6 && !op; k++)
            if (is_op(t, cmp[k])) op = cmp[k];
        if (!op && is_name(t, "in")) op = "in";
        if (!op && is_name(t, "not") && is_name(&P->t[P->i + 1], "in")) op = "notin", next(P);
        if (!op) break;
        next(P);
        if (!n) {
            n = node(P, JN_COMPARE, t);
            n->a = first;
        }
        int k = n->n_kids;
        PUSH(P, n->ops, k, op);
        PUSH(P, n->kids, n->n_kids, parse_math1(P));
    }
    return n ? n : first;
}

static jnode *parse_not(parser *P) {
    const jt_token *t = peek(P);
    if (is_name(t, "not")) {
        next(P);
        enter(P, t);
        jnode *n = node(P, JN_NOT, t);
        n->a = parse_not(P);
        P->nesting--;
        return n;
    }
    return parse_compare(P);
}

static jnode *parse_and(parser *P) {
    jnode *n = parse_not(P);
    while (is_name(peek(P), "and")) {
        const jt_token *t = next(P);
        jnode *m = node(P, JN_AND, t);
        m->a = n;
        m->b = parse_not(P);
        n = m;
    }
    return n;
}

static jnode *parse_or(parser *P) {
    jnode *n = parse_and(P);
    while (is_name(peek(P), "or")) {
        const jt_token *t = next(P);
        jnode *m = node(P, JN_OR, t);
        m->a = n;
        m->b = parse_and(P);
        n = m;
    }
    return n;
}

static jnode *parse_expr(parser *P) {
    enter(P, peek(P));
    jnode *n = parse_or(P);
    while (is_name(peek(P), "if")) {
        const jt_token *t = next(P);
        jnode *m = node(P, JN_COND, t);
        m->b = n;
        m->a = parse_or(P);
        if (is_name(peek(P), "else")) {
            next(P);
            m->c = parse_expr(P);
        }
        n = m;
    }
    P->nesting--;
    return n;
}

/* An expression that may be an unparenthesized tuple ("a, b"). */
static jnode *parse_tuple_expr(parser *P) {
    const jt_token *t = peek(P);
    jnode *e = parse_expr(P);
    if (!is_op(peek(P), ",")) return e;
    jnode *n = node(P, JN_TUPLE, t);
    PUSH(P, n->kids, n->n_kids, e);
    while (is_op(peek(P), ",")) {
        next(P);
        if (peek(P)->kind == JT_BLOCK_END || peek(P)->kind == JT_VAR_END) break;
        PUSH(P, n->kids, n->n_kids, parse_expr(P));
    }
    return n;
}

/* ---- statements ---- */

static jnode *parse_body(parser *P, const char *const *ends, const char **ended);

static void expect_block_end(parser *P) {
    if (peek(P)->kind != JT_BLOCK_END) unexpected(P, peek(P), "end of statement block");
    next(P);
}

static void parse_targets(parser *P, jnode *n) {
    do {
        if (n->n_names) next(P); /* the comma */
        int paren = is_op(peek(P), "(");
        if (paren) next(P);
        PUSH(P, n->names, n->n_names, expect_name(P));
        while (paren && is_op(peek(P), ",")) {
            next(P);
            PUSH(P, n->names, n->n_names, expect_name(P));
        }
        if (paren) expect_op(P, ")");
    } while (is_op(peek(P), ","));
}

static void parse_params(parser *P, jnode *n) {
    expect_op(P, "(");
    while (!is_op(peek(P), ")")) {
        if (n->n_names) expect_op(P, ",");
        PUSH(P, n->names, n->n_names, expect_name(P));
        jnode *def = NULL;
        if (is_op(peek(P), "=")) {
            next(P);
            def = parse_expr(P);
        }
        int k = n->n_names - 1;
        PUSH(P, n->kw, k, def);
    }
    next(P);
}

static jnode *parse_statement(parser *P) {
    const jt_token *t = next(P); /* the tag's name */
    if (t->kind != JT_NAME) unexpected(P, t, "a statement name");
    jnode *n;
    const char *ended;
    if (is_name(t, "if")) {
        n = node(P, JN_IF, t);
        n->a = parse_tuple_expr(P);
        expect_block_end(P);
        static const char *const ends[] = {"elif", "else", "endif", NULL};
        n->b = parse_body(P, ends, &ended);
        jnode *cur = n;
        while (!strcmp(ended, "elif")) {
            jnode *e = node(P, JN_IF, peek(P));
            e->a = parse_tuple_expr(P);
            expect_block_end(P);
            e->b = parse_body(P, ends, &ended);
            cur->c = e;
            cur = e;
        }
        if (!strcmp(ended, "else")) {
            expect_block_end(P);
            static const char *const ends2[] = {"endif", NULL};
            cur->c = parse_body(P, ends2, &ended);
        }
    } else if (is_name(t, "for")) {
        n = node(P, JN_FOR, t);
        parse_targets(P, n);
        if (!is_name(next(P), "in")) unexpected(P, &P->t[P->i - 1], "'in'");
        n->a = parse_or(P); /* "if" here is the loop filter */
        if (is_name(peek(P), "if")) {
            next(P);
            n->d = parse_expr(P);
        }
        if (is_name(peek(P), "recursive")) next(P), n->flag = 1;
        expect_block_end(P);
        static const char *const ends[] = {"else", "endfor", NULL};
        n->b = parse_body(P, ends, &ended);
        if (!strcmp(ended, "else")) {
            expect_block_end(P);
            static const char *const ends2[] = {"endfor", NULL};
            n->c = parse_body(P, ends2, &ended);
        }
    } else if (is_name(t, "set")) {
        n = node(P, JN_SET, t);
        if (peek(P)->kind == JT_NAME && is_op(&P->t[P->i + 1], ".")) {
            n->kind = JN_SET_ATTR;
            PUSH(P, n->names, n->n_names, expect_name(P));
            next(P);
            n->name = expect_name(P);
        } else {
            parse_targets(P, n);
        }
        if (is_op(peek(P), "=")) {
            next(P);
            n->a = parse_tuple_expr(P);
        } else {
            if (n->kind != JN_SET || n->n_names != 1) unexpected(P, peek(P), "'='");
            n->kind = JN_SET_BLOCK;
            jnode *holder = node(P, JN_LIT, t);
            holder->lit = jv_undef(NULL);
            n->c = parse_filters(P, holder); /* optional "| filter" on the block */
            if (n->c == holder) n->c = NULL;
            static const char *const ends[] = {"endset", NULL};
            expect_block_end(P);
            n->b = parse_body(P, ends, &ended);
        }
    } else if (is_name(t, "macro")) {
        n = node(P, JN_MACRO, t);
        n->name = expect_name(P);
        parse_params(P, n);
        expect_block_end(P);
        static const char *const ends[] = {"endmacro", NULL};
        n->b = parse_body(P, ends, &ended);
        if (peek(P)->kind == JT_NAME) next(P); /* {% endmacro name %} */
    } else if (is_name(t, "call")) {
        n = node(P, JN_CALL_BLOCK, t);
        if (is_op(peek(P), "(")) parse_params(P, n);
        n->a = parse_expr(P);
        if (n->a->kind != JN_CALL) jx_fail(P->c, t->line, t->col, "expected a call after {%% call %%}");
        expect_block_end(P);
        static const char *const ends[] = {"endcall", NULL};
        n->b = parse_body(P, ends, &ended);
    } else if (is_name(t, "filter")) {
        n = node(P, JN_FILTER_BLOCK, t);
        jnode *holder = node(P, JN_LIT, t);
        holder->lit = jv_undef(NULL);
        P->i--; /* parse_filters wants the "|" : fake it by re-reading the name */
        jnode *chain = NULL;
        {
            jnode *f = node(P, JN_FILTER, peek(P));
            next(P); /* "filter" keyword already consumed above; skip again */
            f->name = expect_name(P);
            f->a = holder;
            if (is_op(peek(P), "(")) {
                next(P);
                parse_args(P, f);
            }
            chain = parse_filters(P, f);
        }
        n->c = chain;
        expect_block_end(P);
        static const char *const ends[] = {"endfilter", NULL};
        n->b = parse_body(P, ends, &ended);
    } else if (is_name(t, "break") || is_name(t, "continue")) {
        n = node(P, is_name(t, "break") ? JN_BREAK : JN_CONTINUE, t);
    } else if (is_name(t, "generation")) {
        expect_block_end(P);
        static const char *const ends[] = {"endgeneration", NULL};
        n = parse_body(P, ends, &ended);
    } else {
        jx_fail(P->c, t->line, t->col, "unknown tag '%.*s'", (int)(t->n < 40 ? t->n : 40), t->s);
    }
    expect_block_end(P);
    return n;
}

/* Statements up to one of ENDS (a tag name; NULL-terminated list; NULL for
 * the end of the template). *ended names the tag found, whose name is
 * consumed (its block end is not). */
static jnode *parse_body(parser *P, const char *const *ends, const char **ended) {
    jnode *body = node(P, JN_BODY, peek(P));
    const jt_token *open = P->i ? &P->t[P->i - 1] : peek(P);
    enter(P, open);
    for (;;) {
        const jt_token *t = peek(P);
        if (t->kind == JT_EOF) {
            if (!ends) break;
            char want[200] = "";
            for (int k = 0; ends[k]; k++)
                snprintf(want + strlen(want), sizeof want - strlen(want), "%s'%s'", k ? " or " : "", ends[k]);
            jx_fail(P->c, t->line, t->col, "unexpected end of template, expected %s", want);
        }
        next(P);
        if (t->kind == JT_TEXT) {
            jnode *n = node(P, JN_TEXT, t);
            n->lit = jv_str(P->c, t->s, t->n);
            PUSH(P, body->kids, body->n_kids, n);
        } else if (t->kind == JT_VAR_BEGIN) {
            jnode *n = node(P, JN_OUTPUT, t);
            n->a = parse_tuple_expr(P);
            if (peek(P)->kind != JT_VAR_END) unexpected(P, peek(P), "end of print statement");
            next(P);
            PUSH(P, body->kids, body->n_kids, n);
        } else if (t->kind == JT_BLOCK_BEGIN) {
            const jt_token *name = peek(P);
            for (int k = 0; ends && ends[k]; k++)
                if (is_name(name, ends[k])) {
                    next(P);
                    *ended = ends[k];
                    P->nesting--;
                    return body;
                }
            if (name->kind == JT_NAME && (!strncmp(name->s, "end", 3) || is_name(name, "elif") || is_name(name, "else")))
                jx_fail(P->c, name->line, name->col, "unexpected '%.*s'", (int)(name->n < 40 ? name->n : 40), name->s);
            PUSH(P, body->kids, body->n_kids, parse_statement(P));
        } else {
            unexpected(P, t, "template data or a tag");
        }
    }
    P->nesting--;
    return body;
}

jnode *jinja_parse(jx_ctx *c, const jt_token *t, size_t n) {
    parser P = {c, t, n, 0, 0};
    const char *ended = NULL;
    return parse_body(&P, NULL, &ended);
}
