/* cholesky.c: the Cholesky factor of one symmetric positive definite matrix in double (LAPACK
 * dpotrf), for drawing correlated Gaussian samples (SLCA's classifier alignment,
 * docs/methods.md k.4).
 *
 * The factorisation runs with OpenBLAS pinned to one thread and the previous count restored
 * afterwards: its result is then a function of the matrix alone, whatever thread count the
 * caller's rank runs with, so every rank of a group (and a group of any size) draws bit-identical
 * samples from the same statistics. A 768 x 768 factor is about 1.5e8 flops, a few milliseconds
 * on one core; the callers factor one matrix at a time, so the pin costs little. */
#include <cblas.h>
#include <string.h>

#include "lapack.h"
#include "safecl/linalg.h"

scl_err linalg_cholesky_f64(double *A, int64_t n) {
  SCL_CHECK(n >= 1 && n <= 46340, SCL_ERR_ARG, "Cholesky of order %lld (1 .. 46340)", (long long)n);
  /* Row-major lower L is column-major upper U = L^T: factor the column-major upper triangle. */
  const int N = (int)n;
  int info = 0;
  const int threads = openblas_get_num_threads();
  openblas_set_num_threads(1);
  dpotrf_("U", &N, A, &N, &info, 1);
  openblas_set_num_threads(threads);
  SCL_CHECK(info >= 0, SCL_ERR_INTERNAL, "dpotrf: argument %d is invalid", -info);
  SCL_CHECK(info == 0, SCL_ERR_LAPACK,
            "the matrix of order %lld is not positive definite (dpotrf: leading minor %d)",
            (long long)n, info);
  for (int64_t i = 0; i < n; i++)
    memset(A + i * n + i + 1, 0, (size_t)(n - 1 - i) * sizeof(double));
  return SCL_OK;
}
