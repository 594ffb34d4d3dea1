/* activation.c: softmax, the exact (erf) GELU and the residual add, as loops the compiler
 * vectorises.
 *
 * glibc's expf and erff are scalar calls unless the whole build uses -ffast-math, and a ViT-B
 * forward evaluates ~45 million exponentials and ~58 million erfs per batch of 8: scalar calls
 * would cost more than the attention products. So both are evaluated here with branch-free
 * polynomials written as plain float arithmetic (Cephes' expf, about 1 ulp; a rational erf
 * clamped to |x| <= 4, absolute error < 5e-7), which -O3 -march=native turns into AVX-512 code.
 * Reductions keep 16 independent partial sums so that they vectorise without -ffast-math and
 * give the same answer on every run; the row maximum goes through integers for the same reason.
 * The `_ref` versions use libm in double. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "nn_simd.h"
#include "safecl/nn.h"

#define LANES 16

/* e^x for x in [-87, 88]; inputs outside are clamped (softmax only feeds x <= 0). */
NN_WIDE static inline float exp_poly(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  /* Round x*log2(e) to the nearest integer with the 1.5*2^23 trick (vectorises, unlike
   * lrintf), then reduce by k*ln2 in two parts to keep r exact. */
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

/* erf(x) as an odd rational function of x, clamped at |x| = 4 where erf is 1 to float
 * precision (the approximation used by Eigen and XLA for float). */
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

/* Float max through integers: flipping the magnitude bits of negative floats makes their bit
 * patterns order like the values, and an integer max vectorises where a float one does not
 * (GCC needs -ffinite-math-only for that). */
NN_WIDE static inline int32_t float_key(float v) {
  int32_t b;
  memcpy(&b, &v, sizeof b);
  return b ^ ((b >> 31) & 0x7fffffff);
}

NN_WIDE static float row_max(const float *x, int64_t n) {
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
NN_WIDE static float row_exp_sum(float *y, const float *x, float m, int64_t n) {
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

NN_WIDE void nn_softmax_forward(float *y, const float *x, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * cols;
    float *yr = y + r * cols;
    float m = row_max(xr, cols);
    float inv = 1.0f / row_exp_sum(yr, xr, m, cols);
    for (int64_t j = 0; j < cols; j++) yr[j] *= inv;
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

NN_WIDE void nn_gelu_forward(float *y, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    float v = x[i];
    y[i] = 0.5f * v * (1.0f + erf_poly(v * 0.70710678118654752f));
  }
}

void nn_gelu_forward_ref(float *y, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    double v = x[i];
    y[i] = (float)(0.5 * v * erfc(-v / sqrt(2.0)));
  }
}

void nn_linear_gelu_forward(float *y, const float *x, const float *w, const float *b, int64_t rows,
                            int64_t din, int64_t dout) {
  nn_linear_forward(y, x, w, b, rows, din, dout);
  nn_gelu_forward(y, y, rows * dout);
}

NN_WIDE void nn_residual_forward(float *y, const float *a, const float *b, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

void nn_residual_forward_ref(float *y, const float *a, const float *b, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = (float)((double)a[i] + (double)b[i]);
}
