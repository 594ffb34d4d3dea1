/* prompt.h: the machinery the prompt-based methods share (L2P, DualPrompt, CODA-Prompt;
 * docs/methods.md f-i): the query of the frozen model, the eps-on-squared-norm normalisation and
 * cosine similarity of queries to keys, per-sample top-k and the batch vote, PILOT's DualPrompt
 * prefix reshape as an index map, a linear head over all classes trained on a column range, one
 * flat trainable array with Adam, and the per-image prompt inputs of the trainer.
 *
 * Conventions:
 *   - One flat array per method: [head W (C, D) | head b (C) | method tensors], each tensor
 *     starting on a 16-float boundary, with the gradient and Adam's two moments in arrays of the
 *     same layout (docs/conventions.md 6). Checkpoints are those arrays and Adam's step.
 *   - Data parallelism (method.h): each rank computes the query, selection and prompted forward
 *     of its own rows; the features of the whole global batch are gathered, the CE and the head
 *     gradient are computed from the whole batch on every rank (the same everywhere, no
 *     communication); the gradients of the method tensors come from this rank's rows and are
 *     summed over the group (learn_prompt_sync). Batch-wide counts (the vote) and sums (the pull
 *     term) are reduced over the group by the caller.
 *   - Backward functions accumulate (+=), as learn.h's. */
#ifndef SAFECL_PROMPT_H
#define SAFECL_PROMPT_H

#include <stdint.h>

#include "safecl/core.h"
#include "safecl/method.h"
#include "safecl/pet.h"

/* The eps of the prompt code's normalisation, on the SQUARED norm (docs/methods.md g.2). */
#define LEARN_PROMPT_NORM_EPS 1e-12

/* ---------------------------------------------------------------------------------------- */
/* The flat trainable array                                                                  */

#define LEARN_PROMPT_MAX_TENSORS 16

typedef struct learn_prompt_params {
  int64_t C, D;                /* classes of the benchmark (head rows), width */
  int64_t head_w, head_b;      /* offsets of W (C, D) and b (C) */
  int64_t method_offset;       /* first float after the head: the method tensors start here */
  int64_t count;               /* floats in each array */
  float *param, *grad, *m, *v; /* owned, 64-byte aligned, count floats each */
  int64_t adam_step;           /* Adam steps taken since the last reset (torch's state['step']) */
} learn_prompt_params;

/* Lays out the head and n method tensors of numel[i] floats, offset[i] receiving where each
 * starts, and allocates the four arrays (zero). n <= LEARN_PROMPT_MAX_TENSORS. */
SCL_NODISCARD scl_err learn_prompt_params_create(learn_prompt_params *p, int64_t C, int64_t D,
                                                 int n, const int64_t *numel, int64_t *offset);
void learn_prompt_params_free(learn_prompt_params *p);

typedef enum {
  LEARN_PROMPT_HEAD_TIMM = 0, /* timm's init_weights_vit_timm: W ~ N(0, 0.02^2) (truncated at
                                 +-2, which never binds at this std), b = 0 (L2P, DualPrompt) */
  LEARN_PROMPT_HEAD_TORCH     /* nn.Linear's default: W, b ~ U(-1/sqrt(D), 1/sqrt(D)) (CODA) */
} learn_prompt_head_init;

/* Initialises every head row: row k from the counter stream (seed, SCL_STREAM_INIT, tag, k)
 * (D weights, then the bias for the torch init), so a class's row does not depend on C. */
void learn_prompt_head_init_rows(learn_prompt_params *p, learn_prompt_head_init kind, uint64_t seed,
                                 uint32_t tag);
/* x (rows, cols) ~ U(lo, hi), row r from the stream (seed, SCL_STREAM_INIT, tag, r). */
void learn_prompt_uniform(float *x, int64_t rows, int64_t cols, float lo, float hi, uint64_t seed,
                          uint32_t tag);

void learn_prompt_zero_grad(learn_prompt_params *p);
/* A fresh Adam (docs/methods.md f.8): moments and step zero. */
void learn_prompt_adam_reset(learn_prompt_params *p);
/* One torch.optim.Adam step (betas 0.9, 0.999, eps 1e-8, L2 weight decay wd) over the whole
 * array; adam_step is incremented first. A tensor whose gradient has been zero since the reset
 * does not move (its update is 0 / eps). */
void learn_prompt_adam_step(learn_prompt_params *p, double lr, double wd);
/* grad[method_offset, count) summed over the group (the head's gradient is already the same on
 * every rank). Collective over comm. */
