/* dpoc sft — stage zero: supervised fine-tuning on the responses of
 * data.train, to make a reference when none exists (the DPO paper's recipe:
 * fine-tune on the preferred completions, or on both when the reference
 * should produce either).
 *
 * Recipe: load config → tokenizer → tokenize every example of data.train
 * (and data.eval) with the dataset module's truncation, one example per
 * chosen response (sft.on: chosen) or per response (both) → build the model
 * from sft.init_config (random, seeded) or load sft.init, or the checkpoint
 * → for each optimizer step: pack a batch as units with no rejected side,
 * forward, token-mean NLL of the response tokens (the prompt gets no loss),
 * backward, clip, AdamW → metrics, eval, checkpoint → export
 * <sft.output>/model with the tokenizer files.
 *
 * Under mpirun the ranks split each batch (and the eval split) into
 * contiguous parts and step ZeRO-style (trainer_util's tu_shard_*); rank 0
 * writes metrics, checkpoints and the model. SIGTERM/SIGINT: a checkpoint
 * at the next step boundary, then exit 128 + signal. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "cli.h"
#include "dataset.h"
#include "dist.h"
#include "model.h"
#include "optim.h"
#include "stage_util.h"
#include "trainer_util.h"

/* Examples as token runs in one arena: prompt then response. */
typedef struct example {
    size_t off;
    int n_prompt, n_resp;
} example;

typedef struct examples {
    example *ex;
    size_t n, cap;
    int32_t *tokens;
    size_t n_tokens, cap_tokens;
    long bad;
} examples;

typedef struct sft {
    config *cfg;
    tokenizer *tok;
    ds_options dso;
    char tok_dir[4096];
    examples train, eval;
    char tag[48];               /* hash of the training examples */
    model *m;
    optim opt;                  /* this rank's slice of the trainable parameters */
    tu_shard sh;
    tu_state at;
    long total_steps, steps_per_epoch;
    int batch_size;
    size_t *order;
    int32_t *ids;
    int *np, *nc, *nr;
    float *logps, *dlogps;
    char out_dir[4096];
    FILE *metrics_file;
    double start;
    long start_tokens;          /* num_tokens when this process started (resume) */
    long start_step, responses; /* the step it started at; responses it trained on */
} sft;

/* ---- data ----------------------------------------------------------------- */

static int push(examples *e, const int32_t *prompt, int np, const int32_t *resp, int nr,
                dp_err *err) {
    if (e->n == e->cap) {
        size_t cap = e->cap ? 2 * e->cap : 256;
        example *x = realloc(e->ex, cap * sizeof *x);
        if (!x) return dp_fail(err, "out of memory");
        e->ex = x, e->cap = cap;
    }
    size_t need = e->n_tokens + (size_t)np + (size_t)nr;
    if (need > e->cap_tokens) {
        size_t cap = e->cap_tokens ? e->cap_tokens : 4096;
        while (cap < need) cap *= 2;
        int32_t *t = realloc(e->tokens, cap * sizeof *t);
        if (!t) return dp_fail(err, "out of memory");
        e->tokens = t, e->cap_tokens = cap;
    }
    e->ex[e->n++] = (example){e->n_tokens, np, nr};
    memcpy(e->tokens + e->n_tokens, prompt, (size_t)np * sizeof *prompt);
    memcpy(e->tokens + e->n_tokens + np, resp, (size_t)nr * sizeof *resp);
    e->n_tokens = need;
    return 0;
}

static void examples_free(examples *e) {
    free(e->ex);
    free(e->tokens);
}

/* Tokenizes every row of PATH into E: prompt + chosen, and with both also
 * prompt + rejected. Bad rows stop or are counted as data.on_bad_row says. */
