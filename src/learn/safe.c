/* safe.c: SAFE, Slow And Fast parameter-Efficient tuning (Zhao et al., NeurIPS 2024), as the
 * authors' released code computes it (METHOD.md c): training of the slow learner in session 1
 * and of the fast learner afterwards. Classifiers and prediction are in safe_classifier.c.
 *
 * Session 1: PET S + cosine head W_S trained with CE + lambda_diag on_diag + lambda_rdn off_diag
 * of the transfer loss between per-sample-normalised slow features (a SECOND forward, with its
 * own dropout mask) and the frozen model's features. Then the fast learner starts as a copy.
 * Sessions t >= 2: PET F + head W_F (old rows kept, new rows zero, sigma kept) trained with CE
 * over all seen classes + lambda_cos * sum_b (1 - cos(phi_F, phi_S)) + lambda_cc * L_{s<->f}; the
 * slow learner runs in evaluation mode. A fresh SGD (momentum, weight decay on every trainable
 * tensor) each session, cosine LR with its own T_max (released: 20, also for the 15 later
 * epochs). Domain-incremental runs train only session 1, as the released code (METHOD.md c.9). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "safe_internal.h"

#define TAG_SLOW_PET 101u
#define TAG_SLOW_HEAD 201u

static pet_config pet_from(const learn_method_cfg *c) {
  pet_config p = {0};
  if (!strcmp(c->pet, "adapter"))
    p.kinds = PET_ADAPTER;
  else if (!strcmp(c->pet, "ssf"))
    p.kinds = PET_SSF;
  else if (!strcmp(c->pet, "vpt_deep"))
    p.kinds = PET_VPT_DEEP;
  else if (!strcmp(c->pet, "vpt_shallow"))
    p.kinds = PET_VPT_SHALLOW;
  p.adapter_dim = c->adapter_dim;
  p.adapter_scale = (float)c->adapter_scale;
  p.adapter_dropout = (float)c->adapter_dropout;
  p.vpt_tokens = c->vpt_tokens;
  p.vpt_xavier = c->vpt_xavier;
  return p;
}

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
  safe_head *h = s->t == 0 ? &sf->head_s : &sf->head_f;
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

static double lr_of(const safe *sf, int64_t epoch) {
  learn_lr_schedule sch = {sf->cfg.t_max > 0 ? LEARN_LR_COSINE : LEARN_LR_CONSTANT, sf->cfg.lr,
                           sf->cfg.min_lr, sf->cfg.t_max};
  return learn_lr_at(&sch, epoch);
}

/* One SGD step of a learner: its PET block and the head rows [0, k) plus sigma. */
static void sgd_step(safe *sf, pet_params *p, float *pet_buf, safe_head *h, int64_t k,
                     const learn_batch *b) {
  learn_sgd_cfg cfg = {sf->cfg.momentum, 0.0, 0};
  double lr = lr_of(sf, b->epoch);
  learn_param_group pet = {0, p->count, 1.0, sf->cfg.weight_decay};
  learn_param_group head[2] = {{0, k * sf->D, 1.0, sf->cfg.weight_decay},
                               {sf->C * sf->D, 1, 1.0, sf->cfg.weight_decay}};
  if (p->count) learn_sgd_step(p->param, pet_buf, p->grad, b->step, lr, &cfg, &pet, 1);
  learn_sgd_step(h->p, h->buf, h->grad, b->step, lr, &cfg, head, 2);
}

static vit_dropout_key dropout_key(const safe *sf, const learn_session *s, const learn_batch *b,
                                   uint32_t pass) {
  return (vit_dropout_key){sf->seed, (uint32_t)(s->t << 20) + (uint32_t)b->step, pass, b->index};
}

