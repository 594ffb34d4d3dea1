/* linear.c: fully connected layers y = x W^T + b through one cblas_sgemm each.
 *
 * The bias is written into y before the product and the GEMM runs with beta = 1: OpenBLAS
 * clears C in a separate pass when beta = 0, so pre-filling with the bias costs nothing extra
 * and saves the pass a separate bias add would take. The residual variant adds the bias into the
 * existing y and accumulates the product on top, so a block's projection lands directly in the
 * residual stream. No blocking or threading here: a caller that wants threads splits the rows.
 * The `_ref` versions are plain triple loops with double accumulation. */
#include "safecl/nn.h"

#include <cblas.h>
#include <string.h>

/* y (rows, dout) <- b broadcast over rows, or zeros. */
static void fill_bias(float *y, const float *b, int64_t rows, int64_t dout) {
  for (int64_t r = 0; r < rows; r++) {
    float *yr = y + r * dout;
    if (b)
      memcpy(yr, b, (size_t)dout * sizeof(float));
    else
      memset(yr, 0, (size_t)dout * sizeof(float));
  }
}

/* y += x W^T (beta = 1). */
static void gemm_acc(float *y, const float *x, const float *w, int64_t rows, int64_t din,
                     int64_t dout) {
  if (rows <= 0 || dout <= 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)dout, (int)din, 1.0f, x,
              (int)din, w, (int)din, 1.0f, y, (int)dout);
}

void nn_linear_forward(float *y, const float *x, const float *w, const float *b, int64_t rows,
                       int64_t din, int64_t dout) {
  fill_bias(y, b, rows, dout);
  gemm_acc(y, x, w, rows, din, dout);
}

void nn_linear_add_forward(float *y, const float *x, const float *w, const float *b, int64_t rows,
                           int64_t din, int64_t dout) {
  if (b) {
    for (int64_t r = 0; r < rows; r++) {
      float *yr = y + r * dout;
      for (int64_t o = 0; o < dout; o++) yr[o] += b[o];
    }
  }
  gemm_acc(y, x, w, rows, din, dout);
}

static void linear_ref(float *y, const float *x, const float *w, const float *b, int64_t rows,
                       int64_t din, int64_t dout, int accumulate) {
  for (int64_t r = 0; r < rows; r++) {
    for (int64_t o = 0; o < dout; o++) {
      double acc = b ? (double)b[o] : 0.0;
      for (int64_t i = 0; i < din; i++) acc += (double)x[r * din + i] * (double)w[o * din + i];
      if (accumulate) acc += (double)y[r * dout + o];
      y[r * dout + o] = (float)acc;
    }
  }
}

void nn_linear_forward_ref(float *y, const float *x, const float *w, const float *b, int64_t rows,
                           int64_t din, int64_t dout) {
  linear_ref(y, x, w, b, rows, din, dout, 0);
}

void nn_linear_add_forward_ref(float *y, const float *x, const float *w, const float *b,
                               int64_t rows, int64_t din, int64_t dout) {
  linear_ref(y, x, w, b, rows, din, dout, 1);
}
