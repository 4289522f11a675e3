/* test_model — the whole engine on tiny random models: finite-difference
 * gradients of a DPO-like loss Σ w_r·logp_r per parameter tensor, prefix
 * sharing on == off, a batch == its examples run alone, save/load round
 * trips, the memory estimate, and config errors. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "model.h"

static const char *GPT2 =
    "{\"model_type\":\"gpt2\",\"n_layer\":2,\"n_head\":2,\"n_embd\":16,\"vocab_size\":37,"
    "\"n_positions\":32}";
static const char *LLAMA =
    "{\"model_type\":\"llama\",\"num_hidden_layers\":2,\"num_attention_heads\":4,"
    "\"num_key_value_heads\":2,\"hidden_size\":16,\"head_dim\":6,\"intermediate_size\":24,"
    "\"vocab_size\":37,\"attention_bias\":true,\"mlp_bias\":true,\"tie_word_embeddings\":false,"
    "\"rope_theta\":100.0,\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":4.0,"
    "\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,\"original_max_position_embeddings\":16}}";
static const char *QWEN3 =
    "{\"model_type\":\"qwen3\",\"num_hidden_layers\":2,\"num_attention_heads\":2,"
    "\"num_key_value_heads\":1,\"hidden_size\":16,\"head_dim\":8,\"intermediate_size\":20,"
    "\"vocab_size\":37,\"tie_word_embeddings\":true}";
static const char *MISTRAL =
    "{\"model_type\":\"mistral\",\"num_hidden_layers\":1,\"num_attention_heads\":2,"
    "\"num_key_value_heads\":2,\"hidden_size\":16,\"intermediate_size\":20,\"vocab_size\":37,"
    "\"sliding_window\":3}";
static const char *QWEN2 =
    "{\"model_type\":\"qwen2\",\"num_hidden_layers\":1,\"num_attention_heads\":2,"
    "\"num_key_value_heads\":1,\"hidden_size\":16,\"intermediate_size\":20,\"vocab_size\":37}";
static const char *GEMMA = /* tied; head_dim × heads ≠ hidden */
    "{\"model_type\":\"gemma\",\"num_hidden_layers\":2,\"num_attention_heads\":2,"
    "\"num_key_value_heads\":1,\"hidden_size\":16,\"head_dim\":6,\"intermediate_size\":20,"
    "\"vocab_size\":37,\"hidden_act\":\"gelu\"}";
static const char *GEMMA2 = /* soft-caps that bend, window 3 on layers 0 and 2 */
    "{\"model_type\":\"gemma2\",\"num_hidden_layers\":3,\"num_attention_heads\":2,"
    "\"num_key_value_heads\":1,\"hidden_size\":16,\"head_dim\":8,\"intermediate_size\":20,"
    "\"vocab_size\":37,\"sliding_window\":3,\"query_pre_attn_scalar\":10,"
    "\"attn_logit_softcapping\":4.0,\"final_logit_softcapping\":6.0}";
static const char *GEMMA3 = /* q/k norms, local base, global layer 1 with linear scaling, untied */
    "{\"model_type\":\"gemma3_text\",\"num_hidden_layers\":3,\"num_attention_heads\":2,"
    "\"num_key_value_heads\":2,\"hidden_size\":16,\"head_dim\":8,\"intermediate_size\":20,"
    "\"vocab_size\":37,\"sliding_window\":3,\"sliding_window_pattern\":2,"
    "\"rope_local_base_freq\":30.0,\"rope_theta\":500.0,\"final_logit_softcapping\":8.0,"
    "\"tie_word_embeddings\":false,\"rope_scaling\":{\"rope_type\":\"linear\",\"factor\":2.0}}";
static const char *PHI3 = /* fused, partial rotary, longrope beyond 6 tokens, window 4 */
    "{\"model_type\":\"phi3\",\"num_hidden_layers\":2,\"num_attention_heads\":2,"
    "\"num_key_value_heads\":1,\"hidden_size\":16,\"intermediate_size\":20,"
    "\"vocab_size\":37,\"partial_rotary_factor\":0.75,\"sliding_window\":4,"
    "\"max_position_embeddings\":96,\"original_max_position_embeddings\":6,"
    "\"rope_scaling\":{\"type\":\"longrope\",\"short_factor\":[1.0,1.5,2.0],"
    "\"long_factor\":[2.0,3.0,8.0]}}";

/* Three examples: (P, C, R) = (3, 4, 2), (5, 2, 3), (2, 3, 0). */
static const int NP[3] = {3, 5, 2}, NC[3] = {4, 2, 3}, NR[3] = {2, 3, 0};
static int32_t TOKS[64];
static int n_resp(int n) {
    int r = 0;
    for (int i = 0; i < n; i++) r += NC[i] + NR[i];
    return r;
}
static model_batch batch_all(void) {
    for (int i = 0; i < 64; i++) TOKS[i] = (int32_t)((i * 7 + 3) % 37);
    return (model_batch){3, TOKS, NP, NC, NR};
}

static model *make_with(const char *json, const model_options *o, float scale) {
    model *m = NULL;
    dp_err e = {0};
    if (model_init_random(&m, json, 1234, o, &e)) {
        fprintf(stderr, "init: %s\n", e.msg);
        return NULL;
    }
    /* Larger weights than the N(0, 0.02) init make gradients large enough for
     * float finite differences; norms and biases get perturbed too. */
    float *p = model_params(m, NULL);
    for (int i = 0; i < model_n_tensors(m); i++) {
        const model_tensor *t = model_tensor_at(m, i);
        float s = t->ndim == 2 ? scale : 1.0f;
        for (size_t k = t->offset; k < t->offset + t->numel; k++)
            p[k] = p[k] * s + 0.05f * (float)sin(0.37 * (double)k);
    }
    return m;
}

