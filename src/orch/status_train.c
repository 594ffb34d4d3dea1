/* status_train.c: `safecl status DIR` on a `safecl train` run directory: the trial, whether its
 * process is running, stopped or dead, where its last checkpoint is, and an ETA while it runs.
 *
 * Read-only, from three files: trial.h5 (the trial finished: its numbers), ckpt.h5 (its
 * attributes trial_id, sessions_done, position_epoch and position_batch, the per-session times
 * in metrics/seconds, its mtime as the checkpoint's time) and the lock (orch_run_liveness: the
 * holder line names method and dataset, the heartbeat and the kernel's lock tell running from
 * dead). The ETA is the mean time of the finished sessions times the sessions left, shown only
 * while the process runs; without a finished session there is none. A file that cannot be read
 * (a checkpoint being replaced, a damaged file) is reported on its line and the rest shown. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "orch_internal.h"
#include "safecl/h5.h"
#include "safecl/metrics.h"

typedef struct ckpt_info {
  char *id;
  int64_t sessions_done, epoch, batch, n_sessions;
  double seconds; /* the finished sessions' time */
  double mtime;
} ckpt_info;

static scl_err read_ckpt(const char *path, ckpt_info *c) {
  h5_file *f = NULL;
  double *secs = NULL;
  scl_err err = SCL_OK;
  int ndim = 0;
  int64_t dims[H5_MAX_DIMS] = {0};
  SCL_CALL(h5_file_open_read(path, &f));
  SCL_CALL_GOTO(err, h5_attr_read_str(f, NULL, "trial_id", &c->id), done);
  SCL_CALL_GOTO(err, h5_attr_read_i64(f, NULL, "sessions_done", &c->sessions_done), done);
  SCL_CALL_GOTO(err, h5_attr_read_i64(f, NULL, "position_epoch", &c->epoch), done);
  SCL_CALL_GOTO(err, h5_attr_read_i64(f, NULL, "position_batch", &c->batch), done);
  SCL_CALL_GOTO(err, h5_dataset_shape(f, "metrics/n_test", &ndim, dims), done);
  c->n_sessions = dims[0];
  SCL_CHECK_GOTO(err, done, ndim == 1 && c->n_sessions > 0 && c->n_sessions <= 1 << 20,
                 SCL_ERR_FORMAT, "%s: metrics/n_test is not a list of sessions", path);
  int64_t n = c->n_sessions * RUN_PHASE_COUNT;
  SCL_CALL_GOTO(err, scl_alloc((size_t)n * sizeof(double), "session times", (void **)&secs), done);
  SCL_CALL_GOTO(err, h5_read_f64_1d(f, "metrics/seconds", secs, n), done);
  for (int64_t i = 0; i < n; i++) c->seconds += isfinite(secs[i]) ? secs[i] : 0;
done:
  scl_free(secs);
  scl_err close_err = h5_file_close(&f);
  return err ? err : close_err;
}

static void print_finished(const char *path, FILE *out) {
  h5_file *f = NULL;
  char *id = NULL, *method = NULL, *dataset = NULL;
  double final_acc = NAN, avg_acc = NAN, seconds = NAN;
  int64_t T = 0;
  scl_err err = h5_file_open_read(path, &f);
  if (!err) err = h5_attr_read_str(f, NULL, "trial_id", &id);
  if (!err) err = h5_attr_read_str(f, NULL, "method", &method);
  if (!err) err = h5_attr_read_str(f, NULL, "dataset", &dataset);
  if (!err) err = h5_attr_read_i64(f, NULL, "n_sessions", &T);
  if (!err) err = h5_attr_read_f64(f, NULL, "final_acc", &final_acc);
  if (!err) err = h5_attr_read_f64(f, NULL, "avg_acc", &avg_acc);
  if (!err) err = h5_attr_read_f64(f, NULL, "seconds_total", &seconds);
  if (f) {
    scl_err close_err = h5_file_close(&f);
    if (!err) err = close_err;
  }
  if (err) {
    char msg[512];
    scl_error_take(msg, sizeof msg);
    fprintf(out, "state: finished, but %s cannot be read: %s\n", path, msg);
  } else {
    char took[32];
    orch_duration_text(seconds, took, sizeof took);
    fprintf(out, "trial %s: %s on %s\n", id, method, dataset);
    fprintf(out,
            "state: finished: %lld/%lld sessions, final %.2f%%, average incremental %.2f%% "
            "in %s (%s)\n",
            (long long)T, (long long)T, final_acc, avg_acc, took, path);
  }
  free(id);
  free(method);
  free(dataset);
}

