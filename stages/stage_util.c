/* stage_util — see stage_util.h. */
#include "stage_util.h"

#include <cblas.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

void su_tokenizer_path(const config *c, char *buf, size_t size) {
    const char *t = cfg_str(c, "reference.tokenizer");
    if (t[0]) snprintf(buf, size, "%s", t);
    else snprintf(buf, size, "%s/tokenizer.json", cfg_str(c, "reference.model"));
}

/* A and B name the same path, ignoring trailing slashes. */
static int same_path(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    while (na > 1 && a[na - 1] == '/') na--;
    while (nb > 1 && b[nb - 1] == '/') nb--;
    return na == nb && !strncmp(a, b, na);
}

int su_check_reference(const config *c, dp_err *err) {
    const char *ref = cfg_str(c, "reference.model");
    struct stat st;
    int found = stat(ref, &st) == 0, e = errno;
    if (found && S_ISDIR(st.st_mode)) return 0;
    char qc[DP_QUOTE_CAP], qr[DP_QUOTE_CAP];
    const char *cfg = dp_label(qc, cfg_path(c)[0] ? cfg_path(c) : "pipeline.yaml");
    char sft_model[4200];
    snprintf(sft_model, sizeof sft_model, "%s/model", cfg_str(c, "sft.output"));
    if (!found && e == ENOENT && same_path(ref, sft_model)) {
        int is_default = !strcmp(cfg, "pipeline.yaml");
        return dp_fail(err, "%s: reference.model: %s does not exist yet; it is the model "
                            "`dpoc sft -c %s` (make sft%s%s) writes",
                       cfg, dp_label(qr, ref), cfg, is_default ? "" : " CONFIG=",
                       is_default ? "" : cfg);
    }
    return dp_fail(err, "%s: reference.model: %s: %s (expected a Hugging Face model directory: "
                        "config.json, model.safetensors, tokenizer.json)",
                   cfg, dp_label(qr, ref), found ? "not a directory" : strerror(e));
}

static int pick(const char *name, const char *const *names, int n) {
    for (int i = 0; i < n; i++)
        if (!strcmp(name, names[i])) return i;
    return 0;
}

int su_dataset_options(const config *c, const tokenizer *t, ds_options *o, dp_err *err) {
    static const char *const formats[] = {"auto", "standard", "implicit", "conversational"};
    static const char *const templates[] = {"auto", "chatml", "llama3", "llama2",
                                            "mistral", "zephyr", "gemma"};
    memset(o, 0, sizeof *o);
    o->format = (ds_format)pick(cfg_str(c, "data.format"), formats, 4);
    const char *tpl = cfg_str(c, "data.chat_template");
    int known = 0;
    for (int i = 0; i < 7; i++) known |= !strcmp(tpl, templates[i]);
    size_t tl = strlen(tpl);
    int file = tl > 6 && !strcmp(tpl + tl - 6, ".jinja");
    if (!known && !file) {
        char q[DP_QUOTE_CAP];
        return dp_fail(err, "data.chat_template: expected auto, chatml, llama3, llama2, mistral, zephyr, "
                            "gemma or a path to a .jinja file, got %s", dp_quote(q, tpl, (size_t)-1));
    }
    o->chat_template = (ds_template)pick(tpl, templates, 7);
    o->tokenizer_template = tok_chat_template(t);
    if (file || (o->chat_template == DS_TEMPLATE_AUTO && tok_chat_template(t))) {
        /* The model's own template (or the file): rendered as transformers does. */
        const char *source;
        dp_err perr;
        if (ds_chat_load(file ? tpl : NULL, t, &o->jinja, &source, &perr)) {
            if (file) return dp_fail(err, "data.chat_template: %s", perr.msg);
            su_log("data.chat_template: auto: the model's own template does not parse (%s); guessing "
                   "a built-in template from its markers instead", perr.msg);
        } else {
            if (!file && ds_chat_load_tool_use(t, &o->jinja_tools, err)) return -1;
            o->jinja_tok = t;
            su_log("data.chat_template: %s: conversational rows are rendered with %s", tpl,
                   file ? "this file" : source);
            /* The template and its variables, for the fingerprint. */
            XXH3_state_t st;
            XXH3_INITSTATE(&st);
            XXH3_128bits_reset(&st);
            const char *text = file ? NULL : tok_chat_template(t);
            if (file) XXH3_128bits_update(&st, tpl, tl); /* the path stands in; its content below */
            if (text) XXH3_128bits_update(&st, text, strlen(text) + 1);
            if (o->jinja_tools) {
                const char *tu = tok_chat_template_tool_use(t);
                XXH3_128bits_update(&st, tu, strlen(tu) + 1);
            }
            if (file) {
                FILE *f = fopen(tpl, "rb");
                char buf[4096];
                for (size_t k; f && (k = fread(buf, 1, sizeof buf, f)) > 0;) XXH3_128bits_update(&st, buf, k);
                if (f) fclose(f);
            }
            for (int k = 0; k < tok_special_count(); k++) {
                const char *v = tok_special(t, k, NULL);
                XXH3_128bits_update(&st, tok_special_name(k), strlen(tok_special_name(k)) + 1);
                if (v) XXH3_128bits_update(&st, v, strlen(v) + 1);
            }
            XXH128_hash_t h = XXH3_128bits_digest(&st);
            snprintf(o->jinja_id, sizeof o->jinja_id, "jinja:%016llx%016llx", (unsigned long long)h.high64,
                     (unsigned long long)h.low64);
        }
    }
    o->max_length = (int)cfg_int(c, "data.max_length");
    o->max_prompt_length = (int)cfg_int(c, "data.max_prompt_length");
    o->truncation = !strcmp(cfg_str(c, "data.truncation"), "keep_start") ? DS_KEEP_START : DS_KEEP_END;
    if (o->max_prompt_length >= o->max_length)
        return dp_fail(err, "data.max_prompt_length (%d) must be less than data.max_length (%d)",
                       o->max_prompt_length, o->max_length);
    return 0;
}

