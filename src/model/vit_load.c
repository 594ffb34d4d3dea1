/* vit_load.c: reading a ViT's frozen parameters from a .safetensors file in timm or Hugging
 * Face naming.
 *
 * The naming is detected from the class token's name, then every model tensor is resolved to
 * the file tensor(s) it comes from and every shape is checked before a single float is copied,
 * so a file refused for its names or shapes leaves the model untouched. NaN and infinity are
 * refused as they are copied (the model then holds part of the file). Hugging Face keeps q, k and v as three (D, D)
 * linears; they are stacked into timm's fused (3D, D) qkv in that order, which is exactly the
 * layout timm's reshape (B, N, 3, H, Dh) reads. Classifier heads are skipped silently because a
 * backbone file often carries one; anything else the model has no use for is refused unless the
 * caller says otherwise, since an unexpected tensor usually means the wrong architecture.
 * Messages name the file, the tensor and both shapes: the reader is usually looking at a
 * checkpoint someone else exported. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safecl/safetensors.h"
#include "safecl/vit.h"

#define MAX_PARTS 3

typedef struct load_ctx {
  const vit_model *m;
  io_safetensors *st;
  const char *path;
  int hf;                     /* Hugging Face naming */
  const char *hf_prefix;      /* "vit." or "" */
  char *used;                 /* per file tensor */
  const io_tensor_info **src; /* n_tensors x MAX_PARTS resolved file tensors */
} load_ctx;

