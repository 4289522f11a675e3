/* dpoc train — stage two: DPO training against the cached reference values;
 * the reference model is never loaded. dpoc sweep runs train over a grid.
 *
 * Recipe: load config → check the store holds this config's reference for
 * every example → load the policy → for each optimizer step, for each of
 * grad_accum micro-batches: fetch examples from the store, packed forward,
 * per-example sums (LD-DPO weights), loss, per-token derivatives, backward →
 * clip, optimizer step → metrics, eval, checkpoint → export.
 *
 * Under mpirun the ranks split each optimizer batch (and the eval split)
 * into contiguous parts, sum the metrics' partial sums, and step the
 * optimizer ZeRO-style (trainer_util's tu_shard_*); rank 0 writes metrics,
 * checkpoints and the model. SIGTERM/SIGINT: a checkpoint at the next step
 * boundary, then exit 128 + signal. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "dist.h"
#include "loss.h"
#include "model.h"
#include "optim.h"
#include "stage_util.h"
#include "store.h"
#include "trainer_util.h"

typedef struct metrics {
    double loss, reward_c, reward_r, acc, margin, logp_c, logp_r;
    double logit_c, logit_r, n_logit_c, n_logit_r;
    long n;
} metrics;

typedef struct trainer {
    config *cfg;
    store *st;
    model *pol;
    optim opt;                  /* this rank's slice of the trainable parameters */
    tu_shard sh;
    loss_config lc;
    fp_result fp;
    char (*train_ids)[40], (*eval_ids)[40];
    size_t n_train, n_eval;
    int batch_size, grad_accum, micro, has_sft;
    double ld_alpha;
    /* position */
    long step, total_steps, steps_per_epoch, epoch;
    size_t pos;                 /* next index into order[] within the epoch */
    long num_tokens, resumed_tokens;   /* tokens/s counts this run's tokens only */
    long resumed_step, pairs;          /* the step this run began at; pairs it trained */
    size_t *order;
    /* one micro-batch */
    store_record *recs;
    int32_t *ids;
    int *np, *nc, *nr;
    float *logps, *mean_logits, *dlogps;
    loss_example *ex;
    loss_result *res;
    /* outputs */
    char out_dir[4096];
    FILE *metrics_file;
    int64_t run_id;
    double start;
    metrics last_eval;
    int have_eval;
} trainer;

/* ---- one micro-batch ------------------------------------------------------ */

static void free_recs(trainer *t, int n) {
    for (int i = 0; i < n; i++) store_record_free(&t->recs[i]);
}

/* LD-DPO weight of response token k of a response whose pair's shorter side
 * has `shared` tokens. */
static double ld_weight(const trainer *t, int k, int shared) {
    return k < shared ? 1.0 : t->ld_alpha;
}

/* Forward (and, if backward, backward) over examples IDS[0..n), a slice of
 * an optimizer batch of BATCH_PAIRS pairs holding BATCH_SFT_TOKENS chosen
 * tokens, so that the slices' gradients sum to the whole batch's; adds the
 * loss and statistics into *m. */
