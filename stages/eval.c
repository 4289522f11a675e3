/* dpoc eval — how the reference and each trained policy do on the eval
 * split: preference figures from the cache, and figures from sampled text.
 *
 * Recipe: load config → the eval examples under this config's reference
 * fingerprint from the store → load the reference model and the judge →
 * for the reference, then each policy (<train.output>/model, each sweep
 * point's <train.output>/<name>/model — or its LoRA adapter on the base when
 * it has no merged model —, or --model DIR, or --adapter DIR on a base):
 *   1. preference: sigmoid DPO loss, reward accuracy and margin over the eval
 *      pairs with β = train.beta (the sweep point's), the policy's summed
 *      log-probs from a forward pass, the reference's from the store;
 *   2. generation: eval.samples completions of each of the first
 *      eval.max_prompts prompts (the prompt ids as cached), scored by the
 *      word-list judge; KL(policy‖reference) estimated as the mean over
 *      samples of Σ_t [log π(y_t|x,y<t) − log π_ref(y_t|x,y<t)] (both at
 *      temperature 1, whatever the sampling options);
 * → <run dir>/eval.json per policy and <train.output>/reference_eval.json,
 * and a table. Sample k of prompt i is drawn with stream i·samples + k of
 * eval.seed for every model, so models are compared on common randomness. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "judge.h"
#include "loss.h"
#include "model.h"
#include "stage_util.h"
#include "store.h"

typedef struct figures {
    char name[512];
    double loss, acc, margin, judge, kl;
    long n_pairs, n_prompts, n_samples;
} figures;

typedef struct evaluator {
    config *cfg;
    tokenizer *tok;
    judge *jd;
    model *ref;
    store_record *recs;   /* the eval split, store order */
    size_t n_recs, n_prompts;
    int max_tokens, eos;
    model_options mo;
    FILE *dump;           /* --dump-samples, or NULL */
    /* scratch */
    int32_t *ids, *gen;
    float *logps;
    int *np, *nc, *nr;
} evaluator;

/* ---- setup ---------------------------------------------------------------- */

static int load_eval_split(evaluator *ev, dp_err *err) {
    config *c = ev->cfg;
    char tok_path[4096];
    const char *path = cfg_str(c, "store");
    /* no store is said first: make precompute makes it (and with the
     * default pipeline the reference before it) */
    if (access(path, F_OK) != 0)
        return dp_fail(err, "%s: no such store; run `make precompute`", path);
    if (su_check_reference(c, err)) return -1;
    su_tokenizer_path(c, tok_path, sizeof tok_path);
    if (tok_load(&ev->tok, tok_path, err)) return -1;
    ds_options dso;
    fp_result fp = {0};
    int rc = su_dataset_options(c, ev->tok, &dso, err);
    if (!rc) rc = su_fingerprint(c, ev->tok, &dso, tok_path, &fp, err);
    ds_options_free(&dso);
    if (rc) return -1;
    store *st = NULL;
    char (*ids)[40] = NULL;
    size_t n = 0, missing = 0;
    rc = store_open(&st, path, STORE_READONLY, err);
    if (!rc) rc = store_list(st, "eval", fp.fingerprint, &ids, &n, &missing, err);
    if (!rc && n == 0)
        rc = dp_fail(err, "%s: no eval examples in the store; set data.eval and run "
                          "`make precompute`", path);
    if (!rc && missing)
        rc = dp_fail(err, "%s: %zu of %zu eval examples have no reference values for this "
                          "config; run `make precompute`", path, missing, n);
    if (!rc) {
        ev->recs = calloc(n, sizeof *ev->recs);
        if (!ev->recs) rc = dp_fail(err, "out of memory");
    }
    for (size_t i = 0; !rc && i < n; i++) {
        rc = store_get(st, ids[i], fp.fingerprint, &ev->recs[i], err);
        if (!rc) ev->n_recs++;
    }
    free(ids);
    if (st) store_close(st);
    fp_result_free(&fp);
    return rc;
}

/* ---- preference figures --------------------------------------------------- */

/* Sigmoid DPO over the eval pairs. pol == NULL: the reference itself, its
 * log-probs the store's (ρ = 0). */
