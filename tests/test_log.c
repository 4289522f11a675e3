/* test_log — message format, progress lines under a fake clock (format,
 * rate limiting, terminal redraw), byte/duration formatting, peak RSS
 * against /proc/self/status, and the monotonic clock. */
#include "log.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"

static double fake_now;
static double fake_clock(void) { return fake_now; }

/* What is written to a memory stream: capture_open opens it, capture_text
 * closes it and returns the text (the caller frees c->text). */
typedef struct capture {
    char *text;
    size_t len;
    FILE *f;
} capture;

static FILE *capture_open(capture *c) {
    c->text = NULL;
    c->len = 0;
    return c->f = open_memstream(&c->text, &c->len);
}

static const char *capture_text(capture *c) {
    fclose(c->f);
    return c->text;
}

/* A reporter writing to OUT, timed by fake_clock from T0. */
static void progress_on_stream(log_progress *p, const char *label, int64_t total, int tty,
                               double t0, FILE *out) {
    log_progress_init(p, label, total);
    fake_now = t0;
    p->clock = fake_clock;
    p->start = fake_clock();
    p->out = out;
    p->tty = tty;
}

/* A formatter and its cases: each value, and the text it must give. */
typedef char *(*format_fn)(char *buf, size_t cap, double value);
typedef struct format_case {
    double value;
    const char *want;
} format_case;

static void check_formats(format_fn format, const format_case *cases, size_t n) {
    char b[32];
    for (size_t i = 0; i < n; i++) CHECK_STR(format(b, sizeof b, cases[i].value), cases[i].want);
}

static void test_format_bytes(void) {
    static const format_case cases[] = {
        {0, "0 B"},
        {512, "512 B"},
        {1023, "1023 B"},
        {1024, "1.0 KiB"},
        {1536, "1.5 KiB"},
        {1048575, "1.0 MiB"},
        {124.0 * 1024 * 1024 * 1024 / 10, "12.4 GiB"},
        {3.0 * (1ULL << 30), "3.0 GiB"},
        {1.5 * (1ULL << 40), "1.5 TiB"},
        {-2048, "-2.0 KiB"},
    };
    check_formats(log_format_bytes, cases, sizeof cases / sizeof cases[0]);
    char b[32];
    CHECK_STR(log_format_bytes(b, 6, 1536), "1.5 K"); /* truncated, still terminated */
}

static void test_format_duration(void) {
    static const format_case cases[] = {
        {0, "0s"}, {59.9, "59s"}, {65, "1m05s"}, {3599, "59m59s"},
        {3600, "1h00m"}, {7380, "2h03m"}, {-1, "?"}, {NAN, "?"},
    };
    check_formats(log_format_duration, cases, sizeof cases / sizeof cases[0]);
}

static void test_format_elapsed_eta(void) {
    char b[80];
    CHECK_STR(log_format_elapsed_eta(b, sizeof b, 65, 1, 10), "elapsed 1m05s, ETA 9m45s");
    CHECK_STR(log_format_elapsed_eta(b, sizeof b, 30, 3, 4), "elapsed 30s, ETA 10s");
    CHECK_STR(log_format_elapsed_eta(b, sizeof b, 30, 4, 4), "elapsed 30s");   /* finished */
    CHECK_STR(log_format_elapsed_eta(b, sizeof b, 30, 0, 4), "elapsed 30s");   /* no rate yet */
    CHECK_STR(log_format_elapsed_eta(b, sizeof b, 30, 5, 0), "elapsed 30s");   /* total unknown */
}

static void test_info(void) {
    capture c;
    log_set_stream(capture_open(&c));
    log_info("loaded %d tensors from %s", 12, "model.safetensors");
    log_warn("clipping %s", "grads");
    log_set_stream(NULL);
    CHECK_STR(capture_text(&c), "dpoc: loaded 12 tensors from model.safetensors\n"
                    "dpoc: warning: clipping grads\n");
    free(c.text);
}

static void test_progress_plain(void) {
    capture c;
    log_progress p;
    progress_on_stream(&p, "precompute", 10, 0, 100.0, capture_open(&c));
    CHECK(p.interval == 10.0);
    fake_now = 105;
    log_progress_add(&p, 1, 500);   /* 5 s: too early */
    fake_now = 110;
    log_progress_add(&p, 1, 500);   /* 10 s: prints */
    fake_now = 115;
    log_progress_add(&p, 2, 1000);  /* 5 s after the last line: too early */
    fake_now = 120.5;
    log_progress_add(&p, 1, 1000);  /* prints */
    fake_now = 121;
    log_progress_add(&p, 5, 1000);
    log_progress_finish(&p);        /* always prints */
    CHECK_STR(capture_text(&c),
              "dpoc: precompute: 2/10 items (20.0%), 100 tok/s, elapsed 10s, ETA 40s\n"
              "dpoc: precompute: 5/10 items (50.0%), 146 tok/s, elapsed 20s, ETA 20s\n"
              "dpoc: precompute: 10/10 items (100.0%), 190 tok/s, elapsed 21s\n");
    free(c.text);
}

