/* ease.c: EASE, "Expandable Subspace Ensemble" (Zhou et al., CVPR 2024), as PILOT and the authors'
 * code compute it (docs/methods.md j): every session trains a fresh AdaptFormer adapter set with
 * a fresh proxy cosine head on CE over the session's own classes, then freezes the set into a bank;
 * the features are the class tokens of one ViT forward per set (and of the plain pre-trained model
 * with method.ease.use_init_ptm), concatenated. The prototype classifier, its complement for old
 * classes and the reweighted logits are in ease_classifier.c.
 *
 * Memory is sized for the whole trial at create (docs/conventions.md 7): one adapter set per
 * session of the trial (learn_context.n_sessions) in one bank array, and the prototype matrix of
 * every class over every subspace. A set trains in its own pet_params block (with its gradient and
 * SGD momentum) and is copied into its bank slot at the end of the session; the bank's slots are
 * read through views of that block's layout, so frozen sets carry no gradient array. The network
 * is not frozen (its width grows each session), so the runner passes every test image through
 * all sets every session, as the reference does. The OmniBenchmark configuration (j.6,
 * method.ease.moni_adam) trains set 0 only and reads the pre-trained model and set 0. */
#include <stdlib.h>
#include <string.h>

#include "ease_internal.h"
#include "safecl/tuning.h"

#define TAG_EASE_SET 1401u  /* + session: each session's fresh adapter set */
#define TAG_EASE_HEAD 1601u /* + session: each session's fresh proxy head */

typedef struct ease {
  learn_method base;
  learn_method_cfg cfg;
  vit_model *backbone; /* shared, not owned */
  const dist_comm *comm;
  uint64_t seed;
  int64_t C, D, B;
  int T;       /* sessions the storage holds */
  int ptm;     /* 1: block 0 of the features is the pre-trained model */
  int moni;    /* j.6: only set 0 trains and is read */
  int64_t nbw; /* blocks of a prototype row (the most any session uses) */
  pet_config pc;
  pet_params *set; /* the training set (param, grad) and the layout every bank slot shares */
  float *momentum; /* its SGD buffer */
  float *bank;     /* (slots, set->count): frozen sets */
  int64_t slots;
  int64_t ready[1]; /* bank slots holding a set (state) */
  int64_t *starts;  /* (T + 1) session boundaries, written at fit (state) */
  float *W;         /* (C, nbw D) prototypes */
  learn_head head;  /* the proxy head: rows [0, n_t) and sigma */
  learn_step_buffers w;
  vit_trainer *trainer;
  int64_t epochs; /* the schedule's T_max: epochs of the session being trained */
  int net_t;      /* the session the network was last handed out for */
  float *chunk;   /* (Bc, D) one subspace's features of a chunk of images */
  int64_t Bc;
} ease;

/* The pre-trained model is a subspace (the released code forces it with moni_adam). */
static int ease_ptm(const learn_method_cfg *c) { return c->ease_use_init_ptm || c->ease_moni_adam; }

/* Adapter sets the bank holds for a trial of T sessions (one with moni_adam, j.6). */
static int64_t ease_slots(const learn_method_cfg *c, int T) { return c->ease_moni_adam ? 1 : T; }

/* Blocks of the features at session t: every set so far (set 0 only with moni_adam), plus the
 * pre-trained model. The one rule for the network, the prototypes, the plan and the sizes. */
static int64_t ease_blocks(const learn_method_cfg *c, int t) {
  return (c->ease_moni_adam ? 1 : t + 1) + ease_ptm(c);
}

static int64_t blocks_at(const ease *e, int t) { return ease_blocks(&e->cfg, t); }

static scl_err check_session(const ease *e, int t) {
  SCL_CHECK(t < e->T, SCL_ERR_ARG,
            "method ease: session %d, but the adapter bank and prototypes were sized at create "
            "for %d session(s) (learn_context.n_sessions)",
            t + 1, e->T);
  return SCL_OK;
}

/* A view of bank slot j through the training set's layout (shared, not owned; no gradient). */
static pet_params slot_view(const ease *e, int64_t j) {
  pet_params v = *e->set;
  v.param = e->bank + j * e->set->count;
  v.grad = NULL;
  return v;
}

/* Bank slot t holds a set: a session that trained no epochs keeps its fresh set (the LoRA init,
 * whose adapters add exactly zero: the pre-trained model's features). Idempotent. */
