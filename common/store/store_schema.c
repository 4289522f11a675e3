/* store_schema — a store file is untrusted input (caches get copied, shared,
 * downloaded), and an SQLite file can carry views and triggers in place of
 * the tables dpoc reads. This file: the defenses every store connection gets
 * (SQLite's guidance for untrusted database files, plus a bound on the work
 * of one statement) and the check that a store's schema is exactly the one
 * schemas/store.sql creates, made before any table is read.
 *
 * The expected schema is not written down twice: it is created from the
 * embedded schemas/store.sql in an in-memory database and compared object by
 * object (type, name, table; for tables the columns, foreign keys and index
 * list; for indexes their columns) through SQLite's pragmas, so comments and
 * spacing in the SQL do not matter and the check follows the schema file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store_internal.h"

/* The progress handler runs every STORE_WORK_TICK virtual-machine steps. A
 * statement may take STORE_WORK_BASE steps plus STORE_WORK_PER_BYTE for
 * every byte of the files it reads. dpoc's queries do a bounded number of
 * steps per row and a row takes bytes of the file: measured on 200k rows of
 * one token each (291 bytes a row, the densest a store gets), the heaviest
 * statement (merge's copy) takes 85 steps a row, 0.3 a byte, so a real store
 * of any size stays 50 times below the bound. A query whose work does not
 * come from the file (a recursive view) stops after ~10^8 steps: 1 to 2
 * seconds for a small file. */
#define STORE_WORK_TICK 1000
#define STORE_WORK_BASE 100000000LL
#define STORE_WORK_PER_BYTE 16LL

static long long file_bytes(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : 0;
}

/* SQLITE_TRACE_STMT fires as each statement starts to run: a fresh budget,
 * sized by the store's files (with its WAL) as they are now and by the
 * source of a merge in progress. */
static int work_start(unsigned type, void *ctx, void *stmt, void *sql) {
    (void)type, (void)stmt, (void)sql;
    store *s = ctx;
    long long bytes = file_bytes(s->file) + file_bytes(s->wal_file) + s->work_extra_bytes;
    s->work_ticks = 0;
    s->work_budget_ticks = (STORE_WORK_BASE + STORE_WORK_PER_BYTE * bytes) / STORE_WORK_TICK;
    return 0;
}

/* Non-zero interrupts the statement (SQLITE_INTERRUPT). */
static int work_tick(void *ctx) {
    store *s = ctx;
    return ++s->work_ticks > s->work_budget_ticks;
}

int store_over_budget(const store *s) { return s->work_ticks > s->work_budget_ticks; }

int store_harden(store *s, dp_err *err) {
    sqlite3 *db = s->db;
    static const int off[] = {SQLITE_DBCONFIG_TRUSTED_SCHEMA, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION,
                              SQLITE_DBCONFIG_ENABLE_TRIGGER, SQLITE_DBCONFIG_ENABLE_VIEW};
    int rc = sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
    for (size_t i = 0; i < sizeof off / sizeof off[0] && rc == SQLITE_OK; i++)
        rc = sqlite3_db_config(db, off[i], 0, (int *)NULL);
    if (rc != SQLITE_OK) return store_sql_fail(s, "configuring the connection", err);
    if (store_exec(s, "PRAGMA cell_size_check = ON", "configuring the connection", err)) return -1;
    sqlite3_progress_handler(db, STORE_WORK_TICK, work_tick, s);
    if (sqlite3_trace_v2(db, SQLITE_TRACE_STMT, work_start, s) != SQLITE_OK)
        return store_sql_fail(s, "configuring the connection", err);
    return 0;
}

/* ---- the schema check --------------------------------------------------- */

/* What describes an object, one (label, detail) row each, in a stable order;
 * ?1 is the object's name, ?2 the schema ("main" or an attached name). A
 * view disguised as a table shows in pragma_table_list's type, a trigger or
 * table disguised as an index by its absence from pragma_index_list. */
