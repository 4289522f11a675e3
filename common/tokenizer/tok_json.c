/* tok_json — a small read-only JSON parser for tokenizer.json files.
 *
 * Why not jansson: it builds a hash table per object and a malloc per
 * string, which takes ~0.6 s on Qwen3's 11 MB file and ~1.5 s on Gemma 3's
 * 33 MB one. Here the file is read into one buffer, strings are unescaped in
 * place (never longer than their escaped form) and NUL-terminated there, and
 * nodes sit in one array in document order: a node's children follow it,
 * and `skip` is the index just past its subtree. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tok_internal.h"

typedef struct parser {
    tj_doc *d;
    char *p, *end;
    dp_err *err;
    const char *path;
} parser;

static int perr(parser *ps, const char *at, const char *what) {
    size_t line = 1, col = 1;
    for (const char *q = ps->d->buf; q < at && q < ps->end; q++) {
        if (*q == '\n') line++, col = 1;
        else col++;
    }
    return dp_fail(ps->err, "%s:%zu:%zu: %s", ps->path, line, col, what);
}

static void skip_ws(parser *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '\t'))
        ps->p++;
}

static int new_node(parser *ps, uint8_t type, int32_t *idx) {
    tj_doc *d = ps->d;
    if (d->n == d->cap) {
        size_t c = d->cap ? d->cap * 2 : 4096;
        tj_node *nn = realloc(d->nodes, c * sizeof *nn);
        if (!nn) return dp_fail(ps->err, "%s: out of memory parsing JSON", ps->path);
        d->nodes = nn;
        d->cap = c;
    }
    *idx = (int32_t)d->n;
    d->nodes[d->n++] = (tj_node){type, 0, 0, 0, 0, 0, 0};
    return 0;
}

static int hex4(const char *s, unsigned *v) {
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        unsigned h = c >= '0' && c <= '9' ? (unsigned)(c - '0') : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                   : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 16u;
        if (h > 15) return -1;
        *v = *v << 4 | h;
    }
    return 0;
}

/* Parses a string at ps->p (on the opening quote); unescapes in place. */
static int parse_string(parser *ps, uint32_t *off, uint32_t *len) {
    char *start = ++ps->p, *w = start;
    for (;;) {
        if (ps->p >= ps->end) return perr(ps, ps->p, "unterminated string");
        unsigned char c = (unsigned char)*ps->p;
        if (c == '"') break;
        if (c < 0x20) return perr(ps, ps->p, "control character in string");
        if (c >= 0x80) {
            int l = utf8_valid_len((const unsigned char *)ps->p, (size_t)(ps->end - ps->p));
            if (!l) return perr(ps, ps->p, "invalid UTF-8 in string");
            memmove(w, ps->p, (size_t)l);
            w += l, ps->p += l;
            continue;
        }
        if (c != '\\') {
            *w++ = *ps->p++;
            continue;
        }
        if (ps->p + 1 >= ps->end) return perr(ps, ps->p, "unterminated string");
        char e = ps->p[1];
        ps->p += 2;
        switch (e) {
        case '"': *w++ = '"'; break;
        case '\\': *w++ = '\\'; break;
        case '/': *w++ = '/'; break;
        case 'b': *w++ = '\b'; break;
        case 'f': *w++ = '\f'; break;
        case 'n': *w++ = '\n'; break;
        case 'r': *w++ = '\r'; break;
        case 't': *w++ = '\t'; break;
        case 'u': {
            unsigned v, lo;
            if (ps->end - ps->p < 4 || hex4(ps->p, &v)) return perr(ps, ps->p, "invalid \\u escape");
            ps->p += 4;
            if (v >= 0xD800 && v <= 0xDBFF) {
                if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u' || hex4(ps->p + 2, &lo) ||
                    lo < 0xDC00 || lo > 0xDFFF)
                    return perr(ps, ps->p, "lone surrogate in \\u escape");
                ps->p += 6;
                v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
            } else if (v >= 0xDC00 && v <= 0xDFFF)
                return perr(ps, ps->p, "lone surrogate in \\u escape");
            w += tok_utf8_encode((int32_t)v, w);
            break;
        }
        default: return perr(ps, ps->p - 1, "invalid escape in string");
        }
    }
    *w = '\0'; /* w <= ps->p, which is the closing quote */
    ps->p++;
    *off = (uint32_t)(start - ps->d->buf);
    *len = (uint32_t)(w - start);
    return 0;
}

