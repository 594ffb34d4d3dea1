/* prototypes.h: the prototype cosine classifier of SimpleCIL and APER (docs/methods.md e).
 *
 * A class's row is the mean feature of its training images (test transforms); prediction is the
 * argmax of cosine similarity over the classes seen so far (the head's scale sigma does not move
 * the argmax). Sums are kept in double so that a class can be built from several batches. */
#ifndef SAFECL_PROTOTYPES_H
#define SAFECL_PROTOTYPES_H

#include <stdint.h>

#include "safecl/core.h"
#include "safecl/method.h"

typedef struct learn_prototypes {
  int64_t n_classes, dim;
  double *sum;    /* n_classes x dim */
  int64_t *count; /* n_classes */
  float *unit;    /* n_classes x dim: normalised means of finalised classes, zero otherwise */
} learn_prototypes;

SCL_NODISCARD scl_err learn_prototypes_create(int64_t n_classes, int64_t dim,
                                              learn_prototypes **out);
void learn_prototypes_destroy(learn_prototypes **p);
/* Turns the sums of classes [lo, hi) into unit-norm mean rows; a class without images is an
 * error naming it. */
SCL_NODISCARD scl_err learn_prototypes_finalize(learn_prototypes *p, int64_t lo, int64_t hi);
/* A session's fit on a rank group (collective over comm): each rank passes its shard's n rows
 * (labels in [lo, hi)); the sums of classes [lo, hi) gain every rank's rows, then are finalised,
 * the same on every rank: this session's rows are summed per class (in double), the sums added
 * over the group, then to the running sums. A group of one sums in place of the allreduce; over
 * a group the additions come in another order (a few ulps of double). */
SCL_NODISCARD scl_err learn_prototypes_fit(learn_prototypes *p, const float *features,
                                           const int32_t *labels, int64_t n, int64_t lo, int64_t hi,
                                           const dist_comm *comm);
/* pred[i] = argmax over classes [0, n_seen) of cos(features[i], prototype[c]). */
SCL_NODISCARD scl_err learn_prototypes_predict(const learn_prototypes *p, const float *features,
                                               int64_t n, int64_t n_seen, int32_t *pred);

#endif /* SAFECL_PROTOTYPES_H */
