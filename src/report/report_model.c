/* report_model.c: from trial records to groups, hyperparameter points, missing seeds and the
 * chosen point of each group (rows and cells are report_cells.c).
 *
 * A group is one (dataset, method); its points are the distinct config texts with the seed and
 * the result-neutral keys left out (report_config_point). One point per group is used: the one
 * with the highest mean validation accuracy over its finished seeds (ties: the first point in
 * key order); with no validation split anywhere, a single point is used as it is and several
 * are refused rather than chosen on the test set. Missing seeds: the sweep grid lives in the
 * orchestrator, so the report infers it from what exists. A point lacks seed s when some trial
 * (finished, failed or unfinished) of the same dataset under the same run directory has seed s;
 * a method with no trial at all on a dataset is shown as absent, not as missing. Duplicates (the
 * same trial id twice, or two trials for one point and seed) keep the first of finished,
 * failed, unfinished, then scan order. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "report_internal.h"

static int cmp_rank_name(int ra, const char *a, int rb, const char *b) {
  if (ra != rb) return ra < rb ? -1 : 1;
  return strcmp(a, b);
}

static int cmp_by_id(const void *pa, const void *pb) {
  const report_trial *a = *(report_trial *const *)pa, *b = *(report_trial *const *)pb;
  int c = strcmp(a->id, b->id);
  return c ? c : (a < b ? -1 : a > b);
}

/* Dataset, method, point, seed; then the preferred copy first. */
static int cmp_by_cell(const void *pa, const void *pb) {
  const report_trial *a = *(report_trial *const *)pa, *b = *(report_trial *const *)pb;
  int c = cmp_rank_name(report_dataset_rank(a->dataset), a->dataset,
                        report_dataset_rank(b->dataset), b->dataset);
  if (!c)
    c = cmp_rank_name(report_method_rank(a->method), a->method, report_method_rank(b->method),
                      b->method);
  if (!c) c = strcmp(a->point, b->point);
  if (!c && a->seed != b->seed) c = a->seed < b->seed ? -1 : 1;
  if (!c && a->status != b->status) c = a->status < b->status ? -1 : 1;
  return c ? c : (a < b ? -1 : a > b);
}

static scl_err sorted_trials(report_data *d, int placed_only,
                             int (*cmp)(const void *, const void *), report_trial ***out, int *n) {
  report_trial **v = malloc(((size_t)d->n_trials + 1) * sizeof *v);
  SCL_CHECK(v, SCL_ERR_NOMEM, "report: trial index");
  *n = 0;
  for (int i = 0; i < d->n_trials; i++) {
    report_trial *t = &d->trials[i];
    if (t->dup_of < 0 && (!placed_only || t->placed)) v[(*n)++] = t;
  }
  qsort(v, (size_t)*n, sizeof *v, cmp);
  *out = v;
  return SCL_OK;
}

static scl_err dedupe(report_data *d) {
  report_trial **v = NULL;
  int n = 0;
  SCL_CALL(sorted_trials(d, 0, cmp_by_id, &v, &n));
  for (int i = 1; i < n; i++)
    if (v[i]->status == REPORT_FINISHED && !strcmp(v[i]->id, v[i - 1]->id)) {
      v[i]->dup_of = v[i - 1]->dup_of >= 0 ? v[i - 1]->dup_of : (int)(v[i - 1] - d->trials);
      d->n_dup++;
    }
  free(v);
  SCL_CALL(sorted_trials(d, 1, cmp_by_cell, &v, &n));
  for (int i = 1, keep = 0; i < n; i++) {
    report_trial *a = v[keep], *b = v[i];
    if (!strcmp(a->dataset, b->dataset) && !strcmp(a->method, b->method) &&
        !strcmp(a->point, b->point) && a->seed == b->seed) {
      b->dup_of = (int)(a - d->trials);
      d->n_dup++;
    } else {
      keep = i;
    }
  }
  free(v);
  return SCL_OK;
}

