/* nn_harness.h: the harness of the kernel and model-gradient tests (tests/nn, tests/train):
 * buffers, seeded random data, the element-wise comparison that prints its worst element, and
 * the central finite-difference checker (docs/conventions.md 12a-b). Failures count in
 * scl_check.h's one `failures` counter.
 *
 * Finite differences: the loss is L = sum_i w_i y_i accumulated in double over a float
 * forward; each input element is moved by +-eps (the step actually taken after rounding to
 * float is what divides), and (L+ - L-) / (h+ - h-) is compared with the analytic gradient.
 * A check passes when max |fd - analytic| <= tol * max |analytic| over the tensor, i.e. relative
 * to its largest element: float rounding in the forward makes individual tiny elements noisy. */
#ifndef SAFECL_TESTS_NN_HARNESS_H
#define SAFECL_TESTS_NN_HARNESS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safecl/core.h"
#include "scl_check.h"

/* Every test buffer, zeroed, released together at the end (so that ASan's leak check stays quiet). */
static void *buffers[8192];
static int n_buffers = 0;

static inline float *buf(int64_t n) {
  float *p = NULL;
  if (n_buffers == 8192 ||
      scl_calloc((size_t)(n > 0 ? n : 1) * sizeof(float), "test buffer", (void **)&p)) {
    scl_log_error_traceback();
    exit(2);
  }
  buffers[n_buffers++] = p;
  return p;
}

static inline void release_buffers(void) {
  while (n_buffers > 0) scl_free(buffers[--n_buffers]);
}

