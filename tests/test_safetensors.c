/* test_safetensors — reader and writer against the python oracle
 * (tests/oracles/safetensors_oracle.py: numpy/torch conversions, a hand-made
 * file writer and an independent file checker), known F16/BF16 values, and
 * every malformed-file rule with its exact one-line message. */
#include "safetensors.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

static char tmpdir[256];

static const char *tmp_path(const char *name) {
    static char buf[8][512];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

/* Runs the oracle in MODE; "write" runs only once per process. */
static int run_oracle(const char *mode) {
    static int written;
    if (strcmp(mode, "write") == 0 && written) return 0;
    const char *py = getenv("PYTHON");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s tests/oracles/safetensors_oracle.py %s %s",
             py && *py ? py : "/usr/bin/python3", mode, tmpdir);
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "oracle `%s` failed (exit %d)", cmd, rc);
    if (rc == 0 && strcmp(mode, "write") == 0) written = 1;
    return rc;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Reads tensor NAME of S as fp32 (caller frees). */
static float *read_f32(const st_set *s, const char *name, int64_t *numel) {
    const st_tensor *t = st_find(s, name);
    CHECK_MSG(t != NULL, "tensor %s missing", name);
    if (!t) return NULL;
    float *v = malloc((size_t)(t->numel ? t->numel : 1) * sizeof *v);
    dp_err err = {{0}};
    int rc = st_to_f32(t, v, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    *numel = t->numel;
    return v;
}

/* Compares tensor NAME (converted to fp32) bit for bit with NAME_expect. */
static void check_against_expect(const st_set *s, const char *name) {
    char ename[128];
    snprintf(ename, sizeof ename, "%s_expect", name);
    int64_t n1 = -1, n2 = -2;
    float *a = read_f32(s, name, &n1), *b = read_f32(s, ename, &n2);
    CHECK(n1 == n2);
    int bad = 0;
    for (int64_t i = 0; a && b && n1 == n2 && i < n1; i++) {
        int ok = f32_bits(a[i]) == f32_bits(b[i]) || (isnan(a[i]) && isnan(b[i]));
        if (!ok && bad++ < 5)
            CHECK_MSG(0, "%s[%lld]: %08x vs oracle %08x", name, (long long)i, f32_bits(a[i]),
                      f32_bits(b[i]));
    }
    free(a);
    free(b);
}

/* ---- files written by the oracle ---------------------------------------- */

static void test_read_oracle_files(void) {
    if (run_oracle("write") != 0) return;
    static const char *files[] = {"f16.safetensors", "bf16.safetensors", "f32.safetensors"};
    for (int f = 0; f < 3; f++) {
        st_set *s = NULL;
        dp_err err = {{0}};
        int rc = st_open(&s, tmp_path(files[f]), &err);
        CHECK_MSG(rc == 0, "%s", err.msg);
        if (rc != 0) continue;
        CHECK_STR(st_metadata(s, "format"), "pt");
        CHECK_STR(st_metadata(s, "writer"), "oracle");
        CHECK(st_metadata(s, "absent") == NULL);
        for (int i = 0; i < st_count(s); i++) {
            const char *name = st_get(s, i)->name;
            if (i > 0) CHECK(strcmp(st_get(s, i - 1)->name, name) < 0);
            if (!strstr(name, "_expect")) check_against_expect(s, name);
        }
        st_close(s);
    }
    /* Shapes, dtypes, and the unaligned F16 file's sizes. */
    st_set *s = NULL;
    dp_err err = {{0}};
    CHECK(st_open(&s, tmp_path("f32.safetensors"), &err) == 0);
    if (s) {
        CHECK(st_count(s) == 8);
        const st_tensor *t = st_find(s, "scalar");
        CHECK(t && t->ndim == 0 && t->numel == 1 && t->nbytes == 4);
        t = st_find(s, "empty");
        CHECK(t && t->ndim == 2 && t->shape[0] == 0 && t->shape[1] == 3 && t->numel == 0);
        t = st_find(s, "d");
        CHECK(t && t->dtype == ST_F64 && t->numel == 33 && t->nbytes == 264);
        CHECK(st_find(s, "nope") == NULL);
        st_close(s);
    }
    CHECK(st_open(&s, tmp_path("f16.safetensors"), &err) == 0);
    if (s) {
        const st_tensor *t = st_find(s, "x");
        CHECK(t && t->dtype == ST_F16 && t->ndim == 3 && t->shape[2] == 7 && t->nbytes == 210);
        t = st_find(s, "all");
        CHECK(t && ((uintptr_t)t->data & 1) == 1); /* the oracle made the data area odd */
        t = st_find(s, "all_expect");
        CHECK(t && t->dtype == ST_F32 && st_f32_view(t) == NULL); /* unaligned: no view */
        st_close(s);
    }
}

static void test_sharded(void) {
    if (run_oracle("write") != 0) return;
    st_set *s = NULL;
    dp_err err = {{0}};
    int rc = st_open(&s, tmp_path("sharded"), &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc != 0) return;
    CHECK(st_count(s) == 5);
    for (int k = 0; k < 5; k++) {
        char name[32];
        snprintf(name, sizeof name, "layer.%d", k);
        const st_tensor *t = st_find(s, name);
        CHECK_MSG(t != NULL, "%s missing", name);
        if (!t) continue;
        CHECK(t->dtype == (k < 3 ? ST_F32 : ST_BF16));
        CHECK(strstr(st_tensor_file(s, t), k < 3 ? "00001-of" : "00002-of") != NULL);
        int64_t n;
        float *v = read_f32(s, name, &n);
        CHECK(n == 6);
        for (int i = 0; v && i < 6; i++) CHECK(v[i] == (float)(k * 16) + 0.5f * (float)i);
        free(v);
    }
    st_close(s);
    /* The index path itself works too. */
    rc = st_open(&s, tmp_path("sharded/model.safetensors.index.json"), &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc == 0) {
        CHECK(st_count(s) == 5);
        st_close(s);
    }
}

/* ---- known conversion values ------------------------------------------------ */

static void test_f16_values(void) {
    /* IEEE 754 binary16 reference points. */
    CHECK(st_f16_to_f32(0x3C00) == 1.0f);
    CHECK(st_f16_to_f32(0xC000) == -2.0f);
    CHECK(st_f16_to_f32(0x7BFF) == 65504.0f);
    CHECK(st_f16_to_f32(0x0400) == ldexpf(1.0f, -14));        /* smallest normal */
    CHECK(st_f16_to_f32(0x0001) == ldexpf(1.0f, -24));        /* smallest subnormal */
    CHECK(st_f16_to_f32(0x03FF) == ldexpf(1023.0f, -24));     /* largest subnormal */
    CHECK(st_f16_to_f32(0x8001) == -ldexpf(1.0f, -24));
    CHECK(st_f16_to_f32(0x3555) == 0.333251953125f);
    CHECK(f32_bits(st_f16_to_f32(0x8000)) == 0x80000000u);  /* -0 */
    CHECK(isinf(st_f16_to_f32(0x7C00)) && st_f16_to_f32(0x7C00) > 0);
    CHECK(isinf(st_f16_to_f32(0xFC00)) && st_f16_to_f32(0xFC00) < 0);
    CHECK(isnan(st_f16_to_f32(0x7E00)) && isnan(st_f16_to_f32(0x7C01)) &&
          isnan(st_f16_to_f32(0xFE00)));
}

static void test_bf16_values(void) {
    CHECK(st_bf16_to_f32(0x3F80) == 1.0f);
    CHECK(st_bf16_to_f32(0xC040) == -3.0f);
    CHECK(st_bf16_to_f32(0x0001) == ldexpf(1.0f, -133));      /* smallest subnormal */
    CHECK(isinf(st_bf16_to_f32(0x7F80)) && isnan(st_bf16_to_f32(0x7FC0)));
    /* Round to nearest even: 1 + 2^-8 is halfway between 1 and 1 + 2^-7. */
    CHECK(st_f32_to_bf16(1.0f + ldexpf(1.0f, -8)) == 0x3F80);
    CHECK(st_f32_to_bf16(1.0f + 3 * ldexpf(1.0f, -8)) == 0x3F82);  /* tie up to even */
    CHECK(st_f32_to_bf16(1.0f + ldexpf(1.0f, -8) + ldexpf(1.0f, -20)) == 0x3F81);
    CHECK(st_f32_to_bf16(-1.0f) == 0xBF80);
    CHECK(st_f32_to_bf16(FLT_MAX) == 0x7F80);                  /* rounds to +inf */
    CHECK(st_f32_to_bf16(INFINITY) == 0x7F80);
    uint32_t snan_bits = 0x7F800001u;
    float snan;
    memcpy(&snan, &snan_bits, 4);
    uint16_t b = st_f32_to_bf16(snan);       /* truncation would give +inf */
    CHECK((b & 0x7F80) == 0x7F80 && (b & 0x7F) != 0);
    CHECK((st_f32_to_bf16(-NAN) & 0x8000) != 0);
}

/* ---- writer round trips ------------------------------------------------------ */

static uint64_t lcg_state;
static uint32_t lcg_next(void) {
    lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(lcg_state >> 32);
}

/* The tensors the oracle's expected_tensors() describes. */
typedef struct c_tensors {
    float lcg[1000], ramp[100], special[15], scalar;
    st_write_tensor t[5];
} c_tensors;

static void make_c_tensors(c_tensors *c) {
    lcg_state = 42;
    for (int i = 0; i < 1000; i++) {
        uint32_t u = lcg_next();
        memcpy(&c->lcg[i], &u, 4);
    }
    for (int i = 0; i < 100; i++) c->ramp[i] = (float)(i * 37 % 1000 - 500) / 64.0f;
    const float sp[13] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e-40f, FLT_MAX,
                          1 + ldexpf(1, -8), 1 + 3 * ldexpf(1, -8), -(1 + ldexpf(1, -8)),
                          1.0f / 3.0f, 65504.0f, ldexpf(0.75f, -126)};
    memcpy(c->special, sp, sizeof sp);
    uint32_t nans[2] = {0x7F800001u, 0xFF812345u};
    memcpy(&c->special[13], nans, sizeof nans);
    c->scalar = 3.5f;
    /* Deliberately not in name order. */
    c->t[0] = (st_write_tensor){"z.lcg", 2, {10, 100}, c->lcg};
    c->t[1] = (st_write_tensor){"s.scalar", 0, {0}, &c->scalar};
    c->t[2] = (st_write_tensor){"a.ramp", 2, {4, 25}, c->ramp};
    c->t[3] = (st_write_tensor){"m.special", 1, {15}, c->special};
    c->t[4] = (st_write_tensor){"e.empty", 2, {0, 4}, NULL};
}

