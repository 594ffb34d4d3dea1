/* vit_trainer.c: the training forward/backward through the frozen ViT with a learner's PET block
 * (pet.h): memory layout, the public entry points, and the cost model for the planner.
 *
 * Memory discipline (ViT-B/16, batch 16, adapters: about 1.0 GB of caches beside the 343 MB of
 * weights). A block keeps only what its backward cannot rebuild cheaply: its input and the two
 * LayerNorm statistics (not the normalised outputs, rebuilt in one pass), the qkv output (the
 * attention probabilities are recomputed per head, which costs one small GEMM instead of
 * B*H*N*N floats per block), the residual stream after attention, and the fc1 pre-activation
 * (the GELU output is rebuilt from it); SSF adds the two linear outputs its gamma gradients
 * need. How much a block keeps follows from how deep the backward goes through it (tr_level):
 * the first block of an adapter-only learner keeps only the adapter's input. The last block
 * computes its tail for the class tokens alone, in the forward as in the backward. Nothing is
 * allocated after create.
 *
 * Full fine-tuning (PET_FULL, docs/pet.md) trains the backbone itself: every weight is read from
 * the learner's copy of it (tr_weights moves the model's pointers into the copy), every block is
 * TR_FULL and the backward adds each tensor's weight gradient; the images are kept for the patch
 * embedding's, and each chunk after the first has a gradient copy of the whole backbone.
 *
 * Without PET modules (kinds == 0) nothing trains: the forward is the frozen model's and the
 * backward has nothing to accumulate (heads-only training). The frozen model's own forward is a
 * PET-less trainer too (tr_engine_create), the one place a trainer of kinds 0 allocates buffers. The forward and backward themselves
 * are in vit_trainer_forward.c and vit_trainer_backward.c. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vit_trainer_internal.h"

/* ---------------------------------------------------------------------------------------- */
/* A block's PET tensors, from the layout's fields                                           */

/* Resolves every field of block o against base with at (pet_at or pet_at_const): the one list
 * of a block's PET fields, shared by the parameter and the gradient view. */
#define TR_RESOLVE(v, at, base, o)                \
  do {                                            \
    for (int k = 0; k < PET_SSF_SITES; k++) {     \
      (v).ssf_s[k] = at(base, (o)->ssf[k].scale); \
      (v).ssf_b[k] = at(base, (o)->ssf[k].shift); \
    }                                             \
    (v).ad_dw = at(base, (o)->adapter.down_w);    \
    (v).ad_db = at(base, (o)->adapter.down_b);    \
    (v).ad_uw = at(base, (o)->adapter.up_w);      \
    (v).ad_ub = at(base, (o)->adapter.up_b);      \
    (v).pk = at(base, (o)->prefix.key);           \
    (v).pv = at(base, (o)->prefix.value);         \
    (v).pks = at(base, (o)->prefix.key_scale);    \
    (v).pvs = at(base, (o)->prefix.value_scale);  \
    (v).prompts = at(base, (o)->prompts);         \
  } while (0)

tr_pet tr_pet_at(const vit_trainer *t, const float *param, int64_t l) {
  tr_pet v;
  TR_RESOLVE(v, pet_at_const, param, &t->lay.blocks[l]);
  return v;
}

tr_grad tr_grad_at(const vit_trainer *t, float *grad, int64_t l) {
  tr_grad v;
  TR_RESOLVE(v, pet_at, grad, &t->lay.blocks[l]);
  return v;
}

/* ---------------------------------------------------------------------------------------- */
/* The backbone's weights: frozen, or the learner's full-tuning copy                         */

/* w (a tensor of vit_model.param_block) moved to the same offset in base's backbone region. The
 * const is cast away for the gradient views; the weight views are only read. */
static float *moved(const vit_trainer *t, const float *base, const float *w) {
  return (float *)base + t->lay.full + (w - t->m->param_block);
}

static vit_block_params block_moved(const vit_trainer *t, const float *base, int64_t l) {
  const vit_block_params *b = &t->m->p.blocks[l];
  return (vit_block_params){
      moved(t, base, b->norm1_w), moved(t, base, b->norm1_b), moved(t, base, b->qkv_w),
      moved(t, base, b->qkv_b),   moved(t, base, b->proj_w),  moved(t, base, b->proj_b),
      moved(t, base, b->norm2_w), moved(t, base, b->norm2_b), moved(t, base, b->fc1_w),
      moved(t, base, b->fc1_b),   moved(t, base, b->fc2_w),   moved(t, base, b->fc2_b)};
}

