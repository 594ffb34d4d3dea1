/* report_table.c: the Markdown and LaTeX tables: accuracy per method and dataset, and the
 * paired comparison against the baseline.
 *
 * Both formats share one cell text, so they cannot disagree: "mean ± std (n)", with the counts
 * of failed, unfinished and missing trials of the chosen point appended inside the parentheses
 * ("(2; 1 failed; 1 missing)"; "k random weights" counts values from trials whose backbone had
 * random weights, backbone_random in trial.h5), "—" for no value, "not chosen (k points)" where several
 * hyperparameter points had no validation split. Reported (published) values are printed as
 * written in the CSV, not reformatted, since their precision is the source's. The best mean of
 * this project's runs per column is bold (the mean and std, not the count). Numbers are fixed at
 * 2 decimals; the notes below the table (report_notes.c) explain every mark. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "report_internal.h"

typedef struct cell_syms {
  const char *pm, *dash, *bold_on, *bold_off;
} cell_syms;

static const cell_syms md_syms = {" ± ", "—", "**", "**"};
static const cell_syms tex_syms = {" $\\pm$ ", "--", "\\textbf{", "}"};

/* "(n; k failed; k unfinished; k missing)", or "" when the cell has nothing to count. */
static void count_text(const report_cell *c, int n, char *buf, size_t cap) {
  size_t o = 0;
  buf[0] = '\0';
  if (!n && !c->n_failed && !c->n_unfinished && !c->n_missing && !c->n_random) return;
  o += (size_t)snprintf(buf + o, cap - o, "(%d", n);
  if (c->n_failed) o += (size_t)snprintf(buf + o, cap - o, "; %d failed", c->n_failed);
  if (c->n_unfinished) o += (size_t)snprintf(buf + o, cap - o, "; %d unfinished", c->n_unfinished);
  if (c->n_missing) o += (size_t)snprintf(buf + o, cap - o, "; %d missing", c->n_missing);
  if (c->n_random) o += (size_t)snprintf(buf + o, cap - o, "; %d random weights", c->n_random);
  snprintf(buf + o, cap - o, ")");
}

static void put_cell(FILE *f, const report_cell *c, int m, const cell_syms *s) {
  char mean[64], std[64], count[160];
  if (!c->present) {
    fputs(s->dash, f);
    return;
  }
  if (c->refused) {
    fprintf(f, "not chosen (%d points)", c->n_points);
    return;
  }
  const report_stat *st = &c->m[m];
  count_text(c, st->n, count, sizeof count);
  if (!st->n) {
    fprintf(f, "%s%s%s", s->dash, count[0] ? " " : "", count);
    return;
  }
  report_fmt2(mean, sizeof mean, st->mean);
  report_fmt2(std, sizeof std, st->std);
  fputs(c->best[m] ? s->bold_on : "", f);
  fprintf(f, "%s%s%s", mean, st->n >= 2 ? s->pm : "", st->n >= 2 ? std : "");
  fputs(c->best[m] ? s->bold_off : "", f);
  fprintf(f, " %s", count);
}

static int n_metrics(const report_data *d) {
  return d->opts->forgetting ? REPORT_N_METRICS : REPORT_FORGET;
}

static void put_pub(FILE *f, const report_data *d, int r, int ds, int m, const cell_syms *s) {
  const report_pub *p = report_published_at(d, r, ds, m);
  fputs(p ? p->value_text : s->dash, f);
}

/* "RanPAC (reported [1])" */
static void put_label(FILE *f, const report_row *row, report_format fmt) {
  if (fmt == REPORT_MD)
    report_put_md(f, row->label);
  else
    report_put_latex(f, row->label);
  if (row->published)
    fprintf(f, fmt == REPORT_MD ? " (reported [%d])" : " (reported~[%d])", row->ref);
}

static void md_header(FILE *f, const report_data *d, int per_dataset) {
  fputs("| Method |", f);
  for (int ds = 0; ds < d->n_datasets; ds++)
    for (int m = 0; m < per_dataset; m++) {
      fputc(' ', f);
      report_put_md(f, report_dataset_label(d->datasets[ds]));
      if (per_dataset > 1) fprintf(f, " %s", report_metric_label(m));
      fputs(" |", f);
    }
  fputs("\n| :--- |", f);
  for (int i = 0; i < d->n_datasets * per_dataset; i++) fputs(" ---: |", f);
  fputc('\n', f);
}

