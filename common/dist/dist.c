/* dist — see dist.h.
 *
 * Open MPI facts this relies on (4.1, Debian 12): MPI_Allgatherv takes int
 * counts and int displacements, so an array of more than INT_MAX elements
 * goes through per-rank MPI_Bcast calls in pieces instead (the same bytes,
 * more calls); the reduce-scatter is a ring of our own (see below). In-place MPI_Allgatherv
 * expects each rank's block already at its displacement, which is how the
 * flat parameter array holds it. */
#include "dist.h"

#include <limits.h>
#include <mpi.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define PIECE ((size_t)1 << 30) /* elements (or bytes) per call past INT_MAX */

static int active, rank, size = 1, local_size = 1;
static double comm_seconds;

/* Launched by a launcher that starts MPI jobs, not run by hand. */
static int launched(void) {
    if (getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK")) return 1;
    const char *s = getenv("SLURM_STEP_NUM_TASKS");
    return s && atoi(s) > 1;
}

int dist_init(dp_err *err) {
    if (active || !launched()) return 0;
    int provided;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return dp_fail(err, "MPI_Init failed (launched by mpirun or srun, but the MPI library "
                            "could not start)");
    active = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &local);
    MPI_Comm_size(local, &local_size);
    MPI_Comm_free(&local);
    return 0;
}

void dist_finalize(void) {
    if (!active) return;
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_Finalize();
    active = 0;
}

void dist_abort(int code) {
    if (active) MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}

int dist_rank(void) { return rank; }
int dist_size(void) { return size; }
int dist_local_size(void) { return local_size; }

int dist_threads(int configured) {
    if (configured > 0) return configured;
    if (size == 1) return 0;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    int allowed = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : (int)online;
    if (online > 0 && allowed < online) return allowed > 0 ? allowed : 1; /* bound by the launcher */
    int t = (int)(online / local_size);
    return t > 0 ? t : 1;
}

void dist_barrier(void) {
    if (!active) return;
    double t0 = log_now_seconds();
    MPI_Barrier(MPI_COMM_WORLD);
    comm_seconds += log_now_seconds() - t0;
}

