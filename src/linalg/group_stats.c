/* group_stats.c: the accumulated statistics G = sum H^T H and Q = sum H^T Y of one classifier
 * over a rank group, and the Cholesky solve W = ((G + lambda I)^-1 Q)^T.
 *
 * G lives in a grp_matrix (block-cyclic, or whole on group rank 0 for the LAPACK solver), chosen
 * once at create for the order m. Q is replicated; each accumulate adds this rank's rows to a
 * pending partial (one-hot Y makes H^T Y a scatter-add, no gemm), and the partials are summed
 * at the next solve or linalg_stats_sync, so the number of accumulate calls costs no M x C
 * reductions. The solve factors a copy of G (G itself keeps accumulating across sessions). */
#include <stdlib.h>
#include <string.h>

#include "group_internal.h"
#include "lapack.h"
#include "scalapack.h"

struct linalg_stats {
  linalg_group *g;
  int64_t m, c;
  grp_matrix G;
  double *Q;  /* m x c row-major, replicated: the sum as of the last sync */
  double *Qp; /* this rank's rows since the last sync */
};

scl_err linalg_stats_create(linalg_group *g, int64_t m, int64_t n_classes, linalg_stats **out) {
  *out = NULL;
  scl_err err = SCL_OK;
  linalg_stats *s = calloc(1, sizeof *s);
  if (!s) err = SCL_ERROR(SCL_ERR_NOMEM, "ridge statistics");
  if (!err && n_classes < 1)
    err = SCL_ERROR(SCL_ERR_ARG, "ridge statistics: %lld classes", (long long)n_classes);
  if (!err) {
    s->g = g;
    s->m = m;
    s->c = n_classes;
    err = grp_matrix_init(&s->G, g, m, !linalg_group_uses_scalapack(g, m));
  }
  if (!err) {
    size_t bytes = (size_t)(m * n_classes) * sizeof(double);
    err = scl_calloc(bytes, "ridge statistics Q", (void **)&s->Q);
    if (!err) err = scl_calloc(bytes, "ridge statistics Q (pending)", (void **)&s->Qp);
  }
  err = grp_agree(g, err);
  if (err) {
    linalg_stats_destroy(&s);
    return SCL_TRACE(err);
  }
  *out = s;
  return SCL_OK;
}

void linalg_stats_destroy(linalg_stats **s) {
  if (!s || !*s) return;
  grp_matrix_free(&(*s)->G);
  scl_free((*s)->Q);
  scl_free((*s)->Qp);
  free(*s);
  *s = NULL;
}

scl_err linalg_stats_accumulate(linalg_stats *s, const float *H, const int32_t *labels, int64_t n) {
  scl_err err = SCL_OK;
  if (n < 0) err = SCL_ERROR(SCL_ERR_ARG, "Gram accumulation of %lld rows", (long long)n);
  for (int64_t i = 0; !err && i < n; i++)
    if (labels[i] < 0 || labels[i] >= s->c)
      err = SCL_ERROR(SCL_ERR_ARG, "label %d of row %lld is outside [0, %lld)", (int)labels[i],
                      (long long)i, (long long)s->c);
  SCL_CALL(grp_agree(s->g, err));
  for (int64_t i = 0; i < n; i++) {
    const float *h = H + i * s->m;
    double *q = s->Qp + labels[i];
    for (int64_t k = 0; k < s->m; k++) q[k * s->c] += (double)h[k];
  }
  SCL_CALL(grp_matrix_syrk_rows(&s->G, H, NULL, n));
  return SCL_OK;
}

scl_err linalg_stats_sync(linalg_stats *s) {
  int64_t mc = s->m * s->c;
  SCL_CALL(grp_sum_f64(s->g, s->Qp, mc));
  for (int64_t i = 0; i < mc; i++) s->Q[i] += s->Qp[i];
  memset(s->Qp, 0, (size_t)mc * sizeof(double));
  return SCL_OK;
}

