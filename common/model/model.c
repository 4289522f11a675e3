/* model — the transformer engine: parameter layout, packing plan, forward
 * and backward (see model.h). Config parsing, loading and saving live in
 * model_io.c; what differs between families (tensor names, fused views,
 * which layers slide) in model_family.c; the numerical kernels in layers.c.
 *
 * One forward runs every token of the batch as rows of one [T, C] matrix.
 * The plan built from a batch gives each packed token its id, position and
 * the key ranges it may attend to, and each response token the packed row
 * that predicts it. Training keeps each layer's activations except the norm
 * outputs and the MLP activation, which backward recomputes bit for bit.
 * With options.recompute it keeps only each layer's input (the residual
 * stream) and one layer's activations, which backward fills again by running
 * that layer's forward before going back through it (layer-wise
 * checkpointing): the same kernels on the same inputs, so the same bits. */
#include "model.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "layers.h"
#include "model_internal.h"

/* Rows of the MLP a forward-only pass runs at once (training keeps all). */
enum { MLP_ROWS = 1024 };

/* Saved activations of one layer (training keeps one per layer). */
typedef struct layer_acts {
    float *ln1, *ln1_mean, *ln1_rstd, *q_lin, *k_lin, *q_rstd, *k_rstd, *q, *k, *v;
    float *att, *lse, *res_mid, *ln2, *ln2_mean, *ln2_rstd, *fc, *up, *act;
    float *attn_raw, *attn_rstd, *mlp_raw, *mlp_rstd; /* post norms: their inputs and rstd */
} layer_acts;

struct model {
    model_config cfg;
    model_options opt;
    int threads; /* resolved thread count; scratch is sized for it */
    model_arch arch; /* dimensions, weight layout and row strides */
    char *config_text;
    int n_tensors;
    model_tensor *tensors;
    float ***wfield, ***gfield; /* per tensor: the weights/grads field it binds */
    const float **mapped;       /* per tensor: external (memory-mapped) data or NULL */
    char *half;                 /* per tensor: 0, or kept in half precision: 1 F16, 2 BF16 */
    const uint16_t **half_src;  /* per tensor: its half-precision data */
    int streaming;              /* release mapped pages after use (model_stream) */
    int *tlayer;                /* per tensor: its layer, -1 outside the layers */
    frozen_set *frozen;         /* half-precision layer matrices, or NULL */
    layer_head head;            /* the LM head as the log-prob kernels read it */
    const uint16_t *wte_half;   /* half-precision embeddings, or NULL */
    int wte_bf16;
    size_t params_bytes, grads_bytes, act_bytes; /* arena sizes */
    void (*release)(void *);
    void *release_ctx;
    char *names; /* tensor names, one allocation */
    float *params, *grads;   /* grads NULL without training, and when adapters train */
    size_t n_params;
    lora_set *lora;          /* adapters, or NULL */
    model_weights w, g;
    float *inv_freq;      /* RoPE [rope_dim/2]: every layer's, or global layers' */
    float *inv_freq_local; /* Gemma 3's sliding layers, or NULL */
    float *inv_freq_long;  /* longrope beyond the original context, or NULL */
    /* activations */
    float *act_mem;
    float **res; /* L + 1 residual streams (2 alternating when !training) */
    layer_acts *la;
    float *proj, *hR_in, *hR, *lnf_mean, *lnf_rstd, *out_lse, *attn_scratch, *logit_scratch;
    int chunk_rows;
    /* backward scratch */
    float *dres, *dln, *datt, *dq, *dq2, *dk, *dk2, *dv, *dfc, *dup, *dact, *dhR, *dhR_in;
    float *dpost; /* post norms: the gradient of their input */
    /* plan of the last forward */
    int32_t *tok, *target;
    int *pos, *lo0, *hi0, *lo1, *hi1, *unit_start, *pred;
    int T, R, n_units, have_forward, seq_len;
};

/* ---- threads ---- */

void model_set_threads(int threads) {
    if (threads <= 0) threads = omp_get_num_procs();
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
}

const char *model_blas_corename(void) { return openblas_get_corename(); }

/* ---- architecture ---- */

const model_weights *model_weights_of(const model *m) { return &m->w; }

const float *model_layer_inv_freq(const model *m, int l, int seq_len) {
    const model_config *c = &m->cfg;
    if (m->inv_freq_local && model_layer_sliding(c, l)) return m->inv_freq_local;
    if (m->inv_freq_long && seq_len > c->rope_original_max_pos) return m->inv_freq_long;
    return m->inv_freq;
}

/* ---- parameter layout ---- */

typedef struct reg_ctx {
    model *m;
    size_t names_len;
    int count_only;
} reg_ctx;

static void reg(void *ctx, float **wf, float **gf, int ndim, int64_t d0, int64_t d1,
                const char *fmt, int layer) {
    reg_ctx *r = ctx;
    model *m = r->m;
    char name[128];
    snprintf(name, sizeof name, fmt, layer);
    int i = m->n_tensors++;
    if (!r->count_only) {
        model_tensor *t = &m->tensors[i];
        t->name = m->names + r->names_len;
        memcpy(m->names + r->names_len, name, strlen(name) + 1);
        t->ndim = ndim;
        t->shape[0] = d0;
        t->shape[1] = ndim > 1 ? d1 : 1;
        t->numel = (size_t)d0 * (ndim > 1 ? (size_t)d1 : 1);
        t->offset = m->n_params;
        m->wfield[i] = wf;
        m->gfield[i] = gf;
        m->tlayer[i] = strstr(fmt, "%d") ? layer : -1;
        m->n_params += t->numel;
    }
    r->names_len += strlen(name) + 1;
}

/* Registers every tensor with its Hugging Face name and shape
 * (model_family.c). Called once to count, once to fill. */
static void register_tensors(reg_ctx *r) {
    model *m = r->m;
    m->n_tensors = 0;
    m->n_params = 0;
    r->names_len = 0;
    model_family_register(&m->cfg, &m->w, &m->g, reg, r);
}

/* Points the weight structs into params/grads (or the mapped data) and
 * derives the aliases. */
