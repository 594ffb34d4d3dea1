/* checkpoint.c: the trial checkpoint (run.dir/ckpt.h5), at session boundaries and every
 * train.ckpt_every training steps, and the step-boundary logic that decides when to write one.
 *
 * Holds everything a resumed trial needs to finish with exactly the metrics of an uninterrupted
 * one: the trial id, how many sessions are done, the position inside the current session (epoch,
 * next batch), the running loss sums of that epoch, the metrics and loss curve so far, the ridge
 * search records of the finished sessions, and the method's state (the named tensors of
 * ops->state: parameters, optimizer buffers, heads, classifier statistics). Written whole under
 * a temporary name and published by rename, so a kill during the write leaves the previous
 * checkpoint intact. Caches (test features of frozen networks) are not saved: they are
 * recomputed, which changes no number.
 *
 * On a group of ranks the file is written collectively with parallel HDF5 (h5.h's group files):
 * every rank makes the same calls, replicated tensors are written once, and a distributed Gram
 * matrix (LEARN_F64_GRAM) is written by every rank holding a block-cyclic piece, as one plain
 * m x m dataset. Any rank count reads it back: each rank reads the replicated tensors whole and
 * its own piece of G for its own grid, so a checkpoint of 2 ranks resumes on 1 or on 4.
 *
 * Damage (docs/architecture.md, failure model): every dataset and the attributes carry XXH3-64
 * checksums (h5.h), G's a sum over elements that the writing ranks add up, so it does not depend
 * on the grid. Publishing a checkpoint keeps the one before as ckpt.prev.h5. On resume a
 * checkpoint is checked whole before any of it is used (h5_file_verify, the group sharing the
 * reading), so a damaged one leaves the trial's state untouched: it is moved aside as
 * ckpt.h5.damaged with a warning and the previous one is used, or, with none left, the trial
 * starts over; every rank takes the same decision. The cost is reading the checkpoint twice on
 * resume, once spread over the group. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "safecl/h5.h"
#include "safecl/linalg_group.h"
#include "trial_internal.h"

#define CKPT_SCHEMA_VERSION 4

static void ckpt_path(const trial_state *st, char *buf, size_t cap) {
  snprintf(buf, cap, "%s/ckpt.h5", st->cfg->run_dir);
}

static void ckpt_prev_path(const trial_state *st, char *buf, size_t cap) {
  snprintf(buf, cap, "%s/ckpt.prev.h5", st->cfg->run_dir);
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
    case LEARN_F64_GRAM: {
      linalg_local_view v = linalg_stats_gram_view(e->data);
      SCL_CHECK(v.m == rows && v.m == cols, SCL_ERR_INTERNAL,
                "state %s: Gram matrix of order %lld, entry %lld x %lld", e->name, (long long)v.m,
                (long long)rows, (long long)cols);
      if (write)
        SCL_CALL(h5_write_f64_cyclic(f, name, v.m, v.m, v.mb, v.nb, v.nprow, v.npcol, v.myrow,
                                     v.mycol, v.holds, v.data, v.lld));
      else
        SCL_CALL(h5_read_f64_cyclic(f, name, v.m, v.m, v.mb, v.nb, v.nprow, v.npcol, v.myrow,
                                    v.mycol, v.holds, v.data, v.lld));
      break;
    }
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

static scl_err alloc_terms(trial_state *st) {
  if (st->loss_terms) return SCL_OK;
  st->loss_terms = calloc((size_t)st->n_sessions, sizeof *st->loss_terms);
  SCL_CHECK(st->loss_terms, SCL_ERR_NOMEM, "loss term names");
  return SCL_OK;
}

static scl_err io_losses(h5_file *f, trial_state *st, int write) {
  if (write) {
    SCL_CALL(h5_write_f64_1d(f, "losses/epoch_sums", st->epoch_loss, LEARN_MAX_LOSS_TERMS));
    if (st->n_loss)
      SCL_CALL(h5_write_f64_2d(f, "losses/log", st->loss_log, st->n_loss, TRIAL_LOSS_COLS));
    SCL_CALL(h5_attr_write_i64(f, "losses", "records", st->n_loss));
    SCL_CALL(alloc_terms(st));
    const char *names[1024];
    SCL_CHECK(st->n_sessions <= 1024, SCL_ERR_ARG, "%d sessions (at most 1024)", st->n_sessions);
    for (int t = 0; t < st->n_sessions; t++) names[t] = st->loss_terms[t];
    SCL_CALL(h5_write_strings(f, "losses/terms", names, st->n_sessions));
    return SCL_OK;
  }
  char **names = NULL;
  int64_t n_names = 0;
  SCL_CALL(alloc_terms(st));
  SCL_CALL(h5_read_strings(f, "losses/terms", &names, &n_names));
  scl_err err = SCL_OK;
  if (n_names != st->n_sessions)
    err = SCL_ERROR(SCL_ERR_FORMAT, "checkpoint: %lld sessions of loss term names, not %d",
                    (long long)n_names, st->n_sessions);
  for (int t = 0; !err && t < st->n_sessions; t++)
    snprintf(st->loss_terms[t], TRIAL_TERMS_CHARS, "%s", names[t]);
  h5_strings_free(names, n_names);
  SCL_CALL(err);
  int64_t records = 0;
  SCL_CALL(h5_read_f64_1d(f, "losses/epoch_sums", st->epoch_loss, LEARN_MAX_LOSS_TERMS));
  SCL_CALL(h5_attr_read_i64(f, "losses", "records", &records));
  if (records > st->cap_loss) {
    double *grown = realloc(st->loss_log, (size_t)records * TRIAL_LOSS_COLS * sizeof(double));
    SCL_CHECK(grown, SCL_ERR_NOMEM, "loss curve");
    st->loss_log = grown;
    st->cap_loss = records;
  }
  if (records) SCL_CALL(h5_read_f64_2d(f, "losses/log", st->loss_log, records, TRIAL_LOSS_COLS));
  st->n_loss = records;
  return SCL_OK;
}

/* The finished sessions' ridge search records (ridge_search/count: T int64; ridge_search/records:
 * T * LINALG_SEARCH_LOG rows of n_lambdas, best, the candidates, their validation errors). */
