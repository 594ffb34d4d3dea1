/* slca.c: SLCA, "Slow Learner with Classifier Alignment" (Zhang et al., ICCV 2023; PILOT
 * models/slca.py and the authors' GengDavid/SLCA; docs/methods.md k). Every backbone tensor trains
 * (PET_FULL: the learner's own copy of the backbone, with the authors' fresh final LayerNorm by
 * default) at a learning rate 100 times below the heads', one linear head per session trained
 * with the CE of its own classes. After a session's training the method fits each new class's
 * feature mean and covariance with the fine-tuned backbone (old classes keep the statistics of
 * their own session) and, from session 2 on, aligns a copy of all seen heads on Gaussian samples
 * of every seen class (slca_align.c); predictions use the aligned copy, the next session trains
 * the raw heads again (the reference backs the heads up before the alignment and restores them
 * after evaluation; keeping the two apart is the same thing).
 *
 * A training step runs this rank's rows in chunks of SLCA_CHUNK images (forward, the chunk's
 * share of the batch CE, backward): an image's CE gradient depends on that image alone, so the
 * chunked step is the whole-batch step, and the activations kept for the full backward are bounded
 * by the chunk instead of the batch of 128. The backbone's gradient is summed over the group with
 * one allreduce of the copy's contiguous gradient, the heads' with a second, small one. What this
 * file does not do: any ViT work outside the trainer (the frozen backbone's own forward is never
 * called, so the trainer borrows its working set), and domain-incremental runs (every session's
 * classes would be new and old at once; refused at create). */
#include <stdlib.h>
#include <string.h>

#include "safecl/learn.h"
#include "safecl/prompt.h"
#include "safecl/slca.h"

#define TAG_SLCA_HEAD 1501u
/* Images of one forward/backward of a training step; the trainer's activations scale with it. */
#define SLCA_CHUNK 16

typedef struct slca {
  learn_method base;
  learn_method_cfg cfg;
  vit_model *backbone; /* shared, not owned */
  const dist_comm *comm;
  uint64_t seed;
  int64_t C, D, chunk;
  pet_params *full;         /* the backbone copy and its gradient */
  float *full_buf;          /* its SGD momentum */
  learn_prompt_params head; /* raw heads [W | b]; head.m is their SGD momentum (head.v unused) */
  float *aligned;           /* the heads after the alignment of the last fitted session */
  learn_slca_stats stats;
  int64_t *bounds; /* (C + 1): session t's classes are [bounds[t], bounds[t + 1]) */
  vit_trainer *trainer;
  float *feat, *dfeat, *scratch;
} slca;

static learn_train_plan slca_train_plan(learn_method *m, const learn_session *s) {
  slca *l = (slca *)m;
  return (learn_train_plan){.epochs = s->t == 0 ? l->cfg.epochs_first : l->cfg.epochs_later,
                            .batch = l->cfg.batch,
                            .n_terms = 1,
                            .term_names = {"ce"}};
}

/* A fresh optimizer every session (docs/methods.md k.2): the first step sets the momentum. */
static scl_err slca_train_begin(learn_method *m, const learn_session *s, int64_t steps) {
  slca *l = (slca *)m;
  (void)s, (void)steps;
  memset(l->full_buf, 0, (size_t)l->full->count * sizeof(float));
  memset(l->head.m, 0, (size_t)l->head.count * sizeof(float));
  return SCL_OK;
}

/* MultiStepLR with one milestone, stepped per epoch (docs/methods.md k.2). */
static double slca_lr(const learn_method_cfg *cfg, int64_t epoch) {
  return cfg->slca_milestone > 0 && epoch >= cfg->slca_milestone ? cfg->lr * 0.1 : cfg->lr;
}

