/* bench — the engine's side of the benchmark suite (tests/bench/run.sh runs
 * it; see that script for the whole picture). Each workload runs in its own
 * process so its peak resident memory is its own:
 *
 *   bench sgemm N REPS OUT.json              cblas_sgemm N³ peak, best of REPS
 *   bench lengths DIST N SEED OUT.txt [SCALE] synthetic pair lengths (DIST hh|uf)
 *   bench precompute CONFIG LENGTHS SHARING MAX_TOKENS OUT.json
 *                                            forward over every pair, packed
 *                                            longest-first into batches of at
 *                                            most MAX_TOKENS tokens; also the
 *                                            store's blob bytes per token
 *   bench train CONFIG LENGTHS SHARING BATCH STEPS OUT.json
 *                                            full DPO optimizer steps (forward,
 *                                            sigmoid loss against cached
 *                                            reference sums, backward, clip,
 *                                            AdamW) over BATCH pairs a step
 *   bench tokenizer TOKENIZER_JSON BYTES OUT.json
 *                                            encode throughput on generated text
 *   bench report PARTS_DIR OUT.json MODE MODELS DISTS
 *                                            joins the parts (ours and PyTorch's)
 *                                            into one table and one JSON file
 *   bench write_ckpt / big_precompute / big_lora   big BF16 checkpoints on
 *                                            disk, run from their mapping under
 *                                            a memory budget (big.c)
 *
 * Tokens are counted as a padding-free two-sequence implementation sees them:
 * (P+C) + (P+R) per pair, the same count torch_bench.py uses, so tokens/s
 * compare directly and prefix sharing shows up as a speed-up. FLOPs count
 * the matrix multiplies actually run (packed tokens; the vocabulary
 * projection only for response rows; attention over the keys each query
 * sees), ×3 for a training step; MFU divides them by the measured sgemm
 * peak. Threads: BENCH_THREADS (default 0 = every core). */
#include <cblas.h>
#include <jansson.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "log.h"
#include "loss.h"
#include "model.h"
#include "optim.h"
#include "store.h"
#include "tokenizer.h"

#include "bench.h"

/* ---- small helpers ---- */

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double rng_uniform(uint64_t *s) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; }
static double rng_normal(uint64_t *s) {
    double u = rng_uniform(s), v = rng_uniform(s);
    if (u < 1e-300) u = 1e-300;
    return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}
static int clip_round(double x, int lo, int hi) {
    long r = lround(x);
    return (int)(r < lo ? lo : r > hi ? hi : r);
}

int threads_wanted(void) {
    const char *s = getenv("BENCH_THREADS");
    return s && *s ? atoi(s) : 0;
}

int fail(const char *what, const dp_err *e) {
    fprintf(stderr, "bench: %s: %s\n", what, e ? e->msg : "failed");
    return 1;
}

int write_json(json_t *o, const char *path) {
    int rc = json_dump_file(o, path, JSON_INDENT(1) | JSON_SORT_KEYS | JSON_REAL_PRECISION(6));
    json_decref(o);
    if (rc) fprintf(stderr, "bench: cannot write %s\n", path);
    return rc ? 1 : 0;
}

/* "tests/bench/configs/gpt2-124m.json" → "gpt2-124m" into buf. */
const char *base_name(const char *path, char *buf, size_t cap) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    snprintf(buf, cap, "%s", b);
    char *dot = strrchr(buf, '.');
    if (dot) *dot = 0;
    return buf;
}

/* ---- synthetic pairs ---- */


void pairs_free(pairs *p) { free(p->P), free(p->C), free(p->R); }

/* HH-RLHF-like: long prompts (multi-turn history), short answers.
 * UltraFeedback-like: shorter prompts, long answers. Clipped so the longest
 * sequence (prompt + the longer response) stays within GPT-2's 1024. */
static int cmd_lengths(int argc, char **argv) {
    if (argc != 5 && argc != 6)
        return fprintf(stderr, "usage: bench lengths hh|uf N SEED OUT [SCALE]\n"), 2;
    double scale = argc == 6 ? atof(argv[5]) : 1.0;
    const char *dist = argv[1];
    int n = atoi(argv[2]);
    uint64_t seed = strtoull(argv[3], NULL, 10);
    double pm, ps, rm, rs;
    int plo, phi, rlo, rhi;
    if (!strcmp(dist, "hh")) pm = 170, ps = 80, plo = 16, phi = 512, rm = 50, rs = 30, rlo = 4, rhi = 256;
    else if (!strcmp(dist, "uf")) pm = 100, ps = 50, plo = 16, phi = 400, rm = 250, rs = 100, rlo = 16, rhi = 600;
    else return fprintf(stderr, "bench lengths: distribution: expected hh or uf, got %s\n", dist), 2;
    if (n < 1) return fprintf(stderr, "bench lengths: N: expected >= 1, got %s\n", argv[2]), 2;
    if (!(scale > 0 && scale <= 1))
        return fprintf(stderr, "bench lengths: SCALE: expected (0, 1], got %s\n", argv[5]), 2;
    /* SCALE shrinks every length (the smoke run's tiny shapes). */
    pm *= scale, ps *= scale, rm *= scale, rs *= scale;
    plo = (int)fmax(1, plo * scale), phi = (int)fmax(2, phi * scale);
    rlo = (int)fmax(1, rlo * scale), rhi = (int)fmax(2, rhi * scale);
    FILE *f = fopen(argv[4], "w");
    if (!f) return fprintf(stderr, "bench lengths: cannot write %s\n", argv[4]), 1;
    fprintf(f, "# %s %d %llu\n", dist, n, (unsigned long long)seed);
    uint64_t s = seed;
    for (int i = 0; i < n; i++) {
        int P = clip_round(pm + ps * rng_normal(&s), plo, phi);
        int C = clip_round(rm + rs * rng_normal(&s), rlo, rhi);
        int R = clip_round(rm + rs * rng_normal(&s), rlo, rhi);
        fprintf(f, "%d %d %d\n", P, C, R);
    }
    return fclose(f) ? 1 : 0;
}

