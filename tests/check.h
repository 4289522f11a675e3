/* check — the test harness every tests/test_*.c uses.
 *
 * A test file defines functions `static void test_x(void)` and a main() that
 * calls RUN(test_x) for each, then returns check_summary(). Each CHECK that
 * fails prints file:line and the expression, marks the current test failed
 * and continues. check_summary() prints "N passed, N failed" and returns the
 * exit status (non-zero if anything failed). */
#ifndef DP_CHECK_H
#define DP_CHECK_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int check_passed, check_failed, check_current_failed;
static const char *check_current_name;

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: %s: CHECK(%s) failed\n", __FILE__, __LINE__,          \
                    check_current_name, #cond);                                           \
            check_current_failed = 1;                                                     \
        }                                                                                 \
    } while (0)

#define CHECK_MSG(cond, ...)                                                              \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: %s: CHECK(%s) failed: ", __FILE__, __LINE__,          \
                    check_current_name, #cond);                                           \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fputc('\n', stderr);                                                          \
            check_current_failed = 1;                                                     \
        }                                                                                 \
    } while (0)

#define CHECK_STR(a, b)                                                                   \
    do {                                                                                  \
        const char *check_a_ = (a), *check_b_ = (b);                                      \
        if (!check_a_ || !check_b_ || strcmp(check_a_, check_b_) != 0) {                  \
            fprintf(stderr, "%s:%d: %s: %s == %s failed:\n  got:      %s\n  expected: %s\n", \
                    __FILE__, __LINE__, check_current_name, #a, #b,                       \
                    check_a_ ? check_a_ : "(null)", check_b_ ? check_b_ : "(null)");      \
            check_current_failed = 1;                                                     \
        }                                                                                 \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                             \
    do {                                                                                  \
        double check_a_ = (a), check_b_ = (b);                                            \
        if (!(fabs(check_a_ - check_b_) <= (tol))) {                                      \
            fprintf(stderr, "%s:%d: %s: |%s - %s| <= %g failed: %.9g vs %.9g\n",          \
                    __FILE__, __LINE__, check_current_name, #a, #b, (double)(tol),        \
                    check_a_, check_b_);                                                  \
            check_current_failed = 1;                                                     \
        }                                                                                 \
    } while (0)

#define RUN(fn)                                                                           \
    do {                                                                                  \
        check_current_name = #fn;                                                         \
        check_current_failed = 0;                                                         \
        fn();                                                                             \
        if (check_current_failed) {                                                       \
            check_failed++;                                                               \
            fprintf(stderr, "FAIL %s\n", #fn);                                            \
        } else {                                                                          \
            check_passed++;                                                               \
        }                                                                                 \
    } while (0)

/* Random test inputs: the next double in [0, 1) (53 bits) of the splitmix64
 * stream whose state is *STATE, so a test's inputs are the same every run. */
static inline double check_urand(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0;
}

static inline int check_summary(void) {
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
