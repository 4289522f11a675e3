/* dpoc sample — text generation from a Hugging Face model directory with a
 * KV cache: temperature, top-k, top-p, a seed, a token budget, stop at EOS.
 *
 * Recipe: load tokenizer and model from DIR → for the --prompt, or for each
 * JSON Lines prompt on stdin: encode (BOS as the tokenizer's policy says) →
 * generate → decode → print {"prompt", "completion", "ids"} as one line.
 * Prompt i (0-based) is drawn from stream i of the seed: its result depends
 * on (seed, i) and the options, not on the other prompts' tokens. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "stage_util.h"
#include "tokenizer.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: dpoc sample --model DIR [--prompt TEXT] [options]\n"
            "Generates a completion for TEXT, or for each JSON Lines prompt on stdin (a JSON\n"
            "string or {\"prompt\": ...} per line), and prints one JSON line per prompt:\n"
            "{\"prompt\": ..., \"completion\": ..., \"ids\": [generated token ids]}.\n\n"
            "options:\n"
            "  --model DIR            Hugging Face model directory (config.json, safetensors,\n"
            "                         tokenizer.json)\n"
            "  --adapter DIR          a LoRA adapter (PEFT layout: adapter_config.json,\n"
            "                         adapter_model.safetensors) applied on the model, unmerged\n"
            "  --prompt TEXT          the prompt; without it, prompts come from stdin\n"
            "  --temperature T        sampling temperature, 0 = greedy (default 1.0)\n"
            "  --top-k K              sample among the K most likely tokens, 0 = all (default 0)\n"
            "  --top-p P              nucleus sampling: the smallest set of most likely tokens\n"
            "                         whose probability reaches P, 1 = all (default 1.0)\n"
            "  --seed S               random seed; the same seed gives the same text (default 1)\n"
            "  --max-new-tokens N     at most N generated tokens (default 64); generation stops\n"
            "                         after an EOS token (generation_config.json's eos_token_id,\n"
            "                         which may list several, else the tokenizer's EOS)\n"
            "  --special              keep special tokens (the EOS) in the completion text\n"
            "  --threads N            compute threads, 0 = all cores (default 0)\n"
            "  -h, --help             this help\n");
}

static int parse_num(const char *opt, const char *v, double lo, double hi, int integer,
                     double *out) {
    char *end;
    double x = v ? strtod(v, &end) : 0;
    if (!v || !*v || *end || !(x >= lo && x <= hi) || (integer && x != (double)(long long)x)) {
        fprintf(stderr, "dpoc sample: %s: expected %s in [%g, %g], got \"%s\"\n", opt,
                integer ? "an integer" : "a number", lo, hi, v ? v : "");
        return -1;
    }
    *out = x;
    return 0;
}

typedef struct sampler_run {
    tokenizer *tok;
    model *m;
    model_sampler *smp;
    int32_t *out;
    int max_new, special, eos, bos;
    uint64_t seed;
} sampler_run;

/* Generates for one prompt and prints its line. */
static int run_prompt(sampler_run *r, const char *prompt, uint64_t index, dp_err *err) {
    const model_config *c = model_get_config(r->m);
    int32_t *ids = NULL;
    size_t n = 0;
    if (tok_encode_special(r->tok, prompt, strlen(prompt), &ids, &n, err)) return -1;
    /* A prompt is continued, not closed: drop an EOS the post-processor appends. */
    if (n > 0 && r->eos >= 0 && ids[n - 1] == r->eos && tok_eos_id(r->tok) >= 0) {
        int32_t *plain = NULL;
        size_t pn = 0;
        if (tok_encode(r->tok, prompt, strlen(prompt), 0, &plain, &pn, err)) {
            free(ids);
            return -1;
        }
        if (pn == 0 || plain[pn - 1] != r->eos) n--;
        free(plain);
    }
    if (n == 0) {
        if (r->bos < 0) {
            free(ids);
            return dp_fail(err, "the prompt is empty and the model has no BOS token to start from");
        }
        free(ids);
        ids = malloc(sizeof *ids);
        if (!ids) return dp_fail(err, "out of memory");
        ids[0] = r->bos, n = 1;
    }
    int gpt2 = !strcmp(c->model_type, "gpt2");
    long cap = (long)n + r->max_new;
    if (gpt2 && cap > c->max_pos) cap = c->max_pos;
    if ((long)n >= cap) {
        free(ids);
        return dp_fail(err, "the prompt's %zu tokens leave no room in the model's %d positions", n,
                       c->max_pos);
    }
    model_kv *kv = model_kv_new(r->m, (int)cap, err);
    if (!kv) {
        free(ids);
        return -1;
    }
    model_sampler_seed(r->smp, model_stream_seed(r->seed, index));
    int n_out = 0;
    const int32_t *stop;
    size_t n_stop = tok_stop_ids(r->tok, &stop);
    int32_t eos = r->eos;
    if (!n_stop && eos >= 0) stop = &eos, n_stop = 1;
    int rc = model_generate_until(r->m, kv, r->smp, ids, (int)n, r->max_new, stop, (int)n_stop,
                                  r->out, &n_out, err);
    model_kv_free(kv);
    free(ids);
    if (rc) return -1;
    int n_text = n_out;
    int stopped = 0;
    for (size_t k = 0; k < n_stop && n_text > 0 && !stopped; k++) stopped = r->out[n_text - 1] == stop[k];
    if (!r->special && stopped) n_text--;
    char *text = NULL, *clean = NULL;
    size_t len = 0, clean_len = 0;
    if (tok_decode(r->tok, r->out, (size_t)n_text, &text, &len, err)) return -1;
    /* byte-level tokens may end mid-character: the JSON line stays valid UTF-8 */
    rc = tok_utf8_replace(text, len, &clean, &clean_len, err);
    free(text);
    if (rc) return -1;
    json_t *ids_json = json_array();
    for (int i = 0; i < n_out; i++) json_array_append_new(ids_json, json_integer(r->out[i]));
    json_t *line = json_pack("{s:s, s:s%, s:o}", "prompt", prompt, "completion", clean, clean_len,
                             "ids", ids_json);
    free(clean);
    if (!line) return dp_fail(err, "out of memory");
    char *s = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(line);
    if (!s) return dp_fail(err, "out of memory");
    printf("%s\n", s);
    fflush(stdout);
    free(s);
    return 0;
}