static void test_round_trip(void) {
    static c_tensors c;
    make_c_tensors(&c);
    for (int bf16 = 0; bf16 <= 1; bf16++) {
        const char *path = tmp_path(bf16 ? "c_bf16.safetensors" : "c_f32.safetensors");
        dp_err err = {{0}};
        int rc = st_write(path, c.t, 5, bf16, &err);
        CHECK_MSG(rc == 0, "%s", err.msg);
        char tmp[600];
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        CHECK(access(tmp, F_OK) != 0); /* the temp file was renamed away */
        st_set *s = NULL;
        rc = st_open(&s, path, &err);
        CHECK_MSG(rc == 0, "%s", err.msg);
        if (rc != 0) continue;
        CHECK_STR(st_metadata(s, "format"), "pt");
        CHECK(st_count(s) == 5);
        /* The writer's padding keeps F32 data aligned for zero-copy use. */
        const st_tensor *lt = st_find(s, "z.lcg");
        const float *view = lt ? st_f32_view(lt) : NULL;
        if (bf16) CHECK(view == NULL);
        else CHECK(view != NULL && memcmp(view, c.lcg, sizeof c.lcg) == 0);
        CHECK_STR(st_get(s, 0)->name, "a.ramp");
        CHECK_STR(st_get(s, 4)->name, "z.lcg");
        for (int k = 0; k < 5; k++) {
            const st_write_tensor *w = &c.t[k];
            const st_tensor *t = st_find(s, w->name);
            CHECK(t && t->dtype == (bf16 ? ST_BF16 : ST_F32) && t->ndim == w->ndim);
            if (!t) continue;
            int64_t numel = 1;
            for (int d = 0; d < w->ndim; d++) {
                CHECK(t->shape[d] == w->shape[d]);
                numel *= w->shape[d];
            }
            CHECK(t->numel == numel);
            int64_t n;
            float *v = read_f32(s, w->name, &n);
            for (int64_t i = 0; v && i < n; i++) {
                float want = bf16 ? st_bf16_to_f32(st_f32_to_bf16(w->data[i])) : w->data[i];
                int ok = f32_bits(v[i]) == f32_bits(want) || (isnan(v[i]) && isnan(want));
                CHECK_MSG(ok, "%s[%lld] %a vs %a", w->name, (long long)i, v[i], want);
                if (bf16 && isnormal(w->data[i]) && fabsf(want) <= FLT_MAX)
                    CHECK(fabsf(v[i] - w->data[i]) <= fabsf(w->data[i]) * ldexpf(1, -8));
            }
            free(v);
        }
        st_close(s);
    }
    /* Byte layout, values and rounding checked independently by python/torch. */
    run_oracle("check");
}

