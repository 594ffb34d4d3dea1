/* vit_model.c: the frozen ViT's memory: one parameter block with a table of named views, the
 * forward engine (a PET-less trainer, vit_trainer.c, which owns the activations and the thread
 * team), and deterministic random weights.
 *
 * Every tensor starts on a 64-byte boundary inside the parameter block, so the block is a few
 * floats larger than the parameter count. The parameter block and the engine's activations are
 * zero-filled at create time: that first touch is what makes fresh memory slow (~1 GB/s here),
 * and doing it once at setup keeps it out of every timed forward. */
#include "safecl/vit.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vit_trainer_internal.h"

#define PARAMS_PER_BLOCK 12

static void set_tensor(vit_tensor *t, const char *name, int ndim, const int64_t *shape) {
  snprintf(t->name, sizeof t->name, "%s", name);
  t->ndim = ndim;
  t->numel = 1;
  for (int i = 0; i < ndim; i++) {
    t->shape[i] = shape[i];
    t->numel *= shape[i];
  }
}

static int tensor_count(const vit_config *c) { return 4 + PARAMS_PER_BLOCK * (int)c->depth + 2; }

/* Names and shapes of every tensor, in timm's state_dict order. */
static void describe_tensors(const vit_config *c, vit_tensor *t) {
  const int64_t D = c->width, F = c->mlp_hidden, N = vit_config_tokens(c), P = c->patch_size;
  static const char *block_names[PARAMS_PER_BLOCK] = {
      "norm1.weight",     "norm1.bias",     "attn.qkv.weight", "attn.qkv.bias",
      "attn.proj.weight", "attn.proj.bias", "norm2.weight",    "norm2.bias",
      "mlp.fc1.weight",   "mlp.fc1.bias",   "mlp.fc2.weight",  "mlp.fc2.bias"};
  const int64_t block_shapes[PARAMS_PER_BLOCK][2] = {{D}, {D}, {3 * D, D}, {3 * D}, {D, D}, {D},
                                                     {D}, {D}, {F, D},     {F},     {D, F}, {D}};
  const int block_ndim[PARAMS_PER_BLOCK] = {1, 1, 2, 1, 2, 1, 1, 1, 2, 1, 2, 1};
  set_tensor(t++, "patch_embed.proj.weight", 4, (int64_t[]){D, c->in_chans, P, P});
  set_tensor(t++, "patch_embed.proj.bias", 1, (int64_t[]){D});
  set_tensor(t++, "cls_token", 3, (int64_t[]){1, 1, D});
  set_tensor(t++, "pos_embed", 3, (int64_t[]){1, N, D});
  for (int64_t l = 0; l < c->depth; l++)
    for (int j = 0; j < PARAMS_PER_BLOCK; j++) {
      char name[48];
      snprintf(name, sizeof name, "blocks.%lld.%s", (long long)l, block_names[j]);
      set_tensor(t++, name, block_ndim[j], block_shapes[j]);
    }
  set_tensor(t++, "norm.weight", 1, (int64_t[]){D});
  set_tensor(t, "norm.bias", 1, (int64_t[]){D});
}

/* Points the typed views (vit_params) at the tensors laid out by describe_tensors. */
static void bind_params(vit_model *m) {
  vit_tensor *t = m->tensors;
  m->p.patch_w = t[0].data;
  m->p.patch_b = t[1].data;
  m->p.cls_token = t[2].data;
  m->p.pos_embed = t[3].data;
  for (int64_t l = 0; l < m->cfg.depth; l++) {
    vit_tensor *b = t + 4 + l * PARAMS_PER_BLOCK;
    m->p.blocks[l] =
        (vit_block_params){b[0].data, b[1].data, b[2].data, b[3].data, b[4].data,  b[5].data,
                           b[6].data, b[7].data, b[8].data, b[9].data, b[10].data, b[11].data};
  }
  m->p.norm_w = t[m->n_tensors - 2].data;
  m->p.norm_b = t[m->n_tensors - 1].data;
}