static model *make(const char *json, int training, int sharing, float scale) {
    model_options o = {.training = training, .prefix_sharing = sharing, .threads = 2, .max_tokens = 64};
    return make_with(json, &o, scale);
}

static float WT[64]; /* loss weights per response token */
static double loss(model *m, const model_batch *b) {
    float lp[64];
    dp_err e;
    if (model_forward(m, b, lp, NULL, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return NAN;
    }
    double s = 0;
    for (int r = 0; r < n_resp(b->n); r++) s += (double)WT[r] * lp[r];
    return s;
}

/* Moves tensor t by h along its direction v. */
static void nudge(float *p, const model_tensor *t, const float *v, double h) {
    for (size_t k = 0; k < t->numel; k++) p[t->offset + k] += (float)(h * v[k]);
}

/* Per tensor: the derivative along a fixed unit direction of random signs,
 * by central differences with Richardson extrapolation (the h² error term
 * cancels), vs the backward's gradient·direction. */
static void fd_model_scaled(const char *json, float scale) {
    model *m = make(json, 1, 1, scale);
    CHECK(m != NULL);
    if (!m) return;
    for (int r = 0; r < 64; r++) WT[r] = (float)cos(1.3 * r);
    model_batch b = batch_all();
    float lp[64];
    dp_err e;
    model_zero_grads(m);
    CHECK(model_forward(m, &b, lp, NULL, &e) == 0);
    CHECK(model_backward(m, WT, &e) == 0);
    float *p = model_params(m, NULL), *g = model_grads(m, NULL);
    int bad = 0;
    for (int i = 0; i < model_n_tensors(m); i++) {
        const model_tensor *t = model_tensor_at(m, i);
        float *v = malloc(t->numel * sizeof *v);
        double ana = 0, d[2];
        for (size_t k = 0; k < t->numel; k++) {
            v[k] = (float)(((k * 2654435761u >> 7) & 1 ? 1.0 : -1.0) / sqrt((double)t->numel));
            ana += (double)g[t->offset + k] * v[k];
        }
        for (int s = 0; s < 2; s++) {
            double h0 = getenv("FD_H") ? atof(getenv("FD_H")) : 1e-2, h = s ? h0 : 2 * h0;
            nudge(p, t, v, h);
            double lp_ = loss(m, &b);
            nudge(p, t, v, -2 * h);
            double lm_ = loss(m, &b);
            nudge(p, t, v, h);
            d[s] = (lp_ - lm_) / (2 * h);
        }
        double num = (4 * d[1] - d[0]) / 3;
        double rel = fabs(num - ana) / fmax(fabs(num), 1e-2);
        if (!(rel < 1e-2)) {
            bad++;
            fprintf(stderr, "  %s: numeric %.6g analytic %.6g (rel %.3g)\n", t->name, num, ana, rel);
        }
        free(v);
    }
    CHECK_MSG(bad == 0, "%d tensors off", bad);
    model_free(m);
}
static void fd_model(const char *json) { fd_model_scaled(json, 3.0f); }
static void test_fd_gpt2(void) { fd_model(GPT2); }
static void test_fd_llama(void) { fd_model(LLAMA); }
static void test_fd_qwen3(void) { fd_model(QWEN3); }
static void test_fd_mistral(void) { fd_model(MISTRAL); }
/* Float32 differences of these curved losses (soft-caps, √C embeddings,
 * q/k norms) hold 1e-2 only near the default step for some weight scales:
 * Gemma 3's weights are scaled less. tests/test_model_parity checks every
 * gradient of these families against float64 torch to 1e-4. */
static void test_fd_gemma(void) { fd_model(GEMMA); }
static void test_fd_gemma2(void) { fd_model(GEMMA2); }
static void test_fd_gemma3_text(void) { fd_model_scaled(GEMMA3, 1.5f); }
static void test_fd_phi3(void) { fd_model(PHI3); }

static double rel_diff(const float *a, const float *b, size_t n) {
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) d += (double)(a[i] - b[i]) * (a[i] - b[i]), s += (double)b[i] * b[i];
    return sqrt(d) / fmax(sqrt(s), 1e-30);
}

