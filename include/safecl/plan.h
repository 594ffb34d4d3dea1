/* plan.h: what a trial will cost, before running it (`safecl plan`; the sweep's scheduling).
 *
 * Work is counted per session from the dataset sizes and the method's learn_cost: training
 * passes (over the complete batches only with train.drop_last), feature extraction for the
 * classifier statistics, evaluation (frozen networks' test
 * features once per trial), and the random-projection ridge classifiers (projection, Gram
 * accumulation, the eigendecomposition of the search and the Cholesky solve). Seconds come from
 * rates measured on this machine at plan time (a ViT forward of the configured architecture,
 * a dgemm, and a dsyevd scaled by M^3), read from a calibration file that an earlier
 * `safecl plan --calibrate` measured (run_plan_rates_save/load), or derived from a nominal
 * sustained GFLOP/s per rank (run_plan_rates_nominal). On G ranks (run_plan_spread) every phase
 * is divided by G: the images of training, features and evaluation are sharded and the ridge
 * classifiers are fitted collectively, so that is the ideal, a lower bound on the time. Training passes are costed as forwards (a backward with
 * frozen weights costs about one forward), an estimate, not a measurement. Memory: the ridge
 * classifiers' matrices and the method's own state (learn_method_ops.state_bytes). */
#ifndef SAFECL_PLAN_H
#define SAFECL_PLAN_H

#include <stdio.h>

#include "safecl/trial.h"

typedef struct run_plan_rates {
  double forward_img_per_s; /* measured ViT forward throughput */
  double forward_gflop_per_s;
  double dgemm_gflop_per_s;
  double eig_seconds_512; /* dsyevd of a 512 x 512 matrix with vectors */
  char source[512];       /* where the rates come from, for the printed plan ("" = measured now) */
} run_plan_rates;

typedef struct run_plan_session {
  int64_t n_train, n_test, epochs;
  double gflop[4]; /* train, features, eval, classifier */
  double seconds[4];
} run_plan_session;

typedef struct run_plan {
  int n_sessions;
  run_plan_session s[64];
  run_plan_rates rates;
  double total_gflop, total_seconds;
  double classifier_bytes; /* G, Q, search matrices at their largest */
  double method_bytes; /* the method's own state over the trial (learn_method_ops.state_bytes) */
  int ranks;           /* the group the times are for (run_plan_spread; 0 and 1: one rank) */
} run_plan;

/* What a trial's cost needs to know about its dataset: class and image counts, read once per
 * dataset (run_plan_facts_read) and shared by every trial that names it. */
typedef struct run_plan_facts {
  int64_t n_classes;
  int64_t *train_per_class, *test_per_class; /* n_classes each (owned) */
  int n_domains;                             /* domainnet: the listed domains; else 0 */
  int64_t *train_per_domain;                 /* n_domains (owned) */
  int64_t n_test;                            /* test images in all */
  int uniform; /* 1: every class has as many train and test images as every other, so the
                  class order does not change any session's counts */
} run_plan_facts;

/* The settings that decide which samples a trial's dataset holds (format, root, domains and the
 * synthetic generator's counts), as one line: trials with the same line share their facts. */
void run_plan_dataset_key(const run_trial_cfg *cfg, char *buf, size_t cap);
/* Opens the trial's train and test splits and counts images per class (and per domain); a
 * label outside [0, classes) is SCL_ERR_FORMAT naming the dataset. free: run_plan_facts_free. */
SCL_NODISCARD scl_err run_plan_facts_read(const run_trial_cfg *cfg, run_plan_facts *facts);
void run_plan_facts_free(run_plan_facts *facts);
/* Counts the trial's work from its dataset's facts and prices it with `rates`: arithmetic and
 * the session layout (the class order of the trial's seed), no file opened. */
SCL_NODISCARD scl_err run_plan_count(const run_trial_cfg *cfg, const run_plan_facts *facts,
                                     const run_plan_rates *rates, run_plan *plan);

/* ids[k] = run_trial_identity of cfg with seed = seeds[k], for k < n, computed as a sweep's
 * seeds need it: the inputs are hashed once and the canonical text dumped once, only its seed
 * line rewritten per seed (used once it gave the first two seeds' full identities; otherwise
 * every seed's identity is computed in full). Errors as run_trial_identity's. */
SCL_NODISCARD scl_err run_plan_identities(const run_trial_cfg *cfg, int n, const int64_t *seeds,
                                          char (*ids)[33]);

/* Measures the rates for this config's architecture (about a second for ViT-B). */
SCL_NODISCARD scl_err run_plan_measure(const run_trial_cfg *cfg, run_plan_rates *rates);
/* Rates of a rank that sustains `gflops` GFLOP/s in every phase (a dsyevd of n x n with vectors
 * counted as 9 n^3 flops). gflops > 0. */
void run_plan_rates_nominal(const run_trial_cfg *cfg, double gflops, run_plan_rates *rates);
/* The default calibration file: $SAFECL_CALIBRATION, else $XDG_CACHE_HOME/safecl/calibration,
 * else $HOME/.cache/safecl/calibration. */
void run_plan_calibration_path(char *buf, size_t cap);
/* Writes rates (measured with cfg's architecture) to path as `key = value` lines, creating the
 * parent directories; atomic (a reader never sees half a file). */
SCL_NODISCARD scl_err run_plan_rates_save(const char *path, const run_trial_cfg *cfg,
                                          const run_plan_rates *rates);
/* Reads a file run_plan_rates_save wrote; the forward rate in images per second is recomputed
 * for cfg's architecture from the GFLOP/s. A missing file or key, or a value that is not a
 * positive number, is an error naming the file and the key. */
SCL_NODISCARD scl_err run_plan_rates_load(const char *path, const run_trial_cfg *cfg,
                                          run_plan_rates *rates);
/* Divides every phase's time by `ranks` (>= 1) and records it in the plan. */
void run_plan_spread(run_plan *plan, int ranks);
/* Checks that backbone.weights (when set) is a readable safetensors file and reads the dataset's
 * facts (run_plan_facts_read, into *facts: free with run_plan_facts_free); the error names the
 * key and the path. Empty backbone.weights is a warning (the trial would run on random
 * weights), not an error. */
SCL_NODISCARD scl_err run_plan_check_inputs(const run_trial_cfg *cfg, run_plan_facts *facts);
void run_plan_print(const run_trial_cfg *cfg, const run_plan *plan, FILE *f);

#endif /* SAFECL_PLAN_H */
