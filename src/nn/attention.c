/* attention.c: the core of multi-head self-attention, softmax(q [pk; k]^T / sqrt(Dh)) [pv; v],
 * read straight out of the fused qkv buffer, forward and backward.
 *
 * q, k and v are never copied out: each head's slices are strided views of the (N, 3*D) qkv
 * rows (leading dimension 3*D), and each head's context is written into its column slice of the
 * (N, D) output, which is timm's transpose(1, 2).reshape. The scale goes into the first GEMM's
 * alpha. An optional prefix of L keys and values (prefix tuning) is two column blocks of the
 * score matrix, so neither the prefix nor the token keys are copied; with L = 0 the prefix
 * blocks are skipped and the kernel is the plain one. LAE's prefix (docs/methods.md l.2) is the
 * same prefix with three options (nn_prefix_mode): its columns may sit after the first `pos`
 * token keys (after the class token), the keys and values are multiplied by scalars (in the
 * GEMMs' alpha, never copied), and the prefix columns of every probability row may be divided
 * by their sum (compensation); the backward differentiates all three. One head is the unit of work: its
 * products are small (N x N x Dh), so a caller that wants threads hands out (image, head) pairs
 * rather than threading inside BLAS, and the scores stay in cache from the first product
 * through the softmax into the second.
 *
 * The backward does not read stored probabilities: keeping them would cost B*H*N*N floats per
 * block (30 MB per ViT-B block at batch 16, 360 MB over twelve), while recomputing one head's
 * scores is one small GEMM (a fifth of the head's backward work) whose result stays in cache for
 * the four products that follow. The recomputation repeats the forward's exact operations
 * (same GEMM shapes, same softmax kernel), so the probabilities are bit-identical to the
 * forward's; the forward's probs buffer is its working memory, not a cache. The `_ref` versions
 * recompute everything in double from the definition, one query row at a time. */
#include <cblas.h>
#include <math.h>

#include "nn_simd.h"
#include "safecl/nn.h"

