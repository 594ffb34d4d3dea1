/* test_augment.c: the training transform's and the shuffle's contracts that need no Python:
 *   - determinism: the tensor of (seed, epoch, index) is the same whatever order samples are
 *     processed in and whichever of two simulated ranks (own scratch, other alignment) handles
 *     it; it changes with the epoch, the index and the seed;
 *   - geometry: crops inside the image, the fallback on a very wide image, the flip rate, the
 *     flip being an exact mirror, the scratch bound covering every crop;
 *   - shuffle: a permutation, identical across calls, different across epochs and seeds, and
 *     uniform by a chi-square on (position, value) counts over many epochs (fixed seed, so the
 *     statistic is a fixed number and cannot flake; the bound is ~8 sigma above its mean);
 *   - bad input: zero-sized image, missing pixels, short scratch, bad parameters, a crop outside
 *     the image, an image too thin for its ratio: SCL_ERR_ARG with a message.
 * Images are generated here. Exits non-zero on any failure, printing the worst element. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safecl/augment.h"

#include "../common/scl_check.h"
#define OK(expr)                                                                                 \
  do {                                                                                           \
    scl_err e_ = (expr);                                                                         \
    CHECK(e_ == SCL_OK, "%s failed: %s\n%s", #expr, scl_error_message(), scl_error_traceback()); \
    scl_error_clear();                                                                           \
  } while (0)

#define K_SAMPLES 24
/* CIFAR, a photo, odd sizes, a wide image that often takes the fallback, a tiny one */
static const int SIZES[][2] = {{32, 32}, {500, 375}, {97, 211}, {640, 64}, {224, 224}, {7, 5}};
#define N_SIZES ((int)(sizeof SIZES / sizeof SIZES[0]))

static void fill_image(data_image *img, int w, int h, unsigned seed) {
  if (io_image_reserve(img, w, h) != SCL_OK) abort();
  for (size_t i = 0; i < (size_t)w * h * 3; i++) {
    seed = seed * 1664525u + 1013904223u;
    img->rgb[i] = (uint8_t)(seed >> 24);
  }
}

/* Largest |a - b| over n floats, its index in *at; 0 when identical. */
static double worst_diff(const float *a, const float *b, size_t n, size_t *at) {
  double worst = 0.0;
  *at = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - (double)b[i]);
    if (d > worst || (i == 0 && a[i] != b[i])) worst = d, *at = i;
  }
  return worst;
}

static void expect_error(scl_err got, const char *needle, const char *what) {
  const char *msg = scl_error_message();
  printf("  %-34s -> %s: %s\n", what, scl_error_name(got), msg);
  CHECK(got == SCL_ERR_ARG, "%s: expected SCL_ERR_ARG, got %s", what, scl_error_name(got));
  CHECK(strstr(msg, needle) != NULL, "%s: message lacks '%s': %s", what, needle, msg);
  scl_error_clear();
}

/* ---------------------------------------------------------------------------------------- */
/* Determinism                                                                               */

typedef struct fixture {
  data_image img[K_SAMPLES];
  data_train_params p;
  size_t scratch_bytes, plane;
  float *ref; /* K_SAMPLES tensors of epoch 0, in index order */
} fixture;

/* One simulated rank: the samples at positions rank, rank + 2, ... of `order`, processed in
 * reverse, with its own scratch at an offset that changes its alignment. */
static void run_rank(const fixture *fx, const int64_t *order, int rank, float *out, int offset) {
  char *block = NULL;
  OK(scl_alloc(fx->scratch_bytes + (size_t)offset, "scratch", (void **)&block));
  if (!block) return;
  for (int k = K_SAMPLES - 1; k >= 0; k--) {
    if (k % 2 != rank) continue;
    int64_t i = order[k];
    OK(data_train_transform(&fx->img[i], &fx->p, 1993, 0, (uint32_t)i, out + (size_t)i * fx->plane,
                            block + offset, fx->scratch_bytes));
  }
  scl_free(block);
}

