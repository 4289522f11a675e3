/* test_loss — golden values (torchtune's DPO loss tests), a PyTorch autograd
 * oracle (tests/oracles/loss_oracle.py) for every loss kind and parameter
 * regime, central finite differences, stability at extreme inputs, and the
 * validation messages. */
#include "loss.h"

#include <float.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"

/* torchtune's test inputs (tests/torchtune/rlhf/loss/test_dpo_loss.py). */
static const loss_example golden_ex[3] = {
    {.pi_c = -0.5, .pi_r = -0.1, .ref_c = -0.5, .ref_r = -0.1, .n_c = 1, .n_r = 1},
    {.pi_c = -10.0, .pi_r = -30.0, .ref_c = -10.1, .ref_r = -20.1, .n_c = 1, .n_r = 1},
    {.pi_c = -1.0, .pi_r = -21.0, .ref_c = -0.1, .ref_r = -0.1, .n_c = 1, .n_r = 1},
};

static loss_config one(loss_kind k, double beta) {
    loss_config c;
    loss_config_default(&c);
    c.kind[0] = k;
    c.beta = beta;
    return c;
}

/* ℓ for example i alone (a batch of one). */
static double single(const loss_config *c, const loss_example *e, loss_result *r) {
    loss_result tmp;
    double l = loss_batch(c, e, 1, r ? r : &tmp);
    return l;
}

static void test_golden_sigmoid(void) {
    loss_config c = one(LOSS_SIGMOID, 0.1);
    const double expect4[3] = {0.6931, 0.3133, 0.1269}; /* torchtune, atol 1e-4 */
    const double scaled[3] = {0.0, 1.0, 2.0};           /* β·Δ */
    for (int i = 0; i < 3; i++) {
        double l = single(&c, &golden_ex[i], NULL);
        CHECK_NEAR(l, expect4[i], 1e-4);
        CHECK_NEAR(l, log1p(exp(-scaled[i])), 1e-14);
    }
    /* The batch loss is the mean, and each example carries 1/n of it. */
    loss_result r[3];
    double L = loss_batch(&c, golden_ex, 3, r);
    CHECK_NEAR(L, (log(2.0) + log1p(exp(-1.0)) + log1p(exp(-2.0))) / 3, 1e-14);
    CHECK_NEAR(r[0].loss + r[1].loss + r[2].loss, L, 1e-15);
    /* d/dπ_c of −log σ(βΔ)/3 is −β σ(−βΔ)/3; at Δ = 0 that is −β/6. */
    CHECK_NEAR(r[0].d_pi_c, -0.1 / 6, 1e-15);
    CHECK_NEAR(r[0].d_pi_r, 0.1 / 6, 1e-15);
    CHECK_NEAR(r[2].d_pi_c, -0.1 / (1 + exp(2.0)) / 3, 1e-15);
    /* Rewards βρ, as in torchtune's KTO docstring for the same inputs. */
    const double rc[3] = {0.0, 0.01, -0.09}, rr[3] = {0.0, -0.99, -2.09};
    for (int i = 0; i < 3; i++) {
        CHECK_NEAR(r[i].reward_c, rc[i], 1e-12);
        CHECK_NEAR(r[i].reward_r, rr[i], 1e-12);
    }
}

static void test_golden_hinge(void) {
    /* torchtune RSOLoss(gamma=0.1) on the same inputs: [1, 0, 0]. */
    loss_config c = one(LOSS_HINGE, 0.1);
    const double expect[3] = {1.0, 0.0, 0.0};
    for (int i = 0; i < 3; i++) CHECK_NEAR(single(&c, &golden_ex[i], NULL), expect[i], 1e-12);
}

static void test_golden_simpo(void) {
    /* torchtune SimPOLoss(beta=2, gamma=0.5) on the policy log-probs taken as
     * already length-averaged (n = 1): β(π_c − π_r) − γ = [−1.3, 39.5, 39.5]. */
    loss_config c = one(LOSS_SIMPO, 2.0);
    c.simpo_gamma = 0.5;
    const double z[3] = {-1.3, 39.5, 39.5};
    for (int i = 0; i < 3; i++) {
        loss_result r;
        double l = single(&c, &golden_ex[i], &r);
        CHECK_NEAR(l, log1p(exp(-z[i])), 1e-4);
        CHECK_NEAR(l, log1p(exp(-z[i])), 1e-14 * fmax(1, l));
        /* Reference-free: rewards are β·π/n (TRL CPOTrainer). */
        CHECK_NEAR(r.reward_c, 2.0 * golden_ex[i].pi_c, 1e-12);
        CHECK_NEAR(r.reward_r, 2.0 * golden_ex[i].pi_r, 1e-12);
    }
}

