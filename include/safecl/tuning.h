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

/* Forward of the batch through backbone + p (kept for the backward), cosine head over classes
 * [0, k), cross-entropy. On return: w->phi the features, w->dphi = dCE/dphi (zeroed first),
 * h->grad += dCE/dhead (zeroed first) and the CE value in *ce. The caller may add other losses'
 * gradients to w->dphi and h->grad before vit_trainer_backward. */
SCL_NODISCARD scl_err learn_tune_ce(learn_step_buffers *w, vit_trainer *t, const pet_params *p,
                                    learn_head *h, const learn_batch *b, int64_t k,
                                    const vit_dropout_key *key, double *ce);

/* pet_config from the method config's method.pet and method.adapter/vpt keys. */
pet_config learn_pet_config(const learn_method_cfg *cfg);

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
