/* l2p.c: L2P (Wang et al., CVPR 2022) as PILOT runs it (docs/methods.md g): a pool of prompts
 * with one key each; every image's query (the frozen model's class token) picks the top-k keys by
 * cosine similarity, the picked prompts go into the sequence after the class token, and the mean
 * of their outputs feeds a linear head over all classes trained on the session's columns. Loss:
 * CE over [K_old, K_seen) minus pull x the summed similarity of the query to the picked keys.
 *
 * Training votes the selection over the global batch (method.prompt.vote_train, PILOT's
 * batch-wise selection; the training batch is shuffled, so the vote carries no label). Testing
 * selects per image (docs/methods.md f.6): an image's prediction does not depend on the other
 * images of its batch. PILOT's batch-wise test vote is only the diagnostic network "pilot_diag"
 * (method.prompt.protocol = pilot_diag), which never touches the primary predictor.
 *
 * method.l2p_variant = "plusplus" is CODA-Prompt's L2P++ (docs/methods.md g.1): pool and keys
 * U(0, 1), nn.Linear's head on the class token, each image's own top-k prompts (no vote) as key
 * and value prefixes at block 0 (the first half of a prompt's tokens keys, the second half
 * values), and the key loss of CODA's code, sum over b, b' and j of 1 - cos(q_b, K[idx_b'j]):
 * every query pulled toward every image's selected keys (its (B, B, k) indexing), added with
 * weight 1 to the mean CE; the CODA training recipe, a step in chunks of L2P_CHUNK images. */
#include <stdlib.h>
#include <string.h>

#include "safecl/prompt.h"
#include "safecl/tuning.h"

#include "coda_prompt_internal.h"

#define TAG_L2P_HEAD 1301u
#define TAG_L2P_POOL 1302u
#define TAG_L2P_KEYS 1303u
#define L2P_CHUNK 16 /* plusplus: images per trainer call */

typedef struct l2p {
  learn_method base;
  learn_method_cfg cfg;
  vit_model *backbone; /* shared, not owned */
  const dist_comm *comm;
  int64_t C, D, M, Lp, k, Bbuf; /* Bbuf: rows of the step and network buffers */
  int64_t chunk;                /* rows per trainer call */
  int diag, pp;                 /* pp: L2P++ */
  int64_t epochs;               /* pp: epochs of the session being trained (the schedule's E) */
  learn_prompt_params p;
  int64_t off_pool, off_keys; /* pool (M, Lp, D), keys (M, D) */
  vit_trainer *trainer;
  learn_prompt_io io;
  float *q, *qn, *qsq, *kn, *ksq, *sim, *dkn, *feat, *dfeat, *scratch;
  int64_t *idx, *counts;
  double *qsum; /* pp: (D) the sum of the rank's normalised queries */
} l2p;

/* Per-image selection of the first B rows of images: queries, their similarity to the keys and
 * the top-k ids into l->idx; with vote the ids of every row are replaced by the vote of these B
 * rows (the diagnostic network). */
static scl_err l2p_select(l2p *l, const float *images, int64_t B, int vote) {
  if (B > 0) SCL_CALL(learn_prompt_query(l->backbone, images, B, l->q));
  learn_prompt_l2norm_forward(l->qn, l->qsq, l->q, B, l->D);
  learn_prompt_l2norm_forward(l->kn, l->ksq, l->p.param + l->off_keys, l->M, l->D);
  learn_prompt_similarity(l->sim, l->qn, l->kn, B, l->M, l->D);
  learn_prompt_topk(l->idx, l->sim, B, l->M, l->k);
  if (vote) SCL_CALL(learn_prompt_vote_group(dist_comm_self(), l->idx, B, l->k, l->M, l->counts));
  return SCL_OK;
}

/* io tokens of the first B rows: image b gets the pool entries idx[b, 0..k), in order. */
static void l2p_tokens(l2p *l, int64_t B) {
  const int64_t entry = l->Lp * l->D;
  const float *pool = l->p.param + l->off_pool;
  for (int64_t b = 0; b < B; b++)
    for (int64_t j = 0; j < l->k; j++)
      memcpy(l->io.tok + (b * l->k + j) * entry, pool + l->idx[b * l->k + j] * entry,
             (size_t)entry * sizeof(float));
}