int pairs_read(pairs *p, const char *path) {
    memset(p, 0, sizeof *p);
    FILE *f = fopen(path, "r");
    if (!f) return fprintf(stderr, "bench: cannot read %s\n", path), -1;
    unsigned long long seed;
    if (fscanf(f, "# %15s %d %llu", p->dist, &p->n, &seed) != 3 || p->n < 1) {
        fclose(f);
        return fprintf(stderr, "bench: %s:1: expected \"# DIST N SEED\"\n", path), -1;
    }
    p->P = malloc((size_t)p->n * sizeof(int));
    p->C = malloc((size_t)p->n * sizeof(int));
    p->R = malloc((size_t)p->n * sizeof(int));
    if (!p->P || !p->C || !p->R) return fclose(f), pairs_free(p), -1;
    for (int i = 0; i < p->n; i++)
        if (fscanf(f, "%d %d %d", &p->P[i], &p->C[i], &p->R[i]) != 3 || p->P[i] < 1 ||
            p->C[i] < 1 || p->R[i] < 1) {
            fclose(f);
            pairs_free(p);
            return fprintf(stderr, "bench: %s:%d: expected three positive lengths\n", path, i + 2), -1;
        }
    fclose(f);
    return 0;
}

long seq_tokens(const pairs *p, int i) { return 2L * p->P[i] + p->C[i] + p->R[i]; }
long packed_tokens(const pairs *p, int i, int sharing) {
    return sharing ? (long)p->P[i] + p->C[i] + p->R[i] : seq_tokens(p, i);
}

/* Random ids for pair i, drawn from a stream of its own so every process
 * (and both sharing modes) sees the same tokens. */
static void pair_tokens(int32_t *dst, const pairs *p, int i, int vocab) {
    uint64_t s = 0x5EED0000ull + (uint64_t)i;
    int n = p->P[i] + p->C[i] + p->R[i];
    for (int k = 0; k < n; k++) dst[k] = (int32_t)(rng_next(&s) % (uint64_t)vocab);
}

/* ---- analytic FLOPs ---- */

static double matmul_params_per_layer(const model_config *c) {
    double C = c->d_model, F = c->d_ff, QD = (double)c->n_head * c->head_dim,
           KD = (double)c->n_kv_head * c->head_dim;
    int gpt2 = !strcmp(c->model_type, "gpt2");
    return C * QD + 2 * C * KD + QD * C + (gpt2 ? 2 : 3) * C * F;
}

static double tri(double n) { return n * (n + 1) / 2; }

/* Forward FLOPs of pair i as the engine runs it. */
double pair_forward_flops(const model_config *c, const pairs *p, int i, int sharing) {
    double P = p->P[i], Cn = p->C[i], Rn = p->R[i], L = c->n_layer;
    double tokens = (double)packed_tokens(p, i, sharing), resp = Cn + Rn;
    double keys = sharing ? tri(P + Cn) + Rn * P + tri(Rn) : tri(P + Cn) + tri(P + Rn);
    double att = 4.0 * c->n_head * c->head_dim * keys * L;
    return 2.0 * L * matmul_params_per_layer(c) * tokens + 2.0 * c->vocab * c->d_model * resp + att;
}

/* ---- sgemm peak ---- */

static int cmd_sgemm(int argc, char **argv) {
    if (argc != 4) return fprintf(stderr, "usage: bench sgemm N REPS OUT\n"), 2;
    int n = atoi(argv[1]), reps = atoi(argv[2]);
    if (n < 16 || reps < 1) return fprintf(stderr, "bench sgemm: expected N >= 16, REPS >= 1\n"), 2;
    model_set_threads(threads_wanted());
    size_t nn = (size_t)n * n;
    float *a = malloc(nn * sizeof(float)), *b = malloc(nn * sizeof(float)),
          *c = calloc(nn, sizeof(float));
    if (!a || !b || !c) return free(a), free(b), free(c), fail("sgemm", NULL);
    uint64_t s = 7;
    for (size_t i = 0; i < nn; i++) a[i] = (float)rng_uniform(&s) - 0.5f, b[i] = (float)rng_uniform(&s) - 0.5f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = log_now_seconds();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double t = log_now_seconds() - t0;
        if (t < best) best = t;
    }
    free(a), free(b), free(c);
    json_t *o = json_object();
    json_object_set_new(o, "n", json_integer(n));
    json_object_set_new(o, "reps", json_integer(reps));
    json_object_set_new(o, "gflops", json_real(2.0 * n * (double)n * n / best / 1e9));
    json_object_set_new(o, "threads", json_integer(omp_get_max_threads()));
    json_object_set_new(o, "blas_core", json_string(model_blas_corename()));
    return write_json(o, argv[3]);
}

/* ---- precompute ---- */


static const pairs *g_sort_pairs;
static int g_sort_sharing;
static int cmp_longest(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    long li = packed_tokens(g_sort_pairs, i, g_sort_sharing),
         lj = packed_tokens(g_sort_pairs, j, g_sort_sharing);
    return li != lj ? (li < lj ? 1 : -1) : (i > j) - (i < j);
}

/* Packs pairs longest-first into consecutive batches of at most max_tokens. */
int plan_batches(batch_plan *b, const pairs *p, int sharing, int max_tokens) {
    memset(b, 0, sizeof *b);
    b->order = malloc((size_t)p->n * sizeof(int));
    b->start = malloc((size_t)p->n * sizeof(int));
    b->count = malloc((size_t)p->n * sizeof(int));
    if (!b->order || !b->start || !b->count) return -1;
    for (int i = 0; i < p->n; i++) b->order[i] = i;
    g_sort_pairs = p, g_sort_sharing = sharing;
    qsort(b->order, (size_t)p->n, sizeof(int), cmp_longest);
    long cur = 0;
    for (int k = 0; k < p->n; k++) {
        long t = packed_tokens(p, b->order[k], sharing);
        if (b->n_batches == 0 || cur + t > max_tokens) {
            b->start[b->n_batches] = k, b->count[b->n_batches] = 0;
            b->n_batches++, cur = 0;
        }
        b->count[b->n_batches - 1]++;
        cur += t;
        if (cur > b->max_tokens) b->max_tokens = (int)cur;
    }
    return 0;
}
void plan_free(batch_plan *b) { free(b->order), free(b->start), free(b->count); }

/* Gathers pairs order[0..n) into one model_batch (arrays owned by caller). */

int batch_fill(batch_buf *bb, model_batch *mb, const pairs *p, const int *order, int n,
                      int vocab) {
    long tokens = 0;
    for (int k = 0; k < n; k++) {
        int i = order[k];
        tokens += p->P[i] + p->C[i] + p->R[i];
    }
    bb->tok = malloc((size_t)tokens * sizeof(int32_t));
    bb->np = malloc((size_t)n * sizeof(int));
    bb->nc = malloc((size_t)n * sizeof(int));
    bb->nr = malloc((size_t)n * sizeof(int));
    if (!bb->tok || !bb->np || !bb->nc || !bb->nr) return -1;
    long off = 0;
    bb->n_resp = 0;
    for (int k = 0; k < n; k++) {
        int i = order[k];
        pair_tokens(bb->tok + off, p, i, vocab);
        off += p->P[i] + p->C[i] + p->R[i];
        bb->np[k] = p->P[i], bb->nc[k] = p->C[i], bb->nr[k] = p->R[i];
        bb->n_resp += p->C[i] + p->R[i];
    }
    *mb = (model_batch){n, bb->tok, bb->np, bb->nc, bb->nr};
    return 0;
}
void batch_buf_free(batch_buf *bb) { free(bb->tok), free(bb->np), free(bb->nc), free(bb->nr); }

