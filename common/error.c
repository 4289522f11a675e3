/* error — see error.h. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes of the UTF-8 sequence starting at p (at most n available), or 0 if
 * it is not a valid one (overlong forms, surrogates and > U+10FFFF are not). */
static size_t utf8_seq(const unsigned char *p, size_t n) {
    size_t len;
    unsigned cp;
    if (p[0] < 0x80) return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) len = 2, cp = p[0] & 0x1f;
    else if (p[0] >= 0xe0 && p[0] <= 0xef) len = 3, cp = p[0] & 0x0f;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4) len = 4, cp = p[0] & 0x07;
    else return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

/* 1 if the valid sequence p[0..len) is a code point that breaks or moves
 * the line on some terminals: C1 controls (U+0080..U+009F, NEL among them)
 * and the line and paragraph separators U+2028, U+2029. */
static int breaks_line(const unsigned char *p, size_t len) {
    return (len == 2 && p[0] == 0xc2 && p[1] < 0xa0) ||
           (len == 3 && p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9));
}

const char *dp_quote(char buf[DP_QUOTE_CAP], const char *s, size_t n) {
    if (!s) return strcpy(buf, "(null)");
    if (n == (size_t)-1) n = strlen(s);
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0, i = 0;
    int chars = 0;
    buf[o++] = '"';
    while (i < n && chars < DP_QUOTE_CHARS) {
        unsigned c = p[i];
        const char *esc = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t"
                        : c == '"' ? "\\\"" : c == '\\' ? "\\\\" : NULL;
        size_t len = utf8_seq(p + i, n - i);
        if (esc) {
            memcpy(buf + o, esc, 2), o += 2, i++;
        } else if (len == 0 || c < 0x20 || c == 0x7f || breaks_line(p + i, len)) {
            /* each escaped byte counts as a character, so buf holds 4 bytes
             * per character at most */
            size_t k = len && c >= 0x80 ? len : 1;
            if (chars + (int)k > DP_QUOTE_CHARS) break;
            for (size_t j = 0; j < k; j++) snprintf(buf + o, 5, "\\x%02x", p[i + j]), o += 4;
            i += k, chars += (int)k - 1;
        } else {
            memcpy(buf + o, p + i, len), o += len, i += len;
        }
        chars++;
    }
    buf[o++] = '"';
    if (i < n) memcpy(buf + o, "...", 3), o += 3;
    buf[o] = '\0';
    return buf;
}

/* The last guard of the one-line rule: whatever a caller formatted, the
 * message keeps no newline, control byte or invalid UTF-8. \n \r \t are
 * written as such, other such bytes as \xNN (the same spelling as
 * dp_quote); text that no longer fits is cut before a whole escape. */
static void one_line(char *msg) {
    enum { CAP = sizeof ((dp_err *)0)->msg };
    char in[CAP];
    memcpy(in, msg, CAP);
    const unsigned char *p = (const unsigned char *)in;
    size_t n = strnlen(in, CAP - 1), o = 0, i = 0;
    while (i < n) {
        unsigned c = p[i];
        size_t len = utf8_seq(p + i, n - i);
        char esc[4 * 4 + 1];
        size_t k;
        if (len && c >= 0x20 && c != 0x7f && !breaks_line(p + i, len)) {
            if (o + len > CAP - 1) break;
            memcpy(msg + o, p + i, len), o += len, i += len;
            continue;
        }
        if (c == '\n' || c == '\r' || c == '\t') {
            esc[0] = '\\', esc[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't', k = 2, len = 1;
        } else {
            if (!len || c < 0x80) len = 1;
            for (k = 0; k < 4 * len; k += 4) snprintf(esc + k, 5, "\\x%02x", p[i + k / 4]);
        }
        if (o + k > CAP - 1) break;
        memcpy(msg + o, esc, k), o += k, i += len;
    }
    msg[o] = '\0';
}

const char *dp_label(char buf[DP_QUOTE_CAP], const char *s) {
    if (!s) return dp_quote(buf, s, 0);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p > 0x7e) return dp_quote(buf, s, (size_t)-1);
    return s;
}

int dp_fail(dp_err *err, const char *fmt, ...) {
    if (!err) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    one_line(err->msg);
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
    one_line(err->msg);
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