/* pp: io prefixes of the first B rows at block 0: image b's keys are the first Lp / 2 tokens of
 * its k prompts in order, its values their last Lp / 2 tokens. */
static void pp_prefixes(l2p *l, int64_t B) {
  const int64_t half = l->Lp / 2 * l->D, entry = l->Lp * l->D;
  const float *pool = l->p.param + l->off_pool;
  for (int64_t b = 0; b < B; b++)
    for (int64_t j = 0; j < l->k; j++) {
      const float *src = pool + l->idx[b * l->k + j] * entry;
      memcpy(l->io.pk[0] + (b * l->k + j) * half, src, (size_t)half * sizeof(float));
      memcpy(l->io.pv[0] + (b * l->k + j) * half, src + half, (size_t)half * sizeof(float));
    }
}

/* pp: the prefix gradients of the last backward of B rows onto the pool entries they came from. */
static void pp_scatter(l2p *l, int64_t B) {
  const int64_t half = l->Lp / 2 * l->D, entry = l->Lp * l->D;
  float *gpool = l->p.grad + l->off_pool;
  for (int64_t b = 0; b < B; b++)
    for (int64_t j = 0; j < l->k; j++) {
      float *g = gpool + l->idx[b * l->k + j] * entry;
      const float *dk = l->io.dpk[0] + (b * l->k + j) * half;
      const float *dv = l->io.dpv[0] + (b * l->k + j) * half;
      for (int64_t i = 0; i < half; i++) g[i] += dk[i];
      for (int64_t i = 0; i < half; i++) g[half + i] += dv[i];
    }
}

static learn_train_plan l2p_train_plan(learn_method *m, const learn_session *s) {
  l2p *l = (l2p *)m;
  return (learn_train_plan){.epochs = s->t == 0 ? l->cfg.epochs_first : l->cfg.epochs_later,
                            .batch = l->cfg.batch,
                            .n_terms = 3,
                            .term_names = {"total", "ce", l->pp ? "key_loss" : "key_similarity"}};
}

static scl_err l2p_train_begin(learn_method *m, const learn_session *s, int64_t steps) {
  (void)steps;
  l2p *l = (l2p *)m;
  learn_prompt_adam_reset(&l->p); /* a fresh optimizer every session (f.8) */
  l->epochs = l2p_train_plan(m, s).epochs;
  return SCL_OK;
}

/* The L2P++ step (docs/methods.md g.1): the rank's rows in chunks of l->chunk (query, own top-k,
 * prefixes at block 0, CE as a share n / B_global of the batch mean, backward), then the key
 * loss sum_b sum_(b', j) (1 - qn_b . kn_idx(b', j)) over the global batch: with c_m the times key
 * m is selected in the global batch and Q the sum of the queries, its gradient by kn_m is
 * -c_m Q, computed by each rank with its own Q and the global c (the group's sum is then the
 * whole), and its value B_global^2 k - Q . sum_m c_m kn_m, summed the same way. */