/* Sharing on and off give the same logps and gradients. */
static void sharing_case(const char *json) {
    model *on = make(json, 1, 1, 5.0f), *off = make(json, 1, 0, 5.0f);
    CHECK(on && off);
    if (!on || !off) return;
    model_batch b = batch_all();
    float l1[64], l2[64], m1[64], m2[64];
    dp_err e;
    CHECK(model_packed_tokens(on) == 0);
    CHECK(model_forward(on, &b, l1, m1, &e) == 0);
    CHECK(model_forward(off, &b, l2, m2, &e) == 0);
    CHECK(model_packed_tokens(on) == 9 + 10 + 5);
    CHECK(model_packed_tokens(off) == (7 + 5) + (7 + 8) + 5);
    int R = n_resp(3);
    double maxd = 0;
    for (int r = 0; r < R; r++) maxd = fmax(maxd, fmax(fabs(l1[r] - l2[r]), fabs(m1[r] - m2[r])));
    CHECK_MSG(maxd < 1e-5, "logps differ by %g", maxd);
    CHECK(model_backward(on, WT, &e) == 0);
    CHECK(model_backward(off, WT, &e) == 0);
    size_t n;
    float *g1 = model_grads(on, &n), *g2 = model_grads(off, NULL);
    CHECK_MSG(rel_diff(g1, g2, n) < 1e-5, "grads differ: %g", rel_diff(g1, g2, n));
    model_free(on);
    model_free(off);
}
/* Edge shapes: an empty chosen side, one-token prompt and responses. */
static void test_sharing_edges(void) {
    static const int np[3] = {2, 1, 3}, nc[3] = {0, 1, 2}, nr[3] = {3, 1, 0};
    int32_t toks[13] = {5, 9, 1, 2, 3, 4, 6, 7, 8, 10, 11, 12, 13};
    model_batch b = {3, toks, np, nc, nr};
    float wt[16], l1[16], l2[16];
    for (int r = 0; r < 16; r++) wt[r] = (float)cos(0.7 * r);
    const char *cfgs[2] = {GPT2, LLAMA};
    for (int k = 0; k < 2; k++) {
        model *on = make(cfgs[k], 1, 1, 5.0f), *off = make(cfgs[k], 1, 0, 5.0f);
        if (!on || !off) return;
        dp_err e;
        CHECK(model_forward(on, &b, l1, NULL, &e) == 0 && model_backward(on, wt, &e) == 0);
        CHECK(model_forward(off, &b, l2, NULL, &e) == 0 && model_backward(off, wt, &e) == 0);
        double maxd = 0;
        for (int r = 0; r < 8; r++) maxd = fmax(maxd, fabs(l1[r] - l2[r]));
        CHECK_MSG(maxd < 1e-5, "logps differ by %g", maxd);
        size_t n;
        const float *g1 = model_grads(on, &n);
        CHECK(rel_diff(g1, model_grads(off, NULL), n) < 1e-5);
        model_free(on);
        model_free(off);
    }
}

static void test_sharing_gpt2(void) { sharing_case(GPT2); }
static void test_sharing_llama(void) { sharing_case(LLAMA); }
static void test_sharing_qwen3(void) { sharing_case(QWEN3); }
static void test_sharing_mistral(void) { sharing_case(MISTRAL); }
static void test_sharing_gemma2(void) { sharing_case(GEMMA2); }
static void test_sharing_gemma3_text(void) { sharing_case(GEMMA3); }
static void test_sharing_phi3(void) { sharing_case(PHI3); }

/* Recomputation changes where activations live, never a bit of the result:
 * logps, mean logits and every gradient memcmp-equal with it on and off,
 * with prefix sharing on and off, over two steps (gradients accumulate) and
 * after an unrelated forward (the slot is refilled from the right batch). */
static void recompute_case(const char *json) {
    for (int share = 0; share < 2; share++) {
        model_options o = {.training = 1, .prefix_sharing = share, .threads = 2, .max_tokens = 64};
        model *plain = make_with(json, &o, 5.0f);
        o.recompute = 1;
        model *rec = make_with(json, &o, 5.0f);
        CHECK(plain && rec);
        if (!plain || !rec) return;
        model *ms[2] = {plain, rec};
        model_batch b = batch_all();
        int np1 = 4, nc1 = 3, nr1 = 2;
        model_batch other = {1, TOKS + 20, &np1, &nc1, &nr1};
        float lp[2][2][64], ml[2][2][64], junk[8];
        dp_err e;
        for (int k = 0; k < 2; k++) {
            for (int step = 0; step < 2; step++) {
                CHECK_MSG(model_forward(ms[k], &b, lp[k][step], ml[k][step], &e) == 0, "%s", e.msg);
                CHECK(model_backward(ms[k], WT, &e) == 0);
            }
            CHECK(model_forward(ms[k], &other, junk, NULL, &e) == 0);
            CHECK(model_forward(ms[k], &b, lp[k][0], NULL, &e) == 0);
            CHECK(model_backward(ms[k], WT, &e) == 0);
        }
        size_t R = (size_t)n_resp(3), n;
        for (int step = 0; step < 2; step++) {
            CHECK(memcmp(lp[0][step], lp[1][step], R * sizeof(float)) == 0);
            CHECK(memcmp(ml[0][step], ml[1][step], R * sizeof(float)) == 0);
        }
        const float *g0 = model_grads(plain, &n), *g1 = model_grads(rec, NULL);
        size_t diff = 0;
        for (size_t i = 0; i < n; i++) diff += memcmp(&g0[i], &g1[i], sizeof *g0) != 0;
        CHECK_MSG(diff == 0, "%s, sharing %d: %zu of %zu gradients differ",
                  model_get_config(plain)->model_type, share, diff, n);
        double mag = 0;
        for (size_t i = 0; i < n; i++) mag += fabs(g0[i]);
        CHECK(mag > 0); /* the comparison saw real gradients */
        model_free(plain);
        model_free(rec);
    }
}
static void test_recompute_gpt2(void) { recompute_case(GPT2); }
static void test_recompute_llama(void) { recompute_case(LLAMA); }
static void test_recompute_gemma2(void) { recompute_case(GEMMA2); }
static void test_recompute_gemma3_text(void) { recompute_case(GEMMA3); }
static void test_recompute_phi3(void) { recompute_case(PHI3); }
static void test_recompute_qwen3(void) {
    /* three layers: one replayed between the kept top and the bottom */
    recompute_case("{\"model_type\":\"qwen3\",\"num_hidden_layers\":3,\"num_attention_heads\":2,"
                   "\"num_key_value_heads\":1,\"hidden_size\":16,\"head_dim\":8,"
                   "\"intermediate_size\":20,\"vocab_size\":37}");
}

