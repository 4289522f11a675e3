/* optim — see optim.h.
 *
 * Learning-rate schedules are Hugging Face transformers' LambdaLR lambdas,
 * evaluated at the 0-based optimizer step s (LambdaLR starts at 0 and is
 * stepped after each optimizer step, so step s uses lambda(s)); W = warm-up
 * steps, T = total steps:
 *   s < W:     s / max(1, W)                                    (all schedules)
 *   constant:  1
 *   linear:    max(0, (T − s) / max(1, T − W))
 *   cosine:    p = (s − W) / max(1, T − W); max(0, ½(1 + cos(π · 0.5 · 2 · p)))
 * (get_constant_schedule_with_warmup, get_linear_schedule_with_warmup,
 * get_cosine_schedule_with_warmup with num_cycles = 0.5).
 *
 * The moments are float, as torch keeps them for float parameters; each
 * update is computed in double from the stored floats and rounded once. */
#include "optim.h"

#include "arena.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define OPTIM_PAR_MIN 65536  /* below this, threads cost more than they save */
#define NORM_BLOCK 16384     /* fixed summation blocks: thread-count independent */
#define STATE_HEADER OPTIM_STATE_HEADER

void optim_config_default(optim_config *c) {
    memset(c, 0, sizeof *c);
    c->kind = OPTIM_ADAMW;
    c->lr = 1e-6;
    c->weight_decay = 0.0;
    c->beta1 = 0.9;
    c->beta2 = 0.999;
    c->eps = 1e-8;
    c->momentum = 0.0;
    c->schedule = SCHED_LINEAR;
    c->warmup_steps = 0;
    c->total_steps = 0;
}

int optim_validate(const optim_config *c, dp_err *err) {
    if (c->kind != OPTIM_ADAMW && c->kind != OPTIM_SGD)
        return dp_fail(err, "train.optimizer: expected adamw or sgd, got kind %d", (int)c->kind);
    if (!(c->lr >= 0) || !isfinite(c->lr))
        return dp_fail(err, "train.learning_rate: expected a finite number >= 0, got %g", c->lr);
    if (!(c->weight_decay >= 0) || !isfinite(c->weight_decay))
        return dp_fail(err, "train.weight_decay: expected a finite number >= 0, got %g",
                       c->weight_decay);
    if (c->kind == OPTIM_ADAMW) {
        if (!(c->beta1 >= 0 && c->beta1 < 1))
            return dp_fail(err, "train.adam_beta1: expected a number in [0, 1), got %g", c->beta1);
        if (!(c->beta2 >= 0 && c->beta2 < 1))
            return dp_fail(err, "train.adam_beta2: expected a number in [0, 1), got %g", c->beta2);
        if (!(c->eps >= 0) || !isfinite(c->eps))
            return dp_fail(err, "train.adam_epsilon: expected a finite number >= 0, got %g", c->eps);
    } else if (!(c->momentum >= 0) || !isfinite(c->momentum)) {
        return dp_fail(err, "train.momentum: expected a finite number >= 0, got %g", c->momentum);
    }
    if (c->schedule != SCHED_CONSTANT && c->schedule != SCHED_LINEAR && c->schedule != SCHED_COSINE)
        return dp_fail(err, "train.lr_schedule: expected constant, linear or cosine, got %d",
                       (int)c->schedule);
    if (c->warmup_steps < 0)
        return dp_fail(err, "train.warmup_steps: expected an integer >= 0, got %ld", c->warmup_steps);
    if (c->schedule != SCHED_CONSTANT && c->total_steps <= 0)
        return dp_fail(err, "train.lr_schedule: %s decay needs the total number of steps > 0, got %ld",
                       c->schedule == SCHED_LINEAR ? "linear" : "cosine", c->total_steps);
    return 0;
}

