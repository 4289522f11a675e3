/* store_cmd — `dpoc store info|verify|dump|merge`: inspect and combine the
 * cache of reference log-probabilities (common/store/store.h).
 *
 * dump writes JSON Lines, one object per (example, reference) in store order:
 *   {"id","split","source","reference","prompt_ids","chosen_ids",
 *    "rejected_ids","ref_chosen_logp","ref_rejected_logp"}
 * plus "chosen_token_logps","rejected_token_logps" with --per-token. Floats
 * print with enough digits to round-trip (%.9g for float32, %.17g for the
 * double sums). An example without values under any listed reference has no
 * line. Only one example is in memory at a time. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "utf8.h"

static const char usage_main[] =
    "usage: dpoc store COMMAND STORE [options]\n"
    "\n"
    "commands:\n"
    "  info STORE         counts, sizes, bytes per token and compression ratio\n"
    "  verify STORE       SQLite integrity check, then every blob decompressed, checksummed\n"
    "                     and checked against its row's token counts\n"
    "  dump STORE         JSON Lines, one object per example and reference, in store order\n"
    "  merge OUT IN...    copy every example and reference row of each IN into OUT\n"
    "\n"
    "  dpoc store COMMAND --help shows the options of COMMAND.\n";

static const char usage_info[] =
    "usage: dpoc store info STORE\n"
    "  Prints examples (per split), references with their descriptions, reference rows,\n"
    "  tokens, file/blob/raw bytes, bytes per token, compression ratio, runs and metrics.\n"
    "  --help   this text\n";

static const char usage_verify[] =
    "usage: dpoc store verify STORE\n"
    "  Checks the schema is exactly the one dpoc writes (no views, triggers or objects\n"
    "  of one's own), runs SQLite's integrity and foreign-key checks, then checks\n"
    "  every reference, every example and every reference row as dump and train read\n"
    "  them: each blob decoded (zstd checksum, size against the row's token counts),\n"
    "  token ids, finite log-probabilities and sums. Exit 0 when all is well, 1 with\n"
    "  the first problem found (its object, or its row and field).\n"
    "  --help   this text\n";

static const char usage_dump[] =
    "usage: dpoc store dump STORE [--per-token] [--split train|eval] [--reference FP]\n"
    "  Writes JSON Lines to stdout, one object per example and reference, in store order:\n"
    "  id, split, source, reference, prompt_ids, chosen_ids, rejected_ids (both with EOS),\n"
    "  ref_chosen_logp, ref_rejected_logp.\n"
    "  --per-token          also chosen_token_logps and rejected_token_logps\n"
    "  --split train|eval   only the examples of this split\n"
    "  --reference FP       only this reference fingerprint (default: every reference)\n"
    "  --help               this text\n";

static const char usage_merge[] =
    "usage: dpoc store merge OUT IN...\n"
    "  Copies every reference, example and reference row of each IN store into OUT\n"
    "  (created if missing). Rows already in OUT are kept; a fingerprint present in both\n"
    "  with a different description is refused, and that IN is not merged at all.\n"
    "  Each IN is checked whole (schema, SQLite's integrity check) before OUT is\n"
    "  touched.\n"
    "  --help   this text\n";

static int is_help(const char *arg) { return !strcmp(arg, "--help") || !strcmp(arg, "-h"); }

/* FMT's one %s is ARG: a command-line argument, shown quoted (dp_quote) so
 * the message stays one line; QUOTE 0 for our own text. */
static int usage_error(const char *cmd, const char *fmt, const char *arg, int quote) {
    char q[DP_QUOTE_CAP];
    if (quote) arg = dp_quote(q, arg, (size_t)-1);
    fprintf(stderr, "dpoc store%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (dpoc store%s%s --help)\n", cmd ? " " : "", cmd ? cmd : "");
    return 2;
}

static int fail(const dp_err *err) {
    fprintf(stderr, "%s\n", err->msg);
    return 1;
}