static int micro_step(trainer *t, char (*ids)[40], int n, int backward, double batch_pairs,
                      double batch_sft_tokens, metrics *m, dp_err *err) {
    size_t T = 0;
    for (int i = 0; i < n; i++) {
        if (store_get(t->st, ids[i], t->fp.fingerprint, &t->recs[i], err)) {
            free_recs(t, i);
            return -1;
        }
        store_record *r = &t->recs[i];
        memcpy(t->ids + T, r->prompt_ids, (size_t)r->n_prompt * sizeof(int32_t));
        T += (size_t)r->n_prompt;
        memcpy(t->ids + T, r->chosen_ids, (size_t)r->n_chosen * sizeof(int32_t));
        T += (size_t)r->n_chosen;
        memcpy(t->ids + T, r->rejected_ids, (size_t)r->n_rejected * sizeof(int32_t));
        T += (size_t)r->n_rejected;
        t->np[i] = r->n_prompt, t->nc[i] = r->n_chosen, t->nr[i] = r->n_rejected;
    }
    model_batch b = {n, t->ids, t->np, t->nc, t->nr};
    int rc = model_forward(t->pol, &b, t->logps, t->mean_logits, err);
    if (rc) {
        free_recs(t, n);
        return -1;
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        store_record *r = &t->recs[i];
        int shared = r->n_chosen < r->n_rejected ? r->n_chosen : r->n_rejected;
        loss_example *e = &t->ex[i];
        memset(e, 0, sizeof *e);
        const float *lc = t->logps + off, *lr = lc + r->n_chosen;
        for (int k = 0; k < r->n_chosen; k++) {
            double w = ld_weight(t, k, shared);
            e->pi_c += w * lc[k];
            e->ref_c += w * r->chosen_token_logps[k];
            e->nll_c -= lc[k];
            m->logit_c += t->mean_logits[off + (size_t)k];
        }
        for (int k = 0; k < r->n_rejected; k++) {
            double w = ld_weight(t, k, shared);
            e->pi_r += w * lr[k];
            e->ref_r += w * r->rejected_token_logps[k];
            m->logit_r += t->mean_logits[off + (size_t)r->n_chosen + (size_t)k];
        }
        if (t->ld_alpha == 1.0) e->ref_c = r->ref_chosen_logp, e->ref_r = r->ref_rejected_logp;
        e->n_c = r->n_chosen, e->n_r = r->n_rejected, e->n_nll_c = r->n_chosen;
        m->n_logit_c += r->n_chosen;
        m->n_logit_r += r->n_rejected;
        off += (size_t)(r->n_chosen + r->n_rejected);
        t->num_tokens += r->n_prompt + r->n_chosen + r->n_rejected;
    }
    m->loss += loss_batch_slice(&t->lc, t->ex, n, batch_pairs, batch_sft_tokens, t->res);
    off = 0;
    for (int i = 0; i < n; i++) {
        const store_record *r = &t->recs[i];
        const loss_result *res = &t->res[i];
        int shared = r->n_chosen < r->n_rejected ? r->n_chosen : r->n_rejected;
        m->reward_c += res->reward_c;
        m->reward_r += res->reward_r;
        m->acc += res->reward_c > res->reward_r;
        m->margin += res->reward_c - res->reward_r;
        m->logp_c += t->ex[i].pi_c;
        m->logp_r += t->ex[i].pi_r;
        m->n++;
        for (int k = 0; k < r->n_chosen; k++)
            t->dlogps[off + (size_t)k] = (float)(res->d_pi_c * ld_weight(t, k, shared) - res->d_nll_c);
        off += (size_t)r->n_chosen;
        for (int k = 0; k < r->n_rejected; k++)
            t->dlogps[off + (size_t)k] = (float)(res->d_pi_r * ld_weight(t, k, shared));
        off += (size_t)r->n_rejected;
    }
    free_recs(t, n);
    if (backward) return model_backward(t->pol, t->dlogps, err);
    return 0;
}

/* Σ chosen tokens over IDS[0..n): the sft term is a token mean over the
 * whole batch, so every slice needs the batch's count. */
static int count_chosen(trainer *t, char (*ids)[40], size_t n, double *out, dp_err *err) {
    *out = 0;
    for (size_t i = 0; i < n; i++) {
        store_record r;
        if (store_get(t->st, ids[i], t->fp.fingerprint, &r, err)) return -1;
        *out += r.n_chosen;
        store_record_free(&r);
    }
    return 0;
}

/* ---- metrics -------------------------------------------------------------- */

/* Every rank's partial sums into *m and *tokens (tokens this step). */
static void reduce_metrics(metrics *m, long *tokens) {
    if (dist_size() == 1) return;
    double v[13] = {m->loss, m->reward_c, m->reward_r, m->acc, m->margin, m->logp_c,
                    m->logp_r, m->logit_c, m->logit_r, m->n_logit_c, m->n_logit_r,
                    (double)m->n, (double)*tokens};
    dist_allreduce_sum(v, 13);
    *m = (metrics){v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], (long)v[11]};
    *tokens = (long)v[12];
}

