/* plot — drives Debian's gnuplot (package gnuplot-nox) as a child process.
 *
 * gnuplot is run with a fixed argv, never through a shell, inside a given
 * directory, so scripts name their data and image files relative to it: no
 * path from a configuration is ever executed or interpolated into a
 * command line. Its stdout and stderr go to <dir>/gnuplot.log. */
#ifndef DP_PLOT_H
#define DP_PLOT_H

#include <stddef.h>

#include "error.h"

typedef struct plot_terminal {
    char name[16];   /* "pngcairo", "png" or "svg" */
    char ext[8];     /* "png" or "svg" */
} plot_terminal;

/* Asks gnuplot (run in DIR, which must exist) which terminals it has and
 * picks the best image one: pngcairo, else png, else svg. Fails naming the
 * cause when gnuplot is missing, fails, or has none of them. */
int plot_find_terminal(const char *dir, plot_terminal *out, dp_err *err);

/* The `set terminal` command for T at WIDTH x HEIGHT pixels, plain text
 * (no enhanced-text markup) and a white background, into BUF. */
void plot_terminal_command(const plot_terminal *t, int width, int height, char *buf, size_t size);

/* Runs `gnuplot SCRIPT` in DIR (SCRIPT relative to DIR). On failure the
 * error carries gnuplot's last line of output and the log's path. */
int plot_run(const char *dir, const char *script, dp_err *err);

/* TEXT as a gnuplot single-quoted string literal (quotes doubled), into
 * BUF; truncated to fit. */
void plot_quote(const char *text, char *buf, size_t size);

#endif
