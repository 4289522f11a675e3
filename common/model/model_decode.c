/* model_decode — incremental decoding with a KV cache (see model.h).
 *
 * Each layer runs over the new rows only, with the engine's own weights and
 * layer steps (model_internal.h: norm, attention inputs, MLP). The one thing
 * of its own is attention of the new queries against the cached keys:
 * a row-by-row softmax, since a few query rows make no use of sgemm blocks.
 * New tokens go through in chunks of KV_CHUNK rows, so scratch memory does
 * not grow with the prompt. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"
#include "model.h"
#include "model_internal.h"

#define KV_CHUNK 64

typedef struct kv_layer {
    float *k_cache, *v_cache; /* [max_seq, KV·D] each, after qk-norm and RoPE */
} kv_layer;

struct model_kv {
    model *m; /* not const: its half-precision layers are bound as the cache runs */
    model_config c;
    model_arch arch;
    const model_weights *w; /* the model's, so they follow model_attach_tensor */
    const float *inv_freq;
    int max_seq, len;
    kv_layer *layer;
    /* scratch for one chunk of new rows */
    float *x, *ln, *mean, *rstd, *q, *k, *v, *qlin, *klin, *qrstd, *krstd, *att, *proj;
    float *fc, *up, *act, *scores, *last;
    int *pos;
    float *mem; /* the one allocation everything above is carved from */
};

/* Carves (or, with base == NULL, counts) the cache and scratch buffers. */
static size_t carve(model_kv *kv, float *base) {
    const model_config *c = &kv->c;
    size_t S = (size_t)kv->max_seq, N = KV_CHUNK, C = c->d_model, F = c->d_ff,
           H = c->n_head, KVH = c->n_kv_head, D = c->head_dim;
    size_t off = 0;
#define TAKE(ptr, n) model_carve(&(ptr), base, &off, (size_t)(n))
    for (int l = 0; l < c->n_layer; l++) {
        kv_layer scratch, *a = base ? &kv->layer[l] : &scratch;
        TAKE(a->k_cache, S * KVH * D);
        TAKE(a->v_cache, S * KVH * D);
    }
    TAKE(kv->x, N * C);
    TAKE(kv->ln, N * C);
    TAKE(kv->mean, N);
    TAKE(kv->rstd, N);
    model_carve_qkv(&kv->q, &kv->k, &kv->v, &kv->arch, N, base, &off);
    TAKE(kv->qlin, N * H * D);
    TAKE(kv->klin, N * KVH * D);
    TAKE(kv->qrstd, N * H);
    TAKE(kv->krstd, N * KVH);
    TAKE(kv->att, N * H * D);
    TAKE(kv->proj, N * C);
    TAKE(kv->fc, N * F);
    TAKE(kv->up, N * F);
    TAKE(kv->act, N * F);
    TAKE(kv->scores, H * S);
    TAKE(kv->last, C);
#undef TAKE
    return off;
}

model_kv *model_kv_new(model *m, int max_seq, dp_err *err) {
    const model_config *c = model_get_config(m);
    int gpt2 = !strcmp(c->model_type, "gpt2");
    if (max_seq < 1 || (gpt2 && max_seq > c->max_pos)) {
        dp_fail(err, "model_kv_new: max_seq: expected 1..%d, got %d", gpt2 ? c->max_pos : 1 << 30,
                max_seq);
        return NULL;
    }
    model_kv *kv = dp_calloc(1, sizeof *kv, err);
    if (!kv) return NULL;
    kv->m = m;
    kv->c = *c;
    model_arch_init(&kv->arch, c);
    kv->w = model_weights_of(m);
    kv->inv_freq = model_inv_freq(m);
    kv->max_seq = max_seq;
    kv->layer = dp_calloc((size_t)c->n_layer, sizeof *kv->layer, err);
    kv->pos = kv->layer ? dp_calloc(KV_CHUNK, sizeof *kv->pos, err) : NULL;
    kv->mem = kv->pos ? dp_malloc(carve(kv, NULL) * sizeof(float), err) : NULL;
    if (!kv->mem) {
        model_kv_free(kv);
        return NULL;
    }
    carve(kv, kv->mem);
    return kv;
}

int model_kv_len(const model_kv *kv) { return kv->len; }
void model_kv_reset(model_kv *kv) { kv->len = 0; }

void model_kv_free(model_kv *kv) {
    if (!kv) return;
    free(kv->mem);
    free(kv->pos);
    free(kv->layer);
    free(kv);
}

/* Multiply-adds per token, roughly: the weights each row goes through. */
static double kv_madds_per_token(const model_config *c) {
    double C = c->d_model, F = c->d_ff, QD = (double)c->n_head * c->head_dim,
           KD = (double)c->n_kv_head * c->head_dim;
    return c->n_layer * (2 * C * QD + 2 * C * KD + 3 * C * F) + (double)c->vocab * C;
}

/* att[n, H·D] for the n new queries q (positions kv->pos) against cached
 * keys 0..len+i of layer a: query head h reads kv head h / (H / KVH); keys
 * older than the sliding window are skipped. */
