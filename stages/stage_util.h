/* stage_util — what the stages share beyond the library: resolving the
 * config into module options (tokenizer path, dataset options, the
 * reference fingerprint), directories, and start-up logging. */
#ifndef DP_STAGE_UTIL_H
#define DP_STAGE_UTIL_H

#include <stddef.h>
#include <stdio.h>

#include "config.h"
#include "dataset.h"
#include "fingerprint.h"
#include "log.h"
#include "model.h"
#include "tokenizer.h"

/* reference.tokenizer, or <reference.model>/tokenizer.json. */
void su_tokenizer_path(const config *c, char *buf, size_t size);

/* 0 if reference.model is a directory; else an error that says what makes
 * it: when it is <sft.output>/model of the same config, the dpoc sft (make
 * sft) command that writes it, e.g. "pipeline.yaml: reference.model:
 * runs/sft/model does not exist yet; it is the model `dpoc sft -c
 * pipeline.yaml` (make sft) writes". Stages that read the reference's files
 * check this first, so a fresh clone gets that line instead of "cannot
 * open". */
int su_check_reference(const config *c, dp_err *err);

/* data.* into dataset options (borrowing strings from c and t). */
int su_dataset_options(const config *c, const tokenizer *t, ds_options *o, dp_err *err);

/* The reference fingerprint of this config. */
int su_fingerprint(const config *c, const tokenizer *t, const ds_options *o,
                   const char *tokenizer_path, fp_result *out, dp_err *err);

/* mkdir -p of PATH's parent directory / of DIR itself. */
int su_mkdirs_for(const char *path, dp_err *err);
int su_mkdirs(const char *dir, dp_err *err);

const char *su_basename(const char *path);
double su_sum(const float *x, int n);      /* in double */
const char *su_blas_info(void);            /* "OpenBLAS core Haswell, 2 threads" */

/* Lines in a plain (uncompressed) file, or -1 for a compressed or
 * unreadable one: the size of a dataset for progress bars. */
long su_count_lines(const char *path);

/* Removes DIR and everything under it (absent is fine). */
int su_rmtree(const char *dir, dp_err *err);
int su_fsync_dir(const char *dir, dp_err *err);

/* Reads a whole file of at most MAX bytes; NUL-terminated, malloc'd, owned
 * by the caller; *len (may be NULL) gets the size. */
char *su_read_file(const char *path, size_t max, size_t *len, dp_err *err);

/* getline with a bound: reads one line (with its '\n') from f into *line
 * (*cap its allocation, as getline). Returns the length, -1 at end of file,
 * or -2 when the line passes SU_MAX_LINE bytes, with err set to
 * "WHERE:LINENO: line longer than N bytes". */
#define SU_MAX_LINE ((size_t)64 << 20)
long su_getline(char **line, size_t *cap, FILE *f, const char *where, long lineno, dp_err *err);

/* Writes DATA[0..n) to PATH whole or not at all: to PATH.tmp, synced, then
 * renamed over PATH. Errors name PATH.tmp (cannot create) or PATH. */
int su_write_file_atomic(const char *path, const void *data, size_t n, dp_err *err);

/* Rewrites metrics.jsonl keeping the lines whose step <= keep_through_step
 * (a resumed run repeats nothing). Absent is fine. */
int su_truncate_metrics(const char *path, long keep_through_step, dp_err *err);

/* Copies the tokenizer files a model directory carries (tokenizer.json,
 * tokenizer_config.json, ...) from one directory to another. */
int su_copy_tokenizer_files(const char *from_dir, const char *to_dir, dp_err *err);

/* Thin names over log.h so the stages read alike. */
#define su_log log_info
#define su_now log_now_seconds
/* log_format_bytes into a static buffer (one use per statement). */
const char *su_bytes(double bytes);

/* A size as users write it: a byte count, or a number with K/M/G/T (powers
 * of 1000) or KiB/MiB/GiB/TiB (powers of 1024), B optional, case-insensitive.
 * Errors name FIELD. */
int su_parse_size(const char *text, const char *field, size_t *out, dp_err *err);

/* Logs how many bytes of half-precision weights WHO's model widened from
 * the checkpoint, in how long, and per token of TOKENS (nothing when the
 * weights are float32). */
void su_log_weights_read(const char *who, const model *m, long tokens);

/* The memory a run must plan within: memory.budget; else, when the run as
 * configured would need more than this machine has (NEED bytes by its
 * estimate), 90% of the machine's memory, so a model too big for it streams
 * or stops up front instead of meeting the OOM killer; else 0 (nothing to
 * plan). LABEL gets how to name the limit in messages. */
int su_memory_limit(const config *c, size_t need, size_t *out, char *label, size_t cap,
                    dp_err *err);

#endif
