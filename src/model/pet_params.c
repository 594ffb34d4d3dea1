/* pet_params.c: the trainable block of one learner: the one definition of the layout (build()
 * fills the typed pet_layout and the table of names and shapes in the same walk), the released
 * initialisation, copies, and the parser and printer of PET kind names.
 *
 * Layout order is fixed (patch/global tensors, then block by block, then final), so two learners
 * of the same config have identical offsets and a gradient sync or a checkpoint is one buffer.
 * The model reads tensors through the pet_layout fields; the names are metadata for
 * checkpoints, export and tests.
 * Initial values come from the counter RNG keyed by (seed, SCL_STREAM_INIT, tag, tensor index):
 * the same on every rank and independent of any other draw. */
#include "safecl/pet.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* INIT_BACKBONE: the full-tuning copy, filled by pet_params_copy_backbone, never by init. */
typedef enum {
  INIT_ZERO,
  INIT_ONE,
  INIT_ONE_NOISE,
  INIT_NOISE,
  INIT_KAIMING,
  INIT_XAVIER,
  INIT_UNIFORM_001,
  INIT_BACKBONE
} init_kind;

/* 4 + 12 x depth + 2 backbone tensors under PET_FULL: 530 for depth 32 */
#define MAX_TENSORS 1024

/* The walk's state: the typed layout, and (when t is not NULL) the name table. */
typedef struct layout {
  pet_layout *lay;
  pet_tensor *t;
  int *init; /* init_kind of each tensor */
  int n;
} layout;

/* Appends one tensor of ndim <= 4 dimensions at the end of the block and stores its offset in
 * *slot. */
static scl_err add_shaped(layout *L, int64_t *slot, init_kind init, int ndim, const int64_t *shape,
                          const char *name) {
  int64_t numel = 1;
  for (int k = 0; k < ndim; k++) numel *= shape[k];
  *slot = L->lay->count;
  L->lay->count += scl_pad_floats(numel); /* 64-byte aligned tensors */
  if (!L->t) return SCL_OK;
  SCL_CHECK(L->n != MAX_TENSORS, SCL_ERR_ARG, "PET block has more than %d tensors", MAX_TENSORS);
  pet_tensor *t = &L->t[L->n];
  snprintf(t->name, sizeof t->name, "%s", name);
  t->ndim = ndim;
  for (int k = 0; k < 4; k++) t->shape[k] = k < ndim ? shape[k] : 0;
  t->numel = numel;
  t->offset = *slot;
  L->init[L->n++] = (int)init;
  return SCL_OK;
}

/* add_shaped with up to three dimensions and a printf name. */
static scl_err add(layout *L, int64_t *slot, init_kind init, int ndim, int64_t d0, int64_t d1,
                   int64_t d2, const char *fmt, ...) SCL_PRINTF(8, 9);
static scl_err add(layout *L, int64_t *slot, init_kind init, int ndim, int64_t d0, int64_t d1,
                   int64_t d2, const char *fmt, ...) {
  char name[sizeof((pet_tensor *)0)->name];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(name, sizeof name, fmt, ap);
  va_end(ap);
  const int64_t shape[3] = {d0, d1, d2};
  return add_shaped(L, slot, init, ndim, shape, name);
}

static scl_err add_ssf(layout *L, pet_ssf *s, int64_t n, const char *where) {
  SCL_CALL(add(L, &s->scale, INIT_ONE_NOISE, 1, n, 0, 0, "%s.scale", where));
  SCL_CALL(add(L, &s->shift, INIT_NOISE, 1, n, 0, 0, "%s.shift", where));
  return SCL_OK;
}

static void absent_ssf(pet_ssf *s) { s->scale = s->shift = -1; }

/* Every field -1, then build() fills what cfg has. */
static void absent(pet_layout *lay, int64_t depth) {
  absent_ssf(&lay->ssf_patch);
  absent_ssf(&lay->ssf_norm);
  lay->vpt = -1;
  lay->full = -1;
  for (int64_t l = 0; l < depth; l++) {
    pet_block *b = &lay->blocks[l];
    for (int k = 0; k < PET_SSF_SITES; k++) absent_ssf(&b->ssf[k]);
    b->adapter = (pet_adapter_block){-1, -1, -1, -1};
    b->prefix = (pet_prefix_block){-1, -1, -1, -1};
    b->prompts = -1;
  }
  lay->count = 0;
}

