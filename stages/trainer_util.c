/* trainer_util — see trainer_util.h. */
#include "trainer_util.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stage_util.h"

void tu_optim_config(const config *c, const char *section, long total_steps, optim_config *oc) {
    char key[128];
    optim_config_default(oc);
    oc->kind = OPTIM_ADAMW;
    snprintf(key, sizeof key, "%s.learning_rate", section);
    oc->lr = cfg_num(c, key);
    snprintf(key, sizeof key, "%s.weight_decay", section);
    oc->weight_decay = cfg_num(c, key);
    snprintf(key, sizeof key, "%s.lr_schedule", section);
    const char *sched = cfg_str(c, key);
    oc->schedule = !strcmp(sched, "constant") ? SCHED_CONSTANT
                   : !strcmp(sched, "cosine") ? SCHED_COSINE : SCHED_LINEAR;
    snprintf(key, sizeof key, "%s.warmup_steps", section);
    oc->warmup_steps = cfg_int(c, key);
    oc->total_steps = total_steps;
}

int tu_exclude_norms_and_biases(optim *o, const model *m, dp_err *err) {
    for (int i = 0; i < model_n_tensors(m); i++) {
        const model_tensor *mt = model_tensor_at(m, i);
        if (strstr(mt->name, "bias") || strstr(mt->name, "norm") || strstr(mt->name, "ln_"))
            if (optim_exclude_from_decay(o, mt->offset, mt->numel, err)) return -1;
    }
    return 0;
}

int tu_lora_options(const config *c, const char *section, const char *config_json,
                    uint64_t seed, model_lora_options *o, dp_err *err) {
    char key[128];
    memset(o, 0, sizeof *o);
    snprintf(key, sizeof key, "%s.lora.r", section);
    o->r = (int)cfg_int(c, key);
    if (!o->r) return 0;
    model_config mc;
    if (model_read_config(&mc, config_json, err)) return -1;
    snprintf(key, sizeof key, "%s.lora.alpha", section);
    o->alpha = (float)cfg_num(c, key);
    snprintf(key, sizeof key, "%s.lora.dropout", section);
    o->dropout = (float)cfg_num(c, key);
    snprintf(key, sizeof key, "%s.lora.use_rslora", section);
    o->use_rslora = cfg_bool(c, key);
    o->seed = seed;
    snprintf(key, sizeof key, "%s.lora.target_modules", section);
    int n = cfg_list_len(c, key);
    const char *names[32];
    if (n > 32) n = 32;
    for (int i = 0; i < n; i++) names[i] = cfg_list_str(c, key, i);
    if (model_lora_parse_targets(mc.model_type, names, n, &o->targets, err))
        return dp_context(err, "%s.lora", section);
    return 0;
}

