/* group_search.c: the ridge search of the reference code over rows spread across a rank group.
 *
 * The same mathematics as linalg_ridge_search (ridge.c): one symmetric eigendecomposition
 * Ga = V E V^T of the fitting rows' Gram matrix serves every candidate, W(lambda)^T =
 * V (E + lambda)^-1 V^T Ha^T Ya. Here Ga is a grp_matrix (block-cyclic, or whole on rank 0),
 * Ha^T Ya is summed from every rank's fitting rows, and for each candidate the M x C matrix
 * W(lambda)^T is formed replicated (one M x C reduction) so that every rank scores its own
 * validation rows without moving them; the squared errors are summed over the group. A rank
 * never holds the whole M x M matrix unless it is the LAPACK solver's rank 0. The float32 search
 * (a diagnostic) runs only on a group of one rank, with linalg_ridge_search_f32. Each search is
 * recorded for linalg_group_take_searches. */
#include <cblas.h>
#include <string.h>

#include "group_internal.h"

typedef struct search_work {
  double *B, *R, *S, *Wt, *hb, *P, *sse;
  double *e;
} search_work;

static void free_work(search_work *w) {
  double *all[] = {w->B, w->R, w->S, w->Wt, w->hb, w->P, w->sse, w->e};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) scl_free(all[i]);
}

static scl_err alloc_work(search_work *w, int64_t nval, int64_t m, int64_t c, int nl) {
  size_t mc = (size_t)(m * c) * sizeof(double), nv = (size_t)(nval > 0 ? nval : 1);
  SCL_CALL(scl_calloc(mc, "Ha^T Ya", (void **)&w->B));
  SCL_CALL(scl_alloc(mc, "V^T Ha^T Ya", (void **)&w->R));
  SCL_CALL(scl_alloc(mc, "scaled coefficients", (void **)&w->S));
  SCL_CALL(scl_alloc(mc, "W(lambda)^T", (void **)&w->Wt));
  SCL_CALL(scl_alloc(nv * (size_t)m * sizeof(double), "validation rows", (void **)&w->hb));
  SCL_CALL(scl_alloc(nv * (size_t)c * sizeof(double), "validation predictions", (void **)&w->P));
  SCL_CALL(scl_calloc((size_t)nl * sizeof(double), "squared errors", (void **)&w->sse));
  SCL_CALL(scl_alloc((size_t)m * sizeof(double), "eigenvalues", (void **)&w->e));
  return SCL_OK;
}

/* Local checks and the group's row counts: cnt = {fitting rows, validation rows} summed. */
static scl_err check_and_count(linalg_group *g, const int32_t *labels, const uint8_t *fit,
                               int64_t n, int64_t m, int64_t c, int nl, double cnt[2]) {
  scl_err err = SCL_OK;
  cnt[0] = cnt[1] = 0;
  if (n < 0 || m <= 0 || m > 0x3fffffff || c <= 0 || nl <= 0)
    err = SCL_ERROR(SCL_ERR_ARG, "ridge search: bad sizes n=%lld m=%lld classes=%lld candidates=%d",
                    (long long)n, (long long)m, (long long)c, nl);
  for (int64_t i = 0; !err && i < n; i++) {
    if (labels[i] < 0 || labels[i] >= c)
      err = SCL_ERROR(SCL_ERR_ARG, "label %d of row %lld is outside [0, %lld)", (int)labels[i],
                      (long long)i, (long long)c);
    cnt[fit[i] ? 0 : 1] += 1;
  }
  SCL_CALL(grp_agree(g, err));
  SCL_CALL(grp_sum_f64(g, cnt, 2));
  if (cnt[0] < 1 || cnt[1] < 1)
    return SCL_ERROR(SCL_ERR_ARG,
                     "ridge search needs fitting and validation rows: %.0f fitting and %.0f "
                     "validation rows over the group (m=%lld classes=%lld)",
                     cnt[0], cnt[1], (long long)m, (long long)c);
  return SCL_OK;
}

/* Squared error of this rank's validation rows against W^T (m x c). */
static double local_sse(const search_work *w, const int32_t *labels, const uint8_t *fit, int64_t n,
                        int64_t nval, int64_t m, int64_t c) {
  if (nval == 0) return 0.0;
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nval, (int)c, (int)m, 1.0, w->hb,
              (int)m, w->Wt, (int)c, 0.0, w->P, (int)c);
  double sum = 0.0;
  for (int64_t i = 0, r = 0; i < n; i++) {
    if (fit[i]) continue;
    for (int64_t k = 0; k < c; k++) {
      double d = w->P[r * c + k] - (k == labels[i] ? 1.0 : 0.0);
      sum += d * d;
    }
    r++;
  }
  return sum;
}