#define RIDGE_COLS (2 + 2 * LINALG_MAX_LAMBDAS)
static scl_err io_ridge(h5_file *f, trial_state *st, int write) {
  const int64_t T = st->n_sessions, rows = T * LINALG_SEARCH_LOG;
  int64_t *count = NULL;
  double *rec = NULL;
  scl_err err = SCL_OK;
  SCL_CALL_GOTO(err, scl_alloc((size_t)T * 8, "ridge search counts", (void **)&count), done);
  SCL_CALL_GOTO(err,
                scl_calloc((size_t)(rows * RIDGE_COLS) * 8, "ridge search records", (void **)&rec),
                done);
  if (write) {
    for (int64_t i = 0; i < rows; i++) {
      const linalg_search_record *r = &st->ridge[i];
      double *row = rec + i * RIDGE_COLS;
      row[0] = r->n_lambdas;
      row[1] = r->best;
      for (int j = 0; j < r->n_lambdas; j++) {
        row[2 + j] = r->lambda[j];
        row[2 + LINALG_MAX_LAMBDAS + j] = r->mse[j];
      }
    }
    for (int64_t t = 0; t < T; t++) count[t] = st->n_ridge[t];
    SCL_CALL_GOTO(err, h5_write_i64_1d(f, "ridge_search/count", count, T), done);
    SCL_CALL_GOTO(err, h5_write_f64_2d(f, "ridge_search/records", rec, rows, RIDGE_COLS), done);
    goto done;
  }
  SCL_CALL_GOTO(err, h5_read_i64_1d(f, "ridge_search/count", count, T), done);
  SCL_CALL_GOTO(err, h5_read_f64_2d(f, "ridge_search/records", rec, rows, RIDGE_COLS), done);
  for (int64_t i = 0; i < rows; i++) {
    linalg_search_record *r = &st->ridge[i];
    const double *row = rec + i * RIDGE_COLS;
    r->n_lambdas = (int)row[0];
    r->best = (int)row[1];
    SCL_CHECK_GOTO(err, done,
                   r->n_lambdas >= 0 && r->n_lambdas <= LINALG_MAX_LAMBDAS && r->best >= 0 &&
                       (r->best < r->n_lambdas || r->n_lambdas == 0),
                   SCL_ERR_FORMAT, "checkpoint: ridge search record %lld: %d candidates, best %d",
                   (long long)i, r->n_lambdas, r->best);
    for (int j = 0; j < r->n_lambdas; j++) {
      r->lambda[j] = row[2 + j];
      r->mse[j] = row[2 + LINALG_MAX_LAMBDAS + j];
    }
  }
  for (int64_t t = 0; t < T; t++) {
    SCL_CHECK_GOTO(err, done, count[t] >= 0 && count[t] <= LINALG_SEARCH_LOG, SCL_ERR_FORMAT,
                   "checkpoint: session %lld has %lld ridge searches (at most %d)",
                   (long long)t + 1, (long long)count[t], LINALG_SEARCH_LOG);
    st->n_ridge[t] = (int)count[t];
  }
done:
  scl_free(count);
  scl_free(rec);
  return err;
}

