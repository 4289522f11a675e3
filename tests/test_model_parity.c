/* test_model_parity — the engine against PyTorch. tests/oracles/torch_model.py
 * (run with $PYTHON, default /usr/bin/python3) writes random-weight Hugging
 * Face checkpoints (F32, BF16, F16, sharded) for gpt2, llama (GQA, untied,
 * llama3 rope scaling, biases), llama with linear rope scaling, qwen2, qwen3,
 * mistral (sliding window 4), gemma, gemma2 (soft-caps and alternating
 * windows; and with both null, untied), gemma3_text and phi3 (partial
 * rotary, longrope long and short), plus the expected per-token logps and the
 * gradients of Σ w·logps per tensor, computed in float64 by plain-torch
 * implementations of the HF architectures. Each checkpoint is loaded with
 * model_load and run with prefix sharing on and off. Without torch, the
 * oracle fails and so does this test. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "model.h"
#include "safetensors.h"

static char dir[] = "/tmp/dpoc_parity_XXXXXX";
static int32_t tokens[256];
static int n_prompt[8], n_chosen[8], n_rejected[8], n_ex, n_resp;

static int read_ints(json_t *root, const char *key, int *out, int cap) {
    json_t *a = json_object_get(root, key), *v;
    size_t i;
    if (!json_is_array(a) || (int)json_array_size(a) > cap) return -1;
    json_array_foreach(a, i, v) out[i] = (int)json_integer_value(v);
    return (int)json_array_size(a);
}

static int run_oracle(void) {
    if (!mkdtemp(dir)) return -1;
    const char *py = getenv("PYTHON") && *getenv("PYTHON") ? getenv("PYTHON") : "/usr/bin/python3";
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s tests/oracles/torch_model.py %s", py, dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "oracle failed: %s\n", cmd);
        return -1;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/batch.json", dir);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) return -1;
    int tmp[256];
    int nt = read_ints(root, "tokens", tmp, 256);
    for (int i = 0; i < nt; i++) tokens[i] = tmp[i];
    n_ex = read_ints(root, "n_prompt", n_prompt, 8);
    read_ints(root, "n_chosen", n_chosen, 8);
    read_ints(root, "n_rejected", n_rejected, 8);
    json_decref(root);
    n_resp = 0;
    for (int i = 0; i < n_ex; i++) n_resp += n_chosen[i] + n_rejected[i];
    return nt > 0 && n_ex > 0 ? 0 : -1;
}

static const float *expected(st_set *s, const char *name, size_t numel, float *buf) {
    const st_tensor *t = st_find(s, name);
    dp_err e;
    if (!t || (size_t)t->numel != numel || st_to_f32(t, buf, &e)) return NULL;
    return buf;
}

/* A model of MDIR for the half-precision checks: frozen (inference, or LoRA
 * r 2 on every linear layer with A and B set to fixed values), its
 * half-precision weights kept as they are (widen 0) or copied to float32
 * (widen 1), streaming on or off. Returns logps [n_resp], mean logits and,
 * with LoRA, the adapters' gradients of Σ w·logps (n_grad of them). */
static model *frozen_run(const char *mdir, int lora, int widen, int stream, float *lp, float *ml,
                         float *grad, size_t *n_grad) {
    model_options o = {.training = lora, .prefix_sharing = 1, .threads = 2, .max_tokens = 128,
                       .widen_half = widen};
    model_config c;
    char cfg[600];
    dp_err e = {0};
    snprintf(cfg, sizeof cfg, "%s/config.json", mdir);
    CHECK_MSG(model_read_config(&c, cfg, &e) == 0, "%s", e.msg);
    if (lora)
        o.lora = (model_lora_options){.r = 2, .alpha = 4, .seed = 1,
                                      .targets = model_lora_family_targets(c.model_type)};
    model *m = NULL;
    CHECK_MSG(model_load(&m, mdir, &o, &e) == 0, "%s", e.msg);
    if (!m) return NULL;
    model_stream(m, stream);
    size_t n = 0;
    float *g = NULL, *p = lora ? model_trainable(m, &g, &n) : NULL;
    for (size_t k = 0; k < n; k++) p[k] = (float)((int)(k * 7919 % 201) - 100) * 1e-3f;
    model_batch b = {n_ex, tokens, n_prompt, n_chosen, n_rejected};
    CHECK_MSG(model_forward(m, &b, lp, ml, &e) == 0, "%s", e.msg);
    if (lora) {
        float w[256];
        for (int r = 0; r < n_resp; r++) w[r] = 1.0f + 0.01f * (float)r;
        CHECK_MSG(model_backward(m, w, &e) == 0, "%s", e.msg);
        memcpy(grad, g, n * sizeof *g);
        *n_grad = n;
    }
    return m;
}

/* Half-precision weights used from the mapping, widened a layer at a time,
 * give the very numbers of float32 copies of them: log-probs, mean logits
 * and adapter gradients bit for bit, streaming on or off. */