static vit_params all_moved(const vit_trainer *t, const float *base) {
  const vit_params *w = &t->m->p;
  return (vit_params){moved(t, base, w->patch_w),
                      moved(t, base, w->patch_b),
                      moved(t, base, w->cls_token),
                      moved(t, base, w->pos_embed),
                      NULL,
                      moved(t, base, w->norm_w),
                      moved(t, base, w->norm_b)};
}

vit_params tr_weights(const vit_trainer *t, const float *param) {
  if (!(t->pc.kinds & PET_FULL)) {
    vit_params w = t->m->p;
    w.blocks = NULL;
    return w;
  }
  return all_moved(t, param);
}

vit_block_params tr_block_weights(const vit_trainer *t, const float *param, int64_t l) {
  return !(t->pc.kinds & PET_FULL) ? t->m->p.blocks[l] : block_moved(t, param, l);
}

vit_params tr_weight_grads(const vit_trainer *t, float *grad) {
  return !(t->pc.kinds & PET_FULL) ? (vit_params){0} : all_moved(t, grad);
}

vit_block_params tr_block_grads(const vit_trainer *t, float *grad, int64_t l) {
  return !(t->pc.kinds & PET_FULL) ? (vit_block_params){0} : block_moved(t, grad, l);
}

/* ---------------------------------------------------------------------------------------- */
/* Levels and memory                                                                         */

/* Bottom-up: a block's backward must reach its input when anything below it trains (input
 * tokens enter below block 0, and full fine-tuning trains the embedding: with either, every
 * block is TR_FULL). */
static void set_levels(vit_trainer *t) {
  int below = t->lay.ssf_patch.scale >= 0 || (t->pc.kinds & (PET_INPUT_PROMPT | PET_FULL));
  for (int64_t l = 0; l < t->vc.depth; l++) {
    const pet_block *o = &t->lay.blocks[l];
    const int sample = (t->pc.kinds & PET_SAMPLE_PREFIX) && (t->pc.sample_prefix_layers >> l & 1u);
    tr_level lv = TR_SKIP;
    if (o->adapter.down_w >= 0) lv = TR_ADAPTER;
    if (o->prefix.key >= 0 || sample) lv = TR_ATTN;
    if (below || o->ssf[PET_SSF_LN1].scale >= 0 || o->prompts >= 0) lv = TR_FULL;
    t->layers[l].level = lv;
    t->layers[l].sample = sample;
    t->layers[l].rebuild_x1 = lv == TR_FULL && l < t->vc.depth - 1 && o->adapter.down_w < 0 &&
                              !(t->pc.kinds & (PET_SSF | PET_FULL));
    t->layers[l].L = sample ? t->pc.sample_prefix_len : o->prefix.key >= 0 ? t->pc.prefix_len : 0;
    if (lv != TR_SKIP) below = 1;
  }
}

/* Carves consecutive 64-byte aligned pieces out of one block; with base NULL it only counts. */
typedef struct carver {
  float *base;
  int64_t used;
} carver;

static float *carve(carver *c, int64_t n) {
  float *p = c->base ? c->base + c->used : NULL;
  c->used += scl_pad_floats(n);
  return p;
}

static void carve_layer(const vit_trainer *t, carver *c, tr_layer *y, int64_t l) {
  const int64_t R = t->max_batch * t->Nt, D = t->D;
  const int64_t Rt = l == t->vc.depth - 1 ? t->max_batch * t->nq : R;
  const int ssf = (t->pc.kinds & PET_SSF) != 0, ad = t->lay.blocks[l].adapter.down_w >= 0;
  const tr_level lv = y->level;
  if (lv == TR_FULL) {
    y->x0 = carve(c, R * D);
    y->mean1 = carve(c, R);
    y->rstd1 = carve(c, R);
  }
  if (lv >= TR_ATTN) {
    y->qkv = carve(c, R * 3 * D);
    y->mean2 = carve(c, Rt);
    y->rstd2 = carve(c, Rt);
    y->h = carve(c, Rt * t->F);
    if (ssf) y->po = carve(c, Rt * D), y->m = carve(c, Rt * D);
  }
  if (lv >= TR_ADAPTER && !y->rebuild_x1) y->x1 = carve(c, Rt * D);
  if (lv == TR_FULL && (t->pc.kinds & PET_FULL)) y->ctx = carve(c, Rt * D);
  if (lv >= TR_ADAPTER && ad) {
    y->a_pre = carve(c, Rt * t->r);
    y->mask = (uint8_t *)carve(c, (Rt * t->r + 3) / 4);
  }
}

