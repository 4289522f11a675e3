/* test_layers — every kernel's backward against central finite differences of
 * its forward (loss = Σ out·G for a fixed random G, summed in double), and the
 * attention and log-probability forwards against naive double-precision
 * second implementations. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "layers.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float frand(void) { /* uniform in [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}
static float *rnd(size_t n, float scale) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = frand() * scale;
    return p;
}
static float *zeros(size_t n) { return calloc(n, sizeof(float)); }

/* The kernels' exp against libm's double exp, in ulps of the float result,
 * at 2 million points evenly spread over [−87, 88], and at the edges. */
static void test_exp(void) {
    double worst = 0;
    long n = 0;
    for (long i = 0; i <= 2000000; i++) {
        float x = (float)(-87.0 + 175.0 * (double)i / 2000000);
        double want = exp((double)x), got = layer_exp(x);
        double ulp = nextafterf((float)want, INFINITY) - (float)want;
        double e = fabs(got - want) / ulp;
        if (e > worst) worst = e;
        n++;
    }
    printf("  layer_exp: %ld points, worst error %.2f ulp\n", n, worst);
    CHECK(n == 2000001);
    CHECK(worst <= 2.0);
    CHECK(layer_exp(0.0f) == 1.0f);
    CHECK(layer_exp(-INFINITY) == 0.0f);
    CHECK(layer_exp(-100.0f) == 0.0f);
    CHECK(isnan(layer_exp(NAN)));
    CHECK(isfinite(layer_exp(1000.0f)) && layer_exp(1000.0f) >= layer_exp(88.0f));
    CHECK_NEAR(layer_exp(-87.4f) / exp(-87.4), 1.0, 1e-5); /* subnormal */
}

static double dot(const float *a, const float *g, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * g[i];
    return s;
}

/* Compares analytic[n] with central differences of loss() w.r.t. x[n]:
 * norm-wise relative error below tol. */
static void fd_check(const char *what, float *x, size_t n, double (*loss)(void *), void *ctx,
                     const float *analytic, double h, double tol) {
    double num2 = 0, diff2 = 0;
    for (size_t i = 0; i < n; i++) {
        float keep = x[i];
        x[i] = keep + (float)h;
        double lp = loss(ctx);
        x[i] = keep - (float)h;
        double lm = loss(ctx);
        x[i] = keep;
        double num = (lp - lm) / (2 * h);
        num2 += num * num;
        diff2 += (num - analytic[i]) * (num - analytic[i]);
    }
    double rel = sqrt(diff2) / (sqrt(num2) > 1e-12 ? sqrt(num2) : 1e-12);
    CHECK_MSG(rel < tol && num2 > 0, "%s: relative error %.3g (|grad| %.3g)", what, rel, sqrt(num2));
}

/* ---- embedding ---- */
enum { T_ = 7, C_ = 12, V_ = 5 };
typedef struct {
    int32_t tok[T_];
    int pos[T_];
    float *wte, *wpe, *out, *G;
} emb_ctx;
static double emb_loss(void *p) {
    emb_ctx *c = p;
    layer_embedding_forward(c->out, c->tok, c->pos, c->wte, c->wpe, T_, C_);
    return dot(c->out, c->G, T_ * C_);
}
static void test_embedding(void) {
    emb_ctx c = {.tok = {0, 3, 3, 1, 4, 0, 2}, .pos = {0, 1, 2, 1, 2, 3, 0}};
    c.wte = rnd(V_ * C_, 1), c.wpe = rnd(4 * C_, 1), c.out = zeros(T_ * C_), c.G = rnd(T_ * C_, 1);
    float *dwte = zeros(V_ * C_), *dwpe = zeros(4 * C_);
    layer_embedding_backward(dwte, dwpe, c.G, c.tok, c.pos, T_, C_);
    fd_check("dwte", c.wte, V_ * C_, emb_loss, &c, dwte, 1e-2, 1e-4);
    fd_check("dwpe", c.wpe, 4 * C_, emb_loss, &c, dwpe, 1e-2, 1e-4);
    free(c.wte), free(c.wpe), free(c.out), free(c.G), free(dwte), free(dwpe);
}