static void half_vs_float(const char *mdir) {
    static float lp[4][256], ml[4][256], g[4][1 << 15];
    size_t ng[4] = {0};
    for (int lora = 0; lora <= 1; lora++) {
        model *m[3];
        m[0] = frozen_run(mdir, lora, 1, 0, lp[0], ml[0], g[0], &ng[0]); /* float32 copies */
        m[1] = frozen_run(mdir, lora, 0, 0, lp[1], ml[1], g[1], &ng[1]); /* half, mapped */
        m[2] = frozen_run(mdir, lora, 0, 1, lp[2], ml[2], g[2], &ng[2]); /* half, streamed */
        if (!m[0] || !m[1] || !m[2]) goto next;
        uint64_t bytes[3];
        double secs;
        for (int k = 0; k < 3; k++) model_read_stats(m[k], &bytes[k], &secs);
        CHECK_MSG(bytes[0] == 0 && bytes[1] > 0 && bytes[2] > 0, "%s: widened bytes %llu %llu",
                  mdir, (unsigned long long)bytes[0], (unsigned long long)bytes[1]);
        for (int k = 1; k < 3; k++) {
            CHECK_MSG(!memcmp(lp[0], lp[k], (size_t)n_resp * sizeof(float)) &&
                          !memcmp(ml[0], ml[k], (size_t)n_resp * sizeof(float)),
                      "%s lora=%d: %s log-probs differ from float32 copies", mdir, lora,
                      k == 1 ? "half" : "streamed half");
            CHECK_MSG(ng[k] == ng[0] && !memcmp(g[0], g[k], ng[0] * sizeof(float)),
                      "%s lora=%d: adapter gradients differ (%s)", mdir, lora,
                      k == 1 ? "half" : "streamed");
        }
    next:
        for (int k = 0; k < 3; k++) model_free(m[k]);
    }
}

/* Loads dir/<name><variant>, checks logps and per-tensor gradients against
 * dir/<name>/expected.safetensors with prefix sharing on and off. */
static void parity(const char *name, const char *variant) {
    char mdir[512], epath[512];
    snprintf(mdir, sizeof mdir, "%s/%s%s", dir, name, variant);
    snprintf(epath, sizeof epath, "%s/%s/expected.safetensors", dir, name);
    st_set *ex = NULL;
    dp_err e = {0};
    CHECK_MSG(st_open(&ex, epath, &e) == 0, "%s", e.msg);
    if (!ex) return;
    float *buf = malloc(1 << 22), want_lp[256], want_ml[256], w[256], lp[256], ml[256];
    CHECK(expected(ex, "logps", (size_t)n_resp, want_lp) && expected(ex, "weights", (size_t)n_resp, w) &&
          expected(ex, "mean_logits", (size_t)n_resp, want_ml));
    {   /* inference only: F32 weights read straight from the mapped file */
        model_options o = {.training = 0, .prefix_sharing = 1, .threads = 2, .max_tokens = 128};
        model *m = NULL;
        model_batch b = {n_ex, tokens, n_prompt, n_chosen, n_rejected};
        CHECK_MSG(model_load(&m, mdir, &o, &e) == 0, "%s", e.msg);
        if (m) {
            CHECK_MSG(model_forward(m, &b, lp, NULL, &e) == 0, "%s", e.msg);
            double max_lp = 0;
            for (int r = 0; r < n_resp; r++) max_lp = fmax(max_lp, fabs(lp[r] - want_lp[r]));
            CHECK_MSG(max_lp < 1e-4, "%s%s inference: logps off by %g", name, variant, max_lp);
            CHECK(model_grads(m, NULL) == NULL);
            if (!strcmp(variant, "")) /* F32 files are not copied */
                CHECK(model_tensor_data(m, 0) != model_params(m, NULL) + model_tensor_at(m, 0)->offset);
            model_free(m);
        }
    }
    if (!strcmp(variant, "_bf16") || !strcmp(variant, "_f16")) half_vs_float(mdir);
    for (int share = 1; share >= 0; share--) {
        model_options o = {.training = 1, .prefix_sharing = share, .threads = 2, .max_tokens = 128};
        model *m = NULL;
        CHECK_MSG(model_load(&m, mdir, &o, &e) == 0, "%s", e.msg);
        if (!m) break;
        model_batch b = {n_ex, tokens, n_prompt, n_chosen, n_rejected};
        CHECK_MSG(model_forward(m, &b, lp, ml, &e) == 0, "%s", e.msg);
        double max_lp = 0, max_ml = 0;
        for (int r = 0; r < n_resp; r++) {
            max_lp = fmax(max_lp, fabs(lp[r] - want_lp[r]));
            max_ml = fmax(max_ml, fabs(ml[r] - want_ml[r]));
        }
        CHECK_MSG(max_lp < 1e-4, "%s%s share=%d: logps off by %g", name, variant, share, max_lp);
        CHECK_MSG(max_ml < 1e-4, "%s%s share=%d: mean logits off by %g", name, variant, share, max_ml);
        CHECK_MSG(model_backward(m, w, &e) == 0, "%s", e.msg);
        const float *g = model_grads(m, NULL);
        double worst = 0;
        const char *worst_name = "";
        for (int i = 0; i < model_n_tensors(m); i++) {
            const model_tensor *t = model_tensor_at(m, i);
            char gname[200];
            snprintf(gname, sizeof gname, "grad.%s", t->name);
            const float *ref = expected(ex, gname, t->numel, buf);
            CHECK_MSG(ref != NULL, "%s: no expected %s", name, gname);
            if (!ref) continue;
            double d = 0, n = 0;
            for (size_t k = 0; k < t->numel; k++) {
                d += pow(g[t->offset + k] - ref[k], 2);
                n += pow(ref[k], 2);
            }
            double rel = sqrt(d) / fmax(sqrt(n), 1e-12);
            if (rel > worst) worst = rel, worst_name = t->name;
        }
        CHECK_MSG(worst < 1e-4, "%s%s share=%d: gradient of %s off by %g relative", name, variant,
                  share, worst_name, worst);
        printf("%-13s %-6s share=%d  max |dlogp| %.2e  worst grad rel %.2e (%s)\n", name, variant,
               share, max_lp, worst, worst_name);
        model_free(m);
    }
    free(buf);
    st_close(ex);
}

