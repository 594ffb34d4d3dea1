/* learn.h: the training pieces SAFE and its baselines share: the cosine head, the losses
 * (cross-entropy, SAFE's transfer loss, feature alignment, cross-classification), per-sample
 * dropout, and the optimizers and learning-rate schedules, all exact to PyTorch 1.13.
 *
 * Conventions (those of nn.h, restated where they matter here):
 *   - Row-major fp32 feature matrices: B rows (batch), D columns (feature width), K classes.
 *     A head weight W is (K, D), one row per class.
 *   - Kernels are pairs learn_x_forward(out, cache..., in, weights..., dims) /
 *     learn_x_backward(din, dweights..., dout, in, weights..., cache..., dims). Backward
 *     ACCUMULATES (+=) into gradients; a NULL gradient pointer means frozen: skip it.
 *   - Kernels never allocate, do no I/O and return void (losses return their value as double).
 *     Caches and scratch are caller memory, sized by the *_floats / *_scratch functions (counts of
 *     floats). Callers validate shapes; kernels assume them.
 *   - Losses return the UNweighted loss as double and accumulate scale * dL/d(input) into their
 *     gradient buffers, so a caller passes its loss weight (lambda) as `scale`.
 *   - Beside every BLAS-backed kernel is a `_ref` with plain loops and double accumulation.
 *   - L2 normalisation follows torch.nn.functional.normalize: v / max(||v||, 1e-12), with the
 *     backward autograd takes THROUGH the clamp: when ||v|| < 1e-12 the gradient is g / 1e-12 with
 *     no projection term. A zero head row therefore receives a ~1e12-sized first gradient
 *     (docs/methods.md c.3 item 6); this is reproduced on purpose. */
#ifndef SAFECL_LEARN_H
#define SAFECL_LEARN_H

#include <stddef.h>
#include <stdint.h>

/* F.normalize's eps (the clamp of the norm) and F.cosine_similarity's eps. */
#define LEARN_NORMALIZE_EPS 1e-12f
#define LEARN_COSSIM_EPS 1e-8f

/* ---------------------------------------------------------------------------------------- */
/* Row-wise L2 normalisation (F.normalize(x, p=2, dim=1))                                    */

/* xn (rows, D) = x / max(||x||, 1e-12) per row; norm (rows) receives ||x|| (unclamped). */
void learn_l2norm_forward(float *xn, float *norm, const float *x, int64_t rows, int64_t D);
/* dx += d xn / dx applied to dxn, through the clamp (see above). */
void learn_l2norm_backward(float *dx, const float *dxn, const float *xn, const float *norm,
                           int64_t rows, int64_t D);

/* ---------------------------------------------------------------------------------------- */
/* Cosine head (docs/methods.md b.5): logits = sigma * normalize(x) . normalize(W)^T         */

/* Flat parameter layout of one head: W (K*D floats, row k = class k) then sigma (1 float). */
static inline int64_t learn_cosine_params(int64_t K, int64_t D) { return K * D + 1; }

/* What forward keeps for backward; every pointer is caller memory (learn_cosine_cache_bind). */
typedef struct learn_cosine_cache {
  float *xn;    /* (B, D) normalised inputs */
  float *xnorm; /* (B) input norms, unclamped */
  float *wn;    /* (K, D) normalised weight rows */
  float *wnorm; /* (K) weight-row norms, unclamped */
  float *cos;   /* (B, K) cosines, logits / sigma */
} learn_cosine_cache;

/* Floats a cache needs, and the cache carved out of `mem` (64-byte aligned pieces if mem is). */
size_t learn_cosine_cache_floats(int64_t B, int64_t K, int64_t D);
learn_cosine_cache learn_cosine_cache_bind(float *mem, int64_t B, int64_t K, int64_t D);
/* Floats of scratch the backward needs. */
size_t learn_cosine_backward_scratch(int64_t B, int64_t K, int64_t D);

/* logits (B, K) from x (B, D), w (K, D), *sigma. The cache must be given (it is the working
 * memory of the forward as well). */
void learn_cosine_forward(float *logits, const learn_cosine_cache *cache, const float *x,
                          const float *w, const float *sigma, int64_t B, int64_t K, int64_t D);
void learn_cosine_forward_ref(float *logits, const learn_cosine_cache *cache, const float *x,
                              const float *w, const float *sigma, int64_t B, int64_t K, int64_t D);
/* dx (B, D), dw (K, D), dsigma (1) += gradients of sum(dlogits * logits); each may be NULL. */
void learn_cosine_backward(float *dx, float *dw, float *dsigma, float *scratch,
                           const float *dlogits, const float *x, const float *w, const float *sigma,
                           const learn_cosine_cache *cache, int64_t B, int64_t K, int64_t D);
