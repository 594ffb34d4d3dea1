/* index.c: RUN_DIR/index.h5, one row per trial of the run directory (docs/architecture.md section
 * 6).
 *
 * Derived, never the only copy of anything: rows come from the ledgers' PLAN records, statuses
 * from the ledgers checked against the trial files (a trial is finished iff trials/<id>/trial.h5
 * exists; numbers missing from the ledger are read from that file), so deleting or damaging
 * index.h5 loses nothing and `safecl status RUN_DIR --reindex` writes it again. Published by
 * write-then-rename, so a reader sees the old or the new index, never half of one.
 *
 * Layout (schema ORCH_INDEX_SCHEMA_VERSION), every dataset with one entry per trial:
 *   trial_id, dataset, method, settings, status ("pending"|"running"|"finished"|"failed"),
 *   message (strings); seed (int64, -1 = from the config files); retries (int64);
 *   final_acc, avg_acc, val_acc, seconds (float64, NaN unless finished); expected_seconds.
 *   Root attributes: provenance, kind = "sweep index", sweep, n_trials.
 * Schema 2 stores strings fixed-length (NUL-padded to each column's longest: no HDF5 global heap)
 * when that takes fewer bytes than variable-length (fixed_is_smaller), else variable-length, as
 * schema 1 always did; h5py reads both as bytes, h5_read_strings both as strings. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "orch_internal.h"
#include "safecl/h5.h"

#define ORCH_INDEX_SCHEMA_VERSION 2

scl_err orch_state_reconcile_files(orch_state *s, const char *run_dir) {
  orch_trial_dirs dirs;
  SCL_CALL(orch_trial_dirs_list(run_dir, &dirs));
  for (int64_t i = 0; i < s->n; i++) {
    orch_trial_state *t = &s->trials[i];
    int have = orch_trial_dirs_finished(&dirs, run_dir, t->id);
    if (have && t->status != ORCH_TRIAL_FINISHED) {
      if (orch_rundir_read_result(run_dir, t->id, &t->final_acc, &t->avg_acc, &t->val_acc,
                                  &t->seconds) != SCL_OK) {
        scl_log_error_traceback();
        scl_error_take(NULL, 0);
        continue;
      }
      t->status = ORCH_TRIAL_FINISHED;
      t->measured = 0;
    } else if (!have && t->status == ORCH_TRIAL_FINISHED) {
      t->status = ORCH_TRIAL_PENDING;
    }
  }
  orch_trial_dirs_free(&dirs);
  return SCL_OK;
}

/* Field k (0 dataset, 1 method, 2 seed, 3 settings) of a PLAN text, into buf. */
static const char *plan_field(const char *text, int k, char *buf, size_t cap) {
  const char *p = text ? text : "";
  for (int i = 0; i < k && p; i++) {
    p = strchr(p, '\t');
    if (p) p++;
  }
  if (!p) p = "";
  size_t n = k == 3 ? strlen(p) : strcspn(p, "\t");
  snprintf(buf, cap, "%.*s", (int)n, p);
  return buf;
}

typedef struct columns {
  char **str[6]; /* trial_id, dataset, method, settings, status, message */
  int64_t *seed, *retries;
  double *num[5]; /* final, avg, val, seconds, expected */
} columns;

static const char *const str_names[6] = {"trial_id", "dataset", "method",
                                         "settings", "status",  "message"};
static const char *const num_names[5] = {"final_acc", "avg_acc", "val_acc", "seconds",
                                         "expected_seconds"};

static void columns_free(columns *c, int64_t n) {
  for (int k = 0; k < 6; k++) {
    for (int64_t i = 0; c->str[k] && i < n; i++) free(c->str[k][i]);
    free(c->str[k]);
  }
  scl_free(c->seed);
  scl_free(c->retries);
  for (int k = 0; k < 5; k++) scl_free(c->num[k]);
}

