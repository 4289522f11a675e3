/* plan — memory plans for a budget (see model.h).
 *
 * Peak resident memory, by part:
 *   weights      full training: float32 weights, gradients, AdamW moments
 *                (16 B/param); frozen weights in float32 files: the mapping,
 *                4 B/param; frozen half-precision weights: the mapping's
 *                pages, 2 B per matrix element (all of them; streamed, the
 *                largest of one layer and the head), plus the vectors (norms,
 *                biases) copied to float32;
 *   scratch      one layer widened to float32 and the head's row blocks
 *                (half-precision weights only), the adapters' input buffers;
 *   trainable    adapters: weights, gradients and two AdamW moments;
 *   activations  the engine's buffers for a batch (model_memory_estimate);
 *   overhead     the process itself: code, libraries, the BLAS's packing
 *                buffers, the tokenizer and SQLite's cache. */
#include <stdio.h>
#include <string.h>

#include "model_internal.h"
#include "safetensors.h"

enum { OVERHEAD = 160u << 20, HEAD_BUF = 8u << 20 };

model_plan model_plan_estimate(const model_config *c, model_job job, int weight_bytes, int tokens,
                               int stream, int recompute, int lora_r, unsigned targets) {
    model_memory mm = model_memory_estimate(c, tokens);
    model_plan p = {.job = job, .weight_bytes = weight_bytes, .tokens = tokens,
                    .overhead = OVERHEAD};
    size_t L = (size_t)c->n_layer, layer = mm.layer_matrix_params, head = (size_t)c->vocab * c->d_model;
    size_t vectors = mm.n_params - L * layer - mm.embed_params;
    int half = weight_bytes == 2 && job != MODEL_JOB_TRAIN;
    p.stream = half && stream;
    p.recompute = job != MODEL_JOB_FORWARD && recompute;
    if (job == MODEL_JOB_TRAIN) {
        p.weights = mm.weights + mm.grads + mm.adam;
    } else if (!half) {
        p.weights = mm.n_params * sizeof(float);
    } else {
        size_t mapped = p.stream ? (layer > head ? layer : head) : L * layer + mm.embed_params;
        p.weights = mapped * 2 + vectors * sizeof(float);
        p.scratch = layer * sizeof(float) + HEAD_BUF;
    }
    if (job == MODEL_JOB_LORA) {
        size_t n = model_lora_param_count(c, lora_r, targets);
        int max_in = c->d_ff > c->d_model ? c->d_ff : c->d_model;
        if (c->n_head * c->head_dim > max_in) max_in = c->n_head * c->head_dim;
        p.trainable = n * 16;
        p.scratch += (size_t)tokens * (2 * (size_t)max_in + 2 * (size_t)lora_r) * sizeof(float);
    }
    p.activations = job == MODEL_JOB_FORWARD ? mm.activations_inference
                    : p.recompute            ? mm.activations_recompute
                                             : mm.activations;
    p.total = p.weights + p.scratch + p.trainable + p.activations + p.overhead;
    return p;
}

static void gib(char *buf, size_t cap, size_t bytes) {
    if (bytes >= (1u << 30)) snprintf(buf, cap, "%.2f GiB", (double)bytes / (double)(1u << 30));
    else snprintf(buf, cap, "%.1f MiB", (double)bytes / (double)(1u << 20));
}

void model_plan_describe(const model_plan *p, char *buf, size_t cap) {
    char w[32], s[32], t[32], a[32], o[32], tot[32];
    gib(w, sizeof w, p->weights), gib(s, sizeof s, p->scratch), gib(t, sizeof t, p->trainable);
    gib(a, sizeof a, p->activations), gib(o, sizeof o, p->overhead), gib(tot, sizeof tot, p->total);
    snprintf(buf, cap, "%s%s%d tokens per batch: weights %s + scratch %s + adapters %s + "
                       "activations %s + process %s = %s",
             p->stream ? "weights streamed, " : "", p->recompute ? "recompute, " : "", p->tokens, w,
             s, t, a, o, tot);
}

int model_plan_fit(model_plan *out, const model_config *c, model_job job, int weight_bytes,
                   int tokens, int min_tokens, int recompute, size_t budget, int lora_r,
                   unsigned targets, dp_err *err) {
    if (min_tokens < 1) min_tokens = 1;
    if (tokens < min_tokens) tokens = min_tokens;
    model_plan best = {0};
    for (int t = tokens;; t = t / 2 > min_tokens ? t / 2 : min_tokens) {
        /* cheapest switches first: none, recompute, streaming, both */
        for (int k = 0; k < 4; k++) {
            int rec = recompute || (k & 1), str = (k & 2) != 0;
            if (job == MODEL_JOB_FORWARD && (k & 1)) continue; /* nothing to recompute */
            model_plan p = model_plan_estimate(c, job, weight_bytes, t, str, rec, lora_r, targets);
            if (p.total <= budget) {
                *out = p;
                return 0;
            }
            if (!best.total || p.total < best.total) best = p;
        }
        if (t == min_tokens) break;
    }
    char line[400], want[32], have[32];
    model_plan_describe(&best, line, sizeof line);
    gib(want, sizeof want, best.total);
    gib(have, sizeof have, budget);
    if (job == MODEL_JOB_TRAIN) {
        model_plan lo = model_plan_estimate(c, MODEL_JOB_LORA, weight_bytes, best.tokens, 1, 1, 16,
                                            model_lora_family_targets(c->model_type));
        char l[32];
        gib(l, sizeof l, lo.total);
        if (lo.total < best.total)
            return dp_fail(err, "memory.budget %s: full training needs at least %s (%s); LoRA r 16 "
                            "would need %s (train.lora.r: 16)", have, want, line, l);
    }
    return dp_fail(err, "memory.budget %s: no plan fits; the smallest needs %s (%s)", have, want,
                   line);
}

int model_peek(const char *dir, model_config *c, int *bytes, dp_err *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (c && model_read_config(c, path, err)) return -1;
    st_set *s;
    if (st_open(&s, dir, err)) return -1;
    *bytes = 4;
    for (int i = 0; i < st_count(s); i++) {
        const st_tensor *t = st_get(s, i);
        if (t->ndim == 2 && (t->dtype == ST_BF16 || t->dtype == ST_F16)) {
            *bytes = 2;
            break;
        }
    }
    st_close(s);
    return 0;
}
