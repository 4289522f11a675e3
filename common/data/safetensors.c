/* safetensors — see safetensors.h.
 *
 * A set owns one mapping per file and one array of tensors sorted by name,
 * with an open-addressing hash table (FNV-1a, linear probing) for st_find.
 * Tensor data points into the read-only private mappings. The host is
 * assumed little-endian, like the format. */
#include "safetensors.h"
#include "utf8.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

#define ST_MAX_HEADER 100000000ULL

typedef struct st_file {
    char *path;
    unsigned char *map;
    size_t size;
} st_file;

struct st_set {
    st_file *files;
    int nfiles;
    st_tensor *tensors;     /* sorted by name; names owned (strdup) */
    int *file_of;           /* index into files for each tensor */
    int n, cap;
    int *slots;             /* hash table of tensor indices, -1 empty */
    size_t nslots;          /* power of two */
    json_t *metadata;       /* merged "__metadata__" objects, first file wins */
};

static const struct {
    const char *name;
    st_dtype dtype;
    size_t size;
} st_dtypes[] = {
    {"F32", ST_F32, 4},   {"F16", ST_F16, 2},   {"BF16", ST_BF16, 2}, {"F64", ST_F64, 8},
    {"I64", ST_I64, 8},   {"I32", ST_I32, 4},   {"I16", ST_I16, 2},   {"I8", ST_I8, 1},
    {"U8", ST_U8, 1},     {"BOOL", ST_BOOL, 1}, {"F8_E4M3", ST_F8_E4M3, 1},
    {"F8_E5M2", ST_F8_E5M2, 1}, {"U16", ST_U16, 2}, {"U32", ST_U32, 4}, {"U64", ST_U64, 8},
};
#define ST_NDTYPES ((int)(sizeof st_dtypes / sizeof st_dtypes[0]))

const char *st_dtype_name(st_dtype d) {
    for (int i = 0; i < ST_NDTYPES; i++)
        if (st_dtypes[i].dtype == d) return st_dtypes[i].name;
    return "?";
}

size_t st_dtype_size(st_dtype d) {
    for (int i = 0; i < ST_NDTYPES; i++)
        if (st_dtypes[i].dtype == d) return st_dtypes[i].size;
    return 0;
}

static int st_dtype_parse(const char *s, st_dtype *out) {
    for (int i = 0; i < ST_NDTYPES; i++)
        if (strcmp(st_dtypes[i].name, s) == 0) {
            *out = st_dtypes[i].dtype;
            return 0;
        }
    return -1;
}

/* ---- UTF-8 ---------------------------------------------------------------- */

/* Returns the offset of the first byte that starts an invalid sequence
 * (overlong forms, surrogates and code points past U+10FFFF are invalid),
 * or n if the whole buffer is valid. */
static size_t st_utf8_invalid_at(const unsigned char *s, size_t n) {
    size_t i = 0;
    int len;
    while (i < n && (len = utf8_valid_len(s + i, n - i)) > 0) i += (size_t)len;
    return i;
}

/* ---- set building ----------------------------------------------------------- */

static int st_push(st_set *s, const char *name, int file, dp_err *err) {
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        st_tensor *t = realloc(s->tensors, (size_t)cap * sizeof *t);
        if (!t) return dp_fail(err, "out of memory growing the tensor list to %d", cap);
        s->tensors = t;
        int *f = realloc(s->file_of, (size_t)cap * sizeof *f);
        if (!f) return dp_fail(err, "out of memory growing the tensor list to %d", cap);
        s->file_of = f;
        s->cap = cap;
    }
    st_tensor *t = &s->tensors[s->n];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name) return dp_fail(err, "out of memory copying a tensor name");
    s->file_of[s->n] = file;
    s->n++;
    return 0;
}

/* Formats "[2, 3]" into buf. */
static void st_format_shape(char *buf, size_t cap, const int64_t *shape, int ndim) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, cap - k, "[");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, "]");
}

