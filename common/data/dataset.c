/* dataset — preference rows from JSON Lines (see dataset.h).
 *
 * Reading is a pipeline of three small parts: a byte source (plain file,
 * gzip through zlib, zstd through ZSTD_decompressStream) that fills a fixed
 * buffer; a line splitter that grows one line buffer up to a cap; and a row
 * parser (jansson, duplicate keys rejected) that renders the row's format to
 * prompt/chosen/rejected text. Only one line and one row live in memory. */
#include "dataset.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>
#include <zlib.h>
#include <zstd.h>

#include "chat.h"

#define DS_CHUNK (64 * 1024)
#define DS_DEFAULT_MAX_LINE ((size_t)64 << 20)

enum { SRC_PLAIN, SRC_GZIP, SRC_ZSTD };

struct ds_reader {
    char *path;
    ds_format format;       /* opt->format, or what auto found in the first valid row */
    ds_template tpl;        /* the chat template, when it could be resolved */
    int tpl_resolved;
    dp_err tpl_err;         /* why not, reported on the first conversational row */
    const tmpl *jinja;      /* opt->jinja: the model's own template */
    const tmpl *jinja_tools;
    const tokenizer *jinja_tok;

    int kind;
    FILE *fp;               /* plain and zstd */
    gzFile gz;
    ZSTD_DCtx *zd;
    unsigned char *zin;
    ZSTD_inBuffer zib;
    int src_eof, src_any, zmid;

    unsigned char *buf;     /* decoded bytes not yet split into lines */
    size_t buf_len, buf_pos;
    char *line;
    size_t line_len, line_cap, max_line;
    long lineno;

    char *prompt, *chosen, *rejected;  /* the current row's texts */
};

const char *ds_bad_name(ds_bad b) {
    switch (b) {
    case DS_BAD_NONE: return "none";
    case DS_BAD_JSON: return "invalid_json";
    case DS_BAD_FIELD: return "bad_field";
    case DS_BAD_EMPTY: return "empty";
    case DS_BAD_IDENTICAL: return "identical";
    case DS_BAD_PROMPT_TOO_LONG: return "prompt_too_long";
    case DS_BAD_COUNT: break;
    }
    return "?";
}

const char *ds_format_name(ds_format f) {
    switch (f) {
    case DS_AUTO: return "auto";
    case DS_STANDARD: return "standard";
    case DS_IMPLICIT: return "implicit";
    case DS_CONVERSATIONAL: return "conversational";
    }
    return "?";
}

const char *ds_template_name(ds_template t) { return chat_template_name(t); }

