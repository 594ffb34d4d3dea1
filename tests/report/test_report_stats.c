/* test_report_stats.c: the report's statistics, escaping and config-text helpers.
 *
 * Student-t quantiles against published table values (t(0.975, df) for df 1, 2, 4, 10, 30, the
 * normal limit, and a lower tail), the CDF at known points, mean / sample std with non-finite
 * values skipped, the paired 95% interval on hand-computed data, each escaper on the characters
 * its format treats specially, and the `key = value;` parsing the report uses to place trials
 * and to name hyperparameter points. Exits non-zero on any failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/report/report_internal.h"

#include "../common/scl_check.h"

static void check_close(double got, double want, double tol, const char *what) {
  CHECK(fabs(got - want) <= tol, "%s: got %.6f, want %.6f (tol %g)", what, got, want, tol);
}

static void test_t(void) {
  /* Table values, 3 decimals (e.g. NIST/SEMATECH e-Handbook, table of t critical values). */
  static const struct {
    double p, df, t;
  } table[] = {{0.975, 1, 12.706}, {0.975, 2, 4.303},   {0.975, 4, 2.776}, {0.975, 10, 2.228},
               {0.975, 30, 2.042}, {0.975, 1e6, 1.960}, {0.95, 5, 2.015},  {0.995, 3, 5.841},
               {0.025, 4, -2.776}, {0.5, 7, 0.0}};
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    char what[64];
    snprintf(what, sizeof what, "t(%g, %g)", table[i].p, table[i].df);
    check_close(report_t_quantile(table[i].p, table[i].df), table[i].t, 5e-4, what);
  }
  /* Closed forms: df = 1 is Cauchy, df = 2 has t = (2p-1) sqrt(2 / (1 - (2p-1)^2)). */
  check_close(report_t_quantile(0.975, 1), tan(acos(-1.0) * 0.475), 1e-9,
              "t(0.975, 1) closed form");
  double a = 2 * 0.975 - 1;
  check_close(report_t_quantile(0.975, 2), a * sqrt(2 / (1 - a * a)), 1e-9, "t(0.975, 2)");
  check_close(report_t_cdf(0.0, 3), 0.5, 1e-15, "cdf(0)");
  check_close(report_t_cdf(1.0, 1), 0.75, 1e-12, "cdf(1, df 1)");
  check_close(report_t_cdf(-2.776445, 4), 0.025, 1e-6, "cdf lower tail");
  CHECK(isnan(report_t_quantile(0.0, 3)) && isnan(report_t_quantile(0.5, 0)), "bad arguments");
}

static void test_mean_std(void) {
  double x[] = {60, 62, NAN, 64, INFINITY};
  double mean, std, lo, hi;
  int n;
  report_mean_std(x, 5, &mean, &std, &n);
  CHECK(n == 3 && mean == 62 && fabs(std - 2) < 1e-12, "mean/std: n %d mean %g std %g", n, mean,
        std);
  report_mean_std(x, 1, &mean, &std, &n);
  CHECK(n == 1 && mean == 60 && isnan(std), "one value: std must be NaN");
  report_mean_std(x + 2, 1, &mean, &std, &n);
  CHECK(n == 0 && isnan(mean), "no finite value");
  double d[] = {10, 9, 11}; /* mean 10, sd 1: 10 -+ 4.302653 / sqrt(3) */
  report_mean_ci95(d, 3, &mean, &lo, &hi);
  check_close(lo, 10 - 4.302653 / sqrt(3), 1e-5, "ci lo");
  check_close(hi, 10 + 4.302653 / sqrt(3), 1e-5, "ci hi");
  report_mean_ci95(d, 1, &mean, &lo, &hi);
  CHECK(mean == 10 && isnan(lo) && isnan(hi), "one pair: no interval");
  char buf[16];
  report_fmt2(buf, sizeof buf, -0.001);
  CHECK(!strcmp(buf, "0.00"), "no negative zero: %s", buf);
  report_fmt2(buf, sizeof buf, NAN);
  CHECK(!strcmp(buf, "n/a"), "NaN: %s", buf);
}

