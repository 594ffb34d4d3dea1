/* pet_ssf.c: SSF, y = x * gamma + beta over the last dimension (docs/methods.md b.3), forward and
 * backward with the gamma/beta gradients.
 *
 * SSF sits after nine places of every block, so it is kept a streaming loop: the forward can
 * run in place (the caller's buffer) or add straight into a residual stream, and the backward
 * has an in-place form for the common case where the caller owns the incoming gradient. The
 * gamma/beta gradients are column sums over rows, accumulated row by row in float so that the
 * column loop vectorises; the caller gives each thread its own gradient copy and reduces them
 * in a fixed order. `_ref` versions accumulate in double. */
#include "nn_simd.h"
#include "safecl/nn.h"

NN_KERNEL void nn_ssf_forward(float *y, const float *x, const float *gamma, const float *beta,
                              int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t j = 0; j < n; j++) y[r * n + j] = x[r * n + j] * gamma[j] + beta[j];
}

void nn_ssf_forward_ref(float *y, const float *x, const float *gamma, const float *beta,
                        int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t j = 0; j < n; j++)
      y[r * n + j] = (float)((double)x[r * n + j] * (double)gamma[j] + (double)beta[j]);
}

NN_KERNEL void nn_ssf_add_forward(float *y, const float *x, const float *gamma, const float *beta,
                                  int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t j = 0; j < n; j++) y[r * n + j] += x[r * n + j] * gamma[j] + beta[j];
}

/* dgamma += colsum(dy * x), dbeta += colsum(dy). */
NN_WIDE static inline void param_grads(float *dgamma, float *dbeta, const float *dy, const float *x,
                                       int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; r++) {
    const float *g = dy + r * n, *xr = x + r * n;
    if (dgamma)
      for (int64_t j = 0; j < n; j++) dgamma[j] += g[j] * xr[j];
    if (dbeta)
      for (int64_t j = 0; j < n; j++) dbeta[j] += g[j];
  }
}

NN_KERNEL void nn_ssf_backward(float *dx, float *dgamma, float *dbeta, const float *dy,
                               const float *x, const float *gamma, int64_t rows, int64_t n) {
  param_grads(dgamma, dbeta, dy, x, rows, n);
  if (dx)
    for (int64_t r = 0; r < rows; r++)
      for (int64_t j = 0; j < n; j++) dx[r * n + j] += dy[r * n + j] * gamma[j];
}

NN_KERNEL void nn_ssf_backward_inplace(float *dy, float *dgamma, float *dbeta, const float *x,
                                       const float *gamma, int64_t rows, int64_t n) {
  param_grads(dgamma, dbeta, dy, x, rows, n);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t j = 0; j < n; j++) dy[r * n + j] *= gamma[j];
}

void nn_ssf_backward_ref(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                         const float *gamma, int64_t rows, int64_t n) {
  for (int64_t j = 0; j < n; j++) {
    double sg = 0.0, sb = 0.0;
    for (int64_t r = 0; r < rows; r++) {
      sg += (double)dy[r * n + j] * (double)x[r * n + j];
      sb += (double)dy[r * n + j];
      if (dx) dx[r * n + j] = (float)((double)dx[r * n + j] + (double)dy[r * n + j] * gamma[j]);
    }
    if (dgamma) dgamma[j] = (float)((double)dgamma[j] + sg);
    if (dbeta) dbeta[j] = (float)((double)dbeta[j] + sb);
  }
}