static scl_err pp_train_step(l2p *l, const learn_session *s, const learn_batch *b, double *losses) {
  const int64_t D = l->D, M = l->M, k = l->k;
  const int64_t per = 3 * l->backbone->cfg.img_size * l->backbone->cfg.img_size;
  learn_prompt_zero_grad(&l->p);
  memset(l->counts, 0, (size_t)M * sizeof(int64_t));
  memset(l->qsum, 0, (size_t)D * sizeof(double));
  double ce = 0.0;
  for (int64_t r = 0; r < b->B; r += l->chunk) {
    const int64_t n = b->B - r < l->chunk ? b->B - r : l->chunk;
    const float *img = b->images + r * per;
    SCL_CALL(l2p_select(l, img, n, 0));
    learn_prompt_count(l->counts, l->idx, n * k, M);
    for (int64_t i = 0; i < n; i++)
      for (int64_t j = 0; j < D; j++) l->qsum[j] += l->qn[i * D + j];
    pp_prefixes(l, n);
    vit_prompt_io io = learn_prompt_io_view(&l->io, 0, 1);
    SCL_CALL(vit_trainer_forward_io(l->trainer, NULL, img, n, NULL, &io, l->feat));
    memset(l->dfeat, 0, (size_t)(n * D) * sizeof(float));
    ce += (double)n * learn_prompt_ce(&l->p, l->dfeat, l->scratch, l->feat, b->labels + r, n,
                                      s->class_lo, s->class_hi, (double)n / (double)b->B_global);
    learn_prompt_io_zero_grad(&l->io, n);
    SCL_CALL(vit_trainer_backward_io(l->trainer, NULL, l->dfeat, n, &io));
    pp_scatter(l, n);
  }
  if (dist_comm_size(l->comm) > 1) SCL_CALL(dist_allreduce_i64(l->comm, l->counts, M, DIST_SUM));
  if (b->B == 0) learn_prompt_l2norm_forward(l->kn, l->ksq, l->p.param + l->off_keys, M, D);
  double key = (double)b->B * (double)b->B_global * (double)k;
  memset(l->dkn, 0, (size_t)(M * D) * sizeof(float));
  for (int64_t m = 0; m < M; m++) {
    if (!l->counts[m]) continue;
    const double c = (double)l->counts[m];
    double dot = 0.0;
    for (int64_t j = 0; j < D; j++) {
      dot += l->qsum[j] * l->kn[m * D + j];
      l->dkn[m * D + j] = (float)(-c * l->qsum[j]);
    }
    key -= c * dot;
  }
  learn_prompt_l2norm_backward(l->p.grad + l->off_keys, l->dkn, l->kn, l->ksq, M, D);
  double sums[2] = {ce, key};
  if (dist_comm_size(l->comm) > 1) {
    SCL_CALL(dist_allreduce_f64(l->comm, sums, 2, DIST_SUM));
    SCL_CALL(dist_allreduce_f32(l->comm, l->p.grad, l->p.count, DIST_SUM));
  }
  learn_prompt_adam_step(&l->p, learn_coda_lr(l->cfg.lr, l->epochs, b->epoch), l->cfg.weight_decay);
  losses[1] = sums[0] / (double)b->B_global;
  losses[2] = sums[1];
  losses[0] = losses[1] + losses[2];
  return SCL_OK;
}

static scl_err l2p_train_step(learn_method *m, const learn_session *s, const learn_batch *b,
                              double *losses) {
  l2p *l = (l2p *)m;
  const int64_t B = b->B, D = l->D, k = l->k, entry = l->Lp * D;
  if (l->pp) return pp_train_step(l, s, b, losses);
  SCL_CHECK(b->B_global <= l->Bbuf, SCL_ERR_INTERNAL, "L2P step of %lld images (buffers for %lld)",
            (long long)b->B_global, (long long)l->Bbuf);
  learn_prompt_zero_grad(&l->p);
  SCL_CALL(l2p_select(l, b->images, B, 0));
  if (l->cfg.prompt_vote_train)
    SCL_CALL(learn_prompt_vote_group(l->comm, l->idx, B, k, l->M, l->counts));
  l2p_tokens(l, B);
  vit_prompt_io io = learn_prompt_io_view(&l->io, 0, 1);
  if (B > 0)
    SCL_CALL(
        vit_trainer_forward_io(l->trainer, NULL, b->images, B, NULL, &io, l->feat + b->offset * D));
  double ce = 0.0;
  SCL_CALL(learn_prompt_head_step(l->comm, &l->p, b, l->feat, l->dfeat, l->scratch, s->class_lo,
                                  s->class_hi, &ce));
  if (B > 0) {
    learn_prompt_io_zero_grad(&l->io, B);
    SCL_CALL(vit_trainer_backward_io(l->trainer, NULL, l->dfeat + b->offset * D, B, &io));
  }
  /* the prompt tokens' gradient onto the pool entries they came from */
  float *gpool = l->p.grad + l->off_pool;
  for (int64_t r = 0; r < B; r++)
    for (int64_t j = 0; j < k; j++) {
      float *g = gpool + l->idx[r * k + j] * entry;
      const float *d = l->io.dtok + (r * k + j) * entry;
      for (int64_t i = 0; i < entry; i++) g[i] += d[i];
    }
  /* pull term S = (1/B_global) sum_b sum_j qn_b . kn_idx (docs/methods.md g.3) */
  const double scale = -l->cfg.prompt_pull / (double)b->B_global;
  double S = 0.0;
  memset(l->dkn, 0, (size_t)(l->M * D) * sizeof(float));
  for (int64_t r = 0; r < B; r++)
    for (int64_t j = 0; j < k; j++) {
      const int64_t id = l->idx[r * k + j];
      const float *qr = l->qn + r * D;
      double dot = 0.0;
      for (int64_t i = 0; i < D; i++) dot += (double)qr[i] * l->kn[id * D + i];
      S += dot;
      for (int64_t i = 0; i < D; i++) l->dkn[id * D + i] += (float)(scale * qr[i]);
    }
  learn_prompt_l2norm_backward(l->p.grad + l->off_keys, l->dkn, l->kn, l->ksq, l->M, D);
  if (dist_comm_size(l->comm) > 1) SCL_CALL(dist_allreduce_f64(l->comm, &S, 1, DIST_SUM));
  S /= (double)b->B_global;
  SCL_CALL(learn_prompt_sync(l->comm, &l->p));
  learn_prompt_adam_step(&l->p, learn_tune_lr(&l->cfg, b->epoch), l->cfg.weight_decay);
  losses[0] = ce - l->cfg.prompt_pull * S;
  losses[1] = ce;
  losses[2] = S;
  return SCL_OK;
}

