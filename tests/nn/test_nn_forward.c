/* test_nn_forward.c: every fast forward kernel of nn.h against its naive `_ref`, on random
 * inputs of several shapes including odd and degenerate sizes (docs/conventions.md 12b); the
 * backward kernels are test_nn_backward.c's.
 *
 * Each comparison prints its worst element and passes when |fast - ref| <= atol + rtol*|ref|
 * everywhere; the exit status is the number of failures (capped), so ctest sees any of them.
 * Inputs are scaled so that outputs are O(1): the tolerances then read as relative accuracy. */
#include "common/nn_harness.h"
#include "safecl/nn.h"

static void test_linear(int64_t rows, int64_t din, int64_t dout, int with_bias) {
  float *x = rand_buf(rows * din, -1, 1, 1), *w = rand_buf(dout * din, -1, 1, 2);
  float *b = with_bias ? rand_buf(dout, -1, 1, 3) : NULL;
  float *y0 = rand_buf(rows * dout, -1, 1, 4);
  float *y = buf(rows * dout), *yr = buf(rows * dout);
  for (int64_t i = 0; i < dout * din; i++) w[i] /= sqrtf((float)din);
  char what[96];
  snprintf(what, sizeof what, "linear %lldx%lld->%lld%s", (long long)rows, (long long)din,
           (long long)dout, with_bias ? " +b" : "");
  nn_linear_forward(y, x, w, b, rows, din, dout);
  nn_linear_forward_ref(yr, x, w, b, rows, din, dout);
  check(what, y, yr, rows * dout, 1e-5, 1e-5);

  memcpy(y, y0, (size_t)(rows * dout) * sizeof(float));
  memcpy(yr, y0, (size_t)(rows * dout) * sizeof(float));
  snprintf(what, sizeof what, "linear_add %lldx%lld->%lld%s", (long long)rows, (long long)din,
           (long long)dout, with_bias ? " +b" : "");
  nn_linear_add_forward(y, x, w, b, rows, din, dout);
  nn_linear_add_forward_ref(yr, x, w, b, rows, din, dout);
  check(what, y, yr, rows * dout, 1e-5, 1e-5);

  snprintf(what, sizeof what, "linear_gelu %lldx%lld->%lld%s", (long long)rows, (long long)din,
           (long long)dout, with_bias ? " +b" : "");
  nn_linear_gelu_forward(y, x, w, b, rows, din, dout);
  nn_linear_forward_ref(yr, x, w, b, rows, din, dout);
  nn_gelu_forward_ref(yr, yr, rows * dout);
  check(what, y, yr, rows * dout, 1e-5, 1e-5);
}

/* Rows uniform in offset +- half. */
static void test_layernorm(int64_t rows, int64_t D, float offset, float half) {
  float *x = rand_buf(rows * D, offset - half, offset + half, 5);
  float *g = rand_buf(D, 0.5f, 1.5f, 6), *be = rand_buf(D, -0.5f, 0.5f, 7);
  float *y = buf(rows * D), *yr = buf(rows * D);
  float *mu = buf(rows), *mur = buf(rows), *rs = buf(rows), *rsr = buf(rows);
  nn_layernorm_forward(y, mu, rs, x, g, be, rows, D, 1e-6f);
  nn_layernorm_forward_ref(yr, mur, rsr, x, g, be, rows, D, 1e-6f);
  char what[96];
  snprintf(what, sizeof what, "layernorm %lldx%lld mean %+g std %.2g", (long long)rows,
           (long long)D, offset, half / sqrt(3.0));
  check(what, y, yr, rows * D, 2e-6, 2e-6);
  check("  layernorm mean", mu, mur, rows, 1e-6, 1e-6);
  check("  layernorm rstd", rs, rsr, rows, 1e-6, 1e-5);
  nn_layernorm_forward(x, NULL, NULL, x, g, be, rows, D, 1e-6f); /* in place, no stats */
  check("  layernorm in place", x, yr, rows * D, 2e-6, 2e-6);
}

static void test_softmax(int64_t rows, int64_t cols, float range) {
  float *x = rand_buf(rows * cols, -range, range, 8);
  float *y = buf(rows * cols), *yr = buf(rows * cols);
  nn_softmax_forward(y, x, rows, cols);
  nn_softmax_forward_ref(yr, x, rows, cols);
  char what[96];
  snprintf(what, sizeof what, "softmax %lldx%lld range %g", (long long)rows, (long long)cols,
           range);
  check(what, y, yr, rows * cols, 1e-7, 2e-6);
  nn_softmax_forward(x, x, rows, cols);
  check("  softmax in place", x, yr, rows * cols, 1e-7, 2e-6);
}

static void test_elementwise(void) {
  const int64_t n = 20011;
  float *x = buf(n), *y = buf(n), *yr = buf(n);
  for (int64_t i = 0; i < n; i++) x[i] = -12.0f + 24.0f * (float)i / (float)(n - 1);
  x[0] = 0.0f, x[1] = -0.0f, x[2] = 1e-30f, x[3] = -60.0f, x[4] = 60.0f;
  nn_gelu_forward(y, x, n);
  nn_gelu_forward_ref(yr, x, n);
  check("gelu [-12, 12] + specials", y, yr, n, 1.5e-6, 1e-6);
  float *a = rand_buf(n, -3, 3, 9), *b = rand_buf(n, -3, 3, 10);
  nn_residual_forward(y, a, b, n);
  nn_residual_forward_ref(yr, a, b, n);
  check("residual", y, yr, n, 0.0, 0.0);
}

