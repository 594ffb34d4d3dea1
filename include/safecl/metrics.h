/* metrics.h: the accuracy matrix of a trial and what is derived from it (docs/methods.md d.1).
 *
 * After session t every test image of the classes seen so far is predicted; acc[t][s] is the
 * top-1 accuracy (percent) on the test images of session s's classes (of domain s, in
 * domain-incremental benchmarks, where every session sees every domain's test images; then
 * acc[t][s] is defined for s > t too), A_t the accuracy on all of them (100 * correct / images, the
 * reference's "top1_total"). Derived: final = A_{T-1}, average incremental = mean_t A_t, forgetting
 * = mean over s < T-1 of (max_{s <= t < T-1} acc[t][s]) - acc[T-1][s]. One matrix per predictor of
 * the method. */
#ifndef SAFECL_METRICS_H
#define SAFECL_METRICS_H

#include <stdint.h>

#include "safecl/core.h"
#include "safecl/method.h"

enum { RUN_PHASE_TRAIN = 0, RUN_PHASE_FIT, RUN_PHASE_EVAL, RUN_PHASE_COUNT };

typedef struct run_metrics {
  int n_sessions, n_predictors;
  char names[LEARN_MAX_PREDICTORS][32];
  double *acc;       /* [p][t][s], NaN where s > t */
  double *acc_total; /* [p][t] */
  int64_t *correct;  /* [p][t] */
  int64_t *n_test;   /* [t] */
  double *val_acc;   /* [p][t]: accuracy on the validation split (NaN without one) */
  double *seconds;   /* [t][phase] */
  int sessions_done;
  int64_t *group_scratch; /* 2 * n_sessions counters used while recording */
} run_metrics;

SCL_NODISCARD scl_err run_metrics_create(int n_sessions, int n_predictors, const char *const *names,
                                         run_metrics **out);
void run_metrics_destroy(run_metrics **m);
/* Records session t from pred[p * n + i] (predictor p, image i) against labels (mapped);
 * group[i] in [0, n_sessions) is the column of acc[t][.] image i counts towards: the session
 * that introduced its class (class-incremental) or its domain (domain-incremental). */
void run_metrics_record(run_metrics *m, int t, const int32_t *pred, const int32_t *labels,
                        const int32_t *group, int64_t n);
/* Records predictor accuracies on the validation split after session t. */
void run_metrics_record_val(run_metrics *m, int t, const int32_t *pred, const int32_t *labels,
                            int64_t n);
/* Mean over recorded sessions of the validation accuracy (NaN without a validation split). */
double run_metrics_val(const run_metrics *m, int p);
double run_metrics_final(const run_metrics *m, int p);
double run_metrics_average(const run_metrics *m, int p);
double run_metrics_forgetting(const run_metrics *m, int p);

#endif /* SAFECL_METRICS_H */
