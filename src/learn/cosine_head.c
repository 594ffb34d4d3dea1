/* cosine_head.c: F.normalize and the cosine head logits = sigma * normalize(x) normalize(W)^T.
 *
 * Both normalisations and their backward reproduce PyTorch 1.13's autograd exactly in kind:
 * x / max(||x||, 1e-12), whose gradient goes through the clamp, so a row with norm below 1e-12
 * (a zero-initialised class row) gets g / 1e-12 and no projection term. That is what makes the
 * first SGD step of a new class row ~1e12 in SAFE's released code, and it is kept on purpose
 * rather than smoothed. Norms are accumulated in double and rounded to fp32 before the clamp
 * comparison, as torch compares in fp32. The two products go through cblas_sgemm; the `_ref`
 * variants are plain loops with double accumulation. No head state lives here: W and sigma are
 * pointers into the caller's flat parameter array. */
#include "safecl/learn.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "safecl/core.h"

/* Pieces of caller memory are rounded up to 16 floats (64 bytes). */
void learn_l2norm_forward(float *xn, float *norm, const float *x, int64_t rows, int64_t D) {
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * D;
    double ss = 0.0;
    for (int64_t i = 0; i < D; i++) ss += (double)xr[i] * (double)xr[i];
    float n = (float)sqrt(ss);
    float c = n >= LEARN_NORMALIZE_EPS ? n : LEARN_NORMALIZE_EPS;
    norm[r] = n;
    for (int64_t i = 0; i < D; i++) xn[r * D + i] = xr[i] / c;
  }
}

void learn_l2norm_backward(float *dx, const float *dxn, const float *xn, const float *norm,
                           int64_t rows, int64_t D) {
  for (int64_t r = 0; r < rows; r++) {
    const float *g = dxn + r * D, *u = xn + r * D;
    float *d = dx + r * D;
    if (!(norm[r] >= LEARN_NORMALIZE_EPS)) { /* clamp active: the norm gets no gradient */
      for (int64_t i = 0; i < D; i++) d[i] += g[i] / LEARN_NORMALIZE_EPS;
      continue;
    }
    double dot = 0.0;
    for (int64_t i = 0; i < D; i++) dot += (double)u[i] * (double)g[i];
    double inv = 1.0 / (double)norm[r];
    for (int64_t i = 0; i < D; i++) d[i] += (float)(((double)g[i] - (double)u[i] * dot) * inv);
  }
}

size_t learn_cosine_cache_floats(int64_t B, int64_t K, int64_t D) {
  return scl_pad_floats(B * D) + scl_pad_floats(B) + scl_pad_floats(K * D) + scl_pad_floats(K) +
         scl_pad_floats(B * K);
}

learn_cosine_cache learn_cosine_cache_bind(float *mem, int64_t B, int64_t K, int64_t D) {
  learn_cosine_cache c;
  c.xn = mem;
  c.xnorm = c.xn + scl_pad_floats(B * D);
  c.wn = c.xnorm + scl_pad_floats(B);
  c.wnorm = c.wn + scl_pad_floats(K * D);
  c.cos = c.wnorm + scl_pad_floats(K);
  return c;
}

size_t learn_cosine_backward_scratch(int64_t B, int64_t K, int64_t D) {
  return scl_pad_floats(B * K) + scl_pad_floats(B * D) + scl_pad_floats(K * D);
}

void learn_cosine_forward(float *logits, const learn_cosine_cache *cache, const float *x,
                          const float *w, const float *sigma, int64_t B, int64_t K, int64_t D) {
  if (B <= 0 || K <= 0) return;
  learn_l2norm_forward(cache->xn, cache->xnorm, x, B, D);
  learn_l2norm_forward(cache->wn, cache->wnorm, w, K, D);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)K, (int)D, 1.0f, cache->xn,
              (int)D, cache->wn, (int)D, 0.0f, cache->cos, (int)K);
  const float s = *sigma;
  for (int64_t i = 0; i < B * K; i++) logits[i] = s * cache->cos[i];
}

