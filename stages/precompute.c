/* dpoc precompute — stage one: run the frozen reference once over the
 * dataset and cache every response's log-probabilities in the store.
 *
 * Recipe: load config → tokenizer → reference fingerprint → open store →
 * for each split, stream rows in windows of precompute.window_rows rows; a window's
 * examples are packed longest-first into batches of about
 * precompute.batch_tokens tokens; a batch whose examples all have values
 * for this reference is skipped, any other is run forward and its missing
 * values written, in transactions committed every precompute.commit_seconds.
 *
 * Why windows: the engine's numbers depend (at float rounding) on which
 * examples share a matrix multiply. Batches made from a fixed window of the
 * file, whatever is already stored, make a resumed run, and shards that
 * split the file by window, bit-identical to one uninterrupted run. kill -9
 * loses at most the uncommitted batches.
 *
 * Under mpirun rank r of N is shard r+1/N: rank 0 writes the store itself,
 * every other rank its own part, STORE.rank-R (a store, resumable alike),
 * which rank 0 merges into the store and removes once every rank is done.
 * A rank skips what the store or its part already holds, so a rerun after
 * any rank died resumes; parts left by a run with more ranks are merged too.
 *
 * On failure: what was computed is committed and kept (a rerun resumes);
 * a store this run created that holds no values is removed with its -wal
 * and -shm files, so bad data leaves nothing behind. */
#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "dataset.h"
#include "dist.h"
#include "fingerprint.h"
#include "model.h"
#include "stage_util.h"
#include "store.h"
#include "tokenizer.h"

typedef struct pending {
    store_record rec;
    ds_tokens tok;
    int stored;                 /* values for this reference already there */
} pending;

typedef struct run {
    config *cfg;
    tokenizer *tok;
    model *ref;
    store *st;                  /* written: the store (rank 0) or this rank's part */
    store *main_st;             /* ranks > 0: the store, read for values it has */
    char store_path[4200];      /* the file st is */
    int created_store;          /* the store file did not exist before this run */
    fp_result fp;
    ds_options dso;
    int shard_i, shard_n;
    long batch_tokens;
    double commit_seconds, last_commit, start;
    pending *queue;
    size_t n_queue, cap_queue;
    /* summary */
    long window;                /* index of the current window in this split */
    int rows_in_window, window_rows;
    long computed, reused, skipped, other_shard, tokens;
    long bad[DS_BAD_COUNT];
    /* scratch for one batch */
    int32_t *ids;
    int *np, *nc, *nr;
    float *logps;
} run;

static int parse_shard(const char *s, int *i, int *n, dp_err *err) {
    char extra, q[DP_QUOTE_CAP];
    if (sscanf(s, "%d/%d%c", i, n, &extra) != 2 || *n < 1 || *i < 1 || *i > *n)
        return dp_fail(err, "precompute.shard: expected i/n with 1 <= i <= n, got %s",
                       dp_quote(q, s, (size_t)-1));
    return 0;
}

/* Shards take whole windows, so each computes exactly the batches a single
 * run would. */
static int in_shard(const run *r) {
    return r->shard_n == 1 || (int)(r->window % r->shard_n) == r->shard_i - 1;
}

static int maybe_commit(run *r, int force, dp_err *err) {
    double now = su_now();
    if (!force && now - r->last_commit < r->commit_seconds) return 0;
    if (store_commit(r->st, err) || store_begin(r->st, err)) return -1;
    r->last_commit = now;
    return 0;
}

static long unit_tokens(const run *r, const pending *p) {
    int shared = cfg_bool(r->cfg, "precompute.prefix_sharing");
    return shared ? p->tok.n_prompt + p->tok.n_chosen + p->tok.n_rejected
                  : 2L * p->tok.n_prompt + p->tok.n_chosen + p->tok.n_rejected;
}