/* ---- norms ---- */
typedef struct {
    int N, C, rms;
    float *x, *w, *b, *out, *mean, *rstd, *G;
} norm_ctx;
static double norm_loss(void *p) {
    norm_ctx *c = p;
    if (c->rms == 2)
        layer_rmsnorm1p_forward(c->out, c->rstd, c->x, c->w, c->N, c->C, 1e-5f);
    else if (c->rms)
        layer_rmsnorm_forward(c->out, c->rstd, c->x, c->w, c->N, c->C, 1e-5f);
    else
        layer_layernorm_forward(c->out, c->mean, c->rstd, c->x, c->w, c->b, c->N, c->C, 1e-5f);
    return dot(c->out, c->G, (size_t)c->N * c->C);
}
static void norm_case(int rms) {
    norm_ctx c = {.N = 5, .C = 16, .rms = rms};
    size_t n = (size_t)c.N * c.C;
    c.x = rnd(n, 2), c.w = rnd(c.C, 1), c.b = rnd(c.C, 1), c.out = zeros(n);
    c.mean = zeros(c.N), c.rstd = zeros(c.N), c.G = rnd(n, 1);
    float *dx = zeros(n), *dw = zeros(c.C), *db = zeros(c.C);
    norm_loss(&c);
    if (rms == 2) {
        layer_rmsnorm1p_backward(dx, dw, c.G, c.x, c.w, c.rstd, c.N, c.C);
        /* (1 + w) against plain RMSNorm with the weights plus one */
        float *w1 = zeros(c.C), *o1 = zeros(n), *r1 = zeros(c.N);
        for (int k = 0; k < c.C; k++) w1[k] = 1.0f + c.w[k];
        layer_rmsnorm_forward(o1, r1, c.x, w1, c.N, c.C, 1e-5f);
        for (size_t k = 0; k < n; k++) CHECK_NEAR(o1[k], c.out[k], 1e-6);
        free(w1), free(o1), free(r1);
    } else if (rms) {
        layer_rmsnorm_backward(dx, dw, c.G, c.x, c.w, c.rstd, c.N, c.C);
        /* Accumulates: a second call doubles the result. */
        float *dx2 = zeros(n), *dw2 = zeros(c.C);
        layer_rmsnorm_backward(dx2, dw2, c.G, c.x, c.w, c.rstd, c.N, c.C);
        layer_rmsnorm_backward(dx2, dw2, c.G, c.x, c.w, c.rstd, c.N, c.C);
        CHECK_NEAR(dx2[3], 2 * dx[3], 1e-5);
        free(dx2), free(dw2);
    } else {
        layer_layernorm_backward(dx, dw, db, c.G, c.x, c.w, c.mean, c.rstd, c.N, c.C);
    }
    fd_check("dx", c.x, n, norm_loss, &c, dx, 1e-3, 2e-3);
    fd_check("dw", c.w, c.C, norm_loss, &c, dw, 1e-3, 2e-3);
    if (!rms) fd_check("db", c.b, c.C, norm_loss, &c, db, 1e-3, 2e-3);
    free(c.x), free(c.w), free(c.b), free(c.out), free(c.mean), free(c.rstd), free(c.G);
    free(dx), free(dw), free(db);
}
static void test_layernorm(void) { norm_case(0); }
static void test_rmsnorm(void) { norm_case(1); }
static void test_rmsnorm_gemma(void) { norm_case(2); }

