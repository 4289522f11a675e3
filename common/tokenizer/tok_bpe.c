/* tok_bpe — the BPE model: vocabulary and merge tables, and the merge loop
 * of Hugging Face `tokenizers` (models/bpe/word.rs): characters become
 * symbols (or <0xXX> byte tokens, or unk), then the adjacent pair with the
 * lowest merge rank is merged, ties to the leftmost, through a binary heap
 * over a linked list of symbols — O(n log n) in the word length. */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "tok_internal.h"

static size_t merge_hash(uint64_t k) { return (size_t)XXH3_64bits(&k, sizeof k); }

static const tok_merge_entry *merge_get(const tok_bpe *b, int32_t l, int32_t r) {
    if (!b->merges) return NULL;
    uint64_t key = ((uint64_t)(uint32_t)l << 32 | (uint32_t)r) + 1;
    for (size_t h = merge_hash(key) & b->merge_mask; b->merges[h].key; h = (h + 1) & b->merge_mask)
        if (b->merges[h].key == key) return &b->merges[h];
    return NULL;
}

static int merge_rehash(tok_bpe *b, size_t nslots, dp_err *err) {
    tok_merge_entry *m = dp_calloc(nslots, sizeof *m, err);
    if (!m) return -1;
    for (size_t i = 0; b->merges && i <= b->merge_mask; i++) {
        if (!b->merges[i].key) continue;
        size_t h = merge_hash(b->merges[i].key) & (nslots - 1);
        while (m[h].key) h = (h + 1) & (nslots - 1);
        m[h] = b->merges[i];
    }
    free(b->merges);
    b->merges = m;
    b->merge_mask = nslots - 1;
    return 0;
}

int tok_bpe_reserve_merges(tok_bpe *b, size_t n, dp_err *err) {
    size_t ns = 4096;
    while (ns < n * 2) ns *= 2;
    return ns > (b->merges ? b->merge_mask + 1 : 0) ? merge_rehash(b, ns, err) : 0;
}

int tok_bpe_add_merge(tok_bpe *b, const char *l, size_t ll, const char *r, size_t rl, int32_t rank,
                      dp_err *err) {
    int32_t lid = tok_strmap_get(&b->vocab, l, ll), rid = tok_strmap_get(&b->vocab, r, rl);
    char q[DP_QUOTE_CAP];
    if (lid < 0 || rid < 0)
        return dp_fail(err, "merge token %s is not in the vocabulary",
                       lid < 0 ? dp_quote(q, l, ll) : dp_quote(q, r, rl));
    size_t pl = b->prefix ? strlen(b->prefix) : 0;
    if (pl && rl >= pl && !memcmp(r, b->prefix, pl)) r += pl, rl -= pl;
    char small[256], *cat = ll + rl <= sizeof small ? small : malloc(ll + rl);
    if (!cat) return dp_fail(err, "out of memory");
    memcpy(cat, l, ll);
    memcpy(cat + ll, r, rl);
    int32_t nid = tok_strmap_get(&b->vocab, cat, ll + rl);
    if (nid < 0) {
        dp_fail(err, "merged token %s is not in the vocabulary", dp_quote(q, cat, ll + rl));
        if (cat != small) free(cat);
        return -1;
    }
    if (cat != small) free(cat);
    if (!b->merges || (b->n_merges + 1) * 2 > b->merge_mask + 1)
        if (merge_rehash(b, b->merges ? (b->merge_mask + 1) * 2 : 4096, err)) return -1;
    uint64_t key = ((uint64_t)(uint32_t)lid << 32 | (uint32_t)rid) + 1;
    size_t h = merge_hash(key) & b->merge_mask;
    for (; b->merges[h].key; h = (h + 1) & b->merge_mask)
        if (b->merges[h].key == key) return 0; /* a repeated merge keeps its first rank */
    b->merges[h] = (tok_merge_entry){key, rank, nid};
    b->n_merges++;
    return 0;
}

typedef struct symbol {
    int32_t id, prev, next;
    uint32_t len; /* bytes of the word it covers; 0 once merged away */
} symbol;

typedef struct heap_item {
    int32_t rank, pos, new_id;
} heap_item;

static int item_less(heap_item a, heap_item b) {
    return a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos;
}

static void heap_push(heap_item *h, size_t *n, heap_item x) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!item_less(x, h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static heap_item heap_pop(heap_item *h, size_t *n) {
    heap_item top = h[0], x = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && item_less(h[c + 1], h[c])) c++;
        if (!item_less(h[c], x)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = x;
    return top;
}

static int push_id(int32_t **ids, size_t *n, size_t *cap, int32_t id, dp_err *err) {
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        int32_t *p = realloc(*ids, c * sizeof *p);
        if (!p) return dp_fail(err, "out of memory growing the id list to %zu", c);
        *ids = p;
        *cap = c;
    }
    (*ids)[(*n)++] = id;
    return 0;
}

static void add_symbol(symbol *sym, size_t *ns, int32_t id, uint32_t len) {
    size_t i = (*ns)++;
    sym[i] = (symbol){id, (int32_t)i - 1, -1, len};
    if (i) sym[i - 1].next = (int32_t)i;
}

