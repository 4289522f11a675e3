/* config — see config.h.
 *
 * Both the schema (compiled in) and the user's file are read as YAML trees
 * (ytree.h); each schema leaf gets one typed value, filled from the file,
 * then --set overrides, then the schema default. */
#include "config.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ytree.h"

/* The schema, embedded at build time (NUL-terminated). */
__asm__(".section .rodata\n"
        ".global cfg_schema_yaml\n"
        "cfg_schema_yaml:\n"
        ".incbin \"schemas/pipeline.schema.yaml\"\n"
        ".byte 0\n"
        ".previous\n");
extern const char cfg_schema_yaml[];

#define CFG_MAX_FILE (16u << 20)

/* ---- schema ------------------------------------------------------------- */

typedef enum {
    T_STRING, T_PATH, T_INT, T_NUMBER, T_BOOL, T_ENUM, T_ENUM_LIST, T_NUMBER_LIST, T_GRID
} cfg_type;

static const char *const type_names[] = {"string", "path", "int", "number", "bool",
                                         "enum", "enum_list", "number_list", "grid"};

typedef struct leaf {
    char *key;                /* "train.beta" */
    cfg_type type;
    int has_min, has_max, has_gt, has_lt;
    double min, max, gt, lt;
    char **values;            /* enum values */
    int n_values;
    const ynode *def;         /* default, a node of the schema tree */
    const char *doc;
} leaf;

typedef struct schema {
    ynode *tree;
    leaf *leaves;
    int n;
} schema;

static schema g_schema;
static int g_schema_loaded;

static int schema_add(schema *s, const char *prefix, const ynode *map, dp_err *err) {
    for (int i = 0; i + 1 < map->n; i += 2) {
        const ynode *k = map->items[i], *v = map->items[i + 1];
        char key[256];
        snprintf(key, sizeof key, "%s%s%s", prefix, *prefix ? "." : "", k->text);
        if (v->kind != YN_MAP) return dp_fail(err, "schema:%d: %s: expected a mapping", v->line, key);
        const ynode *type = ytree_get(v, "type");
        if (!type) {
            if (schema_add(s, key, v, err)) return -1;
            continue;
        }
        leaf *l = realloc(s->leaves, (size_t)(s->n + 1) * sizeof *l);
        if (!l) return dp_fail(err, "out of memory");
        s->leaves = l;
        l = &s->leaves[s->n++];
        memset(l, 0, sizeof *l);
        l->key = strdup(key);
        int t;
        for (t = 0; t <= T_GRID; t++)
            if (!strcmp(type->text, type_names[t])) break;
        if (t > T_GRID) return dp_fail(err, "schema: %s: unknown type %s", key, type->text);
        l->type = (cfg_type)t;
        const ynode *n;
        if ((n = ytree_get(v, "min"))) l->has_min = 1, l->min = strtod(n->text, NULL);
        if ((n = ytree_get(v, "max"))) l->has_max = 1, l->max = strtod(n->text, NULL);
        if ((n = ytree_get(v, "gt"))) l->has_gt = 1, l->gt = strtod(n->text, NULL);
        if ((n = ytree_get(v, "lt"))) l->has_lt = 1, l->lt = strtod(n->text, NULL);
        /* describe() prints one lower and one upper bound, in_range checks
         * all four: a leaf with two of a side would be documented wrong. */
        if ((l->has_min && l->has_gt) || (l->has_max && l->has_lt))
            return dp_fail(err, "schema: %s: at most one lower (min/gt) and one upper (max/lt) bound",
                           key);
        if ((l->has_min || l->has_max || l->has_gt || l->has_lt) && t != T_INT && t != T_NUMBER)
            return dp_fail(err, "schema: %s: a range on a %s", key, type->text);
        if ((n = ytree_get(v, "values"))) {
            l->values = calloc((size_t)n->n, sizeof *l->values);
            if (!l->values) return dp_fail(err, "out of memory");
            for (int j = 0; j < n->n; j++) l->values[j] = n->items[j]->text;
            l->n_values = n->n;
        }
        l->def = ytree_get(v, "default");
        n = ytree_get(v, "doc");
        l->doc = n ? n->text : "";
        if (!l->def) return dp_fail(err, "schema: %s: no default", key);
    }
    return 0;
}

/* The schema is parsed once per process; it is compiled in, so a failure
 * here is a build defect and asserted. */
