/* fuzz_tokenizer_json — tok_load (common/tokenizer/tok_load.c, tok_json.c) on hostile
 * tokenizer.json files.
 *
 * The input is written as DIR/tokenizer.json; when it contains the line
 * "@@tokenizer_config.json@@", the bytes after that line become
 * DIR/tokenizer_config.json and the bytes before it the tokenizer.json. A
 * tokenizer that loads is then used: a few fixed texts (ASCII, multi-byte
 * UTF-8, added-token look-alikes) and the input itself are encoded, with and
 * without special tokens, and the ids decoded; every id produced must be in
 * the vocabulary, and decoding every id below the vocabulary size must work.
 * Properties: no crash, one-line errors, ids in range. */
#include "fuzz_common.h"
#include "tokenizer.h"

static const char fuzz_tok_sep[] = "\n@@tokenizer_config.json@@\n";

static void fuzz_tok_exercise(const tokenizer *t, const char *text, size_t len) {
    int vocab = tok_vocab_size(t);
    for (int special = 0; special < 2; special++) {
        int32_t *ids = NULL;
        size_t n = 0;
        dp_err err = {{0}};
        int rc = special ? tok_encode_special(t, text, len, &ids, &n, &err)
                         : tok_encode(t, text, len, 1, &ids, &n, &err);
        if (rc) {
            FUZZ_ASSERT_ONE_LINE(err);
            FUZZ_ASSERT(ids == NULL || n == 0, "ids left after a failed encode");
            free(ids);
            continue;
        }
        for (size_t i = 0; i < n; i++)
            FUZZ_ASSERT(ids[i] >= 0 && ids[i] < vocab, "id %d out of [0, %d)", (int)ids[i],
                        vocab);
        char *out = NULL;
        size_t out_len = 0;
        if (tok_decode(t, ids, n, &out, &out_len, &err) == 0) {
            FUZZ_ASSERT(out && out[out_len] == '\0', "decoded text not NUL-terminated at its length");
            free(out);
        } else {
            FUZZ_ASSERT_ONE_LINE(err);
        }
        free(ids);
    }
}

int fuzz_tokenizer_json(const uint8_t *data, size_t size) {
    size_t json_len = size;
    const uint8_t *cfg = NULL;
    size_t cfg_len = 0;
    const uint8_t *sep = memmem(data, size, fuzz_tok_sep, sizeof fuzz_tok_sep - 1);
    if (sep) {
        json_len = (size_t)(sep - data);
        cfg = sep + sizeof fuzz_tok_sep - 1;
        cfg_len = size - json_len - (sizeof fuzz_tok_sep - 1);
        fuzz_write("tokenizer_config.json", cfg, cfg_len);
    }
    const char *path = fuzz_write("tokenizer.json", data, json_len);
    tokenizer *t = NULL;
    dp_err err = {{0}};
    if (tok_load(&t, path, &err) == 0) {
        FUZZ_ASSERT(t, "tok_load returned 0 without a tokenizer");
        int vocab = tok_vocab_size(t);
        FUZZ_ASSERT(vocab >= 0, "vocab size %d", vocab);
        FUZZ_ASSERT(tok_bos_id(t) >= -1 && tok_bos_id(t) < vocab, "bos %d", tok_bos_id(t));
        FUZZ_ASSERT(tok_eos_id(t) >= -1 && tok_eos_id(t) < vocab, "eos %d", tok_eos_id(t));
        (void)tok_adds_bos(t);
        (void)tok_chat_template(t);
        static const char *texts[] = {
            "Hello, world! It's 2024.\n\n  tabs\tand  spaces ",
            "h\xC3\xA9llo \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x98\x80 caf\xC3\xA9",
            "<|endoftext|><s></s><|begin_of_text|> <unk>[INST]",
            "",
        };
        for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
            fuzz_tok_exercise(t, texts[i], strlen(texts[i]));
        fuzz_tok_exercise(t, (const char *)data, json_len < 512 ? json_len : 512);
        /* Every id below the vocabulary size decodes (added-token gaps included). */
        int lim = vocab < 4096 ? vocab : 4096;
        for (int32_t id = 0; id < lim; id++) {
            char *out = NULL;
            size_t out_len = 0;
            dp_err e2 = {{0}};
            if (tok_decode(t, &id, 1, &out, &out_len, &e2) == 0) free(out);
            else FUZZ_ASSERT_ONE_LINE(e2);
        }
        /* Out of range ids are an error, never a read past the table. */
        int32_t badids[3] = {-1, vocab, INT32_MAX};
        for (int i = 0; i < 3; i++) {
            char *out = NULL;
            size_t out_len = 0;
            dp_err e2 = {{0}};
            int rc = tok_decode(t, &badids[i], 1, &out, &out_len, &e2);
            FUZZ_ASSERT(rc != 0, "decode of id %d (vocab %d) succeeded", (int)badids[i], vocab);
            FUZZ_ASSERT_ONE_LINE(e2);
            free(out);
        }
        tok_free(t);
    } else {
        FUZZ_ASSERT(t == NULL, "tok_load failed but left a tokenizer");
        FUZZ_ASSERT_ONE_LINE(err);
    }
    fuzz_unlink("tokenizer.json");
    if (sep) fuzz_unlink("tokenizer_config.json");
    return 0;
}

#ifdef DPOC_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_tokenizer_json(data, size);
}
#endif
