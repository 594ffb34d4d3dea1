/* nn.h: stateless neural-network kernels (forward now; backward follows the same shape).
 *
 * Conventions, stated once for every kernel here:
 *   - Row-major fp32. Shape letters: B batch, N tokens, D width, H heads, Dh = D/H head dim,
 *     F MLP width, C image channels, P patch side, Np = (img/P)^2 patches. "rows" means any
 *     flattening of leading dimensions, usually B*N tokens.
 *   - A linear layer's weight W is stored (out, in), as PyTorch stores it, and computes
 *     y = x W^T + b.
 *   - A layer is nn_x_forward(out, cache..., in, weights..., dims): outputs first, inputs const.
 *     The matching nn_x_backward(din, dweights..., dout, in, weights..., cache..., dims) will
 *     accumulate (+=) and skip NULL gradients (frozen). A cache pointer may be NULL when no
 *     backward will follow.
 *   - Kernels never allocate, do no I/O, take no locks and return void; their callers have
 *     validated the shapes. Scratch memory is passed in.
 *   - Beside every fast kernel is a naive `_ref` with plain loops and double accumulation that
 *     the tests in tests/nn compare against. Only the fast kernels call BLAS.
 *   - BLAS-backed kernels run with whatever OpenBLAS thread count is in force; the ViT driver
 *     (src/model/vit_forward.c) calls them single-threaded from its own workers.
 *   - Element counts are int64_t. The BLAS interface takes int, so a single GEMM dimension (not
 *     a product of them) must stay below 2^31; every ViT dimension does by far. */
#ifndef SAFECL_NN_H
#define SAFECL_NN_H

#include <stdint.h>

/* ---------------------------------------------------------------------------------------- */
/* Linear                                                                                    */

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

/* ---------------------------------------------------------------------------------------- */
/* LayerNorm over the last dimension D                                                       */

/* y = (x - mean) / sqrt(var + eps) * gamma + beta per row, biased variance as PyTorch.
 * mean, rstd (rows) receive the statistics for backward, or are NULL. y may alias x. */
void nn_layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *gamma,
                          const float *beta, int64_t rows, int64_t D, float eps);
void nn_layernorm_forward_ref(float *y, float *mean, float *rstd, const float *x,
                              const float *gamma, const float *beta, int64_t rows, int64_t D,
                              float eps);

/* ---------------------------------------------------------------------------------------- */
/* Element-wise and row-wise                                                                 */

/* Row-wise softmax of x (rows, cols); y may alias x. */
void nn_softmax_forward(float *y, const float *x, int64_t rows, int64_t cols);
void nn_softmax_forward_ref(float *y, const float *x, int64_t rows, int64_t cols);

/* y = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), the exact (erf) GELU, not the tanh one; n
 * elements, y may alias x. The fast version evaluates erf with a float rational approximation
 * (absolute error < 5e-7, GELU absolute error < 1.5e-6) that the compiler vectorises. */
void nn_gelu_forward(float *y, const float *x, int64_t n);
void nn_gelu_forward_ref(float *y, const float *x, int64_t n);

/* y (rows, dout) = GELU(x W^T + b), the first MLP layer with its activation; its reference is
 * nn_linear_forward_ref followed by nn_gelu_forward_ref. */
void nn_linear_gelu_forward(float *y, const float *x, const float *w, const float *b, int64_t rows,
                            int64_t din, int64_t dout);

/* y = a + b over n elements; y may alias a or b. */
void nn_residual_forward(float *y, const float *a, const float *b, int64_t n);
void nn_residual_forward_ref(float *y, const float *a, const float *b, int64_t n);

/* ---------------------------------------------------------------------------------------- */
/* Multi-head self-attention core, with optional prefix keys and values                      */

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
/* Whole batch (every token a query): dqkv (B, N, 3D), dout (B, N, D). scratch as above. */
void nn_attention_backward(float *dqkv, float *dpk, float *dpv, float *scratch, const float *dout,
                           const float *qkv, const float *pk, const float *pv, int64_t L, int64_t B,
                           int64_t N, int64_t H, int64_t Dh);
void nn_attention_backward_ref(float *dqkv, float *dpk, float *dpv, const float *dout,
                               const float *qkv, const float *pk, const float *pv, int64_t L,
                               int64_t B, int64_t N, int64_t H, int64_t Dh);

/* ---------------------------------------------------------------------------------------- */
/* Patch embedding: Conv2d(C, D, kernel P, stride P) as a GEMM over unfolded patches          */

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

#endif /* SAFECL_NN_H */
