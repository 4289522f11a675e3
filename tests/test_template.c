/* test_template — the Jinja interpreter's contract (common/template:
 * tmpl_parse, tmpl_render with its bounds and one-line errors), the
 * special-token resolution of tok_special.c (tokenizer.h), and the
 * dataset's use of a model template (ds_chat_row, ds_tokenize's TRL rule).
 * Exact renders of real templates against python3-jinja2 are
 * tests/e2e_template.sh's; here, goldens written by hand from Jinja's
 * documented behaviour. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "dataset.h"
#include "template.h"
#include "tokenizer.h"

/* Renders SRC with VARS (JSON text); returns the malloc'd output or NULL
 * with err. */
static char *render(const char *src, const char *vars_json, dp_err *err) {
    tmpl *t;
    if (tmpl_parse(&t, src, strlen(src), err)) return NULL;
    json_t *vars = json_loads(vars_json, 0, NULL);
    char *out = NULL;
    size_t len;
    int rc = tmpl_render(t, vars, NULL, &out, &len, err);
    json_decref(vars);
    tmpl_free(t);
    return rc ? NULL : out;
}

static void expect(const char *src, const char *vars, const char *want) {
    dp_err err = {{0}};
    char *got = render(src, vars, &err);
    CHECK_MSG(got != NULL, "%s: %s", src, err.msg);
    if (got) CHECK_STR(got, want);
    free(got);
}

static void expect_error(const char *src, const char *want) {
    dp_err err = {{0}};
    char *got = render(src, "{}", &err);
    CHECK_MSG(got == NULL, "%s rendered %s", src, got ? got : "");
    free(got);
    CHECK_STR(err.msg, want);
    CHECK(strchr(err.msg, '\n') == NULL);
}

static void test_whitespace(void) {
    /* trim_blocks + lstrip_blocks; one trailing newline dropped */
    expect("{% if true %}\n  a\n  {% endif %}\nb\n", "{}", "  a\nb");
    expect("x  {%- if true -%}  y  {%- endif %}", "{}", "xy");
    expect("a\n  {%+ if true %}b{% endif %}", "{}", "a\n  b");
    expect("{% if true +%}\nk{% endif %}", "{}", "\nk");
    expect("{{ 'v' }}\nw", "{}", "v\nw"); /* no trim after }} */
    expect("{# c #}\nz", "{}", "z");
    expect("{% raw %}{{ x }}{% endraw %}", "{}", "{{ x }}");
}

static void test_values(void) {
    expect("{{ m[0].content }}|{{ m | length }}|{{ m[0]['role'] }}",
           "{\"m\": [{\"role\": \"user\", \"content\": \"hi\"}]}", "hi|1|user");
    expect("{{ x }}|{{ x is defined }}|{{ x | default('d') }}", "{}", "|False|d");
    expect("{{ 1.0 }} {{ 0.1 + 0.2 }} {{ 1e16 }} {{ none }} {{ [1, 'a'] }}", "{}",
           "1.0 0.30000000000000004 1e+16 None [1, 'a']");
    expect("{{ {'a': [1, 2.5, none]} | tojson }}", "{}", "{\"a\": [1, 2.5, null]}");
    expect("{{ 'é</x>' | tojson }}", "{}", "\"é</x>\"");
    expect("{{ 'ab'[::-1] ~ 'héllo'[1:3] }}", "{}", "baél");
    expect("{% set ns = namespace(n=0) %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}",
           "{}", "6");
}

static void test_errors(void) {
    expect_error("a\n  {{ raise_exception('bad role') }}", "2:6: bad role");
    expect_error("{% for %}", "1:8: expected a name, got end of statement block");
    expect_error("{% if x %}", "1:11: unexpected end of template, expected 'elif' or 'else' or 'endif'");
    expect_error("{% include 'x' %}", "1:4: unknown tag 'include'");
    expect_error("{{ x.y }}", "1:5: 'x' is undefined");
    expect_error("{{ [].append(1) }}", "1:6: access to attribute 'append' of 'list' object is unsafe.");
    expect_error("{{ 1 / 0 }}", "1:6: float division by zero");
    expect_error("{{ 'a' < 1 }}", "1:8: '<' not supported between instances of 'str' and 'int'");
}

