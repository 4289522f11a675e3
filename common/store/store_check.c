/* store_check — the whole-store operations of store.h: statistics (info),
 * verification (everything store_get, store_list and store_list_references
 * would refuse, found before a dump or a training run does), and merging one
 * store into another. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store_internal.h"

int store_get_info(store *s, store_info *info, dp_err *err) {
    memset(info, 0, sizeof *info);
    static const char sql[] =
        "SELECT (SELECT count(*) FROM examples), "
        "(SELECT count(*) FROM examples WHERE split = 'train'), "
        "(SELECT count(*) FROM examples WHERE split = 'eval'), "
        "(SELECT count(*) FROM refs), (SELECT count(*) FROM runs), "
        "(SELECT count(*) FROM metrics), count(*), "
        "coalesce(sum(n_prompt + n_chosen + n_rejected), 0), "
        "coalesce(sum(length(prompt_ids) + length(chosen_ids) + length(rejected_ids) + "
        "length(chosen_token_logps) + length(rejected_token_logps)), 0), "
        "coalesce(sum(4 * (n_prompt + 2 * n_chosen + 2 * n_rejected)), 0), "
        "(SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()) "
        "FROM ref_rows";
    /* Rare: prepared per call rather than cached. */
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW) {
        store_sql_fail(s, "reading statistics", err);
        sqlite3_finalize(st);
        return -1;
    }
    info->n_examples = (long)sqlite3_column_int64(st, 0);
    info->n_train = (long)sqlite3_column_int64(st, 1);
    info->n_eval = (long)sqlite3_column_int64(st, 2);
    info->n_references = (long)sqlite3_column_int64(st, 3);
    info->n_runs = (long)sqlite3_column_int64(st, 4);
    info->n_metrics = (long)sqlite3_column_int64(st, 5);
    info->n_ref_rows = (long)sqlite3_column_int64(st, 6);
    info->tokens = (long)sqlite3_column_int64(st, 7);
    info->blob_bytes = (size_t)sqlite3_column_int64(st, 8);
    info->raw_bytes = (size_t)sqlite3_column_int64(st, 9);
    info->file_bytes = (size_t)sqlite3_column_int64(st, 10);
    sqlite3_finalize(st);
    return 0;
}

/* The first finding of an integrity check: SQLite may join several into
 * one row with newlines, under a "*** in database main ***" header. */
static const char *first_finding(const char *text, char *buf, size_t cap) {
    if (!strncmp(text, "*** ", 4) && strchr(text, '\n')) text = strchr(text, '\n') + 1;
    size_t n = strcspn(text, "\n");
    snprintf(buf, cap, "%.*s", (int)(n < cap ? n : cap - 1), text);
    return buf;
}

/* The first row a pragma returns that is not "ok" (integrity_check: its
 * first finding), or any row at all (foreign_key_check, ok_text NULL), as
 * an error. */
static int pragma_check(store *s, const char *sql, const char *ok_text, const char *what,
                        dp_err *err) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        sqlite3_finalize(st);
        return store_sql_fail(s, what, err);
    }
    int rc = sqlite3_step(st), fail = 0;
    if (rc == SQLITE_ROW) {
        const char *first = (const char *)sqlite3_column_text(st, 0);
        if (ok_text && first && !strcmp(first, ok_text)) {
            rc = sqlite3_step(st);
        } else if (ok_text) {
            char finding[512];
            fail = dp_fail(err, "%s: %s failed: %s", s->path, what,
                           first ? first_finding(first, finding, sizeof finding) : "(null)");
        } else {
            fail = dp_fail(err, "%s: %s failed: table %s row %lld refers to a missing row of %s",
                           s->path, what, first ? first : "?",
                           (long long)sqlite3_column_int64(st, 1),
                           sqlite3_column_text(st, 2) ? (const char *)sqlite3_column_text(st, 2)
                                                      : "?");
        }
    }
    if (!fail && rc != SQLITE_DONE) fail = store_sql_fail(s, what, err);
    sqlite3_finalize(st);
    return fail ? -1 : 0;
}

/* Steps ST (a cached statement) through every row, calling CHECK on each
 * until one fails; resets ST. */
static int each_row(store *s, sqlite3_stmt *st, const char *what,
                    int (*check)(store *, sqlite3_stmt *, dp_err *), long *n, dp_err *err) {
    int rc, fail = 0;
    while (!fail && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        fail = check(s, st, err);
        if (!fail && n) (*n)++;
    }
    if (!fail && rc != SQLITE_DONE) fail = store_sql_fail(s, what, err);
    sqlite3_reset(st);
    return fail ? -1 : 0;
}

/* A reference: its fingerprint as store_list_references wants it, and a
 * description that is a JSON object (store_put_reference stores nothing else). */
