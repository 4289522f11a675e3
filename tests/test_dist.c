/* test_dist — dist without a launcher: MPI is never started (no daemon
 * forked, as Open MPI's singleton MPI_Init would), and every collective is
 * the identity for rank 0 of 1. Under mpirun the same calls are exercised by
 * tests/e2e_mpi.sh. */
#include "dist.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "check.h"

static void test_no_launcher_no_mpi(void) {
    unsetenv("OMPI_COMM_WORLD_SIZE");
    unsetenv("PMIX_RANK");
    setenv("SLURM_STEP_NUM_TASKS", "1", 1); /* a one-task srun step is not a job of ranks */
    dp_err err;
    CHECK(dist_init(&err) == 0);
    CHECK(dist_rank() == 0 && dist_size() == 1 && dist_local_size() == 1);
    /* no child process: no orted */
    CHECK(waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD);
    CHECK(dist_threads(0) == 0);
    CHECK(dist_threads(3) == 3);
    CHECK(dist_comm_seconds() == 0.0);
}

static void test_collectives_are_identity(void) {
    double x[3] = {1.5, -2, 3};
    dist_allreduce_sum(x, 3);
    CHECK(x[0] == 1.5 && x[1] == -2 && x[2] == 3);
    CHECK(dist_allreduce_max(-7) == -7);
    float send[4] = {1, 2, 3, 4}, recv[4] = {0};
    size_t counts[1] = {4};
    dist_reduce_scatter(send, recv, counts);
    CHECK(memcmp(send, recv, sizeof send) == 0);
    dist_allgather(send, counts);
    CHECK(send[0] == 1 && send[3] == 4);
    char b[3] = "ab";
    dist_bcast(b, 3, 0);
    CHECK_STR(b, "ab");
    dist_barrier();
    dist_finalize();
}

int main(void) {
    RUN(test_no_launcher_no_mpi);
    RUN(test_collectives_are_identity);
    return check_summary();
}