static scl_err alloc_params(vit_model *m) {
  m->n_tensors = tensor_count(&m->cfg);
  m->tensors = calloc((size_t)m->n_tensors, sizeof(vit_tensor));
  m->p.blocks = calloc((size_t)m->cfg.depth, sizeof(vit_block_params));
  SCL_CHECK(m->tensors && m->p.blocks, SCL_ERR_NOMEM, "cannot allocate the ViT tensor tables");
  describe_tensors(&m->cfg, m->tensors);
  int64_t total = 0;
  m->param_count = 0;
  for (int i = 0; i < m->n_tensors; i++) {
    total += scl_pad_floats(m->tensors[i].numel);
    m->param_count += m->tensors[i].numel;
  }
  SCL_CALL(
      scl_calloc((size_t)total * sizeof(float), "ViT frozen parameters", (void **)&m->param_block));
  int64_t off = 0;
  for (int i = 0; i < m->n_tensors; i++) {
    m->tensors[i].data = m->param_block + off;
    off += scl_pad_floats(m->tensors[i].numel);
  }
  bind_params(m);
  return SCL_OK;
}

static scl_err model_setup(vit_model *m) {
  SCL_CALL(alloc_params(m));
  SCL_CALL(tr_engine_create(m, &m->engine));
  return SCL_OK;
}

scl_err vit_model_create(const vit_config *cfg, int64_t max_batch, int threads, vit_model **out) {
  *out = NULL;
  SCL_CALL(vit_config_validate(cfg));
  SCL_CHECK(max_batch >= 1 && max_batch <= (1 << 20), SCL_ERR_ARG,
            "ViT '%s': max_batch %lld is outside [1, 2^20]", cfg->name, (long long)max_batch);
  SCL_CHECK(threads >= 0 && threads <= 1024, SCL_ERR_ARG,
            "ViT '%s': thread count %d is outside [0, 1024]", cfg->name, threads);
  vit_model *m = NULL;
  m = calloc(1, sizeof *m);
  SCL_CHECK(m, SCL_ERR_NOMEM, "cannot allocate a ViT model");
  m->cfg = *cfg;
  m->max_batch = max_batch;
  m->tokens = vit_config_tokens(cfg);
  m->threads = threads > 0 ? threads : openblas_get_num_threads();
  if (m->threads < 1) m->threads = 1;
  scl_err err = model_setup(m);
  if (err) {
    vit_model_destroy(&m);
    return SCL_TRACE(err);
  }
  *out = m;
  return SCL_OK;
}

void vit_model_destroy(vit_model **mp) {
  if (!mp || !*mp) return;
  vit_model *m = *mp;
  vit_trainer_destroy(&m->engine);
  scl_free(m->param_block);
  free(m->p.blocks);
  free(m->tensors);
  free(m);
  *mp = NULL;
}

const vit_tensor *vit_model_find(const vit_model *m, const char *name) {
  for (int i = 0; i < m->n_tensors; i++)
    if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
  return NULL;
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}

void vit_model_init_random(vit_model *m, uint64_t seed) {
  const float half_width = 0.02f * 1.7320508f; /* uniform(-a, a) has std a / sqrt(3) */
  for (int i = 0; i < m->n_tensors; i++) {
    vit_tensor *t = &m->tensors[i];
    int is_norm = strncmp(t->name, "norm", 4) == 0 || strstr(t->name, ".norm") != NULL;
    if (ends_with(t->name, "bias") || (is_norm && ends_with(t->name, "weight"))) {
      float v = ends_with(t->name, "weight") ? 1.0f : 0.0f;
      for (int64_t j = 0; j < t->numel; j++) t->data[j] = v;
      continue;
    }
    scl_rng rng;
    scl_rng_init(&rng, seed, SCL_STREAM_INIT, 0, (uint32_t)i);
    for (int64_t j = 0; j < t->numel; j++)
      t->data[j] = half_width * (2.0f * scl_rng_uniformf(&rng) - 1.0f);
  }
}
