/* trial_session.c: one session of a trial: train the method, fit its classifier on the session's
 * training features (keeping the records of its ridge searches for trial.h5) and evaluate every
 * predictor on all test images of the classes seen so far and on the validation split
 * (docs/architecture.md section 4).
 *
 * Features of frozen networks (the pre-trained model) never change, so their test features are
 * cached across sessions: each test image goes through a frozen network once per trial. A
 * predict-only network (its output is already the prediction's input, e.g. logits) is never
 * passed the training list; a batch-wise diagnostic network (test_batch > 0) runs on
 * label-sorted batches of each list it predicts (batchwise.c) and is never cached.
 *
 * On a group of ranks (docs/architecture.md section 2) every rank walks the same lists; feature
 * extraction is sharded (rank r takes its learn_shard of every list), the classifier is fitted
 * collectively from the shards, and predictions are gathered exactly, so the metrics are the
 * same on every rank. Phases that can fail on one rank alone end in a group-wide status decision
 * (run_group_agree). */
#include <string.h>

#include "safecl/extract.h"
#include "trial_phases.h"

/* The column of the accuracy matrix each test image counts towards. */
static scl_err test_groups(const trial_state *st, const int64_t *idx, const int32_t *labels,
                           int64_t n, int32_t **group) {
  SCL_CALL(scl_alloc((size_t)(n ? n : 1) * sizeof(int32_t), "test groups", (void **)group));
  for (int64_t i = 0; i < n; i++) {
    if (st->dil) {
      (*group)[i] = data_dataset_domain(st->test, idx[i]);
      continue;
    }
    int s = 0;
    while (s + 1 < st->n_sessions && labels[i] >= st->plan->start[s + 1]) s++;
    (*group)[i] = s;
  }
  return SCL_OK;
}

/* Features of `n` test samples through network k, through the trial's cache if frozen. */
static scl_err test_features(trial_state *st, int k, const learn_network *net, const int64_t *idx,
                             int64_t n, float *out) {
  run_extract_opts o = {
      (int)st->cfg->resize, (int)st->cfg->crop, NULL, NULL, st->cfg->eval_batch, "test"};
  if (!net->frozen) return run_extract(net, st->test, idx, n, &o, out, NULL, NULL);
  trial_cache *c = &st->cache[k];
  int64_t total = data_dataset_count(st->test), missing = 0;
  if (!c->features) {
    SCL_CALL(scl_alloc((size_t)(total * net->dim) * sizeof(float), "test feature cache",
                       (void **)&c->features));
    SCL_CALL(scl_calloc((size_t)total, "test feature cache flags", (void **)&c->have));
  }
  int64_t *todo = NULL;
  SCL_CALL(scl_alloc((size_t)(n ? n : 1) * sizeof(int64_t), "uncached samples", (void **)&todo));
  for (int64_t i = 0; i < n; i++)
    if (!c->have[idx[i]]) todo[missing++] = idx[i];
  float *fresh = NULL;
  scl_err err = scl_alloc((size_t)((missing ? missing : 1) * net->dim) * sizeof(float),
                          "uncached features", (void **)&fresh);
  if (!err) err = run_extract(net, st->test, todo, missing, &o, fresh, NULL, NULL);
  for (int64_t j = 0; !err && j < missing; j++) {
    memcpy(c->features + todo[j] * net->dim, fresh + j * net->dim, (size_t)net->dim * 4);
    c->have[todo[j]] = 1;
  }
  for (int64_t i = 0; !err && i < n; i++)
    memcpy(out + i * net->dim, c->features + idx[i] * net->dim, (size_t)net->dim * 4);
  scl_free(todo);
  scl_free(fresh);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}

/* The lists whose features a session extracts: the training list for the classifier's fit,
 * the validation split (training images), the test list. */
typedef enum { LIST_FIT = 0, LIST_VAL, LIST_TEST } list_kind;

/* Features of this rank's shard of the list idx[0..n) (mapped labels `labels`) through every
 * network the method names: rows [*lo, *hi) of the list. A predict-only network gets no
 * features for the fit (its slot stays NULL); a batch-wise network (test_batch > 0) runs on
 * the label-sorted batches of the whole list on every kind of list (run_extract_batchwise), so
 * its predictor is defined the same way wherever it is evaluated. The loop visits every network
 * on every rank even after a failure, because the batch-wise extraction is collective. */
