/* patch_embed.c: the ViT stem, Conv2d(C, D, kernel P, stride P), as unfold + one GEMM per
 * image, and its weight gradient (full fine-tuning; the image needs no gradient).
 *
 * Because stride equals kernel the patches do not overlap, so the unfold is a plain gather of
 * P-float runs (no duplication) into an (Np, C*P*P) matrix whose column order (c, ky, kx) is the
 * row-major flattening of the (D, C, P, P) weight; the convolution is then a linear layer. One
 * image at a time keeps the scratch at one image's patches (600 KB for 224/16) and lets the
 * output rows land with a stride that leaves room for the class token. The backward unfolds each
 * image again and accumulates dW += dY^T cols (one GEMM per image) and db += colsum(dY). The
 * `_ref`s are the direct convolution loops in double. */
#include "safecl/nn.h"

#include <string.h>

/* cols (Np, C*P*P) <- the non-overlapping P x P patches of one (C, img_h, img_w) image. */
static void unfold(float *cols, const float *img, nn_patch_dims d) {
  const int64_t gh = d.img_h / d.P, gw = d.img_w / d.P, K = d.C * d.P * d.P;
  for (int64_t py = 0; py < gh; py++)
    for (int64_t px = 0; px < gw; px++) {
      float *row = cols + (py * gw + px) * K;
      for (int64_t c = 0; c < d.C; c++)
        for (int64_t ky = 0; ky < d.P; ky++) {
          const float *src = img + (c * d.img_h + py * d.P + ky) * d.img_w + px * d.P;
          memcpy(row + (c * d.P + ky) * d.P, src, (size_t)d.P * sizeof(float));
        }
    }
}

void nn_patch_embed_forward(float *out, float *cols, const float *img, const float *w,
                            const float *b, int64_t B, nn_patch_dims dims, int64_t out_stride) {
  const int64_t Np = (dims.img_h / dims.P) * (dims.img_w / dims.P);
  const int64_t K = dims.C * dims.P * dims.P, img_size = dims.C * dims.img_h * dims.img_w;
  for (int64_t i = 0; i < B; i++) {
    unfold(cols, img + i * img_size, dims);
    nn_linear_forward(out + i * out_stride, cols, w, b, Np, K, dims.D);
  }
}

void nn_patch_embed_backward(float *dw, float *db, float *cols, const float *dout, const float *img,
                             int64_t B, nn_patch_dims dims, int64_t dout_stride) {
  const int64_t Np = (dims.img_h / dims.P) * (dims.img_w / dims.P);
  const int64_t K = dims.C * dims.P * dims.P, img_size = dims.C * dims.img_h * dims.img_w;
  for (int64_t i = 0; i < B; i++) {
    if (dw) unfold(cols, img + i * img_size, dims);
    nn_linear_backward(NULL, dw, db, dout + i * dout_stride, cols, NULL, Np, K, dims.D);
  }
}

void nn_patch_embed_backward_ref(float *dw, float *db, const float *dout, const float *img,
                                 int64_t B, nn_patch_dims dims, int64_t dout_stride) {
  const int64_t gh = dims.img_h / dims.P, gw = dims.img_w / dims.P, P = dims.P;
  for (int64_t o = 0; o < dims.D; o++) {
    if (db) {
      double acc = db[o];
      for (int64_t i = 0; i < B; i++)
        for (int64_t p = 0; p < gh * gw; p++) acc += (double)dout[i * dout_stride + p * dims.D + o];
      db[o] = (float)acc;
    }
    if (!dw) continue;
    for (int64_t c = 0; c < dims.C; c++)
      for (int64_t ky = 0; ky < P; ky++)
        for (int64_t kx = 0; kx < P; kx++) {
          float *w = dw + ((o * dims.C + c) * P + ky) * P + kx;
          double acc = *w;
          for (int64_t i = 0; i < B; i++) {
            const float *im = img + i * dims.C * dims.img_h * dims.img_w;
            for (int64_t p = 0; p < gh * gw; p++) {
              const int64_t y = (p / gw) * P + ky, x = (p % gw) * P + kx;
              acc += (double)dout[i * dout_stride + p * dims.D + o] *
                     (double)im[(c * dims.img_h + y) * dims.img_w + x];
            }
          }
          *w = (float)acc;
        }
  }
}

void nn_patch_embed_forward_ref(float *out, const float *img, const float *w, const float *b,
                                int64_t B, nn_patch_dims dims, int64_t out_stride) {
  const int64_t gh = dims.img_h / dims.P, gw = dims.img_w / dims.P, P = dims.P;
  for (int64_t i = 0; i < B; i++) {
    const float *im = img + i * dims.C * dims.img_h * dims.img_w;
    for (int64_t p = 0; p < gh * gw; p++)
      for (int64_t o = 0; o < dims.D; o++) {
        double acc = b ? (double)b[o] : 0.0;
        for (int64_t c = 0; c < dims.C; c++)
          for (int64_t ky = 0; ky < P; ky++)
            for (int64_t kx = 0; kx < P; kx++) {
              int64_t y = (p / gw) * P + ky, x = (p % gw) * P + kx;
              acc += (double)im[(c * dims.img_h + y) * dims.img_w + x] *
                     (double)w[((o * dims.C + c) * P + ky) * P + kx];
            }
        out[i * out_stride + p * dims.D + o] = (float)acc;
      }
  }
}
