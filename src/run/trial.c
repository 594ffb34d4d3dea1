/* trial.c: one continual-learning trial from start to end (safecl/trial.h): open it
 * (trial_open.c), resume from run.dir's checkpoint if there is one, run the sessions in order
 * (trial_session.c) with a checkpoint after each, stop between sessions when the stop hook asks,
 * publish trial.h5 and remove the checkpoints. What a session does, how the trial is opened and
 * how checkpoints are read and written live in their own files; this one holds the order and the
 * group's agreement at each step.
 *
 * On a group of ranks (docs/architecture.md section 2) every rank runs this same sequence; group
 * rank 0 writes the trial's files and logs at the caller's level, the other ranks log warnings
 * and errors only. Phases that can fail on one rank alone end in a group-wide status decision
 * (run_group_agree), so every rank returns the same status. */
#include "safecl/trial.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "progress.h"
#include "trial_phases.h"

/* Any rank's stop request stops the whole group at the same boundary. Every rank of a group
 * has the same hooks (one caller), so without a hook there is nothing to agree on. */
int trial_should_stop(trial_state *st) {
  const run_trial_hooks *h = st->hooks;
  if (!h || !h->should_stop) return 0;
  int stop = h->should_stop(h->ctx);
  if (run_group_any(&st->group, &stop)) return 1;
  return stop;
}

scl_err run_trial_ex(const run_trial_cfg *cfg, const dist_comm *group, const run_trial_hooks *hooks,
                     run_trial_result *result) {
  trial_state st = {.cfg = cfg, .hooks = hooks, .resume_epoch = -1, .resume_batch = -1};
  run_group_init(&st.group, group);
  run_trial_result local = {0};
  if (!result) result = &local;
  memset(result, 0, sizeof *result);
  scl_err err = SCL_OK;
  double t0 = scl_now();
  int finished = 0;
  scl_log_level level = scl_log_get_level();
  if (!run_group_root(&st.group) && level < SCL_LOG_WARN) scl_log_set_level(SCL_LOG_WARN);
  SCL_CALL_GOTO(err, run_group_agree(&st.group, trial_open(cfg, &st, result, &finished)), done);
  if (finished) {
    result->skipped = 1;
    SCL_INFO("trial %s in %s is already finished; nothing to do", st.id, cfg->run_dir);
    goto done;
  }
  SCL_CALL_GOTO(err, run_group_agree(&st.group, trial_open_learning(cfg, &st)), done);
  SCL_CALL_GOTO(err, run_progress_create(&st, &st.progress), done);
  char layout[512];
  SCL_INFO("trial %s: %s on %s, %s, %d rank%s (ridge solver %s)", st.id, cfg->method.name,
           cfg->dataset_name, trial_sessions_text(&st, layout, sizeof layout), st.group.size,
           st.group.size == 1 ? "" : "s", linalg_group_solver_name(st.linalg, cfg->method.rp_dim));
  int first = 0;
  SCL_CALL_GOTO(err, run_group_agree(&st.group, trial_checkpoint_load(&st, &first)), done);
  if (first > 0) SCL_INFO("resuming after session %d from %s/ckpt.h5", first, cfg->run_dir);
  if (st.resume_epoch >= 0)
    SCL_INFO("resuming session %d at epoch %lld, batch %lld from %s/ckpt.h5", first + 1,
             (long long)st.resume_epoch + 1, (long long)st.resume_batch + 1, cfg->run_dir);
  for (int t = first; t < st.n_sessions; t++) {
    SCL_CALL_GOTO(err, trial_run_session(&st, t), done);
    SCL_CALL_GOTO(err, trial_checkpoint_write(&st, t + 1, -1, -1), done);
    if (t + 1 < st.n_sessions && trial_should_stop(&st))
      SCL_ERROR_GOTO(err, done, SCL_ERR_STOP, "trial %s stopped after session %d (checkpointed)",
                     st.id, t + 1);
  }
  st.seconds_total = scl_now() - t0;
  if (run_group_root(&st.group)) {
    err = trial_write_results(&st);
    static const char *const ckpts[] = {"ckpt.h5", "ckpt.prev.h5"}; /* checkpoint.c */
    for (int k = 0; k < 2 && !err; k++) {
      char ckpt[4096];
      snprintf(ckpt, sizeof ckpt, "%s/%s", cfg->run_dir, ckpts[k]);
      if (unlink(ckpt) != 0 && errno != ENOENT)
        SCL_WARN("%s: not removed: %s", ckpt, strerror(errno));
    }
  }
  SCL_CALL_GOTO(err, run_group_agree(&st.group, err), done);
  result->final_acc = run_metrics_final(st.metrics, 0);
  result->avg_acc = run_metrics_average(st.metrics, 0);
  result->val_acc = run_metrics_val(st.metrics, 0);
  result->seconds = st.seconds_total;
  SCL_INFO("trial %s finished in %.1f s: final %.2f%%, average incremental %.2f%%", st.id,
           st.seconds_total, result->final_acc, result->avg_acc);
done:
  if (err) /* the caller logs it too; here it reaches the trial's own log */
    scl_log_file(err == SCL_ERR_STOP ? SCL_LOG_INFO : SCL_LOG_ERROR, "%s", scl_error_message());
  run_progress_destroy(&st.progress);
  scl_log_close_file();
  trial_close(&st);
  scl_log_set_trial(NULL);
  scl_log_set_level(level);
  return err;
}
