/* loss — see loss.h.
 *
 * Per-example terms, with x = βΔ, Δ = ρ_c − ρ_r, r_c = βρ_c, r_r = βρ_r,
 * ls = label_smoothing, softplus(z) = log(1 + e^z) = −log σ(−z):
 *
 *   sigmoid       (1−ls)·softplus(−x) + ls·softplus(x)             (ls > 0: cDPO)
 *   robust        [(1−ls)·softplus(−x) − ls·softplus(x)] / (1−2ls)
 *   ipo           (ρ_c/n_c − ρ_r/n_r − 1/(2β))²
 *   hinge         max(0, 1 − x)
 *   exo_pair      σ(x)[log σ(x) − log(1−ls)] + σ(−x)[log σ(−x) − log ls]
 *   nca_pair      softplus(−r_c) + ½softplus(r_c) + ½softplus(r_r)
 *   bco_pair      softplus(−r_c) + softplus(r_r)
 *   sppo_hard     (ρ_c − 1/(2β))² + (ρ_r + 1/(2β))²
 *   apo_zero      1 − σ(r_c) + σ(r_r)
 *   apo_down      σ(r_c) + 1 − σ(x)
 *   sigmoid_norm  softplus(−β(ρ_c/n_c − ρ_r/n_r))
 *   discopop      m = σ(x/τ):  (1−m)·softplus(−x) + m·e^(−x)
 *   simpo         z = β(π_c/n_c − π_r/n_r) − γ:  (1−ls)·softplus(−z) + ls·softplus(z)
 *   sft           Σ_batch nll_c / Σ_batch n_nll_c   (one value for the whole batch)
 *
 * These are the formulas of TRL's DPOTrainer (trl/trainer/dpo_trainer.py,
 * `_compute_loss` in TRL 1.x, `dpo_loss` before) and, for simpo, of TRL's
 * CPOTrainer (`cpo_loss`, loss_type="simpo", on length-averaged log-probs).
 * Where TRL versions differ:
 *   - sigmoid: TRL ≤ 0.2x applies label_smoothing (cDPO); TRL 1.x ignores it
 *     there. We apply it; with ls = 0 both agree.
 *   - bco_pair: TRL ≤ 0.2x subtracted a running mean δ of the rewards
 *     (RunningMoments over batches); TRL 1.x dropped δ. We follow 1.x: no
 *     state across batches.
 *   - exo_pair: TRL ≤ 0.2x silently replaced ls = 0 by 1e-3; TRL 1.x takes
 *     log(0) (an infinite loss). We refuse ls = 0 in loss_validate.
 *   - ipo, sigmoid_norm: the per-token averages divide by max(n, 1) (TRL's
 *     clamp(min=1)); simpo does the same.
 * Everything is in double; log σ and σ are evaluated through softplus so no
 * intermediate overflows for |x| up to the double range. */
#include "loss.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

static const char *const loss_names[LOSS_KIND_COUNT] = {
    [LOSS_SIGMOID] = "sigmoid",     [LOSS_ROBUST] = "robust",
    [LOSS_IPO] = "ipo",             [LOSS_HINGE] = "hinge",
    [LOSS_EXO_PAIR] = "exo_pair",   [LOSS_NCA_PAIR] = "nca_pair",
    [LOSS_BCO_PAIR] = "bco_pair",   [LOSS_SPPO_HARD] = "sppo_hard",
    [LOSS_APO_ZERO] = "apo_zero",   [LOSS_APO_DOWN] = "apo_down",
    [LOSS_SIGMOID_NORM] = "sigmoid_norm", [LOSS_DISCOPOP] = "discopop",
    [LOSS_SIMPO] = "simpo",         [LOSS_SFT] = "sft",
};

int loss_parse(const char *name, loss_kind *out, dp_err *err) {
    for (int k = 0; k < LOSS_KIND_COUNT; k++) {
        if (name && strcmp(name, loss_names[k]) == 0) {
            *out = (loss_kind)k;
            return 0;
        }
    }
    char list[512];
    size_t used = 0;
    list[0] = '\0';
    for (int k = 0; k < LOSS_KIND_COUNT; k++) {
        int w = snprintf(list + used, sizeof list - used, "%s%s", k ? ", " : "", loss_names[k]);
        if (w < 0 || (size_t)w >= sizeof list - used) break;
        used += (size_t)w;
    }
    return dp_fail(err, "train.loss: expected one of %s, got \"%s\"", list, name ? name : "(null)");
}

const char *loss_name(loss_kind k) {
    if ((int)k < 0 || k >= LOSS_KIND_COUNT) return "unknown";
    return loss_names[k];
}

void loss_config_default(loss_config *c) {
    memset(c, 0, sizeof *c);
    c->n_terms = 1;
    c->kind[0] = LOSS_SIGMOID;
    c->weight[0] = 1.0;
    c->beta = 0.1;
    c->label_smoothing = 0.0;
    c->simpo_gamma = 0.5;
    c->discopop_tau = 0.05;
}