static void test_gpt2(void) { parity("gpt2", ""); }
static void test_llama(void) { parity("llama", ""); }
static void test_llama_linear_rope(void) { parity("llama_linear", ""); }
static void test_qwen2(void) { parity("qwen2", ""); }
static void test_qwen3(void) { parity("qwen3", ""); }
static void test_mistral_sliding_window(void) { parity("mistral", ""); }
static void test_gemma(void) { parity("gemma", ""); }
static void test_gemma2_softcaps_windows(void) { parity("gemma2", ""); }
static void test_gemma2_null_caps_window_untied(void) { parity("gemma2_nocap", ""); }
static void test_gemma3_text(void) { parity("gemma3_text", ""); }
static void test_phi3_partial_longrope_long(void) { parity("phi3", ""); }
static void test_phi3_longrope_short(void) { parity("phi3_short", ""); }
static const char *const FAMILIES[] = {"gpt2",   "llama",        "llama_linear", "qwen2",
                                       "qwen3",  "mistral",      "gemma",        "gemma2",
                                       "gemma2_nocap", "gemma3_text", "phi3",    "phi3_short"};
enum { N_FAMILIES = sizeof FAMILIES / sizeof *FAMILIES };
static void test_bf16_files(void) {
    for (int i = 0; i < N_FAMILIES; i++) parity(FAMILIES[i], "_bf16");
}
static void test_f16_files(void) {
    for (int i = 0; i < N_FAMILIES; i++) parity(FAMILIES[i], "_f16");
}
static void test_sharded(void) { parity("llama", "_sharded"); }
static void test_gpt2_names_without_prefix(void) { parity("gpt2", "_noprefix"); }

/* model_save writes the same names, shapes and values as the HF files. */
static void test_save_matches_hf_layout(void) {
    const char *names[] = {"gpt2", "llama", "qwen3", "gemma2", "gemma3_text", "phi3"};
    const char *py = getenv("PYTHON") && *getenv("PYTHON") ? getenv("PYTHON") : "/usr/bin/python3";
    for (int i = 0; i < 6; i++) {
        char src[512], dst[512], cmd[2048];
        snprintf(src, sizeof src, "%s/%s", dir, names[i]);
        snprintf(dst, sizeof dst, "%s/%s_saved", dir, names[i]);
        model_options o = {.training = 0, .prefix_sharing = 1, .threads = 2, .max_tokens = 16};
        model *m = NULL;
        dp_err e = {0};
        CHECK_MSG(model_load(&m, src, &o, &e) == 0, "%s", e.msg);
        if (!m) continue;
        CHECK_MSG(model_save(m, dst, 0, &e) == 0, "%s", e.msg);
        model_free(m);
        snprintf(cmd, sizeof cmd,
                 "%s tests/oracles/compare_safetensors.py %s/model.safetensors %s/model.safetensors 0",
                 py, src, dst);
        CHECK_MSG(system(cmd) == 0, "%s", cmd);
    }
}

static void remove_dir(void) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void) {
    if (run_oracle()) {
        fprintf(stderr, "test_model_parity: the PyTorch oracle did not run (is torch installed for $PYTHON?)\n");
        printf("0 passed, 1 failed\n");
        if (strcmp(dir + strlen(dir) - 6, "XXXXXX") != 0) remove_dir();
        return 1;
    }
    RUN(test_gpt2);
    RUN(test_llama);
    RUN(test_llama_linear_rope);
    RUN(test_qwen2);
    RUN(test_qwen3);
    RUN(test_mistral_sliding_window);
    RUN(test_gemma);
    RUN(test_gemma2_softcaps_windows);
    RUN(test_gemma2_null_caps_window_untied);
    RUN(test_gemma3_text);
    RUN(test_phi3_partial_longrope_long);
    RUN(test_phi3_longrope_short);
    RUN(test_bf16_files);
    RUN(test_f16_files);
    RUN(test_sharded);
    RUN(test_gpt2_names_without_prefix);
    RUN(test_save_matches_hf_layout);
    remove_dir();
    return check_summary();
}