static void test_progress_unknown_total(void) {
    log_progress p;
    progress_on_stream(&p, "scan", 0, 0, 0.0, NULL);
    p.done = 1234;
    p.tokens = 5000000;
    char b[256];
    CHECK_STR(log_progress_format(&p, 2.0, 1, b, sizeof b),
              "scan: 1234 items, 2.5M tok/s, elapsed 2s");
    p.tokens = 0;
    CHECK_STR(log_progress_format(&p, 3725.0, 0, b, sizeof b), "scan: 1234 items, elapsed 1h02m");
}

static void test_progress_tty(void) {
    capture c;
    log_progress p;
    progress_on_stream(&p, "train", 4, 1, 0.0, capture_open(&c));
    fake_now = 0.1;
    log_progress_add(&p, 1, 100);   /* within 0.2 s: no redraw */
    fake_now = 0.5;
    log_progress_add(&p, 0, 100);   /* redraw */
    CHECK(p.pending == 1);
    log_set_stream(c.f);
    log_info("checkpoint saved");   /* clears the drawn line first */
    CHECK(p.pending == 0);
    fake_now = 1.0;
    log_progress_add(&p, 3, 300);
    log_progress_finish(&p);
    CHECK(p.pending == 0);
    log_info("done");               /* nothing drawn: no clearing */
    log_set_stream(NULL);
    CHECK_STR(capture_text(&c),
              "\r\033[Kdpoc: train: [#####...............] 1/4 items (25.0%), 400 tok/s, "
              "elapsed 0s, ETA 1s"
              "\r\033[Kdpoc: checkpoint saved\n"
              "\r\033[Kdpoc: train: [####################] 4/4 items (100.0%), 500 tok/s, "
              "elapsed 1s"
              "\r\033[Kdpoc: train: [####################] 4/4 items (100.0%), 500 tok/s, "
              "elapsed 1s\n"
              "dpoc: done\n");
    free(c.text);
}

/* 10,000 updates over 10 fake seconds redraw at most 5 times a second on a
 * terminal and once per interval elsewhere. */
static void test_progress_rate_limit(void) {
    for (int tty = 0; tty <= 1; tty++) {
        capture c;
        log_progress p;
        progress_on_stream(&p, "x", 10000, tty, 0.0, capture_open(&c));
        p.interval = 2.0;
        for (int i = 1; i <= 10000; i++) {
            fake_now = i * 0.001;
            log_progress_add(&p, 1, 10);
        }
        int lines = 0;
        for (const char *t = capture_text(&c); *t; t++) lines += tty ? *t == '\r' : *t == '\n';
        if (tty) CHECK_MSG(lines >= 45 && lines <= 51, "%d redraws", lines);
        else CHECK_MSG(lines == 5, "%d lines", lines);
        free(c.text);
    }
}

static uint64_t proc_vmhwm_bytes(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    unsigned long long kib = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %llu kB", &kib) == 1) break;
    fclose(f);
    return kib * 1024;
}

static void test_peak_rss(void) {
    size_t n = 64u << 20;
    char *big = malloc(n);
    CHECK(big != NULL);
    if (!big) return;
    memset(big, 1, n);
    uint64_t peak = log_peak_rss_bytes(), hwm = proc_vmhwm_bytes();
    CHECK_MSG(peak >= n, "peak %llu < %zu", (unsigned long long)peak, n);
    /* Two views of the same high-water mark, read a moment apart. */
    CHECK_MSG(hwm > 0 && peak <= hwm + (4u << 20) && hwm <= peak + (4u << 20),
              "getrusage %llu vs VmHWM %llu", (unsigned long long)peak, (unsigned long long)hwm);
    volatile char sink = big[n - 1];
    (void)sink;
    free(big);
}

static void test_now_seconds(void) {
    double a = log_now_seconds();
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    double b = log_now_seconds();
    CHECK_MSG(b - a >= 0.019 && b - a < 2.0, "slept 20 ms, clock moved %g s", b - a);
}

int main(void) {
    RUN(test_format_bytes);
    RUN(test_format_duration);
    RUN(test_format_elapsed_eta);
    RUN(test_info);
    RUN(test_progress_plain);
    RUN(test_progress_unknown_total);
    RUN(test_progress_tty);
    RUN(test_progress_rate_limit);
    RUN(test_peak_rss);
    RUN(test_now_seconds);
    return check_summary();
}