static int load_split(sft *s, const char *path, examples *e, dp_err *err) {
    int both = !strcmp(cfg_str(s->cfg, "sft.on"), "both");
    int skip = !strcmp(cfg_str(s->cfg, "data.on_bad_row"), "skip");
    ds_reader *rd;
    if (ds_open(&rd, path, &s->dso, err)) return -1;
    int rc = 0;
    for (;;) {
        ds_row row;
        ds_bad why = DS_BAD_NONE;
        int got = ds_next(rd, &row, &why, err);
        if (got == 0) break;
        if (got < 0 || (got == 2 && !skip)) {
            rc = -1;
            break;
        }
        ds_tokens t;
        if (got == 1) got = ds_tokenize(s->tok, &s->dso, su_basename(path), &row, &t, &why, err);
        else got = 2;
        if (got < 0 || (got == 2 && !skip)) {
            rc = -1;
            break;
        }
        if (got == 2) {
            e->bad++;
            continue;
        }
        rc = push(e, t.prompt, t.n_prompt, t.chosen, t.n_chosen, err);
        if (!rc && both) rc = push(e, t.prompt, t.n_prompt, t.rejected, t.n_rejected, err);
        ds_tokens_free(&t);
        if (rc) break;
    }
    ds_close(rd);
    if (!rc && e->n == 0) rc = dp_fail(err, "%s: no usable examples", path);
    return rc;
}

/* A hex XXH64 of the examples: a checkpoint made from other data (or another
 * sft.on, or other truncation) is refused. */
static void examples_tag(const examples *e, char *out, size_t size) {
    XXH64_state_t *st = XXH64_createState();
    XXH64_reset(st, 0);
    for (size_t i = 0; i < e->n; i++) {
        int len[2] = {e->ex[i].n_prompt, e->ex[i].n_resp};
        XXH64_update(st, len, sizeof len);
        XXH64_update(st, e->tokens + e->ex[i].off, (size_t)(len[0] + len[1]) * sizeof(int32_t));
    }
    snprintf(out, size, "%016llx", (unsigned long long)XXH64_digest(st));
    XXH64_freeState(st);
}

/* ---- one batch ------------------------------------------------------------ */

/* Forward over examples IDX[0..n) of E (and, if backward, backward with the
 * derivative of the token mean of the NLL over a batch of BATCH_RESP response
 * tokens, of which these are a part). Adds Σ NLL and the response token count. */
static int run_batch(sft *s, const examples *e, const size_t *idx, int n, int backward,
                     double batch_resp, double *nll, long *n_resp, dp_err *err) {
    if (n == 0) return 0; /* a rank with no part of a short batch */
    size_t T = 0, R = 0;
    for (int i = 0; i < n; i++) {
        const example *x = &e->ex[idx[i]];
        size_t len = (size_t)(x->n_prompt + x->n_resp);
        memcpy(s->ids + T, e->tokens + x->off, len * sizeof *s->ids);
        T += len;
        R += (size_t)x->n_resp;
        s->np[i] = x->n_prompt, s->nc[i] = x->n_resp, s->nr[i] = 0;
    }
    model_batch b = {n, s->ids, s->np, s->nc, s->nr};
    if (model_forward(s->m, &b, s->logps, NULL, err)) return -1;
    for (size_t k = 0; k < R; k++) *nll -= s->logps[k];
    *n_resp += (long)R;
    s->at.num_tokens += (long)T;
    if (!backward) return 0;
    for (size_t k = 0; k < R; k++) s->dlogps[k] = (float)(-1.0 / batch_resp);
    return model_backward(s->m, s->dlogps, err);
}

/* ---- metrics -------------------------------------------------------------- */

static int write_line(sft *s, const char *line, dp_err *err) {
    if (dist_rank() != 0) return 0;
    if (fprintf(s->metrics_file, "%s\n", line) < 0 || fflush(s->metrics_file))
        return dp_fail(err, "%s/metrics.jsonl: write error: %s", s->out_dir, strerror(errno));
    return 0;
}