static void test_golden_closed_forms(void) {
    /* Hand-derived from TRL's formulas on torchtune's inputs (Δ = [0, 10, 20],
     * ρ_c = [0, 0.1, −0.9], ρ_r = [0, −9.9, −20.9], β = 0.1, n = 1). */
    loss_config c = one(LOSS_IPO, 0.1);
    const double ipo[3] = {25.0, 25.0, 225.0}; /* (Δ − 5)² */
    for (int i = 0; i < 3; i++) CHECK_NEAR(single(&c, &golden_ex[i], NULL), ipo[i], 1e-9);
    c = one(LOSS_SPPO_HARD, 0.1); /* (ρ_c − 5)² + (ρ_r + 5)² */
    const double sppo[3] = {50.0, 4.9 * 4.9 + 4.9 * 4.9, 5.9 * 5.9 + 15.9 * 15.9};
    for (int i = 0; i < 3; i++) CHECK_NEAR(single(&c, &golden_ex[i], NULL), sppo[i], 1e-9);
    /* At Δ = 0 and ρ = 0 every sigmoid-family loss sits at its midpoint. */
    c = one(LOSS_APO_ZERO, 0.1);
    CHECK_NEAR(single(&c, &golden_ex[0], NULL), 1.0, 1e-15);
    c = one(LOSS_APO_DOWN, 0.1);
    CHECK_NEAR(single(&c, &golden_ex[0], NULL), 1.0, 1e-15);
    c = one(LOSS_BCO_PAIR, 0.1);
    CHECK_NEAR(single(&c, &golden_ex[0], NULL), 2 * log(2.0), 1e-15);
    c = one(LOSS_NCA_PAIR, 0.1);
    CHECK_NEAR(single(&c, &golden_ex[0], NULL), 2 * log(2.0), 1e-15);
    c = one(LOSS_DISCOPOP, 0.1); /* m = ½: ½ ln 2 + ½ */
    CHECK_NEAR(single(&c, &golden_ex[0], NULL), 0.5 * log(2.0) + 0.5, 1e-15);
    c = one(LOSS_EXO_PAIR, 0.1);
    c.label_smoothing = 1e-3; /* ½(ln ½ − ln 0.999) + ½(ln ½ − ln 0.001) */
    CHECK_NEAR(single(&c, &golden_ex[0], NULL),
               0.5 * (log(0.5) - log(0.999)) + 0.5 * (log(0.5) - log(0.001)), 1e-14);
}

static void test_policy_equals_reference(void) {
    loss_example e[4];
    for (int i = 0; i < 4; i++)
        e[i] = (loss_example){.pi_c = -3.0 * (i + 1), .pi_r = -7.5 * (i + 1), .n_c = 3, .n_r = 5};
    for (int i = 0; i < 4; i++) e[i].ref_c = e[i].pi_c, e[i].ref_r = e[i].pi_r;
    loss_config c = one(LOSS_SIGMOID, 0.1);
    loss_result r[4];
    CHECK_NEAR(loss_batch(&c, e, 4, r), log(2.0), 1e-15);
    for (int i = 0; i < 4; i++) {
        CHECK(r[i].reward_c == 0 && r[i].reward_r == 0);
        CHECK_NEAR(r[i].d_pi_c, -0.1 * 0.5 / 4, 1e-16);
    }
}

/* ---- random cases, the oracle and finite differences ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static double urand(void) { return check_urand(&rng_state); }

#define N_EX 6
#define MAX_CASES 40

typedef struct tcase {
    loss_config c;
    loss_example ex[N_EX];
} tcase;

static tcase cases[MAX_CASES];
static int n_cases;

static void add_case(const loss_kind *k, const double *w, int nt, double beta, double ls) {
    tcase *t = &cases[n_cases++];
    loss_config_default(&t->c);
    t->c.n_terms = nt;
    for (int i = 0; i < nt; i++) t->c.kind[i] = k[i], t->c.weight[i] = w[i];
    t->c.beta = beta;
    t->c.label_smoothing = ls;
    t->c.simpo_gamma = 0.3 + urand();
    t->c.discopop_tau = 0.05;
    for (int i = 0; i < N_EX; i++) {
        loss_example *e = &t->ex[i];
        e->n_c = 1 + (int)(urand() * 40);
        e->n_r = 1 + (int)(urand() * 40);
        if (i == 0) e->n_c = 0; /* TRL clamps the per-token divisor to 1 */
        e->pi_c = -(0.2 + urand() * 1.5) * (e->n_c + 1);
        e->pi_r = -(0.2 + urand() * 1.5) * (e->n_r + 1);
        /* Log-ratios of a few nats so β·Δ spans both sides of 0 for β ≤ 2. */
        e->ref_c = e->pi_c + (urand() - 0.5) * 5 / beta;
        e->ref_r = e->pi_r + (urand() - 0.5) * 5 / beta;
        e->nll_c = -e->pi_c;
        e->n_nll_c = e->n_c;
    }
}