static int uses(const loss_config *c, loss_kind k) {
    for (int i = 0; i < c->n_terms; i++)
        if (c->kind[i] == k) return 1;
    return 0;
}

int loss_validate(const loss_config *c, dp_err *err) {
    if (c->n_terms < 1 || c->n_terms > LOSS_MAX_TERMS)
        return dp_fail(err, "train.loss: expected 1 to %d loss names, got %d", LOSS_MAX_TERMS,
                       c->n_terms);
    for (int i = 0; i < c->n_terms; i++) {
        if ((int)c->kind[i] < 0 || c->kind[i] >= LOSS_KIND_COUNT)
            return dp_fail(err, "train.loss[%d]: expected a loss name, got kind %d", i,
                           (int)c->kind[i]);
        if (!isfinite(c->weight[i]))
            return dp_fail(err, "train.loss_weights[%d]: expected a finite number, got %g", i,
                           c->weight[i]);
    }
    if (!(c->beta > 0) || !isfinite(c->beta))
        return dp_fail(err, "train.beta: expected a finite number > 0, got %g", c->beta);
    double ls = c->label_smoothing;
    if (!(ls >= 0 && ls <= 1))
        return dp_fail(err, "train.label_smoothing: expected a number in [0, 1], got %g", ls);
    if (uses(c, LOSS_ROBUST) && !(ls < 0.5))
        return dp_fail(err, "train.label_smoothing: loss \"robust\" needs a value in [0, 0.5), got %g",
                       ls);
    if (uses(c, LOSS_EXO_PAIR) && !(ls > 0 && ls < 1))
        return dp_fail(err,
                       "train.label_smoothing: loss \"exo_pair\" needs a value in (0, 1) "
                       "(the EXO paper suggests 1e-3), got %g",
                       ls);
    if (uses(c, LOSS_DISCOPOP) && (!(c->discopop_tau > 0) || !isfinite(c->discopop_tau)))
        return dp_fail(err, "train.discopop_tau: expected a finite number > 0, got %g",
                       c->discopop_tau);
    if (uses(c, LOSS_SIMPO) && !isfinite(c->simpo_gamma))
        return dp_fail(err, "train.simpo_gamma: expected a finite number, got %g", c->simpo_gamma);
    return 0;
}

/* softplus(z) = log(1 + e^z), exact to rounding for every z. */
static double softplus(double z) { return fmax(z, 0.0) + log1p(exp(-fabs(z))); }

/* σ(z) without overflow. */
static double sigm(double z) {
    if (z >= 0) return 1.0 / (1.0 + exp(-z));
    double e = exp(z);
    return e / (1.0 + e);
}

static double per_token(double n) { return n < 1 ? 1.0 : n; }