int tu_load_policy(model **out, const char *init, const char *init_config, uint64_t seed,
                   const char *ckpt, const model_options *mo, dp_err *err) {
    int lora = mo->lora.r > 0;
    if (ckpt) {
        char probe[4300];
        snprintf(probe, sizeof probe, "%s/adapter_config.json", ckpt);
        int has_adapter = access(probe, F_OK) == 0;
        if (has_adapter != lora)
            return dp_fail(err, "%s: the checkpoint holds %s, but this config trains %s (use "
                                "another output directory or resume=never)",
                           ckpt, has_adapter ? "LoRA adapters" : "a full model",
                           lora ? "LoRA adapters" : "the full model");
    }
    int rc;
    if (ckpt && !lora) rc = model_load(out, ckpt, mo, err);
    else if (init) rc = model_load(out, init, mo, err);
    else rc = model_init_random(out, init_config, seed, mo, err);
    if (rc) return -1;
    if (ckpt && lora && model_lora_load(*out, ckpt, err)) {
        model_free(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

int tu_plan_budget(const config *c, const char *section, const char *init, int *grad_accum,
                   int batch, long unit, model_options *mo, int *stream, dp_err *err) {
    char path[4200], limit_name[200];
    snprintf(path, sizeof path, "%s/config.json", init);
    model_config mc;
    int wb;
    size_t limit;
    *stream = 0;
    if (model_read_config(&mc, path, err) || model_weight_bytes(init, &wb, err)) return -1;
    model_job job = mo->lora.r > 0 ? MODEL_JOB_LORA : MODEL_JOB_TRAIN;
    model_plan p = model_plan_estimate(&mc, job, wb, mo->max_tokens, 0, mo->recompute, mo->lora.r,
                                       mo->lora.targets);
    if (su_memory_limit(c, p.total, &limit, limit_name, sizeof limit_name, err)) return -1;
    if (!limit) return 0;
    int rc = -1;
    for (int a = *grad_accum; a <= batch && rc; a++) {
        if (batch % a) continue;
        int tokens = (int)((long)(batch / a) * unit);
        rc = model_plan_fit(&p, &mc, job, wb, tokens, tokens, mo->recompute, limit, mo->lora.r,
                            mo->lora.targets, err);
        if (!rc) *grad_accum = a;
    }
    if (rc) return -1; /* the error of the smallest micro-batch, one pair */
    char line[400];
    model_plan_describe(&p, line, sizeof line);
    su_log("%s: memory plan for %s: %s; grad_accum %d", section, limit_name, line, *grad_accum);
    mo->max_tokens = p.tokens;
    mo->recompute = p.recompute;
    *stream = p.stream;
    return 0;
}

int tu_export(model *m, const char *out_dir, const char *base_name, int merge, int bf16,
              const char *tok_dir, dp_err *err) {
    char dir[4200];
    if (model_lora(m)) {
        snprintf(dir, sizeof dir, "%s/adapter", out_dir);
        if (su_mkdirs(dir, err) || model_lora_save(m, dir, base_name, err)) return -1;
        if (!merge) return 0;
        if (model_lora_merge(m, err)) return -1;
    }
    snprintf(dir, sizeof dir, "%s/model", out_dir);
    if (su_mkdirs(dir, err)) return -1;
    if (model_save(m, dir, bf16, err)) return -1;
    return su_copy_tokenizer_files(tok_dir, dir, err);
}

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void tu_epoch_order(size_t *order, size_t n, int shuffle, uint64_t seed, long epoch) {
    for (size_t i = 0; i < n; i++) order[i] = i;
    if (!shuffle) return;
    uint64_t s = seed * 0x100000001B3ull + (uint64_t)epoch;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(splitmix64(&s) % i);
        size_t tmp = order[i - 1];
        order[i - 1] = order[j];
        order[j] = tmp;
    }
}

char *tu_step_timing(char *buf, size_t cap, double start, long step, long first_step, long total) {
    return log_format_elapsed_eta(buf, cap, su_now() - start, step - first_step, total - first_step);
}

void tu_log_summary(const char *label, long steps, long items, const char *item_name, long tokens,
                    double secs, const char *out_dir) {
    su_log("%s: %ld steps (%ld %s, %ld tokens) in %.1f s, %.0f tokens/s, peak memory %s; model in "
           "%s/model",
           label, steps, items, item_name, tokens, secs, secs > 0 ? (double)tokens / secs : 0.0,
           su_bytes((double)log_peak_rss_bytes()), out_dir);
}

int tu_write_file_sync(const char *path, const void *data, size_t n, dp_err *err) {
    FILE *f = fopen(path, "wb");
    if (!f) return dp_fail(err, "%s: cannot create: %s", path, strerror(errno));
    int bad = fwrite(data, 1, n, f) != n || fflush(f) || fsync(fileno(f));
    bad |= fclose(f) != 0;
    if (bad) return dp_fail(err, "%s: write error: %s", path, strerror(errno));
    return 0;
}

/* The checkpoint's files into the directory tmp. */
static int checkpoint_write(const char *tmp, model *m, const optim *o, const tu_state *s,
                            const char *tag_key, dp_err *err) {
    char path[4300];
    /* With adapters the base is the run's init: only they are saved. */
    if (model_lora(m) ? model_lora_save(m, tmp, "", err) : model_save(m, tmp, 0, err)) return -1;
    size_t n = optim_state_size(o);
    void *blob = malloc(n);
    if (!blob) return dp_fail(err, "out of memory");
    optim_state_save(o, blob);
    snprintf(path, sizeof path, "%s/optimizer.bin", tmp);
    int rc = tu_write_file_sync(path, blob, n, err);
    free(blob);
    if (rc) return -1;
    char state[512];
    int k = snprintf(state, sizeof state,
                     "{\"step\": %ld, \"epoch\": %ld, \"pos\": %zu, \"num_tokens\": %ld, "
                     "\"%s\": \"%s\"}\n",
                     s->step, s->epoch, s->pos, s->num_tokens, tag_key, s->tag);
    snprintf(path, sizeof path, "%s/state.json", tmp);
    return tu_write_file_sync(path, state, (size_t)k, err);
}

int tu_checkpoint_save(const char *out_dir, model *m, const optim *o, const tu_state *s,
                       const char *tag_key, dp_err *err) {
    char tmp[4200], cur[4200], old[4200];
    snprintf(tmp, sizeof tmp, "%s/checkpoint.tmp", out_dir);
    snprintf(cur, sizeof cur, "%s/checkpoint", out_dir);
    snprintf(old, sizeof old, "%s/checkpoint.old", out_dir);
    if (su_rmtree(tmp, err) || su_mkdirs(tmp, err)) return -1;
    if (checkpoint_write(tmp, m, o, s, tag_key, err)) {
        dp_err ignored; /* the first error is the one to report */
        su_rmtree(tmp, &ignored); /* never leave a partial checkpoint behind */
        return -1;
    }
    /* Swap in: the last good checkpoint stays until the new one is whole. */
    if (su_rmtree(old, err)) return -1;
    if (access(cur, F_OK) == 0 && rename(cur, old))
        return dp_fail(err, "%s: cannot rename: %s", cur, strerror(errno));
    if (rename(tmp, cur)) return dp_fail(err, "%s: cannot rename: %s", tmp, strerror(errno));
    if (su_fsync_dir(out_dir, err)) return -1;
    return su_rmtree(old, err);
}

int tu_checkpoint_find(const char *out_dir, char *dir, size_t size) {
    static const char *const names[] = {"checkpoint", "checkpoint.old"};
    for (int i = 0; i < 2; i++) {
        char state[4300];
        snprintf(dir, size, "%s/%s", out_dir, names[i]);
        snprintf(state, sizeof state, "%s/state.json", dir);
        if (access(state, F_OK) == 0) return 1;
    }
    return 0;
}

static int get_long(json_t *obj, const char *key, long *out) {
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0) return -1;
    *out = (long)json_integer_value(v);
    return 0;
}

int tu_checkpoint_load(const char *dir, const char *tag_key, const char *want_tag,
                       const char *what_to_do, tu_state *s, optim *o, dp_err *err) {
    char path[4300];
    snprintf(path, sizeof path, "%s/state.json", dir);
    char *text = su_read_file(path, 1 << 16, NULL, err);
    if (!text) return -1;
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    free(text);
    long pos = 0;
    memset(s, 0, sizeof *s);
    json_t *tag = root ? json_object_get(root, tag_key) : NULL;
    int ok = root && !get_long(root, "step", &s->step) && !get_long(root, "epoch", &s->epoch) &&
             !get_long(root, "pos", &pos) && !get_long(root, "num_tokens", &s->num_tokens) &&
             json_is_string(tag) && strlen(json_string_value(tag)) < sizeof s->tag;
    if (ok) snprintf(s->tag, sizeof s->tag, "%s", json_string_value(tag));
    json_decref(root);
    if (!ok) return dp_fail(err, "%s: not a dpoc checkpoint state", path);
    s->pos = (size_t)pos;
    if (strcmp(s->tag, want_tag) != 0)
        return dp_fail(err, "%s: checkpoint was trained against %s %s, this config's is %s (%s)",
                       path, tag_key, s->tag, want_tag, what_to_do);
    snprintf(path, sizeof path, "%s/optimizer.bin", dir);
    size_t n;
    char *blob = su_read_file(path, (size_t)-1, &n, err);
    if (!blob) return -1;
    int rc = optim_state_load(o, blob, n, err);
    free(blob);
    if (rc) return dp_context(err, "%s", path);
    return 0;
}
