/* nn.h: stateless neural-network kernels, forward and backward: the layers of a ViT and the PET
 * operations (AdaptFormer adapter, SSF scale-and-shift, VPT prompt tokens, prefix keys/values).
 * One section per layer holds its forward, its backward and their `_ref` twins.
 *
 * Conventions, stated once for every kernel here:
 *   - Row-major fp32. Shape letters: B batch, N tokens, D width, H heads, Dh = D/H head dim,
 *     F MLP width, C image channels, P patch side, Np = (img/P)^2 patches. "rows" means any
 *     flattening of leading dimensions, usually B*N tokens.
 *   - A linear layer's weight W is stored (out, in), as PyTorch stores it, and computes
 *     y = x W^T + b.
 *   - A layer is nn_x_forward(out, cache..., in, weights..., dims): outputs first, inputs const.
 *     A cache pointer may be NULL when no backward follows.
 *   - Its backward nn_x_backward(din, dweights..., dout, in, weights..., cache..., dims)
 *     ACCUMULATES (+=) into every gradient it is given, so several paths into one tensor just
 *     add up; a NULL gradient pointer means frozen and is skipped (the ViT backbone passes NULL
 *     for its weights). A `_inplace` variant exists where a chain-rule step is element-wise and
 *     its caller owns the gradient buffer: dy is overwritten by dx (the step's local derivative
 *     times dy).
 *   - Gradients of weights shared by all rows (biases, LayerNorm affine, SSF gamma/beta) are
 *     column sums over rows in float; tests compare them in double against finite differences.
 *   - Kernels never allocate, do no I/O, take no locks and return void; their callers have
 *     validated the shapes. Scratch memory is passed in, with its size stated.
 *   - Beside every fast kernel is a naive `_ref` with plain loops and double accumulation that
 *     the tests in tests/nn compare against; the `_ref` kernels are for tests only. Only the
 *     fast kernels call BLAS.
 *   - BLAS-backed kernels run with whatever OpenBLAS thread count is in force; the ViT drivers
 *     (src/model) call them single-threaded from their own workers.
 *   - Element counts are int64_t. The BLAS interface takes int, so a single GEMM dimension (not
 *     a product of them) must stay below 2^31; every ViT dimension does by far. */
#ifndef SAFECL_NN_H
#define SAFECL_NN_H

#include <stdint.h>

/* ---------------------------------------------------------------------------------------- */
/* Linear                                                                                   */

/* y (rows, dout) = x (rows, din) W^T + b; W (dout, din); b (dout) or NULL. */
void nn_linear_forward(float *y, const float *x, const float *w, const float *b, int64_t rows,
                       int64_t din, int64_t dout);
void nn_linear_forward_ref(float *y, const float *x, const float *w, const float *b, int64_t rows,
                           int64_t din, int64_t dout);

/* y (rows, dout) += x W^T + b: a linear layer whose output is added to a residual stream in the
 * same pass (the attention projection and fc2 of a ViT block). */
void nn_linear_add_forward(float *y, const float *x, const float *w, const float *b, int64_t rows,
                           int64_t din, int64_t dout);
void nn_linear_add_forward_ref(float *y, const float *x, const float *w, const float *b,
                               int64_t rows, int64_t din, int64_t dout);

/* dx += dy W (one GEMM); dw += dy^T x and db += colsum(dy) when non-NULL. x may be NULL when dw
 * is. */
void nn_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                        const float *w, int64_t rows, int64_t din, int64_t dout);
void nn_linear_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x,
                            const float *w, int64_t rows, int64_t din, int64_t dout);

/* ---------------------------------------------------------------------------------------- */
/* LayerNorm over the last dimension D                                                      */

