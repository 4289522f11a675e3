/* fuzz_store_blob — the store's blob codec (common/store/store_blob.c) on hostile
 * blobs.
 *
 * The input is decoded as a blob with shuffle off and on, against expected
 * sizes 0, 4, the input's size rounded to 4, the size the frame header
 * declares (when it is at most STORE_MAX_TOKENS values, the most a row can
 * claim), that size ± 4, and SIZE_MAX. Then the input itself (cut to a
 * multiple of 4) is encoded and decoded back.
 * Properties: decoding succeeds only for exactly the declared size, hands
 * back a non-NULL buffer of that size (ASan checks the reads), errors are
 * one line; encode/decode is the identity. */
#include <zstd.h>

#include "fuzz_common.h"
#include "store.h"

static void fuzz_blob_decode(const uint8_t *data, size_t size, int shuffle, size_t expect) {
    void *out = NULL;
    dp_err err = {{0}};
    int rc = store_blob_decode(data, size, shuffle, expect, &out, &err);
    if (rc == 0) {
        FUZZ_ASSERT(out, "decode succeeded without a buffer (expect %zu)", expect);
        unsigned long long declared = ZSTD_getFrameContentSize(data, size);
        FUZZ_ASSERT(declared == expect, "decoded %zu bytes from a frame declaring %llu", expect,
                    declared);
        volatile uint8_t x = 0;  /* every byte must be there */
        for (size_t i = 0; i < expect; i++) x ^= ((const uint8_t *)out)[i];
        (void)x;
        /* Re-encoding what came out gives a blob that decodes to the same. */
        void *blob = NULL, *back = NULL;
        size_t blen = 0;
        FUZZ_ASSERT(store_blob_encode(out, expect, shuffle, &blob, &blen, &err) == 0, "%s",
                    err.msg);
        FUZZ_ASSERT(store_blob_decode(blob, blen, shuffle, expect, &back, &err) == 0, "%s",
                    err.msg);
        FUZZ_ASSERT(expect == 0 || memcmp(out, back, expect) == 0, "re-encoded blob differs");
        free(blob);
        free(back);
    } else {
        FUZZ_ASSERT(out == NULL, "failed decode left a buffer");
        FUZZ_ASSERT_ONE_LINE(err);
    }
    free(out);
}

int fuzz_store_blob(const uint8_t *data, size_t size) {
    unsigned long long declared = ZSTD_getFrameContentSize(data, size);
    size_t expects[8] = {0, 4, size & ~(size_t)3, SIZE_MAX, SIZE_MAX - 3};
    int n = 5;
    const unsigned long long max_bytes = 4ULL * STORE_MAX_TOKENS;
    if (declared != ZSTD_CONTENTSIZE_ERROR && declared != ZSTD_CONTENTSIZE_UNKNOWN &&
        declared <= max_bytes) {
        expects[n++] = (size_t)declared;
        expects[n++] = (size_t)declared + 4;
        if (declared >= 4) expects[n++] = (size_t)declared - 4;
    }
    for (int shuffle = 0; shuffle < 2; shuffle++)
        for (int i = 0; i < n; i++) fuzz_blob_decode(data, size, shuffle, expects[i]);

    /* The input as values: encode, decode, compare. */
    size_t nbytes = size & ~(size_t)3;
    for (int shuffle = 0; shuffle < 2; shuffle++) {
        void *blob = NULL, *back = NULL;
        size_t blen = 0;
        dp_err err = {{0}};
        FUZZ_ASSERT(store_blob_encode(data, nbytes, shuffle, &blob, &blen, &err) == 0, "%s",
                    err.msg);
        FUZZ_ASSERT(store_blob_decode(blob, blen, shuffle, nbytes, &back, &err) == 0, "%s",
                    err.msg);
        FUZZ_ASSERT(back && (nbytes == 0 || memcmp(back, data, nbytes) == 0),
                    "encode/decode changed %zu bytes (shuffle %d)", nbytes, shuffle);
        free(blob);
        free(back);
    }
    return 0;
}

#ifdef DPOC_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_store_blob(data, size);
}
#endif