static int write_metrics(trainer *t, const metrics *m, const char *prefix, double grad_norm,
                         double lr, dp_err *err) {
    if (dist_rank() != 0) return 0;
    double n = m->n ? (double)m->n : 1.0;
    double secs = su_now() - t->start;
    char line[2048];
    int k = snprintf(line, sizeof line,
                     "{\"step\": %ld, \"%sloss\": %.9g, \"%srewards/chosen\": %.9g, "
                     "\"%srewards/rejected\": %.9g, \"%srewards/accuracies\": %.9g, "
                     "\"%srewards/margins\": %.9g, \"%slogps/chosen\": %.9g, "
                     "\"%slogps/rejected\": %.9g, \"%slogits/chosen\": %.9g, "
                     "\"%slogits/rejected\": %.9g",
                     t->step, prefix, m->loss, prefix, m->reward_c / n,
                     prefix, m->reward_r / n, prefix, m->acc / n, prefix, m->margin / n, prefix,
                     m->logp_c / n, prefix, m->logp_r / n, prefix,
                     m->n_logit_c ? m->logit_c / m->n_logit_c : 0.0, prefix,
                     m->n_logit_r ? m->logit_r / m->n_logit_r : 0.0);
    if (!prefix[0])
        k += snprintf(line + k, sizeof line - (size_t)k,
                      ", \"grad_norm\": %.9g, \"learning_rate\": %.9g, \"epoch\": %.6g, "
                      "\"num_tokens\": %ld, \"tokens_per_sec\": %.1f",
                      grad_norm, lr,
                      t->steps_per_epoch ? (double)t->step / (double)t->steps_per_epoch : 0.0,
                      t->num_tokens, secs > 0 ? (double)(t->num_tokens - t->resumed_tokens) / secs : 0.0);
    snprintf(line + k, sizeof line - (size_t)k, "}");
    if (fprintf(t->metrics_file, "%s\n", line) < 0 || fflush(t->metrics_file))
        return dp_fail(err, "%s/metrics.jsonl: write error: %s", t->out_dir, strerror(errno));
    if (store_put_metrics(t->st, t->run_id, t->step, line, err)) return -1;
    if (prefix[0]) {
        su_log("step %ld/%ld  eval_loss %.4f  eval_acc %.3f  eval_margin %.4f", t->step,
               t->total_steps, m->loss, m->acc / n, m->margin / n);
    } else {
        char timing[80];
        su_log("step %ld/%ld  loss %.4f  acc %.3f  margin %.4f  grad_norm %.4g  lr %.3g  %.0f tok/s  %s",
               t->step, t->total_steps, m->loss, m->acc / n, m->margin / n, grad_norm, lr,
               secs > 0 ? (double)(t->num_tokens - t->resumed_tokens) / secs : 0.0,
               tu_step_timing(timing, sizeof timing, t->start, t->step, t->resumed_step,
                              t->total_steps));
    }
    return 0;
}

static int evaluate(trainer *t, dp_err *err) {
    model_lora_dropout(t->pol, 0, 0);
    metrics m;
    memset(&m, 0, sizeof m);
    long saved_tokens = t->num_tokens;
    /* the whole eval split is one batch: its loss is the mean over it */
    double sft_tokens = 0;
    if (t->has_sft && count_chosen(t, t->eval_ids, t->n_eval, &sft_tokens, err)) return -1;
    size_t lo, hi; /* this rank's part */
    tu_shard_part(&t->sh, t->n_eval, &lo, &hi);
    for (size_t i = lo; i < hi; i += (size_t)t->micro) {
        int n = (int)(hi - i < (size_t)t->micro ? hi - i : (size_t)t->micro);
        if (micro_step(t, t->eval_ids + i, n, 0, (double)t->n_eval, sft_tokens, &m, err))
            return -1;
    }
    long ignored = 0;
    reduce_metrics(&m, &ignored);
    t->num_tokens = saved_tokens;
    t->last_eval = m;
    t->have_eval = 1;
    return write_metrics(t, &m, "eval_", 0, 0, err);
}

/* ---- set-up --------------------------------------------------------------- */

static int loss_setup(trainer *t, dp_err *err) {
    config *c = t->cfg;
    loss_config *lc = &t->lc;
    memset(lc, 0, sizeof *lc);
    int n = cfg_list_len(c, "train.loss"), nw = cfg_list_len(c, "train.loss_weights");
    if (nw && nw != n)
        return dp_fail(err, "train.loss_weights: expected %d weights (one per loss), got %d", n, nw);
    if (n + (cfg_num(c, "train.sft_weight") > 0) > LOSS_MAX_TERMS)
        return dp_fail(err, "train.loss: at most %d terms", LOSS_MAX_TERMS);
    for (int i = 0; i < n; i++) {
        if (loss_parse(cfg_list_str(c, "train.loss", i), &lc->kind[i], err)) return -1;
        lc->weight[i] = nw ? cfg_list_num(c, "train.loss_weights", i) : 1.0;
    }
    lc->n_terms = n;
    if (cfg_num(c, "train.sft_weight") > 0) {
        lc->kind[lc->n_terms] = LOSS_SFT;
        lc->weight[lc->n_terms++] = cfg_num(c, "train.sft_weight");
    }
    for (int i = 0; i < lc->n_terms; i++) t->has_sft |= lc->kind[i] == LOSS_SFT;
    lc->beta = cfg_num(c, "train.beta");
    lc->label_smoothing = cfg_num(c, "train.label_smoothing");
    lc->simpo_gamma = cfg_num(c, "train.simpo_gamma");
    lc->discopop_tau = cfg_num(c, "train.discopop_tau");
    return loss_validate(lc, err);
}

