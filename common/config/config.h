/* config — pipeline.yaml, checked against schemas/pipeline.schema.yaml
 * (compiled into the binary).
 *
 * Loading fills every schema key: the file's value, then each --set
 * override in order, else the schema default. Relative paths resolve
 * against the config file's directory (--set paths against the working
 * directory). Errors are one line naming file:line:column and the key path,
 * e.g. `pipeline.yaml:14:9: train.beta: expected a number > 0, got "fast"`
 * (text from the file quoted by dp_quote), or `--set #2: train.beta: ...`
 * for the second --set; an unknown key suggests the nearest known one.
 * YAML aliases are refused. */
#ifndef DP_CONFIG_H
#define DP_CONFIG_H

#include <stddef.h>

#include "error.h"

typedef struct config config;

/* Loads PATH (NULL: defaults only) and applies SETS[i] = "key=value".
 * *out is owned by the caller (cfg_free). */
int cfg_load(config **out, const char *path, const char *const *sets, int n_sets, dp_err *err);
void cfg_free(config *c);

/* Applies one "key=value" override (e.g. a sweep point); ORIGIN names it in
 * errors, which have no line or column: "ORIGIN: key: what" (cfg_load
 * passes "--set #N" for the N-th --set, 1-based; the sweep passes "sweep"). */
int cfg_set(config *c, const char *assignment, const char *origin, dp_err *err);

/* A deep copy, or NULL when out of memory. */
config *cfg_clone(const config *c);

/* Typed getters. KEY must be a schema leaf of the matching type (asserted):
 * cfg_str for string/path/enum ("" when unset), cfg_int, cfg_num, cfg_bool;
 * lists for enum_list and number_list. */
const char *cfg_str(const config *c, const char *key);
long cfg_int(const config *c, const char *key);
double cfg_num(const config *c, const char *key);
int cfg_bool(const config *c, const char *key);
int cfg_list_len(const config *c, const char *key);
const char *cfg_list_str(const config *c, const char *key, int i);
double cfg_list_num(const config *c, const char *key, int i);

/* The sweep grid: n_keys keys, each with a list of values (as YAML text). */
int cfg_sweep_keys(const config *c);
const char *cfg_sweep_key(const config *c, int k);
int cfg_sweep_len(const config *c, int k);
const char *cfg_sweep_value(const config *c, int k, int i);

/* The path of the loaded file ("" for defaults only). */
const char *cfg_path(const config *c);

/* The fully resolved configuration as YAML, malloc'd, owned by the caller. */
char *cfg_to_yaml(const config *c);

/* The schema, one line per key: path, type, range or values, default, doc.
 * malloc'd, owned by the caller. */
char *cfg_explain(void);

#endif
