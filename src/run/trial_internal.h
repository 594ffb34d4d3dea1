/* trial_internal.h: the state of a running trial, shared by trial.c (the session loop) and
 * trial_output.c (identity and trial.h5). Private to src/run/. */
#ifndef SAFECL_RUN_TRIAL_INTERNAL_H
#define SAFECL_RUN_TRIAL_INTERNAL_H

#include "safecl/data.h"
#include "safecl/method.h"
#include "safecl/metrics.h"
#include "safecl/sessions.h"
#include "safecl/trial.h"

typedef struct trial_cache {
  float *features; /* test-set features of a frozen network, all samples */
  uint8_t *have;
} trial_cache;

typedef struct trial_state {
  const run_trial_cfg *cfg;
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
  int64_t *val_idx; /* the validation split: session-1 training samples held out */
  int32_t *val_labels;
  int64_t n_val;
  double seconds_total;
} trial_state;

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
/* Writes run.dir/ckpt.h5: metrics and method state after `sessions_done` sessions. */
SCL_NODISCARD scl_err trial_checkpoint_write(trial_state *st, int sessions_done);
/* Restores from run.dir/ckpt.h5 if present (*sessions_done = 0 if not); a checkpoint of another
 * trial is an error naming the file. */
SCL_NODISCARD scl_err trial_checkpoint_load(trial_state *st, int *sessions_done);
/* Publishes run.dir/trial.h5 with metrics and provenance. */
SCL_NODISCARD scl_err trial_write_results(trial_state *st);

#endif /* SAFECL_RUN_TRIAL_INTERNAL_H */
