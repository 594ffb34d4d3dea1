/* status.c: `safecl status RUN_DIR`: trials by state, what each group of the latest job is doing,
 * throughput and ETA, from the ledgers and the trial files alone.
 *
 * Read-only: it never takes the run directory's lock, never truncates a torn tail (a running
 * coordinator may be mid-append) and works while a sweep runs. Whether the latest job is still
 * alive comes from RUN_DIR/lock (orch_run_liveness: the kernel's lock, the holder's pid on its own
 * host, the heartbeat's age elsewhere): a job without an END record whose holder is gone is shown
 * dead, with the age of its last heartbeat and no ETA; a live one shows its groups with the age of
 * the newest record. The ETA is the cost model's expected seconds of what remains, calibrated on
 * the trials this directory has measured, divided over the latest job's groups. A directory
 * without ledgers but with a trial's files (trial.h5, ckpt.h5 or a train's lock) is a `safecl
 * train` directory (status_train.c); one with none of these holds no run and is an error. */
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "orch_internal.h"

static void label(const orch_trial_state *t, char *buf, size_t cap) {
  const char *p = t->plan_text ? t->plan_text : "?\t?\t-\t";
  char f[4][512];
  for (int k = 0; k < 4; k++) {
    size_t n = k == 3 ? strlen(p) : strcspn(p, "\t");
    snprintf(f[k], sizeof f[k], "%.*s", (int)n, p);
    p += n + (p[n] == '\t');
  }
  for (char *q = f[3]; *q; q++)
    if (*q == '\n') *q = ' ';
  int n = snprintf(buf, cap, "%s/%s%s%s%s%s", f[0], f[1], strcmp(f[2], "-") ? " seed=" : "",
                   strcmp(f[2], "-") ? f[2] : "", f[3][0] ? " " : "", f[3]);
  if (n < 0 && cap) buf[0] = '\0';
}

void orch_duration_text(double s, char *buf, size_t cap) {
  if (!isfinite(s) || s < 0)
    snprintf(buf, cap, "?");
  else if (s < 120)
    snprintf(buf, cap, "%.0f s", s);
  else if (s < 7200)
    snprintf(buf, cap, "%.0f min", s / 60);
  else
    snprintf(buf, cap, "%.1f h", s / 3600);
}

static double unix_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void orch_liveness_text(const orch_liveness *lv, double now, char *buf, size_t cap) {
  char age[32];
  orch_duration_text(fmax(0.0, now - lv->heartbeat), age, sizeof age); /* mtime may lead now */
  if (lv->alive)
    snprintf(buf, cap, "running (pid %ld on %s, heartbeat %s ago)", lv->pid,
             lv->host[0] ? lv->host : "?", age);
  else if (lv->ended[0])
    snprintf(buf, cap, "not running (ended %s)", lv->ended);
  else if (lv->pid_alive == 0)
    snprintf(buf, cap, "dead (last heartbeat %s ago; pid %ld gone)", age, lv->pid);
  else if (lv->held == 0)
    snprintf(buf, cap, "dead (last heartbeat %s ago; its lock was released)", age);
  else
    snprintf(buf, cap, "dead (last heartbeat %s ago, more than 3 x %d s; pid %ld on %s)", age,
             lv->interval, lv->pid, lv->host[0] ? lv->host : "?");
}

static void print_job(const orch_state *s, const orch_liveness *lv, FILE *out, double now) {
  const orch_job_state *j = &s->job;
  char age[32], since[32], lbl[1024], live[640];
  orch_duration_text(now - j->start, since, sizeof since);
  orch_duration_text(now - j->last, age, sizeof age);
  orch_liveness_text(lv, now, live, sizeof live);
  fprintf(out, "job %s (restart %lld): started %s ago, %d group(s) of %d rank(s); %s\n", j->job_id,
          (long long)j->restart, since, j->groups, j->group_size,
          j->ended      ? j->end
          : j->end[0]   ? j->end
          : lv->present ? live
                        : "running");
  fprintf(out,
          "  this job: %lld dispatched, %lld finished, %lld failed, %lld stopped; last "
          "record %s ago\n",
          (long long)j->dispatched, (long long)j->finished, (long long)j->failed,
          (long long)j->stopped, age);
  for (int g = 0; g < j->groups && !j->ended && (lv->alive || !lv->present); g++) {
    const orch_group_state *gs = &j->group[g];
    if (gs->trial < 0) {
      orch_duration_text(now - gs->since, since, sizeof since);
      fprintf(out, "  group %d: idle for %s\n", g, since);
      continue;
    }
    const orch_trial_state *t = &s->trials[gs->trial];
    label(t, lbl, sizeof lbl);
    orch_duration_text(now - gs->since, since, sizeof since);
    fprintf(out, "  group %d: %s (%.12s), running for %s, %d boundary report(s)\n", g, lbl, t->id,
            since, gs->sessions);
  }
}

