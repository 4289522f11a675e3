/* arena — see arena.h. */
#include "arena.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static int hugepages_wanted(void) {
    static int wanted = -1;
    if (wanted < 0) {
        const char *v = getenv("DPOC_HUGEPAGES");
        wanted = !(v && !strcmp(v, "0"));
    }
    return wanted;
}

void *dp_arena_alloc(size_t bytes, dp_err *err) {
    if (!bytes) bytes = 1;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        dp_fail(err, "out of memory reserving %zu bytes", bytes);
        return NULL;
    }
#ifdef MADV_HUGEPAGE
    if (bytes >= (4u << 20) && hugepages_wanted()) madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}

void dp_arena_free(void *p, size_t bytes) {
    if (p) munmap(p, bytes ? bytes : 1);
}
