/* test_prompt.c: prompt.h's selection pieces on hand-made inputs: PILOT's DualPrompt prefix
 * reshape against the test vector of docs/methods.md f.6 (B = 4 and B = 3), top-k and vote with
 * their tie rules (lower id first), the eps-on-squared-norm normalisation and its gradient by
 * central finite differences in double (also at a row below the clamp), and the CE of a column
 * range leaving every other head row's gradient exactly zero (f.7). */
#include <math.h>
#include <string.h>

#include "learn_test.h"
#include "safecl/prompt.h"

/* B = 4: (K0, K1), (K2, K3), (V0, V1), (V2, V3); B = 3: (K0, K1), (K2, V0), (V1, V2). Written
 * as "role image" pairs per sample, key first. */
static void test_reshape(void) {
  const char *want4[4] = {"K0K1", "K2K3", "V0V1", "V2V3"};
  const char *want3[3] = {"K0K1", "K2V0", "V1V2"};
  for (int64_t B = 3; B <= 4; B++)
    for (int64_t b = 0; b < B; b++) {
      char got[8] = {0};
      for (int r = 0; r < 2; r++) {
        int64_t img;
        int role;
        learn_prompt_pilot_reshape(B, b, r, &img, &role);
        got[2 * r] = role ? 'V' : 'K';
        got[2 * r + 1] = (char)('0' + img);
      }
      const char *want = B == 4 ? want4[b] : want3[b];
      CHECK(!strcmp(got, want), "reshape B=%lld sample %lld: %s, expected %s", (long long)B,
            (long long)b, got, want);
    }
}

static void test_select(void) {
  /* ties: ids 1 and 3 share the best value, 0 and 2 the next */
  const float s[5] = {0.5f, 0.9f, 0.5f, 0.9f, -1.0f};
  int64_t idx[4];
  learn_prompt_topk(idx, s, 1, 5, 4);
  CHECK(idx[0] == 1 && idx[1] == 3 && idx[2] == 0 && idx[3] == 2,
        "top-4 with ties: %lld %lld %lld %lld, expected 1 3 0 2", (long long)idx[0],
        (long long)idx[1], (long long)idx[2], (long long)idx[3]);
  /* vote: rows {1,3}, {3,4}, {4,1}, {0,2}: 1, 3, 4 twice each, 0 and 2 once */
  const int64_t rows[8] = {1, 3, 3, 4, 4, 1, 0, 2};
  int64_t counts[5] = {0}, sel[4];
  learn_prompt_count(counts, rows, 8, 5);
  learn_prompt_vote(sel, counts, 5, 4);
  CHECK(sel[0] == 1 && sel[1] == 3 && sel[2] == 4 && sel[3] == 0,
        "vote: %lld %lld %lld %lld, expected 1 3 4 0", (long long)sel[0], (long long)sel[1],
        (long long)sel[2], (long long)sel[3]);
  int64_t batch[8];
  memcpy(batch, rows, sizeof batch);
  CHECK_OK(learn_prompt_vote_group(dist_comm_self(), batch, 4, 2, 5, counts));
  for (int b = 0; b < 4; b++)
    CHECK(batch[2 * b] == 1 && batch[2 * b + 1] == 3, "group vote row %d: %lld %lld", b,
          (long long)batch[2 * b], (long long)batch[2 * b + 1]);
}

/* sum(w * normalize(x)) and its gradient, one row of D; fp32 kernels against double FD with
 * step h: the error bound is the FD truncation O(h^2) plus fp32 rounding of O(D) terms. */
static void test_norm(void) {
  enum { D = 7 };
  float x[2][D], w[D];
  fill_uniform(&x[0][0], D, 3, 1, -1.0f, 1.0f);
  for (int j = 0; j < D; j++) x[1][j] = 1e-7f * (float)(j - 3); /* ||x||^2 < 1e-12: clamped */
  fill_uniform(w, D, 3, 2, -1.0f, 1.0f);
  for (int r = 0; r < 2; r++) {
    float xn[D], sq, dx[D] = {0};
    learn_prompt_l2norm_forward(xn, &sq, x[r], 1, D);
    learn_prompt_l2norm_backward(dx, w, xn, &sq, 1, D);
    const double h = r == 0 ? 1e-3 : 1e-9;
    double worst = 0.0, scale = 0.0;
    for (int j = 0; j < D; j++) {
      double f[2];
      for (int s = 0; s < 2; s++) {
        double y[D], ss = 0.0, v = 0.0;
        for (int i = 0; i < D; i++) y[i] = x[r][i] + (i == j ? (s ? h : -h) : 0.0);
        for (int i = 0; i < D; i++) ss += y[i] * y[i];
        double inv = 1.0 / sqrt(ss > 1e-12 ? ss : 1e-12);
        for (int i = 0; i < D; i++) v += w[i] * y[i] * inv;
        f[s] = v;
      }
      double fd = (f[1] - f[0]) / (2 * h);
      worst = fmax(worst, fabs(fd - dx[j]));
      scale = fmax(scale, fabs(fd));
    }
    printf("normalisation gradient (%s): worst |fd - analytic| %.2e of %.2e\n",
           r ? "clamped" : "plain", worst, scale);
    CHECK(worst <= 1e-4 * scale, "normalisation gradient row %d: %.2e of %.2e", r, worst, scale);
  }
}

/* CE over columns [2, 4) of 6: the gradient of rows 0, 1, 4, 5 and their biases is exactly 0. */
static void test_ce_range(void) {
  enum { B = 3, D = 5, C = 6 };
  learn_prompt_params p;
  CHECK_OK(learn_prompt_params_create(&p, C, D, 0, NULL, NULL));
  learn_prompt_head_init_rows(&p, LEARN_PROMPT_HEAD_TORCH, 1, 1);
  float feat[B * D], dfeat[B * D] = {0}, scratch[2 * B * 2];
  fill_uniform(feat, B * D, 4, 1, -1.0f, 1.0f);
  const int64_t y[B] = {2, 3, 3};
  double ce = learn_prompt_ce(&p, dfeat, scratch, feat, y, B, 2, 4, 1.0);
  CHECK(isfinite(ce) && ce > 0.0, "CE %g", ce);
  int outside = 0, inside = 0;
  for (int64_t k = 0; k < C; k++) {
    int in = k >= 2 && k < 4;
    for (int64_t j = 0; j < D; j++) {
      float g = p.grad[p.head_w + k * D + j];
      outside += !in && g != 0.0f;
      inside += in && g != 0.0f;
    }
    outside += !in && p.grad[p.head_b + k] != 0.0f;
  }
  CHECK(outside == 0 && inside > 0, "CE range: %d nonzero gradients outside [2, 4), %d inside",
        outside, inside);
  const int64_t bad[B] = {2, 4, 3};
  CHECK(isnan(learn_prompt_ce(&p, NULL, scratch, feat, bad, B, 2, 4, 1.0)),
        "label 4 outside [2, 4)");
  learn_prompt_params_free(&p);
}

int main(void) {
  test_reshape();
  test_select();
  test_norm();
  test_ce_range();
  printf(failures ? "FAILED: %d\n" : "all checks passed\n", failures);
  return failures != 0;
}