int ds_resolve_template(const ds_options *opt, ds_template *out, dp_err *err) {
    if (opt->chat_template != DS_TEMPLATE_AUTO) {
        *out = opt->chat_template;
        return 0;
    }
    return chat_template_detect(opt->tokenizer_template, out, err);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* ---- byte source ------------------------------------------------------- */

/* Fills r->buf with the next decoded bytes. Returns the count, 0 at the end
 * of the input, -1 on an I/O or decompression error. */
static int source_fill(ds_reader *r, dp_err *err) {
    r->buf_pos = r->buf_len = 0;
    if (r->kind == SRC_PLAIN) {
        size_t k = fread(r->buf, 1, DS_CHUNK, r->fp);
        if (k == 0 && ferror(r->fp))
            return dp_fail(err, "%s: read failed: %s", r->path, strerror(errno));
        r->buf_len = k;
        return (int)k;
    }
    if (r->kind == SRC_GZIP) {
        int k = gzread(r->gz, r->buf, DS_CHUNK);
        int zerr = Z_OK;
        const char *msg = gzerror(r->gz, &zerr);
        if (k < 0 || (zerr != Z_OK && zerr != Z_STREAM_END)) {
            size_t n = strlen(r->path);
            if (!msg) msg = "read failed";
            if (strncmp(msg, r->path, n) == 0 && strncmp(msg + n, ": ", 2) == 0) msg += n + 2;
            return dp_fail(err, "%s: gzip: %s", r->path, msg);
        }
        r->buf_len = (size_t)k;
        return k;
    }
    for (;;) {
        if (r->zib.pos == r->zib.size && !r->src_eof) {
            size_t k = fread(r->zin, 1, ZSTD_DStreamInSize(), r->fp);
            if (k == 0) {
                if (ferror(r->fp)) return dp_fail(err, "%s: read failed: %s", r->path, strerror(errno));
                r->src_eof = 1;
            }
            if (k > 0) r->src_any = 1;
            r->zib.size = k;
            r->zib.pos = 0;
        }
        if (r->src_eof && !r->src_any) return 0; /* an empty file holds no rows */
        ZSTD_outBuffer out = {r->buf, DS_CHUNK, 0};
        size_t in_before = r->zib.pos;
        size_t ret = ZSTD_decompressStream(r->zd, &out, &r->zib);
        if (ZSTD_isError(ret))
            return dp_fail(err, "%s: zstd: %s", r->path, ZSTD_getErrorName(ret));
        /* 0 = a frame is complete and flushed; only a call that made
         * progress tells (an idle call between frames asks for a header). */
        if (out.pos > 0 || r->zib.pos != in_before) r->zmid = ret != 0;
        if (out.pos > 0) {
            r->buf_len = out.pos;
            return (int)out.pos;
        }
        if (r->src_eof && r->zib.pos == r->zib.size) {
            if (r->zmid) return dp_fail(err, "%s: zstd: truncated frame at the end of the file", r->path);
            return 0;
        }
    }
}

/* Reads the next line (without its "\n" or a "\r" before it) into r->line.
 * Returns 1, 0 at the end of the input, -1 on error (a line over the cap
 * included). */
static int read_line(ds_reader *r, dp_err *err) {
    int got = 0;
    r->line_len = 0;
    for (;;) {
        if (r->buf_pos == r->buf_len) {
            int k = source_fill(r, err);
            if (k < 0) return -1;
            if (k == 0) break;
        }
        got = 1;
        const unsigned char *s = r->buf + r->buf_pos;
        size_t avail = r->buf_len - r->buf_pos;
        const unsigned char *nl = memchr(s, '\n', avail);
        size_t take = nl ? (size_t)(nl - s) : avail;
        if (r->line_len + take > r->max_line)
            return dp_fail(err, "%s:%ld: line longer than %zu bytes (the per-line limit); is this a "
                                "JSON Lines file?",
                           r->path, r->lineno + 1, r->max_line);
        if (r->line_len + take + 1 > r->line_cap) {
            size_t cap = r->line_cap ? r->line_cap : 4096;
            while (cap < r->line_len + take + 1) cap *= 2;
            char *p = realloc(r->line, cap);
            if (!p) return dp_fail(err, "%s:%ld: out of memory reading a line", r->path, r->lineno + 1);
            r->line = p;
            r->line_cap = cap;
        }
        memcpy(r->line + r->line_len, s, take);
        r->line_len += take;
        r->buf_pos += take + (nl ? 1 : 0);
        if (nl) break;
    }
    if (!got) return 0;
    r->lineno++;
    if (r->line_len > 0 && r->line[r->line_len - 1] == '\r') r->line_len--;
    r->line[r->line_len] = '\0';
    /* A UTF-8 byte order mark at the start of the file is not content. */
    if (r->lineno == 1 && r->line_len >= 3 && memcmp(r->line, "\xEF\xBB\xBF", 3) == 0) {
        memmove(r->line, r->line + 3, r->line_len - 3 + 1);
        r->line_len -= 3;
    }
    return 1;
}

/* ---- open / close ------------------------------------------------------ */

/* A .gz or .zst file must start with its format's magic number (gzip: 1f 8b,
 * RFC 1952; zstd: 28 b5 2f fd, or a skippable frame 5? 2a 4d 18, RFC 8878):
 * zlib would otherwise read any other file as plain text. An empty file is
 * an empty dataset. */
static int check_magic(const char *file, const char *path, int kind, dp_err *err) {
    FILE *f = fopen(file, "rb");
    if (!f) return dp_fail(err, "%s: cannot open: %s", path, strerror(errno));
    unsigned char m[4];
    size_t n = fread(m, 1, sizeof m, f);
    int bad_read = ferror(f);
    fclose(f);
    if (bad_read) return dp_fail(err, "%s: read failed: %s", path, strerror(errno));
    if (n == 0) return 0;
    int ok = kind == SRC_GZIP ? n >= 2 && m[0] == 0x1f && m[1] == 0x8b
                              : n == 4 && ((m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd) ||
                                           ((m[0] & 0xf0) == 0x50 && m[1] == 0x2a && m[2] == 0x4d &&
                                            m[3] == 0x18));
    if (ok) return 0;
    char seen[16] = "";
    for (size_t i = 0, k = 0; i < n; i++)
        k += (size_t)snprintf(seen + k, sizeof seen - k, "%s%02x", i ? " " : "", m[i]);
    return dp_fail(err, "%s: not a %s file (first bytes %s, expected %s)", path,
                   kind == SRC_GZIP ? "gzip" : "zstd", seen, kind == SRC_GZIP ? "1f 8b" : "28 b5 2f fd");
}

int ds_open(ds_reader **out, const char *file, const ds_options *opt, dp_err *err) {
    *out = NULL;
    ds_reader *r = dp_calloc(1, sizeof *r, err);
    if (!r) return -1;
    r->format = opt->format;
    r->max_line = opt->max_line_bytes ? opt->max_line_bytes : DS_DEFAULT_MAX_LINE;
    char q[DP_QUOTE_CAP];
    const char *path = dp_label(q, file); /* for messages */
    r->path = strdup(path);
    r->buf = malloc(DS_CHUNK);
    if (!r->path || !r->buf) {
        dp_fail(err, "%s: out of memory opening the dataset", path);
        goto fail;
    }
    /* Resolve the template now: a conversational dataset fails before any
     * row; with format auto the failure waits for a conversational row. */
    r->jinja = opt->jinja;
    r->jinja_tools = opt->jinja_tools;
    r->jinja_tok = opt->jinja_tok;
    if (r->jinja || ds_resolve_template(opt, &r->tpl, &r->tpl_err) == 0) {
        r->tpl_resolved = 1;
    } else if (opt->format == DS_CONVERSATIONAL) {
        dp_fail(err, "%s: %s", path, r->tpl_err.msg);
        goto fail;
    }
    r->kind = ends_with(file, ".gz") ? SRC_GZIP : ends_with(file, ".zst") ? SRC_ZSTD : SRC_PLAIN;
    if (r->kind != SRC_PLAIN && check_magic(file, path, r->kind, err)) goto fail;
    if (r->kind == SRC_GZIP) {
        r->gz = gzopen(file, "rb");
        if (!r->gz) {
            dp_fail(err, "%s: cannot open: %s", path, errno ? strerror(errno) : "gzopen failed");
            goto fail;
        }
        gzbuffer(r->gz, 128 * 1024);
    } else {
        r->fp = fopen(file, "rb");
        if (!r->fp) {
            dp_fail(err, "%s: cannot open: %s", path, strerror(errno));
            goto fail;
        }
        if (r->kind == SRC_ZSTD) {
            r->zd = ZSTD_createDCtx();
            r->zin = malloc(ZSTD_DStreamInSize());
            if (!r->zd || !r->zin) {
                dp_fail(err, "%s: out of memory for the zstd decoder", path);
                goto fail;
            }
            r->zib.src = r->zin;
        }
    }
    *out = r;
    return 0;
fail:
    ds_close(r);
    return -1;
}

void ds_close(ds_reader *r) {
    if (!r) return;
    if (r->fp) fclose(r->fp);
    if (r->gz) gzclose(r->gz);
    ZSTD_freeDCtx(r->zd);
    free(r->zin);
    free(r->buf);
    free(r->line);
    free(r->prompt);
    free(r->chosen);
    free(r->rejected);
    free(r->path);
    free(r);
}

/* ---- rows -------------------------------------------------------------- */

static const char *json_kind(const json_t *v) {
    if (!v) return "nothing";
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER:
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* Row-level context for messages: "FILE:LINE: ". */
#define ROW_FMT "%s:%ld: "
#define ROW_ARGS r->path, r->lineno

static int bad_row(ds_bad *bad, ds_bad why) {
    *bad = why;
    return 2;
}

static int get_string(ds_reader *r, json_t *obj, const char *key, const char **s, size_t *n,
                      ds_bad *bad, dp_err *err) {
    json_t *v = json_object_get(obj, key);
    if (!v) {
        dp_fail(err, ROW_FMT "field \"%s\": missing, expected a string", ROW_ARGS, key);
        return bad_row(bad, DS_BAD_FIELD);
    }
    if (!json_is_string(v)) {
        dp_fail(err, ROW_FMT "field \"%s\": expected a string, got %s", ROW_ARGS, key, json_kind(v));
        return bad_row(bad, DS_BAD_FIELD);
    }
    *s = json_string_value(v);
    *n = json_string_length(v);
    return 0;
}

/* A parsed list of {"role", "content"} messages; pointers into the JSON. */
typedef struct msgs {
    const char **role, **content;
    int n;
} msgs;

static void msgs_free(msgs *m) {
    free(m->role);
    free(m->content);
    m->role = m->content = NULL;
    m->n = 0;
}

static int get_messages(ds_reader *r, json_t *obj, const char *key, msgs *m, ds_bad *bad,
                        dp_err *err) {
    json_t *v = json_object_get(obj, key);
    if (!v) {
        dp_fail(err, ROW_FMT "field \"%s\": missing, expected a list of {\"role\", \"content\"} messages",
                ROW_ARGS, key);
        return bad_row(bad, DS_BAD_FIELD);
    }
    if (!json_is_array(v)) {
        dp_fail(err, ROW_FMT "field \"%s\": expected a list of {\"role\", \"content\"} messages, got %s",
                ROW_ARGS, key, json_kind(v));
        return bad_row(bad, DS_BAD_FIELD);
    }
    size_t n = json_array_size(v);
    m->n = (int)n;
    m->role = calloc(n ? n : 1, sizeof *m->role);
    m->content = calloc(n ? n : 1, sizeof *m->content);
    if (!m->role || !m->content) return dp_fail(err, ROW_FMT "out of memory", ROW_ARGS);
    for (size_t i = 0; i < n; i++) {
        json_t *msg = json_array_get(v, i);
        if (!json_is_object(msg)) {
            dp_fail(err, ROW_FMT "field \"%s\": message %zu: expected an object with \"role\" and "
                                 "\"content\", got %s",
                    ROW_ARGS, key, i, json_kind(msg));
            return bad_row(bad, DS_BAD_FIELD);
        }
        static const char *const names[2] = {"role", "content"};
        for (int f = 0; f < 2; f++) {
            json_t *s = json_object_get(msg, names[f]);
            if (!s) {
                dp_fail(err, ROW_FMT "field \"%s\": message %zu: \"%s\": missing, expected a string",
                        ROW_ARGS, key, i, names[f]);
                return bad_row(bad, DS_BAD_FIELD);
            }
            if (!json_is_string(s)) {
                dp_fail(err, ROW_FMT "field \"%s\": message %zu: \"%s\": expected a string, got %s",
                        ROW_ARGS, key, i, names[f], json_kind(s));
                return bad_row(bad, DS_BAD_FIELD);
            }
            (f == 0 ? m->role : m->content)[i] = json_string_value(s);
        }
    }
    return 0;
}

static int set_texts(ds_reader *r, const char *p, size_t np, const char *c, size_t nc,
                     const char *j, size_t nj, dp_err *err) {
    free(r->prompt);
    free(r->chosen);
    free(r->rejected);
    r->prompt = strndup(p, np);
    r->chosen = strndup(c, nc);
    r->rejected = strndup(j, nj);
    if (!r->prompt || !r->chosen || !r->rejected) return dp_fail(err, ROW_FMT "out of memory", ROW_ARGS);
    return 0;
}

/* Implicit prompt: the longest common prefix of the two full texts, cut back
 * to just after the last "\n\nAssistant:" in it (Anthropic HH dialogues: the
 * answers keep their own first words), else never inside a UTF-8 char. */
static size_t implicit_split(const char *c, const char *j) {
    size_t k = 0;
    while (c[k] && c[k] == j[k]) k++;
    static const char marker[] = "\n\nAssistant:";
    const size_t mlen = sizeof marker - 1;
    for (size_t i = k; i >= mlen; i--)
        if (memcmp(c + i - mlen, marker, mlen) == 0) return i;
    while (k > 0 && (((unsigned char)c[k] & 0xC0) == 0x80 || ((unsigned char)j[k] & 0xC0) == 0x80))
        k--;
    return k;
}

/* Renders the prompt (with the generation prompt) and PROMPT+RESPONSE, and
 * returns the response as the text the second adds, minus the separator the
 * template writes after the end-of-turn marker. *out is malloc'd. */
static int render_response(ds_reader *r, const char *key, const msgs *p, const char *prompt_text,
                           const msgs *resp, char **out, ds_bad *bad, dp_err *err) {
    int n = p->n + resp->n;
    const char **role = calloc((size_t)n + 1, sizeof *role);
    const char **content = calloc((size_t)n + 1, sizeof *content);
    char *full = NULL;
    int rc = -1;
    if (!role || !content) {
        dp_fail(err, ROW_FMT "out of memory", ROW_ARGS);
        goto done;
    }
    for (int i = 0; i < p->n; i++) role[i] = p->role[i], content[i] = p->content[i];
    for (int i = 0; i < resp->n; i++) role[p->n + i] = resp->role[i], content[p->n + i] = resp->content[i];
    if (ds_render_chat(r->tpl, role, content, n, 0, &full, err)) {
        dp_context(err, ROW_FMT "field \"%s\"", ROW_ARGS, key);
        rc = bad_row(bad, DS_BAD_FIELD);
        goto done;
    }
    size_t np = strlen(prompt_text), nf = strlen(full);
    if (nf < np || memcmp(full, prompt_text, np) != 0) {
        dp_fail(err, ROW_FMT "field \"%s\": the %s template's rendering of the prompt with its "
                             "generation prompt is not a prefix of the rendered conversation; "
                             "does the response start with an assistant message?",
                ROW_ARGS, key, chat_template_name(r->tpl));
        rc = bad_row(bad, DS_BAD_FIELD);
        goto done;
    }
    size_t nr = nf - np, sep = chat_turn_separator_len(r->tpl);
    if (sep && nr >= sep && full[nf - 1] == '\n') nr -= sep;
    memmove(full, full + np, nr);
    full[nr] = '\0';
    *out = full;
    full = NULL;
    rc = 0;
done:
    free(full);
    free(role);
    free(content);
    return rc;
}

static int row_conversational(ds_reader *r, json_t *obj, ds_bad *bad, dp_err *err) {
    msgs p = {0}, c = {0}, j = {0};
    char *prompt = NULL, *chosen = NULL, *rejected = NULL;
    int rc;
    if (!r->tpl_resolved)
        return dp_fail(err, ROW_FMT "conversational rows need a chat template: %s", ROW_ARGS,
                       r->tpl_err.msg);
    int explicit_prompt = json_object_get(obj, "prompt") != NULL;
    if ((explicit_prompt && (rc = get_messages(r, obj, "prompt", &p, bad, err))) ||
        (rc = get_messages(r, obj, "chosen", &c, bad, err)) ||
        (rc = get_messages(r, obj, "rejected", &j, bad, err)))
        goto done;
    msgs pc = p, cc = c, jc = j; /* views: prompt and the two responses */
    if (!explicit_prompt) {
        /* Implicit: the shared leading messages are the prompt. */
        int k = 0;
        while (k < c.n && k < j.n && strcmp(c.role[k], j.role[k]) == 0 &&
               strcmp(c.content[k], j.content[k]) == 0)
            k++;
        pc = (msgs){c.role, c.content, k};
        cc = (msgs){c.role + k, c.content + k, c.n - k};
        jc = (msgs){j.role + k, j.content + k, j.n - k};
    }
    if (ds_render_chat(r->tpl, pc.role, pc.content, pc.n, 1, &prompt, err)) {
        dp_context(err, ROW_FMT "field \"%s\"", ROW_ARGS, explicit_prompt ? "prompt" : "chosen");
        rc = bad_row(bad, DS_BAD_FIELD);
        goto done;
    }
    if (cc.n == 0 || jc.n == 0) {
        if (cc.n == 0 && jc.n == 0) {
            dp_fail(err, ROW_FMT "chosen and rejected are identical", ROW_ARGS);
            rc = bad_row(bad, DS_BAD_IDENTICAL);
        } else {
            dp_fail(err, ROW_FMT "field \"%s\": empty response (no messages after the prompt)",
                    ROW_ARGS, cc.n == 0 ? "chosen" : "rejected");
            rc = bad_row(bad, DS_BAD_EMPTY);
        }
        goto done;
    }
    if ((rc = render_response(r, "chosen", &pc, prompt, &cc, &chosen, bad, err)) ||
        (rc = render_response(r, "rejected", &pc, prompt, &jc, &rejected, bad, err)))
        goto done;
    rc = set_texts(r, prompt, strlen(prompt), chosen, strlen(chosen), rejected, strlen(rejected), err);
done:
    msgs_free(&p);
    msgs_free(&c);
    msgs_free(&j);
    free(prompt);
    free(chosen);
    free(rejected);
    return rc;
}

/* What auto makes of a row: a string prompt is standard, a string chosen
 * without a prompt implicit, lists of messages conversational. */
static ds_format detect_format(json_t *obj) {
    json_t *p = json_object_get(obj, "prompt"), *c = json_object_get(obj, "chosen");
    if (json_is_string(p)) return DS_STANDARD;
    if (!p && json_is_string(c)) return DS_IMPLICIT;
    if (json_is_array(p) || json_is_array(c)) return DS_CONVERSATIONAL;
    return DS_AUTO;
}

static int parse_row(ds_reader *r, json_t *obj, ds_bad *bad, dp_err *err) {
    ds_format f = r->format;
    if (f == DS_AUTO) {
        f = detect_format(obj);
        if (f == DS_AUTO) {
            json_t *p = json_object_get(obj, "prompt");
            if (p)
                dp_fail(err, ROW_FMT "field \"prompt\": expected a string or a list of messages, got %s",
                        ROW_ARGS, json_kind(p));
            else if (!json_object_get(obj, "chosen"))
                dp_fail(err, ROW_FMT "field \"chosen\": missing, expected a string or a list of messages",
                        ROW_ARGS);
            else
                dp_fail(err, ROW_FMT "field \"chosen\": expected a string or a list of messages, got %s",
                        ROW_ARGS, json_kind(json_object_get(obj, "chosen")));
            return bad_row(bad, DS_BAD_FIELD);
        }
    }
    int rc;
    const char *p = "", *c, *j;
    size_t np = 0, nc, nj;
    switch (f) {
    case DS_STANDARD:
        if ((rc = get_string(r, obj, "prompt", &p, &np, bad, err)) ||
            (rc = get_string(r, obj, "chosen", &c, &nc, bad, err)) ||
            (rc = get_string(r, obj, "rejected", &j, &nj, bad, err)))
            return rc;
        rc = set_texts(r, p, np, c, nc, j, nj, err);
        break;
    case DS_IMPLICIT: {
        if ((rc = get_string(r, obj, "chosen", &c, &nc, bad, err)) ||
            (rc = get_string(r, obj, "rejected", &j, &nj, bad, err)))
            return rc;
        if (nc == nj && memcmp(c, j, nc) == 0) {
            dp_fail(err, ROW_FMT "chosen and rejected are identical", ROW_ARGS);
            return bad_row(bad, DS_BAD_IDENTICAL);
        }
        size_t k = implicit_split(c, j);
        rc = set_texts(r, c, k, c + k, nc - k, j + k, nj - k, err);
        break;
    }
    case DS_CONVERSATIONAL:
        if (r->jinja) {
            /* The template sees integers as integers (tojson writes 1, not
             * 1.0): parse again without INT_AS_REAL when the line allows. */
            char *texts[3];
            json_t *exact = json_loadb(r->line, r->line_len, JSON_REJECT_DUPLICATES, NULL);
            rc = ds_chat_row(r->jinja, r->jinja_tools, r->jinja_tok, exact ? exact : obj, r->path, r->lineno, texts, err);
            json_decref(exact);
            if (rc == 2) *bad = DS_BAD_FIELD;
            if (rc) return rc;
            rc = set_texts(r, texts[0], strlen(texts[0]), texts[1], strlen(texts[1]), texts[2],
                           strlen(texts[2]), err);
            for (int i = 0; i < 3; i++) free(texts[i]);
        } else {
            rc = row_conversational(r, obj, bad, err);
        }
        break;
    default:
        return dp_fail(err, "%s: unknown data format %d", r->path, (int)f);
    }
    if (rc) return rc;
    if (strcmp(r->chosen, r->rejected) == 0) {
        dp_fail(err, ROW_FMT "chosen and rejected are identical", ROW_ARGS);
        return bad_row(bad, DS_BAD_IDENTICAL);
    }
    if (!r->chosen[0] || !r->rejected[0]) {
        dp_fail(err, ROW_FMT "field \"%s\": empty response", ROW_ARGS, r->chosen[0] ? "rejected" : "chosen");
        return bad_row(bad, DS_BAD_EMPTY);
    }
    r->format = f; /* auto settles on the first valid row */
    return 0;
}

/* Content id: XXH3-128 over the three texts, each preceded by its length as
 * 8 bytes little-endian, so no two different triples hash the same input. */
static void content_id(const char *const t[3], const size_t n[3], char out[40]) {
    XXH3_state_t st;
    XXH3_INITSTATE(&st);
    XXH3_128bits_reset(&st);
    for (int i = 0; i < 3; i++) {
        unsigned char len[8];
        for (int b = 0; b < 8; b++) len[b] = (unsigned char)((uint64_t)n[i] >> (8 * b));
        XXH3_128bits_update(&st, len, 8);
        XXH3_128bits_update(&st, t[i], n[i]);
    }
    XXH128_hash_t h = XXH3_128bits_digest(&st);
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, h);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hex[c.digest[i] >> 4];
        out[2 * i + 1] = hex[c.digest[i] & 15];
    }
    out[32] = '\0';
}

