/* big — models bigger than a float32 copy fits: random-weight BF16
 * checkpoints of real shapes written to disk as published (sharded,
 * model-0000i-of-0000n.safetensors + index, tensor by tensor, never the
 * whole model in memory), then run from their mapping through dpoc's real
 * loader, with or without a memory budget (model_plan_fit decides streaming,
 * recompute and batch size as dpoc precompute / train do).
 *
 *   bench write_ckpt CONFIG DIR SHARD_BYTES SEED
 *   bench big_precompute DIR LENGTHS MAX_TOKENS BUDGET_BYTES OUT.json
 *   bench big_lora DIR LENGTHS PAIRS STEPS RANK BUDGET_BYTES OUT.json
 *   bench big_report PARTS_DIR OUT.json     the table of the parts big.*.json
 *
 * BUDGET_BYTES 0 means no budget. Peak RSS counts the mapping's resident
 * pages (the page cache holds the file on this machine; bytes_read says
 * what a slow disk would have to deliver). Timing: every batch or step is
 * timed; "steady" leaves out the first (first touch of the mapping, BLAS
 * start-up). */
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench.h"
#include "log.h"
#include "loss.h"
#include "optim.h"

/* ---- writing a checkpoint ---- */

static uint64_t xorshift(uint64_t *s) {
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

/* n BF16 values of tensor NAME (rank NDIM): norms 1, biases 0, matrices
 * uniform with the std of N(0, 0.02), into f. */
static int write_values(FILE *f, const char *name, int ndim, size_t n, uint64_t *rng) {
    enum { CHUNK = 1 << 20 };
    static uint16_t buf[CHUNK];
    int is_norm = ndim == 1 && (strstr(name, "norm") || strstr(name, "ln_"));
    int is_bias = ndim == 1 && strstr(name, "bias");
    for (size_t done = 0; done < n;) {
        size_t k = n - done < CHUNK ? n - done : CHUNK;
        for (size_t i = 0; i < k; i++) {
            if (is_norm) buf[i] = 0x3f80;
            else if (is_bias) buf[i] = 0;
            else {
                float u = (float)((double)(xorshift(rng) >> 40) * 0x1.0p-24 * 2.0 - 1.0) * 0.0346f;
                uint32_t b;
                memcpy(&b, &u, 4);
                buf[i] = (uint16_t)(b >> 16);
            }
        }
        if (fwrite(buf, 2, k, f) != k) return -1;
        done += k;
    }
    return 0;
}

int cmd_write_ckpt(int argc, char **argv) {
    if (argc != 5) return fprintf(stderr, "usage: bench write_ckpt CONFIG DIR SHARD_BYTES SEED\n"), 2;
    const char *dir = argv[2];
    size_t shard_bytes = strtoull(argv[3], NULL, 10);
    uint64_t rng = strtoull(argv[4], NULL, 10) * 2654435761u + 88172645463325252ull;
    dp_err e = {0};
    json_error_t je;
    json_t *cfg = json_load_file(argv[1], 0, &je);
    if (!cfg) return fprintf(stderr, "bench: %s: %s\n", argv[1], je.text), 1;
    json_object_set_new(cfg, "torch_dtype", json_string("bfloat16"));
    char *text = json_dumps(cfg, JSON_INDENT(2));
    model_config c;
    model *m = NULL;
    model_options o = {.training = 0, .max_tokens = 1, .threads = 1};
    mkdir(dir, 0777);
    if (model_read_config(&c, text, &e) || model_new(&m, &c, text, &o, &e)) return fail("write_ckpt", &e);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_dump_file(cfg, path, JSON_INDENT(2));
    json_decref(cfg);
    free(text);
    /* shards: tensors in the model's order, a new file past shard_bytes */
    int nt = model_n_tensors(m), n_shards = 1;
    int *shard = malloc((size_t)nt * sizeof *shard);
    size_t acc = 0, total = 0;
    for (int i = 0; i < nt; i++) {
        size_t b = model_tensor_at(m, i)->numel * 2;
        if (acc && acc + b > shard_bytes) n_shards++, acc = 0;
        shard[i] = n_shards - 1;
        acc += b, total += b;
    }
    json_t *map = json_object();
    double t0 = log_now_seconds();
    int rc = 0;
    for (int s = 0; s < n_shards && !rc; s++) {
        char name[64];
        snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", s + 1, n_shards);
        json_t *h = json_object();
        size_t off = 0;
        for (int i = 0; i < nt; i++) {
            if (shard[i] != s) continue;
            const model_tensor *t = model_tensor_at(m, i);
            json_t *shape = json_array();
            for (int d = 0; d < t->ndim; d++) json_array_append_new(shape, json_integer(t->shape[d]));
            json_object_set_new(h, t->name, json_pack("{s:s,s:o,s:[I,I]}", "dtype", "BF16", "shape",
                                                      shape, "data_offsets", (json_int_t)off,
                                                      (json_int_t)(off + t->numel * 2)));
            json_object_set_new(map, t->name, json_string(name));
            off += t->numel * 2;
        }
        json_object_set_new(h, "__metadata__", json_pack("{s:s}", "format", "pt"));
        char *ht = json_dumps(h, JSON_COMPACT);
        json_decref(h);
        size_t hl = strlen(ht), pad = (8 - hl % 8) % 8;
        snprintf(path, sizeof path, "%s/%s", dir, name);
        FILE *f = fopen(path, "wb");
        uint64_t n64 = hl + pad;
        rc = !f || fwrite(&n64, 8, 1, f) != 1 || fwrite(ht, 1, hl, f) != hl ||
             fwrite("        ", 1, pad, f) != pad;
        free(ht);
        for (int i = 0; i < nt && !rc; i++)
            if (shard[i] == s)
                rc = write_values(f, model_tensor_at(m, i)->name, model_tensor_at(m, i)->ndim,
                                  model_tensor_at(m, i)->numel, &rng);
        if (f && fclose(f)) rc = 1;
    }
    json_t *index = json_pack("{s:{s:I},s:o}", "metadata", "total_size", (json_int_t)total,
                              "weight_map", map);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (!rc) rc = json_dump_file(index, path, JSON_INDENT(2));
    json_decref(index);
    free(shard);
    model_free(m);
    if (rc) return fprintf(stderr, "bench: write_ckpt: cannot write %s\n", dir), 1;
    fprintf(stderr, "bench: %s: %.2f GiB of BF16 in %d shards in %.1f s\n", dir,
            (double)total / (1u << 30), n_shards, log_now_seconds() - t0);
    return 0;
}

/* ---- running from the mapping ---- */

static size_t dir_weight_bytes(const char *dir) {
    DIR *d = opendir(dir);
    size_t n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l > 12 && !strcmp(e->d_name + l - 12, ".safetensors")) {
            char p[4096];
            struct stat st;
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            if (!stat(p, &st)) n += (size_t)st.st_size;
        }
    }
    if (d) closedir(d);
    return n;
}