static const char table_sql[] =
    "SELECT 0, 'kind', type || ' wr=' || wr || ' strict=' || strict "
    "FROM pragma_table_list(?1) WHERE schema = ?2 "
    "UNION ALL SELECT 1 + cid, 'column ' || name, quote(type) || ' notnull=' || \"notnull\" || "
    "' default=' || quote(dflt_value) || ' pk=' || pk || ' hidden=' || hidden "
    "FROM pragma_table_xinfo(?1, ?2) "
    "UNION ALL SELECT 100000 + 1000 * id + seq, 'foreign key ' || \"from\", \"table\" || '.' || "
    "quote(\"to\") || ' ' || on_update || ' ' || on_delete || ' ' || \"match\" "
    "FROM pragma_foreign_key_list(?1, ?2) "
    "UNION ALL SELECT 200000 + row_number() OVER (ORDER BY name), 'index ' || name, "
    "\"unique\" || ' ' || origin || ' partial=' || partial FROM pragma_index_list(?1, ?2) "
    "ORDER BY 1";
static const char index_sql[] =
    "SELECT seqno, 'key ' || seqno, cid || ' ' || quote(name) || ' desc=' || \"desc\" || ' ' || "
    "coll || ' key=' || \"key\" FROM pragma_index_xinfo(?1, ?2) ORDER BY 1";

/* Rows of (type, name, tbl_name), or of (order, label, detail); strings
 * malloc'd. */
typedef struct {
    char *(*row)[3];
    size_t n;
} rows;

static void rows_free(rows *r) {
    for (size_t i = 0; i < r->n; i++)
        for (int k = 0; k < 3; k++) free(r->row[i][k]);
    free(r->row);
    r->row = NULL;
    r->n = 0;
}

/* Runs SQL (three columns) on DB with ?1 = NAME and ?2 = SCHEMA (when
 * given) and keeps every row. -1 with sqlite's error left in DB, or out of
 * memory (*oom set). */
static int query_rows(sqlite3 *db, const char *sql, const char *name, const char *schema,
                      rows *out, int *oom) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return -1;
    if (name) sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (schema) sqlite3_bind_text(st, 2, schema, -1, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        void *grown = realloc(out->row, (out->n + 1) * sizeof *out->row);
        if (!grown) break;
        out->row = grown;
        char **row = out->row[out->n++];
        for (int k = 0; k < 3; k++) {
            const char *v = (const char *)sqlite3_column_text(st, k);
            row[k] = strdup(v ? v : "");
            if (!row[k]) *oom = 1;
        }
        if (*oom) break;
    }
    if (rc == SQLITE_ROW) *oom = 1;
    sqlite3_finalize(st);
    return rc == SQLITE_DONE && !*oom ? 0 : -1;
}

static const char *find_name(const rows *r, const char *name, size_t *at) {
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->row[i][1], name)) {
            if (at) *at = i;
            return r->row[i][0];
        }
    return NULL;
}

/* "FILE: <fmt with a, b, c>; refusing a store that was altered". */
static int refuse(const char *file, dp_err *err, const char *fmt, const char *a, const char *b,
                  const char *c) {
    char what[3 * DP_QUOTE_CAP + 128];
    snprintf(what, sizeof what, fmt, a, b, c);
    return dp_fail(err, "%s: %s; refusing a store that was altered", file, what);
}

/* Compares the (label, detail) rows describing one object; the first
 * difference is the error, naming the object and the row: a row dpoc does
 * not write, then one that is missing, then one that differs or moved. */
static int compare_details(const char *file, const char *type, const char *name, const rows *want,
                           const rows *got, dp_err *err) {
    char q[DP_QUOTE_CAP];
    for (size_t i = 0; i < got->n; i++)
        if (!find_name(want, got->row[i][1], NULL))
            return refuse(file, err, "%s %s: %s is not in the one dpoc writes", type, name,
                          dp_label(q, got->row[i][1]));
    for (size_t i = 0; i < want->n; i++)
        if (!find_name(got, want->row[i][1], NULL))
            return refuse(file, err, "%s %s: %s is missing", type, name, want->row[i][1]);
    for (size_t i = 0; i < got->n; i++) {
        size_t at = 0;
        find_name(want, got->row[i][1], &at);
        if (at != i || strcmp(want->row[at][2], got->row[i][2]))
            return refuse(file, err, "%s %s: %s differs from the one dpoc writes", type, name,
                          dp_label(q, got->row[i][1]));
    }
    return 0;
}

