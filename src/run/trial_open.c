/* trial_open.c: opening and closing a trial's state: the benchmark, identity, run.dir and
 * trial.log (trial_open), then the validation split, backbone, the group's ridge solver, the
 * method and its metrics (trial_open_learning), and freeing all of it (trial_close). The split
 * in two lets a trial found finished in run.dir stop before the backbone is loaded. Each rank
 * opens its own copy of everything; the caller (trial.c) decides the group's status after each
 * half, so a failure on one rank fails every rank with its message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safecl/publish.h"
#include "trial_phases.h"

static scl_err open_benchmark(const run_trial_cfg *cfg, trial_state *st) {
  SCL_CALL(trial_open_split(cfg, "train", &st->train));
  SCL_CALL(trial_open_split(cfg, "test", &st->test));
  int64_t nc = data_dataset_num_classes(st->train);
  SCL_CHECK(data_dataset_num_classes(st->test) == nc, SCL_ERR_FORMAT,
            "%s: train split has %lld classes but test split has %lld", cfg->root, (long long)nc,
            (long long)data_dataset_num_classes(st->test));
  SCL_CALL(trial_sessions_layout(cfg, nc, &st->plan, &st->n_sessions, &st->dil));
  return SCL_OK;
}

/* Random weights are legitimate for smoke tests but make every accuracy meaningless as a
 * result, so the log says so loudly and trial.h5 records it (backbone_random). */
static scl_err open_backbone(const run_trial_cfg *cfg, trial_state *st) {
  if (!cfg->weights[0] && run_group_root(&st->group)) /* once per trial, not once per rank */
    SCL_WARN(
        "RANDOM WEIGHTS: backbone.weights is not set, so the %s backbone is randomly "
        "initialised (seed %lld); this trial's accuracies say nothing about the method. Set "
        "backbone.weights to a pre-trained .safetensors file for real results.",
        cfg->arch, (long long)cfg->backbone_seed);
  SCL_CALL(vit_model_open(cfg->arch, cfg->crop, "dataset.crop", cfg->weights,
                          cfg->ignore_unexpected ? VIT_LOAD_IGNORE_UNEXPECTED : 0u,
                          (uint64_t)cfg->backbone_seed, cfg->eval_batch, (int)cfg->threads,
                          &st->backbone));
  return SCL_OK;
}

static scl_err open_method(const run_trial_cfg *cfg, trial_state *st) {
  const learn_method_ops *ops = learn_method_find(cfg->method.name);
  SCL_CHECK(ops, SCL_ERR_ARG, "method.name = \"%s\" is not one of %s", cfg->method.name,
            learn_method_names());
  learn_context ctx = {.backbone = st->backbone,
                       .n_classes = st->plan->n_classes,
                       .seed = (uint64_t)cfg->seed,
                       .domain_incremental = st->dil,
                       .cfg = &cfg->method,
                       .comm = st->group.comm,
                       .linalg = st->linalg,
                       .n_sessions = st->n_sessions};
  SCL_CALL(ops->create(&ctx, &st->method));
  const char *names[LEARN_MAX_PREDICTORS] = {0};
  int np = ops->predictors(st->method, names);
  SCL_CALL(run_metrics_create(st->n_sessions, np, names, &st->metrics));
  return SCL_OK;
}

/* Opens everything a trial needs; on a group every rank does the same and the group agrees. */
scl_err trial_open(const run_trial_cfg *cfg, trial_state *st, run_trial_result *result,
                   int *finished) {
  SCL_CHECK(st->group.size <= LEARN_MAX_GROUP, SCL_ERR_ARG,
            "a trial's group has %d ranks; at most %d", st->group.size, LEARN_MAX_GROUP);
  SCL_CALL(cfg_dump(&run_trial_schema, cfg, &st->config_text));
  SCL_CALL(open_benchmark(cfg, st));
  SCL_CALL(trial_identity(st));
  memcpy(result->id, st->id, sizeof st->id);
  scl_log_set_trial(st->id);
  SCL_CALL(io_mkdirs(cfg->run_dir));
  SCL_CALL(trial_check_existing(st, finished, result));
  if (run_group_root(&st->group)) { /* the trial's own log beside trial.h5, appended */
    char path[4096];
    snprintf(path, sizeof path, "%s/trial.log", cfg->run_dir);
    if (scl_log_open_file(path)) {
      char msg[512];
      scl_error_take(msg, sizeof msg);
      SCL_WARN("%s; this trial logs to stderr only", msg);
    }
  }
  return SCL_OK;
}

scl_err trial_open_learning(const run_trial_cfg *cfg, trial_state *st) {
  SCL_CALL(trial_carve_validation(st));
  SCL_CALL(open_backbone(cfg, st));
  linalg_solver solver = !strcmp(cfg->solver, "lapack")      ? LINALG_SOLVER_LAPACK
                         : !strcmp(cfg->solver, "scalapack") ? LINALG_SOLVER_SCALAPACK
                                                             : LINALG_SOLVER_AUTO;
  SCL_CALL(linalg_group_create(st->group.comm, solver, (int)cfg->threads, &st->linalg));
  int f32 = !strcmp(cfg->method.ridge_precision, "float32");
  SCL_CHECK(!f32 || st->group.size == 1, SCL_ERR_ARG,
            "method.ridge.precision = float32 runs on one rank only, and this trial's group has %d "
            "ranks: run it on one rank or set method.ridge.precision = double",
            st->group.size);
  linalg_group_set_search_precision(st->linalg,
                                    f32 ? LINALG_PRECISION_FLOAT32 : LINALG_PRECISION_DOUBLE);
  SCL_CALL(open_method(cfg, st));
  st->ridge = calloc((size_t)st->n_sessions * LINALG_SEARCH_LOG, sizeof *st->ridge);
  st->n_ridge = calloc((size_t)st->n_sessions, sizeof *st->n_ridge);
  SCL_CHECK(st->ridge && st->n_ridge, SCL_ERR_NOMEM, "ridge search records");
  return SCL_OK;
}

void trial_close(trial_state *st) {
  for (int k = 0; k < LEARN_MAX_NETWORKS; k++) {
    scl_free(st->cache[k].features);
    scl_free(st->cache[k].have);
  }
  if (st->method) st->method->ops->destroy(&st->method);
  linalg_group_destroy(&st->linalg);
  scl_free(st->val_idx);
  scl_free(st->val_labels);
  free(st->loss_log);
  free(st->loss_terms);
  free(st->ridge);
  free(st->n_ridge);
  run_metrics_destroy(&st->metrics);
  vit_model_destroy(&st->backbone);
  data_sessions_destroy(&st->plan);
  data_dataset_close(&st->train);
  data_dataset_close(&st->test);
  free(st->config_text);
}
