/* judge — the word-list sentiment judge of the embedded example
 * (examples/judge.words): a completion scores +1 for every occurrence of a
 * positive word and −1 for every negative one.
 *
 * File format: one entry per line, "+ word" or "- word"; blank lines and
 * lines starting with '#' are ignored. Words are ASCII letters and are
 * matched case-insensitively against the maximal runs of ASCII letters of
 * the text (so "great," and "GREAT" count, "greatest" does not). */
#ifndef DP_JUDGE_H
#define DP_JUDGE_H

#include <stddef.h>

#include "error.h"

typedef struct judge judge;

/* Loads the word list at PATH. Errors name PATH:LINE. *out is owned by the
 * caller (judge_free). */
int judge_load(judge **out, const char *path, dp_err *err);
/* The same from the text itself; NAME stands for the file in errors. */
int judge_parse(judge **out, const char *text, size_t len, const char *name, dp_err *err);
void judge_free(judge *j);

/* (#positive − #negative) word occurrences in text[0..len). */
int judge_score(const judge *j, const char *text, size_t len);

/* Number of positive and negative words in the list. */
int judge_n_words(const judge *j, int sign);

#endif
