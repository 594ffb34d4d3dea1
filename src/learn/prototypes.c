/* prototypes.c: class-mean prototypes and cosine-similarity prediction (SimpleCIL, APER).
 * Prediction normalises a chunk of feature rows and multiplies by the unit prototypes with one
 * sgemm; the chunk bounds the scratch memory whatever the test-set size. */
#include "safecl/prototypes.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PREDICT_CHUNK 512

scl_err learn_prototypes_create(int64_t n_classes, int64_t dim, learn_prototypes **out) {
  *out = NULL;
  SCL_CHECK(n_classes >= 1 && dim >= 1, SCL_ERR_ARG, "prototypes: bad shape %lld x %lld",
            (long long)n_classes, (long long)dim);
  learn_prototypes *p = calloc(1, sizeof *p);
  SCL_CHECK(p, SCL_ERR_NOMEM, "prototypes");
  p->n_classes = n_classes;
  p->dim = dim;
  size_t cells = (size_t)n_classes * (size_t)dim;
  scl_err err = scl_calloc(cells * sizeof(double), "prototype sums", (void **)&p->sum);
  if (!err)
    err = scl_calloc((size_t)n_classes * sizeof(int64_t), "prototype counts", (void **)&p->count);
  if (!err) err = scl_calloc(cells * sizeof(float), "prototypes", (void **)&p->unit);
  if (err) {
    learn_prototypes_destroy(&p);
    return SCL_TRACE(err);
  }
  *out = p;
  return SCL_OK;
}

void learn_prototypes_destroy(learn_prototypes **p) {
  if (!p || !*p) return;
  scl_free((*p)->sum);
  scl_free((*p)->count);
  scl_free((*p)->unit);
  free(*p);
  *p = NULL;
}

scl_err learn_prototypes_fit(learn_prototypes *p, const float *features, const int32_t *labels,
                             int64_t n, int64_t lo, int64_t hi, const dist_comm *comm) {
  const int64_t k = hi - lo, D = p->dim;
  double *delta = NULL;
  int64_t *count = NULL;
  scl_err err = SCL_OK;
  SCL_CALL_GOTO(
      err, scl_calloc((size_t)(k * D) * sizeof(double), "prototype shard sums", (void **)&delta),
      done);
  /* count[k]: rows with a label outside the session, summed with the rest so that every rank
   * of a group reaches the same verdict (none waits in a sum that another rank skipped) */
  SCL_CALL_GOTO(
      err, scl_calloc((size_t)(k + 1) * sizeof(int64_t), "prototype shard counts", (void **)&count),
      done);
  for (int64_t i = 0; i < n; i++) {
    if (labels[i] < lo || labels[i] >= hi) {
      count[k]++;
      continue;
    }
    double *row = delta + (labels[i] - lo) * D;
    for (int64_t j = 0; j < D; j++) row[j] += (double)features[i * D + j];
    count[labels[i] - lo]++;
  }
  SCL_CALL_GOTO(err, dist_allreduce_f64(comm, delta, k * D, DIST_SUM), done);
  SCL_CALL_GOTO(err, dist_allreduce_i64(comm, count, k + 1, DIST_SUM), done);
  SCL_CHECK_GOTO(err, done, !count[k], SCL_ERR_ARG,
                 "prototypes: %lld training label(s) outside the session's classes [%lld, %lld)",
                 (long long)count[k], (long long)lo, (long long)hi);
  for (int64_t c = 0; c < k; c++) {
    for (int64_t j = 0; j < D; j++) p->sum[(lo + c) * D + j] += delta[c * D + j];
    p->count[lo + c] += count[c];
  }
  SCL_CALL_GOTO(err, learn_prototypes_finalize(p, lo, hi), done);
done:
  scl_free(delta);
  scl_free(count);
  return err;
}

scl_err learn_prototypes_finalize(learn_prototypes *p, int64_t lo, int64_t hi) {
  for (int64_t c = lo; c < hi; c++) {
    SCL_CHECK(p->count[c] != 0, SCL_ERR_ARG, "prototypes: class %lld has no training images",
              (long long)c);
    const double *s = p->sum + c * p->dim;
    double norm = 0.0, inv_n = 1.0 / (double)p->count[c];
    for (int64_t k = 0; k < p->dim; k++) norm += (s[k] * inv_n) * (s[k] * inv_n);
    norm = sqrt(norm);
    double scale = inv_n / (norm > 1e-12 ? norm : 1e-12);
    for (int64_t k = 0; k < p->dim; k++) p->unit[c * p->dim + k] = (float)(s[k] * scale);
  }
  return SCL_OK;
}

scl_err learn_prototypes_predict(const learn_prototypes *p, const float *features, int64_t n,
                                 int64_t n_seen, int32_t *pred) {
  SCL_CHECK(n_seen >= 1 && n_seen <= p->n_classes, SCL_ERR_ARG,
            "prototypes: %lld seen classes of %lld", (long long)n_seen, (long long)p->n_classes);
  float *x = NULL, *scores = NULL;
  scl_err err = SCL_OK;
  SCL_CALL_GOTO(
      err, scl_alloc((size_t)(PREDICT_CHUNK * p->dim) * sizeof(float), "cosine rows", (void **)&x),
      done);
  SCL_CALL_GOTO(err,
                scl_alloc((size_t)(PREDICT_CHUNK * n_seen) * sizeof(float), "cosine scores",
                          (void **)&scores),
                done);
  for (int64_t r0 = 0; r0 < n; r0 += PREDICT_CHUNK) {
    int64_t rows = n - r0 < PREDICT_CHUNK ? n - r0 : PREDICT_CHUNK;
    for (int64_t i = 0; i < rows; i++) {
      const float *f = features + (r0 + i) * p->dim;
      double norm = 0.0;
      for (int64_t k = 0; k < p->dim; k++) norm += (double)f[k] * f[k];
      float inv = (float)(1.0 / fmax(sqrt(norm), 1e-12));
      for (int64_t k = 0; k < p->dim; k++) x[i * p->dim + k] = f[k] * inv;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)n_seen, (int)p->dim, 1.0f,
                x, (int)p->dim, p->unit, (int)p->dim, 0.0f, scores, (int)n_seen);
    for (int64_t i = 0; i < rows; i++) {
      const float *s = scores + i * n_seen;
      int64_t best = 0;
      for (int64_t c = 1; c < n_seen; c++)
        if (s[c] > s[best]) best = c;
      pred[r0 + i] = (int32_t)best;
    }
  }
done:
  scl_free(x);
  scl_free(scores);
  return err;
}