static int has_seed(const report_data *d, const report_point *p, int64_t seed) {
  for (int i = 0; i < p->n_trials; i++)
    if (d->trials[p->trials[i]].seed == seed) return 1;
  return 0;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* Counts, validation mean and missing seeds of each point of g; in_run[r] marks the run
 * directories (command-line arguments) that hold a trial of g. */
static scl_err finish_points(report_data *d, report_group *g, const char *in_run) {
  for (int k = 0; k < g->n_points; k++) {
    report_point *p = &g->points[k];
    double sum = 0.0;
    for (int i = 0; i < p->n_trials; i++) {
      const report_trial *t = &d->trials[p->trials[i]];
      p->n_finished += t->status == REPORT_FINISHED;
      p->n_failed += t->status == REPORT_FAILED;
      p->n_unfinished += t->status == REPORT_UNFINISHED;
      if (t->status == REPORT_FINISHED && isfinite(t->val_acc)) {
        sum += t->val_acc;
        p->n_val++;
      }
    }
    p->val_mean = p->n_val ? sum / p->n_val : NAN;
    for (int i = 0; i < d->n_trials; i++) { /* seeds of this dataset in the group's runs */
      const report_trial *t = &d->trials[i];
      if (!t->placed || t->dup_of >= 0 || !in_run[t->run] || strcmp(t->dataset, g->dataset))
        continue;
      int seen = has_seed(d, p, t->seed);
      for (int j = 0; j < p->n_missing && !seen; j++) seen = p->missing[j] == t->seed;
      if (seen) continue;
      int64_t *grown = realloc(p->missing, ((size_t)p->n_missing + 1) * sizeof *grown);
      SCL_CHECK(grown, SCL_ERR_NOMEM, "report: missing seeds");
      p->missing = grown;
      p->missing[p->n_missing++] = t->seed;
    }
    if (p->n_missing) qsort(p->missing, (size_t)p->n_missing, sizeof *p->missing, cmp_i64);
  }
  return SCL_OK;
}

static void choose_point(report_group *g) {
  int finished = 0, last = -1, best = -1;
  for (int k = 0; k < g->n_points; k++) {
    const report_point *p = &g->points[k];
    if (p->n_finished) finished++, last = k;
    if (p->n_val && (best < 0 || p->val_mean > g->points[best].val_mean)) best = k;
  }
  g->chosen = -1;
  if (best >= 0) {
    g->selection = REPORT_SEL_VAL;
    g->chosen = best;
  } else if (finished == 1) {
    g->selection = REPORT_SEL_ONLY;
    g->chosen = last;
  } else if (finished > 1) {
    g->selection = REPORT_SEL_REFUSED;
  } else {
    g->selection = REPORT_SEL_NONE;
    if (g->n_points == 1) g->chosen = 0;
  }
}

static scl_err add_point(report_group *g, const report_trial *t, int index) {
  report_point *p = g->n_points ? &g->points[g->n_points - 1] : NULL;
  if (!p || strcmp(p->key, t->point)) {
    report_point *grown = realloc(g->points, ((size_t)g->n_points + 1) * sizeof *grown);
    SCL_CHECK(grown, SCL_ERR_NOMEM, "report: points");
    g->points = grown;
    p = &g->points[g->n_points++];
    memset(p, 0, sizeof *p);
    p->key = strdup(t->point);
    SCL_CHECK(p->key, SCL_ERR_NOMEM, "report: point");
  }
  int *grown = realloc(p->trials, ((size_t)p->n_trials + 1) * sizeof *grown);
  SCL_CHECK(grown, SCL_ERR_NOMEM, "report: point trials");
  p->trials = grown;
  p->trials[p->n_trials++] = index;
  return SCL_OK;
}

static scl_err build_groups(report_data *d) {
  report_trial **v = NULL;
  int n = 0;
  SCL_CALL(sorted_trials(d, 1, cmp_by_cell, &v, &n));
  d->groups = calloc((size_t)n + 1, sizeof *d->groups);
  scl_err err = d->groups ? SCL_OK : SCL_ERROR(SCL_ERR_NOMEM, "report: groups");
  for (int i = 0; i < n && !err; i++) {
    report_trial *t = v[i];
    report_group *g = d->n_groups ? &d->groups[d->n_groups - 1] : NULL;
    if (!g || strcmp(g->dataset, t->dataset) || strcmp(g->method, t->method)) {
      g = &d->groups[d->n_groups++];
      g->dataset = t->dataset;
      g->method = t->method;
      g->category = t->category ? t->category : report_method_default_category(t->method);
    }
    if (t->status == REPORT_FINISHED && t->category) g->category = t->category;
    err = add_point(g, t, (int)(t - d->trials));
  }
  free(v);
  char *in_run = calloc((size_t)d->n_runs + 1, 1);
  if (!err && !in_run) err = SCL_ERROR(SCL_ERR_NOMEM, "report: runs");
  for (int k = 0; k < d->n_groups && !err; k++) {
    const report_group *g = &d->groups[k];
    memset(in_run, 0, (size_t)d->n_runs + 1);
    for (int q = 0; q < g->n_points; q++)
      for (int i = 0; i < g->points[q].n_trials; i++)
        in_run[d->trials[g->points[q].trials[i]].run] = 1;
    err = finish_points(d, &d->groups[k], in_run);
    choose_point(&d->groups[k]);
  }
  free(in_run);
  if (err) return SCL_TRACE(err);
  d->datasets = calloc((size_t)d->n_groups + 1, sizeof *d->datasets);
  SCL_CHECK(d->datasets, SCL_ERR_NOMEM, "report: datasets");
  for (int k = 0; k < d->n_groups; k++) /* groups are sorted by dataset first */
    if (!d->n_datasets || strcmp(d->datasets[d->n_datasets - 1], d->groups[k].dataset))
      d->datasets[d->n_datasets++] = d->groups[k].dataset;
  return SCL_OK;
}

/* 1 if `key` (newline-separated lines) has the line l[0..n) */
static int has_line(const char *key, const char *l, size_t n) {
  for (const char *p = key; p && *p;) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    if (len == n && !strncmp(p, l, n)) return 1;
    p = nl ? nl + 1 : NULL;
  }
  return 0;
}

