/* tuner.c: the first-session tuner shared by APER and RanPAC (tuning.h): PET + cosine head,
 * cross-entropy, SGD with the released schedule, in session 1 only; then a frozen extractor. */
#include <stdlib.h>
#include <string.h>

#include "safecl/tuning.h"

#define TAG_TUNER_PET 111u
#define TAG_TUNER_HEAD 211u

struct learn_tuner {
  learn_method_cfg cfg;
  uint64_t seed;
  int64_t C, D, B;
  pet_config pc;
  pet_params *pet;
  float *pet_buf;
  learn_head head;
  learn_step_buffers w;
  vit_trainer *trainer;
  const dist_comm *comm;
};

scl_err learn_tuner_create(const learn_context *ctx, learn_tuner **out) {
  learn_tuner *t = calloc(1, sizeof *t);
  SCL_CHECK(t, SCL_ERR_NOMEM, "tuner");
  t->cfg = *ctx->cfg;
  t->seed = ctx->seed;
  t->C = ctx->n_classes;
  t->D = ctx->backbone->cfg.width;
  t->B = ctx->cfg->batch;
  t->comm = ctx->comm ? ctx->comm : dist_comm_self();
  scl_err err = SCL_OK;
  SCL_CALL_GOTO(err, learn_pet_config(ctx->cfg, &t->pc), fail);
  SCL_CALL_GOTO(err, pet_params_create(&ctx->backbone->cfg, &t->pc, &t->pet), fail);
  SCL_CALL_GOTO(err,
                scl_calloc((size_t)(t->pet->count ? t->pet->count : 1) * sizeof(float),
                           "PET momentum", (void **)&t->pet_buf),
                fail);
  SCL_CALL_GOTO(err, learn_head_create(&t->head, t->C, t->D), fail);
  SCL_CALL_GOTO(err, learn_step_buffers_create(&t->w, t->B, t->C, t->D), fail);
  SCL_CALL_GOTO(err, vit_trainer_create(ctx->backbone, &t->pc, t->B, 0, &t->trainer), fail);
  pet_params_init(t->pet, t->seed, TAG_TUNER_PET); /* the untrained state, if nothing trains */
  *out = t;
  return SCL_OK;
fail:
  learn_tuner_destroy(&t);
  return err;
}

void learn_tuner_destroy(learn_tuner **t) {
  if (!t || !*t) return;
  vit_trainer_destroy(&(*t)->trainer);
  pet_params_destroy(&(*t)->pet);
  scl_free((*t)->pet_buf);
  learn_head_free(&(*t)->head);
  learn_step_buffers_free(&(*t)->w);
  free(*t);
  *t = NULL;
}

learn_train_plan learn_tuner_plan(const learn_tuner *t, const learn_session *s) {
  learn_train_plan p = {.batch = t->cfg.batch, .n_terms = 1, .term_names = {"ce"}};
  p.epochs = s->t == 0 && t->pc.kinds != 0 ? t->cfg.epochs_first : 0;
  return p;
}

scl_err learn_tuner_begin(learn_tuner *t, const learn_session *s) {
  pet_params_init(t->pet, t->seed, TAG_TUNER_PET);
  memset(t->head.p, 0, (size_t)(t->C * t->D + 1) * sizeof(float));
  learn_cosine_init(t->head.p, learn_head_sigma(&t->head), s->class_hi, t->D, t->seed,
                    TAG_TUNER_HEAD, (float)t->cfg.head_sigma0);
  memset(t->head.buf, 0, (size_t)(t->C * t->D + 1) * sizeof(float));
  memset(t->pet_buf, 0, (size_t)t->pet->count * sizeof(float));
  return SCL_OK;
}

scl_err learn_tuner_step(learn_tuner *t, const learn_session *s, const learn_batch *b,
                         double *losses) {
  vit_dropout_key key = {t->seed, (uint32_t)b->step, 0, b->index};
  pet_params_zero_grad(t->pet);
  SCL_CALL(learn_tune_ce(&t->w, t->trainer, t->pet, &t->head, b, s->class_hi, &key, t->comm,
                         &losses[0]));
  SCL_CALL(learn_tune_backward(t->trainer, t->pet, t->w.dphi, t->D, b));
  SCL_CALL(learn_tune_sync(t->comm, t->pet));
  learn_tune_sgd(&t->cfg, t->pet, t->pet_buf, &t->head, s->class_hi, b->epoch, b->step);
  return SCL_OK;
}

static scl_err adapted_forward(void *ctx, const float *images, int64_t B, float *out) {
  learn_tuner *t = ctx;
  SCL_CALL(vit_trainer_infer(t->trainer, t->pc.kinds ? t->pet : NULL, images, B, out));
  return SCL_OK;
}

learn_network learn_tuner_network(learn_tuner *t) {
  return (learn_network){
      .name = "adapted", .dim = t->D, .frozen = 1, .forward = adapted_forward, .ctx = t};
}

int learn_tuner_state(learn_tuner *t, learn_state_entry *out) {
  const int64_t P = t->pet->count, H = t->C * t->D + 1;
  out[0] = (learn_state_entry){"tuner_pet", LEARN_F32, 1, {P, 0}, t->pet->param};
  out[1] = (learn_state_entry){"tuner_pet_momentum", LEARN_F32, 1, {P, 0}, t->pet_buf};
  out[2] = (learn_state_entry){"tuner_head", LEARN_F32, 1, {H, 0}, t->head.p};
  out[3] = (learn_state_entry){"tuner_head_momentum", LEARN_F32, 1, {H, 0}, t->head.buf};
  return 4;
}