static int evaluate(sft *s, dp_err *err) {
    model_lora_dropout(s->m, 0, 0);
    double nll = 0;
    long n_resp = 0, saved = s->at.num_tokens;
    size_t *idx = malloc((size_t)s->batch_size * sizeof *idx);
    if (!idx) return dp_fail(err, "out of memory");
    int rc = 0;
    size_t part_lo, part_hi; /* this rank's part */
    tu_shard_part(&s->sh, s->eval.n, &part_lo, &part_hi);
    for (size_t lo = part_lo; !rc && lo < part_hi; lo += (size_t)s->batch_size) {
        int n = 0;
        while (n < s->batch_size && lo + (size_t)n < part_hi) idx[n] = lo + (size_t)n, n++;
        rc = run_batch(s, &s->eval, idx, n, 0, 1.0, &nll, &n_resp, err);
    }
    free(idx);
    s->at.num_tokens = saved;
    if (rc) return -1;
    double sums[2] = {nll, (double)n_resp};
    dist_allreduce_sum(sums, 2);
    nll = sums[0], n_resp = (long)sums[1];
    double loss = n_resp ? nll / (double)n_resp : 0.0;
    char line[256];
    snprintf(line, sizeof line, "{\"step\": %ld, \"eval_loss\": %.9g}", s->at.step, loss);
    su_log("step %ld/%ld  eval_loss %.4f", s->at.step, s->total_steps, loss);
    return write_line(s, line, err);
}

static int log_step(sft *s, double loss, double norm, double lr, dp_err *err) {
    if (dist_rank() != 0) return 0;
    double secs = su_now() - s->start;
    double tps = secs > 0 ? (double)(s->at.num_tokens - s->start_tokens) / secs : 0.0;
    char line[512];
    snprintf(line, sizeof line,
             "{\"step\": %ld, \"loss\": %.9g, \"grad_norm\": %.9g, \"learning_rate\": %.9g, "
             "\"epoch\": %.6g, \"num_tokens\": %ld, \"tokens_per_sec\": %.1f}",
             s->at.step, loss, norm, lr, (double)s->at.step / (double)s->steps_per_epoch,
             s->at.num_tokens, tps);
    char timing[80];
    su_log("step %ld/%ld  loss %.4f  grad_norm %.4g  lr %.3g  %.0f tok/s  %s", s->at.step,
           s->total_steps, loss, norm, lr, tps,
           tu_step_timing(timing, sizeof timing, s->start, s->at.step, s->start_step,
                          s->total_steps));
    return write_line(s, line, err);
}

/* ---- set-up --------------------------------------------------------------- */

static void dirname_of(const char *path, char *out, size_t size) {
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(out, size, ".");
    else if (slash == path) snprintf(out, size, "/");
    else snprintf(out, size, "%.*s", (int)(slash - path), path);
}

static int load_data(sft *s, dp_err *err) {
    config *c = s->cfg;
    const char *init_config = cfg_str(c, "sft.init_config"), *init = cfg_str(c, "sft.init");
    if (!!init_config[0] == !!init[0])
        return dp_fail(err, "sft: set exactly one of sft.init_config (a config.json: random "
                            "weights) and sft.init (a model directory to fine-tune)%s",
                       init[0] ? ", not both" : "");
    /* The tokenizer: reference.tokenizer, else the one beside the model. */
    char tok_path[4200];
    if (cfg_str(c, "reference.tokenizer")[0]) {
        snprintf(tok_path, sizeof tok_path, "%s", cfg_str(c, "reference.tokenizer"));
        dirname_of(tok_path, s->tok_dir, sizeof s->tok_dir);
    } else {
        if (init[0]) snprintf(s->tok_dir, sizeof s->tok_dir, "%s", init);
        else dirname_of(init_config, s->tok_dir, sizeof s->tok_dir);
        snprintf(tok_path, sizeof tok_path, "%s/tokenizer.json", s->tok_dir);
    }
    if (tok_load(&s->tok, tok_path, err)) return -1;
    if (su_dataset_options(c, s->tok, &s->dso, err)) return -1;
    if (load_split(s, cfg_str(c, "data.train"), &s->train, err)) return -1;
    if (cfg_str(c, "data.eval")[0] && load_split(s, cfg_str(c, "data.eval"), &s->eval, err))
        return -1;
    examples_tag(&s->train, s->tag, sizeof s->tag);
    return 0;
}