static void set_plan(json_t *o, const model_plan *p, size_t budget) {
    json_object_set_new(o, "budget_bytes", json_integer((json_int_t)budget));
    json_object_set_new(o, "stream", json_boolean(p->stream));
    json_object_set_new(o, "recompute", json_boolean(p->recompute));
    json_object_set_new(o, "plan_tokens", json_integer(p->tokens));
    json_object_set_new(o, "plan_estimate_bytes", json_integer((json_int_t)p->total));
}

static void set_read(json_t *o, const model *m, const char *dir, double tokens) {
    uint64_t bytes;
    double secs;
    model_read_stats(m, &bytes, &secs);
    json_object_set_new(o, "weight_file_bytes", json_integer((json_int_t)dir_weight_bytes(dir)));
    json_object_set_new(o, "bytes_read", json_integer((json_int_t)bytes));
    json_object_set_new(o, "read_seconds", json_real(secs));
    json_object_set_new(o, "bytes_read_per_token", json_real(tokens > 0 ? (double)bytes / tokens : 0));
}

int cmd_big_precompute(int argc, char **argv) {
    if (argc != 6)
        return fprintf(stderr, "usage: bench big_precompute DIR LENGTHS MAX_TOKENS BUDGET OUT\n"), 2;
    const char *dir = argv[1];
    int max_tokens = atoi(argv[3]);
    size_t budget = strtoull(argv[4], NULL, 10);
    dp_err e = {0};
    model_config c;
    int wb;
    pairs p;
    if (model_peek(dir, &c, &wb, &e)) return fail("big_precompute", &e);
    if (pairs_read(&p, argv[2])) return 1;
    int longest = 0;
    for (int i = 0; i < p.n; i++)
        if (packed_tokens(&p, i, 1) > longest) longest = (int)packed_tokens(&p, i, 1);
    model_plan plan = model_plan_estimate(&c, MODEL_JOB_FORWARD, wb, max_tokens, 0, 0, 0, 0);
    if (budget && model_plan_fit(&plan, &c, MODEL_JOB_FORWARD, wb, max_tokens, longest, 0, budget,
                                 0, 0, &e))
        return fail("plan", &e);
    batch_plan bp;
    if (plan_batches(&bp, &p, 1, plan.tokens)) return fail("batches", NULL);
    model_options opt = {.training = 0, .prefix_sharing = 1, .threads = threads_wanted(),
                         .max_tokens = bp.max_tokens};
    model *m = NULL;
    double t_load = log_now_seconds();
    if (model_load(&m, dir, &opt, &e)) return fail("model_load", &e);
    model_stream(m, plan.stream);
    t_load = log_now_seconds() - t_load;
    long resp = 0;
    for (int i = 0; i < p.n; i++) resp += p.C[i] + p.R[i];
    float *lp = malloc((size_t)resp * sizeof(float));
    double t_all = 0, t_steady = 0, fl_all = 0, fl_steady = 0, tok_all = 0, tok_steady = 0;
    long off = 0;
    int rc = 0;
    for (int b = 0; b < bp.n_batches && !rc; b++) {
        batch_buf bb;
        model_batch mb;
        const int *ord = bp.order + bp.start[b];
        if (batch_fill(&bb, &mb, &p, ord, bp.count[b], c.vocab)) rc = fail("batch", NULL);
        double t0 = log_now_seconds();
        if (!rc && model_forward(m, &mb, lp + off, NULL, &e)) rc = fail("forward", &e);
        double t = log_now_seconds() - t0, fl = 0, tk = 0;
        for (int k = 0; k < bp.count[b]; k++)
            fl += pair_forward_flops(&c, &p, ord[k], 1), tk += (double)seq_tokens(&p, ord[k]);
        t_all += t, fl_all += fl, tok_all += tk;
        if (b > 0) t_steady += t, fl_steady += fl, tok_steady += tk;
        off += bb.n_resp;
        batch_buf_free(&bb);
        fprintf(stderr, "bench: %s batch %d/%d: %.0f tokens in %.1f s\n", dir, b + 1, bp.n_batches,
                tk, t);
    }
    if (!rc) {
        json_t *o = json_object();
        set_common(o, "big_precompute", dir, &p, &c, 1);
        set_plan(o, &plan, budget);
        json_object_set_new(o, "batches", json_integer(bp.n_batches));
        json_object_set_new(o, "load_seconds", json_real(t_load));
        json_object_set_new(o, "seconds", json_real(t_all));
        json_object_set_new(o, "steady_tokens_per_s", json_real(t_steady > 0 ? tok_steady / t_steady : 0));
        json_object_set_new(o, "steady_gflops_per_s", json_real(t_steady > 0 ? fl_steady / t_steady / 1e9 : 0));
        set_rates(o, t_all, tok_all, p.n, fl_all, t_load);
        set_read(o, m, dir, tok_all);
        rc = write_json(o, argv[5]);
    }
    free(lp);
    model_free(m);
    plan_free(&bp);
    pairs_free(&p);
    return rc;
}

