/* test_learn_misc.c: the learn checks that are not finite differences.
 *
 *   - `_ref` against the BLAS path for the cosine head (forward, backward) and the transfer loss,
 *     on sizes that are not multiples of any vector width;
 *   - backward semantics: accumulation (+=), NULL gradients skipped, the clamp branch of
 *     normalisation (a zero row gets g / 1e-12, no projection);
 *   - dropout: the mask of (seed, step, sample, site) is the same at every batch position and
 *     batch size, sites differ, the keep rate is 1 - p;
 *   - optimizers: SGD (momentum, dampening, nesterov) and Adam/AdamW against a double-precision
 *     transcription of torch's formulas, with two groups and a frozen gap;
 *   - the cosine schedule: closed form against torch's recursion, to 1e-12, for T_max = 20 over
 *     15 and 25 epochs (and further);
 *   - head init bounds and growth. */
#include "learn_test.h"

static void test_cosine_ref(void) {
  const int64_t B = 37, K = 23, D = 65;
  float *x = talloc(B * D, 4), *w = talloc(K * D, 4), *dl = talloc(B * K, 4), sg = 10.0f;
  float *l1 = talloc(B * K, 4), *l2 = talloc(B * K, 4);
  float *c1 = talloc(learn_cosine_cache_floats(B, K, D), 4);
  float *c2 = talloc(learn_cosine_cache_floats(B, K, D), 4);
  float *scr = talloc(learn_cosine_backward_scratch(B, K, D), 4);
  float *dx1 = talloc(B * D, 4), *dx2 = talloc(B * D, 4), *dw1 = talloc(K * D, 4);
  float *dw2 = talloc(K * D, 4), ds1 = 0.0f, ds2 = 0.0f;
  double *r = talloc(B * D + K * D + B * K, 8);
  fill_uniform(x, B * D, 11, 1, -1.0f, 1.0f);
  fill_uniform(w, K * D, 11, 2, -0.1f, 0.1f);
  fill_uniform(dl, B * K, 11, 3, -1.0f, 1.0f);
  memset(w + 5 * D, 0, (size_t)D * 4); /* a zero class row */
  learn_cosine_cache a = learn_cosine_cache_bind(c1, B, K, D),
                     b = learn_cosine_cache_bind(c2, B, K, D);
  learn_cosine_forward(l1, &a, x, w, &sg, B, K, D);
  learn_cosine_forward_ref(l2, &b, x, w, &sg, B, K, D);
  learn_cosine_backward(dx1, dw1, &ds1, scr, dl, x, w, &sg, &a, B, K, D);
  learn_cosine_backward_ref(dx2, dw2, &ds2, scr, dl, x, w, &sg, &b, B, K, D);
  to_double(r, l2, B * K);
  compare("cosine fwd BLAS vs _ref", l1, r, B * K, 1e-6, 0.0);
  to_double(r, dx2, B * D);
  compare("cosine dx BLAS vs _ref", dx1, r, B * D, 1e-6, 0.0);
  /* rows other than the zero one (whose gradient is 1e12 larger) */
  to_double(r, dw2, 5 * D);
  compare("cosine dW BLAS vs _ref (rows 0-4)", dw1, r, 5 * D, 1e-6, 0.0);
  to_double(r, dw2 + 5 * D, D);
  compare("cosine dW BLAS vs _ref (zero row)", dw1 + 5 * D, r, D, 1e-6, 0.0);
  to_double(r, &ds2, 1);
  compare("cosine dsigma BLAS vs _ref", &ds1, r, 1, 1e-6, 0.0);

  /* the zero row's gradient is dwn / 1e-12 exactly: recompute dwn directly */
  double maxg = 0.0;
  for (int64_t i = 0; i < D; i++) {
    double g = 0.0;
    for (int64_t bb = 0; bb < B; bb++) g += (double)sg * dl[bb * K + 5] * a.xn[bb * D + i];
    r[i] = g / 1e-12;
    maxg = fmax(maxg, fabs(r[i]));
  }
  compare("zero row dW = dwn / 1e-12", dw1 + 5 * D, r, D, 1e-5, 0.0);
  CHECK(maxg > 1e11, "zero-row gradient %.3e is not ~1e12-sized", maxg);

  /* accumulation: a second call adds the same again; NULL gradients are skipped */
  float *dx3 = talloc(B * D, 4);
  memcpy(dx3, dx1, (size_t)(B * D) * 4);
  learn_cosine_backward(dx3, NULL, NULL, scr, dl, x, w, &sg, &a, B, K, D);
  for (int64_t i = 0; i < B * D; i++) r[i] = 2.0 * dx1[i];
  compare("cosine backward accumulates", dx3, r, B * D, 1e-6, 0.0);
  free(x), free(w), free(dl), free(l1), free(l2), free(c1), free(c2), free(scr);
  free(dx1), free(dx2), free(dw1), free(dw2), free(r), free(dx3);
}

