/* report_svg.c: accuracy after each session, one SVG per dataset, hand-written.
 *
 * Each of this project's rows on the dataset (diagnostic predictors excluded) is a line of the
 * mean accuracy over the chosen configuration's seeds with a band of +- one sample std (no band
 * where only one seed has the session), in a fixed colour-blind-safe palette (Okabe-Ito). Each
 * line also has its own dash pattern and hollow marker shape (the k-th row the k-th of each list,
 * the lists' lengths coprime, so 20 rows in a row differ in both), so that two equal curves stay
 * visible as one line with both patterns and both markers, also in grey-scale print; the legend
 * shows the same line and marker. The y range is the data's rounded out to tens within [0, 100],
 * so curves of a hard and an easy dataset are each readable. The file is built in memory and
 * published atomically, so a plot is whole or absent. No library: SVG 1.1 is a few elements,
 * and the text is deterministic (coordinates with 2 decimals, rows in table order). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "safecl/publish.h"
#include "report_internal.h"

enum { W = 720, H = 420, X0 = 60, X1 = 500, Y0 = 360, Y1 = 50, LEGEND_X = 520 };
static const char *const palette[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                      "#E69F00", "#56B4E9", "#000000", "#F0E442"};
enum { N_COLORS = (int)(sizeof palette / sizeof palette[0]) };
/* Dash patterns (stroke-dasharray) and marker shapes: 5 and 4 entries. */
static const char *const dashes[] = {"none", "8 4", "2 3", "10 3 2 3", "4 2"};
enum { N_DASHES = (int)(sizeof dashes / sizeof dashes[0]) };
enum { MARK_CIRCLE, MARK_SQUARE, MARK_TRIANGLE, MARK_DIAMOND, N_MARKS };
static const char *const mark_names[N_MARKS] = {"circle", "square", "triangle", "diamond"};

typedef struct axes {
  int T;
  double lo, hi;
} axes;

static int plotted(const report_data *d, int r, int ds) {
  const report_cell *c = report_cell_at(d, r, ds);
  return !d->rows[r].published && !d->rows[r].diagnostic && c->present && c->curve_len > 0;
}

static double px(const axes *a, int s) {
  return a->T > 1 ? X0 + (double)s * (X1 - X0) / (a->T - 1) : 0.5 * (X0 + X1);
}

static double py(const axes *a, double v) { return Y0 - (v - a->lo) * (Y0 - Y1) / (a->hi - a->lo); }

static axes find_axes(const report_data *d, int ds) {
  axes a = {0, INFINITY, -INFINITY};
  for (int r = 0; r < d->n_rows; r++) {
    if (!plotted(d, r, ds)) continue;
    const report_cell *c = report_cell_at(d, r, ds);
    if (c->curve_len > a.T) a.T = c->curve_len;
    for (int s = 0; s < c->curve_len; s++) {
      double m = c->curve_mean[s], sd = isfinite(c->curve_std[s]) ? c->curve_std[s] : 0.0;
      if (!isfinite(m)) continue;
      a.lo = fmin(a.lo, m - sd);
      a.hi = fmax(a.hi, m + sd);
    }
  }
  if (!isfinite(a.lo)) a.lo = 0.0, a.hi = 100.0;
  a.lo = fmax(0.0, floor(a.lo / 10.0) * 10.0);
  a.hi = fmin(100.0, ceil(a.hi / 10.0) * 10.0);
  if (a.hi - a.lo < 10.0) {
    if (a.hi < 100.0)
      a.hi = a.lo + 10.0;
    else
      a.lo = a.hi - 10.0;
  }
  return a;
}

static void frame(FILE *f, const report_data *d, int ds, const axes *a) {
  fprintf(f,
          "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
          "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" height=\"%d\" "
          "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n"
          "<title>",
          W, H, W, H);
  report_put_xml(f, report_dataset_label(d->datasets[ds]));
  fputs(": accuracy after each session</title>\n", f);
  fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", W, H);
  fprintf(f, "<text x=\"%d\" y=\"28\" font-size=\"15\">", X0);
  report_put_xml(f, report_dataset_label(d->datasets[ds]));
  fputs(": accuracy after each session (mean &#177; std over seeds)</text>\n", f);
  double step = a->hi - a->lo >= 40.0 ? 10.0 : 5.0;
  for (double v = a->lo; v <= a->hi + 1e-9; v += step)
    fprintf(f,
            "<line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" stroke=\"#dddddd\"/>\n"
            "<text x=\"%d\" y=\"%.2f\" text-anchor=\"end\">%.0f</text>\n",
            X0, py(a, v), X1, py(a, v), X0 - 6, py(a, v) + 4, v);
  int every = a->T > 20 ? (a->T + 9) / 10 : 1;
  for (int s = 0; s < a->T; s++)
    if (s % every == 0 || s == a->T - 1)
      fprintf(f, "<text x=\"%.2f\" y=\"%d\" text-anchor=\"middle\">%d</text>\n", px(a, s), Y0 + 18,
              s + 1);
  fprintf(f,
          "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#000000\"/>\n"
          "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#000000\"/>\n"
          "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">session</text>\n"
          "<text x=\"16\" y=\"%d\" text-anchor=\"middle\" transform=\"rotate(-90 16 %d)\">"
          "accuracy (%%)</text>\n",
          X0, Y0, X1, Y0, X0, Y0, X0, Y1, (X0 + X1) / 2, Y0 + 38, (Y0 + Y1) / 2, (Y0 + Y1) / 2);
}

