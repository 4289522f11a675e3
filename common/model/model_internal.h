/* model_internal.h — what the KV-cache decoder (model_decode.c) shares with
 * the engine (model.c): the weights as the engine binds them, how they are
 * laid out, and the steps of a layer both run (norm, attention inputs, MLP),
 * so incremental decoding computes with the very code model_forward does.
 * Private to those two files; the public contract is model.h. */
#ifndef DP_MODEL_INTERNAL_H
#define DP_MODEL_INTERNAL_H

#include <stddef.h>

#include "layers.h"
#include "model.h"

/* ---- LoRA adapters (lora.c) ----
 * Kinds are the MODEL_LORA_* bits by index; views the linear layers as the
 * engine runs them (GPT-2's q, k, v are views of the c_attn adapter). */
enum { LORA_KIND_QKV = 7, LORA_KIND_GATE_UP = 8, LORA_KINDS = 9 };
enum { LORA_VIEW_Q, LORA_VIEW_K, LORA_VIEW_V, LORA_VIEW_O, LORA_VIEW_GATE, LORA_VIEW_UP,
       LORA_VIEW_DOWN };
typedef struct lora_set lora_set;
/* Adapters for o on config c (o->targets limited to the family's), A drawn,
 * B zero; gradients when training; scratch for max_rows rows. */
int lora_set_new(lora_set **out, const model_config *c, const model_lora_options *o,
                 int training, int max_rows, dp_err *err);
void lora_set_free(lora_set *s);
/* Grows the scratch to rows rows. */
int lora_reserve(lora_set *s, int rows, dp_err *err);
const model_lora_options *lora_options(const lora_set *s);
float *lora_params(lora_set *s, float **grads, size_t *n);
void lora_set_dropout(lora_set *s, int on, uint64_t key);
/* out[n, out_v] += the adapter's term for view VIEW of layer L given its
 * input x[n, in] (nothing when the view has no adapter or s is NULL). */
void lora_forward(lora_set *s, int layer, int view, float *out, const float *x, int n);
/* Gradients of the adapter (+=) and dx[n, in] += its input gradient (dx
 * may be NULL) given dout[n, out_v] and the view's input x. */
void lora_backward(lora_set *s, int layer, int view, float *dx, const float *dout,
                   const float *x, int n);
/* Adapter i of lora_count(s), in layer order: where it sits and its
 * tensors (A [r, in], B [out, r], inside lora_params). */
typedef struct lora_view_info {
    int layer, kind, in, out;
    const char *module;
    float *A, *B;
} lora_view_info;
int lora_count(const lora_set *s);
void lora_info(lora_set *s, int i, lora_view_info *v);
/* W += scale · B A for adapter i, W in layout (layers.h) with row stride ldw. */
void lora_merge_into(const lora_set *s, int i, float *w, int ldw, int layout);

/* ---- frozen weights (frozen.c) ----
 * Half-precision matrices of the layers, kept in the checkpoint's mapping
 * and widened to float32 one layer at a time into a shared scratch. */
typedef struct frozen_set frozen_set;
frozen_set *frozen_new(int n_layer);
void frozen_free(frozen_set *f);
/* Registers a matrix of layer LAYER: *field is pointed at its widened copy
 * when the layer is bound. -1 on allocation failure. */
int frozen_add(frozen_set *f, float **field, int layer, const uint16_t *src, int bf16,
               size_t numel);
/* Drops FIELD's matrix (it became an owned float32 tensor). */
void frozen_forget(frozen_set *f, float **field);
/* Lays the scratch out for the registered matrices (one layer's worth) and
 * unbinds; -1 on allocation failure. */
int frozen_prepare(frozen_set *f);
/* Forgets which layer is bound (the fields were pointed elsewhere): the
 * next model_layer_ready widens anew. f may be NULL. */
void frozen_unbind(frozen_set *f);
/* Widens layer LAYER's matrices into the scratch and binds their fields,
 * unless it is bound already; returns 1 when it bound something. f may be
 * NULL (nothing to do). */
