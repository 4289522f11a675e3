/* layers — see layers.h. Plain loops over float arrays; BLAS for every
 * matrix product, OpenMP for the rest. */
#include "layers.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
int openblas_get_parallel(void); /* 0 sequential, 1 pthreads, 2 OpenMP */

/* ---- exp ------------------------------------------------------------------ */

/* e^x for the kernels' hot loops, written so the compiler vectorises it
 * (glibc's expf is a scalar call): e^x = 2^n · e^r with n = round(x / ln 2)
 * and |r| ≤ ln 2 / 2, e^r by its Taylor series to r^7 (truncation below
 * 1e-8 relative, so within an ulp or two of expf). Below −87.5 it returns 0
 * (expf gives a subnormal there), above 88 it saturates at e^88 (expf
 * overflows to inf near 88.7); NaN stays NaN. 2^n is built in the exponent
 * bits of the round-to-nearest trick's sum, so nothing casts a float to an
 * int. */
static inline float vexp(float x) {
    float xc = x < -87.5f ? -87.5f : x > 88.0f ? 88.0f : x;
    float shifted = xc * 1.44269504088896341f + 12582912.0f; /* 1.5·2^23: rounds to an int */
    float n = shifted - 12582912.0f;
    float r = xc - n * 0.693145751953125f; /* ln 2, high bits: n·hi is exact */
    r -= n * 1.428606765330187e-06f;       /* ln 2, low bits */
    float p = 1.0f / 5040;
    p = p * r + 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    uint32_t bits;
    memcpy(&bits, &shifted, sizeof bits);
    bits = (bits - 0x4b400000u + 127u) << 23; /* the biased exponent of 2^n */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return x < -87.5f ? 0.0f : p * scale;
}

/* The element-wise hot loops are compiled twice, for AVX2+FMA (x86-64-v3)
 * and for the baseline, and the loader picks the one this CPU runs (GCC's
 * function multiversioning): 8 lanes with fused multiply-adds run them
 * about 3x faster. Sanitizer builds keep the baseline only. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    !defined(__SANITIZE_ADDRESS__)
#define VEC_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define VEC_CLONES
#endif

/* Element-wise work is split into chunks of this many elements, one OpenMP
 * iteration each, calling the cloned range function. */
#define EW_CHUNK 16384
#define EW_FOR(n) _Pragma("omp parallel for schedule(static)") \
    for (size_t lo = 0; lo < (n); lo += EW_CHUNK)
#define EW_LEN(n) ((n) - lo < EW_CHUNK ? (n) - lo : EW_CHUNK)

VEC_CLONES float layer_exp(float x) { return vexp(x); }

/* ---- embedding ---------------------------------------------------------- */

void layer_embedding_forward(float *out, const int32_t *tok, const int *pos, const float *wte,
                             const float *wpe, int T, int C) {
#pragma omp parallel for
    for (int t = 0; t < T; t++) {
        float *o = out + (size_t)t * C;
        const float *e = wte + (size_t)tok[t] * C;
        if (wpe) {
            const float *p = wpe + (size_t)pos[t] * C;
            for (int c = 0; c < C; c++) o[c] = e[c] + p[c];
        } else {
            memcpy(o, e, (size_t)C * sizeof *o);
        }
    }
}

/* Serial over tokens: several tokens may share a row, and a fixed order keeps
 * the sum deterministic. */
void layer_embedding_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tok,
                              const int *pos, int T, int C) {
    for (int t = 0; t < T; t++) {
        const float *d = dout + (size_t)t * C;
        if (dwte) {
            float *g = dwte + (size_t)tok[t] * C;
            for (int c = 0; c < C; c++) g[c] += d[c];
        }
        if (dwpe) {
            float *g = dwpe + (size_t)pos[t] * C;
            for (int c = 0; c < C; c++) g[c] += d[c];
        }
    }
}

/* ---- normalisation ------------------------------------------------------ */

VEC_CLONES static void layernorm_row(float *o, float *mean, float *rstd, const float *x,
                                     const float *w, const float *b, int C, float eps) {
    double m = 0, v = 0;
#pragma omp simd reduction(+ : m)
    for (int c = 0; c < C; c++) m += x[c];
    m /= C;
#pragma omp simd reduction(+ : v)
    for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
    v /= C;
    float r = (float)(1.0 / sqrt(v + eps));
    if (b) {
#pragma omp simd
        for (int c = 0; c < C; c++) o[c] = ((float)(x[c] - m) * r) * w[c] + b[c];
    } else {
#pragma omp simd
        for (int c = 0; c < C; c++) o[c] = ((float)(x[c] - m) * r) * w[c];
    }
    *mean = (float)m;
    *rstd = r;
}

void layer_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                             const float *w, const float *b, int N, int C, float eps) {
#pragma omp parallel for
    for (int i = 0; i < N; i++)
        layernorm_row(out + (size_t)i * C, mean + i, rstd + i, inp + (size_t)i * C, w, b, C, eps);
}

