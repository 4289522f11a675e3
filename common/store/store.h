/* store — the cache of reference log-probabilities: one SQLite file in WAL
 * mode (schema: schemas/store.sql, versioned with PRAGMA user_version).
 *
 * An example is keyed by a stable content id (hash of its rendered text) and
 * holds where it came from. Everything that depends on the reference — token
 * ids (tokenizer, truncation) and log-probabilities — is stored per
 * (example id, reference fingerprint). Blobs are zstd frames with checksums;
 * float arrays are byte-shuffled into planes before compression. All SQL
 * goes through bound parameters. The store knows nothing of models. */
#ifndef DP_STORE_H
#define DP_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define STORE_SCHEMA_VERSION 1

/* Limits a store enforces on what it writes and what it reads back (a store
 * file may come from anywhere): fingerprints are 1..STORE_FP_MAX-1 printable
 * characters, ids 1..39 of [0-9A-Za-z_.:-], and no response or prompt holds
 * more than STORE_MAX_TOKENS tokens. */
#define STORE_FP_MAX 129
#define STORE_MAX_TOKENS (1 << 24)

typedef struct store store;

enum { STORE_READONLY = 0, STORE_WRITE = 1 };

/* Opens (and with STORE_WRITE creates or migrates) the store at PATH. A store
 * from a newer schema version is refused, naming both versions; so is a file
 * that is not a dpoc store (PRAGMA application_id 'dpoc'), and one whose
 * schema is not exactly what schemas/store.sql creates (a view or trigger,
 * an extra table, index or column), naming the object. The file is treated
 * as untrusted: the connection is opened defensively (store_schema.c) and
 * a statement that runs past a work bound sized by the file fails with an
 * error naming the store. STORE_WRITE on a
 * file that cannot be written is an error naming the path; STORE_READONLY
 * works in read-only directories too. A store is used from one thread at a
 * time. Errors from any call name the store's path. */
int store_open(store **out, const char *path, int mode, dp_err *err);
void store_close(store *s);

/* Explicit transactions; writers batch many puts into one. store_rollback
 * drops the open transaction (no-op without one); store_close rolls back an
 * uncommitted one. */
int store_begin(store *s, dp_err *err);
int store_commit(store *s, dp_err *err);
int store_rollback(store *s, dp_err *err);

/* A reference fingerprint and a JSON description of what it covers (model,
 * tokenizer, truncation, ...); idempotent. The description must be a JSON
 * object and is stored canonical (keys sorted, compact). The fingerprint is
 * what identifies the reference: putting it again with another description
 * (e.g. the model moved: paths are described but not hashed) replaces the
 * description. */
int store_put_reference(store *s, const char *fingerprint, const char *description_json,
                        dp_err *err);
/* Copies the description of FINGERPRINT into *json (malloc'd) or sets *json
 * = NULL if the store does not know it. */
int store_get_reference(store *s, const char *fingerprint, char **json, dp_err *err);
/* Every fingerprint in the store, sorted; *fps is one malloc'd array of n
 * entries owned by the caller. */
int store_list_references(store *s, char (**fps)[STORE_FP_MAX], size_t *n, dp_err *err);

/* One example with its reference values. Pointers are borrowed for the
 * duration of a put; after store_get they are malloc'd and owned by the
 * record (store_record_free). */
typedef struct store_record {
    char id[40];               /* content id, hex */
    char split[16];            /* "train" or "eval" */
    char source[256];          /* file the row came from */
    long line;                 /* 1-based line in source */
    long ord;                  /* position in the dataset, for store order */
    int32_t *prompt_ids, *chosen_ids, *rejected_ids;
    int n_prompt, n_chosen, n_rejected;   /* chosen/rejected include the EOS */
    double ref_chosen_logp, ref_rejected_logp;
    float *chosen_token_logps, *rejected_token_logps;  /* n_chosen, n_rejected */
} store_record;

void store_record_free(store_record *r);

/* Inserts or updates the example (id, split, source, line, ord). */
int store_put_example(store *s, const store_record *r, dp_err *err);

/* 1 in *has if (id, fingerprint) has reference values. */
int store_has_ref(store *s, const char *id, const char *fingerprint, int *has, dp_err *err);

/* Stores token ids and reference log-probs of r under FINGERPRINT (replacing
 * earlier values). The example and the reference must already be stored.
 * Refused: n_chosen or n_rejected < 1, a count above STORE_MAX_TOKENS, a
 * negative token id, a non-finite log-prob. */
int store_put_ref(store *s, const char *fingerprint, const store_record *r, dp_err *err);

/* Loads example ID with its values under FINGERPRINT into *r (decompressing
 * and checksumming every blob). Missing → error naming id and fingerprint. */
int store_get(store *s, const char *id, const char *fingerprint, store_record *r, dp_err *err);

/* The ids of SPLIT ("train", "eval", or NULL for all) in store order (ord,
 * then id), with n_missing = how many of them lack values under FINGERPRINT
 * (NULL fingerprint: any). *ids is one malloc'd array of n entries of
 * 40 chars, owned by the caller. */
int store_list(store *s, const char *split, const char *fingerprint, char (**ids)[40],
               size_t *n, size_t *n_missing, dp_err *err);

/* Training runs and their metrics (one JSON object per logged step). */
int store_put_run(store *s, const char *name, const char *config_yaml, int64_t *run_id,
                  dp_err *err);
int store_put_metrics(store *s, int64_t run_id, long step, const char *json, dp_err *err);

/* Statistics for `dpoc store info`. */
typedef struct store_info {
    long n_examples, n_references, n_ref_rows, n_runs;
    long n_train, n_eval, n_metrics;
    long tokens;                 /* response + prompt tokens over all ref rows */
    size_t file_bytes, blob_bytes, raw_bytes;  /* database pages; compressed blobs; their
                                                  decoded size (4 bytes a value) */
} store_info;
int store_get_info(store *s, store_info *info, dp_err *err);

/* SQLite's integrity and foreign-key checks, then everything a reader
 * would refuse: every reference (fingerprint, description a JSON object),
 * every example (id, split, source, line, ord) and every reference row read
 * as store_get reads it (counts, every blob decompressed, checksummed and
 * length-checked, token ids >= 0, finite log-probabilities and sums). The
 * first problem found is the error, naming the row and the field. */
int store_verify(store *s, long *n_checked, dp_err *err);

/* Copies every reference, example and reference row of SRC into DST in one
 * transaction (not inside store_begin), after checking SRC whole (opened as
 * a store, then SQLite's integrity and foreign-key checks) so that a refused
 * SRC leaves DST as it was; rows DST already has are kept, so a repeated
 * merge copies nothing. A fingerprint present in both with
 * differing descriptions is refused and nothing is copied. *n_copied =
 * reference rows copied. Runs and metrics are not copied. */
int store_merge(store *dst, const char *src_path, long *n_copied, dp_err *err);

/* Blob codec, exposed for tests and fuzzing: one zstd frame with content
 * size and checksum; `shuffle` (element size 4, nbytes a multiple of 4)
 * splits the bytes into planes first. Decoding refuses anything but exactly
 * one such frame of exactly expect_bytes, checking the declared size before
 * allocating; *out is malloc'd (non-NULL even for 0 bytes). */
int store_blob_encode(const void *data, size_t nbytes, int shuffle, void **out, size_t *out_len,
                      dp_err *err);
int store_blob_decode(const void *blob, size_t len, int shuffle, size_t expect_bytes, void **out,
                      dp_err *err);

#endif