/* C (m, n) = alpha op(A) op(B) + beta C, row-major; skipped when any dimension is 0. */
static void gemm(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                 int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
  if (m <= 0 || n <= 0 || k <= 0) return;
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m,
              (int)n, (int)k, alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

/* The plain prefix: first in the key order, no compensation, unit scales. */
static const nn_prefix_mode plain_mode = {0, 0, 1.0f, 1.0f};

/* Where the prefix columns start in a score row: after mode->pos token keys (0 without a
 * prefix, so the token keys are one block). */
static int64_t prefix_pos(const nn_prefix_mode *mode, int64_t L) { return L > 0 ? mode->pos : 0; }

/* The compensation's divisor of one probability row: the sum of its L prefix columns, floored at
 * 1e-12 (docs/methods.md l.2); *live = 0 when the floor binds (the divisor is then a constant). */
static float prefix_divisor(const float *a, int64_t L, int *live) {
  float s = 0.0f;
  for (int64_t j = 0; j < L; j++) s += a[j];
  *live = s > 1e-12f;
  return *live ? s : 1e-12f;
}

/* probs (nq, L + N) = softmax of head h's scores over the columns [k_0..k_{p-1}, ks pk, k_p..]
 * / sqrt(Dh), p = prefix_pos; compensated when compensate (the forward's probabilities). */
static void head_probs(float *probs, const float *qkv, const float *pk, int64_t L,
                       const nn_prefix_mode *mode, int compensate, int64_t nq, int64_t N, int64_t H,
                       int64_t Dh, int64_t h) {
  const int64_t D = H * Dh, ld = 3 * D, Nk = L + N, p = prefix_pos(mode, L);
  const float scale = 1.0f / sqrtf((float)Dh);
  const float *q = qkv + h * Dh, *k = qkv + D + h * Dh;
  gemm(0, 1, nq, p, Dh, scale, q, ld, k, ld, 0.0f, probs, Nk);
  if (L > 0)
    gemm(0, 1, nq, L, Dh, scale * mode->key_scale, q, ld, pk + h * Dh, D, 0.0f, probs + p, Nk);
  gemm(0, 1, nq, N - p, Dh, scale, q, ld, k + p * ld, ld, 0.0f, probs + p + L, Nk);
  nn_softmax_forward(probs, probs, nq, Nk);
  if (!(compensate && L > 0 && mode->compensate)) return;
  for (int64_t r = 0; r < nq; r++) {
    float *a = probs + r * Nk + p;
    int live;
    const float d = prefix_divisor(a, L, &live);
    for (int64_t j = 0; j < L; j++) a[j] /= d;
  }
}

void nn_attention_head_forward_mode(float *out, float *probs, const float *qkv, const float *pk,
                                    const float *pv, int64_t L, const nn_prefix_mode *mode,
                                    int64_t nq, int64_t N, int64_t H, int64_t Dh, int64_t h) {
  if (!mode) mode = &plain_mode;
  const int64_t D = H * Dh, ld = 3 * D, Nk = L + N, p = prefix_pos(mode, L), o = h * Dh;
  const float *v = qkv + 2 * D + o;
  head_probs(probs, qkv, pk, L, mode, 1, nq, N, H, Dh, h);
  gemm(0, 0, nq, Dh, p, 1.0f, probs, Nk, v, ld, 0.0f, out + o, D);
  if (L > 0)
    gemm(0, 0, nq, Dh, L, mode->value_scale, probs + p, Nk, pv + o, D, p > 0 ? 1.0f : 0.0f, out + o,
         D);
  gemm(0, 0, nq, Dh, N - p, 1.0f, probs + p + L, Nk, v + p * ld, ld, p + L > 0 ? 1.0f : 0.0f,
       out + o, D);
}

void nn_attention_head_forward(float *out, float *probs, const float *qkv, const float *pk,
                               const float *pv, int64_t L, int64_t nq, int64_t N, int64_t H,
                               int64_t Dh, int64_t h) {
  nn_attention_head_forward_mode(out, probs, qkv, pk, pv, L, NULL, nq, N, H, Dh, h);
}

void nn_attention_forward(float *out, float *probs, const float *qkv, const float *pk,
                          const float *pv, int64_t L, int64_t B, int64_t N, int64_t H, int64_t Dh) {
  const int64_t D = H * Dh, Nk = L + N;
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++)
      nn_attention_head_forward(out + b * N * D, probs + (b * H + h) * N * Nk, qkv + b * N * 3 * D,
                                pk, pv, L, N, N, H, Dh, h);
}

/* dS = P * (dP - rowsum(dP * P)), in place over dP. */
NN_KERNEL static void softmax_grad_rows(float *dp, const float *p, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; r++) {
    float *g = dp + r * cols;
    const float *y = p + r * cols;
    float lane[16] = {0}, s = 0.0f;
    int64_t j = 0;
    for (; j + 16 <= cols; j += 16)
      for (int k = 0; k < 16; k++) lane[k] += g[j + k] * y[j + k];
    for (; j < cols; j++) s += g[j] * y[j];
    for (int k = 0; k < 16; k++) s += lane[k];
    for (j = 0; j < cols; j++) g[j] = y[j] * (g[j] - s);
  }
}

/* sum of a[j] g[j] over n entries in 16 lanes (the softmax backward's own summation order), so
 * that the reduction vectorises. */
NN_WIDE static inline float dot_lanes(const float *a, const float *g, int64_t n) {
  float lane[16] = {0}, s = 0.0f;
  int64_t j = 0;
  for (; j + 16 <= n; j += 16)
    for (int k = 0; k < 16; k++) lane[k] += a[j + k] * g[j + k];
  for (; j < n; j++) s += a[j] * g[j];
  for (int k = 0; k < 16; k++) s += lane[k];
  return s;
}

