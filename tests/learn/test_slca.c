/* test_slca.c: SLCA's feature-side pieces (slca.h, docs/methods.md k.3-k.4, o.6):
 *   - the mean shrink factor (0.91 for a class of session 0 at t = 9, 1 for the current session);
 *   - linalg_cholesky_f64: L L^T = A within the factorisation's rounding, upper triangle zero, a
 *     matrix that is not positive definite refused;
 *   - Gaussian samples: sample mean and covariance of 40,000 draws within 5 standard errors of
 *     shrink x mean and the covariance, and every sample a function of its key alone;
 *   - class statistics against a two-pass double computation here (float32 storage rounding);
 *     a class with one image and a label outside the session refused;
 *   - the logit-normalised CE: its gradient by central differences in double, tau <= 0 equal to
 *     the plain CE, a block of zero logits;
 *   - classifier alignment: K_seen mini-batches per epoch, rows of unseen classes untouched, the
 *     same head from a second run (the samples are keyed, not drawn from a running state), and a
 *     head aligned on six well-separated Gaussians classifying fresh draws of them. */
#include <math.h>
#include <string.h>

#include "learn_test.h"
#include "safecl/linalg.h"
#include "safecl/slca.h"

static void test_shrink(void) {
  printf("shrink factor\n");
  compare_scalar("session 0 at t = 9", learn_slca_shrink(0, 9), 0.91, 1e-15);
  compare_scalar("session 9 at t = 9", learn_slca_shrink(9, 9), 1.0, 1e-15);
  compare_scalar("session 1 at t = 3", learn_slca_shrink(1, 3), 0.95, 1e-15);
}

/* A (n, n) = M M^T / n + ridge I with M uniform in (-1, 1): symmetric positive definite. */
static void spd(double *A, int64_t n, uint32_t tag, double ridge) {
  float *M = talloc((size_t)(n * n), sizeof(float));
  fill_uniform(M, n * n, 11, tag, -1.0f, 1.0f);
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < n; j++) {
      double s = 0.0;
      for (int64_t k = 0; k < n; k++) s += (double)M[i * n + k] * M[j * n + k];
      A[i * n + j] = s / (double)n + (i == j ? ridge : 0.0);
    }
  free(M);
}

static void test_cholesky(void) {
  printf("linalg_cholesky_f64\n");
  const int64_t sizes[3] = {1, 7, 130};
  for (int s = 0; s < 3; s++) {
    const int64_t n = sizes[s];
    double *A = talloc((size_t)(n * n), sizeof(double)), *L = talloc((size_t)(n * n), 8);
    spd(A, n, (uint32_t)s, 0.1);
    memcpy(L, A, (size_t)(n * n) * sizeof(double));
    CHECK_OK(linalg_cholesky_f64(L, n));
    /* |L L^T - A| <= (n + 1) eps |L| |L|^T elementwise (Higham, Thm 10.3); |L||L|^T <= sum of
     * the row norms' product <= max_ii A (Cauchy-Schwarz on rows of L, whose squares sum to
     * A_ii). */
    double maxdiag = 0.0, worst = 0.0, upper = 0.0;
    for (int64_t i = 0; i < n; i++) maxdiag = fmax(maxdiag, A[i * n + i]);
    for (int64_t i = 0; i < n; i++)
      for (int64_t j = 0; j < n; j++) {
        double v = 0.0;
        for (int64_t k = 0; k < n; k++) v += L[i * n + k] * L[j * n + k];
        worst = fmax(worst, fabs(v - A[i * n + j]));
        if (j > i) upper = fmax(upper, fabs(L[i * n + j]));
      }
    const double bound = (double)(n + 1) * 2.220446049250313e-16 * maxdiag;
    printf("  n=%-4lld |L L^T - A| = %.3e (bound %.3e), upper %.1e\n", (long long)n, worst, bound,
           upper);
    CHECK(worst <= bound, "n=%lld: |L L^T - A| = %.3e > %.3e", (long long)n, worst, bound);
    CHECK(upper == 0.0, "n=%lld: strictly upper triangle not zero", (long long)n);
    free(A), free(L);
  }
  double bad[4] = {1.0, 2.0, 2.0, 1.0}; /* eigenvalues 3 and -1 */
  scl_error_clear();
  CHECK(linalg_cholesky_f64(bad, 2) == SCL_ERR_LAPACK, "an indefinite matrix was factored");
  scl_error_clear();
}

/* Statistics of one class in a learn_slca_stats of C classes, written directly. */
static void set_class(learn_slca_stats *s, int64_t c, const double *mean, const double *cov) {
  const int64_t D = s->D;
  for (int64_t k = 0; k < D; k++) s->mean[c * D + k] = (float)mean[k];
  for (int64_t k = 0; k < D * D; k++) s->cov[c * D * D + k] = (float)cov[k];
  s->session[c] = 0;
}