static int by_length_desc(const void *a, const void *b) {
    const pending *x = a, *y = b;
    long lx = x->tok.n_prompt + x->tok.n_chosen + x->tok.n_rejected;
    long ly = y->tok.n_prompt + y->tok.n_chosen + y->tok.n_rejected;
    if (lx != ly) return lx > ly ? -1 : 1;
    return strcmp(x->rec.id, y->rec.id);
}

/* Runs examples [lo, hi) of the queue as one packed forward pass and stores
 * the values of those that lack them; a batch already complete is skipped. */
static int run_batch(run *r, size_t lo, size_t hi, dp_err *err) {
    size_t t = 0, resp = 0;
    int n = (int)(hi - lo), missing = 0;
    for (size_t k = lo; k < hi; k++) missing += !r->queue[k].stored;
    if (!missing) {
        r->reused += n;
        return 0;
    }
    for (size_t k = lo; k < hi; k++) {
        pending *p = &r->queue[k];
        int i = (int)(k - lo);
        memcpy(r->ids + t, p->tok.prompt, (size_t)p->tok.n_prompt * sizeof(int32_t));
        t += (size_t)p->tok.n_prompt;
        memcpy(r->ids + t, p->tok.chosen, (size_t)p->tok.n_chosen * sizeof(int32_t));
        t += (size_t)p->tok.n_chosen;
        memcpy(r->ids + t, p->tok.rejected, (size_t)p->tok.n_rejected * sizeof(int32_t));
        t += (size_t)p->tok.n_rejected;
        r->np[i] = p->tok.n_prompt, r->nc[i] = p->tok.n_chosen, r->nr[i] = p->tok.n_rejected;
    }
    model_batch b = {n, r->ids, r->np, r->nc, r->nr};
    if (model_forward(r->ref, &b, r->logps, NULL, err)) return -1;
    r->tokens += (long)t;
    for (size_t k = lo; k < hi; k++) {
        pending *p = &r->queue[k];
        store_record *rec = &p->rec;
        size_t at = resp;
        resp += (size_t)(p->tok.n_chosen + p->tok.n_rejected);
        if (p->stored) {
            r->reused++;
            continue;
        }
        rec->prompt_ids = p->tok.prompt, rec->n_prompt = p->tok.n_prompt;
        rec->chosen_ids = p->tok.chosen, rec->n_chosen = p->tok.n_chosen;
        rec->rejected_ids = p->tok.rejected, rec->n_rejected = p->tok.n_rejected;
        rec->chosen_token_logps = r->logps + at;
        rec->rejected_token_logps = r->logps + at + p->tok.n_chosen;
        rec->ref_chosen_logp = su_sum(rec->chosen_token_logps, rec->n_chosen);
        rec->ref_rejected_logp = su_sum(rec->rejected_token_logps, rec->n_rejected);
        int rc = store_put_ref(r->st, r->fp.fingerprint, rec, err);
        rec->chosen_token_logps = rec->rejected_token_logps = NULL;
        rec->prompt_ids = rec->chosen_ids = rec->rejected_ids = NULL;
        if (rc) return -1;
        p->stored = 1;
        r->computed++;
    }
    return maybe_commit(r, 0, err);
}

/* Packs the queue longest-first into batches and runs them all. */
static int flush(run *r, log_progress *prog, dp_err *err) {
    if (r->n_queue == 0) return 0;
    qsort(r->queue, r->n_queue, sizeof *r->queue, by_length_desc);
    size_t lo = 0;
    int rc = 0;
    while (!rc && lo < r->n_queue) {
        size_t hi = lo;
        long tokens = 0;
        while (hi < r->n_queue && (hi == lo || tokens + unit_tokens(r, &r->queue[hi]) <= r->batch_tokens))
            tokens += unit_tokens(r, &r->queue[hi++]);
        rc = run_batch(r, lo, hi, err);
        log_progress_add(prog, (int64_t)(r->computed + r->reused - prog->done),
                         r->tokens - prog->tokens);
        lo = hi;
    }
    for (size_t k = 0; k < r->n_queue; k++) ds_tokens_free(&r->queue[k].tok);
    r->n_queue = 0;
    return rc;
}

