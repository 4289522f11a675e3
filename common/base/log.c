/* log — see log.h. */
#include "log.h"

#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static FILE *log_stream;
/* The terminal progress line currently drawn without a newline, if any: a
 * message printed meanwhile first clears it (the next update redraws it). */
static log_progress *log_active;

static FILE *log_out(void) { return log_stream ? log_stream : stderr; }

void log_set_stream(FILE *f) { log_stream = f; }

static void log_vline(const char *prefix, const char *fmt, va_list ap) {
    /* Format first so the line reaches the stream in one write. */
    char buf[2048];
    int k = snprintf(buf, sizeof buf, "dpoc: %s", prefix);
    vsnprintf(buf + k, sizeof buf - (size_t)k, fmt, ap);
    FILE *f = log_out();
    if (log_active && log_active->pending && log_active->out == f) {
        fputs("\r\033[K", f);
        log_active->pending = 0;
    }
    fprintf(f, "%s\n", buf);
    fflush(f);
}

void log_info(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_vline("", fmt, ap);
    va_end(ap);
}

void log_warn(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_vline("warning: ", fmt, ap);
    va_end(ap);
}

double log_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint64_t log_peak_rss_bytes(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0 && ru.ru_maxrss > 0)
        return (uint64_t)ru.ru_maxrss * 1024; /* Linux reports KiB */
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    uint64_t kib = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %" SCNu64 " kB", &kib) == 1) break;
    fclose(f);
    return kib * 1024;
}

char *log_format_bytes(char *buf, size_t cap, double bytes) {
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int u = 0;
    double v = bytes < 0 ? -bytes : bytes;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    /* Round now so 1023.96 KiB prints as 1.0 MiB rather than 1024.0 KiB. */
    if (u > 0 && u < 5 && v >= 1023.95) {
        v /= 1024;
        u++;
    }
    const char *sign = bytes < 0 ? "-" : "";
    if (u == 0) snprintf(buf, cap, "%s%.0f B", sign, v);
    else snprintf(buf, cap, "%s%.1f %s", sign, v, units[u]);
    return buf;
}

char *log_format_duration(char *buf, size_t cap, double seconds) {
    if (!(seconds >= 0) || seconds > 1e9) {
        snprintf(buf, cap, "?");
        return buf;
    }
    long long s = (long long)seconds;
    if (s < 60) snprintf(buf, cap, "%llds", s);
    else if (s < 3600) snprintf(buf, cap, "%lldm%02llds", s / 60, s % 60);
    else snprintf(buf, cap, "%lldh%02lldm", s / 3600, s % 3600 / 60);
    return buf;
}

char *log_format_elapsed_eta(char *buf, size_t cap, double elapsed, int64_t done, int64_t total) {
    char d[32], e[32];
    log_format_duration(d, sizeof d, elapsed);
    if (total > 0 && done > 0 && done < total)
        snprintf(buf, cap, "elapsed %s, ETA %s", d,
                 log_format_duration(e, sizeof e, elapsed * (double)(total - done) / (double)done));
    else
        snprintf(buf, cap, "elapsed %s", d);
    return buf;
}

/* "950", "3.4k", "12.0M" */
static void log_format_rate(char *buf, size_t cap, double r) {
    if (r < 1000) snprintf(buf, cap, "%.0f", r);
    else if (r < 1e6) snprintf(buf, cap, "%.1fk", r / 1e3);
    else snprintf(buf, cap, "%.1fM", r / 1e6);
}

void log_progress_init(log_progress *p, const char *label, int64_t total) {
    memset(p, 0, sizeof *p);
    p->label = label;
    p->total = total > 0 ? total : 0;
    p->out = log_out();
    p->tty = isatty(fileno(p->out));
    p->interval = 10.0;
    p->tty_interval = 0.2;
    p->clock = log_now_seconds;
    p->start = p->clock();
    p->last_print = -1;
}

char *log_progress_format(const log_progress *p, double now, int bar, char *buf, size_t cap) {
    double elapsed = now - p->start;
    size_t k = 0;
#define LOG_PUT(...)                                                        \
    do {                                                                    \
        if (k < cap) {                                                      \
            int w_ = snprintf(buf + k, cap - k, __VA_ARGS__);               \
            k = w_ < 0 ? cap : k + (size_t)w_;                              \
        }                                                                   \
    } while (0)
    LOG_PUT("%s: ", p->label);
    double frac = p->total > 0 ? (double)p->done / (double)p->total : 0;
    if (frac > 1) frac = 1;
    if (bar && p->total > 0) {
        int cells = (int)(frac * 20);
        char b[21];
        for (int i = 0; i < 20; i++) b[i] = i < cells ? '#' : '.';
        b[20] = '\0';
        LOG_PUT("[%s] ", b);
    }
    if (p->total > 0)
        LOG_PUT("%" PRId64 "/%" PRId64 " items (%.1f%%)", p->done, p->total, 100 * frac);
    else
        LOG_PUT("%" PRId64 " items", p->done);
    char r[32], d[80];
    if (p->tokens > 0) {
        log_format_rate(r, sizeof r, elapsed > 0 ? (double)p->tokens / elapsed : 0);
        LOG_PUT(", %s tok/s", r);
    }
    LOG_PUT(", %s", log_format_elapsed_eta(d, sizeof d, elapsed, p->done, p->total));
#undef LOG_PUT
    return buf;
}

static void log_progress_print(log_progress *p, double now, int final) {
    char line[512];
    log_progress_format(p, now, p->tty, line, sizeof line);
    if (p->tty) {
        /* Return to column 0 and clear the line, then redraw. */
        fprintf(p->out, "\r\033[Kdpoc: %s%s", line, final ? "\n" : "");
        p->pending = !final;
        log_active = final ? NULL : p;
    } else {
        fprintf(p->out, "dpoc: %s\n", line);
    }
    fflush(p->out);
    p->last_print = now;
}

void log_progress_add(log_progress *p, int64_t items, int64_t tokens) {
    p->done += items;
    p->tokens += tokens;
    double now = p->clock();
    double every = p->tty ? p->tty_interval : p->interval;
    double since = now - (p->last_print >= 0 ? p->last_print : p->start);
    if (since >= every) log_progress_print(p, now, 0);
}

void log_progress_finish(log_progress *p) {
    log_progress_print(p, p->clock(), 1);
    p->pending = 0;
    if (log_active == p) log_active = NULL;
}