/* "safe on cifar100" from the holder line "train safe on cifar100, host ...". */
static void what_from_lock(const orch_liveness *lv, char *buf, size_t cap) {
  buf[0] = '\0';
  if (strncmp(lv->holder, "train ", 6)) return;
  const char *end = strstr(lv->holder, ", host ");
  int n = end ? (int)(end - lv->holder - 6) : 0;
  if (n > 0) snprintf(buf, cap, "%.*s", n, lv->holder + 6);
}

scl_err orch_status_train_print(const char *run_dir, const orch_liveness *lv, FILE *out) {
  char path[4200], live[640], what[512], when[64], ago[32];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  double now = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
  fprintf(out, "run directory %s: safecl train\n", run_dir);
  snprintf(path, sizeof path, "%s/trial.h5", run_dir);
  struct stat st;
  if (stat(path, &st) == 0) {
    print_finished(path, out);
    return SCL_OK;
  }
  orch_liveness_text(lv, now, live, sizeof live);
  what_from_lock(lv, what, sizeof what);
  snprintf(path, sizeof path, "%s/ckpt.h5", run_dir);
  ckpt_info c = {0};
  int have = stat(path, &st) == 0, readable = 0;
  char msg[512] = "";
  if (have) {
    c.mtime = (double)st.st_mtime;
    readable = read_ckpt(path, &c) == SCL_OK;
    if (!readable) scl_error_take(msg, sizeof msg);
  }
  if (readable)
    fprintf(out, "trial %s%s%s\n", c.id, what[0] ? ": " : "", what);
  else if (what[0])
    fprintf(out, "trial: %s\n", what);
  if (!lv->present)
    fprintf(out, "state: unknown (no lock file: run by a sweep or an array job?)\n");
  else if (lv->alive)
    fprintf(out, "state: %s\n", live);
  else
    fprintf(out, "state: %s; rerun the same command to resume%s\n", live,
            readable ? " from the last checkpoint" : "");
  if (!have) {
    fprintf(out,
            "last checkpoint: none yet (the first is written at the end of session 1, "
            "after train.ckpt_every steps or train.ckpt_minutes)\n");
  } else if (!readable) {
    fprintf(out, "last checkpoint: %s cannot be read: %s\n", path, msg);
  } else {
    time_t t = (time_t)c.mtime;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    orch_duration_text(now - c.mtime, ago, sizeof ago);
    if (c.epoch < 0)
      fprintf(out, "last checkpoint: %s (%s ago), after session %lld/%lld\n", when, ago,
              (long long)c.sessions_done, (long long)c.n_sessions);
    else
      fprintf(
          out,
          "last checkpoint: %s (%s ago), in session %lld/%lld at epoch %lld after %lld step(s)\n",
          when, ago, (long long)c.sessions_done + 1, (long long)c.n_sessions,
          (long long)c.epoch + 1, (long long)c.batch);
    fprintf(out, "sessions: %lld/%lld done\n", (long long)c.sessions_done, (long long)c.n_sessions);
    if (lv->alive && c.sessions_done > 0) {
      double mean = c.seconds / (double)c.sessions_done;
      double left = mean * (double)(c.n_sessions - c.sessions_done);
      if (c.epoch < 0) left -= now - c.mtime; /* the session after it started then */
      char eta[32];
      orch_duration_text(fmax(0.0, left), eta, sizeof eta);
      fprintf(out, "ETA: about %s for %lld session(s) left (mean of %lld finished)\n", eta,
              (long long)(c.n_sessions - c.sessions_done), (long long)c.sessions_done);
    }
  }
  free(c.id);
  return SCL_OK;
}