void layer_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                              const float *inp, const float *w, const float *mean,
                              const float *rstd, int N, int C) {
#pragma omp parallel for
    for (int i = 0; i < N; i++) {
        const float *x = inp + (size_t)i * C, *d = dout + (size_t)i * C;
        double dn_mean = 0, dn_norm_mean = 0;
        for (int c = 0; c < C; c++) {
            float norm = (x[c] - mean[i]) * rstd[i];
            float dn = d[c] * w[c];
            dn_mean += dn;
            dn_norm_mean += dn * norm;
        }
        dn_mean /= C;
        dn_norm_mean /= C;
        float *di = dinp + (size_t)i * C;
        for (int c = 0; c < C; c++) {
            float norm = (x[c] - mean[i]) * rstd[i];
            float dn = d[c] * w[c];
            di[c] += (float)((dn - dn_mean - norm * dn_norm_mean) * rstd[i]);
        }
    }
    if (!dw) return; /* a frozen norm: only the input gradient */
#pragma omp parallel for
    for (int c = 0; c < C; c++) {
        double sw = 0, sb = 0;
        for (int i = 0; i < N; i++) {
            float d = dout[(size_t)i * C + c];
            sw += d * ((inp[(size_t)i * C + c] - mean[i]) * rstd[i]);
            sb += d;
        }
        dw[c] += (float)sw;
        if (db) db[c] += (float)sb;
    }
}

/* RMSNorm rows with weights w, or (one set) 1 + w. */
static void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N,
                            int C, float eps, int one) {
#pragma omp parallel for
    for (int i = 0; i < N; i++) {
        const float *x = inp + (size_t)i * C;
        double ss = 0;
        for (int c = 0; c < C; c++) ss += (double)x[c] * x[c];
        float r = (float)(1.0 / sqrt(ss / C + eps));
        float *o = out + (size_t)i * C;
        if (one)
            for (int c = 0; c < C; c++) o[c] = (x[c] * r) * (1.0f + w[c]);
        else
            for (int c = 0; c < C; c++) o[c] = (x[c] * r) * w[c];
        rstd[i] = r;
    }
}

void layer_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N,
                           int C, float eps) {
    rmsnorm_forward(out, rstd, inp, w, N, C, eps, 0);
}

void layer_rmsnorm1p_forward(float *out, float *rstd, const float *inp, const float *w, int N,
                             int C, float eps) {
    rmsnorm_forward(out, rstd, inp, w, N, C, eps, 1);
}

/* y = x·r·w with r = (mean(x²)+eps)^(-1/2), so
 * dx_j = r·dn_j − r³·x_j·Σ_i(dn_i·x_i)/C where dn = dy·w (w: 1 + w when
 * one); dw is the same either way. */
static void rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                             const float *w, const float *rstd, int N, int C, int one) {
    float off = one ? 1.0f : 0.0f;
#pragma omp parallel for
    for (int i = 0; i < N; i++) {
        const float *x = inp + (size_t)i * C, *d = dout + (size_t)i * C;
        double dot = 0;
        float r = rstd[i];
        float *di = dinp + (size_t)i * C;
        if (one) {
            for (int c = 0; c < C; c++) dot += (double)d[c] * (off + w[c]) * x[c];
            float k = (float)(dot / C) * r * r * r;
            for (int c = 0; c < C; c++) di[c] += r * d[c] * (off + w[c]) - k * x[c];
        } else {
            for (int c = 0; c < C; c++) dot += (double)d[c] * w[c] * x[c];
            float k = (float)(dot / C) * r * r * r;
            for (int c = 0; c < C; c++) di[c] += r * d[c] * w[c] - k * x[c];
        }
    }
    if (!dw) return; /* a frozen norm: only the input gradient */
#pragma omp parallel for
    for (int c = 0; c < C; c++) {
        double s = 0;
        for (int i = 0; i < N; i++)
            s += (double)dout[(size_t)i * C + c] * inp[(size_t)i * C + c] * rstd[i];
        dw[c] += (float)s;
    }
}

void layer_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                            const float *w, const float *rstd, int N, int C) {
    rmsnorm_backward(dinp, dw, dout, inp, w, rstd, N, C, 0);
}

void layer_rmsnorm1p_backward(float *dinp, float *dw, const float *dout, const float *inp,
                              const float *w, const float *rstd, int N, int C) {
    rmsnorm_backward(dinp, dw, dout, inp, w, rstd, N, C, 1);
}

/* ---- linear --------------------------------------------------------------- */

void layer_linear_forward(float *out, const float *inp, const float *w, int ldw, int layout,
                          const float *b, int N, int IC, int OC) {
    if (N <= 0) return;
    float beta = 0.0f;
    if (b) {
#pragma omp parallel for
        for (int i = 0; i < N; i++) memcpy(out + (size_t)i * OC, b, (size_t)OC * sizeof *out);
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, layout == LAYER_W_OUT_IN ? CblasTrans : CblasNoTrans,
                N, OC, IC, 1.0f, inp, IC, w, ldw, beta, out, OC);
}