/* Number of state floats for a config: 2n (AdamW), n (SGD with momentum), 0. */
static size_t state_floats(const optim_config *c, size_t n) {
    if (c->kind == OPTIM_ADAMW) return 2 * n;
    return c->momentum != 0 ? n : 0;
}

int optim_init(optim *o, const optim_config *c, size_t n, dp_err *err) {
    memset(o, 0, sizeof *o);
    if (optim_validate(c, err)) return -1;
    size_t k = state_floats(c, n);
    float *state = NULL;
    if (k) {
        state = dp_arena_alloc(k * sizeof *state, err);
        if (!state) return dp_context(err, "optimizer state for %zu parameters", n);
    }
    o->cfg = *c;
    o->n = n;
    o->step = 0;
    o->m = state;
    o->v = c->kind == OPTIM_ADAMW ? state + n : NULL;
    o->state_bytes = k * sizeof *state;
    return 0;
}

void optim_free(optim *o) {
    dp_arena_free(o->m, o->state_bytes);
    free(o->no_decay);
    o->m = o->v = NULL;
    o->state_bytes = 0;
    o->no_decay = NULL;
    o->n_no_decay = 0;
}

int optim_exclude_from_decay(optim *o, size_t begin, size_t count, dp_err *err) {
    if (count == 0) return 0;
    if (begin > o->n || count > o->n - begin)
        return dp_fail(err, "optimizer: no-decay range [%zu, %zu) runs past the %zu parameters", begin,
                       begin + count, o->n);
    size_t end = begin + count;
    int at = 0; /* insertion point keeping the pairs sorted */
    while (at < o->n_no_decay && o->no_decay[2 * at] < begin) at++;
    if ((at > 0 && o->no_decay[2 * at - 1] > begin) || (at < o->n_no_decay && o->no_decay[2 * at] < end))
        return dp_fail(err, "optimizer: no-decay range [%zu, %zu) overlaps one already set", begin, end);
    size_t *grown = realloc(o->no_decay, (size_t)(o->n_no_decay + 1) * 2 * sizeof *grown);
    if (!grown) return dp_fail(err, "out of memory for no-decay ranges");
    o->no_decay = grown;
    memmove(grown + 2 * at + 2, grown + 2 * at, (size_t)(o->n_no_decay - at) * 2 * sizeof *grown);
    grown[2 * at] = begin;
    grown[2 * at + 1] = end;
    o->n_no_decay++;
    return 0;
}

double optim_lr(const optim_config *c, long step) {
    double s = (double)step, w = (double)c->warmup_steps, t = (double)c->total_steps;
    double f;
    if (step < c->warmup_steps) {
        f = s / fmax(1.0, w);
    } else if (c->schedule == SCHED_LINEAR) {
        f = fmax(0.0, (t - s) / fmax(1.0, t - w));
    } else if (c->schedule == SCHED_COSINE) {
        double progress = (s - w) / fmax(1.0, t - w);
        f = fmax(0.0, 0.5 * (1.0 + cos(M_PI * 0.5 * 2.0 * progress)));
    } else {
        f = 1.0;
    }
    return c->lr * f;
}

double optim_grad_sumsq(const float *grad, size_t n) {
    size_t nblocks = (n + NORM_BLOCK - 1) / NORM_BLOCK;
    if (nblocks <= 1) {
        double s = 0;
        for (size_t i = 0; i < n; i++) s += (double)grad[i] * grad[i];
        return s;
    }
    double *part = malloc(nblocks * sizeof *part);
    double total = 0;
    if (!part) { /* no memory for the partial sums: same order, one thread */
        for (size_t b = 0; b < nblocks; b++) {
            double s = 0;
            size_t end = (b + 1) * NORM_BLOCK < n ? (b + 1) * NORM_BLOCK : n;
            for (size_t i = b * NORM_BLOCK; i < end; i++) s += (double)grad[i] * grad[i];
            total += s;
        }
        return total;
    }
#pragma omp parallel for schedule(static) if (n >= OPTIM_PAR_MIN)
    for (size_t b = 0; b < nblocks; b++) {
        double s = 0;
        size_t end = (b + 1) * NORM_BLOCK < n ? (b + 1) * NORM_BLOCK : n;
        for (size_t i = b * NORM_BLOCK; i < end; i++) s += (double)grad[i] * grad[i];
        part[b] = s;
    }
    for (size_t b = 0; b < nblocks; b++) total += part[b];
    free(part);
    return total;
}