static scl_err fill(const orch_state *s, columns *c) {
  size_t n = (size_t)s->n;
  for (int k = 0; k < 6; k++) {
    c->str[k] = calloc(n ? n : 1, sizeof(char *));
    SCL_CHECK(c->str[k], SCL_ERR_NOMEM, "index column %s", str_names[k]);
  }
  SCL_CALL(scl_alloc(n * sizeof(int64_t), "index", (void **)&c->seed));
  SCL_CALL(scl_alloc(n * sizeof(int64_t), "index", (void **)&c->retries));
  for (int k = 0; k < 5; k++) SCL_CALL(scl_alloc(n * sizeof(double), "index", (void **)&c->num[k]));
  char buf[ORCH_LEDGER_TEXT_MAX];
  for (int64_t i = 0; i < s->n; i++) {
    const orch_trial_state *t = &s->trials[i];
    int done = t->status == ORCH_TRIAL_FINISHED;
    const char *v[6] = {t->id,
                        NULL,
                        NULL,
                        NULL,
                        orch_trial_status_name(t->status),
                        t->status == ORCH_TRIAL_FAILED && t->message ? t->message : ""};
    for (int k = 0; k < 6; k++) {
      c->str[k][i] =
          strdup(v[k] ? v[k] : plan_field(t->plan_text, k - 1 + (k == 3), buf, sizeof buf));
      SCL_CHECK(c->str[k][i], SCL_ERR_NOMEM, "index strings");
    }
    plan_field(t->plan_text, 2, buf, sizeof buf);
    c->seed[i] = buf[0] && buf[0] != '-' ? atoll(buf) : -1;
    c->retries[i] = t->retries;
    double nums[5] = {t->final_acc, t->avg_acc, t->val_acc, t->seconds, t->cost};
    for (int k = 0; k < 5; k++) c->num[k][i] = done || k == 4 ? nums[k] : NAN;
  }
  return SCL_OK;
}

/* 1 if the string columns take fewer bytes fixed-length (each padded to its longest) than
 * variable-length: a 16-byte reference per string plus a global heap object of a 16-byte header
 * and the text padded to 8 bytes. Fixed wins for a sweep's short names and ids; one long failure
 * message in a large sweep makes variable-length the smaller. */
static int fixed_is_smaller(const columns *c, int64_t n) {
  double fixed = 0, vlen = 0;
  for (int k = 0; k < 6; k++) {
    size_t longest = 1;
    for (int64_t i = 0; i < n; i++) {
      size_t len = strlen(c->str[k][i]);
      if (len > longest) longest = len;
      vlen += 32.0 + (double)((len + 7) / 8 * 8);
    }
    fixed += (double)longest * (double)n;
  }
  return fixed <= vlen;
}

static scl_err write_columns(h5_file *f, const columns *c, int64_t n) {
  for (int k = 0; k < 6; k++)
    SCL_CALL(h5_write_strings(f, str_names[k], (const char *const *)c->str[k], n));
  SCL_CALL(h5_write_i64_1d(f, "seed", c->seed, n));
  SCL_CALL(h5_write_i64_1d(f, "retries", c->retries, n));
  for (int k = 0; k < 5; k++) SCL_CALL(h5_write_f64_1d(f, num_names[k], c->num[k], n));
  return SCL_OK;
}

scl_err orch_index_write(const char *run_dir, const char *name, const orch_state *state) {
  char path[4200];
  snprintf(path, sizeof path, "%s/index.h5", run_dir);
  columns c = {0};
  h5_file *f = NULL;
  scl_err err = SCL_OK;
  SCL_CALL_GOTO(err, fill(state, &c), done);
  SCL_CALL_GOTO(err, h5_file_create_atomic(path, &f), done);
  if (fixed_is_smaller(&c, state->n)) SCL_CALL_GOTO(err, h5_file_fixed_strings(f), done);
  SCL_CALL_GOTO(err, h5_write_provenance(f, ORCH_INDEX_SCHEMA_VERSION), done);
  SCL_CALL_GOTO(err, h5_attr_write_str(f, NULL, "kind", "sweep index"), done);
  SCL_CALL_GOTO(err, h5_attr_write_str(f, NULL, "sweep", name), done);
  SCL_CALL_GOTO(err, h5_attr_write_i64(f, NULL, "n_trials", state->n), done);
  if (state->n > 0) SCL_CALL_GOTO(err, write_columns(f, &c, state->n), done);
  SCL_CALL_GOTO(err, h5_file_commit(&f), done);
done:
  h5_file_abort(&f);
  columns_free(&c, state->n);
  return err;
}

scl_err orch_index_rebuild(const char *run_dir) {
  orch_state *s = NULL;
  SCL_CALL(orch_state_load(run_dir, &s));
  if (s->job.ended) orch_state_settle(s);
  scl_err err = orch_state_reconcile_files(s, run_dir);
  if (!err) err = orch_index_write(run_dir, s->job.sweep[0] ? s->job.sweep : "sweep", s);
  if (!err) err = orch_trials_tsv_write(run_dir, s);
  orch_state_destroy(&s);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}
