/* ease_internal.h: the classifier half of EASE (src/learn/ease_classifier.c, docs/methods.md j.4,
 * j.5), exposed for ease.c and its tests: class-mean prototypes in every subspace, the
 * semantic-guided complement of old classes in newer subspaces and the (reweighted) logits.
 *
 * Shapes: D is the width of one subspace (the ViT's class token). The prototype matrix W has one
 * row per class and ld floats per row; block j of a row is columns [j D, (j + 1) D). With ptm = 1
 * block 0 is the pre-trained model and adapter set s is block s + 1; otherwise set s is block s.
 * starts[0..t+1] are the session boundaries in mapped label space: session i holds classes
 * [starts[i], starts[i + 1]), and K_seen = starts[t + 1]. Features x of n images are the
 * concatenation of nb blocks, (n, nb D). Private to src/learn/ and tests/learn/. */
#ifndef SAFECL_LEARN_EASE_INTERNAL_H
#define SAFECL_LEARN_EASE_INTERNAL_H

#include <stdint.h>

#include "safecl/core.h"
#include "safecl/dist.h"

/* New classes' prototypes (j.4 step 2), collective over comm: each rank passes its shard's n rows
 * of width `width` floats (labels in [lo, hi)); for every class c of [lo, hi), W[c, 0:width) =
 * the mean of its rows over the group (sums in double). A label outside [lo, hi) or a class
 * without rows is an error naming it, the same on every rank. */
SCL_NODISCARD scl_err learn_ease_means(float *W, int64_t ld, const float *x, const int32_t *labels,
                                       int64_t n, int64_t width, int64_t lo, int64_t hi,
                                       const dist_comm *comm);

/* The complement of session t (j.4 step 3), from scratch: for every old session i < t and every
 * newer subspace d = i+1 .. t, with reference classes R = [starts[d], starts[t + 1]):
 * S = softmax over R of cos(W[a, block of set i], W[r, block of set i]) for a in session i (no
 * temperature), and W[session i, block of set d] = S W[R, block of set d]. Cosines and softmax in
 * double. Reads only real prototypes (a class's own and older subspaces, and every subspace of
 * its own session's classes), so the order of the updates does not matter. */
SCL_NODISCARD scl_err learn_ease_complement(float *W, int64_t ld, const int64_t *starts, int t,
                                            int ptm, int64_t D);

/* Logits (n, K_seen) of the prototype head at session t, sigma = 1 (j.5). reweight = 1:
 * z_c = sum over blocks j of w_j(c) cos(x block j, W[c] block j), w = 1 for the set of c's own
 * session, alpha / t for the other sets, beta for the pre-trained block (ptm); reweight = 0: the
 * cosine of the whole concatenation, cos(x[0:nb D), W[c, 0:nb D)). F.normalize's clamp: a vector
 * of norm below 1e-12 is divided by 1e-12. */
SCL_NODISCARD scl_err learn_ease_logits(float *logits, const float *x, int64_t n, const float *W,
                                        int64_t ld, const int64_t *starts, int t, int ptm,
                                        int64_t nb, int64_t D, int reweight, double alpha,
                                        double beta);

#endif /* SAFECL_LEARN_EASE_INTERNAL_H */
