/* slca.h: the parts of SLCA (Zhang et al., ICCV 2023; docs/methods.md k) that work on features
 * and heads, not on the ViT: the per-class Gaussian statistics of the features, samples drawn
 * from them through a Cholesky factor in double, the logit-normalised cross-entropy, and the
 * classifier alignment (CA) that trains the heads of every seen class on those samples. The
 * method (the slow learner, its per-session heads, the state) is src/learn/slca.c.
 *
 * Heads: the per-session linear heads are rows of one linear head over all C classes of the
 * benchmark, prompt.h's flat layout with no method tensors: W (C, D) at 0, b (C) at
 * learn_slca_head_b(C, D), learn_slca_head_count(C, D) floats in all. Session t's head is the rows
 * of its classes [bounds[t], bounds[t + 1]) of the mapped label space.
 *
 * Statistics memory grows with the classes: C x D x D floats of covariance (2.36 MB per class at
 * D = 768: 236 MB at 100 classes, 472 MB at 200, 708 MB at 300) plus C x D floats of means,
 * allocated once for the whole benchmark (docs/methods.md k.3). */
#ifndef SAFECL_SLCA_H
#define SAFECL_SLCA_H

#include <stdint.h>

#include "safecl/core.h"
#include "safecl/dist.h"

/* The 1e-4 I added to every class covariance (docs/methods.md k.3). */
#define LEARN_SLCA_COV_RIDGE 1e-4
/* The eps added to every session block's logit norm (docs/methods.md k.4). */
#define LEARN_SLCA_NORM_EPS 1e-7

static inline int64_t learn_slca_head_b(int64_t C, int64_t D) { return scl_pad_floats(C * D); }
static inline int64_t learn_slca_head_count(int64_t C, int64_t D) {
  return scl_pad_floats(C * D) + scl_pad_floats(C);
}

/* ---------------------------------------------------------------------------------------- */
/* Class statistics                                                                          */

typedef struct learn_slca_stats {
  int64_t C, D;
  float *mean;      /* (C, D), owned */
  float *cov;       /* (C, D, D), owned: the covariance + 1e-4 I, both triangles */
  int64_t *session; /* (C), owned: the session whose backbone gave the class its statistics,
                       -1 while it has none */
} learn_slca_stats;

/* Bytes of the statistics of C classes of width D (means and covariances). */
static inline double learn_slca_stats_bytes(int64_t C, int64_t D) {
  return 4.0 * (double)C * (double)D * (double)(D + 1);
}

/* Allocates the statistics of C classes (zero, every session -1). */
SCL_NODISCARD scl_err learn_slca_stats_create(learn_slca_stats *s, int64_t C, int64_t D);
void learn_slca_stats_free(learn_slca_stats *s);

/* The statistics of the classes [lo, hi) from the features of session t's training images:
 * each rank passes its shard, n rows of feat (n, D) with labels in [lo, hi) (a label outside is
 * SCL_ERR_ARG). Per class, over the union of the shards: the mean in double, then the unbiased
 * covariance sum (x - mean)(x - mean)^T / (count - 1) in double + 1e-4 I, both stored as float32;
 * session[c] = t. A class with fewer than two images in the union is SCL_ERR_ARG naming it, on
 * every rank. Other classes keep their statistics. Collective over comm. */
SCL_NODISCARD scl_err learn_slca_stats_fit(learn_slca_stats *s, const dist_comm *comm,
                                           const float *feat, const int32_t *labels, int64_t n,
                                           int64_t lo, int64_t hi, int t);

/* ---------------------------------------------------------------------------------------- */
/* Gaussian samples                                                                          */

/* The factor the mean of a class of session t_c is multiplied by when sampling in session t:
 * 0.9 + 0.1 (t_c + 1) / (t + 1) (1 for the current session; 0.91 for session 0 at t = 9). */
double learn_slca_shrink(int64_t t_c, int64_t t);

/* Doubles of work learn_slca_sample needs for n samples of width D. */
static inline int64_t learn_slca_sample_work(int64_t n, int64_t D) { return D * D + n * D; }