static void fill_slot(ease *e, int t) {
  if (e->ready[0] > t || t >= e->slots) return;
  pet_params_init(e->set, e->seed, TAG_EASE_SET + (uint32_t)t);
  memcpy(e->bank + (int64_t)t * e->set->count, e->set->param,
         (size_t)e->set->count * sizeof(float));
  e->ready[0] = t + 1;
}

static learn_train_plan ease_train_plan(learn_method *m, const learn_session *s) {
  ease *e = (ease *)m;
  learn_train_plan p = {.batch = e->cfg.batch, .n_terms = 1, .term_names = {"ce"}};
  p.epochs = s->t == 0 ? e->cfg.epochs_first : e->cfg.epochs_later;
  if (e->moni && s->t > 0) p.epochs = 0; /* j.6: later sessions return before training */
  return p;
}

static scl_err ease_train_begin(learn_method *m, const learn_session *s, int64_t steps) {
  ease *e = (ease *)m;
  (void)steps;
  SCL_CALL(check_session(e, s->t));
  const int64_t CD = e->C * e->D, k = s->class_hi - s->class_lo;
  e->epochs = ease_train_plan(m, s).epochs;
  pet_params_init(e->set, e->seed, TAG_EASE_SET + (uint32_t)s->t);
  memset(e->momentum, 0, (size_t)e->set->count * sizeof(float));
  memset(e->head.p, 0, (size_t)(CD + 1) * sizeof(float));
  memset(e->head.buf, 0, (size_t)(CD + 1) * sizeof(float));
  /* j.1: W ~ U(+-1/sqrt(D)), sigma = 1, fresh every session */
  learn_cosine_init(e->head.p, learn_head_sigma(&e->head), k, e->D, e->seed,
                    TAG_EASE_HEAD + (uint32_t)s->t, 1.0f);
  return SCL_OK;
}

/* j.2-j.3: the current set alone (dropout on), proxy head over the session's classes, CE with the
 * labels offset by K_old; SGD over the set and the head's rows [0, n_t) and sigma. On a group
 * every rank forwards its rows, the loss and the head gradient come from the gathered batch, and
 * the set's gradient is summed (tuning.h). */
static scl_err ease_train_step(learn_method *m, const learn_session *s, const learn_batch *b,
                               double *losses) {
  ease *e = (ease *)m;
  learn_step_buffers *w = &e->w;
  const int64_t B = b->B_global, D = e->D, CD = e->C * D, k = s->class_hi - s->class_lo;
  SCL_CHECK(B <= e->B, SCL_ERR_INTERNAL, "EASE step of %lld images (buffers for %lld)",
            (long long)B, (long long)e->B);
  vit_dropout_key key = {e->seed, ((uint32_t)s->t << 20) + (uint32_t)b->step, 0, b->index};
  float *h = e->head.p, *g = e->head.grad;
  learn_cosine_cache cache = learn_cosine_cache_bind(w->cos_mem, B, k, D);
  pet_params_zero_grad(e->set);
  memset(g, 0, (size_t)(CD + 1) * sizeof(float));
  SCL_CALL(learn_tune_forward(e->comm, e->trainer, e->set, b, &key, D, w->phi));
  learn_cosine_forward(w->logits, &cache, w->phi, h, h + CD, B, k, D);
  memset(w->dlogits, 0, (size_t)(B * k) * sizeof(float));
  losses[0] = learn_ce_loss_range(w->dlogits, w->logits, b->labels_all, s->class_lo, B, k, 1.0);
  SCL_CHECK(losses[0] == losses[0], SCL_ERR_ARG,
            "EASE: a training label outside the session's classes [%lld, %lld)",
            (long long)s->class_lo, (long long)s->class_hi);
  memset(w->dphi, 0, (size_t)(B * D) * sizeof(float));
  learn_cosine_backward(w->dphi, g, g + CD, w->scratch, w->dlogits, w->phi, h, h + CD, &cache, B, k,
                        D);
  SCL_CALL(learn_tune_backward(e->trainer, e->set, w->dphi, D, b));
  SCL_CALL(learn_tune_sync(e->comm, e->set));
  learn_method_cfg sched = e->cfg;
  sched.t_max = e->epochs; /* CosineAnnealingLR(T_max = epochs, eta_min = train.min_lr) */
  learn_tune_sgd(&sched, e->set, e->momentum, &e->head, k, b->epoch, b->step);
  return SCL_OK;
}