/* y = (x - mean) / sqrt(var + eps) * gamma + beta per row, biased variance as PyTorch.
 * mean, rstd (rows) receive the statistics for backward and recompute, or are NULL. y may
 * alias x. The stored mean is the row's mean rounded to float (hi); the kernels below rebuild
 * the remainder lo = mean(x - hi) from x, so all three normalise with the same
 * xhat = ((x - hi) - lo) * rstd and agree bit for bit even on rows whose mean is large against
 * their spread. */
void nn_layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                          const float *beta, int64_t rows, int64_t D, float eps);
void nn_layernorm_forward_ref(float *y, float *mean, float *rstd, const float *x,
                              const float *gamma, const float *beta, int64_t rows, int64_t D,
                              float eps);
/* y = xhat * gamma + beta from x and the stored statistics: the forward's output, bit for bit,
 * recomputed instead of being kept. */
void nn_layernorm_recompute(float *y, const float *x, const float *mean, const float *rstd,
                            const float *gamma, const float *beta, int64_t rows, int64_t D);

/* With xhat as above and g = dy * gamma:
 * dx += rstd * (g - mean(g) - xhat * mean(g * xhat)); dgamma += colsum(dy * xhat);
 * dbeta += colsum(dy). dx, dgamma, dbeta may each be NULL. */
void nn_layernorm_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                           const float *gamma, const float *mean, const float *rstd, int64_t rows,
                           int64_t D);
void nn_layernorm_backward_ref(float *dx, float *dgamma, float *dbeta, const float *dy,
                               const float *x, const float *gamma, const float *mean,
                               const float *rstd, int64_t rows, int64_t D);

/* ---------------------------------------------------------------------------------------- */
/* Softmax, GELU, residual add                                                              */

/* Row-wise softmax y = softmax(x) of x (rows, cols); y may alias x.
 * Backward: dx += y * (dy - sum_j dy_j y_j). */
void nn_softmax_forward(float *y, const float *x, int64_t rows, int64_t cols);
void nn_softmax_backward(float *dx, const float *dy, const float *y, int64_t rows, int64_t cols);
void nn_softmax_forward_ref(float *y, const float *x, int64_t rows, int64_t cols);
void nn_softmax_backward_ref(float *dx, const float *dy, const float *y, int64_t rows,
                             int64_t cols);

/* y = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), the exact (erf) GELU, not the tanh one; n
 * elements, y may alias x. The fast version evaluates erf with a float rational approximation
 * (absolute error < 5e-7, GELU absolute error < 1.5e-6) that the compiler vectorises.
 * Backward: dx += dy * (Phi(x) + x phi(x)); the _inplace form sets dy <- dy * GELU'(x). */
void nn_gelu_forward(float *y, const float *x, int64_t n);
void nn_gelu_backward(float *dx, const float *dy, const float *x, int64_t n);
void nn_gelu_backward_inplace(float *dy, const float *x, int64_t n);
void nn_gelu_forward_ref(float *y, const float *x, int64_t n);
void nn_gelu_backward_ref(float *dx, const float *dy, const float *x, int64_t n);

/* y (rows, dout) = GELU(x W^T + b), the first MLP layer with its activation; its reference is
 * nn_linear_forward_ref followed by nn_gelu_forward_ref. */
void nn_linear_gelu_forward(float *y, const float *x, const float *w, const float *b, int64_t rows,
                            int64_t din, int64_t dout);

/* y = a + b over n elements; y may alias a or b. Backward: da += dy, db += dy (either may be
 * NULL). */
void nn_residual_forward(float *y, const float *a, const float *b, int64_t n);
void nn_residual_backward(float *da, float *db, const float *dy, int64_t n);
void nn_residual_forward_ref(float *y, const float *a, const float *b, int64_t n);
void nn_residual_backward_ref(float *da, float *db, const float *dy, int64_t n);

/* ---------------------------------------------------------------------------------------- */
/* Multi-head self-attention core, with optional prefix keys and values                     */

