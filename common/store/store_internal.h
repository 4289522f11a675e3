/* store_internal — what the store's source files (store.c, store_blob.c,
 * store_check.c, store_schema.c) share and nobody else sees: the store struct, the cached
 * statements, and the codec with reusable zstd contexts. */
#ifndef DP_STORE_INTERNAL_H
#define DP_STORE_INTERNAL_H

#include <sqlite3.h>
#include <zstd.h>

#include "store.h"

/* Every statement the store runs, prepared once on first use. */
enum store_stmt {
    ST_PUT_EXAMPLE,
    ST_EXAMPLE_EXISTS,
    ST_PUT_REFERENCE,
    ST_GET_REFERENCE,
    ST_LIST_REFERENCES,
    ST_HAS_REF,
    ST_PUT_REF,
    ST_GET,
    ST_LIST_ALL,
    ST_LIST_SPLIT,
    ST_PUT_RUN,
    ST_PUT_METRICS,
    ST_VERIFY_ROWS,
    ST_VERIFY_EXAMPLES,
    ST_VERIFY_REFERENCES,
    N_STORE_STMT
};

struct store {
    sqlite3 *db;
    char *path;                        /* for messages: dp_label(file) */
    char *file;                        /* the path as given, for opening */
    char *wal_file;                    /* file + "-wal", sized for the work bound */
    int mode;                          /* STORE_READONLY or STORE_WRITE */
    sqlite3_stmt *stmt[N_STORE_STMT];
    ZSTD_CCtx *cctx;                   /* reused across blobs */
    ZSTD_DCtx *dctx;
    /* The work bound of the running statement (store_schema.c), in ticks of
     * the progress handler; work_extra_bytes counts an attached file in. */
    long long work_ticks, work_budget_ticks, work_extra_bytes;
};

/* schemas/store.sql, NUL-terminated, assembled into the binary (store.c). */
extern const char dp_store_schema_sql[] __attribute__((visibility("hidden")));

/* Sets up a fresh connection for an untrusted file: defensive mode,
 * trusted_schema off, no extension loading, views and triggers off, cell
 * size checks, and a bound on the work of each statement (past it the
 * statement fails with SQLITE_INTERRUPT and store_over_budget is true). */
int store_harden(store *s, dp_err *err);
int store_over_budget(const store *s);

/* Refuses, naming FILE (for messages) and the first object that differs, a
 * SCHEMA ("main", or the name of an attached store) that is not exactly what schemas/store.sql
 * creates: every table as a table with its columns, foreign keys and
 * indexes, every index with its columns, and nothing else (no views, no
 * triggers, no other tables). Reads only the schema, never a table. */
int store_check_schema(store *s, const char *schema, const char *file, dp_err *err);

/* The cached statement WHICH, reset and with bindings cleared, or NULL with
 * err set. Callers sqlite3_reset() it when done so no read stays open. */
sqlite3_stmt *store_stmt(store *s, enum store_stmt which, dp_err *err);


/* PATH as SQLite must see it to open that file: "./" before a name SQLite
 * would read as a URI ("file:...") or a special name (":memory:"). Malloc'd;
 * NULL when out of memory. */
char *store_sqlite_name(const char *path);

/* Runs SQL without parameters (pragmas, BEGIN/COMMIT); errors name the path
 * and WHAT. */
int store_exec(store *s, const char *sql, const char *what, dp_err *err);

/* "PATH: WHAT: sqlite's message". Returns -1. */
int store_sql_fail(store *s, const char *what, dp_err *err);

/* -1 with "PATH: store is open read-only, cannot WHAT" unless writable. */
int store_require_write(store *s, const char *what, dp_err *err);

/* The rules every example id and fingerprint must meet (store.h); errors
 * name the store and show the value quoted. */
int store_check_id(const store *s, const char *id, dp_err *err);
int store_check_fingerprint(const store *s, const char *fp, dp_err *err);

/* Reads the current row of STMT from column COL on, laid out as ST_GET's
 * (split, source, line, ord, ref_chosen_logp, ref_rejected_logp, then the
 * counts and blobs of store_decode_row), into r (whose id is set), checking
 * every value as store_get promises. On failure r's arrays are freed. */
int store_read_row(store *s, sqlite3_stmt *stmt, int col, const char *fingerprint,
                   store_record *r, dp_err *err);

/* Reads the current row of STMT into r (whose id is set): the counts
 * n_prompt, n_chosen, n_rejected from columns FIRST_COUNT.. (range-checked),
 * then the five blobs from columns FIRST_BLOB.. (prompt_ids, chosen_ids,
 * rejected_ids, chosen_token_logps, rejected_token_logps), each decoded,
 * checksummed and length-checked against its count, and the values checked
 * (ids >= 0, log-probs finite). Errors name the store, example id, reference
 * and column. On failure r's arrays are freed. */
int store_decode_row(store *s, sqlite3_stmt *stmt, int first_count, int first_blob,
                     const char *fingerprint, store_record *r, dp_err *err);

/* The codec with caller-owned contexts (see store_blob_encode/decode). */
int store_blob_encode_ctx(ZSTD_CCtx *cctx, const void *data, size_t nbytes, int shuffle,
                          void **out, size_t *out_len, dp_err *err);
int store_blob_decode_ctx(ZSTD_DCtx *dctx, const void *blob, size_t len, int shuffle,
                          size_t expect_bytes, void **out, dp_err *err);

#endif
