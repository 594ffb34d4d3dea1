/* trial.h: one continual-learning trial on a group of ranks (one rank or many, data-parallel):
 * data, sessions, method, evaluation, metrics and the trial.h5 results file (docs/architecture.md
 * sections 3, 4, 6).
 *
 * Identity: a trial is named by the XXH3-128 of its canonical effective config (keys that do
 * not change results left out) plus the hashes of the backbone file and both dataset manifests.
 * `run.dir` holds trial.h5; rerunning a finished trial with the same identity does nothing, and
 * a run.dir holding a different trial is refused rather than overwritten. */
#ifndef SAFECL_TRIAL_H
#define SAFECL_TRIAL_H

#include "safecl/config.h"
#include "safecl/core.h"
#include "safecl/dist.h"
#include "safecl/extract.h"
#include "safecl/method.h"

/* trial.h5's layout (analysis/SCHEMA.md). 2: /losses has a step column and per-session term
 * names (/loss_terms), /ridge_search added; version 1 files differ only there. 3: every string
 * fixed-length (no HDF5 global heap); safecl reads version 2 alike (RUN_TRIAL_SCHEMA_OLDEST). */
#define RUN_TRIAL_SCHEMA_VERSION 3
#define RUN_TRIAL_SCHEMA_OLDEST 2

typedef struct run_trial_cfg {
  char *dataset_name;
  char *format;
  char *root;
  char *domains;
  int64_t classes;
  int64_t init_cls;
  int64_t increment;
  int shuffle;
  int64_t order_seed; /* -1: the class order follows `seed`; else it is pinned to this */
  int64_t limit;      /* at most this many images per class and split; 0 = all */
  int64_t resize;
  int64_t crop;
  int64_t max_image_pixels;
  int64_t syn_classes;
  int64_t syn_train_per_class;
  int64_t syn_test_per_class;
  int64_t syn_size;
  int64_t syn_seed;
  double syn_difficulty;
  char *arch;
  char *weights;
  int64_t backbone_seed;
  int ignore_unexpected; /* skip unused tensors of the weights file */
  learn_method_cfg method;
  int64_t eval_batch;
  double val_fraction;
  int64_t ckpt_every;
  double ckpt_minutes; /* checkpoint at the first step boundary this long after the last; 0: off */
  int64_t log_every;   /* loss log: 0 = epoch means, N = means of N steps */
  double progress_seconds; /* a progress line this often while training (0: epoch ends only) */
  int64_t threads;
  char *solver; /* ridge solver of a group: "auto", "lapack", "scalapack" */
  int64_t seed;
  char *run_dir;
} run_trial_cfg;

extern const cfg_schema run_trial_schema;

/* What a finished (or skipped) trial reports to its caller, e.g. the sweep coordinator. */
typedef struct run_trial_result {
  char id[33];
  int skipped; /* 1: run.dir already held this finished trial; the numbers are read from it */
  double final_acc, avg_acc, val_acc, seconds;
} run_trial_result;

/* Hooks a caller may give a trial. should_stop is polled at every session boundary (and, with
 * training, every step boundary) on every rank of the group; when it returns non-zero on any
 * rank, the whole group checkpoints and returns SCL_ERR_STOP, and a rerun resumes from there. */
typedef struct run_trial_hooks {
  int (*should_stop)(void *ctx);
  void *ctx;
} run_trial_hooks;

/* Runs (or, if run.dir already holds this finished trial, skips) the trial on the ranks of
 * `group` (collective over it; NULL: this process alone), data-parallel: every rank computes,
 * group rank 0 writes trial.h5; the result is the same on every rank. hooks and result may be
 * NULL; a stop requested on any rank stops the group. */
SCL_NODISCARD scl_err run_trial_ex(const run_trial_cfg *cfg, const dist_comm *group,
                                   const run_trial_hooks *hooks, run_trial_result *result);

/* The trial's identity (32 hex digits + NUL) without running it: the canonical config, the
 * weights file's hash and both dataset manifests. Datasets and weights files are hashed once
 * per process and cached (by their config keys and path), so a coordinator can name thousands
 * of trials cheaply. Not thread-safe. */
SCL_NODISCARD scl_err run_trial_identity(const run_trial_cfg *cfg, char id[33]);

/* The batch-wise evaluation of a diagnostic network (learn_network.test_batch > 0; docs/
 * architecture.md section 4). A list of n images is taken in the order of its labels (a stable
 * sort: ties keep list order, as PILOT's class-sorted test loader has them) and cut into
 * consecutive batches of exactly `batch` images, the last one shorter; the group's ranks take
 * whole batches, rank r its learn_shard of the batch count. */
typedef struct run_batch_plan {
  int64_t n, batch, n_batches;
  int64_t *order;      /* (n) list positions in sorted order; batch b is order[b*batch ...] */
  int64_t first, last; /* this rank's batches [first, last) */
  int64_t lo, hi;      /* the same as rows of the sorted list: [lo, hi) */
} run_batch_plan;

/* The plan of rank `rank` of `size` for a list with these labels; run_batch_plan_free releases
 * it. */
SCL_NODISCARD scl_err run_batch_plan_create(const int32_t *labels, int64_t n, int64_t batch,
                                            int size, int rank, run_batch_plan *p);
/* Rows [*lo, *hi) of the sorted list that rank `rank` of `size` holds under plan p. */
void run_batch_plan_rows(const run_batch_plan *p, int size, int rank, int64_t *lo, int64_t *hi);
void run_batch_plan_free(run_batch_plan *p);

/* Outputs of the batch-wise network `net` for the list idx[0..n) of `ds` (labels: the images'
 * mapped labels), one forward call per batch of the plan (opts->batch is not used), gathered over
 * the group `comm` (collective; a failure on one rank fails every rank). out receives this rank's
 * learn_shard [lo, hi) of the list, in list order: row i - lo is image i's output. */
SCL_NODISCARD scl_err run_extract_batchwise(const learn_network *net, const data_dataset *ds,
                                            const int64_t *idx, const int32_t *labels, int64_t n,
                                            const run_extract_opts *opts, const dist_comm *comm,
                                            float *out);

#endif /* SAFECL_TRIAL_H */
