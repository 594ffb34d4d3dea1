/* train_grad_driver.c: the trainer's forward and backward for tests/train/test_train_parity.py.
 *
 *   train_grad_driver --width D --depth L --heads H --img S --patch P --mlp F
 *                     --pet adapter|ssf|vpt_deep|vpt_shallow|prefix[,...]|full [--adapter-dim r]
 *                     [--dropout p] [--vpt-tokens T] [--prefix-len L --prefix-layers MASK]
 *                     [--prefix-after-cls 0|1] [--prefix-compensate 0|1] [--prefix-scales 0|1]
 *                     --weights FILE --pet-weights FILE --images FILE --dcls FILE --batch B
 *                     --out FILE [--threads T] [--key SEED,STEP,PASS] [--index i0,i1,...]
 *
 * Weights are .safetensors (backbone in timm names, PET tensors in pet_params names: with full,
 * the trained copy of the backbone as backbone.<timm name>, read instead of --weights); images
 * (B, 3, S, S) and dcls (B, D) raw float32. The driver runs forward (keyed when --key is given:
 * adapter dropout on), then an inference with the same PET block and one with none (which must
 * leave the kept activations alone), then the backward, and writes a .safetensors with "cls"
 * (training forward), "infer" (inference with the PET block), "grad.<name>" for every PET
 * tensor and, keyed, "mask.<layer>" (B, tokens, r) as 0/1 floats. Exit 0 ok, 1 error, 2 usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safecl/core.h"
#include "safecl/pet.h"
#include "safecl/safetensors.h"
#include "safecl/vit.h"
#include "../common/driver_io.h"

typedef struct args {
  vit_config vc;
  pet_config pc;
  const char *weights, *pet_weights, *images, *dcls, *out;
  long batch, threads;
  int keyed;
  vit_dropout_key key;
  int64_t index[256];
} args;

static int parse_pair(args *a, const char *k, const char *v) {
  if (driver_vit_option(&a->vc, k, v))
    return 1;
  else if (!strcmp(k, "--pet") && !strcmp(v, "full")) /* set by methods, not parsed */
    a->pc.kinds = PET_FULL;
  else if (!strcmp(k, "--pet"))
    return pet_kinds_parse(v, &a->pc.kinds) == SCL_OK;
  else if (!strcmp(k, "--adapter-dim"))
    a->pc.adapter_dim = atol(v);
  else if (!strcmp(k, "--dropout"))
    a->pc.adapter_dropout = (float)atof(v);
  else if (!strcmp(k, "--vpt-tokens"))
    a->pc.vpt_tokens = atol(v);
  else if (!strcmp(k, "--prefix-len"))
    a->pc.prefix_len = atol(v);
  else if (!strcmp(k, "--prefix-layers"))
    a->pc.prefix_layers = (uint32_t)strtoul(v, NULL, 0);
  else if (!strcmp(k, "--prefix-after-cls"))
    a->pc.prefix_after_cls = atoi(v);
  else if (!strcmp(k, "--prefix-compensate"))
    a->pc.prefix_compensate = atoi(v);
  else if (!strcmp(k, "--prefix-scales"))
    a->pc.prefix_scales = atoi(v);
  else if (!strcmp(k, "--weights"))
    a->weights = v;
  else if (!strcmp(k, "--pet-weights"))
    a->pet_weights = v;
  else if (!strcmp(k, "--images"))
    a->images = v;
  else if (!strcmp(k, "--dcls"))
    a->dcls = v;
  else if (!strcmp(k, "--out"))
    a->out = v;
  else if (!strcmp(k, "--batch"))
    a->batch = atol(v);
  else if (!strcmp(k, "--threads"))
    a->threads = atol(v);
  else if (!strcmp(k, "--key")) {
    unsigned long long seed;
    unsigned step, pass;
    if (sscanf(v, "%llu,%u,%u", &seed, &step, &pass) != 3) return 0;
    a->key.seed = seed, a->key.step = step, a->key.pass = pass, a->keyed = 1;
  } else if (!strcmp(k, "--index")) {
    int n = 0;
    for (const char *s = v; *s && n < 256; n++) {
      a->index[n] = atoll(s);
      s = strchr(s, ',');
      if (!s) break;
      s++;
    }
  } else
    return 0;
  return 1;
}

static int parse(int argc, char **argv, args *a) {
  memset(a, 0, sizeof *a);
  driver_vit_defaults(&a->vc);
  a->pc = (pet_config){.adapter_dim = 64, .adapter_scale = 0.1f, .vpt_tokens = 5};
  for (int i = 0; i < 256; i++) a->index[i] = i;
  for (int i = 1; i + 1 < argc; i += 2)
    if (!parse_pair(a, argv[i], argv[i + 1])) return 0;
  a->key.index = a->index;
  return argc % 2 == 1 && a->weights && a->pet_weights && a->images && a->dcls && a->out &&
         a->batch > 0 && a->batch <= 256;
}

static scl_err load_pet(pet_params *p, const char *path) {
  io_safetensors *st = NULL;
  SCL_CALL(io_safetensors_open(path, &st));
  scl_err err = SCL_OK;
  for (int i = 0; i < p->n_tensors && !err; i++) {
    const pet_tensor *t = &p->tensors[i];
    const io_tensor_info *x = io_safetensors_find(st, t->name);
    if (!x)
      err = SCL_ERROR(SCL_ERR_FORMAT, "%s: no tensor %s", path, t->name);
    else
      err = io_safetensors_read_f32(st, x, p->param + t->offset, t->numel);
  }
  io_safetensors_close(&st);
  return err;
}

