/* rp.c: the random-projection ridge classifier (RanPAC phase 2; SAFE's classifiers).
 *
 * Projection is an sgemm followed by ReLU; statistics and solves go through the group solver
 * of linalg/ (linalg_group.h) in double, each rank contributing its own rows. Every function
 * that touches the M-wide projection works on row chunks, so memory stays at chunk x M floats
 * however many images a session has (M = 10000 makes a full H of CIFAR's 5000-image session
 * 200 MB). The search needs this rank's share of the session's H (fit and validation rows),
 * which it allocates once per call. */
#include "safecl/rp.h"

#include <cblas.h>
#include <stdlib.h>

#include "safecl/linalg.h"

#define RP_CHUNK 256

scl_err learn_rp_create(linalg_group *group, int64_t d, int64_t m, int64_t n_classes, uint64_t seed,
                        uint32_t tag, learn_rp **out) {
  *out = NULL;
  SCL_CHECK(d >= 1 && m >= 1 && n_classes >= 1, SCL_ERR_ARG,
            "random projection: D=%lld M=%lld classes=%lld", (long long)d, (long long)m,
            (long long)n_classes);
  learn_rp *rp = calloc(1, sizeof *rp);
  SCL_CHECK(rp, SCL_ERR_NOMEM, "random projection");
  rp->d = d;
  rp->m = m;
  rp->n_classes = n_classes;
  rp->group = group;
  scl_err err = SCL_OK;
  if (!group) {
    err = linalg_group_create(NULL, LINALG_SOLVER_LAPACK, 1, &rp->owned);
    rp->group = rp->owned;
  }
  /* Collective: every rank reaches it (a local failure above is agreed inside). */
  if (!err) err = linalg_stats_create(rp->group, m, n_classes, &rp->stats);
  if (!err) err = scl_alloc((size_t)(d * m) * sizeof(float), "W_rand", (void **)&rp->w_rand);
  if (!err)
    err = scl_calloc((size_t)(m * n_classes) * sizeof(float), "RP W_o", (void **)&rp->w_out);
  if (rp->group) err = linalg_group_agree(rp->group, err);
  if (err) {
    learn_rp_destroy(&rp);
    return SCL_TRACE(err);
  }
  for (int64_t i = 0; i < d; i++) {
    scl_rng r;
    scl_rng_init(&r, seed, SCL_STREAM_PROJECT, tag, (uint32_t)i);
    for (int64_t j = 0; j < m; j++) rp->w_rand[i * m + j] = (float)scl_rng_normal(&r);
  }
  *out = rp;
  return SCL_OK;
}

void learn_rp_destroy(learn_rp **rp) {
  if (!rp || !*rp) return;
  scl_free((*rp)->w_rand);
  linalg_stats_destroy(&(*rp)->stats);
  linalg_group_destroy(&(*rp)->owned);
  scl_free((*rp)->w_out);
  free(*rp);
  *rp = NULL;
}

void learn_rp_project(const learn_rp *rp, const float *x, int64_t n, float *h) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)rp->m, (int)rp->d, 1.0f, x,
              (int)rp->d, rp->w_rand, (int)rp->m, 0.0f, h, (int)rp->m);
  for (int64_t i = 0; i < n * rp->m; i++) h[i] = h[i] > 0.0f ? h[i] : 0.0f;
}

scl_err learn_rp_accumulate(learn_rp *rp, const float *x, const int32_t *labels, int64_t n) {
  float *h = NULL;
  /* Every rank makes as many collective calls as the rank with the most chunks. */
  int64_t chunks = (n + RP_CHUNK - 1) / RP_CHUNK;
  SCL_CALL(linalg_group_max_i64(rp->group, &chunks, 1));
  scl_err err = scl_alloc((size_t)(RP_CHUNK * rp->m) * sizeof(float), "RP chunk", (void **)&h);
  SCL_CALL(linalg_group_agree(rp->group, err));
  for (int64_t k = 0; k < chunks && !err; k++) {
    int64_t r0 = k * RP_CHUNK < n ? k * RP_CHUNK : n;
    int64_t rows = n - r0 < RP_CHUNK ? n - r0 : RP_CHUNK;
    learn_rp_project(rp, x + r0 * rp->d, rows, h);
    err = linalg_stats_accumulate(rp->stats, h, labels + r0, rows);
  }
  scl_free(h);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}