static int preference(evaluator *ev, model *pol, double beta, figures *f, dp_err *err) {
    size_t n = ev->n_recs;
    loss_example *ex = calloc(n, sizeof *ex);
    loss_result *res = calloc(n, sizeof *res);
    int rc = ex && res ? 0 : dp_fail(err, "out of memory");
    for (size_t i = 0; !rc && i < n; i++) {
        const store_record *r = &ev->recs[i];
        ex[i].ref_c = r->ref_chosen_logp, ex[i].ref_r = r->ref_rejected_logp;
        ex[i].n_c = r->n_chosen, ex[i].n_r = r->n_rejected;
        ex[i].pi_c = ex[i].ref_c, ex[i].pi_r = ex[i].ref_r;
        if (!pol) continue;
        /* one example per forward: an eval split is small */
        int P = r->n_prompt, C = r->n_chosen, R = r->n_rejected;
        memcpy(ev->ids, r->prompt_ids, (size_t)P * sizeof *ev->ids);
        memcpy(ev->ids + P, r->chosen_ids, (size_t)C * sizeof *ev->ids);
        memcpy(ev->ids + P + C, r->rejected_ids, (size_t)R * sizeof *ev->ids);
        model_batch b = {1, ev->ids, &P, &C, &R};
        if ((rc = model_forward(pol, &b, ev->logps, NULL, err))) break;
        ex[i].pi_c = su_sum(ev->logps, C);
        ex[i].pi_r = su_sum(ev->logps + C, R);
    }
    if (!rc) {
        loss_config lc;
        loss_config_default(&lc);
        lc.n_terms = 1, lc.kind[0] = LOSS_SIGMOID, lc.weight[0] = 1.0, lc.beta = beta;
        f->loss = loss_batch(&lc, ex, (int)n, res);
        f->acc = f->margin = 0;
        for (size_t i = 0; i < n; i++) {
            f->acc += res[i].reward_c > res[i].reward_r;
            f->margin += res[i].reward_c - res[i].reward_r;
        }
        f->acc /= (double)n, f->margin /= (double)n;
        f->n_pairs = (long)n;
    }
    free(ex);
    free(res);
    return rc;
}

/* ---- generation figures --------------------------------------------------- */

/* Σ log p of gen[0..n) after prompt[0..P) under M. */
static int sequence_logp(evaluator *ev, model *m, const int32_t *prompt, int P, const int32_t *gen,
                         int n, double *out, dp_err *err) {
    memcpy(ev->ids, prompt, (size_t)P * sizeof *ev->ids);
    memcpy(ev->ids + P, gen, (size_t)n * sizeof *ev->ids);
    int zero = 0;
    model_batch b = {1, ev->ids, &P, &n, &zero};
    if (model_forward(m, &b, ev->logps, NULL, err)) return -1;
    *out = su_sum(ev->logps, n);
    return 0;
}

static int dump_sample(evaluator *ev, const char *name, size_t i, int k, const store_record *r,
                       const int32_t *gen, int n, const char *text, size_t len, int score,
                       double lp_pol, double lp_ref, dp_err *err) {
    json_t *pi = json_array(), *gi = json_array();
    for (int t = 0; t < r->n_prompt; t++) json_array_append_new(pi, json_integer(r->prompt_ids[t]));
    for (int t = 0; t < n; t++) json_array_append_new(gi, json_integer(gen[t]));
    json_t *o = json_pack("{s:s, s:I, s:i, s:o, s:o, s:s%, s:i, s:f, s:f}", "model", name,
                          "prompt_index", (json_int_t)i, "sample", k, "prompt_ids", pi, "ids", gi,
                          "completion", text, len, "judge", score, "logp_policy", lp_pol,
                          "logp_reference", lp_ref);
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(o);
    if (!s) return dp_fail(err, "out of memory");
    int bad = fprintf(ev->dump, "%s\n", s) < 0;
    free(s);
    return bad ? dp_fail(err, "--dump-samples: write error: %s", strerror(errno)) : 0;
}