/* Bytes the store spends on one record's five blobs (prompt, chosen and
 * rejected ids; chosen and rejected log-probs), each byte-shuffled and
 * compressed as store_put_ref does. Adds to *ids_bytes and *logp_bytes. */
static int store_bytes(const int32_t *tok, int P, int C, int R, const float *lp, size_t *ids_bytes,
                       size_t *logp_bytes, dp_err *e) {
    const void *arr[5] = {tok, tok + P, tok + P + C, lp, lp + C};
    int cnt[5] = {P, C, R, C, R};
    for (int k = 0; k < 5; k++) {
        void *out = NULL;
        size_t len = 0;
        if (store_blob_encode(arr[k], (size_t)cnt[k] * 4, 1, &out, &len, e)) return -1;
        free(out);
        *(k < 3 ? ids_bytes : logp_bytes) += len;
    }
    return 0;
}

void set_common(json_t *o, const char *kind, const char *config, const pairs *p,
                       const model_config *c, int sharing) {
    char name[256];
    json_object_set_new(o, "kind", json_string(kind));
    json_object_set_new(o, "model", json_string(base_name(config, name, sizeof name)));
    json_object_set_new(o, "model_type", json_string(c->model_type));
    json_object_set_new(o, "dist", json_string(p->dist));
    json_object_set_new(o, "threads", json_integer(omp_get_max_threads()));
    json_object_set_new(o, "sharing", json_integer(sharing));
}

/* The rates both timed workloads report: SECONDS of timed work over
 * SEQ_TOKENS tokens (counted as above) of PAIRS pairs and FLOPS flops, after
 * INIT_SECONDS of set-up; and the peak resident memory so far. */
void set_rates(json_t *o, double seconds, double seq_tokens, double pairs, double flops,
                      double init_seconds) {
    json_object_set_new(o, "init_seconds", json_real(init_seconds));
    json_object_set_new(o, "tokens_per_s", json_real(seq_tokens / seconds));
    json_object_set_new(o, "pairs_per_s", json_real(pairs / seconds));
    json_object_set_new(o, "flops", json_real(flops));
    json_object_set_new(o, "gflops_per_s", json_real(flops / seconds / 1e9));
    json_object_set_new(o, "peak_rss_bytes", json_integer((json_int_t)log_peak_rss_bytes()));
}

static int cmd_precompute(int argc, char **argv) {
    if (argc != 6)
        return fprintf(stderr, "usage: bench precompute CONFIG LENGTHS SHARING MAX_TOKENS OUT\n"), 2;
    const char *config = argv[1];
    int sharing = atoi(argv[3]), max_tokens = atoi(argv[4]);
    dp_err e = {0};
    model_config c;
    pairs p;
    if (model_read_config(&c, config, &e)) return fail("precompute", &e);
    if (pairs_read(&p, argv[2])) return 1;
    batch_plan plan;
    if (plan_batches(&plan, &p, sharing, max_tokens)) return pairs_free(&p), fail("plan", NULL);
    model_options opt = {.training = 0, .prefix_sharing = sharing, .threads = threads_wanted(),
                         .max_tokens = plan.max_tokens};
    model *m = NULL;
    double t_init = log_now_seconds();
    if (model_init_random(&m, config, 42, &opt, &e)) {
        plan_free(&plan), pairs_free(&p);
        return fail("model_init_random", &e);
    }
    t_init = log_now_seconds() - t_init;
    long resp_total = 0, seq_total = 0, packed_total = 0;
    double flops = 0;
    for (int i = 0; i < p.n; i++) {
        resp_total += p.C[i] + p.R[i];
        seq_total += seq_tokens(&p, i);
        packed_total += packed_tokens(&p, i, sharing);
        flops += pair_forward_flops(&c, &p, i, sharing);
    }
    float *lp = malloc((size_t)resp_total * sizeof(float));
    int rc = lp ? 0 : 1;
    /* Warm-up: the first batch, untimed, so starting the BLAS threads and
     * the first touch of the activation buffers are not counted — a real run
     * pays them once for thousands of batches (torch_bench.py does the same,
     * its allocator then holds the blocks). */
    batch_buf bb = {0};
    model_batch mb;
    if (!rc && (batch_fill(&bb, &mb, &p, plan.order, plan.count[0], c.vocab) ||
                model_forward(m, &mb, lp, NULL, &e)))
        rc = fail("warm-up forward", &e);
    batch_buf_free(&bb);
    double t0 = log_now_seconds(), t_fwd = 0;
    size_t ids_bytes = 0, logp_bytes = 0;
    long store_tokens = 0;
    long out_off = 0;
    for (int b = 0; b < plan.n_batches && !rc; b++) {
        const int *ord = plan.order + plan.start[b];
        if (batch_fill(&bb, &mb, &p, ord, plan.count[b], c.vocab)) {
            rc = fail("batch", NULL);
            batch_buf_free(&bb);
            break;
        }
        double tb = log_now_seconds();
        if (model_forward(m, &mb, lp + out_off, NULL, &e)) rc = fail("forward", &e);
        t_fwd += log_now_seconds() - tb;
        /* Store cost of what this batch produced (not timed). */
        long tok_off = 0, r_off = out_off;
        for (int k = 0; k < plan.count[b] && !rc; k++) {
            int P = bb.np[k], C = bb.nc[k], R = bb.nr[k];
            if (store_bytes(bb.tok + tok_off, P, C, R, lp + r_off, &ids_bytes, &logp_bytes, &e))
                rc = fail("store_blob_encode", &e);
            tok_off += P + C + R, r_off += C + R, store_tokens += P + C + R;
        }
        out_off += bb.n_resp;
        batch_buf_free(&bb);
    }
    double wall = log_now_seconds() - t0;
    if (!rc) {
        json_t *o = json_object();
        set_common(o, "precompute", config, &p, &c, sharing);
        json_object_set_new(o, "pairs", json_integer(p.n));
        json_object_set_new(o, "batches", json_integer(plan.n_batches));
        json_object_set_new(o, "max_batch_tokens", json_integer(plan.max_tokens));
        json_object_set_new(o, "seq_tokens", json_integer(seq_total));
        json_object_set_new(o, "packed_tokens", json_integer(packed_total));
        json_object_set_new(o, "response_tokens", json_integer(resp_total));
        json_object_set_new(o, "seconds", json_real(t_fwd));
        json_object_set_new(o, "wall_seconds", json_real(wall));
        set_rates(o, t_fwd, (double)seq_total, p.n, flops, t_init);
        json_object_set_new(o, "store_logp_bytes_per_token",
                            json_real((double)logp_bytes / (double)resp_total));
        json_object_set_new(o, "store_bytes_per_token",
                            json_real((double)(ids_bytes + logp_bytes) / (double)store_tokens));
        rc = write_json(o, argv[5]);
    }
    free(lp);
    model_free(m);
    plan_free(&plan);
    pairs_free(&p);
    return rc;
}

