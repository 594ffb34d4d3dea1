/* trial_internal.h: the state of a running trial, shared by trial.c and its phases
 * (trial_phases.h), trial_output.c (identity and trial.h5) and checkpoint.c. Private to src/run/. */
#ifndef SAFECL_RUN_TRIAL_INTERNAL_H
#define SAFECL_RUN_TRIAL_INTERNAL_H

#include "safecl/data.h"
#include "safecl/linalg_group.h"
#include "safecl/method.h"
#include "safecl/metrics.h"
#include "safecl/sessions.h"
#include "safecl/plan.h"
#include "safecl/trial.h"
#include "safecl/run_group.h"

typedef struct trial_cache {
  float *features; /* test-set features of a frozen network, all samples */
  uint8_t *have;
} trial_cache;

#define TRIAL_TERMS_CHARS 256

typedef struct trial_state {
  const run_trial_cfg *cfg;
  run_group group;      /* the ranks this trial runs on (one process: dist_comm_self()) */
  linalg_group *linalg; /* the group's ridge solver */
  char *config_text;
  char id[33];
  char weights_hash[33], train_manifest[33], test_manifest[33];
  data_dataset *train, *test; /* domain-incremental: every domain, concatenated */
  data_sessions *plan;        /* class order and class-incremental boundaries */
  int dil;                    /* 1: domain-incremental (one domain per session, all classes) */
  int n_sessions;
  vit_model *backbone;
  learn_method *method;
  run_metrics *metrics;
  trial_cache cache[LEARN_MAX_NETWORKS];
  const run_trial_hooks *hooks;
  int64_t steps_since_ckpt;
  double ckpt_clock; /* scl_now() of the last checkpoint, or of the first training session */
  /* mid-session position of a loaded checkpoint (-1: at a session boundary) */
  int64_t resume_epoch, resume_batch;
  double epoch_loss[LEARN_MAX_LOSS_TERMS]; /* running sums of the current epoch */
  /* loss curve: records of (session, epoch, step, mean term 0..LEARN_MAX_LOSS_TERMS-1) */
  double *loss_log;
  int64_t n_loss, cap_loss;
  char (*loss_terms)[TRIAL_TERMS_CHARS]; /* per session: its term names, comma-separated */
  /* per session t: the ridge searches of its classifier fit, in the order the method ran them,
   * ridge[t * LINALG_SEARCH_LOG + k] for k < n_ridge[t] */
  linalg_search_record *ridge;
  int *n_ridge;
  int64_t *val_idx; /* the validation split: session-1 training samples held out */
  int32_t *val_labels;
  int64_t n_val;
  double seconds_total;
  struct run_progress *progress; /* progress.h; group rank 0 only, else NULL */
} trial_state;

/* Prices the counted sessions of a plan (plan.c). */
void run_plan_price(const run_trial_cfg *cfg, run_plan *p, const learn_method_ops *ops,
                    const vit_config *vc, int64_t n_classes);
/* id = XXH3-128 of the identity dump of cfg and the three input hashes (hex). */
SCL_NODISCARD scl_err trial_identity_of(const run_trial_cfg *cfg, const char *weights_hash,
                                        const char *train_manifest, const char *test_manifest,
                                        char id[33]);
/* The weights file's hash ("random" without one), cached per path. */
SCL_NODISCARD scl_err trial_weights_hash(const char *path, char out[33]);
/* Fills st->id and the input hashes (config identity, weights file, manifests). */
SCL_NODISCARD scl_err trial_identity(trial_state *st);
/* *finished = 1 if run.dir/trial.h5 holds this finished trial; an unreadable or foreign file is
 * an error that names it, never overwritten. */
SCL_NODISCARD scl_err trial_check_existing(trial_state *st, int *finished,
                                           run_trial_result *result);
#define TRIAL_LOSS_COLS (3 + LEARN_MAX_LOSS_TERMS)

/* Writes run.dir/ckpt.h5: metrics, loss curve and method state after `sessions_done` sessions,
 * plus the position inside session `sessions_done` (epoch, next batch; -1, -1 at a boundary). */
SCL_NODISCARD scl_err trial_checkpoint_write(trial_state *st, int sessions_done, int64_t epoch,
                                             int64_t batch);
/* Restores from run.dir/ckpt.h5 if present (*sessions_done = 0 if not): metrics, loss curve and
 * position (st->resume_epoch/batch); the method state too when the checkpoint is at a session
 * boundary (mid-session, trial_checkpoint_load_method restores it after train_begin). A
 * checkpoint of another trial is an error naming the file. */
SCL_NODISCARD scl_err trial_checkpoint_load(trial_state *st, int *sessions_done);
SCL_NODISCARD scl_err trial_checkpoint_load_method(trial_state *st);
/* After every training step and epoch: checkpoint every train.ckpt_every steps and at the first
 * boundary train.ckpt_minutes after the last checkpoint (collective: the group agrees), and
 * honour the stop hook (checkpoint, then SCL_ERR_STOP). Position: session t, epoch, next batch. */
SCL_NODISCARD scl_err trial_step_boundary(trial_state *st, int t, int64_t epoch, int64_t batch);
/* The stop hook, decided by the whole group (collective: any rank asking stops every rank). */
int trial_should_stop(trial_state *st);
/* The plan's facts (class and domain counts) of two open splits: run_plan_facts_read without
 * opening the files; free with run_plan_facts_free. */
SCL_NODISCARD scl_err run_plan_facts_count(const run_trial_cfg *cfg, const data_dataset *train,
                                           const data_dataset *test, run_plan_facts *f);
/* Appends one record to the loss curve: the mean loss terms of session t's steps that end at
 * step `step` (1-based within the epoch), and names session t's terms. */
SCL_NODISCARD scl_err trial_log_losses(trial_state *st, int t, int64_t epoch, int64_t step,
                                       const learn_train_plan *plan, const double *mean);
/* The training loop of session s over the samples idx (labels mapped); resume_epoch >= 0
 * continues a checkpointed session at (resume_epoch, resume_batch). */
SCL_NODISCARD scl_err trial_train_session(trial_state *st, const learn_session *s,
                                          const int64_t *idx, const int32_t *labels, int64_t n,
                                          int64_t resume_epoch, int64_t resume_batch);
/* Publishes run.dir/trial.h5 with metrics and provenance. */
SCL_NODISCARD scl_err trial_write_results(trial_state *st);

#endif /* SAFECL_RUN_TRIAL_INTERNAL_H */
