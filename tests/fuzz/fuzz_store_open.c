/* fuzz_store_open — a whole store file from elsewhere (common/store/): the
 * input is written to a file and opened the way dpoc opens a store it is
 * given (store_open read-only, which checks the header fields and the schema
 * against schemas/store.sql); when it opens, everything the stages do with
 * it runs: verify, info, every reference, the examples with their values
 * (the first 64), and a merge into a fresh store.
 * Properties: nothing crashes or runs away (libFuzzer's -timeout catches a
 * hang; the store's work bound must stop any statement first); every error
 * is one line naming the file (out-of-memory aside; a merge may name its
 * destination when it is what failed); a refused merge leaves
 * the destination's counts as they were. */
#include "fuzz_common.h"
#include "store.h"

/* An error must be one line that names the file (or OTHER, the destination
 * of a merge, when given). */
static void fuzz_store_error(const dp_err *err, const char *path, const char *other) {
    FUZZ_ASSERT_ONE_LINE(*err);
    FUZZ_ASSERT(strstr(err->msg, path) || (other && strstr(err->msg, other)) ||
                    strstr(err->msg, "out of memory"),
                "error does not name the store: [%s]", err->msg);
}

/* Reads what dump and train read: every reference, the ids, and the values
 * of the first examples under each reference. */
static void fuzz_store_read(store *s, const char *path) {
    dp_err err = {{0}};
    long n = 0;
    if (store_verify(s, &n, &err)) fuzz_store_error(&err, path, NULL);
    store_info info;
    if (store_get_info(s, &info, &err)) fuzz_store_error(&err, path, NULL);
    char (*fps)[STORE_FP_MAX] = NULL;
    size_t n_fps = 0;
    if (store_list_references(s, &fps, &n_fps, &err)) {
        fuzz_store_error(&err, path, NULL);
        return;
    }
    char (*ids)[40] = NULL;
    size_t n_ids = 0, n_missing = 0;
    if (store_list(s, NULL, NULL, &ids, &n_ids, &n_missing, &err)) fuzz_store_error(&err, path, NULL);
    for (size_t i = 0; i < n_ids && i < 64; i++)
        for (size_t k = 0; k < n_fps; k++) {
            int has = 0;
            if (store_has_ref(s, ids[i], fps[k], &has, &err)) {
                fuzz_store_error(&err, path, NULL);
                continue;
            }
            store_record r;
            if (has && store_get(s, ids[i], fps[k], &r, &err) == 0) {
                FUZZ_ASSERT(r.n_chosen >= 1 && r.n_rejected >= 1 && r.n_prompt >= 0,
                            "store_get returned counts %d %d %d", r.n_prompt, r.n_chosen,
                            r.n_rejected);
                store_record_free(&r);
            } else if (has) {
                fuzz_store_error(&err, path, NULL);
            }
        }
    free(ids);
    free(fps);
}

/* Merges PATH into a fresh store; a refusal must leave it empty. */
static void fuzz_store_merge(const char *path) {
    fuzz_unlink("dst.sqlite");
    fuzz_unlink("dst.sqlite-wal");
    fuzz_unlink("dst.sqlite-shm");
    char dst_path[512];
    snprintf(dst_path, sizeof dst_path, "%s", fuzz_path("dst.sqlite"));
    dp_err err = {{0}};
    store *dst = NULL;
    FUZZ_ASSERT(store_open(&dst, dst_path, STORE_WRITE, &err) == 0, "%s", err.msg);
    long n = 0;
    if (store_merge(dst, path, &n, &err)) {
        fuzz_store_error(&err, path, dst_path);
        store_info info;
        FUZZ_ASSERT(store_get_info(dst, &info, &err) == 0, "%s", err.msg);
        FUZZ_ASSERT(info.n_examples == 0 && info.n_references == 0 && info.n_ref_rows == 0,
                    "a refused merge left %ld examples, %ld references, %ld rows",
                    info.n_examples, info.n_references, info.n_ref_rows);
    }
    store_close(dst);
}

int fuzz_store_open(const uint8_t *data, size_t size) {
    fuzz_unlink("store.sqlite-wal");
    fuzz_unlink("store.sqlite-shm");
    char path[512]; /* fuzz_path's buffers rotate */
    snprintf(path, sizeof path, "%s", fuzz_write("store.sqlite", data, size));
    dp_err err = {{0}};
    store *s = NULL;
    if (store_open(&s, path, STORE_READONLY, &err)) {
        FUZZ_ASSERT(s == NULL, "failed open left a store");
        fuzz_store_error(&err, path, NULL);
        return 0;
    }
    fuzz_store_read(s, path);
    store_close(s);
    fuzz_store_merge(path);
    return 0;
}

#ifdef DPOC_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_store_open(data, size);
}
#endif