static void test_attention(int64_t B, int64_t N, int64_t H, int64_t Dh) {
  const int64_t D = H * Dh;
  float *qkv = rand_buf(B * N * 3 * D, -2, 2, 11);
  float *out = buf(B * N * D), *outr = buf(B * N * D);
  float *p = buf(B * H * N * N), *pr = buf(B * H * N * N);
  nn_attention_forward(out, p, qkv, NULL, NULL, 0, B, N, H, Dh);
  nn_attention_forward_ref(outr, pr, qkv, NULL, NULL, 0, B, N, H, Dh);
  char what[96];
  snprintf(what, sizeof what, "attention B%lld N%lld H%lld Dh%lld", (long long)B, (long long)N,
           (long long)H, (long long)Dh);
  check(what, out, outr, B * N * D, 1e-5, 1e-5);
  /* The probabilities' bound. A score is scale * (a dot of Dh float terms), off in each kernel
   * by at most Dh u scale sum_d |q_d k_d| (first order), in whatever order its GEMM sums; a shift
   * ds of the scores moves p_j by at most 2 max |ds| relative, and the exp and the sum of N
   * terms add (N + 4) u relative; the two kernels differ by twice one's error. atol: u of the
   * largest probability (1), for entries that underflow. */
  double dots = 0.0;
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++)
      for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < N; j++) {
          const float *q = qkv + (b * N + i) * 3 * D + h * Dh,
                      *k = qkv + (b * N + j) * 3 * D + D + h * Dh;
          double a = 0.0;
          for (int64_t d = 0; d < Dh; d++) a += fabs((double)q[d] * (double)k[d]);
          dots = fmax(dots, a);
        }
  const double u = 0x1p-24, ds = (double)Dh * u * dots / sqrt((double)Dh);
  check("  attention probs", p, pr, B * H * N * N, u, 2.0 * (2.0 * ds + (double)(N + 4) * u));

  /* Class-token-only queries (nq = 1): row 0 of every image must match the full result. */
  float *row = buf(B * D), *rowr = buf(B * D);
  for (int64_t b = 0; b < B; b++) {
    for (int64_t h = 0; h < H; h++)
      nn_attention_head_forward(out + b * N * D, p, qkv + b * N * 3 * D, NULL, NULL, 0, 1, N, H, Dh,
                                h);
    memcpy(row + b * D, out + b * N * D, (size_t)D * sizeof(float));
    memcpy(rowr + b * D, outr + b * N * D, (size_t)D * sizeof(float));
  }
  check("  attention nq=1 (class token row)", row, rowr, B * D, 1e-5, 1e-5);
}

static void test_patch_embed(int64_t B, nn_patch_dims d, int64_t gap) {
  const int64_t Np = (d.img_h / d.P) * (d.img_w / d.P), K = d.C * d.P * d.P;
  const int64_t stride = Np * d.D + gap, n_out = B * stride;
  float *img = rand_buf(B * d.C * d.img_h * d.img_w, 0, 1, 12);
  float *w = rand_buf(d.D * K, -1, 1, 13), *b = rand_buf(d.D, -1, 1, 14);
  for (int64_t i = 0; i < d.D * K; i++) w[i] /= sqrtf((float)K);
  float *out = buf(n_out), *outr = buf(n_out), *cols = buf(Np * K);
  for (int64_t i = 0; i < n_out; i++) out[i] = outr[i] = 1234.5f; /* gaps must stay */
  nn_patch_embed_forward(out, cols, img, w, b, B, d, stride);
  nn_patch_embed_forward_ref(outr, img, w, b, B, d, stride);
  char what[96];
  snprintf(what, sizeof what, "patch_embed B%lld C%lld %lldx%lld P%lld D%lld gap %lld",
           (long long)B, (long long)d.C, (long long)d.img_h, (long long)d.img_w, (long long)d.P,
           (long long)d.D, (long long)gap);
  check(what, out, outr, n_out, 1e-5, 1e-5);
}

int main(void) {
  const int64_t lin[][3] = {{1, 1, 1}, {7, 13, 5}, {197, 192, 576}, {33, 768, 31}, {64, 100, 3}};
  for (size_t i = 0; i < sizeof lin / sizeof lin[0]; i++)
    for (int bias = 0; bias < 2; bias++) test_linear(lin[i][0], lin[i][1], lin[i][2], bias);
  test_layernorm(1, 1, 0.0f, 2.0f);
  test_layernorm(5, 7, 0.0f, 2.0f);
  test_layernorm(3, 33, 100.0f, 2.0f);
  test_layernorm(197, 768, -3.0f, 2.0f);
  test_layernorm(8, 768, 1000.0f, 0.52f); /* a rounded float mean would be off by 1e-4 */
  test_softmax(1, 1, 1.0f);
  test_softmax(3, 17, 5.0f);
  test_softmax(197, 197, 8.0f);
  test_softmax(2, 1000, 60.0f);
  test_elementwise();
  test_attention(2, 5, 3, 4);
  test_attention(3, 17, 2, 7);
  test_attention(1, 197, 3, 64);
  test_patch_embed(2, (nn_patch_dims){3, 32, 32, 16, 24}, 0);
  test_patch_embed(3, (nn_patch_dims){2, 12, 8, 4, 5}, 5);
  test_patch_embed(1, (nn_patch_dims){3, 224, 224, 16, 192}, 192);
  release_buffers();
  printf("%d failed\n", failures);
  return failures > 100 ? 100 : failures;
}
