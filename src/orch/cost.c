/* cost.c: how long a trial is expected to take, so that idle groups pull the longest first.
 *
 * The prior is the run module's cost model (safecl plan: work per session from the dataset
 * sizes and the method's costs, priced with forward/dgemm/dsyevd rates measured once per
 * backbone on this node). What it needs of a dataset (classes, images per class and domain) is
 * read once per dataset and kept for the process, so pricing a trial is arithmetic over its
 * session layout: planning 10^6 trials opens each dataset once and builds one ViT per
 * architecture. A dataset that cannot be read is remembered with its message, which becomes
 * the failure of each of its trials. Where the model cannot price a trial (an architecture
 * whose rates cannot be measured here), a rough
 * images x GFLOPs x method-factor guess stands in (the factor is the method's cost_factor in the
 * registry, method.h): the prior only has to rank trials. Once
 * trials of the same dataset and method have finished in this run directory, their measured
 * mean replaces the prior and other classes are scaled by the overall measured/prior ratio,
 * which also makes `safecl status`'s ETA come out in real seconds. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "orch_internal.h"
#include "safecl/method.h"
#include "safecl/plan.h"

static double rough_guess(const run_trial_cfg *c) {
  double images = 50000, gflops = 17.6, factor = 20.0;
  if (!strcmp(c->format, "synthetic"))
    images = (double)c->syn_classes * (double)(c->syn_train_per_class + c->syn_test_per_class);
  if (strstr(c->arch, "tiny")) gflops = 1.26;
  if (strstr(c->arch, "small")) gflops = 4.6;
  if (strstr(c->arch, "large")) gflops = 61.6;
  const learn_method_ops *method = learn_method_find(c->method.name);
  if (method) factor = method->cost_factor;
  return 0.015 * images * gflops * factor;
}

/* Measured rates per backbone architecture (a failed measurement is remembered too, so a sweep
 * prices every trial of that architecture with the rough guess after one attempt). */
static struct {
  char arch[64];
  run_plan_rates rates;
  int ok;
} rates_cache[8];
static int n_rates;

/* Facts per dataset (run_plan_dataset_key), or the message of a dataset that cannot be read. */
static struct {
  char **key, **error;
  run_plan_facts *facts;
  int n, cap;
} datasets;

static const run_plan_rates *rates_for(const run_trial_cfg *cfg) {
  for (int i = 0; i < n_rates; i++)
    if (!strcmp(rates_cache[i].arch, cfg->arch))
      return rates_cache[i].ok ? &rates_cache[i].rates : NULL;
  int slot = n_rates < 8 ? n_rates++ : 0;
  snprintf(rates_cache[slot].arch, sizeof rates_cache[slot].arch, "%s", cfg->arch);
  rates_cache[slot].ok = run_plan_measure(cfg, &rates_cache[slot].rates) == SCL_OK;
  if (!rates_cache[slot].ok) {
    scl_log_error_traceback(); /* a prior only ranks trials: the rough guess stands in */
    scl_error_take(NULL, 0);
  }
  return rates_cache[slot].ok ? &rates_cache[slot].rates : NULL;
}

static scl_err datasets_grow(void) {
  if (datasets.n < datasets.cap) return SCL_OK;
  int cap = datasets.cap ? 2 * datasets.cap : 8;
  char **key = realloc(datasets.key, (size_t)cap * sizeof *key);
  if (key) datasets.key = key;
  char **error = realloc(datasets.error, (size_t)cap * sizeof *error);
  if (error) datasets.error = error;
  run_plan_facts *facts = realloc(datasets.facts, (size_t)cap * sizeof *facts);
  if (facts) datasets.facts = facts;
  SCL_CHECK(key && error && facts, SCL_ERR_NOMEM, "dataset facts of %d datasets", cap);
  datasets.cap = cap;
  return SCL_OK;
}