static const char *shape_str(char *buf, size_t size, int ndim, const int64_t *shape) {
  size_t n = (size_t)snprintf(buf, size, "[");
  for (int i = 0; i < ndim && n < size; i++)
    n += (size_t)snprintf(buf + n, size - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
  if (n < size) snprintf(buf + n, size - n, "]");
  return buf;
}

static int starts_with(const char *s, const char *prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The Hugging Face name of part `part` of timm tensor `name` (parts > 0 only for qkv); an
 * unmapped name comes back as "?name", which no file contains. */
static void hf_name(const load_ctx *c, const char *name, int part, char *out, size_t size) {
  static const char *qkv[3] = {"query", "key", "value"};
  static const struct {
    const char *timm, *hf;
  } block_map[] = {{"norm1.", "layernorm_before."},
                   {"attn.proj.", "attention.output.dense."},
                   {"norm2.", "layernorm_after."},
                   {"mlp.fc1.", "intermediate.dense."},
                   {"mlp.fc2.", "output.dense."}};
  const char *dot = strrchr(name, '.'), *pre = c->hf_prefix;
  const char *leaf = dot ? dot + 1 : name; /* weight or bias; dotless names (cls_token) have none */
  int layer = -1, skip = 0;
  snprintf(out, size, "?%s", name);
  if (strcmp(name, "cls_token") == 0) {
    snprintf(out, size, "%sembeddings.cls_token", pre);
  } else if (strcmp(name, "pos_embed") == 0) {
    snprintf(out, size, "%sembeddings.position_embeddings", pre);
  } else if (starts_with(name, "patch_embed.proj.")) {
    snprintf(out, size, "%sembeddings.patch_embeddings.projection.%s", pre, leaf);
  } else if (starts_with(name, "norm.")) {
    snprintf(out, size, "%slayernorm.%s", pre, leaf);
  } else if (sscanf(name, "blocks.%d.%n", &layer, &skip) == 1 && skip > 0) {
    const char *rest = name + skip;
    if (starts_with(rest, "attn.qkv.")) {
      snprintf(out, size, "%sencoder.layer.%d.attention.attention.%s.%s", pre, layer, qkv[part],
               leaf);
      return;
    }
    for (size_t i = 0; i < sizeof block_map / sizeof block_map[0]; i++)
      if (starts_with(rest, block_map[i].timm))
        snprintf(out, size, "%sencoder.layer.%d.%s%s", pre, layer, block_map[i].hf, leaf);
  }
}

/* Finds one file tensor and checks its shape against `shape`. */
static scl_err resolve_part(load_ctx *c, const char *fname, int ndim, const int64_t *shape,
                            const io_tensor_info **out) {
  char want[96], got[96];
  const io_tensor_info *t = io_safetensors_find(c->st, fname);
  SCL_CHECK(t, SCL_ERR_FORMAT, "%s: missing tensor '%s' (%s expects shape %s)", c->path, fname,
            c->m->cfg.name, shape_str(want, sizeof want, ndim, shape));
  int same = t->ndim == ndim;
  for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
  SCL_CHECK(same, SCL_ERR_FORMAT, "%s: tensor '%s' has shape %s but %s expects %s", c->path, fname,
            shape_str(got, sizeof got, t->ndim, t->shape), c->m->cfg.name,
            shape_str(want, sizeof want, ndim, shape));
  for (int i = 0; i < io_safetensors_count(c->st); i++)
    if (io_safetensors_at(c->st, i) == t) c->used[i] = 1;
  *out = t;
  return SCL_OK;
}

/* Resolves model tensor i: one file tensor, or three (q, k, v) stacked along dim 0. */
static scl_err resolve_tensor(load_ctx *c, int i) {
  const vit_tensor *t = &c->m->tensors[i];
  const int split = c->hf && strstr(t->name, ".attn.qkv.") != NULL;
  char fname[160];
  if (!split) {
    if (c->hf)
      hf_name(c, t->name, 0, fname, sizeof fname);
    else
      snprintf(fname, sizeof fname, "%s", t->name);
    SCL_CALL(resolve_part(c, fname, t->ndim, t->shape, &c->src[i * MAX_PARTS]));
    return SCL_OK;
  }
  int64_t part_shape[VIT_MAX_DIMS];
  memcpy(part_shape, t->shape, sizeof part_shape);
  part_shape[0] /= 3;
  for (int p = 0; p < 3; p++) {
    hf_name(c, t->name, p, fname, sizeof fname);
    SCL_CALL(resolve_part(c, fname, t->ndim, part_shape, &c->src[i * MAX_PARTS + p]));
  }
  return SCL_OK;
}

static int ignorable(const load_ctx *c, const char *name) {
  if (!c->hf) return starts_with(name, "head.") || starts_with(name, "pre_logits.");
  if (starts_with(name, "classifier.") || starts_with(name, "pooler.")) return 1;
  return starts_with(name, c->hf_prefix) && starts_with(name + strlen(c->hf_prefix), "pooler.");
}

static scl_err check_unexpected(const load_ctx *c, unsigned flags) {
  int n_unexpected = 0, first = -1;
  for (int i = 0; i < io_safetensors_count(c->st); i++) {
    if (c->used[i] || ignorable(c, io_safetensors_at(c->st, i)->name)) continue;
    if (first < 0) first = i;
    n_unexpected++;
  }
  if (n_unexpected == 0) return SCL_OK;
  const io_tensor_info *t = io_safetensors_at(c->st, first);
  if (flags & VIT_LOAD_IGNORE_UNEXPECTED) {
    SCL_INFO("%s: ignoring %d tensor(s) %s does not use, the first '%s'", c->path, n_unexpected,
             c->m->cfg.name, t->name);
    return SCL_OK;
  }
  char got[96];
  return SCL_ERROR(SCL_ERR_FORMAT,
                   "%s: unexpected tensor '%s' (shape %s) is not a parameter of %s in %s naming "
                   "(%d unexpected in all; pass the ignore-unexpected flag to skip them)",
                   c->path, t->name, shape_str(got, sizeof got, t->ndim, t->shape), c->m->cfg.name,
                   c->hf ? "Hugging Face" : "timm", n_unexpected);
}

static scl_err detect_naming(load_ctx *c) {
  if (io_safetensors_find(c->st, "cls_token")) return SCL_OK;
  c->hf = 1;
  if (io_safetensors_find(c->st, "vit.embeddings.cls_token")) {
    c->hf_prefix = "vit.";
    return SCL_OK;
  }
  if (io_safetensors_find(c->st, "embeddings.cls_token")) return SCL_OK;
  return SCL_ERROR(SCL_ERR_FORMAT,
                   "%s: not a ViT checkpoint in a known naming: none of 'cls_token' (timm), "
                   "'vit.embeddings.cls_token' or 'embeddings.cls_token' (Hugging Face) is present",
                   c->path);
}

/* The first index of x[0..n) that is NaN or infinite, or -1. */
static int64_t first_non_finite(const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    if (!isfinite(x[i])) return i;
  return -1;
}

/* Copies every resolved tensor into the parameter block, refusing NaN and infinity: one such
 * weight makes every output NaN, so the run would finish at chance accuracy. The check runs on
 * the copied values, so after this refusal the model holds part of the file (vit_model_open
 * destroys it). */
static scl_err read_all(const load_ctx *c) {
  for (int i = 0; i < c->m->n_tensors; i++) {
    const vit_tensor *t = &c->m->tensors[i];
    const int parts = c->src[i * MAX_PARTS + 1] ? 3 : 1;
    const int64_t count = t->numel / parts;
    for (int p = 0; p < parts; p++) {
      const io_tensor_info *f = c->src[i * MAX_PARTS + p];
      float *dst = t->data + p * count;
      SCL_CALL(io_safetensors_read_f32(c->st, f, dst, count));
      const int64_t bad = first_non_finite(dst, count);
      SCL_CHECK(bad < 0, SCL_ERR_FORMAT,
                "%s: tensor '%s' holds a non-finite weight (%s) at flat index %lld; the "
                "backbone must be finite",
                c->path, f->name, isnan(dst[bad]) ? "NaN" : "infinity", (long long)bad);
    }
  }
  return SCL_OK;
}

static scl_err load_from(load_ctx *c, unsigned flags) {
  SCL_CALL(detect_naming(c));
  for (int i = 0; i < c->m->n_tensors; i++) SCL_CALL(resolve_tensor(c, i));
  SCL_CALL(check_unexpected(c, flags));
  SCL_CALL(read_all(c));
  return SCL_OK;
}

scl_err vit_model_load(vit_model *m, const char *path, unsigned flags) {
  load_ctx c = {.m = m, .path = path, .hf_prefix = ""};
  SCL_CALL(io_safetensors_open(path, &c.st));
  c.used = calloc((size_t)io_safetensors_count(c.st) + 1, sizeof *c.used);
  c.src = calloc((size_t)m->n_tensors * MAX_PARTS, sizeof *c.src);
  scl_err err = c.used && c.src
                    ? load_from(&c, flags)
                    : SCL_ERROR(SCL_ERR_NOMEM, "%s: cannot allocate the tensor tables", path);
  free(c.src);
  free(c.used);
  io_safetensors_close(&c.st);
  if (err) return SCL_TRACE(err);
  SCL_INFO("%s: loaded %lld parameters of %s (%s naming)", path, (long long)m->param_count,
           m->cfg.name, c.hf ? "Hugging Face" : "timm");
  return SCL_OK;
}

scl_err vit_model_open(const char *arch, int64_t crop, const char *crop_key, const char *weights,
                       unsigned load_flags, uint64_t seed, int64_t max_batch, int threads,
                       vit_model **out) {
  vit_config vc;
  *out = NULL;
  SCL_CALL(vit_config_preset(arch, &vc));
  SCL_CHECK(crop == vc.img_size, SCL_ERR_ARG, "%s = %lld but %s takes %lldx%lld images", crop_key,
            (long long)crop, arch, (long long)vc.img_size, (long long)vc.img_size);
  SCL_CALL(vit_model_create(&vc, max_batch, threads, out));
  if (!weights[0]) {
    vit_model_init_random(*out, seed);
    return SCL_OK;
  }
  scl_err err = vit_model_load(*out, weights, load_flags);
  if (err) {
    vit_model_destroy(out);
    return SCL_TRACE(err);
  }
  return SCL_OK;
}
