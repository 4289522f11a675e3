/* tokenize — `dpoc tokenize`: JSON Lines text <-> token ids.
 *
 * Encode (default): each stdin line is a JSON string; each output line is
 * the JSON array of its ids (Hugging Face encode(text,
 * add_special_tokens=False); --special adds BOS/EOS as the tokenizer says).
 * Decode (--decode): each line a JSON array of ids; output a JSON string.
 * The first bad line stops the run with "stdin:N: ..." on stderr. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stage_util.h"
#include "tokenizer.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: dpoc tokenize --tokenizer PATH [--decode] [--special] [--replace-invalid]\n"
            "  reads JSON Lines on stdin, writes one line per input line on stdout\n"
            "  --tokenizer PATH    tokenizer.json, or a directory holding one (a\n"
            "                      tokenizer_config.json beside it is read too)\n"
            "  --decode            input lines are arrays of ids, output lines JSON strings\n"
            "  --special           add BOS/EOS as the tokenizer's post-processor/config says\n"
            "  --replace-invalid   replace invalid UTF-8 with U+FFFD instead of failing\n"
            "  --help              this text\n");
}

static const char *json_kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_INTEGER: case JSON_REAL: return "a number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    default: return "a string";
    }
}

/* Writes S as a JSON string, escaping as JSON.stringify does. */
static void put_json_string(FILE *f, const char *s, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\b': fputs("\\b", f); break;
        case '\f': fputs("\\f", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (c < 0x20) fprintf(f, "\\u%04x", c);
            else fputc(c, f);
        }
    }
    fputc('"', f);
}

static int encode_line(const tokenizer *tok, char **line, size_t n, size_t lineno, int special,
                       int replace) {
    dp_err err;
    /* Raw bytes are checked before the JSON parser sees them, so the error
     * names the byte offset in the line (or the bytes become U+FFFD). */
    long bad = tok_utf8_first_invalid(*line, n);
    if (bad >= 0 && !replace) {
        fprintf(stderr, "stdin:%zu: byte offset %ld: invalid UTF-8 (byte 0x%02X)\n", lineno, bad,
                (unsigned char)(*line)[bad]);
        return 1;
    }
    if (bad >= 0) {
        char *fixed;
        if (tok_utf8_replace(*line, n, &fixed, &n, &err)) {
            fprintf(stderr, "stdin:%zu: %s\n", lineno, err.msg);
            return 1;
        }
        free(*line);
        *line = fixed;
    }
    json_error_t je;
    json_t *v = json_loadb(*line, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!v || !json_is_string(v)) {
        if (v) fprintf(stderr, "stdin:%zu: expected a JSON string, got %s\n", lineno, json_kind(v));
        else fprintf(stderr, "stdin:%zu: expected a JSON string: column %d: %s\n", lineno, je.column, je.text);
        json_decref(v);
        return 1;
    }
    int32_t *ids;
    size_t nid;
    int rc = special ? tok_encode_special(tok, json_string_value(v), json_string_length(v), &ids, &nid, &err)
                     : tok_encode(tok, json_string_value(v), json_string_length(v), replace, &ids, &nid, &err);
    json_decref(v);
    if (rc) {
        fprintf(stderr, "stdin:%zu: %s\n", lineno, err.msg);
        return 1;
    }
    putchar('[');
    for (size_t i = 0; i < nid; i++) printf(i ? ",%d" : "%d", (int)ids[i]);
    fputs("]\n", stdout);
    free(ids);
    return 0;
}

static int decode_line(const tokenizer *tok, const char *line, size_t n, size_t lineno) {
    json_error_t je;
    json_t *v = json_loadb(line, n, JSON_DECODE_ANY, &je);
    if (!v || !json_is_array(v)) {
        if (v) fprintf(stderr, "stdin:%zu: expected a JSON array of token ids, got %s\n", lineno, json_kind(v));
        else fprintf(stderr, "stdin:%zu: expected a JSON array of token ids: column %d: %s\n", lineno,
                     je.column, je.text);
        json_decref(v);
        return 1;
    }
    size_t k = json_array_size(v);
    int32_t *ids = malloc((k + 1) * sizeof *ids);
    if (!ids) return json_decref(v), fprintf(stderr, "stdin:%zu: out of memory\n", lineno), 1;
    for (size_t i = 0; i < k; i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) > INT32_MAX) {
            fprintf(stderr, "stdin:%zu: element %zu: expected a token id (integer >= 0)\n", lineno, i);
            free(ids);
            json_decref(v);
            return 1;
        }
        ids[i] = (int32_t)json_integer_value(e);
    }
    json_decref(v);
    char *text;
    size_t len;
    dp_err err;
    int rc = tok_decode(tok, ids, k, &text, &len, &err);
    free(ids);
    if (rc) {
        fprintf(stderr, "stdin:%zu: %s\n", lineno, err.msg);
        return 1;
    }
    put_json_string(stdout, text, len);
    putchar('\n');
    free(text);
    return 0;
}

int cmd_tokenize(int argc, char **argv) {
    const char *path = NULL;
    int decode = 0, special = 0, replace = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc) path = argv[++i];
        else if (!strncmp(argv[i], "--tokenizer=", 12)) path = argv[i] + 12;
        else if (!strcmp(argv[i], "--decode")) decode = 1;
        else if (!strcmp(argv[i], "--special")) special = 1;
        else if (!strcmp(argv[i], "--replace-invalid")) replace = 1;
        else {
            fprintf(stderr, "dpoc tokenize: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "dpoc tokenize: --tokenizer PATH is required\n");
        usage(stderr);
        return 2;
    }
    tokenizer *tok;
    dp_err err;
    if (tok_load(&tok, path, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    long got;
    int rc = 0;
    while (!rc && (got = su_getline(&line, &cap, stdin, "stdin", (long)lineno + 1, &err)) >= 0) {
        size_t n = (size_t)got;
        lineno++;
        if (n && line[n - 1] == '\n') n--;
        if (n && line[n - 1] == '\r') n--;
        rc = decode ? decode_line(tok, line, n, lineno) : encode_line(tok, &line, n, lineno, special, replace);
        if (!decode) { /* encode_line may have swapped the buffer: start afresh */
            free(line);
            line = NULL;
            cap = 0;
        }
    }
    if (got == -2) {
        fprintf(stderr, "%s\n", err.msg);
        rc = 1;
    }
    free(line);
    tok_free(tok);
    if (fflush(stdout) != 0 && !rc) {
        fprintf(stderr, "dpoc tokenize: writing stdout failed\n");
        rc = 1;
    }
    return rc;
}