static int cmd_info(const char *path) {
    dp_err err;
    store *s = NULL;
    store_info in;
    if (store_open(&s, path, STORE_READONLY, &err) || store_get_info(s, &in, &err)) {
        store_close(s);
        return fail(&err);
    }
    printf("store: %s\n", path);
    printf("schema version: %d\n", STORE_SCHEMA_VERSION);
    printf("examples: %ld (train %ld, eval %ld)\n", in.n_examples, in.n_train, in.n_eval);
    printf("references: %ld\n", in.n_references);
    char (*fps)[STORE_FP_MAX] = NULL;
    size_t n_fps = 0;
    if (store_list_references(s, &fps, &n_fps, &err)) {
        store_close(s);
        return fail(&err);
    }
    for (size_t i = 0; i < n_fps; i++) {
        char *desc = NULL;
        if (store_get_reference(s, fps[i], &desc, &err)) {
            free(fps);
            store_close(s);
            return fail(&err);
        }
        printf("reference %s: %s\n", fps[i], desc ? desc : "");
        free(desc);
    }
    free(fps);
    printf("reference rows: %ld\n", in.n_ref_rows);
    printf("tokens: %ld\n", in.tokens);
    printf("file bytes: %zu\n", in.file_bytes);
    printf("blob bytes: %zu\n", in.blob_bytes);
    printf("raw bytes: %zu\n", in.raw_bytes);
    double tokens = in.tokens > 0 ? (double)in.tokens : 1.0;
    printf("bytes per token: %.2f (file), %.2f (blobs)\n", (double)in.file_bytes / tokens,
           (double)in.blob_bytes / tokens);
    printf("compression ratio: %.2f\n",
           in.blob_bytes ? (double)in.raw_bytes / (double)in.blob_bytes : 0.0);
    printf("runs: %ld (metrics %ld)\n", in.n_runs, in.n_metrics);
    store_close(s);
    return 0;
}

static int cmd_verify(const char *path) {
    dp_err err;
    store *s = NULL;
    long n = 0;
    if (store_open(&s, path, STORE_READONLY, &err) || store_verify(s, &n, &err)) {
        store_close(s);
        return fail(&err);
    }
    store_close(s);
    printf("%s: ok, %ld reference rows checked\n", path, n);
    return 0;
}

/* A JSON string: quotes, backslashes and control bytes escaped; bytes that
 * are not UTF-8 (file names need not be) become U+FFFD so the line stays
 * valid JSON. */
static void put_json_string(FILE *f, const char *text) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)text; *p;) {
        int n = utf8_valid_len(p, strnlen((const char *)p, 4));
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", f);
        else if (*p == '\t') fputs("\\t", f);
        else if (*p < 0x20 || *p == 0x7f) fprintf(f, "\\u%04x", *p);
        else if (n == 0) fputs("\\ufffd", f);
        else fwrite(p, 1, (size_t)n, f);
        p += n ? n : 1;
    }
    fputc('"', f);
}

static void put_ids(FILE *f, const char *key, const int32_t *ids, int n) {
    fprintf(f, ",\"%s\":[", key);
    for (int i = 0; i < n; i++) fprintf(f, i ? ",%d" : "%d", (int)ids[i]);
    fputc(']', f);
}

static void put_floats(FILE *f, const char *key, const float *v, int n) {
    fprintf(f, ",\"%s\":[", key);
    for (int i = 0; i < n; i++) fprintf(f, i ? ",%.9g" : "%.9g", (double)v[i]);
    fputc(']', f);
}

static void put_record(FILE *f, const store_record *r, const char *fp, int per_token) {
    fputs("{\"id\":", f);
    put_json_string(f, r->id);
    fputs(",\"split\":", f);
    put_json_string(f, r->split);
    fputs(",\"source\":", f);
    put_json_string(f, r->source);
    fputs(",\"reference\":", f);
    put_json_string(f, fp);
    put_ids(f, "prompt_ids", r->prompt_ids, r->n_prompt);
    put_ids(f, "chosen_ids", r->chosen_ids, r->n_chosen);
    put_ids(f, "rejected_ids", r->rejected_ids, r->n_rejected);
    fprintf(f, ",\"ref_chosen_logp\":%.17g,\"ref_rejected_logp\":%.17g", r->ref_chosen_logp,
            r->ref_rejected_logp);
    if (per_token) {
        put_floats(f, "chosen_token_logps", r->chosen_token_logps, r->n_chosen);
        put_floats(f, "rejected_token_logps", r->rejected_token_logps, r->n_rejected);
    }
    fputs("}\n", f);
}