static const schema *schema_get(void) {
    if (g_schema_loaded) return &g_schema;
    dp_err err;
    int rc = ytree_parse("schemas/pipeline.schema.yaml", cfg_schema_yaml, strlen(cfg_schema_yaml),
                       &g_schema.tree, &err);
    if (rc == 0) rc = schema_add(&g_schema, "", g_schema.tree, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert(rc == 0);
    g_schema_loaded = 1;
    return &g_schema;
}

static const leaf *schema_find(const schema *s, const char *key, int *index) {
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->leaves[i].key, key)) {
            if (index) *index = i;
            return &s->leaves[i];
        }
    return NULL;
}

/* ---- values -------------------------------------------------------------- */

typedef struct value {
    char *str;                /* string, path, enum; numbers keep their text too */
    double num;
    long i;
    int b;
    int n;                    /* list length / grid keys */
    char **items;             /* enum_list items; grid: key, then its values joined */
    double *nums;             /* number_list */
    int *grid_len;            /* grid: values per key */
    char ***grid_vals;
} value;

struct config {
    char *path;
    char *base_dir;           /* for relative paths in the file */
    value *v;                 /* one per schema leaf */
};

static void value_clear(value *v) {
    free(v->str);
    for (int i = 0; i < v->n; i++) {
        if (v->items) free(v->items[i]);
        if (v->grid_vals) {
            for (int j = 0; j < v->grid_len[i]; j++) free(v->grid_vals[i][j]);
            free(v->grid_vals[i]);
        }
    }
    free(v->items);
    free(v->nums);
    free(v->grid_len);
    free(v->grid_vals);
    memset(v, 0, sizeof *v);
}

/* The leaf's range exactly as the schema states it, which is what
 * in_range enforces: "a number > 0", "an integer in [1, 1000000]",
 * "a number in [0, 1)", "a number <= 10". Bounds print with up to 15
 * significant digits, so every schema bound (at most 2^53) prints as written. */
static void describe(const leaf *l, char *buf, size_t size) {
    const char *what = l->type == T_INT ? "an integer" : "a number";
    int lo = l->has_min || l->has_gt, hi = l->has_max || l->has_lt;
    double a = l->has_gt ? l->gt : l->min, b = l->has_lt ? l->lt : l->max;
    if (lo && hi)
        snprintf(buf, size, "%s in %c%.15g, %.15g%c", what, l->has_gt ? '(' : '[', a, b,
                 l->has_lt ? ')' : ']');
    else if (lo)
        snprintf(buf, size, "%s %s %.15g", what, l->has_gt ? ">" : ">=", a);
    else if (hi)
        snprintf(buf, size, "%s %s %.15g", what, l->has_lt ? "<" : "<=", b);
    else
        snprintf(buf, size, "%s", what);
}

/* What node N holds, for "got ...": a kind, or its text quoted. */
static const char *quote_scalar(const ynode *n, char buf[DP_QUOTE_CAP]) {
    if (n->kind == YN_MAP) return strcpy(buf, "a mapping");
    if (n->kind == YN_SEQ) return strcpy(buf, "a list");
    if (n->text[0] == '\0' && !n->quoted) return strcpy(buf, "nothing");
    return dp_quote(buf, n->text, (size_t)-1);
}

/* Where node N is, for the start of a message: "FILE:LINE:COL", or just
 * WHERE for a node without a position (line 0: a --set or sweep value,
 * one line of the command line, where a column is noise). */
#define AT_CAP 512
static const char *at(char buf[AT_CAP], const char *where, const ynode *n) {
    if (n->line <= 0) snprintf(buf, AT_CAP, "%s", where);
    else snprintf(buf, AT_CAP, "%s:%d:%d", where, n->line, n->col);
    return buf;
}

/* A key path for a message: as is when it is a plain name (letters, digits,
 * '_', '-', '.'), else quoted, since it came from the user. */
static const char *key_name(char buf[DP_QUOTE_CAP], const char *key) {
    for (const char *c = key; *c; c++)
        if (!isalnum((unsigned char)*c) && *c != '_' && *c != '-' && *c != '.')
            return dp_quote(buf, key, (size_t)-1);
    return *key ? key : dp_quote(buf, key, (size_t)-1);
}

static int parse_number(const ynode *n, double *out) {
    if (n->kind != YN_SCALAR || n->quoted || !n->text[0]) return -1;
    char *end;
    errno = 0;
    double d = strtod(n->text, &end);
    if (*end || errno || !isfinite(d)) return -1;
    /* YAML has no hex floats or "nan"; strtod accepts them. */
    for (const char *c = n->text; *c; c++)
        if (isalpha((unsigned char)*c) && *c != 'e' && *c != 'E') return -1;
    *out = d;
    return 0;
}