/* ---- train ---- */

int dpo_run_init(dpo_run *r, const model *m, int max_tokens, int pairs, dp_err *e) {
    memset(r, 0, sizeof *r);
    size_t n;
    model_trainable((model *)m, NULL, &n);
    optim_config oc;
    optim_config_default(&oc);
    oc.schedule = SCHED_CONSTANT;
    loss_config_default(&r->lc);
    r->lp = malloc((size_t)max_tokens * sizeof(float));
    r->dlp = malloc((size_t)max_tokens * sizeof(float));
    r->ex = malloc((size_t)pairs * sizeof *r->ex);
    r->res = malloc((size_t)pairs * sizeof *r->res);
    if (!r->lp || !r->dlp || !r->ex || !r->res) return dp_fail(e, "out of memory");
    return optim_init(&r->o, &oc, n, e);
}

void dpo_run_free(dpo_run *r) {
    optim_free(&r->o);
    free(r->lp), free(r->dlp), free(r->ex), free(r->res);
}

double dpo_step(model *m, const model_batch *mb, dpo_run *r, dp_err *e) {
    float *lp = r->lp, *dlp = r->dlp;
    loss_example *ex = r->ex;
    loss_result *res = r->res;
    size_t n;
    float *grads, *params = model_trainable(m, &grads, &n);
    model_zero_grads(m);
    if (model_forward(m, mb, lp, NULL, e)) return NAN;
    long off = 0;
    for (int k = 0; k < mb->n; k++) {
        double pc = 0, pr = 0;
        for (int j = 0; j < mb->n_chosen[k]; j++) pc += lp[off + j];
        for (int j = 0; j < mb->n_rejected[k]; j++) pr += lp[off + mb->n_chosen[k] + j];
        /* The cached reference: any constants do (reading them from a store
         * is a few bytes per token); these give the loss at β=0.1 a fixed
         * value, -log σ(-0.1), at every step. */
        ex[k] = (loss_example){.pi_c = pc, .pi_r = pr, .ref_c = pc + 0.5, .ref_r = pr - 0.5,
                               .n_c = mb->n_chosen[k], .n_r = mb->n_rejected[k]};
        off += mb->n_chosen[k] + mb->n_rejected[k];
    }
    double L = loss_batch(&r->lc, ex, mb->n, res);
    off = 0;
    for (int k = 0; k < mb->n; k++) {
        for (int j = 0; j < mb->n_chosen[k]; j++) dlp[off + j] = (float)res[k].d_pi_c;
        for (int j = 0; j < mb->n_rejected[k]; j++) dlp[off + mb->n_chosen[k] + j] = (float)res[k].d_pi_r;
        off += mb->n_chosen[k] + mb->n_rejected[k];
    }
    if (model_backward(m, dlp, e)) return NAN;
    optim_clip(grads, n, 1.0);
    optim_step(&r->o, params, grads);
    return L;
}

static int cmd_train(int argc, char **argv) {
    if (argc != 7 && argc != 8)
        return fprintf(stderr, "usage: bench train CONFIG LENGTHS SHARING BATCH STEPS OUT [LORA_R]\n"), 2;
    const char *config = argv[1];
    int sharing = atoi(argv[3]), B = atoi(argv[4]), steps = atoi(argv[5]);
    int lora_r = argc == 8 ? atoi(argv[7]) : 0; /* > 0: LoRA on every linear layer, alpha 2r */
    if (B < 1 || steps < 1) return fprintf(stderr, "bench train: expected BATCH, STEPS >= 1\n"), 2;
    dp_err e = {0};
    model_config c;
    pairs p;
    if (model_read_config(&c, config, &e)) return fail("train", &e);
    if (pairs_read(&p, argv[2])) return 1;
    /* Step s takes pairs s·B .. s·B+B-1 (cycling), in file order as a
     * shuffled data loader would hand them over. */
    int n_steps_pairs = B * steps;
    int *order = malloc((size_t)n_steps_pairs * sizeof(int));
    if (!order) return pairs_free(&p), fail("train", NULL);
    long max_tok = 0;
    for (int s = 0; s < steps; s++) {
        long t = 0;
        for (int k = 0; k < B; k++) {
            int i = (s * B + k) % p.n;
            order[s * B + k] = i;
            t += packed_tokens(&p, i, sharing);
        }
        if (t > max_tok) max_tok = t;
    }
    model_options opt = {.training = 1, .prefix_sharing = sharing, .threads = threads_wanted(),
                         .max_tokens = (int)max_tok};
    if (lora_r > 0)
        opt.lora = (model_lora_options){.r = lora_r, .alpha = 2.0f * (float)lora_r, .seed = 42,
                                        .targets = model_lora_family_targets(c.model_type)};
    model *m = NULL;
    double t_init = log_now_seconds();
    if (model_init_random(&m, config, 42, &opt, &e)) {
        free(order), pairs_free(&p);
        return fail("model_init_random", &e);
    }
    t_init = log_now_seconds() - t_init;
    dpo_run dr;
    int rc = dpo_run_init(&dr, m, (int)max_tok, B, &e) ? fail("train", &e) : 0;
    /* Step -1 is a warm-up on the first batch, untimed: it starts the BLAS
     * threads and pays the first touch of activations, gradients and AdamW
     * state, which a real run pays once. */
    double t_warm = 0, t_sum = 0, flops = 0;
    long seq = 0;
    double loss_first = 0, loss_last = 0;
    for (int s = -1; s < steps && !rc; s++) {
        batch_buf bb;
        model_batch mb;
        const int *ord = s < 0 ? order : order + s * B;
        int nb = B;
        if (batch_fill(&bb, &mb, &p, ord, nb, c.vocab)) {
            rc = fail("batch", NULL);
            batch_buf_free(&bb);
            break;
        }
        double t0 = log_now_seconds();
        double L = dpo_step(m, &mb, &dr, &e);
        if (isnan(L)) rc = fail("step", &e);
        if (s == 0) loss_first = L;
        loss_last = L;
        double t = log_now_seconds() - t0;
        batch_buf_free(&bb);
        if (s < 0) {
            t_warm = t;
            continue;
        }
        t_sum += t;
        /* A LoRA step skips the base's weight gradients: forward + input
         * gradients, 2x a forward (the adapters' own products not counted). */
        for (int k = 0; k < B; k++)
            flops += (lora_r ? 2.0 : 3.0) * pair_forward_flops(&c, &p, ord[k], sharing),
                seq += seq_tokens(&p, ord[k]);
    }
    if (!rc) {
        model_memory mm = model_memory_estimate(&c, (int)max_tok);
        json_t *o2 = json_object();
        set_common(o2, "train", config, &p, &c, sharing);
        json_object_set_new(o2, "batch_pairs", json_integer(B));
        json_object_set_new(o2, "steps", json_integer(steps));
        json_object_set_new(o2, "timed_steps", json_integer(steps));
        json_object_set_new(o2, "max_batch_tokens", json_integer(max_tok));
        json_object_set_new(o2, "warmup_seconds", json_real(t_warm));
        json_object_set_new(o2, "seconds_per_step", json_real(t_sum / steps));
        set_rates(o2, t_sum, (double)seq, (double)B * steps, flops, t_init);
        json_object_set_new(o2, "loss_first", json_real(loss_first));
        json_object_set_new(o2, "loss_last", json_real(loss_last));
        json_object_set_new(o2, "n_params", json_integer((json_int_t)mm.n_params));
        json_object_set_new(o2, "est_weights_bytes", json_integer((json_int_t)mm.weights));
        json_object_set_new(o2, "est_grads_bytes", json_integer((json_int_t)mm.grads));
        json_object_set_new(o2, "est_adam_bytes", json_integer((json_int_t)mm.adam));
        json_object_set_new(o2, "est_activation_bytes", json_integer((json_int_t)mm.activations));
        json_object_set_new(o2, "lora_r", json_integer(lora_r));
        json_object_set_new(o2, "lora_params", json_integer((json_int_t)(lora_r ? dr.o.n : 0)));
        rc = write_json(o2, argv[6]);
    }
    dpo_run_free(&dr);
    free(order);
    model_free(m);
    pairs_free(&p);
    return rc;
}

