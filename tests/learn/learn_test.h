/* learn_test.h: helpers shared by the learn tests: a CHECK that counts failures, deterministic
 * random fills from the counter RNG, a central finite-difference gradient in double, and a
 * tensor comparison |got - ref| <= atol + rtol * max|ref| that prints the worst element. */
#ifndef SAFECL_TESTS_LEARN_TEST_H
#define SAFECL_TESTS_LEARN_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safecl/core.h"
#include "safecl/learn.h"

#include "../common/scl_check.h"

/* Test allocations: calloc or exit; tests are main programs, so exiting is allowed here. */
static inline void *talloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size);
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  return p;
}

/* a[i] ~ U(lo, hi) from (seed, SCL_STREAM_SYNTHETIC, tag). */
static inline void fill_uniform(float *a, int64_t n, uint64_t seed, uint32_t tag, float lo,
                                float hi) {
  scl_rng rng;
  scl_rng_init(&rng, seed, SCL_STREAM_SYNTHETIC, tag, 0);
  for (int64_t i = 0; i < n; i++) a[i] = lo + (hi - lo) * scl_rng_uniformf(&rng);
}

static inline void to_double(double *d, const float *f, int64_t n) {
  for (int64_t i = 0; i < n; i++) d[i] = f[i];
}

/* Compares got (fp32) with ref (double); prints the worst error relative to max|ref|. */
static inline double compare(const char *name, const float *got, const double *ref, int64_t n,
                             double rtol, double atol) {
  double maxref = 0.0, worst = 0.0;
  int64_t at = 0;
  for (int64_t i = 0; i < n; i++) maxref = fmax(maxref, fabs(ref[i]));
  int bad = 0;
  for (int64_t i = 0; i < n; i++) {
    double e = fabs((double)got[i] - ref[i]);
    if (!(e <= atol + rtol * maxref)) bad = 1;
    if (e > worst || e != e) worst = e, at = i;
  }
  double rel = maxref > 0 ? worst / maxref : worst;
  printf("  %-34s n=%-5lld worst |d|=%.3e  rel-to-max=%.3e  (at %lld: got %.9g ref %.9g)\n", name,
         (long long)n, worst, rel, (long long)at, n ? (double)got[at] : 0.0, n ? ref[at] : 0.0);
  CHECK(!bad, "%s: worst error %.3e exceeds %.1e + %.1e * %.3e", name, worst, atol, rtol, maxref);
  return rel;
}

/* Scalar comparison with a relative tolerance. */
static inline void compare_scalar(const char *name, double got, double ref, double rtol) {
  double e = fabs(got - ref), rel = e / fmax(fabs(ref), 1e-300);
  printf("  %-34s got %.12g ref %.12g rel %.3e\n", name, got, ref, rel);
  CHECK(rel <= rtol || e <= 1e-300, "%s: rel error %.3e > %.1e", name, rel, rtol);
}

/* out[i] = (f(x + h e_i) - f(x - h e_i)) / 2h, perturbing x in place (x is part of ctx). */
typedef double (*fd_fn)(void *ctx);
static inline void fd_grad(double *out, double *x, int64_t n, double h, fd_fn f, void *ctx) {
  for (int64_t i = 0; i < n; i++) {
    double save = x[i];
    x[i] = save + h;
    double fp = f(ctx);
    x[i] = save - h;
    double fm = f(ctx);
    x[i] = save;
    out[i] = (fp - fm) / (2.0 * h);
  }
}

#endif /* SAFECL_TESTS_LEARN_TEST_H */
