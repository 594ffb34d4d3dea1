/* test_data_hostile.c: dataset and image input built to hang the readers or to make them do
 * unbounded work, each of which must fail at once naming the file and what is wrong:
 *   - decompression bombs: a 13000x13000 1-bit PNG (about 20 KB) and a JPEG whose header claims
 *     13000x13000 are refused from the header, before 507 MB of pixels are allocated, naming the
 *     file, its size and dataset.max_image_pixels; the key, carried from data_source through the
 *     dataset to each read, moves the limit to exactly the pixels it names;
 *   - FIFOs, /dev/zero and directories as an image, a DomainNet list file, a listed image, a
 *     CIFAR-100 .bin and its class-name file;
 *   - a DomainNet list line longer than the reader's line buffer (it was read in pieces, each
 *     taken for a line);
 *   - folder datasets whose symlinks loop: three links to "." in a class directory (3^16
 *     directories before the depth limit), a link to ".." (the split directory), two links to one
 *     directory, a class that is a link to the split directory, and nesting deeper than 16; legal
 *     layouts (nested class directories, a link to a directory outside the class) still open.
 * Every input is generated here. The test runs under alarm(): before these fixes a FIFO open
 * blocked and the symlink walk ran for hours, and the alarm ends it as a failure instead.
 * Exits non-zero on any failure. */
#define _XOPEN_SOURCE 700 /* nftw, mkfifo, symlink */
#include <ftw.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>

#include "../common/scl_check.h"
#include "safecl/data.h"

static char tmpdir[256];

static const char *at(const char *rel) {
  static char path[4][1024];
  static int k;
  k = (k + 1) % 4;
  snprintf(path[k], sizeof path[k], "%s/%s", tmpdir, rel);
  return path[k];
}

static void write_bytes(const char *rel, const void *data, size_t len) {
  FILE *f = fopen(at(rel), "wb");
  CHECK(f && fwrite(data, 1, len, f) == len, "cannot write %s", rel);
  if (f) fclose(f);
}

static void write_text(const char *rel, const char *text) { write_bytes(rel, text, strlen(text)); }

/* mkdir -p tmpdir/rel. */
static void mkdirs(const char *rel) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", tmpdir, rel);
  for (char *p = path + strlen(tmpdir) + 1; *p; p++)
    if (*p == '/') {
      *p = '\0';
      mkdir(path, 0755);
      *p = '/';
    }
  mkdir(path, 0755);
}

static void link_at(const char *target, const char *rel) {
  CHECK(symlink(target, at(rel)) == 0, "symlink %s -> %s", rel, target);
}

static void fifo_at(const char *rel) { CHECK(mkfifo(at(rel), 0644) == 0, "mkfifo %s", rel); }

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

static scl_err open_folder(const char *rel, const char *split, int64_t max_pixels,
                           data_dataset **ds) {
  data_source src = {
      .format = "folder", .root = at(rel), .split = split, .max_image_pixels = max_pixels};
  return data_dataset_open(&src, ds);
}

/* ---------------------------------------------------------------------------------------- */
/* Decompression bombs and the pixel limit                                                   */

