/* report_cells.c: rows, cells, best-value marking and the paired comparison, on top of the
 * groups and chosen points of report_model.c; and the owner of report_data's memory.
 *
 * Cells keep everything a renderer prints (mean, std and n per metric, failed / unfinished /
 * missing counts, refusal, the per-session curve and the paired difference), so the three
 * output formats and the plots cannot disagree about a number. The paired comparison pairs
 * trials by seed within the chosen points of the row's method and of the baseline: a seed that
 * finished for only one of them does not enter the difference. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "report_internal.h"

static scl_err add_row(report_data *d, int category, const char *method, const char *predictor) {
  for (int r = 0; r < d->n_rows; r++)
    if (!strcmp(d->rows[r].method, method) && !strcmp(d->rows[r].predictor, predictor))
      return SCL_OK;
  report_row *grown = realloc(d->rows, ((size_t)d->n_rows + 1) * sizeof *grown);
  SCL_CHECK(grown, SCL_ERR_NOMEM, "report: rows");
  d->rows = grown;
  report_row *row = &d->rows[d->n_rows++];
  memset(row, 0, sizeof *row);
  row->category = category;
  row->method = method;
  row->predictor = predictor;
  row->primary = !predictor[0];
  row->diagnostic = !row->primary && report_predictor_diagnostic(predictor);
  const char *ml = report_method_label(method), *pl = report_predictor_label(predictor);
  size_t n = strlen(ml) + strlen(pl) + 3;
  row->label = malloc(n);
  SCL_CHECK(row->label, SCL_ERR_NOMEM, "report: row label");
  snprintf(row->label, n, row->primary ? "%s" : "%s: %s", ml, pl);
  return SCL_OK;
}

static int cmp_rows(const void *pa, const void *pb) {
  const report_row *a = pa, *b = pb;
  if (a->category != b->category) return a->category < b->category ? -1 : 1;
  int ra = report_method_rank(a->method), rb = report_method_rank(b->method);
  if (ra != rb) return ra < rb ? -1 : 1;
  int c = strcmp(a->method, b->method);
  if (c) return c;
  if (a->primary != b->primary) return a->primary ? -1 : 1;
  ra = report_predictor_rank(a->predictor);
  rb = report_predictor_rank(b->predictor);
  if (ra != rb) return ra < rb ? -1 : 1;
  return strcmp(a->predictor, b->predictor);
}

static scl_err build_rows(report_data *d) {
  for (int k = 0; k < d->n_groups; k++) {
    const report_group *g = &d->groups[k];
    int cat = report_category_index(g->category);
    SCL_CALL(add_row(d, cat, g->method, ""));
    for (int q = 0; q < g->n_points; q++)
      for (int i = 0; i < g->points[q].n_trials; i++) {
        const report_trial *t = &d->trials[g->points[q].trials[i]];
        for (int p = 1; t->status == REPORT_FINISHED && p < t->n_pred; p++)
          SCL_CALL(add_row(d, cat, g->method, t->pred[p].name));
      }
  }
  if (d->n_rows) qsort(d->rows, (size_t)d->n_rows, sizeof *d->rows, cmp_rows);
  return SCL_OK;
}

static const report_pred *find_pred(const report_trial *t, const char *predictor) {
  if (t->status != REPORT_FINISHED) return NULL;
  if (!predictor[0]) return &t->pred[0];
  for (int p = 1; p < t->n_pred; p++)
    if (!strcmp(t->pred[p].name, predictor)) return &t->pred[p];
  return NULL;
}

static scl_err fill_curve(const report_data *d, const report_point *p, const char *predictor,
                          report_cell *c, double *scratch) {
  for (int i = 0; i < p->n_trials; i++) {
    const report_trial *t = &d->trials[p->trials[i]];
    if (find_pred(t, predictor) && t->n_sessions > c->curve_len) c->curve_len = t->n_sessions;
  }
  if (!c->curve_len) return SCL_OK;
  size_t T = (size_t)c->curve_len;
  SCL_CALL(scl_alloc(T * sizeof *c->curve_mean, "report: mean curve", (void **)&c->curve_mean));
  SCL_CALL(scl_alloc(T * sizeof *c->curve_std, "report: std curve", (void **)&c->curve_std));
  SCL_CALL(scl_alloc(T * sizeof *c->curve_n, "report: curve counts", (void **)&c->curve_n));
  for (size_t s = 0; s < T; s++) {
    int k = 0;
    for (int i = 0; i < p->n_trials; i++) {
      const report_trial *t = &d->trials[p->trials[i]];
      const report_pred *pr = find_pred(t, predictor);
      if (pr && (int)s < t->n_sessions) scratch[k++] = pr->acc[s];
    }
    report_mean_std(scratch, k, &c->curve_mean[s], &c->curve_std[s], &c->curve_n[s]);
  }
  return SCL_OK;
}

static scl_err fill_cell(const report_data *d, const report_row *row, const report_group *g,
                         report_cell *c, double *scratch) {
  c->present = 1;
  c->n_points = g->n_points;
  c->refused = g->selection == REPORT_SEL_REFUSED;
  for (int q = 0; q < g->n_points; q++) {
    if (g->chosen >= 0 && q != g->chosen) continue;
    c->n_failed += g->points[q].n_failed;
    c->n_unfinished += g->points[q].n_unfinished;
    c->n_missing += g->points[q].n_missing;
  }
  if (g->chosen < 0) return SCL_OK;
  const report_point *p = &g->points[g->chosen];
  for (int i = 0; i < p->n_trials; i++) {
    const report_trial *t = &d->trials[p->trials[i]];
    c->n_random += t->status == REPORT_FINISHED && t->random_weights;
  }
  for (int m = 0; m < REPORT_N_METRICS; m++) {
    int k = 0;
    for (int i = 0; i < p->n_trials; i++) {
      const report_pred *pr = find_pred(&d->trials[p->trials[i]], row->predictor);
      if (pr) scratch[k++] = pr->metric[m];
    }
    report_mean_std(scratch, k, &c->m[m].mean, &c->m[m].std, &c->m[m].n);
  }
  SCL_CALL(fill_curve(d, p, row->predictor, c, scratch));
  return SCL_OK;
}

static double shown(double v) {
  char buf[64];
  report_fmt2(buf, sizeof buf, v);
  return strtod(buf, NULL);
}

static void mark_best(report_data *d) {
  for (int ds = 0; ds < d->n_datasets; ds++)
    for (int m = 0; m < REPORT_N_METRICS; m++) {
      double best = NAN;
      int count = 0;
      for (int r = 0; r < d->n_rows; r++) {
        const report_cell *c = report_cell_at(d, r, ds);
        if (d->rows[r].published || d->rows[r].diagnostic || !c->m[m].n) continue;
        double v = shown(c->m[m].mean);
        count++;
        if (isnan(best) || (m == REPORT_FORGET ? v < best : v > best)) best = v;
      }
      for (int r = 0; r < d->n_rows && count >= 2; r++) {
        report_cell *c = report_cell_at(d, r, ds);
        if (d->rows[r].published || d->rows[r].diagnostic || !c->m[m].n) continue;
        c->best[m] = shown(c->m[m].mean) == best;
      }
    }
}

/* Differences of final accuracy, row minus baseline, over the seeds both finished. */
static void fill_paired(const report_data *d, const report_row *row, int ds, report_cell *c,
                        double *scratch) {
  const char *base = d->opts->baseline, *dataset = d->datasets[ds];
  if (row->published || (row->primary && !strcmp(row->method, base))) return;
  const report_group *bg = report_group_find(d, dataset, base);
  const report_group *rg = report_group_find(d, dataset, row->method);
  if (!bg || !rg || bg->chosen < 0 || rg->chosen < 0) return;
  const report_point *bp = &bg->points[bg->chosen], *rp = &rg->points[rg->chosen];
  int k = 0;
  for (int i = 0; i < rp->n_trials; i++) {
    const report_trial *a = &d->trials[rp->trials[i]];
    const report_pred *pa = find_pred(a, row->predictor);
    for (int j = 0; pa && j < bp->n_trials; j++) {
      const report_trial *b = &d->trials[bp->trials[j]];
      const report_pred *pb = find_pred(b, "");
      if (pb && b->seed == a->seed && isfinite(pa->metric[REPORT_FINAL]) &&
          isfinite(pb->metric[REPORT_FINAL]))
        scratch[k++] = pa->metric[REPORT_FINAL] - pb->metric[REPORT_FINAL];
    }
  }
  c->diff_valid = k > 0;
  c->diff.n = k;
  report_mean_ci95(scratch, k, &c->diff.mean, &c->diff_lo, &c->diff_hi);
  report_mean_std(scratch, k, &c->diff.mean, &c->diff.std, &k);
}

