/* layernorm.c: LayerNorm over the last dimension: the forward, its backward from the stored
 * statistics, the recomputation of its output, and their `_ref` twins.
 *
 * A row's mean is a double; a float cannot hold it closely enough for a row whose values sit
 * far from zero (mean 1000, std 0.3: the rounded mean is off by up to 3e-5, a 1e-4 error in the
 * normalised value). So every kernel here normalises with the mean as a float pair hi + lo:
 * x - hi is exact whenever x is within a factor of two of the mean (Sterbenz), which is when a
 * rounded mean would hurt, and lo = mean - hi is the remainder. The forward stores hi as `mean`,
 * and rstd; lo is not stored but rederived from x by the one function every kernel takes the
 * mean from (row_mean), so the forward, the backward and the recomputation normalise with the
 * same float hi, lo and rstd and agree bit for bit, at the price of one summing pass over the
 * row in the backward and the recomputation. The training forward keeps only x and these
 * statistics, not the normalised output (a (rows, D) tensor per LayerNorm), because the
 * backward and any consumer of the output (SSF's gamma gradient) can rebuild it in one cheap
 * pass.
 *
 * The forward makes two passes for the statistics (mean, then the variance of the deviations)
 * so that rows with a large mean keep their precision. Its sums run in 16 independent double
 * lanes: the compiler vectorises them without -ffast-math, the result is the same on every run
 * and at every thread count, and rows are short (D <= a few thousand), so double sums cost
 * little next to the GEMMs around them. The backward's two row reductions (mean of g and of
 * g * xhat) run in 16 float lanes combined in double. The `_ref` versions are plain double
 * loops. */
#include <math.h>

#include "nn_simd.h"
#include "safecl/nn.h"

#define LANES 16

NN_WIDE static inline double lane_sum(const float *x, int64_t n) {
  double lane[LANES] = {0};
  int64_t j = 0;
  for (; j + LANES <= n; j += LANES)
    for (int k = 0; k < LANES; k++) lane[k] += (double)x[j + k];
  double s = 0.0;
  for (; j < n; j++) s += (double)x[j];
  for (int k = 0; k < LANES; k++) s += lane[k];
  return s;
}

NN_WIDE static inline double lane_sqdev(const float *x, double mean, int64_t n) {
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

/* The row's mean in double: the one function every kernel derives the mean from, so that they
 * all see the same value. */
NN_WIDE static inline double row_mean(const float *x, int64_t D) {
  return lane_sum(x, D) / (double)D;
}

/* lo of the row whose mean is mu and whose stored (rounded) mean is hi. */
static float mean_lo(double mu, float hi) { return (float)(mu - (double)hi); }

/* xhat = ((x - hi) - lo) * rstd, the one expression every kernel normalises with. */
#define LN_XHAT(x, hi, lo, rs) ((((x) - (hi)) - (lo)) * (rs))

/* y = xhat * gamma + beta for one row. */
NN_WIDE static inline void row_affine(float *y, const float *x, float hi, float lo, float rs,
                                      const float *gamma, const float *beta, int64_t D) {
  for (int64_t j = 0; j < D; j++) y[j] = LN_XHAT(x[j], hi, lo, rs) * gamma[j] + beta[j];
}

NN_KERNEL void nn_layernorm_forward(float *y, float *mean, float *rstd, const float *x,
                                    const float *gamma, const float *beta, int64_t rows, int64_t D,
                                    float eps) {
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * D;
    const double mu = row_mean(xr, D);
    const float hi = (float)mu, lo = mean_lo(mu, hi);
    const float rs = (float)(1.0 / sqrt(lane_sqdev(xr, mu, D) / (double)D + (double)eps));
    row_affine(y + r * D, xr, hi, lo, rs, gamma, beta, D);
    if (mean) mean[r] = hi;
    if (rstd) rstd[r] = rs;
  }
}

