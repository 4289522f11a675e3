/* model — the transformer engine: Hugging Face checkpoints in and out, exact
 * fp32 forward and backward on CPU for preference pairs packed without
 * padding.
 *
 * Families (config.json "model_type"): gpt2, llama, mistral, qwen2, qwen3,
 * gemma, gemma2, gemma3_text, phi3.
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

#define MODEL_ROPE_MAX 256 /* longrope factors per list: rotated dims / 2 */

typedef struct model_config {
    char model_type[32];     /* as in config.json */
    int n_layer, n_head, n_kv_head, head_dim, d_model, d_ff, vocab, max_pos;
    int tie_embeddings, attention_bias, mlp_bias, qk_norm, sliding_window;
    float norm_eps, rope_theta;
    /* rope_scaling: type 0 none, 1 linear, 2 llama3, 3 longrope (Phi-3) */
    int rope_type;
    float rope_factor, rope_low_freq, rope_high_freq;
    int rope_original_max_pos;
    int bos_id, eos_id;      /* from config.json, -1 if absent */
    /* Gemma family: RMSNorm weights used as 1 + w, embeddings × √d_model
     * (rounded to float32), GeGLU with the tanh GELU. */
    int gemma;
    int post_norms;          /* Gemma 2/3: post-attention and pre/post-feed-forward norms */
    /* Which layers are sliding-window layers: 0, every layer (Mistral, Phi-3);
     * p > 0, layer i iff (i + 1) % p != 0 (Gemma 2: 2, Gemma 3: 6). The
     * window itself is sliding_window (0: none). */
    int sliding_pattern;
    float query_pre_attn_scalar; /* scores scaled by its −1/2 power; 0: head_dim's */
    float attn_softcap, final_softcap; /* tanh soft-caps; 0: none */
    float rope_local_theta;  /* Gemma 3: sliding layers' RoPE base, unscaled; 0: none */
    int fused;               /* Phi-3: fused qkv_proj and gate_up_proj */
    int rope_dim;            /* rotated dims per head (partial_rotary_factor); head_dim */
    /* longrope: per-frequency divisors, short below rope_original_max_pos
     * tokens and long beyond, and cos/sin scaled by rope_attn_factor */
    float rope_attn_factor;
    float rope_short[MODEL_ROPE_MAX], rope_long[MODEL_ROPE_MAX];
} model_config;

/* LoRA (PEFT's semantics): every targeted linear layer y = W x + b gains
 * scale · B A dropout(x), A [r, in] and B [out, r]; scale = alpha / r, or
 * alpha / sqrt(r) with use_rslora. Targets are MODEL_LORA_* bits (GPT-2:
 * c_attn is one adapter over the fused [C, 3C] matrix; c_proj names both
 * attn.c_proj and mlp.c_proj, as PEFT's suffix match does; Phi-3's
 * qkv_proj and gate_up_proj are one adapter each). */
enum {
    MODEL_LORA_Q = 1 << 0, MODEL_LORA_K = 1 << 1, MODEL_LORA_V = 1 << 2, MODEL_LORA_O = 1 << 3,
    MODEL_LORA_GATE = 1 << 4, MODEL_LORA_UP = 1 << 5, MODEL_LORA_DOWN = 1 << 6,
    MODEL_LORA_QKV = 1 << 7, /* GPT-2 c_attn, Phi-3 qkv_proj */
    MODEL_LORA_GATE_UP = 1 << 8, /* Phi-3 gate_up_proj */
};
typedef struct model_lora_options {
    int r;                   /* rank; 0: no adapters */
    float alpha, dropout;    /* dropout in [0, 1), on the adapter's input while training */
    int use_rslora;
    unsigned targets;        /* MODEL_LORA_* bits */
    uint64_t seed;           /* A's kaiming-uniform draw and the dropout masks */
} model_lora_options;

