/* error — see error.h. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dp_fail(dp_err *err, const char *fmt, ...) {
    if (!err) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int dp_context(dp_err *err, const char *fmt, ...) {
    if (!err) return -1;
    char prefix[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[sizeof err->msg];
    memcpy(old, err->msg, sizeof old);
    size_t k = strlen(prefix);
    if (k > sizeof err->msg - 3) k = sizeof err->msg - 3;
    memcpy(err->msg, prefix, k);
    memcpy(err->msg + k, ": ", 2);
    size_t room = sizeof err->msg - k - 3;
    size_t m = strnlen(old, room);
    memcpy(err->msg + k + 2, old, m);
    err->msg[k + 2 + m] = '\0';
    return -1;
}

void *dp_malloc(size_t n, dp_err *err) {
    void *p = malloc(n ? n : 1);
    if (!p) dp_fail(err, "out of memory allocating %zu bytes", n);
    return p;
}

void *dp_calloc(size_t count, size_t size, dp_err *err) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) dp_fail(err, "out of memory allocating %zu x %zu bytes", count, size);
    return p;
}
