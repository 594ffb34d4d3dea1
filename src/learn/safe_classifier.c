/* safe_classifier.c: SAFE's classifiers and prediction (docs/methods.md c.2, c.5-c.8).
 *
 * Both learners share one W_rand. With shared statistics (the released code, the default) one
 * G, Q receives the fast learner's projected features of the session, the fast W_o is solved,
 * then the slow learner's features are added to the same G, Q and the slow W_o is solved; so the
 * slow features of session 1 (where the learners are equal) count twice, as released. With
 * separate statistics each learner has its own G, Q. Each learner's lambda is searched on its
 * own features of the session, in its own shuffled order (the released code uses two loaders).
 *
 * Prediction: logits = sigma * ReLU(phi W_rand) W_o^T per learner. sigma is method.head.sigma0
 * (10) for both learners, as the released RP heads are reset at their setup and never trained
 * (docs/methods.md b.5); with method.safe.keep_sigma it is the learner's cosine-head sigma, as
 * learned so far. Session 1 predicts with the fast learner alone; later sessions aggregate
 * w_F logits_F + w_S logits_S with [w_F, w_S] = softmax(-gamma [H_F, H_S]) of the prediction
 * entropies H = -sum p log(p + 1e-9). Test labels are never consulted (docs/architecture.md section
 * 4). */
#include <math.h>
#include <stdlib.h>

#include "safe_internal.h"

#define SPLIT_SLOW_KEY 0x8000u /* the slow learner's loader order: a different shuffle */

static scl_err learner_forward(void *ctx, const float *images, int64_t B, float *out, int slow) {
  safe *sf = ctx;
  SCL_CALL(vit_trainer_infer(sf->trainer, slow ? sf->slow : sf->fast, images, B, out));
  return SCL_OK;
}
static scl_err fast_forward(void *ctx, const float *images, int64_t B, float *out) {
  return learner_forward(ctx, images, B, out, 0);
}
static scl_err slow_forward(void *ctx, const float *images, int64_t B, float *out) {
  return learner_forward(ctx, images, B, out, 1);
}

int safe_networks(learn_method *m, const learn_session *s, learn_network *out) {
  safe *sf = (safe *)m;
  (void)s;
  out[0] = (learn_network){.name = "fast", .dim = sf->D, .forward = fast_forward, .ctx = sf};
  if (!sf->cfg.merge_result) return 1;
  out[1] = (learn_network){.name = "slow", .dim = sf->D, .forward = slow_forward, .ctx = sf};
  return 2;
}

static scl_err fit_one(safe *sf, learn_rp *rp, const float *x, const int32_t *labels,
                       const int64_t *pos, int64_t n, const learn_session *s, uint32_t order_key,
                       double *lambda, float *w_out) {
  uint8_t *fit = NULL;
  scl_err err = scl_alloc((size_t)(n ? n : 1), "ridge split", (void **)&fit);
  if (!err)
    err =
        learn_rp_fit_rows(sf->seed, order_key, s->n_train, sf->cfg.ridge_fit_fraction, pos, n, fit);
  SCL_CALL_GOTO(err, linalg_group_agree(rp->group, err), done);
  SCL_CALL_GOTO(err, learn_rp_accumulate(rp, x, labels, n), done);
  SCL_CALL_GOTO(err,
                learn_rp_search(rp, x, labels, fit, n, (int)sf->cfg.ridge_lo_exp,
                                (int)sf->cfg.ridge_hi_exp, lambda, NULL),
                done);
  SCL_CALL_GOTO(err, learn_rp_solve_into(rp, *lambda, s->class_hi, w_out), done);
done:
  scl_free(fit);
  return err;
}

scl_err safe_fit(learn_method *m, const learn_session *s, const float *const *features,
                 const int32_t *labels, const int64_t *pos, int64_t n) {
  safe *sf = (safe *)m;
  /* Without the trial's solver (learn_context.linalg NULL) the classifiers have a private
   * one-process group: refuse a shard of a larger group rather than fit on it alone. */
  if (linalg_group_size(sf->rp->group) == 1 && n != s->n_train)
    return SCL_ERROR(SCL_ERR_INTERNAL,
                     "SAFE's ridge classifier has a one-process solver but was given %lld of the "
                     "session's %lld rows (a group fit needs learn_context.linalg)",
                     (long long)n, (long long)s->n_train);
  SCL_CALL(fit_one(sf, sf->rp, features[0], labels, pos, n, s, (uint32_t)s->t, &sf->lambdas[0],
                   sf->rp->w_out));
  if (sf->cfg.merge_result) {
    learn_rp *rp = sf->cfg.shared_stats ? sf->rp : sf->rp_slow;
    SCL_CALL(fit_one(sf, rp, features[1], labels, pos, n, s, SPLIT_SLOW_KEY + (uint32_t)s->t,
                     &sf->lambdas[1], sf->wo_slow));
  }
  sf->lambdas[2] = (double)s->class_hi;
  sf->lambdas[3] = (double)(s->t + 1);
  sf->rp->state[0] = (double)s->class_hi;
  SCL_INFO("safe: session %d ridge lambda fast %g, slow %g (%s)", s->t + 1, sf->lambdas[0],
           sf->cfg.merge_result ? sf->lambdas[1] : NAN,
           linalg_group_solver_name(sf->rp->group, sf->rp->m));
  return SCL_OK;
}

static double entropy(const float *logits, int64_t k) {
  double mx = logits[0], z = 0.0, h = 0.0;
  for (int64_t c = 1; c < k; c++) mx = fmax(mx, logits[c]);
  for (int64_t c = 0; c < k; c++) z += exp((double)logits[c] - mx);
  for (int64_t c = 0; c < k; c++) {
    double p = exp((double)logits[c] - mx) / z;
    h -= p * log(p + 1e-9);
  }
  return h;
}

