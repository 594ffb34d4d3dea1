/* ridge.c: Gram accumulation, the eigendecomposition-based ridge search and the Cholesky solve
 * on one rank (LAPACK through OpenBLAS, its threads doing the parallel work).
 *
 * The reference code tries each lambda with its own fp32 `torch.linalg.solve`; here one
 * dsyevd of Ha^T Ha serves all candidates, which is both cheaper (one M^3 factorisation instead
 * of one per candidate) and more accurate (double). The chosen lambda can still differ from the
 * reference on near-ties, since the reference scores in fp32. Everything is double: G and Q
 * accumulate over sessions and are compared in tests. linalg_ridge_search_f32 is the reference's
 * own float32 search, kept as a diagnostic (method.ridge.precision = float32). */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lapack.h"
#include "safecl/linalg.h"

#define GRAM_CHUNK_BYTES ((size_t)64 << 20)

static scl_err check_labels(const int32_t *labels, int64_t n, int64_t n_classes) {
  for (int64_t i = 0; i < n; i++)
    SCL_CHECK(labels[i] >= 0 && labels[i] < n_classes, SCL_ERR_ARG,
              "label %d of row %lld is outside [0, %lld)", (int)labels[i], (long long)i,
              (long long)n_classes);
  return SCL_OK;
}

/* Rows [r0, r0 + rows) of H as double, and their one-hot labels when y is not NULL. */
static void rows_to_double(double *hd, double *y, const float *H, const int32_t *labels, int64_t r0,
                           int64_t rows, int64_t m, int64_t n_classes) {
  for (int64_t i = 0; i < rows; i++) {
    const float *src = H + (r0 + i) * m;
    double *dst = hd + i * m;
    for (int64_t k = 0; k < m; k++) dst[k] = (double)src[k];
  }
  if (!y) return;
  memset(y, 0, (size_t)(rows * n_classes) * sizeof(double));
  for (int64_t i = 0; i < rows; i++) y[i * n_classes + labels[r0 + i]] = 1.0;
}

scl_err linalg_gram_accumulate(double *G, double *Q, const float *H, const int32_t *labels,
                               int64_t n, int64_t m, int64_t n_classes) {
  if (n < 0 || m <= 0 || (Q && n_classes <= 0))
    return SCL_ERROR(SCL_ERR_ARG, "Gram accumulation: bad sizes n=%lld m=%lld classes=%lld",
                     (long long)n, (long long)m, (long long)n_classes);
  if (Q) SCL_CALL(check_labels(labels, n, n_classes));
  int64_t chunk = (int64_t)(GRAM_CHUNK_BYTES / ((size_t)(m + (Q ? n_classes : 0)) * 8));
  if (chunk < 1) chunk = 1;
  if (chunk > n) chunk = n > 0 ? n : 1;
  double *hd = NULL, *y = NULL;
  scl_err err = SCL_OK;
  SCL_CALL_GOTO(err, scl_alloc((size_t)(chunk * m) * sizeof(double), "Gram chunk", (void **)&hd),
                done);
  if (Q)
    SCL_CALL_GOTO(
        err, scl_alloc((size_t)(chunk * n_classes) * sizeof(double), "one-hot chunk", (void **)&y),
        done);
  for (int64_t r0 = 0; r0 < n; r0 += chunk) {
    int64_t rows = n - r0 < chunk ? n - r0 : chunk;
    rows_to_double(hd, y, H, labels, r0, rows, m, n_classes);
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)m, (int)rows, 1.0, hd, (int)m, 1.0, G,
                (int)m);
    if (Q)
      cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)m, (int)n_classes, (int)rows, 1.0,
                  hd, (int)m, y, (int)n_classes, 1.0, Q, (int)n_classes);
  }
done:
  scl_free(hd);
  scl_free(y);
  return err;
}

/* In place: A (m x m, upper triangle row-major) -> eigenvectors, row j = eigenvector j
 * (dsyevd's column-major columns), eigenvalues ascending in w. */