void layer_linear_backward(float *dinp, float *dw, float *db, const float *dout,
                           const float *inp, const float *w, int ldw, int layout, int N, int IC,
                           int OC) {
    if (N <= 0) return;
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans,
                    layout == LAYER_W_OUT_IN ? CblasNoTrans : CblasTrans, N, IC, OC, 1.0f, dout,
                    OC, w, ldw, 1.0f, dinp, IC);
    if (dw) {
        if (layout == LAYER_W_OUT_IN)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, IC, N, 1.0f, dout, OC, inp,
                        IC, 1.0f, dw, ldw);
        else
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, IC, OC, N, 1.0f, inp, IC, dout,
                        OC, 1.0f, dw, ldw);
    }
    if (db)
        for (int i = 0; i < N; i++) {
            const float *d = dout + (size_t)i * OC;
            for (int o = 0; o < OC; o++) db[o] += d[o];
        }
}

/* ---- activations ---------------------------------------------------------- */

#define GELU_SCALE 0.7978845608028654f /* sqrt(2/pi) */

/* tanh through one exp (several times faster than tanhf here, and within
 * a few float ulps of it in absolute terms); saturates cleanly at ±1. */
static inline float fast_tanh(float u) { return 1.0f - 2.0f / (1.0f + vexp(2.0f * u)); }

/* gelu_new = 0.5 x (1 + t), t = tanh(√(2/π) (x + 0.044715 x³)); dt/dx. */
static inline float gelu_tanh(float x) { return fast_tanh(GELU_SCALE * (x + 0.044715f * x * x * x)); }
static inline float gelu_tanh_grad(float x, float t) {
    return (1.0f - t * t) * GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
}

VEC_CLONES static void gelu_forward_range(float *out, const float *inp, size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + gelu_tanh(x));
    }
}

void layer_gelu_forward(float *out, const float *inp, size_t n) {
    EW_FOR(n) gelu_forward_range(out + lo, inp + lo, EW_LEN(n));
}

VEC_CLONES static void gelu_backward_range(float *dinp, const float *inp, const float *dout,
                                           size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float t = gelu_tanh(x);
        float dt = gelu_tanh_grad(x, t);
        dinp[i] += dout[i] * (0.5f * (1.0f + t) + 0.5f * x * dt);
    }
}

void layer_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
    EW_FOR(n) gelu_backward_range(dinp + lo, inp + lo, dout + lo, EW_LEN(n));
}

VEC_CLONES static void swiglu_forward_range(float *out, const float *gate, const float *up,
                                            size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + vexp(-g)) * up[i];
    }
}

void layer_swiglu_forward(float *out, const float *gate, const float *up, size_t n) {
    EW_FOR(n) swiglu_forward_range(out + lo, gate + lo, up + lo, EW_LEN(n));
}

VEC_CLONES static void swiglu_backward_range(float *dgate, float *dup, const float *dout,
                                             const float *gate, const float *up, size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float g = gate[i];
        float s = 1.0f / (1.0f + vexp(-g));
        dgate[i] += dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
        dup[i] += dout[i] * g * s;
    }
}

void layer_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                           const float *up, size_t n) {
    EW_FOR(n) swiglu_backward_range(dgate + lo, dup + lo, dout + lo, gate + lo, up + lo, EW_LEN(n));
}

VEC_CLONES static void geglu_forward_range(float *out, const float *gate, const float *up,
                                           size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float x = gate[i];
        out[i] = 0.5f * x * (1.0f + gelu_tanh(x)) * up[i];
    }
}

void layer_geglu_forward(float *out, const float *gate, const float *up, size_t n) {
    EW_FOR(n) geglu_forward_range(out + lo, gate + lo, up + lo, EW_LEN(n));
}

VEC_CLONES static void geglu_backward_range(float *dgate, float *dup, const float *dout,
                                            const float *gate, const float *up, size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float x = gate[i];
        float t = gelu_tanh(x);
        float dt = gelu_tanh_grad(x, t);
        dgate[i] += dout[i] * up[i] * (0.5f * (1.0f + t) + 0.5f * x * dt);
        dup[i] += dout[i] * 0.5f * x * (1.0f + t);
    }
}

void layer_geglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                          const float *up, size_t n) {
    EW_FOR(n) geglu_backward_range(dgate + lo, dup + lo, dout + lo, gate + lo, up + lo, EW_LEN(n));
}

/* tanh accurate in relative terms everywhere, vectorisable: its odd
 * Taylor series to u^9 below |u| = 0.125 (truncation under 3e-13), one exp
 * above (fast_tanh's absolute error is then a small relative one). Capped
 * values are mostly far below the cap, where fast_tanh alone would lose
 * digits to cancellation. */
