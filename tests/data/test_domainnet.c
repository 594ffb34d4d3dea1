/* test_domainnet.c: the DomainNet list reader: domains concatenated in the order given, "./"
 * prefixes and tabs accepted, blank lines skipped, labels, domains and class names as the lists
 * say, images read from ROOT/path; malformed lines, missing lists, labels beyond the class count,
 * entries leaving ROOT (absolute or with "..") and listed files that do not exist refused at open
 * naming the file (and line). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safecl/data.h"

#include "../common/scl_check.h"

static char root[64];

static void put(const char *rel, const char *text) {
  char p[256];
  snprintf(p, sizeof p, "%s/%s", root, rel);
  FILE *f = fopen(p, "w");
  fputs(text, f);
  fclose(f);
}

static void png(const char *rel, int w, int h, uint8_t v) {
  char p[256];
  snprintf(p, sizeof p, "%s/%s", root, rel);
  data_image img = {0};
  if (io_image_reserve(&img, w, h)) return;
  memset(img.rgb, v, (size_t)w * h * 3);
  if (io_image_write_png(p, &img)) failures++;
  io_image_free(&img);
}

static void expect_fail(const char *domains, int64_t n_classes, const char *needle) {
  data_source src = {.format = "domainnet",
                     .root = root,
                     .split = "test",
                     .domains = domains,
                     .n_classes = n_classes};
  data_dataset *ds = NULL;
  scl_error_clear();
  scl_err err = data_dataset_open(&src, &ds);
  CHECK(err != SCL_OK && strstr(scl_error_message(), needle), "'%s' not refused with '%s': %s",
        domains, needle, scl_error_message());
  printf("refused as expected: %s\n", scl_error_message());
  data_dataset_close(&ds);
  scl_error_clear();
}

int main(void) {
  snprintf(root, sizeof root, "/tmp/safecl_dn_XXXXXX");
  if (!mkdtemp(root)) return 1;
  char d[256];
  const char *dirs[] = {"real", "real/cat", "real/dog", "sketch", "sketch/cat", "sketch/dog"};
  for (int i = 0; i < 6; i++) {
    snprintf(d, sizeof d, "%s/%s", root, dirs[i]);
    mkdir(d, 0777);
  }
  png("real/cat/r1.png", 20, 10, 10);
  png("real/dog/r2.png", 12, 12, 20);
  png("sketch/cat/s1.png", 8, 16, 30);
  put("real_test.txt", "./real/cat/r1.png 0\n\nreal/dog/r2.png\t1\n");
  put("sketch_test.txt", "sketch/cat/s1.png 0\r\n");
  put("broken_test.txt", "real/cat/r1.png 0\nreal/dog/r2.png dog\n");
  put("big_test.txt", "real/cat/r1.png 7\n");
  put("up_test.txt", "real/cat/r1.png 0\nreal/../../outside.png 1\n");
  put("abs_test.txt", "real/cat/r1.png 0\n/etc/passwd 1\n");
  put("gone_test.txt", "real/cat/r1.png 0\n\nreal/dog/gone.png 1\n");

  data_source src = {.format = "domainnet",
                     .root = root,
                     .split = "test",
                     .domains = "sketch,real",
                     .n_classes = 2};
  data_dataset *ds = NULL;
  CHECK(data_dataset_open(&src, &ds) == SCL_OK, "open: %s", scl_error_message());
  if (ds) {
    CHECK(data_dataset_count(ds) == 3, "count %lld", (long long)data_dataset_count(ds));
    CHECK(!strcmp(data_dataset_path(ds, 0), "sketch/cat/s1.png"), "path 0 %s",
          data_dataset_path(ds, 0));
    CHECK(!strcmp(data_dataset_path(ds, 1), "real/cat/r1.png"), "./ prefix kept: %s",
          data_dataset_path(ds, 1));
    CHECK(data_dataset_label(ds, 2) == 1 && data_dataset_domain(ds, 2) == 1 &&
              data_dataset_domain(ds, 0) == 0,
          "labels/domains");
    CHECK(!strcmp(data_dataset_class_name(ds, 0), "cat") &&
              !strcmp(data_dataset_class_name(ds, 1), "dog"),
          "class names %s %s", data_dataset_class_name(ds, 0), data_dataset_class_name(ds, 1));
    data_image img = {0};
    CHECK(
        data_dataset_read(ds, 1, &img) == SCL_OK && img.w == 20 && img.h == 10 && img.rgb[0] == 10,
        "image read: %s", scl_error_message());
    io_image_free(&img);
    data_dataset_close(&ds);
  }
  /* data_source.limit counts per class within each domain: one cat of sketch, and of dup's two
   * cats the first, and its dog; the kept samples read as themselves */
  put("dup_test.txt", "real/cat/r1.png 0\nreal/cat/r1.png 0\nreal/dog/r2.png 1\n");
  data_source lim = {.format = "domainnet",
                     .root = root,
                     .split = "test",
                     .domains = "sketch,dup",
                     .n_classes = 2,
                     .limit = 1};
  CHECK(data_dataset_open(&lim, &ds) == SCL_OK, "open with a limit: %s", scl_error_message());
  if (ds) {
    data_image img = {0};
    CHECK(data_dataset_count(ds) == 3 && data_dataset_domain(ds, 0) == 0 &&
              data_dataset_domain(ds, 1) == 1 && data_dataset_label(ds, 1) == 0 &&
              data_dataset_domain(ds, 2) == 1 && data_dataset_label(ds, 2) == 1 &&
              !strcmp(data_dataset_path(ds, 2), "real/dog/r2.png"),
          "limit 1 per class and domain: %lld samples", (long long)data_dataset_count(ds));
    CHECK(data_dataset_read(ds, 2, &img) == SCL_OK && img.w == 12 && img.rgb[0] == 20,
          "kept sample 2 reads the dog: %s", scl_error_message());
    scl_hash with = data_dataset_manifest_hash(ds);
    io_image_free(&img);
    data_dataset_close(&ds);
    lim.limit = 0;
    CHECK(data_dataset_open(&lim, &ds) == SCL_OK && data_dataset_count(ds) == 4 &&
              data_dataset_manifest_hash(ds).lo != with.lo,
          "without the limit: 4 samples and another manifest");
    data_dataset_close(&ds);
  }
  expect_fail("real,broken", 0, "broken_test.txt:2");
  expect_fail("real,clipart", 0, "clipart_test.txt");
  expect_fail("big", 2, "label 7");
  expect_fail("real,up", 0, "up_test.txt:2: 'real/../../outside.png' leaves the dataset root");
  expect_fail("abs", 0, "abs_test.txt:2: '/etc/passwd' leaves the dataset root");
  expect_fail("gone", 0, "gone_test.txt:3: listed file");
  expect_fail("gone", 0, "real/dog/gone.png' is missing");
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", root);
  if (system(cmd) != 0) fprintf(stderr, "note: could not remove %s\n", root);
  if (failures) {
    fprintf(stderr, "test_domainnet: %d failure(s)\n", failures);
    return 1;
  }
  printf("test_domainnet: all checks passed\n");
  return 0;
}
