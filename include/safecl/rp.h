/* rp.h: the random-projection ridge classifier of RanPAC and SAFE (docs/methods.md b.5, c.2,
 * c.5-c.7).
 *
 * h = ReLU(x W_rand) with W_rand (D x M) drawn N(0, 1) once; G = sum H^T H and Q = sum H^T Y
 * accumulate in double over sessions; each session a ridge lambda is chosen on that session's
 * features alone (first fit_fraction of the rows, in a shuffled order, fit; the rest score), and
 * W_o = ((G + lambda I)^-1 Q)^T is solved for the classes seen so far. logits = h W_o^T (the
 * caller applies the cosine head's sigma when it wants SAFE's temperature).
 *
 * On a rank group (linalg_group.h) every rank passes its own rows: G, Q and the search are
 * summed over the group, W_o is replicated. Functions marked "collective" are called by every
 * rank of the group in the same order; the others are local. */
#ifndef SAFECL_RP_H
#define SAFECL_RP_H

#include <stdint.h>

#include "safecl/core.h"
#include "safecl/linalg_group.h"

typedef struct learn_rp {
  int64_t d, m, n_classes;
  float *w_rand;       /* D x M */
  linalg_group *group; /* the ridge solver's group (shared, or `owned`) */
  linalg_group *owned; /* a private one-process group when created without one */
  linalg_stats *stats; /* G (M x M, on the group's grid) and Q (M x n_classes, replicated) */
  float *w_out;        /* n_classes x M; rows [0, n_seen) valid; replicated */
  double state[2];     /* [0] n_seen, [1] last lambda: kept as doubles for checkpoints */
} learn_rp;

/* W_rand row i comes from the stream (seed, SCL_STREAM_PROJECT, tag, i). group: the trial's
 * solver (not owned); NULL makes a private one-process group (no MPI) that rp owns. Collective
 * over group. */
SCL_NODISCARD scl_err learn_rp_create(linalg_group *group, int64_t d, int64_t m, int64_t n_classes,
                                      uint64_t seed, uint32_t tag, learn_rp **out);
void learn_rp_destroy(learn_rp **rp);
/* h (n x M) = ReLU(x W_rand) for x (n x D). */
void learn_rp_project(const learn_rp *rp, const float *x, int64_t n, float *h);
/* G += H^T H, Q += H^T Y for this rank's n feature rows x (projected here in chunks; n may
 * differ between ranks and be 0). Collective. */
SCL_NODISCARD scl_err learn_rp_accumulate(learn_rp *rp, const float *x, const int32_t *labels,
                                          int64_t n);
/* fit[i] = 1 if the row at session list position p = pos[i] (pos NULL: p = i) is in the
 * fitting part of the reference's split: the session's n_total rows visited in the shuffled
 * order scl_rng_permutation(seed, SCL_STREAM_SPLIT, key, n_total), the first
 * int(fit_fraction * n_total) of that order fit, the rest validate. Local. */
SCL_NODISCARD scl_err learn_rp_fit_rows(uint64_t seed, uint32_t key, int64_t n_total,
                                        double fit_fraction, const int64_t *pos, int64_t n,
                                        uint8_t *fit);
/* Ridge search on one session's rows (this rank's x, labels, n rows; fit from
 * learn_rp_fit_rows): candidates 10^lo .. 10^hi; *lambda receives the choice (the same on
 * every rank), mse (may be NULL, hi - lo + 1 entries) every score. Collective. */
SCL_NODISCARD scl_err learn_rp_search(learn_rp *rp, const float *x, const int32_t *labels,
                                      const uint8_t *fit, int64_t n, int lo_exp, int hi_exp,
                                      double *lambda, double *mse);
/* W_o for classes [0, n_seen) from the accumulated G and Q. Collective. */
SCL_NODISCARD scl_err learn_rp_solve(learn_rp *rp, double lambda, int64_t n_seen);
/* logits (n x n_seen) = ReLU(x W_rand) W_o^T, computed in chunks. */
SCL_NODISCARD scl_err learn_rp_logits(const learn_rp *rp, const float *x, int64_t n, float *logits);
int64_t learn_rp_seen(const learn_rp *rp);
/* The same two operations with an external W_o (n_classes x M): SAFE's shared statistics solve
 * one G, Q with two lambdas, one per learner. The solve is collective. */
SCL_NODISCARD scl_err learn_rp_solve_into(learn_rp *rp, double lambda, int64_t n_seen,
                                          float *w_out);
SCL_NODISCARD scl_err learn_rp_logits_with(const learn_rp *rp, const float *w_out, int64_t n_seen,
                                           const float *x, int64_t n, float *logits);

#endif /* SAFECL_RP_H */
