/* ytree — a YAML document read into a small tree of mappings, sequences
 * and scalars, each node keeping its line and column.
 *
 * Built on libyaml's event API so that aliases are refused before anything
 * is expanded (no alias bombs) and nesting is bounded. The config loader
 * reads both the schema and the user's file through it. */
#ifndef DP_YTREE_H
#define DP_YTREE_H

#include <stddef.h>

#include "error.h"

#define YTREE_MAX_DEPTH 32

typedef enum { YN_SCALAR, YN_MAP, YN_SEQ } yn_kind;

typedef struct ynode {
    yn_kind kind;
    char *text;               /* scalar value */
    int quoted;               /* scalar was quoted or a block literal */
    int line, col;            /* 1-based */
    int n, cap;
    struct ynode **items;     /* MAP: key, value, key, value...; SEQ: items */
} ynode;

/* Parses LEN bytes of YAML (one document) into *out, owned by the caller
 * (ytree_free); NAME is used in errors ("NAME:LINE:COL: ..."). An empty
 * document gives an empty mapping. */
int ytree_parse(const char *name, const char *text, size_t len, ynode **out, dp_err *err);
void ytree_free(ynode *n);

/* The value of KEY in mapping MAP, or NULL. */
const ynode *ytree_get(const ynode *map, const char *key);

/* A new scalar node holding a copy of TEXT at line 1, column 1 (NULL when
 * out of memory). */
ynode *ytree_scalar(const char *text);

/* A new empty mapping at line 1, column 1. */
ynode *ytree_empty_map(void);

#endif
