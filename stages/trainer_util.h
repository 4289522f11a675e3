/* trainer_util — the pieces of a training loop that dpoc sft and dpoc train
 * share: the optimizer's configuration from a config section, Hugging Face's
 * no-decay groups, the per-epoch data order, and checkpoints (model, exact
 * optimizer state, loop position) swapped in atomically for resume.
 *
 * A checkpoint is OUT/checkpoint/{config.json, model.safetensors,
 * optimizer.bin, state.json}; while a new one is written the previous one
 * stays whole (checkpoint.old during the swap), so kill -9 at any moment
 * leaves a checkpoint to resume from. */
#ifndef DP_TRAINER_UTIL_H
#define DP_TRAINER_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "error.h"
#include "model.h"
#include "optim.h"

/* AdamW (Hugging Face defaults for betas and eps) configured from
 * SECTION.learning_rate, .lr_schedule, .warmup_steps, .weight_decay, over
 * TOTAL_STEPS optimizer steps; AdamW with default betas and eps. A stage
 * with more keys (train: optimizer, adam_*, momentum) sets those on top. */
void tu_optim_config(const config *c, const char *section, long total_steps, optim_config *oc);

/* As Hugging Face's Trainer: no weight decay on biases and norm weights.
 * O covers the trainable parameters [off, off + o->n) (a rank's slice; 0
 * and all of them in one process): the ranges are cut to it and shifted. */
int tu_exclude_norms_and_biases(optim *o, const model *m, size_t off, dp_err *err);

/* SECTION.lora.* as model options for the model whose config.json is
 * CONFIG_JSON (the target names depend on the family); o->r is 0 when LoRA
 * is off. seed draws A and the dropout masks. */
int tu_lora_options(const config *c, const char *section, const char *config_json,
                    uint64_t seed, model_lora_options *o, dp_err *err);

/* The policy to train. Full fine-tuning: the checkpoint CKPT's weights when
 * resuming (CKPT not NULL), else INIT's (a model directory; NULL: random
 * weights for INIT_CONFIG with seed). With mo->lora.r > 0: the base from
 * INIT (or INIT_CONFIG), frozen, and the adapters from CKPT when resuming
 * (fresh ones otherwise). A checkpoint of the other kind is an error. */
int tu_load_policy(model **out, const char *init, const char *init_config, uint64_t seed,
                   const char *ckpt, const model_options *mo, dp_err *err);

/* Under memory.budget (nothing to do without one): the plan for training
 * INIT's model with *mo (LoRA or full) on batches of BATCH pairs of at most
 * UNIT tokens each — the smallest gradient accumulation ≥ *grad_accum that
 * divides BATCH and fits, with recompute and streaming as the plan says
 * (set into *grad_accum, mo->max_tokens, mo->recompute, *stream). Logged;
 * an error before any work when nothing fits. */
int tu_plan_budget(const config *c, const char *section, const char *init, int *grad_accum,
                   int batch, long unit, model_options *mo, int *stream, dp_err *err);

/* Writes the trained policy: with adapters OUT_DIR/adapter (PEFT) and,
 * when merge, OUT_DIR/model merged (the adapters are folded in, so m is a
 * plain model afterwards); without, OUT_DIR/model. Tokenizer files from
 * TOK_DIR go beside the model. BASE_NAME is the adapter's base model. */
int tu_export(model *m, const char *out_dir, const char *base_name, int merge, int bf16,
              const char *tok_dir, dp_err *err);

/* order[0..n) = the data order of epoch EPOCH: 0..n-1 when !shuffle, else a
 * Fisher-Yates shuffle that depends only on (seed, epoch), so a resumed run
 * needs no RNG state beyond its position. */
void tu_epoch_order(size_t *order, size_t n, int shuffle, uint64_t seed, long epoch);

/* Where a loop stands. tag identifies what the run trains against (train:
 * the reference fingerprint; sft: a hash of its examples); a checkpoint
 * with another tag is refused. */
typedef struct tu_state {
    long step, epoch, num_tokens;
    size_t pos;                 /* next index into the epoch's order */
    char tag[48];
} tu_state;

/* ---- data parallelism (ZeRO stage 2 over dist_*) ----
 * The flat trainable array (model_trainable) is cut into dist_size()
 * contiguous slices; rank r owns slice r: its optimizer state (an optim of
 * the slice's length) and its part of the reduced gradient. A step:
 * every rank's backward over its part of the batch, then tu_shard_reduce
 * (reduce-scatter of the gradients, the global norm from every slice's
 * Σg²), then tu_shard_update (clip with the global norm, the optimizer on
 * the slice, all-gather of the parameters): 2 × 4 bytes × n on the wire, as
 * an all-reduce, and optimizer memory per rank 1/N. With one process the
 * slice is everything and the step is optim_clip + optim_step, bit for bit. */