static scl_err slca_train_step(learn_method *m, const learn_session *s, const learn_batch *b,
                               double *losses) {
  slca *l = (slca *)m;
  const int64_t D = l->D, per = 3 * l->backbone->cfg.img_size * l->backbone->cfg.img_size;
  pet_params_zero_grad(l->full);
  learn_prompt_zero_grad(&l->head);
  double ce = 0.0;
  for (int64_t r = 0; r < b->B; r += l->chunk) {
    const int64_t n = b->B - r < l->chunk ? b->B - r : l->chunk;
    SCL_CALL(vit_trainer_forward(l->trainer, l->full, b->images + r * per, n, NULL, l->feat));
    memset(l->dfeat, 0, (size_t)(n * D) * sizeof(float));
    ce += (double)n * learn_prompt_ce(&l->head, l->dfeat, l->scratch, l->feat, b->labels + r, n,
                                      s->class_lo, s->class_hi, (double)n / (double)b->B_global);
    SCL_CALL(vit_trainer_backward(l->trainer, l->full, l->dfeat, n));
  }
  if (dist_comm_size(l->comm) > 1) {
    SCL_CALL(dist_allreduce_f64(l->comm, &ce, 1, DIST_SUM));
    SCL_CALL(dist_allreduce_f32(l->comm, l->head.grad, l->head.count, DIST_SUM));
    SCL_CALL(dist_allreduce_f32(l->comm, l->full->grad, l->full->count, DIST_SUM));
  }
  /* SGD, weight decay added to the gradient, in two groups: the backbone at lr x bcb_lrscale,
   * the session's head rows at lr; earlier heads are frozen (not in any group) */
  const learn_sgd_cfg sgd = {l->cfg.momentum, 0.0, 0};
  const double lr = slca_lr(&l->cfg, b->epoch), wd = l->cfg.weight_decay;
  const int64_t lo = s->class_lo, k = s->class_hi - s->class_lo;
  const learn_param_group bb = {l->full->layout.full, l->full->count - l->full->layout.full,
                                l->cfg.slca_bcb_lrscale, wd};
  const learn_param_group hg[2] = {{lo * D, k * D, 1.0, wd}, {l->head.head_b + lo, k, 1.0, wd}};
  learn_sgd_step(l->full->param, l->full_buf, l->full->grad, b->step, lr, &sgd, &bb, 1);
  learn_sgd_step(l->head.param, l->head.m, l->head.grad, b->step, lr, &sgd, hg, 2);
  losses[0] = ce / (double)b->B_global;
  return SCL_OK;
}

static scl_err slca_no_epoch_end(learn_method *m, const learn_session *s, int64_t epoch) {
  (void)m, (void)s, (void)epoch;
  return SCL_OK;
}

static scl_err slca_no_train_end(learn_method *m, const learn_session *s) {
  (void)m, (void)s;
  return SCL_OK;
}

/* The fine-tuned backbone's class token (after the final LayerNorm). */
static scl_err slca_forward(void *ctx, const float *images, int64_t B, float *out) {
  slca *l = ctx;
  SCL_CALL(vit_trainer_infer(l->trainer, l->full, images, B, out));
  return SCL_OK;
}

static int slca_networks(learn_method *m, const learn_session *s, learn_network *out) {
  (void)s;
  out[0] =
      (learn_network){.name = "slca", .dim = ((slca *)m)->D, .forward = slca_forward, .ctx = m};
  return 1;
}

/* Statistics of the new classes (k.3), then the alignment of a copy of the heads (k.4). */
static scl_err slca_fit(learn_method *m, const learn_session *s, const float *const *features,
                        const int32_t *labels, const int64_t *pos, int64_t n) {
  slca *l = (slca *)m;
  (void)pos; /* moments are sums: the order of the rows does not matter */
  SCL_CHECK(s->t < l->C && l->bounds[s->t] == s->class_lo, SCL_ERR_INTERNAL,
            "SLCA: session %d starts at class %lld, the previous one ended at %lld", s->t + 1,
            (long long)s->class_lo, (long long)l->bounds[s->t]);
  SCL_CALL(learn_slca_stats_fit(&l->stats, l->comm, features[0], labels, n, s->class_lo,
                                s->class_hi, s->t));
  l->bounds[s->t + 1] = s->class_hi;
  memcpy(l->aligned, l->head.param, (size_t)l->head.count * sizeof(float));
  if (s->t == 0 || l->cfg.slca_ca_epochs == 0) return SCL_OK;
  const learn_slca_align_cfg ca = {l->cfg.slca_ca_epochs,
                                   l->cfg.slca_ca_samples,
                                   l->cfg.slca_ca_lr,
                                   l->cfg.momentum,
                                   l->cfg.weight_decay,
                                   l->cfg.slca_logit_tau,
                                   l->seed};
  learn_slca_align_log log;
  SCL_CALL(
      learn_slca_align(l->aligned, l->C, l->D, &l->stats, l->bounds, s->t, &ca, l->comm, &log));
  SCL_INFO("session %d: classifier alignment, %lld mini-batches, last epoch's CE %.4f", s->t + 1,
           (long long)log.batches, log.epoch_loss[(ca.epochs < 64 ? ca.epochs : 64) - 1]);
  return SCL_OK;
}

