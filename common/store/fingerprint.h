/* fingerprint — what a cached reference value depends on, hashed.
 *
 * The description is a small JSON object with one field per input: the
 * engine's numeric version, a content hash of config.json and of every
 * weight file, of the tokenizer files, the chat template, the row format,
 * the truncation settings and the BOS/EOS policy. The fingerprint is the
 * XXH3-128 of the canonical description (32 hex digits). Paths are not part
 * of it: moving a model changes nothing, editing one byte of it changes
 * everything. */
#ifndef DP_FINGERPRINT_H
#define DP_FINGERPRINT_H

#include "error.h"

/* Bump when a change to the engine changes its numbers. */
#define FP_ENGINE_VERSION "dpoc-engine-1"

typedef struct fp_inputs {
    const char *model_dir;       /* config.json + *.safetensors (+ index) */
    const char *tokenizer_path;  /* tokenizer.json; tokenizer_config.json beside it is hashed too */
    const char *format, *chat_template, *truncation;
    long max_length, max_prompt_length;
    int adds_bos, bos_id, eos_id;
} fp_inputs;

typedef struct fp_result {
    char fingerprint[33];
    char *description;           /* JSON, malloc'd, owned by the caller */
} fp_result;

int fp_compute(const fp_inputs *in, fp_result *out, dp_err *err);
void fp_result_free(fp_result *r);

/* Compares two descriptions and writes the fields that differ, e.g.
 * "model weights or config.json, max_length (512 vs 256)", into buf. */
void fp_explain_difference(const char *ours, const char *theirs, char *buf, size_t size);

#endif
