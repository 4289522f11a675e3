/* jinja_internal — what the interpreter's files share: the value type, the
 * arena every parse and render allocates from, the tokens and the syntax
 * tree. Private to common/template/.
 *
 * Errors unwind: jx_fail fills the context's dp_err and longjmps back to
 * tmpl_parse / tmpl_render, which free the arena. So nothing below checks
 * for failure, and nothing owns memory but the arena. */
#ifndef DP_JINJA_INTERNAL_H
#define DP_JINJA_INTERNAL_H

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

#include "template.h"

/* ---- context: arena, limits, unwinding ---- */
typedef struct jx_block {
    struct jx_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char mem[];
} jx_block;

typedef struct jx_ctx {
    jmp_buf jb;
    dp_err *err;
    jx_block *blocks;
    size_t bytes, max_bytes;
    size_t steps, max_steps;
    size_t depth, max_depth;
} jx_ctx;

_Noreturn void jx_fail(jx_ctx *c, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void *jx_alloc(jx_ctx *c, size_t n);      /* zeroed; never NULL (fails instead) */
char *jx_strndup(jx_ctx *c, const char *s, size_t n);
void jx_free_all(jx_ctx *c);

/* ---- values ---- */
typedef enum jv_type {
    JV_UNDEF, JV_NONE, JV_BOOL, JV_INT, JV_FLOAT, JV_STR, JV_LIST, JV_DICT, JV_MACRO, JV_FUNC
} jv_type;

enum { JV_FLAG_TUPLE = 1, JV_FLAG_NAMESPACE = 2, JV_FLAG_LOOP = 4 };

typedef struct jv {
    uint8_t t, flag;
    union {
        int b;
        int64_t i;
        double f;
        struct jv_string *s;
        struct jv_list *l;
        struct jv_dict *d;
        struct jv_macro *m;
        int fn;                 /* JV_FUNC: a builtin (jinja_eval.c) */
        const char *uname;      /* JV_UNDEF: the missing name, or NULL */
    };
} jv;

typedef struct jv_string {
    size_t n;
    char p[];                   /* NUL-terminated */
} jv_string;

typedef struct jv_list {
    size_t n, cap;
    jv *a;
} jv_list;

typedef struct jv_dict {
    size_t n, cap;
    jv *k, *v;                  /* insertion order, as Python's dict */
} jv_dict;

jv jv_undef(const char *name);
jv jv_none(void);
jv jv_bool(int b);
jv jv_int(int64_t i);
jv jv_float(double f);
jv jv_str(jx_ctx *c, const char *s, size_t n);
jv jv_cstr(jx_ctx *c, const char *s);
jv jv_list_new(jx_ctx *c, size_t cap);
void jv_list_push(jx_ctx *c, jv list, jv item);
jv jv_dict_new(jx_ctx *c);
void jv_dict_set(jx_ctx *c, jv dict, jv key, jv value);
jv *jv_dict_find(jv dict, jv key);        /* NULL when absent */
jv *jv_dict_findc(jv dict, const char *key);
jv jv_from_json(jx_ctx *c, const json_t *j);

int jv_truthy(jv v);
int jv_equal(jv a, jv b);
/* -1, 0, 1; fails (at line:col) on types Python cannot order */
int jv_compare(jx_ctx *c, jv a, jv b, int line, int col);
const char *jv_type_name(jv v);
size_t jv_utf8_len(const char *s, size_t n);

/* A growable byte buffer in the arena. */
typedef struct jx_buf {
    char *p;
    size_t n, cap, max;         /* max: 0 = unbounded; else fails past it */
} jx_buf;
void jx_buf_add(jx_ctx *c, jx_buf *b, const char *s, size_t n);
void jx_buf_puts(jx_ctx *c, jx_buf *b, const char *s);

/* str(v) as Python prints it (repr for items inside lists and dicts);
 * undefined prints as "". */
void jv_write_str(jx_ctx *c, jx_buf *b, jv v);
void jv_write_repr(jx_ctx *c, jx_buf *b, jv v);
jv jv_to_str(jx_ctx *c, jv v);
/* json.dumps(v, ensure_ascii=False, indent, separators, sort_keys):
 * indent < 0 is None. */
void jv_write_json(jx_ctx *c, jx_buf *b, jv v, int indent, const char *item_sep,
                   const char *key_sep, int sort_keys, int depth, int line, int col);

/* ---- tokens ---- */
typedef enum jt_kind {
    JT_TEXT, JT_VAR_BEGIN, JT_VAR_END, JT_BLOCK_BEGIN, JT_BLOCK_END, JT_NAME, JT_STRING,
    JT_INT, JT_FLOAT, JT_OP, JT_EOF
} jt_kind;

typedef struct jt_token {
    jt_kind kind;
    int line, col;
    const char *s;              /* text, name, string value (arena), op */
    size_t n;
    int64_t i;
    double f;
} jt_token;

/* Splits SRC into tokens (trim_blocks, lstrip_blocks, whitespace control,
 * comments and raw blocks applied). */
jt_token *jinja_lex(jx_ctx *c, const char *src, size_t len, size_t *n_tokens);

/* ---- syntax tree ---- */
typedef enum jn_kind {
    /* statements */
    JN_BODY, JN_TEXT, JN_OUTPUT, JN_IF, JN_FOR, JN_SET, JN_SET_ATTR, JN_SET_BLOCK, JN_MACRO,
    JN_CALL_BLOCK, JN_FILTER_BLOCK, JN_BREAK, JN_CONTINUE,
    /* expressions */
    JN_LIT, JN_NAME, JN_LIST, JN_TUPLE, JN_DICT, JN_ATTR, JN_ITEM, JN_SLICE, JN_CALL, JN_FILTER,
    JN_TEST, JN_BINOP, JN_NEG, JN_POS, JN_NOT, JN_AND, JN_OR, JN_COND, JN_COMPARE
} jn_kind;

typedef struct jnode {
    jn_kind kind;
    int line, col;
    struct jnode *a, *b, *c, *d;
    struct jnode **kids;           /* bodies, list items, args, compare operands */
    int n_kids;
    const char **kw_names;      /* call/filter/test keyword args, macro params */
    struct jnode **kw;
    int n_kw;
    const char *name;           /* name, attribute, filter/test, operator, macro */
    const char **names;         /* for / set targets */
    int n_names;
    const char **ops;           /* compare operators */
    int flag;                   /* test: negated; for: recursive */
    jv lit;
} jnode;

/* Parses the tokens into a JN_BODY. */
jnode *jinja_parse(jx_ctx *c, const jt_token *t, size_t n);

struct tmpl {
    jx_ctx ctx;                 /* owns the tree */
    jnode *root;
};

typedef struct jv_macro {
    const jnode *node;             /* JN_MACRO, or JN_CALL_BLOCK for caller() */
    struct jx_scope *closure;
    jv caller;                  /* for a macro invoked by {% call %} */
} jv_macro;

/* ---- rendering (jinja_eval.c, jinja_filters.c) ---- */
typedef struct jx_scope {
    struct jx_scope *parent;
    jv vars;                    /* a dict */
} jx_scope;

typedef struct jx_render {
    jx_ctx *c;
    jx_buf *out;
    size_t max_output;
} jx_render;

jv jinja_eval(jx_render *r, jx_scope *s, const jnode *e);
/* Applies filter NAME (node F for position and arguments) to V. */
jv jinja_filter(jx_render *r, jx_scope *s, const jnode *f, jv v);
/* Test NAME of node T on V: 1 or 0. */
int jinja_test(jx_render *r, jx_scope *s, const jnode *t, jv v);
/* obj.NAME(args) for strings, dicts and lists; *handled 0 when no such
 * method. */
jv jinja_method(jx_render *r, jv obj, const char *name, jv *args, int n_args, const char **kw_names,
                jv *kw, int n_kw, const jnode *at, int *handled);
/* Items of an iterable (list; dict keys; string characters); fails on
 * other types. */
jv jinja_iter_list(jx_render *r, jv v, const jnode *at);
jv jinja_getattr(jx_render *r, jv obj, jv key, const jnode *at);
void jinja_step(jx_render *r, const jnode *at);

#endif
