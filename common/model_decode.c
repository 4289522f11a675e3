/* model_decode — incremental decoding with a KV cache (see model.h).
 *
 * The cache finds the model's tensors by their Hugging Face names through
 * the public accessors, so it needs nothing of model.c's internals, and runs
 * each layer with the kernels of layers.h over the new rows only. The one
 * thing of its own is attention of the new queries against the cached keys:
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

#define KV_CHUNK 64

typedef struct kv_layer {
    const float *ln1_w, *ln1_b, *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b;
    const float *q_norm, *k_norm, *ln2_w, *ln2_b, *fc_w, *fc_b, *up_w, *up_b, *down_w, *down_b;
    float *k_cache, *v_cache; /* [max_seq, KV·D] each, after qk-norm and RoPE */
} kv_layer;

struct model_kv {
    const model *m;
    model_config c;
    int gpt2, layout, ldq, ldkv, ldo, ldfc, lddown; /* as model.c lays the weights out */
    int max_seq, len;
    const float *wte, *wpe, *lnf_w, *lnf_b, *lm_head;
    kv_layer *layer;
    float *inv_freq;
    /* scratch for one chunk of new rows */
    float *x, *ln, *mean, *rstd, *q, *k, *v, *qlin, *klin, *qrstd, *krstd, *att, *proj;
    float *fc, *up, *act, *scores, *last;
    int *pos;
    float *mem; /* the one allocation everything above is carved from */
};

/* The tensor NAME (printf format over the layer index), or NULL if the model
 * has none. */
static const float *find(const model *m, const char *fmt, int layer) {
    char name[128];
    snprintf(name, sizeof name, fmt, layer);
    for (int i = 0; i < model_n_tensors(m); i++)
        if (!strcmp(model_tensor_at(m, i)->name, name)) return model_tensor_data(m, i);
    return NULL;
}

static int bind(model_kv *kv, const model *m, dp_err *err) {
    const model_config *c = &kv->c;
    int C = c->d_model;
    if (kv->gpt2) {
        kv->wte = find(m, "transformer.wte.weight", 0);
        kv->wpe = find(m, "transformer.wpe.weight", 0);
        kv->lnf_w = find(m, "transformer.ln_f.weight", 0);
        kv->lnf_b = find(m, "transformer.ln_f.bias", 0);
        kv->lm_head = kv->wte;
        for (int l = 0; l < c->n_layer; l++) {
            kv_layer *a = &kv->layer[l];
            const float *qkv_w = find(m, "transformer.h.%d.attn.c_attn.weight", l);
            const float *qkv_b = find(m, "transformer.h.%d.attn.c_attn.bias", l);
            /* c_attn [C, 3C]: q, k, v are column blocks of the fused matrix */
            a->q_w = qkv_w, a->k_w = qkv_w ? qkv_w + C : NULL, a->v_w = qkv_w ? qkv_w + 2 * C : NULL;
            a->q_b = qkv_b, a->k_b = qkv_b ? qkv_b + C : NULL, a->v_b = qkv_b ? qkv_b + 2 * C : NULL;
            a->ln1_w = find(m, "transformer.h.%d.ln_1.weight", l);
            a->ln1_b = find(m, "transformer.h.%d.ln_1.bias", l);
            a->o_w = find(m, "transformer.h.%d.attn.c_proj.weight", l);
            a->o_b = find(m, "transformer.h.%d.attn.c_proj.bias", l);
            a->ln2_w = find(m, "transformer.h.%d.ln_2.weight", l);
            a->ln2_b = find(m, "transformer.h.%d.ln_2.bias", l);
            a->fc_w = find(m, "transformer.h.%d.mlp.c_fc.weight", l);
            a->fc_b = find(m, "transformer.h.%d.mlp.c_fc.bias", l);
            a->down_w = find(m, "transformer.h.%d.mlp.c_proj.weight", l);
            a->down_b = find(m, "transformer.h.%d.mlp.c_proj.bias", l);
            if (!a->q_w || !a->ln1_w || !a->o_w || !a->ln2_w || !a->fc_w || !a->down_w)
                return dp_fail(err, "model_kv_new: layer %d: missing a GPT-2 weight tensor", l);
        }
        if (!kv->wte || !kv->wpe || !kv->lnf_w)
            return dp_fail(err, "model_kv_new: missing a GPT-2 embedding or final norm tensor");
        return 0;
    }
    kv->wte = find(m, "model.embed_tokens.weight", 0);
    kv->lnf_w = find(m, "model.norm.weight", 0);
    kv->lm_head = c->tie_embeddings ? kv->wte : find(m, "lm_head.weight", 0);
    for (int l = 0; l < c->n_layer; l++) {
        kv_layer *a = &kv->layer[l];
#define F(field, n) a->field = find(m, "model.layers.%d." n, l)
        F(ln1_w, "input_layernorm.weight");
        F(q_w, "self_attn.q_proj.weight");
        F(q_b, "self_attn.q_proj.bias");
        F(k_w, "self_attn.k_proj.weight");
        F(k_b, "self_attn.k_proj.bias");
        F(v_w, "self_attn.v_proj.weight");
        F(v_b, "self_attn.v_proj.bias");
        F(o_w, "self_attn.o_proj.weight");
        F(o_b, "self_attn.o_proj.bias");
        F(q_norm, "self_attn.q_norm.weight");
        F(k_norm, "self_attn.k_norm.weight");
        F(ln2_w, "post_attention_layernorm.weight");
        F(fc_w, "mlp.gate_proj.weight");
        F(fc_b, "mlp.gate_proj.bias");
        F(up_w, "mlp.up_proj.weight");
        F(up_b, "mlp.up_proj.bias");
        F(down_w, "mlp.down_proj.weight");
        F(down_b, "mlp.down_proj.bias");
#undef F
        if (!a->ln1_w || !a->q_w || !a->k_w || !a->v_w || !a->o_w || !a->ln2_w || !a->fc_w ||
            !a->up_w || !a->down_w || (c->qk_norm && (!a->q_norm || !a->k_norm)))
            return dp_fail(err, "model_kv_new: layer %d: missing a weight tensor", l);
    }
    if (!kv->wte || !kv->lnf_w || !kv->lm_head)
        return dp_fail(err, "model_kv_new: missing the embedding, final norm or lm_head tensor");
    return 0;
}