static void test_transfer_ref(void) {
  const int64_t B = 13, D = 50;
  float *f = talloc(B * D, 4), *p = talloc(B * D, 4), *d1 = talloc(B * D, 4);
  float *d2 = talloc(B * D, 4), *scr = talloc(learn_transfer_scratch(B, D), 4);
  double *r = talloc(B * D, 8);
  fill_uniform(f, B * D, 12, 1, -1.0f, 1.0f);
  fill_uniform(p, B * D, 12, 2, -1.0f, 1.0f);
  double l1 = learn_transfer_loss(d1, scr, f, p, B, D, 0.01, 10.0, 1.0);
  double l2 = learn_transfer_loss_ref(d2, scr, f, p, B, D, 0.01, 10.0, 1.0);
  compare_scalar("transfer loss BLAS vs _ref", l1, l2, 1e-6);
  to_double(r, d2, B * D);
  compare("transfer dfeat BLAS vs _ref", d1, r, B * D, 1e-5, 0.0);
  double l3 = learn_transfer_loss(NULL, scr, f, p, B, D, 0.01, 10.0, 1.0);
  compare_scalar("transfer loss without gradient", l3, l1, 0.0);
  free(f), free(p), free(d1), free(d2), free(scr), free(r);
}

static void test_dropout_masks(void) {
  const int64_t n = 4000;
  uint8_t *m1 = talloc(n, 1), *m2 = talloc(3 * n, 1), *m3 = talloc(n, 1);
  float *x = talloc(3 * n, 4), *y = talloc(3 * n, 4);
  fill_uniform(x, 3 * n, 13, 1, 0.5f, 1.0f);
  learn_dropout_mask(m1, n, 0.1f, 1993, 4, 42, 3);
  const int64_t idx[3] = {5, 9, 42}; /* sample 42 at position 2 of a batch of 3 */
  learn_dropout_forward(y, m2, x, idx, 3, n, 0.1f, 1993, 4, 3);
  CHECK(memcmp(m1, m2 + 2 * n, (size_t)n) == 0, "dropout mask depends on batch position");
  const int64_t idx1[1] = {42};
  learn_dropout_forward(y, m2, x, idx1, 1, n, 0.1f, 1993, 4, 3);
  CHECK(memcmp(m1, m2, (size_t)n) == 0, "dropout mask depends on batch size");
  learn_dropout_mask(m3, n, 0.1f, 1993, 4, 42, 4);
  CHECK(memcmp(m1, m3, (size_t)n) != 0, "two dropout sites share a mask");
  learn_dropout_mask(m3, n, 0.1f, 1993, 5, 42, 3);
  CHECK(memcmp(m1, m3, (size_t)n) != 0, "two steps share a mask");
  int64_t kept = 0;
  for (int64_t i = 0; i < n; i++) kept += m1[i];
  double rate = (double)kept / (double)n; /* binomial sd = sqrt(.09 / 4000) = 0.0047 */
  printf("  dropout keep rate %.4f (expected 0.9)\n", rate);
  CHECK(fabs(rate - 0.9) < 0.025, "keep rate %.4f", rate);
  learn_dropout_forward(y, m2, x, idx, 3, n, 0.0f, 1, 0, 0);
  CHECK(memcmp(x, y, (size_t)(3 * n) * 4) == 0 && m2[0] == 1, "p = 0 is not the identity");
  free(m1), free(m2), free(m3), free(x), free(y);
}