/* ---- linear (both layouts, with a row stride wider than the block) ---- */
typedef struct {
    int N, IC, OC, ldw, layout;
    float *x, *w, *b, *out, *G;
} lin_ctx;
static double lin_loss(void *p) {
    lin_ctx *c = p;
    layer_linear_forward(c->out, c->x, c->w, c->ldw, c->layout, c->b, c->N, c->IC, c->OC);
    return dot(c->out, c->G, (size_t)c->N * c->OC);
}
static void linear_case(int layout) {
    lin_ctx c = {.N = 6, .IC = 5, .OC = 4, .layout = layout};
    c.ldw = (layout == LAYER_W_OUT_IN ? c.IC : c.OC) + 3;
    size_t nw = (size_t)(layout == LAYER_W_OUT_IN ? c.OC : c.IC) * c.ldw;
    c.x = rnd((size_t)c.N * c.IC, 1), c.w = rnd(nw, 1), c.b = rnd(c.OC, 1);
    c.out = zeros((size_t)c.N * c.OC), c.G = rnd((size_t)c.N * c.OC, 1);
    float *dx = zeros((size_t)c.N * c.IC), *dw = zeros(nw), *db = zeros(c.OC);
    layer_linear_backward(dx, dw, db, c.G, c.x, c.w, c.ldw, layout, c.N, c.IC, c.OC);
    fd_check("dx", c.x, (size_t)c.N * c.IC, lin_loss, &c, dx, 1e-2, 1e-3);
    fd_check("dw", c.w, nw, lin_loss, &c, dw, 1e-2, 1e-3);
    fd_check("db", c.b, c.OC, lin_loss, &c, db, 1e-2, 1e-3);
    /* Entries outside the block (the stride padding) get no gradient. */
    int pad_untouched = 1;
    int rows = layout == LAYER_W_OUT_IN ? c.OC : c.IC, cols = layout == LAYER_W_OUT_IN ? c.IC : c.OC;
    for (int r = 0; r < rows; r++)
        for (int j = cols; j < c.ldw; j++) pad_untouched &= dw[(size_t)r * c.ldw + j] == 0.0f;
    CHECK(pad_untouched);
    /* Conv1D [in,out] and nn.Linear [out,in] give y = x·W and x·Wᵀ. */
    lin_loss(&c);
    double y = c.b[2];
    for (int i = 0; i < c.IC; i++)
        y += (double)c.x[1 * c.IC + i] *
             (layout == LAYER_W_OUT_IN ? c.w[2 * c.ldw + i] : c.w[i * c.ldw + 2]);
    CHECK_NEAR(c.out[1 * c.OC + 2], y, 1e-5);
    free(c.x), free(c.w), free(c.b), free(c.out), free(c.G), free(dx), free(dw), free(db);
}
static void test_linear_out_in(void) { linear_case(LAYER_W_OUT_IN); }
static void test_linear_in_out(void) { linear_case(LAYER_W_IN_OUT); }

