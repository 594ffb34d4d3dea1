/* report_csv.c: the report as one long CSV table for scripts.
 *
 * One header and one line per fact, with a `kind` column: `run` (a cell of this project: one
 * row x dataset x metric), `reported` (a published value), `paired` (the difference against the
 * baseline) and `failed` / `unfinished` / `missing` (one trial each), so that nothing the
 * Markdown notes say is lost, and a reader filters rather than parses layout. Columns that do
 * not apply to a kind are empty; so are undefined numbers (a std of one seed). Numbers are the
 * shortest decimal that reads back to the same double (cfg_format_double), not the 2 decimals
 * of the other formats, so that a script recomputes from them what the files hold; published
 * values keep their printed text. On `run` lines, n_backbone_random counts the n values that come
 * from trials on random backbone weights (backbone_random in trial.h5: no backbone.weights), the
 * "k random weights" of the table's cell. Row order is the table's: rows, then datasets, then metrics;
 * then paired; then trials in scan order. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "report_internal.h"
#include "safecl/config.h"

enum {
  C_KIND,
  C_CAT,
  C_METHOD,
  C_PRED,
  C_DATASET,
  C_METRIC,
  C_MEAN,
  C_STD,
  C_N,
  C_FAILED,
  C_UNFIN,
  C_MISSING,
  C_RANDOM,
  C_BEST,
  C_LO,
  C_HI,
  C_BASE,
  C_SEL,
  C_CONFIG,
  C_SEED,
  C_PATH,
  C_SOURCE,
  C_TABLE,
  C_NOTE,
  C_COUNT
};
static const char *const header[C_COUNT] = {"kind",
                                            "category",
                                            "method",
                                            "predictor",
                                            "dataset",
                                            "metric",
                                            "mean",
                                            "std",
                                            "n",
                                            "n_failed",
                                            "n_unfinished",
                                            "n_missing",
                                            "n_backbone_random",
                                            "best",
                                            "ci95_lo",
                                            "ci95_hi",
                                            "baseline",
                                            "selection",
                                            "config",
                                            "seed",
                                            "path",
                                            "source",
                                            "table",
                                            "note"};

typedef struct csv_line {
  char num[C_COUNT][64]; /* numeric fields, formatted here */
  const char *str[C_COUNT];
} csv_line;

static void emit(FILE *f, const csv_line *l) {
  for (int c = 0; c < C_COUNT; c++) {
    if (c) fputc(',', f);
    report_put_csv(f, l->str[c] ? l->str[c] : l->num[c]);
  }
  fputc('\n', f);
}

static void set_num(csv_line *l, int c, double v) {
  if (isfinite(v)) cfg_format_double(v == 0.0 ? 0.0 : v, l->num[c], sizeof l->num[c]);
}

static void set_int(csv_line *l, int c, long long v) {
  snprintf(l->num[c], sizeof l->num[c], "%lld", v);
}

static const char *selection_id(int sel) {
  static const char *const ids[] = {"none", "single", "validation", "refused"};
  return ids[sel];
}

/* The stored name of the method's primary predictor ("" if no trial finished). */
static const char *primary_name(const report_data *d, const char *method) {
  for (int i = 0; i < d->n_trials; i++)
    if (d->trials[i].status == REPORT_FINISHED && !strcmp(d->trials[i].method, method))
      return d->trials[i].pred[0].name;
  return "";
}

static void base_line(const report_data *d, int r, int ds, csv_line *l, char *config, size_t cap) {
  const report_row *row = &d->rows[r];
  const report_group *g = report_group_find(d, d->datasets[ds], row->method);
  memset(l, 0, sizeof *l);
  l->str[C_CAT] = report_category_id(row->category);
  l->str[C_METHOD] = row->method;
  l->str[C_PRED] = row->primary ? primary_name(d, row->method) : row->predictor;
  l->str[C_DATASET] = d->datasets[ds];
  l->str[C_SEL] = selection_id(g->selection);
  config[0] = '\0';
  if (g->n_points > 1 && g->chosen >= 0) report_point_name(g, g->chosen, config, cap);
  l->str[C_CONFIG] = config;
}

static void run_lines(FILE *f, const report_data *d, int r, int ds, int nm) {
  const report_cell *c = report_cell_at(d, r, ds);
  char config[2048];
  csv_line l;
  for (int m = 0; m < nm && c->present; m++) {
    base_line(d, r, ds, &l, config, sizeof config);
    l.str[C_KIND] = "run";
    l.str[C_METRIC] = report_metric_name(m);
    if (c->m[m].n) set_num(&l, C_MEAN, c->m[m].mean);
    if (c->m[m].n) set_num(&l, C_STD, c->m[m].std);
    set_int(&l, C_N, c->m[m].n);
    set_int(&l, C_FAILED, c->n_failed);
    set_int(&l, C_UNFIN, c->n_unfinished);
    set_int(&l, C_MISSING, c->n_missing);
    set_int(&l, C_RANDOM, c->n_random);
    set_int(&l, C_BEST, c->best[m]);
    emit(f, &l);
  }
}

