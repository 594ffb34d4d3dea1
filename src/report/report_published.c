/* report_published.c: published numbers (analysis/published.csv) as rows beside our own.
 *
 * The CSV is RFC 4180 (quoted fields may hold commas, quotes and line breaks) with the header
 * source,table,method,category,dataset,metric,value,protocol_note in any column order. Every
 * line is validated (category, metric, a finite value, no duplicate of the same source, table,
 * method, dataset and metric) and a bad line is an error naming file:line, because a silently
 * skipped reference number is worse than none. A published row is one (category, method,
 * source, table); it is shown only when it has a value in a column of the report, and it is
 * placed right after our own rows of the method with the same display name (case-insensitive;
 * a published "APER+Adapter" is a variant of our "APER"), else at the end of its category. Reference numbers [k] follow the order rows appear in.
 *
 * The shipped file is found from the executable's own path (report_published_find), so
 * `safecl report` shows it from any working directory, installed or in the build tree. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "report_internal.h"

enum {
  COL_SOURCE,
  COL_TABLE,
  COL_METHOD,
  COL_CATEGORY,
  COL_DATASET,
  COL_METRIC,
  COL_VALUE,
  COL_NOTE,
  N_COLS
};
static const char *const col_names[N_COLS] = {"source",  "table",  "method", "category",
                                              "dataset", "metric", "value",  "protocol_note"};

typedef struct csv_reader {
  const char *p, *path;
  int line;
} csv_reader;

/* Reads one field into a new string; *end_of_record is set at a line break or the end. */
static scl_err csv_field(csv_reader *r, char **out, int *end_of_record) {
  size_t cap = 64, n = 0;
  char *buf = malloc(cap);
  SCL_CHECK(buf, SCL_ERR_NOMEM, "report: csv field");
  int quoted = *r->p == '"';
  if (quoted) r->p++;
  for (;;) {
    char c = *r->p;
    if (!c) {
      if (quoted) {
        free(buf);
        return SCL_ERROR(SCL_ERR_FORMAT, "%s:%d: unterminated quoted field", r->path, r->line);
      }
      break;
    }
    if (quoted && c == '"') {
      if (r->p[1] != '"') {
        r->p++;
        quoted = 0;
        continue;
      }
      r->p++;
    } else if (!quoted && (c == ',' || c == '\n' || c == '\r')) {
      break;
    }
    if (c == '\n') r->line++;
    if (n + 2 > cap) {
      char *grown = realloc(buf, cap *= 2);
      if (!grown) free(buf);
      SCL_CHECK(grown, SCL_ERR_NOMEM, "report: csv field");
      buf = grown;
    }
    buf[n++] = c;
    r->p++;
  }
  buf[n] = '\0';
  *end_of_record = *r->p != ',';
  if (*r->p == ',') r->p++;
  if (*r->p == '\r') r->p++;
  if (*end_of_record && *r->p == '\n') r->p++, r->line++;
  *out = buf;
  return SCL_OK;
}

/* One record (an array of *n fields) starting at *line; *n == 0 at the end of the text. */
static scl_err csv_record(csv_reader *r, char ***fields, int *n, int *line) {
  *fields = NULL;
  *n = 0;
  while (*r->p == '\n' || *r->p == '\r') r->line += *r->p++ == '\n';
  *line = r->line;
  if (!*r->p) return SCL_OK;
  for (int end = 0; !end;) {
    char **grown = realloc(*fields, ((size_t)*n + 1) * sizeof *grown);
    SCL_CHECK(grown, SCL_ERR_NOMEM, "report: csv record");
    *fields = grown;
    SCL_CALL(csv_field(r, &(*fields)[*n], &end));
    (*n)++;
  }
  return SCL_OK;
}

static void free_fields(char **fields, int n) {
  for (int i = 0; i < n; i++) free(fields[i]);
  free(fields);
}