/* ---- activations ---- */
typedef struct {
    size_t n;
    int swiglu;
    float *a, *b, *out, *G;
} act_ctx;
static double act_loss(void *p) {
    act_ctx *c = p;
    if (c->swiglu == 2)
        layer_geglu_forward(c->out, c->a, c->b, c->n);
    else if (c->swiglu)
        layer_swiglu_forward(c->out, c->a, c->b, c->n);
    else
        layer_gelu_forward(c->out, c->a, c->n);
    return dot(c->out, c->G, c->n);
}
static void test_gelu(void) {
    act_ctx c = {.n = 40};
    c.a = rnd(c.n, 4), c.out = zeros(c.n), c.G = rnd(c.n, 1);
    float *da = zeros(c.n);
    layer_gelu_backward(da, c.a, c.G, c.n);
    fd_check("gelu", c.a, c.n, act_loss, &c, da, 1e-3, 2e-3);
    float x = 1.5f, y;
    layer_gelu_forward(&y, &x, 1);
    CHECK_NEAR(y, 0.5 * 1.5 * (1 + tanh(sqrt(2 / M_PI) * (1.5 + 0.044715 * 1.5 * 1.5 * 1.5))), 1e-6);
    free(c.a), free(c.out), free(c.G), free(da);
}
static void test_swiglu(void) {
    act_ctx c = {.n = 40, .swiglu = 1};
    c.a = rnd(c.n, 4), c.b = rnd(c.n, 2), c.out = zeros(c.n), c.G = rnd(c.n, 1);
    float *da = zeros(c.n), *dbb = zeros(c.n);
    layer_swiglu_backward(da, dbb, c.G, c.a, c.b, c.n);
    fd_check("dgate", c.a, c.n, act_loss, &c, da, 1e-3, 2e-3);
    fd_check("dup", c.b, c.n, act_loss, &c, dbb, 1e-3, 2e-3);
    free(c.a), free(c.b), free(c.out), free(c.G), free(da), free(dbb);
}
static void test_geglu(void) {
    act_ctx c = {.n = 40, .swiglu = 2};
    c.a = rnd(c.n, 4), c.b = rnd(c.n, 2), c.out = zeros(c.n), c.G = rnd(c.n, 1);
    float *da = zeros(c.n), *dbb = zeros(c.n), *g = zeros(c.n);
    layer_geglu_backward(da, dbb, c.G, c.a, c.b, c.n);
    fd_check("geglu dgate", c.a, c.n, act_loss, &c, da, 1e-3, 2e-3);
    fd_check("geglu dup", c.b, c.n, act_loss, &c, dbb, 1e-3, 2e-3);
    act_loss(&c);
    layer_gelu_forward(g, c.a, c.n); /* gelu_tanh(gate) ⊙ up */
    for (size_t i = 0; i < c.n; i++) CHECK_NEAR(c.out[i], g[i] * c.b[i], 1e-5);
    free(c.a), free(c.b), free(c.out), free(c.G), free(da), free(dbb), free(g);
}

/* Soft-capping: cap · tanh(x / cap). */
static void test_softcap(void) {
    float x[4] = {0.0f, 1.0f, -30.0f, 100.0f};
    layer_softcap(x, 4, 5.0f);
    CHECK_NEAR(x[0], 0.0, 1e-7);
    CHECK_NEAR(x[1], 5 * tanh(0.2), 1e-6);
    CHECK_NEAR(x[2], 5 * tanh(-6.0), 1e-5);
    CHECK_NEAR(x[3], 5.0, 1e-5);
    /* relative error against tanh over [-20, 20], small values included */
    enum { N = 400001 };
    float *y = malloc(N * sizeof *y);
    for (int i = 0; i < N; i++) y[i] = -20.0f + 40.0f * (float)i / (N - 1);
    layer_softcap(y, N, 1.0f);
    double worst = 0;
    for (int i = 0; i < N; i++) {
        double u = -20.0f + 40.0f * (float)i / (N - 1), t = tanh(u);
        worst = fmax(worst, t != 0 ? fabs(y[i] - t) / fabs(t) : fabs(y[i]));
    }
    CHECK_MSG(worst < 2e-6, "soft-cap tanh: relative error %g", worst);
    free(y);
}

