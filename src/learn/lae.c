/* lae.c: LAE (Gao et al., ICCV 2023), the online/offline PET ensemble (docs/methods.md l): a
 * prefix with compensation and learnable scales at blocks [0, method.lae.layers) of the frozen
 * ViT (the online expert, trained with Adam), its exponential moving average after every
 * optimizer step (the offline expert), one linear head over all classes shared by both, and a
 * prediction that takes, per class, the larger of the two experts' softmax probabilities.
 *
 * A session trains the head alone for its first method.lae.freeze_epochs epochs (the ViT runs
 * forward only, keeping nothing), then head and online prefix; the cross-entropy covers the
 * session's classes only (docs/methods.md f.7). The online prefix is never re-initialised. Where
 * PILOT and the authors' code differ there is a switch (method.lae.ema_init, freeze_first,
 * head_init; defaults the authors'). Adam is created afresh every session, with the head and
 * the prefix counting their steps apart: a prefix tensor takes no step while it has no gradient
 * (torch's rule for a gradient of None, docs/methods.md f.8).
 *
 * Data parallelism as the prompt methods (prompt.h): each rank runs its rows; the features of
 * the global batch are gathered, the head's CE and gradient computed on every rank, and the
 * prefix gradient (one pet_params block) summed over the group. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "safecl/lae.h"
#include "safecl/prompt.h"
#include "safecl/tuning.h"

#define TAG_LAE_HEAD 1501u
#define TAG_LAE_PET 1502u

typedef struct lae {
  learn_method base;
  learn_method_cfg cfg;
  vit_model *backbone; /* shared, not owned */
  const dist_comm *comm;
  int64_t C, D, Bbuf;
  int pilot_ema, pilot_head;
  learn_prompt_params head; /* [W (C, D) | b (C)] with its Adam */
  pet_params *online, *offline;
  float *pet_m, *pet_v; /* the online prefix's Adam moments (pet_params layout) */
  int64_t pet_step;     /* its Adam steps since the session's reset */
  int64_t offline_live; /* 1 once the offline expert exists */
  vit_trainer *trainer;
  float *feat, *dfeat, *scratch;
} lae;

/* Whether epoch `epoch` of session t trains the head alone (docs/methods.md l.4). */
static int lae_frozen(const lae *l, const learn_session *s, int64_t epoch) {
  return epoch < l->cfg.lae_freeze_epochs && (s->t > 0 || l->cfg.lae_freeze_first);
}

/* theta_off <- decay theta_off + (1 - decay) theta_on over every float of the block, the scales
 * included: torch's two float products of the python scalars, then their sum. */
void learn_lae_ema(float *off, const float *on, int64_t n, double decay) {
  const float a = (float)decay, b = (float)(1.0 - decay);
  for (int64_t i = 0; i < n; i++) off[i] = a * off[i] + b * on[i];
}

/* pred[i] = argmax over [0, K) of max(softmax(on[i, :K]), softmax(off[i, :K])) (rows of width
 * C), ties to the lower class; off NULL: the online probabilities alone. */
void learn_lae_ensemble(int32_t *pred, const float *on, const float *off, int64_t n, int64_t C,
                        int64_t K) {
  for (int64_t i = 0; i < n; i++) {
    const float *rows[2] = {on + i * C, off ? off + i * C : NULL};
    double mx[2] = {-INFINITY, -INFINITY}, sum[2] = {0.0, 0.0};
    for (int e = 0; e < 2 && rows[e]; e++) {
      for (int64_t k = 0; k < K; k++) mx[e] = rows[e][k] > mx[e] ? rows[e][k] : mx[e];
      for (int64_t k = 0; k < K; k++) sum[e] += exp((double)rows[e][k] - mx[e]);
    }
    double best = -1.0;
    int32_t arg = 0;
    for (int64_t k = 0; k < K; k++) {
      double p = exp((double)rows[0][k] - mx[0]) / sum[0];
      if (rows[1]) {
        const double q = exp((double)rows[1][k] - mx[1]) / sum[1];
        p = q > p ? q : p;
      }
      if (p > best) best = p, arg = (int32_t)k;
    }
    pred[i] = arg;
  }
}

static learn_train_plan lae_train_plan(learn_method *m, const learn_session *s) {
  lae *l = (lae *)m;
  return (learn_train_plan){.epochs = s->t == 0 ? l->cfg.epochs_first : l->cfg.epochs_later,
                            .batch = l->cfg.batch,
                            .n_terms = 1,
                            .term_names = {"ce"}};
}