/* Uniform in [lo, hi), one stream per seed. */
static inline float *rand_buf(int64_t n, float lo, float hi, uint32_t seed) {
  float *p = buf(n);
  scl_rng rng;
  scl_rng_init(&rng, 42, SCL_STREAM_SYNTHETIC, 1, seed);
  for (int64_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * scl_rng_uniformf(&rng);
  return p;
}

static inline float *copy_buf(const float *src, int64_t n) {
  float *p = buf(n);
  memcpy(p, src, (size_t)n * sizeof(float));
  return p;
}

/* |got - ref| <= atol + rtol |ref| everywhere; prints the worst element. */
static inline void check(const char *what, const float *got, const float *ref, int64_t n,
                         double atol, double rtol) {
  int64_t worst = 0, imax = 0;
  double worst_excess = -INFINITY, max_abs = 0.0;
  int finite = 1;
  for (int64_t i = 0; i < n; i++) {
    double d = fabs((double)got[i] - (double)ref[i]);
    double excess = d - (atol + rtol * fabs((double)ref[i]));
    if (!isfinite(got[i])) finite = 0;
    if (excess > worst_excess) worst_excess = excess, worst = i;
    if (d > max_abs) max_abs = d, imax = i;
  }
  int ok = finite && (n == 0 || worst_excess <= 0.0);
  printf(
      "%s %-46s max_abs_err=%.2e at %lld (got %.8g ref %.8g); worst vs tol at %lld; "
      "tol %.0e + %.0e*|ref|\n",
      ok ? "PASS" : "FAIL", what, max_abs, (long long)imax, n ? got[imax] : 0.0,
      n ? ref[imax] : 0.0, (long long)worst, atol, rtol);
  if (!ok) failures++;
}

/* max |got - ref| <= tol * max |ref|: a gradient tensor compared relative to its largest
 * element. With `spread` (NULL: none), element i may also differ by spread[i], the reference's
 * own error estimate (see fd_check_ex). */
static inline void check_rel_spread(const char *what, const float *got, const double *ref,
                                    const double *spread, int64_t n, double tol) {
  double max_ref = 0.0, max_abs = 0.0, worst = -INFINITY;
  int64_t imax = 0;
  int finite = 1;
  for (int64_t i = 0; i < n; i++)
    if (fabs(ref[i]) > max_ref) max_ref = fabs(ref[i]);
  for (int64_t i = 0; i < n; i++) {
    double d = fabs((double)got[i] - ref[i]);
    if (!isfinite(got[i])) finite = 0;
    if (d > max_abs) max_abs = d, imax = i;
    const double excess = d - tol * max_ref - (spread ? spread[i] : 0.0);
    if (excess > worst) worst = excess;
  }
  const double rel = max_ref > 0 ? max_abs / max_ref : max_abs;
  const int ok = finite && max_ref > 0 && (n == 0 || worst <= 0.0);
  printf(
      "%s %-46s max_abs_err=%.2e at %lld (analytic %.8g fd %.8g%s%.1e); max|fd|=%.2e rel=%.2e "
      "(tol %.0e%s)%s\n",
      ok ? "PASS" : "FAIL", what, max_abs, (long long)imax, n ? got[imax] : 0.0,
      n ? ref[imax] : 0.0, spread ? " +- " : "", spread && n ? spread[imax] : 0.0, max_ref, rel,
      tol, spread ? " + fd spread" : "", max_ref > 0 ? "" : " ZERO GRADIENT");
  if (!ok) failures++;
}

static inline void check_rel(const char *what, const float *got, const double *ref, int64_t n,
                             double tol) {
  check_rel_spread(what, got, ref, NULL, n, tol);
}

typedef double (*fd_loss)(void *ctx);

/* Central differences of loss with respect to x[0..n): out[i] = dL/dx_i. */
static inline void fd_grad(double *out, float *x, int64_t n, fd_loss loss, void *ctx, double eps) {
  for (int64_t i = 0; i < n; i++) {
    const float save = x[i];
    x[i] = (float)((double)save + eps);
    const double hp = (double)x[i] - (double)save, lp = loss(ctx);
    x[i] = (float)((double)save - eps);
    const double hm = (double)x[i] - (double)save, lm = loss(ctx);
    x[i] = save;
    out[i] = (lp - lm) / (hp - hm);
  }
}

/* Finite differences of loss w.r.t. x compared with the analytic gradient `grad`. With
 * richardson set, R = (4 fd(eps / 2) - fd(eps)) / 3 cancels the eps^2 term, so that a larger eps
 * (less float noise) keeps the truncation error small, and the two estimates also bound R's own
 * error: with fd(h) = g + a h^2 + n_h, where n_h is the loss's rounding noise divided by h,
 * R - g = (4 n_{eps/2} - n_eps) / 3 + O(eps^4) while fd(eps) - fd(eps/2) = 3/4 a eps^2 +
 * n_eps - n_{eps/2}. The noise of a float forward depends on the machine's kernels (AVX2 and
 * AVX-512 round differently), so each element may differ from R by 2 |fd(eps) - fd(eps/2)| on
 * top of tol * max |R|: a gradient that is wrong by more than the noise still fails. */
static inline void fd_check_ex(const char *what, float *x, const float *grad, int64_t n,
                               fd_loss loss, void *ctx, double eps, double tol, int richardson) {
  double *fd = malloc((size_t)(n > 0 ? n : 1) * 3 * sizeof(double));
  if (!fd) exit(2);
  fd_grad(fd, x, n, loss, ctx, eps);
  if (richardson) {
    double *half = fd + n, *spread = fd + 2 * n;
    fd_grad(half, x, n, loss, ctx, eps / 2);
    for (int64_t i = 0; i < n; i++) {
      spread[i] = 2.0 * fabs(fd[i] - half[i]);
      fd[i] = (4.0 * half[i] - fd[i]) / 3.0;
    }
    check_rel_spread(what, grad, fd, spread, n, tol);
  } else {
    check_rel(what, grad, fd, n, tol);
  }
  free(fd);
}

static inline void fd_check(const char *what, float *x, const float *grad, int64_t n, fd_loss loss,
                            void *ctx, double eps, double tol) {
  fd_check_ex(what, x, grad, n, loss, ctx, eps, tol, 0);
}

/* sum_i w_i y_i in double. */
static inline double weighted_sum(const float *w, const float *y, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; i++) s += (double)w[i] * (double)y[i];
  return s;
}

#endif /* SAFECL_TESTS_NN_HARNESS_H */