static int in_range(const leaf *l, double d) {
    if (l->has_min && d < l->min) return 0;
    if (l->has_max && d > l->max) return 0;
    if (l->has_gt && d <= l->gt) return 0;
    if (l->has_lt && d >= l->lt) return 0;
    return 1;
}

static int enum_index(const leaf *l, const char *s) {
    for (int i = 0; i < l->n_values; i++)
        if (!strcmp(l->values[i], s)) return i;
    return -1;
}

static void enum_list_text(const leaf *l, char *buf, size_t size) {
    size_t k = 0;
    buf[0] = '\0';
    for (int i = 0; i < l->n_values && k + 2 < size; i++)
        k += (size_t)snprintf(buf + k, size - k, "%s%s", i ? ", " : "", l->values[i]);
}

static char *join_path(const char *base, const char *p) {
    if (!p[0] || p[0] == '/' || !base || !base[0] || !strcmp(base, ".")) return strdup(p);
    size_t n = strlen(base) + strlen(p) + 2;
    char *out = malloc(n);
    if (out) snprintf(out, n, "%s/%s", base, p);
    return out;
}

static int apply(const config *c, const leaf *l, const ynode *n, const char *where,
                 const char *base_dir, value *out, dp_err *err);

/* Checks one grid (sweep) entry: KEY must be a settable leaf and every value
 * valid for it. */
static int apply_grid(const config *c, const leaf *l, const ynode *n, const char *where,
                      value *out, dp_err *err) {
    const schema *s = schema_get();
    char loc[AT_CAP], q[DP_QUOTE_CAP];
    if (n->kind != YN_MAP)
        return dp_fail(err, "%s: %s: expected a mapping from keys to lists of values, got %s",
                       at(loc, where, n), l->key, quote_scalar(n, q));
    int keys = n->n / 2;
    out->items = calloc((size_t)keys + 1, sizeof *out->items);
    out->grid_len = calloc((size_t)keys + 1, sizeof *out->grid_len);
    out->grid_vals = calloc((size_t)keys + 1, sizeof *out->grid_vals);
    if (!out->items || !out->grid_len || !out->grid_vals) return dp_fail(err, "out of memory");
    for (int k = 0; k < keys; k++) {
        const ynode *key = n->items[2 * k], *vals = n->items[2 * k + 1];
        const leaf *target = key->kind == YN_SCALAR ? schema_find(s, key->text, NULL) : NULL;
        if (!target || target->type == T_GRID)
            return dp_fail(err, "%s: %s: unknown key %s to sweep over", at(loc, where, key), l->key,
                           key->kind == YN_SCALAR ? key_name(q, key->text) : "(not a name)");
        if (vals->kind != YN_SEQ)
            return dp_fail(err, "%s: %s.%s: expected a non-empty list of values, got %s",
                           at(loc, where, vals), l->key, key->text, quote_scalar(vals, q));
        if (vals->n == 0)
            return dp_fail(err, "%s: %s.%s: expected a non-empty list of values", at(loc, where, vals),
                           l->key, key->text);
        out->items[k] = strdup(key->text);
        out->grid_vals[k] = calloc((size_t)vals->n, sizeof(char *));
        out->n = k + 1;
        if (!out->items[k] || !out->grid_vals[k]) return dp_fail(err, "out of memory");
        for (int j = 0; j < vals->n; j++) {
            value scratch = {0};
            int rc = apply(c, target, vals->items[j], where, "", &scratch, err);
            value_clear(&scratch);
            if (rc) return -1;
            if (vals->items[j]->kind != YN_SCALAR)
                return dp_fail(err, "%s: %s.%s: sweep values must be single values, got %s",
                               at(loc, where, vals->items[j]), l->key, key->text,
                               quote_scalar(vals->items[j], q));
            out->grid_vals[k][j] = strdup(vals->items[j]->text);
            out->grid_len[k] = j + 1;
            if (!out->grid_vals[k][j]) return dp_fail(err, "out of memory");
        }
    }
    return 0;
}

/* Converts node N to leaf L's type into *out (cleared first). WHERE is the
 * file name (or "--set"); paths resolve against BASE_DIR. */