static int check_reference(store *s, sqlite3_stmt *st, dp_err *err) {
    const char *fp = (const char *)sqlite3_column_text(st, 0);
    if (store_check_fingerprint(s, fp, err)) return -1;
    const char *desc = (const char *)sqlite3_column_text(st, 1);
    json_error_t jerr;
    json_t *root = desc ? json_loads(desc, 0, &jerr) : NULL;
    int ok = root && json_is_object(root);
    json_decref(root);
    if (!ok) return dp_fail(err, "%s: reference %s: description: expected a JSON object", s->path, fp);
    return 0;
}

/* An example, whether or not it has values: what store_list and store_get
 * check of it (id, split, source, line, ord). */
static int check_example(store *s, sqlite3_stmt *st, dp_err *err) {
    const char *id = (const char *)sqlite3_column_text(st, 0);
    if (store_check_id(s, id, err)) return -1;
    char q[DP_QUOTE_CAP];
    const char *split = (const char *)sqlite3_column_text(st, 1);
    if (!split || (strcmp(split, "train") && strcmp(split, "eval")))
        return dp_fail(err, "%s: example %s: split: expected \"train\" or \"eval\", got %s",
                       s->path, id, dp_quote(q, split, (size_t)-1));
    const char *source = (const char *)sqlite3_column_text(st, 2);
    if (sqlite3_column_type(st, 2) != SQLITE_TEXT || !source || strlen(source) >= 256)
        return dp_fail(err, "%s: example %s: source: expected text of at most 255 bytes", s->path, id);
    if (sqlite3_column_type(st, 3) != SQLITE_INTEGER || sqlite3_column_int64(st, 3) < 1)
        return dp_fail(err, "%s: example %s: line: expected an integer >= 1", s->path, id);
    if (sqlite3_column_type(st, 4) != SQLITE_INTEGER)
        return dp_fail(err, "%s: example %s: ord: expected an integer", s->path, id);
    return 0;
}

/* A reference row, read exactly as store_get reads it. */
static int check_ref_row(store *s, sqlite3_stmt *st, dp_err *err) {
    store_record r;
    memset(&r, 0, sizeof r);
    const char *id = (const char *)sqlite3_column_text(st, 0);
    const char *fp = (const char *)sqlite3_column_text(st, 1);
    if (store_check_id(s, id, err) || store_check_fingerprint(s, fp, err)) return -1;
    strcpy(r.id, id);
    int fail = store_read_row(s, st, 2, fp, &r, err);
    store_record_free(&r);
    return fail;
}

int store_verify(store *s, long *n_checked, dp_err *err) {
    *n_checked = 0;
    if (pragma_check(s, "PRAGMA integrity_check", "ok", "integrity check", err) ||
        pragma_check(s, "PRAGMA foreign_key_check", NULL, "foreign key check", err))
        return -1;
    sqlite3_stmt *st;
    if (!(st = store_stmt(s, ST_VERIFY_REFERENCES, err)) ||
        each_row(s, st, "reading references", check_reference, NULL, err) ||
        !(st = store_stmt(s, ST_VERIFY_EXAMPLES, err)) ||
        each_row(s, st, "reading examples", check_example, NULL, err) ||
        !(st = store_stmt(s, ST_VERIFY_ROWS, err)))
        return -1;
    return each_row(s, st, "reading reference rows", check_ref_row, n_checked, err);
}

/* Runs one statement of the merge (prepared here, not cached: it names the
 * attached schema, which is gone after the merge). With ROW_OUT the first
 * column of the first row, if any, is copied there (empty when none). */
