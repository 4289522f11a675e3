/* tok_text — text plumbing for the tokenizer: span lists, the string hash
 * table, UTF-8 (validation, maximal-subpart replacement), the GPT-2
 * byte-level map and the added-token trie. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include <xxhash.h>

#include "tok_internal.h"

/* ---------------------------------------------------------------- lists */

int tok_grow(void **p, size_t *cap, size_t need, size_t elem, dp_err *err) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return dp_fail(err, "out of memory allocating %zu bytes", c * elem);
    *p = q;
    *cap = c;
    return 0;
}

int tok_list_bytes(tok_list *l, const char *s, size_t n, dp_err *err) {
    if (tok_grow((void **)&l->buf, &l->cap, l->len + n + 1, 1, err)) return -1;
    if (n) memcpy(l->buf + l->len, s, n);
    l->len += n;
    l->buf[l->len] = '\0';
    return 0;
}

int tok_list_span(tok_list *l, size_t off, size_t len, int32_t id, int at_start, dp_err *err) {
    /* buf always exists once a span does, so buf + off is valid even for
     * empty spans */
    if (!l->buf && tok_list_bytes(l, "", 0, err)) return -1;
    if (tok_grow((void **)&l->sp, &l->ncap, l->n + 1, sizeof *l->sp, err)) return -1;
    l->sp[l->n++] = (tok_span){off, len, id, (uint8_t)at_start};
    return 0;
}

int tok_list_push(tok_list *l, const char *s, size_t n, int32_t id, int at_start, dp_err *err) {
    size_t off = l->len;
    if (tok_list_bytes(l, s, n, err)) return -1;
    return tok_list_span(l, off, n, id, at_start, err);
}

void tok_list_clear(tok_list *l) {
    l->len = 0;
    l->n = 0;
}

void tok_list_free(tok_list *l) {
    free(l->buf);
    free(l->sp);
    memset(l, 0, sizeof *l);
}

/* ---------------------------------------------------------- string map */

static uint32_t hash_bytes(const char *s, size_t n) { return (uint32_t)XXH3_64bits(s, n); }

static int strmap_rehash(tok_strmap *m, size_t nslots, dp_err *err) {
    uint32_t *slots = dp_calloc(nslots, sizeof *slots, err);
    if (!slots) return -1;
    for (size_t i = 0; i < m->n; i++) {
        size_t h = hash_bytes(m->keys[i], m->lens[i]) & (nslots - 1);
        while (slots[h]) h = (h + 1) & (nslots - 1);
        slots[h] = (uint32_t)i + 1;
    }
    free(m->slots);
    m->slots = slots;
    m->mask = nslots - 1;
    return 0;
}

int tok_strmap_put(tok_strmap *m, const char *key, size_t len, int32_t val, dp_err *err) {
    if (m->slots) {
        size_t h = hash_bytes(key, len) & m->mask;
        for (; m->slots[h]; h = (h + 1) & m->mask) {
            uint32_t e = m->slots[h] - 1;
            if (m->lens[e] == len && !memcmp(m->keys[e], key, len)) {
                m->vals[e] = val;
                return 0;
            }
        }
    }
    if (m->n + 1 > m->cap) {
        size_t c = m->cap ? m->cap * 2 : 1024;
        const char **k = realloc(m->keys, c * sizeof *k);
        if (k) m->keys = k;
        uint32_t *l = realloc(m->lens, c * sizeof *l);
        if (l) m->lens = l;
        int32_t *v = realloc(m->vals, c * sizeof *v);
        if (v) m->vals = v;
        if (!k || !l || !v) return dp_fail(err, "out of memory growing a hash table to %zu", c);
        m->cap = c;
    }
    m->keys[m->n] = key;
    m->lens[m->n] = (uint32_t)len;
    m->vals[m->n] = val;
    m->n++;
    if (!m->slots || m->n * 2 > m->mask + 1) {
        size_t ns = m->slots ? (m->mask + 1) * 2 : 2048;
        while (ns < m->n * 2) ns *= 2;
        return strmap_rehash(m, ns, err);
    }
    size_t h = hash_bytes(key, len) & m->mask;
    while (m->slots[h]) h = (h + 1) & m->mask;
    m->slots[h] = (uint32_t)m->n;
    return 0;
}

int tok_strmap_reserve(tok_strmap *m, size_t n, dp_err *err) {
    if (n > m->cap) {
        const char **k = realloc(m->keys, n * sizeof *k);
        if (k) m->keys = k;
        uint32_t *l = realloc(m->lens, n * sizeof *l);
        if (l) m->lens = l;
        int32_t *v = realloc(m->vals, n * sizeof *v);
        if (v) m->vals = v;
        if (!k || !l || !v) return dp_fail(err, "out of memory growing a hash table to %zu", n);
        m->cap = n;
    }
    size_t ns = 2048;
    while (ns < n * 2) ns *= 2;
    return ns > (m->slots ? m->mask + 1 : 0) ? strmap_rehash(m, ns, err) : 0;
}

int32_t tok_strmap_get(const tok_strmap *m, const char *key, size_t len) {
    if (!m->slots) return -1;
    for (size_t h = hash_bytes(key, len) & m->mask; m->slots[h]; h = (h + 1) & m->mask) {
        uint32_t e = m->slots[h] - 1;
        if (m->lens[e] == len && !memcmp(m->keys[e], key, len)) return m->vals[e];
    }
    return -1;
}

