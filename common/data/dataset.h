/* dataset — preference rows from JSON Lines (.jsonl, .jsonl.gz, .jsonl.zst),
 * streamed, rendered to text, then tokenized and truncated.
 *
 * Row formats (ds_format): standard {prompt, chosen, rejected}; implicit
 * {chosen, rejected} (prompt = longest common prefix, cut back to just after
 * the last "\n\nAssistant:" for HH-style dialogues, else never inside a
 * UTF-8 character); conversational (lists of {role, content} messages, with
 * or without "prompt": without it the messages chosen and rejected share
 * at the start are the prompt), rendered with a built-in chat template.
 * auto settles on a format from the first valid row of each file.
 *
 * Conversational text: the prompt is the template's rendering with the
 * generation prompt; each response is what rendering prompt + response
 * adds after it (the assistant content and its end-of-turn marker:
 * "<|im_end|>", "<|eot_id|>", " </s>", "</s>", "<end_of_turn>"), without the
 * newline some templates put between turns. A template's leading bos_token
 * is not text: ds_row.template_bos asks ds_tokenize for the BOS id.
 *
 * A .gz or .zst file must start with its format's magic number (else "not
 * a gzip file (first bytes ...)"); text from the input in a message is
 * quoted and escaped (dp_quote) when it is not printable ASCII.
 *
 * A bad row is reported with "FILE:LINE: what" and a reason code, so the
 * caller can stop or skip and count. Blank lines are skipped; a line longer
 * than opt->max_line_bytes ends reading (-1). */
#ifndef DP_DATASET_H
#define DP_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "template.h"
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
    tmpl *jinja;                     /* when set, conversational rows are rendered with
                                        this Jinja template (the model's own, or a .jinja
                                        file) and tokenized by TRL's rule (ds_tokenize);
                                        owned: ds_options_free frees it */
    tmpl *jinja_tools;               /* the model's "tool_use" template, for rows that give
                                        tools (NULL: jinja); owned */
    const tokenizer *jinja_tok;      /* its special-token variables (may be NULL) */
    char jinja_id[80];               /* "jinja:" + a hash of the template and its
                                        variables, for the reference fingerprint */
    int max_length, max_prompt_length;
    ds_truncation truncation;
    size_t max_line_bytes;           /* a longer line ends reading; 0 = 64 MiB */
} ds_options;

/* Frees what OPT owns (its jinja template). */
void ds_options_free(ds_options *opt);

/* Names as the config spells them ("standard", "chatml", "keep_end", ...). */
const char *ds_format_name(ds_format f);
const char *ds_template_name(ds_template t);

/* The template conversational rows are rendered with: opt->chat_template,
 * or for auto the one picked from the markers in opt->tokenizer_template
 * (error naming the markers looked for when none matches). For the
 * reference fingerprint. */
int ds_resolve_template(const ds_options *opt, ds_template *out, dp_err *err);

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
    int template_bos;  /* the chat template starts with bos_token: the text
                          leaves it out and ds_tokenize prepends the BOS id */
    int full_render;   /* opt->jinja: chosen and rejected are the full renders of
                          prompt + response, split by token count (ds_tokenize) */
} ds_row;

/* Reads the next row. Returns 1 with *row filled; 0 at end of file; 2 for a
 * bad row (*bad set, err holds "FILE:LINE: ..."; the reader can go on);
 * -1 on an error that ends reading (I/O, corrupt compression). */
int ds_next(ds_reader *r, ds_row *row, ds_bad *bad, dp_err *err);

/* Token ids of one row. Prompt: tok_encode, with the BOS id first when the
 * tokenizer adds one (tok_adds_bos) or row->template_bos, and never an EOS.
 * Responses: tok_encode, then EOS appended unless the last token already is
 * EOS (a template marker that is the EOS token is not doubled), as TRL's
 * add_eos_token_if_needed. Truncation, TRL DPOTrainer / the DPO reference
 * implementation: when n_prompt + max(n_chosen, n_rejected) > max_length,
 * the prompt is cut to max_prompt_length keeping its end (keep_end) or start
 * (keep_start); the BOS is an ordinary prompt token here, so keep_end drops
 * it as TRL does (TRL adds BOS before truncating). If still too long, both
 * responses are cut to max_length - n_prompt keeping their start (so a cut
 * response loses its EOS).
 * Rows rendered with a Jinja template (row->full_render) follow TRL's
 * current DPO instead: prompt ids = tok_encode(prompt text); each
 * response's ids = tok_encode(full render) after the first n_prompt ids;
 * no BOS or EOS beyond what the template wrote. Truncation as above. */
