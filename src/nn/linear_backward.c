/* linear_backward.c: backward of y = x W^T + b: the input gradient through one GEMM, the weight
 * and bias gradients only when asked for.
 *
 * The frozen backbone never asks for dW (it would be a second GEMM as large as the first, and
 * the reason a frozen-backbone step costs about twice a forward rather than three times), so
 * the common call is one cblas_sgemm with beta = 1, which accumulates into dx without a separate
 * pass. The PET adapters do ask for dW; their GEMMs are small. The `_ref` is plain loops with
 * double accumulation. */
#include <cblas.h>

#include "safecl/nn_backward.h"

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