typedef struct tu_shard {
    int rank, size;
    size_t n;                   /* trainable parameters */
    size_t off, len;            /* this rank's slice */
    size_t *counts;             /* every rank's slice length */
    float *grad;                /* the reduced slice (len floats); NULL with one process */
} tu_shard;

int tu_shard_init(tu_shard *s, size_t n, dp_err *err);
void tu_shard_free(tu_shard *s);
/* [*lo, *hi): this rank's part of N items (contiguous, in rank order). */
void tu_shard_part(const tu_shard *s, size_t n, size_t *lo, size_t *hi);
/* Reduces GRADS (every rank's n gradients) into this rank's slice; returns
 * the whole gradient's L2 norm. */
double tu_shard_reduce(tu_shard *s, float *grads);
/* Clips the slice to MAX_NORM given NORM, steps O (this rank's slice's
 * optimizer) over it and gathers every slice into PARAMS. Returns the lr. */
double tu_shard_update(tu_shard *s, optim *o, float *params, float *grads, double norm,
                       double max_norm);
/* Rank 0's PARAMS[0..n) to every rank (a resumed run: only rank 0 reads
 * the checkpoint). */
void tu_shard_bcast_params(const tu_shard *s, float *params);

/* Writes OUT_DIR/checkpoint: the model's weights (F32), the optimizer's
 * state and *s, fsynced, replacing the previous checkpoint only once the
 * new one is whole. TAG_KEY names tag in state.json ("reference").
 * Collective: rank 0 writes, streaming every rank's optimizer slice (SH)
 * into one optimizer.bin laid out as one process's, so a checkpoint loads
 * under any number of ranks; every rank returns rank 0's result. */
int tu_checkpoint_save(const char *out_dir, model *m, const optim *o, const tu_shard *sh,
                       const tu_state *s, const char *tag_key, dp_err *err);

/* The checkpoint directory to resume from (OUT_DIR/checkpoint, or
 * checkpoint.old when a crash hit the swap) into dir; returns 1 if there is
 * one, 0 if not. Collective: rank 0 looks, every rank gets its answer. */
int tu_checkpoint_find(const char *out_dir, char *dir, size_t size);

/* Reads DIR/state.json into *s and DIR/optimizer.bin into o (initialised
 * with the same kind and SH's slice length). A state whose tag differs
 * from want_tag is an error naming both and WHAT_TO_DO (e.g. "use another
 * train.output or train.resume=never"). The model weights are DIR itself:
 * model_load it (rank 0; tu_shard_bcast_params for the others).
 * Collective: rank 0 reads and sends each rank its slice. */
int tu_checkpoint_load(const char *dir, const char *tag_key, const char *want_tag,
                       const char *what_to_do, const tu_shard *sh, tu_state *s, optim *o,
                       dp_err *err);

/* SIGTERM, SIGINT and SIGUSR1 (schedulers send SIGTERM before killing;
 * mpirun forwards SIGUSR1 to the ranks) set a flag instead of ending the
 * process; training loops check it at each step boundary with
 * tu_stop_signal, save a checkpoint and stop; a second signal ends the
 * process at once. tu_stop_signal is collective: the signal any rank
 * received, 0 if none. tu_stop_name: "SIGTERM", ... */
void tu_stop_install(void);
int tu_stop_signal(void);
const char *tu_stop_name(int sig);

/* The end of a step line, like precompute's progress line: "elapsed 1m05s,
 * ETA 9m10s" for STEP of TOTAL steps, START the stage's clock (su_now) and
 * FIRST_STEP the step this process began at (a resumed run extrapolates
 * from its own steps only). Returns BUF. */
char *tu_step_timing(char *buf, size_t cap, double start, long step, long first_step, long total);

/* The stage's final summary line, like precompute's: "LABEL: 64 steps
 * (1024 ITEMS, 60475 tokens) in 3.1 s, 19508 tokens/s, peak memory 50.3 MiB;
 * model in OUT_DIR/model", counting this process's work. */
void tu_log_summary(const char *label, long steps, long items, const char *item_name, long tokens,
                    double secs, const char *out_dir);

/* Writes a file and fsyncs it. */
int tu_write_file_sync(const char *path, const void *data, size_t n, dp_err *err);

#endif