typedef struct ds_tokens {
    int32_t *prompt, *chosen, *rejected;   /* malloc'd, owned by the caller */
    int n_prompt, n_chosen, n_rejected;
    int not_prefix[2];  /* full_render rows: the prompt's ids are not a prefix of
                           chosen's / rejected's full ids (TRL warns; split anyway) */
} ds_tokens;

/* Returns 0; 2 for a bad row, *bad set and err naming SOURCE:LINE: the
 * prompt alone fills max_length after truncation (DS_BAD_PROMPT_TOO_LONG),
 * or the prompt is empty and there is no BOS (DS_BAD_EMPTY: the model needs
 * at least one prompt token); -1 on error (no EOS token, max_length < 1,
 * encoding failure). On 2 and -1, *out holds nothing. */
int ds_tokenize(const tokenizer *t, const ds_options *opt, const char *source,
                const ds_row *row, ds_tokens *out, ds_bad *bad, dp_err *err);
void ds_tokens_free(ds_tokens *t);

/* Renders a conversation (NUL-terminated role/content pairs) with a
 * resolved template, exactly as the model family's Jinja template does
 * (common/tokenizer/chat.c names the sources) minus the leading bos_token. Roles that
 * a template refuses (llama2, mistral, gemma: user/assistant alternation;
 * mistral: system) are an error naming the message index. *out is
 * malloc'd, owned by the caller. */
int ds_render_chat(ds_template tpl, const char *const *roles, const char *const *contents,
                   int n, int add_generation_prompt, char **out, dp_err *err);

/* ---- the model's own Jinja template (ds_chat.c) ---- */

/* The variables apply_chat_template passes: MESSAGES and TOOLS (borrowed;
 * TOOLS NULL is None), add_generation_prompt and T's named special tokens
 * (T may be NULL). Returns a new JSON object, NULL when out of memory. */
json_t *ds_chat_vars(const tokenizer *t, const json_t *messages, const json_t *tools,
                     int add_generation_prompt);

/* Renders MESSAGES with TP and ds_chat_vars; *out is malloc'd and owned by
 * the caller. Errors: "chat template: LINE:COL: message". */
int ds_chat_render(const tmpl *tp, const tokenizer *t, const json_t *messages, const json_t *tools,
                   int add_generation_prompt, char **out, size_t *len, dp_err *err);

/* Renders MESSAGES with built-in template TPL as the whole text the model
 * family's Jinja template writes (its leading bos_token included, from T).
 * Only string roles and contents. *out is malloc'd, owned by the caller. */
int ds_chat_render_builtin(ds_template tpl, const tokenizer *t, const json_t *messages,
                           int add_generation_prompt, char **out, size_t *len, dp_err *err);

/* Parses the chat template SPEC names: a path ending in .jinja, or NULL
 * for the model's own (T's; *out stays NULL when it has none). *source
 * names where it came from (borrowed). */
int ds_chat_load(const char *spec, const tokenizer *t, tmpl **out, const char **source, dp_err *err);

/* Parses T's "tool_use" template (tok_chat_template_tool_use) into *out, or
 * leaves it NULL when T has none. */
int ds_chat_load_tool_use(const tokenizer *t, tmpl **out, dp_err *err);

/* A conversational ROW rendered with TP (TP_TOOLS instead, when given and
 * the row has "tools") as TRL's DPO renders it: texts[0]
 * the prompt messages with the generation prompt, texts[1] and texts[2]
 * prompt + chosen and prompt + rejected in full (without "prompt", the
 * messages chosen and rejected share at the start are the prompt). Each
 * malloc'd, owned by the caller. Returns 0, 2 for a bad row (err
 * "FILE:LINE: ...", a template that raises included), -1 on error. */
int ds_chat_row(const tmpl *tp, const tmpl *tp_tools, const tokenizer *t, const json_t *row,
                const char *file, long line, char *texts[3], dp_err *err);

#endif
