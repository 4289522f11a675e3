/* model — the transformer engine: Hugging Face checkpoints in and out, exact
 * fp32 forward and backward on CPU for preference pairs packed without
 * padding.
 *
 * Families (config.json "model_type"): gpt2, llama, mistral, qwen2, qwen3.
 * Every matrix multiply goes through cblas_sgemm; element-wise and attention
 * loops use OpenMP, never around a BLAS call. Parameters, gradients and
 * activations each live in one allocation carved into named tensors
 * (llm.c-style); activations are sized from options.max_tokens.
 *
 * Packing: an example is prompt P, chosen C, rejected R (R may be empty, for
 * SFT). With prefix sharing it runs as one unit of P+C+R tokens: chosen
 * tokens attend to P and earlier chosen tokens, rejected tokens to P and
 * earlier rejected tokens, and rejected positions continue from |P|. Without
 * prefix sharing it runs P+C and P+R as two sequences. Both give the same
 * numbers to float tolerance. The first response token of each side is
 * predicted from the last prompt position, so every example needs |P| ≥ 1. */
#ifndef DP_MODEL_H
#define DP_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct model_config {
    char model_type[32];     /* as in config.json */
    int n_layer, n_head, n_kv_head, head_dim, d_model, d_ff, vocab, max_pos;
    int tie_embeddings, attention_bias, mlp_bias, qk_norm, sliding_window;
    float norm_eps, rope_theta;
    /* rope_scaling: type 0 none, 1 linear, 2 llama3 */
    int rope_type;
    float rope_factor, rope_low_freq, rope_high_freq;
    int rope_original_max_pos;
    int bos_id, eos_id;      /* from config.json, -1 if absent */
} model_config;

typedef struct model_options {
    int training;            /* allocate gradients and keep activations for backward */
    int prefix_sharing;      /* 1 (default) or 0 */
    int threads;             /* OpenMP and BLAS threads; 0 = all cores */
    int max_tokens;          /* largest packed batch (tokens) forward will see */
} model_options;

typedef struct model model;

/* Loads a Hugging Face model directory (config.json + safetensors, single or
 * sharded; F32/F16/BF16). Read-only F32 weights stay memory-mapped when
 * !opt->training. *out is owned by the caller (model_free). */
int model_load(model **out, const char *dir, const model_options *opt, dp_err *err);

/* Builds a model from a config.json with weights drawn from N(0, 0.02)
 * (residual projections scaled by 1/sqrt(2·n_layer)), seeded. */
int model_init_random(model **out, const char *config_json, uint64_t seed,
                      const model_options *opt, dp_err *err);

void model_free(model *m);
const model_config *model_get_config(const model *m);

/* One packed batch. tokens holds, for example i in order, its n_prompt[i]
 * prompt ids, n_chosen[i] chosen ids, n_rejected[i] rejected ids. The batch
 * holds R = Σ (n_chosen[i] + n_rejected[i]) response tokens; outputs are laid
 * out the same way: example 0's chosen tokens, then its rejected tokens, then
 * example 1's, ... */
typedef struct model_batch {
    int n;
    const int32_t *tokens;
    const int *n_prompt, *n_chosen, *n_rejected;
} model_batch;

/* Forward. logps[R]: log p(token | prefix) of every response token.
 * mean_logits[R] (may be NULL): mean over the vocabulary of the logits that
 * predicted each response token (TRL's logits/chosen metric). */
int model_forward(model *m, const model_batch *b, float *logps, float *mean_logits,
                  dp_err *err);

/* Backward through the last forward: dlogps[R] = dLoss/dlogps. Accumulates
 * (+=) into the gradients. Requires opt.training. */
int model_backward(model *m, const float *dlogps, dp_err *err);

/* The flat parameter and gradient arrays (n floats each); layout is the
 * model's own and stable for a given config. */
float *model_params(model *m, size_t *n);
float *model_grads(model *m, size_t *n);
void model_zero_grads(model *m);

/* Writes DIR/config.json and DIR/model.safetensors (F32, or BF16 if bf16)
 * with Hugging Face names and layouts, loadable by transformers. */
int model_save(model *m, const char *dir, int bf16, dp_err *err);

/* Bytes training would need: weights, gradients, AdamW state, and
 * activations for a batch of `tokens` tokens. */
typedef struct model_memory {
    size_t n_params, weights, grads, adam, activations;
} model_memory;
model_memory model_memory_estimate(const model_config *c, int tokens);

/* Reads and validates config.json into *c. Unsupported model_type,
 * activation or rope type is an error naming it. */
int model_read_config(model_config *c, const char *config_json, dp_err *err);

#endif