/* ---- rope ---- */
typedef struct {
    int T, H, D, rot;
    int pos[4];
    float inv[4], mscale;
    float *x, *out, *G;
} rope_ctx;
static double rope_loss(void *p) {
    rope_ctx *c = p;
    if (c->rot)
        layer_rope_forward_ext(c->out, c->x, c->pos, c->inv, c->T, c->H, c->D, c->rot, c->mscale);
    else
        layer_rope_forward(c->out, c->x, c->pos, c->inv, c->T, c->H, c->D);
    return dot(c->out, c->G, (size_t)c->T * c->H * c->D);
}
static void test_rope(void) {
    rope_ctx c = {.T = 4, .H = 3, .D = 8, .pos = {0, 5, 2, 17}};
    layer_rope_inv_freq(c.inv, c.D, 10000.0f, 2, 8.0f, 1.0f, 4.0f, 64);
    /* llama3 bands with L=64, low=1, high=4: wavelen 2π < 16 kept; 2π·10 in
     * between, smoothed; 2π·100 and 2π·1000 > 64 divided by 8. */
    double s = (64.0 / (2 * M_PI * 10) - 1.0) / 3.0;
    CHECK_NEAR(c.inv[0], 1.0, 1e-7);
    CHECK_NEAR(c.inv[1], (1 - s) * 0.1 / 8 + s * 0.1, 1e-7);
    CHECK_NEAR(c.inv[2], 0.01 / 8, 1e-9);
    CHECK_NEAR(c.inv[3], 0.001 / 8, 1e-10);
    size_t n = (size_t)c.T * c.H * c.D;
    c.x = rnd(n, 1), c.out = zeros(n), c.G = rnd(n, 1);
    float *dx = zeros(n);
    rope_loss(&c);
    /* rotate_half: element i pairs with i + D/2. */
    float a = 17 * c.inv[1], x1 = c.x[(3 * 3 + 2) * 8 + 1], x2 = c.x[(3 * 3 + 2) * 8 + 5];
    CHECK_NEAR(c.out[(3 * 3 + 2) * 8 + 1], x1 * cos(a) - x2 * sin(a), 1e-5);
    CHECK_NEAR(c.out[(3 * 3 + 2) * 8 + 5], x2 * cos(a) + x1 * sin(a), 1e-5);
    layer_rope_backward(dx, c.G, c.pos, c.inv, c.T, c.H, c.D);
    fd_check("rope", c.x, n, rope_loss, &c, dx, 1e-2, 1e-3);
    float inv_lin[4];
    layer_rope_inv_freq(inv_lin, 8, 10000.0f, 1, 4.0f, 0, 0, 0);
    CHECK_NEAR(inv_lin[1], 0.1 / 4, 1e-8);
    free(c.x), free(c.out), free(c.G), free(dx);
}

/* Partial rotary (4 of 8 dims, pairs i and i + 2) with cos and sin scaled. */
static void test_rope_partial_scaled(void) {
    rope_ctx c = {.T = 4, .H = 3, .D = 8, .rot = 4, .mscale = 1.3f, .pos = {0, 5, 2, 17},
                  .inv = {1.0f, 0.01f}};
    size_t n = (size_t)c.T * c.H * c.D;
    c.x = rnd(n, 1), c.out = zeros(n), c.G = rnd(n, 1);
    float *dx = zeros(n);
    rope_loss(&c);
    size_t row = (3 * 3 + 2) * 8;
    float a = 17 * c.inv[1], x1 = c.x[row + 1], x2 = c.x[row + 3];
    CHECK_NEAR(c.out[row + 1], 1.3 * (x1 * cos(a) - x2 * sin(a)), 1e-5);
    CHECK_NEAR(c.out[row + 3], 1.3 * (x2 * cos(a) + x1 * sin(a)), 1e-5);
    for (int d = 4; d < 8; d++) CHECK(c.out[row + d] == c.x[row + d]);
    layer_rope_backward_ext(dx, c.G, c.pos, c.inv, c.T, c.H, c.D, c.rot, c.mscale);
    fd_check("rope partial", c.x, n, rope_loss, &c, dx, 1e-2, 1e-3);
    free(c.x), free(c.out), free(c.G), free(dx);
}

/* ---- attention: two units, the first packed [P|C|R] with prefix sharing ---- */
enum { AT = 11, AH = 4, AKV = 2, AD = 4 };
typedef struct {
    layer_attn_mask m;
    int lo0[AT], hi0[AT], lo1[AT], hi1[AT], pos[AT], us[3];
    float *q, *k, *v, *out, *lse, *G, *scratch;
    int ldq, ldk, ldv;
} att_ctx;
static double att_loss(void *p) {
    att_ctx *c = p;
    layer_attention_forward(c->out, c->lse, c->q, c->ldq, c->k, c->ldk, c->v, c->ldv, &c->m, AH,
                            AKV, AD, c->scratch);
    return dot(c->out, c->G, AT * AH * AD);
}
/* Unit 0: P = 0..2, C = 3..4, R = 5..6 (positions 3, 4). Unit 1: plain
 * causal sequence 7..10. */