static void print_eta(const orch_state *s, int alive, FILE *out, double now) {
  orch_cost_model m;
  orch_cost_model_fit(s, &m);
  double remaining = 0;
  int64_t n = 0, measured = 0;
  for (int64_t i = 0; i < s->n; i++) {
    const orch_trial_state *t = &s->trials[i];
    measured += t->status == ORCH_TRIAL_FINISHED && t->measured;
    if (t->status != ORCH_TRIAL_PENDING && t->status != ORCH_TRIAL_RUNNING) continue;
    double e = orch_cost_model_expect(&m, t->plan_text ? t->plan_text : "", t->cost);
    if (t->status == ORCH_TRIAL_RUNNING) e = fmax(0.0, e - (now - t->started));
    remaining += e;
    n++;
  }
  int groups = s->job.groups > 0 ? s->job.groups : 1;
  char eta[32], span[32];
  double span_s = (s->job.last > s->job.start ? s->job.last : now) - s->job.start;
  orch_duration_text(span_s, span, sizeof span);
  if (s->job.finished > 0 && span_s > 0)
    fprintf(out, "throughput: %lld trial(s) finished in %s of the latest job (%.1f per hour)\n",
            (long long)s->job.finished, span, 3600.0 * (double)s->job.finished / span_s);
  orch_duration_text(remaining / groups, eta, sizeof eta);
  fprintf(out, "%s: %s for %lld remaining trial(s) on %d group(s) (cost model %s)\n",
          s->job.ended || !s->job.groups || !alive ? "remaining work" : "ETA", n ? eta : "0 s",
          (long long)n, groups,
          measured ? "calibrated on measured trials" : "uncalibrated: nothing measured yet");
}

static int has_file(const char *dir, const char *name) {
  char path[4200];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return access(path, F_OK) == 0;
}

scl_err orch_status_print(const char *run_dir, FILE *out) {
  struct stat dst;
  int found = stat(run_dir, &dst) == 0;
  SCL_CHECK(found && S_ISDIR(dst.st_mode), SCL_ERR_ARG,
            "%s: %s: give the run.dir of a sweep or of a safecl train", run_dir,
            found ? "not a directory" : "no such directory");
  orch_liveness lv;
  orch_run_liveness(run_dir, &lv);
  orch_state *s = NULL;
  SCL_CALL(orch_state_load(run_dir, &s));
  if (s->n_files == 0 && !has_file(run_dir, "sweep.cfg") &&
      (has_file(run_dir, "trial.h5") || has_file(run_dir, "ckpt.h5") || lv.present)) {
    orch_state_destroy(&s);
    SCL_CALL(orch_status_train_print(run_dir, &lv, out));
    return SCL_OK;
  }
  if (s->n_files == 0 && !has_file(run_dir, "sweep.cfg")) {
    orch_state_destroy(&s);
    return SCL_ERROR(SCL_ERR_ARG,
                     "%s holds no run: no sweep ledger (ledger.*.log), no trial files (trial.h5, "
                     "ckpt.h5) and no lock: give the run.dir of a sweep or of a safecl train",
                     run_dir);
  }
  if (s->job.ended) orch_state_settle(s);
  scl_err err = orch_state_reconcile_files(s, run_dir);
  if (err) {
    orch_state_destroy(&s);
    return SCL_TRACE(err);
  }
  double now = unix_now();
  fprintf(out, "run directory %s%s%s\n", run_dir, s->job.sweep[0] ? ": sweep " : "", s->job.sweep);
  fprintf(out, "ledgers: %d file(s), %lld record(s), replayed in %.3f s", s->n_files,
          (long long)s->n_records, s->replay_seconds);
  if (s->n_damaged) fprintf(out, "; %lld damaged record(s) skipped", (long long)s->n_damaged);
  if (s->torn_bytes) fprintf(out, "; torn tail of %lld byte(s) ignored", (long long)s->torn_bytes);
  fprintf(out, "\n");
  if (s->n_files == 0) {
    fprintf(out, "no ledger: nothing has run here yet\n");
    orch_state_destroy(&s);
    return SCL_OK;
  }
  int64_t n[4] = {0};
  for (int64_t i = 0; i < s->n; i++) n[s->trials[i].status]++;
  fprintf(out, "trials: %lld total: %lld finished, %lld running, %lld pending, %lld failed\n",
          (long long)s->n, (long long)n[ORCH_TRIAL_FINISHED], (long long)n[ORCH_TRIAL_RUNNING],
          (long long)n[ORCH_TRIAL_PENDING], (long long)n[ORCH_TRIAL_FAILED]);
  print_job(s, &lv, out, now);
  print_eta(s, lv.alive || !lv.present, out, now);
  char lbl[1024];
  for (int64_t i = 0, shown = 0; i < s->n; i++) {
    const orch_trial_state *t = &s->trials[i];
    if (t->status != ORCH_TRIAL_FAILED) continue;
    if (shown++ == 0) fprintf(out, "failed:\n");
    label(t, lbl, sizeof lbl);
    fprintf(out, "  %s %s: %s\n", t->id, lbl, t->message ? t->message : "");
  }
  orch_state_destroy(&s);
  return SCL_OK;
}
