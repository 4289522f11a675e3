/* fingerprint — see fingerprint.h. */
#include "fingerprint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

static void hex128(XXH128_hash_t h, char out[33]) {
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)h.high64,
             (unsigned long long)h.low64);
}

/* Feeds the bytes of PATH into st. A missing file is an error unless
 * optional (then the absence itself is hashed). */
static int hash_file(XXH3_state_t *st, const char *path, int optional, dp_err *err) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        if (optional && errno == ENOENT) return XXH3_128bits_update(st, "absent", 6), 0;
        return dp_fail(err, "%s: cannot open: %s", path, strerror(errno));
    }
    static __thread char buf[1 << 20];
    for (;;) {
        ssize_t k = read(fd, buf, sizeof buf);
        if (k < 0) {
            close(fd);
            return dp_fail(err, "%s: read error: %s", path, strerror(errno));
        }
        if (k == 0) break;
        XXH3_128bits_update(st, buf, (size_t)k);
    }
    close(fd);
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* config.json plus every *.safetensors / *.json index in the directory, in
 * name order. */
static int hash_model(const char *dir, char out[33], dp_err *err) {
    DIR *d = opendir(dir);
    if (!d) return dp_fail(err, "%s: cannot open model directory: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        int weights = len > 12 && !strcmp(e->d_name + len - 12, ".safetensors");
        int index = !strcmp(e->d_name, "model.safetensors.index.json");
        if (!weights && !index) continue;
        char **grown = realloc(names, (n + 1) * sizeof *names);
        if (!grown || !(grown[n] = strdup(e->d_name))) {
            names = grown ? grown : names;
            rc = dp_fail(err, "out of memory");
            break;
        }
        names = grown;
        n++;
    }
    closedir(d);
    if (!rc && n == 0) rc = dp_fail(err, "%s: no .safetensors weights in the model directory", dir);
    XXH3_state_t *st = XXH3_createState();
    if (!rc && !st) rc = dp_fail(err, "out of memory");
    if (!rc) {
        XXH3_128bits_reset(st);
        char path[4096];
        snprintf(path, sizeof path, "%s/config.json", dir);
        rc = hash_file(st, path, 0, err);
        qsort(names, n, sizeof *names, cmp_str);
        for (size_t i = 0; !rc && i < n; i++) {
            XXH3_128bits_update(st, names[i], strlen(names[i]) + 1);
            snprintf(path, sizeof path, "%s/%s", dir, names[i]);
            rc = hash_file(st, path, 0, err);
        }
        if (!rc) hex128(XXH3_128bits_digest(st), out);
    }
    XXH3_freeState(st);
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

static int hash_tokenizer(const char *path, char out[33], dp_err *err) {
    XXH3_state_t *st = XXH3_createState();
    if (!st) return dp_fail(err, "out of memory");
    XXH3_128bits_reset(st);
    int rc = hash_file(st, path, 0, err);
    if (!rc) {
        char cfg[4096];
        const char *slash = strrchr(path, '/');
        snprintf(cfg, sizeof cfg, "%.*stokenizer_config.json", slash ? (int)(slash - path + 1) : 0,
                 path);
        rc = hash_file(st, cfg, 1, err);
    }
    if (!rc) hex128(XXH3_128bits_digest(st), out);
    XXH3_freeState(st);
    return rc;
}

int fp_compute(const fp_inputs *in, fp_result *out, dp_err *err) {
    char model_hash[33], tok_hash[33];
    memset(out, 0, sizeof *out);
    if (hash_model(in->model_dir, model_hash, err)) return -1;
    if (hash_tokenizer(in->tokenizer_path, tok_hash, err)) return -1;
    /* Paths stay out: shards computed on machines with other paths merge. */
    json_t *h = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:b, s:i, s:i}",
                          "engine", FP_ENGINE_VERSION, "model", model_hash, "tokenizer", tok_hash,
                          "format", in->format, "chat_template", in->chat_template, "truncation",
                          in->truncation, "max_length", (json_int_t)in->max_length,
                          "max_prompt_length", (json_int_t)in->max_prompt_length, "adds_bos",
                          in->adds_bos, "bos_id", in->bos_id, "eos_id", in->eos_id);
    if (!h) return dp_fail(err, "out of memory");
    char *canon = json_dumps(h, JSON_SORT_KEYS | JSON_COMPACT);
    if (!canon) {
        json_decref(h);
        return dp_fail(err, "out of memory");
    }
    hex128(XXH3_128bits(canon, strlen(canon)), out->fingerprint);
    json_decref(h);
    out->description = canon;
    return 0;
}

void fp_result_free(fp_result *r) {
    free(r->description);
    r->description = NULL;
}

void fp_explain_difference(const char *ours, const char *theirs, char *buf, size_t size) {
    static const struct { const char *key, *label; } fields[] = {
        {"engine", "engine version"},       {"model", "model weights or config.json"},
        {"tokenizer", "tokenizer files"},   {"format", "data.format"},
        {"chat_template", "data.chat_template"}, {"truncation", "data.truncation"},
        {"max_length", "data.max_length"},  {"max_prompt_length", "data.max_prompt_length"},
        {"adds_bos", "BOS policy"},         {"bos_id", "BOS id"},
        {"eos_id", "EOS id"},
    };
    json_t *a = json_loads(ours, 0, NULL), *b = json_loads(theirs, 0, NULL);
    size_t k = 0;
    buf[0] = '\0';
    for (size_t i = 0; a && b && i < sizeof fields / sizeof fields[0] && k + 1 < size; i++) {
        json_t *x = json_object_get(a, fields[i].key), *y = json_object_get(b, fields[i].key);
        if (x && y && json_equal(x, y)) continue;
        char *xs = x ? json_dumps(x, JSON_ENCODE_ANY) : NULL;
        char *ys = y ? json_dumps(y, JSON_ENCODE_ANY) : NULL;
        int hashed = !strcmp(fields[i].key, "model") || !strcmp(fields[i].key, "tokenizer");
        if (hashed)
            k += (size_t)snprintf(buf + k, size - k, "%s%s", k ? ", " : "", fields[i].label);
        else
            k += (size_t)snprintf(buf + k, size - k, "%s%s (%s here, %s in the store)",
                                  k ? ", " : "", fields[i].label, xs ? xs : "none",
                                  ys ? ys : "none");
        free(xs);
        free(ys);
    }
    if (k >= size) buf[size - 1] = '\0';
    if (!buf[0]) snprintf(buf, size, "the reference description");
    json_decref(a);
    json_decref(b);
}
