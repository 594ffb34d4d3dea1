/* sweep_info.c: what job scripts ask of a sweep without running it (`safecl sweep --list,
 * --count, --summary, --trial I, --plan`): the plan in expansion order, each trial's status in
 * run.dir as the next job sees it (orch_state_next: a trial failed on a fault of the machine
 * within sweep.max_retries is pending, counted in to_run= and retried=; one whose processes
 * crashed sweep.max_crashes times is failed), expected seconds (orch_sweep_print; a trial whose
 * dataset or weights cannot be read is listed as failed with its message, and counted in
 * --summary's failed=), the exact `safecl train` arguments of one trial
 * for array jobs (orch_sweep_print_trial), and the plan recorded in run.dir so that status and
 * reports follow array jobs (orch_sweep_plan_record).
 *
 * The index I of --trial is the trial's position in expansion order (datasets x methods x grid x
 * points x seeds, duplicates removed), which does not depend on the run directory's state, so
 * every array task of a job sees the same numbering. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orch_internal.h"

/* A trial's status as the next job sees it: `note` says why a trial that failed runs again
 * (pending) or why a pending one fails without running (NULL otherwise); the same decision as
 * the coordinator's (orch_state_next), so that the counts are what the job does. */
static orch_trial_status status_of(const orch_sweep *s, orch_state *st, const orch_trial_dirs *dirs,
                                   const orch_trial *t, const char **note) {
  *note = NULL;
  if (t->error) return ORCH_TRIAL_FAILED; /* its inputs cannot be read: it never runs */
  if (!s->run_dir[0]) return ORCH_TRIAL_PENDING;
  if (orch_trial_dirs_finished(dirs, s->run_dir, t->id)) return ORCH_TRIAL_FINISHED;
  const orch_trial_state *ts = st ? orch_state_find(st, t->id) : NULL;
  switch (orch_state_next(ts, s)) {
    case ORCH_NEXT_RETRY:
      *note = "retried: failed on a fault of the machine (resource), the next job runs it again";
      return ORCH_TRIAL_PENDING;
    case ORCH_NEXT_FAILED:
      return ORCH_TRIAL_FAILED;
    case ORCH_NEXT_CRASHED:
      *note = "failed: its processes crashed sweep.max_crashes times, the next job fails it";
      return ORCH_TRIAL_FAILED;
    default:
      return ORCH_TRIAL_PENDING;
  }
}

/* The sweep of argv (argv[1] the sweep file, argv[2..] overrides); `option` names the command
 * line option in messages. */
static scl_err load(const char *option, int argc, char **argv, orch_sweep **s) {
  int first = 1;
  while (first < argc && !cfg_is_override(argv[first])) first++;
  SCL_CHECK(first == 2, SCL_ERR_ARG, "%s: give exactly one sweep file", option);
  SCL_CALL(orch_sweep_load(argv[1], argc - first, argv + first, s));
  return SCL_OK;
}

/* The sweep's plan in expansion order, each trial priced and, with a run.dir, the run's state. */
static scl_err load_plan(const char *option, int argc, char **argv, orch_sweep **s, orch_plan **p,
                         orch_state **st) {
  SCL_CALL(load(option, argc, argv, s));
  SCL_CALL(orch_plan_create(*s, p));
  if ((*s)->run_dir[0]) SCL_CALL(orch_state_load((*s)->run_dir, st));
  orch_cost_calibrate(*p, *st);
  return SCL_OK;
}

/* --count and --summary name the trials that cannot run on stderr (the first few). */
static void warn_errors(const orch_plan *p) {
  int64_t n = 0;
  char lbl[2048];
  for (int64_t i = 0; i < p->n; i++) {
    if (!p->trials[i].error || ++n > 5) continue;
    orch_trial_label(&p->trials[i], lbl, sizeof lbl);
    SCL_WARN("trial %lld (%s) fails without running: %s", (long long)i, lbl, p->trials[i].error);
  }
  if (n)
    SCL_WARN("%lld trial(s) of the sweep fail without running (--list names each)", (long long)n);
}

