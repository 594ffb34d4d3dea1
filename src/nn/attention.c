/* attention.c: the core of multi-head self-attention, softmax(q k^T / sqrt(Dh)) v, read
 * straight out of the fused qkv buffer.
 *
 * q, k and v are never copied out: each head's slices are strided views of the (N, 3*D) qkv
 * rows (leading dimension 3*D), and each head's context is written into its column slice of the
 * (N, D) output, which is timm's transpose(1, 2).reshape. The scale goes into the first GEMM's
 * alpha. One head is the unit of work: its two products are small (N x N x Dh), so a caller
 * that wants threads hands out (image, head) pairs rather than threading inside BLAS, and the
 * N x N scores stay in cache from the first product through the softmax into the second.
 * Forward only; probs is kept because backward will need it. */
#include "safecl/nn.h"

#include <cblas.h>
#include <math.h>

void nn_attention_head_forward(float *out, float *probs, const float *qkv, int64_t nq, int64_t N,
                               int64_t H, int64_t Dh, int64_t h) {
  const int64_t D = H * Dh, ld = 3 * D;
  const float *q = qkv + h * Dh, *k = qkv + D + h * Dh, *v = qkv + 2 * D + h * Dh;
  const float scale = 1.0f / sqrtf((float)Dh);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)N, (int)Dh, scale, q, (int)ld,
              k, (int)ld, 0.0f, probs, (int)N);
  nn_softmax_forward(probs, probs, nq, N);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nq, (int)Dh, (int)N, 1.0f, probs,
              (int)N, v, (int)ld, 0.0f, out + h * Dh, (int)D);
}

void nn_attention_forward(float *out, float *probs, const float *qkv, int64_t B, int64_t N,
                          int64_t H, int64_t Dh) {
  const int64_t D = H * Dh;
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++)
      nn_attention_head_forward(out + b * N * D, probs + (b * H + h) * N * N, qkv + b * N * 3 * D,
                                N, N, H, Dh, h);
}

/* Scaled score q_i . k_j of head h, in double. */
static double score_ref(const float *qkv, int64_t D, int64_t Dh, int64_t h, int64_t i, int64_t j) {
  const int64_t ld = 3 * D;
  double acc = 0.0;
  for (int64_t d = 0; d < Dh; d++)
    acc += (double)qkv[i * ld + h * Dh + d] * (double)qkv[j * ld + D + h * Dh + d];
  return acc / sqrt((double)Dh);
}

/* One row of one head: softmax in double, recomputing the scores instead of storing them so
 * that the reference needs no scratch. The context uses the probabilities as stored (float),
 * which perturbs it by at most one float rounding of each weight. */
static void attention_row_ref(float *out_row, float *prob_row, const float *qkv, int64_t N,
                              int64_t H, int64_t Dh, int64_t h, int64_t i) {
  const int64_t D = H * Dh, ld = 3 * D;
  double m = -INFINITY, s = 0.0;
  for (int64_t j = 0; j < N; j++) {
    double sc = score_ref(qkv, D, Dh, h, i, j);
    m = sc > m ? sc : m;
  }
  for (int64_t j = 0; j < N; j++) s += exp(score_ref(qkv, D, Dh, h, i, j) - m);
  for (int64_t j = 0; j < N; j++)
    prob_row[j] = (float)(exp(score_ref(qkv, D, Dh, h, i, j) - m) / s);
  for (int64_t d = 0; d < Dh; d++) {
    double acc = 0.0;
    for (int64_t j = 0; j < N; j++)
      acc += (double)prob_row[j] * (double)qkv[j * ld + 2 * D + h * Dh + d];
    out_row[h * Dh + d] = (float)acc;
  }
}

void nn_attention_forward_ref(float *out, float *probs, const float *qkv, int64_t B, int64_t N,
                              int64_t H, int64_t Dh) {
  const int64_t D = H * Dh;
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++)
      for (int64_t i = 0; i < N; i++)
        attention_row_ref(out + (b * N + i) * D, probs + ((b * H + h) * N + i) * N,
                          qkv + b * N * 3 * D, N, H, Dh, h, i);
}
