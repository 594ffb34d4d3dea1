/* loss_ce.c: cross-entropy from logits, and SAFE's cross-classification loss built from it.
 *
 * Cross-entropy is computed per row in double with the max subtracted before exp (a stable
 * log-softmax), so the loss a test compares is not limited by fp32; the gradient
 * (softmax - onehot) / rows is rounded to fp32 once. The cross-classification loss (docs/methods.md
 * c.3, SAFE's `fast`: l1 + l2) only assembles the stacked inputs [prototypes; features] and reuses
 * the cosine head and this cross-entropy; its targets [0..K-1, y] are never materialised, a row
 * below K simply is its own label. It needs caller scratch for the stacked inputs, logits and head
 * caches (learn_crossclass_scratch). */
#include "safecl/learn.h"

#include <math.h>
#include <string.h>

#include "safecl/core.h"

/* Mean cross-entropy over R rows of logits (R, K) where row r < nid has label r and row r >= nid
 * has label y[r - nid] - y0. dlogits += scale * gradient (NULL: skip). NAN on a bad label. */
static double ce_core(float *dlogits, const float *logits, int64_t nid, const int64_t *y,
                      int64_t y0, int64_t R, int64_t K, double scale) {
  double total = 0.0;
  for (int64_t r = 0; r < R; r++) {
    const int64_t t = r < nid ? r : y[r - nid] - y0;
    if (t < 0 || t >= K) return NAN;
    const float *l = logits + r * K;
    double m = l[0];
    for (int64_t k = 1; k < K; k++) m = l[k] > m ? l[k] : m;
    double z = 0.0;
    for (int64_t k = 0; k < K; k++) z += exp((double)l[k] - m);
    total += m + log(z) - (double)l[t];
    if (!dlogits) continue;
    const double g = scale / (double)R;
    for (int64_t k = 0; k < K; k++) {
      double p = exp((double)l[k] - m) / z;
      dlogits[r * K + k] += (float)(g * (p - (k == t ? 1.0 : 0.0)));
    }
  }
  return R > 0 ? total / (double)R : 0.0;
}

double learn_ce_loss(float *dlogits, const float *logits, const int64_t *y, int64_t B, int64_t K,
                     double scale) {
  return ce_core(dlogits, logits, 0, y, 0, B, K, scale);
}

double learn_ce_loss_range(float *dlogits, const float *logits, const int64_t *y, int64_t y0,
                           int64_t B, int64_t K, double scale) {
  return ce_core(dlogits, logits, 0, y, y0, B, K, scale);
}

/* Scratch layout of the cross-classification loss, R = K + B stacked rows. */
typedef struct cc_scratch {
  float *x;       /* (R, D) stacked inputs */
  float *dx;      /* (R, D) their gradient (l2) */
  float *logits;  /* (R, Kt) */
  float *dlogits; /* (R, Kt) */
  float *cache;   /* learn_cosine_cache_floats(R, Kt, D) */
  float *bwd;     /* learn_cosine_backward_scratch(R, Kt, D) */
} cc_scratch;

static cc_scratch cc_bind(float *mem, int64_t K, int64_t Kt, int64_t B, int64_t D) {
  const int64_t R = K + B;
  cc_scratch s;
  s.x = mem;
  s.dx = s.x + scl_pad_floats(R * D);
  s.logits = s.dx + scl_pad_floats(R * D);
  s.dlogits = s.logits + scl_pad_floats(R * Kt);
  s.cache = s.dlogits + scl_pad_floats(R * Kt);
  s.bwd = s.cache + learn_cosine_cache_floats(R, Kt, D);
  return s;
}

size_t learn_crossclass_scratch(int64_t K, int64_t Kt, int64_t B, int64_t D) {
  const int64_t R = K + B;
  return 2 * scl_pad_floats(R * D) + 2 * scl_pad_floats(R * Kt) +
         learn_cosine_cache_floats(R, Kt, D) + learn_cosine_backward_scratch(R, Kt, D);
}

/* One half: CE(head([protos; feats]), yhat). Gradients to the head (dw, dsigma) and to the
 * stacked input (dx, zeroed here first), each optional. */
static double cc_half(float *dw, float *dsigma, int want_dx, const cc_scratch *s,
                      const float *protos, const float *feats, const float *w, const float *sigma,
                      const int64_t *y, int64_t K, int64_t Kt, int64_t B, int64_t D, double scale) {
  const int64_t R = K + B;
  if (K > 0) memcpy(s->x, protos, (size_t)(K * D) * sizeof(float));
  if (B > 0) memcpy(s->x + K * D, feats, (size_t)(B * D) * sizeof(float));
  learn_cosine_cache c = learn_cosine_cache_bind(s->cache, R, Kt, D);
  learn_cosine_forward(s->logits, &c, s->x, w, sigma, R, Kt, D);
  const int need = dw || dsigma || want_dx;
  if (need) memset(s->dlogits, 0, (size_t)(R * Kt) * sizeof(float));
  double loss = ce_core(need ? s->dlogits : NULL, s->logits, K, y, 0, R, Kt, scale);
  if (want_dx) memset(s->dx, 0, (size_t)(R * D) * sizeof(float));
  if (need)
    learn_cosine_backward(want_dx ? s->dx : NULL, dw, dsigma, s->bwd, s->dlogits, s->x, w, sigma,
                          &c, R, Kt, D);
  return loss;
}

double learn_crossclass_loss(float *dw_fast, float *dsigma_fast, float *dphi_fast, float *scratch,
                             double *parts, const float *w_fast, const float *sigma_fast,
                             const float *w_slow, const float *sigma_slow, const float *phi_fast,
                             const float *phi_slow, const int64_t *y, int64_t K, int64_t Kt,
                             int64_t B, int64_t D, double scale) {
  cc_scratch s = cc_bind(scratch, K, Kt, B, D);
  /* l1: the fast head classifies the slow prototypes and slow features (constants). */
  double l1 = cc_half(dw_fast, dsigma_fast, 0, &s, w_slow, phi_slow, w_fast, sigma_fast, y, K, Kt,
                      B, D, scale);
  /* l2: the frozen slow head classifies the fast prototypes W_F[0:K] and the fast features. */
  const int want_dx = dw_fast != NULL || dphi_fast != NULL;
  double l2 =
      cc_half(NULL, NULL, want_dx, &s, w_fast, phi_fast, w_slow, sigma_slow, y, K, Kt, B, D, scale);
  if (dw_fast)
    for (int64_t i = 0; i < K * D; i++) dw_fast[i] += s.dx[i];
  if (dphi_fast)
    for (int64_t i = 0; i < B * D; i++) dphi_fast[i] += s.dx[K * D + i];
  if (parts) {
    parts[0] = l1;
    parts[1] = l2;
  }
  return l1 + l2;
}
