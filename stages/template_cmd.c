/* template_cmd — `dpoc template --model DIR [--template NAME|FILE]`: renders
 * conversations with a chat template exactly as transformers'
 * apply_chat_template would, to show what data turns into.
 *
 * Each stdin line is {"messages": [...], "add_generation_prompt": bool,
 * "tools": [...] (optional)}; each output line the rendered text as a JSON
 * string. A bad line or a template that raises ends the run with exit
 * status 1 and one line: "stdin:N: chat template: LINE:COL: message". */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "template.h"
#include "tokenizer.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: dpoc template --model DIR [--template NAME|FILE.jinja]\n"
            "  reads JSON Lines on stdin: {\"messages\": [...], \"add_generation_prompt\": true|false,\n"
            "  \"tools\": [...]} (tools optional); writes each rendering as a JSON string line\n"
            "  --model DIR        model directory: tokenizer.json and the files beside it give\n"
            "                     the special tokens (bos_token, eos_token, ...) and the\n"
            "                     model's own template (chat_template.jinja, else\n"
            "                     tokenizer_config.json's chat_template; of a named list\n"
            "                     \"default\", or \"tool_use\" for rows that give tools)\n"
            "  --template NAME|FILE  render with a built-in template (chatml, llama3, llama2,\n"
            "                     mistral, zephyr, gemma) or a .jinja file instead of the\n"
            "                     model's own\n"
            "  --help             this text\n"
            "The environment is transformers': Jinja with trim_blocks, lstrip_blocks, loop\n"
            "controls, raise_exception, strftime_now and its tojson. A template that raises\n"
            "ends the run with exit status 1 and the error's template line:col.\n");
}

int cmd_template(int argc, char **argv) {
    const char *dir = NULL, *spec = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if ((!strcmp(argv[i], "--model") || !strcmp(argv[i], "--template")) && i + 1 < argc) {
            *(argv[i][2] == 'm' ? &dir : &spec) = argv[i + 1];
            i++;
        } else {
            char q[DP_QUOTE_CAP];
            fprintf(stderr, "dpoc template: unexpected argument %s\n", dp_quote(q, argv[i], (size_t)-1));
            usage(stderr);
            return 2;
        }
    }
    if (!dir) {
        fprintf(stderr, "dpoc template: --model DIR is required\n");
        return 2;
    }
    dp_err err;
    tokenizer *t = NULL;
    tmpl *tp = NULL, *tp_tools = NULL;
    const char *source;
    static const char *const builtins[] = {"chatml", "llama3", "llama2", "mistral", "zephyr", "gemma"};
    static const ds_template builtin_ids[] = {DS_TEMPLATE_CHATML, DS_TEMPLATE_LLAMA3, DS_TEMPLATE_LLAMA2,
                                              DS_TEMPLATE_MISTRAL, DS_TEMPLATE_ZEPHYR, DS_TEMPLATE_GEMMA};
    int builtin = -1;
    for (int k = 0; spec && k < 6; k++)
        if (!strcmp(spec, builtins[k])) builtin = k;
    size_t sl = spec ? strlen(spec) : 0;
    if (spec && builtin < 0 && (sl <= 6 || strcmp(spec + sl - 6, ".jinja"))) {
        char q[DP_QUOTE_CAP];
        fprintf(stderr, "dpoc template: --template: expected chatml, llama3, llama2, mistral, zephyr, "
                        "gemma or a .jinja file, got %s\n", dp_quote(q, spec, (size_t)-1));
        return 2;
    }
    if (tok_load(&t, dir, &err) || (builtin < 0 && ds_chat_load(spec, t, &tp, &source, &err)) ||
        (builtin < 0 && !spec && ds_chat_load_tool_use(t, &tp_tools, &err))) {
        fprintf(stderr, "%s\n", err.msg);
        tmpl_free(tp);
        tok_free(t);
        return 1;
    }
    if (!tp && builtin < 0) {
        fprintf(stderr, "%s: the model has no chat template (no chat_template.jinja, no "
                        "chat_template in tokenizer_config.json); give one with --template FILE.jinja\n", dir);
        tok_free(t);
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    int rc = 0;
    while (!rc && (n = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        json_error_t je;
        json_t *row = json_loadb(line, (size_t)n, JSON_REJECT_DUPLICATES, &je);
        json_t *msgs = row ? json_object_get(row, "messages") : NULL;
        json_t *agp = row ? json_object_get(row, "add_generation_prompt") : NULL;
        json_t *tools = row ? json_object_get(row, "tools") : NULL;
        char *text = NULL;
        size_t len = 0;
        if (!row) rc = dp_fail(&err, "stdin:%ld: invalid JSON: %s", lineno, je.text);
        else if (!json_is_object(row) || !json_is_array(msgs))
            rc = dp_fail(&err, "stdin:%ld: expected {\"messages\": [...], \"add_generation_prompt\": ...}", lineno);
        else if (agp && !json_is_boolean(agp))
            rc = dp_fail(&err, "stdin:%ld: add_generation_prompt: expected true or false", lineno);
        else if (builtin >= 0 ? ds_chat_render_builtin(builtin_ids[builtin], t, msgs, json_is_true(agp), &text, &len, &err)
                              : ds_chat_render(tp_tools && tools && !json_is_null(tools) ? tp_tools : tp, t, msgs, json_is_null(tools) ? NULL : tools, json_is_true(agp), &text, &len, &err))
            rc = dp_context(&err, "stdin:%ld", lineno);
        if (!rc) {
            json_t *s = json_stringn(text, len);
            char *js = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
            if (!js) rc = dp_fail(&err, "stdin:%ld: the rendering is not valid UTF-8", lineno);
            else printf("%s\n", js);
            free(js);
            json_decref(s);
        }
        free(text);
        json_decref(row);
    }
    free(line);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    tmpl_free(tp);
    tmpl_free(tp_tools);
    tok_free(t);
    return rc ? 1 : 0;
}
