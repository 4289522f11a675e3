/* dpoc — one binary, one subcommand per stage or tool.
 *
 * Each command is `int cmd_NAME(int argc, char **argv)` (argv[0] is the
 * command name) living in its own file under stages/; it returns the exit
 * status: 0 success, 1 error (message printed once, on one line), 2 usage. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dist.h"
#include "log.h"
#include "safetensors.h"

typedef int (*command_fn)(int argc, char **argv);

/* Declared weak so the binary links while a command is still being built;
 * a missing one says so instead of crashing. */
#define DECLARE(name) extern int cmd_##name(int argc, char **argv) __attribute__((weak));
DECLARE(precompute)
DECLARE(train)
DECLARE(sweep)
DECLARE(sft)
DECLARE(sample)
DECLARE(eval)
DECLARE(report)
DECLARE(tokenize)
DECLARE(store)
DECLARE(config)
DECLARE(model)
DECLARE(template)

static const struct {
    const char *name;
    command_fn *fn;
    const char *summary;
} commands[] = {
    {"precompute", (command_fn[]){cmd_precompute}, "stage one: cache reference log-probabilities in the store"},
    {"train", (command_fn[]){cmd_train}, "stage two: train the policy against the cache"},
    {"sweep", (command_fn[]){cmd_sweep}, "train every combination of the sweep grid"},
    {"sft", (command_fn[]){cmd_sft}, "stage zero: supervised fine-tuning on the responses"},
    {"sample", (command_fn[]){cmd_sample}, "generate text from a model"},
    {"eval", (command_fn[]){cmd_eval}, "evaluate the reference and trained policies"},
    {"report", (command_fn[]){cmd_report}, "plots and a summary of runs"},
    {"tokenize", (command_fn[]){cmd_tokenize}, "JSON Lines text <-> token ids with a tokenizer.json"},
    {"store", (command_fn[]){cmd_store}, "inspect the cache: info, verify, dump, merge"},
    {"config", (command_fn[]){cmd_config}, "print the resolved configuration or its schema"},
    {"model", (command_fn[]){cmd_model}, "model info: sizes and training memory"},
    {"template", (command_fn[]){cmd_template}, "render conversations with a model's chat template"},
};
#define N_COMMANDS ((int)(sizeof commands / sizeof commands[0]))

static void usage(FILE *f) {
    fprintf(f, "usage: dpoc COMMAND [options]   (dpoc COMMAND --help for its options)\n\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++)
        if (*commands[i].fn) fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].summary);
}

/* Thread settings both runtimes read when they load, before main, so they
 * are set in the environment and the program runs again, once, when the
 * user has not chosen them:
 * - OMP_WAIT_POLICY=passive: with libgomp's default, idle OpenMP threads spin
 *   and steal the cores OpenBLAS's threads need (2.5x slower training here);
 * - OPENBLAS_THREAD_TIMEOUT=4: OpenBLAS's idle threads likewise spin for
 *   2^28 cycles after each call while the OpenMP loops between calls want
 *   the cores; 2^4 puts them to sleep at once (precompute ~8% faster). */
static void thread_defaults(char **argv) {
    int changed = 0;
    if (!getenv("OMP_WAIT_POLICY")) changed = 1, setenv("OMP_WAIT_POLICY", "passive", 1);
    if (!getenv("OPENBLAS_THREAD_TIMEOUT")) changed = 1, setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1);
    if (changed) execv("/proc/self/exe", argv);
    /* exec failed: go on with the defaults */
}

/* Under mpirun (or srun) every rank runs the command; rank 0 alone logs.
 * A command that fails on any rank ends the whole job (dist_abort), since
 * the others may be waiting for it in a collective; one that stops at a
 * signal (128 + signal) agreed with every rank and ends normally. */
static int run(command_fn fn, int argc, char **argv) {
    dp_err err;
    if (dist_init(&err)) {
        fprintf(stderr, "dpoc: %s\n", err.msg);
        return 1;
    }
    /* The other commands are one process's: under mpirun every rank would
     * do the whole job and write the same files. */
    static const char *const parallel[] = {"sft", "precompute", "train", "sweep"};
    int is_parallel = 0;
    for (int i = 0; i < 4; i++) is_parallel |= !strcmp(argv[0], parallel[i]);
    if (dist_size() > 1 && !is_parallel) {
        if (dist_rank() == 0)
            fprintf(stderr, "dpoc %s: runs in one process; under mpirun only sft, precompute, "
                            "train and sweep run (data parallel)\n", argv[0]);
        dist_finalize();
        return 2;
    }
    static FILE *quiet;
    if (dist_rank() > 0 && (quiet = fopen("/dev/null", "w"))) log_set_stream(quiet);
    int rc = fn(argc, argv);
    if (dist_size() > 1 && rc != 0 && rc < 128) dist_abort(rc);
    dist_finalize();
    return rc;
}

int main(int argc, char **argv) {
    thread_defaults(argv);
    /* Past a file-size limit (ulimit -f) a write fails with EFBIG, reported
     * like any other write error, instead of the signal killing the process. */
    signal(SIGXFSZ, SIG_IGN);
    /* A weight file truncated while mapped: one line naming it, not "Bus error". */
    st_install_sigbus_handler();
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (int i = 0; i < N_COMMANDS; i++) {
        if (strcmp(argv[1], commands[i].name) != 0) continue;
        if (!*commands[i].fn) {
            fprintf(stderr, "dpoc: command '%s' is not available in this build\n", argv[1]);
            return 2;
        }
        return run(*commands[i].fn, argc - 1, argv + 1);
    }
    fprintf(stderr, "dpoc: unknown command '%s' (dpoc --help lists them)\n", argv[1]);
    return 2;
}
