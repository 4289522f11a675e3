/* fuzz_common — what the harnesses in tests/fuzz/ share: a private scratch
 * directory for inputs that the library only reads from files, and a way to
 * stop loudly when a property (not just memory safety) is broken.
 *
 * Each harness file defines `int fuzz_NAME(const uint8_t *data, size_t size)`
 * (returns 0; a broken property aborts) and, under -DDPOC_LIBFUZZER, the
 * libFuzzer entry point calling it. tests/test_fuzz_regressions.c includes
 * every harness file into one program, so helpers here are static and the
 * header is guarded. The scratch directory is removed at exit. */
#ifndef DP_FUZZ_COMMON_H
#define DP_FUZZ_COMMON_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static char fuzz_dir_path[256];
static pid_t fuzz_dir_owner;

/* Removes PATH: a file, or a directory with files and directories of files
 * in it (what the harnesses make). */
static __attribute__((unused)) void fuzz_remove_tree(const char *path, int depth) {
    if (unlink(path) == 0 || depth > 2) return;
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(p, sizeof p, "%s/%s", path, e->d_name);
                fuzz_remove_tree(p, depth + 1);
            }
        closedir(d);
    }
    rmdir(path);
}

/* At exit of the process that made the directory (not of a forked child,
 * which shares it). */
static __attribute__((unused)) void fuzz_dir_remove(void) {
    if (!fuzz_dir_path[0] || getpid() != fuzz_dir_owner) return;
    fuzz_remove_tree(fuzz_dir_path, 0);
    fuzz_dir_path[0] = '\0';
}

/* The scratch directory, made on first use under $DPOC_FUZZ_TMP, else on
 * tmpfs when there is one (inputs are written once per run), else /tmp. */
static __attribute__((unused)) const char *fuzz_dir(void) {
    if (fuzz_dir_path[0]) return fuzz_dir_path;
    const char *base = getenv("DPOC_FUZZ_TMP");
    if (!base || !*base) base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "%s/dpoc-fuzz.XXXXXX", base);
    if (!mkdtemp(fuzz_dir_path)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    fuzz_dir_owner = getpid();
    atexit(fuzz_dir_remove);
    return fuzz_dir_path;
}

/* DIR/NAME in a rotating static buffer. */
static __attribute__((unused)) const char *fuzz_path(const char *name) {
    static char buf[4][512];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 512, "%s/%s", fuzz_dir(), name);
    return p;
}

/* Writes DATA to DIR/NAME (replacing it) and returns the path. */
static __attribute__((unused)) const char *fuzz_write(const char *name, const void *data, size_t size) {
    const char *path = fuzz_path(name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f)) {
        perror(path);
        abort();
    }
    return path;
}

static __attribute__((unused)) void fuzz_unlink(const char *name) { unlink(fuzz_path(name)); }

/* A property the code promises does not hold: report and abort, so libFuzzer
 * saves the input and the regression runner fails. */
#define FUZZ_ASSERT(cond, ...)                                                            \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: fuzz property failed: %s: ", __FILE__, __LINE__,      \
                    #cond);                                                               \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fputc('\n', stderr);                                                          \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

/* An error message must be one non-empty line. An empty message aborts; a
 * message with a newline (usually input text echoed raw) is reported once
 * per process, and aborts only with DPOC_FUZZ_STRICT=1, so that one known
 * defect does not stop the search for others. */
static __attribute__((unused)) void fuzz_check_one_line(const char *msg, const char *file, int line) {
    static int reported;
    FUZZ_ASSERT(msg[0], "empty error message (%s:%d)", file, line);
    if (!strchr(msg, '\n')) return;
    const char *strict = getenv("DPOC_FUZZ_STRICT");
    if (strict && strcmp(strict, "1") == 0)
        FUZZ_ASSERT(0, "error message is more than one line (%s:%d): [%s]", file, line, msg);
    if (!reported++)
        fprintf(stderr, "fuzz: note: error message is more than one line (%s:%d): [%s]\n",
                file, line, msg);
}
#define FUZZ_ASSERT_ONE_LINE(e) fuzz_check_one_line((e).msg, __FILE__, __LINE__)

/* Where the repository's fixtures are: $DPOC_ROOT or the working directory. */
static __attribute__((unused)) const char *fuzz_root_path(const char *rel) {
    static char buf[4][512];
    static int k;
    char *p = buf[k++ % 4];
    const char *root = getenv("DPOC_ROOT");
    snprintf(p, 512, "%s/%s", root && *root ? root : ".", rel);
    return p;
}

#endif
