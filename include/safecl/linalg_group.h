/* linalg_group.h: the ridge systems of the random-projection classifiers on a rank group
 * (docs/architecture.md section 2; docs/methods.md c.5-c.6): G = sum H^T H (M x M) and Q = sum H^T
 * Y (M x C) summed over every rank's rows, the ridge search and the Cholesky solve.
 *
 * Two solvers behind one interface. ScaLAPACK: G lives block-cyclically on the group's 2-D BLACS
 * grid (no rank holds the whole M x M matrix), the solve is pdpotrf/pdpotrs and the search a
 * distributed symmetric eigendecomposition. LAPACK: one rank (group rank 0) holds G and solves
 * with all the group's threads while the others wait; used when the group has one rank, or when
 * the policy says one rank is faster (LINALG_SOLVER_AUTO: all ranks on one node and M small
 * enough; the measurement behind the rule is in tests/bench/RIDGE_SOLVERS.md). Results agree within 1e-8
 * relative whichever solver runs.
 *
 * Storage convention (both solvers): G in ScaLAPACK's convention, column-major local pieces of a
 * 2-D block-cyclic matrix, upper triangle valid (global i <= j); the LAPACK solver is the 1 x 1
 * grid case held by group rank 0. Q (M x C, row-major, double) is replicated on every rank.
 *
 * Every function taking a group, stats or search is collective over the group unless it says
 * "local". */
#ifndef SAFECL_LINALG_GROUP_H
#define SAFECL_LINALG_GROUP_H

#include <stdint.h>

#include "safecl/core.h"
#include "safecl/dist.h"
#include "safecl/linalg.h"

typedef enum {
  LINALG_SOLVER_AUTO = 0,
  LINALG_SOLVER_LAPACK,
  LINALG_SOLVER_SCALAPACK
} linalg_solver;

typedef struct linalg_group linalg_group;

/* A group over `comm` (duplicated; NULL or dist_comm_self() = this process alone: no MPI call
 * at all, always the LAPACK solver, usable without MPI_Init). threads: this rank's OpenBLAS threads (the LAPACK
 * solver on a group runs with the sum over the group's ranks on rank 0's node). A forced
 * LINALG_SOLVER_SCALAPACK on a one-rank communicator runs ScaLAPACK on a 1 x 1 grid (tests,
 * benchmarks); AUTO there is LAPACK. *out owned by the caller (linalg_group_destroy,
 * collective). */
SCL_NODISCARD scl_err linalg_group_create(const dist_comm *comm, linalg_solver solver, int threads,
                                          linalg_group **out);
void linalg_group_destroy(linalg_group **g);
int linalg_group_rank(const linalg_group *g); /* local */
int linalg_group_size(const linalg_group *g); /* local */
/* Local: 1 if systems of order m are solved with ScaLAPACK on this group. AUTO: LAPACK when all
 * ranks share one node and m <= 8192 (tests/bench/RIDGE_SOLVERS.md), else ScaLAPACK. */
int linalg_group_uses_scalapack(const linalg_group *g, int64_t m);
/* "lapack" or "scalapack" for systems of order m (local; for logs and provenance). */
const char *linalg_group_solver_name(const linalg_group *g, int64_t m);

/* G and Q of one classifier. The solver (layout of G) is fixed at create for the order m. */
typedef struct linalg_stats linalg_stats;

SCL_NODISCARD scl_err linalg_stats_create(linalg_group *g, int64_t m, int64_t n_classes,
                                          linalg_stats **out);
void linalg_stats_destroy(linalg_stats **s);
/* G += sum over ranks of H_r^T H_r, Q += H_r^T Y_r for this call's n rows of H (n x M, float,
 * row-major) on each rank; n may differ between ranks and be 0. Every rank makes the same
 * number of calls. Communication: the rows themselves (floats), never an M x M matrix; Q's
 * part is kept on the rank until the next linalg_stats_sync or solve. */
SCL_NODISCARD scl_err linalg_stats_accumulate(linalg_stats *s, const float *H,
                                              const int32_t *labels, int64_t n);
/* W (n_out x M, float, row-major, replicated on every rank) = ((G + lambda I)^-1 Q)^T for the
 * first n_out classes. G is not modified. SCL_ERR_LAPACK naming lambda if G + lambda I is not
 * positive definite (the same verdict on every rank). */
