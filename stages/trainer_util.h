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

/* As Hugging Face's Trainer: no weight decay on biases and norm weights. */
int tu_exclude_norms_and_biases(optim *o, const model *m, dp_err *err);

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

/* Writes OUT_DIR/checkpoint: the model's weights (F32), the optimizer's
 * state and *s, fsynced, replacing the previous checkpoint only once the
 * new one is whole. TAG_KEY names tag in state.json ("reference"). */
int tu_checkpoint_save(const char *out_dir, model *m, const optim *o, const tu_state *s,
                       const char *tag_key, dp_err *err);

/* The checkpoint directory to resume from (OUT_DIR/checkpoint, or
 * checkpoint.old when a crash hit the swap) into dir; returns 1 if there is
 * one, 0 if not. */
int tu_checkpoint_find(const char *out_dir, char *dir, size_t size);

/* Reads DIR/state.json into *s and DIR/optimizer.bin into o (initialised
 * with the same kind and size). A state whose tag differs from want_tag is
 * an error naming both and WHAT_TO_DO (e.g. "use another train.output or
 * train.resume=never"). The model weights are DIR itself: model_load it. */
int tu_checkpoint_load(const char *dir, const char *tag_key, const char *want_tag,
                       const char *what_to_do, tu_state *s, optim *o, dp_err *err);

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