static scl_err ease_train_epoch_end(learn_method *m, const learn_session *s, int64_t epoch) {
  (void)m, (void)s, (void)epoch; /* the schedule is a pure function of the epoch */
  return SCL_OK;
}

/* The trained set freezes into its bank slot (after_task: add_adapter_to_list). */
static scl_err ease_train_end(learn_method *m, const learn_session *s) {
  ease *e = (ease *)m;
  SCL_CALL(check_session(e, s->t));
  if (s->t >= e->slots) return SCL_OK;
  memcpy(e->bank + (int64_t)s->t * e->set->count, e->set->param,
         (size_t)e->set->count * sizeof(float));
  e->ready[0] = s->t + 1;
  return SCL_OK;
}

/* The concatenated features of session net_t (j.5): the pre-trained model, then set 0, 1, ...,
 * one inference forward each, in chunks of Bc images. */
static scl_err ease_forward(void *ctx, const float *images, int64_t B, float *out) {
  ease *e = ctx;
  SCL_CALL(check_session(e, e->net_t));
  const int64_t D = e->D, nb = blocks_at(e, e->net_t),
                per = e->backbone->cfg.in_chans * e->backbone->cfg.img_size *
                      e->backbone->cfg.img_size;
  for (int64_t i = 0; i < B; i += e->Bc) {
    const int64_t n = B - i < e->Bc ? B - i : e->Bc;
    for (int64_t j = 0; j < nb; j++) {
      const int pre = e->ptm && j == 0; /* the pre-trained model */
      const pet_params v = slot_view(e, pre ? 0 : j - e->ptm);
      SCL_CALL(vit_trainer_infer(e->trainer, pre ? NULL : &v, images + i * per, n, e->chunk));
      for (int64_t r = 0; r < n; r++)
        memcpy(out + ((i + r) * nb + j) * D, e->chunk + r * D, (size_t)D * sizeof(float));
    }
  }
  return SCL_OK;
}

static int ease_networks(learn_method *m, const learn_session *s, learn_network *out) {
  ease *e = (ease *)m;
  e->net_t = s->t;
  if (s->t < e->T) fill_slot(e, e->moni ? 0 : s->t);
  const int t = s->t < e->T ? s->t : e->T - 1; /* the forward refuses a session past T */
  out[0] = (learn_network){.name = "ease",
                           .dim = blocks_at(e, t) * e->D,
                           .frozen = 0,
                           .forward = ease_forward,
                           .ctx = e};
  return 1;
}

/* j.4, collective: new classes' means in every subspace the features hold, then the complement
 * of every old class in every newer subspace, recomputed from the real prototypes. */
static scl_err ease_fit(learn_method *m, const learn_session *s, const float *const *features,
                        const int32_t *labels, const int64_t *pos, int64_t n) {
  ease *e = (ease *)m;
  (void)pos; /* means are sums: the order of the rows does not matter */
  SCL_CALL(check_session(e, s->t));
  SCL_CHECK(s->t == 0 || e->starts[s->t] == s->class_lo, SCL_ERR_INTERNAL,
            "EASE: session %d starts at class %lld, the previous one ended at %lld", s->t + 1,
            (long long)s->class_lo, (long long)e->starts[s->t]);
  e->starts[s->t] = s->class_lo;
  e->starts[s->t + 1] = s->class_hi;
  const int64_t width = blocks_at(e, s->t) * e->D;
  SCL_CALL(learn_ease_means(e->W, e->nbw * e->D, features[0], labels, n, width, s->class_lo,
                            s->class_hi, e->comm));
  if (!e->moni) /* j.6: no complement */
    SCL_CALL(learn_ease_complement(e->W, e->nbw * e->D, e->starts, s->t, e->ptm, e->D));
  return SCL_OK;
}

static scl_err ease_predict(learn_method *m, const learn_session *s, const float *const *features,
                            int64_t n, int32_t *pred) {
  ease *e = (ease *)m;
  SCL_CALL(check_session(e, s->t));
  const int64_t K = s->class_hi;
  float *z = NULL;
  SCL_CALL(scl_alloc((size_t)((n ? n : 1) * K) * sizeof(float), "EASE logits", (void **)&z));
  const int reweight = e->cfg.ease_reweight && !e->moni;
  scl_err err =
      learn_ease_logits(z, features[0], n, e->W, e->nbw * e->D, e->starts, s->t, e->ptm,
                        blocks_at(e, s->t), e->D, reweight, e->cfg.ease_alpha, e->cfg.ease_beta);
  for (int64_t i = 0; !err && i < n; i++) {
    int64_t best = 0;
    for (int64_t c = 1; c < K; c++)
      if (z[i * K + c] > z[i * K + best]) best = c;
    pred[i] = (int32_t)best;
  }
  scl_free(z);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}

