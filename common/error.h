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
 * callers can write `return dp_fail(err, ...)`. */
int dp_fail(dp_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends "context: " to the message already in err. Returns -1. */
int dp_context(dp_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Allocation that fails as a value: returns NULL and fills err. */
void *dp_malloc(size_t n, dp_err *err);
void *dp_calloc(size_t count, size_t size, dp_err *err);

#endif