static void attend(model_kv *kv, const kv_layer *a, int n) {
    const model_config *c = &kv->c;
    int H = c->n_head, KVH = c->n_kv_head, D = c->head_dim, group = H / KVH, S = kv->max_seq;
    int win = c->sliding_window;
    float scale = 1.0f / sqrtf((float)D);
    for (int i = 0; i < n; i++) {
        int p = kv->pos[i], lo = win > 0 && p - win + 1 > 0 ? p - win + 1 : 0;
#pragma omp parallel for
        for (int h = 0; h < H; h++) {
            int g = h / group;
            const float *q = kv->q + ((size_t)i * H + h) * D;
            float *s = kv->scores + (size_t)h * S, *o = kv->att + ((size_t)i * H + h) * D;
            float mx = -INFINITY;
            for (int j = lo; j <= p; j++) {
                const float *k = a->k_cache + ((size_t)j * KVH + g) * D;
                float dot = 0;
                for (int d = 0; d < D; d++) dot += q[d] * k[d];
                s[j] = dot * scale;
                if (s[j] > mx) mx = s[j];
            }
            double sum = 0;
            for (int j = lo; j <= p; j++) sum += expf(s[j] - mx);
            float l = mx + (float)log(sum);
            for (int d = 0; d < D; d++) o[d] = 0;
            for (int j = lo; j <= p; j++) {
                float pj = expf(s[j] - l);
                const float *v = a->v_cache + ((size_t)j * KVH + g) * D;
                for (int d = 0; d < D; d++) o[d] += pj * v[d];
            }
        }
    }
}

static void add_into(float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

/* Runs n ≤ KV_CHUNK new tokens through every layer, leaving the last row's
 * residual stream in kv->last. */
static void run_chunk(model_kv *kv, const int32_t *tok, int n) {
    const model_arch *A = &kv->arch;
    const model_weights *w = kv->w;
    int C = A->C;
    for (int i = 0; i < n; i++) kv->pos[i] = kv->len + i;
    model_embed(kv->m, kv->x, tok, kv->pos, n);
    model_qkv qkv = {kv->q, kv->k, kv->v, kv->qlin, kv->klin, kv->qrstd, kv->krstd};
    for (int l = 0; l < kv->c.n_layer; l++) {
        model_layer_ready(kv->m, l);
        const model_layer_weights *lw = &w->layer[l];
        kv_layer *a = &kv->layer[l];
        model_norm_forward(A, kv->ln, kv->mean, kv->rstd, kv->x, lw->ln1_w, lw->ln1_b, n);
        model_qkv_forward(A, lw, kv->inv_freq, kv->pos, kv->ln, &qkv, n);
        size_t row = (size_t)A->KV * A->D;
        memcpy(a->k_cache + (size_t)kv->len * row, kv->k, (size_t)n * row * sizeof(float));
        memcpy(a->v_cache + (size_t)kv->len * row, kv->v, (size_t)n * row * sizeof(float));
        attend(kv, a, n);
        model_o_forward(A, lw, kv->att, kv->proj, n);
        add_into(kv->x, kv->proj, (size_t)n * C);
        model_norm_forward(A, kv->ln, kv->mean, kv->rstd, kv->x, lw->ln2_w, lw->ln2_b, n);
        model_mlp_forward(A, lw, kv->ln, kv->fc, kv->up, kv->act, kv->proj, n);
        add_into(kv->x, kv->proj, (size_t)n * C);
    }
    memcpy(kv->last, kv->x + (size_t)(n - 1) * C, (size_t)C * sizeof(float));
    kv->len += n;
}

int model_kv_append(model *m, model_kv *kv, const int32_t *tokens, int n, float *last_logits,
                    dp_err *err) {
    const model_config *c = &kv->c;
    if (m != kv->m) return dp_fail(err, "model_kv_append: the cache belongs to another model");
    if (n < 1) return dp_fail(err, "model_kv_append: expected >= 1 new tokens, got %d", n);
    if (n > kv->max_seq - kv->len)
        return dp_fail(err, "model_kv_append: %d + %d tokens exceed the cache's %d", kv->len, n,
                       kv->max_seq);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= c->vocab)
            return dp_fail(err, "model_kv_append: token id %d outside the vocabulary [0, %d)",
                           tokens[i], c->vocab);
    lora_set *lora = kv->w->layer[0].lora;
    if (lora && lora_reserve(lora, n < KV_CHUNK ? n : KV_CHUNK, err)) return -1;
    /* A few rows of a small model are less work than waking a thread team
     * for every kernel: such steps run on this thread alone. */
    int saved = omp_get_max_threads();
    int alone = (double)n * kv_madds_per_token(c) < 4e6;
    if (alone && saved > 1) omp_set_num_threads(1);
    for (int i = 0; i < n; i += KV_CHUNK)
        run_chunk(kv, tokens + i, n - i < KV_CHUNK ? n - i : KV_CHUNK);
    if (last_logits) {
        int C = c->d_model;
        model_norm_forward(&kv->arch, kv->ln, kv->mean, kv->rstd, kv->last, kv->w->lnf_w,
                           kv->w->lnf_b, 1);
        layer_head_gemv(last_logits, model_head(m), kv->ln, C, c->vocab);
    }
    if (alone && saved > 1) omp_set_num_threads(saved);
    return 0;
}

