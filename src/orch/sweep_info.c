/* sweep_info.c: what job scripts ask of a sweep without running it (`safecl sweep --list,
 * --count, --summary, --trial I, --plan`): the plan in expansion order, each trial's status in
 * run.dir, expected seconds, the exact `safecl train` arguments of one trial for array jobs, and
 * the plan recorded in run.dir so that status and reports follow array jobs.
 *
 * The index I of --trial is the trial's position in expansion order (datasets x methods x grid x
 * points x seeds, duplicates removed), which does not depend on the run directory's state, so
 * every array task of a job sees the same numbering. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orch_internal.h"

static orch_trial_status status_of(const orch_sweep *s, orch_state *st, const orch_trial *t) {
  if (!s->run_dir[0]) return ORCH_TRIAL_PENDING;
  if (orch_rundir_finished(s->run_dir, t->id)) return ORCH_TRIAL_FINISHED;
  const orch_trial_state *ts = st ? orch_state_find(st, t->id) : NULL;
  if (t->error || (ts && ts->status == ORCH_TRIAL_FAILED && !s->retry_failed))
    return ORCH_TRIAL_FAILED;
  return ORCH_TRIAL_PENDING;
}

static scl_err print_trial_args(const orch_sweep *s, const orch_plan *p, const char *which) {
  char *end = NULL;
  long long i = strtoll(which, &end, 10);
  if (!which[0] || *end || i < 0 || i >= p->n)
    return SCL_ERROR(SCL_ERR_ARG, "--trial %s: not a trial index in [0, %lld)", which,
                     (long long)p->n);
  SCL_CHECK(s->run_dir[0], SCL_ERR_ARG, "--trial needs run.dir=DIR");
  int argc = 0;
  char **argv = NULL;
  SCL_CALL(orch_plan_args(s, &p->trials[i], s->run_dir, &argc, &argv));
  for (int k = 0; k < argc; k++) printf("%s\n", argv[k]);
  orch_args_free(argc, argv);
  return SCL_OK;
}

scl_err orch_sweep_info(const char *mode, const char *which, int argc, char **argv) {
  orch_sweep *s = NULL;
  orch_plan *p = NULL;
  orch_state *st = NULL;
  scl_err err = SCL_OK;
  int first = 1;
  while (first < argc && !cfg_is_override(argv[first])) first++;
  SCL_CHECK_GOTO(err, done, first == 2, SCL_ERR_ARG, "%s: give exactly one sweep file", mode);
  SCL_CALL_GOTO(err, orch_sweep_load(argv[1], argc - first, argv + first, &s), done);
  if (!strcmp(mode, "--plan")) {
    SCL_CALL_GOTO(err, orch_sweep_record_plan(s), done);
    goto done;
  }
  SCL_CALL_GOTO(err, orch_plan_create(s, &p), done);
  if (s->run_dir[0]) SCL_CALL_GOTO(err, orch_state_load(s->run_dir, &st), done);
  orch_cost_calibrate(p, st);
  if (!strcmp(mode, "--trial")) SCL_CALL_GOTO(err, print_trial_args(s, p, which), done);
  if (!strcmp(mode, "--count")) printf("%lld\n", (long long)p->n);
  double total = 0, longest = 0;
  int64_t to_run = 0;
  char lbl[2048];
  for (int64_t i = 0; i < p->n && strcmp(mode, "--trial") && strcmp(mode, "--count"); i++) {
    const orch_trial *t = &p->trials[i];
    orch_trial_status ts = status_of(s, st, t);
    if (!strcmp(mode, "--list")) {
      orch_trial_label(t, lbl, sizeof lbl);
      printf("%lld %s %.1f %s %s\n", (long long)i, t->id, t->cost, orch_trial_status_name(ts), lbl);
    }
    if (ts != ORCH_TRIAL_PENDING) continue;
    to_run++;
    total += t->cost;
    if (t->cost > longest) longest = t->cost;
  }
  if (!strcmp(mode, "--summary"))
    printf(
        "trials=%lld\nto_run=%lld\nexpected_seconds=%.0f\nlongest_seconds=%.0f\n"
        "group_size=%lld\n",
        (long long)p->n, (long long)to_run, total, longest, (long long)s->group_size);
done:
  orch_state_destroy(&st);
  orch_plan_destroy(&p);
  orch_sweep_destroy(&s);
  return err;
}