/* Samples from POL (NULL: the reference) and scores the completions. */
static int generation(evaluator *ev, model *pol, figures *f, dp_err *err) {
    config *c = ev->cfg;
    model *m = pol ? pol : ev->ref;
    const model_config *mc = model_get_config(m);
    int samples = (int)cfg_int(c, "eval.samples"), max_new = (int)cfg_int(c, "eval.max_new_tokens");
    model_sampling sp = {(float)cfg_num(c, "eval.temperature"), (int)cfg_int(c, "eval.top_k"),
                         (float)cfg_num(c, "eval.top_p")};
    uint64_t seed = (uint64_t)cfg_int(c, "eval.seed");
    /* Only ids the tokenizer knows: Qwen's and others' embedding matrices
     * are padded past the tokenizer's vocabulary (151936 rows for 151665
     * ids), and a padding id cannot be decoded. */
    int vocab = tok_vocab_size(ev->tok) < mc->vocab ? tok_vocab_size(ev->tok) : mc->vocab;
    model_sampler *smp = model_sampler_new(vocab, &sp, seed, err);
    model_kv *kv = smp ? model_kv_new(m, ev->max_tokens, err) : NULL;
    int rc = kv ? 0 : -1;
    double judge_sum = 0, kl_sum = 0;
    long count = 0;
    for (size_t i = 0; !rc && i < ev->n_prompts; i++) {
        const store_record *r = &ev->recs[i];
        for (int k = 0; !rc && k < samples; k++) {
            model_sampler_seed(smp, model_stream_seed(seed, (uint64_t)i * (uint64_t)samples + (uint64_t)k));
            int n = 0;
            rc = model_generate(m, kv, smp, r->prompt_ids, r->n_prompt, max_new, ev->eos, ev->gen,
                                &n, err);
            if (rc) break;
            int n_text = n > 0 && ev->gen[n - 1] == ev->eos ? n - 1 : n;
            char *text = NULL;
            size_t len = 0;
            if ((rc = tok_decode(ev->tok, ev->gen, (size_t)n_text, &text, &len, err))) break;
            int score = judge_score(ev->jd, text, len);
            double lp_pol = 0, lp_ref = 0;
            if (pol) {
                rc = sequence_logp(ev, pol, r->prompt_ids, r->n_prompt, ev->gen, n, &lp_pol, err);
                if (!rc)
                    rc = sequence_logp(ev, ev->ref, r->prompt_ids, r->n_prompt, ev->gen, n, &lp_ref, err);
            } else if (ev->dump) {
                rc = sequence_logp(ev, ev->ref, r->prompt_ids, r->n_prompt, ev->gen, n, &lp_ref, err);
                lp_pol = lp_ref;
            }
            if (!rc && ev->dump) {
                char *clean = NULL;
                size_t clean_len = 0;
                rc = tok_utf8_replace(text, len, &clean, &clean_len, err);
                if (!rc)
                    rc = dump_sample(ev, f->name, i, k, r, ev->gen, n, clean, clean_len, score,
                                     lp_pol, lp_ref, err);
                free(clean);
            }
            free(text);
            judge_sum += score;
            kl_sum += lp_pol - lp_ref; /* exactly 0 for the reference */
            count++;
        }
    }
    model_kv_free(kv);
    model_sampler_free(smp);
    f->judge = count ? judge_sum / (double)count : 0;
    f->kl = count ? kl_sum / (double)count : 0;
    f->n_prompts = (long)ev->n_prompts;
    f->n_samples = count;
    return rc;
}

/* ---- output --------------------------------------------------------------- */

static int write_figures(const figures *f, const char *path, dp_err *err) {
    json_t *o = json_pack("{s:s, s:f, s:f, s:f, s:f, s:f, s:I, s:I}", "model", f->name,
                          "judge_score", f->judge, "kl", f->kl, "eval_loss", f->loss,
                          "eval_accuracy", f->acc, "eval_margin", f->margin,
                          "n_prompts", (json_int_t)f->n_prompts, "n_samples",
                          (json_int_t)f->n_samples);
    size_t flags = JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17);
    char *text = o ? json_dumps(o, flags) : NULL;
    json_decref(o);
    if (!text) return dp_fail(err, "out of memory");
    int rc = su_mkdirs_for(path, err);
    if (!rc) rc = su_write_file_atomic(path, text, strlen(text), err);
    free(text);
    return rc;
}

/* Evaluates one policy directory (NULL: the reference), with the LoRA
 * adapter directory ADAPTER on top when not NULL, into OUT_PATH. */
