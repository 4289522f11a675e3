/* dpoc config — print the resolved configuration, or the schema. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cmd_config(int argc, char **argv) {
    cli_option opts[] = {
        {"--explain", 0, "print every key with its type, range, default and meaning", NULL},
    };
    for (int i = 1; i < argc; i++) /* --explain needs no config file */
        if (!strcmp(argv[i], "--explain")) {
            char *text = cfg_explain();
            if (!text) return 1;
            fputs(text, stdout);
            free(text);
            return 0;
        }
    config *cfg;
    int rc = cli_parse(argc, argv, "Print the fully resolved configuration (defaults filled in) as YAML.",
                       opts, 1, &cfg);
    if (rc || !cfg) return rc;
    char *text = cfg_to_yaml(cfg);
    cfg_free(cfg);
    if (!text) {
        cli_error("out of memory");
        return 1;
    }
    fputs(text, stdout);
    free(text);
    return 0;
}
