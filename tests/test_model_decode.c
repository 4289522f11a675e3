/* test_model_decode — the KV cache against the engine's full forward: for
 * every family, logits after incremental appends (chunked prompts, then
 * single tokens) equal model_next_logits over the same prefix, and a greedy
 * generation of 20 tokens picks the same tokens step by step. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "model.h"

static const char *GPT2 =
    "{\"model_type\":\"gpt2\",\"n_layer\":2,\"n_head\":2,\"n_embd\":16,\"vocab_size\":37,"
    "\"n_positions\":96}";
static const char *LLAMA = /* GQA, biases, untied head, llama3 rope scaling */
    "{\"model_type\":\"llama\",\"num_hidden_layers\":2,\"num_attention_heads\":4,"
    "\"num_key_value_heads\":2,\"hidden_size\":16,\"head_dim\":6,\"intermediate_size\":24,"
    "\"vocab_size\":37,\"attention_bias\":true,\"mlp_bias\":true,\"tie_word_embeddings\":false,"
    "\"rope_theta\":100.0,\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":4.0,"
    "\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,\"original_max_position_embeddings\":16}}";
static const char *LLAMA_LINEAR =
    "{\"model_type\":\"llama\",\"num_hidden_layers\":1,\"num_attention_heads\":2,"
    "\"num_key_value_heads\":2,\"hidden_size\":16,\"intermediate_size\":20,\"vocab_size\":37,"
    "\"rope_theta\":50.0,\"rope_scaling\":{\"rope_type\":\"linear\",\"factor\":2.0}}";
static const char *QWEN3 = /* qk-norm, tied */
    "{\"model_type\":\"qwen3\",\"num_hidden_layers\":2,\"num_attention_heads\":2,"
    "\"num_key_value_heads\":1,\"hidden_size\":16,\"head_dim\":8,\"intermediate_size\":20,"
    "\"vocab_size\":37,\"tie_word_embeddings\":true}";
static const char *MISTRAL = /* sliding window of 3 */
    "{\"model_type\":\"mistral\",\"num_hidden_layers\":2,\"num_attention_heads\":2,"
    "\"num_key_value_heads\":2,\"hidden_size\":16,\"intermediate_size\":20,\"vocab_size\":37,"
    "\"sliding_window\":3}";
static const char *QWEN2 = /* q/k/v biases */
    "{\"model_type\":\"qwen2\",\"num_hidden_layers\":1,\"num_attention_heads\":2,"
    "\"num_key_value_heads\":1,\"hidden_size\":16,\"intermediate_size\":20,\"vocab_size\":37}";
static const char *GEMMA = /* norms 1 + w, √C embeddings, GeGLU, MQA */
    "{\"model_type\":\"gemma\",\"num_hidden_layers\":2,\"num_attention_heads\":2,"
    "\"num_key_value_heads\":1,\"hidden_size\":16,\"head_dim\":12,\"intermediate_size\":20,"
    "\"vocab_size\":37}";
static const char *GEMMA2 = /* soft-caps, window 3 on even layers, post norms */
    "{\"model_type\":\"gemma2\",\"num_hidden_layers\":3,\"num_attention_heads\":2,"
    "\"num_key_value_heads\":1,\"hidden_size\":16,\"head_dim\":8,\"intermediate_size\":20,"
    "\"vocab_size\":37,\"sliding_window\":3,\"query_pre_attn_scalar\":12,"
    "\"attn_logit_softcapping\":3.0,\"final_logit_softcapping\":5.0}";
static const char *GEMMA3 = /* q/k norms, local RoPE base, every 2nd layer global, untied */
    "{\"model_type\":\"gemma3_text\",\"num_hidden_layers\":3,\"num_attention_heads\":2,"
    "\"num_key_value_heads\":1,\"hidden_size\":16,\"head_dim\":8,\"intermediate_size\":20,"
    "\"vocab_size\":37,\"sliding_window\":4,\"sliding_window_pattern\":2,"
    "\"rope_local_base_freq\":50.0,\"rope_theta\":1000.0,\"tie_word_embeddings\":false,"
    "\"rope_scaling\":{\"rope_type\":\"linear\",\"factor\":4.0}}";