SCL_NODISCARD scl_err learn_prompt_sync(const dist_comm *comm, learn_prompt_params *p);
/* The checkpoint entries of the arrays: "prompt_params", "prompt_adam_m", "prompt_adam_v" (F32,
 * count) and "prompt_adam_step" (I64, 1). Returns 4. */
int learn_prompt_state(learn_prompt_params *p, learn_state_entry *out);

/* ---------------------------------------------------------------------------------------- */
/* Head                                                                                      */

/* logits (B, k_hi - k_lo) = feat (B, D) W[k_lo:k_hi]^T + b[k_lo:k_hi]. */
void learn_prompt_logits(float *logits, const learn_prompt_params *p, const float *feat, int64_t B,
                         int64_t k_lo, int64_t k_hi);
/* Floats of scratch learn_prompt_ce needs for B rows and K = k_seen - k_old classes. */
static inline int64_t learn_prompt_ce_scratch(int64_t B, int64_t K) { return 2 * B * K; }
/* Cross-entropy of the classes [k_old, k_seen) only (docs/methods.md f.7): mean over B rows of
 * logsumexp(logits[k_old:k_seen]) - logit[y], labels y in [k_old, k_seen) (learn_ce_loss_range).
 * p->grad += scale x the head gradient (rows [k_old, k_seen) and their biases, nothing else);
 * dfeat (B, D) += scale x dCE/dfeat, or NULL. scale is the rows' share of a larger batch mean
 * (1 for a whole batch). Returns the CE (NAN if a label is outside the range). */
double learn_prompt_ce(learn_prompt_params *p, float *dfeat, float *scratch, const float *feat,
                       const int64_t *labels, int64_t B, int64_t k_old, int64_t k_seen,
                       double scale);
/* The data-parallel head part of a step: feat (B_global, D), whose rows [b->offset, b->offset
 * + b->B) this rank has filled, is gathered; the CE over the whole batch and the head gradient
 * (p->grad += ) are computed on every rank; dfeat (B_global, D) is overwritten with dCE/dfeat.
 * Collective over comm. */
SCL_NODISCARD scl_err learn_prompt_head_step(const dist_comm *comm, learn_prompt_params *p,
                                             const learn_batch *b, float *feat, float *dfeat,
                                             float *scratch, int64_t k_old, int64_t k_seen,
                                             double *ce);
/* pred[i] = argmax of row i of logits (n rows of width dim) over columns [0, K), ties to the
 * lower class. */
void learn_prompt_argmax(int32_t *pred, const float *logits, int64_t n, int64_t dim, int64_t K);

/* ---------------------------------------------------------------------------------------- */
/* The learn_method_ops entries the prompt methods share                                     */

/* Nothing to do at an epoch's end (the schedules are functions of the epoch index) or at a
 * session's end, and nothing to fit: the head is trained and the networks output logits. */
SCL_NODISCARD scl_err learn_prompt_no_epoch_end(learn_method *m, const learn_session *s,
                                                int64_t epoch);
SCL_NODISCARD scl_err learn_prompt_no_train_end(learn_method *m, const learn_session *s);
SCL_NODISCARD scl_err learn_prompt_no_fit(learn_method *m, const learn_session *s,
                                          const float *const *features, const int32_t *labels,
                                          const int64_t *pos, int64_t n);
/* The networks of a prompt method into out: "prompted", the honest logits (C wide) from
 * forward(ctx); with forward_diag, also "pilot_diag" from forward_diag(ctx), called on the
 * label-sorted test list in batches of exactly test_batch images (docs/methods.md f.6). Both
 * are predict-only. Returns the count. */
int learn_prompt_networks(learn_network *out, void *ctx, int64_t C,
                          scl_err (*forward)(void *, const float *, int64_t, float *),
                          scl_err (*forward_diag)(void *, const float *, int64_t, float *),
                          int64_t test_batch);
/* pred (nets x n): for every network k, the argmax of its logits features[k] (n x C) over the
 * seen classes [0, K). */
void learn_prompt_predict(int32_t *pred, const float *const *features, int nets, int64_t n,
                          int64_t C, int64_t K);

/* ---------------------------------------------------------------------------------------- */
/* Query, normalisation, similarity, selection                                               */

/* A method's test-time logits of B images; diag selects its diagnostic variant (pilot_diag). */
typedef scl_err (*learn_prompt_logits_fn)(void *method, const float *images, int64_t B, int diag,
                                          float *out);
/* Runs fn with backbone->per_image (vit.h) set, restored after: the queries of a test-time
 * network forward are then computed image by image, so an image's query, and so its selection,
 * is bit-identical whatever batch the image comes in (OpenBLAS's result for a row depends on the
 * other rows of a GEMM); training keeps the batched GEMMs. */
