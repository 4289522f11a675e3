/* utf8 — well-formed UTF-8 (Unicode Table 3-7: no overlong forms, no
 * surrogates, nothing past U+10FFFF), the one check every reader of
 * untrusted text uses: error messages, tokenizers, safetensors headers,
 * store dumps. */
#ifndef DP_UTF8_H
#define DP_UTF8_H

#include <stddef.h>

/* Length (1..4) of the well-formed sequence at s[0..n), or 0 if there is
 * none (n == 0 included). */
int utf8_valid_len(const unsigned char *s, size_t n);

/* For s[0..n) not starting a well-formed sequence: the length of its
 * maximal subpart (the bytes one U+FFFD replaces, as WHATWG and Hugging
 * Face's lossy decoding count them), at least 1. */
size_t utf8_bad_len(const unsigned char *s, size_t n);

#endif
