/* ridge_solvers.c: wall time of the group ridge solver's three operations (accumulate, solve,
 * search) with the solver forced to LAPACK (group rank 0, every thread of the node) or
 * ScaLAPACK (the 2-D grid), for the AUTO policy's threshold (RIDGE_SOLVERS.md).
 *   mpiexec -n P bench_ridge_solvers M N C SOLVER [THREADS] [SEARCH]
 * M: order; N rows over the group (split evenly); C classes; SOLVER lapack|scalapack; THREADS:
 * this rank's OpenBLAS threads (default 1); SEARCH 0 skips the search (its eigensolver is the
 * slow part). Prints one line per operation: the slowest rank's seconds. Synthetic rows
 * (ReLU of normal draws), so the numbers measure the solver, not the data. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safecl/dist_mpi.h"
#include "safecl/linalg_group.h"

static double slowest(const dist_comm *c, double t) {
  double v = t;
  if (dist_allreduce_f64(c, &v, 1, DIST_MAX) != SCL_OK) return -1.0;
  return v;
}

static int run(const dist_comm *world, int64_t m, int64_t n_all, int64_t c, linalg_solver solver,
               int threads, int search) {
  int r = dist_comm_rank(world), p = dist_comm_size(world);
  int64_t lo = n_all * r / p, n = n_all * (r + 1) / p - lo;
  float *H = malloc((size_t)((n ? n : 1) * m) * sizeof(float)), *W = malloc((size_t)(c * m) * 4);
  int32_t *y = malloc((size_t)(n ? n : 1) * sizeof(int32_t));
  uint8_t *fit = malloc((size_t)(n ? n : 1));
  scl_rng rng;
  scl_rng_init(&rng, 7, SCL_STREAM_SYNTHETIC, 0, (uint32_t)r);
  for (int64_t i = 0; i < n * m; i++) {
    double v = scl_rng_normal(&rng);
    H[i] = (float)(v > 0 ? v : 0);
  }
  for (int64_t i = 0; i < n; i++) {
    y[i] = (int32_t)scl_rng_below(&rng, (uint32_t)c);
    fit[i] = scl_rng_uniform(&rng) < 0.8;
  }
  openblas_set_num_threads(threads);
  linalg_group *g = NULL;
  linalg_stats *st = NULL;
  scl_err err = linalg_group_create(world, solver, threads, &g);
  if (!err) err = linalg_stats_create(g, m, c, &st);
  double t0 = scl_now();
  for (int64_t r0 = 0; !err && r0 < (n_all + p - 1) / p; r0 += 256) { /* the classifier's chunks */
    int64_t rows = r0 < n ? (n - r0 < 256 ? n - r0 : 256) : 0;
    err = linalg_stats_accumulate(st, H + (r0 < n ? r0 : 0) * m, y, rows);
  }
  double t_acc = slowest(world, scl_now() - t0);
  t0 = scl_now();
  if (!err) err = linalg_stats_solve(st, 1e3, c, W);
  double t_solve = slowest(world, scl_now() - t0), t_search = 0.0;
  if (!err && search) {
    double lambdas[6] = {1e3, 1e4, 1e5, 1e6, 1e7, 1e8}, mse[6];
    int best = 0;
    t0 = scl_now();
    err = linalg_group_ridge_search(g, H, y, fit, n, m, c, lambdas, 6, mse, &best);
    t_search = slowest(world, scl_now() - t0);
  }
  if (r == 0 && !err)
    printf(
        "P=%d threads/rank=%d M=%lld N=%lld C=%lld solver=%s: accumulate %.3f s, solve %.3f s, "
        "search %.3f s\n",
        p, threads, (long long)m, (long long)n_all, (long long)c, linalg_group_solver_name(g, m),
        t_acc, t_solve, t_search);
  if (err) scl_log_error_traceback();
  linalg_stats_destroy(&st);
  linalg_group_destroy(&g);
  free(H);
  free(W);
  free(y);
  free(fit);
  return err ? 1 : 0;
}

int main(int argc, char **argv) {
  if (dist_init(&argc, &argv) != SCL_OK) return 1;
  dist_comm *world = NULL;
  int rc = 2;
  if (argc >= 5 && dist_comm_create(MPI_COMM_WORLD, &world) == SCL_OK) {
    linalg_solver s =
        strcmp(argv[4], "scalapack") == 0 ? LINALG_SOLVER_SCALAPACK : LINALG_SOLVER_LAPACK;
    rc = run(world, atoll(argv[1]), atoll(argv[2]), atoll(argv[3]), s, argc > 5 ? atoi(argv[5]) : 1,
             argc > 6 ? atoi(argv[6]) : 1);
  }
  dist_comm_destroy(&world);
  if (dist_finalize() != SCL_OK) return 1;
  return rc;
}
