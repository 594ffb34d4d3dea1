/* dualprompt.c: DualPrompt (Wang et al., ECCV 2022) as PILOT runs it (docs/methods.md h): G-prompts
 * (key and value prefixes shared by every image) at blocks [0, g_layers), and an E-prompt pool of
 * M slots at the next e_layers blocks with one key per slot shared by those blocks; the feature is
 * the class token, the head a linear layer over all classes trained on the session's columns.
 * Loss: CE over [K_old, K_seen) minus pull x the similarity of the query to the used key.
 *
 * Session t trains slot t (copied from slot t - 1 when the session starts) without key matching
 * while t < M; from t = M on the slot is chosen by key matching (voted over the global batch with
 * method.prompt.vote_train, as PILOT's batch-wise selection). Testing picks each image's slot by
 * its own query (top-1 over all M keys) and gives it its own prefixes (docs/methods.md f.6); the
 * PILOT test protocol (batch vote over the call and the reshaped E-prefix layout) is only the
 * diagnostic network "pilot_diag" (method.prompt.protocol = pilot_diag). Every prefix reaches the
 * trainer per image (vit_prompt_io): the G-prompts are copied to every row and their gradients
 * summed back, an E-slot's gradient is summed onto the slot of its image. G-prompts of another
 * length than the E-prompts ride the trainer's shared prefixes instead (PET_PREFIX, a scratch
 * pet_params block refreshed from the flat array before every forward, its gradient added back
 * after every backward): the trainer takes one per-image prefix length.
 *
 * method.dualprompt_variant = "coda" is the re-implementation in CODA-Prompt's code
 * (docs/methods.md h.1): a key set per E-block, U(0, 1) init, nn.Linear's head, session t trains
 * slot t of every E-block with the key loss sum over images and E-blocks of 1 - cos(q, K_l[t])
 * (weight 1, no slot copy), testing picks a slot per image and per E-block; the CODA training
 * recipe (Adam under the CODA cosine schedule, batch 128 run in chunks of DP_CHUNK images, the
 * CE gradient of an image depending on that image alone, as coda_prompt.c). */
#include <stdlib.h>
#include <string.h>

#include "safecl/prompt.h"
#include "safecl/tuning.h"

#include "coda_prompt_internal.h"

#define TAG_DP_HEAD 1401u
#define TAG_DP_G 1402u
#define TAG_DP_E 1403u
#define TAG_DP_KEYS 1404u
#define DP_CHUNK 16 /* coda variant: images per trainer call */

typedef struct dualprompt {
  learn_method base;
  learn_method_cfg cfg;
  vit_model *backbone; /* shared, not owned */
  const dist_comm *comm;
  int64_t C, D, M, L, Lg, G, E, Bbuf; /* L, Lg E and G prefix lengths, G/E prompted blocks */
  int64_t NK, chunk;                  /* key sets (1, or E with coda), trainer rows per call */
  int diag, coda, gshared; /* gshared: G-prompts as the trainer's shared prefixes (Lg != L) */
  int64_t epochs;          /* coda: epochs of the session being trained (the schedule's E) */
  learn_prompt_params p;
  int64_t off_g, off_e, off_keys; /* G (G, 2, Lg, D), E (E, 2, M, L, D), keys (NK, M, D) */
  pet_params *gpre;               /* the trainer's shared G-prefixes when Lg != L, else NULL */
  vit_trainer *trainer;
  learn_prompt_io io;
  float *q, *qn, *qsq, *kn, *ksq, *sim, *dkn, *feat, *dfeat, *scratch;
  int64_t *idx, *counts;
} dualprompt;

static float *g_prompt(dualprompt *d, float *base, int64_t layer, int kv) {
  return base + d->off_g + (layer * 2 + kv) * d->Lg * d->D;
}
static float *e_prompt(dualprompt *d, float *base, int64_t layer, int kv, int64_t slot) {
  return base + d->off_e + ((layer * 2 + kv) * d->M + slot) * d->L * d->D;
}

