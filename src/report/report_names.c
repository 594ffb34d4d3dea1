/* report_names.c: display names, orders and categories of methods, datasets and predictors.
 *
 * Methods safecl runs are named by the method registry (learn/method.c): each method's label and
 * family come from its learn_method_ops, and within a family they are ranked in registry order.
 * A report also shows published numbers of methods safecl does not run yet (analysis/
 * published.csv), and must place trial files of methods it has no entry for: the table below
 * names the published-only methods (docs/methods.md e), ranked after the registry's within their
 * family, and every lookup has a fallback (the id itself, ranked after all known ones by name).
 * Dataset ids follow the configs in configs/datasets/. The category stored in a trial file always
 * wins over these tables; they only place failed trials whose files say nothing about it. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "report_internal.h"
#include "safecl/method.h"

typedef struct name_entry {
  const char *id, *label, *category;
} name_entry;

/* Methods with published numbers that safecl does not run yet; a row leaves this table when its
 * method joins the registry. Table order is display order within a category. */
static const name_entry published_only[] = {
    {"sprompts", "S-iPrompts", "prompt"},
    {"s-iprompts", "S-iPrompts", "prompt"},
    {"adam", "ADaM", "representation"},
    {"ssiat", "SSIAT", "representation"},
};
static const int n_published_only = (int)(sizeof published_only / sizeof published_only[0]);

/* The method families in display order (the REPORT_CAT_* order): the id a method's
 * learn_method_ops.category and a trial file's method_category hold, and the table heading.
 * EASE and LAE mix several trained models (subspaces, online and offline experts), a family of
 * its own in the surveys (docs/methods.md j, l). */
static const name_entry categories[REPORT_N_CATS] = {
    {"prompt", "Prompt-based", NULL},   {"representation", "Representation-based", NULL},
    {"mixture", "Model mixture", NULL}, {"safe", "SAFE (with its slow and fast learners)", NULL},
    {"other", "Other", NULL},
};

static const name_entry datasets[] = {
    {"cifar100", "CIFAR-100", NULL},  {"imagenet-r", "IN-R", NULL},
    {"imagenet-a", "IN-A", NULL},     {"cub200", "CUB-200", NULL},
    {"omnibenchmark", "OB", NULL},    {"vtab", "VTAB", NULL},
    {"cars", "Cars", NULL},           {"domainnet", "DomainNet", NULL},
    {"synthetic", "Synthetic", NULL},
};
static const int n_datasets = (int)(sizeof datasets / sizeof datasets[0]);

static const name_entry predictors[] = {
    {"slow", "slow learner", NULL},
    {"fast", "fast learner", NULL},
    {"authors_protocol", "authors' protocol", "diagnostic"},
    {"pilot_diag", "PILOT batch-wise protocol (leaks test batches)", "diagnostic"},
};
static const int n_predictors = (int)(sizeof predictors / sizeof predictors[0]);

static int find(const name_entry *t, int n, const char *id) {
  for (int i = 0; i < n; i++)
    if (!strcmp(t[i].id, id)) return i;
  return -1;
}

const char *report_method_label(const char *method) {
  const learn_method_ops *ops = learn_method_find(method);
  if (ops) return ops->label;
  int i = find(published_only, n_published_only, method);
  return i < 0 ? method : published_only[i].label;
}

/* Category first (in the order of categories[]), then the registry's rows, then the
 * published-only table: the order of rows within a category and of trials within a dataset. */
int report_method_rank(const char *method) {
  enum { PER_CATEGORY = 1 << 16 };
  int cat = report_category_index(report_method_default_category(method));
  const learn_method_ops *ops = learn_method_find(method);
  for (int i = 0; ops && i < learn_method_count(); i++)
    if (learn_method_at(i) == ops) return cat * PER_CATEGORY + i;
  int i = find(published_only, n_published_only, method);
  return cat * PER_CATEGORY + learn_method_count() + (i < 0 ? n_published_only : i);
}

const char *report_method_default_category(const char *method) {
  const learn_method_ops *ops = learn_method_find(method);
  if (ops) return ops->category;
  int i = find(published_only, n_published_only, method);
  return i < 0 ? "other" : published_only[i].category;
}

const char *report_dataset_label(const char *dataset) {
  int i = find(datasets, n_datasets, dataset);
  return i < 0 ? dataset : datasets[i].label;
}

int report_dataset_rank(const char *dataset) {
  int i = find(datasets, n_datasets, dataset);
  return i < 0 ? n_datasets : i;
}

int report_category_index(const char *category) {
  int i = find(categories, REPORT_N_CATS, category);
  return i < 0 ? REPORT_CAT_OTHER : i;
}

const char *report_category_id(int category) {
  return categories[category >= 0 && category < REPORT_N_CATS ? category : REPORT_CAT_OTHER].id;
}

const char *report_category_label(int category) {
  return categories[category >= 0 && category < REPORT_N_CATS ? category : REPORT_CAT_OTHER].label;
}

const char *report_predictor_label(const char *predictor) {
  int i = find(predictors, n_predictors, predictor);
  return i < 0 ? predictor : predictors[i].label;
}

/* Primary predictors rank 0 (the caller knows which is primary); then this table; then others. */
int report_predictor_rank(const char *predictor) {
  int i = find(predictors, n_predictors, predictor);
  return i < 0 ? n_predictors + 1 : i + 1;
}

int report_predictor_diagnostic(const char *predictor) {
  int i = find(predictors, n_predictors, predictor);
  return i >= 0 && predictors[i].category != NULL;
}

const char *report_metric_name(int metric) {
  static const char *const names[REPORT_N_METRICS] = {"final_acc", "avg_acc", "forgetting"};
  return names[metric];
}

const char *report_metric_label(int metric) {
  static const char *const labels[REPORT_N_METRICS] = {"final", "avg", "forgetting"};
  return labels[metric];
}

int report_metric_index(const char *name) {
  for (int m = 0; m < REPORT_N_METRICS; m++)
    if (!strcmp(name, report_metric_name(m))) return m;
  return -1;
}

void report_fmt2(char *buf, size_t cap, double v) {
  if (!isfinite(v)) {
    snprintf(buf, cap, "n/a");
    return;
  }
  snprintf(buf, cap, "%.2f", v);
  if (!strcmp(buf, "-0.00")) snprintf(buf, cap, "0.00");
}
