/* layers — the transformer's numerical kernels, llm.c-style: each layer is a
 * pair of plain functions over float arrays, `layer_x_forward(out, in, w, ...)`
 * and `layer_x_backward(dinp, dw, dout, ...)`. Shapes are given in the
 * comments ([rows, cols], row-major). Every backward ACCUMULATES (+=) into
 * dinp and the weight gradients; callers zero them when they need to.
 *
 * Threading: element-wise loops (and attention's masked softmax rows) use
 * OpenMP; every matrix product, attention's included, is a cblas_sgemm call
 * made outside any parallel region. Reductions over tokens run in a fixed
 * order, so results are deterministic for a given thread count. Nothing
 * here allocates, and nothing can fail. */
#ifndef DP_LAYERS_H
#define DP_LAYERS_H

#include <stddef.h>
#include <stdint.h>

/* Token + optional learned position embedding.
 * out[T,C] = wte[tok[t]] (+ wpe[pos[t]] when wpe != NULL). */
void layer_embedding_forward(float *out, const int32_t *tok, const int *pos, const float *wte,
                             const float *wpe, int T, int C);
/* dwte[V,C] += scatter of dout rows; dwpe likewise (either may be NULL). */
void layer_embedding_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tok,
                              const int *pos, int T, int C);

/* LayerNorm over rows of inp[N,C]: out = (x - mean) * rstd * w + b.
 * Saves mean[N] and rstd[N] for backward. In the backwards of both norms dw
 * (and db) may be NULL: a frozen norm, only dinp is computed. */
void layer_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                             const float *w, const float *b, int N, int C, float eps);
void layer_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                              const float *inp, const float *w, const float *mean,
                              const float *rstd, int N, int C);

/* RMSNorm over rows of inp[N,C]: out = x * rstd * w, rstd = 1/sqrt(mean(x²)+eps).
 * Also serves the per-head q_norm/k_norm of Qwen3 with N = T·heads, C = head_dim. */
void layer_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N,
                           int C, float eps);
void layer_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                            const float *w, const float *rstd, int N, int C);
/* Gemma's RMSNorm: out = x * rstd * (1 + w) (weights stored as offsets from
 * one); dw is the same gradient as for w. */
void layer_rmsnorm1p_forward(float *out, float *rstd, const float *inp, const float *w, int N,
                             int C, float eps);
void layer_rmsnorm1p_backward(float *dinp, float *dw, const float *dout, const float *inp,
                              const float *w, const float *rstd, int N, int C);

/* How a weight matrix is stored. LAYER_W_OUT_IN is nn.Linear's [OC, IC]
 * (y = x·Wᵀ); LAYER_W_IN_OUT is GPT-2 Conv1D's [IC, OC] (y = x·W). ldw is the
 * row stride of the stored matrix, so a column block of a fused matrix
 * (GPT-2 c_attn's q, k, v) is addressed in place. */
enum { LAYER_W_OUT_IN = 0, LAYER_W_IN_OUT = 1 };

/* out[N,OC] = inp[N,IC] · W (+ b[OC] when b != NULL). */
void layer_linear_forward(float *out, const float *inp, const float *w, int ldw, int layout,
                          const float *b, int N, int IC, int OC);
/* dinp[N,IC] += dout·Wᵀ (skipped when dinp == NULL); dw += the weight
 * gradient in the same layout and stride as w; db[OC] += Σ_rows dout. */
void layer_linear_backward(float *dinp, float *dw, float *db, const float *dout,
                           const float *inp, const float *w, int ldw, int layout, int N, int IC,
                           int OC);

/* e^x as the kernels compute it (vectorised; within 2 float ulps of the true
 * value from −87 to 88; 0 below −87.5; saturates at e^88; NaN stays NaN). */
float layer_exp(float x);

/* gelu_new (tanh approximation) over n elements. */
void layer_gelu_forward(float *out, const float *inp, size_t n);
void layer_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);

/* SwiGLU: out = silu(gate) ⊙ up over n elements. */
void layer_swiglu_forward(float *out, const float *gate, const float *up, size_t n);
void layer_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                           const float *up, size_t n);

/* GeGLU (Gemma): out = gelu_tanh(gate) ⊙ up over n elements, the tanh
 * GELU of layer_gelu_forward. */
void layer_geglu_forward(float *out, const float *gate, const float *up, size_t n);
void layer_geglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                          const float *up, size_t n);

/* Soft-capping (Gemma 2): x ← cap · tanh(x / cap) over n elements, in place. */
void layer_softcap(float *x, size_t n, float cap);

/* Rotary embedding inverse frequencies inv_freq[head_dim/2] for rope_type
 * 0 (default), 1 (linear: divided by factor) or 2 (llama3 wavelength-banded
 * scaling with low/high frequency factors and the original context length). */
void layer_rope_inv_freq(float *inv_freq, int head_dim, float theta, int rope_type,
                         float factor, float low_freq, float high_freq, int original_max_pos);
/* RoPE in the Hugging Face rotate_half convention on x[T, H, D]: element i
 * pairs with i + D/2, angle = pos[t]·inv_freq[i]. out may equal inp. */
void layer_rope_forward(float *out, const float *inp, const int *pos, const float *inv_freq,
                        int T, int H, int D);
/* dinp += Rᵀ·dout (the rotation is orthogonal). */
void layer_rope_backward(float *dinp, const float *dout, const int *pos, const float *inv_freq,
                         int T, int H, int D);