/* The slots of E-block e's images: key set e's selection with coda, the one set's otherwise. */
static int64_t *slots(dualprompt *d, int64_t e) { return d->idx + (d->NK > 1 ? e : 0) * d->Bbuf; }

/* Slot of every one of the first B images into d->idx, per key set: `fixed` >= 0 for all, or
 * top-1 key matching of the queries (then voted over `comm`, NULL: no vote). */
static scl_err dp_select(dualprompt *d, const float *images, int64_t B, int64_t fixed,
                         const dist_comm *comm) {
  if (B > 0) SCL_CALL(learn_prompt_query(d->backbone, images, B, d->q));
  learn_prompt_l2norm_forward(d->qn, d->qsq, d->q, B, d->D);
  learn_prompt_l2norm_forward(d->kn, d->ksq, d->p.param + d->off_keys, d->NK * d->M, d->D);
  for (int64_t ks = 0; ks < d->NK; ks++) {
    int64_t *idx = d->idx + ks * d->Bbuf;
    if (fixed >= 0) {
      for (int64_t b = 0; b < B; b++) idx[b] = fixed;
      continue;
    }
    learn_prompt_similarity(d->sim, d->qn, d->kn + ks * d->M * d->D, B, d->M, d->D);
    learn_prompt_topk(idx, d->sim, B, d->M, 1);
    if (comm) SCL_CALL(learn_prompt_vote_group(comm, idx, B, 1, d->M, d->counts));
  }
  return SCL_OK;
}

/* Per-image prefixes of the first B images. reshape: PILOT's E-prefix layout (f.6). */
static void dp_prefixes(dualprompt *d, int64_t B, int reshape) {
  const size_t bytes = (size_t)(d->L * d->D) * sizeof(float);
  const int64_t row = d->L * d->D;
  for (int64_t l = 0; l < d->G; l++)
    for (int kv = 0; kv < 2; kv++) {
      if (d->gpre) {
        const pet_prefix_block *x = &d->gpre->layout.blocks[l].prefix;
        memcpy(d->gpre->param + (kv == 0 ? x->key : x->value), g_prompt(d, d->p.param, l, kv),
               (size_t)(d->Lg * d->D) * sizeof(float));
        continue;
      }
      for (int64_t b = 0; b < B; b++)
        memcpy((kv == 0 ? d->io.pk[l] : d->io.pv[l]) + b * row, g_prompt(d, d->p.param, l, kv),
               bytes);
    }
  for (int64_t e = 0; e < d->E; e++)
    for (int64_t b = 0; b < B; b++)
      for (int r = 0; r < 2; r++) {
        int64_t src = b;
        int role = r;
        if (reshape) learn_prompt_pilot_reshape(B, b, r, &src, &role);
        float *dst = (r == 0 ? d->io.pk[d->G + e] : d->io.pv[d->G + e]) + b * row;
        memcpy(dst, e_prompt(d, d->p.param, e, role, slots(d, e)[src]), bytes);
      }
}

/* The prefix gradients of the last backward of B rows onto the flat gradient: G-prompts summed
 * over the rows (or the shared prefixes' gradient), each E-row onto its image's slot. */
static void dp_scatter(dualprompt *d, int64_t B) {
  const int64_t row = d->L * d->D;
  for (int64_t l = 0; l < d->G; l++)
    for (int kv = 0; kv < 2; kv++) {
      float *g = g_prompt(d, d->p.grad, l, kv);
      if (d->gpre) {
        const pet_prefix_block *x = &d->gpre->layout.blocks[l].prefix;
        const float *src = d->gpre->grad + (kv == 0 ? x->key : x->value);
        for (int64_t i = 0; i < d->Lg * d->D; i++) g[i] += src[i];
        continue;
      }
      const float *src = kv == 0 ? d->io.dpk[l] : d->io.dpv[l];
      for (int64_t r = 0; r < B; r++)
        for (int64_t i = 0; i < row; i++) g[i] += src[r * row + i];
    }
  for (int64_t e = 0; e < d->E; e++)
    for (int kv = 0; kv < 2; kv++) {
      const float *src = kv == 0 ? d->io.dpk[d->G + e] : d->io.dpv[d->G + e];
      for (int64_t r = 0; r < B; r++) {
        float *g = e_prompt(d, d->p.grad, e, kv, slots(d, e)[r]);
        for (int64_t i = 0; i < row; i++) g[i] += src[r * row + i];
      }
    }
}

