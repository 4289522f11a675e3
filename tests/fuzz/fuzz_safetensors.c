/* fuzz_safetensors — common/data/safetensors.c on hostile files.
 *
 * The input is written as a .safetensors file and opened; every tensor is
 * looked up by name and converted to fp32 (a tensor the header validated
 * must be readable in full, so ASan sees any read past the data). An input
 * starting with '{' is also tried as model.safetensors.index.json in a
 * directory holding one valid shard, "s1.safetensors" (tensors "a" [2] F32
 * and "b" [3] BF16), so the sharded path is searched too.
 * Properties beyond memory safety: on failure one non-empty error line; on
 * success the tensors come sorted by name, st_find finds each, and each
 * tensor's nbytes == numel × dtype size. */
#include <math.h>
#include <sys/stat.h>

#include "fuzz_common.h"
#include "safetensors.h"

static void fuzz_st_check_set(st_set *s) {
    int n = st_count(s);
    FUZZ_ASSERT(n >= 0, "count %d", n);
    const char *prev = NULL;
    for (int i = 0; i < n; i++) {
        const st_tensor *t = st_get(s, i);
        FUZZ_ASSERT(t && t->name, "tensor %d missing", i);
        if (prev) FUZZ_ASSERT(strcmp(prev, t->name) < 0, "not sorted: %s, %s", prev, t->name);
        prev = t->name;
        FUZZ_ASSERT(st_find(s, t->name) == t, "st_find(%s)", t->name);
        FUZZ_ASSERT(t->nbytes == (size_t)t->numel * st_dtype_size(t->dtype),
                    "tensor %s: nbytes %zu, numel %lld", t->name, t->nbytes,
                    (long long)t->numel);
        (void)st_tensor_file(s, t);
        const float *view = st_f32_view(t);
        float *dst = malloc(t->numel ? (size_t)t->numel * sizeof(float) : 1);
        FUZZ_ASSERT(dst, "out of memory for %lld floats", (long long)t->numel);
        dp_err err = {{0}};
        if (st_to_f32(t, dst, &err) == 0) {
            volatile float sum = 0;  /* touch every value */
            for (int64_t k = 0; k < t->numel; k++) sum += dst[k];
            (void)sum;
            if (view)
                for (int64_t k = 0; k < t->numel; k++)
                    FUZZ_ASSERT(memcmp(&view[k], &dst[k], 4) == 0, "view differs at %lld",
                                (long long)k);
        } else {
            FUZZ_ASSERT_ONE_LINE(err);
        }
        free(dst);
    }
    FUZZ_ASSERT(st_find(s, "\x01no such tensor") == NULL, "found a missing tensor");
    (void)st_metadata(s, "format");
}

static void fuzz_st_open_path(const char *path) {
    st_set *s = NULL;
    dp_err err = {{0}};
    if (st_open(&s, path, &err) == 0) {
        FUZZ_ASSERT(s, "st_open returned 0 without a set");
        fuzz_st_check_set(s);
        st_close(s);
    } else {
        FUZZ_ASSERT_ONE_LINE(err);
    }
}

/* One valid shard: "a" F32 [2] = {1, 2}, "b" BF16 [3] = {1, -2, 0.5}. */
static void fuzz_st_write_shard(const char *path) {
    static const char hdr[] =
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[8,14]}}";
    uint64_t n = sizeof hdr - 1;
    unsigned char buf[8 + sizeof hdr + 14];
    memcpy(buf, &n, 8);
    memcpy(buf + 8, hdr, n);
    float a[2] = {1, 2};
    uint16_t b[3] = {0x3F80, 0xC000, 0x3F00};
    memcpy(buf + 8 + n, a, 8);
    memcpy(buf + 8 + n + 8, b, 6);
    FILE *f = fopen(path, "wb");
    FUZZ_ASSERT(f && fwrite(buf, 1, 8 + n + 14, f) == 8 + n + 14 && fclose(f) == 0, "%s", path);
}

int fuzz_safetensors(const uint8_t *data, size_t size) {
    fuzz_st_open_path(fuzz_write("t.safetensors", data, size));
    fuzz_unlink("t.safetensors");

    if (size && data[0] == '{') {
        const char *dir = fuzz_path("sharded");
        mkdir(dir, 0700);
        char p[600], q[600];
        snprintf(p, sizeof p, "%s/s1.safetensors", dir);
        fuzz_st_write_shard(p);
        snprintf(q, sizeof q, "%s/model.safetensors.index.json", dir);
        FILE *f = fopen(q, "wb");
        FUZZ_ASSERT(f && (size == 0 || fwrite(data, 1, size, f) == size) && fclose(f) == 0,
                    "%s", q);
        fuzz_st_open_path(dir);
        unlink(p);
        unlink(q);
        rmdir(dir);
    }
    return 0;
}

#ifdef DPOC_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_safetensors(data, size);
}
#endif
