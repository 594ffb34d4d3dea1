/* cost.c: how long a trial is expected to take, so that idle groups pull the longest first.
 *
 * The prior is the run module's cost model (safecl plan: work per session from the dataset
 * sizes and the method's costs, priced with forward/dgemm/dsyevd rates measured once per
 * backbone on this node). Its inputs do not depend on the trial seed, so plans are cached by the
 * trial's identity text without the seed line, and a sweep over 10,000 seeds prices one trial.
 * Where that model cannot price a trial (its dataset cannot be opened here), a rough
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

/* Measured rates per backbone architecture, and priced plans per identity-without-seed. */
static struct {
  char arch[64];
  run_plan_rates rates;
} rates_cache[8];
static int n_rates;

static struct {
  scl_hash *key;
  double *seconds;
  int64_t n, cap;
} plans;

static scl_err rates_for(const run_trial_cfg *cfg, run_plan_rates *out) {
  for (int i = 0; i < n_rates; i++)
    if (!strcmp(rates_cache[i].arch, cfg->arch)) {
      *out = rates_cache[i].rates;
      return SCL_OK;
    }
  SCL_CALL(run_plan_measure(cfg, out));
  int slot = n_rates < 8 ? n_rates++ : 0;
  snprintf(rates_cache[slot].arch, sizeof rates_cache[slot].arch, "%s", cfg->arch);
  rates_cache[slot].rates = *out;
  return SCL_OK;
}

static scl_hash key_of(const char *ident) {
  scl_hasher *h = NULL;
  scl_hash out = {0, 0};
  if (scl_hasher_create(&h) != SCL_OK) {
    scl_error_take(NULL, 0);
    return scl_hash_bytes(ident, strlen(ident));
  }
  for (const char *p = ident; *p;) {
    size_t n = strcspn(p, "\n");
    if (strncmp(p, "seed = ", 7)) scl_hasher_update(h, p, n);
    p += n + (p[n] == '\n');
  }
  out = scl_hasher_digest(h);
  scl_hasher_destroy(&h);
  return out;
}

static int64_t plans_find(scl_hash k) {
  for (int64_t j = plans.cap ? (int64_t)(k.lo & (uint64_t)(plans.cap - 1)) : 0; plans.cap;
       j = (j + 1) & (plans.cap - 1)) {
    if (plans.key[j].hi == 0 && plans.key[j].lo == 0) return -1 - j;
    if (plans.key[j].hi == k.hi && plans.key[j].lo == k.lo) return j;
  }
  return -1;
}

static void plans_put(scl_hash k, double seconds) {
  if (2 * (plans.n + 1) > plans.cap) {
    int64_t cap = plans.cap ? 2 * plans.cap : 256;
    scl_hash *key = calloc((size_t)cap, sizeof *key);
    double *sec = calloc((size_t)cap, sizeof *sec);
    if (!key || !sec) {
      free(key);
      free(sec);
      return; /* a cache: losing it costs time only */
    }
    scl_hash *old_key = plans.key;
    double *old_sec = plans.seconds;
    int64_t old_cap = plans.cap;
    plans.key = key;
    plans.seconds = sec;
    plans.cap = cap;
    plans.n = 0;
    for (int64_t i = 0; i < old_cap; i++)
      if (old_key[i].hi || old_key[i].lo) plans_put(old_key[i], old_sec[i]);
    free(old_key);
    free(old_sec);
  }
  int64_t j = plans_find(k);
  if (j >= 0) return;
  j = -1 - j;
  plans.key[j] = k;
  plans.seconds[j] = seconds;
  plans.n++;
}

double orch_cost_prior(const run_trial_cfg *cfg) {
  char *ident = NULL;
  if (cfg_dump_identity(&run_trial_schema, cfg, &ident) != SCL_OK) {
    scl_error_take(NULL, 0);
    return rough_guess(cfg);
  }
  scl_hash k = key_of(ident);
  free(ident);
  int64_t j = plans_find(k);
  if (j >= 0) return plans.seconds[j];
  run_plan_rates rates;
  run_plan *plan = calloc(1, sizeof *plan);
  double seconds = rough_guess(cfg);
  if (plan && rates_for(cfg, &rates) == SCL_OK && run_trial_plan(cfg, &rates, plan) == SCL_OK &&
      isfinite(plan->total_seconds) && plan->total_seconds > 0)
    seconds = plan->total_seconds;
  else
    scl_error_take(NULL, 0);
  free(plan);
  plans_put(k, seconds);
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