/* A fresh Adam for head and prefix (f.8); with the authors' EMA the offline expert is born at
 * the start of session 1 as a copy of the trained online one (l.3). A resumed session loads
 * its state over all of this. */
static scl_err lae_train_begin(learn_method *m, const learn_session *s, int64_t steps) {
  lae *l = (lae *)m;
  (void)steps;
  learn_prompt_adam_reset(&l->head);
  const size_t bytes = (size_t)l->online->count * sizeof(float);
  memset(l->pet_m, 0, bytes);
  memset(l->pet_v, 0, bytes);
  l->pet_step = 0;
  if (s->t > 0 && !l->offline_live) {
    SCL_CALL(pet_params_copy(l->offline, l->online));
    l->offline_live = 1;
  }
  return SCL_OK;
}

static scl_err lae_train_step(learn_method *m, const learn_session *s, const learn_batch *b,
                              double *losses) {
  lae *l = (lae *)m;
  const int64_t B = b->B, D = l->D;
  const int frozen = lae_frozen(l, s, b->epoch);
  SCL_CHECK(b->B_global <= l->Bbuf, SCL_ERR_INTERNAL, "LAE step of %lld images (buffers for %lld)",
            (long long)b->B_global, (long long)l->Bbuf);
  learn_prompt_zero_grad(&l->head);
  float *feat = l->feat + b->offset * D;
  if (B > 0 && frozen) /* head-only epoch: nothing in the ViT needs a gradient */
    SCL_CALL(vit_trainer_infer(l->trainer, l->online, b->images, B, feat));
  else if (B > 0)
    SCL_CALL(vit_trainer_forward(l->trainer, l->online, b->images, B, NULL, feat));
  double ce = 0.0;
  SCL_CALL(learn_prompt_head_step(l->comm, &l->head, b, l->feat, l->dfeat, l->scratch, s->class_lo,
                                  s->class_hi, &ce));
  const double lr = learn_tune_lr(&l->cfg, b->epoch);
  learn_prompt_adam_step(&l->head, lr, l->cfg.weight_decay);
  if (!frozen) {
    pet_params_zero_grad(l->online);
    if (B > 0) SCL_CALL(vit_trainer_backward(l->trainer, l->online, l->dfeat + b->offset * D, B));
    if (dist_comm_size(l->comm) > 1)
      SCL_CALL(dist_allreduce_f32(l->comm, l->online->grad, l->online->count, DIST_SUM));
    const learn_adam_cfg adam = {0.9, 0.999, 1e-8, 0};
    const learn_param_group all = {0, l->online->count, 1.0, l->cfg.weight_decay};
    l->pet_step++;
    learn_adam_step(l->online->param, l->pet_m, l->pet_v, l->online->grad, l->pet_step, lr, &adam,
                    &all, 1);
  }
  if (l->offline_live)
    learn_lae_ema(l->offline->param, l->online->param, l->online->count, l->cfg.lae_ema_decay);
  losses[0] = ce;
  return SCL_OK;
}

/* Logits (B, C) of one expert, in chunks of the buffers. */
static scl_err lae_logits(lae *l, const pet_params *p, const float *images, int64_t B, float *out) {
  const int64_t per = 3 * l->backbone->cfg.img_size * l->backbone->cfg.img_size;
  for (int64_t i = 0; i < B; i += l->Bbuf) {
    const int64_t n = B - i < l->Bbuf ? B - i : l->Bbuf;
    SCL_CALL(vit_trainer_infer(l->trainer, p, images + i * per, n, l->feat));
    learn_prompt_logits(out + i * l->C, &l->head, l->feat, n, 0, l->C);
  }
  return SCL_OK;
}

static scl_err lae_forward_online(void *ctx, const float *images, int64_t B, float *out) {
  return lae_logits(ctx, ((lae *)ctx)->online, images, B, out);
}
static scl_err lae_forward_offline(void *ctx, const float *images, int64_t B, float *out) {
  return lae_logits(ctx, ((lae *)ctx)->offline, images, B, out);
}

/* The two experts' logits, both predict-only; before the offline expert exists (the authors'
 * session 0) the online one alone. */
static int lae_networks(learn_method *m, const learn_session *s, learn_network *out) {
  lae *l = (lae *)m;
  (void)s;
  out[0] = (learn_network){
      .name = "online", .dim = l->C, .forward = lae_forward_online, .ctx = l, .predict_only = 1};
  if (!l->offline_live) return 1;
  out[1] = (learn_network){
      .name = "offline", .dim = l->C, .forward = lae_forward_offline, .ctx = l, .predict_only = 1};
  return 2;
}