scl_err learn_rp_fit_rows(uint64_t seed, uint32_t key, int64_t n_total, double fit_fraction,
                          const int64_t *pos, int64_t n, uint8_t *fit) {
  SCL_CHECK(n_total >= 0 && n <= n_total, SCL_ERR_ARG,
            "ridge split: %lld rows of a session of %lld", (long long)n, (long long)n_total);
  int64_t *order = NULL, *rank_of = NULL;
  size_t bytes = (size_t)(n_total ? n_total : 1) * sizeof(int64_t);
  scl_err err = SCL_OK;
  SCL_CALL_GOTO(err, scl_alloc(bytes, "loader order", (void **)&order), done);
  SCL_CALL_GOTO(err, scl_alloc(bytes, "loader order (inverse)", (void **)&rank_of), done);
  SCL_CALL_GOTO(err, scl_rng_permutation(seed, SCL_STREAM_SPLIT, key, n_total, order), done);
  for (int64_t k = 0; k < n_total; k++) rank_of[order[k]] = k;
  int64_t n_fit = (int64_t)(fit_fraction * (double)n_total); /* int(0.8 * N), as the reference */
  for (int64_t i = 0; i < n; i++) {
    int64_t p = pos ? pos[i] : i;
    SCL_CHECK_GOTO(err, done, p >= 0 && p < n_total, SCL_ERR_ARG,
                   "ridge split: position %lld outside [0, %lld)", (long long)p,
                   (long long)n_total);
    fit[i] = rank_of[p] < n_fit;
  }
done:
  scl_free(order);
  scl_free(rank_of);
  return err;
}

scl_err learn_rp_search(learn_rp *rp, const float *x, const int32_t *labels, const uint8_t *fit,
                        int64_t n, int lo_exp, int hi_exp, double *lambda, double *mse) {
  double lambdas[LINALG_MAX_LAMBDAS], scores[LINALG_MAX_LAMBDAS];
  int nl = linalg_lambda_grid(lo_exp, hi_exp, lambdas), best = 0;
  SCL_CHECK(nl >= 1, SCL_ERR_ARG, "empty ridge grid 10^%d..10^%d", lo_exp, hi_exp);
  float *h = NULL;
  scl_err err =
      scl_alloc((size_t)((n ? n : 1) * rp->m) * sizeof(float), "search projections", (void **)&h);
  SCL_CALL_GOTO(err, linalg_group_agree(rp->group, err), done);
  learn_rp_project(rp, x, n, h);
  SCL_CALL_GOTO(err,
                linalg_group_ridge_search(rp->group, h, labels, fit, n, rp->m, rp->n_classes,
                                          lambdas, nl, scores, &best),
                done);
  *lambda = lambdas[best];
  if (mse)
    for (int k = 0; k < nl; k++) mse[k] = scores[k];
done:
  scl_free(h);
  return err;
}

scl_err learn_rp_solve_into(learn_rp *rp, double lambda, int64_t n_seen, float *w_out) {
  SCL_CALL(linalg_stats_solve(rp->stats, lambda, n_seen, w_out));
  return SCL_OK;
}

scl_err learn_rp_solve(learn_rp *rp, double lambda, int64_t n_seen) {
  SCL_CALL(learn_rp_solve_into(rp, lambda, n_seen, rp->w_out));
  rp->state[0] = (double)n_seen;
  rp->state[1] = lambda;
  return SCL_OK;
}

int64_t learn_rp_seen(const learn_rp *rp) { return (int64_t)rp->state[0]; }

scl_err learn_rp_logits_with(const learn_rp *rp, const float *w_out, int64_t seen, const float *x,
                             int64_t n, float *logits) {
  SCL_CHECK(seen >= 1, SCL_ERR_INTERNAL, "RP head used before its first solve");
  float *h = NULL;
  SCL_CALL(scl_alloc((size_t)(RP_CHUNK * rp->m) * sizeof(float), "RP chunk", (void **)&h));
  for (int64_t r0 = 0; r0 < n; r0 += RP_CHUNK) {
    int64_t rows = n - r0 < RP_CHUNK ? n - r0 : RP_CHUNK;
    learn_rp_project(rp, x + r0 * rp->d, rows, h);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)seen, (int)rp->m, 1.0f, h,
                (int)rp->m, w_out, (int)rp->m, 0.0f, logits + r0 * seen, (int)seen);
  }
  scl_free(h);
  return SCL_OK;
}

scl_err learn_rp_logits(const learn_rp *rp, const float *x, int64_t n, float *logits) {
  SCL_CALL(learn_rp_logits_with(rp, rp->w_out, learn_rp_seen(rp), x, n, logits));
  return SCL_OK;
}
