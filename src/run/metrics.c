/* metrics.c: accuracy matrices and the derived final, average incremental accuracy and
 * forgetting. Counts are integers and the accuracies are computed from them, so the numbers are
 * exact functions of the predictions (no running float averages). */
#include "safecl/metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

scl_err run_metrics_create(int n_sessions, int n_predictors, const char *const *names,
                           run_metrics **out) {
  *out = NULL;
  SCL_CHECK(n_sessions >= 1 && n_predictors >= 1 && n_predictors <= LEARN_MAX_PREDICTORS,
            SCL_ERR_ARG, "metrics: %d sessions, %d predictors", n_sessions, n_predictors);
  run_metrics *m = calloc(1, sizeof *m);
  SCL_CHECK(m, SCL_ERR_NOMEM, "metrics");
  m->n_sessions = n_sessions;
  m->n_predictors = n_predictors;
  for (int p = 0; p < n_predictors; p++) snprintf(m->names[p], sizeof m->names[p], "%s", names[p]);
  size_t T = (size_t)n_sessions, P = (size_t)n_predictors;
  scl_err err = scl_alloc(P * T * T * sizeof(double), "accuracy matrix", (void **)&m->acc);
  if (!err) err = scl_calloc(P * T * sizeof(double), "accuracy", (void **)&m->acc_total);
  if (!err) err = scl_calloc(P * T * sizeof(int64_t), "correct counts", (void **)&m->correct);
  if (!err) err = scl_calloc(T * sizeof(int64_t), "test counts", (void **)&m->n_test);
  if (!err) err = scl_alloc(P * T * sizeof(double), "validation accuracy", (void **)&m->val_acc);
  if (!err) err = scl_calloc(T * RUN_PHASE_COUNT * sizeof(double), "timings", (void **)&m->seconds);
  if (!err) err = scl_alloc(2 * T * sizeof(int64_t), "session counts", (void **)&m->group_scratch);
  if (err) {
    run_metrics_destroy(&m);
    return SCL_TRACE(err);
  }
  for (size_t i = 0; i < P * T * T; i++) m->acc[i] = NAN;
  for (size_t i = 0; i < P * T; i++) m->val_acc[i] = NAN;
  *out = m;
  return SCL_OK;
}

void run_metrics_destroy(run_metrics **m) {
  if (!m || !*m) return;
  scl_free((*m)->acc);
  scl_free((*m)->acc_total);
  scl_free((*m)->correct);
  scl_free((*m)->n_test);
  scl_free((*m)->val_acc);
  scl_free((*m)->seconds);
  scl_free((*m)->group_scratch);
  free(*m);
  *m = NULL;
}

void run_metrics_record(run_metrics *m, int t, const int32_t *pred, const int32_t *labels,
                        const int32_t *group, int64_t n) {
  const int T = m->n_sessions;
  int64_t *count = m->group_scratch, *right = m->group_scratch + T;
  m->n_test[t] = n;
  for (int p = 0; p < m->n_predictors; p++) {
    memset(count, 0, (size_t)T * sizeof(int64_t));
    memset(right, 0, (size_t)T * sizeof(int64_t));
    int64_t total = 0;
    for (int64_t i = 0; i < n; i++) {
      int s = group[i];
      int ok = pred[(int64_t)p * n + i] == labels[i];
      count[s]++;
      right[s] += ok;
      total += ok;
    }
    m->correct[p * T + t] = total;
    m->acc_total[p * T + t] = n ? 100.0 * (double)total / (double)n : NAN;
    for (int s = 0; s < T; s++)
      m->acc[((size_t)p * T + t) * T + s] = count[s] ? 100.0 * (double)right[s] / count[s] : NAN;
  }
  if (t + 1 > m->sessions_done) m->sessions_done = t + 1;
}

void run_metrics_record_val(run_metrics *m, int t, const int32_t *pred, const int32_t *labels,
                            int64_t n) {
  for (int p = 0; p < m->n_predictors; p++) {
    int64_t right = 0;
    for (int64_t i = 0; i < n; i++) right += pred[(int64_t)p * n + i] == labels[i];
    m->val_acc[p * m->n_sessions + t] = n ? 100.0 * (double)right / (double)n : NAN;
  }
}

/* The mean of predictor p's row of a per-session table over the sessions done (NaN before any). */
static double mean_done(const run_metrics *m, const double *table, int p) {
  if (!m->sessions_done) return NAN;
  double sum = 0.0;
  for (int t = 0; t < m->sessions_done; t++) sum += table[p * m->n_sessions + t];
  return sum / m->sessions_done;
}

double run_metrics_val(const run_metrics *m, int p) { return mean_done(m, m->val_acc, p); }

double run_metrics_final(const run_metrics *m, int p) {
  return m->sessions_done ? m->acc_total[p * m->n_sessions + m->sessions_done - 1] : NAN;
}

double run_metrics_average(const run_metrics *m, int p) { return mean_done(m, m->acc_total, p); }

double run_metrics_forgetting(const run_metrics *m, int p) {
  const int T = m->n_sessions, last = m->sessions_done - 1;
  if (last < 1) return 0.0;
  double sum = 0.0;
  for (int s = 0; s < last; s++) {
    double best = -INFINITY;
    for (int t = s; t < last; t++) best = fmax(best, m->acc[((size_t)p * T + t) * T + s]);
    sum += best - m->acc[((size_t)p * T + last) * T + s];
  }
  return sum / last;
}