static void test_determinism(void) {
  printf("determinism: order, ranks, epochs, indices, seeds\n");
  fixture fx = {.p = DATA_TRAIN_PARAMS_DEFAULT};
  size_t bytes = 0;
  for (int i = 0; i < K_SAMPLES; i++) {
    const int *s = SIZES[i % N_SIZES];
    fill_image(&fx.img[i], s[0], s[1], 77u + (unsigned)i);
    size_t b = data_train_transform_scratch_bytes(s[0], s[1], &fx.p);
    if (b > bytes) bytes = b;
  }
  fx.scratch_bytes = bytes;
  fx.plane = (size_t)3 * fx.p.size * fx.p.size;
  size_t total = fx.plane * K_SAMPLES;
  float *ref = NULL, *par = NULL, *tmp = NULL;
  void *scratch = NULL;
  OK(scl_alloc(total * sizeof(float), "ref", (void **)&ref));
  OK(scl_alloc(total * sizeof(float), "par", (void **)&par));
  OK(scl_alloc(fx.plane * sizeof(float), "tmp", (void **)&tmp));
  OK(scl_alloc(bytes, "scratch", &scratch));
  if (!ref || !par || !tmp || !scratch) return;
  for (int i = 0; i < K_SAMPLES; i++)
    OK(data_train_transform(&fx.img[i], &fx.p, 1993, 0, (uint32_t)i, ref + (size_t)i * fx.plane,
                            scratch, bytes));
  int64_t order[K_SAMPLES];
  OK(data_shuffle(5, 3, K_SAMPLES, order));
  run_rank(&fx, order, 1, par, 13);
  run_rank(&fx, order, 0, par, 64 + 7);
  size_t at;
  double d = worst_diff(ref, par, total, &at);
  printf("  shuffled order on 2 ranks vs serial: max abs diff %g (sample %zu, element %zu)\n", d,
         at / fx.plane, at % fx.plane);
  CHECK(memcmp(ref, par, total * sizeof(float)) == 0,
        "order/rank changed the output: worst %g at %zu", d, at);

  /* Two centre-crop fallbacks (the 640x64 image, mostly) share their crop and differ only if the
   * flip does, so such pairs are skipped: their equality is torchvision's, not a bug. */
  int same[3] = {0, 0, 0}, skipped = 0;
  for (int i = 0; i < K_SAMPLES; i++) {
    const float *r = ref + (size_t)i * fx.plane;
    const data_image *im = &fx.img[i];
    const uint64_t seeds[3] = {1993, 1993, 1994};
    const uint32_t epochs[3] = {1, 0, 0}, idx[3] = {(uint32_t)i, (uint32_t)i + 1000, (uint32_t)i};
    data_train_geom g0, g;
    OK(data_train_geometry(im->w, im->h, &fx.p, 1993, 0, (uint32_t)i, &g0));
    for (int v = 0; v < 3; v++) {
      OK(data_train_geometry(im->w, im->h, &fx.p, seeds[v], epochs[v], idx[v], &g));
      if (g0.attempts == 0 && g.attempts == 0) {
        skipped++;
        continue;
      }
      OK(data_train_transform(im, &fx.p, seeds[v], epochs[v], idx[v], tmp, scratch, bytes));
      same[v] += memcmp(r, tmp, fx.plane * sizeof(float)) == 0;
    }
  }
  printf(
      "  identical outputs of %d samples: next epoch %d, other index %d, other seed %d "
      "(%d fallback pairs skipped)\n",
      K_SAMPLES, same[0], same[1], same[2], skipped);
  CHECK(same[0] == 0 && same[1] == 0 && same[2] == 0,
        "draws do not depend on epoch/index/seed: %d %d %d identical", same[0], same[1], same[2]);
  for (int i = 0; i < K_SAMPLES; i++) io_image_free(&fx.img[i]);
  scl_free(ref), scl_free(par), scl_free(tmp), scl_free(scratch);
}

/* ---------------------------------------------------------------------------------------- */
/* Geometry                                                                                  */