/* Input qkv (N, 3*D) per image is the output of the fused qkv linear laid out as timm's reshape
 * (N, 3, H, Dh): q of head h at columns [h*Dh, (h+1)*Dh), k at D + that, v at 2*D + that.
 * Output out (N, D) per image holds head h's context at columns [h*Dh, (h+1)*Dh), i.e. timm's
 * (attn @ v).transpose(1, 2).reshape(B, N, D); the output projection is a separate linear.
 * A prefix of L rows (pk, pv (L, D), head h at columns h*Dh) is prepended to the keys and the
 * values (queries unchanged), so a head attends to Nk = L + N positions; L = 0 with
 * pk = pv = NULL is plain self-attention. probs receives (nq, Nk) =
 * softmax(q [pk; k]^T / sqrt(Dh)); it is the working memory, so it must be given.
 *
 * One (image, head), the unit the threaded drivers hand out: qkv points at the image's (N, 3*D)
 * block, out at its (nq, D) block, probs at an (nq, L + N) buffer. Only the first nq <= N tokens
 * are queries (all N are keys and values): nq = N is full self-attention, nq = 1 computes the
 * class token's row alone. Single-threaded work whose scores stay in cache between the
 * products. */
void nn_attention_head_forward(float *out, float *probs, const float *qkv, const float *pk,
                               const float *pv, int64_t L, int64_t nq, int64_t N, int64_t H,
                               int64_t Dh, int64_t h);
/* Whole batch, every token a query: qkv (B, N, 3*D), out (B, N, D), probs (B, H, N, L + N). */
void nn_attention_forward(float *out, float *probs, const float *qkv, const float *pk,
                          const float *pv, int64_t L, int64_t B, int64_t N, int64_t H, int64_t Dh);
void nn_attention_forward_ref(float *out, float *probs, const float *qkv, const float *pk,
                              const float *pv, int64_t L, int64_t B, int64_t N, int64_t H,
                              int64_t Dh);

/* LAE's prefix options (docs/methods.md l.2). pos: the prefix columns follow the first pos token
 * keys (0: the prefix first; 1: after the class token, key order [k_0, prefix, k_1..]), the
 * same for the values. key_scale, value_scale multiply the prefix keys and values. compensate:
 * after the softmax, the L prefix columns of every row are divided by their sum lam (floored at
 * 1e-12), the others unchanged (the row then sums to 2 - lam). NULL = {0, 0, 1, 1}, the plain
 * prefix. */
typedef struct nn_prefix_mode {
  int64_t pos;
  int compensate;
  float key_scale, value_scale;
} nn_prefix_mode;

/* nn_attention_head_forward with a prefix mode; probs receives the compensated probabilities. */
void nn_attention_head_forward_mode(float *out, float *probs, const float *qkv, const float *pk,
                                    const float *pv, int64_t L, const nn_prefix_mode *mode,
                                    int64_t nq, int64_t N, int64_t H, int64_t Dh, int64_t h);

/* Backward of one (image, head), probabilities recomputed (not stored): with P the forward's
 * probabilities and dO = dout (nq rows, leading dimension D):
 *   dV += P^T dO, dP = dO V^T, dS = P * (dP - rowsum(dP * P)), dQ += dS K / sqrt(Dh),
 *   dK += dS^T Q / sqrt(Dh),
 * dQ, dK, dV of the tokens into dqkv (N, 3D) laid out as qkv; of the prefix into dpk, dpv
 * (L, D) (NULL: frozen). scratch: 2 * nq * (L + N) floats. */
void nn_attention_head_backward(float *dqkv, float *dpk, float *dpv, float *scratch,
                                const float *dout, const float *qkv, const float *pk,
                                const float *pv, int64_t L, int64_t nq, int64_t N, int64_t H,
                                int64_t Dh, int64_t h);
/* nn_attention_head_backward with a prefix mode, through the compensation; dks, dvs (NULL: not
 * wanted) += the gradients of the key and value scales (this head's share). Same scratch. */
