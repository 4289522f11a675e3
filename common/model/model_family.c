/* model_family — what differs between the families the engine runs (see
 * model.h): each family's tensors with their Hugging Face names and shapes
 * (the parameter layout), the views into fused matrices, the dimensions and
 * switches of a layer (model_arch), which layers slide and which RoPE
 * frequencies they use, and the minimal config.json of a config. The
 * numerics are in model.c and layers.c; config.json parsing in model_io.c.
 *
 *   gpt2         LayerNorm, learned positions, Conv1D c_attn [C, 3C], GELU
 *   llama        RMSNorm, RoPE, q/k/v/o, SwiGLU gate/up/down (mistral:
 *                sliding window; qwen2: q/k/v biases; qwen3: q/k norms)
 *   gemma        llama's layout; norms 1 + w, embeddings × √C, GeGLU
 *   gemma2       gemma plus post-attention, pre- and post-feed-forward
 *                norms, soft-capped scores and logits, alternating windows
 *   gemma3_text  gemma2 plus q/k norms, local RoPE base on sliding layers
 *   phi3         llama's math over fused qkv_proj and gate_up_proj,
 *                partial rotary, longrope */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

void model_arch_init(model_arch *a, const model_config *c) {
    int C = c->d_model, F = c->d_ff, QD = c->n_head * c->head_dim;
    *a = (model_arch){.gpt2 = !strcmp(c->model_type, "gpt2"), .qk_norm = c->qk_norm, .C = C,
                      .F = F, .H = c->n_head, .KV = c->n_kv_head, .D = c->head_dim,
                      .eps = c->norm_eps, .gemma = c->gemma, .post_norms = c->post_norms,
                      .rope_dim = c->rope_dim > 0 ? c->rope_dim : c->head_dim,
                      .embed_scale = 1.0f, .rope_mscale = model_rope_mscale(c)};
    /* transformers multiplies by the constant √C in the activations' dtype */
    if (c->gemma) a->embed_scale = (float)sqrt((double)C);
    if (c->query_pre_attn_scalar > 0) a->score_scale = (float)(1.0 / sqrt((double)c->query_pre_attn_scalar));
    if (a->gpt2) /* Conv1D [in, out]; q, k, v are column blocks of c_attn [C, 3C] */
        a->layout = LAYER_W_IN_OUT, a->ldq = a->ldkv = 3 * C, a->ldo = C, a->ldfc = F,
        a->lddown = C;
    else
        a->layout = LAYER_W_OUT_IN, a->ldq = a->ldkv = C, a->ldo = QD, a->ldfc = C, a->lddown = F;
}

/* ---- layers ---- */

int model_layer_sliding(const model_config *c, int l) {
    return c->sliding_pattern <= 0 || (l + 1) % c->sliding_pattern != 0;
}

int model_layer_window(const model_config *c, int l) {
    return model_layer_sliding(c, l) ? c->sliding_window : 0;
}

float model_rope_mscale(const model_config *c) {
    return c->rope_type == 3 ? c->rope_attn_factor : 1.0f;
}

/* ---- parameter layout ---- */