static const char *PHI3 = /* fused, partial rotary, longrope (short), window 5 */
    "{\"model_type\":\"phi3\",\"num_hidden_layers\":2,\"num_attention_heads\":2,"
    "\"num_key_value_heads\":1,\"hidden_size\":16,\"intermediate_size\":20,"
    "\"vocab_size\":37,\"partial_rotary_factor\":0.5,\"sliding_window\":5,"
    "\"max_position_embeddings\":1024,\"original_max_position_embeddings\":128,"
    "\"rope_scaling\":{\"type\":\"longrope\",\"short_factor\":[1.0,1.5],"
    "\"long_factor\":[3.0,5.0]}}";

#define MAXT 96

/* A random model with weights scaled up from the N(0, 0.02) init, so logits
 * differ clearly between tokens and positions; norm weights perturbed. */
static model *make(const char *json) {
    model_options o = {.training = 0, .prefix_sharing = 1, .threads = 2, .max_tokens = MAXT};
    model *m = NULL;
    dp_err e = {0};
    if (model_init_random(&m, json, 99, &o, &e)) {
        fprintf(stderr, "init: %s\n", e.msg);
        return NULL;
    }
    float *p = model_params(m, NULL);
    for (int i = 0; i < model_n_tensors(m); i++) {
        const model_tensor *t = model_tensor_at(m, i);
        int is_norm = strstr(t->name, "norm") || strstr(t->name, "ln_");
        for (size_t k = 0; k < t->numel; k++) {
            float *x = p + t->offset + k;
            *x = is_norm ? 1.0f + 0.3f * sinf((float)(k + 3 * i)) : 20.0f * *x;
        }
    }
    return m;
}

