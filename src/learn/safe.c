/* safe.c: SAFE, Slow And Fast parameter-Efficient tuning (Zhao et al., NeurIPS 2024), as the
 * authors' released code computes it (docs/methods.md c): training of the slow learner in session 1
 * and of the fast learner afterwards. Classifiers and prediction are in safe_classifier.c.
 *
 * Session 1: PET S + cosine head W_S trained with CE + lambda_diag on_diag + lambda_rdn off_diag
 * of the transfer loss between per-sample-normalised slow features (a SECOND forward, with its
 * own dropout mask) and the frozen model's features. Then the fast learner starts as a copy, and
 * both heads' sigma go back to method.head.sigma0 (10) as the released code's RP setup resets
 * them (docs/methods.md b.5, c.2; method.safe.keep_sigma keeps the learned sigma); the trained
 * rows stay. Sessions t >= 2: PET F + head W_F (old rows kept, new rows zero, sigma carried
 * over) trained with CE over all seen classes + lambda_cos * sum_b (1 - cos(phi_F, phi_S)) +
 * lambda_cc * L_{s<->f}; the slow learner runs in evaluation mode. The CE reads one training
 * forward of the fast learner and the alignment and cross-classification terms a second one with
 * its own dropout masks, as released (c.3; method.safe.fast_forwards = 1 shares one). A fresh
 * SGD (momentum, weight decay on every trainable
 * tensor) each session, cosine LR with its own T_max (released: 20, also for the 15 later
 * epochs). Domain-incremental runs train only session 1, as the released code (docs/methods.md
 * c.9). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "safe_internal.h"

#define TAG_SLOW_PET 101u
#define TAG_SLOW_HEAD 201u

static learn_train_plan safe_train_plan(learn_method *m, const learn_session *s) {
  safe *sf = (safe *)m;
  learn_train_plan p = {.batch = sf->cfg.batch};
  p.epochs = s->t == 0 ? sf->cfg.epochs_first : (sf->dil ? 0 : sf->cfg.epochs_later);
  if (s->t == 0) {
    p.n_terms = 3;
    p.term_names[0] = "total";
    p.term_names[1] = "ce";
    p.term_names[2] = "transfer";
  } else {
    p.n_terms = 4;
    p.term_names[0] = "total";
    p.term_names[1] = "ce";
    p.term_names[2] = "align";
    p.term_names[3] = "cross_class";
  }
  return p;
}

static scl_err safe_train_begin(learn_method *m, const learn_session *s, int64_t steps) {
  safe *sf = (safe *)m;
  (void)steps;
  const int64_t CD = sf->C * sf->D;
  learn_head *h = s->t == 0 ? &sf->head_s : &sf->head_f;
  pet_params *p = s->t == 0 ? sf->slow : sf->fast;
  if (s->t == 0) {
    pet_params_init(sf->slow, sf->seed, TAG_SLOW_PET);
    memset(sf->head_s.p, 0, (size_t)(CD + 1) * sizeof(float));
    learn_cosine_init(sf->head_s.p, sf->head_s.p + CD, s->class_hi, sf->D, sf->seed, TAG_SLOW_HEAD,
                      (float)sf->cfg.head_sigma0);
  } else { /* update_fc: new rows of the fast head start at zero (the clamp quirk, c.3.6) */
    memset(sf->head_f.p + s->class_lo * sf->D, 0,
           (size_t)((s->class_hi - s->class_lo) * sf->D) * sizeof(float));
  }
  memset(h->buf, 0, (size_t)(CD + 1) * sizeof(float)); /* a fresh optimizer every session */
  memset(s->t == 0 ? sf->slow_buf : sf->fast_buf, 0, (size_t)p->count * sizeof(float));
  return SCL_OK;
}

static vit_dropout_key dropout_key(const safe *sf, const learn_session *s, const learn_batch *b,
                                   uint32_t pass) {
  return (vit_dropout_key){sf->seed, (uint32_t)(s->t << 20) + (uint32_t)b->step, pass, b->index};
}

/* Session 1: CE through the slow head, then the transfer loss on a second forward. On a group
 * every rank forwards its rows and the losses are formed over the gathered batch (tuning.h). */
