/* trial.c: one continual-learning trial: open the benchmark, plan the sessions, and for each
 * session train the method, fit its classifier on the session's training features (keeping the
 * records of its ridge searches for trial.h5) and evaluate every predictor on all test images of
 * the classes seen so far (docs/architecture.md section 4).
 *
 * Features of frozen networks (the pre-trained model) never change, so their test features are
 * cached across sessions: each test image goes through a frozen network once per trial. A
 * predict-only network (its output is already the prediction's input, e.g. logits) is never
 * passed the training list; a batch-wise diagnostic network (test_batch > 0) runs on
 * label-sorted batches of each list it predicts (batchwise.c) and is never cached.
 *
 * On a group of ranks (docs/architecture.md section 2) every rank opens the same data and walks the
 * same lists; feature extraction is sharded (rank r takes its learn_shard of every list), the
 * classifier is fitted collectively from the shards, and predictions are gathered exactly, so
 * the metrics are the same on every rank. Group rank 0 writes the trial's files. Phases that can
 * fail on one rank alone end in a group-wide status decision (run_group_agree). */
#include "safecl/trial.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "safecl/extract.h"
#include "safecl/linalg_group.h"
#include "safecl/metrics.h"
#include "safecl/plan.h"
#include "safecl/publish.h"
#include "progress.h"
#include "safecl/sessions.h"
#include "trial_internal.h"

static scl_err open_split(const run_trial_cfg *cfg, const char *split, data_dataset **out) {
  int train = !strcmp(split, "train"), dil = !strcmp(cfg->format, "domainnet");
  data_source src = {.format = cfg->format,
                     .root = cfg->root,
                     .split = split,
                     .domains = cfg->domains,
                     .n_classes = dil ? cfg->classes : cfg->syn_classes,
                     .per_class = train ? cfg->syn_train_per_class : cfg->syn_test_per_class,
                     .image_size = (int)cfg->syn_size,
                     .seed = (uint64_t)cfg->syn_seed,
                     .difficulty = cfg->syn_difficulty,
                     .max_image_pixels = cfg->max_image_pixels,
                     .limit = cfg->limit};
  if (strcmp(cfg->format, "synthetic") && !cfg->root[0])
    return SCL_ERROR(SCL_ERR_ARG, "dataset.root is empty; dataset.format = \"%s\" needs it",
                     cfg->format);
  SCL_CALL(data_dataset_open(&src, out));
  return SCL_OK;
}

/* The sessions of a benchmark of nc classes: one per domain (domain-incremental), or the class
 * order and increments of the config. */
static scl_err sessions_layout(const run_trial_cfg *cfg, int64_t nc, data_sessions **plan,
                               int *n_sessions, int *dil) {
  *dil = !strcmp(cfg->format, "domainnet");
  if (*dil) {
    /* Every session holds every class in the original label order (docs/methods.md a.1). */
    SCL_CALL(data_sessions_create(nc, nc, nc, 0, 0, plan));
    *n_sessions = 1;
    for (const char *c = cfg->domains; *c; c++) *n_sessions += *c == ',';
  } else {
    /* The class order follows the trial seed unless dataset.order_seed pins it (docs/methods.md
     * a.2); both are in the canonical config, so the identity follows the order. */
    int64_t order_seed = cfg->order_seed >= 0 ? cfg->order_seed : cfg->seed;
    SCL_CALL(data_sessions_create(nc, cfg->init_cls, cfg->increment, cfg->shuffle,
                                  (uint32_t)order_seed, plan));
    *n_sessions = (*plan)->n_sessions;
  }
  return SCL_OK;
}

/* Domain t of the comma-separated list (DomainNet's session order), into buf. */
static const char *domain_name(const char *domains, int t, char *buf, size_t cap) {
  const char *p = domains;
  for (int i = 0; i < t && p; i++) {
    p = strchr(p, ',');
    if (p) p++;
  }
  size_t n = p ? strcspn(p, ",") : 0;
  snprintf(buf, cap, "%.*s", (int)n, p ? p : "");
  return buf;
}