/* A name or value from a header or an index, for a message: in double
 * quotes, as is when it is printable ASCII of at most 200 bytes (tensor
 * names are long, and cut they would not be found), else escaped and cut
 * by dp_quote. */
#define ST_QCAP 256
static const char *st_q(char buf[ST_QCAP], const char *s) {
    size_t n = strlen(s);
    int plain = n <= 200;
    for (size_t i = 0; plain && i < n; i++)
        plain = s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' && s[i] != '\\';
    if (!plain) return dp_quote(buf, s, n);
    snprintf(buf, ST_QCAP, "\"%s\"", s);
    return buf;
}

typedef struct st_span {
    int64_t begin, end;
    int tensor;
} st_span;

static int st_span_cmp(const void *a, const void *b) {
    const st_span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* Parses one tensor entry VALUE named NAME of file PATH into T, filling
 * *begin and *end. */
static int st_parse_entry(const char *path, const char *name, json_t *value, st_tensor *t,
                          int64_t *begin, int64_t *end, dp_err *err) {
    char qn[ST_QCAP], qv[ST_QCAP];
    name = st_q(qn, name);
    if (!json_is_object(value))
        return dp_fail(err, "%s: tensor %s: expected an object with dtype, shape and "
                       "data_offsets", path, name);
    json_t *jd = json_object_get(value, "dtype");
    json_t *js = json_object_get(value, "shape");
    json_t *jo = json_object_get(value, "data_offsets");
    if (!json_is_string(jd))
        return dp_fail(err, "%s: tensor %s: \"dtype\" missing or not a string", path, name);
    if (st_dtype_parse(json_string_value(jd), &t->dtype) != 0)
        return dp_fail(err, "%s: tensor %s: unknown dtype %s", path, name,
                       st_q(qv, json_string_value(jd)));
    if (!json_is_array(js))
        return dp_fail(err, "%s: tensor %s: \"shape\" missing or not an array", path, name);
    size_t ndim = json_array_size(js);
    if (ndim > ST_MAX_DIMS)
        return dp_fail(err, "%s: tensor %s: shape has %zu dimensions, at most %d supported",
                       path, name, ndim, ST_MAX_DIMS);
    t->ndim = (int)ndim;
    int64_t numel = 1;
    int overflow = 0;
    for (size_t i = 0; i < ndim; i++) {
        json_t *d = json_array_get(js, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return dp_fail(err, "%s: tensor %s: shape[%zu] must be a non-negative integer",
                           path, name, i);
        t->shape[i] = json_integer_value(d);
        if (!overflow && __builtin_mul_overflow(numel, t->shape[i], &numel)) overflow = 1;
    }
    /* A zero dimension makes the product 0 even after an intermediate overflow. */
    for (size_t i = 0; i < ndim; i++)
        if (t->shape[i] == 0) { overflow = 0; numel = 0; }
    int64_t nbytes = 0;
    if (overflow || __builtin_mul_overflow(numel, (int64_t)st_dtype_size(t->dtype), &nbytes)) {
        char sh[256];
        st_format_shape(sh, sizeof sh, t->shape, t->ndim);
        return dp_fail(err, "%s: tensor %s: shape %s x %s overflows a 64-bit byte count",
                       path, name, sh, st_dtype_name(t->dtype));
    }
    t->numel = numel;
    if (!json_is_array(jo) || json_array_size(jo) != 2 ||
        !json_is_integer(json_array_get(jo, 0)) || !json_is_integer(json_array_get(jo, 1)))
        return dp_fail(err, "%s: tensor %s: \"data_offsets\" must be an array of two integers",
                       path, name);
    *begin = json_integer_value(json_array_get(jo, 0));
    *end = json_integer_value(json_array_get(jo, 1));
    if (*begin < 0 || *end < *begin)
        return dp_fail(err, "%s: tensor %s: data_offsets [%lld, %lld) must satisfy "
                       "0 <= begin <= end", path, name, (long long)*begin, (long long)*end);
    if (*end - *begin != nbytes) {
        char sh[256];
        st_format_shape(sh, sizeof sh, t->shape, t->ndim);
        return dp_fail(err, "%s: tensor %s: data_offsets [%lld, %lld) but shape %s x %s "
                       "needs %lld bytes", path, name, (long long)*begin, (long long)*end, sh,
                       st_dtype_name(t->dtype), (long long)nbytes);
    }
    t->nbytes = (size_t)nbytes;
    return 0;
}

/* Validates "__metadata__" (string -> string) and merges it into s->metadata. */
static int st_parse_metadata(st_set *s, const char *path, json_t *meta, dp_err *err) {
    if (!json_is_object(meta))
        return dp_fail(err, "%s: \"__metadata__\" must be an object of strings", path);
    const char *k;
    json_t *v;
    char q[ST_QCAP];
    json_object_foreach(meta, k, v) {
        if (!json_is_string(v))
            return dp_fail(err, "%s: \"__metadata__\": value of %s must be a string, got %s", path,
                           st_q(q, k), json_is_object(v) ? "an object" : json_is_array(v) ? "an array"
                           : json_is_number(v) ? "a number" : json_is_boolean(v) ? "a boolean" : "null");
        if (!json_object_get(s->metadata, k) && json_object_set(s->metadata, k, v) != 0)
            return dp_fail(err, "out of memory storing metadata");
    }
    return 0;
}


/* ---- mappings and SIGBUS ----
 * A file truncated while mapped turns reads past its new end into SIGBUS.
 * Every mapping is recorded (a fixed table: the handler may not allocate
 * or lock), so the handler can name the file before the process ends. */
enum { MAP_SLOTS = 256 };
static struct {
    const char *volatile base;
    size_t size;
    char path[512];
} g_maps[MAP_SLOTS];

static void map_register(const void *base, size_t size, const char *path) {
    for (int i = 0; i < MAP_SLOTS; i++)
        if (!g_maps[i].base) {
            g_maps[i].size = size;
            snprintf(g_maps[i].path, sizeof g_maps[i].path, "%s", path);
            g_maps[i].base = base;
            return;
        }
}

static void map_unregister(const void *base) {
    for (int i = 0; i < MAP_SLOTS; i++)
        if (g_maps[i].base == base) g_maps[i].base = NULL;
}

static void put(const char *s) {
    ssize_t ignored = write(2, s, strlen(s));
    (void)ignored;
}

static void on_sigbus(int sig, siginfo_t *si, void *ctx) {
    (void)sig, (void)ctx;
    const char *a = si ? (const char *)si->si_addr : NULL;
    for (int i = 0; i < MAP_SLOTS; i++) {
        const char *b = g_maps[i].base;
        if (b && a >= b && a < b + g_maps[i].size) {
            put(g_maps[i].path);
            put(": the file changed size while in use (truncated or replaced?); stopping\n");
            _exit(1);
        }
    }
    put("dpoc: bus error (SIGBUS) outside any weight file\n");
    _exit(1);
}

void st_install_sigbus_handler(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
}
/* Maps PATH, validates its whole header and appends its tensors to S.
 * The file is recorded in s->files[s->nfiles] (its path is owned by S). */
static int st_load_file(st_set *s, const char *path, dp_err *err) {
    st_file *f = &s->files[s->nfiles];
    f->path = strdup(path);
    if (!f->path) return dp_fail(err, "out of memory");
    s->nfiles++;

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return dp_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return dp_fail(err, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return dp_fail(err, "%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    if (size == 0) {
        close(fd);
        return dp_fail(err, "%s: empty file, expected an 8-byte header length", path);
    }
    if (size < 8) {
        close(fd);
        return dp_fail(err, "%s: file is %zu bytes, shorter than the 8-byte header length",
                       path, size);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) return dp_fail(err, "%s: cannot mmap: %s", path, strerror(e));
    f->map = map;
    f->size = size;
    map_register(map, size, path);

    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | f->map[i];
    if (n > ST_MAX_HEADER)
        return dp_fail(err, "%s: header length %llu exceeds the limit of %llu bytes", path,
                       (unsigned long long)n, ST_MAX_HEADER);
    if (8 + n > size)
        return dp_fail(err, "%s: header length %llu runs past the end of the file "
                       "(8 + %llu > %zu bytes)", path, (unsigned long long)n,
                       (unsigned long long)n, size);
    const unsigned char *hdr = f->map + 8;
    size_t bad = st_utf8_invalid_at(hdr, (size_t)n);
    if (bad != n)
        return dp_fail(err, "%s: header is not valid UTF-8 (byte 0x%02x at header offset %zu)",
                       path, hdr[bad], bad);
    json_error_t je;
    json_t *root = json_loadb((const char *)hdr, (size_t)n, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return dp_fail(err, "%s: header is not valid JSON: line %d column %d: %s", path,
                       je.line, je.column, je.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return dp_fail(err, "%s: header must be a JSON object", path);
    }

    size_t count = json_object_size(root);
    st_span *spans = count ? malloc(count * sizeof *spans) : NULL;
    if (count && !spans) {
        json_decref(root);
        return dp_fail(err, "out of memory");
    }
    int nspans = 0, rc = 0;
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value) {
        if (strcmp(key, "__metadata__") == 0) {
            if ((rc = st_parse_metadata(s, path, value, err)) != 0) break;
            continue;
        }
        if ((rc = st_push(s, key, s->nfiles - 1, err)) != 0) break;
        st_tensor *t = &s->tensors[s->n - 1];
        st_span *sp = &spans[nspans++];
        sp->tensor = s->n - 1;
        if ((rc = st_parse_entry(path, key, value, t, &sp->begin, &sp->end, err)) != 0) break;
    }
    json_decref(root);
    if (rc == 0) {
        if (nspans > 1) qsort(spans, (size_t)nspans, sizeof *spans, st_span_cmp);
        int64_t at = 0;
        char q1[ST_QCAP], q2[ST_QCAP];
        for (int i = 0; i < nspans && rc == 0; i++) {
            const st_span *sp = &spans[i];
            const char *name = s->tensors[sp->tensor].name;
            if (sp->begin < at) {
                const st_span *pr = &spans[i - 1];
                rc = dp_fail(err, "%s: tensors %s [%lld, %lld) and %s [%lld, %lld) "
                             "overlap", path, st_q(q1, s->tensors[pr->tensor].name),
                             (long long)pr->begin, (long long)pr->end, st_q(q2, name),
                             (long long)sp->begin, (long long)sp->end);
            } else if (sp->begin > at) {
                if (i == 0)
                    rc = dp_fail(err, "%s: hole of %lld bytes at the start of the data area "
                                 "before tensor %s [%lld, %lld)", path,
                                 (long long)sp->begin, st_q(q2, name), (long long)sp->begin,
                                 (long long)sp->end);
                else
                    rc = dp_fail(err, "%s: hole of %lld bytes between tensor %s ending at "
                                 "%lld and tensor %s starting at %lld", path,
                                 (long long)(sp->begin - at),
                                 st_q(q1, s->tensors[spans[i - 1].tensor].name), (long long)at,
                                 st_q(q2, name), (long long)sp->begin);
            }
            at = sp->end;
        }
        uint64_t want = 8 + n + (uint64_t)at;
        if (rc == 0 && want > size)
            rc = dp_fail(err, "%s: truncated: header and tensor data need 8 + %llu + %lld = "
                         "%llu bytes, file has %zu", path, (unsigned long long)n,
                         (long long)at, (unsigned long long)want, size);
        else if (rc == 0 && want < size)
            rc = dp_fail(err, "%s: %llu trailing bytes after the tensor data (8 + %llu + %lld "
                         "= %llu bytes expected, file has %zu)", path,
                         (unsigned long long)(size - want), (unsigned long long)n,
                         (long long)at, (unsigned long long)want, size);
        for (int i = 0; i < nspans && rc == 0; i++)
            s->tensors[spans[i].tensor].data = f->map + 8 + n + spans[i].begin;
    }
    free(spans);
    return rc;
}

/* ---- lookup ------------------------------------------------------------------ */

static uint64_t st_hash(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int st_name_cmp(const void *a, const void *b) {
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

/* Sorts the tensors by name, rejects a name present twice (only possible
 * across shards) and builds the hash table. */
static int st_finish(st_set *s, dp_err *err) {
    /* Sort tensors together with their file indices via an index permutation. */
    int n = s->n;
    typedef struct { st_tensor t; int file; } pair;
    pair *p = n ? malloc((size_t)n * sizeof *p) : NULL;
    if (n && !p) return dp_fail(err, "out of memory");
    for (int i = 0; i < n; i++) { p[i].t = s->tensors[i]; p[i].file = s->file_of[i]; }
    if (n > 1) qsort(p, (size_t)n, sizeof *p, st_name_cmp); /* the tensor is the first member */
    for (int i = 0; i < n; i++) {
        s->tensors[i] = p[i].t;
        s->file_of[i] = p[i].file;
        s->tensors[i].file = s->files[p[i].file].path;
    }
    free(p);
    for (int i = 1; i < n; i++)
        if (strcmp(s->tensors[i - 1].name, s->tensors[i].name) == 0)
        {
            char q[ST_QCAP];
            return dp_fail(err, "%s: tensor %s also appears in %s", s->files[s->file_of[i]].path,
                           st_q(q, s->tensors[i].name), s->files[s->file_of[i - 1]].path);
        }
    size_t nslots = 16;
    while (nslots < 2 * (size_t)n) nslots *= 2;
    s->slots = malloc(nslots * sizeof *s->slots);
    if (!s->slots) return dp_fail(err, "out of memory");
    s->nslots = nslots;
    for (size_t i = 0; i < nslots; i++) s->slots[i] = -1;
    for (int i = 0; i < n; i++) {
        size_t h = (size_t)st_hash(s->tensors[i].name) & (nslots - 1);
        while (s->slots[h] >= 0) h = (h + 1) & (nslots - 1);
        s->slots[h] = i;
    }
    return 0;
}

static int st_find_index(const st_set *s, const char *name) {
    if (!s->slots) return -1;
    size_t h = (size_t)st_hash(name) & (s->nslots - 1);
    while (s->slots[h] >= 0) {
        if (strcmp(s->tensors[s->slots[h]].name, name) == 0) return s->slots[h];
        h = (h + 1) & (s->nslots - 1);
    }
    return -1;
}

/* ---- opening --------------------------------------------------------------- */

static int st_is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int st_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static int st_ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static st_set *st_new(int nfiles, dp_err *err) {
    st_set *s = dp_calloc(1, sizeof *s, err);
    if (!s) return NULL;
    s->files = dp_calloc((size_t)nfiles, sizeof *s->files, err);
    s->metadata = json_object();
    if (!s->files || !s->metadata) {
        dp_fail(err, "out of memory");
        st_close(s);
        return NULL;
    }
    return s;
}

/* Opens the shards listed in INDEX (DIR/model.safetensors.index.json). */
static int st_open_index(st_set **out, const char *index, dp_err *err) {
    json_error_t je;
    json_t *root = json_load_file(index, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return dp_fail(err, "%s:%d:%d: not valid JSON: %s", index, je.line, je.column, je.text);
    json_t *wm = json_object_get(root, "weight_map");
    if (!json_is_object(root) || !json_is_object(wm)) {
        json_decref(root);
        return dp_fail(err, "%s: expected an object with a \"weight_map\" object", index);
    }
    /* Distinct shard files, in order of first appearance. */
    size_t nmap = json_object_size(wm);
    const char **shards = calloc(nmap ? nmap : 1, sizeof *shards);
    if (!shards) {
        json_decref(root);
        return dp_fail(err, "out of memory");
    }
    int nshards = 0, rc = 0;
    const char *name;
    json_t *v;
    char q1[ST_QCAP], q2[ST_QCAP], q3[DP_QUOTE_CAP];
    json_object_foreach(wm, name, v) {
        if (!json_is_string(v)) {
            rc = dp_fail(err, "%s: weight_map: value of %s must be a file name", index, st_q(q1, name));
            break;
        }
        const char *file = json_string_value(v);
        if (file[0] == '\0' || strchr(file, '/') != NULL) {
            rc = dp_fail(err, "%s: weight_map: %s maps to %s, expected a file name in "
                         "the same directory", index, st_q(q1, name), st_q(q2, file));
            break;
        }
        int seen = 0;
        for (int i = 0; i < nshards && !seen; i++) seen = strcmp(shards[i], file) == 0;
        if (!seen) shards[nshards++] = file;
    }
    if (rc == 0 && nshards == 0) rc = dp_fail(err, "%s: weight_map is empty", index);
    st_set *s = NULL;
    if (rc == 0 && !(s = st_new(nshards, err))) rc = -1;
    /* The directory holding the index. */
    const char *slash = strrchr(index, '/');
    int dirlen = slash ? (int)(slash - index) : 0;
    for (int i = 0; i < nshards && rc == 0; i++) {
        size_t len = (size_t)dirlen + strlen(shards[i]) + 2;
        char *path = malloc(len);
        if (!path) { rc = dp_fail(err, "out of memory"); break; }
        if (slash) snprintf(path, len, "%.*s/%s", dirlen, index, shards[i]);
        else snprintf(path, len, "%s", shards[i]);
        if (!st_exists(path))
            rc = dp_fail(err, "%s: weight_map names %s, which does not exist", index,
                         st_q(q1, shards[i]));
        else
            rc = st_load_file(s, path, err);
        free(path);
    }
    if (rc == 0) rc = st_finish(s, err);
    /* Every weight_map entry must be in the file it names, and every tensor
     * found must be listed. */
    if (rc == 0) {
        json_object_foreach(wm, name, v) {
            int i = st_find_index(s, name);
            const char *file = json_string_value(v);
            if (i < 0) {
                rc = dp_fail(err, "%s: weight_map: tensor %s is not in %s", index, st_q(q1, name),
                             st_q(q2, file));
                break;
            }
            const char *got = s->files[s->file_of[i]].path;
            const char *base = strrchr(got, '/');
            base = base ? base + 1 : got;
            if (strcmp(base, file) != 0) {
                rc = dp_fail(err, "%s: weight_map: tensor %s maps to %s but is in %s", index,
                             st_q(q1, name), st_q(q2, file), dp_quote(q3, base, (size_t)-1));
                break;
            }
        }
    }
    if (rc == 0 && (size_t)s->n != nmap) {
        for (int i = 0; i < s->n; i++)
            if (!json_object_get(wm, s->tensors[i].name)) {
                rc = dp_fail(err, "%s: tensor %s is not listed in %s",
                             s->files[s->file_of[i]].path, st_q(q1, s->tensors[i].name), index);
                break;
            }
    }
    free(shards);
    json_decref(root);
    if (rc != 0) {
        st_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

static int st_open_file(st_set **out, const char *path, dp_err *err) {
    st_set *s = st_new(1, err);
    if (!s) return -1;
    if (st_load_file(s, path, err) != 0 || st_finish(s, err) != 0) {
        st_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

int st_open(st_set **out, const char *path, dp_err *err) {
    *out = NULL;
    if (!st_is_dir(path)) {
        if (st_ends_with(path, ".index.json")) return st_open_index(out, path, err);
        return st_open_file(out, path, err);
    }
    size_t len = strlen(path) + 64;
    char *p = malloc(len);
    if (!p) return dp_fail(err, "out of memory");
    int rc;
    snprintf(p, len, "%s/model.safetensors", path);
    if (st_exists(p)) {
        rc = st_open_file(out, p, err);
    } else {
        snprintf(p, len, "%s/model.safetensors.index.json", path);
        if (st_exists(p))
            rc = st_open_index(out, p, err);
        else
            rc = dp_fail(err, "%s: no model.safetensors or model.safetensors.index.json in this "
                         "directory", path);
    }
    free(p);
    return rc;
}

void st_close(st_set *s) {
    if (!s) return;
    for (int i = 0; i < s->nfiles; i++) {
        if (s->files[i].map) {
            map_unregister(s->files[i].map);
            munmap(s->files[i].map, s->files[i].size);
        }
        free(s->files[i].path);
    }
    for (int i = 0; i < s->n; i++) free((char *)s->tensors[i].name);
    free(s->files);
    free(s->tensors);
    free(s->file_of);
    free(s->slots);
    json_decref(s->metadata);
    free(s);
}

int st_count(const st_set *s) { return s->n; }

const st_tensor *st_get(const st_set *s, int i) {
    return i >= 0 && i < s->n ? &s->tensors[i] : NULL;
}

const st_tensor *st_find(const st_set *s, const char *name) {
    int i = st_find_index(s, name);
    return i < 0 ? NULL : &s->tensors[i];
}

const char *st_metadata(const st_set *s, const char *key) {
    return json_string_value(json_object_get(s->metadata, key));
}

const char *st_tensor_file(const st_set *s, const st_tensor *t) {
    ptrdiff_t i = t - s->tensors;
    return i >= 0 && i < s->n ? s->files[s->file_of[i]].path : NULL;
}

/* ---- conversion ------------------------------------------------------------ */

float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    uint32_t exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
    uint32_t bits;
    if (exp == 0x1F) {
        bits = sign | 0x7F800000u | (mant << 13);
    } else if (exp == 0) {
        float v = ldexpf((float)mant, -24); /* exact: mant < 2^10 */
        return sign ? -v : v;
    } else {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float st_bf16_to_f32(uint16_t b) {
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t st_f32_to_bf16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    if ((bits & 0x7FFFFFFFu) > 0x7F800000u) /* NaN: keep sign and payload top, force quiet */
        return (uint16_t)((bits >> 16) | 0x0040);
    bits += 0x7FFFu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

int st_to_f32(const st_tensor *t, float *dst, dp_err *err) {
    const unsigned char *src = t->data;
    size_t n = (size_t)t->numel;
    switch (t->dtype) {
    case ST_F32:
        if (n) memcpy(dst, src, n * 4);
        return 0;
    case ST_F16:
    case ST_BF16: {
        int half = t->dtype == ST_F16;
#pragma omp parallel for schedule(static) if (n >= 65536)
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = half ? st_f16_to_f32(h) : st_bf16_to_f32(h);
        }
        return 0;
    }
    case ST_F64:
#pragma omp parallel for schedule(static) if (n >= 65536)
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, src + 8 * i, 8);
            dst[i] = (float)d;
        }
        return 0;
    default: {
        char q[ST_QCAP];
        return dp_fail(err, "%s%stensor %s: dtype %s cannot be converted to F32 (expected F32, "
                       "F16, BF16 or F64)", t->file ? t->file : "", t->file ? ": " : "",
                       st_q(q, t->name), st_dtype_name(t->dtype));
    }
    }
}

const float *st_f32_view(const st_tensor *t) {
    if (t->dtype != ST_F32 || ((uintptr_t)t->data & 3) != 0) return NULL;
    return t->data;
}