static int setup(sft *s, dp_err *err) {
    config *c = s->cfg;
    if (load_data(s, err)) return -1;
    s->batch_size = (int)cfg_int(c, "sft.batch_size");
    snprintf(s->out_dir, sizeof s->out_dir, "%s", cfg_str(c, "sft.output"));
    int rank0 = dist_rank() == 0;
    if (rank0 && su_mkdirs(s->out_dir, err)) return -1;
    s->steps_per_epoch = (long)((s->train.n + (size_t)s->batch_size - 1) / (size_t)s->batch_size);
    s->total_steps = cfg_int(c, "sft.max_steps");
    if (!s->total_steps) s->total_steps = s->steps_per_epoch * cfg_int(c, "sft.epochs");

    /* No example is longer than max_length (ds_tokenize's truncation). */
    model_options mo = {.training = 1,
                        .prefix_sharing = 1,
                        .threads = dist_threads((int)cfg_int(c, "sft.threads")),
                        .recompute = cfg_bool(c, "sft.recompute"),
                        .max_tokens = s->batch_size * (int)cfg_int(c, "data.max_length")};
    char ckpt[4200];
    int found = !strcmp(cfg_str(c, "sft.resume"), "auto") &&
                tu_checkpoint_find(s->out_dir, ckpt, sizeof ckpt);
    const char *init = cfg_str(c, "sft.init")[0] ? cfg_str(c, "sft.init") : NULL;
    char init_config[4200];
    snprintf(init_config, sizeof init_config, "%s", cfg_str(c, "sft.init_config"));
    if (init) snprintf(init_config, sizeof init_config, "%s/config.json", init);
    uint64_t seed = (uint64_t)cfg_int(c, "sft.seed");
    /* Resuming, rank 0 reads the checkpoint and sends the others its weights. */
    if (tu_lora_options(c, "sft", init_config, seed, &mo.lora, err) ||
        tu_load_policy(&s->m, init, init_config, seed, found && rank0 ? ckpt : NULL, &mo, err))
        return -1;
    int vocab = model_get_config(s->m)->vocab;
    if (tok_vocab_size(s->tok) > vocab)
        return dp_fail(err, "sft: the tokenizer has %d tokens, the model's vocab_size is %d",
                       tok_vocab_size(s->tok), vocab);

    optim_config oc;
    tu_optim_config(c, "sft", s->total_steps, &oc);
    size_t n_params;
    float *params = model_trainable(s->m, NULL, &n_params);
    if (tu_shard_init(&s->sh, n_params, err)) return -1;
    if (optim_init(&s->opt, &oc, s->sh.len, err)) return -1;
    if (!mo.lora.r && tu_exclude_norms_and_biases(&s->opt, s->m, s->sh.off, err)) return -1;
    if (found) {
        if (tu_checkpoint_load(ckpt, "examples", s->tag,
                               "use another sft.output or sft.resume=never", &s->sh, &s->at,
                               &s->opt, err))
            return -1;
        tu_shard_bcast_params(&s->sh, params);
        su_log("sft: resuming from %s at step %ld", ckpt, s->at.step);
        s->start_tokens = s->at.num_tokens;
        s->start_step = s->at.step;
    } else {
        snprintf(s->at.tag, sizeof s->at.tag, "%s", s->tag);
    }

    size_t cap = (size_t)mo.max_tokens;
    s->order = malloc(s->train.n * sizeof *s->order);
    s->ids = malloc(cap * sizeof *s->ids);
    s->logps = malloc(cap * sizeof *s->logps);
    s->dlogps = malloc(cap * sizeof *s->dlogps);
    s->np = malloc((size_t)s->batch_size * sizeof *s->np);
    s->nc = malloc((size_t)s->batch_size * sizeof *s->nc);
    s->nr = malloc((size_t)s->batch_size * sizeof *s->nr);
    if (!s->order || !s->ids || !s->logps || !s->dlogps || !s->np || !s->nc || !s->nr)
        return dp_fail(err, "out of memory");

    if (!rank0) return 0;
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", s->out_dir);
    if (su_truncate_metrics(path, found ? s->at.step : 0, err)) return -1;
    s->metrics_file = fopen(path, "a");
    if (!s->metrics_file) return dp_fail(err, "%s: cannot open: %s", path, strerror(errno));
    return 0;
}