static void build_cases(void) {
    n_cases = 0;
    const double betas[3] = {0.1, 0.5, 2.0};
    const double w1 = 1.0;
    for (int k = 0; k < LOSS_KIND_COUNT; k++) {
        loss_kind kind = (loss_kind)k;
        for (int b = 0; b < 2; b++) {
            double ls = kind == LOSS_EXO_PAIR ? 1e-3 : 0.0;
            add_case(&kind, &w1, 1, betas[b == 0 ? 0 : (k % 2 ? 1 : 2)], ls);
        }
    }
    /* label smoothing regimes */
    loss_kind k;
    k = LOSS_SIGMOID, add_case(&k, &w1, 1, 0.1, 0.1);
    k = LOSS_ROBUST, add_case(&k, &w1, 1, 0.5, 0.2);
    k = LOSS_EXO_PAIR, add_case(&k, &w1, 1, 0.3, 0.3);
    k = LOSS_SIMPO, add_case(&k, &w1, 1, 2.0, 0.15);
    /* combinations, e.g. RPO (sigmoid + sft) and MPO-like mixes */
    const loss_kind rpo[2] = {LOSS_SIGMOID, LOSS_SFT};
    const double rpo_w[2] = {1.0, 0.7};
    add_case(rpo, rpo_w, 2, 0.1, 0.0);
    const loss_kind mix[4] = {LOSS_IPO, LOSS_BCO_PAIR, LOSS_SFT, LOSS_DISCOPOP};
    const double mix_w[4] = {0.8, 0.2, 1.0, 0.5};
    add_case(mix, mix_w, 4, 0.2, 0.0);
    const loss_kind simpo_sft[2] = {LOSS_SIMPO, LOSS_SFT};
    add_case(simpo_sft, rpo_w, 2, 2.5, 0.0);
}

static void kinds_csv(const loss_config *c, char *kinds, char *weights, size_t cap) {
    size_t a = 0, b = 0;
    for (int i = 0; i < c->n_terms; i++) {
        a += (size_t)snprintf(kinds + a, cap - a, "%s%s", i ? "," : "", loss_name(c->kind[i]));
        b += (size_t)snprintf(weights + b, cap - b, "%s%.17g", i ? "," : "", c->weight[i]);
    }
}

static int rel_close(double a, double b, double rel, double abs_floor) {
    return fabs(a - b) <= rel * fmax(fabs(a), fabs(b)) + abs_floor;
}

static void test_against_torch_oracle(void) {
    build_cases();
    char path[] = "/tmp/dpoc_loss_oracle_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0) return;
    FILE *f = fdopen(fd, "w");
    for (int t = 0; t < n_cases; t++) {
        const loss_config *c = &cases[t].c;
        char kinds[256], weights[256];
        kinds_csv(c, kinds, weights, sizeof kinds);
        fprintf(f, "case %s %s %.17g %.17g %.17g %.17g %d\n", kinds, weights, c->beta,
                c->label_smoothing, c->simpo_gamma, c->discopop_tau, N_EX);
        for (int i = 0; i < N_EX; i++) {
            const loss_example *e = &cases[t].ex[i];
            fprintf(f, "%.17g %.17g %.17g %.17g %.17g %.17g %.17g %.17g\n", e->pi_c, e->pi_r,
                    e->ref_c, e->ref_r, e->n_c, e->n_r, e->nll_c, e->n_nll_c);
        }
    }
    fclose(f);
    const char *py = getenv("PYTHON");
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s tests/oracles/loss_oracle.py < %s", py && *py ? py : "/usr/bin/python3",
             path);
    FILE *p = popen(cmd, "r");
    CHECK_MSG(p != NULL, "cannot run %s", cmd);
    if (!p) {
        unlink(path);
        return;
    }
    int compared = 0;
    for (int t = 0; t < n_cases; t++) {
        const loss_config *c = &cases[t].c;
        loss_result r[N_EX];
        double L = loss_batch(c, cases[t].ex, N_EX, r);
        double oL;
        if (fscanf(p, "%lf", &oL) != 1) break;
        CHECK_MSG(rel_close(L, oL, 1e-9, 1e-15), "case %d (%s…): L %.17g vs torch %.17g", t,
                  loss_name(c->kind[0]), L, oL);
        for (int i = 0; i < N_EX; i++) {
            double o[5];
            if (fscanf(p, "%lf %lf %lf %lf %lf", &o[0], &o[1], &o[2], &o[3], &o[4]) != 5) goto out;
            double mine[5] = {r[i].d_pi_c, r[i].d_pi_r, r[i].d_nll_c, r[i].reward_c, r[i].reward_r};
            static const char *what[5] = {"d_pi_c", "d_pi_r", "d_nll_c", "reward_c", "reward_r"};
            for (int j = 0; j < 5; j++)
                CHECK_MSG(rel_close(mine[j], o[j], 1e-9, 1e-15),
                          "case %d (%s, beta %g, ls %g) example %d %s: %.17g vs torch %.17g", t,
                          loss_name(c->kind[0]), c->beta, c->label_smoothing, i, what[j], mine[j],
                          o[j]);
        }
        compared++;
    }
