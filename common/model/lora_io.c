/* lora_io — adapters on disk in PEFT's layout (see model.h):
 * adapter_config.json and adapter_model.safetensors, tensors named
 * base_model.model.<module>.lora_A.weight [r, in] / .lora_B.weight [out, r].
 * Loading accepts what PEFT writes for plain LoRA and refuses, naming the
 * field, what it would silently compute wrong (DoRA, trained biases, rank or
 * alpha patterns, a regex target). */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model_internal.h"
#include "safetensors.h"

static void tensor_name(char *buf, size_t cap, const char *module, char ab) {
    snprintf(buf, cap, "base_model.model.%s.lora_%c.weight", module, ab);
}

int model_lora_save(const model *mc, const char *dir, const char *base_name, dp_err *err) {
    model *m = (model *)mc; /* lora_info hands out writable pointers; nothing is written */
    lora_set *s = model_lora_set(m);
    if (!s) return dp_fail(err, "%s: the model has no adapters to save", dir);
    if (mkdir(dir, 0777) && errno != EEXIST)
        return dp_fail(err, "%s: cannot create directory: %s", dir, strerror(errno));
    const model_lora_options *o = lora_options(s);
    const model_config *c = model_get_config(m);
    char targets[256];
    model_lora_target_names(c->model_type, o->targets, targets, sizeof targets);
    json_t *root = json_object(), *tm = json_array();
    for (char *tok = strtok(targets, ", "); tok; tok = strtok(NULL, ", "))
        json_array_append_new(tm, json_string(tok));
    json_object_set_new(root, "peft_type", json_string("LORA"));
    json_object_set_new(root, "task_type", json_string("CAUSAL_LM"));
    json_object_set_new(root, "base_model_name_or_path", json_string(base_name ? base_name : ""));
    json_object_set_new(root, "r", json_integer(o->r));
    json_object_set_new(root, "lora_alpha", json_real(o->alpha));
    json_object_set_new(root, "lora_dropout", json_real(o->dropout));
    json_object_set_new(root, "target_modules", tm);
    json_object_set_new(root, "bias", json_string("none"));
    json_object_set_new(root, "fan_in_fan_out", json_boolean(!strcmp(c->model_type, "gpt2")));
    json_object_set_new(root, "use_rslora", json_boolean(o->use_rslora));
    json_object_set_new(root, "use_dora", json_false());
    json_object_set_new(root, "modules_to_save", json_null());
    json_object_set_new(root, "init_lora_weights", json_true());
    json_object_set_new(root, "inference_mode", json_true());
    json_object_set_new(root, "rank_pattern", json_object());
    json_object_set_new(root, "alpha_pattern", json_object());
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int rc = json_dump_file(root, tmp, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(9));
    json_decref(root);
    if (rc || rename(tmp, path)) {
        remove(tmp);
        return dp_fail(err, "%s: cannot write: %s", path, strerror(errno));
    }
    int n = lora_count(s);
    st_write_tensor *ts = dp_calloc(2 * (size_t)n, sizeof *ts, err);
    char(*names)[160] = dp_calloc(2 * (size_t)n, sizeof *names, err);
    if (!ts || !names) {
        free(ts), free(names);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        lora_view_info v;
        lora_info(s, i, &v);
        tensor_name(names[2 * i], sizeof names[0], v.module, 'A');
        tensor_name(names[2 * i + 1], sizeof names[0], v.module, 'B');
        ts[2 * i] = (st_write_tensor){names[2 * i], 2, {o->r, v.in}, v.A};
        ts[2 * i + 1] = (st_write_tensor){names[2 * i + 1], 2, {v.out, o->r}, v.B};
    }
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    rc = st_write(path, ts, 2 * n, 0, err);
    free(ts), free(names);
    return rc;
}

/* ---- loading ---- */