/* Session 1: CE through the slow head, then the transfer loss on a second forward. */
static scl_err slow_step(safe *sf, const learn_session *s, const learn_batch *b, double *loss) {
  const int64_t B = b->B, K = s->class_hi, D = sf->D, CD = sf->C * D;
  learn_cosine_cache cache = learn_cosine_cache_bind(sf->cos_mem, B, K, D);
  vit_dropout_key k0 = dropout_key(sf, s, b, 0), k1 = dropout_key(sf, s, b, 1);
  pet_params_zero_grad(sf->slow);
  memset(sf->head_s.grad, 0, (size_t)(CD + 1) * sizeof(float));
  SCL_CALL(vit_trainer_forward(sf->trainer, sf->slow, b->images, B, &k0, sf->phi));
  learn_cosine_forward(sf->logits, &cache, sf->phi, sf->head_s.p, sf->head_s.p + CD, B, K, D);
  memset(sf->dlogits, 0, (size_t)(B * K) * sizeof(float)); /* losses accumulate into gradients */
  loss[1] = learn_ce_loss(sf->dlogits, sf->logits, b->labels, B, K, 1.0);
  memset(sf->dphi, 0, (size_t)(B * D) * sizeof(float));
  learn_cosine_backward(sf->dphi, sf->head_s.grad, sf->head_s.grad + CD, sf->scratch, sf->dlogits,
                        sf->phi, sf->head_s.p, sf->head_s.p + CD, &cache, B, K, D);
  SCL_CALL(vit_trainer_backward(sf->trainer, sf->slow, sf->dphi, B));
  loss[2] = 0.0;
  if (sf->cfg.slow_diag != 0.0 || sf->cfg.slow_rdn != 0.0) {
    SCL_CALL(vit_trainer_forward(sf->trainer, sf->slow, b->images, B, &k1, sf->phi2));
    SCL_CALL(vit_trainer_infer(sf->trainer, NULL, b->images, B, sf->ref));
    memset(sf->dphi, 0, (size_t)(B * D) * sizeof(float));
    loss[2] = learn_transfer_loss(sf->dphi, sf->scratch, sf->phi2, sf->ref, B, D, sf->cfg.slow_diag,
                                  sf->cfg.slow_rdn, 1.0);
    SCL_CALL(vit_trainer_backward(sf->trainer, sf->slow, sf->dphi, B));
  }
  loss[0] = loss[1] + loss[2];
  sgd_step(sf, sf->slow, sf->slow_buf, &sf->head_s, K, b);
  return SCL_OK;
}

/* Sessions >= 2: CE + alignment with the slow learner + cross-classification. */
static scl_err fast_step(safe *sf, const learn_session *s, const learn_batch *b, double *loss) {
  const int64_t B = b->B, K = s->class_lo, Kt = s->class_hi, D = sf->D, CD = sf->C * D;
  learn_cosine_cache cache = learn_cosine_cache_bind(sf->cos_mem, B, Kt, D);
  vit_dropout_key k0 = dropout_key(sf, s, b, 0);
  float *wf = sf->head_f.p, *sf_sigma = sf->head_f.p + CD, *gw = sf->head_f.grad;
  pet_params_zero_grad(sf->fast);
  memset(gw, 0, (size_t)(CD + 1) * sizeof(float));
  SCL_CALL(vit_trainer_forward(sf->trainer, sf->fast, b->images, B, &k0, sf->phi));
  SCL_CALL(vit_trainer_infer(sf->trainer, sf->slow, b->images, B, sf->ref));
  learn_cosine_forward(sf->logits, &cache, sf->phi, wf, sf_sigma, B, Kt, D);
  memset(sf->dlogits, 0, (size_t)(B * Kt) * sizeof(float)); /* losses accumulate into gradients */
  loss[1] = learn_ce_loss(sf->dlogits, sf->logits, b->labels, B, Kt, 1.0);
  memset(sf->dphi, 0, (size_t)(B * D) * sizeof(float));
  learn_cosine_backward(sf->dphi, gw, gw + CD, sf->scratch, sf->dlogits, sf->phi, wf, sf_sigma,
                        &cache, B, Kt, D);
  loss[2] = sf->cfg.fast_disf != 0.0
                ? learn_align_loss(sf->dphi, sf->phi, sf->ref, B, D, sf->cfg.fast_disf)
                : 0.0;
  loss[3] = 0.0;
  if (sf->cfg.fast_cc != 0.0 && K > 0)
    loss[3] = learn_crossclass_loss(gw, gw + CD, sf->dphi, sf->scratch, NULL, wf, sf_sigma,
                                    sf->head_s.p, sf->head_s.p + CD, sf->phi, sf->ref, b->labels, K,
                                    Kt, B, D, sf->cfg.fast_cc);
  SCL_CALL(vit_trainer_backward(sf->trainer, sf->fast, sf->dphi, B));
  loss[0] = loss[1] + sf->cfg.fast_disf * loss[2] + sf->cfg.fast_cc * loss[3];
  sgd_step(sf, sf->fast, sf->fast_buf, &sf->head_f, Kt, b);
  return SCL_OK;
}

