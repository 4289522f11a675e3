/* store — see store.h. This file: opening (schema creation and version
 * checks), the cached statements, examples, references, reference rows,
 * listing, runs and metrics. The blob codec is in store_blob.c; info, verify
 * and merge in store_check.c; the connection's defenses and the schema
 * check in store_schema.c.
 *
 * Every value reaches SQLite through a bound parameter; the only SQL text
 * built at run time is a pragma with a compile-time integer. Statements are
 * prepared once per connection and reset after each use, so no read
 * transaction outlives the call that opened it. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_internal.h"

/* schemas/store.sql, NUL-terminated, assembled into the binary. */
__asm__(".pushsection .rodata\n"
        ".global dp_store_schema_sql\n"
        ".hidden dp_store_schema_sql\n"
        ".type dp_store_schema_sql, @object\n"
        "dp_store_schema_sql:\n"
        ".incbin \"schemas/store.sql\"\n"
        ".byte 0\n"
        ".size dp_store_schema_sql, . - dp_store_schema_sql\n"
        ".popsection\n");

/* PRAGMA application_id of a dpoc store: "dpoc" in ASCII. */
#define STORE_APPLICATION_ID 0x64706f63
#define STORE_BUSY_TIMEOUT_MS 10000
#define STORE_PAGE_SIZE 16384

static const char *const stmt_sql[N_STORE_STMT] = {
    [ST_PUT_EXAMPLE] = "INSERT INTO examples (id, split, source, line, ord) VALUES (?1, ?2, ?3, ?4, ?5) "
                       "ON CONFLICT (id) DO UPDATE SET split = excluded.split, "
                       "source = excluded.source, line = excluded.line, ord = excluded.ord",
    [ST_EXAMPLE_EXISTS] = "SELECT 1 FROM examples WHERE id = ?1",
    /* The fingerprint decides; the description may carry fields that are not
     * hashed (where the model lives), so the latest one is kept. */
    [ST_PUT_REFERENCE] = "INSERT INTO refs (fingerprint, description) VALUES (?1, ?2) "
                         "ON CONFLICT (fingerprint) DO UPDATE SET description = excluded.description "
                         "WHERE description IS NOT excluded.description",
    [ST_GET_REFERENCE] = "SELECT description FROM refs WHERE fingerprint = ?1",
    [ST_LIST_REFERENCES] = "SELECT fingerprint FROM refs ORDER BY fingerprint",
    [ST_HAS_REF] = "SELECT 1 FROM ref_rows WHERE example_id = ?1 AND fingerprint = ?2",
    [ST_PUT_REF] = "INSERT OR REPLACE INTO ref_rows (example_id, fingerprint, n_prompt, n_chosen, "
                   "n_rejected, ref_chosen_logp, ref_rejected_logp, prompt_ids, chosen_ids, "
                   "rejected_ids, chosen_token_logps, rejected_token_logps) "
                   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    [ST_GET] = "SELECT e.split, e.source, e.line, e.ord, r.ref_chosen_logp, r.ref_rejected_logp, "
               "r.n_prompt, r.n_chosen, r.n_rejected, r.prompt_ids, r.chosen_ids, r.rejected_ids, "
               "r.chosen_token_logps, r.rejected_token_logps "
               "FROM ref_rows r JOIN examples e ON e.id = r.example_id "
               "WHERE r.example_id = ?1 AND r.fingerprint = ?2",
    [ST_LIST_ALL] = "SELECT e.id, EXISTS (SELECT 1 FROM ref_rows r WHERE r.example_id = e.id "
                    "AND (?1 IS NULL OR r.fingerprint = ?1)) "
                    "FROM examples e ORDER BY e.ord, e.id",
    [ST_LIST_SPLIT] = "SELECT e.id, EXISTS (SELECT 1 FROM ref_rows r WHERE r.example_id = e.id "
                      "AND (?1 IS NULL OR r.fingerprint = ?1)) "
                      "FROM examples e WHERE e.split = ?2 ORDER BY e.ord, e.id",
    [ST_PUT_RUN] = "INSERT INTO runs (name, config_yaml) VALUES (?1, ?2)",
    [ST_PUT_METRICS] = "INSERT INTO metrics (run_id, step, json) VALUES (?1, ?2, ?3)",
    /* The columns of ST_GET after the example id and fingerprint. */
    [ST_VERIFY_ROWS] = "SELECT r.example_id, r.fingerprint, e.split, e.source, e.line, e.ord, "
                       "r.ref_chosen_logp, r.ref_rejected_logp, r.n_prompt, r.n_chosen, r.n_rejected, "
                       "r.prompt_ids, r.chosen_ids, r.rejected_ids, r.chosen_token_logps, "
                       "r.rejected_token_logps FROM ref_rows r JOIN examples e ON e.id = r.example_id "
                       "ORDER BY e.ord, e.id, r.fingerprint",
    [ST_VERIFY_EXAMPLES] = "SELECT id, split, source, line, ord FROM examples ORDER BY ord, id",
    [ST_VERIFY_REFERENCES] = "SELECT fingerprint, description FROM refs ORDER BY fingerprint",
};