/* The same on the first `rot` dims of each head only (partial rotary:
 * element i pairs with i + rot/2, inv_freq[rot/2]; the other D − rot dims
 * pass through), cos and sin multiplied by mscale (longrope's attention
 * factor; 1 otherwise). rot == D and mscale == 1 is layer_rope_forward. */
void layer_rope_forward_ext(float *out, const float *inp, const int *pos, const float *inv_freq,
                            int T, int H, int D, int rot, float mscale);
void layer_rope_backward_ext(float *dinp, const float *dout, const int *pos,
                             const float *inv_freq, int T, int H, int D, int rot, float mscale);

/* Which keys query t may see: packed-buffer indices [lo0[t], hi0[t]) ∪
 * [lo1[t], hi1[t]), intersected with the sliding window (key position >
 * pos[t] − window) when window > 0; every visible key is ≤ t. Units are
 * disjoint token ranges [unit_start[u], unit_start[u+1]) that contain every
 * key their queries see. */
typedef struct layer_attn_mask {
    int T, n_units;
    const int *lo0, *hi0, *lo1, *hi1, *pos, *unit_start;
    int window;
    int block; /* queries per block, 1..LAYER_ATTN_BLOCK; 0 means LAYER_ATTN_BLOCK */
    /* The score function, carried with the mask since forward and backward
     * share both: s = scale · q·k (scale 0 means 1/sqrt(D)), then, when
     * softcap > 0, s ← softcap · tanh(s / softcap) (Gemma 2), before the
     * mask. */
    float scale, softcap;
} layer_attn_mask;

/* Causal softmax attention with grouped queries: query head h uses kv head
 * h / (H / KVH). q[T, H·D] (row stride ldq), k and v [T, KVH·D] (row strides
 * ldk, ldv); out[T, H·D]; lse[T, H] keeps each row's log-sum-exp so backward
 * recomputes the probabilities instead of storing them. Computed per unit,
 * head and block of LAYER_ATTN_BLOCK queries with sgemm (OpenMP for the
 * masked softmax rows); scratch holds layer_attention_scratch(T) floats. */
#define LAYER_ATTN_BLOCK 256
size_t layer_attention_scratch(int T);
void layer_attention_forward(float *out, float *lse, const float *q, int ldq, const float *k,
                             int ldk, const float *v, int ldv, const layer_attn_mask *mask,
                             int H, int KVH, int D, float *scratch);
/* dq, dk, dv (same strides as q, k, v) += gradients given dout[T, H·D].
 * scratch as for forward. */
void layer_attention_backward(float *dq, float *dk, float *dv, const float *dout,
                              const float *out, const float *lse, const float *q, int ldq,
                              const float *k, int ldk, const float *v, int ldv,
                              const layer_attn_mask *mask, int H, int KVH, int D,
                              float *scratch);

/* LM head + log-softmax gather, over R rows of hidden states h[R,C] against
 * w[V,C]: logits = h·wᵀ; logp[r] = logits[r,target[r]] − logsumexp(logits[r]);
 * mean_logits[r] (may be NULL) = mean of logits[r]; lse[R] kept for
 * backward. Logits are formed chunk_rows rows at a time in scratch
 * (chunk_rows·V floats), so memory does not grow with R. */
void layer_logprob_forward(float *logp, float *mean_logits, float *lse, const float *h,
                           const float *w, const int32_t *target, int R, int C, int V,
                           float *scratch, int chunk_rows);
/* dh[R,C] += and dw[V,C] += the gradients of Σ dlogp[r]·logp[r]. Logits
 * are recomputed chunk by chunk, except when R ≤ chunk_rows and
 * logits_in_scratch says scratch still holds the forward's logits. */
void layer_logprob_backward(float *dh, float *dw, const float *dlogp, const float *h,
                            const float *w, const int32_t *target, const float *lse, int R,
                            int C, int V, float *scratch, int chunk_rows, int logits_in_scratch);

/* ---- half-precision weights ----
 * Frozen weights may stay in the checkpoint's IEEE half or bfloat16; they
 * are widened to float32 (exactly) just before the products that read them. */

/* dst[n] = src[n] widened: bfloat16 when bf16, else IEEE half. */
void layer_widen(float *dst, const uint16_t *src, int bf16, size_t n);

/* The LM head [V, C] as the log-prob kernels read it: float32 w, or, when
 * half is set, rows in half precision widened buf_rows at a time into buf
 * (buf_rows·C floats). A half head is frozen: it gets no gradient. */
typedef struct layer_head {
    const float *w;
    const uint16_t *half;
    int bf16, buf_rows;
    float *buf;
    float softcap; /* > 0: logits ← softcap · tanh(logits / softcap) (Gemma 2) */
} layer_head;
/* layer_logprob_forward / _backward with the head as above (dw ignored for
 * a half head), and logits[V] = head · x[C] for one row. */
void layer_logprob_forward_head(float *logp, float *mean_logits, float *lse, const float *h,
                                const layer_head *hd, const int32_t *target, int R, int C, int V,
                                float *scratch, int chunk_rows);
void layer_logprob_backward_head(float *dh, float *dw, const float *dlogp, const float *h,
                                 const layer_head *hd, const int32_t *target, const float *lse,
                                 int R, int C, int V, float *scratch, int chunk_rows,
                                 int logits_in_scratch);
void layer_head_gemv(float *logits, const layer_head *hd, const float *x, int C, int V);

#endif