static int ease_predictors(const learn_method *m, const char **names) {
  (void)m;
  names[0] = "ease";
  return 1;
}

static int ease_state(learn_method *m, learn_state_entry *out) {
  ease *e = (ease *)m;
  const int64_t P = e->set->count, H = e->C * e->D + 1;
  int n = 0;
  out[n++] = (learn_state_entry){"ease_bank", LEARN_F32, 2, {e->slots, P}, e->bank};
  out[n++] = (learn_state_entry){"ease_bank_ready", LEARN_I64, 1, {1, 0}, e->ready};
  out[n++] = (learn_state_entry){"ease_adapter", LEARN_F32, 1, {P, 0}, e->set->param};
  out[n++] = (learn_state_entry){"ease_adapter_momentum", LEARN_F32, 1, {P, 0}, e->momentum};
  out[n++] = (learn_state_entry){"ease_proxy_head", LEARN_F32, 1, {H, 0}, e->head.p};
  out[n++] = (learn_state_entry){"ease_proxy_head_momentum", LEARN_F32, 1, {H, 0}, e->head.buf};
  out[n++] = (learn_state_entry){"ease_prototypes", LEARN_F32, 2, {e->C, e->nbw * e->D}, e->W};
  out[n++] = (learn_state_entry){"ease_session_starts", LEARN_I64, 1, {e->T + 1, 0}, e->starts};
  return n;
}

static void ease_destroy(learn_method **m) {
  if (!m || !*m) return;
  ease *e = (ease *)*m;
  vit_trainer_destroy(&e->trainer);
  pet_params_destroy(&e->set);
  scl_free(e->momentum);
  scl_free(e->bank);
  scl_free(e->starts);
  scl_free(e->W);
  scl_free(e->chunk);
  learn_head_free(&e->head);
  learn_step_buffers_free(&e->w);
  free(e);
  *m = NULL;
}

/* j.7: the adapter set's forward and backward, 2.05 F per training image and epoch; every
 * training image (prototypes) and every test image pass through each subspace. */
static learn_cost ease_cost(const learn_method_cfg *cfg, int t) {
  const int64_t epochs =
      cfg->ease_moni_adam && t > 0 ? 0 : (t == 0 ? cfg->epochs_first : cfg->epochs_later);
  return (learn_cost){.train_passes = 2.05 * (double)epochs,
                      .feature_nets = (int)ease_blocks(cfg, t)};
}

static scl_err ease_create(const learn_context *ctx, learn_method **out);

/* The bank (one adapter set per session; one with moni_adam), the set in training with its
 * gradient and momentum, and the prototypes (one block per subspace), as ease_alloc sizes them. */
static double ease_state_bytes(const learn_method_cfg *cfg, const vit_config *vc, int64_t n_classes,
                               int n_sessions) {
  pet_config pc;
  pet_layout lay;
  if (learn_pet_config(cfg, &pc) != SCL_OK || pet_layout_create(vc, &pc, &lay) != SCL_OK) {
    char msg[256]; /* a config create refuses: create reports it; the plan prints no state */
    (void)scl_error_take(msg, sizeof msg);
    return 0.0;
  }
  const double P = (double)lay.count;
  pet_layout_destroy(&lay);
  const int T = n_sessions > 0 ? n_sessions : 1;
  return 4.0 * ((double)(ease_slots(cfg, T) + 3) * P +
                (double)n_classes * (double)ease_blocks(cfg, T - 1) * (double)vc->width);
}

const learn_method_ops learn_ease_ops = {
    .name = "ease",
    .label = "EASE",
    .category = "mixture",
    .cost_factor = 30.0,
    .create = ease_create,
    .cost = ease_cost,
    .state_bytes = ease_state_bytes,
    .train_plan = ease_train_plan,
    .train_begin = ease_train_begin,
    .train_step = ease_train_step,
    .train_epoch_end = ease_train_epoch_end,
    .train_end = ease_train_end,
    .networks = ease_networks,
    .fit = ease_fit,
    .predict = ease_predict,
    .predictors = ease_predictors,
    .state = ease_state,
    .destroy = ease_destroy,
};

