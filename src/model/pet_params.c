/* pet_params.c: the trainable block of one learner: layout of every PET tensor in one aligned
 * array (plus a gradient array of the same layout), the released initialisation, copies.
 *
 * Layout order is fixed (patch/global tensors, then block by block, then final), so two learners
 * of the same config have identical offsets and a gradient sync or a checkpoint is one buffer.
 * Initial values come from the counter RNG keyed by (seed, SCL_STREAM_INIT, tag, tensor index):
 * the same on every rank and independent of any other draw. */
#include "safecl/pet.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { INIT_ZERO, INIT_ONE_NOISE, INIT_NOISE, INIT_KAIMING, INIT_XAVIER } init_kind;

typedef struct layout {
  pet_tensor *t;
  init_kind *init;
  int n, cap;
  int64_t count;
} layout;

static scl_err add(layout *L, init_kind init, int ndim, int64_t d0, int64_t d1, int64_t d2,
                   const char *fmt, ...) SCL_PRINTF(7, 8);
static scl_err add(layout *L, init_kind init, int ndim, int64_t d0, int64_t d1, int64_t d2,
                   const char *fmt, ...) {
  if (L->n == PET_MAX_TENSORS)
    return SCL_ERROR(SCL_ERR_ARG, "PET block has more than %d tensors", PET_MAX_TENSORS);
  pet_tensor *t = &L->t[L->n];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t->name, sizeof t->name, fmt, ap);
  va_end(ap);
  t->ndim = ndim;
  t->shape[0] = d0;
  t->shape[1] = d1;
  t->shape[2] = d2;
  t->numel = d0 * (ndim > 1 ? d1 : 1) * (ndim > 2 ? d2 : 1);
  t->offset = L->count;
  L->count += (t->numel + 15) / 16 * 16; /* 64-byte aligned tensors */
  L->init[L->n++] = init;
  return SCL_OK;
}

static scl_err add_ssf(layout *L, int64_t n, const char *where) {
  SCL_CALL(add(L, INIT_ONE_NOISE, 1, n, 0, 0, "%s.scale", where));
  SCL_CALL(add(L, INIT_NOISE, 1, n, 0, 0, "%s.shift", where));
  return SCL_OK;
}

static scl_err build(layout *L, const vit_config *v, const pet_config *c) {
  const int64_t D = v->width, F = v->mlp_hidden;
  if (c->kinds & PET_SSF) SCL_CALL(add_ssf(L, D, "ssf.patch"));
  if (c->kinds & (PET_VPT_DEEP | PET_VPT_SHALLOW))
    SCL_CALL(add(L, c->vpt_xavier ? INIT_XAVIER : INIT_ZERO, 3,
                 (c->kinds & PET_VPT_DEEP) ? v->depth : 1, c->vpt_tokens, D, "vpt.prompts"));
  for (int64_t i = 0; i < v->depth; i++) {
    char b[32];
    snprintf(b, sizeof b, "blocks.%lld", (long long)i);
    if (c->kinds & PET_SSF) {
      static const char *const pts[] = {"ln1", "qkv", "proj", "ln2", "fc1", "fc2"};
      const int64_t width[] = {D, 3 * D, D, D, F, D};
      for (int k = 0; k < 6; k++) {
        char where[64];
        snprintf(where, sizeof where, "%s.ssf.%s", b, pts[k]);
        SCL_CALL(add_ssf(L, width[k], where));
      }
    }
    if (c->kinds & PET_ADAPTER) {
      SCL_CALL(add(L, INIT_KAIMING, 2, c->adapter_dim, D, 0, "%s.adapter.down.weight", b));
      SCL_CALL(add(L, INIT_ZERO, 1, c->adapter_dim, 0, 0, "%s.adapter.down.bias", b));
      SCL_CALL(add(L, INIT_ZERO, 2, D, c->adapter_dim, 0, "%s.adapter.up.weight", b));
      SCL_CALL(add(L, INIT_ZERO, 1, D, 0, 0, "%s.adapter.up.bias", b));
    }
    if ((c->kinds & PET_PREFIX) && (c->prefix_layers >> i & 1u)) {
      SCL_CALL(add(L, INIT_NOISE, 2, c->prefix_len, D, 0, "prefix.%lld.key", (long long)i));
      SCL_CALL(add(L, INIT_NOISE, 2, c->prefix_len, D, 0, "prefix.%lld.value", (long long)i));
    }
  }
  if (c->kinds & PET_SSF) SCL_CALL(add_ssf(L, D, "ssf.norm"));
  return SCL_OK;
}