/* The softmax and compensation backward of rows whose prefix sits at columns [p, p + L).
 * On entry P holds the softmax A, G = dO [v; pv; v]^T with the prefix block without the value
 * scale; on exit P holds the forward's probabilities A' (compensated when
 * compensate) and G the score gradient dS. With A'_j = A_j / lam on the prefix (lam = its sum)
 * and g = dL/dA' (the prefix block times the value scale):
 *   c = sum_prefix g A' (0 when the floor binds: lam is then a constant),
 *   r = sum_all g A' - c (= the sum over the token columns when unfloored, so it is summed there),
 *   dS_j = A'_j (g_j - r) on token columns, A'_j (g_j - c - lam r) on prefix columns;
 * without compensation lam = 1 and c = 0, the plain softmax backward. *dvs += sum_prefix A' G
 * before the scaling, the value scale's gradient. */
NN_KERNEL static void prefix_grad_rows(float *G, float *P, float *dvs, int64_t nq, int64_t Nk,
                                       int64_t p, int64_t L, int compensate, float vs) {
  double acc = 0.0;
  for (int64_t r = 0; r < nq; r++) {
    float *g = G + r * Nk, *a = P + r * Nk;
    float lam = 1.0f;
    int live = 0;
    if (compensate) {
      lam = prefix_divisor(a + p, L, &live);
      for (int64_t j = 0; j < L; j++) a[p + j] /= lam;
    }
    float unscaled = 0.0f, pre = 0.0f;
    for (int64_t j = p; j < p + L; j++) {
      unscaled += a[j] * g[j];
      g[j] *= vs;
      pre += a[j] * g[j];
    }
    acc += unscaled;
    const float tok = dot_lanes(a, g, p) + dot_lanes(a + p + L, g + p + L, Nk - p - L);
    const float c = live ? pre : 0.0f, rr = live ? tok : tok + pre;
    for (int64_t j = 0; j < p; j++) g[j] = a[j] * (g[j] - rr);
    for (int64_t j = p; j < p + L; j++) g[j] = a[j] * (g[j] - c - lam * rr);
    for (int64_t j = p + L; j < Nk; j++) g[j] = a[j] * (g[j] - rr);
  }
  if (dvs) *dvs += (float)acc;
}

void nn_attention_head_backward_mode(float *dqkv, float *dpk, float *dpv, float *dks, float *dvs,
                                     float *scratch, const float *dout, const float *qkv,
                                     const float *pk, const float *pv, int64_t L,
                                     const nn_prefix_mode *mode, int64_t nq, int64_t N, int64_t H,
                                     int64_t Dh, int64_t h) {
  if (!mode) mode = &plain_mode;
  const int64_t D = H * Dh, ld = 3 * D, Nk = L + N, o = h * Dh, p = prefix_pos(mode, L);
  const float scale = 1.0f / sqrtf((float)Dh), ks = mode->key_scale, vs = mode->value_scale;
  const float *q = qkv + o, *k = qkv + D + o, *v = qkv + 2 * D + o, *dO = dout + o;
  float *dq = dqkv + o, *dk = dqkv + D + o, *dv = dqkv + 2 * D + o;
  float *P = scratch, *dS = scratch + nq * Nk;
  const int special = L > 0 && (mode->compensate || vs != 1.0f || dvs);
  head_probs(P, qkv, pk, L, mode, !special, nq, N, H, Dh, h);
  /* dP = dO [v; pv; v]^T (the prefix block without the value scale when special) */
  gemm(0, 1, nq, p, Dh, 1.0f, dO, D, v, ld, 0.0f, dS, Nk);
  if (L > 0) gemm(0, 1, nq, L, Dh, special ? 1.0f : vs, dO, D, pv + o, D, 0.0f, dS + p, Nk);
  gemm(0, 1, nq, N - p, Dh, 1.0f, dO, D, v + p * ld, ld, 0.0f, dS + p + L, Nk);
  if (special) prefix_grad_rows(dS, P, dvs, nq, Nk, p, L, mode->compensate, vs);
  /* dV += P^T dO with the forward's probabilities */
  gemm(1, 0, p, Dh, nq, 1.0f, P, Nk, dO, D, 1.0f, dv, ld);
  if (L > 0 && dpv) gemm(1, 0, L, Dh, nq, vs, P + p, Nk, dO, D, 1.0f, dpv + o, D);
  gemm(1, 0, N - p, Dh, nq, 1.0f, P + p + L, Nk, dO, D, 1.0f, dv + p * ld, ld);
  if (!special) softmax_grad_rows(dS, P, nq, Nk);
  /* dQ += dS [k; ks pk; k] / sqrt(Dh); dK += dS^T Q / sqrt(Dh), the prefix's times ks */
  gemm(0, 0, nq, Dh, p, scale, dS, Nk, k, ld, 1.0f, dq, ld);
  if (L > 0) gemm(0, 0, nq, Dh, L, scale * ks, dS + p, Nk, pk + o, D, 1.0f, dq, ld);
  gemm(0, 0, nq, Dh, N - p, scale, dS + p + L, Nk, k + p * ld, ld, 1.0f, dq, ld);
  gemm(1, 0, p, Dh, nq, scale, dS, Nk, q, ld, 1.0f, dk, ld);
  if (L > 0 && dpk) gemm(1, 0, L, Dh, nq, scale * ks, dS + p, Nk, q, ld, 1.0f, dpk + o, D);
  gemm(1, 0, N - p, Dh, nq, scale, dS + p + L, Nk, q, ld, 1.0f, dk + p * ld, ld);
  if (L > 0 && dks) { /* dks += sum_prefix dS (q . pk) / sqrt(Dh), the unscaled scores in P */
    gemm(0, 1, nq, L, Dh, scale, q, ld, pk + o, D, 0.0f, P + p, Nk);
    double s = 0.0;
    for (int64_t r = 0; r < nq; r++)
      for (int64_t j = p; j < p + L; j++) s += (double)dS[r * Nk + j] * P[r * Nk + j];
    *dks += (float)s;
  }
}