static void att_setup(att_ctx *c, int window, int block, float scale, float cap) {
    for (int t = 0; t < AT; t++) {
        c->lo1[t] = c->hi1[t] = 0;
        if (t < 5) {
            c->lo0[t] = 0, c->hi0[t] = t + 1, c->pos[t] = t;
        } else if (t < 7) {
            c->lo0[t] = 0, c->hi0[t] = 3, c->lo1[t] = 5, c->hi1[t] = t + 1, c->pos[t] = t - 2;
        } else {
            c->lo0[t] = 7, c->hi0[t] = t + 1, c->pos[t] = t - 7;
        }
    }
    c->us[0] = 0, c->us[1] = 7, c->us[2] = 11;
    c->m = (layer_attn_mask){.T = AT, .n_units = 2, .lo0 = c->lo0, .hi0 = c->hi0, .lo1 = c->lo1,
                             .hi1 = c->hi1, .pos = c->pos, .unit_start = c->us, .window = window, .block = block,
                             .scale = scale, .softcap = cap};
    c->ldq = AH * AD + 2, c->ldk = AKV * AD + 1, c->ldv = AKV * AD;
    c->q = rnd((size_t)AT * c->ldq, 1.5f), c->k = rnd((size_t)AT * c->ldk, 1.5f);
    c->v = rnd((size_t)AT * c->ldv, 1);
    c->out = zeros(AT * AH * AD), c->lse = zeros(AT * AH), c->G = rnd(AT * AH * AD, 1);
    c->scratch = zeros(layer_attention_scratch(AT));
}
static void att_free(att_ctx *c) {
    free(c->q), free(c->k), free(c->v), free(c->out), free(c->lse), free(c->G), free(c->scratch);
}
static void attention_case_ext(int window, int block, float scale, float cap) {
    att_ctx c;
    att_setup(&c, window, block, scale, cap);
    att_loss(&c);
    /* Second implementation: explicit mask from the packing rule, in double. */
    double maxerr = 0;
    for (int t = 0; t < AT; t++)
        for (int h = 0; h < AH; h++) {
            int g = h / (AH / AKV);
            double s[AT], mx = -1e300, sum = 0;
            int ok[AT];
            for (int j = 0; j < AT; j++) {
                int same_unit = (t < 7) == (j < 7);
                int vis = same_unit && j <= t;
                if (t >= 5 && t < 7 && j >= 3 && j < 5) vis = 0; /* rejected never sees chosen */
                if (window > 0 && c.pos[j] <= c.pos[t] - window) vis = 0;
                ok[j] = vis;
                if (!vis) continue;
                s[j] = 0;
                for (int d = 0; d < AD; d++)
                    s[j] += (double)c.q[t * c.ldq + h * AD + d] * c.k[j * c.ldk + g * AD + d];
                s[j] *= scale > 0 ? scale : 1 / sqrt(AD);
                if (cap > 0) s[j] = cap * tanh(s[j] / cap);
                if (s[j] > mx) mx = s[j];
            }
            for (int j = 0; j < AT; j++)
                if (ok[j]) sum += exp(s[j] - mx);
            for (int d = 0; d < AD; d++) {
                double o = 0;
                for (int j = 0; j < AT; j++)
                    if (ok[j]) o += exp(s[j] - mx) / sum * c.v[j * c.ldv + g * AD + d];
                double e = fabs(o - c.out[(t * AH + h) * AD + d]);
                if (e > maxerr) maxerr = e;
            }
        }
    CHECK_MSG(maxerr < 1e-5, "attention forward vs naive: %g", maxerr);
    float *dq = zeros((size_t)AT * c.ldq), *dk = zeros((size_t)AT * c.ldk), *dv = zeros((size_t)AT * c.ldv);
    layer_attention_backward(dq, dk, dv, c.G, c.out, c.lse, c.q, c.ldq, c.k, c.ldk, c.v, c.ldv,
                             &c.m, AH, AKV, AD, c.scratch);
    fd_check("dq", c.q, (size_t)AT * c.ldq, att_loss, &c, dq, 1e-3, 3e-3);
    fd_check("dk", c.k, (size_t)AT * c.ldk, att_loss, &c, dk, 1e-3, 3e-3);
    fd_check("dv", c.v, (size_t)AT * c.ldv, att_loss, &c, dv, 1e-3, 3e-3);
    free(dq), free(dk), free(dv);
    att_free(&c);
}
static void attention_case(int window, int block) { attention_case_ext(window, block, 0, 0); }
static void test_attention(void) { attention_case(0, 0); }
/* Gemma 2: scores scaled by query_pre_attn_scalar^−1/2 and soft-capped
 * (a cap of 1.5 bends them), with and without a window and blocks. */