/* ---- optimizers against double transcriptions of torch's formulas ------------------------ */

#define NP 11
static const learn_param_group kGroups[2] = {{0, 6, 1.0, 5e-4},
                                             {8, 3, 0.25, 0.0}}; /* 6, 7 frozen */

static void sgd_ref(double *p, double *buf, const float *g, int64_t step, double lr,
                    const learn_sgd_cfg *c) {
  for (int k = 0; k < 2; k++)
    for (int64_t i = kGroups[k].offset; i < kGroups[k].offset + kGroups[k].count; i++) {
      double d = g[i] + kGroups[k].weight_decay * p[i];
      buf[i] = step == 0 ? d : c->momentum * buf[i] + (1.0 - c->dampening) * d;
      d = c->nesterov ? d + c->momentum * buf[i] : buf[i];
      p[i] -= lr * kGroups[k].lr_scale * d;
    }
}

static void adam_ref(double *p, double *m, double *v, const float *g, int64_t t, double lr,
                     const learn_adam_cfg *c) {
  for (int k = 0; k < 2; k++)
    for (int64_t i = kGroups[k].offset; i < kGroups[k].offset + kGroups[k].count; i++) {
      double l = lr * kGroups[k].lr_scale, wd = kGroups[k].weight_decay, gi = g[i];
      if (c->decoupled)
        p[i] *= 1.0 - l * wd;
      else
        gi += wd * p[i];
      m[i] = c->beta1 * m[i] + (1.0 - c->beta1) * gi;
      v[i] = c->beta2 * v[i] + (1.0 - c->beta2) * gi * gi;
      double denom = sqrt(v[i]) / sqrt(1.0 - pow(c->beta2, (double)t)) + c->eps;
      p[i] -= l / (1.0 - pow(c->beta1, (double)t)) * m[i] / denom;
    }
}

static void test_optimizers(void) {
  float p[NP], st1[NP], st2[NP], g[NP];
  double pd[NP], sd1[NP], sd2[NP];
  const learn_sgd_cfg sgd[3] = {{0.9, 0.0, 0}, {0.9, 0.1, 0}, {0.9, 0.0, 1}};
  const char *sname[3] = {"SGD momentum", "SGD dampening", "SGD nesterov"};
  for (int v = 0; v < 3; v++) {
    fill_uniform(p, NP, 14, 1, -1.0f, 1.0f);
    to_double(pd, p, NP);
    memset(st1, 0, sizeof st1), memset(sd1, 0, sizeof sd1);
    for (int64_t s = 0; s < 4; s++) {
      fill_uniform(g, NP, 14, 10 + (uint32_t)s, -1.0f, 1.0f);
      double lr = learn_lr_cosine(0.1, 0.0, 20, s);
      learn_sgd_step(p, st1, g, s, lr, &sgd[v], kGroups, 2);
      sgd_ref(pd, sd1, g, s, lr, &sgd[v]);
    }
    compare(sname[v], p, pd, NP, 1e-6, 0.0);
    CHECK(p[6] == pd[6] && p[7] == pd[7], "%s moved a frozen element", sname[v]);
  }
  for (int dec = 0; dec < 2; dec++) {
    learn_adam_cfg c = {0.9, 0.999, 1e-8, dec};
    fill_uniform(p, NP, 15, 1, -1.0f, 1.0f);
    to_double(pd, p, NP);
    memset(st1, 0, sizeof st1), memset(st2, 0, sizeof st2);
    memset(sd1, 0, sizeof sd1), memset(sd2, 0, sizeof sd2);
    for (int64_t t = 1; t <= 5; t++) {
      fill_uniform(g, NP, 15, 10 + (uint32_t)t, -1.0f, 1.0f);
      learn_adam_step(p, st1, st2, g, t, 1e-2, &c, kGroups, 2);
      adam_ref(pd, sd1, sd2, g, t, 1e-2, &c);
    }
    compare(dec ? "AdamW" : "Adam", p, pd, NP, 1e-6, 0.0);
    CHECK(p[6] == pd[6] && p[7] == pd[7], "Adam moved a frozen element");
  }
}