int store_sql_fail(store *s, const char *what, dp_err *err) {
    /* I/O failures carry the OS's reason: a full disk (ENOSPC), a file-size
     * limit (EFBIG), a vanished device. SQLite keeps it for some failures
     * only (a failed write's errno is lost by the time COMMIT returns), so
     * errno is consulted too, for the reasons a write can fail with. */
    int saved = errno;
    int code = sqlite3_errcode(s->db) & 0xff, sys = sqlite3_system_errno(s->db);
    if (code == SQLITE_INTERRUPT && store_over_budget(s))
        return dp_fail(err, "%s: %s: a query ran past its work bound (%lld million steps); "
                            "refusing a store that was altered", s->path, what,
                       s->work_budget_ticks / 1000);
    if (!sys && (code == SQLITE_IOERR || code == SQLITE_FULL) &&
        (saved == EFBIG || saved == ENOSPC || saved == EDQUOT || saved == EIO))
        sys = saved;
    if ((code == SQLITE_IOERR || code == SQLITE_FULL || code == SQLITE_CANTOPEN) && sys)
        return dp_fail(err, "%s: %s: %s (%s)", s->path, what, sqlite3_errmsg(s->db), strerror(sys));
    return dp_fail(err, "%s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

int store_require_write(store *s, const char *what, dp_err *err) {
    if (s->mode == STORE_WRITE) return 0;
    return dp_fail(err, "%s: store is open read-only, cannot %s", s->path, what);
}

sqlite3_stmt *store_stmt(store *s, enum store_stmt which, dp_err *err) {
    if (!s->stmt[which]) {
        if (sqlite3_prepare_v3(s->db, stmt_sql[which], -1, SQLITE_PREPARE_PERSISTENT,
                               &s->stmt[which], NULL) != SQLITE_OK) {
            store_sql_fail(s, "preparing a statement", err);
            sqlite3_finalize(s->stmt[which]);
            s->stmt[which] = NULL;
            return NULL;
        }
    }
    sqlite3_reset(s->stmt[which]);
    sqlite3_clear_bindings(s->stmt[which]);
    return s->stmt[which];
}

int store_exec(store *s, const char *sql, const char *what, dp_err *err) {
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK) return store_sql_fail(s, what, err);
    return 0;
}

/* The integer a pragma query returns; -1 with sqlite's error left in s->db. */
static int pragma_int(store *s, const char *sql, long long *value) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        return -1;
    }
    *value = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return 0;
}

/* Ids are content hashes (hex) — kept to a safe alphabet so they print in
 * errors and JSON as they are. */
int store_check_id(const store *s, const char *id, dp_err *err) {
    size_t n = id ? strnlen(id, 40) : 0;
    if (n == 0 || n >= 40)
        return dp_fail(err, "%s: example id: expected 1 to 39 characters, got %s", s->path,
                       n ? "more" : "none");
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        char q[DP_QUOTE_CAP];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '_' || c == '.' || c == ':' || c == '-'))
            return dp_fail(err, "%s: example id %s: expected only [0-9A-Za-z_.:-], found "
                                "byte 0x%02x", s->path, dp_quote(q, id, n), (unsigned char)c);
    }
    return 0;
}
int store_check_fingerprint(const store *s, const char *fp, dp_err *err) {
    size_t n = fp ? strnlen(fp, STORE_FP_MAX) : 0;
    if (n == 0 || n >= STORE_FP_MAX)
        return dp_fail(err, "%s: reference fingerprint: expected 1 to %d characters, got %s",
                       s->path, STORE_FP_MAX - 1, n ? "more" : "none");
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)fp[i] <= 0x20 || (unsigned char)fp[i] >= 0x7f || fp[i] == '"' ||
            fp[i] == '\\')
            return dp_fail(err, "%s: reference fingerprint: expected printable ASCII without "
                                "spaces or quotes, found byte 0x%02x", s->path,
                           (unsigned char)fp[i]);
    return 0;
}

static int check_split(const store *s, const char *split, dp_err *err) {
    if (split && (!strcmp(split, "train") || !strcmp(split, "eval"))) return 0;
    char q[DP_QUOTE_CAP];
    return dp_fail(err, "%s: split: expected \"train\" or \"eval\", got %s", s->path,
                   dp_quote(q, split, split ? strnlen(split, 16) : 0));
}