static scl_err slow_step(safe *sf, const learn_session *s, const learn_batch *b, double *loss) {
  learn_step_buffers *w = &sf->w;
  const int64_t B = b->B_global, D = sf->D;
  vit_dropout_key k0 = dropout_key(sf, s, b, 0), k1 = dropout_key(sf, s, b, 1);
  pet_params_zero_grad(sf->slow);
  SCL_CALL(learn_tune_ce(w, sf->trainer, sf->slow, &sf->head_s, b, s->class_hi, &k0, sf->comm,
                         &loss[1]));
  SCL_CALL(learn_tune_backward(sf->trainer, sf->slow, w->dphi, D, b));
  loss[2] = 0.0;
  if (sf->cfg.slow_diag != 0.0 || sf->cfg.slow_rdn != 0.0) {
    SCL_CALL(learn_tune_forward(sf->comm, sf->trainer, sf->slow, b, &k1, D, w->phi2));
    SCL_CALL(learn_tune_infer(sf->comm, sf->trainer, NULL, b, D, w->ref));
    memset(w->dphi, 0, (size_t)(B * D) * sizeof(float));
    loss[2] = learn_transfer_loss(w->dphi, w->scratch, w->phi2, w->ref, B, D, sf->cfg.slow_diag,
                                  sf->cfg.slow_rdn, 1.0);
    SCL_CALL(learn_tune_backward(sf->trainer, sf->slow, w->dphi, D, b));
  }
  loss[0] = loss[1] + loss[2];
  SCL_CALL(learn_tune_sync(sf->comm, sf->slow));
  learn_tune_sgd(&sf->cfg, sf->slow, sf->slow_buf, &sf->head_s, s->class_hi, b->epoch, b->step);
  return SCL_OK;
}

/* Whether the fast learner's second training forward differs from the first: only with
 * method.safe.fast_forwards = 2 and a PET whose training forward draws dropout (an adapter with
 * p > 0). Otherwise the two released forwards are the same computation and one serves both. */
static int two_forwards(const safe *sf) {
  return sf->cfg.fast_forwards == 2 && (sf->pc.kinds & PET_ADAPTER) &&
         sf->pc.adapter_dropout > 0.0f;
}

/* Sessions >= 2: CE + alignment with the slow learner + cross-classification. With two forwards
 * the CE gradient goes back through the first (dropout pass 0) before the second (pass 1) feeds
 * the alignment and the slow head's term l2 (released SAFE.py:518 and :553, docs/methods.md c.3);
 * with one, all three terms read the first and go back together. */
static scl_err fast_step(safe *sf, const learn_session *s, const learn_batch *b, double *loss) {
  learn_step_buffers *w = &sf->w;
  const int64_t B = b->B_global, K = s->class_lo, Kt = s->class_hi, D = sf->D, CD = sf->C * D;
  vit_dropout_key k0 = dropout_key(sf, s, b, 0), k1 = dropout_key(sf, s, b, 1);
  float *gw = sf->head_f.grad, *phi = w->phi;
  pet_params_zero_grad(sf->fast);
  SCL_CALL(learn_tune_ce(w, sf->trainer, sf->fast, &sf->head_f, b, Kt, &k0, sf->comm, &loss[1]));
  if (two_forwards(sf)) {
    SCL_CALL(learn_tune_backward(sf->trainer, sf->fast, w->dphi, D, b));
    SCL_CALL(learn_tune_forward(sf->comm, sf->trainer, sf->fast, b, &k1, D, w->phi2));
    memset(w->dphi, 0, (size_t)(B * D) * sizeof(float));
    phi = w->phi2;
  }
  SCL_CALL(learn_tune_infer(sf->comm, sf->trainer, sf->slow, b, D, w->ref));
  loss[2] = sf->cfg.fast_disf != 0.0
                ? learn_align_loss(w->dphi, phi, w->ref, B, D, sf->cfg.fast_disf)
                : 0.0;
  loss[3] = 0.0;
  if (sf->cfg.fast_cc != 0.0 && K > 0)
    loss[3] = learn_crossclass_loss(gw, gw + CD, w->dphi, w->scratch, NULL, sf->head_f.p,
                                    sf->head_f.p + CD, sf->head_s.p, sf->head_s.p + CD, phi, w->ref,
                                    b->labels_all, K, Kt, B, D, sf->cfg.fast_cc);
  SCL_CALL(learn_tune_backward(sf->trainer, sf->fast, w->dphi, D, b));
  loss[0] = loss[1] + sf->cfg.fast_disf * loss[2] + sf->cfg.fast_cc * loss[3];
  SCL_CALL(learn_tune_sync(sf->comm, sf->fast));
  learn_tune_sgd(&sf->cfg, sf->fast, sf->fast_buf, &sf->head_f, Kt, b->epoch, b->step);
  return SCL_OK;
}