static void bind_weights(model *m) {
    for (int i = 0; i < m->n_tensors; i++) {
        if (!m->half[i]) /* half tensors are bound layer by layer (model_layer_ready) */
            *m->wfield[i] = m->mapped[i] ? (float *)m->mapped[i] : m->params + m->tensors[i].offset;
        else if (m->tlayer[i] >= 0)
            *m->wfield[i] = NULL;
        *m->gfield[i] = m->grads ? m->grads + m->tensors[i].offset : NULL;
    }
    frozen_unbind(m->frozen); /* the next layer widens anew */
    for (int l = 0; l < m->cfg.n_layer; l++) m->w.layer[l].lora = m->lora, m->w.layer[l].layer = l;
    model_weights *ws[2] = {&m->w, &m->g};
    for (int s = 0; s < 2; s++) {
        model_weights *w = ws[s];
        if (m->cfg.tie_embeddings) w->lm_head = w->wte;
        for (int l = 0; l < m->cfg.n_layer; l++) model_family_views(&m->cfg, &w->layer[l]);
    }
    m->head = (layer_head){.w = m->w.lm_head, .half = m->head.half, .bf16 = m->head.bf16,
                           .buf = m->head.buf, .buf_rows = m->head.buf_rows,
                           .softcap = m->cfg.final_softcap};
}

int model_layer_ready(model *m, int l) {
    int bound = frozen_bind_layer(m->frozen, l);
    if (bound) model_family_views(&m->cfg, &m->w.layer[l]);
    return bound;
}

/* ---- activation layout ---- */

/* Carves (or, with base == NULL, just counts) the activation buffers. */
static size_t carve_acts(model *m, float *base) {
    const model_config *c = &m->cfg;
    size_t T = (size_t)m->opt.max_tokens, C = c->d_model, F = c->d_ff, H = c->n_head,
           KV = c->n_kv_head, D = c->head_dim, L = c->n_layer;
    int train = m->opt.training, gpt2 = m->arch.gpt2;
    int per_layer = train && !m->opt.recompute; /* one slot of layer_acts per layer */
    size_t off = 0;
#define TAKE(ptr, n) model_carve(&(ptr), base, &off, (size_t)(n))
    size_t n_res = train ? L + 1 : 2, n_slots = per_layer ? L : 1;
    for (size_t i = 0; i < n_res; i++) TAKE(m->res[i], T * C);
    layer_acts counting; /* receives nothing: TAKE only assigns when base != NULL */
    /* Norm outputs and the MLP activation are cheap to recompute, so all
     * layers share one buffer each; backward recomputes them bit for bit. */
#define SHARED(f, n)                                     \
    do {                                                 \
        if (l == 0)                                      \
            TAKE(a->f, n);                               \
        else if (base)                                   \
            a->f = m->la[0].f;                           \
    } while (0)
    for (size_t l = 0; l < n_slots; l++) {
        layer_acts *a = base ? &m->la[l] : &counting;
        SHARED(ln1, T * C);
        TAKE(a->ln1_mean, T);
        TAKE(a->ln1_rstd, T);
        if (c->qk_norm) {
            TAKE(a->q_lin, T * H * D);
            TAKE(a->k_lin, T * KV * D);
            TAKE(a->q_rstd, T * H);
            TAKE(a->k_rstd, T * KV);
        }
        model_carve_qkv(&a->q, &a->k, &a->v, &m->arch, T, base, &off);
        TAKE(a->att, T * H * D);
        TAKE(a->lse, T * H);
        TAKE(a->res_mid, T * C);
        SHARED(ln2, T * C);
        TAKE(a->ln2_mean, T);
        TAKE(a->ln2_rstd, T);
        /* A forward alone runs the MLP MLP_ROWS rows at a time. */
        size_t TF = (train || T <= MLP_ROWS ? T : MLP_ROWS) * F;
        TAKE(a->fc, TF);
        if (!gpt2) TAKE(a->up, TF);
        SHARED(act, TF);
        if (c->post_norms) {
            TAKE(a->attn_raw, T * C);
            TAKE(a->attn_rstd, T);
            TAKE(a->mlp_raw, T * C);
            TAKE(a->mlp_rstd, T);
        }
    }
    TAKE(m->proj, T * C);
    TAKE(m->hR_in, T * C);
    TAKE(m->hR, T * C);
    TAKE(m->lnf_mean, T);
    TAKE(m->lnf_rstd, T);
    TAKE(m->out_lse, T);
    TAKE(m->attn_scratch, layer_attention_scratch((int)T));
    TAKE(m->logit_scratch, (size_t)m->chunk_rows * c->vocab);
    if (train) {
        TAKE(m->dres, T * C);
        TAKE(m->dln, T * C);
        TAKE(m->datt, T * H * D);
        model_carve_qkv(&m->dq, &m->dk, &m->dv, &m->arch, T, base, &off);
        TAKE(m->dfc, T * F);
        TAKE(m->dact, T * F);
        if (!gpt2) { /* RoPE and SwiGLU backward */
            TAKE(m->dq2, T * H * D);
            TAKE(m->dk2, T * KV * D);
            TAKE(m->dup, T * F);
        }
        TAKE(m->dhR, T * C);
        TAKE(m->dhR_in, T * C);
        if (c->post_norms) TAKE(m->dpost, T * C);
    }
#undef SHARED
#undef TAKE
    return off;
}

static int chunk_rows_for(int vocab, int max_tokens) {
    int rows = (1 << 25) / (vocab > 0 ? vocab : 1); /* 128 MB of logits at a time */
    if (rows < 1) rows = 1;
    return rows < max_tokens ? rows : max_tokens;
}

/* ---- construction ---- */

/* The RoPE inverse frequencies of the layers (model_layer_inv_freq). */
static int init_rope(model *m, dp_err *err) {
    const model_config *c = &m->cfg;
    int rot = m->arch.rope_dim, half = rot / 2;
    m->inv_freq = dp_calloc((size_t)half + 1, sizeof(float), err);
    if (!m->inv_freq) return -1;
    if (c->rope_type == 3) { /* longrope: θ^(−2i/d) / factor[i], short and long */
        m->inv_freq_long = dp_calloc((size_t)half + 1, sizeof(float), err);
        if (!m->inv_freq_long) return -1;
        for (int i = 0; i < half; i++) {
            double f = pow(c->rope_theta, (double)(2 * i) / rot);
            m->inv_freq[i] = (float)(1.0 / (c->rope_short[i] * f));
            m->inv_freq_long[i] = (float)(1.0 / (c->rope_long[i] * f));
        }
        return 0;
    }
    layer_rope_inv_freq(m->inv_freq, rot, c->rope_theta, c->rope_type, c->rope_factor,
                        c->rope_low_freq, c->rope_high_freq, c->rope_original_max_pos);
    if (c->rope_local_theta > 0) { /* Gemma 3's sliding layers: the plain base, unscaled */
        m->inv_freq_local = dp_calloc((size_t)half + 1, sizeof(float), err);
        if (!m->inv_freq_local) return -1;
        layer_rope_inv_freq(m->inv_freq_local, rot, c->rope_local_theta, 0, 1, 0, 0, 0);
    }
    return 0;
}