static void teardown(sft *s) {
    if (s->metrics_file) fclose(s->metrics_file);
    free(s->order);
    free(s->ids);
    free(s->logps);
    free(s->dlogps);
    free(s->np);
    free(s->nc);
    free(s->nr);
    optim_free(&s->opt);
    tu_shard_free(&s->sh);
    model_free(s->m);
    examples_free(&s->train);
    examples_free(&s->eval);
    ds_options_free(&s->dso);
    tok_free(s->tok);
}

/* ---- the loop ------------------------------------------------------------- */

/* The signal that stopped the loop (0: none). */
static int stopped_by;

static int sft_loop(sft *s, dp_err *err) {
    config *c = s->cfg;
    long log_every = cfg_int(c, "sft.log_every"), eval_every = cfg_int(c, "sft.eval_every");
    long save_every = cfg_int(c, "sft.save_every");
    double max_norm = cfg_num(c, "sft.max_grad_norm");
    uint64_t seed = (uint64_t)cfg_int(c, "sft.seed");
    size_t n_params;
    float *grads, *params = model_trainable(s->m, &grads, &n_params);
    tu_state *at = &s->at;
    tu_stop_install();
    tu_epoch_order(s->order, s->train.n, 1, seed, at->epoch);
    int rc = 0;
    while (!rc && at->step < s->total_steps) {
        if (at->pos >= s->train.n) {
            at->epoch++;
            at->pos = 0;
            tu_epoch_order(s->order, s->train.n, 1, seed, at->epoch);
        }
        int n = (int)(s->train.n - at->pos < (size_t)s->batch_size ? s->train.n - at->pos
                                                                   : (size_t)s->batch_size);
        model_zero_grads(s->m);
        model_lora_dropout(s->m, 1, (uint64_t)at->step);
        double nll = 0;
        long n_resp = 0, batch_resp = 0, tokens_before = at->num_tokens;
        for (int i = 0; i < n; i++) batch_resp += s->train.ex[s->order[at->pos + (size_t)i]].n_resp;
        size_t part_lo, part_hi; /* this rank's part of the batch */
        tu_shard_part(&s->sh, (size_t)n, &part_lo, &part_hi);
        if ((rc = run_batch(s, &s->train, s->order + at->pos + part_lo, (int)(part_hi - part_lo),
                            1, (double)batch_resp, &nll, &n_resp, err)))
            break;
        double sums[2] = {nll, (double)(at->num_tokens - tokens_before)};
        dist_allreduce_sum(sums, 2);
        nll = sums[0], at->num_tokens = tokens_before + (long)sums[1];
        at->pos += (size_t)n;
        s->responses += n;
        double loss = nll / (double)batch_resp;
        double norm = tu_shard_reduce(&s->sh, grads);
        if (!isfinite(loss) || !isfinite(norm)) {
            rc = dp_fail(err, "step %ld: %s is not finite; stopping without saving (the last "
                              "checkpoint is kept)",
                         at->step + 1, isfinite(loss) ? "grad_norm" : "loss");
            break;
        }
        double lr = tu_shard_update(&s->sh, &s->opt, params, grads, norm, max_norm);
        at->step++;
        int last = at->step == s->total_steps;
        if (at->step % log_every == 0 || last) rc = log_step(s, loss, norm, lr, err);
        if (!rc && s->eval.n && ((eval_every && at->step % eval_every == 0) || last))
            rc = evaluate(s, err);
        int saved = 0;
        if (!rc && ((save_every && at->step % save_every == 0) || last))
            rc = tu_checkpoint_save(s->out_dir, s->m, &s->opt, &s->sh, at, "examples", err),
            saved = 1;
        int sig = rc || last ? 0 : tu_stop_signal();
        if (sig) {
            if (!saved && (rc = tu_checkpoint_save(s->out_dir, s->m, &s->opt, &s->sh, at,
                                                   "examples", err)))
                break;
            stopped_by = sig;
            rc = dp_fail(err, "sft: stopped by %s at step %ld; checkpoint saved in %s/checkpoint; "
                              "rerun the same command to resume",
                         tu_stop_name(sig), at->step, s->out_dir);
        }
    }
    return rc;
}