int tok_bpe_encode(const tok_bpe *b, const char *s, size_t n, int32_t **ids, size_t *nids,
                   size_t *cap, dp_err *err) {
    if (!n) return 0;
    if (b->ignore_merges) {
        int32_t id = tok_strmap_get(&b->vocab, s, n);
        if (id >= 0) return push_id(ids, nids, cap, id, err);
    }
    /* Symbols: at most one per byte, plus the prefix/suffix bytes a byte
     * fallback may add; each merge pushes at most two heap items. */
    size_t pl = b->prefix ? strlen(b->prefix) : 0, sl = b->suffix ? strlen(b->suffix) : 0;
    size_t max_sym = n * (1 + pl) + sl + 1;
    symbol *sym = malloc(max_sym * sizeof *sym);
    heap_item *heap = malloc(3 * max_sym * sizeof *heap);
    char *tmp = (pl || sl) ? malloc(pl + sl + 5) : NULL;
    if (!sym || !heap || ((pl || sl) && !tmp)) {
        free(sym), free(heap), free(tmp);
        return dp_fail(err, "out of memory encoding a %zu-byte word", n);
    }
    size_t ns = 0;
    int32_t unk_pending = -1; /* fused-unk length in bytes, or -1 */
    for (size_t i = 0; i < n;) {
        int32_t cp;
        size_t cl = (size_t)tok_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        const char *cs = s + i;
        size_t csl = cl;
        if ((pl && i > 0) || (sl && i + cl == n)) {
            size_t k = 0;
            if (pl && i > 0) memcpy(tmp, b->prefix, pl), k = pl;
            memcpy(tmp + k, s + i, cl), k += cl;
            if (sl && i + cl == n) memcpy(tmp + k, b->suffix, sl), k += sl;
            cs = tmp, csl = k;
        }
        int32_t id = tok_strmap_get(&b->vocab, cs, csl);
        if (id >= 0) {
            if (unk_pending >= 0) add_symbol(sym, &ns, b->unk_id, (uint32_t)unk_pending);
            unk_pending = -1;
            add_symbol(sym, &ns, id, (uint32_t)cl);
        } else {
            int fell_back = 0;
            if (b->byte_fallback) {
                fell_back = 1;
                for (size_t j = 0; j < csl; j++)
                    if (b->byte_id[(unsigned char)cs[j]] < 0) fell_back = 0;
                if (fell_back) /* (a pending unk is not flushed first, as in HF) */
                    for (size_t j = 0; j < csl; j++)
                        add_symbol(sym, &ns, b->byte_id[(unsigned char)cs[j]], 1);
            }
            if (!fell_back && b->unk_id >= 0) {
                if (unk_pending >= 0 && b->fuse_unk) unk_pending += (int32_t)cl;
                else {
                    if (unk_pending >= 0) add_symbol(sym, &ns, b->unk_id, (uint32_t)unk_pending);
                    unk_pending = (int32_t)cl;
                }
            }
        }
        i += cl;
    }
    if (unk_pending >= 0) add_symbol(sym, &ns, b->unk_id, (uint32_t)unk_pending);
    free(tmp);

    size_t nh = 0;
    for (size_t i = 0; i + 1 < ns; i++) {
        const tok_merge_entry *m = merge_get(b, sym[i].id, sym[i + 1].id);
        if (m) heap_push(heap, &nh, (heap_item){m->rank, (int32_t)i, m->new_id});
    }
    while (nh) {
        heap_item top = heap_pop(heap, &nh);
        symbol *cur = &sym[top.pos];
        if (!cur->len || cur->next < 0) continue;
        symbol *right = &sym[cur->next];
        const tok_merge_entry *m = merge_get(b, cur->id, right->id);
        if (!m || m->new_id != top.new_id) continue;
        cur->id = top.new_id;
        cur->len += right->len;
        right->len = 0;
        cur->next = right->next;
        if (cur->next >= 0) sym[cur->next].prev = top.pos;
        if (cur->prev >= 0) {
            m = merge_get(b, sym[cur->prev].id, cur->id);
            if (m) heap_push(heap, &nh, (heap_item){m->rank, cur->prev, m->new_id});
        }
        if (cur->next >= 0) {
            m = merge_get(b, cur->id, sym[cur->next].id);
            if (m) heap_push(heap, &nh, (heap_item){m->rank, top.pos, m->new_id});
        }
    }
    int rc = 0;
    for (int32_t i = ns ? 0 : -1; i >= 0 && !rc; i = sym[i].next)
        rc = push_id(ids, nids, cap, sym[i].id, err);
    free(sym);
    free(heap);
    return rc;
}

void tok_bpe_free(tok_bpe *b) {
    for (int32_t i = 0; i < b->n; i++) free(b->str[i]);
    free(b->str);
    free(b->str_len);
    tok_strmap_free(&b->vocab);
    free(b->merges);
    free(b->prefix);
    free(b->suffix);
    memset(b, 0, sizeof *b);
}
