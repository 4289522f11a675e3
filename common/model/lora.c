/* lora — low-rank adapters on the engine's linear layers (see model.h for
 * the contract, model_internal.h for the engine's side).
 *
 * A set holds every adapter of a model in one allocation of parameters
 * (and one of gradients when training), carved per adapter as A [r, in]
 * then B [out, r], adapters in layer order and, within a layer, in the
 * order of MODEL_LORA_* bits. The engine runs an adapter through views:
 * one per linear layer it computes (GPT-2's q, k and v are three views of
 * c_attn's adapter, Phi-3's of qkv_proj's and its gate and up of
 * gate_up_proj's, each a block of B's rows), so a fused adapter needs no
 * special path.
 *
 * Per view, for rows x [n, in] of the layer's input and xd = dropout(x):
 *   forward   out += scale · (xd · Aᵀ) · B_vᵀ
 *   backward  dB_v += scale · doutᵀ · xa;  dxa = scale · dout · B_v;
 *             dA += dxaᵀ · xd;  dx += mask ⊙ (dxa · A)
 * with xa = xd · Aᵀ kept from the forward (n × r floats an adapter), and,
 * for a fused adapter, xa computed once for all its views and dxa summed
 * over them before dA and dx: the thin products (one side r) are what LoRA
 * adds to a step, so none is done twice. Dropout masks come from a hash of
 * (seed, key, layer, adapter, element), so backward draws forward's mask. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

typedef struct lora_adapter {
    int layer, kind, in, out; /* kind: index of the MODEL_LORA_* bit */
    size_t a_off, b_off;      /* into params / grads */
    char module[96];          /* Hugging Face module path, e.g. model.layers.0.self_attn.q_proj */
} lora_adapter;

/* Module naming: Llama-style (llama, mistral, qwen2, qwen3, gemma*), GPT-2,
 * Phi-3. */
enum { STYLE_LLAMA, STYLE_GPT2, STYLE_PHI3, STYLES };

struct lora_set {
    model_lora_options opt;
    float scale, keep_scale;
    int style, n_layer, n_adapters;
    int qd, kd, ff;           /* q and k/v rows, d_ff: the blocks of fused adapters */
    lora_adapter *ad;
    int *at;                  /* [n_layer × LORA_KINDS]: adapter index or -1 */
    float *params, *grads;
    size_t n_params;
    int dropout_on;
    uint64_t dropout_key;
    /* scratch for rows up to cap_rows */
    int cap_rows, max_in;
    float *xd, *xa, *dxa, *dxd;
    float *xa_saved;          /* training: xa of every adapter [n_adapters][cap_rows][r] */
    int *fw_rows, *bw_rows;   /* per adapter: rows of its views done in this pass */
};

/* ---- names and shapes ----------------------------------------------------- */

typedef struct kind_info {
    unsigned bit;
    const char *name[STYLES]; /* PEFT module names; NULL where the family has none */
    const char *path[STYLES]; /* module path format within a layer */
} kind_info;

static const kind_info KINDS[LORA_KINDS] = {
    {MODEL_LORA_Q, {"q_proj", NULL, NULL}, {"model.layers.%d.self_attn.q_proj", NULL, NULL}},
    {MODEL_LORA_K, {"k_proj", NULL, NULL}, {"model.layers.%d.self_attn.k_proj", NULL, NULL}},
    {MODEL_LORA_V, {"v_proj", NULL, NULL}, {"model.layers.%d.self_attn.v_proj", NULL, NULL}},
    {MODEL_LORA_O, {"o_proj", "c_proj", "o_proj"},
     {"model.layers.%d.self_attn.o_proj", "transformer.h.%d.attn.c_proj",
      "model.layers.%d.self_attn.o_proj"}},
    {MODEL_LORA_GATE, {"gate_proj", "c_fc", NULL},
     {"model.layers.%d.mlp.gate_proj", "transformer.h.%d.mlp.c_fc", NULL}},
    {MODEL_LORA_UP, {"up_proj", NULL, NULL}, {"model.layers.%d.mlp.up_proj", NULL, NULL}},
    {MODEL_LORA_DOWN, {"down_proj", "c_proj", "down_proj"},
     {"model.layers.%d.mlp.down_proj", "transformer.h.%d.mlp.c_proj",
      "model.layers.%d.mlp.down_proj"}},
    {MODEL_LORA_QKV, {NULL, "c_attn", "qkv_proj"},
     {NULL, "transformer.h.%d.attn.c_attn", "model.layers.%d.self_attn.qkv_proj"}},
    {MODEL_LORA_GATE_UP, {NULL, NULL, "gate_up_proj"},
     {NULL, NULL, "model.layers.%d.mlp.gate_up_proj"}},
};

