/* coord_setup.c: the coordinator's start and end of a job: plan the sweep, take the run
 * directory, replay and reconcile the ledgers with trials/, fill the queue; at the end record the
 * outcome, rebuild index.h5 and report the overheads.
 *
 * Reconciliation trusts files over records: a trial is finished if and only if
 * trials/<id>/trial.h5 exists (the runner publishes it by rename, so existing means complete).
 * A finished trial the ledger does not know about (its job died before the record) gets a
 * FINISHED record read from the file; a FINISHED record whose file is gone runs again. Attempts
 * left open by a dead job are settled as interrupted, at no charge to the trial (the job may
 * have been killed from outside); a trial whose own processes died of a fatal signal
 * sweep.max_crashes times (CRASHED records, crash.c) is failed rather than allowed to kill every
 * requeue. A trial failed by a fault of the machine (disk full, I/O error, out of memory: FAILED
 * with count 1) runs again in the next job, in at most sweep.max_retries jobs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "coordinator.h"
#include "safecl/publish.h"

static scl_err write_effective_sweep(coord *c) {
  char *text = NULL, path[4200];
  SCL_CALL(orch_sweep_dump(c->sweep, &text));
  snprintf(path, sizeof path, "%s/sweep.cfg", c->rd.path);
  scl_err err = io_write_file_atomic(path, text, strlen(text));
  free(text);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}

static void plan_text(const orch_trial *t, char *buf, size_t cap) {
  char seed[32] = "-";
  if (t->has_seed) snprintf(seed, sizeof seed, "%lld", (long long)t->seed);
  snprintf(buf, cap, "%s\t%s\t%s\t%s", t->dataset_name, t->method_name, seed, t->settings);
}

/* Maps plan trials to state entries, writing PLAN records for trials new to this directory. */
static scl_err add_plan(coord *c) {
  c->state_of = malloc((size_t)(c->plan->n + 1) * sizeof *c->state_of);
  SCL_CHECK(c->state_of, SCL_ERR_NOMEM, "plan map");
  orch_record r = {.type = ORCH_REC_PLAN, .group = -1};
  orch_ledger_gather(c->ledger); /* a PLAN record lost with the process is written again */
  for (int64_t i = 0; i < c->plan->n; i++) {
    const orch_trial *t = &c->plan->trials[i];
    orch_trial_state *st = orch_state_find(c->state, t->id);
    /* again for a trial planned by an older safecl, which did not record backbone_random */
    if (!st || !st->plan_text || st->backbone_random < 0) {
      memcpy(r.id, t->id, sizeof r.id);
      r.count = i;
      r.attempt = t->backbone_random ? 1 : 2;
      r.seconds = t->cost; /* the prior: calibration compares measured seconds with it */
      plan_text(t, r.text, sizeof r.text);
      coord_record(c, &r, 0);
      st = orch_state_find(c->state, t->id);
    }
    SCL_CHECK(st, SCL_ERR_NOMEM, "run state");
    c->state_of[i] = st - c->state->trials;
  }
  SCL_CALL(orch_ledger_flush(c->ledger));
  return SCL_OK;
}

static void record_failed(coord *c, const orch_trial *t, const char *why) {
  orch_record r = {.type = ORCH_REC_FAILED, .group = -1};
  memcpy(r.id, t->id, sizeof r.id);
  snprintf(r.text, sizeof r.text, "%s", why);
  coord_record(c, &r, 0);
  orch_trial_note_failed(c->sweep, t, c->rd.path, r.text);
}

