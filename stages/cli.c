/* cli — see cli.h. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"

/* Under mpirun each rank says which it is: the ranks' lines interleave. */
void cli_error(const char *msg) {
    if (dist_size() > 1) fprintf(stderr, "rank %d/%d: %s\n", dist_rank(), dist_size(), msg);
    else fprintf(stderr, "%s\n", msg);
}

static void help(const char *cmd, const char *usage, const cli_option *extra, int n_extra) {
    printf("usage: dpoc %s [-c pipeline.yaml] [--set key=value ...]\n%s\n\noptions:\n", cmd, usage);
    printf("  -c, --config FILE    pipeline configuration (default pipeline.yaml)\n");
    printf("  --set KEY=VALUE      override one key, e.g. --set train.beta=0.2 (repeatable)\n");
    for (int i = 0; i < n_extra; i++) {
        char left[64];
        snprintf(left, sizeof left, "%s%s", extra[i].name, extra[i].takes_value ? " VALUE" : "");
        printf("  %-20s %s\n", left, extra[i].help);
    }
    printf("  -h, --help           this help\n\nkeys: dpoc config --explain\n");
}

int cli_parse(int argc, char **argv, const char *usage, cli_option *extra, int n_extra,
              config **cfg) {
    const char *path = "pipeline.yaml";
    const char **sets = calloc((size_t)argc + 1, sizeof *sets);
    int n_sets = 0;
    *cfg = NULL;
    if (!sets) {
        cli_error("out of memory");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            help(argv[0], usage, extra, n_extra);
            free(sets);
            return 0;
        }
        if (!strcmp(a, "-c") || !strcmp(a, "--config") || !strcmp(a, "--set")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "dpoc %s: %s needs a value\n", argv[0], a);
                free(sets);
                return 2;
            }
            if (!strcmp(a, "--set")) sets[n_sets++] = argv[++i];
            else path = argv[++i];
            continue;
        }
        if (!strncmp(a, "--set=", 6)) {
            sets[n_sets++] = a + 6;
            continue;
        }
        int found = 0;
        for (int j = 0; j < n_extra; j++) {
            if (strcmp(a, extra[j].name) != 0) continue;
            found = 1;
            if (!extra[j].takes_value) {
                extra[j].value = "1";
            } else if (i + 1 >= argc) {
                fprintf(stderr, "dpoc %s: %s needs a value\n", argv[0], a);
                free(sets);
                return 2;
            } else {
                extra[j].value = argv[++i];
            }
        }
        if (!found) {
            char q[DP_QUOTE_CAP]; /* the command line may hold anything */
            fprintf(stderr, "dpoc %s: unknown option %s (dpoc %s --help lists them)\n", argv[0],
                    dp_quote(q, a, (size_t)-1), argv[0]);
            free(sets);
            return 2;
        }
    }
    dp_err err;
    int rc = cfg_load(cfg, path, sets, n_sets, &err);
    free(sets);
    if (rc) {
        cli_error(err.msg);
        return 1;
    }
    return 0;
}