/* Creates the tables of an empty database (inside one transaction). */
static int create_schema(store *s, dp_err *err) {
    if (store_exec(s, "BEGIN IMMEDIATE", "creating the store", err)) return -1;
    char pragmas[128];
    snprintf(pragmas, sizeof pragmas, "PRAGMA application_id = %d; PRAGMA user_version = %d;",
             STORE_APPLICATION_ID, STORE_SCHEMA_VERSION);
    if (store_exec(s, dp_store_schema_sql, "creating the schema", err) ||
        store_exec(s, pragmas, "setting the schema version", err) ||
        store_exec(s, "INSERT OR REPLACE INTO meta (key, value) VALUES ('created_by', 'dpoc'), "
                      "('created_at', strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))",
                   "creating the store", err) ||
        store_exec(s, "COMMIT", "creating the store", err)) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    return 0;
}

char *store_sqlite_name(const char *path) {
    int plain = strncmp(path, "file:", 5) != 0 && path[0] != ':';
    size_t n = strlen(path);
    char *name = malloc(n + 3);
    if (name) snprintf(name, n + 3, "%s%s", plain ? "" : "./", path);
    return name;
}

/* "file:" URI of PATH with immutable=1, for reading a WAL store from a
 * directory where the shared-memory file cannot be created. */
static char *immutable_uri(const char *path) {
    size_t n = strlen(path);
    char *uri = malloc(3 * n + 32);
    if (!uri) return NULL;
    char *o = uri + sprintf(uri, "file:");
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        if ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
            strchr("/._-~", *p))
            *o++ = (char)*p;
        else
            o += sprintf(o, "%%%02X", *p);
    }
    strcpy(o, "?immutable=1");
    return uri;
}

/* Opens the connection and reads the version; retries a read-only open
 * with immutable=1 when the WAL index cannot be created (read-only dir). */
static int open_connection(store *s, long long *version, long long *app_id, dp_err *err) {
    int flags = s->mode == STORE_WRITE ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
                                       : SQLITE_OPEN_READONLY;
    flags |= SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
    for (int attempt = 0; attempt < 2; attempt++) {
        char *name = attempt ? immutable_uri(s->file) : store_sqlite_name(s->file);
        if (!name) return dp_fail(err, "%s: out of memory", s->path);
        int rc = sqlite3_open_v2(name, &s->db, flags | (attempt ? SQLITE_OPEN_URI : 0), NULL);
        free(name);
        if (rc != SQLITE_OK) {
            int sys = s->db ? sqlite3_system_errno(s->db) : 0;
            dp_fail(err, "%s: cannot open the store: %s%s%s%s", s->path,
                    s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc), sys ? " (" : "",
                    sys ? strerror(sys) : "", sys ? ")" : "");
            sqlite3_close_v2(s->db);
            s->db = NULL;
            return -1;
        }
        /* SQLite silently opens a file it may not write read-only. */
        if (s->mode == STORE_WRITE && sqlite3_db_readonly(s->db, "main") == 1)
            return dp_fail(err, "%s: the store is not writable (the file or its directory is "
                                "read-only)", s->path);
        if (store_harden(s, err)) return -1;
        sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
        if (pragma_int(s, "PRAGMA user_version", version) == 0 &&
            pragma_int(s, "PRAGMA application_id", app_id) == 0)
            return 0;
        int code = sqlite3_extended_errcode(s->db);
        if (code == SQLITE_NOTADB)
            dp_fail(err, "%s: not a dpoc store: the file is not an SQLite database", s->path);
        else
            store_sql_fail(s, "cannot read the store", err);
        sqlite3_close_v2(s->db);
        s->db = NULL;
        int retry = s->mode == STORE_READONLY && attempt == 0 &&
                    (code == SQLITE_CANTOPEN || (code & 0xff) == SQLITE_READONLY);
        if (!retry) return -1;
    }
    return -1;
}