/* A batch equals its examples run one by one (logps; summed gradients). */
static void test_batch_vs_single(void) {
    const char *cfgs[2] = {GPT2, LLAMA};
    for (int k = 0; k < 2; k++) {
        model *m = make(cfgs[k], 1, 1, 5.0f);
        if (!m) return;
        model_batch b = batch_all();
        float lb[64], ls[64], wt[64];
        for (int r = 0; r < 64; r++) wt[r] = (float)cos(1.3 * r);
        dp_err e;
        CHECK(model_forward(m, &b, lb, NULL, &e) == 0);
        CHECK(model_backward(m, wt, &e) == 0);
        size_t n;
        float *g = model_grads(m, &n), *gb = malloc(n * sizeof *gb);
        memcpy(gb, g, n * sizeof *gb);
        model_zero_grads(m);
        int off = 0, r0 = 0;
        for (int i = 0; i < 3; i++) {
            model_batch one = {1, TOKS + off, NP + i, NC + i, NR + i};
            CHECK(model_forward(m, &one, ls + r0, NULL, &e) == 0);
            CHECK(model_backward(m, wt + r0, &e) == 0);
            off += NP[i] + NC[i] + NR[i];
            r0 += NC[i] + NR[i];
        }
        double maxd = 0;
        for (int r = 0; r < r0; r++) maxd = fmax(maxd, fabs(lb[r] - ls[r]));
        CHECK_MSG(maxd < 1e-5, "logps differ by %g", maxd);
        CHECK_MSG(rel_diff(g, gb, n) < 1e-5, "grads differ: %g", rel_diff(g, gb, n));
        free(gb);
        model_free(m);
    }
}

/* model_next_logits agrees with the log-probabilities of model_forward. */
static void test_next_logits(void) {
    const char *cfgs[3] = {GPT2, LLAMA, QWEN3};
    for (int k = 0; k < 3; k++) {
        model *m = make(cfgs[k], 1, 1, 3.0f);
        if (!m) return;
        int32_t toks[8] = {3, 17, 5, 29, 11, 0, 36, 8};
        float logits[37], lp[4];
        dp_err e;
        CHECK_MSG(model_next_logits(m, toks, 5, logits, &e) == 0, "%s", e.msg);
        double mx = -1e30, s = 0;
        for (int j = 0; j < 37; j++) mx = fmax(mx, logits[j]);
        for (int j = 0; j < 37; j++) s += exp(logits[j] - mx);
        int np = 5, nc = 1, nr = 1;
        int32_t pair[7] = {3, 17, 5, 29, 11, 20, 33};
        model_batch b = {1, pair, &np, &nc, &nr};
        CHECK(model_forward(m, &b, lp, NULL, &e) == 0);
        CHECK_NEAR(lp[0], logits[20] - mx - log(s), 1e-5);
        CHECK_NEAR(lp[1], logits[33] - mx - log(s), 1e-5);
        CHECK(model_next_logits(m, toks, 5, logits, &e) == 0);
        CHECK(model_backward(m, lp, &e) == -1); /* nothing to go back through */
        model_free(m);
    }
}

/* Same inputs, same thread count: bit-identical outputs. */
static void test_deterministic(void) {
    model *m = make(LLAMA, 1, 1, 5.0f);
    if (!m) return;
    model_batch b = batch_all();
    float l1[64], l2[64];
    dp_err e;
    size_t n;
    CHECK(model_forward(m, &b, l1, NULL, &e) == 0 && model_backward(m, WT, &e) == 0);
    float *g = model_grads(m, &n), *g1 = malloc(n * sizeof *g1);
    memcpy(g1, g, n * sizeof *g1);
    model_zero_grads(m);
    CHECK(model_forward(m, &b, l2, NULL, &e) == 0 && model_backward(m, WT, &e) == 0);
    CHECK(memcmp(l1, l2, (size_t)n_resp(3) * sizeof(float)) == 0);
    CHECK(memcmp(g1, g, n * sizeof(float)) == 0);
    free(g1);
    model_free(m);
}

/* Models with different thread counts coexist (each runs with its own). */
static void test_threads(void) {
    model_options o1 = {.training = 1, .prefix_sharing = 1, .threads = 1, .max_tokens = 64};
    model_options o2 = o1;
    o2.threads = 2;
    model *a = NULL, *b2 = NULL;
    dp_err e;
    CHECK(model_init_random(&a, LLAMA, 7, &o1, &e) == 0);
    CHECK(model_init_random(&b2, LLAMA, 7, &o2, &e) == 0);
    if (!a || !b2) return;
    model_batch b = batch_all();
    float l1[64], l2[64];
    CHECK(model_forward(a, &b, l1, NULL, &e) == 0 && model_backward(a, WT, &e) == 0);
    CHECK(model_forward(b2, &b, l2, NULL, &e) == 0 && model_backward(b2, WT, &e) == 0);
    double maxd = 0;
    for (int r = 0; r < n_resp(3); r++) maxd = fmax(maxd, fabs(l1[r] - l2[r]));
    CHECK_MSG(maxd < 1e-5, "1 vs 2 threads: logps differ by %g", maxd);
    size_t n;
    const float *ga = model_grads(a, &n);
    CHECK(rel_diff(ga, model_grads(b2, NULL), n) < 1e-5);
    model_free(a);
    model_free(b2);
}