static inline float soft_tanh(float u) {
    float u2 = u * u;
    float p = u * (1.0f + u2 * (-1.0f / 3 + u2 * (2.0f / 15 + u2 * (-17.0f / 315 + u2 * (62.0f / 2835)))));
    return fabsf(u) < 0.125f ? p : fast_tanh(u);
}

VEC_CLONES static void softcap_range(float *x, size_t n, float cap, float inv) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) x[i] = cap * soft_tanh(x[i] * inv);
}

void layer_softcap(float *x, size_t n, float cap) {
    float inv = 1.0f / cap;
    if (n <= EW_CHUNK) {
        softcap_range(x, n, cap, inv);
        return;
    }
    EW_FOR(n) softcap_range(x + lo, EW_LEN(n), cap, inv);
}

/* ---- rotary embedding ----------------------------------------------------- */

void layer_rope_inv_freq(float *inv_freq, int head_dim, float theta, int rope_type,
                         float factor, float low_freq, float high_freq, int original_max_pos) {
    for (int i = 0; i < head_dim / 2; i++) {
        double f = 1.0 / pow(theta, (double)(2 * i) / head_dim);
        if (rope_type == 1) {
            f /= factor;
        } else if (rope_type == 2) {
            double L = original_max_pos, wavelen = 2.0 * M_PI / f;
            if (wavelen > L / low_freq) {
                f /= factor;
            } else if (!(wavelen < L / high_freq)) {
                double smooth = (L / wavelen - low_freq) / (high_freq - low_freq);
                f = (1.0 - smooth) * f / factor + smooth * f;
            }
        }
        inv_freq[i] = (float)f;
    }
}

/* Applies the rotation by +angle (sign 1) or its transpose (sign −1) to the
 * first rot dims of each head, cos and sin scaled by mscale, adding into
 * out when accumulate is set; the other dims pass through. */
static void rope_apply(float *out, const float *inp, const int *pos, const float *inv_freq,
                       int T, int H, int D, int rot, float mscale, float sign, int accumulate) {
    int half = rot / 2;
#pragma omp parallel for
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < half; i++) {
            double a = (double)pos[t] * inv_freq[i];
            float c = (float)cos(a), s = sign * (float)sin(a);
            if (mscale != 1.0f) c *= mscale, s *= mscale;
            for (int h = 0; h < H; h++) {
                const float *x = inp + ((size_t)t * H + h) * D;
                float *y = out + ((size_t)t * H + h) * D;
                float x1 = x[i], x2 = x[i + half];
                float y1 = x1 * c - x2 * s, y2 = x2 * c + x1 * s;
                if (accumulate) {
                    y[i] += y1;
                    y[i + half] += y2;
                } else {
                    y[i] = y1;
                    y[i + half] = y2;
                }
            }
        }
        if (rot < D)
            for (int h = 0; h < H; h++) {
                const float *x = inp + ((size_t)t * H + h) * D;
                float *y = out + ((size_t)t * H + h) * D;
                for (int d = rot; d < D; d++) y[d] = accumulate ? y[d] + x[d] : x[d];
            }
    }
}

void layer_rope_forward(float *out, const float *inp, const int *pos, const float *inv_freq,
                        int T, int H, int D) {
    rope_apply(out, inp, pos, inv_freq, T, H, D, D, 1.0f, 1.0f, 0);
}

void layer_rope_backward(float *dinp, const float *dout, const int *pos, const float *inv_freq,
                         int T, int H, int D) {
    rope_apply(dinp, dout, pos, inv_freq, T, H, D, D, 1.0f, -1.0f, 1);
}

void layer_rope_forward_ext(float *out, const float *inp, const int *pos, const float *inv_freq,
                            int T, int H, int D, int rot, float mscale) {
    rope_apply(out, inp, pos, inv_freq, T, H, D, rot, mscale, 1.0f, 0);
}

void layer_rope_backward_ext(float *dinp, const float *dout, const int *pos,
                             const float *inv_freq, int T, int H, int D, int rot, float mscale) {
    rope_apply(dinp, dout, pos, inv_freq, T, H, D, rot, mscale, -1.0f, 1);
}

/* ---- attention ------------------------------------------------------------ */

/* Attention runs per (unit, head, block of queries): the block's scores
 * against every key of its unit up to the block's last query come from one
 * sgemm, the masked softmax follows row by row, and P·V is a second sgemm.
 * Masked entries cost a little wasted arithmetic inside a block but keep
 * every product a BLAS call. The (unit, head) tasks are spread over the
 * OpenMP threads, each running single-threaded BLAS on its own slice of the
 * scratch: these products are small, and one multi-threaded BLAS call per
 * block would spend much of its time handing work between threads. */

size_t layer_attention_scratch(int T) { return (size_t)2 * LAYER_ATTN_BLOCK * (size_t)T; }

static int attn_threads(void) {
    int n = omp_get_max_threads();
    return n < LAYER_ATTN_BLOCK ? n : LAYER_ATTN_BLOCK;
}