/* A category heading row when row r starts a new category. */
static void category_row(FILE *f, const report_data *d, int r, int columns, report_format fmt) {
  if (r > 0 && d->rows[r - 1].category == d->rows[r].category) return;
  const char *label = report_category_label(d->rows[r].category);
  if (fmt == REPORT_MD) {
    fprintf(f, "| *%s* |", label);
    for (int i = 0; i < columns; i++) fputs(" |", f);
    fputc('\n', f);
  } else {
    fprintf(f, "\\midrule\n\\multicolumn{%d}{l}{\\textit{%s}} \\\\\n", columns + 1, label);
  }
}

static void md_accuracy(FILE *f, const report_data *d) {
  const int nm = n_metrics(d);
  fprintf(f,
          "## Accuracy (%%)\n\n"
          "Final accuracy, average incremental accuracy%s: mean ± std over seeds, (n) finished "
          "seeds, of the configuration chosen on the validation split; bold: best of this "
          "project's runs per column. Rows marked reported are published numbers, not re-run "
          "(sources in the notes).\n\n",
          nm > REPORT_FORGET ? " and forgetting" : "");
  md_header(f, d, nm);
  for (int r = 0; r < d->n_rows; r++) {
    category_row(f, d, r, d->n_datasets * nm, REPORT_MD);
    fputs("| ", f);
    put_label(f, &d->rows[r], REPORT_MD);
    fputs(" |", f);
    for (int ds = 0; ds < d->n_datasets; ds++)
      for (int m = 0; m < nm; m++) {
        fputc(' ', f);
        if (d->rows[r].published)
          put_pub(f, d, r, ds, m, &md_syms);
        else
          put_cell(f, report_cell_at(d, r, ds), m, &md_syms);
        fputs(" |", f);
      }
    fputc('\n', f);
  }
  fputc('\n', f);
}

static void tex_accuracy(FILE *f, const report_data *d) {
  const int nm = n_metrics(d);
  fprintf(f,
          "%% needs \\usepackage{booktabs}\n"
          "\\begin{table}[t]\n\\centering\n\\scriptsize\n"
          "\\caption{Final accuracy, average incremental accuracy%s (\\%%): mean $\\pm$ std over "
          "seeds, (n) finished seeds, of the configuration chosen on the validation split; bold: "
          "best of this project's runs per column. Rows marked reported are published numbers, "
          "not re-run.}\n\\begin{tabular}{l",
          nm > REPORT_FORGET ? " and forgetting" : "");
  for (int i = 0; i < d->n_datasets * nm; i++) fputc('r', f);
  fputs("}\n\\toprule\n", f);
  for (int ds = 0; ds < d->n_datasets; ds++) {
    fprintf(f, " & \\multicolumn{%d}{c}{", nm);
    report_put_latex(f, report_dataset_label(d->datasets[ds]));
    fputc('}', f);
  }
  if (d->n_datasets) fputs(" \\\\\n", f);
  for (int ds = 0; ds < d->n_datasets; ds++)
    fprintf(f, "%s\\cmidrule(lr){%d-%d}%s", ds ? " " : "", 2 + ds * nm, 1 + (ds + 1) * nm,
            ds + 1 == d->n_datasets ? "\n" : "");
  fputs("Method", f);
  for (int ds = 0; ds < d->n_datasets; ds++)
    for (int m = 0; m < nm; m++) fprintf(f, " & %s", report_metric_label(m));
  fputs(" \\\\\n", f);
  for (int r = 0; r < d->n_rows; r++) {
    category_row(f, d, r, d->n_datasets * nm, REPORT_LATEX);
    put_label(f, &d->rows[r], REPORT_LATEX);
    for (int ds = 0; ds < d->n_datasets; ds++)
      for (int m = 0; m < nm; m++) {
        fputs(" & ", f);
        if (d->rows[r].published)
          put_pub(f, d, r, ds, m, &tex_syms);
        else
          put_cell(f, report_cell_at(d, r, ds), m, &tex_syms);
      }
    fputs(" \\\\\n", f);
  }
  fputs("\\bottomrule\n\\end{tabular}\n", f);
}

static void put_signed(FILE *f, double v) {
  char buf[64];
  report_fmt2(buf, sizeof buf, v);
  fprintf(f, "%s%s", v > 0 && strcmp(buf, "0.00") ? "+" : "", buf);
}