static learn_train_plan dp_train_plan(learn_method *m, const learn_session *s) {
  dualprompt *d = (dualprompt *)m;
  return (learn_train_plan){.epochs = s->t == 0 ? d->cfg.epochs_first : d->cfg.epochs_later,
                            .batch = d->cfg.batch,
                            .n_terms = 3,
                            .term_names = {"total", "ce", d->coda ? "key_loss" : "key_similarity"}};
}

static scl_err dp_train_begin(learn_method *m, const learn_session *s, int64_t steps) {
  dualprompt *d = (dualprompt *)m;
  (void)steps;
  learn_prompt_adam_reset(&d->p); /* a fresh optimizer every session (f.8) */
  if (d->coda) {                  /* the session's slot is its index, no copy (h.1) */
    SCL_CHECK(s->t < d->M, SCL_ERR_ARG,
              "method dualprompt (dualprompt_variant = coda): session %d has no E-slot, "
              "method.prompt.pool = %lld must be at least the number of sessions",
              s->t + 1, (long long)d->M);
    d->epochs = dp_train_plan(m, s).epochs;
    return SCL_OK;
  }
  if (s->t >= 1 && s->t < d->M) /* h.4: slot t starts as a copy of slot t - 1 */
    for (int64_t e = 0; e < d->E; e++)
      for (int kv = 0; kv < 2; kv++)
        memcpy(e_prompt(d, d->p.param, e, kv, s->t), e_prompt(d, d->p.param, e, kv, s->t - 1),
               (size_t)(d->L * d->D) * sizeof(float));
  return SCL_OK;
}

/* The coda variant's step (docs/methods.md h.1): the rank's rows in chunks of d->chunk (query,
 * slot t, prompted forward, CE as a share n / B_global of the batch mean, backward), the key loss
 * sum_b sum_l (1 - cos(q_b, K_l[t])) on the rows, then the whole gradient summed over the group
 * (the head's included: each rank computed it on its rows only). */
static scl_err dp_coda_train_step(dualprompt *d, const learn_session *s, const learn_batch *b,
                                  double *losses) {
  const int64_t D = d->D, t = s->t;
  const int64_t per = 3 * d->backbone->cfg.img_size * d->backbone->cfg.img_size;
  learn_prompt_zero_grad(&d->p);
  memset(d->dkn, 0, (size_t)(d->NK * d->M * D) * sizeof(float));
  double sums[2] = {0.0, 0.0}; /* CE summed over the rows, key loss */
  for (int64_t r = 0; r < b->B; r += d->chunk) {
    const int64_t n = b->B - r < d->chunk ? b->B - r : d->chunk;
    const float *img = b->images + r * per;
    SCL_CALL(dp_select(d, img, n, t, NULL));
    dp_prefixes(d, n, 0);
    vit_prompt_io io = learn_prompt_io_view(&d->io, 0, 1);
    SCL_CALL(vit_trainer_forward_io(d->trainer, d->gpre, img, n, NULL, &io, d->feat));
    memset(d->dfeat, 0, (size_t)(n * D) * sizeof(float));
    sums[0] +=
        (double)n * learn_prompt_ce(&d->p, d->dfeat, d->scratch, d->feat, b->labels + r, n,
                                    s->class_lo, s->class_hi, (double)n / (double)b->B_global);
    learn_prompt_io_zero_grad(&d->io, n);
    if (d->gpre) pet_params_zero_grad(d->gpre);
    SCL_CALL(vit_trainer_backward_io(d->trainer, d->gpre, d->dfeat, n, &io));
    dp_scatter(d, n);
    for (int64_t ks = 0; ks < d->NK; ks++) { /* d(1 - qn . kn_t)/d kn_t = -qn, weight 1 */
      const float *kt = d->kn + (ks * d->M + t) * D;
      float *g = d->dkn + (ks * d->M + t) * D;
      for (int64_t i = 0; i < n; i++) {
        const float *qr = d->qn + i * D;
        double dot = 0.0;
        for (int64_t j = 0; j < D; j++) dot += (double)qr[j] * kt[j];
        sums[1] += 1.0 - dot;
        for (int64_t j = 0; j < D; j++) g[j] -= qr[j];
      }
    }
  }
  learn_prompt_l2norm_backward(d->p.grad + d->off_keys, d->dkn, d->kn, d->ksq, d->NK * d->M, D);
  if (dist_comm_size(d->comm) > 1) {
    SCL_CALL(dist_allreduce_f64(d->comm, sums, 2, DIST_SUM));
    SCL_CALL(dist_allreduce_f32(d->comm, d->p.grad, d->p.count, DIST_SUM));
  }
  learn_prompt_adam_step(&d->p, learn_coda_lr(d->cfg.lr, d->epochs, b->epoch), d->cfg.weight_decay);
  losses[1] = sums[0] / (double)b->B_global;
  losses[2] = sums[1];
  losses[0] = losses[1] + losses[2];
  return SCL_OK;
}