/* Queries per block for a unit of n tokens, when a thread's scratch slice
 * holds `share` floats and a block needs `per_row` rows of n floats per query
 * (1 forward: P; 2 backward: P and dS). A unit longer than T / threads gets
 * smaller blocks; share ≥ 2·LAYER_ATTN_BLOCK·T / attn_threads() keeps it ≥ 1. */
static int attn_block_rows(const layer_attn_mask *m, int n, size_t share, int per_row) {
    int B = m->block > 0 && m->block < LAYER_ATTN_BLOCK ? m->block : LAYER_ATTN_BLOCK;
    size_t fit = share / ((size_t)per_row * (size_t)n);
    return fit < (size_t)B ? (int)fit : B;
}

/* BLAS single-threaded while OpenMP threads share the attention tasks. An
 * OpenMP build of OpenBLAS does that by itself inside a parallel region (and
 * its openblas_set_num_threads would change OpenMP's count), so only the
 * pthreads build is told. */
static int blas_serial_begin(void) {
    if (openblas_get_parallel() != 1) return 1;
    int n = openblas_get_num_threads();
    if (n > 1) openblas_set_num_threads(1);
    return n;
}
static void blas_serial_end(int n) {
    if (n > 1) openblas_set_num_threads(n);
}

/* May query t see key j? */
static inline int attn_visible(const layer_attn_mask *m, int t, int j) {
    if (!((j >= m->lo0[t] && j < m->hi0[t]) || (j >= m->lo1[t] && j < m->hi1[t]))) return 0;
    return m->window <= 0 || m->pos[j] > m->pos[t] - m->window;
}

static int clamp_int(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* The keys of [s0, s0 + kn) query t sees, as at most two sorted disjoint
 * spans [a[i], b[i]) relative to s0 (no sliding window). Returns the count. */
static int attn_spans(const layer_attn_mask *m, int t, int s0, int kn, int a[2], int b[2]) {
    int k = 0, lo[2] = {m->lo0[t], m->lo1[t]}, hi[2] = {m->hi0[t], m->hi1[t]};
    for (int i = 0; i < 2; i++) {
        int x = clamp_int(lo[i] - s0, 0, kn), y = clamp_int(hi[i] - s0, 0, kn);
        if (x < y) a[k] = x, b[k] = y, k++;
    }
    if (k == 2 && a[1] < a[0]) {
        int ta = a[0], tb = b[0];
        a[0] = a[1], b[0] = b[1], a[1] = ta, b[1] = tb;
    }
    if (k == 2 && a[1] <= b[0]) { /* overlapping or touching: one span */
        if (b[1] > b[0]) b[0] = b[1];
        k = 1;
    }
    return k;
}

/* One row of S turned into masked probabilities: row[j] ← exp(row[j] − l)
 * where query t sees key s0 + j, else 0. l is *lse_in, or (lse_in NULL) the
 * row's log-sum-exp, stored in *lse_out. */
VEC_CLONES static void attn_softmax_row(float *row, int kn, const layer_attn_mask *m, int t, int s0,
                             const float *lse_in, float *lse_out) {
    if (m->window > 0) { /* sliding window: key by key */
        float l;
        if (!lse_in) {
            float mx = -INFINITY;
            for (int j = 0; j < kn; j++)
                if (attn_visible(m, t, s0 + j) && row[j] > mx) mx = row[j];
            double sum = 0;
            for (int j = 0; j < kn; j++)
                if (attn_visible(m, t, s0 + j)) sum += vexp(row[j] - mx);
            l = mx + (float)log(sum);
            *lse_out = l;
        } else {
            l = *lse_in;
        }
        for (int j = 0; j < kn; j++) row[j] = attn_visible(m, t, s0 + j) ? vexp(row[j] - l) : 0.0f;
        return;
    }
    int a[2], b[2], k = attn_spans(m, t, s0, kn, a, b);
    float l;
    if (!lse_in) {
        float mx = -INFINITY;
        for (int i = 0; i < k; i++)
#pragma omp simd reduction(max : mx)
            for (int j = a[i]; j < b[i]; j++) mx = row[j] > mx ? row[j] : mx;
        double sum = 0;
        for (int i = 0; i < k; i++)
#pragma omp simd reduction(+ : sum)
            for (int j = a[i]; j < b[i]; j++) sum += vexp(row[j] - mx);
        l = mx + (float)log(sum);
        *lse_out = l;
    } else {
        l = *lse_in;
    }
    int done = 0;
    for (int i = 0; i < k; i++) {
        memset(row + done, 0, (size_t)(a[i] - done) * sizeof *row);
#pragma omp simd
        for (int j = a[i]; j < b[i]; j++) row[j] = vexp(row[j] - l);
        done = b[i];
    }
    memset(row + done, 0, (size_t)(kn - done) * sizeof *row);
}

/* The score scale of the mask (1/sqrt(D) unless it gives one). */
static float attn_scale(const layer_attn_mask *m, int D) {
    return m->scale > 0 ? m->scale : 1.0f / sqrtf((float)D);
}

/* P[nb, kn] ← masked probabilities of queries t0.. against keys s0.. of one
 * head: scale · Q_block · K_unitᵀ by sgemm, soft-capped when the mask says
 * so (the capped scores copied to capped[nb, kn] when it is not NULL), then
 * softmax row by row. */
static void attn_probs(float *P, float *capped, float *lse_out, const float *lse_in,
                       const float *q, int ldq, const float *k, int ldk,
                       const layer_attn_mask *mask, int t0, int nb, int s0, int kn, int h, int g,
                       int H, int D) {
    float scale = attn_scale(mask, D);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, kn, D, scale,
                q + (size_t)t0 * ldq + (size_t)h * D, ldq, k + (size_t)s0 * ldk + (size_t)g * D,
                ldk, 0.0f, P, kn);
    if (mask->softcap > 0) {
        float cap = mask->softcap, inv = 1.0f / cap;
        softcap_range(P, (size_t)nb * kn, cap, inv); /* inside a parallel task: serial */
        if (capped) memcpy(capped, P, (size_t)nb * kn * sizeof *P);
    }
    for (int i = 0; i < nb; i++) {
        size_t at = (size_t)(t0 + i) * H + h;
        attn_softmax_row(P + (size_t)i * kn, kn, mask, t0 + i, s0, lse_in ? lse_in + at : NULL,
                         lse_out ? lse_out + at : NULL);
    }
}