NN_KERNEL void nn_layernorm_recompute(float *y, const float *x, const float *mean,
                                      const float *rstd, const float *gamma, const float *beta,
                                      int64_t rows, int64_t D) {
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * D;
    row_affine(y + r * D, xr, mean[r], mean_lo(row_mean(xr, D), mean[r]), rstd[r], gamma, beta, D);
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

/* Sums of g = dy * gamma and of g * xhat over one row: 16 float lanes (D / 16 terms each, 48
 * for ViT-B), combined in double. */
NN_WIDE static inline void row_grad_sums(const float *dy, const float *x, const float *gamma,
                                         float hi, float lo, float rs, int64_t D, double *sum_g,
                                         double *sum_gx) {
  float a[LANES] = {0}, b[LANES] = {0};
  int64_t j = 0;
  for (; j + LANES <= D; j += LANES)
    for (int k = 0; k < LANES; k++) {
      float g = dy[j + k] * gamma[j + k], xh = LN_XHAT(x[j + k], hi, lo, rs);
      a[k] += g;
      b[k] = NN_MADD(g, xh, b[k]);
    }
  double sa = 0.0, sb = 0.0;
  for (; j < D; j++) {
    float g = dy[j] * gamma[j], xh = LN_XHAT(x[j], hi, lo, rs);
    sa += (double)g;
    sb += (double)(g * xh);
  }
  for (int k = 0; k < LANES; k++) sa += (double)a[k], sb += (double)b[k];
  *sum_g = sa;
  *sum_gx = sb;
}

NN_KERNEL void nn_layernorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy,
                                     const float *x, const float *gamma, const float *mean,
                                     const float *rstd, int64_t rows, int64_t D) {
  for (int64_t r = 0; r < rows; r++) {
    const float *dyr = dy + r * D, *xr = x + r * D;
    const float hi = mean[r], rs = rstd[r];
    const float lo = dx || dgamma ? mean_lo(row_mean(xr, D), hi) : 0.0f;
    if (dx) {
      double sg, sgx;
      row_grad_sums(dyr, xr, gamma, hi, lo, rs, D, &sg, &sgx);
      const float mg = (float)(sg / (double)D), mgx = (float)(sgx / (double)D);
      float *dxr = dx + r * D;
      for (int64_t j = 0; j < D; j++) {
        float xh = LN_XHAT(xr[j], hi, lo, rs);
        dxr[j] += rs * (dyr[j] * gamma[j] - mg - xh * mgx);
      }
    }
    if (dgamma)
      for (int64_t j = 0; j < D; j++) dgamma[j] += dyr[j] * LN_XHAT(xr[j], hi, lo, rs);
    if (dbeta)
      for (int64_t j = 0; j < D; j++) dbeta[j] += dyr[j];
  }
}

/* The mean in double is the stored mean plus the row's mean deviation from it (what hi + lo
 * rounds), so the reference sees the statistics the fast kernel reconstructs. */
void nn_layernorm_backward_ref(float *dx, float *dgamma, float *dbeta, const float *dy,
                               const float *x, const float *gamma, const float *mean,
                               const float *rstd, int64_t rows, int64_t D) {
  for (int64_t r = 0; r < rows; r++) {
    const float *dyr = dy + r * D, *xr = x + r * D;
    const double rs = rstd[r];
    double mu = 0.0, sg = 0.0, sgx = 0.0;
    for (int64_t j = 0; j < D; j++) mu += (double)xr[j] - (double)mean[r];
    mu = (double)mean[r] + mu / (double)D;
    for (int64_t j = 0; j < D; j++) {
      double g = (double)dyr[j] * gamma[j];
      sg += g;
      sgx += g * (xr[j] - mu) * rs;
    }
    for (int64_t j = 0; j < D; j++) {
      double xh = (xr[j] - mu) * rs, g = (double)dyr[j] * gamma[j];
      if (dx)
        dx[r * D + j] = (float)(dx[r * D + j] + rs * (g - sg / (double)D - xh * sgx / (double)D));
      if (dgamma) dgamma[j] = (float)(dgamma[j] + (double)dyr[j] * xh);
      if (dbeta) dbeta[j] = (float)(dbeta[j] + (double)dyr[j]);
    }
  }
}
