/* loss — DPO and its variants, with TRL DPOTrainer's names and formulas,
 * computed per example from summed log-probabilities.
 *
 * Notation: π = policy log-prob of a response summed over its tokens, ref =
 * the same for the reference, ρ = π − ref, c/r = chosen/rejected, n = number
 * of response tokens. The module knows nothing of models or storage: it maps
 * per-example sums to a loss and its derivatives with respect to π_c and π_r
 * (and to the chosen NLL, for the `sft` term). The formulas, and where TRL
 * versions differ, are listed at the top of loss.c. */
#ifndef DP_LOSS_H
#define DP_LOSS_H

#include "error.h"

typedef enum loss_kind {
    LOSS_SIGMOID, LOSS_ROBUST, LOSS_IPO, LOSS_HINGE, LOSS_EXO_PAIR, LOSS_NCA_PAIR,
    LOSS_BCO_PAIR, LOSS_SPPO_HARD, LOSS_APO_ZERO, LOSS_APO_DOWN, LOSS_SIGMOID_NORM,
    LOSS_DISCOPOP, LOSS_SIMPO, LOSS_SFT, LOSS_KIND_COUNT
} loss_kind;

/* Parses a TRL loss name ("sigmoid", "ipo", ..., "sft"); error lists the names. */
int loss_parse(const char *name, loss_kind *out, dp_err *err);
const char *loss_name(loss_kind k);

#define LOSS_MAX_TERMS 8

typedef struct loss_config {
    int n_terms;
    loss_kind kind[LOSS_MAX_TERMS];
    double weight[LOSS_MAX_TERMS];
    double beta, label_smoothing, simpo_gamma, discopop_tau;
} loss_config;

/* TRL's defaults: one sigmoid term of weight 1, beta 0.1, label_smoothing 0,
 * simpo_gamma 0.5 (TRL CPOConfig), discopop_tau 0.05. */
void loss_config_default(loss_config *c);

/* Checks parameter ranges for the chosen kinds (e.g. robust needs
 * label_smoothing in [0, 0.5), exo_pair needs it > 0). */
int loss_validate(const loss_config *c, dp_err *err);

/* Inputs for one example. */
typedef struct loss_example {
    double pi_c, pi_r;       /* policy sums */
    double ref_c, ref_r;     /* reference sums (ignored by simpo) */
    double n_c, n_r;         /* response token counts used by ipo, sigmoid_norm and simpo
                              * to average per token; TRL divides by the plain count of
                              * completion tokens (not LD-DPO weighted); values < 1 count as 1 */
    double nll_c;            /* Σ −log p over chosen tokens (for sft; TRL's sft term is a
                              * plain cross-entropy, not LD-DPO weighted) */
    double n_nll_c;          /* chosen tokens counted by the sft term */
} loss_example;

/* Per-example result: the weighted loss, derivatives with respect to pi_c,
 * pi_r and nll_c, and the reward for metrics: βρ as TRL's DPOTrainer logs it,
 * except when every term is reference-free (simpo, optionally with sft), where
 * it is β·π/n as TRL's CPOTrainer logs SimPO's rewards. */
typedef struct loss_result {
    double loss;
    double d_pi_c, d_pi_r, d_nll_c;
    double reward_c, reward_r;
} loss_result;

/* Batch loss L = Σ_k w_k · mean_batch(ℓ_k) over n examples; res[i] receives
 * example i's contribution and derivatives (already divided by n, and for
 * sft by the batch's total chosen tokens, as TRL does). Returns L. */
double loss_batch(const loss_config *c, const loss_example *ex, int n, loss_result *res);

/* The same for a slice of a larger batch (gradient accumulation): per-pair
 * terms are divided by batch_pairs and the sft term by batch_sft_tokens (the
 * whole batch's Σ n_nll_c) instead of this slice's own counts, so summing the
 * slices' results reproduces loss_batch over the whole batch. Returns the
 * slice's share of L. loss_batch(c, ex, n, res) equals
 * loss_batch_slice(c, ex, n, n, Σ ex[i].n_nll_c, res). */
double loss_batch_slice(const loss_config *c, const loss_example *ex, int n, double batch_pairs,
                        double batch_sft_tokens, loss_result *res);

/* Per-example value of one term ℓ_k (unweighted, not divided by the batch
 * size) and its derivatives with respect to pi_c and pi_r. The sft term has
 * no per-example value here (it is a batch token mean) and returns 0. */
double loss_term(const loss_config *c, loss_kind k, const loss_example *ex, double *d_pi_c,
                 double *d_pi_r);

#endif
