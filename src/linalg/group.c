/* group.c: the rank group of the ridge solver: its BLACS grids, the solver policy, the OpenBLAS
 * thread count of a one-rank solve, and the few collectives the solver needs.
 *
 * Three BLACS grids are made once at create, all over the group's own duplicate communicator:
 * P x 1 (where every rank's rows start), the near-square nprow x npcol grid of the ScaLAPACK
 * solver, and the 1 x 1 grid of group rank 0 (the LAPACK solver). Rows move between them with
 * psgemr2d, so no hand-written all-to-all is needed. A group without a communicator makes no MPI
 * or BLACS call at all (programs and tests that never initialise MPI can still fit classifiers).
 *
 * Policy (LINALG_SOLVER_AUTO): one rank solves with LAPACK and every thread of the node when all
 * the group's ranks share one node and M <= LINALG_AUTO_LAPACK_MAX_M; otherwise ScaLAPACK. On one
 * node ScaLAPACK's only gain is memory (G split over ranks) while its communication and smaller
 * local BLAS calls cost time; tests/bench/RIDGE_SOLVERS.md has the measurement behind the
 * threshold. */
#include <cblas.h>
#include <stdlib.h>

#include "group_internal.h"
#include "safecl/dist_mpi.h"
#include "scalapack.h"

/* Above this order the LAPACK solver's copies of G on one rank (G, the factorisation, and in the
 * search Ga and its eigenvectors: 4 M^2 doubles, 3.2 GB at M = 10000) outweigh its speed. */
#define LINALG_AUTO_LAPACK_MAX_M 8192

static void grid_shape(int p, int *nprow, int *npcol) {
  int r = 1;
  for (int k = 1; k * k <= p; k++)
    if (p % k == 0) r = k;
  *nprow = r;
  *npcol = p / r;
}

static scl_err setup_comm(linalg_group *g) {
  MPI_Comm comm = dist_comm_mpi(g->comm);
  int on_root = 0;
  SCL_CALL(dist_comm_shares_node(g->comm, 0, &on_root));
  int64_t v[2] = {on_root ? 0 : 1, on_root ? g->threads : 0};
  SCL_CALL(dist_allreduce_i64(g->comm, v, 2, DIST_SUM));
  g->one_node = v[0] == 0;
  g->node_threads = (int)v[1];
  grid_shape(g->size, &g->nprow, &g->npcol);
  g->blacs = Csys2blacs_handle(comm);
  g->ctx_col = g->ctx_grid = g->ctx_root = g->blacs;
  Cblacs_gridinit(&g->ctx_col, "C", g->size, 1);
  Cblacs_gridinit(&g->ctx_grid, "R", g->nprow, g->npcol);
  Cblacs_gridinit(&g->ctx_root, "R", 1, 1);
  if (g->rank != 0) g->ctx_root = -1;
  int r, c;
  Cblacs_gridinfo(g->ctx_grid, &r, &c, &g->myrow, &g->mycol);
  if (r != g->nprow || c != g->npcol || g->ctx_col < 0 || g->ctx_grid < 0 ||
      (g->rank == 0 && g->ctx_root < 0))
    return SCL_ERROR(SCL_ERR_INTERNAL, "BLACS grid %dx%d on %d ranks was not created", g->nprow,
                     g->npcol, g->size);
  return SCL_OK;
}

scl_err linalg_group_create(const dist_comm *comm, linalg_solver solver, int threads,
                            linalg_group **out) {
  *out = NULL;
  SCL_CHECK(solver >= LINALG_SOLVER_AUTO && solver <= LINALG_SOLVER_SCALAPACK, SCL_ERR_ARG,
            "unknown ridge solver %d", (int)solver);
  linalg_group *g = calloc(1, sizeof *g);
  SCL_CHECK(g, SCL_ERR_NOMEM, "ridge solver group");
  g->solver = solver;
  g->threads = threads > 0 ? threads : 1;
  g->node_threads = g->threads;
  g->one_node = 1;
  g->size = 1;
  g->blacs = g->ctx_col = g->ctx_grid = g->ctx_root = -1;
  g->nprow = g->npcol = 1;
  scl_err err = SCL_OK;
  if (comm && dist_comm_is_mpi(comm)) {
    SCL_CALL_GOTO(err, dist_comm_dup(comm, &g->comm), fail);
    g->rank = dist_comm_rank(g->comm);
    g->size = dist_comm_size(g->comm);
    err = setup_comm(g);
    SCL_CALL_GOTO(err, grp_agree(g, err), fail);
  }
  *out = g;
  return SCL_OK;
fail:
  linalg_group_destroy(&g);
  return err;
}

void linalg_group_destroy(linalg_group **g) {
  if (!g || !*g) return;
  linalg_group *p = *g;
  if (p->ctx_root >= 0) Cblacs_gridexit(p->ctx_root);
  if (p->ctx_grid >= 0) Cblacs_gridexit(p->ctx_grid);
  if (p->ctx_col >= 0) Cblacs_gridexit(p->ctx_col);
  if (p->blacs >= 0) Cfree_blacs_system_handle(p->blacs);
  dist_comm_destroy(&p->comm);
  free(p);
  *g = NULL;
}

int linalg_group_rank(const linalg_group *g) { return g->rank; }
int linalg_group_size(const linalg_group *g) { return g->size; }

int linalg_group_uses_scalapack(const linalg_group *g, int64_t m) {
  if (!g->comm || g->solver == LINALG_SOLVER_LAPACK) return 0;
  if (g->solver == LINALG_SOLVER_SCALAPACK) return 1;
  if (g->size == 1) return 0;
  return !(g->one_node && m <= LINALG_AUTO_LAPACK_MAX_M);
}

const char *linalg_group_solver_name(const linalg_group *g, int64_t m) {
  return linalg_group_uses_scalapack(g, m) ? "scalapack" : "lapack";
}

scl_err grp_agree(linalg_group *g, scl_err local) {
  if (!g->comm) return local;
  return dist_agree(g->comm, local);
}

scl_err grp_bcast(linalg_group *g, void *buf, size_t len) {
  if (g->comm && g->size > 1) SCL_CALL(dist_bcast(g->comm, 0, buf, len));
  return SCL_OK;
}

scl_err grp_sum_f64(linalg_group *g, double *v, int64_t n) {
  if (g->comm && g->size > 1) SCL_CALL(dist_allreduce_f64(g->comm, v, n, DIST_SUM));
  return SCL_OK;
}

scl_err linalg_group_sum_f64(linalg_group *g, double *v, int64_t n) {
  SCL_CALL(grp_sum_f64(g, v, n));
  return SCL_OK;
}

scl_err linalg_group_max_i64(linalg_group *g, int64_t *v, int64_t n) {
  if (g->comm && g->size > 1) SCL_CALL(dist_allreduce_i64(g->comm, v, n, DIST_MAX));
  return SCL_OK;
}

scl_err grp_quiet_barrier(linalg_group *g, int lapack) {
  if (!lapack || !g->comm || g->size == 1) return SCL_OK;
  SCL_CALL(dist_barrier_sleep(g->comm, g->rank != 0));
  return SCL_OK;
}

scl_err linalg_group_agree(linalg_group *g, scl_err local) { return grp_agree(g, local); }

int grp_threads_widen(linalg_group *g, int lapack) {
  if (!lapack || g->size == 1 || g->rank != 0) return -1;
  int previous = openblas_get_num_threads();
  if (g->node_threads > previous) openblas_set_num_threads(g->node_threads);
  return previous;
}

void grp_threads_restore(int previous) {
  if (previous > 0) openblas_set_num_threads(previous);
}
