/* ranpac.c: RanPAC (McDonnell et al., NeurIPS 2023; PILOT models/ranpac.py). Phase 1: a PET
 * module tuned in session 1 with CE through a cosine head (the first-session tuner shared with
 * APER), then frozen; phase 2: a fixed random projection with ReLU and a ridge classifier on
 * statistics G, Q accumulated over sessions, with lambda chosen each session on that session's
 * own training features (docs/methods.md e, c.6). method.pet = "none" skips phase 1. */
#include <stdlib.h>
#include <string.h>

#include "safecl/rp.h"
#include "safecl/tuning.h"

typedef struct ranpac {
  learn_method base;
  learn_tuner *tuner;
  learn_rp *rp;
  learn_method_cfg cfg;
  uint64_t seed;
} ranpac;

static learn_train_plan ranpac_train_plan(learn_method *m, const learn_session *s) {
  return learn_tuner_plan(((ranpac *)m)->tuner, s);
}
static scl_err ranpac_train_begin(learn_method *m, const learn_session *s, int64_t steps) {
  (void)steps;
  return learn_tuner_begin(((ranpac *)m)->tuner, s);
}
static scl_err ranpac_train_step(learn_method *m, const learn_session *s, const learn_batch *b,
                                 double *losses) {
  return learn_tuner_step(((ranpac *)m)->tuner, s, b, losses);
}
static scl_err ranpac_epoch_end(learn_method *m, const learn_session *s, int64_t epoch) {
  (void)m, (void)s, (void)epoch;
  return SCL_OK;
}
static scl_err ranpac_train_end(learn_method *m, const learn_session *s) {
  (void)m, (void)s;
  return SCL_OK;
}

static int ranpac_networks(learn_method *m, const learn_session *s, learn_network *out) {
  (void)s;
  out[0] = learn_tuner_network(((ranpac *)m)->tuner);
  return 1;
}

static scl_err ranpac_fit(learn_method *m, const learn_session *s, const float *const *features,
                          const int32_t *labels, const int64_t *pos, int64_t n) {
  ranpac *r = (ranpac *)m;
  uint8_t *fit = NULL;
  double lambda = 0.0;
  scl_err err = scl_alloc((size_t)(n ? n : 1), "ridge split", (void **)&fit);
  if (!err)
    err = learn_rp_fit_rows(r->seed, (uint32_t)s->t, s->n_train, r->cfg.ridge_fit_fraction, pos, n,
                            fit);
  SCL_CALL_GOTO(err, linalg_group_agree(r->rp->group, err), done);
  SCL_CALL_GOTO(err, learn_rp_accumulate(r->rp, features[0], labels, n), done);
  SCL_CALL_GOTO(err,
                learn_rp_search(r->rp, features[0], labels, fit, n, (int)r->cfg.ridge_lo_exp,
                                (int)r->cfg.ridge_hi_exp, &lambda, NULL),
                done);
  SCL_CALL_GOTO(err, learn_rp_solve(r->rp, lambda, s->class_hi), done);
  SCL_INFO("ranpac: session %d ridge lambda %g (%s)", s->t + 1, lambda,
           linalg_group_solver_name(r->rp->group, r->rp->m));
done:
  scl_free(fit);
  return err;
}

static scl_err ranpac_predict(learn_method *m, const learn_session *s, const float *const *features,
                              int64_t n, int32_t *pred) {
  ranpac *r = (ranpac *)m;
  int64_t seen = learn_rp_seen(r->rp);
  float *logits = NULL;
  SCL_CALL(scl_alloc((size_t)((n ? n : 1) * seen) * sizeof(float), "RP logits", (void **)&logits));
  scl_err err = learn_rp_logits(r->rp, features[0], n, logits);
  for (int64_t i = 0; !err && i < n; i++) {
    const float *l = logits + i * seen;
    int64_t best = 0;
    for (int64_t c = 1; c < seen; c++)
      if (l[c] > l[best]) best = c;
    pred[i] = (int32_t)best;
  }
  (void)s;
  scl_free(logits);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}

static int ranpac_predictors(const learn_method *m, const char **names) {
  (void)m;
  names[0] = "ranpac";
  return 1;
}

static int ranpac_state(learn_method *m, learn_state_entry *out) {
  learn_rp *rp = ((ranpac *)m)->rp;
  int n = learn_tuner_state(((ranpac *)m)->tuner, out);
  out[n++] = (learn_state_entry){"rp_G", LEARN_F64_GRAM, 2, {rp->m, rp->m}, rp->stats};
  out[n++] =
      (learn_state_entry){"rp_Q", LEARN_F64, 2, {rp->m, rp->n_classes}, linalg_stats_q(rp->stats)};
  out[n++] = (learn_state_entry){"rp_W_out", LEARN_F32, 2, {rp->n_classes, rp->m}, rp->w_out};
  out[n++] = (learn_state_entry){"rp_state", LEARN_F64, 1, {2, 0}, rp->state};
  return n;
}

static void ranpac_destroy(learn_method **m) {
  if (!m || !*m) return;
  ranpac *r = (ranpac *)*m;
  learn_tuner_destroy(&r->tuner);
  learn_rp_destroy(&r->rp);
  free(r);
  *m = NULL;
}

static learn_cost ranpac_cost(const learn_method_cfg *cfg, int t) {
  int tune = t == 0 && strcmp(cfg->pet, "none") != 0;
  return (learn_cost){tune ? 2.0 * (double)cfg->epochs_first : 0.0, 1, 1, 1, 0};
}

static scl_err ranpac_create(const learn_context *ctx, learn_method **out);

const learn_method_ops learn_ranpac_ops = {
    .name = "ranpac",
    .label = "RanPAC",
    .category = "representation",
    .cost_factor = 3.0,
    .create = ranpac_create,
    .cost = ranpac_cost,
    .train_plan = ranpac_train_plan,
    .train_begin = ranpac_train_begin,
    .train_step = ranpac_train_step,
    .train_epoch_end = ranpac_epoch_end,
    .train_end = ranpac_train_end,
    .networks = ranpac_networks,
    .fit = ranpac_fit,
    .predict = ranpac_predict,
    .predictors = ranpac_predictors,
    .state = ranpac_state,
    .destroy = ranpac_destroy,
};

static scl_err ranpac_create(const learn_context *ctx, learn_method **out) {
  ranpac *r = calloc(1, sizeof *r);
  SCL_CHECK(r, SCL_ERR_NOMEM, "ranpac");
  r->base.ops = &learn_ranpac_ops;
  r->cfg = *ctx->cfg;
  r->seed = ctx->seed;
  learn_method *self = &r->base;
  scl_err err = learn_tuner_create(ctx, &r->tuner);
  if (!err)
    err = learn_rp_create(ctx->linalg, ctx->backbone->cfg.width, ctx->cfg->rp_dim, ctx->n_classes,
                          ctx->seed, 0, &r->rp);
  if (err) {
    ranpac_destroy(&self);
    return SCL_TRACE(err);
  }
  *out = &r->base;
  return SCL_OK;
}