static int evaluate(evaluator *ev, const char *name, const char *dir, const char *adapter,
                    double beta, const char *out_path, figures *f, dp_err *err) {
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", name);
    model *pol = NULL;
    double t0 = su_now();
    if (dir && model_load(&pol, dir, &ev->mo, err)) return -1;
    if (pol && adapter && model_lora_load(pol, adapter, err)) {
        model_free(pol);
        return -1;
    }
    if (pol && model_get_config(pol)->vocab != model_get_config(ev->ref)->vocab) {
        model_free(pol);
        return dp_fail(err, "%s: vocabulary of %d, the reference's is %d", dir,
                       model_get_config(pol)->vocab, model_get_config(ev->ref)->vocab);
    }
    int rc = preference(ev, pol, beta, f, err);
    if (!rc) rc = generation(ev, pol, f, err);
    model_free(pol);
    if (!rc) rc = write_figures(f, out_path, err);
    if (!rc)
        su_log("eval: %s: loss %.4f  accuracy %.3f  margin %.4f  judge %.3f  KL %.4f  (%.1f s) -> %s",
               name, f->loss, f->acc, f->margin, f->judge, f->kl, su_now() - t0, out_path);
    return rc;
}

static int is_dir_with(const char *dir, const char *file) {
    char p[5000];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    return access(p, F_OK) == 0;
}
static int is_dir_with_config(const char *dir) { return is_dir_with(dir, "config.json"); }

/* Sweep point I's config (a clone with the point's values set) and name, as
 * dpoc sweep makes them: the last key varies fastest. */
static config *sweep_point(const config *c, long i, char *name, size_t size, dp_err *err) {
    int keys = cfg_sweep_keys(c), idx[64];
    long rest = i;
    for (int k = keys - 1; k >= 0; k--) {
        idx[k] = (int)(rest % cfg_sweep_len(c, k));
        rest /= cfg_sweep_len(c, k);
    }
    config *d = cfg_clone(c);
    if (!d) {
        dp_fail(err, "out of memory");
        return NULL;
    }
    size_t k0 = 0;
    name[0] = '\0';
    for (int k = 0; k < keys; k++) {
        char set[512];
        snprintf(set, sizeof set, "%s=%s", cfg_sweep_key(c, k), cfg_sweep_value(c, k, idx[k]));
        if (cfg_set(d, set, "sweep", err)) {
            cfg_free(d);
            return NULL;
        }
        const char *leaf = strrchr(cfg_sweep_key(c, k), '.');
        k0 += (size_t)snprintf(name + k0, size - k0, "%s%s=%s", k0 ? "," : "",
                               leaf ? leaf + 1 : cfg_sweep_key(c, k), cfg_sweep_value(c, k, idx[k]));
        if (k0 >= size) k0 = size - 1;
    }
    return d;
}

static void print_row(const figures *f) {
    printf("| %s | %.4f | %.3f | %.4f | %.3f | %.4f |\n", f->name, f->loss, f->acc, f->margin,
           f->judge, f->kl);
}