/* The session layout in words, with PILOT's B<base> Inc<increment> name (B0: the first session
 * is as large as the others): "10 sessions of 10 classes each (B0 Inc10), 100 classes in all",
 * "6 sessions of 20 classes after a first of 50 (B50 Inc20), ...", "6 sessions, one per domain
 * (real, ...), each with all 345 classes". */
static const char *sessions_text(const trial_state *st, char *buf, size_t cap) {
  const int T = st->n_sessions;
  const int64_t *b = st->plan->start, nc = st->plan->n_classes;
  if (st->dil) {
    snprintf(buf, cap, "%d session%s, one per domain (%s), each with all %lld classes", T,
             T == 1 ? "" : "s", st->cfg->domains, (long long)nc);
    return buf;
  }
  if (T == 1) {
    snprintf(buf, cap, "1 session of all %lld classes", (long long)nc);
    return buf;
  }
  int64_t first = b[1] - b[0], inc = b[2] - b[1], last = b[T] - b[T - 1];
  int o = first == inc
              ? snprintf(buf, cap, "%d sessions of %lld classes each (B0 Inc%lld)", T,
                         (long long)inc, (long long)inc)
              : snprintf(buf, cap,
                         "%d sessions: a first of %lld classes, then %lld per session "
                         "(B%lld Inc%lld)",
                         T, (long long)first, (long long)inc, (long long)first, (long long)inc);
  if (last != inc && o >= 0 && (size_t)o < cap)
    o += snprintf(buf + o, cap - (size_t)o, ", %lld in the last", (long long)last);
  if (o >= 0 && (size_t)o < cap)
    snprintf(buf + o, cap - (size_t)o, ", %lld classes in all", (long long)nc);
  return buf;
}

static scl_err open_benchmark(const run_trial_cfg *cfg, trial_state *st) {
  SCL_CALL(open_split(cfg, "train", &st->train));
  SCL_CALL(open_split(cfg, "test", &st->test));
  int64_t nc = data_dataset_num_classes(st->train);
  SCL_CHECK(data_dataset_num_classes(st->test) == nc, SCL_ERR_FORMAT,
            "%s: train split has %lld classes but test split has %lld", cfg->root, (long long)nc,
            (long long)data_dataset_num_classes(st->test));
  SCL_CALL(sessions_layout(cfg, nc, &st->plan, &st->n_sessions, &st->dil));
  return SCL_OK;
}

/* The classes a session introduces: its slice of the class order, or all classes (DIL). */
static void session_classes(const trial_state *st, int t, int64_t *lo, int64_t *hi) {
  *lo = st->dil ? 0 : st->plan->start[t];
  *hi = st->dil ? st->plan->n_classes : st->plan->start[t + 1];
}

/* Keeps the selected samples of `ds` whose domain is `domain` (in place). */
static void keep_domain(const data_dataset *ds, int domain, int64_t *idx, int32_t *labels,
                        int64_t *n) {
  int64_t k = 0;
  for (int64_t i = 0; i < *n; i++) {
    if (data_dataset_domain(ds, idx[i]) != domain) continue;
    idx[k] = idx[i];
    labels[k++] = labels[i];
  }
  *n = k;
}

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

/* The validation split (docs/architecture.md section 4): of each session-1 class,
 * floor(val_fraction x n) training images (at least one when the class has two or more), chosen by
 * a permutation keyed by the trial seed and the class, so the split is the same on every rerun and
 * rank. */