static void test_sampling(void) {
  printf("Gaussian samples\n");
  const int64_t D = 6, n = 40000, C = 3, c = 2;
  const double shrink = 0.93;
  learn_slca_stats s;
  CHECK_OK(learn_slca_stats_create(&s, C, D));
  double mean[6] = {0.5, -1.0, 2.0, 0.0, 0.25, -0.75}, cov[36] = {0};
  spd(cov, D, 7, 0.05);
  set_class(&s, c, mean, cov);
  float *x = talloc((size_t)(n * D), sizeof(float)), *y = talloc((size_t)(4 * D), sizeof(float));
  double *work = talloc((size_t)learn_slca_sample_work(n, D), sizeof(double));
  CHECK_OK(learn_slca_sample(x, work, &s, c, shrink, n, 5, 77));
  /* the float32 statistics are what is sampled from */
  double m[6] = {0}, S[36] = {0}, sc[36];
  for (int64_t k = 0; k < D * D; k++) sc[k] = (double)s.cov[c * D * D + k];
  for (int64_t i = 0; i < n; i++)
    for (int64_t k = 0; k < D; k++) m[k] += x[i * D + k] / (double)n;
  for (int64_t i = 0; i < n; i++)
    for (int64_t a = 0; a < D; a++)
      for (int64_t b = 0; b < D; b++)
        S[a * D + b] += (x[i * D + a] - m[a]) * (x[i * D + b] - m[b]) / (double)(n - 1);
  /* 5 standard errors: the mean's is sqrt(S_aa / n); a covariance element's is
   * sqrt((S_aa S_bb + S_ab^2) / n) for Gaussian data */
  double worst_m = 0.0, worst_s = 0.0;
  for (int64_t a = 0; a < D; a++) {
    const double mu = shrink * (double)s.mean[c * D + a];
    const double z = fabs(m[a] - mu) / sqrt(sc[a * D + a] / (double)n);
    worst_m = fmax(worst_m, z);
    for (int64_t b = 0; b < D; b++) {
      const double se = sqrt((sc[a * D + a] * sc[b * D + b] + sc[a * D + b] * sc[a * D + b]) / n);
      worst_s = fmax(worst_s, fabs(S[a * D + b] - sc[a * D + b]) / se);
    }
  }
  printf("  worst mean error %.2f standard errors, covariance %.2f (bound 5)\n", worst_m, worst_s);
  CHECK(worst_m <= 5.0, "sample mean %.2f standard errors away", worst_m);
  CHECK(worst_s <= 5.0, "sample covariance %.2f standard errors away", worst_s);
  /* rows 0..3 drawn alone (n = 4) use the stream indices 1 + c 4 + i: a different key */
  CHECK_OK(learn_slca_sample(y, work, &s, c, shrink, 4, 5, 77));
  CHECK(memcmp(x, y, (size_t)(4 * D) * sizeof(float)) != 0, "samples of two stream keys agree");
  CHECK_OK(learn_slca_sample(y, work, &s, c, shrink, 4, 5, 77));
  float *y2 = talloc((size_t)(4 * D), sizeof(float));
  CHECK_OK(learn_slca_sample(y2, work, &s, c, shrink, 4, 5, 77));
  CHECK(!memcmp(y, y2, (size_t)(4 * D) * sizeof(float)), "the same key gave other samples");
  scl_error_clear();
  CHECK(learn_slca_sample(y, work, &s, 0, 1.0, 4, 5, 77) == SCL_ERR_ARG,
        "a class without statistics was sampled");
  scl_error_clear();
  free(x), free(y), free(y2), free(work);
  learn_slca_stats_free(&s);
}

