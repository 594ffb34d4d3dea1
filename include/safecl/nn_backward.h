/* nn_backward.h: the backward kernels of the layers in nn.h, and the PET operations (AdaptFormer
 * adapter, SSF scale-and-shift, VPT prompt tokens, prefix keys/values) with forward and backward.
 *
 * Conventions are nn.h's, plus, for every backward here:
 *   - nn_x_backward(din, dweights..., dout, in, weights..., cache..., dims) ACCUMULATES (+=) into
 *     every gradient it is given, so several paths into one tensor just add up; a NULL gradient
 *     pointer means frozen and is skipped (the ViT backbone passes NULL for its weights).
 *   - A `_inplace` variant exists where a chain-rule step is element-wise and its caller owns
 *     the gradient buffer: dy is overwritten by dx (the step's local derivative times dy).
 *   - Gradients of weights shared by all rows (biases, LayerNorm affine, SSF gamma/beta) are
 *     column sums over rows in float; tests compare them in double against finite differences.
 *   - Kernels never allocate: scratch is passed in, with its size stated. */
#ifndef SAFECL_NN_BACKWARD_H
#define SAFECL_NN_BACKWARD_H

#include <stdint.h>

/* ---------------------------------------------------------------------------------------- */
/* Linear: y (rows, dout) = x (rows, din) W^T + b, W (dout, din)                              */

/* dx += dy W (one GEMM); dw += dy^T x and db += colsum(dy) when non-NULL. x may be NULL when dw
 * is. */
void nn_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                        const float *w, int64_t rows, int64_t din, int64_t dout);
void nn_linear_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x,
                            const float *w, int64_t rows, int64_t din, int64_t dout);

/* ---------------------------------------------------------------------------------------- */
/* LayerNorm over D from the statistics nn_layernorm_forward stored                          */

/* With xhat = (x - mean) * rstd and g = dy * gamma:
 * dx += rstd * (g - mean(g) - xhat * mean(g * xhat)); dgamma += colsum(dy * xhat);
 * dbeta += colsum(dy). dx, dgamma, dbeta may each be NULL. */
void nn_layernorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                           const float *gamma, const float *mean, const float *rstd, int64_t rows,
                           int64_t D);
void nn_layernorm_backward_ref(float *dx, float *dgamma, float *dbeta, const float *dy,
                               const float *x, const float *gamma, const float *mean,
                               const float *rstd, int64_t rows, int64_t D);
/* y = (x - mean) * rstd * gamma + beta: the LayerNorm output recomputed from the stored
 * statistics instead of being kept. */
void nn_layernorm_recompute(float *y, const float *x, const float *mean, const float *rstd,
                            const float *gamma, const float *beta, int64_t rows, int64_t D);

/* ---------------------------------------------------------------------------------------- */
/* Element-wise and row-wise                                                                 */

/* Row-wise softmax y = softmax(x): dx += y * (dy - sum_j dy_j y_j). */
void nn_softmax_backward(float *dx, const float *dy, const float *y, int64_t rows, int64_t cols);
void nn_softmax_backward_ref(float *dx, const float *dy, const float *y, int64_t rows,
                             int64_t cols);

/* Exact GELU: dx += dy * (Phi(x) + x phi(x)); the _inplace form sets dy <- dy * GELU'(x). */
void nn_gelu_backward(float *dx, const float *dy, const float *x, int64_t n);
void nn_gelu_backward_inplace(float *dy, const float *x, int64_t n);
void nn_gelu_backward_ref(float *dx, const float *dy, const float *x, int64_t n);

/* y = a + b: da += dy, db += dy (either may be NULL). */
void nn_residual_backward(float *da, float *db, const float *dy, int64_t n);
void nn_residual_backward_ref(float *da, float *db, const float *dy, int64_t n);