int frozen_bind_layer(frozen_set *f, int layer);
/* Streaming: after widening, a layer's mapped pages go back to the kernel. */
void frozen_set_release(frozen_set *f, int on);
void frozen_release_layer(frozen_set *f, int layer);
void frozen_drop_pages(const void *p, size_t n);
/* Bytes of the mapping widened so far and the seconds it took. */
void frozen_stats(const frozen_set *f, uint64_t *bytes, double *seconds);

/* Readies layer l's weights (binds its half-precision matrices); returns 1
 * when it widened something. Every pass over a layer calls it first. */
int model_layer_ready(model *m, int l);
/* out[T, C] = the token embeddings of tok (+ positions when learned). */
void model_embed(model *m, float *out, const int32_t *tok, const int *pos, int T);
/* The LM head as the kernels read it. */
const layer_head *model_head(const model *m);

/* The model's adapters, or NULL. */
lora_set *model_lora_set(model *m);

/* One layer's weights. GPT-2's fused c_attn and Phi-3's qkv_proj are
 * qkv_w/qkv_b, with q, k, v pointing at its column (GPT-2) or row (Phi-3)
 * blocks; fc is c_fc or gate_proj (Phi-3: the first rows of gate_up_w, up
 * the rest). ln2 is the norm before the MLP (Gemma 2/3's
 * pre_feedforward_layernorm); post_attn and post_ff are Gemma 2/3's norms
 * of the attention and MLP outputs. NULL where the family or config has no
 * such tensor. lora (NULL without adapters) and layer say where the layer's
 * adapters are. */
typedef struct model_layer_weights {
    float *ln1_w, *ln1_b, *qkv_w, *qkv_b;
    float *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b, *q_norm, *k_norm;
    float *ln2_w, *ln2_b, *fc_w, *fc_b, *up_w, *up_b, *down_w, *down_b;
    float *post_attn_w, *post_ff_w, *gate_up_w;
    lora_set *lora;
    int layer;
} model_layer_weights;

typedef struct model_weights {
    float *wte, *wpe, *lnf_w, *lnf_b, *lm_head; /* lm_head aliases wte when tied */
    model_layer_weights *layer;                 /* [n_layer] */
} model_weights;

/* ---- families (model_family.c) ----
 * The parameter layout: reg is called for every tensor in layout order
 * with the weight and gradient fields it binds, its rank and shape, and its
 * Hugging Face name (fmt, "%d" standing for layer). */
typedef void (*model_reg_fn)(void *ctx, float **w, float **g, int ndim, int64_t d0, int64_t d1,
                             const char *fmt, int layer);
void model_family_register(const model_config *c, model_weights *w, model_weights *g,
                           model_reg_fn reg, void *ctx);
/* Points a layer's q/k/v (and gate/up) fields into its fused matrices
 * (GPT-2's c_attn, Phi-3's qkv_proj and gate_up_proj); nothing otherwise. */
void model_family_views(const model_config *c, model_layer_weights *a);
/* A minimal config.json for c (malloc'd; NULL when out of memory). */
char *model_family_config_text(const model_config *c);

/* The dimensions a layer's kernels need, and how its weights are stored:
 * layout LAYER_W_IN_OUT (GPT-2 Conv1D) or LAYER_W_OUT_IN (nn.Linear), with
 * the row stride of each projection (GPT-2's q, k, v read c_attn in place). */
typedef struct model_arch {
    int gpt2, qk_norm, C, F, H, KV, D;
    float eps;
    int layout, ldq, ldkv, ldo, ldfc, lddown;
    int gemma;        /* norms as 1 + w, GeGLU */
    int post_norms;   /* Gemma 2/3 */
    int rope_dim;     /* rotated dims per head */
    float rope_mscale; /* cos/sin scale (longrope's attention factor; 1) */
    float embed_scale; /* 1, or Gemma's √C rounded to float32 */
    float score_scale; /* attention scores: query_pre_attn_scalar^−1/2, or 0 (1/√D) */
} model_arch;
void model_arch_init(model_arch *a, const model_config *c);

