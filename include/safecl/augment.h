/* augment.h: the training-time transform of the reference pipeline and per-epoch shuffles.
 *
 * The transform is docs/methods.md a.3's train mode, torchvision 0.14 + PIL 9.4:
 *   RandomResizedCrop(size, scale, ratio) (bilinear) -> RandomHorizontalFlip(p) -> ToTensor
 *   (-> Normalize when mean/std are given).
 * Every random draw is a pure function of (seed, epoch, sample index), so the augmentation of a
 * sample does not depend on batch order, thread or rank (docs/architecture.md 3).
 *
 * How the draws are made. torchvision draws from torch's CPU generator, whose raw output is a
 * sequence of 32-bit words (mt19937); every draw it makes here consumes exactly one word. We keep
 * torchvision's algorithm and torch's word-to-value transformations and replace only the words:
 * they are the successive scl_rng_u32 outputs of the Philox stream
 *   scl_rng_init(&r, seed, SCL_STREAM_AUGMENT, epoch, index),
 * consumed in torchvision's order:
 *   attempt a = 1..10 of RandomResizedCrop.get_params (height H, width W, area = H * W):
 *     word 2a-2 -> s  = U(word, scale[0], scale[1])              torch.empty(1).uniform_(scale)
 *     word 2a-1 -> la = U(word, logf(ratio[0]), logf(ratio[1]))  ... .uniform_(log_ratio)
 *                  aspect = EXP(la)                               torch.exp (float32)
 *     target = area * s, w = round(sqrt(target * aspect)), h = round(sqrt(target / aspect)) in
 *     double with round-half-even (Python's round); accepted when 0 < w <= W and 0 < h <= H:
 *     next word -> i = word % (H - h + 1)                         torch.randint(0, H - h + 1)
 *     next word -> j = word % (W - w + 1)                         torch.randint(0, W - w + 1)
 *   no attempt accepted: torchvision's centre-crop fallback (no words);
 *   then the flip: next word -> flip = U(word, 0, 1) < (float)p   torch.rand(1) < p
 * where, as torch 1.13 computes uniform_ on a float32 tensor,
 *   U(word, a, b) = fmaf((float)(word & 0xFFFFFF) * 2^-24, (float)b - (float)a, (float)a),
 * all in float32 with the product and sum fused: torch's AVX2 and AVX-512 kernels are compiled
 * with FMA contraction (verified on AVX2, torch's choice on this machine; its "default" kernel,
 * ATEN_CPU_CAPABILITY=default, rounds twice and is not reproduced), and
 *   EXP = torch.exp of a float32 tensor with those kernels = SLEEF 3.5's expf_u10 with FMA,
 * reproduced bit for bit by data_train_expf (glibc's expf differs in ~7 % of the 2^24 possible
 * inputs). The ratio bounds use glibc's logf; for the default ratio (3/4, 4/3) they equal torch's
 * SLEEF logf (checked by the parity test); other ratios may differ from torch in the last bit
 * (SLEEF's logf_u10 is not reproduced). randint keeps torch's modulo reduction of one 32-bit
 * word: its bias is below range / 2^32 (under 2e-5 for any image we accept), and keeping it is
 * what makes the geometry identical to torchvision's for the same words. 10 failed attempts use
 * 20 words and the flip is word 20; an accepted attempt a uses 2a + 2 words and the flip is word
 * 2a + 2 (words counted from 0).
 *
 * Pixels: torchvision's F.resized_crop on a PIL image is img.crop(box) then
 * img.resize((size, size), BILINEAR) (not Image.resize(box=...), whose coefficients differ);
 * data_resize reproduces that from the crop's pointer and the parent stride, without a copy.
 * A crop of exactly size x size is not resampled (torchvision returns it unchanged). The flip is
 * PIL's FLIP_LEFT_RIGHT, an exact mirror; ToTensor is uint8 / 255 in float32 (data_to_chw).
 *
 * Shuffles: data_shuffle's permutation is a pure function of (seed, epoch), identical on every
 * rank, so ranks can take shards of one global order. */
#ifndef SAFECL_AUGMENT_H
#define SAFECL_AUGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "safecl/core.h"
#include "safecl/data.h"
#include "safecl/image.h"

/* ---------------------------------------------------------------------------------------- */
/* The training transform (augment.c)                                                        */