static scl_err dp_train_step(learn_method *m, const learn_session *s, const learn_batch *b,
                             double *losses) {
  dualprompt *d = (dualprompt *)m;
  const int64_t B = b->B, D = d->D;
  if (d->coda) return dp_coda_train_step(d, s, b, losses);
  SCL_CHECK(b->B_global <= d->Bbuf, SCL_ERR_INTERNAL,
            "DualPrompt step of %lld images (buffers for %lld)", (long long)b->B_global,
            (long long)d->Bbuf);
  learn_prompt_zero_grad(&d->p);
  SCL_CALL(dp_select(d, b->images, B, s->t < d->M ? s->t : -1,
                     d->cfg.prompt_vote_train ? d->comm : NULL));
  dp_prefixes(d, B, 0);
  vit_prompt_io io = learn_prompt_io_view(&d->io, 0, 1);
  if (B > 0)
    SCL_CALL(vit_trainer_forward_io(d->trainer, d->gpre, b->images, B, NULL, &io,
                                    d->feat + b->offset * D));
  double ce = 0.0;
  SCL_CALL(learn_prompt_head_step(d->comm, &d->p, b, d->feat, d->dfeat, d->scratch, s->class_lo,
                                  s->class_hi, &ce));
  if (B > 0) {
    learn_prompt_io_zero_grad(&d->io, B);
    if (d->gpre) pet_params_zero_grad(d->gpre);
    SCL_CALL(vit_trainer_backward_io(d->trainer, d->gpre, d->dfeat + b->offset * D, B, &io));
    dp_scatter(d, B);
  }
  /* pull term S = (1/B_global) sum_b qn_b . kn_idx_b (docs/methods.md h.3) */
  const double scale = -d->cfg.prompt_pull / (double)b->B_global;
  double S = 0.0;
  memset(d->dkn, 0, (size_t)(d->M * D) * sizeof(float));
  for (int64_t r = 0; r < B; r++) {
    const int64_t id = d->idx[r];
    const float *qr = d->qn + r * D;
    double dot = 0.0;
    for (int64_t i = 0; i < D; i++) dot += (double)qr[i] * d->kn[id * D + i];
    S += dot;
    for (int64_t i = 0; i < D; i++) d->dkn[id * D + i] += (float)(scale * qr[i]);
  }
  learn_prompt_l2norm_backward(d->p.grad + d->off_keys, d->dkn, d->kn, d->ksq, d->M, D);
  if (dist_comm_size(d->comm) > 1) SCL_CALL(dist_allreduce_f64(d->comm, &S, 1, DIST_SUM));
  S /= (double)b->B_global;
  SCL_CALL(learn_prompt_sync(d->comm, &d->p));
  learn_prompt_adam_step(&d->p, learn_tune_lr(&d->cfg, b->epoch), d->cfg.weight_decay);
  losses[0] = ce - d->cfg.prompt_pull * S;
  losses[1] = ce;
  losses[2] = S;
  return SCL_OK;
}

