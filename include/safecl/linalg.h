/* linalg.h: ridge-regression systems of the random-projection classifiers (docs/methods.md
 * c.5-c.6), and the Cholesky factor of a covariance (SLCA, k.4).
 *
 * Shapes: H (N x M) are random-projection features ReLU(phi W_rand), one row per image; labels
 * are class indices in [0, C); Y is their one-hot matrix (never materialised). G = H^T H (M x M)
 * and Q = H^T Y (M x C) are accumulated in double across sessions. All matrices are row-major.
 * Only the upper triangle of G (row-major) is maintained and read.
 *
 * This file is the one-process reference path on LAPACK (OpenBLAS threads). The classifiers solve
 * their systems on the trial's rank group through linalg_group.h (ScaLAPACK on a grid, or LAPACK
 * on group rank 0), whose results the tests compare with these within 1e-8. */
#ifndef SAFECL_LINALG_H
#define SAFECL_LINALG_H

#include <stdint.h>

#include "safecl/core.h"

#define LINALG_MAX_LAMBDAS 64

/* G += H^T H (upper triangle) and Q += H^T Y for n rows of H; rows are converted to double in
 * chunks, so the extra memory is bounded (about 64 MiB). Q may be NULL (G only). */
SCL_NODISCARD scl_err linalg_gram_accumulate(double *G, double *Q, const float *H,
                                             const int32_t *labels, int64_t n, int64_t m,
                                             int64_t n_classes);

/* The ridge parameter search of the reference code (optimise_ridge_parameter): the first n_fit
 * rows of H fit W(lambda) = ((Ha^T Ha + lambda I)^-1 Ha^T Ya)^T, the remaining n - n_fit rows
 * score it by mse = mean((Hb W^T - Yb)^2) over all (n - n_fit) x n_classes entries; *best is
 * the first index of the smallest mse. One symmetric eigendecomposition Ha^T Ha = V E V^T serves
 * every candidate: W(lambda)^T = V (E + lambda)^-1 V^T Ha^T Ya. mse (n_lambdas doubles) receives
 * every candidate's score. Errors: SCL_ERR_ARG (bad sizes, no validation rows, a label out of
 * range), SCL_ERR_LAPACK (the eigensolver failed), SCL_ERR_NOMEM. */
SCL_NODISCARD scl_err linalg_ridge_search(const float *H, const int32_t *labels, int64_t n,
                                          int64_t m, int64_t n_classes, int64_t n_fit,
                                          const double *lambdas, int n_lambdas, double *mse,
                                          int *best);

/* The same search in float32 as the released RanPAC and SAFE code run it (a diagnostic,
 * method.ridge.precision = float32): Ga = Ha^T Ha and Ha^T Ya by sgemm, one LU solve (sgesv, as
 * torch.linalg.solve) of (Ga + lambda I) W^T = Ha^T Ya per candidate, predictions by sgemm; each
 * mse is the float32 value of the mean of the float32 squared errors. Where M exceeds the fitting
 * rows, Ga's rounding error (about 1e-7 of its largest eigenvalue) swamps the small candidates,
 * and the choice can be far from the exact search's. Same arguments and errors as
 * linalg_ridge_search. */
SCL_NODISCARD scl_err linalg_ridge_search_f32(const float *H, const int32_t *labels, int64_t n,
                                              int64_t m, int64_t n_classes, int64_t n_fit,
                                              const double *lambdas, int n_lambdas, double *mse,
                                              int *best);

/* W = ((G + lambda I)^-1 Q)^T by Cholesky (dpotrf/dpotrs) on a copy of G: W is (n_out x M)
 * float, the first n_out of Q's n_classes columns (the classes seen so far). G is not modified.
 * Errors: SCL_ERR_LAPACK naming lambda when G + lambda I is not positive definite. */
SCL_NODISCARD scl_err linalg_ridge_solve(const double *G, const double *Q, int64_t m,
                                         int64_t n_classes, int64_t n_out, double lambda, float *W);

/* In place: the row-major symmetric positive definite A (n x n) becomes its lower Cholesky factor
 * L (A = L L^T, the strictly upper triangle zeroed), computed by dpotrf in double with OpenBLAS on
 * one thread, so the factor does not depend on the caller's thread count (SLCA's Gaussian
 * samples, docs/methods.md k.4). Errors: SCL_ERR_LAPACK naming the leading minor that is not
 * positive (A is then partly overwritten), SCL_ERR_ARG for n outside 1 .. 46340. */
SCL_NODISCARD scl_err linalg_cholesky_f64(double *A, int64_t n);

/* Candidate grids of the reference code: SAFE's 10^3..10^8 (6 values) and RanPAC's
 * 10^-8..10^8 (17 values). Returns the count written to out (at most LINALG_MAX_LAMBDAS). */
int linalg_lambda_grid(int lo_exp, int hi_exp, double *out);

#endif /* SAFECL_LINALG_H */