static void test_schedule(void) {
  double worst = 0.0;
  for (int64_t e = 0; e <= 45; e++) {
    double a = learn_lr_cosine(0.01, 0.0, 20, e), b = learn_lr_cosine_torch(0.01, 0.0, 20, e);
    worst = fmax(worst, fabs(a - b));
    CHECK(fabs(a - b) <= 1e-12, "epoch %lld: closed %.17g torch recursion %.17g", (long long)e, a,
          b);
  }
  printf("  cosine lr closed vs recursive, T_max 20, epochs 0-45: worst |d| = %.3e\n", worst);
  double last15 = learn_lr_cosine(0.01, 0.0, 20, 14);
  printf("  lr of epoch 14 (last of 15) = %.6g, of epoch 20 = %.3g, of epoch 24 = %.6g\n", last15,
         learn_lr_cosine(0.01, 0.0, 20, 20), learn_lr_cosine(0.01, 0.0, 20, 24));
  CHECK(fabs(last15 - 0.01 * (1 + cos(14 * 3.14159265358979323846 / 20)) / 2) < 1e-15, "epoch 14");
  learn_lr_schedule s = {LEARN_LR_CONSTANT, 0.05, 0.0, 20};
  CHECK(learn_lr_at(&s, 17) == 0.05, "constant schedule");
  s.kind = LEARN_LR_COSINE;
  CHECK(learn_lr_at(&s, 3) == learn_lr_cosine(0.05, 0.0, 20, 3), "learn_lr_at cosine");
}

static void test_init_grow(void) {
  const int64_t K = 4, D = 768;
  float *h = talloc(learn_cosine_params(K, D), 4), *g = talloc(learn_cosine_params(K + 3, D), 4);
  float *h2 = talloc(learn_cosine_params(K + 2, D), 4);
  learn_cosine_init(h, h + K * D, K, D, 1993, 0, 10.0f);
  learn_cosine_init(h2, h2 + (K + 2) * D, K + 2, D, 1993, 0, 10.0f);
  float bound = 1.0f / sqrtf((float)D), lo = 1, hi = -1;
  for (int64_t i = 0; i < K * D; i++) lo = fminf(lo, h[i]), hi = fmaxf(hi, h[i]);
  printf("  init range [%.5f, %.5f], bound %.5f, sigma %.1f\n", lo, hi, bound, h[K * D]);
  CHECK(lo >= -bound && hi <= bound && hi - lo > 1.9f * bound, "init range");
  CHECK(h[K * D] == 10.0f, "sigma init");
  CHECK(memcmp(h, h2, (size_t)(K * D) * 4) == 0, "a class's init row depends on K");
  h[K * D] = 7.25f;
  learn_cosine_grow(g, h, K, K + 3, D);
  int ok = memcmp(g, h, (size_t)(K * D) * 4) == 0 && g[(K + 3) * D] == 7.25f;
  for (int64_t i = K * D; i < (K + 3) * D; i++) ok &= g[i] == 0.0f;
  CHECK(ok, "learn_cosine_grow");
  free(h), free(g), free(h2);
}

int main(void) {
  printf("BLAS vs _ref, backward semantics\n");
  test_cosine_ref();
  test_transfer_ref();
  printf("dropout\n");
  test_dropout_masks();
  printf("optimizers and schedules\n");
  test_optimizers();
  test_schedule();
  printf("head init and growth\n");
  test_init_grow();
  if (failures)
    fprintf(stderr, "%d check(s) failed\n", failures);
  else
    printf("all checks passed\n");
  return failures ? 1 : 0;
}
