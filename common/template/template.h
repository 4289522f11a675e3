/* template — a Jinja interpreter for chat templates, rendering as
 * transformers' apply_chat_template does (REFERENCES §10): Jinja's
 * ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks and the
 * loop controls, plus raise_exception, strftime_now and transformers'
 * tojson. Undefined values behave as Jinja's default Undefined.
 *
 * Templates ship with downloaded checkpoints and are untrusted: there is no
 * file, environment or attribute access beyond the data passed in (no
 * include/import/extends), and a render is bounded in loop iterations,
 * call depth, memory and output size. Errors are one line:
 * "LINE:COL: message" (template coordinates), or the template's own
 * raise_exception message after them. Parsed templates are immutable: many
 * threads may render one at once. */
#ifndef DP_TEMPLATE_H
#define DP_TEMPLATE_H

#include <jansson.h>
#include <stddef.h>

#include "error.h"

typedef struct tmpl tmpl;

/* Bounds of one render; zeros take the defaults (1e7 loop iterations,
 * depth 100, 256 MiB of working memory, 64 MiB of output). */
typedef struct tmpl_limits {
    size_t max_steps, max_depth, max_bytes, max_output;
} tmpl_limits;

/* Parses SRC[0..len). On success *out is owned by the caller (tmpl_free).
 * Syntax errors: "LINE:COL: message". */
int tmpl_parse(tmpl **out, const char *src, size_t len, dp_err *err);
void tmpl_free(tmpl *t);

/* Renders T with the variables of VARS (a JSON object: messages, tools,
 * add_generation_prompt, bos_token, ...; borrowed). *out is malloc'd,
 * NUL-terminated and owned by the caller, its length in *len. LIMITS may be
 * NULL. */
int tmpl_render(const tmpl *t, const json_t *vars, const tmpl_limits *limits, char **out,
                size_t *len, dp_err *err);

#endif
