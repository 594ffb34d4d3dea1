/* coda_prompt_internal.h: the numeric pieces of CODA-Prompt (src/learn/coda_prompt.c,
 * docs/methods.md i), exposed for its tests: the attention-weighted composition of one layer's
 * prompt from its components (forward and backward), the Gram-Schmidt and orthogonal
 * initialisation of components, the orthogonality penalty and the learning-rate schedule.
 *
 * Shapes: M components per layer, each a prompt P_k of Lp tokens of width D (stored flat,
 * E = Lp * D floats per row), a key K_k (D) and an attention vector A_k (D); q (B, D) are the
 * queries (the frozen ViT's class token). Rows [0, s) of a layer are the frozen components of
 * earlier sessions, rows [s, f) the training ones; rows [f, M) take no part. Kernels follow
 * docs/conventions.md 8: no allocation, gradients accumulated (+=), NULL gradient = frozen. */
#ifndef SAFECL_LEARN_CODA_PROMPT_INTERNAL_H
#define SAFECL_LEARN_CODA_PROMPT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "safecl/core.h"

/* What the forward of one layer keeps for the backward (caller memory, learn_coda_cache_bind). */
typedef struct learn_coda_cache {
  float *alpha; /* (B, f) composition weights alpha_{b,k} */
  float *anorm; /* (B, f) ||q_b * A_k||, unclamped */
  float *khat;  /* (f, D) normalised keys */
  float *knorm; /* (f) key norms, unclamped */
  float *ak;    /* (f, D) A_k * khat_k, element-wise */
} learn_coda_cache;

/* Floats of a cache for up to B images and M components, and the cache carved out of mem. */
size_t learn_coda_cache_floats(int64_t B, int64_t M, int64_t D);
learn_coda_cache learn_coda_cache_bind(float *mem, int64_t B, int64_t M, int64_t D);
/* Floats of scratch one backward needs. */
size_t learn_coda_backward_scratch(int64_t B, int64_t M, int64_t D);

/* alpha_{b,k} = normalize(q_b * A_k) . normalize(K_k) for k in [0, f) (F.normalize, norms clamped
 * at 1e-12), P_b = sum_k alpha_{b,k} P_k (Lp, D); pk (B, Lp / 2, D) = P_b's first half of tokens
 * (the prefix keys), pv (B, Lp / 2, D) = its second half (the prefix values). */
void learn_coda_forward(float *pk, float *pv, const learn_coda_cache *c, const float *q,
                        const float *P, const float *K, const float *A, int64_t B, int64_t f,
                        int64_t D, int64_t Lp);
/* Gradients of sum(dpk * pk) + sum(dpv * pv) with respect to rows [s, f) of P (M, E), K and A
 * (M, D), accumulated; rows [0, s) are detached (they took part in the forward with their values
 * but receive nothing) and the query is constant. Any of dP, dK, dA may be NULL. */
void learn_coda_backward(float *dP, float *dK, float *dA, float *scratch, const float *dpk,
                         const float *dpv, const float *q, const float *P, const float *A,
                         const learn_coda_cache *c, int64_t B, int64_t s, int64_t f, int64_t D,
                         int64_t Lp);

/* Gram-Schmidt re-initialisation of X (M, n): rows [0, s) are kept; each row k of [s, f) is drawn
 * N(0, 1) from the counter RNG (seed, SCL_STREAM_INIT, tag, k), made orthogonal to the span of
 * every earlier row (modified Gram-Schmidt in double, twice; earlier rows need be neither unit
 * nor mutually orthogonal) and normalised; rows [f, M) are zeroed. SCL_ERR_ARG when f > n (no f
 * orthogonal rows of width n exist); allocates f * n doubles of scratch. */
SCL_NODISCARD scl_err learn_coda_gram_schmidt(float *X, int64_t M, int64_t n, int64_t s, int64_t f,
                                              uint64_t seed, uint32_t tag);

/* mean((X X^T - I)^2) over rows [0, f) of X (f, n), an f x f mean, returned in double;
 * dX rows [s, f) += scale * its gradient (dX may be NULL). gram: f * f doubles of scratch. */
double learn_coda_ortho_penalty(float *dX, double *gram, const float *X, int64_t s, int64_t f,
                                int64_t n, double scale);

/* The schedule of the CODA code: lr0 * cos(99 pi e / (200 (E - 1))) in epoch e of E; with E = 1
 * the single epoch runs at lr0. */
double learn_coda_lr(double lr0, int64_t E, int64_t e);

#endif /* SAFECL_LEARN_CODA_PROMPT_INTERNAL_H */