static double max_diff(const float *a, const float *b, int n) {
    double d = 0;
    for (int i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

/* Appends a 70-token sequence in pieces of 1, 5, 64 (crossing a chunk),
 * then one at a time, and compares with a full forward at every stop. */
static void check_family(const char *json) {
    model *m = make(json);
    CHECK(m != NULL);
    if (!m) return;
    const model_config *c = model_get_config(m);
    dp_err e = {0};
    int32_t toks[MAXT];
    for (int i = 0; i < MAXT; i++) toks[i] = (int32_t)((i * 11 + 5) % c->vocab);
    model_kv *kv = model_kv_new(m, 80, &e);
    CHECK_MSG(kv != NULL, "%s", e.msg);
    if (!kv) {
        model_free(m);
        return;
    }
    float *a = malloc((size_t)c->vocab * sizeof *a), *b = malloc((size_t)c->vocab * sizeof *b);
    const int pieces[] = {1, 5, 64, 1, 1, 1, 1, 1, 1};
    int len = 0;
    double worst = 0, spread = 0;
    for (size_t s = 0; s < sizeof pieces / sizeof *pieces; s++) {
        CHECK_MSG(model_kv_append(m, kv, toks + len, pieces[s], a, &e) == 0, "%s", e.msg);
        len += pieces[s];
        CHECK(model_kv_len(kv) == len);
        CHECK_MSG(model_next_logits(m, toks, len, b, &e) == 0, "%s", e.msg);
        worst = fmax(worst, max_diff(a, b, c->vocab));
        for (int v = 1; v < c->vocab; v++) spread = fmax(spread, fabs((double)b[v] - b[0]));
    }
    CHECK_MSG(worst < 1e-4, "%s: incremental vs full logits differ by %g", c->model_type, worst);
    CHECK_MSG(spread > 0.1, "%s: logits nearly constant (%g): the test would prove little",
              c->model_type, spread);
    /* Reset: a new sequence from position 0 gives the full forward again. */
    model_kv_reset(kv);
    CHECK(model_kv_append(m, kv, toks + 3, 4, a, &e) == 0);
    CHECK(model_next_logits(m, toks + 3, 4, b, &e) == 0);
    CHECK_MSG(max_diff(a, b, c->vocab) < 1e-4, "%s: after reset", c->model_type);
    free(a);
    free(b);
    model_kv_free(kv);
    model_free(m);
}

static void test_gpt2(void) { check_family(GPT2); }
static void test_llama(void) { check_family(LLAMA); }
static void test_llama_linear_rope(void) { check_family(LLAMA_LINEAR); }
static void test_qwen3(void) { check_family(QWEN3); }
static void test_mistral_window(void) { check_family(MISTRAL); }
static void test_qwen2(void) { check_family(QWEN2); }
static void test_gemma(void) { check_family(GEMMA); }
static void test_gemma2(void) { check_family(GEMMA2); }
static void test_gemma3_text(void) { check_family(GEMMA3); }
static void test_phi3(void) { check_family(PHI3); }
/* longrope past the original context: a prompt longer than it, appended at
 * once, takes the long factors as a full forward does, and so do the tokens
 * after it. */
static void test_phi3_longrope_long(void) {
    char json[1024];
    snprintf(json, sizeof json, "%s", PHI3);
    char *at = strstr(json, "\"original_max_position_embeddings\":128");
    CHECK(at != NULL);
    if (!at) return;
    memcpy(at, "\"original_max_position_embeddings\":  8", 38);
    model *m = make(json);
    CHECK(m != NULL);
    if (!m) return;
    const model_config *c = model_get_config(m);
    CHECK(c->rope_original_max_pos == 8);
    dp_err e = {0};
    int32_t toks[24];
    for (int i = 0; i < 24; i++) toks[i] = (int32_t)((i * 7 + 2) % c->vocab);
    model_kv *kv = model_kv_new(m, 24, &e);
    float a[64], b[64];
    CHECK(model_kv_append(m, kv, toks, 20, a, &e) == 0);
    CHECK(model_next_logits(m, toks, 20, b, &e) == 0);
    double d = max_diff(a, b, c->vocab);
    for (int n = 21; n <= 24; n++) {
        CHECK(model_kv_append(m, kv, toks + n - 1, 1, a, &e) == 0);
        CHECK(model_next_logits(m, toks, n, b, &e) == 0);
        d = fmax(d, max_diff(a, b, c->vocab));
    }
    CHECK_MSG(d < 1e-4, "phi3 longrope (long): cache vs full differ by %g", d);
    model_kv_free(kv);
    model_free(m);
}

static int argmax(const float *x, int n) {
    int k = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[k]) k = i;
    return k;
}

/* Greedy generation of 20 tokens: the cache's logits at every step equal a
 * full forward over the whole sequence so far, and so do the choices. */
static void generate(const char *json) {
    model *m = make(json);
    CHECK(m != NULL);
    if (!m) return;
    const model_config *c = model_get_config(m);
    dp_err e = {0};
    model_kv *kv = model_kv_new(m, 40, &e);
    CHECK_MSG(kv != NULL, "%s", e.msg);
    float *a = malloc((size_t)c->vocab * sizeof *a), *b = malloc((size_t)c->vocab * sizeof *b);
    int32_t seq[40] = {3, 14, 15, 9, 2, 6};
    int n = 6, distinct = 0;
    CHECK(model_kv_append(m, kv, seq, n, a, &e) == 0);
    double worst = 0;
    for (int step = 0; step < 20; step++) {
        CHECK(model_next_logits(m, seq, n, b, &e) == 0);
        worst = fmax(worst, max_diff(a, b, c->vocab));
        int t = argmax(a, c->vocab);
        CHECK_MSG(t == argmax(b, c->vocab), "%s: step %d picks differ", c->model_type, step);
        distinct += step > 0 && t != seq[6];
        seq[n++] = t;
        CHECK(model_kv_append(m, kv, &seq[n - 1], 1, a, &e) == 0);
    }
    CHECK_MSG(worst < 1e-4, "%s: generation logits differ by %g", c->model_type, worst);
    CHECK_MSG(distinct > 0, "%s: generation repeats one token: a weak test", c->model_type);
    free(a);
    free(b);
    model_kv_free(kv);
    model_free(m);
}

static void test_generate_gpt2(void) { generate(GPT2); }
static void test_generate_llama(void) { generate(LLAMA); }
static void test_generate_gemma2(void) { generate(GEMMA2); }
static void test_generate_gemma3_text(void) { generate(GEMMA3); }
static void test_generate_phi3(void) { generate(PHI3); }


/* Greedy model_generate equals the argmax of full forwards step by step,
 * and stops at EOS (with the EOS kept) and at max_new. */
static void test_generate_greedy_vs_full(void) {
    model *m = make(LLAMA);
    CHECK(m != NULL);
    if (!m) return;
    dp_err e = {0};
    int V = model_get_config(m)->vocab;
    model_kv *kv = model_kv_new(m, 64, &e);
    model_sampling sp = {.temperature = 0, .top_k = 0, .top_p = 1};
    model_sampler *s = model_sampler_new(V, &sp, 1, &e);
    CHECK(kv && s);
    int32_t prompt[3] = {7, 1, 30}, out[20], seq[40];
    int n_out = 0;
    CHECK(model_generate(m, kv, s, prompt, 3, 20, -1, out, &n_out, &e) == 0);
    CHECK(n_out == 20);
    float *b = malloc((size_t)V * sizeof *b);
    memcpy(seq, prompt, sizeof prompt);
    for (int i = 0; i < n_out; i++) {
        CHECK(model_next_logits(m, seq, 3 + i, b, &e) == 0);
        CHECK_MSG(out[i] == argmax(b, V), "step %d: %d vs %d", i, out[i], argmax(b, V));
        seq[3 + i] = argmax(b, V);
    }
    /* EOS: stop right after the 5th token, which is then the EOS */
    int32_t out2[20];
    int n2 = 0;
    CHECK(model_generate(m, kv, s, prompt, 3, 20, out[4], out2, &n2, &e) == 0);
    int first = 0;
    while (out[first] != out[4]) first++;
    CHECK(n2 == first + 1 && out2[n2 - 1] == out[4]);
    /* a context of 8 holds 3 prompt tokens and then 5 generated */
    model_kv *small = model_kv_new(m, 8, &e);
    CHECK(model_generate(m, small, s, prompt, 3, 20, -1, out2, &n2, &e) == 0 && n2 == 6);
    CHECK(memcmp(out2, out, 6 * sizeof *out) == 0);
    CHECK(model_generate(m, small, s, seq, 8, 20, -1, out2, &n2, &e) == -1 && strstr(e.msg, "room"));
    free(b);
    model_kv_free(small);
    model_sampler_free(s);
    model_kv_free(kv);
    model_free(m);
}

/* Draw counts against the distribution the options define, computed here
 * independently in double: χ² over the kept tokens, and none outside. */
static void check_sampler(const float *logits, int V, model_sampling sp, int draws) {
    dp_err e = {0};
    model_sampler *s = model_sampler_new(V, &sp, 2024, &e);
    CHECK_MSG(s != NULL, "%s", e.msg);
    if (!s) return;
    double p[16] = {0}, mx = -1e30, sum = 0;
    for (int i = 0; i < V; i++) mx = fmax(mx, logits[i]);
    for (int i = 0; i < V; i++) sum += p[i] = exp((logits[i] - mx) / sp.temperature);
    for (int i = 0; i < V; i++) p[i] /= sum;
    /* keep: rank by probability (all distinct here) */
    int keep[16] = {0};
    double cum = 0;
    for (int r = 0; r < V; r++) {
        int best = -1;
        for (int i = 0; i < V; i++)
            if (!keep[i] && (best < 0 || p[i] > p[best])) best = i;
        if ((sp.top_k && r >= sp.top_k) || cum >= sp.top_p) break;
        keep[best] = 1;
        cum += p[best];
    }
    double kept = 0;
    for (int i = 0; i < V; i++) kept += keep[i] ? p[i] : 0;
    long count[16] = {0};
    for (int d = 0; d < draws; d++) count[model_sampler_next(s, logits)]++;
    double chi2 = 0;
    int dof = -1;
    for (int i = 0; i < V; i++) {
        if (!keep[i]) {
            CHECK_MSG(count[i] == 0, "token %d drawn %ld times outside the kept set", i, count[i]);
            continue;
        }
        double expect = draws * p[i] / kept;
        chi2 += (count[i] - expect) * (count[i] - expect) / expect;
        dof++;
    }
    /* χ² 99.9% quantile for ≤ 7 degrees of freedom is 24.3 */
    CHECK_MSG(chi2 < 24.3, "chi2 %.2f with %d dof (T %g, k %d, p %g)", chi2, dof,
              (double)sp.temperature, sp.top_k, (double)sp.top_p);
    model_sampler_free(s);
}

static void test_sampler_distribution(void) {
    const float logits[8] = {1.0f, 2.5f, 0.2f, -1.0f, 1.7f, 0.9f, 2.0f, -0.3f};
    check_sampler(logits, 8, (model_sampling){1.0f, 0, 1.0f}, 40000);
    check_sampler(logits, 8, (model_sampling){0.7f, 0, 1.0f}, 40000);
    check_sampler(logits, 8, (model_sampling){1.3f, 3, 1.0f}, 40000);
    check_sampler(logits, 8, (model_sampling){1.0f, 0, 0.6f}, 40000);
    check_sampler(logits, 8, (model_sampling){1.0f, 5, 0.8f}, 40000);
}

static void test_sampler_seed_and_greedy(void) {
    const float logits[8] = {1.0f, 2.5f, 0.2f, -1.0f, 1.7f, 0.9f, 2.5f, -0.3f};
    dp_err e = {0};
    model_sampling sp = {1.0f, 0, 1.0f};
    model_sampler *a = model_sampler_new(8, &sp, 5, &e), *b = model_sampler_new(8, &sp, 5, &e);
    int same = 1, differ = 0, first[50];
    for (int i = 0; i < 50; i++) {
        first[i] = model_sampler_next(a, logits);
        same &= first[i] == model_sampler_next(b, logits);
    }
    CHECK(same);
    model_sampler_seed(a, 6);
    for (int i = 0; i < 50; i++) differ += model_sampler_next(a, logits) != first[i];
    CHECK(differ > 0);
    model_sampler_free(a);
    model_sampler_free(b);
    /* greedy, top_k 1 and a tiny top_p all pick the argmax, lowest id on ties */
    model_sampling g[3] = {{0, 0, 1.0f}, {1.0f, 1, 1.0f}, {1.0f, 0, 1e-6f}};
    for (int k = 0; k < 3; k++) {
        model_sampler *s = model_sampler_new(8, &g[k], 9, &e);
        for (int i = 0; i < 20; i++) CHECK(model_sampler_next(s, logits) == 1);
        model_sampler_free(s);
    }
    model_sampling bad = {-1.0f, 0, 1.0f};
    CHECK(model_sampler_new(8, &bad, 1, &e) == NULL && strstr(e.msg, "temperature"));
    bad = (model_sampling){1.0f, 0, 0.0f};
    CHECK(model_sampler_new(8, &bad, 1, &e) == NULL && strstr(e.msg, "top_p"));
}

static void test_errors(void) {
    model *m = make(GPT2);
    CHECK(m != NULL);
    if (!m) return;
    dp_err e = {0};
    CHECK(model_kv_new(m, 97, &e) == NULL && strstr(e.msg, "max_seq"));
    CHECK(model_kv_new(m, 0, &e) == NULL && strstr(e.msg, "max_seq"));
    model_kv *kv = model_kv_new(m, 4, &e);
    CHECK(kv != NULL);
    int32_t t[5] = {1, 2, 3, 4, 5}, bad = 37;
    CHECK(model_kv_append(m, kv, &bad, 1, NULL, &e) == -1 && strstr(e.msg, "vocabulary"));
    CHECK(model_kv_append(m, kv, t, 5, NULL, &e) == -1 && strstr(e.msg, "exceed"));
    CHECK(model_kv_len(kv) == 0);
    CHECK(model_kv_append(m, kv, t, 0, NULL, &e) == -1);
    CHECK(model_kv_append(m, kv, t, 4, NULL, &e) == 0 && model_kv_len(kv) == 4);
    CHECK(model_kv_append(m, kv, t, 1, NULL, &e) == -1 && strstr(e.msg, "exceed"));
    model_kv_free(kv);
    model_kv_free(NULL);
    model_free(m);
}

int main(void) {
    RUN(test_gpt2);
    RUN(test_llama);
    RUN(test_llama_linear_rope);
    RUN(test_qwen3);
    RUN(test_mistral_window);
    RUN(test_qwen2);
    RUN(test_generate_gpt2);
    RUN(test_gemma);
    RUN(test_gemma2);
    RUN(test_gemma3_text);
    RUN(test_phi3);
    RUN(test_phi3_longrope_long);
    RUN(test_generate_llama);
    RUN(test_generate_gemma2);
    RUN(test_generate_gemma3_text);
    RUN(test_generate_phi3);
    RUN(test_generate_greedy_vs_full);
    RUN(test_sampler_distribution);
    RUN(test_sampler_seed_and_greedy);
    RUN(test_errors);
    return check_summary();
}