void tok_strmap_free(tok_strmap *m) {
    free(m->slots);
    free(m->keys);
    free(m->lens);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------- UTF-8 */

int tok_utf8_decode(const unsigned char *s, size_t n, int32_t *cp) {
    if (!n) {
        *cp = 0;
        return 0;
    }
    unsigned c = s[0];
    if (c < 0x80 || n < 2) {
        *cp = (int32_t)c;
        return 1;
    }
    if (c < 0xE0) {
        *cp = (int32_t)(((c & 0x1F) << 6) | (s[1] & 0x3F));
        return 2;
    }
    if (c < 0xF0 || n < 4) {
        *cp = (int32_t)(((c & 0x0F) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3F));
        return 3;
    }
    *cp = (int32_t)(((c & 0x07) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) |
                    (s[3] & 0x3F));
    return 4;
}

int tok_utf8_encode(int32_t cp, char *out) {
    return (int)utf8proc_encode_char(cp, (utf8proc_uint8_t *)out);
}

/* Unicode White_Space (Rust char::is_whitespace, regex \s). */
int tok_is_whitespace(int32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* Rust regex \w: Alphabetic, marks, decimal digits, connector punctuation, joiners. */
int tok_is_word(int32_t c) {
    if (c == 0x200C || c == 0x200D) return 1;
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_PC:
        return 1;
    default:
        return 0;
    }
}

/* ------------------------------------------------------ byte-level map */

char tok_byte_char[256][3];
uint8_t tok_byte_char_len[256];
static int16_t char_byte[0x144];
static pthread_once_t bytelevel_once = PTHREAD_ONCE_INIT;

static void bytelevel_build(void) {
    int extra = 0;
    for (int i = 0; i < 0x144; i++) char_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        int self = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        int32_t cp = self ? b : 0x100 + extra++;
        tok_byte_char_len[b] = (uint8_t)tok_utf8_encode(cp, tok_byte_char[b]);
        char_byte[cp] = (int16_t)b;
    }
}

void tok_bytelevel_init(void) { pthread_once(&bytelevel_once, bytelevel_build); }

int tok_char_byte(int32_t cp) { return cp >= 0 && cp < 0x144 ? char_byte[cp] : -1; }

/* ------------------------------------------------------------------ trie */

static size_t edge_hash(uint64_t k) { return (size_t)XXH3_64bits(&k, sizeof k); }

static int trie_edge_rehash(tok_trie *t, size_t nslots, dp_err *err) {
    uint64_t *k = dp_calloc(nslots, sizeof *k, err);
    int32_t *v = dp_calloc(nslots, sizeof *v, err);
    if (!k || !v) return free(k), free(v), -1;
    for (size_t i = 0; t->ekeys && i <= t->emask; i++) {
        if (!t->ekeys[i]) continue;
        size_t h = edge_hash(t->ekeys[i]) & (nslots - 1);
        while (k[h]) h = (h + 1) & (nslots - 1);
        k[h] = t->ekeys[i];
        v[h] = t->evals[i];
    }
    free(t->ekeys);
    free(t->evals);
    t->ekeys = k;
    t->evals = v;
    t->emask = nslots - 1;
    return 0;
}

static int32_t trie_child(const tok_trie *t, int32_t node, unsigned char c) {
    if (!t->ekeys) return -1;
    uint64_t key = ((uint64_t)node << 8 | c) + 1;
    for (size_t h = edge_hash(key) & t->emask; t->ekeys[h]; h = (h + 1) & t->emask)
        if (t->ekeys[h] == key) return t->evals[h];
    return -1;
}

int tok_trie_add(tok_trie *t, const char *s, size_t n, int32_t val, dp_err *err) {
    if (!t->n_nodes) {
        if (tok_grow((void **)&t->term, &t->cap_nodes, 1, sizeof *t->term, err)) return -1;
        t->term[0] = -1;
        t->n_nodes = 1;
    }
    int32_t node = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int32_t ch = trie_child(t, node, c);
        if (ch < 0) {
            if (tok_grow((void **)&t->term, &t->cap_nodes, t->n_nodes + 1, sizeof *t->term, err))
                return -1;
            ch = (int32_t)t->n_nodes++;
            t->term[ch] = -1;
            if (!t->ekeys || (t->n_edges + 1) * 2 > t->emask + 1)
                if (trie_edge_rehash(t, t->ekeys ? (t->emask + 1) * 2 : 1024, err)) return -1;
            uint64_t key = ((uint64_t)node << 8 | c) + 1;
            size_t h = edge_hash(key) & t->emask;
            while (t->ekeys[h]) h = (h + 1) & t->emask;
            t->ekeys[h] = key;
            t->evals[h] = ch;
            t->n_edges++;
        }
        node = ch;
    }
    if (t->term[node] < 0) t->term[node] = val; /* the first token given keeps a duplicate */
    return 0;
}

int32_t tok_trie_longest(const tok_trie *t, const char *s, size_t n, size_t *mlen) {
    int32_t best = -1, node = 0;
    if (!t->n_nodes) return -1;
    for (size_t i = 0; i < n; i++) {
        node = trie_child(t, node, (unsigned char)s[i]);
        if (node < 0) break;
        if (t->term[node] >= 0) best = t->term[node], *mlen = i + 1;
    }
    return best;
}

void tok_trie_free(tok_trie *t) {
    free(t->term);
    free(t->ekeys);
    free(t->evals);
    memset(t, 0, sizeof *t);
}

/* ----------------------------------------------------- invalid UTF-8 */

int tok_utf8_lossy(tok_list *out, const char *s, size_t n, dp_err *err) {
    size_t i = 0, run = 0;
    while (i < n) {
        int l = utf8_valid_len((const unsigned char *)s + i, n - i);
        if (l) {
            i += (size_t)l;
            continue;
        }
        if (tok_list_bytes(out, s + run, i - run, err) ||
            tok_list_bytes(out, "\xEF\xBF\xBD", 3, err))
            return -1;
        i += utf8_bad_len((const unsigned char *)s + i, n - i);
        run = i;
    }
    return tok_list_bytes(out, s + run, n - run, err);
}