static int apply(const config *c, const leaf *l, const ynode *n, const char *where,
                 const char *base_dir, value *out, dp_err *err) {
    char got[DP_QUOTE_CAP], want[128], loc[AT_CAP], num[48];
    value_clear(out);
    quote_scalar(n, got);
    /* a number as written (parse_number accepted it: digits, sign, '.', e),
     * cut when long */
    snprintf(num, sizeof num, "%.40s%s", n->kind == YN_SCALAR ? n->text : "",
             n->kind == YN_SCALAR && strlen(n->text) > 40 ? "..." : "");
#define BAD(...) dp_fail(err, "%s: %s: expected %s, got %s", at(loc, where, n), l->key, __VA_ARGS__)
    switch (l->type) {
    case T_STRING:
    case T_PATH:
        if (n->kind != YN_SCALAR) return BAD(l->type == T_PATH ? "a path" : "a string", got);
        out->str = l->type == T_PATH ? join_path(base_dir, n->text) : strdup(n->text);
        break;
    case T_ENUM:
        enum_list_text(l, want, sizeof want);
        if (n->kind != YN_SCALAR || enum_index(l, n->text) < 0) {
            char w[160];
            snprintf(w, sizeof w, "one of %s", want);
            return BAD(w, got);
        }
        out->str = strdup(n->text);
        break;
    case T_INT:
    case T_NUMBER: {
        double d;
        describe(l, want, sizeof want);
        if (parse_number(n, &d)) return BAD(want, got);
        if (l->type == T_INT && (d != floor(d) || strpbrk(n->text, ".eE")))
            return BAD(want, num);
        if (!in_range(l, d)) return BAD(want, num);
        out->num = d;
        out->i = l->type == T_INT ? (long)d : 0; /* ranges keep ints within long */
        out->str = strdup(n->text);
        break;
    }
    case T_BOOL: {
        static const char *const yes[] = {"true", "yes", "on", "True", "TRUE"};
        static const char *const no[] = {"false", "no", "off", "False", "FALSE"};
        int b = -1;
        for (int i = 0; n->kind == YN_SCALAR && !n->quoted && i < 5; i++) {
            if (!strcmp(n->text, yes[i])) b = 1;
            if (!strcmp(n->text, no[i])) b = 0;
        }
        if (b < 0) return BAD("true or false", got);
        out->b = b;
        out->str = strdup(b ? "true" : "false");
        break;
    }
    case T_ENUM_LIST: {
        enum_list_text(l, want, sizeof want);
        int count = n->kind == YN_SEQ ? n->n : 1;
        if (n->kind == YN_MAP) return BAD("one or a list of", got);
        out->items = calloc((size_t)count + 1, sizeof *out->items);
        if (!out->items) return dp_fail(err, "out of memory");
        for (int i = 0; i < count; i++) {
            const ynode *item = n->kind == YN_SEQ ? n->items[i] : n;
            if (item->kind != YN_SCALAR || enum_index(l, item->text) < 0) {
                return dp_fail(err, "%s: %s: expected one of %s, got %s", at(loc, where, item),
                               l->key, want, quote_scalar(item, got));
            }
            out->items[i] = strdup(item->text);
            out->n = i + 1;
        }
        if (count == 0) return BAD("at least one of", "an empty list");
        break;
    }
    case T_NUMBER_LIST: {
        if (n->kind != YN_SEQ) return BAD("a list of numbers", got);
        out->nums = calloc((size_t)n->n + 1, sizeof *out->nums);
        if (!out->nums) return dp_fail(err, "out of memory");
        for (int i = 0; i < n->n; i++) {
            if (parse_number(n->items[i], &out->nums[i])) {
                return dp_fail(err, "%s: %s: expected a number, got %s", at(loc, where, n->items[i]),
                               l->key, quote_scalar(n->items[i], got));
            }
        }
        out->n = n->n;
        break;
    }
    case T_GRID:
        return apply_grid(c, l, n, where, out, err);
    }
#undef BAD
    if (l->type != T_ENUM_LIST && l->type != T_NUMBER_LIST && !out->str)
        return dp_fail(err, "out of memory");
    return 0;
}

/* ---- loading ------------------------------------------------------------- */

static size_t edit_distance(const char *a, const char *b) {
    size_t n = strlen(a), m = strlen(b), row[257];
    if (m > 256) return (size_t)-1;
    for (size_t j = 0; j <= m; j++) row[j] = j;
    for (size_t i = 1; i <= n; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= m; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best) best = row[j] + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[m];
}

