/* fuzz_template — the Jinja chat-template interpreter (common/template) on
 * hostile templates: the input is the template source, rendered with a
 * fixed conversation (system, user, assistant with tool calls, tool),
 * tools and special tokens, under small bounds so each input runs fast.
 * Properties: no crash and no leak; a parse or render error is one line;
 * rendering the same template twice gives the same text (or the same
 * error). */
#include <jansson.h>

#include "fuzz_common.h"
#include "template.h"

static const char fuzz_template_vars[] =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"},"
    " {\"role\": \"user\", \"content\": \"h\\u00e9llo <|im_end|> \\ud83c\\udf89\"},"
    " {\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": [{\"type\": \"function\","
    " \"function\": {\"name\": \"f\", \"arguments\": {\"x\": 1.5, \"y\": [true, null]}}}]},"
    " {\"role\": \"tool\", \"content\": \"42\"}],"
    " \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {}}}],"
    " \"add_generation_prompt\": true, \"bos_token\": \"<s>\", \"eos_token\": \"</s>\"}";

int fuzz_template(const uint8_t *data, size_t size) {
    json_error_t je;
    json_t *vars = json_loads(fuzz_template_vars, 0, &je);
    FUZZ_ASSERT(vars, "vars: %s", je.text);
    tmpl *t = NULL;
    dp_err err = {{0}};
    if (tmpl_parse(&t, (const char *)data, size, &err)) {
        FUZZ_ASSERT(t == NULL, "tmpl_parse failed but left a template");
        FUZZ_ASSERT_ONE_LINE(err);
        json_decref(vars);
        return 0;
    }
    tmpl_limits lim = {.max_steps = 20000, .max_depth = 40, .max_bytes = (size_t)32 << 20,
                       .max_output = (size_t)1 << 20};
    char *out[2] = {NULL, NULL};
    size_t len[2] = {0, 0};
    dp_err e2[2] = {{{0}}, {{0}}};
    int rc[2];
    for (int k = 0; k < 2; k++) {
        rc[k] = tmpl_render(t, vars, &lim, &out[k], &len[k], &e2[k]);
        if (rc[k]) {
            FUZZ_ASSERT(out[k] == NULL, "tmpl_render failed but left output");
            FUZZ_ASSERT_ONE_LINE(e2[k]);
        }
    }
    FUZZ_ASSERT(rc[0] == rc[1], "two renders disagree: %d vs %d", rc[0], rc[1]);
    if (rc[0] == 0)
        FUZZ_ASSERT(len[0] == len[1] && memcmp(out[0], out[1], len[0]) == 0, "two renders differ");
    else if (!strstr(e2[0].msg, "strftime"))
        FUZZ_ASSERT(strcmp(e2[0].msg, e2[1].msg) == 0, "two errors differ: %s | %s", e2[0].msg, e2[1].msg);
    free(out[0]);
    free(out[1]);
    tmpl_free(t);
    json_decref(vars);
    return 0;
}

#ifdef DPOC_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_template(data, size);
}
#endif