void layer_attention_forward(float *out, float *lse, const float *q, int ldq, const float *k,
                             int ldk, const float *v, int ldv, const layer_attn_mask *mask,
                             int H, int KVH, int D, float *scratch) {
    int group = H / KVH, nth = attn_threads();
    size_t share = layer_attention_scratch(mask->T) / (size_t)nth;
    int blas = blas_serial_begin();
#pragma omp parallel for schedule(dynamic, 1) num_threads(nth)
    for (int task = 0; task < mask->n_units * H; task++) {
        int u = task / H, h = task % H, g = h / group;
        int s0 = mask->unit_start[u], n = mask->unit_start[u + 1] - s0;
        float *P = scratch + (size_t)omp_get_thread_num() * share;
        int B = attn_block_rows(mask, n, share, 1);
        for (int b0 = 0; b0 < n; b0 += B) {
            int nb = n - b0 < B ? n - b0 : B, kn = b0 + nb;
            attn_probs(P, NULL, lse, NULL, q, ldq, k, ldk, mask, s0 + b0, nb, s0, kn, h, g, H,
                       D);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nb, D, kn, 1.0f, P, kn,
                        v + (size_t)s0 * ldv + (size_t)g * D, ldv, 0.0f,
                        out + (size_t)(s0 + b0) * H * D + (size_t)h * D, H * D);
        }
    }
    blas_serial_end(blas);
}

/* With P the probabilities and dO the output gradient of a block:
 * dP = dO·Vᵀ, dS = P ⊙ (dP − rowsum(dO ⊙ O)), dQ += scale·dS·K,
 * dK += scale·dSᵀ·Q, dV += Pᵀ·dO; with soft-capping dS is multiplied by
 * the cap's derivative 1 − (S_capped / cap)². A task is a (unit, kv head) pair, its
 * query heads in turn, so no two threads add into the same dK or dV rows. */