static int unknown_key(const char *where, const ynode *k, const char *key, dp_err *err) {
    const schema *s = schema_get();
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    for (int i = 0; i < s->n; i++) {
        size_t d = edit_distance(key, s->leaves[i].key);
        if (d < best_d) best_d = d, best = s->leaves[i].key;
        /* also sections: the prefix of a leaf up to each dot */
        const char *dot = s->leaves[i].key;
        while ((dot = strchr(dot, '.'))) {
            char sect[256];
            snprintf(sect, sizeof sect, "%.*s", (int)(dot - s->leaves[i].key), s->leaves[i].key);
            d = edit_distance(key, sect);
            if (d < best_d) best_d = d, best = s->leaves[i].key;
            dot++;
        }
    }
    size_t len = strlen(key);
    char loc[AT_CAP], q[DP_QUOTE_CAP];
    if (best && best_d <= (len > 9 ? len / 3 : 3))
        return dp_fail(err, "%s: %s: unknown key; did you mean %s?", at(loc, where, k),
                       key_name(q, key), best);
    return dp_fail(err, "%s: %s: unknown key (dpoc config --explain lists them)", at(loc, where, k),
                   key_name(q, key));
}

/* Walks the user's tree: every key must be a section or a leaf. */
static int load_map(config *c, const ynode *map, const char *prefix, const char *where,
                    dp_err *err) {
    const schema *s = schema_get();
    for (int i = 0; i + 1 < map->n; i += 2) {
        const ynode *k = map->items[i], *v = map->items[i + 1];
        char loc[AT_CAP], q[DP_QUOTE_CAP];
        if (k->kind != YN_SCALAR)
            return dp_fail(err, "%s: keys must be plain names, got %s", at(loc, where, k),
                           quote_scalar(k, q));
        char key[256];
        snprintf(key, sizeof key, "%s%s%s", prefix, *prefix ? "." : "", k->text);
        for (int j = 0; j < i; j += 2)
            if (map->items[j]->kind == YN_SCALAR && !strcmp(map->items[j]->text, k->text))
                return dp_fail(err, "%s: %s: given twice (first at line %d)", at(loc, where, k),
                               key_name(q, key), map->items[j]->line);
        int idx;
        const leaf *l = schema_find(s, key, &idx);
        if (l) {
            if (apply(c, l, v, where, c->base_dir, &c->v[idx], err)) return -1;
            continue;
        }
        int is_section = 0;
        size_t kl = strlen(key);
        for (int j = 0; j < s->n; j++)
            if (!strncmp(s->leaves[j].key, key, kl) && s->leaves[j].key[kl] == '.') is_section = 1;
        if (!is_section) return unknown_key(where, k, key, err);
        if (v->kind == YN_SCALAR && !v->text[0] && !v->quoted) continue; /* empty section */
        if (v->kind != YN_MAP)
            return dp_fail(err, "%s: %s: expected a section (a mapping), got %s", at(loc, where, v),
                           key, v->kind == YN_SEQ ? "a list" : quote_scalar(v, q));
        if (load_map(c, v, key, where, err)) return -1;
    }
    return 0;
}

static config *cfg_new(void) {
    const schema *s = schema_get();
    config *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->v = calloc((size_t)s->n, sizeof *c->v);
    c->path = strdup("");
    c->base_dir = strdup("");
    if (!c->v || !c->path || !c->base_dir) {
        cfg_free(c);
        return NULL;
    }
    return c;
}

void cfg_free(config *c) {
    if (!c) return;
    const schema *s = schema_get();
    for (int i = 0; c->v && i < s->n; i++) value_clear(&c->v[i]);
    free(c->v);
    free(c->path);
    free(c->base_dir);
    free(c);
}

/* Drops the position from every node of a tree parsed from one --set or
 * sweep value, so that messages name the origin alone (see at()). */
static void drop_positions(ynode *n) {
    n->line = n->col = 0;
    for (int i = 0; i < n->n; i++) drop_positions(n->items[i]);
}