static void reported_lines(FILE *f, const report_data *d, int r, int ds, int nm) {
  for (int m = 0; m < nm; m++) {
    const report_pub *p = report_published_at(d, r, ds, m);
    if (!p) continue;
    csv_line l;
    memset(&l, 0, sizeof l);
    l.str[C_KIND] = "reported";
    l.str[C_CAT] = p->category;
    l.str[C_METHOD] = p->method;
    l.str[C_DATASET] = p->dataset;
    l.str[C_METRIC] = p->metric;
    l.str[C_MEAN] = p->value_text;
    l.str[C_SOURCE] = p->source;
    l.str[C_TABLE] = p->table;
    l.str[C_NOTE] = p->note;
    emit(f, &l);
  }
}

static void paired_lines(FILE *f, const report_data *d) {
  char config[2048];
  for (int r = 0; r < d->n_rows; r++)
    for (int ds = 0; ds < d->n_datasets && !d->rows[r].published; ds++) {
      const report_cell *c = report_cell_at(d, r, ds);
      if (!c->diff_valid) continue;
      csv_line l;
      base_line(d, r, ds, &l, config, sizeof config);
      l.str[C_KIND] = "paired";
      l.str[C_METRIC] = "final_acc_diff";
      l.str[C_BASE] = d->opts->baseline;
      set_num(&l, C_MEAN, c->diff.mean);
      set_num(&l, C_STD, c->diff.std);
      set_int(&l, C_N, c->diff.n);
      set_num(&l, C_LO, c->diff_lo);
      set_num(&l, C_HI, c->diff_hi);
      emit(f, &l);
    }
}

static void trial_lines(FILE *f, const report_data *d) {
  static const char *const kinds[] = {"finished", "failed", "unfinished"};
  char config[2048];
  for (int i = 0; i < d->n_trials; i++) {
    const report_trial *t = &d->trials[i];
    if (t->status == REPORT_FINISHED || t->dup_of >= 0) continue;
    csv_line l;
    memset(&l, 0, sizeof l);
    l.str[C_KIND] = kinds[t->status];
    l.str[C_PATH] = t->dir;
    l.str[C_NOTE] = t->message ? t->message : "";
    const report_group *g = t->placed ? report_group_find(d, t->dataset, t->method) : NULL;
    if (g) {
      l.str[C_CAT] = report_category_id(report_category_index(g->category));
      l.str[C_METHOD] = t->method;
      l.str[C_DATASET] = t->dataset;
      set_int(&l, C_SEED, t->seed);
      config[0] = '\0';
      for (int q = 0; q < g->n_points && g->n_points > 1; q++)
        if (!strcmp(g->points[q].key, t->point)) report_point_name(g, q, config, sizeof config);
      l.str[C_CONFIG] = config;
    }
    emit(f, &l);
  }
}

static void missing_lines(FILE *f, const report_data *d) {
  char config[2048];
  for (int k = 0; k < d->n_groups; k++) {
    const report_group *g = &d->groups[k];
    for (int q = 0; q < g->n_points; q++)
      for (int j = 0; j < g->points[q].n_missing; j++) {
        csv_line l;
        memset(&l, 0, sizeof l);
        l.str[C_KIND] = "missing";
        l.str[C_CAT] = report_category_id(report_category_index(g->category));
        l.str[C_METHOD] = g->method;
        l.str[C_DATASET] = g->dataset;
        set_int(&l, C_SEED, g->points[q].missing[j]);
        config[0] = '\0';
        if (g->n_points > 1) report_point_name(g, q, config, sizeof config);
        l.str[C_CONFIG] = config;
        emit(f, &l);
      }
  }
}

scl_err report_write_csv(const report_data *d, FILE *out) {
  const int nm = d->opts->forgetting ? REPORT_N_METRICS : REPORT_FORGET;
  for (int c = 0; c < C_COUNT; c++) fprintf(out, "%s%s", c ? "," : "", header[c]);
  fputc('\n', out);
  for (int r = 0; r < d->n_rows; r++)
    for (int ds = 0; ds < d->n_datasets; ds++) {
      if (d->rows[r].published)
        reported_lines(out, d, r, ds, nm);
      else
        run_lines(out, d, r, ds, nm);
    }
  if (d->opts->baseline) paired_lines(out, d);
  trial_lines(out, d);
  missing_lines(out, d);
  return SCL_OK;
}
