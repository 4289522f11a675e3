/* optim — AdamW and SGD over one flat parameter array, learning-rate
 * schedules with warm-up, and global-norm gradient clipping.
 *
 * The optimizer state (AdamW's first and second moments) lives in one
 * allocation beside the model's parameters; it can be saved and restored
 * exactly for resume. */
#ifndef DP_OPTIM_H
#define DP_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef enum optim_kind { OPTIM_ADAMW, OPTIM_SGD } optim_kind;
typedef enum optim_schedule { SCHED_CONSTANT, SCHED_LINEAR, SCHED_COSINE } optim_schedule;

typedef struct optim_config {
    optim_kind kind;
    double lr, weight_decay, beta1, beta2, eps, momentum;
    optim_schedule schedule;
    long warmup_steps, total_steps;
} optim_config;

typedef struct optim {
    optim_config cfg;
    size_t n;
    long step;          /* optimizer steps taken */
    float *m, *v;       /* AdamW: first and second moments, one allocation of 2n
                         * floats (v = m + n). SGD with momentum: m is the
                         * momentum buffer (n floats), v NULL. Plain SGD: both NULL. */
    size_t state_bytes; /* the moments' allocation (an arena: base/arena.h) */
    size_t *no_decay;   /* sorted, disjoint [begin, end) pairs exempt from weight decay */
    int n_no_decay;     /* number of pairs */
} optim;

/* Hugging Face TrainingArguments' defaults with TRL DPOConfig's lr: AdamW,
 * lr 1e-6, weight_decay 0, betas (0.9, 0.999), eps 1e-8, momentum 0, linear
 * schedule, no warm-up, total_steps 0 (must be set for linear/cosine). */
void optim_config_default(optim_config *c);

/* Checks ranges: lr >= 0, weight_decay >= 0, beta1/beta2 in [0, 1), eps >= 0,
 * momentum >= 0, warmup_steps >= 0, total_steps > 0 for linear/cosine. Error
 * fields are named train.learning_rate, train.weight_decay, ... */
int optim_validate(const optim_config *c, dp_err *err);

/* Validates c, allocates zeroed state for n parameters; o->step = 0. On
 * failure o holds nothing to free. optim_free releases the state (safe on a
 * zeroed or already freed optim). */
int optim_init(optim *o, const optim_config *c, size_t n, dp_err *err);
void optim_free(optim *o);

/* Exempts parameters [begin, begin + count) from weight decay, as Hugging
 * Face's Trainer puts biases and norm weights in a parameter group with
 * weight_decay 0. Ranges may be added in any order but must not overlap or
 * run past n. Configuration, not state: it is not saved with the state. */
int optim_exclude_from_decay(optim *o, size_t begin, size_t count, dp_err *err);

/* Exact save/restore of the optimizer for resume: a native-endian blob of a
 * 40-byte header (magic "DPOCOPT1", kind, n, step, number of state floats)
 * followed by the state floats (m, then v). optim_state_size gives the blob's
 * size; optim_state_save writes it into buf (caller-owned, that size).
 * optim_state_load checks the blob against o (initialised with the same kind
 * and n) and copies step and moments into it; on mismatch it fails naming
 * what differs and leaves o unchanged. */
size_t optim_state_size(const optim *o);
void optim_state_save(const optim *o, void *buf);
int optim_state_load(optim *o, const void *buf, size_t size, dp_err *err);

/* The same blob for an optimizer sharded over slices of N_TOTAL parameters
 * (each slice an optim of its own, same config and step): the state is
 * every slice's m in order, then every slice's v. optim_state_header writes
 * the OPTIM_STATE_HEADER bytes; optim_state_check reads them from HDR of a
 * blob of SIZE bytes, checks them against C and N_TOTAL as optim_state_load
 * does, and sets *step. optim_state_arrays: 2 (AdamW), 1 (SGD with
 * momentum) or 0 arrays of n floats each. */
#define OPTIM_STATE_HEADER 40
void optim_state_header(const optim_config *c, size_t n_total, long step, void *hdr);
int optim_state_check(const optim_config *c, size_t n_total, const void *hdr, size_t size,
                      long *step, dp_err *err);
int optim_state_arrays(const optim_config *c);

/* Learning rate for optimizer step `step` (0-based): linear warm-up from 0
 * over warmup_steps, then constant, linear decay to 0, or cosine to 0 at
 * total_steps (Hugging Face's get_*_schedule_with_warmup). */
double optim_lr(const optim_config *c, long step);

/* L2 norm of the gradient, accumulated in double over fixed blocks so the
 * result does not depend on the thread count; optim_grad_sumsq is its
 * square before the root (a slice's share of a norm over several). */
double optim_grad_norm(const float *grad, size_t n);
double optim_grad_sumsq(const float *grad, size_t n);

/* torch.nn.utils.clip_grad_norm_: with norm the L2 norm, multiplies grad by
 * max_norm / (norm + 1e-6) when that is below 1 (no-op if max_norm <= 0 or
 * norm is not finite); returns the norm before clipping. */
double optim_clip(float *grad, size_t n, double max_norm);
/* The same multiplication for a gradient (or a slice of one) whose whole
 * norm NORM is known. */
void optim_clip_to(float *grad, size_t n, double max_norm, double norm);

/* One update of params with grad at the schedule's lr for o->step; increments
 * o->step. Returns the lr used. AdamW is torch.optim.AdamW (amsgrad off):
 * p ← p·(1 − lr·wd); m ← β1·m + (1−β1)g; v ← β2·v + (1−β2)g²;
 * p ← p − lr/(1−β1^t) · m / (sqrt(v)/sqrt(1−β2^t) + eps). SGD is
 * torch.optim.SGD (dampening 0, no Nesterov): g ← g + wd·p (coupled L2, as
 * torch does for SGD); with momentum μ, b ← g at the first step, else
 * b ← μ·b + g, and g ← b; p ← p − lr·g. Elementwise, so the result does not
 * depend on the thread count. */
double optim_step(optim *o, float *params, const float *grad);

#endif
