/* test_data.c: data module checks that need no Python: resize windows and strides against the
 * full resize, crop geometry (torchvision's rounding and padding), ToTensor exactness, the folder
 * dataset's order, labels and manifest on a generated tree, CIFAR-100 binary files written here,
 * the synthetic dataset's determinism and class structure, and bad input (missing root, empty
 * class, truncated JPEG, garbage PNG, CIFAR of the wrong size or cut at a record boundary), whose
 * messages must name the file. Every input is generated here in a temporary directory that is removed at the end.
 * Exits non-zero on any failure. */
#define _XOPEN_SOURCE 700 /* nftw */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>

#include "safecl/data.h"

#include "../common/scl_check.h"
#define OK(expr)                                                                                 \
  do {                                                                                           \
    scl_err e_ = (expr);                                                                         \
    CHECK(e_ == SCL_OK, "%s failed: %s\n%s", #expr, scl_error_message(), scl_error_traceback()); \
    scl_error_clear();                                                                           \
  } while (0)

static char tmpdir[256];

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                   */

static void fill_pattern(data_image *img, int w, int h, unsigned seed) {
  if (io_image_reserve(img, w, h) != SCL_OK) abort();
  for (size_t i = 0; i < (size_t)w * h * 3; i++) {
    seed = seed * 1664525u + 1013904223u;
    img->rgb[i] = (uint8_t)(seed >> 24);
  }
}

/* tmpdir/rel in a static buffer (one at a time). */
static const char *at(const char *rel) {
  static char path[1024];
  snprintf(path, sizeof path, "%s/%s", tmpdir, rel);
  return path;
}

static void write_file(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  CHECK(f && fwrite(data, 1, len, f) == len, "cannot write %s", path);
  if (f) fclose(f);
}

/* A baseline JPEG of img via libjpeg's memory destination. */
static void write_jpeg(const char *path, const data_image *img, size_t keep_bytes) {
  struct jpeg_compress_struct c;
  struct jpeg_error_mgr jerr;
  unsigned char *buf = NULL;
  unsigned long len = 0;
  c.err = jpeg_std_error(&jerr);
  jpeg_create_compress(&c);
  jpeg_mem_dest(&c, &buf, &len);
  c.image_width = (JDIMENSION)img->w;
  c.image_height = (JDIMENSION)img->h;
  c.input_components = 3;
  c.in_color_space = JCS_RGB;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, 90, TRUE);
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = img->rgb + (size_t)c.next_scanline * img->w * 3;
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  write_file(path, buf, keep_bytes && keep_bytes < len ? keep_bytes : len);
  jpeg_destroy_compress(&c);
  free(buf);
}