typedef struct data_train_params {
  int size;          /* output side, 1 .. 4096 (224) */
  double scale[2];   /* area fraction range, 0 < scale[0] <= scale[1] <= 1 (0.05, 1.0) */
  double ratio[2];   /* aspect w/h range, 1/64 <= ratio[0] <= ratio[1] <= 64 (3/4, 4/3) */
  double flip_p;     /* probability of a horizontal flip, [0, 1] (0.5) */
  const float *mean; /* 3 values, or NULL with std NULL: no normalisation (the SAFE default) */
  const float *std;  /* 3 non-zero values, or NULL */
} data_train_params;

/* The reference pipeline's parameters (docs/methods.md a.3). */
#define DATA_TRAIN_PARAMS_DEFAULT \
  { 224, {0.05, 1.0}, {3.0 / 4.0, 4.0 / 3.0}, 0.5, NULL, NULL }

/* The drawn geometry of one sample. */
typedef struct data_train_geom {
  int i, j, h, w; /* the crop: rows [i, i + h), columns [j, j + w), torchvision's (i, j, h, w) */
  int flip;       /* 1 when the output is mirrored left-right */
  int attempts;   /* the accepted attempt, 1..10, or 0 for the centre-crop fallback */
  int words;      /* Philox words consumed, flip included (5 .. 23) */
} data_train_geom;

/* SCL_ERR_ARG with a message naming the bad field. */
SCL_NODISCARD scl_err data_train_params_check(const data_train_params *p);

/* The geometry data_train_transform uses for sample `index` of `epoch` on a width x height
 * image. Errors: SCL_ERR_ARG (bad params, non-positive size, a fallback crop of zero pixels). */
SCL_NODISCARD scl_err data_train_geometry(int width, int height, const data_train_params *p,
                                          uint64_t seed, uint32_t epoch, uint32_t index,
                                          data_train_geom *out);

/* Scratch bytes that suffice for data_train_transform and data_train_apply on any crop of a
 * w x h image (any image at most w x h); 0 for bad arguments. The bound does not depend on the
 * draw, so a loader sizes it once for its largest image. */
size_t data_train_transform_scratch_bytes(int w, int h, const data_train_params *p);

/* Crop g (flip included) of img, resized to p->size x p->size bilinear, into out_chw
 * (3 x size x size floats): the pixel half of the transform, for a given geometry. Errors:
 * SCL_ERR_ARG (bad image, params or geometry, scratch below the bound above). */
SCL_NODISCARD scl_err data_train_apply(const data_image *img, const data_train_geom *g,
                                       const data_train_params *p, float *out_chw, void *scratch,
                                       size_t scratch_bytes);

/* The training transform of sample `index` in `epoch`: data_train_geometry + data_train_apply.
 * Never allocates; out_chw and scratch are the caller's. Errors: SCL_ERR_ARG (zero-sized image,
 * bad params, scratch smaller than data_train_transform_scratch_bytes(img->w, img->h, p)). */
SCL_NODISCARD scl_err data_train_transform(const data_image *img, const data_train_params *p,
                                           uint64_t seed, uint32_t epoch, uint32_t index,
                                           float *out_chw, void *scratch, size_t scratch_bytes);

/* torch's uniform_(a, b) on a float32 tensor, from one generator word (see above). */
float data_train_uniform(uint32_t word, float a, float b);
/* torch.exp on a float32 tensor as torch 1.13 computes it on AVX2/AVX-512 (SLEEF expf_u10). */
float data_train_expf(float x);

/* ---------------------------------------------------------------------------------------- */
/* Per-epoch shuffle (shuffle.c)                                                             */

/* perm[k] = the sample at position k of epoch `epoch`'s order, a permutation of [0, n).
 * Fisher-Yates from the last position down: for k = n-1 .. 1, j uniform in [0, k], swap perm[k]
 * and perm[j]. j comes from the Philox stream (seed, SCL_STREAM_SHUFFLE, epoch, 0) by Lemire's
 * multiply-shift with rejection, which is exactly uniform: m = word * (k+1) as 64 bits; while the
 * low 32 bits of m are below 2^32 mod (k+1), draw the next word; j = m >> 32. The result depends
 * on (seed, epoch, n) only: every rank computes the same order and takes its shard of it.
 * Errors: SCL_ERR_ARG for n < 0, n > 2^32 - 1 or perm NULL with n > 0. */
SCL_NODISCARD scl_err data_shuffle(uint64_t seed, uint32_t epoch, int64_t n, int64_t *perm);

#endif /* SAFECL_AUGMENT_H */
