/* safe_internal.h: the state of a SAFE learner, shared by safe.c (training: slow learner in
 * session 1, fast learner after) and safe_classifier.c (random-projection classifiers, the
 * entropy-weighted aggregation). Private to src/learn/. */
#ifndef SAFECL_SAFE_INTERNAL_H
#define SAFECL_SAFE_INTERNAL_H

#include "safecl/learn.h"
#include "safecl/method.h"
#include "safecl/pet.h"
#include "safecl/rp.h"
#include "safecl/tuning.h"

typedef struct safe {
  learn_method base;
  learn_method_cfg cfg;
  vit_model *ptm;
  uint64_t seed;
  int64_t C, D, B; /* classes, feature width, training batch */
  int dil;         /* domain-incremental: the released code trains no fast learner */
  pet_config pc;
  pet_params *slow, *fast;
  float *slow_buf, *fast_buf; /* SGD momentum of the PET blocks */
  learn_head head_s, head_f;  /* cosine heads over all classes (tuning.h) */
  vit_trainer *trainer;
  const dist_comm *comm; /* the trial's rank group (dist_comm_self() alone) */
  linalg_group *linalg;  /* the group's ridge solver (NULL: the classifiers make their own) */
  /* classifiers: shared statistics (rp only) or separate (rp and rp_slow) */
  learn_rp *rp, *rp_slow;
  float *wo_slow;       /* the slow learner's W_o (C x M) */
  double lambdas[4];    /* [0] fast, [1] slow, [2] classes seen (n_seen), [3] sessions fitted */
  learn_step_buffers w; /* per-step scratch, sized for (B, C, D) at create */
} safe;

/* The classifier half (safe_classifier.c). */
int safe_networks(learn_method *m, const learn_session *s, learn_network *out);
SCL_NODISCARD scl_err safe_fit(learn_method *m, const learn_session *s,
                               const float *const *features, const int32_t *labels,
                               const int64_t *pos, int64_t n);
SCL_NODISCARD scl_err safe_predict(learn_method *m, const learn_session *s,
                                   const float *const *features, int64_t n, int32_t *pred);
SCL_NODISCARD scl_err safe_classifier_create(safe *sf);
void safe_classifier_destroy(safe *sf);
int safe_classifier_state(safe *sf, learn_state_entry *out);

#endif /* SAFECL_SAFE_INTERNAL_H */
