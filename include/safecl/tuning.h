/* tuning.h: the pieces every method that tunes a PET module through a cosine head shares
 * (SAFE's learners, APER's and RanPAC's first session): a head over all classes with gradient
 * and momentum in the same layout, the SGD step of torch.optim.SGD over a PET block and the
 * head's active rows, the cosine LR schedule, and the CE step through the head.
 *
 * Conventions: a head is [W (C x D) | sigma]; rows of classes not seen yet are zero and are
 * never stepped. Losses and backward passes accumulate (+=): each step zeroes what it
 * accumulates into, here. */
#ifndef SAFECL_TUNING_H
#define SAFECL_TUNING_H

#include "safecl/learn.h"
#include "safecl/method.h"
#include "safecl/pet.h"

typedef struct learn_head {
  int64_t C, D;
  float *p, *grad, *buf; /* C * D + 1 floats each */
} learn_head;

SCL_NODISCARD scl_err learn_head_create(learn_head *h, int64_t C, int64_t D);
void learn_head_free(learn_head *h);
static inline float *learn_head_sigma(const learn_head *h) { return h->p + h->C * h->D; }

/* Scratch of one training step for batches up to B over C classes of width D. */
typedef struct learn_step_buffers {
  int64_t B, C, D;
  float *phi, *phi2, *ref, *dphi, *logits, *dlogits, *cos_mem, *scratch;
} learn_step_buffers;

SCL_NODISCARD scl_err learn_step_buffers_create(learn_step_buffers *w, int64_t B, int64_t C,
                                                int64_t D);
void learn_step_buffers_free(learn_step_buffers *w);

/* The learning rate of `epoch` (cosine with the config's own T_max, or constant when
 * train.t_max = 0). */
double learn_tune_lr(const learn_method_cfg *cfg, int64_t epoch);

/* One SGD step (torch.optim.SGD: momentum, weight decay added to the gradient, first step
 * buf = d_p) over the PET block (may have 0 floats) and the head's rows [0, k) and sigma. */
void learn_tune_sgd(const learn_method_cfg *cfg, pet_params *p, float *pet_buf, learn_head *h,
                    int64_t k, int64_t epoch, int64_t step);

/* Data parallelism (method.h: the group is a dist_comm): a step's feature buffers hold the WHOLE global batch
 * (B_global rows) on every rank; a rank computes its own rows (at b->offset) through the network
 * and gathers the others', forms every loss over the whole batch (so the loss and the gradient
 * with respect to each sample's features are the one-rank ones), backpropagates its own rows,
 * and sums the PET gradient over the group (learn_tune_sync). Head gradients come from the
 * gathered batch and are the same on every rank without communication. */

/* In-place gather of a batch-row buffer (B_global x cols) whose rows [offset, offset + B) this
 * rank has filled. Collective. */
SCL_NODISCARD scl_err learn_tune_gather(const dist_comm *comm, const learn_batch *b, float *buf,
                                        int64_t cols);
/* p->grad summed over the group (one allreduce over the PET block). Collective. */
SCL_NODISCARD scl_err learn_tune_sync(const dist_comm *comm, pet_params *p);
/* Backward of this rank's rows of dphi (B_global x D) through the trainer (nothing to do when
 * the rank has no rows in this batch). */
SCL_NODISCARD scl_err learn_tune_backward(vit_trainer *t, pet_params *p, const float *dphi,
                                          int64_t D, const learn_batch *b);
/* This rank's rows of a forward (training mode, kept for the backward) or an inference pass,
 * written at their place in out (B_global x D) and gathered. Collective. */
SCL_NODISCARD scl_err learn_tune_forward(const dist_comm *comm, vit_trainer *t, const pet_params *p,
                                         const learn_batch *b, const vit_dropout_key *key,
                                         int64_t D, float *out);
SCL_NODISCARD scl_err learn_tune_infer(const dist_comm *comm, vit_trainer *t, const pet_params *p,
                                       const learn_batch *b, int64_t D, float *out);

/* Forward of the batch through backbone + p (kept for the backward), cosine head over classes
 * [0, k), cross-entropy over the global batch. On return: w->phi the features of the whole
 * batch, w->dphi = dCE/dphi (zeroed first), h->grad += dCE/dhead (zeroed first) and the CE value
 * in *ce. The caller may add other losses' gradients to w->dphi and h->grad before
 * learn_tune_backward. Collective. */
SCL_NODISCARD scl_err learn_tune_ce(learn_step_buffers *w, vit_trainer *t, const pet_params *p,
                                    learn_head *h, const learn_batch *b, int64_t k,
                                    const vit_dropout_key *key, const dist_comm *comm, double *ce);

/* pet_config from the method config's method.pet and method.adapter/vpt keys. */
SCL_NODISCARD scl_err learn_pet_config(const learn_method_cfg *cfg, pet_config *out);

/* ---------------------------------------------------------------------------------------- */
/* The first-session tuner of APER and RanPAC (PILOT aper_*.py, RanPAC.py): in session 1 a PET
 * module and a cosine head over the session's classes are trained with CE (SGD, cosine
 * schedule, train.* keys); afterwards the PET module is frozen and the "adapted" network
 * (backbone + PET) is a fixed feature extractor. With method.pet = "none" nothing trains and the
 * adapted network is the pre-trained model. */

typedef struct learn_tuner learn_tuner;

SCL_NODISCARD scl_err learn_tuner_create(const learn_context *ctx, learn_tuner **out);
void learn_tuner_destroy(learn_tuner **t);
learn_train_plan learn_tuner_plan(const learn_tuner *t, const learn_session *s);
SCL_NODISCARD scl_err learn_tuner_begin(learn_tuner *t, const learn_session *s);
SCL_NODISCARD scl_err learn_tuner_step(learn_tuner *t, const learn_session *s, const learn_batch *b,
                                       double *losses);
/* The adapted network (frozen: it never changes once session 1's training is over). */
learn_network learn_tuner_network(learn_tuner *t);
/* The tuner's state (PET, head and their momentum) for checkpoints; returns the count. */
int learn_tuner_state(learn_tuner *t, learn_state_entry *out);

#endif /* SAFECL_TUNING_H */