double *linalg_stats_q(linalg_stats *s) { return s->Q; }

/* Factor and solve on group rank 0 (the LAPACK solver); W (n_out x m float) filled there. */
static scl_err solve_lapack(linalg_stats *s, double lambda, int64_t n_out, float *W, int *info) {
  const grp_matrix *G = &s->G;
  int64_t m = s->m;
  *info = 0;
  if (!G->in_grid) return SCL_OK;
  double *A = NULL, *X = NULL;
  scl_err err = SCL_OK;
  SCL_CALL_GOTO(err, scl_alloc((size_t)(m * m) * sizeof(double), "ridge system", (void **)&A),
                done);
  SCL_CALL_GOTO(err, scl_alloc((size_t)(m * n_out) * sizeof(double), "ridge solution", (void **)&X),
                done);
  memcpy(A, G->a, (size_t)(m * m) * sizeof(double));
  for (int64_t i = 0; i < m; i++) A[i * m + i] += lambda;
  for (int64_t k = 0; k < m; k++)
    for (int64_t c = 0; c < n_out; c++) X[c * m + k] = s->Q[k * s->c + c];
  int n = (int)m, nrhs = (int)n_out;
  dpotrf_("U", &n, A, &n, info, 1);
  if (*info == 0) dpotrs_("U", &n, &nrhs, A, &n, X, &n, info, 1);
  for (int64_t i = 0; *info == 0 && i < m * n_out; i++) W[i] = (float)X[i];
done:
  scl_free(A);
  scl_free(X);
  return err;
}

/* pdpotrf/pdpotrs on the grid; Wd (n_out x m double) receives this rank's part of the solution
 * (zeros elsewhere) for the caller's sum. */
static scl_err solve_scalapack(linalg_stats *s, double lambda, int64_t n_out, double *Wd,
                               int *info) {
  const grp_matrix *G = &s->G;
  linalg_group *g = s->g;
  int n = (int)s->m, nrhs = (int)n_out, nb = (int)G->nb, zero = 0, one = 1;
  int64_t locc_b = 0;
  {
    int64_t blocks = n_out / nb, extra = blocks % G->npcol;
    locc_b = (blocks / G->npcol) * nb;
    if (G->mycol < extra)
      locc_b += nb;
    else if (G->mycol == extra)
      locc_b += n_out % nb;
  }
  double *A = NULL, *B = NULL;
  int desc_b[SCALAPACK_DLEN], lld = (int)G->lld;
  *info = 0;
  size_t a_elems = (size_t)(G->lld * (G->locc > 0 ? G->locc : 1));
  scl_err err = scl_alloc(a_elems * sizeof(double), "ridge system (local piece)", (void **)&A);
  if (!err)
    err = scl_calloc((size_t)(G->lld * (locc_b > 0 ? locc_b : 1)) * sizeof(double),
                     "ridge right-hand sides (local piece)", (void **)&B);
  SCL_CALL_GOTO(err, grp_agree(g, err), done);
  descinit_(desc_b, &n, &nrhs, &nb, &nb, &zero, &zero, &G->ctxt, &lld, info);
  if (*info) SCL_ERROR_GOTO(err, done, SCL_ERR_INTERNAL, "descinit (right-hand sides): %d", *info);
  memcpy(A, G->a, a_elems * sizeof(double));
  for (int64_t lj = 0; lj < G->locc; lj++) {
    int64_t gj = grp_local_to_global(lj, G->nb, G->mycol, G->npcol);
    for (int64_t li = 0; li < G->locr; li++) {
      int64_t gi = grp_local_to_global(li, G->nb, G->myrow, G->nprow);
      if (gi == gj) A[li + lj * G->lld] += lambda;
    }
  }
  for (int64_t lj = 0; lj < locc_b; lj++) {
    int64_t c = grp_local_to_global(lj, G->nb, G->mycol, G->npcol);
    for (int64_t li = 0; li < G->locr; li++)
      B[li + lj * G->lld] = s->Q[grp_local_to_global(li, G->nb, G->myrow, G->nprow) * s->c + c];
  }
  pdpotrf_("U", &n, A, &one, &one, G->desc, info, 1);
  int64_t v[2] = {*info, -(int64_t)*info};
  SCL_CALL_GOTO(err, linalg_group_max_i64(g, v, 2), done);
  *info = (int)(v[0] ? v[0] : -v[1]);
  if (*info) goto done;
  pdpotrs_("U", &n, &nrhs, A, &one, &one, G->desc, B, &one, &one, desc_b, info, 1);
  memset(Wd, 0, (size_t)(n_out * s->m) * sizeof(double));
  for (int64_t lj = 0; lj < locc_b; lj++) {
    int64_t c = grp_local_to_global(lj, G->nb, G->mycol, G->npcol);
    for (int64_t li = 0; li < G->locr; li++)
      Wd[c * s->m + grp_local_to_global(li, G->nb, G->myrow, G->nprow)] = B[li + lj * G->lld];
  }
done:
  scl_free(A);
  scl_free(B);
  return err;
}