void nn_attention_head_backward(float *dqkv, float *dpk, float *dpv, float *scratch,
                                const float *dout, const float *qkv, const float *pk,
                                const float *pv, int64_t L, int64_t nq, int64_t N, int64_t H,
                                int64_t Dh, int64_t h) {
  nn_attention_head_backward_mode(dqkv, dpk, dpv, NULL, NULL, scratch, dout, qkv, pk, pv, L, NULL,
                                  nq, N, H, Dh, h);
}

void nn_attention_backward(float *dqkv, float *dpk, float *dpv, float *scratch, const float *dout,
                           const float *qkv, const float *pk, const float *pv, int64_t L, int64_t B,
                           int64_t N, int64_t H, int64_t Dh) {
  const int64_t D = H * Dh;
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++)
      nn_attention_head_backward(dqkv + b * N * 3 * D, dpk, dpv, scratch, dout + b * N * D,
                                 qkv + b * N * 3 * D, pk, pv, L, N, N, H, Dh, h);
}

/* ---------------------------------------------------------------------------------------- */
/* References                                                                                */

/* Key j (prefix first) and value j of head h as pointers; their rows have Dh entries. */
static const float *key_ref(const float *qkv, const float *pk, int64_t L, int64_t D, int64_t Dh,
                            int64_t h, int64_t j) {
  return j < L ? pk + j * D + h * Dh : qkv + (j - L) * 3 * D + D + h * Dh;
}
static const float *value_ref(const float *qkv, const float *pv, int64_t L, int64_t D, int64_t Dh,
                              int64_t h, int64_t j) {
  return j < L ? pv + j * D + h * Dh : qkv + (j - L) * 3 * D + 2 * D + h * Dh;
}

static double dot_ref(const float *a, const float *b, int64_t n) {
  double s = 0.0;
  for (int64_t d = 0; d < n; d++) s += (double)a[d] * (double)b[d];
  return s;
}

