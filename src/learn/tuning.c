/* tuning.c: shared training pieces of the PET-tuning methods (see tuning.h): the cosine head
 * with its SGD state, step scratch, the schedule, the SGD step and the CE step through the head.
 * One implementation, so SAFE, APER and RanPAC train identically where the released code does. */
#include "safecl/tuning.h"

#include <string.h>

static scl_err alloc_floats(float **p, size_t n, const char *what) {
  SCL_CALL(scl_calloc((n ? n : 1) * sizeof(float), what, (void **)p));
  return SCL_OK;
}

scl_err learn_head_create(learn_head *h, int64_t C, int64_t D) {
  h->C = C;
  h->D = D;
  size_t n = (size_t)(C * D + 1);
  SCL_CALL(alloc_floats(&h->p, n, "cosine head"));
  SCL_CALL(alloc_floats(&h->grad, n, "cosine head gradient"));
  SCL_CALL(alloc_floats(&h->buf, n, "cosine head momentum"));
  return SCL_OK;
}

void learn_head_free(learn_head *h) {
  scl_free(h->p);
  scl_free(h->grad);
  scl_free(h->buf);
  h->p = h->grad = h->buf = NULL;
}

scl_err learn_step_buffers_create(learn_step_buffers *w, int64_t B, int64_t C, int64_t D) {
  w->B = B;
  w->C = C;
  w->D = D;
  float **bd[] = {&w->phi, &w->phi2, &w->ref, &w->dphi};
  for (size_t i = 0; i < 4; i++) SCL_CALL(alloc_floats(bd[i], (size_t)(B * D), "features"));
  SCL_CALL(alloc_floats(&w->logits, (size_t)(B * C), "logits"));
  SCL_CALL(alloc_floats(&w->dlogits, (size_t)(B * C), "logit gradients"));
  SCL_CALL(alloc_floats(&w->cos_mem, learn_cosine_cache_floats(B, C, D), "cosine cache"));
  size_t sc = learn_cosine_backward_scratch(B, C, D), t = learn_transfer_scratch(B, D),
         cc = learn_crossclass_scratch(C, C, B, D);
  size_t most = sc > t ? sc : t;
  SCL_CALL(alloc_floats(&w->scratch, most > cc ? most : cc, "loss scratch"));
  return SCL_OK;
}

void learn_step_buffers_free(learn_step_buffers *w) {
  float *all[] = {w->phi, w->phi2, w->ref, w->dphi, w->logits, w->dlogits, w->cos_mem, w->scratch};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) scl_free(all[i]);
  memset(w, 0, sizeof *w);
}

double learn_tune_lr(const learn_method_cfg *cfg, int64_t epoch) {
  learn_lr_schedule sch = {cfg->t_max > 0 ? LEARN_LR_COSINE : LEARN_LR_CONSTANT, cfg->lr,
                           cfg->min_lr, cfg->t_max};
  return learn_lr_at(&sch, epoch);
}

void learn_tune_sgd(const learn_method_cfg *cfg, pet_params *p, float *pet_buf, learn_head *h,
                    int64_t k, int64_t epoch, int64_t step) {
  learn_sgd_cfg sgd = {cfg->momentum, 0.0, 0};
  double lr = learn_tune_lr(cfg, epoch);
  learn_param_group pet = {0, p ? p->count : 0, 1.0, cfg->weight_decay};
  learn_param_group head[2] = {{0, k * h->D, 1.0, cfg->weight_decay},
                               {h->C * h->D, 1, 1.0, cfg->weight_decay}};
  if (p && p->count) learn_sgd_step(p->param, pet_buf, p->grad, step, lr, &sgd, &pet, 1);
  learn_sgd_step(h->p, h->buf, h->grad, step, lr, &sgd, head, 2);
}