static int run(evaluator *ev, const char *model_dir, const char *adapter, const char *output,
               dp_err *err) {
    config *c = ev->cfg;
    if (!cfg_str(c, "data.eval")[0])
        return dp_fail(err, "data.eval: empty, so there are no eval examples to evaluate on; set "
                            "it and run `make precompute`");
    if (load_eval_split(ev, err)) return -1;
    long max_prompts = cfg_int(c, "eval.max_prompts");
    ev->n_prompts = ev->n_recs < (size_t)max_prompts ? ev->n_recs : (size_t)max_prompts;
    int max_new = (int)cfg_int(c, "eval.max_new_tokens");
    long need = 1;
    for (size_t i = 0; i < ev->n_recs; i++) {
        const store_record *r = &ev->recs[i];
        long pair = (long)r->n_prompt + r->n_chosen + r->n_rejected;
        long gen = i < ev->n_prompts ? (long)r->n_prompt + max_new : 0;
        if (pair > need) need = pair;
        if (gen > need) need = gen;
    }
    if (need > (1L << 24)) return dp_fail(err, "eval: sequences of %ld tokens are too long", need);
    ev->max_tokens = (int)need;
    ev->mo = (model_options){.training = 0, .prefix_sharing = 1,
                             .threads = (int)cfg_int(c, "train.threads"), .max_tokens = (int)need};
    const char *ref_dir = cfg_str(c, "reference.model");
    if (judge_load(&ev->jd, cfg_str(c, "eval.judge"), err)) return -1;
    if (model_load(&ev->ref, ref_dir, &ev->mo, err)) return -1;
    const model_config *rc_ = model_get_config(ev->ref);
    ev->eos = tok_eos_id(ev->tok) >= 0 ? tok_eos_id(ev->tok) : rc_->eos_id;
    if (!strcmp(rc_->model_type, "gpt2") && ev->max_tokens > rc_->max_pos) {
        /* generation stops when the context is full; pairs must fit */
        for (size_t i = 0; i < ev->n_recs; i++) {
            const store_record *r = &ev->recs[i];
            if (r->n_prompt + r->n_chosen + r->n_rejected > rc_->max_pos)
                return dp_fail(err, "eval example %s: %d tokens exceed the model's n_positions %d",
                               r->id, r->n_prompt + r->n_chosen + r->n_rejected, rc_->max_pos);
            if (r->n_prompt >= rc_->max_pos)
                return dp_fail(err, "eval example %s: the prompt's %d tokens leave no room to "
                                    "generate in n_positions %d", r->id, r->n_prompt, rc_->max_pos);
        }
        ev->max_tokens = rc_->max_pos;
    }
    ev->ids = malloc((size_t)need * sizeof *ev->ids);
    ev->gen = malloc((size_t)max_new * sizeof *ev->gen);
    ev->logps = malloc((size_t)need * sizeof *ev->logps);
    if (!ev->ids || !ev->gen || !ev->logps) return dp_fail(err, "out of memory");
    su_log("eval: %zu eval pairs, %zu prompts x %ld samples of <= %d tokens, reference %s",
           ev->n_recs, ev->n_prompts, cfg_int(c, "eval.samples"), max_new, ref_dir);
    if (cfg_num(c, "eval.temperature") != 1.0 || cfg_int(c, "eval.top_k") || cfg_num(c, "eval.top_p") < 1)
        su_log("eval: note: samples are not drawn from the policy itself (temperature, top_k or "
               "top_p set), so the KL figure is the log-ratio's mean over these samples, not "
               "KL(policy || reference)");

    const char *base = cfg_str(c, "train.output");
    figures *rows = calloc(2 + (size_t)(cfg_sweep_keys(c) ? 4096 : 0), sizeof *rows);
    if (!rows) return dp_fail(err, "out of memory");
    int n_rows = 0, rc = 0;
    char path[4800], dir[4800];
    snprintf(path, sizeof path, "%s/reference_eval.json", base);
    rc = evaluate(ev, "reference", NULL, NULL, cfg_num(c, "train.beta"), path, &rows[n_rows++], err);
    /* The base adapters train on (train.init, else the reference). */
    const char *lora_base = cfg_str(c, "train.init")[0] ? cfg_str(c, "train.init") : ref_dir;
    if (!rc && adapter && !model_dir) {
        if (output) snprintf(path, sizeof path, "%s", output);
        else snprintf(path, sizeof path, "%s/eval.json", adapter);
        rc = evaluate(ev, adapter, lora_base, adapter, cfg_num(c, "train.beta"), path,
                      &rows[n_rows++], err);
    } else if (!rc && model_dir) {
        if (output) snprintf(path, sizeof path, "%s", output);
        else if (!strcmp(su_basename(model_dir), "model")) /* <run dir>/model */
            snprintf(path, sizeof path, "%.*s%s", (int)(su_basename(model_dir) - model_dir),
                     model_dir, "eval.json");
        else
            snprintf(path, sizeof path, "%s/eval.json", model_dir);
        /* named as the run it came from when it is <run dir>/model */
        char name[512];
        const char *base_name = su_basename(model_dir);
        if (!strcmp(base_name, "model") && base_name > model_dir + 1) {
            int k = (int)(base_name - model_dir) - 1, j = k;
            while (j > 0 && model_dir[j - 1] != '/') j--;
            snprintf(name, sizeof name, "%.*s", k - j, model_dir + j);
        } else {
            snprintf(name, sizeof name, "%s", model_dir);
        }
        rc = evaluate(ev, name, model_dir, adapter, cfg_num(c, "train.beta"), path,
                      &rows[n_rows++], err);
    } else if (!rc) {
        snprintf(dir, sizeof dir, "%s/model", base);
        if (is_dir_with_config(dir)) {
            snprintf(path, sizeof path, "%s/eval.json", base);
            const char *name = su_basename(base);
            rc = evaluate(ev, name[0] ? name : "policy", dir, NULL, cfg_num(c, "train.beta"),
                          path, &rows[n_rows++], err);
        }
        int keys = cfg_sweep_keys(c);
        long combos = keys ? 1 : 0;
        for (int k = 0; k < keys; k++) combos *= cfg_sweep_len(c, k);
        if (keys > 64 || combos > 4096) rc = dp_fail(err, "sweep: too many points to evaluate");
        for (long i = 0; !rc && i < combos; i++) {
            char name[512];
            config *d = sweep_point(c, i, name, sizeof name, err);
            if (!d) {
                rc = -1;
                break;
            }
            snprintf(dir, sizeof dir, "%s/%s/model", base, name);
            snprintf(path, sizeof path, "%s/%s/eval.json", base, name);
            char lora_dir[4900];
            snprintf(lora_dir, sizeof lora_dir, "%s/%s/adapter", base, name);
            if (is_dir_with_config(dir)) {
                rc = evaluate(ev, name, dir, NULL, cfg_num(d, "train.beta"), path, &rows[n_rows++],
                              err);
            } else if (is_dir_with(lora_dir, "adapter_config.json")) {
                /* a LoRA point trained with lora.merge false */
                rc = evaluate(ev, name, lora_base, lora_dir, cfg_num(d, "train.beta"), path,
                              &rows[n_rows++], err);
            } else {
                su_log("eval: sweep point %s has no model (%s); not trained yet", name, dir);
            }
            cfg_free(d);
        }
        if (!rc && n_rows == 1)
            su_log("eval: no trained policy under %s; evaluated the reference only", base);
    }
    if (!rc) {
        printf("\n| model | eval loss | eval accuracy | eval margin | judge score | KL |\n");
        printf("|---|---|---|---|---|---|\n");
        for (int i = 0; i < n_rows; i++) print_row(&rows[i]);
    }
    free(rows);
    return rc;
}