static scl_err header_map(char **fields, int n, const char *path, int map[N_COLS]) {
  for (int c = 0; c < N_COLS; c++) {
    map[c] = -1;
    for (int i = 0; i < n; i++)
      if (!strcmp(fields[i], col_names[c])) map[c] = i;
    SCL_CHECK(map[c] >= 0, SCL_ERR_FORMAT,
              "%s: header has no column '%s' (expected %s,%s,%s,%s,%s,%s,%s,%s)", path,
              col_names[c], col_names[0], col_names[1], col_names[2], col_names[3], col_names[4],
              col_names[5], col_names[6], col_names[7]);
  }
  return SCL_OK;
}

static int same_key(const report_pub *a, const report_pub *b) {
  return !strcmp(a->source, b->source) && !strcmp(a->table, b->table) &&
         !strcmp(a->method, b->method) && !strcmp(a->category, b->category);
}

/* Takes fields[map[...]] into a new report_pub at d->pubs[d->n_pubs] and validates it. */
static scl_err add_pub(report_data *d, char **fields, int n, const int map[N_COLS],
                       const char *path, int line) {
  if (n <= 0) return SCL_OK;
  for (int c = 0; c < N_COLS; c++)
    SCL_CHECK(map[c] < n, SCL_ERR_FORMAT, "%s:%d: %d fields, fewer than the header's", path, line,
              n);
  report_pub *grown = realloc(d->pubs, ((size_t)d->n_pubs + 1) * sizeof *grown);
  SCL_CHECK(grown, SCL_ERR_NOMEM, "report: published values");
  d->pubs = grown;
  report_pub *p = &d->pubs[d->n_pubs++];
  memset(p, 0, sizeof *p);
  char **dst[N_COLS] = {&p->source,  &p->table,  &p->method,     &p->category,
                        &p->dataset, &p->metric, &p->value_text, &p->note};
  for (int c = 0; c < N_COLS; c++) {
    *dst[c] = strdup(fields[map[c]]);
    if (!*dst[c]) return SCL_ERROR(SCL_ERR_NOMEM, "report: published value");
  }
  char *end = NULL;
  p->value = strtod(p->value_text, &end);
  if (!p->value_text[0] || *end || !isfinite(p->value))
    return SCL_ERROR(SCL_ERR_FORMAT, "%s:%d: value '%s' is not a number", path, line,
                     p->value_text);
  p->metric_index = report_metric_index(p->metric);
  SCL_CHECK(p->metric_index >= 0, SCL_ERR_FORMAT,
            "%s:%d: metric '%s' (expected final_acc, avg_acc or forgetting)", path, line,
            p->metric);
  SCL_CHECK(report_category_index(p->category) != REPORT_CAT_OTHER, SCL_ERR_FORMAT,
            "%s:%d: category '%s' (expected %s, %s, %s or %s)", path, line, p->category,
            report_category_id(REPORT_CAT_PROMPT), report_category_id(REPORT_CAT_REPR),
            report_category_id(REPORT_CAT_MIXTURE), report_category_id(REPORT_CAT_SAFE));
  SCL_CHECK(p->source[0] && p->method[0] && p->dataset[0], SCL_ERR_FORMAT,
            "%s:%d: empty source, method or dataset", path, line);
  for (int i = 0; i + 1 < d->n_pubs; i++)
    if (same_key(&d->pubs[i], p) && !strcmp(d->pubs[i].dataset, p->dataset) &&
        d->pubs[i].metric_index == p->metric_index)
      return SCL_ERROR(SCL_ERR_FORMAT, "%s:%d: %s %s %s %s given twice", path, line, p->source,
                       p->method, p->dataset, p->metric);
  return SCL_OK;
}