static int enqueue(run *r, const store_record *rec, ds_tokens *tok, int stored, dp_err *err) {
    if (r->n_queue == r->cap_queue) {
        size_t cap = r->cap_queue ? 2 * r->cap_queue : 256;
        pending *q = realloc(r->queue, cap * sizeof *q);
        if (!q) return dp_fail(err, "out of memory");
        r->queue = q;
        r->cap_queue = cap;
    }
    pending *p = &r->queue[r->n_queue++];
    p->rec = *rec;
    p->tok = *tok;
    p->stored = stored;
    memset(tok, 0, sizeof *tok);
    return 0;
}

/* One bad row: stop (data.on_bad_row: error) or count it. */
static int bad_row(run *r, ds_bad why, dp_err *err) {
    if (!strcmp(cfg_str(r->cfg, "data.on_bad_row"), "error")) return -1;
    (void)err;
    r->bad[why]++;
    r->skipped++;
    return 0;
}

static int do_split(run *r, const char *split, const char *path, log_progress *prog, dp_err *err) {
    ds_reader *rd;
    r->window = 0;
    r->rows_in_window = 0;
    if (ds_open(&rd, path, &r->dso, err)) return -1;
    int rc = 0;
    long rows = 0;
    for (;;) {
        ds_row row;
        ds_bad why = DS_BAD_NONE;
        int got = ds_next(rd, &row, &why, err);
        if (got == 0) {
            /* An empty training file is a mistake to say now, not at train. */
            if (rows == 0 && !strcmp(split, "train")) {
                char q[DP_QUOTE_CAP];
                rc = dp_fail(err, "data.train: %s holds no rows (an empty file, or only blank lines)",
                             dp_label(q, path));
            }
            break;
        }
        rows++;
        if (got < 0 || (got == 2 && (rc = bad_row(r, why, err)))) {
            rc = -1;
            break;
        }
        if (got == 2) continue;
        /* a new window: finish the last one */
        if (r->rows_in_window == r->window_rows) {
            if ((rc = flush(r, prog, err))) break;
            r->window++;
            r->rows_in_window = 0;
        }
        r->rows_in_window++;
        if (!in_shard(r)) {
            r->other_shard++;
            continue;
        }
        store_record rec;
        memset(&rec, 0, sizeof rec);
        snprintf(rec.id, sizeof rec.id, "%s", row.id);
        snprintf(rec.split, sizeof rec.split, "%s", split);
        snprintf(rec.source, sizeof rec.source, "%s", su_basename(path));
        rec.line = row.line;
        rec.ord = row.line;
        if ((rc = store_put_example(r->st, &rec, err))) break;
        int has = 0, dup = 0;
        if ((rc = store_has_ref(r->st, rec.id, r->fp.fingerprint, &has, err))) break;
        if (!has && r->main_st &&
            (rc = store_has_ref(r->main_st, rec.id, r->fp.fingerprint, &has, err)))
            break;
        for (size_t k = 0; k < r->n_queue && !dup; k++) dup = !strcmp(r->queue[k].rec.id, rec.id);
        if (dup) { /* the same example twice in one window: computed once */
            r->reused++;
            continue;
        }
        ds_tokens tok;
        memset(&tok, 0, sizeof tok);
        int t = ds_tokenize(r->tok, &r->dso, su_basename(path), &row, &tok, &why, err);
        if (t < 0 || (t == 2 && bad_row(r, why, err))) {
            ds_tokens_free(&tok);
            rc = -1;
            break;
        }
        if (t == 2) {
            ds_tokens_free(&tok);
            continue;
        }
        for (int k = 0; k < 2; k++) /* TRL warns, and splits by count all the same */
            if (tok.not_prefix[k])
                su_log("precompute: %s:%ld: %s: the prompt's token ids are not a prefix of the prompt + "
                       "response ids; the response is what follows the first %d ids, as in TRL",
                       su_basename(path), row.line, k ? "rejected" : "chosen", tok.n_prompt);
        if ((rc = enqueue(r, &rec, &tok, has, err))) break;
    }
    ds_close(rd);
    /* Whatever happened, what was computed is kept. */
    if (rc == 0) return flush(r, prog, err);
    dp_err ignored;
    flush(r, prog, &ignored);
    return rc;
}

