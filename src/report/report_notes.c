/* report_notes.c: the notes under the Markdown and LaTeX tables, which account for everything
 * the cells only count or mark.
 *
 * In order: the sources of reported numbers with their protocol notes; how the configuration
 * of each dataset x method was chosen (on validation accuracy, or the only one, or refused
 * because there was no validation split); whether the seeds of each dataset varied its class
 * order (the released code draws one order per seed, so published spreads over seeds are over
 * class orders; docs/methods.md a.2); diagnostic predictors; then every failed, unfinished and
 * missing trial by name, and ignored duplicates. A configuration is named by the
 * config lines that distinguish it from the other points of its group, so a sweep over one key
 * prints that key only. Nothing here is printed when there is nothing to say. */
#include <stdio.h>
#include <string.h>

#include "report_internal.h"

typedef struct writer {
  FILE *f;
  report_format fmt;
  int started;
} writer;

static void put(writer *w, const char *s) {
  if (w->fmt == REPORT_MD)
    report_put_md(w->f, s);
  else
    report_put_latex(w->f, s);
}

/* A path or config text: a code span in Markdown (no escaping needed inside unless it holds a
 * backtick), typewriter in LaTeX. */
static void code(writer *w, const char *s) {
  if (w->fmt == REPORT_MD && !strchr(s, '`')) {
    fprintf(w->f, "`%s`", s);
  } else if (w->fmt == REPORT_MD) {
    report_put_md(w->f, s);
  } else {
    fputs("\\texttt{", w->f);
    report_put_latex(w->f, s);
    fputs("}", w->f);
  }
}

static void begin(writer *w) {
  if (!w->started)
    fputs(w->fmt == REPORT_MD ? "### Notes\n\n"
                              : "\n\\smallskip\n\\begin{minipage}{\\linewidth}\\footnotesize\n",
          w->f);
  w->started = 1;
  fputs(w->fmt == REPORT_MD ? "- " : "", w->f);
}

static void end(writer *w) { fputs(w->fmt == REPORT_MD ? "\n" : "\\par\n", w->f); }

static void put_group(writer *w, const report_group *g) {
  put(w, report_dataset_label(g->dataset));
  fputs(" / ", w->f);
  put(w, report_method_label(g->method));
}

static void references(writer *w, const report_data *d) {
  for (int ref = 1; ref <= d->n_refs; ref++) {
    const report_pub *first = NULL;
    for (int i = 0; i < d->n_pubs && !first; i++)
      if (d->pubs[i].ref == ref) first = &d->pubs[i];
    if (!first) continue;
    begin(w);
    fprintf(w->f, "[%d] Reported, not re-run: ", ref);
    put(w, first->source);
    fputs(", ", w->f);
    put(w, first->table);
    fputs(".", w->f);
    for (int i = 0; i < d->n_pubs; i++) { /* each distinct note once */
      const report_pub *p = &d->pubs[i];
      int dup = p->ref != ref || !p->note[0];
      for (int j = 0; j < i && !dup; j++)
        dup = d->pubs[j].ref == ref && !strcmp(d->pubs[j].note, p->note);
      if (dup) continue;
      size_t n = strlen(p->note);
      fputc(' ', w->f);
      put(w, p->method);
      fputs(": ", w->f);
      put(w, p->note);
      if (p->note[n - 1] != '.') fputc('.', w->f);
    }
    end(w);
  }
}

static void put_val(writer *w, const report_point *p) {
  char v[64];
  report_fmt2(v, sizeof v, p->val_mean);
  if (p->n_val)
    fprintf(w->f, " (validation %s, %d seed%s)", v, p->n_val, p->n_val == 1 ? "" : "s");
  else
    fprintf(w->f, " (no validation, %d finished)", p->n_finished);
}

