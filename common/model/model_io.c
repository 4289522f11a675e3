/* model_io — config.json parsing, loading Hugging Face model directories and
 * saving them back (see model.h). Built on the public model API: model_new
 * lays the parameters out, this file fills or writes them by name. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model.h"
#include "model_internal.h" /* frozen_drop_pages */
#include "safetensors.h"

/* ---- config.json ---- */

typedef struct cfg_reader {
    json_t *root;
    const char *where;
    dp_err *err;
} cfg_reader;

/* Integer field; absent or null gives def, or an error when def < -1. */
static int cfg_int(cfg_reader *r, const char *key, int def, int *out) {
    json_t *v = json_object_get(r->root, key);
    if (!v || json_is_null(v)) {
        if (def < -1) return dp_fail(r->err, "%s: %s: expected an integer, found none", r->where, key);
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < -1 || json_integer_value(v) > 1 << 30)
        return dp_fail(r->err, "%s: %s: expected an integer, got a %s", r->where, key,
                       json_is_integer(v) ? "value out of range" : "non-integer");
    *out = (int)json_integer_value(v);
    return 0;
}

static int cfg_pos(cfg_reader *r, const char *key, int def, int *out) {
    if (cfg_int(r, key, def, out)) return -1;
    if (*out < 1) return dp_fail(r->err, "%s: %s: expected a positive integer, got %d", r->where, key, *out);
    return 0;
}

static int cfg_num(cfg_reader *r, json_t *obj, const char *key, double def, float *out) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = (float)def;
        return 0;
    }
    if (!json_is_number(v)) return dp_fail(r->err, "%s: %s: expected a number", r->where, key);
    *out = (float)json_number_value(v);
    return 0;
}

static int cfg_bool(cfg_reader *r, const char *key, int def, int *out) {
    json_t *v = json_object_get(r->root, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_boolean(v)) return dp_fail(r->err, "%s: %s: expected true or false", r->where, key);
    *out = json_is_true(v);
    return 0;
}

/* bos/eos ids: an integer, a list (first element), or absent (-1). */
static int cfg_token_id(json_t *root, const char *key) {
    json_t *v = json_object_get(root, key);
    if (json_is_array(v)) v = json_array_get(v, 0);
    return json_is_integer(v) ? (int)json_integer_value(v) : -1;
}

static const char *cfg_string(json_t *root, const char *key, const char *def) {
    json_t *v = json_object_get(root, key);
    return json_is_string(v) ? json_string_value(v) : def;
}

static int read_rope_scaling(cfg_reader *r, model_config *c) {
    json_t *s = json_object_get(r->root, "rope_scaling");
    c->rope_type = 0;
    if (!s || json_is_null(s)) return 0;
    if (!json_is_object(s)) return dp_fail(r->err, "%s: rope_scaling: expected an object or null", r->where);
    const char *type = cfg_string(s, "rope_type", cfg_string(s, "type", "default"));
    char q[DP_QUOTE_CAP];
    if (!strcmp(type, "default")) return 0;
    if (cfg_num(r, s, "factor", 1.0, &c->rope_factor)) return -1;
    if (!(c->rope_factor > 0))
        return dp_fail(r->err, "%s: rope_scaling.factor: expected > 0, got %g", r->where, (double)c->rope_factor);
    if (!strcmp(type, "linear")) {
        c->rope_type = 1;
        return 0;
    }
    if (strcmp(type, "llama3") != 0)
        return dp_fail(r->err, "%s: rope_scaling: rope type %s is not supported (default, "
                               "linear, llama3 are)", r->where, dp_quote(q, type, (size_t)-1));
    c->rope_type = 2;
    float orig;
    if (cfg_num(r, s, "low_freq_factor", 1.0, &c->rope_low_freq) ||
        cfg_num(r, s, "high_freq_factor", 4.0, &c->rope_high_freq) ||
        cfg_num(r, s, "original_max_position_embeddings", 8192, &orig))
        return -1;
    c->rope_original_max_pos = (int)orig;
    if (!(c->rope_high_freq > c->rope_low_freq) || c->rope_original_max_pos < 1)
        return dp_fail(r->err, "%s: rope_scaling: expected high_freq_factor > low_freq_factor "
                               "and original_max_position_embeddings >= 1", r->where);
    return 0;
}

