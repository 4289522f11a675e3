/* test_fuzz_regressions — replays every seed (tests/fuzz/corpus/NAME/) and
 * every reproducer of a bug the fuzzers found (tests/fuzz/regressions/NAME/)
 * through its libFuzzer harness, built here with the project's compiler and
 * flags (so under SANITIZE=1 with ASan and UBSan, leak checking on).
 *
 * The harness bodies are included as they are: each tests/fuzz/fuzz_NAME.c
 * defines fuzz_NAME(data, size), which returns 0 or aborts when a property
 * it checks is broken; a memory error or a crash ends this program, which
 * is reported as that harness failing, with the file being replayed named
 * on stderr just before: each harness runs in a child process, so one crash
 * does not hide the others (and leak checking runs as each child exits).
 * Each input is copied into a buffer of exactly its size, so a read past its
 * end is caught. Runs from the repository root. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "fuzz/fuzz_config.c"
#include "fuzz/fuzz_jsonl.c"
#include "fuzz/fuzz_safetensors.c"
#include "fuzz/fuzz_store_blob.c"
#include "fuzz/fuzz_store_open.c"
#include "fuzz/fuzz_template.c"
#include "fuzz/fuzz_tokenize.c"
#include "fuzz/fuzz_tokenizer_json.c"

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs FN on every regular file of DIR in name order; returns how many. A
 * missing directory counts as empty. */
static int replay_dir(const char *dir, int (*fn)(const uint8_t *, size_t)) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **p = realloc(names, cap * sizeof *p);
            if (!p) abort();
            names = p;
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_names);
    int count = 0;
    for (size_t i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        FILE *f = fopen(path, "rb");
        CHECK_MSG(f != NULL, "cannot open %s", path);
        if (f) {
            fseek(f, 0, SEEK_END);
            long len = ftell(f);
            fseek(f, 0, SEEK_SET);
            uint8_t *buf = malloc(len > 0 ? (size_t)len : 1);
            CHECK(buf != NULL);
            size_t got = len > 0 ? fread(buf, 1, (size_t)len, f) : 0;
            fclose(f);
            CHECK_MSG(got == (size_t)(len > 0 ? len : 0), "short read of %s", path);
            fprintf(stderr, "replay %s\n", path);
            CHECK_MSG(fn(buf, got) == 0, "%s", path);
            free(buf);
            count++;
        }
        free(names[i]);
    }
    free(names);
    return count;
}

static void replay_all(const char *name, int (*fn)(const uint8_t *, size_t)) {
    char dir[256];
    snprintf(dir, sizeof dir, "tests/fuzz/corpus/%s", name);
    int seeds = replay_dir(dir, fn);
    CHECK_MSG(seeds > 0, "no seeds in %s (run from the repository root)", dir);
    snprintf(dir, sizeof dir, "tests/fuzz/regressions/%s", name);
    replay_dir(dir, fn);
}

/* replay_all in a child process; its exit status is the verdict. */
static void replay(const char *name, int (*fn)(const uint8_t *, size_t)) {
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        replay_all(name, fn);
        exit(check_current_failed ? 1 : 0);
    }
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    if (WIFSIGNALED(st))
        CHECK_MSG(0, "harness %s crashed (signal %d) on the file named last above", name,
                  WTERMSIG(st));
    else
        CHECK_MSG(WEXITSTATUS(st) == 0, "harness %s failed (exit %d; see above)", name,
                  WEXITSTATUS(st));
}

static void test_safetensors(void) { replay("safetensors", fuzz_safetensors); }
static void test_tokenizer_json(void) { replay("tokenizer_json", fuzz_tokenizer_json); }
static void test_tokenize(void) { replay("tokenize", fuzz_tokenize); }
static void test_jsonl(void) { replay("jsonl", fuzz_jsonl); }
static void test_config(void) { replay("config", fuzz_config); }
static void test_store_blob(void) { replay("store_blob", fuzz_store_blob); }
static void test_store_open(void) { replay("store_open", fuzz_store_open); }
static void test_template(void) { replay("template", fuzz_template); }

int main(void) {
    fuzz_dir();  /* made here, shared by the children, removed at exit even after a crash */
    RUN(test_safetensors);
    RUN(test_tokenizer_json);
    RUN(test_tokenize);
    RUN(test_jsonl);
    RUN(test_config);
    RUN(test_store_blob);
    RUN(test_store_open);
    RUN(test_template);
    return check_summary();
}