void dist_allreduce_sum(double *x, size_t n) {
    if (!active) return;
    double t0 = log_now_seconds();
    for (size_t at = 0; at < n; at += PIECE) {
        size_t k = n - at < PIECE ? n - at : PIECE;
        MPI_Allreduce(MPI_IN_PLACE, x + at, (int)k, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    }
    comm_seconds += log_now_seconds() - t0;
}

long dist_allreduce_max(long x) {
    if (!active) return x;
    double t0 = log_now_seconds();
    MPI_Allreduce(MPI_IN_PLACE, &x, 1, MPI_LONG, MPI_MAX, MPI_COMM_WORLD);
    comm_seconds += log_now_seconds() - t0;
    return x;
}

void dist_bcast(void *buf, size_t bytes, int root) {
    if (!active) return;
    double t0 = log_now_seconds();
    for (size_t at = 0; at < bytes; at += PIECE) {
        size_t k = bytes - at < PIECE ? bytes - at : PIECE;
        MPI_Bcast((char *)buf + at, (int)k, MPI_BYTE, root, MPI_COMM_WORLD);
    }
    comm_seconds += log_now_seconds() - t0;
}

static size_t total_of(const size_t *counts) {
    size_t t = 0;
    for (int r = 0; r < size; r++) t += counts[r];
    return t;
}

/* int counts and displacements for the one-call collectives, or 0 when the
 * array is too long for them. */
static int int_layout(const size_t *counts, int *icounts, int *idispls) {
    if (total_of(counts) > (size_t)INT_MAX) return 0;
    size_t at = 0;
    for (int r = 0; r < size; r++) {
        icounts[r] = (int)counts[r];
        idispls[r] = (int)at;
        at += counts[r];
    }
    return 1;
}

/* Ring reduce-scatter over point-to-point messages, in pieces of PIECE_RS
 * elements of every block at a time: N − 1 steps, in each of which a rank
 * sends the partial sum of one block to the next rank and adds its own part
 * to the partial it receives from the previous one, so that rank r ends
 * with block r summed, having sent (N − 1)/N of the array. (Open MPI 4.1's
 * MPI_Reduce_scatter took 5–13 s for 124 M floats on two ranks here, its
 * all-gather 0.2 s.) Two scratch buffers of PIECE_RS floats. */
#define PIECE_RS ((size_t)1 << 21)

void dist_reduce_scatter(const float *send, float *recv, const size_t *counts) {
    if (!active || size == 1) {
        if (recv != send) memmove(recv, send, counts[0] * sizeof *recv);
        return;
    }
    double t0 = log_now_seconds();
    size_t *displ = malloc((size_t)size * sizeof *displ), biggest = 0;
    float *partial = malloc(2 * PIECE_RS * sizeof *partial);
    if (!displ || !partial) MPI_Abort(MPI_COMM_WORLD, 1); /* no memory: end the job, as MPI would */
    size_t at = 0;
    for (int r = 0; r < size; r++) {
        displ[r] = at;
        at += counts[r];
        if (counts[r] > biggest) biggest = counts[r];
    }
    float *out = partial, *in = partial + PIECE_RS;
    int next = (rank + 1) % size, prev = (rank + size - 1) % size;
    for (size_t o = 0; o < biggest; o += PIECE_RS) {
        for (int st = 0; st < size - 1; st++) {
            int bs = ((rank - st - 1) % size + size) % size; /* block sent */
            int br = ((rank - st - 2) % size + size) % size; /* block received */
            size_t ns = counts[bs] > o ? counts[bs] - o : 0, nr = counts[br] > o ? counts[br] - o : 0;
            if (ns > PIECE_RS) ns = PIECE_RS;
            if (nr > PIECE_RS) nr = PIECE_RS;
            /* the first step sends this rank's own part; later ones the sum */
            const float *src = st == 0 ? send + displ[bs] + o : out;
            MPI_Sendrecv(src, (int)ns, MPI_FLOAT, next, 1, in, (int)nr, MPI_FLOAT, prev, 1,
                         MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            const float *mine = send + displ[br] + o;
            float *sum = st == size - 2 ? recv + o : out;
            for (size_t i = 0; i < nr; i++) sum[i] = in[i] + mine[i];
        }
    }
    free(partial);
    free(displ);
    comm_seconds += log_now_seconds() - t0;
}

void dist_allgather(float *buf, const size_t *counts) {
    if (!active) return;
    double t0 = log_now_seconds();
    int *ic = malloc(2 * (size_t)size * sizeof *ic);
    if (ic && int_layout(counts, ic, ic + size)) {
        MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, ic, ic + size, MPI_FLOAT,
                       MPI_COMM_WORLD);
    } else {
        size_t at = 0;
        for (int r = 0; r < size; r++) {
            for (size_t k = 0; k < counts[r]; k += PIECE) {
                size_t m = counts[r] - k < PIECE ? counts[r] - k : PIECE;
                MPI_Bcast(buf + at + k, (int)m, MPI_FLOAT, r, MPI_COMM_WORLD);
            }
            at += counts[r];
        }
    }
    free(ic);
    comm_seconds += log_now_seconds() - t0;
}

void dist_send(const void *buf, size_t bytes, int dest) {
    if (!active) return;
    double t0 = log_now_seconds();
    for (size_t at = 0; at < bytes; at += PIECE) {
        size_t k = bytes - at < PIECE ? bytes - at : PIECE;
        MPI_Send((const char *)buf + at, (int)k, MPI_BYTE, dest, 0, MPI_COMM_WORLD);
    }
    comm_seconds += log_now_seconds() - t0;
}

void dist_recv(void *buf, size_t bytes, int src) {
    if (!active) return;
    double t0 = log_now_seconds();
    for (size_t at = 0; at < bytes; at += PIECE) {
        size_t k = bytes - at < PIECE ? bytes - at : PIECE;
        MPI_Recv((char *)buf + at, (int)k, MPI_BYTE, src, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    }
    comm_seconds += log_now_seconds() - t0;
}

double dist_comm_seconds(void) { return comm_seconds; }