/* Decides whether plan trial i runs in this job; 1 = queue it. */
static int reconcile(coord *c, const orch_trial_dirs *dirs, int64_t i, int64_t *missing) {
  const orch_trial *t = &c->plan->trials[i];
  orch_trial_state *st = coord_state(c, i);
  if (!t->error && orch_trial_dirs_finished(dirs, c->rd.path, t->id)) {
    if (st->status == ORCH_TRIAL_FINISHED) return 0;
    orch_record r = {.type = ORCH_REC_FINISHED, .group = -1};
    memcpy(r.id, t->id, sizeof r.id);
    snprintf(r.text, sizeof r.text, "reconciled");
    if (orch_rundir_read_result(c->rd.path, t->id, &r.final_acc, &r.avg_acc, &r.val_acc,
                                &r.seconds) != SCL_OK) {
      scl_log_error_traceback(); /* the runner will name the file when it meets it */
      scl_error_take(NULL, 0);
      return 1;
    }
    coord_record(c, &r, 0);
    return 0;
  }
  if (st->status == ORCH_TRIAL_FINISHED) {
    (*missing)++;
    st->status = ORCH_TRIAL_PENDING;
  }
  if (t->error) {
    char why[ORCH_LEDGER_TEXT_MAX];
    snprintf(why, sizeof why, "cannot identify the trial: %s", t->error);
    if (st->status != ORCH_TRIAL_FAILED || c->sweep->retry_failed) record_failed(c, t, why);
    return 0;
  }
  const orch_next next = orch_state_next(st, c->sweep);
  if (next == ORCH_NEXT_FAILED) {
    if (!orch_trial_note_has_failed(c->rd.path, t->id)) /* the job died before writing it */
      orch_trial_note_failed(c->sweep, t, c->rd.path, st->message);
    return 0;
  }
  if (st->status == ORCH_TRIAL_FAILED) {
    if (c->sweep->retry_failed) {
      st->retries = 0;
      st->crashes = 0;
    } else {
      SCL_INFO(
          "trial %s failed on a fault of the machine in an earlier job (%s): running it "
          "again (later job %d of at most sweep.max_retries = %lld)",
          t->id, st->message ? st->message : "?", st->machine_failures,
          (long long)c->sweep->max_retries);
    }
    st->status = ORCH_TRIAL_PENDING;
  }
  if (next == ORCH_NEXT_CRASHED) {
    char why[ORCH_LEDGER_TEXT_MAX];
    snprintf(why, sizeof why,
             "crashed %d times (sweep.max_crashes = %lld): its process died of a fatal signal; "
             "the last: %.1500s",
             st->crashes, (long long)c->sweep->max_crashes, st->crash ? st->crash : "?");
    record_failed(c, t, why);
    return 0;
  }
  return 1;
}

static scl_err fill_queue(coord *c) {
  int64_t *order = NULL, missing = 0;
  orch_trial_dirs dirs;
  orch_cost_calibrate(c->plan, c->state);
  SCL_CALL(orch_cost_order(c->plan, &order));
  c->queue = order;
  SCL_CALL(orch_trial_dirs_list(c->rd.path, &dirs));
  for (int64_t k = 0; k < c->plan->n; k++)
    if (reconcile(c, &dirs, order[k], &missing)) c->queue[c->n_queue++] = order[k];
  orch_trial_dirs_free(&dirs);
  if (missing)
    SCL_WARN("%lld trial(s) finished in the ledger have no trials/<id>/trial.h5: they run again",
             (long long)missing);
  return SCL_OK;
}

static void count(const coord *c, int64_t n[4]) {
  memset(n, 0, 4 * sizeof *n);
  for (int64_t i = 0; i < c->plan->n; i++) n[c->state->trials[c->state_of[i]].status]++;
}

scl_err coord_setup(coord *c) {
  const orch_sweep *s = c->sweep;
  double t0 = scl_now();
  SCL_CALL(orch_plan_create(s, &c->plan));
  double t_plan = scl_now() - t0;
  SCL_CALL(orch_rundir_open(s->run_dir, &c->rd));
  SCL_CALL(orch_ledger_open(c->rd.path, c->rd.job_id, &c->ledger));
  SCL_CALL(orch_state_load(c->rd.path, &c->state));
  orch_state_settle(c->state); /* we hold the lock: earlier jobs are gone */
  int64_t replayed = c->state->n_records;
  orch_record job = {
      .type = ORCH_REC_JOB, .group = c->groups, .attempt = c->group_size, .count = c->rd.restart};
  snprintf(job.text, sizeof job.text, "%s ranks=%d sweep=%s%s", c->rd.job_id,
           c->world ? dist_comm_size(c->world) : 0, s->name, s->dry_run ? " dry-run" : "");
  coord_record(c, &job, 1);
  SCL_CALL(write_effective_sweep(c));
  SCL_CALL(add_plan(c));
  SCL_CALL(fill_queue(c));
  c->retry = malloc((size_t)(c->plan->n + 1) * sizeof *c->retry);
  SCL_CHECK(c->retry, SCL_ERR_NOMEM, "retry ring");
  c->group_trial = malloc((size_t)(c->groups + 1) * sizeof *c->group_trial);
  SCL_CHECK(c->group_trial, SCL_ERR_NOMEM, "group trials");
  c->group_recorded = calloc((size_t)(c->groups + 1), sizeof *c->group_recorded);
  SCL_CHECK(c->group_recorded, SCL_ERR_NOMEM, "group record times");
  for (int g = 0; g < c->groups; g++) c->group_trial[g] = -1;
  if (c->failure) return SCL_TRACE(c->failure);
  SCL_CALL(orch_ledger_sync(c->ledger));
  int64_t n[4];
  count(c, n);
  SCL_INFO(
      "sweep %s: %lld trials (%lld finished, %lld failed, %lld to run) planned in %.2f s; "
      "%d group(s) of %d rank(s); run dir %s, ledger %s",
      s->name, (long long)c->plan->n, (long long)n[ORCH_TRIAL_FINISHED],
      (long long)n[ORCH_TRIAL_FAILED], (long long)c->n_queue, t_plan, c->groups, c->group_size,
      c->rd.path, orch_ledger_path(c->ledger));
  coord_trials_tsv(c, 1);
  if (replayed > 0)
    SCL_INFO("replayed %lld ledger records from %d file(s) in %.3f s", (long long)replayed,
             c->state->n_files, c->state->replay_seconds);
  return SCL_OK;
}