static void selection(writer *w, const report_data *d) {
  char name[2048];
  for (int k = 0; k < d->n_groups; k++) {
    const report_group *g = &d->groups[k];
    if (g->n_points < 2) continue;
    begin(w);
    put_group(w, g);
    fprintf(w->f, ": %d configurations; ", g->n_points);
    if (g->selection == REPORT_SEL_VAL) fputs("chosen on mean validation accuracy: ", w->f);
    if (g->selection == REPORT_SEL_ONLY)
      fputs("no validation split; the only one that finished: ", w->f);
    if (g->selection == REPORT_SEL_REFUSED)
      fputs("no validation split, so none is chosen (never on the test set): ", w->f);
    if (g->selection == REPORT_SEL_NONE) fputs("none finished: ", w->f);
    for (int q = 0; q < g->n_points; q++) {
      report_point_name(g, q, name, sizeof name);
      fputs(q ? "; " : "", w->f);
      code(w, name);
      put_val(w, &g->points[q]);
      fputs(q == g->chosen ? ", chosen" : "", w->f);
    }
    fputs(".", w->f);
    end(w);
  }
  int any = 0;
  for (int k = 0; k < d->n_groups; k++) {
    const report_group *g = &d->groups[k];
    if (g->n_points != 1 || g->selection != REPORT_SEL_ONLY) continue;
    if (!any++) {
      begin(w);
      fputs("No validation split (one configuration, used as run, not selected): ", w->f);
    } else {
      fputs(", ", w->f);
    }
    put_group(w, g);
  }
  if (any) {
    fputs(".", w->f);
    end(w);
  }
}

static int same_order(const report_trial *a, const report_trial *b) {
  return a->n_order == b->n_order &&
         !memcmp(a->order, b->order, (size_t)a->n_order * sizeof *a->order);
}

/* Over the finished trials of `dataset` that recorded their class order, pairs with different
 * seeds: *varied if some pair has different orders, *kept if some pair has the same one. The
 * pinned seed when every such trial pins the same one (else -1), and whether every one of them
 * is unshuffled. */
static void order_over_seeds(const report_data *d, const char *dataset, int *varied, int *kept,
                             int64_t *pinned, int *unshuffled) {
  *varied = *kept = 0;
  *pinned = -2;
  *unshuffled = 1;
  for (int i = 0; i < d->n_trials; i++) {
    const report_trial *a = &d->trials[i];
    if (a->status != REPORT_FINISHED || a->dup_of >= 0 || !a->order || strcmp(a->dataset, dataset))
      continue;
    *pinned = *pinned == -2 || *pinned == a->order_seed ? a->order_seed : -1;
    *unshuffled &= !a->shuffled;
    for (int j = i + 1; j < d->n_trials && !(*varied && *kept); j++) {
      const report_trial *b = &d->trials[j];
      if (b->status != REPORT_FINISHED || b->dup_of >= 0 || !b->order || b->seed == a->seed ||
          strcmp(b->dataset, dataset))
        continue;
      if (same_order(a, b))
        *kept = 1;
      else
        *varied = 1;
    }
  }
}

/* "Class order over seeds: CIFAR-100 pinned (order_seed = 1993); IN-R varies with seed." Only
 * datasets with finished trials of at least two seeds are named. */
static void class_orders(writer *w, const report_data *d) {
  int any = 0;
  for (int k = 0; k < d->n_datasets; k++) {
    int varied, kept, unshuffled;
    int64_t pinned;
    order_over_seeds(d, d->datasets[k], &varied, &kept, &pinned, &unshuffled);
    if (!varied && !kept) continue;
    if (!any++) {
      begin(w);
      fputs(
          "Class order over seeds (the released code draws one per seed, so its published "
          "spreads over seeds are over class orders; docs/methods.md a.2): ",
          w->f);
    } else {
      fputs("; ", w->f);
    }
    put(w, report_dataset_label(d->datasets[k]));
    if (varied && kept)
      fputs(" varies with seed in some trials only", w->f);
    else if (varied)
      fputs(" varies with seed", w->f);
    else if (unshuffled)
      fputs(" fixed (not shuffled)", w->f);
    else if (pinned >= 0) {
      char pin[64];
      snprintf(pin, sizeof pin, " pinned (order_seed = %lld)", (long long)pinned);
      put(w, pin);
    } else
      fputs(" the same for every seed", w->f);
  }
  if (any) {
    fputs(".", w->f);
    end(w);
  }
}