scl_err pet_params_create(const vit_config *vit, const pet_config *cfg, pet_params **out) {
  *out = NULL;
  if ((cfg->kinds & PET_ADAPTER) && cfg->adapter_dim < 1)
    return SCL_ERROR(SCL_ERR_ARG, "adapter bottleneck %lld", (long long)cfg->adapter_dim);
  if ((cfg->kinds & (PET_VPT_DEEP | PET_VPT_SHALLOW)) && cfg->vpt_tokens < 1)
    return SCL_ERROR(SCL_ERR_ARG, "VPT with %lld tokens", (long long)cfg->vpt_tokens);
  pet_params *p = calloc(1, sizeof *p);
  layout L = {0};
  L.t = calloc(PET_MAX_TENSORS, sizeof *L.t);
  L.init = calloc(PET_MAX_TENSORS, sizeof *L.init);
  scl_err err = SCL_OK;
  if (!p || !L.t || !L.init) SCL_ERROR_GOTO(err, fail, SCL_ERR_NOMEM, "PET block");
  SCL_CALL_GOTO(err, build(&L, vit, cfg), fail);
  p->cfg = *cfg;
  p->vit = *vit;
  p->count = L.count;
  p->tensors = L.t;
  p->n_tensors = L.n;
  p->init_kinds = (int *)L.init;
  size_t bytes = (size_t)(L.count ? L.count : 1) * sizeof(float);
  SCL_CALL_GOTO(err, scl_calloc(bytes, "PET parameters", (void **)&p->param), fail);
  SCL_CALL_GOTO(err, scl_calloc(bytes, "PET gradients", (void **)&p->grad), fail);
  *out = p;
  return SCL_OK;
fail:
  if (p) {
    p->tensors = L.t;
    p->init_kinds = (int *)L.init;
    L.t = NULL;
    L.init = NULL;
  }
  free(L.t);
  free(L.init);
  pet_params_destroy(&p);
  return err;
}

void pet_params_destroy(pet_params **p) {
  if (!p || !*p) return;
  scl_free((*p)->param);
  scl_free((*p)->grad);
  free((*p)->tensors);
  free((*p)->init_kinds);
  free(*p);
  *p = NULL;
}

void pet_params_init(pet_params *p, uint64_t seed, uint32_t tag) {
  memset(p->param, 0, (size_t)p->count * sizeof(float));
  for (int i = 0; i < p->n_tensors; i++) {
    const pet_tensor *t = &p->tensors[i];
    float *x = p->param + t->offset;
    scl_rng r;
    scl_rng_init(&r, seed, SCL_STREAM_INIT, tag, (uint32_t)i);
    int64_t fan_in = t->ndim >= 2 ? t->shape[t->ndim - 1] : t->numel;
    for (int64_t k = 0; k < t->numel; k++) {
      switch ((init_kind)p->init_kinds[i]) {
        case INIT_ZERO:
          x[k] = 0.0f;
          break;
        case INIT_ONE_NOISE:
          x[k] = (float)(1.0 + 0.02 * scl_rng_normal(&r));
          break;
        case INIT_NOISE:
          x[k] = (float)(0.02 * scl_rng_normal(&r));
          break;
        case INIT_KAIMING: /* kaiming_uniform(a = sqrt 5): bound 1/sqrt(fan_in) */
          x[k] = (float)((2.0 * scl_rng_uniform(&r) - 1.0) / sqrt((double)fan_in));
          break;
        case INIT_XAVIER: /* the VPT code's "xavier": fan_in = C * P * P of a patch, fan_out = D */
          x[k] =
              (float)((2.0 * scl_rng_uniform(&r) - 1.0) *
                      sqrt(6.0 / (double)(p->vit.in_chans * p->vit.patch_size * p->vit.patch_size +
                                          p->vit.width)));
          break;
      }
    }
  }
}

scl_err pet_params_copy(pet_params *dst, const pet_params *src) {
  if (dst->count != src->count || dst->cfg.kinds != src->cfg.kinds)
    return SCL_ERROR(SCL_ERR_ARG, "PET copy between different layouts (%lld vs %lld floats)",
                     (long long)dst->count, (long long)src->count);
  memcpy(dst->param, src->param, (size_t)src->count * sizeof(float));
  return SCL_OK;
}

const pet_tensor *pet_params_find(const pet_params *p, const char *name) {
  for (int i = 0; i < p->n_tensors; i++)
    if (!strcmp(p->tensors[i].name, name)) return &p->tensors[i];
  return NULL;
}

void pet_params_zero_grad(pet_params *p) { memset(p->grad, 0, (size_t)p->count * sizeof(float)); }