/* ---- sampling ---------------------------------------------------------------- */

typedef struct token_p {
    double p;
    int id;
} token_p;

struct model_sampler {
    model_sampling s;
    int vocab;
    uint64_t state;
    token_p *tp; /* probabilities, sorted (most likely first) when top-k/top-p need it */
};

model_sampler *model_sampler_new(int vocab, const model_sampling *s, uint64_t seed, dp_err *err) {
    if (vocab < 1 || !(s->temperature >= 0) || s->top_k < 0 || !(s->top_p > 0 && s->top_p <= 1)) {
        dp_fail(err, "model_sampler_new: expected temperature >= 0, top_k >= 0, top_p in (0, 1], "
                     "got %g, %d, %g", (double)s->temperature, s->top_k, (double)s->top_p);
        return NULL;
    }
    model_sampler *ms = dp_calloc(1, sizeof *ms, err);
    if (!ms) return NULL;
    ms->s = *s;
    ms->vocab = vocab;
    ms->tp = dp_malloc((size_t)vocab * sizeof *ms->tp, err);
    if (!ms->tp) {
        model_sampler_free(ms);
        return NULL;
    }
    model_sampler_seed(ms, seed);
    return ms;
}

void model_sampler_seed(model_sampler *s, uint64_t seed) { s->state = seed; }

uint64_t model_stream_seed(uint64_t seed, uint64_t i) {
    return seed * 0x9E3779B97F4A7C15ull ^ (i + 1) * 0xD1B54A32D192ED03ull;
}

void model_sampler_free(model_sampler *s) {
    if (!s) return;
    free(s->tp);
    free(s);
}

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int by_p_desc(const void *a, const void *b) {
    const token_p *x = a, *y = b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return x->id - y->id;
}

int model_sampler_next(model_sampler *s, const float *logits) {
    int V = s->vocab, best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    if (s->s.temperature == 0 || s->s.top_k == 1) return best;
    double inv_t = 1.0 / s->s.temperature, sum = 0;
    token_p *tp = s->tp;
    for (int i = 0; i < V; i++) {
        tp[i].id = i;
        sum += tp[i].p = exp(((double)logits[i] - logits[best]) * inv_t);
    }
    for (int i = 0; i < V; i++) tp[i].p /= sum;
    int keep = V;
    if ((s->s.top_k > 0 && s->s.top_k < V) || s->s.top_p < 1) {
        qsort(tp, (size_t)V, sizeof *tp, by_p_desc);
        if (s->s.top_k > 0 && s->s.top_k < V) keep = s->s.top_k;
        if (s->s.top_p < 1) {
            double cum = 0;
            int k = 0;
            while (k < keep && cum < s->s.top_p) cum += tp[k++].p;
            keep = k;
        }
    }
    double total = 0;
    for (int k = 0; k < keep; k++) total += tp[k].p;
    double u = (double)(splitmix64(&s->state) >> 11) * 0x1.0p-53 * total, cum = 0;
    for (int k = 0; k < keep; k++) {
        cum += tp[k].p;
        if (u < cum) return tp[k].id;
    }
    return tp[keep - 1].id;
}

int model_generate_until(model *m, model_kv *kv, model_sampler *s, const int32_t *prompt,
                         int n_prompt, int max_new, const int32_t *stop, int n_stop, int32_t *out,
                         int *n_out, dp_err *err) {
    *n_out = 0;
    if (n_prompt < 1) return dp_fail(err, "model_generate: expected a prompt of >= 1 tokens");
    if (n_prompt >= kv->max_seq)
        return dp_fail(err, "model_generate: the prompt's %d tokens leave no room in a context "
                            "of %d", n_prompt, kv->max_seq);
    float *logits = dp_malloc((size_t)kv->c.vocab * sizeof *logits, err);
    if (!logits) return -1;
    model_kv_reset(kv);
    int rc = model_kv_append(m, kv, prompt, n_prompt, logits, err), n = 0;
    while (!rc && n < max_new) {
        int32_t t = model_sampler_next(s, logits);
        out[n++] = t;
        int stopped = 0;
        for (int k = 0; k < n_stop && !stopped; k++) stopped = t == stop[k];
        if (stopped || kv->len >= kv->max_seq || n == max_new) break;
        rc = model_kv_append(m, kv, &t, 1, logits, err);
    }
    free(logits);
    *n_out = n;
    return rc;
}

int model_generate(model *m, model_kv *kv, model_sampler *s, const int32_t *prompt, int n_prompt,
                   int max_new, int eos_id, int32_t *out, int *n_out, dp_err *err) {
    int32_t stop = eos_id;
    return model_generate_until(m, kv, s, prompt, n_prompt, max_new, &stop, eos_id >= 0, out,
                                n_out, err);
}