void nn_attention_head_backward_mode(float *dqkv, float *dpk, float *dpv, float *dks, float *dvs,
                                     float *scratch, const float *dout, const float *qkv,
                                     const float *pk, const float *pv, int64_t L,
                                     const nn_prefix_mode *mode, int64_t nq, int64_t N, int64_t H,
                                     int64_t Dh, int64_t h);
/* Whole batch (every token a query): dqkv (B, N, 3D), dout (B, N, D). scratch as above. */
void nn_attention_backward(float *dqkv, float *dpk, float *dpv, float *scratch, const float *dout,
                           const float *qkv, const float *pk, const float *pv, int64_t L, int64_t B,
                           int64_t N, int64_t H, int64_t Dh);
void nn_attention_backward_ref(float *dqkv, float *dpk, float *dpv, const float *dout,
                               const float *qkv, const float *pk, const float *pv, int64_t L,
                               int64_t B, int64_t N, int64_t H, int64_t Dh);

/* ---------------------------------------------------------------------------------------- */
/* Patch embedding: Conv2d(C, D, kernel P, stride P) as a GEMM over unfolded patches        */

/* Geometry of a patch embedding; images are (C, img_h, img_w), NCHW as in PyTorch. */
typedef struct nn_patch_dims {
  int64_t C, img_h, img_w; /* input channels and image size */
  int64_t P;               /* patch side = kernel = stride */
  int64_t D;               /* output width */
} nn_patch_dims;

/* Np = (img_h/P) * (img_w/P) patches in row-major order, the order of timm's flatten(2).
 * Columns of an unfolded patch are ordered (c, ky, kx), matching the timm weight (D, C, P, P)
 * read as (D, C*P*P). For each of B images: out[b*out_stride + p*D + d] = patch p . W[d] + b[d].
 * out_stride (>= Np*D) lets the caller leave room for a class token. cols is scratch of
 * Np*C*P*P floats. */
void nn_patch_embed_forward(float *out, float *cols, const float *img, const float *w,
                            const float *b, int64_t B, nn_patch_dims dims, int64_t out_stride);
void nn_patch_embed_forward_ref(float *out, const float *img, const float *w, const float *b,
                                int64_t B, nn_patch_dims dims, int64_t out_stride);
/* Weight gradients (the image needs none): for each of B images with dy its (Np, D) output
 * gradient at dout + b * dout_stride, dw (D, C*P*P) += dy^T unfold(img) and db (D) += colsum(dy)
 * (either may be NULL). cols is scratch of Np*C*P*P floats. */
void nn_patch_embed_backward(float *dw, float *db, float *cols, const float *dout, const float *img,
                             int64_t B, nn_patch_dims dims, int64_t dout_stride);
void nn_patch_embed_backward_ref(float *dw, float *db, const float *dout, const float *img,
                                 int64_t B, nn_patch_dims dims, int64_t dout_stride);

/* ---------------------------------------------------------------------------------------- */
/* AdaptFormer adapter (docs/methods.md b.2): a = s * (Dropout_p(ReLU(x Wd^T + bd)) Wu^T + bu) */

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
/* SSF (docs/methods.md b.3): y = x * gamma + beta over the last dimension n                */

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
/* VPT (docs/methods.md b.4): T prompt tokens appended after the N tokens of each image     */

/* x (B, N + T, D): rows [N, N + T) of every image <- prompts (T, D). */
void nn_vpt_forward(float *x, const float *prompts, int64_t B, int64_t N, int64_t T, int64_t D);
/* dprompts (T, D) += sum over images of rows [N, N + T) of dx (B, N + T, D). */
void nn_vpt_backward(float *dprompts, const float *dx, int64_t B, int64_t N, int64_t T, int64_t D);
void nn_vpt_backward_ref(float *dprompts, const float *dx, int64_t B, int64_t N, int64_t T,
                         int64_t D);

#endif /* SAFECL_NN_H */
