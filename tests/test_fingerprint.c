/* test_fingerprint — the reference fingerprint changes when any input it
 * covers changes, and only then (moving the files changes nothing). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "fingerprint.h"

static char dir[64];

static void put(const char *name, const char *text) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static fp_inputs base(char *model, char *tok) {
    snprintf(model, 128, "%s/m", dir);
    snprintf(tok, 128, "%s/m/tokenizer.json", dir);
    fp_inputs in = {.model_dir = model, .tokenizer_path = tok, .format = "auto",
                    .chat_template = "chatml", .truncation = "keep_end", .max_length = 512,
                    .max_prompt_length = 256, .adds_bos = 0, .bos_id = -1, .eos_id = 2};
    return in;
}

static void fp(const fp_inputs *in, char out[33]) {
    fp_result r;
    dp_err err;
    int rc = fp_compute(in, &r, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc) return;
    snprintf(out, 33, "%s", r.fingerprint);
    fp_result_free(&r);
}

static void reset_files(void) {
    put("m/config.json", "{\"model_type\": \"gpt2\"}");
    put("m/model.safetensors", "weights-v1");
    put("m/tokenizer.json", "{\"model\": {}}");
    char path[256];
    snprintf(path, sizeof path, "%s/m/tokenizer_config.json", dir);
    unlink(path);
}

static void test_each_input_changes_it(void) {
    char model[128], tok[128], a[33] = "", b[33] = "";
    reset_files();
    fp_inputs in = base(model, tok);
    fp(&in, a);
    CHECK(strlen(a) == 32);
    fp(&in, b);
    CHECK_STR(a, b); /* deterministic */

    /* each setting */
    fp_inputs v = in; v.max_length = 511; fp(&v, b); CHECK(strcmp(a, b) != 0);
    v = in; v.max_prompt_length = 128; fp(&v, b); CHECK(strcmp(a, b) != 0);
    v = in; v.truncation = "keep_start"; fp(&v, b); CHECK(strcmp(a, b) != 0);
    v = in; v.chat_template = "llama3"; fp(&v, b); CHECK(strcmp(a, b) != 0);
    v = in; v.format = "standard"; fp(&v, b); CHECK(strcmp(a, b) != 0);
    v = in; v.adds_bos = 1; fp(&v, b); CHECK(strcmp(a, b) != 0);
    v = in; v.bos_id = 1; fp(&v, b); CHECK(strcmp(a, b) != 0);
    v = in; v.eos_id = 3; fp(&v, b); CHECK(strcmp(a, b) != 0);

    /* each file: weights, config.json, tokenizer.json, tokenizer_config.json */
    put("m/model.safetensors", "weights-v2"); fp(&in, b); CHECK(strcmp(a, b) != 0); reset_files();
    put("m/config.json", "{\"model_type\": \"llama\"}"); fp(&in, b); CHECK(strcmp(a, b) != 0); reset_files();
    put("m/tokenizer.json", "{\"model\": {\"x\": 1}}"); fp(&in, b); CHECK(strcmp(a, b) != 0); reset_files();
    put("m/tokenizer_config.json", "{}"); fp(&in, b); CHECK(strcmp(a, b) != 0); reset_files();
    /* a second shard */
    put("m/model-00002.safetensors", "more"); fp(&in, b); CHECK(strcmp(a, b) != 0);
    char path[256];
    snprintf(path, sizeof path, "%s/m/model-00002.safetensors", dir);
    unlink(path);
    /* unrelated files do not matter */
    put("m/README.md", "hello"); fp(&in, b); CHECK_STR(a, b);

    /* moving the directory changes nothing */
    char moved[128], cmd[400];
    snprintf(moved, sizeof moved, "%s/elsewhere", dir);
    snprintf(cmd, sizeof cmd, "cp -r %s/m %s", dir, moved);
    CHECK(system(cmd) == 0);
    char tok2[160];
    snprintf(tok2, sizeof tok2, "%s/tokenizer.json", moved);
    v = in; v.model_dir = moved; v.tokenizer_path = tok2; fp(&v, b); CHECK_STR(a, b);
}

static void test_explain_difference(void) {
    char model[128], tok[128], buf[512];
    reset_files();
    fp_inputs in = base(model, tok);
    fp_result r1, r2;
    dp_err err;
    CHECK(fp_compute(&in, &r1, &err) == 0);
    in.max_length = 256;
    put("m/model.safetensors", "weights-v3");
    CHECK(fp_compute(&in, &r2, &err) == 0);
    fp_explain_difference(r2.description, r1.description, buf, sizeof buf);
    CHECK_STR(buf, "model weights or config.json, data.max_length (256 here, 512 in the store)");
    fp_result_free(&r1);
    fp_result_free(&r2);
}

static void test_missing_inputs(void) {
    char model[128], tok[128];
    reset_files();
    fp_inputs in = base(model, tok);
    fp_result r;
    dp_err err;
    char nowhere[160];
    snprintf(nowhere, sizeof nowhere, "%s/none", dir);
    in.model_dir = nowhere;
    CHECK(fp_compute(&in, &r, &err) == -1);
    char want[300];
    snprintf(want, sizeof want, "%s: cannot open model directory: No such file or directory", nowhere);
    CHECK_STR(err.msg, want);
    put("empty/config.json", "{}");
    snprintf(nowhere, sizeof nowhere, "%s/empty", dir);
    in.model_dir = nowhere;
    CHECK(fp_compute(&in, &r, &err) == -1);
    snprintf(want, sizeof want, "%s: no .safetensors weights in the model directory", nowhere);
    CHECK_STR(err.msg, want);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/dpoc-fp-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    char cmd[200];
    snprintf(cmd, sizeof cmd, "mkdir -p %s/m %s/empty", dir, dir);
    if (system(cmd)) return 1;
    RUN(test_each_input_changes_it);
    RUN(test_explain_difference);
    RUN(test_missing_inputs);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) return 1;
    return check_summary();
}
