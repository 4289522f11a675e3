/* arena — the big allocations of a run (parameters, gradients, optimizer
 * state, activations): anonymous memory, zeroed, reserved without
 * overcommit accounting (so a model's float32 layout can be reserved even
 * when only a mapping of it is ever touched), and on 2 MiB pages when large
 * (transparent huge pages in madvise mode: fewer first-touch faults and TLB
 * misses). DPOC_HUGEPAGES=0 in the environment leaves them on 4 KiB pages. */
#ifndef DP_ARENA_H
#define DP_ARENA_H

#include <stddef.h>

#include "error.h"

/* bytes of zeroed memory (at least one byte is reserved); NULL with err. The
 * caller frees it with dp_arena_free and the same size. */
void *dp_arena_alloc(size_t bytes, dp_err *err);
void dp_arena_free(void *p, size_t bytes);

#endif