scl_err report_published_load(report_data *d, const char *path) {
  FILE *f = NULL;
  SCL_CALL(scl_fopen_regular(path, "published numbers", &f));
  size_t cap = 1 << 16, n = 0;
  char *text = malloc(cap);
  scl_err err = text ? SCL_OK : SCL_ERROR(SCL_ERR_NOMEM, "report: %s", path);
  while (!err && (n += fread(text + n, 1, cap - n - 1, f)) == cap - 1) {
    char *grown = cap < ((size_t)1 << 26) ? realloc(text, cap *= 2) : NULL;
    SCL_CHECK_GOTO(err, done, grown, SCL_ERR_FORMAT, "report: %s is too large", path);
    text = grown;
  }
  if (!err) text[n] = '\0';
  csv_reader r = {text, path, 1};
  int map[N_COLS];
  char **fields = NULL;
  int nf = 0, line = 1;
  if (!err) err = csv_record(&r, &fields, &nf, &line);
  if (!err && !nf) err = SCL_ERROR(SCL_ERR_FORMAT, "%s: empty (no header line)", path);
  if (!err) err = header_map(fields, nf, path, map);
  while (!err) {
    free_fields(fields, nf);
    fields = NULL;
    err = csv_record(&r, &fields, &nf, &line);
    if (err || !nf) break;
    err = add_pub(d, fields, nf, map, path, line);
  }
  free_fields(fields, nf);
done:
  free(text);
  fclose(f);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}

static int shown_dataset(const report_data *d, const char *dataset) {
  for (int ds = 0; ds < d->n_datasets; ds++)
    if (!strcmp(d->datasets[ds], dataset)) return ds;
  return -1;
}

static int pub_visible(const report_data *d, const report_pub *p) {
  return shown_dataset(d, p->dataset) >= 0 &&
         (p->metric_index != REPORT_FORGET || d->opts->forgetting);
}

const report_pub *report_published_at(const report_data *d, int row, int ds, int m) {
  const report_row *r = &d->rows[row];
  if (!r->published) return NULL;
  const report_pub *key = &d->pubs[r->pub_first];
  for (int i = r->pub_first; i < d->n_pubs; i++)
    if (same_key(&d->pubs[i], key) && !strcmp(d->pubs[i].dataset, d->datasets[ds]) &&
        d->pubs[i].metric_index == m)
      return &d->pubs[i];
  return NULL;
}

/* 1 if a published method name belongs to our method labelled `label`: the same name, or the
 * name followed by '+' and a variant (APER+Adapter after APER), case-insensitively. */
static int pub_matches(const char *method, const char *label) {
  size_t n = strlen(label);
  return !strncasecmp(method, label, n) && (method[n] == '\0' || method[n] == '+');
}

/* Appends to out the published rows of category cat matching method label `label` (NULL: all
 * that are left, each followed by the other rows of its method), marking them used. */
static void emit_pub_rows(report_row *pub_rows, int n_pub, int *used, int cat, const char *label,
                          report_row *out, int *n_out) {
  for (int i = 0; i < n_pub; i++)
    if (!used[i] && pub_rows[i].category == cat &&
        (!label || pub_matches(pub_rows[i].method, label))) {
      used[i] = 1;
      out[(*n_out)++] = pub_rows[i];
      if (!label) emit_pub_rows(pub_rows, n_pub, used, cat, pub_rows[i].method, out, n_out);
    }
}

/* Numbers the references in row order: one per distinct (source, table). */
static void number_refs(report_data *d) {
  for (int r = 0; r < d->n_rows; r++) {
    report_row *row = &d->rows[r];
    if (!row->published) continue;
    const report_pub *p = &d->pubs[row->pub_first];
    for (int q = 0; q < r && !row->ref; q++) {
      const report_pub *o = d->rows[q].published ? &d->pubs[d->rows[q].pub_first] : NULL;
      if (o && !strcmp(o->source, p->source) && !strcmp(o->table, p->table))
        row->ref = d->rows[q].ref;
    }
    if (!row->ref) row->ref = ++d->n_refs;
    for (int i = row->pub_first; i < d->n_pubs; i++)
      if (same_key(&d->pubs[i], p) && pub_visible(d, &d->pubs[i])) d->pubs[i].ref = row->ref;
  }
}

