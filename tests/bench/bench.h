/* bench.h — what bench.c's modes share with big.c (the big-checkpoint
 * modes): synthetic pairs, batch plans, JSON output. */
#ifndef DP_BENCH_H
#define DP_BENCH_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "loss.h"
#include "model.h"
#include "optim.h"

typedef struct pairs {
    int n;
    int *P, *C, *R;
    char dist[16];
} pairs;

typedef struct batch_plan {
    int n_batches;
    int *start, *count; /* into order[] */
    int *order;         /* pair indices, longest first */
    int max_tokens;     /* largest batch, packed */
} batch_plan;

typedef struct batch_buf {
    int32_t *tok;
    int *np, *nc, *nr;
    long n_resp;
} batch_buf;

int threads_wanted(void);
int fail(const char *what, const dp_err *e);
int write_json(json_t *o, const char *path);
const char *base_name(const char *path, char *buf, size_t cap);
void pairs_free(pairs *p);
int pairs_read(pairs *p, const char *path);
long seq_tokens(const pairs *p, int i);
long packed_tokens(const pairs *p, int i, int sharing);
double pair_forward_flops(const model_config *c, const pairs *p, int i, int sharing);
int plan_batches(batch_plan *b, const pairs *p, int sharing, int max_tokens);
void plan_free(batch_plan *b);
int batch_fill(batch_buf *bb, model_batch *mb, const pairs *p, const int *order, int n, int vocab);
void batch_buf_free(batch_buf *bb);
void set_common(json_t *o, const char *kind, const char *config, const pairs *p,
                const model_config *c, int sharing);
void set_rates(json_t *o, double seconds, double seq_tokens, double pairs, double flops,
               double init_seconds);

/* What DPO steps of a model need: AdamW (constant rate) over its trainable
 * weights (model_trainable), the sigmoid loss, buffers for batches of up to
 * max_tokens response tokens and pairs pairs. dpo_run_free releases it
 * (safe after a failed init). */
typedef struct dpo_run {
    optim o;
    loss_config lc;
    float *lp, *dlp;
    loss_example *ex;
    loss_result *res;
} dpo_run;
int dpo_run_init(dpo_run *r, const model *m, int max_tokens, int pairs, dp_err *e);
void dpo_run_free(dpo_run *r);
/* One DPO optimizer step of m on batch mb: forward, the sigmoid loss
 * against constant reference sums, backward, clip at 1, update. Returns
 * the loss, or NAN with e. */
double dpo_step(model *m, const model_batch *mb, dpo_run *r, dp_err *e);

/* big.c */
int cmd_write_ckpt(int argc, char **argv);
int cmd_big_precompute(int argc, char **argv);
int cmd_big_lora(int argc, char **argv);
int cmd_big_report(int argc, char **argv);

#endif
