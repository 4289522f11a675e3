/* frozen — weights that are only read, kept where the checkpoint has them
 * (see model_internal.h).
 *
 * A frozen half-precision matrix of a layer stays in the file's mapping; the
 * layer's matrices are widened to float32 into one scratch just before the
 * layer runs (model_layer_ready), and the model's weight fields point there
 * until another layer takes the scratch. Memory is then the mapping's pages
 * in use plus one layer in float32, whatever the depth. Widening is exact,
 * so the products see the very numbers a float32 copy would hold.
 *
 * Streaming: with release on, the mapped pages of a layer are handed back to
 * the kernel (MADV_DONTNEED: they stay in the page cache, not in this
 * process) once the layer is done, so resident memory holds about one layer
 * of the file at a time; reading them again costs a page-cache copy, or a
 * disk read when the cache has dropped them. Bytes and time spent reading
 * are counted for the log. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "layers.h"
#include "model_internal.h"

typedef struct frozen_tensor {
    float **field;        /* the weights field it binds */
    int layer;            /* -1: outside the layers (embeddings, head) */
    const uint16_t *src;  /* in the mapping */
    int bf16;
    size_t numel, off;    /* its place in the layer scratch */
} frozen_tensor;

struct frozen_set {
    int n_layer, bound, release;
    frozen_tensor *t;
    int n, cap;
    float *scratch;
    size_t scratch_floats;
    uint64_t bytes_read;
    double seconds;
};

frozen_set *frozen_new(int n_layer) {
    frozen_set *f = calloc(1, sizeof *f);
    if (f) f->n_layer = n_layer, f->bound = -1;
    return f;
}

void frozen_free(frozen_set *f) {
    if (!f) return;
    free(f->t);
    free(f->scratch);
    free(f);
}

int frozen_add(frozen_set *f, float **field, int layer, const uint16_t *src, int bf16,
               size_t numel) {
    if (f->n == f->cap) {
        int cap = f->cap ? 2 * f->cap : 64;
        frozen_tensor *t = realloc(f->t, (size_t)cap * sizeof *t);
        if (!t) return -1;
        f->t = t, f->cap = cap;
    }
    f->t[f->n++] = (frozen_tensor){field, layer, src, bf16, numel, 0};
    return 0;
}

int frozen_prepare(frozen_set *f) {
    size_t *per = calloc((size_t)f->n_layer + 1, sizeof *per), most = 0;
    if (!per) return -1;
    for (int i = 0; i < f->n; i++) {
        frozen_tensor *t = &f->t[i];
        if (t->layer < 0) continue;
        t->off = per[t->layer];
        per[t->layer] += (t->numel + 15) & ~(size_t)15;
        if (per[t->layer] > most) most = per[t->layer];
    }
    free(per);
    if (most > f->scratch_floats) {
        free(f->scratch);
        f->scratch = malloc(most * sizeof(float));
        if (!f->scratch) return -1;
        f->scratch_floats = most;
    }
    f->bound = -1;
    return 0;
}

void frozen_unbind(frozen_set *f) {
    if (f) f->bound = -1;
}

void frozen_set_release(frozen_set *f, int on) { f->release = on; }

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void frozen_forget(frozen_set *f, float **field) {
    if (!f) return;
    for (int i = 0; i < f->n; i++)
        if (f->t[i].field == field) f->t[i--] = f->t[--f->n];
    f->bound = -1;
}



/* madvise on the pages that lie wholly inside [p, p + n). */
static void madvise_range(const void *p, size_t n, int advice) {
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), a = (uintptr_t)p, b = a + n;
    uintptr_t lo = (a + page - 1) & ~(page - 1), hi = b & ~(page - 1);
    if (hi > lo) madvise((void *)lo, hi - lo, advice);
}

/* Hands back the pages of [p, p + n) that lie wholly inside it. */
void frozen_drop_pages(const void *p, size_t n) { madvise_range(p, n, MADV_DONTNEED); }

int frozen_bind_layer(frozen_set *f, int layer) {
    if (!f || f->bound == layer) return 0;
    int any = 0;
    double t0 = now();
    for (int i = 0; i < f->n; i++) {
        frozen_tensor *t = &f->t[i];
        if (t->layer != layer) continue;
        float *dst = f->scratch + t->off;
        layer_widen(dst, t->src, t->bf16, t->numel);
        *t->field = dst;
        f->bytes_read += t->numel * sizeof(uint16_t);
        any = 1;
    }
    if (any) f->seconds += now() - t0;
    if (any && f->release) {
        frozen_release_layer(f, layer);
        /* Passes go up the layers (forward) or down (backward): ask the
         * kernel to read the next layer's pages while this one computes. */
        int next = layer + (f->bound == layer + 1 ? -1 : 1);
        if (next >= 0 && next < f->n_layer)
            for (int i = 0; i < f->n; i++)
                if (f->t[i].layer == next)
                    madvise_range(f->t[i].src, f->t[i].numel * sizeof(uint16_t), MADV_WILLNEED);
    }
    f->bound = any ? layer : f->bound;
    return any;
}

void frozen_release_layer(frozen_set *f, int layer) {
    if (!f) return;
    for (int i = 0; i < f->n; i++)
        if (f->t[i].layer == layer) frozen_drop_pages(f->t[i].src, f->t[i].numel * sizeof(uint16_t));
}

void frozen_stats(const frozen_set *f, uint64_t *bytes, double *seconds) {
    *bytes = f ? f->bytes_read : 0;
    *seconds = f ? f->seconds : 0;
}