static void test_stats(void) {
  printf("class statistics\n");
  const int64_t D = 5, C = 4, n = 23;
  learn_slca_stats s;
  CHECK_OK(learn_slca_stats_create(&s, C, D));
  float *f = talloc((size_t)(n * D), sizeof(float));
  int32_t *lab = talloc((size_t)n, sizeof(int32_t));
  fill_uniform(f, n * D, 3, 1, -2.0f, 3.0f);
  for (int64_t i = 0; i < n; i++) lab[i] = (int32_t)(1 + (i * 7) % 2);
  CHECK_OK(learn_slca_stats_fit(&s, dist_comm_self(), f, lab, n, 1, 3, 4));
  for (int64_t c = 1; c < 3; c++) {
    double mu[5] = {0}, cov[25] = {0}, cnt = 0.0;
    for (int64_t i = 0; i < n; i++)
      if (lab[i] == c) {
        cnt += 1.0;
        for (int64_t k = 0; k < D; k++) mu[k] += f[i * D + k];
      }
    for (int64_t k = 0; k < D; k++) mu[k] /= cnt;
    for (int64_t i = 0; i < n; i++)
      if (lab[i] == c)
        for (int64_t a = 0; a < D; a++)
          for (int64_t b = 0; b < D; b++)
            cov[a * D + b] += (f[i * D + a] - mu[a]) * (f[i * D + b] - mu[b]) / (cnt - 1.0);
    for (int64_t a = 0; a < D; a++) cov[a * D + a] += 1e-4;
    /* double sums in another order (~1e-15), then one rounding to float32 (2^-24 relative) */
    compare("mean", s.mean + c * D, mu, D, 1e-7, 0.0);
    compare("covariance + 1e-4 I", s.cov + c * D * D, cov, D * D, 1e-7, 0.0);
    CHECK(s.session[c] == 4, "class %lld: session %lld", (long long)c, (long long)s.session[c]);
  }
  CHECK(s.session[0] == -1 && s.session[3] == -1, "classes outside the session were touched");
  scl_error_clear();
  lab[0] = 3;
  CHECK(learn_slca_stats_fit(&s, dist_comm_self(), f, lab, n, 1, 3, 4) == SCL_ERR_ARG,
        "a label outside the session was accepted");
  scl_error_clear();
  CHECK(learn_slca_stats_fit(&s, dist_comm_self(), f, lab, 1, 3, 4, 4) == SCL_ERR_ARG,
        "a class of one image was accepted");
  scl_error_clear();
  free(f), free(lab);
  learn_slca_stats_free(&s);
}

typedef struct ce_ctx {
  float *z;
  double *zd;
  const int64_t *y, *bounds;
  int64_t B, K;
  int nb;
  double tau;
  double *work;
} ce_ctx;

static double ce_at(void *p) {
  ce_ctx *c = p;
  for (int64_t i = 0; i < c->B * c->K; i++) c->z[i] = (float)c->zd[i];
  return learn_slca_lognorm_ce(NULL, c->work, c->z, c->y, c->B, c->K, c->bounds, c->nb, c->tau,
                               1.0);
}

static void test_lognorm(void) {
  printf("logit-normalised CE\n");
  enum { B = 3, K = 7 };
  const int64_t bounds[4] = {0, 2, 5, 7}, y[B] = {1, 4, 6};
  float z[B * K], dz[B * K], dz2[B * K];
  double zd[B * K], fd[B * K], work[K];
  fill_uniform(z, B * K, 9, 2, -1.0f, 1.0f);
  z[0] = z[1] = 0.0f; /* row 0's first block has norm 0 */
  const double taus[2] = {0.1, 1.0};
  for (int k = 0; k < 2; k++) {
    to_double(zd, z, B * K);
    ce_ctx c = {z, zd, y, bounds, B, K, 3, taus[k], work};
    memset(dz, 0, sizeof dz);
    learn_slca_lognorm_ce(dz, work, z, y, B, K, bounds, 3, taus[k], 1.0);
    /* h = 2^-12: z +- h is exact in float32 for |z| < 1 - h. The central difference's
     * truncation is h^2 / 6 x the third derivative; each derivative brings a factor 1 / (nbar
     * tau) (<= 15 here), so relative to the gradient it is about 1e-8 x 15^2 = 2e-6; the
     * gradient's float32 rounding adds 6e-8 */
    fd_grad(fd, zd, B * K, 1.0 / 4096.0, ce_at, &c);
    to_double(zd, z, B * K);
    compare(taus[k] < 0.5 ? "dCE/dz, tau 0.1 (smooth)" : "dCE/dz, tau 1 (smooth)", dz + 2, fd + 2,
            B * K - 2, 1e-5, 1e-9);
    /* At the zero block the norm is |h| on both sides: the central difference drops the norm
     * term, as autograd does, but sees nbar moved by h / 3 (relative <= 2.4e-4 / 3 / 0.3 here) */
    compare(taus[k] < 0.5 ? "dCE/dz, tau 0.1 (zero block)" : "dCE/dz, tau 1 (zero block)", dz, fd,
            2, 1e-3, 1e-9);
  }
  memset(dz, 0, sizeof dz);
  memset(dz2, 0, sizeof dz2);
  const double a = learn_slca_lognorm_ce(dz, work, z, y, B, K, bounds, 3, 0.0, 0.5);
  const double b = learn_ce_loss(dz2, z, y, B, K, 0.5);
  CHECK(a == b && !memcmp(dz, dz2, sizeof dz), "tau 0 is not the plain CE");
  const int64_t bad[B] = {1, 7, 0};
  CHECK(isnan(learn_slca_lognorm_ce(NULL, work, z, bad, B, K, bounds, 3, 0.1, 1.0)),
        "a label outside [0, K) gave a number");
}