scl_err orch_cost_facts(const run_trial_cfg *cfg, const run_plan_facts **facts,
                        const char **error) {
  char key[4200];
  run_plan_dataset_key(cfg, key, sizeof key);
  *facts = NULL;
  *error = NULL;
  int i = 0;
  while (i < datasets.n && strcmp(datasets.key[i], key)) i++;
  if (i == datasets.n) {
    SCL_CALL(datasets_grow());
    char msg[SCL_ERROR_MESSAGE_MAX];
    run_plan_facts f;
    char *k = strdup(key), *e = NULL;
    SCL_CHECK(k, SCL_ERR_NOMEM, "dataset facts");
    if (run_plan_facts_read(cfg, &f) != SCL_OK) {
      scl_error_take(msg, sizeof msg); /* the dataset's trials fail with this message */
      memset(&f, 0, sizeof f);
      e = strdup(msg);
      if (!e) free(k);
      SCL_CHECK(e, SCL_ERR_NOMEM, "dataset message");
    }
    datasets.key[i] = k;
    datasets.error[i] = e;
    datasets.facts[i] = f;
    datasets.n++;
  }
  if (datasets.error[i])
    *error = datasets.error[i];
  else
    *facts = &datasets.facts[i];
  return SCL_OK;
}

double orch_cost_prior(const run_trial_cfg *cfg, const run_plan_facts *facts) {
  run_plan *plan = malloc(sizeof *plan);
  const run_plan_rates *rates = rates_for(cfg);
  double seconds = rough_guess(cfg);
  if (plan && rates && run_plan_count(cfg, facts, rates, plan) == SCL_OK &&
      isfinite(plan->total_seconds) && plan->total_seconds > 0)
    seconds = plan->total_seconds;
  else
    scl_error_take(NULL, 0);
  free(plan);
  return seconds;
}

static void class_key(const char *plan_text, char *key, size_t cap) {
  const char *tab = strchr(plan_text, '\t');
  tab = tab ? strchr(tab + 1, '\t') : NULL;
  size_t n = tab ? (size_t)(tab - plan_text) : strlen(plan_text);
  snprintf(key, cap, "%.*s", (int)n, plan_text);
}

void orch_cost_model_fit(const orch_state *state, orch_cost_model *m) {
  memset(m, 0, sizeof *m);
  m->ratio = 1.0;
  double measured = 0, prior = 0;
  char key[256];
  for (int64_t i = 0; state && i < state->n; i++) {
    const orch_trial_state *ts = &state->trials[i];
    if (ts->status != ORCH_TRIAL_FINISHED || !ts->measured || ts->cost <= 0 || !ts->plan_text)
      continue;
    measured += ts->seconds;
    prior += ts->cost;
    class_key(ts->plan_text, key, sizeof key);
    int c = 0;
    while (c < m->n && strcmp(m->classes[c].key, key)) c++;
    if (c == ORCH_COST_CLASSES) continue; /* beyond that many classes: the ratio only */
    if (c == m->n) snprintf(m->classes[m->n++].key, sizeof m->classes[c].key, "%s", key);
    m->classes[c].sum += ts->seconds;
    m->classes[c].n++;
  }
  if (prior > 0) m->ratio = measured / prior;
  m->measured = measured;
}

double orch_cost_model_expect(const orch_cost_model *m, const char *plan_text, double prior) {
  char key[256];
  class_key(plan_text, key, sizeof key);
  for (int c = 0; c < m->n; c++)
    if (!strcmp(m->classes[c].key, key)) return m->classes[c].sum / m->classes[c].n;
  return prior * m->ratio;
}

void orch_cost_calibrate(orch_plan *plan, const orch_state *state) {
  orch_cost_model m;
  orch_cost_model_fit(state, &m);
  char key[512];
  for (int64_t i = 0; i < plan->n; i++) {
    orch_trial *t = &plan->trials[i];
    snprintf(key, sizeof key, "%s\t%s\t", t->dataset_name, t->method_name);
    t->cost = orch_cost_model_expect(&m, key, t->cost);
  }
}

static const orch_plan *sort_plan;

static int longest_first(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  double cx = sort_plan->trials[x].cost, cy = sort_plan->trials[y].cost;
  if (cx != cy) return cx > cy ? -1 : 1;
  return x < y ? -1 : x > y;
}

scl_err orch_cost_order(const orch_plan *plan, int64_t **order) {
  *order = malloc((size_t)(plan->n ? plan->n : 1) * sizeof **order);
  SCL_CHECK(*order, SCL_ERR_NOMEM, "trial order of %lld trials", (long long)plan->n);
  for (int64_t i = 0; i < plan->n; i++) (*order)[i] = i;
  sort_plan = plan;
  qsort(*order, (size_t)plan->n, sizeof **order, longest_first);
  sort_plan = NULL;
  return SCL_OK;
}