/* x (n, D): n samples of N(shrink mean_c, cov_c): row i = shrink mean_c + L e_i with L L^T = cov_c
 * (linalg_cholesky_f64 of cov_c in double) and e_i D standard normals from the counter stream
 * (seed, SCL_STREAM_GAUSSIAN, key, 1 + c n + i), computed in double and rounded once. Row i is a
 * function of the statistics, seed, key, c, n and i only. SCL_ERR_LAPACK if cov_c is not positive
 * definite, SCL_ERR_ARG if class c has no statistics or c n + n reaches 2^32. */
SCL_NODISCARD scl_err learn_slca_sample(float *x, double *work, const learn_slca_stats *s,
                                        int64_t c, double shrink, int64_t n, uint64_t seed,
                                        uint32_t key);

/* One CA epoch's samples of the classes [0, K) of session t: x (K n, D), rows [c n, (c + 1) n) of
 * class c from learn_slca_sample with shrink learn_slca_shrink(session[c], t), key = t x 4096 +
 * epoch; perm (K n) the shuffle, scl_rng_permutation(seed, SCL_STREAM_GAUSSIAN, key) (its stream
 * index 0 is no sample's). Mini-batch j of the epoch is rows perm[j n .. (j + 1) n) with labels
 * perm[i] / n. The classes are drawn by the rank holding them (learn_shard of K) and gathered, so
 * x is the same, bit for bit, on every rank and at every group size. Collective over comm. */
SCL_NODISCARD scl_err learn_slca_epoch_samples(float *x, int64_t *perm, double *work,
                                               const learn_slca_stats *s, int64_t K, int64_t n,
                                               int t, int64_t epoch, uint64_t seed,
                                               const dist_comm *comm);

/* ---------------------------------------------------------------------------------------- */
/* Logit-normalised cross-entropy and classifier alignment                                   */

/* Mean CE over B rows of logits (B, K) of z' = z / nbar / tau (docs/methods.md k.4): per row,
 * n_i = ||z[bounds[i]:bounds[i+1]]|| + 1e-7 for the nb session blocks (bounds[0] = 0,
 * bounds[nb] = K), nbar = the mean of the n_i. dlogits (B, K) += scale x the gradient through
 * z' and through the norms (a block of norm 0 contributes no norm gradient, as autograd's norm),
 * or NULL. tau <= 0 is the plain CE. work: K doubles. Returns NAN on a label outside [0, K). */
double learn_slca_lognorm_ce(float *dlogits, double *work, const float *logits, const int64_t *y,
                             int64_t B, int64_t K, const int64_t *bounds, int nb, double tau,
                             double scale);

typedef struct learn_slca_align_cfg {
  int64_t epochs;  /* CA epochs (authors 5, PILOT 3); CosineAnnealingLR's T_max */
  int64_t samples; /* samples per class and epoch, and the mini-batch size (256) */
  double lr, momentum, weight_decay; /* SGD (0.01, 0.9, 5e-4) */
  double tau;                        /* logit normalisation (0.1; <= 0: none) */
  uint64_t seed;
} learn_slca_align_cfg;

/* What an alignment did: the mini-batches it stepped (K per epoch), and the mean CE of every
 * epoch's mini-batches (first `epochs` entries, at most 64 recorded). */
typedef struct learn_slca_align_log {
  int64_t batches;
  double epoch_loss[64];
} learn_slca_align_log;

/* Classifier alignment of session t >= 1 (docs/methods.md k.4) on head (the flat layout above, C
 * classes of width D): the rows and biases of the seen classes [0, K), K = bounds[t + 1], are
 * trained by SGD (torch semantics, weight decay added to the gradient, a fresh momentum) with
 * lr(e) = cosine annealing from cfg->lr to 0 over cfg->epochs, on every epoch's samples
 * (learn_slca_epoch_samples) in K mini-batches, loss learn_slca_lognorm_ce over the session
 * blocks bounds[0 .. t + 1]. Every rank runs the same steps on the same samples, so the head is
 * the same everywhere. Other rows are untouched. Allocates its buffers for the call (K x samples x
 * D floats of samples). Collective over comm. */
SCL_NODISCARD scl_err learn_slca_align(float *head, int64_t C, int64_t D, const learn_slca_stats *s,
                                       const int64_t *bounds, int t,
                                       const learn_slca_align_cfg *cfg, const dist_comm *comm,
                                       learn_slca_align_log *log);

#endif /* SAFECL_SLCA_H */
