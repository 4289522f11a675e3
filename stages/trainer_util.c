/* trainer_util — see trainer_util.h. */
#include "trainer_util.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dist.h"
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

int tu_exclude_norms_and_biases(optim *o, const model *m, size_t off, dp_err *err) {
    for (int i = 0; i < model_n_tensors(m); i++) {
        const model_tensor *mt = model_tensor_at(m, i);
        if (!strstr(mt->name, "bias") && !strstr(mt->name, "norm") && !strstr(mt->name, "ln_"))
            continue;
        size_t lo = mt->offset > off ? mt->offset : off;
        size_t hi = mt->offset + mt->numel < off + o->n ? mt->offset + mt->numel : off + o->n;
        if (lo < hi && optim_exclude_from_decay(o, lo - off, hi - lo, err)) return -1;
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
    char limit_name[200];
    model_config mc;
    int wb;
    size_t limit;
    *stream = 0;
    if (model_peek(init, &mc, &wb, err)) return -1;
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

/* ---- data parallelism ---- */

int tu_shard_init(tu_shard *s, size_t n, dp_err *err) {
    memset(s, 0, sizeof *s);
    s->rank = dist_rank(), s->size = dist_size(), s->n = n;
    s->counts = malloc((size_t)s->size * sizeof *s->counts);
    if (!s->counts) return dp_fail(err, "out of memory");
    for (int r = 0; r < s->size; r++) {
        s->counts[r] = n / (size_t)s->size + ((size_t)r < n % (size_t)s->size);
        if (r < s->rank) s->off += s->counts[r];
    }
    s->len = s->counts[s->rank];
    if (s->size > 1 && !(s->grad = malloc((s->len ? s->len : 1) * sizeof *s->grad)))
        return dp_fail(err, "out of memory for the reduced gradient slice (%zu floats)", s->len);
    return 0;
}

void tu_shard_free(tu_shard *s) {
    free(s->counts);
    free(s->grad);
    memset(s, 0, sizeof *s);
}

void tu_shard_part(const tu_shard *s, size_t n, size_t *lo, size_t *hi) {
    *lo = n * (size_t)s->rank / (size_t)s->size;
    *hi = n * (size_t)(s->rank + 1) / (size_t)s->size;
}

double tu_shard_reduce(tu_shard *s, float *grads) {
    if (s->size == 1) return optim_grad_norm(grads, s->n);
    dist_reduce_scatter(grads, s->grad, s->counts);
    double sumsq = optim_grad_sumsq(s->grad, s->len);
    dist_allreduce_sum(&sumsq, 1);
    return sqrt(sumsq);
}

double tu_shard_update(tu_shard *s, optim *o, float *params, float *grads, double norm,
                       double max_norm) {
    if (s->size == 1) {
        optim_clip_to(grads, s->n, max_norm, norm);
        return optim_step(o, params, grads);
    }
    optim_clip_to(s->grad, s->len, max_norm, norm);
    double lr = optim_step(o, params + s->off, s->grad);
    dist_allgather(params, s->counts);
    return lr;
}

void tu_shard_bcast_params(const tu_shard *s, float *params) {
    if (s->size > 1) dist_bcast(params, s->n * sizeof *params, 0);
}

/* Optimizer slices travel in pieces of PIECE floats through one buffer on
 * rank 0, sender and receiver cutting alike. */
#define PIECE ((size_t)1 << 18)
static float piece_buf[PIECE];

/* Array A (0: m, 1: v) of the optimizer state. */
static float *state_array(const optim *o, int a) { return a == 0 ? o->m : o->v; }

/* Rank 0: OUT/optimizer.bin from every rank's slice (PATH NULL after an
 * earlier error: the slices are received and dropped, so no rank waits
 * forever). Other ranks: send their slices. */
static int optimizer_stream_out(const char *path, const optim *o, const tu_shard *sh,
                                dp_err *err) {
    int arrays = optim_state_arrays(&o->cfg);
    if (sh->rank != 0) {
        for (int a = 0; a < arrays; a++)
            for (size_t k = 0; k < sh->len; k += PIECE)
                dist_send(state_array(o, a) + k,
                          (sh->len - k < PIECE ? sh->len - k : PIECE) * sizeof(float), 0);
        return 0;
    }
    FILE *f = path ? fopen(path, "wb") : NULL;
    int rc = path && !f ? dp_fail(err, "%s: cannot create: %s", path, strerror(errno)) : 0;
    unsigned char hdr[OPTIM_STATE_HEADER];
    optim_state_header(&o->cfg, sh->n, o->step, hdr);
    int bad = f && fwrite(hdr, 1, sizeof hdr, f) != sizeof hdr;
    for (int a = 0; a < arrays; a++) {
        if (f && !bad) bad = fwrite(state_array(o, a), sizeof(float), sh->len, f) != sh->len;
        for (int r = 1; r < sh->size; r++)
            for (size_t k = 0; k < sh->counts[r]; k += PIECE) {
                size_t m = sh->counts[r] - k < PIECE ? sh->counts[r] - k : PIECE;
                dist_recv(piece_buf, m * sizeof(float), r);
                if (f && !bad) bad = fwrite(piece_buf, sizeof(float), m, f) != m;
            }
    }
    if (f) {
        bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
        bad |= fclose(f) != 0;
        if (bad && !rc) rc = dp_fail(err, "%s: write error: %s", path, strerror(errno));
    }
    return rc;
}

/* The checkpoint's files into the directory tmp, the optimizer's state
 * through optimizer_stream_out when sharded. */
static int checkpoint_write(const char *tmp, model *m, const optim *o, const tu_shard *sh,
                            const tu_state *s, const char *tag_key, dp_err *err) {
    char path[4300];
    /* With adapters the base is the run's init: only they are saved. */
    int rc = model_lora(m) ? model_lora_save(m, tmp, "", err) : model_save(m, tmp, 0, err);
    snprintf(path, sizeof path, "%s/optimizer.bin", tmp);
    if (sh && sh->size > 1) {
        /* the other ranks' slices are taken even after an error */
        dp_err later;
        int rc2 = optimizer_stream_out(rc ? NULL : path, o, sh, rc ? &later : err);
        if (rc || rc2) return -1;
    } else {
        if (rc) return -1;
        size_t n = optim_state_size(o);
        void *blob = malloc(n);
        if (!blob) return dp_fail(err, "out of memory");
        optim_state_save(o, blob);
        rc = tu_write_file_sync(path, blob, n, err);
        free(blob);
        if (rc) return -1;
    }
    char state[512];
    int k = snprintf(state, sizeof state,
                     "{\"step\": %ld, \"epoch\": %ld, \"pos\": %zu, \"num_tokens\": %ld, "
                     "\"%s\": \"%s\"}\n",
                     s->step, s->epoch, s->pos, s->num_tokens, tag_key, s->tag);
    snprintf(path, sizeof path, "%s/state.json", tmp);
    return tu_write_file_sync(path, state, (size_t)k, err);
}

/* Rank 0's result to every rank: 0, or -1 with a message on the others. */
static int agree(int rc, const char *what, dp_err *err) {
    long all = dist_allreduce_max(rc ? 1 : 0);
    if (all && !rc) return dp_fail(err, "%s failed on another rank (its message says why)", what);
    return rc ? -1 : 0;
}

static int checkpoint_save_rank0(const char *out_dir, model *m, const optim *o, const tu_shard *sh,
                                 const tu_state *s, const char *tag_key, dp_err *err) {
    char tmp[4200], cur[4200], old[4200];
    snprintf(tmp, sizeof tmp, "%s/checkpoint.tmp", out_dir);
    snprintf(cur, sizeof cur, "%s/checkpoint", out_dir);
    snprintf(old, sizeof old, "%s/checkpoint.old", out_dir);
    if (su_rmtree(tmp, err) || su_mkdirs(tmp, err)) {
        /* the other ranks' slices still have to be taken */
        if (sh && sh->size > 1) optimizer_stream_out(NULL, o, sh, err);
        return -1;
    }
    if (checkpoint_write(tmp, m, o, sh, s, tag_key, err)) {
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

int tu_checkpoint_save(const char *out_dir, model *m, const optim *o, const tu_shard *sh,
                       const tu_state *s, const char *tag_key, dp_err *err) {
    if (!sh || sh->size == 1) return checkpoint_save_rank0(out_dir, m, o, NULL, s, tag_key, err);
    int rc = sh->rank == 0 ? checkpoint_save_rank0(out_dir, m, o, sh, s, tag_key, err)
                           : optimizer_stream_out(NULL, o, sh, err);
    return agree(rc, "writing the checkpoint", err);
}

int tu_checkpoint_find(const char *out_dir, char *dir, size_t size) {
    static const char *const names[] = {"checkpoint", "checkpoint.old"};
    long found = 0;
    for (int i = 0; i < 2 && !found; i++) {
        char state[4300];
        snprintf(dir, size, "%s/%s", out_dir, names[i]);
        snprintf(state, sizeof state, "%s/state.json", dir);
        found = dist_rank() == 0 && access(state, F_OK) == 0 ? i + 1 : 0;
    }
    found = dist_allreduce_max(found);
    if (found) snprintf(dir, size, "%s/%s", out_dir, names[found - 1]);
    return found > 0;
}

static int get_long(json_t *obj, const char *key, long *out) {
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0) return -1;
    *out = (long)json_integer_value(v);
    return 0;
}

/* Rank 0: DIR/state.json into *s (tag checked) and OPTIMIZER.bin opened
 * with its header checked against o's config and N_TOTAL parameters. */
static int checkpoint_open(const char *dir, const char *tag_key, const char *want_tag,
                           const char *what_to_do, size_t n_total, tu_state *s, const optim *o,
                           FILE **opt_file, long *step, dp_err *err) {
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
    FILE *f = fopen(path, "rb");
    struct stat sb;
    unsigned char hdr[OPTIM_STATE_HEADER];
    if (!f) return dp_fail(err, "%s: cannot open: %s", path, strerror(errno));
    size_t got = fstat(fileno(f), &sb) == 0 ? fread(hdr, 1, sizeof hdr, f) : 0;
    if (optim_state_check(&o->cfg, n_total, hdr, got < sizeof hdr ? got : (size_t)sb.st_size,
                          step, err)) {
        fclose(f);
        return dp_context(err, "%s", path);
    }
    *opt_file = f;
    return 0;
}

int tu_checkpoint_load(const char *dir, const char *tag_key, const char *want_tag,
                       const char *what_to_do, const tu_shard *sh, tu_state *s, optim *o,
                       dp_err *err) {
    int size = sh ? sh->size : 1, rank = sh ? sh->rank : 0;
    size_t n_total = sh ? sh->n : o->n;
    FILE *f = NULL;
    long step = 0;
    int rc = rank == 0 ? checkpoint_open(dir, tag_key, want_tag, what_to_do, n_total, s, o, &f,
                                         &step, err)
                       : 0;
    if (agree(rc, "reading the checkpoint", err)) return -1;
    dist_bcast(s, sizeof *s, 0);
    dist_bcast(&step, sizeof step, 0);
    /* every rank's slice of each state array, in rank order, through rank 0 */
    int arrays = optim_state_arrays(&o->cfg), bad = 0;
    for (int a = 0; a < arrays; a++) {
        float *mine = state_array(o, a);
        for (int r = 0; r < size; r++) {
            size_t count = sh ? sh->counts[r] : o->n;
            if (rank == 0 && r == 0) {
                bad |= fread(mine, sizeof(float), count, f) != count;
                continue;
            }
            for (size_t k = 0; k < count; k += PIECE) {
                size_t m = count - k < PIECE ? count - k : PIECE;
                if (rank == 0) {
                    bad |= fread(piece_buf, sizeof(float), m, f) != m;
                    dist_send(piece_buf, m * sizeof(float), r);
                } else if (rank == r) {
                    dist_recv(mine + k, m * sizeof(float), 0);
                }
            }
        }
    }
    if (f) fclose(f);
    rc = bad ? dp_fail(err, "%s/optimizer.bin: read error", dir) : 0;
    if (agree(rc, "reading the checkpoint", err)) return -1;
    o->step = step;
    return 0;
}

/* ---- stopping at a step boundary ---- */

static volatile sig_atomic_t stop_requested;

/* The first signal asks for a checkpoint; a second one ends the process. */
static void on_stop(int sig) {
    if (stop_requested) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    stop_requested = sig;
}

void tu_stop_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    /* mpirun forwards SIGUSR1 to every rank; SIGTERM it follows with SIGKILL
     * after odls_base_sigkill_timeout (1 s) */
    sigaction(SIGUSR1, &sa, NULL);
}

const char *tu_stop_name(int sig) {
    return sig == SIGINT ? "SIGINT" : sig == SIGUSR1 ? "SIGUSR1" : "SIGTERM";
}

int tu_stop_signal(void) { return (int)dist_allreduce_max((long)stop_requested); }
