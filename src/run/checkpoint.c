/* checkpoint.c: the trial checkpoint at session boundaries (run.dir/ckpt.h5).
 *
 * Holds everything a resumed trial needs to finish with exactly the metrics of an uninterrupted
 * one: the trial id, how many sessions are done, the metrics so far and the method's state (the
 * named tensors of ops->state). Written whole under a temporary name and published by rename,
 * so a kill during the write leaves the previous checkpoint intact. Caches (test features of
 * frozen networks) are not saved: they are recomputed, which changes no number. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "safecl/h5.h"
#include "trial_internal.h"

#define CKPT_SCHEMA_VERSION 1

static void ckpt_path(const trial_state *st, char *buf, size_t cap) {
  snprintf(buf, cap, "%s/ckpt.h5", st->cfg->run_dir);
}

/* The HDF5 layout of one state entry: F32 and F64 as 2-D (a 1-D tensor is n x 1) or 1-D F64,
 * I64 as 1-D (flattened). Reading uses the same mapping, so write and read are symmetric. */
static scl_err io_entry(h5_file *f, const learn_state_entry *e, int write) {
  char name[160];
  snprintf(name, sizeof name, "method/%s", e->name);
  int64_t rows = e->shape[0], cols = e->ndim == 2 ? e->shape[1] : 1;
  switch (e->dtype) {
    case LEARN_F32:
      if (write)
        SCL_CALL(h5_write_f32_2d(f, name, e->data, rows, cols, 0));
      else
        SCL_CALL(h5_read_f32_2d(f, name, e->data, rows, cols));
      break;
    case LEARN_F64:
      if (write)
        SCL_CALL(h5_write_f64_2d(f, name, e->data, rows, cols));
      else
        SCL_CALL(h5_read_f64_2d(f, name, e->data, rows, cols));
      break;
    case LEARN_I64:
      if (write)
        SCL_CALL(h5_write_i64_1d(f, name, e->data, rows * cols));
      else
        SCL_CALL(h5_read_i64_1d(f, name, e->data, rows * cols));
      break;
  }
  return SCL_OK;
}

static scl_err io_metrics(h5_file *f, run_metrics *m, int write) {
  const int64_t T = m->n_sessions, P = m->n_predictors;
  if (write) {
    SCL_CALL(h5_write_f64_2d(f, "metrics/acc", m->acc, P * T, T));
    SCL_CALL(h5_write_f64_1d(f, "metrics/acc_total", m->acc_total, P * T));
    SCL_CALL(h5_write_i64_1d(f, "metrics/correct", m->correct, P * T));
    SCL_CALL(h5_write_i64_1d(f, "metrics/n_test", m->n_test, T));
    SCL_CALL(h5_write_f64_1d(f, "metrics/seconds", m->seconds, T * RUN_PHASE_COUNT));
    SCL_CALL(h5_write_f64_1d(f, "metrics/val_acc", m->val_acc, P * T));
  } else {
    SCL_CALL(h5_read_f64_2d(f, "metrics/acc", m->acc, P * T, T));
    SCL_CALL(h5_read_f64_1d(f, "metrics/acc_total", m->acc_total, P * T));
    SCL_CALL(h5_read_i64_1d(f, "metrics/correct", m->correct, P * T));
    SCL_CALL(h5_read_i64_1d(f, "metrics/n_test", m->n_test, T));
    SCL_CALL(h5_read_f64_1d(f, "metrics/seconds", m->seconds, T * RUN_PHASE_COUNT));
    SCL_CALL(h5_read_f64_1d(f, "metrics/val_acc", m->val_acc, P * T));
  }
  return SCL_OK;
}

scl_err trial_checkpoint_write(trial_state *st, int sessions_done) {
  char path[4096];
  ckpt_path(st, path, sizeof path);
  learn_state_entry entries[LEARN_MAX_STATE];
  int n = st->method->ops->state(st->method, entries);
  h5_file *f = NULL;
  scl_err err = SCL_OK;
  SCL_CALL_GOTO(err, h5_file_create_atomic(path, &f), done);
  SCL_CALL_GOTO(err, h5_write_provenance(f, CKPT_SCHEMA_VERSION), done);
  SCL_CALL_GOTO(err, h5_attr_write_str(f, NULL, "kind", "checkpoint"), done);
  SCL_CALL_GOTO(err, h5_attr_write_str(f, NULL, "trial_id", st->id), done);
  SCL_CALL_GOTO(err, h5_attr_write_i64(f, NULL, "sessions_done", sessions_done), done);
  SCL_CALL_GOTO(err, io_metrics(f, st->metrics, 1), done);
  for (int i = 0; i < n; i++) SCL_CALL_GOTO(err, io_entry(f, &entries[i], 1), done);
  SCL_CALL_GOTO(err, h5_file_commit(&f), done);
done:
  h5_file_abort(&f);
  return err;
}

scl_err trial_checkpoint_load(trial_state *st, int *sessions_done) {
  char path[4096];
  ckpt_path(st, path, sizeof path);
  *sessions_done = 0;
  if (access(path, F_OK) != 0) return SCL_OK;
  h5_file *f = NULL;
  char *id = NULL;
  int64_t done_sessions = 0;
  scl_err err = SCL_OK;
  SCL_CALL_GOTO(err, h5_file_open_read(path, &f), done);
  SCL_CALL_GOTO(err, h5_check_schema(f, CKPT_SCHEMA_VERSION, "trial checkpoint"), done);
  SCL_CALL_GOTO(err, h5_attr_read_str(f, NULL, "trial_id", &id), done);
  if (strcmp(id, st->id))
    SCL_ERROR_GOTO(err, done, SCL_ERR_ARG,
                   "%s is a checkpoint of trial %s, not of this trial (%s): choose another "
                   "run.dir or remove it",
                   path, id, st->id);
  SCL_CALL_GOTO(err, h5_attr_read_i64(f, NULL, "sessions_done", &done_sessions), done);
  if (done_sessions < 0 || done_sessions > st->n_sessions)
    SCL_ERROR_GOTO(err, done, SCL_ERR_FORMAT, "%s: sessions_done = %lld outside [0, %d]", path,
                   (long long)done_sessions, st->n_sessions);
  SCL_CALL_GOTO(err, io_metrics(f, st->metrics, 0), done);
  learn_state_entry entries[LEARN_MAX_STATE];
  int n = st->method->ops->state(st->method, entries);
  for (int i = 0; i < n; i++) SCL_CALL_GOTO(err, io_entry(f, &entries[i], 0), done);
  st->metrics->sessions_done = (int)done_sessions;
  *sessions_done = (int)done_sessions;
done:
  scl_free(id);
  if (f) {
    scl_err close_err = h5_file_close(&f);
    if (!err) err = close_err;
  }
  return err;
}