out:;
    int status = pclose(p);
    unlink(path);
    CHECK_MSG(status == 0, "oracle exited with status %d (is torch installed for %s?)", status, cmd);
    CHECK_MSG(compared == n_cases, "oracle answered %d of %d cases", compared, n_cases);
}

/* L as a function of one input of example i, for finite differences. */
static double batch_with(const tcase *t, int i, int which, double v) {
    loss_example ex[N_EX];
    for (int j = 0; j < N_EX; j++) ex[j] = t->ex[j];
    if (which == 0) ex[i].pi_c = v;
    else if (which == 1) ex[i].pi_r = v;
    else ex[i].nll_c = v;
    return loss_batch(&t->c, ex, N_EX, NULL);
}

static void test_finite_differences(void) {
    build_cases();
    int checked = 0;
    for (int t = 0; t < n_cases; t++) {
        const tcase *tc = &cases[t];
        loss_result r[N_EX];
        loss_batch(&tc->c, tc->ex, N_EX, r);
        for (int i = 0; i < N_EX; i++) {
            const double x0[3] = {tc->ex[i].pi_c, tc->ex[i].pi_r, tc->ex[i].nll_c};
            const double an[3] = {r[i].d_pi_c, r[i].d_pi_r, r[i].d_nll_c};
            for (int w = 0; w < 3; w++) {
                double h = 1e-5 * fmax(1.0, fabs(x0[w]));
                double fd = (batch_with(tc, i, w, x0[w] + h) - batch_with(tc, i, w, x0[w] - h)) / (2 * h);
                CHECK_MSG(fabs(fd - an[w]) <= 1e-6 * fmax(1.0, fabs(an[w])) + 1e-8,
                          "case %d (%s) example %d input %d: analytic %.12g, central difference %.12g",
                          t, loss_name(tc->c.kind[0]), i, w, an[w], fd);
                checked++;
            }
        }
    }
    CHECK(checked == n_cases * N_EX * 3);
}

static void test_slices_sum_to_batch(void) {
    build_cases();
    const tcase *t = &cases[n_cases - 3]; /* the RPO mix: sigmoid + sft */
    loss_result full[N_EX], part[N_EX];
    double L = loss_batch(&t->c, t->ex, N_EX, full);
    double tokens = 0;
    for (int i = 0; i < N_EX; i++) tokens += t->ex[i].n_nll_c;
    double S = 0;
    for (int i = 0; i < N_EX; i += 2)
        S += loss_batch_slice(&t->c, t->ex + i, 2, N_EX, tokens, part + i);
    CHECK_NEAR(S, L, 1e-14);
    for (int i = 0; i < N_EX; i++) {
        CHECK(part[i].d_pi_c == full[i].d_pi_c);
        CHECK(part[i].d_pi_r == full[i].d_pi_r);
        CHECK(part[i].d_nll_c == full[i].d_nll_c);
    }
}