/* Refuses a store that lacks this config's reference values, naming what
 * differs or what is missing. */
static int check_store(trainer *t, dp_err *err) {
    const char *store_path = cfg_str(t->cfg, "store");
    size_t missing = 0;
    if (store_list(t->st, "train", t->fp.fingerprint, &t->train_ids, &t->n_train, &missing, err))
        return -1;
    char *have = NULL;
    if (store_get_reference(t->st, t->fp.fingerprint, &have, err)) return -1;
    if (!have) {
        char (*fps)[STORE_FP_MAX] = NULL;
        size_t n = 0;
        if (store_list_references(t->st, &fps, &n, err)) return -1;
        char why[600] = "";
        if (n) {
            char *theirs = NULL;
            if (store_get_reference(t->st, fps[n - 1], &theirs, err)) {
                free(fps);
                return -1;
            }
            fp_explain_difference(t->fp.description, theirs ? theirs : "{}", why, sizeof why);
            free(theirs);
        }
        free(fps);
        if (n)
            return dp_fail(err, "%s: no reference values for this config (differs from the store's "
                                "reference in: %s); run `make precompute`",
                           store_path, why);
        return dp_fail(err, "%s: the store holds no reference values; run `make precompute`",
                       store_path);
    }
    free(have);
    if (t->n_train == 0)
        return dp_fail(err, "%s: no training examples in the store; run `make precompute`",
                       store_path);
    if (missing)
        return dp_fail(err, "%s: %zu of %zu training examples have no reference values for this "
                            "config; run `make precompute`",
                       store_path, missing, t->n_train);
    if (cfg_str(t->cfg, "data.eval")[0]) {
        if (store_list(t->st, "eval", t->fp.fingerprint, &t->eval_ids, &t->n_eval, &missing, err))
            return -1;
        if (missing)
            return dp_fail(err, "%s: %zu of %zu eval examples have no reference values for this "
                                "config; run `make precompute`",
                           store_path, missing, t->n_eval);
    }
    return 0;
}

