/* vit_trainer.c: training forward/backward through the frozen ViT with a learner's PET block.
 *
 * This file holds the path without PET modules (pet_config.kinds == 0): then no parameter of the
 * network trains, the forward is the frozen model's (run in chunks of the backbone's batch) and
 * the backward has nothing to accumulate, which is what heads-only training needs. The PET
 * modules' forward and backward (adapter, SSF, VPT, prefixes) are a separate piece of work
 * (the training issue); until they land, a trainer for them is refused with a clear message
 * rather than run approximately. */
#include <stdlib.h>

#include "safecl/pet.h"

struct vit_trainer {
  vit_model *backbone; /* shared; its inference buffers serve the PET-less path */
  pet_config cfg;
  int64_t max_batch;
};

scl_err vit_trainer_create(const vit_model *backbone, const pet_config *cfg, int64_t max_batch,
                           int threads, vit_trainer **out) {
  (void)threads;
  *out = NULL;
  if (cfg->kinds != 0)
    return SCL_ERROR(SCL_ERR_ARG,
                     "PET modules (kinds 0x%x) cannot be trained yet: their backward pass is not "
                     "implemented in this build; use method.pet = \"none\"",
                     cfg->kinds);
  vit_trainer *t = calloc(1, sizeof *t);
  if (!t) return SCL_ERROR(SCL_ERR_NOMEM, "trainer");
  t->backbone = (vit_model *)backbone; /* activation buffers are scratch, weights stay frozen */
  t->cfg = *cfg;
  t->max_batch = max_batch;
  *out = t;
  return SCL_OK;
}

void vit_trainer_destroy(vit_trainer **t) {
  if (!t || !*t) return;
  free(*t);
  *t = NULL;
}

static scl_err frozen_forward(vit_trainer *t, const float *images, int64_t B, float *cls_out) {
  const vit_config *c = &t->backbone->cfg;
  const int64_t chunk = t->backbone->max_batch, per_image = c->in_chans * c->img_size * c->img_size;
  for (int64_t b0 = 0; b0 < B; b0 += chunk) {
    int64_t n = B - b0 < chunk ? B - b0 : chunk;
    SCL_CALL(vit_model_forward(t->backbone, images + b0 * per_image, n, cls_out + b0 * c->width));
  }
  return SCL_OK;
}

scl_err vit_trainer_forward(vit_trainer *t, const pet_params *p, const float *images, int64_t B,
                            const vit_dropout_key *key, float *cls_out) {
  (void)key; /* no dropout site without PET modules */
  if (B < 1 || B > t->max_batch)
    return SCL_ERROR(SCL_ERR_ARG, "trainer forward of %lld images (at most %lld)", (long long)B,
                     (long long)t->max_batch);
  if (p && p->cfg.kinds != t->cfg.kinds)
    return SCL_ERROR(SCL_ERR_ARG, "PET block of kinds 0x%x on a trainer of kinds 0x%x",
                     p->cfg.kinds, t->cfg.kinds);
  SCL_CALL(frozen_forward(t, images, B, cls_out));
  return SCL_OK;
}

scl_err vit_trainer_backward(vit_trainer *t, pet_params *p, const float *dcls, int64_t B) {
  (void)t;
  (void)p;
  (void)dcls;
  (void)B; /* nothing upstream of the features trains */
  return SCL_OK;
}

scl_err vit_trainer_infer(vit_trainer *t, const pet_params *p, const float *images, int64_t B,
                          float *cls_out) {
  if (p && p->cfg.kinds != 0)
    return SCL_ERROR(SCL_ERR_ARG, "inference with PET kinds 0x%x on a PET-less trainer",
                     p->cfg.kinds);
  SCL_CALL(frozen_forward(t, images, B, cls_out));
  return SCL_OK;
}

double vit_trainer_flops_per_image(const vit_trainer *t) {
  return vit_config_flops_per_image(&t->backbone->cfg);
}