/* Carves (or, with base == NULL, counts) the cache and scratch buffers. */
static size_t carve(model_kv *kv, float *base) {
    const model_config *c = &kv->c;
    size_t S = (size_t)kv->max_seq, N = KV_CHUNK, C = c->d_model, F = c->d_ff,
           H = c->n_head, KVH = c->n_kv_head, D = c->head_dim;
    size_t off = 0;
#define TAKE(ptr, n)                              \
    do {                                          \
        if (base) (ptr) = base + off;             \
        off += ((size_t)(n) + 15) & ~(size_t)15;  \
    } while (0)
    for (int l = 0; l < c->n_layer; l++) {
        float *kc = NULL, *vc = NULL;
        TAKE(kc, S * KVH * D);
        TAKE(vc, S * KVH * D);
        if (base) kv->layer[l].k_cache = kc, kv->layer[l].v_cache = vc;
    }
    TAKE(kv->inv_freq, D / 2 + 1);
    TAKE(kv->x, N * C);
    TAKE(kv->ln, N * C);
    TAKE(kv->mean, N);
    TAKE(kv->rstd, N);
    TAKE(kv->q, N * H * D);
    TAKE(kv->k, N * KVH * D);
    TAKE(kv->v, N * KVH * D);
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
    kv->gpt2 = gpt2;
    kv->max_seq = max_seq;
    int C = c->d_model, F = c->d_ff;
    if (gpt2)
        kv->layout = LAYER_W_IN_OUT, kv->ldq = 3 * C, kv->ldkv = 3 * C, kv->ldo = C,
        kv->ldfc = F, kv->lddown = C;
    else
        kv->layout = LAYER_W_OUT_IN, kv->ldq = C, kv->ldkv = C, kv->ldo = c->n_head * c->head_dim,
        kv->ldfc = C, kv->lddown = F;
    kv->layer = dp_calloc((size_t)c->n_layer, sizeof *kv->layer, err);
    kv->pos = kv->layer ? dp_calloc(KV_CHUNK, sizeof *kv->pos, err) : NULL;
    if (!kv->pos || bind(kv, m, err)) {
        model_kv_free(kv);
        return NULL;
    }
    kv->mem = dp_malloc(carve(kv, NULL) * sizeof(float), err);
    if (!kv->mem) {
        model_kv_free(kv);
        return NULL;
    }
    carve(kv, kv->mem);
    if (!gpt2)
        layer_rope_inv_freq(kv->inv_freq, c->head_dim, c->rope_theta, c->rope_type, c->rope_factor,
                            c->rope_low_freq, c->rope_high_freq, c->rope_original_max_pos);
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

static void norm(const model_kv *kv, float *out, const float *inp, const float *w,
                 const float *b, int n) {
    if (kv->gpt2)
        layer_layernorm_forward(out, kv->mean, kv->rstd, inp, w, b, n, kv->c.d_model,
                                kv->c.norm_eps);
    else
        layer_rmsnorm_forward(out, kv->rstd, inp, w, n, kv->c.d_model, kv->c.norm_eps);
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
    const model_config *c = &kv->c;
    int C = c->d_model, F = c->d_ff, H = c->n_head, KVH = c->n_kv_head, D = c->head_dim;
    int lay = kv->layout;
    for (int i = 0; i < n; i++) kv->pos[i] = kv->len + i;
    layer_embedding_forward(kv->x, tok, kv->pos, kv->wte, kv->gpt2 ? kv->wpe : NULL, n, C);
    for (int l = 0; l < c->n_layer; l++) {
        const kv_layer *a = &kv->layer[l];
        norm(kv, kv->ln, kv->x, a->ln1_w, a->ln1_b, n);
        float *ql = c->qk_norm ? kv->qlin : kv->q, *kl = c->qk_norm ? kv->klin : kv->k;
        layer_linear_forward(ql, kv->ln, a->q_w, kv->ldq, lay, a->q_b, n, C, H * D);
        layer_linear_forward(kl, kv->ln, a->k_w, kv->ldkv, lay, a->k_b, n, C, KVH * D);
        layer_linear_forward(kv->v, kv->ln, a->v_w, kv->ldkv, lay, a->v_b, n, C, KVH * D);
        if (c->qk_norm) {
            layer_rmsnorm_forward(kv->q, kv->qrstd, kv->qlin, a->q_norm, n * H, D, c->norm_eps);
            layer_rmsnorm_forward(kv->k, kv->krstd, kv->klin, a->k_norm, n * KVH, D, c->norm_eps);
        }
        if (!kv->gpt2) {
            layer_rope_forward(kv->q, kv->q, kv->pos, kv->inv_freq, n, H, D);
            layer_rope_forward(kv->k, kv->k, kv->pos, kv->inv_freq, n, KVH, D);
        }
        size_t row = (size_t)KVH * D;
        memcpy(a->k_cache + (size_t)kv->len * row, kv->k, (size_t)n * row * sizeof(float));
        memcpy(a->v_cache + (size_t)kv->len * row, kv->v, (size_t)n * row * sizeof(float));
        attend(kv, a, n);
        layer_linear_forward(kv->proj, kv->att, a->o_w, kv->ldo, lay, a->o_b, n, H * D, C);
        add_into(kv->x, kv->proj, (size_t)n * C);
        norm(kv, kv->ln, kv->x, a->ln2_w, a->ln2_b, n);
        layer_linear_forward(kv->fc, kv->ln, a->fc_w, kv->ldfc, lay, a->fc_b, n, C, F);
        if (kv->gpt2) {
            layer_gelu_forward(kv->act, kv->fc, (size_t)n * F);
        } else {
            layer_linear_forward(kv->up, kv->ln, a->up_w, kv->ldfc, lay, a->up_b, n, C, F);
            layer_swiglu_forward(kv->act, kv->fc, kv->up, (size_t)n * F);
        }
        layer_linear_forward(kv->proj, kv->act, a->down_w, kv->lddown, lay, a->down_b, n, F, C);
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
    /* A few rows of a small model are less work than waking a thread team
     * for every kernel: such steps run on this thread alone. */
    int saved = omp_get_max_threads();
    int alone = (double)n * kv_madds_per_token(c) < 4e6;
    if (alone && saved > 1) omp_set_num_threads(1);
    for (int i = 0; i < n; i += KV_CHUNK) run_chunk(kv, tokens + i, n - i < KV_CHUNK ? n - i : KV_CHUNK);
    if (last_logits) {
        int C = c->d_model;
        norm(kv, kv->ln, kv->last, kv->lnf_w, kv->lnf_b, 1);
        cblas_sgemv(CblasRowMajor, CblasNoTrans, c->vocab, C, 1.0f, kv->lm_head, C, kv->ln, 1,
                    0.0f, last_logits, 1);
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

int model_generate(model *m, model_kv *kv, model_sampler *s, const int32_t *prompt, int n_prompt,
                   int max_new, int eos_id, int32_t *out, int *n_out, dp_err *err) {
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
        if (t == eos_id || kv->len >= kv->max_seq || n == max_new) break;
        rc = model_kv_append(m, kv, &t, 1, logits, err);
    }
    free(logits);
    *n_out = n;
    return rc;
}