static void diagnostics(writer *w, const report_data *d) {
  for (int r = 0; r < d->n_rows; r++) {
    const report_row *row = &d->rows[r];
    if (row->published || !row->diagnostic) continue;
    begin(w);
    put(w, row->label);
    if (!strcmp(row->predictor, "authors_protocol"))
      fputs(
          ": the released code's max(fast learner, aggregation) per session, chosen with "
          "test labels (docs/methods.md d.2); shown to compare with published numbers, never "
          "ranked.",
          w->f);
    else if (!strcmp(row->predictor, "pilot_diag"))
      fputs(
          ": the prompt method evaluated as PILOT's released code does it, on batches of the "
          "class-sorted test list with a batch-wise prompt vote (and DualPrompt's prefix "
          "reshape; docs/architecture.md section 4): the batches leak the task of every test "
          "image, so it is not an accuracy; shown to compare with published numbers, never "
          "ranked.",
          w->f);
    else
      fputs(": a diagnostic predictor, never ranked.", w->f);
    end(w);
  }
}

/* "Synthetic / RanPAC seed 3 [method.rp.dim = 512;]" */
static void put_trial(writer *w, const report_data *d, const report_trial *t) {
  char name[2048];
  const report_group *g = t->placed ? report_group_find(d, t->dataset, t->method) : NULL;
  if (!g) return;
  put_group(w, g);
  fprintf(w->f, " seed %lld", (long long)t->seed);
  for (int q = 0; q < g->n_points && g->n_points > 1; q++)
    if (!strcmp(g->points[q].key, t->point)) {
      report_point_name(g, q, name, sizeof name);
      fputs(" ", w->f);
      code(w, name);
    }
  fputs(" ", w->f);
}

static void trials_with_status(writer *w, const report_data *d, int status, const char *what) {
  for (int i = 0; i < d->n_trials; i++) {
    const report_trial *t = &d->trials[i];
    if (t->status != status || t->dup_of >= 0) continue;
    begin(w);
    fprintf(w->f, "%s: ", what);
    put_trial(w, d, t);
    fputs(t->placed ? "(" : "(not placed, no config: ", w->f);
    code(w, t->dir);
    fputs("): ", w->f);
    put(w, t->message && t->message[0] ? t->message : "no message");
    end(w);
  }
}

static void missing(writer *w, const report_data *d) {
  char name[2048];
  for (int k = 0; k < d->n_groups; k++) {
    const report_group *g = &d->groups[k];
    for (int q = 0; q < g->n_points; q++) {
      const report_point *p = &g->points[q];
      if (!p->n_missing) continue;
      begin(w);
      fputs("Missing: ", w->f);
      put_group(w, g);
      if (g->n_points > 1) {
        report_point_name(g, q, name, sizeof name);
        fputs(" ", w->f);
        code(w, name);
      }
      fprintf(w->f, " seed%s", p->n_missing > 1 ? "s" : "");
      for (int j = 0; j < p->n_missing; j++)
        fprintf(w->f, "%s %lld", j ? "," : "", (long long)p->missing[j]);
      fputs(p->n_missing > 1 ? ": no trial, although other trials of this dataset in the same run "
                               "directory have these seeds."
                             : ": no trial, although other trials of this dataset in the same run "
                               "directory have this seed.",
            w->f);
      end(w);
    }
  }
}

static void duplicates(writer *w, const report_data *d) {
  for (int i = 0; i < d->n_trials; i++) {
    const report_trial *t = &d->trials[i];
    if (t->dup_of < 0) continue;
    begin(w);
    fputs("Ignored: ", w->f);
    code(w, t->dir);
    fputs(" duplicates ", w->f);
    code(w, d->trials[t->dup_of].dir);
    fputs(" (same trial, or same configuration and seed).", w->f);
    end(w);
  }
}

scl_err report_write_notes(const report_data *d, FILE *out) {
  writer w = {out, d->opts->format, 0};
  references(&w, d);
  selection(&w, d);
  class_orders(&w, d);
  diagnostics(&w, d);
  trials_with_status(&w, d, REPORT_FAILED, "Failed");
  trials_with_status(&w, d, REPORT_UNFINISHED, "Unfinished");
  missing(&w, d);
  duplicates(&w, d);
  if (w.started) fputs(w.fmt == REPORT_MD ? "\n" : "\\end{minipage}\n", out);
  return SCL_OK;
}