static scl_err eigen_symmetric(double *A, double *w, int64_t m) {
  int n = (int)m, lwork = -1, liwork = -1, info = 0, iwork_query = 0;
  double work_query = 0;
  /* Row-major upper is column-major lower. */
  dsyevd_("V", "L", &n, A, &n, w, &work_query, &lwork, &iwork_query, &liwork, &info, 1, 1);
  SCL_CHECK(!info, SCL_ERR_LAPACK, "dsyevd workspace query failed: info=%d", info);
  lwork = (int)work_query + 1;
  liwork = iwork_query + 1;
  double *work = NULL;
  int *iwork = NULL;
  scl_err err = SCL_OK;
  SCL_CALL_GOTO(err, scl_alloc((size_t)lwork * sizeof(double), "dsyevd work", (void **)&work),
                done);
  SCL_CALL_GOTO(err, scl_alloc((size_t)liwork * sizeof(int), "dsyevd iwork", (void **)&iwork),
                done);
  dsyevd_("V", "L", &n, A, &n, w, work, &lwork, iwork, &liwork, &info, 1, 1);
  if (info)
    err = SCL_ERROR(SCL_ERR_LAPACK, "dsyevd failed on the %lldx%lld ridge Gram matrix: info=%d",
                    (long long)m, (long long)m, info);
done:
  scl_free(work);
  scl_free(iwork);
  return err;
}

/* mse of the validation rows for one lambda: P = Z diag(1/(e+lambda)) R. */
static double score_lambda(const double *Z, const double *R, const double *e, double *S, double *P,
                           const int32_t *yb, int64_t nb, int64_t m, int64_t c, double lambda) {
  for (int64_t j = 0; j < m; j++) {
    double s = 1.0 / (e[j] + lambda);
    for (int64_t k = 0; k < c; k++) S[j * c + k] = R[j * c + k] * s;
  }
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nb, (int)c, (int)m, 1.0, Z, (int)m, S,
              (int)c, 0.0, P, (int)c);
  double sum = 0.0;
  for (int64_t i = 0; i < nb; i++)
    for (int64_t k = 0; k < c; k++) {
      double d = P[i * c + k] - (k == yb[i] ? 1.0 : 0.0);
      sum += d * d;
    }
  return sum / ((double)nb * (double)c);
}

typedef struct search_buffers {
  double *V, *e, *B, *R, *hb, *Z, *S, *P;
} search_buffers;

static scl_err alloc_search(search_buffers *b, int64_t nb, int64_t m, int64_t c) {
  size_t mm = (size_t)m * (size_t)m, mc = (size_t)(m * c), d = sizeof(double);
  SCL_CALL(scl_calloc(mm * d, "ridge search Gram matrix", (void **)&b->V));
  SCL_CALL(scl_alloc((size_t)m * d, "eigenvalues", (void **)&b->e));
  SCL_CALL(scl_calloc(mc * d, "Ha^T Ya", (void **)&b->B));
  SCL_CALL(scl_alloc(mc * d, "V^T Ha^T Ya", (void **)&b->R));
  SCL_CALL(scl_alloc(mc * d, "scaled coefficients", (void **)&b->S));
  SCL_CALL(scl_alloc((size_t)(nb * m) * d, "validation features", (void **)&b->hb));
  SCL_CALL(scl_alloc((size_t)(nb * m) * d, "validation projections", (void **)&b->Z));
  SCL_CALL(scl_alloc((size_t)(nb * c) * d, "validation predictions", (void **)&b->P));
  return SCL_OK;
}

static void free_search(search_buffers *b) {
  double *all[] = {b->V, b->e, b->B, b->R, b->hb, b->Z, b->S, b->P};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) scl_free(all[i]);
}