static int setup(trainer *t, dp_err *err) {
    config *c = t->cfg;
    t->batch_size = (int)cfg_int(c, "train.batch_size");
    t->grad_accum = (int)cfg_int(c, "train.grad_accum");
    if (t->batch_size % t->grad_accum)
        return dp_fail(err, "train.batch_size (%d) must be a multiple of train.grad_accum (%d)",
                       t->batch_size, t->grad_accum);
    t->micro = t->batch_size / t->grad_accum;
    t->ld_alpha = cfg_num(c, "train.ld_alpha");
    if (loss_setup(t, err)) return -1;
    /* No store yet is the first thing to say: make precompute makes it, and
     * with the default pipeline the reference before it. */
    if (access(cfg_str(c, "store"), F_OK) != 0)
        return dp_fail(err, "%s: no such store; run `make precompute`", cfg_str(c, "store"));
    /* The fingerprint needs the tokenizer's BOS/EOS policy and files, not
     * the reference model's weights in memory. */
    if (su_check_reference(c, err)) return -1;
    char tok_path[4096];
    su_tokenizer_path(c, tok_path, sizeof tok_path);
    tokenizer *tok;
    if (tok_load(&tok, tok_path, err)) return -1;
    ds_options dso;
    int rc = su_dataset_options(c, tok, &dso, err);
    if (!rc) rc = su_fingerprint(c, tok, &dso, tok_path, &t->fp, err);
    ds_options_free(&dso);
    tok_free(tok);
    if (rc) return -1;
    /* rank 0 writes the run and its metrics; the others only read */
    int rank0 = dist_rank() == 0;
    if (store_open(&t->st, cfg_str(c, "store"), rank0 ? STORE_WRITE : STORE_READONLY, err))
        return -1;
    if (check_store(t, err)) return -1;

    snprintf(t->out_dir, sizeof t->out_dir, "%s", cfg_str(c, "train.output"));
    if (rank0 && su_mkdirs(t->out_dir, err)) return -1;
    t->steps_per_epoch = (long)((t->n_train + (size_t)t->batch_size - 1) / (size_t)t->batch_size);
    t->total_steps = cfg_int(c, "train.max_steps");
    if (!t->total_steps) t->total_steps = t->steps_per_epoch * cfg_int(c, "train.epochs");

    optim_config oc;
    tu_optim_config(c, "train", t->total_steps, &oc);
    oc.kind = !strcmp(cfg_str(c, "train.optimizer"), "sgd") ? OPTIM_SGD : OPTIM_ADAMW;
    oc.beta1 = cfg_num(c, "train.adam_beta1");
    oc.beta2 = cfg_num(c, "train.adam_beta2");
    oc.eps = cfg_num(c, "train.adam_eps");
    oc.momentum = cfg_num(c, "train.momentum");

    /* Resume from the checkpoint, or start from train.init. */
    char ckpt[4200];
    int found = !strcmp(cfg_str(c, "train.resume"), "auto") &&
                tu_checkpoint_find(t->out_dir, ckpt, sizeof ckpt);
    const char *init = cfg_str(c, "train.init")[0] ? cfg_str(c, "train.init")
                                                   : cfg_str(c, "reference.model");
    long max_len = cfg_int(c, "data.max_length");
    model_options mo = {.training = 1,
                        .prefix_sharing = cfg_bool(c, "train.prefix_sharing"),
                        .threads = dist_threads((int)cfg_int(c, "train.threads")),
                        .recompute = cfg_bool(c, "train.recompute"),
                        .max_tokens = (int)((long)t->micro * (2 * max_len + 2))};
    char init_config[4200];
    snprintf(init_config, sizeof init_config, "%s/config.json", init);
    if (tu_lora_options(c, "train", init_config, (uint64_t)cfg_int(c, "train.seed"), &mo.lora, err))
        return -1;
    int stream = 0;
    if (tu_plan_budget(c, "train", init, &t->grad_accum, t->batch_size, 2 * max_len + 2, &mo,
                       &stream, err))
        return -1;
    t->micro = t->batch_size / t->grad_accum;
    /* Resuming, rank 0 reads the checkpoint and sends the others its weights. */
    if (tu_load_policy(&t->pol, init, NULL, 0, found && rank0 ? ckpt : NULL, &mo, err)) return -1;
    model_stream(t->pol, stream || cfg_bool(c, "memory.stream"));
    size_t n_params;
    float *params = model_trainable(t->pol, NULL, &n_params);
    if (tu_shard_init(&t->sh, n_params, err)) return -1;
    if (optim_init(&t->opt, &oc, t->sh.len, err)) return -1;
    /* Adapters are matrices: weight decay applies to all of them. */
    if (!mo.lora.r && tu_exclude_norms_and_biases(&t->opt, t->pol, t->sh.off, err)) return -1;
    if (found) {
        tu_state st;
        if (tu_checkpoint_load(ckpt, "reference", t->fp.fingerprint,
                               "use another train.output or train.resume=never", &t->sh, &st,
                               &t->opt, err))
            return -1;
        tu_shard_bcast_params(&t->sh, params);
        t->step = st.step, t->epoch = st.epoch, t->pos = st.pos, t->num_tokens = st.num_tokens;
        t->resumed_tokens = st.num_tokens;
        t->resumed_step = st.step;
        su_log("train: resuming from %s at step %ld", ckpt, t->step);
    }

    size_t cap = (size_t)mo.max_tokens;
    t->order = malloc((t->n_train ? t->n_train : 1) * sizeof *t->order);
    t->recs = calloc((size_t)t->micro, sizeof *t->recs);
    t->ids = malloc(cap * sizeof *t->ids);
    t->np = malloc((size_t)t->micro * sizeof *t->np);
    t->nc = malloc((size_t)t->micro * sizeof *t->nc);
    t->nr = malloc((size_t)t->micro * sizeof *t->nr);
    t->logps = malloc(cap * sizeof *t->logps);
    t->mean_logits = malloc(cap * sizeof *t->mean_logits);
    t->dlogps = malloc(cap * sizeof *t->dlogps);
    t->ex = malloc((size_t)t->micro * sizeof *t->ex);
    t->res = malloc((size_t)t->micro * sizeof *t->res);
    if (!t->order || !t->recs || !t->ids || !t->np || !t->nc || !t->nr || !t->logps ||
        !t->mean_logits || !t->dlogps || !t->ex || !t->res)
        return dp_fail(err, "out of memory");

    if (!rank0) return 0;
    /* metrics.jsonl keeps the lines up to the resumed step. */
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", t->out_dir);
    if (su_truncate_metrics(path, found ? t->step : 0, err)) return -1;
    t->metrics_file = fopen(path, "a");
    if (!t->metrics_file) return dp_fail(err, "%s: cannot open: %s", path, strerror(errno));
    char *yaml = cfg_to_yaml(c);
    if (!yaml) return dp_fail(err, "out of memory");
    rc = store_put_run(t->st, t->out_dir, yaml, &t->run_id, err);
    free(yaml);
    return rc;
}