static scl_err session_features(trial_state *st, const learn_session *s, list_kind kind,
                                const int64_t *idx, const int32_t *labels, int64_t n, float **feats,
                                int *n_nets, int64_t *lo, int64_t *hi) {
  learn_network nets[LEARN_MAX_NETWORKS];
  *n_nets = st->method->ops->networks(st->method, s, nets);
  learn_shard(n, st->group.size, st->group.rank, lo, hi);
  const int64_t *mine = idx + *lo, count = *hi - *lo;
  const data_dataset *ds = kind == LIST_TEST ? st->test : st->train;
  run_extract_opts o = {(int)st->cfg->resize,
                        (int)st->cfg->crop,
                        NULL,
                        NULL,
                        st->cfg->eval_batch,
                        kind == LIST_FIT   ? "train (classifier statistics)"
                        : kind == LIST_VAL ? "validation"
                                           : "test"};
  scl_err err = SCL_OK;
  for (int k = 0; k < *n_nets; k++) {
    const learn_network *net = &nets[k];
    if (kind == LIST_FIT && net->predict_only) continue;
    if (!err)
      err = scl_alloc((size_t)((count ? count : 1) * net->dim) * sizeof(float), "session features",
                      (void **)&feats[k]);
    if (net->test_batch > 0) {
      err = run_group_agree(&st->group, err);
      if (!err) err = run_extract_batchwise(net, ds, idx, labels, n, &o, st->group.comm, feats[k]);
    } else if (!err && kind == LIST_TEST) {
      err = test_features(st, k, net, mine, count, feats[k]);
    } else if (!err) {
      err = run_extract(net, ds, mine, count, &o, feats[k], NULL, NULL);
    }
  }
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}

/* Every predictor's predictions of a list of n images, from the shards [lo, hi) each rank
 * predicted: pred_local (P x (hi - lo)) -> pred (P x n), the same on every rank. */
static scl_err gather_predictions(trial_state *st, const int32_t *pred_local, int64_t n, int64_t lo,
                                  int64_t hi, int32_t *pred) {
  const int P = st->metrics->n_predictors;
  if (st->group.size == 1) {
    memcpy(pred, pred_local, (size_t)(P * n) * sizeof(int32_t));
    return SCL_OK;
  }
  int64_t counts[LEARN_MAX_GROUP];
  learn_shard_counts(n, st->group.size, counts);
  for (int p = 0; p < P; p++) {
    memcpy(pred + p * n + lo, pred_local + p * (hi - lo), (size_t)(hi - lo) * sizeof(int32_t));
    SCL_CALL(dist_allgather_rows_i32(st->group.comm, pred + p * n + lo, counts, 1, pred + p * n));
  }
  return SCL_OK;
}

/* This rank's positions [lo, hi) of a session list, for the method's fit. */
static scl_err shard_positions(int64_t lo, int64_t hi, int64_t **pos) {
  SCL_CALL(scl_alloc((size_t)(hi > lo ? hi - lo : 1) * sizeof(int64_t), "shard positions",
                     (void **)pos));
  for (int64_t i = lo; i < hi; i++) (*pos)[i - lo] = i;
  return SCL_OK;
}

/* Predictions of every predictor for the list idx[0..n) with mapped labels `labels` (pred: P x n,
 * on every rank): features and predictions of this rank's shard, then gathered. The labels only
 * order the batches of a batch-wise diagnostic network (session_features). */
static scl_err predict_list(trial_state *st, const learn_session *s, list_kind kind,
                            const int64_t *idx, const int32_t *labels, int64_t n, int32_t *pred) {
  float *feats[LEARN_MAX_NETWORKS] = {0};
  int32_t *mine = NULL;
  int n_nets = 0;
  int64_t lo = 0, hi = 0;
  const int P = st->metrics->n_predictors;
  scl_err err = session_features(st, s, kind, idx, labels, n, feats, &n_nets, &lo, &hi);
  if (!err)
    err = scl_alloc((size_t)(P * (hi > lo ? hi - lo : 1)) * sizeof(int32_t), "predictions",
                    (void **)&mine);
  if (!err)
    err = st->method->ops->predict(st->method, s, (const float *const *)feats, hi - lo, mine);
  err = run_group_agree(&st->group, err);
  if (!err) err = gather_predictions(st, mine, n, lo, hi, pred);
  for (int k = 0; k < LEARN_MAX_NETWORKS; k++) scl_free(feats[k]);
  scl_free(mine);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}