int cmd_big_lora(int argc, char **argv) {
    if (argc != 8)
        return fprintf(stderr, "usage: bench big_lora DIR LENGTHS PAIRS STEPS RANK BUDGET OUT\n"), 2;
    const char *dir = argv[1];
    int B = atoi(argv[3]), steps = atoi(argv[4]), r = atoi(argv[5]);
    size_t budget = strtoull(argv[6], NULL, 10);
    dp_err e = {0};
    model_config c;
    int wb;
    pairs p;
    if (model_peek(dir, &c, &wb, &e)) return fail("big_lora", &e);
    if (pairs_read(&p, argv[2])) return 1;
    int tokens = 0;
    for (int s = 0; s < steps; s++) {
        int t = 0;
        for (int k = 0; k < B; k++) t += (int)packed_tokens(&p, (s * B + k) % p.n, 1);
        if (t > tokens) tokens = t;
    }
    unsigned targets = model_lora_family_targets(c.model_type);
    model_plan plan = model_plan_estimate(&c, MODEL_JOB_LORA, wb, tokens, 0, 0, r, targets);
    if (budget && model_plan_fit(&plan, &c, MODEL_JOB_LORA, wb, tokens, tokens, 0, budget, r,
                                 targets, &e))
        return fail("plan", &e);
    model_options opt = {.training = 1, .prefix_sharing = 1, .threads = threads_wanted(),
                         .max_tokens = tokens, .recompute = plan.recompute,
                         .lora = {.r = r, .alpha = 2.0f * (float)r, .targets = targets, .seed = 42}};
    model *m = NULL;
    double t_load = log_now_seconds();
    if (model_load(&m, dir, &opt, &e)) return fail("model_load", &e);
    model_stream(m, plan.stream);
    t_load = log_now_seconds() - t_load;
    dpo_run dr;
    int rc = dpo_run_init(&dr, m, tokens, B, &e) ? fail("optim", &e) : 0;
    double first = 0, t_steady = 0, fl_steady = 0, tok_steady = 0, tok_all = 0, fl_all = 0;
    for (int s = 0; s < steps && !rc; s++) {
        int ord[64];
        for (int k = 0; k < B && k < 64; k++) ord[k] = (s * B + k) % p.n;
        batch_buf bb;
        model_batch mb;
        if (batch_fill(&bb, &mb, &p, ord, B, c.vocab)) rc = fail("batch", NULL);
        double t0 = log_now_seconds();
        if (!rc && isnan(dpo_step(m, &mb, &dr, &e))) rc = fail("step", &e);
        double t = log_now_seconds() - t0, fl = 0, tk = 0;
        for (int k = 0; k < B; k++)
            fl += 2.0 * pair_forward_flops(&c, &p, ord[k], 1), tk += (double)seq_tokens(&p, ord[k]);
        tok_all += tk, fl_all += fl;
        if (s == 0) first = t;
        else t_steady += t, fl_steady += fl, tok_steady += tk;
        batch_buf_free(&bb);
        fprintf(stderr, "bench: %s LoRA step %d/%d: %.0f tokens in %.1f s\n", dir, s + 1, steps, tk, t);
    }
    if (!rc) {
        json_t *js = json_object();
        set_common(js, "big_lora", dir, &p, &c, 1);
        set_plan(js, &plan, budget);
        json_object_set_new(js, "lora_r", json_integer(r));
        json_object_set_new(js, "lora_params", json_integer((json_int_t)dr.o.n));
        json_object_set_new(js, "batch_pairs", json_integer(B));
        json_object_set_new(js, "steps", json_integer(steps));
        json_object_set_new(js, "load_seconds", json_real(t_load));
        json_object_set_new(js, "first_step_seconds", json_real(first));
        json_object_set_new(js, "steady_seconds_per_step", json_real(steps > 1 ? t_steady / (steps - 1) : first));
        json_object_set_new(js, "steady_tokens_per_s", json_real(t_steady > 0 ? tok_steady / t_steady : 0));
        json_object_set_new(js, "steady_gflops_per_s", json_real(t_steady > 0 ? fl_steady / t_steady / 1e9 : 0));
        json_object_set_new(js, "tokens_per_s", json_real(tok_all / (first + t_steady)));
        json_object_set_new(js, "gflops_per_s", json_real(fl_all / (first + t_steady) / 1e9));
        json_object_set_new(js, "peak_rss_bytes", json_integer((json_int_t)log_peak_rss_bytes()));
        set_read(js, m, dir, tok_all);
        rc = write_json(js, argv[7]);
    }
    dpo_run_free(&dr);
    model_free(m);
    pairs_free(&p);
    return rc;
}