/* Testing aid, right after a checkpoint is published: SAFECL_FAULT_KILL_AFTER_SESSION=k kills
 * the process (SIGKILL) after the boundary checkpoint of session k; SAFECL_FAULT_KILL_AFTER_CKPT=n
 * after the n-th checkpoint this process writes (mid-session ones included). Tests use them to
 * check that a real kill at those points loses nothing. */
static void fault_injection_point(int sessions_done, int at_boundary) {
  static int written;
  written++;
  const char *after_session = getenv("SAFECL_FAULT_KILL_AFTER_SESSION");
  const char *after_ckpt = getenv("SAFECL_FAULT_KILL_AFTER_CKPT");
  if ((after_session && at_boundary && atoi(after_session) == sessions_done) ||
      (after_ckpt && atoi(after_ckpt) == written)) {
    SCL_WARN("fault injection: killing the process after checkpoint %d", written);
    raise(SIGKILL);
  }
}

/* Testing aid at a step boundary, after the group's stop decision and before its checkpoint:
 * SAFECL_FAULT_PAUSE_AT_STEP=n[,n...] stops the process (SIGSTOP) at the n-th step boundary this
 * process reaches (every step and every epoch end count, from 1 in each process). A test
 * signals the paused process, so the signal lands at a known step whatever the machine's speed,
 * and resumes it with SIGCONT; a pause once a stop is decided lets a second signal arrive before
 * the stop's checkpoint (tests/apps/test_train_stop.py). */
static void fault_pause_point(void) {
  static int reached;
  static const char *list;
  if (!reached++) list = getenv("SAFECL_FAULT_PAUSE_AT_STEP"); /* once: this runs every step */
  for (const char *p = list; p && *p; p += strcspn(p, ","), p += *p == ',') {
    if (atoi(p) == reached) {
      SCL_WARN("fault injection: pausing the process (SIGSTOP) at step boundary %d", reached);
      raise(SIGSTOP);
      return;
    }
  }
}

static scl_err write_file(trial_state *st, int sessions_done, int64_t epoch, int64_t batch) {
  char path[4096], prev[4096];
  ckpt_path(st, path, sizeof path);
  ckpt_prev_path(st, prev, sizeof prev);
  learn_state_entry entries[LEARN_MAX_STATE];
  int n = st->method->ops->state(st->method, entries);
  h5_file *f = NULL;
  scl_err err = SCL_OK;
  if (st->group.size > 1)
    SCL_CALL_GOTO(err, h5_file_create_atomic_group(path, st->group.comm, &f), done);
  else
    SCL_CALL_GOTO(err, h5_file_create_atomic(path, &f), done);
  SCL_CALL_GOTO(err, h5_file_keep_previous(f, prev), done);
  SCL_CALL_GOTO(err, h5_file_fixed_strings(f), done);
  SCL_CALL_GOTO(err, h5_write_provenance(f, CKPT_SCHEMA_VERSION), done);
  SCL_CALL_GOTO(err, h5_attr_write_str(f, NULL, "kind", "checkpoint"), done);
  SCL_CALL_GOTO(err, h5_attr_write_str(f, NULL, "trial_id", st->id), done);
  SCL_CALL_GOTO(err, h5_attr_write_i64(f, NULL, "sessions_done", sessions_done), done);
  SCL_CALL_GOTO(err, h5_attr_write_i64(f, NULL, "position_epoch", epoch), done);
  SCL_CALL_GOTO(err, h5_attr_write_i64(f, NULL, "position_batch", batch), done);
  SCL_CALL_GOTO(err, io_metrics(f, st->metrics, 1), done);
  SCL_CALL_GOTO(err, io_losses(f, st, 1), done);
  SCL_CALL_GOTO(err, io_ridge(f, st, 1), done);
  for (int i = 0; i < n; i++) SCL_CALL_GOTO(err, io_entry(f, &entries[i], 1), done);
  SCL_CALL_GOTO(err, h5_file_commit(&f), done);
done:
  h5_file_abort(&f);
  return err;
}