double optim_grad_norm(const float *grad, size_t n) { return sqrt(optim_grad_sumsq(grad, n)); }

void optim_clip_to(float *grad, size_t n, double max_norm, double norm) {
    if (!(max_norm > 0) || !isfinite(norm)) return;
    double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) {
#pragma omp parallel for schedule(static) if (n >= OPTIM_PAR_MIN)
        for (size_t i = 0; i < n; i++) grad[i] = (float)(grad[i] * coef);
    }
}

double optim_clip(float *grad, size_t n, double max_norm) {
    double norm = optim_grad_norm(grad, n);
    optim_clip_to(grad, n, max_norm, norm);
    return norm;
}

/* AdamW over [lo, hi) with weight decay factor `decay` (1 for exempt ranges),
 * in float as torch.optim.AdamW computes it (decay first, then
 * p −= step_size · m / (√v / √(1 − β2^t) + eps)), so the loop vectorises:
 * it reads and writes every parameter and both moments each step. */
static void adamw_range(optim *o, float *p, const float *g, size_t lo, size_t hi, double lr,
                        double decay) {
    const optim_config *c = &o->cfg;
    const double t = (double)(o->step + 1);
    const float b1 = (float)c->beta1, b2 = (float)c->beta2;
    const float one_b1 = (float)(1.0 - c->beta1), one_b2 = (float)(1.0 - c->beta2);
    const float step_size = (float)(lr / (1.0 - pow(c->beta1, t)));
    const float bc2_sqrt = (float)sqrt(1.0 - pow(c->beta2, t));
    const float eps = (float)c->eps, dec = (float)decay;
    const int decays = decay != 1.0;
    float *m = o->m, *v = o->v;
#pragma omp parallel for simd schedule(static) if (hi - lo >= OPTIM_PAR_MIN)
    for (size_t i = lo; i < hi; i++) {
        float gi = g[i];
        float pd = decays ? p[i] * dec : p[i];
        float mi = b1 * m[i] + one_b1 * gi;
        float vi = b2 * v[i] + one_b2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = pd - step_size * (mi / (sqrtf(vi) / bc2_sqrt + eps));
    }
}

/* SGD over [lo, hi) with (coupled) weight decay wd. */
static void sgd_range(optim *o, float *p, const float *g, size_t lo, size_t hi, double lr, double wd) {
    const double mu = o->cfg.momentum;
    const int first = o->step == 0;
    float *buf = o->m;
#pragma omp parallel for schedule(static) if (hi - lo >= OPTIM_PAR_MIN)
    for (size_t i = lo; i < hi; i++) {
        double d = g[i];
        if (wd != 0) d = (float)(d + wd * p[i]);
        if (buf) {
            buf[i] = first ? (float)d : (float)(mu * buf[i] + d);
            d = buf[i];
        }
        p[i] = (float)(p[i] - lr * d);
    }
}

/* Runs the kind's kernel over alternating decayed / exempt segments. */
static void update_range(optim *o, float *p, const float *g, size_t lo, size_t hi, double lr, int decayed) {
    if (lo >= hi) return;
    double wd = decayed ? o->cfg.weight_decay : 0.0;
    if (o->cfg.kind == OPTIM_ADAMW) adamw_range(o, p, g, lo, hi, lr, 1.0 - lr * wd);
    else sgd_range(o, p, g, lo, hi, lr, wd);
}

