/* tok_internal — private structures shared by the tokenizer sources:
 * tokenizer.c (the encode/decode pipelines), tok_load.c (tokenizer.json →
 * struct tokenizer), tok_json.c (its JSON parser), tok_bpe.c (vocabulary,
 * merges, the BPE merge loop), tok_text.c (lists, hash table, UTF-8,
 * byte-level map, added-token trie), tok_split.c (patterns, normalizers,
 * pre-tokenizers), tok_decode.c (decoders).
 *
 * Strings inside the pipeline are byte spans into a growing buffer
 * (tok_list); every stage reads one list and appends to another, so an
 * encode call allocates a handful of buffers and no per-piece strings. */
#ifndef DP_TOK_INTERNAL_H
#define DP_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "tokenizer.h"
#include "utf8.h"

/* ---- tok_json: a read-only JSON DOM for tokenizer.json ---- */
enum { TJ_NULL, TJ_FALSE, TJ_TRUE, TJ_NUM, TJ_STR, TJ_ARR, TJ_OBJ };
typedef struct tj_node {
    uint8_t type;
    uint32_t count;          /* children (arrays, objects) */
    uint32_t skip;           /* index just past this node's subtree */
    uint32_t key_off, key_len; /* member key in buf (NUL-terminated), for object members */
    uint32_t off, len;       /* string (unescaped, NUL-terminated) or number text in buf */
} tj_node;
typedef struct tj_doc {
    char *buf;
    tj_node *nodes; /* nodes[0] is the root */
    size_t n, cap;
} tj_doc;

int tj_parse_file(tj_doc *d, const char *path, dp_err *err);
void tj_free(tj_doc *d);
/* Children in order: for (c = tj_first(d, n); c; c = tj_next(d, n, c)). */
const tj_node *tj_first(const tj_doc *d, const tj_node *n);
const tj_node *tj_next(const tj_doc *d, const tj_node *parent, const tj_node *c);
const tj_node *tj_get(const tj_doc *d, const tj_node *obj, const char *key); /* NULL if absent */
const tj_node *tj_at(const tj_doc *d, const tj_node *arr, size_t i);
int tj_int(const tj_doc *d, const tj_node *n, long long *v); /* 0, or -1 if not an integer */
double tj_num(const tj_doc *d, const tj_node *n);
const char *tj_type_name(const tj_node *n);
#define TJ_STR_OF(d, n) ((d)->buf + (n)->off)
#define TJ_KEY_OF(d, n) ((d)->buf + (n)->key_off)

/* ---- string → id hash table (keys are borrowed, owned by the caller) ---- */
typedef struct tok_strmap {
    uint32_t *slots; /* entry index + 1; 0 = empty */
    size_t mask;
    const char **keys;
    uint32_t *lens;
    int32_t *vals;
    size_t n, cap;
} tok_strmap;

int tok_strmap_put(tok_strmap *m, const char *key, size_t len, int32_t val, dp_err *err);
/* Returns the value, or -1 if absent. */
int32_t tok_strmap_get(const tok_strmap *m, const char *key, size_t len);
/* Sizes the table for N entries up front (loading speed: no rehashing). */
int tok_strmap_reserve(tok_strmap *m, size_t n, dp_err *err);
void tok_strmap_free(tok_strmap *m);

/* ---- a list of byte spans over one buffer ---- */
typedef struct tok_span {
    size_t off, len;
    int32_t id;       /* >= 0: already a token (an added token); -1: text */
    uint8_t at_start; /* the span begins at byte 0 of the original input */
} tok_span;

typedef struct tok_list {
    char *buf;
    size_t len, cap;
    tok_span *sp;
    size_t n, ncap;
} tok_list;

/* Grows *p (of *cap elements of ELEM bytes) to hold NEED; doubles. */
int tok_grow(void **p, size_t *cap, size_t need, size_t elem, dp_err *err);
int tok_list_bytes(tok_list *l, const char *s, size_t n, dp_err *err);
/* Appends a span [off, off+len) of l->buf. */
int tok_list_span(tok_list *l, size_t off, size_t len, int32_t id, int at_start, dp_err *err);
/* Appends bytes S and a span covering them. */
int tok_list_push(tok_list *l, const char *s, size_t n, int32_t id, int at_start, dp_err *err);
void tok_list_clear(tok_list *l);
void tok_list_free(tok_list *l);