/* Prompts from stdin, one JSON value per line. */
static int run_stdin(sampler_run *r, dp_err *err) {
    char *line = NULL;
    size_t cap = 0;
    long len;
    long lineno = 0;
    uint64_t index = 0;
    int rc = 0;
    while (!rc && (len = su_getline(&line, &cap, stdin, "stdin", lineno + 1, err)) >= 0) {
        lineno++;
        if (strspn(line, " \t\r\n") == (size_t)len) continue;
        json_error_t je;
        json_t *v = json_loadb(line, (size_t)len, JSON_DECODE_ANY, &je);
        if (!v) {
            rc = dp_fail(err, "stdin:%ld:%d: invalid JSON: %s", lineno, je.column, je.text);
            break;
        }
        const json_t *p = json_is_object(v) ? json_object_get(v, "prompt") : v;
        if (!json_is_string(p))
            rc = dp_fail(err, "stdin:%ld: expected a JSON string or an object with a string "
                              "\"prompt\", got %s", lineno,
                         json_is_object(v) ? (p ? "a non-string \"prompt\"" : "an object without \"prompt\"")
                                           : "another JSON value");
        else if (strlen(json_string_value(p)) != json_string_length(p))
            rc = dp_fail(err, "stdin:%ld: prompt: contains a NUL character", lineno);
        else
            rc = run_prompt(r, json_string_value(p), index++, err);
        json_decref(v);
    }
    if (len == -2) rc = -1;
    free(line);
    return rc;
}