static void teardown(trainer *t) {
    if (t->metrics_file) fclose(t->metrics_file);
    free(t->order);
    free(t->recs);
    free(t->ids);
    free(t->np);
    free(t->nc);
    free(t->nr);
    free(t->logps);
    free(t->mean_logits);
    free(t->dlogps);
    free(t->ex);
    free(t->res);
    free(t->train_ids);
    free(t->eval_ids);
    optim_free(&t->opt);
    tu_shard_free(&t->sh);
    model_free(t->pol);
    if (t->st) store_close(t->st);
    fp_result_free(&t->fp);
}

/* ---- the loop ------------------------------------------------------------- */

static void epoch_order(trainer *t) {
    tu_epoch_order(t->order, t->n_train, cfg_bool(t->cfg, "train.shuffle"),
                   (uint64_t)cfg_int(t->cfg, "train.seed"), t->epoch);
}

static int save_checkpoint(trainer *t, dp_err *err) {
    tu_state st = {.step = t->step, .epoch = t->epoch, .num_tokens = t->num_tokens, .pos = t->pos};
    snprintf(st.tag, sizeof st.tag, "%s", t->fp.fingerprint);
    return tu_checkpoint_save(t->out_dir, t->pol, &t->opt, &t->sh, &st, "reference", err);
}

/* The signal that stopped the last training (0: none). */
static int stopped_by;

static int train_loop(trainer *t, dp_err *err) {
    config *c = t->cfg;
    long log_every = cfg_int(c, "train.log_every"), eval_every = cfg_int(c, "train.eval_every");
    long save_every = cfg_int(c, "train.save_every");
    double max_norm = cfg_num(c, "train.max_grad_norm");
    size_t n_params;
    float *grads, *params = model_trainable(t->pol, &grads, &n_params);
    tu_stop_install();
    char (*batch)[40] = malloc((size_t)t->batch_size * sizeof *batch);
    if (!batch) return dp_fail(err, "out of memory");
    epoch_order(t);
    int rc = 0;
    while (!rc && t->step < t->total_steps) {
        if (t->pos >= t->n_train) {
            t->epoch++;
            t->pos = 0;
            epoch_order(t);
        }
        int n = 0;
        while (n < t->batch_size && t->pos < t->n_train)
            memcpy(batch[n++], t->train_ids[t->order[t->pos++]], 40);
        double sft_tokens = 0;
        if (t->has_sft && (rc = count_chosen(t, batch, (size_t)n, &sft_tokens, err))) break;
        model_zero_grads(t->pol);
        metrics m;
        memset(&m, 0, sizeof m);
        /* this rank's part of the batch, in micro-batches from its start
         * (with grad_accum a multiple of the ranks, one process's own) */
        size_t part_lo, part_hi;
        tu_shard_part(&t->sh, (size_t)n, &part_lo, &part_hi);
        long tokens_before = t->num_tokens;
        for (int lo = (int)part_lo; lo < (int)part_hi && !rc; lo += t->micro) {
            int k = (int)part_hi - lo < t->micro ? (int)part_hi - lo : t->micro;
            /* adapter dropout: masks fixed by (step, micro-batch), so a
             * resumed run draws the ones it would have */
            model_lora_dropout(t->pol, 1, (uint64_t)t->step << 20 | (uint64_t)lo);
            rc = micro_step(t, batch + lo, k, 1, (double)n, sft_tokens, &m, err);
        }
        if (rc) break;
        long step_tokens = t->num_tokens - tokens_before;
        reduce_metrics(&m, &step_tokens);
        t->num_tokens = tokens_before + step_tokens;
        double norm = tu_shard_reduce(&t->sh, grads);
        if (!isfinite(m.loss) || !isfinite(norm)) {
            rc = dp_fail(err, "step %ld: %s is %s; stopping without saving (the last checkpoint "
                              "is kept)",
                         t->step + 1, isfinite(m.loss) ? "grad_norm" : "loss",
                         isnan(isfinite(m.loss) ? norm : m.loss) ? "NaN" : "infinite");
            break;
        }
        double lr = tu_shard_update(&t->sh, &t->opt, params, grads, norm, max_norm);
        t->step++;
        t->pairs += n;
        if (t->step % log_every == 0 || t->step == t->total_steps)
            rc = write_metrics(t, &m, "", norm, lr, err);
        if (!rc && t->n_eval && ((eval_every && t->step % eval_every == 0) || t->step == t->total_steps))
            rc = evaluate(t, err);
        int saved = 0;
        if (!rc && ((save_every && t->step % save_every == 0) || t->step == t->total_steps))
            rc = save_checkpoint(t, err), saved = 1;
        int sig = rc || t->step == t->total_steps ? 0 : tu_stop_signal();
        if (sig) {
            if (!saved && (rc = save_checkpoint(t, err))) break;
            stopped_by = sig;
            rc = dp_fail(err, "train: stopped by %s at step %ld; checkpoint saved in %s/checkpoint; "
                              "rerun the same command to resume",
                         tu_stop_name(sig), t->step, t->out_dir);
        }
    }
    free(batch);
    return rc;
}