/* Logits (B, C) of the prompted model; vote: PILOT's batch-wise selection over the call. */
static scl_err l2p_logits(void *ctx, const float *images, int64_t B, int vote, float *out) {
  l2p *l = ctx;
  const int64_t per = 3 * l->backbone->cfg.img_size * l->backbone->cfg.img_size;
  SCL_CHECK(!vote || B <= l->Bbuf, SCL_ERR_INTERNAL,
            "pilot_diag call of %lld images (the vote spans at most %lld)", (long long)B,
            (long long)l->Bbuf);
  for (int64_t i = 0; i < B; i += l->chunk) {
    const int64_t n = B - i < l->chunk ? B - i : l->chunk;
    SCL_CALL(l2p_select(l, images + i * per, n, vote));
    if (l->pp)
      pp_prefixes(l, n);
    else
      l2p_tokens(l, n);
    vit_prompt_io io = learn_prompt_io_view(&l->io, 0, 0);
    SCL_CALL(vit_trainer_infer_io(l->trainer, NULL, images + i * per, n, &io, l->feat));
    learn_prompt_logits(out + i * l->C, &l->p, l->feat, n, 0, l->C);
  }
  return SCL_OK;
}

/* The networks' forwards, with per-image queries (learn_prompt_test_forward). */
static scl_err l2p_forward(void *ctx, const float *images, int64_t B, float *out) {
  return learn_prompt_test_forward(((l2p *)ctx)->backbone, l2p_logits, ctx, images, B, 0, out);
}
static scl_err l2p_forward_diag(void *ctx, const float *images, int64_t B, float *out) {
  return learn_prompt_test_forward(((l2p *)ctx)->backbone, l2p_logits, ctx, images, B, 1, out);
}

static int l2p_networks(learn_method *m, const learn_session *s, learn_network *out) {
  l2p *l = (l2p *)m;
  (void)s;
  return learn_prompt_networks(out, l, l->C, l2p_forward, l->diag ? l2p_forward_diag : NULL,
                               l->cfg.batch);
}

static scl_err l2p_predict(learn_method *m, const learn_session *s, const float *const *features,
                           int64_t n, int32_t *pred) {
  l2p *l = (l2p *)m;
  learn_prompt_predict(pred, features, 1 + l->diag, n, l->C, s->class_hi);
  return SCL_OK;
}

static int l2p_predictors(const learn_method *m, const char **names) {
  names[0] = "l2p";
  if (!((const l2p *)m)->diag) return 1;
  names[1] = "pilot_diag";
  return 2;
}