static scl_err safe_train_step(learn_method *m, const learn_session *s, const learn_batch *b,
                               double *losses) {
  safe *sf = (safe *)m;
  if (b->B > sf->B)
    return SCL_ERROR(SCL_ERR_INTERNAL, "batch %lld > %lld", (long long)b->B, (long long)sf->B);
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

static void free_head(safe_head *h) {
  scl_free(h->p);
  scl_free(h->grad);
  scl_free(h->buf);
}

static void safe_destroy(learn_method **m) {
  if (!m || !*m) return;
  safe *sf = (safe *)*m;
  vit_trainer_destroy(&sf->trainer);
  pet_params_destroy(&sf->slow);
  pet_params_destroy(&sf->fast);
  scl_free(sf->slow_buf);
  scl_free(sf->fast_buf);
  free_head(&sf->head_s);
  free_head(&sf->head_f);
  float *bufs[] = {sf->phi,    sf->phi2,    sf->ref,     sf->dphi,
                   sf->logits, sf->dlogits, sf->cos_mem, sf->scratch};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) scl_free(bufs[i]);
  safe_classifier_destroy(sf);
  free(sf);
  *m = NULL;
}

static scl_err alloc_floats(float **p, size_t n, const char *what) {
  SCL_CALL(scl_calloc((n ? n : 1) * sizeof(float), what, (void **)p));
  return SCL_OK;
}

static scl_err alloc_buffers(safe *sf) {
  const int64_t B = sf->B, C = sf->C, D = sf->D, CD1 = C * D + 1, P = sf->slow->count;
  safe_head *heads[2] = {&sf->head_s, &sf->head_f};
  for (int i = 0; i < 2; i++) {
    SCL_CALL(alloc_floats(&heads[i]->p, (size_t)CD1, "cosine head"));
    SCL_CALL(alloc_floats(&heads[i]->grad, (size_t)CD1, "cosine head gradient"));
    SCL_CALL(alloc_floats(&heads[i]->buf, (size_t)CD1, "cosine head momentum"));
  }
  SCL_CALL(alloc_floats(&sf->slow_buf, (size_t)P, "slow PET momentum"));
  SCL_CALL(alloc_floats(&sf->fast_buf, (size_t)P, "fast PET momentum"));
  float **bd[] = {&sf->phi, &sf->phi2, &sf->ref, &sf->dphi};
  for (size_t i = 0; i < 4; i++) SCL_CALL(alloc_floats(bd[i], (size_t)(B * D), "features"));
  SCL_CALL(alloc_floats(&sf->logits, (size_t)(B * C), "logits"));
  SCL_CALL(alloc_floats(&sf->dlogits, (size_t)(B * C), "logit gradients"));
  SCL_CALL(alloc_floats(&sf->cos_mem, learn_cosine_cache_floats(B, C, D), "cosine cache"));
  size_t sc = learn_cosine_backward_scratch(B, C, D), t = learn_transfer_scratch(B, D),
         cc = learn_crossclass_scratch(C, C, B, D);
  sf->scratch_floats = sc > t ? (sc > cc ? sc : cc) : (t > cc ? t : cc);
  SCL_CALL(alloc_floats(&sf->scratch, sf->scratch_floats, "loss scratch"));
  return SCL_OK;
}

static scl_err safe_create(const learn_context *ctx, learn_method **out);

const learn_method_ops learn_safe_ops = {
    .name = "safe",
    .category = "safe",
    .create = safe_create,
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
  if (strcmp(ctx->cfg->optimizer, "sgd"))
    return SCL_ERROR(SCL_ERR_ARG, "SAFE trains with SGD (train.optimizer = \"%s\")",
                     ctx->cfg->optimizer);
  safe *sf = calloc(1, sizeof *sf);
  if (!sf) return SCL_ERROR(SCL_ERR_NOMEM, "safe");
  sf->base.ops = &learn_safe_ops;
  sf->cfg = *ctx->cfg;
  sf->ptm = ctx->backbone;
  sf->seed = ctx->seed;
  sf->C = ctx->n_classes;
  sf->D = ctx->backbone->cfg.width;
  sf->B = ctx->cfg->batch;
  sf->dil = ctx->domain_incremental;
  sf->pc = pet_from(ctx->cfg);
  learn_method *m = &sf->base;
  scl_err err = safe_setup(sf, ctx);
  if (err) {
    safe_destroy(&m);
    return scl_error_trace(err, __FILE__, __LINE__, __func__);
  }
  *out = m;
  return SCL_OK;
}
