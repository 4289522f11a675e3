/* chat — the built-in chat templates behind ds_render_chat (dataset.h).
 * Private to common/data/dataset.c and common/tokenizer/chat.c.
 *
 * Each template is a C transcription of the Jinja template its model family
 * ships in tokenizer_config.json (see chat.c for which one), rendered exactly
 * as transformers' apply_chat_template renders it, except that a leading
 * bos_token is not written as text: it is the tokenizer's BOS, which
 * ds_tokenize prepends as an id (chat_starts_with_bos says which templates
 * have one). */
#ifndef DP_CHAT_H
#define DP_CHAT_H

#include "dataset.h"

/* Short lowercase name ("chatml", "llama3", ...). */
const char *chat_template_name(ds_template tpl);

/* Picks a template from the markers in TEXT (tokenizer_config.json's
 * chat_template; NULL when there is none). Returns 0 with *out set, or -1
 * naming the markers looked for. */
int chat_template_detect(const char *text, ds_template *out, dp_err *err);

/* 1 if the template begins the conversation with bos_token. */
int chat_starts_with_bos(ds_template tpl);

/* Bytes the template writes after an assistant turn's end-of-turn marker
 * (the "\n" that separates turns): not part of a response. */
size_t chat_turn_separator_len(ds_template tpl);

#endif