double optim_step(optim *o, float *params, const float *grad) {
    double lr = optim_lr(&o->cfg, o->step);
    size_t at = 0;
    for (int r = 0; r < o->n_no_decay; r++) {
        update_range(o, params, grad, at, o->no_decay[2 * r], lr, 1);
        update_range(o, params, grad, o->no_decay[2 * r], o->no_decay[2 * r + 1], lr, 0);
        at = o->no_decay[2 * r + 1];
    }
    update_range(o, params, grad, at, o->n, lr, 1);
    o->step++;
    return lr;
}

/* ---- state blob ---- */

static const char state_magic[8] = {'D', 'P', 'O', 'C', 'O', 'P', 'T', '1'};

size_t optim_state_size(const optim *o) {
    return STATE_HEADER + state_floats(&o->cfg, o->n) * sizeof(float);
}

int optim_state_arrays(const optim_config *c) { return (int)state_floats(c, 1); }

void optim_state_header(const optim_config *c, size_t n_total, long step, void *hdr) {
    unsigned char *b = hdr;
    uint32_t kind = (uint32_t)c->kind, reserved = 0;
    uint64_t n = n_total, k = state_floats(c, n_total);
    int64_t st = step;
    memcpy(b, state_magic, 8);
    memcpy(b + 8, &kind, 4);
    memcpy(b + 12, &reserved, 4);
    memcpy(b + 16, &n, 8);
    memcpy(b + 24, &st, 8);
    memcpy(b + 32, &k, 8);
}

void optim_state_save(const optim *o, void *buf) {
    optim_state_header(&o->cfg, o->n, o->step, buf);
    size_t k = state_floats(&o->cfg, o->n);
    if (k) memcpy((unsigned char *)buf + STATE_HEADER, o->m, k * sizeof(float));
}

int optim_state_check(const optim_config *c, size_t n_total, const void *hdr, size_t size,
                      long *step_out, dp_err *err) {
    const unsigned char *b = hdr;
    if (size < STATE_HEADER || memcmp(b, state_magic, 8) != 0)
        return dp_fail(err, "optimizer state: expected a dpoc optimizer state (magic DPOCOPT1), "
                            "found %zu bytes without it", size);
    uint32_t kind;
    uint64_t n, k;
    int64_t step;
    memcpy(&kind, b + 8, 4);
    memcpy(&n, b + 16, 8);
    memcpy(&step, b + 24, 8);
    memcpy(&k, b + 32, 8);
    if (kind != (uint32_t)c->kind)
        return dp_fail(err, "optimizer state: expected %s state, found %s",
                       c->kind == OPTIM_ADAMW ? "adamw" : "sgd",
                       kind == OPTIM_ADAMW ? "adamw" : kind == OPTIM_SGD ? "sgd" : "an unknown kind");
    if (n != n_total)
        return dp_fail(err, "optimizer state: expected %zu parameters, found %llu", n_total,
                       (unsigned long long)n);
    size_t want = state_floats(c, n_total);
    if (k != want)
        return dp_fail(err, "optimizer state: expected %zu state values (%s), found %llu", want,
                       c->kind == OPTIM_ADAMW ? "two moments" : "momentum buffer",
                       (unsigned long long)k);
    if (size != STATE_HEADER + want * sizeof(float))
        return dp_fail(err, "optimizer state: expected %zu bytes, found %zu",
                       STATE_HEADER + want * sizeof(float), size);
    if (step < 0)
        return dp_fail(err, "optimizer state: expected a step count >= 0, found %lld", (long long)step);
    *step_out = (long)step;
    return 0;
}

int optim_state_load(optim *o, const void *buf, size_t size, dp_err *err) {
    long step;
    if (optim_state_check(&o->cfg, o->n, buf, size, &step, err)) return -1;
    size_t want = state_floats(&o->cfg, o->n);
    if (want) memcpy(o->m, (const unsigned char *)buf + STATE_HEADER, want * sizeof(float));
    o->step = step;
    return 0;
}
