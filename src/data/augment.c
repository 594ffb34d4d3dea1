/* augment.c: the training transform, RandomResizedCrop + RandomHorizontalFlip + ToTensor, with
 * torchvision 0.14's geometry and PIL 9.4's pixels, and draws keyed by (seed, epoch, index).
 *
 * The geometry follows RandomResizedCrop.get_params line by line, including the float32
 * arithmetic torch uses for its uniforms and its exp (reproduced here, because glibc's expf is
 * not what torch calls), so that the same generator words give the same crop; augment.h says
 * which word feeds which draw. The pixels reuse data_resize on the crop in place, then mirror and
 * convert. What this file deliberately does not do: other augmentations (colour jitter, RandAug;
 * the reference pipeline has none), batching, or reading images. The trade-off: exactness costs
 * a hand-written SLEEF exp and an fmaf per uniform, a few nanoseconds per sample, against a
 * resize that costs a few hundred microseconds. */
#include "safecl/augment.h"

#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------- */
/* torch's float32 arithmetic                                                                */

float data_train_uniform(uint32_t word, float a, float b) {
  float x = (float)(word & 0xFFFFFFu) * 0x1p-24f; /* exact: 24 bits */
  float range = b - a;
  return fmaf(x, range, a);
}

/* 2^q for the small q that exp's reduction produces (-126 <= q <= 127). */
static float pow2i(int q) {
  uint32_t bits = (uint32_t)(q + 0x7f) << 23;
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

/* SLEEF 3.5 xexpf (expf_u10) as compiled for AVX2: every vmla is a fused multiply-add. The
 * separate statements keep each rounding where SLEEF has it. */
float data_train_expf(float d) {
  const float r_ln2 = 1.442695040888963407359924681001892137426645954152985934135449406931f;
  const float l2u = 0.693145751953125f, l2l = 1.428606765330187045e-06f;
  float qd = d * r_ln2;
  if (!(qd > -200.0f && qd < 200.0f)) qd = qd > 0 ? 200.0f : -200.0f; /* NaN and far tails */
  int q = (int)nearbyintf(qd);
  float qf = (float)q;
  float s = fmaf(qf, -l2u, d);
  s = fmaf(qf, -l2l, s);
  float u = 0.000198527617612853646278381f;
  u = fmaf(u, s, 0.00139304355252534151077271f);
  u = fmaf(u, s, 0.00833336077630519866943359f);
  u = fmaf(u, s, 0.0416664853692054748535156f);
  u = fmaf(u, s, 0.166666671633720397949219f);
  u = fmaf(u, s, 0.5f);
  float ss = s * s;
  u = 1.0f + fmaf(ss, u, s);
  if (d < -104.0f) return 0.0f;
  if (d > 100.0f) return INFINITY;
  /* vldexp2: two half steps so that neither factor overflows */
  u = u * pow2i(q >> 1);
  return u * pow2i(q - (q >> 1));
}

/* ---------------------------------------------------------------------------------------- */
/* Parameters and geometry                                                                   */

scl_err data_train_params_check(const data_train_params *p) {
  SCL_CHECK(p, SCL_ERR_ARG, "train transform: no parameters");
  SCL_CHECK(p->size >= 1 && p->size <= 4096, SCL_ERR_ARG,
            "train transform: size %d outside [1, 4096]", p->size);
  SCL_CHECK(p->scale[0] > 0.0 && p->scale[0] <= p->scale[1] && p->scale[1] <= 1.0, SCL_ERR_ARG,
            "train transform: scale (%g, %g) not in 0 < s0 <= s1 <= 1", p->scale[0], p->scale[1]);
  SCL_CHECK(p->ratio[0] >= 1.0 / 64 && p->ratio[0] <= p->ratio[1] && p->ratio[1] <= 64.0,
            SCL_ERR_ARG, "train transform: ratio (%g, %g) not in 1/64 <= r0 <= r1 <= 64",
            p->ratio[0], p->ratio[1]);
  SCL_CHECK(p->flip_p >= 0.0 && p->flip_p <= 1.0, SCL_ERR_ARG,
            "train transform: flip probability %g outside [0, 1]", p->flip_p);
  if (!p->mean != !p->std)
    return SCL_ERROR(SCL_ERR_ARG, "train transform: mean and std must be given together");
  for (int c = 0; p->std && c < 3; c++)
    if (p->std[c] == 0.0f) return SCL_ERROR(SCL_ERR_ARG, "train transform: std[%d] is zero", c);
  return SCL_OK;
}

typedef struct word_source {
  scl_rng rng;
  int used;
} word_source;

static uint32_t next_word(word_source *ws) {
  ws->used++;
  return scl_rng_u32(&ws->rng);
}

/* Python's int(round(x)) for the finite, non-negative, bounded x of get_params. */
static int64_t py_round(double x) { return (int64_t)nearbyint(x); }

/* The 10 attempts of get_params; returns the accepted attempt (1..10) or 0. */
static int crop_attempts(word_source *ws, int width, int height, const data_train_params *p,
                         data_train_geom *g) {
  double area = (double)((int64_t)width * height);
  float s0 = (float)p->scale[0], s1 = (float)p->scale[1];
  /* torch.log(torch.tensor(ratio)): float32 tensor, float32 log */
  float lr0 = logf((float)p->ratio[0]), lr1 = logf((float)p->ratio[1]);
  for (int attempt = 1; attempt <= 10; attempt++) {
    double target = area * (double)data_train_uniform(next_word(ws), s0, s1);
    double aspect = (double)data_train_expf(data_train_uniform(next_word(ws), lr0, lr1));
    int64_t w = py_round(sqrt(target * aspect));
    int64_t h = py_round(sqrt(target / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      g->w = (int)w;
      g->h = (int)h;
      g->i = (int)(next_word(ws) % (uint32_t)(height - h + 1));
      g->j = (int)(next_word(ws) % (uint32_t)(width - w + 1));
      return attempt;
    }
  }
  return 0;
}

/* get_params' fallback: the whole image, or its centre at the nearest allowed aspect. */
static void crop_fallback(int width, int height, const data_train_params *p, data_train_geom *g) {
  double in_ratio = (double)width / (double)height;
  double rmin = fmin(p->ratio[0], p->ratio[1]), rmax = fmax(p->ratio[0], p->ratio[1]);
  int64_t w = width, h = height;
  if (in_ratio < rmin) {
    h = py_round((double)w / rmin);
  } else if (in_ratio > rmax) {
    w = py_round((double)h * rmax);
  }
  g->w = (int)w;
  g->h = (int)h;
  g->i = (int)((height - h) / 2); /* Python's // on non-negative ints */
  g->j = (int)((width - w) / 2);
}

scl_err data_train_geometry(int width, int height, const data_train_params *p, uint64_t seed,
                            uint32_t epoch, uint32_t index, data_train_geom *out) {
  SCL_CALL(data_train_params_check(p));
  SCL_CHECK(width > 0 && height > 0 && (int64_t)width * height <= IO_IMAGE_MAX_PIXELS, SCL_ERR_ARG,
            "train transform: image of %dx%d pixels", width, height);
  data_train_geom g = {0};
  word_source ws = {.used = 0};
  scl_rng_init(&ws.rng, seed, SCL_STREAM_AUGMENT, epoch, index);
  g.attempts = crop_attempts(&ws, width, height, p, &g);
  if (g.attempts == 0) crop_fallback(width, height, p, &g);
  SCL_CHECK(g.w > 0 && g.h > 0, SCL_ERR_ARG,
            "train transform: %dx%d image too thin for ratio (%g, %g): %dx%d crop", width, height,
            p->ratio[0], p->ratio[1], g.w, g.h);
  /* torch.rand(1) < p: a float32 uniform compared in float32 */
  g.flip = data_train_uniform(next_word(&ws), 0.0f, 1.0f) < (float)p->flip_p;
  g.words = ws.used;
  *out = g;
  return SCL_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Pixels                                                                                    */

static size_t round64(size_t n) { return (n + 63) & ~(size_t)63; }

size_t data_train_transform_scratch_bytes(int w, int h, const data_train_params *p) {
  if (w <= 0 || h <= 0 || !p || p->size < 1 || p->size > 4096) return 0;
  /* A crop of at most w x h pixels needs no more resize scratch than a (size+1)-or-larger
   * source of w x h: that source forces both passes, the widest filter and the most rows. */
  int n = p->size;
  int bw = w > n ? w : n + 1, bh = h > n ? h : n + 1;
  data_rect full = {0, 0, n, n};
  size_t resize = data_resize_scratch_bytes(bw, bh, n, n, full, DATA_FILTER_BILINEAR);
  if (resize == 0) return 0;
  return round64((size_t)n * n * 3) + resize + 64;
}

/* PIL's FLIP_LEFT_RIGHT of an n x n RGB window in place. */
static void mirror_rows(uint8_t *pix, int n) {
  for (int y = 0; y < n; y++) {
    uint8_t *row = pix + (size_t)y * n * 3;
    for (int a = 0, b = n - 1; a < b; a++, b--)
      for (int c = 0; c < 3; c++) {
        uint8_t t = row[3 * a + c];
        row[3 * a + c] = row[3 * b + c];
        row[3 * b + c] = t;
      }
  }
}

static int image_ok(const data_image *img) {
  return img && img->rgb && img->w > 0 && img->h > 0 &&
         (int64_t)img->w * img->h <= IO_IMAGE_MAX_PIXELS;
}

scl_err data_train_apply(const data_image *img, const data_train_geom *g,
                         const data_train_params *p, float *out_chw, void *scratch,
                         size_t scratch_bytes) {
  SCL_CALL(data_train_params_check(p));
  SCL_CHECK(image_ok(img), SCL_ERR_ARG, "train transform: bad image %dx%d%s", img ? img->w : 0,
            img ? img->h : 0, img && !img->rgb ? " (no pixels)" : "");
  SCL_CHECK(g && g->i >= 0 && g->j >= 0 && g->h > 0 && g->w > 0 && g->i <= img->h - g->h &&
                g->j <= img->w - g->w,
            SCL_ERR_ARG, "train transform: crop (%d, %d, %d, %d) outside %dx%d image", g ? g->i : 0,
            g ? g->j : 0, g ? g->h : 0, g ? g->w : 0, img->w, img->h);
  size_t need = data_train_transform_scratch_bytes(img->w, img->h, p);
  SCL_CHECK(scratch && scratch_bytes >= need, SCL_ERR_ARG,
            "train transform scratch of %zu bytes%s, %zu needed for %dx%d", scratch_bytes,
            scratch ? "" : " at NULL", need, img->w, img->h);
  int n = p->size;
  size_t row = (size_t)n * 3, stride = (size_t)img->w * 3;
  const uint8_t *crop = img->rgb + (size_t)g->i * stride + (size_t)g->j * 3;
  uint8_t *win = (uint8_t *)round64((size_t)(uintptr_t)scratch);
  size_t win_bytes = round64((size_t)n * n * 3);
  if (g->w == n && g->h == n) { /* torchvision's resize returns a same-size image unchanged */
    for (int y = 0; y < n; y++) memcpy(win + (size_t)y * row, crop + (size_t)y * stride, row);
  } else {
    uint8_t *rest = win + win_bytes;
    size_t rest_bytes = scratch_bytes - (size_t)(rest - (uint8_t *)scratch);
    data_rect full = {0, 0, n, n};
    SCL_CALL(data_resize(win, row, crop, g->w, g->h, stride, n, n, full, DATA_FILTER_BILINEAR, rest,
                         rest_bytes));
  }
  if (g->flip) mirror_rows(win, n);
  data_to_chw(out_chw, win, n, n, row, p->mean, p->std);
  return SCL_OK;
}

scl_err data_train_transform(const data_image *img, const data_train_params *p, uint64_t seed,
                             uint32_t epoch, uint32_t index, float *out_chw, void *scratch,
                             size_t scratch_bytes) {
  SCL_CHECK(image_ok(img), SCL_ERR_ARG, "train transform of sample %u: bad image %dx%d%s", index,
            img ? img->w : 0, img ? img->h : 0, img && !img->rgb ? " (no pixels)" : "");
  data_train_geom g;
  SCL_CALL(data_train_geometry(img->w, img->h, p, seed, epoch, index, &g));
  SCL_CALL(data_train_apply(img, &g, p, out_chw, scratch, scratch_bytes));
  return SCL_OK;
}