/* Row i's softmax statistics: max m and sum s of exp(score - m). */
static void row_stats_ref(const float *qi, const float *qkv, const float *pk, int64_t L, int64_t N,
                          int64_t D, int64_t Dh, int64_t h, double *m, double *s) {
  const double scale = 1.0 / sqrt((double)Dh);
  *m = -INFINITY;
  *s = 0.0;
  for (int64_t j = 0; j < L + N; j++) {
    double sc = dot_ref(qi, key_ref(qkv, pk, L, D, Dh, h, j), Dh) * scale;
    *m = sc > *m ? sc : *m;
  }
  for (int64_t j = 0; j < L + N; j++)
    *s += exp(dot_ref(qi, key_ref(qkv, pk, L, D, Dh, h, j), Dh) * scale - *m);
}

void nn_attention_forward_ref(float *out, float *probs, const float *qkv, const float *pk,
                              const float *pv, int64_t L, int64_t B, int64_t N, int64_t H,
                              int64_t Dh) {
  const int64_t D = H * Dh, Nk = L + N;
  const double scale = 1.0 / sqrt((double)Dh);
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++)
      for (int64_t i = 0; i < N; i++) {
        const float *x = qkv + b * N * 3 * D, *qi = x + i * 3 * D + h * Dh;
        float *prow = probs + ((b * H + h) * N + i) * Nk;
        double m, s;
        row_stats_ref(qi, x, pk, L, N, D, Dh, h, &m, &s);
        for (int64_t j = 0; j < Nk; j++)
          prow[j] = (float)(exp(dot_ref(qi, key_ref(x, pk, L, D, Dh, h, j), Dh) * scale - m) / s);
        for (int64_t d = 0; d < Dh; d++) {
          double acc = 0.0;
          for (int64_t j = 0; j < Nk; j++)
            acc += (double)prow[j] * value_ref(x, pv, L, D, Dh, h, j)[d];
          out[(b * N + i) * D + h * Dh + d] = (float)acc;
        }
      }
}

/* Backward of query row i of head h of one image (x its qkv, dx its dqkv). */
static void backward_row_ref(float *dx, float *dpk, float *dpv, const float *dOi, const float *x,
                             const float *pk, const float *pv, int64_t L, int64_t N, int64_t D,
                             int64_t Dh, int64_t h, int64_t i) {
  const double scale = 1.0 / sqrt((double)Dh);
  const float *qi = x + i * 3 * D + h * Dh;
  double m, s, rowdot = 0.0;
  row_stats_ref(qi, x, pk, L, N, D, Dh, h, &m, &s);
  for (int64_t j = 0; j < L + N; j++) {
    double p = exp(dot_ref(qi, key_ref(x, pk, L, D, Dh, h, j), Dh) * scale - m) / s;
    rowdot += p * dot_ref(dOi, value_ref(x, pv, L, D, Dh, h, j), Dh);
  }
  for (int64_t j = 0; j < L + N; j++) {
    const float *kj = key_ref(x, pk, L, D, Dh, h, j), *vj = value_ref(x, pv, L, D, Dh, h, j);
    double p = exp(dot_ref(qi, kj, Dh) * scale - m) / s;
    double ds = p * (dot_ref(dOi, vj, Dh) - rowdot) * scale;
    float *dk = j < L ? (dpk ? dpk + j * D + h * Dh : NULL) : dx + (j - L) * 3 * D + D + h * Dh;
    float *dv = j < L ? (dpv ? dpv + j * D + h * Dh : NULL) : dx + (j - L) * 3 * D + 2 * D + h * Dh;
    for (int64_t d = 0; d < Dh; d++) {
      dx[i * 3 * D + h * Dh + d] += (float)(ds * kj[d]);
      if (dk) dk[d] += (float)(ds * qi[d]);
      if (dv) dv[d] += (float)(p * dOi[d]);
    }
  }
}

void nn_attention_backward_ref(float *dqkv, float *dpk, float *dpv, const float *dout,
                               const float *qkv, const float *pk, const float *pv, int64_t L,
                               int64_t B, int64_t N, int64_t H, int64_t Dh) {
  const int64_t D = H * Dh;
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++)
      for (int64_t i = 0; i < N; i++)
        backward_row_ref(dqkv + b * N * 3 * D, dpk, dpv, dout + (b * N + i) * D + h * Dh,
                         qkv + b * N * 3 * D, pk, pv, L, N, D, Dh, h, i);
}