/* PET_FULL: one tensor per backbone tensor, named "backbone.<timm name>", in vit_model's order
 * (timm's state_dict order) and padding, so the region is a byte copy of vit_model.param_block
 * (pet_params_copy_backbone checks every name, size and offset). lay->full is the region's
 * start. */
static scl_err add_backbone(layout *L, const vit_config *v) {
  static const char *const names[12] = {"norm1.weight",  "norm1.bias",       "attn.qkv.weight",
                                        "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
                                        "norm2.weight",  "norm2.bias",       "mlp.fc1.weight",
                                        "mlp.fc1.bias",  "mlp.fc2.weight",   "mlp.fc2.bias"};
  const int64_t D = v->width, F = v->mlp_hidden, P = v->patch_size, N = vit_config_tokens(v);
  const int64_t shapes[12][2] = {{D}, {D}, {3 * D, D}, {3 * D}, {D, D}, {D},
                                 {D}, {D}, {F, D},     {F},     {D, F}, {D}};
  int64_t at;
  SCL_CALL(add_shaped(L, &L->lay->full, INIT_BACKBONE, 4, (int64_t[]){D, v->in_chans, P, P},
                      "backbone.patch_embed.proj.weight"));
  SCL_CALL(add_shaped(L, &at, INIT_BACKBONE, 1, (int64_t[]){D}, "backbone.patch_embed.proj.bias"));
  SCL_CALL(add_shaped(L, &at, INIT_BACKBONE, 3, (int64_t[]){1, 1, D}, "backbone.cls_token"));
  SCL_CALL(add_shaped(L, &at, INIT_BACKBONE, 3, (int64_t[]){1, N, D}, "backbone.pos_embed"));
  for (int64_t l = 0; l < v->depth; l++)
    for (int j = 0; j < 12; j++) {
      char name[sizeof L->t->name];
      snprintf(name, sizeof name, "backbone.blocks.%lld.%s", (long long)l, names[j]);
      SCL_CALL(add_shaped(L, &at, INIT_BACKBONE, shapes[j][1] ? 2 : 1, shapes[j], name));
    }
  SCL_CALL(add_shaped(L, &at, INIT_BACKBONE, 1, (int64_t[]){D}, "backbone.norm.weight"));
  SCL_CALL(add_shaped(L, &at, INIT_BACKBONE, 1, (int64_t[]){D}, "backbone.norm.bias"));
  return SCL_OK;
}

static scl_err build(layout *L, const vit_config *v, const pet_config *c) {
  const int64_t D = v->width, F = v->mlp_hidden, T = c->vpt_tokens;
  pet_layout *lay = L->lay;
  absent(lay, v->depth);
  if (c->kinds & PET_FULL) SCL_CALL(add_backbone(L, v));
  if (c->kinds & PET_SSF) SCL_CALL(add_ssf(L, &lay->ssf_patch, D, "ssf.patch"));
  if (c->kinds & (PET_VPT_DEEP | PET_VPT_SHALLOW))
    SCL_CALL(add(L, &lay->vpt, c->vpt_xavier ? INIT_XAVIER : INIT_ZERO, 3,
                 (c->kinds & PET_VPT_DEEP) ? v->depth : 1, T, D, "vpt.prompts"));
  for (int64_t i = 0; i < v->depth; i++) {
    pet_block *blk = &lay->blocks[i];
    char b[32];
    snprintf(b, sizeof b, "blocks.%lld", (long long)i);
    if (c->kinds & PET_SSF) {
      static const char *const pts[PET_SSF_SITES] = {"ln1", "qkv", "proj", "ln2", "fc1", "fc2"};
      const int64_t width[PET_SSF_SITES] = {D, 3 * D, D, D, F, D};
      for (int k = 0; k < PET_SSF_SITES; k++) {
        char where[64];
        snprintf(where, sizeof where, "%s.ssf.%s", b, pts[k]);
        SCL_CALL(add_ssf(L, &blk->ssf[k], width[k], where));
      }
    }
    if (c->kinds & PET_ADAPTER) {
      pet_adapter_block *a = &blk->adapter;
      SCL_CALL(
          add(L, &a->down_w, INIT_KAIMING, 2, c->adapter_dim, D, 0, "%s.adapter.down.weight", b));
      SCL_CALL(add(L, &a->down_b, INIT_ZERO, 1, c->adapter_dim, 0, 0, "%s.adapter.down.bias", b));
      SCL_CALL(add(L, &a->up_w, INIT_ZERO, 2, D, c->adapter_dim, 0, "%s.adapter.up.weight", b));
      SCL_CALL(add(L, &a->up_b, INIT_ZERO, 1, D, 0, 0, "%s.adapter.up.bias", b));
    }
    if ((c->kinds & PET_PREFIX) && (c->prefix_layers >> i & 1u)) {
      pet_prefix_block *x = &blk->prefix;
      const init_kind pi = c->prefix_uniform ? INIT_UNIFORM_001 : INIT_NOISE;
      SCL_CALL(add(L, &x->key, pi, 2, c->prefix_len, D, 0, "prefix.%lld.key", (long long)i));
      SCL_CALL(add(L, &x->value, pi, 2, c->prefix_len, D, 0, "prefix.%lld.value", (long long)i));
      if (c->prefix_scales) { /* LAE's scalars, initialised to 1 (docs/methods.md l.1) */
        SCL_CALL(
            add(L, &x->key_scale, INIT_ONE, 1, 1, 0, 0, "prefix.%lld.key_scale", (long long)i));
        SCL_CALL(
            add(L, &x->value_scale, INIT_ONE, 1, 1, 0, 0, "prefix.%lld.value_scale", (long long)i));
      }
    }
    if ((c->kinds & PET_VPT_DEEP) || ((c->kinds & PET_VPT_SHALLOW) && i == 0))
      blk->prompts = lay->vpt + i * T * D;
  }
  if (c->kinds & PET_SSF) SCL_CALL(add_ssf(L, &lay->ssf_norm, D, "ssf.norm"));
  return SCL_OK;
}