static void test_write_errors(void) {
    float x[4] = {1, 2, 3, 4};
    dp_err err = {{0}};
    st_write_tensor dup[2] = {{"a", 1, {4}, x}, {"a", 1, {2}, x}};
    CHECK(st_write(tmp_path("bad.safetensors"), dup, 2, 0, &err) == -1);
    CHECK(strstr(err.msg, "\"a\" given twice") != NULL);
    st_write_tensor neg = {"n", 2, {2, -1}, x};
    CHECK(st_write(tmp_path("bad.safetensors"), &neg, 1, 0, &err) == -1);
    CHECK(strstr(err.msg, "negative") != NULL);
    st_write_tensor ok = {"ok", 1, {4}, x};
    CHECK(st_write("/nonexistent-dir/x.safetensors", &ok, 1, 0, &err) == -1);
    CHECK(strstr(err.msg, "/nonexistent-dir/x.safetensors.tmp: cannot create") != NULL);
    CHECK(access(tmp_path("bad.safetensors"), F_OK) != 0);
}

/* ---- malformed files ------------------------------------------------------- */

/* Writes header length LEN, then HEADER (hlen bytes), then DATA (dlen bytes). */
static void write_raw_len(const char *name, uint64_t len, const char *header, size_t hlen,
                          const void *data, size_t dlen) {
    FILE *f = fopen(tmp_path(name), "wb");
    CHECK(f != NULL);
    if (!f) return;
    unsigned char l8[8];
    for (int i = 0; i < 8; i++) l8[i] = (unsigned char)(len >> (8 * i));
    fwrite(l8, 1, 8, f);
    fwrite(header, 1, hlen, f);
    if (dlen) fwrite(data, 1, dlen, f);
    fclose(f);
}

