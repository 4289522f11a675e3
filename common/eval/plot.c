/* plot — see plot.h. */
#include "plot.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

extern char **environ;

#define PLOT_LOG "gnuplot.log"

/* Runs gnuplot with ARGV (argv[0] "gnuplot", looked up on PATH) in DIR,
 * output to DIR/gnuplot.log, and waits. Returns 0 with *status (as from
 * waitpid), or -1 with err when it could not be started. */
static int spawn_gnuplot(const char *dir, char *const argv[], int *status, dp_err *err) {
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa)) return dp_fail(err, "gnuplot: out of memory");
    int rc = posix_spawn_file_actions_addchdir_np(&fa, dir);
    if (!rc) rc = posix_spawn_file_actions_addopen(&fa, 1, PLOT_LOG, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (!rc) rc = posix_spawn_file_actions_adddup2(&fa, 1, 2);
    if (!rc) rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    pid_t pid = 0;
    if (!rc) rc = posix_spawnp(&pid, "gnuplot", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc == ENOENT)
        return dp_fail(err, "gnuplot: not found on PATH; install it with `apt-get install "
                            "gnuplot-nox` (`make deps` does)");
    if (rc) return dp_fail(err, "gnuplot: cannot start it in %s: %s", dir, strerror(rc));
    while (waitpid(pid, status, 0) < 0)
        if (errno != EINTR) return dp_fail(err, "gnuplot: waitpid: %s", strerror(errno));
    return 0;
}

/* DIR/gnuplot.log, malloc'd ("" when unreadable), owned by the caller. */
static char *read_log(const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/" PLOT_LOG, dir);
    FILE *f = fopen(path, "rb");
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        if (f) fclose(f);
        return NULL;
    }
    if (f) {
        n = fread(buf, 1, cap, f);
        fclose(f);
    }
    buf[n] = '\0';
    return buf;
}

/* The last non-blank line of TEXT copied into BUF. */
static void last_line(const char *text, char *buf, size_t size) {
    const char *end = text + strlen(text);
    while (end > text && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ')) end--;
    const char *start = end;
    while (start > text && start[-1] != '\n') start--;
    while (start < end && *start == ' ') start++;
    snprintf(buf, size, "%.*s", (int)(end - start), start);
}

/* Turns a finished child's STATUS into 0 or an error naming its output. */
static int check_status(const char *dir, const char *what, int status, dp_err *err) {
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
    char *log = read_log(dir);
    char line[512];
    last_line(log ? log : "", line, sizeof line);
    free(log);
    char how[64];
    if (WIFEXITED(status)) snprintf(how, sizeof how, "exit %d", WEXITSTATUS(status));
    else snprintf(how, sizeof how, "signal %d", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return dp_fail(err, "gnuplot failed on %s (%s): %s (output in %s/" PLOT_LOG ")", what, how,
                   line[0] ? line : "no output", dir);
}

int plot_find_terminal(const char *dir, plot_terminal *out, dp_err *err) {
    char *const argv[] = {"gnuplot", "-d", "-e", "set print '-'; print GPVAL_TERMINALS", NULL};
    int status;
    if (spawn_gnuplot(dir, argv, &status, err)) return -1;
    if (check_status(dir, "its list of terminals", status, err)) return -1;
    char *log = read_log(dir);
    if (!log) return dp_fail(err, "gnuplot: out of memory");
    static const char *const prefer[][2] = {{"pngcairo", "png"}, {"png", "png"}, {"svg", "svg"}};
    int found = -1;
    for (int p = 0; p < 3 && found < 0; p++) {
        size_t k = strlen(prefer[p][0]);
        for (const char *s = log; (s = strstr(s, prefer[p][0])); s += k) {
            int starts = s == log || s[-1] == ' ' || s[-1] == '\n';
            int ends = s[k] == ' ' || s[k] == '\n' || s[k] == '\0';
            if (starts && ends) {
                found = p;
                break;
            }
        }
    }
    free(log);
    if (found < 0)
        return dp_fail(err, "gnuplot: has no pngcairo, png or svg terminal (see %s/" PLOT_LOG
                            "); install Debian's gnuplot-nox",
                       dir);
    snprintf(out->name, sizeof out->name, "%s", prefer[found][0]);
    snprintf(out->ext, sizeof out->ext, "%s", prefer[found][1]);
    return 0;
}

void plot_terminal_command(const plot_terminal *t, int width, int height, char *buf, size_t size) {
    if (!strcmp(t->name, "pngcairo"))
        snprintf(buf, size, "set terminal pngcairo size %d,%d noenhanced font 'sans,10' background '#ffffff'",
                 width, height);
    else if (!strcmp(t->name, "png"))
        snprintf(buf, size, "set terminal png size %d,%d noenhanced background '#ffffff'", width, height);
    else
        snprintf(buf, size, "set terminal svg size %d,%d noenhanced font 'sans,10' background '#ffffff'",
                 width, height);
}

int plot_run(const char *dir, const char *script, dp_err *err) {
    char *const argv[] = {"gnuplot", "-d", (char *)script, NULL};
    int status;
    if (spawn_gnuplot(dir, argv, &status, err)) return -1;
    char what[4300];
    snprintf(what, sizeof what, "%s/%s", dir, script);
    return check_status(dir, what, status, err);
}

void plot_quote(const char *text, char *buf, size_t size) {
    size_t k = 0;
    if (size < 3) {
        if (size) buf[0] = '\0';
        return;
    }
    buf[k++] = '\'';
    for (const char *s = text; *s && k + 3 < size; s++) {
        if (*s == '\'') buf[k++] = '\'';
        if (*s == '\n' || *s == '\r') continue;
        buf[k++] = *s;
    }
    buf[k++] = '\'';
    buf[k] = '\0';
}