scl_err learn_tune_gather(const dist_comm *comm, const learn_batch *b, float *buf, int64_t cols) {
  if (dist_comm_size(comm) == 1) return SCL_OK;
  int64_t counts[LEARN_MAX_GROUP];
  SCL_CHECK(dist_comm_size(comm) <= LEARN_MAX_GROUP, SCL_ERR_ARG,
            "a group of %d ranks (at most %d)", dist_comm_size(comm), LEARN_MAX_GROUP);
  learn_shard_counts(b->B_global, dist_comm_size(comm), counts);
  SCL_CALL(dist_allgather_rows_f32(comm, buf + b->offset * cols, counts, cols, buf));
  return SCL_OK;
}

scl_err learn_tune_sync(const dist_comm *comm, pet_params *p) {
  if (dist_comm_size(comm) == 1 || !p || !p->count) return SCL_OK;
  SCL_CALL(dist_allreduce_f32(comm, p->grad, p->count, DIST_SUM));
  return SCL_OK;
}

scl_err learn_tune_backward(vit_trainer *t, pet_params *p, const float *dphi, int64_t D,
                            const learn_batch *b) {
  if (b->B == 0) return SCL_OK;
  SCL_CALL(vit_trainer_backward(t, p, dphi + b->offset * D, b->B));
  return SCL_OK;
}

scl_err learn_tune_forward(const dist_comm *comm, vit_trainer *t, const pet_params *p,
                           const learn_batch *b, const vit_dropout_key *key, int64_t D,
                           float *out) {
  if (b->B) SCL_CALL(vit_trainer_forward(t, p, b->images, b->B, key, out + b->offset * D));
  SCL_CALL(learn_tune_gather(comm, b, out, D));
  return SCL_OK;
}

scl_err learn_tune_infer(const dist_comm *comm, vit_trainer *t, const pet_params *p,
                         const learn_batch *b, int64_t D, float *out) {
  if (b->B) SCL_CALL(vit_trainer_infer(t, p, b->images, b->B, out + b->offset * D));
  SCL_CALL(learn_tune_gather(comm, b, out, D));
  return SCL_OK;
}

scl_err learn_tune_ce(learn_step_buffers *w, vit_trainer *t, const pet_params *p, learn_head *h,
                      const learn_batch *b, int64_t k, const vit_dropout_key *key,
                      const dist_comm *comm, double *ce) {
  const int64_t B = b->B_global, D = w->D, CD = h->C * D;
  SCL_CHECK(B <= w->B && k <= w->C && b->offset + b->B <= B, SCL_ERR_INTERNAL,
            "step of %lld images over %lld classes exceeds %lld, %lld", (long long)B, (long long)k,
            (long long)w->B, (long long)w->C);
  learn_cosine_cache cache = learn_cosine_cache_bind(w->cos_mem, B, k, D);
  memset(h->grad, 0, (size_t)(CD + 1) * sizeof(float));
  SCL_CALL(learn_tune_forward(comm, t, p, b, key, D, w->phi));
  learn_cosine_forward(w->logits, &cache, w->phi, h->p, h->p + CD, B, k, D);
  memset(w->dlogits, 0, (size_t)(B * k) * sizeof(float));
  *ce = learn_ce_loss(w->dlogits, w->logits, b->labels_all, B, k, 1.0);
  memset(w->dphi, 0, (size_t)(B * D) * sizeof(float));
  learn_cosine_backward(w->dphi, h->grad, h->grad + CD, w->scratch, w->dlogits, w->phi, h->p,
                        h->p + CD, &cache, B, k, D);
  return SCL_OK;
}

scl_err learn_pet_config(const learn_method_cfg *c, pet_config *out) {
  pet_config p = {0};
  SCL_CALL(pet_kinds_parse(c->pet, &p.kinds));
  p.adapter_dim = c->adapter_dim;
  p.adapter_scale = (float)c->adapter_scale;
  p.adapter_dropout = (float)c->adapter_dropout;
  p.vpt_tokens = c->vpt_tokens;
  p.vpt_xavier = c->vpt_xavier;
  *out = p;
  return SCL_OK;
}
