/* fuzz_jsonl — the dataset reader (common/data/dataset.c, chat.c) on hostile
 * JSON Lines files, then ds_tokenize on every row it accepts.
 *
 * The input is written as DIR/d.jsonl and read in each format (auto,
 * standard, implicit, conversational); the chat template, the truncation
 * side, max_length / max_prompt_length and a small max_line_bytes (in one of
 * the passes) vary with the pass and the input's size. Input that starts
 * with the gzip or zstd magic is also read as d.jsonl.gz / d.jsonl.zst.
 * Rows are tokenized with tests/data/bytes_bos_tok (id = byte, EOS 256,
 * BOS 257 prepended) and examples/tiny/model (no BOS).
 * Properties: ds_next returns -1, 0, 1 or 2 and a bad-row reason with 2;
 * rows are NUL-free strings of the stated lengths with a hex id; tokenized
 * rows fit max_length, with every id in the vocabulary and a non-empty
 * prompt; errors are one line. */
#include "dataset.h"
#include "fuzz_common.h"
#include "tokenizer.h"

static tokenizer *fuzz_ds_toks[2];

static void fuzz_ds_free(void) {
    for (int i = 0; i < 2; i++) tok_free(fuzz_ds_toks[i]), fuzz_ds_toks[i] = NULL;
}

static void fuzz_ds_init(void) {
    if (fuzz_ds_toks[0]) return;
    const char *paths[2] = {"tests/data/bytes_bos_tok/tokenizer.json",
                            "examples/tiny/model/tokenizer.json"};
    for (int i = 0; i < 2; i++) {
        dp_err err = {{0}};
        FUZZ_ASSERT(tok_load(&fuzz_ds_toks[i], fuzz_root_path(paths[i]), &err) == 0, "%s",
                    err.msg);
    }
    atexit(fuzz_ds_free);
}

static void fuzz_ds_tokenize(const ds_options *o, const char *path, const ds_row *row) {
    for (int k = 0; k < 2; k++) {
        const tokenizer *t = fuzz_ds_toks[k];
        ds_tokens tk;
        ds_bad bad = DS_BAD_NONE;
        dp_err err = {{0}};
        int rc = ds_tokenize(t, o, path, row, &tk, &bad, &err);
        FUZZ_ASSERT(rc == 0 || rc == 2 || rc == -1, "ds_tokenize returned %d", rc);
        if (rc) {
            FUZZ_ASSERT_ONE_LINE(err);
            FUZZ_ASSERT(rc != 2 || (bad > DS_BAD_NONE && bad < DS_BAD_COUNT), "bad %d", bad);
            FUZZ_ASSERT(!tk.prompt && !tk.chosen && !tk.rejected, "tokens left after %d", rc);
            continue;
        }
        int vocab = tok_vocab_size(t);
        int longer = tk.n_chosen > tk.n_rejected ? tk.n_chosen : tk.n_rejected;
        FUZZ_ASSERT(tk.n_prompt >= 1 && tk.n_chosen >= 1 && tk.n_rejected >= 1,
                    "lengths %d %d %d", tk.n_prompt, tk.n_chosen, tk.n_rejected);
        FUZZ_ASSERT(tk.n_prompt + longer <= o->max_length, "%d + %d > max_length %d",
                    tk.n_prompt, longer, o->max_length);
        const int32_t *seqs[3] = {tk.prompt, tk.chosen, tk.rejected};
        int ns[3] = {tk.n_prompt, tk.n_chosen, tk.n_rejected};
        for (int s = 0; s < 3; s++)
            for (int i = 0; i < ns[s]; i++)
                FUZZ_ASSERT(seqs[s][i] >= 0 && seqs[s][i] < vocab, "id %d", (int)seqs[s][i]);
        ds_tokens_free(&tk);
    }
}

static void fuzz_ds_read(const char *path, const ds_options *o) {
    ds_reader *r = NULL;
    dp_err err = {{0}};
    if (ds_open(&r, path, o, &err)) {
        FUZZ_ASSERT_ONE_LINE(err);
        return;
    }
    for (int rows = 0; rows < 10000; rows++) {
        ds_row row;
        ds_bad bad = DS_BAD_NONE;
        int rc = ds_next(r, &row, &bad, &err);
        FUZZ_ASSERT(rc >= -1 && rc <= 2, "ds_next returned %d", rc);
        if (rc == 0) break;
        if (rc == -1) {
            FUZZ_ASSERT_ONE_LINE(err);
            break;
        }
        if (rc == 2) {
            FUZZ_ASSERT(bad > DS_BAD_NONE && bad < DS_BAD_COUNT, "bad %d", bad);
            (void)ds_bad_name(bad);
            FUZZ_ASSERT_ONE_LINE(err);
            continue;
        }
        FUZZ_ASSERT(row.prompt && row.chosen && row.rejected, "row strings");
        FUZZ_ASSERT(strlen(row.prompt) == row.prompt_len && strlen(row.chosen) == row.chosen_len &&
                    strlen(row.rejected) == row.rejected_len, "row lengths");
        FUZZ_ASSERT(row.line >= 1, "line %ld", row.line);
        FUZZ_ASSERT(row.id[0] && strspn(row.id, "0123456789abcdef") == strlen(row.id), "id %s",
                    row.id);
        fuzz_ds_tokenize(o, path, &row);
    }
    ds_close(r);
}

int fuzz_jsonl(const uint8_t *data, size_t size) {
    fuzz_ds_init();
    const char *path = fuzz_write("d.jsonl", data, size);
    static const ds_format formats[4] = {DS_AUTO, DS_STANDARD, DS_IMPLICIT, DS_CONVERSATIONAL};
    for (int pass = 0; pass < 4; pass++) {
        ds_options o = {0};
        o.format = formats[pass];
        o.chat_template = (ds_template)((size + (size_t)pass) % 7);
        o.tokenizer_template = pass == 0 ? "{{ '<|im_start|>' + message['role'] }}" : NULL;
        o.max_length = 1 + (int)((size * 7 + (size_t)pass * 13) % 96);
        o.max_prompt_length = 1 + (int)((size * 3 + (size_t)pass) % 64);
        o.truncation = (pass & 1) ? DS_KEEP_START : DS_KEEP_END;
        o.max_line_bytes = pass == 3 ? 100 : 0;
        fuzz_ds_read(path, &o);
    }
    fuzz_unlink("d.jsonl");
    int gz = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
    int zst = size >= 4 && data[0] == 0x28 && data[1] == 0xb5 && data[2] == 0x2f && data[3] == 0xfd;
    if (gz || zst) {
        const char *name = gz ? "d.jsonl.gz" : "d.jsonl.zst";
        ds_options o = {0};
        o.format = DS_AUTO;
        o.chat_template = DS_TEMPLATE_CHATML;
        o.max_length = 64;
        o.max_prompt_length = 32;
        fuzz_ds_read(fuzz_write(name, data, size), &o);
        fuzz_unlink(name);
    }
    return 0;
}

#ifdef DPOC_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_jsonl(data, size);
}
#endif
