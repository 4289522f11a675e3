/* test_store — the store: blob codec, put/get round trips with exact values,
 * listing order, schema-version refusal, corruption detection (blobs edited
 * through raw SQLite), merge against a single store, read-only and full-disk
 * behaviour. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "check.h"
#include "store.h"
#include "store_internal.h" /* test_work_bound runs SQL of its own (store_exec) */

static char tmpdir[64];

/* A path inside the scratch directory (static buffer, rotating). */
static const char *tmp_path(const char *name) {
    static char bufs[8][128];
    static int k;
    char *b = bufs[k++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", tmpdir, name);
    return b;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rng_u32(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}
static float rng_uniform(void) { return ((float)(rng_u32() >> 8) + 0.5f) / 16777216.0f; }

/* ---- test data ----------------------------------------------------------- */

/* A record with deterministic contents derived from SEED; arrays malloc'd. */
static void make_record(store_record *r, const char *id, const char *split, long ord, int seed) {
    memset(r, 0, sizeof *r);
    snprintf(r->id, sizeof r->id, "%s", id);
    snprintf(r->split, sizeof r->split, "%s", split);
    snprintf(r->source, sizeof r->source, "data/%s.jsonl", split);
    r->line = 10 + seed;
    r->ord = ord;
    r->n_prompt = 3 + seed % 5;
    r->n_chosen = 1 + seed % 7;
    r->n_rejected = 2 + seed % 4;
    r->prompt_ids = malloc(sizeof(int32_t) * (size_t)r->n_prompt);
    r->chosen_ids = malloc(sizeof(int32_t) * (size_t)r->n_chosen);
    r->rejected_ids = malloc(sizeof(int32_t) * (size_t)r->n_rejected);
    r->chosen_token_logps = malloc(sizeof(float) * (size_t)r->n_chosen);
    r->rejected_token_logps = malloc(sizeof(float) * (size_t)r->n_rejected);
    for (int i = 0; i < r->n_prompt; i++) r->prompt_ids[i] = (int32_t)(seed * 1000 + i * 37);
    for (int i = 0; i < r->n_chosen; i++) r->chosen_ids[i] = (int32_t)(50256 - i - seed);
    for (int i = 0; i < r->n_rejected; i++) r->rejected_ids[i] = (int32_t)(i * 7919 + seed);
    double sc = 0, sr = 0;
    for (int i = 0; i < r->n_chosen; i++) sc += r->chosen_token_logps[i] = logf(rng_uniform());
    for (int i = 0; i < r->n_rejected; i++) sr += r->rejected_token_logps[i] = logf(rng_uniform());
    r->ref_chosen_logp = sc;
    r->ref_rejected_logp = sr;
}

static int same_record(const store_record *a, const store_record *b) {
    return !strcmp(a->id, b->id) && !strcmp(a->split, b->split) && !strcmp(a->source, b->source) &&
           a->line == b->line && a->ord == b->ord && a->n_prompt == b->n_prompt &&
           a->n_chosen == b->n_chosen && a->n_rejected == b->n_rejected &&
           a->ref_chosen_logp == b->ref_chosen_logp && a->ref_rejected_logp == b->ref_rejected_logp &&
           !memcmp(a->prompt_ids, b->prompt_ids, 4 * (size_t)a->n_prompt) &&
           !memcmp(a->chosen_ids, b->chosen_ids, 4 * (size_t)a->n_chosen) &&
           !memcmp(a->rejected_ids, b->rejected_ids, 4 * (size_t)a->n_rejected) &&
           !memcmp(a->chosen_token_logps, b->chosen_token_logps, 4 * (size_t)a->n_chosen) &&
           !memcmp(a->rejected_token_logps, b->rejected_token_logps, 4 * (size_t)a->n_rejected);
}

static const char *FP1 = "fp1-0123456789abcdef";
static const char *DESC1 = "{\"model\": \"tiny\", \"max_length\": 64}";

/* Creates PATH with a reference FP (DESC) and examples ids[0..n) whose
 * seeds are seeds[i]; returns 0 on success. */
static int build_store(const char *path, const char *fp, const char *desc, const char **ids,
                       const int *seeds, int n) {
    dp_err err;
    store *s = NULL;
    if (store_open(&s, path, STORE_WRITE, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    int rc = store_put_reference(s, fp, desc, &err) || store_begin(s, &err);
    for (int i = 0; i < n && !rc; i++) {
        store_record r;
        rng_state = 0x1234567ull + (uint64_t)seeds[i];
        make_record(&r, ids[i], seeds[i] % 3 ? "train" : "eval", seeds[i], seeds[i]);
        rc = store_put_example(s, &r, &err) || store_put_ref(s, fp, &r, &err);
        store_record_free(&r);
    }
    if (!rc) rc = store_commit(s, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    store_close(s);
    return rc ? -1 : 0;
}

/* Every (example, reference) of the store rendered as text, in store order. */
static char *dump_store(const char *path) {
    dp_err err;
    store *s = NULL;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    char (*fps)[STORE_FP_MAX] = NULL;
    char (*ids)[40] = NULL;
    size_t n_fps = 0, n = 0, missing = 0;
    if (store_open(&s, path, STORE_READONLY, &err) || store_list_references(s, &fps, &n_fps, &err) ||
        store_list(s, NULL, NULL, &ids, &n, &missing, &err)) {
        fprintf(f, "error: %s\n", err.msg);
        n = n_fps = 0;
    }
    for (size_t k = 0; k < n_fps; k++) {
        char *desc = NULL;
        if (!store_get_reference(s, fps[k], &desc, &err)) fprintf(f, "ref %s %s\n", fps[k], desc);
        free(desc);
    }
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < n_fps; k++) {
            int has = 0;
            store_record r;
            if (store_has_ref(s, ids[i], fps[k], &has, &err) || !has) continue;
            if (store_get(s, ids[i], fps[k], &r, &err)) {
                fprintf(f, "error: %s\n", err.msg);
                continue;
            }
            fprintf(f, "%s %s %s %s %ld %ld %.17g %.17g", r.id, fps[k], r.split, r.source, r.line,
                    r.ord, r.ref_chosen_logp, r.ref_rejected_logp);
            for (int j = 0; j < r.n_prompt; j++) fprintf(f, " p%d", r.prompt_ids[j]);
            for (int j = 0; j < r.n_chosen; j++)
                fprintf(f, " c%d:%a", r.chosen_ids[j], r.chosen_token_logps[j]);
            for (int j = 0; j < r.n_rejected; j++)
                fprintf(f, " r%d:%a", r.rejected_ids[j], r.rejected_token_logps[j]);
            fputc('\n', f);
            store_record_free(&r);
        }
    free(fps);
    free(ids);
    store_close(s);
    fclose(f);
    return text;
}

/* Runs SQL on PATH through raw SQLite (to corrupt or age a store). */
static int raw_sql(const char *path, const char *sql) {
    sqlite3 *db = NULL;
    int rc = sqlite3_open(path, &db);
    if (rc == SQLITE_OK) rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) fprintf(stderr, "raw_sql: %s\n", sqlite3_errmsg(db));
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

/* Flips byte AT (negative: from the end) of COLUMN of example ID. */
static int flip_blob_byte(const char *path, const char *column, const char *id, long at) {
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char sql[256];
    int ok = 0;
    snprintf(sql, sizeof sql, "SELECT %s FROM ref_rows WHERE example_id = ?1", column);
    if (sqlite3_open(path, &db) == SQLITE_OK && sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            int n = sqlite3_column_bytes(st, 0);
            unsigned char *b = malloc((size_t)n);
            memcpy(b, sqlite3_column_blob(st, 0), (size_t)n);
            sqlite3_finalize(st);
            b[at < 0 ? n + at : at] ^= 0x01;
            snprintf(sql, sizeof sql, "UPDATE ref_rows SET %s = ?1 WHERE example_id = ?2", column);
            if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
                sqlite3_bind_blob(st, 1, b, n, SQLITE_STATIC);
                sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
                ok = sqlite3_step(st) == SQLITE_DONE;
            }
            free(b);
        }
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return ok ? 0 : -1;
}

/* ---- the blob codec ------------------------------------------------------ */

static void test_blob_roundtrip(void) {
    dp_err err;
    enum { N = 4096 };
    float *v = malloc(N * sizeof *v);
    for (int i = 0; i < N; i++) v[i] = logf(rng_uniform()) * (i % 3 ? 1.0f : 10.0f);
    v[0] = 0.0f, v[1] = -0.0f, v[2] = -1e-38f, v[3] = -3.4e38f;
    for (int shuffle = 0; shuffle <= 1; shuffle++) {
        void *blob = NULL, *back = NULL;
        size_t len = 0;
        CHECK(store_blob_encode(v, N * sizeof *v, shuffle, &blob, &len, &err) == 0);
        CHECK(store_blob_decode(blob, len, shuffle, N * sizeof *v, &back, &err) == 0);
        CHECK(back && memcmp(back, v, N * sizeof *v) == 0);
        /* The frame carries content size and checksum. */
        CHECK(ZSTD_getFrameContentSize(blob, len) == N * sizeof *v);
        CHECK(len > 5 && (((unsigned char *)blob)[4] & 0x04));
        free(blob);
        free(back);
    }
    /* Sizes 0 and 4 bytes, odd sizes refused for shuffling. */
    void *blob = NULL, *back = NULL;
    size_t len = 0;
    CHECK(store_blob_encode(NULL, 0, 1, &blob, &len, &err) == 0);
    CHECK(store_blob_decode(blob, len, 1, 0, &back, &err) == 0);
    CHECK(back != NULL);
    free(back);
    back = NULL;
    CHECK(store_blob_decode(blob, len, 1, 4, &back, &err) == -1);
    CHECK_STR(err.msg, "zstd frame holds 0 bytes, expected 4 from the token count");
    CHECK(back == NULL);
    free(blob);
    int32_t one = 123456789;
    CHECK(store_blob_encode(&one, 4, 1, &blob, &len, &err) == 0);
    CHECK(store_blob_decode(blob, len, 1, 4, &back, &err) == 0);
    CHECK(back && *(int32_t *)back == one);
    free(blob);
    free(back);
    CHECK(store_blob_encode("abcdef", 6, 1, &blob, &len, &err) == -1);
    CHECK_STR(err.msg, "blob encode: cannot shuffle 6 bytes into 4 planes, expected a multiple of 4");
    CHECK(store_blob_encode("abcdef", 6, 0, &blob, &len, &err) == 0);
    CHECK(store_blob_decode(blob, len, 1, 6, &back, &err) == -1);
    CHECK_STR(err.msg, "cannot unshuffle 6 bytes from 4 planes, expected a multiple of 4");
    CHECK(store_blob_decode(blob, len, 0, 6, &back, &err) == 0);
    CHECK(back && !memcmp(back, "abcdef", 6));
    free(blob);
    free(back);
    free(v);
}

/* Shuffling is what makes float32 log-probs compress: check it helps. */
static void test_blob_shuffle_helps(void) {
    dp_err err;
    enum { N = 8192 };
    float *v = malloc(N * sizeof *v);
    int32_t *ids = malloc(N * sizeof *ids);
    for (int i = 0; i < N; i++) v[i] = logf(rng_uniform()), ids[i] = (int32_t)(rng_u32() % 50257);
    size_t len[2][2];
    for (int shuffle = 0; shuffle <= 1; shuffle++) {
        void *blob = NULL;
        CHECK(store_blob_encode(v, N * 4, shuffle, &blob, &len[0][shuffle], &err) == 0);
        free(blob);
        CHECK(store_blob_encode(ids, N * 4, shuffle, &blob, &len[1][shuffle], &err) == 0);
        free(blob);
    }
    /* Random mantissas stay incompressible; the sign/exponent plane is what
     * shrinks (log(u): about 3.5 bytes a value instead of 4). */
    CHECK_MSG(len[0][1] < len[0][0] && len[0][1] < N * 3.6, "floats: shuffled %zu vs plain %zu",
              len[0][1], len[0][0]);
    CHECK_MSG(len[1][1] < len[1][0], "ids: shuffled %zu vs plain %zu", len[1][1], len[1][0]);
    CHECK(len[1][1] < N * 4 * 0.7);  /* 50257 < 2^16: two planes nearly empty */
    free(v);
    free(ids);
}

static void test_blob_hostile(void) {
    dp_err err;
    float v[1000];
    for (int i = 0; i < 1000; i++) v[i] = logf(rng_uniform());
    void *blob = NULL, *back = NULL;
    size_t len = 0;
    CHECK(store_blob_encode(v, sizeof v, 1, &blob, &len, &err) == 0);
    unsigned char *b = blob;
    /* Size claimed by the row differs from the frame: refused before allocating. */
    CHECK(store_blob_decode(blob, len, 1, 3996, &back, &err) == -1);
    CHECK_STR(err.msg, "zstd frame holds 4000 bytes, expected 3996 from the token count");
    /* Checksum byte flipped. */
    b[len - 1] ^= 0x40;
    CHECK(store_blob_decode(blob, len, 1, 4000, &back, &err) == -1);
    CHECK_STR(err.msg, "corrupt zstd frame: Restored data doesn't match checksum");
    b[len - 1] ^= 0x40;
    /* Truncated frame, trailing garbage, not zstd at all. */
    CHECK(store_blob_decode(blob, len - 3, 1, 4000, &back, &err) == -1);
    CHECK(strncmp(err.msg, "zstd frame is truncated or corrupt: ", 36) == 0);
    unsigned char *longer = malloc(len + 2);
    memcpy(longer, blob, len);
    longer[len] = longer[len + 1] = 0;
    CHECK(store_blob_decode(longer, len + 2, 1, 4000, &back, &err) == -1);
    CHECK_STR(err.msg, "blob has 2 bytes after its zstd frame, expected none");
    free(longer);
    CHECK(store_blob_decode("abc", 3, 1, 4, &back, &err) == -1);
    CHECK_STR(err.msg, "expected a zstd frame, found 3 bytes without the zstd magic number");
    CHECK(back == NULL);
    free(blob);
    /* A frame without checksum, and one without content size (streamed). */
    size_t cap = ZSTD_compressBound(sizeof v);
    blob = malloc(cap);
    len = ZSTD_compress(blob, cap, v, sizeof v, 1);
    CHECK(store_blob_decode(blob, len, 0, sizeof v, &back, &err) == -1);
    CHECK_STR(err.msg, "zstd frame has no content checksum, expected one");
    ZSTD_CCtx *c = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
    ZSTD_outBuffer out = {blob, cap, 0};
    ZSTD_inBuffer in = {v, sizeof v, 0};
    ZSTD_compressStream(c, &out, &in);
    ZSTD_endStream(c, &out);
    ZSTD_freeCCtx(c);
    CHECK(store_blob_decode(blob, out.pos, 0, sizeof v, &back, &err) == -1);
    CHECK_STR(err.msg, "zstd frame does not declare its content size, expected 4000 bytes");
    free(blob);
}

/* ---- examples, references, listing --------------------------------------- */

static void test_put_get_roundtrip(void) {
    const char *path = tmp_path("roundtrip.db");
    dp_err err;
    store *s = NULL;
    CHECK(store_open(&s, path, STORE_WRITE, &err) == 0);
    if (!s) return;
    CHECK(store_put_reference(s, FP1, DESC1, &err) == 0);
    CHECK(store_put_reference(s, FP1, "{\"max_length\":64,\"model\":\"tiny\"}", &err) == 0);
    store_record a, b, got;
    make_record(&a, "e0aa", "train", 2, 1);
    make_record(&b, "e0bb", "eval", 1, 4);
    a.n_prompt = 0;     /* an empty prompt is allowed */
    a.chosen_token_logps[0] = -0.0f;
    a.rejected_token_logps[1] = -1e-40f;   /* denormal */
    a.ref_chosen_logp = -1.0 / 3.0;
    CHECK(store_begin(s, &err) == 0);
    CHECK(store_put_example(s, &a, &err) == 0);
    CHECK(store_put_example(s, &b, &err) == 0);
    CHECK(store_put_ref(s, FP1, &a, &err) == 0);
    CHECK(store_put_ref(s, FP1, &b, &err) == 0);
    CHECK(store_commit(s, &err) == 0);
    CHECK(store_get(s, "e0aa", FP1, &got, &err) == 0);
    CHECK(same_record(&a, &got));
    CHECK(signbit(got.chosen_token_logps[0]) && got.rejected_token_logps[1] == -1e-40f);
    store_record_free(&got);
    int has = -1;
    CHECK(store_has_ref(s, "e0bb", FP1, &has, &err) == 0 && has == 1);
    CHECK(store_has_ref(s, "e0bb", "other", &has, &err) == 0 && has == 0);
    char msg[512];
    CHECK(store_get(s, "e0bb", "other", &got, &err) == -1);
    snprintf(msg, sizeof msg, "%s: example e0bb has no values for reference other", path);
    CHECK_STR(err.msg, msg);
    CHECK(store_get(s, "nope", FP1, &got, &err) == -1);
    snprintf(msg, sizeof msg, "%s: example nope is not in the store", path);
    CHECK_STR(err.msg, msg);
    CHECK(store_get(s, "bad id", FP1, &got, &err) == -1);
    snprintf(msg, sizeof msg, "%s: example id \"bad id\": expected only [0-9A-Za-z_.:-], found byte 0x20", path);
    CHECK_STR(err.msg, msg);
    /* The description is stored canonical; putting another one replaces it. */
    char *desc = NULL;
    CHECK(store_get_reference(s, FP1, &desc, &err) == 0);
    CHECK_STR(desc, "{\"max_length\":64,\"model\":\"tiny\"}");
    free(desc);
    CHECK(store_get_reference(s, "unknown", &desc, &err) == 0 && desc == NULL);
    CHECK(store_put_reference(s, FP1, "{\"model\":\"tiny\",\"model_dir\":\"/new/place\",\"max_length\":64}", &err) == 0);
    CHECK(store_get_reference(s, FP1, &desc, &err) == 0);
    CHECK_STR(desc, "{\"max_length\":64,\"model\":\"tiny\",\"model_dir\":\"/new/place\"}");
    free(desc);
    CHECK(store_put_reference(s, FP1, "[1]", &err) == -1);
    snprintf(msg, sizeof msg, "%s: reference %s: description: expected a JSON object", path, FP1);
    CHECK_STR(err.msg, msg);
    CHECK(store_put_reference(s, "fp2", "{\"model\": [1,}", &err) == -1);
    snprintf(msg, sizeof msg, "%s: reference fp2: description: line 1 column 14: unexpected token near '}'", path);
    CHECK_STR(err.msg, msg);
    /* Updating an example in place. */
    a.ord = 7;
    snprintf(a.source, sizeof a.source, "other.jsonl");
    CHECK(store_put_example(s, &a, &err) == 0);
    store_close(s);
    /* Values survive closing; a read-only open sees them. */
    CHECK(store_open(&s, path, STORE_READONLY, &err) == 0);
    if (s) {
        CHECK(store_get(s, "e0aa", FP1, &got, &err) == 0);
        CHECK(same_record(&a, &got));
        store_record_free(&got);
        CHECK(store_get(s, "e0bb", FP1, &got, &err) == 0);
        CHECK(same_record(&b, &got));
        store_record_free(&got);
        store_close(s);
    }
    store_record_free(&a);
    store_record_free(&b);
}

static void test_put_validation(void) {
    const char *path = tmp_path("validation.db");
    dp_err err;
    store *s = NULL;
    char msg[512];
    CHECK(store_open(&s, path, STORE_WRITE, &err) == 0);
    if (!s) return;
    CHECK(store_put_reference(s, FP1, DESC1, &err) == 0);
    store_record r;
    make_record(&r, "v1", "train", 0, 2);
    /* Reference values before the example exists, or for an unknown reference. */
    CHECK(store_put_ref(s, FP1, &r, &err) == -1);
    snprintf(msg, sizeof msg, "%s: example v1 is not in the store (store_put_example first)", path);
    CHECK_STR(err.msg, msg);
    CHECK(store_put_example(s, &r, &err) == 0);
    CHECK(store_put_ref(s, "fpX", &r, &err) == -1);
    snprintf(msg, sizeof msg, "%s: reference fpX is not in the store (store_put_reference first)", path);
    CHECK_STR(err.msg, msg);
    r.chosen_token_logps[1] = NAN;
    CHECK(store_put_ref(s, FP1, &r, &err) == -1);
    snprintf(msg, sizeof msg, "%s: example v1, reference %s: chosen_token_logps[1] is nan, expected a finite log-probability", path, FP1);
    CHECK_STR(err.msg, msg);
    r.chosen_token_logps[1] = -1;
    r.rejected_ids[0] = -5;
    CHECK(store_put_ref(s, FP1, &r, &err) == -1);
    snprintf(msg, sizeof msg, "%s: example v1, reference %s: rejected_ids[0] is -5, expected a token id >= 0", path, FP1);
    CHECK_STR(err.msg, msg);
    r.rejected_ids[0] = 5;
    int n = r.n_chosen;
    r.n_chosen = 0;
    CHECK(store_put_ref(s, FP1, &r, &err) == -1);
    snprintf(msg, sizeof msg, "%s: example v1, reference %s: n_chosen: expected 1 to 16777216, got 0", path, FP1);
    CHECK_STR(err.msg, msg);
    r.n_chosen = n;
    snprintf(r.split, sizeof r.split, "test");
    CHECK(store_put_example(s, &r, &err) == -1);
    snprintf(msg, sizeof msg, "%s: split: expected \"train\" or \"eval\", got \"test\"", path);
    CHECK_STR(err.msg, msg);
    CHECK(store_put_ref(s, FP1, &r, &err) == 0);
    store_record_free(&r);
    store_close(s);
}

static void test_list_order(void) {
    const char *path = tmp_path("list.db");
    dp_err err;
    store *s = NULL;
    CHECK(store_open(&s, path, STORE_WRITE, &err) == 0);
    if (!s) return;
    CHECK(store_put_reference(s, "fpA", "{}", &err) == 0);
    CHECK(store_put_reference(s, "fpB", "{}", &err) == 0);
    /* (id, split, ord, has fpA, has fpB); store order is (ord, id). */
    struct { const char *id, *split; long ord; int a, b; } ex[] = {
        {"d", "train", 3, 1, 0}, {"c", "eval", 1, 0, 0}, {"b", "train", 1, 1, 1},
        {"a", "train", 2, 0, 1}, {"e", "eval", 0, 1, 0},
    };
    for (int i = 0; i < 5; i++) {
        store_record r;
        make_record(&r, ex[i].id, ex[i].split, ex[i].ord, i);
        CHECK(store_put_example(s, &r, &err) == 0);
        if (ex[i].a) CHECK(store_put_ref(s, "fpA", &r, &err) == 0);
        if (ex[i].b) CHECK(store_put_ref(s, "fpB", &r, &err) == 0);
        store_record_free(&r);
    }
    char (*ids)[40] = NULL;
    size_t n = 0, missing = 0;
    CHECK(store_list(s, NULL, NULL, &ids, &n, &missing, &err) == 0);
    CHECK(n == 5 && missing == 1);
    const char *all[] = {"e", "b", "c", "a", "d"};
    for (size_t i = 0; i < n && i < 5; i++) CHECK_STR(ids[i], all[i]);
    free(ids);
    CHECK(store_list(s, "train", "fpA", &ids, &n, &missing, &err) == 0);
    CHECK(n == 3 && missing == 1);
    const char *train[] = {"b", "a", "d"};
    for (size_t i = 0; i < n && i < 3; i++) CHECK_STR(ids[i], train[i]);
    free(ids);
    CHECK(store_list(s, "eval", "fpB", &ids, &n, &missing, &err) == 0);
    CHECK(n == 2 && missing == 2);
    free(ids);
    CHECK(store_list(s, "eval", "fpZ", &ids, &n, &missing, &err) == 0);
    CHECK(n == 2 && missing == 2);
    free(ids);
    CHECK(store_list(s, "dev", NULL, &ids, &n, &missing, &err) == -1 && ids == NULL);
    char (*fps)[STORE_FP_MAX] = NULL;
    CHECK(store_list_references(s, &fps, &n, &err) == 0 && n == 2);
    if (n == 2) CHECK(!strcmp(fps[0], "fpA") && !strcmp(fps[1], "fpB"));
    free(fps);
    store_close(s);
}

/* A batch not committed when the store closes (or the process dies) is
 * gone; what was committed before it stays. */
static void test_uncommitted(void) {
    const char *path = tmp_path("uncommitted.db");
    const char *ids[] = {"u1"};
    int seeds[] = {1};
    CHECK(build_store(path, FP1, DESC1, ids, seeds, 1) == 0);
    dp_err err;
    store *s = NULL;
    CHECK(store_open(&s, path, STORE_WRITE, &err) == 0);
    if (!s) return;
    store_record r;
    make_record(&r, "u2", "train", 5, 2);
    CHECK(store_begin(s, &err) == 0);
    CHECK(store_put_example(s, &r, &err) == 0 && store_put_ref(s, FP1, &r, &err) == 0);
    store_record_free(&r);
    store_close(s);
    CHECK(store_open(&s, path, STORE_READONLY, &err) == 0);
    char (*list)[40] = NULL;
    size_t n = 0, missing = 0;
    CHECK(s && store_list(s, NULL, FP1, &list, &n, &missing, &err) == 0);
    CHECK(n == 1 && missing == 0 && list && !strcmp(list[0], "u1"));
    free(list);
    store_close(s);
}

/* ---- versions, corruption, verify ---------------------------------------- */

static void test_schema_version(void) {
    const char *path = tmp_path("version.db");
    const char *ids[] = {"x1"};
    int seeds[] = {1};
    CHECK(build_store(path, FP1, DESC1, ids, seeds, 1) == 0);
    long long version = -1;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    sqlite3_open(path, &db);
    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
    if (sqlite3_step(st) == SQLITE_ROW) version = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    CHECK(version == STORE_SCHEMA_VERSION);
    CHECK(raw_sql(path, "PRAGMA user_version = 99") == 0);
    char msg[512];
    snprintf(msg, sizeof msg, "%s: schema version 99 is newer than this dpoc understands (1)", path);
    dp_err err;
    store *s = NULL;
    CHECK(store_open(&s, path, STORE_READONLY, &err) == -1 && s == NULL);
    CHECK_STR(err.msg, msg);
    CHECK(store_open(&s, path, STORE_WRITE, &err) == -1 && s == NULL);
    CHECK_STR(err.msg, msg);

    /* Not a store: missing, a text file, someone else's database. */
    const char *missing = tmp_path("missing.db");
    CHECK(store_open(&s, missing, STORE_READONLY, &err) == -1);
    snprintf(msg, sizeof msg, "%s: cannot open the store: No such file or directory", missing);
    CHECK_STR(err.msg, msg);
    const char *text = tmp_path("text.db");
    FILE *f = fopen(text, "w");
    fputs("this is not a database, just some text that is long enough to have a header......\n", f);
    fclose(f);
    CHECK(store_open(&s, text, STORE_READONLY, &err) == -1);
    snprintf(msg, sizeof msg, "%s: not a dpoc store: the file is not an SQLite database", text);
    CHECK_STR(err.msg, msg);
    const char *other = tmp_path("other.db");
    CHECK(raw_sql(other, "CREATE TABLE t (x)") == 0);
    CHECK(store_open(&s, other, STORE_WRITE, &err) == -1);
    snprintf(msg, sizeof msg, "%s: not a dpoc store: application_id is 0x0, expected 0x64706f63", other);
    CHECK_STR(err.msg, msg);
}

static void test_corruption(void) {
    const char *path = tmp_path("corrupt.db");
    const char *ids[] = {"k1", "k2", "k3"};
    int seeds[] = {3, 4, 5};
    CHECK(build_store(path, FP1, DESC1, ids, seeds, 3) == 0);
    dp_err err;
    store *s = NULL;
    long n = 0;
    char msg[512];
    CHECK(store_open(&s, path, STORE_READONLY, &err) == 0);
    CHECK(s && store_verify(s, &n, &err) == 0 && n == 3);
    store_close(s);

    /* The last byte of a frame is its checksum. */
    CHECK(flip_blob_byte(path, "chosen_token_logps", "k2", -1) == 0);
    CHECK(store_open(&s, path, STORE_READONLY, &err) == 0);
    if (!s) return;
    store_record r;
    CHECK(store_get(s, "k1", FP1, &r, &err) == 0);
    store_record_free(&r);
    snprintf(msg, sizeof msg, "%s: example k2, reference %s: chosen_token_logps: corrupt zstd frame: Restored data doesn't match checksum", path, FP1);
    CHECK(store_get(s, "k2", FP1, &r, &err) == -1);
    CHECK_STR(err.msg, msg);
    CHECK(r.prompt_ids == NULL && r.chosen_token_logps == NULL);
    CHECK(store_verify(s, &n, &err) == -1);
    CHECK_STR(err.msg, msg);
    store_close(s);
    CHECK(flip_blob_byte(path, "chosen_token_logps", "k2", -1) == 0);

    /* Counts that disagree with the blobs. */
    CHECK(raw_sql(path, "UPDATE ref_rows SET n_rejected = n_rejected + 1 WHERE example_id = 'k3'") == 0);
    CHECK(store_open(&s, path, STORE_READONLY, &err) == 0);
    if (!s) return;
    CHECK(store_verify(s, &n, &err) == -1);
    /* seed 5: n_rejected = 2 + 5 % 4 = 3, so 16 bytes claimed, 12 stored */
    snprintf(msg, sizeof msg, "%s: example k3, reference %s: rejected_ids: zstd frame holds 12 bytes, expected 16 from the token count", path, FP1);
    CHECK_STR(err.msg, msg);
    store_close(s);
    CHECK(raw_sql(path, "UPDATE ref_rows SET n_rejected = 1000000000 WHERE example_id = 'k3'") == 0);
    CHECK(store_open(&s, path, STORE_READONLY, &err) == 0);
    if (!s) return;
    CHECK(store_get(s, "k3", FP1, &r, &err) == -1);
    snprintf(msg, sizeof msg, "%s: example k3, reference %s: n_rejected: expected an integer from 1 to 16777216", path, FP1);
    CHECK_STR(err.msg, msg);
    store_close(s);
    CHECK(raw_sql(path, "UPDATE ref_rows SET n_rejected = 3, prompt_ids = 'text' WHERE example_id = 'k3'") == 0);
    CHECK(store_open(&s, path, STORE_READONLY, &err) == 0);
    if (!s) return;
    CHECK(store_verify(s, &n, &err) == -1);
    snprintf(msg, sizeof msg, "%s: example k3, reference %s: prompt_ids: expected a blob", path, FP1);
    CHECK_STR(err.msg, msg);
    store_close(s);
}

/* The first error store_verify reports for PATH, or "" when it passes. */
static void verify_error(const char *path, char *out, size_t cap) {
    dp_err err;
    store *s = NULL;
    long n = 0;
    out[0] = '\0';
    if (store_open(&s, path, STORE_READONLY, &err) || store_verify(s, &n, &err))
        snprintf(out, cap, "%s", err.msg);
    store_close(s);
}

/* Whatever a dump or a training run would refuse, verify refuses first,
 * with the same one-line message: each case damages a fresh store through
 * raw SQLite; the store's own read path (dump_store: list, get) must fail
 * with the message verify gave. */
static void test_verify_sees_what_readers_refuse(void) {
    static const struct {
        const char *sql, *expect; /* expect: after "PATH: " */
        int readers_refuse;       /* store_list/store_get see it too */
    } cases[] = {
        {"UPDATE ref_rows SET ref_chosen_logp = 1e999 WHERE example_id = 'v2'",
         "example v2, reference " "fp1-0123456789abcdef" ": ref_chosen_logp is inf, expected a finite log-probability", 1},
        {"UPDATE ref_rows SET ref_rejected_logp = -1e999 WHERE example_id = 'v1'",
         "example v1, reference " "fp1-0123456789abcdef" ": ref_rejected_logp is -inf, expected a finite log-probability", 1},
        {"UPDATE ref_rows SET ref_rejected_logp = 'x' WHERE example_id = 'v1'",
         "example v1, reference " "fp1-0123456789abcdef" ": ref_rejected_logp: expected a number", 1},
        /* an example without values, and an id with a newline: quoted */
        {"INSERT INTO examples VALUES ('bad' || char(10) || CAST(x'ff' AS TEXT) || 'id', 'train', "
         "'x.jsonl', 1, 99)",
         "example id \"bad\\n\\xffid\": expected only [0-9A-Za-z_.:-], found byte 0x0a", 1},
        {"PRAGMA ignore_check_constraints = 1; UPDATE examples SET line = 0 WHERE id = 'v1'",
         "example v1: line: expected an integer >= 1", 1},
        {"PRAGMA ignore_check_constraints = 1; UPDATE examples SET split = 'test' WHERE id = 'v2'",
         "example v2: split: expected \"train\" or \"eval\", got \"test\"", 1},
        {"INSERT INTO refs VALUES ('bad fp', '{}')",
         "reference fingerprint: expected printable ASCII without spaces or quotes, found byte 0x20", 1},
        {"INSERT INTO refs VALUES ('fp2', 'not json')",
         "reference fp2: description: expected a JSON object", 0},
    };
    const char *ids[] = {"v1", "v2"};
    int seeds[] = {1, 2};
    char got[1024], want[1024];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "verify%zu.db", i);
        const char *path = tmp_path(name);
        CHECK(build_store(path, FP1, DESC1, ids, seeds, 2) == 0);
        verify_error(path, got, sizeof got);
        CHECK_STR(got, "");
        CHECK(raw_sql(path, cases[i].sql) == 0);
        verify_error(path, got, sizeof got);
        snprintf(want, sizeof want, "%s: %s", path, cases[i].expect);
        CHECK_STR(got, want);
        char *dump = dump_store(path);
        const char *e = strstr(dump, "error: ");
        if (cases[i].readers_refuse) {
            CHECK(e != NULL);
            if (e) CHECK(!strncmp(e + 7, want, strlen(want)) && e[7 + strlen(want)] == '\n');
        }
        free(dump);
    }
}

/* Page-level damage is SQLite's integrity check's to find: flip the last
 * byte of the index's leaf page (the rowid of its first entry). */
static void test_integrity(void) {
    const char *path = tmp_path("pages.db");
    const char *ids[] = {"p1", "p2", "p3"};
    int seeds[] = {1, 2, 3};
    CHECK(build_store(path, FP1, DESC1, ids, seeds, 3) == 0);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long page = -1, page_size = 0;
    sqlite3_open(path, &db);
    if (sqlite3_prepare_v2(db, "SELECT pageno, (SELECT page_size FROM pragma_page_size()) "
                               "FROM dbstat WHERE name = 'examples_order'", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        page = sqlite3_column_int(st, 0);
        page_size = sqlite3_column_int(st, 1);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    CHECK(page > 0);
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    if (!f || page <= 0) return;
    long at = page * page_size - 1;
    fseek(f, at, SEEK_SET);
    int c = fgetc(f);
    fseek(f, at, SEEK_SET);
    fputc(c ^ 1, f);
    fclose(f);
    dp_err err;
    store *s = NULL;
    long n = 0;
    CHECK(store_open(&s, path, STORE_READONLY, &err) == 0);
    CHECK(s && store_verify(s, &n, &err) == -1);
    char msg[512];
    snprintf(msg, sizeof msg, "%s: integrity check failed: row 1 missing from index examples_order", path);
    CHECK_STR(err.msg, msg);
    store_close(s);
}

/* ---- merge ---------------------------------------------------------------- */

static void test_merge(void) {
    const char *a = tmp_path("shard_a.db"), *b = tmp_path("shard_b.db");
    const char *single = tmp_path("single.db"), *merged = tmp_path("merged.db");
    const char *ids_a[] = {"m1", "m3", "m5"}, *ids_b[] = {"m2", "m4", "m3"};
    int seeds_a[] = {1, 3, 5}, seeds_b[] = {2, 4, 3};
    const char *ids_all[] = {"m1", "m2", "m3", "m4", "m5"};
    int seeds_all[] = {1, 2, 3, 4, 5};
    CHECK(build_store(a, FP1, DESC1, ids_a, seeds_a, 3) == 0);
    CHECK(build_store(b, FP1, "{\"max_length\":64,  \"model\":\"tiny\"}", ids_b, seeds_b, 3) == 0);
    CHECK(build_store(single, FP1, DESC1, ids_all, seeds_all, 5) == 0);
    dp_err err;
    store *s = NULL;
    long n = 0;
    CHECK(store_open(&s, merged, STORE_WRITE, &err) == 0);
    if (!s) return;
    CHECK(store_merge(s, a, &n, &err) == 0 && n == 3);
    CHECK(store_merge(s, b, &n, &err) == 0 && n == 2);
    CHECK(store_merge(s, b, &n, &err) == 0 && n == 0);   /* idempotent */
    char *want = dump_store(single), *got = dump_store(merged);
    CHECK(want && got && strncmp(want, "ref ", 4) == 0);
    CHECK_STR(got, want);
    CHECK(strstr(want, "error") == NULL);

    /* A second reference merges beside the first. */
    const char *c = tmp_path("shard_c.db");
    CHECK(build_store(c, "fp2", "{\"model\":\"other\"}", ids_a, seeds_a, 1) == 0);
    CHECK(store_merge(s, c, &n, &err) == 0 && n == 1);
    store_info info;
    CHECK(store_get_info(s, &info, &err) == 0);
    CHECK(info.n_references == 2 && info.n_ref_rows == 6 && info.n_examples == 5);

    /* Same fingerprint, other description: refused, nothing copied. */
    const char *d = tmp_path("shard_d.db");
    const char *ids_d[] = {"m9"};
    int seeds_d[] = {9};
    CHECK(build_store(d, FP1, "{\"model\":\"big\"}", ids_d, seeds_d, 1) == 0);
    char msg[1024];
    snprintf(msg, sizeof msg, "%s: reference %s has a different description than in %s; refusing to merge", d, FP1, merged);
    CHECK(store_merge(s, d, &n, &err) == -1 && n == 0);
    CHECK_STR(err.msg, msg);
    CHECK(store_merge(s, merged, &n, &err) == -1);
    CHECK(store_get_info(s, &info, &err) == 0 && info.n_examples == 5 && info.n_ref_rows == 6);
    const char *missing = tmp_path("nothere.db");
    CHECK(store_merge(s, missing, &n, &err) == -1);
    snprintf(msg, sizeof msg, "%s: cannot open the store: No such file or directory", missing);
    CHECK_STR(err.msg, msg);
    store_close(s);
    free(want);
    free(got);
}

/* ---- info, runs, metrics -------------------------------------------------- */

static void test_info_runs_metrics(void) {
    const char *path = tmp_path("info.db");
    const char *ids[] = {"i1", "i2", "i3", "i4"};
    int seeds[] = {1, 2, 3, 4};
    CHECK(build_store(path, FP1, DESC1, ids, seeds, 4) == 0);
    dp_err err;
    store *s = NULL;
    CHECK(store_open(&s, path, STORE_WRITE, &err) == 0);
    if (!s) return;
    long tokens = 0, raw = 0;
    for (int i = 0; i < 4; i++) {
        int np = 3 + seeds[i] % 5, nc = 1 + seeds[i] % 7, nr = 2 + seeds[i] % 4;
        tokens += np + nc + nr;
        raw += 4L * (np + 2 * nc + 2 * nr);
    }
    int64_t run = 0;
    CHECK(store_put_run(s, "beta0.1", "train:\n  beta: 0.1\n", &run, &err) == 0 && run == 1);
    CHECK(store_put_metrics(s, run, 1, "{\"loss\":0.6931}", &err) == 0);
    CHECK(store_put_metrics(s, run, 1, "{\"eval_loss\":0.7}", &err) == 0);
    char msg[512];
    CHECK(store_put_metrics(s, run, 2, "{\"loss\":}", &err) == -1);
    snprintf(msg, sizeof msg, "%s: run 1, step 2: metrics: line 1 column 9: unexpected token near '}'", path);
    CHECK_STR(err.msg, msg);
    CHECK(store_put_metrics(s, 42, 2, "{}", &err) == -1);
    snprintf(msg, sizeof msg, "%s: run 42 is not in the store (store_put_run first)", path);
    CHECK_STR(err.msg, msg);
    store_info info;
    CHECK(store_get_info(s, &info, &err) == 0);
    CHECK(info.n_examples == 4 && info.n_train == 3 && info.n_eval == 1);
    CHECK(info.n_references == 1 && info.n_ref_rows == 4 && info.n_runs == 1 && info.n_metrics == 2);
    CHECK(info.tokens == tokens);
    CHECK(info.raw_bytes == (size_t)raw);
    CHECK(info.blob_bytes > 0 && info.file_bytes >= 16384 && info.file_bytes % 16384 == 0);
    store_close(s);
}

/* ---- read-only and full disk ---------------------------------------------- */

static void test_readonly(void) {
    const char *path = tmp_path("ro.db");
    const char *ids[] = {"r1"};
    int seeds[] = {1};
    CHECK(build_store(path, FP1, DESC1, ids, seeds, 1) == 0);
    dp_err err;
    store *s = NULL;
    char msg[512];
    CHECK(store_open(&s, path, STORE_READONLY, &err) == 0);
    if (!s) return;
    store_record r;
    make_record(&r, "r2", "train", 0, 2);
    CHECK(store_put_example(s, &r, &err) == -1);
    snprintf(msg, sizeof msg, "%s: store is open read-only, cannot add an example", path);
    CHECK_STR(err.msg, msg);
    CHECK(store_put_ref(s, FP1, &r, &err) == -1);
    CHECK(store_begin(s, &err) == -1);
    long n = 0;
    CHECK(store_merge(s, path, &n, &err) == -1);
    store_record_free(&r);
    store_close(s);

    /* A file the user may not write: the permission check needs a non-root
     * user, so as root the child drops to nobody. */
    const char *dir = tmp_path("rodir");
    mkdir(dir, 0755);
    char rodb[256];
    snprintf(rodb, sizeof rodb, "%s/store.db", dir);
    CHECK(build_store(rodb, FP1, DESC1, ids, seeds, 1) == 0);
    chmod(rodb, 0444);
    chmod(dir, 0555);
    chmod(tmpdir, 0755);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(3);
        int bad = 0;
        store *w = NULL;
        char want[512];
        snprintf(want, sizeof want, "%s: the store is not writable (the file or its directory is read-only)", rodb);
        if (store_open(&w, rodb, STORE_WRITE, &err) != -1 || strcmp(err.msg, want)) {
            fprintf(stderr, "write open: got \"%s\"\n", err.msg);
            bad |= 1;
        }
        store_close(w);
        w = NULL;
        /* Reading still works although the WAL index cannot be created. */
        store_record got;
        if (store_open(&w, rodb, STORE_READONLY, &err) || store_get(w, "r1", FP1, &got, &err)) {
            fprintf(stderr, "read-only open: %s\n", err.msg);
            bad |= 2;
        } else {
            store_record_free(&got);
        }
        store_close(w);
        _exit(bad);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    chmod(dir, 0755);
    chmod(rodb, 0644);
}

static void test_full_disk(void) {
    const char *path = tmp_path("full.db");
    const char *ids[] = {"f1", "f2"};
    int seeds[] = {1, 2};
    CHECK(build_store(path, FP1, DESC1, ids, seeds, 2) == 0);
    char *before = dump_store(path);
    dp_err err;
    store *s = NULL;
    CHECK(store_open(&s, path, STORE_WRITE, &err) == 0);
    if (!s) {
        free(before);
        return;
    }
    /* Files may grow to 256 KiB; the batch below needs several MiB. */
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 256 * 1024;
    signal(SIGXFSZ, SIG_IGN);
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    int rc = store_begin(s, &err);
    for (int i = 0; i < 400 && rc == 0; i++) {
        store_record r;
        char id[16];
        snprintf(id, sizeof id, "big%d", i);
        make_record(&r, id, "train", 100 + i, 3);
        int n = 4000;
        r.n_chosen = r.n_rejected = r.n_prompt = n;
        r.prompt_ids = realloc(r.prompt_ids, 4 * (size_t)n);
        r.chosen_ids = realloc(r.chosen_ids, 4 * (size_t)n);
        r.rejected_ids = realloc(r.rejected_ids, 4 * (size_t)n);
        r.chosen_token_logps = realloc(r.chosen_token_logps, 4 * (size_t)n);
        r.rejected_token_logps = realloc(r.rejected_token_logps, 4 * (size_t)n);
        for (int j = 0; j < n; j++) {
            r.prompt_ids[j] = (int32_t)(rng_u32() >> 1);
            r.chosen_ids[j] = (int32_t)(rng_u32() >> 1);
            r.rejected_ids[j] = (int32_t)(rng_u32() >> 1);
            r.chosen_token_logps[j] = logf(rng_uniform());
            r.rejected_token_logps[j] = logf(rng_uniform());
        }
        rc = store_put_example(s, &r, &err) || store_put_ref(s, FP1, &r, &err);
        store_record_free(&r);
    }
    if (rc == 0) rc = store_commit(s, &err);
    CHECK(rc != 0);
    size_t plen = strlen(path);
    const char *tail = "disk I/O error (File too large)";
    size_t mlen = strlen(err.msg);
    CHECK_MSG(rc && !strncmp(err.msg, path, plen) && mlen > strlen(tail) &&
                  !strcmp(err.msg + mlen - strlen(tail), tail), "message: %s", err.msg);
    store_rollback(s, &err);
    store_close(s);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, SIG_DFL);
    char *after = dump_store(path);
    CHECK(before && after);
    if (before && after) CHECK_STR(after, before);
    CHECK(store_open(&s, path, STORE_READONLY, &err) == 0);
    long n = 0;
    CHECK(s && store_verify(s, &n, &err) == 0 && n == 2);
    store_close(s);
    free(before);
    free(after);
}

/* The embedded schema is the file in schemas/. */
static void test_schema_embedded(void) {
    const char *path = tmp_path("schema.db");
    dp_err err;
    store *s = NULL;
    CHECK(store_open(&s, path, STORE_WRITE, &err) == 0);
    store_close(s);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    sqlite3_open(path, &db);
    const char *tables[] = {"meta", "examples", "refs", "ref_rows", "runs", "metrics"};
    for (int i = 0; i < 6; i++) {
        sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1", -1, &st, NULL);
        sqlite3_bind_text(st, 1, tables[i], -1, SQLITE_STATIC);
        CHECK_MSG(sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 1, "table %s", tables[i]);
        sqlite3_finalize(st);
    }
    sqlite3_prepare_v2(db, "SELECT page_size, application_id, user_version FROM pragma_page_size(), "
                           "pragma_application_id(), pragma_user_version()", -1, &st, NULL);
    CHECK(sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 16384 &&
          sqlite3_column_int(st, 1) == 0x64706f63 && sqlite3_column_int(st, 2) == STORE_SCHEMA_VERSION);
    sqlite3_finalize(st);
    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL);
    CHECK(sqlite3_step(st) == SQLITE_ROW && !strcmp((const char *)sqlite3_column_text(st, 0), "wal"));
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* ---- stores altered by hand ------------------------------------------------ */

/* The whole file at PATH, malloc'd, its size in *n (NULL if unreadable). */
static char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc(len > 0 ? (size_t)len : 1);
    *n = buf && len > 0 ? fread(buf, 1, (size_t)len, f) : 0;
    fclose(f);
    return buf;
}

static int copy_file(const char *from, const char *to) {
    size_t n = 0;
    char *buf = read_file(from, &n);
    FILE *f = buf ? fopen(to, "wb") : NULL;
    int ok = f && fwrite(buf, 1, n, f) == n;
    if (f) ok = fclose(f) == 0 && ok;
    free(buf);
    return ok ? 0 : -1;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define ENDLESS "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) "

/* Every alteration is refused on opening, read-only and for writing, with
 * one line naming the file and the object, before any table is read. */
static void test_hostile_schema(void) {
    const char *good = tmp_path("hostile_good.db"), *path = tmp_path("hostile.db");
    const char *ids[] = {"h1", "h2"};
    int seeds[] = {1, 2};
    CHECK(build_store(good, FP1, DESC1, ids, seeds, 2) == 0);
    static const struct {
        const char *sql, *why;
    } cases[] = {
        {"DROP TABLE refs; CREATE VIEW refs AS " ENDLESS
         "SELECT 'fp' || n AS fingerprint, '{}' AS description FROM c",
         "refs is a view, not the table dpoc writes"},
        {"DROP TABLE examples; CREATE VIEW examples AS " ENDLESS "SELECT printf('e%d', n) AS id, "
         "'train' AS split, 'x' AS source, 1 AS line, n AS ord FROM c",
         "examples is a view, not the table dpoc writes"},
        {"CREATE TRIGGER t1 BEFORE INSERT ON examples BEGIN SELECT 1; END",
         "trigger t1 is not part of a dpoc store"},
        {"CREATE VIEW v AS " ENDLESS "SELECT n FROM c", "view v is not part of a dpoc store"},
        {"CREATE TABLE extra (x)", "table extra is not part of a dpoc store"},
        {"CREATE INDEX extra_i ON examples (source)", "index extra_i is not part of a dpoc store"},
        {"ALTER TABLE refs ADD COLUMN note TEXT", "table refs: column note is not in the one dpoc writes"},
        {"ALTER TABLE runs RENAME COLUMN name TO title",
         "table runs: column title is not in the one dpoc writes"},
        {"DROP INDEX examples_order", "index examples_order is missing"},
        {"DROP INDEX examples_order; CREATE INDEX examples_order ON examples (ord DESC, id)",
         "index examples_order: key 0 differs from the one dpoc writes"},
        {"DROP INDEX examples_order; CREATE INDEX examples_order ON ref_rows (fingerprint)",
         "index examples_order is on ref_rows, not on the table dpoc indexes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK(copy_file(good, path) == 0 && raw_sql(path, cases[i].sql) == 0);
        char msg[512];
        snprintf(msg, sizeof msg, "%s: %s; refusing a store that was altered", path, cases[i].why);
        for (int mode = STORE_READONLY; mode <= STORE_WRITE; mode++) {
            dp_err err;
            store *s = NULL;
            double t0 = now_seconds();
            CHECK_MSG(store_open(&s, path, mode, &err) == -1 && s == NULL, "case %zu", i);
            CHECK_STR(err.msg, msg);
            CHECK_MSG(now_seconds() - t0 < 2.0, "case %zu took %.1f s", i, now_seconds() - t0);
            store_close(s);
        }
    }
}

/* A statement that does more work than the store's size can explain stops
 * within seconds as an error naming the store, and the next statement gets
 * a fresh budget. */
static void test_work_bound(void) {
    const char *path = tmp_path("bound.db");
    const char *ids[] = {"b1"};
    int seeds[] = {1};
    CHECK(build_store(path, FP1, DESC1, ids, seeds, 1) == 0);
    dp_err err;
    store *s = NULL;
    CHECK(store_open(&s, path, STORE_READONLY, &err) == 0);
    if (!s) return;
    double t0 = now_seconds();
    CHECK(store_exec(s, ENDLESS "SELECT count(*) FROM c", "counting", &err) == -1);
    double secs = now_seconds() - t0;
    char msg[512];
    snprintf(msg, sizeof msg, "%s: counting: a query ran past its work bound", path);
    CHECK_MSG(!strncmp(err.msg, msg, strlen(msg)), "got: %s", err.msg);
#ifdef __SANITIZE_ADDRESS__
    const double limit = 60.0; /* every allocation SQLite makes goes through ASan: ~10x slower */
#else
    const double limit = 10.0;
#endif
    CHECK_MSG(secs < limit, "the endless query ran %.1f s", secs);
    fprintf(stderr, "endless query stopped after %.2f s\n", secs);
    store_info info;
    CHECK(store_get_info(s, &info, &err) == 0 && info.n_ref_rows == 1);
    store_close(s);
}

/* Overwrites the first bytes of TABLE's root page after the page header's
 * first byte, so the schema reads fine but the table does not. */
static int smash_root_page(const char *path, const char *table) {
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long page = 0, root = 0;
    if (sqlite3_open(path, &db) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT page_size, rootpage FROM pragma_page_size(), sqlite_schema "
                               "WHERE name = ?1", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            page = (long)sqlite3_column_int64(st, 0);
            root = (long)sqlite3_column_int64(st, 1);
        }
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    FILE *f = page && root ? fopen(path, "r+b") : NULL;
    if (!f) return -1;
    static const char junk[12] = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1};
    int ok = fseek(f, (root - 1) * page + 3, SEEK_SET) == 0 && fwrite(junk, 1, 12, f) == 12;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* Merging from a hostile store (altered schema, damaged page) refuses
 * before the destination is touched: its rows and bytes stay as they were. */
static void test_merge_hostile(void) {
    const char *dst = tmp_path("mh_dst.db"), *good = tmp_path("mh_good.db");
    const char *view = tmp_path("mh_view.db"), *smashed = tmp_path("mh_smashed.db");
    const char *ids[] = {"g1", "g2"}, *ids2[] = {"g3"};
    int seeds[] = {1, 2}, seeds2[] = {3};
    CHECK(build_store(dst, FP1, DESC1, ids, seeds, 2) == 0);
    CHECK(build_store(good, FP1, DESC1, ids2, seeds2, 1) == 0);
    CHECK(copy_file(good, view) == 0 && copy_file(good, smashed) == 0);
    CHECK(raw_sql(view, "DROP TABLE ref_rows; CREATE VIEW ref_rows AS " ENDLESS
                        "SELECT 'g' || n AS example_id, 'fp' AS fingerprint FROM c") == 0);
    CHECK(smash_root_page(smashed, "ref_rows") == 0);
    size_t n_before = 0, n_after = 0;
    char *before = read_file(dst, &n_before), *rows_before = dump_store(dst);
    dp_err err;
    store *s = NULL;
    long n = 0;
    CHECK(store_open(&s, dst, STORE_WRITE, &err) == 0);
    if (!s) return;
    char msg[512];
    CHECK(store_merge(s, view, &n, &err) == -1 && n == 0);
    snprintf(msg, sizeof msg, "%s: ref_rows is a view, not the table dpoc writes; refusing a "
                              "store that was altered", view);
    CHECK_STR(err.msg, msg);
    CHECK(store_merge(s, smashed, &n, &err) == -1 && n == 0);
    snprintf(msg, sizeof msg, "%s: integrity check failed: ", smashed);
    CHECK_MSG(!strncmp(err.msg, msg, strlen(msg)), "got: %s", err.msg);
    store_close(s);
    char *after = read_file(dst, &n_after), *rows_after = dump_store(dst);
    CHECK(before && after && n_before == n_after && !memcmp(before, after, n_before));
    CHECK(rows_before && rows_after && !strcmp(rows_before, rows_after));
    free(before);
    free(after);
    free(rows_before);
    free(rows_after);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dpoc-test-store.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_blob_roundtrip);
    RUN(test_blob_shuffle_helps);
    RUN(test_blob_hostile);
    RUN(test_schema_embedded);
    RUN(test_put_get_roundtrip);
    RUN(test_put_validation);
    RUN(test_list_order);
    RUN(test_uncommitted);
    RUN(test_schema_version);
    RUN(test_corruption);
    RUN(test_integrity);
    RUN(test_verify_sees_what_readers_refuse);
    RUN(test_merge);
    RUN(test_hostile_schema);
    RUN(test_work_bound);
    RUN(test_merge_hostile);
    RUN(test_info_runs_metrics);
    RUN(test_readonly);
    RUN(test_full_disk);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_summary();
}
