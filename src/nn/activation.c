/* activation.c: softmax, the exact (erf) GELU and the residual add, forward and backward, as
 * loops the compiler vectorises.
 *
 * glibc's expf and erff are scalar calls unless the whole build uses -ffast-math, and a ViT-B
 * forward evaluates ~45 million exponentials and ~58 million erfs per batch of 8 (its backward
 * needs both again for GELU'(x) = Phi(x) + x phi(x), ~100 million per batch of 16): scalar calls
 * would cost more than the attention products. So both are evaluated with the branch-free
 * polynomials of nn_simd.h written as plain float arithmetic (Cephes' expf, about 1 ulp; a
 * rational erf clamped to |x| <= 4, absolute error < 5e-7), which -O3 -march=native turns into
 * AVX-512 code. Reductions keep 16 independent partial sums so that they vectorise without
 * -ffast-math and give the same answer on every run; the row maximum goes through integers for
 * the same reason. The `_ref` versions use libm in double. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "nn_simd.h"
#include "safecl/nn.h"

#define LANES 16

/* ---------------------------------------------------------------------------------------- */
/* Softmax                                                                                  */

/* Float max through integers: flipping the magnitude bits of negative floats makes their bit
 * patterns order like the values, and an integer max vectorises where a float one does not
 * (GCC needs -ffinite-math-only for that). */
NN_WIDE static inline int32_t float_key(float v) {
  int32_t b;
  memcpy(&b, &v, sizeof b);
  return b ^ ((b >> 31) & 0x7fffffff);
}

NN_WIDE static inline float row_max(const float *x, int64_t n) {
  int32_t m = INT32_MIN;
  for (int64_t j = 0; j < n; j++) {
    int32_t k = float_key(x[j]);
    m = k > m ? k : m;
  }
  m ^= (m >> 31) & 0x7fffffff;
  float r;
  memcpy(&r, &m, sizeof r);
  return r;
}

/* y = exp(x - m); returns the sum. */
NN_WIDE static inline float row_exp_sum(float *y, const float *x, float m, int64_t n) {
  for (int64_t j = 0; j < n; j++) y[j] = exp_poly(x[j] - m);
  float lane[LANES] = {0};
  int64_t j = 0;
  for (; j + LANES <= n; j += LANES)
    for (int k = 0; k < LANES; k++) lane[k] += y[j + k];
  float s = 0.0f;
  for (; j < n; j++) s += y[j];
  for (int k = 0; k < LANES; k++) s += lane[k];
  return s;
}

NN_KERNEL void nn_softmax_forward(float *y, const float *x, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * cols;
    float *yr = y + r * cols;
    float m = row_max(xr, cols);
    float inv = 1.0f / row_exp_sum(yr, xr, m, cols);
    for (int64_t j = 0; j < cols; j++) yr[j] *= inv;
  }
}

NN_WIDE static inline float row_dot(const float *a, const float *b, int64_t n) {
  float lane[LANES] = {0};
  int64_t j = 0;
  for (; j + LANES <= n; j += LANES)
    for (int k = 0; k < LANES; k++) lane[k] += a[j + k] * b[j + k];
  float s = 0.0f;
  for (; j < n; j++) s += a[j] * b[j];
  for (int k = 0; k < LANES; k++) s += lane[k];
  return s;
}

NN_KERNEL void nn_softmax_backward(float *dx, const float *dy, const float *y, int64_t rows,
                                   int64_t cols) {
  for (int64_t r = 0; r < rows; r++) {
    const float *dyr = dy + r * cols, *yr = y + r * cols;
    float *dxr = dx + r * cols;
    const float s = row_dot(dyr, yr, cols);
    for (int64_t j = 0; j < cols; j++) dxr[j] += yr[j] * (dyr[j] - s);
  }
}

void nn_softmax_forward_ref(float *y, const float *x, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * cols;
    double m = -INFINITY, s = 0.0;
    for (int64_t j = 0; j < cols; j++) m = xr[j] > m ? xr[j] : m;
    for (int64_t j = 0; j < cols; j++) s += exp((double)xr[j] - m);
    for (int64_t j = 0; j < cols; j++) y[r * cols + j] = (float)(exp((double)xr[j] - m) / s);
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

/* ---------------------------------------------------------------------------------------- */
/* GELU                                                                                     */

NN_KERNEL void nn_gelu_forward(float *y, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    float v = x[i];
    y[i] = 0.5f * v * (1.0f + erf_poly(v * 0.70710678118654752f));
  }
}

/* GELU'(v) = Phi(v) + v phi(v). */
NN_WIDE static inline float gelu_grad(float v) {
  const float cdf = 0.5f * (1.0f + erf_poly(v * 0.70710678118654752f));
  const float pdf = 0.39894228040143268f * exp_poly(-0.5f * v * v);
  return NN_MADD(v, pdf, cdf);
}

NN_KERNEL void nn_gelu_backward(float *dx, const float *dy, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * gelu_grad(x[i]);
}

NN_KERNEL void nn_gelu_backward_inplace(float *dy, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) dy[i] *= gelu_grad(x[i]);
}

void nn_linear_gelu_forward(float *y, const float *x, const float *w, const float *b, int64_t rows,
                            int64_t din, int64_t dout) {
  nn_linear_forward(y, x, w, b, rows, din, dout);
  nn_gelu_forward(y, y, rows * dout);
}

void nn_gelu_forward_ref(float *y, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    double v = x[i];
    y[i] = (float)(0.5 * v * erfc(-v / sqrt(2.0)));
  }
}

void nn_gelu_backward_ref(float *dx, const float *dy, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    double v = x[i];
    double d = 0.5 * erfc(-v / sqrt(2.0)) + v * exp(-0.5 * v * v) * 0.39894228040143268;
    dx[i] = (float)((double)dx[i] + (double)dy[i] * d);
  }
}

/* ---------------------------------------------------------------------------------------- */
/* Residual add                                                                             */

NN_KERNEL void nn_residual_forward(float *y, const float *a, const float *b, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

NN_KERNEL void nn_residual_backward(float *da, float *db, const float *dy, int64_t n) {
  if (da)
    for (int64_t i = 0; i < n; i++) da[i] += dy[i];
  if (db)
    for (int64_t i = 0; i < n; i++) db[i] += dy[i];
}

void nn_residual_forward_ref(float *y, const float *a, const float *b, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = (float)((double)a[i] + (double)b[i]);
}

void nn_residual_backward_ref(float *da, float *db, const float *dy, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    if (da) da[i] = (float)((double)da[i] + (double)dy[i]);
    if (db) db[i] = (float)((double)db[i] + (double)dy[i]);
  }
}