static void test_save_load(void) {
    const char *cfgs[5] = {GPT2, LLAMA, QWEN3, MISTRAL, QWEN2};
    char dir[] = "/tmp/dpoc_test_model_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    for (int k = 0; k < 5; k++) {
        model *m = make(cfgs[k], 0, 1, 1.0f), *m2 = NULL;
        if (!m) return;
        model_batch b = batch_all();
        float l1[64], l2[64];
        dp_err e = {0};
        model_options o = {.training = 1, .prefix_sharing = 1, .threads = 2, .max_tokens = 64};
        for (int bf16 = 0; bf16 < 2; bf16++) {
            CHECK_MSG(model_save(m, dir, bf16, &e) == 0, "%s", e.msg);
            CHECK_MSG(model_load(&m2, dir, &o, &e) == 0, "%s", e.msg);
            if (!m2) continue;
            CHECK(model_forward(m, &b, l1, NULL, &e) == 0);
            CHECK(model_forward(m2, &b, l2, NULL, &e) == 0);
            double maxd = 0;
            for (int r = 0; r < n_resp(3); r++) maxd = fmax(maxd, fabs(l1[r] - l2[r]));
            CHECK_MSG(maxd < (bf16 ? 2e-2 : 1e-6), "%s bf16=%d: logps differ by %g",
                      model_get_config(m)->model_type, bf16, maxd);
            size_t n1, n2;
            model_params(m, &n1), model_params(m2, &n2);
            CHECK(n1 == n2);
            CHECK_STR(model_get_config(m2)->model_type, model_get_config(m)->model_type);
            model_free(m2);
            m2 = NULL;
        }
        model_free(m);
    }
    char p[256];
    snprintf(p, sizeof p, "%s/config.json", dir), unlink(p);
    snprintf(p, sizeof p, "%s/model.safetensors", dir), unlink(p);
    rmdir(dir);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

/* A checkpoint that does not fit its config.json is an error naming the tensor. */
static void test_load_errors(void) {
    char dir[] = "/tmp/dpoc_test_load_XXXXXX", p[256];
    CHECK(mkdtemp(dir) != NULL);
    model *m = make(LLAMA, 0, 1, 1.0f), *m2 = NULL;
    if (!m) return;
    dp_err e = {0};
    CHECK(model_save(m, dir, 0, &e) == 0);
    model_free(m);
    model_options o = {.training = 0, .prefix_sharing = 1, .threads = 2, .max_tokens = 64};
    snprintf(p, sizeof p, "%s/config.json", dir);
    const char *cases[3][2] = {
        {"{\"model_type\":\"llama\",\"num_hidden_layers\":2,\"num_attention_heads\":4,"
         "\"num_key_value_heads\":2,\"hidden_size\":16,\"head_dim\":6,\"intermediate_size\":20,"
         "\"vocab_size\":37,\"attention_bias\":true,\"mlp_bias\":true}",
         "expected shape [16, 20] from config.json, found [16, 24]"},
        {"{\"model_type\":\"llama\",\"num_hidden_layers\":1,\"num_attention_heads\":4,"
         "\"num_key_value_heads\":2,\"hidden_size\":16,\"head_dim\":6,\"intermediate_size\":24,"
         "\"vocab_size\":37,\"attention_bias\":true,\"mlp_bias\":true}",
         "model.layers.1.input_layernorm.weight: not a parameter"},
        {"{\"model_type\":\"llama\",\"num_hidden_layers\":3,\"num_attention_heads\":4,"
         "\"num_key_value_heads\":2,\"hidden_size\":16,\"head_dim\":6,\"intermediate_size\":24,"
         "\"vocab_size\":37,\"attention_bias\":true,\"mlp_bias\":true}",
         "model.layers.2.input_layernorm.weight: missing"},
    };
    for (int i = 0; i < 3; i++) {
        write_file(p, cases[i][0]);
        CHECK(model_load(&m2, dir, &o, &e) == -1 && m2 == NULL);
        CHECK_MSG(strstr(e.msg, cases[i][1]) != NULL, "\"%s\" lacks \"%s\"", e.msg, cases[i][1]);
    }
    unlink(p);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    CHECK(model_load(&m2, dir, &o, &e) == -1 && strstr(e.msg, "config.json"));
    unlink(p);
    rmdir(dir);
}

/* model_new without config text writes one that reads back the same, and
 * model_init_random takes a path as well as JSON text. */
static void test_config_text(void) {
    const char *cfgs[9] = {GPT2, LLAMA, QWEN3, MISTRAL, QWEN2, GEMMA, GEMMA2, GEMMA3, PHI3};
    for (int k = 0; k < 9; k++) {
        model_config c, c2;
        dp_err e = {0};
        model_options o = {.training = 0, .prefix_sharing = 1, .threads = 1, .max_tokens = 8};
        CHECK(model_read_config(&c, cfgs[k], &e) == 0);
        model *m = NULL, *m2 = NULL;
        CHECK(model_new(&m, &c, NULL, &o, &e) == 0);
        if (!m) continue;
        CHECK_MSG(model_read_config(&c2, model_config_text(m), &e) == 0, "%s", e.msg);
        CHECK_MSG(memcmp(&c, &c2, sizeof c) == 0, "%s: config text does not read back", c.model_type);
        char path[] = "/tmp/dpoc_test_cfg_XXXXXX";
        int fd = mkstemp(path);
        CHECK(fd >= 0 && write(fd, cfgs[k], strlen(cfgs[k])) == (ssize_t)strlen(cfgs[k]));
        close(fd);
        CHECK_MSG(model_init_random(&m2, path, 1, &o, &e) == 0, "%s", e.msg);
        if (m2) CHECK_STR(model_config_text(m2), cfgs[k]);
        unlink(path);
        model_free(m);
        model_free(m2);
    }
}

