/* judge — see judge.h. The lists are small: a sorted array of lowercase
 * words with their signs, searched with bsearch. */
#include "judge.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JUDGE_WORD_MAX 64

typedef struct judge_word {
    char w[JUDGE_WORD_MAX];
    int sign;
} judge_word;

struct judge {
    judge_word *words;
    int n;
};

static int is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }

static int cmp_word(const void *a, const void *b) {
    return strcmp(((const judge_word *)a)->w, ((const judge_word *)b)->w);
}

void judge_free(judge *j) {
    if (!j) return;
    free(j->words);
    free(j);
}

int judge_parse(judge **out, const char *text, size_t len, const char *name, dp_err *err) {
    *out = NULL;
    judge *j = dp_calloc(1, sizeof *j, err);
    if (!j) return -1;
    int cap = 0, rc = 0;
    long lineno = 0;
    for (size_t at = 0; at < len && !rc;) {
        const char *line = text + at, *nl = memchr(line, '\n', len - at);
        size_t n = nl ? (size_t)(nl - line) : len - at;
        at += n + 1;
        lineno++;
        while (n && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t')) n--;
        size_t k = 0;
        while (k < n && (line[k] == ' ' || line[k] == '\t')) k++;
        if (k == n || line[k] == '#') continue;
        char sign = line[k++];
        size_t w0 = k;
        while (w0 < n && (line[w0] == ' ' || line[w0] == '\t')) w0++;
        size_t wl = n - w0;
        int letters = wl > 0 && wl < JUDGE_WORD_MAX && w0 > k;
        for (size_t i = w0; letters && i < n; i++) letters = is_letter(line[i]);
        if ((sign != '+' && sign != '-') || !letters) {
            rc = dp_fail(err, "%s:%ld: expected \"+ word\" or \"- word\" (a word of 1..%d ASCII "
                              "letters), got \"%.*s\"",
                         name, lineno, JUDGE_WORD_MAX - 1, (int)(n > 80 ? 80 : n), line);
            break;
        }
        if (j->n == cap) {
            cap = cap ? 2 * cap : 64;
            judge_word *q = realloc(j->words, (size_t)cap * sizeof *q);
            if (!q) {
                rc = dp_fail(err, "out of memory");
                break;
            }
            j->words = q;
        }
        judge_word *jw = &j->words[j->n];
        for (size_t i = 0; i < wl; i++) jw->w[i] = lower(line[w0 + i]);
        jw->w[wl] = '\0';
        jw->sign = sign == '+' ? 1 : -1;
        for (int i = 0; i < j->n && !rc; i++)
            if (!strcmp(j->words[i].w, jw->w))
                rc = dp_fail(err, "%s:%ld: \"%s\" is already listed", name, lineno, jw->w);
        j->n++;
    }
    if (!rc && j->n == 0) rc = dp_fail(err, "%s: expected at least one \"+ word\" or \"- word\" line", name);
    if (rc) {
        judge_free(j);
        return -1;
    }
    qsort(j->words, (size_t)j->n, sizeof *j->words, cmp_word);
    *out = j;
    return 0;
}

int judge_load(judge **out, const char *path, dp_err *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return dp_fail(err, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? 2 * cap : 4096;
            if (cap > (64u << 20)) {
                rc = dp_fail(err, "%s: larger than 64 MB; not a word list", path);
                break;
            }
            char *q = realloc(buf, cap);
            if (!q) {
                rc = dp_fail(err, "out of memory");
                break;
            }
            buf = q;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    if (!rc && ferror(f)) rc = dp_fail(err, "%s: read error: %s", path, strerror(errno));
    fclose(f);
    if (!rc) rc = judge_parse(out, buf ? buf : "", len, path, err);
    free(buf);
    return rc;
}

int judge_score(const judge *j, const char *text, size_t len) {
    int score = 0;
    for (size_t i = 0; i < len;) {
        if (!is_letter(text[i])) {
            i++;
            continue;
        }
        size_t k = i;
        while (k < len && is_letter(text[k])) k++;
        if (k - i < JUDGE_WORD_MAX) {
            judge_word key;
            for (size_t t = i; t < k; t++) key.w[t - i] = lower(text[t]);
            key.w[k - i] = '\0';
            const judge_word *hit = bsearch(&key, j->words, (size_t)j->n, sizeof *j->words, cmp_word);
            if (hit) score += hit->sign;
        }
        i = k;
    }
    return score;
}

int judge_n_words(const judge *j, int sign) {
    int n = 0;
    for (int i = 0; i < j->n; i++) n += j->words[i].sign == sign;
    return n;
}
