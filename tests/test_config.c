/* test_config — the pipeline.yaml loader: values, defaults, overrides, and
 * the exact one-line error for each kind of mistake. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "config.h"

static char dir[64];

/* Writes TEXT to dir/NAME and returns the path (static buffer). */
static const char *write_file(const char *name, const char *text) {
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

/* Loads TEXT and returns the error message with the directory stripped
 * ("" on success). */
static const char *load_error(const char *text, const char *set) {
    static char msg[1024];
    const char *path = write_file("p.yaml", text);
    config *c = NULL;
    dp_err err;
    const char *sets[1] = {set};
    int rc = cfg_load(&c, path, sets, set ? 1 : 0, &err);
    cfg_free(c);
    if (rc == 0) return "";
    const char *m = err.msg;
    if (!strncmp(m, dir, strlen(dir))) m += strlen(dir) + 1;
    snprintf(msg, sizeof msg, "%s", m);
    return msg;
}

static void test_defaults(void) {
    config *c;
    dp_err err;
    CHECK(cfg_load(&c, NULL, NULL, 0, &err) == 0);
    CHECK_NEAR(cfg_num(c, "train.beta"), 0.1, 0);
    CHECK(cfg_int(c, "train.batch_size") == 8);
    CHECK_STR(cfg_str(c, "train.optimizer"), "adamw");
    CHECK(cfg_bool(c, "precompute.prefix_sharing") == 1);
    CHECK(cfg_list_len(c, "train.loss") == 1);
    CHECK_STR(cfg_list_str(c, "train.loss", 0), "sigmoid");
    CHECK(cfg_list_len(c, "train.loss_weights") == 0);
    CHECK_STR(cfg_str(c, "data.eval"), "");
    CHECK(cfg_sweep_keys(c) == 0);
    cfg_free(c);
}

static void test_values_and_relative_paths(void) {
    const char *path = write_file("v.yaml",
                                  "store: s.sqlite\n"
                                  "reference: {model: /abs/model}\n"
                                  "data:\n  train: d/train.jsonl\n  truncation: keep_start\n"
                                  "train:\n  beta: 0.25\n  loss: [sigmoid, sft]\n"
                                  "  loss_weights: [1, 0.5]\n  shuffle: false\n  max_steps: 7\n"
                                  "sweep:\n  train.beta: [0.05, 0.5]\n  train.learning_rate: [1e-6]\n");
    config *c;
    dp_err err;
    CHECK(cfg_load(&c, path, NULL, 0, &err) == 0);
    char want[160];
    snprintf(want, sizeof want, "%s/s.sqlite", dir);
    CHECK_STR(cfg_str(c, "store"), want);
    snprintf(want, sizeof want, "%s/d/train.jsonl", dir);
    CHECK_STR(cfg_str(c, "data.train"), want);
    CHECK_STR(cfg_str(c, "reference.model"), "/abs/model");
    snprintf(want, sizeof want, "%s/runs/dpo", dir); /* default path, relative to the file */
    CHECK_STR(cfg_str(c, "train.output"), want);
    CHECK_STR(cfg_str(c, "data.truncation"), "keep_start");
    CHECK_NEAR(cfg_num(c, "train.beta"), 0.25, 0);
    CHECK(cfg_list_len(c, "train.loss") == 2);
    CHECK_STR(cfg_list_str(c, "train.loss", 1), "sft");
    CHECK_NEAR(cfg_list_num(c, "train.loss_weights", 1), 0.5, 0);
    CHECK(cfg_bool(c, "train.shuffle") == 0);
    CHECK(cfg_int(c, "train.max_steps") == 7);
    CHECK(cfg_sweep_keys(c) == 2);
    CHECK_STR(cfg_sweep_key(c, 0), "train.beta");
    CHECK(cfg_sweep_len(c, 0) == 2);
    CHECK_STR(cfg_sweep_value(c, 0, 1), "0.5");
    /* overrides and clones */
    config *d = cfg_clone(c);
    CHECK(d != NULL);
    CHECK(cfg_set(d, "train.beta=0.5", "sweep", &err) == 0);
    CHECK_NEAR(cfg_num(d, "train.beta"), 0.5, 0);
    CHECK_NEAR(cfg_num(c, "train.beta"), 0.25, 0);
    CHECK(cfg_set(d, "train.loss=ipo", "--set", &err) == 0);
    CHECK(cfg_list_len(d, "train.loss") == 1);
    CHECK_STR(cfg_list_str(d, "train.loss", 0), "ipo");
    CHECK(cfg_set(d, "data.eval=", "--set", &err) == 0);
    CHECK_STR(cfg_str(d, "data.eval"), "");
    /* the printed YAML loads back to the same values */
    char *yaml = cfg_to_yaml(d);
    CHECK(yaml != NULL);
    const char *again = write_file("again.yaml", yaml);
    config *e;
    CHECK(cfg_load(&e, again, NULL, 0, &err) == 0);
    char *yaml2 = cfg_to_yaml(e);
    CHECK_STR(yaml2, yaml);
    free(yaml);
    free(yaml2);
    cfg_free(e);
    cfg_free(d);
    cfg_free(c);
}

static void test_errors(void) {
    CHECK_STR(load_error("train:\n  beta: fast\n", NULL),
              "p.yaml:2:9: train.beta: expected a number > 0, got \"fast\"");
    CHECK_STR(load_error("train:\n  beta: 0\n", NULL),
              "p.yaml:2:9: train.beta: expected a number > 0, got 0");
    CHECK_STR(load_error("train:\n  bta: 0.1\n", NULL),
              "p.yaml:2:3: train.bta: unknown key; did you mean train.beta?");
    CHECK_STR(load_error("trian:\n  beta: 0.1\n", NULL),
              "p.yaml:1:1: trian: unknown key; did you mean train.init?");
    CHECK_STR(load_error("zzzzzz: 1\n", NULL),
              "p.yaml:1:1: zzzzzz: unknown key (dpoc config --explain lists them)");
    CHECK_STR(load_error("train:\n  batch_size: 2.5\n", NULL),
              "p.yaml:2:15: train.batch_size: expected an integer >= 1, got 2.5");
    CHECK_STR(load_error("train:\n  label_smoothing: 1\n", NULL),
              "p.yaml:2:20: train.label_smoothing: expected a number in [0, 1), got 1");
    CHECK_STR(load_error("train:\n  optimizer: adam\n", NULL),
              "p.yaml:2:14: train.optimizer: expected one of adamw, sgd, got \"adam\"");
    CHECK_STR(load_error("train:\n  shuffle: maybe\n", NULL),
              "p.yaml:2:12: train.shuffle: expected true or false, got \"maybe\"");
    CHECK_STR(load_error("train:\n  loss: [sigmoid, dpo]\n", NULL),
              "p.yaml:2:19: train.loss: expected one of sigmoid, robust, ipo, hinge, exo_pair, "
              "nca_pair, bco_pair, sppo_hard, apo_zero, apo_down, sigmoid_norm, discopop, simpo, "
              "sft, got \"dpo\"");
    CHECK_STR(load_error("train: 3\n", NULL),
              "p.yaml:1:8: train: expected a section (a mapping), got \"3\"");
    CHECK_STR(load_error("train:\n  beta: [1\n", NULL),
              "p.yaml:3:1: invalid YAML: did not find expected ',' or ']'");
    CHECK_STR(load_error("a: &x [1, 2]\nb: [*x, *x]\n", NULL),
              "p.yaml:2:5: YAML aliases are not supported (use plain values)");
    CHECK_STR(load_error("sweep:\n  train.bta: [1]\n", NULL),
              "p.yaml:2:3: sweep: unknown key train.bta to sweep over");
    CHECK_STR(load_error("sweep:\n  train.beta: [0.1, -2]\n", NULL),
              "p.yaml:2:21: train.beta: expected a number > 0, got -2");
    CHECK_STR(load_error("", "train.beta=fast"),
              "--set #1: train.beta: expected a number > 0, got \"fast\"");
    CHECK_STR(load_error("", "train.betta=1"),
              "--set #1: train.betta: unknown key; did you mean train.beta?");
    CHECK_STR(load_error("", "train.beta"), "--set #1: expected key=value, got \"train.beta\"");
    CHECK_STR(load_error("", "data.max_length=1000000000000"),
              "--set #1: data.max_length: expected an integer <= 1048576, got 1000000000000");
    CHECK_STR(load_error("train:\n  learning_rate: 1e300\n", NULL),
              "p.yaml:2:18: train.learning_rate: expected a number in (0, 10], got 1e300");
    CHECK_STR(load_error("train:\n  beta: 0.1\n  beta: 0.2\n", NULL),
              "p.yaml:3:3: train.beta: given twice (first at line 2)");
    char deep[200] = "";
    for (int i = 0; i < 40; i++) strcat(deep, "[");
    CHECK_STR(load_error(deep, NULL), "p.yaml:1:33: nesting deeper than 32 levels");
}

/* Each case: YAML text, one --set (or NULL), the message expected. */
typedef struct error_case {
    const char *yaml, *set, *want;
} error_case;

static void check_errors(const error_case *cases, size_t n) {
    for (size_t i = 0; i < n; i++) CHECK_STR(load_error(cases[i].yaml, cases[i].set), cases[i].want);
}

/* Text from the file or the command line never breaks the message's line:
 * it is quoted and escaped (dp_quote), and the one-line guard in dp_fail
 * catches the rest. */
static void test_untrusted_text_quoted(void) {
    static const error_case cases[] = {
        {"train:\n  beta: \"x\\ny\\u001b\"\n", NULL,
         "p.yaml:2:9: train.beta: expected a number > 0, got \"x\\ny\\x1b\""},
        {"train:\n  \"a\\nb\": 1\n", NULL,
         "p.yaml:2:3: \"train.a\\nb\": unknown key (dpoc config --explain lists them)"},
        {"train:\n  optimizer: \"adam\\r\\u0085\"\n", NULL,
         "p.yaml:2:14: train.optimizer: expected one of adamw, sgd, got \"adam\\r\\xc2\\x85\""},
        {"sweep:\n  \"x\\ty\": [1]\n", NULL,
         "p.yaml:2:3: sweep: unknown key \"x\\ty\" to sweep over"},
        {"sweep:\n  train.beta: 5\n", NULL,
         "p.yaml:2:15: sweep.train.beta: expected a non-empty list of values, got \"5\""},
        {"sweep:\n  train.beta: [[1]]\n", NULL,
         "p.yaml:2:16: train.beta: expected a number > 0, got a list"},
        {"", "train.b\nta=1",
         "--set #1: \"train.b\\nta\": unknown key; did you mean train.beta?"},
        {"", "train.output\n",
         "--set #1: expected key=value, got \"train.output\\n\""},
        /* a number is shown as written, cut after 40 characters */
        {"train:\n  batch_size: 2.00000000000000000000000000000000000000000000000001\n", NULL,
         "p.yaml:2:15: train.batch_size: expected an integer >= 1, got "
         "2.00000000000000000000000000000000000000..."},
        /* a long value is cut after 60 characters */
        {"", "train.optimizer=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
         "--set #1: train.optimizer: expected one of adamw, sgd, got "
         "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"..."},
    };
    check_errors(cases, sizeof cases / sizeof cases[0]);
}

/* Invalid UTF-8 (and control characters) are found by libyaml's reader,
 * which gives a byte offset and no line: the message names the line and
 * column of the first bad byte. */
static void test_yaml_reader_errors(void) {
    static const error_case cases[] = {
        {"train:\n  beta: 0.1\n  output: \"r\xff\"\n", NULL,
         "p.yaml:3:13: invalid YAML: invalid UTF-8 (byte 0xff)"},
        /* a sequence cut short by a quote: the lead byte is at fault (é is one column) */
        {"a: 1\nb: \"\xc3\xa9\xe2\x82\"\n", NULL,
         "p.yaml:2:6: invalid YAML: invalid UTF-8 (byte 0xe2)"},
        {"\xef\xbb\xbftrain: {beta: \xc0\xaf}\n", NULL,
         "p.yaml:1:15: invalid YAML: invalid UTF-8 (byte 0xc0)"},
        {"train:\n  beta: \x01\n", NULL,
         "p.yaml:2:9: invalid YAML: control characters are not allowed (U+0001)"},
        {"", "train.output=r\xff",
         "--set #1: train.output: invalid YAML: invalid UTF-8 (byte 0xff)"},
    };
    check_errors(cases, sizeof cases / sizeof cases[0]);
}

/* Each --set names its position among the --set options. */
static void test_set_position(void) {
    static const struct {
        const char *sets[3];
        int n;
        const char *want;
    } cases[] = {
        {{"train.beta=0.2", "train.loss=[sigmoid]", "train.beta=abc"}, 3,
         "--set #3: train.beta: expected a number > 0, got \"abc\""},
        {{"train.beta=0.2", "train.beta=[1"}, 2,
         "--set #2: train.beta: invalid YAML: did not find expected ',' or ']'"},
        {{"data.format=standard", "train.beta=&a 1", "train.beta=*a"}, 3,
         "--set #3: train.beta: YAML aliases are not supported (use plain values)"},
        {{"train.beta=0.2", "=1"}, 2, "--set #2: expected key=value, got \"=1\""},
    };
    config *c = NULL;
    dp_err err;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK(cfg_load(&c, NULL, cases[i].sets, cases[i].n, &err) == -1 && c == NULL);
        CHECK_STR(err.msg, cases[i].want);
    }
    /* a sweep point names its origin the same way */
    CHECK(cfg_load(&c, NULL, NULL, 0, &err) == 0);
    CHECK(cfg_set(c, "train.loss=[sigmoid, dpo]", "sweep", &err) == -1);
    CHECK_STR(err.msg, "sweep: train.loss: expected one of sigmoid, robust, ipo, hinge, exo_pair, "
                       "nca_pair, bco_pair, sppo_hard, apo_zero, apo_down, sigmoid_norm, discopop, "
                       "simpo, sft, got \"dpo\"");
    cfg_free(c);
}

static void test_missing_file(void) {
    config *c;
    dp_err err;
    CHECK(cfg_load(&c, "/nonexistent/pipeline.yaml", NULL, 0, &err) == -1);
    CHECK_STR(err.msg, "/nonexistent/pipeline.yaml: cannot open: No such file or directory");
}

static void test_explain_lists_every_key(void) {
    char *text = cfg_explain();
    CHECK(text != NULL);
    const char *keys[] = {"store\n", "reference.model\n", "data.max_length\n", "train.beta\n",
                          "train.loss\n", "sweep\n", "precompute.batch_tokens\n"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        CHECK_MSG(strstr(text, keys[i]) != NULL, "missing %s", keys[i]);
    CHECK(strstr(text, "type: a number > 0; default: 0.1") != NULL);
    free(text);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/dpoc-config-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    RUN(test_defaults);
    RUN(test_values_and_relative_paths);
    RUN(test_errors);
    RUN(test_untrusted_text_quoted);
    RUN(test_yaml_reader_errors);
    RUN(test_set_position);
    RUN(test_missing_file);
    RUN(test_explain_lists_every_key);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) return 1;
    return check_summary();
}