static void mkdirs(const char *fmt, const char *a, const char *b) {
  char path[1024];
  snprintf(path, sizeof path, fmt, tmpdir, a, b);
  for (char *p = path + strlen(tmpdir) + 1; *p; p++)
    if (*p == '/') {
      *p = '\0';
      mkdir(path, 0755);
      *p = '/';
    }
  mkdir(path, 0755);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

/* Expects failure with `code` and a message containing `needle` (a path); prints it. */
static void expect_error(scl_err got, scl_err code, const char *needle, const char *what) {
  const char *msg = scl_error_message();
  printf("  %-28s -> %s: %s\n", what, scl_error_name(got), msg);
  CHECK(got == code, "%s: expected %s, got %s", what, scl_error_name(code), scl_error_name(got));
  CHECK(strstr(msg, needle) != NULL, "%s: message does not name '%s': %s", what, needle, msg);
  scl_error_clear();
}

/* ---------------------------------------------------------------------------------------- */
/* Transforms                                                                                */

static void test_geometry(void) {
  int w, h;
  data_resize_size(500, 375, 256, &w, &h);
  CHECK(w == 341 && h == 256, "500x375 @256 -> %dx%d, torchvision 341x256", w, h);
  data_resize_size(375, 500, 256, &w, &h);
  CHECK(w == 256 && h == 341, "375x500 @256 -> %dx%d", w, h);
  data_resize_size(1000, 10, 256, &w, &h);
  CHECK(w == 25600 && h == 256, "1000x10 @256 -> %dx%d", w, h);
  data_resize_size(333, 211, 256, &w, &h);
  CHECK(w == 404 && h == 256, "333x211 @256 -> %dx%d (int(256*333/211) = 404)", w, h);
  data_rect s, d;
  data_center_crop_rect(257, 259, 224, 224, &s, &d); /* 16.5 -> 16, 17.5 -> 18 (half-even) */
  CHECK(s.x == 16 && s.y == 18 && s.w == 224 && d.x == 0, "crop offsets %d,%d", s.x, s.y);
  data_center_crop_rect(200, 300, 224, 224, &s, &d); /* pad 12 left, crop rows from 38 */
  CHECK(s.x == 0 && s.w == 200 && d.x == 12 && s.y == 38 && d.y == 0 && d.h == 224,
        "padded crop src %d,%d %dx%d dst %d,%d", s.x, s.y, s.w, s.h, d.x, d.y);
}

/* Any window of a resize equals the same crop of the full resize; a source given as a
 * sub-rectangle (pointer + parent stride) equals that sub-image copied out. */
static void test_resize_windows(void) {
  data_image big = {0}, sub = {0}, full = {0}, win = {0};
  fill_pattern(&big, 160, 120, 7);
  int sx = 13, sy = 9, sw = 123, sh = 77;
  OK(io_image_reserve(&sub, sw, sh));
  for (int y = 0; y < sh; y++)
    memcpy(sub.rgb + (size_t)y * sw * 3, big.rgb + ((size_t)(sy + y) * 160 + sx) * 3,
           (size_t)sw * 3);
  const int dims[3][2] = {{200, 150}, {61, 30}, {123, 40}};
  for (int f = 0; f < 2; f++)
    for (int k = 0; k < 3; k++) {
      int dw = dims[k][0], dh = dims[k][1];
      data_rect all = {0, 0, dw, dh}, part = {dw / 5, dh / 3, dw / 2, dh / 2};
      size_t n1 = data_resize_scratch_bytes(sw, sh, dw, dh, all, (data_filter)f);
      void *scratch = malloc(n1);
      OK(io_image_reserve(&full, dw, dh));
      OK(data_resize(full.rgb, (size_t)dw * 3, sub.rgb, sw, sh, (size_t)sw * 3, dw, dh, all,
                     (data_filter)f, scratch, n1));
      size_t n2 = data_resize_scratch_bytes(sw, sh, dw, dh, part, (data_filter)f);
      CHECK(n2 <= n1, "window scratch %zu > full %zu", n2, n1);
      OK(io_image_reserve(&win, part.w, part.h));
      const uint8_t *view = big.rgb + ((size_t)sy * 160 + sx) * 3;
      OK(data_resize(win.rgb, (size_t)part.w * 3, view, sw, sh, 160 * 3, dw, dh, part,
                     (data_filter)f, scratch, n2));
      int bad = 0;
      for (int y = 0; y < part.h; y++)
        bad += memcmp(win.rgb + (size_t)y * part.w * 3,
                      full.rgb + ((size_t)(part.y + y) * dw + part.x) * 3, (size_t)part.w * 3) != 0;
      CHECK(bad == 0, "filter %d %dx%d: %d window rows differ from the full resize", f, dw, dh,
            bad);
      scl_err e = data_resize(win.rgb, (size_t)part.w * 3, view, sw, sh, 160 * 3, dw, dh, part,
                              (data_filter)f, scratch, n2 - 65);
      CHECK(e == SCL_ERR_ARG, "short scratch accepted");
      scl_error_clear();
      free(scratch);
    }
  printf("resize windows and strided sources match the full resize\n");
  io_image_free(&big), io_image_free(&sub), io_image_free(&full), io_image_free(&win);
}

static void test_to_chw(void) {
  data_image img = {0};
  fill_pattern(&img, 5, 4, 3);
  float out[3 * 5 * 4];
  data_to_chw(out, img.rgb, 5, 4, 15, NULL, NULL);
  int bad = 0;
  for (int c = 0; c < 3; c++)
    for (int i = 0; i < 20; i++) bad += out[c * 20 + i] != (float)img.rgb[3 * i + c] / 255.0f;
  CHECK(bad == 0, "ToTensor: %d values differ from x / 255.0f", bad);
  /* resize = crop = the image's side: no resampling, exactly ToTensor of the image */
  float out2[3 * 4 * 4];
  fill_pattern(&img, 4, 4, 9);
  OK(data_test_transform(&img, 4, 4, NULL, NULL, out2, NULL, 0));
  bad = 0;
  for (int c = 0; c < 3; c++)
    for (int i = 0; i < 16; i++) bad += out2[c * 16 + i] != (float)img.rgb[3 * i + c] / 255.0f;
  CHECK(bad == 0, "identity test transform: %d values differ", bad);
  CHECK(data_test_transform_scratch_bytes(4, 4, 4, 4) <= 64, "identity transform needs scratch");
  io_image_free(&img);
}

/* ---------------------------------------------------------------------------------------- */
/* Folder dataset                                                                            */

static void write_png_at(const char *rel, int w, int h, unsigned seed) {
  char path[1024];
  data_image img = {0};
  fill_pattern(&img, w, h, seed);
  snprintf(path, sizeof path, "%s/%s", tmpdir, rel);
  OK(io_image_write_png(path, &img));
  io_image_free(&img);
}

static void write_jpeg_at(const char *rel, int w, int h, unsigned seed, size_t keep) {
  char path[1024];
  data_image img = {0};
  fill_pattern(&img, w, h, seed);
  snprintf(path, sizeof path, "%s/%s", tmpdir, rel);
  write_jpeg(path, &img, keep);
  io_image_free(&img);
}

static scl_err open_at(const char *format, const char *rel_root, const char *split,
                       data_dataset **ds) {
  char root[1024];
  snprintf(root, sizeof root, "%s/%s", tmpdir, rel_root);
  data_source src = {.format = format, .root = root, .split = split};
  return data_dataset_open(&src, ds);
}

static void test_folder(void) {
  mkdirs("%s/f/train/%s%s", "C", ""), mkdirs("%s/f/train/%s%s", "a", "");
  mkdirs("%s/f/train/%s%s", "b", ""), mkdirs("%s/f/train/%s%s", ".git", "");
  write_png_at("f/train/C/x.PNG", 7, 5, 1);
  write_png_at("f/train/C/a.png", 6, 9, 2);
  write_jpeg_at("f/train/a/img2.JPEG", 16, 8, 3, 0);
  write_jpeg_at("f/train/a/img10.jpg", 9, 9, 4, 0);
  write_png_at("f/train/b/z.png", 3, 3, 5);
  write_png_at("f/train/b/.hidden.png", 3, 3, 6);
  write_png_at("f/train/.git/y.png", 3, 3, 6);
  write_file(at("f/train/b/readme.txt"), "hi\n", 3);
  data_dataset *ds = NULL;
  OK(open_at("folder", "f", "train", &ds));
  if (!ds) return;
  const char *want[] = {"train/C/a.png", "train/C/x.PNG", "train/a/img10.jpg", "train/a/img2.JPEG",
                        "train/b/z.png"};
  const int want_label[] = {0, 0, 1, 1, 2}, want_w[] = {6, 7, 9, 16, 3};
  const unsigned seeds[] = {2, 1, 4, 3, 5};
  CHECK(data_dataset_count(ds) == 5 && data_dataset_num_classes(ds) == 3,
        "folder: %lld samples, %lld classes; want 5, 3", (long long)data_dataset_count(ds),
        (long long)data_dataset_num_classes(ds));
  CHECK(strcmp(data_dataset_class_name(ds, 0), "C") == 0, "class 0 is %s",
        data_dataset_class_name(ds, 0));
  data_image img = {0}, ref = {0};
  for (int64_t i = 0; i < 5 && i < data_dataset_count(ds); i++) {
    CHECK(strcmp(data_dataset_path(ds, i), want[i]) == 0 &&
              data_dataset_label(ds, i) == want_label[i],
          "sample %lld: %s label %lld", (long long)i, data_dataset_path(ds, i),
          (long long)data_dataset_label(ds, i));
    OK(data_dataset_read(ds, i, &img));
    CHECK(img.w == want_w[i], "sample %lld: width %d, want %d", (long long)i, img.w, want_w[i]);
    fill_pattern(&ref, img.w, img.h, seeds[i]);
    long diff = 0;
    for (size_t k = 0; k < (size_t)img.w * img.h * 3; k++) diff += abs(img.rgb[k] - ref.rgb[k]);
    int lossless = strstr(want[i], "png") || strstr(want[i], "PNG");
    CHECK(lossless ? diff == 0 : img.w == ref.w, "sample %lld: pixels differ (sum %ld)",
          (long long)i, diff);
  }
  scl_hash h1 = data_dataset_manifest_hash(ds);
  data_dataset_close(&ds);
  CHECK(ds == NULL, "close did not clear the pointer");
  OK(open_at("folder", "f", "train", &ds));
  scl_hash h2 = ds ? data_dataset_manifest_hash(ds) : (scl_hash){0, 0};
  CHECK(h1.hi == h2.hi && h1.lo == h2.lo, "manifest differs between two opens");
  data_dataset_close(&ds);
  write_png_at("f/train/b/z.png", 4, 3, 5); /* same name, different size */
  OK(open_at("folder", "f", "train", &ds));
  CHECK(ds && data_dataset_manifest_hash(ds).lo != h1.lo, "manifest blind to a changed file");
  data_dataset_close(&ds);
  printf("folder dataset: order, labels, pixels and manifest as expected\n");
  io_image_free(&img), io_image_free(&ref);
}

/* ---------------------------------------------------------------------------------------- */
/* CIFAR-100 binary                                                                          */

static uint8_t cifar_px(int r, int c, int p) { return (uint8_t)(r * 7 + c * 50 + p * 3); }

/* `n` records as cifar_px says, then zero records (labels 0) up to `total`, then `extra` bytes;
 * the zeros are a hole in a sparse file, so full-size files cost no disk. */
static void write_cifar(const char *rel, int n, int total, size_t extra) {
  size_t len = (size_t)n * 3074;
  uint8_t *buf = calloc(1, len);
  for (int r = 0; r < n; r++) {
    uint8_t *rec = buf + (size_t)r * 3074;
    rec[0] = (uint8_t)(r % 20);
    rec[1] = (uint8_t)((r * 37) % 100);
    for (int c = 0; c < 3; c++)
      for (int p = 0; p < 1024; p++) rec[2 + c * 1024 + p] = cifar_px(r, c, p);
  }
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", tmpdir, rel);
  write_file(path, buf, len);
  free(buf);
  CHECK(truncate(path, (off_t)((size_t)total * 3074 + extra)) == 0, "cannot extend %s", path);
}

static void test_cifar(void) {
  mkdirs("%s/c/cifar-100-binary%s%s", "", "");
  write_cifar("c/cifar-100-binary/train.bin", 5, 50000, 0);
  write_cifar("c/cifar-100-binary/test.bin", 3, 10000, 0);
  char names[2000] = "", path[1024];
  for (int k = 0; k < 100; k++) snprintf(names + strlen(names), 20, "name_%d\n", k);
  snprintf(path, sizeof path, "%s/c/cifar-100-binary/fine_label_names.txt", tmpdir);
  write_file(path, names, strlen(names));
  data_dataset *ds = NULL, *ds2 = NULL;
  OK(open_at("cifar100", "c", "train", &ds));
  OK(open_at("cifar100", "c/cifar-100-binary", "train", &ds2));
  if (!ds || !ds2) return;
  CHECK(data_dataset_count(ds) == 50000 && data_dataset_num_classes(ds) == 100, "cifar counts");
  CHECK(data_dataset_manifest_hash(ds).lo == data_dataset_manifest_hash(ds2).lo,
        "root and root/cifar-100-binary give different manifests");
  CHECK(strcmp(data_dataset_path(ds, 3), "cifar100/train/000003") == 0, "path %s",
        data_dataset_path(ds, 3));
  CHECK(strcmp(data_dataset_class_name(ds, 37), "name_37") == 0, "class name %s",
        data_dataset_class_name(ds, 37));
  data_image img = {0};
  int bad = 0;
  for (int r = 0; r < 5; r++) {
    CHECK(data_dataset_label(ds, r) == (r * 37) % 100, "record %d label %lld", r,
          (long long)data_dataset_label(ds, r));
    OK(data_dataset_read(ds, r, &img));
    for (int y = 0; y < 32; y++)
      for (int x = 0; x < 32; x++)
        for (int c = 0; c < 3; c++)
          bad += img.rgb[(y * 32 + x) * 3 + c] != cifar_px(r, c, y * 32 + x);
  }
  CHECK(bad == 0 && img.w == 32 && img.h == 32, "cifar pixels: %d differ", bad);
  data_dataset_close(&ds), data_dataset_close(&ds2);
  OK(open_at("cifar100", "c", "test", &ds));
  CHECK(ds && data_dataset_count(ds) == 10000, "cifar test split");
  data_dataset_close(&ds);
  io_image_free(&img);
  printf("cifar100 dataset: records, labels, planes -> HWC and names as expected\n");
}

/* ---------------------------------------------------------------------------------------- */
/* Synthetic dataset                                                                         */

static scl_err open_syn(const char *split, uint64_t seed, int64_t classes, int64_t per, int size,
                        data_dataset **ds) {
  data_source src = {.format = "synthetic",
                     .split = split,
                     .n_classes = classes,
                     .per_class = per,
                     .image_size = size,
                     .seed = seed};
  return data_dataset_open(&src, ds);
}

static int same_pixels(const data_image *a, const data_image *b) {
  return a->w == b->w && a->h == b->h && memcmp(a->rgb, b->rgb, (size_t)a->w * a->h * 3) == 0;
}

/* 4x4-block means of a 32x32 image: 192 features. */
static void features(const data_image *img, double *f) {
  memset(f, 0, 192 * sizeof *f);
  for (int y = 0; y < 32; y++)
    for (int x = 0; x < 32; x++)
      for (int c = 0; c < 3; c++)
        f[((y / 4) * 8 + x / 4) * 3 + c] += img->rgb[(y * 32 + x) * 3 + c] / 16.0;
}

/* Nearest class mean on block features: the classes must be easy to tell apart. */
static double nearest_mean_accuracy(data_dataset *train, data_dataset *test) {
  enum { K = 10, F = 192 };
  static double mean[K][F], f[F];
  data_image img = {0};
  memset(mean, 0, sizeof mean);
  for (int64_t i = 0; i < data_dataset_count(train); i++) {
    OK(data_dataset_read(train, i, &img));
    features(&img, f);
    for (int k = 0; k < F; k++) mean[data_dataset_label(train, i)][k] += f[k];
  }
  int64_t correct = 0, n = data_dataset_count(test);
  for (int64_t i = 0; i < n; i++) {
    OK(data_dataset_read(test, i, &img));
    features(&img, f);
    int best = 0;
    double best_d = 1e300;
    for (int c = 0; c < K; c++) {
      double d = 0;
      for (int k = 0; k < F; k++) {
        double e = f[k] - mean[c][k] / (double)(data_dataset_count(train) / K);
        d += e * e;
      }
      if (d < best_d) best_d = d, best = c;
    }
    correct += best == data_dataset_label(test, i);
  }
  io_image_free(&img);
  return (double)correct / (double)n;
}

static void test_synthetic(void) {
  data_dataset *a = NULL, *b = NULL, *t = NULL, *s2 = NULL;
  OK(open_syn("train", 42, 10, 12, 32, &a));
  OK(open_syn("train", 42, 10, 12, 32, &b));
  OK(open_syn("test", 42, 10, 12, 32, &t));
  OK(open_syn("train", 43, 10, 12, 32, &s2));
  if (!a || !b || !t || !s2) return;
  CHECK(data_dataset_count(a) == 120 && data_dataset_label(a, 37) == 3, "synthetic layout");
  CHECK(strcmp(data_dataset_path(a, 37), "synthetic/train/c0003/000001") == 0, "path %s",
        data_dataset_path(a, 37));
  data_image x = {0}, y = {0};
  OK(data_dataset_read(a, 37, &x));
  OK(data_dataset_read(a, 5, &y)); /* reading something else in between changes nothing */
  OK(data_dataset_read(b, 37, &y));
  CHECK(same_pixels(&x, &y), "same (seed, split, index) gave different pixels");
  /* Golden value, the same at -O0 with sanitizers and at -O2 -march=native: a change means the
   * generator changed, which must bump SYN_VERSION in synthetic.c (and this value). */
  char hex[33];
  scl_hash_hex(scl_hash_bytes(x.rgb, (size_t)x.w * x.h * 3), hex);
  CHECK(strcmp(hex, "588b20962931138850e8dc68fc562b17") == 0,
        "synthetic (seed 42, train, 37) hashes to %s: generator changed?", hex);
  OK(data_dataset_read(a, 38, &y));
  CHECK(!same_pixels(&x, &y), "two images of a class are identical");
  OK(data_dataset_read(t, 37, &y));
  CHECK(!same_pixels(&x, &y), "train and test image 37 are identical");
  OK(data_dataset_read(s2, 37, &y));
  CHECK(!same_pixels(&x, &y), "seeds 42 and 43 give the same image");
  CHECK(data_dataset_manifest_hash(a).lo == data_dataset_manifest_hash(b).lo &&
            data_dataset_manifest_hash(a).lo != data_dataset_manifest_hash(t).lo &&
            data_dataset_manifest_hash(a).lo != data_dataset_manifest_hash(s2).lo,
        "synthetic manifests");
  double acc = nearest_mean_accuracy(a, t);
  printf("synthetic: deterministic; nearest-class-mean test accuracy %.3f (10 classes)\n", acc);
  CHECK(acc >= 0.9, "synthetic classes are not separable: accuracy %.3f", acc);
  data_dataset_close(&s2);
  OK(open_syn("test", 42, 3, 2, 37, &s2));
  OK(s2 ? data_dataset_read(s2, 5, &x) : SCL_OK);
  CHECK(x.w == 37 && x.h == 37, "synthetic size 37 gave %dx%d", x.w, x.h);
  data_dataset_close(&a), data_dataset_close(&b), data_dataset_close(&t), data_dataset_close(&s2);
  io_image_free(&x), io_image_free(&y);
}

/* ---------------------------------------------------------------------------------------- */
/* Bad input                                                                                 */

static void test_bad_input(void) {
  printf("bad input (each must fail with a message naming the file):\n");
  data_dataset *ds = NULL;
  data_image img = {0};
  expect_error(open_at("folder", "nowhere", "train", &ds), SCL_ERR_IO, "nowhere", "missing root");
  expect_error(open_at("folder", "f", "test", &ds), SCL_ERR_IO, "f/test", "missing split");
  mkdirs("%s/e/train/%s%s", "full", ""), mkdirs("%s/e/train/%s%s", "void", "");
  write_png_at("e/train/full/a.png", 4, 4, 1);
  write_png_at("e/train/void/.only_hidden.png", 4, 4, 1);
  expect_error(open_at("folder", "e", "train", &ds), SCL_ERR_FORMAT, "e/train/void",
               "empty class directory");
  mkdirs("%s/g/train/%s%s", "k", "");
  write_jpeg_at("g/train/k/1_truncated.jpg", 64, 48, 1, 700);
  write_file(at("g/train/k/2_garbage.png"),
             "\x89PNG\r\n\x1a\nthis is not a png stream at all..........", 48);
  write_file(at("g/train/k/3_text.jpg"), "hello\n", 6);
  OK(open_at("folder", "g", "train", &ds));
  if (ds) {
    expect_error(data_dataset_read(ds, 0, &img), SCL_ERR_FORMAT, "g/train/k/1_truncated.jpg",
                 "truncated JPEG");
    expect_error(data_dataset_read(ds, 1, &img), SCL_ERR_FORMAT, "g/train/k/2_garbage.png",
                 "garbage PNG");
    expect_error(data_dataset_read(ds, 2, &img), SCL_ERR_FORMAT, "g/train/k/3_text.jpg",
                 "text named .jpg");
    expect_error(data_dataset_read(ds, 3, &img), SCL_ERR_ARG, "out of range", "index 3 of 3");
    data_dataset_close(&ds);
  }
  mkdirs("%s/w%s%s", "", "");
  write_cifar("w/train.bin", 2, 2, 5);
  expect_error(open_at("cifar100", "w", "train", &ds), SCL_ERR_FORMAT, "w/train.bin",
               "CIFAR file of wrong size");
  mkdirs("%s/t%s%s", "", "");
  write_cifar("t/train.bin", 2, 49999, 0);
  expect_error(open_at("cifar100", "t", "train", &ds), SCL_ERR_FORMAT,
               "t/train.bin: 153696926 bytes, expected 153700000 (50000 records",
               "CIFAR file cut at a record boundary");
  expect_error(open_at("cifar100", "w", "test", &ds), SCL_ERR_IO, "w", "CIFAR split missing");
  expect_error(open_at("imagenet", "f", "train", &ds), SCL_ERR_ARG, "imagenet", "unknown format");
  expect_error(open_at("folder", "f", "val", &ds), SCL_ERR_ARG, "val", "unknown split");
  expect_error(open_syn("train", 1, 0, 5, 32, &ds), SCL_ERR_ARG, "n_classes",
               "0 synthetic classes");
  CHECK(ds == NULL, "a failed open left a dataset behind");
  io_image_free(&img);
}

/* data_source.limit: the first N samples of each class in dataset order, read as themselves,
 * for the folder and CIFAR readers (fixtures of test_folder and test_cifar); the manifest
 * follows the limit. */
static void test_limit(void) {
  char root[1024];
  snprintf(root, sizeof root, "%s/f", tmpdir);
  data_source src = {.format = "folder", .root = root, .split = "train", .limit = 1};
  data_dataset *ds = NULL, *all = NULL;
  OK(data_dataset_open(&src, &ds));
  if (!ds) return;
  const char *want[] = {"train/C/a.png", "train/a/img10.jpg", "train/b/z.png"};
  CHECK(data_dataset_count(ds) == 3, "folder, limit 1: %lld samples",
        (long long)data_dataset_count(ds));
  data_image img = {0};
  for (int64_t i = 0; i < 3 && i < data_dataset_count(ds); i++)
    CHECK(!strcmp(data_dataset_path(ds, i), want[i]) && data_dataset_label(ds, i) == i,
          "limit 1: sample %lld is %s", (long long)i, data_dataset_path(ds, i));
  OK(data_dataset_read(ds, 1, &img));
  CHECK(img.w == 9, "kept sample 1 reads img10.jpg (width %d)", img.w);
  src.limit = 0;
  OK(data_dataset_open(&src, &all));
  CHECK(all && data_dataset_manifest_hash(all).lo != data_dataset_manifest_hash(ds).lo,
        "the limit changes the manifest");
  data_dataset_close(&ds), data_dataset_close(&all);
  /* CIFAR: labels 0, 37, 74, 11, 48, then label 0 for the zero records */
  snprintf(root, sizeof root, "%s/c", tmpdir);
  data_source cif = {.format = "cifar100", .root = root, .split = "train", .limit = 2};
  OK(data_dataset_open(&cif, &ds));
  if (!ds) return;
  CHECK(data_dataset_count(ds) == 6 && data_dataset_label(ds, 5) == 0 &&
            !strcmp(data_dataset_path(ds, 5), "cifar100/train/000005") &&
            data_dataset_label(ds, 1) == 37,
        "cifar, limit 2: %lld samples", (long long)data_dataset_count(ds));
  OK(data_dataset_read(ds, 3, &img));
  CHECK(img.rgb[0] == cifar_px(3, 0, 0), "kept sample 3 reads record 3");
  expect_error(data_dataset_read(ds, 6, &img), SCL_ERR_ARG, "sample 6 out of range [0, 6)",
               "a sample past the limit");
  data_dataset_close(&ds);
  io_image_free(&img);
  printf("limit: first N per class, folder and cifar100\n");
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "%s", "data_test_XXXXXX");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }
  scl_log_set_level(SCL_LOG_WARN);
  test_geometry();
  test_resize_windows();
  test_to_chw();
  test_folder();
  test_cifar();
  test_limit();
  test_synthetic();
  test_bad_input();
  nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  printf(failures ? "%d data check(s) FAILED\n" : "all data checks passed\n", failures);
  return failures ? 1 : 0;
}