/* A hollow marker of shape `mark` centred at (x, y), 4.5 px from centre to edge or corner. */
static void marker(FILE *f, int mark, double x, double y, const char *color) {
  const double r = 4.5;
  fprintf(f,
          "<path class=\"marker-%s\" fill=\"#ffffff\" fill-opacity=\"0.6\" stroke=\"%s\" "
          "stroke-width=\"1.5\" d=\"",
          mark_names[mark], color);
  switch (mark) {
    case MARK_CIRCLE:
      fprintf(f, "M%.2f,%.2f a%.2f,%.2f 0 1,0 %.2f,0 a%.2f,%.2f 0 1,0 %.2f,0 Z", x - r, y, r, r,
              2 * r, r, r, -2 * r);
      break;
    case MARK_SQUARE:
      fprintf(f, "M%.2f,%.2f h%.2f v%.2f h%.2f Z", x - 0.8 * r, y - 0.8 * r, 1.6 * r, 1.6 * r,
              -1.6 * r);
      break;
    case MARK_TRIANGLE:
      fprintf(f, "M%.2f,%.2f L%.2f,%.2f L%.2f,%.2f Z", x, y - r, x + r, y + 0.8 * r, x - r,
              y + 0.8 * r);
      break;
    default:
      fprintf(f, "M%.2f,%.2f L%.2f,%.2f L%.2f,%.2f L%.2f,%.2f Z", x, y - r, x + r, y, x, y + r,
              x - r, y);
  }
  fputs("\"/>\n", f);
}

static void series(FILE *f, const report_cell *c, const axes *a, int k, const char *label) {
  const char *color = palette[k % N_COLORS], *dash = dashes[k % N_DASHES];
  const int mark = k % N_MARKS;
  int band = 0;
  for (int s = 0; s < c->curve_len; s++) band |= isfinite(c->curve_std[s]);
  if (band) {
    fprintf(f, "<polygon fill=\"%s\" fill-opacity=\"0.18\" stroke=\"none\" points=\"", color);
    for (int s = 0; s < c->curve_len; s++)
      if (isfinite(c->curve_mean[s]))
        fprintf(f, "%.2f,%.2f ", px(a, s),
                py(a, c->curve_mean[s] + (isfinite(c->curve_std[s]) ? c->curve_std[s] : 0.0)));
    for (int s = c->curve_len - 1; s >= 0; s--)
      if (isfinite(c->curve_mean[s]))
        fprintf(f, "%.2f,%.2f ", px(a, s),
                py(a, c->curve_mean[s] - (isfinite(c->curve_std[s]) ? c->curve_std[s] : 0.0)));
    fputs("\"/>\n", f);
  }
  fprintf(f,
          "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" stroke-dasharray=\"%s\" "
          "points=\"",
          color, dash);
  for (int s = 0; s < c->curve_len; s++)
    if (isfinite(c->curve_mean[s])) fprintf(f, "%.2f,%.2f ", px(a, s), py(a, c->curve_mean[s]));
  fputs("\"/>\n", f);
  for (int s = 0; s < c->curve_len; s++)
    if (isfinite(c->curve_mean[s])) marker(f, mark, px(a, s), py(a, c->curve_mean[s]), color);
  int y = Y1 + 18 * k;
  fprintf(f,
          "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\" "
          "stroke-dasharray=\"%s\"/>\n",
          LEGEND_X, y, LEGEND_X + 24, y, color, dash);
  marker(f, mark, LEGEND_X + 12, y, color);
  fprintf(f, "<text x=\"%d\" y=\"%d\">", LEGEND_X + 30, y + 4);
  report_put_xml(f, label);
  fprintf(f, " (n=%d)</text>\n", c->m[REPORT_FINAL].n);
}

static scl_err plot_dataset(const report_data *d, int ds, const char *path) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  SCL_CHECK(f, SCL_ERR_NOMEM, "report: plot buffer for %s", path);
  axes a = find_axes(d, ds);
  frame(f, d, ds, &a);
  for (int r = 0, k = 0; r < d->n_rows; r++)
    if (plotted(d, r, ds)) series(f, report_cell_at(d, r, ds), &a, k++, d->rows[r].label);
  fputs("</svg>\n", f);
  scl_err err = fclose(f) ? SCL_ERROR(SCL_ERR_NOMEM, "report: plot %s", path) : SCL_OK;
  if (!err) err = io_write_file_atomic(path, buf, len);
  free(buf);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}

scl_err report_write_plots(const report_data *d, const char *dir) {
  if (mkdir(dir, 0777) != 0 && errno != EEXIST)
    return SCL_ERROR(SCL_ERR_IO, "report: cannot create plot directory %s: %s", dir,
                     strerror(errno));
  for (int ds = 0; ds < d->n_datasets; ds++) {
    char name[256], path[4096];
    size_t n = 0;
    for (const char *s = d->datasets[ds]; *s && n + 1 < sizeof name; s++)
      name[n++] = (strchr("._-", *s) || (*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') ||
                   (*s >= 'A' && *s <= 'Z'))
                      ? *s
                      : '_';
    name[n] = '\0';
    snprintf(path, sizeof path, "%s/%s.svg", dir, n && name[0] != '.' ? name : "_dataset");
    SCL_CALL(plot_dataset(d, ds, path));
  }
  return SCL_OK;
}
