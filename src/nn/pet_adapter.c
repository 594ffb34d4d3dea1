/* pet_adapter.c: the AdaptFormer adapter (docs/methods.md b.2), a bottleneck MLP branch
 * a = s * (Dropout_p(ReLU(x Wd^T + bd)) Wu^T + bu), forward and backward with weight gradients.
 *
 * Its GEMMs are thin (r = 64 against D = 768), about 2% of a ViT-B block's work, so they go
 * through plain cblas calls with the scale folded into alpha. The forward keeps only the
 * pre-activation (rows, r) and the caller keeps the dropout mask; the backward rebuilds the
 * dropped hidden units from both rather than storing them. Dropout follows torch's arithmetic
 * (kept units times 1/(1 - p) computed in float); where the mask comes from is the caller's
 * business (the trainer draws it per sample from the counter RNG). `_ref` versions are loops. */
#include <cblas.h>

#include "safecl/nn.h"

static float keep_scale(float p) { return p > 0.0f ? 1.0f / (1.0f - p) : 1.0f; }

/* hid = ReLU(pre), dropped by mask. */
static void hidden(float *hid, const float *pre, const uint8_t *mask, float ks, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    float v = pre[i] > 0.0f ? pre[i] : 0.0f;
    hid[i] = mask ? (mask[i] ? v * ks : 0.0f) : v;
  }
}

void nn_adapter_forward(float *y, float *pre, float *hid, const float *x, const uint8_t *mask,
                        const float *wd, const float *bd, const float *wu, const float *bu,
                        float scale, float p, int64_t rows, int64_t D, int64_t r) {
  if (rows <= 0) return;
  nn_linear_forward(pre, x, wd, bd, rows, D, r);
  hidden(hid, pre, mask, keep_scale(p), rows * r);
  if (bu)
    for (int64_t i = 0; i < rows; i++)
      for (int64_t o = 0; o < D; o++) y[i * D + o] += scale * bu[o];
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)D, (int)r, scale, hid,
              (int)r, wu, (int)r, 1.0f, y, (int)D);
}

void nn_adapter_backward(float *dx, float *dwd, float *dbd, float *dwu, float *dbu, float *scratch,
                         const float *dy, const float *x, const float *pre, const uint8_t *mask,
                         const float *wd, const float *wu, float scale, float p, int64_t rows,
                         int64_t D, int64_t r) {
  if (rows <= 0) return;
  const float ks = keep_scale(p);
  float *hid = scratch, *dpre = scratch + rows * r;
  if (dwu) {
    hidden(hid, pre, mask, ks, rows * r);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)D, (int)r, (int)rows, scale, dy,
                (int)D, hid, (int)r, 1.0f, dwu, (int)r);
  }
  if (dbu)
    for (int64_t i = 0; i < rows; i++)
      for (int64_t o = 0; o < D; o++) dbu[o] += scale * dy[i * D + o];
  if (!dx && !dwd && !dbd) return;
  /* dpre = s * (dy Wu) * ReLU'(pre) * mask / (1 - p); dy is not read after this GEMM */
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)r, (int)D, scale, dy,
              (int)D, wu, (int)r, 0.0f, dpre, (int)r);
  for (int64_t i = 0; i < rows * r; i++) {
    float g = pre[i] > 0.0f ? dpre[i] : 0.0f;
    dpre[i] = mask ? (mask[i] ? g * ks : 0.0f) : g;
  }
  nn_linear_backward(dx, dwd, dbd, dpre, x, wd, rows, D, r);
}

void nn_adapter_forward_ref(float *y, float *pre, float *hid, const float *x, const uint8_t *mask,
                            const float *wd, const float *bd, const float *wu, const float *bu,
                            float scale, float p, int64_t rows, int64_t D, int64_t r) {
  nn_linear_forward_ref(pre, x, wd, bd, rows, D, r);
  hidden(hid, pre, mask, keep_scale(p), rows * r);
  for (int64_t i = 0; i < rows; i++)
    for (int64_t o = 0; o < D; o++) {
      double acc = bu ? (double)bu[o] : 0.0;
      for (int64_t k = 0; k < r; k++) acc += (double)hid[i * r + k] * (double)wu[o * r + k];
      y[i * D + o] = (float)((double)y[i * D + o] + (double)scale * acc);
    }
}

/* Gradient of pre (row i, unit k) in double. */
static double dpre_ref(const float *dy, const float *pre, const uint8_t *mask, const float *wu,
                       float scale, float ks, int64_t D, int64_t r, int64_t i, int64_t k) {
  if (pre[i * r + k] <= 0.0f || (mask && !mask[i * r + k])) return 0.0;
  double g = 0.0;
  for (int64_t o = 0; o < D; o++) g += (double)dy[i * D + o] * (double)wu[o * r + k];
  return g * (double)scale * (mask ? (double)ks : 1.0);
}

void nn_adapter_backward_ref(float *dx, float *dwd, float *dbd, float *dwu, float *dbu,
                             const float *dy, const float *x, const float *pre, const uint8_t *mask,
                             const float *wd, const float *wu, float scale, float p, int64_t rows,
                             int64_t D, int64_t r) {
  const float ks = keep_scale(p);
  for (int64_t o = 0; o < D; o++) {
    for (int64_t k = 0; k < r && dwu; k++) {
      double acc = 0.0;
      for (int64_t i = 0; i < rows; i++) {
        float h = pre[i * r + k] > 0.0f ? pre[i * r + k] : 0.0f;
        if (mask) h = mask[i * r + k] ? h * ks : 0.0f;
        acc += (double)dy[i * D + o] * (double)h;
      }
      dwu[o * r + k] = (float)((double)dwu[o * r + k] + (double)scale * acc);
    }
    if (dbu) {
      double acc = 0.0;
      for (int64_t i = 0; i < rows; i++) acc += (double)dy[i * D + o];
      dbu[o] = (float)((double)dbu[o] + (double)scale * acc);
    }
  }
  for (int64_t i = 0; i < rows; i++)
    for (int64_t k = 0; k < r; k++) {
      const double g = dpre_ref(dy, pre, mask, wu, scale, ks, D, r, i, k);
      if (dbd) dbd[k] = (float)((double)dbd[k] + g);
      for (int64_t j = 0; j < D && dwd; j++)
        dwd[k * D + j] = (float)((double)dwd[k * D + j] + g * (double)x[i * D + j]);
      for (int64_t j = 0; j < D && dx; j++)
        dx[i * D + j] = (float)((double)dx[i * D + j] + g * (double)wd[k * D + j]);
    }
}