static void test_attention_softcap(void) {
    attention_case_ext(0, 0, 0.8f, 1.5f);
    attention_case_ext(2, 2, 0.8f, 1.5f);
}
static void test_attention_sliding_window(void) { attention_case(2, 0); }
/* Blocks of 2 queries: units split across several blocks. */
static void test_attention_blocks(void) {
    attention_case(0, 2);
    attention_case(3, 2);
}

/* ---- LM head + log-softmax gather ---- */
enum { LR = 5, LC = 6, LV = 9 };
typedef struct {
    float *h, *w, logp[LR], mean[LR], lse[LR], G[LR], *scratch;
    int32_t tgt[LR];
} lp_ctx;
static double lp_loss(void *p) {
    lp_ctx *c = p;
    layer_logprob_forward(c->logp, c->mean, c->lse, c->h, c->w, c->tgt, LR, LC, LV, c->scratch, 2);
    return dot(c->logp, c->G, LR);
}
static void test_logprob(void) {
    lp_ctx c = {.tgt = {0, 8, 3, 3, 5}};
    c.h = rnd(LR * LC, 1), c.w = rnd(LV * LC, 1), c.scratch = zeros(2 * LV);
    for (int i = 0; i < LR; i++) c.G[i] = frand();
    lp_loss(&c);
    for (int r = 0; r < LR; r++) {
        double z[LV], mx = -1e300, s = 0, tot = 0;
        for (int j = 0; j < LV; j++) {
            z[j] = 0;
            for (int d = 0; d < LC; d++) z[j] += (double)c.h[r * LC + d] * c.w[j * LC + d];
            if (z[j] > mx) mx = z[j];
            tot += z[j];
        }
        for (int j = 0; j < LV; j++) s += exp(z[j] - mx);
        CHECK_NEAR(c.logp[r], z[c.tgt[r]] - mx - log(s), 1e-5);
        CHECK_NEAR(c.mean[r], tot / LV, 1e-5);
    }
    float *dh = zeros(LR * LC), *dw = zeros(LV * LC);
    layer_logprob_backward(dh, dw, c.G, c.h, c.w, c.tgt, c.lse, LR, LC, LV, c.scratch, 2, 1);
    fd_check("dh", c.h, LR * LC, lp_loss, &c, dh, 1e-3, 2e-3);
    fd_check("dw", c.w, LV * LC, lp_loss, &c, dw, 1e-3, 2e-3);
    /* One chunk holding every row: backward reuses the forward's logits. */
    float *scratch_all = zeros(LR * LV), *dh1 = zeros(LR * LC), *dw1 = zeros(LV * LC);
    layer_logprob_forward(c.logp, c.mean, c.lse, c.h, c.w, c.tgt, LR, LC, LV, scratch_all, LR);
    layer_logprob_backward(dh1, dw1, c.G, c.h, c.w, c.tgt, c.lse, LR, LC, LV, scratch_all, LR, 1);
    double md = 0;
    for (int i = 0; i < LR * LC; i++) md = fmax(md, fabs(dh1[i] - dh[i]));
    for (int i = 0; i < LV * LC; i++) md = fmax(md, fabs(dw1[i] - dw[i]));
    CHECK_MSG(md < 1e-6, "reused logits: gradients differ by %g", md);
    free(scratch_all), free(dh1), free(dw1);
    free(c.h), free(c.w), free(c.scratch), free(dh), free(dw);
}

