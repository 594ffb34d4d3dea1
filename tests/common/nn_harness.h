/* nn_harness.h: the harness of the kernel and model-gradient tests (tests/nn, tests/train):
 * buffers, seeded random data, the element-wise comparison that prints its worst element, and
 * the central finite-difference checker (docs/conventions.md 12a-b). Failures count in
 * scl_check.h's one `failures` counter.
 *
 * Finite differences: the loss is L = sum_i w_i y_i accumulated in double over a float
 * forward; each input element is moved by +-eps (the step actually taken after rounding to
 * float is what divides), and (L+ - L-) / (h+ - h-) is compared with the analytic gradient.
 * A check passes when max |fd - analytic| <= tol * max |fd| over the tensor, i.e. relative to
 * its largest element, plus the finite difference's rounding noise, sampled at the point
 * (fd_noise): float rounding in the forward makes individual tiny elements noisy. */
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

/* max |got - ref| <= tol * max |ref| + noise: a gradient tensor compared relative to its largest
 * element, each element also allowed `noise` (0: none), the bound on the reference's own
 * rounding noise (fd_noise). */
static inline void check_rel_noise(const char *what, const float *got, const double *ref, int64_t n,
                                   double tol, double noise) {
  double max_ref = 0.0, max_abs = 0.0;
  int64_t imax = 0;
  int finite = 1;
  for (int64_t i = 0; i < n; i++)
    if (fabs(ref[i]) > max_ref) max_ref = fabs(ref[i]);
  for (int64_t i = 0; i < n; i++) {
    double d = fabs((double)got[i] - ref[i]);
    if (!isfinite(got[i])) finite = 0;
    if (d > max_abs) max_abs = d, imax = i;
  }
  const double rel = max_ref > 0 ? max_abs / max_ref : max_abs, bound = tol * max_ref + noise;
  const int ok = finite && max_ref > 0 && max_abs <= bound;
  printf(
      "%s %-46s max_abs_err=%.2e at %lld (analytic %.8g fd %.8g); max|fd|=%.2e rel=%.2e "
      "(tol %.0e%s%.1e: %.2f of the bound)%s\n",
      ok ? "PASS" : "FAIL", what, max_abs, (long long)imax, n ? got[imax] : 0.0,
      n ? ref[imax] : 0.0, max_ref, rel, tol, noise > 0 ? " + fd noise " : " ", noise,
      bound > 0 ? max_abs / bound : INFINITY, max_ref > 0 ? "" : " ZERO GRADIENT");
  if (!ok) failures++;
}

static inline void check_rel(const char *what, const float *got, const double *ref, int64_t n,
                             double tol) {
  check_rel_noise(what, got, ref, n, tol, 0.0);
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

/* The rounding noise of a float forward near x. The loss as computed is L(x) + e(x), with e the
 * forward's rounding error, which depends on the machine's kernels (AVX2 and AVX-512 sum in
 * other orders) and varies at the scale of a few ulps. For FD_NOISE_SAMPLES random directions d,
 * every element of x moved by +-1e-4 eps (hundreds of ulps, so every rounding downstream
 * changes), L(x + d) + L(x - d) - 2 L(x) is d^T H d (at most n 1e-8 eps^2 max |H|, far below
 * the rounding error) plus e(x + d) + e(x - d) - 2 e(x); the first-order part left by float
 * steps that are not exactly symmetric, sum g_j (d+_j + d-_j), is removed with the analytic
 * gradient (a wrong one moves this by its error times a few ulps of x, nothing). Returns the
 * largest magnitude, delta, taken as the bound on |e| over the finite-difference points (a sample
 * combines four values of e, so it is about 2.5 times their typical size). */
#define FD_NOISE_SAMPLES 8
static inline double fd_noise(float *x, const float *grad, int64_t n, fd_loss loss, void *ctx,
                              double eps) {
  float *save = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
  double *step = malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
  if (!save || !step) exit(2);
  memcpy(save, x, (size_t)n * sizeof(float));
  scl_rng rng;
  scl_rng_init(&rng, 42, SCL_STREAM_SYNTHETIC, 3, (uint32_t)n);
  const double l0 = loss(ctx);
  double delta = 0.0;
  for (int k = 0; k < FD_NOISE_SAMPLES; k++) {
    double first = 0.0;
    for (int64_t j = 0; j < n; j++) {
      step[j] = (scl_rng_uniform(&rng) < 0.5 ? -1e-4 : 1e-4) * eps;
      x[j] = (float)((double)save[j] + step[j]);
      first += (double)grad[j] * ((double)x[j] - (double)save[j]);
    }
    const double lp = loss(ctx);
    for (int64_t j = 0; j < n; j++) {
      x[j] = (float)((double)save[j] - step[j]);
      first += (double)grad[j] * ((double)x[j] - (double)save[j]);
    }
    const double lm = loss(ctx), sample = fabs(lp + lm - 2.0 * l0 - first);
    if (sample > delta) delta = sample;
  }
  memcpy(x, save, (size_t)n * sizeof(float));
  free(save);
  free(step);
  return delta;
}

/* Finite differences of loss w.r.t. x compared with the analytic gradient `grad`, element by
 * element within tol * max |fd| + the finite difference's rounding noise. With |e| <= delta
 * (fd_noise), fd(h) = (L(x+h) - L(x-h)) / 2h carries noise up to delta / h. With richardson
 * set, R = (4 fd(eps / 2) - fd(eps)) / 3 cancels the eps^2 term of the truncation error, so
 * that a larger eps (less noise) keeps the truncation error small, at the price of noise up to
 * (4 * 2 delta / eps + delta / eps) / 3 = 3 delta / eps. tol is left for the truncation error
 * and the analytic gradient's own float rounding; a gradient wrong by more than the noise still
 * fails, and a tensor with a small gradient is not failed by the forward's noise (prefix.1.key's
 * gradient of 2e-2 against noise of 1.2e-4 failed a pure relative 5e-3 on one kernel). */
static inline void fd_check_ex(const char *what, float *x, const float *grad, int64_t n,
                               fd_loss loss, void *ctx, double eps, double tol, int richardson) {
  double *fd = malloc((size_t)(n > 0 ? n : 1) * 2 * sizeof(double));
  if (!fd) exit(2);
  fd_grad(fd, x, n, loss, ctx, eps);
  const double delta = fd_noise(x, grad, n, loss, ctx, eps);
  if (richardson) {
    double *half = fd + n;
    fd_grad(half, x, n, loss, ctx, eps / 2);
    for (int64_t i = 0; i < n; i++) fd[i] = (4.0 * half[i] - fd[i]) / 3.0;
  }
  check_rel_noise(what, grad, fd, n, tol, (richardson ? 3.0 : 1.0) * delta / eps);
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