/* ---- UTF-8 (validity: utf8.h) ---- */
/* Decodes the (valid) sequence at s; *cp gets the code point; returns its length. */
int tok_utf8_decode(const unsigned char *s, size_t n, int32_t *cp);
int tok_utf8_encode(int32_t cp, char *out);
/* Appends s[0..n) to OUT->buf with invalid sequences replaced by U+FFFD. */
int tok_utf8_lossy(tok_list *out, const char *s, size_t n, dp_err *err);
int tok_is_whitespace(int32_t cp);
int tok_is_word(int32_t cp);

/* ---- patterns (Split, Replace): PCRE2, literal or regex ---- */
typedef struct tok_pattern {
    pcre2_code *re;
} tok_pattern;

/* Compiles SRC as a literal (a {"String": s} pattern) or a regex (a
 * {"Regex": r} pattern, UTF + UCP, \s spelled as Unicode White_Space to
 * match Oniguruma); JIT-compiled when available. */
int tok_pattern_compile(tok_pattern *p, const char *src, size_t len, int literal, dp_err *err);
void tok_pattern_free(tok_pattern *p);

/* Per-call matching state (thread safety: one per encode call). */
typedef struct tok_matcher {
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit; /* created on the first JIT stack overflow */
} tok_matcher;

int tok_matcher_init(tok_matcher *m, dp_err *err);
void tok_matcher_free(tok_matcher *m);
/* Finds the next match (possibly empty) of P in s[0..n) at or after START.
 * Returns 1 and sets [*ms, *me), 0 when none, -1 on a matching error. */
int tok_pattern_find(const tok_pattern *p, tok_matcher *m, const char *s, size_t n, size_t start,
                     size_t *ms, size_t *me, dp_err *err);

/* ---- normalizers ---- */
enum tok_norm_type {
    TOK_NORM_NFC, TOK_NORM_NFD, TOK_NORM_NFKC, TOK_NORM_NFKD,
    TOK_NORM_PREPEND, TOK_NORM_REPLACE, TOK_NORM_STRIP, TOK_NORM_SEQUENCE
};

typedef struct tok_norm {
    int type;
    char *str;      /* Prepend: the prefix; Replace: the content */
    size_t str_len;
    tok_pattern pat; /* Replace */
    int strip_left, strip_right;
    struct tok_norm *sub;
    size_t n_sub;
} tok_norm;

/* Normalizes s[0..n); *res (malloc'd, owned by the caller) gets the result. */
int tok_normalize(const tok_norm *nm, tok_matcher *m, const char *s, size_t n, char **res,
                  size_t *res_len, dp_err *err);
void tok_norm_free(tok_norm *nm);

/* ---- pre-tokenizers ---- */
enum tok_pre_type {
    TOK_PRE_BYTELEVEL, TOK_PRE_SPLIT, TOK_PRE_DIGITS, TOK_PRE_METASPACE, TOK_PRE_SEQUENCE
};
enum tok_split_behavior {
    TOK_SPLIT_REMOVED, TOK_SPLIT_ISOLATED, TOK_SPLIT_MERGED_PREV, TOK_SPLIT_MERGED_NEXT,
    TOK_SPLIT_CONTIGUOUS
};
enum tok_prepend_scheme { TOK_PREPEND_ALWAYS, TOK_PREPEND_FIRST, TOK_PREPEND_NEVER };

typedef struct tok_pre {
    int type;
    tok_pattern pat; /* Split, Digits, ByteLevel (use_regex), Metaspace (split char) */
    int behavior, invert;
    int add_prefix_space, use_regex; /* ByteLevel */
    char repl[8];                    /* Metaspace replacement, UTF-8 */
    size_t repl_len;
    int prepend_scheme, split;       /* Metaspace */
    struct tok_pre *sub;
    size_t n_sub;
} tok_pre;

/* Pre-tokenizes the text spans of IN (spans with id >= 0 pass through) into OUT. */
int tok_pretokenize(const tok_pre *pt, tok_matcher *m, const tok_list *in, tok_list *out,
                    dp_err *err);
void tok_pre_free(tok_pre *pt);

/* The GPT-2 byte → char map: UTF-8 of the char for each byte. */
extern char tok_byte_char[256][3];
extern uint8_t tok_byte_char_len[256];
void tok_bytelevel_init(void);
/* The inverse: code point → byte, or -1. */
int tok_char_byte(int32_t cp);

/* ---- added tokens: a byte trie for leftmost-longest matching ---- */
typedef struct tok_trie {
    int32_t *term;     /* per node: added-token index ending here, or -1 */
    size_t n_nodes, cap_nodes;
    uint64_t *ekeys;   /* edge hash: (node << 8 | byte) + 1; 0 = empty */
    int32_t *evals;    /* child node */
    size_t emask, n_edges;
} tok_trie;