static int parse_value(parser *ps, int depth);

static int parse_container(parser *ps, int depth, int is_obj) {
    int32_t idx;
    if (new_node(ps, is_obj ? TJ_OBJ : TJ_ARR, &idx)) return -1;
    ps->p++;
    skip_ws(ps);
    uint32_t count = 0;
    char close = is_obj ? '}' : ']';
    if (ps->p < ps->end && *ps->p == close) ps->p++;
    else
        for (;;) {
            uint32_t koff = 0, klen = 0;
            if (is_obj) {
                skip_ws(ps);
                if (ps->p >= ps->end || *ps->p != '"') return perr(ps, ps->p, "expected a string key");
                if (parse_string(ps, &koff, &klen)) return -1;
                skip_ws(ps);
                if (ps->p >= ps->end || *ps->p != ':') return perr(ps, ps->p, "expected ':'");
                ps->p++;
            }
            size_t child = ps->d->n;
            if (parse_value(ps, depth + 1)) return -1;
            ps->d->nodes[child].key_off = koff;
            ps->d->nodes[child].key_len = klen;
            count++;
            skip_ws(ps);
            if (ps->p < ps->end && *ps->p == ',') {
                ps->p++;
                continue;
            }
            if (ps->p < ps->end && *ps->p == close) {
                ps->p++;
                break;
            }
            return perr(ps, ps->p, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    ps->d->nodes[idx].count = count;
    ps->d->nodes[idx].skip = (uint32_t)ps->d->n;
    return 0;
}

static int parse_value(parser *ps, int depth) {
    if (depth > 256) return perr(ps, ps->p, "nesting too deep");
    skip_ws(ps);
    if (ps->p >= ps->end) return perr(ps, ps->p, "unexpected end of input");
    char c = *ps->p;
    int32_t idx;
    if (c == '{' || c == '[') return parse_container(ps, depth, c == '{');
    if (c == '"') {
        uint32_t off, len;
        if (new_node(ps, TJ_STR, &idx) || parse_string(ps, &off, &len)) return -1;
        ps->d->nodes[idx].off = off, ps->d->nodes[idx].len = len;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        char *s = ps->p;
        if (*ps->p == '-') ps->p++;
        while (ps->p < ps->end && ((*ps->p >= '0' && *ps->p <= '9') || *ps->p == '.' || *ps->p == 'e' ||
                                   *ps->p == 'E' || *ps->p == '+' || *ps->p == '-'))
            ps->p++;
        if (new_node(ps, TJ_NUM, &idx)) return -1;
        ps->d->nodes[idx].off = (uint32_t)(s - ps->d->buf);
        ps->d->nodes[idx].len = (uint32_t)(ps->p - s);
    } else {
        static const struct { const char *w; uint8_t t; } lits[] = {
            {"null", TJ_NULL}, {"true", TJ_TRUE}, {"false", TJ_FALSE}};
        for (int i = 0; i < 3; i++) {
            size_t l = strlen(lits[i].w);
            if ((size_t)(ps->end - ps->p) >= l && !memcmp(ps->p, lits[i].w, l)) {
                ps->p += l;
                if (new_node(ps, lits[i].t, &idx)) return -1;
                ps->d->nodes[idx].skip = (uint32_t)ps->d->n;
                return 0;
            }
        }
        return perr(ps, ps->p, "invalid JSON value");
    }
    ps->d->nodes[idx].skip = (uint32_t)ps->d->n;
    return 0;
}

int tj_parse_file(tj_doc *d, const char *path, dp_err *err) {
    memset(d, 0, sizeof *d);
    FILE *f = fopen(path, "rb");
    if (!f) return dp_fail(err, "%s: cannot open: %m", path);
    struct stat st;
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) {
        fclose(f);
        return dp_fail(err, "%s: not a regular file", path);
    }
    if (fseek(f, 0, SEEK_END) || ftell(f) < 0) {
        fclose(f);
        return dp_fail(err, "%s: cannot read: %m", path);
    }
    size_t size = (size_t)ftell(f);
    rewind(f);
    if (size >= 0xFFFFFFF0u) return fclose(f), dp_fail(err, "%s: larger than 4 GB", path);
    d->buf = dp_malloc(size + 1, err);
    if (!d->buf) return fclose(f), -1;
    if (fread(d->buf, 1, size, f) != size) {
        fclose(f);
        tj_free(d);
        return dp_fail(err, "%s: short read", path);
    }
    fclose(f);
    d->buf[size] = '\0';
    parser ps = {d, d->buf, d->buf + size, err, path};
    /* Roughly one node per 16 bytes in tokenizer files; reserving avoids regrowth. */
    d->cap = size / 16 + 1024;
    if (!(d->nodes = dp_malloc(d->cap * sizeof *d->nodes, err))) return tj_free(d), -1;
    if (parse_value(&ps, 0)) return tj_free(d), -1;
    skip_ws(&ps);
    if (ps.p != ps.end) {
        perr(&ps, ps.p, "trailing characters after the JSON value");
        return tj_free(d), -1;
    }
    return 0;
}

void tj_free(tj_doc *d) {
    free(d->buf);
    free(d->nodes);
    memset(d, 0, sizeof *d);
}

const tj_node *tj_first(const tj_doc *d, const tj_node *n) {
    (void)d; /* children follow their parent */
    return n && (n->type == TJ_OBJ || n->type == TJ_ARR) && n->count ? n + 1 : NULL;
}

const tj_node *tj_next(const tj_doc *d, const tj_node *parent, const tj_node *c) {
    return c->skip < parent->skip ? d->nodes + c->skip : NULL;
}

const tj_node *tj_get(const tj_doc *d, const tj_node *obj, const char *key) {
    if (!obj || obj->type != TJ_OBJ) return NULL;
    size_t kl = strlen(key);
    for (const tj_node *c = tj_first(d, obj); c; c = tj_next(d, obj, c))
        if (c->key_len == kl && !memcmp(d->buf + c->key_off, key, kl)) return c;
    return NULL;
}

const tj_node *tj_at(const tj_doc *d, const tj_node *arr, size_t i) {
    if (!arr || arr->type != TJ_ARR) return NULL;
    const tj_node *c = tj_first(d, arr);
    while (c && i--) c = tj_next(d, arr, c);
    return c;
}

int tj_int(const tj_doc *d, const tj_node *n, long long *v) {
    if (!n || n->type != TJ_NUM) return -1;
    const char *s = d->buf + n->off;
    long long x = 0;
    size_t i = 0, len = n->len;
    int neg = len && s[0] == '-';
    if (neg) i++;
    if (i == len) return -1;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9' || x > 1000000000000LL) return -1;
        x = x * 10 + (s[i] - '0');
    }
    *v = neg ? -x : x;
    return 0;
}

double tj_num(const tj_doc *d, const tj_node *n) {
    if (!n || n->type != TJ_NUM) return 0;
    char tmp[64];
    size_t l = n->len < sizeof tmp - 1 ? n->len : sizeof tmp - 1;
    memcpy(tmp, d->buf + n->off, l);
    tmp[l] = '\0';
    return strtod(tmp, NULL);
}

const char *tj_type_name(const tj_node *n) {
    if (!n) return "nothing";
    switch (n->type) {
    case TJ_OBJ: return "an object";
    case TJ_ARR: return "an array";
    case TJ_STR: return "a string";
    case TJ_NUM: return "a number";
    case TJ_TRUE: case TJ_FALSE: return "a boolean";
    default: return "null";
    }
}
