/* linear.c: fully connected layers y = x W^T + b through one cblas_sgemm each, forward and
 * backward.
 *
 * The bias is written into y before the product and the GEMM runs with beta = 1: OpenBLAS
 * clears C in a separate pass when beta = 0, so pre-filling with the bias costs nothing extra
 * and saves the pass a separate bias add would take. The residual variant adds the bias into the
 * existing y and accumulates the product on top, so a block's projection lands directly in the
 * residual stream. No blocking or threading here: a caller that wants threads splits the rows.
 *
 * The backward computes the input gradient through one GEMM and the weight and bias gradients
 * only when asked for. The frozen backbone never asks for dW (it would be a second GEMM as large
 * as the first, and the reason a frozen-backbone step costs about twice a forward rather than
 * three times), so the common call is one cblas_sgemm with beta = 1, which accumulates into dx
 * without a separate pass. The PET adapters do ask for dW; their GEMMs are small. The `_ref`
 * versions are plain loops with double accumulation. */
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

/* db (dout) += column sums of dy (rows, dout) in float, row by row so that the column loop
 * vectorises. */
static void bias_grad(float *db, const float *dy, int64_t rows, int64_t dout) {
  for (int64_t r = 0; r < rows; r++) {
    const float *g = dy + r * dout;
    for (int64_t o = 0; o < dout; o++) db[o] += g[o];
  }
}

void nn_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                        const float *w, int64_t rows, int64_t din, int64_t dout) {
  if (rows <= 0) return;
  if (dx)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)din, (int)dout, 1.0f, dy,
                (int)dout, w, (int)din, 1.0f, dx, (int)din);
  if (dw)
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)dout, (int)din, (int)rows, 1.0f, dy,
                (int)dout, x, (int)din, 1.0f, dw, (int)din);
  if (db) bias_grad(db, dy, rows, dout);
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

void nn_linear_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x,
                            const float *w, int64_t rows, int64_t din, int64_t dout) {
  if (dx)
    for (int64_t r = 0; r < rows; r++)
      for (int64_t i = 0; i < din; i++) {
        double acc = dx[r * din + i];
        for (int64_t o = 0; o < dout; o++) acc += (double)dy[r * dout + o] * (double)w[o * din + i];
        dx[r * din + i] = (float)acc;
      }
  if (dw)
    for (int64_t o = 0; o < dout; o++)
      for (int64_t i = 0; i < din; i++) {
        double acc = dw[o * din + i];
        for (int64_t r = 0; r < rows; r++) acc += (double)dy[r * dout + o] * (double)x[r * din + i];
        dw[o * din + i] = (float)acc;
      }
  if (db)
    for (int64_t o = 0; o < dout; o++) {
      double acc = db[o];
      for (int64_t r = 0; r < rows; r++) acc += (double)dy[r * dout + o];
      db[o] = (float)acc;
    }
}