/* Logits (B, C); pilot: PILOT's batch vote over the call and reshaped E-prefixes. */
static scl_err dp_logits(void *ctx, const float *images, int64_t B, int pilot, float *out) {
  dualprompt *d = ctx;
  const int64_t per = 3 * d->backbone->cfg.img_size * d->backbone->cfg.img_size;
  SCL_CHECK(!pilot || B <= d->Bbuf, SCL_ERR_INTERNAL,
            "pilot_diag call of %lld images (the vote spans at most %lld)", (long long)B,
            (long long)d->Bbuf);
  for (int64_t i = 0; i < B; i += d->chunk) {
    const int64_t n = B - i < d->chunk ? B - i : d->chunk;
    SCL_CALL(dp_select(d, images + i * per, n, -1, pilot ? dist_comm_self() : NULL));
    dp_prefixes(d, n, pilot);
    vit_prompt_io io = learn_prompt_io_view(&d->io, 0, 0);
    SCL_CALL(vit_trainer_infer_io(d->trainer, d->gpre, images + i * per, n, &io, d->feat));
    learn_prompt_logits(out + i * d->C, &d->p, d->feat, n, 0, d->C);
  }
  return SCL_OK;
}

/* The networks' forwards, with per-image queries (learn_prompt_test_forward). */
static scl_err dp_forward(void *ctx, const float *images, int64_t B, float *out) {
  return learn_prompt_test_forward(((dualprompt *)ctx)->backbone, dp_logits, ctx, images, B, 0,
                                   out);
}
static scl_err dp_forward_diag(void *ctx, const float *images, int64_t B, float *out) {
  return learn_prompt_test_forward(((dualprompt *)ctx)->backbone, dp_logits, ctx, images, B, 1,
                                   out);
}

static int dp_networks(learn_method *m, const learn_session *s, learn_network *out) {
  dualprompt *d = (dualprompt *)m;
  (void)s;
  return learn_prompt_networks(out, d, d->C, dp_forward, d->diag ? dp_forward_diag : NULL,
                               d->cfg.batch);
}

static scl_err dp_predict(learn_method *m, const learn_session *s, const float *const *features,
                          int64_t n, int32_t *pred) {
  dualprompt *d = (dualprompt *)m;
  learn_prompt_predict(pred, features, 1 + d->diag, n, d->C, s->class_hi);
  return SCL_OK;
}

static int dp_predictors(const learn_method *m, const char **names) {
  names[0] = "dualprompt";
  if (!((const dualprompt *)m)->diag) return 1;
  names[1] = "pilot_diag";
  return 2;
}

static int dp_state(learn_method *m, learn_state_entry *out) {
  return learn_prompt_state(&((dualprompt *)m)->p, out);
}

static void dp_destroy(learn_method **m) {
  if (!m || !*m) return;
  dualprompt *d = (dualprompt *)*m;
  vit_trainer_destroy(&d->trainer);
  pet_params_destroy(&d->gpre);
  learn_prompt_params_free(&d->p);
  learn_prompt_io_free(&d->io);
  float *f[] = {d->q, d->qn, d->qsq, d->kn, d->ksq, d->sim, d->dkn, d->feat, d->dfeat, d->scratch};
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) scl_free(f[i]);
  scl_free(d->idx);
  scl_free(d->counts);
  free(d);
  *m = NULL;
}

/* h.5: query 1 F + prompted forward 1.0 F + backward to block 0 1.05 F per training image and
 * epoch; a test image costs 2 F, twice with the diagnostic network. */
static learn_cost dp_cost(const learn_method_cfg *cfg, int t) {
  const int64_t epochs = t == 0 ? cfg->epochs_first : cfg->epochs_later;
  const int diag = cfg->prompt_protocol && !strcmp(cfg->prompt_protocol, "pilot_diag");
  return (learn_cost){.train_passes = 3.05 * (double)epochs, .test_nets = diag ? 4 : 2};
}