static int export_model(sft *s, dp_err *err) {
    const char *init = cfg_str(s->cfg, "sft.init");
    return tu_export(s->m, s->out_dir, init, cfg_bool(s->cfg, "sft.lora.merge"), 0, s->tok_dir,
                     err);
}

int cmd_sft(int argc, char **argv) {
    sft s;
    memset(&s, 0, sizeof s);
    int rc = cli_parse(argc, argv,
                       "Stage zero: supervised fine-tuning on the responses of data.train (sft.on:\n"
                       "chosen or both), from a config.json with random weights (sft.init_config)\n"
                       "or from a model directory (sft.init); writes <sft.output>/model, a Hugging\n"
                       "Face directory to use as reference.model.",
                       NULL, 0, &s.cfg);
    if (rc || !s.cfg) return rc;
    dp_err err;
    s.start = su_now();
    double loop_secs = 0, comm_secs = 0;
    rc = setup(&s, &err);
    if (!rc) {
        su_log("sft: %zu train / %zu eval examples (%s), %ld steps, %s%s, %s", s.train.n,
               s.eval.n, cfg_str(s.cfg, "sft.on"), s.total_steps,
               cfg_str(s.cfg, "sft.init")[0] ? "from " : "random weights for ",
               cfg_str(s.cfg, "sft.init")[0] ? cfg_str(s.cfg, "sft.init")
                                              : cfg_str(s.cfg, "sft.init_config"),
               su_blas_info());
        if (s.train.bad + s.eval.bad)
            su_log("sft: skipped %ld bad rows", s.train.bad + s.eval.bad);
        double loop_start = su_now(), comm_start = dist_comm_seconds();
        rc = sft_loop(&s, &err);
        loop_secs = su_now() - loop_start, comm_secs = dist_comm_seconds() - comm_start;
    }
    if (!rc && dist_rank() == 0) rc = export_model(&s, &err);
    double secs = su_now() - s.start;
    if (!rc && dist_size() > 1)
        su_log("sft: %d ranks: %.1f s of the steps' %.1f s in communication (%.1f%%), optimizer "
               "state %s per rank",
               dist_size(), comm_secs, loop_secs, loop_secs > 0 ? 100.0 * comm_secs / loop_secs : 0.0,
               su_bytes((double)optim_state_size(&s.opt)));
    if (!rc)
        tu_log_summary("sft", s.at.step - s.start_step, s.responses, "responses",
                       s.at.num_tokens - s.start_tokens, secs, s.out_dir);
    if (rc && (!stopped_by || dist_rank() == 0)) cli_error(err.msg);
    teardown(&s);
    cfg_free(s.cfg);
    return stopped_by ? 128 + stopped_by : rc ? 1 : 0;
}