/* The lines of point k that some other point of g lacks, without their ';', joined by ", ". */
void report_point_name(const report_group *g, int k, char *buf, size_t cap) {
  size_t o = 0;
  buf[0] = '\0';
  for (const char *p = g->points[k].key; p && *p;) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p), shown = len;
    int common = 1;
    for (int q = 0; q < g->n_points && common; q++) common = has_line(g->points[q].key, p, len);
    while (shown && (p[shown - 1] == ';' || p[shown - 1] == ' ')) shown--;
    if (!common && o + shown + 3 < cap)
      o += (size_t)snprintf(buf + o, cap - o, "%s%.*s", o ? ", " : "", (int)shown, p);
    p = nl ? nl + 1 : NULL;
  }
  if (!buf[0]) snprintf(buf, cap, "(the other keys' defaults)");
}

const report_group *report_group_find(const report_data *d, const char *dataset,
                                      const char *method) {
  for (int k = 0; k < d->n_groups; k++)
    if (!strcmp(d->groups[k].dataset, dataset) && !strcmp(d->groups[k].method, method))
      return &d->groups[k];
  return NULL;
}

report_cell *report_cell_at(const report_data *d, int row, int dataset) {
  return &d->cells[(size_t)row * d->n_datasets + dataset];
}

scl_err report_model_groups(report_data *d) {
  SCL_CALL(dedupe(d));
  SCL_CALL(build_groups(d));
  return SCL_OK;
}
