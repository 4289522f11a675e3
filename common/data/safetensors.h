/* safetensors — the Hugging Face tensor file format, read and written by
 * the format's own rules.
 *
 * Reading memory-maps the file and validates the whole header before any
 * tensor is handed out: 8-byte little-endian header length N ≤ 100,000,000,
 * 8 + N ≤ file size, UTF-8 JSON, every tensor's byte size ==
 * product(shape) × dtype size (overflow-checked), tensors sorted by offset
 * tile the data area from 0 with no gap or overlap, and the last end offset
 * + 8 + N == file size. Errors name the file and the rule broken.
 * A sharded checkpoint (model.safetensors.index.json) opens as one set. */
#ifndef DP_SAFETENSORS_H
#define DP_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef enum st_dtype {
    ST_F32, ST_F16, ST_BF16, ST_F64, ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL,
    ST_F8_E4M3, ST_F8_E5M2, ST_U16, ST_U32, ST_U64
} st_dtype;

#define ST_MAX_DIMS 8

typedef struct st_tensor {
    const char *name;      /* owned by the set */
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    const void *data;      /* points into the mapping; valid until st_close */
    size_t nbytes;
    const char *file;      /* the file holding it, owned by the set (NULL when made by hand) */
} st_tensor;

typedef struct st_set st_set;

/* Opens a model directory or a file: DIR/model.safetensors,
 * DIR/model.safetensors.index.json (sharded), or PATH itself if it is a
 * .safetensors file. *out is owned by the caller (st_close).
 * A directory with both prefers model.safetensors (as transformers does).
 * st_get(s, i) iterates the tensors sorted by name; st_find uses a hash table.
 * Sharded: every weight_map entry must be in the shard it names, every shard
 * tensor must be listed, and no name may be in two shards. */
int st_open(st_set **out, const char *path, dp_err *err);
void st_close(st_set *s);

/* Makes a SIGBUS from reading a mapped file that shrank (truncated while in
 * use) end the process with one line naming the file and exit status 1,
 * instead of a bare "Bus error". For programs that map weights (dpoc's
 * main). */
void st_install_sigbus_handler(void);

int st_count(const st_set *s);
const st_tensor *st_get(const st_set *s, int i);
const st_tensor *st_find(const st_set *s, const char *name); /* NULL if absent */

/* Converts a tensor of dtype F32, F16, BF16 or F64 to fp32 into DST
 * (t->numel floats). Other dtypes are an error naming the tensor. */
int st_to_f32(const st_tensor *t, float *dst, dp_err *err);

/* T's data as floats without copying when T is F32 and 4-byte aligned in the
 * mapping (always so for files st_write made), else NULL: then use
 * st_to_f32. Read-only, valid until st_close. */
const float *st_f32_view(const st_tensor *t);

/* The format's dtype name ("F32", "BF16", ...) and element size in bytes. */
const char *st_dtype_name(st_dtype d);
size_t st_dtype_size(st_dtype d);

/* The "__metadata__" value for KEY (the first shard holding it wins), or NULL.
 * Owned by the set. */
const char *st_metadata(const st_set *s, const char *key);

/* The path of the file holding T (a tensor of S), owned by the set. */
const char *st_tensor_file(const st_set *s, const st_tensor *t);

/* Scalar conversions: IEEE half and bfloat16 to fp32 (exact, including
 * subnormals, infinities and NaN), fp32 to bfloat16 rounding to nearest even
 * (NaN stays NaN, made quiet). */
float st_f16_to_f32(uint16_t h);
float st_bf16_to_f32(uint16_t b);
uint16_t st_f32_to_bf16(float f);

/* A tensor to write: fp32 data in row-major order. */
typedef struct st_write_tensor {
    const char *name;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const float *data;
} st_write_tensor;

/* Writes PATH atomically (temp file, fsync, rename): tensors sorted by name,
 * dtype F32 or (bf16 != 0) BF16 with round-to-nearest-even, header padded
 * with spaces to a multiple of 8, "__metadata__": {"format": "pt"}.
 * (Implemented in safetensors_write.c.) */
int st_write(const char *path, const st_write_tensor *tensors, int n, int bf16, dp_err *err);

#endif
