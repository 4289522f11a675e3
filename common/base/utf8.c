/* utf8 — see utf8.h. */
#include "utf8.h"

/* Unicode Table 3-7 (well-formed byte sequences): the length of the
 * sequence lead byte C starts (0 if C cannot start one), and the range
 * [*lo, *hi] its second byte must be in (the others are 0x80..0xBF). */
static int utf8_lead(unsigned c, unsigned *lo, unsigned *hi) {
    *lo = 0x80, *hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) return 2;
    if (c >= 0xE0 && c <= 0xEF) {
        if (c == 0xE0) *lo = 0xA0;
        if (c == 0xED) *hi = 0x9F;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (c == 0xF0) *lo = 0x90;
        if (c == 0xF4) *hi = 0x8F;
        return 4;
    }
    return 0;
}

int utf8_valid_len(const unsigned char *s, size_t n) {
    if (!n) return 0;
    if (s[0] < 0x80) return 1;
    unsigned lo, hi;
    int len = utf8_lead(s[0], &lo, &hi);
    if (!len || n < (size_t)len) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (int i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return len;
}

size_t utf8_bad_len(const unsigned char *s, size_t n) {
    unsigned lo, hi;
    size_t len = (size_t)utf8_lead(s[0], &lo, &hi);
    if (!len || n < 2 || s[1] < lo || s[1] > hi) return 1;
    size_t k = 2;
    while (k < n && k < len && s[k] >= 0x80 && s[k] <= 0xBF) k++;
    return k;
}
