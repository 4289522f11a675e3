/* log — what the program tells the person watching it: one-line messages,
 * a progress line, peak memory, and a monotonic clock.
 *
 * Messages go to stderr (or the stream set by log_set_stream) as
 * "dpoc: message", without timestamps. These are for people; errors still
 * travel as dp_err values and are printed once by the stage. */
#ifndef DP_LOG_H
#define DP_LOG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* "dpoc: " + message + newline. */
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "dpoc: warning: " + message + newline. */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Where log_info/log_warn write (NULL restores stderr). For tests. */
void log_set_stream(FILE *f);

/* Seconds from an arbitrary fixed point (CLOCK_MONOTONIC). */
double log_now_seconds(void);

/* Peak resident set size of this process in bytes (getrusage, falling back
 * to VmHWM in /proc/self/status); 0 if neither is available. */
uint64_t log_peak_rss_bytes(void);

/* "512 B", "1.5 KiB", "3.0 GiB" (binary units, one decimal). Returns BUF. */
char *log_format_bytes(char *buf, size_t cap, double bytes);
/* "45s", "1m05s", "2h03m" (seconds rounded down; negative is "?"). Returns BUF. */
char *log_format_duration(char *buf, size_t cap, double seconds);

/* "elapsed 1m05s, ETA 9m10s": ELAPSED seconds for DONE of TOTAL units, the
 * ETA extrapolated at the same rate (left out unless 0 < done < total).
 * The progress line below and the training stages' step lines use it.
 * Returns BUF. */
char *log_format_elapsed_eta(char *buf, size_t cap, double elapsed, int64_t done, int64_t total);

/* A progress reporter for a loop over TOTAL items (0 if unknown).
 *
 * On a terminal it redraws one line in place (bar, items, tokens/s, ETA) at
 * most every tty_interval seconds; elsewhere (logs, pipes) it prints a plain
 * line at most every interval seconds. log_progress_finish prints the final
 * line. A log_info/log_warn to the same stream while a terminal line is
 * drawn clears that line first. Fields may be adjusted after log_progress_init, before the first add:
 * out, tty, interval, tty_interval and clock (tests inject a fake clock; set
 * start = clock() again after replacing it). */
typedef struct log_progress {
    const char *label;       /* borrowed; must outlive the reporter */
    int64_t total, done, tokens;
    double start;            /* clock() at init */
    double last_print;       /* clock() at the last line, or -1 */
    FILE *out;               /* default log_info's stream (stderr) */
    int tty;                 /* default isatty(fileno(out)) */
    double interval;         /* default 10 s (non-terminal) */
    double tty_interval;     /* default 0.2 s (terminal) */
    double (*clock)(void);   /* default log_now_seconds */
    int pending;             /* a terminal line is drawn without its newline */
} log_progress;

void log_progress_init(log_progress *p, const char *label, int64_t total);
/* Adds ITEMS done and TOKENS processed; prints if the interval has passed. */
void log_progress_add(log_progress *p, int64_t items, int64_t tokens);
/* Prints the final line (always) and ends a terminal line with a newline.
 * Call it before P goes out of scope. */
void log_progress_finish(log_progress *p);

/* The line log_progress would print now, without the "dpoc: " prefix or the
 * terminal control codes: "LABEL: 120/1000 items (12.0%), 3.4k tok/s,
 * elapsed 1m05s, ETA 9m10s". With bar != 0 it starts with a 20-cell bar
 * "[#####...............] ". Returns BUF. */
char *log_progress_format(const log_progress *p, double now, int bar, char *buf, size_t cap);

#endif