static int open_store(store *s, dp_err *err) {
    struct stat st;
    if (s->mode == STORE_READONLY && stat(s->file, &st) != 0)
        return dp_fail(err, "%s: cannot open the store: %s", s->path, strerror(errno));
    long long version = 0, app_id = 0;
    if (open_connection(s, &version, &app_id, err)) return -1;
    if (version > STORE_SCHEMA_VERSION)
        return dp_fail(err, "%s: schema version %lld is newer than this dpoc understands (%d)",
                       s->path, version, STORE_SCHEMA_VERSION);
    if (store_exec(s, "PRAGMA foreign_keys = ON", "enabling foreign keys", err)) return -1;
    long long n_tables = 0;
    if (pragma_int(s, "SELECT count(*) FROM sqlite_schema", &n_tables))
        return store_sql_fail(s, "reading the schema", err);
    if (version == 0 && app_id == 0 && n_tables == 0) {
        if (s->mode == STORE_READONLY)
            return dp_fail(err, "%s: not a dpoc store: the database is empty", s->path);
    } else if (app_id != STORE_APPLICATION_ID) {
        return dp_fail(err, "%s: not a dpoc store: application_id is 0x%llx, expected 0x%x",
                       s->path, (unsigned long long)app_id, STORE_APPLICATION_ID);
    } else if (version != STORE_SCHEMA_VERSION) {
        return dp_fail(err, "%s: schema version %lld has no migration to version %d", s->path,
                       version, STORE_SCHEMA_VERSION);
    } else if (store_check_schema(s, "main", s->path, err)) {
        return -1;
    }
    if (s->mode == STORE_WRITE && version == 0 && n_tables == 0) {
        /* A row holds a few KiB of blobs: with SQLite's default 4 KiB pages
         * most pages would hold one row and half the file would be slack
         * (measured: 8.8 bytes a token at 4 KiB, 5.2 at 16 KiB). Only takes
         * effect before the first write, and must precede WAL mode. */
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA page_size = %d", STORE_PAGE_SIZE);
        if (store_exec(s, sql, "setting the page size", err)) return -1;
    }
    if (s->mode == STORE_WRITE) {
        /* WAL: readers never block the writer; NORMAL sync keeps the file
         * consistent on a crash and loses at most the last commits on power
         * loss, never on kill -9. */
        sqlite3_stmt *st = NULL;
        int wal = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL) ==
                      SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
                  sqlite3_column_text(st, 0) &&
                  !strcmp((const char *)sqlite3_column_text(st, 0), "wal");
        sqlite3_finalize(st);
        if (!wal) return store_sql_fail(s, "switching to WAL mode", err);
        if (store_exec(s, "PRAGMA synchronous = NORMAL", "setting synchronous mode", err))
            return -1;
        if (version == 0 && create_schema(s, err)) return -1;
    }
    s->cctx = ZSTD_createCCtx();
    s->dctx = ZSTD_createDCtx();
    if (!s->cctx || !s->dctx) return dp_fail(err, "%s: out of memory creating zstd contexts", s->path);
    return 0;
}

