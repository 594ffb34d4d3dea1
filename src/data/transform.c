/* transform.c: evaluation-time image transforms with PIL/torchvision's exact pixels.
 *
 * The resize is a re-implementation of PIL 9.4's libImaging/Resample.c for 8-bit images:
 * separable filtering, the filter widened by the scale factor when downscaling, per-output-pixel
 * coefficients normalised in double and rounded to 22-bit fixed point, the horizontal pass first
 * into an 8-bit (clipped) intermediate, then the vertical pass; a pass whose size is unchanged is
 * skipped, as PIL skips it. Matching PIL bit for bit matters because the reference numbers were
 * produced by PIL-fed models. What differs from PIL is only the work done: we compute the
 * output window the center crop keeps, and only the intermediate rows that window needs.
 * Not here: training augmentations (RandomResizedCrop, flips) which reuse data_resize. */
#include "safecl/data.h"

#include <math.h>
#include <string.h>

#define PRECISION_BITS (32 - 8 - 2)
#define HALF (1 << (PRECISION_BITS - 1))

/* ---------------------------------------------------------------------------------------- */
/* Geometry                                                                                  */

void data_resize_size(int w, int h, int short_side, int *out_w, int *out_h) {
  int s = w <= h ? w : h, l = w <= h ? h : w;
  /* Python: int(S * long / short), the product exact in int and one correctly rounded division */
  int new_long = (int)((double)((int64_t)short_side * l) / (double)s);
  *out_w = w <= h ? short_side : new_long;
  *out_h = w <= h ? new_long : short_side;
}

/* int(round((size - crop) / 2.0)) with Python 3's round-half-to-even. */
static int crop_offset(int size, int crop) {
  int d = size - crop, q = d / 2;
  if ((d & 1) && (q & 1)) q++;
  return q;
}

static void crop_axis(int size, int crop, int *src0, int *dst0, int *n) {
  if (crop > size) { /* torchvision pads (crop - size) // 2 before, the rest after */
    *src0 = 0;
    *dst0 = (crop - size) / 2;
    *n = size;
  } else {
    *src0 = crop_offset(size, crop);
    *dst0 = 0;
    *n = crop;
  }
}

void data_center_crop_rect(int w, int h, int cw, int ch, data_rect *src, data_rect *dst) {
  crop_axis(w, cw, &src->x, &dst->x, &src->w);
  crop_axis(h, ch, &src->y, &dst->y, &src->h);
  dst->w = src->w;
  dst->h = src->h;
}

/* ---------------------------------------------------------------------------------------- */
/* Coefficients: PIL's precompute_coeffs + normalize_coeffs_8bpc                             */