scl_err linalg_ridge_search(const float *H, const int32_t *labels, int64_t n, int64_t m,
                            int64_t n_classes, int64_t n_fit, const double *lambdas, int n_lambdas,
                            double *mse, int *best) {
  int64_t nb = n - n_fit;
  SCL_CHECK(m > 0 && n_classes > 0 && n_fit > 0 && nb > 0 && n_lambdas > 0 &&
                m <= (int64_t)0x7fffffff / 2,
            SCL_ERR_ARG,
            "ridge search needs fitting and validation rows: n=%lld n_fit=%lld m=%lld "
            "classes=%lld candidates=%d",
            (long long)n, (long long)n_fit, (long long)m, (long long)n_classes, n_lambdas);
  SCL_CALL(check_labels(labels, n, n_classes));
  search_buffers b = {0};
  scl_err err = SCL_OK;
  SCL_CALL_GOTO(err, alloc_search(&b, nb, m, n_classes), done);
  SCL_CALL_GOTO(err, linalg_gram_accumulate(b.V, b.B, H, labels, n_fit, m, n_classes), done);
  SCL_CALL_GOTO(err, eigen_symmetric(b.V, b.e, m), done);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n_classes, (int)m, 1.0, b.V,
              (int)m, b.B, (int)n_classes, 0.0, b.R, (int)n_classes);
  rows_to_double(b.hb, NULL, H, labels, n_fit, nb, m, n_classes);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)m, (int)m, 1.0, b.hb, (int)m,
              b.V, (int)m, 0.0, b.Z, (int)m);
  *best = 0;
  for (int k = 0; k < n_lambdas; k++) {
    mse[k] = score_lambda(b.Z, b.R, b.e, b.S, b.P, labels + n_fit, nb, m, n_classes, lambdas[k]);
    if (mse[k] < mse[*best]) *best = k;
  }
done:
  free_search(&b);
  return err;
}

/* mse of the validation rows for one lambda in float32: (A + lambda I) X = B by sgesv on copies
 * of A (m x m) and B (m x c), then P = Hb X. */
static scl_err score_lambda_f32(const float *A, const float *B, const float *hb, const int32_t *yb,
                                int64_t nb, int64_t m, int64_t c, double lambda, float *LU,
                                float *X, float *P, int *ipiv, double *mse) {
  memcpy(LU, A, (size_t)(m * m) * sizeof(float));
  memcpy(X, B, (size_t)(m * c) * sizeof(float));
  for (int64_t i = 0; i < m; i++) LU[i * m + i] += (float)lambda;
  /* A is symmetric, so its row-major layout is the column-major one; X is column-major
   * (c right-hand sides of length m). */
  int n = (int)m, nrhs = (int)c, info = 0;
  sgesv_(&n, &nrhs, LU, &n, ipiv, X, &n, &info);
  SCL_CHECK(info >= 0, SCL_ERR_LAPACK, "sgesv failed: info=%d", info);
  if (info > 0) { /* exactly singular in float32: torch.linalg.solve raises, no candidate */
    *mse = INFINITY;
    return SCL_OK;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)c, (int)m, 1.0f, hb, (int)m, X,
              (int)m, 0.0f, P, (int)c);
  double sum = 0.0;
  for (int64_t i = 0; i < nb; i++)
    for (int64_t k = 0; k < c; k++) {
      float d = P[i * c + k] - (k == yb[i] ? 1.0f : 0.0f);
      sum += (double)(d * d);
    }
  *mse = (double)(float)(sum / ((double)nb * (double)c));
  return SCL_OK;
}