static int parse_config(model_config *c, cfg_reader *r) {
    memset(c, 0, sizeof *c);
    json_t *root = r->root;
    if (!json_is_object(root)) return dp_fail(r->err, "%s: expected a JSON object", r->where);
    const char *type = cfg_string(root, "model_type", NULL);
    char q[DP_QUOTE_CAP];
    if (!type) return dp_fail(r->err, "%s: model_type: expected a string, found none", r->where);
    if (strlen(type) >= sizeof c->model_type ||
        (strcmp(type, "gpt2") && strcmp(type, "llama") && strcmp(type, "mistral") &&
         strcmp(type, "qwen2") && strcmp(type, "qwen3")))
        return dp_fail(r->err, "%s: model_type %s is not supported (gpt2, llama, mistral, "
                               "qwen2, qwen3 are)", r->where, dp_quote(q, type, (size_t)-1));
    strcpy(c->model_type, type);
    c->bos_id = cfg_token_id(root, "bos_token_id");
    c->eos_id = cfg_token_id(root, "eos_token_id");
    c->rope_theta = 10000.0f;
    if (!strcmp(type, "gpt2")) {
        if (cfg_pos(r, "n_layer", -2, &c->n_layer) || cfg_pos(r, "n_head", -2, &c->n_head) ||
            cfg_pos(r, "n_embd", -2, &c->d_model) || cfg_pos(r, "vocab_size", -2, &c->vocab) ||
            cfg_pos(r, "n_positions", 1024, &c->max_pos) ||
            cfg_pos(r, "n_inner", 4 * c->d_model, &c->d_ff) ||
            cfg_num(r, root, "layer_norm_epsilon", 1e-5, &c->norm_eps) ||
            cfg_bool(r, "tie_word_embeddings", 1, &c->tie_embeddings))
            return -1;
        const char *act = cfg_string(root, "activation_function", "gelu_new");
        if (strcmp(act, "gelu_new") && strcmp(act, "gelu_pytorch_tanh") && strcmp(act, "gelu_fast"))
            return dp_fail(r->err, "%s: activation_function %s is not supported (gelu_new is)",
                           r->where, dp_quote(q, act, (size_t)-1));
        int inv_layer = 0, scale = 1;
        if (cfg_bool(r, "scale_attn_by_inverse_layer_idx", 0, &inv_layer) ||
            cfg_bool(r, "scale_attn_weights", 1, &scale))
            return -1;
        if (inv_layer || !scale)
            return dp_fail(r->err, "%s: scale_attn_by_inverse_layer_idx / scale_attn_weights=false "
                                   "are not supported", r->where);
        if (!c->tie_embeddings)
            return dp_fail(r->err, "%s: tie_word_embeddings: gpt2 with an untied lm_head is not supported",
                           r->where);
        c->n_kv_head = c->n_head;
        if (c->d_model % c->n_head)
            return dp_fail(r->err, "%s: n_embd %d is not a multiple of n_head %d", r->where,
                           c->d_model, c->n_head);
        c->head_dim = c->d_model / c->n_head;
        return 0;
    }
    /* llama, mistral, qwen2, qwen3 */
    if (cfg_pos(r, "num_hidden_layers", -2, &c->n_layer) ||
        cfg_pos(r, "num_attention_heads", -2, &c->n_head) ||
        cfg_pos(r, "hidden_size", -2, &c->d_model) ||
        cfg_pos(r, "intermediate_size", -2, &c->d_ff) ||
        cfg_pos(r, "vocab_size", -2, &c->vocab) ||
        cfg_pos(r, "num_key_value_heads", c->n_head, &c->n_kv_head) ||
        cfg_pos(r, "max_position_embeddings", 2048, &c->max_pos) ||
        cfg_num(r, root, "rms_norm_eps", 1e-6, &c->norm_eps) ||
        cfg_num(r, root, "rope_theta", 10000.0, &c->rope_theta) ||
        cfg_bool(r, "tie_word_embeddings", 0, &c->tie_embeddings) ||
        cfg_bool(r, "attention_bias", 0, &c->attention_bias) ||
        cfg_bool(r, "mlp_bias", 0, &c->mlp_bias))
        return -1;
    int qwen3 = !strcmp(type, "qwen3");
    int default_hd = qwen3 ? 128 : c->d_model / c->n_head;
    if (cfg_pos(r, "head_dim", default_hd, &c->head_dim)) return -1;
    const char *act = cfg_string(root, "hidden_act", "silu");
    if (strcmp(act, "silu") != 0)
        return dp_fail(r->err, "%s: hidden_act %s is not supported (silu is)", r->where,
                       dp_quote(q, act, (size_t)-1));
    if (c->n_head % c->n_kv_head)
        return dp_fail(r->err, "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d",
                       r->where, c->n_head, c->n_kv_head);
    if (c->head_dim % 2)
        return dp_fail(r->err, "%s: head_dim: expected an even number for RoPE, got %d", r->where,
                       c->head_dim);
    if (!(c->rope_theta > 0)) return dp_fail(r->err, "%s: rope_theta: expected > 0", r->where);
    json_t *prf = json_object_get(root, "partial_rotary_factor");
    if (prf && json_is_number(prf) && json_number_value(prf) != 1.0)
        return dp_fail(r->err, "%s: partial_rotary_factor %g is not supported", r->where,
                       json_number_value(prf));
    c->qk_norm = qwen3;
    if (!strcmp(type, "mistral")) {
        if (cfg_int(r, "sliding_window", 0, &c->sliding_window)) return -1;
        if (c->sliding_window < 0) c->sliding_window = 0;
    } else if (!strcmp(type, "qwen2") || qwen3) {
        int use = 0;
        if (cfg_bool(r, "use_sliding_window", 0, &use)) return -1;
        if (use)
            return dp_fail(r->err, "%s: use_sliding_window: Qwen's per-layer sliding window is not "
                                   "supported", r->where);
    }
    return read_rope_scaling(r, c);
}

