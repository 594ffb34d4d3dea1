/* report_internal.h: the report's data model, shared by the files of src/report/ only.
 *
 * Flow: report_scan.c reads trial directories into report_trial records; report_model.c groups
 * them by (dataset, method), picks a hyperparameter point per group, finds missing seeds, and
 * builds rows (method x predictor) and cells (row x dataset); report_published.c loads the
 * published numbers; report_table.c / report_notes.c print; report_svg.c draws the curves.
 * Every array is owned by the report_data that holds it (report_data_free). */
#ifndef SAFECL_REPORT_INTERNAL_H
#define SAFECL_REPORT_INTERNAL_H

#include <stdint.h>
#include <stdio.h>

#include "safecl/report.h"

/* The trial results schema this reader understands: RUN_TRIAL_SCHEMA_VERSION in
 * include/safecl/trial.h (report/ may not include run/ headers, so it is copied here). */
#define REPORT_TRIAL_SCHEMA_VERSION 3
/* The oldest one it reads: version 1 differs only in /losses and /ridge_search, which the report
 * does not read, and version 2 only in storing strings variable-length. */
#define REPORT_TRIAL_SCHEMA_OLDEST 1

enum { REPORT_FINAL = 0, REPORT_AVG, REPORT_FORGET, REPORT_N_METRICS };
enum { REPORT_FINISHED = 0, REPORT_FAILED, REPORT_UNFINISHED };
/* Method families in display order (report_names.c holds their ids and headings). */
enum {
  REPORT_CAT_PROMPT = 0,
  REPORT_CAT_REPR,
  REPORT_CAT_MIXTURE,
  REPORT_CAT_SAFE,
  REPORT_CAT_OTHER,
  REPORT_N_CATS
};

/* How a group's point was chosen. */
enum {
  REPORT_SEL_NONE = 0, /* no finished trial in any point */
  REPORT_SEL_ONLY,     /* one point with finished trials and no validation split */
  REPORT_SEL_VAL,      /* highest mean validation accuracy */
  REPORT_SEL_REFUSED   /* several points, no validation split: not chosen on test */
};

typedef struct report_pred {
  char *name;
  double metric[REPORT_N_METRICS];
  double *acc; /* n_sessions values: accuracy after each session */
} report_pred;

typedef struct report_trial {
  char *dir;          /* the directory holding the trial's files, as reached from the argument */
  uint64_t dev, ino;  /* the directory's identity, to notice it reached twice */
  char *id;           /* trial_id, else the directory's name */
  int status;         /* REPORT_FINISHED / FAILED / UNFINISHED */
  char *message;      /* failed or unfinished: what is known ("" when nothing) */
  int placed;         /* dataset, method and seed are known */
  int random_weights; /* trial.h5 says the backbone had random weights (backbone_random) */
  char *dataset, *method, *category;
  char *point; /* config lines except seed, run.dir, threads, eval.batch */
  int64_t seed;
  int n_sessions;
  double val_acc; /* primary predictor's mean validation accuracy (NaN: no split) */
  int n_pred;
  report_pred *pred; /* [0] = the primary predictor */
  int64_t *order;    /* finished: /class_order (n_order labels); NULL when absent */
  int64_t n_order;
  int64_t order_seed; /* dataset.order_seed of the config: -1 follows the seed (or absent) */
  int shuffled;       /* 0: dataset.shuffle = false or domain-incremental: a fixed order */
  int run;            /* which directory argument it was found under */
  int dup_of;         /* -1, or the trial kept in its place (same id, or same point and seed) */
} report_trial;

typedef struct report_point {
  char *key;
  int n_trials;
  int *trials; /* indexes of placed, non-ignored trials, by seed */
  double val_mean;
  int n_val; /* finished trials with a finite val_acc */
  int n_finished, n_failed, n_unfinished, n_missing;
  int64_t *missing; /* n_missing seeds */
} report_point;

typedef struct report_group {
  const char *dataset, *method, *category; /* borrowed from a trial */
  int n_points;
  report_point *points; /* by key (strcmp) */
  int chosen;           /* index into points, or -1 */
  int selection;        /* REPORT_SEL_* */
} report_group;

typedef struct report_stat {
  int n;
  double mean, std;
} report_stat;