static void write_raw(const char *name, const char *header, size_t dlen) {
    static const unsigned char zeros[256];
    write_raw_len(name, strlen(header), header, strlen(header), zeros, dlen);
}

/* Opening NAME must fail with exactly "DIR/NAME: " + WANT. */
static void expect_open_error(const char *name, const char *want) {
    char full[1200];
    snprintf(full, sizeof full, "%s: %s", tmp_path(name), want);
    st_set *s = NULL;
    dp_err err = {{0}};
    int rc = st_open(&s, tmp_path(name), &err);
    CHECK_MSG(rc == -1 && s == NULL, "%s opened", name);
    CHECK_STR(err.msg, full);
    CHECK(strchr(err.msg, '\n') == NULL);
    st_close(s);
}

static void test_malformed(void) {
    const char *T = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";

    write_raw("good.safetensors", T, 16);
    st_set *s = NULL;
    dp_err err = {{0}};
    CHECK(st_open(&s, tmp_path("good.safetensors"), &err) == 0);
    st_close(s);

    write_raw("truncated.safetensors", T, 12);
    expect_open_error("truncated.safetensors",
                      "truncated: header and tensor data need 8 + 57 + 16 = 81 bytes, file has 77");
    write_raw("trailing.safetensors", T, 20);
    expect_open_error("trailing.safetensors",
                      "4 trailing bytes after the tensor data (8 + 57 + 16 = 81 bytes expected, "
                      "file has 85)");

    write_raw_len("pastend.safetensors", 1000, T, strlen(T), NULL, 0);
    expect_open_error("pastend.safetensors",
                      "header length 1000 runs past the end of the file (8 + 1000 > 65 bytes)");
    write_raw_len("huge.safetensors", 100000001ULL, T, strlen(T), NULL, 0);
    expect_open_error("huge.safetensors",
                      "header length 100000001 exceeds the limit of 100000000 bytes");
    write_raw_len("huge2.safetensors", UINT64_MAX, T, strlen(T), NULL, 0);
    expect_open_error("huge2.safetensors",
                      "header length 18446744073709551615 exceeds the limit of 100000000 bytes");

    FILE *f = fopen(tmp_path("empty.safetensors"), "wb");
    if (f) fclose(f);
    expect_open_error("empty.safetensors", "empty file, expected an 8-byte header length");
    f = fopen(tmp_path("short.safetensors"), "wb");
    if (f) {
        fwrite("\x02\x00\x00", 1, 3, f);
        fclose(f);
    }
    expect_open_error("short.safetensors",
                      "file is 3 bytes, shorter than the 8-byte header length");

    write_raw("notjson.safetensors", "{\"a\": [1, 2}", 0);
    expect_open_error("notjson.safetensors",
                      "header is not valid JSON: line 1 column 12: ']' expected near '}'");
    write_raw("array.safetensors", "[1, 2]  ", 0);
    expect_open_error("array.safetensors", "header must be a JSON object");
    write_raw("utf8.safetensors", "{\"a\xff\": 1}", 0);
    expect_open_error("utf8.safetensors",
                      "header is not valid UTF-8 (byte 0xff at header offset 3)");
    write_raw("surrogate.safetensors", "{\"\xed\xa0\x80\": 1}", 0);
    expect_open_error("surrogate.safetensors",
                      "header is not valid UTF-8 (byte 0xed at header offset 2)");

    write_raw("overlap.safetensors",
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16);
    expect_open_error("overlap.safetensors", "tensors \"a\" [0, 16) and \"b\" [8, 16) overlap");
    write_raw("same.safetensors",
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
    expect_open_error("same.safetensors", "tensors \"a\" [0, 8) and \"b\" [0, 8) overlap");
    write_raw("hole.safetensors",
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}", 20);
    expect_open_error("hole.safetensors",
                      "hole of 4 bytes between tensor \"a\" ending at 8 and tensor \"b\" "
                      "starting at 12");
    write_raw("hole0.safetensors",
              "{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12);
    expect_open_error("hole0.safetensors",
                      "hole of 4 bytes at the start of the data area before tensor \"b\" [4, 12)");

    write_raw("mismatch.safetensors",
              "{\"wte.weight\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", 12);
    expect_open_error("mismatch.safetensors",
                      "tensor \"wte.weight\": data_offsets [0, 12) but shape [2, 2] x F32 needs "
                      "16 bytes");
    write_raw("dtype.safetensors",
              "{\"a\":{\"dtype\":\"Q4_K\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2);
    expect_open_error("dtype.safetensors", "tensor \"a\": unknown dtype \"Q4_K\"");
    write_raw("neg.safetensors",
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,8]}}", 8);
    expect_open_error("neg.safetensors", "tensor \"a\": shape[1] must be a non-negative integer");
    write_raw("float.safetensors",
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8);
    expect_open_error("float.safetensors",
                      "tensor \"a\": shape[0] must be a non-negative integer");
    write_raw("ovf.safetensors",
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
              "\"data_offsets\":[0,0]}}", 0);
    expect_open_error("ovf.safetensors",
                      "tensor \"a\": shape [4294967296, 4294967296] x F32 overflows a 64-bit "
                      "byte count");
    write_raw("ovf2.safetensors",
              "{\"a\":{\"dtype\":\"F64\",\"shape\":[2305843009213693952],"
              "\"data_offsets\":[0,0]}}", 0);
    expect_open_error("ovf2.safetensors",
                      "tensor \"a\": shape [2305843009213693952] x F64 overflows a 64-bit "
                      "byte count");
    write_raw("offs.safetensors",
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8);
    expect_open_error("offs.safetensors",
                      "tensor \"a\": data_offsets [8, 0) must satisfy 0 <= begin <= end");
    write_raw("offs2.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}",
              8);
    expect_open_error("offs2.safetensors",
                      "tensor \"a\": \"data_offsets\" must be an array of two integers");
    write_raw("meta.safetensors", "{\"__metadata__\":{\"format\":1}}", 0);
    expect_open_error("meta.safetensors",
                      "\"__metadata__\": value of \"format\" must be a string, got a number");
    /* Names and values from the header are quoted, escaped when they hold
     * control bytes, and shown whole up to 200 bytes. */
    write_raw("ctrl.safetensors",
              "{\"a\\nb\\u001b[2J\":{\"dtype\":\"Q4\\r\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2);
    expect_open_error("ctrl.safetensors", "tensor \"a\\nb\\x1b[2J\": unknown dtype \"Q4\\r\"");
    write_raw("long.safetensors",
              "{\"model.vision_tower.vision_model.encoder.layers.0.self_attn.k_proj.weight\":"
              "{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2);
    expect_open_error("long.safetensors",
                      "tensor \"model.vision_tower.vision_model.encoder.layers.0.self_attn.k_proj."
                      "weight\": data_offsets [0, 2) but shape [2] x F32 needs 8 bytes");
    write_raw("dupkey.safetensors",
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
              "\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0);
    expect_open_error("dupkey.safetensors",
                      "header is not valid JSON: line 1 column 57: duplicate object key near '\"a\"'");
    write_raw("ndim.safetensors",
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4);
    expect_open_error("ndim.safetensors", "tensor \"a\": shape has 9 dimensions, at most 8 supported");

    /* Valid edge cases: zero-size tensors sharing an offset, no tensors at all. */
    write_raw("zeros.safetensors",
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
              "\"b\":{\"dtype\":\"BF16\",\"shape\":[3,0],\"data_offsets\":[0,0]},"
              "\"c\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]}}", 3);
    CHECK(st_open(&s, tmp_path("zeros.safetensors"), &err) == 0);
    if (s) {
        CHECK(st_count(s) == 3);
        float dummy;
        CHECK(st_to_f32(st_find(s, "c"), &dummy, &err) == -1);
        char want[1200];
        snprintf(want, sizeof want, "%s: tensor \"c\": dtype U8 cannot be converted to F32 "
                 "(expected F32, F16, BF16 or F64)", tmp_path("zeros.safetensors"));
        CHECK_STR(err.msg, want);
        CHECK_STR(st_find(s, "c")->file, tmp_path("zeros.safetensors"));
        st_close(s);
    }
    write_raw("none.safetensors", "{}      ", 0);
    CHECK(st_open(&s, tmp_path("none.safetensors"), &err) == 0);
    if (s) {
        CHECK(st_count(s) == 0 && st_find(s, "a") == NULL);
        st_close(s);
    }
}

/* Sharded set errors, built from files the C writer makes. */
static void write_index(const char *dir, const char *json) {
    char p[600];
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    FILE *f = fopen(p, "w");
    if (f) {
        fputs(json, f);
        fclose(f);
    }
}

static void test_sharded_errors(void) {
    const char *dir = tmp_path("shards");
    mkdir(dir, 0755);
    float x[2] = {1, 2};
    st_write_tensor a = {"a", 1, {2}, x}, b = {"b", 1, {2}, x};
    st_write_tensor ab[2] = {a, b};
    dp_err err = {{0}};
    char p1[600], p2[600], idx[600], want[1600];
    snprintf(p1, sizeof p1, "%s/s1.safetensors", dir);
    snprintf(p2, sizeof p2, "%s/s2.safetensors", dir);
    snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", dir);
    CHECK(st_write(p1, ab, 2, 0, &err) == 0);
    CHECK(st_write(p2, &b, 1, 1, &err) == 0);
    st_set *s = NULL;

    /* "b" in both shards. */
    write_index(dir, "{\"weight_map\":{\"a\":\"s1.safetensors\",\"b\":\"s2.safetensors\"}}");
    CHECK(st_open(&s, dir, &err) == -1 && s == NULL);
    snprintf(want, sizeof want, "%s: tensor \"b\" also appears in %s", p2, p1);
    CHECK_STR(err.msg, want);

    CHECK(st_write(p2, &a, 1, 1, &err) == 0); /* now s1 = {a, b}, s2 = {a}: still a duplicate */
    CHECK(st_write(p2, (st_write_tensor[]){{"c", 1, {2}, x}}, 1, 1, &err) == 0);
    write_index(dir, "{\"weight_map\":{\"a\":\"s1.safetensors\",\"b\":\"s1.safetensors\","
                     "\"c\":\"s3.safetensors\"}}");
    CHECK(st_open(&s, dir, &err) == -1);
    snprintf(want, sizeof want, "%s: weight_map names \"s3.safetensors\", which does not exist",
             idx);
    CHECK_STR(err.msg, want);

    write_index(dir, "{\"weight_map\":{\"a\":\"s1.safetensors\",\"b\":\"s2.safetensors\","
                     "\"c\":\"s2.safetensors\"}}");
    CHECK(st_open(&s, dir, &err) == -1);
    snprintf(want, sizeof want, "%s: weight_map: tensor \"b\" maps to \"s2.safetensors\" but is in "
             "\"s1.safetensors\"", idx);
    CHECK_STR(err.msg, want);

    write_index(dir, "{\"weight_map\":{\"a\":\"s1.safetensors\",\"c\":\"s2.safetensors\"}}");
    CHECK(st_open(&s, dir, &err) == -1);
    snprintf(want, sizeof want, "%s: tensor \"b\" is not listed in %s", p1, idx);
    CHECK_STR(err.msg, want);

    write_index(dir, "{\"weight_map\":{\"a\":\"s1.safetensors\",\"b\":\"s1.safetensors\","
                     "\"c\":\"s2.safetensors\",\"d\":\"s2.safetensors\"}}");
    CHECK(st_open(&s, dir, &err) == -1);
    snprintf(want, sizeof want, "%s: weight_map: tensor \"d\" is not in \"s2.safetensors\"", idx);
    CHECK_STR(err.msg, want);

    write_index(dir, "{\"weight_map\": [}");
    CHECK(st_open(&s, dir, &err) == -1);
    snprintf(want, sizeof want, "%s:1:17: not valid JSON: unexpected token near '}'", idx);
    CHECK_STR(err.msg, want);

    write_index(dir, "{\"weight_map\":{\"a\":\"s1.safetensors\",\"b\":\"s1.safetensors\","
                     "\"c\":\"s2.safetensors\"}}");
    CHECK(st_open(&s, dir, &err) == 0);
    if (s) {
        CHECK(st_count(s) == 3 && st_find(s, "c") && st_find(s, "c")->dtype == ST_BF16);
        st_close(s);
    }

    const char *none = tmp_path("nothing");
    mkdir(none, 0755);
    CHECK(st_open(&s, none, &err) == -1);
    snprintf(want, sizeof want, "%s: no model.safetensors or model.safetensors.index.json in "
             "this directory", none);
    CHECK_STR(err.msg, want);
    CHECK(st_open(&s, tmp_path("missing.safetensors"), &err) == -1);
    snprintf(want, sizeof want, "%s: cannot open: No such file or directory",
             tmp_path("missing.safetensors"));
    CHECK_STR(err.msg, want);
}

/* A directory holding model.safetensors opens that file. */
static void test_open_dir(void) {
    const char *dir = tmp_path("single");
    mkdir(dir, 0755);
    char p[600];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    float x[3] = {1.5f, -2.0f, 0.25f};
    st_write_tensor w = {"w", 2, {1, 3}, x};
    dp_err err = {{0}};
    CHECK(st_write(p, &w, 1, 0, &err) == 0);
    st_set *s = NULL;
    int rc = st_open(&s, dir, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc == 0) {
        const st_tensor *t = st_find(s, "w");
        CHECK(t && t->numel == 3 && memcmp(t->data, x, sizeof x) == 0);
        CHECK_STR(st_tensor_file(s, t), p);
        st_close(s);
    }
}

/* Random corruption of a valid file: every open either succeeds or fails with
 * one line naming the file; the sanitizers catch any out-of-bounds read. */
static void test_corruption(void) {
    const char *hdr = "{\"__metadata__\":{\"format\":\"pt\"},"
                      "\"a\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[0,12]},"
                      "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}";
    size_t hlen = strlen(hdr), total = 8 + hlen + 16;
    unsigned char *good = calloc(1, total), *buf = malloc(total);
    for (int i = 0; i < 8; i++) good[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    memcpy(good + 8, hdr, hlen);
    const char *path = tmp_path("fuzz.safetensors");
    lcg_state = 7;
    int opened = 0, failed = 0;
    for (int iter = 0; iter < 400; iter++) {
        memcpy(buf, good, total);
        size_t len = total;
        int edits = 1 + (int)(lcg_next() % 3);
        for (int e = 0; e < edits; e++) {
            uint32_t r = lcg_next();
            if (r % 5 == 0) len = lcg_next() % (total + 1);     /* truncate */
            else buf[lcg_next() % total] = (unsigned char)(r >> 8); /* overwrite a byte */
        }
        FILE *f = fopen(path, "wb");
        if (!f) break;
        fwrite(buf, 1, len, f);
        fclose(f);
        st_set *s = NULL;
        dp_err err = {{0}};
        if (st_open(&s, path, &err) == 0) {
            opened++;
            for (int i = 0; i < st_count(s); i++) {
                const st_tensor *t = st_get(s, i);
                float *v = malloc((size_t)(t->numel ? t->numel : 1) * sizeof *v);
                st_to_f32(t, v, &err);
                free(v);
            }
            st_close(s);
        } else {
            failed++;
            CHECK_MSG(strncmp(err.msg, path, strlen(path)) == 0 && !strchr(err.msg, '\n'),
                      "bad message: %s", err.msg);
        }
    }
    CHECK(opened > 0 && failed > 0);
    free(good);
    free(buf);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "%s/dpoc-st.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_f16_values);
    RUN(test_bf16_values);
    RUN(test_read_oracle_files);
    RUN(test_sharded);
    RUN(test_round_trip);
    RUN(test_write_errors);
    RUN(test_malformed);
    RUN(test_sharded_errors);
    RUN(test_open_dir);
    RUN(test_corruption);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_summary();
}