void model_family_register(const model_config *c, model_weights *w, model_weights *g,
                           model_reg_fn reg, void *ctx) {
    int C = c->d_model, F = c->d_ff, V = c->vocab, D = c->head_dim;
    int QD = c->n_head * D, KD = c->n_kv_head * D;
    if (!strcmp(c->model_type, "gpt2")) {
        reg(ctx, &w->wte, &g->wte, 2, V, C, "transformer.wte.weight", 0);
        reg(ctx, &w->wpe, &g->wpe, 2, c->max_pos, C, "transformer.wpe.weight", 0);
        for (int l = 0; l < c->n_layer; l++) {
            model_layer_weights *a = &w->layer[l], *b = &g->layer[l];
#define R2(f, d0, d1, n) reg(ctx, &a->f, &b->f, 2, d0, d1, "transformer.h.%d." n, l)
#define R1(f, d0, n) reg(ctx, &a->f, &b->f, 1, d0, 0, "transformer.h.%d." n, l)
            R1(ln1_w, C, "ln_1.weight");
            R1(ln1_b, C, "ln_1.bias");
            R2(qkv_w, C, 3 * C, "attn.c_attn.weight");
            R1(qkv_b, 3 * C, "attn.c_attn.bias");
            R2(o_w, C, C, "attn.c_proj.weight");
            R1(o_b, C, "attn.c_proj.bias");
            R1(ln2_w, C, "ln_2.weight");
            R1(ln2_b, C, "ln_2.bias");
            R2(fc_w, C, F, "mlp.c_fc.weight");
            R1(fc_b, F, "mlp.c_fc.bias");
            R2(down_w, F, C, "mlp.c_proj.weight");
            R1(down_b, C, "mlp.c_proj.bias");
#undef R1
#undef R2
        }
        reg(ctx, &w->lnf_w, &g->lnf_w, 1, C, 0, "transformer.ln_f.weight", 0);
        reg(ctx, &w->lnf_b, &g->lnf_b, 1, C, 0, "transformer.ln_f.bias", 0);
        return;
    }
    /* llama, mistral, qwen2, qwen3, gemma, gemma2, gemma3_text, phi3 */
    int qwen2 = !strcmp(c->model_type, "qwen2");
    int qkv_bias = qwen2 || c->attention_bias, o_bias = !qwen2 && c->attention_bias;
    reg(ctx, &w->wte, &g->wte, 2, V, C, "model.embed_tokens.weight", 0);
    for (int l = 0; l < c->n_layer; l++) {
        model_layer_weights *a = &w->layer[l], *b = &g->layer[l];
#define R2(f, d0, d1, n) reg(ctx, &a->f, &b->f, 2, d0, d1, "model.layers.%d." n, l)
#define R1(f, d0, n) reg(ctx, &a->f, &b->f, 1, d0, 0, "model.layers.%d." n, l)
        R1(ln1_w, C, "input_layernorm.weight");
        if (c->fused) {
            R2(qkv_w, QD + 2 * KD, C, "self_attn.qkv_proj.weight");
        } else {
            R2(q_w, QD, C, "self_attn.q_proj.weight");
            if (qkv_bias) R1(q_b, QD, "self_attn.q_proj.bias");
            R2(k_w, KD, C, "self_attn.k_proj.weight");
            if (qkv_bias) R1(k_b, KD, "self_attn.k_proj.bias");
            R2(v_w, KD, C, "self_attn.v_proj.weight");
            if (qkv_bias) R1(v_b, KD, "self_attn.v_proj.bias");
        }
        R2(o_w, C, QD, "self_attn.o_proj.weight");
        if (o_bias) R1(o_b, C, "self_attn.o_proj.bias");
        if (c->qk_norm) {
            R1(q_norm, D, "self_attn.q_norm.weight");
            R1(k_norm, D, "self_attn.k_norm.weight");
        }
        if (c->post_norms) {
            R1(post_attn_w, C, "post_attention_layernorm.weight");
            R1(ln2_w, C, "pre_feedforward_layernorm.weight");
            R1(post_ff_w, C, "post_feedforward_layernorm.weight");
        } else {
            R1(ln2_w, C, "post_attention_layernorm.weight");
        }
        if (c->fused) {
            R2(gate_up_w, 2 * F, C, "mlp.gate_up_proj.weight");
        } else {
            R2(fc_w, F, C, "mlp.gate_proj.weight");
            if (c->mlp_bias) R1(fc_b, F, "mlp.gate_proj.bias");
            R2(up_w, F, C, "mlp.up_proj.weight");
            if (c->mlp_bias) R1(up_b, F, "mlp.up_proj.bias");
        }
        R2(down_w, C, F, "mlp.down_proj.weight");
        if (c->mlp_bias) R1(down_b, C, "mlp.down_proj.bias");
#undef R1
#undef R2
    }
    reg(ctx, &w->lnf_w, &g->lnf_w, 1, C, 0, "model.norm.weight", 0);
    if (!c->tie_embeddings) reg(ctx, &w->lm_head, &g->lm_head, 2, V, C, "lm_head.weight", 0);
}

void model_family_views(const model_config *c, model_layer_weights *a) {
    if (!strcmp(c->model_type, "gpt2")) { /* column blocks of c_attn [C, 3C] */
        int C = c->d_model;
        a->q_w = a->qkv_w, a->k_w = a->qkv_w ? a->qkv_w + C : NULL;
        a->v_w = a->qkv_w ? a->qkv_w + 2 * C : NULL;
        a->q_b = a->qkv_b, a->k_b = a->qkv_b ? a->qkv_b + C : NULL;
        a->v_b = a->qkv_b ? a->qkv_b + 2 * C : NULL;
    } else if (c->fused) { /* row blocks: qkv_proj = [Q; K; V], gate_up_proj = [gate; up] */
        size_t C = (size_t)c->d_model, QD = (size_t)c->n_head * c->head_dim,
               KD = (size_t)c->n_kv_head * c->head_dim, F = (size_t)c->d_ff;
        a->q_w = a->qkv_w, a->k_w = a->qkv_w ? a->qkv_w + QD * C : NULL;
        a->v_w = a->qkv_w ? a->qkv_w + (QD + KD) * C : NULL;
        a->fc_w = a->gate_up_w, a->up_w = a->gate_up_w ? a->gate_up_w + F * C : NULL;
    }
}