/* ---- the report ---- */

static json_t *part(const char *dir, const char *name) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s.json", dir, name);
    return json_load_file(p, 0, NULL);
}
static double jnum_of(json_t *o, const char *k) {
    json_t *v = o ? json_object_get(o, k) : NULL;
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static json_t *finite_or_null(double x) { return isfinite(x) ? json_real(x) : json_null(); }

/* One row: a job of ours, PyTorch's peak for the same job when measured,
 * and the bound on peak RSS (NAN: none). */
static void big_row(json_t *rows, const char *label, json_t *o, json_t *torch, double bound,
                    double peak, const char *rate_key) {
    if (!o) {
        printf("  %-44s (not run)\n", label);
        return;
    }
    double rss = jnum_of(o, "peak_rss_bytes"), gib = 1024.0 * 1024 * 1024;
    double rate = jnum_of(o, rate_key);
    if (!(rate > 0)) rate = jnum_of(o, "tokens_per_s");
    double mfu = jnum_of(o, rate_key[0] == 's' ? "steady_gflops_per_s" : "gflops_per_s") * 1e9 / peak;
    if (!(mfu > 0)) mfu = jnum_of(o, "gflops_per_s") * 1e9 / peak;
    printf("  %-44s %8.2f %8.2f %9.1f %5.0f%% %10.0f %9.2f\n", label, rss / gib,
           isnan(bound) ? NAN : bound / gib, rate, 100 * mfu, jnum_of(o, "bytes_read_per_token"),
           torch ? jnum_of(torch, "peak_rss_bytes") / gib : NAN);
    json_t *r = json_deep_copy(o);
    json_object_set_new(r, "label", json_string(label));
    json_object_set_new(r, "bound_bytes", finite_or_null(bound));
    json_object_set_new(r, "within_bound", isnan(bound) ? json_null() : json_boolean(rss <= bound));
    json_object_set_new(r, "mfu", finite_or_null(mfu));
    json_object_set_new(r, "torch_peak_rss_bytes", finite_or_null(jnum_of(torch, "peak_rss_bytes")));
    json_array_append_new(rows, r);
}

int cmd_big_report(int argc, char **argv) {
    if (argc != 3) return fprintf(stderr, "usage: bench big_report PARTS OUT.json\n"), 2;
    const char *d = argv[1];
    json_t *sg = part(d, "sgemm"), *sg2 = part(d, "sgemm_end");
    double peak = fmax(jnum_of(sg, "gflops"), jnum_of(sg2, "gflops")) * 1e9;
    json_t *p1 = part(d, "big.1b.pre"), *l1 = part(d, "big.1b.lora"), *p7 = part(d, "big.7b.pre"),
           *p7b = part(d, "big.7b.pre_budget"), *l7b = part(d, "big.7b.lora_budget"),
           *tp1 = part(d, "big.1b.torch_pre"), *tl1 = part(d, "big.1b.torch_lora");
    double gib = 1024.0 * 1024 * 1024, f1 = jnum_of(p1 ? p1 : l1, "weight_file_bytes"),
           f7 = jnum_of(p7 ? p7 : p7b, "weight_file_bytes");
    printf("\nbig BF16 checkpoints run from their mapping (peak RSS counts the mapped pages; the\n"
           "page cache holds the files here, bytes read/token is what a disk would deliver):\n");
    printf("  1B files %.2f GiB, 7B files %.2f GiB\n", f1 / gib, f7 / gib);
    printf("  %-44s %8s %8s %9s %6s %10s %9s\n", "job", "peak GiB", "bound", "tok/s", "MFU",
           "B read/tok", "torch GiB");
    json_t *rows = json_array();
    big_row(rows, "Llama-3.2-1B precompute", p1, tp1, 1.15 * f1 + 0.5 * gib, peak, "steady_tokens_per_s");
    big_row(rows, "Llama-3.2-1B LoRA (r16) step", l1, tl1, 1.15 * f1 + 1.0 * gib, peak, "steady_tokens_per_s");
    big_row(rows, "Llama-2-7B precompute, no budget", p7, NULL, NAN, peak, "steady_tokens_per_s");
    big_row(rows, "Llama-2-7B precompute, budget 4 GiB", p7b, NULL, 4.0 * gib, peak, "steady_tokens_per_s");
    big_row(rows, "Llama-2-7B LoRA (r16) step, budget 4 GiB", l7b, NULL, 4.0 * gib, peak, "tokens_per_s");
    double ratio = jnum_of(p7b, "steady_tokens_per_s") / jnum_of(p7, "steady_tokens_per_s");
    printf("  7B budgeted / unbudgeted precompute tokens/s: %.2f (target >= 0.8)\n", ratio);
    printf("  PyTorch: 1B in float32 as torch_bench.py runs it; 7B not run (float32 weights alone"
           " are 25 GiB, more than this machine's 24 GiB)\n");
    json_t *out = json_object();
    json_object_set_new(out, "rows", rows);
    json_object_set_new(out, "files_1b_bytes", finite_or_null(f1));
    json_object_set_new(out, "files_7b_bytes", finite_or_null(f7));
    json_object_set_new(out, "budgeted_over_unbudgeted_7b", finite_or_null(ratio));
    int rc = write_json(out, argv[2]);
    json_decref(sg), json_decref(sg2), json_decref(p1), json_decref(l1), json_decref(p7);
    json_decref(p7b), json_decref(l7b), json_decref(tp1), json_decref(tl1);
    return rc;
}
