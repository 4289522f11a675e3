/* store_blob — the store's blob codec: an array of 4-byte values, optionally
 * byte-shuffled into 4 planes, compressed into one zstd frame that carries
 * its content size and a content checksum (XXH64, checked by zstd on
 * decompression).
 *
 * Shuffling puts byte k of every value into plane k (planes stored one after
 * another), as Blosc does: the sign/exponent bytes of float32 log-probs and
 * the high bytes of int32 token ids vary slowly, so their planes compress to
 * almost nothing, while the raw interleaved bytes barely compress at all.
 *
 * Decoding trusts nothing: the frame must start with the zstd magic, declare
 * its content size, carry a checksum and end exactly at the blob's end, and
 * the declared size must equal the size the caller expects (from the row's
 * token counts) BEFORE anything is allocated, so a hostile blob cannot make
 * us allocate more than its row claims. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "the store keeps 4-byte values little-endian; add byte swapping for this target");

enum { STORE_ZSTD_LEVEL = 3, STORE_ELEM = 4 };

/* dst[p*n + i] = src[i*4 + p]: n elements of 4 bytes into 4 planes. */
static void shuffle4(uint8_t *dst, const uint8_t *src, size_t n) {
    for (size_t i = 0; i < n; i++)
        for (int p = 0; p < STORE_ELEM; p++) dst[(size_t)p * n + i] = src[i * STORE_ELEM + p];
}

static void unshuffle4(uint8_t *dst, const uint8_t *src, size_t n) {
    for (size_t i = 0; i < n; i++)
        for (int p = 0; p < STORE_ELEM; p++) dst[i * STORE_ELEM + p] = src[(size_t)p * n + i];
}

int store_blob_encode_ctx(ZSTD_CCtx *cctx, const void *data, size_t nbytes, int shuffle,
                          void **out, size_t *out_len, dp_err *err) {
    *out = NULL;
    *out_len = 0;
    if (shuffle && nbytes % STORE_ELEM)
        return dp_fail(err, "blob encode: cannot shuffle %zu bytes into 4 planes, expected a "
                            "multiple of 4", nbytes);
    if (nbytes && !data) return dp_fail(err, "blob encode: %zu bytes expected, got no data", nbytes);
    const void *src = data;
    uint8_t *planes = NULL;
    if (shuffle && nbytes) {
        planes = dp_malloc(nbytes, err);
        if (!planes) return -1;
        shuffle4(planes, data, nbytes / STORE_ELEM);
        src = planes;
    }
    size_t cap = ZSTD_compressBound(nbytes);
    void *buf = dp_malloc(cap, err);
    if (!buf) {
        free(planes);
        return -1;
    }
    ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
    size_t rc = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, STORE_ZSTD_LEVEL);
    if (!ZSTD_isError(rc)) rc = ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
    if (!ZSTD_isError(rc)) rc = ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);
    if (!ZSTD_isError(rc)) rc = ZSTD_compress2(cctx, buf, cap, src, nbytes);
    free(planes);
    if (ZSTD_isError(rc)) {
        free(buf);
        return dp_fail(err, "blob encode: zstd failed on %zu bytes: %s", nbytes,
                       ZSTD_getErrorName(rc));
    }
    *out = buf;
    *out_len = rc;
    return 0;
}

/* Frame header descriptor (RFC 8878, 3.1.1.1.1): byte 4 of a frame, bit 2 is
 * the Content_Checksum_flag. */
static const uint8_t zstd_magic[4] = {0x28, 0xB5, 0x2F, 0xFD};

int store_blob_decode_ctx(ZSTD_DCtx *dctx, const void *blob, size_t len, int shuffle,
                          size_t expect_bytes, void **out, dp_err *err) {
    *out = NULL;
    if (shuffle && expect_bytes % STORE_ELEM)
        return dp_fail(err, "cannot unshuffle %zu bytes from 4 planes, expected a multiple of 4",
                       expect_bytes);
    if (!blob || len < 5 || memcmp(blob, zstd_magic, 4) != 0)
        return dp_fail(err, "expected a zstd frame, found %zu bytes without the zstd magic "
                            "number", len);
    if (!(((const uint8_t *)blob)[4] & 0x04))
        return dp_fail(err, "zstd frame has no content checksum, expected one");
    unsigned long long size = ZSTD_getFrameContentSize(blob, len);
    if (size == ZSTD_CONTENTSIZE_ERROR)
        return dp_fail(err, "zstd frame header is corrupt (%zu bytes)", len);
    if (size == ZSTD_CONTENTSIZE_UNKNOWN)
        return dp_fail(err, "zstd frame does not declare its content size, expected %zu bytes",
                       expect_bytes);
    if (size != expect_bytes)
        return dp_fail(err, "zstd frame holds %llu bytes, expected %zu from the token count", size,
                       expect_bytes);
    size_t frame = ZSTD_findFrameCompressedSize(blob, len);
    if (ZSTD_isError(frame))
        return dp_fail(err, "zstd frame is truncated or corrupt: %s", ZSTD_getErrorName(frame));
    if (frame != len)
        return dp_fail(err, "blob has %zu bytes after its zstd frame, expected none", len - frame);

    uint8_t *raw = dp_malloc(expect_bytes, err);
    if (!raw) return -1;
    ZSTD_DCtx_reset(dctx, ZSTD_reset_session_and_parameters);
    size_t got = ZSTD_decompressDCtx(dctx, raw, expect_bytes, blob, len);
    if (ZSTD_isError(got)) {
        free(raw);
        return dp_fail(err, "corrupt zstd frame: %s", ZSTD_getErrorName(got));
    }
    if (got != expect_bytes) {
        free(raw);
        return dp_fail(err, "zstd frame decoded to %zu bytes, expected %zu", got, expect_bytes);
    }
    if (shuffle && expect_bytes) {
        uint8_t *values = dp_malloc(expect_bytes, err);
        if (!values) {
            free(raw);
            return -1;
        }
        unshuffle4(values, raw, expect_bytes / STORE_ELEM);
        free(raw);
        raw = values;
    }
    *out = raw;
    return 0;
}

int store_blob_encode(const void *data, size_t nbytes, int shuffle, void **out, size_t *out_len,
                      dp_err *err) {
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    if (!cctx) return dp_fail(err, "blob encode: out of memory creating a zstd context");
    int rc = store_blob_encode_ctx(cctx, data, nbytes, shuffle, out, out_len, err);
    ZSTD_freeCCtx(cctx);
    return rc;
}

int store_blob_decode(const void *blob, size_t len, int shuffle, size_t expect_bytes, void **out,
                      dp_err *err) {
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    if (!dctx) return dp_fail(err, "blob decode: out of memory creating a zstd context");
    int rc = store_blob_decode_ctx(dctx, blob, len, shuffle, expect_bytes, out, err);
    ZSTD_freeDCtx(dctx);
    return rc;
}