static void test_geometry(void) {
  printf("geometry: bounds, fallback, flip rate, mirror, scratch bound\n");
  data_train_params p = DATA_TRAIN_PARAMS_DEFAULT;
  int flips = 0, bad = 0, fallbacks = 0, n = 20000;
  for (int k = 0; k < n; k++) {
    data_train_geom g;
    OK(data_train_geometry(500, 375, &p, 42, (uint32_t)k / 1000, (uint32_t)k % 1000, &g));
    flips += g.flip;
    fallbacks += g.attempts == 0;
    int words = g.attempts ? 2 * g.attempts + 3 : 21;
    if (g.i < 0 || g.j < 0 || g.i + g.h > 375 || g.j + g.w > 500 || g.words != words) {
      if (!bad++)
        fprintf(stderr, "  key %d: crop (%d,%d,%d,%d) words %d, attempt %d\n", k, g.i, g.j, g.h,
                g.w, g.words, g.attempts);
    }
  }
  double rate = (double)flips / n;
  printf("  500x375, %d keys: flip rate %.4f, %d fallbacks, %d bad crops\n", n, rate, fallbacks,
         bad);
  CHECK(bad == 0, "%d crops outside the image or with the wrong word count", bad);
  CHECK(fabs(rate - 0.5) < 0.02, "flip rate %.4f (fixed seed; expected 0.5 +- 0.02)", rate);

  data_train_geom g; /* 2000x20: every attempt is too tall, so torchvision's centre fallback */
  OK(data_train_geometry(2000, 20, &p, 42, 0, 0, &g));
  printf("  2000x20: crop (%d,%d,%d,%d), attempt %d, %d words\n", g.i, g.j, g.h, g.w, g.attempts,
         g.words);
  CHECK(g.attempts == 0 && g.h == 20 && g.w == 27 && g.i == 0 && g.j == 986 && g.words == 21,
        "fallback crop (%d,%d,%d,%d) attempt %d words %d, want (0,986,20,27) 0 21", g.i, g.j, g.h,
        g.w, g.attempts, g.words);

  /* flip = exact mirror of the unflipped tensor */
  data_image img = {0};
  fill_image(&img, 97, 211, 5);
  size_t bytes = data_train_transform_scratch_bytes(97, 211, &p), plane = (size_t)224 * 224;
  float *a = malloc(3 * plane * sizeof(float)), *b = malloc(3 * plane * sizeof(float));
  void *scratch = malloc(bytes);
  data_train_geom g0 = {.i = 10, .j = 3, .h = 150, .w = 80, .flip = 0}, g1 = g0;
  g1.flip = 1;
  OK(data_train_apply(&img, &g0, &p, a, scratch, bytes));
  OK(data_train_apply(&img, &g1, &p, b, scratch, bytes));
  int mism = 0;
  for (size_t c = 0; c < 3; c++)
    for (size_t y = 0; y < 224; y++)
      for (size_t x = 0; x < 224; x++)
        mism += a[c * plane + y * 224 + x] != b[c * plane + y * 224 + (223 - x)];
  CHECK(mism == 0, "flip is not a mirror: %d elements differ", mism);
  free(a), free(b), free(scratch);
  io_image_free(&img);
}

/* Every crop's resize scratch fits the bound data_train_transform_scratch_bytes promises. */
static void test_scratch_bound(void) {
  static const int dims[][2] = {{1, 1}, {40, 30}, {224, 224}, {225, 100}, {500, 375}, {3000, 17}};
  data_train_params p = DATA_TRAIN_PARAMS_DEFAULT;
  data_rect full = {0, 0, 224, 224};
  size_t win = ((size_t)224 * 224 * 3 + 63) & ~(size_t)63, worst_slack = SIZE_MAX;
  for (size_t k = 0; k < sizeof dims / sizeof dims[0]; k++) {
    int w = dims[k][0], h = dims[k][1];
    size_t bound = data_train_transform_scratch_bytes(w, h, &p);
    int step = w > 100 || h > 100 ? 7 : 1;
    for (int cw = 1; cw <= w; cw += (cw + step > w && cw != w) ? w - cw : step)
      for (int ch = 1; ch <= h; ch += (ch + step > h && ch != h) ? h - ch : step) {
        size_t need = win + data_resize_scratch_bytes(cw, ch, 224, 224, full, DATA_FILTER_BILINEAR);
        if (need > bound) {
          CHECK(0, "%dx%d crop of %dx%d needs %zu > bound %zu", cw, ch, w, h, need, bound);
          return;
        }
        if (bound - need < worst_slack) worst_slack = bound - need;
      }
  }
  printf("  scratch bound covers every crop (least slack %zu bytes)\n", worst_slack);
}

/* ---------------------------------------------------------------------------------------- */
/* Shuffle                                                                                   */

static int is_permutation(const int64_t *perm, int64_t n, char *seen) {
  memset(seen, 0, (size_t)n);
  for (int64_t k = 0; k < n; k++) {
    if (perm[k] < 0 || perm[k] >= n || seen[perm[k]]) return 0;
    seen[perm[k]] = 1;
  }
  return 1;
}