/* Predictors: the ensemble (l.5), and each expert's argmax as diagnostics; without an offline
 * expert all three are the online expert's. */
static scl_err lae_predict(learn_method *m, const learn_session *s, const float *const *features,
                           int64_t n, int32_t *pred) {
  lae *l = (lae *)m;
  const float *off = l->offline_live ? features[1] : NULL;
  learn_lae_ensemble(pred, features[0], off, n, l->C, s->class_hi);
  learn_prompt_argmax(pred + n, features[0], n, l->C, s->class_hi);
  learn_prompt_argmax(pred + 2 * n, off ? off : features[0], n, l->C, s->class_hi);
  return SCL_OK;
}

static int lae_predictors(const learn_method *m, const char **names) {
  (void)m;
  names[0] = "lae";
  names[1] = "online";
  names[2] = "offline";
  return 3;
}

static int lae_state(learn_method *m, learn_state_entry *out) {
  lae *l = (lae *)m;
  const int64_t n = l->online->count;
  int k = learn_prompt_state(&l->head, out);
  out[k++] = (learn_state_entry){"lae_online", LEARN_F32, 1, {n, 0}, l->online->param};
  out[k++] = (learn_state_entry){"lae_offline", LEARN_F32, 1, {n, 0}, l->offline->param};
  out[k++] = (learn_state_entry){"lae_pet_adam_m", LEARN_F32, 1, {n, 0}, l->pet_m};
  out[k++] = (learn_state_entry){"lae_pet_adam_v", LEARN_F32, 1, {n, 0}, l->pet_v};
  out[k++] = (learn_state_entry){"lae_pet_adam_step", LEARN_I64, 1, {1, 0}, &l->pet_step};
  out[k++] = (learn_state_entry){"lae_offline_live", LEARN_I64, 1, {1, 0}, &l->offline_live};
  return k;
}

static void lae_destroy(learn_method **m) {
  if (!m || !*m) return;
  lae *l = (lae *)*m;
  vit_trainer_destroy(&l->trainer);
  learn_prompt_params_free(&l->head);
  pet_params_destroy(&l->online);
  pet_params_destroy(&l->offline);
  float *f[] = {l->pet_m, l->pet_v, l->feat, l->dfeat, l->scratch};
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) scl_free(f[i]);
  free(l);
  *m = NULL;
}

/* l.6: a head-only epoch costs one forward per training image, a prefix epoch the forward and
 * the backward down to block 0 (2.05 F); a test image one forward per expert. */
static learn_cost lae_cost(const learn_method_cfg *cfg, int t) {
  const int64_t epochs = t == 0 ? cfg->epochs_first : cfg->epochs_later;
  int64_t frozen = t > 0 || cfg->lae_freeze_first ? cfg->lae_freeze_epochs : 0;
  if (frozen > epochs) frozen = epochs;
  const int pilot = cfg->lae_ema_init && !strcmp(cfg->lae_ema_init, "pilot");
  return (learn_cost){.train_passes = (double)frozen + 2.05 * (double)(epochs - frozen),
                      .test_nets = t == 0 && !pilot ? 1 : 2};
}

static scl_err lae_create(const learn_context *ctx, learn_method **out);

const learn_method_ops learn_lae_ops = {
    .name = "lae",
    .label = "LAE",
    .category = "mixture",
    .cost_factor = 10.0,
    .create = lae_create,
    .cost = lae_cost,
    .train_plan = lae_train_plan,
    .train_begin = lae_train_begin,
    .train_step = lae_train_step,
    .train_epoch_end = learn_prompt_no_epoch_end,
    .train_end = learn_prompt_no_train_end,
    .networks = lae_networks,
    .fit = learn_prompt_no_fit,
    .predict = lae_predict,
    .predictors = lae_predictors,
    .state = lae_state,
    .destroy = lae_destroy,
};

/* l.1: the authors' N(0, 0.001^2) or PILOT's kaiming-uniform U(+-sqrt(3 / D)) weights, zero
 * bias; row k from the stream (seed, SCL_STREAM_INIT, TAG_LAE_HEAD, k), so a class's row does
 * not depend on C. */
