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
    float *m, *v;       /* one allocation of 2n floats (NULL for plain SGD) */
} optim;

int optim_init(optim *o, const optim_config *c, size_t n, dp_err *err);
void optim_free(optim *o);

/* Learning rate for optimizer step `step` (0-based): linear warm-up from 0
 * over warmup_steps, then constant, linear decay to 0, or cosine to 0 at
 * total_steps (Hugging Face's get_*_schedule_with_warmup). */
double optim_lr(const optim_config *c, long step);

/* L2 norm of the gradient (computed in double). */
double optim_grad_norm(const float *grad, size_t n);

/* Scales grad so its norm is at most max_norm (no-op if max_norm <= 0);
 * returns the norm before clipping. */
double optim_clip(float *grad, size_t n, double max_norm);

/* One update of params with grad at the schedule's current lr; increments
 * o->step. Returns the lr used. */
double optim_step(optim *o, float *params, const float *grad);

#endif
