/* test_error — dp_quote (untrusted text for one-line messages) and the
 * one-line guard in dp_fail / dp_context.
 *
 * Golden strings check the spelling of each escape; a property test over
 * random bytes checks, against utf8proc's UTF-8 decoder (a second
 * implementation), that the quoted text is valid UTF-8 without control
 * characters and that undoing the escapes gives back the input's prefix. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "check.h"
#include "error.h"

/* 1 if s is valid UTF-8 holding no C0/C1 control and no line or paragraph
 * separator, by utf8proc. */
static int clean_utf8(const char *s) {
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    utf8proc_ssize_t n = (utf8proc_ssize_t)strlen(s);
    while (n > 0) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(p, n, &cp);
        if (k <= 0) return 0;
        if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0) || cp == 0x2028 || cp == 0x2029) return 0;
        p += k, n -= k;
    }
    return 1;
}

/* Undoes dp_quote: the quoted text (without its quotes and "...") back to
 * bytes in out; returns the length, or -1 if q is not in dp_quote's form. */
static long unquote(const char *q, char *out, int *cut) {
    size_t n = strlen(q);
    *cut = n >= 5 && !strcmp(q + n - 3, "...");
    if (*cut) n -= 3;
    if (n < 2 || q[0] != '"' || q[n - 1] != '"') return -1;
    long o = 0;
    for (size_t i = 1; i + 1 < n; i++) {
        if (q[i] == '"') return -1; /* a bare quote inside */
        if (q[i] != '\\') {
            out[o++] = q[i];
            continue;
        }
        char e = q[++i];
        if (e == 'n') out[o++] = '\n';
        else if (e == 'r') out[o++] = '\r';
        else if (e == 't') out[o++] = '\t';
        else if (e == '"' || e == '\\') out[o++] = e;
        else if (e == 'x') {
            unsigned v;
            if (sscanf(q + i + 1, "%2x", &v) != 1) return -1;
            out[o++] = (char)v;
            i += 2;
        } else
            return -1;
    }
    return o;
}