static void test_memory_estimate(void) {
    const char *cfgs[9] = {GPT2, LLAMA, QWEN3, MISTRAL, QWEN2, GEMMA, GEMMA2, GEMMA3, PHI3};
    for (int k = 0; k < 9; k++) {
        model *m = make(cfgs[k], 0, 1, 1.0f);
        if (!m) return;
        size_t n;
        model_params(m, &n);
        model_memory mm = model_memory_estimate(model_get_config(m), 100);
        CHECK_MSG(mm.n_params == n, "%s: estimate %zu, model %zu", model_get_config(m)->model_type,
                  mm.n_params, n);
        CHECK(mm.adam == 2 * mm.weights && mm.activations > 0);
        /* recompute keeps one layer's activations instead of n_layer */
        int L = model_get_config(m)->n_layer;
        CHECK(L > 1 ? mm.activations_recompute < mm.activations
                    : mm.activations_recompute == mm.activations);
        model_free(m);
    }
}

/* Parameter counts of published checkpoints from their config.json alone:
 * google/gemma-2b, google/gemma-2-2b, google/gemma-3-1b-pt,
 * microsoft/Phi-3-mini-4k-instruct. */
static void test_published_param_counts(void) {
    static const struct {
        const char *json;
        size_t n;
    } cases[] = {
        {"{\"model_type\":\"gemma\",\"num_hidden_layers\":18,\"num_attention_heads\":8,"
         "\"num_key_value_heads\":1,\"hidden_size\":2048,\"head_dim\":256,"
         "\"intermediate_size\":16384,\"vocab_size\":256000,\"hidden_act\":\"gelu\"}",
         2506172416},
        {"{\"model_type\":\"gemma2\",\"num_hidden_layers\":26,\"num_attention_heads\":8,"
         "\"num_key_value_heads\":4,\"hidden_size\":2304,\"head_dim\":256,"
         "\"intermediate_size\":9216,\"vocab_size\":256000}",
         2614341888},
        {"{\"model_type\":\"gemma3_text\",\"num_hidden_layers\":26,\"num_attention_heads\":4,"
         "\"num_key_value_heads\":1,\"hidden_size\":1152,\"head_dim\":256,"
         "\"intermediate_size\":6912,\"vocab_size\":262144,\"sliding_window\":512}",
         999885952},
        {"{\"model_type\":\"phi3\",\"num_hidden_layers\":32,\"num_attention_heads\":32,"
         "\"num_key_value_heads\":32,\"hidden_size\":3072,\"intermediate_size\":8192,"
         "\"vocab_size\":32064,\"sliding_window\":2047}",
         3821079552},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        model_config c;
        dp_err e = {0};
        CHECK_MSG(model_read_config(&c, cases[i].json, &e) == 0, "%s", e.msg);
        model_memory mm = model_memory_estimate(&c, 16);
        CHECK_MSG(mm.n_params == cases[i].n, "%s: %zu parameters, published %zu", c.model_type,
                  mm.n_params, cases[i].n);
    }
}

/* transformers 5 writes rope_parameters (rope_theta inside; Gemma 3's per
 * layer type) where older configs have rope_theta and rope_scaling: both
 * read to the same config. */
static void test_rope_parameters_format(void) {
#define D3 "\"num_hidden_layers\":2,\"num_attention_heads\":2,\"hidden_size\":8,\"head_dim\":8," \
           "\"intermediate_size\":8,\"vocab_size\":5"
    static const char *pairs[][2] = {
        {"{\"model_type\":\"gemma3_text\"," D3 ",\"rope_theta\":5000.0,\"rope_local_base_freq\":70.0,"
         "\"rope_scaling\":{\"rope_type\":\"linear\",\"factor\":8.0}}",
         "{\"model_type\":\"gemma3_text\"," D3 ",\"rope_parameters\":{\"full_attention\":{"
         "\"rope_type\":\"linear\",\"factor\":8.0,\"rope_theta\":5000.0},\"sliding_attention\":{"
         "\"rope_type\":\"default\",\"rope_theta\":70.0}}}"},
        {"{\"model_type\":\"phi3\"," D3 ",\"rope_theta\":300.0,\"partial_rotary_factor\":0.5,"
         "\"max_position_embeddings\":64,\"rope_scaling\":{\"type\":\"longrope\","
         "\"short_factor\":[1,2],\"long_factor\":[3,4]}}",
         "{\"model_type\":\"phi3\"," D3 ",\"max_position_embeddings\":64,\"rope_parameters\":{"
         "\"rope_type\":\"longrope\",\"rope_theta\":300.0,\"partial_rotary_factor\":0.5,"
         "\"original_max_position_embeddings\":4096,\"short_factor\":[1,2],\"long_factor\":[3,4]}}"},
        {"{\"model_type\":\"llama\"," D3 ",\"rope_theta\":500000.0,\"rope_scaling\":{\"rope_type\":"
         "\"llama3\",\"factor\":8.0,\"original_max_position_embeddings\":8192}}",
         "{\"model_type\":\"llama\"," D3 ",\"rope_parameters\":{\"rope_type\":\"llama3\","
         "\"rope_theta\":500000.0,\"factor\":8.0,\"original_max_position_embeddings\":8192}}"},
    };
#undef D3
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
        model_config a, b;
        dp_err e = {0};
        memset(&a, 0, sizeof a), memset(&b, 0, sizeof b);
        CHECK_MSG(model_read_config(&a, pairs[i][0], &e) == 0, "%s", e.msg);
        CHECK_MSG(model_read_config(&b, pairs[i][1], &e) == 0, "%s", e.msg);
        CHECK_MSG(memcmp(&a, &b, sizeof a) == 0, "%s: rope_parameters read differently",
                  a.model_type);
    }
}