static scl_err check_config(const pet_config *cfg) {
  if ((cfg->kinds & PET_FULL) && cfg->kinds != PET_FULL) {
    char buf[96];
    return SCL_ERROR(SCL_ERR_ARG,
                     "PET kinds %s: full fine-tuning (full) trains every backbone tensor and "
                     "cannot be combined with another PET kind",
                     pet_kinds_format(cfg->kinds, buf, sizeof buf));
  }
  if ((cfg->kinds & PET_ADAPTER) && cfg->adapter_dim < 1)
    return SCL_ERROR(SCL_ERR_ARG, "adapter bottleneck %lld", (long long)cfg->adapter_dim);
  if ((cfg->kinds & (PET_VPT_DEEP | PET_VPT_SHALLOW)) && cfg->vpt_tokens < 1)
    return SCL_ERROR(SCL_ERR_ARG, "VPT with %lld tokens", (long long)cfg->vpt_tokens);
  return SCL_OK;
}

scl_err pet_layout_create(const vit_config *vit, const pet_config *cfg, pet_layout *out) {
  *out = (pet_layout){0};
  SCL_CALL(check_config(cfg));
  out->blocks = calloc((size_t)vit->depth, sizeof(pet_block));
  SCL_CHECK(out->blocks, SCL_ERR_NOMEM, "cannot allocate the PET layout");
  layout L = {out, NULL, NULL, 0};
  return build(&L, vit, cfg); /* cannot fail without a name table */
}

void pet_layout_destroy(pet_layout *lay) {
  if (!lay) return;
  free(lay->blocks);
  *lay = (pet_layout){0};
}

scl_err pet_params_create(const vit_config *vit, const pet_config *cfg, pet_params **out) {
  *out = NULL;
  SCL_CALL(check_config(cfg));
  pet_params *p = NULL;
  scl_err err = SCL_OK;
  p = calloc(1, sizeof *p);
  SCL_CHECK(p, SCL_ERR_NOMEM, "cannot allocate a PET block");
  p->tensors = calloc(MAX_TENSORS, sizeof *p->tensors);
  p->init_kinds = calloc(MAX_TENSORS, sizeof *p->init_kinds);
  p->layout.blocks = calloc((size_t)vit->depth, sizeof(pet_block));
  SCL_CHECK_GOTO(err, fail, p->tensors && p->init_kinds && p->layout.blocks, SCL_ERR_NOMEM,
                 "cannot allocate the PET tensor tables");
  layout L = {&p->layout, p->tensors, p->init_kinds, 0};
  SCL_CALL_GOTO(err, build(&L, vit, cfg), fail);
  p->cfg = *cfg;
  p->vit = *vit;
  p->count = p->layout.count;
  p->n_tensors = L.n;
  size_t bytes = (size_t)(p->count ? p->count : 1) * sizeof(float);
  SCL_CALL_GOTO(err, scl_calloc(bytes, "PET parameters", (void **)&p->param), fail);
  SCL_CALL_GOTO(err, scl_calloc(bytes, "PET gradients", (void **)&p->grad), fail);
  *out = p;
  return SCL_OK;
fail:
  pet_params_destroy(&p);
  return err;
}