/* Entries for cls, infer, every gradient and (keyed) every mask; names and masks are heap
 * memory the caller frees with the entries. */
static scl_err write_out(const args *a, const pet_params *p, const float *cls, const float *inf,
                         float *masks, int64_t tokens) {
  const int64_t B = a->batch, D = a->vc.width, depth = a->vc.depth, r = a->pc.adapter_dim;
  const int n_masks = a->keyed && (a->pc.kinds & PET_ADAPTER) ? (int)depth : 0;
  io_st_entry *e = calloc((size_t)(2 + p->n_tensors + n_masks), sizeof *e);
  char(*names)[64] = calloc((size_t)(p->n_tensors + n_masks), sizeof *names);
  if (!e || !names) {
    free(e), free(names);
    return SCL_ERROR(SCL_ERR_NOMEM, "driver output table");
  }
  int n = 0;
  e[n++] = (io_st_entry){"cls", 2, {B, D}, cls};
  e[n++] = (io_st_entry){"infer", 2, {B, D}, inf};
  for (int i = 0; i < p->n_tensors; i++) {
    const pet_tensor *t = &p->tensors[i];
    snprintf(names[i], sizeof names[i], "grad.%s", t->name);
    e[n] = (io_st_entry){names[i],
                         t->ndim,
                         {t->shape[0], t->shape[1], t->shape[2], t->shape[3]},
                         p->grad + t->offset};
    n++;
  }
  for (int l = 0; l < n_masks; l++) {
    snprintf(names[p->n_tensors + l], sizeof names[0], "mask.%d", l);
    e[n++] = (io_st_entry){
        names[p->n_tensors + l], 3, {B, tokens, r}, masks + (int64_t)l * B * tokens * r};
  }
  scl_err err = io_safetensors_write(a->out, e, n, NULL, NULL, 0);
  free(e);
  free(names);
  return err;
}

/* The masks the trainer drew, through the public mask function. */
static void fill_masks(const args *a, float *masks, int64_t tokens) {
  const int64_t B = a->batch, r = a->pc.adapter_dim, n = tokens * r;
  uint8_t *m = malloc((size_t)n);
  for (int64_t l = 0; m && l < a->vc.depth; l++)
    for (int64_t b = 0; b < B; b++) {
      vit_trainer_dropout_mask(m, n, a->pc.adapter_dropout, a->key.seed, a->key.step, a->key.pass,
                               a->index[b], l);
      for (int64_t i = 0; i < n; i++) masks[(l * B + b) * n + i] = m[i];
    }
  free(m);
}

static scl_err run(const args *a) {
  vit_model *m = NULL;
  vit_trainer *t = NULL;
  pet_params *p = NULL;
  const int64_t B = a->batch, D = a->vc.width, S = a->vc.img_size;
  const int64_t tokens = pet_config_tokens(&a->vc, &a->pc);
  float *img = malloc((size_t)(B * 3 * S * S) * sizeof(float));
  float *buf = malloc((size_t)(5 * B * D) * sizeof(float));
  float *masks = calloc((size_t)(a->vc.depth * B * tokens * a->pc.adapter_dim + 1), sizeof(float));
  scl_err err = SCL_OK;
  if (!img || !buf || !masks) SCL_ERROR_GOTO(err, done, SCL_ERR_NOMEM, "driver buffers");
  float *cls = buf, *inf = buf + B * D, *dcls = buf + 2 * B * D, *ptm = buf + 3 * B * D;
  SCL_CALL_GOTO(err, vit_model_create(&a->vc, B, (int)a->threads, &m), done);
  SCL_CALL_GOTO(err, vit_model_load(m, a->weights, 0), done);
  SCL_CALL_GOTO(err, pet_params_create(&a->vc, &a->pc, &p), done);
  SCL_CALL_GOTO(err, load_pet(p, a->pet_weights), done);
  SCL_CALL_GOTO(err, vit_trainer_create(m, &a->pc, B, (int)a->threads, &t), done);
  SCL_CALL_GOTO(err, driver_read(a->images, img, sizeof(float), (size_t)(B * 3 * S * S)), done);
  SCL_CALL_GOTO(err, driver_read(a->dcls, dcls, sizeof(float), (size_t)(B * D)), done);
  SCL_CALL_GOTO(err, vit_trainer_forward(t, p, img, B, a->keyed ? &a->key : NULL, cls), done);
  SCL_CALL_GOTO(err, vit_trainer_infer(t, p, img, B, inf), done);
  SCL_CALL_GOTO(err, vit_trainer_infer(t, NULL, img, B, ptm), done);
  pet_params_zero_grad(p);
  SCL_CALL_GOTO(err, vit_trainer_backward(t, p, dcls, B), done);
  if (a->keyed) fill_masks(a, masks, tokens);
  SCL_CALL_GOTO(err, write_out(a, p, cls, inf, masks, tokens), done);
done:
  vit_trainer_destroy(&t);
  pet_params_destroy(&p);
  vit_model_destroy(&m);
  free(img), free(buf), free(masks);
  return err;
}

int main(int argc, char **argv) {
  args a;
  if (!parse(argc, argv, &a)) {
    fprintf(stderr, "usage: see the header of train_grad_driver.c\n");
    return 2;
  }
  return driver_exit(run(&a));
}