static scl_err safe_train_step(learn_method *m, const learn_session *s, const learn_batch *b,
                               double *losses) {
  safe *sf = (safe *)m;
  SCL_CHECK(b->B_global <= sf->B, SCL_ERR_INTERNAL, "batch %lld > %lld", (long long)b->B_global,
            (long long)sf->B);
  if (s->t == 0)
    SCL_CALL(slow_step(sf, s, b, losses));
  else
    SCL_CALL(fast_step(sf, s, b, losses));
  return SCL_OK;
}

static scl_err safe_train_epoch_end(learn_method *m, const learn_session *s, int64_t epoch) {
  (void)m, (void)s, (void)epoch; /* the schedule is a pure function of the epoch */
  return SCL_OK;
}

static scl_err safe_train_end(learn_method *m, const learn_session *s) {
  safe *sf = (safe *)m;
  if (s->t != 0) return SCL_OK;
  /* model_branch1 = deepcopy(network): the slow learner freezes, the fast one starts from it */
  SCL_CALL(pet_params_copy(sf->fast, sf->slow));
  memcpy(sf->head_f.p, sf->head_s.p, (size_t)(sf->C * sf->D + 1) * sizeof(float));
  /* setup_RP and setup_RP_branch call reset_parameters: sigma back to its start, rows kept */
  if (!sf->cfg.keep_sigma)
    *learn_head_sigma(&sf->head_s) = *learn_head_sigma(&sf->head_f) = (float)sf->cfg.head_sigma0;
  return SCL_OK;
}

static int safe_predictors(const learn_method *m, const char **names) {
  const safe *sf = (const safe *)m;
  names[0] = "safe";
  names[1] = "slow";
  names[2] = "fast";
  return sf->cfg.merge_result ? 3 : 1;
}

static int safe_state(learn_method *m, learn_state_entry *out) {
  safe *sf = (safe *)m;
  const int64_t CD1 = sf->C * sf->D + 1, P = sf->slow->count;
  int n = 0;
  out[n++] = (learn_state_entry){"pet_slow", LEARN_F32, 1, {P, 0}, sf->slow->param};
  out[n++] = (learn_state_entry){"pet_fast", LEARN_F32, 1, {P, 0}, sf->fast->param};
  out[n++] = (learn_state_entry){"pet_slow_momentum", LEARN_F32, 1, {P, 0}, sf->slow_buf};
  out[n++] = (learn_state_entry){"pet_fast_momentum", LEARN_F32, 1, {P, 0}, sf->fast_buf};
  out[n++] = (learn_state_entry){"head_slow", LEARN_F32, 1, {CD1, 0}, sf->head_s.p};
  out[n++] = (learn_state_entry){"head_fast", LEARN_F32, 1, {CD1, 0}, sf->head_f.p};
  out[n++] = (learn_state_entry){"head_slow_momentum", LEARN_F32, 1, {CD1, 0}, sf->head_s.buf};
  out[n++] = (learn_state_entry){"head_fast_momentum", LEARN_F32, 1, {CD1, 0}, sf->head_f.buf};
  n += safe_classifier_state(sf, out + n);
  return n;
}

static void safe_destroy(learn_method **m) {
  if (!m || !*m) return;
  safe *sf = (safe *)*m;
  vit_trainer_destroy(&sf->trainer);
  pet_params_destroy(&sf->slow);
  pet_params_destroy(&sf->fast);
  scl_free(sf->slow_buf);
  scl_free(sf->fast_buf);
  learn_head_free(&sf->head_s);
  learn_head_free(&sf->head_f);
  learn_step_buffers_free(&sf->w);
  safe_classifier_destroy(sf);
  free(sf);
  *m = NULL;
}

static scl_err alloc_floats(float **p, size_t n, const char *what) {
  SCL_CALL(scl_calloc((n ? n : 1) * sizeof(float), what, (void **)p));
  return SCL_OK;
}