static int l2p_state(learn_method *m, learn_state_entry *out) {
  return learn_prompt_state(&((l2p *)m)->p, out);
}

static void l2p_destroy(learn_method **m) {
  if (!m || !*m) return;
  l2p *l = (l2p *)*m;
  vit_trainer_destroy(&l->trainer);
  learn_prompt_params_free(&l->p);
  learn_prompt_io_free(&l->io);
  float *f[] = {l->q, l->qn, l->qsq, l->kn, l->ksq, l->sim, l->dkn, l->feat, l->dfeat, l->scratch};
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) scl_free(f[i]);
  scl_free(l->idx);
  scl_free(l->counts);
  scl_free(l->qsum);
  free(l);
  *m = NULL;
}

/* g.6: query 1 F + prompted forward 1.13 F + backward to the input prompts 1.17 F per training
 * image and epoch; a test image costs the query and the prompted forward (2 F), twice with the
 * diagnostic network. L2P++ (prefixes, 197 tokens): 1 F + 1 F + 1.05 F, as DualPrompt. */
static learn_cost l2p_cost(const learn_method_cfg *cfg, int t) {
  const int64_t epochs = t == 0 ? cfg->epochs_first : cfg->epochs_later;
  const int diag = cfg->prompt_protocol && !strcmp(cfg->prompt_protocol, "pilot_diag");
  const int pp = cfg->l2p_variant && !strcmp(cfg->l2p_variant, "plusplus");
  return (learn_cost){.train_passes = (pp ? 3.05 : 3.3) * (double)epochs,
                      .test_nets = diag ? 4 : 2};
}

static scl_err l2p_create(const learn_context *ctx, learn_method **out);

const learn_method_ops learn_l2p_ops = {
    .name = "l2p",
    .label = "L2P",
    .category = "prompt",
    .cost_factor = 18.0,
    .create = l2p_create,
    .cost = l2p_cost,
    .train_plan = l2p_train_plan,
    .train_begin = l2p_train_begin,
    .train_step = l2p_train_step,
    .train_epoch_end = learn_prompt_no_epoch_end,
    .train_end = learn_prompt_no_train_end,
    .networks = l2p_networks,
    .fit = learn_prompt_no_fit,
    .predict = l2p_predict,
    .predictors = l2p_predictors,
    .state = l2p_state,
    .destroy = l2p_destroy,
};

static scl_err l2p_alloc(l2p *l, int ranks) {
  const int64_t B = l->Bbuf, D = l->D, M = l->M, K = l->C;
  const int64_t shard = (l->cfg.batch + ranks - 1) / ranks; /* the most rows a rank trains */
  l->chunk = !l->pp ? B : shard < L2P_CHUNK ? shard : L2P_CHUNK;
  struct {
    float **p;
    int64_t n;
    const char *what;
  } f[] = {{&l->q, B * D, "L2P queries"},
           {&l->qn, B * D, "L2P normalised queries"},
           {&l->qsq, B, "L2P query norms"},
           {&l->kn, M * D, "L2P normalised keys"},
           {&l->ksq, M, "L2P key norms"},
           {&l->sim, B * M, "L2P similarities"},
           {&l->dkn, M * D, "L2P key gradient"},
           {&l->feat, B * D, "L2P features"},
           {&l->dfeat, B * D, "L2P feature gradient"},
           {&l->scratch, learn_prompt_ce_scratch(B, K), "L2P logits"}};
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
    SCL_CALL(scl_calloc((size_t)f[i].n * sizeof(float), f[i].what, (void **)f[i].p));
  SCL_CALL(scl_calloc((size_t)(B * l->k) * sizeof(int64_t), "L2P selection", (void **)&l->idx));
  SCL_CALL(scl_calloc((size_t)M * sizeof(int64_t), "L2P vote counts", (void **)&l->counts));
  pet_config pc = {.kinds = PET_INPUT_PROMPT, .input_tokens = l->k * l->Lp, .pool_input_tokens = 1};
  if (l->pp) { /* k prompts of Lp / 2 keys and Lp / 2 values per image at block 0 */
    SCL_CALL(scl_calloc((size_t)D * sizeof(double), "L2P++ query sum", (void **)&l->qsum));
    SCL_CALL(learn_prompt_io_create(&l->io, l->chunk, D, 0, l->k * l->Lp / 2, 1u));
    pc = (pet_config){.kinds = PET_SAMPLE_PREFIX,
                      .sample_prefix_len = l->k * l->Lp / 2,
                      .sample_prefix_layers = 1u};
  } else {
    SCL_CALL(learn_prompt_io_create(&l->io, B, D, l->k * l->Lp, 0, 0));
  }
  SCL_CALL(vit_trainer_create_lending(l->backbone, &pc, l->pp ? l->chunk : shard, 0,
                                      &l->trainer)); /* the query runs in its working set (pet.h) */
  return SCL_OK;
}

