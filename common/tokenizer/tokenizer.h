/* tokenizer — Hugging Face tokenizer.json (byte-level BPE and
 * SentencePiece-style BPE), exact to the `tokenizers` library.
 *
 * Pipeline: added tokens split out (leftmost-longest) → normalizer →
 * pre-tokenizer → BPE per piece; decoding runs the decoder. A loaded
 * tokenizer is immutable: encode/decode may run on many threads at once. */
#ifndef DP_TOKENIZER_H
#define DP_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct tokenizer tokenizer;

/* Loads PATH (a tokenizer.json, or a directory holding one) and, if
 * present beside it, tokenizer_config.json (add_bos_token/add_eos_token,
 * chat_template, bos/eos token names). On success *out is owned by the caller
 * (tok_free). Errors name the file and the JSON path at fault. */
int tok_load(tokenizer **out, const char *path, dp_err *err);
void tok_free(tokenizer *t);

/* Encodes LEN bytes of UTF-8 TEXT as Hugging Face
 * encode(text, add_special_tokens=False). *ids is malloc'd and owned by the
 * caller. Invalid UTF-8 is an error naming the byte offset, unless
 * `replace_invalid` is set, in which case bad bytes become U+FFFD. */
int tok_encode(const tokenizer *t, const char *text, size_t len, int replace_invalid,
               int32_t **ids, size_t *n, dp_err *err);

/* Like tok_encode, then adds BOS/EOS as the post-processor (or
 * tokenizer_config.json's add_bos_token/add_eos_token) says. */
int tok_encode_special(const tokenizer *t, const char *text, size_t len, int32_t **ids,
                       size_t *n, dp_err *err);

/* Decodes ids to UTF-8 text through the tokenizer's decoder; *text is
 * malloc'd, NUL-terminated, owned by the caller. */
int tok_decode(const tokenizer *t, const int32_t *ids, size_t n, char **text, size_t *len,
               dp_err *err);

int tok_vocab_size(const tokenizer *t);      /* largest id + 1, added tokens included */
int tok_bos_id(const tokenizer *t);          /* -1 when the tokenizer has none */
int tok_eos_id(const tokenizer *t);          /* -1 when the tokenizer has none */
int tok_adds_bos(const tokenizer *t);        /* 1 if encode_special prepends BOS */
/* The model's chat template: chat_template.jinja beside tokenizer.json, else
 * tokenizer_config.json's chat_template ("default" of a named list); NULL
 * when there is none. tok_chat_template_source names the file. */
const char *tok_chat_template(const tokenizer *t);
const char *tok_chat_template_source(const tokenizer *t);
/* A named list's "tool_use" template (transformers uses it when tools are
 * given), or NULL. */
const char *tok_chat_template_tool_use(const tokenizer *t);

/* Named special tokens (bos_token, eos_token, unk_token, pad_token,
 * sep_token, cls_token, mask_token), resolved as transformers does:
 * tokenizer_config.json, special_tokens_map.json (unless the config has
 * added_tokens_decoder), generation_config.json / config.json ids, the
 * class defaults (GPT-2: <|endoftext|>), the post-processor. tok_special
 * returns token K's text (borrowed, NULL when unset) and, when SOURCE is
 * given, the file it came from. tok_bos_id/tok_eos_id follow these. */
int tok_special_count(void);
const char *tok_special_name(int k);
const char *tok_special(const tokenizer *t, int k, const char **source);

/* Ids that end generation: generation_config.json's eos_token_id (an int
 * or a list, as Llama 3's), else config.json's, else the EOS. */
size_t tok_stop_ids(const tokenizer *t, const int32_t **ids);

/* The id of token string S (added tokens first, then the model's
 * vocabulary), or -1. */
int tok_token_id(const tokenizer *t, const char *s, size_t len);
/* The token string of ID (not decoded: "Ġworld", "<0x0A>"), borrowed from
 * T, with its length in *len; NULL if ID is not in the vocabulary. */
const char *tok_token_str(const tokenizer *t, int id, size_t *len);

/* Byte offset of the first invalid UTF-8 sequence in s[0..n), or -1 if valid. */
long tok_utf8_first_invalid(const char *s, size_t n);
/* Copies s[0..n) with each invalid sequence replaced by U+FFFD (one per
 * maximal subpart, as Python's errors="replace"); *out is malloc'd,
 * NUL-terminated and owned by the caller. */
int tok_utf8_replace(const char *s, size_t n, char **out, size_t *out_len, dp_err *err);

#endif
