/* test_ease.c: EASE's classifier (src/learn/ease_classifier.c, docs/methods.md j.4, j.5) on the
 * test vectors of the baselines specification (o.5) and against a naive double re-derivation:
 *   - two sessions of two classes with hand-set prototypes in D = 3: the complement of the old
 *     classes in the newer subspace equals softmax(cos) B, written out in closed form;
 *   - the reweighted logits of those prototypes equal sum_j w_ij cos(x_j, W_cj) with w_ii = 1 and
 *     w_ij = alpha / t; reweight off: the cosine of the concatenation;
 *   - three sessions with the pre-trained block (ptm) and random prototypes: the complement's
 *     block indexing and reference classes, and the logits with beta and alpha / 2, against loops
 *     written from the spec;
 *   - the class means over a group of one, and a label outside the session refused.
 * Every value is O(1) and each result is a short fp32 sum of products rounded once from double,
 * so |got - ref| <= 1e-6 (a few ulp of values below 8) bounds the fp32 storage and the sgemm's
 * fp32 accumulation over D <= 16 terms. Exits non-zero on any failure. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "learn_test.h"

#include "../../src/learn/ease_internal.h"

#define TOL 1e-6

static double dotd(const double *a, const double *b, int n) {
  double s = 0.0;
  for (int i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

static double cosd(const double *a, const double *b, int n) {
  return dotd(a, b, n) / (sqrt(dotd(a, a, n)) * sqrt(dotd(b, b, n)));
}

/* o.5: session 0 = classes {0, 1}, session 1 = {2, 3}; W rows [block 0 | block 1]. */
static void test_two_sessions(void) {
  enum { D = 3, LD = 2 * D };
  const double a0[D] = {1, 0, 0}, a1[D] = {0, 0, 1};  /* old classes, subspace 0 */
  const double r2[D] = {1, 1, 0}, r3[D] = {0, 0, 2};  /* new classes, subspace 0 */
  const double b2[D] = {1, 2, 3}, b3[D] = {-1, 0, 1}; /* new classes, subspace 1 */
  const double *blk0[4] = {a0, a1, r2, r3}, *blk1[4] = {NULL, NULL, b2, b3};
  float W[4 * LD] = {0};
  for (int c = 0; c < 4; c++)
    for (int j = 0; j < D; j++) {
      W[c * LD + j] = (float)blk0[c][j];
      if (blk1[c]) W[c * LD + D + j] = (float)blk1[c][j];
    }
  const int64_t starts[3] = {0, 2, 4};
  CHECK_OK(learn_ease_complement(W, LD, starts, 1, 0, D));
  /* cos(a0, r2) = 1/sqrt2, cos(a0, r3) = 0; cos(a1, r2) = 0, cos(a1, r3) = 1 */
  const double p0 = exp(1 / sqrt(2.0)) / (exp(1 / sqrt(2.0)) + 1.0), p1 = 1.0 / (1.0 + exp(1.0));
  double want[2 * D];
  float got[2 * D];
  for (int j = 0; j < D; j++) {
    want[j] = p0 * b2[j] + (1 - p0) * b3[j];
    want[D + j] = p1 * b2[j] + (1 - p1) * b3[j];
    got[j] = W[0 * LD + D + j];
    got[D + j] = W[1 * LD + D + j];
  }
  compare("o.5 complement = softmax(cos) B", got, want, 2 * D, 0.0, TOL);
  float untouched[2 * LD + 2 * D];
  double orig[2 * LD + 2 * D];
  for (int c = 0; c < 2; c++)
    for (int j = 0; j < D; j++) untouched[c * D + j] = W[c * LD + j], orig[c * D + j] = blk0[c][j];
  for (int c = 2; c < 4; c++)
    for (int j = 0; j < D; j++) {
      untouched[2 * D + (c - 2) * LD + j] = W[c * LD + j];
      untouched[2 * D + (c - 2) * LD + D + j] = W[c * LD + D + j];
      orig[2 * D + (c - 2) * LD + j] = blk0[c][j];
      orig[2 * D + (c - 2) * LD + D + j] = blk1[c][j];
    }
  compare("real prototypes untouched", untouched, orig, 2 * D + 2 * LD, 0.0, 0.0);

  /* j.5 at t = 1 with alpha = 0.1: w_ii = 1, w_ij = 0.1 */
  const float x[2 * LD] = {0.5f, -1, 2, 1, 0.25f, -0.5f, -2, 1, 0, 0.5f, 1.5f, 1};
  const double alpha = 0.1;
  float z[2 * 4];
  double zr[2 * 4], zc[2 * 4], Wd[4 * LD], xd[2 * LD];
  to_double(Wd, W, 4 * LD);
  to_double(xd, x, 2 * LD);
  for (int b = 0; b < 2; b++)
    for (int c = 0; c < 4; c++) {
      const int i = c < 2 ? 0 : 1;
      double s = 0.0;
      for (int j = 0; j < 2; j++)
        s += (j == i ? 1.0 : alpha / 1.0) * cosd(xd + b * LD + j * D, Wd + c * LD + j * D, D);
      zr[b * 4 + c] = s;
      zc[b * 4 + c] = cosd(xd + b * LD, Wd + c * LD, LD);
    }
  CHECK_OK(learn_ease_logits(z, x, 2, W, LD, starts, 1, 0, 2, D, 1, alpha, 0.0));
  compare("o.5 reweighted logits (alpha / t)", z, zr, 8, 0.0, TOL);
  CHECK_OK(learn_ease_logits(z, x, 2, W, LD, starts, 1, 0, 2, D, 0, alpha, 0.0));
  compare("plain cosine of the concatenation", z, zc, 8, 0.0, TOL);
}