static int style_of(const char *model_type) {
    return !strcmp(model_type, "gpt2") ? STYLE_GPT2 : !strcmp(model_type, "phi3") ? STYLE_PHI3
                                                                                   : STYLE_LLAMA;
}

unsigned model_lora_family_targets(const char *model_type) {
    unsigned all = 0;
    int st = style_of(model_type);
    for (int k = 0; k < LORA_KINDS; k++)
        if (KINDS[k].name[st]) all |= KINDS[k].bit;
    return all;
}

static const char *kind_name(int style, int k) { return KINDS[k].name[style]; }

int model_lora_parse_targets(const char *model_type, const char *const *names, int n,
                             unsigned *targets, dp_err *err) {
    int st = style_of(model_type);
    *targets = 0;
    for (int i = 0; i < n; i++) {
        if (!strcmp(names[i], "all-linear")) {
            *targets |= model_lora_family_targets(model_type);
            continue;
        }
        unsigned bits = 0;
        for (int k = 0; k < LORA_KINDS; k++)
            if (kind_name(st, k) && !strcmp(kind_name(st, k), names[i])) bits |= KINDS[k].bit;
        if (!bits) {
            char valid[256], q[DP_QUOTE_CAP];
            model_lora_target_names(model_type, model_lora_family_targets(model_type), valid,
                                    sizeof valid);
            return dp_fail(err, "lora.target_modules: %s is not a linear layer of a %s model "
                                "(all-linear, %s are)",
                           dp_quote(q, names[i], (size_t)-1), model_type, valid);
        }
        *targets |= bits;
    }
    if (!*targets) return dp_fail(err, "lora.target_modules: expected at least one module");
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void model_lora_target_names(const char *model_type, unsigned targets, char *buf, size_t cap) {
    int st = style_of(model_type), n = 0;
    const char *names[LORA_KINDS];
    for (int k = 0; k < LORA_KINDS; k++) {
        const char *nm = kind_name(st, k);
        if (!nm || !(targets & KINDS[k].bit)) continue;
        int dup = 0; /* GPT-2's c_proj stands for two kinds */
        for (int j = 0; j < n; j++) dup |= !strcmp(names[j], nm);
        if (!dup) names[n++] = nm;
    }
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < n && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%s", i ? ", " : "", names[i]);
}

/* in and out of kind k's matrix (as nn.Linear: out rows of in columns). */
static void kind_dims(const model_config *c, int k, int *in, int *out) {
    int C = c->d_model, F = c->d_ff, QD = c->n_head * c->head_dim, KD = c->n_kv_head * c->head_dim;
    switch (KINDS[k].bit) {
    case MODEL_LORA_Q: *in = C, *out = QD; break;
    case MODEL_LORA_K: case MODEL_LORA_V: *in = C, *out = KD; break;
    case MODEL_LORA_O: *in = QD, *out = C; break;
    case MODEL_LORA_GATE: case MODEL_LORA_UP: *in = C, *out = F; break;
    case MODEL_LORA_DOWN: *in = F, *out = C; break;
    case MODEL_LORA_GATE_UP: *in = C, *out = 2 * F; break;
    default: /* c_attn [C, 3C], qkv_proj [QD + 2 KD, C] */
        *in = C, *out = !strcmp(c->model_type, "gpt2") ? 3 * C : QD + 2 * KD;
        break;
    }
}

size_t model_lora_param_count(const model_config *c, int r, unsigned targets) {
    unsigned fam = model_lora_family_targets(c->model_type);
    size_t per_layer = 0;
    for (int k = 0; k < LORA_KINDS; k++)
        if (targets & fam & KINDS[k].bit) {
            int in, out;
            kind_dims(c, k, &in, &out);
            per_layer += (size_t)r * ((size_t)in + (size_t)out);
        }
    return per_layer * (size_t)c->n_layer;
}

/* ---- the set -------------------------------------------------------------- */

void lora_set_free(lora_set *s) {
    if (!s) return;
    free(s->ad), free(s->at), free(s->params), free(s->grads);
    free(s->xd), free(s->xa), free(s->dxa), free(s->dxd), free(s->xa_saved);
    free(s->fw_rows), free(s->bw_rows);
    free(s);
}

int lora_reserve(lora_set *s, int rows, dp_err *err) {
    if (rows <= s->cap_rows) return 0;
    size_t r = (size_t)s->opt.r, n = (size_t)rows;
    float *xd = realloc(s->xd, n * (size_t)s->max_in * sizeof(float));
    if (xd) s->xd = xd;
    float *dxd = realloc(s->dxd, n * (size_t)s->max_in * sizeof(float));
    if (dxd) s->dxd = dxd;
    float *xa = realloc(s->xa, n * r * sizeof(float));
    if (xa) s->xa = xa;
    float *dxa = realloc(s->dxa, n * r * sizeof(float));
    if (dxa) s->dxa = dxa;
    float *saved = s->grads ? realloc(s->xa_saved, (size_t)s->n_adapters * n * r * sizeof(float)) : NULL;
    if (saved) s->xa_saved = saved;
    if (!xd || !dxd || !xa || !dxa || (s->grads && !saved))
        return dp_fail(err, "lora: out of memory for %d rows", rows);
    s->cap_rows = rows;
    return 0;
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

int lora_set_new(lora_set **out, const model_config *c, const model_lora_options *o,
                 int training, int max_rows, dp_err *err) {
    *out = NULL;
    if (o->r < 1) return dp_fail(err, "lora.r: expected >= 1, got %d", o->r);
    if (!(o->dropout >= 0 && o->dropout < 1))
        return dp_fail(err, "lora.dropout: expected a number in [0, 1), got %g", (double)o->dropout);
    unsigned fam = model_lora_family_targets(c->model_type);
    if (!(o->targets & fam)) return dp_fail(err, "lora.target_modules: no module of a %s model", c->model_type);
    lora_set *s = dp_calloc(1, sizeof *s, err);
    if (!s) return -1;
    s->opt = *o;
    s->opt.targets &= fam;
    s->style = style_of(c->model_type);
    s->qd = c->n_head * c->head_dim, s->kd = c->n_kv_head * c->head_dim, s->ff = c->d_ff;
    s->n_layer = c->n_layer;
    s->scale = o->use_rslora ? o->alpha / sqrtf((float)o->r) : o->alpha / (float)o->r;
    s->keep_scale = 1.0f / (1.0f - o->dropout);
    s->at = dp_malloc((size_t)c->n_layer * LORA_KINDS * sizeof *s->at, err);
    s->ad = dp_calloc((size_t)c->n_layer * LORA_KINDS, sizeof *s->ad, err);
    if (!s->at || !s->ad) goto fail;
    size_t off = 0;
    for (int l = 0; l < c->n_layer; l++)
        for (int k = 0; k < LORA_KINDS; k++) {
            s->at[l * LORA_KINDS + k] = -1;
            if (!(s->opt.targets & KINDS[k].bit)) continue;
            lora_adapter *a = &s->ad[s->n_adapters];
            a->layer = l, a->kind = k;
            kind_dims(c, k, &a->in, &a->out);
            snprintf(a->module, sizeof a->module, KINDS[k].path[s->style], l);
            a->a_off = off, off += (size_t)o->r * (size_t)a->in;
            a->b_off = off, off += (size_t)a->out * (size_t)o->r;
            if (a->in > s->max_in) s->max_in = a->in;
            s->at[l * LORA_KINDS + k] = s->n_adapters++;
        }
    s->n_params = off;
    if (!(s->params = dp_calloc(off, sizeof(float), err))) goto fail;
    if (training && !(s->grads = dp_calloc(off, sizeof(float), err))) goto fail;
    s->fw_rows = dp_calloc((size_t)s->n_adapters + 1, sizeof *s->fw_rows, err);
    s->bw_rows = dp_calloc((size_t)s->n_adapters + 1, sizeof *s->bw_rows, err);
    if (!s->fw_rows || !s->bw_rows) goto fail;
    if (lora_reserve(s, max_rows > 0 ? max_rows : 1, err)) goto fail;
    /* A ~ U(±1/sqrt(in)): kaiming_uniform_(a = sqrt(5)) as PEFT; B = 0. */
    uint64_t st = o->seed;
    for (int i = 0; i < s->n_adapters; i++) {
        const lora_adapter *a = &s->ad[i];
        double bound = 1.0 / sqrt((double)a->in);
        float *A = s->params + a->a_off;
        for (size_t j = 0; j < (size_t)o->r * (size_t)a->in; j++) {
            double u = (double)(splitmix64(&st) >> 40) * 0x1.0p-24;
            A[j] = (float)((2.0 * u - 1.0) * bound);
        }
    }
    *out = s;
    return 0;
fail:
    lora_set_free(s);
    return -1;
}

const model_lora_options *lora_options(const lora_set *s) { return &s->opt; }
float *lora_params(lora_set *s, float **grads, size_t *n) {
    if (grads) *grads = s->grads;
    if (n) *n = s->n_params;
    return s->params;
}
void lora_set_dropout(lora_set *s, int on, uint64_t key) {
    s->dropout_on = on && s->opt.dropout > 0;
    s->dropout_key = key;
}

int lora_count(const lora_set *s) { return s->n_adapters; }
void lora_info(lora_set *s, int i, lora_view_info *v) {
    const lora_adapter *a = &s->ad[i];
    v->layer = a->layer, v->kind = a->kind, v->in = a->in, v->out = a->out;
    v->module = a->module;
    v->A = s->params + a->a_off, v->B = s->params + a->b_off;
}

/* ---- the math ------------------------------------------------------------- */

/* The adapter and B's row block [row0, row0 + rows) behind view VIEW of
 * layer L, or NULL: fused adapters (GPT-2's c_attn, Phi-3's qkv_proj and
 * gate_up_proj) serve several views. */
static const lora_adapter *view_of(const lora_set *s, int l, int view, int *row0, int *rows) {
    int kind = view, idx;
    *row0 = 0;
    if (s->style != STYLE_LLAMA && view <= LORA_VIEW_V) {
        idx = s->at[l * LORA_KINDS + LORA_KIND_QKV];
        if (idx < 0) return NULL;
        if (s->style == STYLE_GPT2)
            *rows = s->ad[idx].out / 3, *row0 = view * *rows;
        else
            *rows = view == LORA_VIEW_Q ? s->qd : s->kd,
            *row0 = view == LORA_VIEW_Q ? 0 : view == LORA_VIEW_K ? s->qd : s->qd + s->kd;
        return &s->ad[idx];
    }
    if (s->style == STYLE_PHI3 && (view == LORA_VIEW_GATE || view == LORA_VIEW_UP)) {
        idx = s->at[l * LORA_KINDS + LORA_KIND_GATE_UP];
        if (idx < 0) return NULL;
        *rows = s->ff, *row0 = view == LORA_VIEW_GATE ? 0 : s->ff;
        return &s->ad[idx];
    }
    idx = s->at[l * LORA_KINDS + kind];
    if (idx >= 0) *rows = s->ad[idx].out;
    return idx < 0 ? NULL : &s->ad[idx];
}

/* Dropout keep test for element e of adapter (layer, kind): a hash of the
 * set's seed and key, the adapter and the element, as a 24-bit uniform. */
static inline int keep(uint64_t base, uint64_t e, float p) {
    uint64_t z = base + e * 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (float)(z >> 40) * 0x1.0p-24f >= p;
}

static uint64_t mask_base(const lora_set *s, const lora_adapter *a) {
    uint64_t x = s->opt.seed ^ (s->dropout_key * 0xd1342543de82ef95ULL);
    x += ((uint64_t)a->layer << 8 | (uint64_t)a->kind) * 0x2545f4914f6cdd1dULL;
    return splitmix64(&x);
}

/* The adapter's input: x itself, or dropout(x) in s->xd. */
static const float *adapter_input(lora_set *s, const lora_adapter *a, const float *x, int n) {
    if (!s->dropout_on) return x;
    uint64_t base = mask_base(s, a);
    size_t len = (size_t)n * (size_t)a->in;
    float p = s->opt.dropout, ks = s->keep_scale;
#pragma omp parallel for if (len > 65536)
    for (size_t e = 0; e < len; e++) s->xd[e] = keep(base, e, p) ? x[e] * ks : 0.0f;
    return s->xd;
}

/* xa = xd · Aᵀ [n, r] of adapter a: kept per adapter while training (its
 * backward reads it), in the shared scratch otherwise. */
static float *xa_of(lora_set *s, const lora_adapter *a) {
    if (!s->xa_saved) return s->xa;
    return s->xa_saved + (size_t)(a - s->ad) * (size_t)s->cap_rows * (size_t)s->opt.r;
}

void lora_forward(lora_set *s, int layer, int view, float *out, const float *x, int n) {
    int row0, oc;
    const lora_adapter *a = s && n > 0 ? view_of(s, layer, view, &row0, &oc) : NULL;
    if (!a) return;
    int r = s->opt.r, i = (int)(a - s->ad);
    const float *A = s->params + a->a_off, *B = s->params + a->b_off + (size_t)row0 * r;
    float *xa = xa_of(s, a);
    /* The views of a fused adapter come one after another with the same
     * input: the first computes xa, the others use it. */
    if (s->fw_rows[i] == 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, r, a->in, 1.0f,
                    adapter_input(s, a, x, n), a->in, A, a->in, 0.0f, xa, r);
    s->fw_rows[i] = s->fw_rows[i] + oc == a->out ? 0 : s->fw_rows[i] + oc;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, oc, r, s->scale, xa, r, B, r, 1.0f,
                out, oc);
}

void lora_backward(lora_set *s, int layer, int view, float *dx, const float *dout,
                   const float *x, int n) {
    int row0, oc;
    const lora_adapter *a = s && n > 0 ? view_of(s, layer, view, &row0, &oc) : NULL;
    if (!a) return;
    int r = s->opt.r, in = a->in, i = (int)(a - s->ad);
    const float *A = s->params + a->a_off, *B = s->params + a->b_off + (size_t)row0 * r;
    const float *xa = xa_of(s, a); /* from the forward (or recompute's replay) */
    float *dA = s->grads + a->a_off, *dB = s->grads + a->b_off + (size_t)row0 * r;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, oc, r, n, s->scale, dout, oc, xa, r,
                1.0f, dB, r);
    /* dxa sums over the views of a fused adapter; the last one finishes. */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, r, oc, s->scale, dout, oc, B, r,
                s->bw_rows[i] ? 1.0f : 0.0f, s->dxa, r);
    s->bw_rows[i] += oc;
    if (s->bw_rows[i] < a->out) return;
    s->bw_rows[i] = 0;
    const float *xin = adapter_input(s, a, x, n);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, in, n, 1.0f, s->dxa, r, xin, in, 1.0f,
                dA, in);
    if (!dx) return;
    if (!s->dropout_on) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, r, 1.0f, s->dxa, r, A, in,
                    1.0f, dx, in);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, r, 1.0f, s->dxa, r, A, in, 0.0f,
                s->dxd, in);
    uint64_t base = mask_base(s, a);
    size_t len = (size_t)n * (size_t)in;
    float p = s->opt.dropout, ks = s->keep_scale;
#pragma omp parallel for if (len > 65536)
    for (size_t e = 0; e < len; e++)
        if (keep(base, e, p)) dx[e] += s->dxd[e] * ks;
}

void lora_merge_into(const lora_set *s, int i, float *w, int ldw, int layout) {
    const lora_adapter *a = &s->ad[i];
    int r = s->opt.r;
    const float *A = s->params + a->a_off, *B = s->params + a->b_off;
    if (layout == LAYER_W_OUT_IN) /* W[out, in] += scale · B A */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, a->out, a->in, r, s->scale, B, r,
                    A, a->in, 1.0f, w, ldw);
    else /* Conv1D W[in, out] += scale · (B A)ᵀ = scale · Aᵀ Bᵀ */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, a->in, a->out, r, s->scale, A, a->in,
                    B, r, 1.0f, w, ldw);
}