/* Everything after the counts; Ga and V freed by the caller. */
static scl_err search_body(linalg_group *g, grp_matrix *ga, grp_matrix *v, search_work *w,
                           const float *H, const int32_t *labels, const uint8_t *fit, int64_t n,
                           int64_t m, int64_t c, const double *lambdas, int nl) {
  int64_t nval = 0;
  for (int64_t i = 0; i < n; i++) {
    const float *h = H + i * m;
    if (fit[i]) {
      double *b = w->B + labels[i];
      for (int64_t k = 0; k < m; k++) b[k * c] += (double)h[k];
    } else {
      for (int64_t k = 0; k < m; k++) w->hb[nval * m + k] = (double)h[k];
      nval++;
    }
  }
  SCL_CALL(grp_matrix_syrk_rows(ga, H, fit, n));
  SCL_CALL(grp_sum_f64(g, w->B, m * c));
  SCL_CALL(grp_matrix_eigen(ga, v, w->e));
  grp_matrix_free(ga);
  SCL_CALL(grp_matrix_mul_replicated(v, 1, w->B, c, w->R));
  for (int k = 0; k < nl; k++) {
    for (int64_t j = 0; j < m; j++) {
      double s = 1.0 / (w->e[j] + lambdas[k]);
      for (int64_t q = 0; q < c; q++) w->S[j * c + q] = w->R[j * c + q] * s;
    }
    SCL_CALL(grp_matrix_mul_replicated(v, 0, w->S, c, w->Wt));
    w->sse[k] = local_sse(w, labels, fit, n, nval, m, c);
  }
  /* Summed, then rank 0's sums everywhere, so that the choice is the same on every rank. */
  SCL_CALL(grp_sum_f64(g, w->sse, nl));
  SCL_CALL(grp_bcast(g, w->sse, (size_t)nl * sizeof(double)));
  return SCL_OK;
}

/* The released float32 search on a group of one rank: the rows packed fitting rows first (in
 * their order), then linalg_ridge_search_f32. */
static scl_err search_f32(const float *H, const int32_t *labels, const uint8_t *fit, int64_t n,
                          int64_t m, int64_t c, const double *lambdas, int nl, double *mse,
                          int *best) {
  float *rows = NULL;
  int32_t *y = NULL;
  int64_t n_fit = 0;
  scl_err err = SCL_OK;
  SCL_CALL_GOTO(
      err, scl_alloc((size_t)(n * m) * sizeof(float), "float32 search rows", (void **)&rows), done);
  SCL_CALL_GOTO(err, scl_alloc((size_t)n * sizeof(int32_t), "float32 search labels", (void **)&y),
                done);
  for (int pass = 1, r = 0; pass >= 0; pass--)
    for (int64_t i = 0; i < n; i++) {
      if (fit[i] != pass) continue;
      memcpy(rows + (int64_t)r * m, H + i * m, (size_t)m * sizeof(float));
      y[r++] = labels[i];
      n_fit += pass;
    }
  SCL_CALL_GOTO(err, linalg_ridge_search_f32(rows, y, n, m, c, n_fit, lambdas, nl, mse, best),
                done);
done:
  scl_free(rows);
  scl_free(y);
  return err;
}

static void log_search(linalg_group *g, const double *lambdas, int nl, const double *mse,
                       int best) {
  linalg_search_record *r = &g->searches[g->n_searches++ % LINALG_SEARCH_LOG];
  r->n_lambdas = nl;
  r->best = best;
  memcpy(r->lambda, lambdas, (size_t)nl * sizeof(double));
  memcpy(r->mse, mse, (size_t)nl * sizeof(double));
}

void linalg_group_set_search_precision(linalg_group *g, linalg_precision p) { g->precision = p; }

int linalg_group_take_searches(linalg_group *g, linalg_search_record out[LINALG_SEARCH_LOG]) {
  int n = g->n_searches < LINALG_SEARCH_LOG ? g->n_searches : LINALG_SEARCH_LOG;
  for (int k = 0; k < n; k++) out[k] = g->searches[(g->n_searches - n + k) % LINALG_SEARCH_LOG];
  g->n_searches = 0;
  return n;
}

scl_err linalg_group_ridge_search(linalg_group *g, const float *H, const int32_t *labels,
                                  const uint8_t *fit, int64_t n, int64_t m, int64_t n_classes,
                                  const double *lambdas, int n_lambdas, double *mse, int *best) {
  SCL_CHECK(n_lambdas >= 1 && n_lambdas <= LINALG_MAX_LAMBDAS, SCL_ERR_ARG,
            "ridge search: %d candidates (1 to %d)", n_lambdas, LINALG_MAX_LAMBDAS);
  if (g->precision == LINALG_PRECISION_FLOAT32) {
    SCL_CHECK(g->size == 1, SCL_ERR_ARG,
              "method.ridge.precision = float32 runs on one rank only (the search of a group of "
              "%d ranks is double): run the trial on one rank or set method.ridge.precision = "
              "double",
              g->size);
    SCL_CALL(search_f32(H, labels, fit, n, m, n_classes, lambdas, n_lambdas, mse, best));
    log_search(g, lambdas, n_lambdas, mse, *best);
    return SCL_OK;
  }
  double cnt[2];
  SCL_CALL(check_and_count(g, labels, fit, n, m, n_classes, n_lambdas, cnt));
  int64_t nval = 0;
  for (int64_t i = 0; i < n; i++) nval += !fit[i];
  int lapack = !linalg_group_uses_scalapack(g, m);
  grp_matrix ga = {0}, v = {0};
  search_work w = {0};
  int threads = grp_threads_widen(g, lapack);
  scl_err err = grp_matrix_init(&ga, g, m, lapack);
  if (!err) err = alloc_work(&w, nval, m, n_classes, n_lambdas);
  SCL_CALL_GOTO(err, grp_agree(g, err), done);
  SCL_CALL_GOTO(
      err, search_body(g, &ga, &v, &w, H, labels, fit, n, m, n_classes, lambdas, n_lambdas), done);
  *best = 0;
  for (int k = 0; k < n_lambdas; k++) {
    mse[k] = w.sse[k] / (cnt[1] * (double)n_classes);
    if (mse[k] < mse[*best]) *best = k;
  }
  log_search(g, lambdas, n_lambdas, mse, *best);
done:
  grp_threads_restore(threads);
  grp_matrix_free(&ga);
  grp_matrix_free(&v);
  free_work(&w);
  return err;
}