static scl_err dp_create(const learn_context *ctx, learn_method **out);

const learn_method_ops learn_dualprompt_ops = {
    .name = "dualprompt",
    .label = "DualPrompt",
    .category = "prompt",
    .cost_factor = 17.0,
    .create = dp_create,
    .cost = dp_cost,
    .train_plan = dp_train_plan,
    .train_begin = dp_train_begin,
    .train_step = dp_train_step,
    .train_epoch_end = learn_prompt_no_epoch_end,
    .train_end = learn_prompt_no_train_end,
    .networks = dp_networks,
    .fit = learn_prompt_no_fit,
    .predict = dp_predict,
    .predictors = dp_predictors,
    .state = dp_state,
    .destroy = dp_destroy,
};

static scl_err dp_alloc(dualprompt *d, int ranks) {
  const int64_t B = d->Bbuf, D = d->D, M = d->M, NK = d->NK;
  const int64_t shard = (d->cfg.batch + ranks - 1) / ranks; /* the most rows a rank trains */
  d->chunk = !d->coda ? B : shard < DP_CHUNK ? shard : DP_CHUNK;
  struct {
    float **p;
    int64_t n;
    const char *what;
  } f[] = {{&d->q, B * D, "DualPrompt queries"},
           {&d->qn, B * D, "DualPrompt normalised queries"},
           {&d->qsq, B, "DualPrompt query norms"},
           {&d->kn, NK * M * D, "DualPrompt normalised keys"},
           {&d->ksq, NK * M, "DualPrompt key norms"},
           {&d->sim, B * M, "DualPrompt similarities"},
           {&d->dkn, NK * M * D, "DualPrompt key gradient"},
           {&d->feat, B * D, "DualPrompt features"},
           {&d->dfeat, B * D, "DualPrompt feature gradient"},
           {&d->scratch, learn_prompt_ce_scratch(B, d->C), "DualPrompt logits"}};
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
    SCL_CALL(scl_calloc((size_t)f[i].n * sizeof(float), f[i].what, (void **)f[i].p));
  SCL_CALL(
      scl_calloc((size_t)(NK * B) * sizeof(int64_t), "DualPrompt selection", (void **)&d->idx));
  SCL_CALL(scl_calloc((size_t)M * sizeof(int64_t), "DualPrompt vote counts", (void **)&d->counts));
  const uint32_t g_bits = (uint32_t)((1ull << d->G) - 1u);
  const uint32_t all = (uint32_t)((1ull << (d->G + d->E)) - 1u);
  const uint32_t layers = d->gshared ? all & ~g_bits : all; /* the per-image prefixes */
  SCL_CALL(learn_prompt_io_create(&d->io, d->coda ? d->chunk : B, D, 0, d->L, layers));
  pet_config pc = {
      .kinds = PET_SAMPLE_PREFIX, .sample_prefix_len = d->L, .sample_prefix_layers = layers};
  if (d->gshared) {
    pc.kinds |= PET_PREFIX;
    pc.prefix_len = d->Lg;
    pc.prefix_layers = g_bits;
    SCL_CALL(pet_params_create(&d->backbone->cfg, &pc, &d->gpre));
  }
  SCL_CALL(vit_trainer_create_lending(d->backbone, &pc, d->coda ? d->chunk : shard, 0,
                                      &d->trainer)); /* the query runs in its working set (pet.h) */
  return SCL_OK;
}