void learn_cosine_backward_ref(float *dx, float *dw, float *dsigma, float *scratch,
                               const float *dlogits, const float *x, const float *w,
                               const float *sigma, const learn_cosine_cache *cache, int64_t B,
                               int64_t K, int64_t D);

/* CosineLinear.reset_parameters: W ~ U(-1/sqrt(D), 1/sqrt(D)), sigma = sigma0 (SAFE: 10). Row k
 * is drawn from the counter RNG (seed, SCL_STREAM_INIT, epoch = tag, index = k), so a class's
 * initial row does not depend on K; `tag` separates heads (e.g. session or learner). */
void learn_cosine_init(float *w, float *sigma, int64_t K, int64_t D, uint64_t seed, uint32_t tag,
                       float sigma0);
/* update_fc: dst (learn_cosine_params(K_new, D)) = old rows, zero rows for the new classes, and
 * the old sigma; src is learn_cosine_params(K_old, D). K_new >= K_old; dst must not alias src. */
void learn_cosine_grow(float *dst, const float *src, int64_t K_old, int64_t K_new, int64_t D);

/* ---------------------------------------------------------------------------------------- */
/* Losses                                                                                    */

/* F.cross_entropy(logits, y): mean over B rows of logsumexp(row) - row[y]. dlogits (B, K) or
 * NULL. Returns NAN if a label is outside [0, K). */
double learn_ce_loss(float *dlogits, const float *logits, const int64_t *y, int64_t B, int64_t K,
                     double scale);
/* The same over a column range of classes [y0, y0 + K): logits (B, K) are those columns and the
 * labels y are class ids in that range (the prompt methods' session columns, docs/methods.md
 * f.7). Returns NAN if a label is outside it. */
double learn_ce_loss_range(float *dlogits, const float *logits, const int64_t *y, int64_t y0,
                           int64_t B, int64_t K, double scale);

/* SAFE's transfer loss as coded (slow_cm, docs/methods.md c.1): s = normalize(feat), p =
 * normalize(ptm) per sample, C = s^T p / B (D, D), loss = lambda_diag * sum_i (C_ii - 1)^2 +
 * lambda_rdn * sum_{i != j} C_ij^2. The gradient reaches the unnormalised feat (dfeat (B, D), or
 * NULL); ptm is constant. */
size_t learn_transfer_scratch(int64_t B, int64_t D);
double learn_transfer_loss(float *dfeat, float *scratch, const float *feat, const float *ptm,
                           int64_t B, int64_t D, double lambda_diag, double lambda_rdn,
                           double scale);
double learn_transfer_loss_ref(float *dfeat, float *scratch, const float *feat, const float *ptm,
                               int64_t B, int64_t D, double lambda_diag, double lambda_rdn,
                               double scale);

/* Feature alignment L_cos = sum_b (1 - cosine_similarity(f_b, s_b)) (a SUM over the batch), with
 * torch 1.13's F.cosine_similarity: each vector divided by max(its norm, 1e-8) and the gradient
 * taken through the clamped norms, i.e. d cos / d f = (sh - cos * fh) / max(||f||, 1e-8) with
 * fh = f / max(||f||, 1e-8), sh likewise. Gradient to f only (df (B, D), or NULL). */
double learn_align_loss(float *df, const float *f, const float *s, int64_t B, int64_t D,
                        double scale);

/* Cross-classification L_{s<->f} = l1 + l2 (docs/methods.md c.3), K old classes of Kt in all:
 *   l1 = CE(fastHead([W_S[0:K]; phi_S]), yhat), l2 = CE(slowHead([W_F[0:K]; phi_F]), yhat),
 *   yhat = [0..K-1, y_0..y_{B-1}], each a mean over its K + B rows; heads are cosine heads over Kt
 *   classes (w_fast, sigma_fast) and (w_slow, sigma_slow). Gradients: dw_fast (Kt, D) through l1
 *   and, for rows 0..K-1, through l2; dsigma_fast through l1; dphi_fast (B, D) through l2. Each
 *   may be NULL; the slow head and phi_slow are constant. If l1 and l2 are wanted separately,
 *   parts[2] receives them (or pass NULL). */
size_t learn_crossclass_scratch(int64_t K, int64_t Kt, int64_t B, int64_t D);
double learn_crossclass_loss(float *dw_fast, float *dsigma_fast, float *dphi_fast, float *scratch,
                             double *parts, const float *w_fast, const float *sigma_fast,
                             const float *w_slow, const float *sigma_slow, const float *phi_fast,
                             const float *phi_slow, const int64_t *y, int64_t K, int64_t Kt,
                             int64_t B, int64_t D, double scale);

/* ---------------------------------------------------------------------------------------- */
/* Dropout (training mode, torch semantics: keep with probability 1 - p, scale by 1/(1 - p))  */