int cfg_set(config *c, const char *assignment, const char *origin, dp_err *err) {
    const schema *s = schema_get();
    const char *eq = strchr(assignment, '=');
    char q[DP_QUOTE_CAP];
    if (!eq || eq == assignment)
        return dp_fail(err, "%s: expected key=value, got %s", origin,
                       dp_quote(q, assignment, (size_t)-1));
    char key[256];
    snprintf(key, sizeof key, "%.*s", (int)(eq - assignment), assignment);
    int idx;
    const leaf *l = schema_find(s, key, &idx);
    if (!l) {
        ynode k = {.kind = YN_SCALAR};
        return unknown_key(origin, &k, key, err);
    }
    ynode *n = NULL;
    const char *text = eq + 1;
    if (ytree_parse(origin, text, strlen(text), &n, err)) {
        /* "ORIGIN:LINE:COL: what" → "ORIGIN: KEY: what" */
        char what[sizeof err->msg];
        const char *rest = err->msg + strlen(origin);
        while (*rest == ':' || (*rest >= '0' && *rest <= '9')) rest++;
        snprintf(what, sizeof what, "%s", rest + (*rest == ' '));
        return dp_fail(err, "%s: %s: %s", origin, key, what);
    }
    /* An empty value means the empty string for strings and paths. */
    if (n->kind == YN_MAP && n->n == 0 && (l->type == T_STRING || l->type == T_PATH)) {
        ytree_free(n);
        if (!(n = ytree_scalar(""))) return dp_fail(err, "out of memory");
    }
    drop_positions(n);
    value v = {0};
    int rc = apply(c, l, n, origin, "", &v, err);
    ytree_free(n);
    if (rc) {
        value_clear(&v);
        return -1;
    }
    value_clear(&c->v[idx]);
    c->v[idx] = v;
    return 0;
}

static char *read_file(const char *path, size_t *len, dp_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        dp_fail(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) {
        fclose(f);
        dp_fail(err, "%s: not a regular file", path);
        return NULL;
    }
    if ((size_t)st.st_size > CFG_MAX_FILE) {
        fclose(f);
        dp_fail(err, "%s: %lld bytes is too large for a configuration (at most %u)", path,
                (long long)st.st_size, CFG_MAX_FILE);
        return NULL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        fclose(f);
        dp_fail(err, "%s: out of memory", path);
        return NULL;
    }
    *len = fread(buf, 1, (size_t)st.st_size, f);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        dp_fail(err, "%s: read error", path);
        return NULL;
    }
    buf[*len] = '\0';
    return buf;
}

int cfg_load(config **out, const char *path, const char *const *sets, int n_sets, dp_err *err) {
    const schema *s = schema_get();
    *out = NULL;
    config *c = cfg_new();
    if (!c) return dp_fail(err, "out of memory");
    ynode *tree = NULL;
    if (path) {
        free(c->path);
        free(c->base_dir);
        c->path = strdup(path);
        const char *slash = strrchr(path, '/');
        c->base_dir = slash ? strndup(path, (size_t)(slash - path + (slash == path))) : strdup("");
        if (!c->path || !c->base_dir) goto oom;
        size_t len;
        char *text = read_file(path, &len, err);
        if (!text) goto fail;
        if (memchr(text, '\0', len)) {
            free(text);
            dp_fail(err, "%s: contains a NUL byte; expected YAML text", path);
            goto fail;
        }
        int rc = ytree_parse(path, text, len, &tree, err);
        free(text);
        if (rc) goto fail;
        if (tree->kind != YN_MAP) {
            dp_fail(err, "%s:%d:%d: expected a mapping of sections (store, reference, data, ...)",
                    path, tree->line, tree->col);
            goto fail;
        }
        if (load_map(c, tree, "", path, err)) goto fail;
    }
    for (int i = 0; i < n_sets; i++) {
        char origin[32];
        snprintf(origin, sizeof origin, "--set #%d", i + 1);
        if (cfg_set(c, sets[i], origin, err)) goto fail;
    }
    /* Defaults for whatever is still unset; default paths are relative to
     * the file too. */
    for (int i = 0; i < s->n; i++) {
        value *v = &c->v[i];
        if (v->str || v->items || v->nums || v->grid_len) continue;
        if (s->leaves[i].type == T_NUMBER_LIST && s->leaves[i].def->kind == YN_SEQ &&
            s->leaves[i].def->n == 0)
            continue;
        if (apply(c, &s->leaves[i], s->leaves[i].def, "schema", c->base_dir, v, err)) goto fail;
    }
    ytree_free(tree);
    *out = c;
    return 0;
oom:
    dp_fail(err, "out of memory");
fail:
    ytree_free(tree);
    cfg_free(c);
    return -1;
}

/* ---- getters ------------------------------------------------------------- */

static const value *get(const config *c, const char *key, cfg_type t1, cfg_type t2) {
    int idx;
    const leaf *l = schema_find(schema_get(), key, &idx);
    assert(l && "unknown configuration key");
    assert(l->type == t1 || l->type == t2);
    (void)l;
    (void)t1;
    (void)t2;
    return &c->v[idx];
}