void layer_attention_backward(float *dq, float *dk, float *dv, const float *dout,
                              const float *out, const float *lse, const float *q, int ldq,
                              const float *k, int ldk, const float *v, int ldv,
                              const layer_attn_mask *mask, int H, int KVH, int D,
                              float *scratch) {
    int group = H / KVH, nth = attn_threads();
    float scale = attn_scale(mask, D), cap = mask->softcap;
    int rows = cap > 0 ? 3 : 2; /* P, dS and, capped, the capped scores */
    if (rows == 3 && nth > 2 * LAYER_ATTN_BLOCK / 3) nth = 2 * LAYER_ATTN_BLOCK / 3; /* B ≥ 1 */
    size_t share = layer_attention_scratch(mask->T) / (size_t)nth;
    int blas = blas_serial_begin();
#pragma omp parallel for schedule(dynamic, 1) num_threads(nth)
    for (int task = 0; task < mask->n_units * KVH; task++) {
        int u = task / KVH, g = task % KVH;
        int s0 = mask->unit_start[u], n = mask->unit_start[u + 1] - s0;
        int B = attn_block_rows(mask, n, share, rows);
        float *P = scratch + (size_t)omp_get_thread_num() * share, *dS = P + (size_t)B * n;
        float *Sc = cap > 0 ? dS + (size_t)B * n : NULL;
        const float *Kb = k + (size_t)s0 * ldk + (size_t)g * D;
        const float *Vb = v + (size_t)s0 * ldv + (size_t)g * D;
        for (int h = g * group; h < (g + 1) * group; h++) {
            for (int b0 = 0; b0 < n; b0 += B) {
                int nb = n - b0 < B ? n - b0 : B, kn = b0 + nb;
                int t0 = s0 + b0;
                const float *dO = dout + (size_t)t0 * H * D + (size_t)h * D;
                const float *O = out + (size_t)t0 * H * D + (size_t)h * D;
                const float *Qb = q + (size_t)t0 * ldq + (size_t)h * D;
                attn_probs(P, Sc, NULL, lse, q, ldq, k, ldk, mask, t0, nb, s0, kn, h, g, H, D);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, kn, D, 1.0f, dO, H * D,
                            Vb, ldv, 0.0f, dS, kn);
                for (int i = 0; i < nb; i++) {
                    const float *di = dO + (size_t)i * H * D, *oi = O + (size_t)i * H * D;
                    float dsum = 0;
#pragma omp simd reduction(+ : dsum)
                    for (int d = 0; d < D; d++) dsum += di[d] * oi[d];
                    float *ds = dS + (size_t)i * kn;
                    const float *p = P + (size_t)i * kn;
#pragma omp simd
                    for (int j = 0; j < kn; j++) ds[j] = p[j] * (ds[j] - dsum);
                    if (Sc) {
                        const float *sc = Sc + (size_t)i * kn;
                        float inv = 1.0f / cap;
                        for (int j = 0; j < kn; j++)
                            ds[j] *= 1.0f - (sc[j] * inv) * (sc[j] * inv);
                    }
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nb, D, kn, scale, dS, kn,
                            Kb, ldk, 1.0f, dq + (size_t)t0 * ldq + (size_t)h * D, ldq);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kn, D, nb, scale, dS, kn, Qb,
                            ldq, 1.0f, dk + (size_t)s0 * ldk + (size_t)g * D, ldk);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kn, D, nb, 1.0f, P, kn, dO,
                            H * D, 1.0f, dv + (size_t)s0 * ldv + (size_t)g * D, ldv);
            }
        }
    }
    blas_serial_end(blas);
}

/* ---- LM head and log-probabilities ------------------------------------------ */

/* A row of logits' log-sum-exp, and their sum in *tot. */
VEC_CLONES static float logits_lse(const float *z, int V, double *tot) {
    float mx = -INFINITY;
    double t = 0, sum = 0;
#pragma omp simd reduction(max : mx) reduction(+ : t)
    for (int j = 0; j < V; j++) {
        mx = z[j] > mx ? z[j] : mx;
        t += z[j];
    }
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < V; j++) sum += vexp(z[j] - mx);
    *tot = t;
    return mx + (float)log(sum);
}

/* z ← −g · softmax(z), the softmax from the row's log-sum-exp l. */
VEC_CLONES static void logits_grad(float *z, int V, float g, float l) {
#pragma omp simd
    for (int j = 0; j < V; j++) z[j] = -g * vexp(z[j] - l);
}

/* The same through a soft-cap: z holds capped logits zc, and the chain rule
 * through cap · tanh(x / cap) multiplies by 1 − (zc / cap)². */
VEC_CLONES static void logits_grad_capped(float *z, int V, float g, float l, float cap) {
    float inv = 1.0f / cap;
#pragma omp simd
    for (int j = 0; j < V; j++) {
        float u = z[j] * inv;
        z[j] = -g * vexp(z[j] - l) * (1.0f - u * u);
    }
}

/* ---- half-precision weights ---- */

VEC_CLONES static void widen_bf16(float *dst, const uint16_t *src, size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)src[i] << 16;
        memcpy(dst + i, &u, sizeof u);
    }
}

VEC_CLONES static void widen_f16(float *dst, const uint16_t *src, size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        _Float16 h;
        memcpy(&h, src + i, sizeof h);
        dst[i] = (float)h;
    }
}

void layer_widen(float *dst, const uint16_t *src, int bf16, size_t n) {
    EW_FOR(n) (bf16 ? widen_bf16 : widen_f16)(dst + lo, src + lo, EW_LEN(n));
}

/* logits[n, V] (row stride V) = h[n, C] · headᵀ; a half head is widened
 * block by block into its buffer. */
static void head_logits(float *logits, const float *h, int n, const layer_head *hd, int C,
                        int V) {
    if (!hd->half) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, V, C, 1.0f, h, C, hd->w, C, 0.0f,
                    logits, V);
        return;
    }
    for (int v0 = 0; v0 < V; v0 += hd->buf_rows) {
        int vb = V - v0 < hd->buf_rows ? V - v0 : hd->buf_rows;
        layer_widen(hd->buf, hd->half + (size_t)v0 * C, hd->bf16, (size_t)vb * C);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, vb, C, 1.0f, h, C, hd->buf, C,
                    0.0f, logits + v0, V);
    }
}