/* ---- tokenizer ---- */

/* Generated English-like prose: words built from common syllables, with
 * capitals, punctuation, numbers, contractions, newlines and a little
 * non-ASCII text, cut into documents of a few hundred to a few thousand
 * bytes (dataset rows). */
static size_t gen_corpus(char *buf, size_t cap, size_t **doc_ends, size_t *n_docs) {
    static const char *syl[] = {"the", "an", "in", "re", "con", "ing", "er", "at", "on", "is",
                                "pro", "ex", "de", "ment", "tion", "al", "ly", "ca", "so", "mo",
                                "ve", "li", "ta", "per", "com", "ar", "ou", "st", "ght", "wh"};
    static const char *small[] = {"the", "a", "of", "to", "and", "is", "it", "you", "I", "that",
                                  "for", "can", "what", "how", "don't", "it's", "we'll"};
    static const char *extra[] = {"café", "naïve", "—", "“quoted”", "😊", "東京", "Zürich", "…"};
    uint64_t s = 99;
    size_t n = 0, docs_cap = 1024;
    *n_docs = 0;
    *doc_ends = malloc(docs_cap * sizeof(size_t));
    if (!*doc_ends) return 0;
    size_t doc_target = 0;
    int start_sentence = 1;
    while (n + 64 < cap) {
        if (doc_target == 0) doc_target = n + 300 + (size_t)(rng_uniform(&s) * 3000);
        char w[64];
        double u = rng_uniform(&s);
        if (u < 0.45) snprintf(w, sizeof w, "%s", small[rng_next(&s) % 17]);
        else if (u < 0.97) {
            int k = 1 + (int)(rng_next(&s) % 3);
            w[0] = 0;
            for (int j = 0; j < k; j++) strcat(w, syl[rng_next(&s) % 30]);
        } else if (u < 0.99) snprintf(w, sizeof w, "%d", (int)(rng_next(&s) % 10000));
        else snprintf(w, sizeof w, "%s", extra[rng_next(&s) % 8]);
        if (start_sentence && w[0] >= 'a' && w[0] <= 'z') w[0] = (char)(w[0] - 'a' + 'A');
        const char *sep = n > 0 && buf[n - 1] != '\n' ? " " : "";
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", sep, w);
        start_sentence = 0;
        double v = rng_uniform(&s);
        if (v < 0.08) buf[n++] = '.', start_sentence = 1;
        else if (v < 0.1) buf[n++] = ',';
        else if (v < 0.11) buf[n++] = '?', start_sentence = 1;
        if (start_sentence && rng_uniform(&s) < 0.1) buf[n++] = '\n';
        if (n >= doc_target) {
            if (*n_docs == docs_cap) {
                size_t *d = realloc(*doc_ends, 2 * docs_cap * sizeof(size_t));
                if (!d) return 0;
                *doc_ends = d, docs_cap *= 2;
            }
            (*doc_ends)[(*n_docs)++] = n;
            doc_target = 0;
        }
    }
    if (*n_docs == 0 || (*doc_ends)[*n_docs - 1] != n) {
        if (*n_docs == docs_cap) {
            size_t *d = realloc(*doc_ends, (docs_cap + 1) * sizeof(size_t));
            if (!d) return 0;
            *doc_ends = d;
        }
        (*doc_ends)[(*n_docs)++] = n;
    }
    return n;
}

