/* activation_backward.c: backward of the softmax, the exact (erf) GELU and the residual add.
 *
 * GELU'(x) = Phi(x) + x phi(x) needs erf and exp per element of every MLP hidden unit (~100
 * million per ViT-B batch of 16), so, as in activation.c, both are branch-free polynomials the
 * compiler vectorises (Cephes' expf, ~1 ulp; the Eigen/XLA rational erf, |error| < 5e-7),
 * duplicated here rather than shared so that the forward's file stays its owner's. The
 * softmax backward's row dot product keeps 16 float lanes. `_ref` versions use libm in double. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "nn_simd.h"
#include "safecl/nn_backward.h"

#define LANES 16

/* GELU'(v) = Phi(v) + v phi(v). */
NN_WIDE static inline float gelu_grad(float v) {
  const float cdf = 0.5f * (1.0f + erf_poly(v * 0.70710678118654752f));
  const float pdf = 0.39894228040143268f * exp_poly(-0.5f * v * v);
  return NN_MADD(v, pdf, cdf);
}

NN_WIDE void nn_gelu_backward(float *dx, const float *dy, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * gelu_grad(x[i]);
}

NN_WIDE void nn_gelu_backward_inplace(float *dy, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) dy[i] *= gelu_grad(x[i]);
}

void nn_gelu_backward_ref(float *dx, const float *dy, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    double v = x[i];
    double d = 0.5 * erfc(-v / sqrt(2.0)) + v * exp(-0.5 * v * v) * 0.39894228040143268;
    dx[i] = (float)((double)dx[i] + (double)dy[i] * d);
  }
}

NN_WIDE static float row_dot(const float *a, const float *b, int64_t n) {
  float lane[LANES] = {0};
  int64_t j = 0;
  for (; j + LANES <= n; j += LANES)
    for (int k = 0; k < LANES; k++) lane[k] += a[j + k] * b[j + k];
  float s = 0.0f;
  for (; j < n; j++) s += a[j] * b[j];
  for (int k = 0; k < LANES; k++) s += lane[k];
  return s;
}

NN_WIDE void nn_softmax_backward(float *dx, const float *dy, const float *y, int64_t rows,
                                 int64_t cols) {
  for (int64_t r = 0; r < rows; r++) {
    const float *dyr = dy + r * cols, *yr = y + r * cols;
    float *dxr = dx + r * cols;
    const float s = row_dot(dyr, yr, cols);
    for (int64_t j = 0; j < cols; j++) dxr[j] += yr[j] * (dyr[j] - s);
  }
}

void nn_softmax_backward_ref(float *dx, const float *dy, const float *y, int64_t rows,
                             int64_t cols) {
  for (int64_t r = 0; r < rows; r++) {
    double s = 0.0;
    for (int64_t j = 0; j < cols; j++) s += (double)dy[r * cols + j] * (double)y[r * cols + j];
    for (int64_t j = 0; j < cols; j++)
      dx[r * cols + j] = (float)((double)dx[r * cols + j] +
                                 (double)y[r * cols + j] * ((double)dy[r * cols + j] - s));
  }
}

NN_WIDE void nn_residual_backward(float *da, float *db, const float *dy, int64_t n) {
  if (da)
    for (int64_t i = 0; i < n; i++) da[i] += dy[i];
  if (db)
    for (int64_t i = 0; i < n; i++) db[i] += dy[i];
}

void nn_residual_backward_ref(float *da, float *db, const float *dy, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    if (da) da[i] = (float)((double)da[i] + (double)dy[i]);
    if (db) db[i] = (float)((double)db[i] + (double)dy[i]);
  }
}