/* ---------------------------------------------------------------------------------------- */
/* AdaptFormer adapter (METHOD.md b.2): a = s * (Dropout_p(ReLU(x Wd^T + bd)) Wu^T + bu)       */

/* y (rows, D) += a, for input x (rows, D); Wd (r, D), bd (r), Wu (D, r), bu (D). pre (rows, r)
 * receives x Wd^T + bd (kept for backward); hid (rows, r) receives the dropped hidden units.
 * mask (rows, r) is 1 for a kept unit, 0 for a dropped one, kept units scaled by 1/(1 - p) in
 * float as torch does; mask NULL = no dropout (evaluation). y must not alias x. */
void nn_adapter_forward(float *y, float *pre, float *hid, const float *x, const uint8_t *mask,
                        const float *wd, const float *bd, const float *wu, const float *bu,
                        float scale, float p, int64_t rows, int64_t D, int64_t r);
void nn_adapter_forward_ref(float *y, float *pre, float *hid, const float *x, const uint8_t *mask,
                            const float *wd, const float *bd, const float *wu, const float *bu,
                            float scale, float p, int64_t rows, int64_t D, int64_t r);
/* dx += da/dx^T dy, dWd, dbd, dWu, dbu += their gradients (any may be NULL). dx may alias dy:
 * the adapter is a residual branch, so its caller passes the residual stream's gradient as both
 * (dy is read completely before dx is written; not so in the _ref, whose dx must not alias dy).
 * scratch: 2 * rows * r floats. */
void nn_adapter_backward(float *dx, float *dwd, float *dbd, float *dwu, float *dbu, float *scratch,
                         const float *dy, const float *x, const float *pre, const uint8_t *mask,
                         const float *wd, const float *wu, float scale, float p, int64_t rows,
                         int64_t D, int64_t r);
void nn_adapter_backward_ref(float *dx, float *dwd, float *dbd, float *dwu, float *dbu,
                             const float *dy, const float *x, const float *pre, const uint8_t *mask,
                             const float *wd, const float *wu, float scale, float p, int64_t rows,
                             int64_t D, int64_t r);

/* ---------------------------------------------------------------------------------------- */
/* SSF (METHOD.md b.3): y = x * gamma + beta over the last dimension n                        */

/* y may alias x. */
void nn_ssf_forward(float *y, const float *x, const float *gamma, const float *beta, int64_t rows,
                    int64_t n);
void nn_ssf_forward_ref(float *y, const float *x, const float *gamma, const float *beta,
                        int64_t rows, int64_t n);
/* y += x * gamma + beta: an SSF whose output joins a residual stream. */
void nn_ssf_add_forward(float *y, const float *x, const float *gamma, const float *beta,
                        int64_t rows, int64_t n);
/* dx += dy * gamma; dgamma += colsum(dy * x); dbeta += colsum(dy) (each may be NULL). */
void nn_ssf_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                     const float *gamma, int64_t rows, int64_t n);
void nn_ssf_backward_inplace(float *dy, float *dgamma, float *dbeta, const float *x,
                             const float *gamma, int64_t rows, int64_t n);
void nn_ssf_backward_ref(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                         const float *gamma, int64_t rows, int64_t n);

/* ---------------------------------------------------------------------------------------- */
/* VPT (METHOD.md b.4): T prompt tokens appended after the N tokens of each image              */

/* x (B, N + T, D): rows [N, N + T) of every image <- prompts (T, D). */
void nn_vpt_forward(float *x, const float *prompts, int64_t B, int64_t N, int64_t T, int64_t D);
/* dprompts (T, D) += sum over images of rows [N, N + T) of dx (B, N + T, D). */
void nn_vpt_backward(float *dprompts, const float *dx, int64_t B, int64_t N, int64_t T, int64_t D);
void nn_vpt_backward_ref(float *dprompts, const float *dx, int64_t B, int64_t N, int64_t T,
                         int64_t D);

#endif /* SAFECL_NN_BACKWARD_H */
