/* report.h: `safecl report`: comparison tables and curves from finished trial files.
 *
 * Reads run directories (a sweep's RUN_DIR/trials/<id>/trial.h5, or a single `safecl train`
 * run.dir holding trial.h5) through h5.h only: it never needs index.h5 or the ledger. For each
 * dataset x method it picks one hyperparameter point on the validation split (never on the
 * test set), aggregates the seeds of that point as mean +- sample std (n), and prints the table
 * as Markdown, LaTeX or CSV, grouped prompt-based / representation-based / model mixture /
 * SAFE (with the slow and fast learners as their own rows), published numbers beside ours and
 * marked as reported, and optionally a paired comparison against a baseline over shared seeds.
 * Failed, unfinished and missing trials are counted in the cells and listed under the table
 * (conventions in analysis/SCHEMA.md). Nothing here is collective; the report runs in one process. */
#ifndef SAFECL_REPORT_H
#define SAFECL_REPORT_H

#include <stdio.h>

#include "safecl/core.h"

typedef enum { REPORT_MD = 0, REPORT_LATEX, REPORT_CSV } report_format;

typedef struct report_opts {
  const char *const *dirs; /* run or trial directories, scanned in the order given */
  int n_dirs;
  report_format format;
  int forgetting;        /* 1: add forgetting columns */
  const char *baseline;  /* method name for the paired comparison, or NULL */
  const char *published; /* published-numbers CSV (analysis/published.csv), or NULL */
  const char *plots_dir; /* write <dataset>.svg here (created if absent), or NULL */
} report_opts;

/* Scans, aggregates and writes the report to `out`. Errors: a directory that is neither a run
 * nor a trial directory, no trials at all, an unreadable trial file, a trial file of another
 * schema version (with the hint from h5_check_schema), a malformed published CSV, an unknown
 * baseline. */
SCL_NODISCARD scl_err report_run(const report_opts *opts, FILE *out);

/* The shipped published-numbers file, wherever safecl was started from: $SAFECL_PUBLISHED when
 * set (a missing file there is not replaced by another), else the first readable of
 * <exe dir>/../share/safecl/analysis/published.csv (an installed safecl),
 * <exe dir>/../analysis/published.csv (a build directory inside the checkout), the source
 * directory baked in at build time, and ./analysis/published.csv. Returns 1 with the path in buf,
 * or 0 with the places looked at (comma-separated) in buf. */
int report_published_find(char *buf, size_t cap);

/* ---------------------------------------------------------------------------------------- */
/* Statistics (report_stats.c), exposed for the tests.                                       */

/* Mean and sample standard deviation (divisor n-1; NaN when n < 2) of the finite values in
 * x[0..n); *used counts them. */
void report_mean_std(const double *x, int n, double *mean, double *std, int *used);
/* The Student-t CDF with df > 0 degrees of freedom, from the regularized incomplete beta. */
double report_t_cdf(double t, double df);
/* The p-quantile of Student's t (0 < p < 1, df > 0), by bisection on report_t_cdf to 1e-12. */
double report_t_quantile(double p, double df);
/* The mean of d[0..n) and its two-sided 95% Student-t interval (df = n-1). With n < 2 the
 * interval is NaN. */
void report_mean_ci95(const double *d, int n, double *mean, double *lo, double *hi);

/* ---------------------------------------------------------------------------------------- */
/* Escaping (report_escape.c): write s to f quoted for one table cell of the format.         */

void report_put_csv(FILE *f, const char *s);   /* RFC 4180: quoted when it holds , " CR LF */
void report_put_latex(FILE *f, const char *s); /* & % $ # _ { } ~ ^ \ escaped */
void report_put_md(FILE *f, const char *s);    /* | \ * _ ` [ ] < > escaped, newlines as spaces */
void report_put_xml(FILE *f, const char *s);   /* & < > " ' as entities */

#endif /* SAFECL_REPORT_H */