const char *cfg_str(const config *c, const char *key) {
    int idx;
    const leaf *l = schema_find(schema_get(), key, &idx);
    assert(l && (l->type == T_STRING || l->type == T_PATH || l->type == T_ENUM));
    (void)l;
    return c->v[idx].str ? c->v[idx].str : "";
}
long cfg_int(const config *c, const char *key) { return get(c, key, T_INT, T_INT)->i; }
double cfg_num(const config *c, const char *key) { return get(c, key, T_NUMBER, T_INT)->num; }
int cfg_bool(const config *c, const char *key) { return get(c, key, T_BOOL, T_BOOL)->b; }
int cfg_list_len(const config *c, const char *key) {
    return get(c, key, T_ENUM_LIST, T_NUMBER_LIST)->n;
}
const char *cfg_list_str(const config *c, const char *key, int i) {
    const value *v = get(c, key, T_ENUM_LIST, T_ENUM_LIST);
    assert(i >= 0 && i < v->n);
    return v->items[i];
}
double cfg_list_num(const config *c, const char *key, int i) {
    const value *v = get(c, key, T_NUMBER_LIST, T_NUMBER_LIST);
    assert(i >= 0 && i < v->n);
    return v->nums[i];
}
int cfg_sweep_keys(const config *c) { return get(c, "sweep", T_GRID, T_GRID)->n; }
const char *cfg_sweep_key(const config *c, int k) {
    return get(c, "sweep", T_GRID, T_GRID)->items[k];
}
int cfg_sweep_len(const config *c, int k) { return get(c, "sweep", T_GRID, T_GRID)->grid_len[k]; }
const char *cfg_sweep_value(const config *c, int k, int i) {
    return get(c, "sweep", T_GRID, T_GRID)->grid_vals[k][i];
}
const char *cfg_path(const config *c) { return c->path; }

config *cfg_clone(const config *c) {
    const schema *s = schema_get();
    config *d = cfg_new();
    if (!d) return NULL;
    free(d->path);
    free(d->base_dir);
    d->path = strdup(c->path);
    d->base_dir = strdup(c->base_dir);
    int ok = d->path && d->base_dir;
    for (int i = 0; ok && i < s->n; i++) {
        const value *a = &c->v[i];
        value *b = &d->v[i];
        b->num = a->num, b->i = a->i, b->b = a->b, b->n = a->n;
        if (a->str && !(b->str = strdup(a->str))) ok = 0;
        if (a->items) {
            b->items = calloc((size_t)a->n + 1, sizeof *b->items);
            for (int j = 0; b->items && j < a->n; j++) b->items[j] = strdup(a->items[j]);
            if (!b->items) ok = 0;
        }
        if (a->nums) {
            b->nums = calloc((size_t)a->n + 1, sizeof *b->nums);
            if (b->nums) memcpy(b->nums, a->nums, (size_t)a->n * sizeof *b->nums);
            else ok = 0;
        }
        if (a->grid_len) {
            b->grid_len = calloc((size_t)a->n + 1, sizeof *b->grid_len);
            b->grid_vals = calloc((size_t)a->n + 1, sizeof *b->grid_vals);
            if (!b->grid_len || !b->grid_vals) { ok = 0; break; }
            for (int k = 0; k < a->n; k++) {
                b->grid_len[k] = a->grid_len[k];
                b->grid_vals[k] = calloc((size_t)a->grid_len[k] + 1, sizeof(char *));
                for (int j = 0; b->grid_vals[k] && j < a->grid_len[k]; j++)
                    b->grid_vals[k][j] = strdup(a->grid_vals[k][j]);
            }
        }
    }
    if (!ok) {
        cfg_free(d);
        return NULL;
    }
    return d;
}

/* ---- printing ------------------------------------------------------------ */

typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) { b->oom = 1; return; }
        if (b->p && b->n + (size_t)k < b->cap) { b->n += (size_t)k; return; }
        size_t cap = (b->cap + (size_t)k + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p) { b->oom = 1; return; }
        b->p = p;
        b->cap = cap;
    }
}

/* A YAML scalar that reads back as the same string. */
static void sb_quoted(sbuf *b, const char *s) {
    sb_printf(b, "\"");
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') sb_printf(b, "\\%c", ch);
        else if (ch == '\n') sb_printf(b, "\\n");
        else if (ch == '\t') sb_printf(b, "\\t");
        else if (ch < 0x20) sb_printf(b, "\\x%02x", ch);
        else sb_printf(b, "%c", ch);
    }
    sb_printf(b, "\"");
}

/* The shortest decimal that reads back as the same double. */
static void sb_number(sbuf *b, double d) {
    char buf[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, d);
        if (strtod(buf, NULL) == d) break;
    }
    sb_printf(b, "%s", buf);
}