/* ---- a config's minimal config.json ---- */

char *model_family_config_text(const model_config *c) {
    char buf[8192];
    int gpt2 = !strcmp(c->model_type, "gpt2");
    if (gpt2)
        snprintf(buf, sizeof buf,
                 "{\"model_type\": \"gpt2\", \"architectures\": [\"GPT2LMHeadModel\"], "
                 "\"n_layer\": %d, \"n_head\": %d, \"n_embd\": %d, \"n_inner\": %d, "
                 "\"vocab_size\": %d, \"n_positions\": %d, \"layer_norm_epsilon\": %.9g, "
                 "\"activation_function\": \"gelu_new\"}",
                 c->n_layer, c->n_head, c->d_model, c->d_ff, c->vocab, c->max_pos,
                 (double)c->norm_eps);
    else
        snprintf(buf, sizeof buf,
                 "{\"model_type\": \"%s\", \"num_hidden_layers\": %d, \"num_attention_heads\": "
                 "%d, \"num_key_value_heads\": %d, \"head_dim\": %d, \"hidden_size\": %d, "
                 "\"intermediate_size\": %d, \"vocab_size\": %d, \"max_position_embeddings\": "
                 "%d, \"rms_norm_eps\": %.9g, \"rope_theta\": %.9g, \"tie_word_embeddings\": %s, "
                 "\"attention_bias\": %s, \"mlp_bias\": %s, \"hidden_act\": \"%s\"}",
                 c->model_type, c->n_layer, c->n_head, c->n_kv_head, c->head_dim, c->d_model,
                 c->d_ff, c->vocab, c->max_pos, (double)c->norm_eps, (double)c->rope_theta,
                 c->tie_embeddings ? "true" : "false", c->attention_bias ? "true" : "false",
                 c->mlp_bias ? "true" : "false", c->gemma ? "gelu_pytorch_tanh" : "silu");
    size_t k = strlen(buf) - 1, cap = sizeof buf; /* before the closing brace */
#define ADD(...) (k += (size_t)snprintf(buf + k, k < cap ? cap - k : 0, __VA_ARGS__))
    if (!gpt2 && c->rope_type == 1)
        ADD(", \"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": %.9g}",
            (double)c->rope_factor);
    if (!gpt2 && c->rope_type == 2)
        ADD(", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": %.9g, "
            "\"low_freq_factor\": %.9g, \"high_freq_factor\": %.9g, "
            "\"original_max_position_embeddings\": %d}",
            (double)c->rope_factor, (double)c->rope_low_freq, (double)c->rope_high_freq,
            c->rope_original_max_pos);
    if (c->rope_type == 3) {
        int n = (c->rope_dim > 0 ? c->rope_dim : c->head_dim) / 2;
        ADD(", \"original_max_position_embeddings\": %d, \"rope_scaling\": {\"type\": "
            "\"longrope\", \"attention_factor\": %.9g, \"short_factor\": [",
            c->rope_original_max_pos, (double)c->rope_attn_factor);
        for (int i = 0; i < n; i++) ADD("%s%.9g", i ? ", " : "", (double)c->rope_short[i]);
        ADD("], \"long_factor\": [");
        for (int i = 0; i < n; i++) ADD("%s%.9g", i ? ", " : "", (double)c->rope_long[i]);
        ADD("]}");
    }
    if (c->rope_dim > 0 && c->rope_dim != c->head_dim)
        ADD(", \"partial_rotary_factor\": %.17g", (double)c->rope_dim / c->head_dim);
    if (c->sliding_window > 0) ADD(", \"sliding_window\": %d", c->sliding_window);
    else if (c->post_norms) ADD(", \"sliding_window\": null");
    if (c->post_norms) {
        ADD(", \"query_pre_attn_scalar\": %.9g", (double)c->query_pre_attn_scalar);
        if (!strcmp(c->model_type, "gemma2"))
            ADD(c->attn_softcap > 0 ? ", \"attn_logit_softcapping\": %.9g"
                                    : ", \"attn_logit_softcapping\": null",
                (double)c->attn_softcap);
        ADD(c->final_softcap > 0 ? ", \"final_logit_softcapping\": %.9g"
                                 : ", \"final_logit_softcapping\": null",
            (double)c->final_softcap);
    }
    if (c->rope_local_theta > 0)
        ADD(", \"rope_local_base_freq\": %.9g, \"sliding_window_pattern\": %d",
            (double)c->rope_local_theta, c->sliding_pattern);
    if (c->bos_id >= 0) ADD(", \"bos_token_id\": %d", c->bos_id);
    if (c->eos_id >= 0) ADD(", \"eos_token_id\": %d", c->eos_id);
    ADD("}");
#undef ADD
    return k < cap ? strdup(buf) : NULL;
}
