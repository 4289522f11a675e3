/* dist — the processes of one job: rank, size and the few collectives data
 * parallelism needs, over MPI. The only module that knows MPI; the stages
 * call dist_* and the rest of the library knows nothing of it.
 *
 * dist_init calls MPI_Init only when a launcher started the process
 * (mpirun/mpiexec: OMPI_COMM_WORLD_SIZE or PMIX_RANK; srun:
 * SLURM_STEP_NUM_TASKS > 1). Otherwise nothing of MPI runs — no daemon
 * (Open MPI's singleton MPI_Init would fork one), no output, no cost — and
 * every collective below is the identity for one process (rank 0 of 1).
 *
 * Errors: MPI's default handler on MPI_COMM_WORLD stays in place, so a
 * failed collective or a peer that died ends the whole job (mpirun kills
 * every rank); the collectives therefore return nothing. Counts are size_t:
 * buffers past MPI's int counts are sent in pieces. */
#ifndef DP_DIST_H
#define DP_DIST_H

#include <stddef.h>

#include "error.h"

/* Joins the job when launched by an MPI launcher (see above); a no-op
 * otherwise. Returns 0, or -1 with err when MPI_Init fails. */
int dist_init(dp_err *err);
/* Leaves the job (MPI_Finalize after a barrier); a no-op without MPI. */
void dist_finalize(void);
/* Ends every rank of the job with status CODE (MPI_Abort); exit(CODE)
 * without MPI. For the one place that reports a failed command. */
void dist_abort(int code) __attribute__((noreturn));

int dist_rank(void);        /* 0-based; 0 without MPI */
int dist_size(void);        /* ranks in the job; 1 without MPI */
int dist_local_size(void);  /* ranks on this machine; 1 without MPI */

/* Threads per rank: CONFIGURED when > 0, else this machine's cores shared
 * among its ranks (at least 1; the cores this process may run on when the
 * launcher bound it to fewer). 0 (all cores) for a single process. */
int dist_threads(int configured);

void dist_barrier(void);
/* x[0..n) ← Σ over ranks, in place. */
void dist_allreduce_sum(double *x, size_t n);
/* The largest of every rank's X. */
long dist_allreduce_max(long x);
/* BUF[0..bytes) from ROOT to every rank. */
void dist_bcast(void *buf, size_t bytes, int root);

/* ZeRO's pair over a flat float array split into dist_size() contiguous
 * blocks, block r of counts[r] elements starting at Σ counts[0..r):
 * reduce-scatter: recv[0..counts[rank]) ← Σ over ranks of the rank's block
 * of send (send is every rank's whole array; it is left unchanged);
 * allgather: every rank's block of buf, already in place, to every rank. */
void dist_reduce_scatter(const float *send, float *recv, const size_t *counts);
void dist_allgather(float *buf, const size_t *counts);

/* Point to point, for streaming shards through rank 0 (checkpoints). */
void dist_send(const void *buf, size_t bytes, int dest);
void dist_recv(void *buf, size_t bytes, int src);

/* Seconds spent inside the collectives above since dist_init (wall clock,
 * waiting for slower ranks included). */
double dist_comm_seconds(void);

#endif
