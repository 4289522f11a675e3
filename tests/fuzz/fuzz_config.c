/* fuzz_config — the pipeline.yaml loader (common/config/config.c, ytree.c) on
 * hostile YAML, and --set overrides.
 *
 * The input is written as DIR/pipeline.yaml and loaded. A config that loads
 * is dumped with cfg_to_yaml, the dump is loaded again and must dump to the
 * same text (paths in it are absolute, since DIR is), and a clone must dump
 * the same too. Then each of the input's first 8 lines is applied with
 * cfg_set to the defaults, as `--set LINE` would be, and the result dumped.
 * Properties: no crash, one-line errors, dump/load is a fixed point. */
#include "config.h"
#include "fuzz_common.h"

static void fuzz_cfg_walk(const config *c) {
    for (int k = 0; k < cfg_sweep_keys(c); k++) {
        FUZZ_ASSERT(cfg_sweep_key(c, k), "sweep key %d", k);
        for (int i = 0; i < cfg_sweep_len(c, k); i++)
            FUZZ_ASSERT(cfg_sweep_value(c, k, i), "sweep value %d %d", k, i);
    }
    (void)cfg_path(c);
}

int fuzz_config(const uint8_t *data, size_t size) {
    const char *path = fuzz_write("pipeline.yaml", data, size);
    config *c = NULL;
    dp_err err = {{0}};
    if (cfg_load(&c, path, NULL, 0, &err) == 0) {
        FUZZ_ASSERT(c, "cfg_load returned 0 without a config");
        fuzz_cfg_walk(c);
        char *y1 = cfg_to_yaml(c);
        FUZZ_ASSERT(y1, "cfg_to_yaml");
        config *cl = cfg_clone(c);
        FUZZ_ASSERT(cl, "cfg_clone");
        char *yc = cfg_to_yaml(cl);
        FUZZ_ASSERT(yc && strcmp(y1, yc) == 0, "clone dumps differently");
        free(yc);
        cfg_free(cl);
        const char *p2 = fuzz_write("dump.yaml", y1, strlen(y1));
        config *c2 = NULL;
        FUZZ_ASSERT(cfg_load(&c2, p2, NULL, 0, &err) == 0, "reloading the dump: %s\n%s", err.msg,
                    y1);
        char *y2 = cfg_to_yaml(c2);
        FUZZ_ASSERT(y2 && strcmp(y1, y2) == 0, "dump of the reloaded dump differs:\n%s\n---\n%s",
                    y1, y2 ? y2 : "(null)");
        free(y2);
        cfg_free(c2);
        free(y1);
        fuzz_unlink("dump.yaml");
        cfg_free(c);
    } else {
        FUZZ_ASSERT(c == NULL, "cfg_load failed but left a config");
        FUZZ_ASSERT_ONE_LINE(err);
    }
    fuzz_unlink("pipeline.yaml");

    /* --set LINE for the first lines of the input. */
    config *d = NULL;
    FUZZ_ASSERT(cfg_load(&d, NULL, NULL, 0, &err) == 0, "defaults: %s", err.msg);
    size_t pos = 0;
    for (int line = 0; line < 8 && pos < size; line++) {
        const uint8_t *nl = memchr(data + pos, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - (data + pos)) : size - pos;
        char *assign = malloc(len + 1);
        FUZZ_ASSERT(assign, "out of memory");
        memcpy(assign, data + pos, len);
        assign[len] = '\0';
        dp_err e2 = {{0}};
        if (cfg_set(d, assign, "--set", &e2)) FUZZ_ASSERT_ONE_LINE(e2);
        free(assign);
        pos += len + 1;
    }
    char *yd = cfg_to_yaml(d);
    FUZZ_ASSERT(yd, "cfg_to_yaml after --set");
    free(yd);
    cfg_free(d);
    return 0;
}

#ifdef DPOC_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return fuzz_config(data, size);
}
#endif