/* The error of a failed query_rows on DB, naming FILE. */
static int query_fail(sqlite3 *db, const char *file, int oom, dp_err *err) {
    if (oom) return dp_fail(err, "%s: out of memory reading the schema", file);
    return dp_fail(err, "%s: reading the schema: %s", file, sqlite3_errmsg(db));
}

/* Compares SCHEMA of s->db against EXPECTED (the schema file in memory).
 * SCHEMA is a name of dpoc's own ("main", "merge_src"), never text from a
 * file, so it may be pasted into the SQL. */
static int compare_schema(store *s, sqlite3 *expected, const char *schema, const char *file,
                          dp_err *err) {
    static const char objects_sql[] =
        "SELECT type, name, tbl_name FROM %s.sqlite_schema ORDER BY rowid";
    static const char schema_file[] = "schemas/store.sql (in memory)";
    char sql[128], want_sql[128];
    snprintf(sql, sizeof sql, objects_sql, schema);
    snprintf(want_sql, sizeof want_sql, objects_sql, "main");
    rows want = {0}, got = {0}, want_d = {0}, got_d = {0};
    int oom = 0, fail = 0;
    if (query_rows(expected, want_sql, NULL, NULL, &want, &oom))
        fail = query_fail(expected, schema_file, oom, err);
    else if (query_rows(s->db, sql, NULL, NULL, &got, &oom))
        fail = query_fail(s->db, file, oom, err);
    char q[DP_QUOTE_CAP], q2[DP_QUOTE_CAP];
    /* Every object of the store: expected, of its type, on its table, once. */
    for (size_t i = 0; i < got.n && !fail; i++) {
        const char *type = got.row[i][0], *name = got.row[i][1];
        size_t at = 0, again = 0;
        const char *want_type = find_name(&want, name, &at);
        if (!want_type)
            fail = refuse(file, err, "%s %s is not part of a dpoc store", dp_label(q, type),
                          dp_label(q2, name), NULL);
        else if (strcmp(type, want_type))
            fail = refuse(file, err, "%s is a %s, not the %s dpoc writes", name, dp_label(q, type),
                          want_type);
        else if (strcmp(got.row[i][2], want.row[at][2]))
            fail = refuse(file, err, "%s %s is on %s, not on the table dpoc indexes", type, name,
                          dp_label(q, got.row[i][2]));
        else if (find_name(&got, name, &again) && again != i)
            fail = refuse(file, err, "%s %s appears twice in the schema", type, name, NULL);
    }
    for (size_t i = 0; i < want.n && !fail; i++)
        if (!find_name(&got, want.row[i][1], NULL))
            fail = refuse(file, err, "%s %s is missing", want.row[i][0], want.row[i][1], NULL);
    /* Then what each table and index is made of. */
    for (size_t i = 0; i < want.n && !fail; i++) {
        const char *type = want.row[i][0], *name = want.row[i][1];
        const char *detail_sql = !strcmp(type, "table") ? table_sql : index_sql;
        if (query_rows(expected, detail_sql, name, "main", &want_d, &oom))
            fail = query_fail(expected, schema_file, oom, err);
        else if (query_rows(s->db, detail_sql, name, schema, &got_d, &oom))
            fail = query_fail(s->db, file, oom, err);
        else
            fail = compare_details(file, type, name, &want_d, &got_d, err);
        rows_free(&want_d);
        rows_free(&got_d);
    }
    rows_free(&want);
    rows_free(&got);
    return fail ? -1 : 0;
}

int store_check_schema(store *s, const char *schema, const char *file, dp_err *err) {
    sqlite3 *expected = NULL;
    int fail = 0;
    if (sqlite3_open_v2(":memory:", &expected, SQLITE_OPEN_READWRITE | SQLITE_OPEN_MEMORY, NULL) !=
            SQLITE_OK ||
        sqlite3_exec(expected, dp_store_schema_sql, NULL, NULL, NULL) != SQLITE_OK)
        fail = dp_fail(err, "schemas/store.sql (in memory): %s",
                       expected ? sqlite3_errmsg(expected) : "out of memory");
    if (!fail) fail = compare_schema(s, expected, schema, file, err);
    sqlite3_close(expected);
    return fail ? -1 : 0;
}
