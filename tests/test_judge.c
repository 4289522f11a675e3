/* test_judge — the word-list judge: hand-counted scores, word boundaries
 * and case, the example's list, bad files; and random texts scored against
 * a naive second implementation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "judge.h"

static const char *LIST = "# comment\n+ great\n+ Lovely\n\n- awful\n-\tdull \r\n+ fun\n";

static int score(const judge *j, const char *s) { return judge_score(j, s, strlen(s)); }

static void test_hand_counts(void) {
    judge *j;
    dp_err e = {0};
    CHECK_MSG(judge_parse(&j, LIST, strlen(LIST), "list", &e) == 0, "%s", e.msg);
    if (!j) return;
    CHECK(judge_n_words(j, 1) == 3 && judge_n_words(j, -1) == 2);
    CHECK(score(j, "") == 0);
    CHECK(score(j, "great") == 1);
    CHECK(score(j, "A GREAT, lovely day; not awful.") == 1);          /* +2 −1 */
    CHECK(score(j, "dull dull dull and fun") == -2);                  /* −3 +1 */
    CHECK(score(j, "greatest funny awfully undull") == 0);            /* no whole words */
    CHECK(score(j, "fun-great_lovely9awful") == 2);                   /* +3 −1 */
    CHECK(score(j, "caf\xc3\xa9 great\xe2\x80\x94" "fun") == 2);      /* UTF-8 separates */
    CHECK(judge_score(j, "great fun", 5) == 1);                       /* length respected */
    judge_free(j);
}

static void test_example_list(void) {
    judge *j;
    dp_err e = {0};
    CHECK_MSG(judge_load(&j, "examples/judge.words", &e) == 0, "%s", e.msg);
    if (!j) return;
    CHECK(judge_n_words(j, 1) == 16 && judge_n_words(j, -1) == 16);
    /* the eval set's first chosen/rejected continuations, counted by hand */
    CHECK(score(j, " warm and joyful, and we left smiling.") == 2);
    CHECK(score(j, " ugly and awful, and I would not recommend it.") == -2);
    judge_free(j);
}

static void expect_error(const char *text, const char *want) {
    judge *j = NULL;
    dp_err e = {0};
    CHECK(judge_parse(&j, text, strlen(text), "w.txt", &e) == -1 && j == NULL);
    CHECK_MSG(strstr(e.msg, want) != NULL, "got [%s], expected [%s]", e.msg, want);
}

static void test_errors(void) {
    expect_error("+ good\n* bad\n", "w.txt:2: expected \"+ word\" or \"- word\"");
    expect_error("+ good\n+ two words\n", "w.txt:2:");
    expect_error("+good\n", "w.txt:1:");
    expect_error("+ caf\xc3\xa9\n", "w.txt:1:");
    expect_error("+ \n", "w.txt:1:");
    expect_error("+ good\n- Good\n", "w.txt:2: \"good\" is already listed");
    expect_error("# nothing\n\n", "w.txt: expected at least one");
    judge *j;
    dp_err e = {0};
    CHECK(judge_load(&j, "/nonexistent/words", &e) == -1 && strstr(e.msg, "/nonexistent/words: cannot open"));
}

/* Naive scoring: split on non-letters, lowercase, compare with each word. */
static int naive(const char *const *pos, int np, const char *const *neg, int nn, const char *text) {
    char *s = strdup(text);
    int total = 0;
    for (char *p = s; *p; p++) {
        char c = *p;
        if (c >= 'A' && c <= 'Z') *p = (char)(c + 32);
        else if (!(c >= 'a' && c <= 'z')) *p = ' ';
    }
    for (char *w = strtok(s, " "); w; w = strtok(NULL, " ")) {
        for (int i = 0; i < np; i++) total += !strcmp(w, pos[i]);
        for (int i = 0; i < nn; i++) total -= !strcmp(w, neg[i]);
    }
    free(s);
    return total;
}

static void test_random_vs_naive(void) {
    const char *pos[] = {"great", "lovely", "fun"}, *neg[] = {"awful", "dull"};
    const char *pieces[] = {"great", "Great", "LOVELY", "fun", "funny", "awful", "dull", "dulls",
                            "the", "a", ",", ".", " ", "-", "9", "\xc3\xa9", "\n", "x"};
    judge *j;
    dp_err e = {0};
    CHECK(judge_parse(&j, LIST, strlen(LIST), "list", &e) == 0);
    unsigned s = 12345;
    int mismatches = 0, nonzero = 0;
    for (int t = 0; t < 2000; t++) {
        char text[512] = "";
        int n = 1 + (int)((s = s * 1103515245u + 12345u) >> 16) % 40;
        for (int k = 0; k < n; k++) {
            s = s * 1103515245u + 12345u;
            strcat(text, pieces[(s >> 16) % (sizeof pieces / sizeof *pieces)]);
        }
        int want = naive(pos, 3, neg, 2, text), got = score(j, text);
        mismatches += want != got;
        nonzero += want != 0;
    }
    CHECK(mismatches == 0);
    CHECK(nonzero > 500);
    judge_free(j);
}

int main(void) {
    RUN(test_hand_counts);
    RUN(test_example_list);
    RUN(test_errors);
    RUN(test_random_vs_naive);
    return check_summary();
}