static void carve_caches(vit_trainer *t, carver *c) {
  for (int64_t l = 0; l < t->vc.depth; l++) carve_layer(t, c, &t->layers[l], l);
  t->xf = carve(c, t->max_batch * t->nq * t->D);
  t->meanf = carve(c, t->max_batch * t->nq);
  t->rstdf = carve(c, t->max_batch * t->nq);
  if (t->lay.ssf_patch.scale >= 0) t->patch = carve(c, t->max_batch * (t->N - 1) * t->D);
  if (t->pc.kinds & PET_FULL)
    t->images = carve(c, t->max_batch * t->vc.in_chans * t->vc.img_size * t->vc.img_size);
}

static void carve_work(vit_trainer *t, carver *c) {
  const int64_t R = t->max_batch * t->Nt, D = t->D;
  const vit_config *v = &t->vc;
  t->w_x = carve(c, R * D);
  t->w_y = carve(c, R * D);
  t->w_a = carve(c, R * D);
  t->w_b = carve(c, R * D);
  t->w_qkv = carve(c, R * 3 * D);
  if (t->pc.kinds & PET_SSF) t->w_qkv2 = carve(c, R * 3 * D);
  t->w_h = carve(c, R * t->F);
  if (t->pc.kinds & PET_ADAPTER) t->w_ad = carve(c, R * 2 * t->r);
  t->w_cls = carve(c, t->max_batch * t->nq * D);
  int64_t Lmax = 0;
  for (int64_t l = 0; l < v->depth; l++)
    if (t->layers[l].L > Lmax) Lmax = t->layers[l].L;
  int64_t s = 2 * t->Nt * (Lmax + t->Nt);
  const int64_t unfold = (t->N - 1) * v->in_chans * v->patch_size * v->patch_size;
  if (unfold > s) s = unfold;
  if (t->F > s) s = t->F;
  t->scratch_stride = scl_pad_floats(s);
  t->scratch = carve(c, t->scratch_stride * t->threads);
  t->gpart = carve(c, scl_pad_floats(t->pet_count) * (tr_chunks(t->max_batch, t->threads) - 1));
}