static int export_model(trainer *t, dp_err *err) {
    const config *c = t->cfg;
    const char *base = cfg_str(c, "train.init")[0] ? cfg_str(c, "train.init")
                                                   : cfg_str(c, "reference.model");
    return tu_export(t->pol, t->out_dir, base, cfg_bool(c, "train.lora.merge"),
                     cfg_bool(c, "train.export_bf16"), cfg_str(c, "reference.model"), err);
}

/* Runs one training with config C (owned by the caller); *eval receives
 * the final eval metrics. Returns 0 or -1 with err. */
static int train_run(config *c, metrics *eval, int *have_eval, double *seconds, dp_err *err) {
    trainer t;
    memset(&t, 0, sizeof t);
    t.cfg = c;
    t.start = su_now();
    double loop_secs = 0, comm_secs = 0;
    int rc = setup(&t, err);
    if (!rc) {
        su_log("train: %zu train / %zu eval examples, %ld steps, policy from %s, %s", t.n_train,
               t.n_eval, t.total_steps,
               cfg_str(c, "train.init")[0] ? cfg_str(c, "train.init") : cfg_str(c, "reference.model"),
               su_blas_info());
        double loop_start = su_now(), comm_start = dist_comm_seconds();
        rc = train_loop(&t, err);
        loop_secs = su_now() - loop_start, comm_secs = dist_comm_seconds() - comm_start;
    }
    if (!rc && t.step == t.total_steps && t.n_eval && !t.have_eval) rc = evaluate(&t, err);
    if (!rc && dist_rank() == 0) rc = export_model(&t, err);
    double secs = su_now() - t.start;
    if (!rc && dist_size() > 1)
        su_log("train: %d ranks: %.1f s of the steps' %.1f s in communication (%.1f%%), optimizer "
               "state %s per rank",
               dist_size(), comm_secs, loop_secs, loop_secs > 0 ? 100.0 * comm_secs / loop_secs : 0.0,
               su_bytes((double)optim_state_size(&t.opt)));
    if (!rc && t.pol) su_log_weights_read("train", t.pol, t.num_tokens - t.resumed_tokens);
    if (!rc)
        tu_log_summary("train", t.step - t.resumed_step, t.pairs, "pairs",
                       t.num_tokens - t.resumed_tokens, secs, t.out_dir);
    if (eval) *eval = t.last_eval;
    if (have_eval) *have_eval = t.have_eval;
    if (seconds) *seconds = secs;
    teardown(&t);
    return rc;
}

/* A subcommand over the pipeline configuration: parses the command line
 * (USAGE is its first help line), runs BODY on the config and prints BODY's
 * error as the one error line. Returns the exit status. */