static scl_err slca_predict(learn_method *m, const learn_session *s, const float *const *features,
                            int64_t n, int32_t *pred) {
  slca *l = (slca *)m;
  const int64_t K = s->class_hi;
  float *logits = NULL;
  SCL_CALL(scl_alloc((size_t)((n ? n : 1) * K) * sizeof(float), "SLCA logits", (void **)&logits));
  learn_prompt_params view = l->head;
  view.param = l->aligned;
  learn_prompt_logits(logits, &view, features[0], n, 0, K);
  learn_prompt_argmax(pred, logits, n, K, K);
  scl_free(logits);
  return SCL_OK;
}

static int slca_predictors(const learn_method *m, const char **names) {
  (void)m;
  names[0] = "slca";
  return 1;
}

static int slca_state(learn_method *m, learn_state_entry *out) {
  slca *l = (slca *)m;
  const int64_t P = l->full->count, H = l->head.count, C = l->C, D = l->D;
  out[0] = (learn_state_entry){"slca_backbone", LEARN_F32, 1, {P, 0}, l->full->param};
  out[1] = (learn_state_entry){"slca_backbone_momentum", LEARN_F32, 1, {P, 0}, l->full_buf};
  out[2] = (learn_state_entry){"slca_head", LEARN_F32, 1, {H, 0}, l->head.param};
  out[3] = (learn_state_entry){"slca_head_momentum", LEARN_F32, 1, {H, 0}, l->head.m};
  out[4] = (learn_state_entry){"slca_head_aligned", LEARN_F32, 1, {H, 0}, l->aligned};
  out[5] = (learn_state_entry){"slca_class_mean", LEARN_F32, 2, {C, D}, l->stats.mean};
  out[6] = (learn_state_entry){"slca_class_cov", LEARN_F32, 2, {C, D * D}, l->stats.cov};
  out[7] = (learn_state_entry){"slca_class_session", LEARN_I64, 1, {C, 0}, l->stats.session};
  out[8] = (learn_state_entry){"slca_session_bounds", LEARN_I64, 1, {C + 1, 0}, l->bounds};
  return 9;
}

static void slca_destroy(learn_method **m) {
  if (!m || !*m) return;
  slca *l = (slca *)*m;
  vit_trainer_destroy(&l->trainer);
  pet_params_destroy(&l->full);
  learn_prompt_params_free(&l->head);
  learn_slca_stats_free(&l->stats);
  float *f[] = {l->full_buf, l->aligned, l->feat, l->dfeat, l->scratch};
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) scl_free(f[i]);
  scl_free(l->bounds);
  free(l);
  *m = NULL;
}

/* k.6: a forward and a full backward (weight gradients of every tensor, 2 F) per training image
 * and epoch; one network for the statistics pass and the test images. The alignment does no ViT
 * work. */
static learn_cost slca_cost(const learn_method_cfg *cfg, int t) {
  const int64_t epochs = t == 0 ? cfg->epochs_first : cfg->epochs_later;
  return (learn_cost){.train_passes = 3.0 * (double)epochs, .feature_nets = 1};
}

static scl_err slca_create(const learn_context *ctx, learn_method **out);

/* The class statistics of every class, the backbone copy with its gradient and momentum, and the
 * heads (raw, gradient, momentum, aligned copy), as slca_alloc sizes them. */
static double slca_state_bytes(const learn_method_cfg *cfg, const vit_config *vc, int64_t n_classes,
                               int n_sessions) {
  (void)cfg, (void)n_sessions;
  return learn_slca_stats_bytes(n_classes, vc->width) +
         4.0 * (3.0 * (double)vit_config_param_count(vc) +
                4.0 * (double)n_classes * (double)(vc->width + 1));
}

const learn_method_ops learn_slca_ops = {
    .name = "slca",
    .label = "SLCA",
    .category = "representation",
    .cost_factor = 62.0,
    .create = slca_create,
    .cost = slca_cost,
    .state_bytes = slca_state_bytes,
    .train_plan = slca_train_plan,
    .train_begin = slca_train_begin,
    .train_step = slca_train_step,
    .train_epoch_end = slca_no_epoch_end,
    .train_end = slca_no_train_end,
    .networks = slca_networks,
    .fit = slca_fit,
    .predict = slca_predict,
    .predictors = slca_predictors,
    .state = slca_state,
    .destroy = slca_destroy,
};