void learn_cosine_forward_ref(float *logits, const learn_cosine_cache *cache, const float *x,
                              const float *w, const float *sigma, int64_t B, int64_t K, int64_t D) {
  learn_l2norm_forward(cache->xn, cache->xnorm, x, B, D);
  learn_l2norm_forward(cache->wn, cache->wnorm, w, K, D);
  for (int64_t b = 0; b < B; b++)
    for (int64_t k = 0; k < K; k++) {
      double acc = 0.0;
      for (int64_t i = 0; i < D; i++)
        acc += (double)cache->xn[b * D + i] * (double)cache->wn[k * D + i];
      cache->cos[b * K + k] = (float)acc;
      logits[b * K + k] = *sigma * (float)acc;
    }
}

/* dsigma += sum(dlogits * cos); dcos = sigma * dlogits. Shared by both backward paths. */
static void sigma_backward(float *dcos, float *dsigma, const float *dlogits, const float *sigma,
                           const float *cos, int64_t n) {
  double acc = 0.0;
  for (int64_t i = 0; i < n; i++) {
    acc += (double)dlogits[i] * (double)cos[i];
    dcos[i] = *sigma * dlogits[i];
  }
  if (dsigma) *dsigma += (float)acc;
}

void learn_cosine_backward(float *dx, float *dw, float *dsigma, float *scratch,
                           const float *dlogits, const float *x, const float *w, const float *sigma,
                           const learn_cosine_cache *cache, int64_t B, int64_t K, int64_t D) {
  (void)x, (void)w; /* in the layer signature; the cache holds what the backward needs */
  if (B <= 0 || K <= 0) return;
  float *dcos = scratch, *dxn = dcos + scl_pad_floats(B * K), *dwn = dxn + scl_pad_floats(B * D);
  sigma_backward(dcos, dsigma, dlogits, sigma, cache->cos, B * K);
  if (dx) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, (int)D, (int)K, 1.0f, dcos,
                (int)K, cache->wn, (int)D, 0.0f, dxn, (int)D);
    learn_l2norm_backward(dx, dxn, cache->xn, cache->xnorm, B, D);
  }
  if (dw) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)D, (int)B, 1.0f, dcos, (int)K,
                cache->xn, (int)D, 0.0f, dwn, (int)D);
    learn_l2norm_backward(dw, dwn, cache->wn, cache->wnorm, K, D);
  }
}

void learn_cosine_backward_ref(float *dx, float *dw, float *dsigma, float *scratch,
                               const float *dlogits, const float *x, const float *w,
                               const float *sigma, const learn_cosine_cache *cache, int64_t B,
                               int64_t K, int64_t D) {
  (void)x, (void)w;
  float *dcos = scratch, *dxn = dcos + scl_pad_floats(B * K), *dwn = dxn + scl_pad_floats(B * D);
  sigma_backward(dcos, dsigma, dlogits, sigma, cache->cos, B * K);
  for (int64_t b = 0; b < B && dx; b++)
    for (int64_t i = 0; i < D; i++) {
      double acc = 0.0;
      for (int64_t k = 0; k < K; k++) acc += (double)dcos[b * K + k] * (double)cache->wn[k * D + i];
      dxn[b * D + i] = (float)acc;
    }
  for (int64_t k = 0; k < K && dw; k++)
    for (int64_t i = 0; i < D; i++) {
      double acc = 0.0;
      for (int64_t b = 0; b < B; b++) acc += (double)dcos[b * K + k] * (double)cache->xn[b * D + i];
      dwn[k * D + i] = (float)acc;
    }
  if (dx) learn_l2norm_backward(dx, dxn, cache->xn, cache->xnorm, B, D);
  if (dw) learn_l2norm_backward(dw, dwn, cache->wn, cache->wnorm, K, D);
}

void learn_cosine_init(float *w, float *sigma, int64_t K, int64_t D, uint64_t seed, uint32_t tag,
                       float sigma0) {
  const float bound = (float)(1.0 / sqrt((double)D));
  for (int64_t k = 0; k < K; k++) {
    scl_rng rng;
    scl_rng_init(&rng, seed, SCL_STREAM_INIT, tag, (uint32_t)k);
    for (int64_t i = 0; i < D; i++) w[k * D + i] = -bound + 2.0f * bound * scl_rng_uniformf(&rng);
  }
  *sigma = sigma0;
}

void learn_cosine_grow(float *dst, const float *src, int64_t K_old, int64_t K_new, int64_t D) {
  memcpy(dst, src, (size_t)(K_old * D) * sizeof(float));
  memset(dst + K_old * D, 0, (size_t)((K_new - K_old) * D) * sizeof(float));
  dst[K_new * D] = src[K_old * D];
}
