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

/* e^x for x in [-87, 88] (clamped). */
NN_WIDE static inline float exp_poly(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  float k = NN_MADD(x, 1.44269504088896341f, 12582912.0f) - 12582912.0f;
  float r = NN_MADD(k, 2.12194440e-4f, NN_MADD(k, -0.693359375f, x));
  float z = r * r;
  float p = 1.9875691500e-4f;
  p = NN_MADD(p, r, 1.3981999507e-3f);
  p = NN_MADD(p, r, 8.3334519073e-3f);
  p = NN_MADD(p, r, 4.1665795894e-2f);
  p = NN_MADD(p, r, 1.6666665459e-1f);
  p = NN_MADD(p, r, 5.0000001201e-1f);
  p = NN_MADD(p, z, r) + 1.0f;
  int32_t bits = ((int32_t)k + 127) << 23;
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

/* erf(x), odd rational function clamped at |x| = 4. */
NN_WIDE static inline float erf_poly(float x) {
  x = x < -4.0f ? -4.0f : x;
  x = x > 4.0f ? 4.0f : x;
  float x2 = x * x;
  float p = -2.72614225801306e-10f;
  p = NN_MADD(p, x2, 2.77068142495902e-08f);
  p = NN_MADD(p, x2, -2.10102402082508e-06f);
  p = NN_MADD(p, x2, -5.69250639462346e-05f);
  p = NN_MADD(p, x2, -7.34990630326855e-04f);
  p = NN_MADD(p, x2, -2.95459980854025e-03f);
  p = NN_MADD(p, x2, -1.60960333262415e-02f);
  float q = -1.45660718464996e-05f;
  q = NN_MADD(q, x2, -2.13374055278905e-04f);
  q = NN_MADD(q, x2, -1.68282697438203e-03f);
  q = NN_MADD(q, x2, -7.37332916720468e-03f);
  q = NN_MADD(q, x2, -1.42647390514189e-02f);
  return x * p / q;
}

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
