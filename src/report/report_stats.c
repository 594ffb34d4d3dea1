/* report_stats.c: mean, sample standard deviation, Student-t quantiles and the paired 95%
 * interval of the report.
 *
 * The t quantile is computed, not tabled: the CDF comes from the regularized incomplete beta
 * I_x(df/2, 1/2) by Lentz's continued fraction (Numerical Recipes' betacf), and the quantile by
 * bisection on it. Bisection is slow by numerical standards (~60 CDF calls) but needs no
 * derivative or starting guess and cannot diverge; a report asks for a few hundred quantiles at
 * most. Non-finite inputs (a metric that is undefined for one trial) are skipped by the mean, so
 * `used` rather than `n` is the count a table must show. */
#include <math.h>

#include "report_internal.h"

void report_mean_std(const double *x, int n, double *mean, double *std, int *used) {
  double sum = 0.0;
  int k = 0;
  for (int i = 0; i < n; i++)
    if (isfinite(x[i])) {
      sum += x[i];
      k++;
    }
  *used = k;
  *mean = k ? sum / k : NAN;
  if (k < 2) {
    *std = NAN;
    return;
  }
  double ss = 0.0;
  for (int i = 0; i < n; i++)
    if (isfinite(x[i])) ss += (x[i] - *mean) * (x[i] - *mean);
  *std = sqrt(ss / (k - 1));
}

/* Continued fraction for the incomplete beta (modified Lentz), valid for x < (a+1)/(a+b+2). */
static double beta_cf(double a, double b, double x) {
  const double tiny = 1e-300, eps = 1e-16;
  double c = 1.0, d = 1.0 - (a + b) * x / (a + 1.0);
  if (fabs(d) < tiny) d = tiny;
  d = 1.0 / d;
  double h = d;
  for (int m = 1; m <= 20000; m++) {
    double m2 = 2.0 * m;
    double num = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2));
    d = 1.0 + num * d;
    c = 1.0 + num / c;
    if (fabs(d) < tiny) d = tiny;
    if (fabs(c) < tiny) c = tiny;
    d = 1.0 / d;
    h *= d * c;
    num = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0));
    d = 1.0 + num * d;
    c = 1.0 + num / c;
    if (fabs(d) < tiny) d = tiny;
    if (fabs(c) < tiny) c = tiny;
    d = 1.0 / d;
    double delta = d * c;
    h *= delta;
    if (fabs(delta - 1.0) < eps) break;
  }
  return h;
}

/* The regularized incomplete beta I_x(a, b). */
static double beta_inc(double a, double b, double x) {
  if (x <= 0.0) return 0.0;
  if (x >= 1.0) return 1.0;
  double lbt = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x);
  if (x < (a + 1.0) / (a + b + 2.0)) return exp(lbt) * beta_cf(a, b, x) / a;
  return 1.0 - exp(lbt) * beta_cf(b, a, 1.0 - x) / b;
}

double report_t_cdf(double t, double df) {
  if (isnan(t) || !(df > 0)) return NAN;
  if (isinf(t)) return t > 0 ? 1.0 : 0.0;
  double tail = 0.5 * beta_inc(0.5 * df, 0.5, df / (df + t * t));
  return t >= 0 ? 1.0 - tail : tail;
}

double report_t_quantile(double p, double df) {
  if (!(p > 0.0 && p < 1.0) || !(df > 0)) return NAN;
  if (p < 0.5) return -report_t_quantile(1.0 - p, df);
  if (p == 0.5) return 0.0;
  double lo = 0.0, hi = 1.0;
  while (report_t_cdf(hi, df) < p && hi < 1e300) hi *= 2.0;
  for (int i = 0; i < 400 && hi - lo > 1e-12 * (hi > 1.0 ? hi : 1.0); i++) {
    double mid = 0.5 * (lo + hi);
    if (report_t_cdf(mid, df) < p)
      lo = mid;
    else
      hi = mid;
  }
  return 0.5 * (lo + hi);
}

void report_mean_ci95(const double *d, int n, double *mean, double *lo, double *hi) {
  double std = NAN;
  int used = 0;
  report_mean_std(d, n, mean, &std, &used);
  *lo = *hi = NAN;
  if (used < 2) return;
  double half = report_t_quantile(0.975, used - 1) * std / sqrt((double)used);
  *lo = *mean - half;
  *hi = *mean + half;
}