typedef struct model_options {
    int training;            /* allocate gradients and keep activations for backward;
                              * with lora.r > 0 only the adapters get gradients and
                              * the base stays frozen (and may stay mapped) */
    model_lora_options lora;
    int prefix_sharing;      /* 1 (default) or 0 */
    int threads;             /* OpenMP and BLAS threads; 0 = all cores */
    int max_tokens;          /* largest packed batch (tokens) forward will see */
    int headers_only;        /* model_load checks names, shapes and dtypes from the
                              * headers and reads no weight (model info) */
    int widen_half;          /* load half-precision frozen weights as float32
                              * copies (0: keep them in the file's dtype, widened
                              * one layer at a time) */
    int recompute;           /* training: keep only each layer's input (residual
                              * stream) and run the layer's forward again inside
                              * backward, so activations cost one layer instead
                              * of n_layer; same kernels, same order, the same
                              * bits, about one more forward of compute */
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

/* Builds a model for config *c with every parameter zero. config_json_text
 * (may be NULL) is the config.json text model_save writes back (a minimal
 * one is generated when NULL). The loaders are built on this. */
int model_new(model **out, const model_config *c, const char *config_json_text,
              const model_options *opt, dp_err *err);
/* The config.json text the model was built from (owned by the model). */
const char *model_config_text(const model *m);

/* The named parameter tensors, in the model's layout order. name is the
 * Hugging Face name (GPT-2 names carry "transformer."); the tensor's values
 * are model_params()[offset .. offset+numel), its gradient likewise in
 * model_grads(). Tied lm_head has no entry of its own. */
typedef struct model_tensor {
    const char *name;
    int ndim;
    int64_t shape[2];
    size_t offset, numel;
} model_tensor;
int model_n_tensors(const model *m);
const model_tensor *model_tensor_at(const model *m, int i);
const model_tensor *model_find_tensor(const model *m, const char *name); /* NULL if absent */

/* The values of tensor i wherever they live (model_params() or a mapping). */
const float *model_tensor_data(const model *m, int i);

/* Loader hooks for memory-mapped weights, only for models built without
 * training: tensor i then reads from data (numel floats, 4-byte aligned,
 * valid until model_free) and its slot in model_params() stays zero;
 * release(ctx) runs once in model_free (it unmaps). */
int model_attach_tensor(model *m, int i, const float *data, dp_err *err);
void model_set_release(model *m, void (*release)(void *), void *ctx);
/* Keeps matrix tensor i (a layer's matrix, the embeddings or an untied head)
 * in half precision: data holds numel IEEE half (bf16 == 0) or bfloat16
 * values, 2-byte aligned, valid until model_free. Only for frozen weights
 * (no training, or LoRA's base). Layer matrices are widened one layer at a
 * time, the head in blocks of rows, embeddings row by row. */
int model_attach_half(model *m, int i, const uint16_t *data, int bf16, dp_err *err);
/* Streaming (on): the mapped pages of a layer, and of the head, go back to
 * the kernel once they are widened, so resident memory holds about one
 * layer of the file; reading them again costs a page-cache or disk read. */
void model_stream(model *m, int on);
/* Bytes of half-precision weights read (widened) so far and the seconds
 * spent on it. */
void model_read_stats(const model *m, uint64_t *bytes, double *seconds);

/* Sets OpenMP and OpenBLAS thread counts (0 = all cores). model_new and
 * model_load call it with opt->threads, and forward/backward restore their
 * model's count if another model changed it meanwhile. */
void model_set_threads(int threads);
/* The OpenBLAS kernel family in use (e.g. "Haswell"), for start-up logs. */
const char *model_blas_corename(void);

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

/* Logits[vocab] for the token following tokens[0..n) (one causal sequence,
 * 1 ≤ n ≤ max_tokens), for sampling and evaluation. Replaces the state of
 * the last forward, so model_backward has nothing to go through after it. */
int model_next_logits(model *m, const int32_t *tokens, int n, float *logits, dp_err *err);

/* Tokens the last forward actually ran (the packed length: with prefix
 * sharing Σ(P+C+R), without it Σ(P+C) + Σ_{R>0}(P+R)); 0 before any. */
int model_packed_tokens(const model *m);

/* Backward through the last forward: dlogps[R] = dLoss/dlogps. Accumulates
 * (+=) into the gradients. Requires opt.training. */
int model_backward(model *m, const float *dlogps, dp_err *err);

/* The flat parameter and gradient arrays (n floats each); layout is the
 * model's own and stable for a given config (see model_tensor_at). For a
 * model loaded without training, F32 tensors stay in the file's mapping:
 * read them with model_tensor_data. model_grads is NULL without training. */
float *model_params(model *m, size_t *n);
float *model_grads(model *m, size_t *n);
void model_zero_grads(model *m);

/* Writes DIR/config.json and DIR/model.safetensors (F32, or BF16 if bf16)
 * with Hugging Face names and layouts, loadable by transformers. */
int model_save(model *m, const char *dir, int bf16, dp_err *err);

/* Bytes training would need: weights, gradients, AdamW state, and
 * activations for a batch of `tokens` tokens, as model_new allocates them
 * without (activations) and with (activations_recompute) options.recompute. */
typedef struct model_memory {
    size_t n_params, weights, grads, adam, activations, activations_recompute;
    size_t activations_inference;   /* a forward only (precompute, eval) */
    size_t layer_matrix_params;     /* one layer's matrices */
    size_t embed_params;            /* embeddings and an untied head */
} model_memory;
model_memory model_memory_estimate(const model_config *c, int tokens);

/* ---- memory plans (plan.c) ----
 * How a job fits a memory budget (peak resident memory): the engine's
 * buffers as model_memory_estimate counts them, the weights as they are
 * kept (frozen half-precision weights mapped, one layer widened to float32
 * at a time; streamed, about one layer of the file resident), adapters and
 * their optimizer state, and a fixed allowance for the process (libraries,
 * BLAS buffers). */
typedef enum model_job { MODEL_JOB_FORWARD, MODEL_JOB_TRAIN, MODEL_JOB_LORA } model_job;
typedef struct model_plan {
    model_job job;
    int weight_bytes;   /* bytes per element of the checkpoint's matrices: 2 or 4 */
    int tokens;         /* tokens of one packed batch */
    int stream, recompute;
    size_t weights, scratch, trainable, activations, overhead, total;
} model_plan;
/* The plan with these switches (stream applies to frozen half-precision
 * weights only; recompute to training). lora_r/targets for MODEL_JOB_LORA. */
model_plan model_plan_estimate(const model_config *c, model_job job, int weight_bytes, int tokens,
                               int stream, int recompute, int lora_r, unsigned targets);
/* The cheapest plan within budget bytes: as asked (recompute as given),
 * then with recompute (training), then streaming (frozen half weights), then
 * with fewer tokens per batch, halving down to min_tokens. Returns 0 with
 * *out, or -1 with err giving the smallest estimate and what would fit
 * (a larger budget, LoRA instead of full training). */
int model_plan_fit(model_plan *out, const model_config *c, model_job job, int weight_bytes,
                   int tokens, int min_tokens, int recompute, size_t budget, int lora_r,
                   unsigned targets, dp_err *err);
/* One line describing the plan ("streamed, recompute, 2048 tokens: weights
 * ... = total ..."), into buf. */
void model_plan_describe(const model_plan *p, char *buf, size_t cap);
/* What a plan needs of model directory DIR without loading it: its
 * config.json into *c (skipped when c is NULL) and the bytes per element of
 * its layer matrices (2 for BF16/F16, 4 for F32) from the safetensors
 * headers only. */
int model_peek(const char *dir, model_config *c, int *bytes, dp_err *err);

/* Reads and validates config.json into *c. config_json is a path, or the
 * JSON text itself when its first non-blank character is '{' (the same for
 * model_init_random). Unsupported model_type, activation or rope type is an
 * error naming it. Mistral's sliding_window w: a query attends to the keys
 * whose position is > its own − w (w keys including itself); Gemma 2 and 3
 * apply it on their sliding layers only, Phi-3 on every layer.
 *
 * Family conventions, as transformers defines them: Gemma's √hidden_size is
 * rounded to float32 (the engine's compute dtype); Gemma 1.0 configs'
 * hidden_act "gelu" is the tanh GELU (hidden_activation wins when given);
 * Gemma 2's soft-caps default to 50 and 30 and are off when null; Gemma 3
 * never soft-caps attention (final logits only when the config says so)
 * and reads layer_types or sliding_window_pattern; Phi-3's longrope takes
 * its long factors when a forward's largest position reaches
 * original_max_position_embeddings (the whole packed batch decides, as a
 * padded batch's position ids do in transformers; the KV cache decides per
 * append, so a sequence that grows past that length keeps, like
 * transformers' cache, the keys it made with the short factors). */
int model_read_config(model_config *c, const char *config_json, dp_err *err);

/* ---- LoRA adapters (lora.c, lora_io.c) -------------------------------------
 * The module names a family's adapters may target, in PEFT's spelling, and
 * the bits they stand for. "all-linear" (every linear layer of the blocks,
 * the LM head excluded) is all of them. An unknown name is an error that
 * lists the valid ones. */
int model_lora_parse_targets(const char *model_type, const char *const *names, int n,
                             unsigned *targets, dp_err *err);
/* Every MODEL_LORA_* bit a family has ("all-linear"). */
unsigned model_lora_family_targets(const char *model_type);
/* The expanded names of TARGETS for MODEL_TYPE, sorted, comma-separated,
 * into buf. */
void model_lora_target_names(const char *model_type, unsigned targets, char *buf, size_t cap);

/* Adds adapters to a model that has none: A drawn kaiming-uniform
 * (U(±1/sqrt(in)), splitmix64 from o->seed, adapters in layer order, each
 * row-major), B zero, so the model's outputs are unchanged. The model was
 * built with the same o when it trains them (model_options.lora). */
int model_lora_add(model *m, const model_lora_options *o, dp_err *err);
/* Whether the model carries adapters, and their options. */
const model_lora_options *model_lora(const model *m); /* NULL without */

/* What an optimizer updates: the adapters' flat parameters and gradients
 * when the model has adapters, else model_params/model_grads. */
float *model_trainable(model *m, float **grads, size_t *n);

/* Dropout on the adapters' inputs for the forwards that follow: on with
 * a key that picks the masks (a forward and its backward must share it;
 * trainers derive it from the step and micro-batch, so a resumed run draws
 * the same masks), or off (evaluation, sampling). */
void model_lora_dropout(model *m, int on, uint64_t key);

/* Folds the adapters into the base weights (W += scale · B A, transposed
 * for GPT-2's Conv1D layout) and drops them; the model then computes what
 * it computed with them, as a plain model. */
int model_lora_merge(model *m, dp_err *err);

/* DIR/adapter_config.json and DIR/adapter_model.safetensors in PEFT's
 * layout and names (base_model.model.<module>.lora_A.weight [r, in],
 * lora_B.weight [out, r], F32). base_name goes into
 * base_model_name_or_path. */
int model_lora_save(const model *m, const char *dir, const char *base_name, dp_err *err);
/* Loads an adapter directory (written by dpoc or by PEFT) onto a model
 * without adapters, or, when the model has adapters (a resumed run), into
 * them, which must then agree in rank and targets. Errors name the file and
 * the tensor or field: a missing or extra tensor, a shape, a target the base
 * does not have, a feature dpoc does not implement (DoRA, bias, rank or
 * alpha patterns). */
int model_lora_load(model *m, const char *dir, dp_err *err);

/* Trainable parameters of adapters of rank r on TARGETS of config c. */
size_t model_lora_param_count(const model_config *c, int r, unsigned targets);

/* ---- incremental decoding with a KV cache (model_decode.c) ----------------
 * For sampling: a cache of every layer's keys and values for one sequence,
 * so each new token costs one row of compute instead of a full forward.
 * Works for every family (learned or rotary positions with scaling, grouped
 * queries, qk-norm, sliding window) over the model's own tensors, and gives
 * model_next_logits's numbers to float tolerance. A cache belongs to the
 * model it was made for and must not outlive it. */
typedef struct model_kv model_kv;

/* A cache for sequences of up to max_seq tokens (≥ 1; at most n_positions
 * for gpt2). NULL with err on failure; free with model_kv_free. */
model_kv *model_kv_new(model *m, int max_seq, dp_err *err);
/* Runs tokens[0..n) (n ≥ 1) at the next positions of the cached sequence
 * and writes last_logits[vocab] (may be NULL): the logits predicting the
 * token after the last one. A token id outside the vocabulary or a sequence
 * longer than max_seq is an error, and leaves the cache unchanged. */
int model_kv_append(model *m, model_kv *kv, const int32_t *tokens, int n, float *last_logits,
                    dp_err *err);
/* Tokens the cache holds. */
int model_kv_len(const model_kv *kv);
/* Empties the cache for a new sequence (keeps its memory). */
void model_kv_reset(model_kv *kv);
void model_kv_free(model_kv *kv);

/* Sampling the next token from logits: temperature 0 is greedy (argmax, the
 * lowest id on ties); otherwise softmax(logits / temperature) restricted to
 * the top_k most likely tokens (0: all), then to the smallest set of most
 * likely tokens whose probability reaches top_p (1: all; at least one token
 * is kept), renormalised. Draws come from a seeded generator (splitmix64),
 * so the same seed gives the same tokens. */
typedef struct model_sampling {
    float temperature; /* >= 0 */
    int top_k;         /* >= 0 */
    float top_p;       /* in (0, 1] */
} model_sampling;
typedef struct model_sampler model_sampler;
model_sampler *model_sampler_new(int vocab, const model_sampling *s, uint64_t seed, dp_err *err);
void model_sampler_seed(model_sampler *s, uint64_t seed);
/* The seed of stream I of a user's SEED: independent streams per prompt or
 * sample, so a result does not depend on how many came before it. */
uint64_t model_stream_seed(uint64_t seed, uint64_t i);
/* The next token for logits[vocab] (not modified). */
int model_sampler_next(model_sampler *s, const float *logits);
void model_sampler_free(model_sampler *s);

/* Generates a continuation of prompt[0..n_prompt) (n_prompt >= 1) with the
 * cache (reset first) and the sampler: at most max_new tokens, fewer when
 * the cache fills, stopping after eos_id (< 0: never). out[] (room for
 * max_new) receives the tokens, the EOS included when one was drawn; *n_out
 * their count. */
int model_generate(model *m, model_kv *kv, model_sampler *s, const int32_t *prompt, int n_prompt,
                   int max_new, int eos_id, int32_t *out, int *n_out, dp_err *err);
/* Like model_generate, stopping after any of STOP[0..n_stop) (generation
 * config's eos_token_id list, as Llama 3's). */
int model_generate_until(model *m, model_kv *kv, model_sampler *s, const int32_t *prompt,
                         int n_prompt, int max_new, const int32_t *stop, int n_stop, int32_t *out,
                         int *n_out, dp_err *err);

#endif