/* Under memory.budget (or when the run would not fit this machine): the
 * batch size and streaming that fit, decided from config.json and the
 * safetensors headers before anything is loaded (a batch holds at least one
 * example of max_unit tokens). */
static int plan_budget(const config *c, long max_unit, long *batch_tokens, int *stream,
                       dp_err *err) {
    char limit_name[200];
    model_config mc;
    int wb;
    size_t limit;
    if (model_peek(cfg_str(c, "reference.model"), &mc, &wb, err)) return -1;
    model_plan p = model_plan_estimate(&mc, MODEL_JOB_FORWARD, wb, (int)*batch_tokens, *stream, 0,
                                       0, 0);
    if (su_memory_limit(c, p.total, &limit, limit_name, sizeof limit_name, err)) return -1;
    if (!limit) return 0;
    if (model_plan_fit(&p, &mc, MODEL_JOB_FORWARD, wb, (int)*batch_tokens, (int)max_unit, 0,
                       limit, 0, 0, err))
        return -1;
    char line[400];
    model_plan_describe(&p, line, sizeof line);
    su_log("precompute: memory plan for %s: %s", limit_name, line);
    if (p.tokens < *batch_tokens)
        su_log("precompute: batches of at most %d tokens (precompute.batch_tokens %ld) to fit; "
               "values match larger batches to float rounding",
               p.tokens, *batch_tokens);
    *batch_tokens = p.tokens;
    *stream |= p.stream;
    return 0;
}

/* Opens (creating) r->store_path for writing and records the reference. */
static int open_store(run *r, dp_err *err) {
    if (su_mkdirs_for(r->store_path, err)) return -1;
    struct stat sb;
    r->created_store = stat(r->store_path, &sb) != 0 && errno == ENOENT;
    if (store_open(&r->st, r->store_path, STORE_WRITE, err)) return -1;
    return store_put_reference(r->st, r->fp.fingerprint, r->fp.description, err);
}