int ds_next(ds_reader *r, ds_row *row, ds_bad *bad, dp_err *err) {
    *bad = DS_BAD_NONE;
    for (;;) {
        int k = read_line(r, err);
        if (k <= 0) return k;
        size_t i = 0;
        while (i < r->line_len && (r->line[i] == ' ' || r->line[i] == '\t')) i++;
        if (i == r->line_len) continue; /* blank line */
        json_error_t jerr;
        /* INT_AS_REAL: an integer beyond int64 in some other field (an id,
         * a score) must not make the row "invalid JSON". */
        json_t *obj = json_loadb(r->line, r->line_len, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &jerr);
        if (!obj) {
            char q[DP_QUOTE_CAP];
            dp_fail(err, ROW_FMT "invalid JSON: %s at column %d", ROW_ARGS,
                    dp_label(q, jerr.text), jerr.column);
            return bad_row(bad, DS_BAD_JSON);
        }
        int rc;
        if (!json_is_object(obj)) {
            dp_fail(err, ROW_FMT "expected a JSON object, got %s", ROW_ARGS, json_kind(obj));
            rc = bad_row(bad, DS_BAD_FIELD);
        } else {
            rc = parse_row(r, obj, bad, err);
        }
        json_decref(obj);
        if (rc) return rc;
        memset(row, 0, sizeof *row);
        row->prompt = r->prompt;
        row->chosen = r->chosen;
        row->rejected = r->rejected;
        row->prompt_len = strlen(r->prompt);
        row->chosen_len = strlen(r->chosen);
        row->rejected_len = strlen(r->rejected);
        row->line = r->lineno;
        row->full_render = r->format == DS_CONVERSATIONAL && r->jinja;
        row->template_bos = r->format == DS_CONVERSATIONAL && !r->jinja && chat_starts_with_bos(r->tpl);
        const char *t[3] = {row->prompt, row->chosen, row->rejected};
        size_t n[3] = {row->prompt_len, row->chosen_len, row->rejected_len};
        content_id(t, n, row->id);
        return 1;
    }
}