static int read_config(const char *path, const model_config *c, model_lora_options *o,
                       dp_err *err) {
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) {
        if (access(path, F_OK) != 0)
            return dp_fail(err, "%s: cannot open: %s", path, strerror(errno));
        return dp_fail(err, "%s:%d: not JSON: %s", path, je.line, je.text);
    }
    int rc = -1;
    char q[DP_QUOTE_CAP];
    json_t *v;
    memset(o, 0, sizeof *o);
    if (!json_is_object(root)) {
        dp_fail(err, "%s: expected a JSON object", path);
        goto done;
    }
    v = json_object_get(root, "peft_type");
    if (!json_is_string(v) || strcmp(json_string_value(v), "LORA")) {
        dp_fail(err, "%s: peft_type: expected \"LORA\"", path);
        goto done;
    }
    v = json_object_get(root, "r");
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65536) {
        dp_fail(err, "%s: r: expected an integer in [1, 65536]", path);
        goto done;
    }
    o->r = (int)json_integer_value(v);
    v = json_object_get(root, "lora_alpha");
    o->alpha = json_is_number(v) ? (float)json_number_value(v) : 8.0f; /* PEFT's default */
    if (v && !json_is_number(v)) {
        dp_fail(err, "%s: lora_alpha: expected a number", path);
        goto done;
    }
    o->use_rslora = json_is_true(json_object_get(root, "use_rslora"));
    v = json_object_get(root, "bias");
    if (v && !json_is_null(v) && (!json_is_string(v) || strcmp(json_string_value(v), "none"))) {
        dp_fail(err, "%s: bias: only \"none\" is supported", path);
        goto done;
    }
    if (json_is_true(json_object_get(root, "use_dora"))) {
        dp_fail(err, "%s: use_dora: DoRA adapters are not supported", path);
        goto done;
    }
    static const char *const patterns[] = {"rank_pattern", "alpha_pattern"};
    for (int i = 0; i < 2; i++) {
        v = json_object_get(root, patterns[i]);
        if (v && !json_is_null(v) && (!json_is_object(v) || json_object_size(v))) {
            dp_fail(err, "%s: %s: per-module ranks and alphas are not supported", path,
                    patterns[i]);
            goto done;
        }
    }
    v = json_object_get(root, "modules_to_save");
    if (v && !json_is_null(v) && (!json_is_array(v) || json_array_size(v))) {
        dp_fail(err, "%s: modules_to_save: fully trained modules are not supported", path);
        goto done;
    }
    v = json_object_get(root, "target_modules");
    const char *names[64];
    int n = 0;
    if (json_is_string(v)) {
        if (strcmp(json_string_value(v), "all-linear")) {
            dp_fail(err, "%s: target_modules: the regular expression %s is not supported; list "
                         "the module names", path, dp_quote(q, json_string_value(v), (size_t)-1));
            goto done;
        }
        names[n++] = "all-linear";
    } else if (json_is_array(v) && json_array_size(v) <= 64) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
            if (!json_is_string(e)) {
                dp_fail(err, "%s: target_modules: expected module names", path);
                goto done;
            }
            names[n++] = json_string_value(e);
        }
    } else {
        dp_fail(err, "%s: target_modules: expected a list of module names", path);
        goto done;
    }
    if (model_lora_parse_targets(c->model_type, names, n, &o->targets, err)) {
        dp_context(err, "%s", path);
        goto done;
    }
    rc = 0;
done:
    json_decref(root);
    return rc;
}

int model_lora_load(model *m, const char *dir, dp_err *err) {
    char path[4096], file[4096];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    model_lora_options o;
    if (read_config(path, model_get_config(m), &o, err)) return -1;
    const model_lora_options *have = model_lora(m);
    if (have) {
        if (have->r != o.r || have->targets != o.targets)
            return dp_fail(err, "%s: r and target_modules must be the run's (r %d)", path, have->r);
    } else if (model_lora_add(m, &o, err)) {
        return -1;
    }
    lora_set *s = model_lora_set(m);
    snprintf(file, sizeof file, "%s/adapter_model.safetensors", dir);
    st_set *st;
    if (access(file, F_OK) != 0) return dp_fail(err, "%s: cannot open: %s", file, strerror(errno));
    if (st_open(&st, file, err)) return -1;
    int rc = 0, used = 0;
    char q[DP_QUOTE_CAP];
    for (int i = 0; i < lora_count(s) && !rc; i++) {
        lora_view_info v;
        lora_info(s, i, &v);
        for (int ab = 0; ab < 2 && !rc; ab++) {
            char name[160];
            tensor_name(name, sizeof name, v.module, ab ? 'B' : 'A');
            const st_tensor *t = st_find(st, name);
            int64_t d0 = ab ? v.out : o.r, d1 = ab ? o.r : v.in;
            if (!t) {
                rc = dp_fail(err, "%s: tensor %s: missing (target_modules lists it)", file, name);
            } else if (t->ndim != 2 || t->shape[0] != d0 || t->shape[1] != d1) {
                rc = dp_fail(err, "%s: tensor %s: expected shape [%lld, %lld] (r %d), found %s%lld, %lld]",
                             file, name, (long long)d0, (long long)d1, o.r, t->ndim == 2 ? "[" : "a non-matrix [",
                             (long long)t->shape[0], (long long)(t->ndim > 1 ? t->shape[1] : 0));
            } else if (!(rc = st_to_f32(t, ab ? v.B : v.A, err))) {
                size_t numel = (size_t)d0 * (size_t)d1;
                const float *x = ab ? v.B : v.A;
                for (size_t k = 0; k < numel && !rc; k++)
                    if (!isfinite(x[k]))
                        rc = dp_fail(err, "%s: tensor %s: element %zu is not finite", file, name, k);
                used++;
            }
        }
    }
    if (!rc && used != st_count(st))
        for (int i = 0; i < st_count(st) && !rc; i++) {
            const char *name = st_get(st, i)->name;
            int known = 0;
            for (int j = 0; j < lora_count(s) && !known; j++) {
                lora_view_info v;
                lora_info(s, j, &v);
                char a[160], b[160];
                tensor_name(a, sizeof a, v.module, 'A');
                tensor_name(b, sizeof b, v.module, 'B');
                known = !strcmp(name, a) || !strcmp(name, b);
            }
            if (!known)
                rc = dp_fail(err, "%s: tensor %s: not an adapter of a target of this %s model", file,
                             dp_label(q, name), model_get_config(m)->model_type);
        }
    st_close(st);
    return rc;
}
