/* ease_classifier.c: EASE's prototype classifier (docs/methods.md j.4, j.5): raw class means in
 * every subspace, the semantic-guided complement of old classes in newer subspaces, and the
 * reweighted cosine logits over the concatenated subspace features.
 *
 * The means and the complement run once per session on at most a few hundred rows, so they are
 * plain loops in double (the complement's cosines and softmax exactly as the reference computes
 * them, but without its float32 rounding). The logits are one sgemm per subspace over unit rows,
 * each a few percent of one ViT forward per test image. Nothing here keeps state: the method owns
 * W and the session boundaries (ease.c). */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ease_internal.h"

#define LOGIT_CHUNK 256

scl_err learn_ease_means(float *W, int64_t ld, const float *x, const int32_t *labels, int64_t n,
                         int64_t width, int64_t lo, int64_t hi, const dist_comm *comm) {
  const int64_t k = hi - lo;
  double *sum = NULL;
  int64_t *count = NULL;
  scl_err err = SCL_OK;
  SCL_CALL_GOTO(err,
                scl_calloc((size_t)(k * width) * sizeof(double), "EASE class sums", (void **)&sum),
                done);
  /* count[k]: rows labelled outside the session, summed so every rank reaches one verdict */
  SCL_CALL_GOTO(err,
                scl_calloc((size_t)(k + 1) * sizeof(int64_t), "EASE class counts", (void **)&count),
                done);
  for (int64_t i = 0; i < n; i++) {
    if (labels[i] < lo || labels[i] >= hi) {
      count[k]++;
      continue;
    }
    double *row = sum + (labels[i] - lo) * width;
    const float *xi = x + i * width;
    for (int64_t j = 0; j < width; j++) row[j] += (double)xi[j];
    count[labels[i] - lo]++;
  }
  SCL_CALL_GOTO(err, dist_allreduce_f64(comm, sum, k * width, DIST_SUM), done);
  SCL_CALL_GOTO(err, dist_allreduce_i64(comm, count, k + 1, DIST_SUM), done);
  SCL_CHECK_GOTO(err, done, !count[k], SCL_ERR_ARG,
                 "EASE prototypes: %lld training label(s) outside the session's classes "
                 "[%lld, %lld)",
                 (long long)count[k], (long long)lo, (long long)hi);
  for (int64_t c = 0; c < k; c++) {
    SCL_CHECK_GOTO(err, done, count[c] > 0, SCL_ERR_ARG,
                   "EASE prototypes: class %lld has no training images", (long long)(lo + c));
    const double inv = 1.0 / (double)count[c];
    for (int64_t j = 0; j < width; j++) W[(lo + c) * ld + j] = (float)(sum[c * width + j] * inv);
  }
done:
  scl_free(sum);
  scl_free(count);
  return err;
}

static double dot_d(const float *a, const float *b, int64_t D) {
  double s = 0.0;
  for (int64_t j = 0; j < D; j++) s += (double)a[j] * (double)b[j];
  return s;
}

/* W[session i, block bd] = softmax_r(cos(W[a, bi], W[r, bi])) W[R, bd], R = [r0, r1). */
static void complement_one(float *W, int64_t ld, int64_t a0, int64_t a1, int64_t r0, int64_t r1,
                           int64_t bi, int64_t bd, int64_t D, double *s, double *acc) {
  const int64_t nr = r1 - r0;
  for (int64_t a = a0; a < a1; a++) {
    const float *wa = W + a * ld + bi * D;
    const double na = sqrt(dot_d(wa, wa, D));
    double top = -INFINITY, z = 0.0;
    for (int64_t r = 0; r < nr; r++) {
      const float *wr = W + (r0 + r) * ld + bi * D;
      const double nn = na * sqrt(dot_d(wr, wr, D));
      s[r] = dot_d(wa, wr, D) / (nn > 1e-8 ? nn : 1e-8); /* torch.cosine_similarity's eps */
      if (s[r] > top) top = s[r];
    }
    for (int64_t r = 0; r < nr; r++) z += (s[r] = exp(s[r] - top));
    memset(acc, 0, (size_t)D * sizeof(double));
    for (int64_t r = 0; r < nr; r++) {
      const float *br = W + (r0 + r) * ld + bd * D;
      const double p = s[r] / z;
      for (int64_t j = 0; j < D; j++) acc[j] += p * (double)br[j];
    }
    for (int64_t j = 0; j < D; j++) W[a * ld + bd * D + j] = (float)acc[j];
  }
}