static void put_diff(FILE *f, const report_data *d, int r, int ds, const cell_syms *s) {
  const report_row *row = &d->rows[r];
  const report_cell *c = report_cell_at(d, r, ds);
  char lo[64], hi[64];
  if (row->primary && !strcmp(row->method, d->opts->baseline) && c->present) {
    fputs("baseline", f);
    return;
  }
  if (!c->diff_valid) {
    fputs(s->dash, f);
    return;
  }
  put_signed(f, c->diff.mean);
  if (c->diff.n >= 2) {
    report_fmt2(lo, sizeof lo, c->diff_lo);
    report_fmt2(hi, sizeof hi, c->diff_hi);
    fprintf(f, " [%s, %s]", lo, hi);
  }
  fprintf(f, " (%d)", c->diff.n);
}

static void paired(FILE *f, const report_data *d, report_format fmt) {
  const cell_syms *s = fmt == REPORT_MD ? &md_syms : &tex_syms;
  const char *base = report_method_label(d->opts->baseline);
  if (fmt == REPORT_MD) {
    fprintf(f, "## Paired difference in final accuracy vs %s\n\n", base);
    fputs(
        "Row minus baseline in percentage points, over the seeds both finished: mean [95% "
        "Student-t interval] (n shared seeds).\n\n",
        f);
    md_header(f, d, 1);
  } else {
    fputs(
        "\\begin{table}[t]\n\\centering\n\\scriptsize\n\\caption{Paired difference in final "
        "accuracy vs ",
        f);
    report_put_latex(f, base);
    fputs(
        " (percentage points, row minus baseline, over the seeds both finished): mean [95\\% "
        "Student-t interval] (n shared seeds).}\n\\begin{tabular}{l",
        f);
    for (int ds = 0; ds < d->n_datasets; ds++) fputc('r', f);
    fputs("}\n\\toprule\nMethod", f);
    for (int ds = 0; ds < d->n_datasets; ds++) {
      fputs(" & ", f);
      report_put_latex(f, report_dataset_label(d->datasets[ds]));
    }
    fputs(" \\\\\n", f);
  }
  for (int r = 0; r < d->n_rows; r++) {
    if (d->rows[r].published) continue;
    category_row(f, d, r, d->n_datasets, fmt);
    fputs(fmt == REPORT_MD ? "| " : "", f);
    put_label(f, &d->rows[r], fmt);
    for (int ds = 0; ds < d->n_datasets; ds++) {
      fputs(fmt == REPORT_MD ? " | " : " & ", f);
      put_diff(f, d, r, ds, s);
    }
    fputs(fmt == REPORT_MD ? " |\n" : " \\\\\n", f);
  }
  fputs(fmt == REPORT_MD ? "\n" : "\\bottomrule\n\\end{tabular}\n\\end{table}\n\n", f);
}

/* "Run directories: `a`, `b`. Trials: 3 finished, 1 failed, ..." (a LaTeX comment in LaTeX). */
static void summary(FILE *f, const report_data *d) {
  int n[3] = {0, 0, 0}, missing = 0;
  const int md = d->opts->format == REPORT_MD;
  for (int i = 0; i < d->n_trials; i++)
    if (d->trials[i].dup_of < 0) n[d->trials[i].status]++;
  for (int k = 0; k < d->n_groups; k++)
    for (int q = 0; q < d->groups[k].n_points; q++) missing += d->groups[k].points[q].n_missing;
  fputs(md ? "Run directories: " : "% Run directories: ", f);
  for (int i = 0; i < d->opts->n_dirs; i++) {
    fputs(i ? ", " : "", f);
    if (md && !strchr(d->opts->dirs[i], '`'))
      fprintf(f, "`%s`", d->opts->dirs[i]);
    else if (md)
      report_put_md(f, d->opts->dirs[i]);
    else
      report_put_latex(f, d->opts->dirs[i]);
  }
  fprintf(f,
          ".%sTrials: %d finished, %d failed, %d unfinished, %d missing, %d duplicate%s ignored.\n",
          md ? " " : "\n% ", n[REPORT_FINISHED], n[REPORT_FAILED], n[REPORT_UNFINISHED], missing,
          d->n_dup, d->n_dup == 1 ? "" : "s");
  fputs(md ? "\n" : "", f);
}

scl_err report_write_table(const report_data *d, FILE *out) {
  if (d->opts->format == REPORT_MD) {
    fputs("# safecl report\n\n", out);
    summary(out, d);
    md_accuracy(out, d);
  } else {
    summary(out, d);
    tex_accuracy(out, d);
  }
  SCL_CALL(report_write_notes(d, out));
  if (d->opts->format == REPORT_LATEX) fputs("\\end{table}\n\n", out);
  if (d->opts->baseline) paired(out, d, d->opts->format);
  return SCL_OK;
}