/* The mask of one sample: n bytes (1 keep, 0 drop) drawn from the counter RNG keyed by (seed,
 * SCL_STREAM_DROPOUT, epoch = step, index = sample index), starting at block site << 20 of that
 * stream. `site` names the dropout call site (layer number, plus a pass number for a second
 * forward pass, composed by the caller) and gives each site 2^22 draws, so n must stay below
 * 4,194,304. The mask of a sample depends on none of batch position, batch size or rank. */
void learn_dropout_mask(uint8_t *mask, int64_t n, float p, uint64_t seed, uint32_t step,
                        uint32_t index, uint32_t site);
/* y (B, n) = x * mask / (1 - p); mask (B, n) receives the masks; index (B) the sample indices.
 * p = 0 copies x and sets every mask byte to 1. y may alias x. */
void learn_dropout_forward(float *y, uint8_t *mask, const float *x, const int64_t *index, int64_t B,
                           int64_t n, float p, uint64_t seed, uint32_t step, uint32_t site);
/* dx (B, n) += dy * mask / (1 - p). */
void learn_dropout_backward(float *dx, const float *dy, const uint8_t *mask, int64_t B, int64_t n,
                            float p);

/* ---------------------------------------------------------------------------------------- */
/* Optimizers over one flat parameter array (docs/conventions.md 6)                          */

/* A parameter group: elements [offset, offset + count) of the flat array, trained with
 * lr * lr_scale and its own weight decay (torch param groups). Groups must not overlap;
 * elements in no group are left untouched (frozen). */
typedef struct learn_param_group {
  int64_t offset, count;
  double lr_scale;
  double weight_decay;
} learn_param_group;

typedef struct learn_sgd_cfg {
  double momentum;  /* 0.9 in SAFE */
  double dampening; /* 0 in SAFE; torch requires 0 with nesterov */
  int nesterov;
} learn_sgd_cfg;

/* torch.optim.SGD 1.13 (_single_tensor_sgd) for one step: d_p = g + wd * p; with momentum,
 * buf = d_p on the first step (step == 0, the number of steps taken before this one), else
 * buf = momentum * buf + (1 - dampening) * d_p; nesterov: d_p += momentum * buf, else d_p = buf;
 * p -= lr * d_p. buf (same layout as param) is untouched when momentum == 0 and may be NULL. */
void learn_sgd_step(float *param, float *buf, const float *grad, int64_t step, double lr,
                    const learn_sgd_cfg *cfg, const learn_param_group *groups, int64_t ngroups);

typedef struct learn_adam_cfg {
  double beta1, beta2, eps; /* torch defaults 0.9, 0.999, 1e-8 */
  int decoupled;            /* 0: Adam (L2 added to the gradient); 1: AdamW */
} learn_adam_cfg;

/* torch.optim.Adam / AdamW 1.13 (_single_tensor_adam[w], amsgrad off) for one step. step is the
 * 1-based count INCLUDING this step (torch's state['step'] after its increment). m and v have the
 * layout of param and start at zero. Adam: g += wd * p; AdamW: p *= 1 - lr * wd first. Then
 * m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2, denom = sqrt(v) / sqrt(1 - b2^step) + eps,
 * p -= lr / (1 - b1^step) * m / denom. */
void learn_adam_step(float *param, float *m, float *v, const float *grad, int64_t step, double lr,
                     const learn_adam_cfg *cfg, const learn_param_group *groups, int64_t ngroups);

/* ---------------------------------------------------------------------------------------- */
/* Learning-rate schedules, stepped once per epoch: the lr used during epoch `epoch` (0-based)  */

typedef enum { LEARN_LR_CONSTANT = 0, LEARN_LR_COSINE } learn_lr_kind;

typedef struct learn_lr_schedule {
  learn_lr_kind kind;
  double base;    /* the optimizer's initial lr */
  double eta_min; /* cosine floor (SAFE: min_lr = 0) */
  int64_t T_max;  /* cosine half-period in epochs (SAFE: tuned_epoch = 20, whatever the number
                     of epochs actually run) */
} learn_lr_schedule;

/* CosineAnnealingLR closed form eta_min + (base - eta_min) (1 + cos(pi epoch / T_max)) / 2,
 * which equals torch 1.13's recursive form to ~1e-18 at every epoch, past T_max included
 * (tests/learn checks both against torch). */
double learn_lr_cosine(double base, double eta_min, int64_t T_max, int64_t epoch);
/* torch 1.13's recursive CosineAnnealingLR.get_lr replayed from epoch 0 with the same double
 * operations, i.e. bit-identical to the value torch stores in param_groups[i]['lr']. */
double learn_lr_cosine_torch(double base, double eta_min, int64_t T_max, int64_t epoch);
/* The lr of `epoch` under schedule s (cosine: the closed form). */
double learn_lr_at(const learn_lr_schedule *s, int64_t epoch);

#endif /* SAFECL_LEARN_H */