static void test_bounds(void) {
    tmpl *t;
    dp_err err = {{0}};
    const char *src = "{% for i in range(1000) %}{% for j in range(1000) %}x{% endfor %}{% endfor %}";
    CHECK(tmpl_parse(&t, src, strlen(src), &err) == 0);
    json_t *vars = json_object();
    char *out = NULL;
    size_t len;
    tmpl_limits lim = {.max_steps = 5000};
    CHECK(tmpl_render(t, vars, &lim, &out, &len, &err) == -1 && out == NULL);
    CHECK(strstr(err.msg, "more than 5000 loop iterations") != NULL);
    tmpl_limits small_out = {.max_output = 100};
    CHECK(tmpl_render(t, vars, &small_out, &out, &len, &err) == -1);
    CHECK(strstr(err.msg, "output longer than 100 bytes") != NULL);
    tmpl_free(t);
    src = "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}";
    CHECK(tmpl_parse(&t, src, strlen(src), &err) == 0);
    CHECK(tmpl_render(t, vars, NULL, &out, &len, &err) == -1);
    CHECK(strstr(err.msg, "nested more than 100 deep") != NULL);
    tmpl_free(t);
    /* deeply nested syntax is refused at parse time, not by the stack */
    char deep[4000];
    memset(deep, '(', 1000);
    strcpy(deep + 1000, "1");
    memset(deep + 1001, ')', 1000);
    deep[2001] = '\0';
    char wrapped[4100];
    snprintf(wrapped, sizeof wrapped, "{{ %s }}", deep);
    CHECK(tmpl_parse(&t, wrapped, strlen(wrapped), &err) == -1 && strstr(err.msg, "nested too deeply"));
    json_decref(vars);
}

/* A scratch model directory with the tiny byte-level tokenizer. */
static const char *scratch(void) {
    static char dir[] = "/tmp/dpoc-test-template.XXXXXX";
    static int made;
    if (!made) {
        CHECK(mkdtemp(dir) != NULL);
        made = 1;
    }
    return dir;
}

static void write_file(const char *name, const char *text) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", scratch(), name);
    FILE *f = fopen(p, "w");
    CHECK(f != NULL);
    if (f) fputs(text, f), fclose(f);
}

static void copy_tokenizer(void) {
    FILE *in = fopen("examples/tiny/model/tokenizer.json", "rb");
    CHECK(in != NULL);
    if (!in) return;
    char p[512];
    snprintf(p, sizeof p, "%s/tokenizer.json", scratch());
    FILE *out = fopen(p, "wb");
    char buf[65536];
    for (size_t k; (k = fread(buf, 1, sizeof buf, in)) > 0;) fwrite(buf, 1, k, out);
    fclose(in);
    fclose(out);
}

static void remove_file(const char *name) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", scratch(), name);
    unlink(p);
}

static void test_special_tokens(void) {
    copy_tokenizer();
    tokenizer *t;
    dp_err err = {{0}};
    const char *src;
    /* the class default: model_type gpt2, nothing else */
    write_file("tokenizer_config.json", "{\"model_max_length\": 1024}");
    write_file("config.json", "{\"model_type\": \"gpt2\"}");
    CHECK_MSG(tok_load(&t, scratch(), &err) == 0, "%s", err.msg);
    CHECK_STR(tok_special(t, 1, &src), "<|endoftext|>");
    CHECK_STR(src, "GPT2Tokenizer default");
    CHECK(tok_eos_id(t) == 256);
    tok_free(t);
    /* ids from config.json, then generation_config.json's list */
    write_file("config.json", "{\"model_type\": \"gpt2\", \"eos_token_id\": 10}");
    CHECK(tok_load(&t, scratch(), &err) == 0);
    CHECK_STR(tok_special(t, 1, &src), "\xc4\x8a"); /* byte-level "\n" */
    CHECK_STR(src, "config.json");
    const int32_t *stop;
    CHECK(tok_stop_ids(t, &stop) == 1 && stop[0] == 10);
    tok_free(t);
    write_file("generation_config.json", "{\"eos_token_id\": [33, 10]}");
    CHECK(tok_load(&t, scratch(), &err) == 0);
    CHECK(tok_eos_id(t) == 33);
    CHECK(tok_stop_ids(t, &stop) == 2 && stop[0] == 33 && stop[1] == 10);
    tok_free(t);
    remove_file("generation_config.json");
    /* special_tokens_map.json; an AddedToken object in tokenizer_config.json wins */
    write_file("special_tokens_map.json", "{\"eos_token\": {\"content\": \"A\"}, \"pad_token\": \"B\"}");
    write_file("tokenizer_config.json", "{\"pad_token\": {\"content\": \"C\", \"special\": true}}");
    CHECK(tok_load(&t, scratch(), &err) == 0);
    CHECK_STR(tok_special(t, 1, &src), "A");
    CHECK_STR(src, "special_tokens_map.json");
    CHECK_STR(tok_special(t, 3, &src), "C");
    CHECK_STR(src, "tokenizer_config.json");
    tok_free(t);
    /* with added_tokens_decoder, special_tokens_map.json is not read */
    write_file("tokenizer_config.json", "{\"added_tokens_decoder\": {}}");
    CHECK(tok_load(&t, scratch(), &err) == 0);
    CHECK_STR(tok_special(t, 1, &src), "\xc4\x8a"); /* byte-level "\n" */
    CHECK_STR(src, "config.json");
    tok_free(t);
    remove_file("special_tokens_map.json");
    /* the chat template: chat_template.jinja wins; a named list takes "default" */
    write_file("tokenizer_config.json",
               "{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"T\"}, {\"name\": \"default\", \"template\": \"D\"}]}");
    CHECK(tok_load(&t, scratch(), &err) == 0);
    CHECK_STR(tok_chat_template(t), "D");
    CHECK_STR(tok_chat_template_tool_use(t), "T");
    tok_free(t);
    write_file("chat_template.jinja", "J{{ eos_token }}");
    CHECK(tok_load(&t, scratch(), &err) == 0);
    CHECK_STR(tok_chat_template(t), "J{{ eos_token }}");
    CHECK_STR(tok_chat_template_source(t), "chat_template.jinja");
    tok_free(t);
    write_file("tokenizer_config.json", "{\"eos_token\": 5}");
    CHECK(tok_load(&t, scratch(), &err) == -1);
    CHECK(strstr(err.msg, "eos_token: expected a token (a string or {\"content\": ...}), got a number") != NULL);
}

