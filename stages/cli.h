/* cli — the options every stage shares: -c/--config FILE, --set key=value
 * (repeatable), -h/--help. Stages add their own options through `extra`. */
#ifndef DP_CLI_H
#define DP_CLI_H

#include "config.h"

typedef struct cli_option {
    const char *name;      /* "--shard" */
    int takes_value;
    const char *help;      /* one line */
    const char *value;     /* filled when given (or "1" for flags) */
} cli_option;

/* Parses argv (argv[0] = command). Loads the config (default pipeline.yaml)
 * with every --set applied into *cfg. USAGE is the command's first help
 * line. Returns 0 to go on, or an exit status (0 after --help, 1 on a
 * config error, 2 on a usage error) with everything printed. Positional
 * arguments are rejected. */
int cli_parse(int argc, char **argv, const char *usage, cli_option *extra, int n_extra,
              config **cfg);

/* Prints the message of a failed call as the one error line. */
void cli_error(const char *msg);

#endif