int su_fingerprint(const config *c, const tokenizer *t, const ds_options *o,
                   const char *tokenizer_path, fp_result *out, dp_err *err) {
    /* The template only matters for conversational data, but which data is
     * conversational is only known row by row: record the resolved one. */
    const char *tpl = cfg_str(c, "data.chat_template");
    ds_template resolved;
    dp_err ignored;
    if (o->jinja) tpl = o->jinja_id;
    else if (o->chat_template == DS_TEMPLATE_AUTO && ds_resolve_template(o, &resolved, &ignored) == 0)
        tpl = ds_template_name(resolved);
    fp_inputs in = {
        .model_dir = cfg_str(c, "reference.model"),
        .tokenizer_path = tokenizer_path,
        .format = cfg_str(c, "data.format"),
        .chat_template = tpl,
        .truncation = cfg_str(c, "data.truncation"),
        .max_length = cfg_int(c, "data.max_length"),
        .max_prompt_length = cfg_int(c, "data.max_prompt_length"),
        .adds_bos = tok_adds_bos(t),
        .bos_id = tok_bos_id(t),
        .eos_id = tok_eos_id(t),
    };
    return fp_compute(&in, out, err);
}

int su_mkdirs(const char *dir, dp_err *err) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf)
        return dp_fail(err, "%s: path too long", dir);
    for (char *p = buf + 1; ; p++) {
        if (*p != '/' && *p != '\0') continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(buf, 0777) && errno != EEXIST)
            return dp_fail(err, "%s: cannot create directory: %s", buf, strerror(errno));
        *p = saved;
        if (!saved) break;
    }
    return 0;
}

int su_mkdirs_for(const char *path, dp_err *err) {
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path) return 0;
    char dir[4096];
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    return su_mkdirs(dir, err);
}

const char *su_basename(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

double su_sum(const float *x, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += x[i];
    return s;
}

const char *su_blas_info(void) {
    static char buf[128];
    snprintf(buf, sizeof buf, "OpenBLAS %s, %d threads", openblas_get_corename(),
             openblas_get_num_threads());
    return buf;
}

int su_rmtree(const char *dir, dp_err *err) {
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return 0;
        return dp_fail(err, "%s: cannot open: %s", dir, strerror(errno));
    }
    struct dirent *e;
    char path[4400];
    int rc = 0;
    while (!rc && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) rc = su_rmtree(path, err);
        else if (unlink(path)) rc = dp_fail(err, "%s: cannot remove: %s", path, strerror(errno));
    }
    closedir(d);
    if (!rc && rmdir(dir)) rc = dp_fail(err, "%s: cannot remove: %s", dir, strerror(errno));
    return rc;
}

int su_fsync_dir(const char *dir, dp_err *err) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return dp_fail(err, "%s: cannot open: %s", dir, strerror(errno));
    int rc = fsync(fd);
    close(fd);
    if (rc) return dp_fail(err, "%s: fsync: %s", dir, strerror(errno));
    return 0;
}

long su_getline(char **line, size_t *cap, FILE *f, const char *where, long lineno, dp_err *err) {
    size_t n = 0;
    int c;
    while ((c = getc_unlocked(f)) != EOF) {
        if (n + 2 > *cap) {
            if (n + 2 > SU_MAX_LINE) {
                dp_fail(err, "%s:%ld: line longer than %zu bytes", where, lineno, SU_MAX_LINE);
                return -2;
            }
            size_t want = *cap ? *cap * 2 : 256;
            if (want > SU_MAX_LINE) want = SU_MAX_LINE;
            char *p = realloc(*line, want);
            if (!p) {
                dp_fail(err, "%s:%ld: out of memory reading a line", where, lineno);
                return -2;
            }
            *line = p, *cap = want;
        }
        (*line)[n++] = (char)c;
        if (c == '\n') break;
    }
    if (n == 0) return -1;
    (*line)[n] = '\0';
    return (long)n;
}