/* LoRA names per family (PEFT's modules: Phi-3's fused qkv_proj and
 * gate_up_proj are one each), their parameter count, and merging a fused
 * adapter (views of one A, blocks of B's rows) computes what it did. */
static void test_lora_families(void) {
    unsigned t = 0;
    char names[256];
    dp_err e = {0};
    const char *all[] = {"all-linear"}, *bad[] = {"q_proj"}, *some[] = {"qkv_proj", "down_proj"};
    CHECK(model_lora_parse_targets("phi3", all, 1, &t, &e) == 0);
    CHECK(t == (MODEL_LORA_QKV | MODEL_LORA_O | MODEL_LORA_GATE_UP | MODEL_LORA_DOWN));
    model_lora_target_names("phi3", t, names, sizeof names);
    CHECK_STR(names, "down_proj, gate_up_proj, o_proj, qkv_proj");
    CHECK(model_lora_parse_targets("phi3", bad, 1, &t, &e) == -1 &&
          strstr(e.msg, "down_proj, gate_up_proj, o_proj, qkv_proj"));
    CHECK(model_lora_parse_targets("phi3", some, 2, &t, &e) == 0 &&
          t == (MODEL_LORA_QKV | MODEL_LORA_DOWN));
    CHECK(model_lora_family_targets("gemma2") == model_lora_family_targets("llama"));
    CHECK(model_lora_family_targets("gemma3_text") == model_lora_family_targets("llama"));
    model_config c;
    CHECK(model_read_config(&c, PHI3, &e) == 0);
    /* qkv_proj 16 → 16 + 2·8, o_proj 16 → 16, gate_up_proj 16 → 40, down_proj 20 → 16 */
    CHECK(model_lora_param_count(&c, 2, model_lora_family_targets("phi3")) ==
          (size_t)2 * c.n_layer * ((16 + 32) + (16 + 16) + (16 + 40) + (20 + 16)));
    model_options o = {.training = 0, .prefix_sharing = 1, .threads = 2, .max_tokens = 64};
    model *m = make_with(PHI3, &o, 3.0f);
    if (!m) return;
    model_lora_options lo = {.r = 2, .alpha = 4, .seed = 9, .targets = model_lora_family_targets("phi3")};
    CHECK_MSG(model_lora_add(m, &lo, &e) == 0, "%s", e.msg);
    size_t n;
    float *ab = model_trainable(m, NULL, &n);
    for (size_t k = 0; k < n; k++) ab[k] = 0.2f * (float)sin(0.7 * (double)k);
    model_batch b = batch_all();
    float before[64], after[64];
    CHECK(model_forward(m, &b, before, NULL, &e) == 0);
    CHECK_MSG(model_lora_merge(m, &e) == 0, "%s", e.msg);
    CHECK(model_lora(m) == NULL);
    CHECK(model_forward(m, &b, after, NULL, &e) == 0);
    double d = 0, moved = 0;
    for (int r = 0; r < n_resp(3); r++) d = fmax(d, fabs(before[r] - after[r]));
    CHECK_MSG(d < 1e-4, "phi3: merged adapters change logps by %g", d);
    model *plain = make_with(PHI3, &o, 3.0f);
    if (plain) {
        CHECK(model_forward(plain, &b, after, NULL, &e) == 0);
        for (int r = 0; r < n_resp(3); r++) moved = fmax(moved, fabs(before[r] - after[r]));
        CHECK_MSG(moved > 1e-3, "phi3: the adapters changed nothing (%g)", moved);
        model_free(plain);
    }
    model_free(m);
}

static void expect_config_error(const char *json, const char *needle) {
    model_config c;
    dp_err e = {0};
    CHECK(model_read_config(&c, json, &e) == -1);
    CHECK_MSG(strstr(e.msg, needle) != NULL, "message \"%s\" lacks \"%s\"", e.msg, needle);
}

static void test_config_errors(void) {
    expect_config_error("{\"model_type\":\"bert\"}", "\"bert\"");
    expect_config_error("{\"model_type\":\"llama\",\"num_hidden_layers\":1,\"num_attention_heads\":2,"
                        "\"hidden_size\":8,\"intermediate_size\":8,\"vocab_size\":5,\"hidden_act\":\"gelu\"}",
                        "\"gelu\"");
    expect_config_error("{\"model_type\":\"llama\",\"num_hidden_layers\":1,\"num_attention_heads\":2,"
                        "\"hidden_size\":8,\"intermediate_size\":8,\"vocab_size\":5,"
                        "\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":2}}",
                        "\"yarn\"");
    expect_config_error("{\"model_type\":\"gpt2\",\"n_layer\":1,\"n_head\":2,\"n_embd\":8,"
                        "\"vocab_size\":5,\"activation_function\":\"relu\"}", "\"relu\"");
    expect_config_error("{\"model_type\":\"llama\",\"num_attention_heads\":2}", "num_hidden_layers");
    expect_config_error("{\"model_type\":\"llama\",\"num_hidden_layers\":1,\"num_attention_heads\":3,"
                        "\"num_key_value_heads\":2,\"hidden_size\":12,\"intermediate_size\":8,\"vocab_size\":5}",
                        "num_key_value_heads");
    expect_config_error("{\"model_type\": ", "invalid JSON");