int model_new(model **out, const model_config *c, const char *config_json_text,
              const model_options *opt, dp_err *err) {
    *out = NULL;
    if (opt->max_tokens < 1)
        return dp_fail(err, "model: options.max_tokens: expected >= 1, got %d", opt->max_tokens);
    model *m = dp_calloc(1, sizeof *m, err);
    if (!m) return -1;
    m->cfg = *c;
    m->opt = *opt;
    m->threads = opt->threads > 0 ? opt->threads : omp_get_num_procs();
    model_set_threads(m->threads);
    model_arch_init(&m->arch, c);
    m->config_text = config_json_text ? strdup(config_json_text) : model_family_config_text(c);
    m->w.layer = dp_calloc((size_t)c->n_layer, sizeof(model_layer_weights), err);
    m->g.layer = dp_calloc((size_t)c->n_layer, sizeof(model_layer_weights), err);
    if (!m->config_text || !m->w.layer || !m->g.layer) goto fail;

    reg_ctx r = {.m = m, .count_only = 1};
    register_tensors(&r);
    int nt = m->n_tensors;
    m->tensors = dp_calloc((size_t)nt, sizeof *m->tensors, err);
    m->names = dp_malloc(r.names_len, err);
    m->wfield = dp_calloc((size_t)nt, sizeof *m->wfield, err);
    m->gfield = dp_calloc((size_t)nt, sizeof *m->gfield, err);
    m->mapped = dp_calloc((size_t)nt, sizeof *m->mapped, err);
    m->half = dp_calloc((size_t)nt, 1, err);
    m->half_src = dp_calloc((size_t)nt, sizeof *m->half_src, err);
    m->tlayer = dp_calloc((size_t)nt, sizeof *m->tlayer, err);
    if (!m->tensors || !m->names || !m->wfield || !m->gfield || !m->mapped || !m->half ||
        !m->tlayer || !m->half_src)
        goto fail;
    r.count_only = 0;
    register_tensors(&r);
    /* Pages never written (mapped tensors) cost no memory, nor count against
     * overcommit: a 7B model's float32 layout is only reserved. */
    m->params_bytes = m->n_params * sizeof(float);
    if (!(m->params = dp_arena_alloc(m->params_bytes, err))) goto fail;
    int base_trains = opt->training && opt->lora.r == 0;
    m->grads_bytes = base_trains ? m->n_params * sizeof(float) : 0;
    if (base_trains && !(m->grads = dp_arena_alloc(m->grads_bytes, err))) goto fail;
    if (opt->lora.r > 0 &&
        lora_set_new(&m->lora, c, &opt->lora, opt->training, opt->max_tokens, err))
        goto fail;
    bind_weights(m);

    if (init_rope(m, err)) goto fail;

    size_t T = (size_t)opt->max_tokens;
    m->chunk_rows = chunk_rows_for(c->vocab, opt->max_tokens);
    m->res = dp_calloc((size_t)c->n_layer + 1, sizeof *m->res, err);
    m->la = dp_calloc((size_t)c->n_layer, sizeof *m->la, err);
    if (!m->res || !m->la) goto fail;
    size_t n_act = carve_acts(m, NULL);
    m->act_bytes = n_act * sizeof(float);
    if (!(m->act_mem = dp_arena_alloc(m->act_bytes, err))) goto fail;
    carve_acts(m, m->act_mem);
    m->tok = dp_malloc(T * sizeof *m->tok, err);
    m->target = dp_malloc(T * sizeof *m->target, err);
    m->pos = dp_malloc(T * sizeof(int), err);
    m->lo0 = dp_malloc(T * sizeof(int), err);
    m->hi0 = dp_malloc(T * sizeof(int), err);
    m->lo1 = dp_malloc(T * sizeof(int), err);
    m->hi1 = dp_malloc(T * sizeof(int), err);
    m->unit_start = dp_malloc((T + 1) * sizeof(int), err);
    m->pred = dp_malloc(T * sizeof(int), err);
    if (!m->tok || !m->target || !m->pos || !m->lo0 || !m->hi0 || !m->lo1 || !m->hi1 ||
        !m->unit_start || !m->pred)
        goto fail;
    *out = m;
    return 0;
fail:
    model_free(m);
    return -1;
}

void model_free(model *m) {
    if (!m) return;
    if (m->release) m->release(m->release_ctx);
    lora_set_free(m->lora);
    frozen_free(m->frozen);
    free(m->head.buf);
    free(m->wfield), free(m->gfield), free(m->mapped), free(m->half), free(m->tlayer);
    free(m->half_src);
    free(m->config_text), free(m->tensors), free(m->names);
    dp_arena_free(m->params, m->params_bytes);
    dp_arena_free(m->grads, m->grads_bytes);
    dp_arena_free(m->act_mem, m->act_bytes);
    free(m->w.layer), free(m->g.layer), free(m->inv_freq), free(m->res);
    free(m->inv_freq_local), free(m->inv_freq_long);
    free(m->la), free(m->tok), free(m->target), free(m->pos), free(m->lo0), free(m->hi0);
    free(m->lo1), free(m->hi1), free(m->unit_start), free(m->pred);
    free(m);
}

const model_config *model_get_config(const model *m) { return &m->cfg; }
const char *model_config_text(const model *m) { return m->config_text; }
int model_n_tensors(const model *m) { return m->n_tensors; }
const model_tensor *model_tensor_at(const model *m, int i) {
    return i >= 0 && i < m->n_tensors ? &m->tensors[i] : NULL;
}
const model_tensor *model_find_tensor(const model *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, name)) return &m->tensors[i];
    return NULL;
}

int model_attach_tensor(model *m, int i, const float *data, dp_err *err) {
    if (m->grads)
        return dp_fail(err, "model_attach_tensor: a model whose base trains owns its weights");
    if (i < 0 || i >= m->n_tensors || ((uintptr_t)data & 3))
        return dp_fail(err, "model_attach_tensor: expected a tensor index and 4-byte aligned data");
    m->mapped[i] = data;
    bind_weights(m);
    return 0;
}

void model_set_release(model *m, void (*release)(void *), void *ctx) {
    m->release = release;
    m->release_ctx = ctx;
}

const float *model_tensor_data(const model *m, int i) {
    if (m->mapped[i]) return m->mapped[i];
    float *own = m->params + m->tensors[i].offset;
    if (m->half[i]) /* widened into its float32 slot on demand (saving, merging) */
        layer_widen(own, m->half_src[i], m->half[i] == 2, m->tensors[i].numel);
    return own;
}