scl_err linalg_stats_solve(linalg_stats *s, double lambda, int64_t n_out, float *W) {
  linalg_group *g = s->g;
  scl_err err = SCL_OK;
  if (n_out < 1 || n_out > s->c)
    err = SCL_ERROR(SCL_ERR_ARG, "ridge solve: %lld outputs of %lld classes (M = %lld)",
                    (long long)n_out, (long long)s->c, (long long)s->m);
  SCL_CALL(grp_agree(g, err));
  SCL_CALL(linalg_stats_sync(s));
  int info = 0;
  double *Wd = NULL;
  if (s->G.lapack) {
    int threads = grp_threads_widen(g, 1);
    err = solve_lapack(s, lambda, n_out, W, &info);
    grp_threads_restore(threads);
    SCL_CALL(grp_quiet_barrier(g, 1));
    SCL_CALL(grp_agree(g, err));
    SCL_CALL(grp_bcast(g, &info, sizeof info));
  } else {
    err = scl_alloc((size_t)(n_out * s->m) * sizeof(double), "ridge solution", (void **)&Wd);
    SCL_CALL_GOTO(err, grp_agree(g, err), done);
    SCL_CALL_GOTO(err, solve_scalapack(s, lambda, n_out, Wd, &info), done);
  }
  SCL_CHECK_GOTO(err, done, !info, SCL_ERR_LAPACK,
                 "G + lambda I (M = %lld, lambda = %g) is not positive definite (%s info=%d): "
                 "increase the ridge candidates",
                 (long long)s->m, lambda, s->G.lapack ? "dpotrf/dpotrs" : "pdpotrf/pdpotrs", info);
  if (s->G.lapack) {
    SCL_CALL_GOTO(err, grp_bcast(g, W, (size_t)(n_out * s->m) * sizeof(float)), done);
  } else {
    SCL_CALL_GOTO(err, grp_sum_f64(g, Wd, n_out * s->m), done);
    for (int64_t i = 0; i < n_out * s->m; i++) W[i] = (float)Wd[i];
  }
done:
  scl_free(Wd);
  return err;
}

linalg_local_view linalg_stats_gram_view(linalg_stats *s) {
  const grp_matrix *G = &s->G;
  linalg_local_view v = {0};
  v.m = s->m;
  v.mb = v.nb = G->nb;
  v.nprow = G->nprow;
  v.npcol = G->npcol;
  v.myrow = G->in_grid ? G->myrow : -1;
  v.mycol = G->in_grid ? G->mycol : -1;
  v.holds = G->in_grid;
  v.locr = G->in_grid ? G->locr : 0;
  v.locc = G->in_grid ? G->locc : 0;
  v.lld = G->lld;
  v.data = G->in_grid ? G->a : NULL;
  return v;
}
