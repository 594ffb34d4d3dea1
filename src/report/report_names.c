/* report_names.c: display names, orders and categories of methods, datasets and predictors.
 *
 * The tables are copies: method ids and categories follow the `.name` and `.category` of the methods in learn/ and
 * METHOD.md e for the methods still being written; dataset ids follow the configs in configs/datasets/.
 * report/ may not depend on learn/, and a report must still place a method it has no table entry
 * for, so every lookup has a fallback (the id itself, ranked after the known ones by name). The
 * category stored in a trial file always wins over this table; the table only places failed
 * trials whose files say nothing about their category. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "report_internal.h"

typedef struct name_entry {
  const char *id, *label, *category;
} name_entry;

/* Table order is display order within a category. */
static const name_entry methods[] = {
    {"l2p", "L2P", "prompt"},
    {"dualprompt", "DualPrompt", "prompt"},
    {"coda_prompt", "CODA-Prompt", "prompt"},
    {"coda-prompt", "CODA-Prompt", "prompt"},
    {"sprompts", "S-iPrompts", "prompt"},
    {"s-iprompts", "S-iPrompts", "prompt"},
    {"simplecil", "SimpleCIL", "representation"},
    {"aper", "APER", "representation"},
    {"adam", "ADaM", "representation"},
    {"ranpac", "RanPAC", "representation"},
    {"slca", "SLCA", "representation"},
    {"ease", "EASE", "representation"},
    {"lae", "LAE", "representation"},
    {"ssiat", "SSIAT", "representation"},
    {"safe", "SAFE", "safe"},
};
static const int n_methods = (int)(sizeof methods / sizeof methods[0]);

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
};
static const int n_predictors = (int)(sizeof predictors / sizeof predictors[0]);

static int find(const name_entry *t, int n, const char *id) {
  for (int i = 0; i < n; i++)
    if (!strcmp(t[i].id, id)) return i;
  return -1;
}

const char *report_method_label(const char *method) {
  int i = find(methods, n_methods, method);
  return i < 0 ? method : methods[i].label;
}

int report_method_rank(const char *method) {
  int i = find(methods, n_methods, method);
  return i < 0 ? n_methods : i;
}

const char *report_method_default_category(const char *method) {
  int i = find(methods, n_methods, method);
  return i < 0 ? "other" : methods[i].category;
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
  if (!strcmp(category, "prompt")) return REPORT_CAT_PROMPT;
  if (!strcmp(category, "representation")) return REPORT_CAT_REPR;
  if (!strcmp(category, "safe")) return REPORT_CAT_SAFE;
  return REPORT_CAT_OTHER;
}

const char *report_category_label(int category) {
  static const char *const labels[REPORT_N_CATS] = {
      "Prompt-based", "Representation-based", "SAFE (with its slow and fast learners)", "Other"};
  return category >= 0 && category < REPORT_N_CATS ? labels[category] : "Other";
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