int model_attach_half(model *m, int i, const uint16_t *data, int bf16, dp_err *err) {
    if (m->grads)
        return dp_fail(err, "model_attach_half: a model whose base trains owns its weights");
    if (i < 0 || i >= m->n_tensors || m->tensors[i].ndim != 2)
        return dp_fail(err, "model_attach_half: expected the index of a matrix");
    const model_config *c = &m->cfg;
    float **f = m->wfield[i];
    int is_wte = f == &m->w.wte, is_head = f == &m->w.lm_head;
    if (m->tlayer[i] < 0 && !is_wte && !is_head)
        return dp_fail(err, "model_attach_half: %s stays float32", m->tensors[i].name);
    if (m->tlayer[i] >= 0) {
        if (!m->frozen && !(m->frozen = frozen_new(c->n_layer)))
            return dp_fail(err, "out of memory");
        if (frozen_add(m->frozen, f, m->tlayer[i], data, bf16, m->tensors[i].numel))
            return dp_fail(err, "out of memory");
    }
    if (is_wte) m->wte_half = data, m->wte_bf16 = bf16;
    if (is_head || (is_wte && c->tie_embeddings)) {
        /* the head is widened in blocks of rows: 8 MiB of floats at a time */
        int rows = (int)((2u << 20) / (unsigned)c->d_model);
        rows = rows < 1 ? 1 : rows > c->vocab ? c->vocab : rows;
        if (!m->head.buf && !(m->head.buf = dp_malloc((size_t)rows * c->d_model * sizeof(float), err)))
            return -1;
        m->head.half = data, m->head.bf16 = bf16, m->head.buf_rows = rows;
    }
    m->half[i] = bf16 ? 2 : 1;
    m->half_src[i] = data;
    bind_weights(m);
    if (m->frozen && frozen_prepare(m->frozen)) return dp_fail(err, "out of memory");
    return 0;
}

void model_stream(model *m, int on) {
    if (m->frozen) frozen_set_release(m->frozen, on);
    m->streaming = on;
}

void model_read_stats(const model *m, uint64_t *bytes, double *seconds) {
    frozen_stats(m->frozen, bytes, seconds);
}

float *model_params(model *m, size_t *n) {
    if (n) *n = m->n_params;
    return m->params;
}
float *model_grads(model *m, size_t *n) {
    if (n) *n = m->grads ? m->n_params : 0;
    return m->grads;
}
void model_zero_grads(model *m) {
    if (m->grads) memset(m->grads, 0, m->n_params * sizeof(float));
    size_t n;
    float *g = NULL;
    if (m->lora && (lora_params(m->lora, &g, &n), g)) memset(g, 0, n * sizeof(float));
}

/* ---- adapters ---- */

int model_lora_add(model *m, const model_lora_options *o, dp_err *err) {
    if (m->lora) return dp_fail(err, "model_lora_add: the model already has adapters");
    if (m->grads) return dp_fail(err, "model_lora_add: the model's base trains");
    if (lora_set_new(&m->lora, &m->cfg, o, 0, m->opt.max_tokens, err)) return -1;
    m->opt.lora = *lora_options(m->lora);
    bind_weights(m);
    return 0;
}

const model_lora_options *model_lora(const model *m) { return m->lora ? lora_options(m->lora) : NULL; }

lora_set *model_lora_set(model *m) { return m->lora; }

float *model_trainable(model *m, float **grads, size_t *n) {
    if (m->lora) return lora_params(m->lora, grads, n);
    if (grads) *grads = m->grads;
    if (n) *n = m->n_params;
    return m->params;
}

void model_lora_dropout(model *m, int on, uint64_t key) {
    if (m->lora) lora_set_dropout(m->lora, on, key);
}

/* The weight matrix adapter kind KIND of layer L sits on: its data (in
 * params), row stride and layout; the tensor's index in *ti. */
static float *adapted_weight(model *m, int l, int kind, int *ld, int *ti) {
    model_layer_weights *w = &m->w.layer[l];
    const model_arch *A = &m->arch;
    float **f;
    switch (kind) {
    case 0: f = &w->q_w, *ld = A->ldq; break;
    case 1: f = &w->k_w, *ld = A->ldkv; break;
    case 2: f = &w->v_w, *ld = A->ldkv; break;
    case 3: f = &w->o_w, *ld = A->ldo; break;
    case 4: f = &w->fc_w, *ld = A->ldfc; break;
    case 5: f = &w->up_w, *ld = A->ldfc; break;
    case 6: f = &w->down_w, *ld = A->lddown; break;
    case LORA_KIND_GATE_UP: f = &w->gate_up_w, *ld = A->C; break; /* Phi-3 [2F, C] */
    default: f = &w->qkv_w, *ld = A->gpt2 ? 3 * A->C : A->C; break; /* c_attn, qkv_proj */
    }
    for (int i = 0; i < m->n_tensors; i++)
        if (m->wfield[i] == f) *ti = i;
    return *f;
}

int model_lora_merge(model *m, dp_err *err) {
    if (!m->lora) return 0;
    for (int i = 0; i < lora_count(m->lora); i++) {
        lora_view_info v;
        lora_info(m->lora, i, &v);
        int ld, ti = -1;
        adapted_weight(m, v.layer, v.kind, &ld, &ti);
        if (ti < 0) return dp_fail(err, "model_lora_merge: no weight under %s", v.module);
        if (m->mapped[ti] || m->half[ti]) { /* read-only: merge into an owned float32 copy */
            const float *src = model_tensor_data(m, ti);
            float *own = m->params + m->tensors[ti].offset;
            if (src != own) memcpy(own, src, m->tensors[ti].numel * sizeof(float));
            if (m->half[ti]) frozen_forget(m->frozen, m->wfield[ti]);
            m->mapped[ti] = NULL, m->half[ti] = 0;
            bind_weights(m);
        }
        float *w = adapted_weight(m, v.layer, v.kind, &ld, &ti);
        lora_merge_into(m->lora, i, w, ld, m->arch.layout);
    }
    lora_set_free(m->lora);
    m->lora = NULL;
    memset(&m->opt.lora, 0, sizeof m->opt.lora);
    bind_weights(m);
    return 0;
}

/* ---- the packing plan ---- */

static int plan_add_causal(model *m, const int32_t *ids, int n, int *T) {
    int b = *T;
    for (int i = 0; i < n; i++) {
        m->tok[b + i] = ids[i];
        m->pos[b + i] = i;
        m->lo0[b + i] = b, m->hi0[b + i] = b + i + 1, m->lo1[b + i] = m->hi1[b + i] = 0;
    }
    m->unit_start[m->n_units++] = b;
    *T += n;
    return b;
}