/* dh[n, C] += dlogits[n, V] · head. */
static void head_input_grad(float *dh, const float *dlogits, int n, const layer_head *hd, int C,
                            int V) {
    if (!hd->half) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, C, V, 1.0f, dlogits, V, hd->w,
                    C, 1.0f, dh, C);
        return;
    }
    for (int v0 = 0; v0 < V; v0 += hd->buf_rows) {
        int vb = V - v0 < hd->buf_rows ? V - v0 : hd->buf_rows;
        layer_widen(hd->buf, hd->half + (size_t)v0 * C, hd->bf16, (size_t)vb * C);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, C, vb, 1.0f, dlogits + v0, V,
                    hd->buf, C, 1.0f, dh, C);
    }
}

void layer_head_gemv(float *logits, const layer_head *hd, const float *x, int C, int V) {
    if (!hd->half) {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, V, C, 1.0f, hd->w, C, x, 1, 0.0f, logits, 1);
        if (hd->softcap > 0) layer_softcap(logits, (size_t)V, hd->softcap);
        return;
    }
    for (int v0 = 0; v0 < V; v0 += hd->buf_rows) {
        int vb = V - v0 < hd->buf_rows ? V - v0 : hd->buf_rows;
        layer_widen(hd->buf, hd->half + (size_t)v0 * C, hd->bf16, (size_t)vb * C);
        cblas_sgemv(CblasRowMajor, CblasNoTrans, vb, C, 1.0f, hd->buf, C, x, 1, 0.0f, logits + v0,
                    1);
    }
    if (hd->softcap > 0) layer_softcap(logits, (size_t)V, hd->softcap);
}

void layer_logprob_forward_head(float *logp, float *mean_logits, float *lse, const float *h,
                                const layer_head *hd, const int32_t *target, int R, int C, int V,
                                float *scratch, int chunk_rows) {
    for (int r0 = 0; r0 < R; r0 += chunk_rows) {
        int n = R - r0 < chunk_rows ? R - r0 : chunk_rows;
        head_logits(scratch, h + (size_t)r0 * C, n, hd, C, V);
        if (hd->softcap > 0) layer_softcap(scratch, (size_t)n * V, hd->softcap);
#pragma omp parallel for
        for (int i = 0; i < n; i++) {
            const float *z = scratch + (size_t)i * V;
            double tot;
            float l = logits_lse(z, V, &tot);
            lse[r0 + i] = l;
            logp[r0 + i] = z[target[r0 + i]] - l;
            if (mean_logits) mean_logits[r0 + i] = (float)(tot / V);
        }
    }
}

void layer_logprob_forward(float *logp, float *mean_logits, float *lse, const float *h,
                           const float *w, const int32_t *target, int R, int C, int V,
                           float *scratch, int chunk_rows) {
    layer_head hd = {.w = w};
    layer_logprob_forward_head(logp, mean_logits, lse, h, &hd, target, R, C, V, scratch,
                               chunk_rows);
}

void layer_logprob_backward_head(float *dh, float *dw, const float *dlogp, const float *h,
                                 const layer_head *hd, const int32_t *target, const float *lse,
                                 int R, int C, int V, float *scratch, int chunk_rows,
                                 int logits_in_scratch) {
    for (int r0 = 0; r0 < R; r0 += chunk_rows) {
        int n = R - r0 < chunk_rows ? R - r0 : chunk_rows;
        const float *hc = h + (size_t)r0 * C;
        if (!(logits_in_scratch && R <= chunk_rows)) {
            head_logits(scratch, hc, n, hd, C, V);
            if (hd->softcap > 0) layer_softcap(scratch, (size_t)n * V, hd->softcap);
        }
        /* d logp / d z_j = [j == target] − softmax_j */
        float cap = hd->softcap;
#pragma omp parallel for
        for (int i = 0; i < n; i++) {
            float *z = scratch + (size_t)i * V;
            int tg = target[r0 + i];
            if (cap > 0) {
                float u = z[tg] / cap;
                logits_grad_capped(z, V, dlogp[r0 + i], lse[r0 + i], cap);
                z[tg] += dlogp[r0 + i] * (1.0f - u * u);
            } else {
                logits_grad(z, V, dlogp[r0 + i], lse[r0 + i]);
                z[tg] += dlogp[r0 + i];
            }
        }
        if (dh) head_input_grad(dh + (size_t)r0 * C, scratch, n, hd, C, V);
        if (dw && !hd->half)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, V, C, n, 1.0f, scratch, V, hc,
                        C, 1.0f, dw, C);
    }
}

void layer_logprob_backward(float *dh, float *dw, const float *dlogp, const float *h,
                            const float *w, const int32_t *target, const float *lse, int R,
                            int C, int V, float *scratch, int chunk_rows, int logits_in_scratch) {
    layer_head hd = {.w = w};
    layer_logprob_backward_head(dh, dw, dlogp, h, &hd, target, lse, R, C, V, scratch, chunk_rows,
                                logits_in_scratch);
}
