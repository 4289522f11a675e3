/* dataset — preference rows from JSON Lines (.jsonl, .jsonl.gz, .jsonl.zst),
 * streamed, rendered to text, then tokenized and truncated.
 *
 * Row formats (ds_format): standard {prompt, chosen, rejected}; implicit
 * {chosen, rejected} (prompt = longest common prefix, cut back to the last
 * "\n\nAssistant:" for HH-style dialogues); conversational (lists of
 * {role, content} messages rendered with a built-in chat template). A bad row
 * is reported with "FILE:LINE: what" and a reason code, so the caller can
 * stop or skip and count. */
#ifndef DP_DATASET_H
#define DP_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "tokenizer.h"

typedef enum ds_format { DS_AUTO, DS_STANDARD, DS_IMPLICIT, DS_CONVERSATIONAL } ds_format;
typedef enum ds_template {
    DS_TEMPLATE_AUTO, DS_TEMPLATE_CHATML, DS_TEMPLATE_LLAMA3, DS_TEMPLATE_LLAMA2,
    DS_TEMPLATE_MISTRAL, DS_TEMPLATE_ZEPHYR, DS_TEMPLATE_GEMMA
} ds_template;
typedef enum ds_truncation { DS_KEEP_END, DS_KEEP_START } ds_truncation;

/* Why a row was rejected; DS_BAD_COUNT sizes the summary's counters. */
typedef enum ds_bad {
    DS_BAD_NONE, DS_BAD_JSON, DS_BAD_FIELD, DS_BAD_EMPTY, DS_BAD_IDENTICAL,
    DS_BAD_PROMPT_TOO_LONG, DS_BAD_COUNT
} ds_bad;
const char *ds_bad_name(ds_bad b);

typedef struct ds_options {
    ds_format format;
    ds_template chat_template;
    const char *tokenizer_template;  /* tokenizer_config.json's template, for auto */
    int max_length, max_prompt_length;
    ds_truncation truncation;
} ds_options;

typedef struct ds_reader ds_reader;

int ds_open(ds_reader **out, const char *path, const ds_options *opt, dp_err *err);
void ds_close(ds_reader *r);

/* A rendered row; strings are owned by the reader and valid until the next
 * ds_next. id is the content id: hex XXH3-128 of the rendered texts. */
typedef struct ds_row {
    const char *prompt, *chosen, *rejected;
    size_t prompt_len, chosen_len, rejected_len;
    long line;
    char id[40];
} ds_row;

/* Reads the next row. Returns 1 with *row filled; 0 at end of file; 2 for a
 * bad row (*bad set, err holds "FILE:LINE: ..."; the reader can go on);
 * -1 on an error that ends reading (I/O, corrupt compression). */
int ds_next(ds_reader *r, ds_row *row, ds_bad *bad, dp_err *err);

/* Token ids of one row: prompt (with BOS if the tokenizer adds one), chosen
 * and rejected each with EOS appended, truncated per the options. */
typedef struct ds_tokens {
    int32_t *prompt, *chosen, *rejected;   /* malloc'd, owned by the caller */
    int n_prompt, n_chosen, n_rejected;
} ds_tokens;

/* Returns 0, 2 for a bad row (prompt alone fills max_length: *bad set, err
 * names FILE:LINE), -1 on error. */
int ds_tokenize(const tokenizer *t, const ds_options *opt, const char *source,
                const ds_row *row, ds_tokens *out, ds_bad *bad, dp_err *err);
void ds_tokens_free(ds_tokens *t);

/* Renders a conversation (NUL-terminated role/content pairs) with a
 * template; exposed for tests. *out is malloc'd. */
int ds_render_chat(ds_template tpl, const char *const *roles, const char *const *contents,
                   int n, int add_generation_prompt, char **out, dp_err *err);

#endif