static int setup(run *r, const char *shard_opt, dp_err *err) {
    config *c = r->cfg;
    const char *shard = shard_opt ? shard_opt : cfg_str(c, "precompute.shard");
    if (parse_shard(shard, &r->shard_i, &r->shard_n, err)) return -1;
    if (dist_size() > 1) {
        if (r->shard_n > 1)
            return dp_fail(err, "precompute.shard: %s under mpirun; the ranks are the shards "
                                "(use one or the other)", shard);
        r->shard_i = dist_rank() + 1, r->shard_n = dist_size();
    }
    char tok_path[4096];
    if (su_check_reference(c, err)) return -1;
    su_tokenizer_path(c, tok_path, sizeof tok_path);
    if (tok_load(&r->tok, tok_path, err)) return -1;
    if (su_dataset_options(c, r->tok, &r->dso, err)) return -1;
    if (su_fingerprint(c, r->tok, &r->dso, tok_path, &r->fp, err)) return -1;
    r->batch_tokens = cfg_int(c, "precompute.batch_tokens");
    r->window_rows = (int)cfg_int(c, "precompute.window_rows");
    r->commit_seconds = cfg_num(c, "precompute.commit_seconds");
    long max_unit = 2L * cfg_int(c, "data.max_length") + 2;
    int stream = cfg_bool(c, "memory.stream");
    if (plan_budget(c, max_unit, &r->batch_tokens, &stream, err)) return -1;
    model_options mo = {.training = 0,
                        .prefix_sharing = cfg_bool(c, "precompute.prefix_sharing"),
                        .threads = dist_threads((int)cfg_int(c, "precompute.threads")),
                        .max_tokens = (int)(r->batch_tokens > max_unit ? r->batch_tokens : max_unit)};
    if (model_load(&r->ref, cfg_str(c, "reference.model"), &mo, err)) return -1;
    model_stream(r->ref, stream);
    size_t cap = (size_t)mo.max_tokens;
    r->ids = malloc(cap * sizeof *r->ids);
    r->logps = malloc(cap * sizeof *r->logps);
    r->np = malloc(cap * sizeof *r->np);
    r->nc = malloc(cap * sizeof *r->nc);
    r->nr = malloc(cap * sizeof *r->nr);
    if (!r->ids || !r->logps || !r->np || !r->nc || !r->nr) return dp_fail(err, "out of memory");
    /* Rank 0 creates the store before the other ranks open it to read. */
    const char *main_path = cfg_str(c, "store");
    int rank = dist_rank();
    if (rank == 0) snprintf(r->store_path, sizeof r->store_path, "%s", main_path);
    else snprintf(r->store_path, sizeof r->store_path, "%s.rank-%d", main_path, rank);
    int rc = rank == 0 ? open_store(r, err) : 0;
    dist_barrier();
    if (rc) return -1;
    if (rank > 0) {
        if (store_open(&r->main_st, main_path, STORE_READONLY, err)) return -1;
        if (open_store(r, err)) return -1;
    }
    return store_begin(r->st, err);
}

/* Merges every part STORE.rank-* into the store (rank 0, once every rank
 * has closed its part) and removes it. *n_copied = reference rows copied. */
static int merge_parts(run *r, long *n_copied, dp_err *err) {
    char pattern[4300];
    snprintf(pattern, sizeof pattern, "%s.rank-*", cfg_str(r->cfg, "store"));
    glob_t g;
    *n_copied = 0;
    if (glob(pattern, 0, NULL, &g) != 0) return 0; /* no parts */
    int rc = 0;
    for (size_t i = 0; i < g.gl_pathc && !rc; i++) {
        const char *part = g.gl_pathv[i];
        size_t len = strlen(part);
        if ((len > 4 && (!strcmp(part + len - 4, "-wal") || !strcmp(part + len - 4, "-shm"))) ||
            (len > 8 && !strcmp(part + len - 8, "-journal")))
            continue;
        long copied = 0;
        rc = store_merge(r->st, part, &copied, err);
        *n_copied += copied;
        static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
        for (int k = 0; !rc && k < 4; k++) {
            char p[4400];
            snprintf(p, sizeof p, "%s%s", part, suffixes[k]);
            unlink(p);
        }
    }
    globfree(&g);
    return rc;
}

/* After a failure: removes the store this run created if it holds no values
 * (committed: the open transaction is rolled back first). A store that
 * existed before, or that holds any values, even from another shard's
 * process writing to it, is left as it is. */
static void remove_empty_store(run *r) {
    if (!r->created_store) return;
    if (r->st) {
        dp_err ignored;
        store_info info;
        store_rollback(r->st, &ignored);
        if (store_get_info(r->st, &info, &ignored) || info.n_ref_rows > 0) return;
        store_close(r->st);
        r->st = NULL;
    }
    const char *path = r->store_path;
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (int i = 0; i < 4; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s%s", path, suffixes[i]);
        if (unlink(p) == 0 && i == 0) su_log("precompute: removed %s, which this run created and left without values", path);
    }
}

static void teardown(run *r) {
    for (size_t k = 0; k < r->n_queue; k++) ds_tokens_free(&r->queue[k].tok);
    free(r->queue);
    free(r->ids);
    free(r->logps);
    free(r->np);
    free(r->nc);
    free(r->nr);
    if (r->st) store_close(r->st);
    if (r->main_st) store_close(r->main_st);
    model_free(r->ref);
    ds_options_free(&r->dso);
    tok_free(r->tok);
    fp_result_free(&r->fp);
    cfg_free(r->cfg);
}

