/* trials_tsv.c: RUN_DIR/trials.tsv, the sweep's trials as a table a person reads beside the
 * hashed directory names (`column -t -s $'\t'`, a spreadsheet, pandas.read_csv(sep="\t")).
 *
 * One header line and one row per trial of the run directory's state, in the state's order (plan
 * order of the first job that planned it): trial_id, dataset, method, seed, then one column per
 * setting key any trial's grid or point settings name (first seen first; empty where a trial
 * does not set it), then backbone_random (1 random backbone weights, 0 given, empty if the PLAN
 * record of an older safecl did not say), status (pending, running, finished, failed), retries, final_acc,
 * avg_acc, val_acc, seconds (empty unless finished; the shortest decimal that reads back to the
 * same double), message (why a failed trial failed) and path (trials/<id>, relative to RUN_DIR).
 * A tab, line break or backslash inside a field is written as \t, \n, \r or \\. Derived like
 * index.h5 (the ledgers and trial files are the record) and published by write-then-rename, so a
 * reader sees a whole table, old or new. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orch_internal.h"
#include "safecl/config.h"
#include "safecl/publish.h"

static void put_field(FILE *f, const char *s, size_t n) {
  for (size_t i = 0; i < n && s[i]; i++) {
    switch (s[i]) {
      case '\t':
        fputs("\\t", f);
        break;
      case '\n':
        fputs("\\n", f);
        break;
      case '\r':
        fputs("\\r", f);
        break;
      case '\\':
        fputs("\\\\", f);
        break;
      default:
        fputc(s[i], f);
    }
  }
}

static void put_str(FILE *f, const char *s) {
  fputc('\t', f);
  if (s) put_field(f, s, strlen(s));
}

static void put_num(FILE *f, double v, int show) {
  char buf[40] = "";
  if (show && isfinite(v)) cfg_format_double(v, buf, sizeof buf);
  fputc('\t', f);
  fputs(buf, f);
}

/* Field k (0 dataset, 1 method, 2 seed, 3 settings: the rest) of a PLAN text. */
static const char *plan_field(const char *text, int k, size_t *len) {
  const char *p = text ? text : "";
  for (int i = 0; i < k && p; i++) {
    p = strchr(p, '\t');
    if (p) p++;
  }
  if (!p) p = "";
  *len = k == 3 ? strlen(p) : strcspn(p, "\t");
  return p;
}

typedef struct keys {
  char **v;
  int n, cap;
} keys;

static int key_index(const keys *k, const char *name, size_t n) {
  for (int i = 0; i < k->n; i++)
    if (strlen(k->v[i]) == n && !strncmp(k->v[i], name, n)) return i;
  return -1;
}

/* The next "key=value" line of a settings text at *p: its start, key length and line length;
 * 0 at the end. Lines without '=' are skipped. */
static int next_setting(const char **p, const char **line, size_t *klen, size_t *llen) {
  while (*p && **p) {
    const char *nl = strchr(*p, '\n');
    *line = *p;
    *llen = nl ? (size_t)(nl - *p) : strlen(*p);
    *klen = strcspn(*p, "=");
    *p = nl ? nl + 1 : *p + *llen;
    if (*klen < *llen) return 1;
  }
  return 0;
}

static scl_err collect_keys(const orch_state *s, keys *k) {
  for (int64_t i = 0; i < s->n; i++) {
    size_t n = 0;
    const char *p = plan_field(s->trials[i].plan_text, 3, &n), *line = NULL;
    size_t klen = 0, llen = 0;
    while (next_setting(&p, &line, &klen, &llen)) {
      if (key_index(k, line, klen) >= 0) continue;
      if (k->n == k->cap) {
        int cap = k->cap ? 2 * k->cap : 16;
        char **grown = realloc(k->v, (size_t)cap * sizeof *grown);
        SCL_CHECK(grown, SCL_ERR_NOMEM, "trials.tsv: setting keys");
        k->v = grown;
        k->cap = cap;
      }
      k->v[k->n] = strndup(line, klen);
      SCL_CHECK(k->v[k->n], SCL_ERR_NOMEM, "trials.tsv: setting keys");
      k->n++;
    }
  }
  return SCL_OK;
}

static void put_row(FILE *f, const orch_trial_state *t, const keys *k, const char **value,
                    size_t *value_len) {
  size_t n = 0;
  fputs(t->id, f);
  for (int j = 0; j < 3; j++) {
    const char *v = plan_field(t->plan_text, j, &n);
    fputc('\t', f);
    if (!(j == 2 && n == 1 && v[0] == '-')) put_field(f, v, n);
  }
  for (int j = 0; j < k->n; j++) value[j] = NULL;
  const char *p = plan_field(t->plan_text, 3, &n), *line = NULL;
  size_t klen = 0, llen = 0;
  while (next_setting(&p, &line, &klen, &llen)) {
    int j = key_index(k, line, klen);
    if (j < 0) continue;
    value[j] = line + klen + 1;
    value_len[j] = llen - klen - 1;
  }
  for (int j = 0; j < k->n; j++) {
    fputc('\t', f);
    if (value[j]) put_field(f, value[j], value_len[j]);
  }
  const int done = t->status == ORCH_TRIAL_FINISHED;
  put_str(f, t->backbone_random < 0 ? "" : t->backbone_random ? "1" : "0");
  put_str(f, orch_trial_status_name(t->status));
  fprintf(f, "\t%d", t->retries);
  put_num(f, t->final_acc, done);
  put_num(f, t->avg_acc, done);
  put_num(f, t->val_acc, done);
  put_num(f, t->seconds, done);
  put_str(f, t->status == ORCH_TRIAL_FAILED && t->message ? t->message : "");
  fprintf(f, "\ttrials/%s\n", t->id);
}

scl_err orch_trials_tsv_write(const char *run_dir, const orch_state *s) {
  char path[4200];
  snprintf(path, sizeof path, "%s/trials.tsv", run_dir);
  keys k = {0};
  char *buf = NULL;
  size_t len = 0;
  const char **value = NULL;
  size_t *value_len = NULL;
  scl_err err = collect_keys(s, &k);
  if (!err) {
    value = calloc((size_t)k.n + 1, sizeof *value);
    value_len = calloc((size_t)k.n + 1, sizeof *value_len);
    if (!value || !value_len) err = SCL_ERROR(SCL_ERR_NOMEM, "trials.tsv: row");
  }
  FILE *f = err ? NULL : open_memstream(&buf, &len);
  if (!err && !f) err = SCL_ERROR(SCL_ERR_NOMEM, "trials.tsv: text buffer");
  if (f) {
    fputs("trial_id\tdataset\tmethod\tseed", f);
    for (int j = 0; j < k.n; j++) put_str(f, k.v[j]);
    fputs(
        "\tbackbone_random\tstatus\tretries\tfinal_acc\tavg_acc\tval_acc\tseconds\tmessage\tpath\n",
        f);
    for (int64_t i = 0; i < s->n; i++)
      if (s->trials[i].plan_text) put_row(f, &s->trials[i], &k, value, value_len);
    if (fclose(f) != 0) err = SCL_ERROR(SCL_ERR_NOMEM, "trials.tsv: text buffer");
  }
  if (!err) err = io_write_file_atomic(path, buf, len);
  free(buf);
  free(value);
  free(value_len);
  for (int j = 0; j < k.n; j++) free(k.v[j]);
  free(k.v);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}