int store_open(store **out, const char *path, int mode, dp_err *err) {
    *out = NULL;
    if (!path || !*path) return dp_fail(err, "store: expected a file name, got an empty path");
    char q[DP_QUOTE_CAP];
    if (mode != STORE_READONLY && mode != STORE_WRITE)
        return dp_fail(err, "%s: store_open: mode %d is neither STORE_READONLY nor STORE_WRITE",
                       dp_label(q, path), mode);
    store *s = dp_calloc(1, sizeof *s, err);
    if (!s) return -1;
    s->mode = mode;
    s->file = strdup(path);
    s->path = strdup(dp_label(q, path));
    s->wal_file = malloc(strlen(path) + 5);
    if (s->wal_file) sprintf(s->wal_file, "%s-wal", path);
    if (!s->path || !s->file || !s->wal_file) {
        free(s->wal_file);
        free(s->file);
        free(s->path);
        free(s);
        return dp_fail(err, "out of memory opening a store");
    }
    if (open_store(s, err)) {
        store_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

void store_close(store *s) {
    if (!s) return;
    for (int i = 0; i < N_STORE_STMT; i++) sqlite3_finalize(s->stmt[i]);
    if (s->db && !sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close_v2(s->db);
    ZSTD_freeCCtx(s->cctx);
    ZSTD_freeDCtx(s->dctx);
    free(s->path);
    free(s->file);
    free(s->wal_file);
    free(s);
}

int store_begin(store *s, dp_err *err) {
    if (store_require_write(s, "begin a write transaction", err)) return -1;
    return store_exec(s, "BEGIN IMMEDIATE", "beginning a transaction", err);
}

int store_commit(store *s, dp_err *err) {
    return store_exec(s, "COMMIT", "committing", err);
}

int store_rollback(store *s, dp_err *err) {
    if (sqlite3_get_autocommit(s->db)) return 0;
    return store_exec(s, "ROLLBACK", "rolling back", err);
}

/* Steps a write statement to completion and resets it. */
static int step_done(store *s, sqlite3_stmt *st, const char *what, dp_err *err) {
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) store_sql_fail(s, what, err);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* ---- references ---------------------------------------------------------- */

int store_get_reference(store *s, const char *fingerprint, char **json, dp_err *err) {
    *json = NULL;
    if (store_check_fingerprint(s, fingerprint, err)) return -1;
    sqlite3_stmt *st = store_stmt(s, ST_GET_REFERENCE, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, fingerprint, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(st, 0);
        *json = strdup(text ? text : "");
        sqlite3_reset(st);
        if (!*json) return dp_fail(err, "%s: out of memory reading reference %s", s->path,
                                   fingerprint);
        return 0;
    }
    if (rc != SQLITE_DONE) store_sql_fail(s, "reading a reference", err);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* DESCRIPTION as canonical JSON (object, keys sorted, compact), malloc'd. */
static char *canonical_json(store *s, const char *fp, const char *description, dp_err *err) {
    json_error_t jerr;
    json_t *root = json_loads(description ? description : "", JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        dp_fail(err, "%s: reference %s: description: line %d column %d: %s", s->path, fp,
                jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    char *out = NULL;
    if (!json_is_object(root))
        dp_fail(err, "%s: reference %s: description: expected a JSON object", s->path, fp);
    else if (!(out = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS)))
        dp_fail(err, "%s: reference %s: out of memory", s->path, fp);
    json_decref(root);
    return out;
}

int store_put_reference(store *s, const char *fingerprint, const char *description_json,
                        dp_err *err) {
    if (store_require_write(s, "add a reference", err) || store_check_fingerprint(s, fingerprint, err))
        return -1;
    char *canon = canonical_json(s, fingerprint, description_json, err);
    if (!canon) return -1;
    sqlite3_stmt *st = store_stmt(s, ST_PUT_REFERENCE, err);
    int rc = -1;
    if (st) {
        sqlite3_bind_text(st, 1, fingerprint, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, canon, -1, SQLITE_STATIC);
        rc = step_done(s, st, "adding a reference", err);
    }
    free(canon);
    return rc;
}

int store_list_references(store *s, char (**fps)[STORE_FP_MAX], size_t *n, dp_err *err) {
    *fps = NULL;
    *n = 0;
    sqlite3_stmt *st = store_stmt(s, ST_LIST_REFERENCES, err);
    if (!st) return -1;
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *fp = (const char *)sqlite3_column_text(st, 0);
        if (store_check_fingerprint(s, fp, err)) break;
        if (*n == cap) {
            cap = cap ? 2 * cap : 8;
            void *grown = realloc(*fps, cap * sizeof **fps);
            if (!grown) {
                dp_fail(err, "%s: out of memory listing references", s->path);
                break;
            }
            *fps = grown;
        }
        strcpy((*fps)[(*n)++], fp);
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) store_sql_fail(s, "listing references", err);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        free(*fps);
        *fps = NULL;
        *n = 0;
        return -1;
    }
    return 0;
}

/* ---- examples and reference rows ------------------------------------------ */

void store_record_free(store_record *r) {
    if (!r) return;
    free(r->prompt_ids);
    free(r->chosen_ids);
    free(r->rejected_ids);
    free(r->chosen_token_logps);
    free(r->rejected_token_logps);
    r->prompt_ids = r->chosen_ids = r->rejected_ids = NULL;
    r->chosen_token_logps = r->rejected_token_logps = NULL;
}

int store_put_example(store *s, const store_record *r, dp_err *err) {
    if (store_require_write(s, "add an example", err) || store_check_id(s, r->id, err) ||
        check_split(s, strnlen(r->split, sizeof r->split) < sizeof r->split ? r->split : NULL,
                    err))
        return -1;
    if (strnlen(r->source, sizeof r->source) == sizeof r->source)
        return dp_fail(err, "%s: example %s: source is not NUL-terminated", s->path, r->id);
    if (r->line < 1)
        return dp_fail(err, "%s: example %s: line: expected >= 1, got %ld", s->path, r->id, r->line);
    sqlite3_stmt *st = store_stmt(s, ST_PUT_EXAMPLE, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->split, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, r->source, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, r->line);
    sqlite3_bind_int64(st, 5, r->ord);
    char what[80];
    snprintf(what, sizeof what, "example %s: adding the example", r->id);
    return step_done(s, st, what, err);
}

int store_has_ref(store *s, const char *id, const char *fingerprint, int *has, dp_err *err) {
    *has = 0;
    if (store_check_id(s, id, err) || store_check_fingerprint(s, fingerprint, err)) return -1;
    sqlite3_stmt *st = store_stmt(s, ST_HAS_REF, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, fingerprint, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *has = 1;
    else if (rc != SQLITE_DONE) store_sql_fail(s, "looking up reference values", err);
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

static const char *const blob_columns[5] = {"prompt_ids", "chosen_ids", "rejected_ids",
                                            "chosen_token_logps", "rejected_token_logps"};

/* The five arrays of r with their counts, in blob column order. */
static void record_arrays(const store_record *r, const void *arrays[5], int counts[5]) {
    arrays[0] = r->prompt_ids, counts[0] = r->n_prompt;
    arrays[1] = r->chosen_ids, counts[1] = r->n_chosen;
    arrays[2] = r->rejected_ids, counts[2] = r->n_rejected;
    arrays[3] = r->chosen_token_logps, counts[3] = r->n_chosen;
    arrays[4] = r->rejected_token_logps, counts[4] = r->n_rejected;
}

/* Checks the counts and values of r (shared by put and get): a store file
 * may come from anywhere, so reading checks what writing promised. */
static int check_values(store *s, const char *fp, const store_record *r, dp_err *err) {
    const char *count_names[3] = {"n_prompt", "n_chosen", "n_rejected"};
    int counts3[3] = {r->n_prompt, r->n_chosen, r->n_rejected};
    for (int k = 0; k < 3; k++)
        if (counts3[k] < (k ? 1 : 0) || counts3[k] > STORE_MAX_TOKENS)
            return dp_fail(err, "%s: example %s, reference %s: %s: expected %d to %d, got %d",
                           s->path, r->id, fp, count_names[k], k ? 1 : 0, STORE_MAX_TOKENS,
                           counts3[k]);
    if (!isfinite(r->ref_chosen_logp) || !isfinite(r->ref_rejected_logp))
        return dp_fail(err, "%s: example %s, reference %s: ref_%s_logp is %g, expected a finite "
                            "log-probability", s->path, r->id, fp,
                       isfinite(r->ref_chosen_logp) ? "rejected" : "chosen",
                       isfinite(r->ref_chosen_logp) ? r->ref_rejected_logp : r->ref_chosen_logp);
    const void *arrays[5];
    int counts[5];
    record_arrays(r, arrays, counts);
    for (int k = 0; k < 5; k++) {
        if (counts[k] && !arrays[k])
            return dp_fail(err, "%s: example %s, reference %s: %s: expected %d values, got NULL",
                           s->path, r->id, fp, blob_columns[k], counts[k]);
        for (int i = 0; i < counts[k]; i++) {
            if (k < 3 && ((const int32_t *)arrays[k])[i] < 0)
                return dp_fail(err, "%s: example %s, reference %s: %s[%d] is %d, expected a "
                                    "token id >= 0", s->path, r->id, fp, blob_columns[k], i,
                               ((const int32_t *)arrays[k])[i]);
            if (k >= 3 && !isfinite(((const float *)arrays[k])[i]))
                return dp_fail(err, "%s: example %s, reference %s: %s[%d] is %g, expected a "
                                    "finite log-probability", s->path, r->id, fp,
                               blob_columns[k], i, ((const float *)arrays[k])[i]);
        }
    }
    return 0;
}

/* Says which parent row a failed ref_rows insert lacks. */
static int missing_parent(store *s, const char *fp, const store_record *r, dp_err *err) {
    char *desc = NULL;
    if (store_get_reference(s, fp, &desc, err)) return -1;
    free(desc);
    if (!desc)
        return dp_fail(err, "%s: reference %s is not in the store (store_put_reference first)",
                       s->path, fp);
    return dp_fail(err, "%s: example %s is not in the store (store_put_example first)", s->path,
                   r->id);
}

int store_put_ref(store *s, const char *fingerprint, const store_record *r, dp_err *err) {
    if (store_require_write(s, "store reference values", err) || store_check_id(s, r->id, err) ||
        store_check_fingerprint(s, fingerprint, err) || check_values(s, fingerprint, r, err))
        return -1;
    const void *arrays[5];
    int counts[5];
    record_arrays(r, arrays, counts);
    void *blobs[5] = {0};
    size_t lens[5] = {0};
    int rc = 0;
    for (int k = 0; k < 5 && rc == 0; k++)
        if (store_blob_encode_ctx(s->cctx, arrays[k], (size_t)counts[k] * 4, 1, &blobs[k],
                                  &lens[k], err))
            rc = dp_context(err, "%s: example %s: %s", s->path, r->id, blob_columns[k]);
    sqlite3_stmt *st = rc ? NULL : store_stmt(s, ST_PUT_REF, err);
    if (!rc && !st) rc = -1;
    if (!rc) {
        sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, fingerprint, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, r->n_prompt);
        sqlite3_bind_int(st, 4, r->n_chosen);
        sqlite3_bind_int(st, 5, r->n_rejected);
        sqlite3_bind_double(st, 6, r->ref_chosen_logp);
        sqlite3_bind_double(st, 7, r->ref_rejected_logp);
        for (int k = 0; k < 5; k++) sqlite3_bind_blob(st, 8 + k, blobs[k], (int)lens[k], SQLITE_STATIC);
        int step = sqlite3_step(st);
        int code = sqlite3_extended_errcode(s->db);
        if (step != SQLITE_DONE) {
            char what[80];
            snprintf(what, sizeof what, "example %s: storing reference values", r->id);
            store_sql_fail(s, what, err);
        }
        sqlite3_reset(st);
        if (step != SQLITE_DONE) {
            rc = -1;
            if (code == SQLITE_CONSTRAINT_FOREIGNKEY) missing_parent(s, fingerprint, r, err);
        }
    }
    for (int k = 0; k < 5; k++) free(blobs[k]);
    return rc;
}

/* A text column copied into DST[cap], refusing NULL and over-long values. */
static int column_string(store *s, sqlite3_stmt *st, int col, char *dst, size_t cap,
                         const char *id, const char *name, dp_err *err) {
    const char *text = (const char *)sqlite3_column_text(st, col);
    if (sqlite3_column_type(st, col) != SQLITE_TEXT || !text)
        return dp_fail(err, "%s: example %s: %s: expected text", s->path, id, name);
    size_t n = strlen(text);
    if (n >= cap)
        return dp_fail(err, "%s: example %s: %s: expected at most %zu bytes, found %zu", s->path,
                       id, name, cap - 1, n);
    memcpy(dst, text, n + 1);
    return 0;
}

int store_decode_row(store *s, sqlite3_stmt *st, int first_count, int first_blob,
                     const char *fp, store_record *r, dp_err *err) {
    const char *count_names[3] = {"n_prompt", "n_chosen", "n_rejected"};
    int *count_fields[3] = {&r->n_prompt, &r->n_chosen, &r->n_rejected};
    for (int k = 0; k < 3; k++) {
        sqlite3_int64 v = sqlite3_column_int64(st, first_count + k);
        if (sqlite3_column_type(st, first_count + k) != SQLITE_INTEGER || v < (k ? 1 : 0) ||
            v > STORE_MAX_TOKENS)
            return dp_fail(err, "%s: example %s, reference %s: %s: expected an integer from %d "
                                "to %d", s->path, r->id, fp, count_names[k], k ? 1 : 0,
                           STORE_MAX_TOKENS);
        *count_fields[k] = (int)v;
    }
    void *arrays[5] = {0};
    const void *unused[5];
    int counts[5];
    record_arrays(r, unused, counts);
    for (int k = 0; k < 5; k++) {
        int col = first_blob + k;
        if (sqlite3_column_type(st, col) != SQLITE_BLOB) {
            dp_fail(err, "%s: example %s, reference %s: %s: expected a blob", s->path, r->id, fp,
                    blob_columns[k]);
            goto fail;
        }
        const void *blob = sqlite3_column_blob(st, col);
        int len = sqlite3_column_bytes(st, col);
        if (store_blob_decode_ctx(s->dctx, blob, (size_t)len, 1, (size_t)counts[k] * 4,
                                  &arrays[k], err)) {
            dp_context(err, "%s: example %s, reference %s: %s", s->path, r->id, fp,
                       blob_columns[k]);
            goto fail;
        }
    }
    r->prompt_ids = arrays[0];
    r->chosen_ids = arrays[1];
    r->rejected_ids = arrays[2];
    r->chosen_token_logps = arrays[3];
    r->rejected_token_logps = arrays[4];
    if (check_values(s, fp, r, err)) {
        store_record_free(r);
        return -1;
    }
    return 0;
fail:
    for (int k = 0; k < 5; k++) free(arrays[k]);
    return -1;
}

static int example_exists(store *s, const char *id, int *exists, dp_err *err) {
    sqlite3_stmt *st = store_stmt(s, ST_EXAMPLE_EXISTS, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    *exists = rc == SQLITE_ROW;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) store_sql_fail(s, "looking up an example", err);
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

int store_read_row(store *s, sqlite3_stmt *st, int col, const char *fp, store_record *r,
                   dp_err *err) {
    const char *id = r->id;
    int fail = column_string(s, st, col, r->split, sizeof r->split, id, "split", err) ||
               column_string(s, st, col + 1, r->source, sizeof r->source, id, "source", err);
    if (!fail && strcmp(r->split, "train") && strcmp(r->split, "eval")) {
        char q[DP_QUOTE_CAP];
        fail = dp_fail(err, "%s: example %s: split: expected \"train\" or \"eval\", got %s",
                       s->path, id, dp_quote(q, r->split, (size_t)-1));
    }
    if (!fail && (sqlite3_column_type(st, col + 2) != SQLITE_INTEGER ||
                  sqlite3_column_int64(st, col + 2) < 1 || sqlite3_column_int64(st, col + 2) > LONG_MAX))
        fail = dp_fail(err, "%s: example %s: line: expected an integer >= 1", s->path, id);
    if (!fail && sqlite3_column_type(st, col + 3) != SQLITE_INTEGER)
        fail = dp_fail(err, "%s: example %s: ord: expected an integer", s->path, id);
    if (!fail) {
        r->line = (long)sqlite3_column_int64(st, col + 2);
        r->ord = (long)sqlite3_column_int64(st, col + 3);
        r->ref_chosen_logp = sqlite3_column_double(st, col + 4);
        r->ref_rejected_logp = sqlite3_column_double(st, col + 5);
        for (int k = 4; k <= 5; k++) {
            int type = sqlite3_column_type(st, col + k);
            if (type != SQLITE_FLOAT && type != SQLITE_INTEGER && !fail)
                fail = dp_fail(err, "%s: example %s, reference %s: %s: expected a number",
                               s->path, id, fp, k == 4 ? "ref_chosen_logp" : "ref_rejected_logp");
        }
    }
    if (!fail) fail = store_decode_row(s, st, col + 6, col + 9, fp, r, err);
    return fail ? -1 : 0;
}

int store_get(store *s, const char *id, const char *fingerprint, store_record *r, dp_err *err) {
    memset(r, 0, sizeof *r);
    if (store_check_id(s, id, err) || store_check_fingerprint(s, fingerprint, err)) return -1;
    strcpy(r->id, id);
    sqlite3_stmt *st = store_stmt(s, ST_GET, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, fingerprint, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        sqlite3_reset(st);
        int exists = 0;
        if (example_exists(s, id, &exists, err)) return -1;
        if (!exists) return dp_fail(err, "%s: example %s is not in the store", s->path, id);
        return dp_fail(err, "%s: example %s has no values for reference %s", s->path, id,
                       fingerprint);
    }
    if (rc != SQLITE_ROW) {
        store_sql_fail(s, "reading an example", err);
        sqlite3_reset(st);
        return -1;
    }
    int fail = store_read_row(s, st, 0, fingerprint, r, err);
    sqlite3_reset(st);
    return fail ? -1 : 0;
}

int store_list(store *s, const char *split, const char *fingerprint, char (**ids)[40], size_t *n,
               size_t *n_missing, dp_err *err) {
    *ids = NULL;
    *n = *n_missing = 0;
    if ((split && check_split(s, split, err)) ||
        (fingerprint && store_check_fingerprint(s, fingerprint, err)))
        return -1;
    sqlite3_stmt *st = store_stmt(s, split ? ST_LIST_SPLIT : ST_LIST_ALL, err);
    if (!st) return -1;
    if (fingerprint) sqlite3_bind_text(st, 1, fingerprint, -1, SQLITE_STATIC);
    if (split) sqlite3_bind_text(st, 2, split, -1, SQLITE_STATIC);
    size_t cap = 0;
    int rc, fail = 0;
    while (!fail && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        if ((fail = store_check_id(s, id, err))) break;
        if (*n == cap) {
            cap = cap ? 2 * cap : 1024;
            void *grown = realloc(*ids, cap * sizeof **ids);
            if (!grown) {
                fail = dp_fail(err, "%s: out of memory listing %zu examples", s->path, cap);
                break;
            }
            *ids = grown;
        }
        strcpy((*ids)[(*n)++], id);
        if (!sqlite3_column_int(st, 1)) (*n_missing)++;
    }
    if (!fail && rc != SQLITE_DONE) fail = store_sql_fail(s, "listing examples", err);
    sqlite3_reset(st);
    if (fail) {
        free(*ids);
        *ids = NULL;
        *n = *n_missing = 0;
        return -1;
    }
    return 0;
}

/* ---- runs and metrics ---------------------------------------------------- */

int store_put_run(store *s, const char *name, const char *config_yaml, int64_t *run_id,
                  dp_err *err) {
    *run_id = 0;
    if (store_require_write(s, "record a run", err)) return -1;
    if (!name || !*name) return dp_fail(err, "%s: run name: expected a non-empty string", s->path);
    sqlite3_stmt *st = store_stmt(s, ST_PUT_RUN, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, config_yaml ? config_yaml : "", -1, SQLITE_STATIC);
    if (step_done(s, st, "recording a run", err)) return -1;
    *run_id = sqlite3_last_insert_rowid(s->db);
    return 0;
}

int store_put_metrics(store *s, int64_t run_id, long step, const char *json, dp_err *err) {
    if (store_require_write(s, "record metrics", err)) return -1;
    json_error_t jerr;
    json_t *root = json_loads(json ? json : "", 0, &jerr);
    int is_object = root && json_is_object(root);
    json_decref(root);
    if (!root)
        return dp_fail(err, "%s: run %lld, step %ld: metrics: line %d column %d: %s", s->path,
                       (long long)run_id, step, jerr.line, jerr.column, jerr.text);
    if (!is_object)
        return dp_fail(err, "%s: run %lld, step %ld: metrics: expected a JSON object", s->path,
                       (long long)run_id, step);
    sqlite3_stmt *st = store_stmt(s, ST_PUT_METRICS, err);
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_int64(st, 2, step);
    sqlite3_bind_text(st, 3, json, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    int code = sqlite3_extended_errcode(s->db);
    if (rc != SQLITE_DONE) store_sql_fail(s, "recording metrics", err);
    sqlite3_reset(st);
    if (rc == SQLITE_DONE) return 0;
    if (code == SQLITE_CONSTRAINT_FOREIGNKEY)
        return dp_fail(err, "%s: run %lld is not in the store (store_put_run first)", s->path,
                       (long long)run_id);
    return -1;
}