static scl_err l2p_create(const learn_context *ctx, learn_method **out) {
  const learn_method_cfg *c = ctx->cfg;
  SCL_CHECK(!strcmp(c->optimizer, "adam"), SCL_ERR_ARG,
            "method l2p: train.optimizer = \"%s\", L2P trains with \"adam\"", c->optimizer);
  SCL_CHECK(c->prompt_top_k <= c->prompt_pool, SCL_ERR_ARG,
            "method l2p: method.prompt.top_k = %lld exceeds method.prompt.pool = %lld",
            (long long)c->prompt_top_k, (long long)c->prompt_pool);
  const int pp = c->l2p_variant && !strcmp(c->l2p_variant, "plusplus");
  SCL_CHECK(!pp || c->prompt_length % 2 == 0, SCL_ERR_ARG,
            "method l2p (l2p_variant = plusplus): method.prompt.length = %lld must be even (the "
            "first half of a prompt's tokens are prefix keys, the second half values)",
            (long long)c->prompt_length);
  SCL_CHECK(!pp || strcmp(c->prompt_protocol, "pilot_diag"), SCL_ERR_ARG,
            "method l2p: method.prompt.protocol = \"pilot_diag\" with method.l2p_variant = "
            "\"plusplus\" (L2P++ selects per image in CODA's code; PILOT's protocol belongs to "
            "the pilot variant)");
  l2p *l = calloc(1, sizeof *l);
  SCL_CHECK(l, SCL_ERR_NOMEM, "l2p");
  l->base.ops = &learn_l2p_ops;
  l->cfg = *c;
  l->backbone = ctx->backbone;
  l->comm = ctx->comm ? ctx->comm : dist_comm_self();
  l->C = ctx->n_classes;
  l->D = ctx->backbone->cfg.width;
  l->M = c->prompt_pool;
  l->Lp = c->prompt_length;
  l->k = c->prompt_top_k;
  l->Bbuf = c->batch;
  l->diag = !strcmp(c->prompt_protocol, "pilot_diag");
  l->pp = pp;
  learn_method *m = &l->base;
  const int64_t numel[2] = {l->M * l->Lp * l->D, l->M * l->D};
  int64_t off[2];
  scl_err err = learn_prompt_params_create(&l->p, l->C, l->D, 2, numel, off);
  if (!err) err = l2p_alloc(l, dist_comm_size(l->comm));
  if (err) {
    l2p_destroy(&m);
    return SCL_TRACE(err);
  }
  l->off_pool = off[0];
  l->off_keys = off[1];
  /* g.1: pool and keys U(-1, 1), head timm trunc-normal(0.02) with zero bias; L2P++: U(0, 1)
   * (nn.init.uniform_) and nn.Linear's head */
  const float lo = pp ? 0.0f : -1.0f;
  learn_prompt_uniform(l->p.param + l->off_pool, l->M, l->Lp * l->D, lo, 1.0f, ctx->seed,
                       TAG_L2P_POOL);
  learn_prompt_uniform(l->p.param + l->off_keys, l->M, l->D, lo, 1.0f, ctx->seed, TAG_L2P_KEYS);
  learn_prompt_head_init_rows(&l->p, pp ? LEARN_PROMPT_HEAD_TORCH : LEARN_PROMPT_HEAD_TIMM,
                              ctx->seed, TAG_L2P_HEAD);
  *out = m;
  return SCL_OK;
}
