/* test_lae.c: LAE's test vectors (docs/methods.md o.7) and its planner costs: the offline
 * expert after n EMA steps with a constant online expert is theta + decay^n (theta_bar_0 -
 * theta); the ensemble predicts the argmax of the element-wise max of the two softmaxes (not of
 * their mean), over the seen classes only, ties to the lower class; learn_cost of the registry
 * row follows l.6 for both switch sets. */
#include <math.h>

#include "learn_test.h"
#include "safecl/lae.h"
#include "safecl/method.h"

/* n steps of learn_lae_ema against the closed form. The fp32 update off = a off + b on with
 * a = fl(decay), b = fl(1 - decay) rounds each product and the sum (3 u |values| per step, u =
 * 2^-24) and has a + b != 1 by up to an ulp, which moves the limit by (a + b - 1) |on| per step;
 * errors are carried forward with factor a < 1, so after n steps they are below
 * n (3 u + |a + b - 1|) max|values| (torch's update has the same rounding). */
static void test_ema(int64_t n, double decay) {
  const int64_t len = 257;
  float *on = talloc((size_t)len, sizeof(float)), *off = talloc((size_t)len, sizeof(float));
  double *want = talloc((size_t)len, sizeof(double));
  fill_uniform(on, len, 3, 1, -2.0f, 2.0f);
  fill_uniform(off, len, 3, 2, -2.0f, 2.0f);
  const double dn = pow(decay, (double)n);
  double mx = 0.0;
  for (int64_t i = 0; i < len; i++) {
    want[i] = on[i] + dn * ((double)off[i] - on[i]);
    mx = fmax(mx, fmax(fabs(on[i]), fabs(off[i])));
  }
  for (int64_t k = 0; k < n; k++) learn_lae_ema(off, on, len, decay);
  const double a = (float)decay, b = (float)(1.0 - decay);
  const double bound = (double)n * (3.0 * ldexp(1.0, -24) + fabs(a + b - 1.0)) * mx;
  double worst = 0.0;
  for (int64_t i = 0; i < len; i++) worst = fmax(worst, fabs(off[i] - want[i]));
  printf(
      "ema decay %g, %lld steps: max |off - (on + decay^n (off_0 - on))| = %.3e (bound %.3e, "
      "decay^n = %.6f)\n",
      decay, (long long)n, worst, bound, dn);
  CHECK(worst <= bound, "EMA after %lld steps off by %.3e > %.3e", (long long)n, worst, bound);
  free(on), free(off), free(want);
}

/* Logits whose softmaxes are exactly the given probabilities (log p; the shift is irrelevant). */
static void logits_of(float *out, const double *p, int64_t K) {
  for (int64_t k = 0; k < K; k++) out[k] = (float)log(p[k]);
}

static void test_ensemble(void) {
  enum { C = 4, K = 3 };
  /* row 0: max of the softmaxes [0.55, 0.50, 0.45] -> 0, their mean [0.30, 0.47, 0.23] -> 1;
   * row 1: online alone picks 0, the offline expert's 0.8 on class 2 wins; row 2: equal
   * probabilities, the lower class; every row has a huge logit in the unseen column 3 */
  const double pon[3][K] = {{0.55, 0.44, 0.01}, {0.5, 0.3, 0.2}, {0.25, 0.5, 0.25}};
  const double poff[3][K] = {{0.05, 0.50, 0.45}, {0.1, 0.1, 0.8}, {0.5, 0.25, 0.25}};
  float on[3 * C], off[3 * C];
  for (int r = 0; r < 3; r++) {
    logits_of(on + r * C, pon[r], K);
    logits_of(off + r * C, poff[r], K);
    on[r * C + K] = off[r * C + K] = 100.0f;
  }
  int32_t pred[3], alone[3];
  learn_lae_ensemble(pred, on, off, 3, C, K);
  learn_lae_ensemble(alone, on, NULL, 3, C, K);
  CHECK(pred[0] == 0, "ensemble row 0: %d, expected 0 (the max, not the mean, of the softmaxes)",
        pred[0]);
  CHECK(pred[1] == 2, "ensemble row 1: %d, expected 2", pred[1]);
  CHECK(pred[2] == 0, "ensemble row 2 (tie 0.5 / 0.5): %d, expected the lower class 0", pred[2]);
  CHECK(alone[0] == 0 && alone[1] == 0 && alone[2] == 1, "online alone: %d %d %d, expected 0 0 1",
        alone[0], alone[1], alone[2]);
  printf("ensemble predictions %d %d %d, online alone %d %d %d\n", pred[0], pred[1], pred[2],
         alone[0], alone[1], alone[2]);
}

/* l.6: head-only epochs 1 F, prefix epochs 2.05 F; test images one forward per expert. */
static void test_cost(void) {
  const learn_method_ops *ops = learn_method_find("lae");
  CHECK(ops && !strcmp(ops->category, "mixture") && !strcmp(ops->label, "LAE"),
        "registry row of lae");
  if (!ops) return;
  learn_method_cfg cfg = {.epochs_first = 5,
                          .epochs_later = 5,
                          .lae_freeze_epochs = 3,
                          .lae_freeze_first = 0,
                          .lae_ema_init = "authors"};
  const learn_cost a0 = ops->cost(&cfg, 0), a1 = ops->cost(&cfg, 1);
  CHECK(fabs(a0.train_passes - 10.25) < 1e-12 && a0.test_nets == 1,
        "authors session 1: %g passes, %d test nets (10.25, 1)", a0.train_passes, a0.test_nets);
  CHECK(fabs(a1.train_passes - 7.1) < 1e-12 && a1.test_nets == 2,
        "authors session 2: %g passes, %d test nets (7.1, 2)", a1.train_passes, a1.test_nets);
  cfg.lae_freeze_first = 1;
  cfg.lae_ema_init = "pilot";
  const learn_cost p0 = ops->cost(&cfg, 0);
  CHECK(fabs(p0.train_passes - 7.1) < 1e-12 && p0.test_nets == 2,
        "pilot session 1: %g passes, %d test nets (7.1, 2)", p0.train_passes, p0.test_nets);
}

int main(void) {
  test_ema(1000, 0.9999);
  test_ema(50, 0.9);
  test_ensemble();
  test_cost();
  printf(failures ? "FAILED: %d\n" : "all checks passed\n", failures);
  return failures != 0;
}