/* A w x h 1-bit grayscale PNG of zeros: 13000x13000 compresses to about 20 KB. */
static void write_gray1_png(const char *rel, unsigned w, unsigned h) {
  FILE *f = fopen(at(rel), "wb");
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  png_bytep row = calloc((w + 7) / 8, 1);
  CHECK(f && info && row, "cannot set up the PNG writer for %s", rel);
  if (f && info && row && !setjmp(png_jmpbuf(png))) {
    png_init_io(png, f);
    png_set_compression_level(png, 9);
    png_set_IHDR(png, info, w, h, 1, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (unsigned y = 0; y < h; y++) png_write_row(png, row);
    png_write_end(png, NULL);
  }
  png_destroy_write_struct(&png, &info);
  free(row);
  if (f) fclose(f);
}

/* A 16x16 baseline JPEG whose SOF0 then claims w x h (the scan data stays that of 16x16). */
static void write_jpeg_claiming(const char *rel, unsigned w, unsigned h) {
  struct jpeg_compress_struct c;
  struct jpeg_error_mgr jerr;
  unsigned char *buf = NULL, px[16 * 3] = {0};
  unsigned long len = 0;
  c.err = jpeg_std_error(&jerr);
  jpeg_create_compress(&c);
  jpeg_mem_dest(&c, &buf, &len);
  c.image_width = c.image_height = 16;
  c.input_components = 3;
  c.in_color_space = JCS_RGB;
  jpeg_set_defaults(&c);
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW r = px;
    jpeg_write_scanlines(&c, &r, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  int patched = 0;
  for (unsigned long i = 0; i + 9 < len && !patched; i++)
    if (buf[i] == 0xff &&
        buf[i + 1] == 0xc0) { /* SOF0: length(2) precision(1) height(2) width(2) */
      buf[i + 5] = (unsigned char)(h >> 8), buf[i + 6] = (unsigned char)h;
      buf[i + 7] = (unsigned char)(w >> 8), buf[i + 8] = (unsigned char)w;
      patched = 1;
    }
  CHECK(patched, "no SOF0 marker in the generated JPEG");
  write_bytes(rel, buf, len);
  free(buf);
}

static void test_bombs(void) {
  write_gray1_png("bomb.png", 13000, 13000);
  struct stat st;
  CHECK(stat(at("bomb.png"), &st) == 0 && st.st_size < 200000, "bomb.png is small: %lld bytes",
        (long long)st.st_size);
  data_image img = {0};
  check_refused(io_image_read(at("bomb.png"), &img), "13000x13000 PNG", at("bomb.png"),
                "13000x13000", "dataset.max_image_pixels");
  CHECK(img.cap < 1000000, "no pixel buffer was allocated for the bomb (%zu bytes)", img.cap);
  write_jpeg_claiming("bomb.jpg", 13000, 13000);
  check_refused(io_image_read(at("bomb.jpg"), &img), "JPEG claiming 13000x13000", at("bomb.jpg"),
                "13000x13000", "dataset.max_image_pixels");
  CHECK(img.cap < 1000000, "no pixel buffer was allocated for the JPEG (%zu bytes)", img.cap);
  /* The limit is the pixels it names: 40x30 = 1200. */
  write_gray1_png("small.png", 40, 30);
  write_jpeg_claiming("small.jpg", 16, 16);
  img.max_pixels = 1199;
  check_refused(io_image_read(at("small.png"), &img), "40x30 PNG, limit 1199", "40x30", "1199",
                NULL);
  img.max_pixels = 255;
  check_refused(io_image_read(at("small.jpg"), &img), "16x16 JPEG, limit 255", "16x16", "255",
                NULL);
  img.max_pixels = 1200;
  CHECK_OK(io_image_read(at("small.png"), &img));
  CHECK(img.w == 40 && img.h == 30, "40x30 PNG decodes at limit 1200 (%dx%d)", img.w, img.h);
  img.max_pixels = 256;
  CHECK_OK(io_image_read(at("small.jpg"), &img));
  io_image_free(&img);
  /* Through a dataset: data_source.max_image_pixels reaches every read. */
  mkdirs("pix/train/a");
  mkdirs("pix/train/b");
  write_gray1_png("pix/train/a/x.png", 40, 30);
  write_gray1_png("pix/train/b/y.png", 40, 30);
  data_dataset *ds = NULL;
  CHECK_OK(open_folder("pix", "train", 1000, &ds));
  if (ds) {
    data_image im = {0};
    check_refused(data_dataset_read(ds, 0, &im), "dataset limit 1000, 40x30 image",
                  "pix/train/a/x.png", "40x30", "dataset.max_image_pixels = 1000");
    io_image_free(&im);
  }
  data_dataset_close(&ds);
  CHECK_OK(open_folder("pix", "train", 0, &ds));
  if (ds) {
    data_image im = {0};
    CHECK_OK(data_dataset_read(ds, 1, &im));
    io_image_free(&im);
  }
  data_dataset_close(&ds);
}

/* ---------------------------------------------------------------------------------------- */
/* Files that are not regular files                                                          */

static void test_not_regular(void) {
  data_image img = {0};
  fifo_at("img_fifo.png");
  mkdirs("img_dir.png");
  check_refused(io_image_read(at("img_fifo.png"), &img), "image that is a FIFO", at("img_fifo.png"),
                "a FIFO", NULL);
  check_refused(io_image_read("/dev/zero", &img), "image /dev/zero", "/dev/zero",
                "a character device", NULL);
  check_refused(io_image_read(at("img_dir.png"), &img), "image that is a directory",
                at("img_dir.png"), "a directory", NULL);
  io_image_free(&img);

  data_dataset *ds = NULL;
  data_source dn = {.format = "domainnet", .split = "train", .domains = "real"};
  mkdirs("dn_fifo");
  fifo_at("dn_fifo/real_train.txt");
  dn.root = at("dn_fifo");
  check_refused(data_dataset_open(&dn, &ds), "DomainNet list that is a FIFO", "list file",
                at("dn_fifo/real_train.txt"), "a FIFO");
  mkdirs("dn_entry/real/a");
  fifo_at("dn_entry/real/a/f.png");
  write_text("dn_entry/real_train.txt", "real/a/f.png 0\n");
  dn.root = at("dn_entry");
  check_refused(data_dataset_open(&dn, &ds), "DomainNet entry that is a FIFO", "real_train.txt:1",
                "real/a/f.png", "a FIFO");
  mkdirs("dn_long/real/a");
  write_text("dn_long/real/a/ok.png", "x");
  char line[10000 + 16];
  memset(line, 'a', 10000);
  snprintf(line + 10000, 16, " 3\n");
  FILE *f = fopen(at("dn_long/real_train.txt"), "w");
  CHECK(f && fputs("real/a/ok.png 0\n", f) >= 0 && fputs(line, f) >= 0, "long list");
  if (f) fclose(f);
  dn.root = at("dn_long");
  check_refused(data_dataset_open(&dn, &ds), "DomainNet line of 10003 bytes", "real_train.txt:2",
                "longer than", NULL);
  data_dataset_close(&ds);

  data_source cf = {.format = "cifar100", .split = "test"};
  mkdirs("cifar_fifo/cifar-100-binary");
  fifo_at("cifar_fifo/cifar-100-binary/test.bin");
  cf.root = at("cifar_fifo");
  check_refused(data_dataset_open(&cf, &ds), "CIFAR .bin that is a FIFO", "CIFAR-100 file",
                "test.bin", "a FIFO");
  /* A valid test.bin (zeros: every label 0, sparse) beside a FIFO of class names. */
  mkdirs("cifar_names/cifar-100-binary");
  f = fopen(at("cifar_names/cifar-100-binary/test.bin"), "wb");
  CHECK(f && ftruncate(fileno(f), 10000L * 3074) == 0, "sparse test.bin");
  if (f) fclose(f);
  fifo_at("cifar_names/cifar-100-binary/fine_label_names.txt");
  cf.root = at("cifar_names");
  check_refused(data_dataset_open(&cf, &ds), "CIFAR class names that are a FIFO", "class names",
                "fine_label_names.txt", "a FIFO");
  data_dataset_close(&ds);
}

/* ---------------------------------------------------------------------------------------- */
/* Folder walks                                                                              */

static void test_folder_links(void) {
  data_dataset *ds = NULL;
  /* Legal: nesting below a class, and a link to a directory outside the class (walked once). */
  mkdirs("ok/train/a/sub/deeper");
  mkdirs("ok/train/b");
  mkdirs("ok/extra");
  write_text("ok/train/a/sub/deeper/x.png", "x");
  write_text("ok/train/b/y.png", "y");
  write_text("ok/extra/z.png", "z");
  link_at("../../extra", "ok/train/b/ext");
  CHECK_OK(open_folder("ok", "train", 0, &ds));
  CHECK(ds && data_dataset_count(ds) == 3, "legal layout: 3 images (got %lld)",
        ds ? (long long)data_dataset_count(ds) : -1LL);
  data_dataset_close(&ds);

  mkdirs("up/train/a");
  write_text("up/train/a/x.png", "x");
  link_at("..", "up/train/a/up");
  check_refused(open_folder("up", "train", 0, &ds), "link to .. (the split directory)",
                "up/train/a/up", "loops back to the split directory", NULL);

  mkdirs("twice/train/a/sub");
  write_text("twice/train/a/sub/x.png", "x");
  link_at("sub", "twice/train/a/l1");
  link_at("sub", "twice/train/a/l2");
  check_refused(open_folder("twice", "train", 0, &ds), "two links to one directory",
                "twice/train/a/", "reached twice through symlinks", NULL);

  mkdirs("self/train/a");
  write_text("self/train/a/x.png", "x");
  link_at(".", "self/train/self");
  check_refused(open_folder("self", "train", 0, &ds), "class that is a link to .",
                "self/train/self", "the split directory itself", NULL);

  char rel[512] = "deep/train/a";
  for (int d = 0; d < 17; d++) strcat(rel, "/d");
  mkdirs(rel);
  strcat(rel, "/x.png");
  write_text(rel, "x");
  check_refused(open_folder("deep", "train", 0, &ds), "17 directories below a class",
                "deep/train/a", "more than 16 directories deep", NULL);

  /* Last, as it ran for hours before the walk knew directories by (dev, ino). */
  mkdirs("fan/train/a");
  write_text("fan/train/a/x.png", "x");
  link_at(".", "fan/train/a/l1");
  link_at(".", "fan/train/a/l2");
  link_at(".", "fan/train/a/l3");
  check_refused(open_folder("fan", "train", 0, &ds), "three links to . in a class", "fan/train/a/l",
                "loops back to", "fan/train/a");
  data_dataset_close(&ds);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "%s", "data_hostile_XXXXXX");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }
  alarm(120); /* a blocked open or an endless walk ends the test as a failure, not a hang */
  scl_log_set_level(SCL_LOG_WARN);
  test_bombs();
  test_not_regular();
  test_folder_links();
  nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  printf(failures ? "%d check(s) FAILED\n" : "all hostile-input checks passed\n", failures);
  return failures ? 1 : 0;
}