static void lae_head_init(lae *l, uint64_t seed) {
  const int64_t D = l->D;
  const double bound = sqrt(3.0 / (double)D);
  for (int64_t k = 0; k < l->C; k++) {
    scl_rng rng;
    scl_rng_init(&rng, seed, SCL_STREAM_INIT, TAG_LAE_HEAD, (uint32_t)k);
    float *w = l->head.param + l->head.head_w + k * D;
    for (int64_t j = 0; j < D; j++)
      w[j] = l->pilot_head ? (float)(bound * (2.0 * scl_rng_uniform(&rng) - 1.0))
                           : (float)(0.001 * scl_rng_normal(&rng));
    l->head.param[l->head.head_b + k] = 0.0f;
  }
}

/* LAE's prefix (l.1, l.2): length, blocks [0, layers), after the class token, compensated,
 * scaled, drawn from U(0, 0.01). */
static pet_config lae_pet_config(const learn_method_cfg *c) {
  return (pet_config){
      .kinds = PET_PREFIX,
      .prefix_len = c->lae_length,
      .prefix_layers = c->lae_layers >= 32 ? 0xffffffffu : (1u << c->lae_layers) - 1u,
      .prefix_after_cls = 1,
      .prefix_compensate = 1,
      .prefix_scales = 1,
      .prefix_uniform = 1};
}

static scl_err lae_alloc(lae *l, int ranks) {
  const int64_t B = l->Bbuf, D = l->D;
  const pet_config pc = lae_pet_config(&l->cfg);
  SCL_CALL(learn_prompt_params_create(&l->head, l->C, D, 0, NULL, NULL));
  SCL_CALL(pet_params_create(&l->backbone->cfg, &pc, &l->online));
  SCL_CALL(pet_params_create(&l->backbone->cfg, &pc, &l->offline));
  struct {
    float **p;
    int64_t n;
    const char *what;
  } f[] = {{&l->pet_m, l->online->count, "LAE prefix Adam first moment"},
           {&l->pet_v, l->online->count, "LAE prefix Adam second moment"},
           {&l->feat, B * D, "LAE features"},
           {&l->dfeat, B * D, "LAE feature gradient"},
           {&l->scratch, learn_prompt_ce_scratch(B, l->C), "LAE logits"}};
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
    SCL_CALL(
        scl_calloc((size_t)(f[i].n > 0 ? f[i].n : 1) * sizeof(float), f[i].what, (void **)f[i].p));
  const int64_t shard = (l->cfg.batch + ranks - 1) / ranks; /* the most rows a rank trains */
  /* nothing of LAE runs the frozen model's own forward: its working set is lent (pet.h) */
  SCL_CALL(vit_trainer_create_lending(l->backbone, &pc, shard, 0, &l->trainer));
  return SCL_OK;
}

static scl_err lae_create(const learn_context *ctx, learn_method **out) {
  const learn_method_cfg *c = ctx->cfg;
  SCL_CHECK(!strcmp(c->optimizer, "adam"), SCL_ERR_ARG,
            "method lae: train.optimizer = \"%s\", LAE trains with \"adam\"", c->optimizer);
  SCL_CHECK(c->lae_layers <= ctx->backbone->cfg.depth, SCL_ERR_ARG,
            "method lae: method.lae.layers = %lld exceeds the backbone's %lld blocks",
            (long long)c->lae_layers, (long long)ctx->backbone->cfg.depth);
  lae *l = calloc(1, sizeof *l);
  SCL_CHECK(l, SCL_ERR_NOMEM, "lae");
  l->base.ops = &learn_lae_ops;
  l->cfg = *c;
  l->backbone = ctx->backbone;
  l->comm = ctx->comm ? ctx->comm : dist_comm_self();
  l->C = ctx->n_classes;
  l->D = ctx->backbone->cfg.width;
  l->Bbuf = c->batch;
  l->pilot_ema = c->lae_ema_init && !strcmp(c->lae_ema_init, "pilot"); /* NULL: the authors' */
  l->pilot_head = c->lae_head_init && !strcmp(c->lae_head_init, "pilot");
  learn_method *m = &l->base;
  scl_err err = lae_alloc(l, dist_comm_size(l->comm));
  if (err) {
    lae_destroy(&m);
    return SCL_TRACE(err);
  }
  pet_params_init(l->online, ctx->seed, TAG_LAE_PET);
  lae_head_init(l, ctx->seed);
  if (l->pilot_ema) { /* PILOT: the offline expert is the untrained online one, EMA from step 1 */
    err = pet_params_copy(l->offline, l->online);
    if (err) {
      lae_destroy(&m);
      return SCL_TRACE(err);
    }
    l->offline_live = 1;
  }
  *out = m;
  return SCL_OK;
}
