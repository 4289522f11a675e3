/* error — errors as values.
 *
 * Every fallible library function returns 0 on success and -1 on failure,
 * after filling a dp_err with one line of text: "where: what was expected,
 * what was found" (e.g. "pipeline.yaml:14:9: train.beta: expected a number
 * > 0, got \"fast\""). Library code never prints or exits; the stage prints
 * the message once and chooses the exit status. */
#ifndef DP_ERROR_H
#define DP_ERROR_H

#include <stddef.h>

typedef struct dp_err {
    char msg[1024];
} dp_err;

/* Sets err->msg from a printf-style format (err may be NULL). Returns -1 so
 * callers can write `return dp_fail(err, ...)`. As a last guard of the
 * one-line rule, a newline, tab or CR in the result is written \n \t \r,
 * and any other control byte (C1 controls and U+2028/U+2029 included) or
 * byte that is not valid UTF-8 as \xNN; dp_context does the same. Quote
 * untrusted text with dp_quote all the same: the guard does not mark where
 * it starts and ends. */
int dp_fail(dp_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends "context: " to the message already in err. Returns -1. */
int dp_context(dp_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Untrusted text (from a file, a row, the command line) quoted for a
 * one-line message: wrapped in double quotes, with \n \r \t \" \\ written as
 * such, other control bytes and bytes that are not valid UTF-8 as \xNN, and
 * cut after DP_QUOTE_CHARS characters with "..." after the closing quote.
 * n is the length, or (size_t)-1 for a NUL-terminated s (NULL prints as
 * (null)). Writes into buf and returns it, so it can be a printf argument:
 *     char q[DP_QUOTE_CAP];
 *     dp_fail(err, "%s:%d: unknown role %s", path, line, dp_quote(q, role, -1)); */
#define DP_QUOTE_CHARS 60
#define DP_QUOTE_CAP (DP_QUOTE_CHARS * 4 + 8)
const char *dp_quote(char buf[DP_QUOTE_CAP], const char *s, size_t n);

/* S itself when it is printable ASCII (a plain path, a tensor name), else
 * dp_quote(buf, s, -1): for text that reads best unquoted but must never
 * break the one-line rule with a newline or bytes that are not UTF-8. */
const char *dp_label(char buf[DP_QUOTE_CAP], const char *s);

/* Allocation that fails as a value: returns NULL and fills err. */
void *dp_malloc(size_t n, dp_err *err);
void *dp_calloc(size_t count, size_t size, dp_err *err);

#endif