scl_err learn_ease_complement(float *W, int64_t ld, const int64_t *starts, int t, int ptm,
                              int64_t D) {
  if (t < 1) return SCL_OK;
  const int64_t K = starts[t + 1];
  double *s = NULL, *acc = NULL;
  scl_err err = SCL_OK;
  SCL_CALL_GOTO(err, scl_alloc((size_t)K * sizeof(double), "EASE similarities", (void **)&s), done);
  SCL_CALL_GOTO(err, scl_alloc((size_t)D * sizeof(double), "EASE complement row", (void **)&acc),
                done);
  for (int i = 0; i < t; i++)
    for (int d = i + 1; d <= t; d++)
      complement_one(W, ld, starts[i], starts[i + 1], starts[d], K, i + ptm, d + ptm, D, s, acc);
done:
  scl_free(s);
  scl_free(acc);
  return err;
}

/* dst (rows, D) = src rows (stride ld) / max(||row||, 1e-12), as F.normalize. */
static void unit_rows(float *dst, const float *src, int64_t rows, int64_t ld, int64_t D) {
  for (int64_t r = 0; r < rows; r++) {
    const float *v = src + r * ld;
    const double nv = sqrt(dot_d(v, v, D));
    const float c = (float)(nv > 1e-12 ? nv : 1e-12);
    for (int64_t j = 0; j < D; j++) dst[r * D + j] = v[j] / c;
  }
}

/* The weight of block j for a class of session i at session t (j.5). */
static float block_weight(int64_t j, int64_t i, int t, int ptm, double alpha, double beta) {
  if (ptm && j == 0) return (float)beta;
  return j - ptm == i ? 1.0f : (float)(alpha / (double)t);
}

scl_err learn_ease_logits(float *logits, const float *x, int64_t n, const float *W, int64_t ld,
                          const int64_t *starts, int t, int ptm, int64_t nb, int64_t D,
                          int reweight, double alpha, double beta) {
  const int64_t K = starts[t + 1], w = reweight ? D : nb * D, nblk = reweight ? nb : 1;
  float *wn = NULL, *xn = NULL, *cos = NULL;
  int64_t *sess = NULL;
  scl_err err = SCL_OK;
  SCL_CALL_GOTO(
      err, scl_alloc((size_t)(nblk * K * w) * sizeof(float), "EASE unit prototypes", (void **)&wn),
      done);
  SCL_CALL_GOTO(
      err, scl_alloc((size_t)(LOGIT_CHUNK * w) * sizeof(float), "EASE unit features", (void **)&xn),
      done);
  SCL_CALL_GOTO(err,
                scl_alloc((size_t)(LOGIT_CHUNK * K) * sizeof(float), "EASE cosines", (void **)&cos),
                done);
  SCL_CALL_GOTO(
      err, scl_alloc((size_t)(K ? K : 1) * sizeof(int64_t), "EASE class sessions", (void **)&sess),
      done);
  for (int64_t c = 0, i = 0; c < K; c++) {
    while (c >= starts[i + 1]) i++;
    sess[c] = i;
  }
  for (int64_t j = 0; j < nblk; j++) unit_rows(wn + j * K * w, W + j * w, K, ld, w);
  for (int64_t r0 = 0; r0 < n; r0 += LOGIT_CHUNK) {
    const int64_t rows = n - r0 < LOGIT_CHUNK ? n - r0 : LOGIT_CHUNK;
    float *out = logits + r0 * K;
    memset(out, 0, (size_t)(rows * K) * sizeof(float));
    for (int64_t j = 0; j < nblk; j++) {
      unit_rows(xn, x + r0 * nb * D + j * w, rows, nb * D, w);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)K, (int)w, 1.0f, xn,
                  (int)w, wn + j * K * w, (int)w, 0.0f, cos, (int)K);
      for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < K; c++) {
          const float wt = reweight ? block_weight(j, sess[c], t, ptm, alpha, beta) : 1.0f;
          out[r * K + c] += wt * cos[r * K + c];
        }
    }
  }
done:
  scl_free(wn);
  scl_free(xn);
  scl_free(cos);
  scl_free(sess);
  return err;
}