SCL_NODISCARD scl_err linalg_stats_solve(linalg_stats *s, double lambda, int64_t n_out, float *W);
/* Sums the ranks' pending parts of Q into the replicated Q (collective). */
SCL_NODISCARD scl_err linalg_stats_sync(linalg_stats *s);
/* Local: Q (M x C row-major, replicated), complete as of the last solve or sync (a fit ends in a
 * solve, so a checkpoint taken between sessions sees all of it; values read into it on resume
 * are the whole Q on every rank). Owned by s. */
double *linalg_stats_q(linalg_stats *s);

/* This rank's part of G for checkpoints (local). holds = 0: nothing here (a non-root rank of the
 * LAPACK solver, myrow = mycol = -1). Element (i, j) of local piece = data[i + j * lld], global
 * row of local row i follows the block-cyclic map with block size mb x nb, source process
 * (0, 0): global = (i / mb) * mb * nprow + myrow * mb + i % mb (columns alike). The LAPACK
 * solver is the 1 x 1 grid with mb = nb = m held by group rank 0; the ScaLAPACK solver uses
 * mb = nb = 64 and every grid rank holds = 1 (its piece may be empty: locr or locc 0,
 * lld >= 1). Only the upper triangle (global i <= j) is meaningful. data is owned by s and
 * may be written (restore from a checkpoint) between collective calls. */
typedef struct linalg_local_view {
  int64_t m;               /* G is m x m */
  int64_t mb, nb;          /* block size */
  int nprow, npcol;        /* grid */
  int myrow, mycol;        /* this rank's grid coordinates */
  int holds;               /* 1 if this rank holds a piece (locr x locc) */
  int64_t locr, locc, lld; /* local rows, columns, leading dimension */
  double *data;
} linalg_local_view;
linalg_local_view linalg_stats_gram_view(linalg_stats *s);

/* The ridge search of the reference code (optimise_ridge_parameter, see linalg.h's
 * linalg_ridge_search) over rows spread across the group: each rank passes its rows H (n x M)
 * and labels, and fit[i] = 1 if row i belongs to the fitting part (Ha), 0 if it scores (Hb).
 * Ga = sum of Ha^T Ha over the group (this call's rows only, not the accumulated G); mse[k] =
 * mean over all validation entries of the group; *best the first index of the smallest mse.
 * Same numbers as linalg_ridge_search on the union of the rows (fit rows first) within 1e-8. */
SCL_NODISCARD scl_err linalg_group_ridge_search(linalg_group *g, const float *H,
                                                const int32_t *labels, const uint8_t *fit,
                                                int64_t n, int64_t m, int64_t n_classes,
                                                const double *lambdas, int n_lambdas, double *mse,
                                                int *best);

/* Precision of linalg_group_ridge_search: double (the default), or float32, the released
 * code's own search (linalg_ridge_search_f32), a diagnostic (method.ridge.precision). float32
 * runs on a group of one rank only (whichever solver): on more ranks the search refuses with
 * SCL_ERR_ARG naming method.ridge.precision. Local; set the same on every rank. */
typedef enum { LINALG_PRECISION_DOUBLE = 0, LINALG_PRECISION_FLOAT32 } linalg_precision;
void linalg_group_set_search_precision(linalg_group *g, linalg_precision p);

/* Every successful linalg_group_ridge_search leaves a record of its candidates, their scores and
 * the choice (the same on every rank), for the trial's results. */
#define LINALG_SEARCH_LOG 8
typedef struct linalg_search_record {
  int n_lambdas, best;
  double lambda[LINALG_MAX_LAMBDAS], mse[LINALG_MAX_LAMBDAS];
} linalg_search_record;
/* Local: copies the records of the searches since the last call into out (oldest first; of
 * more than LINALG_SEARCH_LOG, the latest) and forgets them; returns their count. */
int linalg_group_take_searches(linalg_group *g, linalg_search_record out[LINALG_SEARCH_LOG]);

/* Small sums the classifiers need, in place over the group. */
SCL_NODISCARD scl_err linalg_group_sum_f64(linalg_group *g, double *v, int64_t n);
SCL_NODISCARD scl_err linalg_group_max_i64(linalg_group *g, int64_t *v, int64_t n);
/* The collective status decision of dist_agree over the group (returns local alone). */
SCL_NODISCARD scl_err linalg_group_agree(linalg_group *g, scl_err local);

#endif /* SAFECL_LINALG_GROUP_H */
