/* trial_validation.c: the validation split that hyperparameters are chosen on (docs/architecture.md
 * section 4): held-out session-1 training images, drawn per class by a permutation keyed by the
 * trial seed, and their removal from session 1's training list. The split is a function of the
 * seed and the dataset alone, never of the rank, the group size or a resume. Evaluating on it is
 * trial_session.c's. */
#include "trial_phases.h"

/* The validation split (docs/architecture.md section 4): of each session-1 class,
 * floor(val_fraction x n) training images (at least one when the class has two or more), chosen by
 * a permutation keyed by the trial seed and the class, so the split is the same on every rerun and
 * rank. */
scl_err trial_carve_validation(trial_state *st) {
  if (st->cfg->val_fraction <= 0.0) return SCL_OK;
  int64_t lo, hi, *idx = NULL, n = 0, *perm = NULL;
  int32_t *labels = NULL;
  scl_err err = SCL_OK;
  trial_session_classes(st, 0, &lo, &hi);
  SCL_CALL_GOTO(err, data_sessions_select(st->plan, st->train, lo, hi, &idx, &labels, &n), done);
  if (st->dil) trial_keep_domain(st->train, 0, idx, labels, &n);
  SCL_CALL_GOTO(err, scl_alloc((size_t)(n ? n : 1) * 8, "validation split", (void **)&st->val_idx),
                done);
  SCL_CALL_GOTO(
      err, scl_alloc((size_t)(n ? n : 1) * 4, "validation labels", (void **)&st->val_labels), done);
  SCL_CALL_GOTO(err, scl_alloc((size_t)(n ? n : 1) * 8, "class members", (void **)&perm), done);
  for (int64_t c = lo; c < hi; c++) {
    int64_t members = 0;
    for (int64_t i = 0; i < n; i++) members += labels[i] == c;
    int64_t k = (int64_t)(st->cfg->val_fraction * (double)members);
    if (k == 0 && members >= 2) k = 1;
    SCL_CALL_GOTO(err,
                  scl_rng_permutation((uint64_t)st->cfg->seed, SCL_STREAM_SPLIT,
                                      0x10000u + (uint32_t)c, members, perm),
                  done);
    for (int64_t i = 0, j = 0; i < n; i++) { /* j-th member of class c is held out if perm[j] < k */
      if (labels[i] != c) continue;
      if (perm[j++] < k) st->val_idx[st->n_val++] = idx[i];
    }
  }
  /* dataset order, so that removal from session 1's training list is one merge */
  for (int64_t a = 1; a < st->n_val; a++)
    for (int64_t b = a; b > 0 && st->val_idx[b - 1] > st->val_idx[b]; b--) {
      int64_t t = st->val_idx[b];
      st->val_idx[b] = st->val_idx[b - 1];
      st->val_idx[b - 1] = t;
    }
  for (int64_t v = 0; v < st->n_val; v++)
    st->val_labels[v] = (int32_t)st->plan->mapped[data_dataset_label(st->train, st->val_idx[v])];
  SCL_INFO("validation split: %lld of %lld session-1 training images held out",
           (long long)st->n_val, (long long)n);
done:
  scl_free(idx);
  scl_free(labels);
  scl_free(perm);
  return err;
}

/* Removes the validation samples (sorted) from a sorted training list, in place. */
void trial_drop_validation(const trial_state *st, int64_t *idx, int32_t *labels, int64_t *n) {
  int64_t k = 0, v = 0;
  for (int64_t i = 0; i < *n; i++) {
    while (v < st->n_val && st->val_idx[v] < idx[i]) v++;
    if (v < st->n_val && st->val_idx[v] == idx[i]) continue;
    idx[k] = idx[i];
    labels[k++] = labels[i];
  }
  *n = k;
}