static void check_escape(void (*put)(FILE *, const char *), const char *in, const char *want,
                         const char *what) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  put(f, in);
  fclose(f);
  CHECK(!strcmp(buf, want), "%s: [%s] -> [%s], want [%s]", what, in, buf, want);
  free(buf);
}

static void test_escape(void) {
  check_escape(report_put_csv, "plain", "plain", "csv plain");
  check_escape(report_put_csv, "a,b", "\"a,b\"", "csv comma");
  check_escape(report_put_csv, "say \"hi\"", "\"say \"\"hi\"\"\"", "csv quotes");
  check_escape(report_put_csv, "two\nlines", "\"two\nlines\"", "csv newline");
  check_escape(report_put_latex, "50% a_b & $x #1 {y} ~ ^ \\",
               "50\\% a\\_b \\& \\$x \\#1 \\{y\\} "
               "\\textasciitilde{} \\textasciicircum{} \\textbackslash{}",
               "latex");
  check_escape(report_put_md, "a|b *c* _d_ `e` [f] <g> \\",
               "a\\|b \\*c\\* \\_d\\_ \\`e\\` "
               "\\[f\\] \\<g\\> \\\\",
               "md");
  check_escape(report_put_md, "x\ny", "x y", "md newline");
  check_escape(report_put_xml, "a<b & \"c\" 'd'>", "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;",
               "xml");
  check_escape(report_put_xml, "bell\a", "bell ", "xml control character");
}

static void test_config(void) {
  const char *text =
      "dataset.name = \"imagenet-r\";\n"
      "method.name = \"ranpac\";\n"
      "method.rp.dim = 512;\n"
      "note = \"say \\\"hi\\\"; ok\";\n"
      "eval.batch = 32;\n"
      "threads = 0;\n"
      "seed = 1993;\n"
      "run.dir = \"/tmp/x\";\n"
      "not a config line\n";
  char *v = report_config_value(text, "dataset.name");
  CHECK(v && !strcmp(v, "imagenet-r"), "dataset.name: %s", v ? v : "(null)");
  free(v);
  v = report_config_value(text, "seed");
  CHECK(v && !strcmp(v, "1993"), "seed: %s", v ? v : "(null)");
  free(v);
  v = report_config_value(text, "note");
  CHECK(v && !strcmp(v, "say \"hi\"; ok"), "escaped string: %s", v ? v : "(null)");
  free(v);
  v = report_config_value(text, "method");
  CHECK(!v, "a prefix of a key is not the key");
  free(v);
  char *point = NULL;
  CHECK(report_config_point(text, &point) == SCL_OK, "config point");
  const char *want =
      "dataset.name = \"imagenet-r\";\nmethod.name = \"ranpac\";\nmethod.rp.dim = 512;\n"
      "note = \"say \\\"hi\\\"; ok\";";
  CHECK(point && !strcmp(point, want), "point:\n%s\nwant:\n%s", point ? point : "", want);
  free(point);
  /* the nested form cfg_dump writes: the same values and the same point */
  const char *nested =
      "dataset = {\n  name = \"imagenet-r\";\n  root = \"/d\";\n};\n"
      "method = {\n  name = \"ranpac\";\n  rp = {\n    dim = 512;\n  };\n};\n"
      "note = \"say \\\"hi\\\"; ok\";\neval = {\n  batch = 32;\n};\nseed = 1993;\n";
  v = report_config_value(nested, "method.rp.dim");
  CHECK(v && !strcmp(v, "512"), "nested method.rp.dim: %s", v ? v : "(null)");
  free(v);
  v = report_config_value(nested, "seed");
  CHECK(v && !strcmp(v, "1993"), "nested seed after the groups close: %s", v ? v : "(null)");
  free(v);
  v = report_config_value(nested, "name");
  CHECK(!v, "a key inside a group is not a top-level key");
  free(v);
  CHECK(report_config_point(nested, &point) == SCL_OK, "nested config point");
  CHECK(point && !strcmp(point, want), "nested point:\n%s\nwant:\n%s", point ? point : "", want);
  free(point);
}

int main(void) {
  test_t();
  test_mean_std();
  test_escape();
  test_config();
  if (failures)
    fprintf(stderr, "%d failure(s)\n", failures);
  else
    printf("test_report_stats: all checks passed\n");
  return failures ? 1 : 0;
}