static void test_shuffle(void) {
  printf("shuffle: permutation, determinism, uniformity\n");
  static const int64_t sizes[] = {0, 1, 2, 3, 10, 1000, 100003};
  int64_t *a = malloc(100003 * sizeof(int64_t)), *b = malloc(100003 * sizeof(int64_t));
  char *seen = malloc(100003);
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    int64_t n = sizes[s];
    OK(data_shuffle(1993, 4, n, a));
    OK(data_shuffle(1993, 4, n, b));
    CHECK(is_permutation(a, n, seen), "n=%lld: not a permutation", (long long)n);
    CHECK(n == 0 || memcmp(a, b, (size_t)n * sizeof *a) == 0, "n=%lld: differs across calls",
          (long long)n);
  }
  OK(data_shuffle(1993, 5, 1000, b));
  int moved = 0;
  for (int k = 0; k < 1000; k++) moved += a[k] != b[k];
  OK(data_shuffle(1993, 4, 1000, a));
  OK(data_shuffle(1994, 4, 1000, b));
  int moved_seed = 0;
  for (int k = 0; k < 1000; k++) moved_seed += a[k] != b[k];
  printf("  n=1000: %d positions differ across epochs, %d across seeds\n", moved, moved_seed);
  CHECK(moved > 900 && moved_seed > 900, "epochs/seeds give nearly the same order");

  /* chi-square of (position, value) counts: n = 8 over 40000 epochs, 64 cells, 49 dof */
  enum { N = 8, EPOCHS = 40000 };
  static int64_t count[N][N];
  for (uint32_t e = 0; e < EPOCHS; e++) {
    OK(data_shuffle(7, e, N, a));
    for (int k = 0; k < N; k++) count[k][a[k]]++;
  }
  double expect = (double)EPOCHS / N, chi2 = 0.0, worst = 0.0;
  int wk = 0, wv = 0;
  for (int k = 0; k < N; k++)
    for (int v = 0; v < N; v++) {
      double t = (count[k][v] - expect) * (count[k][v] - expect) / expect;
      chi2 += t;
      if (t > worst) worst = t, wk = k, wv = v;
    }
  double limit = 49.0 + 8.0 * sqrt(2.0 * 49.0);
  printf("  chi-square %.2f (49 dof, limit %.1f); worst cell position %d value %d: %lld vs %.0f\n",
         chi2, limit, wk, wv, (long long)count[wk][wv], expect);
  CHECK(chi2 < limit, "shuffle not uniform: chi-square %.2f >= %.1f", chi2, limit);
  expect_error(data_shuffle(1, 0, -1, a), "shuffle", "shuffle n = -1");
  expect_error(data_shuffle(1, 0, (int64_t)UINT32_MAX + 1, a), "shuffle", "shuffle n = 2^32");
  expect_error(data_shuffle(1, 0, 5, NULL), "no output", "shuffle into NULL");
  free(a), free(b), free(seen);
}

/* ---------------------------------------------------------------------------------------- */
/* Bad input                                                                                 */

static void test_bad_input(void) {
  printf("bad input\n");
  data_train_params p = DATA_TRAIN_PARAMS_DEFAULT;
  float *out = malloc((size_t)3 * 224 * 224 * sizeof(float));
  size_t bytes = data_train_transform_scratch_bytes(64, 48, &p);
  void *scratch = malloc(bytes);
  data_image empty = {0}, img = {0};
  fill_image(&img, 64, 48, 3);
  expect_error(data_train_transform(&empty, &p, 1, 0, 0, out, scratch, bytes), "bad image",
               "zero-sized image");
  data_image nopix = {.w = 64, .h = 48};
  expect_error(data_train_transform(&nopix, &p, 1, 0, 0, out, scratch, bytes), "no pixels",
               "image without pixels");
  expect_error(data_train_transform(&img, &p, 1, 0, 0, out, scratch, bytes - 1), "scratch",
               "scratch one byte short");
  expect_error(data_train_transform(&img, &p, 1, 0, 0, out, NULL, bytes), "scratch", "no scratch");
  CHECK(data_train_transform_scratch_bytes(0, 48, &p) == 0, "scratch bound for a 0-wide image");
  data_train_params q = p;
  q.size = 0;
  expect_error(data_train_transform(&img, &q, 1, 0, 0, out, scratch, bytes), "size", "size 0");
  q = p, q.scale[0] = 0.9, q.scale[1] = 0.1;
  expect_error(data_train_params_check(&q), "scale", "scale reversed");
  q = p, q.ratio[0] = 0.0;
  expect_error(data_train_params_check(&q), "ratio", "ratio 0");
  q = p, q.flip_p = 1.5;
  expect_error(data_train_params_check(&q), "flip", "flip probability 1.5");
  static const float mean[3] = {0.5f, 0.5f, 0.5f};
  q = p, q.mean = mean;
  expect_error(data_train_params_check(&q), "together", "mean without std");
  data_train_geom g;
  expect_error(data_train_geometry(0, 10, &p, 1, 0, 0, &g), "image", "geometry of 0x10");
  q = p, q.ratio[0] = 2.0, q.ratio[1] = 4.0;
  expect_error(data_train_geometry(1, 200, &q, 1, 0, 0, &g), "too thin", "1x200 at ratio 2..4");
  data_train_geom outside = {.i = 40, .j = 0, .h = 10, .w = 10};
  expect_error(data_train_apply(&img, &outside, &p, out, scratch, bytes), "outside",
               "crop outside the image");
  free(out), free(scratch);
  io_image_free(&img);
}

int main(void) {
  test_determinism();
  test_geometry();
  test_scratch_bound();
  test_shuffle();
  test_bad_input();
  if (failures) {
    fprintf(stderr, "test_augment: %d failure(s)\n", failures);
    return 1;
  }
  printf("test_augment: all passed\n");
  return 0;
}