static double peak_rss_mib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  double kib = NAN;
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, "VmHWM:", 6)) kib = atof(line + 6);
  if (f) fclose(f);
  return kib / 1024.0;
}

static double cpu_seconds(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return NAN;
  return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
         (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

static void report(const coord *c, int code) {
  int64_t n[4];
  count(c, n);
  const coord_stats *st = &c->stats;
  SCL_INFO("sweep %s %s: %lld finished, %lld failed, %lld pending; exit %d", c->sweep->name,
           code == 0 || code == ORCH_EXIT_TRIALS_FAILED ? "complete"
           : code == ORCH_EXIT_REQUEUE                  ? "stopped"
                                                        : "ended",
           (long long)n[ORCH_TRIAL_FINISHED], (long long)n[ORCH_TRIAL_FAILED],
           (long long)(n[ORCH_TRIAL_PENDING] + n[ORCH_TRIAL_RUNNING]), code);
  SCL_INFO(
      "overheads: %lld trials planned; %lld requests, dispatch round trip mean %.1f us max "
      "%.1f us (seen by groups), coordinator handling mean %.1f us max %.1f us; peak "
      "memory %.1f MiB; %.2f s, coordinator CPU %.2f s",
      (long long)c->plan->n, (long long)st->requests,
      st->rtt_n ? 1e6 * st->rtt_sum / st->rtt_n : 0.0, 1e6 * st->rtt_max,
      st->requests ? 1e6 * st->handle_sum / st->requests : 0.0, 1e6 * st->handle_max,
      peak_rss_mib(), scl_now() - c->t_start, cpu_seconds());
}

int coord_finish(coord *c) {
  int code = c->failure ? 1 : c->stopping ? ORCH_EXIT_REQUEUE : 0;
  if (code == ORCH_EXIT_REQUEUE && c->rd.restart >= c->sweep->max_requeues) {
    SCL_WARN(
        "stopped after %lld requeue(s) = sweep.max_requeues: not asking for another; "
        "submit the sweep again to continue",
        (long long)c->rd.restart);
    code = 1;
  }
  int64_t n[4];
  count(c, n);
  /* every trial ended, some failed: a job script tells this apart from a complete sweep and
   * from an error (docs/architecture.md 7) */
  if (code == 0 && n[ORCH_TRIAL_FAILED] > 0) code = ORCH_EXIT_TRIALS_FAILED;
  orch_record end = {.type = ORCH_REC_END, .group = -1, .count = code};
  snprintf(end.text, sizeof end.text, "%s",
           code == 0 || code == ORCH_EXIT_TRIALS_FAILED ? "complete"
           : c->stopping && !c->failure                 ? "stopped"
                                                        : "error");
  coord_record(c, &end, 1);
  if (orch_index_write(c->rd.path, c->sweep->name, c->state) != SCL_OK) {
    scl_log_error_traceback(); /* the index is derived: `safecl status DIR --reindex` rebuilds */
    scl_error_take(NULL, 0);
  }
  coord_trials_tsv(c, 1);
  report(c, code);
  return c->failure ? 1 : code;
}

void coord_destroy(coord *c) {
  if (orch_ledger_close(&c->ledger) != SCL_OK) {
    scl_log_error_traceback();
    scl_error_take(NULL, 0);
  }
  orch_rundir_close(&c->rd);
  orch_plan_destroy(&c->plan);
  orch_state_destroy(&c->state);
  free(c->state_of);
  free(c->queue);
  free(c->retry);
  free(c->group_trial);
  free(c->group_recorded);
}

scl_err orch_sweep_record_plan(const orch_sweep *s) {
  coord c = {.sweep = s, .group_size = 1, .t_start = scl_now()};
  c.rd.lock_fd = -1;
  scl_err err = coord_setup(&c);
  if (!err) {
    orch_record end = {.type = ORCH_REC_END, .group = -1};
    snprintf(end.text, sizeof end.text, "planned");
    coord_record(&c, &end, 1);
    if (c.failure) err = c.failure;
  }
  if (!err) err = orch_index_write(c.rd.path, s->name, c.state);
  if (!err)
    printf("planned %lld trial(s) in %s (%lld to run)\n", (long long)c.plan->n, c.rd.path,
           (long long)c.n_queue);
  coord_destroy(&c);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}