char *su_read_file(const char *path, size_t max, size_t *len, dp_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        dp_fail(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) || (size_t)st.st_size > max) {
        fclose(f);
        dp_fail(err, "%s: too large (%lld bytes)", path, (long long)st.st_size);
        return NULL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t n = buf ? fread(buf, 1, (size_t)st.st_size, f) : 0;
    int bad = !buf || ferror(f) || n != (size_t)st.st_size;
    fclose(f);
    if (bad) {
        free(buf);
        dp_fail(err, "%s: read error", path);
        return NULL;
    }
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

int su_write_file_atomic(const char *path, const void *data, size_t n, dp_err *err) {
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return dp_fail(err, "%s: cannot create: %s", tmp, strerror(errno));
    int bad = fwrite(data, 1, n, f) != n || fflush(f) || fsync(fileno(f));
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path)) return dp_fail(err, "%s: write error: %s", path, strerror(errno));
    return 0;
}

int su_truncate_metrics(const char *path, long keep_through_step, dp_err *err) {
    if (access(path, F_OK) != 0) return 0;
    size_t n;
    char *text = su_read_file(path, (size_t)1 << 34, &n, err);
    if (!text) return -1;
    size_t kept = 0; /* the kept lines, moved to the front of text */
    for (char *line = text, *next; line < text + n && *line; line = next) {
        char *nl = strchr(line, '\n');
        next = nl ? nl + 1 : line + strlen(line);
        long step;
        if (sscanf(line, "{\"step\": %ld", &step) == 1 && step <= keep_through_step) {
            memmove(text + kept, line, (size_t)(next - line));
            kept += (size_t)(next - line);
        }
    }
    int rc = su_write_file_atomic(path, text, kept, err);
    free(text);
    return rc;
}

int su_copy_tokenizer_files(const char *from_dir, const char *to_dir, dp_err *err) {
    static const char *const names[] = {"tokenizer.json", "tokenizer_config.json",
                                        "special_tokens_map.json", "generation_config.json",
                                        "vocab.json", "merges.txt", "tokenizer.model"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char src[4200], dst[4200];
        snprintf(src, sizeof src, "%s/%s", from_dir, names[i]);
        snprintf(dst, sizeof dst, "%s/%s", to_dir, names[i]);
        if (access(src, F_OK) != 0) continue;
        size_t n;
        char *data = su_read_file(src, (size_t)1 << 31, &n, err);
        if (!data) return -1;
        int rc = su_write_file_atomic(dst, data, n, err);
        free(data);
        if (rc) return -1;
    }
    return 0;
}

const char *su_bytes(double bytes) {
    static char buf[32];
    return log_format_bytes(buf, sizeof buf, bytes);
}

long su_count_lines(const char *path) {
    size_t n = strlen(path);
    if ((n > 3 && !strcmp(path + n - 3, ".gz")) || (n > 4 && !strcmp(path + n - 4, ".zst")))
        return -1;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    static char buf[1 << 16];
    long lines = 0;
    ssize_t k;
    while ((k = read(fd, buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < k; i++) lines += buf[i] == '\n';
    close(fd);
    return k < 0 ? -1 : lines;
}

int su_parse_size(const char *text, const char *field, size_t *out, dp_err *err) {
    char *end, q[DP_QUOTE_CAP];
    errno = 0;
    double v = strtod(text, &end);
    while (*end == ' ') end++;
    static const struct { const char *unit; double mul; } units[] = {
        {"", 1}, {"b", 1}, {"k", 1e3}, {"kb", 1e3}, {"m", 1e6}, {"mb", 1e6}, {"g", 1e9},
        {"gb", 1e9}, {"t", 1e12}, {"tb", 1e12}, {"kib", 1024.0}, {"mib", 1048576.0},
        {"gib", 1073741824.0}, {"tib", 1099511627776.0}};
    int found = -1;
    for (size_t i = 0; i < sizeof units / sizeof *units && found < 0; i++)
        if (!strcasecmp(end, units[i].unit)) found = (int)i;
    if (end == text || errno || found < 0 || !(v > 0) || v * units[found].mul > 1e18)
        return dp_fail(err, "%s: expected a size like 4GiB, 512MiB or a byte count, got %s", field,
                       dp_quote(q, text, (size_t)-1));
    *out = (size_t)(v * units[found].mul);
    return 0;
}

int su_memory_limit(const config *c, size_t need, size_t *out, char *label, size_t cap,
                    dp_err *err) {
    const char *b = cfg_str(c, "memory.budget");
    *out = 0;
    if (b[0]) {
        snprintf(label, cap, "memory.budget %s", b);
        return su_parse_size(b, "memory.budget", out, err);
    }
    size_t machine = (size_t)sysconf(_SC_PHYS_PAGES) * (size_t)sysconf(_SC_PAGESIZE);
    if (need > machine / 10 * 9) {
        *out = machine / 10 * 9;
        snprintf(label, cap, "90%% of this machine's %s (no memory.budget set)", su_bytes((double)machine));
    }
    return 0;
}

void su_log_weights_read(const char *who, const model *m, long tokens) {
    uint64_t bytes;
    double secs;
    model_read_stats(m, &bytes, &secs);
    if (!bytes) return;
    su_log("%s: read %s of half-precision weights from the checkpoint in %.1f s (%.0f bytes per "
           "token)", who, su_bytes((double)bytes), secs, tokens > 0 ? (double)bytes / (double)tokens : 0.0);
}