static scl_err check_baseline(report_data *d) {
  if (!d->opts->baseline) return SCL_OK;
  for (int k = 0; k < d->n_groups; k++)
    if (!strcmp(d->groups[k].method, d->opts->baseline)) return SCL_OK;
  char names[512] = "";
  size_t o = 0;
  for (int r = 0; r < d->n_rows && o < sizeof names - 1; r++)
    if (!d->rows[r].published && d->rows[r].primary)
      o += (size_t)snprintf(names + o, sizeof names - o, "%s%s", o ? ", " : "", d->rows[r].method);
  return SCL_ERROR(SCL_ERR_ARG, "report: --baseline %s: no trial of that method (methods: %s)",
                   d->opts->baseline, names[0] ? names : "none");
}

scl_err report_model_build(report_data *d) {
  SCL_CALL(report_model_groups(d));
  SCL_CALL(build_rows(d));
  SCL_CALL(check_baseline(d));
  SCL_CALL(report_published_rows(d));
  size_t n = (size_t)d->n_rows * (size_t)d->n_datasets;
  d->cells = calloc(n ? n : 1, sizeof *d->cells);
  SCL_CHECK(d->cells, SCL_ERR_NOMEM, "report: cells");
  double *scratch = NULL;
  SCL_CALL(scl_alloc(((size_t)d->n_trials + 1) * sizeof *scratch, "report: cell scratch",
                     (void **)&scratch));
  scl_err err = SCL_OK;
  for (int r = 0; r < d->n_rows && !err; r++)
    for (int ds = 0; ds < d->n_datasets && !err; ds++) {
      const report_row *row = &d->rows[r];
      const report_group *g =
          row->published ? NULL : report_group_find(d, d->datasets[ds], row->method);
      if (!g) continue;
      err = fill_cell(d, row, g, report_cell_at(d, r, ds), scratch);
      if (!err && d->opts->baseline) fill_paired(d, row, ds, report_cell_at(d, r, ds), scratch);
    }
  scl_free(scratch);
  if (err) return SCL_TRACE(err);
  mark_best(d);
  return SCL_OK;
}