static scl_err ease_alloc(ease *e, const learn_context *ctx) {
  const vit_config *vc = &ctx->backbone->cfg;
  SCL_CALL(pet_params_create(vc, &e->pc, &e->set));
  const int64_t P = e->set->count;
  SCL_CALL(scl_calloc((size_t)P * sizeof(float), "EASE adapter momentum", (void **)&e->momentum));
  SCL_CALL(
      scl_calloc((size_t)(e->slots * P) * sizeof(float), "EASE adapter bank", (void **)&e->bank));
  SCL_CALL(
      scl_calloc((size_t)(e->T + 1) * sizeof(int64_t), "EASE session starts", (void **)&e->starts));
  SCL_CALL(scl_calloc((size_t)(e->C * e->nbw * e->D) * sizeof(float), "EASE prototypes",
                      (void **)&e->W));
  SCL_CALL(scl_alloc((size_t)(e->Bc * e->D) * sizeof(float), "EASE subspace features",
                     (void **)&e->chunk));
  SCL_CALL(learn_head_create(&e->head, e->C, e->D));
  SCL_CALL(learn_step_buffers_create(&e->w, e->B, e->C, e->D));
  const int ranks = dist_comm_size(e->comm);
  const int64_t shard = (e->B + ranks - 1) / ranks; /* the most rows a rank trains */
  /* The pre-trained model's forward (the use_init_ptm block) never runs while the trainer holds
   * a training forward's activations, so its engine works in the trainer's memory (pet.h). */
  SCL_CALL(vit_trainer_create_lending(ctx->backbone, &e->pc, shard, 0, &e->trainer));
  SCL_INFO(
      "ease: adapter bank %lld set(s) x %lld floats = %.1f MB (%.2f MB per session); "
      "prototypes %lld x %lld = %.1f MB",
      (long long)e->slots, (long long)P, (double)(e->slots * P) * 4.0 / 1e6, (double)P * 4.0 / 1e6,
      (long long)e->C, (long long)(e->nbw * e->D), (double)(e->C * e->nbw * e->D) * 4.0 / 1e6);
  return SCL_OK;
}

static scl_err ease_create(const learn_context *ctx, learn_method **out) {
  const learn_method_cfg *c = ctx->cfg;
  SCL_CHECK(!ctx->domain_incremental, SCL_ERR_ARG,
            "method ease is class-incremental: its prototype complement and reweighted logits "
            "tie every class to the session that introduced it, and a domain-incremental "
            "benchmark (DomainNet) has every class in every session (docs/methods.md j.8)");
  SCL_CHECK(!strcmp(c->optimizer, "sgd"), SCL_ERR_ARG,
            "method ease: train.optimizer = \"%s\", EASE trains with \"sgd\"", c->optimizer);
  ease *e = calloc(1, sizeof *e);
  SCL_CHECK(e, SCL_ERR_NOMEM, "ease");
  e->base.ops = &learn_ease_ops;
  e->cfg = *c;
  e->backbone = ctx->backbone;
  e->comm = ctx->comm ? ctx->comm : dist_comm_self();
  e->seed = ctx->seed;
  e->C = ctx->n_classes;
  e->D = ctx->backbone->cfg.width;
  e->B = c->batch;
  e->T = ctx->n_sessions > 0 ? ctx->n_sessions : 1;
  e->moni = c->ease_moni_adam;
  e->ptm = ease_ptm(c);
  e->slots = ease_slots(c, e->T);
  e->nbw = ease_blocks(c, e->T - 1);
  e->Bc = ctx->backbone->max_batch > 0 ? ctx->backbone->max_batch : 16;
  learn_method *m = &e->base;
  scl_err err = learn_pet_config(c, &e->pc);
  if (!err && e->pc.kinds != PET_ADAPTER)
    err = SCL_ERROR(SCL_ERR_ARG,
                    "method ease: method.pet = \"%s\", EASE trains an adapter set per session "
                    "(\"adapter\")",
                    c->pet);
  if (!err) err = ease_alloc(e, ctx);
  if (err) {
    ease_destroy(&m);
    return SCL_TRACE(err);
  }
  *out = m;
  return SCL_OK;
}