static scl_err dp_create(const learn_context *ctx, learn_method **out) {
  const learn_method_cfg *c = ctx->cfg;
  const int64_t depth = ctx->backbone->cfg.depth;
  SCL_CHECK(!strcmp(c->optimizer, "adam"), SCL_ERR_ARG,
            "method dualprompt: train.optimizer = \"%s\", DualPrompt trains with \"adam\"",
            c->optimizer);
  const int coda = c->dp_variant && !strcmp(c->dp_variant, "coda");
  SCL_CHECK(c->prompt_g_length >= 1 || c->prompt_g_layers == 0, SCL_ERR_ARG,
            "method dualprompt: method.prompt.g_length = %lld with g_layers = %lld, G-prompts "
            "need at least one prefix token",
            (long long)c->prompt_g_length, (long long)c->prompt_g_layers);
  SCL_CHECK(!coda || strcmp(c->prompt_protocol, "pilot_diag"), SCL_ERR_ARG,
            "method dualprompt: method.prompt.protocol = \"pilot_diag\" with "
            "method.dualprompt_variant = \"coda\" (CODA's code evaluates per image; PILOT's "
            "protocol belongs to the pilot variant)");
  SCL_CHECK(!coda || ctx->n_sessions <= c->prompt_pool, SCL_ERR_ARG,
            "method dualprompt (dualprompt_variant = coda): %d sessions but method.prompt.pool = "
            "%lld slots; session t trains slot t",
            ctx->n_sessions, (long long)c->prompt_pool);
  SCL_CHECK(c->prompt_e_layers >= 1 && c->prompt_g_layers + c->prompt_e_layers <= depth,
            SCL_ERR_ARG,
            "method dualprompt: method.prompt.g_layers = %lld plus e_layers = %lld must be at "
            "most the %lld blocks, with at least one E-layer",
            (long long)c->prompt_g_layers, (long long)c->prompt_e_layers, (long long)depth);
  dualprompt *d = calloc(1, sizeof *d);
  SCL_CHECK(d, SCL_ERR_NOMEM, "dualprompt");
  d->base.ops = &learn_dualprompt_ops;
  d->cfg = *c;
  d->backbone = ctx->backbone;
  d->comm = ctx->comm ? ctx->comm : dist_comm_self();
  d->C = ctx->n_classes;
  d->D = ctx->backbone->cfg.width;
  d->M = c->prompt_pool;
  d->L = c->prompt_length;
  d->G = c->prompt_g_layers;
  d->Lg = d->G > 0 ? c->prompt_g_length : 0;
  d->E = c->prompt_e_layers;
  d->Bbuf = c->batch;
  d->diag = !strcmp(c->prompt_protocol, "pilot_diag");
  d->coda = coda;
  d->gshared = d->G > 0 && d->Lg != d->L;
  d->NK = coda ? d->E : 1;
  learn_method *m = &d->base;
  const int64_t numel[3] = {d->G * 2 * d->Lg * d->D, d->E * 2 * d->M * d->L * d->D,
                            d->NK * d->M * d->D};
  int64_t off[3];
  scl_err err = learn_prompt_params_create(&d->p, d->C, d->D, 3, numel, off);
  if (!err) err = dp_alloc(d, dist_comm_size(d->comm));
  if (err) {
    dp_destroy(&m);
    return SCL_TRACE(err);
  }
  d->off_g = off[0];
  d->off_e = off[1];
  d->off_keys = off[2];
  /* h.1: G, E and keys U(-1, 1) and the head timm trunc-normal(0.02) with zero bias; coda: U(0,
   * 1) (nn.init.uniform_) and nn.Linear's head */
  const float lo = coda ? 0.0f : -1.0f;
  learn_prompt_uniform(d->p.param + d->off_g, d->G * 2, d->Lg * d->D, lo, 1.0f, ctx->seed,
                       TAG_DP_G);
  learn_prompt_uniform(d->p.param + d->off_e, d->E * 2 * d->M, d->L * d->D, lo, 1.0f, ctx->seed,
                       TAG_DP_E);
  learn_prompt_uniform(d->p.param + d->off_keys, d->NK * d->M, d->D, lo, 1.0f, ctx->seed,
                       TAG_DP_KEYS);
  learn_prompt_head_init_rows(&d->p, coda ? LEARN_PROMPT_HEAD_TORCH : LEARN_PROMPT_HEAD_TIMM,
                              ctx->seed, TAG_DP_HEAD);
  *out = m;
  return SCL_OK;
}