/* The backbone copy with the authors' fresh final LayerNorm (gamma 1, beta 0; k.1) if asked. */
static scl_err slca_init_backbone(slca *l) {
  SCL_CALL(pet_params_copy_backbone(l->full, l->backbone));
  if (!l->cfg.slca_fresh_norm) return SCL_OK;
  const pet_tensor *w = pet_params_find(l->full, "backbone.norm.weight");
  const pet_tensor *b = pet_params_find(l->full, "backbone.norm.bias");
  SCL_CHECK(w && b, SCL_ERR_INTERNAL, "SLCA: the backbone copy has no backbone.norm.weight/bias");
  for (int64_t i = 0; i < w->numel; i++) l->full->param[w->offset + i] = 1.0f;
  memset(l->full->param + b->offset, 0, (size_t)b->numel * sizeof(float));
  return SCL_OK;
}

static scl_err slca_alloc(slca *l, int ranks) {
  const int64_t D = l->D, shard = (l->cfg.batch + ranks - 1) / ranks;
  l->chunk = shard < SLCA_CHUNK ? shard : SLCA_CHUNK;
  pet_config pc = {.kinds = PET_FULL};
  SCL_CALL(pet_params_create(&l->backbone->cfg, &pc, &l->full));
  SCL_CALL(scl_calloc((size_t)l->full->count * sizeof(float), "SLCA backbone momentum",
                      (void **)&l->full_buf));
  SCL_CALL(learn_prompt_params_create(&l->head, l->C, D, 0, NULL, NULL));
  SCL_CALL(scl_calloc((size_t)l->head.count * sizeof(float), "SLCA aligned heads",
                      (void **)&l->aligned));
  SCL_CALL(learn_slca_stats_create(&l->stats, l->C, D));
  SCL_CALL(
      scl_calloc((size_t)(l->C + 1) * sizeof(int64_t), "SLCA session bounds", (void **)&l->bounds));
  SCL_CALL(scl_alloc((size_t)(l->chunk * D) * sizeof(float), "SLCA features", (void **)&l->feat));
  SCL_CALL(scl_alloc((size_t)(l->chunk * D) * sizeof(float), "SLCA feature gradient",
                     (void **)&l->dfeat));
  SCL_CALL(scl_alloc((size_t)learn_prompt_ce_scratch(l->chunk, l->C) * sizeof(float), "SLCA logits",
                     (void **)&l->scratch));
  /* the frozen model's forward never runs: the trainer takes its working set (pet.h) */
  SCL_CALL(vit_trainer_create_lending(l->backbone, &pc, l->chunk, 0, &l->trainer));
  return SCL_OK;
}

static scl_err slca_create(const learn_context *ctx, learn_method **out) {
  const learn_method_cfg *c = ctx->cfg;
  SCL_CHECK(!strcmp(c->optimizer, "sgd"), SCL_ERR_ARG,
            "method slca: train.optimizer = \"%s\", SLCA trains with \"sgd\"", c->optimizer);
  SCL_CHECK(!ctx->domain_incremental, SCL_ERR_ARG,
            "method slca: a domain-incremental benchmark (every session holds every class) has no "
            "new classes for SLCA's statistics; SLCA is class-incremental");
  slca *l = calloc(1, sizeof *l);
  SCL_CHECK(l, SCL_ERR_NOMEM, "slca");
  l->base.ops = &learn_slca_ops;
  l->cfg = *c;
  l->backbone = ctx->backbone;
  l->comm = ctx->comm ? ctx->comm : dist_comm_self();
  l->seed = ctx->seed;
  l->C = ctx->n_classes;
  l->D = ctx->backbone->cfg.width;
  learn_method *m = &l->base;
  scl_err err = slca_alloc(l, dist_comm_size(l->comm));
  if (!err) err = slca_init_backbone(l);
  if (err) {
    slca_destroy(&m);
    return SCL_TRACE(err);
  }
  /* k.1: per-session heads trunc-normal(0.02) (torch's absolute bounds +-2 never bind), bias 0 */
  learn_prompt_head_init_rows(&l->head, LEARN_PROMPT_HEAD_TIMM, ctx->seed, TAG_SLCA_HEAD);
  memcpy(l->aligned, l->head.param, (size_t)l->head.count * sizeof(float));
  SCL_INFO(
      "slca: class statistics of %lld classes take %.1f MB (resident as classes are fitted), "
      "the backbone copy, its gradient and momentum %.1f MB",
      (long long)l->C, learn_slca_stats_bytes(l->C, l->D) / 1048576.0,
      3.0 * 4.0 * (double)l->full->count / 1048576.0);
  *out = m;
  return SCL_OK;
}