static void test_quote_golden(void) {
    char q[DP_QUOTE_CAP];
    CHECK_STR(dp_quote(q, "plain", (size_t)-1), "\"plain\"");
    CHECK_STR(dp_quote(q, "a\nb\r\tc\"d\\e", (size_t)-1), "\"a\\nb\\r\\tc\\\"d\\\\e\"");
    CHECK_STR(dp_quote(q, "\x01\x1f\x7f", (size_t)-1), "\"\\x01\\x1f\\x7f\"");
    /* invalid UTF-8: a stray byte, an overlong '/', a surrogate, past U+10FFFF, cut short */
    CHECK_STR(dp_quote(q, "x\xff" "\xc0\xaf" "\xed\xa0\x80" "\xf4\x90\x80\x80" "\xe2\x82", (size_t)-1),
              "\"x\\xff\\xc0\\xaf\\xed\\xa0\\x80\\xf4\\x90\\x80\\x80\\xe2\\x82\"");
    /* valid UTF-8 stays: é, €, an emoji */
    CHECK_STR(dp_quote(q, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", (size_t)-1),
              "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
    /* NEL (U+0085), another C1 control and U+2028 break lines on some terminals */
    CHECK_STR(dp_quote(q, "a\xc2\x85" "b\xc2\x9b" "c\xe2\x80\xa8", (size_t)-1),
              "\"a\\xc2\\x85b\\xc2\\x9bc\\xe2\\x80\\xa8\"");
    CHECK_STR(dp_quote(q, "a\0b", 3), "\"a\\x00b\"");
    CHECK_STR(dp_quote(q, "abcdef", 2), "\"ab\"");
    CHECK_STR(dp_quote(q, "", (size_t)-1), "\"\"");
    CHECK_STR(dp_quote(q, NULL, 5), "(null)");
}

static void test_quote_cut(void) {
    char q[DP_QUOTE_CAP], s[200], want[200];
    memset(s, 'a', sizeof s);
    snprintf(want, sizeof want, "\"%.*s\"", DP_QUOTE_CHARS, s);
    CHECK_STR(dp_quote(q, s, DP_QUOTE_CHARS), want);
    snprintf(want, sizeof want, "\"%.*s\"...", DP_QUOTE_CHARS, s);
    CHECK_STR(dp_quote(q, s, DP_QUOTE_CHARS + 1), want);
    /* the worst cases fill the buffer without overflowing it (ASan) */
    memset(s, 1, sizeof s);
    CHECK(strlen(dp_quote(q, s, sizeof s)) == 1 + 4 * DP_QUOTE_CHARS + 1 + 3);
    for (size_t i = 0; i + 3 <= sizeof s; i += 3) memcpy(s + i, "\xe2\x80\xa8", 3);
    CHECK(strlen(dp_quote(q, s, 198)) == 1 + 4 * DP_QUOTE_CHARS + 1 + 3);
    /* a separator that no longer fits whole is left for the "..." */
    s[0] = 'a';
    memcpy(s + 1, "\xe2\x80\xa8\xe2\x80\xa8", 6);
    char q2[DP_QUOTE_CAP];
    memset(s + 7, 'b', 60);
    dp_quote(q2, s, 67);
    CHECK(strlen(q2) < DP_QUOTE_CAP);
    CHECK(clean_utf8(q2));
}

static uint32_t rng_state = 12345;
static uint32_t rng(void) {
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state >> 8;
}

static void test_quote_random(void) {
    /* Bytes drawn to hit ASCII, controls, quotes, backslashes, valid and
     * broken UTF-8 often. */
    static const char *pieces[] = {"a", "Z", " ", "\"", "\\", "\n", "\r", "\t", "\x01", "\x7f",
                                   "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xc2\x85",
                                   "\xe2\x80\xa9", "\xff", "\xc3", "\xe2\x82", "\xed\xa0\x80",
                                   "\xc0\xaf", "\x80"};
    int npieces = (int)(sizeof pieces / sizeof *pieces);
    for (int iter = 0; iter < 3000; iter++) {
        char s[400], back[400], q[DP_QUOTE_CAP];
        size_t n = 0;
        int parts = (int)(rng() % 90);
        for (int k = 0; k < parts; k++) {
            const char *p = pieces[rng() % (uint32_t)npieces];
            size_t l = strlen(p);
            memcpy(s + n, p, l), n += l;
        }
        dp_quote(q, s, n);
        int cut;
        long m = unquote(q, back, &cut);
        CHECK_MSG(strlen(q) < DP_QUOTE_CAP, "iteration %d: %zu bytes", iter, strlen(q));
        CHECK_MSG(clean_utf8(q), "iteration %d: %s", iter, q);
        CHECK_MSG(m >= 0 && (size_t)m <= n && !memcmp(back, s, (size_t)m), "iteration %d: %s", iter, q);
        CHECK_MSG(cut == ((size_t)m < n), "iteration %d: %s", iter, q);
        if (m < 0) break;
    }
}

static void test_guard(void) {
    dp_err e;
    CHECK(dp_fail(&e, "f.txt:3: got %s and %s", "a\nb", "\x01\xff") == -1);
    CHECK_STR(e.msg, "f.txt:3: got a\\nb and \\x01\\xff");
    CHECK(dp_fail(NULL, "x") == -1);
    /* valid UTF-8 passes; C1 controls and separators do not */
    dp_fail(&e, "caf\xc3\xa9 \xc2\x85 \xe2\x80\xa8 \t\r");
    CHECK_STR(e.msg, "caf\xc3\xa9 \\xc2\\x85 \\xe2\\x80\\xa8 \\t\\r");
    /* dp_context's prefix is guarded too, the escapes already there kept */
    CHECK(dp_context(&e, "%s", "dir\n/x") == -1);
    CHECK_STR(e.msg, "dir\\n/x: caf\xc3\xa9 \\xc2\\x85 \\xe2\\x80\\xa8 \\t\\r");
    /* a message cut by the buffer ends before a whole escape, never inside one */
    char big[2000];
    memset(big, '\n', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    dp_fail(&e, "x%s", big);
    CHECK(strlen(e.msg) == 1 + 2 * 511);
    CHECK(e.msg[0] == 'x' && !strcmp(e.msg + strlen(e.msg) - 2, "\\n"));
    memset(big, 'a', 1022);
    strcpy(big + 1022, "\xc3\xa9");
    dp_fail(&e, "%s", big); /* vsnprintf cuts é in half; its lead byte does not fit escaped */
    CHECK(strlen(e.msg) == 1022 && clean_utf8(e.msg));
    memset(big, 'a', 1018);
    strcpy(big + 1018, "\x01\x02");
    dp_fail(&e, "%s", big);
    CHECK_STR(e.msg + 1018, "\\x01");
    dp_fail(&e, "%s", "short");
    dp_context(&e, "%s", big); /* the prefix alone fills the buffer */
    CHECK(strlen(e.msg) < sizeof e.msg && clean_utf8(e.msg));
}

int main(void) {
    RUN(test_quote_golden);
    RUN(test_quote_cut);
    RUN(test_quote_random);
    RUN(test_guard);
    return check_summary();
}