int cmd_precompute(int argc, char **argv) {
    cli_option opts[] = {
        {"--shard", 1, "i/n: compute only the i-th of n slices (overrides precompute.shard)", NULL},
    };
    run r;
    memset(&r, 0, sizeof r);
    int rc = cli_parse(argc, argv,
                       "Stage one: run the reference model once over data.train and data.eval and\n"
                       "cache every response's log-probabilities in the store.",
                       opts, 1, &r.cfg);
    if (rc || !r.cfg) return rc;
    dp_err err;
    r.start = su_now();
    r.last_commit = r.start;
    rc = setup(&r, opts[0].value, &err);
    if (rc == 0) {
        su_log("precompute: reference %s, fingerprint %s, shard %d/%d, %s",
               cfg_str(r.cfg, "reference.model"), r.fp.fingerprint, r.shard_i, r.shard_n,
               su_blas_info());
        /* rows to go, for the ETA (compressed files: unknown) */
        long total = su_count_lines(cfg_str(r.cfg, "data.train"));
        if (total >= 0 && cfg_str(r.cfg, "data.eval")[0]) {
            long more = su_count_lines(cfg_str(r.cfg, "data.eval"));
            total = more >= 0 ? total + more : -1;
        }
        log_progress prog;
        log_progress_init(&prog, "precompute", total > 0 ? total / r.shard_n : 0);
        rc = do_split(&r, "train", cfg_str(r.cfg, "data.train"), &prog, &err);
        if (rc == 0 && cfg_str(r.cfg, "data.eval")[0])
            rc = do_split(&r, "eval", cfg_str(r.cfg, "data.eval"), &prog, &err);
        log_progress_finish(&prog);
        dp_err cerr;
        if (store_commit(r.st, &cerr) && rc == 0) {
            err = cerr;
            rc = -1;
        }
        if (rc == 0 && dist_size() > 1) {
            /* every part whole and closed, then rank 0 merges them */
            if (dist_rank() > 0) store_close(r.st), r.st = NULL;
            dist_barrier();
            long copied = 0;
            if (dist_rank() == 0 && (rc = merge_parts(&r, &copied, &err)) == 0)
                su_log("precompute: merged the other ranks' parts into %s (%ld rows)",
                       cfg_str(r.cfg, "store"), copied);
            double sums[3] = {(double)r.computed, (double)r.reused, (double)r.tokens};
            dist_allreduce_sum(sums, 3);
            r.computed = (long)sums[0], r.reused = (long)sums[1], r.tokens = (long)sums[2];
        }
    }
    if (r.st) {
        double secs = su_now() - r.start;
        store_info info;
        memset(&info, 0, sizeof info);
        dp_err ierr;
        store_get_info(r.st, &info, &ierr);
        su_log("precompute: %ld computed, %ld reused, %ld skipped (bad rows), %ld in other shards; "
               "%ld tokens in %.1f s (%.0f tokens/s); store %s, %.2f bytes/token",
               r.computed, r.reused, r.skipped, r.other_shard, r.tokens, secs,
               secs > 0 ? r.tokens / secs : 0.0, su_bytes(info.file_bytes),
               info.tokens ? (double)info.blob_bytes / (double)info.tokens : 0.0);
        for (int b = 1; b < DS_BAD_COUNT; b++)
            if (r.bad[b]) su_log("precompute: skipped %ld rows: %s", r.bad[b], ds_bad_name((ds_bad)b));
        su_log_weights_read("precompute", r.ref, r.tokens);
    }
    if (rc) {
        remove_empty_store(&r);
        cli_error(err.msg);
    }
    teardown(&r);
    return rc ? 1 : 0;
}
