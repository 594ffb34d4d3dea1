/* layernorm_backward.c: LayerNorm's backward from the statistics the forward stored, and the
 * recomputation of its output.
 *
 * The training forward keeps only the input x and the per-row mean and 1/std, not the
 * normalised output (a (rows, D) tensor per LayerNorm), because both the backward and any
 * consumer of the output (SSF's gamma gradient) can rebuild x_hat = (x - mean) * rstd in one
 * cheap pass. The two row reductions of the backward (mean of g and of g * x_hat) run in 16
 * float lanes combined in double, so they vectorise fully and do not depend on the thread count.
 * The `_ref` is plain double loops. */
#include <math.h>

#include "nn_simd.h"
#include "safecl/nn_backward.h"

#define LANES 16

/* Sums of g = dy * gamma and of g * xhat over one row: 16 float lanes (D / 16 terms each, 48
 * for ViT-B), combined in double. */
NN_WIDE static void row_sums(const float *dy, const float *x, const float *gamma, float mu,
                             float rs, int64_t D, double *sum_g, double *sum_gx) {
  float a[LANES] = {0}, b[LANES] = {0};
  int64_t j = 0;
  for (; j + LANES <= D; j += LANES)
    for (int k = 0; k < LANES; k++) {
      float g = dy[j + k] * gamma[j + k], xh = (x[j + k] - mu) * rs;
      a[k] += g;
      b[k] = NN_MADD(g, xh, b[k]);
    }
  double sa = 0.0, sb = 0.0;
  for (; j < D; j++) {
    float g = dy[j] * gamma[j], xh = (x[j] - mu) * rs;
    sa += (double)g;
    sb += (double)(g * xh);
  }
  for (int k = 0; k < LANES; k++) sa += (double)a[k], sb += (double)b[k];
  *sum_g = sa;
  *sum_gx = sb;
}

NN_WIDE void nn_layernorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy,
                                   const float *x, const float *gamma, const float *mean,
                                   const float *rstd, int64_t rows, int64_t D) {
  for (int64_t r = 0; r < rows; r++) {
    const float *dyr = dy + r * D, *xr = x + r * D;
    const float mu = mean[r], rs = rstd[r];
    if (dx) {
      double sg, sgx;
      row_sums(dyr, xr, gamma, mu, rs, D, &sg, &sgx);
      const float mg = (float)(sg / (double)D), mgx = (float)(sgx / (double)D);
      float *dxr = dx + r * D;
      for (int64_t j = 0; j < D; j++) {
        float xh = (xr[j] - mu) * rs;
        dxr[j] += rs * (dyr[j] * gamma[j] - mg - xh * mgx);
      }
    }
    if (dgamma)
      for (int64_t j = 0; j < D; j++) dgamma[j] += dyr[j] * ((xr[j] - mu) * rs);
    if (dbeta)
      for (int64_t j = 0; j < D; j++) dbeta[j] += dyr[j];
  }
}

void nn_layernorm_backward_ref(float *dx, float *dgamma, float *dbeta, const float *dy,
                               const float *x, const float *gamma, const float *mean,
                               const float *rstd, int64_t rows, int64_t D) {
  for (int64_t r = 0; r < rows; r++) {
    const float *dyr = dy + r * D, *xr = x + r * D;
    const double mu = mean[r], rs = rstd[r];
    double sg = 0.0, sgx = 0.0;
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

NN_WIDE void nn_layernorm_recompute(float *y, const float *x, const float *mean, const float *rstd,
                                    const float *gamma, const float *beta, int64_t rows,
                                    int64_t D) {
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * D;
    float *yr = y + r * D;
    const float mu = mean[r], rs = rstd[r];
    for (int64_t j = 0; j < D; j++) yr[j] = (xr[j] - mu) * rs * gamma[j] + beta[j];
  }
}