static int run_command(int argc, char **argv, const char *usage,
                       int (*body)(config *c, dp_err *err)) {
    config *c;
    int rc = cli_parse(argc, argv, usage, NULL, 0, &c);
    if (rc || !c) return rc;
    dp_err err;
    stopped_by = 0;
    rc = body(c, &err);
    if (rc && (!stopped_by || dist_rank() == 0)) cli_error(err.msg);
    cfg_free(c);
    return stopped_by ? 128 + stopped_by : rc ? 1 : 0;
}

static int train_once(config *c, dp_err *err) { return train_run(c, NULL, NULL, NULL, err); }

int cmd_train(int argc, char **argv) {
    return run_command(argc, argv,
                       "Stage two: train the policy with DPO against the reference values cached\n"
                       "in the store; the reference model is never loaded.",
                       train_once);
}

/* ---- sweeps --------------------------------------------------------------- */

/* Trains every point of C's sweep grid and prints the table of runs. */
static int sweep_run(config *c, dp_err *err) {
    int keys = cfg_sweep_keys(c);
    long combos = 1;
    for (int k = 0; k < keys; k++) combos *= cfg_sweep_len(c, k);
    if (keys == 0)
        return dp_fail(err, "sweep: the configuration has no sweep grid (sweep: {key: [values]})");
    if (keys > 64) return dp_fail(err, "sweep: at most 64 keys");
    char base[4096];
    snprintf(base, sizeof base, "%s", cfg_str(c, "train.output"));
    typedef struct { char name[512]; metrics eval; int have; double secs; } row;
    row *rows = calloc((size_t)combos, sizeof *rows);
    int rc = rows ? 0 : dp_fail(err, "out of memory");
    for (long i = 0; !rc && i < combos; i++) {
        config *d = cfg_clone(c);
        if (!d) {
            rc = dp_fail(err, "out of memory");
            break;
        }
        /* point i in mixed radix, the last key fastest; named in key order */
        int idx[64];
        long rest = i;
        for (int k = keys - 1; k >= 0; k--) {
            idx[k] = (int)(rest % cfg_sweep_len(c, k));
            rest /= cfg_sweep_len(c, k);
        }
        size_t k0 = 0;
        char *name = rows[i].name;
        for (int k = 0; k < keys && !rc; k++) {
            char set[512];
            snprintf(set, sizeof set, "%s=%s", cfg_sweep_key(c, k), cfg_sweep_value(c, k, idx[k]));
            rc = cfg_set(d, set, "sweep", err);
            const char *leaf = strrchr(cfg_sweep_key(c, k), '.');
            k0 += (size_t)snprintf(name + k0, sizeof rows[i].name - k0, "%s%s=%s", k0 ? "," : "",
                                   leaf ? leaf + 1 : cfg_sweep_key(c, k),
                                   cfg_sweep_value(c, k, idx[k]));
        }
        char out[4700], set[4800];
        snprintf(out, sizeof out, "%s/%s", base, name);
        snprintf(set, sizeof set, "train.output=%s", out);
        if (!rc) rc = cfg_set(d, set, "sweep", err);
        if (!rc) {
            su_log("sweep: run %ld/%ld: %s", i + 1, combos, name);
            rc = train_run(d, &rows[i].eval, &rows[i].have, &rows[i].secs, err);
        }
        cfg_free(d);
    }
    if (!rc && dist_rank() == 0) {
        printf("\n| run | eval loss | eval reward accuracy | eval margin | wall time (s) |\n");
        printf("|---|---|---|---|---|\n");
        for (long i = 0; i < combos; i++) {
            double n = rows[i].eval.n ? (double)rows[i].eval.n : 1.0;
            if (rows[i].have)
                printf("| %s | %.4f | %.3f | %.4f | %.1f |\n", rows[i].name,
                       rows[i].eval.loss, rows[i].eval.acc / n, rows[i].eval.margin / n,
                       rows[i].secs);
            else
                printf("| %s | - | - | - | %.1f |\n", rows[i].name, rows[i].secs);
        }
    }
    free(rows);
    return rc ? -1 : 0;
}

int cmd_sweep(int argc, char **argv) {
    return run_command(argc, argv,
                       "Train every combination of the sweep grid against the same cache, each in\n"
                       "<train.output>/<name>/, and print a table of the runs.",
                       sweep_run);
}
