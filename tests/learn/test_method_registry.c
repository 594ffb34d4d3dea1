/* test_method_registry.c: everything that names methods reads the registry (learn/method.c):
 * learn_method_names is the registry's names in row order; the trial key method.name takes
 * exactly those choices in validation and in `safecl train --help`; the report's display names,
 * families and order come from each method's learn_method_ops, while the published-only methods
 * and unknown ids keep their own table and fallback. Exits non-zero on any failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/report/report_internal.h"
#include "../common/scl_check.h"
#include "safecl/method.h"
#include "safecl/trial.h"

static void test_names(void) {
  char want[512] = "";
  int n = learn_method_count();
  CHECK(n >= 4, "registry holds %d methods", n);
  for (int i = 0; i < n; i++) {
    const learn_method_ops *m = learn_method_at(i);
    CHECK(m && m->name && m->label && m->category && m->create, "row %d complete", i);
    if (!m) continue;
    CHECK(learn_method_find(m->name) == m, "learn_method_find(%s) is row %d", m->name, i);
    CHECK(report_category_index(m->category) != REPORT_CAT_OTHER, "%s: family '%s'", m->name,
          m->category);
    CHECK(m->cost_factor > 0, "%s: cost factor %g", m->name, m->cost_factor);
    strcat(want, i ? "|" : "");
    strcat(want, m->name);
  }
  CHECK(learn_method_at(n) == NULL && learn_method_at(-1) == NULL, "rows out of range are NULL");
  CHECK(learn_method_find("no_such_method") == NULL, "unknown name not found");
  CHECK(!strcmp(learn_method_names(), want), "learn_method_names() = '%s', registry '%s'",
        learn_method_names(), want);
}

/* The choices of method.name in --help and in validation are the registry's names. */
static void test_config(void) {
  char *help = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&help, &len);
  CHECK(f != NULL, "memstream");
  if (!f) return;
  cfg_print_help(&run_trial_schema, f);
  fclose(f);
  char want[600];
  snprintf(want, sizeof want, "{%s}", learn_method_names());
  const char *line = strstr(help, "method.name ");
  const char *eol = line ? strchr(line, '\n') : NULL;
  const char *choices = line ? strstr(line, want) : NULL;
  CHECK(choices && choices < eol, "--help lists method.name's choices as %s", want);
  free(help);
  for (int i = 0; i <= learn_method_count(); i++) {
    const char *name = i < learn_method_count() ? learn_method_at(i)->name : "no_such_method";
    char ov[128];
    snprintf(ov, sizeof ov, "method.name=%s", name);
    char *ovs[] = {ov};
    run_trial_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    scl_error_clear();
    scl_err err = cfg_load(&run_trial_schema, NULL, 1, ovs, &cfg);
    if (i < learn_method_count())
      CHECK(err == SCL_OK && !strcmp(cfg.method.name, name), "method.name=%s accepted", name);
    else
      CHECK(err == SCL_ERR_ARG && strstr(scl_error_message(), learn_method_names()),
            "method.name=%s refused naming the registry: %s", name, scl_error_message());
    scl_error_clear();
    cfg_free(&run_trial_schema, &cfg);
  }
}

/* Report names: registry methods by their ops, in registry order within a family; the
 * published-only table and the fallback for ids nobody knows. */
static void test_report(void) {
  int n = learn_method_count();
  for (int i = 0; i < n; i++) {
    const learn_method_ops *m = learn_method_at(i);
    CHECK(!strcmp(report_method_label(m->name), m->label), "label of %s: %s", m->name,
          report_method_label(m->name));
    CHECK(!strcmp(report_method_default_category(m->name), m->category), "family of %s: %s",
          m->name, report_method_default_category(m->name));
    for (int j = i + 1; j < n; j++) {
      const learn_method_ops *o = learn_method_at(j);
      if (!strcmp(o->category, m->category))
        CHECK(report_method_rank(m->name) < report_method_rank(o->name), "%s ranks before %s",
              m->name, o->name);
    }
    CHECK(report_method_rank(m->name) < report_method_rank("no_such_method"),
          "%s ranks before an unknown id", m->name);
  }
  CHECK(!strcmp(report_method_label("l2p"), "L2P") &&
            !strcmp(report_method_default_category("l2p"), "prompt"),
        "published-only L2P keeps its name and family");
  CHECK(report_method_rank("l2p") < report_method_rank("simplecil") &&
            report_method_rank("ranpac") < report_method_rank("safe"),
        "categories in order: prompt, representation, SAFE");
  CHECK(!strcmp(report_method_label("no_such_method"), "no_such_method") &&
            !strcmp(report_method_default_category("no_such_method"), "other"),
        "an unknown id is shown as itself, in 'other'");
}

int main(void) {
  test_names();
  test_config();
  test_report();
  printf("test_method_registry: %s\n", failures ? "FAILED" : "all checks passed");
  return failures ? 1 : 0;
}