void pet_params_destroy(pet_params **p) {
  if (!p || !*p) return;
  scl_free((*p)->param);
  scl_free((*p)->grad);
  free((*p)->tensors);
  free((*p)->init_kinds);
  pet_layout_destroy(&(*p)->layout);
  free(*p);
  *p = NULL;
}

void pet_params_init(pet_params *p, uint64_t seed, uint32_t tag) {
  for (int i = 0; i < p->n_tensors; i++) {
    const pet_tensor *t = &p->tensors[i];
    if (p->init_kinds[i] == INIT_BACKBONE) continue; /* pet_params_copy_backbone's */
    float *x = p->param + t->offset;
    scl_rng r;
    scl_rng_init(&r, seed, SCL_STREAM_INIT, tag, (uint32_t)i);
    int64_t fan_in = t->ndim >= 2 ? t->shape[t->ndim - 1] : t->numel;
    for (int64_t k = 0; k < t->numel; k++) {
      switch ((init_kind)p->init_kinds[i]) {
        case INIT_ZERO:
          x[k] = 0.0f;
          break;
        case INIT_ONE:
          x[k] = 1.0f;
          break;
        case INIT_UNIFORM_001: /* LAE's prefix init U(0, 0.01) (docs/methods.md l.1) */
          x[k] = (float)(0.01 * scl_rng_uniform(&r));
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
        case INIT_BACKBONE:
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
  SCL_CHECK(dst->count == src->count && dst->cfg.kinds == src->cfg.kinds, SCL_ERR_ARG,
            "PET copy between different layouts (%lld vs %lld floats)", (long long)dst->count,
            (long long)src->count);
  memcpy(dst->param, src->param, (size_t)src->count * sizeof(float));
  return SCL_OK;
}

/* The fields of vit_config that fix the parameter shapes, each named on a mismatch. */
static scl_err same_shape(const vit_config *a, const vit_config *b) {
  const struct {
    const char *name;
    int64_t x, y;
  } f[] = {{"img_size", a->img_size, b->img_size},
           {"patch_size", a->patch_size, b->patch_size},
           {"in_chans", a->in_chans, b->in_chans},
           {"width", a->width, b->width},
           {"depth", a->depth, b->depth},
           {"heads", a->heads, b->heads},
           {"mlp_hidden", a->mlp_hidden, b->mlp_hidden}};
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
    if (f[i].x != f[i].y)
      return SCL_ERROR(SCL_ERR_ARG,
                       "copy of the backbone into a full-tuning block: %s is %lld in the block's "
                       "ViT config (%s) and %lld in the model's (%s)",
                       f[i].name, (long long)f[i].x, a->name, (long long)f[i].y, b->name);
  if (a->ln_eps != b->ln_eps)
    return SCL_ERROR(SCL_ERR_ARG,
                     "copy of the backbone into a full-tuning block: ln_eps is %g in the block's "
                     "ViT config and %g in the model's",
                     (double)a->ln_eps, (double)b->ln_eps);
  return SCL_OK;
}

scl_err pet_params_copy_backbone(pet_params *p, const vit_model *m) {
  SCL_CHECK(p->cfg.kinds & PET_FULL, SCL_ERR_ARG,
            "copy of the backbone into a PET block without full fine-tuning (kinds 0x%x)",
            p->cfg.kinds);
  SCL_CALL(same_shape(&p->vit, &m->cfg));
  /* the region is the model's block tensor for tensor: names, sizes and offsets */
  SCL_CHECK(p->n_tensors == m->n_tensors, SCL_ERR_ARG,
            "copy of the backbone: the block has %d backbone tensors, the model %d", p->n_tensors,
            m->n_tensors);
  for (int i = 0; i < m->n_tensors; i++) {
    const pet_tensor *t = &p->tensors[i];
    const vit_tensor *s = &m->tensors[i];
    SCL_CHECK(!strncmp(t->name, "backbone.", 9) && !strcmp(t->name + 9, s->name) &&
                  t->numel == s->numel &&
                  t->offset - p->layout.full == (int64_t)(s->data - m->param_block),
              SCL_ERR_ARG,
              "copy of the backbone: tensor %d is %s (%lld floats at %lld) in the block and %s "
              "(%lld floats at %lld) in the model",
              i, t->name, (long long)t->numel, (long long)(t->offset - p->layout.full), s->name,
              (long long)s->numel, (long long)(s->data - m->param_block));
  }
  const vit_tensor *last = &m->tensors[m->n_tensors - 1];
  const int64_t n = (int64_t)(last->data - m->param_block) + scl_pad_floats(last->numel);
  memcpy(p->param + p->layout.full, m->param_block, (size_t)n * sizeof(float));
  return SCL_OK;
}

const pet_tensor *pet_params_find(const pet_params *p, const char *name) {
  for (int i = 0; i < p->n_tensors; i++)
    if (!strcmp(p->tensors[i].name, name)) return &p->tensors[i];
  return NULL;
}

void pet_params_zero_grad(pet_params *p) { memset(p->grad, 0, (size_t)p->count * sizeof(float)); }

/* ---------------------------------------------------------------------------------------- */
/* Kind names and token count                                                                */

static const struct {
  const char *name;
  unsigned kind;
} kind_names[] = {{"adapter", PET_ADAPTER},   {"ssf", PET_SSF},
                  {"vpt_deep", PET_VPT_DEEP}, {"vpt_shallow", PET_VPT_SHALLOW},
                  {"prefix", PET_PREFIX},     {"vpt", PET_VPT_DEEP}}; /* alias, parsed only */

/* The per-image kinds are set by the prompt methods, and full fine-tuning by the method that
 * fills the backbone copy (pet_params_copy_backbone; a learner that only ran pet_params_init
 * would train a zero backbone), not named by users: printed only. */
static const struct {
  const char *name;
  unsigned kind;
} per_image_names[] = {
    {"input_prompt", PET_INPUT_PROMPT}, {"sample_prefix", PET_SAMPLE_PREFIX}, {"full", PET_FULL}};

const char *pet_kind_names(void) { return "none|adapter|ssf|vpt_deep|vpt_shallow|prefix"; }

scl_err pet_kinds_parse(const char *names, unsigned *kinds) {
  *kinds = 0;
  if (!strcmp(names, "none")) return SCL_OK;
  for (const char *s = names;;) {
    const size_t n = strcspn(s, ",");
    unsigned k = 0;
    for (size_t i = 0; i < sizeof kind_names / sizeof kind_names[0] && !k; i++)
      if (strlen(kind_names[i].name) == n && !strncmp(s, kind_names[i].name, n))
        k = kind_names[i].kind;
    if (!k) {
      *kinds = 0;
      return SCL_ERROR(SCL_ERR_ARG, "PET kind '%.*s' in '%s': expected %s (or a comma list)",
                       (int)n, s, names, pet_kind_names());
    }
    *kinds |= k;
    if (!s[n]) return SCL_OK;
    s += n + 1;
  }
}

const char *pet_kinds_format(unsigned kinds, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < sizeof kind_names / sizeof kind_names[0] - 1; i++)
    if (kinds & kind_names[i].kind) {
      int w = snprintf(buf + used, size - used, "%s%s", used ? "," : "", kind_names[i].name);
      if (w < 0 || (size_t)w >= size - used) return buf;
      used += (size_t)w;
    }
  for (size_t i = 0; i < sizeof per_image_names / sizeof per_image_names[0]; i++)
    if (kinds & per_image_names[i].kind) {
      int w = snprintf(buf + used, size - used, "%s%s", used ? "," : "", per_image_names[i].name);
      if (w < 0 || (size_t)w >= size - used) return buf;
      used += (size_t)w;
    }
  if (!used) snprintf(buf, size, "none");
  return buf;
}

int64_t pet_config_tokens(const vit_config *vit, const pet_config *cfg) {
  const int vpt = (cfg->kinds & (PET_VPT_DEEP | PET_VPT_SHALLOW)) != 0;
  const int input = (cfg->kinds & PET_INPUT_PROMPT) != 0;
  return vit_config_tokens(vit) + (vpt ? cfg->vpt_tokens : 0) + (input ? cfg->input_tokens : 0);
}