/* Three sessions of two classes, ptm = 1: blocks [PTM | set 0 | set 1 | set 2]. */
static void test_three_sessions_ptm(void) {
  enum { D = 16, NB = 4, LD = NB * D, K = 6 };
  const int64_t starts[4] = {0, 2, 4, 6};
  static float W[K * LD];
  static double Wd[K * LD], want[K * LD];
  fill_uniform(W, K * LD, 5, 1, -1.0f, 1.0f);
  /* j.4 step 3 as written: old session i, newer subspace d, R = classes of sessions d .. t */
  to_double(Wd, W, K * LD);
  memcpy(want, Wd, sizeof want);
  for (int i = 0; i < 2; i++)
    for (int d = i + 1; d <= 2; d++)
      for (int64_t a = starts[i]; a < starts[i + 1]; a++) {
        double S[K], z = 0.0;
        const int64_t r0 = starts[d], nr = K - r0;
        for (int64_t r = 0; r < nr; r++)
          z += S[r] = exp(cosd(Wd + a * LD + (1 + i) * D, Wd + (r0 + r) * LD + (1 + i) * D, D));
        for (int j = 0; j < D; j++) {
          double v = 0.0;
          for (int64_t r = 0; r < nr; r++) v += S[r] / z * Wd[(r0 + r) * LD + (1 + d) * D + j];
          want[a * LD + (1 + d) * D + j] = v;
        }
      }
  CHECK_OK(learn_ease_complement(W, LD, starts, 2, 1, D));
  compare("complement, 3 sessions with ptm", W, want, K * LD, 0.0, TOL);

  /* j.5 at t = 2: beta for the PTM block, 1 for the own set, alpha / 2 for the others */
  enum { N = 3 };
  static float x[N * LD], z[N * K];
  static double xd[N * LD], zr[N * K];
  fill_uniform(x, N * LD, 5, 2, -1.0f, 1.0f);
  to_double(xd, x, N * LD);
  to_double(Wd, W, K * LD);
  const double alpha = 0.05, beta = 0.7;
  for (int b = 0; b < N; b++)
    for (int c = 0; c < K; c++) {
      const int i = c / 2;
      double s = beta * cosd(xd + b * LD, Wd + c * LD, D);
      for (int set = 0; set < 3; set++)
        s += (set == i ? 1.0 : alpha / 2.0) *
             cosd(xd + b * LD + (1 + set) * D, Wd + c * LD + (1 + set) * D, D);
      zr[b * K + c] = s;
    }
  CHECK_OK(learn_ease_logits(z, x, N, W, LD, starts, 2, 1, NB, D, 1, alpha, beta));
  compare("reweighted logits, ptm, t = 2", z, zr, N * K, 0.0, TOL);
}

static void test_means(void) {
  enum { D = 2, LD = 6 };
  const float x[5 * 4] = {1, 2, 3, 4, 3, 2, 1, 0, 0, 0, 1, 1, 5, 5, 5, 5, -1, 1, -1, 1};
  const int32_t lab[5] = {2, 3, 2, 3, 3};
  float W[4 * LD] = {0};
  CHECK_OK(learn_ease_means(W, LD, x, lab, 5, 2 * D, 2, 4, dist_comm_self()));
  const float got[8] = {W[2 * LD], W[2 * LD + 1], W[2 * LD + 2], W[2 * LD + 3],
                        W[3 * LD], W[3 * LD + 1], W[3 * LD + 2], W[3 * LD + 3]};
  double want[8] = {0};
  for (int c = 0; c < 2; c++) {
    int n = 0;
    for (int i = 0; i < 5; i++) {
      if (lab[i] != 2 + c) continue;
      n++;
      for (int j = 0; j < 4; j++) want[c * 4 + j] += x[i * 4 + j];
    }
    for (int j = 0; j < 4; j++) want[c * 4 + j] /= n;
  }
  compare("class means of the session", got, want, 8, 0.0, TOL);
  CHECK(W[2 * LD + 4] == 0.0f && W[0] == 0.0f, "columns past the width and old rows untouched");
  const int32_t bad[5] = {2, 3, 2, 3, 1};
  scl_error_clear();
  scl_err err = learn_ease_means(W, LD, x, bad, 5, 2 * D, 2, 4, dist_comm_self());
  CHECK(err == SCL_ERR_ARG && strstr(scl_error_message(), "outside the session"),
        "a label outside the session is refused: %s", scl_error_message());
  scl_error_clear();
}

int main(void) {
  test_two_sessions();
  test_three_sessions_ptm();
  test_means();
  printf("test_ease: %s\n", failures ? "FAILED" : "all checks passed");
  return failures ? 1 : 0;
}