void report_data_free(report_data *d) {
  for (int i = 0; i < d->n_trials; i++) {
    report_trial *t = &d->trials[i];
    free(t->dir), free(t->id), free(t->message);
    free(t->dataset), free(t->method), free(t->category), free(t->point);
    for (int p = 0; p < t->n_pred; p++) free(t->pred[p].name), scl_free(t->pred[p].acc);
    free(t->pred), free(t->order);
  }
  free(d->trials);
  for (int k = 0; k < d->n_groups; k++) {
    for (int q = 0; q < d->groups[k].n_points; q++) {
      report_point *p = &d->groups[k].points[q];
      free(p->key), free(p->trials), free(p->missing);
    }
    free(d->groups[k].points);
  }
  free(d->groups);
  free((void *)d->datasets);
  for (int r = 0; r < d->n_rows; r++) free(d->rows[r].label);
  free(d->rows);
  size_t n = d->cells ? (size_t)d->n_rows * (size_t)d->n_datasets : 0;
  for (size_t i = 0; i < n; i++)
    scl_free(d->cells[i].curve_mean), scl_free(d->cells[i].curve_std),
        scl_free(d->cells[i].curve_n);
  free(d->cells);
  for (int i = 0; i < d->n_pubs; i++) {
    report_pub *p = &d->pubs[i];
    free(p->source), free(p->table), free(p->method), free(p->category);
    free(p->dataset), free(p->metric), free(p->value_text), free(p->note);
  }
  free(d->pubs);
  memset(d, 0, sizeof *d);
}
