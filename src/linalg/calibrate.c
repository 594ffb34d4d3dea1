/* calibrate.c: times a dgemm and a symmetric eigendecomposition (dsyevd) of one order, the
 * kernels behind the ridge search, so that the cost model (run/plan.c) prices the classifier fit
 * from this machine's rates. It lives here because dsyevd is declared in linalg's private
 * lapack.h: the planner sees only the rates (linalg_calibrate.h). One timed call of each, after a
 * warm-up dgemm: a rough rate is all the plan needs, and calibration stays well under a second
 * at order 512. */
#include "safecl/linalg_calibrate.h"

#include <cblas.h>
#include <stdint.h>
#include <string.h>

#include "lapack.h"

scl_err linalg_calibrate(int n, linalg_rates *out) {
  memset(out, 0, sizeof *out);
  SCL_CHECK(n >= 1 && n <= 4096, SCL_ERR_ARG, "linalg calibration of order %d (1 .. 4096)", n);
  double *a = NULL, *b = NULL, *c = NULL, *w = NULL, *work = NULL;
  int *iwork = NULL, info = 0, lwork = 1 + 6 * n + 2 * n * n, liwork = 3 + 5 * n;
  scl_err err = SCL_OK;
  size_t nn = (size_t)n * n * sizeof(double);
  SCL_CALL_GOTO(err, scl_alloc(nn, "calibration a", (void **)&a), done);
  SCL_CALL_GOTO(err, scl_alloc(nn, "calibration b", (void **)&b), done);
  SCL_CALL_GOTO(err, scl_alloc(nn, "calibration c", (void **)&c), done);
  SCL_CALL_GOTO(err, scl_alloc((size_t)n * sizeof(double), "calibration w", (void **)&w), done);
  SCL_CALL_GOTO(err, scl_alloc((size_t)lwork * sizeof(double), "calibration work", (void **)&work),
                done);
  SCL_CALL_GOTO(err, scl_alloc((size_t)liwork * sizeof(int), "calibration iwork", (void **)&iwork),
                done);
  for (int i = 0; i < n * n; i++) a[i] = b[i] = (double)(((int64_t)i * 7919) % 1000) / 1000.0;
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0, a, n, b, n, 0.0, c, n);
  double t0 = scl_now();
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0, a, n, b, n, 0.0, c, n);
  out->dgemm_gflop_per_s = 2.0 * n * (double)n * n / (scl_now() - t0) / 1e9;
  t0 = scl_now();
  dsyevd_("V", "L", &n, c, &n, w, work, &lwork, iwork, &liwork, &info, 1, 1);
  out->eig_seconds = scl_now() - t0;
  if (info)
    err = SCL_ERROR(SCL_ERR_LAPACK, "linalg calibration: dsyevd of order %d: info=%d", n, info);
done:; /* a declaration follows: C11 needs a statement after a label */
  double *all[] = {a, b, c, w, work};
  for (int i = 0; i < 5; i++) scl_free(all[i]);
  scl_free(iwork);
  return err;
}