int tok_trie_add(tok_trie *t, const char *s, size_t n, int32_t val, dp_err *err);
/* Longest match starting at s[0..n): returns the value and sets *mlen, or -1. */
int32_t tok_trie_longest(const tok_trie *t, const char *s, size_t n, size_t *mlen);
void tok_trie_free(tok_trie *t);

typedef struct tok_added {
    char *content;
    size_t len;
    int32_t id;
    uint8_t special, normalized, lstrip, rstrip, single_word;
} tok_added;

/* ---- the BPE model ---- */
typedef struct tok_merge_entry {
    uint64_t key; /* (left << 32 | right) + 1; 0 = empty */
    int32_t rank, new_id;
} tok_merge_entry;

typedef struct tok_bpe {
    char **str;       /* model id → token string (NUL-terminated), NULL for holes */
    uint32_t *str_len;
    int32_t n;        /* model ids 0..n-1 */
    tok_strmap vocab;
    tok_merge_entry *merges;
    size_t merge_mask, n_merges;
    int32_t unk_id;   /* -1 if none */
    int fuse_unk, byte_fallback, ignore_merges;
    int32_t byte_id[256]; /* <0xXX> tokens, -1 if absent */
    char *prefix, *suffix; /* continuing_subword_prefix, end_of_word_suffix (NULL if none) */
} tok_bpe;

/* Sizes the merge table for N merges. */
int tok_bpe_reserve_merges(tok_bpe *b, size_t n, dp_err *err);
/* Adds merge (l, r) with RANK; the vocabulary must be loaded first. */
int tok_bpe_add_merge(tok_bpe *b, const char *l, size_t ll, const char *r, size_t rl, int32_t rank,
                      dp_err *err);
/* Encodes one pre-token, appending ids to *ids (growing *cap). */
int tok_bpe_encode(const tok_bpe *b, const char *s, size_t n, int32_t **ids, size_t *nids,
                   size_t *cap, dp_err *err);
void tok_bpe_free(tok_bpe *b);

/* ---- decoders ---- */
enum tok_dec_type {
    TOK_DEC_BYTELEVEL, TOK_DEC_METASPACE, TOK_DEC_REPLACE, TOK_DEC_BYTEFALLBACK, TOK_DEC_FUSE,
    TOK_DEC_STRIP, TOK_DEC_SEQUENCE
};

typedef struct tok_dec {
    int type;
    tok_pattern pat;   /* Replace */
    char *str;         /* Replace content; Strip content (UTF-8 char) */
    size_t str_len;
    char repl[8];      /* Metaspace */
    size_t repl_len;
    int prepend_scheme;
    int start, stop;   /* Strip */
    struct tok_dec *sub;
    size_t n_sub;
} tok_dec;

/* Runs the decoder over the token strings in IN; OUT gets the result tokens. */
int tok_decode_chain(const tok_dec *d, tok_matcher *m, const tok_list *in, tok_list *out,
                     dp_err *err);
void tok_dec_free(tok_dec *d);

/* ---- the tokenizer ---- */
#define TOK_N_SPECIAL 7
struct tokenizer {
    char *path;
    tok_bpe bpe;
    tok_added *added;
    size_t n_added;
    tok_trie trie_raw, trie_norm; /* values: index into added */
    int has_norm;
    tok_norm norm;
    int has_pre;
    tok_pre pre;
    int has_dec;
    tok_dec dec;
    int32_t *prefix_ids, *suffix_ids; /* post-processor, single sequence */
    size_t n_prefix, n_suffix;
    int32_t bos_id, eos_id;
    int32_t vocab_size;
    const char **id_str; /* id → token string (added tokens override the model) */
    uint32_t *id_len;
    char *chat_template;
    const char *chat_template_source;         /* file it came from (static string) */
    char *chat_template_tool_use;             /* a named list's "tool_use", or NULL */
    char *special[TOK_N_SPECIAL];             /* named special tokens (tok_special_name) */
    const char *special_source[TOK_N_SPECIAL];
    int32_t *stop_ids;                        /* generation stops on any of these */
    size_t n_stop;
};

/* tok_special.c: resolves the named special tokens, the stop ids, BOS/EOS
 * and add_bos/add_eos, and reads the chat template, from the files beside
 * PATH (tokenizer_config.json, special_tokens_map.json, chat_template.jinja,
 * generation_config.json, config.json). Needs id_str built. */
int tok_load_special(tokenizer *t, const char *path, dp_err *err);

/* id → token string (added tokens first, then the model), or NULL. */
const char *tok_id_str(const tokenizer *t, int32_t id, size_t *len);

#endif