/* Final-logit soft-capping (Gemma 2): logp from cap · tanh(z / cap). */
typedef struct {
    lp_ctx *c;
    layer_head hd;
} lpc_ctx;
static double lpc_loss(void *p) {
    lpc_ctx *x = p;
    lp_ctx *c = x->c;
    layer_logprob_forward_head(c->logp, c->mean, c->lse, c->h, &x->hd, c->tgt, LR, LC, LV,
                               c->scratch, 2);
    return dot(c->logp, c->G, LR);
}
static void test_logprob_softcap(void) {
    lp_ctx c = {.tgt = {0, 8, 3, 3, 5}};
    c.h = rnd(LR * LC, 1.5f), c.w = rnd(LV * LC, 1.5f), c.scratch = zeros(2 * LV);
    for (int i = 0; i < LR; i++) c.G[i] = frand();
    lpc_ctx x = {&c, {.w = c.w, .softcap = 2.0f}};
    lpc_loss(&x);
    for (int r = 0; r < LR; r++) {
        double z[LV], mx = -1e300, s = 0, tot = 0;
        for (int j = 0; j < LV; j++) {
            z[j] = 0;
            for (int d = 0; d < LC; d++) z[j] += (double)c.h[r * LC + d] * c.w[j * LC + d];
            z[j] = 2.0 * tanh(z[j] / 2.0);
            if (z[j] > mx) mx = z[j];
            tot += z[j];
        }
        for (int j = 0; j < LV; j++) s += exp(z[j] - mx);
        CHECK_NEAR(c.logp[r], z[c.tgt[r]] - mx - log(s), 1e-5);
        CHECK_NEAR(c.mean[r], tot / LV, 1e-5);
    }
    float *dh = zeros(LR * LC), *dw = zeros(LV * LC);
    layer_logprob_backward_head(dh, dw, c.G, c.h, &x.hd, c.tgt, c.lse, LR, LC, LV, c.scratch, 2, 1);
    fd_check("capped dh", c.h, LR * LC, lpc_loss, &x, dh, 1e-3, 2e-3);
    fd_check("capped dw", c.w, LV * LC, lpc_loss, &x, dw, 1e-3, 2e-3);
    float logits[LV];
    layer_head_gemv(logits, &x.hd, c.h, LC, LV);
    for (int j = 0; j < LV; j++) CHECK(fabsf(logits[j]) < 2.0f);
    free(c.h), free(c.w), free(c.scratch), free(dh), free(dw);
}

int main(void) {
    RUN(test_embedding);
    RUN(test_layernorm);
    RUN(test_rmsnorm);
    RUN(test_linear_out_in);
    RUN(test_linear_in_out);
    RUN(test_gelu);
    RUN(test_swiglu);
    RUN(test_rope);
    RUN(test_attention);
    RUN(test_exp);
    RUN(test_attention_sliding_window);
    RUN(test_attention_blocks);
    RUN(test_attention_softcap);
    RUN(test_rmsnorm_gemma);
    RUN(test_geglu);
    RUN(test_softcap);
    RUN(test_rope_partial_scaled);
    RUN(test_logprob_softcap);
    RUN(test_logprob);
    return check_summary();
}