static int32_t argmax(const float *x, int64_t k) {
  int64_t best = 0;
  for (int64_t c = 1; c < k; c++)
    if (x[c] > x[best]) best = c;
  return (int32_t)best;
}

/* pred rows: [0] SAFE (aggregated; the fast learner in session 1), [1] slow, [2] fast. */
static void combine(const safe *sf, const learn_session *s, const float *lf, const float *ls,
                    int64_t n, int64_t k, int32_t *pred) {
  for (int64_t i = 0; i < n; i++) {
    const float *a = lf + i * k, *b = ls ? ls + i * k : NULL;
    pred[2 * n + i] = argmax(a, k);
    pred[1 * n + i] = b ? argmax(b, k) : pred[2 * n + i];
    if (!b || s->t == 0 || sf->dil) {
      pred[i] = pred[2 * n + i];
      continue;
    }
    double hf = entropy(a, k), hs = entropy(b, k), g = sf->cfg.gamma;
    double m = fmax(-g * hf, -g * hs), ef = exp(-g * hf - m), es = exp(-g * hs - m);
    double wf = ef / (ef + es), ws = es / (ef + es);
    int64_t best = 0;
    double best_v = -INFINITY;
    for (int64_t c = 0; c < k; c++) {
      double v = wf * a[c] + ws * b[c];
      if (v > best_v) {
        best_v = v;
        best = c;
      }
    }
    pred[i] = (int32_t)best;
  }
}

scl_err safe_predict(learn_method *m, const learn_session *s, const float *const *features,
                     int64_t n, int32_t *pred) {
  safe *sf = (safe *)m;
  const int64_t k = s->class_hi;
  float *lf = NULL, *ls = NULL;
  scl_err err = SCL_OK;
  size_t bytes = (size_t)((n ? n : 1) * k) * sizeof(float);
  SCL_CALL_GOTO(err, scl_alloc(bytes, "fast logits", (void **)&lf), done);
  SCL_CALL_GOTO(err, learn_rp_logits_with(sf->rp, sf->rp->w_out, k, features[0], n, lf), done);
  const float sigma_f =
      sf->cfg.keep_sigma ? *learn_head_sigma(&sf->head_f) : (float)sf->cfg.head_sigma0;
  const float sigma_s =
      sf->cfg.keep_sigma ? *learn_head_sigma(&sf->head_s) : (float)sf->cfg.head_sigma0;
  for (int64_t i = 0; i < n * k; i++) lf[i] *= sigma_f;
  if (sf->cfg.merge_result) {
    const learn_rp *rp = sf->cfg.shared_stats ? sf->rp : sf->rp_slow;
    SCL_CALL_GOTO(err, scl_alloc(bytes, "slow logits", (void **)&ls), done);
    SCL_CALL_GOTO(err, learn_rp_logits_with(rp, sf->wo_slow, k, features[1], n, ls), done);
    for (int64_t i = 0; i < n * k; i++) ls[i] *= sigma_s;
  }
  combine(sf, s, lf, ls, n, k, pred);
done:
  scl_free(lf);
  scl_free(ls);
  return err;
}

scl_err safe_classifier_create(safe *sf) {
  const int64_t M = sf->cfg.rp_dim;
  linalg_group *group = sf->linalg; /* the trial's group solver; NULL: a private one-process one */
  SCL_CALL(learn_rp_create(group, sf->D, M, sf->C, sf->seed, 0, &sf->rp));
  if (!sf->cfg.shared_stats)
    SCL_CALL(learn_rp_create(group, sf->D, M, sf->C, sf->seed, 0, &sf->rp_slow));
  SCL_CALL(scl_calloc((size_t)(sf->C * M) * sizeof(float), "slow W_o", (void **)&sf->wo_slow));
  return SCL_OK;
}

void safe_classifier_destroy(safe *sf) {
  learn_rp_destroy(&sf->rp);
  learn_rp_destroy(&sf->rp_slow);
  scl_free(sf->wo_slow);
  sf->wo_slow = NULL;
}

int safe_classifier_state(safe *sf, learn_state_entry *out) {
  learn_rp *rp = sf->rp;
  int n = 0;
  out[n++] = (learn_state_entry){"rp_G", LEARN_F64_GRAM, 2, {rp->m, rp->m}, rp->stats};
  out[n++] =
      (learn_state_entry){"rp_Q", LEARN_F64, 2, {rp->m, rp->n_classes}, linalg_stats_q(rp->stats)};
  out[n++] = (learn_state_entry){"rp_W_fast", LEARN_F32, 2, {rp->n_classes, rp->m}, rp->w_out};
  out[n++] = (learn_state_entry){"rp_state", LEARN_F64, 1, {2, 0}, sf->rp->state};
  out[n++] = (learn_state_entry){"rp_W_slow", LEARN_F32, 2, {rp->n_classes, rp->m}, sf->wo_slow};
  out[n++] = (learn_state_entry){"lambdas", LEARN_F64, 1, {4, 0}, sf->lambdas};
  if (sf->rp_slow) {
    out[n++] =
        (learn_state_entry){"rp_slow_G", LEARN_F64_GRAM, 2, {rp->m, rp->m}, sf->rp_slow->stats};
    out[n++] = (learn_state_entry){
        "rp_slow_Q", LEARN_F64, 2, {rp->m, rp->n_classes}, linalg_stats_q(sf->rp_slow->stats)};
  }
  return n;
}
