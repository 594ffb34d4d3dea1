/* layernorm.c: LayerNorm over the last dimension, two passes per row (mean, then the variance
 * of the deviations) so that rows with a large mean keep their precision.
 *
 * Sums run in 16 independent double lanes: the compiler vectorises them without -ffast-math,
 * the result is the same on every run and at every thread count, and the mean of a row whose
 * values sit far from zero is not rounded to float before it is used (the normalisation itself
 * is float). Rows are short (D <= a few thousand), so the double sums cost little next to the
 * GEMMs around them. The `_ref` accumulates in double with plain loops. Statistics are stored
 * for backward only when asked for. */
#include <math.h>

#include "nn_simd.h"
#include "safecl/nn.h"

#define LANES 16

NN_WIDE static double lane_sum(const float *x, int64_t n) {
  double lane[LANES] = {0};
  int64_t j = 0;
  for (; j + LANES <= n; j += LANES)
    for (int k = 0; k < LANES; k++) lane[k] += (double)x[j + k];
  double s = 0.0;
  for (; j < n; j++) s += (double)x[j];
  for (int k = 0; k < LANES; k++) s += lane[k];
  return s;
}

NN_WIDE static double lane_sqdev(const float *x, double mean, int64_t n) {
  double lane[LANES] = {0};
  int64_t j = 0;
  for (; j + LANES <= n; j += LANES)
    for (int k = 0; k < LANES; k++) {
      double d = (double)x[j + k] - mean;
      lane[k] += d * d;
    }
  double s = 0.0;
  for (; j < n; j++) s += ((double)x[j] - mean) * ((double)x[j] - mean);
  for (int k = 0; k < LANES; k++) s += lane[k];
  return s;
}

NN_WIDE void nn_layernorm_forward(float *y, float *mean, float *rstd, const float *x,
                                  const float *gamma, const float *beta, int64_t rows, int64_t D,
                                  float eps) {
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * D;
    float *yr = y + r * D;
    const double mu_d = lane_sum(xr, D) / (double)D;
    const float rs = (float)(1.0 / sqrt(lane_sqdev(xr, mu_d, D) / (double)D + (double)eps));
    /* The mean as a float pair hi + lo: x - hi is exact whenever x is within a factor of two
     * of the mean (Sterbenz), which is when a rounded mean would hurt. */
    const float mu_hi = (float)mu_d, mu_lo = (float)(mu_d - (double)mu_hi);
    for (int64_t j = 0; j < D; j++) yr[j] = ((xr[j] - mu_hi) - mu_lo) * rs * gamma[j] + beta[j];
    if (mean) mean[r] = (float)mu_d;
    if (rstd) rstd[r] = rs;
  }
}

void nn_layernorm_forward_ref(float *y, float *mean, float *rstd, const float *x,
                              const float *gamma, const float *beta, int64_t rows, int64_t D,
                              float eps) {
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * D;
    double mu = 0.0, var = 0.0;
    for (int64_t j = 0; j < D; j++) mu += xr[j];
    mu /= (double)D;
    for (int64_t j = 0; j < D; j++) var += ((double)xr[j] - mu) * ((double)xr[j] - mu);
    double rs = 1.0 / sqrt(var / (double)D + (double)eps);
    for (int64_t j = 0; j < D; j++)
      y[r * D + j] = (float)(((double)xr[j] - mu) * rs * gamma[j] + beta[j]);
    if (mean) mean[r] = (float)mu;
    if (rstd) rstd[r] = (float)rs;
  }
}