/* ---- tokenization ------------------------------------------------------ */

void ds_tokens_free(ds_tokens *t) {
    if (!t) return;
    free(t->prompt);
    free(t->chosen);
    free(t->rejected);
    t->prompt = t->chosen = t->rejected = NULL;
    t->n_prompt = t->n_chosen = t->n_rejected = 0;
}

/* Encodes TEXT and appends EOS unless its last token already is EOS (a
 * template's end-of-turn marker that is the tokenizer's EOS). */
static int encode_response(const tokenizer *t, const char *text, size_t len, int32_t eos,
                           int32_t **ids, int *n, dp_err *err) {
    int32_t *raw = NULL;
    size_t k = 0;
    if (tok_encode(t, text, len, 0, &raw, &k, err)) return -1;
    int add = k == 0 || raw[k - 1] != eos;
    int32_t *p = realloc(raw, (k + 1) * sizeof *p);
    if (!p) {
        free(raw);
        return dp_fail(err, "out of memory");
    }
    if (add) p[k++] = eos;
    *ids = p;
    *n = (int)k;
    return 0;
}

static int truncate_row(const ds_options *opt, const char *source, const ds_row *row, ds_tokens *out,
                        ds_bad *bad, dp_err *err);

/* TRL's current DPO rule for template-rendered rows (dataset.h). */
static int tokenize_full(const tokenizer *t, const ds_options *opt, const char *source,
                         const ds_row *row, ds_tokens *out, ds_bad *bad, dp_err *err) {
    int32_t *ids = NULL;
    size_t k = 0;
    if (tok_encode(t, row->prompt, row->prompt_len, 0, &ids, &k, err)) {
        dp_context(err, "%s:%ld: prompt", source, row->line);
        return -1;
    }
    out->prompt = ids;
    out->n_prompt = (int)k;
    const char *texts[2] = {row->chosen, row->rejected};
    size_t lens[2] = {row->chosen_len, row->rejected_len};
    for (int r = 0; r < 2; r++) {
        int32_t *full = NULL;
        size_t n = 0;
        if (tok_encode(t, texts[r], lens[r], 0, &full, &n, err)) {
            dp_context(err, "%s:%ld: %s", source, row->line, r ? "rejected" : "chosen");
            ds_tokens_free(out);
            return -1;
        }
        size_t np = (size_t)out->n_prompt;
        out->not_prefix[r] = n < np || memcmp(full, out->prompt, np * sizeof *full) != 0;
        size_t nr = n > np ? n - np : 0;
        if (nr) memmove(full, full + np, nr * sizeof *full);
        *(r ? &out->rejected : &out->chosen) = full;
        *(r ? &out->n_rejected : &out->n_chosen) = (int)nr;
        if (nr == 0) {
            dp_fail(err, "%s:%ld: %s: the full rendering has no tokens after the prompt's %zu", source,
                    row->line, r ? "rejected" : "chosen", np);
            ds_tokens_free(out);
            *bad = DS_BAD_EMPTY;
            return 2;
        }
    }
    if (out->n_prompt == 0) {
        dp_fail(err, "%s:%ld: the chat template renders an empty prompt: the model needs at least one "
                     "prompt token to predict the first response token from",
                source, row->line);
        ds_tokens_free(out);
        *bad = DS_BAD_EMPTY;
        return 2;
    }
    return truncate_row(opt, source, row, out, bad, err);
}