double loss_term(const loss_config *c, loss_kind k, const loss_example *e, double *d_pi_c,
                 double *d_pi_r) {
    const double b = c->beta, ls = c->label_smoothing;
    const double rho_c = e->pi_c - e->ref_c, rho_r = e->pi_r - e->ref_r;
    const double x = b * (rho_c - rho_r), rc = b * rho_c, rr = b * rho_r;
    double l = 0, dx = 0; /* dx: dℓ/dx for terms that depend on x only */
    double dc = 0, dr = 0;
    switch (k) {
    case LOSS_SIGMOID:
        l = (1 - ls) * softplus(-x) + ls * softplus(x);
        dx = -(1 - ls) * sigm(-x) + ls * sigm(x);
        dc = b * dx, dr = -b * dx;
        break;
    case LOSS_ROBUST:
        l = ((1 - ls) * softplus(-x) - ls * softplus(x)) / (1 - 2 * ls);
        dx = (-(1 - ls) * sigm(-x) - ls * sigm(x)) / (1 - 2 * ls);
        dc = b * dx, dr = -b * dx;
        break;
    case LOSS_IPO: {
        double nc = per_token(e->n_c), nr = per_token(e->n_r);
        double u = rho_c / nc - rho_r / nr - 1 / (2 * b);
        l = u * u;
        dc = 2 * u / nc, dr = -2 * u / nr;
        break;
    }
    case LOSS_HINGE:
        l = x < 1 ? 1 - x : 0;
        dx = x < 1 ? -1 : 0;
        dc = b * dx, dr = -b * dx;
        break;
    case LOSS_EXO_PAIR: {
        /* log σ(x) − log σ(−x) = x, which makes dℓ/dx = σ(x)σ(−x)(x − log(1−ε) + log ε). */
        double sp = sigm(x), sn = sigm(-x);
        double log_pw = log1p(-ls), log_pl = log(ls);
        l = sp * (-softplus(-x) - log_pw) + sn * (-softplus(x) - log_pl);
        dx = sp * sn * (x - log_pw + log_pl);
        dc = b * dx, dr = -b * dx;
        break;
    }
    case LOSS_NCA_PAIR:
        l = softplus(-rc) + 0.5 * softplus(rc) + 0.5 * softplus(rr);
        dc = b * (-sigm(-rc) + 0.5 * sigm(rc));
        dr = b * 0.5 * sigm(rr);
        break;
    case LOSS_BCO_PAIR:
        l = softplus(-rc) + softplus(rr);
        dc = -b * sigm(-rc);
        dr = b * sigm(rr);
        break;
    case LOSS_SPPO_HARD: {
        double a = rho_c - 0.5 / b, q = rho_r + 0.5 / b;
        l = a * a + q * q;
        dc = 2 * a, dr = 2 * q;
        break;
    }
    case LOSS_APO_ZERO:
        l = 1 - sigm(rc) + sigm(rr);
        dc = -b * sigm(rc) * sigm(-rc);
        dr = b * sigm(rr) * sigm(-rr);
        break;
    case LOSS_APO_DOWN: {
        double sx = sigm(x) * sigm(-x);
        l = sigm(rc) + 1 - sigm(x);
        dc = b * sigm(rc) * sigm(-rc) - b * sx;
        dr = b * sx;
        break;
    }
    case LOSS_SIGMOID_NORM: {
        double nc = per_token(e->n_c), nr = per_token(e->n_r);
        double z = b * (rho_c / nc - rho_r / nr);
        l = softplus(-z);
        double dz = -sigm(-z);
        dc = b * dz / nc, dr = -b * dz / nr;
        break;
    }
    case LOSS_DISCOPOP: {
        /* m·e^(−x) and m'·e^(−x) in log space: for x ≪ 0, m → 0 faster than
         * e^(−x) grows (τ < 1), and the product must not become ∞·0. */
        double t = c->discopop_tau, y = x / t;
        double m = sigm(y);
        double m_exp = exp(-softplus(-y) - x);               /* m·e^(−x) */
        double dm_exp = exp(-softplus(-y) - softplus(y) - x) / t; /* m'·e^(−x) */
        double dm = sigm(y) * sigm(-y) / t;
        l = (1 - m) * softplus(-x) + m_exp;
        dx = -dm * softplus(-x) - (1 - m) * sigm(-x) + dm_exp - m_exp;
        dc = b * dx, dr = -b * dx;
        break;
    }
    case LOSS_SIMPO: {
        double nc = per_token(e->n_c), nr = per_token(e->n_r);
        double z = b * (e->pi_c / nc - e->pi_r / nr) - c->simpo_gamma;
        l = (1 - ls) * softplus(-z) + ls * softplus(z);
        double dz = -(1 - ls) * sigm(-z) + ls * sigm(z);
        dc = b * dz / nc, dr = -b * dz / nr;
        break;
    }
    case LOSS_SFT:
    case LOSS_KIND_COUNT:
        break;
    }
    if (d_pi_c) *d_pi_c = dc;
    if (d_pi_r) *d_pi_r = dr;
    return l;
}

/* True when no term uses the reference: rewards are then β·π/n (TRL CPO). */
static int reference_free(const loss_config *c) {
    int simpo = 0;
    for (int i = 0; i < c->n_terms; i++) {
        if (c->kind[i] == LOSS_SIMPO) simpo = 1;
        else if (c->kind[i] != LOSS_SFT) return 0;
    }
    return simpo;
}

double loss_batch_slice(const loss_config *c, const loss_example *ex, int n, double batch_pairs,
                        double batch_sft_tokens, loss_result *res) {
    const int ref_free = reference_free(c);
    double total = 0;
    if (n <= 0 || !(batch_pairs > 0)) return 0;
    for (int i = 0; i < n; i++) {
        const loss_example *e = &ex[i];
        loss_result r = {0};
        for (int t = 0; t < c->n_terms; t++) {
            double w = c->weight[t];
            if (c->kind[t] == LOSS_SFT) {
                if (batch_sft_tokens > 0) {
                    r.loss += w * e->nll_c / batch_sft_tokens;
                    r.d_nll_c += w / batch_sft_tokens;
                }
                continue;
            }
            double dc, dr;
            double l = loss_term(c, c->kind[t], e, &dc, &dr);
            r.loss += w * l / batch_pairs;
            r.d_pi_c += w * dc / batch_pairs;
            r.d_pi_r += w * dr / batch_pairs;
        }
        if (ref_free) {
            r.reward_c = c->beta * e->pi_c / per_token(e->n_c);
            r.reward_r = c->beta * e->pi_r / per_token(e->n_r);
        } else {
            r.reward_c = c->beta * (e->pi_c - e->ref_c);
            r.reward_r = c->beta * (e->pi_r - e->ref_r);
        }
        if (res) res[i] = r;
        total += r.loss;
    }
    return total;
}

double loss_batch(const loss_config *c, const loss_example *ex, int n, loss_result *res) {
    if (n <= 0) return 0;
    double tokens = 0;
    for (int i = 0; i < n; i++) tokens += ex[i].n_nll_c;
    return loss_batch_slice(c, ex, n, (double)n, tokens, res);
}