static double filter_bicubic(double x) {
  const double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

static double filter_bilinear(double x) {
  if (x < 0.0) x = -x;
  if (x < 1.0) return 1.0 - x;
  return 0.0;
}

typedef struct axis {
  double scale, filterscale, support;
  double (*fn)(double);
  int in_size, ksize;
} axis;

static axis axis_make(int in_size, int out_size, data_filter filter) {
  axis a;
  a.fn = filter == DATA_FILTER_BICUBIC ? filter_bicubic : filter_bilinear;
  a.in_size = in_size;
  /* PIL: (double)(in1 - in0) / outSize with the box in float; exact for our integer boxes */
  a.scale = (double)(float)in_size / out_size;
  a.filterscale = a.scale < 1.0 ? 1.0 : a.scale;
  a.support = (filter == DATA_FILTER_BICUBIC ? 2.0 : 1.0) * a.filterscale;
  a.ksize = (int)ceil(a.support) * 2 + 1;
  return a;
}

/* Input range [*xmin, *xmin + *n) of output index xx, and its center. */
static double axis_bounds(const axis *a, int xx, int *xmin, int *n) {
  double center = 0.0 + (xx + 0.5) * a->scale;
  int lo = (int)(center - a->support + 0.5);
  int hi = (int)(center + a->support + 0.5);
  if (lo < 0) lo = 0;
  if (hi > a->in_size) hi = a->in_size;
  *xmin = lo;
  *n = hi - lo;
  return center;
}

/* Fixed-point coefficients of outputs [o0, o0 + count) into kk (count x ksize) and bounds. The
 * filter is evaluated twice per tap (sum, then value) instead of buffering doubles: the same
 * call on the same argument gives the same double, so the result is PIL's. */
static void axis_coeffs(const axis *a, int o0, int count, int32_t *kk, int *bounds) {
  double ss = 1.0 / a->filterscale;
  for (int i = 0; i < count; i++) {
    int xmin, n;
    double center = axis_bounds(a, o0 + i, &xmin, &n);
    double ww = 0.0;
    for (int x = 0; x < n; x++) ww += a->fn((x + xmin - center + 0.5) * ss);
    int32_t *k = kk + (size_t)i * a->ksize;
    for (int x = 0; x < a->ksize; x++) {
      double w = x < n ? a->fn((x + xmin - center + 0.5) * ss) : 0.0;
      if (ww != 0.0) w /= ww;
      k[x] = w < 0 ? (int32_t)(-0.5 + w * (1 << PRECISION_BITS))
                   : (int32_t)(0.5 + w * (1 << PRECISION_BITS));
    }
    bounds[2 * i] = xmin;
    bounds[2 * i + 1] = n;
  }
}

/* ---------------------------------------------------------------------------------------- */
/* Passes                                                                                    */

/* PIL's clip8: the lookup table maps every negative sum to 0 and saturates at 255. */
static inline uint8_t clip8(int32_t v) {
  if (v < 0) return 0;
  v >>= PRECISION_BITS;
  return (uint8_t)(v > 255 ? 255 : v);
}

/* rows x ow output pixels from rows of `in` starting at column 0 (bounds are absolute). */
static void pass_horizontal(uint8_t *out, size_t out_stride, const uint8_t *in, size_t in_stride,
                            int rows, int ow, const int32_t *kk, const int *bounds, int ksize) {
  for (int r = 0; r < rows; r++) {
    const uint8_t *row = in + (size_t)r * in_stride;
    uint8_t *o = out + (size_t)r * out_stride;
    for (int xx = 0; xx < ow; xx++) {
      const int32_t *k = kk + (size_t)xx * ksize;
      const uint8_t *p = row + (size_t)bounds[2 * xx] * 3;
      int n = bounds[2 * xx + 1];
      int32_t s0 = HALF, s1 = HALF, s2 = HALF;
      for (int x = 0; x < n; x++) {
        s0 += p[3 * x] * k[x];
        s1 += p[3 * x + 1] * k[x];
        s2 += p[3 * x + 2] * k[x];
      }
      o[3 * xx] = clip8(s0);
      o[3 * xx + 1] = clip8(s1);
      o[3 * xx + 2] = clip8(s2);
    }
  }
}

/* oh output rows of `bytes` bytes each; bounds are relative to `in`'s first row. The row
 * accumulator makes the inner loop a contiguous multiply-add the compiler vectorises. */
static void pass_vertical(uint8_t *out, size_t out_stride, const uint8_t *in, size_t in_stride,
                          int oh, size_t bytes, const int32_t *kk, const int *bounds, int ksize,
                          int32_t *acc) {
  for (int yy = 0; yy < oh; yy++) {
    const int32_t *k = kk + (size_t)yy * ksize;
    int ymin = bounds[2 * yy], n = bounds[2 * yy + 1];
    for (size_t i = 0; i < bytes; i++) acc[i] = HALF;
    for (int y = 0; y < n; y++) {
      const uint8_t *row = in + (size_t)(ymin + y) * in_stride;
      int32_t ky = k[y];
      for (size_t i = 0; i < bytes; i++) acc[i] += row[i] * ky;
    }
    uint8_t *o = out + (size_t)yy * out_stride;
    for (size_t i = 0; i < bytes; i++) o[i] = clip8(acc[i]);
  }
}

/* ---------------------------------------------------------------------------------------- */
/* Resize                                                                                    */

typedef struct resize_plan {
  axis ax, ay;
  int need_h, need_v;
  int row0, rows; /* source rows the horizontal pass must produce */
  size_t off_kh, off_bh, off_kv, off_bv, off_tmp, off_acc, total;
} resize_plan;

static size_t round64(size_t n) { return (n + 63) & ~(size_t)63; }

static void plan_make(resize_plan *p, int sw, int sh, int dw, int dh, data_rect win,
                      data_filter filter) {
  memset(p, 0, sizeof *p);
  p->ax = axis_make(sw, dw, filter);
  p->ay = axis_make(sh, dh, filter);
  p->need_h = dw != sw;
  p->need_v = dh != sh;
  int lo, n, lo_last, n_last;
  axis_bounds(&p->ay, win.y, &lo, &n);
  axis_bounds(&p->ay, win.y + win.h - 1, &lo_last, &n_last);
  p->row0 = p->need_v ? lo : win.y;
  p->rows = p->need_v ? lo_last + n_last - lo : win.h;
  size_t o = 0;
  p->off_kh = o, o += round64((size_t)win.w * p->ax.ksize * sizeof(int32_t));
  p->off_bh = o, o += round64((size_t)win.w * 2 * sizeof(int));
  p->off_kv = o, o += round64((size_t)win.h * p->ay.ksize * sizeof(int32_t));
  p->off_bv = o, o += round64((size_t)win.h * 2 * sizeof(int));
  p->off_tmp = o, o += (p->need_h && p->need_v) ? round64((size_t)win.w * 3 * p->rows) : 0;
  p->off_acc = o, o += round64((size_t)win.w * 3 * sizeof(int32_t));
  p->total = o + 64; /* + 64: the caller's pointer need not be aligned */
}

static int win_ok(data_rect win, int dw, int dh) {
  return win.w > 0 && win.h > 0 && win.x >= 0 && win.y >= 0 && win.x <= dw - win.w &&
         win.y <= dh - win.h;
}

size_t data_resize_scratch_bytes(int sw, int sh, int dw, int dh, data_rect win,
                                 data_filter filter) {
  if (sw <= 0 || sh <= 0 || !win_ok(win, dw, dh)) return 0;
  resize_plan p;
  plan_make(&p, sw, sh, dw, dh, win, filter);
  return p.total;
}

scl_err data_resize(uint8_t *dst, size_t dst_stride, const uint8_t *src, int sw, int sh,
                    size_t src_stride, int dw, int dh, data_rect win, data_filter filter,
                    void *scratch, size_t scratch_bytes) {
  SCL_CHECK(sw > 0 && sh > 0 && dw > 0 && dh > 0 && win_ok(win, dw, dh) &&
                src_stride >= (size_t)sw * 3 && dst_stride >= (size_t)win.w * 3,
            SCL_ERR_ARG, "resize %dx%d -> %dx%d window (%d,%d %dx%d): bad geometry", sw, sh, dw, dh,
            win.x, win.y, win.w, win.h);
  resize_plan p;
  plan_make(&p, sw, sh, dw, dh, win, filter);
  SCL_CHECK(scratch && scratch_bytes >= p.total, SCL_ERR_ARG,
            "resize scratch of %zu bytes, %zu needed", scratch_bytes, p.total);
  char *base = (char *)round64((size_t)(uintptr_t)scratch);
  int32_t *kh = (int32_t *)(base + p.off_kh), *kv = (int32_t *)(base + p.off_kv);
  int *bh = (int *)(base + p.off_bh), *bv = (int *)(base + p.off_bv);
  uint8_t *tmp = (uint8_t *)(base + p.off_tmp);
  int32_t *acc = (int32_t *)(base + p.off_acc);
  size_t bytes = (size_t)win.w * 3;
  const uint8_t *vin = src + (size_t)win.x * 3; /* vertical input when there is no h pass */
  size_t vin_stride = src_stride;

  if (p.need_v) {
    axis_coeffs(&p.ay, win.y, win.h, kv, bv);
    for (int i = 0; i < win.h; i++) bv[2 * i] -= p.row0;
  }
  if (p.need_h) {
    axis_coeffs(&p.ax, win.x, win.w, kh, bh);
    uint8_t *hout = p.need_v ? tmp : dst;
    size_t hstride = p.need_v ? bytes : dst_stride;
    pass_horizontal(hout, hstride, src + (size_t)p.row0 * src_stride, src_stride, p.rows, win.w, kh,
                    bh, p.ax.ksize);
    vin = tmp;
    vin_stride = bytes;
  } else {
    vin += (size_t)p.row0 * src_stride;
  }
  if (p.need_v) {
    pass_vertical(dst, dst_stride, vin, vin_stride, win.h, bytes, kv, bv, p.ay.ksize, acc);
  } else if (!p.need_h) { /* same size both ways: PIL copies */
    for (int y = 0; y < win.h; y++)
      memcpy(dst + (size_t)y * dst_stride, vin + (size_t)y * vin_stride, bytes);
  }
  return SCL_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* ToTensor and the evaluation transform                                                     */

void data_to_chw(float *out, const uint8_t *src, int w, int h, size_t stride, const float *mean,
                 const float *std) {
  size_t plane = (size_t)w * h;
  for (int c = 0; c < 3; c++) {
    float *o = out + (size_t)c * plane;
    float m = mean ? mean[c] : 0.0f, s = std ? std[c] : 1.0f;
    int norm = mean || std;
    for (int y = 0; y < h; y++) {
      const uint8_t *row = src + (size_t)y * stride + c;
      float *orow = o + (size_t)y * w;
      /* float32 division by 255, as torch's div(255): not a multiplication by 1/255 */
      for (int x = 0; x < w; x++) orow[x] = (float)row[3 * x] / 255.0f;
      if (norm)
        for (int x = 0; x < w; x++) orow[x] = (orow[x] - m) / s;
    }
  }
}

typedef struct test_plan {
  int rw, rh, resample;
  data_rect src, dst;
  size_t resize_bytes, window_bytes;
} test_plan;

static int test_plan_make(test_plan *t, int w, int h, int resize, int crop) {
  if (w <= 0 || h <= 0 || crop <= 0) return 0;
  t->rw = w, t->rh = h;
  if (resize > 0) data_resize_size(w, h, resize, &t->rw, &t->rh);
  if (t->rw <= 0 || t->rh <= 0) return 0;
  t->resample = t->rw != w || t->rh != h;
  data_center_crop_rect(t->rw, t->rh, crop, crop, &t->src, &t->dst);
  t->resize_bytes =
      t->resample ? data_resize_scratch_bytes(w, h, t->rw, t->rh, t->src, DATA_FILTER_BICUBIC) : 0;
  t->window_bytes = t->resample ? round64((size_t)t->src.w * t->src.h * 3) : 0;
  return 1;
}

size_t data_test_transform_scratch_bytes(int w, int h, int resize, int crop) {
  test_plan t;
  if (!test_plan_make(&t, w, h, resize, crop)) return 0;
  return t.window_bytes + t.resize_bytes + 64;
}

scl_err data_test_transform(const data_image *img, int resize, int crop, const float *mean,
                            const float *std, float *out_chw, void *scratch, size_t scratch_bytes) {
  test_plan t;
  SCL_CHECK(img && img->rgb && test_plan_make(&t, img->w, img->h, resize, crop), SCL_ERR_ARG,
            "test transform: bad image %dx%d or sizes (resize %d, crop %d)", img ? img->w : 0,
            img ? img->h : 0, resize, crop);
  size_t need = t.window_bytes + t.resize_bytes + 64;
  if (t.resample && (!scratch || scratch_bytes < need))
    return SCL_ERROR(SCL_ERR_ARG, "test transform scratch of %zu bytes, %zu needed", scratch_bytes,
                     need);
  const uint8_t *pix = img->rgb + ((size_t)t.src.y * img->w + t.src.x) * 3;
  size_t stride = (size_t)img->w * 3;
  if (t.resample) {
    uint8_t *window = (uint8_t *)round64((size_t)(uintptr_t)scratch);
    SCL_CALL(data_resize(window, (size_t)t.src.w * 3, img->rgb, img->w, img->h, stride, t.rw, t.rh,
                         t.src, DATA_FILTER_BICUBIC, window + t.window_bytes, t.resize_bytes));
    pix = window;
    stride = (size_t)t.src.w * 3;
  }
  if (t.dst.w == crop && t.dst.h == crop) {
    data_to_chw(out_chw, pix, crop, crop, stride, mean, std);
    return SCL_OK;
  }
  /* Zero padding (crop larger than the resized image): padded pixels are uint8 0 before
   * ToTensor/Normalize, so they become (0 - mean) / std. */
  size_t plane = (size_t)crop * crop;
  for (int c = 0; c < 3; c++) {
    float pad = (0.0f / 255.0f - (mean ? mean[c] : 0.0f)) / (std ? std[c] : 1.0f);
    for (size_t i = 0; i < plane; i++) out_chw[(size_t)c * plane + i] = pad;
  }
  for (int y = 0; y < t.dst.h; y++)
    for (int c = 0; c < 3; c++) {
      float *o = out_chw + (size_t)c * plane + (size_t)(t.dst.y + y) * crop + t.dst.x;
      const uint8_t *row = pix + (size_t)y * stride + c;
      float m = mean ? mean[c] : 0.0f, s = std ? std[c] : 1.0f;
      for (int x = 0; x < t.dst.w; x++) {
        o[x] = (float)row[3 * x] / 255.0f;
        if (mean || std) o[x] = (o[x] - m) / s;
      }
    }
  return SCL_OK;
}