/* A config.json is a few KiB; reading stops well before a hostile or wrong
 * file (a device, a checkpoint given as the config) exhausts memory. */
#define MODEL_MAX_CONFIG_BYTES ((size_t)16 << 20)

/* Reads a whole text file; *out is owned by the caller. */
static int read_text(const char *file, char **out, dp_err *err) {
    *out = NULL;
    char q[DP_QUOTE_CAP];
    const char *path = dp_label(q, file); /* for messages */
    FILE *f = fopen(file, "rb");
    if (!f) return dp_fail(err, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (size_t k; buf && (k = fread(buf + n, 1, cap - n - 1, f)) > 0;) {
        n += k;
        if (n > MODEL_MAX_CONFIG_BYTES) {
            fclose(f);
            free(buf);
            return dp_fail(err, "%s: larger than %zu bytes, expected a config.json", path,
                           MODEL_MAX_CONFIG_BYTES);
        }
        if (n + 1 == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) free(buf);
            buf = nb;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf) return dp_fail(err, "%s: out of memory reading it", path);
    if (bad) {
        free(buf);
        return dp_fail(err, "%s: read error", path);
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
}

static int is_json_text(const char *s) {
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
    return *s == '{';
}

static int config_from_text(model_config *c, const char *text, const char *file, dp_err *err) {
    char qw[DP_QUOTE_CAP];
    const char *where = dp_label(qw, file); /* for messages */
    json_error_t je;
    json_t *root = json_loads(text, 0, &je);
    char q[DP_QUOTE_CAP];
    if (!root)
        return dp_fail(err, "%s:%d:%d: invalid JSON: %s", where, je.line, je.column,
                       dp_label(q, je.text));
    cfg_reader r = {root, where, err};
    int rc = parse_config(c, &r);
    json_decref(root);
    return rc;
}

int model_read_config(model_config *c, const char *config_json, dp_err *err) {
    if (is_json_text(config_json)) return config_from_text(c, config_json, "config.json", err);
    char *text;
    if (read_text(config_json, &text, err)) return -1;
    int rc = config_from_text(c, text, config_json, err);
    free(text);
    return rc;
}

/* ---- random initialisation ---- */

/* xoshiro256** seeded by splitmix64; normals by Box–Muller. */
typedef struct rng {
    uint64_t s[4];
} rng;
static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static uint64_t rng_next(rng *r) {
    uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0], s[3] ^= s[1], s[1] ^= s[2], s[0] ^= s[3], s[2] ^= t, s[3] = rotl(s[3], 45);
    return out;
}
static double rng_normal(rng *r) {
    double u1 = ((rng_next(r) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = (rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

int model_init_random(model **out, const char *config_json, uint64_t seed,
                      const model_options *opt, dp_err *err) {
    model_config c;
    *out = NULL;
    char *text = NULL;
    if (!is_json_text(config_json) && read_text(config_json, &text, err)) return -1;
    const char *json = text ? text : config_json;
    model *m = NULL;
    int rc = config_from_text(&c, json, text ? config_json : "config.json", err);
    if (!rc) rc = model_new(&m, &c, json, opt, err);
    free(text);
    if (rc) return -1;
    rng r;
    uint64_t z = seed;
    for (int i = 0; i < 4; i++) { /* splitmix64 */
        z += 0x9e3779b97f4a7c15ull;
        uint64_t x = z;
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
        r.s[i] = x ^ (x >> 31);
    }
    double resid = 0.02 / sqrt(2.0 * c.n_layer);
    for (int i = 0; i < model_n_tensors(m); i++) {
        const model_tensor *t = model_tensor_at(m, i);
        float *x = model_params(m, NULL) + t->offset;
        const char *n = t->name;
        size_t len = strlen(n);
        int is_bias = len > 5 && !strcmp(n + len - 5, ".bias");
        int is_norm = strstr(n, "ln_") || strstr(n, "layernorm") || strstr(n, "norm.weight");
        if (is_bias) continue; /* zero */
        if (is_norm) {
            for (size_t k = 0; k < t->numel; k++) x[k] = 1.0f;
            continue;
        }
        int is_resid = strstr(n, "c_proj.weight") || strstr(n, "o_proj.weight") ||
                       strstr(n, "down_proj.weight");
        double sd = is_resid ? resid : 0.02;
        for (size_t k = 0; k < t->numel; k++) x[k] = (float)(sd * rng_normal(&r));
    }
    *out = m;
    return 0;
}

/* ---- loading ---- */

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* The model's name for a file's tensor name (GPT-2 files may omit
 * "transformer."); NULL for buffers that carry no parameters. */
static const model_tensor *match_tensor(const model *m, const char *name, int gpt2) {
    const model_tensor *t = model_find_tensor(m, name);
    if (!t && gpt2 && strncmp(name, "transformer.", 12) != 0) {
        char full[256];
        snprintf(full, sizeof full, "transformer.%s", name);
        t = model_find_tensor(m, full);
    }
    return t;
}

static int ignorable(const model *m, const char *name, int gpt2) {
    if (gpt2 && (ends_with(name, ".attn.bias") || ends_with(name, ".attn.masked_bias"))) return 1;
    if (ends_with(name, "rotary_emb.inv_freq")) return 1;
    /* Some tied checkpoints still carry the (identical) head. */
    return model_get_config(m)->tie_embeddings && !strcmp(name, "lm_head.weight");
}

static void release_set(void *s) { st_close(s); }

/* Index of the first element of x[0..n) that is NaN or infinite, or -1.
 * One pass testing the exponent bits (all ones), in chunks that OpenMP
 * threads share; the lowest bad index wins. About memory speed: GPT-2 124M
 * (0.5 GB of floats) scans in well under a second. */
static int64_t first_nonfinite(const float *x, size_t n) {
    enum { CHUNK = 1 << 16 };
    size_t n_chunks = (n + CHUNK - 1) / CHUNK, first = SIZE_MAX;
#pragma omp parallel for schedule(static) reduction(min : first) if (n_chunks > 16)
    for (size_t c = 0; c < n_chunks; c++) {
        size_t lo = c * CHUNK, hi = lo + CHUNK < n ? lo + CHUNK : n;
        unsigned bad = 0;
        for (size_t i = lo; i < hi; i++) {
            uint32_t u;
            memcpy(&u, x + i, sizeof u);
            bad |= (u & 0x7f800000u) == 0x7f800000u;
        }
        if (!bad) continue;
        for (size_t i = lo; i < hi; i++)
            if (!isfinite(x[i])) {
                if (i < first) first = i;
                break;
            }
    }
    return first == SIZE_MAX ? -1 : (int64_t)first;
}

/* The same for half-precision values (bfloat16 when bf16, else IEEE half):
 * an all-ones exponent field is Inf or NaN. */
static int64_t first_nonfinite_half(const uint16_t *x, size_t n, int bf16) {
    uint16_t mask = bf16 ? 0x7f80 : 0x7c00;
    enum { CHUNK = 1 << 16 };
    size_t n_chunks = (n + CHUNK - 1) / CHUNK, first = SIZE_MAX;
#pragma omp parallel for schedule(static) reduction(min : first) if (n_chunks > 16)
    for (size_t c = 0; c < n_chunks; c++) {
        size_t lo = c * CHUNK, hi = lo + CHUNK < n ? lo + CHUNK : n;
        unsigned bad = 0;
        for (size_t i = lo; i < hi; i++) bad |= (x[i] & mask) == mask;
        if (!bad) continue;
        for (size_t i = lo; i < hi; i++)
            if ((x[i] & mask) == mask) {
                if (i < first) first = i;
                break;
            }
    }
    return first == SIZE_MAX ? -1 : (int64_t)first;
}

static int check_finite_half(const uint16_t *x, size_t n, int bf16, const char *file,
                             const char *name, dp_err *err) {
    int64_t i = first_nonfinite_half(x, n, bf16);
    if (i < 0) return 0;
    char q[DP_QUOTE_CAP], qn[DP_QUOTE_CAP];
    uint16_t frac = x[i] & (bf16 ? 0x007f : 0x03ff), neg = x[i] >> 15;
    return dp_fail(err, "%s: tensor %s: element %lld is %s", dp_label(q, file), dp_label(qn, name),
                   (long long)i, frac ? "NaN" : neg ? "-Inf" : "Inf");
}

/* An error naming FILE, tensor NAME and the first NaN/Inf of x[0..n), if any. */
static int check_finite(const float *x, size_t n, const char *file, const char *name, dp_err *err) {
    int64_t i = first_nonfinite(x, n);
    if (i < 0) return 0;
    char q[DP_QUOTE_CAP], qn[DP_QUOTE_CAP];
    return dp_fail(err, "%s: tensor %s: element %lld is %s", dp_label(q, file),
                   dp_label(qn, name), (long long)i,
                   isnan(x[i]) ? "NaN" : x[i] > 0 ? "Inf" : "-Inf");
}

static void shape_text(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

int model_load(model **out, const char *file, const model_options *opt, dp_err *err) {
    *out = NULL;
    char qd[DP_QUOTE_CAP];
    const char *dir = dp_label(qd, file); /* for messages */
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", file);
    char *text;
    if (read_text(path, &text, err)) return -1;
    model_config c;
    if (config_from_text(&c, text, path, err)) {
        free(text);
        return -1;
    }
    model *m;
    int rc = model_new(&m, &c, text, opt, err);
    free(text);
    if (rc) return -1;
    st_set *s;
    if (st_open(&s, file, err)) {
        model_free(m);
        return -1;
    }
    int gpt2 = !strcmp(c.model_type, "gpt2"), nt = model_n_tensors(m);
    char *seen = calloc((size_t)nt, 1);
    int mapped = 0; /* the set then stays open until model_free */
    float *params = model_params(m, NULL);
    if (!seen) {
        rc = dp_fail(err, "%s: out of memory", dir);
        goto done;
    }
    for (int i = 0; i < st_count(s); i++) {
        const st_tensor *t = st_get(s, i);
        const model_tensor *mt = match_tensor(m, t->name, gpt2);
        if (!mt) {
            if (ignorable(m, t->name, gpt2)) continue;
            char q[DP_QUOTE_CAP];
            rc = dp_fail(err, "%s: tensor %s: not a parameter of a %s model with this config.json",
                         dir, dp_label(q, t->name), c.model_type);
            goto done;
        }
        int ok = t->ndim == mt->ndim && t->shape[0] == mt->shape[0] &&
                 (mt->ndim == 1 || t->shape[1] == mt->shape[1]);
        if (!ok) {
            char want[64], got[160];
            shape_text(want, sizeof want, mt->ndim, mt->shape);
            shape_text(got, sizeof got, t->ndim, t->shape);
            rc = dp_fail(err, "%s: tensor %s: expected shape %s from config.json, found %s", dir,
                         t->name, want, got);
            goto done;
        }
        int idx = (int)(mt - model_tensor_at(m, 0));
        if (seen[idx]) {
            rc = dp_fail(err, "%s: tensor %s: given twice", dir, t->name);
            goto done;
        }
        seen[idx] = 1;
        if (opt->headers_only) {
            int is_float = t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16 ||
                           t->dtype == ST_F64;
            if (!is_float) { /* st_to_f32 names the dtype; it fails before writing */
                rc = st_to_f32(t, NULL, err);
                goto done;
            }
            continue;
        }
        const float *values = params + mt->offset;
        int frozen = !opt->training || opt->lora.r > 0; /* read, never written */
        int half = (t->dtype == ST_BF16 || t->dtype == ST_F16) && !((uintptr_t)t->data & 1);
        dp_err ignored;
        if (frozen && half && !opt->widen_half &&
            !model_attach_half(m, idx, t->data, t->dtype == ST_BF16, &ignored)) {
            /* kept in the file's dtype; the matrices that cannot be (norms,
             * biases, positions) are converted below */
            mapped = 1;
            if ((rc = check_finite_half(t->data, mt->numel, t->dtype == ST_BF16,
                                        st_tensor_file(s, t), t->name, err)))
                goto done;
            /* the scan read every page; only what the passes use stays */
            frozen_drop_pages(t->data, t->nbytes);
            continue;
        }
        if (frozen && t->dtype == ST_F32 && !((uintptr_t)t->data & 3)) {
            if ((rc = model_attach_tensor(m, idx, t->data, err))) goto done;
            mapped = 1;
            values = t->data;
        } else if ((rc = st_to_f32(t, params + mt->offset, err))) {
            goto done;
        }
        /* A NaN or Inf weight would poison every logit silently. */
        if ((rc = check_finite(values, mt->numel, st_tensor_file(s, t), t->name, err))) goto done;
    }
    for (int i = 0; i < nt; i++)
        if (!seen[i]) {
            rc = dp_fail(err, "%s: tensor %s: missing from the checkpoint", dir,
                         model_tensor_at(m, i)->name);
            goto done;
        }
done:
    free(seen);
    if (rc) {
        model_free(m);
        st_close(s);
        return -1;
    }
    if (mapped)
        model_set_release(m, release_set, s);
    else
        st_close(s);
    *out = m;
    return 0;
}

/* ---- saving ---- */

int model_save(model *m, const char *dir, int bf16, dp_err *err) {
    if (mkdir(dir, 0777) && errno != EEXIST)
        return dp_fail(err, "%s: cannot create directory: %s", dir, strerror(errno));
    json_error_t je;
    json_t *root = json_loads(model_config_text(m), 0, &je);
    if (!root) return dp_fail(err, "%s: model config text is not JSON: %s", dir, je.text);
    json_object_set_new(root, "torch_dtype", json_string(bf16 ? "bfloat16" : "float32"));
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int rc = json_dump_file(root, tmp, JSON_INDENT(2));
    json_decref(root);
    if (rc || rename(tmp, path)) {
        remove(tmp);
        return dp_fail(err, "%s: cannot write: %s", path, strerror(errno));
    }
    int nt = model_n_tensors(m);
    st_write_tensor *ts = dp_calloc((size_t)nt, sizeof *ts, err);
    if (!ts) return -1;
    for (int i = 0; i < nt; i++) {
        const model_tensor *t = model_tensor_at(m, i);
        ts[i].name = t->name;
        ts[i].ndim = t->ndim;
        ts[i].shape[0] = t->shape[0];
        ts[i].shape[1] = t->shape[1];
        ts[i].data = model_tensor_data(m, i);
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    rc = st_write(path, ts, nt, bf16, err);
    free(ts);
    return rc;
}