static scl_err alloc_buffers(safe *sf) {
  const int64_t P = sf->slow->count;
  SCL_CALL(learn_head_create(&sf->head_s, sf->C, sf->D));
  SCL_CALL(learn_head_create(&sf->head_f, sf->C, sf->D));
  SCL_CALL(alloc_floats(&sf->slow_buf, (size_t)P, "slow PET momentum"));
  SCL_CALL(alloc_floats(&sf->fast_buf, (size_t)P, "fast PET momentum"));
  SCL_CALL(learn_step_buffers_create(&sf->w, sf->B, sf->C, sf->D));
  return SCL_OK;
}

/* Session 1: two forward+backward passes of the slow learner and one frozen forward per image;
 * later: one or two forward+backward passes of the fast learner (two_forwards) and a forward of
 * the slow one. */
static learn_cost safe_cost(const learn_method_cfg *cfg, int t) {
  int pet = strcmp(cfg->pet, "none") != 0, nets = cfg->merge_result ? 2 : 1;
  int fwd =
      cfg->fast_forwards == 2 && strstr(cfg->pet, "adapter") && cfg->adapter_dropout > 0.0 ? 2 : 1;
  double first = (pet ? 4.0 : 2.0) + 1.0, later = (pet ? 2.0 * fwd : 1.0) + 1.0;
  return (learn_cost){
      t == 0 ? first * (double)cfg->epochs_first : later * (double)cfg->epochs_later, nets, 0, nets,
      0};
}

static scl_err safe_create(const learn_context *ctx, learn_method **out);

const learn_method_ops learn_safe_ops = {
    .name = "safe",
    .label = "SAFE",
    .category = "safe",
    .cost_factor = 20.0,
    .create = safe_create,
    .cost = safe_cost,
    .train_plan = safe_train_plan,
    .train_begin = safe_train_begin,
    .train_step = safe_train_step,
    .train_epoch_end = safe_train_epoch_end,
    .train_end = safe_train_end,
    .networks = safe_networks,
    .fit = safe_fit,
    .predict = safe_predict,
    .predictors = safe_predictors,
    .state = safe_state,
    .destroy = safe_destroy,
};

static scl_err safe_setup(safe *sf, const learn_context *ctx) {
  const vit_config *vc = &ctx->backbone->cfg;
  SCL_CALL(pet_params_create(vc, &sf->pc, &sf->slow));
  SCL_CALL(pet_params_create(vc, &sf->pc, &sf->fast));
  SCL_CALL(alloc_buffers(sf));
  SCL_CALL(vit_trainer_create(ctx->backbone, &sf->pc, sf->B, 0, &sf->trainer));
  SCL_CALL(safe_classifier_create(sf));
  /* Sane untrained state (used as is when train.epochs_first = 0): equal learners. */
  pet_params_init(sf->slow, sf->seed, TAG_SLOW_PET);
  pet_params_init(sf->fast, sf->seed, TAG_SLOW_PET);
  sf->head_s.p[sf->C * sf->D] = sf->head_f.p[sf->C * sf->D] = (float)sf->cfg.head_sigma0;
  return SCL_OK;
}

static scl_err safe_create(const learn_context *ctx, learn_method **out) {
  SCL_CHECK(!strcmp(ctx->cfg->optimizer, "sgd"), SCL_ERR_ARG,
            "SAFE trains with SGD (train.optimizer = \"%s\")", ctx->cfg->optimizer);
  safe *sf = calloc(1, sizeof *sf);
  SCL_CHECK(sf, SCL_ERR_NOMEM, "safe");
  sf->base.ops = &learn_safe_ops;
  sf->cfg = *ctx->cfg;
  sf->ptm = ctx->backbone;
  sf->seed = ctx->seed;
  sf->C = ctx->n_classes;
  sf->D = ctx->backbone->cfg.width;
  sf->B = ctx->cfg->batch;
  sf->dil = ctx->domain_incremental;
  sf->comm = ctx->comm ? ctx->comm : dist_comm_self();
  sf->linalg = ctx->linalg;
  learn_method *m = &sf->base;
  scl_err err = learn_pet_config(ctx->cfg, &sf->pc);
  if (!err) err = safe_setup(sf, ctx);
  if (err) {
    safe_destroy(&m);
    return SCL_TRACE(err);
  }
  *out = m;
  return SCL_OK;
}