static int cmd_tokenizer(int argc, char **argv) {
    if (argc != 4) return fprintf(stderr, "usage: bench tokenizer TOKENIZER_JSON BYTES OUT\n"), 2;
    dp_err e = {0};
    tokenizer *t = NULL;
    if (tok_load(&t, argv[1], &e)) return fail("tok_load", &e);
    size_t cap = (size_t)atol(argv[2]);
    if (cap < 4096) cap = 4096;
    char *buf = malloc(cap + 1);
    size_t *ends = NULL, n_docs = 0;
    size_t n = buf ? gen_corpus(buf, cap, &ends, &n_docs) : 0;
    int rc = n ? 0 : fail("corpus", NULL);
    long n_tokens = 0;
    double t0 = log_now_seconds();
    size_t begin = 0;
    for (size_t d = 0; d < n_docs && !rc; d++) {
        int32_t *ids = NULL;
        size_t k = 0;
        if (tok_encode(t, buf + begin, ends[d] - begin, 0, &ids, &k, &e)) rc = fail("tok_encode", &e);
        free(ids);
        n_tokens += (long)k;
        begin = ends[d];
    }
    double secs = log_now_seconds() - t0;
    if (!rc) {
        json_t *o = json_object();
        json_object_set_new(o, "kind", json_string("tokenizer"));
        json_object_set_new(o, "file", json_string(argv[1]));
        json_object_set_new(o, "vocab", json_integer(tok_vocab_size(t)));
        json_object_set_new(o, "corpus_bytes", json_integer((json_int_t)n));
        json_object_set_new(o, "documents", json_integer((json_int_t)n_docs));
        json_object_set_new(o, "tokens", json_integer(n_tokens));
        json_object_set_new(o, "seconds", json_real(secs));
        json_object_set_new(o, "mb_per_s", json_real((double)n / 1e6 / secs));
        json_object_set_new(o, "tokens_per_s", json_real((double)n_tokens / secs));
        json_object_set_new(o, "threads", json_integer(1));
        rc = write_json(o, argv[3]);
    }
    free(buf), free(ends);
    tok_free(t);
    return rc;
}

/* ---- report ---- */

static json_t *load_part(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.json", dir, name);
    struct stat st;
    if (stat(path, &st)) return NULL;
    json_error_t je;
    json_t *o = json_load_file(path, 0, &je);
    if (!o) fprintf(stderr, "bench report: %s:%d:%d: %s\n", path, je.line, je.column, je.text);
    return o;
}

static double num(const json_t *o, const char *key) {
    json_t *v = o ? json_object_get(o, key) : NULL;
    return v && json_is_number(v) ? json_number_value(v) : NAN;
}

/* A number or null when not finite. */
static json_t *jnum(double x) { return isfinite(x) ? json_real(x) : json_null(); }

static json_t *pick(const json_t *src, const char *const *keys) {
    if (!src) return json_null();
    json_t *o = json_object();
    for (int i = 0; keys[i]; i++) {
        json_t *v = json_object_get(src, keys[i]);
        json_object_set(o, keys[i], v ? v : json_null());
    }
    return o;
}

static void fmt_num(char *buf, size_t cap, double x, const char *fmt) {
    if (isfinite(x)) snprintf(buf, cap, fmt, x);
    else snprintf(buf, cap, "-");
}

static void row(const char *label, const json_t *ours, const char *key, double torch, double mfu,
                double rss) {
    char a[32], p[32], b[32], r[32], m[32], s[32];
    double x = num(ours, key);
    fmt_num(a, sizeof a, x, "%.1f");
    fmt_num(p, sizeof p, num(ours, "pairs_per_s"), "%.3f");
    fmt_num(b, sizeof b, torch, "%.1f");
    fmt_num(r, sizeof r, x / torch, "%.2fx");
    fmt_num(m, sizeof m, mfu * 100, "%.1f%%");
    fmt_num(s, sizeof s, rss / (1 << 20), "%.0f");
    printf("  %-40s %10s %11s %11s %7s %6s %9s\n", label, a, p, b, r, m, s);
}

