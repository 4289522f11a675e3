/* safetensors_write — st_write (see safetensors.h): one file written
 * atomically, tensors sorted by name, F32 or BF16. The reader is
 * safetensors.c; the two share only the format, through the header. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "safetensors.h"

static int st_write_all(int fd, const void *buf, size_t n) {
    const unsigned char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int st_wt_cmp(const void *a, const void *b) {
    return strcmp((*(const st_write_tensor *const *)a)->name,
                  (*(const st_write_tensor *const *)b)->name);
}

/* Builds the padded header text for the sorted tensors. *out is malloc'd. */
static int st_build_header(const char *path, const st_write_tensor **sorted, int n, int bf16,
                           char **out, size_t *outlen, dp_err *err) {
    json_t *root = json_object();
    json_t *meta = json_pack("{s:s}", "format", "pt");
    if (!root || !meta || json_object_set_new(root, "__metadata__", meta) != 0) {
        json_decref(root);
        return dp_fail(err, "out of memory");
    }
    char q[DP_QUOTE_CAP];
    size_t esize = bf16 ? 2 : 4;
    int64_t at = 0;
    for (int i = 0; i < n; i++) {
        const st_write_tensor *t = sorted[i];
        int64_t numel = 1, nbytes;
        json_t *shape = json_array();
        for (int d = 0; d < t->ndim; d++) {
            json_array_append_new(shape, json_integer(t->shape[d]));
            __builtin_mul_overflow(numel, t->shape[d], &numel); /* checked by the caller */
        }
        nbytes = numel * (int64_t)esize;
        json_t *e = json_pack("{s:s,s:o,s:[I,I]}", "dtype", bf16 ? "BF16" : "F32", "shape", shape,
                              "data_offsets", (json_int_t)at, (json_int_t)(at + nbytes));
        if (!e || json_object_set_new(root, t->name, e) != 0) {
            json_decref(root);
            return dp_fail(err, "%s: tensor %s: name is not valid UTF-8 or out of memory",
                           path, dp_quote(q, t->name, (size_t)-1));
        }
        at += nbytes;
    }
    char *text = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(root);
    if (!text) return dp_fail(err, "out of memory");
    size_t len = strlen(text), padded = (len + 7) & ~(size_t)7;
    char *buf = realloc(text, padded + 1);
    if (!buf) {
        free(text);
        return dp_fail(err, "out of memory");
    }
    memset(buf + len, ' ', padded - len);
    buf[padded] = '\0';
    *out = buf;
    *outlen = padded;
    return 0;
}

static int st_write_data(int fd, const st_write_tensor *t, int bf16) {
    int64_t numel = 1;
    for (int d = 0; d < t->ndim; d++) numel *= t->shape[d];
    if (!bf16) return numel ? st_write_all(fd, t->data, (size_t)numel * 4) : 0;
    enum { CHUNK = 1 << 16 };
    uint16_t buf[CHUNK];
    for (int64_t i = 0; i < numel; i += CHUNK) {
        int64_t m = numel - i < CHUNK ? numel - i : CHUNK;
        for (int64_t k = 0; k < m; k++) buf[k] = st_f32_to_bf16(t->data[i + k]);
        if (st_write_all(fd, buf, (size_t)m * 2) != 0) return -1;
    }
    return 0;
}

int st_write(const char *path, const st_write_tensor *tensors, int n, int bf16, dp_err *err) {
    if (n < 0) return dp_fail(err, "%s: negative tensor count %d", path, n);
    size_t esize = bf16 ? 2 : 4;
    const st_write_tensor **sorted = calloc(n ? (size_t)n : 1, sizeof *sorted);
    if (!sorted) return dp_fail(err, "out of memory");
    for (int i = 0; i < n; i++) sorted[i] = &tensors[i];
    if (n > 1) qsort(sorted, (size_t)n, sizeof *sorted, st_wt_cmp);
    int rc = 0;
    int64_t total = 0;
    char q[DP_QUOTE_CAP];
    for (int i = 0; i < n && rc == 0; i++) {
        const st_write_tensor *t = sorted[i];
        if (!t->name || strcmp(t->name, "__metadata__") == 0) {
            rc = dp_fail(err, "%s: tensor %d: missing or reserved name", path, i);
            break;
        }
        if (i > 0 && strcmp(sorted[i - 1]->name, t->name) == 0) {
            rc = dp_fail(err, "%s: tensor %s given twice", path, dp_quote(q, t->name, (size_t)-1));
            break;
        }
        if (t->ndim < 0 || t->ndim > ST_MAX_DIMS) {
            rc = dp_fail(err, "%s: tensor %s: ndim %d, expected 0..%d", path, dp_quote(q, t->name, (size_t)-1),
                         t->ndim, ST_MAX_DIMS);
            break;
        }
        int64_t numel = 1;
        for (int d = 0; d < t->ndim && rc == 0; d++) {
            if (t->shape[d] < 0)
                rc = dp_fail(err, "%s: tensor %s: shape[%d] = %lld is negative", path,
                             dp_quote(q, t->name, (size_t)-1), d, (long long)t->shape[d]);
            else if (__builtin_mul_overflow(numel, t->shape[d], &numel))
                rc = dp_fail(err, "%s: tensor %s: shape overflows", path, dp_quote(q, t->name, (size_t)-1));
        }
        int64_t nbytes;
        if (rc == 0 && (__builtin_mul_overflow(numel, (int64_t)esize, &nbytes) ||
                        __builtin_add_overflow(total, nbytes, &total)))
            rc = dp_fail(err, "%s: tensor %s: total size overflows", path, dp_quote(q, t->name, (size_t)-1));
        if (rc == 0 && numel > 0 && !t->data)
            rc = dp_fail(err, "%s: tensor %s: no data", path, dp_quote(q, t->name, (size_t)-1));
    }
    char *header = NULL;
    size_t hlen = 0;
    if (rc == 0) rc = st_build_header(path, sorted, n, bf16, &header, &hlen, err);

    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    int fd = -1;
    if (rc == 0 && !tmp) {
        rc = dp_fail(err, "out of memory");
    } else if (rc == 0) {
        memcpy(tmp, path, plen);
        memcpy(tmp + plen, ".tmp", 5);
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) rc = dp_fail(err, "%s: cannot create: %s", tmp, strerror(errno));
    }
    if (rc == 0) {
        unsigned char len8[8];
        for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
        int bad = st_write_all(fd, len8, 8) || st_write_all(fd, header, hlen);
        for (int i = 0; i < n && !bad; i++) bad = st_write_data(fd, sorted[i], bf16);
        if (bad || fsync(fd) != 0) rc = dp_fail(err, "%s: write failed: %s", tmp, strerror(errno));
    }
    if (fd >= 0 && close(fd) != 0 && rc == 0)
        rc = dp_fail(err, "%s: close failed: %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0)
        rc = dp_fail(err, "%s: cannot rename from %s: %s", path, tmp, strerror(errno));
    if (rc != 0 && fd >= 0) unlink(tmp);
    if (rc == 0) {
        /* Make the rename durable. */
        const char *slash = strrchr(path, '/');
        char *dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
        int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        free(dir);
    }
    free(tmp);
    free(header);
    free(sorted);
    return rc;
}