SCL_NODISCARD scl_err learn_prompt_test_forward(vit_model *backbone, learn_prompt_logits_fn fn,
                                                void *method, const float *images, int64_t B,
                                                int diag, float *out);

/* q (B, D) = class token of the frozen, unprompted model (docs/methods.md f.4), run in chunks of
 * the backbone's max_batch; keeps no activations. */
SCL_NODISCARD scl_err learn_prompt_query(vit_model *backbone, const float *images, int64_t B,
                                         float *q);
/* xn = x / sqrt(max(||x||^2, 1e-12)) per row (docs/methods.md g.2); sq (rows) receives
 * ||x||^2 (double accumulation) for the backward. xn may not alias x. */
void learn_prompt_l2norm_forward(float *xn, float *sq, const float *x, int64_t rows, int64_t D);
/* dx += the gradient through that normalisation: (g - xn (xn . g)) / ||x|| per row, or
 * g / sqrt(1e-12) where the clamp is active (autograd through torch.maximum). */
void learn_prompt_l2norm_backward(float *dx, const float *dxn, const float *xn, const float *sq,
                                  int64_t rows, int64_t D);
/* s (B, M) = qn (B, D) kn (M, D)^T, accumulated in double. */
void learn_prompt_similarity(float *s, const float *qn, const float *kn, int64_t B, int64_t M,
                             int64_t D);
/* idx (B, k): per row of s (B, M) the k largest, in descending order, ties to the lower id. */
void learn_prompt_topk(int64_t *idx, const float *s, int64_t B, int64_t M, int64_t k);
/* counts (M) += occurrences of every id among the n ids of idx. */
void learn_prompt_count(int64_t *counts, const int64_t *idx, int64_t n, int64_t M);
/* sel (k): the k ids of highest count, ties to the lower id (PILOT's batch-wise selection,
 * docs/methods.md g.2). */
void learn_prompt_vote(int64_t *sel, const int64_t *counts, int64_t M, int64_t k);
/* The batch vote over a group: this rank's B rows of idx (B, k) are counted, the counts summed
 * over the group (so the vote is that of the global batch), and every row of idx is overwritten
 * with the vote. counts: M int64 of scratch. Collective over comm. */
SCL_NODISCARD scl_err learn_prompt_vote_group(const dist_comm *comm, int64_t *idx, int64_t B,
                                              int64_t k, int64_t M, int64_t *counts);

/* PILOT's DualPrompt prefix reshape (docs/methods.md f.6): the selected prompts of a call of B
 * images, raw (2 [key, value], B, ...), are reshaped (not permuted) to (B, 2, ...), so image b's
 * prefix of role r (0 key, 1 value) is raw[*src_role][*src_image] with
 * src_role * B + src_image = 2 b + r. */
void learn_prompt_pilot_reshape(int64_t B, int64_t b, int r, int64_t *src_image, int *src_role);

/* ---------------------------------------------------------------------------------------- */
/* Per-image prompt inputs of the trainer (pet.h vit_prompt_io)                              */

typedef struct learn_prompt_io {
  int64_t B, D, tokens, prefix_len;
  uint32_t layers;
  float *tok, *dtok;                              /* (B, tokens, D) each, or NULL when tokens = 0 */
  float *pk[PET_MAX_LAYERS], *pv[PET_MAX_LAYERS]; /* (B, prefix_len, D) at listed layers */
  float *dpk[PET_MAX_LAYERS], *dpv[PET_MAX_LAYERS]; /* likewise */
} learn_prompt_io;

/* Buffers for up to B images: `tokens` input tokens per image (PET_INPUT_PROMPT) and prefixes of
 * prefix_len at the blocks of the bit set `layers` (PET_SAMPLE_PREFIX), values and gradients. */
SCL_NODISCARD scl_err learn_prompt_io_create(learn_prompt_io *io, int64_t B, int64_t D,
                                             int64_t tokens, int64_t prefix_len, uint32_t layers);
void learn_prompt_io_free(learn_prompt_io *io);
/* The trainer's view of images [row, row + n) (n is implicit: the call's B); with_grad 0 leaves
 * the gradient pointers NULL. */
vit_prompt_io learn_prompt_io_view(const learn_prompt_io *io, int64_t row, int with_grad);
/* Zeroes the gradients of the first B images. */
void learn_prompt_io_zero_grad(learn_prompt_io *io, int64_t B);

#endif /* SAFECL_PROMPT_H */