/* Collective over the group: every wrapper call of write_file is (h5.h's rules), and each
 * returns the same status on every rank, so the ranks stop at the same call on an error. */
scl_err trial_checkpoint_write(trial_state *st, int sessions_done, int64_t epoch, int64_t batch) {
  SCL_CALL(run_group_agree(&st->group, write_file(st, sessions_done, epoch, batch)));
  st->steps_since_ckpt = 0;
  st->ckpt_clock = scl_now();
  fault_injection_point(sessions_done, epoch < 0);
  return SCL_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Choosing the checkpoint to resume from                                                    */

/* Checks `path` whole before anything is taken from it: its attributes (at open), its bytes
 * (the whole-file checksum at open) or, in a file without that, every dataset's checksum shared
 * out over the group (h5_file_verify), that it has checksums at all,
 * its schema and its trial. Collective over the group, the same status on every rank. *damaged
 * = 1 when the failure is in the file's bytes (a checksum, HDF5 unable to read it, checksums or
 * provenance missing from a current-schema file); 0 for an intact file that is refused (another
 * trial, an older schema) or a fault of this process. */
static scl_err ckpt_check(trial_state *st, const char *path, int *damaged) {
  const dist_comm *readers = st->group.size > 1 ? st->group.comm : NULL;
  h5_file *f = NULL;
  char *id = NULL;
  int64_t version = -1;
  *damaged = 0;
  scl_err err = run_group_agree(&st->group, h5_file_open_read(path, &f));
  /* a sealed file's bytes were checked whole at open, on every rank */
  if (!err && !h5_file_sealed(f)) err = h5_file_verify(f, readers);
  *damaged = err == SCL_ERR_FORMAT || err == SCL_ERR_HDF5;
  scl_err local = SCL_OK;
  if (!err) { /* every rank read the same verified bytes */
    int exists = 0, refused = 0;
    local = h5_attr_exists(f, NULL, "schema_version", &exists);
    if (!local && exists) local = h5_attr_read_i64(f, NULL, "schema_version", &version);
    if (!local && (!exists || (version == CKPT_SCHEMA_VERSION && !h5_file_checksummed(f))))
      local = SCL_ERROR(
          SCL_ERR_FORMAT, "%s: %s", path,
          exists ? "a current-schema checkpoint without checksums" : "no schema_version attribute");
    else if (!local && (local = h5_check_schema(f, CKPT_SCHEMA_VERSION, "trial checkpoint")))
      refused = 1; /* an intact file of another schema */
    if (!local) local = h5_attr_read_str(f, NULL, "trial_id", &id);
    if (!local && strcmp(id, st->id)) {
      refused = 1;
      local = SCL_ERROR(SCL_ERR_ARG,
                        "%s is a checkpoint of trial %s, not of this trial (%s): choose another "
                        "run.dir or remove it",
                        path, id, st->id);
    }
    *damaged = local && !refused;
    err = run_group_agree(&st->group, local);
    scl_err any = run_group_any(&st->group, damaged);
    if (any && !err) err = SCL_TRACE(any);
  }
  free(id);
  scl_err close_err = h5_file_close(&f);
  if (close_err) scl_error_take(NULL, 0); /* read-only: nothing to lose */
  return err;
}

/* Moves a damaged checkpoint aside (path.damaged, or path.damaged.N if that exists): it is
 * evidence, never deleted. Rank 0 renames; collective over the group. */
static scl_err set_aside(trial_state *st, const char *path, const char *why) {
  scl_err err = SCL_OK;
  if (run_group_root(&st->group)) {
    char aside[4200];
    snprintf(aside, sizeof aside, "%s.damaged", path);
    for (int k = 1; k < 1000 && access(aside, F_OK) == 0; k++)
      snprintf(aside, sizeof aside, "%s.damaged.%d", path, k);
    if (rename(path, aside) != 0)
      err = SCL_ERROR(SCL_ERR_IO, "cannot move the damaged checkpoint %s aside to %s: %s", path,
                      aside, strerror(errno));
    else
      SCL_WARN("checkpoint %s is damaged, not resumed from (%s); kept as %s", path, why, aside);
  }
  SCL_CALL(run_group_agree(&st->group, err));
  return SCL_OK;
}

/* Decides which checkpoint the trial resumes from, the same on every rank: ckpt.h5 if it passes
 * ckpt_check, else ckpt.prev.h5 (the one before it, which becomes ckpt.h5), else none (the trial
 * starts from the beginning). A damaged file is moved aside with a warning naming it and what is
 * damaged. *found = 1 when ckpt.h5 is now the checkpoint to load. */
static scl_err ckpt_choose(trial_state *st, int *found) {
  char cur[4096], prev[4096];
  ckpt_path(st, cur, sizeof cur);
  ckpt_prev_path(st, prev, sizeof prev);
  const char *cands[2] = {cur, prev};
  int damaged_any = 0;
  *found = 0;
  for (int c = 0; c < 2; c++) {
    int exists = access(cands[c], F_OK) == 0, damaged = 0;
    SCL_CALL(run_group_any(&st->group, &exists));
    if (!exists) continue;
    scl_err err = ckpt_check(st, cands[c], &damaged);
    if (!err && c == 0) {
      *found = 1;
      return SCL_OK;
    }
    if (!err) {
      scl_err moved = SCL_OK;
      if (run_group_root(&st->group)) {
        if (rename(prev, cur) != 0)
          moved = SCL_ERROR(SCL_ERR_IO, "cannot restore %s as %s: %s", prev, cur, strerror(errno));
        else
          SCL_WARN("resuming from the previous checkpoint %s (restored as %s)%s", prev, cur,
                   damaged_any ? " because ckpt.h5 is damaged" : "");
      }
      SCL_CALL(run_group_agree(&st->group, moved));
      *found = 1;
      return SCL_OK;
    }
    if (!damaged) return SCL_TRACE(err);
    char why[1024];
    scl_error_take(why, sizeof why);
    SCL_CALL(set_aside(st, cands[c], why));
    damaged_any = 1;
  }
  if (damaged_any && run_group_root(&st->group))
    SCL_WARN("no good checkpoint remains in %s: trial %s restarts from the beginning",
             st->cfg->run_dir, st->id);
  return SCL_OK;
}

scl_err trial_checkpoint_load(trial_state *st, int *sessions_done) {
  char path[4096];
  ckpt_path(st, path, sizeof path);
  *sessions_done = 0;
  int found = 0;
  SCL_CALL(ckpt_choose(st, &found));
  if (!found) return SCL_OK;
  h5_file *f = NULL;
  int64_t done_sessions = 0;
  scl_err err = SCL_OK;
  SCL_CALL_GOTO(err, h5_file_open_read(path, &f), done);
  SCL_CALL_GOTO(err, h5_attr_read_i64(f, NULL, "sessions_done", &done_sessions), done);
  SCL_CHECK_GOTO(err, done, done_sessions >= 0 && done_sessions <= st->n_sessions, SCL_ERR_FORMAT,
                 "%s: sessions_done = %lld outside [0, %d]", path, (long long)done_sessions,
                 st->n_sessions);
  SCL_CALL_GOTO(err, h5_attr_read_i64(f, NULL, "position_epoch", &st->resume_epoch), done);
  SCL_CALL_GOTO(err, h5_attr_read_i64(f, NULL, "position_batch", &st->resume_batch), done);
  SCL_CALL_GOTO(err, io_metrics(f, st->metrics, 0), done);
  SCL_CALL_GOTO(err, io_losses(f, st, 0), done);
  SCL_CALL_GOTO(err, io_ridge(f, st, 0), done);
  if (st->resume_epoch < 0) { /* at a session boundary the method state is complete now */
    learn_state_entry entries[LEARN_MAX_STATE];
    int n = st->method->ops->state(st->method, entries);
    for (int i = 0; i < n; i++) SCL_CALL_GOTO(err, io_entry(f, &entries[i], 0), done);
  }
  st->metrics->sessions_done = (int)done_sessions;
  *sessions_done = (int)done_sessions;
done:
  if (f) {
    scl_err close_err = h5_file_close(&f);
    if (!err) err = close_err;
  }
  return err;
}

scl_err trial_checkpoint_load_method(trial_state *st) {
  char path[4096];
  ckpt_path(st, path, sizeof path);
  h5_file *f = NULL;
  scl_err err = SCL_OK;
  learn_state_entry entries[LEARN_MAX_STATE];
  int n = st->method->ops->state(st->method, entries);
  SCL_CALL_GOTO(err, h5_file_open_read(path, &f), done);
  for (int i = 0; i < n; i++) SCL_CALL_GOTO(err, io_entry(f, &entries[i], 0), done);
done:
  if (f) {
    scl_err close_err = h5_file_close(&f);
    if (!err) err = close_err;
  }
  return err;
}

/* A step boundary decides two things for the whole group: stop (any rank's stop request, the
 * hooks' should_stop) and checkpoint on time (train.ckpt_minutes: each rank reads its own clock,
 * and any rank's saying it is time counts). Both flags go in one reduction of two ints per step,
 * on groups of more than one rank, so every rank takes the same decisions (docs/conventions.md
 * 3). Every rank has the same hooks and config, so whether to reduce at all is the same on all. */
scl_err trial_step_boundary(trial_state *st, int t, int64_t epoch, int64_t batch) {
  st->steps_since_ckpt++;
  const run_trial_hooks *h = st->hooks;
  const double minutes = st->cfg->ckpt_minutes;
  int has_hook = h && h->should_stop;
  int64_t flags[2] = {has_hook && h->should_stop(h->ctx),
                      minutes > 0 && scl_now() - st->ckpt_clock >= 60.0 * minutes};
  if (has_hook || minutes > 0) SCL_CALL(run_group_any_n(&st->group, flags, 2));
  int stop = flags[0] != 0;
  int due = flags[1] || (st->cfg->ckpt_every > 0 && st->steps_since_ckpt >= st->cfg->ckpt_every);
  fault_pause_point();
  if (stop || due) SCL_CALL(trial_checkpoint_write(st, t, epoch, batch));
  SCL_CHECK(!stop, SCL_ERR_STOP,
            "trial %s stopped in session %d at epoch %lld batch %lld "
            "(checkpointed)",
            st->id, t + 1, (long long)epoch + 1, (long long)batch);
  return SCL_OK;
}

scl_err trial_log_losses(trial_state *st, int t, int64_t epoch, int64_t step,
                         const learn_train_plan *plan, const double *mean) {
  SCL_CALL(alloc_terms(st));
  if (st->n_loss == st->cap_loss) {
    int64_t cap = st->cap_loss ? 2 * st->cap_loss : 64;
    double *grown = realloc(st->loss_log, (size_t)cap * TRIAL_LOSS_COLS * sizeof(double));
    SCL_CHECK(grown, SCL_ERR_NOMEM, "loss curve");
    st->loss_log = grown;
    st->cap_loss = cap;
  }
  double *row = st->loss_log + st->n_loss * TRIAL_LOSS_COLS;
  row[0] = t;
  row[1] = (double)epoch;
  row[2] = (double)step;
  for (int j = 0; j < LEARN_MAX_LOSS_TERMS; j++) row[3 + j] = j < plan->n_terms ? mean[j] : NAN;
  st->n_loss++;
  char *names = st->loss_terms[t];
  size_t o = 0;
  for (int j = 0; j < plan->n_terms; j++)
    o += (size_t)snprintf(names + o, TRIAL_TERMS_CHARS - o, "%s%s", j ? "," : "",
                          plan->term_names[j]);
  return SCL_OK;
}