/* Layer l's attention: its sliding window (0: none), and the RoPE inverse
 * frequencies [rope_dim/2] it uses for a pass whose positions reach
 * seq_len − 1 (Gemma 3's sliding layers have their own base; longrope
 * switches to its long factors beyond the original context). */
int model_layer_sliding(const model_config *c, int l); /* by the pattern, window or not */
int model_layer_window(const model_config *c, int l);
const float *model_layer_inv_freq(const model *m, int l, int seq_len);
/* cos/sin scale of RoPE (longrope's attention factor; 1 otherwise). */
float model_rope_mscale(const model_config *c);

/* The model's weights (they follow model_attach_tensor); valid until
 * model_free. */
const model_weights *model_weights_of(const model *m);

/* out[n, C] = the family's norm of inp[n, C] (LayerNorm, keeping mean and
 * rstd [n]; RMSNorm, keeping rstd and ignoring mean and b). */
void model_norm_forward(const model_arch *a, float *out, float *mean, float *rstd,
                        const float *inp, const float *w, const float *b, int n);
/* The same over rows of width `width` (the per-head q/k norms, Gemma 2's
 * post norms), RMSNorm or Gemma's. */
void model_rmsnorm_rows(const model_arch *a, float *out, float *rstd, const float *inp,
                        const float *w, int n, int width);

/* Attention inputs of one layer for n rows x[n, C] (the normed residual):
 * q[n, H·D], k and v [n, KV·D], after qk-norm (which keeps its inputs in
 * q_lin/k_lin [n, H·D]/[n, KV·D] and q_rstd/k_rstd [n·H]/[n·KV]; unused
 * without it) and RoPE at positions pos[n] (GPT-2: none). */
typedef struct model_qkv {
    float *q, *k, *v, *q_lin, *k_lin, *q_rstd, *k_rstd;
} model_qkv;
void model_qkv_forward(const model_arch *a, const model_layer_weights *w, const float *inv_freq,
                       const int *pos, const float *x, const model_qkv *out, int n);

/* Output projection of one layer: out[n, C] = o(att[n, H·D]); with post
 * norms, o's output goes to raw[n, C] and out is its post-attention norm
 * (rstd [n] kept). */
void model_o_forward(const model_arch *a, const model_layer_weights *w, const float *att,
                     float *out, float *raw, float *rstd, int n);

/* MLP of one layer for n rows x[n, C] (the normed residual): fc[n, F] (and
 * up[n, F] for SwiGLU/GeGLU); then, unless out is NULL, act[n, F] and
 * out[n, C] = down(act), or with post norms raw[n, C] = down(act) and out
 * its post-feed-forward norm (rstd [n] kept). */
void model_mlp_forward(const model_arch *a, const model_layer_weights *w, const float *x,
                       float *fc, float *up, float *act, float *out, float *raw, float *rstd,
                       int n);
/* act[n] = the family's gated activation of fc and up (GELU for GPT-2). */
void model_act_forward(const model_arch *a, float *act, const float *fc, const float *up,
                       size_t n);

/* Carving one allocation into buffers: *ptr = base + *off (only when base
 * is not NULL, so a first pass with base NULL just counts), then *off moves
 * past n floats rounded up to 16 (64-byte alignment). */
static inline void model_carve(float **ptr, float *base, size_t *off, size_t n) {
    if (base) *ptr = base + *off;
    *off += (n + 15) & ~(size_t)15;
}
/* Carves q[rows, H·D], k and v [rows, KV·D] the same way. */
static inline void model_carve_qkv(float **q, float **k, float **v, const model_arch *a,
                                   size_t rows, float *base, size_t *off) {
    model_carve(q, base, off, rows * (size_t)a->H * (size_t)a->D);
    model_carve(k, base, off, rows * (size_t)a->KV * (size_t)a->D);
    model_carve(v, base, off, rows * (size_t)a->KV * (size_t)a->D);
}

#endif