static void print_view(orch_sweep_view view, const orch_sweep *s, const orch_plan *p,
                       orch_state *st, const orch_trial_dirs *dirs) {
  if (view != ORCH_SWEEP_LIST) warn_errors(p);
  if (view == ORCH_SWEEP_COUNT) {
    printf("%lld\n", (long long)p->n);
    return;
  }
  double total = 0, longest = 0;
  int64_t to_run = 0, failed = 0, retried = 0;
  char lbl[2048];
  const char *note = NULL;
  for (int64_t i = 0; i < p->n; i++) {
    const orch_trial *t = &p->trials[i];
    orch_trial_status ts = status_of(s, st, dirs, t, &note);
    if (view == ORCH_SWEEP_LIST) {
      orch_trial_label(t, lbl, sizeof lbl);
      printf("%lld %s %.1f %s %s", (long long)i, t->id, t->cost, orch_trial_status_name(ts), lbl);
      const orch_trial_state *rec =
          st && (note || ts == ORCH_TRIAL_FAILED) ? orch_state_find(st, t->id) : NULL;
      const char *why = t->error                          ? t->error
                        : !rec                            ? NULL
                        : ts == ORCH_TRIAL_FAILED && note ? rec->crash /* crashed */
                                                          : rec->message;
      if (note) printf(" %s", note);
      if (why) { /* one line per trial: the message's own newlines become spaces */
        printf(" error: ");
        for (const char *c = why; *c; c++) putchar(*c == '\n' ? ' ' : *c);
      }
      putchar('\n');
    }
    failed += ts == ORCH_TRIAL_FAILED;
    if (ts != ORCH_TRIAL_PENDING) continue;
    retried += note != NULL;
    to_run++;
    total += t->cost;
    if (t->cost > longest) longest = t->cost;
  }
  if (view == ORCH_SWEEP_SUMMARY)
    printf(
        "trials=%lld\nto_run=%lld\nexpected_seconds=%.0f\nlongest_seconds=%.0f\n"
        "group_size=%lld\nfailed=%lld\nretried=%lld\n",
        (long long)p->n, (long long)to_run, total, longest, (long long)s->group_size,
        (long long)failed, (long long)retried);
}

scl_err orch_sweep_print(orch_sweep_view view, int argc, char **argv) {
  static const char *const options[] = {"--list", "--count", "--summary"};
  orch_sweep *s = NULL;
  orch_plan *p = NULL;
  orch_state *st = NULL;
  scl_err err = SCL_OK;
  orch_trial_dirs dirs = {0};
  SCL_CALL_GOTO(err, load_plan(options[view], argc, argv, &s, &p, &st), done);
  if (s->run_dir[0]) SCL_CALL_GOTO(err, orch_trial_dirs_list(s->run_dir, &dirs), done);
  print_view(view, s, p, st, &dirs);
done:
  orch_trial_dirs_free(&dirs);
  orch_state_destroy(&st);
  orch_plan_destroy(&p);
  orch_sweep_destroy(&s);
  return err;
}

scl_err orch_sweep_print_trial(const char *index, int argc, char **argv) {
  orch_sweep *s = NULL;
  orch_plan *p = NULL;
  orch_state *st = NULL;
  int n = 0;
  char **args = NULL;
  scl_err err = SCL_OK;
  SCL_CALL_GOTO(err, load_plan("--trial", argc, argv, &s, &p, &st), done);
  char *end = NULL;
  long long i = strtoll(index, &end, 10);
  if (!index[0] || *end || i < 0 || i >= p->n)
    SCL_ERROR_GOTO(err, done, SCL_ERR_ARG, "--trial %s: not a trial index in [0, %lld)", index,
                   (long long)p->n);
  SCL_CHECK_GOTO(err, done, s->run_dir[0], SCL_ERR_ARG, "--trial needs run.dir=DIR");
  SCL_CALL_GOTO(err, orch_plan_args(s, &p->trials[i], s->run_dir, &n, &args), done);
  /* One argument per line (jobs/array.sbatch reads them so): a newline inside one would split it
   * and inject an extra key=value, so such an argument is refused before anything is printed. */
  for (int k = 0; k < n; k++)
    SCL_CHECK_GOTO(err, done, !strchr(args[k], '\n'), SCL_ERR_ARG,
                   "--trial %s: train argument %d contains a newline (a path with a newline in "
                   "its name?), which would split it in the one-per-line output: '%s'",
                   index, k + 1, args[k]);
  for (int k = 0; k < n; k++) printf("%s\n", args[k]);
done:
  orch_args_free(n, args);
  orch_state_destroy(&st);
  orch_plan_destroy(&p);
  orch_sweep_destroy(&s);
  return err;
}

scl_err orch_sweep_plan_record(int argc, char **argv) {
  orch_sweep *s = NULL;
  scl_err err = SCL_OK;
  SCL_CALL_GOTO(err, load("--plan", argc, argv, &s), done);
  SCL_CALL_GOTO(err, orch_sweep_record_plan(s), done);
done:
  orch_sweep_destroy(&s);
  return err;
}
