/* test_config — the pipeline.yaml loader: values, defaults, overrides, and
 * the exact one-line error for each kind of mistake. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "ytree.h"

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
              "p.yaml:2:15: train.batch_size: expected an integer in [1, 1000000], got 2.5");
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
              "--set #1: data.max_length: expected an integer in [2, 1048576], got 1000000000000");
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
         "p.yaml:2:15: train.batch_size: expected an integer in [1, 1000000], got "
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

/* ---- every bound of the schema: documented and enforced ------------------ */

/* The number --explain prints after MARK in TYPE_LINE ("[" for a min in an
 * interval, ">= " alone, ", " for the upper end...), or NAN when absent. */
static double bound_after(const char *type_line, const char *mark) {
    const char *p = strstr(type_line, mark);
    return p ? strtod(p + strlen(mark), NULL) : NAN;
}

/* 0 if --set KEY=V is accepted on the defaults, else -1 (-2: the defaults
 * did not load); MSG gets the message ("" when accepted). */
static int try_set(const char *key, double v, int is_int, char *msg, size_t cap) {
    config *c = NULL;
    dp_err err;
    if (cfg_load(&c, NULL, NULL, 0, &err)) {
        snprintf(msg, cap, "%s", err.msg);
        return -2;
    }
    char set[256];
    if (is_int) snprintf(set, sizeof set, "%s=%.0f", key, v);
    else snprintf(set, sizeof set, "%s=%.17g", key, v);
    int rc = cfg_set(c, set, "test", &err);
    snprintf(msg, cap, "%s", rc ? err.msg : "");
    cfg_free(c);
    return rc;
}

/* The "type: ..." line --explain prints for KEY (static buffer; "" if none). */
static const char *explain_type_line(const char *explain, const char *key) {
    static char line[512];
    char head[300];
    snprintf(head, sizeof head, "\n%s\n", key);
    const char *p = strstr(explain, head);
    if (!p && !strncmp(explain, head + 1, strlen(head + 1))) p = explain - 1;
    line[0] = '\0';
    if (!p) return line;
    p = strstr(p + strlen(head), "    type: ");
    if (!p) return line;
    p += strlen("    type: ");
    const char *end = strstr(p, "; default:");
    if (end) snprintf(line, sizeof line, "%.*s", (int)(end - p), p);
    return line;
}

/* Walks the schema file: for every leaf with min/max/gt/lt, --explain
 * must print exactly that bound, the loader must accept the value at a
 * min/max (refuse it at a gt/lt) and refuse the value just past it, with
 * the message naming the same range --explain prints. */
static void check_bounds(const ynode *map, const char *prefix, const char *explain, int *n_bounds) {
    static const struct { const char *name, *alone, *in_interval; int upper, exclusive; } kinds[] = {
        {"min", ">= ", "[", 0, 0}, {"gt", "> ", "(", 0, 1},
        {"max", "<= ", ", ", 1, 0}, {"lt", "< ", ", ", 1, 1},
    };
    for (int i = 0; i + 1 < map->n; i += 2) {
        const ynode *k = map->items[i], *v = map->items[i + 1];
        char key[256];
        snprintf(key, sizeof key, "%s%s%s", prefix, *prefix ? "." : "", k->text);
        if (v->kind != YN_MAP) continue;
        const ynode *type = ytree_get(v, "type");
        if (!type) {
            check_bounds(v, key, explain, n_bounds);
            continue;
        }
        int is_int = !strcmp(type->text, "int");
        const char *line = explain_type_line(explain, key);
        CHECK_MSG(line[0], "%s: no type line in --explain", key);
        int has_lower = ytree_get(v, "min") || ytree_get(v, "gt");
        int has_upper = ytree_get(v, "max") || ytree_get(v, "lt");
        for (size_t j = 0; j < sizeof kinds / sizeof kinds[0]; j++) {
            const ynode *b = ytree_get(v, kinds[j].name);
            if (!b) continue;
            (*n_bounds)++;
            double bound = strtod(b->text, NULL);
            /* documented: in an interval when both sides are bounded */
            int both = has_lower && has_upper;
            const char *mark = both ? kinds[j].in_interval : kinds[j].alone;
            double shown = bound_after(line, mark);
            CHECK_MSG(shown == bound, "%s: %s %s, --explain says \"%s\"", key, kinds[j].name,
                      b->text, line);
            if (both && kinds[j].upper) {
                char close = kinds[j].exclusive ? ')' : ']';
                CHECK_MSG(line[strlen(line) - 1] == close, "%s: %s %s, --explain says \"%s\"", key,
                          kinds[j].name, b->text, line);
            }
            if (both && !kinds[j].upper)
                CHECK_MSG(strstr(line, kinds[j].exclusive ? " in (" : " in [") != NULL,
                          "%s: %s %s, --explain says \"%s\"", key, kinds[j].name, b->text, line);
            /* enforced: at the bound, and one step past it (outward) */
            double step = is_int ? 1 : (fabs(bound) > 1 ? fabs(bound) * 1e-9 : 1e-9);
            double past = kinds[j].upper ? bound + step : bound - step;
            double inside = kinds[j].upper ? bound - step : bound + step;
            char msg[1024], want[1200];
            CHECK_MSG(try_set(key, kinds[j].exclusive ? inside : bound, is_int, msg, sizeof msg) == 0,
                      "%s: %s %s: refused: %s", key, kinds[j].name, b->text, msg);
            CHECK_MSG(try_set(key, kinds[j].exclusive ? bound : past, is_int, msg, sizeof msg) == -1,
                      "%s: %s %s: a value past it was accepted", key, kinds[j].name, b->text);
            snprintf(want, sizeof want, "test: %s: expected %s, got ", key, line);
            CHECK_MSG(!strncmp(msg, want, strlen(want)), "%s: message [%s], expected it to start [%s]",
                      key, msg, want);
        }
    }
}

static void test_schema_bounds_explained_and_enforced(void) {
    size_t len = 0;
    FILE *f = fopen("schemas/pipeline.schema.yaml", "rb");
    CHECK_MSG(f != NULL, "schemas/pipeline.schema.yaml: run from the repository root");
    if (!f) return;
    char *text = malloc(1 << 20);
    len = fread(text, 1, (1 << 20) - 1, f);
    fclose(f);
    ynode *tree = NULL;
    dp_err err;
    CHECK(ytree_parse("schema", text, len, &tree, &err) == 0);
    char *explain = cfg_explain();
    int n_bounds = 0;
    if (tree && explain) check_bounds(tree, "", explain, &n_bounds);
    CHECK_MSG(n_bounds >= 80, "only %d bounds found in the schema", n_bounds);
    free(explain);
    ytree_free(tree);
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
    RUN(test_schema_bounds_explained_and_enforced);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) return 1;
    return check_summary();
}
