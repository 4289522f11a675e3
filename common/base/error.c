/* error — see error.h. */
#include "error.h"

#include "utf8.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 1 if the valid sequence p[0..len) is a code point that breaks or moves
 * the line on some terminals: C1 controls (U+0080..U+009F, NEL among them)
 * and the line and paragraph separators U+2028, U+2029. */
static int breaks_line(const unsigned char *p, size_t len) {
    return (len == 2 && p[0] == 0xc2 && p[1] < 0xa0) ||
           (len == 3 && p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9));
}

/* How the text at p[0..n) (n >= 1) starts in a one-line message: writes
 * into out, *out_len bytes, what stands for the bytes it takes from p, and
 * returns how many it takes: a printable sequence as itself; \n \r \t (and,
 * when quoting, \" \\) as such; anything else as \xNN per byte (one byte,
 * or the whole sequence of a C1 control or separator). */
static size_t render(const unsigned char *p, size_t n, int quoting, char out[17],
                     size_t *out_len) {
    unsigned c = p[0];
    const char *esc = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t"
                    : quoting && c == '"' ? "\\\"" : quoting && c == '\\' ? "\\\\" : NULL;
    if (esc) {
        memcpy(out, esc, 2), *out_len = 2;
        return 1;
    }
    size_t len = (size_t)utf8_valid_len(p, n);
    if (len && c >= 0x20 && c != 0x7f && !breaks_line(p, len)) {
        memcpy(out, p, len), *out_len = len;
        return len;
    }
    if (!len || c < 0x80) len = 1;
    for (size_t j = 0; j < len; j++) snprintf(out + 4 * j, 5, "\\x%02x", p[j]);
    *out_len = 4 * len;
    return len;
}

const char *dp_quote(char buf[DP_QUOTE_CAP], const char *s, size_t n) {
    if (!s) return strcpy(buf, "(null)");
    if (n == (size_t)-1) n = strlen(s);
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0, i = 0;
    int chars = 0;
    buf[o++] = '"';
    while (i < n) {
        char r[17];
        size_t k, used = render(p + i, n - i, 1, r, &k);
        /* each byte written \xNN counts as a character, so buf holds at
         * most 4 bytes per character */
        int cost = r[0] == '\\' && r[1] == 'x' ? (int)used : 1;
        if (chars + cost > DP_QUOTE_CHARS) break;
        memcpy(buf + o, r, k), o += k, i += used, chars += cost;
    }
    buf[o++] = '"';
    if (i < n) memcpy(buf + o, "...", 3), o += 3;
    buf[o] = '\0';
    return buf;
}

/* The last guard of the one-line rule: whatever a caller formatted, the
 * message keeps no newline, control byte or invalid UTF-8, spelled as
 * dp_quote spells them; text that no longer fits is cut before a whole
 * escape. */
static void one_line(char *msg) {
    enum { CAP = sizeof ((dp_err *)0)->msg };
    char in[CAP];
    memcpy(in, msg, CAP);
    const unsigned char *p = (const unsigned char *)in;
    size_t n = strnlen(in, CAP - 1), o = 0, i = 0;
    while (i < n) {
        char r[17];
        size_t k, used = render(p + i, n - i, 0, r, &k);
        if (o + k > CAP - 1) break;
        memcpy(msg + o, r, k), o += k, i += used;
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