static void test_align(void) {
  printf("classifier alignment\n");
  const int64_t C = 8, D = 4, n = 16;
  const int64_t bounds[4] = {0, 2, 4, 6};
  learn_slca_stats s;
  CHECK_OK(learn_slca_stats_create(&s, C, D));
  for (int64_t c = 0; c < 6; c++) {
    double *mean = talloc((size_t)D, sizeof(double)), *cov = talloc((size_t)(D * D), 8);
    for (int64_t k = 0; k < D; k++)
      mean[k] = 4.0 * (k == c % D) - 4.0 * (k == (c + 1) % D && c >= D);
    spd(cov, D, (uint32_t)(20 + c), 0.1);
    set_class(&s, c, mean, cov);
    s.session[c] = c / 2;
    free(mean), free(cov);
  }
  const int64_t H = learn_slca_head_count(C, D);
  float *h1 = talloc((size_t)H, sizeof(float)), *h2 = talloc((size_t)H, sizeof(float));
  fill_uniform(h1, H, 4, 3, -0.05f, 0.05f);
  memcpy(h2, h1, (size_t)H * sizeof(float));
  learn_slca_align_cfg cfg = {3, n, 0.01, 0.9, 5e-4, 0.1, 42};
  learn_slca_align_log log1, log2;
  CHECK_OK(learn_slca_align(h1, C, D, &s, bounds, 2, &cfg, dist_comm_self(), &log1));
  printf("  %lld mini-batches over %lld epochs, epoch losses %.4f %.4f %.4f\n",
         (long long)log1.batches, (long long)cfg.epochs, log1.epoch_loss[0], log1.epoch_loss[1],
         log1.epoch_loss[2]);
  CHECK(log1.batches == 6 * cfg.epochs, "%lld mini-batches, K_seen x epochs = %lld",
        (long long)log1.batches, (long long)(6 * cfg.epochs));
  const int64_t hb = learn_slca_head_b(C, D);
  CHECK(!memcmp(h1 + 6 * D, h2 + 6 * D, (size_t)(2 * D) * sizeof(float)) &&
            !memcmp(h1 + hb + 6, h2 + hb + 6, 2 * sizeof(float)),
        "rows of unseen classes moved");
  CHECK(memcmp(h1, h2, (size_t)(6 * D) * sizeof(float)) != 0, "the seen rows did not move");
  CHECK_OK(learn_slca_align(h2, C, D, &s, bounds, 2, &cfg, dist_comm_self(), &log2));
  CHECK(!memcmp(h1, h2, (size_t)H * sizeof(float)), "a second alignment gave another head");
  /* aligned for 30 epochs of 64 samples per class, the head classifies fresh draws of the six
   * Gaussians (means at least 4 apart against standard deviations below about 1.2: at least 80%
   * right is asked); a random head would be right 1 in 6 */
  {
    const int64_t m = 200;
    learn_slca_align_cfg long_cfg = {30, 64, 0.01, 0.9, 5e-4, 0.1, 42};
    memcpy(h1, h2, (size_t)H * sizeof(float));
    CHECK_OK(learn_slca_align(h1, C, D, &s, bounds, 2, &long_cfg, dist_comm_self(), &log2));
    float *x = talloc((size_t)(m * D), sizeof(float));
    double *work = talloc((size_t)learn_slca_sample_work(m, D), sizeof(double));
    int64_t right = 0;
    for (int64_t c = 0; c < 6; c++) {
      CHECK_OK(learn_slca_sample(x, work, &s, c, 1.0, m, 99, 12345));
      for (int64_t i = 0; i < m; i++) {
        int64_t best = 0;
        double bv = -INFINITY;
        for (int64_t k = 0; k < 6; k++) {
          double v = h1[hb + k];
          for (int64_t j = 0; j < D; j++) v += (double)h1[k * D + j] * x[i * D + j];
          if (v > bv) bv = v, best = k;
        }
        right += best == c;
      }
    }
    printf("  aligned head: %.1f%% of fresh samples of the six classes right\n",
           100.0 * (double)right / (double)(6 * m));
    CHECK(right >= 8 * 6 * m / 10, "the aligned head classifies %lld of %lld samples",
          (long long)right, (long long)(6 * m));
    free(x), free(work);
  }
  scl_error_clear();
  CHECK(learn_slca_align(h2, C, D, &s, bounds, 0, &cfg, dist_comm_self(), &log2) == SCL_ERR_ARG,
        "an alignment in session 1 was run");
  scl_error_clear();
  free(h1), free(h2);
  learn_slca_stats_free(&s);
}

int main(void) {
  test_shrink();
  test_cholesky();
  test_sampling();
  test_stats();
  test_lognorm();
  test_align();
  if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
  return failures ? 1 : 0;
}