typedef struct report_cell {
  int present; /* the row's method ran on this dataset */
  report_stat m[REPORT_N_METRICS];
  int best[REPORT_N_METRICS];
  int n_failed, n_unfinished, n_missing, n_points, refused;
  int n_random; /* trials of the cell's values that ran on random backbone weights */
  int curve_len;
  double *curve_mean, *curve_std; /* per session; std NaN when n < 2 */
  int *curve_n;
  report_stat diff; /* paired difference of final accuracy vs the baseline */
  double diff_lo, diff_hi;
  int diff_valid;
} report_cell;

/* One published value (a line of published.csv). */
typedef struct report_pub {
  char *source, *table, *method, *category, *dataset, *metric, *value_text, *note;
  double value;
  int metric_index;
  int ref; /* 1-based reference number among the sources shown; 0 = not shown */
} report_pub;

typedef struct report_row {
  int published;                  /* 0: this project's runs; 1: reported numbers */
  int category;                   /* REPORT_CAT_* */
  const char *method, *predictor; /* own rows: ids; published rows: method label */
  int primary, diagnostic;
  int pub_first; /* published rows: index of the first report_pub of this row */
  int ref;       /* published rows: reference number */
  char *label;
} report_row;

typedef struct report_data {
  const report_opts *opts;
  int n_trials, cap_trials;
  report_trial *trials;
  int n_dup;  /* trials ignored as duplicates */
  int n_runs; /* directories scanned so far; report_trial.run indexes them */
  int n_groups;
  report_group *groups;
  int n_datasets;
  const char **datasets; /* ids, in display order */
  int n_rows;
  report_row *rows;
  report_cell *cells; /* n_rows x n_datasets, published rows' cells unused */
  int n_pubs;
  report_pub *pubs;
  int n_refs;
  int baseline_found;
} report_data;

/* report_scan.c */
SCL_NODISCARD scl_err report_scan_dir(report_data *d, const char *dir);
/* Value of `key` in `key = value;` config text, unquoted; malloc'ed, NULL if absent. */
char *report_config_value(const char *text, const char *key);
/* The config text without the keys that do not make a hyperparameter point; malloc'ed. */
SCL_NODISCARD scl_err report_config_point(const char *text, char **out);

/* report_model.c: duplicates, groups, points and the chosen point of each group. */
SCL_NODISCARD scl_err report_model_groups(report_data *d);
/* Names point k of g by the config lines some other point of g lacks ("a = 1; b = 2;"). */
void report_point_name(const report_group *g, int k, char *buf, size_t cap);
/* report_cells.c: rows (with the published ones), cells, best marks, paired differences. */
SCL_NODISCARD scl_err report_model_build(report_data *d);
report_cell *report_cell_at(const report_data *d, int row, int dataset);
const report_group *report_group_find(const report_data *d, const char *dataset,
                                      const char *method);
void report_data_free(report_data *d);

/* report_published.c */
SCL_NODISCARD scl_err report_published_load(report_data *d, const char *path);
SCL_NODISCARD scl_err report_published_rows(report_data *d);
/* The published value of row r on dataset ds for metric m, or NULL. */
const report_pub *report_published_at(const report_data *d, int row, int ds, int m);

/* report_names.c: display names and orders (methods from the registry in learn/method.c and a
 * table of published-only ones; datasets copied from configs/). */
const char *report_method_label(const char *method);
int report_method_rank(const char *method);
const char *report_method_default_category(const char *method);
const char *report_dataset_label(const char *dataset);
int report_dataset_rank(const char *dataset);
/* A family's index (REPORT_CAT_*) from its id ("prompt", "representation", "mixture", "safe";
 * REPORT_CAT_OTHER for any other), its id and its heading. */
int report_category_index(const char *category);
const char *report_category_id(int category);
const char *report_category_label(int category);
const char *report_predictor_label(const char *predictor);
int report_predictor_rank(const char *predictor);
int report_predictor_diagnostic(const char *predictor);
const char *report_metric_name(int metric);  /* "final_acc", ... */
const char *report_metric_label(int metric); /* "final", ... */
int report_metric_index(const char *name);
/* Formats v with 2 decimals into buf (never "-0.00"). */
void report_fmt2(char *buf, size_t cap, double v);

/* report_table.c, report_notes.c, report_svg.c */
SCL_NODISCARD scl_err report_write_table(const report_data *d, FILE *out);
SCL_NODISCARD scl_err report_write_notes(const report_data *d, FILE *out);
SCL_NODISCARD scl_err report_write_csv(const report_data *d, FILE *out);
SCL_NODISCARD scl_err report_write_plots(const report_data *d, const char *dir);

#endif /* SAFECL_REPORT_INTERNAL_H */