enum { OPT_MODEL, OPT_ADAPTER, OPT_OUTPUT, OPT_DUMP, N_OPTS }; /* cmd_eval's options */

int cmd_eval(int argc, char **argv) {
    cli_option opt[N_OPTS] = {
        [OPT_MODEL] = {"--model", 1,
                       "evaluate this model directory as the policy (instead of the runs)", NULL},
        [OPT_ADAPTER] = {"--adapter", 1,
                         "evaluate this LoRA adapter directory (PEFT layout) on --model, or on "
                         "train.init / reference.model", NULL},
        [OPT_OUTPUT] = {"--output", 1,
                        "eval.json path for --model (default: beside DIR if it is .../model)", NULL},
        [OPT_DUMP] = {"--dump-samples", 1,
                      "write every sample as a JSON line (ids, text, judge, logps) to FILE", NULL},
    };
    static const char usage[] =
        "Evaluate the reference and the trained policies on the eval split: DPO\n"
        "loss, reward accuracy and margin from the cache, and the judge's mean\n"
        "score and KL(policy || reference) of sampled completions (eval.* keys).";
    config *c;
    int rc = cli_parse(argc, argv, usage, opt, N_OPTS, &c);
    if (rc || !c) return rc;
    const char *model_dir = opt[OPT_MODEL].value, *output = opt[OPT_OUTPUT].value,
               *dump = opt[OPT_DUMP].value, *adapter = opt[OPT_ADAPTER].value;
    if (output && !model_dir && !adapter) {
        fprintf(stderr, "dpoc eval: --output needs --model or --adapter\n");
        cfg_free(c);
        return 2;
    }
    evaluator ev;
    memset(&ev, 0, sizeof ev);
    ev.cfg = c;
    dp_err err;
    rc = 0;
    if (dump && !(ev.dump = fopen(dump, "w")))
        rc = dp_fail(&err, "%s: cannot open: %s", dump, strerror(errno));
    if (!rc) rc = run(&ev, model_dir, adapter, output, &err);
    if (ev.dump && fclose(ev.dump) && !rc)
        rc = dp_fail(&err, "%s: write error: %s", dump, strerror(errno));
    if (rc) cli_error(err.msg);
    for (size_t i = 0; i < ev.n_recs; i++) store_record_free(&ev.recs[i]);
    free(ev.recs);
    free(ev.ids);
    free(ev.gen);
    free(ev.logps);
    model_free(ev.ref);
    judge_free(ev.jd);
    tok_free(ev.tok);
    cfg_free(c);
    return rc ? 1 : 0;
}