static int build_plan(model *m, const model_batch *b, dp_err *err) {
    const model_config *c = &m->cfg;
    int share = m->opt.prefix_sharing;
    long need = 0, offs = 0;
    for (int i = 0; i < b->n; i++) {
        int P = b->n_prompt[i], Cn = b->n_chosen[i], Rn = b->n_rejected[i];
        if (P < 1 || Cn < 0 || Rn < 0)
            return dp_fail(err, "model_forward: example %d: expected a prompt of >= 1 tokens and "
                                "non-negative response lengths, got %d/%d/%d",
                           i, P, Cn, Rn);
        need += share ? (long)P + Cn + Rn : (long)P + Cn + (Rn ? (long)P + Rn : 0);
        for (long k = offs; k < offs + P + Cn + Rn; k++)
            if (b->tokens[k] < 0 || b->tokens[k] >= c->vocab)
                return dp_fail(err, "model_forward: example %d: token id %d outside the "
                                    "vocabulary [0, %d)", i, b->tokens[k], c->vocab);
        long longest = (long)P + (Cn > Rn ? Cn : Rn);
        if (m->arch.gpt2 && longest > c->max_pos)
            return dp_fail(err, "model_forward: example %d: %ld positions exceed the model's "
                                "n_positions %d", i, longest, c->max_pos);
        offs += P + Cn + Rn;
    }
    if (need > m->opt.max_tokens)
        return dp_fail(err, "model_forward: the batch packs to %ld tokens, more than "
                            "max_tokens %d", need, m->opt.max_tokens);
    int T = 0, R = 0;
    m->n_units = 0;
    const int32_t *ids = b->tokens;
    for (int i = 0; i < b->n; i++) {
        int P = b->n_prompt[i], Cn = b->n_chosen[i], Rn = b->n_rejected[i];
        if (share) {
            /* [P | C | R]: C continues P; R sees P and earlier R, positions from P. */
            int base = plan_add_causal(m, ids, P + Cn + Rn, &T);
            for (int j = 0; j < Rn; j++) {
                int t = base + P + Cn + j;
                m->pos[t] = P + j;
                m->lo0[t] = base, m->hi0[t] = base + P;
                m->lo1[t] = base + P + Cn, m->hi1[t] = t + 1;
            }
            for (int j = 0; j < Cn; j++, R++)
                m->pred[R] = base + P + j - 1, m->target[R] = ids[P + j];
            for (int j = 0; j < Rn; j++, R++)
                m->pred[R] = j ? base + P + Cn + j - 1 : base + P - 1,
                m->target[R] = ids[P + Cn + j];
        } else {
            int base = plan_add_causal(m, ids, P + Cn, &T);
            for (int j = 0; j < Cn; j++, R++)
                m->pred[R] = base + P + j - 1, m->target[R] = ids[P + j];
            if (Rn) {
                int base2 = plan_add_causal(m, ids, P, &T);
                plan_add_causal(m, ids + P + Cn, Rn, &T);
                m->n_units--; /* P and R are one sequence */
                for (int j = 0; j < Rn; j++) {
                    int t = base2 + P + j;
                    m->pos[t] = P + j, m->lo0[t] = base2, m->hi0[t] = t + 1;
                }
                for (int j = 0; j < Rn; j++, R++)
                    m->pred[R] = base2 + P + j - 1, m->target[R] = ids[P + Cn + j];
            }
        }
        ids += P + Cn + Rn;
    }
    m->unit_start[m->n_units] = T;
    m->T = T;
    m->R = R;
    return 0;
}

/* ---- forward ---- */

void model_norm_forward(const model_arch *a, float *out, float *mean, float *rstd,
                        const float *inp, const float *w, const float *b, int n) {
    if (a->gpt2)
        layer_layernorm_forward(out, mean, rstd, inp, w, b, n, a->C, a->eps);
    else
        model_rmsnorm_rows(a, out, rstd, inp, w, n, a->C);
}

void model_rmsnorm_rows(const model_arch *a, float *out, float *rstd, const float *inp,
                        const float *w, int n, int width) {
    if (a->gemma)
        layer_rmsnorm1p_forward(out, rstd, inp, w, n, width, a->eps);
    else
        layer_rmsnorm_forward(out, rstd, inp, w, n, width, a->eps);
}

static void rmsnorm_rows_backward(const model_arch *a, float *dinp, float *dw, const float *dout,
                                  const float *inp, const float *w, const float *rstd, int n,
                                  int width) {
    if (a->gemma)
        layer_rmsnorm1p_backward(dinp, dw, dout, inp, w, rstd, n, width);
    else
        layer_rmsnorm_backward(dinp, dw, dout, inp, w, rstd, n, width);
}

static void norm_backward(model *m, float *dinp, float *dw, float *db, const float *dout,
                          const float *inp, const float *w, const float *mean,
                          const float *rstd, int N) {
    if (m->arch.gpt2)
        layer_layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, m->cfg.d_model);
    else
        rmsnorm_rows_backward(&m->arch, dinp, dw, dout, inp, w, rstd, N, m->cfg.d_model);
}