static void test_extreme_inputs_stay_finite(void) {
    /* |βΔ| in the thousands: softplus forms keep every value and derivative finite. */
    const double deltas[4] = {-4000, -200, 200, 4000};
    for (int k = 0; k < LOSS_KIND_COUNT; k++) {
        loss_config c = one((loss_kind)k, 0.5);
        if (k == LOSS_EXO_PAIR) c.label_smoothing = 1e-3;
        for (int d = 0; d < 4; d++) {
            loss_example e = {.pi_c = deltas[d], .pi_r = -deltas[d], .ref_c = 0, .ref_r = 0,
                              .n_c = 1, .n_r = 1, .nll_c = 5, .n_nll_c = 2};
            loss_result r;
            double l = loss_batch(&c, &e, 1, &r);
            CHECK_MSG(isfinite(l) && isfinite(r.d_pi_c) && isfinite(r.d_pi_r),
                      "%s at Δ=%g: loss %g d %g %g", loss_name((loss_kind)k), 2 * deltas[d], l,
                      r.d_pi_c, r.d_pi_r);
        }
    }
    /* Far on the right side, the DPO loss and its gradient vanish; on the wrong side the
     * loss grows linearly with slope β. */
    loss_config c = one(LOSS_SIGMOID, 0.5);
    loss_example e = {.pi_c = -1000, .pi_r = 1000, .n_c = 1, .n_r = 1};
    loss_result r;
    CHECK_NEAR(loss_batch(&c, &e, 1, &r), 1000.0, 1e-9);
    CHECK_NEAR(r.d_pi_c, -0.5, 1e-15);
}

static void test_parse_and_names(void) {
    dp_err err = {{0}};
    for (int k = 0; k < LOSS_KIND_COUNT; k++) {
        loss_kind out = LOSS_KIND_COUNT;
        CHECK(loss_parse(loss_name((loss_kind)k), &out, &err) == 0);
        CHECK(out == (loss_kind)k);
    }
    loss_kind out;
    CHECK(loss_parse("dpo", &out, &err) == -1);
    CHECK_STR(err.msg,
              "train.loss: expected one of sigmoid, robust, ipo, hinge, exo_pair, nca_pair, "
              "bco_pair, sppo_hard, apo_zero, apo_down, sigmoid_norm, discopop, simpo, sft, "
              "got \"dpo\"");
}

/* loss_validate refuses C with exactly MSG. */
static void check_invalid(const loss_config *c, const char *msg) {
    dp_err err = {{0}};
    CHECK(loss_validate(c, &err) == -1);
    CHECK_STR(err.msg, msg);
}

static void test_validation_messages(void) {
    dp_err err = {{0}};
    loss_config c = one(LOSS_ROBUST, 0.1);
    c.label_smoothing = 0.5;
    check_invalid(&c, "train.label_smoothing: loss \"robust\" needs a value in [0, 0.5), got 0.5");
    c.label_smoothing = 0.49;
    CHECK(loss_validate(&c, &err) == 0);

    c = one(LOSS_EXO_PAIR, 0.1);
    check_invalid(&c, "train.label_smoothing: loss \"exo_pair\" needs a value in (0, 1) "
                      "(the EXO paper suggests 1e-3), got 0");
    c.label_smoothing = 1e-3;
    CHECK(loss_validate(&c, &err) == 0);

    c = one(LOSS_SIGMOID, 0.0);
    check_invalid(&c, "train.beta: expected a finite number > 0, got 0");

    c = one(LOSS_DISCOPOP, 0.1);
    c.discopop_tau = 0;
    check_invalid(&c, "train.discopop_tau: expected a finite number > 0, got 0");

    c = one(LOSS_SIGMOID, 0.1);
    c.label_smoothing = -0.1;
    check_invalid(&c, "train.label_smoothing: expected a number in [0, 1], got -0.1");

    c = one(LOSS_SIGMOID, 0.1);
    c.n_terms = 0;
    check_invalid(&c, "train.loss: expected 1 to 8 loss names, got 0");

    c = one(LOSS_SIGMOID, 0.1);
    c.weight[0] = NAN;
    check_invalid(&c, "train.loss_weights[0]: expected a finite number, got nan");

    loss_config_default(&c);
    CHECK(loss_validate(&c, &err) == 0);
    CHECK(c.kind[0] == LOSS_SIGMOID && c.beta == 0.1 && c.discopop_tau == 0.05);
}

int main(void) {
    RUN(test_golden_sigmoid);
    RUN(test_golden_hinge);
    RUN(test_golden_simpo);
    RUN(test_golden_closed_forms);
    RUN(test_policy_equals_reference);
    RUN(test_against_torch_oracle);
    RUN(test_finite_differences);
    RUN(test_slices_sum_to_batch);
    RUN(test_extreme_inputs_stay_finite);
    RUN(test_parse_and_names);
    RUN(test_validation_messages);
    return check_summary();
}