static int merge_step(store *s, const char *sql, const char *bind, char *row_out, size_t cap,
                      const char *what, dp_err *err) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        sqlite3_finalize(st);
        return store_sql_fail(s, what, err);
    }
    if (bind) sqlite3_bind_text(st, 1, bind, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (row_out) {
        row_out[0] = '\0';
        if (rc == SQLITE_ROW && sqlite3_column_text(st, 0))
            snprintf(row_out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    }
    int ok = rc == SQLITE_DONE || (row_out && rc == SQLITE_ROW);
    if (!ok) store_sql_fail(s, what, err);
    sqlite3_finalize(st);
    return ok ? 0 : -1;
}

/* Copies rows missing from main (NOT EXISTS rather than INSERT OR IGNORE, so
 * a source row that breaks a CHECK constraint is an error, not skipped). */
static const char merge_refs_sql[] =
    "INSERT INTO main.refs (fingerprint, description) SELECT fingerprint, description "
    "FROM merge_src.refs s WHERE NOT EXISTS "
    "(SELECT 1 FROM main.refs m WHERE m.fingerprint = s.fingerprint)";
static const char merge_examples_sql[] =
    "INSERT INTO main.examples (id, split, source, line, ord) "
    "SELECT id, split, source, line, ord FROM merge_src.examples s WHERE NOT EXISTS "
    "(SELECT 1 FROM main.examples m WHERE m.id = s.id)";
static const char merge_rows_sql[] =
    "INSERT INTO main.ref_rows (example_id, fingerprint, n_prompt, n_chosen, n_rejected, "
    "ref_chosen_logp, ref_rejected_logp, prompt_ids, chosen_ids, rejected_ids, "
    "chosen_token_logps, rejected_token_logps) "
    "SELECT example_id, fingerprint, n_prompt, n_chosen, n_rejected, ref_chosen_logp, "
    "ref_rejected_logp, prompt_ids, chosen_ids, rejected_ids, chosen_token_logps, "
    "rejected_token_logps FROM merge_src.ref_rows s WHERE NOT EXISTS "
    "(SELECT 1 FROM main.ref_rows m WHERE m.example_id = s.example_id "
    "AND m.fingerprint = s.fingerprint)";
static const char merge_conflict_sql[] =
    "SELECT s.fingerprint FROM merge_src.refs s JOIN main.refs m "
    "ON m.fingerprint = s.fingerprint WHERE m.description IS NOT s.description "
    "ORDER BY s.fingerprint LIMIT 1";

int store_merge(store *dst, const char *src_file, long *n_copied, dp_err *err) {
    *n_copied = 0;
    char q[DP_QUOTE_CAP];
    const char *src_path = dp_label(q, src_file); /* for messages */
    if (store_require_write(dst, "merge into it", err)) return -1;
    if (!sqlite3_get_autocommit(dst->db))
        return dp_fail(err, "%s: merge: cannot run inside an open transaction", dst->path);
    /* The source is checked whole before the destination is touched:
     * opening it as a store checks it is one, of a version we read, with
     * exactly dpoc's schema; then SQLite's integrity check (the full one:
     * the copy reads through the indexes, which quick_check does not hold
     * against their tables) and the foreign keys (a row copied must find
     * its example and reference). */
    store *src = NULL;
    if (store_open(&src, src_file, STORE_READONLY, err)) return -1;
    int bad = pragma_check(src, "PRAGMA integrity_check", "ok", "integrity check", err) ||
              pragma_check(src, "PRAGMA foreign_key_check", NULL, "foreign key check", err);
    store_close(src);
    if (bad) return -1;
    struct stat a, b;
    int src_exists = stat(src_file, &b) == 0;
    if (src_exists && stat(dst->file, &a) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
        return dp_fail(err, "%s: cannot merge a store into itself", src_path);

    char *name = store_sqlite_name(src_file);
    if (!name) return dp_fail(err, "%s: out of memory", src_path);
    int attached = merge_step(dst, "ATTACH DATABASE ?1 AS merge_src", name, NULL, 0,
                              "attaching the source store", err);
    free(name);
    if (attached) return dp_context(err, "merging %s", src_path);
    /* The file attached is checked again (it may have been replaced since),
     * and the work bound of the copy counts its size in. */
    dst->work_extra_bytes = src_exists ? (long long)b.st_size : 0;
    char conflict[STORE_FP_MAX] = "";
    int fail = store_check_schema(dst, "merge_src", src_path, err) ||
               store_exec(dst, "BEGIN IMMEDIATE", "beginning the merge", err) ||
               merge_step(dst, merge_conflict_sql, NULL, conflict, sizeof conflict,
                          "comparing references", err);
    if (!fail && conflict[0])
        fail = dp_fail(err, "%s: reference %s has a different description than in %s; refusing "
                            "to merge", src_path, conflict, dst->path);
    if (!fail && (merge_step(dst, merge_refs_sql, NULL, NULL, 0, "copying references", err) ||
                  merge_step(dst, merge_examples_sql, NULL, NULL, 0, "copying examples", err) ||
                  merge_step(dst, merge_rows_sql, NULL, NULL, 0, "copying reference rows", err)))
        fail = dp_context(err, "merging %s", src_path);
    if (!fail) *n_copied = (long)sqlite3_changes64(dst->db);
    if (!fail) fail = store_exec(dst, "COMMIT", "committing the merge", err);
    if (fail) {
        if (!sqlite3_get_autocommit(dst->db)) sqlite3_exec(dst->db, "ROLLBACK", NULL, NULL, NULL);
        *n_copied = 0;
    }
    dst->work_extra_bytes = 0;
    dp_err detach_err;
    if (merge_step(dst, "DETACH DATABASE merge_src", NULL, NULL, 0, "detaching the source store",
                   &detach_err) && !fail) {
        if (err) *err = detach_err;
        fail = 1;
    }
    return fail ? -1 : 0;
}
