/* group_internal.h: the pieces of the group ridge solver shared by group.c (the group, its BLACS
 * grids, thread and collective helpers), group_matrix.c (a distributed M x M matrix and its
 * operations), group_stats.c (G and Q) and group_search.c (the ridge search). Private to
 * src/linalg/.
 *
 * A group without a communicator (linalg_group_create with NULL or dist_comm_self()) makes no
 * MPI or BLACS call at all, so methods can be used by programs that never initialise MPI; its collectives are
 * no-ops. */
#ifndef SAFECL_LINALG_GROUP_INTERNAL_H
#define SAFECL_LINALG_GROUP_INTERNAL_H

#include <stdint.h>

#include "safecl/linalg_group.h"

/* Block size of the 2-D block-cyclic layout (ScaLAPACK solver). */
#define GROUP_NB 64
/* Rows of H redistributed per collective step are bounded so that the receiving side holds at
 * most about this many bytes of them (float and double copies). */
#define GROUP_CHUNK_BYTES ((int64_t)64 << 20)

struct linalg_group {
  dist_comm *comm; /* NULL: this process alone, no MPI */
  int rank, size;
  linalg_solver solver;
  int threads;      /* this rank's OpenBLAS threads */
  int node_threads; /* sum of threads over the group's ranks on group rank 0's node */
  int one_node;     /* 1 if every rank of the group shares group rank 0's node */
  int blacs;        /* BLACS system handle, -1 if none */
  int ctx_col;      /* P x 1 grid, process row r = group rank r (the rows' home) */
  int ctx_grid;     /* nprow x npcol grid (row-major over group ranks) */
  int ctx_root;     /* 1 x 1 grid of group rank 0; -1 on the other ranks */
  int nprow, npcol, myrow, mycol;
  linalg_precision precision;                       /* of the ridge search */
  int n_searches;                                   /* searches since the last take (log below) */
  linalg_search_record searches[LINALG_SEARCH_LOG]; /* ring: search k at k % LINALG_SEARCH_LOG */
};

/* A square m x m double matrix distributed block-cyclically on the ScaLAPACK grid (block
 * GROUP_NB), or held whole by group rank 0 (the LAPACK solver: a 1 x 1 grid, block m). */
typedef struct grp_matrix {
  linalg_group *g;
  int64_t m;
  int lapack;  /* 1: 1 x 1 grid on group rank 0 */
  int ctxt;    /* BLACS context (-1 when there is no communicator or not in the grid) */
  int in_grid; /* this rank holds a piece */
  int nprow, npcol, myrow, mycol;
  int64_t nb; /* block size (rows and columns) */
  int64_t locr, locc, lld;
  int desc[9];
  double *a; /* locr x locc column-major, lld = max(1, locr); NULL when !in_grid */
} grp_matrix;

/* group.c: collectives that degrade to no-ops without a communicator. */
SCL_NODISCARD scl_err grp_agree(linalg_group *g, scl_err local);
SCL_NODISCARD scl_err grp_bcast(linalg_group *g, void *buf, size_t len); /* from group rank 0 */
SCL_NODISCARD scl_err grp_sum_f64(linalg_group *g, double *v, int64_t n);
/* OpenBLAS threads of the whole node on group rank 0 of a LAPACK solve (others wait in MPI);
 * returns the previous count for grp_threads_restore. */
int grp_threads_widen(linalg_group *g, int lapack);
void grp_threads_restore(int previous);
/* LAPACK solver only (else a no-op): a barrier the other ranks wait in asleep (polled every
 * 0.2 ms) rather than spinning inside MPI, so that rank 0's threads have the node's cores. */
SCL_NODISCARD scl_err grp_quiet_barrier(linalg_group *g, int lapack);

/* group_matrix.c */
SCL_NODISCARD scl_err grp_matrix_init(grp_matrix *a, linalg_group *g, int64_t m, int lapack);
void grp_matrix_free(grp_matrix *a);
int64_t grp_local_to_global(int64_t l, int64_t nb, int p, int nprocs);
/* a += sum over ranks of Hs^T Hs (upper triangle) for the rows i of H (n x m, float, row-major)
 * with sel == NULL or sel[i] != 0. Collective; every rank the same call. */
SCL_NODISCARD scl_err grp_matrix_syrk_rows(grp_matrix *a, const float *H, const uint8_t *sel,
                                           int64_t n);
/* out (m x c, row-major, replicated) = op(A) X for X (m x c, row-major, replicated), op(A) = A^T
 * if trans else A, A's full local pieces (not only a triangle). Collective. */
SCL_NODISCARD scl_err grp_matrix_mul_replicated(const grp_matrix *a, int trans, const double *X,
                                                int64_t c, double *out);
/* Eigendecomposition of the symmetric a (upper triangle read, destroyed): vectors into v (same
 * layout), eigenvalues ascending into e (m, replicated). Collective; one verdict everywhere. */
SCL_NODISCARD scl_err grp_matrix_eigen(grp_matrix *a, grp_matrix *v, double *e);

#endif /* SAFECL_LINALG_GROUP_INTERNAL_H */