static void add_arrays(float *out, const float *a, const float *b, size_t n) {
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

/* The mask of the planned batch for layer l (its window and score function). */
static layer_attn_mask plan_mask(const model *m, int l) {
    return (layer_attn_mask){.T = m->T, .n_units = m->n_units, .lo0 = m->lo0, .hi0 = m->hi0,
                             .lo1 = m->lo1, .hi1 = m->hi1, .pos = m->pos,
                             .unit_start = m->unit_start,
                             .window = model_layer_window(&m->cfg, l),
                             .scale = m->arch.score_scale, .softcap = m->cfg.attn_softcap};
}

/* The largest position of the planned batch, plus one (longrope's choice). */
static int plan_seq_len(const model *m) {
    int mx = 0;
    for (int t = 0; t < m->T; t++) mx = m->pos[t] + 1 > mx ? m->pos[t] + 1 : mx;
    return mx;
}

/* Another model may have changed the global thread counts since. */
static void use_threads(const model *m) {
    if (omp_get_max_threads() != m->threads) model_set_threads(m->threads);
}

void model_qkv_forward(const model_arch *a, const model_layer_weights *w, const float *inv_freq,
                       const int *pos, const float *x, const model_qkv *o, int n) {
    int C = a->C, H = a->H, KV = a->KV, D = a->D, lay = a->layout;
    float *ql = a->qk_norm ? o->q_lin : o->q, *kl = a->qk_norm ? o->k_lin : o->k;
    layer_linear_forward(ql, x, w->q_w, a->ldq, lay, w->q_b, n, C, H * D);
    layer_linear_forward(kl, x, w->k_w, a->ldkv, lay, w->k_b, n, C, KV * D);
    layer_linear_forward(o->v, x, w->v_w, a->ldkv, lay, w->v_b, n, C, KV * D);
    lora_forward(w->lora, w->layer, LORA_VIEW_Q, ql, x, n);
    lora_forward(w->lora, w->layer, LORA_VIEW_K, kl, x, n);
    lora_forward(w->lora, w->layer, LORA_VIEW_V, o->v, x, n);
    if (a->qk_norm) {
        model_rmsnorm_rows(a, o->q, o->q_rstd, o->q_lin, w->q_norm, n * H, D);
        model_rmsnorm_rows(a, o->k, o->k_rstd, o->k_lin, w->k_norm, n * KV, D);
    }
    if (!a->gpt2) {
        layer_rope_forward_ext(o->q, o->q, pos, inv_freq, n, H, D, a->rope_dim, a->rope_mscale);
        layer_rope_forward_ext(o->k, o->k, pos, inv_freq, n, KV, D, a->rope_dim, a->rope_mscale);
    }
}

void model_o_forward(const model_arch *a, const model_layer_weights *w, const float *att,
                     float *out, float *raw, float *rstd, int n) {
    float *o = a->post_norms ? raw : out;
    layer_linear_forward(o, att, w->o_w, a->ldo, a->layout, w->o_b, n, a->H * a->D, a->C);
    lora_forward(w->lora, w->layer, LORA_VIEW_O, o, att, n);
    if (a->post_norms) model_rmsnorm_rows(a, out, rstd, raw, w->post_attn_w, n, a->C);
}

void model_act_forward(const model_arch *a, float *act, const float *fc, const float *up,
                       size_t n) {
    if (a->gpt2)
        layer_gelu_forward(act, fc, n);
    else if (a->gemma)
        layer_geglu_forward(act, fc, up, n);
    else
        layer_swiglu_forward(act, fc, up, n);
}

void model_mlp_forward(const model_arch *a, const model_layer_weights *w, const float *x,
                       float *fc, float *up, float *act, float *out, float *raw, float *rstd,
                       int n) {
    int C = a->C, F = a->F, lay = a->layout;
    layer_linear_forward(fc, x, w->fc_w, a->ldfc, lay, w->fc_b, n, C, F);
    lora_forward(w->lora, w->layer, LORA_VIEW_GATE, fc, x, n);
    if (!a->gpt2) {
        layer_linear_forward(up, x, w->up_w, a->ldfc, lay, w->up_b, n, C, F);
        lora_forward(w->lora, w->layer, LORA_VIEW_UP, up, x, n);
    }
    if (!out) return;
    model_act_forward(a, act, fc, up, (size_t)n * F);
    float *o = a->post_norms ? raw : out;
    layer_linear_forward(o, act, w->down_w, a->lddown, lay, w->down_b, n, F, C);
    lora_forward(w->lora, w->layer, LORA_VIEW_DOWN, o, act, n);
    if (a->post_norms) model_rmsnorm_rows(a, out, rstd, raw, w->post_ff_w, n, C);
}

/* Runs layer l over the planned batch: res_next[T, C] = the layer applied
 * to res, its activations into *a. With res_next == NULL it stops once
 * backward has all it needs (fc, up; with post norms the MLP's output):
 * recompute's replay of the layer. */
static void forward_layer(model *m, int l, layer_acts *a, const float *res, float *res_next,
                          int seq_len) {
    const model_arch *A = &m->arch;
    const model_layer_weights *w = &m->w.layer[l];
    int T = m->T, H = A->H, KV = A->KV, D = A->D;
    size_t TC = (size_t)T * A->C;
    layer_attn_mask mask = plan_mask(m, l);
    model_norm_forward(A, a->ln1, a->ln1_mean, a->ln1_rstd, res, w->ln1_w, w->ln1_b, T);
    model_qkv forms = {a->q, a->k, a->v, a->q_lin, a->k_lin, a->q_rstd, a->k_rstd};
    model_qkv_forward(A, w, model_layer_inv_freq(m, l, seq_len), m->pos, a->ln1, &forms, T);
    layer_attention_forward(a->att, a->lse, a->q, H * D, a->k, KV * D, a->v, KV * D, &mask, H,
                            KV, D, m->attn_scratch);
    model_o_forward(A, w, a->att, m->proj, a->attn_raw, a->attn_rstd, T);
    add_arrays(a->res_mid, res, m->proj, TC);
    model_norm_forward(A, a->ln2, a->ln2_mean, a->ln2_rstd, a->res_mid, w->ln2_w, w->ln2_b, T);
    int whole = res_next || A->post_norms; /* down's output is wanted */
    if (m->opt.training || T <= MLP_ROWS) {
        model_mlp_forward(A, w, a->ln2, a->fc, a->up, a->act, whole ? m->proj : NULL, a->mlp_raw,
                          a->mlp_rstd, T);
    } else { /* row blocks: the [T, d_ff] buffers would dominate a forward's memory */
        for (int r0 = 0; r0 < T; r0 += MLP_ROWS) {
            int n = T - r0 < MLP_ROWS ? T - r0 : MLP_ROWS;
            size_t off = (size_t)r0 * A->C;
            model_mlp_forward(A, w, a->ln2 + off, a->fc, a->up, a->act, m->proj + off,
                              a->mlp_raw ? a->mlp_raw + off : NULL,
                              a->mlp_rstd ? a->mlp_rstd + r0 : NULL, n);
        }
    }
    if (res_next) add_arrays(res_next, a->res_mid, m->proj, TC);
}

/* Gemma: x ← x · √C (the constant in float32), in place over T rows. */
static void scale_embeddings(const model *m, float *x, int T) {
    float s = m->arch.embed_scale;
    if (s == 1.0f) return;
    size_t n = (size_t)T * m->cfg.d_model;
#pragma omp parallel for if (n > 65536)
    for (size_t i = 0; i < n; i++) x[i] *= s;
}

void model_embed(model *m, float *out, const int32_t *tok, const int *pos, int T) {
    int C = m->cfg.d_model;
    if (!m->wte_half) {
        layer_embedding_forward(out, tok, pos, m->w.wte, m->w.wpe, T, C);
        scale_embeddings(m, out, T);
        return;
    }
#pragma omp parallel for if (T > 64)
    for (int t = 0; t < T; t++) {
        float *o = out + (size_t)t * C;
        layer_widen(o, m->wte_half + (size_t)tok[t] * C, m->wte_bf16, (size_t)C);
        if (m->w.wpe)
            for (int c = 0; c < C; c++) o[c] += m->w.wpe[(size_t)pos[t] * C + c];
    }
    scale_embeddings(m, out, T);
}

const layer_head *model_head(const model *m) { return &m->head; }

/* Streaming: the head's pages go back once a pass over it is done. */
static void head_done(model *m) {
    if (m->streaming && m->head.half)
        frozen_drop_pages(m->head.half, (size_t)m->cfg.vocab * m->cfg.d_model * sizeof(uint16_t));
}

/* Plans the batch and runs embedding and every layer: the last residual
 * stream is left in m->res[L] (or its alternate when !training). */
static const float *run_layers(model *m, const model_batch *b, dp_err *err) {
    m->have_forward = 0;
    use_threads(m);
    if (build_plan(m, b, err)) return NULL;
    int L = m->cfg.n_layer, train = m->opt.training;
    m->seq_len = plan_seq_len(m);
    model_embed(m, m->res[0], m->tok, m->pos, m->T);
    for (int l = 0; l < L; l++) {
        model_layer_ready(m, l);
        layer_acts *a = &m->la[train && !m->opt.recompute ? l : 0];
        float *res = m->res[train ? l : l % 2], *res_next = m->res[train ? l + 1 : (l + 1) % 2];
        forward_layer(m, l, a, res, res_next, m->seq_len);
    }
    return m->res[train ? L : L % 2];
}

int model_forward(model *m, const model_batch *b, float *logps, float *mean_logits,
                  dp_err *err) {
    const float *res_L = run_layers(m, b, err);
    if (!res_L) return -1;
    const model_config *c = &m->cfg;
    int C = c->d_model;
    /* Only the rows that predict a response token go through the head. */
    for (int r = 0; r < m->R; r++)
        memcpy(m->hR_in + (size_t)r * C, res_L + (size_t)m->pred[r] * C, (size_t)C * sizeof(float));
    model_norm_forward(&m->arch, m->hR, m->lnf_mean, m->lnf_rstd, m->hR_in, m->w.lnf_w,
                       m->w.lnf_b, m->R);
    layer_logprob_forward_head(logps, mean_logits, m->out_lse, m->hR, &m->head, m->target, m->R,
                               C, c->vocab, m->logit_scratch, m->chunk_rows);
    head_done(m);
    m->have_forward = 1;
    return 0;
}

int model_packed_tokens(const model *m) { return m->have_forward ? m->T : 0; }

int model_next_logits(model *m, const int32_t *tokens, int n, float *logits, dp_err *err) {
    int zero = 0;
    model_batch b = {1, tokens, &n, &zero, &zero};
    const float *res_L = run_layers(m, &b, err);
    if (!res_L) return -1;
    int C = m->cfg.d_model;
    model_norm_forward(&m->arch, m->hR, m->lnf_mean, m->lnf_rstd, res_L + (size_t)(n - 1) * C,
                       m->w.lnf_w, m->w.lnf_b, 1);
    layer_head_gemv(logits, &m->head, m->hR, C, m->cfg.vocab);
    head_done(m);
    m->have_forward = 0; /* nothing for backward to go through */
    return 0;
}

/* ---- backward ---- */

static void zero(float *p, size_t n) { memset(p, 0, n * sizeof *p); }

int model_backward(model *m, const float *dlogps, dp_err *err) {
    if (!m->opt.training)
        return dp_fail(err, "model_backward: the model was not built for training");
    if (!m->have_forward) return dp_fail(err, "model_backward: no forward pass to go back through");
    use_threads(m);
    const model_config *c = &m->cfg;
    const model_arch *A = &m->arch;
    int T = m->T, R = m->R, C = A->C, F = A->F, H = A->H, KV = A->KV, D = A->D, L = c->n_layer,
        lay = A->layout, gpt2 = A->gpt2, post = A->post_norms;
    size_t TC = (size_t)T * C;

    zero(m->dhR, (size_t)R * C);
    layer_logprob_backward_head(m->dhR, m->g.lm_head, dlogps, m->hR, &m->head, m->target,
                                m->out_lse, R, C, c->vocab, m->logit_scratch, m->chunk_rows, 1);
    head_done(m);
    zero(m->dhR_in, (size_t)R * C);
    norm_backward(m, m->dhR_in, m->g.lnf_w, m->g.lnf_b, m->dhR, m->hR_in, m->w.lnf_w,
                  m->lnf_mean, m->lnf_rstd, R);
    zero(m->dres, TC);
    for (int r = 0; r < R; r++) { /* serial: a prompt's last row predicts both sides */
        float *d = m->dres + (size_t)m->pred[r] * C;
        const float *s = m->dhR_in + (size_t)r * C;
        for (int k = 0; k < C; k++) d[k] += s[k];
    }
    for (int l = L - 1; l >= 0; l--) {
        const model_layer_weights *w = &m->w.layer[l];
        model_layer_weights *g = &m->g.layer[l];
        layer_acts *a = &m->la[m->opt.recompute ? 0 : l];
        layer_attn_mask mask = plan_mask(m, l);
        const float *inv_freq = model_layer_inv_freq(m, l, m->seq_len);
        model_layer_ready(m, l); /* before w's fields are read */
        /* Recompute: the one slot still holds the top layer from forward. */
        if (m->opt.recompute && l < L - 1) forward_layer(m, l, a, m->res[l], NULL, m->seq_len);
        /* MLP: res_next = res_mid + down(act(ln2)) (with post norms,
         * res_mid + post_ff(down(...))); ln2 and act first come back into
         * their shared buffers. */
        model_norm_forward(A, a->ln2, a->ln2_mean, a->ln2_rstd, a->res_mid, w->ln2_w, w->ln2_b, T);
        model_act_forward(A, a->act, a->fc, a->up, (size_t)T * F);
        const float *dmlp = m->dres;
        if (post) {
            zero(m->dpost, TC);
            rmsnorm_rows_backward(A, m->dpost, g->post_ff_w, m->dres, a->mlp_raw, w->post_ff_w,
                                  a->mlp_rstd, T, C);
            dmlp = m->dpost;
        }
        zero(m->dact, (size_t)T * F);
        layer_linear_backward(m->dact, g->down_w, g->down_b, dmlp, a->act, w->down_w,
                              A->lddown, lay, T, F, C);
        lora_backward(m->lora, l, LORA_VIEW_DOWN, m->dact, dmlp, a->act, T);
        zero(m->dfc, (size_t)T * F);
        zero(m->dln, TC);
        if (gpt2) {
            layer_gelu_backward(m->dfc, a->fc, m->dact, (size_t)T * F);
        } else {
            zero(m->dup, (size_t)T * F);
            if (A->gemma)
                layer_geglu_backward(m->dfc, m->dup, m->dact, a->fc, a->up, (size_t)T * F);
            else
                layer_swiglu_backward(m->dfc, m->dup, m->dact, a->fc, a->up, (size_t)T * F);
            layer_linear_backward(m->dln, g->up_w, g->up_b, m->dup, a->ln2, w->up_w, A->ldfc,
                                  lay, T, C, F);
            lora_backward(m->lora, l, LORA_VIEW_UP, m->dln, m->dup, a->ln2, T);
        }
        layer_linear_backward(m->dln, g->fc_w, g->fc_b, m->dfc, a->ln2, w->fc_w, A->ldfc, lay,
                              T, C, F);
        lora_backward(m->lora, l, LORA_VIEW_GATE, m->dln, m->dfc, a->ln2, T);
        norm_backward(m, m->dres, g->ln2_w, g->ln2_b, m->dln, a->res_mid, w->ln2_w, a->ln2_mean,
                      a->ln2_rstd, T);
        /* attention: res_mid = res + o(att(q, k, v)) (post norms: + post_attn(o(...))) */
        const float *dout = m->dres;
        if (post) {
            zero(m->dpost, TC);
            rmsnorm_rows_backward(A, m->dpost, g->post_attn_w, m->dres, a->attn_raw,
                                  w->post_attn_w, a->attn_rstd, T, C);
            dout = m->dpost;
        }
        zero(m->datt, (size_t)T * H * D);
        layer_linear_backward(m->datt, g->o_w, g->o_b, dout, a->att, w->o_w, A->ldo, lay,
                              T, H * D, C);
        lora_backward(m->lora, l, LORA_VIEW_O, m->datt, dout, a->att, T);
        zero(m->dq, (size_t)T * H * D);
        zero(m->dk, (size_t)T * KV * D);
        zero(m->dv, (size_t)T * KV * D);
        layer_attention_backward(m->dq, m->dk, m->dv, m->datt, a->att, a->lse, a->q, H * D, a->k,
                                 KV * D, a->v, KV * D, &mask, H, KV, D, m->attn_scratch);
        float *dq = m->dq, *dk = m->dk;
        if (!gpt2) {
            zero(m->dq2, (size_t)T * H * D);
            zero(m->dk2, (size_t)T * KV * D);
            layer_rope_backward_ext(m->dq2, dq, m->pos, inv_freq, T, H, D, A->rope_dim,
                                    A->rope_mscale);
            layer_rope_backward_ext(m->dk2, dk, m->pos, inv_freq, T, KV, D, A->rope_dim,
                                    A->rope_mscale);
            dq = m->dq2, dk = m->dk2;
        }
        if (A->qk_norm) {
            zero(m->dq, (size_t)T * H * D);
            zero(m->dk, (size_t)T * KV * D);
            rmsnorm_rows_backward(A, m->dq, g->q_norm, dq, a->q_lin, w->q_norm, a->q_rstd, T * H,
                                  D);
            rmsnorm_rows_backward(A, m->dk, g->k_norm, dk, a->k_lin, w->k_norm, a->k_rstd,
                                  T * KV, D);
            dq = m->dq, dk = m->dk;
        }
        /* Below layer 0 only the embeddings' gradients remain: a frozen
         * base needs no input gradient there. */
        float *dln = l > 0 || m->grads ? m->dln : NULL;
        zero(m->dln, TC);
        model_norm_forward(A, a->ln1, a->ln1_mean, a->ln1_rstd, m->res[l], w->ln1_w, w->ln1_b, T);
        layer_linear_backward(dln, g->q_w, g->q_b, dq, a->ln1, w->q_w, A->ldq, lay, T, C,
                              H * D);
        layer_linear_backward(dln, g->k_w, g->k_b, dk, a->ln1, w->k_w, A->ldkv, lay, T, C,
                              KV * D);
        layer_linear_backward(dln, g->v_w, g->v_b, m->dv, a->ln1, w->v_w, A->ldkv, lay, T,
                              C, KV * D);
        lora_backward(m->lora, l, LORA_VIEW_Q, dln, dq, a->ln1, T);
        lora_backward(m->lora, l, LORA_VIEW_K, dln, dk, a->ln1, T);
        lora_backward(m->lora, l, LORA_VIEW_V, dln, m->dv, a->ln1, T);
        if (dln)
            norm_backward(m, m->dres, g->ln1_w, g->ln1_b, m->dln, m->res[l], w->ln1_w,
                          a->ln1_mean, a->ln1_rstd, T);
    }
    if (m->grads) {
        scale_embeddings(m, m->dres, T); /* d(wte row) = √C · d(embedding) */
        layer_embedding_backward(m->g.wte, m->g.wpe, m->dres, m->tok, m->pos, T, C);
    }
    return 0;
}

/* ---- memory estimate ---- */

/* Counts the parameters a config registers: all, layer 0's matrices, and
 * the embeddings with an untied head. */
typedef struct param_count {
    const model_weights *w;
    size_t all, layer_matrices, embed;
} param_count;

static void count_param(void *ctx, float **wf, float **gf, int ndim, int64_t d0, int64_t d1,
                        const char *fmt, int layer) {
    (void)gf;
    param_count *pc = ctx;
    size_t n = (size_t)d0 * (ndim > 1 ? (size_t)d1 : 1);
    pc->all += n;
    if (ndim == 2 && layer == 0 && strstr(fmt, "%d")) pc->layer_matrices += n;
    if (wf == &pc->w->wte || wf == &pc->w->lm_head) pc->embed += n;
}

model_memory model_memory_estimate(const model_config *c, int tokens) {
    model_memory mm = {0};
    model_layer_weights *layers = calloc((size_t)c->n_layer, sizeof *layers),
                        *glayers = calloc((size_t)c->n_layer, sizeof *glayers);
    model_weights w = {.layer = layers}, g = {.layer = glayers};
    param_count pc = {.w = &w};
    if (layers && glayers) model_family_register(c, &w, &g, count_param, &pc);
    free(layers);
    free(glayers);
    size_t n = pc.all;
    mm.n_params = n;
    mm.layer_matrix_params = pc.layer_matrices;
    mm.embed_params = pc.embed;
    mm.weights = n * sizeof(float);
    mm.grads = n * sizeof(float);
    mm.adam = 2 * n * sizeof(float);
    /* The activation buffers model_new allocates for training. */
    model probe = {.cfg = *c, .opt = {.training = 1, .max_tokens = tokens > 0 ? tokens : 1}};
    model_arch_init(&probe.arch, c);
    probe.chunk_rows = chunk_rows_for(c->vocab, probe.opt.max_tokens);
    mm.activations = carve_acts(&probe, NULL) * sizeof(float);
    probe.opt.recompute = 1;
    mm.activations_recompute = carve_acts(&probe, NULL) * sizeof(float);
    probe.opt.training = 0;
    mm.activations_inference = carve_acts(&probe, NULL) * sizeof(float);
    return mm;
}