static int dump(store *s, const char *split, const char *only_fp, int per_token, dp_err *err) {
    char (*fps)[STORE_FP_MAX] = NULL;
    size_t n_fps = 0;
    if (store_list_references(s, &fps, &n_fps, err)) return -1;
    if (only_fp) {
        size_t k = 0;
        while (k < n_fps && strcmp(fps[k], only_fp) != 0) k++;
        if (k == n_fps) {
            free(fps);
            char *desc = NULL;
            if (store_get_reference(s, only_fp, &desc, err)) return -1;
            free(desc);
            return dp_fail(err, "--reference %s: the store has no such reference (dpoc store "
                                "info lists them)", only_fp);
        }
        n_fps = 1;
        memmove(fps[0], fps[k], sizeof fps[0]);
    }
    char (*ids)[40] = NULL;
    size_t n_ids = 0, n_missing = 0;
    int rc = store_list(s, split, NULL, &ids, &n_ids, &n_missing, err);
    for (size_t i = 0; rc == 0 && i < n_ids; i++) {
        for (size_t k = 0; rc == 0 && k < n_fps; k++) {
            int has = 0;
            rc = store_has_ref(s, ids[i], fps[k], &has, err);
            if (rc || !has) continue;
            store_record r;
            rc = store_get(s, ids[i], fps[k], &r, err);
            if (rc == 0) put_record(stdout, &r, fps[k], per_token);
            store_record_free(&r);
        }
    }
    free(ids);
    free(fps);
    if (rc == 0 && (fflush(stdout) != 0 || ferror(stdout)))
        rc = dp_fail(err, "stdout: writing the dump failed: %s", strerror(errno));
    return rc;
}

static int cmd_dump(int argc, char **argv) {
    const char *path = NULL, *split = NULL, *fp = NULL;
    int per_token = 0;
    for (int i = 0; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(usage_dump, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--per-token")) {
            per_token = 1;
        } else if (!strcmp(argv[i], "--split") || !strcmp(argv[i], "--reference")) {
            if (i + 1 == argc) return usage_error("dump", "%s needs a value", argv[i], 0);
            if (!strcmp(argv[i], "--split")) {
                split = argv[++i];
                if (strcmp(split, "train") && strcmp(split, "eval"))
                    return usage_error("dump", "--split: expected train or eval, got %s", split, 1);
            } else {
                fp = argv[++i];
            }
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return usage_error("dump", "unknown option %s", argv[i], 1);
        } else if (!path) {
            path = argv[i];
        } else {
            return usage_error("dump", "unexpected argument %s", argv[i], 1);
        }
    }
    if (!path) return usage_error("dump", "%s", "expected a STORE", 0);
    dp_err err;
    store *s = NULL;
    if (store_open(&s, path, STORE_READONLY, &err) || dump(s, split, fp, per_token, &err)) {
        store_close(s);
        return fail(&err);
    }
    store_close(s);
    return 0;
}

static int cmd_merge(int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(usage_merge, stdout);
            return 0;
        }
        if (argv[i][0] == '-' && argv[i][1]) return usage_error("merge", "unknown option %s", argv[i], 1);
    }
    if (argc < 2) return usage_error("merge", "%s", "expected OUT and at least one IN", 0);
    dp_err err;
    /* Every IN must open as a store before OUT is created. */
    for (int i = 1; i < argc; i++) {
        store *in = NULL;
        if (store_open(&in, argv[i], STORE_READONLY, &err)) return fail(&err);
        store_close(in);
    }
    store *out = NULL;
    if (store_open(&out, argv[0], STORE_WRITE, &err)) return fail(&err);
    for (int i = 1; i < argc; i++) {
        long n = 0;
        if (store_merge(out, argv[i], &n, &err)) {
            store_close(out);
            return fail(&err);
        }
        printf("%s: %ld reference rows copied into %s\n", argv[i], n, argv[0]);
    }
    store_close(out);
    return 0;
}

/* info and verify: exactly one STORE. */
static int one_store_command(const char *name, const char *usage, int argc, char **argv,
                             int (*run)(const char *)) {
    for (int i = 0; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(usage, stdout);
            return 0;
        }
        if (argv[i][0] == '-' && argv[i][1]) return usage_error(name, "unknown option %s", argv[i], 1);
    }
    if (argc != 1) return usage_error(name, "%s", "expected exactly one STORE", 0);
    return run(argv[0]);
}

int cmd_store(int argc, char **argv) {
    if (argc < 2) {
        fputs(usage_main, stderr);
        return 2;
    }
    const char *sub = argv[1];
    if (is_help(sub)) {
        fputs(usage_main, stdout);
        return 0;
    }
    if (!strcmp(sub, "info")) return one_store_command("info", usage_info, argc - 2, argv + 2, cmd_info);
    if (!strcmp(sub, "verify"))
        return one_store_command("verify", usage_verify, argc - 2, argv + 2, cmd_verify);
    if (!strcmp(sub, "dump")) return cmd_dump(argc - 2, argv + 2);
    if (!strcmp(sub, "merge")) return cmd_merge(argc - 2, argv + 2);
    return usage_error(NULL, "unknown command %s", sub, 1);
}