static scl_err carve_validation(trial_state *st) {
  if (st->cfg->val_fraction <= 0.0) return SCL_OK;
  int64_t lo, hi, *idx = NULL, n = 0, *perm = NULL;
  int32_t *labels = NULL;
  scl_err err = SCL_OK;
  session_classes(st, 0, &lo, &hi);
  SCL_CALL_GOTO(err, data_sessions_select(st->plan, st->train, lo, hi, &idx, &labels, &n), done);
  if (st->dil) keep_domain(st->train, 0, idx, labels, &n);
  SCL_CALL_GOTO(err, scl_alloc((size_t)(n ? n : 1) * 8, "validation split", (void **)&st->val_idx),
                done);
  SCL_CALL_GOTO(
      err, scl_alloc((size_t)(n ? n : 1) * 4, "validation labels", (void **)&st->val_labels), done);
  SCL_CALL_GOTO(err, scl_alloc((size_t)(n ? n : 1) * 8, "class members", (void **)&perm), done);
  for (int64_t c = lo; c < hi; c++) {
    int64_t members = 0;
    for (int64_t i = 0; i < n; i++) members += labels[i] == c;
    int64_t k = (int64_t)(st->cfg->val_fraction * (double)members);
    if (k == 0 && members >= 2) k = 1;
    SCL_CALL_GOTO(err,
                  scl_rng_permutation((uint64_t)st->cfg->seed, SCL_STREAM_SPLIT,
                                      0x10000u + (uint32_t)c, members, perm),
                  done);
    for (int64_t i = 0, j = 0; i < n; i++) { /* j-th member of class c is held out if perm[j] < k */
      if (labels[i] != c) continue;
      if (perm[j++] < k) st->val_idx[st->n_val++] = idx[i];
    }
  }
  /* dataset order, so that removal from session 1's training list is one merge */
  for (int64_t a = 1; a < st->n_val; a++)
    for (int64_t b = a; b > 0 && st->val_idx[b - 1] > st->val_idx[b]; b--) {
      int64_t t = st->val_idx[b];
      st->val_idx[b] = st->val_idx[b - 1];
      st->val_idx[b - 1] = t;
    }
  for (int64_t v = 0; v < st->n_val; v++)
    st->val_labels[v] = (int32_t)st->plan->mapped[data_dataset_label(st->train, st->val_idx[v])];
  SCL_INFO("validation split: %lld of %lld session-1 training images held out",
           (long long)st->n_val, (long long)n);
done:
  scl_free(idx);
  scl_free(labels);
  scl_free(perm);
  return err;
}