static char *sb_finish(sbuf *b) {
    if (b->oom) {
        free(b->p);
        return NULL;
    }
    if (!b->p) sb_printf(b, "%s", "");
    return b->p;
}

char *cfg_to_yaml(const config *c) {
    const schema *s = schema_get();
    sbuf b = {0};
    char prev[256] = "";
    for (int i = 0; i < s->n; i++) {
        const leaf *l = &s->leaves[i];
        const value *v = &c->v[i];
        /* open the sections that differ from the previous key's */
        const char *key = l->key;
        int depth = 0;
        const char *seg = key, *dot;
        size_t common = 0;
        while ((dot = strchr(seg, '.'))) {
            size_t len = (size_t)(dot - key);
            if (common == (size_t)(seg - key) && !strncmp(prev, key, len + 1)) common = len + 1;
            else sb_printf(&b, "%*s%.*s:\n", 2 * depth, "", (int)(dot - seg), seg);
            depth++;
            seg = dot + 1;
        }
        snprintf(prev, sizeof prev, "%s", key);
        sb_printf(&b, "%*s%s:", 2 * depth, "", seg);
        switch (l->type) {
        case T_PATH:
            /* absolute, so the printed file loads the same from anywhere */
            if (v->str && v->str[0] && v->str[0] != '/') {
                char cwd[4096];
                if (getcwd(cwd, sizeof cwd)) {
                    sb_printf(&b, " ");
                    char *abs = join_path(cwd, v->str);
                    sb_quoted(&b, abs ? abs : v->str);
                    free(abs);
                    break;
                }
            }
            /* fall through */
        case T_STRING:
        case T_ENUM:
            sb_printf(&b, " ");
            sb_quoted(&b, v->str ? v->str : "");
            break;
        case T_INT:
            sb_printf(&b, " %ld", v->i);
            break;
        case T_NUMBER:
            sb_printf(&b, " ");
            sb_number(&b, v->num);
            break;
        case T_BOOL:
            sb_printf(&b, " %s", v->b ? "true" : "false");
            break;
        case T_ENUM_LIST:
            sb_printf(&b, " [");
            for (int j = 0; j < v->n; j++) sb_printf(&b, "%s%s", j ? ", " : "", v->items[j]);
            sb_printf(&b, "]");
            break;
        case T_NUMBER_LIST:
            sb_printf(&b, " [");
            for (int j = 0; j < v->n; j++) {
                sb_printf(&b, "%s", j ? ", " : "");
                sb_number(&b, v->nums[j]);
            }
            sb_printf(&b, "]");
            break;
        case T_GRID:
            if (!v->n) sb_printf(&b, " {}");
            for (int k = 0; k < v->n; k++) {
                sb_printf(&b, "\n%*s%s: [", 2 * depth + 2, "", v->items[k]);
                for (int j = 0; j < v->grid_len[k]; j++)
                    sb_printf(&b, "%s%s", j ? ", " : "", v->grid_vals[k][j]);
                sb_printf(&b, "]");
            }
            break;
        }
        sb_printf(&b, "\n");
    }
    return sb_finish(&b);
}

char *cfg_explain(void) {
    const schema *s = schema_get();
    sbuf b = {0};
    for (int i = 0; i < s->n; i++) {
        const leaf *l = &s->leaves[i];
        char what[256];
        if (l->type == T_INT || l->type == T_NUMBER) describe(l, what, sizeof what);
        else if (l->type == T_ENUM || l->type == T_ENUM_LIST) {
            char vals[200];
            enum_list_text(l, vals, sizeof vals);
            snprintf(what, sizeof what, "%s: %s", l->type == T_ENUM ? "one of" : "one or a list of",
                     vals);
        } else
            snprintf(what, sizeof what, "%s", type_names[l->type]);
        sb_printf(&b, "%s\n    %s\n    type: %s; default: ", l->key, l->doc, what);
        const ynode *d = l->def;
        if (d->kind == YN_SCALAR) sb_printf(&b, "%s", d->text[0] ? d->text : "\"\"");
        else if (d->kind == YN_SEQ) {
            sb_printf(&b, "[");
            for (int j = 0; j < d->n; j++) sb_printf(&b, "%s%s", j ? ", " : "", d->items[j]->text);
            sb_printf(&b, "]");
        } else
            sb_printf(&b, "{}");
        sb_printf(&b, "\n");
    }
    return sb_finish(&b);
}