static scl_err alloc_memory(vit_trainer *t) {
  t->layers = calloc((size_t)t->vc.depth, sizeof(tr_layer));
  SCL_CHECK(t->layers, SCL_ERR_NOMEM, "cannot allocate the trainer's layer table");
  set_levels(t);
  carver c = {NULL, 0};
  carve_caches(t, &c);
  /* zero-filled at create: the first touch of fresh pages stays out of the timed steps */
  SCL_CALL(scl_calloc((size_t)c.used * sizeof(float), "trainer activation caches",
                      (void **)&t->cache_block));
  c = (carver){t->cache_block, 0};
  carve_caches(t, &c);
  c = (carver){NULL, 0};
  carve_work(t, &c);
  SCL_CALL(
      scl_calloc((size_t)c.used * sizeof(float), "trainer working set", (void **)&t->work_block));
  c = (carver){t->work_block, 0};
  carve_work(t, &c);
  return SCL_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Cost model                                                                                */

/* 2 x multiply-adds of the matrix products one image costs, forward + backward (with full
 * fine-tuning, the weight-gradient GEMMs too: one more of each linear layer's size). */
static double step_flops(const vit_trainer *t) {
  const double D = (double)t->D, F = (double)t->F, Nt = (double)t->Nt, r = (double)t->r;
  const double K = (double)(t->vc.in_chans * t->vc.patch_size * t->vc.patch_size);
  double f = 2.0 * (double)(t->N - 1) * K * D;
  for (int64_t l = 0; l < t->vc.depth; l++) {
    const tr_layer *y = &t->layers[l];
    const int last = l == t->vc.depth - 1, ad = t->lay.blocks[l].adapter.down_w >= 0;
    const double rows = last ? (double)t->nq : Nt, Nk = (double)y->L + Nt;
    const double tail = 2.0 * rows * (D * D + 2.0 * D * F), attn = 4.0 * rows * Nk * D;
    f += 2.0 * Nt * 3.0 * D * D + attn + tail + (ad ? 4.0 * rows * D * r : 0.0);
    if (y->level == TR_ADAPTER) f += 6.0 * rows * D * r;
    if (y->level >= TR_ATTN) f += tail + 2.5 * attn + (ad ? 8.0 * rows * D * r : 0.0);
    if (y->level == TR_FULL) f += 2.0 * Nt * 3.0 * D * D;
    if (t->pc.kinds & PET_FULL) f += 2.0 * Nt * 3.0 * D * D + tail; /* weight gradients */
  }
  if (t->pc.kinds & PET_FULL) f += 2.0 * (double)(t->N - 1) * K * D;
  return f;
}

/* ---------------------------------------------------------------------------------------- */
/* Create / destroy                                                                          */

/* The per-image kinds: sizes in range, and no combination the sequence layout cannot hold. */
static scl_err check_prompt_config(const vit_config *v, const pet_config *cfg) {
  const uint32_t in_depth = v->depth >= 32 ? 0xffffffffu : (1u << v->depth) - 1u;
  if (cfg->kinds & PET_INPUT_PROMPT) {
    if (cfg->input_tokens < 1 || cfg->input_tokens > 4096)
      return SCL_ERROR(SCL_ERR_ARG, "input prompts: input_tokens %lld is outside [1, 4096]",
                       (long long)cfg->input_tokens);
    if (cfg->kinds & (PET_VPT_DEEP | PET_VPT_SHALLOW | PET_SSF))
      return SCL_ERROR(SCL_ERR_ARG,
                       "input prompts (after the class token) cannot be combined with VPT or SSF");
  }
  if (cfg->kinds & PET_SAMPLE_PREFIX) {
    if (cfg->sample_prefix_len < 1 || cfg->sample_prefix_len > 4096)
      return SCL_ERROR(SCL_ERR_ARG,
                       "per-image prefixes: sample_prefix_len %lld is outside [1, 4096]",
                       (long long)cfg->sample_prefix_len);
    if (cfg->sample_prefix_layers == 0 || (cfg->sample_prefix_layers & ~in_depth))
      return SCL_ERROR(SCL_ERR_ARG,
                       "per-image prefixes: sample_prefix_layers 0x%x names no block or a block "
                       ">= depth %lld",
                       cfg->sample_prefix_layers, (long long)v->depth);
    if ((cfg->kinds & PET_PREFIX) && (cfg->prefix_layers & cfg->sample_prefix_layers))
      return SCL_ERROR(SCL_ERR_ARG,
                       "shared and per-image prefixes on the same blocks (0x%x): one prefix per "
                       "block",
                       cfg->prefix_layers & cfg->sample_prefix_layers);
  }
  return SCL_OK;
}

static scl_err check_config(const vit_model *m, const pet_config *cfg, int64_t max_batch,
                            int threads) {
  SCL_CHECK(m, SCL_ERR_ARG, "trainer without a backbone");
  SCL_CHECK(max_batch >= 1 && max_batch <= (1 << 20), SCL_ERR_ARG,
            "trainer max_batch %lld is outside [1, 2^20]", (long long)max_batch);
  SCL_CHECK(threads >= 0 && threads <= 1024, SCL_ERR_ARG,
            "trainer thread count %d is outside [0, 1024]", threads);
  const unsigned all = PET_ADAPTER | PET_SSF | PET_VPT_DEEP | PET_VPT_SHALLOW | PET_PREFIX |
                       PET_INPUT_PROMPT | PET_SAMPLE_PREFIX | PET_FULL;
  if (cfg->kinds & ~all) return SCL_ERROR(SCL_ERR_ARG, "unknown PET kinds 0x%x", cfg->kinds);
  SCL_CALL(check_prompt_config(&m->cfg, cfg));
  if ((cfg->kinds & PET_VPT_DEEP) && (cfg->kinds & PET_VPT_SHALLOW))
    return SCL_ERROR(SCL_ERR_ARG, "VPT cannot be both deep and shallow");
  if ((cfg->kinds & PET_PREFIX) && (cfg->prefix_len < 1 || cfg->prefix_layers == 0))
    return SCL_ERROR(SCL_ERR_ARG, "prefix tuning with length %lld on layer set 0x%x",
                     (long long)cfg->prefix_len, cfg->prefix_layers);
  if ((cfg->kinds & PET_ADAPTER) && (cfg->adapter_dropout < 0.0f || cfg->adapter_dropout >= 1.0f))
    return SCL_ERROR(SCL_ERR_ARG, "adapter dropout %g is outside [0, 1)",
                     (double)cfg->adapter_dropout);
  return SCL_OK;
}

/* Never more threads than cores: a second thread on a core only slows its GEMMs. */
static int thread_count(int requested) {
  int n = requested > 0 ? requested : openblas_get_num_threads();
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  if (cores > 0 && n > cores) n = (int)cores;
  return n < 1 ? 1 : n;
}

/* engine: the frozen model's own forward (tr_engine_create), which needs its buffers even
 * without PET; a PET-less trainer otherwise forwards through that engine and allocates nothing. */
static scl_err trainer_setup(vit_trainer *t, int engine) {
  const vit_config *v = &t->vc;
  t->N = vit_config_tokens(v);
  t->Nt = pet_config_tokens(v, &t->pc);
  t->Tin = (t->pc.kinds & PET_INPUT_PROMPT) ? t->pc.input_tokens : 0;
  t->T = t->Nt - t->N - t->Tin;
  t->nq = t->pc.pool_input_tokens ? 1 + t->Tin : 1;
  t->per_image = (t->pc.kinds & (PET_INPUT_PROMPT | PET_SAMPLE_PREFIX)) != 0;
  t->D = v->width, t->F = v->mlp_hidden, t->H = v->heads;
  t->r = (t->pc.kinds & PET_ADAPTER) ? t->pc.adapter_dim : 0;
  if (t->pc.kinds == 0 && !engine) return SCL_OK;
  SCL_CALL(pet_layout_create(v, &t->pc, &t->lay));
  t->pet_count = t->lay.count;
  if (t->pc.kinds & PET_FULL) { /* the copy is the model's block byte for byte (tr_weights) */
    const vit_tensor *last = &t->m->tensors[t->m->n_tensors - 1];
    const int64_t n = (int64_t)(last->data - t->m->param_block) + scl_pad_floats(last->numel);
    SCL_CHECK(t->lay.count - t->lay.full == n, SCL_ERR_ARG,
              "full fine-tuning: the PET layout's backbone region has %lld floats, the model's "
              "parameter block %lld",
              (long long)(t->lay.count - t->lay.full), (long long)n);
  }
  SCL_CALL(alloc_memory(t));
  SCL_CALL(vit_pool_create(t->threads, &t->pool));
  t->flops = step_flops(t);
  return SCL_OK;
}

static scl_err create(const vit_model *backbone, const pet_config *cfg, int64_t max_batch,
                      int threads, int engine, vit_trainer **out) {
  *out = NULL;
  vit_trainer *t = NULL;
  t = calloc(1, sizeof *t);
  SCL_CHECK(t, SCL_ERR_NOMEM, "cannot allocate a trainer");
  t->m = backbone;
  t->vc = backbone->cfg;
  t->pc = *cfg;
  t->max_batch = max_batch;
  t->threads = threads;
  scl_err err = trainer_setup(t, engine);
  if (err) {
    vit_trainer_destroy(&t);
    return SCL_TRACE(err);
  }
  *out = t;
  return SCL_OK;
}

scl_err vit_trainer_create(const vit_model *backbone, const pet_config *cfg, int64_t max_batch,
                           int threads, vit_trainer **out) {
  *out = NULL;
  SCL_CALL(check_config(backbone, cfg, max_batch, threads));
  SCL_CALL(create(backbone, cfg, max_batch, thread_count(threads), 0, out));
  return SCL_OK;
}

scl_err tr_engine_create(const vit_model *m, vit_trainer **out) {
  const pet_config none = {0};
  SCL_CALL(create(m, &none, m->max_batch, m->threads, 1, out));
  return SCL_OK;
}

/* Floats of a working set laid out by carve_work for t's shape with max_batch images (counted
 * on a copy: counting sets the carved pointers to NULL). */
static int64_t work_floats(const vit_trainer *t, int64_t max_batch) {
  vit_trainer copy = *t;
  copy.max_batch = max_batch;
  carver c = {NULL, 0};
  carve_work(&copy, &c);
  return c.used;
}

/* Carves m's engine over t's working set with the largest max_batch that fits (m->max_batch
 * follows); 0 when not even one image fits (nothing changed). The engine's own set is gone. */
static int lend(vit_trainer *t, vit_model *m) {
  vit_trainer *e = m->engine;
  const int64_t have = work_floats(t, t->max_batch);
  int64_t mb = e->max_batch;
  while (mb >= 1 && work_floats(e, mb) > have) mb--;
  if (mb < 1) return 0;
  e->max_batch = mb;
  e->work_block = t->work_block;
  e->work_lent = 1;
  carver c = {e->work_block, 0};
  carve_work(e, &c);
  m->max_batch = mb;
  t->lent_to = m;
  return 1;
}

/* The engine gets a working set of its own again (of its current max_batch); if that
 * allocation fails the model is left with max_batch 0, and its forward says so. */
static void own_work(vit_model *m) {
  vit_trainer *e = m->engine;
  e->work_block = NULL;
  e->work_lent = 0;
  if (scl_calloc((size_t)work_floats(e, e->max_batch) * sizeof(float), "trainer working set",
                 (void **)&e->work_block)) {
    scl_error_take(NULL, 0);
    m->max_batch = 0;
    return;
  }
  carver c = {e->work_block, 0};
  carve_work(e, &c);
}

scl_err vit_trainer_create_lending(vit_model *backbone, const pet_config *cfg, int64_t max_batch,
                                   int threads, vit_trainer **out) {
  *out = NULL;
  vit_trainer *e = backbone->engine;
  SCL_CHECK(e && !e->work_lent, SCL_ERR_ARG,
            "trainer create: the model's forward already runs in a lent working set");
  /* freed first, so that the engine's and the trainer's sets are never resident together */
  scl_free(e->work_block);
  e->work_block = NULL;
  scl_err err = vit_trainer_create(backbone, cfg, max_batch, threads, out);
  if (err || !lend(*out, backbone)) own_work(backbone);
  if (err) return SCL_TRACE(err);
  return SCL_OK;
}

void vit_trainer_destroy(vit_trainer **tp) {
  if (!tp || !*tp) return;
  vit_trainer *t = *tp;
  if (t->lent_to) own_work(t->lent_to); /* the lender goes: the engine needs its own again */
  vit_pool_destroy(&t->pool);
  scl_free(t->cache_block);
  if (!t->work_lent) scl_free(t->work_block);
  free(t->layers);
  pet_layout_destroy(&t->lay);
  free(t);
  *tp = NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Entry points                                                                              */

static scl_err frozen_forward(vit_trainer *t, const float *images, int64_t B, float *cls_out) {
  vit_model *m = (vit_model *)t->m; /* its activation buffers are scratch; weights stay frozen */
  const int64_t chunk = m->max_batch, img = t->vc.in_chans * t->vc.img_size * t->vc.img_size;
  for (int64_t b0 = 0; b0 < B; b0 += chunk) {
    int64_t n = B - b0 < chunk ? B - b0 : chunk;
    SCL_CALL(vit_model_forward(m, images + b0 * img, n, cls_out + b0 * t->D));
  }
  return SCL_OK;
}

/* Kinds whose tensors live in pet_params (the per-image kinds come with each call). */
#define TR_TENSOR_KINDS \
  (PET_ADAPTER | PET_SSF | PET_VPT_DEEP | PET_VPT_SHALLOW | PET_PREFIX | PET_FULL)

/* The per-image inputs the config needs are all there, and io is absent without them. */
static scl_err check_io(const vit_trainer *t, const vit_prompt_io *io, const char *what) {
  const int needs = (t->pc.kinds & (PET_INPUT_PROMPT | PET_SAMPLE_PREFIX)) != 0;
  if (!needs && io)
    return SCL_ERROR(SCL_ERR_ARG,
                     "trainer %s: per-image prompt inputs given, but the trainer has neither input "
                     "prompts nor per-image prefixes",
                     what);
  if (needs && !io)
    return SCL_ERROR(SCL_ERR_ARG,
                     "trainer %s: the trainer's %s need per-image prompt inputs (vit_prompt_io), "
                     "none given",
                     what,
                     (t->pc.kinds & PET_INPUT_PROMPT) ? "input prompts" : "per-image prefixes");
  if (!needs) return SCL_OK;
  if ((t->pc.kinds & PET_INPUT_PROMPT) && !io->tokens)
    return SCL_ERROR(SCL_ERR_ARG, "trainer %s: input prompts without vit_prompt_io.tokens", what);
  for (int64_t l = 0; l < PET_MAX_LAYERS; l++) {
    const int want = l < t->vc.depth && t->layers[l].sample;
    if (want && (!io->pk[l] || !io->pv[l]))
      return SCL_ERROR(SCL_ERR_ARG,
                       "trainer %s: per-image prefixes at block %lld without pk[%lld] "
                       "and pv[%lld]",
                       what, (long long)l, (long long)l, (long long)l);
    if (!want && (io->pk[l] || io->pv[l] || io->dpk[l] || io->dpv[l]))
      return SCL_ERROR(SCL_ERR_ARG,
                       "trainer %s: per-image prefixes given at block %lld, which has none "
                       "(sample_prefix_layers 0x%x)",
                       what, (long long)l, t->pc.sample_prefix_layers);
  }
  return SCL_OK;
}

static scl_err check_call(const vit_trainer *t, const pet_params *p, int64_t B,
                          const vit_prompt_io *io, const char *what) {
  SCL_CHECK(B >= 1 && B <= t->max_batch, SCL_ERR_ARG, "trainer %s of %lld images (at most %lld)",
            what, (long long)B, (long long)t->max_batch);
  char have[96], want[96];
  pet_kinds_format(t->pc.kinds, want, sizeof want);
  if (p && (p->cfg.kinds != t->pc.kinds || (t->pc.kinds && p->count != t->pet_count)))
    return SCL_ERROR(SCL_ERR_ARG,
                     "trainer %s: PET block of kinds %s (%lld floats) on a trainer of kinds %s "
                     "(%lld floats)",
                     what, pet_kinds_format(p->cfg.kinds, have, sizeof have), (long long)p->count,
                     want, (long long)t->pet_count);
  if ((t->pc.kinds & TR_TENSOR_KINDS) && !p)
    return SCL_ERROR(SCL_ERR_ARG, "trainer %s: the trainer has PET kinds %s but no PET block", what,
                     want);
  SCL_CALL(check_io(t, io, what));
  return SCL_OK;
}

/* Runs fn on the team with OpenBLAS single-threaded inside it. */
static void run_team(vit_trainer *t, vit_pool_fn fn, void *job) {
  const int blas_threads = openblas_get_num_threads();
  openblas_set_num_threads(1);
  vit_pool_run(t->pool, fn, job);
  openblas_set_num_threads(blas_threads);
}

scl_err vit_trainer_forward_io(vit_trainer *t, const pet_params *p, const float *images, int64_t B,
                               const vit_dropout_key *key, const vit_prompt_io *io, float *out) {
  SCL_CALL(check_call(t, p, B, io, "forward"));
  SCL_CHECK(images && out, SCL_ERR_ARG, "trainer forward: NULL images or output");
  t->fwd_B = 0;
  if (t->pc.kinds == 0) {
    SCL_CALL(frozen_forward(t, images, B, out));
    t->fwd_B = B;
    return SCL_OK;
  }
  const int masked = key && t->r > 0 && t->pc.adapter_dropout > 0.0f;
  if (masked && !key->index)
    return SCL_ERROR(SCL_ERR_ARG, "trainer forward: dropout key without sample indices");
  tr_fwd_job job = {.t = t,
                    .param = p ? p->param : NULL,
                    .images = images,
                    .B = B,
                    .key = masked ? key : NULL,
                    .io = io,
                    .keep = 1,
                    .cls_out = out,
                    .n_chunks = tr_chunks(B, t->threads)};
  run_team(t, tr_forward_thread, &job);
  t->fwd_B = B;
  t->fwd_masked = masked;
  return SCL_OK;
}

scl_err vit_trainer_forward(vit_trainer *t, const pet_params *p, const float *images, int64_t B,
                            const vit_dropout_key *key, float *cls_out) {
  SCL_CALL(vit_trainer_forward_io(t, p, images, B, key, NULL, cls_out));
  return SCL_OK;
}

/* p->grad += the gradient copies of chunks 1..n-1 (vit_trainer_internal.h), split over the team
 * by element ranges: every element adds the copies in chunk order, so the sum does not depend on
 * the split or on which thread ran which chunk. */
typedef struct sum_job {
  const vit_trainer *t;
  float *grad;
  int64_t n_chunks;
} sum_job;

static void sum_thread(void *arg, int tid, int nthreads) {
  const sum_job *j = arg;
  const int64_t n = j->t->pet_count, stride = scl_pad_floats(n);
  const int64_t i0 = n * tid / nthreads, i1 = n * (tid + 1) / nthreads;
  for (int64_t k = 1; k < j->n_chunks; k++) {
    const float *g = j->t->gpart + (k - 1) * stride;
    for (int64_t i = i0; i < i1; i++) j->grad[i] += g[i];
  }
}

scl_err vit_trainer_backward_io(vit_trainer *t, pet_params *p, const float *dout, int64_t B,
                                const vit_prompt_io *io) {
  SCL_CALL(check_call(t, p, B, io, "backward"));
  SCL_CHECK(dout, SCL_ERR_ARG, "trainer backward: NULL output gradient");
  SCL_CHECK(t->fwd_B == B, SCL_ERR_ARG, "trainer backward of %lld images after a forward of %lld",
            (long long)B, (long long)t->fwd_B);
  if (t->pc.kinds == 0) return SCL_OK; /* nothing upstream of the features trains */
  const int64_t n = tr_chunks(B, t->threads);
  tr_bwd_job job = {t, p ? p->param : NULL, p ? p->grad : NULL, dout, io, B, n, 0};
  run_team(t, tr_backward_thread, &job);
  if (n > 1 && p && t->pet_count > 0) { /* the chunks' copies, added by the team */
    sum_job sum = {t, p->grad, n};
    vit_pool_run(t->pool, sum_thread, &sum);
  }
  return SCL_OK;
}

scl_err vit_trainer_backward(vit_trainer *t, pet_params *p, const float *dcls, int64_t B) {
  SCL_CALL(vit_trainer_backward_io(t, p, dcls, B, NULL));
  return SCL_OK;
}

/* io with every input pointer moved to image b0 (gradients are not read by inference). */
static vit_prompt_io io_from(const vit_trainer *t, const vit_prompt_io *io, int64_t b0) {
  vit_prompt_io o = {0};
  if (io->tokens) o.tokens = io->tokens + b0 * t->Tin * t->D;
  for (int64_t l = 0; l < t->vc.depth; l++) {
    const int64_t s = b0 * t->layers[l].L * t->D;
    if (io->pk[l]) o.pk[l] = io->pk[l] + s;
    if (io->pv[l]) o.pv[l] = io->pv[l] + s;
  }
  return o;
}

scl_err vit_trainer_infer_io(vit_trainer *t, const pet_params *p, const float *images, int64_t B,
                             const vit_prompt_io *io, float *out) {
  SCL_CHECK(images && out, SCL_ERR_ARG, "trainer inference: NULL images or output");
  SCL_CHECK(B >= 1, SCL_ERR_ARG, "trainer inference of %lld images", (long long)B);
  if (t->pc.kinds == 0 || (!p && !(t->pc.kinds & ~TR_TENSOR_KINDS))) {
    SCL_CALL(check_io(t, io, "inference")); /* the pre-trained model: io never applies */
    SCL_CALL(frozen_forward(t, images, B, out));
    return SCL_OK;
  }
  SCL_CALL(check_call(t, p, 1, io, "inference"));
  const int64_t img = t->vc.in_chans * t->vc.img_size * t->vc.img_size;
  for (int64_t b0 = 0; b0 < B; b0 += t->max_batch) {
    const int64_t n = B - b0 < t->max_batch ? B - b0 : t->max_batch;
    const vit_prompt_io shifted = io ? io_from(t, io, b0) : (vit_prompt_io){0};
    tr_fwd_job job = {.t = t,
                      .param = p ? p->param : NULL,
                      .images = images + b0 * img,
                      .B = n,
                      .io = io ? &shifted : NULL,
                      .cls_out = out + b0 * t->D,
                      .n_chunks = tr_chunks(n, t->threads)};
    run_team(t, tr_forward_thread, &job);
  }
  return SCL_OK;
}

scl_err vit_trainer_infer(vit_trainer *t, const pet_params *p, const float *images, int64_t B,
                          float *cls_out) {
  SCL_CHECK(images && cls_out, SCL_ERR_ARG, "trainer inference: NULL images or output");
  SCL_CHECK(B >= 1, SCL_ERR_ARG, "trainer inference of %lld images", (long long)B);
  if (!p || p->cfg.kinds == 0) { /* the pre-trained model, whatever the trainer's kinds */
    SCL_CALL(frozen_forward(t, images, B, cls_out));
    return SCL_OK;
  }
  SCL_CALL(vit_trainer_infer_io(t, p, images, B, NULL, cls_out));
  return SCL_OK;
}

void tr_engine_forward(vit_trainer *t, const float *images, int64_t B, float *cls_out) {
  t->per_image = t->m->per_image; /* the engine's trainer follows its model's switch */
  tr_fwd_job job = {.t = t,
                    .images = images,
                    .B = B,
                    .cls_out = cls_out,
                    .n_chunks = tr_chunks(B, t->threads),
                    .rows = !t->per_image && B % t->threads != 0};
  run_team(t, tr_forward_thread, &job);
}

double vit_trainer_flops_per_image(const vit_trainer *t) {
  return t->pc.kinds ? t->flops : vit_config_flops_per_image(&t->vc);
}
