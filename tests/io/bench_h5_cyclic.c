/* bench_h5_cyclic.c: write throughput of an M x M float64 block-cyclic matrix into a group file
 * (h5_file_create_atomic_group + h5_write_f64_cyclic + h5_file_commit), for
 * tests/bench/H5_CYCLIC.md. A measurement, not a test: it asserts nothing beyond success.
 *
 *   mpiexec -n G bench_h5_cyclic DIR [M=10000] [MB=64] [REPEATS=3]
 *
 * The G ranks form the squarest nprow x npcol grid (nprow <= npcol). Each repeat times, as the
 * maximum over ranks between barriers: the collective write of the matrix (H5Dwrite into the
 * page cache, packing included) and the whole checkpoint (create, write, commit with MPI_File_sync,
 * fsync and rename). Prints one line per repeat and the best of each. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include "safecl/dist_mpi.h"
#include "safecl/h5.h"

static double max_over_ranks(double t) {
  double all = t;
  MPI_Allreduce(&t, &all, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return all;
}

static int report(scl_err err) {
  if (err) fprintf(stderr, "%s\n", scl_error_traceback());
  return err != SCL_OK;
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (argc < 2) {
    if (rank == 0) fprintf(stderr, "usage: bench_h5_cyclic DIR [M] [MB] [REPEATS]\n");
    MPI_Finalize();
    return 2;
  }
  int64_t m = argc > 2 ? atoll(argv[2]) : 10000, mb = argc > 3 ? atoll(argv[3]) : 64;
  int repeats = argc > 4 ? atoi(argv[4]) : 3;
  int nprow = 1;
  for (int p = 1; p * p <= size; p++)
    if (size % p == 0) nprow = p;
  int npcol = size / nprow, myrow = rank / npcol, mycol = rank % npcol;
  int64_t mloc = h5_cyclic_numroc(m, mb, myrow, nprow),
          nloc = h5_cyclic_numroc(m, mb, mycol, npcol);
  int64_t lld = mloc > 1 ? mloc : 1;
  double *local = malloc((size_t)(lld * (nloc ? nloc : 1)) * sizeof *local);
  for (int64_t k = 0; k < lld * nloc; k++) local[k] = (double)(k % 1013) * 0.5 + rank;
  char path[1024];
  snprintf(path, sizeof path, "%s/bench_ckpt.h5", argv[1]);
  double gb = (double)m * (double)m * 8.0 / 1e9, best_w = 1e30, best_t = 1e30;
  dist_comm *world = NULL;
  int fail = report(dist_comm_create(MPI_COMM_WORLD, &world));
  if (rank == 0)
    printf(
        "bench_h5_cyclic: %lld x %lld float64 (%.2f GB), %lldx%lld blocks, %dx%d grid, %d ranks\n",
        (long long)m, (long long)m, gb, (long long)mb, (long long)mb, nprow, npcol, size);
  for (int r = 0; r < repeats && !fail; r++) {
    h5_file *f = NULL;
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    fail |= report(h5_file_create_atomic_group(path, world, &f));
    MPI_Barrier(MPI_COMM_WORLD);
    double t1 = MPI_Wtime();
    if (!fail)
      fail |= report(
          h5_write_f64_cyclic(f, "A", m, m, mb, mb, nprow, npcol, myrow, mycol, 1, local, lld));
    double t2 = MPI_Wtime();
    if (f) fail |= report(h5_file_commit_group(&f, fail ? SCL_ERR_IO : SCL_OK));
    double t3 = MPI_Wtime();
    double w = max_over_ranks(t2 - t1), t = max_over_ranks(t3 - t0);
    if (w < best_w) best_w = w;
    if (t < best_t) best_t = t;
    if (rank == 0)
      printf("  repeat %d: write %.3f s (%.2f GB/s), create+write+commit %.3f s (%.2f GB/s)\n", r,
             w, gb / w, t, gb / t);
  }
  if (rank == 0 && !fail)
    printf("best: write %.2f GB/s, checkpoint %.2f GB/s (%d ranks)\n", gb / best_w, gb / best_t,
           size);
  free(local);
  dist_comm_destroy(&world);
  MPI_Finalize();
  return fail;
}
