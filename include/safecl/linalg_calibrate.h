/* linalg_calibrate.h: how fast this process runs the dense kernels the ridge classifiers spend
 * their time in, for the trial cost model (run/plan.c, `safecl plan --calibrate`,
 * docs/architecture.md section 6). Local: no communication. */
#ifndef SAFECL_LINALG_CALIBRATE_H
#define SAFECL_LINALG_CALIBRATE_H

#include "safecl/core.h"

typedef struct linalg_rates {
  double dgemm_gflop_per_s; /* one n x n x n dgemm (OpenBLAS), after one untimed warm-up */
  double eig_seconds;       /* one n x n symmetric eigendecomposition with vectors (dsyevd) */
} linalg_rates;

/* Times one dgemm and one dsyevd of order n (1 .. 4096) on fixed data, with OpenBLAS's threads
 * as the caller set them. Wall-clock measurements: they describe the machine at that moment and
 * are never compared by a test. Errors: SCL_ERR_ARG (n out of range), SCL_ERR_NOMEM,
 * SCL_ERR_LAPACK (dsyevd's info). */
SCL_NODISCARD scl_err linalg_calibrate(int n, linalg_rates *out);

#endif /* SAFECL_LINALG_CALIBRATE_H */