/* Removes the validation samples (sorted) from a sorted training list, in place. */
static void drop_validation(const trial_state *st, int64_t *idx, int32_t *labels, int64_t *n) {
  int64_t k = 0, v = 0;
  for (int64_t i = 0; i < *n; i++) {
    while (v < st->n_val && st->val_idx[v] < idx[i]) v++;
    if (v < st->n_val && st->val_idx[v] == idx[i]) continue;
    idx[k] = idx[i];
    labels[k++] = labels[i];
  }
  *n = k;
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

static scl_err run_session(trial_state *st, int t) {
  const data_sessions *plan = st->plan;
  learn_session s = {.t = t, .n_sessions = st->n_sessions, .n_classes = plan->n_classes};
  session_classes(st, t, &s.class_lo, &s.class_hi);
  int64_t *idx = NULL, *tidx = NULL, n = 0, nt = 0;
  int32_t *labels = NULL, *tlabels = NULL, *pred = NULL, *group = NULL;
  double *sec = st->metrics->seconds + t * RUN_PHASE_COUNT, t0 = scl_now();
  scl_err err = SCL_OK;
  SCL_CALL_GOTO(
      err, data_sessions_select(plan, st->train, s.class_lo, s.class_hi, &idx, &labels, &n), done);
  if (st->dil) keep_domain(st->train, t, idx, labels, &n);
  if (t == 0) drop_validation(st, idx, labels, &n);
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
             st->n_sessions, domain_name(st->cfg->domains, t, domain, sizeof domain), (long long)n,
             (long long)nt, st->metrics->acc_total[t]);
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

static void close_trial(trial_state *st) {
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

/* A dataset's manifest, cached per process by the keys that define the dataset. */
#define MANIFEST_CACHE 32
static struct {
  char key[1200];
  char hex[33];
} manifest_cache[MANIFEST_CACHE];
static int manifests_cached;

static scl_err cached_manifest(const run_trial_cfg *cfg, const char *split, char hex[33]) {
  char key[1200];
  size_t len = strlen(split) + 1;
  snprintf(key, sizeof key, "%s|", split);
  run_plan_dataset_key(cfg, key + len, sizeof key - len);
  for (int i = 0; i < manifests_cached; i++)
    if (!strcmp(manifest_cache[i].key, key)) {
      memcpy(hex, manifest_cache[i].hex, 33);
      return SCL_OK;
    }
  data_dataset *ds = NULL;
  SCL_CALL(open_split(cfg, split, &ds));
  scl_hash_hex(data_dataset_manifest_hash(ds), hex);
  data_dataset_close(&ds);
  int slot = manifests_cached < MANIFEST_CACHE ? manifests_cached++ : 0;
  snprintf(manifest_cache[slot].key, sizeof manifest_cache[slot].key, "%s", key);
  memcpy(manifest_cache[slot].hex, hex, 33);
  return SCL_OK;
}

scl_err run_trial_identity(const run_trial_cfg *cfg, char id[33]) {
  char weights[33], train[33], test[33];
  SCL_CALL(trial_weights_hash(cfg->weights, weights));
  SCL_CALL(cached_manifest(cfg, "train", train));
  SCL_CALL(cached_manifest(cfg, "test", test));
  SCL_CALL(trial_identity_of(cfg, weights, train, test, id));
  return SCL_OK;
}

/* hex = the identity of `text` with bytes [pre, post) replaced by seed's line, as
 * trial_identity_of hashes it: the canonical text, then the three input hashes. */
static scl_err identity_with_seed(const char *text, size_t pre, size_t post, int64_t seed,
                                  const char *weights, const char *train, const char *test,
                                  char hex[33]) {
  char line[64];
  int n = snprintf(line, sizeof line, "seed = %lld;\n", (long long)seed);
  scl_hasher *h = NULL;
  SCL_CALL(scl_hasher_create(&h));
  scl_hasher_update(h, text, pre);
  scl_hasher_update(h, line, (size_t)n);
  scl_hasher_update(h, text + post, strlen(text + post));
  scl_hasher_update(h, weights, 32);
  scl_hasher_update(h, train, 32);
  scl_hasher_update(h, test, 32);
  scl_hash_hex(scl_hasher_digest(h), hex);
  scl_hasher_destroy(&h);
  return SCL_OK;
}

/* The byte range [*pre, *post) of seed's line in a canonical text, or 0 if it has none. */
static int seed_line(const char *text, size_t *pre, size_t *post) {
  const char *p = !strncmp(text, "seed = ", 7) ? text : strstr(text, "\nseed = ");
  if (!p) return 0;
  p += p != text;
  const char *nl = strchr(p, '\n');
  if (!nl) return 0;
  *pre = (size_t)(p - text);
  *post = (size_t)(nl + 1 - text);
  return 1;
}

scl_err run_plan_identities(const run_trial_cfg *cfg, int n, const int64_t *seeds,
                            char (*ids)[33]) {
  char weights[33], train[33], test[33], check[33];
  SCL_CALL(trial_weights_hash(cfg->weights, weights));
  SCL_CALL(cached_manifest(cfg, "train", train));
  SCL_CALL(cached_manifest(cfg, "test", test));
  run_trial_cfg c = *cfg; /* a shallow copy, only read: the seed is its own */
  char *text = NULL;
  size_t pre = 0, post = 0;
  int fast = 0;
  scl_err err = SCL_OK;
  for (int k = 0; k < n && !err; k++) {
    c.seed = seeds[k];
    if (fast) {
      err = identity_with_seed(text, pre, post, seeds[k], weights, train, test, ids[k]);
      continue;
    }
    err = trial_identity_of(&c, weights, train, test, ids[k]);
    if (!err && k == 0 && n > 2) err = cfg_dump_identity(&run_trial_schema, &c, &text);
    if (err || k != 1 || !text || !seed_line(text, &pre, &post)) continue;
    /* the rewrite is used only if it gives both seeds' full identities */
    err = identity_with_seed(text, pre, post, seeds[0], weights, train, test, check);
    fast = !err && !strcmp(check, ids[0]);
    if (fast) err = identity_with_seed(text, pre, post, seeds[1], weights, train, test, check);
    fast = fast && !err && !strcmp(check, ids[1]);
  }
  free(text);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}

/* Opens everything a trial needs; on a group every rank does the same and the group agrees. */
static scl_err open_trial(const run_trial_cfg *cfg, trial_state *st, run_trial_result *result,
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

static scl_err open_learning(const run_trial_cfg *cfg, trial_state *st) {
  SCL_CALL(carve_validation(st));
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
  SCL_CALL_GOTO(err, run_group_agree(&st.group, open_trial(cfg, &st, result, &finished)), done);
  if (finished) {
    result->skipped = 1;
    SCL_INFO("trial %s in %s is already finished; nothing to do", st.id, cfg->run_dir);
    goto done;
  }
  SCL_CALL_GOTO(err, run_group_agree(&st.group, open_learning(cfg, &st)), done);
  SCL_CALL_GOTO(err, run_progress_create(&st, &st.progress), done);
  char layout[512];
  SCL_INFO("trial %s: %s on %s, %s, %d rank%s (ridge solver %s)", st.id, cfg->method.name,
           cfg->dataset_name, sessions_text(&st, layout, sizeof layout), st.group.size,
           st.group.size == 1 ? "" : "s", linalg_group_solver_name(st.linalg, cfg->method.rp_dim));
  int first = 0;
  SCL_CALL_GOTO(err, run_group_agree(&st.group, trial_checkpoint_load(&st, &first)), done);
  if (first > 0) SCL_INFO("resuming after session %d from %s/ckpt.h5", first, cfg->run_dir);
  if (st.resume_epoch >= 0)
    SCL_INFO("resuming session %d at epoch %lld, batch %lld from %s/ckpt.h5", first + 1,
             (long long)st.resume_epoch + 1, (long long)st.resume_batch + 1, cfg->run_dir);
  for (int t = first; t < st.n_sessions; t++) {
    SCL_CALL_GOTO(err, run_session(&st, t), done);
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
  close_trial(&st);
  scl_log_set_trial(NULL);
  scl_log_set_level(level);
  return err;
}

void run_plan_dataset_key(const run_trial_cfg *cfg, char *buf, size_t cap) {
  snprintf(buf, cap, "%s|%s|%s|%lld|%lld|%lld|%lld|%lld|%lld|%.17g|%lld", cfg->format, cfg->root,
           cfg->domains, (long long)cfg->classes, (long long)cfg->syn_classes,
           (long long)cfg->syn_train_per_class, (long long)cfg->syn_test_per_class,
           (long long)cfg->syn_size, (long long)cfg->syn_seed, cfg->syn_difficulty,
           (long long)cfg->limit);
}

void run_plan_facts_free(run_plan_facts *f) {
  free(f->train_per_class);
  free(f->test_per_class);
  free(f->train_per_domain);
  memset(f, 0, sizeof *f);
}

/* Images per class of ds into per (nc entries), per domain into dom (nd entries, or NULL). */
static scl_err count_split(const run_trial_cfg *cfg, const char *split, const data_dataset *ds,
                           int64_t nc, int64_t *per, int nd, int64_t *dom) {
  for (int64_t i = 0; i < data_dataset_count(ds); i++) {
    int64_t y = data_dataset_label(ds, i);
    SCL_CHECK(y >= 0 && y < nc, SCL_ERR_FORMAT,
              "%s: %s sample %lld has label %lld, not a class in [0, %lld)",
              cfg->root[0] ? cfg->root : cfg->format, split, (long long)i, (long long)y,
              (long long)nc);
    per[y]++;
    if (!dom) continue;
    int d = data_dataset_domain(ds, i);
    SCL_CHECK(d >= 0 && d < nd, SCL_ERR_FORMAT, "%s: %s sample %lld is of domain %d of %d",
              cfg->root, split, (long long)i, d, nd);
    dom[d]++;
  }
  return SCL_OK;
}

scl_err run_plan_facts_count(const run_trial_cfg *cfg, const data_dataset *train,
                             const data_dataset *test, run_plan_facts *f) {
  memset(f, 0, sizeof *f);
  scl_err err = SCL_OK;
  int64_t nc = data_dataset_num_classes(train);
  SCL_CHECK_GOTO(err, done, data_dataset_num_classes(test) == nc, SCL_ERR_FORMAT,
                 "%s: train split has %lld classes but test split has %lld", cfg->root,
                 (long long)nc, (long long)data_dataset_num_classes(test));
  f->n_classes = nc;
  if (!strcmp(cfg->format, "domainnet")) {
    f->n_domains = 1;
    for (const char *c = cfg->domains; *c; c++) f->n_domains += *c == ',';
  }
  f->train_per_class = calloc((size_t)(nc > 0 ? nc : 1), sizeof(int64_t));
  f->test_per_class = calloc((size_t)(nc > 0 ? nc : 1), sizeof(int64_t));
  f->train_per_domain = calloc((size_t)f->n_domains + 1, sizeof(int64_t));
  SCL_CHECK_GOTO(err, done, f->train_per_class && f->test_per_class && f->train_per_domain,
                 SCL_ERR_NOMEM, "dataset facts of %lld classes", (long long)nc);
  SCL_CALL_GOTO(err,
                count_split(cfg, "train", train, nc, f->train_per_class, f->n_domains,
                            f->n_domains ? f->train_per_domain : NULL),
                done);
  SCL_CALL_GOTO(err, count_split(cfg, "test", test, nc, f->test_per_class, 0, NULL), done);
  f->n_test = data_dataset_count(test);
  f->uniform = 1;
  for (int64_t c = 1; c < nc; c++)
    f->uniform &= f->train_per_class[c] == f->train_per_class[0] &&
                  f->test_per_class[c] == f->test_per_class[0];
done:
  if (err) run_plan_facts_free(f);
  return err;
}

scl_err run_plan_facts_read(const run_trial_cfg *cfg, run_plan_facts *f) {
  memset(f, 0, sizeof *f);
  data_dataset *train = NULL, *test = NULL;
  scl_err err = SCL_OK;
  SCL_CALL_GOTO(err, open_split(cfg, "train", &train), done);
  SCL_CALL_GOTO(err, open_split(cfg, "test", &test), done);
  SCL_CALL_GOTO(err, run_plan_facts_count(cfg, train, test, f), done);
done:
  data_dataset_close(&train);
  data_dataset_close(&test);
  return err;
}

scl_err run_plan_count(const run_trial_cfg *cfg, const run_plan_facts *f,
                       const run_plan_rates *rates, run_plan *plan) {
  memset(plan, 0, sizeof *plan);
  plan->rates = *rates;
  vit_config vc;
  data_sessions *layout = NULL;
  int n_sessions = 0, dil = 0;
  const learn_method_ops *ops = learn_method_find(cfg->method.name);
  SCL_CHECK(ops, SCL_ERR_ARG, "method.name = \"%s\" is not one of %s", cfg->method.name,
            learn_method_names());
  SCL_CALL(vit_config_preset(cfg->arch, &vc));
  run_trial_cfg unshuffled = *cfg; /* a shallow copy, only read */
  unshuffled.shuffle = 0;          /* the order changes no count: skip drawing it */
  SCL_CALL(
      sessions_layout(f->uniform ? &unshuffled : cfg, f->n_classes, &layout, &n_sessions, &dil));
  scl_err err = SCL_OK;
  SCL_CHECK_GOTO(err, done, n_sessions <= (int)(sizeof plan->s / sizeof plan->s[0]), SCL_ERR_ARG,
                 "plan: %d sessions (at most 64)", n_sessions);
  SCL_CHECK_GOTO(err, done, !dil || n_sessions == f->n_domains, SCL_ERR_ARG,
                 "plan: %d sessions but the dataset facts hold %d domains", n_sessions,
                 f->n_domains);
  plan->n_sessions = n_sessions;
  int64_t n_test = 0;
  for (int t = 0; t < n_sessions; t++) {
    int64_t n = 0;
    if (dil) {
      n = f->train_per_domain[t];
      n_test = f->n_test;
    } else { /* session t trains on mapped labels [start_t, end_t), tests on all below end_t */
      for (int64_t k = layout->start[t]; k < layout->start[t + 1]; k++) {
        n += f->train_per_class[layout->order[k]];
        n_test += f->test_per_class[layout->order[k]];
      }
    }
    plan->s[t].n_train = n;
    plan->s[t].n_test = n_test;
    plan->s[t].epochs = t == 0 ? cfg->method.epochs_first : cfg->method.epochs_later;
  }
  run_plan_price(cfg, plan, ops, &vc, f->n_classes);
done:
  data_sessions_destroy(&layout);
  return err;
}