/* Accuracy of every predictor on the validation split after session s->t. */
static scl_err evaluate_validation(trial_state *st, const learn_session *s) {
  if (st->n_val == 0) return SCL_OK;
  int32_t *pred = NULL;
  scl_err err = SCL_OK;
  SCL_CALL_GOTO(err,
                scl_alloc((size_t)(st->metrics->n_predictors * st->n_val) * 4,
                          "validation predictions", (void **)&pred),
                done);
  SCL_CALL_GOTO(err, predict_list(st, s, LIST_VAL, st->val_idx, st->val_labels, st->n_val, pred),
                done);
  run_metrics_record_val(st->metrics, s->t, pred, st->val_labels, st->n_val);
done:
  scl_free(pred);
  return err;
}

/* The classifier of session s from this rank's shard of the training list (collective fit). */
static scl_err fit_session(trial_state *st, const learn_session *s, const int64_t *idx,
                           const int32_t *labels, int64_t n) {
  float *feats[LEARN_MAX_NETWORKS] = {0};
  int64_t lo = 0, hi = 0, *pos = NULL;
  int n_nets = 0;
  scl_err err = session_features(st, s, LIST_FIT, idx, labels, n, feats, &n_nets, &lo, &hi);
  if (!err) err = shard_positions(lo, hi, &pos);
  err = run_group_agree(&st->group, err);
  if (!err)
    err =
        st->method->ops->fit(st->method, s, (const float *const *)feats, labels + lo, pos, hi - lo);
  for (int k = 0; k < LEARN_MAX_NETWORKS; k++) scl_free(feats[k]);
  scl_free(pos);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}

scl_err trial_run_session(trial_state *st, int t) {
  const data_sessions *plan = st->plan;
  learn_session s = {.t = t, .n_sessions = st->n_sessions, .n_classes = plan->n_classes};
  trial_session_classes(st, t, &s.class_lo, &s.class_hi);
  int64_t *idx = NULL, *tidx = NULL, n = 0, nt = 0;
  int32_t *labels = NULL, *tlabels = NULL, *pred = NULL, *group = NULL;
  double *sec = st->metrics->seconds + t * RUN_PHASE_COUNT, t0 = scl_now();
  scl_err err = SCL_OK;
  SCL_CALL_GOTO(
      err, data_sessions_select(plan, st->train, s.class_lo, s.class_hi, &idx, &labels, &n), done);
  if (st->dil) trial_keep_domain(st->train, t, idx, labels, &n);
  if (t == 0) trial_drop_validation(st, idx, labels, &n);
  s.n_train = n;
  s.train_labels = labels;
  int64_t re = st->resume_epoch, rb = st->resume_batch;
  st->resume_epoch = st->resume_batch = -1; /* a position applies to one session only */
  SCL_CALL_GOTO(err, trial_train_session(st, &s, idx, labels, n, re, rb), done);
  sec[RUN_PHASE_TRAIN] = scl_now() - t0;
  t0 = scl_now();
  SCL_CALL_GOTO(err, fit_session(st, &s, idx, labels, n), done);
  st->n_ridge[t] = linalg_group_take_searches(st->linalg, st->ridge + t * LINALG_SEARCH_LOG);
  sec[RUN_PHASE_FIT] = scl_now() - t0;
  t0 = scl_now();
  SCL_CALL_GOTO(err, data_sessions_select(plan, st->test, 0, s.class_hi, &tidx, &tlabels, &nt),
                done);
  SCL_CALL_GOTO(err,
                scl_alloc((size_t)(st->metrics->n_predictors * (nt ? nt : 1)) * 4, "predictions",
                          (void **)&pred),
                done);
  SCL_CALL_GOTO(err, predict_list(st, &s, LIST_TEST, tidx, tlabels, nt, pred), done);
  SCL_CALL_GOTO(err, test_groups(st, tidx, tlabels, nt, &group), done);
  run_metrics_record(st->metrics, t, pred, tlabels, group, nt);
  SCL_CALL_GOTO(err, evaluate_validation(st, &s), done);
  sec[RUN_PHASE_EVAL] = scl_now() - t0;
  char domain[128];
  if (st->dil)
    SCL_INFO("session %d/%d (domain: %s): %lld train / %lld test images, accuracy %.2f%%", t + 1,
             st->n_sessions, trial_domain_name(st->cfg->domains, t, domain, sizeof domain),
             (long long)n, (long long)nt, st->metrics->acc_total[t]);
  else
    SCL_INFO("session %d/%d: classes [%lld, %lld), %lld train / %lld test images, accuracy %.2f%%",
             t + 1, st->n_sessions, (long long)s.class_lo, (long long)s.class_hi, (long long)n,
             (long long)nt, st->metrics->acc_total[t]);
done:
  scl_free(idx);
  scl_free(labels);
  scl_free(tidx);
  scl_free(tlabels);
  scl_free(pred);
  scl_free(group);
  return err;
}
