/* rp.h: the random-projection ridge classifier of RanPAC and SAFE (METHOD.md b.5, c.2, c.5-c.7).
 *
 * h = ReLU(x W_rand) with W_rand (D x M) drawn N(0, 1) once; G = sum H^T H and Q = sum H^T Y
 * accumulate in double over sessions; each session a ridge lambda is chosen on that session's
 * features alone (first fit_fraction of the rows, in a shuffled order, fit; the rest score), and
 * W_o = ((G + lambda I)^-1 Q)^T is solved for the classes seen so far. logits = h W_o^T (the
 * caller applies the cosine head's sigma when it wants SAFE's temperature). */
#ifndef SAFECL_RP_H
#define SAFECL_RP_H

#include <stdint.h>

#include "safecl/core.h"

typedef struct learn_rp {
  int64_t d, m, n_classes;
  float *w_rand;   /* D x M */
  double *G;       /* M x M, upper triangle (row-major) */
  double *Q;       /* M x n_classes */
  float *w_out;    /* n_classes x M; rows [0, n_seen) valid */
  double state[2]; /* [0] n_seen, [1] last lambda: kept as doubles for checkpoints */
} learn_rp;

/* W_rand row i comes from the stream (seed, SCL_STREAM_PROJECT, tag, i). */
SCL_NODISCARD scl_err learn_rp_create(int64_t d, int64_t m, int64_t n_classes, uint64_t seed,
                                      uint32_t tag, learn_rp **out);
void learn_rp_destroy(learn_rp **rp);
/* h (n x M) = ReLU(x W_rand) for x (n x D). */
void learn_rp_project(const learn_rp *rp, const float *x, int64_t n, float *h);
/* G += H^T H, Q += H^T Y for the n feature rows x (projected here in chunks). */
SCL_NODISCARD scl_err learn_rp_accumulate(learn_rp *rp, const float *x, const int32_t *labels,
                                          int64_t n);
/* Ridge search on one session's rows (x, labels), visited in the order `order` (a permutation
 * of [0, n), the reference's shuffled loader): candidates 10^lo .. 10^hi; *lambda receives the
 * choice, mse (may be NULL, hi - lo + 1 entries) every score. */
SCL_NODISCARD scl_err learn_rp_search(const learn_rp *rp, const float *x, const int32_t *labels,
                                      const int64_t *order, int64_t n, int lo_exp, int hi_exp,
                                      double fit_fraction, double *lambda, double *mse);
/* W_o for classes [0, n_seen) from the accumulated G and Q. */
SCL_NODISCARD scl_err learn_rp_solve(learn_rp *rp, double lambda, int64_t n_seen);
/* logits (n x n_seen) = ReLU(x W_rand) W_o^T, computed in chunks. */
SCL_NODISCARD scl_err learn_rp_logits(const learn_rp *rp, const float *x, int64_t n, float *logits);
int64_t learn_rp_seen(const learn_rp *rp);
/* The same two operations with an external W_o (n_classes x M): SAFE's shared statistics solve
 * one G, Q with two lambdas, one per learner. */
SCL_NODISCARD scl_err learn_rp_solve_into(const learn_rp *rp, double lambda, int64_t n_seen,
                                          float *w_out);
SCL_NODISCARD scl_err learn_rp_logits_with(const learn_rp *rp, const float *w_out, int64_t n_seen,
                                           const float *x, int64_t n, float *logits);

#endif /* SAFECL_RP_H */