int cmd_sample(int argc, char **argv) {
    const char *dir = NULL, *prompt = NULL, *adapter = NULL;
    double temperature = 1.0, top_k = 0, top_p = 1.0, seed = 1, max_new = 64, threads = 0;
    int special = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0, takes = 1;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--special")) {
            special = 1, takes = 0;
        } else if (!v && (!strcmp(a, "--model") || !strcmp(a, "--prompt") ||
                          !strcmp(a, "--adapter") ||
                          !strcmp(a, "--temperature") || !strcmp(a, "--top-k") ||
                          !strcmp(a, "--top-p") || !strcmp(a, "--seed") ||
                          !strcmp(a, "--max-new-tokens") || !strcmp(a, "--threads"))) {
            fprintf(stderr, "dpoc sample: %s needs a value\n", a);
            return 2;
        } else if (!strcmp(a, "--model")) {
            dir = v;
        } else if (!strcmp(a, "--adapter")) {
            adapter = v;
        } else if (!strcmp(a, "--prompt")) {
            prompt = v;
        } else if (!strcmp(a, "--temperature")) {
            bad = parse_num(a, v, 0, 1e6, 0, &temperature);
        } else if (!strcmp(a, "--top-k")) {
            bad = parse_num(a, v, 0, 1e9, 1, &top_k);
        } else if (!strcmp(a, "--top-p")) {
            bad = parse_num(a, v, 1e-9, 1, 0, &top_p);
        } else if (!strcmp(a, "--seed")) {
            bad = parse_num(a, v, 0, 9007199254740992.0, 1, &seed);
        } else if (!strcmp(a, "--max-new-tokens")) {
            bad = parse_num(a, v, 1, 1 << 24, 1, &max_new);
        } else if (!strcmp(a, "--threads")) {
            bad = parse_num(a, v, 0, 1024, 1, &threads);
        } else {
            fprintf(stderr, "dpoc sample: unknown option '%s' (dpoc sample --help lists them)\n", a);
            return 2;
        }
        if (bad) return 2;
        i += takes;
    }
    if (!dir) {
        fprintf(stderr, "dpoc sample: --model DIR is required\n");
        return 2;
    }
    sampler_run r = {.max_new = (int)max_new, .special = special, .seed = (uint64_t)seed};
    dp_err err;
    model_options mo = {.training = 0, .prefix_sharing = 1, .threads = (int)threads, .max_tokens = 1};
    int rc = tok_load(&r.tok, dir, &err);
    if (!rc) rc = model_load(&r.m, dir, &mo, &err);
    if (!rc && adapter) rc = model_lora_load(r.m, adapter, &err);
    if (!rc) {
        const model_config *c = model_get_config(r.m);
        if (tok_vocab_size(r.tok) > c->vocab)
            rc = dp_fail(&err, "%s: the tokenizer has %d ids but the model's vocabulary only %d",
                         dir, tok_vocab_size(r.tok), c->vocab);
        r.eos = tok_eos_id(r.tok) >= 0 ? tok_eos_id(r.tok) : c->eos_id;
        r.bos = tok_bos_id(r.tok) >= 0 ? tok_bos_id(r.tok) : c->bos_id;
        model_sampling sp = {(float)temperature, (int)top_k, (float)top_p};
        /* only ids the tokenizer can decode (the model's vocabulary may be
         * padded past them, as Qwen's is) */
        if (!rc) r.smp = model_sampler_new(tok_vocab_size(r.tok), &sp, r.seed, &err);
        if (!rc && !r.smp) rc = -1;
        if (!rc) r.out = malloc((size_t)r.max_new * sizeof *r.out);
        if (!rc && !r.out) rc = dp_fail(&err, "out of memory");
    }
    if (!rc) rc = prompt ? run_prompt(&r, prompt, 0, &err) : run_stdin(&r, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    free(r.out);
    model_sampler_free(r.smp);
    model_free(r.m);
    tok_free(r.tok);
    return rc ? 1 : 0;
}