int ds_tokenize(const tokenizer *t, const ds_options *opt, const char *source_file,
                const ds_row *row, ds_tokens *out, ds_bad *bad, dp_err *err) {
    char q[DP_QUOTE_CAP];
    const char *source = dp_label(q, source_file);
    memset(out, 0, sizeof *out);
    *bad = DS_BAD_NONE;
    if (opt->max_length < 1 || opt->max_prompt_length < 1)
        return dp_fail(err, "data.max_length and data.max_prompt_length: expected >= 1, got %d and %d",
                       opt->max_length, opt->max_prompt_length);
    if (row->full_render) return tokenize_full(t, opt, source, row, out, bad, err);
    int eos = tok_eos_id(t), bos = tok_bos_id(t);
    if (eos < 0)
        return dp_fail(err, "tokenizer: expected an EOS token to end each response, found none");
    int add_bos = bos >= 0 && (tok_adds_bos(t) || row->template_bos);

    int32_t *raw = NULL;
    size_t k = 0;
    if (tok_encode(t, row->prompt, row->prompt_len, 0, &raw, &k, err)) {
        dp_context(err, "%s:%ld: prompt", source, row->line);
        return -1;
    }
    out->prompt = malloc((k + 1) * sizeof *out->prompt);
    if (!out->prompt) {
        free(raw);
        return dp_fail(err, "out of memory");
    }
    int np = 0;
    if (add_bos) out->prompt[np++] = bos;
    if (k) memcpy(out->prompt + np, raw, k * sizeof *raw);
    np += (int)k;
    free(raw);
    out->n_prompt = np;
    if (encode_response(t, row->chosen, row->chosen_len, eos, &out->chosen, &out->n_chosen, err)) {
        dp_context(err, "%s:%ld: chosen", source, row->line);
        goto fail;
    }
    if (encode_response(t, row->rejected, row->rejected_len, eos, &out->rejected, &out->n_rejected, err)) {
        dp_context(err, "%s:%ld: rejected", source, row->line);
        goto fail;
    }
    if (out->n_prompt == 0) {
        dp_fail(err, "%s:%ld: empty prompt and the tokenizer adds no BOS: the model needs at least one "
                     "prompt token to predict the first response token from",
                source, row->line);
        ds_tokens_free(out);
        *bad = DS_BAD_EMPTY;
        return 2;
    }
    return truncate_row(opt, source, row, out, bad, err);
fail:
    ds_tokens_free(out);
    return -1;
}