#define DIMS "\"num_hidden_layers\":2,\"num_attention_heads\":2,\"hidden_size\":8,\"head_dim\":4," \
             "\"intermediate_size\":8,\"vocab_size\":5"
    expect_config_error("{\"model_type\":\"gemma\"," DIMS ",\"hidden_activation\":\"relu\"}",
                        "hidden_activation \"relu\"");
    expect_config_error("{\"model_type\":\"gemma2\"," DIMS ",\"attn_logit_softcapping\":-1}",
                        "attn_logit_softcapping");
    expect_config_error("{\"model_type\":\"gemma3_text\"," DIMS
                        ",\"layer_types\":[\"full_attention\",\"sliding_attention\"]}",
                        "layer_types");
    expect_config_error("{\"model_type\":\"gemma3_text\"," DIMS ",\"layer_types\":[\"x\"]}",
                        "layer_types");
    expect_config_error("{\"model_type\":\"gemma\"," DIMS ",\"partial_rotary_factor\":0.5}",
                        "partial_rotary_factor");
    expect_config_error("{\"model_type\":\"phi3\"," DIMS ",\"partial_rotary_factor\":0.25}",
                        "partial_rotary_factor");
    expect_config_error("{\"model_type\":\"phi3\"," DIMS ",\"rope_scaling\":{\"type\":\"longrope\","
                        "\"short_factor\":[1],\"long_factor\":[1,2]}}", "short_factor");
    expect_config_error("{\"model_type\":\"phi3\"," DIMS ",\"rope_scaling\":{\"type\":\"dynamic\","
                        "\"factor\":2}}", "\"dynamic\"");
    expect_config_error("{\"model_type\":\"phi3small\"," DIMS "}", "\"phi3small\"");
    expect_config_error("{\"model_type\":\"gemma3_text\"," DIMS ",\"use_bidirectional_attention\":true}",
                        "use_bidirectional_attention");
    expect_config_error("{\"model_type\":\"llama\"," DIMS ",\"rope_parameters\":{\"rope_type\":\"yarn\","
                        "\"factor\":2}}", "rope_parameters: rope type \"yarn\"");
#undef DIMS
    expect_config_error("/nonexistent/config.json", "/nonexistent/config.json");
}

static void test_batch_errors(void) {
    model *m = make(GPT2, 0, 1, 1.0f);
    if (!m) return;
    float lp[64];
    dp_err e = {0};
    int32_t toks[80] = {0};
    int np = 30, nc = 5, nr = 1, zero = 0;
    model_batch big = {1, toks, &np, &nc, &nr};
    CHECK(model_forward(m, &big, lp, NULL, &e) == -1 && strstr(e.msg, "n_positions"));
    np = 20, nc = 25, nr = 25;
    model *ml = make(LLAMA, 0, 0, 1.0f);
    CHECK(model_forward(ml, &big, lp, NULL, &e) == -1 && strstr(e.msg, "max_tokens"));
    model_free(ml);
    np = 2, nc = 2;
    toks[1] = 37;
    CHECK(model_forward(m, &big, lp, NULL, &e) == -1 && strstr(e.msg, "vocabulary"));
    model_batch noprompt = {1, toks, &zero, &nc, &nr};
    CHECK(model_forward(m, &noprompt, lp, NULL, &e) == -1 && strstr(e.msg, "prompt"));
    CHECK(model_backward(m, lp, &e) == -1 && strstr(e.msg, "training"));
    model_free(m);
}

int main(void) {
    RUN(test_fd_gpt2);
    RUN(test_fd_llama);
    RUN(test_fd_qwen3);
    RUN(test_fd_mistral);
    RUN(test_fd_gemma);
    RUN(test_fd_gemma2);
    RUN(test_fd_gemma3_text);
    RUN(test_fd_phi3);
    RUN(test_sharing_gpt2);
    RUN(test_sharing_llama);
    RUN(test_sharing_qwen3);
    RUN(test_sharing_mistral);
    RUN(test_sharing_gemma2);
    RUN(test_sharing_gemma3_text);
    RUN(test_sharing_phi3);
    RUN(test_sharing_edges);
    RUN(test_recompute_gpt2);
    RUN(test_recompute_llama);
    RUN(test_recompute_qwen3);
    RUN(test_recompute_gemma2);
    RUN(test_recompute_gemma3_text);
    RUN(test_recompute_phi3);
    RUN(test_batch_vs_single);
    RUN(test_next_logits);
    RUN(test_deterministic);
    RUN(test_threads);
    RUN(test_save_load);
    RUN(test_load_errors);
    RUN(test_config_text);
    RUN(test_memory_estimate);
    RUN(test_published_param_counts);
    RUN(test_rope_parameters_format);
    RUN(test_lora_families);
    RUN(test_config_errors);
    RUN(test_batch_errors);
    return check_summary();
}