static int cmd_report(int argc, char **argv) {
    if (argc != 6) return fprintf(stderr, "usage: bench report PARTS OUT MODE MODELS DISTS\n"), 2;
    const char *dir = argv[1];
    json_t *sg = load_part(dir, "sgemm"), *tk = load_part(dir, "tokenizer"),
           *tinfo = load_part(dir, "torch_info"), *env = load_part(dir, "env");
    /* The sgemm peak was measured at the start and at the end of the run;
     * the better one is the machine's. */
    json_t *sg_end = load_part(dir, "sgemm_end");
    if (sg && num(sg_end, "gflops") > num(sg, "gflops"))
        json_object_set(sg, "gflops", json_object_get(sg_end, "gflops"));
    json_decref(sg_end);
    double peak = num(sg, "gflops") * 1e9;
    json_t *out = json_object();
    json_object_set_new(out, "mode", json_string(argv[3]));
    json_object_set_new(out, "threads", sg ? json_incref(json_object_get(sg, "threads")) : json_null());
    json_object_set_new(out, "blas_core", json_string(model_blas_corename()));
    json_object_set_new(out, "environment",
                        pick(env, (const char *const[]){"load_average_start", "load_average_end",
                                                        "omp_wait_policy", "nproc", NULL}));
    json_object_set_new(out, "counting",
                        json_string("tokens = (P+C)+(P+R) real tokens per pair for every column; "
                                    "FLOPs = matmuls the engine runs (packed tokens, vocabulary "
                                    "projection on response rows only, attention over visible "
                                    "keys), x3 for a train step; MFU = FLOP/s / sgemm peak"));
    json_object_set_new(out, "sgemm", pick(sg, (const char *const[]){"n", "reps", "gflops", NULL}));
    json_object_set_new(out, "torch", tinfo ? json_incref(tinfo) : json_pack("{s:b,s:s}", "available", 0, "reason", "torch_bench.py did not run"));
    json_object_set_new(out, "tokenizer",
                        pick(tk, (const char *const[]){"file", "corpus_bytes", "documents", "tokens",
                                                       "seconds", "mb_per_s", "tokens_per_s", NULL}));
    json_t *runs = json_array();
    printf("\ndpoc benchmark (%s): %.0f threads, BLAS core %s, sgemm peak %.1f GFLOP/s\n", argv[3],
           num(sg, "threads"),
           model_blas_corename(), peak / 1e9);
    double load = num(env, "load_average_start"), load_end = num(env, "load_average_end");
    if (load > 0.5 * num(sg, "threads") || load_end > num(sg, "threads") + 1)
        printf("WARNING: the machine was busy (load average %.1f before, %.1f after, %.0f cores): "
               "these figures are not representative\n", load, load_end, num(env, "nproc"));
    json_t *tav = tinfo ? json_object_get(tinfo, "available") : NULL;
    if (!tav || !json_is_true(tav)) {
        json_t *why = tinfo ? json_object_get(tinfo, "reason") : NULL;
        printf("PyTorch: not measured (%s)\n", why && json_is_string(why) ? json_string_value(why) : "absent");
    } else
        printf("PyTorch %s, eager CPU, same thread count; tokens = real tokens (P+C)+(P+R) per pair\n",
               json_string_value(json_object_get(tinfo, "version")));
    printf("\n  %-40s %10s %11s %11s %7s %6s %9s\n", "workload", "ours tok/s", "ours pair/s",
           "torch tok/s", "ratio", "MFU", "peak MiB");
    char models[512], dists[64];
    snprintf(models, sizeof models, "%s", argv[4]);
    snprintf(dists, sizeof dists, "%s", argv[5]);
    char *msave = NULL;
    json_t *mem_rows = json_array();
    for (char *mn = strtok_r(models, ",", &msave); mn; mn = strtok_r(NULL, ",", &msave)) {
        char dl[64];
        snprintf(dl, sizeof dl, "%s", dists);
        char *dsave = NULL;
        for (char *dn = strtok_r(dl, ",", &dsave); dn; dn = strtok_r(NULL, ",", &dsave)) {
            char nm[600];
            json_t *part[8];
            const char *suffix[8] = {"pre_on", "pre_off", "train_on", "train_off", "torch_pre",
                                     "torch_train", "train_lora", "torch_lora"};
            for (int k = 0; k < 8; k++) {
                snprintf(nm, sizeof nm, "%s.%s.%s", mn, dn, suffix[k]);
                part[k] = load_part(dir, nm);
            }
            json_t *pon = part[0], *poff = part[1], *ton = part[2], *toff = part[3], *tp = part[4],
                   *tt = part[5], *tl = part[6], *ttl = part[7];
            const char *pk[] = {"pairs", "batches", "max_batch_tokens", "seq_tokens", "packed_tokens",
                                "seconds", "tokens_per_s", "pairs_per_s", "gflops_per_s",
                                "peak_rss_bytes", NULL};
            const char *tk2[] = {"batch_pairs", "timed_steps", "max_batch_tokens",
                                 "seconds_per_step", "warmup_seconds", "tokens_per_s",
                                 "pairs_per_s", "gflops_per_s", "peak_rss_bytes", NULL};
            const char *tpk[] = {"pairs", "batch_pairs", "seq_tokens", "padded_tokens", "seconds",
                                 "tokens_per_s", "pairs_per_s", "peak_rss_bytes", NULL};
            const char *ttk[] = {"batch_pairs", "timed_steps", "seconds_per_step",
                                 "reference_seconds_per_step", "tokens_per_s", "pairs_per_s",
                                 "policy_only_tokens_per_s", "padded_tokens", "peak_rss_bytes", NULL};
            json_t *r = json_object();
            json_object_set_new(r, "model", json_string(mn));
            json_object_set_new(r, "dist", json_string(dn));
            json_t *pre = json_object(), *tr = json_object();
            json_t *o1 = pick(pon, pk), *o2 = pick(poff, pk), *o3 = pick(ton, tk2), *o4 = pick(toff, tk2);
            double mfu_pon = num(pon, "gflops_per_s") * 1e9 / peak,
                   mfu_poff = num(poff, "gflops_per_s") * 1e9 / peak,
                   mfu_ton = num(ton, "gflops_per_s") * 1e9 / peak,
                   mfu_toff = num(toff, "gflops_per_s") * 1e9 / peak;
            if (pon) json_object_set_new(o1, "mfu", jnum(mfu_pon));
            if (poff) json_object_set_new(o2, "mfu", jnum(mfu_poff));
            if (ton) json_object_set_new(o3, "mfu", jnum(mfu_ton));
            if (toff) json_object_set_new(o4, "mfu", jnum(mfu_toff));
            json_object_set_new(pre, "ours_sharing", o1);
            json_object_set_new(pre, "ours_no_sharing", o2);
            json_object_set_new(pre, "torch", pick(tp, tpk));
            double pre_t = num(tp, "tokens_per_s");
            json_object_set_new(pre, "ratio_sharing", jnum(num(pon, "tokens_per_s") / pre_t));
            json_object_set_new(pre, "ratio_no_sharing", jnum(num(poff, "tokens_per_s") / pre_t));
            json_object_set_new(pre, "store_logp_bytes_per_token", jnum(num(pon, "store_logp_bytes_per_token")));
            json_object_set_new(pre, "store_bytes_per_token", jnum(num(pon, "store_bytes_per_token")));
            json_object_set_new(tr, "ours_sharing", o3);
            json_object_set_new(tr, "ours_no_sharing", o4);
            json_object_set_new(tr, "torch", pick(tt, ttk));
            double tr_t = num(tt, "tokens_per_s"), tr_pol = num(tt, "policy_only_tokens_per_s");
            json_object_set_new(tr, "ratio_sharing", jnum(num(ton, "tokens_per_s") / tr_t));
            json_object_set_new(tr, "ratio_no_sharing", jnum(num(toff, "tokens_per_s") / tr_t));
            json_object_set_new(tr, "ratio_vs_torch_policy_only", jnum(num(ton, "tokens_per_s") / tr_pol));
            json_object_set_new(r, "precompute", pre);
            json_object_set_new(r, "train", tr);
            /* LoRA: our step against PyTorch's LoRA DPO step (reference =
             * the base, adapters off) and against our own full step. */
            double mfu_tl = num(tl, "gflops_per_s") * 1e9 / peak;
            if (tl) {
                json_t *lo = json_object(), *ol = pick(tl, tk2);
                json_object_set_new(ol, "mfu", jnum(mfu_tl));
                json_object_set_new(ol, "lora_r", jnum(num(tl, "lora_r")));
                json_object_set_new(ol, "lora_params", jnum(num(tl, "lora_params")));
                json_object_set_new(ol, "estimate_bytes",
                                    jnum(num(tl, "est_weights_bytes") + 16 * num(tl, "lora_params") +
                                         num(tl, "est_activation_bytes")));
                json_object_set_new(lo, "ours", ol);
                json_object_set_new(lo, "torch", pick(ttl, ttk));
                json_object_set_new(lo, "ratio", jnum(num(tl, "tokens_per_s") / num(ttl, "tokens_per_s")));
                json_object_set_new(lo, "step_over_full_step",
                                    jnum(num(tl, "seconds_per_step") / num(ton, "seconds_per_step")));
                json_object_set_new(r, "train_lora", lo);
            }
            /* Memory: what training needs by the estimate, what an online DPO
             * (policy + reference weights, one policy's gradients and AdamW
             * state, activations) needs, and the bound. */
            double np = num(ton, "n_params"), w = num(ton, "est_weights_bytes"),
                   g = num(ton, "est_grads_bytes"), ad = num(ton, "est_adam_bytes"),
                   act = num(ton, "est_activation_bytes"), rss = num(ton, "peak_rss_bytes");
            json_t *mem = json_object();
            json_object_set_new(mem, "n_params", jnum(np));
            json_object_set_new(mem, "train_tokens", jnum(num(ton, "max_batch_tokens")));
            json_object_set_new(mem, "precompute_peak_rss_bytes", jnum(num(pon, "peak_rss_bytes")));
            json_object_set_new(mem, "train_peak_rss_bytes", jnum(rss));
            json_object_set_new(mem, "estimate_bytes", jnum(w + g + ad + act));
            json_object_set_new(mem, "estimate_activation_bytes", jnum(act));
            json_object_set_new(mem, "online_dpo_bytes", jnum(2 * w + g + ad + act));
            json_object_set_new(mem, "target_bytes", jnum(1.2 * (16 * np + act)));
            json_object_set_new(mem, "train_peak_over_target", jnum(rss / (1.2 * (16 * np + act))));
            json_object_set_new(mem, "torch_precompute_peak_rss_bytes", jnum(num(tp, "peak_rss_bytes")));
            json_object_set_new(mem, "torch_train_peak_rss_bytes", jnum(num(tt, "peak_rss_bytes")));
            json_object_set_new(r, "memory", mem);
            json_array_append_new(runs, r);
            json_array_append(mem_rows, mem);

            char lab[128];
            snprintf(lab, sizeof lab, "%s %s precompute, sharing", mn, dn);
            row(lab, pon, "tokens_per_s", pre_t, mfu_pon, num(pon, "peak_rss_bytes"));
            snprintf(lab, sizeof lab, "%s %s precompute, no sharing", mn, dn);
            row(lab, poff, "tokens_per_s", pre_t, mfu_poff, num(poff, "peak_rss_bytes"));
            snprintf(lab, sizeof lab, "%s %s train step, sharing", mn, dn);
            row(lab, ton, "tokens_per_s", tr_t, mfu_ton, rss);
            if (tl) {
                snprintf(lab, sizeof lab, "%s %s LoRA r%.0f step (%.2fx full)", mn, dn,
                         num(tl, "lora_r"), num(tl, "seconds_per_step") / num(ton, "seconds_per_step"));
                row(lab, tl, "tokens_per_s", num(ttl, "tokens_per_s"), mfu_tl,
                    num(tl, "peak_rss_bytes"));
            }
            if (toff) {
                snprintf(lab, sizeof lab, "%s %s train step, no sharing", mn, dn);
                row(lab, toff, "tokens_per_s", tr_t, mfu_toff, num(toff, "peak_rss_bytes"));
            }
            if (isfinite(tr_pol)) {
                snprintf(lab, sizeof lab, "%s %s train vs torch policy-only", mn, dn);
                row(lab, ton, "tokens_per_s", tr_pol, NAN, NAN);
            }
            printf("\n");
            for (int k = 0; k < 8; k++) json_decref(part[k]);
        }
    }
    json_object_set_new(out, "runs", runs);

    printf("  (seconds, FLOPs, padding and warm-up times are in results.json)\n\n");
    printf("  %-22s %9s %9s %9s %9s %9s %9s %7s\n", "memory (MiB)", "pre peak", "trn peak",
           "estimate", "online", "target", "torch trn", "vs tgt");
    size_t i;
    json_t *mr;
    json_array_foreach(runs, i, mr) {
        json_t *mem = json_object_get(mr, "memory");
        char lab[96];
        snprintf(lab, sizeof lab, "%s %s", json_string_value(json_object_get(mr, "model")),
                 json_string_value(json_object_get(mr, "dist")));
        const char *keys[] = {"precompute_peak_rss_bytes", "train_peak_rss_bytes", "estimate_bytes",
                              "online_dpo_bytes", "target_bytes", "torch_train_peak_rss_bytes"};
        printf("  %-22s", lab);
        for (int k = 0; k < 6; k++) {
            char b[32];
            fmt_num(b, sizeof b, num(mem, keys[k]) / (1 << 20), "%.0f");
            printf(" %9s", b);
        }
        char b[32];
        fmt_num(b, sizeof b, num(mem, "train_peak_over_target"), "%.2f");
        printf(" %7s\n", b);
    }
    json_decref(mem_rows);
    printf("  (estimate = model_memory_estimate: weights+grads+AdamW+activations; online = two models'"
           " weights + grads + AdamW + activations; target = 1.2 x (16 B/param + activations))\n\n");
    char b1[32], b2[32];
    fmt_num(b1, sizeof b1, num(tk, "mb_per_s"), "%.2f");
    fmt_num(b2, sizeof b2, num(tk, "tokens_per_s") / 1e3, "%.0f");
    printf("tokenizer: %s MB/s, %sk tokens/s (1 thread, %s)\n", b1, b2,
           tk ? json_string_value(json_object_get(tk, "file")) : "not measured");
    json_t *r0 = json_array_size(runs) ? json_array_get(runs, 0) : NULL;
    json_array_foreach(runs, i, mr) {
        json_t *pre = json_object_get(mr, "precompute");
        fmt_num(b1, sizeof b1, num(pre, "store_logp_bytes_per_token"), "%.2f");
        fmt_num(b2, sizeof b2, num(pre, "store_bytes_per_token"), "%.2f");
        printf("store: %s %s: %s bytes per response-token log-prob, %s bytes per stored token (ids + log-probs)\n",
               json_string_value(json_object_get(mr, "model")),
               json_string_value(json_object_get(mr, "dist")), b1, b2);
    }
    (void)r0;
    json_decref(sg), json_decref(tk), json_decref(tinfo), json_decref(env);
    int rc = write_json(out, argv[2]);
    if (!rc) printf("\nwritten: %s\n", argv[2]);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench sgemm|lengths|precompute|train|tokenizer|report|"
                        "write_ckpt|big_precompute|big_lora ...\n");
        return 2;
    }
    const char *mode = argv[1];
    argc--, argv++;
    if (!strcmp(mode, "sgemm")) return cmd_sgemm(argc, argv);
    if (!strcmp(mode, "lengths")) return cmd_lengths(argc, argv);
    if (!strcmp(mode, "precompute")) return cmd_precompute(argc, argv);
    if (!strcmp(mode, "train")) return cmd_train(argc, argv);
    if (!strcmp(mode, "tokenizer")) return cmd_tokenizer(argc, argv);
    if (!strcmp(mode, "report")) return cmd_report(argc, argv);
    if (!strcmp(mode, "write_ckpt")) return cmd_write_ckpt(argc, argv);
    if (!strcmp(mode, "big_precompute")) return cmd_big_precompute(argc, argv);
    if (!strcmp(mode, "big_lora")) return cmd_big_lora(argc, argv);
    if (!strcmp(mode, "big_report")) return cmd_big_report(argc, argv);
    fprintf(stderr, "bench: unknown mode %s\n", mode);
    return 2;
}