scl_err report_published_rows(report_data *d) {
  report_row *pub_rows = calloc((size_t)d->n_pubs + 1, sizeof *pub_rows);
  report_row *rows = calloc((size_t)d->n_pubs + (size_t)d->n_rows + 1, sizeof *rows);
  int *used = calloc((size_t)d->n_pubs + 1, sizeof *used);
  int n_pub = 0, n = 0;
  scl_err err = pub_rows && rows && used ? SCL_OK : SCL_ERROR(SCL_ERR_NOMEM, "report: rows");
  for (int i = 0; i < d->n_pubs && !err; i++) {
    const report_pub *p = &d->pubs[i];
    int seen = 0;
    for (int k = 0; k < n_pub && !seen; k++) seen = same_key(&d->pubs[pub_rows[k].pub_first], p);
    for (int j = i; j < d->n_pubs && !seen; j++)
      if (same_key(&d->pubs[j], p) && pub_visible(d, &d->pubs[j])) {
        report_row *row = &pub_rows[n_pub++];
        row->published = 1;
        row->category = report_category_index(p->category);
        row->method = p->method;
        row->predictor = "";
        row->primary = 1;
        row->pub_first = i;
        row->label = strdup(p->method);
        if (!row->label) err = SCL_ERROR(SCL_ERR_NOMEM, "report: row label");
        break;
      }
  }
  for (int cat = 0; cat < REPORT_N_CATS && !err; cat++) {
    for (int r = 0; r < d->n_rows; r++) {
      if (d->rows[r].category != cat) continue;
      rows[n++] = d->rows[r];
      int last = r + 1 == d->n_rows || strcmp(d->rows[r + 1].method, d->rows[r].method);
      if (last)
        emit_pub_rows(pub_rows, n_pub, used, cat, report_method_label(d->rows[r].method), rows, &n);
    }
    emit_pub_rows(pub_rows, n_pub, used, cat, NULL, rows, &n);
  }
  if (err) {
    for (int k = 0; k < n_pub; k++) free(pub_rows[k].label);
    free(rows);
  } else {
    free(d->rows);
    d->rows = rows;
    d->n_rows = n;
    number_refs(d);
  }
  free(pub_rows);
  free(used);
  return err;
}

#ifndef SAFECL_SOURCE_DIR
#define SAFECL_SOURCE_DIR ""
#endif

int report_published_find(char *buf, size_t cap) {
  const char *env = getenv("SAFECL_PUBLISHED");
  if (env && env[0]) {
    snprintf(buf, cap, "%s", env);
    return access(env, R_OK) == 0;
  }
  char exe[PATH_MAX] = "", where[4][PATH_MAX + 64];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  exe[n > 0 ? n : 0] = '\0';
  char *slash = strrchr(exe, '/');
  if (slash) *slash = '\0';
  int k = 0;
  if (exe[0]) {
    snprintf(where[k++], sizeof where[0], "%s/../share/safecl/analysis/published.csv", exe);
    snprintf(where[k++], sizeof where[0], "%s/../analysis/published.csv", exe);
  }
  if (SAFECL_SOURCE_DIR[0])
    snprintf(where[k++], sizeof where[0], "%s/analysis/published.csv", SAFECL_SOURCE_DIR);
  snprintf(where[k++], sizeof where[0], "analysis/published.csv");
  for (int i = 0; i < k; i++)
    if (access(where[i], R_OK) == 0) {
      snprintf(buf, cap, "%s", where[i]);
      return 1;
    }
  size_t o = 0;
  buf[0] = '\0';
  for (int i = 0; i < k && o < cap; i++)
    o += (size_t)snprintf(buf + o, cap - o, "%s%s", i ? ", " : "", where[i]);
  return 0;
}