/* Truncation (dataset.h); on 2 *out is freed. */
static int truncate_row(const ds_options *opt, const char *source, const ds_row *row, ds_tokens *out,
                        ds_bad *bad, dp_err *err) {
    int longer = out->n_chosen > out->n_rejected ? out->n_chosen : out->n_rejected;
    if (out->n_prompt + longer > opt->max_length && out->n_prompt > opt->max_prompt_length) {
        int keep = opt->max_prompt_length;
        if (opt->truncation == DS_KEEP_END)
            memmove(out->prompt, out->prompt + (out->n_prompt - keep), (size_t)keep * sizeof *out->prompt);
        out->n_prompt = keep;
    }
    if (out->n_prompt >= opt->max_length) {
        dp_fail(err, "%s:%ld: prompt alone fills max_length: %d prompt tokens after truncation, "
                     "max_length %d",
                source, row->line, out->n_prompt, opt->max_length);
        ds_tokens_free(out);
        *bad = DS_BAD_PROMPT_TOO_LONG;
        return 2;
    }
    if (out->n_prompt + longer > opt->max_length) {
        int room = opt->max_length - out->n_prompt;
        if (out->n_chosen > room) out->n_chosen = room;
        if (out->n_rejected > room) out->n_rejected = room;
    }
    return 0;
}