scl_err linalg_ridge_search_f32(const float *H, const int32_t *labels, int64_t n, int64_t m,
                                int64_t n_classes, int64_t n_fit, const double *lambdas,
                                int n_lambdas, double *mse, int *best) {
  int64_t nb = n - n_fit, c = n_classes;
  SCL_CHECK(
      m > 0 && c > 0 && n_fit > 0 && nb > 0 && n_lambdas > 0 && m <= 46340 && n_fit <= 0x7fffffff,
      SCL_ERR_ARG,
      "float32 ridge search needs fitting and validation rows and M <= 46340: n=%lld "
      "n_fit=%lld m=%lld classes=%lld candidates=%d",
      (long long)n, (long long)n_fit, (long long)m, (long long)c, n_lambdas);
  SCL_CALL(check_labels(labels, n, c));
  size_t mm = (size_t)m * (size_t)m, f = sizeof(float);
  float *A = NULL, *LU = NULL, *ya = NULL, *B = NULL, *X = NULL, *P = NULL;
  int *ipiv = NULL;
  scl_err err = SCL_OK;
  SCL_CALL_GOTO(err, scl_alloc(mm * f, "float32 Gram matrix", (void **)&A), done);
  SCL_CALL_GOTO(err, scl_alloc(mm * f, "float32 LU factors", (void **)&LU), done);
  SCL_CALL_GOTO(err, scl_calloc((size_t)(n_fit * c) * f, "float32 one-hot", (void **)&ya), done);
  SCL_CALL_GOTO(err, scl_alloc((size_t)(m * c) * f, "float32 Ha^T Ya", (void **)&B), done);
  SCL_CALL_GOTO(err, scl_alloc((size_t)(m * c) * f, "float32 solution", (void **)&X), done);
  SCL_CALL_GOTO(err, scl_alloc((size_t)(nb * c) * f, "float32 predictions", (void **)&P), done);
  SCL_CALL_GOTO(err, scl_alloc((size_t)m * sizeof(int), "pivots", (void **)&ipiv), done);
  for (int64_t i = 0; i < n_fit; i++) ya[i * c + labels[i]] = 1.0f;
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)m, (int)m, (int)n_fit, 1.0f, H, (int)m,
              H, (int)m, 0.0f, A, (int)m);
  /* B column-major (m x c): B[k * m + j] = (Ha^T Ya)[j][k] */
  cblas_sgemm(CblasColMajor, CblasNoTrans, CblasTrans, (int)m, (int)c, (int)n_fit, 1.0f, H, (int)m,
              ya, (int)c, 0.0f, B, (int)m);
  *best = 0;
  for (int k = 0; k < n_lambdas; k++) {
    SCL_CALL_GOTO(err,
                  score_lambda_f32(A, B, H + n_fit * m, labels + n_fit, nb, m, c, lambdas[k], LU, X,
                                   P, ipiv, &mse[k]),
                  done);
    if (mse[k] < mse[*best]) *best = k;
  }
done:
  scl_free(A);
  scl_free(LU);
  scl_free(ya);
  scl_free(B);
  scl_free(X);
  scl_free(P);
  scl_free(ipiv);
  return err;
}

scl_err linalg_ridge_solve(const double *G, const double *Q, int64_t m, int64_t n_classes,
                           int64_t n_out, double lambda, float *W) {
  SCL_CHECK(m > 0 && n_classes > 0 && n_out > 0 && n_out <= n_classes && m <= 0x7fffffff,
            SCL_ERR_ARG, "ridge solve: bad sizes m=%lld classes=%lld out=%lld", (long long)m,
            (long long)n_classes, (long long)n_out);
  double *A = NULL, *X = NULL;
  scl_err err = SCL_OK;
  size_t mm = (size_t)m * (size_t)m;
  SCL_CALL_GOTO(err, scl_alloc(mm * sizeof(double), "ridge system", (void **)&A), done);
  SCL_CALL_GOTO(err, scl_alloc((size_t)(m * n_out) * sizeof(double), "ridge solution", (void **)&X),
                done);
  memcpy(A, G, mm * sizeof(double));
  for (int64_t i = 0; i < m; i++) A[i * m + i] += lambda;
  /* Column-major right-hand sides: X[c * m + k] = Q[k][c], i.e. row-major W^T layout. */
  for (int64_t k = 0; k < m; k++)
    for (int64_t c = 0; c < n_out; c++) X[c * m + k] = Q[k * n_classes + c];
  int n = (int)m, nrhs = (int)n_out, info = 0;
  dpotrf_("L", &n, A, &n, &info, 1);
  SCL_CHECK_GOTO(err, done, !info, SCL_ERR_LAPACK,
                 "G + lambda I (M = %lld, lambda = %g) is not positive definite (dpotrf "
                 "info=%d): increase the ridge candidates",
                 (long long)m, lambda, info);
  dpotrs_("L", &n, &nrhs, A, &n, X, &n, &info, 1);
  SCL_CHECK_GOTO(err, done, !info, SCL_ERR_LAPACK, "dpotrs failed: info=%d", info);
  for (size_t i = 0; i < (size_t)(m * n_out); i++) W[i] = (float)X[i];
done:
  scl_free(A);
  scl_free(X);
  return err;
}

int linalg_lambda_grid(int lo_exp, int hi_exp, double *out) {
  int n = 0;
  for (int e = lo_exp; e <= hi_exp && n < LINALG_MAX_LAMBDAS; e++) {
    double v = 1.0;
    for (int k = 0; k < (e < 0 ? -e : e); k++) v *= 10.0;
    out[n++] = e < 0 ? 1.0 / v : v;
  }
  return n;
}