/* ds_chat_row + ds_tokenize on a template whose prompt render is a prefix. */
static void test_trl_rule(void) {
    write_file("tokenizer_config.json", "{\"eos_token\": \"<|endoftext|>\"}");
    write_file("chat_template.jinja",
               "{% for m in messages %}<{{ m.role }}>{{ m.content }}{{ eos_token }}{% endfor %}"
               "{% if add_generation_prompt %}<assistant>{% endif %}");
    tokenizer *t;
    dp_err err = {{0}};
    CHECK_MSG(tok_load(&t, scratch(), &err) == 0, "%s", err.msg);
    ds_options o = {.format = DS_CONVERSATIONAL, .max_length = 64, .max_prompt_length = 32};
    const char *source;
    CHECK(ds_chat_load(NULL, t, &o.jinja, &source, &err) == 0 && o.jinja);
    o.jinja_tok = t;
    char path[512];
    snprintf(path, sizeof path, "%s/rows.jsonl", scratch());
    FILE *f = fopen(path, "w");
    fputs("{\"prompt\": [{\"role\": \"user\", \"content\": \"hi\"}], \"chosen\": [{\"role\": \"assistant\", "
          "\"content\": \"yo\"}], \"rejected\": [{\"role\": \"assistant\", \"content\": \"no\"}]}\n"
          "{\"chosen\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"assistant\", \"content\": \"a\"}], "
          "\"rejected\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"bot\", \"content\": \"a much longer reply\"}]}\n", f);
    fclose(f);
    ds_reader *rd;
    CHECK(ds_open(&rd, path, &o, &err) == 0);
    ds_row row;
    ds_bad bad;
    CHECK(ds_next(rd, &row, &bad, &err) == 1);
    CHECK(row.full_render);
    CHECK_STR(row.prompt, "<user>hi<|endoftext|><assistant>");
    CHECK_STR(row.chosen, "<user>hi<|endoftext|><assistant>yo<|endoftext|>");
    ds_tokens tk;
    CHECK_MSG(ds_tokenize(t, &o, "rows.jsonl", &row, &tk, &bad, &err) == 0, "%s", err.msg);
    /* the tiny tokenizer is byte-level: one id per byte, <|endoftext|> = 256 */
    CHECK(tk.n_prompt == (int)strlen("<user>hi") + 1 + (int)strlen("<assistant>"));
    CHECK(tk.n_chosen == 3 && tk.chosen[0] == 'y' && tk.chosen[2] == 256);
    CHECK(!tk.not_prefix[0] && !tk.not_prefix[1]);
    ds_tokens_free(&tk);
    /* implicit prompt; the rejected side is not a continuation of the
     * generation prompt: split by count all the same, and flagged */
    CHECK(ds_next(rd, &row, &bad, &err) == 1);
    CHECK_STR(row.prompt, "<user>q<|endoftext|><assistant>");
    CHECK_MSG(ds_tokenize(t, &o, "rows.jsonl", &row, &tk, &bad, &err) == 0, "%s", err.msg);
    CHECK(!tk.not_prefix[0] && tk.not_prefix[1]);
    ds_tokens_free(&tk);
    CHECK(ds_next(rd, &row, &bad, &err) == 0);
    ds_close(rd);
    ds_options_free(&o);
    tok_free(t);
    static const char *const names[] = {"tokenizer.json", "tokenizer_config.json", "config.json",
                                        "chat_template.jinja", "rows.jsonl"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) remove_file(names[i]);
    rmdir(scratch());
}

int main(void) {
    RUN(test_whitespace);
    RUN(test_values);
    RUN(test_errors);
    RUN(test_bounds);
    RUN(test_special_tokens);
    RUN(test_trl_rule);
    return check_summary();
}
